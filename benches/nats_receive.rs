//! NATS receiving throughput and client CPU, side by side, against one `nats-server`.
//!
//! ```text
//! cargo bench --bench nats_receive             # full run (several minutes)
//! cargo bench --bench nats_receive -- --quick  # smoke run (seconds)
//! cargo bench --bench nats_receive -- --only uring --size 16 --msgs 2000000 # one run, for profiling
//! cargo bench --bench nats_receive -- --only mio-batch --size 16            # batches (or uring-batch)
//! cargo bench --bench nats_receive -- --only mio-view --size 16             # visited (or uring-view)
//! cargo bench --bench nats_receive -- --only async-nats --size 128 --flat-out
//! cargo bench --bench nats_receive -- --only raw --size 16                  # the reference row
//! ```
//!
//! One subscribing connection receives N messages of 16 or 128 bytes on one subject,
//! and hands each one to the application, for:
//! - Monocoque's `nats::Client` on the io_uring driver and on the mio driver:
//!   `Subscription::next_message` in a loop, with the backpressure subscription policy
//!   (a full queue stops reading the socket instead of dropping); and the same with
//!   `Subscription::next_messages` (the "batches" rows: every message queued, up to
//!   65,536, handed over in one call, then checked one by one); and with
//!   `Subscription::for_each_message` (the "visited" rows: each message handed to the
//!   checking closure as a `MessageRef` borrowed from the received bytes, no queue);
//! - `async-nats` on a current-thread tokio runtime, its idiomatic path:
//!   `client.subscribe(..).await`, then `subscriber.next().await` in a loop, with its
//!   default subscription capacity (65,536 messages; past that it drops, silently unless
//!   one listens for its slow-consumer event);
//! - a reference with no client at all: a blocking socket read into a 1 MiB buffer and
//!   `MSG` frames checked in place. What is left is the kernel's and the server's pace:
//!   about what any client can reach from this server on this machine.
//!
//! The publisher is the same for every contender and does no per-message work worth
//! the name: a raw socket on its own thread writes `PUB` frames in 64 KiB blocks, encoded
//! once before the run; only the 8-byte sequence number at the head of each payload is
//! patched into the block before it is written. The subscriber checks every message it
//! is handed: its length, its sequence number (strictly increasing: a gap is counted as
//! lost, a duplicate or a reordering fails the run) and every other payload byte.
//!
//! Two modes, against the same `nats-server` (started here on a free loopback port, with
//! its monitoring port open so `/varz` says how many slow consumers it cut off):
//! - **paced**: the publisher stays at most 32,768 messages ahead of what the subscriber
//!   has counted (the subscriber publishes its progress every 256 messages in an atomic;
//!   the publisher sleeps while the window is full). Nothing can overflow anybody's
//!   buffer (async-nats's queue is twice the window), so every contender must receive
//!   everything, and msgs/s is the fastest each one consumes without loss: the fair
//!   comparison.
//! - **flat-out**: the publisher writes as fast as the server takes it. A subscriber
//!   slower than the server falls behind: async-nats drops what does not fit in its
//!   queue; ours stops reading, and the server buffers for it (up to its `max_pending`,
//!   64 MiB, past which it would cut the connection as a slow consumer). msgs/s counts
//!   only what was delivered; the loss column says what was not.
//!
//! Each run uses fresh connections. The publisher first sends a warm-up of 20,000
//! messages and waits until the subscriber has counted them all; the timed window runs
//! from the subscriber's receipt of the last warm-up message to its receipt of the last
//! message. If messages were lost, the last never comes: the publisher, done, watches
//! the subscriber's count, and once it has not moved for 3 s sends a sentinel message
//! that ends the run; the window then ends at the subscriber's last progress mark. No
//! receive loop carries a timer per message (ours passes a 60 s timeout that only
//! guards against a hang; async-nats's is a bare `next().await`). Client CPU is `getrusage(RUSAGE_THREAD)` user + system time of the receiving
//! thread over that window: every contender runs entirely on it (async-nats's connection
//! task runs on the same current-thread runtime). Repetitions are interleaved (every
//! contender at every size and mode, then again, rotating who goes first) and medians
//! reported, because the machine is small and noisy and nats-server needs a core.

