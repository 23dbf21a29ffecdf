//! The ZMTP decoders on arbitrary bytes: the greeting, frames, commands, and the
//! handshake that reads them.
//!
//! Each checks that the result does not depend on where the stream was cut (the second
//! input byte, or the first for the greeting, picks the cuts, see `split::pieces`) and
//! that what was decoded encodes back to something that decodes the same.

use bytes::Bytes;

use super::split::pieces;
use crate::zmtp::curve::CurveRandom;
use crate::zmtp::{
    encode_frame, AuthDecision, Command, Frame, FrameDecoder, Greeting, Handshake, HandshakeConfig, Mechanism,
    Metadata, Progress, SocketType, ZmtpError, GREETING_LEN,
};
use crate::{IoArena, SegmentedBuffer};

fn arena_bytes(arena: &IoArena) -> Vec<u8> {
    arena.chunks().flatten().copied().collect()
}

/// `data[0]` picks the cuts, the rest is what a peer sends first: the greeting decoder
/// gives the same answer for the whole stream and for its pieces (fed one by one, asked
/// after each), consumes exactly 64 bytes on success, and what it parsed re-encodes to
/// a greeting that parses the same.
pub fn zmtp_greeting(data: &[u8]) {
    let Some((&seed, stream)) = data.split_first() else {
        return;
    };
    let mut whole = SegmentedBuffer::new();
    whole.push_slice(stream);
    let at_once = Greeting::decode(&mut whole);

    let mut cut = SegmentedBuffer::new();
    let mut piecewise = Ok(None);
    for piece in pieces(stream, seed) {
        cut.push_slice(piece);
        piecewise = Greeting::decode(&mut cut);
        if !matches!(piecewise, Ok(None)) {
            break;
        }
    }
    assert_eq!(at_once, piecewise, "the cuts changed the greeting's outcome");
    match at_once {
        Ok(Some(greeting)) => {
            assert_eq!(whole.len(), stream.len() - GREETING_LEN, "a greeting is 64 bytes");
            let mut again = SegmentedBuffer::new();
            again.push_slice(&greeting.encode());
            assert_eq!(Greeting::decode(&mut again), Ok(Some(greeting)));
        }
        Ok(None) => assert!(stream.len() < GREETING_LEN && whole.len() == stream.len()),
        Err(_) => {}
    }
}

/// Every frame, then how the stream ended (an error, or the bytes left waiting).
fn decode_frames(decoder: &FrameDecoder, parts: &[&[u8]]) -> (Vec<Frame>, Result<usize, ZmtpError>) {
    let mut src = SegmentedBuffer::new();
    let mut frames = Vec::new();
    for part in parts {
        src.push_slice(part);
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(frame)) => frames.push(frame),
                Ok(None) => break,
                Err(e) => return (frames, Err(e)),
            }
        }
    }
    (frames, Ok(src.len()))
}

/// `data[0]` bit 0 sets a 300-byte frame limit, `data[1]` picks the cuts, the rest is
/// the stream: the same frames and the same end whatever the cuts, no body over the
/// limit, and every frame re-encoded decodes back identical.
pub fn zmtp_frames(data: &[u8]) {
    let [options, seed, stream @ ..] = data else {
        return;
    };
    let decoder = if options & 1 != 0 {
        FrameDecoder::new(300)
    } else {
        FrameDecoder::default()
    };
    let (frames, end) = decode_frames(&decoder, &[stream]);
    let cut = decode_frames(&decoder, &pieces(stream, *seed));
    assert_eq!((&frames, &end), (&cut.0, &cut.1), "the cuts changed the frames");

    let mut arena = IoArena::new();
    for frame in &frames {
        let (Frame::Message { body, .. } | Frame::Command(body)) = frame;
        assert!(body.len() as u64 <= decoder.max_frame_size);
        encode_frame(&mut arena, frame);
    }
    let (again, left) = decode_frames(&decoder, &[&arena_bytes(&arena)]);
    assert_eq!(again, frames, "re-encoded frames decode differently");
    assert_eq!(left, Ok(0));
}

/// `data[0]` picks what runs: below 128, a command body (`data[1..]`) is parsed, and a
/// parsed command encodes to a frame that parses back identical (metadata rebuilt from
/// its properties, too); from 128, the bytes after `data[1]` (the cuts) are a peer's
/// side of a handshake. With `m = data[0] - 128`: a NULL, PLAIN client or PLAIN server
/// handshake (`m % 3`) of socket type `SocketType::ALL[m / 3 % 11]`, whose PLAIN
/// server lets the client in if `m < 64`, must end in the same outcome whatever the
/// cuts, and keep reporting its error once it failed.
pub fn zmtp_commands(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode < 128 {
        return command_round_trip(rest);
    }
    let Some((&seed, stream)) = rest.split_first() else {
        return;
    };
    let m = mode - 128;
    let config = || {
        let mut config = HandshakeConfig::null(SocketType::ALL[usize::from(m / 3) % SocketType::ALL.len()]);
        config.max_command_size = 512;
        config.mechanism = match m % 3 {
            0 => Mechanism::Null,
            1 => Mechanism::PlainClient {
                username: Bytes::from_static(b"admin"),
                password: Bytes::from_static(b"secret"),
            },
            _ => Mechanism::PlainServer,
        };
        config
    };
    let whole = run_handshake(config(), None, &[stream], m < 64);
    let cut = run_handshake(config(), None, &pieces(stream, seed), m < 64);
    assert_eq!(whole, cut, "the cuts changed the handshake's outcome");
}

