//! The contract every driver implements, so bodies run unchanged on any of them.
//!
//! A driver owns sockets, timers and receive buffers; it owns the sessions too, and runs
//! each by the run-loop rule of [`Session`]. Bodies (`redis::Client`, brokers) are
//! generic over [`Driver`]: they put work into sessions through
//! [`session_for_output`](Driver::session_for_output), call [`turn`](Driver::turn), and drain the
//! events of the sessions that [`turn`](Driver::turn) reports as [`Activity::Ready`].
//! Nothing here does I/O; the types only name what a driver does.

use std::io;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::{Session, Waker};

/// Which driver (of the one-per-core drivers of a process) owns a connection or a
/// listener. Given at the driver's construction (`UringDriver::with_core`,
/// `MioDriver::with_core`); 0 for a driver built without one.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CoreId(pub u16);

/// A connection: the core whose driver owns it and its place in that driver. Ids are
/// not reused while the connection's session is still in the driver; a stale id, or an
/// id of another core's driver, finds nothing rather than another connection. A message
/// that names a `ConnId` can be routed to its owner through [`ConnId::core`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    core: CoreId,
    slot: u32,
    generation: u32,
}

impl ConnId {
    /// The id of slot `slot` in the driver of `core`, in its `generation` (drivers make
    /// these; a body only passes them around).
    pub const fn new(core: CoreId, slot: u32, generation: u32) -> Self {
        Self { core, slot, generation }
    }

    /// The core whose driver owns the connection.
    pub const fn core(self) -> CoreId {
        self.core
    }

    /// The connection's slot in its driver.
    pub const fn slot(self) -> u32 {
        self.slot
    }

    /// How many connections used the slot before this one (modulo the driver's range).
    pub const fn generation(self) -> u32 {
        self.generation
    }
}

/// A listening socket: the core whose driver owns it and its number in that driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ListenerId {
    core: CoreId,
    local: u32,
}

impl ListenerId {
    /// Listener `local` of the driver of `core` (drivers make these).
    pub const fn new(core: CoreId, local: u32) -> Self {
        Self { core, local }
    }

    /// The core whose driver owns the listener.
    pub const fn core(self) -> CoreId {
        self.core
    }

    /// The listener's number inside its driver.
    pub const fn local(self) -> u32 {
        self.local
    }
}

