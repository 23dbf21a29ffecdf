//! The NATS client connection: a sans-IO state machine for the handshake,
//! authentication, publishing, subscriptions with bounded queues, request/reply over one
//! inbox, keepalive, server errors and cluster discovery, and the state a reconnect
//! carries over.
//!
//! See [`Connection`] for the manual.

mod config;
mod error;
mod event;
mod nkey;
mod outgoing;
mod receive;
mod reconnect;
mod requests;
mod subscription;
mod visit;

#[cfg(test)]
mod fake_server;
#[cfg(test)]
mod tests;

pub use config::{Auth, ClientConfig, SlowConsumerPolicy, SubscriptionPolicy};
pub use error::{ConnectionError, RequestError, SendError};
pub use event::{Event, PingId, RequestId, SubscriptionEnd};
pub use nkey::{CredsError, KeyPair, NKeyError};
pub use reconnect::ReconnectState;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use outgoing::Outgoing;
use requests::Requests;
use subscription::{message_size, SharedRoom, SidHash, Subscription};

use crate::chassis::{Backpressure, IoArena, PoisonGuard, SegmentedBuffer, SentWatch, Session};
use crate::nats::{encode, ClientFrameDecoder, Headers, Message, ServerInfo, Sid};

/// Where the handshake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Nothing sent yet: the server speaks first.
    AwaitInfo,
    /// `CONNECT` and `PING` sent.
    AwaitPong,
    /// The server answered the handshake's `PING`.
    Connected,
}

/// Why a `PING` was sent; `PONG`s answer them in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PingKind {
    Handshake,
    Keepalive,
    User(u64),
}