#[path = "common/conditions.rs"]
mod conditions;
// `self_cpu` is for the benches that run several threads' work on one process clock.
#[allow(dead_code)]
#[path = "common/cpu.rs"]
mod cpu;
#[path = "../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use conditions::{load_average, print_conditions};
use cpu::{cpu_of, median, Cpu};

use futures_util::StreamExt;
use monocoque::driver::DriverKind;
use monocoque::nats::{Client, ClientOptions, SubscriptionPolicy};
use support::{NatsConfig, NatsServer};

/// Message sizes measured.
const SIZES: [usize; 2] = [16, 128];
/// The subject everything is published to.
const SUBJECT: &str = "bench.recv";
/// Messages published and counted before each timed window.
const WARMUP: u64 = 20_000;
/// Paced mode: the most messages the publisher may be ahead of the subscriber's count.
const WINDOW: u64 = 32_768;
/// The subscriber publishes its progress (the next sequence number it expects) every
/// this many messages received.
const PROGRESS_EVERY: u64 = 256;
/// How long the publisher, done, waits for the subscriber's count to move before it
/// declares the rest lost and sends the end-of-run sentinel.
const IDLE: Duration = Duration::from_secs(3);
/// The sequence number of the sentinel: "nothing more is coming, stop counting".
const SENTINEL: u64 = u64::MAX;
/// The value of the progress counter once the subscriber has every message.
const DONE: u64 = u64::MAX;
/// How long a subscriber waits for one message before the run fails (the sentinel
/// ends a run that lost messages long before).
const PATIENCE: Duration = Duration::from_secs(60);
/// The bytes at the head of each payload that carry its sequence number.
const SEQ_BYTES: usize = 8;

/// The subscribing clients, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    Uring,
    Mio,
    /// `Subscription::next_messages` (batches) on the io_uring driver.
    UringBatch,
    /// `Subscription::next_messages` (batches) on the mio driver.
    MioBatch,
    /// `Subscription::for_each_message` (visited, no queue) on the io_uring driver.
    UringView,
    /// `Subscription::for_each_message` (visited, no queue) on the mio driver.
    MioView,
    AsyncNats,
    /// No client: a blocking socket read and `MSG` frames checked in place. Not a
    /// contender, the reference: how fast this server delivers to one connection.
    RawSocket,
}

impl Contender {
    const ALL: [Contender; 8] = [
        Contender::Uring,
        Contender::Mio,
        Contender::UringBatch,
        Contender::MioBatch,
        Contender::UringView,
        Contender::MioView,
        Contender::AsyncNats,
        Contender::RawSocket,
    ];

    fn label(self) -> &'static str {
        match self {
            Contender::Uring => "Monocoque (io_uring)",
            Contender::Mio => "Monocoque (mio)",
            Contender::UringBatch => "Monocoque (io_uring), batches",
            Contender::MioBatch => "Monocoque (mio), batches",
            Contender::UringView => "Monocoque (io_uring), visited",
            Contender::MioView => "Monocoque (mio), visited",
            Contender::AsyncNats => "async-nats 0.51 (tokio current-thread)",
            Contender::RawSocket => "reference: raw socket, frames checked in place",
        }
    }
}

/// How fast the publisher goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// At most [`WINDOW`] messages ahead of the subscriber's count.
    Paced,
    /// As fast as the server takes them.
    FlatOut,
}

impl Mode {
    const ALL: [Mode; 2] = [Mode::Paced, Mode::FlatOut];

    fn label(self) -> &'static str {
        match self {
            Mode::Paced => "paced",
            Mode::FlatOut => "flat-out",
        }
    }
}

/// One timed run.
#[derive(Clone, Copy, Debug)]
struct Sample {
    /// Messages published in the timed window.
    published: u64,
    /// Of those, handed to the application (checked).
    delivered: u64,
    wall: Duration,
    cpu: Cpu,
    /// Slow consumers the server counted during the run (`/varz`).
    slow_consumers: u64,
    /// Connections the client made (1 unless it had to reconnect).
    connections: u64,
}

impl Sample {
    fn msgs_per_sec(&self) -> f64 {
        self.delivered as f64 / self.wall.as_secs_f64()
    }

    fn lost(&self) -> u64 {
        self.published - self.delivered
    }

    /// Client CPU nanoseconds per delivered message.
    fn cpu_ns_per_msg(&self) -> f64 {
        self.cpu.total().as_secs_f64() * 1e9 / self.delivered.max(1) as f64
    }

