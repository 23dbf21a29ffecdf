//! The blocking, thread-per-core NATS client: one connection, driven by one driver on
//! the calling thread, reconnecting across every server it knows.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::chassis::link::{GaveUp, Rng, Supervisor};
use monocoque_proto::nats::client::{
    self as sm, ClientConfig, Connection, ConnectionError, PingId, ReconnectState, RequestError, RequestId, SendError,
    SubscriptionEnd, SubscriptionPolicy,
};
use monocoque_proto::nats::{HeaderMap, Headers, Message, ServerInfo, Sid};
use monocoque_proto::{Activity, Driver};

use super::event::MAX_QUEUED_EVENTS;
use super::options::{Auth, ServerAddr, UrlAuth};
use super::{ClientOptions, Error, Event, LinkError};
use crate::driver::AnyDriver;
use crate::link::{self, DialError, Handshake, Redial};

/// How long a flush waits between two looks at a socket the kernel is not draining yet.
const FLUSH_POLL: Duration = Duration::from_millis(5);

/// Extra time the body allows past a request's own timeout (which the connection
/// enforces) before it gives up on its own.
const REQUEST_SLACK: Duration = Duration::from_secs(1);

/// A NATS client: one connection, run by a [`Driver`] on the calling thread.
///
/// Blocking and single-threaded by design (thread per core): every call runs the driver
/// until its work is done; nothing runs in the background. Subscriptions are handles
/// ([`Subscription`]) that share the client, so a thread can hold several and wait on
/// each.
///
/// ```no_run
/// use std::time::Duration;
/// use monocoque::nats::Client;
///
/// let mut client = Client::connect("nats://127.0.0.1:4222")?;
/// let mut sub = client.subscribe("greetings.>")?;
/// for i in 0..1000 {
///     client.publish("greetings.en", format!("hello {i}"))?; // encoded, not sent
/// }
/// client.flush()?; // one write for all of them
/// let first = sub.next_message(Duration::from_secs(1))?.expect("a message");
/// assert_eq!(first.payload, "hello 0");
/// # Ok::<(), monocoque::nats::Error>(())
/// ```
///
/// ## Publishing
///
/// [`publish`](Self::publish) and its variants only encode into the connection's arena;
/// [`flush`](Self::flush) hands everything to the kernel in one submission (or `writev`),
/// and every blocking call (waiting for a message, a request, a round trip) flushes
/// too. Past the connection's high-water mark a publish flushes by itself first.
///
/// ## Failures and reconnection
///
/// A connection that can no longer be trusted (closed by the server, a malformed stream,
/// unanswered keepalives, a fatal `-ERR`) is poisoned. The next call reconnects: it
/// tries every known server — those configured, then those the servers named in
/// `connect_urls` — starting after the one just lost, waiting between rounds with
/// exponential backoff and jitter ([`ReconnectPolicy`](super::ReconnectPolicy)). The
/// new connection resubscribes every active subscription (same ids, so handles stay
/// valid and queued messages are kept) and replays publishes the kernel had not taken,
/// within [`reconnect_buffer_size`](ClientOptions::reconnect_buffer_size). Once the loss
/// is known ([`Event::Disconnected`]), publishing does not wait for a server: each
/// publish joins that buffer, sent in order after the replayed ones, and one that does
/// not fit fails with [`Error::ReconnectBufferFull`] (what is buffered stays); the next
/// blocking call ([`flush`](Self::flush), a round trip, a request, waiting for a
/// message) reconnects. Requests in flight fail with [`Error::Connection`].
/// [`Event::Disconnected`] and [`Event::Reconnected`] say when it happened.
///
/// ## Deadlines
///
/// Every blocking call returns by its deadline (plus a timer tick), whatever the
/// server, the socket or the queues do: [`request`](Self::request) by its timeout,
/// [`next_event`](Self::next_event) and [`Subscription::next_message`] by theirs (with
/// `Ok(None)`), and the calls without a timeout of their own ([`flush`](Self::flush),
/// [`round_trip`](Self::round_trip), subscribing, unsubscribing, a publish past the
/// high-water mark) within [`operation_timeout`](ClientOptions::operation_timeout),
/// with [`Error::Timeout`]. A reconnect runs inside these deadlines: its backoff and
/// handshakes are driver turns (never a sleep), the TCP connect is bounded by the time
/// the caller has left, and a call whose time runs out leaves the reconnect where it
/// is for the next call to continue.
pub struct Client<D: Driver<Connection> = AnyDriver<Connection>> {
    inner: Rc<RefCell<Inner<D>>>,
}

/// A subscription: the subject (and queue group) it listens on and the queue of
/// messages it received. Dropping it unsubscribes.
///
/// Its messages wait in its own bounded queue
/// ([`SubscriptionPolicy`](super::SubscriptionPolicy)); when the queue is full, new
/// messages are dropped (and reported as [`Event::SlowConsumer`]) or the socket stops
/// being read until this subscription is drained, as its policy says.
pub struct Subscription<D: Driver<Connection> = AnyDriver<Connection>> {
    inner: Rc<RefCell<Inner<D>>>,
    sid: Sid,
    subject: String,
    queue: Option<String>,
}

