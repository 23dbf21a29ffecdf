//! The Redis client's calls, on its body: buffering requests (into the connection, or
//! held in the client while it cannot take them), driving the batch to its replies,
//! reconnecting for requests not sent yet, and waiting for events.

use std::time::{Duration, Instant};

use monocoque_proto::chassis::link::Supervisor;
use monocoque_proto::resp::{self, Cmd, Connection, SendError, Value};
use monocoque_proto::Driver;

use super::batch::{Request, RequestId};
use super::body::{Inner, Redis};
use super::event::Event;
use super::{ClientOptions, Error, LinkError};
use crate::link::{self, OneServer};

/// What [`Inner::drive`] waits for.
#[derive(Clone, Copy)]
pub(crate) enum Target {
    /// Every buffered request has its outcome.
    All,
    /// This request has its outcome.
    One(u64),
}

/// Why [`Inner::redial`] returned without a ready connection.
pub(crate) enum Redialed {
    /// The call's deadline came first; the round (and a handshake under way) goes on
    /// in the next call. The error is what the call reports.
    Later(Error),
    /// The round is over (the policy's attempts are exhausted: the next call starts a
    /// new one), or the driver failed.
    Over(Error),
}

impl<D: Driver<Connection>> Inner<D> {
    /// A body connected with `options` on `driver` (one attempt, waited to the end of
    /// the connect timeout).
    pub(crate) fn connect(driver: D, options: ClientOptions) -> Result<Self, Error> {
        let supervisor = Supervisor::new(&[OneServer], options.link.reconnect, 0);
        let mut inner = Self::new(driver, Redis::new(options), supervisor);
        inner.open_link(0)?;
        Ok(inner)
    }

    // ---- buffering ----

    /// Buffers `cmd` (see [`Client::send_buffered`](super::Client::send_buffered)).
    pub(crate) fn send_buffered(&mut self, cmd: &Cmd) -> Result<RequestId, Error> {
        self.buffer_one(
            cmd.name(),
            |conn, now| conn.send_buffered(cmd, now),
            || Request::Cmd(cmd.clone()),
        )
    }

    /// Buffers the command whose arguments (name first) are `args`, encoded straight
    /// into the connection's arena.
    pub(crate) fn send_args(&mut self, args: &[&[u8]]) -> Result<RequestId, Error> {
        let Some(&name) = args.first() else {
            return Err(Error::Refused(SendError::EmptyCommand));
        };
        self.buffer_one(
            name,
            |conn, now| conn.send_args(args, now),
            || Request::Cmd(Cmd::new(name).args(&args[1..])),
        )
    }

    /// Buffers `MULTI`, `cmds`, `EXEC` as one request.
    pub(crate) fn send_transaction(&mut self, cmds: &[Cmd]) -> Result<RequestId, Error> {
        self.admits(b"MULTI")?;
        if self.proto.batch.has_unsent() || self.must_hold() {
            return self.hold(Request::Transaction(cmds.to_vec()));
        }
        let Some(conn) = self.live_session() else {
            return self.hold(Request::Transaction(cmds.to_vec()));
        };
        match conn.send_transaction(cmds, Instant::now()) {
            Ok(id) => Ok(self.sent(id)),
            Err(SendError::TooManyPending { .. } | SendError::Backpressure(_)) => {
                self.hold(Request::Transaction(cmds.to_vec()))
            }
            Err(SendError::Poisoned(e)) => {
                self.kill_link(Error::from(e));
                self.hold(Request::Transaction(cmds.to_vec()))
            }
            Err(misuse) => Err(Error::from(misuse)),
        }
    }

    /// Whether a request must wait in the client for a liveness check first.
    fn must_hold(&mut self) -> bool {
        let Redis {
            batch,
            options,
            check_liveness,
            ..
        } = &mut self.proto;
        if batch.all_finished() && options.idle_check.is_some_and(|idle| self.last_turn.elapsed() >= idle) {
            *check_liveness = true;
        }
        *check_liveness
    }

    /// Keeps `request` in the client, within
    /// [`max_buffered_bytes`](ClientOptions::max_buffered_bytes).
    fn hold(&mut self, request: Request) -> Result<RequestId, Error> {
        let len = request.encoded_len();
        let limit = self.proto.options.max_buffered_bytes;
        let batch = &mut self.proto.batch;
        if batch.unsent_bytes > 0 && batch.unsent_bytes.saturating_add(len) > limit {
            return Err(Error::Backpressure {
                buffered: batch.unsent_bytes,
                limit,
            });
        }
        Ok(self.proto.batch.push_unsent(request, Instant::now()))
    }

