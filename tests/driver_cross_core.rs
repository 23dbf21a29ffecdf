//! The multi-core part of the driver contract, on both drivers: waking a driver from
//! another thread, mailboxes between drivers on different threads, and addresses that
//! name their core.
//!
//! Every test is a function of the [`DriverKind`], run once per driver by
//! `both_drivers!`. Each driver is created on the thread that runs it (the io_uring ring
//! is `SINGLE_ISSUER`). A test that would hang if the contract broke runs its driver
//! under a watchdog and fails after [`PATIENCE`] instead.

mod support;

use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use monocoque::driver::{AnyDriver, DriverKind};
use monocoque::proto::{nats, resp, Activity, ConnId, CoreId, Driver, Either, IoArena, Mailbox, MailboxError, Session};

/// How long a step that should take microseconds may take on a loaded machine before
/// the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(20);

/// A session that echoes what it receives (the tests here are about the driver, not the
/// protocol).
#[derive(Debug, Default)]
struct Echo {
    out: IoArena,
    eof: bool,
}

impl Session for Echo {
    type Event = ();
    fn handle_input(&mut self, data: bytes::Bytes, _now: Instant) {
        self.out.put_shared(data);
    }
    fn handle_eof(&mut self, _now: Instant) {
        self.eof = true;
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        (!self.out.is_empty()).then_some(&mut self.out)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
    fn is_closed(&self) -> bool {
        self.eof
    }
}

fn new_driver<S: Session>(kind: DriverKind) -> AnyDriver<S> {
    AnyDriver::new(kind).unwrap_or_else(|e| panic!("creating the {kind} driver failed: {e}"))
}

/// Runs `f` on a thread of its own and fails the test if it does not finish within
/// [`PATIENCE`] (a `turn(None)` that is never woken would block forever).
fn within_patience<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(value) => {
            let _ = handle.join();
            value
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("{what}: still blocked after {PATIENCE:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match handle.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("{what}: the thread ended without a result"),
        },
    }
}

fn count_woken(out: &[Activity]) -> usize {
    out.iter().filter(|a| matches!(a, Activity::Woken)).count()
}

// ---------------------------------------------------------------------------------------
// Waking
// ---------------------------------------------------------------------------------------

/// A wake from another thread interrupts a `turn(None)` that has nothing else to wait
/// for.
fn wake_interrupts_turn_forever(kind: DriverKind) {
    let out = within_patience(&format!("{kind}: turn(None) woken from another thread"), move || {
        let mut driver: AnyDriver<Echo> = new_driver(kind);
        let waker = driver.waker().expect("waker");
        let waking = thread::spawn(move || {
            // Long enough that the driver is asleep in `turn` by then (if it is not, the
            // wake still counts: that is the next test).
            thread::sleep(Duration::from_millis(200));
            waker.wake().expect("wake");
        });
        let mut out = Vec::new();
        driver.turn(None, &mut out).expect("turn");
        waking.join().expect("waking thread");
        out
    });
    assert_eq!(count_woken(&out), 1, "{kind}: {out:?}");
}

/// A wake sent while the driver is outside `turn` is kept: the next `turn(None)` returns
/// at once with `Woken`. Many wakes before it coalesce into one `Woken`, and nothing is
/// left over for the turn after.
fn wake_outside_turn_is_not_lost(kind: DriverKind) {
    let (first, second) = within_patience(&format!("{kind}: wake before turn"), move || {
        let mut driver: AnyDriver<Echo> = new_driver(kind);
        let waker = driver.waker().expect("waker");
        let wakers: Vec<_> = (0..4).map(|_| driver.waker().expect("waker")).collect();
        thread::scope(|s| {
            for w in &wakers {
                s.spawn(|| {
                    for _ in 0..250 {
                        w.wake().expect("wake");
                    }
                });
            }
        });
        waker.wake().expect("wake");
        let mut first = Vec::new();
        driver.turn(None, &mut first).expect("turn");
        let mut second = Vec::new();
        driver
            .turn(Some(Instant::now() + Duration::from_millis(200)), &mut second)
            .expect("turn");
        (first, second)
    });
    assert_eq!(count_woken(&first), 1, "{kind}: 1001 wakes before the turn: {first:?}");
    assert_eq!(count_woken(&second), 0, "{kind}: a wake reported twice: {second:?}");
}

