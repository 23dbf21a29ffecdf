//! The body side of a link, shared by every client: name resolution on a helper thread
//! and the driver's non-blocking TCP connect, both waited in driver turns bounded by
//! the caller's remaining time, TCP keepalive, the driver turn that says what happened
//! to the link, and the reconnect loop that carries out the chassis' supervisor
//! ([`monocoque_proto::chassis::link`]): the backoff and the handshake are waited in the
//! driver, never past the caller's deadline.
//!
//! [`Body`] puts them together: the one client body every protocol uses (driver, link,
//! supervisor, the turn, the event drain, burying and reconnecting, the backpressure
//! retry loop). What a protocol replays on a new connection, and how its events map onto
//! the public API, is its [`Protocol`] (`src/nats/body.rs`, `src/redis/body.rs`).

mod body;

pub(crate) use body::{deadline_after, poll_until, Body, Cx, Protocol, Retry, Retrying};

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use monocoque_proto::chassis::link::{Action, Endpoint, GaveUp, Supervisor};
use monocoque_proto::chassis::{Mailbox, SocketOptions};
use monocoque_proto::{Activity, ConnId, Driver, Session};

/// TCP keepalive on the client's socket (the chassis' type: the driver applies it when
/// it connects the socket, see [`SocketOptions`]).
pub use monocoque_proto::chassis::TcpKeepalive;

/// Why [`dial`] did not hand a connection to the driver.
#[derive(Debug)]
pub(crate) enum DialError<E> {
    /// The deadline came before a TCP connection was made.
    TimedOut,
    /// Name resolution, the connect, a socket option or the driver failed.
    Io(io::Error),
    /// The session could not be built (its configuration was refused).
    Session(E),
}

/// When a connection attempt started at `now` must be connected: `timeout` (the connect
/// timeout) from `now`, or the caller's `deadline` if it comes first.
pub(crate) fn connect_deadline(now: Instant, timeout: Duration, deadline: Option<Instant>) -> Instant {
    let own = now + timeout;
    deadline.map_or(own, |d| d.min(own))
}

/// How [`dial`] builds the session of each connect it starts, and takes back the
/// session of one that failed (a host name may resolve to several addresses, each
/// tried with a session of its own).
pub(crate) trait Dialing<S> {
    /// Why a session could not be built.
    type Error;
    /// The session for a connect started at `now`.
    fn session(&mut self, now: Instant) -> Result<S, Self::Error>;
    /// The session of a connect that failed, taken out of the driver (what it carried
    /// may go into the next one). Dropped by default.
    fn salvage(&mut self, session: S) {
        drop(session);
    }
}

/// A [`Dialing`] that builds every session with a closure and drops failed ones.
#[cfg(test)]
pub(crate) struct Fresh<F>(pub(crate) F);

#[cfg(test)]
impl<S, E, F: FnMut(Instant) -> Result<S, E>> Dialing<S> for Fresh<F> {
    type Error = E;

    fn session(&mut self, now: Instant) -> Result<S, E> {
        (self.0)(now)
    }
}

