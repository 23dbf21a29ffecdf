//! One ZMTP connection as a chassis [`Session`]: the handshake, then multipart messages
//! in both directions, heartbeats, and the first fatal error kept in a [`PoisonGuard`].
//!
//! This is the layer a socket (DEALER, ROUTER, PUB...) puts one per peer; the socket's
//! own rules (round robin, routing by identity, subscriptions) live above it.
//!
//! After a CURVE handshake every frame, commands included, travels sealed in a
//! `MESSAGE` box ([`MessageCipher`]); a box that does not open or a nonce that does not
//! go up fails the connection like any other protocol error.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::command::Command;
use super::curve::cipher::{INNER_COMMAND, INNER_MORE};
use super::curve::{CurveRandom, MessageCipher};
use super::frame::{encode_message, Frame, FrameDecoder, DEFAULT_MAX_FRAME_SIZE, FLAG_LONG};
use super::handshake::{AuthDecision, AuthRequest, Established, Handshake, HandshakeConfig, Progress};
use super::message::Message;
use super::subscription::Subscription;
use super::{SocketType, Version, ZmtpError};
use crate::{IoArena, PoisonGuard, SegmentedBuffer, Session};

/// The limits and timers of a [`Connection`].
#[derive(Debug, Clone)]
pub struct ConnectionConfig {
    /// What to announce and how to authenticate.
    pub handshake: HandshakeConfig,
    /// The largest frame accepted after the handshake.
    pub max_frame_size: u64,
    /// The most frames one message may have.
    pub max_message_frames: usize,
    /// How long the handshake may take (libzmq's `ZMQ_HANDSHAKE_IVL`, 30 s by default);
    /// `None`: forever.
    pub handshake_timeout: Option<Duration>,
    /// Send a `PING` after this long (libzmq's `ZMQ_HEARTBEAT_IVL`); only to a 3.1 peer.
    pub heartbeat_interval: Option<Duration>,
    /// The TTL our `PING`s announce (`ZMQ_HEARTBEAT_TTL`), rounded down to tenths of a
    /// second, at most 6553.5 s.
    pub heartbeat_ttl: Duration,
    /// How long after a `PING` the peer may stay silent (`ZMQ_HEARTBEAT_TIMEOUT`);
    /// `None`: the interval.
    pub heartbeat_timeout: Option<Duration>,
}

impl ConnectionConfig {
    /// A connection with `handshake` and bounded defaults: 64 MiB frames, 1024 frames a
    /// message, 30 s to shake hands, no heartbeats.
    pub fn new(handshake: HandshakeConfig) -> Self {
        ConnectionConfig {
            handshake,
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
            max_message_frames: 1024,
            handshake_timeout: Some(Duration::from_secs(30)),
            heartbeat_interval: None,
            heartbeat_ttl: Duration::ZERO,
            heartbeat_timeout: None,
        }
    }
}

/// What a [`Connection`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The handshake is complete; messages flow.
    Established(Established),
    /// A PLAIN or CURVE server (or a NULL side asked to authenticate) needs a verdict:
    /// answer with [`Connection::authenticate`], now or later.
    Authenticate(AuthRequest),
    /// A whole multipart message, its frames views of the received bytes.
    Message(Message),
    /// A subscription change from a SUB or XSUB peer (to a PUB or XPUB; either form).
    Subscription(Subscription),
    /// The connection failed; nothing more will happen on it.
    Failed(ZmtpError),
    /// The peer closed the connection after the handshake.
    Closed,
}

/// One ZMTP connection, handshake first. Methods, in the order a driver uses them:
/// `handle_*` (the [`Session`] inputs), [`send`](Self::send) and
/// [`authenticate`](Self::authenticate) (the body's requests), `poll_*` to drain.
#[derive(Debug)]
pub struct Connection {
    config: ConnectionConfig,
    handshake: Handshake,
    established: Option<Version>,
    /// CURVE's session cipher, once its handshake is complete.
    cipher: Option<MessageCipher>,
    awaiting_verdict: bool,
    decoder: FrameDecoder,
    input: SegmentedBuffer,
    out: IoArena,
    /// Messages sent before the handshake completed, encoded once it does.
    pending: VecDeque<Message>,
    /// The frames of a message still arriving.
    partial: Message,
    /// Events other than the messages, which are decoded from `input` only as
    /// [`poll_event`](Session::poll_event) asks: one queue (the socket's) holds them.
    events: VecDeque<Event>,
    /// When the last input came: the time a command decoded later is taken to have
    /// arrived at (a PING's TTL counts from it).
    input_at: Instant,
    /// The peer closed after the handshake: [`Event::Closed`] comes once the input
    /// before the end is decoded.
    eof_unreported: bool,
    poison: PoisonGuard<ZmtpError>,
    closed: bool,
    /// The body asked to stop reading (its socket's receive queue for this peer is
    /// full): [`Session::wants_read`] says no until it asks again.
    held: bool,
    /// The body asked to hear of the first write the kernel takes that leaves at most
    /// this many bytes in the arena ([`report_sent`](Self::report_sent)).
    report_below: Option<usize>,
    handshake_deadline: Option<Instant>,
    next_ping: Option<Instant>,
    /// When the peer must have sent something by: after our `PING`, or the TTL of its.
    silence_deadline: Option<Instant>,
}

