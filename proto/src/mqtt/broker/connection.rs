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
    /// Whether the broker persists to a store: the acknowledgements a client's QoS 1
    /// and 2 messages get (`PUBACK`, `PUBREC`, `PUBCOMP`) are then held until the body
    /// has committed what they acknowledge ([`Connection::release_held`]), and
    /// [`Event::Released`] reports each `PUBREL`.
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
    input: SegmentedBuffer,
    output: IoArena,
    phase: Phase,
    /// When the connection is closed for silence: the connect deadline, then 1.5 times
    /// the keep alive after the last packet.
    deadline: Option<Instant>,
    keep_alive: Duration,
    events: VecDeque<Event>,
    /// QoS 2 packet identifiers received and not yet released. A B-tree: 24 bytes and
    /// no allocation while empty (an idle connection's case).
    incoming: BTreeSet<u16>,
    limits: Limits,
    /// The client's Receive Maximum (65,535 unless its 5.0 `CONNECT` said less).
    client_receive_maximum: u16,
    /// Outbound QoS 1 and 2 messages, created at the first one.
    outbox: Option<Box<Outbox>>,
    /// The latest instant the connection was given: the clock for messages it sends
    /// from [`poll_transmit`](Session::poll_transmit).
    now: Instant,
    /// QoS 0 messages dropped because the output was over its cap.
    dropped: u64,
    /// Whether the 5.0 `CONNECT` had no Session Expiry Interval (or 0).
    connect_expiry_zero: bool,
    /// The Session Expiry Interval the client's `DISCONNECT` set, if it did.
    disconnect_expiry: Option<u32>,
    /// Topic aliases, once the client announced or used any.
    aliases: Option<Box<Aliases>>,
    /// What the client may publish to (`None`: anything).
    acl: Option<Arc<ClientAcl>>,
    /// Whether the `CONNECT` named an Authentication Method (the client may then
    /// re-authenticate with `AUTH`).
    enhanced: bool,
    /// The connect timeout in milliseconds, for each enhanced authentication step
    /// (4 bytes here rather than a 16-byte `Duration`: this is per connection).
    auth_timeout_ms: u32,
    /// Whether the output holds acknowledgements not to be sent before the store commit
    /// ([`release_held`](Self::release_held)).
    held: bool,
}

impl Connection {
    /// A connection accepted at `now`, waiting for its `CONNECT`.
    pub fn new(config: ConnectionConfig, now: Instant) -> Connection {
        Connection {
            codec: Codec::server(config.max_packet_size),
            input: SegmentedBuffer::new(),
            output: IoArena::new(),
            phase: Phase::AwaitingConnect,
            deadline: Some(now + config.connect_timeout),
            keep_alive: Duration::ZERO,
            events: VecDeque::new(),
            incoming: BTreeSet::new(),
            limits: Limits::from(&config),
            client_receive_maximum: u16::MAX,
            outbox: None,
            now,
            dropped: 0,
            connect_expiry_zero: false,
            disconnect_expiry: None,
            aliases: None,
            acl: None,
            enhanced: false,
            auth_timeout_ms: u32::try_from(config.connect_timeout.as_millis()).unwrap_or(u32::MAX),
            held: false,
        }
    }

    /// Limits what the client may publish: a refused QoS 1 or 2 message gets reason
    /// 0x87 (5.0), every other is dropped unrouted. Set before [`accept`](Self::accept).
    pub fn set_acl(&mut self, acl: Arc<ClientAcl>) {
        self.acl = Some(acl);
    }

    /// What the client may publish to, as [`set_acl`](Self::set_acl) left it.
    pub fn acl(&self) -> Option<&Arc<ClientAcl>> {
        self.acl.as_ref()
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
        if self.codec.encode(&Packet::Auth(auth), &mut self.output).is_err() {
            self.close(false);
            return;
        }
        self.phase = Phase::Authenticating;
        self.deadline = Some(now + Duration::from_millis(u64::from(self.auth_timeout_ms)));
        self.process(now);
    }

    /// Lets the output go once the store has committed what it acknowledges (a broker
    /// with [`ConnectionConfig::durable`] calls it after each commit); returns whether
    /// anything was held.
    pub fn release_held(&mut self) -> bool {
        std::mem::take(&mut self.held)
    }

    /// Whether the output waits for [`release_held`](Self::release_held).
    pub fn is_held(&self) -> bool {
        self.held
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
        self.disconnect_expiry
    }

    /// Output bytes not yet taken by the driver (bounded by `max_output_bytes` plus one
    /// packet, whatever the client's reading pace).
    pub fn unsent(&self) -> usize {
        self.output.len()
    }

    /// QoS 1 and 2 messages waiting for the window or the output to make room.
    pub fn queued(&self) -> usize {
        self.outbox.as_ref().map_or(0, |o| o.queued())
    }

    /// Messages not delivered for lack of room: QoS 0 ones dropped at the output cap,
    /// QoS 1 and 2 ones refused by a full queue.
    pub fn dropped(&self) -> u64 {
        self.dropped + self.outbox.as_ref().map_or(0, |o| o.dropped())
    }

