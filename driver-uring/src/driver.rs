//! [`UringDriver`]: connections, listeners and timers over one ring, by the run-loop
//! rule of [`Session`]. No `unsafe` here: memory the kernel reads lives in
//! [`crate::ops`] and [`crate::bufring`].
#![deny(unsafe_code)]

use std::collections::VecDeque;
use std::io;
use std::marker::PhantomData;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

use monocoque_proto::chassis::{Epoch, SocketOptions, TimerWheel, UNIX_PEER};
use monocoque_proto::{Activity, ConnId, CoreId, Driver, ListenerId, Session, SessionFactory, WakeLatch, Waker};

use crate::conn::{Conn, Flags, Phase, Recv, Sends, Slot};
use crate::ops::InFlight;
use crate::ring::{Cqe, FeatureLine, Ring, RingFeatures, UringStats, Wait};
use crate::sys::{self, BoundPath, RawAddr};
use crate::wake::EventFd;
use crate::{UringConfig, UringError};

/// What a completion is for: the top four bits of its `user_data`.
const KIND_RECV: u64 = 1;
const KIND_SEND: u64 = 2;
const KIND_CONNECT: u64 = 3;
const KIND_ACCEPT: u64 = 4;
const KIND_CANCEL: u64 = 5;
const KIND_WAKE: u64 = 6;

/// Bits of the slot generation carried in `user_data` (a consistency check: slots are
/// never reused while an operation on them is in flight).
const UD_GEN_MASK: u64 = 0x0fff_ffff;

/// How long a listener waits before re-arming after an accept error such as `EMFILE`.
const ACCEPT_RETRY: Duration = Duration::from_millis(50);

/// How often a driver with starved receives looks for buffers returned by views dropped
/// on other threads (views dropped on the driver's thread are seen at the next turn).
const STARVED_POLL: Duration = Duration::from_millis(5);

/// How long dropping the driver waits for the kernel to finish cancelled operations.
const SHUTDOWN_LIMIT: Duration = Duration::from_secs(2);

fn user_data(kind: u64, index: u32, gen: u32) -> u64 {
    (kind << 60) | ((gen as u64 & UD_GEN_MASK) << 32) | index as u64
}

fn split_user_data(ud: u64) -> (u64, u32, u32) {
    (ud >> 60, ud as u32, ((ud >> 32) & UD_GEN_MASK) as u32)
}

fn listener_local(index: u32, gen: u16) -> u32 {
    ((gen as u32) << 16) | index
}

fn split_listener_local(local: u32) -> (u32, u16) {
    (local & 0xffff, (local >> 16) as u16)
}

struct ListenerState<S> {
    /// The listening socket (a Unix one too: see [`sys::unix_listener`]).
    sock: TcpListener,
    /// The TCP address bound ([`UNIX_PEER`] for a Unix listener).
    addr: SocketAddr,
    /// A Unix listener's socket file, removed when the listener closes.
    path: Option<BoundPath>,
    /// A Unix listener (its path may already be removed while it closes).
    unix: bool,
    factory: SessionFactory<S>,
    /// A multishot accept is in flight.
    armed: bool,
    /// `close_listener` was called; the socket closes once the accept is done.
    closing: bool,
    /// Re-arm not before this instant (after an accept error).
    retry_at: Option<Instant>,
}

/// The driver's wake source, set up by the first [`Driver::waker`] call.
struct WakeSource {
    fd: EventFd,
    waker: Waker,
    latch: WakeLatch,
    /// The armed read of the eventfd's counter; `None` between its completion and the
    /// re-arm at the start of the next loop iteration.
    read: Option<InFlight>,
    /// The turn in which `Woken` was last reported.
    reported_turn: u64,
    /// A read failed in a way re-arming will not fix: `turn` reports it.
    error: Option<io::Error>,
}

struct ListenerSlot<S> {
    gen: u16,
    state: Option<ListenerState<S>>,
}

/// An io_uring event loop that runs [`Session`]s over TCP sockets: one per thread.
///
/// Receives go through a provided-buffer ring with multishot receive, so an idle
/// connection holds no receive buffer; received buffers reach the session as zero-copy
/// [`bytes::Bytes`] views and return to the ring when the last view drops. Sends are
/// copied into a registered buffer when the arena fits one, and sent vectored from the
/// arena's segments otherwise; at most one send is in flight per connection, and every
/// submission of a loop iteration reaches the kernel in one `io_uring_enter`.
///
/// The ring is created with `SINGLE_ISSUER | DEFER_TASKRUN` where the kernel has them
/// ([`features`](Self::features) says what it accepted), so the driver must stay on the
/// thread that created it: it is neither `Send` nor `Sync`.
///
/// Where io_uring is unusable, [`new`](Self::new) fails with a [`UringError`] that names
/// the mio driver as the way out.
pub struct UringDriver<S> {
    ring: Ring,
    slots: Vec<Slot<S>>,
    free_slots: Vec<u32>,
    /// The sends in flight (a connection holds its send's place here).
    sends: Sends,
    /// Connections that reported `Ready` in this turn (their flag is cleared when the
    /// next turn starts).
    readied: Vec<u32>,
    /// The connections' timers count from here.
    epoch: Epoch,
    listeners: Vec<ListenerSlot<S>>,
    free_listeners: Vec<u16>,
    /// Connections to service at the start of the next loop iteration.
    dirty: Vec<u32>,
    /// Connections whose receive ended with `ENOBUFS`.
    starved: VecDeque<u32>,
    /// Far deadlines (keep alives) cost a slot number each in it (see [`TimerWheel`]).
    timers: TimerWheel,
    /// Connections with an armed timer (to bound stale wheel entries).
    armed_timers: usize,
    turn_no: u64,
    cqes: Vec<Cqe>,
    config: UringConfig,
    wake: Option<WakeSource>,
    /// Connections holding a session (open, or closed and not yet removed).
    live: usize,
    /// The ring belongs to the creating thread (`SINGLE_ISSUER`).
    _not_send: PhantomData<*const ()>,
}

