//! The NATS wire rules as the frame decoders ([`ClientFrameDecoder`],
//! [`ServerFrameDecoder`]) apply them, nats-server's parser's: every op of both sides,
//! case-insensitive op names, fields split on runs of spaces and tabs, optional fields
//! told apart by count, a bare `\n` after a control line but `\r\n` after a payload,
//! sizes of 1 to 9 digits, every limit with its own error, checked before the payload
//! arrives, and each side accepting only what its peer sends.

use bytes::Bytes;
use monocoque_proto::nats::{
    ClientFrame, ClientFrameDecoder, ClientOp, DecodeError, Limits, Message, OpName, Publish, ServerFrameDecoder,
    ServerOp, Sid, StatusCode, Subscribe, Unsubscribe,
};

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Every op a client decodes from `input` in one buffer, which must hold whole frames.
fn server_ops(limits: Limits, input: &[u8]) -> Result<Vec<ServerOp>, DecodeError> {
    let mut decoder = ClientFrameDecoder::new(limits);
    let (mut out, mut at) = (Vec::new(), 0);
    while let Some((frame, len)) = decoder.decode(&input[at..])? {
        out.push(frame.to_op());
        at += len;
    }
    assert_eq!(at, input.len(), "{} bytes left", input.len() - at);
    Ok(out)
}

/// Every op a server decodes from `input` in one buffer, which must hold whole frames.
fn client_ops(limits: Limits, input: &[u8]) -> Result<Vec<ClientOp>, DecodeError> {
    let mut decoder = ServerFrameDecoder::new(limits);
    let (mut out, mut at) = (Vec::new(), 0);
    while let Some((frame, len)) = decoder.decode(&input[at..])? {
        out.push(frame.to_op());
        at += len;
    }
    assert_eq!(at, input.len(), "{} bytes left", input.len() - at);
    Ok(out)
}

/// Decoding `input` needs more bytes and produces nothing yet.
fn needs_more_from_client(limits: Limits, input: &[u8]) {
    assert_eq!(ServerFrameDecoder::new(limits).decode(input), Ok(None));
}

fn needs_more_from_server(limits: Limits, input: &[u8]) {
    assert_eq!(ClientFrameDecoder::new(limits).decode(input), Ok(None));
}

fn from_server(input: &[u8]) -> ServerOp {
    let mut ops = server_ops(Limits::default(), input).unwrap();
    assert_eq!(ops.len(), 1, "{ops:?}");
    ops.pop().unwrap()
}

fn from_client(input: &[u8]) -> ClientOp {
    let mut ops = client_ops(Limits::default(), input).unwrap();
    assert_eq!(ops.len(), 1, "{ops:?}");
    ops.pop().unwrap()
}

fn server_err(input: &[u8]) -> DecodeError {
    server_ops(Limits::default(), input).unwrap_err()
}

fn client_err(input: &[u8]) -> DecodeError {
    client_ops(Limits::default(), input).unwrap_err()
}

fn publish(subject: &'static str, reply: Option<&'static str>, payload: &'static str) -> ClientOp {
    ClientOp::Publish(Publish {
        subject: b(subject),
        reply: reply.map(b),
        headers: None,
        payload: b(payload),
    })
}

fn msg(subject: &'static str, sid: &'static str, reply: Option<&'static str>, payload: &'static str) -> ServerOp {
    ServerOp::Message(Message {
        subject: b(subject),
        sid: Sid::from_bytes(b(sid)),
        reply: reply.map(b),
        headers: None,
        payload: b(payload),
    })
}

// -- every client op, as a server decodes it -------------------------------------

#[test]
fn pub_with_and_without_reply() {
    assert_eq!(from_client(b"PUB foo 5\r\nhello\r\n"), publish("foo", None, "hello"));
    assert_eq!(
        from_client(b"PUB foo _INBOX.1 5\r\nhello\r\n"),
        publish("foo", Some("_INBOX.1"), "hello")
    );
    assert_eq!(from_client(b"PUB foo 0\r\n\r\n"), publish("foo", None, ""));
    // Binary payloads may hold CRLF.
    assert_eq!(
        from_client(b"PUB foo 4\r\n\r\n\r\n\r\n"),
        publish("foo", None, "\r\n\r\n")
    );
}

