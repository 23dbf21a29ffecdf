//! Property tests for the NATS frame decoders (`ClientFrameDecoder`,
//! `ServerFrameDecoder`) and the ops' encoders: every op of both sides survives encode →
//! cut anywhere → decode, the pieces appended to one buffer as a reader receives them;
//! respelling a control line the ways nats-server accepts (op case,
//! runs of spaces and tabs, a bare LF) decodes to the same op; every limit has its own
//! error whatever the cuts; garbage is an error or a wait, never a panic, and never
//! depends on where the stream was cut.

use bytes::Bytes;
use monocoque_proto::nats::{
    ClientFrameDecoder, ClientOp, ConnectOptions, DecodeError, HeaderMap, Headers, Limits, Message, OpName, Publish,
    ServerError, ServerFrameDecoder, ServerInfo, ServerOp, Sid, Subscribe, Unsubscribe,
};
use monocoque_proto::IoArena;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

#[path = "common/cuts.rs"]
mod cuts;

use cuts::{cuts, split};

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

/// A subject, reply, queue or sid: any bytes but blanks and line breaks, usually
/// subject-shaped.
fn token() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => "[a-zA-Z0-9_>*-]{1,8}(\\.[a-zA-Z0-9_>*-]{1,8}){0,4}".prop_map(|s| Bytes::from(s.into_bytes())),
        1 => vec(any::<u8>().prop_filter("no blank or line break", |b| !matches!(b, b' ' | b'\t' | b'\r' | b'\n')), 1..12)
            .prop_map(Bytes::from),
    ]
}

fn sid() -> impl Strategy<Value = Sid> {
    prop_oneof![
        3 => any::<u32>().prop_map(|n| Sid::from_u64(u64::from(n))),
        1 => token().prop_map(Sid::from_bytes),
    ]
}

/// Payloads: empty, small binary, CRLF-dense, and sometimes longer than the arena's
/// share threshold (so the encoder hands them over as their own segment).
fn payload_of(large: bool) -> impl Strategy<Value = Bytes> {
    let large = u32::from(large);
    prop_oneof![
        6 => vec(any::<u8>(), 0..48),
        2 => Just(Vec::new()),
        2 => vec(prop_oneof![Just(b'\r'), Just(b'\n'), any::<u8>()], 0..16),
        large => vec(any::<u8>(), 4096..4400),
    ]
    .prop_map(Bytes::from)
}

/// Header blocks: built by [`HeaderMap`], or any bytes at all (the block is
/// length-prefixed, so it need not be valid to travel).
fn headers() -> impl Strategy<Value = Headers> {
    let name = "[A-Za-z][A-Za-z0-9-]{0,10}";
    let value = "[ -~]{0,12}".prop_map(|v: String| v.trim_matches([' ', '\t']).to_owned());
    prop_oneof![
        3 => (
            proptest::option::of((prop_oneof![Just(503u16), Just(404), Just(408), Just(409), Just(100), 100u16..1000], "[A-Za-z ]{0,10}")),
            vec((name, value), 0..4),
        )
            .prop_map(|(status, pairs)| {
                let mut map = HeaderMap::new();
                if let Some((code, d)) = status {
                    map.set_status(code, d.trim().to_owned()).expect("valid status");
                }
                for (n, v) in pairs {
                    map.append(n, v).expect("valid header");
                }
                map.to_headers()
            }),
        1 => vec(any::<u8>(), 0..40).prop_map(|raw| Headers::from_raw(Bytes::from(raw))),
    ]
}

fn opt_string() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(any::<String>())
}

