//! The NATS client's calls, on the state the client and its subscriptions share: each
//! runs the driver (through the shared body) until its work is done or its deadline.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::nats::client::{Connection, SendError, SubscriptionPolicy};
use monocoque_proto::nats::{Headers, Message, MessageRef, Sid};
use monocoque_proto::Driver;

use monocoque_proto::chassis::link::Supervisor;

use super::body::{Inner, Nats};
use super::{ClientOptions, Error, Event};
use crate::link::deadline_after;

/// Extra time the body allows past a request's own timeout (which the connection
/// enforces) before it gives up on its own.
const REQUEST_SLACK: Duration = Duration::from_secs(1);

impl<D: Driver<Connection>> Inner<D> {
    /// A body connected with `options` on `driver`: each configured server is tried
    /// once, in order; the first to complete the handshake wins, otherwise the last
    /// error is returned (at once for credentials the server refused).
    pub(crate) fn connect(driver: D, options: ClientOptions) -> Result<Self, Error> {
        let seed = super::pool::seed(options.seed);
        let supervisor = Supervisor::new(&options.servers, options.link.reconnect, seed);
        let mut inner = Self::new(driver, Nats::new(options), supervisor);
        let mut last = None;
        for index in 0..inner.supervisor.servers().len() {
            match inner.open_link(index) {
                Ok(()) => return Ok(inner),
                Err(e @ Error::Rejected(_)) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(Error::from(super::UrlError::Empty)))
    }

    /// Publishes on the live connection, or into the reconnect buffer while the
    /// connection is lost; hands the buffer to the kernel past the flush threshold.
    pub(crate) fn publish(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&Headers>,
        payload: &Bytes,
    ) -> Result<(), Error> {
        // Publishing only moves the connection's clock forward (its timers run on turns),
        // so the time of the last turn serves and no clock is read per message. A
        // connection lost before the publish, or while it waits for room, sends it to the
        // reconnect buffer rather than into a blocking reconnect.
        let now = self.last_turn;
        let outgoing = self.with_session_or(
            self.proto.options.operation_timeout,
            |session| {
                session.publish(subject, reply, headers, payload, now)?;
                Ok(session.outgoing_len())
            },
            |inner| {
                inner
                    .buffer_while_disconnected(subject, reply, headers, payload)
                    .map(|buffered| buffered.map(|()| 0))
            },
        )?;
        if outgoing >= self.proto.auto_flush_at {
            // A polling turn: the driver starts sending what is buffered and returns at
            // once. The next one waits for another threshold's worth, so a send still
            // in flight costs one extra turn, not one per publish.
            self.turn(Some(self.last_turn))?;
            let left = self.live_session().map_or(0, |s| s.outgoing_len());
            self.proto.auto_flush_at = left.saturating_add(self.proto.options.flush_threshold);
        }
        Ok(())
    }

    /// A publish while the connection is known to be lost (and reconnecting is allowed)
    /// does not wait for a reconnect: it joins the unsent publishes the next connection
    /// replays, within the reconnect buffer (held by the state between connections, or
    /// by the new connection while its handshake is in progress). `None` when connected
    /// (or when nothing carries over: then the publish reconnects first).
    fn buffer_while_disconnected(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&Headers>,
        payload: &Bytes,
    ) -> Option<Result<(), Error>> {
        if !self.proto.options.allow_reconnect || self.is_live() {
            return None;
        }
        let full = |e| match e {
            SendError::Backpressure(b) => Error::ReconnectBufferFull {
                requested: b.requested,
                available: b.available,
                capacity: b.capacity,
            },
            refused => Error::Refused(refused),
        };
        if self.link.is_some() && self.dead().is_none() {
            // A handshake in progress: the new connection holds the publish until it
            // completes, within the reconnect buffer.
            let now = self.last_turn;
            return match self.current_session() {
                Some(session) => match session.publish(subject, reply, headers, payload, now) {
                    Err(SendError::Poisoned(e)) => {
                        self.kill_link(e);
                        self.buffer_while_disconnected(subject, reply, headers, payload)
                    }
                    other => Some(other.map_err(full)),
                },
                None => None,
            };
        }
        self.bury_link();
        let state = self.proto.carry.as_mut()?;
        Some(state.publish(subject, reply, headers, payload).map_err(full))
    }

    /// Subscribes `subject` (in `queue`), handing the `SUB` to the kernel before it
    /// returns; the new subscription's id.
    pub(crate) fn subscribe(
        &mut self,
        subject: &str,
        queue: Option<&str>,
        policy: SubscriptionPolicy,
    ) -> Result<Sid, Error> {
        let sid = self.with_session(self.proto.options.operation_timeout, |session| {
            session.subscribe(subject.as_bytes(), queue.map(str::as_bytes), policy)
        })?;
        // Hand the SUB to the kernel now: messages published after this returns can
        // reach it as soon as the server has read it.
        self.turn(Some(Instant::now()))?;
        Ok(sid)
    }

    /// Unsubscribes `sid` now, or after `max` messages in all.
    pub(crate) fn unsubscribe(&mut self, sid: &Sid, max: Option<u64>) -> Result<(), Error> {
        self.with_session(self.proto.options.operation_timeout, |session| {
            session.unsubscribe(sid, max)
        })?;
        if max.is_none() {
            self.proto.unsubscribed.insert(sid.clone());
        }
        self.turn(Some(Instant::now()))
    }

    /// A dropped handle: unsubscribe at once if a connection is up (or completing its
    /// handshake, which holds the `UNSUB`), else on the next connection.
    pub(crate) fn forget(&mut self, sid: &Sid) {
        self.proto.dropped.remove(sid);
        let ended = self.proto.ended.remove(sid).is_some();
        let unsubscribed = self.proto.unsubscribed.remove(sid);
        if ended || unsubscribed {
            // Drain what is left of its queue.
            if let Some(session) = self.live_session() {
                while session.next_message(sid).is_some() {}
            }
            return;
        }
        match self.current_session() {
            Some(session) => {
                let _ = session.unsubscribe(sid, None);
                while session.next_message(sid).is_some() {}
            }
            None => self.proto.orphans.push(sid.clone()),
        }
    }

    /// The error of a call whose connection is gone: why it died (or why the last one
    /// was lost).
    fn gone(&self) -> Option<Error> {
        match (&self.link, self.dead()) {
            (_, Some(error)) => Some(Error::from(error.clone())),
            (None, None) => Some(Error::from(self.lost())),
            (Some(_), None) => None,
        }
    }

    /// Publishes a request and waits for its reply, both within `timeout`.
    pub(crate) fn request(
        &mut self,
        subject: &[u8],
        headers: Option<&Headers>,
        payload: &Bytes,
        timeout: Duration,
    ) -> Result<Message, Error> {
        // The timeout covers the whole call: a reconnect first, then the reply.
        let deadline = deadline_after(timeout);
        let id = self.with_session(timeout, |session| {
            let now = Instant::now();
            let left = deadline.map(|d| d.saturating_duration_since(now));
            session.request(subject, headers, payload, left, now)
        })?;
        // The connection fails the request at `deadline`; this is a backstop.
        let backstop = deadline.and_then(|d| d.checked_add(REQUEST_SLACK));
        loop {
            if let Some(outcome) = self.proto.responses.remove(&id) {
                return outcome.map_err(Error::from);
            }
            if let Some(error) = self.gone() {
                // Every pending request got its RequestFailed before the poison.
                self.drain_events();
                return match self.proto.responses.remove(&id) {
                    Some(outcome) => outcome.map_err(Error::from),
                    None => Err(error),
                };
            }
            if backstop.is_some_and(|b| Instant::now() >= b) {
                return Err(Error::Timeout);
            }
            self.turn(backstop)?;
        }
    }

    /// Hands everything buffered to the kernel within
    /// [`operation_timeout`](super::ClientOptions::operation_timeout) (reconnecting
    /// first if needed); [`Error::Timeout`] when the kernel has not taken it all by then.
    pub(crate) fn flush(&mut self) -> Result<(), Error> {
        // Lost while sending: what the kernel did not take is replayed on the next
        // connection.
        self.drain_output(deadline_after(self.proto.options.operation_timeout))
    }

    /// A `PING` and its `PONG`, within the operation timeout; the round-trip time.
    pub(crate) fn round_trip(&mut self) -> Result<Duration, Error> {
        let started = Instant::now();
        let timeout = self.proto.options.operation_timeout;
        let deadline = started.checked_add(timeout);
        let id = self.with_session(timeout, Connection::ping)?;
        loop {
            if self.proto.pongs.remove(&id) {
                return Ok(started.elapsed());
            }
            if let Some(error) = self.gone() {
                return Err(error);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout);
            }
            self.turn(deadline)?;
        }
    }

