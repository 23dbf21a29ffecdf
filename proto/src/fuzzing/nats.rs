//! The NATS decoder targets, one per side: each side's frame decoder
//! ([`ClientFrameDecoder`](crate::nats::ClientFrameDecoder),
//! [`ServerFrameDecoder`](crate::nats::ServerFrameDecoder)) under split invariance, its
//! slices checked against its buffer, and a differential round trip through the peer's
//! encoder.

use std::fmt::Debug;
use std::ops::Range;

use super::split::pieces;
use crate::chassis::IoArena;
use crate::nats::{
    ClientFrame, ClientOp, ClientSide, DecodeError, EncodeError, FrameDecoder, FrameRole, Limits, ServerFrame,
    ServerOp, ServerSide,
};

/// Fuzzes [`ClientFrameDecoder`](crate::nats::ClientFrameDecoder): what a server sends
/// (`INFO`, `MSG`, `HMSG`, `+OK`, `-ERR`, `PING`, `PONG`).
///
/// Input layout: byte 0 holds options, byte 1 seeds where the stream is cut into the
/// pieces a reader receives, the rest is the stream. Options: bit 0 small limits (so
/// every limit error is reachable), bit 1 re-encode into an arena that shares payloads
/// of 8 bytes or more as segments of their own (and receive those segments as pieces).
///
/// The decoder reads as a reader with one buffer does: each piece is appended to the
/// buffer, every complete frame is decoded from its front and its bytes dropped.
/// Checks, panicking on the first that fails:
/// 1. decoding never panics, and stops at the first `Err`;
/// 2. the stream cut into pieces (by the seed) decodes to exactly what the stream in one
///    piece decodes to: the same ops and the same error, or the same bytes left waiting;
/// 3. a frame's length is within the buffer, its slices lie inside the frame, in wire
///    order, and asked again with the same bytes the decoder answers the same;
/// 4. a stream whose first byte starts no server op produces nothing and is rejected at
///    once with `UnknownOp`;
/// 5. every decoded op encodes, and the encoding, cut into pieces, decodes back to an
///    identical op and nothing else;
/// 6. every decoded op other than `INFO` (whose JSON is re-serialised in full) encodes
///    within the limits it was decoded under: the encoder never lengthens a line.
pub fn nats_client_decode(data: &[u8]) {
    decode_target::<ClientSide>(data);
}

/// Fuzzes [`ServerFrameDecoder`](crate::nats::ServerFrameDecoder): what a client sends
/// (`CONNECT`, `PUB`, `HPUB`, `SUB`, `UNSUB`, `PING`, `PONG`). Input layout and checks
/// as [`nats_client_decode`] (`CONNECT` is exempt from check 6).
pub fn nats_server_decode(data: &[u8]) {
    decode_target::<ServerSide>(data);
}

/// One side of a connection, seen from the fuzzer: what its frame decoder reads, as
/// owned ops, and how its peer encodes them.
trait Peer: FrameRole {
    /// What this side receives, owned.
    type Op: PartialEq + Debug;
    /// Bytes that can start an op this side decodes.
    const FIRST: &'static [u8];
    /// `frame` (decoded from `buf`) as an op, and where its slices lie in `buf`, in
    /// wire order.
    fn parts(buf: &[u8], frame: &Self::Frame<'_>) -> (Self::Op, Vec<Range<usize>>);
    /// Encodes `op` as the peer would send it.
    fn peer_encode(limits: &Limits, op: &Self::Op, dst: &mut IoArena) -> Result<(), EncodeError>;
    /// Whether `op` carries JSON that re-serialises differently.
    fn is_json(op: &Self::Op) -> bool;
}

impl Peer for ClientSide {
    type Op = ServerOp;
    const FIRST: &'static [u8] = b"MmHhPpIi+-";

