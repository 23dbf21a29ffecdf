//! The blocking, thread-per-core Redis client: one connection, driven by one driver on
//! the calling thread.

use std::collections::{BTreeSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::chassis::link::Supervisor;
use monocoque_proto::resp::{self, Cmd, Connection, Protocol, SendError, Subscriptions, Value};
use monocoque_proto::{Activity, Driver};

use super::batch::{Batch, Request, RequestId};
use super::event::{Event, EventQueue, Invalidation, Message};
use super::{ClientOptions, Error, LinkError, ServerError};
use crate::driver::AnyDriver;
use crate::link::{self, DialError, Handshake, OneServer, Redial};

/// Commands a RESP2 connection accepts in subscriber mode.
const SUBSCRIBER_MODE_COMMANDS: [&[u8]; 9] = [
    b"SUBSCRIBE",
    b"PSUBSCRIBE",
    b"SSUBSCRIBE",
    b"UNSUBSCRIBE",
    b"PUNSUBSCRIBE",
    b"SUNSUBSCRIBE",
    b"PING",
    b"QUIT",
    b"RESET",
];

/// A Redis client: one connection, run by a [`Driver`] on the calling thread.
///
/// It is blocking and single-threaded by design (thread per core: one client, or many,
/// per thread, each with its driver). Requests are pipelined:
/// [`send_buffered`](Self::send_buffered) only encodes; [`flush`](Self::flush) hands
/// everything buffered to the kernel in one submission and returns every reply in
/// order; [`query`](Self::query) does both for one command. The typed helpers
/// ([`get`](Self::get), [`set`](Self::set), ...) are `query` plus a conversion.
///
/// ```no_run
/// use monocoque::redis::{cmd, Client};
///
/// let mut client = Client::connect("redis://127.0.0.1:6379/0")?;
/// client.set("greeting", "hello")?;
/// assert_eq!(client.get("greeting")?.as_deref(), Some(&b"hello"[..]));
///
/// for i in 0..1000 {
///     client.send_buffered(&cmd("INCR").arg("counter"))?;
/// }
/// let replies = client.flush()?; // one write, 1000 replies, in order
/// assert_eq!(replies.len(), 1000);
/// # Ok::<(), monocoque::redis::Error>(())
/// ```
///
/// ## Failures
///
/// An error reply fails only its request ([`Error::Server`]). A connection that can no
/// longer be trusted (closed, malformed reply, a reply stalled mid-frame past the
/// response timeout, a server silent past
/// [`health_check_timeout`](ClientOptions::health_check_timeout) while a reply is owed)
/// is poisoned: every request on it fails with [`Error::Connection`], none is sent
/// again (it may have run), and no reply reaches the wrong request. The client then
/// reconnects with backoff — inside `flush` for requests not sent yet, otherwise on the
/// next call — replaying `HELLO`/`AUTH`/`SELECT`, subscriptions and tracking, and
/// queues [`Event::Reconnected`]. Reconnecting never outlasts the call's deadline: the
/// backoff is waited in the driver, and the round of attempts goes on in the next call
/// (see [`ReconnectPolicy`](super::ReconnectPolicy)).
///
/// While the driver runs (in any call, or waiting in [`next_event`](Self::next_event)),
/// an idle connection sends a `PING` of its own every
/// [`health_check_interval`](ClientOptions::health_check_interval), so a frozen server
/// is noticed without any request; the socket also has TCP keepalive
/// ([`tcp_keepalive`](ClientOptions::tcp_keepalive)).
///
/// ## Pub/sub and tracking
///
/// On RESP3, [`subscribe`](Self::subscribe) keeps the connection usable for commands;
/// messages (and tracking invalidations, other pushes) that arrive while replies are
/// awaited are queued, in arrival order, for [`next_event`](Self::next_event),
/// [`next_message`](Self::next_message) and
/// [`next_invalidation`](Self::next_invalidation). On RESP2, subscribing puts the
/// connection in subscriber mode: other commands are refused client-side with
/// [`Error::SubscriberMode`] until everything is unsubscribed.
pub struct Client<D: Driver<Connection> = AnyDriver<Connection>> {
    driver: D,
    options: ClientOptions,
    link: Option<Link>,
    batch: Batch,
    events: EventQueue,
    /// Subscriptions and tracking to restore on the next connection.
    restore: Restore,
    /// The protocol of the last connection (RESP2 subscriber mode is checked with it
    /// while disconnected).
    protocol: Protocol,
    /// A RESP2 subscribe was buffered: treat the connection as in subscriber mode until
    /// the batch settles.
    subscribing: bool,
    /// Connections made so far.
    connections: u64,
    /// The reconnect round in progress, kept across calls (a pool of one server).
    redial: Supervisor<OneServer, Error>,
    /// The first unsent request waits for a liveness check
    /// ([`ClientOptions::idle_check`]).
    check_liveness: bool,
    last_turn: Instant,
    /// The clock read by the first request buffered since the last driver turn, reused
    /// by the next ones (one clock read per batch, not per command).
    batch_clock: Option<Instant>,
    activities: Vec<Activity>,
    /// Resolves the server's host name off the driver's thread.
    resolver: link::Resolver,
}

/// The current connection, with what the client keeps per connection.
type Link = link::Link<Error, OnLink>;

/// What the client keeps per connection.
#[derive(Debug, Default)]
pub(crate) struct OnLink {
    /// The server's reply to `HELLO`.
    hello: Option<Value>,
    /// Requests on this connection: (its id, the batch sequence number), in send order.
    inflight: VecDeque<(resp::RequestId, u64)>,
    /// Restore commands (resubscribe, tracking) on this connection, awaiting replies.
    restoring: Vec<resp::RequestId>,
    /// A `MULTI` was sent and its `EXEC`/`DISCARD` not yet.
    in_multi: bool,
    /// Counted in `connections`, and `Event::Reconnected` queued.
    announced: bool,
}

/// Why [`Client::reconnect`] returned without a ready connection.
enum Redialed {
    /// The call's deadline came first; the round (and a handshake under way) goes on
    /// in the next call. The error is what the call reports.
    Later(Error),
    /// The round is over (the policy's attempts are exhausted: the next call starts a
    /// new one), or the driver failed.
    Over(Error),
}

/// What a new connection must restore.
#[derive(Debug, Default, Clone)]
struct Restore {
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shard_channels: BTreeSet<Bytes>,
    /// The `CLIENT TRACKING ON ...` command in force.
    tracking: Option<Cmd>,
}

impl Restore {
    fn set_subscriptions(&mut self, subs: &Subscriptions, merge: bool) {
        if !merge {
            self.channels.clear();
            self.patterns.clear();
            self.shard_channels.clear();
        }
        self.channels.extend(subs.channels().cloned());
        self.patterns.extend(subs.patterns().cloned());
        self.shard_channels.extend(subs.shard_channels().cloned());
    }

    fn commands(&self) -> Vec<Cmd> {
        let mut out: Vec<Cmd> = [
            ("SUBSCRIBE", &self.channels),
            ("PSUBSCRIBE", &self.patterns),
            ("SSUBSCRIBE", &self.shard_channels),
        ]
        .into_iter()
        .filter(|(_, set)| !set.is_empty())
        .map(|(name, set)| Cmd::new(name).args(set.iter()))
        .collect();
        out.extend(self.tracking.clone());
        out
    }
}

/// What [`Client::drive`] waits for.
#[derive(Clone, Copy)]
enum Target {
    /// Every buffered request has its outcome.
    All,
    /// This request has its outcome.
    One(u64),
}

impl Client<AnyDriver<Connection>> {
    /// Connects to `url` (`redis://[user:pass@]host:port[/db]`) with default options,
    /// blocking until the handshake completes or fails.
    pub fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(ClientOptions::from_url(url)?)
    }

    /// Connects with `options`, on the driver they name, blocking until the handshake
    /// completes or fails.
    pub fn connect_with(options: ClientOptions) -> Result<Self, Error> {
        let driver = options.link.open_driver()?;
        Self::connect_with_driver(driver, options)
    }
}

