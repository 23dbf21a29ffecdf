//! The RESP decoder against a real `redis-server`: every `DEBUG PROTOCOL` type in
//! RESP2 and RESP3, big pipelines, large values and the bulk limit, over a plain
//! blocking socket (the drivers come with the Redis client).

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;

use bytes::Bytes;
use monocoque::proto::resp::{Cmd, DecodeError, Decoder, DecoderConfig, Protocol, Value};
use monocoque::proto::{IoArena, SegmentedBuffer};
use support::RedisServer;

/// A blocking RESP connection that records the exact bytes of each reply.
struct Conn {
    stream: TcpStream,
    decoder: Decoder,
    src: SegmentedBuffer,
}

impl Conn {
    fn new(server: &RedisServer, protocol: Protocol) -> Self {
        Self::with_config(server, DecoderConfig::new(protocol))
    }

    fn with_config(server: &RedisServer, config: DecoderConfig) -> Self {
        Self {
            stream: server.connect(),
            decoder: Decoder::new(config),
            src: SegmentedBuffer::new(),
        }
    }

    fn send(&mut self, cmds: &[Cmd]) {
        let mut arena = IoArena::new();
        for c in cmds {
            c.encode(&mut arena);
        }
        self.stream.write_all(&arena.to_vec()).expect("write");
    }

    /// Reads until one value is decoded.
    fn read_value(&mut self) -> Result<Value, DecodeError> {
        self.read(false).map(|(v, _)| v)
    }

    /// Reads until one value is decoded; returns it with the bytes it was made of.
    fn read_recorded(&mut self) -> Result<(Value, Vec<u8>), DecodeError> {
        self.read(true)
    }

    fn read(&mut self, record: bool) -> Result<(Value, Vec<u8>), DecodeError> {
        let mut raw = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let before: Vec<u8> = if record {
                self.src.segments().flat_map(|s| s.iter().copied()).collect()
            } else {
                Vec::new()
            };
            let len_before = self.src.len();
            let out = self.decoder.decode(&mut self.src)?;
            if record {
                raw.extend_from_slice(&before[..len_before - self.src.len()]);
            }
            if let Some(v) = out {
                return Ok((v, raw));
            }
            let n = self.stream.read(&mut buf).expect("read");
            assert!(n > 0, "redis-server closed the connection");
            self.src.push(Bytes::copy_from_slice(&buf[..n]));
        }
    }

    fn query(&mut self, cmd: Cmd) -> Value {
        self.send(&[cmd]);
        self.read_value().expect("decode")
    }
}

fn bulk(s: &'static str) -> Value {
    Value::from(s)
}

fn ints(ns: &[i64]) -> Vec<Value> {
    ns.iter().map(|&n| Value::Integer(n)).collect()
}

/// What redis-server sends for `DEBUG PROTOCOL <t>` (debug.c), per dialect: the
/// replies in order (a push comes before its command's real reply).
#[allow(clippy::approx_constant)] // redis-server sends 3.141, not PI
fn expected(t: &str, protocol: Protocol) -> Vec<Value> {
    let r3 = protocol == Protocol::Resp3;
    let one = match t {
        "string" => bulk("Hello World"),
        "integer" => Value::Integer(12345),
        "double" if r3 => Value::Double(3.141),
        "double" => bulk("3.141"),
        "bignum" if r3 => Value::BigNumber("1234567999999999999999999999999999999".into()),
        "bignum" => bulk("1234567999999999999999999999999999999"),
        "null" => Value::Null,
        "array" => Value::Array(ints(&[0, 1, 2])),
        "set" if r3 => Value::Set(ints(&[0, 1, 2])),
        "set" => Value::Array(ints(&[0, 1, 2])),
        "map" if r3 => Value::Map((0..3).map(|j| (Value::Integer(j), Value::Boolean(j == 1))).collect()),
        "map" => Value::Array(ints(&[0, 0, 1, 1, 2, 0])),
        "attrib" if r3 => Value::Attributed {
            attributes: vec![(
                bulk("key-popularity"),
                Value::Array(vec![bulk("key:123"), Value::Integer(90)]),
            )],
            value: Box::new(bulk("Some real reply following the attribute")),
        },
        "attrib" => bulk("Some real reply following the attribute"),
        "push" if r3 => {
            return vec![
                Value::Push(vec![bulk("server-cpu-usage"), Value::Integer(42)]),
                bulk("Some real reply following the push reply"),
            ]
        }
        "push" => Value::SimpleError("ERR RESP2 is not supported by this command".into()),
        "verbatim" if r3 => Value::Verbatim {
            format: *b"txt",
            text: "This is a verbatim\nstring".into(),
        },
        "verbatim" => bulk("This is a verbatim\nstring"),
        "true" if r3 => Value::Boolean(true),
        "false" if r3 => Value::Boolean(false),
        "true" => Value::Integer(1),
        "false" => Value::Integer(0),
        other => panic!("unknown type {other}"),
    };
    vec![one]
}

const TYPES: [&str; 13] = [
    "string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib", "push", "verbatim", "true",
    "false",
];

/// Decodes `raw` split at every byte boundary; every split must give `want`.
fn assert_every_split(raw: &[u8], protocol: Protocol, want: &[Value]) {
    for cut in 0..=raw.len() {
        let mut d = Decoder::new(DecoderConfig::new(protocol));
        let mut src = SegmentedBuffer::new();
        let mut got = Vec::new();
        for part in [&raw[..cut], &raw[cut..]] {
            src.push_slice(part);
            while let Some(v) = d.decode(&mut src).expect("decode split") {
                got.push(v);
            }
        }
        assert_eq!(got, want, "split at {cut} of {raw:?}");
    }
}

