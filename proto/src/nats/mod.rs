//! The NATS client protocol engine: a codec for each side of a connection.
//!
//! - [`ClientCodec`] decodes what a server sends ([`ServerOp`]: `INFO`, `MSG`, `HMSG`,
//!   `+OK`, `-ERR`, `PING`, `PONG`) and encodes what a client sends ([`ClientOp`]:
//!   `CONNECT`, `PUB`, `HPUB`, `SUB`, `UNSUB`, `PING`, `PONG`); [`ServerCodec`] does the
//!   reverse, for a broker, a proxy or a test peer. Both implement [`MonocoqueCodec`].
//! - Decoding follows nats-server's parser (see [`Limits`] and the rules in the
//!   `decode` module's source): case-insensitive op names, fields split on runs of
//!   spaces and tabs, optional fields told apart by count, a bare `\n` accepted after a
//!   control line but `\r\n` required after a payload, sizes of at most 9 digits, and
//!   every limit checked before anything is reserved. It is resumable and, for a frame
//!   inside one received segment, allocates nothing: subjects, sids, headers and
//!   payloads are [`bytes::Bytes`] views.
//! - [`ServerFrameDecoder`] and [`ClientFrameDecoder`] decode the same ops out of one
//!   contiguous buffer as [`ClientFrame`]s and [`ServerFrame`]s of `&[u8]` slices (no
//!   reference count per field), with the codecs' rules, limits and errors.
//! - [`Headers`] is a lazily parsed view of a received header block (status codes such
//!   as [`StatusCode::NoResponders`] recognised); [`HeaderMap`] builds one to send.
//! - [`ServerInfo`] and [`ConnectOptions`] are the `INFO` and `CONNECT` JSON bodies.
//!
//! ```
//! use monocoque_proto::{IoArena, MonocoqueCodec, SegmentedBuffer};
//! use monocoque_proto::nats::{ClientOp, HeaderMap, Publish, ServerCodec};
//!
//! // A broker reading what a client sent, in two pieces.
//! let mut server = ServerCodec::default();
//! let mut src = SegmentedBuffer::new();
//! src.push_slice(b"sub orders.* workers 7\r\nHPUB orders.new 18 23\r\nNATS/1.0\r\nA: 1\r\n\r\n");
//! let Some(ClientOp::Subscribe(sub)) = server.decode(&mut src).unwrap() else { panic!() };
//! assert_eq!((&sub.subject[..], sub.queue.as_deref(), sub.sid.as_u64()), (&b"orders.*"[..], Some(&b"workers"[..]), Some(7)));
//! assert_eq!(server.decode(&mut src).unwrap(), None);
//! src.push_slice(b"hello\r\n");
//! let Some(ClientOp::Publish(publish)) = server.decode(&mut src).unwrap() else { panic!() };
//! assert_eq!(publish.headers.unwrap().get("a").unwrap(), "1");
//! assert_eq!(publish.payload, "hello");
//! ```

pub mod client;
mod codec;
mod decode;
mod decode_fast;
mod encode;
mod error;
mod frame;
mod headers;
mod json;
mod op;

pub use codec::{ClientCodec, ClientSide, Codec, CodecError, Role, ServerCodec, ServerSide};
pub use decode::{Limits, DEFAULT_MAX_CONTROL_LINE, DEFAULT_MAX_JSON_LINE, DEFAULT_MAX_PAYLOAD, MAX_SIZE_FIELD};
pub use error::{DecodeError, EncodeError, OpName};
pub use frame::{
    ClientFrame, ClientFrameDecoder, FrameDecoder, FrameRole, MessageRef, PublishRef, ServerFrame, ServerFrameDecoder,
    SubscribeRef, UnsubscribeRef,
};
pub use headers::{HeaderError, HeaderIter, HeaderMap, Headers, StatusCode};
pub use json::{ConnectOptions, ServerInfo};
pub use op::{ClientOp, Message, Publish, ServerError, ServerErrorKind, ServerOp, Sid, Subscribe, Unsubscribe};

#[allow(unused_imports)] // for the links in the docs above
use crate::chassis::MonocoqueCodec;
