//! Pipelined Redis throughput and client CPU, side by side, against one `redis-server`.
//!
//! ```text
//! cargo bench --bench redis_pipeline            # full run (a few minutes)
//! cargo bench --bench redis_pipeline -- --quick # smoke run (seconds)
//! cargo bench --bench redis_pipeline -- --only uring --depth 100 --ops 500000 # one run, for profiling
//! cargo bench --bench redis_pipeline -- --only pipe   # just the --pipe comparison
//! cargo bench --bench redis_pipeline -- --only pipe --pipe-reps 9   # more repetitions
//! ```
//!
//! One connection, mixed SET/GET (alternating) of 16-byte values over a 10,000-key
//! keyspace, at pipeline depths 1, 16, 100 and 1,000, for:
//! - Monocoque's `redis::Client` on the io_uring driver and on the mio driver
//!   (`set_buffered`/`get_buffered` × depth, then one `flush_into` a reused `Vec`: the
//!   typed buffered helpers, its documented fast path, which encode each command
//!   straight into the connection's arena);
//! - redis-rs (`redis` crate) on a current-thread tokio runtime, a
//!   `MultiplexedConnection` and one `redis::pipe()` of `depth` commands per round trip;
//! - `redis-benchmark -c 1 -P <depth> -t set,get -d 16 -r 10000 --csv` (its own rps);
//! - a ceiling that is no client at all: the same commands pre-encoded, written on a
//!   blocking socket, replies counted by length and never parsed. Its ops/s is what the
//!   server and the kernel allow at that depth; its CPU is the kernel's floor.
//!
//! Every key is set before the runs, so every GET hits.
//!
//! Client CPU is `getrusage` user + system time: `RUSAGE_SELF` deltas around the timed
//! loop for the in-process clients (the process runs nothing else meanwhile), the child's
//! own rusage from `wait4` for redis-benchmark. Repetitions are interleaved (every
//! contender at every depth, then again) and medians reported, because the machine is
//! small and noisy and redis-server needs a core of its own.
//!
//! Then `monocoque redis --pipe` against `redis-cli --pipe` on 1,000,000 SETs from one
//! generated RESP file (FLUSHALL before each run, DBSIZE checked after), wall time, the
//! child's CPU from `wait4`, and the CPU of redis-server's main thread meanwhile.

#[path = "common/conditions.rs"]
mod conditions;
#[path = "common/cpu.rs"]
mod cpu;
#[path = "../tests/support/mod.rs"]
mod support;

use std::fmt::Write as _;
use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use conditions::{load_average, print_conditions};
use cpu::{median, self_cpu, Cpu};

use monocoque::driver::DriverKind;
use monocoque::proto::resp::Value;
use monocoque::redis::{Client, ClientOptions};
use support::{require_binary, RedisServer, TempDir};

/// Keys are `key:00000` .. `key:09999`.
const KEYSPACE: usize = 10_000;
/// Every SET writes this 16-byte value.
const VALUE: &[u8; 16] = b"monocoque-16byte";
const DEPTHS: [usize; 4] = [1, 16, 100, 1000];

/// The contenders of the depth sweep, in table order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Contender {
    Uring,
    Mio,
    RedisRs,
    RedisBenchmark,
    /// Not a client: pre-encoded commands written on a blocking socket, replies counted
    /// by length and never parsed. What the server and the kernel allow at this depth.
    Ceiling,
}

impl Contender {
    const ALL: [Contender; 5] = [
        Contender::Uring,
        Contender::Mio,
        Contender::RedisRs,
        Contender::RedisBenchmark,
        Contender::Ceiling,
    ];

    fn label(self) -> &'static str {
        match self {
            Contender::Uring => "Monocoque (io_uring)",
            Contender::Mio => "Monocoque (mio)",
            Contender::RedisRs => "redis-rs 1.8 (tokio, multiplexed)",
            Contender::RedisBenchmark => "redis-benchmark -c 1",
            Contender::Ceiling => "ceiling: raw socket, pre-encoded, unparsed",
        }
    }
}

