//! [`MioDriver`]: the event loop.

use std::collections::HashMap;
use std::io::{self, IoSlice};
use std::net::{SocketAddr, TcpStream as StdTcpStream};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::time::{Duration, Instant};

use mio::event::Event;
use mio::net::{TcpListener, TcpStream, UnixListener};
use mio::{Events, Interest, Poll, Registry, Token};
use monocoque_proto::chassis::{Epoch, PackedInstant, SocketOptions, UNIX_PEER};
use monocoque_proto::{
    Activity, ConnId, CoreId, Driver, IoArena, ListenerId, Session, SessionFactory, WakeLatch, WakeSignal, Waker,
};
use socket2::SockRef;

use crate::conn::{Conn, Flags, Phase};
use crate::pool::{PoolStats, RecvPool};
use crate::slab::{Key, Slab};
use crate::sys::{self, BoundPath};
use crate::timers::Timers;
use crate::{MioConfig, MioError};

/// Iovecs handed to one `sendmsg`. Arenas rarely hold more chunks than this (small
/// writes share one staging chunk); the rest goes in the next loop iteration.
const MAX_IOVECS: usize = 64;

/// Whether a short read proves the socket's receive queue is drained, and a short write
/// that its send buffer is full. True where mio uses epoll or kqueue: there every new
/// segment or freed buffer space queues a fresh edge, even one that lands while the short
/// call returns, so skipping the confirming `WouldBlock` call loses nothing (Tokio relies
/// on the same property). Elsewhere only `WouldBlock` proves it.
const SHORT_IO_DRAINS: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "illumos",
    target_os = "macos",
    target_os = "ios",
    target_os = "tvos",
    target_os = "watchos",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly"
));

/// How long a listener waits before accepting again after the kernel refused (out of
/// file descriptors or memory), unless a connection of this driver closes first.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// A listening socket: TCP, or a Unix socket with the file it is bound to (removed
/// when the listener goes).
enum ListenSocket {
    Tcp(TcpListener),
    Unix(UnixListener, BoundPath),
}

impl ListenSocket {
    /// Accepts one connection: its stream and the peer's address ([`UNIX_PEER`] for a
    /// Unix socket).
    fn accept(&self) -> io::Result<(TcpStream, SocketAddr)> {
        match self {
            ListenSocket::Tcp(l) => {
                let (stream, peer) = l.accept()?;
                // Best effort: a peer that already reset can make this fail, and its
                // first read reports that.
                let _ = sys::prepare_stream(SockRef::from(&stream));
                Ok((stream, peer))
            }
            ListenSocket::Unix(l, _) => {
                let (stream, _) = l.accept()?;
                Ok((sys::unix_in_tcp_stream(OwnedFd::from(stream)), UNIX_PEER))
            }
        }
    }

    fn source(&mut self) -> &mut dyn mio::event::Source {
        match self {
            ListenSocket::Tcp(l) => l,
            ListenSocket::Unix(l, _) => l,
        }
    }
}

/// A listening socket and the factory of its sessions.
struct Listener<S> {
    socket: ListenSocket,
    factory: SessionFactory<S>,
    /// `accept` failed for lack of resources: retry later.
    backlogged: bool,
}

/// The token of the driver's `mio::Waker`: odd like a listener's, but with an id no
/// listener has (listener ids are `u32`).
const WAKE_TOKEN: Token = Token(usize::MAX);

/// `mio::Waker` as the driver's [`WakeSignal`].
struct MioSignal(mio::Waker);

impl WakeSignal for MioSignal {
    fn signal(&self) -> io::Result<()> {
        self.0.wake()
    }
}

/// The driver's wake source, set up by the first [`Driver::waker`] call.
struct WakeSource {
    waker: Waker,
    latch: WakeLatch,
    /// The turn in which `Woken` was last reported.
    reported_turn: u64,
}

/// How one `sendmsg` went.
enum WriteOutcome {
    /// There was nothing to write.
    Idle,
    /// The kernel took the rest of the arena: it is empty.
    Flushed,
    /// The kernel took everything it was offered, but the arena holds more chunks than
    /// one call offers.
    Partial,
    /// The kernel took only part of what it was offered: the send buffer is full.
    Short,
    /// The kernel took nothing (`WouldBlock`): wait for a writable edge.
    Blocked,
}

