//! The multi-core contract, measured on both drivers:
//!
//! 1. **Cross-core hand-off latency**: two threads, each a driver blocked in
//!    `turn(None)` with a mailbox; a message goes A -> B -> A (B answers as soon as its
//!    `Woken` drain sees it). The one-way hand-off is half the round trip; p50 and p99.
//! 2. **Messages/s through one mailbox** (capacity 1024) into a driver that drains after
//!    each `Woken`, from one and from four sender threads (senders retry on `Full`);
//!    beside it `std::sync::mpsc::sync_channel(1024)` into a plain blocking receiver,
//!    the lock-free bounded queue of the standard library, as the reference for the
//!    mailbox's mutex-and-swap design.
//! 3. **Driver memory per idle connection**: RSS growth of a fresh process (a child of
//!    this one) that opens 5,000 loopback connection pairs, both ends in one driver
//!    (10,000 connections, 10,000 file descriptors), with a zero-sized session, so the
//!    figure is the driver's own user-space memory per connection. Kernel socket memory
//!    is not in RSS.
//! 4. **Several protocols on one driver**: an echo storm (64 connection pairs echoing
//!    on both ends) run with one session type and with `Either<A, B>` (clients one
//!    variant, servers the other); the ratio is the cost of the enum on the hot path.
//!
//! ```text
//! cargo bench --bench mailbox            # full runs
//! cargo bench --bench mailbox -- --quick # short runs, rough numbers
//! ```

#[path = "common/conditions.rs"]
mod conditions;

use std::process::Command;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::{AnyDriver, DriverKind};
use monocoque::proto::{Activity, ConnId, Driver, Either, IoArena, Mailbox, MailboxError, MailboxSender, Session};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--memory-child") {
        let kind: DriverKind = args[i + 1].parse().expect("a driver name");
        memory_child(kind);
        return;
    }
    let quick = args.iter().any(|a| a == "--quick");
    let reps = if quick { 1 } else { 3 };
    println!("# benches/mailbox.rs: the multi-core contract");
    conditions::print_conditions("monocoque drivers", reps, quick);

    println!("\n## Cross-core hand-off latency (one way = round trip / 2)\n");
    println!("| driver | p50 | p99 | round trips |");
    println!("|---|---|---|---|");
    let trips = if quick { 5_000 } else { 20_000 };
    for kind in DriverKind::ALL {
        let mut halves = handoff(kind, trips);
        halves.sort_unstable();
        let pct = |p: f64| halves[((halves.len() as f64 * p) as usize).min(halves.len() - 1)];
        println!(
            "| {kind} | {:.1} µs | {:.1} µs | {trips} |",
            pct(0.50).as_secs_f64() * 1e6,
            pct(0.99).as_secs_f64() * 1e6
        );
    }

    println!("\n## Messages/s through one mailbox (capacity 1024)\n");
    println!("| senders | mailbox into uring | mailbox into mio | std sync_channel | mailbox (uring) / sync_channel |");
    println!("|---|---|---|---|---|");
    let total: u64 = if quick { 400_000 } else { 2_000_000 };
    for senders in [1usize, 4] {
        let (mut u, mut m, mut s) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..reps {
            u.push(mailbox_rate(DriverKind::Uring, senders, total));
            m.push(mailbox_rate(DriverKind::Mio, senders, total));
            s.push(sync_channel_rate(senders, total));
        }
        let (u, m, s) = (median(u), median(m), median(s));
        println!(
            "| {senders} | {:.2} M/s | {:.2} M/s | {:.2} M/s | {:.2}x |",
            u / 1e6,
            m / 1e6,
            s / 1e6,
            u / s
        );
    }

    println!("\n## Driver memory per idle connection (RSS growth, zero-sized session)\n");
    println!("| driver | connections | RSS growth | per connection |");
    println!("|---|---|---|---|");
    let exe = std::env::current_exe().expect("own path");
    for kind in DriverKind::ALL {
        let out = Command::new(&exe)
            .args(["--memory-child", kind.name()])
            .output()
            .expect("run the memory child");
        let text = String::from_utf8_lossy(&out.stdout);
        match text.lines().find(|l| l.starts_with('|')) {
            Some(line) if out.status.success() => println!("{line}"),
            _ => println!(
                "| {kind} | failed: {} | | |",
                String::from_utf8_lossy(&out.stderr).lines().last().unwrap_or("")
            ),
        }
    }

    println!("\n## One session type vs Either<A, B> on the hot path (echo storm, 64 pairs)\n");
    println!("| driver | one type | Either | Either / one type |");
    println!("|---|---|---|---|");
    let bytes: u64 = if quick { 64 << 20 } else { 256 << 20 };
    for kind in DriverKind::ALL {
        let (mut one, mut either) = (Vec::new(), Vec::new());
        for _ in 0..reps.max(2) {
            one.push(storm(kind, bytes, Storm::default, Storm::default));
            either.push(storm(
                kind,
                bytes,
                || Either::<Storm, StormB>::Left(Storm::default()),
                || Either::<Storm, StormB>::Right(StormB::default()),
            ));
        }
        let (one, either) = (median(one), median(either));
        println!(
            "| {kind} | {:.0} MiB/s | {:.0} MiB/s | {:.3} |",
            one / (1 << 20) as f64,
            either / (1 << 20) as f64,
            either / one
        );
    }
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// A session that does nothing: the mailbox and memory measurements need a `Session`
/// type, and a zero-sized one keeps the session out of the memory figure.
#[derive(Default)]
struct Idle;

