//! [`Connection`]: one client's connection to the broker, as a driver runs it.
//!
//! It owns the codec, the received bytes and the output arena, the keep-alive timer and
//! the packet identifiers in flight in both directions; everything that involves other
//! clients (sessions, subscriptions, retained messages) goes to the broker state as an
//! [`Event`], which answers through the mutators here.

use std::collections::{BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::acl::ClientAcl;
use super::alias::Aliases;
use crate::chassis::{IoArena, SegmentedBuffer, Session};
use crate::mqtt::{
    Ack, Codec, ConnAck, Connect, Packet, ProtocolVersion, Publish, QoS, Reason, ReasonCode, Subscribe, Unsubscribe,
    DEFAULT_MAX_PACKET_SIZE,
};

use super::expiry::Message;
use super::limits::{self, Limits};
use super::outbox::{FlowStep, Outbox, RecOutcome};

/// Limits of a broker connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionConfig {
    /// The largest packet accepted from the client (checked from the fixed header).
    pub max_packet_size: u32,
    /// How long a new connection may take to send its `CONNECT` (a slowloris bound);
    /// also the bound on each step of an enhanced authentication exchange.
    pub connect_timeout: Duration,
    /// Topic Alias Maximum (5.0): how many aliases the client may use, announced in
    /// `CONNACK`, and the most the broker uses towards a client (0: none either way).
    pub topic_alias_maximum: u16,
    /// The broker's Receive Maximum, announced in `CONNACK` (5.0): QoS 2 messages from
    /// the client not yet released beyond it get `DISCONNECT` 0x93.
    pub receive_maximum: u16,
    /// The most QoS 1 and 2 messages in flight to the client, whatever its own Receive
    /// Maximum allows.
    pub max_inflight: u16,
    /// The most QoS 1 and 2 messages a session queues (offline, or behind its window);
    /// see [`Outbox`] for the policy.
    pub max_queued_messages: usize,
    /// Output bytes not yet written past which the connection stops taking messages:
    /// QoS 0 ones are dropped (counted), QoS 1 and 2 wait in the session's queue.
    pub max_output_bytes: usize,
    /// The longest keep alive the broker allows, if capped: a 5.0 client asking for more
    /// (or for none) is given this one as Server Keep Alive [MQTT-3.2.2-21]; a 3.1.1
    /// one is refused, as mosquitto's `max_keepalive` does.
    pub max_keep_alive: Option<u16>,
    /// Whether the body commits each turn before its acknowledgements go (a broker with
    /// a store, or on several threads): the acknowledgements a client's QoS 1 and 2
    /// messages get (`PUBACK`, `PUBREC`, `PUBCOMP`) are then held until the body has
    /// committed what they acknowledge ([`Connection::release_held`]: stored, handed
    /// to the other threads), [`Event::Released`] reports each `PUBREL`, and queued
    /// messages start from the body ([`Connection::start_queued`]).
    pub durable: bool,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            connect_timeout: Duration::from_secs(10),
            topic_alias_maximum: 10,
            receive_maximum: 1024,
            max_inflight: 1024,
            max_queued_messages: 1000,
            max_output_bytes: 1 << 20,
            max_keep_alive: None,
            durable: false,
        }
    }
}

/// What a connection hands to the broker state, in the order the client sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A `CONNECT`: the broker answers with [`Connection::accept`] or
    /// [`Connection::refuse`]; nothing after it is decoded until then.
    Connect(Box<Connect>),
    /// An application message to route (already acknowledged to the client; a QoS 2
    /// retransmission is not reported twice).
    Publish(Publish),
    /// A `SUBSCRIBE`: the broker answers with a `SUBACK` through [`Connection::send`].
    Subscribe(Subscribe),
    /// An `UNSUBSCRIBE`: the broker answers with an `UNSUBACK`.
    Unsubscribe(Unsubscribe),
    /// The client's `AUTH` during an enhanced authentication exchange (after
    /// [`Connection::challenge`]), answered like `CONNECT` or with another challenge;
    /// or, once open, a re-authentication (0x19, then 0x18), answered with `AUTH`.
    Auth(Reason),
    /// The flow of a stored message (its [`Message::seq`]) to the client moved on: sent
    /// with a packet identifier, released, or ended (the store forgets it).
    Flow(FlowStep),
    /// The client's `PUBREL` released this received QoS 2 packet identifier (reported
    /// only with [`ConnectionConfig::durable`]).
    Released(u16),
    /// The connection is over (reported once): `publish_will` unless the client ended
    /// it with a normal `DISCONNECT`.
    Closed {
        /// Whether the will message, if any, is to be published.
        publish_will: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for `CONNECT`, until the connect deadline.
    AwaitingConnect,
    /// `CONNECT` reported; later input is held until the broker answers.
    Connecting,
    /// `AUTH` 0x18 sent during `CONNECT`: waiting for the client's `AUTH`.
    Authenticating,
    /// Accepted.
    Open,
    /// Over; the socket goes once the arena is flushed.
    Closed,
}

