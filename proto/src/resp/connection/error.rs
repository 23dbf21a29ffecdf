//! Why a connection, a request or a send failed.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;

use crate::chassis::Backpressure;
use crate::resp::{DecodeError, Value};

/// Why a connection was poisoned: the stream can no longer be trusted, so every pending
/// request fails and the body reconnects.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConnectionError {
    /// The server sent bytes that are not valid RESP, or a value over a limit.
    #[error("malformed reply stream: {0}")]
    Decode(#[from] DecodeError),
    /// A reply arrived with no request waiting for it.
    #[error("reply with no pending request")]
    UnexpectedReply(Box<Value>),
    /// A reply was half received when its request's deadline passed.
    #[error("a reply was half received when its request timed out")]
    TimedOutMidFrame,
    /// The server closed the connection (or the driver reported it broken).
    #[error("connection closed by the server")]
    Closed,
    /// The server went silent while a reply was owed: nothing was received (and no
    /// outgoing byte was taken by the kernel) for `silent_for`, at least
    /// [`ConnectionConfig::health_check_timeout`](super::ConnectionConfig::health_check_timeout).
    /// A frozen server, a dead host or a broken path; the body reconnects.
    #[error("server silent for {silent_for:?} while a reply was owed")]
    Stale {
        /// How long nothing came, when it was noticed.
        silent_for: Duration,
    },
    /// The handshake did not complete.
    #[error("handshake failed: {0}")]
    Handshake(#[from] HandshakeError),
    /// The body took the connection's state for a new connection
    /// ([`take_reconnect_state`](super::Connection::take_reconnect_state)) while this
    /// one was still usable.
    #[error("connection replaced by a new one")]
    Replaced,
}

/// One step of the connection handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HandshakeCommand {
    /// `HELLO 3 [AUTH ...] [SETNAME ...]`.
    Hello,
    /// `AUTH [username] password` (RESP2, or after `HELLO` was refused).
    Auth,
    /// `CLIENT SETNAME name`.
    SetName,
    /// `SELECT db`.
    Select,
}

impl fmt::Display for HandshakeCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hello => "HELLO",
            Self::Auth => "AUTH",
            Self::SetName => "CLIENT SETNAME",
            Self::Select => "SELECT",
        })
    }
}

/// Why the handshake failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The server answered a handshake command with an error, e.g. `WRONGPASS ...` to
    /// `AUTH`.
    #[error("server refused {command}: {}", String::from_utf8_lossy(message))]
    Rejected {
        /// The command it refused.
        command: HandshakeCommand,
        /// The server's error message, verbatim (`WRONGPASS invalid username-password
        /// pair or user is disabled.`).
        message: Bytes,
    },
    /// A handshake command got no reply before the request timeout.
    #[error("no reply to {command} before the deadline")]
    Timeout {
        /// The command that went unanswered.
        command: HandshakeCommand,
    },
}

/// Why a request ended with [`Event::Failed`](super::Event::Failed) instead of a reply.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequestError {
    /// No reply before the request timeout. The connection stays usable: the late reply
    /// is consumed and dropped when it comes.
    #[error("request timed out")]
    Timeout,
    /// The connection was poisoned before the reply came.
    #[error("connection poisoned: {0}")]
    Poisoned(ConnectionError),
    /// A transaction from [`send_transaction`](super::Connection::send_transaction) did
    /// not run as sent: `MULTI` or some of its commands were refused. (Boxed: it is rare
    /// and large, and every event stays small.)
    #[error(transparent)]
    TransactionAborted(Box<TransactionAborted>),
}

/// A transaction that the server refused to run as it was sent.
///
/// Redis discards a transaction when a command fails to queue (an unknown command, a
/// wrong number of arguments, out of memory); `EXEC` then answers `-EXECABORT`. The
/// queueing errors say why, so they are kept here with `EXEC`'s own reply.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionAborted {
    /// `MULTI`'s reply, if it was not `+OK` (e.g. `MULTI` refused in RESP2 subscribed
    /// mode). The commands then ran on their own, outside any transaction.
    pub multi: Option<Value>,
    /// The commands that were not `+QUEUED`, with what the server answered instead.
    pub rejected: Vec<QueueRejection>,
    /// `EXEC`'s reply: usually `-EXECABORT Transaction discarded because of previous
    /// errors.`
    pub exec: Value,
}