/// One connection attempt, waited in driver turns until `deadline`: resolves `host`
/// (an IP literal at once, a name on a helper thread of `resolver`), then starts the
/// driver's non-blocking connect to each address in turn (with the session `dialing`
/// builds, `TCP_NODELAY`, and `keepalive` if given) until one is established. The
/// handshake then runs in the driver's turns. A connect still under way at `deadline`
/// is taken out of the driver. Other connections' activities in these turns are
/// dropped, as in [`turn`]; `activities` is the caller's reused buffer.
pub(crate) fn dial<S: Session, D: Driver<S>, B: Dialing<S>>(
    driver: &mut D,
    resolver: &mut Resolver,
    activities: &mut Vec<Activity>,
    (host, port): (&str, u16),
    deadline: Instant,
    keepalive: Option<TcpKeepalive>,
    mut dialing: B,
) -> Result<ConnId, DialError<B::Error>> {
    if Instant::now() >= deadline {
        return Err(DialError::TimedOut);
    }
    let targets = resolver.resolve(driver, activities, host, port, deadline)?;
    let options = SocketOptions { keepalive };
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name resolved to no address");
    for target in targets {
        let now = Instant::now();
        if now >= deadline {
            return Err(DialError::TimedOut);
        }
        let session = dialing.session(now).map_err(DialError::Session)?;
        let conn = driver.connect_with(target, session, &options).map_err(DialError::Io)?;
        let outcome = await_connected(driver, activities, conn, deadline);
        if outcome.is_ok() {
            return Ok(conn);
        }
        if let Some(session) = driver.remove(conn) {
            dialing.salvage(session);
        }
        match outcome {
            Ok(()) => {}
            Err(Unconnected::TimedOut) => return Err(DialError::TimedOut),
            Err(Unconnected::Failed(e)) => last = e,
            Err(Unconnected::Driver(e)) => return Err(DialError::Io(e)),
        }
    }
    Err(DialError::Io(last))
}

/// Why a connect under way did not complete.
enum Unconnected {
    /// The deadline came first.
    TimedOut,
    /// The connect failed (refused, unreachable): the next address may do.
    Failed(io::Error),
    /// The driver's turn failed.
    Driver(io::Error),
}

/// Driver turns until `conn`'s connect completes ([`Activity::Connected`]), fails
/// ([`Activity::Closed`]) or `deadline` passes.
fn await_connected<S: Session, D: Driver<S>>(
    driver: &mut D,
    activities: &mut Vec<Activity>,
    conn: ConnId,
    deadline: Instant,
) -> Result<(), Unconnected> {
    loop {
        if Instant::now() >= deadline {
            return Err(Unconnected::TimedOut);
        }
        activities.clear();
        driver.turn(Some(deadline), activities).map_err(Unconnected::Driver)?;
        let mut connected = false;
        for activity in activities.drain(..) {
            match activity {
                Activity::Connected(c) if c == conn => connected = true,
                // Also when it closed right after connecting: the link would never hear
                // of it, since this turn's activities are not the caller's.
                Activity::Closed { conn: c, error } if c == conn => {
                    return Err(match error {
                        Some(error) => Unconnected::Failed(error),
                        // Closed with no I/O error before any input: the session gave up
                        // on its own timer (a NATS session's connect timeout runs from
                        // when it was built, and may fire in the same turn as ours).
                        None => Unconnected::TimedOut,
                    });
                }
                _ => {}
            }
        }
        if connected {
            return Ok(());
        }
    }
}

/// What a host name resolved to, as the helper thread posts it.
type Resolved = io::Result<Vec<SocketAddr>>;

/// Resolves host names off the event loop, one per link: `getaddrinfo` blocks (for
/// seconds when a DNS server does not answer), so it runs on a helper thread that
/// posts the addresses through a [`Mailbox`] and wakes the driver, while the body waits
/// in driver turns. At most one resolution is outstanding: one that missed its
/// deadline stays pending, and the next attempt at the same host waits for its answer
/// rather than starting another thread. (A different host abandons it; its thread ends
/// when `getaddrinfo` returns, with nobody to tell.)
#[derive(Default)]
pub(crate) struct Resolver {
    pending: Option<Pending>,
}

/// A resolution under way.
struct Pending {
    host: String,
    port: u16,
    answer: Mailbox<Resolved>,
}

impl std::fmt::Debug for Resolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Resolver")
            .field("pending", &self.pending.as_ref().map(|p| (&p.host, p.port)))
            .finish()
    }
}

