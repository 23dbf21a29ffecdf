//! [`Socket`]: one ZeroMQ socket, its peers' connections on one driver.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::chassis::link::{Action, Supervisor};
use monocoque_proto::chassis::UNIX_PEER;
use monocoque_proto::zmtp::socket::{SocketError, SocketLogic, SocketOptions};
use monocoque_proto::zmtp::{
    AuthRequest, Connection, ConnectionConfig, Event, HandshakeConfig, Mechanism, Message, SocketType, ZmtpError,
};
use monocoque_proto::{Activity, ConnId, Driver, ListenerId, Session};

use super::endpoint::{self, Endpoint};
use super::zap::ZapClient;
use super::{Options, ZmqError};
use crate::driver::AnyDriver;
use crate::link::OneServer;

/// How much encoded output a connection may hold before the socket stops moving
/// messages into it: past this, messages wait in the socket's per-peer queue, where the
/// high-water mark counts them, and the connection asks to be reported
/// ([`Activity::Sent`]) once the kernel has taken it down to [`ARENA_LOW`], so a
/// waiting `send` (or any turn) moves them on.
const ARENA_HIGH: usize = 256 << 10;

/// The output left in a full connection when the socket is woken to refill it: enough
/// that the kernel does not run dry meanwhile, little enough that one wake moves many
/// messages (a wake per write made the writes, and so the syscalls, small).
const ARENA_LOW: usize = ARENA_HIGH / 2;

/// How long a connection that failed with something still to say (an `ERROR` to a
/// refused peer) is kept for the kernel to take it before it is closed anyway.
const CLOSING_GRACE: Duration = Duration::from_secs(1);

/// The hasher of the socket's own maps, keyed by numbers it makes up (peer keys,
/// connection ids), never by a peer's bytes: a multiply-rotate (as rustc's FxHash)
/// instead of SipHash, whose flooding resistance these keys do not need, on the
/// per-message path of `send`.
#[derive(Debug, Clone, Copy, Default)]
struct KeyHash;

impl std::hash::BuildHasher for KeyHash {
    type Hasher = KeyHasher;

    fn build_hasher(&self) -> KeyHasher {
        KeyHasher(0)
    }
}

/// [`KeyHash`]'s hasher.
#[derive(Debug, Clone, Copy)]
struct KeyHasher(u64);

impl KeyHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl std::hash::Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.add(u64::from(byte));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

/// A peer: an accepted connection, or an endpoint we connect (and reconnect) to.
#[derive(Debug)]
struct Peer {
    conn: Option<ConnId>,
    /// The peer's IP address as text (empty for `ipc://`), for ZAP requests.
    address: Bytes,
    /// Where and when to redial, for a peer we connected to.
    dial: Option<Dial>,
}

/// An endpoint we connect to, kept by the chassis' link supervisor: when to redial
/// (libzmq's `ZMQ_RECONNECT_IVL`, doubling up to `ZMQ_RECONNECT_IVL_MAX`, with jitter)
/// after a connection is refused, fails its handshake or is lost.
#[derive(Debug)]
struct Dial {
    endpoint: Endpoint,
    supervisor: Supervisor<OneServer, ()>,
}

/// A ZeroMQ socket of any of RFC 23's types over `tcp://` and `ipc://`, bound and connected to any
/// number of endpoints, interoperating with libzmq. Blocking, and single-threaded:
/// create it on the thread that uses it (the io_uring driver's ring has one issuer).
///
/// ```no_run
/// use bytes::Bytes;
/// use std::time::Duration;
/// use monocoque::zmq::{Socket, SocketType};
///
/// let mut dealer = Socket::new(SocketType::Dealer)?;
/// dealer.connect("tcp://127.0.0.1:5555")?;
/// dealer.send(vec![Bytes::from_static(b"hello")])?;
/// let reply = dealer.recv(Duration::from_secs(1))?;
/// # Ok::<(), monocoque::zmq::ZmqError>(())
/// ```
pub struct Socket {
    driver: AnyDriver<Connection>,
    logic: SocketLogic<u64>,
    config: ConnectionConfig,
    options: Options,
    peers: HashMap<u64, Peer, KeyHash>,
    by_conn: HashMap<ConnId, u64, KeyHash>,
    next_key: u64,
    listeners: Vec<ListenerId>,
    activities: Vec<Activity>,
    /// Connections held at the receive HWM: not read until `recv` makes room.
    held: Vec<ConnId>,
    /// `close` ran: dropping does not linger again.
    closed: bool,
    /// Why the last connection that failed did (a refused handshake, a bad box).
    last_error: Option<ZmtpError>,
    /// Seeds each endpoint's reconnect jitter (one seed per socket, drawn at random,
    /// varied per endpoint), so sockets that lost the same peer spread their redials.
    seed: u64,
    /// The ZAP client, when [`Options::zap_endpoint`] names a handler.
    zap: Option<ZapClient>,
    /// Failed connections still writing their last words (an `ERROR`), closed once
    /// written or at the deadline.
    closing: Vec<(ConnId, Instant)>,
}

