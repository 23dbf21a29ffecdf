//! The driver contract, run against both drivers.
//!
//! Every test below is a function of the [`DriverKind`]; `contract!` turns each into one
//! `#[test]` per driver (`uring::echo_via_connect`, `mio::echo_via_connect`, ...), so a
//! failure names the driver and the behaviour, and `cargo test --test driver_contract mio::`
//! runs one driver. A driver that cannot be created fails the test: io_uring works
//! wherever this suite runs (this machine and CI), so there is nothing to skip.
//!
//! The sessions are test sessions ([`Probe`]): echo, collect (store or check against a
//! pseudo-random stream), and a length-prefixed framed session that notices a frame cut
//! mid-way. Peers are plain blocking `std::net` sockets on loopback, in threads, or the
//! same driver's other end where that is the point (many connections).
//!
//! Besides each test's own assertions, [`Rig`] checks on every turn what the [`Driver`]
//! documentation promises about [`Activity`]: `Ready` at most once per connection per
//! turn and for every session that was fed, `Sent` at most once per connection per turn
//! and exactly when the session asked for it, `Connected` only for `connect` and once,
//! `Closed` once, nothing about a removed connection, ids never reused.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::{AnyDriver, DriverKind};
use monocoque::proto::{Activity, ConnId, Driver, IoArena, ListenerId, Session};

const MIB: usize = 1024 * 1024;

/// How long a step that should take milliseconds may take on a loaded CI machine before
/// the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// The test session
// ---------------------------------------------------------------------------------------

/// What a [`Probe`] does with what it receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Keep (or check) the bytes.
    Collect,
    /// Send every byte back, and finish once the peer closed and the echo is flushed.
    Echo,
    /// Split the stream into frames: a 4-byte big-endian length, then the payload.
    Framed,
}

/// Where received bytes go.
#[derive(Debug)]
enum Sink {
    /// Stored as they came.
    Store(Vec<u8>),
    /// Compared with the pseudo-random stream `seed` (see [`fill_pattern`]), not stored:
    /// 64 MiB checked byte for byte without keeping them.
    Check { seed: u64, first_mismatch: Option<u64> },
}

/// Events a probe reports (the bodies' side of the contract: drained after `Ready`).
#[derive(Clone, Debug, PartialEq, Eq)]
enum Event {
    Input(usize),
    Frame(usize),
    Eof,
    Timeout,
}

/// A frame the peer cut off by closing: bytes buffered, and the announced payload length
/// when the 4-byte header was complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cut {
    buffered: usize,
    announced: Option<usize>,
}

/// One `handle_timeout` call that matched the armed timer.
#[derive(Clone, Copy, Debug)]
struct Fired {
    due: Instant,
    now: Instant,
    wall: Instant,
}

/// The test session: records everything the driver does to it.
#[derive(Debug)]
struct Probe {
    tag: u64,
    mode: Mode,
    arena: IoArena,
    sink: Sink,
    scratch: Vec<u8>,
    /// Bytes received in total.
    received: u64,
    /// `handle_input` calls.
    inputs: u64,
    /// Calls of any `handle_*` method: the rig checks each one was reported.
    fed: u64,
    frame_buf: Vec<u8>,
    frames: Vec<Vec<u8>>,
    cut: Option<Cut>,
    eofs: u32,
    /// Bytes that arrived after `handle_eof` (must stay 0).
    input_after_eof: u64,
    /// Bytes fed while `wants_read` was false (must stay 0).
    input_while_paused: u64,
    timer: Option<Instant>,
    fired: Vec<Fired>,
    /// `handle_timeout` calls before the armed instant or with no timer armed: how many,
    /// and the first few.
    bad_timeouts: (u64, Vec<String>),
    reading: bool,
    /// Stop reading (`wants_read` false) once this many bytes have arrived.
    pause_at: Option<u64>,
    /// Keep the received `Bytes` views themselves (zero copy: they point into the
    /// driver's receive buffers): `Some(n)` holds up to `n` views, checks them against
    /// the stream and drops them; `Some(usize::MAX)` holds all until told otherwise.
    hold: Option<usize>,
    held: Vec<(u64, Bytes)>,
    /// First offset where a held view no longer matched the stream when it was checked
    /// (the driver reused its memory while the view was alive).
    held_mismatch: Option<u64>,
    finished: bool,
    events: VecDeque<Event>,
    /// Ask to hear of the next write the kernel takes (`handle_sent` answers true once).
    report_sent: bool,
    /// `handle_sent` calls that answered true: the rig checks each one was reported.
    sent_answers: u64,
}

impl Probe {
    fn new(tag: u64, mode: Mode) -> Self {
        Self {
            tag,
            mode,
            arena: IoArena::new(),
            sink: Sink::Store(Vec::new()),
            scratch: Vec::new(),
            received: 0,
            inputs: 0,
            fed: 0,
            frame_buf: Vec::new(),
            frames: Vec::new(),
            cut: None,
            eofs: 0,
            input_after_eof: 0,
            input_while_paused: 0,
            timer: None,
            fired: Vec::new(),
            bad_timeouts: (0, Vec::new()),
            reading: true,
            pause_at: None,
            hold: None,
            held: Vec::new(),
            held_mismatch: None,
            finished: false,
            events: VecDeque::new(),
            report_sent: false,
            sent_answers: 0,
        }
    }

    fn collect(tag: u64) -> Self {
        Self::new(tag, Mode::Collect)
    }

    fn echo(tag: u64) -> Self {
        Self::new(tag, Mode::Echo)
    }

    fn framed(tag: u64) -> Self {
        Self::new(tag, Mode::Framed)
    }

    /// Queues `data` for sending.
    fn sending(mut self, data: &[u8]) -> Self {
        self.arena.put_slice(data);
        self
    }

    /// Checks received bytes against the stream `seed` instead of storing them.
    fn checking(mut self, seed: u64) -> Self {
        self.sink = Sink::Check {
            seed,
            first_mismatch: None,
        };
        self
    }

    fn with_timer(mut self, at: Instant) -> Self {
        self.timer = Some(at);
        self
    }

    fn paused(mut self) -> Self {
        self.reading = false;
        self
    }

    /// The stored bytes (a probe built with [`Probe::checking`] has none).
    fn stored(&self) -> &[u8] {
        match &self.sink {
            Sink::Store(v) => v,
            Sink::Check { .. } => panic!("probe {} checks its input, it does not store it", self.tag),
        }
    }

    /// Checks every held view against the stream, then drops them all.
    fn release_held(&mut self) {
        let Sink::Check { seed, .. } = self.sink else {
            panic!("probe {} holds views but has no stream to check them against", self.tag)
        };
        let mut expected = Vec::new();
        for (offset, view) in self.held.drain(..) {
            expected.resize(view.len(), 0);
            fill_pattern(seed, offset, &mut expected);
            if self.held_mismatch.is_none() && view[..] != expected[..] {
                let at = view.iter().zip(&expected).position(|(a, b)| a != b).unwrap_or(0);
                self.held_mismatch = Some(offset + at as u64);
            }
        }
    }

    fn first_mismatch(&self) -> Option<u64> {
        match &self.sink {
            Sink::Store(_) => None,
            Sink::Check { first_mismatch, .. } => *first_mismatch,
        }
    }

    fn sink(&mut self, data: &[u8]) {
        let offset = self.received;
        match &mut self.sink {
            Sink::Store(v) => v.extend_from_slice(data),
            Sink::Check { seed, first_mismatch } => {
                self.scratch.resize(data.len(), 0);
                fill_pattern(*seed, offset, &mut self.scratch);
                if first_mismatch.is_none() && self.scratch[..] != data[..] {
                    let at = self.scratch.iter().zip(data).position(|(a, b)| a != b).unwrap_or(0);
                    *first_mismatch = Some(offset + at as u64);
                }
            }
        }
    }

    fn bad_timeout(&mut self, what: String) {
        self.bad_timeouts.0 += 1;
        if self.bad_timeouts.1.len() < 5 {
            self.bad_timeouts.1.push(what);
        }
    }

    fn split_frames(&mut self) {
        let mut start = 0;
        while self.frame_buf.len() - start >= 4 {
            let header = [
                self.frame_buf[start],
                self.frame_buf[start + 1],
                self.frame_buf[start + 2],
                self.frame_buf[start + 3],
            ];
            let len = u32::from_be_bytes(header) as usize;
            if self.frame_buf.len() - start - 4 < len {
                break;
            }
            self.frames.push(self.frame_buf[start + 4..start + 4 + len].to_vec());
            self.events.push_back(Event::Frame(len));
            start += 4 + len;
        }
        self.frame_buf.drain(..start);
    }
}

impl Session for Probe {
    type Event = Event;