impl Resolver {
    /// The addresses of `host:port`, waited for in driver turns until `deadline`.
    fn resolve<S: Session, D: Driver<S>, E>(
        &mut self,
        driver: &mut D,
        activities: &mut Vec<Activity>,
        host: &str,
        port: u16,
        deadline: Instant,
    ) -> Result<Vec<SocketAddr>, DialError<E>> {
        let literal = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')).unwrap_or(host);
        if let Ok(ip) = literal.parse::<IpAddr>() {
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let pending = match self.pending.take() {
            Some(p) if p.host == host && p.port == port => p,
            _ => Pending::start(driver, host, port).map_err(DialError::Io)?,
        };
        let pending = self.pending.insert(pending);
        loop {
            if let Some(answer) = pending.answer.try_recv() {
                self.pending = None;
                return answer.map_err(DialError::Io);
            }
            if Instant::now() >= deadline {
                return Err(DialError::TimedOut);
            }
            activities.clear();
            driver.turn(Some(deadline), activities).map_err(DialError::Io)?;
        }
    }
}

impl Pending {
    /// Starts resolving `host:port` on a helper thread that wakes `driver` when done.
    fn start<S: Session, D: Driver<S>>(driver: &mut D, host: &str, port: u16) -> io::Result<Self> {
        let (answer, sender) = Mailbox::new(1, driver.waker()?);
        let name = host.to_owned();
        std::thread::Builder::new()
            .name("monocoque-resolve".to_owned())
            .spawn(move || {
                let resolved = (name.as_str(), port).to_socket_addrs().map(Iterator::collect);
                // Closed: the link gave up on this answer. A failed wake leaves it
                // queued, read at the body's next turn.
                let _ = sender.send(resolved);
            })?;
        Ok(Self {
            host: host.to_owned(),
            port,
            answer,
        })
    }
}

/// The pool of a client with one server (a [`Supervisor`] over it makes every attempt
/// a round of its own).
#[derive(Debug, Clone)]
pub(crate) struct OneServer;

impl Endpoint for OneServer {
    fn same_place(&self, _: &Self) -> bool {
        true
    }
}

/// What one driver turn reported about the link's connection.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Reported {
    /// It has events to drain (input arrived, or the TCP connect completed).
    pub(crate) ready: bool,
    /// The driver closed it.
    pub(crate) closed: bool,
}

/// One driver turn until `deadline` (`activities` is the caller's reused buffer); what it
/// reported about `conn`, the link's connection (other sessions on the driver are not
/// the link's business).
pub(crate) fn turn<S: Session, D: Driver<S>>(
    driver: &mut D,
    activities: &mut Vec<Activity>,
    deadline: Option<Instant>,
    conn: Option<ConnId>,
) -> io::Result<Reported> {
    activities.clear();
    let result = driver.turn(deadline, activities);
    let mut reported = Reported::default();
    for activity in activities.drain(..) {
        match activity {
            Activity::Ready(c) | Activity::Connected(c) if Some(c) == conn => reported.ready = true,
            Activity::Closed { conn: c, .. } if Some(c) == conn => reported.closed = true,
            _ => {}
        }
    }
    result.map(|()| reported)
}

/// The connection a client holds: the driver's id for it, whether its handshake
/// completed, why it died, and when an unfinished handshake is given up; `state` is
/// what the protocol keeps per connection.
#[derive(Debug)]
pub(crate) struct Link<L, X = ()> {
    /// The driver's id for the connection.
    pub(crate) conn: ConnId,
    /// The handshake completed.
    pub(crate) ready: bool,
    /// Why it died, once it did (the first reason wins).
    pub(crate) dead: Option<L>,
    /// When a handshake still in progress is given up.
    pub(crate) handshake_by: Instant,
    /// What the protocol keeps per connection.
    pub(crate) state: X,
}

impl<L, X: Default> Link<L, X> {
    /// A connection whose handshake is under way, to complete by `handshake_by`.
    pub(crate) fn new(conn: ConnId, handshake_by: Instant) -> Self {
        Self {
            conn,
            ready: false,
            dead: None,
            handshake_by,
            state: X::default(),
        }
    }
}

impl<L, X> Link<L, X> {
    /// Marks it dead (the first reason wins).
    pub(crate) fn kill(&mut self, lost: L) {
        self.dead.get_or_insert(lost);
    }

