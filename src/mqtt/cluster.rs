//! [`BrokerCluster`]: the broker on N threads, one driver and one listener each on the
//! same port (`SO_REUSEPORT`: the kernel spreads connections by a hash of their
//! addresses), each thread with its own sessions.
//!
//! The threads share no lock on the hot path: what one thread must tell the others
//! (publishes, to the threads with a matching subscription only; the filters each
//! thread subscribes; shared group members; client identifiers taken over) goes into their
//! bounded mailboxes and wakes their drivers
//! ([`cluster`](monocoque_proto::mqtt::broker::cluster) says what travels). The
//! figures for `$SYS` are per-thread atomics that thread 0 sums when it publishes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monocoque_proto::mqtt::broker::{Access, ClusterMessage, ConnectionConfig, SysTopics, SysTotals};
use monocoque_proto::{MailboxSender, Waker};

use super::broker::{Broker, BrokerError, Stopper};
use super::store::Store;
use crate::driver::DriverKind;

/// What `$SYS/broker/version` says.
const VERSION: &str = concat!("monocoque ", env!("CARGO_PKG_VERSION"));

/// One thread's figures, as it last reported them.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ThreadFigures {
    pub(crate) clients_connected: u64,
    pub(crate) messages_received: u64,
    pub(crate) messages_sent: u64,
    pub(crate) bytes_received: u64,
    pub(crate) bytes_sent: u64,
    pub(crate) subscriptions: u64,
    pub(crate) retained: u64,
    /// TCP connections the driver holds (with a session or not yet).
    pub(crate) connections: u64,
    /// Publishes the other threads forwarded to this one.
    pub(crate) forwards_received: u64,
    /// Publishes this thread forwarded to others (once per thread each went to).
    pub(crate) forwards_sent: u64,
}

#[derive(Debug, Default)]
struct Slot {
    figures: [AtomicU64; 10],
}

/// Every thread's figures (each writes its own slot), and the shutdown count with the
/// threads' wakers that tell them when it is complete.
#[derive(Debug)]
pub(crate) struct ClusterStats {
    slots: Vec<Slot>,
    wills_sent: AtomicUsize,
    /// Every thread's driver waker, once all are bound: the thread that completes the
    /// shutdown count wakes the others, which wait in their `turn` until then.
    wakers: OnceLock<Vec<Waker>>,
}

impl ClusterStats {
    fn new(threads: usize) -> Self {
        ClusterStats {
            slots: (0..threads).map(|_| Slot::default()).collect(),
            wills_sent: AtomicUsize::new(0),
            wakers: OnceLock::new(),
        }
    }

    /// The threads' wakers, for [`wills_sent`](Self::wills_sent) (set once, before
    /// the threads run).
    pub(crate) fn set_wakers(&self, wakers: Vec<Waker>) {
        let _ = self.wakers.set(wakers);
    }

    /// Thread `index` reports.
    pub(crate) fn store(&self, index: usize, f: ThreadFigures) {
        let Some(slot) = self.slots.get(index) else { return };
        let values = [
            f.clients_connected,
            f.messages_received,
            f.messages_sent,
            f.bytes_received,
            f.bytes_sent,
            f.subscriptions,
            f.retained,
            f.connections,
            f.forwards_received,
            f.forwards_sent,
        ];
        for (a, v) in slot.figures.iter().zip(values) {
            a.store(v, Ordering::Relaxed);
        }
    }

    fn load(&self, index: usize) -> ThreadFigures {
        let Some(slot) = self.slots.get(index) else {
            return ThreadFigures::default();
        };
        let v = |i: usize| slot.figures[i].load(Ordering::Relaxed);
        ThreadFigures {
            clients_connected: v(0),
            messages_received: v(1),
            messages_sent: v(2),
            bytes_received: v(3),
            bytes_sent: v(4),
            subscriptions: v(5),
            retained: v(6),
            connections: v(7),
            forwards_received: v(8),
            forwards_sent: v(9),
        }
    }

    /// The sums over every thread (retained: the largest replica).
    pub(crate) fn totals(&self) -> SysTotals {
        let mut t = SysTotals::default();
        for i in 0..self.slots.len() {
            let f = self.load(i);
            t.clients_connected += f.clients_connected;
            t.messages_received += f.messages_received;
            t.messages_sent += f.messages_sent;
            t.bytes_received += f.bytes_received;
            t.bytes_sent += f.bytes_sent;
            t.subscriptions += f.subscriptions;
            t.retained = t.retained.max(f.retained);
        }
        t
    }

