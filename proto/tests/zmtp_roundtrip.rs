//! Property tests for the ZMTP codec: multipart messages and commands survive
//! encode → split at every byte boundary (and at random cuts) → decode, frame for frame;
//! a greeting survives the same; garbage is an error or a wait, never a panic, and
//! never depends on where the stream was cut.

use bytes::Bytes;
use monocoque_proto::zmtp::{
    encode_message, Command, Frame, FrameDecoder, Greeting, MechanismName, Metadata, RawCommand, Version, ZmtpError,
};
use monocoque_proto::{IoArena, SegmentedBuffer};
use proptest::collection::vec;
use proptest::prelude::*;

#[path = "common/cuts.rs"]
mod cuts;

use cuts::{cuts, split};

/// A frame body: usually short (the 1-byte size), sometimes past 255 (the 8-byte size)
/// or past the arena's share threshold (sent as its own segment).
fn body() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        6 => vec(any::<u8>(), 0..40),
        2 => vec(any::<u8>(), 250..300),
        1 => vec(any::<u8>(), 4096..4200),
    ]
    .prop_map(Bytes::from)
}

fn message() -> impl Strategy<Value = Vec<Bytes>> {
    vec(body(), 1..5)
}

fn short() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..20).prop_map(Bytes::from)
}

fn metadata() -> impl Strategy<Value = Metadata> {
    vec(("[A-Za-z0-9._+-]{1,12}", vec(any::<u8>(), 0..30)), 0..4).prop_map(|props| {
        Metadata::from_properties(props.iter().map(|(n, v)| (n.as_str(), &v[..]))).expect("valid properties")
    })
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        metadata().prop_map(Command::Ready),
        metadata().prop_map(Command::Initiate),
        short().prop_map(|reason| Command::Error { reason }),
        body().prop_map(Command::Subscribe),
        body().prop_map(Command::Cancel),
        (any::<u16>(), vec(any::<u8>(), 0..=16)).prop_map(|(ttl_deciseconds, c)| Command::Ping {
            ttl_deciseconds,
            context: c.into()
        }),
        vec(any::<u8>(), 0..=16).prop_map(|c| Command::Pong { context: c.into() }),
        (short(), short()).prop_map(|(username, password)| Command::Hello { username, password }),
        Just(Command::Welcome),
        ("X-[A-Z]{1,8}", short()).prop_map(|(name, data)| Command::Unknown(RawCommand {
            name: Bytes::from(name.into_bytes()),
            data
        })),
    ]
}

/// What goes on the wire: messages and commands, interleaved.
#[derive(Debug, Clone)]
enum Item {
    Message(Vec<Bytes>),
    Command(Command),
}

fn item() -> impl Strategy<Value = Item> {
    prop_oneof![message().prop_map(Item::Message), command().prop_map(Item::Command)]
}

fn encode(items: &[Item]) -> Vec<u8> {
    let mut arena = IoArena::new();
    for item in items {
        match item {
            Item::Message(m) => encode_message(&mut arena, m),
            Item::Command(c) => c.encode(&mut arena).expect("generated commands are within the rules"),
        }
    }
    arena.chunks().flatten().copied().collect()
}

/// Decodes `parts` into items (frames grouped into messages, commands parsed); returns
/// the items and how the stream ended.
fn decode(parts: &[&[u8]], decoder: &FrameDecoder) -> (Vec<Item>, Result<usize, ZmtpError>) {
    let mut src = SegmentedBuffer::new();
    let mut items = Vec::new();
    let mut partial = Vec::new();
    for part in parts {
        src.push(Bytes::copy_from_slice(part));
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(Frame::Message { body, more })) => {
                    partial.push(body);
                    if !more {
                        items.push(Item::Message(std::mem::take(&mut partial)));
                    }
                }
                Ok(Some(Frame::Command(body))) => match Command::parse(body) {
                    Ok(c) => items.push(Item::Command(c)),
                    Err(e) => return (items, Err(e)),
                },
                Ok(None) => break,
                Err(e) => return (items, Err(e)),
            }
        }
    }
    (items, Ok(src.len()))
}

fn same(a: &[Item], b: &[Item]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| match (x, y) {
            (Item::Message(x), Item::Message(y)) => x == y,
            (Item::Command(x), Item::Command(y)) => x == y,
            _ => false,
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// The brief's round trip: encode, split at EVERY byte boundary, decode, equal.
    #[test]
    fn items_survive_a_split_at_every_byte(items in vec(item(), 1..4)) {
        let wire = encode(&items);
        let decoder = FrameDecoder::default();
        for at in 0..=wire.len() {
            let (got, end) = decode(&[&wire[..at], &wire[at..]], &decoder);
            prop_assert!(same(&got, &items), "split at {}: {:?} != {:?}", at, got, items);
            prop_assert_eq!(end, Ok(0));
        }
    }

    #[test]
    fn items_survive_random_cuts(items in vec(item(), 1..12), cuts in cuts(40)) {
        let wire = encode(&items);
        let (got, end) = decode(&split(&wire, &cuts), &FrameDecoder::default());
        prop_assert!(same(&got, &items));
        prop_assert_eq!(end, Ok(0));
    }

    #[test]
    fn a_greeting_survives_a_split_at_every_byte(
        mechanism in prop_oneof![Just(MechanismName::Null), Just(MechanismName::Plain), Just(MechanismName::Curve)],
        as_server: bool,
        minor in 0u8..3,
    ) {
        let mut greeting = Greeting::new(mechanism, as_server);
        greeting.version = Version { major: 3, minor };
        let wire = greeting.encode();
        for at in 0..=wire.len() {
            let mut src = SegmentedBuffer::new();
            src.push_slice(&wire[..at]);
            if at < wire.len() {
                prop_assert_eq!(Greeting::decode(&mut src), Ok(None));
            }
            src.push_slice(&wire[at..]);
            prop_assert_eq!(Greeting::decode(&mut src), Ok(Some(greeting)));
            prop_assert!(src.is_empty());
        }
    }

    /// Any bytes: an error or a wait, the same whatever the cuts, under a small limit.
    #[test]
    fn garbage_is_judged_the_same_whatever_the_cuts(wire in vec(any::<u8>(), 0..200), cuts in cuts(10)) {
        let decoder = FrameDecoder::new(64);
        let (a, end_a) = decode(&[&wire], &decoder);
        let (b, end_b) = decode(&split(&wire, &cuts), &decoder);
        prop_assert!(same(&a, &b));
        prop_assert_eq!(end_a, end_b);
    }
}
