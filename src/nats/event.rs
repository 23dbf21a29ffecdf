//! What a [`Client`](super::Client) reports beside messages and replies.

use monocoque_proto::nats::client::{ConnectionError, SubscriptionEnd};
use monocoque_proto::nats::{ServerError, Sid};

/// Something the application may want to hear about, from
/// [`Client::next_event`](super::Client::next_event). Bounded: past
/// [`MAX_QUEUED_EVENTS`] the oldest are dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The connection was lost; the next blocking call reconnects.
    Disconnected(ConnectionError),
    /// A new connection is up (after a loss), to `server` (`host:port`); subscriptions
    /// were restored and unsent publishes replayed.
    Reconnected {
        /// The server it connected to.
        server: String,
    },
    /// Messages for a subscription with the drop policy were dropped because its queue
    /// was full (the application is a slow consumer).
    SlowConsumer {
        /// The subscription.
        sid: Sid,
        /// Messages dropped since the last report.
        dropped: u64,
    },
    /// A subscription ended on its own (maximum reached, or refused by the server).
    SubscriptionEnded {
        /// The subscription.
        sid: Sid,
        /// Why.
        reason: SubscriptionEnd,
    },
    /// A `-ERR` after which the connection continues (permissions, invalid subject in
    /// pedantic mode, too many subscriptions).
    ServerError(ServerError),
    /// An `INFO` named servers not known before (`host:port`); they join the servers
    /// tried when reconnecting.
    ServersDiscovered(Vec<String>),
    /// The server is shutting down (lame-duck mode): expect to move to another one.
    LameDuck,
    /// The connection was lost with more unsent publishes than the reconnect buffer
    /// ([`ClientOptions::reconnect_buffer_size`](super::ClientOptions::reconnect_buffer_size))
    /// holds: the oldest that fit are replayed on the next connection, these `count`
    /// newer ones are not. Reported right after the [`Disconnected`](Self::Disconnected)
    /// it belongs to. (Bytes the kernel had already taken are the server's to lose, as
    /// with any at-most-once client.)
    PublishesDropped {
        /// Publishes not replayed.
        count: usize,
    },
}

/// Most events kept for [`Client::next_event`](super::Client::next_event).
pub const MAX_QUEUED_EVENTS: usize = 4096;
