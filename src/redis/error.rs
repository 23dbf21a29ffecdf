//! What can go wrong talking to Redis, as one typed enum.

use std::fmt;

use bytes::Bytes;
use monocoque_proto::resp::{ConnectionError, HandshakeError, RequestError, SendError, TransactionAborted, Value};

use super::options::UrlError;
use super::LinkError;

/// Why a [`Client`](super::Client) call, or one entry of a pipeline, failed.
///
/// It is `Clone` so that one connection failure can fail every request it affected
/// (I/O errors are shared behind an [`Arc`](std::sync::Arc)).
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The link under the connection failed: a malformed URL, the driver, the
    /// connect, its timeout, or a reconnect that ran out of attempts.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The server refused the handshake (wrong password, unknown user, bad database).
    #[error("handshake failed: {0}")]
    Handshake(HandshakeError),
    /// The connection was poisoned (closed by the server, a malformed or stalled reply,
    /// a reply with no request): the request may or may not have run on the server, so it
    /// is not sent again. The next call reconnects.
    #[error("connection lost: {0}")]
    Connection(ConnectionError),
    /// The server answered with an error reply (`-ERR ...`, `-WRONGTYPE ...`).
    #[error("server error: {0}")]
    Server(ServerError),
    /// No reply within [`ClientOptions::response_timeout`](super::ClientOptions::response_timeout).
    /// The connection stays usable; the late reply is dropped when it comes.
    #[error("no reply within the response timeout")]
    Timeout,
    /// A reply of an unexpected type for a typed helper (e.g. an array where an integer
    /// was expected).
    #[error("unexpected reply: expected {expected}, got {got:?}")]
    UnexpectedReply {
        /// What the helper expected.
        expected: &'static str,
        /// What came.
        got: Box<Value>,
    },
    /// A `MULTI`/`EXEC` transaction from [`Client::transaction`](super::Client::transaction)
    /// was discarded by the server. (Boxed: it is rare and large, and every `Result`
    /// of a reply stays small.)
    #[error(transparent)]
    TransactionAborted(Box<TransactionAborted>),
    /// The command cannot be sent on this connection (an empty command, `MONITOR`,
    /// `CLIENT REPLY`, a nested transaction, ...). Nothing was sent.
    #[error("command refused: {0}")]
    Refused(SendError),
    /// A RESP2 connection in subscriber mode only accepts the subscribe family, `PING`,
    /// `QUIT` and `RESET`; `command` was refused before it was sent.
    #[error("{command} is not allowed in RESP2 subscriber mode (only (P|S)(UN)SUBSCRIBE, PING, QUIT, RESET)")]
    SubscriberMode {
        /// The refused command's name.
        command: String,
    },
    /// Commands buffered but not yet handed to the connection exceed
    /// [`ClientOptions::max_buffered_bytes`](super::ClientOptions::max_buffered_bytes):
    /// flush first.
    #[error("{buffered} bytes already buffered (limit {limit}): flush first")]
    Backpressure {
        /// Bytes already buffered.
        buffered: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The feature needs a RESP3 connection (e.g. client-side tracking without a
    /// redirect).
    #[error("{0} needs a RESP3 connection")]
    NeedsResp3(&'static str),
}

impl Error {
    /// The server error, if this is an error reply.
    pub fn server_error(&self) -> Option<&ServerError> {
        match self {
            Error::Server(e) => Some(e),
            _ => None,
        }
    }

    /// Whether the connection carrying the request failed (so the request may or may
    /// not have run), as opposed to an answer from the server.
    pub fn is_connection_failure(&self) -> bool {
        match self {
            Error::Connection(_) => true,
            Error::Link(e) => e.is_connection_failure(),
            _ => false,
        }
    }

    pub(crate) fn unexpected(expected: &'static str, got: Value) -> Self {
        Error::UnexpectedReply {
            expected,
            got: Box::new(got),
        }
    }
}

impl From<RequestError> for Error {
    fn from(e: RequestError) -> Self {
        match e {
            RequestError::Timeout => Error::Timeout,
            RequestError::Poisoned(c) => Error::from(c),
            RequestError::TransactionAborted(t) => Error::TransactionAborted(t),
        }
    }
}

impl From<SendError> for Error {
    /// A request the connection refused: RESP2 subscriber mode has its own variant.
    fn from(e: SendError) -> Self {
        match e {
            SendError::SubscriberMode { command } => Error::SubscriberMode {
                command: String::from_utf8_lossy(&command).into_owned(),
            },
            other => Error::Refused(other),
        }
    }
}

impl From<ConnectionError> for Error {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Handshake(h) => Error::Handshake(h),
            other => Error::Connection(other),
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

/// An error reply from the server: `-CODE message` (RESP2 and RESP3 simple errors) or
/// a RESP3 blob error.
///
/// Redis starts every error with an upper-case code (`ERR`, `WRONGTYPE`, `NOAUTH`,
/// `NOPERM`, `MOVED`, ...), which is split off so callers can match on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerError {
    code: String,
    message: String,
}

impl ServerError {
    /// Splits the text of an error reply into its code and message. Text that does not
    /// start with an upper-case word gets the code `ERR`.
    pub fn new(text: &[u8]) -> Self {
        let text = String::from_utf8_lossy(text);
        let (first, rest) = match text.split_once(' ') {
            Some((first, rest)) => (first, rest),
            None => (&*text, ""),
        };
        let is_code = !first.is_empty()
            && first
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if is_code {
            Self {
                code: first.to_owned(),
                message: rest.to_owned(),
            }
        } else {
            Self {
                code: "ERR".to_owned(),
                message: text.into_owned(),
            }
        }
    }

    /// The error's code: `ERR`, `WRONGTYPE`, `NOAUTH`, `WRONGPASS`, `NOPERM`, ...
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The text after the code.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ServerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.message.is_empty() {
            f.write_str(&self.code)
        } else {
            write!(f, "{} {}", self.code, self.message)
        }
    }
}

impl std::error::Error for ServerError {}

impl From<&Bytes> for ServerError {
    fn from(text: &Bytes) -> Self {
        ServerError::new(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_error_splits_code_and_message() {
        let e = ServerError::new(b"WRONGTYPE Operation against a key holding the wrong kind of value");
        assert_eq!(e.code(), "WRONGTYPE");
        assert_eq!(e.message(), "Operation against a key holding the wrong kind of value");
        assert_eq!(
            e.to_string(),
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        );
        let bare = ServerError::new(b"NOAUTH");
        assert_eq!((bare.code(), bare.message()), ("NOAUTH", ""));
        let odd = ServerError::new(b"something went wrong");
        assert_eq!((odd.code(), odd.message()), ("ERR", "something went wrong"));
    }

    #[test]
    fn errors_can_cross_threads() {
        fn send_sync<T: Send + Sync + 'static>() {}
        send_sync::<Error>();
        send_sync::<ServerError>();
    }

    #[test]
    fn request_errors_map_to_client_errors() {
        assert!(matches!(Error::from(RequestError::Timeout), Error::Timeout));
        let lost = Error::from(RequestError::Poisoned(ConnectionError::Closed));
        assert!(matches!(lost, Error::Connection(ConnectionError::Closed)));
        assert!(lost.is_connection_failure());
        let handshake = HandshakeError::Timeout {
            command: monocoque_proto::resp::HandshakeCommand::Auth,
        };
        assert!(matches!(
            Error::from(ConnectionError::Handshake(handshake)),
            Error::Handshake(HandshakeError::Timeout { .. })
        ));
    }
}