    /// This thread, shutting down, has put its wills in the other threads' mailboxes.
    /// The last thread to say so wakes every thread: those waiting for
    /// [`all_wills_sent`](Self::all_wills_sent) wait in their driver's `turn`, not in
    /// a poll.
    pub(crate) fn wills_sent(&self) {
        let sent = self.wills_sent.fetch_add(1, Ordering::AcqRel) + 1;
        if sent == self.slots.len() {
            for waker in self.wakers.get().into_iter().flatten() {
                // A thread that has ended has nothing left to wait for.
                let _ = waker.wake();
            }
        }
    }

    /// Every thread has.
    pub(crate) fn all_wills_sent(&self) -> bool {
        self.wills_sent.load(Ordering::Acquire) >= self.slots.len()
    }
}

/// How a [`BrokerCluster`] runs.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    /// Threads (at least 1), each a driver with its own listener.
    pub threads: usize,
    /// The driver every thread runs.
    pub driver: DriverKind,
    /// The connections' limits.
    pub connection: ConnectionConfig,
    /// Also listen for MQTT over WebSocket here (each thread).
    pub ws_listen: Option<SocketAddr>,
    /// How often thread 0 publishes the `$SYS/broker/...` topics; `None`: never.
    pub sys_interval: Option<Duration>,
    /// The store's directory (thread N keeps `DIR/thread-N.redb`); `None`: nothing
    /// persists.
    pub data: Option<PathBuf>,
    /// How many messages from the other threads each thread's mailbox holds before
    /// their senders wait for room (at least 1). A smaller one holds publishers
    /// sooner; tests make it tiny to exercise the wait.
    pub mailbox_capacity: usize,
}

impl ClusterOptions {
    /// `threads` threads of `driver`, default limits, no WebSocket, `$SYS` every
    /// 10 seconds, mailboxes of 4,096 messages.
    pub fn new(threads: usize, driver: DriverKind) -> Self {
        ClusterOptions {
            threads,
            driver,
            connection: ConnectionConfig::default(),
            ws_listen: None,
            sys_interval: Some(super::config::DEFAULT_SYS_INTERVAL),
            data: None,
            mailbox_capacity: super::broker::MAILBOX_CAPACITY,
        }
    }
}

/// The threads' default count: one per core the process may use.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A broker on several threads (see the module's documentation). Started by
/// [`start`](Self::start); [`stop`](Self::stop) shuts every thread down (wills, 0x8B)
/// and [`join`](Self::join) waits for them.
#[derive(Debug)]
pub struct BrokerCluster {
    addr: SocketAddr,
    ws_addr: Option<SocketAddr>,
    stoppers: Vec<Stopper>,
    handles: Vec<JoinHandle<Result<(), BrokerError>>>,
    stats: Arc<ClusterStats>,
}

/// What a thread reports once its listeners are bound.
type Bound = Result<(SocketAddr, Option<SocketAddr>, MailboxSender<ClusterMessage>, Stopper), BrokerError>;

/// The threads' meeting points for the start-up exchange of restored filters, and
/// per round parity the count of threads that still had messages that did not fit.
struct StartRounds {
    barrier: Barrier,
    unsent: [AtomicUsize; 2],
}

impl StartRounds {
    fn new(threads: usize) -> StartRounds {
        StartRounds {
            barrier: Barrier::new(threads),
            unsent: [AtomicUsize::new(0), AtomicUsize::new(0)],
        }
    }
}

/// Before any thread takes a client, every thread applies what the others restored
/// from their stores (their sessions' filters and shared group members): a message
/// published on one thread to a subscription restored on another is forwarded from
/// the first client on (a client with an assigned identifier makes no round trip
/// through the other threads before it publishes, so nothing else would hold it).
/// Mailboxes are bounded, so this goes in rounds: every thread puts what fits, all
/// meet, every thread takes in what it was sent, all meet, and they go round again
/// while any thread had messages left over. Before, what did not fit in one mailbox
/// (past 4,096 filters) went only once its thread had woken for something else, and a
/// QoS 1 message published to one of those filters elsewhere meanwhile was
/// acknowledged and lost.
fn exchange_restored(broker: &mut Broker, rounds: &StartRounds) {
    for round in 0.. {
        if broker.announce() {
            rounds.unsent[round % 2].fetch_add(1, Ordering::AcqRel);
        }
        // Everyone has read the count of two rounds ago (at the end of the last
        // round): it is this round's to clear for the next.
        if rounds.barrier.wait().is_leader() {
            rounds.unsent[(round + 1) % 2].store(0, Ordering::Release);
        }
        broker.take_in();
        rounds.barrier.wait();
        if rounds.unsent[round % 2].load(Ordering::Acquire) == 0 {
            return;
        }
    }
}

