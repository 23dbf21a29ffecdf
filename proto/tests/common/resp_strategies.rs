//! The RESP values the property tests generate, shared by `resp_roundtrip.rs` (the
//! [`Decoder`](monocoque_proto::resp::Decoder)) and `resp_tape.rs` (the
//! [`TapeDecoder`](monocoque_proto::resp::TapeDecoder)) so both decoders are tested on
//! the same inputs: value strategies (every RESP3 type, nested, with attributes and
//! pushes; the RESP2 subset), the streamed-form encoders, and the encoding and decoder
//! configurations that go with them.
//!
//! Included by each test file with `#[path = "common/resp_strategies.rs"] mod resp_strategies;`.

use std::num::NonZeroUsize;

use bytes::Bytes;
use monocoque_proto::resp::{DecoderConfig, Encoder, Protocol, Value};
use monocoque_proto::IoArena;
use proptest::collection::vec;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// Text for line-framed values: anything but CR and LF.
fn line_text() -> impl Strategy<Value = Bytes> {
    vec(
        any::<u8>().prop_filter("no CR/LF", |b| !matches!(b, b'\r' | b'\n')),
        0..24,
    )
    .prop_map(Bytes::from)
}

/// Binary-safe payloads: empty, CRLF inside, CR/LF-dense, and (when `large`) sometimes
/// longer than the arena's share threshold (so the encoder hands it over as its own
/// segment).
fn binary_of(large: bool) -> impl Strategy<Value = Bytes> {
    let large = if large { 1 } else { 0 };
    prop_oneof![
        6 => vec(any::<u8>(), 0..40),
        2 => Just(Vec::new()),
        2 => (vec(any::<u8>(), 0..8), vec(any::<u8>(), 0..8)).prop_map(|(a, b)| [a, b"\r\n".to_vec(), b].concat()),
        2 => vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..16),
        large => vec(any::<u8>(), 4096..4200),
    ]
    .prop_map(Bytes::from)
}

/// Integers, with the extremes, zero and -1 weighted up.
fn integer() -> impl Strategy<Value = i64> {
    prop_oneof![
        4 => any::<i64>(),
        1 => Just(i64::MIN),
        1 => Just(i64::MAX),
        1 => Just(0),
        1 => Just(-1),
        1 => -1000i64..1000,
    ]
}

/// Doubles: arbitrary bits, decimal-exponent forms, infinities, NaN, signed zeros,
/// subnormals and the values whose shortest text switches notation.
fn double() -> impl Strategy<Value = f64> {
    prop_oneof![
        6 => any::<f64>(),
        4 => (-99_999i64..99_999, -330i32..310).prop_map(|(m, e)| format!("{m}e{e}").parse().expect("a double")),
        1 => Just(f64::INFINITY),
        1 => Just(f64::NEG_INFINITY),
        1 => Just(f64::NAN),
        1 => Just(-0.0),
        1 => Just(0.0),
        1 => Just(f64::MIN_POSITIVE / 3.0), // subnormal
        1 => Just(-5e-324), // smallest subnormal
        1 => Just(f64::MAX),
        1 => Just(f64::MIN),
        1 => Just(f64::EPSILON),
        1 => Just(1e21),
        1 => Just(1.5e-7),
    ]
}

/// A verbatim format: three printable ASCII bytes, none of them `:`.
fn verbatim_format() -> impl Strategy<Value = [u8; 3]> {
    proptest::array::uniform3((0x20u8..=0x7e).prop_filter("not ':'", |b| *b != b':'))
}

/// Big numbers: up to 60 decimal digits, optionally signed.
fn big_number() -> impl Strategy<Value = Bytes> {
    "[-+]?[0-9]{1,60}".prop_map(|s| Bytes::from(s.into_bytes()))
}

/// [`binary_of`] with payloads of several KiB now and then.
fn binary() -> impl Strategy<Value = Bytes> {
    binary_of(true)
}

/// Every scalar RESP3 value.
fn scalar(large: bool) -> impl Strategy<Value = Value> {
    prop_oneof![
        line_text().prop_map(Value::SimpleString),
        line_text().prop_map(Value::SimpleError),
        integer().prop_map(Value::Integer),
        binary_of(large).prop_map(Value::BulkString),
        Just(Value::Null),
        double().prop_map(Value::Double),
        any::<bool>().prop_map(Value::Boolean),
        binary_of(large).prop_map(Value::BlobError),
        (verbatim_format(), binary_of(large)).prop_map(|(format, text)| Value::Verbatim { format, text }),
        big_number().prop_map(Value::BigNumber),
    ]
}

/// Wraps `value` in attributes the way the decoder builds them: attributes before a
/// value that already has some are merged into one list.
pub fn attributed(attributes: Vec<(Value, Value)>, value: Value) -> Value {
    match value {
        Value::Attributed {
            attributes: inner,
            value,
        } => Value::Attributed {
            attributes: attributes.into_iter().chain(inner).collect(),
            value,
        },
        value => Value::Attributed {
            attributes,
            value: Box::new(value),
        },
    }
}

/// Every RESP3 value, nested up to four levels; attributes and pushes anywhere.
pub fn value() -> impl Strategy<Value = Value> {
    value_of(true)
}

/// [`value`], with or without payloads of several KiB.
pub fn value_of(large: bool) -> impl Strategy<Value = Value> {
    scalar(large).prop_recursive(4, 48, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::Array),
            vec(inner.clone(), 0..5).prop_map(Value::Set),
            vec(inner.clone(), 0..5).prop_map(Value::Push),
            vec((inner.clone(), inner.clone()), 0..4).prop_map(Value::Map),
            (vec((inner.clone(), inner.clone()), 0..3), inner).prop_map(|(a, v)| attributed(a, v)),
        ]
    })
}

/// The RESP2 types only.
pub fn resp2_value() -> impl Strategy<Value = Value> {
    let scalar = prop_oneof![
        line_text().prop_map(Value::SimpleString),
        line_text().prop_map(Value::SimpleError),
        integer().prop_map(Value::Integer),
        binary().prop_map(Value::BulkString),
        Just(Value::Null),
    ];
    scalar.prop_recursive(4, 48, 5, |inner| vec(inner, 0..5).prop_map(Value::Array))
}

/// The streamed-form encoders: chunked strings, streamed aggregates, or both.
pub fn streamed_encoder() -> impl Strategy<Value = Encoder> {
    (proptest::option::of(1usize..9), any::<bool>())
        .prop_filter("some streaming", |(s, a)| s.is_some() || *a)
        .prop_map(|(chunk, stream_aggregates)| Encoder {
            protocol: Protocol::Resp3,
            stream_strings: chunk.and_then(NonZeroUsize::new),
            stream_aggregates,
        })
}

// ---------------------------------------------------------------------------------------
// Encoding and configurations
// ---------------------------------------------------------------------------------------

/// `values` encoded one after the other by `encoder`, as one byte string.
pub fn encode_all(encoder: &Encoder, values: &[Value]) -> Vec<u8> {
    let mut arena = IoArena::new();
    for v in values {
        encoder.encode(v, &mut arena).expect("generated values are encodable");
    }
    arena.to_vec()
}

/// The default RESP3 decoder configuration.
pub fn resp3() -> DecoderConfig {
    DecoderConfig::new(Protocol::Resp3)
}

/// The default RESP2 decoder configuration.
pub fn resp2() -> DecoderConfig {
    DecoderConfig::new(Protocol::Resp2)
}
