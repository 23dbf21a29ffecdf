//! The MQTT client connection: a sans-IO state machine for 3.1.1 and 5.0, with QoS
//! 0/1/2 both ways, flow control, keep alive, topic aliases and session resumption.
//!
//! See [`Connection`] for the manual.

mod config;
mod error;
mod event;
mod receive;
mod send;
mod state;

#[cfg(test)]
mod tests;

pub use config::ClientConfig;
pub use error::{ConnectionError, ProtocolViolation, SendError};
pub use event::{Event, Message, PublishId, RequestId};
pub use state::ReconnectState;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::chassis::{IoArena, PoisonGuard, SegmentedBuffer, SentWatch, Session};
use crate::mqtt::{
    Connect, Decoder, Encoder, Packet, Properties, ProtocolVersion, QoS, Reason, ReasonCode, Side,
    PROTOCOL_MAX_PACKET_SIZE,
};

/// Where the handshake is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `CONNECT` sent, waiting for `CONNACK`.
    AwaitConnAck,
    /// `CONNACK` accepted the connection.
    Connected,
}

/// What the server's `CONNACK` allows us (5.0 properties; 3.1.1 gets the defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Receive Maximum: our QoS 1/2 publishes it takes unacknowledged (default 65535).
    pub receive_maximum: u16,
    /// Maximum QoS it accepts (default 2).
    pub maximum_qos: QoS,
    /// Whether it keeps retained messages (default true).
    pub retain_available: bool,
    /// Largest packet it accepts (default: the protocol's limit).
    pub maximum_packet_size: u32,
    /// Topic aliases it accepts from us (default 0).
    pub topic_alias_maximum: u16,
    /// The keep alive it imposes (Server Keep Alive), if any.
    pub keep_alive: Option<u16>,
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self {
            receive_maximum: u16::MAX,
            maximum_qos: QoS::ExactlyOnce,
            retain_available: true,
            maximum_packet_size: PROTOCOL_MAX_PACKET_SIZE,
            topic_alias_maximum: 0,
            keep_alive: None,
        }
    }
}