/// Everything the client and its subscriptions share.
struct Inner<D> {
    driver: D,
    options: ClientOptions,
    /// The server pool and the reconnect in progress, if any: kept across calls, so a
    /// call that runs out of time leaves it where it was and the next call continues it.
    pool: Supervisor<ServerAddr, Error>,
    link: Option<Link>,
    /// What the last connection left for the next one (subscriptions, unsent publishes).
    carry: Option<ReconnectState>,
    /// Why the last connection was lost.
    last_error: Option<ConnectionError>,
    events: VecDeque<Event>,
    responses: HashMap<RequestId, Result<Message, RequestError>>,
    pongs: HashSet<PingId>,
    /// Subscriptions that ended on their own.
    ended: HashMap<Sid, SubscriptionEnd>,
    /// Subscriptions the application unsubscribed.
    unsubscribed: HashSet<Sid>,
    /// Messages dropped per subscription (slow consumer), in all.
    dropped: HashMap<Sid, u64>,
    /// Subscriptions dropped while disconnected: unsubscribed on the next connection.
    orphans: Vec<Sid>,
    info: Option<ServerInfo>,
    connections: u64,
    activities: Vec<Activity>,
    /// Resolves server host names off the driver's thread.
    resolver: link::Resolver,
    scratch: Vec<sm::Event>,
    /// When the driver last turned: the clock a publish hands the connection, which only
    /// advances its own clock with it (so publishing reads no clock per message).
    last_turn: Instant,
    /// Outgoing bytes at which the next publish hands the buffer to the kernel without
    /// waiting ([`ClientOptions::flush_threshold`] past what was left after the last
    /// turn), so a publishing loop sends as it goes and never rereads cold memory.
    auto_flush_at: usize,
}

/// The current connection (its handshake deadline is a backstop: the session enforces
/// the connect timeout itself).
type Link = link::Link<ConnectionError>;

impl Client<AnyDriver<Connection>> {
    /// Connects to `url` (`nats://[user:password@|token@]host[:port]`, several
    /// separated by commas) with default options, blocking until the handshake
    /// completes or every server failed.
    pub fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(ClientOptions::from_url(url)?)
    }

    /// Connects with `options`, on the driver they name.
    pub fn connect_with(options: ClientOptions) -> Result<Self, Error> {
        let driver = options.link.open_driver()?;
        Self::connect_with_driver(driver, options)
    }
}

impl<D: Driver<Connection>> Client<D> {
    /// Connects with `options` on a driver the caller built (any [`Driver`]);
    /// `options.link.driver` is ignored. Each configured server is tried once, in order; the
    /// first to complete the handshake wins, otherwise the last error is returned (at
    /// once for credentials the server refused).
    pub fn connect_with_driver(driver: D, options: ClientOptions) -> Result<Self, Error> {
        let mut inner = Inner {
            driver,
            pool: Supervisor::new(
                &options.servers,
                options.link.reconnect,
                super::pool::seed(options.seed),
            ),
            auto_flush_at: options.flush_threshold,
            options,
            link: None,
            carry: None,
            last_error: None,
            events: VecDeque::new(),
            responses: HashMap::new(),
            pongs: HashSet::new(),
            ended: HashMap::new(),
            unsubscribed: HashSet::new(),
            dropped: HashMap::new(),
            orphans: Vec::new(),
            info: None,
            connections: 0,
            activities: Vec::new(),
            resolver: link::Resolver::default(),
            scratch: Vec::new(),
            last_turn: Instant::now(),
        };
        if inner.pool.servers().is_empty() {
            return Err(Error::from(super::UrlError::Empty));
        }
        let mut last = None;
        for index in 0..inner.pool.servers().len() {
            match inner.open_link(index) {
                Ok(()) => {
                    return Ok(Self {
                        inner: Rc::new(RefCell::new(inner)),
                    })
                }
                Err(e @ Error::Rejected(_)) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or(Error::from(super::UrlError::Empty)))
    }

    // ---- getters ----

    /// The options it was created with.
    pub fn options(&self) -> ClientOptions {
        self.inner.borrow().options.clone()
    }

    /// Whether a connection is up (as far as the client knows without I/O).
    pub fn is_connected(&self) -> bool {
        self.inner.borrow().link.as_ref().is_some_and(link::Link::is_live)
    }

    /// Connections made so far: 1 after connecting, one more per reconnect.
    pub fn connections(&self) -> u64 {
        self.inner.borrow().connections
    }

    /// The first `INFO` of the current (or last) connection.
    pub fn server_info(&self) -> Option<ServerInfo> {
        self.inner.borrow().info.clone()
    }

    /// The server of the current (or last) connection.
    pub fn current_server(&self) -> ServerAddr {
        let inner = self.inner.borrow();
        inner
            .pool
            .servers()
            .get(inner.pool.current())
            .cloned()
            .unwrap_or_else(|| ServerAddr::new("", 0))
    }

    /// Every server the client would try when reconnecting: configured, then
    /// discovered.
    pub fn known_servers(&self) -> Vec<ServerAddr> {
        self.inner.borrow().pool.servers().to_vec()
    }

    /// The servers learned from `connect_urls` (not configured), first seen first.
    pub fn discovered_servers(&self) -> Vec<ServerAddr> {
        self.inner.borrow().pool.discovered().to_vec()
    }

    /// Bytes of messages (payloads plus headers) queued across every subscription and
    /// not taken yet, bounded by
    /// [`max_pending_bytes`](ClientOptions::max_pending_bytes) (0 while disconnected).
    pub fn pending_bytes(&self) -> usize {
        let inner = self.inner.borrow();
        let Some(link) = inner.link.as_ref() else { return 0 };
        inner.driver.session(link.conn).map_or(0, Connection::pending_bytes)
    }

    /// Messages dropped so far because `sub`'s queue was full.
    pub fn dropped(&self, sub: &Subscription<D>) -> u64 {
        self.inner.borrow().dropped.get(&sub.sid).copied().unwrap_or(0)
    }

    // ---- publishing ----

    /// Buffers a message to `subject` (no syscall until [`flush`](Self::flush) or a
    /// blocking call).
    ///
    /// # Errors
    /// [`Error::Refused`] for an invalid subject or a payload over the server's
    /// `max_payload` (nothing is sent; the connection stays up);
    /// [`Error::ReconnectBufferFull`] while disconnected, when the reconnect buffer has no
    /// room for it; a connection error when the connection was lost and could not be
    /// re-established.
    pub fn publish(&mut self, subject: &str, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.inner
            .borrow_mut()
            .publish(subject.as_bytes(), None, None, &payload.into())
    }

    /// Buffers a message with a reply subject (for a request answered elsewhere).
    pub fn publish_with_reply(&mut self, subject: &str, reply: &str, payload: impl Into<Bytes>) -> Result<(), Error> {
        self.inner
            .borrow_mut()
            .publish(subject.as_bytes(), Some(reply.as_bytes()), None, &payload.into())
    }

    /// Buffers a message with headers (`HPUB`).
    pub fn publish_with_headers(
        &mut self,
        subject: &str,
        headers: &HeaderMap,
        payload: impl Into<Bytes>,
    ) -> Result<(), Error> {
        let headers = headers.to_headers();
        self.inner
            .borrow_mut()
            .publish(subject.as_bytes(), None, Some(&headers), &payload.into())
    }

    /// Hands everything buffered to the kernel: one submission (io_uring) or one
    /// `writev` (mio) when the socket takes it all, more only when it pushes back.
    /// Reconnects first if the connection was lost (replaying what it had not sent).
    ///
    /// # Errors
    /// [`Error::Timeout`] when it is not done within
    /// [`operation_timeout`](ClientOptions::operation_timeout) (what the kernel has not
    /// taken stays buffered); a connection error when the connection was lost and
    /// could not be re-established.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.inner.borrow_mut().flush()
    }