impl<D: Driver<Connection>> Client<D> {
    /// Connects with `options` on a driver the caller built (any [`Driver`]), blocking
    /// until the handshake completes or fails. `options.link.driver` is ignored.
    pub fn connect_with_driver(driver: D, options: ClientOptions) -> Result<Self, Error> {
        let mut client = Self {
            driver,
            redial: Supervisor::new(&[OneServer], options.link.reconnect, 0),
            events: EventQueue::new(options.max_event_bytes),
            protocol: options.protocol,
            options,
            link: None,
            batch: Batch::default(),
            restore: Restore::default(),
            subscribing: false,
            connections: 0,
            check_liveness: false,
            last_turn: Instant::now(),
            batch_clock: None,
            activities: Vec::new(),
            resolver: link::Resolver::default(),
        };
        client.open_link()?;
        Ok(client)
    }

    // ---- getters ----

    /// The options it was created with (the database follows [`select`](Self::select)).
    pub fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The protocol the server speaks on the current (or last) connection: RESP3 unless
    /// RESP2 was asked for or the server refused `HELLO 3`.
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// The server's reply to `HELLO` on the current connection (server, version, proto,
    /// id, mode, role, modules), when RESP3 was negotiated.
    pub fn server_hello(&self) -> Option<&Value> {
        self.link.as_ref().and_then(|l| l.state.hello.as_ref())
    }

    /// Whether a connection is up (as far as the client knows without I/O).
    pub fn is_connected(&self) -> bool {
        self.link.as_ref().is_some_and(link::Link::is_live)
    }

    /// Connections made so far: 1 after [`connect`](Client::connect), one more per
    /// reconnect.
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// Requests buffered whose outcome has not been returned yet.
    pub fn buffered(&self) -> usize {
        self.batch.slots.len() - self.batch.taken
    }

    /// Events (messages, invalidations, ...) queued for [`next_event`](Self::next_event).
    pub fn queued_events(&self) -> usize {
        self.events.len()
    }

    /// The driver, e.g. to run other sessions on it between calls.
    pub fn driver_mut(&mut self) -> &mut D {
        &mut self.driver
    }

    // ---- requests ----

    /// Buffers `cmd`: encodes it into the connection's outgoing arena (no syscall) and
    /// returns its id. Its reply comes from the next [`flush`](Self::flush) (or a
    /// [`query`](Self::query), which flushes everything before it too).
    ///
    /// Beyond what the connection accepts at once
    /// ([`max_pending`](ClientOptions::max_pending) requests,
    /// [`max_outgoing_bytes`](ClientOptions::max_outgoing_bytes)), commands wait in the
    /// client and are encoded as replies come back, so a pipeline can be any length.
    ///
    /// # Errors
    /// [`Error::Refused`] for a command the connection cannot carry (empty, `MONITOR`,
    /// `CLIENT REPLY`, a nested `MULTI`), [`Error::SubscriberMode`] for a non-pub/sub
    /// command on a RESP2 connection with subscriptions, [`Error::Backpressure`] over
    /// [`max_buffered_bytes`](ClientOptions::max_buffered_bytes). Nothing is buffered
    /// on error.
    pub fn send_buffered(&mut self, cmd: &Cmd) -> Result<RequestId, Error> {
        self.buffer_one(
            cmd.name(),
            |conn, now| conn.send_buffered(cmd, now),
            || Request::Cmd(cmd.clone()),
        )
    }

    /// [`send_buffered`](Self::send_buffered) for the command whose arguments (name
    /// first) are `args`, encoded straight into the connection's outgoing arena: no
    /// [`Cmd`] is built and nothing is allocated per command. This is the fast path for
    /// pipelining many small commands; [`set_buffered`](Self::set_buffered) and
    /// [`get_buffered`](Self::get_buffered) use it. Arguments are copied (a large
    /// [`Bytes`] value is shared without copying only through a [`Cmd`]).
    ///
    /// ```no_run
    /// # let mut client = monocoque::redis::Client::connect("redis://127.0.0.1")?;
    /// client.send_buffered_args(&[b"INCRBY", b"hits", b"5"])?;
    /// let replies = client.flush()?;
    /// # Ok::<(), monocoque::redis::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`send_buffered`](Self::send_buffered).
    pub fn send_buffered_args(&mut self, args: &[&[u8]]) -> Result<RequestId, Error> {
        let Some(&name) = args.first() else {
            return Err(Error::Refused(SendError::EmptyCommand));
        };
        self.buffer_one(
            name,
            |conn, now| conn.send_args(args, now),
            || Request::Cmd(Cmd::new(name).args(&args[1..])),
        )
    }