/// One timed run: operations completed, wall time, client CPU.
#[derive(Clone, Copy, Debug)]
struct Sample {
    ops: u64,
    wall: Duration,
    cpu: Cpu,
}

impl Sample {
    fn ops_per_sec(&self) -> f64 {
        self.ops as f64 / self.wall.as_secs_f64()
    }

    /// Client CPU seconds per million operations.
    fn cpu_per_mop(&self) -> f64 {
        self.cpu.total().as_secs_f64() / self.ops as f64 * 1e6
    }

    /// The kernel's share of [`cpu_per_mop`](Self::cpu_per_mop).
    fn sys_per_mop(&self) -> f64 {
        self.cpu.sys.as_secs_f64() / self.ops as f64 * 1e6
    }
}

/// Reaps `child` with `wait4`; returns whether it exited 0 and its own CPU time.
fn wait_child(child: Child) -> (i32, Cpu) {
    let pid = child.id() as libc::pid_t;
    // SAFETY: as above, an all-zero `rusage` is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let mut status: libc::c_int = 0;
    loop {
        // SAFETY: `pid` is our child, not reaped yet (std never waits on its own unless
        // asked); `status` and `ru` are valid, writable locals.
        let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
        if rc == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        assert_eq!(err.kind(), std::io::ErrorKind::Interrupted, "wait4: {err}");
    }
    // The child is reaped; dropping the handle does not wait again.
    drop(child);
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, Cpu::from_rusage(&ru))
}

/// The operation sequence every in-process contender runs: op `i` is a SET when `i` is
/// even, a GET otherwise, on key `keys[order[i % order.len()]]`.
struct Workload {
    keys: Vec<String>,
    order: Vec<u16>,
}

impl Workload {
    fn new() -> Self {
        let keys = (0..KEYSPACE).map(|i| format!("key:{i:05}")).collect();
        // xorshift64*: a fixed, uniform key sequence.
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let order = (0..1 << 16)
            .map(|_| {
                state ^= state >> 12;
                state ^= state << 25;
                state ^= state >> 27;
                (state.wrapping_mul(0x2545_F491_4F6C_DD1D) % KEYSPACE as u64) as u16
            })
            .collect();
        Self { keys, order }
    }

    fn key(&self, i: u64) -> &str {
        &self.keys[usize::from(self.order[(i % self.order.len() as u64) as usize])]
    }
}

/// Checks one reply of the mixed workload: `+OK` for a SET, the value or nil for a GET.
fn check_reply(i: u64, reply: &Value) {
    let ok = if i.is_multiple_of(2) {
        matches!(reply, Value::SimpleString(s) if &s[..] == b"OK")
    } else {
        match reply {
            Value::BulkString(b) => &b[..] == VALUE,
            Value::Null => true,
            _ => false,
        }
    };
    assert!(ok, "unexpected reply to op {i}: {reply:?}");
}

fn run_monocoque(kind: DriverKind, port: u16, depth: usize, ops: u64, w: &Workload) -> Sample {
    let options = ClientOptions::new("127.0.0.1", port).driver(kind);
    let mut client = Client::connect_with(options).unwrap_or_else(|e| panic!("connect ({kind}): {e}"));
    // The replies' `Vec` is reused from one round to the next (`flush_into`).
    let mut replies = Vec::new();
    let mut round = |client: &mut Client, start: u64, n: u64| {
        for i in start..start + n {
            // The documented fast path for small pipelined commands: encoded straight
            // into the connection's arena, no `Cmd` built per op.
            let sent = if i % 2 == 0 {
                client.set_buffered(w.key(i), VALUE)
            } else {
                client.get_buffered(w.key(i))
            };
            sent.unwrap_or_else(|e| panic!("buffering op {i}: {e}"));
        }
        replies.clear();
        client.flush_into(&mut replies).unwrap_or_else(|e| panic!("flush: {e}"));
        assert_eq!(replies.len() as u64, n, "one reply per command");
        for (i, reply) in (start..).zip(replies.drain(..)) {
            let reply = reply.unwrap_or_else(|e| panic!("reply to op {i}: {e}"));
            check_reply(i, &reply);
        }
    };
    let depth = depth as u64;
    // Warm up: connection buffers, allocator, server side.
    for r in 0..4 {
        round(&mut client, r * depth, depth);
    }
    let cpu0 = self_cpu();
    let t0 = Instant::now();
    let mut done = 0;
    while done < ops {
        let n = depth.min(ops - done);
        round(&mut client, done, n);
        done += n;
    }
    let wall = t0.elapsed();
    Sample {
        ops: done,
        wall,
        cpu: self_cpu() - cpu0,
    }
}

