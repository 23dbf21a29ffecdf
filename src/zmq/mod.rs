//! ZeroMQ sockets over the ZMTP engine: [`Socket`], shaped like libzmq's API
//! (`bind`, `connect` to several endpoints, `send` and `recv` of multipart messages),
//! running every connection of the socket on one driver in the caller's thread.
//!
//! The rules of each socket type (round robin, routing by identity, subscriptions,
//! high-water marks) are [`monocoque_proto::zmtp::socket::SocketLogic`]'s; this body
//! dials, accepts, redials lost connections through the chassis' link supervisor
//! (libzmq's reconnect interval, backoff and jitter), and moves
//! messages between the logic and one [`Connection`](monocoque_proto::zmtp::Connection)
//! per peer. Supported types: all of RFC 23's (REQ, REP, DEALER, ROUTER, PUB,
//! SUB, XPUB, XSUB, PUSH, PULL, PAIR).

mod endpoint;
mod error;
mod options;
mod random;
mod socket;
mod zap;
mod zap_handler;

pub use endpoint::{Endpoint, EndpointError};
pub use error::ZmqError;
pub use monocoque_proto::zmtp::{Message, SocketType};
pub use options::{Authenticator, Options, SecurityError};
pub(crate) use random::connection;
pub use random::generate_keypair;
pub use socket::Socket;
pub use zap_handler::ZapHandler;
