//! Loopback numbers for the drivers: one thread, one driver holding both the client and
//! the echo server, so every figure is the driver's whole cost on both ends. The same
//! scenarios run on io_uring and on mio, so the two compare directly.
//!
//! ```text
//! cargo run --release --example echo_bench -- [--driver uring|mio] [--seconds S] [--scenario NAME] [--fan-in N]
//! ```
//!
//! Without `--driver`, every scenario runs on both drivers (io_uring first).
//!
//! - ping-pong: one 16-byte message in flight (round trips per second);
//! - pipelined: 100 messages of 16 bytes in flight (messages per second);
//! - bulk: 256 KiB segments, 8 MiB in flight, echoed (bytes per second each way);
//! - fan-in: 1,000 connections (`--fan-in`), one 16-byte message in flight on each.
//!
//! CPU seconds come from `getrusage` and cover the whole process.

use std::error::Error;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser;
use monocoque::driver::{AnyDriver, DriverKind};
use monocoque::proto::{Activity, ConnId, Driver, IoArena, Session};

/// Command line of the echo benchmark.
#[derive(Parser, Debug)]
#[command(about = "Loopback echo benchmark over the io_uring and mio drivers")]
struct Args {
    /// The driver to measure; both when not given.
    #[arg(long)]
    driver: Option<DriverKind>,
    /// Seconds each scenario is measured for.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Run only this scenario.
    #[arg(long, value_parser = ["ping-pong", "pipelined", "bulk", "fan-in"])]
    scenario: Option<String>,
    /// Connections in the fan-in scenario.
    #[arg(long, default_value_t = 1000)]
    fan_in: usize,
}

/// The echo server's session.
struct Echo {
    arena: IoArena,
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
    fn handle_input(&mut self, data: Bytes, _now: Instant) {
        match self {
            Bench::Echo(e) => e.arena.put_bytes(&data),
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

/// Bytes the clients have received so far.
fn received(driver: &AnyDriver<Bench>, clients: &[ConnId]) -> u64 {
    clients
        .iter()
        .map(|&c| match driver.session(c) {
            Some(Bench::Client(cl)) => cl.received,
            _ => 0,
        })
        .sum()
}

/// The driver's own counters, one line.
fn driver_stats(driver: &AnyDriver<Bench>) -> String {
    match driver {
        AnyDriver::Uring(d) => {
            let s = d.stats();
            format!(
                "io_uring: {} enters, {} submissions, {} copied / {} vectored sends, {} partial, {} receive starvations",
                s.enters, s.submissions, s.sends_copied, s.sends_vectored, s.partial_sends, s.recv_starved
            )
        }
        AnyDriver::Mio(d) => {
            let s = d.pool_stats();
            format!(
                "pool: {} chunks allocated, {} reused",
                s.chunks_allocated, s.chunks_reused
            )
        }
    }
}

fn run(
    kind: DriverKind,
    name: &str,
    conns: usize,
    message: usize,
    window: usize,
    secs: f64,
) -> Result<(), Box<dyn Error>> {
    let mut driver: AnyDriver<Bench> = AnyDriver::new(kind)?;
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
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
    let start_bytes = received(&driver, &clients);
    let start_cpu = cpu_seconds();
    let start = Instant::now();
    let end = start + Duration::from_secs_f64(secs);
    let mut turns = 0u64;
    while Instant::now() < end {
        driver.turn(Some(end), &mut out)?;
        turns += 1;
        for a in out.drain(..) {
            if let Activity::Closed { conn, error } = a {
                eprintln!("{kind} {name}: {conn:?} closed: {error:?}");
            }
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - start_cpu;
    let bytes = received(&driver, &clients) - start_bytes;
    let messages = bytes as f64 / message as f64;
    println!(
        "{kind:<5} {name:<10} conns {conns:>5}  msg {message:>7} B  window {window:>8} B  {:>12.0} msg/s  {:>9.1} MiB/s  {:>8.0} turns/s  cpu {:.2} s/{:.2} s  {:.2} µs cpu/msg",
        messages / elapsed,
        bytes as f64 / elapsed / (1024.0 * 1024.0),
        turns as f64 / elapsed,
        cpu,
        elapsed,
        cpu / messages * 1e6,
    );
    println!("                 {}", driver_stats(&driver));
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = Args::parse();
    let scenarios: [(&str, usize, usize, usize); 4] = [
        ("ping-pong", 1, 16, 16),
        ("pipelined", 1, 16, 1600),
        ("bulk", 1, 256 * 1024, 8 << 20),
        ("fan-in", args.fan_in, 16, 16),
    ];
    let kinds = match args.driver {
        Some(kind) => vec![kind],
        None => DriverKind::ALL.to_vec(),
    };
    for kind in kinds {
        for (name, conns, message, window) in scenarios {
            if args.scenario.as_deref().is_none_or(|o| o == name) {
                run(kind, name, conns, message, window, args.seconds)?;
            }
        }
    }
    Ok(())
}