    fn parts(buf: &[u8], frame: &ServerFrame<'_>) -> (ServerOp, Vec<Range<usize>>) {
        let parts = match frame {
            ServerFrame::Message(m) => [Some(m.subject), Some(m.sid), m.reply, m.headers, Some(m.payload)].to_vec(),
            ServerFrame::Err(text) => vec![Some(*text)],
            ServerFrame::Info(_) | ServerFrame::Ok | ServerFrame::Ping | ServerFrame::Pong => Vec::new(),
        };
        (
            frame.to_op(),
            parts.into_iter().flatten().map(|p| range_in(buf, p)).collect(),
        )
    }

    fn peer_encode(limits: &Limits, op: &ServerOp, dst: &mut IoArena) -> Result<(), EncodeError> {
        op.encode(limits, dst)
    }

    fn is_json(op: &ServerOp) -> bool {
        matches!(op, ServerOp::Info(_))
    }
}

impl Peer for ServerSide {
    type Op = ClientOp;
    const FIRST: &'static [u8] = b"PpHhSsUuCc";

    fn parts(buf: &[u8], frame: &ClientFrame<'_>) -> (ClientOp, Vec<Range<usize>>) {
        let parts = match frame {
            ClientFrame::Publish(p) => [Some(p.subject), p.reply, p.headers, Some(p.payload)].to_vec(),
            ClientFrame::Subscribe(s) => [Some(s.subject), s.queue, Some(s.sid)].to_vec(),
            ClientFrame::Unsubscribe(u) => vec![Some(u.sid)],
            ClientFrame::Connect(_) | ClientFrame::Ping | ClientFrame::Pong => Vec::new(),
        };
        (
            frame.to_op(),
            parts.into_iter().flatten().map(|p| range_in(buf, p)).collect(),
        )
    }

    fn peer_encode(limits: &Limits, op: &ClientOp, dst: &mut IoArena) -> Result<(), EncodeError> {
        op.encode(limits, dst)
    }