impl BrokerCluster {
    /// Starts `options.threads` threads listening on `addr` (port 0: thread 0 picks
    /// one, the others share it); `access` makes each thread's rules (called once per
    /// thread, with its index).
    pub fn start(
        addr: SocketAddr,
        options: ClusterOptions,
        mut access: impl FnMut(usize) -> Access,
    ) -> Result<BrokerCluster, BrokerError> {
        let threads = options.threads.max(1);
        // A crash while a session moved threads may have left it in two stores: one
        // copy, the newest, is kept before any thread loads its store.
        if let Some(dir) = &options.data {
            Store::keep_newest(dir)?;
        }
        let stats = Arc::new(ClusterStats::new(threads));
        // Every thread's restored filters are applied by the others before any runs.
        let started = Arc::new(StartRounds::new(threads));
        let mut cluster = BrokerCluster {
            addr,
            ws_addr: options.ws_listen,
            stoppers: Vec::new(),
            handles: Vec::new(),
            stats: Arc::clone(&stats),
        };
        let mut senders = Vec::with_capacity(threads);
        let mut joins = Vec::with_capacity(threads);
        for me in 0..threads {
            let (bound_tx, bound_rx) = mpsc::channel::<Bound>();
            let (peers_tx, peers_rx) = mpsc::channel::<Vec<MailboxSender<ClusterMessage>>>();
            let access = access(me);
            let addr = cluster.addr;
            let ws = cluster.ws_addr;
            let kind = options.driver;
            let mut connection = options.connection;
            // Acknowledgements wait for the turn's commit, which comes after its
            // messages for the other threads are in their mailboxes (and in the store,
            // if there is one): a publisher that has its PUBACK knows every thread has
            // the message, so a subscriber it then tells to look for a retained message
            // finds it retained on any thread. The listener's connections are made with
            // this config, so it is set before the bind.
            connection.durable |= options.data.is_some() || threads > 1;
            let sys = options.sys_interval.filter(|_| me == 0);
            let data = options.data.clone();
            let cap = options.mailbox_capacity;
            let stats = Arc::clone(&stats);
            let started = Arc::clone(&started);
            let handle = std::thread::Builder::new()
                .name(format!("mqtt-{me}"))
                .spawn(move || {
                    // The io_uring ring is single-issuer: the broker is built on its thread.
                    let built = Broker::cluster_member(addr, kind, connection, access, me, threads, cap).and_then(
                        |(mut broker, sender)| {
                            if let Some(dir) = &data {
                                let mut store = Store::open(dir, me)?;
                                // A run with more threads left files no thread owns now.
                                for orphan in Store::orphans(dir, threads, me) {
                                    store.absorb(&orphan)?;
                                }
                                broker.attach_store(store)?;
                            }
                            let ws = ws.map(|a| broker.listen_websocket(a)).transpose()?;
                            let stopper = broker.stopper()?;
                            let local = broker.local_addr()?;
                            Ok((broker, local, ws, sender, stopper))
                        },
                    );
                    let mut broker = match built {
                        Ok((broker, addr, ws, sender, stopper)) => {
                            let _ = bound_tx.send(Ok((addr, ws, sender, stopper)));
                            broker
                        }
                        Err(e) => {
                            let _ = bound_tx.send(Err(e));
                            return Ok(());
                        }
                    };
                    let Ok(peers) = peers_rx.recv() else { return Ok(()) };
                    // Every thread joined (else the start failed and this one only
                    // runs down): the restored filters go out before any thread runs.
                    let joined = peers.len() == threads;
                    broker.join(peers);
                    if joined {
                        exchange_restored(&mut broker, &started);
                    }
                    let sys = sys.map(|interval| SysTopics::new(interval, VERSION, Instant::now()));
                    broker.report_to(stats, me, sys);
                    broker.run()
                })
                .map_err(BrokerError::Io)?;
            cluster.handles.push(handle);
            let bound = bound_rx.recv().unwrap_or_else(|_| {
                Err(BrokerError::Io(std::io::Error::other(
                    "a broker thread ended before it was bound",
                )))
            });
            match bound {
                Ok((bound_addr, ws_addr, sender, stopper)) => {
                    // The others listen where thread 0 did (its port, if 0 was asked).
                    cluster.addr = bound_addr;
                    cluster.ws_addr = ws_addr;
                    senders.push(sender);
                    cluster.stoppers.push(stopper);
                    joins.push(peers_tx);
                }
                Err(e) => {
                    // Let the started threads run down, then report.
                    for tx in &joins {
                        let _ = tx.send(Vec::new());
                    }
                    let _ = cluster.stop();
                    let _ = cluster.join();
                    return Err(e);
                }
            }
        }
        // Before any thread runs (and so before any can shut down).
        stats.set_wakers(cluster.stoppers.iter().map(Stopper::waker).collect());
        for tx in joins {
            let _ = tx.send(senders.clone());
        }
        Ok(cluster)
    }