/// One redis-rs round trip: a `pipe()` of ops `start..start + n`, checked.
async fn redis_rs_round(
    con: &mut redis::aio::MultiplexedConnection,
    pipe: &mut redis::Pipeline,
    w: &Workload,
    start: u64,
    n: u64,
) {
    pipe.clear();
    for i in start..start + n {
        if i % 2 == 0 {
            pipe.cmd("SET").arg(w.key(i)).arg(&VALUE[..]);
        } else {
            pipe.cmd("GET").arg(w.key(i));
        }
    }
    let replies: Vec<redis::Value> = pipe.query_async(con).await.expect("redis-rs pipeline");
    assert_eq!(replies.len() as u64, n, "one reply per command");
    for (i, reply) in (start..).zip(&replies) {
        let ok = match reply {
            redis::Value::Okay => i % 2 == 0,
            redis::Value::BulkString(b) => i % 2 == 1 && b == VALUE,
            redis::Value::Nil => i % 2 == 1,
            _ => false,
        };
        assert!(ok, "unexpected redis-rs reply to op {i}: {reply:?}");
    }
}

fn run_redis_rs(port: u16, depth: usize, ops: u64, w: &Workload) -> Sample {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(async {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("redis-rs client");
        let mut con = client
            .get_multiplexed_async_connection()
            .await
            .expect("redis-rs multiplexed connection");
        let depth = depth as u64;
        let mut pipe = redis::pipe();
        for r in 0..4 {
            redis_rs_round(&mut con, &mut pipe, w, r * depth, depth).await;
        }
        let cpu0 = self_cpu();
        let t0 = Instant::now();
        let mut done = 0;
        while done < ops {
            let n = depth.min(ops - done);
            redis_rs_round(&mut con, &mut pipe, w, done, n).await;
            done += n;
        }
        let wall = t0.elapsed();
        Sample {
            ops: done,
            wall,
            cpu: self_cpu() - cpu0,
        }
    })
}

fn run_redis_benchmark(port: u16, depth: usize, ops: u64) -> Sample {
    let per_test = (ops / 2).max(1);
    let child = Command::new(require_binary("redis-benchmark", "redis-tools"))
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-c",
            "1",
            "-P",
            &depth.to_string(),
        ])
        .args([
            "-t",
            "set,get",
            "-d",
            "16",
            "-r",
            &KEYSPACE.to_string(),
            "-n",
            &per_test.to_string(),
        ])
        .arg("--csv")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn redis-benchmark");
    let mut child = child;
    let mut csv = String::new();
    child
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut csv)
        .expect("read redis-benchmark output");
    let (code, cpu) = wait_child(child);
    assert_eq!(code, 0, "redis-benchmark failed:\n{csv}");
    // `"SET","123456.78",...` then `"GET",...`; the header starts with `"test"`.
    let rps = |test: &str| -> f64 {
        csv.lines()
            .find_map(|line| {
                let mut fields = line.split(',').map(|f| f.trim_matches('"'));
                (fields.next() == Some(test)).then(|| fields.next().and_then(|r| r.parse().ok()))?
            })
            .unwrap_or_else(|| panic!("no {test} line in redis-benchmark output:\n{csv}"))
    };
    let (set, get) = (rps("SET"), rps("GET"));
    // Both tests ran `per_test` requests: the mixed rate is their harmonic mean.
    let wall = Duration::from_secs_f64(per_test as f64 / set + per_test as f64 / get);
    Sample {
        ops: 2 * per_test,
        wall,
        cpu,
    }
}