    /// Buffers `SET key value` on the fast path of
    /// [`send_buffered_args`](Self::send_buffered_args); its reply (`+OK`) comes from
    /// the next [`flush`](Self::flush).
    ///
    /// # Errors
    /// As [`send_buffered`](Self::send_buffered).
    pub fn set_buffered(&mut self, key: impl AsRef<[u8]>, value: impl AsRef<[u8]>) -> Result<RequestId, Error> {
        self.send_buffered_args(&[b"SET", key.as_ref(), value.as_ref()])
    }

    /// Buffers `GET key` on the fast path of
    /// [`send_buffered_args`](Self::send_buffered_args); its reply (the value or a
    /// null) comes from the next [`flush`](Self::flush).
    ///
    /// # Errors
    /// As [`send_buffered`](Self::send_buffered).
    pub fn get_buffered(&mut self, key: impl AsRef<[u8]>) -> Result<RequestId, Error> {
        self.send_buffered_args(&[b"GET", key.as_ref()])
    }

    /// Buffers `MULTI`, `cmds`, `EXEC` as one request. Its outcome is `EXEC`'s reply
    /// (an array of the commands' replies, or a null when a `WATCH`ed key changed), or
    /// [`Error::TransactionAborted`] when the server discarded the transaction.
    pub fn send_transaction(&mut self, cmds: &[Cmd]) -> Result<RequestId, Error> {
        self.check_subscriber_mode(b"MULTI")?;
        if self.batch.has_unsent() || self.must_hold() {
            return self.hold(Request::Transaction(cmds.to_vec()));
        }
        let Some(conn) = self.live_session() else {
            return self.hold(Request::Transaction(cmds.to_vec()));
        };
        match conn.send_transaction(cmds, Instant::now()) {
            Ok(id) => Ok(self.sent(id, None)),
            Err(SendError::TooManyPending { .. } | SendError::Backpressure(_)) => {
                self.hold(Request::Transaction(cmds.to_vec()))
            }
            Err(SendError::Poisoned(e)) => {
                self.kill_link(Error::from(e));
                self.hold(Request::Transaction(cmds.to_vec()))
            }
            Err(misuse) => Err(Error::Refused(misuse)),
        }
    }

    /// Sends everything buffered in one submission and waits for every reply; returns
    /// their outcomes in the order the requests were buffered (those already returned by
    /// [`query`](Self::query) excepted). An error reply is `Err(Error::Server)` for its
    /// entry; a lost connection fails the entries that were on it.
    ///
    /// Blocks in the driver (no spinning) until the last reply, a response timeout, or
    /// the connection's end.
    ///
    /// # Errors
    /// Only [`LinkError::Driver`], when the driver itself fails: every buffered request is
    /// then dropped (those on the wire may still run on the server; their replies are
    /// never delivered).
    pub fn flush(&mut self) -> Result<Vec<Result<Value, Error>>, Error> {
        self.drive(Target::All)?;
        let out = self.batch.drain();
        self.settle();
        Ok(out)
    }

    /// [`flush`](Self::flush), appending the outcomes to `out` (which keeps its
    /// allocation from one batch to the next) instead of returning a new `Vec`; returns
    /// how many were appended.
    ///
    /// ```no_run
    /// # let mut client = monocoque::redis::Client::connect("redis://127.0.0.1")?;
    /// let mut replies = Vec::new();
    /// for round in 0..10 {
    ///     replies.clear();
    ///     for i in 0..100 {
    ///         client.get_buffered(format!("key:{i}"))?;
    ///     }
    ///     assert_eq!(client.flush_into(&mut replies)?, 100);
    /// }
    /// # Ok::<(), monocoque::redis::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`flush`](Self::flush); nothing is appended then.
    pub fn flush_into(&mut self, out: &mut Vec<Result<Value, Error>>) -> Result<usize, Error> {
        self.drive(Target::All)?;
        let n = self.batch.drain_into(out);
        self.settle();
        Ok(n)
    }

    /// Sends `cmd` (after everything buffered before it) and returns its reply. Earlier
    /// buffered requests' outcomes stay for the next [`flush`](Self::flush).
    pub fn query(&mut self, cmd: &Cmd) -> Result<Value, Error> {
        let id = self.send_buffered(cmd)?;
        self.wait(id)
    }

    /// [`query`](Self::query), with the reply converted to `T`.
    pub fn query_as<T: super::FromReply>(&mut self, cmd: &Cmd) -> Result<T, Error> {
        T::from_reply(self.query(cmd)?)
    }

    /// Runs `cmds` in a `MULTI`/`EXEC` transaction and returns `EXEC`'s reply.
    pub fn transaction(&mut self, cmds: &[Cmd]) -> Result<Value, Error> {
        let id = self.send_transaction(cmds)?;
        self.wait(id)
    }

    /// Drops every buffered request: those on the wire are abandoned (they may still
    /// run; their replies are consumed and discarded, never delivered to a later call),
    /// the others are never sent.
    pub fn discard_buffered(&mut self) {
        self.abort_batch();
    }

    // ---- pub/sub and events ----

