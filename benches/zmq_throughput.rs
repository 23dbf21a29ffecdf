//! ZeroMQ throughput and latency: `monocoque::zmq::Socket` against libzmq, in the
//! same run, printing msgs/s and the ratio ours/libzmq per row.
//!
//! libzmq is driven by a small C program (`benches/zmq/zmq_peer.c`, compiled here
//! with `cc ... -lzmq` against Debian's `libzmq3-dev`), as libzmq's own
//! `local_thr`/`remote_thr` do: no interpreter in the way. Every run is two parties on
//! loopback: each of ours on its own thread (its own driver), libzmq's in its own
//! process. Throughput is measured by the receiver, from its first message to its
//! last (as `local_thr`); REQ/REP by the asker, over every round trip.
//!
//! Rows: PUSH->PULL at 8, 64, 256 and 1024 bytes, ours->ours, libzmq->libzmq,
//! ours->libzmq and libzmq->ours; DEALER->ROUTER at 64 bytes; REQ/REP round trips at
//! 64 bytes. Each figure is the best of `ZMQ_BENCH_RUNS` runs (3): the machine is
//! shared, and the best run is the least disturbed. `ZMQ_BENCH_COUNT` sets the
//! messages per throughput run (default 500,000; REQ/REP runs a fiftieth of it),
//! `ZMQ_BENCH_DRIVER` the driver (`uring` by default, or `mio`); `ZMQ_BENCH_PROFILE=SIZE`
//! runs ours->ours PUSH->PULL at SIZE bytes alone, to profile.
//!
//! `cargo bench --bench zmq_throughput`

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::zmq::{Options, Socket, SocketType};

const SIZES: [usize; 4] = [8, 64, 256, 1024];

fn main() {
    let count: usize = std::env::var("ZMQ_BENCH_COUNT")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(500_000);
    let runs: usize = std::env::var("ZMQ_BENCH_RUNS")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(3)
        .max(1);
    let driver: DriverKind = std::env::var("ZMQ_BENCH_DRIVER")
        .ok()
        .and_then(|d| d.parse().ok())
        .unwrap_or_default();
    let peer = match compile_peer() {
        Ok(peer) => peer,
        Err(why) => {
            eprintln!("zmq_throughput: {why}");
            eprintln!("install libzmq's headers and a C compiler: apt-get install libzmq3-dev gcc");
            std::process::exit(1);
        }
    };
    // For profiling (`perf stat`, `perf record`): ours->ours PUSH->PULL at one size only.
    if let Some(size) = std::env::var("ZMQ_BENCH_PROFILE").ok().and_then(|s| s.parse().ok()) {
        let elapsed = ours_pair(driver, SocketType::Pull, SocketType::Push, size, count);
        println!("ours->ours {size} B: {:.0} msgs/s", rate(count, elapsed));
        return;
    }
    // The fastest of `runs` runs: the least disturbed on a shared machine.
    let best = |run: &dyn Fn() -> Duration| (0..runs).map(|_| run()).min().unwrap_or_default();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!(
        "ZeroMQ, {count} messages per throughput run, best of {runs}, driver {driver}; load average {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!(
        "{:<34} {:>14} {:>14} {:>8}",
        "row", "ours msgs/s", "libzmq msgs/s", "ratio"
    );
    for size in SIZES {
        let libzmq = rate(count, best(&|| libzmq_pair(&peer, "pull", "push", size, count)));
        let ours = best(&|| ours_pair(driver, SocketType::Pull, SocketType::Push, size, count));
        row(&format!("PUSH->PULL {size} B ours->ours"), rate(count, ours), libzmq);
        let mixed = best(&|| ours_to_libzmq(&peer, driver, size, count));
        row(&format!("PUSH->PULL {size} B ours->libzmq"), rate(count, mixed), libzmq);
        let mixed = best(&|| libzmq_to_ours(&peer, driver, size, count));
        row(&format!("PUSH->PULL {size} B libzmq->ours"), rate(count, mixed), libzmq);
    }
    let libzmq = rate(count, best(&|| libzmq_pair(&peer, "router", "dealer", 64, count)));
    let ours = best(&|| ours_pair(driver, SocketType::Router, SocketType::Dealer, 64, count));
    row("DEALER->ROUTER 64 B ours->ours", rate(count, ours), libzmq);
    let trips = (count / 50).max(1);
    let libzmq = best(&|| libzmq_pair(&peer, "rep", "req", 64, trips));
    let ours = best(&|| ours_req_rep(driver, 64, trips));
    row("REQ/REP 64 B round trips", rate(trips, ours), rate(trips, libzmq));
    println!(
        "REQ/REP one way: ours {:.1} us, libzmq {:.1} us",
        ours.as_secs_f64() * 1e6 / trips as f64 / 2.0,
        libzmq.as_secs_f64() * 1e6 / trips as f64 / 2.0
    );
}

fn rate(count: usize, elapsed: Duration) -> f64 {
    count as f64 / elapsed.as_secs_f64().max(1e-9)
}

fn row(name: &str, ours: f64, libzmq: f64) {
    println!("{name:<34} {ours:>14.0} {libzmq:>14.0} {:>7.2}x", ours / libzmq);
}

