//! The client body every protocol shares: the driver, the connection it holds, the
//! chassis' [`Supervisor`] over the server pool, and the operations around them (one
//! driver turn and what it reported, the session's events drained into the protocol,
//! killing, burying, starting and re-establishing the link, the backpressure retry
//! loop). What differs per protocol (how a session is built, what its events mean,
//! what a new connection replays, which error a failure becomes) is a [`Protocol`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use monocoque_proto::chassis::link::{Endpoint, Rng, Supervisor};
use monocoque_proto::{Activity, Driver, Session};

use super::{DialError, Handshake, Link, Redial, Redialed, Resolver, TcpKeepalive};
use crate::LinkError;

/// The protocol side of a [`Body`]: the hooks its shared operations call.
pub(crate) trait Protocol: Sized {
    /// The sans-IO session the driver runs.
    type Session: Session;
    /// A server of the pool.
    type Server: Endpoint;
    /// Why a link died.
    type Lost: Clone;
    /// What the protocol keeps per connection.
    type State: Default;
    /// The client's error (a failure of the link itself is a [`LinkError`]).
    type Error: Clone + From<LinkError<Self::Error>>;

    // ---- connecting ----

    /// Where `server` is: host name (or IP literal) and port.
    fn address(&self, server: &Self::Server) -> (String, u16);
    /// How errors name `server` (`host:port`).
    fn server_name(&self, server: &Self::Server) -> String;
    /// How long a connection attempt may take, TCP connect and handshake.
    fn connect_timeout(&self) -> Duration;
    /// How long past the connect timeout the body gives a handshake still in progress
    /// (a backstop, for a session that enforces the timeout itself).
    fn handshake_grace(&self) -> Duration {
        Duration::ZERO
    }
    /// TCP keepalive for the socket, if any.
    fn keepalive(&self) -> Option<TcpKeepalive> {
        None
    }
    /// The session of a connect to `server` started at `now`.
    fn session(&mut self, server: &Self::Server, rng: &mut Rng, now: Instant) -> Result<Self::Session, Self::Error>;
    /// The session of a connect that failed (what it carried may go into the next).
    fn salvage(&mut self, session: Self::Session) {
        drop(session);
    }
    /// A new connection was handed to the driver: queue what it replays.
    fn started(&mut self, session: &mut Self::Session, link: &mut Link<Self::Lost, Self::State>) {
        let _ = (session, link);
    }

    // ---- events ----

    /// One event of the current connection's session.
    fn on_event(&mut self, cx: &mut Cx<'_, Self>, event: <Self::Session as Session>::Event);
    /// Every event the session had was handled (it is still in the driver).
    fn drained(&mut self, session: &Self::Session) {
        let _ = session;
    }
    /// Why the session ended, if it did.
    fn ended(session: &Self::Session) -> Option<Self::Lost>;
    /// The reason of a connection that closed without one of its own.
    fn closed() -> Self::Lost;
    /// The reason of a handshake that did not complete in time.
    fn handshake_timeout(&self) -> Self::Lost;
    /// The error a lost link becomes (a failed attempt, a failed first connection).
    fn failure(lost: Self::Lost) -> Self::Error;
    /// Whether `error` says the server refused the credentials (it is skipped for the
    /// rest of the reconnect).
    fn refused(error: &Self::Error) -> bool {
        let _ = error;
        false
    }
    /// A dead link was taken out of the driver, with its session (if the driver still
    /// had it): keep what the next connection carries, fail what was on it. `lost` is
    /// why it died; the body counts a link that never completed its handshake as a
    /// failed attempt afterwards.
    fn buried(&mut self, link: Link<Self::Lost, Self::State>, session: Option<Self::Session>, lost: &Self::Lost);
    /// Why the link died when the driver itself failed with `error` (what the call
    /// reports).
    fn driver_lost(error: &Self::Error) -> Self::Lost;
    /// After the link was buried for a driver failure.
    fn aborted(&mut self) {}
    /// After every driver turn.
    fn turned(&mut self) {}
}

/// The [`Protocol`] hooks on a lost connection for a client whose session `$session`
/// keeps why it ended (`is_closed`, `error`) as a `$lost` with `Closed` and
/// `HandshakeTimeout` variants, and whose `$error` comes `From` it (the NATS and MQTT
/// clients); expands inside their `impl Protocol`.
macro_rules! losses {
    ($session:ty, lost: $lost:ident, error: $error:ty) => {
        fn ended(session: &$session) -> Option<$lost> {
            session
                .is_closed()
                .then(|| session.error().cloned().unwrap_or($lost::Closed))
        }

        fn closed() -> $lost {
            $lost::Closed
        }

        fn handshake_timeout(&self) -> $lost {
            $lost::HandshakeTimeout
        }

        fn failure(lost: $lost) -> $error {
            <$error>::from(lost)
        }
    };
}

pub(crate) use losses;

/// What a protocol's event handler may do to the link: the link itself, the pool, and
/// the connection's coming up.
pub(crate) struct Cx<'a, P: Protocol> {
    /// The current connection.
    pub(crate) link: &'a mut Link<P::Lost, P::State>,
    /// The server pool.
    pub(crate) supervisor: &'a mut Supervisor<P::Server, P::Error>,
    connections: &'a mut u64,
}

