//! NATS publishing throughput and client CPU, side by side, against one `nats-server`.
//!
//! ```text
//! cargo bench --bench nats_publish             # full run (a few minutes)
//! cargo bench --bench nats_publish -- --quick  # smoke run (seconds)
//! cargo bench --bench nats_publish -- --only uring --size 16 --msgs 2000000 # one run, for profiling
//! cargo bench --bench nats_publish -- --only async-nats --size 128 --received
//! cargo bench --bench nats_publish -- --only raw --size 16             # the reference row
//! ```
//!
//! One publishing connection sends N messages of 16 or 128 bytes to one subject, for:
//! - Monocoque's `nats::Client` on the io_uring driver and on the mio driver: `publish`
//!   in a loop (each one only encodes into the connection's arena; past the high-water
//!   mark a publish flushes by itself), then one `flush`;
//! - `async-nats` on a current-thread tokio runtime, its idiomatic fast path:
//!   `client.publish(...).await` in a loop, then `client.flush().await`;
//! - a reference with no client at all: `PUB` frames encoded once before the timed
//!   window and written in 64 KiB blocks on a blocking socket. What is left is the
//!   kernel's and the server's pace: about what any client can reach against this
//!   server on this machine (a client writing in other sizes may land a little above).
//!
//! Two variants, against the same `nats-server` (started here on a free loopback port):
//! - **discard**: nobody subscribes, the server parses and drops every message. The
//!   timed window ends with a round trip through the server on the publishing
//!   connection, after the last publish, so every message has been read and processed:
//!   Monocoque's `round_trip()` (`PING`/`PONG`); for async-nats, whose `flush` only
//!   empties its socket buffer and which has no public ping, a request to a subject
//!   nobody serves, answered by the server's no-responders status in order after
//!   everything published before it.
//! - **received**: a subscriber on a second, raw-socket connection (its own thread)
//!   checks every byte of every `MSG` it gets against the expected frame and counts
//!   them; the timed window ends when it has counted all N.
//!
//! Client CPU is `getrusage` user + system time of this process around the timed window
//! (every client runs on the calling thread; async-nats's connection task runs on the
//! same current-thread runtime), minus the subscriber thread's own `RUSAGE_THREAD` time
//! in the received variant. Each timed run uses a fresh connection, warmed up first.
//! Repetitions are interleaved (every contender at every size and variant, then again,
//! rotating who goes first) and medians reported, because the machine is small and
//! noisy and nats-server needs a core of its own.

#[path = "common/conditions.rs"]
mod conditions;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use conditions::{load_average, print_conditions};
use cpu::{cpu_of, median, self_cpu, Cpu};

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::nats::{Client, ClientOptions};
use support::NatsServer;

/// Message sizes measured.
const SIZES: [usize; 2] = [16, 128];
/// The subject nobody subscribes to (discard variant).
const DISCARD_SUBJECT: &str = "bench.void";
/// The subject the raw subscriber counts (received variant); same length as the other.
const RECEIVED_SUBJECT: &str = "bench.sink";
/// The subject of async-nats's completion request: nobody serves it.
const NOBODY_SUBJECT: &str = "bench.nobody";
/// Messages published (and completed) before each timed window.
const WARMUP: u64 = 20_000;

/// The publishing clients, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    Uring,
    Mio,
    AsyncNats,
    /// No client: pre-encoded `PUB` frames written in 64 KiB blocks with blocking
    /// `write`s. Not a contender, the reference: how fast this server takes messages
    /// from one connection on this machine when the client does no work.
    RawSocket,
}

impl Contender {
    const ALL: [Contender; 4] = [
        Contender::Uring,
        Contender::Mio,
        Contender::AsyncNats,
        Contender::RawSocket,
    ];

    fn label(self) -> &'static str {
        match self {
            Contender::Uring => "Monocoque (io_uring)",
            Contender::Mio => "Monocoque (mio)",
            Contender::AsyncNats => "async-nats 0.51 (tokio current-thread)",
            Contender::RawSocket => "reference: raw socket, pre-encoded frames",
        }
    }
}

/// Whether anybody receives the messages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Variant {
    /// No subscriber; completion is a round trip on the publishing connection.
    Discard,
    /// A raw-socket subscriber checks and counts every message.
    Received,
}

impl Variant {
    const ALL: [Variant; 2] = [Variant::Discard, Variant::Received];