    /// The kernel's share of [`cpu_ns_per_msg`](Self::cpu_ns_per_msg).
    fn sys_ns_per_msg(&self) -> f64 {
        self.cpu.sys.as_secs_f64() * 1e9 / self.delivered.max(1) as f64
    }
}

fn thread_cpu() -> Cpu {
    cpu_of(libc::RUSAGE_THREAD)
}

/// A payload of `size` bytes: the sequence number's place (zeros here), then letters.
fn payload_template(size: usize) -> Vec<u8> {
    assert!(size >= SEQ_BYTES, "a payload carries an 8-byte sequence number");
    (0..size)
        .map(|i| if i < SEQ_BYTES { 0 } else { b'a' + (i % 26) as u8 })
        .collect()
}

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

/// A free loopback port (for the monitoring listener).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// The server under test and its monitoring port.
struct Server {
    nats: NatsServer,
    http: u16,
}

impl Server {
    fn start() -> Self {
        let http = free_port();
        let nats = NatsServer::start_with(NatsConfig::new().raw(&format!("http: \"127.0.0.1:{http}\"")));
        Self { nats, http }
    }

    fn port(&self) -> u16 {
        self.nats.port()
    }

    /// `slow_consumers` from the server's `/varz`: connections it cut off (or flagged)
    /// for not reading fast enough, since it started.
    fn slow_consumers(&self) -> u64 {
        let mut s = TcpStream::connect(("127.0.0.1", self.http)).expect("connect to the monitoring port");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
        s.write_all(b"GET /varz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .expect("ask /varz");
        let mut body = String::new();
        s.read_to_string(&mut body).expect("read /varz");
        let key = "\"slow_consumers\":";
        let at = body
            .find(key)
            .unwrap_or_else(|| panic!("no slow_consumers in /varz: {body}"));
        body[at + key.len()..]
            .trim_start()
            .bytes()
            .take_while(u8::is_ascii_digit)
            .fold(0, |n, d| n * 10 + u64::from(d - b'0'))
    }
}

/// Reads one line and checks it starts with `prefix` (nothing else is expected yet).
fn read_line_starting(s: &mut TcpStream, prefix: &[u8]) {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        let n = s.read(&mut byte).expect("read from nats-server");
        assert!(n > 0, "nats-server closed the connection");
        line.push(byte[0]);
    }
    assert!(
        line.starts_with(prefix),
        "expected {:?}, got {:?}",
        String::from_utf8_lossy(prefix),
        String::from_utf8_lossy(&line)
    );
}

/// Reads lines until a `PONG`, answering the server's own `PING`s (it sends one to
/// measure the round trip a moment after a client connects).
fn await_pong(s: &mut TcpStream) {
    loop {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        while !line.ends_with(b"\r\n") {
            let n = s.read(&mut byte).expect("read from nats-server");
            assert!(n > 0, "nats-server closed the connection");
            line.push(byte[0]);
        }
        match &line[..] {
            b"PONG\r\n" => return,
            b"PING\r\n" => s.write_all(b"PONG\r\n").expect("answer PING"),
            other => panic!("expected PONG, got {:?}", String::from_utf8_lossy(other)),
        }
    }
}

/// A raw connection past the handshake (`CONNECT`, then `extra`, confirmed by a `PONG`).
fn raw_connection(port: u16, extra: &str) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to nats-server");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    s.set_nodelay(true).expect("nodelay");
    read_line_starting(&mut s, b"INFO ");
    let hello = format!("CONNECT {{\"verbose\":false,\"pedantic\":false}}\r\n{extra}PING\r\n");
    s.write_all(hello.as_bytes()).expect("handshake");
    await_pong(&mut s);
    s
}

// ---------------------------------------------------------------------------------------
// The publisher (the same for every contender)
// ---------------------------------------------------------------------------------------

/// The publishing thread: `warmup + count` messages, sequence numbers from 0.
struct Publisher {
    thread: JoinHandle<()>,
}

