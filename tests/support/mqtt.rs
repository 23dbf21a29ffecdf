//! Our MQTT broker for the MQTT tests, on free loopback ports (port 0, so no race for
//! them), on the driver the test names: in a thread of the test ([`OurBroker`]) or as the
//! `monocoque mqtt broker` command ([`CliBroker`]); and the clients nobody here wrote
//! that the tests talk to it with (`mosquitto_sub`, `mosquitto_pub`), their output
//! lines gathered by [`Proc`].

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::mqtt::{Broker, Stopper};
use monocoque::proto::mqtt::broker::{Access, ConnectionConfig};

use super::require_binary;

/// How long one step may take on a loaded machine before a helper calls it a hang.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// What [`OurBroker::start_with`] binds: each connection's limits, who may do what, and
/// whether a second listener carries MQTT over WebSocket.
#[derive(Default)]
pub struct BrokerSetup {
    /// The limits of each connection.
    pub connection: ConnectionConfig,
    /// Users, ACL, redirection, enhanced authentication.
    pub access: Access,
    /// Also listen for MQTT over WebSocket (on another free port).
    pub websocket: bool,
}

/// Our broker on its own thread (the driver is built there: io_uring is single-issuer),
/// stopped and joined on drop.
pub struct OurBroker {
    /// The TCP listener's address.
    pub addr: SocketAddr,
    /// The WebSocket listener's address, when the setup asked for one.
    ws: Option<SocketAddr>,
    stopper: Stopper,
    thread: Option<JoinHandle<()>>,
}

impl OurBroker {
    /// The broker on its defaults, TCP only.
    pub fn start(kind: DriverKind) -> Self {
        Self::start_with(kind, BrokerSetup::default())
    }

    /// The broker with `connection`'s limits, TCP only.
    pub fn with_limits(kind: DriverKind, connection: ConnectionConfig) -> Self {
        Self::start_with(
            kind,
            BrokerSetup {
                connection,
                ..BrokerSetup::default()
            },
        )
    }

    /// The broker as `setup` says.
    pub fn start_with(kind: DriverKind, setup: BrokerSetup) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let any = SocketAddr::from(([127, 0, 0, 1], 0));
            let mut broker =
                Broker::bind_with_access(any, kind, setup.connection, setup.access).expect("bind the broker");
            assert_eq!(broker.driver_kind(), kind);
            let ws = setup
                .websocket
                .then(|| broker.listen_websocket(any).expect("bind the websocket listener"));
            assert_eq!(broker.websocket_addr().map(|a| a.expect("bound")), ws);
            let addr = broker.local_addr().expect("the broker's address");
            let stopper = broker.stopper().expect("a stopper");
            tx.send((addr, ws, stopper)).expect("hand over the addresses");
            broker.run().expect("the broker runs until stopped");
        });
        let (addr, ws, stopper) = rx.recv_timeout(PATIENCE).expect("the broker started");
        OurBroker {
            addr,
            ws,
            stopper,
            thread: Some(thread),
        }
    }

    /// The TCP listener's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The WebSocket listener's address ([`BrokerSetup::websocket`]).
    pub fn ws(&self) -> SocketAddr {
        self.ws.expect("the broker was started with a WebSocket listener")
    }
}

impl Drop for OurBroker {
    fn drop(&mut self) {
        let _ = self.stopper.stop();
        if let Some(t) = self.thread.take() {
            let joined = t.join();
            if !std::thread::panicking() {
                joined.expect("the broker thread ended cleanly");
            }
        }
    }
}

/// `monocoque mqtt broker --listen 127.0.0.1:0 --driver KIND ARGS...` as a child
/// process, killed on drop.
pub struct CliBroker {
    /// The TCP listener's address, from the `listening on ADDR (driver)` line.
    pub addr: SocketAddr,
    /// The WebSocket listener's, from `websocket listening on ADDR` when ARGS has
    /// `--ws-listen`.
    ws: Option<SocketAddr>,
    /// The first line the broker printed.
    pub first_line: String,
    child: Child,
    /// The store's directory, one per broker (redb locks its files), unless ARGS
    /// named one or `--no-store`.
    _data: Option<super::TempDir>,
}

impl CliBroker {
    /// Starts the broker with `args` after the listen and driver flags, and waits for
    /// the lines that say where it listens.
    pub fn start<S: AsRef<OsStr>>(kind: DriverKind, args: &[S]) -> CliBroker {
        Self::try_start(kind, 0, args).unwrap_or_else(|line| panic!("the broker did not start: {line}"))
    }