    fn is_json(op: &ClientOp) -> bool {
        matches!(op, ClientOp::Connect(_))
    }
}

/// Where `part` lies in `buf`; panics when it is not inside it.
fn range_in(buf: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(buf.as_ptr() as usize);
    assert!(
        start <= buf.len() && part.len() <= buf.len() - start,
        "a slice of a frame lies outside its buffer"
    );
    start..start + part.len()
}

/// How decoding a whole stream ended.
#[derive(Debug, PartialEq)]
enum End {
    /// All input was used or waits for more: `left` bytes of an incomplete frame.
    Waiting { left: usize },
    /// The stream was rejected.
    Error(DecodeError),
}

const DONE: End = End::Waiting { left: 0 };

/// Limits small enough for the fuzzer to reach each one.
const SMALL: Limits = Limits {
    max_control_line: 32,
    max_json_line: 96,
    max_payload: 64,
};

/// Limits large enough for any re-encoded op the fuzzer can produce.
const LARGE: Limits = Limits {
    max_control_line: 1 << 20,
    max_json_line: 1 << 20,
    max_payload: 1 << 20,
};

fn decode_target<R: Peer>(data: &[u8]) {
    let options = data.first().copied().unwrap_or(0);
    let seed = data.get(1).copied().unwrap_or(0);
    let body = data.get(2..).unwrap_or_default();
    let limits = if options & 1 != 0 { SMALL } else { Limits::default() };

    let (ops, end) = decode_pieces::<R>(limits, vec![body]);
    let (split_ops, split_end) = decode_pieces::<R>(limits, pieces(body, seed));
    assert_eq!(split_end, end, "the cuts changed how decoding ended");
    assert_eq!(split_ops, ops, "the cuts changed the ops");

    if let Some(&first) = body.first() {
        if !R::FIRST.contains(&first) {
            assert!(ops.is_empty(), "a stream starting with 0x{first:02x} produced an op");
            assert_eq!(
                end,
                End::Error(DecodeError::UnknownOp),
                "0x{first:02x} started a stream"
            );
        }
    }

    let share = if options & 2 != 0 { 8 } else { usize::MAX };
    for op in &ops {
        let mut arena = IoArena::with_share_threshold(share);
        R::peer_encode(&LARGE, op, &mut arena).unwrap_or_else(|e| panic!("decoded op does not encode ({e}): {op:?}"));
        arena.seal();
        let wire = arena.to_vec();
        let segments: Vec<&[u8]> = if options & 2 != 0 {
            arena.chunks().collect()
        } else {
            pieces(&wire, seed)
        };
        let (again, end) = decode_pieces::<R>(LARGE, segments);
        assert_eq!(end, DONE, "re-encoded {op:?} as {wire:?}");
        assert_eq!(again.len(), 1, "re-encoded {op:?} as {wire:?}, got {again:?}");
        assert_eq!(&again[0], op, "round trip changed the op");

        if !R::is_json(op) {
            let mut arena = IoArena::new();
            R::peer_encode(&limits, op, &mut arena)
                .unwrap_or_else(|e| panic!("{op:?} decoded within {limits:?} but does not encode within them: {e}"));
        }
    }
}

/// Appends `pieces` one by one to a buffer, decoding every complete frame from its
/// front after each and dropping the frame's bytes; checks each frame against the
/// buffer it came from (check 3).
fn decode_pieces<R: Peer>(limits: Limits, pieces: Vec<&[u8]>) -> (Vec<R::Op>, End) {
    let mut decoder = FrameDecoder::<R>::new(limits);
    let mut buf = Vec::new();
    let mut ops = Vec::new();
    for piece in pieces {
        buf.extend_from_slice(piece);
        loop {
            // Compared as ops and ranges: the frames borrow `buf`.
            let mut view = || match decoder.decode(&buf) {
                Ok(Some((frame, len))) => {
                    let (op, ranges) = R::parts(&buf, &frame);
                    Ok(Some((op, len, ranges)))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(e),
            };
            let (decoded, again) = (view(), view());
            assert_eq!(
                again, decoded,
                "asked again with the same bytes, the decoder answered differently"
            );
            match decoded {
                Ok(Some((op, len, ranges))) => {
                    assert!(len > 0 && len <= buf.len(), "a frame of {len} bytes in {}", buf.len());
                    let mut at = 0;
                    for r in ranges {
                        assert!(r.start >= at && r.end <= len, "slices out of order or past the frame");
                        at = r.end;
                    }
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

/// A real nats-server 2.10 `INFO`, as the seeds use it.
const INFO: &[u8] = br#"INFO {"server_id":"NCXR2HZ3NUT5JMPWJDJQ4YAKDI7XQBSNNUIBBLDSVLXGXRLMFZKQ6UEY","server_name":"n1","version":"2.10.16","proto":1,"git_commit":"80bc9a0","go":"go1.22.3","host":"0.0.0.0","port":4222,"headers":true,"max_payload":1048576,"jetstream":true,"client_id":7,"client_ip":"127.0.0.1","connect_urls":["10.0.0.2:4222","10.0.0.3:4222"]}"#;

/// What nats.go sends first.
const CONNECT: &[u8] = br#"CONNECT {"verbose":false,"pedantic":false,"tls_required":false,"name":"","lang":"go","version":"1.31.0","protocol":1,"echo":true,"headers":true,"no_responders":true}"#;

fn line(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// `op` (`HMSG subject sid [reply]` or `HPUB subject [reply]`) with the sizes of
/// `headers` and `payload` filled in, then both.
fn with_headers(op: &str, headers: &[u8], payload: &[u8]) -> Vec<u8> {
    let total = headers.len() + payload.len();
    let mut out = format!("{op} {} {total}\r\n", headers.len()).into_bytes();
    out.extend_from_slice(headers);
    out.extend_from_slice(payload);
    out.extend_from_slice(b"\r\n");
    out
}

/// The seed streams of [`nats_client_decode`] (what servers send), without header bytes.
pub fn nats_client_seeds() -> Vec<Vec<u8>> {
    let no_responders = with_headers("HMSG _INBOX.Ab1.1 1", b"NATS/1.0 503\r\n\r\n", b"");
    let mut seeds = vec![
        line(&[INFO, b"\r\n"]),
        line(&[INFO, b"\r\nPING\r\n"]),
        b"INFO {\"server_id\":\"S\",\"nonce\":\"n0nce-_\",\"auth_required\":true,\"ldm\":true}\r\n".to_vec(),
        b"INFO{}\n".to_vec(),
        b"PING\r\n".to_vec(),
        b"PONG\r\n".to_vec(),
        b"+OK\r\n".to_vec(),
        b"-ERR 'Unknown Protocol Operation'\r\n".to_vec(),
        b"-ERR 'Authorization Violation'\r\n".to_vec(),
        b"-ERR 'Stale Connection'\r\n".to_vec(),
        b"-ERR 'Maximum Payload Violation'\r\n".to_vec(),
        b"-ERR 'Permissions Violation for Publish to \"secret\"'\r\n".to_vec(),
        b"-ERR 'Slow Consumer'\r\n".to_vec(),
        b"MSG foo.bar 1 16\r\n0123456789abcdef\r\n".to_vec(),
        b"MSG foo.bar 9 _INBOX.Ab1.2 5\r\nhello\r\n".to_vec(),
        b"MSG foo 1 0\r\n\r\n".to_vec(),
        b"msg\tfoo  1\t\t007\nabcdefg\r\n".to_vec(),
        no_responders.clone(),
        with_headers("HMSG foo 2 r", b"NATS/1.0\r\nA: 1\r\nNats-Msg-Id: x\r\n\r\n", b"hello"),
        with_headers(
            "HMSG $JS.FC.x 3 $JS.FC.r",
            b"NATS/1.0 100 FlowControl Request\r\nNats-Consumer: c\r\n\r\n",
            b"",
        ),
        with_headers("HMSG _INBOX.x 4", b"NATS/1.0 404 No Messages\r\n\r\n", b""),
        with_headers("HMSG _INBOX.x 4", b"NATS/1.0 408 Request Timeout\r\n\r\n", b""),
        with_headers("HMSG _INBOX.x 4", b"NATS/1.0 409 Consumer Deleted\r\n\r\n", b""),
        b"HMSG foo 5 0 3\r\nabc\r\n".to_vec(),
        b"MSG foo 1 999999999\r\n".to_vec(),
        b"MSG foo 1 1000000000\r\n".to_vec(),
        b"HMSG foo 1 5 4\r\n".to_vec(),
        b"MSG foo 1 2\r\nabc\r\n".to_vec(),
    ];
    let mut pipeline = line(&[INFO, b"\r\n+OK\r\nPING\r\n"]);
    for i in 0..20 {
        pipeline.extend_from_slice(format!("MSG orders.{i} {} 3\r\nabc\r\n", i % 3).as_bytes());
        if i % 5 == 0 {
            pipeline.extend_from_slice(&no_responders);
        }
    }
    seeds.push(pipeline);
    seeds
}

/// The seed streams of [`nats_server_decode`] (what clients send), without header bytes.
pub fn nats_server_seeds() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        line(&[CONNECT, b"\r\n"]),
        line(&[CONNECT, b"\r\nPING\r\n"]),
        b"CONNECT {\"verbose\":true,\"user\":\"derek\",\"pass\":\"s3cr3t\",\"name\":\"app\"}\r\n".to_vec(),
        b"CONNECT {\"auth_token\":\"t0k3n\",\"echo\":false}\r\n".to_vec(),
        b"CONNECT {\"nkey\":\"UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4\",\"sig\":\"PXoWU7zWAMt75FY8xXnpWhKkqxFU8QJFgVaW5oLFAmPSpsbNvA\"}\r\n".to_vec(),
        b"CONNECT {\"jwt\":\"eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.c2ln\",\"sig\":\"c2ln\",\"protocol\":1}\r\n".to_vec(),
        b"connect{}\n".to_vec(),
        b"PING\r\n".to_vec(),
        b"PONG\r\n".to_vec(),
        b"PUB foo.bar 16\r\n0123456789abcdef\r\n".to_vec(),
        b"PUB foo.bar _INBOX.Ab1.1 5\r\nhello\r\n".to_vec(),
        b"PUB foo 0\r\n\r\n".to_vec(),
        b"pub\tfoo   7\n\r\n\r\n\r\nx\r\n".to_vec(),
        with_headers("HPUB foo", b"NATS/1.0\r\n\r\n", b""),
        with_headers("HPUB foo.bar _INBOX.Ab1.2", b"NATS/1.0\r\nA: 1\r\nNats-Msg-Id: x\r\n\r\n", b"hello"),
        b"HPUB foo 0 3\r\nabc\r\n".to_vec(),
        b"SUB foo.* 1\r\n".to_vec(),
        b"SUB foo.> workers 2\r\n".to_vec(),
        b"sub _INBOX.Ab1.* 3\n".to_vec(),
        b"UNSUB 1\r\n".to_vec(),
        b"UNSUB 2 10\r\n".to_vec(),
        b"PUB foo 1048577\r\n".to_vec(),
        b"PUB foo 1234567890\r\n".to_vec(),
        b"HPUB foo 3 2\r\n".to_vec(),
        b"PUB foo bar baz 1\r\n".to_vec(),
        b"SUB foo\r\n".to_vec(),
    ];
    let mut pipeline = line(&[CONNECT, b"\r\nPING\r\nSUB _INBOX.Ab1.* 1\r\n"]);
    for i in 0..20 {
        pipeline.extend_from_slice(format!("PUB svc.{i} _INBOX.Ab1.{i} 3\r\nabc\r\n").as_bytes());
        if i % 7 == 0 {
            pipeline.extend_from_slice(&with_headers("HPUB svc", b"NATS/1.0\r\nA: b\r\n\r\n", b"xyz"));
        }
    }
    pipeline.extend_from_slice(b"UNSUB 1\r\n");
    seeds.push(pipeline);
    seeds
}

/// The plain form of a seed stream: both header bytes zero (default limits, one
/// segment).
pub fn plain(stream: &[u8]) -> Vec<u8> {
    [&[0u8, 0][..], stream].concat()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_decode_to_what_they_say() {
        // Every seed but the deliberately bad ones decodes completely.
        // The deliberately bad ones: 4 for clients, 5 for servers.
        for (seeds, client, bad) in [(nats_client_seeds(), true, 4), (nats_server_seeds(), false, 5)] {
            let mut complete = 0;
            for s in &seeds {
                let end = if client {
                    decode_pieces::<ClientSide>(Limits::default(), vec![s]).1
                } else {
                    decode_pieces::<ServerSide>(Limits::default(), vec![s]).1
                };
                if end == DONE {
                    complete += 1;
                }
            }
            assert_eq!(
                complete + bad,
                seeds.len(),
                "{complete} of {} seeds decode",
                seeds.len()
            );
        }
    }

    #[test]
    fn targets_accept_every_seed_in_every_mode() {
        for s in nats_client_seeds() {
            for header in [[0u8, 0], [1, 1], [2, 7], [3, 200]] {
                nats_client_decode(&[&header[..], &s].concat());
            }
        }
        for s in nats_server_seeds() {
            for header in [[0u8, 0], [1, 1], [2, 7], [3, 200]] {
                nats_server_decode(&[&header[..], &s].concat());
            }
        }
    }

    #[test]
    fn a_frame_cut_before_its_payload_ends_waits_whole() {
        // The control line and two payload bytes are buffered, whatever the cuts.
        for seed in [0u8, 1, 7, 200] {
            let stream = b"MSG a 1 5\r\nhe";
            let end = decode_pieces::<ClientSide>(Limits::default(), pieces(stream, seed)).1;
            assert_eq!(end, End::Waiting { left: stream.len() });
            let stream = b"HPUB a 3 5\r\nabc";
            let end = decode_pieces::<ServerSide>(Limits::default(), pieces(stream, seed)).1;
            assert_eq!(end, End::Waiting { left: stream.len() });
        }
        nats_client_decode(b"\x00\x00MSG a 1 5\r\nhe");
        nats_server_decode(b"\x02\x01HPUB a 3 5\r\nabc");
    }
}
