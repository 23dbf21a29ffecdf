//! One connection attempt: the host name resolved off the event loop (a helper thread
//! answering through a [`Mailbox`]), then the driver's non-blocking connect to each
//! address in turn, waited in driver turns until the caller's deadline.

use std::io;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::time::{Duration, Instant};

use monocoque_proto::chassis::{Mailbox, SocketOptions};
use monocoque_proto::{Activity, ConnId, Driver, Session};

use super::TcpKeepalive;

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
/// dropped, as in [`turn`](super::turn); `activities` is the caller's reused buffer.
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

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::net::{TcpListener, TcpStream};
    use std::os::fd::{BorrowedFd, RawFd};

    use monocoque_proto::resp::{Connection, ConnectionConfig};

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
