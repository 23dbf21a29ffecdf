//! The CURVE mechanism on arbitrary bytes: both halves of the handshake and the
//! `MESSAGE` boxes after it.
//!
//! Input: two header bytes (unused option byte, split seed), then a mode byte and the
//! stream. Mode 0 feeds the stream to a CURVE server after a client's greeting, mode 1
//! to a CURVE client after a server's; each must reach the same outcome whether the
//! stream comes whole or in pieces, and never panic. Mode 2 reads the stream as frames
//! whose bodies a server's [`MessageCipher`] opens in turn (same outcome at every cut),
//! then seals the stream itself, checks it opens to what was sealed, and that a flipped
//! bit (its place picked by the split seed) makes the box fail.

use bytes::Bytes;

use super::split::pieces;
use super::zmtp::run_handshake;
use crate::zmtp::curve::{CurveClient, CurveRandom, KeyPair, MessageCipher, Role, SecretKey};
use crate::zmtp::{
    encode_header, Frame, FrameDecoder, Greeting, HandshakeConfig, Mechanism, MechanismName, SocketType, ZmtpError,
};
use crate::{IoArena, SegmentedBuffer};

/// The fixed long-term pairs of the fuzz harness: a corpus seed made with them stays
/// valid from run to run.
fn server_keys() -> KeyPair {
    KeyPair::from_secret(SecretKey::from_bytes([7; 32]))
}

fn client_keys() -> KeyPair {
    KeyPair::from_secret(SecretKey::from_bytes([9; 32]))
}

fn transient_keys() -> KeyPair {
    KeyPair::from_secret(SecretKey::from_bytes([11; 32]))
}

/// The fixed random bytes of each handshake: the transient secret is
/// [`transient_keys`]'s (bytes 11), the long nonces and the cookie key bytes 13. Fixed
/// bytes make the handshake's output the same from run to run, so a whole and a cut
/// stream must write the same bytes.
fn fixed_random() -> CurveRandom {
    let mut bytes = [13; CurveRandom::LEN];
    bytes[..32].copy_from_slice(transient_keys().secret.as_bytes());
    CurveRandom::from_bytes(bytes)
}

/// The server's and the client's cipher between the fixed transient pairs.
fn cipher(role: Role) -> MessageCipher {
    match role {
        Role::Server => MessageCipher::new(Role::Server, &server_keys().secret, &transient_keys().public),
        Role::Client => MessageCipher::new(Role::Client, &transient_keys().secret, &server_keys().public),
    }
}

fn curve_config(mechanism: Mechanism, socket_type: SocketType) -> HandshakeConfig {
    HandshakeConfig {
        mechanism,
        max_command_size: 4096,
        ..HandshakeConfig::null(socket_type)
    }
}

/// See the module's documentation.
pub fn zmtp_curve(data: &[u8]) {
    let [_, split, mode, stream @ ..] = data else {
        return;
    };
    match mode % 3 {
        0 | 1 => {
            let (config, greeting) = if mode % 3 == 0 {
                (
                    curve_config(Mechanism::CurveServer { keys: server_keys() }, SocketType::Router),
                    Greeting::new(MechanismName::Curve, false),
                )
            } else {
                (
                    curve_config(
                        Mechanism::CurveClient {
                            keys: client_keys(),
                            server_key: server_keys().public,
                        },
                        SocketType::Dealer,
                    ),
                    Greeting::new(MechanismName::Curve, true),
                )
            };
            let input = [&greeting.encode()[..], stream].concat();
            // The random bytes are fixed: outcomes and outputs must both agree.
            let whole = run_handshake(config.clone(), Some(fixed_random()), &[&input], true);
            let cut = run_handshake(config, Some(fixed_random()), &pieces(&input, *split), true);
            assert_eq!(whole, cut, "the cuts changed the CURVE handshake's outcome or output");
        }
        _ => {
            assert_eq!(
                open_frames(&[stream]),
                open_frames(&pieces(stream, *split)),
                "the cuts changed what the MESSAGE boxes opened to"
            );
            let mut client = cipher(Role::Client);
            let mut server = cipher(Role::Server);
            let inner = split & 0x03;
            let sealed = client.seal(inner, stream).expect("a fresh counter seals");
            let mut tampered = sealed.to_vec();
            let at = 16 + usize::from(*split) % (tampered.len() - 16);
            tampered[at] ^= 1 << (split % 8);
            assert_eq!(
                server.open(&tampered),
                Err(ZmtpError::CurveBox { command: "MESSAGE" }),
                "a flipped bit went unnoticed"
            );
            assert_eq!(server.open(&sealed), Ok((inner, Bytes::copy_from_slice(stream))));
            assert!(server.open(&sealed).is_err(), "a replay was accepted");
        }
    }
}