impl<S: Session> UringDriver<S> {
    /// A driver with the default [`UringConfig`].
    pub fn new() -> Result<Self, UringError> {
        Self::with_config(UringConfig::default())
    }

    /// A driver with the default [`UringConfig`] serving core `core`: the ids it hands
    /// out name that core.
    pub fn with_core(core: CoreId) -> Result<Self, UringError> {
        Self::with_config(UringConfig {
            core,
            ..UringConfig::default()
        })
    }

    /// A driver with its own ring and buffer sizes.
    pub fn with_config(config: UringConfig) -> Result<Self, UringError> {
        let ring = Ring::new(&config)?;
        Ok(Self {
            ring,
            slots: Vec::new(),
            free_slots: Vec::new(),
            sends: Sends::default(),
            readied: Vec::new(),
            epoch: Epoch::new(Instant::now()),
            listeners: Vec::new(),
            free_listeners: Vec::new(),
            dirty: Vec::new(),
            starved: VecDeque::new(),
            timers: TimerWheel::new(),
            armed_timers: 0,
            turn_no: 0,
            cqes: Vec::with_capacity(256),
            config,
            wake: None,
            live: 0,
            _not_send: PhantomData,
        })
    }
}

impl<S> UringDriver<S> {
    /// Which setup flags the kernel accepted and which send path is in use.
    pub fn features(&self) -> RingFeatures {
        self.ring.features()
    }

    /// One line per kernel feature the driver can use: whether it is in force, and if
    /// not, the fallback used and why (what `monocoque doctor` prints). The buffer ring
    /// and multishot receive and accept are required: a kernel without them makes
    /// [`new`](UringDriver::new) fail with an error naming the mio driver, so a running
    /// driver always has them.
    pub fn feature_report(&self) -> Vec<FeatureLine> {
        let f = self.features();
        let cfg = &self.config;
        let line = |name, active, detail: String| FeatureLine { name, active, detail };
        let setup = |name, active, needs: &str, what: &str| {
            let detail = if active {
                what.to_owned()
            } else if cfg.plain_ring {
                "off: UringConfig::plain_ring asked for a plain ring".to_owned()
            } else if name == "SINGLE_ISSUER" && !cfg.single_issuer {
                "off: UringConfig::single_issuer is false".to_owned()
            } else if name == "DEFER_TASKRUN" && !cfg.defer_taskrun {
                "off: UringConfig::defer_taskrun is false".to_owned()
            } else if name == "DEFER_TASKRUN" && !cfg.single_issuer {
                "off: it needs SINGLE_ISSUER, which UringConfig::single_issuer turned off".to_owned()
            } else {
                format!("off: the kernel refused the setup flag (needs {needs}); the ring runs without it")
            };
            line(name, active, detail)
        };
        vec![
            line(
                "provided-buffer ring",
                true,
                format!(
                    "{} buffers of {} bytes shared by every connection; receives copied out below {} free",
                    cfg.recv_buffers,
                    cfg.recv_buffer_size,
                    cfg.effective_low_water()
                ),
            ),
            if cfg.single_shot_recv {
                line(
                    "multishot receive",
                    false,
                    "fallback: single-shot receive re-armed after each completion \
                     (UringConfig::single_shot_recv)"
                        .to_owned(),
                )
            } else {
                line("multishot receive", true, "one receive armed per connection".to_owned())
            },
            if cfg.single_shot_accept {
                line(
                    "multishot accept",
                    false,
                    "fallback: single-shot accept re-armed after each connection \
                     (UringConfig::single_shot_accept)"
                        .to_owned(),
                )
            } else {
                line("multishot accept", true, "one accept armed per listener".to_owned())
            },
            line(
                "registered send buffers",
                f.registered_send_buffers,
                if f.registered_send_buffers {
                    format!("{} fixed buffers of {} bytes", cfg.send_buffers, cfg.send_buffer_size)
                } else if cfg.send_buffers == 0 {
                    "off: UringConfig::send_buffers is 0; every send is vectored from the arena".to_owned()
                } else {
                    "fallback: unregistered copy buffers sent with SEND (the kernel refused the registration, \
                     usually the locked-memory limit)"
                        .to_owned()
                },
            ),
            line(
                "WRITE_FIXED",
                f.write_fixed,
                if f.write_fixed {
                    "copied sends use the fixed buffers".to_owned()
                } else if !f.registered_send_buffers {
                    "fallback: SEND with MSG_NOSIGNAL (no registered buffers)".to_owned()
                } else {
                    "fallback: SEND with MSG_NOSIGNAL (SIGPIPE is not ignored)".to_owned()
                },
            ),
            setup(
                "SINGLE_ISSUER",
                f.single_issuer,
                "Linux 6.0",
                "only this thread submits",
            ),
            setup(
                "DEFER_TASKRUN",
                f.defer_taskrun,
                "Linux 6.1",
                "completion work runs inside this thread's io_uring_enter",
            ),
            setup(
                "COOP_TASKRUN",
                f.coop_taskrun,
                "Linux 5.19",
                "no interrupt to run completion work",
            ),
            setup(
                "SUBMIT_ALL",
                f.submit_all,
                "Linux 5.18",
                "a failing submission does not stop the batch",
            ),
        ]
    }

    /// What the driver did so far.
    pub fn stats(&self) -> UringStats {
        UringStats {
            recv_copied: self.ring.bufs.copied(),
            ..self.ring.stats
        }
    }

    /// The configuration the driver was built with.
    pub fn config(&self) -> &UringConfig {
        &self.config
    }

    /// Receive buffers currently in the kernel's ring, ready to be filled. Equals
    /// `config().recv_buffers` when no received data is held anywhere (after the
    /// views dropped and a turn ran).
    pub fn recv_buffers_available(&self) -> usize {
        self.ring.bufs.provided()
    }