/// How reading one connection ended.
enum ReadOutcome {
    /// Drained to `WouldBlock`, paused by `wants_read`, or out of budget.
    Stopped,
    /// End of stream: the session was given `handle_eof`.
    Eof,
    /// An error ended the connection.
    Failed(io::Error),
}

/// The portable driver: one mio `Poll`, the connections and listeners it watches, a
/// timer heap and a receive buffer pool. One per thread.
///
/// See the crate documentation for what a [`turn`](Driver::turn) does.
pub struct MioDriver<S> {
    poll: Poll,
    events: Events,
    config: MioConfig,
    conns: Slab<Conn<S>>,
    listeners: HashMap<u32, Listener<S>>,
    next_listener: u32,
    timers: Timers,
    pool: RecvPool,
    /// Connections to service (write, re-arm, resume, close) in the next pass.
    dirty: Vec<Key>,
    /// Connections to read from in the next pass.
    reads: Vec<Key>,
    /// A spare vector, swapped with `dirty`/`reads` to walk them while they refill.
    scratch: Vec<Key>,
    turn_no: u64,
    /// Connections that reported `Ready` in this turn (their flag is cleared when the
    /// next turn starts).
    readied: Vec<Key>,
    /// Errors to report in the next turn (a `connect` that failed at once), by
    /// connection; the connection's flag says it has one.
    pending_errors: Vec<(Key, io::Error)>,
    /// The connections' timers count from here.
    epoch: Epoch,
    accept_retry_at: Option<Instant>,
    wake: Option<WakeSource>,
}

impl<S> std::fmt::Debug for MioDriver<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MioDriver")
            .field("connections", &self.conns.len())
            .field("listeners", &self.listeners.len())
            .field("pool", &self.pool.stats())
            .finish_non_exhaustive()
    }
}

fn conn_token(index: u32) -> Token {
    Token((index as usize) << 1)
}

fn listener_token(id: u32) -> Token {
    Token(((id as usize) << 1) | 1)
}

/// Reports `Ready` for a connection, at most once per turn.
fn mark_ready<S>(conn: &mut Conn<S>, key: Key, core: CoreId, readied: &mut Vec<Key>, out: &mut Vec<Activity>) {
    if !conn.has(Flags::READY) {
        conn.set(Flags::READY, true);
        readied.push(key);
        out.push(Activity::Ready(key.id(core)));
    }
}

/// Puts a connection on the dirty list (once).
fn mark_dirty<S>(conn: &mut Conn<S>, key: Key, dirty: &mut Vec<Key>) {
    if !conn.has(Flags::DIRTY) {
        conn.set(Flags::DIRTY, true);
        dirty.push(key);
    }
}

/// Puts a connection on the read list (once).
fn queue_read<S>(conn: &mut Conn<S>, key: Key, reads: &mut Vec<Key>) {
    if !conn.has(Flags::READ_QUEUED) {
        conn.set(Flags::READ_QUEUED, true);
        reads.push(key);
    }
}

/// Errors after which `accept` should simply be called again.
fn accept_error_is_transient(err: &io::Error) -> bool {
    if matches!(
        err.kind(),
        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted | io::ErrorKind::ConnectionReset
    ) {
        return true;
    }
    #[cfg(unix)]
    if err.raw_os_error() == Some(libc::EPROTO) {
        return true;
    }
    false
}

