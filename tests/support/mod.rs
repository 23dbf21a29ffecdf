//! Real peers for integration tests, started by the test itself on free loopback ports.
//!
//! A missing peer binary fails the test with a message naming the package: a test never
//! passes because its peer is absent (`scripts/test` installs the peers).
#![allow(dead_code)]

/// Generates the tests `$uring` and `$mio`, calling `$name(DriverKind::Uring)` and
/// `$name(DriverKind::Mio)`: every test that touches a socket runs on both drivers.
#[macro_export]
macro_rules! both_drivers {
    ($($name:ident => $uring:ident, $mio:ident;)*) => {
        $(
            #[test]
            fn $uring() {
                $name(::monocoque::driver::DriverKind::Uring);
            }

            #[test]
            fn $mio() {
                $name(::monocoque::driver::DriverKind::Mio);
            }
        )*
    };
}

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
pub mod mqtt;
pub mod nats_jwt;
pub mod zmq_peer;

/// A Python interpreter that can import `module`: `python3` on PATH, else Debian's;
/// panics naming the Debian `package` that provides it (a test never runs without it).
fn python_with(module: &str, package: &str) -> &'static str {
    for candidate in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(candidate)
            .args(["-c", &format!("import {module}")])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return candidate;
        }
    }
    panic!("no python3 with {module}: install the Debian package `{package}` (scripts/test does this)");
}

/// A Python interpreter that has pyzmq: `python3` on PATH, else Debian's.
pub fn pyzmq_python() -> &'static str {
    python_with("zmq", "python3-zmq")
}

/// A Python interpreter that has paho-mqtt: `python3` on PATH, else Debian's.
pub fn paho_python() -> &'static str {
    python_with("paho.mqtt.client", "python3-paho-mqtt")
}

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

    /// Stops the server with SIGSTOP (a frozen server: sockets stay open, nothing is
    /// answered) until the returned guard drops, which sends SIGCONT.
    pub fn freeze(&self) -> Frozen {
        Frozen::stop(self.pid())
    }

    /// A plain blocking connection, for tests that speak RESP by hand.
    pub fn connect(&self) -> TcpStream {
        let s = TcpStream::connect(self.addr).expect("connect to redis-server");
        s.set_read_timeout(Some(Duration::from_secs(10))).expect("set timeout");
        s.set_nodelay(true).expect("nodelay");
        s
    }
}

/// A `redis-server` stopped by [`RedisServer::freeze`]; dropping it resumes the server.
pub struct Frozen {
    pid: libc::pid_t,
}

impl Frozen {
    /// Sends SIGSTOP to `pid`.
    pub fn stop(pid: u32) -> Self {
        let pid = pid as libc::pid_t;
        // SAFETY: kill(2) on a child's pid; no memory is involved.
        let rc = unsafe { libc::kill(pid, libc::SIGSTOP) };
        assert_eq!(rc, 0, "SIGSTOP {pid}");
        Self { pid }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        // SAFETY: kill(2) on the child's pid; no memory is involved.
        unsafe { libc::kill(self.pid, libc::SIGCONT) };
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

// ---------------------------------------------------------------------------------------
// nats-server
// ---------------------------------------------------------------------------------------

/// What a [`NatsServer`] is configured with beyond its port: authorization, limits,
/// cluster routes, any raw configuration. Rendered into a config file in the server's
/// temp directory.
#[derive(Clone, Debug, Default)]
pub struct NatsConfig {
    token: Option<String>,
    /// `{user: u, password: p}` and `{nkey: U...}` entries.
    users: Vec<String>,
    max_payload: Option<usize>,
    /// `(cluster name, route listen port, route ports to solicit)`.
    cluster: Option<(String, u16, Vec<u16>)>,
    raw: Vec<String>,
    debug: bool,
}

impl NatsConfig {
    /// No authorization, nats-server's defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Every client must send `auth_token: token`.
    pub fn token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    /// A user with a password (may be combined with [`nkey_user`](Self::nkey_user)).
    pub fn user(mut self, user: &str, password: &str) -> Self {
        self.users
            .push(format!("{{user: {}, password: {}}}", quote(user), quote(password)));
        self
    }

    /// A user identified by an NKey public key (`U...`): it must sign the server's nonce.
    pub fn nkey_user(mut self, public_key: &str) -> Self {
        self.users.push(format!("{{nkey: {}}}", quote(public_key)));
        self
    }

    /// The largest payload the server accepts (nats-server's default is 1 MiB).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = Some(bytes);
        self
    }

    /// Joins cluster `name`: listens for routes on `127.0.0.1:listen` and solicits
    /// routes to the other members' route ports.
    pub fn cluster(mut self, name: &str, listen: u16, routes: &[u16]) -> Self {
        self.cluster = Some((name.to_owned(), listen, routes.to_vec()));
        self
    }

    /// Appends raw configuration text (an `accounts {}` block, `operator: ...`).
    pub fn raw(mut self, text: &str) -> Self {
        self.raw.push(text.to_owned());
        self
    }

    /// Runs the server with `-DV` (debug and protocol trace into its log).
    pub fn trace(mut self) -> Self {
        self.debug = true;
        self
    }

    /// The config file's text.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Some(n) = self.max_payload {
            out.push_str(&format!("max_payload: {n}\n"));
        }
        if let Some(token) = &self.token {
            out.push_str(&format!("authorization {{\n  token: {}\n}}\n", quote(token)));
        } else if !self.users.is_empty() {
            out.push_str("authorization {\n  users = [\n");
            for user in &self.users {
                out.push_str(&format!("    {user}\n"));
            }
            out.push_str("  ]\n}\n");
        }
        if let Some((_, listen, routes)) = &self.cluster {
            out.push_str(&format!("cluster {{\n  listen: \"127.0.0.1:{listen}\"\n  routes = [\n"));
            for port in routes {
                out.push_str(&format!("    \"nats-route://127.0.0.1:{port}\"\n"));
            }
            out.push_str("  ]\n}\n");
        }
        for raw in &self.raw {
            out.push_str(raw);
            out.push('\n');
        }
        out
    }
}