/// Every frame of `parts` opened by a fresh server cipher, until the first error.
fn open_frames(parts: &[&[u8]]) -> Vec<Result<(u8, Bytes), ZmtpError>> {
    let decoder = FrameDecoder::new(1 << 16);
    let mut server = cipher(Role::Server);
    let mut src = SegmentedBuffer::new();
    let mut out = Vec::new();
    for part in parts {
        src.push_slice(part);
        loop {
            match decoder.decode(&mut src) {
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e));
                    return out;
                }
                Ok(Some(Frame::Message { body, .. } | Frame::Command(body))) => {
                    let opened = server.open(&body);
                    let failed = opened.is_err();
                    out.push(opened);
                    if failed {
                        return out;
                    }
                }
            }
        }
    }
    out
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut arena = IoArena::new();
    encode_header(&mut arena, 0, body.len() as u64);
    arena.put_slice(body);
    arena.to_vec()
}

/// The seed streams (mode byte first): a valid `HELLO` and broken ones for the server,
/// `WELCOME`-shaped and refusing answers for the client, and sealed `MESSAGE` frames
/// (in order, replayed, tampered, too short) for the cipher.
pub fn zmtp_curve_seeds() -> Vec<Vec<u8>> {
    let mut client = CurveClient::new(client_keys(), server_keys().public, fixed_random());
    let hello = frame_command(&client.hello());
    let mut bad_version = hello.clone();
    bad_version[2 + 6] = 2;
    let mut bad_box = hello.clone();
    let last = bad_box.len() - 1;
    bad_box[last] ^= 0x20;
    let mut initiate = b"\x08INITIATE".to_vec();
    initiate.resize(300, 0x5a);
    let mut welcome = b"\x07WELCOME".to_vec();
    welcome.resize(168, 0);
    let error = b"\x04\x0a\x05ERROR\x03400".to_vec();
    let ready = b"\x04\x20\x05READY"
        .iter()
        .copied()
        .chain([0u8; 26])
        .collect::<Vec<u8>>();

    let mut sealer = cipher(Role::Client);
    let m1 = sealer.seal(0x01, b"first").expect("seal");
    let m2 = sealer.seal(0, &[0xab; 300]).expect("seal");
    let m3 = sealer.seal(0x02, b"\x04PING\x00\x00").expect("seal");
    let mut tampered = m3.to_vec();
    tampered[20] ^= 4;
    let with = |mode: u8, parts: &[&[u8]]| [&[mode][..], &parts.concat()].concat();
    vec![
        with(0, &[&hello]),
        with(0, &[&hello, &frame_command(&initiate)]),
        with(0, &[&bad_version]),
        with(0, &[&bad_box]),
        with(0, &[&frame_command(&initiate)]),
        with(0, &[&hello[..100]]),
        with(1, &[&frame_command(&welcome)]),
        with(1, &[&error]),
        with(1, &[&ready]),
        with(2, &[&frame(&m1), &frame(&m2), &frame(&m3)]),
        with(2, &[&frame(&m1), &frame(&m1)]),
        with(2, &[&frame(&m1), &frame(&tampered)]),
        with(2, &[&frame(&m1[..30])]),
        with(2, &[b"\x07MESSAGE"]),
    ]
}

fn frame_command(body: &[u8]) -> Vec<u8> {
    let mut arena = IoArena::new();
    encode_header(&mut arena, crate::zmtp::FLAG_COMMAND, body.len() as u64);
    arena.put_slice(body);
    arena.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seeds_reach_what_they_are_for() {
        for seed in zmtp_curve_seeds() {
            for split in [0, 1, 9, 200] {
                zmtp_curve(&[&[0, split][..], &seed].concat());
            }
        }
        // The valid HELLO gets a WELCOME out of the server: the pair is what it says.
        let seeds = zmtp_curve_seeds();
        let (outcome, out) = run_handshake(
            curve_config(Mechanism::CurveServer { keys: server_keys() }, SocketType::Router),
            Some(fixed_random()),
            &[&[&Greeting::new(MechanismName::Curve, false).encode()[..], &seeds[0][1..]].concat()],
            true,
        );
        assert_eq!(outcome, "pending");
        assert_eq!(out.len(), 64 + 2 + 168, "greeting and WELCOME");
        // The three in-order boxes open.
        let opened = open_frames(&[&seeds[9][1..]]);
        assert_eq!(opened.len(), 3);
        assert!(opened.iter().all(Result::is_ok));
        assert!(matches!(
            open_frames(&[&seeds[10][1..]])[..],
            [Ok(_), Err(ZmtpError::CurveNonce { nonce: 1, last: 1 })]
        ));
    }
}