impl Connection {
    /// A connection that has not written anything yet; its greeting and first command
    /// are in the arena at once (the driver sends them as soon as the socket is up).
    /// Fails as [`Handshake::new`] does (a CURVE configuration needs
    /// [`with_random`](Self::with_random)).
    pub fn new(config: ConnectionConfig, now: Instant) -> Result<Connection, ZmtpError> {
        let handshake = Handshake::new(config.handshake.clone())?;
        Ok(Connection::started(config, handshake, now))
    }

    /// As [`new`](Self::new), with the fresh random bytes a CURVE handshake takes (its
    /// transient key and long nonces): draw them anew for every connection.
    pub fn with_random(config: ConnectionConfig, random: CurveRandom, now: Instant) -> Result<Connection, ZmtpError> {
        let handshake = Handshake::with_random(config.handshake.clone(), random)?;
        Ok(Connection::started(config, handshake, now))
    }

    /// A connection that failed before it started, with `error`: it writes nothing
    /// and is closed at once. For a listener's session factory, which must return a
    /// session even when the connection cannot be made (its CURVE random bytes could
    /// not be drawn).
    pub fn failed(config: ConnectionConfig, error: ZmtpError, now: Instant) -> Connection {
        let handshake = Handshake::failed(config.handshake.clone(), error.clone());
        let mut conn = Connection::started(config, handshake, now);
        conn.fail(error);
        conn
    }

    fn started(config: ConnectionConfig, mut handshake: Handshake, now: Instant) -> Connection {
        let mut out = IoArena::new();
        handshake.start(&mut out);
        Connection {
            decoder: FrameDecoder::new(config.max_frame_size),
            handshake_deadline: config.handshake_timeout.map(|t| now + t),
            config,
            handshake,
            established: None,
            cipher: None,
            awaiting_verdict: false,
            input: SegmentedBuffer::new(),
            out,
            pending: VecDeque::new(),
            partial: Message::new(),
            events: VecDeque::new(),
            input_at: now,
            eof_unreported: false,
            poison: PoisonGuard::new(),
            closed: false,
            held: false,
            report_below: None,
            next_ping: None,
            silence_deadline: None,
        }
    }

    /// The version spoken, once the handshake is complete.
    pub fn version(&self) -> Option<Version> {
        self.established
    }

    /// The error that ended the connection, if one did.
    pub fn error(&self) -> Option<&ZmtpError> {
        self.poison.error()
    }

    /// Queues a multipart message (frames shared, not copied, when large). Before the
    /// handshake completes it waits, and is encoded once it does. An empty message sends
    /// nothing.
    pub fn send(&mut self, frames: &[Bytes]) -> Result<(), ZmtpError> {
        self.poison.check()?;
        if frames.is_empty() {
            return Ok(());
        }
        if self.established.is_some() {
            self.write_message(frames)?;
        } else {
            self.pending.push_back(Message::from(frames));
        }
        Ok(())
    }

    /// Encodes a message into the output: as frames, or each frame sealed in a CURVE
    /// `MESSAGE`.
    fn write_message(&mut self, frames: &[Bytes]) -> Result<(), ZmtpError> {
        let Some(cipher) = &mut self.cipher else {
            encode_message(&mut self.out, frames);
            return Ok(());
        };
        let last = frames.len().saturating_sub(1);
        for (i, frame) in frames.iter().enumerate() {
            cipher.seal_frame_into(if i < last { INNER_MORE } else { 0 }, frame, &mut self.out)?;
        }
        Ok(())
    }

    /// Encodes a command into the output, sealed when CURVE is on.
    fn write_command(&mut self, command: &Command) -> Result<(), ZmtpError> {
        let Some(cipher) = &mut self.cipher else {
            return command.encode(&mut self.out);
        };
        let mut plain = IoArena::new();
        command.encode(&mut plain)?;
        let framed = plain.to_vec();
        let header = if framed.first().is_some_and(|f| f & FLAG_LONG != 0) {
            9
        } else {
            2
        };
        cipher.seal_frame_into(INNER_COMMAND, framed.get(header..).unwrap_or_default(), &mut self.out)?;
        Ok(())
    }

    /// Sends a subscription change (from a SUB or XSUB) in ZMTP 3.0's message form,
    /// which every 3.x peer reads and libzmq 4.3 itself sends; before the handshake
    /// completes it waits like a message.
    pub fn send_subscription(&mut self, subscription: &Subscription) -> Result<(), ZmtpError> {
        self.send(&[subscription.message_body()])
    }

    /// The next event without taking it (decoding it if need be): a body whose receive
    /// queue for this peer is full leaves a message here (and
    /// [`hold_input`](Self::hold_input)s).
    pub fn peek_event(&mut self) -> Option<&Event> {
        if self.events.is_empty() {
            if let Some(event) = self.next_event() {
                self.events.push_front(event);
            }
        }
        self.events.front()
    }

