//! The NATS client protocol engine: a decoder for each side of a connection, the ops
//! each side sends, and the client's state machine ([`client`]).
//!
//! - [`ClientFrameDecoder`] decodes what a server sends ([`ServerFrame`]: `INFO`,
//!   `MSG`, `HMSG`, `+OK`, `-ERR`, `PING`, `PONG`); [`ServerFrameDecoder`] decodes what
//!   a client sends ([`ClientFrame`]: `CONNECT`, `PUB`, `HPUB`, `SUB`, `UNSUB`, `PING`,
//!   `PONG`), for a broker, a proxy or a test peer. Both read one contiguous buffer and
//!   hand out frames of `&[u8]` slices of it: no reference count, no allocation per
//!   frame (only `INFO` and `CONNECT`, whose JSON is parsed, allocate).
//! - Decoding follows nats-server's parser (see [`Limits`] and the rules in the
//!   `decode` module's source): case-insensitive op names, fields split on runs of
//!   spaces and tabs, optional fields told apart by count, a bare `\n` accepted after a
//!   control line but `\r\n` required after a payload, sizes of at most 9 digits, and
//!   every limit checked before the payload is waited for.
//! - [`ClientOp`] and [`ServerOp`] are the owned ops ([`bytes::Bytes`] views):
//!   [`ClientOp::encode`] and [`ServerOp::encode`] write them, [`ClientFrame::to_op`]
//!   and [`ServerFrame::to_op`] copy a frame into one.
//! - [`Headers`] is a lazily parsed view of a received header block (status codes such
//!   as [`StatusCode::NoResponders`] recognised); [`HeaderMap`] builds one to send.
//! - [`ServerInfo`] and [`ConnectOptions`] are the `INFO` and `CONNECT` JSON bodies.
//!
//! ```
//! use monocoque_proto::IoArena;
//! use monocoque_proto::nats::{ClientFrame, ClientOp, HeaderMap, Limits, Publish, ServerFrameDecoder};
//!
//! // A client's publish with a header, as it goes on the wire.
//! let mut headers = HeaderMap::new();
//! headers.insert("A", "1").unwrap();
//! let publish = Publish {
//!     subject: "orders.new".into(),
//!     reply: None,
//!     headers: Some(headers.to_headers()),
//!     payload: "hello".into(),
//! };
//! let mut out = IoArena::new();
//! ClientOp::Publish(publish).encode(&Limits::default(), &mut out).unwrap();
//! let wire = [&b"sub orders.* workers 7\r\n"[..], &out.to_vec()].concat();
//!
//! // A broker reading it, the second frame in two pieces.
//! let mut server = ServerFrameDecoder::default();
//! let Some((ClientFrame::Subscribe(sub), len)) = server.decode(&wire).unwrap() else { panic!() };
//! assert_eq!((sub.subject, sub.queue, sub.sid), (&b"orders.*"[..], Some(&b"workers"[..]), &b"7"[..]));
//! let rest = &wire[len..];
//! assert_eq!(server.decode(&rest[..20]).unwrap(), None); // incomplete: nothing consumed
//! let Some((ClientFrame::Publish(p), _)) = server.decode(rest).unwrap() else { panic!() };
//! assert_eq!((p.subject, p.payload), (&b"orders.new"[..], &b"hello"[..]));
//! assert_eq!(p.headers, Some(&b"NATS/1.0\r\nA: 1\r\n\r\n"[..]));
//! ```

pub mod client;
mod decode;
mod decode_fast;
mod encode;
mod error;
mod frame;
mod headers;
mod json;
mod op;

pub use decode::{Limits, DEFAULT_MAX_CONTROL_LINE, DEFAULT_MAX_JSON_LINE, DEFAULT_MAX_PAYLOAD, MAX_SIZE_FIELD};
pub use error::{DecodeError, EncodeError, OpName};
pub use frame::{
    ClientFrame, ClientFrameDecoder, ClientSide, FrameDecoder, FrameRole, MessageRef, PublishRef, ServerFrame,
    ServerFrameDecoder, ServerSide, SubscribeRef, UnsubscribeRef,
};
pub use headers::{HeaderError, HeaderIter, HeaderMap, Headers, StatusCode};
pub use json::{ConnectOptions, ServerInfo};
pub use op::{ClientOp, Message, Publish, ServerError, ServerErrorKind, ServerOp, Sid, Subscribe, Unsubscribe};
