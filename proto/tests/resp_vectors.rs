//! Committed RESP test vectors, decoded without a server.
//!
//! - `vectors/spec/*.resp`: the examples of the RESP3 specification (plus the RESP2
//!   nulls and the streamed forms), each with the value it must decode to.
//! - `vectors/redis-server/{resp2,resp3}/<type>.bin`: the exact bytes a real
//!   redis-server sent for `DEBUG PROTOCOL <type>`, captured by
//!   `MONOCOQUE_WRITE_VECTORS=1 cargo test --test resp_redis_server` (and compared with
//!   the live server by that same test). Here they must decode cleanly at every split
//!   point and re-encode to the very same bytes.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use monocoque_proto::resp::{Decoder, DecoderConfig, Encoder, Protocol, Value};
use monocoque_proto::{IoArena, SegmentedBuffer};

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

/// Decodes `bytes` fed in two pieces cut at `cut`; fails on an error or leftover bytes.
fn decode_split(bytes: &[u8], cut: usize, protocol: Protocol) -> Vec<Value> {
    let mut decoder = Decoder::new(DecoderConfig::new(protocol));
    let mut src = SegmentedBuffer::new();
    let mut out = Vec::new();
    for piece in [&bytes[..cut], &bytes[cut..]] {
        src.push(Bytes::copy_from_slice(piece));
        while let Some(v) = decoder.decode(&mut src).unwrap_or_else(|e| panic!("{e} in {bytes:?}")) {
            out.push(v);
        }
    }
    assert!(src.is_empty() && !decoder.is_mid_value(), "incomplete: {bytes:?}");
    out
}

/// Decodes at every split point, checks they agree, returns the values.
fn decode_everywhere(bytes: &[u8], protocol: Protocol) -> Vec<Value> {
    let whole = decode_split(bytes, bytes.len(), protocol);
    for cut in 0..bytes.len() {
        assert_eq!(decode_split(bytes, cut, protocol), whole, "cut at {cut} of {bytes:?}");
    }
    whole
}

fn bulk(s: &str) -> Value {
    Value::BulkString(Bytes::copy_from_slice(s.as_bytes()))
}

fn simple(s: &str) -> Value {
    Value::SimpleString(Bytes::copy_from_slice(s.as_bytes()))
}

fn spec_expectation(name: &str) -> Value {
    match name {
        "simple_string" => simple("OK"),
        "simple_error" => Value::SimpleError("ERR this is the error description".into()),
        "integer" => Value::Integer(1234),
        "negative_integer" => Value::Integer(-1234),
        "bulk_string" => bulk("hello world"),
        "empty_bulk_string" => bulk(""),
        "resp2_null_bulk" | "resp2_null_array" | "null" => Value::Null,
        "array" => Value::Array(vec![Value::Integer(1), Value::Integer(2), Value::Integer(3)]),
        "nested_array" => Value::Array(vec![
            Value::Array(vec![Value::Integer(1), bulk("hello"), Value::Integer(2)]),
            Value::Boolean(false),
        ]),
        "double" => Value::Double(1.23),
        "double_inf" => Value::Double(f64::INFINITY),
        "double_neg_inf" => Value::Double(f64::NEG_INFINITY),
        "double_nan" => Value::Double(f64::NAN),
        "double_exponent" => Value::Double(1500.0),
        "boolean_true" => Value::Boolean(true),
        "boolean_false" => Value::Boolean(false),
        "blob_error" => Value::BlobError("SYNTAX invalid syntax".into()),
        "verbatim" => Value::Verbatim {
            format: *b"txt",
            text: "Some string".into(),
        },
        "big_number" => Value::BigNumber("3492890328409238509324850943850943825024385".into()),
        "map" => Value::Map(vec![
            (simple("first"), Value::Integer(1)),
            (simple("second"), Value::Integer(2)),
        ]),
        "set" => Value::Set(vec![
            simple("orange"),
            simple("apple"),
            Value::Boolean(true),
            Value::Integer(100),
            Value::Integer(999),
        ]),
        "attribute" => Value::Attributed {
            attributes: vec![(
                simple("key-popularity"),
                Value::Map(vec![
                    (bulk("a"), Value::Double(0.1923)),
                    (bulk("b"), Value::Double(0.0012)),
                ]),
            )],
            value: Box::new(Value::Array(vec![Value::Integer(2039123), Value::Integer(9543892)])),
        },
        "push" => Value::Push(vec![
            simple("pubsub"),
            simple("message"),
            simple("somechannel"),
            simple("this is the message"),
        ]),
        "streamed_string" => bulk("Hello word"),
        "streamed_array" => Value::Array(vec![Value::Integer(1), Value::Integer(2), Value::Integer(3)]),
        "streamed_map" => Value::Map(vec![(simple("a"), Value::Integer(1)), (simple("b"), Value::Integer(2))]),
        other => panic!("no expectation for spec vector {other}: add one"),
    }
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

#[test]
fn resp3_specification_examples_decode_to_their_values() {
    let paths = files(&vectors().join("spec"), "resp");
    assert!(paths.len() >= 28, "spec vectors missing: {paths:?}");
    for path in paths {
        let name = path.file_stem().and_then(|s| s.to_str()).expect("utf-8 name");
        let bytes = std::fs::read(&path).expect("read vector");
        let values = decode_everywhere(&bytes, Protocol::Resp3);
        assert_eq!(values, vec![spec_expectation(name)], "{name}");
        if name.starts_with("resp2_") || ["simple_string", "integer", "bulk_string", "array"].contains(&name) {
            assert_eq!(decode_everywhere(&bytes, Protocol::Resp2), values, "{name} over RESP2");
        }
    }
}

#[test]
fn redis_server_replies_decode_and_reencode_byte_for_byte() {
    for (dir, protocol) in [("resp2", Protocol::Resp2), ("resp3", Protocol::Resp3)] {
        let paths = files(&vectors().join("redis-server").join(dir), "bin");
        assert_eq!(paths.len(), 13, "one vector per DEBUG PROTOCOL type in {dir}");
        for path in paths {
            let bytes = std::fs::read(&path).expect("read vector");
            let values = decode_everywhere(&bytes, protocol);
            assert!(!values.is_empty(), "{}", path.display());
            let mut arena = IoArena::new();
            let encoder = Encoder::new(protocol);
            for v in &values {
                encoder.encode(v, &mut arena).expect("encode");
            }
            assert_eq!(
                arena.to_vec(),
                bytes,
                "{} does not re-encode identically",
                path.display()
            );
        }
    }
}
