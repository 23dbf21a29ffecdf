//! Calls that need a live connection: reconnecting first, flushing and retrying while
//! the session's buffer is full, reconnecting and retrying when the connection turns
//! out dead, all within the call's timeout.
//!
//! A call waiting for the kernel to take its output never polls: it asks its session to
//! have the driver report the write that made room ([`Retrying::report_room`]) or
//! emptied the buffer ([`Retrying::report_sent`]), and sleeps in the driver's turn until
//! that [`Activity::Sent`](monocoque_proto::Activity::Sent), the link's own events, or
//! its deadline.

use std::time::{Duration, Instant};

use monocoque_proto::Driver;

use super::{Body, Protocol, Redialed};

/// What a failed call on the session asks of [`Body::with_session`].
pub(crate) enum Retry<L, E> {
    /// The session's buffer is full: flush and try again.
    Backpressure,
    /// The connection turned out dead: reconnect and try again.
    Poisoned(L),
    /// The call itself was refused: the caller's error.
    Refused(E),
}

/// A protocol whose calls [`Body::with_session`] retries: how its send errors and its
/// reconnects map onto the call's outcome.
pub(crate) trait Retrying: Protocol {
    /// Why the session refused a call.
    type SendError;
    /// What to do about `error`, returned by a call on the session.
    fn retry(error: Self::SendError) -> Retry<Self::Lost, Self::Error>;
    /// The error of a call whose time ran out.
    fn timeout() -> Self::Error;
    /// Whether a lost connection may be re-established.
    fn may_redial(&self) -> bool;
    /// The error of a call that needs a connection when reconnecting is not allowed.
    fn disconnected(lost: Self::Lost) -> Self::Error;
    /// The error of a reconnect that did not end with a live link (`lost`: why the last
    /// connection was lost).
    fn unredialed(redialed: Redialed<Self::Error>, lost: Self::Lost) -> Self::Error;
    /// Bytes `session` holds that the kernel has not taken yet (what a flush waits on).
    fn outgoing(session: &Self::Session) -> usize;
    /// Asks `session` to have the driver report the first write that leaves at most
    /// `below` bytes of its output (once).
    fn report_sent(session: &mut Self::Session, below: usize);
    /// Asks `session` to have the driver report the write after which a call refused
    /// for a full buffer fits again (once).
    fn report_room(session: &mut Self::Session);
}

impl<D: Driver<P::Session>, P: Protocol> Body<D, P> {
    /// Makes sure a connection is up by `deadline`: buries a dead one, reconnects if
    /// allowed (a timeout when `deadline` comes first: the reconnect stays where it is,
    /// for the next call to continue).
    pub(crate) fn ensure_link(&mut self, deadline: Option<Instant>) -> Result<(), P::Error>
    where
        P: Retrying,
    {
        if self.try_link(deadline)? {
            return Ok(());
        }
        Err(P::unredialed(Redialed::Later, self.lost()))
    }

    /// [`ensure_link`](Self::ensure_link), except that `deadline` coming first is
    /// `Ok(false)` rather than the protocol's timeout.
    fn try_link(&mut self, deadline: Option<Instant>) -> Result<bool, P::Error>
    where
        P: Retrying,
    {
        self.bury_dead();
        if self.is_live() {
            return Ok(true);
        }
        if self.link.is_none() && !self.proto.may_redial() {
            return Err(P::disconnected(self.lost()));
        }
        match self.reconnect(deadline) {
            Ok(()) => Ok(true),
            Err(Redialed::Later) => Ok(false),
            Err(redialed) => Err(P::unredialed(redialed, self.lost())),
        }
    }

    /// One step of a call waiting until `deadline` for what the link's events bring (a
    /// message), after it looked and found nothing: a driver turn on a live link, else
    /// the reconnect, continued. `Ok(false)` when the wait is over empty-handed: that
    /// was its last look (`last_look`, set by the turn that found the deadline past),
    /// the call only polls (`poll`: a lost link is buried, the reconnect left to a call
    /// that waits), or its time ran out reconnecting (the next call continues).
    pub(crate) fn wait_step(
        &mut self,
        deadline: Option<Instant>,
        poll: bool,
        last_look: &mut bool,
    ) -> Result<bool, P::Error>
    where
        P: Retrying,
    {
        if *last_look {
            return Ok(false);
        }
        if self.is_live() {
            *last_look = self.wait_turn(deadline)?;
            return Ok(true);
        }
        if poll {
            self.bury_dead();
            return Ok(false);
        }
        self.try_link(deadline)
    }

    /// Runs `op` on a live connection within `timeout`: reconnects first if needed,
    /// flushes and retries on backpressure, reconnects and retries when the connection
    /// turns out dead; the protocol's timeout when `timeout` runs out first.
    pub(crate) fn with_session<T>(
        &mut self,
        timeout: Duration,
        op: impl FnMut(&mut P::Session) -> Result<T, P::SendError>,
    ) -> Result<T, P::Error>
    where
        P: Retrying,
    {
        self.with_session_or(timeout, op, |_| None)
    }