fn check_debug_protocol(protocol: Protocol) {
    let server = RedisServer::start(&[]);
    let mut conn = Conn::new(&server, protocol);
    if protocol == Protocol::Resp3 {
        let hello = conn.query(Cmd::new("HELLO").arg("3"));
        let Value::Map(fields) = &hello else {
            panic!("HELLO 3 replied {hello:?}");
        };
        assert!(fields.contains(&(bulk("proto"), Value::Integer(3))), "{hello:?}");
    }
    let dir = match protocol {
        Protocol::Resp2 => "resp2",
        Protocol::Resp3 => "resp3",
    };
    for t in TYPES {
        let want = expected(t, protocol);
        conn.send(&[Cmd::new("DEBUG").arg("PROTOCOL").arg(t)]);
        let mut got = Vec::new();
        let mut raw = Vec::new();
        for _ in 0..want.len() {
            let (v, bytes) = conn.read_recorded().expect("decode live reply");
            got.push(v);
            raw.extend_from_slice(&bytes);
        }
        assert_eq!(got, want, "DEBUG PROTOCOL {t} over {protocol:?}");
        assert_every_split(&raw, protocol, &want);
        // The committed vectors are these same bytes; `MONOCOQUE_WRITE_VECTORS=1` rewrites
        // them from the running server instead of comparing.
        let vector = format!(
            "{}/proto/tests/vectors/redis-server/{dir}/{t}.bin",
            env!("CARGO_MANIFEST_DIR")
        );
        if std::env::var_os("MONOCOQUE_WRITE_VECTORS").is_some() {
            std::fs::write(&vector, &raw).unwrap_or_else(|e| panic!("{vector}: {e}"));
            continue;
        }
        let committed = std::fs::read(&vector).unwrap_or_else(|e| panic!("{vector}: {e}"));
        assert_eq!(
            committed,
            raw,
            "{vector} differs from what {} sends",
            RedisServer::version()
        );
    }
}

#[test]
fn every_debug_protocol_type_over_resp2() {
    check_debug_protocol(Protocol::Resp2);
}

#[test]
fn every_debug_protocol_type_over_resp3() {
    check_debug_protocol(Protocol::Resp3);
}

#[test]
fn pipeline_of_100_000_commands_decodes_in_order() {
    let server = RedisServer::start(&[]);
    let mut conn = Conn::new(&server, Protocol::Resp2);
    let n = 25_000;
    let mut cmds = Vec::with_capacity(4 * n);
    for i in 0..n {
        cmds.push(Cmd::new("SET").arg(format!("key:{i}")).arg(format!("value:{i}")));
        cmds.push(Cmd::new("GET").arg(format!("key:{i}")));
        cmds.push(Cmd::new("INCR").arg("counter"));
        cmds.push(Cmd::new("GET").arg("missing"));
    }
    // Write from another thread so a full socket buffer can't deadlock the reader.
    let mut writer = conn.stream.try_clone().expect("clone");
    let wire: Vec<u8> = {
        let mut arena = IoArena::new();
        cmds.iter().for_each(|c| c.encode(&mut arena));
        arena.to_vec()
    };
    let t = std::thread::spawn(move || writer.write_all(&wire).expect("write pipeline"));
    for i in 0..n {
        assert_eq!(conn.read_value().unwrap(), Value::SimpleString("OK".into()));
        let v = conn.read_value().unwrap();
        assert_eq!(
            v.as_bytes().map(|b| b.to_vec()),
            Some(format!("value:{i}").into_bytes())
        );
        assert_eq!(conn.read_value().unwrap(), Value::Integer(i as i64 + 1));
        assert_eq!(conn.read_value().unwrap(), Value::Null);
    }
    t.join().expect("writer");
    assert!(conn.src.is_empty());
}

#[test]
fn large_binary_values_span_many_reads() {
    let server = RedisServer::start(&[]);
    let mut conn = Conn::new(&server, Protocol::Resp3);
    let value: Vec<u8> = (0..16 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let value = Bytes::from(value);
    let ok = conn.query(Cmd::new("SET").arg("big").arg(value.clone()));
    assert_eq!(ok, Value::SimpleString("OK".into()));
    let got = conn.query(Cmd::new("GET").arg("big"));
    assert_eq!(got.as_bytes(), Some(&value), "16 MiB binary value round trip");
}

#[test]
fn a_value_over_the_bulk_limit_is_refused_before_its_payload_arrives() {
    let server = RedisServer::start(&[]);
    let mut setup = Conn::new(&server, Protocol::Resp2);
    let ok = setup.query(Cmd::new("SET").arg("big").arg(Bytes::from(vec![b'x'; 4 * 1024 * 1024])));
    assert_eq!(ok, Value::SimpleString("OK".into()));
    let mut conn = Conn::with_config(
        &server,
        DecoderConfig {
            max_bulk_len: 1024 * 1024,
            ..DecoderConfig::new(Protocol::Resp2)
        },
    );
    conn.send(&[Cmd::new("GET").arg("big")]);
    let err = conn.read_value().expect_err("over the limit");
    assert_eq!(
        err,
        DecodeError::BulkTooLong {
            len: 4 * 1024 * 1024,
            max: 1024 * 1024
        }
    );
}