    /// Registered send buffers not used by an in-flight send.
    pub fn send_buffers_available(&self) -> usize {
        self.ring.sends.free_slots()
    }

    /// Operations submitted and not yet completed (diagnostics).
    pub fn operations_in_flight(&self) -> usize {
        self.ring.inflight()
    }

    fn conn_id(&self, index: u32, gen: u32) -> ConnId {
        ConnId::new(self.config.core, index, gen)
    }

    fn conn_index(&self, id: ConnId) -> Option<u32> {
        if id.core() != self.config.core {
            return None;
        }
        let (index, gen) = (id.slot(), id.generation());
        let slot = self.slots.get(index as usize)?;
        let live = slot.gen == gen && slot.conn.as_ref().is_some_and(|c| c.session.is_some());
        live.then_some(index)
    }

    fn conn_mut(&mut self, index: u32) -> Option<&mut Conn<S>> {
        self.slots.get_mut(index as usize).and_then(|s| s.conn.as_mut())
    }

    fn id_of(&self, index: u32) -> ConnId {
        self.conn_id(index, self.slots[index as usize].gen)
    }

    /// Slot and generation of one of this driver's listeners.
    fn listener_slot(&self, listener: ListenerId) -> Option<(u32, u16)> {
        (listener.core() == self.config.core).then(|| split_listener_local(listener.local()))
    }

    fn insert_conn(&mut self, conn: Conn<S>) -> u32 {
        self.live += 1;
        let index = match self.free_slots.pop() {
            Some(index) => {
                self.slots[index as usize].conn = Some(conn);
                index
            }
            None => {
                self.slots.push(Slot {
                    gen: 0,
                    conn: Some(conn),
                });
                (self.slots.len() - 1) as u32
            }
        };
        self.mark_dirty(index);
        index
    }

    /// Frees a slot whose socket is closed and session gone; its id is never valid again.
    fn free_slot(&mut self, index: u32) {
        let slot = &mut self.slots[index as usize];
        if let Some(conn) = slot.conn.take() {
            if conn.timer.is_some() {
                self.armed_timers -= 1;
            }
            // Never expected (a slot is freed once nothing is in flight): the send's
            // place is freed, its memory leaked by `InFlight`'s drop, never reused.
            if let Some(place) = conn.send {
                drop(self.sends.take(place));
            }
        }
        slot.gen = slot.gen.wrapping_add(1);
        self.free_slots.push(index);
    }

    fn mark_dirty(&mut self, index: u32) {
        if let Some(conn) = self.conn_mut(index) {
            if !conn.flags.has(Flags::DIRTY) {
                conn.flags.set(Flags::DIRTY, true);
                self.dirty.push(index);
            }
        }
    }

    fn mark_ready(&mut self, index: u32, out: &mut Vec<Activity>) {
        let id = self.id_of(index);
        if let Some(conn) = self.conn_mut(index) {
            if !conn.flags.has(Flags::READY) {
                conn.flags.set(Flags::READY, true);
                self.readied.push(index);
                out.push(Activity::Ready(id));
            }
        }
    }

    /// A new turn: every connection may report `Ready` again.
    fn clear_readied(&mut self) {
        let mut readied = std::mem::take(&mut self.readied);
        for index in readied.drain(..) {
            if let Some(conn) = self.conn_mut(index) {
                conn.flags.set(Flags::READY, false);
            }
        }
        self.readied = readied;
    }

    fn set_timer(&mut self, index: u32, at: Option<Instant>) {
        let gen = self.slots[index as usize].gen;
        let epoch = self.epoch;
        let packed = epoch.pack(at);
        let Some(conn) = self.conn_mut(index) else { return };
        if conn.timer == packed {
            return;
        }
        // What the slot reads back, so the wheel's entry matches it exactly.
        let at = epoch.unpack(packed);
        let was = conn.timer.is_some();
        conn.timer = packed;
        match (was, at) {
            (false, Some(_)) => self.armed_timers += 1,
            (true, None) => self.armed_timers -= 1,
            _ => {}
        }
        if let Some(at) = at {
            self.timers.arm(at, index, gen);
            // Stale entries are dropped once they are a third of the wheel (and its
            // spare capacity with them): every connection arms a connect deadline and
            // then its keep alive, so at 4x a server full of idle connections kept two
            // entries for each. The rebuild is O(n) once per n/2 re-arms: constant per
            // re-arm.
            if self.timers.len() > 64 && self.timers.len() > self.armed_timers + self.armed_timers / 2 {
                let (slots, epoch) = (&self.slots, self.epoch);
                self.timers.retain(|i| armed(slots, epoch, i));
            }
        }
    }
}

/// The instant slot `index` is armed for and its generation, if it is armed.
fn armed<S>(slots: &[Slot<S>], epoch: Epoch, index: u32) -> Option<(Instant, u32)> {
    let slot = slots.get(index as usize)?;
    epoch.unpack(slot.conn.as_ref()?.timer).map(|at| (at, slot.gen))
}

impl<S: Session> UringDriver<S> {
    /// Fires every due timer.
    fn fire_timers(&mut self, now: Instant, out: &mut Vec<Activity>) {
        loop {
            let (slots, epoch) = (&self.slots, self.epoch);
            let Some(e) = self.timers.pop_due(now, |i| armed(slots, epoch, i)) else {
                break;
            };
            let slot = &mut self.slots[e.index as usize];
            if slot.gen != e.generation {
                continue;
            }
            let Some(conn) = slot.conn.as_mut() else { continue };
            if self.epoch.unpack(conn.timer) != Some(e.at) || conn.phase == Phase::Closed {
                continue;
            }
            let Some(session) = conn.session.as_mut() else { continue };
            // Go by what the session says now: `session_for_output` may have moved or
            // cancelled the timer since it was armed.
            match session.poll_timeout() {
                Some(at) if at <= now => {}
                current => {
                    self.set_timer(e.index, current);
                    continue;
                }
            }
            session.handle_timeout(now);
            self.set_timer(e.index, None);
            self.mark_ready(e.index, out);
            self.mark_dirty(e.index);
        }
    }

