//! The WebSocket decoder targets: the opening request and the frame stream, each cut
//! by a seed byte, with a differential round trip for frames.

use bytes::Bytes;

use super::split::pieces;
use crate::chassis::SegmentedBuffer;
use crate::ws::frame::{encode_close, encode_frame};
use crate::ws::handshake::{parse_request, HandshakeConfig};
use crate::ws::{CloseCode, Frame, FrameDecoder, FrameError, Opcode, Role};

/// Fuzzes the server's opening-request parser.
///
/// Input layout: byte 0 holds options (bit 0: no subprotocol required; bit 1: a 64-byte
/// head limit), byte 1 seeds the cuts, the rest is what a client sends first.
///
/// Checks: no panic; fed as a receiver accumulates it (a parse after every piece), the
/// first answer that is not "need more" is the answer for the whole input; an accepted
/// request's head ends inside the input, its `Sec-WebSocket-Accept` is 28 base64
/// characters and its response is a `101`.
pub fn ws_handshake(data: &[u8]) {
    let options = data.first().copied().unwrap_or(0);
    let seed = data.get(1).copied().unwrap_or(0);
    let body = data.get(2..).unwrap_or_default();
    let mut config = HandshakeConfig::MQTT;
    if options & 1 != 0 {
        config.subprotocols = &[];
    }
    if options & 2 != 0 {
        config.max_head = 64;
    }
    let whole = parse_request(body, &config);
    let mut seen = 0;
    for piece in pieces(body, seed) {
        seen += piece.len();
        match parse_request(&body[..seen], &config) {
            Ok(None) => {}
            answer => {
                assert_eq!(answer, whole, "a prefix of {seen} bytes answered differently");
                break;
            }
        }
    }
    if let Ok(Some((accepted, used))) = whole {
        assert!(used <= body.len() && body[..used].ends_with(b"\r\n\r\n"));
        assert_eq!(accepted.accept_key().len(), 28);
        assert!(accepted.response().starts_with(b"HTTP/1.1 101 "));
        assert_eq!(accepted.subprotocol.is_some(), !config.subprotocols.is_empty());
    }
}

/// A decoded stream, with the pieces of data between two other frames joined.
#[derive(Debug, PartialEq)]
enum Item {
    Data { text: bool, payload: Vec<u8>, last: bool },
    Ping(Bytes),
    Pong(Bytes),
    Close(Option<(CloseCode, Bytes)>),
}

fn decode_pieces(role: Role, max: u64, parts: Vec<&[u8]>) -> (Vec<Item>, Option<FrameError>) {
    let mut decoder = FrameDecoder::new(role, max);
    let mut src = SegmentedBuffer::new();
    let mut items: Vec<Item> = Vec::new();
    for part in parts {
        src.push_slice(part);
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(frame)) => push(&mut items, frame),
                Ok(None) => break,
                Err(e) => return (items, Some(e)),
            }
        }
    }
    (items, None)
}

fn push(items: &mut Vec<Item>, frame: Frame) {
    match frame {
        Frame::Data { text, payload, last } => {
            if let Some(Item::Data {
                payload: joined,
                last: done,
                ..
            }) = items.last_mut()
            {
                if !*done {
                    joined.extend_from_slice(&payload);
                    *done = last;
                    return;
                }
            }
            items.push(Item::Data {
                text,
                payload: payload.to_vec(),
                last,
            });
        }
        Frame::Ping(p) => items.push(Item::Ping(p)),
        Frame::Pong(p) => items.push(Item::Pong(p)),
        Frame::Close(c) => items.push(Item::Close(c.map(|c| (c.code, c.reason)))),
    }
}

/// Encodes `items` as the peer of `role` would (masked if the peer is a client).
fn encode(role: Role, items: &[Item]) -> Vec<u8> {
    let mask = (role == Role::Server).then_some([0x12, 0x34, 0x56, 0x78]);
    let mut out = Vec::new();
    let mut in_message = false;
    for item in items {
        match item {
            Item::Data { text, payload, last } => {
                let opcode = match (in_message, text) {
                    (true, _) => Opcode::Continuation,
                    (false, true) => Opcode::Text,
                    (false, false) => Opcode::Binary,
                };
                encode_frame(*last, opcode, payload, mask, &mut out);
                in_message = !last;
            }
            Item::Ping(p) => encode_frame(true, Opcode::Ping, p, mask, &mut out),
            Item::Pong(p) => encode_frame(true, Opcode::Pong, p, mask, &mut out),
            Item::Close(None) => encode_frame(true, Opcode::Close, b"", mask, &mut out),
            Item::Close(Some((code, reason))) => {
                let reason = std::str::from_utf8(reason).expect("a decoded reason is UTF-8");
                encode_close(*code, reason, mask, &mut out);
            }
        }
    }
    out
}