    /// Flushes, then sends a `PING` and waits for the `PONG`: when it returns, the
    /// server has processed everything sent before (subscriptions are active). Returns
    /// the round-trip time. [`Error::Timeout`] after
    /// [`operation_timeout`](ClientOptions::operation_timeout) without the `PONG`.
    pub fn round_trip(&mut self) -> Result<Duration, Error> {
        self.inner.borrow_mut().round_trip()
    }

    // ---- subscriptions ----

    /// Subscribes to `subject` (wildcards `*` and `>` allowed) with the default
    /// [`subscription_policy`](ClientOptions::subscription_policy). The `SUB` is handed
    /// to the kernel before this returns; [`round_trip`](Self::round_trip) confirms the
    /// server has it.
    pub fn subscribe(&mut self, subject: &str) -> Result<Subscription<D>, Error> {
        let policy = self.inner.borrow().options.subscription_policy;
        self.subscribe_with(subject, None, policy)
    }

    /// Subscribes as a member of queue group `queue`: each message goes to one member.
    pub fn queue_subscribe(&mut self, subject: &str, queue: &str) -> Result<Subscription<D>, Error> {
        let policy = self.inner.borrow().options.subscription_policy;
        self.subscribe_with(subject, Some(queue), policy)
    }

    /// Subscribes with this subscription's own limits and slow-consumer policy.
    pub fn subscribe_with(
        &mut self,
        subject: &str,
        queue: Option<&str>,
        policy: SubscriptionPolicy,
    ) -> Result<Subscription<D>, Error> {
        let sid = self.inner.borrow_mut().subscribe(subject, queue, policy)?;
        Ok(Subscription {
            inner: Rc::clone(&self.inner),
            sid,
            subject: subject.to_owned(),
            queue: queue.map(str::to_owned),
        })
    }

    /// Unsubscribes `sub` now (`max: None`), or once it has received `max` messages in
    /// all. Messages already queued can still be taken.
    pub fn unsubscribe(&mut self, sub: &Subscription<D>, max: Option<u64>) -> Result<(), Error> {
        self.inner.borrow_mut().unsubscribe(&sub.sid, max)
    }

    // ---- requests ----

    /// Publishes `payload` to `subject` with a reply subject in this connection's inbox
    /// and waits up to `timeout` for the reply (reconnecting first, if needed, counts
    /// against `timeout` too).
    ///
    /// # Errors
    /// [`Error::NoResponders`] when nobody subscribes to `subject`, [`Error::Timeout`]
    /// when no reply came in time, a connection error when the connection was lost
    /// meanwhile (the request may or may not have been handled).
    pub fn request(&mut self, subject: &str, payload: impl Into<Bytes>, timeout: Duration) -> Result<Message, Error> {
        self.inner
            .borrow_mut()
            .request(subject.as_bytes(), None, &payload.into(), timeout)
    }