impl<P: Protocol> Cx<'_, P> {
    /// The handshake completed: the link is ready, the reconnect (if any) is over, the
    /// connection is counted. Returns how many connections were made so far, or `None`
    /// when the link was already up.
    pub(crate) fn up(&mut self) -> Option<u64> {
        if self.link.ready {
            return None;
        }
        self.link.ready = true;
        let server = self.supervisor.current();
        self.supervisor.succeeded(server);
        *self.connections += 1;
        Some(*self.connections)
    }

    /// Marks the link dead (the first reason wins).
    pub(crate) fn kill(&mut self, lost: P::Lost) {
        self.link.kill(lost);
    }
}

/// A client's link machinery over driver `D`, for protocol `P` (whose own state is
/// [`proto`](Self::proto)).
pub(crate) struct Body<D, P: Protocol> {
    /// The driver, on the calling thread.
    pub(crate) driver: D,
    /// The protocol's state and hooks.
    pub(crate) proto: P,
    /// The current connection, if any.
    pub(crate) link: Option<Link<P::Lost, P::State>>,
    /// The server pool and the reconnect in progress, if any: kept across calls, so a
    /// call that runs out of time leaves it where it was and the next call continues it.
    pub(crate) supervisor: Supervisor<P::Server, P::Error>,
    /// Connections made so far (handshakes completed).
    pub(crate) connections: u64,
    /// Why the last connection was lost.
    pub(crate) last_loss: Option<P::Lost>,
    /// When the driver last turned (a clock the hot path may use instead of reading one).
    pub(crate) last_turn: Instant,
    /// Resolves server host names off the driver's thread.
    resolver: Resolver,
    /// The driver's reports, a buffer reused across turns.
    activities: Vec<Activity>,
}

impl<D: Driver<P::Session>, P: Protocol> Body<D, P> {
    /// A body with no connection yet.
    pub(crate) fn new(driver: D, proto: P, supervisor: Supervisor<P::Server, P::Error>) -> Self {
        Self {
            driver,
            proto,
            link: None,
            supervisor,
            connections: 0,
            last_loss: None,
            last_turn: Instant::now(),
            resolver: Resolver::default(),
            activities: Vec::new(),
        }
    }

    // ---- the link's state ----

    /// Whether a connection is up: handshake complete, not dead.
    pub(crate) fn is_live(&self) -> bool {
        self.link.as_ref().is_some_and(Link::is_live)
    }

    /// Whether a connection completed its handshake (dead or not).
    pub(crate) fn is_ready(&self) -> bool {
        self.link.as_ref().is_some_and(|l| l.ready)
    }

    /// Why the current connection died, if it did.
    pub(crate) fn dead(&self) -> Option<&P::Lost> {
        self.link.as_ref().and_then(|l| l.dead.as_ref())
    }

    /// What a call on a connection that is gone reports: why the last one was lost.
    pub(crate) fn lost(&self) -> P::Lost {
        self.last_loss.clone().unwrap_or_else(P::closed)
    }

    /// The current connection's session, to read.
    pub(crate) fn session(&self) -> Option<&P::Session> {
        self.driver.session(self.link.as_ref()?.conn)
    }