impl Socket {
    /// A socket of `socket_type` with the default [`Options`].
    pub fn new(socket_type: SocketType) -> Result<Socket, ZmqError> {
        Socket::with_options(socket_type, Options::default())
    }

    /// A socket of `socket_type` with `options`.
    pub fn with_options(socket_type: SocketType, options: Options) -> Result<Socket, ZmqError> {
        let logic = SocketLogic::new(
            socket_type,
            SocketOptions {
                send_hwm: options.send_hwm,
                send_hwm_bytes: options.send_hwm_bytes,
                recv_hwm: options.recv_hwm,
                recv_hwm_bytes: options.recv_hwm_bytes,
                first_generated_id: super::random::seed()?,
                req_relaxed: options.req_relaxed,
                req_correlate: options.req_correlate,
                first_request_id: super::random::seed()?,
            },
        );
        let mut handshake = HandshakeConfig::null(socket_type);
        handshake.identity = options.identity.clone();
        handshake.mechanism = options.mechanism()?;
        // libzmq: a NULL socket with a ZAP domain authenticates its peers too.
        handshake.authenticate_null = handshake.mechanism == Mechanism::Null && !options.zap_domain.is_empty();
        let zap = options.zap_endpoint.clone().map(|endpoint| {
            ZapClient::new(
                endpoint,
                options.zap_domain.clone(),
                options.identity.clone(),
                options.zap_timeout,
            )
        });
        let mut config = ConnectionConfig::new(handshake);
        config.max_frame_size = options.max_frame_size;
        config.heartbeat_interval = options.heartbeat_interval;
        // Refuse a bad configuration here, so the listener's factory cannot meet one.
        super::connection(&config, Instant::now()).map_err(ZmqError::Options)?;
        Ok(Socket {
            driver: AnyDriver::new(options.driver)?,
            logic,
            config,
            options,
            peers: HashMap::default(),
            by_conn: HashMap::default(),
            next_key: 0,
            listeners: Vec::new(),
            activities: Vec::new(),
            held: Vec::new(),
            closed: false,
            last_error: None,
            seed: random_seed(),
            zap,
            closing: Vec::new(),
        })
    }

    /// The socket type.
    pub fn socket_type(&self) -> SocketType {
        self.logic.socket_type()
    }

    /// Messages a PUB or ROUTER dropped (at the HWM, or unroutable).
    pub fn dropped(&self) -> u64 {
        self.logic.dropped()
    }

    /// Messages received and not yet taken by [`recv`](Self::recv) (at most the receive
    /// HWM per peer: past it the socket stops reading that peer).
    pub fn received_len(&self) -> usize {
        self.logic.received_len()
    }

    /// Messages queued for peers and not yet handed to a connection, and their bytes
    /// (bounded per peer by the send HWMs).
    pub fn queued(&self) -> (usize, usize) {
        self.peers.keys().fold((0, 0), |(n, b), k| {
            (n + self.logic.queued_for(*k), b + self.logic.queued_bytes_for(*k))
        })
    }

    /// Why the last failed connection failed (a handshake refused by either side, a
    /// CURVE box that did not open): connections fail quietly and are redialed, as in
    /// libzmq, and this is where the reason is kept.
    pub fn last_error(&self) -> Option<&ZmtpError> {
        self.last_error.as_ref()
    }

    /// Connections open now (established or still shaking hands).
    pub fn connections(&self) -> usize {
        self.by_conn.len()
    }

