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
mod dial;
mod redial;
mod retry;

pub(crate) use body::{losses, Body, Cx, Protocol};
pub(crate) use dial::{connect_deadline, dial, DialError, Dialing, Resolver};
pub(crate) use redial::{reconnect, wait_handshake, Handshake, Redial, Redialed};
pub(crate) use retry::{deadline_after, retrying, Retry, Retrying};

use std::io;
use std::time::Instant;

use monocoque_proto::chassis::link::Endpoint;
use monocoque_proto::{Activity, ConnId, Driver, Session};

/// TCP keepalive on the client's socket (the chassis' type: the driver applies it when
/// it connects the socket, see [`SocketOptions`](monocoque_proto::chassis::SocketOptions)).
pub use monocoque_proto::chassis::TcpKeepalive;

/// The pool of a client with one server (a
/// [`Supervisor`](monocoque_proto::chassis::link::Supervisor) over it makes every
/// attempt a round of its own).
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