    fn handle_input(&mut self, data: Bytes, _now: Instant) {
        self.fed += 1;
        self.inputs += 1;
        if self.eofs > 0 {
            self.input_after_eof += data.len() as u64;
        }
        if !self.reading {
            self.input_while_paused += data.len() as u64;
        }
        self.sink(&data);
        if let Some(limit) = self.hold {
            self.held.push((self.received, data.clone()));
            if self.held.len() >= limit {
                self.release_held();
            }
        }
        self.received += data.len() as u64;
        self.events.push_back(Event::Input(data.len()));
        match self.mode {
            Mode::Collect => {}
            Mode::Echo => self.arena.put_bytes(&data),
            Mode::Framed => {
                self.frame_buf.extend_from_slice(&data);
                self.split_frames();
            }
        }
        if self.pause_at.is_some_and(|at| self.received >= at) {
            self.reading = false;
            self.pause_at = None;
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.fed += 1;
        self.eofs += 1;
        if self.mode == Mode::Framed && !self.frame_buf.is_empty() {
            let announced = (self.frame_buf.len() >= 4).then(|| {
                u32::from_be_bytes([
                    self.frame_buf[0],
                    self.frame_buf[1],
                    self.frame_buf[2],
                    self.frame_buf[3],
                ]) as usize
            });
            self.cut = Some(Cut {
                buffered: self.frame_buf.len(),
                announced,
            });
        }
        self.finished = true;
        self.events.push_back(Event::Eof);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.fed += 1;
        match self.timer {
            Some(due) if now >= due => {
                self.fired.push(Fired {
                    due,
                    now,
                    wall: Instant::now(),
                });
                self.timer = None;
                self.events.push_back(Event::Timeout);
            }
            Some(due) => self.bad_timeout(format!("handle_timeout {:?} before the armed instant", due - now)),
            None => self.bad_timeout("handle_timeout with no timer armed".to_owned()),
        }
    }

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        (!self.arena.is_empty()).then_some(&mut self.arena)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn wants_read(&self) -> bool {
        self.reading
    }

    fn is_closed(&self) -> bool {
        self.finished
    }

    fn handle_sent(&mut self) -> bool {
        let asked = std::mem::take(&mut self.report_sent);
        self.sent_answers += u64::from(asked);
        asked
    }
}

// ---------------------------------------------------------------------------------------
// Byte streams
// ---------------------------------------------------------------------------------------

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Writes bytes `offset..offset + dst.len()` of the pseudo-random stream `seed`: any
/// slice of the stream can be produced (or checked) on its own.
fn fill_pattern(seed: u64, offset: u64, dst: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < dst.len() {
        let word = splitmix64(seed.wrapping_mul(0xD6E8_FEB8_6659_FD93) ^ (pos / 8)).to_le_bytes();
        let start = (pos % 8) as usize;
        let take = (8 - start).min(dst.len() - i);
        dst[i..i + take].copy_from_slice(&word[start..start + take]);
        i += take;
        pos += take as u64;
    }
}

fn pattern(seed: u64, offset: u64, len: usize) -> Vec<u8> {
    let mut v = vec![0; len];
    fill_pattern(seed, offset, &mut v);
    v
}

/// A length-prefixed frame.
fn frame(payload: &[u8]) -> Vec<u8> {
    let mut v = (payload.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

// ---------------------------------------------------------------------------------------
// The rig: a driver plus the contract's bookkeeping
// ---------------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Origin {
    Connect,
    Adopt,
    Accept(ListenerId),
}

#[derive(Debug)]
struct ConnInfo {
    origin: Origin,
    connected: bool,
    closed: bool,
    last_fed: u64,
    last_sent_answers: u64,
}

/// A driver of one kind, every activity it reported, and the contract checks.
struct Rig {
    kind: DriverKind,
    driver: AnyDriver<Probe>,
    log: Vec<Activity>,
    conns: HashMap<ConnId, ConnInfo>,
    removed: HashSet<ConnId>,
    violations: Vec<String>,
}

impl Rig {
    /// Creates the driver; failing to is a test failure, never a skip.
    fn new(kind: DriverKind) -> Self {
        let forced = FORCED_URING_CONFIG.with(|c| c.borrow().clone());
        let driver = match (kind, forced) {
            (DriverKind::Uring, Some(config)) => monocoque_uring::UringDriver::with_config(config)
                .map(AnyDriver::from)
                .unwrap_or_else(|e| panic!("creating the {kind} driver with forced fallbacks failed: {e}")),
            _ => AnyDriver::new(kind).unwrap_or_else(|e| panic!("creating the {kind} driver failed: {e}")),
        };
        assert_eq!(driver.kind(), kind);
        Self {
            kind,
            driver,
            log: Vec::new(),
            conns: HashMap::new(),
            removed: HashSet::new(),
            violations: Vec::new(),
        }
    }

    fn violation(&mut self, what: String) {
        if self.violations.len() < 50 {
            self.violations.push(what);
        }
    }

    fn new_conn(&mut self, conn: ConnId, origin: Origin) {
        if self.conns.contains_key(&conn) || self.removed.contains(&conn) {
            self.violation(format!("{conn:?} ({origin:?}) reuses the id of another connection"));
        }
        self.conns.insert(
            conn,
            ConnInfo {
                origin,
                connected: false,
                closed: false,
                last_fed: 0,
                last_sent_answers: 0,
            },
        );
    }

    fn connect(&mut self, addr: SocketAddr, probe: Probe) -> ConnId {
        let kind = self.kind;
        let conn = self
            .driver
            .connect(addr, probe)
            .unwrap_or_else(|e| panic!("{kind}: connect({addr}) failed: {e}"));
        self.new_conn(conn, Origin::Connect);
        conn
    }

    fn adopt(&mut self, stream: TcpStream, probe: Probe) -> ConnId {
        let kind = self.kind;
        let conn = self
            .driver
            .adopt(stream, probe)
            .unwrap_or_else(|e| panic!("{kind}: adopt failed: {e}"));
        self.new_conn(conn, Origin::Adopt);
        conn
    }

    fn listen(&mut self, factory: impl FnMut(ListenerId, SocketAddr, Instant) -> Probe + 'static) -> ListenerId {
        let kind = self.kind;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
        self.driver
            .listen(addr, Box::new(factory))
            .unwrap_or_else(|e| panic!("{kind}: listen failed: {e}"))
    }

    fn listener_addr(&self, listener: ListenerId) -> SocketAddr {
        let addr = self
            .driver
            .listener_addr(listener)
            .unwrap_or_else(|e| panic!("{}: listener_addr failed: {e}", self.kind));
        assert!(
            addr.ip().is_loopback() && addr.port() != 0,
            "{}: listener bound to {addr}",
            self.kind
        );
        addr
    }

    fn probe(&self, conn: ConnId) -> &Probe {
        self.driver
            .session(conn)
            .unwrap_or_else(|| panic!("{}: no session for {conn:?}", self.kind))
    }

    fn probe_mut(&mut self, conn: ConnId) -> &mut Probe {
        let kind = self.kind;
        self.driver
            .session_for_output(conn)
            .unwrap_or_else(|| panic!("{kind}: no session for {conn:?}"))
    }

    /// Removes a connection and checks that its id then finds nothing.
    fn remove(&mut self, conn: ConnId) -> Probe {
        let kind = self.kind;
        let probe = self
            .driver
            .remove(conn)
            .unwrap_or_else(|| panic!("{kind}: remove({conn:?}) found nothing"));
        self.conns.remove(&conn);
        self.removed.insert(conn);
        assert!(
            self.driver.session(conn).is_none(),
            "{kind}: session({conn:?}) after remove"
        );
        assert!(
            self.driver.session_for_output(conn).is_none(),
            "{kind}: session_for_output({conn:?}) after remove"
        );
        assert!(
            self.driver.remove(conn).is_none(),
            "{kind}: remove({conn:?}) twice found something"
        );
        probe
    }

    /// One turn, with the contract checks; returns the activities it reported.
    fn turn(&mut self, deadline: Option<Instant>) -> &[Activity] {
        let kind = self.kind;
        let mut out = Vec::new();
        if let Err(e) = self.driver.turn(deadline, &mut out) {
            panic!("{kind}: turn failed: {e}");
        }
        let mut ready = HashSet::new();
        let mut sent = HashSet::new();
        let mut reported = HashSet::new();
        for activity in &out {
            match activity {
                Activity::Connected(c) => {
                    reported.insert(*c);
                    match self.conns.get_mut(c) {
                        None => {
                            let what = format!("Connected({c:?}) for a connection that is unknown or removed");
                            self.violation(what);
                        }
                        Some(info) => {
                            let problem = if info.origin != Origin::Connect {
                                Some(format!("Connected({c:?}) for a connection from {:?}", info.origin))
                            } else if info.connected {
                                Some(format!("Connected({c:?}) twice"))
                            } else if info.closed {
                                Some(format!("Connected({c:?}) after Closed"))
                            } else {
                                None
                            };
                            info.connected = true;
                            if let Some(p) = problem {
                                self.violation(p);
                            }
                        }
                    }
                }
                Activity::Ready(c) => {
                    reported.insert(*c);
                    if !self.conns.contains_key(c) {
                        self.violation(format!("Ready({c:?}) for a connection that is unknown or removed"));
                    }
                    if !ready.insert(*c) {
                        self.violation(format!("Ready({c:?}) twice in one turn"));
                    }
                }
                Activity::Sent(c) => {
                    if !self.conns.contains_key(c) {
                        self.violation(format!("Sent({c:?}) for a connection that is unknown or removed"));
                    }
                    if !sent.insert(*c) {
                        self.violation(format!("Sent({c:?}) twice in one turn"));
                    }
                }
                Activity::Accepted { listener, conn, .. } => {
                    reported.insert(*conn);
                    self.new_conn(*conn, Origin::Accept(*listener));
                }
                Activity::Closed { conn, .. } => {
                    reported.insert(*conn);
                    match self.conns.get_mut(conn) {
                        None => self.violation(format!("Closed({conn:?}) for a connection that is unknown or removed")),
                        Some(info) if info.closed => self.violation(format!("Closed({conn:?}) twice")),
                        Some(info) => info.closed = true,
                    }
                }
                // No test here asks for a waker: a wake is a contract violation.
                Activity::Woken => self.violation("Woken from a driver nobody woke".to_owned()),
            }
        }
        // Every session the driver fed in this turn must have been reported, or the body
        // would never drain its events.
        let mut unreported = Vec::new();
        for (conn, info) in &mut self.conns {
            let Some(probe) = self.driver.session(*conn) else {
                unreported.push(format!("the session of {conn:?} vanished without remove"));
                continue;
            };
            if probe.fed != info.last_fed {
                info.last_fed = probe.fed;
                if !reported.contains(conn) {
                    unreported.push(format!(
                        "{conn:?} was fed input/EOF/timeout but the turn reported nothing for it"
                    ));
                }
            }
            // `Sent` exactly when the session answered `handle_sent` with true (at most
            // once a turn, checked above): never for one that did not ask.
            let answered = probe.sent_answers != info.last_sent_answers;
            info.last_sent_answers = probe.sent_answers;
            match (answered, sent.contains(conn)) {
                (true, false) => unreported.push(format!("{conn:?} asked to hear of a write but no Sent came")),
                (false, true) => unreported.push(format!("Sent({conn:?}) for a session that did not ask")),
                _ => {}
            }
        }
        for v in unreported {
            self.violation(v);
        }
        // Drain the events of Ready sessions, as a body does.
        for conn in ready {
            if let Some(probe) = self.driver.session_for_output(conn) {
                while probe.poll_event().is_some() {}
            }
        }
        let start = self.log.len();
        self.log.extend(out);
        &self.log[start..]
    }

    /// Turns until `done`, failing after `limit` with what was still missing.
    fn run_until(&mut self, what: &str, limit: Duration, mut done: impl FnMut(&mut Self) -> bool) {
        let start = Instant::now();
        while !done(self) {
            let now = Instant::now();
            if now - start > limit {
                panic!(
                    "{}: {what}: not done after {limit:?}\n{}\ncontract violations so far: {:#?}",
                    self.kind,
                    self.summary(),
                    self.violations
                );
            }
            self.turn(Some(now + Duration::from_millis(20)));
        }
    }

    /// Turns until `dur` has passed.
    fn turn_for(&mut self, dur: Duration) {
        let end = Instant::now() + dur;
        while Instant::now() < end {
            self.turn(Some(end));
        }
    }

    fn closed(&self, conn: ConnId) -> Option<&Option<io::Error>> {
        self.log.iter().find_map(|a| match a {
            Activity::Closed { conn: c, error } if *c == conn => Some(error),
            _ => None,
        })
    }

    fn count(&self, pred: impl Fn(&Activity) -> bool) -> usize {
        self.log.iter().filter(|a| pred(a)).count()
    }

    fn accepted(&self) -> Vec<(ListenerId, ConnId, SocketAddr)> {
        self.log
            .iter()
            .filter_map(|a| match a {
                Activity::Accepted { listener, conn, peer } => Some((*listener, *conn, *peer)),
                _ => None,
            })
            .collect()
    }

    fn summary(&self) -> String {
        let mut counts = [0usize; 6];
        for a in &self.log {
            counts[match a {
                Activity::Connected(_) => 0,
                Activity::Ready(_) => 1,
                Activity::Accepted { .. } => 2,
                Activity::Closed { .. } => 3,
                Activity::Woken => 4,
                Activity::Sent(_) => 5,
            }] += 1;
        }
        let mut s = format!(
            "activities: {} Connected, {} Ready, {} Accepted, {} Closed, {} Woken, {} Sent; last ones:",
            counts[0], counts[1], counts[2], counts[3], counts[4], counts[5]
        );
        for a in self.log.iter().rev().take(8) {
            let _ = write!(s, "\n  {a:?}");
        }
        s
    }

    /// Fails the test if any turn broke the contract.
    fn check_contract(&self) {
        assert!(
            self.violations.is_empty(),
            "{}: contract violations: {:#?}",
            self.kind,
            self.violations
        );
    }
}

// ---------------------------------------------------------------------------------------
// Peers
// ---------------------------------------------------------------------------------------

type Peer<T> = JoinHandle<Result<T, String>>;

fn spawn_peer<T: Send + 'static>(name: &str, f: impl FnOnce() -> Result<T, String> + Send + 'static) -> Peer<T> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(f)
        .expect("spawn a peer thread")
}