    /// [`request`](Self::request) with headers.
    pub fn request_with_headers(
        &mut self,
        subject: &str,
        headers: &HeaderMap,
        payload: impl Into<Bytes>,
        timeout: Duration,
    ) -> Result<Message, Error> {
        let headers = headers.to_headers();
        self.inner
            .borrow_mut()
            .request(subject.as_bytes(), Some(&headers), &payload.into(), timeout)
    }

    // ---- events ----

    /// The next event (disconnections, reconnections, slow consumers, non-fatal server
    /// errors, discovered servers), waiting up to `timeout`; `Duration::ZERO` only looks
    /// at what already arrived. Reconnects if the connection was lost, unless `timeout`
    /// is zero: a zero-timeout poll never blocks (the loss is still reported). A
    /// reconnect that does not complete within `timeout` gives `Ok(None)` and continues
    /// in the next call.
    pub fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        self.inner.borrow_mut().next_event(timeout)
    }

    /// Runs `f` on the driver, e.g. to run other sessions on it between calls.
    pub fn with_driver<T>(&mut self, f: impl FnOnce(&mut D) -> T) -> T {
        f(&mut self.inner.borrow_mut().driver)
    }
}

impl<D: Driver<Connection>> Subscription<D> {
    /// The subscription's id on the connection (kept across reconnects).
    pub fn sid(&self) -> &Sid {
        &self.sid
    }

    /// The subject it listens on.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The queue group it belongs to.
    pub fn queue(&self) -> Option<&str> {
        self.queue.as_deref()
    }

    /// The next message, waiting up to `timeout` (`Duration::ZERO`: only what already
    /// arrived, and no reconnect while the connection is lost: the poll never blocks).
    /// `Ok(None)` when none came in time, a reconnect included (it continues in the
    /// next call).
    ///
    /// # Errors
    /// [`Error::SubscriptionClosed`] once the subscription ended and its queue is empty;
    /// a connection error when the connection was lost and could not be re-established
    /// (messages already queued survive a reconnect).
    pub fn next_message(&mut self, timeout: Duration) -> Result<Option<Message>, Error> {
        self.inner.borrow_mut().next_message(&self.sid, timeout)
    }

    /// Messages and bytes queued, not yet taken (`None` once it ended and was drained,
    /// or while disconnected).
    pub fn pending(&self) -> Option<(usize, usize)> {
        let inner = self.inner.borrow();
        let conn = inner.link.as_ref()?.conn;
        inner.driver.session(conn)?.pending_messages(&self.sid)
    }

    /// Messages dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.borrow().dropped.get(&self.sid).copied().unwrap_or(0)
    }

    /// Unsubscribes now; queued messages are discarded.
    pub fn unsubscribe(self) -> Result<(), Error> {
        // Drop does the work (and flushes nothing); flush so the server hears now.
        let inner = Rc::clone(&self.inner);
        drop(self);
        let result = inner.borrow_mut().flush();
        result
    }

    /// Unsubscribes once `max` messages in all have been received (counting those
    /// already received).
    pub fn unsubscribe_after(&mut self, max: u64) -> Result<(), Error> {
        self.inner.borrow_mut().unsubscribe(&self.sid, Some(max))
    }
}

impl<D: Driver<Connection>> Drop for Subscription<D> {
    fn drop(&mut self) {
        let Ok(mut inner) = self.inner.try_borrow_mut() else {
            return;
        };
        inner.forget(&self.sid);
    }
}

impl<D: Driver<Connection>> fmt::Debug for Subscription<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("sid", &self.sid)
            .field("subject", &self.subject)
            .field("queue", &self.queue)
            .finish_non_exhaustive()
    }
}

impl<D: Driver<Connection>> fmt::Debug for Client<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.borrow();
        f.debug_struct("Client")
            .field("options", &inner.options)
            .field("server", &inner.pool.servers().get(inner.pool.current()))
            .field("connected", &inner.link.as_ref().is_some_and(link::Link::is_live))
            .field("connections", &inner.connections)
            .field("queued_events", &inner.events.len())
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------
// The work, on the shared state
// ---------------------------------------------------------------------------------------

impl<D: Driver<Connection>> Inner<D> {
    // ---- operations ----

