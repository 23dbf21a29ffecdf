//! Loopback numbers for the io_uring driver, the same scenarios as driver-mio's
//! `echo_bench` so the two compare directly: one thread, one driver holding both the
//! client and the echo server, so every figure is the driver's whole cost on both ends.
//!
//! ```text
//! cargo run --release -p monocoque-uring --example uring_echo_bench [seconds per scenario [scenario [fan-in conns]]]
//! ```
//!
//! - ping-pong: one 16-byte message in flight (round trips per second);
//! - pipelined: 100 messages of 16 bytes in flight (messages per second);
//! - bulk: 256 KiB segments, 8 MiB in flight, echoed (bytes per second each way);
//! - fan-in: 1,000 connections, one 16-byte message in flight on each.
//!
//! CPU seconds come from `getrusage` and cover the whole process.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::{Activity, ConnId, Driver, IoArena, Session};
use monocoque_uring::UringDriver;

/// The echo server's session.
struct Echo {
    arena: IoArena,
}

impl Session for Echo {
    type Event = ();
    fn handle_input(&mut self, data: Bytes, _now: Instant) {
        self.arena.put_bytes(&data);
    }
    fn handle_eof(&mut self, _now: Instant) {}
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        Some(&mut self.arena)
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

/// The client: keeps `window` bytes in flight, sent as `message`-sized writes.
struct Client {
    arena: IoArena,
    message: Bytes,
    window: usize,
    in_flight: usize,
    received: u64,
}

impl Client {
    fn new(message: Bytes, window: usize) -> Self {
        let mut c = Self {
            arena: IoArena::new(),
            message,
            window,
            in_flight: 0,
            received: 0,
        };
        c.top_up();
        c
    }

    fn top_up(&mut self) {
        while self.in_flight + self.message.len() <= self.window {
            self.arena.put_bytes(&self.message);
            self.in_flight += self.message.len();
        }
    }
}

/// Both kinds of session in one driver.
enum Bench {
    Echo(Echo),
    Client(Client),
}

impl Session for Bench {
    type Event = ();
    fn handle_input(&mut self, data: Bytes, now: Instant) {
        match self {
            Bench::Echo(e) => e.handle_input(data, now),
            Bench::Client(c) => {
                c.received += data.len() as u64;
                c.in_flight -= data.len().min(c.in_flight);
                c.top_up();
            }
        }
    }
    fn handle_eof(&mut self, _now: Instant) {}
    fn handle_timeout(&mut self, _now: Instant) {}
    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        match self {
            Bench::Echo(e) => Some(&mut e.arena),
            Bench::Client(c) => Some(&mut c.arena),
        }
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

fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a `rusage` into the pointer it is given, which points to
    // a zeroed, properly aligned `rusage`.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr()) };
    if rc != 0 {
        return f64::NAN;
    }
    // SAFETY: getrusage succeeded, so the struct is initialised (it was zeroed anyway).
    let usage = unsafe { usage.assume_init() };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

fn run(name: &str, conns: usize, message: usize, window: usize, secs: f64) -> std::io::Result<()> {
    let mut driver: UringDriver<Bench> = UringDriver::new()?;
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap_or_else(|_| unreachable!());
    let listener = driver.listen(addr, Box::new(|_, _, _| Bench::Echo(Echo { arena: IoArena::new() })))?;
    let addr = driver.listener_addr(listener)?;
    let payload = Bytes::from(vec![0x5a; message]);
    let clients: Vec<ConnId> = (0..conns)
        .map(|_| driver.connect(addr, Bench::Client(Client::new(payload.clone(), window))))
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    // Warm up until every client has had something back.
    let warm_end = Instant::now() + Duration::from_secs(5);
    loop {
        driver.turn(Some(Instant::now() + Duration::from_millis(10)), &mut out)?;
        out.clear();
        let all = clients
            .iter()
            .all(|&c| matches!(driver.session(c), Some(Bench::Client(cl)) if cl.received > 0));
        if all || Instant::now() > warm_end {
            break;
        }
    }
    let received = |d: &UringDriver<Bench>| -> u64 {
        clients
            .iter()
            .map(|&c| match d.session(c) {
                Some(Bench::Client(cl)) => cl.received,
                _ => 0,
            })
            .sum()
    };
    let start_bytes = received(&driver);
    let start_cpu = cpu_seconds();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut turns = 0u64;
    while Instant::now() < end {
        driver.turn(Some(end), &mut out)?;
        turns += 1;
        for a in out.drain(..) {
            if let Activity::Closed { conn, error } = a {
                eprintln!("{name}: {conn:?} closed: {error:?}");
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - start_cpu;
    let bytes = received(&driver) - start_bytes;
    let messages = bytes as f64 / message as f64;
    println!(
        "{name:<10} conns {conns:>5}  msg {message:>7} B  window {window:>8} B  {:>12.0} msg/s  {:>9.1} MiB/s  {:>8.0} turns/s  cpu {:.2} s/{:.2} s  {:.2} µs cpu/msg",
        messages / elapsed,
        bytes as f64 / elapsed / (1024.0 * 1024.0),
        turns as f64 / elapsed,
        cpu,
        elapsed,
        cpu / messages * 1e6,
    );
    let s = driver.stats();
    println!(
        "           io_uring: {} enters, {} submissions, {} copied / {} vectored sends, {} partial, {} receive starvations",
        s.enters, s.submissions, s.sends_copied, s.sends_vectored, s.partial_sends, s.recv_starved
    );
    Ok(())
}

fn main() -> std::io::Result<()> {
    let secs: f64 = std::env::args().nth(1).and_then(|s| s.parse().ok()).unwrap_or(2.0);
    let only = std::env::args().nth(2);
    let fan_in: usize = std::env::args().nth(3).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let scenarios: [(&str, usize, usize, usize); 4] = [
        ("ping-pong", 1, 16, 16),
        ("pipelined", 1, 16, 1600),
        ("bulk", 1, 256 * 1024, 8 << 20),
        ("fan-in", fan_in, 16, 16),
    ];
    for (name, conns, message, window) in scenarios {
        if only.as_deref().map_or(true, |o| o == name) {
            run(name, conns, message, window, secs)?;
        }
    }
    Ok(())
}
