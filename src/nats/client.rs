//! The blocking, thread-per-core NATS client: one connection, driven by one driver on
//! the calling thread, reconnecting across every server it knows.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use monocoque_proto::nats::client::{Connection, SubscriptionPolicy};
use monocoque_proto::nats::{HeaderMap, Message, MessageRef, ServerInfo, Sid};
use monocoque_proto::Driver;

use super::body::Inner;
use super::options::ServerAddr;
use super::{ClientOptions, Error, Event};
use crate::driver::AnyDriver;

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
/// ([`SubscriptionPolicy`]); when the queue is full, new
/// messages are dropped (and reported as [`Event::SlowConsumer`]) or the socket stops
/// being read until this subscription is drained, as its policy says.
pub struct Subscription<D: Driver<Connection> = AnyDriver<Connection>> {
    inner: Rc<RefCell<Inner<D>>>,
    sid: Sid,
    subject: String,
    queue: Option<String>,
}

impl Client<AnyDriver<Connection>> {
    /// Connects to `url` (`nats://[user:password@|token@]host[:port]`, several
    /// separated by commas) with default options, blocking until the handshake
    /// completes or every server failed.
    pub fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(ClientOptions::from_url(url)?)
    }

    /// Connects with `options`, on the driver they name.
    pub fn connect_with(options: ClientOptions) -> Result<Self, Error> {
        Self::connect_with_driver(options.link.open_driver()?, options)
    }
}

impl<D: Driver<Connection>> Client<D> {
    /// Connects with `options` on a driver the caller built (any [`Driver`]);
    /// `options.link.driver` is ignored. Each configured server is tried once, in order; the
    /// first to complete the handshake wins, otherwise the last error is returned (at
    /// once for credentials the server refused).
    pub fn connect_with_driver(driver: D, options: ClientOptions) -> Result<Self, Error> {
        let inner = Inner::connect(driver, options)?;
        Ok(Self {
            inner: Rc::new(RefCell::new(inner)),
        })
    }

    // ---- getters ----

    /// The options it was created with.
    pub fn options(&self) -> ClientOptions {
        self.inner.borrow().proto.options.clone()
    }

    /// Whether a connection is up (as far as the client knows without I/O).
    pub fn is_connected(&self) -> bool {
        self.inner.borrow().is_live()
    }

    /// Connections made so far: 1 after connecting, one more per reconnect.
    pub fn connections(&self) -> u64 {
        self.inner.borrow().connections
    }

    /// The first `INFO` of the current (or last) connection.
    pub fn server_info(&self) -> Option<ServerInfo> {
        self.inner.borrow().proto.info.clone()
    }

    /// The server of the current (or last) connection.
    pub fn current_server(&self) -> ServerAddr {
        let inner = self.inner.borrow();
        inner
            .supervisor
            .servers()
            .get(inner.supervisor.current())
            .cloned()
            .unwrap_or_else(|| ServerAddr::new("", 0))
    }

    /// Every server the client would try when reconnecting: configured, then
    /// discovered.
    pub fn known_servers(&self) -> Vec<ServerAddr> {
        self.inner.borrow().supervisor.servers().to_vec()
    }

    /// The servers learned from `connect_urls` (not configured), first seen first.
    pub fn discovered_servers(&self) -> Vec<ServerAddr> {
        self.inner.borrow().supervisor.discovered().to_vec()
    }

    /// Bytes of messages (payloads plus headers) queued across every subscription and
    /// not taken yet, bounded by
    /// [`max_pending_bytes`](ClientOptions::max_pending_bytes) (0 while disconnected).
    pub fn pending_bytes(&self) -> usize {
        self.inner.borrow().session().map_or(0, Connection::pending_bytes)
    }

    /// Messages dropped so far because `sub`'s queue was full.
    pub fn dropped(&self, sub: &Subscription<D>) -> u64 {
        self.inner.borrow().proto.dropped.get(&sub.sid).copied().unwrap_or(0)
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
        let policy = self.inner.borrow().proto.options.subscription_policy;
        self.subscribe_with(subject, None, policy)
    }