    /// Accepts peers on `endpoint`: `tcp://HOST:PORT` (`tcp://127.0.0.1:0` picks a
    /// free port), or `ipc://PATH`, a Unix socket (a stale socket file at `PATH` is
    /// removed first, and the file is removed when the socket closes, as libzmq does).
    /// Returns the endpoint bound, as libzmq's `ZMQ_LAST_ENDPOINT` tells.
    pub fn bind(&mut self, endpoint: &str) -> Result<Endpoint, ZmqError> {
        let target = endpoint::parse(endpoint)?;
        let io = |source| ZmqError::Io {
            what: "bind",
            endpoint: endpoint.to_owned(),
            source,
        };
        let config = self.config.clone();
        let factory: monocoque_proto::SessionFactory<Connection> = Box::new(move |_, _, now| {
            // Checked in `with_options`: this configuration is valid, so only the OS
            // generator can fail here; that connection is closed at once.
            super::connection(&config, now).unwrap_or_else(|e| Connection::failed(config.clone(), e, now))
        });
        let listener = match &target {
            Endpoint::Tcp(addr) => self.driver.listen(*addr, factory),
            Endpoint::Ipc(path) => self.driver.listen_unix(path, factory),
        }
        .map_err(io)?;
        self.listeners.push(listener);
        match target {
            Endpoint::Tcp(_) => self.driver.listener_addr(listener).map(Endpoint::Tcp).map_err(io),
            ipc @ Endpoint::Ipc(_) => Ok(ipc),
        }
    }

    /// Connects to `endpoint` now, and again whenever the connection is refused, fails
    /// its handshake or is lost: after [`Options::reconnect_interval`] (with jitter),
    /// doubling up to [`Options::reconnect_interval_max`] while attempts fail, as libzmq
    /// does. `endpoint` is `tcp://HOST:PORT` or `ipc://PATH` (a path with no socket yet
    /// is redialed like a refused TCP connect). DEALER and PUSH queue messages for it
    /// at once, as libzmq does.
    pub fn connect(&mut self, endpoint: &str) -> Result<(), ZmqError> {
        let target = endpoint::parse(endpoint)?;
        let key = self.next_key;
        if !self.logic.add_peer(key) {
            return Err(ZmqError::Socket(SocketError::PeerLimit(self.socket_type())));
        }
        self.next_key += 1;
        let seed = self.seed ^ key.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut supervisor = Supervisor::new(&[OneServer], self.options.reconnect_policy(), seed);
        // The first attempt is made now (round 0 of the supervisor waits for nothing).
        let now = Instant::now();
        let attempt = supervisor.next(now);
        debug_assert_eq!(attempt, Action::Connect(0));
        supervisor.attempt();
        let address = match &target {
            Endpoint::Tcp(addr) => Bytes::from(addr.ip().to_string()),
            Endpoint::Ipc(_) => Bytes::new(),
        };
        self.peers.insert(
            key,
            Peer {
                conn: None,
                address,
                dial: Some(Dial {
                    endpoint: target,
                    supervisor,
                }),
            },
        );
        if let Err(source) = self.dial(key) {
            self.logic.remove_peer(key);
            self.peers.remove(&key);
            return Err(ZmqError::Io {
                what: "connect",
                endpoint: endpoint.to_owned(),
                source,
            });
        }
        Ok(())
    }

    /// Starts a connection to a dialed peer's endpoint.
    fn dial(&mut self, key: u64) -> std::io::Result<()> {
        let Some(peer) = self.peers.get_mut(&key) else {
            return Ok(());
        };
        let Some(dial) = &peer.dial else { return Ok(()) };
        let session = super::connection(&self.config, Instant::now())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let conn = match &dial.endpoint {
            Endpoint::Tcp(addr) => self.driver.connect(*addr, session)?,
            Endpoint::Ipc(path) => self.driver.connect_unix(path, session)?,
        };
        peer.conn = Some(conn);
        self.by_conn.insert(conn, key);
        Ok(())
    }