    /// Puts returned receive buffers back into the ring and wakes starved receives
    /// while the ring has buffers (an `ENOBUFS` may be reaped after the buffers that
    /// would have served it came back).
    fn reprovide(&mut self) {
        let returned = self.ring.bufs.reprovide();
        if returned == 0 && self.ring.bufs.provided() == 0 {
            return;
        }
        while let Some(index) = self.starved.pop_front() {
            if let Some(conn) = self.conn_mut(index) {
                if conn.recv == Recv::Starved {
                    conn.recv = Recv::Idle;
                    self.mark_dirty(index);
                }
            }
        }
    }

    fn rearm_listeners(&mut self, now: Instant) -> io::Result<()> {
        for index in 0..self.listeners.len() {
            let slot = &mut self.listeners[index];
            let Some(l) = slot.state.as_mut() else { continue };
            if l.armed || l.closing || l.retry_at.is_some_and(|t| t > now) {
                continue;
            }
            let ud = user_data(KIND_ACCEPT, index as u32, slot.gen as u32);
            if self.config.single_shot_accept {
                self.ring.accept_once(l.sock.as_raw_fd(), ud)?;
            } else {
                self.ring.accept_multi(l.sock.as_raw_fd(), ud)?;
            }
            l.armed = true;
            l.retry_at = None;
        }
        Ok(())
    }

    fn service_dirty(&mut self, now: Instant, out: &mut Vec<Activity>) -> io::Result<()> {
        let mut dirty = std::mem::take(&mut self.dirty);
        let mut result = Ok(());
        let mut done = 0;
        while done < dirty.len() {
            let index = dirty[done];
            done += 1;
            if let Some(conn) = self.conn_mut(index) {
                conn.flags.set(Flags::DIRTY, false);
            }
            if let Err(e) = self.service(index, now, out) {
                // The ring refused a submission: keep this connection and the ones not
                // yet serviced (still flagged dirty) for the next iteration.
                self.mark_dirty(index);
                result = Err(e);
                break;
            }
        }
        dirty.drain(..done);
        // Keep whatever `service` marked again, and the allocation.
        dirty.append(&mut self.dirty);
        self.dirty = dirty;
        result
    }

    /// Applies the run-loop rule to one connection: stashed input, timer, send, read,
    /// close.
    fn service(&mut self, index: u32, now: Instant, out: &mut Vec<Activity>) -> io::Result<()> {
        self.feed_stash(index, now, out);
        let gen = self.slots[index as usize].gen;
        let Some(conn) = self.slots[index as usize].conn.as_mut() else {
            return Ok(());
        };
        let Some(session) = conn.session.as_mut() else {
            // Removed: close once the kernel is done with the socket.
            if !conn.busy() {
                self.free_slot(index);
            }
            return Ok(());
        };
        let timeout = session.poll_timeout();
        match conn.phase {
            Phase::Connecting => {
                self.set_timer(index, timeout);
                return Ok(());
            }
            Phase::Closed => {
                self.set_timer(index, None);
                return Ok(());
            }
            Phase::Open | Phase::Closing => {}
        }
        let fd = conn.stream.as_ref().map_or(-1, AsRawFd::as_raw_fd);
        if conn.send.is_none() && !conn.flags.has(Flags::FAILED) && conn.phase != Phase::Closing {
            if let Some(arena) = session.poll_transmit() {
                if !arena.is_empty() {
                    let op = self.ring.send(fd, arena, user_data(KIND_SEND, index, gen))?;
                    conn.send = Some(self.sends.insert(op)?);
                }
            }
        }
        let want_read = conn.phase == Phase::Open
            && !conn.flags.has(Flags::EOF)
            && conn.rare.stash_is_empty()
            && session.wants_read()
            && !session.is_closed();
        match (conn.recv, want_read) {
            (Recv::Idle, true) => {
                if self.config.single_shot_recv {
                    self.ring.recv_once(fd, user_data(KIND_RECV, index, gen))?;
                } else {
                    self.ring.recv_multi(fd, user_data(KIND_RECV, index, gen))?;
                }
                conn.recv = Recv::Armed;
            }
            (Recv::Armed, false) => {
                self.ring
                    .cancel(user_data(KIND_RECV, index, gen), user_data(KIND_CANCEL, index, gen))?;
                conn.recv = Recv::Cancelling;
            }
            (Recv::Starved, false) => conn.recv = Recv::Idle,
            _ => {}
        }
        let pending = session.poll_transmit().is_some_and(|a| !a.is_empty());
        let finished = session.is_closed() || conn.flags.has(Flags::EOF_FED);
        if conn.phase == Phase::Open && conn.send.is_none() && (conn.flags.has(Flags::FAILED) || !pending) && finished {
            self.begin_close(index)?;
        }
        self.set_timer(index, timeout);
        self.maybe_finalize(index, out);
        Ok(())
    }