/// An MQTT client connection, sans I/O.
///
/// Driven by the chassis run-loop rule (see [`Session`]): feed it received bytes, end
/// of stream and timer expiry with the current instant; drain its transmit arena, its
/// events and its timer. It never reads the clock or opens a socket.
///
/// ```
/// use std::time::Instant;
/// use bytes::Bytes;
/// use monocoque_proto::mqtt::client::{ClientConfig, Connection, Event};
/// use monocoque_proto::mqtt::QoS;
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let now = Instant::now();
/// let config = ClientConfig { client_id: Bytes::from_static(b"c1"), ..ClientConfig::default() };
/// let mut conn = Connection::new(config, now);
/// let connect = conn.poll_transmit().expect("CONNECT").to_vec();
/// assert_eq!(connect[0], 0x10);
/// conn.poll_transmit().unwrap().clear(); // the kernel took it
///
/// // Work given before CONNACK waits for it.
/// let id = conn.publish(Bytes::from_static(b"t"), Bytes::from_static(b"hi"), QoS::AtLeastOnce, false)?;
/// conn.handle_input(Bytes::from_static(b"\x20\x03\x00\x00\x00"), now)?; // CONNACK (5.0)
/// assert!(matches!(conn.poll_event(), Some(Event::Connected { session_present: false, .. })));
/// let publish = conn.poll_transmit().unwrap().to_vec();
/// assert_eq!(publish, b"\x32\x08\x00\x01t\x00\x01\x00hi"); // QoS 1, packet id 1
/// conn.poll_transmit().unwrap().clear();
/// conn.handle_input(Bytes::from_static(b"\x40\x02\x00\x01"), now)?; // PUBACK
/// assert_eq!(conn.poll_event(), Some(Event::Published { id: id.unwrap(), result: Ok(()) }));
/// # Ok(())
/// # }
/// ```
///
/// ## What it handles
///
/// - **Handshake.** `CONNECT` is encoded at creation (clean start, keep alive,
///   session expiry, receive maximum, maximum packet size, topic alias maximum, will,
///   credentials); the connection is up on a successful `CONNACK`
///   ([`Event::Connected`]), refused with [`ConnectionError::Refused`] otherwise, and
///   given up with [`ConnectionError::HandshakeTimeout`] after
///   [`ClientConfig::connect_timeout`]. The first packet from the server must be
///   `CONNACK` [MQTT-3.2.0-1]. What is published or subscribed before waits for it.
/// - **Publishing** ([`publish`](Self::publish)): QoS 0 goes out at once; QoS 1 and 2
///   take a packet identifier not in use [MQTT-2.2.1-3] and go out while fewer than
///   the server's Receive Maximum are unacknowledged [MQTT-4.9.0-2] (the rest wait,
///   in order); [`Event::Published`] on `PUBACK`, or `PUBCOMP` after our `PUBREL`
///   answered `PUBREC` [MQTT-4.3.3-4]. Maximum QoS, Retain Available and the server's
///   Maximum Packet Size are respected [MQTT-3.2.2-11] [MQTT-3.2.2-14] [MQTT-3.1.2-24].
///   With [`ClientConfig::use_topic_aliases`], topics get aliases up to the server's
///   Topic Alias Maximum [MQTT-3.3.2-9], reset on every connection.
/// - **Receiving**: QoS 1 is acknowledged with `PUBACK`; QoS 2 is delivered once,
///   answered with `PUBREC`, and its identifier kept until `PUBREL` so a resent
///   `PUBLISH` is not delivered twice; `PUBREL` gets `PUBCOMP`. More unreleased QoS 2
///   messages than our Receive Maximum is a protocol error (0x93) [MQTT-3.3.4-9], and
///   inbound topic aliases are resolved (0x94 / 0x82 when invalid).
///   Messages queue in [`next_message`](Self::next_message), bounded by
///   [`ClientConfig::max_pending_messages`]: when full, the connection stops reading
///   (its acknowledgements wait too, so the server's window throttles it).
/// - **Subscriptions** ([`subscribe`](Self::subscribe),
///   [`unsubscribe`](Self::unsubscribe)) each report their acknowledgement
///   ([`Event::Subscribed`], [`Event::Unsubscribed`]).
/// - **Keep alive.** A `PINGREQ` once nothing was sent, or nothing received, for the
///   keep alive interval (the server's, when it sets one) [MQTT-3.1.2-22] (3.1.1: -23); with no
///   `PINGRESP` within [`ClientConfig::ping_timeout`] the connection is dead
///   ([`ConnectionError::KeepAliveTimeout`]).
/// - **Session resumption.** [`take_reconnect_state`](Self::take_reconnect_state) and
///   [`resume`](Self::resume) carry the session state. A resumed connection asks for
///   the session back (Clean Start 0, when the session is persistent); when the server
///   has it (Session Present 1), unacknowledged `PUBLISH`es are resent with DUP set
///   [MQTT-3.3.1-1] and `PUBREL`s resent, with their original packet identifiers and in
///   order [MQTT-4.4.0-1] [MQTT-4.6.0-1]. When it does not (Session Present 0), its
///   state for us is gone: subscriptions are made again, QoS 2 messages it had
///   acknowledged with `PUBREC` count as complete, and publishes it never
///   acknowledged are sent again as new ones.
/// - **DISCONNECT** both ways: [`disconnect`](Self::disconnect) with a reason code; a
///   server's is [`ConnectionError::ServerDisconnect`]. A malformed packet or a
///   protocol violation by the server sends `DISCONNECT` with the reason code (5.0)
///   and ends the connection.
///
/// ## Methods
///
/// - **getters**: [`config`](Self::config), [`is_connected`](Self::is_connected),
///   [`error`](Self::error), [`server_limits`](Self::server_limits),
///   [`session_present`](Self::session_present), [`inflight`](Self::inflight),
///   [`outgoing_len`](Self::outgoing_len), [`pending_messages`](Self::pending_messages),
///   [`wants_read`](Self::wants_read), [`is_closed`](Self::is_closed);
/// - **input**: [`handle_input`](Self::handle_input), [`handle_eof`](Self::handle_eof),
///   [`handle_timeout`](Self::handle_timeout);
/// - **mutators**: [`publish`](Self::publish), [`publish_with`](Self::publish_with),
///   [`subscribe`](Self::subscribe), [`unsubscribe`](Self::unsubscribe),
///   [`disconnect`](Self::disconnect), [`next_message`](Self::next_message),
///   [`take_reconnect_state`](Self::take_reconnect_state),
///   [`report_sent`](Self::report_sent), [`report_room`](Self::report_room);
/// - **output**: [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event),
///   [`poll_timeout`](Self::poll_timeout).
#[derive(Debug)]
pub struct Connection {
    config: ClientConfig,
    phase: Phase,
    decoder: Decoder,
    encoder: Encoder,
    input: SegmentedBuffer,
    out: IoArena,
    events: VecDeque<Event>,
    guard: PoisonGuard<ConnectionError>,
    state: ReconnectState,
    limits: ServerLimits,
    session_present: bool,
    /// Outbound topic aliases of this connection.
    aliases_out: HashMap<Bytes, u16>,
    /// Inbound topic aliases of this connection.
    aliases_in: HashMap<u16, Bytes>,
    handshake_deadline: Instant,
    last_sent: Instant,
    last_received: Instant,
    /// When the unanswered `PINGREQ` went out.
    ping_sent: Option<Instant>,
    /// After our `DISCONNECT`: until when we wait for the server to close first, so
    /// that closing our socket with its answer unread cannot reset the connection
    /// (and lose what we sent last).
    linger_until: Option<Instant>,
    /// The latest instant given to any call.
    now: Instant,
    /// Whether the body waits to hear of a write ([`Session::handle_sent`]).
    sent_watch: SentWatch,
}