    /// Does what each unconnected endpoint's supervisor says at `now`: dials those whose
    /// wait is over; returns the earliest wait still running.
    fn redial(&mut self, now: Instant) -> Option<Instant> {
        let waiting: Vec<u64> = self
            .peers
            .iter()
            .filter(|(_, p)| p.conn.is_none() && p.dial.is_some())
            .map(|(k, _)| *k)
            .collect();
        let mut earliest: Option<Instant> = None;
        for key in waiting {
            while let Some(dial) = self.peers.get_mut(&key).and_then(|p| p.dial.as_mut()) {
                match dial.supervisor.next(now) {
                    Action::Wait(at) => {
                        earliest = Some(earliest.map_or(at, |e| e.min(at)));
                        break;
                    }
                    Action::Connect(index) => {
                        dial.supervisor.attempt();
                        if self.dial(key).is_ok() {
                            break;
                        }
                        // Failed at once: counted, and the next answer is a wait.
                        if let Some(dial) = self.peers.get_mut(&key).and_then(|p| p.dial.as_mut()) {
                            dial.supervisor.failed(index, (), false);
                        }
                    }
                    // No limit on attempts: a ZeroMQ socket redials until closed.
                    Action::GiveUp(_) => break,
                }
            }
        }
        earliest
    }

    /// A SUB subscribes to messages whose first frame starts with `topic` (empty:
    /// all); every peer is told, now and on every reconnect.
    pub fn subscribe(&mut self, topic: impl Into<Bytes>) {
        self.logic.subscribe(topic.into());
        self.pump();
    }

    /// A SUB cancels one subscription to `topic`.
    pub fn unsubscribe(&mut self, topic: impl Into<Bytes>) {
        self.logic.unsubscribe(topic.into());
        self.pump();
    }