impl Publisher {
    /// Connects, then publishes the warm-up, waits until `progress` says the subscriber
    /// counted it, and publishes `count` more (in `mode`).
    fn start(port: u16, mode: Mode, size: usize, count: u64, progress: Arc<AtomicU64>) -> Self {
        const BLOCK: usize = 64 * 1024;
        let mut frame = format!("PUB {SUBJECT} {size}\r\n").into_bytes();
        let seq_at = frame.len();
        frame.extend_from_slice(&payload_template(size));
        frame.extend_from_slice(b"\r\n");
        let per_block = (BLOCK / frame.len()).max(1);
        let mut block = frame.repeat(per_block);
        let mut s = raw_connection(port, "");
        let thread = std::thread::spawn(move || {
            let mut next = 0u64;
            let mut publish = |s: &mut TcpStream, n: u64, paced: bool| {
                let end = next + n;
                while next < end {
                    if paced {
                        while next.saturating_sub(progress.load(Ordering::Acquire)) > WINDOW {
                            std::thread::sleep(Duration::from_micros(50));
                        }
                    }
                    let k = (end - next).min(per_block as u64) as usize;
                    for (i, f) in block.chunks_exact_mut(frame.len()).take(k).enumerate() {
                        f[seq_at..seq_at + SEQ_BYTES].copy_from_slice(&(next + i as u64).to_le_bytes());
                    }
                    s.write_all(&block[..k * frame.len()]).expect("publisher writes");
                    next += k as u64;
                }
            };
            publish(&mut s, WARMUP, false);
            while progress.load(Ordering::Acquire) < WARMUP {
                std::thread::sleep(Duration::from_micros(50));
            }
            publish(&mut s, count, mode == Mode::Paced);
            // A round trip: the server has routed everything before it answers.
            s.write_all(b"PING\r\n").expect("publisher pings");
            await_pong(&mut s);
            // The watchdog: once the subscriber's count has not moved for IDLE, what has
            // not arrived never will (lost); the sentinel tells it to stop counting.
            // Nothing is in anybody's queue by then, so the sentinel is not dropped.
            let mut seen = progress.load(Ordering::Acquire);
            let mut since = Instant::now();
            while seen != DONE {
                std::thread::sleep(Duration::from_millis(20));
                let now = progress.load(Ordering::Acquire);
                if now != seen {
                    (seen, since) = (now, Instant::now());
                } else if since.elapsed() >= IDLE {
                    let f = &mut block[..frame.len()];
                    f[seq_at..seq_at + SEQ_BYTES].copy_from_slice(&SENTINEL.to_le_bytes());
                    s.write_all(f).expect("publisher sends the sentinel");
                    break;
                }
            }
        });
        Self { thread }
    }

    fn wait(self) {
        if let Err(panic) = self.thread.join() {
            std::panic::resume_unwind(panic);
        }
    }
}

// ---------------------------------------------------------------------------------------
// The subscriber's bookkeeping (the same for every contender)
// ---------------------------------------------------------------------------------------

/// Checks and counts what the application is handed, and times the window.
struct Tally {
    template: Vec<u8>,
    /// Sequence number of the last warm-up message.
    last_warmup: u64,
    /// Sequence number of the last message.
    last: u64,
    /// The lowest sequence number still acceptable.
    next: u64,
    /// Timed messages received.
    delivered: u64,
    progress: Arc<AtomicU64>,
    /// Messages received since the last progress mark.
    unmarked: u64,
    started: Option<(Instant, Cpu)>,
    /// Time of the last progress mark (the window's end if messages are lost).
    marked: Instant,
}

/// What [`Tally::on_payload`] says about the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Next {
    More,
    Complete,
    Abandoned,
}

/// How the window ended.
struct Window {
    delivered: u64,
    wall: Duration,
    cpu: Cpu,
}

impl Tally {
    fn new(size: usize, count: u64, progress: Arc<AtomicU64>) -> Self {
        Self {
            template: payload_template(size),
            last_warmup: WARMUP - 1,
            last: WARMUP + count - 1,
            next: 0,
            delivered: 0,
            progress,
            unmarked: 0,
            started: None,
            marked: Instant::now(),
        }
    }