/// A client's connection to the broker: a [`Session`] for the driver, and the
/// mutators the broker state answers through.
///
/// Methods, in the order a driver and the broker call them: the [`Session`] inputs
/// (`handle_input`, `handle_eof`, `handle_timeout`); the mutators [`accept`](Self::accept),
/// [`refuse`](Self::refuse), [`send`](Self::send), [`deliver`](Self::deliver),
/// [`disconnect`](Self::disconnect); then the [`Session`] outputs (`poll_transmit`,
/// `poll_event`, `poll_timeout`).
#[derive(Debug)]
pub struct Connection {
    codec: Codec,
    /// When the connection is closed for silence: the connect deadline, then 1.5 times
    /// the keep alive after the last packet.
    deadline: Option<Instant>,
    /// The buffers and queues of a connection with work in hand; `None` while idle
    /// (see [`Busy`]).
    busy: Option<Box<Busy>>,
    /// What few connections need (see [`Extra`]); `None` until one does.
    extra: Option<Box<Extra>>,
    /// Outbound QoS 1 and 2 messages, created at the first one.
    outbox: Option<Box<Outbox>>,
    /// Shared with the thread's other connections of the same configuration.
    limits: Arc<Limits>,
    /// The keep alive in seconds (0: none), enforced at 1.5 times.
    keep_alive: u16,
    phase: Phase,
    /// Yes/no facts, a bit each (see [`Flags`]).
    flags: Flags,
    /// The slot of its session in the broker state's session table once connected
    /// ([`NO_SESSION`] before): the state finds a connection's session through it,
    /// with no map of its own from connections to sessions.
    session_slot: u32,
}

/// [`Connection::session_slot`] of a connection without a session.
const NO_SESSION: u32 = u32::MAX;

/// A connection's yes/no facts in one byte (this is per connection).
#[derive(Debug, Clone, Copy, Default)]
struct Flags(u8);

impl Flags {
    /// The 5.0 `CONNECT` had no Session Expiry Interval (or 0).
    const CONNECT_EXPIRY_ZERO: u8 = 1;
    /// The `CONNECT` named an Authentication Method (the client may then
    /// re-authenticate with `AUTH`).
    const ENHANCED: u8 = 1 << 1;
    /// The output holds acknowledgements not to be sent before the store commit
    /// ([`release_held`](Connection::release_held)).
    const HELD: u8 = 1 << 2;

    fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.0 |= bit;
        } else {
            self.0 &= !bit;
        }
    }
}

/// The part of a [`Connection`] that only a connection with work in hand needs: the
/// received bytes not yet decoded, the output not yet taken by the driver, the events
/// not yet taken by the broker and the QoS 2 identifiers not yet released. Boxed and
/// allocated on the first input or output, freed when all four are empty again, so an
/// idle connection (most of them, at a million) holds only the core.
#[derive(Debug)]
struct Busy {
    input: SegmentedBuffer,
    output: IoArena,
    events: VecDeque<Event>,
    /// QoS 2 packet identifiers received and not yet released. A B-tree: no
    /// allocation while empty.
    incoming: BTreeSet<u16>,
}

impl Busy {
    fn new() -> Box<Busy> {
        Box::new(Busy {
            input: SegmentedBuffer::new(),
            output: IoArena::new(),
            events: VecDeque::new(),
            incoming: BTreeSet::new(),
        })
    }

    /// Whether nothing is held: the box can go.
    fn is_idle(&self) -> bool {
        self.input.is_empty() && self.output.is_empty() && self.events.is_empty() && self.incoming.is_empty()
    }
}

/// The rarely used part of a [`Connection`]: a 5.0 client's limits and aliases, an
/// ACL, drop counts. Boxed, created at the first use, kept for the connection's life.
#[derive(Debug)]
struct Extra {
    /// The client's Receive Maximum (65,535 unless its 5.0 `CONNECT` said less).
    client_receive_maximum: u16,
    /// QoS 0 messages dropped because the output was over its cap.
    dropped: u64,
    /// The Session Expiry Interval the client's `DISCONNECT` set, if it did.
    disconnect_expiry: Option<u32>,
    /// Topic aliases, once the client announced or used any.
    aliases: Option<Box<Aliases>>,
    /// What the client may publish to (`None`: anything).
    acl: Option<Arc<ClientAcl>>,
    /// The latest instant the connection was given, while it has an outbox (see
    /// [`Connection::seen`]).
    now: Option<Instant>,
}

impl Default for Extra {
    fn default() -> Self {
        Extra {
            client_receive_maximum: u16::MAX,
            dropped: 0,
            disconnect_expiry: None,
            aliases: None,
            acl: None,
            now: None,
        }
    }
}

impl Connection {
    /// A connection accepted at `now`, waiting for its `CONNECT`.
    pub fn new(config: ConnectionConfig, now: Instant) -> Connection {
        Connection {
            codec: Codec::server(config.max_packet_size),
            deadline: Some(now + config.connect_timeout),
            busy: None,
            extra: None,
            outbox: None,
            limits: limits::shared(&config),
            keep_alive: 0,
            phase: Phase::AwaitingConnect,
            flags: Flags::default(),
            session_slot: NO_SESSION,
        }
    }

    /// The slot of the session the broker state attached this connection to, if any
    /// (the state checks that the session still names this connection).
    pub(crate) fn session_slot(&self) -> Option<u32> {
        (self.session_slot != NO_SESSION).then_some(self.session_slot)
    }