    /// [`with_session`](Self::with_session), except that before every attempt (the
    /// first, and each after the connection was found lost while waiting for the kernel)
    /// `on_loss` may settle the call without a live connection. The clock is read (and
    /// the deadline set) only once the call has to wait.
    pub(crate) fn with_session_or<T>(
        &mut self,
        timeout: Duration,
        mut op: impl FnMut(&mut P::Session) -> Result<T, P::SendError>,
        mut on_loss: impl FnMut(&mut Self) -> Option<Result<T, P::Error>>,
    ) -> Result<T, P::Error>
    where
        P: Retrying,
    {
        let mut deadline = None;
        loop {
            if let Some(settled) = on_loss(self) {
                return settled;
            }
            if !self.is_live() {
                let deadline = *deadline.get_or_insert_with(|| deadline_after(timeout));
                self.ensure_link(deadline)?;
            }
            let Some(session) = self.live_session() else {
                // Up, yet the driver has no session for it: count it lost.
                self.kill_link(P::closed());
                continue;
            };
            match op(session).map_err(P::retry) {
                Ok(value) => return Ok(value),
                Err(Retry::Backpressure) => {
                    let now = Instant::now();
                    let deadline = *deadline.get_or_insert_with(|| now.checked_add(timeout));
                    if deadline.is_some_and(|d| now >= d) {
                        // The kernel did not take enough in time (a stuck server).
                        return Err(P::timeout());
                    }
                    // Asked only now, while a call waits: the hot path pays nothing.
                    if let Some(session) = self.live_session() {
                        P::report_room(session);
                    }
                    self.turn(deadline)?;
                }
                Err(Retry::Poisoned(lost)) => self.kill_link(lost),
                Err(Retry::Refused(error)) => return Err(error),
            }
        }
    }

    /// Waits until the kernel has taken everything the live connection holds, by
    /// `deadline` (reconnecting first if needed: what a lost connection did not send,
    /// the next one replays); the protocol's timeout when `deadline` comes first.
    pub(crate) fn drain_output(&mut self, deadline: Option<Instant>) -> Result<(), P::Error>
    where
        P: Retrying,
    {
        self.ensure_link(deadline)?;
        loop {
            let Some(session) = self.live_session() else {
                self.ensure_link(deadline)?;
                continue;
            };
            if P::outgoing(session) == 0 {
                return Ok(());
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(P::timeout());
            }
            P::report_sent(session, 0);
            self.turn(deadline)?;
        }
    }
}

/// `timeout` from now; `None` when that is too far to represent (no bound).
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Implements [`Retrying`] for a client whose calls share the NATS and MQTT shape: its
/// session (`$session`) has `outgoing_len`, `report_sent` and `report_room`; a call it
/// refuses fails with `$send`, whose `$backpressure` pattern means a full buffer and
/// whose `Poisoned(lost)` a dead connection; its `$error` has `Timeout`,
/// `Disconnected(lost)`, `Refused(send error)` and a `From` for the loss; its
/// protocol's `options.allow_reconnect` says whether to redial.
macro_rules! retrying {
    ($protocol:ty, session: $session:ty, send: $send:ident, backpressure: $backpressure:pat, lost: $lost:ty, error: $error:ident) => {
        impl $crate::link::Retrying for $protocol {
            type SendError = $send;

            fn retry(error: $send) -> $crate::link::Retry<$lost, $error> {
                match error {
                    $backpressure => $crate::link::Retry::Backpressure,
                    $send::Poisoned(e) => $crate::link::Retry::Poisoned(e),
                    refused => $crate::link::Retry::Refused($error::Refused(refused)),
                }
            }

            fn timeout() -> $error {
                $error::Timeout
            }

            fn may_redial(&self) -> bool {
                self.options.allow_reconnect
            }

            fn disconnected(lost: $lost) -> $error {
                $error::Disconnected(lost)
            }

            /// Out of time: `Timeout` (the reconnect goes on in the next call); the
            /// attempts ran out: `LinkError::Reconnect` with the last failure (or the
            /// loss), and the next call starts a new reconnect.
            fn unredialed(redialed: $crate::link::Redialed<$error>, lost: $lost) -> $error {
                match redialed {
                    $crate::link::Redialed::Later => $error::Timeout,
                    $crate::link::Redialed::GaveUp(gave_up) => {
                        let last = gave_up.last.unwrap_or_else(|| $error::from(lost));
                        $crate::LinkError::reconnect(gave_up.attempts, last).into()
                    }
                    $crate::link::Redialed::Failed(e) => e,
                }
            }

            fn outgoing(session: &$session) -> usize {
                session.outgoing_len()
            }

            fn report_sent(session: &mut $session, below: usize) {
                session.report_sent(below);
            }

            fn report_room(session: &mut $session) {
                session.report_room();
            }
        }
    };
}

pub(crate) use retrying;
