//! The ZMTP 3.x engine (ZeroMQ's wire protocol): greeting, framing, commands and the
//! NULL, PLAIN and CURVE handshakes, sans-IO and zero-copy.
//!
//! - [`Greeting`]: the 64-byte greeting, sent whole and parsed as it arrives, with
//!   version negotiation down to 3.0 ([`Version::negotiate`]).
//! - [`FrameDecoder`]: frames out of a [`SegmentedBuffer`](crate::SegmentedBuffer) as
//!   [`Frame`]s whose bodies are views of the received segments; MORE, LONG and
//!   COMMAND flags, reserved bits refused, sizes checked against a limit before
//!   anything is reserved. [`encode_message`] and [`Command::encode`] write frames
//!   into an [`IoArena`](crate::IoArena).
//! - [`Command`]: `READY` (with [`Metadata`]), `ERROR`, `SUBSCRIBE`/`CANCEL`,
//!   `PING`/`PONG`, and PLAIN's `HELLO`/`WELCOME`/`INITIATE`; [`Subscription`] reads
//!   ZMTP 3.0's subscription messages too.
//! - [`Handshake`]: the NULL, PLAIN and CURVE mechanisms as a state machine, socket-type
//!   pairs checked against RFC 23's table ([`SocketType::is_compatible_with`]); a PLAIN
//!   or CURVE server asks its caller to judge credentials or the client's key
//!   ([`Progress::Authenticate`]).
//! - [`zap`]: ZAP's request and reply (RFC 27), the wire form of the handshake's
//!   [`AuthRequest`] and [`AuthDecision`], for a server that asks a ZAP handler.
//! - [`curve`]: CurveZMQ's boxes, keys (Z85, [`curve::KeyPair::from_secret`]), the fresh
//!   random bytes each handshake is given ([`curve::CurveRandom`]) and the
//!   [`curve::MessageCipher`] that seals every frame after a CURVE handshake.
//! - [`Connection`]: one connection as a chassis [`Session`](crate::Session):
//!   handshake, then multipart messages in and out, `PING` answered.
//! - [`socket`]: the routing and queueing rules of every socket type (REQ, REP, DEALER,
//!   ROUTER, PUB, SUB, XPUB, XSUB, PUSH, PULL, PAIR) over many connections
//!   ([`socket::SocketLogic`]), with high-water marks in messages.
//!
//! ```
//! use bytes::Bytes;
//! use monocoque_proto::{IoArena, SegmentedBuffer};
//! use monocoque_proto::zmtp::{Handshake, HandshakeConfig, Progress, SocketType};
//!
//! // A DEALER's handshake, fed what a libzmq ROUTER sends.
//! let mut hs = Handshake::new(HandshakeConfig::null(SocketType::Dealer)).unwrap();
//! let mut out = IoArena::new();
//! let mut input = SegmentedBuffer::new();
//! assert_eq!(hs.handle(&mut input, &mut out).unwrap(), Progress::Pending);
//! assert_eq!(out.len(), 64 + 2 + 6 + 1 + 11 + 4 + 6 + 1 + 8 + 4); // greeting + READY
//!
//! // libzmq's greeting, in its two pieces, then its READY.
//! input.push_slice(&[0xFF, 0, 0, 0, 0, 0, 0, 0, 1, 0x7F, 3]);
//! assert_eq!(hs.handle(&mut input, &mut out).unwrap(), Progress::Pending);
//! let mut rest = vec![1u8];
//! rest.extend_from_slice(b"NULL");
//! rest.resize(53, 0);
//! input.push_slice(&rest);
//! input.push_slice(b"\x04\x29\x05READY\x0bSocket-Type\x00\x00\x00\x06ROUTER\x08Identity\x00\x00\x00\x00");
//! let Progress::Established(peer) = hs.handle(&mut input, &mut out).unwrap() else { panic!() };
//! assert_eq!(peer.peer_socket_type, SocketType::Router);
//! ```

mod command;
mod connection;
pub mod curve;
mod error;
mod frame;
mod greeting;
mod handshake;
mod message;
pub mod socket;
mod socket_type;
mod subscription;
pub mod zap;

pub use command::{Command, Metadata, RawCommand, IDENTITY, MAX_PING_CONTEXT, MAX_PROPERTY_VALUE, SOCKET_TYPE};
pub use connection::{Connection, ConnectionConfig, Event};
pub use error::ZmtpError;
pub use frame::{
    encode_command_frame, encode_frame, encode_header, encode_message, encode_message_frame, Frame, FrameDecoder,
    DEFAULT_MAX_FRAME_SIZE, FLAG_COMMAND, FLAG_LONG, FLAG_MORE, RESERVED_FLAGS,
};
pub use greeting::{Greeting, MechanismName, Version, GREETING_LEN};
pub use handshake::{AuthDecision, AuthRequest, Established, Handshake, HandshakeConfig, Mechanism, Progress};
pub use message::Message;
pub use socket_type::SocketType;
pub use subscription::Subscription;
