//! What a [`Connection`](super::Connection) reports to the application.

use std::fmt;

use super::{ConnectionError, RequestError};
use crate::nats::{EncodeError, Message, ServerError, ServerInfo, Sid};

/// Identifies one request on one connection and the connections that
/// [resume](super::Connection::resume) it. Ids increase and are never reused; the
/// request's one terminal event ([`Event::Response`] or [`Event::RequestFailed`])
/// carries it.
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

/// Identifies one [`ping`](super::Connection::ping); its [`Event::Pong`] carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PingId(pub(crate) u64);

impl PingId {
    /// The id as a number.
    pub fn get(self) -> u64 {
        self.0
    }
}

/// Why a subscription ended without the application unsubscribing it at once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionEnd {
    /// It received the maximum number of messages given to
    /// [`unsubscribe`](super::Connection::unsubscribe).
    MaxReached,
    /// The server refused it (`-ERR 'Permissions Violation for Subscription to ...'`).
    Refused(ServerError),
    /// It could not be sent again on the connection that
    /// [resumed](super::Connection::resume) it (the new configuration's limits refuse
    /// its subject).
    NotRestored(EncodeError),
}

/// Something the application must hear about, from
/// [`poll_event`](super::Connection::poll_event).
///
/// Every request gets exactly one terminal event, [`Response`](Self::Response) or
/// [`RequestFailed`](Self::RequestFailed). Subscription messages are not events: they
/// wait in their subscription's queue ([`next_message`](super::Connection::next_message)),
/// and [`Messages`](Self::Messages) says when a queue stops being empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake completed (the server answered the `PING` after `CONNECT`); ops
    /// held until now (resubscriptions, replayed and early publishes) are on their
    /// way. Comes once, before any message, response or pong; only what the first
    /// `INFO` says ([`ServersDiscovered`](Self::ServersDiscovered),
    /// [`LameDuck`](Self::LameDuck)) may precede it.
    Connected {
        /// The server's first `INFO`.
        info: Box<ServerInfo>,
    },
    /// A subscription's queue went from empty to non-empty: take its messages with
    /// [`next_message`](super::Connection::next_message). The next `Messages` for this
    /// sid comes only after its queue has been emptied.
    Messages {
        /// The subscription.
        sid: Sid,
    },
    /// Messages for a [`DropNew`](super::SlowConsumerPolicy::DropNew) subscription were
    /// dropped because its queue was full. Coalesced: at most one per subscription per
    /// input.
    SlowConsumer {
        /// The subscription.
        sid: Sid,
        /// Messages dropped since the last `SlowConsumer` for it.
        dropped: u64,
    },
    /// A subscription ended on its own; messages still queued for it can be taken,
    /// nothing more arrives.
    SubscriptionEnded {
        /// The subscription.
        sid: Sid,
        /// Why.
        reason: SubscriptionEnd,
    },
    /// The reply to a request.
    Response {
        /// Which request.
        id: RequestId,
        /// The reply (its `headers` may hold a status, e.g. 408 or 404: only 503 is
        /// turned into [`RequestError::NoResponders`]).
        message: Message,
    },
    /// A request ends without a reply.
    RequestFailed {
        /// Which request.
        id: RequestId,
        /// Why.
        error: RequestError,
    },
    /// The server answered a [`ping`](super::Connection::ping): everything sent before
    /// it has been processed.
    Pong {
        /// Which ping.
        id: PingId,
    },
    /// A `-ERR` after which the connection continues (a permissions violation, an
    /// invalid subject, too many subscriptions).
    ServerError(ServerError),
    /// An `INFO` named servers not known before; they are now in
    /// [`known_servers`](super::Connection::known_servers).
    ServersDiscovered {
        /// The new `host:port` entries, in the server's order.
        added: Vec<String>,
    },
    /// The server entered lame-duck mode: it is shutting down and the body should move
    /// to another server soon.
    LameDuck,
    /// The connection is finished: every pending request got its
    /// [`RequestFailed`](Self::RequestFailed) first, every later call reports this
    /// error. Emitted once, last.
    Poisoned(ConnectionError),
}