/// Every op of the workload's key cycle, pre-encoded, with the exact length of its reply
/// (every key holds [`VALUE`] once [`populate`] ran: `+OK` or a 16-byte bulk string).
struct Encoded {
    ops: Vec<Vec<u8>>,
    reply_len: Vec<usize>,
}

impl Encoded {
    fn new(w: &Workload) -> Self {
        // Two laps of the key order, so op `i` and `i + order.len()` share a slot only
        // when they are both SETs or both GETs.
        let n = 2 * w.order.len() as u64;
        let mut ops = Vec::with_capacity(n as usize);
        let mut reply_len = Vec::with_capacity(n as usize);
        for i in 0..n {
            let key = w.key(i);
            let mut op = format!("*{}\r\n${}\r\n", if i % 2 == 0 { 3 } else { 2 }, 3).into_bytes();
            op.extend_from_slice(if i % 2 == 0 { b"SET\r\n" } else { b"GET\r\n" });
            op.extend_from_slice(format!("${}\r\n{key}\r\n", key.len()).as_bytes());
            if i % 2 == 0 {
                op.extend_from_slice(format!("${}\r\n", VALUE.len()).as_bytes());
                op.extend_from_slice(VALUE);
                op.extend_from_slice(b"\r\n");
            }
            ops.push(op);
            reply_len.push(if i % 2 == 0 { 5 } else { 5 + VALUE.len() + 2 });
        }
        Self { ops, reply_len }
    }
}

/// Sets every key of the keyspace to [`VALUE`], so every GET of the workload hits.
fn populate(port: u16, w: &Workload) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis-server");
    s.set_read_timeout(Some(Duration::from_secs(30))).expect("timeout");
    let mut out = Vec::new();
    for key in &w.keys {
        out.extend_from_slice(format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$16\r\n", key.len()).as_bytes());
        out.extend_from_slice(VALUE);
        out.extend_from_slice(b"\r\n");
    }
    s.write_all(&out).expect("send SETs");
    let expected = w.keys.len() * 5;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    while got.len() < expected {
        let n = s.read(&mut buf).expect("read replies");
        assert!(n > 0, "redis-server closed the connection");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.chunks(5).all(|r| r == b"+OK\r\n"), "every SET answered +OK");
}

/// The ceiling: pre-encoded rounds on a blocking socket, replies only counted.
fn run_ceiling(port: u16, depth: usize, ops: u64, w: &Workload) -> Sample {
    let encoded = Encoded::new(w);
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis-server");
    s.set_nodelay(true).expect("nodelay");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut out = Vec::with_capacity(depth * 64);
    let mut buf = vec![0u8; 256 * 1024];
    let mut round = |s: &mut TcpStream, start: u64, n: u64| {
        out.clear();
        let mut expected = 0;
        for i in start..start + n {
            let slot = (i % encoded.ops.len() as u64) as usize;
            out.extend_from_slice(&encoded.ops[slot]);
            expected += encoded.reply_len[slot];
        }
        s.write_all(&out).expect("send round");
        let mut got = 0;
        while got < expected {
            let n = s
                .read(&mut buf)
                .expect("read replies (a length mismatch times out here)");
            assert!(n > 0, "redis-server closed the connection");
            got += n;
        }
        assert_eq!(got, expected, "reply bytes of one round");
    };
    let depth = depth as u64;
    for r in 0..4 {
        round(&mut s, r * depth, depth);
    }
    let cpu0 = self_cpu();
    let t0 = Instant::now();
    let mut done = 0;
    while done < ops {
        let n = depth.min(ops - done);
        round(&mut s, done, n);
        done += n;
    }
    let wall = t0.elapsed();
    Sample {
        ops: done,
        wall,
        cpu: self_cpu() - cpu0,
    }
}