/// A NATS client connection, sans I/O.
///
/// It is driven by the chassis run-loop rule (see [`Session`]): feed it
/// received bytes, end of stream and timer expiry; drain its transmit arena, its events
/// and its timer. It never reads the clock, opens a socket or draws randomness (the
/// inbox id comes from [`ClientConfig::inbox_id`] or [`ClientConfig::seed`]).
///
/// ```
/// use std::time::Instant;
/// use bytes::Bytes;
/// use monocoque_proto::nats::client::{ClientConfig, Connection, Event, SubscriptionPolicy};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let now = Instant::now();
/// let mut conn = Connection::new(ClientConfig::default(), now);
/// // Work given before the handshake is held and sent once it completes.
/// let sid = conn.subscribe(b"greet", None, SubscriptionPolicy::default())?;
/// conn.handle_input(Bytes::from_static(b"INFO {\"max_payload\":1048576,\"headers\":true}\r\n"), now)?;
/// let arena = conn.poll_transmit().expect("CONNECT and PING");
/// assert!(arena.to_vec().starts_with(b"CONNECT {"));
/// let n = arena.len();
/// arena.advance(n); // what the kernel took
///
/// conn.handle_input(Bytes::from_static(b"PONG\r\n"), now)?;
/// assert!(matches!(conn.poll_event(), Some(Event::Connected { .. })));
/// assert_eq!(conn.poll_transmit().unwrap().to_vec(), b"SUB greet 1\r\n");
///
/// conn.handle_input(Bytes::from_static(b"MSG greet 1 2\r\nhi\r\n"), now)?;
/// assert_eq!(conn.poll_event(), Some(Event::Messages { sid: sid.clone() }));
/// assert_eq!(conn.next_message(&sid).unwrap().payload, "hi");
/// # Ok(())
/// # }
/// ```
///
/// ## What it handles
///
/// - **Handshake.** Waits for `INFO`, refuses a server that requires TLS
///   ([`ConnectionError::TlsRequired`]), sends `CONNECT` (verbose off unless
///   configured, pedantic optional, headers and no-responders on, the name, echo and
///   the credentials of [`Auth`]: token, user/password, an NKey signature of the
///   server's nonce, or a JWT and that signature) and `PING`, and is connected on the
///   `PONG` ([`Event::Connected`]). Everything given before that is held and sent after
///   it, within [`ClientConfig::reconnect_buffer_bytes`], and the whole handshake must
///   complete within [`ClientConfig::connect_timeout`].
/// - **Publishing** ([`publish`](Self::publish)) encodes into the arena: no syscall;
///   the driver flushes everything buffered in one write. Over
///   [`ClientConfig::max_outgoing_bytes`] publishes fail with backpressure.
/// - **Subscriptions** ([`subscribe`](Self::subscribe)) each have a queue bounded in
///   messages and bytes, and all of them together are bounded by
///   [`ClientConfig::max_pending_bytes`]; when a message does not fit, the
///   subscription's [`SlowConsumerPolicy`] drops the message ([`Event::SlowConsumer`])
///   or stops reading the socket
///   ([`wants_read`](Self::wants_read) is false) until the application takes messages
///   with [`next_message`](Self::next_message). [`Event::Messages`] says when a queue
///   stops being empty. [`unsubscribe`](Self::unsubscribe) ends one now (its queued
///   messages are dropped and nothing more is delivered to it) or after a maximum.
/// - **Requests** ([`request`](Self::request)) share one `<inbox_prefix>.<id>.*`
///   subscription; each gets its own reply token, one [`Event::Response`] or
///   [`Event::RequestFailed`] (no responders, timeout, poison).
/// - **Keepalive.** A `PING` every [`ClientConfig::ping_interval`]; poisoned with
///   [`ConnectionError::StaleConnection`] when one is due while
///   [`ClientConfig::max_pings_out`] are unanswered.
/// - **Server errors.** A `-ERR` after which nats-server closes the connection poisons
///   it ([`ConnectionError::Server`]); a permissions violation or subject error is an
///   [`Event::ServerError`] (a refused subscription ends with
///   [`SubscriptionEnd::Refused`]) and the connection continues.
/// - **Cluster.** The `connect_urls` of every `INFO` accumulate in
///   [`known_servers`](Self::known_servers) ([`Event::ServersDiscovered`]); lame-duck
///   mode is [`Event::LameDuck`].
/// - **Poison.** Decode errors, fatal server errors, a stale connection, a handshake
///   timeout and end of stream are terminal: every pending request fails once, then
///   [`Event::Poisoned`], and every later call reports the same error.
/// - **Reconnect.** [`take_reconnect_state`](Self::take_reconnect_state) and
///   [`resume`](Self::resume) carry subscriptions (same sids, queued messages kept,
///   remaining maximums resent), unsent publishes (within the reconnect buffer) and the
///   known servers into a new connection.
///
/// ## Methods
///
/// In the order a driver uses them (as in `quinn-proto`):
///
/// - **getters**: [`config`](Self::config), [`is_connected`](Self::is_connected),
///   [`server_info`](Self::server_info), [`known_servers`](Self::known_servers),
///   [`error`](Self::error), [`outgoing_len`](Self::outgoing_len),
///   [`pending_requests`](Self::pending_requests),
///   [`pending_messages`](Self::pending_messages),
///   [`pending_bytes`](Self::pending_bytes),
///   [`dropped_messages`](Self::dropped_messages), [`wants_read`](Self::wants_read),
///   [`is_closed`](Self::is_closed);
/// - **input**: [`handle_input`](Self::handle_input), [`handle_eof`](Self::handle_eof),
///   [`handle_timeout`](Self::handle_timeout);
/// - **mutators**: [`publish`](Self::publish), [`subscribe`](Self::subscribe),
///   [`unsubscribe`](Self::unsubscribe), [`request`](Self::request),
///   [`ping`](Self::ping), [`next_message`](Self::next_message),
///   [`next_messages`](Self::next_messages), [`defer_input`](Self::defer_input),
///   [`visit_messages`](Self::visit_messages),
///   [`take_reconnect_state`](Self::take_reconnect_state),
///   [`report_sent`](Self::report_sent), [`report_room`](Self::report_room);
/// - **output**: [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event),
///   [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct Connection {
    config: ClientConfig,
    phase: Phase,
    /// Decodes what the server sends, frame by frame, from the first received segment
    /// (see `receive::next_op`); its limits are the encoder's too.
    decoder: ClientFrameDecoder,
    input: SegmentedBuffer,
    /// A frame straddling received segments, gathered as it arrives.
    gathering: receive::Gathering,
    out: Outgoing,
    events: VecDeque<Event>,
    guard: PoisonGuard<ConnectionError>,
    /// The first `INFO` (for [`Event::Connected`]).
    first_info: Option<Box<ServerInfo>>,
    /// The latest `INFO`.
    info: Option<Box<ServerInfo>>,
    known_servers: Vec<String>,
    lame_duck: bool,
    /// `false` once an `INFO` says the server does not support headers.
    headers_supported: bool,
    subs: HashMap<u64, Subscription, SidHash>,
    /// The last sid handed out (the inbox's included).
    last_sid: u64,
    requests: Requests,
    /// `PING`s in `transmit` or sent, oldest first.
    pings: VecDeque<PingKind>,
    /// `PING`s in `held`, released after the handshake's.
    held_pings: Vec<PingKind>,
    keepalives_out: u32,
    last_ping_id: u64,
    handshake_deadline: Option<Instant>,
    next_ping: Option<Instant>,
    /// The latest instant given to any call.
    now: Instant,
    /// A message for a [`SlowConsumerPolicy::Backpressure`] subscription whose queue is
    /// full: decoding stops until it fits.
    stalled: Option<Message>,
    /// Subscriptions with drops not reported yet.
    slow: Vec<u64>,
    /// Bytes queued across every subscription (as each counts them), bounded by
    /// [`ClientConfig::max_pending_bytes`].
    queued_bytes: usize,
    /// Received bytes wait in `input` for [`visit_messages`](Self::visit_messages)
    /// instead of being decoded as they arrive (see [`defer_input`](Self::defer_input)).
    deferred: bool,
    /// Whether the body waits to hear of a write ([`Session::handle_sent`]).
    sent_watch: SentWatch,
}

