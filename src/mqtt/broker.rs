//! [`Broker`]: the sans-IO broker on one driver thread.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use monocoque_proto::mqtt::broker::{Access, BrokerState, Connection, ConnectionConfig, Connections, StoreOp};
use monocoque_proto::ws::{WsConfig, WsSession};
use monocoque_proto::{Activity, ConnId, Driver, Either, ListenerId, Session, Waker};

use super::store::{Store, StoreError};
use super::transport::{self, BrokerSession};
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
    /// The store could not be read at start or written while running (the broker
    /// stops rather than acknowledge what it cannot keep).
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// An MQTT broker on one thread: one driver, one listener (and optionally a WebSocket
/// one, [`listen_websocket`](Self::listen_websocket)), one broker state.
///
/// Build it on the thread that runs it (the io_uring driver is single-issuer), then
/// [`run`](Self::run) it; a [`Stopper`] from [`stopper`](Self::stopper) ends the run
/// from any thread.
pub struct Broker {
    driver: AnyDriver<BrokerSession>,
    state: BrokerState<ConnId>,
    listener: ListenerId,
    ws_listener: Option<ListenerId>,
    config: ConnectionConfig,
    stop: Arc<AtomicBool>,
    /// The persistent sessions' store, if the broker has one.
    store: Option<Store>,
    /// A turn's store operations, applied in one transaction.
    ops: Vec<StoreOp>,
    /// The connections that had input this turn: their acknowledgements wait for the
    /// turn's commit.
    touched: Vec<ConnId>,
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
struct DriverConnections<'a>(&'a mut AnyDriver<BrokerSession>);

impl Connections<ConnId> for DriverConnections<'_> {
    fn connection(&mut self, key: ConnId) -> Option<&mut Connection> {
        self.0.session_for_output(key).map(transport::connection)
    }
}

impl Broker {
    /// A broker listening on `addr` (port 0 picks a free one) on a driver of `kind`.
    pub fn bind(addr: SocketAddr, kind: DriverKind) -> Result<Broker, BrokerError> {
        Self::bind_with(addr, kind, ConnectionConfig::default())
    }

    /// [`bind`](Self::bind) with the connections' limits.
    pub fn bind_with(addr: SocketAddr, kind: DriverKind, config: ConnectionConfig) -> Result<Broker, BrokerError> {
        Self::bind_with_access(addr, kind, config, Access::default())
    }

    /// [`bind_with`](Self::bind_with), authenticating, authorizing and redirecting
    /// clients as `access` says (a [`BrokerConfig`](super::BrokerConfig) file's, or an
    /// embedder's with its own [`EnhancedAuth`](monocoque_proto::mqtt::broker::EnhancedAuth)).
    pub fn bind_with_access(
        addr: SocketAddr,
        kind: DriverKind,
        config: ConnectionConfig,
        access: Access,
    ) -> Result<Broker, BrokerError> {
        let mut driver = AnyDriver::new(kind)?;
        let factory = Box::new(move |_, _, now: Instant| Either::Left(Connection::new(config, now)));
        let listener = driver
            .listen(addr, factory)
            .map_err(|source| BrokerError::Listen { addr, source })?;
        Ok(Broker {
            driver,
            state: BrokerState::with_access(access),
            listener,
            ws_listener: None,
            config,
            stop: Arc::new(AtomicBool::new(false)),
            store: None,
            ops: Vec::new(),
            touched: Vec::new(),
        })
    }

    /// [`bind_with_access`](Self::bind_with_access) with a [`Store`]: the persistent
    /// sessions, their subscriptions, their QoS 1 and 2 messages and the retained
    /// messages it holds are restored, and every change to them is committed before the
    /// acknowledgement that depends on it (`PUBACK`, `PUBREC`, `PUBCOMP`) is sent.
    pub fn bind_with_store(
        addr: SocketAddr,
        kind: DriverKind,
        mut config: ConnectionConfig,
        access: Access,
        store: Store,
    ) -> Result<Broker, BrokerError> {
        let loaded = store.load()?;
        config.durable = true;
        let mut broker = Self::bind_with_access(addr, kind, config, access)?;
        broker.state.restore(
            loaded.sessions,
            loaded.retained,
            config.max_queued_messages,
            Instant::now(),
        );
        broker.store = Some(store);
        Ok(broker)
    }

    /// Also listens for MQTT over WebSocket on `addr` (subprotocol `mqtt`, RFC 6455;
    /// port 0 picks a free one), on the same driver and broker state as the TCP
    /// listener: publishes cross between the two. Returns the bound address.
    pub fn listen_websocket(&mut self, addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
        let config = self.config;
        let ws = WsConfig::mqtt(config.max_packet_size);
        let factory = Box::new(move |_, _, now: Instant| {
            Either::Right(Box::new(WsSession::new(Connection::new(config, now), ws)))
        });
        let listener = self
            .driver
            .listen(addr, factory)
            .map_err(|source| BrokerError::Listen { addr, source })?;
        self.ws_listener = Some(listener);
        Ok(self.driver.listener_addr(listener)?)
    }

    /// The address of the WebSocket listener, if there is one.
    pub fn websocket_addr(&self) -> Option<io::Result<SocketAddr>> {
        self.ws_listener.map(|l| self.driver.listener_addr(l))
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
            // The turn returns by the broker state's next deadline (a delayed will, a
            // session's expiry).
            self.driver.turn(self.state.poll_timeout(), &mut activity)?;
            for a in activity.drain(..) {
                match a {
                    Activity::Ready(conn) => {
                        self.drain(conn);
                        if self.store.is_some() {
                            self.touched.push(conn);
                        }
                    }
                    Activity::Closed { conn, .. } => {
                        self.drain(conn);
                        self.driver.remove(conn);
                    }
                    Activity::Accepted { .. } | Activity::Connected(_) | Activity::Woken => {}
                }
            }
            let now = Instant::now();
            if self.state.poll_timeout().is_some_and(|due| now >= due) {
                self.state.handle_timeout(now, &mut DriverConnections(&mut self.driver));
            }
            self.commit()?;
        }
        self.commit()
    }

    /// Group commit: applies the turn's store operations in one transaction, then lets
    /// the acknowledgements held on this turn's connections go (the next turn writes
    /// them), so a message acknowledged to its publisher is in the store.
    fn commit(&mut self) -> Result<(), BrokerError> {
        let Some(store) = self.store.as_mut() else {
            return Ok(());
        };
        self.state.drain_store_ops(&mut self.ops);
        let applied = store.apply(&self.ops);
        self.ops.clear();
        applied?;
        for conn in self.touched.drain(..) {
            if let Some(session) = self.driver.session_for_output(conn) {
                transport::connection(session).release_held();
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
            let event = transport::event(event);
            // Instants are read here, in the body; the state machines only receive them.
            let now = Instant::now();
            self.state
                .handle_event(conn, event, now, &mut DriverConnections(&mut self.driver));
        }
    }
}