impl Connection {
    /// A new connection: `CONNECT` is ready in [`poll_transmit`](Self::poll_transmit).
    pub fn new(config: ClientConfig, now: Instant) -> Connection {
        let clean_start = config.clean_start;
        Self::start(config, ReconnectState::default(), clean_start, now)
    }

    /// A connection that continues the session `state` left by a lost one: it asks for
    /// the session back when the session is persistent (Clean Start 0), and what the
    /// server did not acknowledge is resent once `CONNACK` says whether it kept it.
    pub fn resume(config: ClientConfig, state: ReconnectState, now: Instant) -> Connection {
        let clean_start = !config.persistent();
        Self::start(config, state, clean_start, now)
    }

    fn start(config: ClientConfig, state: ReconnectState, clean_start: bool, now: Instant) -> Connection {
        let version = config.version;
        let mut conn = Connection {
            decoder: Decoder::client(version, config.maximum_packet_size),
            encoder: Encoder::with_version(Side::Client, version),
            phase: Phase::AwaitConnAck,
            input: SegmentedBuffer::new(),
            out: IoArena::new(),
            events: VecDeque::new(),
            guard: PoisonGuard::new(),
            state,
            limits: ServerLimits::default(),
            session_present: false,
            aliases_out: HashMap::new(),
            aliases_in: HashMap::new(),
            handshake_deadline: now + config.connect_timeout,
            last_sent: now,
            last_received: now,
            ping_sent: None,
            linger_until: None,
            now,
            sent_watch: SentWatch::default(),
            config,
        };
        let connect = conn.connect_packet(clean_start);
        if let Err(e) = conn.encoder.encode(&Packet::Connect(Box::new(connect)), &mut conn.out) {
            // Our own configuration does not encode (a field over 65535 bytes).
            conn.fail(ConnectionError::Encode(e));
        }
        conn
    }

    fn connect_packet(&self, clean_start: bool) -> Connect {
        let c = &self.config;
        let mut properties = Properties::default();
        if c.version.is_v5() {
            properties.session_expiry_interval = (c.session_expiry > 0).then_some(c.session_expiry);
            properties.receive_maximum = (c.receive_maximum < u16::MAX).then_some(c.receive_maximum.max(1));
            properties.maximum_packet_size = Some(c.maximum_packet_size.max(1));
            properties.topic_alias_maximum = (c.topic_alias_maximum > 0).then_some(c.topic_alias_maximum);
        }
        Connect {
            protocol: c.version,
            clean_start,
            keep_alive: c.keep_alive,
            properties,
            client_id: c.client_id.clone(),
            will: c.will.clone(),
            username: c.username.clone(),
            password: c.password.clone(),
        }
    }

    // ---- getters ----

    /// The configuration it was made with.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The protocol version it speaks.
    pub fn version(&self) -> ProtocolVersion {
        self.config.version
    }

    /// Whether `CONNACK` accepted it and it is not over.
    pub fn is_connected(&self) -> bool {
        self.phase == Phase::Connected && !self.guard.is_poisoned()
    }

    /// Why it ended, once it did.
    pub fn error(&self) -> Option<&ConnectionError> {
        self.guard.error()
    }

    /// What the server's `CONNACK` allows.
    pub fn server_limits(&self) -> ServerLimits {
        self.limits
    }

    /// Whether the server resumed a session (Session Present of `CONNACK`).
    pub fn session_present(&self) -> bool {
        self.session_present
    }

    /// QoS 1/2 publishes of ours not yet complete (in flight and waiting for the window).
    pub fn inflight(&self) -> usize {
        self.state.unacknowledged()
    }

    /// Encoded bytes not yet taken by the kernel, plus publishes waiting for the window.
    pub fn outgoing_len(&self) -> usize {
        self.out.len() + self.state.waiting_bytes
    }

    /// Messages received and not taken yet.
    pub fn pending_messages(&self) -> usize {
        self.state.messages.len()
    }

    /// Whether it takes input: false while the message queue is full.
    pub fn wants_read(&self) -> bool {
        self.state.messages.len() < self.config.max_pending_messages
    }

    /// Whether it is over (the driver closes it once its output is sent). After
    /// [`disconnect`](Self::disconnect), not before the server closed its end or the
    /// linger ran out.
    pub fn is_closed(&self) -> bool {
        self.guard.is_poisoned() && self.linger_until.is_none()
    }

    // ---- input ----