    /// Stops every operation on the socket so it can be closed.
    fn begin_close(&mut self, index: u32) -> io::Result<()> {
        let gen = self.slots[index as usize].gen;
        let Some(conn) = self.conn_mut(index) else {
            return Ok(());
        };
        if conn.phase == Phase::Closed {
            return Ok(());
        }
        conn.phase = Phase::Closing;
        let mut cancels = Vec::with_capacity(3);
        match conn.recv {
            Recv::Armed => {
                conn.recv = Recv::Cancelling;
                cancels.push(KIND_RECV);
            }
            Recv::Starved => conn.recv = Recv::Idle,
            Recv::Idle | Recv::Cancelling => {}
        }
        // A send in flight finishes on its own unless nobody wants its bytes any more.
        if conn.send.is_some()
            && !conn.flags.has(Flags::SEND_CANCELLED)
            && (conn.flags.has(Flags::FAILED) || conn.session.is_none())
        {
            conn.flags.set(Flags::SEND_CANCELLED, true);
            cancels.push(KIND_SEND);
        }
        if conn.rare.connecting() {
            cancels.push(KIND_CONNECT);
        }
        for kind in cancels {
            self.ring
                .cancel(user_data(kind, index, gen), user_data(KIND_CANCEL, index, gen))?;
        }
        Ok(())
    }

    /// Closes the socket of a closing connection once nothing is in flight on it.
    fn maybe_finalize(&mut self, index: u32, out: &mut Vec<Activity>) {
        let id = self.id_of(index);
        let Some(conn) = self.conn_mut(index) else { return };
        if conn.phase != Phase::Closing || conn.busy() {
            return;
        }
        conn.stream = None;
        conn.phase = Phase::Closed;
        if conn.session.is_none() {
            self.free_slot(index);
            return;
        }
        if !conn.flags.has(Flags::CLOSED_REPORTED) {
            conn.flags.set(Flags::CLOSED_REPORTED, true);
            let error = conn.rare.take_error();
            out.push(Activity::Closed { conn: id, error });
        }
        self.set_timer(index, None);
    }

    /// Feeds stashed input while the session wants it, then the end of stream if it
    /// came after the stash.
    fn feed_stash(&mut self, index: u32, now: Instant, out: &mut Vec<Activity>) {
        let Some(conn) = self.conn_mut(index) else { return };
        let Some(session) = conn.session.as_mut() else { return };
        if session.is_closed() {
            conn.rare.stash_clear();
            return;
        }
        let mut fed = false;
        while !conn.rare.stash_is_empty() {
            if !conn.session.as_mut().is_some_and(|s| s.wants_read()) {
                break;
            }
            let Some(data) = conn.rare.stash_pop() else { break };
            if let Some(session) = conn.session.as_mut() {
                session.handle_input(data, now);
            }
            fed = true;
        }
        if conn.rare.stash_is_empty() && conn.flags.has(Flags::EOF) && !conn.flags.has(Flags::EOF_FED) {
            conn.flags.set(Flags::EOF_FED, true);
            if let Some(session) = conn.session.as_mut().filter(|s| !s.is_closed()) {
                session.handle_eof(now);
                fed = true;
            }
        }
        if fed {
            self.mark_ready(index, out);
        }
    }

    /// Records that the connection failed: no more reading or writing; the session sees
    /// end of stream at once (input not yet fed is dropped: the stream is broken).
    fn fail(&mut self, index: u32, error: io::Error, now: Instant, out: &mut Vec<Activity>) {
        let Some(conn) = self.conn_mut(index) else { return };
        conn.flags.set(Flags::FAILED, true);
        conn.rare.record_error(error);
        conn.rare.stash_clear();
        self.end_of_stream(index, now, out);
    }

    /// The peer will send nothing more: `handle_eof` is fed once, after any stashed
    /// input.
    fn end_of_stream(&mut self, index: u32, now: Instant, out: &mut Vec<Activity>) {
        let Some(conn) = self.conn_mut(index) else { return };
        conn.flags.set(Flags::EOF, true);
        self.feed_stash(index, now, out);
        self.mark_dirty(index);
    }

    fn process_completions(&mut self, now: Instant, out: &mut Vec<Activity>) {
        let mut cqes = std::mem::take(&mut self.cqes);
        cqes.clear();
        self.ring.reap(&mut cqes);
        for cqe in &cqes {
            self.on_completion(*cqe, now, out);
        }
        self.cqes = cqes;
    }

    fn on_completion(&mut self, cqe: Cqe, now: Instant, out: &mut Vec<Activity>) {
        let (kind, index, gen) = split_user_data(cqe.user_data);
        if kind == KIND_WAKE {
            self.on_wake(cqe, out);
            return;
        }
        if kind == KIND_ACCEPT {
            self.on_accept(index, gen, cqe, now, out);
            return;
        }
        let live = self
            .slots
            .get(index as usize)
            .is_some_and(|s| s.conn.is_some() && (s.gen as u64 & UD_GEN_MASK) as u32 == gen);
        if !live || kind == KIND_CANCEL {
            // A cancellation's own result, or (never expected) a stale completion.
            if let Some(bid) = cqe.buffer() {
                self.ring.bufs.give_back(bid);
            }
            return;
        }
        match kind {
            KIND_RECV => self.on_recv(index, cqe, now, out),
            KIND_SEND => self.on_send(index, cqe, now, out),
            KIND_CONNECT => self.on_connect(index, cqe, now, out),
            _ => {}
        }
        self.mark_dirty(index);
        self.maybe_finalize(index, out);
    }