    /// The address every thread listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The WebSocket listeners' address, if any.
    pub fn websocket_addr(&self) -> Option<SocketAddr> {
        self.ws_addr
    }

    /// How many threads run.
    pub fn threads(&self) -> usize {
        self.stoppers.len()
    }

    /// Clients connected on each thread, as the threads last reported (after each of
    /// their turns): which thread the kernel gave a connection to.
    pub fn clients_per_thread(&self) -> Vec<u64> {
        (0..self.stats.slots.len())
            .map(|i| self.stats.load(i).clients_connected)
            .collect()
    }

    /// Handles that stop every thread, for another thread (a signal handler's).
    pub fn stoppers(&self) -> Vec<Stopper> {
        self.stoppers.clone()
    }

    /// TCP connections on each thread, as the threads last reported (after each of
    /// their turns): a test sees where the kernel put a connection it opened.
    pub fn connections_per_thread(&self) -> Vec<u64> {
        (0..self.stats.slots.len())
            .map(|i| self.stats.load(i).connections)
            .collect()
    }

    /// Publishes each thread received from the others, as the threads last reported:
    /// a publish crosses to a thread only if a subscription there matches it (or it is
    /// retained), so a thread without one receives none.
    pub fn forwards_per_thread(&self) -> Vec<u64> {
        (0..self.stats.slots.len())
            .map(|i| self.stats.load(i).forwards_received)
            .collect()
    }

    /// Publishes each thread forwarded to the others (once per thread each went to),
    /// as the threads last reported.
    pub fn forwards_sent_per_thread(&self) -> Vec<u64> {
        (0..self.stats.slots.len())
            .map(|i| self.stats.load(i).forwards_sent)
            .collect()
    }

    /// Subscriptions held over all threads (as last reported).
    pub fn subscriptions(&self) -> u64 {
        self.stats.totals().subscriptions
    }

    /// Asks every thread to shut down (0x8B to 5.0 clients, the wills published).
    pub fn stop(&self) -> std::io::Result<()> {
        for s in &self.stoppers {
            s.stop()?;
        }
        Ok(())
    }

    /// Waits for every thread to end; the first error of any.
    pub fn join(self) -> Result<(), BrokerError> {
        let mut result = Ok(());
        for h in self.handles {
            let r = h
                .join()
                .unwrap_or_else(|_| Err(BrokerError::Io(std::io::Error::other("a broker thread panicked"))));
            if result.is_ok() {
                result = r;
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::AnyDriver;
    use crate::mqtt::transport::Counted;
    use monocoque_proto::{Activity, Driver};

    /// Whether a turn of `driver` bounded by `wait` reports a wake, and how long it took.
    fn woken(driver: &mut AnyDriver<Counted>, wait: Duration) -> (bool, Duration) {
        let start = Instant::now();
        let mut activity = Vec::new();
        driver.turn(Some(start + wait), &mut activity).expect("turn");
        (activity.iter().any(|a| matches!(a, Activity::Woken)), start.elapsed())
    }

    #[test]
    fn the_last_thread_to_send_its_wills_wakes_every_thread() {
        // A thread waiting for the others' wills at shutdown blocks in its turn until
        // the last one has sent them: woken then, not polled for.
        for kind in [DriverKind::Uring, DriverKind::Mio] {
            let mut drivers: Vec<AnyDriver<Counted>> =
                (0..2).map(|_| AnyDriver::new(kind).expect("a driver")).collect();
            let stats = ClusterStats::new(2);
            stats.set_wakers(drivers.iter_mut().map(|d| d.waker().expect("a waker")).collect());
            stats.wills_sent();
            assert!(!stats.all_wills_sent());
            // One of two: nobody is woken yet.
            for d in &mut drivers {
                assert!(!woken(d, Duration::from_millis(20)).0, "{kind}: woken too soon");
            }
            stats.wills_sent();
            assert!(stats.all_wills_sent());
            for d in &mut drivers {
                let (woke, took) = woken(d, Duration::from_secs(20));
                assert!(woke && took < Duration::from_secs(10), "{kind}: {woke} after {took:?}");
            }
        }
    }
}
