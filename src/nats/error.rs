//! What can go wrong talking to a NATS server, as one typed enum.

use std::io;
use std::sync::Arc;

use monocoque_proto::nats::client::{ConnectionError, CredsError, NKeyError, RequestError, SendError};
use monocoque_proto::nats::{EncodeError, ServerError, ServerErrorKind};

use super::options::UrlError;
use super::LinkError;

/// Why a [`Client`](super::Client) or [`Subscription`](super::Subscription) call failed.
///
/// It is `Clone` so that one connection failure can be reported to several callers (I/O
/// errors are shared behind an [`Arc`]).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The link under the connection failed: a malformed URL, the driver, the
    /// connect, its timeout, or a reconnect that ran out of attempts.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The NKey seed is invalid.
    #[error("invalid NKey seed: {0}")]
    NKey(#[from] NKeyError),
    /// The `.creds` file could not be read.
    #[error("cannot read credentials file {path}: {source}")]
    CredsFile {
        /// The file.
        path: String,
        /// What the operating system said.
        source: Arc<io::Error>,
    },
    /// The `.creds` file's contents are invalid.
    #[error("invalid credentials file: {0}")]
    Creds(#[from] CredsError),
    /// The server refused the credentials (`-ERR 'Authorization Violation'`, expired
    /// or revoked), or the configuration cannot work with it (it requires TLS, it sent no
    /// nonce for an NKey). Reconnecting with the same settings would not help, so a
    /// reconnect does not try this server again, and gives up once every known server
    /// has refused.
    #[error("the server refused the connection: {0}")]
    Rejected(ConnectionError),
    /// The connection was poisoned (closed by the server, a malformed stream, a stale
    /// connection, a fatal `-ERR`). The next call reconnects.
    #[error("connection lost: {0}")]
    Connection(ConnectionError),
    /// The connection was lost and [`allow_reconnect`](super::ClientOptions::allow_reconnect)
    /// is off.
    #[error("connection lost and reconnecting is disabled: {0}")]
    Disconnected(ConnectionError),
    /// The operation cannot be sent: an invalid subject, reply or queue group, a payload
    /// over the server's `max_payload`, headers to a server without header support, an
    /// unknown subscription, too many pending requests. Nothing was sent; the connection
    /// is fine.
    #[error("refused: {0}")]
    Refused(SendError),
    /// A publish made while disconnected does not fit in what is left of the reconnect
    /// buffer ([`reconnect_buffer_size`](super::ClientOptions::reconnect_buffer_size)).
    /// Nothing was buffered; what was stays buffered, and the next blocking call
    /// ([`flush`](super::Client::flush)) reconnects and sends it.
    #[error(
        "reconnect buffer full: a {requested}-byte publish does not fit in the {available} bytes left of {capacity}"
    )]
    ReconnectBufferFull {
        /// Bytes the publish needs (its whole frame).
        requested: usize,
        /// Bytes left in the buffer.
        available: usize,
        /// The buffer's size.
        capacity: usize,
    },
    /// Nobody subscribes to the request's subject (the server answered 503).
    #[error("no responders")]
    NoResponders,
    /// No reply (or message) within the timeout; for calls without a timeout of their
    /// own, nothing done within
    /// [`operation_timeout`](super::ClientOptions::operation_timeout) (the kernel took
    /// no room for a flush or a publish, no `PONG`, no reconnect yet).
    #[error("timed out")]
    Timeout,
    /// The subscription ended (its maximum reached, the server refused it, or it was
    /// unsubscribed) and holds no more messages.
    #[error("subscription closed")]
    SubscriptionClosed,
}

impl Error {
    /// The server's `-ERR`, when a connection was lost or refused because of one.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Error::Rejected(e) | Error::Connection(e) | Error::Disconnected(e) => e.server_error(),
            Error::Link(LinkError::Reconnect { last, .. }) => last.server_error(),
            _ => None,
        }
    }

    /// Whether the server refused the credentials.
    pub fn is_auth_failure(&self) -> bool {
        self.server_error().is_some_and(|e| {
            matches!(
                e.kind(),
                ServerErrorKind::AuthorizationViolation
                    | ServerErrorKind::AuthenticationExpired
                    | ServerErrorKind::AuthenticationRevoked
            )
        })
    }

    /// Whether a publish was refused for being over the server's `max_payload`.
    pub fn is_max_payload(&self) -> bool {
        matches!(
            self,
            Error::Refused(SendError::Encode(EncodeError::PayloadTooLarge { .. }))
        ) || self
            .server_error()
            .is_some_and(|e| e.kind() == ServerErrorKind::MaxPayloadViolation)
    }

    /// Whether a connection failed (as opposed to an answer, a refusal or a timeout).
    pub fn is_connection_failure(&self) -> bool {
        match self {
            Error::Connection(_) | Error::Disconnected(_) => true,
            Error::Link(e) => e.is_connection_failure(),
            _ => false,
        }
    }
}

impl From<ConnectionError> for Error {
    fn from(e: ConnectionError) -> Self {
        if e.is_auth_or_config() {
            Error::Rejected(e)
        } else {
            Error::Connection(e)
        }
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::NoResponders => Error::NoResponders,
            RequestError::Timeout => Error::Timeout,
            RequestError::Poisoned(c) => Error::from(c),
        }
    }
}

/// A malformed URL given to [`Client::connect`](super::Client::connect) is the link's
/// failure: nothing was tried.
impl From<UrlError> for Error {
    fn from(e: UrlError) -> Self {
        Error::Link(LinkError::Url(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        let auth = Error::from(ConnectionError::Server(ServerError::new("'Authorization Violation'")));
        assert!(matches!(auth, Error::Rejected(_)));
        assert!(auth.is_auth_failure() && !auth.is_max_payload());
        let stale = Error::from(ConnectionError::StaleConnection { pings_out: 2 });
        assert!(matches!(stale, Error::Connection(_)) && stale.is_connection_failure());
        assert!(matches!(Error::from(ConnectionError::TlsRequired), Error::Rejected(_)));
        let max = Error::Refused(SendError::Encode(EncodeError::PayloadTooLarge { size: 2, max: 1 }));
        assert!(max.is_max_payload() && !max.is_connection_failure());
        let server_max = Error::from(ConnectionError::Server(ServerError::new("'Maximum Payload Violation'")));
        assert!(server_max.is_max_payload());
        assert!(matches!(Error::from(RequestError::NoResponders), Error::NoResponders));
        assert!(matches!(Error::from(RequestError::Timeout), Error::Timeout));
        let nested = Error::from(LinkError::reconnect(3, auth.clone()));
        assert!(nested.is_auth_failure());
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<Error>();
    }
}