fn connect_options() -> impl Strategy<Value = ConnectOptions> {
    (
        (
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            opt_string(),
            opt_string(),
            opt_string(),
        ),
        (opt_string(), any::<String>(), "[0-9.]{0,8}", any::<u8>(), any::<bool>()),
        (opt_string(), opt_string(), opt_string(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(
                (verbose, pedantic, tls_required, auth_token, user, pass),
                (name, lang, version, protocol, echo),
                (sig, jwt, nkey, headers, no_responders),
            )| ConnectOptions {
                verbose,
                pedantic,
                tls_required,
                auth_token,
                user,
                pass,
                name,
                lang,
                version,
                protocol,
                echo,
                sig,
                jwt,
                nkey,
                headers,
                no_responders,
            },
        )
}

fn server_info() -> impl Strategy<Value = ServerInfo> {
    (
        (
            any::<String>(),
            "[a-z0-9-]{0,10}",
            "[0-9.]{1,8}",
            any::<i32>(),
            any::<u16>(),
            any::<bool>(),
        ),
        (
            any::<i64>(),
            any::<bool>(),
            any::<bool>(),
            opt_string(),
            vec("[a-z0-9.:]{1,20}", 0..3),
        ),
        (any::<bool>(), any::<u64>(), opt_string(), opt_string()),
    )
        .prop_map(
            |(
                (server_id, server_name, version, proto, port, headers),
                (max_payload, auth_required, tls_required, nonce, connect_urls),
                (ldm, client_id, client_ip, domain),
            )| ServerInfo {
                server_id,
                server_name,
                version,
                proto,
                port,
                headers,
                max_payload,
                auth_required,
                tls_required,
                nonce,
                connect_urls,
                ldm,
                client_id,
                client_ip,
                domain,
                ..ServerInfo::default()
            },
        )
}

/// `-ERR` text: anything but LF, not starting with a blank (which a decoder skips).
fn error_text() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        3 => "'[A-Za-z ]{0,30}'".prop_map(|s| Bytes::from(s.into_bytes())),
        1 => vec(any::<u8>().prop_filter("no LF", |b| *b != b'\n'), 0..24)
            .prop_filter("no leading blank", |t| !matches!(t.first(), Some(b' ' | b'\t')))
            .prop_map(Bytes::from),
    ]
}

fn client_op_of(large: bool) -> impl Strategy<Value = ClientOp> {
    prop_oneof![
        1 => connect_options().prop_map(|c| ClientOp::Connect(Box::new(c))),
        6 => (token(), proptest::option::of(token()), proptest::option::of(headers()), payload_of(large))
            .prop_map(|(subject, reply, headers, payload)| ClientOp::Publish(Publish { subject, reply, headers, payload })),
        2 => (token(), proptest::option::of(token()), sid())
            .prop_map(|(subject, queue, sid)| ClientOp::Subscribe(Subscribe { subject, queue, sid })),
        2 => (sid(), proptest::option::of(0u64..=999_999_999))
            .prop_map(|(sid, max_msgs)| ClientOp::Unsubscribe(Unsubscribe { sid, max_msgs })),
        1 => Just(ClientOp::Ping),
        1 => Just(ClientOp::Pong),
    ]
}

fn client_op() -> impl Strategy<Value = ClientOp> {
    client_op_of(true)
}

fn server_op_of(large: bool) -> impl Strategy<Value = ServerOp> {
    prop_oneof![
        1 => server_info().prop_map(|i| ServerOp::Info(Box::new(i))),
        6 => (token(), sid(), proptest::option::of(token()), proptest::option::of(headers()), payload_of(large))
            .prop_map(|(subject, sid, reply, headers, payload)| ServerOp::Message(Message { subject, sid, reply, headers, payload })),
        1 => Just(ServerOp::Ok),
        1 => error_text().prop_map(|t| ServerOp::Err(ServerError::new(t))),
        1 => Just(ServerOp::Ping),
        1 => Just(ServerOp::Pong),
    ]
}

fn server_op() -> impl Strategy<Value = ServerOp> {
    server_op_of(true)
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn encode_client(ops: &[ClientOp]) -> Vec<u8> {
    let mut arena = IoArena::new();
    for op in ops {
        op.encode(&Limits::default(), &mut arena)
            .expect("generated ops are encodable");
    }
    arena.to_vec()
}

fn encode_server(ops: &[ServerOp]) -> Vec<u8> {
    let mut arena = IoArena::new();
    for op in ops {
        op.encode(&Limits::default(), &mut arena)
            .expect("generated ops are encodable");
    }
    arena.to_vec()
}

/// How decoding a whole stream ended.
#[derive(Debug, Clone, PartialEq)]
enum End {
    /// Every byte was used or waits for more: `left` bytes of an incomplete frame.
    Waiting {
        left: usize,
    },
    Error(DecodeError),
}

/// One side's frame decoder, its frames as owned ops.
trait Side {
    type Op;
    fn with(limits: Limits) -> Self;
    /// The frame at the front of `buf` as an op, and its length.
    fn next(&mut self, buf: &[u8]) -> Result<Option<(Self::Op, usize)>, DecodeError>;
}

impl Side for ServerFrameDecoder {
    type Op = ClientOp;

    fn with(limits: Limits) -> Self {
        Self::new(limits)
    }

    fn next(&mut self, buf: &[u8]) -> Result<Option<(ClientOp, usize)>, DecodeError> {
        Ok(self.decode(buf)?.map(|(frame, len)| (frame.to_op(), len)))
    }
}

impl Side for ClientFrameDecoder {
    type Op = ServerOp;

    fn with(limits: Limits) -> Self {
        Self::new(limits)
    }

    fn next(&mut self, buf: &[u8]) -> Result<Option<(ServerOp, usize)>, DecodeError> {
        Ok(self.decode(buf)?.map(|(frame, len)| (frame.to_op(), len)))
    }
}

/// Appends each piece to one buffer and decodes every complete frame from its front
/// after it (dropping the frame's bytes), as side `D` reads.
fn decode_ops<'a, D: Side>(limits: Limits, pieces: impl IntoIterator<Item = &'a [u8]>) -> (Vec<D::Op>, End) {
    let mut decoder = D::with(limits);
    let mut buf = Vec::new();
    let mut ops = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            match decoder.next(&buf) {
                Ok(Some((op, len))) => {
                    ops.push(op);
                    buf.drain(..len);
                }
                Ok(None) => break,
                Err(e) => return (ops, End::Error(e)),
            }
        }
    }
    (ops, End::Waiting { left: buf.len() })
}

