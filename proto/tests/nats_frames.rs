//! Property tests for the NATS frame decoders (`ServerFrameDecoder`,
//! `ClientFrameDecoder`): ops of either side, encoded by `ClientOp::encode` and
//! `ServerOp::encode`, decode back to the same ops from one contiguous buffer; every
//! strict prefix of a frame is "need more" (nothing consumed, no error), whether each
//! prefix is new to the decoder or the same bytes grown (the decoder remembers how far
//! it searched the line); and the frames already complete in a prefix are exactly those
//! the prefix holds.

use bytes::Bytes;
use monocoque_proto::nats::{
    ClientFrameDecoder, ClientOp, ConnectOptions, DecodeError, HeaderMap, Headers, Limits, Message, Publish,
    ServerError, ServerFrameDecoder, ServerInfo, ServerOp, Sid, Subscribe, Unsubscribe,
};
use monocoque_proto::IoArena;
use proptest::collection::vec;
use proptest::prelude::*;

/// Subjects, replies, queues and sids: subject-shaped ones of 1 to 70 bytes (so lines
/// fall on both sides of the fast path's 64-byte window), or any bytes but blanks and
/// line breaks (control bytes send a line to the general path).
fn word() -> impl Strategy<Value = Bytes> {
    let odd = any::<u8>().prop_filter("not a blank or line break", |b| !b" \t\r\n".contains(b));
    prop_oneof![
        4 => "[a-zA-Z0-9_.>*$-]{1,70}".prop_map(Bytes::from),
        1 => vec(odd, 1..10).prop_map(Bytes::from),
    ]
}

fn maybe_word() -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(word())
}

/// A header block: a valid one (status or not), or any bytes (it is length-prefixed).
fn block() -> impl Strategy<Value = Headers> {
    prop_oneof![
        2 => ("[A-Z][a-z-]{0,8}", "[a-z0-9]{0,8}", any::<bool>()).prop_map(|(name, value, no_responders)| {
            let mut map = HeaderMap::new();
            if no_responders {
                map.set_status(503, "").expect("a valid status");
            }
            map.insert(name, value).expect("a valid header");
            map.to_headers()
        }),
        1 => vec(any::<u8>(), 0..30).prop_map(|raw| Headers::from_raw(Bytes::from(raw))),
    ]
}

/// A payload: short, CRLF-dense, or long enough to need a 3- or 4-digit size.
fn body() -> impl Strategy<Value = Bytes> {
    prop_oneof![
        4 => vec(any::<u8>(), 0..40),
        2 => vec(prop_oneof![Just(b'\r'), Just(b'\n')], 0..6),
        1 => vec(any::<u8>(), 100..1200),
    ]
    .prop_map(Bytes::from)
}

/// What a client sends.
fn from_client() -> impl Strategy<Value = ClientOp> {
    prop_oneof![
        6 => (word(), maybe_word(), proptest::option::of(block()), body()).prop_map(|(subject, reply, headers, payload)| {
            ClientOp::Publish(Publish { subject, reply, headers, payload })
        }),
        2 => (word(), maybe_word(), word()).prop_map(|(subject, queue, sid)| {
            ClientOp::Subscribe(Subscribe { subject, queue, sid: Sid::from_bytes(sid) })
        }),
        2 => (any::<u16>(), proptest::option::of(0u64..1_000_000_000)).prop_map(|(sid, max_msgs)| {
            ClientOp::Unsubscribe(Unsubscribe { sid: Sid::from_u64(u64::from(sid)), max_msgs })
        }),
        1 => proptest::option::of("[a-z ]{0,12}").prop_map(|name| {
            ClientOp::Connect(Box::new(ConnectOptions { name, ..ConnectOptions::client() }))
        }),
        1 => Just(ClientOp::Ping),
        1 => Just(ClientOp::Pong),
    ]
}

/// What a server sends.
fn from_server() -> impl Strategy<Value = ServerOp> {
    prop_oneof![
        6 => (word(), any::<u32>(), maybe_word(), proptest::option::of(block()), body()).prop_map(
            |(subject, sid, reply, headers, payload)| {
                ServerOp::Message(Message { subject, sid: Sid::from_u64(u64::from(sid)), reply, headers, payload })
            }
        ),
        1 => ("[A-Z0-9]{1,20}", 1i64..=(1 << 20)).prop_map(|(server_id, max_payload)| {
            ServerOp::Info(Box::new(ServerInfo { server_id, max_payload, ..ServerInfo::default() }))
        }),
        1 => "'[A-Za-z ]{0,20}'".prop_map(|text| ServerOp::Err(ServerError::new(text))),
        1 => Just(ServerOp::Ok),
        1 => Just(ServerOp::Ping),
        1 => Just(ServerOp::Pong),
    ]
}