/// A string in double quotes for a nats-server config file.
fn quote(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A `nats-server` child process on a loopback port, killed on drop. It can be stopped,
/// killed and restarted on the same port with the same configuration.
pub struct NatsServer {
    child: Option<Child>,
    /// Where clients connect.
    pub addr: SocketAddr,
    config: NatsConfig,
    dir: TempDir,
}

impl NatsServer {
    /// Starts a server with nats-server's defaults on a free port.
    pub fn start() -> Self {
        Self::start_with(NatsConfig::new())
    }

    /// Starts a server with `config` on a free port and waits until it accepts clients
    /// (sends its `INFO`).
    pub fn start_with(config: NatsConfig) -> Self {
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut server = Self {
                child: None,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                config: config.clone(),
                dir: TempDir::new("nats"),
            };
            match server.spawn_and_wait(Duration::from_secs(10)) {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("nats-server did not start: {last_error}");
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// The client port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The server's version, from `nats-server --version` (`nats-server: v2.9.10`).
    pub fn version() -> String {
        let out = Command::new(require_binary("nats-server", "nats-server"))
            .arg("--version")
            .output()
            .expect("run nats-server --version");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// The server's log so far (with [`NatsConfig::trace`], every protocol line).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("nats.log")).unwrap_or_default()
    }

    /// The `INFO` line a new client gets, JSON only.
    pub fn info(&self) -> String {
        read_info(self.addr, Duration::from_secs(2)).unwrap_or_default()
    }

    /// Kills the server (SIGKILL: no goodbye to its clients) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server gracefully (SIGTERM: it closes its client connections) and
    /// waits for it to exit (SIGKILL after 10 s).
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Ok(pid) = libc::pid_t::try_from(child.id()) {
            // SAFETY: `pid` is our own child, not yet reaped (we hold its `Child`), so the
            // id cannot have been reused by another process.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts the server again on the same port with the same configuration (killing it
    /// first if it runs) and waits until it accepts clients.
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut last_error = String::new();
        while Instant::now() < deadline {
            match self.spawn_and_wait(Duration::from_secs(5)) {
                Ok(()) => return,
                // Most likely the port is not free yet: try again.
                Err(e) => last_error = e,
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("nats-server did not restart on {}: {last_error}", self.addr);
    }

    /// Writes the config file, spawns the process, waits for it to send `INFO`.
    fn spawn_and_wait(&mut self, patience: Duration) -> Result<(), String> {
        let binary = require_binary("nats-server", "nats-server");
        let config_path = self.dir.path.join("nats.conf");
        std::fs::write(&config_path, self.config.render()).map_err(|e| format!("write config: {e}"))?;
        let log_path = self.dir.path.join("nats.log");
        let mut cmd = Command::new(&binary);
        cmd.args(["-a", "127.0.0.1", "-p", &self.addr.port().to_string()])
            .arg("-c")
            .arg(&config_path)
            .arg("-l")
            .arg(&log_path);
        if let Some((name, _, _)) = &self.config.cluster {
            cmd.args(["--cluster_name", name]);
        }
        if self.config.debug {
            cmd.arg("-DV");
        }
        let mut child = cmd
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawn nats-server: {e}"))?;
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut s) = child.stderr.take() {
                    let _ = s.read_to_string(&mut err);
                }
                return Err(format!("nats-server exited ({status}): {err} {}", self.log()));
            }
            if read_info(self.addr, Duration::from_millis(500)).is_some() {
                self.child = Some(child);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("no INFO within {patience:?}: {}", self.log()))
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Connects to `addr` and reads the server's `INFO` line; returns its JSON.
fn read_info(addr: SocketAddr, timeout: Duration) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, timeout).ok()?;
    s.set_read_timeout(Some(timeout)).ok()?;
    let mut line = Vec::new();
    let mut buf = [0u8; 4096];
    while !line.ends_with(b"\r\n") {
        let n = s.read(&mut buf).ok()?;
        if n == 0 {
            return None;
        }
        line.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8(line).ok()?;
    text.strip_prefix("INFO ").map(|json| json.trim_end().to_owned())
}

/// Three (or more) nats-servers routed into one cluster on loopback.
pub struct NatsCluster {
    /// The members, in the order their ports were chosen.
    pub servers: Vec<NatsServer>,
}

impl NatsCluster {
    /// Starts `n` servers in cluster `name` (each soliciting routes to all others, each
    /// with `config` otherwise), and waits until every member's `INFO` advertises every
    /// member's client URL in `connect_urls`.
    pub fn start(n: usize, config: NatsConfig) -> Self {
        let mut last_error = String::new();
        for _ in 0..3 {
            let client_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
            let route_ports: Vec<u16> = (0..n).map(|_| free_port()).collect();
            let mut servers = Vec::new();
            let mut failed = false;
            for i in 0..n {
                let others: Vec<u16> = route_ports
                    .iter()
                    .enumerate()
                    .filter(|(j, _)| *j != i)
                    .map(|(_, p)| *p)
                    .collect();
                let mut server = NatsServer {
                    child: None,
                    addr: SocketAddr::from(([127, 0, 0, 1], client_ports[i])),
                    config: config.clone().cluster("monocoque-test", route_ports[i], &others),
                    dir: TempDir::new("nats-cluster"),
                };
                if let Err(e) = server.spawn_and_wait(Duration::from_secs(10)) {
                    last_error = e;
                    failed = true;
                    break;
                }
                servers.push(server);
            }
            if failed {
                continue;
            }
            let cluster = Self { servers };
            if cluster.wait_until_meshed(Duration::from_secs(20)) {
                return cluster;
            }
            last_error = format!(
                "routes did not form: {:?}",
                cluster.servers.iter().map(NatsServer::info).collect::<Vec<_>>()
            );
        }
        panic!("nats cluster did not start: {last_error}");
    }

    /// Waits until every running member's `INFO` lists every running member's client
    /// port in `connect_urls`.
    pub fn wait_until_meshed(&self, patience: Duration) -> bool {
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            let live: Vec<&NatsServer> = self.servers.iter().filter(|s| s.child.is_some()).collect();
            let meshed = live.iter().all(|s| {
                let info = s.info();
                live.iter()
                    .all(|other| info.contains(&format!("127.0.0.1:{}", other.port())))
            });
            if meshed {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }
}

/// Freezing, thawing and lame-duck mode, for keepalive and failover tests.
impl NatsServer {
    /// Freezes the process (SIGSTOP): its sockets stay open but nothing is read or
    /// answered, as with a hung server or a network partition.
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP, "SIGSTOP");
        // The signal is delivered asynchronously: a thread running on another core may
        // still answer a few ops. Wait until every thread of the process is stopped.
        let pid = self.pid().expect("the server is running");
        let deadline = Instant::now() + Duration::from_secs(5);
        while !all_threads_stopped(pid) {
            assert!(Instant::now() < deadline, "nats-server {pid} did not stop");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Resumes a [frozen](Self::freeze) process (SIGCONT).
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT, "SIGCONT");
    }

    /// Puts the server in lame-duck mode (SIGUSR2, what `nats-server --signal ldm=<pid>`
    /// sends): it stops accepting clients, sends its clients an `INFO` with `"ldm":true`,
    /// closes them after `lame_duck_grace_period`, then exits.
    pub fn lame_duck(&self) {
        self.signal(libc::SIGUSR2, "SIGUSR2");
    }

    fn signal(&self, signal: libc::c_int, name: &str) {
        let child = self.child.as_ref().expect("the server is running");
        let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
        // SAFETY: `pid` is our own child, not yet reaped (we hold its `Child` and only
        // `kill`/`stop` wait for it), so the id cannot belong to another process.
        let rc = unsafe { libc::kill(pid, signal) };
        let error = std::io::Error::last_os_error();
        assert_eq!(rc, 0, "{name} to nats-server {pid}: {error}");
    }
}

/// Whether every thread of process `pid` is stopped (state `T` in `/proc`).
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        // `pid (comm) S ...`: the state follows the last `)`.
        std::fs::read_to_string(task.path().join("stat"))
            .ok()
            .and_then(|stat| {
                stat.rsplit_once(')')
                    .map(|(_, rest)| rest.trim_start().starts_with('T'))
            })
            .unwrap_or(false)
    })
}