    /// The next event if it is a message, taken; `None` if the next event is another
    /// kind (left for [`poll_event`](Session::poll_event)) or there is none. The same
    /// order as `poll_event`, without building an [`Event`] per message: an unsealed
    /// one-frame message is cut straight out of the input (a body taking thousands a
    /// turn spends most of its time here).
    #[inline]
    pub fn poll_message(&mut self) -> Option<Message> {
        if self.events.is_empty()
            && self.established.is_some()
            && self.cipher.is_none()
            && self.partial.is_empty()
            && !self.poison.is_poisoned()
            && !matches!(self.config.handshake.socket_type, SocketType::Pub | SocketType::Xpub)
        {
            if let Some(body) = self.decoder.decode_single(&mut self.input) {
                return Some(Message::from(body));
            }
        }
        match self.poll_event()? {
            Event::Message(message) => Some(message),
            other => {
                self.events.push_front(other);
                None
            }
        }
    }

    /// Stops (`true`) or resumes (`false`) reading the peer: while held,
    /// [`Session::wants_read`] is false, the driver reads nothing more and TCP's flow
    /// control pushes back on the peer. What was already received stays decoded here.
    pub fn hold_input(&mut self, held: bool) {
        self.held = held;
    }

    /// Asks the driver to report ([`Activity::Sent`](crate::Activity::Sent)) the first
    /// write the kernel takes that leaves at most `below` bytes of output here (0: once
    /// it is empty): a socket whose messages wait for room, or that lingers until the
    /// arena empties, sleeps until then. A mark above 0 lets the socket refill before
    /// the kernel runs dry, and the writes in between stay large (no wake per write).
    pub fn report_sent(&mut self, below: usize) {
        self.report_below = Some(below);
    }

    /// The verdict on an [`Event::Authenticate`].
    pub fn authenticate(&mut self, decision: AuthDecision, now: Instant) {
        if !self.awaiting_verdict || self.poison.is_poisoned() {
            return;
        }
        self.awaiting_verdict = false;
        let progress = self.handshake.authenticate(decision, &mut self.input, &mut self.out);
        self.on_progress(progress, now);
    }

    /// No verdict could be had on an [`Event::Authenticate`] (a ZAP handler that
    /// answered garbage or nothing): the peer is refused with an `ERROR` `500` and the
    /// connection fails with `error` ([`Handshake::authentication_failed`]).
    pub fn authentication_failed(&mut self, error: ZmtpError) {
        if !self.awaiting_verdict || self.poison.is_poisoned() {
            return;
        }
        self.awaiting_verdict = false;
        self.handshake.authentication_failed(error.clone(), &mut self.out);
        self.fail(error);
    }

    /// Whether an [`Event::Authenticate`] waits for its verdict.
    pub fn awaits_verdict(&self) -> bool {
        self.awaiting_verdict && !self.poison.is_poisoned()
    }

    fn fail(&mut self, error: ZmtpError) {
        if !self.poison.is_poisoned() {
            self.poison.poison(error.clone());
            self.events.push_back(Event::Failed(error));
        }
    }

    fn on_progress(&mut self, progress: Result<Progress, ZmtpError>, now: Instant) {
        match progress {
            Err(e) => self.fail(e),
            Ok(Progress::Pending) => {}
            Ok(Progress::Authenticate(request)) => {
                self.awaiting_verdict = true;
                self.events.push_back(Event::Authenticate(request));
            }
            Ok(Progress::Established(established)) => {
                self.established = Some(established.version);
                self.cipher = self.handshake.take_cipher();
                self.handshake_deadline = None;
                if established.version.has_commands_of_3_1() {
                    self.next_ping = self.config.heartbeat_interval.map(|i| now + i);
                }
                self.events.push_back(Event::Established(established));
                while let Some(message) = self.pending.pop_front() {
                    if let Err(e) = self.write_message(&message) {
                        return self.fail(e);
                    }
                }
                // Frames that came with the handshake wait in `input` to be polled.
            }
        }
    }

    /// The next event decoded from the input once established, or the end of the
    /// stream once all of it is decoded.
    fn next_event(&mut self) -> Option<Event> {
        if self.established.is_some() {
            if let Some(event) = self.read_event() {
                return Some(event);
            }
        }
        // Nothing whole is left (a frame the peer cut off is dropped, as before).
        (std::mem::take(&mut self.eof_unreported) && !self.poison.is_poisoned()).then_some(Event::Closed)
    }