/// Wakes keep working turn after turn (the io_uring driver re-arms its eventfd read,
/// the mio driver's waker keeps firing), and a woken driver still serves its sockets.
fn wakes_repeat_and_sockets_still_work(kind: DriverKind) {
    let rounds = within_patience(&format!("{kind}: repeated wakes"), move || {
        let mut driver: AnyDriver<Echo> = new_driver(kind);
        let waker = driver.waker().expect("waker");
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let waking = thread::spawn(move || {
            for () in go_rx {
                waker.wake().expect("wake");
            }
        });
        let mut rounds = 0;
        let mut out = Vec::new();
        for _ in 0..100 {
            go_tx.send(()).expect("waking thread alive");
            out.clear();
            while count_woken(&out) == 0 {
                driver.turn(None, &mut out).expect("turn");
            }
            rounds += 1;
        }
        drop(go_tx);
        waking.join().expect("waking thread");
        // The sockets side is unaffected: an echo round trip through a listener.
        let listener = driver
            .listen("127.0.0.1:0".parse().unwrap(), Box::new(|_, _, _| Echo::default()))
            .expect("listen");
        let addr = driver.listener_addr(listener).expect("addr");
        let client = thread::spawn(move || {
            use std::io::{Read, Write};
            let mut s = std::net::TcpStream::connect(addr).expect("connect");
            s.write_all(b"ping").expect("write");
            let mut buf = [0u8; 4];
            s.read_exact(&mut buf).expect("read");
            buf
        });
        while !client.is_finished() {
            out.clear();
            driver
                .turn(Some(Instant::now() + Duration::from_millis(20)), &mut out)
                .expect("turn");
        }
        assert_eq!(&client.join().expect("client"), b"ping");
        rounds
    });
    assert_eq!(rounds, 100);
}

// ---------------------------------------------------------------------------------------
// Addresses that name their core
// ---------------------------------------------------------------------------------------

/// Connects `n` clients to a listener of `driver` and turns until every one is accepted;
/// returns (client ids, accepted ids).
fn open_pairs<S: Session>(
    driver: &mut AnyDriver<S>,
    n: usize,
    mut session: impl FnMut() -> S + 'static,
    accepted_session: impl FnMut() -> S + 'static,
) -> (Vec<ConnId>, Vec<ConnId>) {
    let mut accepted_session = accepted_session;
    let listener = driver
        .listen(
            "127.0.0.1:0".parse().unwrap(),
            Box::new(move |_, _, _| accepted_session()),
        )
        .expect("listen");
    assert_eq!(listener.core(), driver.core(), "the listener names its core");
    let addr = driver.listener_addr(listener).expect("addr");
    let clients: Vec<ConnId> = (0..n)
        .map(|_| driver.connect(addr, session()).expect("connect"))
        .collect();
    let (mut accepted, mut connected) = (Vec::new(), 0);
    let start = Instant::now();
    let mut out = Vec::new();
    while accepted.len() < n || connected < n {
        assert!(start.elapsed() < PATIENCE, "{n} connections not up after {PATIENCE:?}");
        out.clear();
        driver
            .turn(Some(Instant::now() + Duration::from_millis(50)), &mut out)
            .expect("turn");
        for a in &out {
            match a {
                Activity::Accepted { listener: l, conn, .. } => {
                    assert_eq!(*l, listener);
                    accepted.push(*conn);
                }
                Activity::Connected(_) => connected += 1,
                _ => {}
            }
        }
    }
    driver.close_listener(listener).expect("close listener");
    (clients, accepted)
}