    fn publish(
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
            self.options.operation_timeout,
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
        if outgoing >= self.auto_flush_at {
            // A polling turn: the driver starts sending what is buffered and returns at
            // once. The next one waits for another threshold's worth, so a send still
            // in flight costs one extra turn, not one per publish.
            self.turn(Some(self.last_turn))?;
            let left = self.live_session().map_or(0, |s| s.outgoing_len());
            self.auto_flush_at = left.saturating_add(self.options.flush_threshold);
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
        if !self.options.allow_reconnect || self.link.as_ref().is_some_and(link::Link::is_live) {
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
        if let Some(link) = self.link.as_ref().filter(|l| l.dead.is_none()) {
            // A handshake in progress: the new connection holds the publish until it
            // completes, within the reconnect buffer.
            let conn = link.conn;
            let now = self.last_turn;
            return match self.driver.session_for_output(conn) {
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
        let state = self.carry.as_mut()?;
        Some(state.publish(subject, reply, headers, payload).map_err(full))
    }

    fn subscribe(&mut self, subject: &str, queue: Option<&str>, policy: SubscriptionPolicy) -> Result<Sid, Error> {
        let sid = self.with_session(self.options.operation_timeout, |session| {
            session.subscribe(subject.as_bytes(), queue.map(str::as_bytes), policy)
        })?;
        // Hand the SUB to the kernel now: messages published after this returns can
        // reach it as soon as the server has read it.
        self.turn(Some(Instant::now()))?;
        Ok(sid)
    }

    fn unsubscribe(&mut self, sid: &Sid, max: Option<u64>) -> Result<(), Error> {
        self.with_session(self.options.operation_timeout, |session| session.unsubscribe(sid, max))?;
        if max.is_none() {
            self.unsubscribed.insert(sid.clone());
        }
        self.turn(Some(Instant::now()))
    }

    /// A dropped handle: unsubscribe at once if a connection is up (or completing its
    /// handshake, which holds the `UNSUB`), else on the next connection.
    fn forget(&mut self, sid: &Sid) {
        self.dropped.remove(sid);
        let ended = self.ended.remove(sid).is_some();
        let unsubscribed = self.unsubscribed.remove(sid);
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
            None => self.orphans.push(sid.clone()),
        }
    }

    fn request(
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
            if let Some(outcome) = self.responses.remove(&id) {
                return outcome.map_err(Error::from);
            }
            if let Some(error) = self.link.as_ref().and_then(|l| l.dead.clone()) {
                // Every pending request got its RequestFailed before the poison.
                self.drain_events();
                return match self.responses.remove(&id) {
                    Some(outcome) => outcome.map_err(Error::from),
                    None => Err(Error::from(error)),
                };
            }
            if self.link.is_none() {
                return Err(Error::from(self.last_error.clone().unwrap_or(ConnectionError::Closed)));
            }
            if backstop.is_some_and(|b| Instant::now() >= b) {
                return Err(Error::Timeout);
            }
            self.turn(backstop)?;
        }
    }

    /// Hands everything buffered to the kernel within
    /// [`operation_timeout`](ClientOptions::operation_timeout) (reconnecting first if
    /// needed); [`Error::Timeout`] when the kernel has not taken it all by then.
    fn flush(&mut self) -> Result<(), Error> {
        let deadline = deadline_after(self.options.operation_timeout);
        self.ensure_link(deadline)?;
        self.turn(Some(Instant::now()))?;
        loop {
            let Some(session) = self.live_session() else {
                // Lost while sending: what the kernel did not take is replayed on the
                // next connection.
                self.ensure_link(deadline)?;
                continue;
            };
            if session.outgoing_len() == 0 {
                return Ok(());
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                return Err(Error::Timeout);
            }
            self.turn(Some(poll_until(now, deadline)))?;
        }
    }

    fn round_trip(&mut self) -> Result<Duration, Error> {
        let started = Instant::now();
        let timeout = self.options.operation_timeout;
        let deadline = started.checked_add(timeout);
        let id = self.with_session(timeout, |session| session.ping())?;
        loop {
            if self.pongs.remove(&id) {
                return Ok(started.elapsed());
            }
            if let Some(error) = self.link.as_ref().and_then(|l| l.dead.clone()) {
                return Err(Error::from(error));
            }
            if self.link.is_none() {
                return Err(Error::from(self.last_error.clone().unwrap_or(ConnectionError::Closed)));
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout);
            }
            self.turn(deadline)?;
        }
    }

    fn next_message(&mut self, sid: &Sid, timeout: Duration) -> Result<Option<Message>, Error> {
        // A message already queued needs no deadline: no clock read on the hot path.
        if let Some(message) = self.live_session().and_then(|s| s.next_message(sid)) {
            return Ok(Some(message));
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut last_look = false;
        loop {
            if let Some(session) = self.live_session() {
                if let Some(message) = session.next_message(sid) {
                    return Ok(Some(message));
                }
                if self.ended.contains_key(sid) || self.unsubscribed.contains(sid) {
                    return Err(Error::SubscriptionClosed);
                }
            } else if self.unsubscribed.contains(sid) {
                return Err(Error::SubscriptionClosed);
            }
            if last_look {
                return Ok(None);
            }
            if !self.is_live() {
                if timeout.is_zero() {
                    // A poll: report the loss, leave the reconnect to a call that waits.
                    if self.link.as_ref().is_some_and(|l| l.dead.is_some()) {
                        self.bury_link();
                    }
                    return Ok(None);
                }
                match self.ensure_link(deadline) {
                    // Out of time while reconnecting: no message came in time. The next
                    // call continues the reconnect.
                    Err(Error::Timeout) => return Ok(None),
                    result => result?,
                }
                continue;
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                // One last look at what already arrived.
                self.turn(Some(now))?;
                last_look = true;
                continue;
            }
            self.turn(deadline)?;
        }
    }

    fn next_event(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        let deadline = Instant::now().checked_add(timeout);
        let mut last_look = false;
        loop {
            if let Some(event) = self.events.pop_front() {
                return Ok(Some(event));
            }
            if last_look {
                return Ok(None);
            }
            if self.link.as_ref().is_some_and(|l| l.dead.is_some()) {
                self.bury_link();
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
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                self.turn(Some(now))?;
                last_look = true;
                continue;
            }
            self.turn(deadline)?;
        }
    }

    /// Runs `op` on a live connection within `timeout`: reconnects first if needed,
    /// flushes and retries on backpressure, reconnects and retries when the connection
    /// turns out poisoned; [`Error::Timeout`] when `timeout` runs out first.
    fn with_session<T>(
        &mut self,
        timeout: Duration,
        op: impl FnMut(&mut Connection) -> Result<T, SendError>,
    ) -> Result<T, Error> {
        self.with_session_or(timeout, op, |_| None)
    }

    /// [`with_session`](Self::with_session), except that before every attempt (the
    /// first, and each after the connection was found lost while waiting for the kernel)
    /// `on_loss` may settle the call without a live connection. The clock is read (and
    /// the deadline set) only once the call has to wait.
    fn with_session_or<T>(
        &mut self,
        timeout: Duration,
        mut op: impl FnMut(&mut Connection) -> Result<T, SendError>,
        mut on_loss: impl FnMut(&mut Self) -> Option<Result<T, Error>>,
    ) -> Result<T, Error> {
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
                self.kill_link(ConnectionError::Closed);
                continue;
            };
            match op(session) {
                Ok(value) => return Ok(value),
                Err(SendError::Backpressure(_)) => {
                    let now = Instant::now();
                    let deadline = *deadline.get_or_insert_with(|| now.checked_add(timeout));
                    if deadline.is_some_and(|d| now >= d) {
                        // The kernel did not take enough in time (a stuck server).
                        return Err(Error::Timeout);
                    }
                    self.turn(Some(poll_until(now, deadline)))?;
                }
                Err(SendError::Poisoned(e)) => self.kill_link(e),
                Err(refused) => return Err(Error::Refused(refused)),
            }
        }
    }

