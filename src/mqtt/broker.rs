//! [`Broker`]: the sans-IO broker on one driver thread.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use monocoque_mio::{MioConfig, MioDriver};
use monocoque_proto::mqtt::broker::{
    Access, BrokerState, ClusterMessage, Connection, ConnectionConfig, Connections, Link, StoreOp, SysTopics,
};
use monocoque_proto::ws::{WsConfig, WsSession};
use monocoque_proto::{
    Activity, ConnId, CoreId, Driver, Either, ListenerId, Mailbox, MailboxError, MailboxSender, Session, Waker,
};
use monocoque_uring::{UringConfig, UringDriver};

use super::cluster::ClusterStats;
use super::store::{Store, StoreError};
use super::transport::{self, Counted};
use crate::driver::{AnyDriver, DriverError, DriverKind};

/// How many messages from the other threads a thread's mailbox holds before their
/// senders wait (backpressure), unless the cluster's options say otherwise.
pub(crate) const MAILBOX_CAPACITY: usize = 4096;

/// How long a shutting-down broker waits for its connections to flush and close.
const SHUTDOWN_FLUSH: Duration = Duration::from_secs(3);

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
    driver: AnyDriver<Counted>,
    state: BrokerState<ConnId>,
    listener: ListenerId,
    ws_listener: Option<ListenerId>,
    config: ConnectionConfig,
    stop: Arc<AtomicBool>,
    /// The other threads, when this broker is one thread of a cluster.
    port: Option<Port>,
    /// Where this thread's figures go, and (thread 0) the `$SYS` schedule.
    stats: Option<(Arc<ClusterStats>, usize)>,
    sys: Option<SysTopics>,
    /// The persistent sessions' store, if the broker has one.
    store: Option<Store>,
    /// A turn's store operations, applied in one transaction.
    ops: Vec<StoreOp>,
    /// The connections that had input this turn: their acknowledgements wait for the
    /// turn's commit.
    touched: Vec<ConnId>,
}

/// One cluster thread's ends of the mailboxes.
struct Port {
    mailbox: Mailbox<ClusterMessage>,
    /// Every thread's sender, by index (this thread's own too, unused).
    peers: Vec<MailboxSender<ClusterMessage>>,
    /// This thread's driver's waker: a peer mailbox that is full wakes it once it
    /// has room.
    waker: Waker,
    /// Messages the state made, not yet in their mailbox: sent in order; a full
    /// mailbox holds this thread until it has room.
    pending: VecDeque<(usize, ClusterMessage)>,
    scratch: Vec<(usize, ClusterMessage)>,
    inbox: Vec<ClusterMessage>,
    /// What the driver reported while the thread was held, handled once it is not.
    deferred: Vec<Activity>,
}

impl Port {
    /// Moves the state's messages for the other threads into their mailboxes, in
    /// order, as far as they have room; what does not fit stays pending.
    fn put(&mut self, state: &mut BrokerState<ConnId>) {
        state.drain_cluster(&mut self.scratch);
        self.pending.extend(self.scratch.drain(..));
        while let Some((to, message)) = self.pending.pop_front() {
            let Some(peer) = self.peers.get(to) else { continue };
            match peer.send_or_notify(message, &self.waker) {
                // A thread that has ended takes nothing more.
                Ok(()) | Err(MailboxError::Wake(_)) | Err(MailboxError::Closed(_)) => {}
                Err(MailboxError::Full(message)) => {
                    self.pending.push_front((to, message));
                    break;
                }
            }
        }
    }
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

    /// The broker's driver waker (a cluster's threads wake each other at shutdown).
    pub(crate) fn waker(&self) -> Waker {
        self.waker.clone()
    }
}

/// The broker state's view of the driver's sessions; counts the bytes the state
/// queues to each connection (the growth of its arena while the state holds it: no
/// arena drains while the state runs).
struct DriverConnections<'a> {
    driver: &'a mut AnyDriver<Counted>,
    /// The connection the state last asked for, and its queued length then.
    last: Option<(ConnId, usize)>,
}

impl<'a> DriverConnections<'a> {
    fn new(driver: &'a mut AnyDriver<Counted>) -> Self {
        DriverConnections { driver, last: None }
    }

    /// Counts what the last connection asked for got queued.
    fn settle(&mut self) {
        if let Some((key, before)) = self.last.take() {
            if let Some(s) = self.driver.session_for_output(key) {
                transport::count_sent(transport::queued(&mut s.0).saturating_sub(before));
            }
        }
    }
}

impl Drop for DriverConnections<'_> {
    fn drop(&mut self) {
        self.settle();
    }
}

