//! What a lost connection hands to the one that replaces it.

use bytes::Bytes;

use super::outgoing::Replay;
use super::subscription::Subscription;
use super::SendError;
use crate::chassis::{Backpressure, IoArena};
use crate::nats::{encode, Headers, Limits, Message, Sid};

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
///
/// While no connection is up, the body can keep publishing into the state
/// ([`publish`](Self::publish)): those publishes follow the replayed ones, within the
/// same reconnect buffer.
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
    /// The lost connection's encoding limits (its server's `max_payload`).
    pub(super) limits: Limits,
    /// The lost connection's server said it does not support headers.
    pub(super) headers_unsupported: bool,
    /// The reconnect buffer's size, in bytes of publish frames.
    pub(super) budget: usize,
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

    /// Buffers a `PUB` (or, with headers, an `HPUB`) made while no connection is up: the
    /// connection that [resumes](super::Connection::resume) this state sends it after
    /// the publishes already carried, in the order given. The reconnect buffer
    /// ([`reconnect_buffer_bytes`](super::ClientConfig::reconnect_buffer_bytes) of the
    /// connection the state was taken from) is a hard bound here, so that nothing
    /// accepted is dropped when the state moves into a connection and, if that one
    /// fails before sending, out of it again.
    ///
    /// # Errors
    /// [`SendError::Encode`] for an invalid subject or reply, or a payload over the last
    /// server's `max_payload`; [`SendError::HeadersNotSupported`] if that server had
    /// none; [`SendError::Backpressure`] when the frame does not fit in what is left of
    /// the buffer. Nothing is buffered on error, and what was is kept.
    pub fn publish(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&Headers>,
        payload: &Bytes,
    ) -> Result<(), SendError> {
        if headers.is_some() && self.headers_unsupported {
            return Err(SendError::HeadersNotSupported);
        }
        let mut frame = IoArena::new();
        encode::publish(&mut frame, &self.limits, subject, reply, headers, payload)?;
        let available = self.budget.saturating_sub(self.replay.bytes);
        if frame.len() > available {
            return Err(SendError::Backpressure(Backpressure {
                requested: frame.len(),
                available,
                capacity: self.budget,
            }));
        }
        self.replay.bytes += frame.len();
        self.replay.frames.push(Bytes::from(frame.to_vec()));
        Ok(())
    }

    /// The servers learned so far.
    pub fn known_servers(&self) -> &[String] {
        &self.known_servers
    }
}