/// Two drivers of different cores on one thread: every id names its driver's core, and
/// an id of one driver finds nothing in the other, though both use the same slot and
/// generation numbers.
fn ids_name_their_core(kind: DriverKind) {
    let mut a: AnyDriver<Echo> = AnyDriver::with_core(kind, CoreId(3)).expect("driver a");
    let mut b: AnyDriver<Echo> = AnyDriver::with_core(kind, CoreId(5)).expect("driver b");
    assert_eq!((a.core(), b.core()), (CoreId(3), CoreId(5)));
    let (a_clients, a_accepted) = open_pairs(&mut a, 2, Echo::default, Echo::default);
    let (b_clients, b_accepted) = open_pairs(&mut b, 2, Echo::default, Echo::default);
    for id in a_clients.iter().chain(&a_accepted) {
        assert_eq!(id.core(), CoreId(3), "{kind}: {id:?}");
        assert!(a.session(*id).is_some());
        assert!(b.session(*id).is_none(), "{kind}: core 5 answered for {id:?}");
        assert!(
            b.session_for_output(*id).is_none(),
            "{kind}: core 5 answered for {id:?}"
        );
    }
    for id in b_clients.iter().chain(&b_accepted) {
        assert_eq!(id.core(), CoreId(5), "{kind}: {id:?}");
        assert!(a.session(*id).is_none(), "{kind}: core 3 answered for {id:?}");
    }
    // Same place in each driver, different connections.
    assert_eq!(
        (a_clients[0].slot(), a_clients[0].generation()),
        (b_clients[0].slot(), b_clients[0].generation())
    );
    assert!(
        b.remove(a_clients[0]).is_none(),
        "{kind}: core 5 removed core 3's connection"
    );
    assert_eq!(b.connection_count(), 4);
    assert!(a.remove(a_clients[0]).is_some());
    assert_eq!(a.connection_count(), 3);
}

/// `connection_count` follows connections in and out: connects and accepts add, a
/// closed connection stays counted until removed, `remove` subtracts.
fn connection_count_follows_connections(kind: DriverKind) {
    let mut d: AnyDriver<Echo> = new_driver(kind);
    assert_eq!(d.connection_count(), 0);
    let (clients, accepted) = open_pairs(&mut d, 50, Echo::default, Echo::default);
    assert_eq!(d.connection_count(), 100, "{kind}");
    for c in &clients[..25] {
        d.remove(*c).expect("remove");
    }
    assert_eq!(d.connection_count(), 75, "{kind}");
    // The peers of the removed clients see end of stream and close; they stay counted
    // until removed.
    let mut closed = Vec::new();
    let start = Instant::now();
    let mut out = Vec::new();
    while closed.len() < 25 {
        assert!(start.elapsed() < PATIENCE, "{kind}: only {} peers closed", closed.len());
        out.clear();
        d.turn(Some(Instant::now() + Duration::from_millis(50)), &mut out)
            .expect("turn");
        closed.extend(out.iter().filter_map(|a| match a {
            Activity::Closed { conn, .. } => Some(*conn),
            _ => None,
        }));
    }
    assert_eq!(
        d.connection_count(),
        75,
        "{kind}: closed connections are still in the driver"
    );
    for c in closed.iter().chain(&clients[25..]) {
        d.remove(*c).expect("remove");
    }
    assert_eq!(d.connection_count(), 25, "{kind}");
    assert!(d.remove(clients[0]).is_none());
    for c in accepted
        .iter()
        .filter(|c| d.session(**c).is_some())
        .copied()
        .collect::<Vec<_>>()
    {
        d.remove(c);
    }
    assert_eq!(d.connection_count(), 0, "{kind}");
}

// ---------------------------------------------------------------------------------------
// Several protocols on one driver
// ---------------------------------------------------------------------------------------

/// A RESP connection or a NATS connection: what a core serving both runs.
type Mixed = Either<resp::Connection, nats::client::Connection>;

