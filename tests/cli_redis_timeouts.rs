//! `monocoque redis` never waits forever: `--pipe` gives up after `--pipe-timeout`
//! seconds without a reply, and a one-shot command after `--timeout`, against a real
//! redis-server (frozen with SIGSTOP, or busy in `DEBUG SLEEP`), on both drivers.

mod support;

use std::io::Write;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use support::RedisServer;

const DRIVERS: [&str; 2] = ["uring", "mio"];

/// Timer ticks, process start-up and a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(3);

fn spawn(server: &RedisServer, driver: &str, extra: &[&str], stdin: Stdio) -> Child {
    let url = format!("redis://{}", server.addr);
    Command::new(env!("CARGO_BIN_EXE_monocoque"))
        .args(["redis", "--url", &url, "--driver", driver])
        .args(extra)
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the monocoque binary")
}

/// Waits for `child` up to `limit`; kills it and fails the test past that.
fn wait_within(child: &mut Child, limit: Duration) -> (ExitStatus, Duration) {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait for monocoque") {
            return (status, start.elapsed());
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("monocoque still running after {limit:?}");
        }
        thread::sleep(Duration::from_millis(20));
    }
}

fn stderr_of(child: &mut Child) -> String {
    let mut text = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut e, &mut text);
    }
    text
}

fn sets(from: usize, to: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in from..to {
        let key = format!("key:{i}");
        let _ = write!(out, "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$5\r\nvalue\r\n", key.len());
    }
    out
}

/// The server freezes mid-stream: `--pipe` exits 1 about `--pipe-timeout` later and
/// says how many replies it had.
#[test]
fn pipe_gives_up_on_a_frozen_server() {
    for driver in DRIVERS {
        let server = RedisServer::start(&[]);
        let mut child = spawn(&server, driver, &["--pipe", "--pipe-timeout", "2"], Stdio::piped());
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&sets(0, 20_000)).expect("write the first commands");
        stdin.flush().expect("flush");
        // Let the first commands be answered, then freeze with more on the way.
        thread::sleep(Duration::from_millis(500));
        let frozen = server.freeze();
        let writer = thread::spawn(move || {
            // Fails with a broken pipe once monocoque exits: expected.
            let _ = stdin.write_all(&sets(20_000, 2_000_000));
        });
        let (status, elapsed) = wait_within(&mut child, Duration::from_secs(2) + MARGIN + Duration::from_secs(10));
        drop(frozen);
        let stderr = stderr_of(&mut child);
        let _ = writer.join();
        assert_eq!(status.code(), Some(1), "{driver}: {stderr}");
        assert!(
            elapsed <= Duration::from_secs(2) + MARGIN + Duration::from_secs(1),
            "{driver}: took {elapsed:?}"
        );
        assert!(
            stderr.contains("--pipe-timeout") && stderr.contains("replies received"),
            "{driver}: {stderr}"
        );
    }
}

/// A one-shot command whose reply takes longer than `--timeout` fails in time; with
/// `--timeout 0` it waits.
#[test]
fn one_shot_command_times_out() {
    for driver in DRIVERS {
        let server = RedisServer::start(&[]);
        let mut child = spawn(
            &server,
            driver,
            &["--timeout", "1", "DEBUG", "SLEEP", "5"],
            Stdio::null(),
        );
        let (status, elapsed) = wait_within(&mut child, Duration::from_secs(1) + MARGIN + Duration::from_secs(5));
        let stderr = stderr_of(&mut child);
        assert_eq!(status.code(), Some(1), "{driver}: {stderr}");
        assert!(elapsed < Duration::from_secs(1) + MARGIN, "{driver}: took {elapsed:?}");
        assert!(
            stderr.to_lowercase().contains("timed out") || stderr.to_lowercase().contains("timeout"),
            "{driver}: {stderr}"
        );

        let mut child = spawn(
            &server,
            driver,
            &["--timeout", "0", "DEBUG", "SLEEP", "1.5"],
            Stdio::null(),
        );
        let (status, _) = wait_within(&mut child, Duration::from_secs(20));
        assert!(status.success(), "{driver}: {}", stderr_of(&mut child));
    }
}

/// A frozen server: a one-shot command (its handshake included) fails by `--timeout`.
#[test]
fn one_shot_command_gives_up_on_a_frozen_server() {
    for driver in DRIVERS {
        let server = RedisServer::start(&[]);
        let frozen = server.freeze();
        let mut child = spawn(&server, driver, &["--timeout", "1", "GET", "k"], Stdio::null());
        let (status, elapsed) = wait_within(&mut child, Duration::from_secs(1) + MARGIN + Duration::from_secs(10));
        drop(frozen);
        let stderr = stderr_of(&mut child);
        assert_eq!(status.code(), Some(1), "{driver}: {stderr}");
        assert!(elapsed < Duration::from_secs(1) + MARGIN, "{driver}: took {elapsed:?}");
    }
}