fn join<T>(kind: DriverKind, peer: Peer<T>) -> T {
    match peer.join() {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("{kind}: peer failed: {e}"),
        Err(_) => panic!("{kind}: peer thread panicked"),
    }
}

fn io_err(what: &'static str) -> impl Fn(io::Error) -> String {
    move |e| format!("{what}: {e}")
}

fn bind_loopback() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback listener")
}

fn set_timeouts(s: &TcpStream) {
    s.set_read_timeout(Some(PATIENCE * 3)).expect("set_read_timeout");
    s.set_write_timeout(Some(PATIENCE * 3)).expect("set_write_timeout");
}

/// A peer that accepts one connection and echoes it until EOF; returns the byte count.
fn spawn_echo_peer() -> (SocketAddr, Peer<u64>) {
    let listener = bind_loopback();
    let addr = listener.local_addr().expect("local_addr");
    let peer = spawn_peer("echo-peer", move || {
        let (mut s, _) = listener.accept().map_err(io_err("accept"))?;
        set_timeouts(&s);
        let mut buf = vec![0; 64 * 1024];
        let mut total = 0u64;
        loop {
            let n = s.read(&mut buf).map_err(io_err("read"))?;
            if n == 0 {
                return Ok(total);
            }
            s.write_all(&buf[..n]).map_err(io_err("write"))?;
            total += n as u64;
        }
    });
    (addr, peer)
}

/// A connected pair of std streams on loopback: (the side for the driver, the peer).
fn std_pair() -> (TcpStream, TcpStream) {
    let listener = bind_loopback();
    let ours = TcpStream::connect(listener.local_addr().expect("local_addr")).expect("connect");
    let (theirs, _) = listener.accept().expect("accept");
    set_timeouts(&theirs);
    (ours, theirs)
}

/// Aborts the process if a blocking call (`turn(None)`) never returns: a hang becomes a
/// failure that names the test, not a CI timeout.
struct Watchdog(#[allow(dead_code)] mpsc::Sender<()>);

fn watchdog(what: String, limit: Duration) -> Watchdog {
    let (tx, rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        if let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(limit) {
            eprintln!("{what}: still blocked after {limit:?}; aborting the test process");
            std::process::abort();
        }
    });
    Watchdog(tx)
}

// ---------------------------------------------------------------------------------------
// The contract
// ---------------------------------------------------------------------------------------

/// Echo round trip where the driver connects; then more output queued through
/// `session_for_output`, which the driver must notice and send.
fn echo_via_connect(kind: DriverKind) {
    let mut rig = Rig::new(kind);
    let (addr, peer) = spawn_echo_peer();
    let first = pattern(1, 0, 100_000);
    let conn = rig.connect(addr, Probe::collect(1).sending(&first));
    rig.run_until("Connected", PATIENCE, |r| r.conns[&conn].connected);
    rig.run_until("first echo", PATIENCE, |r| r.probe(conn).received >= first.len() as u64);
    assert_eq!(rig.probe(conn).stored(), &first[..], "{kind}: first echo differs");

    let second = pattern(2, 0, 3_000);
    rig.probe_mut(conn).arena.put_slice(&second);
    let total = (first.len() + second.len()) as u64;
    rig.run_until("second echo (queued through session_for_output)", PATIENCE, |r| {
        r.probe(conn).received >= total
    });
    let probe = rig.probe(conn);
    assert_eq!(probe.received, total, "{kind}: more bytes than were sent came back");
    assert_eq!(
        &probe.stored()[first.len()..],
        &second[..],
        "{kind}: second echo differs"
    );
    assert_eq!(probe.eofs, 0, "{kind}: EOF on a live connection");

    let connected_at = rig
        .log
        .iter()
        .position(|a| matches!(a, Activity::Connected(c) if *c == conn));
    let first_ready = rig
        .log
        .iter()
        .position(|a| matches!(a, Activity::Ready(c) if *c == conn));
    assert!(
        first_ready.is_some(),
        "{kind}: input was fed but no Ready({conn:?}) reported"
    );
    assert!(connected_at < first_ready, "{kind}: Ready before Connected");

    let probe = rig.remove(conn);
    assert_eq!(probe.tag, 1);
    rig.run_until("the peer sees EOF after remove", PATIENCE, |_| peer.is_finished());
    assert_eq!(join(kind, peer), total, "{kind}: the peer echoed a different amount");
    rig.check_contract();
}