/// One side's borrowed decoder, turning frames into ops.
trait Decode {
    type Op;
    fn fresh() -> Self;
    /// The frame at the front of `buf` as an op, and its length.
    fn next(&mut self, buf: &[u8]) -> Result<Option<(Self::Op, usize)>, DecodeError>;
}

impl Decode for ServerFrameDecoder {
    type Op = ClientOp;

    fn fresh() -> Self {
        ServerFrameDecoder::default()
    }

    fn next(&mut self, buf: &[u8]) -> Result<Option<(ClientOp, usize)>, DecodeError> {
        Ok(self.decode(buf)?.map(|(frame, len)| (frame.to_op(), len)))
    }
}

impl Decode for ClientFrameDecoder {
    type Op = ServerOp;

    fn fresh() -> Self {
        ClientFrameDecoder::default()
    }

    fn next(&mut self, buf: &[u8]) -> Result<Option<(ServerOp, usize)>, DecodeError> {
        Ok(self.decode(buf)?.map(|(frame, len)| (frame.to_op(), len)))
    }
}

/// Encodes each op on its own, so the frame boundaries are known.
fn frames<T>(ops: &[T], encode: impl Fn(&T, &mut IoArena)) -> Vec<Vec<u8>> {
    ops.iter()
        .map(|op| {
            let mut arena = IoArena::new();
            encode(op, &mut arena);
            arena.to_vec()
        })
        .collect()
}

/// Every property at once, for the ops encoded as `frames`.
fn check<D: Decode>(ops: &[D::Op], frames: &[Vec<u8>]) -> Result<(), TestCaseError>
where
    D::Op: Clone + PartialEq + std::fmt::Debug,
{
    let wire = frames.concat();
    // The whole buffer: every op, each frame's length, nothing left.
    let mut decoder = D::fresh();
    let mut at = 0;
    for (op, frame) in ops.iter().zip(frames) {
        prop_assert_eq!(decoder.next(&wire[at..]), Ok(Some((op.clone(), frame.len()))));
        at += frame.len();
    }
    prop_assert_eq!(decoder.next(&wire[at..]), Ok(None));

    // Every strict prefix of every frame is "need more", from a fresh decoder and from
    // one that saw the shorter prefixes; the whole frame then decodes.
    let mut start = 0;
    for (op, frame) in ops.iter().zip(frames) {
        let mut growing = D::fresh();
        for end in start..start + frame.len() {
            prop_assert_eq!(
                D::fresh().next(&wire[start..end]),
                Ok(None),
                "prefix of {} bytes",
                end - start
            );
            prop_assert_eq!(
                growing.next(&wire[start..end]),
                Ok(None),
                "grown to {} bytes",
                end - start
            );
        }
        let got = growing.next(&wire[start..start + frame.len()]);
        prop_assert_eq!(got, Ok(Some((op.clone(), frame.len()))));
        start += frame.len();
    }

    // Any prefix of the stream holds exactly the frames that end inside it.
    for cut in 0..=wire.len() {
        let mut decoder = D::fresh();
        let (mut at, mut n) = (0, 0);
        while let Some((op, len)) = decoder
            .next(&wire[at..cut])
            .map_err(|e| TestCaseError::fail(e.to_string()))?
        {
            prop_assert_eq!(&op, &ops[n]);
            at += len;
            n += 1;
        }
        let whole: usize = frames
            .iter()
            .scan(0, |end, f| {
                *end += f.len();
                Some(*end)
            })
            .take_while(|&end| end <= cut)
            .count();
        prop_assert_eq!(n, whole, "frames decoded from the first {} bytes", cut);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn client_ops_decode_back_and_every_prefix_needs_more(ops in vec(from_client(), 1..6)) {
        let frames = frames(&ops, |op, arena| op.encode(&Limits::default(), arena).expect("generated ops encode"));
        check::<ServerFrameDecoder>(&ops, &frames)?;
    }

    #[test]
    fn server_ops_decode_back_and_every_prefix_needs_more(ops in vec(from_server(), 1..6)) {
        let frames = frames(&ops, |op, arena| op.encode(&Limits::default(), arena).expect("generated ops encode"));
        check::<ClientFrameDecoder>(&ops, &frames)?;
    }
}