impl Connections<ConnId> for DriverConnections<'_> {
    fn connection(&mut self, key: ConnId) -> Option<&mut Connection> {
        self.settle();
        let session = self.driver.session_for_output(key)?;
        self.last = Some((key, transport::queued(&mut session.0)));
        Some(transport::connection(&mut session.0))
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
        Self::bind_on(addr, AnyDriver::new(kind)?, config, access)
    }

    fn bind_on(
        addr: SocketAddr,
        mut driver: AnyDriver<Counted>,
        config: ConnectionConfig,
        access: Access,
    ) -> Result<Broker, BrokerError> {
        let factory = Box::new(move |_, _, now: Instant| Counted(Either::Left(Connection::new(config, now))));
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
            port: None,
            stats: None,
            sys: None,
            store: None,
            ops: Vec::new(),
            touched: Vec::new(),
        })
    }

    /// Thread `me` of a cluster of `threads`: a driver for core `me` whose listeners
    /// share their port (`SO_REUSEPORT`), a state that tells the others through its
    /// mailbox (of `mailbox_capacity` messages); [`join`](Self::join) gives it the
    /// other threads' senders.
    pub(crate) fn cluster_member(
        addr: SocketAddr,
        kind: DriverKind,
        config: ConnectionConfig,
        access: Access,
        me: usize,
        threads: usize,
        mailbox_capacity: usize,
    ) -> Result<(Broker, MailboxSender<ClusterMessage>), BrokerError> {
        let core = CoreId(u16::try_from(me).unwrap_or(u16::MAX));
        let driver: AnyDriver<Counted> = match kind {
            DriverKind::Uring => UringDriver::with_config(UringConfig {
                reuse_port: true,
                core,
                ..UringConfig::default()
            })
            .map_err(DriverError::from)?
            .into(),
            DriverKind::Mio => MioDriver::with_config(MioConfig {
                reuse_port: true,
                core,
                ..MioConfig::default()
            })
            .map_err(DriverError::Mio)?
            .into(),
        };
        let mut broker = Self::bind_on(addr, driver, config, access)?;
        broker.state.set_cluster(Link::new(me, threads));
        let waker = broker.driver.waker()?;
        let (mailbox, sender) = Mailbox::new(mailbox_capacity, waker.clone());
        broker.port = Some(Port {
            mailbox,
            peers: Vec::new(),
            waker,
            pending: VecDeque::new(),
            scratch: Vec::new(),
            inbox: Vec::new(),
            deferred: Vec::new(),
        });
        Ok((broker, sender))
    }

    /// Gives a cluster thread every thread's mailbox sender, by thread index.
    pub(crate) fn join(&mut self, peers: Vec<MailboxSender<ClusterMessage>>) {
        if let Some(port) = &mut self.port {
            port.peers = peers;
        }
    }

    /// One round of the start-up exchange (see [`BrokerCluster::start`](super::BrokerCluster::start)):
    /// puts what the state has for the other threads (at first, the filters and shared
    /// group members of the sessions restored from the store) into their mailboxes as
    /// far as they have room, without waiting for it. Returns whether some did not fit.
    pub(crate) fn announce(&mut self) -> bool {
        match &mut self.port {
            Some(port) => {
                port.put(&mut self.state);
                !port.pending.is_empty()
            }
            None => false,
        }
    }

    /// The other half of a start-up round: applies what the other threads put in this
    /// thread's mailbox, which makes room for their next round.
    pub(crate) fn take_in(&mut self) {
        self.drain_mailbox();
    }

    /// Reports this thread's figures into `stats` (slot `index`); the thread that
    /// publishes `$SYS` gets `sys`.
    pub(crate) fn report_to(&mut self, stats: Arc<ClusterStats>, index: usize, sys: Option<SysTopics>) {
        self.stats = Some((stats, index));
        self.sys = sys;
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
        config.durable = true;
        let mut broker = Self::bind_with_access(addr, kind, config, access)?;
        broker.attach_store(store)?;
        Ok(broker)
    }

    /// Restores what `store` holds into this broker (before it runs) and keeps every
    /// change in it from then on, each acknowledgement held until its change is
    /// committed. The TCP listener's connections hold their acknowledgements only if
    /// the broker was bound with [`ConnectionConfig::durable`] set, as
    /// [`bind_with_store`](Self::bind_with_store) and the cluster do.
    pub(crate) fn attach_store(&mut self, store: Store) -> Result<(), BrokerError> {
        let loaded = store.load()?;
        self.config.durable = true;
        self.state.restore(
            loaded.sessions,
            loaded.retained,
            self.config.max_queued_messages,
            Instant::now(),
            // Deadlines are kept in wall time: the two clocks read together.
            SystemTime::now(),
        );
        self.store = Some(store);
        Ok(())
    }

    /// Also listens for MQTT over WebSocket on `addr` (subprotocol `mqtt`, RFC 6455;
    /// port 0 picks a free one), on the same driver and broker state as the TCP
    /// listener: publishes cross between the two. Returns the bound address.
    pub fn listen_websocket(&mut self, addr: SocketAddr) -> Result<SocketAddr, BrokerError> {
        let config = self.config;
        let ws = WsConfig::mqtt(config.max_packet_size);
        let factory = Box::new(move |_, _, now: Instant| {
            Counted(Either::Right(Box::new(WsSession::new(
                Connection::new(config, now),
                ws,
            ))))
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

    /// Runs until a [`Stopper`] stops it or the driver fails, then shuts down: stops
    /// accepting, sends every client `DISCONNECT` 0x8B (5.0), publishes every will,
    /// and flushes what it can within a few seconds.
    pub fn run(&mut self) -> Result<(), BrokerError> {
        let mut activity = Vec::new();
        while !self.stop.load(Ordering::Acquire) {
            activity.clear();
            // The state's own timers (delayed wills, session expiry) and the $SYS schedule
            // bound the wait.
            let deadline = match (
                self.state.poll_timeout(),
                self.sys.as_ref().map(SysTopics::poll_timeout),
            ) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.driver.turn(deadline, &mut activity)?;
            // The mailbox first: what another thread sent before this turn's input was
            // read (a retained message before a SUBSCRIBE) applies before that input.
            self.drain_mailbox();
            self.handle_activity(&mut activity);
            let now = Instant::now();
            if self.state.poll_timeout().is_some_and(|due| now >= due) {
                self.state
                    .handle_timeout(now, &mut DriverConnections::new(&mut self.driver));
            }
            self.publish_sys(now);
            self.send_cluster()?;
            self.commit()?;
            self.report();
        }
        let shut = self.shutdown();
        self.commit()?;
        shut
    }

    fn handle_activity(&mut self, activity: &mut Vec<Activity>) {
        for a in activity.drain(..) {
            match a {
                Activity::Ready(conn) => {
                    self.drain(conn);
                    if self.config.durable {
                        self.touched.push(conn);
                    }
                }
                Activity::Closed { conn, .. } => {
                    self.drain(conn);
                    self.driver.remove(conn);
                }
                Activity::Sent(conn) => {
                    // Only a durable connection asks: its queued messages start here, so
                    // this turn's commit holds their identifiers before they are written.
                    if let Some(c) = DriverConnections::new(&mut self.driver).connection(conn) {
                        c.start_queued();
                    }
                    self.drain(conn);
                }
                Activity::Accepted { .. } | Activity::Connected(_) | Activity::Woken => {}
            }
        }
    }

    /// Handles what the other threads sent (after a wake, and whenever convenient:
    /// a wake only says the mailbox went from empty to not).
    fn drain_mailbox(&mut self) {
        let Some(port) = &mut self.port else { return };
        port.mailbox.drain(&mut port.inbox);
        let mut conns = DriverConnections::new(&mut self.driver);
        let now = Instant::now();
        for message in port.inbox.drain(..) {
            self.state.handle_cluster(message, now, &mut conns);
        }
    }

    /// Moves the state's messages for the other threads into their mailboxes, in
    /// order. A full mailbox holds this thread until the receiver takes a batch out,
    /// which wakes this thread's driver ([`MailboxSender::send_or_notify`]): it waits
    /// in its own `turn`, no sleeping, no polling.
    ///
    /// While held it takes no more input from its connections, so their publishers
    /// are held by TCP flow control rather than by a queue here that grows. The
    /// connections' input is not bounded by itself (a connection decodes what it is
    /// fed into events at once), so leaving `Ready` unhandled would not do; instead
    /// the thread's connections are marked held ([`transport::set_held`]): one fed
    /// input while held has events the body has not taken, so its `wants_read` turns
    /// false and the driver stops reading it after that one receive. The driver's
    /// `Ready` and `Closed` reports are kept, in order, and handled once the messages
    /// are out; draining those connections has the driver look at `wants_read` again,
    /// which resumes their reading. A connection whose events were all taken before
    /// the hold never pauses (it has none), so none is left paused unseen.
    ///
    /// Meanwhile the thread keeps draining its own mailbox after every wake, so two
    /// threads full of each other's messages both make progress.
    fn send_cluster(&mut self) -> Result<(), BrokerError> {
        let mut activity = Vec::new();
        loop {
            let Some(port) = &mut self.port else { return Ok(()) };
            port.put(&mut self.state);
            if port.pending.is_empty() {
                transport::set_held(false);
                if port.deferred.is_empty() {
                    return Ok(());
                }
                // What the connections sent while held, handled now; it may make more
                // messages for the others: round again.
                let mut deferred = std::mem::take(&mut port.deferred);
                self.handle_activity(&mut deferred);
                if let Some(port) = &mut self.port {
                    port.deferred = deferred;
                }
                continue;
            }
            transport::set_held(true);
            // Returns at the peer's wake (room), a wake for our own mailbox, or the
            // driver's own activity (kept for later).
            activity.clear();
            self.driver.turn(None, &mut activity)?;
            if let Some(port) = &mut self.port {
                port.deferred.extend(
                    activity
                        .drain(..)
                        .filter(|a| matches!(a, Activity::Ready(_) | Activity::Closed { .. })),
                );
            }
            self.drain_mailbox();
        }
    }

    /// Publishes the `$SYS` topics when due (the thread that has the schedule).
    fn publish_sys(&mut self, now: Instant) {
        let (Some(sys), Some((stats, _))) = (self.sys.as_mut(), self.stats.as_ref()) else {
            return;
        };
        if now < sys.poll_timeout() {
            return;
        }
        let totals = stats.totals();
        let messages = sys.handle_timeout(now, &totals);
        let mut conns = DriverConnections::new(&mut self.driver);
        for message in messages {
            self.state.publish_system(message, now, &mut conns);
        }
    }

    /// Writes this thread's figures where the `$SYS` thread reads them.
    fn report(&self) {
        if let Some((stats, index)) = &self.stats {
            let (bytes_received, bytes_sent) = transport::bytes();
            stats.store(
                *index,
                super::cluster::ThreadFigures {
                    clients_connected: self.state.connected_count() as u64,
                    messages_received: self.state.messages_received(),
                    messages_sent: self.state.messages_sent(),
                    bytes_received,
                    bytes_sent,
                    subscriptions: self.state.subscription_count() as u64,
                    retained: self.state.retained_count() as u64,
                    connections: self.driver.connection_count() as u64,
                    forwards_received: self.state.forwards_received(),
                    forwards_sent: self.state.forwards_sent(),
                },
            );
        }
    }

    /// The end of [`run`](Self::run): no more clients, 0x8B and the wills to those
    /// connected (every thread's wills reach every thread's subscribers before they
    /// close), then the output flushed.
    fn shutdown(&mut self) -> Result<(), BrokerError> {
        let _ = self.driver.close_listener(self.listener);
        if let Some(ws) = self.ws_listener.take() {
            let _ = self.driver.close_listener(ws);
        }
        self.state
            .shutdown_wills(Instant::now(), &mut DriverConnections::new(&mut self.driver));
        self.send_cluster()?;
        let mut activity = Vec::new();
        if let Some((stats, _)) = &self.stats {
            let stats = Arc::clone(stats);
            stats.wills_sent();
            // Every thread's wills are in the mailboxes once all have said so; until
            // then keep taking ours (a sender may be waiting for room in it, and its
            // message wakes us). The last thread to say so wakes every thread
            // (`ClusterStats::wills_sent`): no poll.
            let give_up = Instant::now() + SHUTDOWN_FLUSH;
            while !stats.all_wills_sent() && Instant::now() < give_up {
                activity.clear();
                self.driver.turn(Some(give_up), &mut activity)?;
                self.handle_activity(&mut activity);
                self.drain_mailbox();
                self.send_cluster()?;
            }
            self.drain_mailbox();
            self.send_cluster()?;
        }
        self.state.disconnect_all(&mut DriverConnections::new(&mut self.driver));
        let give_up = Instant::now() + SHUTDOWN_FLUSH;
        while self.driver.connection_count() > 0 && Instant::now() < give_up {
            activity.clear();
            self.driver.turn(Some(give_up), &mut activity)?;
            self.handle_activity(&mut activity);
            self.drain_mailbox();
            self.send_cluster()?;
        }
        Ok(())
    }

    /// Group commit: applies the turn's store operations in one transaction (if there
    /// is a store), then lets the acknowledgements held on this turn's connections go
    /// (the next turn writes them), so a message acknowledged to its publisher is in the
    /// store and in the other threads' mailboxes.
    fn commit(&mut self) -> Result<(), BrokerError> {
        if let Some(store) = self.store.as_mut() {
            self.state.drain_store_ops(&mut self.ops);
            let applied = store.apply(&self.ops);
            self.ops.clear();
            applied?;
            // Sessions handed here are in this store now: their old threads may forget
            // them.
            if self.state.committed() {
                self.send_cluster()?;
            }
        }
        // Through DriverConnections, so the released bytes count for `$SYS`.
        let mut conns = DriverConnections::new(&mut self.driver);
        for conn in self.touched.drain(..) {
            if let Some(c) = conns.connection(conn) {
                c.release_held();
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
                .handle_event(conn, event, now, &mut DriverConnections::new(&mut self.driver));
        }
    }
}