    /// The current connection's session, if it is up.
    pub(crate) fn live_session(&mut self) -> Option<&mut P::Session> {
        let link = self.link.as_ref().filter(|l| l.is_live())?;
        self.driver.session_for_output(link.conn)
    }

    /// The current connection's session if it is not dead, its handshake complete or
    /// not.
    pub(crate) fn current_session(&mut self) -> Option<&mut P::Session> {
        let link = self.link.as_ref().filter(|l| l.dead.is_none())?;
        self.driver.session_for_output(link.conn)
    }

    // ---- the driver ----

    /// One driver turn until `deadline`; the link's events go to the protocol. A driver
    /// failure buries the link.
    pub(crate) fn turn(&mut self, deadline: Option<Instant>) -> Result<(), P::Error> {
        let conn = self.link.as_ref().map(|l| l.conn);
        let result = super::turn(&mut self.driver, &mut self.activities, deadline, conn);
        self.last_turn = Instant::now();
        self.proto.turned();
        let reported = match result {
            Ok(reported) => reported,
            Err(e) => {
                let error = P::Error::from(LinkError::Driver(Arc::new(e)));
                self.kill_link(P::driver_lost(&error));
                self.bury_link();
                self.proto.aborted();
                return Err(error);
            }
        };
        if reported.ready || reported.closed {
            self.drain_events();
        }
        if reported.closed {
            self.kill_link(P::closed());
        }
        Ok(())
    }

    /// One turn of a call that waits until `deadline`: until it, or a turn that only
    /// polls once it has passed (one last look at what already arrived). Whether it was
    /// that last look.
    pub(crate) fn wait_turn(&mut self, deadline: Option<Instant>) -> Result<bool, P::Error> {
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            self.turn(Some(now))?;
            return Ok(true);
        }
        self.turn(deadline)?;
        Ok(false)
    }

    /// Hands the current connection's events to the protocol, straight from the session.
    pub(crate) fn drain_events(&mut self) {
        let Self {
            driver,
            proto,
            link,
            supervisor,
            connections,
            ..
        } = self;
        let Some(link) = link.as_mut() else { return };
        let Some(session) = driver.session_for_output(link.conn) else {
            return;
        };
        let mut cx = Cx {
            link,
            supervisor,
            connections,
        };
        while let Some(event) = session.poll_event() {
            proto.on_event(&mut cx, event);
        }
        proto.drained(session);
        if let Some(lost) = P::ended(session) {
            link.kill(lost);
        }
    }

    // ---- the link ----

    /// Marks the current connection dead (the first reason wins).
    pub(crate) fn kill_link(&mut self, lost: P::Lost) {
        if let Some(link) = &mut self.link {
            link.kill(lost);
        }
    }

    /// Buries the current connection if it is dead; whether it was.
    pub(crate) fn bury_dead(&mut self) -> bool {
        let dead = self.dead().is_some();
        if dead {
            self.bury_link();
        }
        dead
    }

    /// Takes the connection out of the driver: what it still reported goes to the
    /// protocol, then the protocol keeps what the next connection needs. A connection
    /// whose handshake never completed was a reconnect attempt: its failure is the
    /// reconnect's latest.
    pub(crate) fn bury_link(&mut self) {
        let Some(conn) = self.link.as_ref().map(|l| l.conn) else {
            return;
        };
        self.drain_events();
        let mut session = self.driver.remove(conn);
        if let (Some(session), Some(link)) = (session.as_mut(), self.link.as_mut()) {
            let mut cx = Cx {
                link,
                supervisor: &mut self.supervisor,
                connections: &mut self.connections,
            };
            while let Some(event) = session.poll_event() {
                self.proto.on_event(&mut cx, event);
            }
        }
        let Some(mut link) = self.link.take() else { return };
        let lost = link.dead.take().unwrap_or_else(P::closed);
        let ready = link.ready;
        self.last_loss = Some(lost.clone());
        self.proto.buried(link, session, &lost);
        if !ready {
            let failure = P::failure(lost);
            let refused = P::refused(&failure);
            let server = self.supervisor.current();
            self.supervisor.failed(server, failure, refused);
        }
    }

    /// Continues the reconnect (or starts one) until a link is ready or `deadline`: see
    /// [`super::reconnect`].
    pub(crate) fn reconnect(&mut self, deadline: Option<Instant>) -> Result<(), Redialed<P::Error>> {
        super::reconnect(self, deadline)
    }

    /// One connection attempt to server `index`, all the way: start it, then wait for
    /// the handshake (bounded by the connect timeout).
    pub(crate) fn open_link(&mut self, index: usize) -> Result<(), P::Error> {
        self.start_link(index, None)?;
        match super::wait_handshake(self, None) {
            Handshake::Ready => Ok(()),
            Handshake::Dead(lost) => Err(P::failure(lost.unwrap_or_else(P::closed))),
            Handshake::Failed(e) => Err(e),
            // Not reached: without a limit the wait ends only with the handshake.
            Handshake::Later => Err(P::failure(self.proto.handshake_timeout())),
        }
    }

    /// Starts a connection attempt to server `index`: the TCP connect (within the
    /// connect timeout and `deadline`) with the session the protocol builds, handed to
    /// the driver, with what the protocol replays queued. The handshake completes in
    /// later turns.
    pub(crate) fn start_link(&mut self, index: usize, deadline: Option<Instant>) -> Result<(), P::Error> {
        let Some(server) = self.supervisor.servers().get(index).cloned() else {
            return Err(P::failure(P::closed()));
        };
        let (host, port) = self.proto.address(&server);
        let timeout = self.proto.connect_timeout();
        let keepalive = self.proto.keepalive();
        let start = Instant::now();
        let handshake_by = start + timeout + self.proto.handshake_grace();
        let tcp_deadline = super::connect_deadline(start, timeout, deadline);
        let dialing = Dialing {
            proto: &mut self.proto,
            rng: self.supervisor.rng(),
            server: &server,
        };
        let dialed = super::dial(
            &mut self.driver,
            &mut self.resolver,
            &mut self.activities,
            (&host, port),
            tcp_deadline,
            keepalive,
            dialing,
        );
        let conn = dialed.map_err(|e| {
            let server = self.proto.server_name(&server);
            match e {
                // What a timeout reports: the time the TCP connect was given.
                DialError::TimedOut => P::Error::from(LinkError::ConnectTimeout {
                    server,
                    timeout: tcp_deadline.saturating_duration_since(start),
                }),
                DialError::Io(e) => P::Error::from(LinkError::Connect {
                    server,
                    source: Arc::new(e),
                }),
                DialError::Session(e) => e,
            }
        })?;
        self.supervisor.set_current(index);
        let link = self.link.insert(Link::new(conn, handshake_by));
        if let Some(session) = self.driver.session_for_output(conn) {
            self.proto.started(session, link);
        }
        self.drain_events();
        Ok(())
    }
}