/// One driver runs a RESP session against a real redis-server and a NATS session
/// against a real nats-server at once: a SET/GET round trip on one, a publish to its
/// own subscription on the other, each connection's events reaching the body tagged by
/// protocol.
fn one_driver_runs_resp_and_nats(kind: DriverKind) {
    let redis = support::RedisServer::start(&[]);
    let nats_server = support::NatsServer::start();
    let mut driver: AnyDriver<Mixed> = new_driver(kind);
    let now = Instant::now();
    let mut r = resp::Connection::new(resp::ConnectionConfig::default(), now);
    let set = r
        .send_buffered(&resp::Cmd::new("SET").arg("mixed").arg("both"), now)
        .expect("SET");
    let get = r.send_buffered(&resp::Cmd::new("GET").arg("mixed"), now).expect("GET");
    let mut n = nats::client::Connection::new(nats::client::ClientConfig::default(), now);
    let sid = n
        .subscribe(b"mixed.subject", None, nats::client::SubscriptionPolicy::default())
        .expect("subscribe");
    n.publish(b"mixed.subject", None, None, &bytes::Bytes::from_static(b"hello"), now)
        .expect("publish");
    let rc = driver.connect(redis.addr, Mixed::Left(r)).expect("connect redis");
    let nc = driver.connect(nats_server.addr, Mixed::Right(n)).expect("connect nats");

    let (mut set_ok, mut got, mut message) = (false, None, None);
    let start = Instant::now();
    let mut out = Vec::new();
    while !(set_ok && got.is_some() && message.is_some()) {
        assert!(
            start.elapsed() < PATIENCE,
            "{kind}: set {set_ok}, get {got:?}, message {message:?}"
        );
        out.clear();
        driver
            .turn(Some(Instant::now() + Duration::from_millis(50)), &mut out)
            .expect("turn");
        for a in &out {
            match a {
                Activity::Ready(c) | Activity::Connected(c) => {
                    let session = driver.session_for_output(*c).expect("session");
                    while let Some(event) = session.poll_event() {
                        match (event, *c == rc) {
                            (Either::Left(resp::Event::Reply { id, value }), true) => {
                                if id == set {
                                    set_ok = value.as_bytes().is_some_and(|v| v[..] == b"OK"[..]);
                                } else if id == get {
                                    got = value.as_bytes().map(|v| v.to_vec());
                                }
                            }
                            (Either::Left(_), true) | (Either::Right(_), false) => {}
                            (event, _) => panic!("{kind}: {event:?} from the other protocol's connection"),
                        }
                    }
                    if *c == nc {
                        if let Some(n) = driver.session_for_output(nc).and_then(Either::right_mut) {
                            if let Some(m) = n.next_message(&sid) {
                                message = Some(m.payload);
                            }
                        }
                    }
                }
                Activity::Closed { conn, error } => panic!("{kind}: {conn:?} closed: {error:?}"),
                _ => {}
            }
        }
    }
    assert_eq!(got.as_deref(), Some(&b"both"[..]), "{kind}");
    assert_eq!(message.as_deref(), Some(&b"hello"[..]), "{kind}");
    assert!(driver.session(rc).and_then(Either::left).is_some());
    assert!(driver.session(nc).and_then(Either::right).is_some());
}

// ---------------------------------------------------------------------------------------
// Mailboxes
// ---------------------------------------------------------------------------------------

/// A thread sends 20,000 numbered messages into a driver's mailbox of 64; the driver,
/// blocked in `turn(None)` between batches, drains after every `Woken` and gets them
/// all, in order. The sender retries on `Full` (backpressure), never grows the queue.
fn mailbox_feeds_a_sleeping_driver(kind: DriverKind) {
    const MESSAGES: u64 = 20_000;
    let (got, wakes, fulls) = within_patience(&format!("{kind}: mailbox into a sleeping driver"), move || {
        let mut driver: AnyDriver<Echo> = new_driver(kind);
        let (mut mailbox, sender) = Mailbox::<u64>::new(64, driver.waker().expect("waker"));
        let producer = thread::spawn(move || {
            let mut fulls = 0u64;
            let mut i = 0;
            while i < MESSAGES {
                match sender.send(i) {
                    Ok(()) => i += 1,
                    Err(MailboxError::Full(m)) => {
                        assert_eq!(m, i, "Full carries the message back");
                        fulls += 1;
                        thread::yield_now();
                    }
                    Err(e) => panic!("send: {e}"),
                }
            }
            fulls
        });
        let (mut got, mut wakes) = (Vec::new(), 0u64);
        let mut out = Vec::new();
        while (got.len() as u64) < MESSAGES {
            out.clear();
            driver.turn(None, &mut out).expect("turn");
            let woken = count_woken(&out);
            assert!(woken <= 1, "Woken twice in one turn: {out:?}");
            if woken == 1 {
                wakes += 1;
                mailbox.drain(&mut got);
            }
        }
        (got, wakes, producer.join().expect("producer"))
    });
    assert_eq!(got, (0..MESSAGES).collect::<Vec<_>>(), "{kind}: lost or reordered");
    assert!(wakes <= MESSAGES, "{kind}: {wakes} wakes");
    eprintln!("{kind}: {MESSAGES} messages, {wakes} wakes, {fulls} sends refused as full");
}

/// A message from one core to a connection of another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Note {
    from: CoreId,
    seq: u64,
    to: ConnId,
}

/// Collects the records (sender core, sequence number; 16 bytes each) that come back on
/// its connection.
#[derive(Debug, Default)]
struct Collector {
    out: IoArena,
    got: Vec<u8>,
}