    /// Hands one command (`send`) to the live connection, or keeps it in the client
    /// (`request`) while earlier ones wait or the connection cannot take it now.
    fn buffer_one(
        &mut self,
        name: &[u8],
        send: impl FnOnce(&mut Connection, Instant) -> Result<resp::RequestId, SendError>,
        request: impl FnOnce() -> Request,
    ) -> Result<RequestId, Error> {
        // A request kept in the client is checked against RESP2 subscriber mode here;
        // one handed over, by the connection (first of all), so the fast path asks once.
        if self.proto.batch.has_unsent() || self.must_hold() {
            self.admits(name)?;
            return self.hold(request());
        }
        let now = *self.proto.batch_clock.get_or_insert_with(Instant::now);
        let Some(conn) = self.live_session() else {
            self.admits(name)?;
            return self.hold(request());
        };
        match send(conn, now) {
            Ok(id) => Ok(self.sent(id)),
            Err(SendError::TooManyPending { .. } | SendError::Backpressure(_)) => self.hold(request()),
            Err(SendError::Poisoned(e)) => {
                // Judged by the poisoned session, before the link is marked dead.
                self.admits(name)?;
                self.kill_link(Error::from(e));
                self.hold(request())
            }
            Err(misuse) => Err(Error::from(misuse)),
        }
    }

    /// Records a request the connection accepted.
    fn sent(&mut self, id: resp::RequestId) -> RequestId {
        let seq = self.proto.batch.push_sent();
        if let Some(link) = &mut self.link {
            link.state.inflight.push_back((id, seq.0));
        }
        seq
    }

    /// Whether the connection would take a command named `name` now (RESP2 subscriber
    /// mode), asked before a request is kept in the client: the live connection
    /// judges, or while there is none, what the last one handed over.
    fn admits(&self, name: &[u8]) -> Result<(), Error> {
        let verdict = if self.is_live() {
            self.session().map(|s| s.admits(name))
        } else {
            self.proto.carry.as_ref().map(|c| c.admits(name))
        };
        verdict.unwrap_or(Ok(())).map_err(Error::from)
    }

    /// Hands unsent requests to the connection while it accepts them.
    fn submit_unsent(&mut self) {
        let Some(link) = self.link.as_mut().filter(|l| l.is_live()) else {
            return;
        };
        let Some(conn) = self.driver.session_for_output(link.conn) else {
            return;
        };
        let batch = &mut self.proto.batch;
        let now = Instant::now();
        while let Some(request) = batch.next_unsent() {
            let result = match request {
                Request::Cmd(cmd) => conn.send_buffered(cmd, now),
                Request::Transaction(cmds) => conn.send_transaction(cmds, now),
            };
            match result {
                Ok(id) => {
                    let seq = batch.base + batch.cursor as u64;
                    link.state.inflight.push_back((id, seq));
                    batch.mark_next_sent();
                }
                // Its replies make room.
                Err(SendError::TooManyPending { .. }) => break,
                Err(SendError::Backpressure(_)) => {
                    // The kernel makes room: the wait that follows wakes when it has.
                    conn.report_room();
                    break;
                }
                Err(SendError::Poisoned(e)) => {
                    link.kill(Error::from(e));
                    break;
                }
                Err(misuse) => batch.fail_next_unsent(Error::from(misuse)),
            }
        }
    }

    /// Drops every buffered request: those on the wire are abandoned.
    pub(crate) fn abort_batch(&mut self) {
        if let Some(link) = self.link.as_mut() {
            if let Some(conn) = self.driver.session_for_output(link.conn) {
                for (id, _) in link.state.inflight.drain(..) {
                    conn.abandon(id);
                }
            }
            link.state.inflight.clear();
        }
        self.proto.batch.clear();
    }

    // ---- waiting ----

    /// Everything buffered, sent, and every outcome, in a new `Vec`.
    pub(crate) fn flush(&mut self) -> Result<Vec<Result<Value, Error>>, Error> {
        self.drive(Target::All)?;
        Ok(self.proto.batch.drain())
    }

    /// Everything buffered, sent, and every outcome (see
    /// [`Client::flush_into`](super::Client::flush_into)).
    pub(crate) fn flush_into(&mut self, out: &mut Vec<Result<Value, Error>>) -> Result<usize, Error> {
        self.drive(Target::All)?;
        Ok(self.proto.batch.drain_into(out))
    }

    /// Sends `cmd` after everything buffered and waits for its reply.
    pub(crate) fn query(&mut self, cmd: &Cmd) -> Result<Value, Error> {
        let id = self.send_buffered(cmd)?;
        self.wait(id)
    }

    /// Waits for request `id`'s outcome.
    pub(crate) fn wait(&mut self, id: RequestId) -> Result<Value, Error> {
        self.drive(Target::One(id.0))?;
        self.proto
            .batch
            .take(id.0)
            .unwrap_or_else(|| Err(Error::Connection(resp::ConnectionError::Closed)))
    }

    /// One step of a wait before it looks at the batch: buries a dead link, runs the
    /// liveness check a request waits for, submits what was held. Whether the caller
    /// must start over (a turn was taken, or the link turned out dead).
    pub(crate) fn prepare(&mut self) -> Result<bool, Error> {
        self.bury_dead();
        let check = std::mem::take(&mut self.proto.check_liveness);
        if check && self.link.is_some() {
            self.turn(Some(Instant::now()))?;
            return Ok(true);
        }
        self.submit_unsent();
        Ok(self.dead().is_some())
    }