/// A server decoding client ops.
fn decode_client_ops<'a>(limits: Limits, pieces: impl IntoIterator<Item = &'a [u8]>) -> (Vec<ClientOp>, End) {
    decode_ops::<ServerFrameDecoder>(limits, pieces)
}

/// A client decoding server ops.
fn decode_server_ops<'a>(limits: Limits, pieces: impl IntoIterator<Item = &'a [u8]>) -> (Vec<ServerOp>, End) {
    decode_ops::<ClientFrameDecoder>(limits, pieces)
}

const DONE: End = End::Waiting { left: 0 };

/// The stream respelled the ways nats-server reads the same: op name in random case,
/// each separator after the op name a random run of spaces and tabs, and the control
/// line ending in a bare LF. `noise` drives the choices.
fn respell(wire: &[u8], noise: &[u8]) -> Vec<u8> {
    let mut noise = noise.iter().copied().cycle();
    let mut next = move || noise.next().unwrap_or(0);
    let line_end = wire
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("every op has a control line");
    let line = &wire[..line_end];
    let name_len = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let name = &line[..name_len];
    let fields_follow = [&b"PUB"[..], b"HPUB", b"SUB", b"UNSUB", b"MSG", b"HMSG"].contains(&name);
    let mut out = Vec::with_capacity(wire.len() + 16);
    for &c in name {
        out.push(if next() & 1 == 1 { c.to_ascii_lowercase() } else { c });
    }
    let blanks = |out: &mut Vec<u8>, next: &mut dyn FnMut() -> u8| {
        for _ in 0..=(next() % 3) {
            out.push(if next() & 1 == 1 { b'\t' } else { b' ' });
        }
    };
    if fields_follow {
        for &c in &line[name_len..] {
            if c == b' ' {
                blanks(&mut out, &mut next);
            } else {
                out.push(c);
            }
        }
        if next() & 1 == 1 {
            blanks(&mut out, &mut next);
        }
    } else if name == b"INFO" || name == b"CONNECT" {
        // Blanks between the name and the JSON are optional.
        if next() % 3 != 0 {
            blanks(&mut out, &mut next);
        }
        out.extend_from_slice(&line[name_len + 1..]);
    } else {
        out.extend_from_slice(&line[name_len..]);
    }
    if next() & 1 == 1 && !line.ends_with(b"\r") {
        out.push(b'\n');
    } else {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(&wire[line_end + 2..]);
    out
}

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_ops_survive_every_two_way_split(op in client_op_of(false)) {
        let wire = encode_client(std::slice::from_ref(&op));
        for cut in 0..=wire.len() {
            let (ops, end) = decode_client_ops(Limits::default(), [&wire[..cut], &wire[cut..]]);
            prop_assert_eq!(end, DONE, "cut at {}", cut);
            prop_assert_eq!(&ops, std::slice::from_ref(&op), "cut at {}", cut);
        }
    }

    #[test]
    fn server_ops_survive_every_two_way_split(op in server_op_of(false)) {
        let wire = encode_server(std::slice::from_ref(&op));
        for cut in 0..=wire.len() {
            let (ops, end) = decode_server_ops(Limits::default(), [&wire[..cut], &wire[cut..]]);
            prop_assert_eq!(end, DONE, "cut at {}", cut);
            prop_assert_eq!(&ops, std::slice::from_ref(&op), "cut at {}", cut);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn client_pipelines_survive_random_cuts(ops in vec(client_op(), 1..8), cuts in cuts(48)) {
        let wire = encode_client(&ops);
        let (got, end) = decode_client_ops(Limits::default(), split(&wire, &cuts));
        prop_assert_eq!(end, DONE);
        prop_assert_eq!(got, ops);
    }

    #[test]
    fn server_pipelines_survive_random_cuts(ops in vec(server_op(), 1..8), cuts in cuts(48)) {
        let wire = encode_server(&ops);
        let (got, end) = decode_server_ops(Limits::default(), split(&wire, &cuts));
        prop_assert_eq!(end, DONE);
        prop_assert_eq!(got, ops);
    }

    #[test]
    fn both_roles_survive_one_byte_pieces(c in client_op(), s in server_op()) {
        let wire = encode_client(std::slice::from_ref(&c));
        let (got, end) = decode_client_ops(Limits::default(), wire.chunks(1));
        prop_assert_eq!(end, DONE);
        prop_assert_eq!(got, vec![c]);
        let wire = encode_server(std::slice::from_ref(&s));
        let (got, end) = decode_server_ops(Limits::default(), wire.chunks(1));
        prop_assert_eq!(end, DONE);
        prop_assert_eq!(got, vec![s]);
    }

    #[test]
    fn arena_segments_as_received_segments(c in vec(client_op(), 1..5), s in vec(server_op(), 1..5)) {
        // The arena shares large payloads as segments of their own: hand them over as a
        // driver would have received them.
        let mut arena = IoArena::with_share_threshold(16);
        for op in &c {
            op.encode(&Limits::default(), &mut arena).expect("encodable");
        }
        arena.seal();
        let (got, end) = decode_client_ops(Limits::default(), arena.chunks());
        prop_assert_eq!(end, DONE);
        prop_assert_eq!(got, c);
        let mut arena = IoArena::with_share_threshold(16);
        for op in &s {
            op.encode(&Limits::default(), &mut arena).expect("encodable");
        }
        arena.seal();
        let (got, end) = decode_server_ops(Limits::default(), arena.chunks());
        prop_assert_eq!(end, DONE);
        prop_assert_eq!(got, s);
    }

    #[test]
    fn respelled_control_lines_decode_the_same(
        c in client_op(),
        s in server_op(),
        noise in vec(any::<u8>(), 1..64),
        cuts in cuts(16),
    ) {
        let wire = respell(&encode_client(std::slice::from_ref(&c)), &noise);
        let (got, end) = decode_client_ops(Limits::default(), split(&wire, &cuts));
        prop_assert_eq!(end, DONE, "{:?}", String::from_utf8_lossy(&wire));
        prop_assert_eq!(got, vec![c]);
        let wire = respell(&encode_server(std::slice::from_ref(&s)), &noise);
        let (got, end) = decode_server_ops(Limits::default(), split(&wire, &cuts));
        prop_assert_eq!(end, DONE, "{:?}", String::from_utf8_lossy(&wire));
        prop_assert_eq!(got, vec![s]);
    }
}

#[test]
fn respell_changes_spelling_only() {
    let wire = b"PUB foo bar 2\r\nhi\r\n";
    let out = respell(wire, &[1, 2, 1, 0, 1, 1, 3]);
    assert_ne!(&out[..], &wire[..]);
    let (ops, end) = decode_client_ops(Limits::default(), [&out[..]]);
    assert_eq!(end, DONE);
    assert_eq!(
        ops,
        vec![ClientOp::Publish(Publish {
            subject: "foo".into(),
            reply: Some("bar".into()),
            headers: None,
            payload: "hi".into()
        })]
    );
}

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

fn small() -> Limits {
    Limits {
        max_control_line: 16,
        max_json_line: 24,
        max_payload: 8,
    }
}

/// (client ops?, input, the error) for every limit and malformation, each with its own
/// error.
fn limit_cases() -> Vec<(bool, &'static [u8], DecodeError)> {
    let line = DecodeError::ControlLineTooLong { max: 16 };
    let payload = |size| DecodeError::PayloadTooLarge { size, max: 8 };
    vec![
        (true, b"PUB abcdefghijk 1\r\n", line.clone()),
        (true, b"PUB abcdefghijkl 1", line.clone()),
        (true, b"SUB abcdefghijklmnopqrstuvwxyz", line.clone()),
        (false, b"-ERR 'abcdefghijklmnop'\r\n", line.clone()),
        (false, b"MSG a 1 0\r\n\r\nPING 0123456789abcdef", line),
        (
            true,
            b"CONNECT {\"name\":\"abcdefghijkl\"}\r\n",
            DecodeError::JsonLineTooLong {
                op: OpName::Connect,
                max: 24,
            },
        ),
        (
            false,
            b"INFO {\"server_id\":\"abcdefghijklmnop",
            DecodeError::JsonLineTooLong {
                op: OpName::Info,
                max: 24,
            },
        ),
        (true, b"PUB a 9\r\n", payload(9)),
        (true, b"HPUB a 1 9\r\n", payload(9)),
        (false, b"MSG a 1 99999999\r\n", payload(99_999_999)),
        (false, b"HMSG a 1 r 0 10\r\n", payload(10)),
        (true, b"PUB a 1234567890\r\n", DecodeError::SizeTooLong),
        (true, b"PUB a -1\r\n", DecodeError::InvalidSize),
        (
            true,
            b"HPUB a 3 2\r\n",
            DecodeError::HeadersExceedTotal { headers: 3, total: 2 },
        ),
        (true, b"PUB a 2\r\nabc\r\n", DecodeError::MissingPayloadCrlf),
        (false, b"MSG a 1 2\r\nab\n", DecodeError::MissingPayloadCrlf),
        (
            true,
            b"PUB a b c d\r\n",
            DecodeError::WrongFieldCount {
                op: OpName::Pub,
                count: 4,
            },
        ),
        (true, b"PUB a\r\r\n", DecodeError::CarriageReturnInField),
        (true, b"PUB\r\n", DecodeError::UnknownOp),
        (false, b"PUB a 1\r\n", DecodeError::UnknownOp),
        (true, b"PING\r\nPOX", DecodeError::UnknownOp),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn every_limit_is_its_own_error_whatever_the_cuts(case in any::<Index>(), cuts in cuts(24)) {
        let cases = limit_cases();
        let (client, input, want) = &cases[case.index(cases.len())];
        let end = if *client {
            decode_client_ops(small(), split(input, &cuts)).1
        } else {
            decode_server_ops(small(), split(input, &cuts)).1
        };
        prop_assert_eq!(end, End::Error(want.clone()), "{:?}", String::from_utf8_lossy(input));
    }
}

#[test]
fn every_limit_case_fails_in_one_piece() {
    for (client, input, want) in limit_cases() {
        let end = if client {
            decode_client_ops(small(), [input]).1
        } else {
            decode_server_ops(small(), [input]).1
        };
        assert_eq!(end, End::Error(want), "{:?}", String::from_utf8_lossy(input));
    }
}

// ---------------------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------------------

/// The protocol's own tokens, so byte soup gets past the op names.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\r",
    b"\n",
    b" ",
    b"\t",
    b"PUB ",
    b"HPUB ",
    b"SUB ",
    b"UNSUB ",
    b"MSG ",
    b"HMSG ",
    b"PING",
    b"PONG",
    b"+OK",
    b"-ERR ",
    b"INFO ",
    b"CONNECT ",
    b"{}",
    b"{\"a\":1}",
    b"0",
    b"1",
    b"2",
    b"5",
    b"12",
    b"foo",
    b"x",
    b"NATS/1.0\r\n",
    b"'",
];

fn nats_ish() -> impl Strategy<Value = Vec<u8>> {
    vec(proptest::sample::select(TOKENS), 0..40).prop_map(|t| t.concat())
}

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..200), nats_ish()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn garbage_is_an_error_or_a_wait_whatever_the_cuts(data in garbage(), cuts in cuts(16), tight in any::<bool>()) {
        let limits = if tight { small() } else { Limits::default() };
        let (ops, end) = decode_client_ops(limits, [&data[..]]);
        let (split_ops, split_end) = decode_client_ops(limits, split(&data, &cuts));
        prop_assert_eq!(split_end, end);
        prop_assert_eq!(split_ops, ops);
        let (ops, end) = decode_server_ops(limits, [&data[..]]);
        let (split_ops, split_end) = decode_server_ops(limits, split(&data, &cuts));
        prop_assert_eq!(split_end, end);
        prop_assert_eq!(split_ops, ops);
    }
}