/// Echo round trip where the driver listens and accepts; the echo session finishes on
/// EOF, so the driver must flush the echo, then close (the client reads to EOF).
fn echo_via_accept(kind: DriverKind) {
    let mut rig = Rig::new(kind);
    let listener = rig.listen(|_, _, _| Probe::echo(2));
    let addr = rig.listener_addr(listener);
    let msg = pattern(3, 0, 300_000);
    let sent = msg.clone();
    let client = spawn_peer("echo-client", move || {
        let mut s = TcpStream::connect(addr).map_err(io_err("connect"))?;
        set_timeouts(&s);
        let local = s.local_addr().map_err(io_err("local_addr"))?;
        s.write_all(&sent).map_err(io_err("write"))?;
        s.shutdown(Shutdown::Write).map_err(io_err("shutdown"))?;
        let mut back = Vec::new();
        s.read_to_end(&mut back).map_err(io_err("read"))?;
        Ok((local, back))
    });
    rig.run_until("the client reads the echo to EOF", PATIENCE, |_| client.is_finished());
    let (client_addr, back) = join(kind, client);
    assert_eq!(back.len(), msg.len(), "{kind}: echo length");
    assert!(back == msg, "{kind}: echo differs");

    let accepted = rig.accepted();
    assert_eq!(accepted.len(), 1, "{kind}: Accepted reported {} times", accepted.len());
    let (l, conn, peer) = accepted[0];
    assert_eq!(l, listener);
    assert_eq!(peer, client_addr, "{kind}: Accepted names the wrong peer");
    rig.run_until("Closed for the accepted connection", PATIENCE, |r| {
        r.closed(conn).is_some()
    });
    if let Some(Some(e)) = rig.closed(conn) {
        panic!("{kind}: a clean close reported an error: {e}");
    }
    let probe = rig.probe(conn);
    assert_eq!(
        (probe.received, probe.eofs, probe.input_after_eof),
        (msg.len() as u64, 1, 0)
    );
    rig.remove(conn);

    rig.driver
        .close_listener(listener)
        .unwrap_or_else(|e| panic!("{kind}: close_listener: {e}"));
    rig.turn_for(Duration::from_millis(50));
    assert!(
        rig.driver.listener_addr(listener).is_err(),
        "{kind}: listener_addr after close_listener"
    );
    match TcpStream::connect(addr) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        other => panic!("{kind}: connecting to a closed listener gave {other:?}, not ConnectionRefused"),
    }
    rig.check_contract();
}

/// 64 MiB through one connection, out as a mix of small copied pieces and large shared
/// segments, echoed by the peer and checked byte for byte on the way back: every send
/// and every receive is partial many times over.
fn partial_writes(kind: DriverKind) {
    const TOTAL: usize = 64 * MIB;
    const SEED: u64 = 4;
    let mut rig = Rig::new(kind);
    let (addr, peer) = spawn_echo_peer();
    let mut probe = Probe::collect(4).checking(SEED);
    let mut offset = 0;
    let mut i = 0;
    while offset < TOTAL {
        let small = (1 + (i * 7919) % 3000).min(TOTAL - offset);
        probe.arena.put_slice(&pattern(SEED, offset as u64, small));
        offset += small;
        let big = (MIB + 13 * i).min(TOTAL - offset);
        probe.arena.put_shared(Bytes::from(pattern(SEED, offset as u64, big)));
        offset += big;
        i += 1;
    }
    assert_eq!(probe.arena.len(), TOTAL);
    let start = Instant::now();
    let conn = rig.connect(addr, probe);
    rig.run_until("64 MiB echoed", PATIENCE * 6, |r| {
        let p = r.probe(conn);
        p.received >= TOTAL as u64 || p.first_mismatch().is_some() || p.eofs > 0
    });
    let elapsed = start.elapsed();
    let probe = rig.probe(conn);
    assert_eq!(
        probe.first_mismatch(),
        None,
        "{kind}: echoed stream differs at this offset"
    );
    assert_eq!(
        probe.received, TOTAL as u64,
        "{kind}: received {} of {TOTAL}",
        probe.received
    );
    assert!(
        probe.arena.is_empty(),
        "{kind}: {} bytes still queued",
        probe.arena.len()
    );
    eprintln!(
        "{kind}: 64 MiB each way in {elapsed:?} ({} inputs, {:.0} MiB/s, debug build)",
        probe.inputs,
        64.0 / elapsed.as_secs_f64()
    );
    rig.remove(conn);
    rig.run_until("the peer sees EOF", PATIENCE, |_| peer.is_finished());
    assert_eq!(join(kind, peer), TOTAL as u64);
    rig.check_contract();
}

/// The peer closes in the middle of a frame: every byte before the close reaches the
/// session, then `handle_eof` once, then `Closed` without an error; the session stays
/// in the driver until `remove`. Once on an accepted connection (cut after a complete
/// header), once on a connected one (cut inside the header).
fn peer_closes_mid_frame(kind: DriverKind) {
    let mut rig = Rig::new(kind);

    // Accepted: the client sends four frames, then a header announcing 1000 bytes and
    // only 400 of them, and closes.
    let listener = rig.listen(|_, _, _| Probe::framed(5));
    let addr = rig.listener_addr(listener);
    let payloads: Vec<Vec<u8>> = [0, 1, 5_000, 300_000].iter().map(|&n| pattern(5, 0, n)).collect();
    let mut wire: Vec<u8> = payloads.iter().flat_map(|p| frame(p)).collect();
    wire.extend_from_slice(&1000u32.to_be_bytes());
    wire.extend_from_slice(&pattern(6, 0, 400));
    let wire_len = wire.len();
    let client = spawn_peer("framed-client", move || {
        let mut s = TcpStream::connect(addr).map_err(io_err("connect"))?;
        s.write_all(&wire).map_err(io_err("write"))?;
        Ok(())
    });
    rig.run_until("Accepted", PATIENCE, |r| !r.accepted().is_empty());
    let conn = rig.accepted()[0].1;
    rig.run_until("Closed after the cut frame", PATIENCE, |r| r.closed(conn).is_some());
    join(kind, client);
    if let Some(Some(e)) = rig.closed(conn) {
        panic!("{kind}: the peer closed cleanly but Closed carries an error: {e}");
    }
    // Checked at the turn that reported Closed: nothing may arrive after it.
    let probe = rig.probe(conn);
    assert_eq!(probe.received, wire_len as u64, "{kind}: bytes lost before the close");
    assert_eq!(probe.frames, payloads, "{kind}: frames before the cut");
    assert_eq!(
        probe.cut,
        Some(Cut {
            buffered: 404,
            announced: Some(1000)
        }),
        "{kind}: the cut frame"
    );
    assert_eq!(probe.eofs, 1, "{kind}: handle_eof calls");

    // Connected: the server sends one frame and two bytes of the next header.
    let server = bind_loopback();
    let server_addr = server.local_addr().expect("local_addr");
    let frame7 = pattern(7, 0, 7);
    let mut wire2 = frame(&frame7);
    wire2.extend_from_slice(&[0, 0]);
    let wire2_len = wire2.len();
    let server = spawn_peer("framed-server", move || {
        let (mut s, _) = server.accept().map_err(io_err("accept"))?;
        s.write_all(&wire2).map_err(io_err("write"))?;
        Ok(())
    });
    let conn2 = rig.connect(server_addr, Probe::framed(6));
    rig.run_until("Closed after the cut header", PATIENCE, |r| r.closed(conn2).is_some());
    join(kind, server);
    let probe = rig.probe(conn2);
    assert_eq!(probe.received, wire2_len as u64, "{kind}: bytes lost before the close");
    assert_eq!(probe.frames, vec![frame7], "{kind}: frame before the cut");
    assert_eq!(
        probe.cut,
        Some(Cut {
            buffered: 2,
            announced: None
        }),
        "{kind}: the cut header"
    );
    assert_eq!(probe.eofs, 1, "{kind}: handle_eof calls");

    // Nothing more happens to closed connections; their sessions wait for remove.
    rig.turn_for(Duration::from_millis(100));
    for c in [conn, conn2] {
        let p = rig.probe(c);
        assert_eq!((p.eofs, p.input_after_eof), (1, 0), "{kind}: {c:?} after Closed");
        assert_eq!(
            rig.count(|a| matches!(a, Activity::Closed { conn, .. } if *conn == c)),
            1
        );
    }
    assert_eq!(rig.remove(conn).tag, 5);
    assert_eq!(rig.remove(conn2).tag, 6);
    rig.check_contract();
}

