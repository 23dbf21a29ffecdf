//! What a lost connection hands to the one that replaces it: subscriptions and
//! `CLIENT TRACKING` to restore, and the protocol it spoke.

use std::time::Instant;

use super::queue::Fate;
use super::{
    classify, special, subscriber_mode, Connection, ConnectionConfig, ConnectionError, SendError, Special,
    Subscriptions,
};
use crate::resp::{Cmd, Protocol};

/// What survives a lost connection into the next one, from
/// [`Connection::take_reconnect_state`] to [`Connection::resume`]: the subscriptions
/// (channels, patterns and shard channels), the `CLIENT TRACKING` command in force, and
/// the protocol the lost connection spoke, which RESP2 subscriber mode is judged with
/// while no connection is up ([`admits`](Self::admits)).
///
/// A connection whose restore was not answered yet (it was lost first) hands over
/// what it was restoring too, so nothing is forgotten across several failed attempts.
#[derive(Debug, Clone, Default)]
pub struct ReconnectState {
    pub(super) subscriptions: Subscriptions,
    pub(super) tracking: Option<Cmd>,
    pub(super) protocol: Option<Protocol>,
    pub(super) transaction_cut: bool,
}

impl ReconnectState {
    /// The subscriptions a new connection restores.
    pub fn subscriptions(&self) -> &Subscriptions {
        &self.subscriptions
    }

    /// The `CLIENT TRACKING ON ...` command a new connection replays.
    pub fn tracking(&self) -> Option<&Cmd> {
        self.tracking.as_ref()
    }

    /// The protocol the lost connection spoke (`None` for a default state).
    pub fn protocol(&self) -> Option<Protocol> {
        self.protocol
    }

    /// Whether the lost connection was inside a `MULTI` sent with
    /// [`send_buffered`](Connection::send_buffered): the transaction is gone with it,
    /// so a body must not send the rest of its commands (up to `EXEC` or `DISCARD`) on
    /// the next connection, where they would run on their own.
    pub fn transaction_cut(&self) -> bool {
        self.transaction_cut
    }

    /// For the requests a body still holds from before the loss, asked in order: whether
    /// the one named `name` (`None` for a whole
    /// [`send_transaction`](Connection::send_transaction)) belongs to the transaction
    /// the loss cut, and must fail instead of being sent. The transaction ends with its
    /// `EXEC`, `DISCARD` or `RESET` (which belongs to it too); from then on, and when no
    /// transaction was cut, the answer is `false`.
    pub fn in_cut_transaction(&mut self, name: Option<&[u8]>) -> bool {
        if !self.transaction_cut {
            return false;
        }
        if let Some(name) = name {
            if matches!(classify(name, || None), Special::EndMulti | Special::Reset) {
                self.transaction_cut = false;
            }
        }
        true
    }

    /// The commands a [resumed](Connection::resume) connection sends after its
    /// handshake, in order: `CLIENT TRACKING` first (RESP2 subscriber mode would refuse
    /// it after a subscribe), then `SUBSCRIBE`, `PSUBSCRIBE` and `SSUBSCRIBE` as needed.
    pub fn commands(&self) -> Vec<Cmd> {
        let mut out: Vec<Cmd> = self.tracking.iter().cloned().collect();
        out.extend(self.subscriptions.to_commands());
        out
    }

    /// [`Connection::admits`] while no connection is up: RESP2 subscriber mode judged
    /// with the lost connection's protocol and the subscriptions to restore.
    ///
    /// # Errors
    /// [`SendError::SubscriberMode`] for a command subscriber mode refuses.
    pub fn admits(&self, name: &[u8]) -> Result<(), SendError> {
        match self.protocol {
            Some(protocol) => subscriber_mode::check(protocol, !self.subscriptions.is_empty(), name),
            None => Ok(()),
        }
    }
}

/// A resumed connection's restore in progress.
#[derive(Debug, Default)]
pub(super) struct Restoring {
    /// The subscriptions being restored, kept until every restore command is answered:
    /// a connection lost before that hands them over again.
    pub carried: Subscriptions,
    /// Restore commands not answered yet.
    pub outstanding: usize,
}

impl Connection {
    /// Takes what a new connection needs to continue this one (see [`ReconnectState`]
    /// and [`resume`](Self::resume)): the subscriptions (with those a restore under way
    /// had not confirmed yet), the `CLIENT TRACKING` command in force and the protocol.
    /// This connection is poisoned with [`ConnectionError::Replaced`] unless it already
    /// was (its pending requests fail), and keeps none of it.
    pub fn take_reconnect_state(&mut self) -> ReconnectState {
        // Confirmations held back for a visit still count.
        self.settle(self.quiet_since);
        let transaction_cut = self.in_multi;
        if !self.guard.is_poisoned() {
            self.poison(ConnectionError::Replaced);
        }
        self.in_multi = false;
        let mut subscriptions = std::mem::take(&mut self.subscriptions);
        let carried = std::mem::take(&mut self.restoring.carried);
        if !self.connected || self.restoring.outstanding > 0 {
            subscriptions.extend(&carried);
        }
        self.restoring.outstanding = 0;
        ReconnectState {
            subscriptions,
            tracking: self.tracking.take(),
            protocol: Some(if self.connected {
                self.protocol
            } else {
                self.assumed_protocol
            }),
            transaction_cut,
        }
    }

    /// A connection that continues the one `state` was taken from: the handshake is
    /// queued as by [`new`](Self::new), then the commands that restore `state`
    /// ([`ReconnectState::commands`]), held until the handshake succeeds and before
    /// anything sent since. Their replies are consumed here: an error reply is an
    /// [`Event::RestoreFailed`](super::Event::RestoreFailed). Until the handshake
    /// completes, RESP2 subscriber mode is judged with the lost connection's protocol.
    pub fn resume(config: ConnectionConfig, state: ReconnectState, now: Instant) -> Self {
        let mut conn = Self::new(config, now);
        if let Some(protocol) = state.protocol {
            conn.assumed_protocol = protocol;
        }
        for cmd in state.commands() {
            let class = special(&cmd);
            // Every restore command is a subscribe or `CLIENT TRACKING ON`: always
            // accepted outside a transaction.
            if let Ok(kind) = conn.kind_of(&cmd, &class) {
                conn.queue_cmd(&cmd, &class, kind, Fate::Restore, now);
            }
        }
        conn.tracking = state.tracking;
        conn.restoring.carried = state.subscriptions;
        conn
    }
}
