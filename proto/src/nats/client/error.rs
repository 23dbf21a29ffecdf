//! Why a connection, a request or a send failed.

use crate::chassis::Backpressure;
use crate::nats::{DecodeError, EncodeError, ServerError, ServerErrorKind};

/// Why a connection was poisoned: it can no longer be used, every pending request has
/// failed with it, and the body reconnects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The server sent bytes that are not valid NATS, or a frame over a limit.
    #[error("malformed server stream: {0}")]
    Decode(#[from] DecodeError),
    /// The server sent something other than `INFO` first.
    #[error("the server did not start with INFO")]
    ExpectedInfo,
    /// The server requires TLS (`tls_required` in `INFO`), which this client does not
    /// speak yet.
    #[error("the server requires TLS, which is not supported")]
    TlsRequired,
    /// NKey or JWT authentication is configured but the server's `INFO` has no nonce
    /// to sign.
    #[error("NKey authentication configured but the server sent no nonce")]
    NonceMissing,
    /// The `CONNECT` could not be encoded (e.g. a JWT longer than the JSON line limit).
    #[error("cannot encode CONNECT: {0}")]
    Connect(EncodeError),
    /// The handshake (`INFO` .. `PONG`) did not complete within the connect timeout.
    #[error("handshake not complete before the connect timeout")]
    HandshakeTimeout,
    /// A keepalive `PING` was due while
    /// [`max_pings_out`](super::ClientConfig::max_pings_out) were unanswered.
    #[error("stale connection: {pings_out} PINGs unanswered")]
    StaleConnection {
        /// Unanswered keepalive `PING`s.
        pings_out: u32,
    },
    /// The server sent a `-ERR` after which it closes the connection (authorization
    /// violation, stale connection, maximum payload violation, ...). Permission
    /// violations and subject errors do not poison: they arrive as
    /// [`Event::ServerError`](super::Event::ServerError).
    #[error("server error: {}", String::from_utf8_lossy(.0.text()))]
    Server(ServerError),
    /// The server closed the connection (or the driver reported it broken).
    #[error("connection closed by the server")]
    Closed,
    /// The body took the connection's state to move it to a new connection
    /// ([`take_reconnect_state`](super::Connection::take_reconnect_state)).
    #[error("connection replaced")]
    Replaced,
}

impl ConnectionError {
    /// Whether reconnecting with the same credentials is pointless: the server refused
    /// them (authorization violation, expired or revoked credentials), or the
    /// configuration cannot work with the server (TLS, a missing nonce, an
    /// unencodable `CONNECT`).
    pub fn is_auth_or_config(&self) -> bool {
        match self {
            ConnectionError::Server(e) => matches!(
                e.kind(),
                ServerErrorKind::AuthorizationViolation
                    | ServerErrorKind::AuthenticationExpired
                    | ServerErrorKind::AuthenticationRevoked
            ),
            ConnectionError::TlsRequired | ConnectionError::NonceMissing | ConnectionError::Connect(_) => true,
            _ => false,
        }
    }

    /// The server's `-ERR`, when that is what poisoned the connection.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            ConnectionError::Server(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a request ended with [`Event::RequestFailed`](super::Event::RequestFailed)
/// instead of a [`Event::Response`](super::Event::Response).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// Nobody subscribes to the request's subject (the server answered with a 503
    /// status).
    #[error("no responders")]
    NoResponders,
    /// No reply before the request's timeout; a late reply is dropped.
    #[error("request timed out")]
    Timeout,
    /// The connection was poisoned before the reply came.
    #[error("connection poisoned: {0}")]
    Poisoned(ConnectionError),
}

/// Why [`publish`](super::Connection::publish), [`subscribe`](super::Connection::subscribe),
/// [`unsubscribe`](super::Connection::unsubscribe), [`request`](super::Connection::request)
/// or [`ping`](super::Connection::ping) refused. Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The connection is poisoned; the body must reconnect.
    #[error("connection poisoned: {0}")]
    Poisoned(ConnectionError),
    /// The op cannot be encoded: an invalid subject, reply, queue group, or a payload
    /// over the server's `max_payload`.
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Outgoing bytes are over the high-water mark (or, before the handshake completes,
    /// over the reconnect buffer): flush the arena (or wait for the handshake) and
    /// retry.
    #[error(transparent)]
    Backpressure(#[from] Backpressure),
    /// A publish with headers to a server whose `INFO` says it does not support them.
    #[error("the server does not support headers")]
    HeadersNotSupported,
    /// No active subscription has this sid.
    #[error("unknown subscription")]
    UnknownSubscription,
    /// [`max_pending_requests`](super::ClientConfig::max_pending_requests) requests
    /// already wait for replies.
    #[error("{max} requests already pending")]
    TooManyPendingRequests {
        /// The configured limit.
        max: usize,
    },
}

impl From<ConnectionError> for SendError {
    fn from(e: ConnectionError) -> Self {
        SendError::Poisoned(e)
    }
}