    fn on_recv(&mut self, index: u32, cqe: Cqe, now: Instant, out: &mut Vec<Activity>) {
        let Some(conn) = self.conn_mut(index) else { return };
        if !cqe.more() {
            conn.recv = Recv::Idle;
        }
        if cqe.result > 0 {
            let data = cqe
                .buffer()
                .and_then(|bid| self.ring.bufs.take(bid, cqe.result as usize));
            let Some(data) = data else {
                let err = io::Error::new(io::ErrorKind::InvalidData, "receive completion without a valid buffer");
                self.fail(index, err, now, out);
                return;
            };
            self.ring.stats.recv_buffers_used += 1;
            let gen = self.slots[index as usize].gen;
            let Some(conn) = self.conn_mut(index) else { return };
            let Some(session) = conn.session.as_mut() else { return };
            if session.is_closed() {
                return;
            }
            if !conn.rare.stash_is_empty() || !session.wants_read() {
                // Completions already posted when the session paused: keep them for
                // when it wants input again.
                conn.rare.stash_push(data);
                return;
            }
            session.handle_input(data, now);
            let paused = !session.wants_read();
            if paused && conn.recv == Recv::Armed {
                // Stop the multishot receive now rather than at the next turn. If the
                // cancellation cannot be queued, `service` retries it.
                let target = user_data(KIND_RECV, index, gen);
                if self.ring.cancel(target, user_data(KIND_CANCEL, index, gen)).is_ok() {
                    if let Some(conn) = self.conn_mut(index) {
                        conn.recv = Recv::Cancelling;
                    }
                }
            }
            self.mark_ready(index, out);
            return;
        }
        if let Some(bid) = cqe.buffer() {
            self.ring.bufs.give_back(bid);
        }
        match -cqe.result {
            0 => self.end_of_stream(index, now, out),
            libc::ENOBUFS => {
                // Every receive buffer is held: the bytes wait in the socket until
                // buffers return; then the receive is armed again.
                if let Some(conn) = self.conn_mut(index) {
                    if conn.recv == Recv::Idle && conn.phase == Phase::Open {
                        conn.recv = Recv::Starved;
                        self.ring.stats.recv_starved += 1;
                        self.starved.push_back(index);
                    }
                }
            }
            libc::ECANCELED | libc::EINTR | libc::EAGAIN => {}
            errno => self.fail(index, io::Error::from_raw_os_error(errno), now, out),
        }
    }

    /// The eventfd read completed: another thread woke the driver.
    fn on_wake(&mut self, cqe: Cqe, out: &mut Vec<Activity>) {
        let turn = self.turn_no;
        let Some(wake) = self.wake.as_mut() else { return };
        if let Some(op) = wake.read.take() {
            self.ring.complete(op);
        }
        let Some(wake) = self.wake.as_mut() else { return };
        match cqe.result {
            8 => {}
            // Re-armed at the start of the next iteration; nothing was consumed.
            r if r == -libc::EAGAIN || r == -libc::EINTR || r == -libc::ECANCELED => return,
            r if r < 0 => {
                wake.error.get_or_insert(io::Error::from_raw_os_error(-r));
                return;
            }
            _ => {
                let err = io::Error::new(io::ErrorKind::InvalidData, "short read of the wake eventfd");
                wake.error.get_or_insert(err);
                return;
            }
        }
        // The read reset the counter; later wakes must signal again. A wake that
        // raced in between found the latch still set and skipped its signal: the
        // `Woken` below covers it.
        wake.latch.consume();
        if wake.reported_turn != turn {
            wake.reported_turn = turn;
            out.push(Activity::Woken);
        }
    }

    /// Keeps the eventfd read armed (queued with the iteration's other submissions).
    fn rearm_wake(&mut self) -> io::Result<()> {
        let Some(wake) = self.wake.as_mut() else { return Ok(()) };
        if let Some(err) = wake.error.take() {
            return Err(err);
        }
        if wake.read.is_none() {
            let op = self.ring.read_counter(wake.fd.raw(), user_data(KIND_WAKE, 0, 0))?;
            if let Some(wake) = self.wake.as_mut() {
                wake.read = Some(op);
            }
        }
        Ok(())
    }

    fn on_send(&mut self, index: u32, cqe: Cqe, now: Instant, out: &mut Vec<Activity>) {
        let Some(conn) = self.conn_mut(index) else { return };
        let place = conn.send.take();
        conn.flags.set(Flags::SEND_CANCELLED, false);
        let op = place.and_then(|place| self.sends.take(place));
        let submitted = op.as_ref().map_or(0, InFlight::len);
        if let Some(op) = op {
            self.ring.complete(op);
        }
        let Some(conn) = self.conn_mut(index) else { return };
        if cqe.result > 0 {
            let sent = cqe.result as usize;
            let mut rest = false;
            let mut asked = false;
            if let Some(session) = conn.session.as_mut() {
                if let Some(arena) = session.poll_transmit() {
                    arena.advance(sent.min(arena.len()));
                    rest = !arena.is_empty();
                }
                // One send in flight per connection, and a turn ends with the
                // iteration that reaped this one: at most one report a turn.
                asked = session.handle_sent();
            }
            if asked {
                out.push(Activity::Sent(self.id_of(index)));
            }
            if sent < submitted {
                self.ring.stats.partial_sends += 1;
            }
            if rest {
                // Output is waiting (the rest of a partial send, or what the session
                // wrote meanwhile): send it within this turn, not the next one.
                self.mark_dirty(index);
            }
            return;
        }
        match -cqe.result {
            0 => {
                let err = io::Error::new(io::ErrorKind::WriteZero, "the socket accepted no bytes");
                self.fail(index, err, now, out);
            }
            libc::ECANCELED | libc::EINTR | libc::EAGAIN => {}
            errno => self.fail(index, io::Error::from_raw_os_error(errno), now, out),
        }
    }

    fn on_connect(&mut self, index: u32, cqe: Cqe, now: Instant, out: &mut Vec<Activity>) {
        let id = self.id_of(index);
        let Some(conn) = self.conn_mut(index) else { return };
        if let Some(op) = conn.rare.take_connect() {
            self.ring.complete(op);
        }
        let Some(conn) = self.conn_mut(index) else { return };
        if conn.phase != Phase::Connecting {
            return; // removed while connecting: closing
        }
        conn.phase = Phase::Open;
        if cqe.result == 0 {
            out.push(Activity::Connected(id));
        } else {
            self.fail(index, io::Error::from_raw_os_error(-cqe.result), now, out);
        }
    }