    /// Decodes frames until one makes an event: a whole message (or a subscription in
    /// message form), an event a command made, or the failure. `None`: the input holds
    /// no whole event yet.
    fn read_event(&mut self) -> Option<Event> {
        while !self.poison.is_poisoned() {
            let frame = match self.decoder.decode(&mut self.input) {
                Ok(Some(frame)) => frame,
                Ok(None) => return None,
                Err(e) => {
                    self.fail(e);
                    return self.events.pop_front();
                }
            };
            let frame = match &mut self.cipher {
                None => frame,
                Some(cipher) => {
                    let (Frame::Message { body, .. } | Frame::Command(body)) = frame;
                    match cipher.open(&body) {
                        Ok((flags, body)) if flags & INNER_COMMAND != 0 => Frame::Command(body),
                        Ok((flags, body)) => Frame::Message {
                            body,
                            more: flags & INNER_MORE != 0,
                        },
                        Err(e) => {
                            self.fail(e);
                            return self.events.pop_front();
                        }
                    }
                }
            };
            match frame {
                // The common case: a whole message in one frame.
                Frame::Message { body, more: false } if self.partial.is_empty() => {
                    return Some(self.deliver(Message::from(body)));
                }
                Frame::Message { body, more } => {
                    if self.partial.len() >= self.config.max_message_frames {
                        self.fail(ZmtpError::TooManyFrames {
                            max: self.config.max_message_frames,
                        });
                        return self.events.pop_front();
                    }
                    self.partial.push(body);
                    if !more {
                        let message = std::mem::take(&mut self.partial);
                        return Some(self.deliver(message));
                    }
                }
                Frame::Command(body) => {
                    match Command::parse(body) {
                        Err(e) => self.fail(e),
                        Ok(command) => self.on_command(command, self.input_at),
                    }
                    if let Some(event) = self.events.pop_front() {
                        return Some(event);
                    }
                }
            }
        }
        None
    }

    /// A whole message as an event: to a PUB or XPUB, a subscription in ZMTP 3.0's
    /// message form is a subscription change.
    #[inline]
    fn deliver(&self, message: Message) -> Event {
        if !matches!(self.config.handshake.socket_type, SocketType::Pub | SocketType::Xpub) {
            return Event::Message(message);
        }
        match Subscription::from_message(&message) {
            Some(sub) => Event::Subscription(sub),
            None => Event::Message(message),
        }
    }

    fn on_command(&mut self, command: Command, now: Instant) {
        match command {
            Command::Ping {
                ttl_deciseconds,
                context,
            } => {
                // Context at most 16 bytes (checked by the parser): the PONG encodes.
                if let Err(e) = self.write_command(&Command::Pong { context }) {
                    return self.fail(e);
                }
                if ttl_deciseconds > 0 {
                    let ttl = Duration::from_millis(u64::from(ttl_deciseconds) * 100);
                    self.silence_deadline = Some(now + ttl);
                }
            }
            Command::Pong { .. } => {}
            Command::Subscribe(_) | Command::Cancel(_) => {
                if let Some(sub) = Subscription::from_command(&command) {
                    self.events.push_back(Event::Subscription(sub));
                }
            }
            Command::Error { reason } => self.fail(ZmtpError::Refused {
                reason: String::from_utf8_lossy(&reason).into_owned(),
            }),
            // RFC 23: a peer ignores commands it does not know.
            Command::Unknown(_) => {}
            other => self.fail(ZmtpError::UnexpectedCommand {
                command: other.name(),
                mechanism: self.config.handshake.mechanism.name().as_str(),
            }),
        }
    }
}

impl Session for Connection {
    type Event = Event;

