//! The blocking, thread-per-core Redis client: one connection, driven by one driver on
//! the calling thread.

use std::time::{Duration, Instant};

use monocoque_proto::resp::{self, Cmd, Connection, Protocol, TapeRef, Value};
use monocoque_proto::Driver;

use super::batch::RequestId;
use super::body::Inner;
use super::event::{Event, Invalidation, Message};
use super::{ClientOptions, Error};
use crate::driver::AnyDriver;

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
    inner: Inner<D>,
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
        Ok(Self {
            inner: Inner::connect(driver, options)?,
        })
    }

    // ---- getters ----

    /// The options it was created with (the database follows [`select`](Self::select)).
    pub fn options(&self) -> &ClientOptions {
        &self.inner.proto.options
    }

    /// The protocol the server speaks on the current (or last) connection: RESP3 unless
    /// RESP2 was asked for or the server refused `HELLO 3`.
    pub fn protocol(&self) -> Protocol {
        self.inner.proto.protocol
    }

    /// The server's reply to `HELLO` on the current connection (server, version, proto,
    /// id, mode, role, modules), when RESP3 was negotiated.
    pub fn server_hello(&self) -> Option<&Value> {
        self.inner.link.as_ref().and_then(|l| l.state.hello.as_ref())
    }

    /// Whether a connection is up (as far as the client knows without I/O).
    pub fn is_connected(&self) -> bool {
        self.inner.is_live()
    }

    /// Connections made so far: 1 after [`connect`](Client::connect), one more per
    /// reconnect.
    pub fn connections(&self) -> u64 {
        self.inner.connections
    }

    /// Requests buffered whose outcome has not been returned yet.
    pub fn buffered(&self) -> usize {
        let batch = &self.inner.proto.batch;
        batch.slots.len() - batch.taken
    }

    /// Events (messages, invalidations, ...) queued for [`next_event`](Self::next_event).
    pub fn queued_events(&self) -> usize {
        self.inner.proto.events.len()
    }

    /// The driver, e.g. to run other sessions on it between calls.
    pub fn driver_mut(&mut self) -> &mut D {
        &mut self.inner.driver
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
        self.inner.send_buffered(cmd)
    }

    /// [`send_buffered`](Self::send_buffered) for the command whose arguments (name
    /// first) are `args`, encoded straight into the connection's outgoing arena: no
    /// [`Cmd`] is built and nothing is allocated per command. This is the fast path for
    /// pipelining many small commands; [`set_buffered`](Self::set_buffered) and
    /// [`get_buffered`](Self::get_buffered) use it. Arguments are copied (a large
    /// [`Bytes`](bytes::Bytes) value is shared without copying only through a [`Cmd`]).
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
        self.inner.send_args(args)
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
        self.inner.send_transaction(cmds)
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
    /// Only [`LinkError::Driver`](super::LinkError::Driver), when the driver itself fails: every buffered request is
    /// then dropped (those on the wire may still run on the server; their replies are
    /// never delivered).
    pub fn flush(&mut self) -> Result<Vec<Result<Value, Error>>, Error> {
        self.inner.flush()
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
        self.inner.flush_into(out)
    }

    /// [`flush`](Self::flush), handing each outcome to `visit` in request order instead
    /// of returning it, each reply as a [`TapeRef`] borrowed from the received bytes:
    /// no [`Value`] is built and no reference count is taken per string, which makes
    /// this the cheapest way to read a pipeline's replies (see `BENCHMARKS.md`, RESP
    /// decoding). An error reply is `Err(`[`Error::Server`]`)`, as with `flush`.
    /// Returns how many outcomes were visited.
    ///
    /// Replies to plain commands are decoded straight off the connection's input onto a
    /// reused tape. A transaction's `EXEC` reply, subscribe confirmations, failures and
    /// replies that arrived during an earlier call are visited too, in their turn, as
    /// the owned value they already are. Pushes and pub/sub messages that arrive
    /// meanwhile go to [`next_event`](Self::next_event) as usual. Call
    /// [`TapeRef::to_value`] on a reply to keep it.
    ///
    /// ```no_run
    /// # let mut client = monocoque::redis::Client::connect("redis://127.0.0.1")?;
    /// for i in 0..100 {
    ///     client.get_buffered(format!("key:{i}"))?;
    /// }
    /// let mut bytes = 0;
    /// let n = client.flush_visit(|reply| {
    ///     if let Ok(value) = reply {
    ///         bytes += value.as_bytes().map_or(0, <[u8]>::len);
    ///     }
    /// })?;
    /// assert_eq!(n, 100);
    /// # Ok::<(), monocoque::redis::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`flush`](Self::flush); outcomes visited before the error stay visited.
    pub fn flush_visit(&mut self, mut visit: impl FnMut(Result<TapeRef<'_>, Error>)) -> Result<usize, Error> {
        self.inner.flush_visit(&mut visit)
    }

    /// Sends `cmd` (after everything buffered before it) and returns its reply. Earlier
    /// buffered requests' outcomes stay for the next [`flush`](Self::flush).
    pub fn query(&mut self, cmd: &Cmd) -> Result<Value, Error> {
        self.inner.query(cmd)
    }

    /// [`query`](Self::query), with the reply converted to `T`.
    pub fn query_as<T: super::FromReply>(&mut self, cmd: &Cmd) -> Result<T, Error> {
        T::from_reply(self.query(cmd)?)
    }

    /// Runs `cmds` in a `MULTI`/`EXEC` transaction and returns `EXEC`'s reply.
    pub fn transaction(&mut self, cmds: &[Cmd]) -> Result<Value, Error> {
        let id = self.inner.send_transaction(cmds)?;
        self.inner.wait(id)
    }

    /// Drops every buffered request: those on the wire are abandoned (they may still
    /// run; their replies are consumed and discarded, never delivered to a later call),
    /// the others are never sent.
    pub fn discard_buffered(&mut self) {
        self.inner.abort_batch();
    }

    // ---- pub/sub and events ----

    /// The next queued event, waiting up to `timeout` for one (`Duration::ZERO` only
    /// reads what already arrived). Reconnects first if the connection was lost, which
    /// restores subscriptions; within `timeout` too: a reconnect that needs longer goes
    /// on in the next call, and this one returns `Ok(None)`
    /// ([`is_connected`](Self::is_connected) tells). It fails with
    /// [`LinkError::Reconnect`](super::LinkError::Reconnect) only when the reconnect policy's attempts are exhausted.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        self.inner.wait_event(timeout, |_| true, Some)
    }

    /// The next pub/sub message, waiting up to `timeout`. Other events stay queued for
    /// [`next_event`](Self::next_event).
    pub fn next_message(&mut self, timeout: Duration) -> Result<Option<Message>, Error> {
        self.inner.wait_event(
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
        self.inner.wait_event(
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
        self.inner.sub_command("SUBSCRIBE", channels, true)
    }

    /// Subscribes to channels matching `patterns` (glob-style), as
    /// [`subscribe`](Self::subscribe).
    pub fn psubscribe<C: resp::ToArg>(&mut self, patterns: &[C]) -> Result<(), Error> {
        self.inner.sub_command("PSUBSCRIBE", patterns, true)
    }

    /// Unsubscribes from `channels` (all channels when empty) and waits for the
    /// confirmations.
    pub fn unsubscribe<C: resp::ToArg>(&mut self, channels: &[C]) -> Result<(), Error> {
        self.inner.sub_command("UNSUBSCRIBE", channels, false)
    }

    /// Unsubscribes from `patterns` (all patterns when empty).
    pub fn punsubscribe<C: resp::ToArg>(&mut self, patterns: &[C]) -> Result<(), Error> {
        self.inner.sub_command("PUNSUBSCRIBE", patterns, false)
    }

    /// Turns on client-side caching (`CLIENT TRACKING ON`): the server remembers the
    /// keys this connection reads and sends an [`Invalidation`] when one changes. Needs
    /// RESP3 (invalidations arrive as pushes on this connection); on RESP2 use
    /// [`enable_tracking_redirect`](Self::enable_tracking_redirect). Restored after a
    /// reconnect, with an `Invalidation { keys: None }` since the server forgot what was
    /// read.
    pub fn enable_tracking(&mut self) -> Result<(), Error> {
        if self.inner.proto.protocol != Protocol::Resp3 {
            return Err(Error::NeedsResp3("client-side tracking without REDIRECT"));
        }
        self.inner
            .set_tracking(Some(Cmd::new("CLIENT").arg("TRACKING").arg("ON")))
    }

    /// Turns on client-side caching with invalidations sent to another connection,
    /// `client_id` (from [`client_id`](Self::client_id) on that client), which receives
    /// them by subscribing to `__redis__:invalidate` (RESP2) or as pushes (RESP3).
    pub fn enable_tracking_redirect(&mut self, client_id: i64) -> Result<(), Error> {
        let cmd = Cmd::new("CLIENT")
            .arg("TRACKING")
            .arg("ON")
            .arg("REDIRECT")
            .arg(client_id);
        self.inner.set_tracking(Some(cmd))
    }

    /// Turns client-side caching off.
    pub fn disable_tracking(&mut self) -> Result<(), Error> {
        self.inner.set_tracking(None)
    }

    /// Follows a `SELECT` that succeeded: a new connection selects `db`.
    pub(crate) fn set_database(&mut self, db: u32) {
        self.inner.proto.options.database = db;
    }
}

impl<D: Driver<Connection>> std::fmt::Debug for Client<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("options", &self.inner.proto.options)
            .field("protocol", &self.inner.proto.protocol)
            .field("connected", &self.is_connected())
            .field("connections", &self.inner.connections)
            .field("buffered", &self.buffered())
            .field("queued_events", &self.inner.proto.events.len())
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
        let batch = &self.inner.proto.batch;
        batch.slots.len() - batch.cursor
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
    /// As [`flush`](Self::flush): only [`LinkError::Driver`](super::LinkError::Driver), and every buffered request is
    /// then dropped.
    pub fn pump_into(
        &mut self,
        wait_until: Option<Instant>,
        out: &mut Vec<Result<Value, Error>>,
    ) -> Result<usize, Error> {
        self.inner.pump_into(wait_until, out)
    }

    /// [`pump_into`](Self::pump_into), handing the outcomes that have arrived to
    /// `visit` in request order, each reply borrowed as with
    /// [`flush_visit`](Self::flush_visit); returns how many it visited.
    ///
    /// # Errors
    /// As [`pump_into`](Self::pump_into).
    pub fn pump_visit(
        &mut self,
        wait_until: Option<Instant>,
        mut visit: impl FnMut(Result<TapeRef<'_>, Error>),
    ) -> Result<usize, Error> {
        self.inner.pump_visit(wait_until, &mut visit)
    }
}
