//! The body side of a link, shared by every client: the TCP connect bounded by the
//! caller's remaining time, TCP keepalive, and handing the socket and its session to the
//! driver. Which server to dial and when is the chassis' reconnect supervisor
//! ([`monocoque_proto::chassis::link`]); what a protocol replays on a new connection
//! stays with each client.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use monocoque_proto::{ConnId, Driver, Session};

/// TCP keepalive on the client's socket: after `idle` without traffic the kernel sends
/// a probe every `interval`, and after `retries` unanswered probes the connection is
/// reset. It finds a vanished host or a broken path even while the client makes no
/// call (a frozen server process is still answered by its kernel: the health check
/// catches that one).
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

/// One connection attempt: resolves `host:port`, connects to the first address that
/// accepts by `deadline` (`TCP_NODELAY`, and `keepalive` if given), builds the session
/// with `session` (given the time the socket connected) and hands both to `driver`.
/// The handshake then runs in the driver's turns.
pub(crate) fn dial<S: Session, D: Driver<S>, E>(
    driver: &mut D,
    (host, port): (&str, u16),
    deadline: Instant,
    keepalive: Option<TcpKeepalive>,
    session: impl FnOnce(Instant) -> Result<S, E>,
) -> Result<ConnId, DialError<E>> {
    let stream = tcp_connect(host, port, deadline, keepalive)?;
    let session = session(Instant::now()).map_err(DialError::Session)?;
    driver.adopt(stream, session).map_err(DialError::Io)
}

/// Resolves `host:port` and connects to the first address that accepts by `deadline`.
fn tcp_connect<E>(
    host: &str,
    port: u16,
    deadline: Instant,
    keepalive: Option<TcpKeepalive>,
) -> Result<TcpStream, DialError<E>> {
    let targets: Vec<SocketAddr> = (host, port).to_socket_addrs().map_err(DialError::Io)?.collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "the host name resolved to no address");
    for target in targets {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(DialError::TimedOut);
        }
        match TcpStream::connect_timeout(&target, remaining) {
            Ok(stream) => {
                stream.set_nodelay(true).map_err(DialError::Io)?;
                if let Some(keepalive) = keepalive {
                    set_keepalive(&stream, keepalive).map_err(DialError::Io)?;
                }
                return Ok(stream);
            }
            Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(DialError::TimedOut),
            Err(e) => last = e,
        }
    }
    Err(DialError::Io(last))
}

/// Turns on TCP keepalive with the given timings.
fn set_keepalive(stream: &TcpStream, keepalive: TcpKeepalive) -> io::Result<()> {
    let params = socket2::TcpKeepalive::new()
        .with_time(keepalive.idle)
        .with_interval(keepalive.interval)
        .with_retries(keepalive.retries);
    socket2::SockRef::from(stream).set_tcp_keepalive(&params)
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn keepalive_is_set_with_the_configured_timings() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let stream = TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let sock = socket2::SockRef::from(&stream);
        assert!(!sock.keepalive().expect("SO_KEEPALIVE"), "off until set");
        let keepalive = TcpKeepalive {
            idle: Duration::from_secs(7),
            interval: Duration::from_secs(3),
            retries: 4,
        };
        set_keepalive(&stream, keepalive).expect("set");
        assert!(sock.keepalive().expect("SO_KEEPALIVE"));
        assert_eq!(sock.tcp_keepalive_time().expect("TCP_KEEPIDLE"), keepalive.idle);
        assert_eq!(
            sock.tcp_keepalive_interval().expect("TCP_KEEPINTVL"),
            keepalive.interval
        );
        assert_eq!(sock.tcp_keepalive_retries().expect("TCP_KEEPCNT"), keepalive.retries);
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
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let past = Instant::now();
        let result = tcp_connect::<()>("127.0.0.1", port, past, None);
        assert!(matches!(result, Err(DialError::TimedOut)), "{result:?}");
    }
}