/// Fuzzes the frame decoder.
///
/// Input layout: byte 0 holds options (bit 0: decode as a client, what servers send;
/// bit 1: a 64-byte frame limit), byte 1 seeds the cuts, the rest is the stream.
///
/// Checks: no panic; the stream cut into pieces decodes to the same frames (data joined
/// between other frames) and the same error as in one piece; a data frame over the
/// limit is an error, never a payload; what decoded re-encodes (as the peer would) and
/// decodes back identical.
pub fn ws_frames(data: &[u8]) {
    let options = data.first().copied().unwrap_or(0);
    let seed = data.get(1).copied().unwrap_or(0);
    let body = data.get(2..).unwrap_or_default();
    let role = if options & 1 != 0 { Role::Client } else { Role::Server };
    let max = if options & 2 != 0 { 64 } else { 1 << 20 };

    let (items, end) = decode_pieces(role, max, vec![body]);
    let (split_items, split_end) = decode_pieces(role, max, pieces(body, seed));
    assert_eq!(split_end, end, "segment boundaries changed how decoding ended");
    assert_eq!(split_items, items, "segment boundaries changed the frames");
    if let Some(FrameError::TooLarge { len, max: m }) = &end {
        assert!(*len > *m && *m == max);
    }

    let wire = encode(role, &items);
    let (again, again_end) = decode_pieces(role, u64::MAX >> 1, vec![&wire]);
    assert_eq!(again_end, None, "re-encoded frames do not decode");
    assert_eq!(again, items, "re-encoded frames decode differently");
}

/// Opening requests: a browser's, paho's, MQTT 3.1's, and refusals of each kind.
pub fn ws_handshake_seeds() -> Vec<Vec<u8>> {
    let good = "GET /mqtt HTTP/1.1\r\nHost: localhost:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let browser = "GET /mqtt HTTP/1.1\r\nHost: example.com\r\nConnection: keep-alive, Upgrade\r\nPragma: no-cache\r\nUser-Agent: Mozilla/5.0\r\nUpgrade: websocket\r\nOrigin: http://example.com\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
    let mut seeds: Vec<Vec<u8>> = vec![
        good.into(),
        browser.into(),
        [good.as_bytes(), b"\x82\x80\x01\x02\x03\x04"].concat(),
    ];
    for (from, to) in [
        ("Protocol: mqtt", "Protocol: mqttv3.1"),
        ("Protocol: mqtt", "Protocol: chat, superchat"),
        ("Version: 13", "Version: 8, 13"),
        ("GET", "POST"),
        ("HTTP/1.1\r\nHost", "HTTP/1.0\r\nHost"),
        ("Upgrade: websocket\r\n", ""),
        ("Connection: Upgrade", "Connection: close"),
        ("dGhlIHNhbXBsZSBub25jZQ==", "short"),
        ("Host: localhost:8080\r\n", ""),
        ("Upgrade: websocket\r\n", "Upgrade: websocket\n"),
        ("Host: localhost", " Host: localhost"),
    ] {
        seeds.push(good.replace(from, to).into_bytes());
    }
    seeds
}

/// Frame streams, as a server receives them (masked): every opcode, the three length
/// forms, fragmentation with a ping inside, closes, and one broken frame of each kind.
pub fn ws_frames_seeds() -> Vec<Vec<u8>> {
    let key = Some([0x37, 0xfa, 0x21, 0x3d]);
    let frame = |fin: bool, op: Opcode, payload: &[u8]| {
        let mut out = Vec::new();
        encode_frame(fin, op, payload, key, &mut out);
        out
    };
    let mut session = Vec::new();
    session.extend(frame(
        true,
        Opcode::Binary,
        b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01a",
    ));
    session.extend(frame(false, Opcode::Binary, b"\xc0"));
    session.extend(frame(true, Opcode::Ping, b"ping"));
    session.extend(frame(true, Opcode::Continuation, b"\x00"));
    session.extend(frame(true, Opcode::Binary, &[7u8; 300]));
    session.extend(frame(true, Opcode::Binary, &[9u8; 70_000]));
    session.extend(frame(true, Opcode::Pong, b""));
    session.extend(frame(true, Opcode::Text, "héllo".as_bytes()));
    session.extend(frame(true, Opcode::Close, b"\x03\xe8bye"));
    let mut seeds = vec![session];
    seeds.push(frame(true, Opcode::Close, b""));
    seeds.push(vec![0x82, 0x02, 0x10, 0x00]); // unmasked
    seeds.push(vec![0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0]); // 2^62
    seeds.push(vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1]); // high bit
    seeds.push(vec![0x82, 0xFE, 0x00, 0x10, 1, 2, 3, 4]); // not the shortest form
    seeds.push(vec![0xC2, 0x80, 1, 2, 3, 4]); // RSV1
    seeds.push(vec![0x83, 0x80, 1, 2, 3, 4]); // reserved opcode
    seeds.push(frame(false, Opcode::Ping, b"")); // fragmented control
    seeds.push(frame(true, Opcode::Continuation, b"x")); // orphan continuation
    seeds.push([frame(false, Opcode::Binary, b"a"), frame(true, Opcode::Binary, b"b")].concat());
    seeds.push(frame(true, Opcode::Close, b"\x03"));
    seeds.push(frame(true, Opcode::Close, b"\x03\xed"));
    seeds.push(frame(true, Opcode::Close, b"\x03\xe8\xff"));
    // What a server sends, for the client side (option bit 0).
    let mut server = Vec::new();
    encode_frame(true, Opcode::Binary, b"\x20\x02\x00\x00", None, &mut server);
    encode_close(CloseCode::PROTOCOL_ERROR, "", None, &mut server);
    seeds.push(server);
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::plain;

    #[test]
    fn seeds_pass_their_targets_in_every_mode() {
        for seed in ws_handshake_seeds() {
            for options in 0..4u8 {
                for split in [0u8, 1, 9, 77] {
                    ws_handshake(&[&[options, split][..], &seed].concat());
                }
            }
        }
        for seed in ws_frames_seeds() {
            for options in 0..4u8 {
                for split in [0u8, 1, 9, 77] {
                    ws_frames(&[&[options, split][..], &seed].concat());
                }
            }
        }
        assert_eq!(plain(b"x"), b"\0\0x");
    }
}
