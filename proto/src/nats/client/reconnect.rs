//! What a lost connection hands to the one that replaces it.

use super::outgoing::Replay;
use super::subscription::Subscription;
use crate::nats::{Message, Sid};

/// What survives a lost connection into the next one, from
/// [`Connection::take_reconnect_state`](super::Connection::take_reconnect_state) to
/// [`Connection::resume`](super::Connection::resume): the subscriptions (with their
/// queued messages, policies and what remains of their maximums), the publishes the
/// kernel had not started to take (oldest first, within
/// [`reconnect_buffer_bytes`](super::ClientConfig::reconnect_buffer_bytes)), the servers
/// learned from `INFO`, and the id counters (so sids stay the same and request ids are
/// never reused).
///
/// Messages are never delivered twice to a subscription, nor lost from a backpressured
/// one: queued ones (and the one waiting for room) move with it, and the server does not
/// redeliver. A publish the kernel took in part or whole is not
/// replayed (at most once), except that a driver which drops output still in flight
/// when the connection is removed may have sent bytes the state still counts as unsent.
#[derive(Debug, Default)]
pub struct ReconnectState {
    pub(super) subscriptions: Vec<(u64, Subscription)>,
    pub(super) last_sid: u64,
    pub(super) last_request: u64,
    pub(super) last_ping: u64,
    pub(super) known_servers: Vec<String>,
    pub(super) replay: Replay,
    /// A message waiting for room in a backpressured subscription.
    pub(super) stalled: Option<Message>,
}

impl ReconnectState {
    /// The sids of the subscriptions carried over (ended ones still holding queued
    /// messages included), in sid order.
    pub fn subscriptions(&self) -> impl Iterator<Item = &Sid> + '_ {
        self.subscriptions.iter().map(|(_, s)| &s.sid)
    }

    /// Publishes to replay, and their bytes.
    pub fn replay_len(&self) -> (usize, usize) {
        (self.replay.frames.len(), self.replay.bytes)
    }

    /// Unsent publishes dropped because they did not fit in the reconnect buffer.
    pub fn dropped_publishes(&self) -> usize {
        self.replay.dropped
    }

    /// The servers learned so far.
    pub fn known_servers(&self) -> &[String] {
        &self.known_servers
    }
}