/// The soft open-file limit of this process, from /proc/self/limits.
fn open_file_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// 2,000 connections at once, both ends in this driver: each client sends its own
/// message to an echo listener and must get exactly that back.
///
/// The open-file limit here and in CI is 20,000 per process (`ulimit -n`); this test
/// holds 4,000 sockets (both ends of 2,000 connections), and the other tests, which run
/// in parallel threads of the same process (this test for the other driver included),
/// hold a few thousand more at most.
fn many_connections(kind: DriverKind) {
    const N: u64 = 2_000;
    const MSG_LEN: usize = 13 + 48;
    if let Some(limit) = open_file_limit() {
        assert!(
            limit >= 4 * N + 1_000,
            "the open-file limit is {limit}; this suite needs 20,000 (ulimit -n 20000)"
        );
    }
    let mut rig = Rig::new(kind);
    let listener = rig.listen(|_, _, _| Probe::echo(u64::MAX));
    let addr = rig.listener_addr(listener);
    let mut clients = Vec::new();
    for i in 0..N {
        let mut msg = format!("client {i:05} ").into_bytes();
        msg.extend_from_slice(&pattern(100 + i, 0, 48));
        assert_eq!(msg.len(), MSG_LEN);
        let conn = rig.connect(addr, Probe::collect(i).sending(&msg));
        clients.push((conn, msg));
    }
    let ids: HashSet<ConnId> = clients.iter().map(|(c, _)| *c).collect();
    assert_eq!(ids.len(), N as usize, "{kind}: connect returned duplicate ids");
    let start = Instant::now();
    // Generous: 2,000 connects in one burst overrun the listener's backlog of 1,024
    // while accepts lag, and a dropped SYN is retried after 1, 3, 7, 15, 31, 63 s; on
    // a loaded machine (CI's two cores, other suites in parallel) some needed 80 s.
    rig.run_until("every client echoed", PATIENCE * 8, |r| {
        clients.iter().all(|(c, msg)| r.probe(*c).received >= msg.len() as u64)
    });
    eprintln!(
        "{kind}: {N} connections connected, accepted and echoed in {:?}",
        start.elapsed()
    );
    for (conn, msg) in &clients {
        let p = rig.probe(*conn);
        assert_eq!(p.stored(), &msg[..], "{kind}: {conn:?} got another connection's bytes");
        assert_eq!(p.eofs, 0);
    }
    assert_eq!(rig.count(|a| matches!(a, Activity::Connected(_))), N as usize);
    let servers: Vec<ConnId> = rig.accepted().iter().map(|&(_, c, _)| c).collect();
    assert_eq!(servers.len(), N as usize, "{kind}: Accepted count");
    assert!(
        servers.iter().all(|c| !ids.contains(c)),
        "{kind}: an accepted id equals a connected one"
    );

    for (conn, _) in &clients {
        rig.remove(*conn);
    }
    rig.run_until("every server side sees EOF and closes", PATIENCE * 2, |r| {
        servers.iter().all(|c| r.closed(*c).is_some())
    });
    for c in &servers {
        let p = rig.probe(*c);
        assert_eq!((p.received, p.eofs), (MSG_LEN as u64, 1), "{kind}: server side {c:?}");
        assert!(
            matches!(rig.closed(*c), Some(None)),
            "{kind}: {c:?} closed with {:?}",
            rig.closed(*c)
        );
    }
    for c in &servers {
        rig.remove(*c);
    }
    rig.driver
        .close_listener(listener)
        .unwrap_or_else(|e| panic!("{kind}: close_listener: {e}"));
    rig.check_contract();
}

/// Timers without any I/O: a timeout 50 ms ahead fires once and not early, `turn(None)`
/// wakes for it; a timer moved later through `session_for_output` does not fire at the old
/// instant; a cancelled one does not fire at all.
fn timers(kind: DriverKind) {
    let mut rig = Rig::new(kind);
    let (ours, _theirs) = std_pair();
    let t0 = Instant::now();
    let due = t0 + Duration::from_millis(50);
    let conn = rig.adopt(ours, Probe::collect(8).with_timer(due));
    {
        let _dog = watchdog(format!("{kind}: timers: turn(None) with a 50 ms timer"), PATIENCE);
        while rig.probe(conn).fired.is_empty() {
            let new = rig.turn(None);
            assert!(!new.is_empty(), "{kind}: turn(None) returned with no activity");
        }
    }
    let fired = rig.probe(conn).fired[0];
    assert_eq!(fired.due, due);
    assert!(fired.now >= due && fired.wall >= due, "{kind}: fired early: {fired:?}");
    let late = fired.wall - due;
    assert!(late < Duration::from_millis(500), "{kind}: fired {late:?} late");
    assert!(
        rig.log.iter().any(|a| matches!(a, Activity::Ready(c) if *c == conn)),
        "{kind}: no Ready for the timer"
    );

    // A deadline with nothing due: turn returns at the deadline, not before, empty.
    let deadline = Instant::now() + Duration::from_millis(150);
    let new = rig.turn(Some(deadline)).len();
    let back = Instant::now();
    assert_eq!(new, 0, "{kind}: activity with nothing due");
    assert!(
        back >= deadline,
        "{kind}: an empty turn returned {:?} before its deadline",
        deadline - back
    );
    assert_eq!(rig.probe(conn).fired.len(), 1, "{kind}: the timer fired again");

    // Moved later: armed 100 ms ahead, moved to 250 ms ahead before it fires.
    arm_timer(&mut rig, conn, Duration::from_millis(100));
    let fired_before = rig.probe(conn).fired.len();
    let moved = Instant::now() + Duration::from_millis(250);
    rig.probe_mut(conn).timer = Some(moved);
    rig.run_until("the moved timer", PATIENCE, |r| {
        r.probe(conn).fired.len() > fired_before
    });
    let fired = rig.probe(conn).fired[fired_before];
    assert_eq!(fired.due, moved, "{kind}: fired for another instant than the moved one");
    assert!(fired.wall >= moved, "{kind}: the moved timer fired early");

    // Cancelled: armed 100 ms ahead, then cleared.
    arm_timer(&mut rig, conn, Duration::from_millis(100));
    let fired_before = rig.probe(conn).fired.len();
    rig.probe_mut(conn).timer = None;
    rig.turn_for(Duration::from_millis(250));
    let probe = rig.probe(conn);
    assert_eq!(probe.fired.len(), fired_before, "{kind}: a cancelled timer fired");
    assert_eq!(
        probe.bad_timeouts.0, 0,
        "{kind}: handle_timeout called early or with no timer: {:?}",
        probe.bad_timeouts
    );
    assert_eq!((probe.received, probe.eofs), (0, 0));
    rig.remove(conn);
    rig.check_contract();
}

/// Arms the probe's timer `ahead` from now and turns once, briefly, so the driver arms it
/// too. On a loaded machine that turn can run past the instant (the timer then fires,
/// late but legitimately); then it starts again, so that on return the timer is armed
/// in the driver and at least `ahead / 2` away.
fn arm_timer(rig: &mut Rig, conn: ConnId, ahead: Duration) -> Instant {
    for _ in 0..10 {
        let due = Instant::now() + ahead;
        rig.probe_mut(conn).timer = Some(due);
        rig.turn(Some(Instant::now() + Duration::from_millis(1)));
        if rig.probe(conn).timer == Some(due) && Instant::now() + ahead / 2 < due {
            return due;
        }
        rig.run_until("the timer armed in a slow turn", PATIENCE, |r| {
            r.probe(conn).timer.is_none()
        });
    }
    panic!(
        "{}: ten turns in a row overran {ahead:?}: the machine is too loaded",
        rig.kind
    );
}

/// A timer changed through `session_for_output` after the driver armed it, when the old
/// instant passes before the next turn: the driver must go by the session's new
/// `poll_timeout` (the contract: `handle_timeout` once the instant `poll_timeout`
/// returns has been reached), not fire the instant it armed before.
fn timer_changed_between_turns(kind: DriverKind) {
    let mut rig = Rig::new(kind);
    let (ours, _theirs) = std_pair();
    let conn = rig.adopt(ours, Probe::collect(16));

    // Moved later. (On a loaded machine `arm_timer` may have let a timer fire late,
    // legitimately; only firings from here on count.)
    arm_timer(&mut rig, conn, Duration::from_millis(20));
    let fired_before = rig.probe(conn).fired.len();
    let moved = Instant::now() + Duration::from_millis(500);
    rig.probe_mut(conn).timer = Some(moved);
    thread::sleep(Duration::from_millis(50));
    rig.turn_for(Duration::from_millis(50));
    let p = rig.probe(conn);
    assert_eq!(
        (p.bad_timeouts.0, p.fired.len() - fired_before),
        (0, 0),
        "{kind}: the driver fired the instant it had armed, not the one the session moved it to: {:?}",
        p.bad_timeouts
    );
    rig.run_until("the moved timer", PATIENCE, |r| {
        r.probe(conn).fired.len() > fired_before
    });
    assert_eq!(rig.probe(conn).fired[fired_before].due, moved);

    // Cancelled.
    arm_timer(&mut rig, conn, Duration::from_millis(20));
    let fired_before = rig.probe(conn).fired.len();
    rig.probe_mut(conn).timer = None;
    thread::sleep(Duration::from_millis(50));
    rig.turn_for(Duration::from_millis(50));
    let p = rig.probe(conn);
    assert_eq!(
        (p.bad_timeouts.0, p.fired.len() - fired_before),
        (0, 0),
        "{kind}: the driver fired a timer the session had cancelled: {:?}",
        p.bad_timeouts
    );
    rig.remove(conn);
    rig.check_contract();
}