    /// Subscribes as a member of queue group `queue`: each message goes to one member.
    pub fn queue_subscribe(&mut self, subject: &str, queue: &str) -> Result<Subscription<D>, Error> {
        let policy = self.inner.borrow().proto.options.subscription_policy;
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

    /// Up to `max` messages at once, oldest first, into the back of `batch`, waiting up
    /// to `timeout` for the first as [`next_message`](Self::next_message) does; returns
    /// how many (0 when none came in time, or `max` is 0). The same messages, in the
    /// same order, as that many `next_message` calls, for the cost of one: a whole
    /// queue taken into an empty `batch` is handed over without moving a message, and
    /// a backpressured subscription resumes reading once per batch. What `batch` holds
    /// no longer counts against the subscription's or the connection's bounds: a
    /// caller that keeps batches bounds them itself (`max`).
    ///
    /// ```no_run
    /// # use std::{collections::VecDeque, time::Duration};
    /// # fn f(sub: &mut monocoque::nats::Subscription) -> Result<(), monocoque::nats::Error> {
    /// let mut batch = VecDeque::new();
    /// while sub.next_messages(&mut batch, 4096, Duration::from_secs(1))? > 0 {
    ///     for message in batch.drain(..) {
    ///         println!("{} bytes on {:?}", message.payload.len(), message.subject);
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`next_message`](Self::next_message).
    pub fn next_messages(
        &mut self,
        batch: &mut VecDeque<Message>,
        max: usize,
        timeout: Duration,
    ) -> Result<usize, Error> {
        self.inner.borrow_mut().next_messages(&self.sid, batch, max, timeout)
    }

    /// Hands up to `max` messages to `visit`, oldest first, each as a [`MessageRef`]
    /// borrowed from the bytes the driver received (subject, reply, header block and
    /// payload as `&[u8]`): nothing is copied, counted or queued, so this is the
    /// fastest way to consume a subscription. Waits up to `timeout` for the first
    /// message as [`next_message`](Self::next_message) does, then visits what has been
    /// received (up to `max`) and returns how many (0 when none came in time, or `max`
    /// is 0).
    ///
    /// The same messages in the same order as `next_message`, each once: messages
    /// already queued (received during other calls) come first, and the calls can be
    /// mixed freely. Reading the socket waits for `visit` (about 1 MiB of received
    /// bytes is held at most), so a slow closure slows the server down rather than
    /// growing memory. A message kept past the closure must be copied
    /// (`m.payload.to_vec()`).
    ///
    /// `visit` runs while the client is busy: calling the client (or another of its
    /// subscriptions) from inside it panics.
    ///
    /// ```no_run
    /// # use std::time::Duration;
    /// # fn f(sub: &mut monocoque::nats::Subscription) -> Result<(), monocoque::nats::Error> {
    /// let mut bytes = 0;
    /// while sub.for_each_message(usize::MAX, Duration::from_secs(1), |m| bytes += m.payload.len())? > 0 {}
    /// println!("{bytes} bytes received");
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`next_message`](Self::next_message).
    pub fn for_each_message(
        &mut self,
        max: usize,
        timeout: Duration,
        visit: impl FnMut(MessageRef<'_>),
    ) -> Result<usize, Error> {
        self.inner.borrow_mut().for_each_message(&self.sid, max, timeout, visit)
    }

    /// Messages and bytes queued, not yet taken (`None` once it ended and was drained,
    /// or while disconnected).
    pub fn pending(&self) -> Option<(usize, usize)> {
        self.inner.borrow().session()?.pending_messages(&self.sid)
    }

    /// Messages dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.inner.borrow().proto.dropped.get(&self.sid).copied().unwrap_or(0)
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
            .field("options", &inner.proto.options)
            .field("server", &inner.supervisor.servers().get(inner.supervisor.current()))
            .field("connected", &inner.is_live())
            .field("connections", &inner.connections)
            .field("queued_events", &inner.proto.events.len())
            .finish_non_exhaustive()
    }
}