    /// Records the slot of the session this connection was attached to.
    pub(crate) fn set_session_slot(&mut self, slot: u32) {
        self.session_slot = slot;
    }

    /// The busy part, allocated if the connection was idle.
    fn busy(&mut self) -> &mut Busy {
        self.busy.get_or_insert_with(Busy::new)
    }

    /// The rarely used part, allocated at the first use.
    fn extra(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Box::default)
    }

    /// Frees the busy part once nothing is in it (the connection is idle).
    fn settle(&mut self) {
        if self.busy.as_ref().is_some_and(|b| b.is_idle()) {
            self.busy = None;
        }
    }

    /// Encodes `packet` into the output.
    fn write(&mut self, packet: &Packet) -> Result<(), crate::mqtt::CodecError> {
        let busy = self.busy.get_or_insert_with(Busy::new);
        self.codec.encode(packet, &mut busy.output)
    }

    fn push_event(&mut self, event: Event) {
        self.busy().events.push_back(event);
    }

    fn output_len(&self) -> usize {
        self.busy.as_ref().map_or(0, |b| b.output.len())
    }

    /// Limits what the client may publish: a refused QoS 1 or 2 message gets reason
    /// 0x87 (5.0), every other is dropped unrouted. Set before [`accept`](Self::accept).
    pub fn set_acl(&mut self, acl: Arc<ClientAcl>) {
        self.extra().acl = Some(acl);
    }

    /// What the client may publish to, as [`set_acl`](Self::set_acl) left it.
    pub fn acl(&self) -> Option<&Arc<ClientAcl>> {
        self.extra.as_ref()?.acl.as_ref()
    }

    /// Continues an enhanced authentication exchange during `CONNECT`: sends `AUTH`
    /// 0x18 with `properties` (Authentication Method and Data) and waits, until the
    /// connect timeout, for the client's `AUTH` ([`Event::Auth`]).
    pub fn challenge(&mut self, properties: crate::mqtt::Properties, now: Instant) {
        if self.phase != Phase::Connecting {
            return;
        }
        let auth = Reason {
            code: ReasonCode::ContinueAuthentication,
            properties,
        };
        if self.write(&Packet::Auth(auth)).is_err() {
            self.close(false);
            return;
        }
        self.phase = Phase::Authenticating;
        self.deadline = Some(now + Duration::from_millis(u64::from(self.limits.auth_timeout_ms)));
        self.process(now);
    }

    /// Lets the output go once the store has committed what it acknowledges (a broker
    /// with [`ConnectionConfig::durable`] calls it after each commit); returns whether
    /// anything was held.
    pub fn release_held(&mut self) -> bool {
        let held = self.flags.has(Flags::HELD);
        self.flags.set(Flags::HELD, false);
        held
    }

    /// Whether the output waits for [`release_held`](Self::release_held).
    pub fn is_held(&self) -> bool {
        self.flags.has(Flags::HELD)
    }

    /// The protocol version of the client's `CONNECT`, once received.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.codec.decoder.version()
    }

    /// Whether the broker accepted the connection and it is still open.
    pub fn is_open(&self) -> bool {
        self.phase == Phase::Open
    }

    /// Messages sent at QoS 1 or 2 whose flow the client has not completed.
    pub fn in_flight(&self) -> usize {
        self.outbox.as_ref().map_or(0, |o| o.in_flight())
    }

    /// The Session Expiry Interval the client's `DISCONNECT` set (5.0), which replaces
    /// the one of its `CONNECT` [MQTT-3.1.2-23].
    pub fn disconnect_session_expiry(&self) -> Option<u32> {
        self.extra.as_ref()?.disconnect_expiry
    }

    /// Output bytes not yet taken by the driver (bounded by `max_output_bytes` plus one
    /// packet, whatever the client's reading pace).
    pub fn unsent(&self) -> usize {
        self.output_len()
    }

    /// QoS 1 and 2 messages waiting for the window or the output to make room.
    pub fn queued(&self) -> usize {
        self.outbox.as_ref().map_or(0, |o| o.queued())
    }

    /// Whether queued messages wait while half the output is gone.
    fn has_room_for_queued(&self) -> bool {
        self.output_len() < self.limits.max_output_bytes() / 2 && self.queued() > 0
    }

    /// Starts queued messages as the window and the output allow: what a durable
    /// connection's body does when the driver reports a write
    /// ([`Activity::Sent`](crate::Activity::Sent)). Their flow steps come out of
    /// [`poll_event`](Session::poll_event) as [`Event::Flow`], for the store, and the
    /// bytes go at the driver's next turn, after the body's commit.
    pub fn start_queued(&mut self) {
        if self.has_room_for_queued() {
            self.pump();
        }
    }

    /// Messages not delivered for lack of room: QoS 0 ones dropped at the output cap,
    /// QoS 1 and 2 ones refused by a full queue.
    pub fn dropped(&self) -> u64 {
        self.extra.as_ref().map_or(0, |e| e.dropped) + self.outbox.as_ref().map_or(0, |o| o.dropped())
    }

    /// Whether events wait for [`poll_event`](Session::poll_event): a body that holds
    /// its input back (its messages for other threads have no room) reads no more from
    /// a connection whose events it has not taken.
    pub fn has_events(&self) -> bool {
        self.busy.as_ref().is_some_and(|b| !b.events.is_empty())
    }

    /// Accepts the `CONNECT`: sends `ack` and starts the keep-alive timer
    /// (`keep_alive` seconds, 0 for none, enforced at 1.5 times), then decodes what the
    /// client sent after its `CONNECT`.
    pub fn accept(&mut self, ack: ConnAck, keep_alive: u16, now: Instant) {
        if self.phase != Phase::Connecting {
            return;
        }
        let mut ack = ack;
        let v5 = self.version().is_some_and(ProtocolVersion::is_v5);
        let keep_alive = limits::negotiate(&mut ack, keep_alive, v5, &self.limits);
        if self.write(&Packet::ConnAck(ack)).is_err() {
            self.close(true);
            return;
        }
        self.phase = Phase::Open;
        self.keep_alive = keep_alive;
        self.touch(now);
        self.process(now);
    }

    /// Refuses the `CONNECT` with `code` (a `CONNACK` error code) and closes.
    pub fn refuse(&mut self, code: ReasonCode) {
        self.refuse_with(ConnAck {
            session_present: false,
            code,
            properties: Default::default(),
        });
    }

    /// Refuses the `CONNECT` with `ack` (an error code, and properties such as a
    /// Server Reference or a Reason String) and closes.
    pub fn refuse_with(&mut self, ack: ConnAck) {
        if !matches!(self.phase, Phase::Connecting | Phase::Authenticating) {
            return;
        }
        let _ = self.write(&Packet::ConnAck(ack));
        self.close(false);
    }

    /// Sends a packet the broker built (`SUBACK`, `UNSUBACK`); returns whether it was
    /// written (an open connection, a packet valid for its version).
    pub fn send(&mut self, packet: &Packet) -> bool {
        self.phase == Phase::Open && self.write(packet).is_ok()
    }

    /// Sends an application message received at `now`; see
    /// [`deliver_message`](Self::deliver_message).
    pub fn deliver(&mut self, publish: Publish, now: Instant) -> bool {
        self.deliver_message(Message::received(publish, now), now)
    }

    /// Records `now` as the latest instant, the clock for the queued messages it sends
    /// from [`poll_transmit`](Session::poll_transmit): kept (in the rarely used part)
    /// only while the connection has an outbox, the only one to read it.
    fn seen(&mut self, now: Instant) {
        if self.outbox.is_some() {
            let latest = &mut self.extra().now;
            *latest = Some(latest.map_or(now, |t| t.max(now)));
        }
    }

    /// Sends or queues an application message at `now`: QoS 0 goes out at once unless
    /// the unsent output is over its cap (then it is dropped, counted); QoS 1 and 2 join
    /// the session's queue and go out as the inflight window and the output allow. Its
    /// packet identifier is assigned when it goes out, its properties dropped for a
    /// 3.1.1 client. Returns whether it was sent or queued.
    pub fn deliver_message(&mut self, message: Message, now: Instant) -> bool {
        if self.phase != Phase::Open {
            return false;
        }
        self.seen(now);
        if message.publish.qos == QoS::AtMostOnce {
            if self.output_len() >= self.limits.max_output_bytes() {
                self.extra().dropped += 1;
                return false;
            }
            let Some(publish) = message.at(now) else { return false };
            return self.write_publish(publish);
        }
        let max_queued = self.limits.max_queued();
        let outbox = self.outbox.get_or_insert_with(|| Box::new(Outbox::new(max_queued)));
        if !outbox.enqueue(message) {
            return false;
        }
        self.seen(now);
        self.pump();
        true
    }

    /// The steps of stored messages' flows taken since the events were last polled
    /// (the broker records them at once after a delivery, not at the client's next
    /// packet, so that a restart finds each identifier given).
    pub fn take_flow_steps(&mut self) -> Vec<FlowStep> {
        self.outbox.as_mut().map(|o| o.take_steps()).unwrap_or_default()
    }

    /// Takes the session's outbound messages and unreleased inbound QoS 2 identifiers
    /// when the connection ends, for a persistent session to keep (an empty outbox if
    /// none was used).
    pub fn take_outbox(&mut self) -> Box<Outbox> {
        let max_queued = self.limits.max_queued();
        let mut outbox = self.outbox.take().unwrap_or_else(|| Box::new(Outbox::new(max_queued)));
        if let Some(busy) = self.busy.as_mut() {
            outbox.keep_received(std::mem::take(&mut busy.incoming));
        }
        outbox
    }

    /// Resumes a session's outbox on this connection, once it is accepted: resends what
    /// was in flight (DUP 1, original identifiers, in order), then sends from the queue
    /// [MQTT-4.4.0-1]. This is the only time anything is resent.
    pub fn resume(&mut self, mut outbox: Box<Outbox>, now: Instant) {
        if self.phase != Phase::Open {
            return;
        }
        let incoming = outbox.take_received();
        if !incoming.is_empty() {
            self.busy().incoming = incoming;
        }
        let resend: Vec<Packet> = outbox.resend().collect();
        for packet in resend {
            match packet {
                Packet::Publish(p) => {
                    let id = p.packet_id;
                    if !self.write_publish(p) {
                        // Too large for this client [MQTT-3.1.2-25]: the flow ends
                        // rather than hold a place in the window for ever.
                        outbox.abandon(id);
                    }
                }
                other => {
                    let _ = self.write(&other);
                }
            }
        }
        self.outbox = Some(outbox);
        self.seen(now);
        self.pump();
    }

    /// Moves messages from the queue into the window while the client's Receive
    /// Maximum [MQTT-3.3.4-9] and the output cap allow.
    fn pump(&mut self) {
        if self.phase != Phase::Open {
            return;
        }
        let client_max = self.extra.as_ref().map_or(u16::MAX, |e| e.client_receive_maximum);
        let window = client_max.min(self.limits.max_inflight).max(1);
        while self.output_len() < self.limits.max_output_bytes() {
            // Set with the outbox (`seen`).
            let Some(now) = self.extra.as_ref().and_then(|e| e.now) else {
                return;
            };
            let Some(outbox) = self.outbox.as_mut() else { return };
            let Some(publish) = outbox.start_next(window, now) else {
                return;
            };
            let id = publish.packet_id;
            if !self.write_publish(publish) {
                if let Some(outbox) = self.outbox.as_mut() {
                    outbox.abandon(id);
                }
            }
        }
    }

    /// The message as this client may receive it: without properties for 3.1.1.
    fn for_client(&self, mut publish: Publish) -> Publish {
        if !self.version().is_some_and(ProtocolVersion::is_v5) {
            publish.properties = Default::default();
        }
        publish
    }

    /// Encodes a `PUBLISH` (identifier already set); false when it cannot go to this
    /// client (too large for its Maximum Packet Size). A 5.0 client that allows topic
    /// aliases gets one [MQTT-3.3.2-11]; the mapping counts once the packet is written,
    /// and lives as long as this connection (a resend on a new one carries the topic).
    fn write_publish(&mut self, publish: Publish) -> bool {
        let mut publish = self.for_client(publish);
        let mut alias = None;
        if let Some(aliases) = self.extra.as_ref().and_then(|e| e.aliases.as_deref()) {
            if let Some(choice) = aliases.outbound.choose(&publish.topic) {
                publish.properties.topic_alias = Some(choice.alias);
                let topic = if choice.known {
                    std::mem::take(&mut publish.topic)
                } else {
                    publish.topic.clone()
                };
                alias = Some((choice, topic));
            }
        }
        if self.write(&Packet::Publish(publish)).is_err() {
            return false;
        }
        let aliases = self.extra.as_mut().and_then(|e| e.aliases.as_deref_mut());
        if let (Some(aliases), Some((choice, topic))) = (aliases, alias) {
            aliases.outbound.commit(&topic, choice);
        }
        true
    }

    /// Closes from the broker's side: a 5.0 client gets a `DISCONNECT` with `code`
    /// (session taken over, server shutting down...). The will is the broker's call, so
    /// the [`Event::Closed`] reported says not to publish it.
    pub fn disconnect(&mut self, code: ReasonCode) {
        if self.phase == Phase::Closed {
            return;
        }
        self.send_disconnect(code);
        self.close(false);
    }

    fn send_disconnect(&mut self, code: ReasonCode) {
        if self.version().is_some_and(ProtocolVersion::is_v5) && self.phase != Phase::AwaitingConnect {
            let _ = self.write(&Packet::Disconnect(Reason::new(code)));
        }
    }

    fn touch(&mut self, now: Instant) {
        self.deadline = if self.keep_alive == 0 {
            None
        } else {
            let keep_alive = Duration::from_secs(u64::from(self.keep_alive));
            Some(now + keep_alive + keep_alive / 2)
        };
    }

    fn close(&mut self, publish_will: bool) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.deadline = None;
        let busy = self.busy();
        busy.input.clear();
        busy.events.push_back(Event::Closed { publish_will });
    }

    /// Decodes and handles whole packets while the connection may.
    fn process(&mut self, now: Instant) {
        while matches!(self.phase, Phase::AwaitingConnect | Phase::Authenticating | Phase::Open) {
            let Some(busy) = self.busy.as_mut() else { break };
            match self.codec.decode(&mut busy.input) {
                Ok(Some(packet)) => self.handle_packet(packet, now),
                Ok(None) => break,
                Err(e) => {
                    let code = match e {
                        crate::mqtt::CodecError::Decode(d) => d.reason_code(),
                        crate::mqtt::CodecError::Encode(_) => ReasonCode::ProtocolError,
                    };
                    if self.phase == Phase::AwaitingConnect && code == ReasonCode::UnsupportedProtocolVersion {
                        // A protocol level we do not speak: 3.1.1 requires CONNACK 1, then
                        // the close ([MQTT-3.1.2-2] of 3.1.1; 5.0 allows 0x84). The client's
                        // version is unknown: the answer is in 3.1.1's form, as mosquitto's.
                        self.codec.encoder.set_version(ProtocolVersion::V3_1_1);
                        let ack = ConnAck {
                            session_present: false,
                            code,
                            properties: Default::default(),
                        };
                        let _ = self.write(&Packet::ConnAck(ack));
                    }
                    self.send_disconnect(code);
                    self.close(true);
                }
            }
        }
    }

    fn handle_packet(&mut self, packet: Packet, now: Instant) {
        if self.phase == Phase::AwaitingConnect {
            match packet {
                Packet::Connect(connect) => {
                    // Nothing larger than the client's Maximum Packet Size is sent to
                    // it [MQTT-3.1.2-24]: a message over it is dropped for this client.
                    if let Some(max) = connect.properties.maximum_packet_size {
                        self.codec.encoder.set_max_packet_size(max);
                    }
                    // Aliases towards the client: at most the lower of its maximum and
                    // ours, none if it announced none [MQTT-3.1.2-26, MQTT-3.1.2-27].
                    let theirs = connect.properties.topic_alias_maximum.unwrap_or(0);
                    let out = theirs.min(self.limits.topic_alias_maximum);
                    if out > 0 {
                        self.extra().aliases = Some(Box::new(Aliases::new(out)));
                    }
                    self.flags
                        .set(Flags::ENHANCED, connect.properties.authentication_method.is_some());
                    self.flags.set(
                        Flags::CONNECT_EXPIRY_ZERO,
                        connect.protocol.is_v5() && connect.properties.session_expiry_interval.unwrap_or(0) == 0,
                    );
                    // The client's window for QoS 1 and 2 messages [MQTT-3.3.4-9].
                    if let Some(max) = connect.properties.receive_maximum {
                        self.extra().client_receive_maximum = max;
                    }
                    if let Some(code) = limits::refusal(&connect, &self.limits) {
                        self.phase = Phase::Connecting;
                        self.refuse(code);
                        return;
                    }
                    self.phase = Phase::Connecting;
                    self.deadline = None;
                    self.push_event(Event::Connect(connect));
                }
                // The first packet is a CONNECT [MQTT-3.1.0-1].
                _ => self.close(false),
            }
            return;
        }
        if self.phase == Phase::Authenticating {
            match packet {
                // The client's answer [MQTT-4.12.0-3]; anything else is a protocol error.
                Packet::Auth(auth) if auth.code == ReasonCode::ContinueAuthentication => {
                    self.phase = Phase::Connecting;
                    self.deadline = None;
                    self.push_event(Event::Auth(auth));
                }
                _ => {
                    self.send_disconnect(ReasonCode::ProtocolError);
                    self.close(false);
                }
            }
            return;
        }
        self.touch(now);
        match packet {
            Packet::Publish(publish) => self.handle_publish(publish),
            Packet::PubAck(ack) => {
                if self.outbox.as_mut().is_some_and(|o| o.puback(ack.packet_id)) {
                    self.pump();
                }
            }
            Packet::PubRec(ack) => {
                let outcome = self
                    .outbox
                    .as_mut()
                    .map_or(RecOutcome::Unknown, |o| o.pubrec(ack.packet_id, ack.code));
                let rel = match outcome {
                    RecOutcome::Release => Ack::success(ack.packet_id),
                    RecOutcome::Unknown => self.not_found(ack.packet_id),
                    RecOutcome::Refused => {
                        self.pump();
                        return;
                    }
                };
                let _ = self.write(&Packet::PubRel(rel));
            }
            Packet::PubComp(ack) => {
                if self.outbox.as_mut().is_some_and(|o| o.pubcomp(ack.packet_id)) {
                    self.pump();
                }
            }
            Packet::PubRel(ack) => {
                let released = self.busy.as_mut().is_some_and(|b| b.incoming.remove(&ack.packet_id));
                let comp = if released {
                    if self.limits.durable {
                        // The release is stored before its PUBCOMP goes: a reused
                        // identifier must not look like a retransmission after a restart.
                        self.flags.set(Flags::HELD, true);
                        self.push_event(Event::Released(ack.packet_id));
                    }
                    Ack::success(ack.packet_id)
                } else {
                    self.not_found(ack.packet_id)
                };
                let _ = self.write(&Packet::PubComp(comp));
            }
            Packet::Subscribe(subscribe) => self.push_event(Event::Subscribe(subscribe)),
            Packet::Unsubscribe(unsubscribe) => self.push_event(Event::Unsubscribe(unsubscribe)),
            Packet::PingReq => {
                let _ = self.write(&Packet::PingResp);
            }
            Packet::Disconnect(reason) => {
                if let Some(expiry) = reason.properties.session_expiry_interval {
                    // A session opened with expiry 0 cannot be kept by the DISCONNECT
                    // [MQTT-3.14.2-2].
                    if self.flags.has(Flags::CONNECT_EXPIRY_ZERO) && expiry != 0 {
                        self.send_disconnect(ReasonCode::ProtocolError);
                        self.close(true);
                        return;
                    }
                    self.extra().disconnect_expiry = Some(expiry);
                }
                self.close(reason.code == ReasonCode::DisconnectWithWillMessage);
            }
            // Re-authentication (4.12.1), only after a CONNECT with a method.
            Packet::Auth(auth)
                if self.flags.has(Flags::ENHANCED)
                    && matches!(
                        auth.code,
                        ReasonCode::ReAuthenticate | ReasonCode::ContinueAuthentication
                    ) =>
            {
                self.push_event(Event::Auth(auth));
            }
            // A second CONNECT [MQTT-3.1.0-2], AUTH without an authentication method,
            // and anything else: a protocol error.
            _ => {
                self.send_disconnect(ReasonCode::ProtocolError);
                self.close(true);
            }
        }
    }

    /// The acknowledgement of an unknown packet identifier: 0x92 in 5.0, plain in 3.1.1.
    fn not_found(&self, packet_id: u16) -> Ack {
        let mut ack = Ack::success(packet_id);
        if self.version().is_some_and(ProtocolVersion::is_v5) {
            ack.code = ReasonCode::PacketIdentifierNotFound;
        }
        ack
    }

    fn handle_publish(&mut self, mut publish: Publish) {
        // The client's topic alias, resolved against what we announced [MQTT-3.3.2-12].
        if publish.properties.topic_alias.is_some() {
            let max = self.limits.topic_alias_maximum;
            let aliases = self.extra().aliases.get_or_insert_with(|| Box::new(Aliases::new(0)));
            if let Err(code) = aliases.inbound.resolve(max, &mut publish) {
                self.send_disconnect(code);
                self.close(true);
                return;
            }
        }
        // Refused by the ACL: 0x87 for QoS 1 and 2 in 5.0; otherwise acknowledged as
        // usual (3.1.1 has no way to say no) and dropped.
        let allowed = self.acl().is_none_or(|acl| acl.may_publish(&publish.topic));
        let v5 = self.version().is_some_and(ProtocolVersion::is_v5);
        let ack = |id| {
            let mut ack = Ack::success(id);
            if !allowed && v5 {
                ack.code = ReasonCode::NotAuthorized;
            }
            ack
        };
        if publish.qos != QoS::AtMostOnce && self.limits.durable {
            // The acknowledgement waits for the store to hold the message.
            self.flags.set(Flags::HELD, true);
        }
        match publish.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let _ = self.write(&Packet::PubAck(ack(publish.packet_id)));
            }
            QoS::ExactlyOnce => {
                // QoS 2 messages not yet released count against the broker's Receive
                // Maximum (QoS 1 ones are acknowledged at once and never wait).
                let incoming = &self.busy().incoming;
                if !incoming.contains(&publish.packet_id) && incoming.len() >= usize::from(self.limits.receive_maximum)
                {
                    self.send_disconnect(ReasonCode::ReceiveMaximumExceeded);
                    self.close(true);
                    return;
                }
                let _ = self.write(&Packet::PubRec(ack(publish.packet_id)));
                // A PUBREC of 0x80 or above ends the flow: no PUBREL follows.
                if !allowed && v5 {
                    return;
                }
                // A retransmission before PUBREL is acknowledged, not routed again.
                if !self.busy().incoming.insert(publish.packet_id) {
                    return;
                }
            }
        }
        if allowed {
            self.push_event(Event::Publish(publish));
        }
    }
}

