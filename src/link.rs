//! The body side of a link, shared by every client: the TCP connect bounded by the
//! caller's remaining time, TCP keepalive, handing the socket and its session to the
//! driver, the driver turn that says what happened to the link, and the reconnect loop
//! that carries out the chassis' supervisor ([`monocoque_proto::chassis::link`]): the
//! backoff and the handshake are waited in the driver, never past the caller's deadline.
//! What a protocol replays on a new connection, and how its events map onto the public
//! API, stays with each client (through [`Redial`]).

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use monocoque_proto::chassis::link::{Action, Endpoint, GaveUp, Supervisor};
use monocoque_proto::{Activity, ConnId, Driver, Session};

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

    use monocoque_proto::CoreId;

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
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let past = Instant::now();
        let result = tcp_connect::<()>("127.0.0.1", port, past, None);
        assert!(matches!(result, Err(DialError::TimedOut)), "{result:?}");
    }
}