#[test]
fn hpub_splits_headers_from_payload() {
    let op = from_client(b"HPUB foo reply 18 23\r\nNATS/1.0\r\nA: 1\r\n\r\nhello\r\n");
    let ClientOp::Publish(p) = op else { panic!("{op:?}") };
    assert_eq!(p.subject, "foo");
    assert_eq!(p.reply.as_deref(), Some(&b"reply"[..]));
    let h = p.headers.unwrap();
    assert_eq!(h.as_bytes(), "NATS/1.0\r\nA: 1\r\n\r\n");
    assert_eq!(h.get("a").unwrap(), "1");
    assert_eq!(p.payload, "hello");
    let ClientOp::Publish(p) = from_client(b"HPUB foo 12 12\r\nNATS/1.0\r\n\r\n\r\n") else {
        panic!()
    };
    assert_eq!(p.headers.unwrap().len(), 12);
    assert!(p.payload.is_empty());
    // A header size of 0 is accepted, as nats-server does (it means no headers).
    let ClientOp::Publish(p) = from_client(b"HPUB foo 0 2\r\nhi\r\n") else {
        panic!()
    };
    assert!(p.headers.unwrap().is_empty());
}

#[test]
fn sub_with_and_without_queue() {
    assert_eq!(
        from_client(b"SUB foo.* 1\r\n"),
        ClientOp::Subscribe(Subscribe {
            subject: b("foo.*"),
            queue: None,
            sid: Sid::from_u64(1)
        })
    );
    assert_eq!(
        from_client(b"SUB foo.> workers 22\r\n"),
        ClientOp::Subscribe(Subscribe {
            subject: b("foo.>"),
            queue: Some(b("workers")),
            sid: Sid::from_u64(22)
        })
    );
    // Sids are tokens, not only numbers.
    let ClientOp::Subscribe(s) = from_client(b"SUB foo abc\r\n") else {
        panic!()
    };
    assert_eq!(s.sid.as_bytes(), "abc");
    assert_eq!(s.sid.as_u64(), None);
}

#[test]
fn unsub_with_and_without_max() {
    assert_eq!(
        from_client(b"UNSUB 1\r\n"),
        ClientOp::Unsubscribe(Unsubscribe {
            sid: Sid::from_u64(1),
            max_msgs: None
        })
    );
    assert_eq!(
        from_client(b"UNSUB 1 10\r\n"),
        ClientOp::Unsubscribe(Unsubscribe {
            sid: Sid::from_u64(1),
            max_msgs: Some(10)
        })
    );
    assert_eq!(client_err(b"UNSUB 1 x\r\n"), DecodeError::InvalidSize);
    assert_eq!(client_err(b"UNSUB 1 1234567890\r\n"), DecodeError::SizeTooLong);
}

#[test]
fn connect_json() {
    let op = from_client(
        br#"CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"name":"n","lang":"go","version":"1.31.0","protocol":1,"echo":true,"headers":true,"no_responders":true,"user":"u","pass":"p"}"#
            .iter()
            .chain(b"\r\n")
            .copied()
            .collect::<Vec<u8>>()
            .as_slice(),
    );
    let ClientOp::Connect(c) = op else { panic!("{op:?}") };
    assert!(!c.verbose && c.headers && c.no_responders && c.echo);
    assert_eq!(
        (c.user.as_deref(), c.pass.as_deref(), c.name.as_deref()),
        (Some("u"), Some("p"), Some("n"))
    );
    // No space needed before the JSON, as in nats-server.
    assert!(matches!(from_client(b"connect{}\r\n"), ClientOp::Connect(_)));
    assert!(matches!(from_client(b"CONNECT \t {} \r\n"), ClientOp::Connect(_)));
    assert!(matches!(
        client_err(b"CONNECT {\"verbose\":1}\r\n"),
        DecodeError::InvalidJson {
            op: OpName::Connect,
            category: serde_json::error::Category::Data,
            ..
        }
    ));
    assert!(matches!(
        client_err(b"CONNECT\r\n"),
        DecodeError::InvalidJson {
            op: OpName::Connect,
            category: serde_json::error::Category::Eof,
            ..
        }
    ));
    assert!(matches!(
        client_err(b"CONNECT {} x\r\n"),
        DecodeError::InvalidJson {
            category: serde_json::error::Category::Syntax,
            ..
        }
    ));
}