impl Session for Connection {
    type Event = Event;

    fn handle_input(&mut self, data: Bytes, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        self.seen(now);
        self.busy().input.push(data);
        self.process(now);
        if self.limits.durable && self.outbox.as_ref().is_some_and(|o| o.has_written_steps()) {
            // An acknowledgement let a queued message start (a new identifier) or asked
            // for a PUBREL: the output waits for the commit of those steps, as it waits
            // for the messages it acknowledges.
            self.flags.set(Flags::HELD, true);
        }
        if let Some(busy) = self.busy.as_mut().filter(|b| b.input.is_empty()) {
            // Everything received was a whole packet (the usual case): give back the
            // segment queue rather than keep it while the connection idles.
            busy.input = SegmentedBuffer::new();
        }
        self.settle();
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.close(true);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.seen(now);
        if self.deadline.is_some_and(|d| now >= d) {
            self.send_disconnect(ReasonCode::KeepAliveTimeout);
            self.close(true);
        }
    }

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        if self.flags.has(Flags::HELD) {
            return None;
        }
        // Once half the output is written, queued messages may follow it. A durable
        // connection leaves that to its body ([`handle_sent`](Session::handle_sent)):
        // their identifiers are stored before they are written, and the driver writes
        // what this returns before the body's next commit.
        if !self.limits.durable && self.has_room_for_queued() {
            self.pump();
        }
        if self.output_len() == 0 {
            // Everything written: an idle connection gives back its buffers.
            self.settle();
            return None;
        }
        self.busy.as_mut().map(|b| &mut b.output)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// A durable connection asks to hear of its writes while messages wait in its queue
    /// and half its output is gone: the body then calls
    /// [`start_queued`](Connection::start_queued) and commits their steps before the
    /// driver writes them. Other connections never ask (they start queued messages in
    /// `poll_transmit`).
    fn handle_sent(&mut self) -> bool {
        self.limits.durable && self.has_room_for_queued()
    }