impl Session for Idle {
    type Event = ();
    fn handle_input(&mut self, _data: Bytes, _now: Instant) {}
    fn handle_eof(&mut self, _now: Instant) {}
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        None
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

/// Sends `msg`, spinning (then yielding) while the mailbox is full.
fn send_retrying<M>(tx: &MailboxSender<M>, mut msg: M) {
    let mut spins = 0u32;
    loop {
        match tx.send(msg) {
            Ok(()) => return,
            Err(MailboxError::Full(m)) => {
                msg = m;
                spins += 1;
                if spins < 64 {
                    std::hint::spin_loop();
                } else {
                    thread::yield_now();
                }
            }
            Err(e) => panic!("send: {e}"),
        }
    }
}

/// Turns until the mailbox gives at least one message; returns them.
fn receive<M>(driver: &mut AnyDriver<Idle>, mailbox: &mut Mailbox<M>, out: &mut Vec<Activity>, got: &mut Vec<M>) {
    got.clear();
    while got.is_empty() {
        out.clear();
        driver.turn(None, out).expect("turn");
        mailbox.drain(got);
    }
}

/// One-way hand-off times (round trip / 2) between two driver threads, each with a
/// driver blocked in `turn(None)` and a mailbox, exchanging a counter.
fn handoff(kind: DriverKind, trips: usize) -> Vec<Duration> {
    const STOP: u64 = u64::MAX;
    let (b_tx, b_rx) = mpsc::channel::<MailboxSender<u64>>();
    let (a_tx, a_rx) = mpsc::channel::<MailboxSender<u64>>();
    let b = thread::spawn(move || {
        let mut driver: AnyDriver<Idle> = AnyDriver::new(kind).expect("driver");
        let (mut mailbox, sender) = Mailbox::<u64>::new(64, driver.waker().expect("waker"));
        b_tx.send(sender).expect("main alive");
        let reply = a_rx.recv().expect("a's sender");
        let (mut out, mut got) = (Vec::new(), Vec::new());
        loop {
            receive(&mut driver, &mut mailbox, &mut out, &mut got);
            for &seq in &got {
                if seq == STOP {
                    return;
                }
                send_retrying(&reply, seq);
            }
        }
    });
    let mut driver: AnyDriver<Idle> = AnyDriver::new(kind).expect("driver");
    let (mut mailbox, sender) = Mailbox::<u64>::new(64, driver.waker().expect("waker"));
    a_tx.send(sender).expect("b alive");
    let to_b = b_rx.recv().expect("b's sender");
    let (mut out, mut got) = (Vec::new(), Vec::new());
    let warmup = trips / 10;
    let mut halves = Vec::with_capacity(trips);
    for seq in 0..(warmup + trips) as u64 {
        let start = Instant::now();
        send_retrying(&to_b, seq);
        receive(&mut driver, &mut mailbox, &mut out, &mut got);
        assert_eq!(got, [seq], "{kind}: ping-pong out of step");
        if seq as usize >= warmup {
            halves.push(start.elapsed() / 2);
        }
    }
    send_retrying(&to_b, STOP);
    b.join().expect("b");
    halves
}

/// Messages per second from `senders` threads into one driver's mailbox.
fn mailbox_rate(kind: DriverKind, senders: usize, total: u64) -> f64 {
    let each = total / senders as u64;
    let (tx_tx, tx_rx) = mpsc::channel::<MailboxSender<u64>>();
    let start_line = Arc::new(Barrier::new(senders + 1));
    let receiver = {
        let start_line = Arc::clone(&start_line);
        thread::spawn(move || {
            let mut driver: AnyDriver<Idle> = AnyDriver::new(kind).expect("driver");
            let (mut mailbox, sender) = Mailbox::<u64>::new(1024, driver.waker().expect("waker"));
            tx_tx.send(sender).expect("main alive");
            start_line.wait();
            let start = Instant::now();
            let (mut out, mut got, mut n) = (Vec::new(), Vec::with_capacity(2048), 0u64);
            while n < each * senders as u64 {
                out.clear();
                driver.turn(None, &mut out).expect("turn");
                got.clear();
                n += mailbox.drain(&mut got) as u64;
            }
            n as f64 / start.elapsed().as_secs_f64()
        })
    };
    let sender = tx_rx.recv().expect("receiver ready");
    let threads: Vec<_> = (0..senders)
        .map(|_| {
            let (tx, start_line) = (sender.clone(), Arc::clone(&start_line));
            thread::spawn(move || {
                start_line.wait();
                for i in 0..each {
                    send_retrying(&tx, i);
                }
            })
        })
        .collect();
    drop(sender);
    for t in threads {
        t.join().expect("sender");
    }
    receiver.join().expect("receiver")
}

/// The same with `std::sync::mpsc::sync_channel(1024)` and a blocking receiver.
fn sync_channel_rate(senders: usize, total: u64) -> f64 {
    let each = total / senders as u64;
    let (tx, rx) = mpsc::sync_channel::<u64>(1024);
    let start_line = Arc::new(Barrier::new(senders + 1));
    let receiver = {
        let start_line = Arc::clone(&start_line);
        thread::spawn(move || {
            start_line.wait();
            let start = Instant::now();
            let mut n = 0u64;
            while n < each * senders as u64 {
                rx.recv().expect("senders alive");
                n += 1;
            }
            n as f64 / start.elapsed().as_secs_f64()
        })
    };
    let threads: Vec<_> = (0..senders)
        .map(|_| {
            let (tx, start_line) = (tx.clone(), Arc::clone(&start_line));
            thread::spawn(move || {
                start_line.wait();
                for i in 0..each {
                    tx.send(i).expect("receiver alive");
                }
            })
        })
        .collect();
    drop(tx);
    for t in threads {
        t.join().expect("sender");
    }
    receiver.join().expect("receiver")
}

/// Resident set size of this process, in bytes.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .expect("statm's resident field");
    // SAFETY: sysconf takes no pointers.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * page.max(1) as u64
}