/// TCP keepalive on a socket: after `idle` without traffic the kernel sends a probe
/// every `interval`, and after `retries` unanswered probes the connection is reset. It
/// finds a vanished host or a broken path even while the client makes no call (a
/// frozen server process is still answered by its kernel: a health check catches that
/// one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpKeepalive {
    /// Idle time before the first probe (`TCP_KEEPIDLE`).
    pub idle: Duration,
    /// Time between probes (`TCP_KEEPINTVL`).
    pub interval: Duration,
    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`).
    pub retries: u32,
}

/// 30 s idle, then 3 probes 10 s apart: a dead peer is noticed within a minute, where
/// the kernel's own default (2 hours idle, 9 probes 75 s apart) takes over 2 hours.
/// Go's dialer (and so go-redis) probes after 15 s.
impl Default for TcpKeepalive {
    fn default() -> Self {
        Self {
            idle: Duration::from_secs(30),
            interval: Duration::from_secs(10),
            retries: 3,
        }
    }
}

/// Socket options a driver applies to a socket it connects
/// ([`Driver::connect_with`]): the body never holds the socket, so it says here what
/// it wants set. `TCP_NODELAY` needs no asking: drivers set it on every stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketOptions {
    /// TCP keepalive with these timings (`None`: the kernel's settings, off by default).
    pub keepalive: Option<TcpKeepalive>,
}

/// The peer address a driver reports for a connection accepted on a Unix-socket
/// listener (`listen_unix` of the drivers): such a peer has no IP address, and
/// [`Activity::Accepted`] and [`SessionFactory`] carry this unspecified one
/// (`0.0.0.0:0`) instead.
pub const UNIX_PEER: SocketAddr = SocketAddr::V4(std::net::SocketAddrV4::new(std::net::Ipv4Addr::UNSPECIFIED, 0));

/// Builds the session for a connection a listener accepted: given the listener, the
/// peer's address and the current instant.
pub type SessionFactory<S> = Box<dyn FnMut(ListenerId, SocketAddr, Instant) -> S>;

/// Something a [`Driver::turn`] did that the body may want to act on.
#[derive(Debug)]
pub enum Activity {
    /// A connection started by [`Driver::connect`] is established.
    Connected(ConnId),
    /// The session was fed input, end of stream or a timeout: drain its events.
    /// Reported at most once per connection per turn.
    Ready(ConnId),
    /// A listener accepted a connection; its session came from the listener's factory.
    Accepted {
        /// The listener that accepted it.
        listener: ListenerId,
        /// The new connection.
        conn: ConnId,
        /// The peer's address.
        peer: SocketAddr,
    },
    /// The socket is closed: the peer closed it, an error ended it (`error`), or the
    /// session finished. The session has seen `handle_eof` (unless it was already
    /// closed) and stays in the driver, with its last events, until
    /// [`Driver::remove`].
    Closed {
        /// The connection.
        conn: ConnId,
        /// The error that ended it, if an error did.
        error: Option<io::Error>,
    },
    /// The kernel took some of the connection's output, and its session asked to hear
    /// of it ([`Session::handle_sent`] answered true). Reported at most once per
    /// connection per turn, and never for a session that did not ask: a body waiting
    /// for room in the arena (or for it to empty) sleeps in `turn` until this comes.
    Sent(ConnId),
    /// A [`Waker`] of this driver was woken (another thread put work in a mailbox, or
    /// wants the body's attention). Reported at most once per turn; wakes sent while the
    /// driver was busy or outside `turn` are reported by the next turn, which then
    /// returns at once. May be spurious: the body checks its mailboxes and carries on.
    Woken,
}

/// An event loop that runs [`Session`]s over sockets. One per thread.
///
/// The run-loop rule, from the driver's side: in each [`turn`](Self::turn), every session
/// that was fed input or touched through [`session_for_output`](Self::session_for_output) since the
/// last turn has its arena handed to the kernel (all of them in as few syscalls as the
/// driver can: one `io_uring_enter`, or one `writev` per connection), its timer re-armed
/// from `poll_timeout`, and its reading paused or resumed by `wants_read`; a session that
/// `is_closed` with an empty arena has its socket closed once no operation on it is in
/// flight.
pub trait Driver<S: Session> {
    /// Starts connecting to `addr`; the session's queued output is sent once the
    /// connection is up ([`Activity::Connected`]). A failure to connect arrives later as
    /// [`Activity::Closed`] with the error.
    fn connect(&mut self, addr: SocketAddr, session: S) -> io::Result<ConnId> {
        self.connect_with(addr, session, &SocketOptions::default())
    }

    /// [`connect`](Self::connect), with `options` applied to the socket before it
    /// connects (an option the kernel refuses fails the call).
    fn connect_with(&mut self, addr: SocketAddr, session: S, options: &SocketOptions) -> io::Result<ConnId>;

    /// Runs `session` over an already connected stream (a blocking connect, a socket
    /// handed over by another thread). The stream is switched to non-blocking mode.
    fn adopt(&mut self, stream: TcpStream, session: S) -> io::Result<ConnId>;

    /// Listens on `addr` (port 0 picks a free port); every accepted connection gets a
    /// session from `factory` and is reported as [`Activity::Accepted`].
    fn listen(&mut self, addr: SocketAddr, factory: SessionFactory<S>) -> io::Result<ListenerId>;

    /// The address a listener is bound to.
    fn listener_addr(&self, listener: ListenerId) -> io::Result<SocketAddr>;

    /// Stops accepting on a listener and closes it.
    fn close_listener(&mut self, listener: ListenerId) -> io::Result<()>;

    /// The core this driver was built for: the one every id it hands out names.
    fn core(&self) -> CoreId;

    /// Connections in the driver, open or closed but not yet removed. O(1): a counter.
    fn connection_count(&self) -> usize;

    /// The session of a connection.
    fn session(&self, conn: ConnId) -> Option<&S>;

    /// The session of a connection, mutably, for the body to give it work or drain its
    /// events. Not a plain accessor: calling it schedules the connection for the next
    /// turn's service, which transmits the session's output, re-arms its timer from
    /// `poll_timeout` and re-reads `wants_read`/`is_closed`, since anything done through
    /// the reference may have changed them. (Named for that side effect; it was
    /// `session_mut`.) Use [`session`](Self::session) to look without scheduling.
    fn session_for_output(&mut self, conn: ConnId) -> Option<&mut S>;

    /// Takes a connection's session out of the driver and closes its socket (at once, or
    /// once the kernel has finished with operations in flight on it). Output still in the
    /// arena is dropped.
    fn remove(&mut self, conn: ConnId) -> Option<S>;

    /// One loop iteration: hands pending output to the kernel, waits until something
    /// happens or `deadline` passes (`None`: no deadline), feeds what happened to the
    /// sessions and appends to `out` what the body should look at. Returns once `out`
    /// gained at least one entry, or at the deadline (a deadline already past only
    /// submits and reaps what is ready, without blocking).
    fn turn(&mut self, deadline: Option<Instant>, out: &mut Vec<Activity>) -> io::Result<()>;

    /// A handle that wakes this driver from any thread: its current or next
    /// [`turn`](Self::turn) returns with [`Activity::Woken`]. Every call returns a
    /// waker of the same driver; the first one sets up the driver's wake source (an
    /// eventfd, a `mio::Waker`), which is why it can fail.
    fn waker(&mut self) -> io::Result<Waker>;
}