impl Connection {
    /// A connection about to be opened: it waits for the server's `INFO` (the server
    /// speaks first), so nothing is in the arena yet. The connect timeout runs from
    /// `now`.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        Self::with_counters(config, now, 0, 0, 0)
    }

    fn with_counters(config: ClientConfig, now: Instant, last_sid: u64, last_request: u64, last_ping: u64) -> Self {
        let inbox_id = config
            .inbox_id
            .clone()
            .unwrap_or_else(|| requests::inbox_id(config.seed));
        Self {
            phase: Phase::AwaitInfo,
            decoder: ClientFrameDecoder::new(config.limits),
            input: SegmentedBuffer::new(),
            gathering: receive::Gathering::default(),
            out: Outgoing::default(),
            events: VecDeque::new(),
            guard: PoisonGuard::new(),
            first_info: None,
            info: None,
            known_servers: Vec::new(),
            lame_duck: false,
            headers_supported: true,
            subs: HashMap::default(),
            last_sid,
            requests: Requests::new(&config.inbox_prefix, &inbox_id, last_request),
            pings: VecDeque::new(),
            held_pings: Vec::new(),
            keepalives_out: 0,
            last_ping_id: last_ping,
            handshake_deadline: Some(now + config.connect_timeout),
            next_ping: None,
            now,
            stalled: None,
            slow: Vec::new(),
            queued_bytes: 0,
            deferred: false,
            sent_watch: SentWatch::default(),
            config,
        }
    }

    // ---- getters ----

    /// The settings it was created with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether the handshake completed and the connection is not poisoned.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected && !self.guard.is_poisoned()
    }

    /// The latest `INFO` from the server (`None` before the first).
    pub fn server_info(&self) -> Option<&ServerInfo> {
        self.info.as_deref()
    }

    /// Every server named in the `connect_urls` of any `INFO` on this connection (and,
    /// after [`resume`](Self::resume), the connections before it), first seen first,
    /// without duplicates: where the body may reconnect.
    pub fn known_servers(&self) -> &[String] {
        &self.known_servers
    }

    /// Why the connection was poisoned, once it is.
    pub fn error(&self) -> Option<&ConnectionError> {
        self.guard.error()
    }

    /// Bytes encoded but not yet taken by the kernel, plus bytes held until the
    /// handshake completes.
    pub fn outgoing_len(&self) -> usize {
        self.out.len()
    }

    /// Requests waiting for their reply.
    pub fn pending_requests(&self) -> usize {
        self.requests.len()
    }

    /// `(messages, bytes)` queued for a subscription and not taken yet; `None` for a sid
    /// that is not (or no longer) a subscription.
    pub fn pending_messages(&self, sid: &Sid) -> Option<(usize, usize)> {
        self.sub(sid).map(Subscription::pending)
    }

    /// Messages dropped in all for a subscription whose queue was full
    /// ([`SlowConsumerPolicy::DropNew`]).
    pub fn dropped_messages(&self, sid: &Sid) -> Option<u64> {
        self.sub(sid).map(|s| s.dropped_total)
    }

    /// Whether the driver should read the socket: not once poisoned, nor while a
    /// message waits for room in a [`SlowConsumerPolicy::Backpressure`] subscription.
    pub fn wants_read(&self) -> bool {
        !self.guard.is_poisoned() && !self.paused() && !self.deferred_full()
    }

    /// Whether decoding is paused: a message waits for room in a backpressured
    /// subscription. A message carried over a reconnect pauses only once connected, so
    /// the handshake can complete (no message can arrive before it: every `SUB` is sent
    /// after it).
    fn paused(&self) -> bool {
        self.stalled.is_some() && self.phase == Phase::Connected
    }

    /// Whether the connection is finished (poisoned): the driver can close the socket.
    pub fn is_closed(&self) -> bool {
        self.guard.is_poisoned()
    }

    /// Bytes queued across every subscription, not taken yet (counted as
    /// [`SubscriptionPolicy::max_bytes`] counts them), bounded by
    /// [`ClientConfig::max_pending_bytes`].
    pub fn pending_bytes(&self) -> usize {
        self.queued_bytes
    }

    fn sub(&self, sid: &Sid) -> Option<&Subscription> {
        self.subs.get(&sid.as_u64()?)
    }

    /// Room left under the connection-wide bound.
    fn shared_room(&self) -> SharedRoom {
        SharedRoom {
            available: self.config.max_pending_bytes.saturating_sub(self.queued_bytes),
            capacity: self.config.max_pending_bytes,
        }
    }

    /// Removes a subscription with whatever it still queues.
    fn remove_sub(&mut self, key: u64) {
        if let Some(sub) = self.subs.remove(&key) {
            self.queued_bytes = self.queued_bytes.saturating_sub(sub.pending().1);
        }
    }

    // ---- handle_* ----

    /// Bytes received from the server: every complete op is acted on (messages queued,
    /// replies matched, `PING`s answered...). Decoding pauses while a message waits for
    /// room in a backpressured subscription; the bytes are kept.
    ///
    /// # Errors
    /// The poisoning error if the connection is (or now becomes) poisoned.
    pub fn handle_input(&mut self, data: Bytes, now: Instant) -> Result<(), ConnectionError> {
        self.guard.check()?;
        self.tick(now);
        self.input.push(data);
        self.pump();
        self.guard.check()
    }

    /// The server closed the connection (or the driver saw it fail): the connection is
    /// poisoned with [`ConnectionError::Closed`] unless it already was.
    ///
    /// # Errors
    /// Always the poisoning error.
    pub fn handle_eof(&mut self, now: Instant) -> Result<(), ConnectionError> {
        self.guard.check()?;
        self.tick(now);
        // What arrived before the end is acted on first, as it would have been.
        self.settle();
        Err(self.poison(ConnectionError::Closed))
    }

    /// The instant from [`poll_timeout`](Self::poll_timeout) has come: the handshake
    /// deadline, request deadlines ([`RequestError::Timeout`]) and the keepalive.
    ///
    /// # Errors
    /// The poisoning error if the connection is (or now becomes) poisoned.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ConnectionError> {
        self.guard.check()?;
        self.tick(now);
        // A reply or `PONG` already received answers before its deadline counts.
        self.settle();
        if self.handshake_deadline.is_some_and(|at| at <= now) {
            return Err(self.poison(ConnectionError::HandshakeTimeout));
        }
        for id in self.requests.expire(now) {
            self.events.push_back(Event::RequestFailed {
                id,
                error: RequestError::Timeout,
            });
        }
        if self.next_ping.is_some_and(|at| at <= now) {
            self.keepalive(now);
        }
        self.guard.check()
    }

    fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    fn keepalive(&mut self, now: Instant) {
        self.next_ping = Some(now + self.config.ping_interval.max(Duration::from_millis(1)));
        if self.paused() {
            // Reading is paused: the server's PONGs wait behind the stalled message.
            return;
        }
        if self.keepalives_out >= self.config.max_pings_out.max(1) {
            self.poison(ConnectionError::StaleConnection {
                pings_out: self.keepalives_out,
            });
            return;
        }
        self.out
            .control::<()>(false, |a| {
                a.put_slice(b"PING\r\n");
                Ok(())
            })
            .ok();
        self.pings.push_back(PingKind::Keepalive);
        self.keepalives_out += 1;
    }

    // ---- mutators ----

    /// Asks the driver to report ([`Activity::Sent`](crate::Activity::Sent)) the first
    /// write the kernel takes that leaves at most `below` bytes of output here (0: once
    /// it is empty), once: a body waiting for a flush sleeps in its driver turn until
    /// then instead of polling.
    pub fn report_sent(&mut self, below: usize) {
        self.sent_watch.ask(below);
    }

    /// [`report_sent`](Self::report_sent) at the mark where a call refused for a full
    /// buffer ([`SendError::Backpressure`]) has room again: half the high-water mark, so one wake lets the
    /// body refill a lot while the kernel still has the rest to send.
    pub fn report_room(&mut self) {
        self.sent_watch.ask(self.config.max_outgoing_bytes / 2);
    }

    /// Whether ops go to the held arena (the handshake has not completed).
    fn holding(&self) -> bool {
        self.phase != Phase::Connected
    }

    fn check_room(&self, requested: usize) -> Result<(), SendError> {
        let (used, capacity) = if self.holding() {
            (self.out.held.len(), self.config.reconnect_buffer_bytes)
        } else {
            (self.out.len(), self.config.max_outgoing_bytes)
        };
        if used > 0 && used >= capacity {
            return Err(SendError::Backpressure(Backpressure {
                requested,
                available: 0,
                capacity,
            }));
        }
        Ok(())
    }

    /// Buffers a `PUB` (or, with headers, an `HPUB`) into the arena; the driver sends
    /// everything buffered in one write. `now` only advances the connection's clock.
    ///
    /// # Errors
    /// [`SendError::Poisoned`]; [`SendError::Encode`] for an invalid subject or reply,
    /// or a payload over the server's `max_payload`; [`SendError::HeadersNotSupported`];
    /// [`SendError::Backpressure`] over the high-water mark (or, during the handshake,
    /// the reconnect buffer). Nothing is buffered on error.
    pub fn publish(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&Headers>,
        payload: &Bytes,
        now: Instant,
    ) -> Result<(), SendError> {
        self.guard.check()?;
        self.tick(now);
        if headers.is_some() && !self.headers_supported {
            return Err(SendError::HeadersNotSupported);
        }
        self.check_room(payload.len() + headers.map_or(0, Headers::len))?;
        let hold = self.holding();
        let limits = *self.decoder.limits();
        self.out
            .publish(hold, |a| encode::publish(a, &limits, subject, reply, headers, payload))?;
        Ok(())
    }

    /// Subscribes to `subject` (wildcards allowed), in queue group `queue` if given;
    /// messages wait in a queue bounded by `policy` until taken with
    /// [`next_message`](Self::next_message). Returns the new subscription's sid.
    ///
    /// # Errors
    /// [`SendError::Poisoned`]; [`SendError::Encode`] for an invalid subject or queue
    /// group.
    pub fn subscribe(
        &mut self,
        subject: &[u8],
        queue: Option<&[u8]>,
        policy: SubscriptionPolicy,
    ) -> Result<Sid, SendError> {
        self.guard.check()?;
        let key = self.last_sid + 1;
        let sid = Sid::from_u64(key);
        self.write_sub(subject, queue, &sid)?;
        self.last_sid = key;
        let sub = Subscription::new(
            sid.clone(),
            Bytes::copy_from_slice(subject),
            queue.map(Bytes::copy_from_slice),
            policy,
        );
        self.subs.insert(key, sub);
        Ok(sid)
    }

    fn write_sub(&mut self, subject: &[u8], queue: Option<&[u8]>, sid: &Sid) -> Result<(), SendError> {
        let hold = self.holding();
        let limits = *self.decoder.limits();
        self.out
            .control(hold, |a| encode::subscribe(a, &limits, subject, queue, sid.as_bytes()))?;
        Ok(())
    }

    fn write_unsub(&mut self, sid: &Sid, max: Option<u64>) -> Result<(), SendError> {
        let hold = self.holding();
        let limits = *self.decoder.limits();
        self.out
            .control(hold, |a| encode::unsubscribe(a, &limits, sid.as_bytes(), max))?;
        Ok(())
    }

    /// Ends a subscription: now (`max: None`; its queued messages are dropped and no
    /// message is delivered to it any more), or once it has received `max` messages in
    /// all (then [`Event::SubscriptionEnded`] with [`SubscriptionEnd::MaxReached`], at
    /// once if it already has). A subscription that already ended is forgotten.
    ///
    /// # Errors
    /// [`SendError::Poisoned`]; [`SendError::UnknownSubscription`];
    /// [`SendError::Encode`] for a maximum over 999,999,999.
    pub fn unsubscribe(&mut self, sid: &Sid, max: Option<u64>) -> Result<(), SendError> {
        self.guard.check()?;
        let key = sid.as_u64().ok_or(SendError::UnknownSubscription)?;
        let sub = self.subs.get(&key).ok_or(SendError::UnknownSubscription)?;
        if sub.ended {
            if max.is_none() {
                self.remove_sub(key);
            }
        } else {
            let sid = sub.sid.clone();
            self.write_unsub(&sid, max)?;
            match max {
                None => self.remove_sub(key),
                Some(max) => {
                    if let Some(sub) = self.subs.get_mut(&key) {
                        sub.max = Some(max);
                        if sub.received >= max {
                            sub.ended = true;
                            self.events.push_back(Event::SubscriptionEnded {
                                sid,
                                reason: SubscriptionEnd::MaxReached,
                            });
                            self.forget_if_drained(key);
                        }
                    }
                }
            }
        }
        self.resume_reading(key);
        Ok(())
    }

    /// Publishes a request whose reply subject is in this connection's inbox and
    /// returns the id its one [`Event::Response`] or [`Event::RequestFailed`] carries.
    /// The first request subscribes to the inbox (`<inbox_prefix>.<id>.*`). `timeout`
    /// runs from `now`; `None` waits until the connection is poisoned.
    ///
    /// # Errors
    /// As [`publish`](Self::publish), and [`SendError::TooManyPendingRequests`].
    pub fn request(
        &mut self,
        subject: &[u8],
        headers: Option<&Headers>,
        payload: &Bytes,
        timeout: Option<Duration>,
        now: Instant,
    ) -> Result<RequestId, SendError> {
        self.guard.check()?;
        self.tick(now);
        if self.requests.len() >= self.config.max_pending_requests {
            return Err(SendError::TooManyPendingRequests {
                max: self.config.max_pending_requests,
            });
        }
        if headers.is_some() && !self.headers_supported {
            return Err(SendError::HeadersNotSupported);
        }
        self.check_room(payload.len() + headers.map_or(0, Headers::len))?;
        if self.requests.sid.is_none() {
            let key = self.last_sid + 1;
            let wildcard = self.requests.wildcard();
            self.write_sub(&wildcard, None, &Sid::from_u64(key))?;
            self.last_sid = key;
            self.requests.sid = Some(key);
        }
        let reply = self.requests.reply_subject(self.requests.peek_id());
        let hold = self.holding();
        let limits = *self.decoder.limits();
        self.out.publish(hold, |a| {
            encode::publish(a, &limits, subject, Some(&reply), headers, payload)
        })?;
        Ok(self.requests.insert(timeout.map(|t| now + t)))
    }

    /// Sends a `PING`; its [`Event::Pong`] says the server has processed everything sent
    /// before it (a flush with acknowledgement).
    ///
    /// # Errors
    /// [`SendError::Poisoned`].
    pub fn ping(&mut self) -> Result<PingId, SendError> {
        self.guard.check()?;
        self.last_ping_id += 1;
        let hold = self.holding();
        self.out
            .control::<()>(hold, |a| {
                a.put_slice(b"PING\r\n");
                Ok(())
            })
            .ok();
        let kind = PingKind::User(self.last_ping_id);
        if hold {
            self.held_pings.push(kind);
        } else {
            self.pings.push_back(kind);
        }
        Ok(PingId(self.last_ping_id))
    }

    /// Takes the oldest message queued for a subscription (`None` when its queue is
    /// empty or the sid is not a subscription). Taking from a backpressured subscription
    /// resumes decoding once the stalled message fits, which may queue more events.
    /// Works on a poisoned connection too (without resuming: a stalled message then
    /// waits for [`take_reconnect_state`](Self::take_reconnect_state), which moves it
    /// and the queues).
    pub fn next_message(&mut self, sid: &Sid) -> Option<Message> {
        let key = sid.as_u64()?;
        // One lookup: what `forget_if_drained` would look up again is known here.
        let (message, drained) = match self.subs.get_mut(&key) {
            Some(sub) => {
                let message = sub.take();
                (message, sub.ended && sub.is_empty())
            }
            None => (None, false),
        };
        let taken = message.as_ref().map_or(0, message_size);
        self.after_take(key, message.is_some(), taken, drained);
        message
    }

    /// Takes up to `max` of the oldest messages queued for a subscription, in order,
    /// into the back of `out`; returns how many (0 when its queue is empty or the sid is
    /// not a subscription). As [`next_message`](Self::next_message) called that many
    /// times, at the cost of one call: a whole queue taken into an empty `out` is handed
    /// over by swapping the two queues, without moving a message; the application then
    /// takes them from `out` at its own pace. Decoding resumes (for a backpressured
    /// subscription) once, after the batch is taken.
    pub fn next_messages(&mut self, sid: &Sid, out: &mut VecDeque<Message>, max: usize) -> usize {
        let Some(key) = sid.as_u64() else {
            return 0;
        };
        let (n, taken, drained) = match self.subs.get_mut(&key) {
            Some(sub) => {
                let (n, taken) = sub.take_into(out, max);
                (n, taken, sub.ended && sub.is_empty())
            }
            None => (0, 0, false),
        };
        self.after_take(key, n > 0, taken, drained);
        n
    }

    /// What follows taking messages (`taken` bytes) from subscription `key`: the bytes
    /// leave the connection-wide count, a `drained` subscription that ended goes, and
    /// the stalled message is placed if there is room for it now.
    #[inline]
    fn after_take(&mut self, key: u64, any: bool, taken: usize, drained: bool) {
        self.queued_bytes = self.queued_bytes.saturating_sub(taken);
        if drained {
            self.remove_sub(key);
        }
        self.resume_reading(key);
        // Room under the connection-wide bound may be what the stalled message of
        // another subscription waits for.
        if let Some(other) = self.stalled.as_ref().and_then(|m| m.sid.as_u64()) {
            if any && other != key {
                self.resume_reading(other);
            }
        }
    }

    /// After subscription `key` changed (a message taken, an unsubscribe): if the
    /// stalled message is for it, drops it when the subscription is gone or ended (no
    /// one is to receive it), and decodes on if it fits or went.
    fn resume_reading(&mut self, key: u64) {
        if self.guard.is_poisoned() || !self.stalled_for(key) {
            return;
        }
        if self.subs.get(&key).is_none_or(|s| s.ended) {
            self.stalled = None;
        }
        // Places the stalled message if it fits now, and decodes on if it did.
        self.pump();
    }

    fn stalled_for(&self, key: u64) -> bool {
        self.stalled.as_ref().is_some_and(|m| m.sid.as_u64() == Some(key))
    }

    /// Removes a subscription that ended once its queue is empty.
    fn forget_if_drained(&mut self, key: u64) {
        if self.subs.get(&key).is_some_and(|s| s.ended && s.is_empty()) {
            self.remove_sub(key);
        }
    }

    /// Takes everything a new connection needs to continue this one (see
    /// [`ReconnectState`] and [`resume`](Self::resume)): the subscriptions with their
    /// queued messages and a stalled message, the unsent publishes within
    /// [`ClientConfig::reconnect_buffer_bytes`], the known servers and the id counters.
    /// This connection is poisoned with [`ConnectionError::Replaced`] unless it already
    /// was (its pending requests fail), and keeps nothing.
    pub fn take_reconnect_state(&mut self) -> ReconnectState {
        // Messages already received are carried over, queued.
        self.settle();
        if !self.guard.is_poisoned() {
            self.poison(ConnectionError::Replaced);
        }
        let stalled = self.stalled.take();
        let replay = self.out.replay(self.config.reconnect_buffer_bytes);
        self.out = Outgoing::default();
        let mut subscriptions: Vec<(u64, Subscription)> = self.subs.drain().collect();
        self.queued_bytes = 0;
        subscriptions.sort_unstable_by_key(|(key, _)| *key);
        ReconnectState {
            subscriptions,
            last_sid: self.last_sid,
            last_request: self.requests.last_id,
            last_ping: self.last_ping_id,
            known_servers: self.known_servers.clone(),
            replay,
            stalled,
            limits: *self.decoder.limits(),
            headers_unsupported: !self.headers_supported,
            budget: self.config.reconnect_buffer_bytes,
        }
    }

    /// A connection that continues the one `state` was taken from: it waits for `INFO`
    /// like [`new`](Self::new), then, after the handshake, resubscribes every
    /// subscription that had not ended (same sid, with an `UNSUB` for what remains of a
    /// maximum) and sends the replayed publishes, before anything given since. Queued
    /// messages stay where they were: [`next_message`](Self::next_message) takes them
    /// with the same sids. A message that was waiting for room in a backpressured
    /// subscription still waits: once connected, reading pauses until it fits.
    pub fn resume(config: ClientConfig, state: ReconnectState, now: Instant) -> Self {
        let mut conn = Self::with_counters(config, now, state.last_sid, state.last_request, state.last_ping);
        conn.known_servers = state.known_servers;
        conn.stalled = state.stalled;
        for (key, mut sub) in state.subscriptions {
            if !sub.ended {
                let sid = sub.sid.clone();
                let subject = sub.subject.clone();
                let queue = sub.queue_group.clone();
                let restored = conn
                    .write_sub(&subject, queue.as_deref(), &sid)
                    .and_then(|()| match sub.remaining() {
                        Some(remaining) => conn.write_unsub(&sid, Some(remaining)),
                        None => Ok(()),
                    });
                if let Err(SendError::Encode(e)) = restored {
                    sub.ended = true;
                    conn.events.push_back(Event::SubscriptionEnded {
                        sid,
                        reason: SubscriptionEnd::NotRestored(e),
                    });
                }
            }
            if !(sub.ended && sub.is_empty()) {
                conn.queued_bytes += sub.pending().1;
                conn.subs.insert(key, sub);
            }
        }
        for frame in &state.replay.frames {
            conn.out
                .publish::<()>(true, |a| {
                    a.put_slice(frame);
                    Ok(())
                })
                .ok();
        }
        conn
    }

    // ---- poll_* ----

    /// The arena to flush, if it holds anything (never once poisoned). Hand it to the
    /// kernel and [`advance`](IoArena::advance) it by what the kernel took.
    pub fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        if self.guard.is_poisoned() || self.out.transmit.is_empty() {
            None
        } else {
            Some(&mut self.out.transmit)
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called: the
    /// handshake deadline, the next keepalive or the earliest request deadline.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.guard.is_poisoned() {
            return None;
        }
        [self.handshake_deadline, self.next_ping, self.requests.next_deadline()]
            .into_iter()
            .flatten()
            .min()
    }

    /// The next event for the application.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    // ---- internals ----

    /// Stores the first fatal error, fails every pending request with it and reports
    /// [`Event::Poisoned`]; returns the stored error.
    fn poison(&mut self, error: ConnectionError) -> ConnectionError {
        if let Some(e) = self.guard.error() {
            return e.clone();
        }
        let error = self.guard.poison(error);
        self.report_drops();
        for id in self.requests.drain() {
            self.events.push_back(Event::RequestFailed {
                id,
                error: RequestError::Poisoned(error.clone()),
            });
        }
        self.input.clear();
        self.gathering.clear();
        self.decoder.reset();
        self.handshake_deadline = None;
        self.next_ping = None;
        self.events.push_back(Event::Poisoned(error.clone()));
        error
    }
}

impl Session for Connection {
    type Event = Event;

    fn handle_input(&mut self, data: Bytes, now: Instant) {
        // The error is also stored and reported as Event::Poisoned.
        let _ = Connection::handle_input(self, data, now);
    }

    fn handle_eof(&mut self, now: Instant) {
        let _ = Connection::handle_eof(self, now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        let _ = Connection::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        Connection::poll_transmit(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Connection::poll_timeout(self)
    }

    fn poll_event(&mut self) -> Option<Event> {
        Connection::poll_event(self)
    }

    fn wants_read(&self) -> bool {
        Connection::wants_read(self)
    }

    fn is_closed(&self) -> bool {
        Connection::is_closed(self)
    }
    fn handle_sent(&mut self) -> bool {
        self.sent_watch.sent(self.out.len())
    }
}
