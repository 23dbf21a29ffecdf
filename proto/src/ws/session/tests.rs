//! [`WsSession`] around the MQTT broker's [`Connection`], on bytes and instants: a
//! client's frames in, the server's response and frames decoded back.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::*;
use crate::mqtt::broker::{Connection, ConnectionConfig, Event};
use crate::mqtt::{Codec, ConnAck, Connect, Packet, Properties, ProtocolVersion, ReasonCode};
use crate::ws::frame::{encode_frame, Close};

const KEY: [u8; 4] = [1, 2, 3, 4];
const REQUEST: &[u8] = b"GET /mqtt HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Version: 13\r\n\r\n";

fn session(now: Instant) -> WsSession<Connection> {
    WsSession::new(
        Connection::new(ConnectionConfig::default(), now),
        WsConfig::mqtt(1 << 20),
    )
}

fn mqtt(packet: Packet) -> Vec<u8> {
    let mut codec = Codec::client(ProtocolVersion::V5);
    let mut out = IoArena::new();
    codec.encode(&packet, &mut out).expect("encodes");
    out.to_vec()
}

fn connect() -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 0,
        properties: Properties::default(),
        client_id: Bytes::from_static(b"ws"),
        will: None,
        username: None,
        password: None,
    }))
}

fn frame(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(fin, opcode, payload, Some(KEY), &mut out);
    out
}

/// Everything the session sent: the HTTP response head, then the frames decoded.
fn sent(s: &mut WsSession<Connection>) -> (String, Vec<Frame>) {
    let bytes = s.poll_transmit().map(|a| a.to_vec()).unwrap_or_default();
    if let Some(a) = s.poll_transmit() {
        let n = a.len();
        a.advance(n);
    }
    let (head, rest) = match bytes.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) if bytes.starts_with(b"HTTP/") => (&bytes[..i + 4], &bytes[i + 4..]),
        _ => (&bytes[..0], &bytes[..]),
    };
    let mut d = FrameDecoder::new(Role::Client, u64::MAX >> 1);
    let mut src = SegmentedBuffer::new();
    src.push_slice(rest);
    let mut frames = Vec::new();
    while let Some(f) = d.decode(&mut src).expect("the server's frames decode") {
        frames.push(f);
    }
    assert!(src.is_empty(), "a partial frame was sent");
    (String::from_utf8_lossy(head).into_owned(), frames)
}

fn close_frame(code: CloseCode) -> Frame {
    Frame::Close(Some(Close {
        code,
        reason: Bytes::new(),
    }))
}

fn open(now: Instant) -> WsSession<Connection> {
    let mut s = session(now);
    s.handle_input(Bytes::from_static(REQUEST), now);
    let (head, frames) = sent(&mut s);
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(frames.is_empty());
    assert!(s.is_open());
    s
}

/// MQTT packets span frames and frames hold several packets ([MQTT-6.0.0-2]): a CONNECT
/// cut over three frames (two of them fragments of one message), then a PINGREQ in the
/// same frame as the CONNECT's last bytes.
#[test]
fn packets_and_frames_do_not_align() {
    let now = Instant::now();
    let mut s = session(now);
    let wire = mqtt(connect());
    let ping = mqtt(Packet::PingReq);
    let mut input = REQUEST.to_vec();
    input.extend(frame(false, Opcode::Binary, &wire[..3]));
    input.extend(frame(true, Opcode::Continuation, &wire[3..5]));
    input.extend(frame(true, Opcode::Binary, &[&wire[5..], &ping[..]].concat()));
    // Byte by byte: the handshake and the frames cut everywhere.
    for b in input {
        s.handle_input(Bytes::copy_from_slice(&[b]), now);
    }
    match s.poll_event() {
        Some(Event::Connect(c)) => assert_eq!(&c.client_id[..], b"ws"),
        other => panic!("{other:?}"),
    }
    s.inner_mut().accept(
        ConnAck {
            session_present: false,
            code: ReasonCode::Success,
            properties: Default::default(),
        },
        0,
        now,
    );
    let (head, frames) = sent(&mut s);
    assert!(head.contains("Sec-WebSocket-Protocol: mqtt\r\n"), "{head}");
    // One binary frame: the CONNACK and the PINGRESP the accept released.
    let [Frame::Data {
        text: false,
        payload,
        last: true,
    }] = &frames[..]
    else {
        panic!("{frames:?}");
    };
    let mut codec = Codec::client(ProtocolVersion::V5);
    let mut src = SegmentedBuffer::from(payload.clone());
    assert!(matches!(codec.decode(&mut src), Ok(Some(Packet::ConnAck(_)))));
    assert!(matches!(codec.decode(&mut src), Ok(Some(Packet::PingResp))));
}