    /// Checks one payload; whether the run goes on, is complete, or was abandoned (the
    /// sentinel: the rest was lost).
    #[inline]
    fn on_payload(&mut self, payload: &[u8]) -> Next {
        assert_eq!(payload.len(), self.template.len(), "payload length");
        let (seq, rest) = payload.split_at(SEQ_BYTES);
        assert!(rest == &self.template[SEQ_BYTES..], "payload bytes");
        let seq = u64::from_le_bytes(seq.try_into().expect("8 bytes"));
        if seq == SENTINEL {
            return Next::Abandoned;
        }
        assert!(
            seq >= self.next && seq <= self.last,
            "sequence {seq} after {} (duplicated, reordered or out of range)",
            self.next
        );
        self.next = seq + 1;
        if seq > self.last_warmup {
            self.delivered += 1;
            if self.started.is_none() {
                // The last warm-up message was lost: time from here.
                self.start();
            }
        } else if seq == self.last_warmup {
            self.start();
        }
        // Every PROGRESS_EVERY messages received (not sequence numbers: with losses,
        // the marks must keep coming as long as messages do).
        self.unmarked += 1;
        if self.unmarked == PROGRESS_EVERY {
            self.unmarked = 0;
            self.progress.store(seq + 1, Ordering::Release);
            self.marked = Instant::now();
        }
        if seq == self.last {
            self.progress.store(DONE, Ordering::Release);
            Next::Complete
        } else {
            Next::More
        }
    }

    fn start(&mut self) {
        let now = Instant::now();
        self.started = Some((now, thread_cpu()));
        self.marked = now;
        self.progress.store(WARMUP, Ordering::Release);
    }

    /// The window, ended now (complete) or at the last progress mark (abandoned).
    fn finish(&self, how: Next) -> Window {
        let end = if how == Next::Complete {
            Instant::now()
        } else {
            self.marked
        };
        let cpu_end = thread_cpu();
        let (t0, cpu0) = self.started.expect("the warm-up arrived");
        Window {
            delivered: self.delivered,
            wall: end.saturating_duration_since(t0),
            cpu: cpu_end - cpu0,
        }
    }
}

// ---------------------------------------------------------------------------------------
// The contenders
// ---------------------------------------------------------------------------------------

/// What a contender's receive loop reports.
struct Received {
    window: Window,
    connections: u64,
}

/// How our client hands messages to the application.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Api {
    /// `next_message` in a loop.
    Next,
    /// `next_messages` (up to [`BATCH`] at once), then every message of the batch.
    Batch,
    /// `for_each_message`: each message visited in place.
    View,
}

/// Our client on driver `kind`, taking messages through `api`.
fn run_monocoque(kind: DriverKind, api: Api, port: u16, mode: Mode, size: usize, msgs: u64) -> Received {
    let url = format!("nats://127.0.0.1:{port}");
    let options = ClientOptions::from_url(&url)
        .expect("URL")
        .driver(kind)
        .subscription_policy(SubscriptionPolicy::backpressure());
    let mut client = Client::connect_with(options).unwrap_or_else(|e| panic!("connect ({kind}): {e}"));
    let mut sub = client.subscribe(SUBJECT).unwrap_or_else(|e| panic!("subscribe: {e}"));
    client.round_trip().unwrap_or_else(|e| panic!("round trip: {e}"));
    let progress = Arc::new(AtomicU64::new(0));
    let mut tally = Tally::new(size, msgs, Arc::clone(&progress));
    let publisher = Publisher::start(port, mode, size, msgs, progress);
    let end = if api == Api::Batch {
        receive_batches(&mut sub, &mut tally, kind)
    } else if api == Api::View {
        receive_visited(&mut sub, &mut tally, kind)
    } else {
        loop {
            match sub.next_message(PATIENCE) {
                Ok(Some(message)) => match tally.on_payload(&message.payload) {
                    Next::More => {}
                    end => break end,
                },
                Ok(None) => panic!("no message for {PATIENCE:?} ({kind})"),
                Err(e) => panic!("next_message ({kind}): {e}"),
            }
        }
    };
    let window = tally.finish(end);
    assert_eq!(sub.dropped(), 0, "the backpressure policy drops nothing");
    publisher.wait();
    Received {
        window,
        connections: client.connections(),
    }
}

/// The most messages one `next_messages` call takes (the queue's own bound,
/// `SubscriptionPolicy::default().max_messages`, is what limits it in practice).
const BATCH: usize = 1 << 16;

/// Takes batches until the tally says the run is over.
fn receive_batches(sub: &mut monocoque::nats::Subscription, tally: &mut Tally, kind: DriverKind) -> Next {
    let mut batch = std::collections::VecDeque::new();
    loop {
        match sub.next_messages(&mut batch, BATCH, PATIENCE) {
            Ok(0) => panic!("no message for {PATIENCE:?} ({kind})"),
            Ok(_) => {
                for message in batch.drain(..) {
                    match tally.on_payload(&message.payload) {
                        Next::More => {}
                        end => return end,
                    }
                }
            }
            Err(e) => panic!("next_messages ({kind}): {e}"),
        }
    }
}