impl Session for Collector {
    type Event = ();
    fn handle_input(&mut self, data: bytes::Bytes, _now: Instant) {
        self.got.extend_from_slice(&data);
    }
    fn handle_eof(&mut self, _now: Instant) {}
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        (!self.out.is_empty()).then_some(&mut self.out)
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn poll_event(&mut self) -> Option<()> {
        None
    }
    fn is_closed(&self) -> bool {
        false
    }
}

/// What a core publishes to the others: its mailbox and the connections it owns.
type Entry = Option<(monocoque::proto::MailboxSender<Note>, Vec<ConnId>)>;

/// What one core of [`cores_exchange_messages`] saw.
#[derive(Debug)]
struct CoreReport {
    received: u64,
    fulls: u64,
    wakes: u64,
}

/// N threads, each with its own driver (core i) owning M loopback connections (clients
/// collecting, their accepted ends echoing). Every thread sends K notes to every other
/// thread's mailbox (capacity 32), each naming one of that thread's connections,
/// round-robin; a thread writes each note it receives into the named connection as a
/// 16-byte record, and the echo brings it back. Checked: every note arrives at the core
/// its `ConnId` names, per sender in order, none lost or duplicated, both out of the
/// mailbox and back through the sockets; full mailboxes refuse (the senders keep their
/// note and retry) instead of growing.
fn cores_exchange_messages(kind: DriverKind) {
    const N: usize = 3;
    const M: usize = 8;
    const K: u64 = 3_000;
    let registry: Arc<Mutex<Vec<Entry>>> = Arc::new(Mutex::new((0..N).map(|_| None).collect()));
    let barrier = Arc::new(Barrier::new(N));
    let reports = within_patience(&format!("{kind}: {N} cores exchanging notes"), move || {
        let threads: Vec<_> = (0..N)
            .map(|me| {
                let (registry, barrier) = (Arc::clone(&registry), Arc::clone(&barrier));
                thread::spawn(move || core_thread(kind, me, N, M, K, &registry, &barrier))
            })
            .collect();
        threads
            .into_iter()
            .map(|t| t.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect::<Vec<_>>()
    });
    let fulls: u64 = reports.iter().map(|r| r.fulls).sum();
    for r in &reports {
        assert_eq!(r.received, (N as u64 - 1) * K, "{kind}: {reports:?}");
        assert!(r.wakes > 0, "{kind}: a core was never woken: {reports:?}");
    }
    assert!(
        fulls > 0,
        "{kind}: no send ever found a mailbox full, backpressure untested: {reports:?}"
    );
    eprintln!("{kind}: {reports:?}");
}

fn core_thread(
    kind: DriverKind,
    me: usize,
    n: usize,
    m: usize,
    k: u64,
    registry: &Mutex<Vec<Entry>>,
    barrier: &Barrier,
) -> CoreReport {
    type Node = Either<Collector, Echo>;
    let core = CoreId(10 + me as u16);
    let mut driver: AnyDriver<Node> = AnyDriver::with_core(kind, core).expect("driver");
    let (conns, _accepted) = open_pairs(
        &mut driver,
        m,
        || Either::Left(Collector::default()),
        || Either::Right(Echo::default()),
    );
    let (mut mailbox, sender) = Mailbox::<Note>::new(32, driver.waker().expect("waker"));
    registry.lock().unwrap()[me] = Some((sender, conns.clone()));
    barrier.wait();
    let targets: Vec<_> = {
        let all = registry.lock().unwrap();
        (0..n)
            .filter(|&t| t != me)
            .map(|t| all[t].clone().expect("registered"))
            .collect()
    };
    let mut sent = vec![0u64; targets.len()];
    let mut held: Vec<Option<Note>> = vec![None; targets.len()];
    let mut last_seen: Vec<Option<u64>> = vec![None; n];
    let (mut received, mut fulls, mut wakes) = (0u64, 0u64, 0u64);
    let expected = (n as u64 - 1) * k;
    let mut out = Vec::new();
    let mut inbox = Vec::new();
    loop {
        for (t, (tx, their_conns)) in targets.iter().enumerate() {
            while sent[t] < k {
                let note = held[t].take().unwrap_or_else(|| Note {
                    from: core,
                    seq: sent[t],
                    to: their_conns[(sent[t] % their_conns.len() as u64) as usize],
                });
                match tx.send(note) {
                    Ok(()) => sent[t] += 1,
                    Err(MailboxError::Full(note)) => {
                        held[t] = Some(note);
                        fulls += 1;
                        break;
                    }
                    Err(e) => panic!("core {me}: send: {e}"),
                }
            }
        }
        out.clear();
        driver
            .turn(Some(Instant::now() + Duration::from_millis(2)), &mut out)
            .expect("turn");
        if out.iter().any(|a| matches!(a, Activity::Woken)) {
            wakes += 1;
        }
        // Drained every turn, not only after `Woken`: a spurious-free driver would need
        // no more, but draining often must be harmless too.
        inbox.clear();
        mailbox.drain(&mut inbox);
        for note in &inbox {
            assert_eq!(note.to.core(), core, "core {me} got a note for {:?}", note.to);
            let from = note.from.0 as usize - 10;
            assert_eq!(
                note.seq,
                last_seen[from].map_or(0, |s| s + 1),
                "core {me}: note from core {from} out of order"
            );
            last_seen[from] = Some(note.seq);
            let session = driver.session_for_output(note.to).expect("a connection of this core");
            let collector = session.left_mut().expect("notes name client connections");
            collector.out.put_slice(&(note.from.0 as u64).to_be_bytes());
            collector.out.put_slice(&note.seq.to_be_bytes());
            received += 1;
        }
        let echoed: usize = conns
            .iter()
            .map(|c| driver.session(*c).and_then(Either::left).map_or(0, |s| s.got.len()))
            .sum();
        if received == expected && echoed as u64 == expected * 16 && sent.iter().all(|&s| s == k) {
            break;
        }
    }
    // What came back through the sockets: every record once, per sender in order on
    // each connection.
    let mut per_sender = vec![Vec::new(); n];
    for c in &conns {
        let got = &driver.session(*c).and_then(Either::left).expect("collector").got;
        let mut last = vec![None; n];
        for record in got.chunks_exact(16) {
            let from = u64::from_be_bytes(record[..8].try_into().unwrap()) as usize - 10;
            let seq = u64::from_be_bytes(record[8..].try_into().unwrap());
            assert!(
                last[from] < Some(seq),
                "core {me}: echo from core {from} reordered on {c:?}"
            );
            last[from] = Some(seq);
            per_sender[from].push(seq);
        }
    }
    for (from, seqs) in per_sender.iter_mut().enumerate() {
        seqs.sort_unstable();
        let want: Vec<u64> = if from == me { Vec::new() } else { (0..k).collect() };
        assert!(*seqs == want, "core {me}: notes of core {from} lost or duplicated");
    }
    // Wait for everyone before the mailbox closes (a late sender would see `Closed`).
    barrier.wait();
    CoreReport { received, fulls, wakes }
}

/// A mailbox whose driver is busy (not draining) refuses the message past its
/// capacity and hands it back; once the driver drains after `Woken`, sends succeed
/// again, and every accepted message arrives exactly once.
fn full_mailbox_refuses(kind: DriverKind) {
    const CAP: usize = 16;
    let (got, refused) = within_patience(&format!("{kind}: full mailbox"), move || {
        let mut driver: AnyDriver<Echo> = new_driver(kind);
        let (mut mailbox, sender) = Mailbox::<u32>::new(CAP, driver.waker().expect("waker"));
        let (filled_tx, filled_rx) = mpsc::channel();
        let (drained_tx, drained_rx) = mpsc::channel::<()>();
        let producer = thread::spawn(move || {
            for i in 0..CAP as u32 {
                sender.send(i).expect("room for the first CAP messages");
            }
            let refused = match sender.send(999) {
                Err(MailboxError::Full(m)) => m,
                other => panic!("past capacity: {other:?}"),
            };
            filled_tx.send(()).expect("main alive");
            drained_rx.recv().expect("main alive");
            for i in CAP as u32..2 * CAP as u32 {
                sender.send(i).expect("room after the drain");
            }
            refused
        });
        // Busy elsewhere until the producer filled the mailbox: nothing drains.
        filled_rx.recv().expect("producer alive");
        let mut got = Vec::new();
        let mut out = Vec::new();
        driver.turn(None, &mut out).expect("turn");
        assert_eq!(count_woken(&out), 1, "the first send woke the driver");
        mailbox.drain(&mut got);
        drained_tx.send(()).expect("producer alive");
        while got.len() < 2 * CAP {
            out.clear();
            driver.turn(None, &mut out).expect("turn");
            mailbox.drain(&mut got);
        }
        (got, producer.join().expect("producer"))
    });
    assert_eq!(refused, 999, "{kind}");
    assert_eq!(got, (0..2 * CAP as u32).collect::<Vec<_>>(), "{kind}");
}

/// Three sender threads, each running a driver of its own, send 10,000 numbered
/// messages each into a fourth driver's mailbox of 8. A sender that finds it full
/// registers its own driver's waker (`send_or_notify`) and blocks in `turn(None)` until
/// `Woken`: no sleep, no spin, so only the receiver's drain can let it go on. Checked:
/// every message arrives, per sender in order, and the senders did wait.
fn full_sender_is_woken_by_the_drain(kind: DriverKind) {
    const SENDERS: u64 = 3;
    const EACH: u64 = 10_000;
    const CAP: usize = 8;
    let (got, waits) = within_patience(&format!("{kind}: senders waiting for room"), move || {
        let mut driver: AnyDriver<Echo> = new_driver(kind);
        let (mut mailbox, sender) = Mailbox::<(u64, u64)>::new(CAP, driver.waker().expect("waker"));
        let senders: Vec<_> = (0..SENDERS)
            .map(|id| {
                let sender = sender.clone();
                thread::spawn(move || {
                    let mut own: AnyDriver<Echo> = new_driver(kind);
                    let waker = own.waker().expect("waker");
                    let (mut waits, mut i) = (0u64, 0u64);
                    let mut out = Vec::new();
                    while i < EACH {
                        match sender.send_or_notify((id, i), &waker) {
                            Ok(()) => i += 1,
                            Err(MailboxError::Full(m)) => {
                                assert_eq!(m, (id, i), "Full carries the message back");
                                waits += 1;
                                // Only the receiver's drain wakes this driver.
                                loop {
                                    out.clear();
                                    own.turn(None, &mut out).expect("turn");
                                    if count_woken(&out) > 0 {
                                        break;
                                    }
                                }
                            }
                            Err(e) => panic!("send: {e}"),
                        }
                    }
                    waits
                })
            })
            .collect();
        drop(sender);
        let mut got = Vec::new();
        let mut out = Vec::new();
        while (got.len() as u64) < SENDERS * EACH {
            out.clear();
            driver.turn(None, &mut out).expect("turn");
            mailbox.drain(&mut got);
        }
        let waits: u64 = senders.into_iter().map(|t| t.join().expect("sender")).sum();
        (got, waits)
    });
    let mut next = [0u64; SENDERS as usize];
    for &(id, i) in &got {
        assert_eq!(i, next[id as usize], "{kind}: sender {id} lost or reordered");
        next[id as usize] += 1;
    }
    assert!(next.iter().all(|&n| n == EACH), "{kind}: {next:?}");
    assert!(
        waits > 0,
        "{kind}: no sender ever found the mailbox full, the wake untested"
    );
    eprintln!("{kind}: {} messages, senders waited {waits} times", SENDERS * EACH);
}

both_drivers! {
    cores_exchange_messages => uring_cores_exchange_messages, mio_cores_exchange_messages;
    full_mailbox_refuses => uring_full_mailbox_refuses, mio_full_mailbox_refuses;
    full_sender_is_woken_by_the_drain => uring_full_sender_is_woken_by_the_drain, mio_full_sender_is_woken_by_the_drain;
    one_driver_runs_resp_and_nats => uring_one_driver_runs_resp_and_nats, mio_one_driver_runs_resp_and_nats;
    ids_name_their_core => uring_ids_name_their_core, mio_ids_name_their_core;
    connection_count_follows_connections => uring_connection_count_follows_connections, mio_connection_count_follows_connections;
    mailbox_feeds_a_sleeping_driver => uring_mailbox_feeds_a_sleeping_driver, mio_mailbox_feeds_a_sleeping_driver;
    wake_interrupts_turn_forever => uring_wake_interrupts_turn_forever, mio_wake_interrupts_turn_forever;
    wake_outside_turn_is_not_lost => uring_wake_outside_turn_is_not_lost, mio_wake_outside_turn_is_not_lost;
    wakes_repeat_and_sockets_still_work => uring_wakes_repeat_and_sockets_still_work, mio_wakes_repeat_and_sockets_still_work;
}