fn command_round_trip(body: &[u8]) {
    let Ok(command) = Command::parse(Bytes::copy_from_slice(body)) else {
        return;
    };
    let _ = command.name();
    if let Command::Ready(meta) | Command::Initiate(meta) = &command {
        let names: Vec<(String, Bytes)> = meta
            .iter()
            .map(|(n, v)| (String::from_utf8(n.to_vec()).expect("validated names are ASCII"), v))
            .collect();
        let rebuilt = Metadata::from_properties(names.iter().map(|(n, v)| (n.as_str(), &v[..])))
            .expect("parsed properties encode");
        assert_eq!(&rebuilt, meta);
        for (name, value) in &names {
            let first = names.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v);
            assert_eq!(meta.get(name).as_ref(), first);
            let _ = value;
        }
    }
    let mut arena = IoArena::new();
    // Parsed fields are within the encoder's length rules.
    command.encode(&mut arena).expect("a parsed command encodes");
    let (frames, left) = decode_frames(&FrameDecoder::default(), &[&arena_bytes(&arena)]);
    assert_eq!(left, Ok(0));
    let [Frame::Command(again)] = &frames[..] else {
        panic!("one command frame expected, got {frames:?}");
    };
    assert_eq!(Command::parse(again.clone()), Ok(command));
}

/// The outcome of a handshake fed `parts`: established (and with what), failed (and
/// with what, asked twice), or still waiting; plus everything it wrote.
pub(super) fn run_handshake(
    config: HandshakeConfig,
    random: Option<CurveRandom>,
    parts: &[&[u8]],
    allow: bool,
) -> (String, Vec<u8>) {
    let mut hs = match random {
        Some(random) => Handshake::with_random(config, random),
        None => Handshake::new(config),
    }
    .expect("valid configuration");
    let mut src = SegmentedBuffer::new();
    let mut out = IoArena::new();
    // Our greeting goes out before anything arrives (an empty stream has no pieces).
    hs.start(&mut out);
    let mut outcome = String::from("pending");
    let mut pushed = 0;
    for part in parts {
        src.push_slice(part);
        pushed += part.len();
        let mut progress = hs.handle(&mut src, &mut out);
        if let Ok(Progress::Authenticate(_)) = progress {
            let decision = if allow {
                AuthDecision::Allow { user_id: Bytes::new() }
            } else {
                AuthDecision::Deny {
                    status: 400,
                    reason: String::new(),
                }
            };
            progress = hs.authenticate(decision, &mut src, &mut out);
        }
        match progress {
            Ok(Progress::Pending | Progress::Authenticate(_)) => {}
            Ok(Progress::Established(e)) => {
                assert!(hs.is_established());
                assert!(hs.config().socket_type.is_compatible_with(e.peer_socket_type));
                // What it consumed, not what is left: the rest may not have arrived.
                outcome = format!("established {e:?} after {} bytes", pushed - src.len());
                break;
            }
            Err(e) => {
                assert_eq!(hs.handle(&mut src, &mut out), Err(e.clone()), "an error sticks");
                outcome = format!("failed {e:?}");
                break;
            }
        }
    }
    (outcome, arena_bytes(&out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_points_take_real_streams() {
        let mut greeting = vec![3u8];
        greeting.extend_from_slice(&Greeting::new(crate::zmtp::MechanismName::Null, false).encode());
        greeting.extend_from_slice(b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03PUB");
        zmtp_greeting(&greeting);
        let mut handshake = vec![128 + 3 * 5, 9]; // NULL, SUB, whose peer is a PUB
        handshake.extend_from_slice(&greeting[1..]);
        let (outcome, _) = run_handshake(
            {
                let mut c = HandshakeConfig::null(SocketType::Sub);
                c.max_command_size = 512;
                c
            },
            None,
            &[&greeting[1..]],
            true,
        );
        assert!(outcome.starts_with("established"), "{outcome}");
        zmtp_commands(&handshake);
        zmtp_commands(b"\x00\x05READY\x0bSocket-Type\x00\x00\x00\x03PUB");
        zmtp_frames(b"\x01\x01\x01\x02id\x04\x05\x04PONG\x02\x00\x00\x00\x00\x00\x00\x00\x01x");
    }
}