/// Connecting to a port nobody listens on: `connect` returns an id, the failure comes
/// as `Closed` with `ConnectionRefused`, after `handle_eof`; never `Connected`.
fn connect_refused(kind: DriverKind) {
    let mut rig = Rig::new(kind);
    let addr = bind_loopback().local_addr().expect("local_addr"); // dropped: nothing listens
    let conn = rig.connect(addr, Probe::collect(9).sending(b"never sent"));
    rig.run_until("Closed for a refused connect", PATIENCE, |r| r.closed(conn).is_some());
    match rig.closed(conn) {
        Some(Some(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {}
        other => panic!("{kind}: refused connect reported {other:?}"),
    }
    assert!(
        !rig.conns[&conn].connected,
        "{kind}: Connected for a refused connection"
    );
    let probe = rig.probe(conn);
    assert_eq!(
        (probe.eofs, probe.received),
        (1, 0),
        "{kind}: (handle_eof calls, bytes)"
    );
    rig.remove(conn);
    rig.check_contract();
}

/// `adopt` takes a connected, blocking std stream: output queued before adopt goes out,
/// input comes in, the stream was made non-blocking (a turn with a silent peer returns
/// at its deadline), and the peer's close arrives as EOF and `Closed`.
fn adopt(kind: DriverKind) {
    let mut rig = Rig::new(kind);
    let (ours, mut theirs) = std_pair();
    let (go, wait) = mpsc::channel::<()>();
    let peer = spawn_peer("adopt-peer", move || {
        let mut ping = [0; 4];
        theirs.read_exact(&mut ping).map_err(io_err("read"))?;
        theirs.write_all(b"pong").map_err(io_err("write"))?;
        wait.recv().map_err(|e| format!("wait: {e}"))?;
        Ok(ping)
    });
    let conn = rig.adopt(ours, Probe::collect(10).sending(b"ping"));
    rig.run_until("pong", PATIENCE, |r| r.probe(conn).received >= 4);
    assert_eq!(rig.probe(conn).stored(), b"pong");
    assert_eq!(
        rig.count(|a| matches!(a, Activity::Connected(_))),
        0,
        "{kind}: Connected for adopt"
    );

    let start = Instant::now();
    rig.turn(Some(start + Duration::from_millis(100)));
    let took = start.elapsed();
    assert!(
        took < Duration::from_secs(2),
        "{kind}: a turn over a silent adopted socket took {took:?} (blocking?)"
    );

    go.send(()).expect("peer waiting");
    assert_eq!(&join(kind, peer), b"ping");
    rig.run_until("Closed after the peer closed", PATIENCE, |r| r.closed(conn).is_some());
    assert!(matches!(rig.closed(conn), Some(None)), "{kind}: {:?}", rig.closed(conn));
    assert_eq!(rig.probe(conn).eofs, 1);
    rig.remove(conn);
    rig.check_contract();
}

/// `remove` while a large send is stuck (the peer does not read): the driver returns the
/// session at once, reports nothing more about the id, closes the socket once the kernel
/// is done with it (the peer, reading at last, gets a prefix of the stream and then EOF
/// or a reset), and keeps working.
fn remove_during_send(kind: DriverKind) {
    const TOTAL: usize = 32 * MIB;
    const SEED: u64 = 11;
    let mut rig = Rig::new(kind);
    let server = bind_loopback();
    let addr = server.local_addr().expect("local_addr");
    let (go, wait) = mpsc::channel::<()>();
    let peer = spawn_peer("stalled-peer", move || {
        let (mut s, _) = server.accept().map_err(io_err("accept"))?;
        set_timeouts(&s);
        wait.recv().map_err(|e| format!("wait: {e}"))?;
        let mut got = 0u64;
        let mut buf = vec![0; 256 * 1024];
        let mut expected = Vec::new();
        loop {
            let n = match s.read(&mut buf) {
                Ok(0) => return Ok((got, false)),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return Ok((got, true)),
                Err(e) => return Err(format!("read after {got} bytes: {e}")),
            };
            expected.resize(n, 0);
            fill_pattern(SEED, got, &mut expected);
            if buf[..n] != expected[..] {
                return Err(format!(
                    "bytes {got}..{} are not the stream sent (a reused buffer?)",
                    got + n as u64
                ));
            }
            got += n as u64;
        }
    });
    let mut probe = Probe::collect(11);
    probe.arena.put_shared(Bytes::from(pattern(SEED, 0, TOTAL)));
    let conn = rig.connect(addr, probe);
    rig.run_until("Connected", PATIENCE, |r| r.conns[&conn].connected);
    rig.turn_for(Duration::from_millis(200));
    let left = rig.probe(conn).arena.len();
    assert!(left > 0, "{kind}: 32 MiB went out to a peer that reads nothing");

    let probe = rig.remove(conn);
    assert_eq!(probe.tag, 11, "{kind}: remove returned another session");
    go.send(()).expect("peer waiting");
    rig.run_until("the peer sees the socket closed", PATIENCE, |_| peer.is_finished());
    let (got, reset) = join(kind, peer);
    eprintln!(
        "{kind}: removed with {left} bytes queued; the peer then read {got} bytes and {}",
        if reset { "a reset" } else { "EOF" }
    );
    assert!(got <= TOTAL as u64);

    // The driver goes on: a new connection works and gets a fresh id.
    let (addr, peer) = spawn_echo_peer();
    let next = rig.connect(addr, Probe::collect(12).sending(b"still alive"));
    assert_ne!(next, conn, "{kind}: the removed id was reused");
    rig.run_until("echo after remove", PATIENCE, |r| r.probe(next).received >= 11);
    assert_eq!(rig.probe(next).stored(), b"still alive");
    rig.remove(next);
    rig.run_until("echo peer done", PATIENCE, |_| peer.is_finished());
    join(kind, peer);
    rig.check_contract();
}

/// `wants_read` is backpressure: while it is false the driver feeds nothing and the
/// peer's writes stall (the driver does not buffer the stream for it); when it turns
/// true again everything arrives, in order, byte for byte.
fn wants_read_backpressure(kind: DriverKind) {
    const TOTAL: usize = 64 * MIB;
    const SEED: u64 = 13;
    let mut rig = Rig::new(kind);
    let (ours, mut theirs) = std_pair();
    let written = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (w, st) = (written.clone(), stop.clone());
    let peer = spawn_peer("writer", move || {
        let mut chunk = vec![0; 64 * 1024];
        let mut off = 0;
        while off < TOTAL && !st.load(Ordering::Relaxed) {
            let n = chunk.len().min(TOTAL - off);
            fill_pattern(SEED, off as u64, &mut chunk[..n]);
            theirs.write_all(&chunk[..n]).map_err(io_err("write"))?;
            off += n;
            w.store(off as u64, Ordering::Relaxed);
        }
        Ok(())
    });
    let conn = rig.adopt(ours, Probe::collect(13).checking(SEED).paused());

    // Paused from the start: nothing is fed, the writer stalls.
    rig.turn_for(Duration::from_millis(300));
    let stalled = written.load(Ordering::Relaxed);
    assert_eq!(
        rig.probe(conn).received,
        0,
        "{kind}: input fed while wants_read was false"
    );
    rig.turn_for(Duration::from_millis(200));
    assert_eq!(
        rig.probe(conn).received,
        0,
        "{kind}: input fed while wants_read was false"
    );
    assert!(stalled < TOTAL as u64, "{kind}: the writer never stalled");
    assert_eq!(
        written.load(Ordering::Relaxed),
        stalled,
        "{kind}: the writer kept going while not read"
    );

    // Resume, and let the session pause itself after 1 MiB.
    {
        let p = rig.probe_mut(conn);
        p.reading = true;
        p.pause_at = Some(MIB as u64);
    }
    rig.run_until("the session pauses itself", PATIENCE, |r| !r.probe(conn).reading);
    rig.turn_for(Duration::from_millis(300));
    let at_pause = rig.probe(conn).received;
    let written_at_pause = written.load(Ordering::Relaxed);
    rig.turn_for(Duration::from_millis(300));
    let p = rig.probe(conn);
    assert_eq!(
        p.input_while_paused, 0,
        "{kind}: bytes fed after handle_input turned wants_read false (received {at_pause} by then)"
    );
    assert_eq!(
        p.received, at_pause,
        "{kind}: input fed after the session paused itself"
    );
    assert!(
        at_pause < TOTAL as u64,
        "{kind}: the whole stream arrived despite the pause"
    );
    assert_eq!(
        written.load(Ordering::Relaxed),
        written_at_pause,
        "{kind}: the writer kept going while paused"
    );
    eprintln!(
        "{kind}: paused at 1 MiB, {} bytes fed by then; the writer stalled at {written_at_pause}",
        at_pause
    );

    // Resume for good: everything arrives intact.
    rig.probe_mut(conn).reading = true;
    rig.run_until("the rest of the stream", PATIENCE * 3, |r| {
        let p = r.probe(conn);
        p.received >= TOTAL as u64 || p.first_mismatch().is_some()
    });
    let p = rig.probe(conn);
    assert_eq!(p.first_mismatch(), None, "{kind}: stream differs at this offset");
    assert_eq!(p.received, TOTAL as u64);
    stop.store(true, Ordering::Relaxed);
    join(kind, peer);
    rig.run_until("Closed", PATIENCE, |r| r.closed(conn).is_some());
    rig.remove(conn);
    rig.check_contract();
}

/// Received `Bytes` are views into the driver's receive buffers: while a session holds
/// them, the driver must not reuse their memory (checked when they are dropped, after
/// more data has flowed), and when the session holds every buffer the driver has, the
/// driver waits (io_uring: `ENOBUFS`) and resumes once views drop, losing nothing.
fn held_views_stay_intact(kind: DriverKind) {
    const TOTAL: usize = 32 * MIB;
    const SEED: u64 = 18;
    let mut rig = Rig::new(kind);
    let (ours, mut theirs) = std_pair();
    let mut probe = Probe::collect(18).checking(SEED);
    probe.hold = Some(usize::MAX);
    let conn = rig.adopt(ours, probe);
    let peer = spawn_peer("writer", move || {
        let mut chunk = vec![0; 256 * 1024];
        let mut off = 0;
        while off < TOTAL {
            let n = chunk.len().min(TOTAL - off);
            fill_pattern(SEED, off as u64, &mut chunk[..n]);
            theirs.write_all(&chunk[..n]).map_err(io_err("write"))?;
            off += n;
        }
        Ok(())
    });

    // Hold everything: either all of it arrives (a driver that allocates more buffers)
    // or input stops once every receive buffer is held.
    let mut last = (0, Instant::now());
    rig.run_until("all input, or a stall with every view held", PATIENCE * 2, |r| {
        let received = r.probe(conn).received;
        if received != last.0 {
            last = (received, Instant::now());
        }
        received >= TOTAL as u64 || last.1.elapsed() > Duration::from_millis(300)
    });
    let (held_bytes, held_views) = {
        let p = rig.probe_mut(conn);
        let held = (p.received, p.held.len());
        p.release_held();
        held
    };
    eprintln!("{kind}: holding every view, input went to {held_bytes} bytes in {held_views} views");
    assert!(held_bytes > 0, "{kind}: nothing arrived");
    assert_eq!(
        rig.probe(conn).held_mismatch,
        None,
        "{kind}: a held view changed at this offset"
    );

    // Released: the rest arrives, in windows of 32 held views.
    rig.probe_mut(conn).hold = Some(32);
    rig.run_until("the rest after the views dropped", PATIENCE * 3, |r| {
        r.probe(conn).received >= TOTAL as u64
    });
    join(kind, peer);
    let p = rig.probe_mut(conn);
    p.release_held();
    assert_eq!(p.first_mismatch(), None, "{kind}: stream differs at this offset");
    assert_eq!(p.held_mismatch, None, "{kind}: a held view changed at this offset");
    assert_eq!(p.received, TOTAL as u64);
    rig.run_until("Closed", PATIENCE, |r| r.closed(conn).is_some());
    rig.remove(conn);
    rig.check_contract();
}

/// The smallest form of backpressure: the session turns `wants_read` false in its first
/// `handle_input`; no further input may reach it, however much the peer already sent
/// (even bytes the driver has already received), until it turns true again.
fn wants_read_false_stops_input(kind: DriverKind) {
    const TOTAL: usize = 4 * MIB;
    const SEED: u64 = 17;
    let mut rig = Rig::new(kind);
    let (ours, mut theirs) = std_pair();
    let mut probe = Probe::collect(17).checking(SEED);
    probe.pause_at = Some(1);
    let conn = rig.adopt(ours, probe);
    let peer = spawn_peer("burst-writer", move || {
        theirs.write_all(&pattern(SEED, 0, TOTAL)).map_err(io_err("write"))?;
        Ok(theirs)
    });
    rig.run_until("the first input", PATIENCE, |r| r.probe(conn).inputs > 0);
    rig.turn_for(Duration::from_millis(200));
    let p = rig.probe(conn);
    assert_eq!(
        (p.inputs, p.input_while_paused),
        (1, 0),
        "{kind}: (handle_input calls, bytes fed while wants_read was false) after the session paused itself"
    );
    rig.probe_mut(conn).reading = true;
    rig.run_until("the rest after resuming", PATIENCE, |r| {
        r.probe(conn).received >= TOTAL as u64
    });
    assert_eq!(
        rig.probe(conn).first_mismatch(),
        None,
        "{kind}: stream differs at this offset"
    );
    let theirs = join(kind, peer);
    drop(theirs);
    rig.run_until("Closed", PATIENCE, |r| r.closed(conn).is_some());
    rig.remove(conn);
    rig.check_contract();
}

/// A deadline already past: `turn` only submits and reaps what is ready, without
/// blocking, even with a listener, an idle connection and a far timer in the driver; and
/// a body that spins on such turns still gets its input.
fn turn_past_deadline(kind: DriverKind) {
    let mut rig = Rig::new(kind);
    let _listener = rig.listen(|_, _, _| Probe::echo(14));
    let (ours, mut theirs) = std_pair();
    let conn = rig.adopt(
        ours,
        Probe::collect(14).with_timer(Instant::now() + Duration::from_secs(3600)),
    );
    let mut worst = Duration::ZERO;
    let start = Instant::now();
    for i in 0..200 {
        let t = Instant::now();
        let deadline = if i % 2 == 0 { t - Duration::from_secs(1) } else { t };
        rig.turn(Some(deadline));
        worst = worst.max(t.elapsed());
    }
    let total = start.elapsed();
    assert!(
        worst < Duration::from_millis(200),
        "{kind}: a turn with a past deadline took {worst:?}"
    );
    assert!(
        total < Duration::from_secs(2),
        "{kind}: 200 turns with past deadlines took {total:?}"
    );

    theirs.write_all(b"hello").expect("peer write");
    thread::sleep(Duration::from_millis(20));
    let mut spins = 0;
    while rig.probe(conn).received < 5 {
        spins += 1;
        assert!(
            spins <= 500,
            "{kind}: 500 turns with past deadlines never delivered 5 ready bytes"
        );
        rig.turn(Some(Instant::now() - Duration::from_millis(1)));
        thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(rig.probe(conn).stored(), b"hello");
    rig.remove(conn);
    rig.check_contract();
}

/// A session that finishes (`is_closed`) with output queued: the driver sends all of it,
/// then closes the socket (the peer reads it all, then EOF) and reports `Closed`.
fn session_closes_after_flush(kind: DriverKind) {
    const TOTAL: usize = 8 * MIB;
    const SEED: u64 = 15;
    let mut rig = Rig::new(kind);
    let server = bind_loopback();
    let addr = server.local_addr().expect("local_addr");
    let peer = spawn_peer("reader", move || {
        let (mut s, _) = server.accept().map_err(io_err("accept"))?;
        set_timeouts(&s);
        let mut all = Vec::new();
        s.read_to_end(&mut all).map_err(io_err("read"))?;
        Ok(all)
    });
    let conn = rig.connect(addr, Probe::collect(15).sending(b"hello "));
    rig.run_until("Connected", PATIENCE, |r| r.conns[&conn].connected);
    {
        let p = rig.probe_mut(conn);
        p.arena.put_shared(Bytes::from(pattern(SEED, 0, TOTAL)));
        p.arena.put_slice(b" bye");
        p.finished = true;
    }
    rig.run_until("Closed", PATIENCE, |r| r.closed(conn).is_some());
    assert!(matches!(rig.closed(conn), Some(None)), "{kind}: {:?}", rig.closed(conn));
    rig.run_until("the peer reads to EOF", PATIENCE, |_| peer.is_finished());
    let all = join(kind, peer);
    assert_eq!(all.len(), 6 + TOTAL + 4, "{kind}: the peer got {} bytes", all.len());
    assert!(all.starts_with(b"hello ") && all.ends_with(b" bye"));
    assert!(
        all[6..6 + TOTAL] == pattern(SEED, 0, TOTAL)[..],
        "{kind}: payload differs"
    );
    assert!(rig.probe(conn).arena.is_empty());
    rig.remove(conn);
    rig.check_contract();
}

/// `Activity::Sent` is how a body waiting for its output to drain learns that it did:
/// a session asks (`handle_sent` answers true once), and the turn that sees the kernel
/// take some of its arena reports it. Here the peer reads nothing at first, so 16 MiB
/// stay queued; once it reads, every `turn(None)` (no deadline, no input, no timer: only
/// a report can end it) returns with `Sent` and a shorter arena, until it is empty.
/// Without the report the first such turn blocks for ever (the watchdog aborts).
fn sent_wakes_a_waiting_sender(kind: DriverKind) {
    const TOTAL: usize = 16 * MIB;
    const SEED: u64 = 21;
    let mut rig = Rig::new(kind);
    let server = bind_loopback();
    let addr = server.local_addr().expect("local_addr");
    let (go, wait) = mpsc::channel::<()>();
    let peer = spawn_peer("late-reader", move || {
        let (mut s, _) = server.accept().map_err(io_err("accept"))?;
        set_timeouts(&s);
        wait.recv().map_err(|e| format!("wait: {e}"))?;
        let mut got = 0u64;
        let mut buf = vec![0; 256 * 1024];
        let mut expected = Vec::new();
        loop {
            let n = s.read(&mut buf).map_err(io_err("read"))?;
            if n == 0 {
                return Ok(got);
            }
            expected.resize(n, 0);
            fill_pattern(SEED, got, &mut expected);
            if buf[..n] != expected[..] {
                return Err(format!("bytes {got}..{} are not the stream sent", got + n as u64));
            }
            got += n as u64;
        }
    });
    let mut probe = Probe::collect(21);
    probe.arena.put_shared(Bytes::from(pattern(SEED, 0, TOTAL)));
    let conn = rig.connect(addr, probe);
    rig.run_until("Connected", PATIENCE, |r| r.conns[&conn].connected);
    rig.turn_for(Duration::from_millis(200));
    assert!(
        !rig.probe(conn).arena.is_empty(),
        "{kind}: 16 MiB went out to a peer that reads nothing"
    );
    go.send(()).expect("peer waiting");
    let _dog = watchdog(format!("{kind}: sent_wakes_a_waiting_sender"), PATIENCE * 3);
    let mut reports = 0;
    while !rig.probe(conn).arena.is_empty() {
        let before = {
            let p = rig.probe_mut(conn);
            p.report_sent = true;
            p.arena.len()
        };
        let activities = rig.turn(None);
        assert!(
            activities.iter().any(|a| matches!(a, Activity::Sent(c) if *c == conn)),
            "{kind}: a turn with no deadline returned without Sent: {activities:?}"
        );
        let after = rig.probe(conn).arena.len();
        assert!(after < before, "{kind}: Sent, but the arena stayed at {after} bytes");
        reports += 1;
    }
    eprintln!("{kind}: 16 MiB drained in {reports} Sent reports");
    rig.remove(conn);
    rig.run_until("the peer sees EOF", PATIENCE, |_| peer.is_finished());
    assert_eq!(
        join(kind, peer),
        TOTAL as u64,
        "{kind}: the peer got another stream length"
    );
    rig.check_contract();
}

/// A session that never asks is never reported `Sent`, however much it writes (an
/// echo of 4 MiB both ways); one that asks once is reported once, with the next write
/// (the rig checks both on every turn: a `Sent` exactly for each true `handle_sent`).
fn sent_only_when_asked(kind: DriverKind) {
    const TOTAL: usize = 4 * MIB;
    let mut rig = Rig::new(kind);
    let (addr, peer) = spawn_echo_peer();
    let conn = rig.connect(addr, Probe::collect(22).sending(&pattern(22, 0, TOTAL)));
    rig.run_until("4 MiB echoed", PATIENCE, |r| r.probe(conn).received >= TOTAL as u64);
    let sent = |r: &Rig| r.count(|a| matches!(a, Activity::Sent(c) if *c == conn));
    assert_eq!(sent(&rig), 0, "{kind}: Sent for a session that never asked");
    rig.probe_mut(conn).report_sent = true;
    rig.turn_for(Duration::from_millis(100));
    assert_eq!(sent(&rig), 0, "{kind}: Sent with nothing written");
    rig.probe_mut(conn).arena.put_slice(b"once more");
    rig.run_until("Sent", PATIENCE, |r| sent(r) == 1);
    rig.probe_mut(conn).arena.put_slice(b" and again");
    rig.run_until("the echo", PATIENCE, |r| r.probe(conn).received >= TOTAL as u64 + 19);
    assert_eq!(sent(&rig), 1, "{kind}: Sent again without a new request");
    assert_eq!(rig.probe(conn).sent_answers, 1);
    rig.remove(conn);
    rig.run_until("echo peer done", PATIENCE, |_| peer.is_finished());
    join(kind, peer);
    rig.check_contract();
}

/// One `#[test]` per driver for every contract function.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod uring {
            $(
                #[test]
                fn $name() {
                    super::$name(super::DriverKind::Uring);
                }
            )*
        }
        mod mio {
            $(
                #[test]
                fn $name() {
                    super::$name(super::DriverKind::Mio);
                }
            )*
        }
    };
}