    fn label(self) -> &'static str {
        match self {
            Variant::Discard => "discard",
            Variant::Received => "received",
        }
    }

    fn subject(self) -> &'static str {
        match self {
            Variant::Discard => DISCARD_SUBJECT,
            Variant::Received => RECEIVED_SUBJECT,
        }
    }
}

/// One timed run: messages completed, wall time, client CPU.
#[derive(Clone, Copy, Debug)]
struct Sample {
    msgs: u64,
    wall: Duration,
    cpu: Cpu,
}

impl Sample {
    fn msgs_per_sec(&self) -> f64 {
        self.msgs as f64 / self.wall.as_secs_f64()
    }

    /// Client CPU nanoseconds per message.
    fn cpu_ns_per_msg(&self) -> f64 {
        self.cpu.total().as_secs_f64() * 1e9 / self.msgs as f64
    }

    /// The kernel's share of [`cpu_ns_per_msg`](Self::cpu_ns_per_msg).
    fn sys_ns_per_msg(&self) -> f64 {
        self.cpu.sys.as_secs_f64() * 1e9 / self.msgs as f64
    }
}

fn thread_cpu() -> Cpu {
    cpu_of(libc::RUSAGE_THREAD)
}

/// A payload of `size` bytes that lives for the whole run, so `Bytes::from_static`
/// hands it to every client without a copy or a reference count.
fn payload(size: usize) -> &'static [u8] {
    let bytes: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
    Box::leak(bytes.into_boxed_slice())
}

// ---------------------------------------------------------------------------------------
// The raw subscriber (received variant)
// ---------------------------------------------------------------------------------------

/// What the subscriber thread reports once it counted every message.
struct Received {
    done: Instant,
    cpu: Cpu,
}

/// A subscriber on its own raw connection: subscribed (the server confirmed with a
/// `PONG`) before it is returned, counting on its own thread from then on.
struct RawSubscriber {
    thread: JoinHandle<Received>,
}

impl RawSubscriber {
    /// Subscribes to `subject` as sid 1 and starts a thread that expects exactly
    /// `warmup + count` `MSG` frames carrying `payload` (any `PING` from the server is
    /// answered), and reports when it has them all.
    fn start(port: u16, subject: &str, payload: &'static [u8], warmup: u64, count: u64) -> Self {
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("subscriber connects to nats-server");
        s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
        s.set_nodelay(true).expect("nodelay");
        read_line_starting(&mut s, b"INFO ");
        let hello = format!("CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\nSUB {subject} 1\r\nPING\r\n");
        s.write_all(hello.as_bytes()).expect("subscriber handshake");
        read_line_starting(&mut s, b"PONG");
        let mut frame = format!("MSG {subject} 1 {}\r\n", payload.len()).into_bytes();
        frame.extend_from_slice(payload);
        frame.extend_from_slice(b"\r\n");
        let thread = std::thread::spawn(move || count_frames(s, &frame, warmup, count));
        Self { thread }
    }