    /// The next queued event, waiting up to `timeout` for one (`Duration::ZERO` only
    /// reads what already arrived). Reconnects first if the connection was lost, which
    /// restores subscriptions; within `timeout` too: a reconnect that needs longer goes
    /// on in the next call, and this one returns `Ok(None)`
    /// ([`is_connected`](Self::is_connected) tells). It fails with
    /// [`LinkError::Reconnect`] only when the reconnect policy's attempts are exhausted.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        self.wait_event(timeout, |_| true, Some)
    }

    /// The next pub/sub message, waiting up to `timeout`. Other events stay queued for
    /// [`next_event`](Self::next_event).
    pub fn next_message(&mut self, timeout: Duration) -> Result<Option<Message>, Error> {
        self.wait_event(
            timeout,
            |e| matches!(e, Event::Message(_)),
            |e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            },
        )
    }

    /// The next tracking invalidation, waiting up to `timeout`. Other events stay queued
    /// for [`next_event`](Self::next_event).
    pub fn next_invalidation(&mut self, timeout: Duration) -> Result<Option<Invalidation>, Error> {
        self.wait_event(
            timeout,
            |e| matches!(e, Event::Invalidate(_)),
            |e| match e {
                Event::Invalidate(i) => Some(i),
                _ => None,
            },
        )
    }

    /// Subscribes to `channels` and waits for the server's confirmations. On RESP3 the
    /// connection stays usable for commands; on RESP2 it enters subscriber mode.
    /// Subscriptions are restored after a reconnect.
    pub fn subscribe<C: resp::ToArg>(&mut self, channels: &[C]) -> Result<(), Error> {
        self.sub_command("SUBSCRIBE", channels, true)
    }

    /// Subscribes to channels matching `patterns` (glob-style), as
    /// [`subscribe`](Self::subscribe).
    pub fn psubscribe<C: resp::ToArg>(&mut self, patterns: &[C]) -> Result<(), Error> {
        self.sub_command("PSUBSCRIBE", patterns, true)
    }

    /// Unsubscribes from `channels` (all channels when empty) and waits for the
    /// confirmations.
    pub fn unsubscribe<C: resp::ToArg>(&mut self, channels: &[C]) -> Result<(), Error> {
        self.sub_command("UNSUBSCRIBE", channels, false)
    }

    /// Unsubscribes from `patterns` (all patterns when empty).
    pub fn punsubscribe<C: resp::ToArg>(&mut self, patterns: &[C]) -> Result<(), Error> {
        self.sub_command("PUNSUBSCRIBE", patterns, false)
    }

    /// Turns on client-side caching (`CLIENT TRACKING ON`): the server remembers the
    /// keys this connection reads and sends an [`Invalidation`] when one changes. Needs
    /// RESP3 (invalidations arrive as pushes on this connection); on RESP2 use
    /// [`enable_tracking_redirect`](Self::enable_tracking_redirect). Restored after a
    /// reconnect, with an `Invalidation { keys: None }` since the server forgot what was
    /// read.
    pub fn enable_tracking(&mut self) -> Result<(), Error> {
        if self.protocol != Protocol::Resp3 {
            return Err(Error::NeedsResp3("client-side tracking without REDIRECT"));
        }
        self.set_tracking(Cmd::new("CLIENT").arg("TRACKING").arg("ON"))
    }

    /// Turns on client-side caching with invalidations sent to another connection,
    /// `client_id` (from [`client_id`](Self::client_id) on that client), which receives
    /// them by subscribing to `__redis__:invalidate` (RESP2) or as pushes (RESP3).
    pub fn enable_tracking_redirect(&mut self, client_id: i64) -> Result<(), Error> {
        self.set_tracking(
            Cmd::new("CLIENT")
                .arg("TRACKING")
                .arg("ON")
                .arg("REDIRECT")
                .arg(client_id),
        )
    }

    /// Turns client-side caching off.
    pub fn disable_tracking(&mut self) -> Result<(), Error> {
        super::reply::ok(self.query(&Cmd::new("CLIENT").arg("TRACKING").arg("OFF"))?)?;
        self.restore.tracking = None;
        Ok(())
    }

    // ---- internals: requests ----

    fn set_tracking(&mut self, cmd: Cmd) -> Result<(), Error> {
        super::reply::ok(self.query(&cmd)?)?;
        self.restore.tracking = Some(cmd);
        Ok(())
    }

    fn sub_command<C: resp::ToArg>(&mut self, name: &str, channels: &[C], subscribe: bool) -> Result<(), Error> {
        if subscribe && channels.is_empty() {
            return Ok(());
        }
        // The reply is the array of the server's confirmations, one per channel.
        self.query(&Cmd::new(name).args(channels)).map(drop)
    }

    fn wait(&mut self, id: RequestId) -> Result<Value, Error> {
        self.drive(Target::One(id.0))?;
        let outcome = self
            .batch
            .take(id.0)
            .unwrap_or_else(|| Err(Error::Connection(resp::ConnectionError::Closed)));
        if self.batch.slots.is_empty() {
            self.settle();
        }
        outcome
    }

    /// Whether a request must wait in the client for a liveness check first.
    fn must_hold(&mut self) -> bool {
        if self.batch.all_finished()
            && self
                .options
                .idle_check
                .is_some_and(|idle| self.last_turn.elapsed() >= idle)
        {
            self.check_liveness = true;
        }
        self.check_liveness
    }

    fn hold(&mut self, request: Request) -> Result<RequestId, Error> {
        let len = request.encoded_len();
        let limit = self.options.max_buffered_bytes;
        if self.batch.unsent_bytes > 0 && self.batch.unsent_bytes.saturating_add(len) > limit {
            return Err(Error::Backpressure {
                buffered: self.batch.unsent_bytes,
                limit,
            });
        }
        self.note_subscribe(request.name());
        Ok(self.batch.push_unsent(request, Instant::now()))
    }

    /// Hands one command (`send`) to the live connection, or keeps it in the client
    /// (`request`) while earlier ones wait or the connection cannot take it now.
    fn buffer_one(
        &mut self,
        name: &[u8],
        send: impl FnOnce(&mut Connection, Instant) -> Result<resp::RequestId, SendError>,
        request: impl FnOnce() -> Request,
    ) -> Result<RequestId, Error> {
        self.check_subscriber_mode(name)?;
        if self.batch.has_unsent() || self.must_hold() {
            return self.hold(request());
        }
        let now = *self.batch_clock.get_or_insert_with(Instant::now);
        let Some(conn) = self.live_session() else {
            return self.hold(request());
        };
        match send(conn, now) {
            Ok(id) => Ok(self.sent(id, Some(name))),
            Err(SendError::TooManyPending { .. } | SendError::Backpressure(_)) => self.hold(request()),
            Err(SendError::Poisoned(e)) => {
                self.kill_link(Error::from(e));
                self.hold(request())
            }
            Err(misuse) => Err(Error::Refused(misuse)),
        }
    }

    /// Records a request the connection accepted.
    fn sent(&mut self, id: resp::RequestId, name: Option<&[u8]>) -> RequestId {
        self.note_subscribe(name);
        let seq = self.batch.push_sent();
        if let Some(link) = &mut self.link {
            link.state.inflight.push_back((id, seq.0));
            note_multi(link, name);
        }
        seq
    }

    fn note_subscribe(&mut self, name: Option<&[u8]>) {
        if let Some(name) = name {
            let is = |s: &[u8]| name.eq_ignore_ascii_case(s);
            if is(b"SUBSCRIBE") || is(b"PSUBSCRIBE") || is(b"SSUBSCRIBE") {
                self.subscribing = true;
            }
        }
    }

    fn check_subscriber_mode(&self, name: &[u8]) -> Result<(), Error> {
        if self.protocol != Protocol::Resp2 || !self.in_subscriber_mode() {
            return Ok(());
        }
        if SUBSCRIBER_MODE_COMMANDS.iter().any(|c| name.eq_ignore_ascii_case(c)) {
            return Ok(());
        }
        Err(Error::SubscriberMode {
            command: String::from_utf8_lossy(name).into_owned(),
        })
    }

    fn in_subscriber_mode(&self) -> bool {
        if self.subscribing {
            return true;
        }
        match &self.link {
            Some(link) if link.is_live() => self
                .driver
                .session(link.conn)
                .is_some_and(|s| !s.subscriptions().is_empty()),
            _ => {
                !self.restore.channels.is_empty()
                    || !self.restore.patterns.is_empty()
                    || !self.restore.shard_channels.is_empty()
            }
        }
    }

    /// After a batch completed: the RESP2 subscriber-mode hint follows what the server
    /// confirmed.
    fn settle(&mut self) {
        self.subscribing = false;
    }

    /// Whether a connection is up and past its handshake.
    fn link_ready(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.ready)
    }

    /// The current connection's session, if it is alive and past its handshake
    /// (requests wait in the client during a reconnect's handshake, so that a failed
    /// attempt does not fail them).
    fn live_session(&mut self) -> Option<&mut Connection> {
        let link = self.link.as_ref().filter(|l| l.is_live())?;
        self.driver.session_for_output(link.conn)
    }

    /// Hands unsent requests to the connection while it accepts them.
    fn submit_unsent(&mut self) {
        let Some(link) = self.link.as_mut().filter(|l| l.is_live()) else {
            return;
        };
        let Some(conn) = self.driver.session_for_output(link.conn) else {
            return;
        };
        let now = Instant::now();
        while let Some(request) = self.batch.next_unsent() {
            let result = match request {
                Request::Cmd(cmd) => conn.send_buffered(cmd, now),
                Request::Transaction(cmds) => conn.send_transaction(cmds, now),
            };
            match result {
                Ok(id) => {
                    let seq = self.batch.base + self.batch.cursor as u64;
                    note_multi(link, request.name());
                    link.state.inflight.push_back((id, seq));
                    self.batch.mark_next_sent();
                }
                Err(SendError::TooManyPending { .. } | SendError::Backpressure(_)) => break,
                Err(SendError::Poisoned(e)) => {
                    link.kill(Error::from(e));
                    break;
                }
                Err(misuse) => self.batch.fail_next_unsent(Error::Refused(misuse)),
            }
        }
    }

    /// Runs the driver until `target` is reached, reconnecting for unsent requests.
    fn drive(&mut self, target: Target) -> Result<(), Error> {
        loop {
            if self.link.as_ref().is_some_and(|l| l.dead.is_some()) {
                self.bury_link();
            }
            if self.check_liveness && self.link.is_some() {
                self.check_liveness = false;
                let now = Instant::now();
                self.turn(Some(now))?;
                continue;
            }
            self.check_liveness = false;
            self.submit_unsent();
            if self.link.as_ref().is_some_and(|l| l.dead.is_some()) {
                continue;
            }
            // Requests still held in the client (over `max_pending` or the outgoing
            // cap) have a deadline too: the connection's timer does not cover them.
            let timeout = self.options.response_timeout;
            let held_deadline = self.batch.held_deadline(timeout);
            if held_deadline.is_some_and(|d| Instant::now() >= d) {
                self.batch.expire_unsent(timeout, Instant::now());
            }
            let reached = match target {
                Target::All => self.batch.all_finished(),
                Target::One(seq) => self.batch.is_finished(seq),
            };
            if reached {
                return Ok(());
            }
            if !self.link_ready() {
                // Only unsent requests are left: nothing on a dead connection survives.
                // Reconnecting stops at the oldest one's deadline; those whose deadline
                // passed fail with the reconnect's error, the others wait for the next
                // round of this loop.
                match self.reconnect(held_deadline) {
                    Ok(()) => {}
                    Err(Redialed::Later(e)) => self.batch.expire_unsent_with(timeout, Instant::now(), &e),
                    Err(Redialed::Over(e @ Error::Link(LinkError::Driver(_)))) => return Err(e),
                    Err(Redialed::Over(e)) => self.batch.fail_unsent(&e),
                }
                continue;
            }
            self.turn(self.batch.held_deadline(timeout))?;
        }
    }

    /// Drops the batch after the driver failed.
    fn abort_batch(&mut self) {
        if let Some(link) = self.link.as_mut() {
            if let Some(conn) = self.driver.session_for_output(link.conn) {
                for (id, _) in link.state.inflight.drain(..) {
                    conn.abandon(id);
                }
            }
            link.state.inflight.clear();
        }
        self.batch.clear();
        self.settle();
    }

    // ---- internals: events ----

    fn wait_event<T>(
        &mut self,
        timeout: Duration,
        pick: impl Fn(&Event) -> bool,
        into: impl Fn(Event) -> Option<T>,
    ) -> Result<Option<T>, Error> {
        let deadline = Instant::now().checked_add(timeout);
        loop {
            if let Some(found) = self.events.pop_matching(&pick, &into) {
                return Ok(Some(found));
            }
            if self.link.as_ref().is_some_and(|l| l.dead.is_some()) {
                self.bury_link();
            }
            if !self.link_ready() {
                match self.reconnect(deadline) {
                    Ok(()) => {}
                    // The wait ended while the round goes on: no event (yet), and the
                    // next wait carries on reconnecting.
                    Err(Redialed::Later(_)) => return Ok(None),
                    Err(Redialed::Over(e)) => return Err(e),
                }
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                // One last look at what already arrived.
                self.turn(Some(Instant::now()))?;
                return Ok(self.events.pop_matching(&pick, &into));
            }
            self.turn(deadline)?;
        }
    }

    /// One driver turn; processes what it reports.
    fn turn(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let conn = self.link.as_ref().map(|l| l.conn);
        let result = link::turn(&mut self.driver, &mut self.activities, deadline, conn);
        self.last_turn = Instant::now();
        self.batch_clock = None;
        let reported = match result {
            Ok(reported) => reported,
            Err(e) => {
                let error = Error::Link(LinkError::Driver(Arc::new(e)));
                self.kill_link(error.clone());
                self.bury_link();
                self.abort_batch();
                return Err(error);
            }
        };
        if reported.ready || reported.closed {
            self.drain_events();
        }
        if reported.closed {
            self.kill_link(Error::Connection(resp::ConnectionError::Closed));
        }
        Ok(())
    }

    /// Marks the current connection dead (the first reason wins).
    fn kill_link(&mut self, error: Error) {
        if let Some(link) = &mut self.link {
            link.kill(error);
        }
    }

    /// Pumps the current connection's events into the batch and the event queue,
    /// straight from the session (no intermediate queue).
    fn drain_events(&mut self) {
        let Some(conn) = self.link.as_ref().map(|l| l.conn) else {
            return;
        };
        let mut closed = None;
        let Self {
            driver,
            link,
            batch,
            events,
            protocol,
            ..
        } = self;
        if let Some(session) = driver.session_for_output(conn) {
            let mut sink = Sink {
                link,
                batch,
                events,
                protocol,
            };
            while let Some(event) = session.poll_event() {
                sink.on_event(event);
            }
            if session.is_connected() {
                // A user's `HELLO 2|3` or `RESET` changes it after the handshake.
                *protocol = session.protocol();
            }
            if session.is_closed() {
                closed = Some(session.error().cloned().unwrap_or(resp::ConnectionError::Closed));
            }
        }
        if let Some(error) = closed {
            self.kill_link(Error::from(error));
        }
        self.announce_link();
    }

    fn on_event(&mut self, event: resp::Event) {
        Sink {
            link: &mut self.link,
            batch: &mut self.batch,
            events: &mut self.events,
            protocol: &mut self.protocol,
        }
        .on_event(event);
    }

    // ---- internals: connections ----

    /// Takes the dead connection out of the driver: whatever it still reported is
    /// processed, every request still on it fails, and what it was subscribed to is kept
    /// for the next connection.
    fn bury_link(&mut self) {
        let Some(conn) = self.link.as_ref().map(|l| l.conn) else {
            return;
        };
        self.drain_events();
        let mut session = self.driver.remove(conn);
        if let Some(session) = session.as_mut() {
            while let Some(event) = session.poll_event() {
                self.on_event(event);
            }
        }
        let Some(mut link) = self.link.take() else { return };
        let error = link
            .dead
            .take()
            .unwrap_or(Error::Connection(resp::ConnectionError::Closed));
        if let Some(session) = &session {
            // A link that never finished restoring keeps the old set too.
            let merge = !link.state.restoring.is_empty() || !link.ready;
            self.restore.set_subscriptions(session.subscriptions(), merge);
        }
        if !link.ready {
            // A reconnect's handshake that failed: one attempt of the round.
            self.redial.failed(0, error.clone(), false);
        }
        for (_, seq) in link.state.inflight.drain(..) {
            self.batch.complete(seq, Err(error.clone()));
        }
        if link.state.in_multi {
            // The transaction's MULTI is gone with the connection: its remaining
            // commands must not run on their own on the next one.
            while let Some(request) = self.batch.next_unsent() {
                let ends = request
                    .name()
                    .is_some_and(|n| n.eq_ignore_ascii_case(b"EXEC") || n.eq_ignore_ascii_case(b"DISCARD"));
                self.batch.fail_next_unsent(error.clone());
                if ends {
                    break;
                }
            }
        }
    }

    /// Reconnects with backoff, as the policy allows, until `deadline` at the latest.
    /// The backoff is waited in the driver (other sessions on it keep running). When
    /// the deadline comes first, the round's progress stays in `self.redial`, and a
    /// handshake under way stays in `self.link` (it has its own connect timeout): the
    /// next call goes on from there instead of starting over, so calls shorter than a
    /// handshake still get connected.
    fn reconnect(&mut self, deadline: Option<Instant>) -> Result<(), Redialed> {
        match link::reconnect(self, deadline) {
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
        match self.redial.failures() {
            (attempts, Some(last)) => LinkError::reconnect(attempts, last.clone()).into(),
            _ => Error::Timeout,
        }
    }

    /// The first connection: one attempt, waited to the end (the connect timeout).
    fn open_link(&mut self) -> Result<(), Error> {
        self.start_link(None)?;
        match link::wait_handshake(self, None) {
            Handshake::Ready => Ok(()),
            Handshake::Dead(Some(e)) | Handshake::Failed(e) => Err(e),
            Handshake::Dead(None) => Err(Error::Connection(resp::ConnectionError::Closed)),
            // Not reached: without a limit the wait ends only with the handshake.
            Handshake::Later => Err(Error::from(LinkError::ConnectTimeout {
                server: self.options.address(),
                timeout: self.options.link.connect_timeout,
            })),
        }
    }

    /// Starts one connection attempt: TCP connect (within the connect timeout, and
    /// before `limit`, the caller's deadline, if it is sooner), hand the socket to the
    /// driver, queue the handshake and what to restore. [`link::wait_handshake`] then
    /// waits for the handshake.
    fn start_link(&mut self, limit: Option<Instant>) -> Result<(), Error> {
        let start = Instant::now();
        let connect_by = start + self.options.link.connect_timeout;
        let deadline = link::connect_deadline(start, self.options.link.connect_timeout, limit);
        let o = &self.options;
        let config = o.connection_config();
        let dialed = link::dial(
            &mut self.driver,
            &mut self.resolver,
            &mut self.activities,
            (&o.host, o.port),
            deadline,
            o.link.tcp_keepalive,
            link::Fresh(|now| Ok::<_, Infallible>(Connection::new(config.clone(), now))),
        );
        let conn = dialed.map_err(|e| match e {
            // What a timeout reports: the time the TCP connect was given.
            DialError::TimedOut => Error::from(LinkError::ConnectTimeout {
                server: o.address(),
                timeout: deadline.saturating_duration_since(start),
            }),
            DialError::Io(e) => Error::from(LinkError::Connect {
                server: o.address(),
                source: Arc::new(e),
            }),
            DialError::Session(never) => match never {},
        })?;
        self.link = Some(Link::new(conn, connect_by));
        self.queue_restore();
        self.drain_events();
        Ok(())
    }

    /// Once the current link's handshake completed: ends the reconnect round, counts
    /// the connection, and queues
    /// [`Event::Reconnected`] (and a full invalidation when tracking is restored) for
    /// every connection after the first.
    fn announce_link(&mut self) {
        let Some(link) = self.link.as_mut().filter(|l| l.ready && !l.state.announced) else {
            return;
        };
        link.state.announced = true;
        // The round succeeded.
        self.redial.succeeded(0);
        if self.connections > 0 {
            self.events.push(Event::Reconnected);
            if self.restore.tracking.is_some() {
                self.events.push(Event::Invalidate(Invalidation { keys: None }));
            }
        }
        self.connections += 1;
    }

    /// Subscriptions and tracking for a new connection, sent right after its handshake.
    fn queue_restore(&mut self) {
        let commands = self.restore.commands();
        let Some(link) = self.link.as_mut() else { return };
        let Some(conn) = self.driver.session_for_output(link.conn) else {
            return;
        };
        let now = Instant::now();
        for cmd in &commands {
            if let Ok(id) = conn.send_buffered(cmd, now) {
                link.state.restoring.push(id);
            }
        }
    }

    pub(crate) fn set_database(&mut self, db: u32) {
        self.options.database = db;
    }
}