    fn poll_event(&mut self) -> Option<Event> {
        if let Some(outbox) = self.outbox.as_mut().filter(|o| o.has_steps()) {
            let steps = outbox.take_steps();
            let events = &mut self.busy.get_or_insert_with(Busy::new).events;
            // Ahead of the rest: a `Closed` behind them detaches the session.
            for step in steps.into_iter().rev() {
                events.push_front(Event::Flow(step));
            }
        }
        let busy = self.busy.as_mut()?;
        let event = busy.events.pop_front();
        if event.is_none() {
            // An event is ~460 bytes and the queue keeps its capacity: once drained, it
            // is given back (with the rest of the busy part, if nothing else is held).
            if busy.events.capacity() > 0 {
                busy.events = VecDeque::new();
            }
            self.settle();
        }
        event
    }

    fn wants_read(&self) -> bool {
        self.phase != Phase::Closed
    }

    fn is_closed(&self) -> bool {
        self.phase == Phase::Closed
    }
}

#[cfg(test)]
mod size_tests {
    use std::mem::size_of;
    use std::time::Instant;

    use bytes::Bytes;

    use super::{Busy, Connection, ConnectionConfig, Event, Extra};
    use crate::chassis::Session;
    use crate::mqtt::{Ack, Codec, ConnAck, Connect, Packet, ProtocolVersion, Publish, QoS, ReasonCode};