    // ---- the driver ----

    /// One driver turn; processes what it reports.
    fn turn(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        let conn = self.link.as_ref().map(|l| l.conn);
        let result = link::turn(&mut self.driver, &mut self.activities, deadline, conn);
        self.last_turn = Instant::now();
        let reported = match result {
            Ok(reported) => reported,
            Err(e) => {
                self.kill_link(ConnectionError::Closed);
                self.bury_link();
                return Err(Error::Link(LinkError::Driver(Arc::new(e))));
            }
        };
        if reported.ready || reported.closed {
            self.drain_events();
        }
        if reported.closed {
            self.kill_link(ConnectionError::Closed);
        }
        Ok(())
    }

    /// Whether a connection is up: handshake complete, not poisoned.
    fn is_live(&self) -> bool {
        self.link.as_ref().is_some_and(link::Link::is_live)
    }

    /// The current connection's session, if it is up and not poisoned.
    fn live_session(&mut self) -> Option<&mut Connection> {
        let link = self.link.as_ref().filter(|l| l.is_live())?;
        self.driver.session_for_output(link.conn)
    }

    /// The current connection's session if it is not poisoned, its handshake complete
    /// or not.
    fn current_session(&mut self) -> Option<&mut Connection> {
        let link = self.link.as_ref()?;
        if link.dead.is_some() {
            return None;
        }
        self.driver.session_for_output(link.conn)
    }