/// Where a connection's events go: the parts of the client they update, borrowed
/// apart from the driver that holds the session.
struct Sink<'a> {
    link: &'a mut Option<Link>,
    batch: &'a mut Batch,
    events: &'a mut EventQueue,
    protocol: &'a mut Protocol,
}

impl Sink<'_> {
    fn on_event(&mut self, event: resp::Event) {
        match event {
            resp::Event::Reply { id, value } => {
                let outcome = match value.without_attributes().as_error() {
                    Some(text) => Err(Error::Server(ServerError::new(text))),
                    None => Ok(value),
                };
                self.complete(id, outcome);
            }
            resp::Event::Failed { id, error } => self.complete(id, Err(Error::from(error))),
            resp::Event::Connected { protocol, hello } => {
                if let Some(link) = self.link.as_mut() {
                    link.ready = true;
                    link.state.hello = hello;
                }
                *self.protocol = protocol;
            }
            resp::Event::Message { kind, channel, payload } => {
                self.events.push(Event::Message(Message { kind, channel, payload }));
            }
            resp::Event::Invalidate { keys } => self.events.push(Event::Invalidate(Invalidation { keys })),
            resp::Event::Push(value) => self.events.push(Event::Push(value)),
            resp::Event::Poisoned(error) => {
                if let Some(link) = self.link.as_mut() {
                    link.kill(Error::from(error));
                }
            }
        }
    }

    /// A request on the current connection ended.
    fn complete(&mut self, id: resp::RequestId, outcome: Result<Value, Error>) {
        let Some(link) = self.link.as_mut() else { return };
        if !link.state.restoring.is_empty() {
            if let Some(pos) = link.state.restoring.iter().position(|r| *r == id) {
                link.state.restoring.swap_remove(pos);
                if let Err(Error::Server(e)) = outcome {
                    self.events.push(Event::RestoreFailed(e));
                }
                return;
            }
        }
        // Outcomes come in send order, so this is nearly always the front.
        let seq = match link.state.inflight.front() {
            Some(&(front, seq)) if front == id => {
                link.state.inflight.pop_front();
                seq
            }
            _ => match link.state.inflight.binary_search_by_key(&id, |(i, _)| *i) {
                Ok(pos) => match link.state.inflight.remove(pos) {
                    Some((_, seq)) => seq,
                    None => return,
                },
                Err(_) => return,
            },
        };
        self.batch.complete(seq, outcome);
    }
}