    /// An idle connection is its core only, held in the driver's slot for every
    /// connection: a field added to it costs a million connections its size. Put what
    /// only a busy connection needs in `Busy`, what few need in `Extra`.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn an_idle_connection_is_its_core_only() {
        assert_eq!(size_of::<crate::mqtt::Codec>(), 24);
        assert_eq!(size_of::<Connection>(), 80);
        // Not held by an idle connection, but allocated per busy one.
        assert_eq!(size_of::<Busy>(), 120);
        assert_eq!(size_of::<Extra>(), 56);
    }

    fn connected(now: Instant) -> (Connection, Codec) {
        let mut conn = Connection::new(ConnectionConfig::default(), now);
        let mut client = Codec::client(ProtocolVersion::V3_1_1);
        let connect = Connect {
            protocol: ProtocolVersion::V3_1_1,
            clean_start: true,
            keep_alive: 60,
            properties: Default::default(),
            client_id: Bytes::from_static(b"idle"),
            will: None,
            username: None,
            password: None,
        };
        conn.handle_input(wire(&mut client, Packet::Connect(Box::new(connect))), now);
        assert!(matches!(conn.poll_event(), Some(Event::Connect(_))));
        assert!(conn.busy.is_some(), "the CONNACK to write");
        let ack = ConnAck {
            session_present: false,
            code: ReasonCode::Success,
            properties: Default::default(),
        };
        conn.accept(ack, 60, now);
        drain(&mut conn);
        (conn, client)
    }

    fn publish(qos: QoS, packet_id: u16) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: false,
            topic: Bytes::from_static(b"t"),
            packet_id,
            properties: Default::default(),
            payload: Bytes::from_static(b"payload"),
        }
    }

    fn wire(client: &mut Codec, packet: Packet) -> Bytes {
        Bytes::from(super::super::test_wire::encode(client, &packet))
    }

    /// Takes the output (as a driver's write would) until there is none.
    fn drain(conn: &mut Connection) {
        while conn.poll_event().is_some() {}
        while let Some(output) = conn.poll_transmit() {
            let n = output.len();
            output.advance(n);
        }
    }

    #[test]
    fn the_busy_part_goes_once_input_output_and_events_are_done() {
        let now = Instant::now();
        let (mut conn, mut client) = connected(now);
        assert!(conn.busy.is_none(), "connected and flushed: idle");
        assert!(conn.extra.is_none(), "a plain 3.1.1 client needs no extra part");
        conn.handle_input(wire(&mut client, Packet::PingReq), now);
        assert!(conn.busy.is_some(), "the PINGRESP is held");
        assert!(conn.unsent() > 0);
        drain(&mut conn);
        assert!(conn.busy.is_none(), "written: idle again");
        // Half a packet is held until the rest comes.
        let publish = wire(&mut client, Packet::Publish(publish(QoS::AtMostOnce, 0)));
        conn.handle_input(publish.slice(..3), now);
        drain(&mut conn);
        assert!(conn.busy.is_some(), "a partial packet keeps the busy part");
        conn.handle_input(publish.slice(3..), now);
        assert!(matches!(conn.poll_event(), Some(Event::Publish(_))));
        drain(&mut conn);
        assert!(conn.busy.is_none());
    }

    #[test]
    fn an_unreleased_qos2_message_keeps_its_identifier() {
        let now = Instant::now();
        let (mut conn, mut client) = connected(now);
        let mut publish = publish(QoS::ExactlyOnce, 7);
        conn.handle_input(wire(&mut client, Packet::Publish(publish.clone())), now);
        assert!(matches!(conn.poll_event(), Some(Event::Publish(_))));
        drain(&mut conn);
        assert!(conn.busy.is_some(), "identifier 7 is not released yet");
        // A retransmission before PUBREL is not reported again: the identifier was kept.
        publish.dup = true;
        conn.handle_input(wire(&mut client, Packet::Publish(publish)), now);
        assert_eq!(conn.poll_event(), None);
        drain(&mut conn);
        conn.handle_input(wire(&mut client, Packet::PubRel(Ack::success(7))), now);
        drain(&mut conn);
        assert!(conn.busy.is_none(), "released: idle");
    }
}