    /// [`start`](Self::start) on `port`, trying again for a while if the port is still
    /// held (by a broker just killed, whose sockets the kernel has not let go yet).
    pub fn start_on<S: AsRef<OsStr>>(kind: DriverKind, port: u16, args: &[S]) -> CliBroker {
        let deadline = Instant::now() + PATIENCE;
        loop {
            match Self::try_start(kind, port, args) {
                Ok(broker) => return broker,
                Err(line) if Instant::now() < deadline => {
                    eprintln!("retrying the start: {line}");
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(line) => panic!("the broker did not start: {line}"),
            }
        }
    }

    /// SIGKILL: no goodbye, no last commit. Returns the port it listened on.
    pub fn kill(mut self) -> u16 {
        self.child.kill().expect("SIGKILL the broker");
        let _ = self.child.wait();
        self.port()
    }

    /// The broker, or the first line it printed when that does not say where it
    /// listens (it exited: a port in use, a bad store).
    fn try_start<S: AsRef<OsStr>>(kind: DriverKind, port: u16, args: &[S]) -> Result<CliBroker, String> {
        let websocket = args.iter().any(|a| a.as_ref() == "--ws-listen");
        let named = args
            .iter()
            .any(|a| a.as_ref() == "--data" || a.as_ref() == "--no-store");
        let data = (!named).then(|| super::TempDir::new("mqtt-cli"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_monocoque"));
        command
            .args(["mqtt", "broker", "--driver", kind.name(), "--listen"])
            .arg(format!("127.0.0.1:{port}"));
        if let Some(dir) = &data {
            command.arg("--data").arg(&dir.path);
        }
        let mut child = command
            .args(args)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn monocoque mqtt broker");
        let stderr = child.stderr.take().expect("piped stderr");
        // Killed on drop from here on, whatever the lines say.
        let mut broker = CliBroker {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            ws: None,
            first_line: String::new(),
            child,
            _data: data,
        };
        let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
        let (first_line, addr) = after(&mut lines, "listening on ");
        let addr = addr.ok_or_else(|| first_line.clone())?;
        broker.first_line = first_line;
        broker.addr = addr;
        if websocket {
            let (line, ws) = after(&mut lines, "websocket listening on ");
            broker.ws = Some(ws.ok_or(line)?);
        }
        // Drained, not closed: a later line must not meet a closed pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok(broker)
    }

    /// The TCP listener's port.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The WebSocket listener's address (`--ws-listen` among the arguments).
    pub fn ws(&self) -> SocketAddr {
        self.ws.expect("the broker was started with --ws-listen")
    }

    /// Runs a mosquitto client (`mosquitto_pub`, `mosquitto_sub`) against the TCP
    /// listener to its end: (success, stdout + stderr).
    pub fn run(&self, binary: &str, args: &[&str]) -> (bool, String) {
        let out = mosquitto(binary, self.port())
            .args(args)
            .output()
            .expect("run a mosquitto client");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }
}

impl Drop for CliBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The next line of `lines` and the address after `prefix` in it, if it has one.
fn after(lines: &mut impl Iterator<Item = String>, prefix: &str) -> (String, Option<SocketAddr>) {
    let line = lines.next().unwrap_or_default();
    let addr = line
        .strip_prefix(prefix)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok());
    (line, addr)
}

/// A mosquitto client binary aimed at `127.0.0.1:port` (`-h`, `-p` set).
pub fn mosquitto(binary: &str, port: u16) -> Command {
    let mut cmd = Command::new(require_binary(binary, "mosquitto-clients"));
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string()]);
    cmd
}

/// Starts `mosquitto_sub -d -W 30 ARGS` on `127.0.0.1:port` and returns it once its
/// debug output shows the SUBACK, so what is published next reaches it. ARGS usually
/// has `-F FORMAT` with a `MSG|` prefix (see [`Proc::messages`]).
pub fn mosquitto_sub(port: u16, args: &[&str]) -> Proc {
    let mut sub = mosquitto_sub_spawn(port, args);
    sub.wait_for("received SUBACK");
    sub
}