contract! {
    echo_via_connect,
    echo_via_accept,
    partial_writes,
    peer_closes_mid_frame,
    many_connections,
    timers,
    timer_changed_between_turns,
    connect_refused,
    adopt,
    remove_during_send,
    wants_read_backpressure,
    wants_read_false_stops_input,
    held_views_stay_intact,
    turn_past_deadline,
    session_closes_after_flush,
    sent_wakes_a_waiting_sender,
    sent_only_when_asked,
}

thread_local! {
    /// The io_uring configuration [`Rig::new`] uses instead of the default, set by the
    /// forced-fallback runs below.
    static FORCED_URING_CONFIG: std::cell::RefCell<Option<monocoque_uring::UringConfig>> =
        const { std::cell::RefCell::new(None) };
}

/// Runs contract function `test` on an io_uring driver built with `config`.
fn with_uring_config(config: monocoque_uring::UringConfig, test: fn(DriverKind)) {
    FORCED_URING_CONFIG.with(|c| *c.borrow_mut() = Some(config));
    test(DriverKind::Uring);
}

/// The contract again on io_uring under each fallback the driver can be forced into: a
/// representative subset (echo both ways, partial writes, a peer closing mid-frame,
/// backpressure, held views, timers, many connections; ~1 s each), to keep CI short.
macro_rules! under_fallback {
    ($module:ident, $config:expr, $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $name() {
                    super::with_uring_config($config, super::$name);
                }
            )*
        }
    };
}