#[test]
fn ping_pong_both_ways() {
    assert_eq!(from_client(b"PING\r\n"), ClientOp::Ping);
    assert_eq!(from_client(b"PONG\r\n"), ClientOp::Pong);
    assert_eq!(from_server(b"PING\r\n"), ServerOp::Ping);
    assert_eq!(from_server(b"PONG\r\n"), ServerOp::Pong);
    // Like nats-server, anything up to the end of the line is ignored.
    assert_eq!(from_client(b"ping extra\r\n"), ClientOp::Ping);
    assert_eq!(from_server(b"+OK whatever\n"), ServerOp::Ok);
}

// -- every server op, as a client decodes it -------------------------------------

#[test]
fn msg_with_and_without_reply() {
    assert_eq!(from_server(b"MSG foo 1 5\r\nhello\r\n"), msg("foo", "1", None, "hello"));
    assert_eq!(
        from_server(b"MSG foo 1 reply.to 5\r\nhello\r\n"),
        msg("foo", "1", Some("reply.to"), "hello")
    );
}

#[test]
fn hmsg_and_no_responders() {
    let op = from_server(b"HMSG _INBOX.x.1 9 16 16\r\nNATS/1.0 503\r\n\r\n\r\n");
    let ServerOp::Message(m) = op else { panic!("{op:?}") };
    assert!(m.is_no_responders());
    assert_eq!(m.headers.as_ref().unwrap().status(), Some(StatusCode::NoResponders));
    assert_eq!(m.sid.as_u64(), Some(9));
    let op = from_server(b"HMSG foo 1 r 28 30\r\nNATS/1.0 404 No Messages\r\n\r\nhi\r\n");
    let ServerOp::Message(m) = op else { panic!("{op:?}") };
    assert!(!m.is_no_responders());
    assert_eq!(m.reply.as_deref(), Some(&b"r"[..]));
    let h = m.headers.unwrap();
    assert_eq!(h.status(), Some(StatusCode::NotFound));
    assert_eq!(h.description().unwrap(), "No Messages");
    assert_eq!(m.payload, "hi");
}

#[test]
fn info_json() {
    let op = from_server(
        b"INFO {\"server_id\":\"S\",\"version\":\"2.10.0\",\"headers\":true,\"max_payload\":1048576,\"nonce\":\"n\",\"connect_urls\":[\"a:1\"],\"new\":[]}\r\n",
    );
    let ServerOp::Info(info) = op else { panic!("{op:?}") };
    assert_eq!(info.server_id, "S");
    assert_eq!(info.max_payload, 1 << 20);
    assert_eq!(info.nonce.as_deref(), Some("n"));
    assert_eq!(info.connect_urls, ["a:1"]);
    assert!(matches!(
        server_err(b"INFO {\r\n"),
        DecodeError::InvalidJson { op: OpName::Info, .. }
    ));
}

#[test]
fn ok_and_err() {
    assert_eq!(from_server(b"+OK\r\n"), ServerOp::Ok);
    let ServerOp::Err(e) = from_server(b"-ERR 'Authorization Violation'\r\n") else {
        panic!()
    };
    assert_eq!(e.text(), "'Authorization Violation'");
    assert_eq!(e.message(), "Authorization Violation");
    assert_eq!(e.kind(), monocoque_proto::nats::ServerErrorKind::AuthorizationViolation);
    // Leading blanks are skipped, the rest is kept as it is (a CR inside included).
    let ServerOp::Err(e) = from_server(b"-err \t 'a \r b' \r\n") else {
        panic!()
    };
    assert_eq!(e.text(), "'a \r b' ");
    let ServerOp::Err(e) = from_server(b"-ERR \r\n") else {
        panic!()
    };
    assert_eq!(e.text(), "");
    assert_eq!(server_err(b"-ERR\r\n"), DecodeError::UnknownOp);
}