/// A `mosquitto` broker child process on a loopback port (anonymous clients allowed, no
/// persistence), killed on drop.
pub struct Mosquitto {
    child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
    dir: TempDir,
}

impl Mosquitto {
    /// Starts a broker on a free port and waits until it accepts connections.
    pub fn start() -> Self {
        let binary = require_binary("mosquitto", "mosquitto");
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            let dir = TempDir::new("mosquitto");
            // Started as root, mosquitto drops to its own user, which must be able to
            // write its log here.
            std::fs::set_permissions(&dir.path, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                .expect("open the temp dir to mosquitto's user");
            let config = dir.path.join("mosquitto.conf");
            let log = dir.path.join("mosquitto.log");
            let text = format!(
                "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest file {}\nlog_type all\n",
                log.display()
            );
            std::fs::write(&config, text).expect("write mosquitto.conf");
            let mut child = Command::new(&binary)
                .arg("-c")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn mosquitto");
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(status)) = child.try_wait() {
                    last_error = format!(
                        "exited ({status}): {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                    break;
                }
                // Ours only once its log says it bound the port: a broker that lost a
                // race for the port exits, and another test's broker would answer the
                // connect (and vanish when that test ends).
                let bound = std::fs::read_to_string(&log)
                    .is_ok_and(|text| text.contains(&format!("listen socket on port {port}")));
                if bound
                    && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                    && matches!(child.try_wait(), Ok(None))
                {
                    return Self { child, addr, dir };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("mosquitto did not start: {last_error}");
    }

    /// Kills the broker and starts it again on the same port with the same
    /// configuration (no persistence: every session and retained message is gone), and
    /// waits until it accepts connections again.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let config = self.dir.path.join("mosquitto.conf");
        let log = self.dir.path.join("mosquitto.log");
        let port = self.addr.port();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            let _ = std::fs::write(&log, "");
            self.child = Command::new(require_binary("mosquitto", "mosquitto"))
                .arg("-c")
                .arg(&config)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn mosquitto");
            let attempt = Instant::now() + Duration::from_secs(5);
            while Instant::now() < attempt {
                if let Ok(Some(_)) = self.child.try_wait() {
                    break;
                }
                let bound = std::fs::read_to_string(&log)
                    .is_ok_and(|text| text.contains(&format!("listen socket on port {port}")));
                if bound && TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("mosquitto did not restart on port {port}");
    }

    /// The broker's process id (for SIGSTOP: [`Frozen::stop`]).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `mosquitto_sub` command aimed at this broker (`-h`, `-p` set).
    pub fn subscriber(&self) -> Command {
        let mut cmd = Command::new(require_binary("mosquitto_sub", "mosquitto-clients"));
        cmd.args(["-h", "127.0.0.1", "-p", &self.addr.port().to_string()]);
        cmd
    }

    /// The broker's version line (`mosquitto version 2.0.11`).
    pub fn version() -> String {
        let out = Command::new(require_binary("mosquitto", "mosquitto"))
            .arg("-h")
            .output()
            .expect("run mosquitto -h");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.lines().next().unwrap_or_default().trim().to_string()
    }

    /// The broker's log so far (every packet, `log_type all`).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path.join("mosquitto.log")).unwrap_or_default()
    }

    /// A `mosquitto_pub` command aimed at this broker (`-h`, `-p` set).
    pub fn publisher(&self) -> Command {
        let mut cmd = Command::new(require_binary("mosquitto_pub", "mosquitto-clients"));
        cmd.args(["-h", "127.0.0.1", "-p", &self.addr.port().to_string()]);
        cmd
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
