//! What a [`Socket`](super::Socket) call can fail with.

use std::io;

use monocoque_proto::zmtp::socket::SocketError;
use monocoque_proto::zmtp::ZmtpError;
use thiserror::Error;

use super::endpoint::EndpointError;
use crate::driver::DriverError;

/// Why a ZeroMQ socket call failed.
#[derive(Debug, Error)]
pub enum ZmqError {
    /// The driver could not be created.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The options do not make a valid connection configuration (an identity over 255
    /// bytes or starting with a zero byte).
    #[error("invalid socket options: {0}")]
    Options(#[source] ZmtpError),
    /// The security options do not make a mechanism (a malformed CURVE key).
    #[error(transparent)]
    Security(#[from] super::SecurityError),
    /// The operating system's random generator failed (making a CURVE key pair).
    #[error("the operating system's random generator failed: {0}")]
    Random(#[source] getrandom::Error),
    /// The endpoint was not understood.
    #[error(transparent)]
    Endpoint(#[from] EndpointError),
    /// Binding, or starting a connection, failed.
    #[error("{what} {endpoint} failed: {source}")]
    Io {
        /// `bind` or `connect`.
        what: &'static str,
        /// The endpoint.
        endpoint: String,
        /// The operating system's error.
        #[source]
        source: io::Error,
    },
    /// A driver turn failed.
    #[error("the driver failed: {0}")]
    Turn(#[source] io::Error),
    /// The socket type cannot do this (a PULL sending), or is not supported.
    #[error(transparent)]
    Socket(SocketError),
    /// The message could not be queued before the timeout (every peer at the HWM, or
    /// none connected); the message is given back.
    #[error("the send timed out: every peer's queue stayed full (or no peer connected)")]
    SendTimeout(monocoque_proto::zmtp::Message),
}
