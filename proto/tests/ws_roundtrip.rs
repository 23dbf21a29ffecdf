//! Property tests for WebSocket framing (RFC 6455 section 5): messages (fragmented or
//! not, text or binary, with control frames between fragments) and control frames
//! survive encode → split at every byte boundary (and at random cuts) → decode, for
//! masked client frames (each with its own key) and unmasked server frames alike.

use bytes::Bytes;
use monocoque_proto::ws::frame::{encode_close, encode_frame};
use monocoque_proto::ws::{CloseCode, Frame, FrameDecoder, Opcode, Role};
use monocoque_proto::SegmentedBuffer;
use proptest::collection::vec;
use proptest::prelude::*;

#[path = "common/cuts.rs"]
mod cuts;

use cuts::{cuts, split};

/// What the receiver sees: whole messages and control frames, in order.
#[derive(Debug, Clone, PartialEq)]
enum Item {
    Message { text: bool, payload: Vec<u8> },
    Ping(Vec<u8>),
    Pong(Vec<u8>),
    Close(Option<(u16, String)>),
}

/// What the sender writes: a message in fragments (a ping after the first one, maybe),
/// or a control frame.
#[derive(Debug, Clone)]
enum Send {
    Message {
        text: bool,
        fragments: Vec<Vec<u8>>,
        ping_inside: Option<Vec<u8>>,
    },
    Control(Item),
}

fn payload(large: bool) -> BoxedStrategy<Vec<u8>> {
    if large {
        prop_oneof![
            4 => vec(any::<u8>(), 0..130),
            2 => vec(any::<u8>(), 126..300),
            1 => vec(any::<u8>(), 65_536..66_000),
        ]
        .boxed()
    } else {
        prop_oneof![4 => vec(any::<u8>(), 0..40), 1 => vec(any::<u8>(), 120..300)].boxed()
    }
}

fn control() -> impl Strategy<Value = Item> {
    prop_oneof![
        vec(any::<u8>(), 0..=125).prop_map(Item::Ping),
        vec(any::<u8>(), 0..=125).prop_map(Item::Pong),
        Just(Item::Close(None)),
        (
            prop_oneof![Just(1000u16), Just(1001), Just(1002), Just(1011), 3000..5000u16],
            "[a-zé]{0,40}"
        )
            .prop_map(|(c, r)| Item::Close(Some((c, r)))),
    ]
}

fn send(large: bool) -> impl Strategy<Value = Send> {
    prop_oneof![
        3 => (any::<bool>(), vec(payload(large), 1..4), proptest::option::of(vec(any::<u8>(), 0..10))).prop_map(
            |(text, fragments, ping_inside)| Send::Message { text, fragments, ping_inside }
        ),
        1 => control().prop_map(Send::Control),
    ]
}

fn encode(role: Role, sends: &[Send], seed: u32) -> (Vec<u8>, Vec<Item>) {
    let mut key = seed | 1;
    let mut next_mask = || {
        // xorshift: a different key per frame, as a browser would.
        key ^= key << 13;
        key ^= key >> 17;
        key ^= key << 5;
        (role == Role::Client).then_some(key.to_be_bytes())
    };
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    let control = |item: &Item, mask: Option<[u8; 4]>, wire: &mut Vec<u8>| match item {
        Item::Ping(p) => encode_frame(true, Opcode::Ping, p, mask, wire),
        Item::Pong(p) => encode_frame(true, Opcode::Pong, p, mask, wire),
        Item::Close(None) => encode_frame(true, Opcode::Close, b"", mask, wire),
        Item::Close(Some((code, reason))) => encode_close(CloseCode(*code), reason, mask, wire),
        Item::Message { .. } => unreachable!(),
    };
    for s in sends {
        match s {
            Send::Message {
                text,
                fragments,
                ping_inside,
            } => {
                for (i, f) in fragments.iter().enumerate() {
                    let opcode = match (i, text) {
                        (0, true) => Opcode::Text,
                        (0, false) => Opcode::Binary,
                        _ => Opcode::Continuation,
                    };
                    encode_frame(i + 1 == fragments.len(), opcode, f, next_mask(), &mut wire);
                    if i == 0 && fragments.len() > 1 {
                        if let Some(p) = ping_inside {
                            let ping = Item::Ping(p.clone());
                            control(&ping, next_mask(), &mut wire);
                            expected.push(ping);
                        }
                    }
                }
                expected.push(Item::Message {
                    text: *text,
                    payload: fragments.concat(),
                });
            }
            Send::Control(item) => {
                control(item, next_mask(), &mut wire);
                expected.push(item.clone());
            }
        }
    }
    (wire, expected)
}

/// Decodes `parts` as the peer of the sender; returns the items and whether the
/// decoder ended between frames.
fn decode(role: Role, parts: &[&[u8]]) -> (Vec<Item>, bool) {
    let receiver = if role == Role::Client {
        Role::Server
    } else {
        Role::Client
    };
    let mut decoder = FrameDecoder::new(receiver, 1 << 20);
    let mut src = SegmentedBuffer::new();
    let mut items = Vec::new();
    let mut partial = Vec::new();
    for part in parts {
        src.push(Bytes::copy_from_slice(part));
        while let Some(frame) = decoder.decode(&mut src).expect("valid frames decode") {
            match frame {
                Frame::Data { text, payload, last } => {
                    partial.extend_from_slice(&payload);
                    if last {
                        items.push(Item::Message {
                            text,
                            payload: std::mem::take(&mut partial),
                        });
                    }
                }
                Frame::Ping(p) => items.push(Item::Ping(p.to_vec())),
                Frame::Pong(p) => items.push(Item::Pong(p.to_vec())),
                Frame::Close(c) => items.push(Item::Close(
                    c.map(|c| (c.code.0, String::from_utf8(c.reason.to_vec()).expect("UTF-8"))),
                )),
            }
        }
    }
    (items, decoder.is_idle() && src.is_empty())
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![Just(Role::Client), Just(Role::Server)]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// The brief's round trip: encode, split at EVERY byte boundary, decode, equal.
    #[test]
    fn frames_survive_a_split_at_every_byte(role in role(), sends in vec(send(false), 1..4), seed in any::<u32>()) {
        let (wire, expected) = encode(role, &sends, seed);
        for at in 0..=wire.len() {
            let (got, idle) = decode(role, &[&wire[..at], &wire[at..]]);
            prop_assert_eq!(&got, &expected, "split at {}", at);
            prop_assert!(idle);
        }
    }

    /// Many cuts, the 64-bit length form included.
    #[test]
    fn frames_survive_random_cuts(role in role(), sends in vec(send(true), 1..10), seed in any::<u32>(), cuts in cuts(60)) {
        let (wire, expected) = encode(role, &sends, seed);
        let (got, idle) = decode(role, &split(&wire, &cuts));
        prop_assert_eq!(got, expected);
        prop_assert!(idle);
    }

    /// Garbage is an error or a wait, never a panic, and never depends on the cuts.
    #[test]
    fn garbage_ends_the_same_whatever_the_cuts(data in vec(any::<u8>(), 0..200), cuts in cuts(20), options in 0u8..4) {
        let whole = [&[options, 0][..], &data].concat();
        monocoque_proto::fuzzing::ws_frames(&whole);
        let mut cut = split(&data, &cuts).len() as u8;
        if cut < 2 { cut = 1; }
        monocoque_proto::fuzzing::ws_frames(&[&[options, cut][..], &data].concat());
        monocoque_proto::fuzzing::ws_handshake(&[&[options, cut][..], &data].concat());
    }
}