/// How [`Body::start_link`]'s dial builds its sessions: through the protocol.
struct Dialing<'a, P: Protocol> {
    proto: &'a mut P,
    rng: &'a mut Rng,
    server: &'a P::Server,
}

impl<P: Protocol> super::Dialing<P::Session> for Dialing<'_, P> {
    type Error = P::Error;

    fn session(&mut self, now: Instant) -> Result<P::Session, P::Error> {
        self.proto.session(self.server, self.rng, now)
    }

    fn salvage(&mut self, session: P::Session) {
        self.proto.salvage(session);
    }
}

/// The steps of the shared reconnect loop ([`super::reconnect`]), for every protocol.
impl<D: Driver<P::Session>, P: Protocol> Redial for Body<D, P> {
    type Server = P::Server;
    type Lost = P::Lost;
    type State = P::State;
    type Error = P::Error;

    fn supervisor(&mut self) -> &mut Supervisor<P::Server, P::Error> {
        &mut self.supervisor
    }

    fn link(&self) -> Option<&Link<P::Lost, P::State>> {
        self.link.as_ref()
    }

    fn start_link(&mut self, index: usize, deadline: Option<Instant>) -> Result<(), P::Error> {
        Body::start_link(self, index, deadline)
    }

    fn handshake_timed_out(&mut self) {
        let lost = self.proto.handshake_timeout();
        self.kill_link(lost);
    }

    fn bury_link(&mut self) {
        Body::bury_link(self);
    }

    fn turn_until(&mut self, until: Instant) -> Result<(), P::Error> {
        self.turn(Some(until))
    }

    fn refused(error: &P::Error) -> bool {
        P::refused(error)
    }
}