// -- parse rules ---------------------------------------------------------------

#[test]
fn op_names_are_case_insensitive() {
    assert_eq!(from_client(b"pub foo 1\r\nx\r\n"), publish("foo", None, "x"));
    assert_eq!(from_client(b"pUb foo 1\r\nx\r\n"), publish("foo", None, "x"));
    assert!(matches!(from_client(b"hPuB foo 0 1\r\nx\r\n"), ClientOp::Publish(_)));
    assert!(matches!(from_client(b"sUb foo 1\r\n"), ClientOp::Subscribe(_)));
    assert!(matches!(from_client(b"UnSuB 1\r\n"), ClientOp::Unsubscribe(_)));
    assert_eq!(from_client(b"pInG\r\n"), ClientOp::Ping);
    assert_eq!(from_server(b"msg foo 1 1\r\nx\r\n"), msg("foo", "1", None, "x"));
    assert!(matches!(from_server(b"hmsg foo 1 0 1\r\nx\r\n"), ServerOp::Message(_)));
    assert!(matches!(from_server(b"info {}\r\n"), ServerOp::Info(_)));
    assert_eq!(from_server(b"+ok\r\n"), ServerOp::Ok);
    assert_eq!(from_server(b"pOnG\r\n"), ServerOp::Pong);
}

#[test]
fn fields_are_separated_by_runs_of_spaces_and_tabs() {
    assert_eq!(
        from_client(b"PUB\t \tfoo  \t bar\t\t3 \t\r\nabc\r\n"),
        publish("foo", Some("bar"), "abc")
    );
    assert_eq!(
        from_server(b"MSG   foo\t1\t\t reply  3\r\nabc\r\n"),
        msg("foo", "1", Some("reply"), "abc")
    );
}

#[test]
fn optional_fields_are_told_apart_by_count() {
    assert_eq!(
        client_err(b"PUB foo\r\n"),
        DecodeError::WrongFieldCount {
            op: OpName::Pub,
            count: 1
        }
    );
    assert_eq!(
        client_err(b"PUB a b c 1\r\n"),
        DecodeError::WrongFieldCount {
            op: OpName::Pub,
            count: 4
        }
    );
    assert_eq!(
        client_err(b"PUB \r\n"),
        DecodeError::WrongFieldCount {
            op: OpName::Pub,
            count: 0
        }
    );
    assert_eq!(
        client_err(b"HPUB foo 1\r\n"),
        DecodeError::WrongFieldCount {
            op: OpName::Hpub,
            count: 2
        }
    );
    assert_eq!(
        client_err(b"HPUB a b c d e\r\n"),
        DecodeError::WrongFieldCount {
            op: OpName::Hpub,
            count: 5
        }
    );
    assert_eq!(
        client_err(b"SUB foo\r\n"),
        DecodeError::WrongFieldCount {
            op: OpName::Sub,
            count: 1
        }
    );
    assert_eq!(
        client_err(b"SUB a b c d\r\n"),
        DecodeError::WrongFieldCount {
            op: OpName::Sub,
            count: 4
        }
    );
    assert_eq!(
        client_err(b"UNSUB \r\n"),
        DecodeError::WrongFieldCount {
            op: OpName::Unsub,
            count: 0
        }
    );
    assert_eq!(
        client_err(b"UNSUB 1 2 3\r\n"),
        DecodeError::WrongFieldCount {
            op: OpName::Unsub,
            count: 3
        }
    );
    assert_eq!(
        server_err(b"MSG foo 1\r\n"),
        DecodeError::WrongFieldCount {
            op: OpName::Msg,
            count: 2
        }
    );
    assert_eq!(
        server_err(b"MSG a b c d e\r\n"),
        DecodeError::WrongFieldCount {
            op: OpName::Msg,
            count: 5
        }
    );
    assert_eq!(
        server_err(b"HMSG a 1 2\r\n"),
        DecodeError::WrongFieldCount {
            op: OpName::Hmsg,
            count: 3
        }
    );
    assert_eq!(
        server_err(b"HMSG a b c d e f g\r\n"),
        DecodeError::WrongFieldCount {
            op: OpName::Hmsg,
            count: 7
        }
    );
}

