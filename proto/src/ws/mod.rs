//! WebSocket (RFC 6455), sans-IO: the server side of the opening handshake, framing
//! both ways, and [`WsSession`], which carries a byte-stream session (MQTT, section 6
//! of the MQTT specifications) in binary frames.
//!
//! - [`handshake`]: parse a client's HTTP/1.1 Upgrade request under strict limits,
//!   compute `Sec-WebSocket-Accept`, select a subprotocol, answer 101, 400 or 426;
//! - [`frame`]: a streaming [`FrameDecoder`] (masking per role, reserved bits and
//!   opcodes, fragmentation, control-frame rules, lengths checked against a maximum
//!   before anything is reserved) and the encoder;
//! - [`WsSession`]: the handshake, then the unmasked payload of binary frames to an
//!   inner [`Session`](crate::Session) and its output back in frames; pings answered,
//!   the closing handshake, typed errors ([`FrameError`], [`HandshakeError`]) with the
//!   status code or HTTP status each is answered with.

pub mod frame;
pub mod handshake;

mod error;
mod session;

pub use error::{CloseCode, FrameError, HandshakeError};
pub use frame::{Close, Frame, FrameDecoder, Opcode, Role};
pub use handshake::{Accepted, HandshakeConfig};
pub use session::{WsConfig, WsError, WsSession};