/// One `sendmsg` of as much of the arena as fits in [`MAX_IOVECS`] iovecs, retried on
/// `EINTR`; the arena is advanced by what the kernel took.
fn write_once(stream: &TcpStream, arena: &mut IoArena) -> io::Result<WriteOutcome> {
    if arena.is_empty() {
        return Ok(WriteOutcome::Idle);
    }
    let (sent, offered) = {
        let mut iov = [IoSlice::new(&[]); MAX_IOVECS];
        let n = arena.io_slices(&mut iov);
        let offered: usize = iov[..n].iter().map(|s| s.len()).sum();
        let sent = loop {
            match sys::send_vectored(stream, &iov[..n]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                other => break other,
            }
        };
        (sent, offered)
    };
    match sent {
        Ok(0) => Err(io::Error::from(io::ErrorKind::WriteZero)),
        Ok(n) => {
            // The kernel never reports more than it was given; `min` keeps a broken
            // report from panicking in `advance`.
            arena.advance(n.min(arena.len()));
            Ok(if arena.is_empty() {
                WriteOutcome::Flushed
            } else if n < offered {
                WriteOutcome::Short
            } else {
                WriteOutcome::Partial
            })
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(WriteOutcome::Blocked),
        Err(e) => Err(e),
    }
}

/// Whether a connection's arena is empty.
fn arena_is_empty<S: Session>(session: &mut S) -> bool {
    session.poll_transmit().is_none_or(|a| a.is_empty())
}

/// What a readiness event says about a pending `connect`: `Ok(true)` established,
/// `Ok(false)` still in progress, `Err` failed.
fn connect_result(stream: &TcpStream, event: &Event) -> io::Result<bool> {
    if let Some(err) = stream.take_error()? {
        return Err(err);
    }
    // Through socket2, which reads a Unix socket's address too (std's `peer_addr`
    // knows only the IP families).
    match SockRef::from(stream).peer_addr() {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::NotConnected => {
            if event.is_error() || event.is_write_closed() {
                Err(io::Error::from(io::ErrorKind::ConnectionRefused))
            } else {
                Ok(false)
            }
        }
        Err(e) => Err(e),
    }
}

impl<S: Session> MioDriver<S> {
    /// A driver with the default [`MioConfig`].
    pub fn new() -> io::Result<Self> {
        Self::with_config(MioConfig::default())
    }

    /// A driver with the default [`MioConfig`] serving core `core`: the ids it hands
    /// out name that core.
    pub fn with_core(core: CoreId) -> io::Result<Self> {
        Self::with_config(MioConfig {
            core,
            ..MioConfig::default()
        })
    }

    /// A driver tuned by `config` (checked with [`MioConfig::validate`]).
    pub fn with_config(config: MioConfig) -> io::Result<Self> {
        config.validate()?;
        Ok(Self {
            poll: Poll::new()?,
            events: Events::with_capacity(config.max_events),
            pool: RecvPool::new(config.recv_buffer_size, config.min_read_space, config.pool_size),
            config,
            conns: Slab::default(),
            listeners: HashMap::new(),
            next_listener: 0,
            timers: Timers::default(),
            dirty: Vec::new(),
            reads: Vec::new(),
            scratch: Vec::new(),
            turn_no: 0,
            readied: Vec::new(),
            pending_errors: Vec::new(),
            epoch: Epoch::new(Instant::now()),
            accept_retry_at: None,
            wake: None,
        })
    }

    /// The configuration the driver runs with.
    pub fn config(&self) -> &MioConfig {
        &self.config
    }

    /// How the receive buffer pool is doing.
    pub fn pool_stats(&self) -> PoolStats {
        self.pool.stats()
    }

    /// The key of one of this driver's listeners (an id of another core's driver is
    /// unknown here).
    fn listener_key(&self, listener: ListenerId) -> Result<u32, MioError> {
        if listener.core() == self.config.core {
            Ok(listener.local())
        } else {
            Err(MioError::UnknownListener(listener.local()))
        }
    }

    /// Stores a connection, registers its socket and puts it on the dirty list, so the
    /// next pass flushes its output and arms its timer.
    fn insert(
        &mut self,
        stream: TcpStream,
        session: S,
        phase: Phase,
        readable: bool,
        pending_error: Option<io::Error>,
    ) -> io::Result<Key> {
        let register = pending_error.is_none();
        let conn = Conn::new(session, stream, phase, readable);
        let key = self.conns.insert(conn).ok_or(MioError::TooManyConnections)?;
        let Some(conn) = self.conns.get_mut(key) else {
            return Err(MioError::TooManyConnections.into());
        };
        if let Some(err) = pending_error {
            conn.set(Flags::PENDING_ERROR, true);
            self.pending_errors.push((key, err));
        }
        if register {
            if let Some(stream) = conn.stream.as_mut() {
                if let Err(e) = self.poll.registry().register(
                    stream,
                    conn_token(key.index),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    self.conns.remove(key);
                    return Err(e);
                }
            }
        }
        mark_dirty(conn, key, &mut self.dirty);
        Ok(key)
    }

    /// The error held for connection `key`, taken out.
    fn take_pending_error(&mut self, key: Key) -> Option<io::Error> {
        let at = self.pending_errors.iter().position(|(k, _)| *k == key)?;
        Some(self.pending_errors.swap_remove(at).1)
    }

    /// Closes a connection's socket and reports it; the session stays.
    fn close_socket(&mut self, key: Key, error: Option<io::Error>, now: Instant, out: &mut Vec<Activity>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Closed {
            return;
        }
        conn.phase = Phase::Closed;
        conn.set(Flags::READABLE, false);
        conn.set(Flags::WRITABLE, false);
        if let Some(mut stream) = conn.stream.take() {
            // Deregister explicitly: a duplicate of an adopted fd would otherwise keep
            // the registration alive after this close.
            let _ = self.poll.registry().deregister(&mut stream);
        }
        if std::mem::take(&mut conn.timer).is_some() {
            self.timers.disarm();
        }
        out.push(Activity::Closed {
            conn: key.id(self.config.core),
            error,
        });
        // A descriptor was freed: a listener starved of them may accept again.
        if self.listeners.values().any(|l| l.backlogged) {
            self.accept_retry_at = Some(now);
        }
    }

    /// Ends a connection with an error: the session sees end of stream (unless it
    /// already did or is closed), then `Ready` and `Closed { error }` are reported.
    fn fail(&mut self, key: Key, error: io::Error, now: Instant, out: &mut Vec<Activity>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.phase == Phase::Closed {
            return;
        }
        if !conn.has(Flags::EOF_FED) && !conn.session.is_closed() {
            conn.set(Flags::EOF_FED, true);
            conn.session.handle_eof(now);
        }
        mark_ready(conn, key, self.config.core, &mut self.readied, out);
        self.close_socket(key, Some(error), now, out);
    }

    /// Fires every timer due at `now`.
    fn fire_timers(&mut self, now: Instant, out: &mut Vec<Activity>) {
        loop {
            let (conns, epoch) = (&self.conns, self.epoch);
            let Some(entry) = self.timers.pop_due(now, |i| Self::armed(conns, epoch, i)) else {
                break;
            };
            let key = Key {
                index: entry.index,
                generation: entry.generation,
            };
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if self.epoch.unpack(conn.timer) != Some(entry.at) {
                continue;
            }
            if self.epoch.pack(conn.session.poll_timeout()) != conn.timer {
                // The body moved or cancelled the timer through `session_for_output` since it
                // was armed: arm what the session wants now (an instant already due
                // comes out of this same loop) and never fire the old one.
                Self::rearm(&mut self.timers, self.epoch, conn, key);
                continue;
            }
            conn.timer = PackedInstant::NONE;
            self.timers.disarm();
            conn.session.handle_timeout(now);
            mark_ready(conn, key, self.config.core, &mut self.readied, out);
            mark_dirty(conn, key, &mut self.dirty);
        }
        let (conns, epoch) = (&self.conns, self.epoch);
        self.timers.compact_if_needed(|i| Self::armed(conns, epoch, i));
    }

    /// The deadline slot `index` is armed for and its generation, if it is armed.
    fn armed(conns: &Slab<Conn<S>>, epoch: Epoch, index: u32) -> Option<(Instant, u32)> {
        let (key, conn) = conns.by_index(index)?;
        epoch.unpack(conn.timer).map(|at| (at, key.generation))
    }

    /// Re-arms a connection's timer from its session.
    fn rearm(timers: &mut Timers, epoch: Epoch, conn: &mut Conn<S>, key: Key) {
        let want = if conn.phase == Phase::Closed {
            None
        } else {
            conn.session.poll_timeout()
        };
        let packed = epoch.pack(want);
        if packed == conn.timer {
            return;
        }
        if conn.timer.is_some() {
            timers.disarm();
        }
        conn.timer = packed;
        // The instant as the slot reads it back, so the wheel's entry matches it.
        if let Some(at) = epoch.unpack(packed) {
            timers.arm(at, key.index, key.generation);
        }
    }

    /// Reads every connection on the read list.
    fn run_reads(&mut self, now: Instant, out: &mut Vec<Activity>) {
        if self.reads.is_empty() {
            return;
        }
        let mut list = std::mem::replace(&mut self.reads, std::mem::take(&mut self.scratch));
        for key in list.drain(..) {
            match self.read_conn(key, now, out) {
                ReadOutcome::Stopped | ReadOutcome::Eof => {}
                ReadOutcome::Failed(err) => self.fail(key, err, now, out),
            }
        }
        self.scratch = list;
    }

    /// Reads one connection until `WouldBlock`, a pause, end of stream or its budget.
    fn read_conn(&mut self, key: Key, now: Instant, out: &mut Vec<Activity>) -> ReadOutcome {
        let Some(conn) = self.conns.get_mut(key) else {
            return ReadOutcome::Stopped;
        };
        conn.set(Flags::READ_QUEUED, false);
        if conn.phase != Phase::Open || conn.has(Flags::EOF_FED) || !conn.has(Flags::READABLE) {
            return ReadOutcome::Stopped;
        }
        let mut budget = self.config.read_budget;
        loop {
            if !conn.session.wants_read() {
                // Paused with `readable` still set: the dirty pass resumes it.
                return ReadOutcome::Stopped;
            }
            if budget == 0 {
                queue_read(conn, key, &mut self.reads);
                return ReadOutcome::Stopped;
            }
            let Some(stream) = conn.stream.as_ref() else {
                return ReadOutcome::Stopped;
            };
            let spare = self.pool.spare();
            let spare_len = spare.len();
            match sys::recv(stream, spare) {
                Ok(0) => {
                    conn.set(Flags::READABLE, false);
                    conn.set(Flags::EOF_FED, true);
                    conn.session.handle_eof(now);
                    mark_ready(conn, key, self.config.core, &mut self.readied, out);
                    mark_dirty(conn, key, &mut self.dirty);
                    return ReadOutcome::Eof;
                }
                Ok(n) => {
                    let drained = SHORT_IO_DRAINS && n < spare_len && !conn.has(Flags::READ_CLOSED);
                    let data = self.pool.commit(n);
                    budget = budget.saturating_sub(data.len());
                    conn.session.handle_input(data, now);
                    mark_ready(conn, key, self.config.core, &mut self.readied, out);
                    mark_dirty(conn, key, &mut self.dirty);
                    if drained {
                        conn.set(Flags::READABLE, false);
                        return ReadOutcome::Stopped;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.set(Flags::READABLE, false);
                    return ReadOutcome::Stopped;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return ReadOutcome::Failed(e),
            }
        }
    }

    /// Services every connection on the dirty list.
    fn flush_dirty(&mut self, now: Instant, out: &mut Vec<Activity>) {
        if self.dirty.is_empty() {
            return;
        }
        let mut list = std::mem::replace(&mut self.dirty, std::mem::take(&mut self.scratch));
        for key in list.drain(..) {
            self.service(key, now, out);
        }
        self.scratch = list;
    }

    /// The run-loop rule for one connection: one write, re-arm the timer, resume
    /// reading if the session wants to, close if it is done.
    fn service(&mut self, key: Key, now: Instant, out: &mut Vec<Activity>) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.set(Flags::DIRTY, false);
        if conn.phase == Phase::Closed {
            return;
        }
        if conn.has(Flags::PENDING_ERROR) {
            conn.set(Flags::PENDING_ERROR, false);
            if let Some(at) = self.pending_errors.iter().position(|(k, _)| *k == key) {
                let (_, err) = self.pending_errors.swap_remove(at);
                self.fail(key, err, now, out);
                return;
            }
        }
        let mut more = false;
        if conn.phase == Phase::Open && conn.has(Flags::WRITABLE) {
            let outcome = match (conn.stream.as_ref(), conn.session.poll_transmit()) {
                (Some(stream), Some(arena)) => write_once(stream, arena),
                _ => Ok(WriteOutcome::Idle),
            };
            let took = matches!(
                outcome,
                Ok(WriteOutcome::Flushed | WriteOutcome::Partial | WriteOutcome::Short)
            );
            // One write per connection per iteration, and a turn ends with the
            // iteration that reported: at most one report a turn.
            if took && conn.session.handle_sent() {
                out.push(Activity::Sent(key.id(self.config.core)));
            }
            match outcome {
                Ok(WriteOutcome::Idle | WriteOutcome::Flushed) => {}
                Ok(WriteOutcome::Partial) => more = true,
                // The send buffer is full: wait for the writable edge where that is
                // proof enough, else let `WouldBlock` confirm it next iteration.
                Ok(WriteOutcome::Short) if SHORT_IO_DRAINS => conn.set(Flags::WRITABLE, false),
                Ok(WriteOutcome::Short) => more = true,
                Ok(WriteOutcome::Blocked) => conn.set(Flags::WRITABLE, false),
                Err(err) => {
                    self.fail(key, err, now, out);
                    return;
                }
            }
        }
        Self::rearm(&mut self.timers, self.epoch, conn, key);
        if conn.phase == Phase::Open
            && conn.has(Flags::READABLE)
            && !conn.has(Flags::EOF_FED)
            && conn.session.wants_read()
        {
            queue_read(conn, key, &mut self.reads);
        }
        let empty = arena_is_empty(&mut conn.session);
        if empty && (conn.session.is_closed() || conn.has(Flags::EOF_FED)) {
            self.close_socket(key, None, now, out);
        } else if more {
            mark_dirty(conn, key, &mut self.dirty);
        }
    }

    /// Feeds one readiness event to its connection or listener.
    fn on_event(&mut self, event: &Event, now: Instant, out: &mut Vec<Activity>) {
        if event.token() == WAKE_TOKEN {
            if let Some(wake) = self.wake.as_mut() {
                // The eventfd behind `mio::Waker` is edge-triggered: every signal is a
                // new event, and its counter needs no reset.
                wake.latch.consume();
                if wake.reported_turn != self.turn_no {
                    wake.reported_turn = self.turn_no;
                    out.push(Activity::Woken);
                }
            }
            return;
        }
        let token = event.token().0;
        if token & 1 == 1 {
            if let Ok(id) = u32::try_from(token >> 1) {
                self.accept_all(id, now, out);
            }
            return;
        }
        let Ok(index) = u32::try_from(token >> 1) else {
            return;
        };
        let Some((key, conn)) = self.conns.by_index_mut(index) else {
            return;
        };
        match conn.phase {
            Phase::Closed => {}
            Phase::Connecting => {
                if !(event.is_writable() || event.is_error() || event.is_write_closed() || event.is_read_closed()) {
                    return;
                }
                let Some(stream) = conn.stream.as_ref() else {
                    return;
                };
                match connect_result(stream, event) {
                    Ok(false) => {}
                    Ok(true) => {
                        conn.phase = Phase::Open;
                        conn.set(Flags::WRITABLE, true);
                        conn.set(Flags::READABLE, event.is_readable() || event.is_read_closed());
                        conn.set(Flags::READ_CLOSED, event.is_read_closed());
                        out.push(Activity::Connected(key.id(self.config.core)));
                        mark_dirty(conn, key, &mut self.dirty);
                    }
                    Err(err) => self.fail(key, err, now, out),
                }
            }
            Phase::Open => {
                if event.is_error() {
                    let taken = conn.stream.as_ref().map(|s| s.take_error());
                    match taken {
                        Some(Ok(Some(err))) | Some(Err(err)) => {
                            self.fail(key, err, now, out);
                            return;
                        }
                        _ => {}
                    }
                }
                if event.is_read_closed() {
                    conn.set(Flags::READ_CLOSED, true);
                }
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    conn.set(Flags::READABLE, true);
                    if !conn.has(Flags::EOF_FED) && conn.session.wants_read() {
                        queue_read(conn, key, &mut self.reads);
                    }
                }
                if (event.is_writable() || event.is_write_closed() || event.is_error()) && !conn.has(Flags::WRITABLE) {
                    conn.set(Flags::WRITABLE, true);
                    mark_dirty(conn, key, &mut self.dirty);
                }
            }
        }
    }

    /// Accepts on a listener until `WouldBlock`.
    fn accept_all(&mut self, id: u32, now: Instant, out: &mut Vec<Activity>) {
        loop {
            let Some(listener) = self.listeners.get_mut(&id) else {
                return;
            };
            let (stream, peer) = match listener.socket.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    listener.backlogged = false;
                    return;
                }
                Err(e) if accept_error_is_transient(&e) => continue,
                Err(_) => {
                    // Out of descriptors or memory: the connection waits in the backlog;
                    // no new edge will come for it, so retry on a timer.
                    listener.backlogged = true;
                    self.accept_retry_at = Some(now + ACCEPT_RETRY);
                    return;
                }
            };
            let lid = ListenerId::new(self.config.core, id);
            let session = (listener.factory)(lid, peer, now);
            // A registration failure (no memory) drops just this connection.
            if let Ok(key) = self.insert(stream, session, Phase::Open, false, None) {
                out.push(Activity::Accepted {
                    listener: lid,
                    conn: key.id(self.config.core),
                    peer,
                });
            }
        }
    }

    /// Retries listeners that ran out of resources, once their retry time has come.
    fn retry_accepts(&mut self, now: Instant, out: &mut Vec<Activity>) {
        if self.accept_retry_at.is_none_or(|at| at > now) {
            return;
        }
        self.accept_retry_at = None;
        let ids: Vec<u32> = self
            .listeners
            .iter()
            .filter(|(_, l)| l.backlogged)
            .map(|(&id, _)| id)
            .collect();
        for id in ids {
            self.accept_all(id, now, out);
        }
    }

    /// How long `poll` may sleep.
    fn poll_timeout(&mut self, now: Instant, deadline: Option<Instant>) -> Option<Duration> {
        if !self.reads.is_empty() || !self.dirty.is_empty() {
            return Some(Duration::ZERO);
        }
        let (conns, epoch) = (&self.conns, self.epoch);
        let timer = self.timers.next(|i| Self::armed(conns, epoch, i));
        [deadline, timer, self.accept_retry_at]
            .into_iter()
            .flatten()
            .min()
            .map(|wake| wake.saturating_duration_since(now))
    }

    fn registry(&self) -> &Registry {
        self.poll.registry()
    }
}