    /// Whether events wait for [`poll_event`](Session::poll_event): a body that holds
    /// its input back (its messages for other threads have no room) reads no more from
    /// a connection whose events it has not taken.
    pub fn has_events(&self) -> bool {
        !self.events.is_empty()
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
        if self.codec.encode(&Packet::ConnAck(ack), &mut self.output).is_err() {
            self.close(true);
            return;
        }
        self.phase = Phase::Open;
        self.keep_alive = Duration::from_secs(u64::from(keep_alive));
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
        let _ = self.codec.encode(&Packet::ConnAck(ack), &mut self.output);
        self.close(false);
    }

    /// Sends a packet the broker built (`SUBACK`, `UNSUBACK`); returns whether it was
    /// written (an open connection, a packet valid for its version).
    pub fn send(&mut self, packet: &Packet) -> bool {
        self.phase == Phase::Open && self.codec.encode(packet, &mut self.output).is_ok()
    }

    /// Sends an application message received at the connection's latest instant; see
    /// [`deliver_message`](Self::deliver_message).
    pub fn deliver(&mut self, publish: Publish) -> bool {
        let now = self.now;
        self.deliver_message(Message::received(publish, now), now)
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
        self.now = self.now.max(now);
        if message.publish.qos == QoS::AtMostOnce {
            if self.output.len() >= self.limits.max_output_bytes() {
                self.dropped += 1;
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
        outbox.keep_received(std::mem::take(&mut self.incoming));
        outbox
    }

    /// Resumes a session's outbox on this connection, once it is accepted: resends what
    /// was in flight (DUP 1, original identifiers, in order), then sends from the queue
    /// [MQTT-4.4.0-1]. This is the only time anything is resent.
    pub fn resume(&mut self, mut outbox: Box<Outbox>, now: Instant) {
        if self.phase != Phase::Open {
            return;
        }
        self.now = self.now.max(now);
        self.incoming = outbox.take_received();
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
                    let _ = self.codec.encode(&other, &mut self.output);
                }
            }
        }
        self.outbox = Some(outbox);
        self.pump();
    }

    /// Moves messages from the queue into the window while the client's Receive
    /// Maximum [MQTT-3.3.4-9] and the output cap allow.
    fn pump(&mut self) {
        if self.phase != Phase::Open {
            return;
        }
        let window = self.client_receive_maximum.min(self.limits.max_inflight).max(1);
        while self.output.len() < self.limits.max_output_bytes() {
            let Some(outbox) = self.outbox.as_mut() else { return };
            let Some(publish) = outbox.start_next(window, self.now) else {
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
        if let Some(aliases) = self.aliases.as_deref() {
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
        if self.codec.encode(&Packet::Publish(publish), &mut self.output).is_err() {
            return false;
        }
        if let (Some(aliases), Some((choice, topic))) = (self.aliases.as_deref_mut(), alias) {
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
            let _ = self
                .codec
                .encode(&Packet::Disconnect(Reason::new(code)), &mut self.output);
        }
    }

    fn touch(&mut self, now: Instant) {
        self.deadline = if self.keep_alive.is_zero() {
            None
        } else {
            Some(now + self.keep_alive + self.keep_alive / 2)
        };
    }

    fn close(&mut self, publish_will: bool) {
        if self.phase == Phase::Closed {
            return;
        }
        self.phase = Phase::Closed;
        self.deadline = None;
        self.input.clear();
        self.events.push_back(Event::Closed { publish_will });
    }

    /// Decodes and handles whole packets while the connection may.
    fn process(&mut self, now: Instant) {
        while matches!(self.phase, Phase::AwaitingConnect | Phase::Authenticating | Phase::Open) {
            match self.codec.decode(&mut self.input) {
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
                        let _ = self.codec.encode(&Packet::ConnAck(ack), &mut self.output);
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
                        self.aliases = Some(Box::new(Aliases::new(out)));
                    }
                    self.enhanced = connect.properties.authentication_method.is_some();
                    self.connect_expiry_zero =
                        connect.protocol.is_v5() && connect.properties.session_expiry_interval.unwrap_or(0) == 0;
                    // The client's window for QoS 1 and 2 messages [MQTT-3.3.4-9].
                    if let Some(max) = connect.properties.receive_maximum {
                        self.client_receive_maximum = max;
                    }
                    if let Some(code) = limits::refusal(&connect, &self.limits) {
                        self.phase = Phase::Connecting;
                        self.refuse(code);
                        return;
                    }
                    self.phase = Phase::Connecting;
                    self.deadline = None;
                    self.events.push_back(Event::Connect(connect));
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
                    self.events.push_back(Event::Auth(auth));
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
                let _ = self.codec.encode(&Packet::PubRel(rel), &mut self.output);
            }
            Packet::PubComp(ack) => {
                if self.outbox.as_mut().is_some_and(|o| o.pubcomp(ack.packet_id)) {
                    self.pump();
                }
            }
            Packet::PubRel(ack) => {
                let comp = if self.incoming.remove(&ack.packet_id) {
                    if self.limits.durable {
                        // The release is stored before its PUBCOMP goes: a reused
                        // identifier must not look like a retransmission after a restart.
                        self.held = true;
                        self.events.push_back(Event::Released(ack.packet_id));
                    }
                    Ack::success(ack.packet_id)
                } else {
                    self.not_found(ack.packet_id)
                };
                let _ = self.codec.encode(&Packet::PubComp(comp), &mut self.output);
            }
            Packet::Subscribe(subscribe) => self.events.push_back(Event::Subscribe(subscribe)),
            Packet::Unsubscribe(unsubscribe) => self.events.push_back(Event::Unsubscribe(unsubscribe)),
            Packet::PingReq => {
                let _ = self.codec.encode(&Packet::PingResp, &mut self.output);
            }
            Packet::Disconnect(reason) => {
                if let Some(expiry) = reason.properties.session_expiry_interval {
                    // A session opened with expiry 0 cannot be kept by the DISCONNECT
                    // [MQTT-3.14.2-2].
                    if self.connect_expiry_zero && expiry != 0 {
                        self.send_disconnect(ReasonCode::ProtocolError);
                        self.close(true);
                        return;
                    }
                    self.disconnect_expiry = Some(expiry);
                }
                self.close(reason.code == ReasonCode::DisconnectWithWillMessage);
            }
            // Re-authentication (4.12.1), only after a CONNECT with a method.
            Packet::Auth(auth)
                if self.enhanced
                    && matches!(
                        auth.code,
                        ReasonCode::ReAuthenticate | ReasonCode::ContinueAuthentication
                    ) =>
            {
                self.events.push_back(Event::Auth(auth));
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
            let aliases = self.aliases.get_or_insert_with(|| Box::new(Aliases::new(0)));
            if let Err(code) = aliases.inbound.resolve(max, &mut publish) {
                self.send_disconnect(code);
                self.close(true);
                return;
            }
        }
        // Refused by the ACL: 0x87 for QoS 1 and 2 in 5.0; otherwise acknowledged as
        // usual (3.1.1 has no way to say no) and dropped.
        let allowed = self.acl.as_ref().map_or(true, |acl| acl.may_publish(&publish.topic));
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
            self.held = true;
        }
        match publish.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let _ = self
                    .codec
                    .encode(&Packet::PubAck(ack(publish.packet_id)), &mut self.output);
            }
            QoS::ExactlyOnce => {
                // QoS 2 messages not yet released count against the broker's Receive
                // Maximum (QoS 1 ones are acknowledged at once and never wait).
                if !self.incoming.contains(&publish.packet_id)
                    && self.incoming.len() >= usize::from(self.limits.receive_maximum)
                {
                    self.send_disconnect(ReasonCode::ReceiveMaximumExceeded);
                    self.close(true);
                    return;
                }
                let _ = self
                    .codec
                    .encode(&Packet::PubRec(ack(publish.packet_id)), &mut self.output);
                // A PUBREC of 0x80 or above ends the flow: no PUBREL follows.
                if !allowed && v5 {
                    return;
                }
                // A retransmission before PUBREL is acknowledged, not routed again.
                if !self.incoming.insert(publish.packet_id) {
                    return;
                }
            }
        }
        if allowed {
            self.events.push_back(Event::Publish(publish));
        }
    }
}