/// Tracks `MULTI` ... `EXEC`/`DISCARD` sent with `send_buffered`.
fn note_multi(link: &mut Link, name: Option<&[u8]>) {
    let Some(name) = name else { return };
    if name.eq_ignore_ascii_case(b"MULTI") {
        link.state.in_multi = true;
    } else if name.eq_ignore_ascii_case(b"EXEC")
        || name.eq_ignore_ascii_case(b"DISCARD")
        || name.eq_ignore_ascii_case(b"RESET")
    {
        link.state.in_multi = false;
    }
}

/// The Redis steps of the shared reconnect loop ([`link::reconnect`]).
impl<D: Driver<Connection>> Redial for Client<D> {
    type Server = OneServer;
    type Lost = Error;
    type State = OnLink;
    type Error = Error;

    fn supervisor(&mut self) -> &mut Supervisor<OneServer, Error> {
        &mut self.redial
    }

    fn link(&self) -> Option<&Link> {
        self.link.as_ref()
    }

    fn start_link(&mut self, _: usize, deadline: Option<Instant>) -> Result<(), Error> {
        Client::start_link(self, deadline)
    }

    fn handshake_timed_out(&mut self) {
        self.kill_link(Error::from(LinkError::ConnectTimeout {
            server: self.options.address(),
            timeout: self.options.link.connect_timeout,
        }));
    }