    /// Bytes received from the server. A malformed stream or a protocol violation ends
    /// the connection (after a `DISCONNECT` with the reason code, in 5.0).
    pub fn handle_input(&mut self, data: Bytes, now: Instant) -> Result<(), ConnectionError> {
        self.guard.check()?;
        self.now = self.now.max(now);
        self.input.push(data);
        self.process_input()
    }

    /// The server closed the stream.
    pub fn handle_eof(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.linger_until = None;
        if !self.guard.is_poisoned() {
            self.fail(ConnectionError::Closed);
        }
    }

    /// The instant from [`poll_timeout`](Self::poll_timeout) passed: the handshake's
    /// deadline, a `PINGREQ` due, or one unanswered.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.linger_until.is_some_and(|t| now >= t) {
            self.linger_until = None;
        }
        if self.guard.is_poisoned() {
            return;
        }
        match self.phase {
            Phase::AwaitConnAck => {
                if now >= self.handshake_deadline {
                    self.fail(ConnectionError::HandshakeTimeout);
                }
            }
            Phase::Connected => {
                let Some(interval) = self.keep_alive() else { return };
                if let Some(sent) = self.ping_sent {
                    if now >= sent + self.ping_timeout(interval) {
                        self.fail(ConnectionError::KeepAliveTimeout);
                    }
                } else if now >= self.last_sent.min(self.last_received) + interval {
                    self.send(&Packet::PingReq);
                    self.ping_sent = Some(now);
                }
            }
        }
    }

    fn keep_alive(&self) -> Option<Duration> {
        match self.limits.keep_alive {
            Some(0) => None,
            Some(s) => Some(Duration::from_secs(u64::from(s))),
            None => self.config.keep_alive_interval(),
        }
    }

    fn ping_timeout(&self, interval: Duration) -> Duration {
        self.config.ping_timeout.unwrap_or(interval)
    }

    // ---- output ----

    /// Encoded bytes for the kernel, if any (advance the arena by what it took).
    pub fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        (!self.out.is_empty()).then_some(&mut self.out)
    }

    /// When [`handle_timeout`](Self::handle_timeout) is due next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.guard.is_poisoned() {
            return self.linger_until;
        }
        match self.phase {
            Phase::AwaitConnAck => Some(self.handshake_deadline),
            Phase::Connected => {
                let interval = self.keep_alive()?;
                Some(match self.ping_sent {
                    Some(sent) => sent + self.ping_timeout(interval),
                    None => self.last_sent.min(self.last_received) + interval,
                })
            }
        }
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
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

    /// The oldest received message not taken yet. Taking one from a full queue resumes
    /// reading what already arrived.
    pub fn next_message(&mut self) -> Option<Message> {
        let was_full = !self.wants_read();
        let message = self.state.messages.pop_front();
        if was_full && message.is_some() && !self.guard.is_poisoned() {
            let _ = self.process_input();
        }
        message
    }

    /// Sends `DISCONNECT` with `code` (5.0; 3.1.1 has none) and ends the connection:
    /// the session state stays for [`take_reconnect_state`](Self::take_reconnect_state).
    /// Normal Disconnection (0x00) deletes the will [MQTT-3.14.4-3]. The connection is
    /// [closed](Self::is_closed) once the server closed its end (input meanwhile is
    /// read and dropped), or after [`ClientConfig::close_linger`] [MQTT-3.14.4-1].
    pub fn disconnect(&mut self, code: ReasonCode, now: Instant) {
        self.now = self.now.max(now);
        if self.guard.is_poisoned() {
            return;
        }
        self.send(&Packet::Disconnect(Reason::new(code)));
        self.fail(ConnectionError::Disconnected);
        self.linger_until = Some(self.now + self.config.close_linger);
    }

    /// The session state, for the next connection ([`resume`](Self::resume)); this
    /// connection is left empty.
    pub fn take_reconnect_state(&mut self) -> ReconnectState {
        std::mem::take(&mut self.state)
    }

    /// Encodes `packet` now (our own packets are checked when they are made, so a
    /// failure here is not expected; it is reported by ending the connection).
    fn send(&mut self, packet: &Packet) {
        match self.encoder.encode(packet, &mut self.out) {
            Ok(()) => self.last_sent = self.now,
            Err(e) => self.fail(ConnectionError::Encode(e)),
        }
    }

    /// Ends the connection with `error` (once): [`Event::Poisoned`].
    fn fail(&mut self, error: ConnectionError) {
        if self.guard.is_poisoned() {
            return;
        }
        let error = self.guard.poison(error);
        self.events.push_back(Event::Poisoned(error));
    }
}

impl Session for Connection {
    type Event = Event;

    fn handle_input(&mut self, data: Bytes, now: Instant) {
        let _ = Connection::handle_input(self, data, now);
    }

    fn handle_eof(&mut self, now: Instant) {
        Connection::handle_eof(self, now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        Connection::handle_timeout(self, now);
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