impl Session for Connection {
    type Event = Event;

    fn handle_input(&mut self, data: Bytes, now: Instant) {
        if self.phase == Phase::Closed {
            return;
        }
        self.now = self.now.max(now);
        self.input.push(data);
        self.process(now);
        if self.input.is_empty() {
            // Everything received was a whole packet (the usual case): give back the
            // segment queue rather than keep it while the connection idles.
            self.input = SegmentedBuffer::new();
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.close(true);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        if self.deadline.is_some_and(|d| now >= d) {
            self.send_disconnect(ReasonCode::KeepAliveTimeout);
            self.close(true);
        }
    }

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        if self.held {
            return None;
        }
        // Once half the output is written, queued messages may follow it.
        if self.output.len() < self.limits.max_output_bytes() / 2 && self.queued() > 0 {
            self.pump();
        }
        (!self.output.is_empty()).then_some(&mut self.output)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    fn poll_event(&mut self) -> Option<Event> {
        if let Some(outbox) = self.outbox.as_mut().filter(|o| o.has_steps()) {
            // Ahead of the rest: a `Closed` behind them detaches the session.
            for step in outbox.take_steps().into_iter().rev() {
                self.events.push_front(Event::Flow(step));
            }
        }
        let event = self.events.pop_front();
        // An event is ~460 bytes and the queue keeps its capacity: once drained, an idle
        // connection gives it back rather than hold ~1.8 KB for nothing.
        if event.is_none() && self.events.capacity() > 0 {
            self.events = VecDeque::new();
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