    /// Runs the driver until `target` is reached, reconnecting for unsent requests.
    fn drive(&mut self, target: Target) -> Result<(), Error> {
        loop {
            if self.prepare()? {
                continue;
            }
            // Requests still held in the client (over `max_pending` or the outgoing
            // cap) have a deadline too: the connection's timer does not cover them.
            let timeout = self.proto.options.response_timeout;
            let held_deadline = self.proto.batch.held_deadline(timeout);
            if held_deadline.is_some_and(|d| Instant::now() >= d) {
                self.proto.batch.expire_unsent(timeout, Instant::now());
            }
            let reached = match target {
                Target::All => self.proto.batch.all_finished(),
                Target::One(seq) => self.proto.batch.is_finished(seq),
            };
            if reached {
                return Ok(());
            }
            if !self.is_ready() {
                // Only unsent requests are left: nothing on a dead connection survives.
                // Reconnecting stops at the oldest one's deadline; those whose deadline
                // passed fail with the reconnect's error, the others wait for the next
                // round of this loop.
                match self.redial(held_deadline) {
                    Ok(()) => {}
                    Err(Redialed::Later(e)) => self.proto.batch.expire_unsent_with(timeout, Instant::now(), &e),
                    Err(Redialed::Over(e @ Error::Link(LinkError::Driver(_)))) => return Err(e),
                    Err(Redialed::Over(e)) => self.proto.batch.fail_unsent(&e),
                }
                continue;
            }
            self.turn(self.proto.batch.held_deadline(timeout))?;
        }
    }

    /// The next event `pick` accepts, converted by `into`, waiting up to `timeout`
    /// (reconnecting meanwhile, within it).
    pub(crate) fn wait_event<T>(
        &mut self,
        timeout: Duration,
        pick: impl Fn(&Event) -> bool,
        into: impl Fn(Event) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(found) = self.proto.events.pop_matching(&pick, &into) {
                return Ok(Some(found));
            }
            self.bury_dead();
            if !self.is_ready() {
                match self.redial(deadline) {
                    Ok(()) => {}
                    // The wait ended while the round goes on: no event (yet), and the
                    // next wait carries on reconnecting.
                    Err(Redialed::Later(_)) => return Ok(None),
                    Err(Redialed::Over(e)) => return Err(e),
                }
                continue;
            }
            if self.wait_turn(deadline)? {
                // That was the last look at what already arrived.
                return Ok(self.proto.events.pop_matching(&pick, &into));
            }
        }
    }

    // ---- pub/sub and tracking ----

    /// A (un)subscribe command for `channels`, waited for its confirmations.
    pub(crate) fn sub_command<C: resp::ToArg>(
        &mut self,
        name: &str,
        channels: &[C],
        subscribe: bool,
    ) -> Result<(), Error> {
        if subscribe && channels.is_empty() {
            return Ok(());
        }
        // The reply is the array of the server's confirmations, one per channel.
        self.query(&Cmd::new(name).args(channels)).map(drop)
    }

    /// Sends a `CLIENT TRACKING` command (`None`: `OFF`); the connection records the
    /// command in force from the server's `+OK`, and hands it to the next one.
    pub(crate) fn set_tracking(&mut self, cmd: Option<Cmd>) -> Result<(), Error> {
        let off = || Cmd::new("CLIENT").arg("TRACKING").arg("OFF");
        super::reply::ok(self.query(cmd.as_ref().unwrap_or(&off()))?)
    }

    // ---- the link ----

    /// Reconnects with backoff, as the policy allows, until `deadline` at the latest.
    /// The backoff is waited in the driver (other sessions on it keep running). When
    /// the deadline comes first, the round's progress stays in the supervisor, and a
    /// handshake under way stays in the link (it has its own connect timeout): the
    /// next call goes on from there instead of starting over, so calls shorter than a
    /// handshake still get connected.
    pub(crate) fn redial(&mut self, deadline: Option<Instant>) -> Result<(), Redialed> {
        match self.reconnect(deadline) {
            Ok(()) => Ok(()),
            Err(link::Redialed::Later) => Err(Redialed::Later(self.redial_error())),
            Err(link::Redialed::GaveUp(gave_up)) => {
                // The policy allows no more attempts: the next call starts a new round.
                let closed = || Error::Connection(resp::ConnectionError::Closed);
                let last = gave_up.last.unwrap_or_else(closed);
                Err(Redialed::Over(LinkError::reconnect(gave_up.attempts, last).into()))
            }
            Err(link::Redialed::Failed(e)) => Err(Redialed::Over(e)),
        }
    }

    /// What a call that ran out of time while reconnecting reports: the round's last
    /// failure, or a plain timeout when none failed yet.
    fn redial_error(&self) -> Error {
        match self.supervisor.failures() {
            (attempts, Some(last)) => LinkError::reconnect(attempts, last.clone()).into(),
            _ => Error::Timeout,
        }
    }
}