/// Visits messages until the tally says the run is over.
fn receive_visited(sub: &mut monocoque::nats::Subscription, tally: &mut Tally, kind: DriverKind) -> Next {
    let mut end = Next::More;
    while end == Next::More {
        // Nothing follows the last message (or the sentinel): the closure checks each
        // one as `next_message`'s loop does.
        match sub.for_each_message(usize::MAX, PATIENCE, |m| {
            if end == Next::More {
                end = tally.on_payload(m.payload);
            }
        }) {
            Ok(0) => panic!("no message for {PATIENCE:?} ({kind})"),
            Ok(_) => {}
            Err(e) => panic!("for_each_message ({kind}): {e}"),
        }
    }
    end
}

fn run_async_nats(port: u16, mode: Mode, size: usize, msgs: u64) -> Received {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let client = async_nats::connect(format!("nats://127.0.0.1:{port}"))
            .await
            .expect("async-nats connects");
        let mut sub = client.subscribe(SUBJECT).await.expect("async-nats subscribes");
        // A round trip through the server (async-nats has no public ping): a request
        // nobody serves is answered with the no-responders status, after the SUB.
        match client.request("bench.nobody", bytes::Bytes::new()).await {
            Err(e) if e.kind() == async_nats::RequestErrorKind::NoResponders => {}
            other => panic!("expected no responders, got {other:?}"),
        }
        let progress = Arc::new(AtomicU64::new(0));
        let mut tally = Tally::new(size, msgs, Arc::clone(&progress));
        let publisher = Publisher::start(port, mode, size, msgs, progress);
        let end = loop {
            let message = sub.next().await.expect("async-nats subscription ended");
            match tally.on_payload(&message.payload) {
                Next::More => {}
                end => break end,
            }
        };
        let window = tally.finish(end);
        publisher.wait();
        Received {
            window,
            connections: client.statistics().connects.load(Ordering::Relaxed),
        }
    })
}

/// The reference: `MSG` frames read into a 1 MiB buffer and checked where they lie.
fn run_raw_socket(port: u16, mode: Mode, size: usize, msgs: u64) -> Received {
    const PING: &[u8] = b"PING\r\n";
    let mut s = raw_connection(port, &format!("SUB {SUBJECT} 1\r\n"));
    let header = format!("MSG {SUBJECT} 1 {size}\r\n").into_bytes();
    let frame_len = header.len() + size + 2;
    let progress = Arc::new(AtomicU64::new(0));
    let mut tally = Tally::new(size, msgs, Arc::clone(&progress));
    let publisher = Publisher::start(port, mode, size, msgs, progress);
    s.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let mut buf = vec![0u8; 1 << 20];
    // Bytes of an incomplete frame kept at the head of `buf`.
    let mut kept = 0usize;
    let end = 'read: loop {
        let n = match s.read(&mut buf[kept..]) {
            Ok(0) => panic!("nats-server closed the reference subscriber"),
            Ok(n) => n,
            Err(e) => panic!("reference subscriber reads (nothing for {PATIENCE:?}?): {e}"),
        };
        let end = kept + n;
        let mut at = 0;
        loop {
            let rest = &buf[at..end];
            if rest.starts_with(PING) {
                s.write_all(b"PONG\r\n").expect("answer PING");
                at += PING.len();
            } else if rest.len() >= frame_len {
                assert!(rest.starts_with(&header), "unexpected frame");
                assert!(&rest[frame_len - 2..frame_len] == b"\r\n", "frame end");
                at += frame_len;
                match tally.on_payload(&rest[header.len()..header.len() + size]) {
                    Next::More => {}
                    end => break 'read end,
                }
            } else {
                break;
            }
        }
        buf.copy_within(at..end, 0);
        kept = end - at;
    };
    let window = tally.finish(end);
    publisher.wait();
    Received { window, connections: 1 }
}

