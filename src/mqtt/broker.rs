//! [`Broker`]: the sans-IO broker on one driver thread.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use monocoque_proto::mqtt::broker::{BrokerState, Connection, ConnectionConfig, Connections};
use monocoque_proto::{Activity, ConnId, Driver, ListenerId, Session, Waker};

use crate::driver::{AnyDriver, DriverError, DriverKind};

/// Why the broker could not start or stopped running.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    /// The driver could not be created.
    #[error(transparent)]
    Driver(#[from] DriverError),
    /// The listener could not be bound to its address.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// What the kernel said.
        #[source]
        source: io::Error,
    },
    /// The driver failed while running.
    #[error("the driver failed: {0}")]
    Io(#[from] io::Error),
}

/// An MQTT broker on one thread: one driver, one listener, one broker state.
///
/// Build it on the thread that runs it (the io_uring driver is single-issuer), then
/// [`run`](Self::run) it; a [`Stopper`] from [`stopper`](Self::stopper) ends the run
/// from any thread.
pub struct Broker {
    driver: AnyDriver<Connection>,
    state: BrokerState<ConnId>,
    listener: ListenerId,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("driver", &self.driver)
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

/// Stops a running [`Broker`] from another thread.
#[derive(Debug, Clone)]
pub struct Stopper {
    stop: Arc<AtomicBool>,
    waker: Waker,
}

impl Stopper {
    /// Asks the broker to return from [`Broker::run`] (at once if it is waiting); fails
    /// only if the driver's wake source cannot be signalled.
    pub fn stop(&self) -> io::Result<()> {
        self.stop.store(true, Ordering::Release);
        self.waker.wake()
    }
}

/// The broker state's view of the driver's sessions.
struct DriverConnections<'a>(&'a mut AnyDriver<Connection>);

impl Connections<ConnId> for DriverConnections<'_> {
    fn connection(&mut self, key: ConnId) -> Option<&mut Connection> {
        self.0.session_for_output(key)
    }
}

impl Broker {
    /// A broker listening on `addr` (port 0 picks a free one) on a driver of `kind`.
    pub fn bind(addr: SocketAddr, kind: DriverKind) -> Result<Broker, BrokerError> {
        Self::bind_with(addr, kind, ConnectionConfig::default())
    }

    /// [`bind`](Self::bind) with the connections' limits.
    pub fn bind_with(addr: SocketAddr, kind: DriverKind, config: ConnectionConfig) -> Result<Broker, BrokerError> {
        let mut driver = AnyDriver::new(kind)?;
        let factory = Box::new(move |_, _, now: Instant| Connection::new(config, now));
        let listener = driver
            .listen(addr, factory)
            .map_err(|source| BrokerError::Listen { addr, source })?;
        Ok(Broker {
            driver,
            state: BrokerState::new(),
            listener,
            stop: Arc::new(AtomicBool::new(false)),
        })
    }

    /// The address the listener is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.driver.listener_addr(self.listener)
    }

    /// The driver it runs on.
    pub fn driver_kind(&self) -> DriverKind {
        self.driver.kind()
    }

    /// A handle that stops [`run`](Self::run) from any thread.
    pub fn stopper(&mut self) -> io::Result<Stopper> {
        Ok(Stopper {
            stop: Arc::clone(&self.stop),
            waker: self.driver.waker()?,
        })
    }

    /// Runs until a [`Stopper`] stops it or the driver fails.
    pub fn run(&mut self) -> Result<(), BrokerError> {
        let mut activity = Vec::new();
        while !self.stop.load(Ordering::Acquire) {
            activity.clear();
            // The turn returns by the broker state's next deadline (a session's expiry).
            self.driver.turn(self.state.poll_timeout(), &mut activity)?;
            for a in activity.drain(..) {
                match a {
                    Activity::Ready(conn) => self.drain(conn),
                    Activity::Closed { conn, .. } => {
                        self.drain(conn);
                        self.driver.remove(conn);
                    }
                    Activity::Accepted { .. } | Activity::Connected(_) | Activity::Woken => {}
                }
            }
            if self.state.poll_timeout().is_some_and(|at| at <= Instant::now()) {
                self.state.handle_timeout(Instant::now());
            }
        }
        Ok(())
    }

    /// Feeds a connection's events to the broker state, in order.
    fn drain(&mut self, conn: ConnId) {
        loop {
            let Some(event) = self.driver.session_for_output(conn).and_then(Session::poll_event) else {
                return;
            };
            // Instants are read here, in the body; the state machines only receive them.
            let now = Instant::now();
            self.state
                .handle_event(conn, event, now, &mut DriverConnections(&mut self.driver));
        }
    }
}