    fn on_accept(&mut self, index: u32, gen: u32, cqe: Cqe, now: Instant, out: &mut Vec<Activity>) {
        // Owned at once, so every early return below closes it.
        let accepted = (cqe.result >= 0).then(|| sys::accepted_stream(cqe.result));
        let Some(slot) = self.listeners.get_mut(index as usize) else {
            return;
        };
        if slot.gen as u32 != gen {
            return;
        }
        let lid = ListenerId::new(self.config.core, listener_local(index, slot.gen));
        let Some(l) = slot.state.as_mut() else { return };
        let closing = l.closing;
        if !cqe.more() {
            l.armed = false;
            if closing {
                slot.state = None;
                slot.gen = slot.gen.wrapping_add(1);
                self.free_listeners.push(index as u16);
                return;
            }
        }
        let Some(stream) = accepted else {
            match -cqe.result {
                libc::ECANCELED | libc::EINTR | libc::EAGAIN | libc::ECONNABORTED => {}
                _ => l.retry_at = Some(now + ACCEPT_RETRY),
            }
            return;
        };
        if closing {
            return;
        }
        let peer = if l.unix {
            UNIX_PEER
        } else {
            // A peer that already reset has no address: drop it.
            let Ok(peer) = stream.peer_addr() else { return };
            let _ = sys::prepare_stream(&stream);
            peer
        };
        let session = (l.factory)(lid, peer, now);
        let index = self.insert_conn(Conn::new(stream, session, Phase::Open));
        out.push(Activity::Accepted {
            listener: lid,
            conn: self.id_of(index),
            peer,
        });
    }

    fn next_wake(&self, deadline: Option<Instant>) -> Option<Instant> {
        let retry = self
            .listeners
            .iter()
            .filter_map(|s| {
                s.state
                    .as_ref()
                    .filter(|l| !l.armed && !l.closing)
                    .and_then(|l| l.retry_at)
            })
            .min();
        let starved = (!self.starved.is_empty()).then(|| Instant::now() + STARVED_POLL);
        [deadline, self.timers.next(), retry, starved]
            .into_iter()
            .flatten()
            .min()
    }
}

impl<S: Session> Driver<S> for UringDriver<S> {
    fn connect_with(&mut self, addr: SocketAddr, session: S, options: &SocketOptions) -> io::Result<ConnId> {
        let raw = RawAddr::new(&addr);
        let fd = sys::tcp_socket(raw.family())?;
        if let Some(keepalive) = options.keepalive {
            sys::set_keepalive(&fd, keepalive)?;
        }
        let stream = TcpStream::from(fd);
        sys::prepare_stream(&stream)?;
        self.start_connect(stream, raw, session)
    }

    fn adopt(&mut self, stream: TcpStream, session: S) -> io::Result<ConnId> {
        stream.set_nonblocking(true)?;
        sys::prepare_stream(&stream)?;
        let index = self.insert_conn(Conn::new(stream, session, Phase::Open));
        Ok(self.id_of(index))
    }

    fn listen(&mut self, addr: SocketAddr, factory: SessionFactory<S>) -> io::Result<ListenerId> {
        let sock = sys::listener(&addr, self.config.listen_backlog, self.config.reuse_port)?;
        let addr = sock.local_addr()?;
        self.add_listener(ListenerState {
            sock,
            addr,
            path: None,
            unix: false,
            factory,
            armed: false,
            closing: false,
            retry_at: None,
        })
    }

    fn listener_addr(&self, listener: ListenerId) -> io::Result<SocketAddr> {
        let not_found = || io::Error::new(io::ErrorKind::NotFound, "no such listener");
        let (index, gen) = self.listener_slot(listener).ok_or_else(not_found)?;
        self.listeners
            .get(index as usize)
            .filter(|s| s.gen == gen)
            .and_then(|s| s.state.as_ref())
            .filter(|l| !l.closing)
            .ok_or_else(not_found)
            .and_then(|l| match l.unix {
                false => Ok(l.addr),
                true => Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "a Unix-socket listener has no IP address (see listener_path)",
                )),
            })
    }

    fn close_listener(&mut self, listener: ListenerId) -> io::Result<()> {
        let not_found = || io::Error::new(io::ErrorKind::NotFound, "no such listener");
        let (index, gen) = self.listener_slot(listener).ok_or_else(not_found)?;
        let slot = self
            .listeners
            .get_mut(index as usize)
            .filter(|s| s.gen == gen)
            .ok_or_else(not_found)?;
        let l = slot.state.as_mut().filter(|l| !l.closing).ok_or_else(not_found)?;
        l.closing = true;
        // The socket file goes now, as libzmq removes it on close: a new listener may
        // bind the path before the accept's final completion closes this socket.
        l.path = None;
        if l.armed {
            // The socket closes when the accept's final completion arrives.
            let target = user_data(KIND_ACCEPT, index, gen as u32);
            self.ring.cancel(target, user_data(KIND_CANCEL, index, gen as u32))?;
        } else {
            slot.state = None;
            slot.gen = slot.gen.wrapping_add(1);
            self.free_listeners.push(index as u16);
        }
        Ok(())
    }

    fn core(&self) -> CoreId {
        self.config.core
    }

    fn connection_count(&self) -> usize {
        self.live
    }

    fn session(&self, conn: ConnId) -> Option<&S> {
        let index = self.conn_index(conn)?;
        self.slots[index as usize].conn.as_ref()?.session.as_ref()
    }

    fn session_for_output(&mut self, conn: ConnId) -> Option<&mut S> {
        let index = self.conn_index(conn)?;
        self.mark_dirty(index);
        self.slots[index as usize].conn.as_mut()?.session.as_mut()
    }

    fn remove(&mut self, conn: ConnId) -> Option<S> {
        let index = self.conn_index(conn)?;
        self.set_timer(index, None);
        self.live -= 1;
        let c = self.conn_mut(index)?;
        let session = c.session.take();
        if c.phase != Phase::Closed {
            // Cancels whatever is in flight; a failure to queue the cancellation only
            // delays the close until the operations end on their own.
            let _ = self.begin_close(index);
        }
        if self.conn_mut(index).is_some_and(|c| !c.busy()) {
            self.free_slot(index);
        } else {
            self.mark_dirty(index);
        }
        session
    }

    fn turn(&mut self, deadline: Option<Instant>, out: &mut Vec<Activity>) -> io::Result<()> {
        self.turn_no += 1;
        self.clear_readied();
        let base = out.len();
        loop {
            let now = Instant::now();
            self.fire_timers(now, out);
            self.reprovide();
            self.rearm_listeners(now)?;
            self.rearm_wake()?;
            self.service_dirty(now, out)?;
            let wait = if out.len() > base || !self.dirty.is_empty() {
                Wait::Poll
            } else {
                match self.next_wake(deadline) {
                    None => Wait::Forever,
                    Some(t) if t <= now => Wait::Poll,
                    Some(t) => Wait::For(t - now),
                }
            };
            self.ring.enter(wait)?;
            let now = Instant::now();
            self.process_completions(now, out);
            self.fire_timers(now, out);
            if out.len() > base || deadline.is_some_and(|d| now >= d) {
                return Ok(());
            }
        }
    }

    fn waker(&mut self) -> io::Result<Waker> {
        if let Some(wake) = &self.wake {
            return Ok(wake.waker.clone());
        }
        let fd = EventFd::new()?;
        let (waker, latch) = Waker::new(fd.clone());
        self.wake = Some(WakeSource {
            fd,
            waker: waker.clone(),
            latch,
            read: None,
            reported_turn: 0,
            error: None,
        });
        // Armed now, so a wake sent before the next turn is already waiting for it.
        self.rearm_wake()?;
        Ok(waker)
    }
}