/// Compiles `benches/zmq/zmq_peer.c` against libzmq, into the bench's scratch dir.
fn compile_peer() -> Result<PathBuf, String> {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("benches/zmq/zmq_peer.c");
    let binary = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("zmq_peer");
    let out = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&binary)
        .arg(&source)
        .arg("-lzmq")
        .output()
        .map_err(|e| format!("cannot run cc: {e}"))?;
    if !out.status.success() {
        return Err(format!("cc failed: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(binary)
}

/// A libzmq peer process: its stdout lines.
struct Peer {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
}

impl Peer {
    fn start(binary: &PathBuf, role: &str, endpoint: &str, size: usize, count: usize) -> Peer {
        let mut child = Command::new(binary)
            .args([role, endpoint, &size.to_string(), &count.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start zmq_peer");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Peer { child, lines }
    }

    fn line(&mut self) -> String {
        self.lines.next().and_then(Result::ok).expect("a line from zmq_peer")
    }

    /// The microseconds the peer measured, then its exit.
    fn elapsed(mut self) -> Duration {
        let us: u64 = self.line().parse().expect("microseconds");
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "zmq_peer failed");
        Duration::from_micros(us)
    }
}

/// libzmq on both sides: `server` binds and measures (or answers), `client` connects.
fn libzmq_pair(binary: &PathBuf, server: &str, client: &str, size: usize, count: usize) -> Duration {
    let mut bound = Peer::start(binary, server, "tcp://127.0.0.1:0", size, count);
    let endpoint = format!("tcp://127.0.0.1:{}", bound.line());
    let other = Peer::start(binary, client, &endpoint, size, count);
    if server == "rep" {
        let elapsed = other.elapsed();
        let _ = bound.child.wait();
        elapsed
    } else {
        let mut other = other;
        let _ = other.child.wait();
        bound.elapsed()
    }
}

fn options(driver: DriverKind) -> Options {
    Options {
        driver,
        ..Options::default()
    }
}

/// Receives `count` messages on an already bound socket, in batches
/// ([`Socket::recv_batch`]); the time from the first to the last.
fn receive(socket: &mut Socket, size: usize, count: usize) -> Duration {
    let mut start = None;
    let mut batch = Vec::new();
    let mut received = 0;
    while received < count {
        let n = socket.recv_batch(&mut batch, Duration::from_secs(60)).expect("recv");
        assert!(n > 0, "a message within a minute");
        // The clock starts with the first batch, which it does not time: the time
        // measured is scaled from the messages after it to all `count`.
        start.get_or_insert_with(|| (Instant::now(), n));
        for message in batch.drain(..) {
            assert_eq!(message.last().map(Bytes::len), Some(size));
        }
        received += n;
    }
    assert_eq!(received, count, "no more than was sent");
    start.map_or(Duration::ZERO, |(at, first)| {
        let timed = (count - first).max(1) as f64;
        at.elapsed().mul_f64(count as f64 / timed)
    })
}

/// Sends `count` messages from a new socket of `kind` connected to `port`, lingering
/// until they are written.
fn send(driver: DriverKind, kind: SocketType, port: u16, size: usize, count: usize) {
    let mut socket = Socket::with_options(kind, options(driver)).expect("socket");
    socket.connect(&format!("tcp://127.0.0.1:{port}")).expect("connect");
    let payload = Bytes::from(vec![0u8; size]);
    for _ in 0..count {
        socket.send(payload.clone()).expect("send");
    }
    assert!(socket.close().expect("close"), "everything written");
}

/// Ours on both sides, each on its own thread.
fn ours_pair(driver: DriverKind, server: SocketType, client: SocketType, size: usize, count: usize) -> Duration {
    let (tx, rx) = mpsc::channel();
    let receiver = std::thread::spawn(move || {
        let mut socket = Socket::with_options(server, options(driver)).expect("socket");
        let port = socket.bind("tcp://127.0.0.1:0").expect("bind").port();
        tx.send(port).expect("port");
        receive(&mut socket, size, count)
    });
    let port = rx.recv().expect("the receiver's port");
    send(driver, client, port, size, count);
    receiver.join().expect("receiver")
}

fn ours_to_libzmq(binary: &PathBuf, driver: DriverKind, size: usize, count: usize) -> Duration {
    let mut pull = Peer::start(binary, "pull", "tcp://127.0.0.1:0", size, count);
    let port: u16 = pull.line().parse().expect("port");
    send(driver, SocketType::Push, port, size, count);
    pull.elapsed()
}

fn libzmq_to_ours(binary: &PathBuf, driver: DriverKind, size: usize, count: usize) -> Duration {
    let mut pull = Socket::with_options(SocketType::Pull, options(driver)).expect("socket");
    let port = pull.bind("tcp://127.0.0.1:0").expect("bind").port();
    let mut push = Peer::start(binary, "push", &format!("tcp://127.0.0.1:{port}"), size, count);
    let elapsed = receive(&mut pull, size, count);
    let _ = push.child.wait();
    elapsed
}

fn ours_req_rep(driver: DriverKind, size: usize, trips: usize) -> Duration {
    let (tx, rx) = mpsc::channel();
    let rep = std::thread::spawn(move || {
        let mut socket = Socket::with_options(SocketType::Rep, options(driver)).expect("socket");
        let port = socket.bind("tcp://127.0.0.1:0").expect("bind").port();
        tx.send(port).expect("port");
        for _ in 0..trips {
            let request = socket.recv(Duration::from_secs(60)).expect("recv").expect("a request");
            socket.send(request).expect("reply");
        }
        socket.close().expect("close");
    });
    let port = rx.recv().expect("the REP's port");
    let mut req = Socket::with_options(SocketType::Req, options(driver)).expect("socket");
    req.connect(&format!("tcp://127.0.0.1:{port}")).expect("connect");
    let payload = Bytes::from(vec![0u8; size]);
    let start = Instant::now();
    for _ in 0..trips {
        req.send(vec![payload.clone()]).expect("ask");
        req.recv(Duration::from_secs(60)).expect("recv").expect("a reply");
    }
    let elapsed = start.elapsed();
    rep.join().expect("rep");
    elapsed
}