    /// Waits for the subscriber to have counted everything.
    fn wait(self) -> Received {
        match self.thread.join() {
            Ok(received) => received,
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

/// Reads one line and checks it starts with `prefix` (nothing else is expected yet).
fn read_line_starting(s: &mut TcpStream, prefix: &[u8]) {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        let n = s.read(&mut byte).expect("read from nats-server");
        assert!(n > 0, "nats-server closed the subscriber's connection");
        line.push(byte[0]);
    }
    assert!(
        line.starts_with(prefix),
        "expected {:?}, got {:?}",
        String::from_utf8_lossy(prefix),
        String::from_utf8_lossy(&line)
    );
}

/// Checks the stream is `warmup + count` copies of `frame` (with any server `PING`
/// between two frames answered by a `PONG`). Its CPU is measured from the first byte
/// after the warm-up to the last frame.
fn count_frames(mut s: TcpStream, frame: &[u8], warmup: u64, count: u64) -> Received {
    const PING: &[u8] = b"PING\r\n";
    let total = warmup + count;
    let mut buf = vec![0u8; 1 << 20];
    let mut frames = 0u64;
    // Offset in `frame` (or in `PING` while `in_ping`) of the next expected byte.
    let mut k = 0usize;
    let mut in_ping = false;
    let mut cpu0 = if warmup == 0 { Some(thread_cpu()) } else { None };
    while frames < total {
        let n = s
            .read(&mut buf)
            .expect("subscriber reads (a missing message times out here)");
        assert!(
            n > 0,
            "nats-server closed the subscriber's connection after {frames} messages"
        );
        let mut data = &buf[..n];
        while !data.is_empty() {
            if k == 0 && !in_ping && data[0] == b'P' {
                in_ping = true;
            }
            let expected = if in_ping { PING } else { frame };
            let m = data.len().min(expected.len() - k);
            assert!(
                data[..m] == expected[k..k + m],
                "unexpected bytes after {frames} messages: {:?}",
                String::from_utf8_lossy(&data[..m.min(200)])
            );
            data = &data[m..];
            k += m;
            if k == expected.len() {
                k = 0;
                if in_ping {
                    in_ping = false;
                    s.write_all(b"PONG\r\n").expect("subscriber answers PING");
                } else {
                    frames += 1;
                    if frames == warmup {
                        cpu0 = Some(thread_cpu());
                    }
                }
            }
        }
    }
    let done = Instant::now();
    let cpu = thread_cpu() - cpu0.unwrap_or_default();
    assert_eq!(frames, total, "exactly the messages published");
    Received { done, cpu }
}

// ---------------------------------------------------------------------------------------
// The contenders
// ---------------------------------------------------------------------------------------

/// How a timed window ends.
enum Completion {
    /// A round trip on the publishing connection.
    RoundTrip,
    /// The raw subscriber counted everything.
    Subscriber(RawSubscriber),
}

impl Completion {
    /// What `variant` waits for: a round trip, or a subscriber started now.
    fn for_variant(variant: Variant, port: u16, payload: &'static [u8], msgs: u64) -> Self {
        match variant {
            Variant::Discard => Completion::RoundTrip,
            Variant::Received => {
                Completion::Subscriber(RawSubscriber::start(port, variant.subject(), payload, WARMUP, msgs))
            }
        }
    }

    /// Ends the timed window that began at `t0` with `cpu0`: `round_trip` runs (for
    /// [`RoundTrip`](Self::RoundTrip)) or the subscriber is waited for, and its own CPU
    /// is taken out of the client's.
    fn end(self, t0: Instant, cpu0: Cpu, msgs: u64, round_trip: impl FnOnce()) -> Sample {
        let (done, cpu) = match self {
            Completion::RoundTrip => {
                round_trip();
                (Instant::now(), self_cpu() - cpu0)
            }
            Completion::Subscriber(sub) => {
                let received = sub.wait();
                (received.done, self_cpu() - cpu0 - received.cpu)
            }
        };
        Sample {
            msgs,
            wall: done - t0,
            cpu,
        }
    }
}

fn run_monocoque(kind: DriverKind, port: u16, variant: Variant, payload: &'static [u8], msgs: u64) -> Sample {
    let url = format!("nats://127.0.0.1:{port}");
    let options = ClientOptions::from_url(&url).expect("URL").driver(kind);
    let mut client = Client::connect_with(options).unwrap_or_else(|e| panic!("connect ({kind}): {e}"));
    let subject = variant.subject();
    let completion = Completion::for_variant(variant, port, payload, msgs);
    let publish_all = |client: &mut Client, n: u64| {
        for i in 0..n {
            client
                .publish(subject, Bytes::from_static(payload))
                .unwrap_or_else(|e| panic!("publish {i}: {e}"));
        }
        client.flush().unwrap_or_else(|e| panic!("flush: {e}"));
    };
    // Warm up: connection buffers, allocator, the server's side.
    publish_all(&mut client, WARMUP);
    client.round_trip().unwrap_or_else(|e| panic!("round trip: {e}"));
    let cpu0 = self_cpu();
    let t0 = Instant::now();
    publish_all(&mut client, msgs);
    completion.end(t0, cpu0, msgs, || {
        client.round_trip().unwrap_or_else(|e| panic!("round trip: {e}"));
    })
}

fn run_async_nats(port: u16, variant: Variant, payload: &'static [u8], msgs: u64) -> Sample {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let subject = variant.subject();
    rt.block_on(async {
        let client = async_nats::connect(format!("nats://127.0.0.1:{port}"))
            .await
            .expect("async-nats connects");
        let completion = Completion::for_variant(variant, port, payload, msgs);
        // A round trip through the server: a request nobody serves is answered with the
        // no-responders status, after everything this connection published before it.
        let round_trip = || async {
            match client.request(NOBODY_SUBJECT, Bytes::new()).await {
                Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {}
                other => panic!("expected no responders, got {other:?}"),
            }
        };
        let publish_all = |n: u64| {
            let client = &client;
            async move {
                for i in 0..n {
                    client
                        .publish(subject, Bytes::from_static(payload))
                        .await
                        .unwrap_or_else(|e| panic!("async-nats publish {i}: {e}"));
                }
                client.flush().await.expect("async-nats flush");
            }
        };
        publish_all(WARMUP).await;
        round_trip().await;
        let cpu0 = self_cpu();
        let t0 = Instant::now();
        publish_all(msgs).await;
        if matches!(completion, Completion::RoundTrip) {
            round_trip().await;
        }
        completion.end(t0, cpu0, msgs, || {})
    })
}

/// The reference: the frames are encoded once, before the timed window, into a 64 KiB
/// block that is written over and over; the only per-message work left is the kernel's
/// and the server's.
fn run_raw_socket(port: u16, variant: Variant, payload: &'static [u8], msgs: u64) -> Sample {
    const BLOCK: usize = 64 * 1024;
    let subject = variant.subject();
    let mut frame = format!("PUB {subject} {}\r\n", payload.len()).into_bytes();
    frame.extend_from_slice(payload);
    frame.extend_from_slice(b"\r\n");
    let per_block = (BLOCK / frame.len()).max(1);
    let block: Vec<u8> = frame.repeat(per_block);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("raw publisher connects to nats-server");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    read_line_starting(&mut s, b"INFO ");
    s.write_all(b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n")
        .expect("raw publisher handshake");
    read_line_starting(&mut s, b"PONG");
    let completion = Completion::for_variant(variant, port, payload, msgs);
    let publish_all = |s: &mut TcpStream, n: u64| {
        let mut left = n;
        while left > 0 {
            let k = left.min(per_block as u64);
            s.write_all(&block[..k as usize * frame.len()])
                .expect("raw publisher writes");
            left -= k;
        }
    };
    // A round trip: the server answers PING after everything written before it.
    let round_trip = |s: &mut TcpStream| {
        s.write_all(b"PING\r\n").expect("raw publisher pings");
        read_line_starting(s, b"PONG");
    };
    publish_all(&mut s, WARMUP);
    round_trip(&mut s);
    let cpu0 = self_cpu();
    let t0 = Instant::now();
    publish_all(&mut s, msgs);
    completion.end(t0, cpu0, msgs, || round_trip(&mut s))
}

fn run(c: Contender, port: u16, variant: Variant, payload: &'static [u8], msgs: u64) -> Sample {
    match c {
        Contender::Uring => run_monocoque(DriverKind::Uring, port, variant, payload, msgs),
        Contender::Mio => run_monocoque(DriverKind::Mio, port, variant, payload, msgs),
        Contender::AsyncNats => run_async_nats(port, variant, payload, msgs),
        Contender::RawSocket => run_raw_socket(port, variant, payload, msgs),
    }
}

// ---------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------

/// `--only <uring|mio|async-nats> [--size N] [--msgs N] [--received]`: one run of one
/// contender, for profiling (`valgrind --tool=callgrind`, `strace -c`).
fn single_run(port: u16) -> Option<Sample> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
    let only = value("--only")?;
    let size = value("--size").map_or(16, |d| d.parse().expect("--size N"));
    let msgs = value("--msgs").map_or(1_000_000, |d| d.parse().expect("--msgs N"));
    let variant = if args.iter().any(|a| a == "--received") {
        Variant::Received
    } else {
        Variant::Discard
    };
    let contender = match only.as_str() {
        "uring" => Contender::Uring,
        "mio" => Contender::Mio,
        "async-nats" => Contender::AsyncNats,
        "raw" => Contender::RawSocket,
        other => panic!("--only {other}: expected uring, mio, async-nats or raw"),
    };
    Some(run(contender, port, variant, payload(size), msgs))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (reps, msgs) = if quick { (1, 200_000) } else { (5, 2_000_000) };

    let server = NatsServer::start();
    let port = server.port();
    if let Some(sample) = single_run(port) {
        println!(
            "{} msgs in {:.3} s: {:.0} msgs/s, client CPU {:.3} s user + {:.3} s system ({:.1} ns per msg)",
            sample.msgs,
            sample.wall.as_secs_f64(),
            sample.msgs_per_sec(),
            sample.cpu.user.as_secs_f64(),
            sample.cpu.sys.as_secs_f64(),
            sample.cpu_ns_per_msg()
        );
        return;
    }
    println!("# NATS publishing: one connection, {msgs} messages per run to one subject");
    println!();
    print_conditions(&NatsServer::version(), reps, quick);
    println!();

    let payloads: Vec<&'static [u8]> = SIZES.iter().map(|&s| payload(s)).collect();
    // samples[variant][size][contender]
    let mut samples = vec![vec![vec![Vec::<Sample>::new(); Contender::ALL.len()]; SIZES.len()]; Variant::ALL.len()];
    for rep in 0..reps {
        for (v, &variant) in Variant::ALL.iter().enumerate() {
            for (s, &body) in payloads.iter().enumerate() {
                // Rotate who goes first, so no contender always runs on a warmer server.
                for k in 0..Contender::ALL.len() {
                    let c = (k + rep + v + s) % Contender::ALL.len();
                    samples[v][s][c].push(run(Contender::ALL[c], port, variant, body, msgs));
                }
            }
        }
        eprintln!("repetition {}/{reps} done", rep + 1);
    }

    let med = |v: usize, s: usize, c: usize| -> (f64, f64, f64) {
        let set = &samples[v][s][c];
        (
            median(set.iter().map(Sample::msgs_per_sec).collect()),
            median(set.iter().map(Sample::cpu_ns_per_msg).collect()),
            median(set.iter().map(Sample::sys_ns_per_msg).collect()),
        )
    };

    println!("| variant | size | client | msgs/s | client CPU ns/msg | of which kernel |");
    println!("|---|---:|---|---:|---:|---:|");
    for (v, variant) in Variant::ALL.iter().enumerate() {
        for (s, size) in SIZES.iter().enumerate() {
            for (c, contender) in Contender::ALL.iter().enumerate() {
                let (rate, cpu, sys) = med(v, s, c);
                println!(
                    "| {} | {size} B | {} | {rate:.0} | {cpu:.1} | {sys:.1} |",
                    variant.label(),
                    contender.label()
                );
            }
        }
    }
    println!();
    println!("Ratios (Monocoque / async-nats; msgs/s higher is better, CPU per message lower is better):");
    println!();
    println!("| variant | size | driver | msgs/s | CPU/msg |");
    println!("|---|---:|---|---:|---:|");
    let peer = Contender::ALL
        .iter()
        .position(|&c| c == Contender::AsyncNats)
        .expect("async-nats");
    let mut targets = Vec::new();
    for (v, variant) in Variant::ALL.iter().enumerate() {
        for (s, size) in SIZES.iter().enumerate() {
            let (peer_rate, peer_cpu, _) = med(v, s, peer);
            for (c, contender) in Contender::ALL.iter().enumerate() {
                if matches!(contender, Contender::AsyncNats | Contender::RawSocket) {
                    continue;
                }
                let (rate, cpu, _) = med(v, s, c);
                let driver = if *contender == Contender::Uring {
                    "io_uring"
                } else {
                    "mio"
                };
                println!(
                    "| {} | {size} B | {driver} | {:.2}x | {:.2}x |",
                    variant.label(),
                    rate / peer_rate,
                    cpu / peer_cpu
                );
                targets.push((variant.label(), *size, contender.label(), rate / peer_rate));
            }
        }
    }
    println!();
    let reference = Contender::ALL
        .iter()
        .position(|&c| c == Contender::RawSocket)
        .expect("reference");
    println!("What 2x async-nats would need, against the reference (raw socket, no client work):");
    println!();
    println!("| variant | size | 2x async-nats msgs/s | reference msgs/s | reference / async-nats |");
    println!("|---|---:|---:|---:|---:|");
    for (v, variant) in Variant::ALL.iter().enumerate() {
        for (s, size) in SIZES.iter().enumerate() {
            let (peer_rate, _, _) = med(v, s, peer);
            let (reference_rate, _, _) = med(v, s, reference);
            println!(
                "| {} | {size} B | {:.0} | {reference_rate:.0} | {:.2}x |",
                variant.label(),
                2.0 * peer_rate,
                reference_rate / peer_rate
            );
        }
    }
    println!();
    println!("Target: msgs/s >= 2x async-nats:");
    println!();
    for (variant, size, label, ratio) in targets {
        println!(
            "- {variant}, {size} B, {label}: {ratio:.2}x, {}",
            if ratio >= 2.0 { "met" } else { "MISSED" }
        );
    }
    println!();
    println!("Load average at the end: {}", load_average());
    drop(server);
}