    /// Pumps the current connection's events.
    fn drain_events(&mut self) {
        let Some(conn) = self.link.as_ref().map(|l| l.conn) else {
            return;
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        let mut closed = None;
        if let Some(session) = self.driver.session_for_output(conn) {
            while let Some(event) = session.poll_event() {
                scratch.push(event);
            }
            if session.is_closed() {
                closed = Some(session.error().cloned().unwrap_or(ConnectionError::Closed));
            }
        }
        for event in scratch.drain(..) {
            self.on_event(event);
        }
        self.scratch = scratch;
        if let Some(error) = closed {
            self.kill_link(error);
        }
    }

    fn on_event(&mut self, event: sm::Event) {
        match event {
            sm::Event::Connected { info } => self.on_connected(*info),
            sm::Event::Messages { .. } => {}
            sm::Event::SlowConsumer { sid, dropped } => {
                *self.dropped.entry(sid.clone()).or_default() += dropped;
                self.push_event(Event::SlowConsumer { sid, dropped });
            }
            sm::Event::SubscriptionEnded { sid, reason } => {
                self.ended.insert(sid.clone(), reason.clone());
                self.push_event(Event::SubscriptionEnded { sid, reason });
            }
            sm::Event::Response { id, message } => {
                self.responses.insert(id, Ok(message));
            }
            sm::Event::RequestFailed { id, error } => {
                self.responses.insert(id, Err(error));
            }
            sm::Event::Pong { id } => {
                self.pongs.insert(id);
            }
            sm::Event::ServerError(e) => self.push_event(Event::ServerError(e)),
            sm::Event::ServersDiscovered { added } => {
                for server in &added {
                    let first = self.pool.servers().first();
                    if let Some(server) = super::pool::discovered(server, first) {
                        self.pool.add(server);
                    }
                }
                self.push_event(Event::ServersDiscovered(added));
            }
            sm::Event::LameDuck => self.push_event(Event::LameDuck),
            sm::Event::Poisoned(error) => self.kill_link(error),
        }
    }

    /// The handshake of the current connection completed (in whichever call was turning
    /// the driver): the reconnect, if there was one, is over.
    fn on_connected(&mut self, info: ServerInfo) {
        let Some(link) = &mut self.link else { return };
        if link.ready {
            return;
        }
        link.ready = true;
        self.info = Some(info);
        let server = self.pool.current();
        self.pool.succeeded(server);
        self.connections += 1;
        if self.connections > 1 {
            let server = self
                .pool
                .servers()
                .get(server)
                .map(ServerAddr::address)
                .unwrap_or_default();
            self.push_event(Event::Reconnected { server });
        }
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    // ---- connections ----

    /// Marks the current connection dead (the first reason wins).
    fn kill_link(&mut self, error: ConnectionError) {
        if let Some(link) = &mut self.link {
            link.kill(error);
        }
    }

    /// Makes sure a connection is up by `deadline`: buries a dead one, reconnects if
    /// allowed ([`Error::Timeout`] when `deadline` comes first: the reconnect stays where
    /// it is, for the next call to continue).
    fn ensure_link(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        if self.link.as_ref().is_some_and(|l| l.dead.is_some()) {
            self.bury_link();
        }
        if self.is_live() {
            return Ok(());
        }
        if self.link.is_none() && !self.options.allow_reconnect {
            return Err(Error::Disconnected(
                self.last_error.clone().unwrap_or(ConnectionError::Closed),
            ));
        }
        self.reconnect(deadline)
    }

    /// Takes the dead connection out of the driver; keeps what the next one must carry.
    /// A connection whose handshake never completed was a reconnect attempt: its failure
    /// is the reconnect's latest.
    fn bury_link(&mut self) {
        if self.link.is_none() {
            return;
        }
        self.drain_events();
        let Some(link) = self.link.take() else { return };
        if let Some(mut session) = self.driver.remove(link.conn) {
            while let Some(event) = session.poll_event() {
                self.on_event(event);
            }
            self.carry = Some(session.take_reconnect_state());
        }
        // Requests and pings on it are over (their failures were reported above).
        self.pongs.clear();
        let error = link.dead.unwrap_or(ConnectionError::Closed);
        self.last_error = Some(error.clone());
        if link.ready {
            self.push_event(Event::Disconnected(error));
        } else {
            let failure = Error::from(error);
            let refused = matches!(failure, Error::Rejected(_));
            let server = self.pool.current();
            self.pool.failed(server, failure, refused);
        }
        let dropped = self.carry.as_ref().map_or(0, ReconnectState::dropped_publishes);
        if dropped > 0 {
            self.push_event(Event::PublishesDropped { count: dropped });
        }
    }

    /// Continues the reconnect (or starts one): tries every known server, starting after
    /// the current one, in rounds separated by the policy's backoff with jitter, until
    /// one completes its handshake or the attempts run out. Every wait (the backoff, a
    /// handshake) is a driver turn bounded by `deadline`; when `deadline` comes first it
    /// returns [`Error::Timeout`] and the progress stays for the next call.
    fn reconnect(&mut self, deadline: Option<Instant>) -> Result<(), Error> {
        match link::reconnect(self, deadline) {
            Ok(()) => Ok(()),
            Err(link::Redialed::Later) => Err(Error::Timeout),
            Err(link::Redialed::GaveUp(gave_up)) => Err(self.give_up(gave_up)),
            Err(link::Redialed::Failed(e)) => Err(e),
        }
    }

    /// Ends the reconnect in progress: the error that says how it went. The next call
    /// starts a new one.
    fn give_up(&self, gave_up: GaveUp<Error>) -> Error {
        let lost = || Error::from(self.last_error.clone().unwrap_or(ConnectionError::Closed));
        LinkError::reconnect(gave_up.attempts, gave_up.last.unwrap_or_else(lost)).into()
    }

    /// One connection attempt to server `index`, all the way: start it
    /// ([`start_link`](Self::start_link)), then wait for the handshake (bounded by the
    /// connect timeout).
    fn open_link(&mut self, index: usize) -> Result<(), Error> {
        self.start_link(index, None)?;
        match link::wait_handshake(self, None) {
            Handshake::Ready => Ok(()),
            Handshake::Dead(lost) => Err(Error::from(lost.unwrap_or(ConnectionError::Closed))),
            Handshake::Failed(e) => Err(e),
            // Not reached: without a limit the wait ends only with the handshake.
            Handshake::Later => Err(Error::Connection(ConnectionError::HandshakeTimeout)),
        }
    }

    /// Starts a connection attempt to server `index`: TCP connect (within the connect
    /// timeout and `deadline`), then hand the socket and a fresh (or resumed) session to
    /// the driver. The handshake completes in later turns
    /// ([`on_connected`](Self::on_connected)).
    fn start_link(&mut self, index: usize, deadline: Option<Instant>) -> Result<(), Error> {
        let Some(server) = self.pool.servers().get(index).cloned() else {
            return Err(Error::from(super::UrlError::Empty));
        };
        let timeout = self.options.link.connect_timeout;
        let keepalive = self.options.link.tcp_keepalive;
        let now = Instant::now();
        let connect_deadline = now + timeout;
        let tcp_deadline = link::connect_deadline(now, timeout, deadline);
        let Self {
            driver,
            options,
            pool,
            carry,
            resolver,
            activities,
            ..
        } = self;
        let dialing = Dialing {
            options,
            pool,
            carry,
            server: &server,
        };
        let dialed = link::dial(
            driver,
            resolver,
            activities,
            (&server.host, server.port),
            tcp_deadline,
            keepalive,
            dialing,
        );
        let conn = dialed.map_err(|e| match e {
            DialError::TimedOut => Error::from(LinkError::ConnectTimeout {
                server: server.address(),
                timeout,
            }),
            DialError::Io(e) => Error::from(LinkError::Connect {
                server: server.address(),
                source: Arc::new(e),
            }),
            DialError::Session(e) => e,
        })?;
        self.pool.set_current(index);
        self.link = Some(Link::new(conn, connect_deadline + Duration::from_secs(1)));
        if let Some(session) = self.driver.session_for_output(conn) {
            // Queued until the handshake completes, like the resubscriptions.
            for sid in self.orphans.drain(..) {
                let _ = session.unsubscribe(&sid, None);
            }
        }
        self.drain_events();
        Ok(())
    }
}

/// How a NATS dial builds its sessions: a fresh one, or one resuming what the last
/// connection left ([`ReconnectState`]); a connect that fails hands its session back,
/// and what it carried goes into the next one.
struct Dialing<'a> {
    options: &'a ClientOptions,
    pool: &'a mut Supervisor<ServerAddr, Error>,
    carry: &'a mut Option<ReconnectState>,
    server: &'a ServerAddr,
}

impl link::Dialing<Connection> for Dialing<'_> {
    type Error = Error;