    /// Up: handshake complete, not dead.
    pub(crate) fn is_live(&self) -> bool {
        self.ready && self.dead.is_none()
    }
}

/// A client body that keeps one link and reconnects it through the chassis'
/// [`Supervisor`]: the protocol-specific steps the shared loops call.
pub(crate) trait Redial {
    /// A server of the pool.
    type Server: Endpoint;
    /// Why a link died.
    type Lost: Clone;
    /// What the protocol keeps per connection.
    type State;
    /// The client's error.
    type Error: Clone;

    /// The supervisor: the pool and the reconnect under way.
    fn supervisor(&mut self) -> &mut Supervisor<Self::Server, Self::Error>;
    /// The link under way, if any.
    fn link(&self) -> Option<&Link<Self::Lost, Self::State>>;
    /// Starts an attempt on server `index`: dial, adopt, queue the handshake (the
    /// TCP connect no later than `deadline`).
    fn start_link(&mut self, index: usize, deadline: Option<Instant>) -> Result<(), Self::Error>;
    /// Marks the link dead: its handshake did not complete in time.
    fn handshake_timed_out(&mut self);
    /// Takes the dead link out of the driver (a link that never completed its handshake
    /// is reported to the supervisor as a failed attempt).
    fn bury_link(&mut self);
    /// One driver turn until `until`.
    fn turn_until(&mut self, until: Instant) -> Result<(), Self::Error>;
    /// Whether `error` says the server refused the credentials (it is skipped for the
    /// rest of the reconnect).
    fn refused(error: &Self::Error) -> bool;
}

/// How [`wait_handshake`] ended.
#[derive(Debug)]
pub(crate) enum Handshake<L, E> {
    /// The link is ready.
    Ready,
    /// The limit came first; the link stays, for the next call to wait for.
    Later,
    /// The link died (it is buried); why, or `None` when there was no link.
    Dead(Option<L>),
    /// The driver failed.
    Failed(E),
}

/// Waits for the link's handshake until `limit` (`None`: until it completes or its own
/// deadline passes), in driver turns.
pub(crate) fn wait_handshake<B: Redial>(body: &mut B, limit: Option<Instant>) -> Handshake<B::Lost, B::Error> {
    loop {
        let Some(link) = body.link() else {
            return Handshake::Dead(None);
        };
        if let Some(lost) = link.dead.clone() {
            body.bury_link();
            return Handshake::Dead(Some(lost));
        }
        if link.ready {
            return Handshake::Ready;
        }
        let by = link.handshake_by;
        let now = Instant::now();
        if now >= by {
            body.handshake_timed_out();
            continue;
        }
        if limit.is_some_and(|l| now >= l) {
            return Handshake::Later;
        }
        if let Err(e) = body.turn_until(limit.map_or(by, |l| l.min(by))) {
            return Handshake::Failed(e);
        }
    }
}

/// Why [`reconnect`] returned without a ready link.
#[derive(Debug)]
pub(crate) enum Redialed<E> {
    /// The caller's deadline came first; the reconnect (and a handshake under way) goes
    /// on in the next call.
    Later,
    /// The supervisor gave up: the next call starts a new reconnect.
    GaveUp(GaveUp<E>),
    /// The driver failed.
    Failed(E),
}