/// In a child process: RSS growth for 5,000 loopback pairs on one driver.
fn memory_child(kind: DriverKind) {
    const PAIRS: usize = 5_000;
    let mut driver: AnyDriver<Idle> = AnyDriver::new(kind).expect("driver");
    let listener = driver
        .listen("127.0.0.1:0".parse().unwrap(), Box::new(|_, _, _| Idle))
        .expect("listen");
    let addr = driver.listener_addr(listener).expect("addr");
    let mut out = Vec::new();
    // Warm the driver's one-time allocations (ring, pools) with one pair.
    driver.connect(addr, Idle).expect("connect");
    let mut up = 0;
    while up < 2 {
        out.clear();
        driver
            .turn(Some(Instant::now() + Duration::from_millis(50)), &mut out)
            .expect("turn");
        up += out
            .iter()
            .filter(|a| matches!(a, Activity::Connected(_) | Activity::Accepted { .. }))
            .count();
    }
    let before = rss();
    let mut conns: Vec<ConnId> = Vec::with_capacity(2 * PAIRS);
    let mut up = 0;
    for chunk in 0..PAIRS / 250 {
        for _ in 0..250 {
            conns.push(driver.connect(addr, Idle).expect("connect"));
        }
        let want = 2 * 250 * (chunk + 1);
        let deadline = Instant::now() + Duration::from_secs(30);
        while up < want {
            assert!(Instant::now() < deadline, "{kind}: only {up} of {want} connections up");
            out.clear();
            driver
                .turn(Some(Instant::now() + Duration::from_millis(50)), &mut out)
                .expect("turn");
            for a in &out {
                match a {
                    Activity::Connected(_) => up += 1,
                    Activity::Accepted { conn, .. } => {
                        up += 1;
                        conns.push(*conn);
                    }
                    Activity::Closed { conn, error } => panic!("{kind}: {conn:?} closed: {error:?}"),
                    _ => {}
                }
            }
        }
    }
    // Idle: a few turns with nothing to do.
    for _ in 0..3 {
        out.clear();
        driver
            .turn(Some(Instant::now() + Duration::from_millis(20)), &mut out)
            .expect("turn");
    }
    let grown = rss().saturating_sub(before);
    // The id vector is the benchmark's, not the driver's.
    let ids = (conns.capacity() * std::mem::size_of::<ConnId>()) as u64;
    let grown = grown.saturating_sub(ids);
    assert_eq!(driver.connection_count(), 2 * PAIRS + 2);
    println!(
        "| {kind} | {} | {:.0} KiB | {} bytes |",
        2 * PAIRS,
        grown as f64 / 1024.0,
        grown / (2 * PAIRS) as u64
    );
}