    fn session(&mut self, now: Instant) -> Result<Connection, Error> {
        let config = config_for(self.options, self.pool.rng(), self.server)?;
        Ok(match self.carry.take() {
            Some(state) => Connection::resume(config, state, now),
            None => Connection::new(config, now),
        })
    }

    fn salvage(&mut self, mut session: Connection) {
        *self.carry = Some(session.take_reconnect_state());
    }
}

/// The NATS steps of the shared reconnect loop ([`link::reconnect`]).
impl<D: Driver<Connection>> Redial for Inner<D> {
    type Server = ServerAddr;
    type Lost = ConnectionError;
    type State = ();
    type Error = Error;

    fn supervisor(&mut self) -> &mut Supervisor<ServerAddr, Error> {
        &mut self.pool
    }

    fn link(&self) -> Option<&Link> {
        self.link.as_ref()
    }

    fn start_link(&mut self, index: usize, deadline: Option<Instant>) -> Result<(), Error> {
        Inner::start_link(self, index, deadline)
    }

    fn handshake_timed_out(&mut self) {
        self.kill_link(ConnectionError::HandshakeTimeout);
    }

    fn bury_link(&mut self) {
        Inner::bury_link(self);
    }

    fn turn_until(&mut self, until: Instant) -> Result<(), Error> {
        self.turn(Some(until))
    }

    fn refused(error: &Error) -> bool {
        matches!(error, Error::Rejected(_))
    }
}

/// `timeout` from now; `None` when that is too far to represent (no bound).
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// The next look at a socket the kernel is not draining yet: a [`FLUSH_POLL`] from
/// `now`, never past `deadline`.
fn poll_until(now: Instant, deadline: Option<Instant>) -> Instant {
    let next = now + FLUSH_POLL;
    deadline.map_or(next, |d| next.min(d))
}

/// The session's configuration for `server`: its URL's credentials, else the
/// options' (a `.creds` file is read now, so a rotated file is picked up).
fn config_for(o: &ClientOptions, rng: &mut Rng, server: &ServerAddr) -> Result<ClientConfig, Error> {
    let auth = match &server.auth {
        Some(UrlAuth::Token(token)) => sm::Auth::Token(token.clone()),
        Some(UrlAuth::UserPassword { user, password }) => sm::Auth::UserPassword {
            user: user.clone(),
            password: password.clone(),
        },
        None => match &o.auth {
            Auth::None => sm::Auth::None,
            Auth::Token(token) => sm::Auth::Token(token.clone()),
            Auth::UserPassword { user, password } => sm::Auth::UserPassword {
                user: user.clone(),
                password: password.clone(),
            },
            Auth::NKey { seed } => sm::Auth::nkey(seed)?,
            Auth::Jwt { jwt, seed } => sm::Auth::jwt(jwt.clone(), seed)?,
            Auth::CredsFile(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::CredsFile {
                    path: path.display().to_string(),
                    source: Arc::new(e),
                })?;
                sm::Auth::from_creds(&text)?
            }
        },
    };
    Ok(ClientConfig {
        name: o.name.clone(),
        auth,
        verbose: o.verbose,
        pedantic: o.pedantic,
        echo: o.echo,
        connect_timeout: o.link.connect_timeout,
        ping_interval: o.ping_interval,
        max_pings_out: o.max_pings_out,
        seed: rng.next_u64(),
        reconnect_buffer_bytes: o.reconnect_buffer_size,
        max_outgoing_bytes: o.outgoing_buffer_size,
        max_payload: o.max_payload,
        max_pending_bytes: o.max_pending_bytes,
        ..ClientConfig::default()
    })
}