/// Continues the reconnect (or starts one) until a link is ready or `deadline`: waits
/// for a handshake under way, then does what the supervisor says: dial a server, wait
/// the backoff (a driver turn: other sessions on the driver run meanwhile), or give up.
pub(crate) fn reconnect<B: Redial>(body: &mut B, deadline: Option<Instant>) -> Result<(), Redialed<B::Error>> {
    loop {
        if body.link().is_some() {
            match wait_handshake(body, deadline) {
                Handshake::Ready => return Ok(()),
                Handshake::Later => return Err(Redialed::Later),
                // Buried, and counted as a failed attempt by `bury_link`.
                Handshake::Dead(_) => continue,
                Handshake::Failed(e) => return Err(Redialed::Failed(e)),
            }
        }
        let now = Instant::now();
        let action = body.supervisor().next(now);
        if let Action::GiveUp(gave_up) = action {
            return Err(Redialed::GaveUp(gave_up));
        }
        if deadline.is_some_and(|d| now >= d) {
            return Err(Redialed::Later);
        }
        match action {
            Action::Wait(at) => body
                .turn_until(deadline.map_or(at, |d| d.min(at)))
                .map_err(Redialed::Failed)?,
            Action::Connect(index) => {
                body.supervisor().attempt();
                if let Err(e) = body.start_link(index, deadline) {
                    let refused = B::refused(&e);
                    body.supervisor().failed(index, e, refused);
                }
            }
            Action::GiveUp(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::{BorrowedFd, RawFd};

    use monocoque_proto::resp::{Connection, ConnectionConfig};
    use monocoque_proto::CoreId;

    use crate::driver::{AnyDriver, DriverKind};

    use super::*;

    /// A driver of `kind` and the session the Redis client would dial with.
    fn driver(kind: DriverKind) -> AnyDriver<Connection> {
        AnyDriver::new(kind).expect("driver")
    }

    /// Dials `host:port` with a fresh Redis session until `deadline`.
    fn dial_redis(
        driver: &mut AnyDriver<Connection>,
        resolver: &mut Resolver,
        host: &str,
        port: u16,
        deadline: Instant,
        keepalive: Option<TcpKeepalive>,
    ) -> Result<ConnId, DialError<Infallible>> {
        let mut activities = Vec::new();
        let session = Fresh(|now| Ok(Connection::new(ConnectionConfig::default(), now)));
        dial(
            driver,
            resolver,
            &mut activities,
            (host, port),
            deadline,
            keepalive,
            session,
        )
    }

    /// The sockets of this process connected from `local` to `peer` (the client's end
    /// of a connection the driver holds), found through `/proc/self/fd`.
    fn sockets_between(local: SocketAddr, peer: SocketAddr) -> Vec<RawFd> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc/self/fd").expect("/proc/self/fd") {
            let Some(fd) = entry.ok().and_then(|e| e.file_name().to_str()?.parse::<RawFd>().ok()) else {
                continue;
            };
            // SAFETY: only getsockname/getpeername are called through the borrow. If
            // another test thread closes the fd meanwhile they fail (EBADF) or see some
            // other socket, which the address match rejects.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fd) };
            let sock = socket2::SockRef::from(&borrowed);
            let addrs = sock
                .local_addr()
                .ok()
                .and_then(|l| Some((l.as_socket()?, sock.peer_addr().ok()?.as_socket()?)));
            if addrs == Some((local, peer)) {
                found.push(fd);
            }
        }
        found
    }

    #[test]
    fn dial_sets_keepalive_and_nodelay_on_the_socket_on_both_drivers() {
        for kind in DriverKind::ALL {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let server = listener.local_addr().expect("addr");
            let mut driver = driver(kind);
            let keepalive = TcpKeepalive {
                idle: Duration::from_secs(7),
                interval: Duration::from_secs(3),
                retries: 4,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut resolver = Resolver::default();
            let dialed = dial_redis(
                &mut driver,
                &mut resolver,
                "127.0.0.1",
                server.port(),
                deadline,
                Some(keepalive),
            );
            assert!(dialed.is_ok(), "{kind}: {dialed:?}");
            let (_accepted, client) = listener.accept().expect("accept");
            let fds = sockets_between(client, server);
            assert_eq!(fds.len(), 1, "{kind}: the driver's socket");
            // SAFETY: the driver holds the connection (and so the fd) open for the borrow.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fds[0]) };
            let sock = socket2::SockRef::from(&borrowed);
            assert!(sock.keepalive().expect("SO_KEEPALIVE"), "{kind}");
            assert_eq!(
                sock.tcp_keepalive_time().expect("TCP_KEEPIDLE"),
                keepalive.idle,
                "{kind}"
            );
            assert_eq!(
                sock.tcp_keepalive_interval().expect("TCP_KEEPINTVL"),
                keepalive.interval,
                "{kind}"
            );
            assert_eq!(
                sock.tcp_keepalive_retries().expect("TCP_KEEPCNT"),
                keepalive.retries,
                "{kind}"
            );
            assert!(sock.tcp_nodelay().expect("TCP_NODELAY"), "{kind}");

            // Without keepalive asked for, the kernel's default (off).
            let dialed = dial_redis(&mut driver, &mut resolver, "127.0.0.1", server.port(), deadline, None);
            assert!(dialed.is_ok(), "{kind}: {dialed:?}");
            let (_accepted, client) = listener.accept().expect("accept");
            let fds = sockets_between(client, server);
            assert_eq!(fds.len(), 1, "{kind}: the driver's socket");
            // SAFETY: as above.
            let borrowed = unsafe { BorrowedFd::borrow_raw(fds[0]) };
            assert!(
                !socket2::SockRef::from(&borrowed).keepalive().expect("SO_KEEPALIVE"),
                "{kind}"
            );
        }
    }

    #[test]
    fn a_host_name_is_resolved_off_the_loop_and_connects_on_both_drivers() {
        for kind in DriverKind::ALL {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let mut driver = driver(kind);
            let mut resolver = Resolver::default();
            let deadline = Instant::now() + Duration::from_secs(10);
            // `localhost` may resolve to ::1 first, where nothing listens: that connect
            // is refused and the next address is tried.
            let dialed = dial_redis(&mut driver, &mut resolver, "localhost", port, deadline, None);
            let conn = dialed.unwrap_or_else(|e| panic!("{kind}: {e:?}"));
            listener.accept().expect("accept");
            assert_eq!(driver.connection_count(), 1, "{kind}: the failed connects are removed");
            assert!(driver.session(conn).is_some(), "{kind}");
            assert!(resolver.pending.is_none(), "{kind}: the answer was taken");
        }
    }

    #[test]
    fn a_late_resolution_times_out_and_its_answer_serves_the_next_attempt() {
        for kind in DriverKind::ALL {
            let mut driver = driver(kind);
            let mut activities = Vec::new();
            // A resolution that has not answered yet: the test holds its sender.
            let (answer, sender) = Mailbox::new(1, driver.waker().expect("waker"));
            let mut resolver = Resolver {
                pending: Some(Pending {
                    host: "slow.example".to_owned(),
                    port: 6379,
                    answer,
                }),
            };
            let start = Instant::now();
            let deadline = start + Duration::from_millis(200);
            let result = resolver.resolve::<_, _, ()>(&mut driver, &mut activities, "slow.example", 6379, deadline);
            assert!(matches!(result, Err(DialError::TimedOut)), "{kind}: {result:?}");
            let returned = Instant::now();
            assert!(
                returned >= deadline && returned < deadline + Duration::from_secs(5),
                "{kind}: returned {:?} after the deadline",
                returned.saturating_duration_since(deadline)
            );
            assert!(resolver.pending.is_some(), "{kind}: still pending after the timeout");

            // The answer arrives from another thread (and wakes the driver); the next
            // attempt at the same host takes it instead of resolving again.
            let addr = SocketAddr::from(([127, 0, 0, 1], 6379));
            std::thread::spawn(move || sender.send(Ok(vec![addr])).map_err(|_| ()))
                .join()
                .expect("sender thread")
                .expect("sent");
            let deadline = Instant::now() + Duration::from_secs(10);
            let result = resolver.resolve::<_, _, ()>(&mut driver, &mut activities, "slow.example", 6379, deadline);
            assert_eq!(result.ok(), Some(vec![addr]), "{kind}");
            assert!(resolver.pending.is_none(), "{kind}");
        }
    }

    /// A listener whose accept queue is full: the kernel drops further SYNs, so a
    /// connect to it hangs until the client's SYN retries run out (minutes).
    fn blackhole() -> (socket2::Socket, Vec<TcpStream>, SocketAddr) {
        let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
        sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).expect("bind");
        sock.listen(0).expect("listen");
        let addr = sock.local_addr().expect("addr").as_socket().expect("inet");
        let mut fillers = Vec::new();
        for _ in 0..16 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
                Ok(stream) => fillers.push(stream),
                Err(_) => break,
            }
        }
        (sock, fillers, addr)
    }

    #[test]
    fn a_connect_to_a_blackhole_returns_by_the_deadline_on_both_drivers() {
        for kind in DriverKind::ALL {
            let (_listener, _fillers, addr) = blackhole();
            let mut driver = driver(kind);
            let mut resolver = Resolver::default();
            let start = Instant::now();
            let deadline = start + Duration::from_millis(500);
            let dialed = dial_redis(&mut driver, &mut resolver, "127.0.0.1", addr.port(), deadline, None);
            let returned = Instant::now();
            assert!(matches!(dialed, Err(DialError::TimedOut)), "{kind}: {dialed:?}");
            assert!(returned >= deadline, "{kind}: not before the deadline");
            // Generous slack: the box is loaded; the connect itself would hang for minutes.
            assert!(
                returned < deadline + Duration::from_secs(5),
                "{kind}: returned {:?} after the deadline",
                returned - deadline
            );
            assert_eq!(driver.connection_count(), 0, "{kind}: the connect is taken out");
        }
    }

    #[test]
    fn the_connect_deadline_is_the_sooner_of_the_timeout_and_the_caller() {
        let now = Instant::now();
        let timeout = Duration::from_secs(5);
        assert_eq!(connect_deadline(now, timeout, None), now + timeout);
        let soon = now + Duration::from_secs(1);
        assert_eq!(connect_deadline(now, timeout, Some(soon)), soon);
        let late = now + Duration::from_secs(9);
        assert_eq!(connect_deadline(now, timeout, Some(late)), now + timeout);
    }

    /// A body without sockets: `dial` says what an attempt on each server does, the
    /// handshake completes in the first turn after `ready_after_turns` turns.
    struct Fake {
        sup: Supervisor<Named, String>,
        link: Option<(usize, Link<String>)>,
        dial: fn(usize) -> Result<(), String>,
        handshake_by: Duration,
        ready_after_turns: Option<usize>,
        dialled: Vec<usize>,
        turns: usize,
    }

    #[derive(Debug, Clone)]
    struct Named(usize);

    impl Endpoint for Named {
        fn same_place(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }

    fn fake(servers: usize, max_attempts: u32, dial: fn(usize) -> Result<(), String>) -> Fake {
        let policy = monocoque_proto::chassis::link::ReconnectPolicy {
            // No backoff: the loop never has to wait out real time.
            initial: Duration::ZERO,
            max: Duration::ZERO,
            jitter: 0.0,
            max_attempts: Some(max_attempts),
        };
        let servers: Vec<Named> = (0..servers).map(Named).collect();
        Fake {
            sup: Supervisor::new(&servers, policy, 1),
            link: None,
            dial,
            handshake_by: Duration::from_secs(60),
            ready_after_turns: None,
            dialled: Vec::new(),
            turns: 0,
        }
    }

    impl Redial for Fake {
        type Server = Named;
        type Lost = String;
        type State = ();
        type Error = String;

        fn supervisor(&mut self) -> &mut Supervisor<Named, String> {
            &mut self.sup
        }

        fn link(&self) -> Option<&Link<String>> {
            self.link.as_ref().map(|(_, l)| l)
        }

        fn start_link(&mut self, index: usize, _: Option<Instant>) -> Result<(), String> {
            self.dialled.push(index);
            (self.dial)(index)?;
            self.sup.set_current(index);
            let link = Link::new(ConnId::new(CoreId(0), 0, 0), Instant::now() + self.handshake_by);
            self.link = Some((index, link));
            Ok(())
        }

        fn handshake_timed_out(&mut self) {
            if let Some((_, l)) = &mut self.link {
                l.kill("handshake timeout".to_owned());
            }
        }

        fn bury_link(&mut self) {
            if let Some((index, l)) = self.link.take() {
                if !l.ready {
                    let lost = l.dead.unwrap_or_default();
                    self.sup.failed(index, lost, false);
                }
            }
        }

        fn turn_until(&mut self, _: Instant) -> Result<(), String> {
            self.turns += 1;
            if let (Some((index, l)), Some(n)) = (&mut self.link, self.ready_after_turns) {
                if self.turns >= n {
                    l.ready = true;
                    let index = *index;
                    self.sup.succeeded(index);
                }
            }
            Ok(())
        }

        fn refused(error: &String) -> bool {
            error == "refused"
        }
    }

    #[test]
    fn failed_dials_rotate_skip_refusals_and_give_up_with_the_last_error() {
        let mut body = fake(2, 5, |i| Err(if i == 0 { "refused" } else { "down" }.to_owned()));
        let result = reconnect(&mut body, None);
        let Err(Redialed::GaveUp(gave_up)) = result else {
            panic!("{result:?}")
        };
        // After server 0 (the current one): 1, then 0 refuses and is skipped from then on.
        assert_eq!(body.dialled, [1, 0, 1, 1, 1]);
        assert_eq!(gave_up.attempts, 5);
        assert_eq!(gave_up.last.as_deref(), Some("down"));
    }

    #[test]
    fn a_handshake_outlives_the_call_that_started_it() {
        let mut body = fake(1, 5, |_| Ok(()));
        body.ready_after_turns = Some(1);
        // A deadline already past: the dial is not even made.
        assert!(matches!(
            reconnect(&mut body, Some(Instant::now())),
            Err(Redialed::Later)
        ));
        assert!(body.dialled.is_empty());
        // A call with time: dials, waits one turn, the handshake completes.
        assert!(matches!(reconnect(&mut body, None), Ok(())));
        assert_eq!((body.dialled.len(), body.turns), (1, 1));
        assert!(!body.sup.reconnecting());

        // A handshake still under way when the caller's time is up stays for the next.
        let mut body = fake(1, 5, |_| Ok(()));
        let soon = Instant::now() + Duration::from_millis(20);
        assert!(matches!(reconnect(&mut body, Some(soon)), Err(Redialed::Later)));
        assert!(body.link.is_some(), "the handshake is still under way");
        body.ready_after_turns = Some(0);
        assert!(matches!(reconnect(&mut body, None), Ok(())));
        assert_eq!(body.dialled.len(), 1, "one dial across the calls");
    }

    #[test]
    fn a_handshake_past_its_deadline_is_a_failed_attempt() {
        let mut body = fake(1, 2, |_| Ok(()));
        body.handshake_by = Duration::ZERO;
        let result = reconnect(&mut body, None);
        let Err(Redialed::GaveUp(gave_up)) = result else {
            panic!("{result:?}")
        };
        assert_eq!(gave_up.attempts, 2);
        assert_eq!(gave_up.last.as_deref(), Some("handshake timeout"));
        assert!(body.link.is_none(), "buried");
    }

    #[test]
    fn a_deadline_already_past_times_out_before_connecting() {
        for kind in DriverKind::ALL {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let mut driver = driver(kind);
            let mut resolver = Resolver::default();
            let past = Instant::now();
            let result = dial_redis(&mut driver, &mut resolver, "localhost", port, past, None);
            assert!(matches!(result, Err(DialError::TimedOut)), "{kind}: {result:?}");
            assert_eq!(driver.connection_count(), 0, "{kind}");
            assert!(resolver.pending.is_none(), "{kind}: no resolution started");
        }
    }
}