    /// `sid`'s next message, waiting up to `timeout` (a reconnect included).
    pub(crate) fn next_message(&mut self, sid: &Sid, timeout: Duration) -> Result<Option<Message>, Error> {
        self.take_queued(sid, timeout, |session| session.next_message(sid))
    }

    /// Up to `max` messages into the back of `batch` (see
    /// [`Subscription::next_messages`](super::Subscription::next_messages)).
    pub(crate) fn next_messages(
        &mut self,
        sid: &Sid,
        batch: &mut VecDeque<Message>,
        max: usize,
        timeout: Duration,
    ) -> Result<usize, Error> {
        if max == 0 {
            return Ok(0);
        }
        let taken = self.take_queued(sid, timeout, |session| {
            let n = session.next_messages(sid, batch, max);
            (n > 0).then_some(n)
        })?;
        Ok(taken.unwrap_or(0))
    }

    /// Up to `max` of `sid`'s messages handed to `visit` as borrowed frames (see
    /// [`Subscription::for_each_message`](super::Subscription::for_each_message)): the
    /// connection holds received bytes back while the call turns the driver, and
    /// each turn's are visited straight from the decoder.
    pub(crate) fn for_each_message(
        &mut self,
        sid: &Sid,
        max: usize,
        timeout: Duration,
        mut visit: impl FnMut(MessageRef<'_>),
    ) -> Result<usize, Error> {
        if max == 0 {
            return Ok(0);
        }
        let visited = self.take_queued(sid, timeout, |session| {
            // Set on every look: a connection made by a reconnect in this call too.
            session.defer_input(true);
            let n = session.visit_messages(sid, max, &mut visit);
            (n > 0).then_some(n)
        });
        // Between calls the connection decodes as it reads again: what this call left
        // is queued, in order, for whichever call comes next.
        if let Some(session) = self.live_session() {
            session.defer_input(false);
        }
        // What the visits decoded besides messages (a `PONG`, a reply, a subscription
        // that ended) reaches the client now, not at the next turn that reads.
        self.drain_events();
        Ok(visited?.unwrap_or(0))
    }

    /// What `take` takes from subscription `sid`'s queue on the live connection,
    /// waiting up to `timeout` for it to have something.
    fn take_queued<T>(
        &mut self,
        sid: &Sid,
        timeout: Duration,
        mut take: impl FnMut(&mut Connection) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        // A message already queued needs no deadline: no clock read on the hot path.
        if let Some(taken) = self.live_session().and_then(&mut take) {
            return Ok(Some(taken));
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut last_look = false;
        loop {
            if let Some(session) = self.live_session() {
                if let Some(taken) = take(session) {
                    return Ok(Some(taken));
                }
                if self.proto.ended.contains_key(sid) || self.proto.unsubscribed.contains(sid) {
                    return Err(Error::SubscriptionClosed);
                }
            } else if self.proto.unsubscribed.contains(sid) {
                return Err(Error::SubscriptionClosed);
            }
            if !self.wait_step(deadline, timeout.is_zero(), &mut last_look)? {
                return Ok(None);
            }
        }
    }

    /// The next event, waiting up to `timeout` (a reconnect included).
    pub(crate) fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        let deadline = Instant::now().checked_add(timeout);
        let mut last_look = false;
        loop {
            if let Some(event) = self.proto.events.pop_front() {
                return Ok(Some(event));
            }
            if last_look {
                return Ok(None);
            }
            if self.bury_dead() {
                continue;
            }
            if !self.is_live() {
                if timeout.is_zero() {
                    return Ok(None);
                }
                match self.ensure_link(deadline) {
                    Err(Error::Timeout) => {
                        // The reconnect's own events (a refused server) came meanwhile.
                        last_look = true;
                        continue;
                    }
                    result => result?,
                }
                continue;
            }
            last_look = self.wait_turn(deadline)?;
        }
    }
}