impl<S: Session> Driver<S> for MioDriver<S> {
    fn connect_with(&mut self, addr: SocketAddr, session: S, options: &SocketOptions) -> io::Result<ConnId> {
        let (stream, failure) = sys::start_connect(addr, options)?;
        self.insert(stream, session, Phase::Connecting, false, failure)
            .map(|key| key.id(self.config.core))
    }

    fn adopt(&mut self, stream: StdTcpStream, session: S) -> io::Result<ConnId> {
        stream.set_nonblocking(true)?;
        sys::prepare_stream(SockRef::from(&stream))?;
        // The stream may already hold bytes that arrived before it was handed over:
        // start as readable rather than rely on the registration to announce them.
        self.insert(TcpStream::from_std(stream), session, Phase::Open, true, None)
            .map(|key| key.id(self.config.core))
    }

    fn listen(&mut self, addr: SocketAddr, factory: SessionFactory<S>) -> io::Result<ListenerId> {
        let socket = sys::listen(addr, self.config.listen_backlog, self.config.reuse_port)?;
        self.add_listener(ListenSocket::Tcp(socket), factory)
    }

    fn listener_addr(&self, listener: ListenerId) -> io::Result<SocketAddr> {
        let listener = self
            .listeners
            .get(&self.listener_key(listener)?)
            .ok_or(MioError::UnknownListener(listener.local()))?;
        match &listener.socket {
            ListenSocket::Tcp(socket) => socket.local_addr(),
            ListenSocket::Unix(..) => Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "a Unix-socket listener has no IP address (see listener_path)",
            )),
        }
    }

    fn close_listener(&mut self, listener: ListenerId) -> io::Result<()> {
        let mut entry = self
            .listeners
            .remove(&self.listener_key(listener)?)
            .ok_or(MioError::UnknownListener(listener.local()))?;
        // Dropping the entry closes the socket (and removes a Unix socket's file).
        self.registry().deregister(entry.socket.source())
    }

    fn core(&self) -> CoreId {
        self.config.core
    }

    fn connection_count(&self) -> usize {
        self.conns.len()
    }

    fn session(&self, conn: ConnId) -> Option<&S> {
        self.conns
            .get(Key::from_id(conn, self.config.core)?)
            .map(|c| &c.session)
    }

    fn session_for_output(&mut self, conn: ConnId) -> Option<&mut S> {
        let key = Key::from_id(conn, self.config.core)?;
        let c = self.conns.get_mut(key)?;
        mark_dirty(c, key, &mut self.dirty);
        Some(&mut c.session)
    }

    fn remove(&mut self, conn: ConnId) -> Option<S> {
        let key = Key::from_id(conn, self.config.core)?;
        let mut c = self.conns.remove(key)?;
        if let Some(mut stream) = c.stream.take() {
            let _ = self.poll.registry().deregister(&mut stream);
        }
        if c.timer.is_some() {
            self.timers.disarm();
        }
        if c.has(Flags::PENDING_ERROR) {
            self.take_pending_error(key);
        }
        Some(c.session)
    }

    fn turn(&mut self, deadline: Option<Instant>, out: &mut Vec<Activity>) -> io::Result<()> {
        self.turn_no = self.turn_no.wrapping_add(1);
        // A new turn: every connection may report `Ready` again.
        for key in self.readied.drain(..) {
            if let Some(conn) = self.conns.get_mut(key) {
                conn.set(Flags::READY, false);
            }
        }
        let start = out.len();
        let mut polled = false;
        loop {
            let now = Instant::now();
            self.fire_timers(now, out);
            self.run_reads(now, out);
            self.flush_dirty(now, out);
            if out.len() > start {
                return Ok(());
            }
            let now = Instant::now();
            if polled && deadline.is_some_and(|d| d <= now) {
                return Ok(());
            }
            let timeout = self.poll_timeout(now, deadline);
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
            polled = true;
            let now = Instant::now();
            let events = std::mem::replace(&mut self.events, Events::with_capacity(0));
            for event in events.iter() {
                self.on_event(event, now, out);
            }
            self.events = events;
            self.retry_accepts(now, out);
        }
    }

    fn waker(&mut self) -> io::Result<Waker> {
        if let Some(wake) = &self.wake {
            return Ok(wake.waker.clone());
        }
        let signal = MioSignal(mio::Waker::new(self.poll.registry(), WAKE_TOKEN)?);
        let (waker, latch) = Waker::new(signal);
        self.wake = Some(WakeSource {
            waker: waker.clone(),
            latch,
            reported_turn: 0,
        });
        Ok(waker)
    }
}