    fn handle_input(&mut self, data: Bytes, now: Instant) {
        if self.poison.is_poisoned() {
            return;
        }
        self.input.push(data);
        self.input_at = now;
        // Any traffic shows the peer is alive: the silence deadline goes away until the
        // next PING (ours or the peer's) sets it again.
        self.silence_deadline = None;
        // Once established, frames are decoded as `poll_event` asks for them.
        if self.established.is_none() && !self.awaiting_verdict {
            let progress = self.handshake.handle(&mut self.input, &mut self.out);
            self.on_progress(progress, now);
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        if self.poison.is_poisoned() || self.closed {
            return;
        }
        self.closed = true;
        if self.established.is_some() {
            // After the messages still in the input.
            self.eof_unreported = true;
        } else {
            self.fail(ZmtpError::ClosedDuringHandshake);
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        if self.poison.is_poisoned() || self.closed {
            return;
        }
        if self.handshake_deadline.is_some_and(|d| now >= d) {
            return self.fail(ZmtpError::HandshakeTimeout);
        }
        if self.silence_deadline.is_some_and(|d| now >= d) {
            return self.fail(ZmtpError::HeartbeatTimeout);
        }
        if let (Some(at), Some(interval)) = (self.next_ping, self.config.heartbeat_interval) {
            if now >= at {
                let ttl = (self.config.heartbeat_ttl.as_millis() / 100).min(u128::from(u16::MAX)) as u16;
                let ping = Command::Ping {
                    ttl_deciseconds: ttl,
                    context: Bytes::new(),
                };
                if let Err(e) = self.write_command(&ping) {
                    return self.fail(e);
                }
                self.next_ping = Some(now + interval);
                let timeout = self.config.heartbeat_timeout.unwrap_or(interval);
                self.silence_deadline.get_or_insert(now + timeout);
            }
        }
    }

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        (!self.out.is_empty()).then_some(&mut self.out)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        if self.poison.is_poisoned() || self.closed {
            return None;
        }
        [self.handshake_deadline, self.silence_deadline, self.next_ping]
            .into_iter()
            .flatten()
            .min()
    }

    fn poll_event(&mut self) -> Option<Event> {
        match self.events.pop_front() {
            Some(event) => Some(event),
            None => self.next_event(),
        }
    }

    fn wants_read(&self) -> bool {
        !self.awaiting_verdict && !self.held
    }

    fn is_closed(&self) -> bool {
        self.poison.is_poisoned() || self.closed
    }

    fn handle_sent(&mut self) -> bool {
        let drained = self.report_below.is_some_and(|mark| self.out.len() <= mark);
        if drained {
            self.report_below = None;
        }
        drained
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::{LinkConfig, Pair};
    use crate::zmtp::Mechanism;

    fn config(socket_type: SocketType) -> ConnectionConfig {
        ConnectionConfig::new(HandshakeConfig::null(socket_type))
    }

    fn messages(events: &[Event]) -> Vec<Vec<Bytes>> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Message(m) => Some(m.to_vec()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn dealer_and_router_exchange_multipart_messages_over_a_cut_link() {
        for seed in 0..20 {
            let now = Instant::now();
            let mut dealer = Connection::new(config(SocketType::Dealer), now).unwrap();
            let router = Connection::new(config(SocketType::Router), now).unwrap();
            let big = Bytes::from(vec![b'x'; 10_000]);
            dealer.send(&["hello".into(), Bytes::new(), big.clone()]).unwrap(); // before READY: waits
            let link = LinkConfig {
                max_piece: 7,
                ..LinkConfig::default()
            };
            let mut pair = Pair::new(dealer, router, now, seed, link);
            assert!(pair.drive(100_000).is_some());
            assert!(matches!(pair.events_a[0], Event::Established(_)), "{:?}", pair.events_a);
            assert_eq!(messages(&pair.events_b), [vec!["hello".into(), Bytes::new(), big]]);
            pair.b.send(&["reply".into()]).unwrap();
            assert!(pair.drive(100_000).is_some());
            assert_eq!(messages(&pair.events_a), [vec![Bytes::from("reply")]]);
        }
    }

    #[test]
    fn pings_are_answered_and_silence_fails_the_connection() {
        let now = Instant::now();
        let mut a = config(SocketType::Pair);
        a.heartbeat_interval = Some(Duration::from_secs(1));
        a.heartbeat_ttl = Duration::from_secs(3);
        let a = Connection::new(a, now).unwrap();
        let b = Connection::new(config(SocketType::Pair), now).unwrap();
        let mut pair = Pair::new(a, b, now, 1, LinkConfig::default());
        // Ten seconds of heartbeats: each PING answered, nobody fails.
        let end = now + Duration::from_secs(10);
        assert!(pair.drive_until(100_000, |p| p.now() >= end));
        assert!(pair.a.error().is_none() && pair.b.error().is_none());
        assert!(pair.b.silence_deadline.is_some(), "b saw a PING with a TTL");
        // a goes silent: b fails after the TTL, by the clock it was given.
        pair.a.next_ping = None;
        let before = pair.now();
        assert!(pair.drive_until(100_000, |p| p.b.error().is_some()));
        assert_eq!(pair.b.error(), Some(&ZmtpError::HeartbeatTimeout));
        assert!(pair.now() - before <= Duration::from_secs(3));
    }

    /// A DEALER connection established with a ROUTER peer fed by hand.
    fn established_dealer(c: ConnectionConfig, now: Instant) -> Connection {
        let mut conn = Connection::new(c, now).unwrap();
        let peer = crate::zmtp::Greeting::new(crate::zmtp::MechanismName::Null, false);
        conn.handle_input(Bytes::copy_from_slice(&peer.encode()), now);
        conn.handle_input(
            Bytes::from_static(b"\x04\x1c\x05READY\x0bSocket-Type\x00\x00\x00\x06ROUTER"),
            now,
        );
        assert!(matches!(conn.poll_event(), Some(Event::Established(_))));
        conn
    }

    #[test]
    fn a_hostile_peer_poisons_the_connection_and_nothing_half_read_is_delivered() {
        let now = Instant::now();
        // Reserved flag bits after a frame with MORE: the half message is dropped.
        let mut conn = established_dealer(config(SocketType::Dealer), now);
        conn.handle_input(Bytes::from_static(b"\x01\x01a\x08\x01b\x00\x01c"), now);
        assert_eq!(
            conn.poll_event(),
            Some(Event::Failed(ZmtpError::ReservedFlags { flags: 0x08 }))
        );
        assert_eq!(conn.poll_event(), None);
        assert!(conn.is_closed());
        assert_eq!(conn.send(&["x".into()]), Err(ZmtpError::ReservedFlags { flags: 0x08 }));
        conn.handle_input(Bytes::from_static(b"\x00\x01d"), now);
        assert_eq!(conn.poll_event(), None, "nothing is read after the poison");

        // Too many frames in one message.
        let mut c = config(SocketType::Dealer);
        c.max_message_frames = 2;
        let mut conn = established_dealer(c, now);
        conn.handle_input(Bytes::from_static(b"\x01\x00\x01\x00\x01\x00\x00\x00"), now);
        assert_eq!(
            conn.poll_event(),
            Some(Event::Failed(ZmtpError::TooManyFrames { max: 2 }))
        );

        // A second READY once established is not a command a peer may send.
        let mut conn = established_dealer(config(SocketType::Dealer), now);
        conn.handle_input(
            Bytes::from_static(b"\x04\x1c\x05READY\x0bSocket-Type\x00\x00\x00\x06ROUTER"),
            now,
        );
        assert!(matches!(
            conn.poll_event(),
            Some(Event::Failed(ZmtpError::UnexpectedCommand { .. }))
        ));
    }

    #[test]
    fn a_3_0_peer_gets_no_pings() {
        let now = Instant::now();
        let mut c = config(SocketType::Dealer);
        c.heartbeat_interval = Some(Duration::from_millis(100));
        let mut conn = Connection::new(c, now).unwrap();
        let sent = conn.out.len();
        let mut peer = crate::zmtp::Greeting::new(crate::zmtp::MechanismName::Null, false);
        peer.version = Version::V3_0;
        conn.handle_input(Bytes::copy_from_slice(&peer.encode()), now);
        conn.handle_input(
            Bytes::from_static(b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03REP"),
            now,
        );
        assert!(matches!(conn.poll_event(), Some(Event::Established(e)) if e.version == Version::V3_0));
        assert_eq!(conn.version(), Some(Version::V3_0));
        assert_eq!(conn.poll_timeout(), None, "no heartbeat timer for a 3.0 peer");
        conn.handle_timeout(now + Duration::from_secs(1));
        assert_eq!(conn.out.len(), sent, "no PING written");
    }

    #[test]
    fn a_held_connection_reads_nothing_and_keeps_its_messages() {
        let now = Instant::now();
        let mut conn = established_dealer(config(SocketType::Dealer), now);
        while conn.poll_event().is_some() {}
        assert!(conn.wants_read());
        conn.handle_input(Bytes::from_static(&[0, 1, b'a', 0, 1, b'b']), now);
        assert_eq!(
            conn.peek_event(),
            Some(&Event::Message(Message::from(vec![Bytes::from_static(b"a")])))
        );
        conn.hold_input(true);
        assert!(!conn.wants_read(), "held: the driver stops reading");
        // Peeking takes nothing: both messages are still there, in order.
        assert_eq!(
            conn.poll_event(),
            Some(Event::Message(Message::from(vec![Bytes::from_static(b"a")])))
        );
        assert_eq!(
            conn.poll_event(),
            Some(Event::Message(Message::from(vec![Bytes::from_static(b"b")])))
        );
        conn.hold_input(false);
        assert!(conn.wants_read());
    }

    #[test]
    fn messages_are_decoded_in_order_and_the_end_comes_after_them() {
        let now = Instant::now();
        let mut conn = established_dealer(config(SocketType::Dealer), now);
        while conn.poll_event().is_some() {}
        let sent = conn.out.len();
        // A message, a two-frame one, a PING, a frame cut off, then the end of the stream.
        conn.handle_input(
            Bytes::from_static(b"\x00\x01a\x01\x01b\x00\x01c\x04\x07\x04PING\x00\x0a"),
            now,
        );
        conn.handle_input(Bytes::from_static(b"\x00\x05de"), now);
        conn.handle_eof(now);
        assert!(conn.is_closed());
        assert_eq!(
            conn.peek_event(),
            Some(&Event::Message(Message::from(Bytes::from("a"))))
        );
        assert_eq!(conn.poll_event(), Some(Event::Message(Message::from(Bytes::from("a")))));
        assert_eq!(
            conn.poll_event(),
            Some(Event::Message(Message::from(vec!["b".into(), "c".into()])))
        );
        assert_eq!(conn.poll_event(), Some(Event::Closed));
        assert_eq!(conn.poll_event(), None);
        assert!(conn.out.len() > sent, "the PING was answered");
    }

    #[test]
    fn poll_message_takes_messages_in_the_order_poll_event_gives_and_leaves_the_rest() {
        let now = Instant::now();
        let mut conn = established_dealer(config(SocketType::Dealer), now);
        while conn.poll_event().is_some() {}
        // One-frame messages, a two-frame one, a PING, one more, a long frame cut by
        // the end of a segment, then the end of the stream.
        conn.handle_input(
            Bytes::from_static(b"\x00\x01a\x00\x00\x01\x01b\x00\x01c\x04\x07\x04PING\x00\x0a\x00\x01d\x00\x03e"),
            now,
        );
        conn.handle_input(Bytes::from_static(b"fg"), now);
        conn.handle_eof(now);
        let one = |s: &'static str| Some(Message::from(Bytes::from(s)));
        assert_eq!(conn.poll_message(), one("a"));
        assert_eq!(conn.poll_message(), one(""));
        assert_eq!(conn.poll_message(), Some(Message::from(vec!["b".into(), "c".into()])));
        // The PING is answered as it is decoded; it is no event, so the next message comes.
        assert_eq!(conn.poll_message(), one("d"));
        assert_eq!(conn.poll_message(), one("efg"), "a frame across segments");
        // The end is an event: left for poll_event, and taken only once.
        assert_eq!(conn.poll_message(), None);
        assert_eq!(conn.poll_message(), None);
        assert_eq!(conn.poll_event(), Some(Event::Closed));
        assert_eq!(conn.poll_event(), None);

        // A peeked message is taken from the events first, in order.
        let mut conn = established_dealer(config(SocketType::Dealer), now);
        while conn.poll_event().is_some() {}
        conn.handle_input(Bytes::from_static(b"\x00\x01x\x00\x01y"), now);
        assert_eq!(
            conn.peek_event(),
            Some(&Event::Message(Message::from(Bytes::from("x"))))
        );
        assert_eq!(conn.poll_message(), one("x"));
        assert_eq!(conn.poll_message(), one("y"));
        assert_eq!(conn.poll_message(), None);

        // To a PUB, a subscription in message form stays a subscription event.
        let mut conn = Connection::new(config(SocketType::Pub), now).unwrap();
        let peer = crate::zmtp::Greeting::new(crate::zmtp::MechanismName::Null, false);
        conn.handle_input(Bytes::copy_from_slice(&peer.encode()), now);
        conn.handle_input(
            Bytes::from_static(b"\x04\x19\x05READY\x0bSocket-Type\x00\x00\x00\x03SUB"),
            now,
        );
        assert!(matches!(conn.poll_event(), Some(Event::Established(_))));
        conn.handle_input(Bytes::from_static(b"\x00\x03\x01ab"), now);
        assert_eq!(conn.poll_message(), None);
        assert_eq!(
            conn.poll_event(),
            Some(Event::Subscription(Subscription::Subscribe("ab".into())))
        );
    }

    #[test]
    fn a_stalled_handshake_times_out() {
        let now = Instant::now();
        let mut conn = Connection::new(config(SocketType::Dealer), now).unwrap();
        assert_eq!(conn.poll_timeout(), Some(now + Duration::from_secs(30)));
        conn.handle_input(Bytes::from_static(&[0xFF]), now);
        conn.handle_timeout(now + Duration::from_secs(30));
        assert_eq!(conn.poll_event(), Some(Event::Failed(ZmtpError::HandshakeTimeout)));
        assert!(conn.is_closed());
    }

    #[test]
    fn a_pub_sees_both_subscription_forms_and_a_plain_server_asks() {
        let now = Instant::now();
        let publisher = Connection::new(config(SocketType::Pub), now).unwrap();
        let mut subscriber = Connection::new(config(SocketType::Sub), now).unwrap();
        subscriber
            .send_subscription(&Subscription::Subscribe("news".into()))
            .unwrap();
        let mut pair = Pair::new(publisher, subscriber, now, 3, LinkConfig::default());
        assert!(pair.drive(10_000).is_some());
        Subscription::Cancel("news".into())
            .encode_as_command(&mut pair.b.out)
            .unwrap();
        assert!(pair.drive(10_000).is_some());
        let subs: Vec<_> = pair
            .events_a
            .iter()
            .filter_map(|e| match e {
                Event::Subscription(s) => Some(s.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(
            subs,
            [
                Subscription::Subscribe("news".into()),
                Subscription::Cancel("news".into())
            ]
        );

        let mut server = config(SocketType::Rep);
        server.handshake.mechanism = Mechanism::PlainServer;
        let mut client = config(SocketType::Req);
        client.handshake.mechanism = Mechanism::PlainClient {
            username: "u".into(),
            password: "p".into(),
        };
        let mut pair = Pair::new(
            Connection::new(client, now).unwrap(),
            Connection::new(server, now).unwrap(),
            now,
            4,
            LinkConfig::default(),
        );
        // Up to the question only: left waiting, the handshake would time out.
        assert!(pair.drive_until(10_000, |p| !p.events_b.is_empty()));
        assert!(matches!(&pair.events_b[..], [Event::Authenticate(r)] if r.username == "u"));
        assert!(!pair.b.wants_read());
        pair.b.authenticate(AuthDecision::Allow { user_id: "u".into() }, now);
        assert!(pair.drive(10_000).is_some());
        assert!(matches!(pair.events_a.last(), Some(Event::Established(_))));
        assert!(matches!(pair.events_b.last(), Some(Event::Established(e)) if e.user_id.as_deref() == Some(&b"u"[..])));
    }

    /// A CURVE DEALER (a) and ROUTER (b) pair, established over a link cut in pieces.
    fn curve_pair(seed: u64, now: Instant) -> Pair<Connection, Connection> {
        use crate::zmtp::curve::{KeyPair, SecretKey};
        let server = KeyPair::from_secret(SecretKey::from_bytes([seed as u8; 32]));
        let mut a = config(SocketType::Dealer);
        a.heartbeat_interval = Some(Duration::from_secs(1));
        a.heartbeat_ttl = Duration::from_secs(3);
        a.handshake.mechanism = Mechanism::CurveClient {
            keys: KeyPair::from_secret(SecretKey::from_bytes([seed as u8 ^ 0xff; 32])),
            server_key: server.public,
        };
        let mut b = config(SocketType::Router);
        b.handshake.mechanism = Mechanism::CurveServer { keys: server };
        let mut a = Connection::with_random(a, CurveRandom::from_bytes([seed as u8 ^ 0x55; 96]), now).unwrap();
        a.send(&["early".into(), Bytes::from(vec![7u8; 5000])]).unwrap();
        let b = Connection::with_random(b, CurveRandom::from_bytes([seed as u8 ^ 0xaa; 96]), now).unwrap();
        let link = LinkConfig {
            max_piece: 13,
            ..LinkConfig::default()
        };
        let mut pair = Pair::new(a, b, now, seed, link);
        assert!(pair.drive_until(100_000, |p| !p.events_b.is_empty()));
        assert!(matches!(&pair.events_b[0], Event::Authenticate(r) if r.curve_key.is_some()));
        let at = pair.now();
        pair.b.authenticate(AuthDecision::Allow { user_id: "k".into() }, at);
        // Heartbeats keep the link busy: drive until the early message is through.
        assert!(pair.drive_until(100_000, |p| !messages(&p.events_b).is_empty()));
        pair
    }

    #[test]
    fn a_connection_that_failed_before_it_started_writes_nothing_and_closes() {
        let now = Instant::now();
        let mut c = config(SocketType::Router);
        c.handshake.mechanism = Mechanism::CurveServer {
            keys: crate::zmtp::curve::KeyPair::from_secret(crate::zmtp::curve::SecretKey::from_bytes([1; 32])),
        };
        assert_eq!(
            Connection::new(c.clone(), now).err(),
            Some(ZmtpError::CurveRandomMissing)
        );
        let mut conn = Connection::failed(c, ZmtpError::CurveRandomMissing, now);
        assert!(conn.is_closed());
        assert!(conn.poll_transmit().is_none_or(|out| out.is_empty()), "no greeting");
        assert_eq!(conn.poll_event(), Some(Event::Failed(ZmtpError::CurveRandomMissing)));
        assert_eq!(conn.poll_timeout(), None);
        assert_eq!(conn.send(&["x".into()]), Err(ZmtpError::CurveRandomMissing));
    }

    #[test]
    fn curve_connections_carry_messages_and_pings_sealed() {
        for seed in 0..5 {
            let now = Instant::now();
            let mut pair = curve_pair(seed, now);
            assert!(matches!(pair.events_a[0], Event::Established(_)), "{:?}", pair.events_a);
            assert_eq!(
                messages(&pair.events_b),
                [vec![Bytes::from("early"), Bytes::from(vec![7u8; 5000])]]
            );
            pair.b.send(&["reply".into(), Bytes::new()]).unwrap();
            // Heartbeats for a while: PING and PONG travel sealed and are understood.
            let end = pair.now() + Duration::from_secs(5);
            assert!(pair.drive_until(100_000, |p| p.now() >= end));
            assert!(pair.a.error().is_none() && pair.b.error().is_none());
            assert_eq!(messages(&pair.events_a), [vec![Bytes::from("reply"), Bytes::new()]]);
            assert!(
                pair.a.cipher.as_ref().unwrap().next_nonce() > 3,
                "pings were sealed too"
            );
        }
    }

    #[test]
    fn a_tampered_or_replayed_curve_message_fails_the_connection() {
        let now = Instant::now();
        let mut pair = curve_pair(9, now);
        pair.a.send(&["secret".into()]).unwrap();
        let sealed = pair.a.out.to_vec();
        pair.a.out.clear();
        // Plaintext never appears on the wire.
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        let mut bad = sealed.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let mut b = std::mem::replace(&mut pair.b, Connection::new(config(SocketType::Router), now).unwrap());
        b.events.clear();
        b.handle_input(Bytes::from(bad), now);
        assert_eq!(
            b.poll_event(),
            Some(Event::Failed(ZmtpError::CurveBox { command: "MESSAGE" }))
        );
        assert!(b.is_closed());

        let mut pair = curve_pair(10, now);
        pair.a.send(&["once".into()]).unwrap();
        let sealed = Bytes::from(pair.a.out.to_vec());
        pair.a.out.clear();
        pair.b.events.clear();
        pair.b.handle_input(sealed.clone(), now);
        assert_eq!(
            pair.b.poll_event(),
            Some(Event::Message(Message::from(vec!["once".into()])))
        );
        pair.b.handle_input(sealed, now);
        assert!(matches!(
            pair.b.poll_event(),
            Some(Event::Failed(ZmtpError::CurveNonce { .. }))
        ));
    }
}