#[test]
fn bare_lf_ends_a_control_line() {
    assert_eq!(from_client(b"PUB foo 2\nhi\r\n"), publish("foo", None, "hi"));
    assert!(matches!(from_client(b"SUB foo 1\n"), ClientOp::Subscribe(_)));
    assert_eq!(from_client(b"PING\n"), ClientOp::Ping);
    assert_eq!(from_server(b"MSG foo 1 2\nhi\r\n"), msg("foo", "1", None, "hi"));
    assert!(matches!(from_server(b"INFO {}\n"), ServerOp::Info(_)));
    let ServerOp::Err(e) = from_server(b"-ERR 'x'\n") else {
        panic!()
    };
    assert_eq!(e.text(), "'x'");
}

#[test]
fn crlf_is_required_after_a_payload() {
    assert_eq!(client_err(b"PUB foo 2\r\nhi\n"), DecodeError::MissingPayloadCrlf);
    assert_eq!(client_err(b"PUB foo 2\r\nhix\r\n"), DecodeError::MissingPayloadCrlf);
    assert_eq!(client_err(b"PUB foo 2\r\nhi\rx"), DecodeError::MissingPayloadCrlf);
    assert_eq!(
        server_err(b"MSG foo 1 2\r\nhiPING\r\n"),
        DecodeError::MissingPayloadCrlf
    );
    // A wrong byte is an error as soon as it arrives, not when the next one does.
    assert_eq!(client_err(b"PUB foo 2\r\nhix"), DecodeError::MissingPayloadCrlf);
}

#[test]
fn cr_inside_a_field_is_rejected() {
    assert_eq!(client_err(b"PUB fo\ro 1\r\nx\r\n"), DecodeError::CarriageReturnInField);
    assert_eq!(client_err(b"PUB foo 1\r\r\nx\r\n"), DecodeError::CarriageReturnInField);
    assert_eq!(client_err(b"SUB foo \r 1\r\n"), DecodeError::CarriageReturnInField);
}

#[test]
fn unknown_ops_are_rejected_at_once() {
    // Without waiting for the end of the line.
    assert_eq!(client_err(b"X"), DecodeError::UnknownOp);
    assert_eq!(client_err(b"PUX"), DecodeError::UnknownOp);
    assert_eq!(client_err(b"PUB\r\n"), DecodeError::UnknownOp);
    assert_eq!(client_err(b"\r\n"), DecodeError::UnknownOp);
    assert_eq!(client_err(b"\n"), DecodeError::UnknownOp);
    assert_eq!(client_err(b" PING\r\n"), DecodeError::UnknownOp);
    // Each role accepts only what its peer sends.
    assert_eq!(client_err(b"MSG foo 1 1\r\nx\r\n"), DecodeError::UnknownOp);
    assert_eq!(client_err(b"INFO {}\r\n"), DecodeError::UnknownOp);
    assert_eq!(client_err(b"+OK\r\n"), DecodeError::UnknownOp);
    assert_eq!(server_err(b"PUB foo 1\r\nx\r\n"), DecodeError::UnknownOp);
    assert_eq!(server_err(b"CONNECT {}\r\n"), DecodeError::UnknownOp);
    assert_eq!(server_err(b"SUB foo 1\r\n"), DecodeError::UnknownOp);
    // A prefix of an op is not an error yet.
    needs_more_from_client(Limits::default(), b"CONNEC");
    needs_more_from_client(Limits::default(), b"p");
    needs_more_from_server(Limits::default(), b"-er");
}

