//! Real peers for integration tests, started by the test itself on free loopback ports.
//!
//! A missing peer binary fails the test with a message naming the package: a test never
//! passes because its peer is absent (`scripts/test` installs the peers).
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Finds `binary` on PATH (or in the usual sbin folders), or fails naming its package.
pub fn require_binary(binary: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin", "/usr/bin", "/sbin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(binary);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{binary}` not found: install the Debian package `{package}` (scripts/test does this)");
}

/// A free TCP port on 127.0.0.1 (the port may be taken again before use; callers retry).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind an ephemeral loopback port")
}

/// A `redis-server` child process on a loopback port, killed on drop.
pub struct RedisServer {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    _dir: TempDir,
}

impl RedisServer {
    /// Starts `redis-server` with no persistence and the debug command enabled, plus
    /// `extra` arguments (e.g. `["--requirepass", "secret"]`), and waits until it answers.
    pub fn start(extra: &[&str]) -> Self {
        let binary = require_binary("redis-server", "redis-server");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = TempDir::new("redis");
            let mut cmd = Command::new(&binary);
            cmd.args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", ""])
                .args([
                    "--appendonly",
                    "no",
                    "--enable-debug-command",
                    "yes",
                    "--daemonize",
                    "no",
                ])
                .args(["--dir", dir.path.to_str().expect("utf-8 temp path")])
                .args(extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped());
            let mut child = cmd.spawn().expect("spawn redis-server");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut out = String::new();
                    if let Some(mut s) = child.stdout.take() {
                        let _ = s.read_to_string(&mut out);
                    }
                    last_error = format!("redis-server exited ({status}): {out}");
                    break;
                }
                if ping(addr) {
                    return Self { child, addr, _dir: dir };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// The server's version, from `redis-server --version`.
    pub fn version() -> String {
        let out = Command::new(require_binary("redis-server", "redis-server"))
            .arg("--version")
            .output()
            .expect("run redis-server --version");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A plain blocking connection, for tests that speak RESP by hand.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect to redis-server");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("set timeout");
        s.set_nodelay(true).expect("nodelay");
        s
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn ping(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"*1\r\n$4\r\nPING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 64];
    // A server still loading answers -LOADING; only +PONG means ready.
    matches!(s.read(&mut buf), Ok(n) if buf[..n].starts_with(b"+PONG"))
}

/// A temporary directory removed on drop.
pub struct TempDir {
    /// Its path.
    pub path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory under the system temp dir.
    pub fn new(tag: &str) -> Self {
        static COUNTER: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("monocoque-{tag}-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&path).expect("create temp dir");
        Self { path }
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Stopping and restarting a server in place, for reconnect tests.
impl RedisServer {
    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the server (SIGKILL, no goodbye to its clients) and waits for it to exit.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts a fresh, empty server on the same port as before (after [`kill`](Self::kill)),
    /// with the standard arguments plus `extra`, and waits until it answers.
    pub fn restart(&mut self, extra: &[&str]) {
        self.kill();
        let binary = require_binary("redis-server", "redis-server");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut last_error = String::new();
        while Instant::now() < deadline {
            let dir = TempDir::new("redis");
            let mut child = Command::new(&binary)
                .args([
                    "--port",
                    &self.addr.port().to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                ])
                .args([
                    "--appendonly",
                    "no",
                    "--enable-debug-command",
                    "yes",
                    "--daemonize",
                    "no",
                ])
                .args(["--dir", dir.path.to_str().expect("utf-8 temp path")])
                .args(extra)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn redis-server");
            let started = Instant::now();
            while started.elapsed() < Duration::from_secs(5) {
                if let Ok(Some(status)) = child.try_wait() {
                    // Most likely the old socket's port is not free yet: try again.
                    let mut out = String::new();
                    if let Some(mut s) = child.stdout.take() {
                        let _ = s.read_to_string(&mut out);
                    }
                    last_error = format!("redis-server exited ({status}): {out}");
                    break;
                }
                if ping(self.addr) {
                    self.child = child;
                    self._dir = dir;
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not restart on {}: {last_error}", self.addr);
    }
}