impl fmt::Display for TransactionAborted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("transaction aborted")?;
        if let Some(multi) = &self.multi {
            write!(f, "; MULTI: {}", describe(multi))?;
        }
        for r in &self.rejected {
            write!(f, "; command {}: {}", r.index, describe(&r.reply))?;
        }
        write!(f, "; EXEC: {}", describe(&self.exec))
    }
}

impl std::error::Error for TransactionAborted {}

fn describe(value: &Value) -> String {
    match value.as_error().or_else(|| value.as_bytes()) {
        Some(text) => String::from_utf8_lossy(text).into_owned(),
        None => format!("{value:?}"),
    }
}

/// One command of a transaction that the server did not queue.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueRejection {
    /// Its position in the slice given to
    /// [`send_transaction`](super::Connection::send_transaction).
    pub index: usize,
    /// What the server answered instead of `+QUEUED`, e.g. `-ERR unknown command`.
    pub reply: Value,
}

/// Why [`send_buffered`](super::Connection::send_buffered) or
/// [`send_transaction`](super::Connection::send_transaction) refused a request. Nothing
/// was queued or sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SendError {
    /// The connection is poisoned; the body must reconnect.
    #[error("connection poisoned: {0}")]
    Poisoned(ConnectionError),
    /// The outgoing bytes are over the high-water mark
    /// ([`ConnectionConfig::max_outgoing_bytes`](super::ConnectionConfig::max_outgoing_bytes)):
    /// flush the arena and try again.
    #[error(transparent)]
    Backpressure(#[from] Backpressure),
    /// [`ConnectionConfig::max_pending`](super::ConnectionConfig::max_pending) requests
    /// already wait for replies: read some replies first.
    #[error("{max} requests already pending")]
    TooManyPending {
        /// The configured limit.
        max: usize,
    },
    /// A command with no arguments at all (`Cmd::default()`): the server would answer
    /// nothing, and every later reply would go to the wrong request.
    #[error("empty command")]
    EmptyCommand,
    /// `send_transaction` while a `MULTI` sent with `send_buffered` is still open, or
    /// `MULTI`, `EXEC` or `DISCARD` inside `send_transaction`'s commands.
    #[error("transaction inside a transaction")]
    NestedTransaction,
    /// A command whose replies a transaction would hide (`SUBSCRIBE` and its family,
    /// `HELLO`, `RESET` in `send_transaction`), so the connection could no longer tell
    /// its state.
    #[error("{} is not allowed inside a transaction", String::from_utf8_lossy(command))]
    NotAllowedInTransaction {
        /// The command's name, as given.
        command: Bytes,
    },
    /// A command that breaks reply correlation (`MONITOR`, `CLIENT REPLY`): use a
    /// dedicated connection type for it.
    #[error(
        "{} is not supported on a request/reply connection",
        String::from_utf8_lossy(command)
    )]
    Unsupported {
        /// The command's name, as given.
        command: Bytes,
    },
    /// A RESP2 connection in subscriber mode (it has subscriptions, or a subscribe is
    /// on its way) accepts only the subscribe family, `PING`, `QUIT` and `RESET`; the
    /// server would refuse anything else.
    #[error(
        "{} is not allowed in RESP2 subscriber mode (only (P|S)(UN)SUBSCRIBE, PING, QUIT, RESET)",
        String::from_utf8_lossy(command)
    )]
    SubscriberMode {
        /// The command's name, as given (`MULTI` for a transaction).
        command: Bytes,
    },
}

impl From<ConnectionError> for SendError {
    fn from(e: ConnectionError) -> Self {
        SendError::Poisoned(e)
    }
}