fn run(c: Contender, server: &Server, mode: Mode, size: usize, msgs: u64) -> Sample {
    let port = server.port();
    let slow0 = server.slow_consumers();
    let received = match c {
        Contender::Uring => run_monocoque(DriverKind::Uring, Api::Next, port, mode, size, msgs),
        Contender::Mio => run_monocoque(DriverKind::Mio, Api::Next, port, mode, size, msgs),
        Contender::UringBatch => run_monocoque(DriverKind::Uring, Api::Batch, port, mode, size, msgs),
        Contender::MioBatch => run_monocoque(DriverKind::Mio, Api::Batch, port, mode, size, msgs),
        Contender::UringView => run_monocoque(DriverKind::Uring, Api::View, port, mode, size, msgs),
        Contender::MioView => run_monocoque(DriverKind::Mio, Api::View, port, mode, size, msgs),
        Contender::AsyncNats => run_async_nats(port, mode, size, msgs),
        Contender::RawSocket => run_raw_socket(port, mode, size, msgs),
    };
    Sample {
        published: msgs,
        delivered: received.window.delivered,
        wall: received.window.wall,
        cpu: received.window.cpu,
        slow_consumers: server.slow_consumers() - slow0,
        connections: received.connections,
    }
}

// ---------------------------------------------------------------------------------------
// The report
// ---------------------------------------------------------------------------------------

fn print_sample(sample: &Sample) {
    println!(
        "{} of {} msgs in {:.3} s: {:.0} msgs/s, {} lost, client CPU {:.3} s user + {:.3} s system \
         ({:.1} ns per msg), {} slow consumer(s) at the server, {} connection(s)",
        sample.delivered,
        sample.published,
        sample.wall.as_secs_f64(),
        sample.msgs_per_sec(),
        sample.lost(),
        sample.cpu.user.as_secs_f64(),
        sample.cpu.sys.as_secs_f64(),
        sample.cpu_ns_per_msg(),
        sample.slow_consumers,
        sample.connections
    );
}