under_fallback! {
    uring_plain_ring,
    monocoque_uring::UringConfig { plain_ring: true, ..Default::default() },
    echo_via_connect, echo_via_accept, partial_writes, peer_closes_mid_frame, many_connections,
    timers, wants_read_backpressure, held_views_stay_intact,
}

under_fallback! {
    uring_no_single_issuer,
    monocoque_uring::UringConfig { single_issuer: false, ..Default::default() },
    echo_via_connect, echo_via_accept, partial_writes, peer_closes_mid_frame, many_connections,
    timers, wants_read_backpressure, held_views_stay_intact,
}

under_fallback! {
    uring_no_defer_taskrun,
    monocoque_uring::UringConfig { defer_taskrun: false, ..Default::default() },
    echo_via_connect, echo_via_accept, partial_writes, peer_closes_mid_frame, many_connections,
    timers, wants_read_backpressure, held_views_stay_intact,
}

under_fallback! {
    uring_no_send_buffers,
    monocoque_uring::UringConfig { send_buffers: 0, ..Default::default() },
    echo_via_connect, echo_via_accept, partial_writes, peer_closes_mid_frame, many_connections,
    timers, wants_read_backpressure, held_views_stay_intact,
}

under_fallback! {
    uring_no_low_water_copy,
    monocoque_uring::UringConfig { recv_low_water: 0, ..Default::default() },
    echo_via_connect, partial_writes, held_views_stay_intact,
}

under_fallback! {
    uring_small_ring_copying,
    monocoque_uring::UringConfig { recv_buffers: 16, recv_low_water: 8, ..Default::default() },
    echo_via_connect, echo_via_accept, partial_writes, peer_closes_mid_frame, many_connections,
    wants_read_backpressure, held_views_stay_intact,
}

under_fallback! {
    uring_single_shot,
    monocoque_uring::UringConfig { single_shot_recv: true, single_shot_accept: true, ..Default::default() },
    echo_via_connect, echo_via_accept, partial_writes, peer_closes_mid_frame, many_connections,
    timers, wants_read_backpressure, wants_read_false_stops_input, held_views_stay_intact,
}