#[test]
fn invalid_sizes() {
    assert_eq!(client_err(b"PUB foo -1\r\n"), DecodeError::InvalidSize);
    assert_eq!(client_err(b"PUB foo 1x\r\n"), DecodeError::InvalidSize);
    assert_eq!(client_err(b"PUB foo 0x10\r\n"), DecodeError::InvalidSize);
    assert_eq!(client_err(b"PUB foo 0000000001\r\n"), DecodeError::SizeTooLong);
    assert_eq!(client_err(b"HPUB foo x 1\r\n"), DecodeError::InvalidSize);
    assert_eq!(client_err(b"HPUB foo 1 x\r\n"), DecodeError::InvalidSize);
    assert_eq!(
        client_err(b"HPUB foo 3 2\r\n"),
        DecodeError::HeadersExceedTotal { headers: 3, total: 2 }
    );
    assert_eq!(server_err(b"MSG foo 1 99999999999\r\n"), DecodeError::SizeTooLong);
    assert_eq!(
        server_err(b"HMSG foo 1 5 4\r\n"),
        DecodeError::HeadersExceedTotal { headers: 5, total: 4 }
    );
    // Nine digits are fine.
    assert_eq!(from_client(b"PUB foo 000000001\r\nx\r\n"), publish("foo", None, "x"));
}

// -- limits --------------------------------------------------------------------