/// Sends one command on a plain socket and returns the raw reply line.
fn raw_command(port: u16, resp: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to redis-server");
    s.set_read_timeout(Some(Duration::from_secs(60))).expect("timeout");
    s.write_all(resp).expect("send");
    let mut buf = [0u8; 256];
    let mut out = Vec::new();
    while !out.ends_with(b"\r\n") {
        let n = s.read(&mut buf).expect("reply");
        assert!(n > 0, "redis-server closed the connection");
        out.extend_from_slice(&buf[..n]);
    }
    String::from_utf8_lossy(&out).trim_end().to_string()
}

fn flushall(port: u16) {
    assert_eq!(raw_command(port, b"*1\r\n$8\r\nFLUSHALL\r\n"), "+OK");
}

fn dbsize(port: u16) -> u64 {
    let line = raw_command(port, b"*1\r\n$6\r\nDBSIZE\r\n");
    line.strip_prefix(':')
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("DBSIZE reply {line:?}"))
}

/// Writes `n` `SET key:<i> <16 bytes>` commands in RESP to `path`.
fn write_mass_insert(path: &std::path::Path, n: u64) {
    let mut out = BufWriter::with_capacity(1 << 20, File::create(path).expect("create RESP file"));
    let mut line = String::new();
    for i in 0..n {
        line.clear();
        let key = format!("key:{i}");
        write!(line, "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$16\r\n", key.len()).expect("format");
        out.write_all(line.as_bytes()).expect("write RESP file");
        out.write_all(VALUE).expect("write RESP file");
        out.write_all(b"\r\n").expect("write RESP file");
    }
    out.flush().expect("write RESP file");
}

/// The `--pipe` contenders.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PipeTool {
    MonocoqueUring,
    MonocoqueMio,
    RedisCli,
}

impl PipeTool {
    const ALL: [PipeTool; 3] = [PipeTool::MonocoqueUring, PipeTool::MonocoqueMio, PipeTool::RedisCli];

    fn label(self) -> &'static str {
        match self {
            PipeTool::MonocoqueUring => "monocoque redis --pipe --driver uring",
            PipeTool::MonocoqueMio => "monocoque redis --pipe --driver mio",
            PipeTool::RedisCli => "redis-cli --pipe",
        }
    }
}

/// CPU time the thread `pid` (a process's main thread) has run, from
/// `/proc/<pid>/schedstat` (nanoseconds, unlike `stat`'s 10 ms ticks).
fn thread_cpu(pid: u32) -> Duration {
    let text = std::fs::read_to_string(format!("/proc/{pid}/schedstat")).unwrap_or_default();
    let ns = text.split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0);
    Duration::from_nanos(ns)
}

/// One mass insertion: the client's run, and the CPU redis-server's main thread spent
/// meanwhile (it executes every command: at 100% of the wall time, the server is the
/// bottleneck and never waits for the client).
#[derive(Clone, Copy, Debug)]
struct PipeSample {
    client: Sample,
    server_cpu: Duration,
}

fn run_pipe(tool: PipeTool, server: u32, port: u16, input: &std::path::Path, n: u64, dir: &TempDir) -> PipeSample {
    flushall(port);
    let server_cpu0 = thread_cpu(server);
    let mut cmd = match tool {
        PipeTool::RedisCli => {
            let mut c = Command::new(require_binary("redis-cli", "redis-tools"));
            c.args(["-h", "127.0.0.1", "-p", &port.to_string(), "--pipe"]);
            c
        }
        PipeTool::MonocoqueUring | PipeTool::MonocoqueMio => {
            let driver = if tool == PipeTool::MonocoqueUring {
                "uring"
            } else {
                "mio"
            };
            let mut c = Command::new(env!("CARGO_BIN_EXE_monocoque"));
            c.args([
                "redis",
                "--pipe",
                "--driver",
                driver,
                "--url",
                &format!("redis://127.0.0.1:{port}"),
            ]);
            c
        }
    };
    let out_path = dir.path.join("pipe-output.txt");
    let t0 = Instant::now();
    let child = cmd
        .stdin(File::open(input).expect("open RESP file"))
        .stdout(File::create(&out_path).expect("create output file"))
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", tool.label()));
    let (code, cpu) = wait_child(child);
    let wall = t0.elapsed();
    let server_cpu = thread_cpu(server).saturating_sub(server_cpu0);
    let output = std::fs::read_to_string(&out_path).expect("read output");
    assert_eq!(code, 0, "{} failed:\n{output}", tool.label());
    let summary = format!("errors: 0, replies: {n}");
    assert!(
        output.lines().any(|l| l == summary),
        "{}: no `{summary}` line in:\n{output}",
        tool.label()
    );
    assert_eq!(dbsize(port), n, "{}: DBSIZE after the run", tool.label());
    PipeSample {
        client: Sample { ops: n, wall, cpu },
        server_cpu,
    }
}