/// Unix stream sockets (`ipc://` in ZeroMQ): the same connections and listeners as TCP's,
/// on a path instead of an address. Sessions and activities are those of TCP; an
/// accepted peer is reported as [`UNIX_PEER`].
impl<S: Session> UringDriver<S> {
    /// Starts connecting to the Unix socket at `path`, as [`Driver::connect`] does to a
    /// TCP address (a refused connect, or no socket at `path`, is reported later as
    /// [`Activity::Closed`]; a path too long for a socket address fails here).
    pub fn connect_unix(&mut self, path: &Path, session: S) -> io::Result<ConnId> {
        let raw = RawAddr::unix(path)?;
        let fd = sys::tcp_socket(libc::AF_UNIX)?;
        self.start_connect(TcpStream::from(fd), raw, session)
    }

    /// Listens on the Unix socket `path`, as [`Driver::listen`] does on a TCP address:
    /// a stale socket file there (nobody listening) is removed first, as libzmq does,
    /// and the file is removed when the listener closes ([`Driver::close_listener`], or
    /// the driver dropped).
    pub fn listen_unix(&mut self, path: &Path, factory: SessionFactory<S>) -> io::Result<ListenerId> {
        let (sock, bound) = sys::unix_listener(path, self.config.listen_backlog)?;
        self.add_listener(ListenerState {
            sock,
            addr: UNIX_PEER,
            path: Some(bound),
            unix: true,
            factory,
            armed: false,
            closing: false,
            retry_at: None,
        })
    }

    /// The path a Unix-socket listener is bound to (`None` for a TCP listener, or one
    /// that is closed or unknown).
    pub fn listener_path(&self, listener: ListenerId) -> Option<&Path> {
        let (index, gen) = self.listener_slot(listener)?;
        self.listeners
            .get(index as usize)
            .filter(|s| s.gen == gen)?
            .state
            .as_ref()?
            .path
            .as_ref()
            .map(BoundPath::path)
    }

    /// Stores a connection whose socket is made and submits its `Connect`.
    fn start_connect(&mut self, stream: TcpStream, raw: RawAddr, session: S) -> io::Result<ConnId> {
        let fd = stream.as_raw_fd();
        let index = self.insert_conn(Conn::new(stream, session, Phase::Connecting));
        let gen = self.slots[index as usize].gen;
        match self.ring.connect(fd, raw, user_data(KIND_CONNECT, index, gen)) {
            Ok(op) => {
                if let Some(conn) = self.conn_mut(index) {
                    conn.rare.set_connect(op);
                }
                Ok(self.conn_id(index, gen))
            }
            Err(e) => {
                self.live -= 1;
                self.free_slot(index);
                Err(e)
            }
        }
    }

    /// Stores a listener in a free slot and arms its accept.
    fn add_listener(&mut self, state: ListenerState<S>) -> io::Result<ListenerId> {
        let index = match self.free_listeners.pop() {
            Some(index) => {
                self.listeners[index as usize].state = Some(state);
                index
            }
            None => {
                let index = u16::try_from(self.listeners.len())
                    .map_err(|_| io::Error::new(io::ErrorKind::OutOfMemory, "too many listeners in one driver"))?;
                self.listeners.push(ListenerSlot {
                    gen: 0,
                    state: Some(state),
                });
                index
            }
        };
        let gen = self.listeners[index as usize].gen;
        self.rearm_listeners(Instant::now())?;
        Ok(ListenerId::new(self.config.core, listener_local(index as u32, gen)))
    }
}

impl<S> Drop for UringDriver<S> {
    fn drop(&mut self) {
        let drained = self.ring.shutdown(SHUTDOWN_LIMIT);
        if drained {
            // The kernel is done with every address: release in-flight memory normally
            // (anything left undrained is leaked by `InFlight`'s own drop).
            for slot in &mut self.slots {
                if let Some(op) = slot.conn.as_mut().and_then(|c| c.rare.take_connect()) {
                    self.ring.complete(op);
                }
            }
            for op in self.sends.drain() {
                self.ring.complete(op);
            }
            if let Some(op) = self.wake.as_mut().and_then(|w| w.read.take()) {
                self.ring.complete(op);
            }
        }
    }
}