/// `--only <uring|mio|uring-batch|mio-batch|uring-view|mio-view|async-nats|raw> [--size N] [--msgs N] [--flat-out]`: one run of
/// one contender, for profiling (`valgrind --tool=callgrind`, `strace -c`).
fn single_run(server: &Server) -> Option<Sample> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
    let only = value("--only")?;
    let size = value("--size").map_or(16, |d| d.parse().expect("--size N"));
    let msgs = value("--msgs").map_or(1_000_000, |d| d.parse().expect("--msgs N"));
    let mode = if args.iter().any(|a| a == "--flat-out") {
        Mode::FlatOut
    } else {
        Mode::Paced
    };
    let contender = match only.as_str() {
        "uring" => Contender::Uring,
        "mio" => Contender::Mio,
        "uring-batch" => Contender::UringBatch,
        "mio-batch" => Contender::MioBatch,
        "uring-view" => Contender::UringView,
        "mio-view" => Contender::MioView,
        "async-nats" => Contender::AsyncNats,
        "raw" => Contender::RawSocket,
        other => panic!(
            "--only {other}: expected uring, mio, uring-batch, mio-batch, uring-view, mio-view, async-nats or raw"
        ),
    };
    Some(run(contender, server, mode, size, msgs))
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let (reps, msgs) = if quick { (1, 200_000) } else { (5, 2_000_000) };

    let server = Server::start();
    if let Some(sample) = single_run(&server) {
        print_sample(&sample);
        return;
    }
    println!("# NATS receiving: one subscribing connection, {msgs} messages per run on one subject");
    println!();
    print_conditions(&NatsServer::version(), reps, quick);
    println!();

    // samples[mode][size][contender]
    let mut samples = vec![vec![vec![Vec::<Sample>::new(); Contender::ALL.len()]; SIZES.len()]; Mode::ALL.len()];
    for rep in 0..reps {
        for (m, &mode) in Mode::ALL.iter().enumerate() {
            for (s, &size) in SIZES.iter().enumerate() {
                // Rotate who goes first, so no contender always runs on a warmer server.
                for k in 0..Contender::ALL.len() {
                    let c = (k + rep + m + s) % Contender::ALL.len();
                    samples[m][s][c].push(run(Contender::ALL[c], &server, mode, size, msgs));
                }
            }
        }
        eprintln!("repetition {}/{reps} done", rep + 1);
    }

    // Medians of msgs/s, CPU ns/msg, kernel ns/msg; worst loss, slow consumers and
    // connections summed over the repetitions.
    let stats = |m: usize, s: usize, c: usize| -> (f64, f64, f64, u64, u64, u64) {
        let set = &samples[m][s][c];
        (
            median(set.iter().map(Sample::msgs_per_sec).collect()),
            median(set.iter().map(Sample::cpu_ns_per_msg).collect()),
            median(set.iter().map(Sample::sys_ns_per_msg).collect()),
            set.iter().map(Sample::lost).max().unwrap_or(0),
            set.iter().map(|x| x.slow_consumers).sum(),
            set.iter().map(|x| x.connections.saturating_sub(1)).sum(),
        )
    };

    println!(
        "| mode | size | client | msgs/s delivered | lost (worst run, of {msgs}) | client CPU ns/msg | of which kernel \
         | slow consumers / reconnects (all runs) |"
    );
    println!("|---|---:|---|---:|---:|---:|---:|---:|");
    for (m, mode) in Mode::ALL.iter().enumerate() {
        for (s, size) in SIZES.iter().enumerate() {
            for (c, contender) in Contender::ALL.iter().enumerate() {
                let (rate, cpu, sys, lost, slow, reconnects) = stats(m, s, c);
                println!(
                    "| {} | {size} B | {} | {rate:.0} | {lost} | {cpu:.1} | {sys:.1} | {slow} / {reconnects} |",
                    mode.label(),
                    contender.label()
                );
            }
        }
    }
    println!();
    println!("Ratios (Monocoque / async-nats; msgs/s delivered, higher is better; CPU per message, lower is better):");
    println!();
    println!("| mode | size | driver | msgs/s | CPU/msg | Monocoque lost | async-nats lost |");
    println!("|---|---:|---|---:|---:|---:|---:|");
    let peer = Contender::ALL
        .iter()
        .position(|&c| c == Contender::AsyncNats)
        .expect("async-nats");
    let mut targets = Vec::new();
    for (m, mode) in Mode::ALL.iter().enumerate() {
        for (s, size) in SIZES.iter().enumerate() {
            let (peer_rate, peer_cpu, _, peer_lost, _, _) = stats(m, s, peer);
            for (c, contender) in Contender::ALL.iter().enumerate() {
                if matches!(contender, Contender::AsyncNats | Contender::RawSocket) {
                    continue;
                }
                let (rate, cpu, _, lost, slow, reconnects) = stats(m, s, c);
                let driver = match contender {
                    Contender::Uring => "io_uring",
                    Contender::UringBatch => "io_uring, batches",
                    Contender::MioBatch => "mio, batches",
                    Contender::UringView => "io_uring, visited",
                    Contender::MioView => "mio, visited",
                    _ => "mio",
                };
                println!(
                    "| {} | {size} B | {driver} | {:.2}x | {:.2}x | {lost} | {peer_lost} |",
                    mode.label(),
                    rate / peer_rate,
                    cpu / peer_cpu
                );
                targets.push((
                    mode.label(),
                    *size,
                    contender.label(),
                    rate / peer_rate,
                    lost,
                    slow + reconnects,
                ));
            }
        }
    }
    println!();
    let reference = Contender::ALL
        .iter()
        .position(|&c| c == Contender::RawSocket)
        .expect("reference");
    println!("The ceiling (the reference: raw socket, no client work) against async-nats:");
    println!();
    println!("| mode | size | 2x async-nats msgs/s | reference msgs/s | reference / async-nats |");
    println!("|---|---:|---:|---:|---:|");
    for (m, mode) in Mode::ALL.iter().enumerate() {
        for (s, size) in SIZES.iter().enumerate() {
            let (peer_rate, ..) = stats(m, s, peer);
            let (reference_rate, ..) = stats(m, s, reference);
            println!(
                "| {} | {size} B | {:.0} | {reference_rate:.0} | {:.2}x |",
                mode.label(),
                2.0 * peer_rate,
                reference_rate / peer_rate
            );
        }
    }
    println!();
    println!("Target: msgs/s >= 2x async-nats with no message lost (and no slow consumer or reconnect):");
    println!();
    for (mode, size, label, ratio, lost, incidents) in targets {
        let met = ratio >= 2.0 && lost == 0 && incidents == 0;
        println!(
            "- {mode}, {size} B, {label}: {ratio:.2}x, {lost} lost, {}",
            if met { "met" } else { "MISSED" }
        );
    }
    println!();
    println!("Load average at the end: {}", load_average());
    drop(server);
}