#[test]
fn control_line_limit() {
    let limits = Limits {
        max_control_line: 16,
        ..Limits::default()
    };
    // 16 bytes of line are fine, with either line ending.
    assert_eq!(client_ops(limits, b"PUB abcdefghij 0\r\n\r\n").unwrap().len(), 1);
    assert_eq!(client_ops(limits, b"PUB abcdefghij 0\n\r\n").unwrap().len(), 1);
    assert_eq!(
        client_ops(limits, b"PUB abcdefghijk 0\r\n\r\n"),
        Err(DecodeError::ControlLineTooLong { max: 16 })
    );
    // Without the end of the line: refused once 18 bytes (16 + a possible CR + one
    // more) are buffered.
    needs_more_from_client(limits, b"SUB abcdefghijklm");
    assert_eq!(
        client_ops(limits, b"SUB abcdefghijklmn"),
        Err(DecodeError::ControlLineTooLong { max: 16 })
    );
    assert_eq!(
        server_ops(limits, b"-ERR 'a long error'\r\n"),
        Err(DecodeError::ControlLineTooLong { max: 16 })
    );
    // PING with trailing bytes is a control line too.
    assert_eq!(
        client_ops(limits, b"PING 0123456789abc\r\n"),
        Err(DecodeError::ControlLineTooLong { max: 16 })
    );
    // INFO and CONNECT have their own limit.
    assert_eq!(
        server_ops(limits, b"INFO {\"server_id\":\"abcdef\"}\r\n")
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn json_line_limit() {
    let limits = Limits {
        max_json_line: 10,
        ..Limits::default()
    };
    assert_eq!(client_ops(limits, b"CONNECT {}\r\n").unwrap().len(), 1);
    needs_more_from_server(limits, b"INFO {\"a\":1");
    assert_eq!(
        client_ops(limits, b"CONNECT  {}\r\n"),
        Err(DecodeError::JsonLineTooLong {
            op: OpName::Connect,
            max: 10
        })
    );
    assert_eq!(
        server_ops(limits, b"INFO {\"a\":12"),
        Err(DecodeError::JsonLineTooLong {
            op: OpName::Info,
            max: 10
        })
    );
}

#[test]
fn payload_limit_is_checked_before_the_payload_arrives() {
    let limits = Limits {
        max_payload: 8,
        ..Limits::default()
    };
    assert_eq!(client_ops(limits, b"PUB foo 8\r\n12345678\r\n").unwrap().len(), 1);
    assert_eq!(
        client_ops(limits, b"PUB foo 9\r\n"),
        Err(DecodeError::PayloadTooLarge { size: 9, max: 8 })
    );
    // Headers count.
    assert_eq!(
        client_ops(limits, b"HPUB foo 4 9\r\n"),
        Err(DecodeError::PayloadTooLarge { size: 9, max: 8 })
    );
    assert_eq!(
        server_ops(limits, b"MSG foo 1 999999999\r\n"),
        Err(DecodeError::PayloadTooLarge {
            size: 999_999_999,
            max: 8
        })
    );
    assert_eq!(
        server_ops(limits, b"HMSG foo 1 0 9\r\n"),
        Err(DecodeError::PayloadTooLarge { size: 9, max: 8 })
    );
    let mut decoder = ClientFrameDecoder::new(limits);
    decoder.set_max_payload(1 << 20);
    assert_eq!(decoder.limits().max_payload, 1 << 20);
    decoder.set_max_payload(-1);
    assert_eq!(decoder.limits().max_payload, 1 << 20);
}

#[test]
fn the_client_ceiling_caps_the_servers_max_payload() {
    let mut decoder = ClientFrameDecoder::default();
    // The smaller of the two is in force, whichever side it comes from.
    assert_eq!(decoder.adopt_max_payload(1_000_000_000, 64 << 20), 64 << 20);
    assert_eq!(decoder.limits().max_payload, 64 << 20);
    assert_eq!(decoder.adopt_max_payload(8 << 20, 64 << 20), 8 << 20);
    // No announcement keeps the current limit, still capped.
    assert_eq!(decoder.adopt_max_payload(0, 64 << 20), 8 << 20);
    assert_eq!(decoder.adopt_max_payload(-1, 4 << 20), 4 << 20);
    // A MSG over the ceiling is refused on its control line.
    decoder.adopt_max_payload(1_000_000_000, 1024);
    assert_eq!(
        decoder.decode(b"MSG foo 1 999999999\r\n").unwrap_err(),
        DecodeError::PayloadTooLarge {
            size: 999_999_999,
            max: 1024
        }
    );
}

// -- resumption --------------------------------------------------------------------

#[test]
fn every_split_point_decodes_the_same() {
    let input: &[u8] = b"INFO {\"server_id\":\"x\"}\r\nMSG a 1 3\r\nabc\r\n+OK\r\nHMSG b 2 r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n-ERR 'x'\r\nPING\nPONG\r\nmsg c 3 0\n\r\n";
    let whole = server_ops(Limits::default(), input).unwrap();
    assert_eq!(whole.len(), 8);
    for cut in 0..=input.len() {
        // The reader's buffer holds the first part, then both.
        let mut decoder = ClientFrameDecoder::default();
        let (mut out, mut at) = (Vec::new(), 0);
        for end in [cut, input.len()] {
            while let Some((frame, len)) = decoder.decode(&input[at..end]).unwrap() {
                out.push(frame.to_op());
                at += len;
            }
        }
        assert_eq!(out, whole, "cut at {cut}");
    }
}

#[test]
fn a_frame_waiting_for_its_payload_says_how_long_it_is() {
    let mut decoder = ServerFrameDecoder::default();
    let mut buf = b"PUB foo 1000\r\n".to_vec();
    assert_eq!(decoder.decode(b"PUB foo 10"), Ok(None));
    // The line is incomplete: its length is not known yet.
    assert_eq!(decoder.needed(), None);
    assert_eq!(decoder.decode(&buf), Ok(None));
    assert_eq!(decoder.needed(), Some(14 + 1000 + 2));
    for _ in 0..1000 {
        buf.push(b'x');
        assert_eq!(decoder.decode(&buf), Ok(None));
        assert_eq!(decoder.needed(), Some(1016));
    }
    buf.push(b'\r');
    assert_eq!(decoder.decode(&buf), Ok(None));
    buf.push(b'\n');
    let Ok(Some((ClientFrame::Publish(p), 1016))) = decoder.decode(&buf) else {
        panic!()
    };
    assert_eq!(p.payload.len(), 1000);
    decoder.reset();
    assert_eq!(decoder.needed(), None);
}