/// Echoes everything it receives and counts it (the hot path: receive, hand to the
/// session, send back).
#[derive(Default)]
struct Storm {
    out: IoArena,
    received: u64,
    seeded: bool,
}

impl Session for Storm {
    type Event = ();
    fn handle_input(&mut self, data: Bytes, _now: Instant) {
        self.received += data.len() as u64;
        self.out.put_shared(data);
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

/// The same session under another type, so `Either<Storm, StormB>` has two real
/// variants.
#[derive(Default)]
struct StormB(Storm);

impl Session for StormB {
    type Event = ();
    fn handle_input(&mut self, data: Bytes, now: Instant) {
        self.0.handle_input(data, now)
    }
    fn handle_eof(&mut self, now: Instant) {
        self.0.handle_eof(now)
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.0.handle_timeout(now)
    }
    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        self.0.poll_transmit()
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }
    fn poll_event(&mut self) -> Option<()> {
        self.0.poll_event()
    }
    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// What the storm needs of its session: seed the first bytes, count what came back.
trait Stormy: Session + 'static {
    fn seed(&mut self, bytes: &[u8]);
    fn received(&self) -> u64;
}

impl Stormy for Storm {
    fn seed(&mut self, bytes: &[u8]) {
        if !self.seeded {
            self.seeded = true;
            self.out.put_slice(bytes);
        }
    }
    fn received(&self) -> u64 {
        self.received
    }
}

impl Stormy for Either<Storm, StormB> {
    fn seed(&mut self, bytes: &[u8]) {
        match self {
            Either::Left(s) => s.seed(bytes),
            Either::Right(s) => s.0.seed(bytes),
        }
    }
    fn received(&self) -> u64 {
        match self {
            Either::Left(s) => s.received,
            Either::Right(s) => s.0.received,
        }
    }
}

/// Bytes per second received by the clients of 64 pairs echoing on both ends, until
/// `bytes` have been received in all.
fn storm<S: Stormy>(kind: DriverKind, bytes: u64, client: fn() -> S, server: fn() -> S) -> f64 {
    const PAIRS: usize = 64;
    let mut driver: AnyDriver<S> = AnyDriver::new(kind).expect("driver");
    let listener = driver
        .listen("127.0.0.1:0".parse().unwrap(), Box::new(move |_, _, _| server()))
        .expect("listen");
    let addr = driver.listener_addr(listener).expect("addr");
    let clients: Vec<ConnId> = (0..PAIRS)
        .map(|_| driver.connect(addr, client()).expect("connect"))
        .collect();
    let mut out = Vec::new();
    let mut up = 0;
    while up < 2 * PAIRS {
        out.clear();
        driver
            .turn(Some(Instant::now() + Duration::from_millis(50)), &mut out)
            .expect("turn");
        up += out
            .iter()
            .filter(|a| matches!(a, Activity::Connected(_) | Activity::Accepted { .. }))
            .count();
    }
    // 16 messages of 64 bytes in flight per pair.
    let seed = [0x5au8; 16 * 64];
    for c in &clients {
        driver.session_for_output(*c).expect("client").seed(&seed);
    }
    let start = Instant::now();
    let mut turns = 0u64;
    loop {
        out.clear();
        driver
            .turn(Some(Instant::now() + Duration::from_millis(50)), &mut out)
            .expect("turn");
        turns += 1;
        if turns.is_multiple_of(64) {
            let got: u64 = clients
                .iter()
                .map(|c| driver.session(*c).map_or(0, Stormy::received))
                .sum();
            if got >= bytes {
                return got as f64 / start.elapsed().as_secs_f64();
            }
        }
    }
}
