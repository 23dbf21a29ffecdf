//! Stale-connection detection: the idle health-check `PING` and the silence rule.
//!
//! Time is what the caller passes in. The connection remembers since when the server has
//! been quiet (`quiet_since`: the last byte received, the moment a reply became owed on
//! an idle connection, or the last time the kernel was seen taking outgoing bytes).
//! Idle past [`health_check_interval`](super::ConnectionConfig::health_check_interval),
//! it queues a `PING` whose reply is consumed here; quiet past
//! [`health_check_timeout`](super::ConnectionConfig::health_check_timeout) while a reply
//! is owed, it is poisoned with [`ConnectionError::Stale`].

use std::time::Instant;

use super::queue::{Entry, Role};
use super::{Connection, ConnectionError, PING};

/// What the next health instant is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Health {
    /// The server has been silent too long while a reply is owed.
    Stale,
    /// The connection has been idle long enough for a `PING`.
    Ping,
    /// Outgoing bytes wait for the kernel: time to see whether it took some.
    Probe,
}

impl Connection {
    /// Before queueing a request: a reply now owed by an idle connection starts the
    /// silence clock, and bytes the kernel took since the last call are a sign of life.
    pub(super) fn before_queue(&mut self, now: Instant) {
        if self.connected && self.fifo.entries().is_empty() {
            self.quiet_since = self.quiet_since.max(now);
        }
        self.observe_progress(now);
    }

    /// Remembers how much is left to send, and when it was looked at.
    pub(super) fn mark_transmit(&mut self, now: Instant) {
        self.transmit_mark = self.transmit.len();
        self.transmit_mark_at = now;
    }

    /// Outgoing bytes the kernel took since the last mark are a sign of life (a long
    /// upload the server will answer only at its end). When some are still waiting,
    /// the kernel is taking them now; when none are, it took the last ones at some
    /// unknown time since the mark, so the mark's time is all that is proved.
    fn observe_progress(&mut self, now: Instant) {
        let len = self.transmit.len();
        if len < self.transmit_mark {
            let when = if len > 0 { now } else { self.transmit_mark_at };
            self.quiet_since = self.quiet_since.max(when);
        }
    }

    /// When the health check next needs [`handle_timeout`](Connection::handle_timeout):
    /// the idle `PING`, a look at upload progress, or the silence turning into
    /// staleness.
    pub(super) fn next_health_check(&self) -> Option<Instant> {
        self.health_due().map(|(at, _)| at)
    }

    /// The next health instant and what it is for.
    fn health_due(&self) -> Option<(Instant, Health)> {
        if !self.fifo.entries().is_empty() {
            // A reply is owed. A blocking command at the front may stay silent for as
            // long as it blocks; its own request timeout still applies.
            if self.fifo.front_is_blocking() {
                return None;
            }
            let timeout = self.config.health_check_timeout?;
            let stale_at = self.quiet_since.checked_add(timeout)?;
            if !self.transmit.is_empty() {
                // Bytes still wait for the kernel: look at their progress four times
                // per timeout, so the end of an upload is dated to within a quarter.
                if let Some(probe) = self.transmit_mark_at.checked_add(timeout / 4) {
                    if probe < stale_at {
                        return Some((probe, Health::Probe));
                    }
                }
            }
            return Some((stale_at, Health::Stale));
        }
        // Idle. Never inside an open `MULTI` (the PING would be queued into the user's
        // transaction) nor during the handshake (it has its own deadlines).
        if !self.connected || self.in_multi || !self.held_fifo.entries().is_empty() {
            return None;
        }
        let interval = self.config.health_check_interval?;
        Some((self.quiet_since.checked_add(interval)?, Health::Ping))
    }

    /// Runs from [`handle_timeout`](Connection::handle_timeout): sends the idle `PING`
    /// or declares the connection stale when their time has come.
    pub(super) fn check_health(&mut self, now: Instant) {
        self.observe_progress(now);
        match self.health_due() {
            Some((at, Health::Stale)) if now >= at => {
                let silent_for = now.saturating_duration_since(self.quiet_since);
                self.poison(ConnectionError::Stale { silent_for });
            }
            Some((at, Health::Ping)) if now >= at => {
                self.transmit.put_slice(PING);
                // No deadline: the silence rule judges it. `last_id` keeps owners in
                // order for `Fifo::abandon`'s binary search.
                self.fifo.push(Entry {
                    owner: self.last_id,
                    role: Role::Health,
                    deadline: None,
                });
                self.quiet_since = now;
            }
            _ => {}
        }
    }
}