    fn bury_link(&mut self) {
        Client::bury_link(self);
    }

    fn turn_until(&mut self, until: Instant) -> Result<(), Error> {
        self.turn(Some(until))
    }

    fn refused(_: &Error) -> bool {
        false
    }
}

impl<D: Driver<Connection>> std::fmt::Debug for Client<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.options)
            .field("protocol", &self.protocol)
            .field("connected", &self.is_connected())
            .field("connections", &self.connections)
            .field("buffered", &self.buffered())
            .field("queued_events", &self.events.len())
            .finish_non_exhaustive()
    }
}

/// Streaming pipelines: a producer that keeps buffering while replies come back, so the
/// server never waits for the client between batches (what `monocoque redis --pipe`
/// does). [`flush`](Client::flush) is stop-and-wait: it returns once every reply of
/// the batch is in, and nothing new reaches the server in the meantime.
impl<D: Driver<Connection>> Client<D> {
    /// Requests buffered but not yet handed to the connection: they wait in the client
    /// for room under [`max_pending`](ClientOptions::max_pending) and
    /// [`max_outgoing_bytes`](ClientOptions::max_outgoing_bytes), or for a reconnect.
    /// A streaming producer buffers more only while this is 0, which bounds what the
    /// client holds to one of its batches.
    pub fn unsent(&self) -> usize {
        self.batch.slots.len() - self.batch.cursor
    }