/// [`mosquitto_sub`] without the wait (for one the broker refuses or cuts off). Its
/// standard output is line-buffered through `stdbuf`: into a pipe, mosquitto_sub's
/// stdio would hold the SUBACK line back until it exits.
pub fn mosquitto_sub_spawn(port: u16, args: &[&str]) -> Proc {
    let mut cmd = Command::new(require_binary("stdbuf", "coreutils"));
    cmd.arg("-oL")
        .arg(require_binary("mosquitto_sub", "mosquitto-clients"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-d", "-W", "30"])
        .args(args);
    Proc::spawn("mosquitto_sub", cmd)
}

/// Runs `mosquitto_pub ARGS` on `127.0.0.1:port` to completion; it must succeed.
pub fn mosquitto_pub(port: u16, args: &[&str]) {
    let out = mosquitto("mosquitto_pub", port)
        .args(args)
        .output()
        .expect("run mosquitto_pub");
    assert!(
        out.status.success(),
        "mosquitto_pub {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A child process whose output lines (stdout, and stderr prefixed `stderr: `) arrive
/// on a channel; killed on drop.
pub struct Proc {
    name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    /// Every line taken from the channel so far.
    pub seen: Vec<String>,
}

impl Proc {
    /// Spawns `cmd` with both outputs piped.
    pub fn spawn(name: &'static str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr: ChildStderr = child.stderr.take().expect("piped stderr");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {line}"));
            }
        });
        Proc {
            name,
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for an output line containing `needle`; it is then the last of
    /// [`seen`](Self::seen).
    pub fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let hit = line.contains(needle);
                self.seen.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!("no {needle:?} from {}: {:#?}", self.name, self.seen);
    }

    /// Kills the process (an abrupt close of its connections) and waits for it.
    pub fn kill(&mut self) {
        self.child.kill().expect("kill the child");
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; returns whether it succeeded and the lines
    /// starting with `MSG|`.
    pub fn finish(mut self) -> (bool, Vec<String>) {
        let ok = self.exit();
        (ok, self.messages_seen())
    }

    /// Waits for a successful exit; returns the lines starting with `MSG|`.
    pub fn messages(mut self) -> Vec<String> {
        let ok = self.exit();
        assert!(ok, "{} failed: {:#?}", self.name, self.seen);
        self.messages_seen()
    }

    /// Waits for the exit and the last lines; whether it succeeded.
    fn exit(&mut self) -> bool {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not finish: {:#?}",
                self.name,
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader threads end with the pipes.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        status.success()
    }

    fn messages_seen(&self) -> Vec<String> {
        self.seen.iter().filter(|l| l.starts_with("MSG|")).cloned().collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Raw MQTT 3.1.1 bytes for the tests that check a packet's flags and identifier on the
/// wire (DUP, the packet identifier of a resumed flow), which a client library hides.
pub mod raw {
    use std::io::{Read, Write};
    use std::net::TcpStream;

    /// Exactly `n` bytes from the broker (the stream's read timeout bounds the wait).
    pub fn read_n(stream: &mut TcpStream, n: usize) -> Vec<u8> {
        let mut buf = vec![0u8; n];
        stream.read_exact(&mut buf).expect("the broker's answer");
        buf
    }

    /// A 3.1.1 CONNECT with Clean Session 0 for `id` (no keep alive).
    pub fn persistent_connect(id: &str) -> Vec<u8> {
        let mut body = vec![0, 4, b'M', b'Q', b'T', b'T', 4, 0x00, 0, 0];
        body.extend_from_slice(&(id.len() as u16).to_be_bytes());
        body.extend_from_slice(id.as_bytes());
        let mut packet = vec![0x10, body.len() as u8];
        packet.extend(body);
        packet
    }

    /// Reads one QoS 2 PUBLISH of `topic`: (DUP flag, packet identifier, payload).
    pub fn read_qos2_publish(stream: &mut TcpStream, topic: &str) -> (bool, u16, Vec<u8>) {
        let head = read_n(stream, 2);
        assert_eq!(head[0] & 0xF6, 0x34, "a QoS 2 PUBLISH: {head:?}");
        let body = read_n(stream, usize::from(head[1]));
        let t = 2 + topic.len();
        assert_eq!(&body[2..t], topic.as_bytes());
        (
            head[0] & 0x08 != 0,
            u16::from_be_bytes([body[t], body[t + 1]]),
            body[t + 2..].to_vec(),
        )
    }

    /// A PINGREQ answered: the broker has handled (and committed) what came before it.
    pub fn ping(stream: &mut TcpStream) {
        stream.write_all(&[0xC0, 0]).expect("PINGREQ");
        assert_eq!(read_n(stream, 2), [0xD0, 0], "PINGRESP");
    }
}