    /// Sends a multipart message by the socket type's rule, waiting up to
    /// [`Options::send_timeout`] while DEALER or PUSH peers are all at the HWM (or none
    /// is connected). A ROUTER's first frame is the peer's identity. Takes a
    /// [`Message`], a `Vec<Bytes>` or a single `Bytes` frame.
    pub fn send(&mut self, message: impl Into<Message>) -> Result<(), ZmqError> {
        let mut frames = message.into();
        // Most calls find room: the clock is read only once one did not.
        let mut deadline = None;
        loop {
            // A message for a peer whose connection has room is encoded into it at
            // once (no queue); one queued behind others waits for `pump`.
            let Socket {
                logic, peers, driver, ..
            } = self;
            // The peer's connection was full: the message was queued behind it.
            let mut full = false;
            let sent = logic.send_direct(frames, |key, message| {
                let Some(session) = peers
                    .get(&key)
                    .and_then(|p| p.conn)
                    .and_then(|c| driver.session_for_output(c))
                else {
                    return false;
                };
                if session.poll_transmit().map_or(0, |a| a.len()) >= ARENA_HIGH {
                    full = true;
                    return false;
                }
                session.send(message).is_ok()
            });
            match sent {
                Ok(false) => return Ok(()),
                Ok(true) if full => {
                    // The first message queued behind a full connection: hand the
                    // kernel what it holds now (one write, no wait), and the queue
                    // moves into the room made. A sender the peer keeps up with then
                    // goes on encoding straight into the connection instead of
                    // queueing up to the HWM (and pumping per message) first; one
                    // the kernel cannot take from yet queues as before. No pump
                    // here: a full connection takes nothing until a turn.
                    self.step(Some(Instant::now()))?;
                    return Ok(());
                }
                Ok(true) => {
                    self.pump();
                    return Ok(());
                }
                Err(SocketError::WouldBlock(back)) => frames = back,
                Err(other) => return Err(ZmqError::Socket(other)),
            }
            let deadline = *deadline.get_or_insert_with(|| self.options.send_timeout.map(|t| Instant::now() + t));
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(ZmqError::SendTimeout(frames));
            }
            // Every full connection asked to hear once it has room (`pump`): the turn
            // returns then, or when a peer comes or goes.
            self.step(deadline)?;
        }
    }

    /// The next multipart message (fair-queued across peers; a ROUTER's starts with
    /// the sender's identity), or `None` if none came within `timeout`.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Message>, ZmqError> {
        // Most calls find a message waiting: the clock is read only once one did not.
        let mut deadline = None;
        loop {
            if let Some(message) = self.logic.recv() {
                self.release_held();
                return Ok(Some(message));
            }
            let deadline = *deadline.get_or_insert_with(|| Instant::now() + timeout);
            if Instant::now() >= deadline {
                return Ok(None);
            }
            self.step(Some(deadline))?;
        }
    }

    /// Appends to `batch` every message received so far (at least one, waiting up to
    /// `timeout` for it), in the order [`recv`](Self::recv) would return them; the count
    /// appended (0: none came in time). One call takes what a driver turn brought in,
    /// thousands of small messages, at the cost of one: the receive high-water marks
    /// still bound what the socket holds between calls.
    pub fn recv_batch(&mut self, batch: &mut Vec<Message>, timeout: Duration) -> Result<usize, ZmqError> {
        let before = batch.len();
        self.take_received(batch);
        if batch.len() > before {
            return Ok(batch.len() - before);
        }
        let deadline = Instant::now() + timeout;
        loop {
            self.step(Some(deadline))?;
            self.take_received(batch);
            if batch.len() > before {
                return Ok(batch.len() - before);
            }
            if Instant::now() >= deadline {
                return Ok(0);
            }
        }
    }

    /// Moves every received message into `batch`, letting held connections give
    /// theirs as the queues empty, until nothing more is decoded.
    fn take_received(&mut self, batch: &mut Vec<Message>) {
        loop {
            if self.logic.recv_into(batch) == 0 {
                // Nothing (more) to take, or a REP owes its reply first.
                return;
            }
            self.release_held();
        }
    }

    /// Runs the socket until every queued message has been handed to the kernel, or
    /// `timeout` passes; true if everything went (libzmq's linger, made explicit).
    pub fn flush(&mut self, timeout: Duration) -> Result<bool, ZmqError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.pump();
            if !self.has_output() {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                return Ok(false);
            }
            // Each connection with output asked to hear once it has room or is empty
            // (`has_output`): the turn returns then.
            self.step(Some(deadline))?;
        }
    }

    /// Waits up to the linger time ([`Options::linger`]) until every queued message has
    /// been written to a peer's connection, then closes the socket; true if everything
    /// went. What the kernel has taken is delivered after the process goes on (or
    /// exits), as with libzmq; a message whose peer never came is lost, and this says so.
    pub fn close(mut self) -> Result<bool, ZmqError> {
        self.closed = true;
        self.linger()
    }

    fn linger(&mut self) -> Result<bool, ZmqError> {
        match self.options.linger {
            Some(linger) => self.flush(linger),
            None => loop {
                // Forever, as libzmq's -1: in slices, so a redial keeps its schedule.
                if self.flush(Duration::from_secs(1))? {
                    return Ok(true);
                }
            },
        }
    }

    /// Turns the driver for `duration`, serving every connection (handshakes,
    /// reconnects, queued output) without taking a message.
    pub fn run_for(&mut self, duration: Duration) -> Result<(), ZmqError> {
        let deadline = Instant::now() + duration;
        while Instant::now() < deadline {
            self.step(Some(deadline))?;
        }
        Ok(())
    }

    /// Whether a message waits for a peer or a connection still holds output; each
    /// connection that does asks to hear ([`Activity::Sent`]) once it has room again, or
    /// is empty.
    fn has_output(&mut self) -> bool {
        let Socket {
            peers, logic, driver, ..
        } = self;
        let mut any = false;
        for (&key, peer) in peers.iter() {
            any |= logic.queued_for(key) > 0;
            let Some(session) = peer.conn.and_then(|c| driver.session_for_output(c)) else {
                continue;
            };
            if session.poll_transmit().is_some_and(|a| !a.is_empty()) {
                // Messages still waiting: refill at the low mark (`pump`); else once
                // the last byte is written.
                session.report_sent(if logic.has_outgoing(key) { ARENA_LOW } else { 0 });
                any = true;
            }
        }
        any
    }

    /// One driver turn, bounded by `deadline` (and the next redial), then the events
    /// drained, redials made and output moved. Output waiting for room needs no bound:
    /// its connection reports the write that made room ([`Activity::Sent`]).
    fn step(&mut self, deadline: Option<Instant>) -> Result<(), ZmqError> {
        // Messages moved now may be the room a caller waits for, and no report would
        // say so: this turn only looks, and the caller sees the room.
        let mut until = if self.pump() { Some(Instant::now()) } else { deadline };
        let mut earliest = |at: Instant| until = Some(until.map_or(at, |u| u.min(at)));
        if let Some(at) = self.redial(Instant::now()) {
            earliest(at);
        }
        if let Some(at) = self.zap.as_ref().and_then(ZapClient::next_deadline) {
            earliest(at);
        }
        if let Some(at) = self.closing.iter().map(|(_, at)| *at).min() {
            earliest(at);
        }
        let mut activities = std::mem::take(&mut self.activities);
        activities.clear();
        let turned = self.driver.turn(until, &mut activities);
        for activity in &activities {
            if let Activity::Connected(conn) | Activity::Ready(conn) | Activity::Closed { conn, .. } = activity {
                if self.zap.as_ref().is_some_and(|z| z.conn == Some(*conn)) {
                    self.drain_zap(matches!(activity, Activity::Closed { .. }));
                    continue;
                }
            }
            if let Activity::Closed { conn, .. } | Activity::Sent(conn) = activity {
                if let Some(at) = self.closing.iter().position(|(c, _)| c == conn) {
                    let drained = matches!(activity, Activity::Closed { .. })
                        || self
                            .driver
                            .session_for_output(*conn)
                            .is_none_or(|s| s.poll_transmit().is_none_or(|a| a.is_empty()));
                    if drained {
                        self.closing.swap_remove(at);
                        self.driver.remove(*conn);
                    }
                    continue;
                }
            }
            match activity {
                Activity::Accepted { conn, peer, .. } => {
                    let key = self.next_key;
                    if !self.logic.add_peer(key) {
                        // A PAIR's second peer: closed, as libzmq does.
                        self.driver.remove(*conn);
                        continue;
                    }
                    self.next_key += 1;
                    let address = if *peer == UNIX_PEER {
                        Bytes::new()
                    } else {
                        Bytes::from(peer.ip().to_string())
                    };
                    self.peers.insert(
                        key,
                        Peer {
                            conn: Some(*conn),
                            address,
                            dial: None,
                        },
                    );
                    self.by_conn.insert(*conn, key);
                    self.drain(*conn, false);
                }
                Activity::Connected(conn) | Activity::Ready(conn) => self.drain(*conn, false),
                Activity::Closed { conn, .. } => self.drain(*conn, true),
                // `pump` below moves what waited for the room.
                Activity::Sent(_) | Activity::Woken => {}
            }
        }
        self.activities = activities;
        turned.map_err(ZmqError::Turn)?;
        // Only a socket with a ZAP handler or a connection closing reads the clock here.
        if self.zap.is_some() || !self.closing.is_empty() {
            let now = Instant::now();
            self.expire_zap(now);
            let (driver, closing) = (&mut self.driver, &mut self.closing);
            closing.retain(|(conn, at)| {
                let keep = now < *at;
                if !keep {
                    driver.remove(*conn);
                }
                keep
            });
        }
        self.pump();
        Ok(())
    }

    /// Resumes reading the held connections whose peers' queues are down to half the
    /// receive HWMs (a connection held at the mark is not resumed for every message).
    fn release_held(&mut self) {
        // Most calls find no held peer's queue down to the mark yet: look before taking
        // the list apart, or a receiver held at its HWM (a CURVE one, opening boxes
        // slower than they come) allocates a new list for every message it takes.
        let Socket {
            held, by_conn, logic, ..
        } = &*self;
        if !held
            .iter()
            .any(|conn| by_conn.get(conn).is_none_or(|&key| logic.resumes_from(key)))
        {
            return;
        }
        for conn in std::mem::take(&mut self.held) {
            let Some(&key) = self.by_conn.get(&conn) else { continue };
            if self.logic.resumes_from(key) {
                if let Some(session) = self.driver.session_for_output(conn) {
                    session.hold_input(false);
                }
                self.drain(conn, false);
            } else {
                self.held.push(conn);
            }
        }
    }

    /// Takes a connection's events into the logic; buries it if it ended. A message
    /// from a peer at the receive HWM stays in the connection, which stops reading (a
    /// connection that ended gives everything it has).
    fn drain(&mut self, conn: ConnId, closed: bool) {
        let Some(&key) = self.by_conn.get(&conn) else { return };
        let mut lost = closed;
        // One look-up of the session for every event (fields borrowed apart).
        let Socket {
            driver,
            logic,
            held,
            options,
            last_error,
            peers,
            zap,
            ..
        } = self;
        let mut asks: Vec<AuthRequest> = Vec::new();
        // An XPUB queues its peers' subscriptions for `recv` as messages: they wait at
        // the receive HWM too, or a peer flooding subscriptions grows the queue without
        // bound.
        let xpub = logic.socket_type() == SocketType::Xpub;
        // The room left under the receive HWMs, looked up once and counted down per
        // message (conservatively: every message counts one, queued or not), looked
        // up again only once it runs out: then it says exactly what `accepts_from`
        // would.
        let (mut room, mut room_bytes) = logic.room_from(key);
        let mut session = driver.session_for_output(conn);
        while let Some(session) = session.as_deref_mut() {
            // The queue is looked at (a message decoded to peek) only once full.
            if !closed && (room == 0 || room_bytes == 0) {
                (room, room_bytes) = logic.room_from(key);
                if (room == 0 || room_bytes == 0)
                    && match session.peek_event() {
                        Some(Event::Message(_)) => true,
                        Some(Event::Subscription(_)) => xpub,
                        _ => false,
                    }
                {
                    session.hold_input(true);
                    if !held.contains(&conn) {
                        held.push(conn);
                    }
                    break;
                }
            }
            // Messages first, without an `Event` each; then whatever else comes.
            if let Some(frames) = session.poll_message() {
                room = room.saturating_sub(1);
                room_bytes = room_bytes.saturating_sub(logic.handle_message(key, frames));
                continue;
            }
            let Some(event) = session.poll_event() else { break };
            match event {
                Event::Established(established) => {
                    logic.established(key, &established);
                    // The reconnect (if any) is over; the next loss starts a new one.
                    if let Some(dial) = peers.get_mut(&key).and_then(|p| p.dial.as_mut()) {
                        dial.supervisor.succeeded(0);
                    }
                }
                Event::Message(frames) => {
                    room = room.saturating_sub(1);
                    room_bytes = room_bytes.saturating_sub(logic.handle_message(key, frames));
                }
                Event::Subscription(subscription) => {
                    logic.handle_subscription(key, subscription);
                    // An XPUB may have queued it: look again before the next.
                    room = 0;
                }
                Event::Failed(error) => {
                    *last_error = Some(error);
                    lost = true;
                }
                Event::Closed => lost = true,
                Event::Authenticate(request) if zap.is_some() => asks.push(request),
                Event::Authenticate(request) => session.authenticate(options.judge(&request), Instant::now()),
            }
        }
        for request in asks {
            self.ask_zap(conn, key, &request);
        }
        if lost {
            if let Some(zap) = self.zap.as_mut() {
                zap.forget(conn);
            }
            self.held.retain(|c| *c != conn);
            self.by_conn.remove(&conn);
            // A refused peer is told why (the `ERROR` written last) before the close.
            let last_words = !closed
                && self
                    .driver
                    .session_for_output(conn)
                    .is_some_and(|s| s.poll_transmit().is_some_and(|a| !a.is_empty()));
            if last_words {
                if let Some(session) = self.driver.session_for_output(conn) {
                    session.report_sent(0);
                }
                self.closing.push((conn, Instant::now() + CLOSING_GRACE));
            } else {
                self.driver.remove(conn);
            }
            let now = Instant::now();
            let dialed = self.peers.get_mut(&key).and_then(|p| {
                p.conn = None;
                p.dial.as_mut()
            });
            if let Some(dial) = dialed {
                // Refused or failed before its handshake completed: a failed attempt,
                // and the wait grows; lost after it: a new reconnect, after one
                // interval, as libzmq waits before redialing.
                if dial.supervisor.reconnecting() {
                    dial.supervisor.failed(0, (), false);
                } else {
                    dial.supervisor.lost(now);
                }
                self.logic.disconnected(key);
            } else {
                self.logic.remove_peer(key);
                self.peers.remove(&key);
            }
        }
    }

    /// Sends the ZAP handler the question a connection's handshake asks, connecting to
    /// the handler first if need be. A request that cannot be sent (the handler cannot
    /// be dialed) waits, like one never answered, until its deadline refuses the peer.
    fn ask_zap(&mut self, conn: ConnId, key: u64, request: &AuthRequest) {
        let address = self.peers.get(&key).map(|p| p.address.clone()).unwrap_or_default();
        let Some(zap) = self.zap.as_mut() else { return };
        let message = zap.request(conn, address, request, Instant::now());
        if zap.conn.is_none() {
            let mut config = ConnectionConfig::new(HandshakeConfig::null(SocketType::Dealer));
            config.max_frame_size = 1 << 20;
            let session = super::connection(&config, Instant::now()).ok();
            let dialed = session.and_then(|session| match &zap.endpoint {
                Endpoint::Tcp(addr) => self.driver.connect(*addr, session).ok(),
                Endpoint::Ipc(path) => self.driver.connect_unix(path, session).ok(),
            });
            zap.conn = dialed;
        }
        if let Some(session) = zap.conn.and_then(|c| self.driver.session_for_output(c)) {
            // Queued until the handler's handshake completes; a send that fails
            // leaves the request to its deadline.
            let _ = session.send(&message);
        }
    }

    /// Reads the handler connection: each reply's verdict goes to the connection that
    /// waits for it (then drained, for what the verdict made); a lost handler
    /// connection is dropped, to be redialed by the next request (the requests it
    /// carried run out their deadlines).
    fn drain_zap(&mut self, closed: bool) {
        let Some(zap_conn) = self.zap.as_ref().and_then(|z| z.conn) else {
            return;
        };
        let mut verdicts = Vec::new();
        let mut lost = closed;
        if let Some(session) = self.driver.session_for_output(zap_conn) {
            while let Some(event) = session.poll_event() {
                match event {
                    Event::Message(frames) => {
                        if let Some(verdict) = self.zap.as_mut().and_then(|z| z.reply(&frames)) {
                            verdicts.push(verdict);
                        }
                    }
                    Event::Failed(_) | Event::Closed => lost = true,
                    Event::Established(_) | Event::Subscription(_) | Event::Authenticate(_) => {}
                }
            }
        }
        if lost {
            self.driver.remove(zap_conn);
            if let Some(zap) = self.zap.as_mut() {
                zap.conn = None;
            }
        }
        for (conn, verdict) in verdicts {
            let Some(session) = self.driver.session_for_output(conn) else {
                continue;
            };
            match verdict {
                Ok(decision) => session.authenticate(decision, Instant::now()),
                Err(error) => session.authentication_failed(ZmtpError::Zap(error)),
            }
            self.drain(conn, false);
        }
    }

    /// Refuses the peers whose ZAP request has waited past [`Options::zap_timeout`].
    fn expire_zap(&mut self, now: Instant) {
        let Some(expired) = self.zap.as_mut().map(|z| z.expired(now)) else {
            return;
        };
        for (conn, error) in expired {
            if let Some(session) = self.driver.session_for_output(conn) {
                session.authentication_failed(ZmtpError::Zap(error));
            }
            self.drain(conn, false);
        }
    }

    /// Moves queued messages into each established connection while its output is
    /// below [`ARENA_HIGH`]; a connection that fills up with messages still waiting
    /// asks to hear once it is down to [`ARENA_LOW`], so they move on then. True if a
    /// message moved.
    fn pump(&mut self) -> bool {
        let Socket {
            peers, logic, driver, ..
        } = self;
        let mut moved = false;
        for (&key, peer) in peers.iter() {
            let Some(conn) = peer.conn else { continue };
            if !logic.has_outgoing(key) {
                continue;
            }
            let Some(session) = driver.session_for_output(conn) else {
                continue;
            };
            while session.poll_transmit().map_or(0, |a| a.len()) < ARENA_HIGH {
                let Some(message) = logic.poll_outgoing(key) else {
                    break;
                };
                if session.send(&message).is_err() {
                    break;
                }
                moved = true;
            }
            if logic.has_outgoing(key) {
                session.report_sent(ARENA_LOW);
            }
        }
        moved
    }
}

/// A random seed for the reconnect jitter: std's hasher keys come from the operating
/// system's generator (no crate needed for 64 bits that only spread redials).
fn random_seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    std::collections::hash_map::RandomState::new().build_hasher().finish()
}

impl Drop for Socket {
    /// Lingers as [`close`](Socket::close) does (unless it ran, or a panic unwinds),
    /// then closes the listeners; the driver closes the connections.
    fn drop(&mut self) {
        if !self.closed && !std::thread::panicking() {
            let _ = self.linger();
        }
        for listener in self.listeners.drain(..) {
            let _ = self.driver.close_listener(listener);
        }
    }
}