#[test]
fn pings_are_answered_and_a_close_is_echoed() {
    let now = Instant::now();
    let mut s = open(now);
    let mut input = frame(true, Opcode::Ping, b"hi");
    input.extend(frame(true, Opcode::Pong, b"unsolicited"));
    input.extend(frame(true, Opcode::Close, &3001u16.to_be_bytes()));
    s.handle_input(Bytes::from(input), now);
    let (_, frames) = sent(&mut s);
    assert_eq!(
        frames,
        vec![Frame::Pong(Bytes::from_static(b"hi")), close_frame(CloseCode(3001))]
    );
    assert!(s.is_closed());
    // The stream ended without DISCONNECT: the connection reports it, will included.
    assert_eq!(s.poll_event(), Some(Event::Closed { publish_will: true }));
}

/// Section 5.1: an unmasked client frame closes with 1002; section 10.4 / 7.4.1: an
/// oversized one with 1009, from its header.
#[test]
fn protocol_errors_close_with_their_status() {
    let now = Instant::now();
    let cases: Vec<(Vec<u8>, CloseCode)> = vec![
        (vec![0x82, 0x02, 0x10, 0x00], CloseCode::PROTOCOL_ERROR),
        (
            vec![0x82, 0xFF, 0x00, 0x00, 0x00, 0x19, 0x00, 0x00, 0x00, 0x00],
            CloseCode::MESSAGE_TOO_BIG,
        ),
        (frame(true, Opcode::Text, b"\x10"), CloseCode::UNSUPPORTED_DATA),
        (vec![0xC2, 0x80, 0, 0, 0, 0], CloseCode::PROTOCOL_ERROR),
    ];
    for (wire, code) in cases {
        let mut s = open(now);
        s.handle_input(Bytes::from(wire), now);
        let (_, frames) = sent(&mut s);
        assert_eq!(frames, vec![close_frame(code)]);
        assert!(s.is_closed() && s.error().is_some());
        assert_eq!(s.poll_event(), Some(Event::Closed { publish_will: true }));
        // Nothing more is read or sent.
        s.handle_input(Bytes::from(frame(true, Opcode::Ping, b"")), now);
        assert!(s.poll_transmit().is_none());
        assert!(!s.wants_read());
    }
}

#[test]
fn refused_handshakes_get_400_or_426_and_close() {
    let now = Instant::now();
    let text = String::from_utf8_lossy(REQUEST);
    for (bad, status) in [
        (text.replace("Version: 13", "Version: 8"), "426"),
        (text.replace("Protocol: mqtt", "Protocol: chat"), "400"),
        (text.replace("GET", "PUT"), "400"),
    ] {
        let mut s = session(now);
        s.handle_input(Bytes::from(bad.into_bytes()), now);
        let (head, frames) = sent(&mut s);
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(frames.is_empty());
        assert!(s.is_closed());
        assert!(matches!(s.error(), Some(WsError::Handshake(_))));
    }
}

/// The MQTT connection's connect deadline bounds a client that never finishes the
/// upgrade: the socket goes, with nothing sent.
#[test]
fn a_stalled_handshake_ends_at_the_connect_deadline() {
    let now = Instant::now();
    let mut s = session(now);
    s.handle_input(Bytes::from_static(&REQUEST[..20]), now);
    let deadline = s.poll_timeout().expect("a deadline");
    assert!(deadline <= now + Duration::from_secs(10));
    s.handle_timeout(deadline);
    assert!(s.is_closed());
    assert!(s.poll_transmit().is_none());
}

/// When the inner connection closes (a takeover), its last bytes are framed, then a
/// close frame with 1000.
#[test]
fn an_inner_close_sends_its_bytes_then_close() {
    let now = Instant::now();
    let mut s = open(now);
    s.handle_input(Bytes::from(frame(true, Opcode::Binary, &mqtt(connect()))), now);
    assert!(matches!(s.poll_event(), Some(Event::Connect(_))));
    s.inner_mut().accept(
        ConnAck {
            session_present: false,
            code: ReasonCode::Success,
            properties: Default::default(),
        },
        0,
        now,
    );
    s.inner_mut().disconnect(ReasonCode::SessionTakenOver);
    assert!(s.is_closed());
    let (_, frames) = sent(&mut s);
    assert_eq!(frames.len(), 2, "{frames:?}");
    assert!(matches!(&frames[0], Frame::Data { text: false, .. }));
    assert_eq!(frames[1], close_frame(CloseCode::NORMAL));
}