/// `--only <uring|mio|redis-rs|ceiling> [--depth N] [--ops N]`: one run of one contender, for
/// profiling (`valgrind --tool=callgrind`, `strace -c`), instead of the whole table.
fn single_run(port: u16, w: &Workload) -> Option<Sample> {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
    let only = value("--only").filter(|o| *o != "pipe")?;
    let depth = value("--depth").map_or(100, |d| d.parse().expect("--depth N"));
    let ops = value("--ops").map_or(200_000, |d| d.parse().expect("--ops N"));
    Some(match only.as_str() {
        "uring" => run_monocoque(DriverKind::Uring, port, depth, ops, w),
        "mio" => run_monocoque(DriverKind::Mio, port, depth, ops, w),
        "redis-rs" => run_redis_rs(port, depth, ops, w),
        "ceiling" => run_ceiling(port, depth, ops, w),
        other => panic!("--only {other}: expected uring, mio, redis-rs or ceiling"),
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    // `--only pipe`: just the mass insertion.
    let only_pipe = std::env::args()
        .collect::<Vec<_>>()
        .windows(2)
        .any(|w| w[0] == "--only" && w[1] == "pipe");
    let (reps, scale, pipe_n, pipe_reps) = if quick {
        (1, 20, 100_000, 1)
    } else {
        (5, 1, 1_000_000, 5)
    };
    // `--pipe-reps N`: more repetitions of the mass insertion on a noisy machine.
    let pipe_reps = std::env::args()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[0] == "--pipe-reps")
        .map_or(pipe_reps, |w| w[1].parse().expect("--pipe-reps N"));
    // Operations per timed run, by depth: about a second each on a small machine.
    let ops_at = |depth: usize| -> u64 {
        let ops: u64 = match depth {
            1 => 40_000,
            16 => 400_000,
            _ => 1_000_000,
        };
        ops / scale
    };

    let server = RedisServer::start(&["--appendonly", "no"]);
    let port = server.addr.port();
    let workload = Workload::new();
    populate(port, &workload);
    if let Some(sample) = single_run(port, &workload) {
        println!(
            "{} ops in {:.3} s: {:.0} ops/s, client CPU {:.3} s user + {:.3} s system ({:.3} s per M ops)",
            sample.ops,
            sample.wall.as_secs_f64(),
            sample.ops_per_sec(),
            sample.cpu.user.as_secs_f64(),
            sample.cpu.sys.as_secs_f64(),
            sample.cpu_per_mop()
        );
        return;
    }
    println!("# Redis pipelining: one connection, mixed SET/GET, 16-byte values, 10k keys");
    println!();
    print_conditions(&RedisServer::version(), reps, quick);
    println!();

    if !only_pipe {
        depth_sweep(port, &workload, reps, ops_at);
    }
    mass_insert(server.pid(), port, pipe_n, pipe_reps);
    println!();
    println!("Load average at the end: {}", load_average());
    drop(server);
}

/// The depth sweep: every contender at every depth, `reps` interleaved repetitions,
/// printed as markdown tables of medians.
fn depth_sweep(port: u16, workload: &Workload, reps: usize, ops_at: impl Fn(usize) -> u64) {
    let mut samples: Vec<Vec<Vec<Sample>>> = vec![vec![Vec::new(); Contender::ALL.len()]; DEPTHS.len()];
    for rep in 0..reps {
        for (d, &depth) in DEPTHS.iter().enumerate() {
            // Rotate who goes first, so no contender always runs on a warmer server.
            for k in 0..Contender::ALL.len() {
                let c = (k + rep + d) % Contender::ALL.len();
                let ops = ops_at(depth);
                let sample = match Contender::ALL[c] {
                    Contender::Uring => run_monocoque(DriverKind::Uring, port, depth, ops, workload),
                    Contender::Mio => run_monocoque(DriverKind::Mio, port, depth, ops, workload),
                    Contender::RedisRs => run_redis_rs(port, depth, ops, workload),
                    Contender::RedisBenchmark => run_redis_benchmark(port, depth, ops),
                    Contender::Ceiling => run_ceiling(port, depth, ops, workload),
                };
                samples[d][c].push(sample);
            }
        }
        eprintln!("repetition {}/{reps} done", rep + 1);
    }

    let sample_set =
        |d: usize, c: Contender| &samples[d][Contender::ALL.iter().position(|&x| x == c).expect("contender")];
    let med = |d: usize, c: Contender| -> (f64, f64) {
        let s = sample_set(d, c);
        (
            median(s.iter().map(Sample::ops_per_sec).collect()),
            median(s.iter().map(Sample::cpu_per_mop).collect()),
        )
    };

    println!("| depth | client | ops/s | client CPU s / M ops | of which kernel |");
    println!("|---:|---|---:|---:|---:|");
    for (d, &depth) in DEPTHS.iter().enumerate() {
        for c in Contender::ALL {
            let (ops, cpu) = med(d, c);
            let sys = median(sample_set(d, c).iter().map(Sample::sys_per_mop).collect());
            println!("| {depth} | {} | {:.0} | {:.3} | {:.3} |", c.label(), ops, cpu, sys);
        }
    }
    println!();
    println!("Ratios (Monocoque / peer; ops/s higher is better, CPU per op lower is better):");
    println!();
    println!(
        "| depth | driver | ops/s vs redis-rs | CPU/op vs redis-rs | ops/s vs redis-benchmark | CPU/op vs redis-benchmark |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    for (d, &depth) in DEPTHS.iter().enumerate() {
        let (rs_ops, rs_cpu) = med(d, Contender::RedisRs);
        let (rb_ops, rb_cpu) = med(d, Contender::RedisBenchmark);
        for c in [Contender::Uring, Contender::Mio] {
            let (ops, cpu) = med(d, c);
            println!(
                "| {depth} | {} | {:.2}x | {:.2}x | {:.2}x | {:.2}x |",
                if c == Contender::Uring { "io_uring" } else { "mio" },
                ops / rs_ops,
                cpu / rs_cpu,
                ops / rb_ops,
                cpu / rb_cpu
            );
        }
    }
    println!();
    let d100 = DEPTHS.iter().position(|&d| d == 100).expect("depth 100");
    let (rs_ops, rs_cpu) = med(d100, Contender::RedisRs);
    let (rb_ops, _) = med(d100, Contender::RedisBenchmark);
    println!("Targets at depth 100:");
    println!();
    for c in [Contender::Uring, Contender::Mio] {
        let (ops, cpu) = med(d100, c);
        let mark = |ok: bool| if ok { "met" } else { "MISSED" };
        println!(
            "- {}: ops/s >= 1.5x redis-rs: {:.2}x, {}; CPU/op <= 0.25x redis-rs: {:.2}x, {}; ops/s >= redis-benchmark: {:.2}x, {}",
            c.label(),
            ops / rs_ops,
            mark(ops >= 1.5 * rs_ops),
            cpu / rs_cpu,
            mark(cpu <= 0.25 * rs_cpu),
            ops / rb_ops,
            mark(ops >= rb_ops)
        );
    }
    println!();
}

/// `monocoque redis --pipe` (both drivers) against `redis-cli --pipe` on `pipe_n` SETs.
///
/// The ratio that matters is wall time against redis-cli's: reported as the median of
/// the per-repetition ratios (each against the redis-cli run of the same repetition, so
/// a load change between repetitions cancels out), next to the ratio of the medians.
/// Server CPU is redis-server's main thread over the run; its share of the wall time
/// says whether the server ever waited for the client.
fn mass_insert(server: u32, port: u16, pipe_n: u64, pipe_reps: usize) {
    let dir = TempDir::new("redis-pipe-bench");
    let input = dir.path.join("mass-insert.resp");
    write_mass_insert(&input, pipe_n);
    let size = std::fs::metadata(&input).map(|m| m.len()).unwrap_or(0);
    println!(
        "# Mass insertion: {pipe_n} SETs ({:.1} MB of RESP) from stdin; {pipe_reps} repetition(s), interleaved; medians",
        size as f64 / 1e6
    );
    println!();
    let mut pipe_samples: Vec<Vec<PipeSample>> = vec![Vec::new(); PipeTool::ALL.len()];
    for rep in 0..pipe_reps {
        for k in 0..PipeTool::ALL.len() {
            let t = (k + rep) % PipeTool::ALL.len();
            pipe_samples[t].push(run_pipe(PipeTool::ALL[t], server, port, &input, pipe_n, &dir));
        }
    }
    println!(
        "| tool | wall s | SETs/s | client CPU s | of which kernel | server CPU s | server busy | server idle ms |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    for (t, tool) in PipeTool::ALL.iter().enumerate() {
        let s = &pipe_samples[t];
        let wall = median(s.iter().map(|x| x.client.wall.as_secs_f64()).collect());
        let cpu = median(s.iter().map(|x| x.client.cpu.total().as_secs_f64()).collect());
        let sys = median(s.iter().map(|x| x.client.cpu.sys.as_secs_f64()).collect());
        let server_cpu = median(s.iter().map(|x| x.server_cpu.as_secs_f64()).collect());
        let busy = median(
            s.iter()
                .map(|x| x.server_cpu.as_secs_f64() / x.client.wall.as_secs_f64())
                .collect(),
        );
        // Wall time the server's main thread did not run: waiting for the client (and
        // process start and exit, and being preempted on a loaded machine).
        let idle = median(
            s.iter()
                .map(|x| x.client.wall.as_secs_f64() - x.server_cpu.as_secs_f64())
                .collect(),
        );
        println!(
            "| {} | {:.3} | {:.0} | {:.3} | {:.3} | {:.3} | {:.0}% | {:.0} |",
            tool.label(),
            wall,
            pipe_n as f64 / wall,
            cpu,
            sys,
            server_cpu,
            busy * 100.0,
            idle * 1000.0
        );
        rows.push((wall, cpu));
    }
    println!();
    let cli = PipeTool::ALL.len() - 1;
    let (cli_wall, cli_cpu) = rows[cli];
    for (t, tool) in PipeTool::ALL.iter().enumerate().take(cli) {
        let (wall, cpu) = rows[t];
        let paired: Vec<f64> = pipe_samples[t]
            .iter()
            .zip(&pipe_samples[cli])
            .map(|(x, c)| x.client.wall.as_secs_f64() / c.client.wall.as_secs_f64())
            .collect();
        let each: Vec<String> = paired.iter().map(|r| format!("{r:.3}")).collect();
        let ratio = median(paired);
        println!(
            "- {} vs redis-cli --pipe: wall {:.3}x (median of per-repetition ratios [{}]; ratio of medians {:.3}x), CPU {:.2}x; wall <= 1.0x: {}",
            tool.label(),
            ratio,
            each.join(", "),
            wall / cli_wall,
            cpu / cli_cpu,
            if ratio <= 1.0 { "met" } else { "MISSED" }
        );
    }
}