/// Unix stream sockets (`ipc://` in ZeroMQ): the same connections and listeners as TCP's,
/// on a path instead of an address. Sessions and activities are those of TCP; an
/// accepted peer is reported as [`UNIX_PEER`].
impl<S: Session> MioDriver<S> {
    /// Starts connecting to the Unix socket at `path`, as [`Driver::connect`] does to a
    /// TCP address (a refused connect, or no socket at `path`, is reported in the next
    /// turn as [`Activity::Closed`]; a path too long for a socket address fails here).
    pub fn connect_unix(&mut self, path: &Path, session: S) -> io::Result<ConnId> {
        let (stream, failure) = sys::start_connect_unix(path)?;
        self.insert(stream, session, Phase::Connecting, false, failure)
            .map(|key| key.id(self.config.core))
    }

    /// Listens on the Unix socket `path`, as [`Driver::listen`] does on a TCP address:
    /// a stale socket file there (nobody listening) is removed first, as libzmq does,
    /// and the file is removed when the listener closes ([`Driver::close_listener`], or
    /// the driver dropped).
    pub fn listen_unix(&mut self, path: &Path, factory: SessionFactory<S>) -> io::Result<ListenerId> {
        let (socket, bound) = sys::listen_unix(path, self.config.listen_backlog)?;
        self.add_listener(ListenSocket::Unix(socket, bound), factory)
    }

    /// The path a Unix-socket listener is bound to (`None` for a TCP listener, or one
    /// that is closed or unknown).
    pub fn listener_path(&self, listener: ListenerId) -> Option<&Path> {
        match &self.listeners.get(&self.listener_key(listener).ok()?)?.socket {
            ListenSocket::Unix(_, bound) => Some(bound.path()),
            ListenSocket::Tcp(_) => None,
        }
    }

    /// Registers a listening socket under a free id.
    fn add_listener(&mut self, mut socket: ListenSocket, factory: SessionFactory<S>) -> io::Result<ListenerId> {
        let mut id = self.next_listener;
        while self.listeners.contains_key(&id) {
            id = id.wrapping_add(1);
        }
        self.registry()
            .register(socket.source(), listener_token(id), Interest::READABLE)?;
        self.next_listener = id.wrapping_add(1);
        self.listeners.insert(
            id,
            Listener {
                socket,
                factory,
                backlogged: false,
            },
        );
        Ok(ListenerId::new(self.config.core, id))
    }
}