    /// Hands everything buffered to the kernel and appends to `out`, in request order,
    /// the outcomes that have arrived (those already returned by
    /// [`query`](Self::query) excepted); returns how many were appended. Waits, until
    /// `wait_until` (`None`: no limit), only while none has arrived and some request is
    /// still outstanding; with a deadline already past it never blocks. Outcomes it
    /// returns are not returned again by [`flush`](Self::flush).
    ///
    /// Unlike [`flush`](Self::flush), it returns as soon as some replies are in, so the
    /// caller can buffer the next commands while the server works on the earlier ones.
    /// Each call is one non-blocking driver turn (one write submission for everything
    /// buffered since the last), and more turns only while it waits: call it once per
    /// batch of commands, not per command.
    ///
    /// # Errors
    /// As [`flush`](Self::flush): only [`LinkError::Driver`], and every buffered request is
    /// then dropped.
    pub fn pump_into(
        &mut self,
        wait_until: Option<Instant>,
        out: &mut Vec<Result<Value, Error>>,
    ) -> Result<usize, Error> {
        let mut turned = false;
        let mut appended = 0;
        loop {
            if self.link.as_ref().is_some_and(|l| l.dead.is_some()) {
                self.bury_link();
            }
            if self.check_liveness && self.link.is_some() {
                self.check_liveness = false;
                self.turn(Some(Instant::now()))?;
                continue;
            }
            self.check_liveness = false;
            self.submit_unsent();
            if self.link.as_ref().is_some_and(|l| l.dead.is_some()) {
                continue;
            }
            if !self.link_ready() && self.batch.has_unsent() {
                // Only unsent requests are left: nothing on a dead connection survives.
                let timeout = self.options.response_timeout;
                let held = self.batch.held_deadline(timeout);
                let until = match (held, wait_until) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                match self.reconnect(until) {
                    Ok(()) => {}
                    Err(Redialed::Later(e)) => {
                        self.batch.expire_unsent_with(timeout, Instant::now(), &e);
                        appended += self.drain_finished_into(out);
                        if appended > 0 || wait_until.is_some_and(|d| Instant::now() >= d) {
                            return Ok(appended);
                        }
                    }
                    Err(Redialed::Over(e @ Error::Link(LinkError::Driver(_)))) => return Err(e),
                    Err(Redialed::Over(e)) => self.batch.fail_unsent(&e),
                }
                continue;
            }
            if !turned {
                // Hand what is encoded to the kernel and take in what arrived, without
                // blocking; then submit what the replies made room for.
                self.turn(Some(Instant::now()))?;
                turned = true;
                continue;
            }
            // Requests still held in the client's queue fail by their deadline, as in
            // `drive`: the connection does not know them, so nothing else would.
            let timeout = self.options.response_timeout;
            let held = self.batch.held_deadline(timeout);
            if held.is_some_and(|d| Instant::now() >= d) {
                self.batch.expire_unsent(timeout, Instant::now());
            }
            appended += self.drain_finished_into(out);
            let expired = wait_until.is_some_and(|d| Instant::now() >= d);
            if appended > 0 || self.batch.all_finished() || expired || self.link.is_none() {
                return Ok(appended);
            }
            let until = match (self.batch.held_deadline(timeout), wait_until) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.turn(until)?;
        }
    }

    /// Moves the outcomes at the front of the batch, up to the first request still
    /// waiting, into `out`; returns how many.
    fn drain_finished_into(&mut self, out: &mut Vec<Result<Value, Error>>) -> usize {
        use super::batch::Slot;
        let batch = &mut self.batch;
        let mut n = 0;
        while matches!(batch.slots.front(), Some(Slot::Done(_) | Slot::Taken)) {
            let Some(slot) = batch.slots.pop_front() else { break };
            batch.base += 1;
            batch.cursor = batch.cursor.saturating_sub(1);
            batch.finished = batch.finished.saturating_sub(1);
            match slot {
                Slot::Done(outcome) => {
                    out.push(outcome);
                    n += 1;
                }
                _ => batch.taken = batch.taken.saturating_sub(1),
            }
        }
        if batch.slots.is_empty() {
            self.settle();
        }
        n
    }
}
