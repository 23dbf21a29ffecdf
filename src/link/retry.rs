//! Calls that need a live connection: reconnecting first, flushing and retrying while
//! the session's buffer is full, reconnecting and retrying when the connection turns
//! out dead, all within the call's timeout.

use std::time::{Duration, Instant};

use monocoque_proto::Driver;

use super::{Body, Protocol, Redialed};

/// How long a call waits between two looks at a socket the kernel is not draining yet.
const FLUSH_POLL: Duration = Duration::from_millis(5);

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
}

impl<D: Driver<P::Session>, P: Protocol> Body<D, P> {
    /// Makes sure a connection is up by `deadline`: buries a dead one, reconnects if
    /// allowed (a timeout when `deadline` comes first: the reconnect stays where it is,
    /// for the next call to continue).
    pub(crate) fn ensure_link(&mut self, deadline: Option<Instant>) -> Result<(), P::Error>
    where
        P: Retrying,
    {
        self.bury_dead();
        if self.is_live() {
            return Ok(());
        }
        if self.link.is_none() && !self.proto.may_redial() {
            return Err(P::disconnected(self.lost()));
        }
        self.reconnect(deadline).map_err(|r| P::unredialed(r, self.lost()))
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
                    self.turn(Some(poll_until(now, deadline)))?;
                }
                Err(Retry::Poisoned(lost)) => self.kill_link(lost),
                Err(Retry::Refused(error)) => return Err(error),
            }
        }
    }
}

/// `timeout` from now; `None` when that is too far to represent (no bound).
pub(crate) fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The next look at a socket the kernel is not draining yet: a [`FLUSH_POLL`] from
/// `now`, never past `deadline`.
pub(crate) fn poll_until(now: Instant, deadline: Option<Instant>) -> Instant {
    let next = now + FLUSH_POLL;
    deadline.map_or(next, |d| next.min(d))
}
