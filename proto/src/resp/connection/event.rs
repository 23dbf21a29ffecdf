//! What a [`Connection`](super::Connection) reports: replies, failures, messages.

use std::fmt;

use bytes::Bytes;

use super::{ConnectionError, MessageKind, RequestError};
use crate::resp::{Protocol, Value};

/// Identifies one request (a command or a transaction) on one connection.
///
/// Returned by [`send_buffered`](super::Connection::send_buffered) and
/// [`send_transaction`](super::Connection::send_transaction); the request's one terminal
/// event ([`Event::Reply`] or [`Event::Failed`]) carries it. Ids increase in send order
/// and are never reused on a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub(crate) u64);

impl RequestId {
    /// The id as a number (for logs and maps).
    pub fn get(self) -> u64 {
        self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// Something the application must hear about, from
/// [`poll_event`](super::Connection::poll_event).
///
/// Every request gets exactly one terminal event, [`Reply`](Self::Reply) or
/// [`Failed`](Self::Failed), unless it was [abandoned](super::Connection::abandon).
/// Out-of-band frames (pushes) never complete a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The handshake succeeded; commands sent so far are now on their way. Comes before
    /// any [`Reply`](Self::Reply).
    Connected {
        /// The protocol the server agreed to.
        protocol: Protocol,
        /// The server's `HELLO` reply (a map with `server`, `version`, `proto`, `id`,
        /// `mode`, `role`, `modules`), when `HELLO` succeeded.
        hello: Option<Value>,
    },
    /// The server's reply to a request. Error replies (`-ERR ...`) are replies too: see
    /// [`Value::is_error`].
    ///
    /// For a subscribe-family command in RESP3 (or in RESP2 subscribed mode), the value
    /// is an array of the confirmations, one per channel.
    Reply {
        /// Which request.
        id: RequestId,
        /// What the server answered.
        value: Value,
    },
    /// A request ends without a reply.
    Failed {
        /// Which request.
        id: RequestId,
        /// Why.
        error: RequestError,
    },
    /// A message published on a subscribed channel, pattern or shard channel.
    Message {
        /// Which kind of subscription delivered it (the pattern, for `PSUBSCRIBE`).
        kind: MessageKind,
        /// The channel it was published on.
        channel: Bytes,
        /// What was published.
        payload: Bytes,
    },
    /// Client-side caching (`CLIENT TRACKING`): these keys changed; `None` means every
    /// key (the server flushed or ran out of tracking memory).
    Invalidate {
        /// The keys to drop from a local cache.
        keys: Option<Vec<Bytes>>,
    },
    /// Any other out-of-band frame: an unknown RESP3 push, or a subscribe confirmation
    /// that no request was waiting for (e.g. the `sunsubscribe` a cluster node sends
    /// when a slot moves away).
    Push(Value),
    /// The server refused a command this connection sent on its own to restore what a
    /// lost one had ([`resume`](super::Connection::resume)): a subscription or
    /// `CLIENT TRACKING` is not in force any more (e.g. `-NOPERM` after an ACL change).
    RestoreFailed {
        /// The server's error reply.
        reply: Value,
    },
    /// The connection is finished: every pending request got its
    /// [`Failed`](Self::Failed) first, every later call reports this error. Emitted once.
    Poisoned(ConnectionError),
}
