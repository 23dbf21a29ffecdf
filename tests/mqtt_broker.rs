//! Our MQTT broker against clients nobody here wrote: `mosquitto_sub` and
//! `mosquitto_pub` (Debian `mosquitto-clients`), 3.1.1 and 5.0, on both drivers.
//!
//! The broker runs in a thread of the test on a free loopback port (port 0, so no race
//! for it); the clients are child processes. A subscriber runs with `-d`, and the test
//! publishes only once its debug output shows the SUBACK (line-buffered through
//! `stdbuf`), so nothing depends on a sleep.
//! Messages are printed as `MSG|topic|qos|retain|payload` (`-F`) and compared exactly.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::mqtt::{Broker, Stopper};
use monocoque::proto::mqtt::broker::ConnectionConfig;

/// How long one step may take on a loaded machine before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(20);

both_drivers! {
    live_messages_at_the_lower_qos_across_versions => live_messages_uring, live_messages_mio;
    retained_set_replace_delete => retained_uring, retained_mio;
    will_on_an_unclean_close_not_on_disconnect => will_uring, will_mio;
    cli_broker_serves_mosquitto_clients => cli_broker_uring, cli_broker_mio;
    session_takeover_disconnects_the_first_client => takeover_uring, takeover_mio;
    silent_clients_are_closed_on_time => silent_uring, silent_mio;
    properties_pass_from_5_to_5_and_are_dropped_for_311 => properties_uring, properties_mio;
}

/// Our broker on its own thread (the driver is built there: io_uring is single-issuer).
struct OurBroker {
    addr: SocketAddr,
    stopper: Stopper,
    thread: Option<JoinHandle<()>>,
}

impl OurBroker {
    fn start(kind: DriverKind) -> Self {
        Self::start_with(kind, ConnectionConfig::default())
    }

    fn start_with(kind: DriverKind, config: ConnectionConfig) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let mut broker =
                Broker::bind_with(SocketAddr::from(([127, 0, 0, 1], 0)), kind, config).expect("bind the broker");
            let addr = broker.local_addr().expect("the broker's address");
            let stopper = broker.stopper().expect("a stopper");
            assert_eq!(broker.driver_kind(), kind);
            tx.send((addr, stopper)).expect("hand over the address");
            broker.run().expect("the broker runs until stopped");
        });
        let (addr, stopper) = rx.recv_timeout(PATIENCE).expect("the broker started");
        OurBroker {
            addr,
            stopper,
            thread: Some(thread),
        }
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

fn sub_binary() -> PathBuf {
    support::require_binary("mosquitto_sub", "mosquitto-clients")
}

fn pub_binary() -> PathBuf {
    support::require_binary("mosquitto_pub", "mosquitto-clients")
}

/// A running `mosquitto_sub`: its output lines arrive on a channel.
struct Sub {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Sub {
    /// Starts `mosquitto_sub` with `args` and waits for its SUBACK.
    fn start(port: u16, args: &[&str]) -> Sub {
        // Line-buffered through stdbuf: into a pipe, mosquitto_sub's stdio would hold
        // the SUBACK line back until it exits.
        let mut child = Command::new(support::require_binary("stdbuf", "coreutils"))
            .arg("-oL")
            .arg(sub_binary())
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-d", "-W", "30"])
            .args(["-F", "MSG|%t|%q|%r|%p"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mosquitto_sub");
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {line}"));
            }
        });
        let mut sub = Sub {
            child,
            lines,
            seen: Vec::new(),
        };
        sub.wait_for("received SUBACK");
        sub
    }

    /// Waits for an output line containing `needle`.
    fn wait_for(&mut self, needle: &str) {
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
        panic!("no {needle:?} from mosquitto_sub: {:#?}", self.seen);
    }

    /// Waits for the subscriber to exit successfully (after `-C` messages) and returns
    /// the messages it printed.
    fn messages(mut self) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll mosquitto_sub") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "mosquitto_sub did not finish: {:#?}",
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // The reader threads end with the pipes.
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        assert!(status.success(), "mosquitto_sub failed ({status}): {:#?}", self.seen);
        self.seen.iter().filter(|l| l.starts_with("MSG|")).cloned().collect()
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `mosquitto_pub` with `args` to completion; it must succeed.
fn publish(port: u16, args: &[&str]) {
    let out = Command::new(pub_binary())
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .output()
        .expect("run mosquitto_pub");
    assert!(
        out.status.success(),
        "mosquitto_pub {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn live_messages_at_the_lower_qos_across_versions(kind: DriverKind) {
    let broker = OurBroker::start(kind);
    let port = broker.addr.port();
    // A 3.1.1 subscriber at QoS 1, a 5.0 one at QoS 0, a 5.0 one at QoS 2 on a wildcard.
    let s311 = Sub::start(port, &["-V", "311", "-q", "1", "-t", "live/t", "-C", "3"]);
    let s5q0 = Sub::start(port, &["-V", "5", "-q", "0", "-t", "live/t", "-C", "3"]);
    let s5q2 = Sub::start(port, &["-V", "5", "-q", "2", "-t", "live/+", "-C", "3"]);
    publish(port, &["-V", "5", "-q", "0", "-t", "live/t", "-m", "zero"]);
    publish(port, &["-V", "311", "-q", "1", "-t", "live/t", "-m", "one"]);
    publish(port, &["-V", "5", "-q", "2", "-t", "live/t", "-m", "two"]);
    assert_eq!(
        s311.messages(),
        ["MSG|live/t|0|0|zero", "MSG|live/t|1|0|one", "MSG|live/t|1|0|two"]
    );
    assert_eq!(
        s5q0.messages(),
        ["MSG|live/t|0|0|zero", "MSG|live/t|0|0|one", "MSG|live/t|0|0|two"]
    );
    assert_eq!(
        s5q2.messages(),
        ["MSG|live/t|0|0|zero", "MSG|live/t|1|0|one", "MSG|live/t|2|0|two"]
    );
}

fn retained_set_replace_delete(kind: DriverKind) {
    let broker = OurBroker::start(kind);
    let port = broker.addr.port();
    publish(port, &["-V", "5", "-q", "1", "-r", "-t", "keep/a", "-m", "first"]);
    publish(port, &["-V", "311", "-q", "0", "-r", "-t", "keep/a", "-m", "second"]);
    publish(port, &["-V", "5", "-q", "1", "-r", "-t", "keep/b", "-m", "bee"]);
    // A subscriber gets the retained messages with RETAIN 1, at the lower QoS.
    let mut got = Sub::start(port, &["-V", "311", "-q", "1", "-t", "keep/#", "-C", "2"]).messages();
    got.sort();
    assert_eq!(got, ["MSG|keep/a|0|1|second", "MSG|keep/b|1|1|bee"]);
    // An empty retained payload deletes keep/a; `--retained-only` exits at the first
    // live message, so what it printed before is exactly what was retained.
    publish(port, &["-V", "5", "-r", "-t", "keep/a", "-n"]);
    let sub = Sub::start(port, &["-V", "5", "-q", "1", "-t", "keep/#", "--retained-only"]);
    publish(port, &["-V", "5", "-t", "keep/end", "-m", "end"]);
    assert_eq!(sub.messages(), ["MSG|keep/b|1|1|bee"]);
}

fn will_on_an_unclean_close_not_on_disconnect(kind: DriverKind) {
    let broker = OurBroker::start(kind);
    let port = broker.addr.port();
    let watcher = Sub::start(port, &["-V", "5", "-q", "1", "-t", "wills/#", "-C", "2"]);
    // A client with a will that disconnects normally (-C 1 then DISCONNECT): no will.
    let polite = Sub::start(
        port,
        &[
            "-V",
            "311",
            "-t",
            "ping",
            "-C",
            "1",
            "--will-topic",
            "wills/polite",
            "--will-payload",
            "unseen",
        ],
    );
    publish(port, &["-V", "5", "-t", "ping", "-m", "p"]);
    assert_eq!(polite.messages(), ["MSG|ping|0|0|p"]);
    // Clients killed without DISCONNECT: their wills are published, in both versions.
    for (version, topic) in [("5", "wills/v5"), ("311", "wills/v311")] {
        let mut rude = Sub::start(
            port,
            &[
                "-V",
                version,
                "-t",
                "none",
                "--will-topic",
                topic,
                "--will-payload",
                "gone",
                "--will-qos",
                "1",
            ],
        );
        rude.child.kill().expect("kill the client");
        let _ = rude.child.wait();
    }
    let mut got = watcher.messages();
    got.sort();
    assert_eq!(got, ["MSG|wills/v311|1|0|gone", "MSG|wills/v5|1|0|gone"]);
}

fn cli_broker_serves_mosquitto_clients(kind: DriverKind) {
    // The store under a directory of its own: the default one is shared.
    let data = support::TempDir::new("mqtt-cli");
    let mut child = Command::new(env!("CARGO_BIN_EXE_monocoque"))
        .args(["mqtt", "broker", "--listen", "127.0.0.1:0", "--driver", kind.name()])
        .arg("--data")
        .arg(&data.path)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn monocoque mqtt broker");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut first = String::new();
    BufReader::new(stderr)
        .read_line(&mut first)
        .expect("read the first line");
    let guard = KillOnDrop(child);
    let addr: SocketAddr = first
        .strip_prefix("listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line {first:?}"));
    assert!(first.contains(kind.name()), "{first}");
    let port = addr.port();
    publish(port, &["-V", "5", "-q", "1", "-r", "-t", "cli/t", "-m", "hello"]);
    let got = Sub::start(port, &["-V", "311", "-q", "1", "-t", "cli/#", "-C", "1"]).messages();
    assert_eq!(got, ["MSG|cli/t|1|1|hello"]);
    drop(guard);
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn session_takeover_disconnects_the_first_client(kind: DriverKind) {
    let broker = OurBroker::start(kind);
    let port = broker.addr.port();
    let mut first = Sub::start(port, &["-V", "5", "-i", "dup", "-t", "take/t"]);
    let second = Sub::start(port, &["-V", "5", "-i", "dup", "-t", "take/t", "-C", "1"]);
    // The first connection is told why it goes: DISCONNECT 0x8E, Session taken over.
    first.wait_for("Received DISCONNECT (142)");
    publish(port, &["-V", "311", "-t", "take/t", "-m", "to-the-second"]);
    assert_eq!(second.messages(), ["MSG|take/t|0|0|to-the-second"]);
}

/// Reads until the broker closes the connection; returns what it sent.
fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    stream.set_read_timeout(Some(PATIENCE)).expect("set a read timeout");
    let mut got = Vec::new();
    let mut buf = [0u8; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return got,
            Err(e) => panic!("no close from the broker: {e} (after {got:?})"),
        }
    }
}

fn silent_clients_are_closed_on_time(kind: DriverKind) {
    let config = ConnectionConfig {
        connect_timeout: Duration::from_secs(1),
        ..ConnectionConfig::default()
    };
    let broker = OurBroker::start_with(kind, config);
    // Keep alive 1 s, then silence: closed at 1.5 s after the CONNECT, not before
    // (load only makes it later; the slack for that is seconds).
    let start = Instant::now();
    let mut client = TcpStream::connect(broker.addr).expect("connect");
    client
        .write_all(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x01\x00\x01k")
        .expect("send CONNECT");
    assert_eq!(
        read_to_close(&mut client),
        b"\x20\x02\x00\x00",
        "only the CONNACK, then the close"
    );
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(1500), "closed after {elapsed:?}");
    assert!(
        elapsed < Duration::from_millis(1500) + Duration::from_secs(10),
        "closed after {elapsed:?}"
    );
    // A connection that never completes its CONNECT is closed at the connect deadline.
    let start = Instant::now();
    let mut slow = TcpStream::connect(broker.addr).expect("connect");
    slow.write_all(b"\x10\x0d\x00\x04MQ").expect("send half a CONNECT");
    assert_eq!(read_to_close(&mut slow), b"");
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_secs(1), "closed after {elapsed:?}");
    assert!(elapsed < Duration::from_secs(11), "closed after {elapsed:?}");
}

fn properties_pass_from_5_to_5_and_are_dropped_for_311(kind: DriverKind) {
    let broker = OurBroker::start(kind);
    let port = broker.addr.port();
    let v5 = Sub::start(port, &["-V", "5", "-t", "props", "-C", "1", "-F", "MSG|%t|%P|%C|%p"]);
    let v311 = Sub::start(port, &["-V", "311", "-t", "props", "-C", "1"]);
    publish(
        port,
        &[
            "-V",
            "5",
            "-t",
            "props",
            "-m",
            "body",
            "-D",
            "publish",
            "user-property",
            "k",
            "v",
            "-D",
            "publish",
            "content-type",
            "text/plain",
        ],
    );
    assert_eq!(v5.messages(), ["MSG|props|k:v|text/plain|body"]);
    // A 3.1.1 PUBLISH has no properties: the same message reaches it without them.
    assert_eq!(v311.messages(), ["MSG|props|0|0|body"]);
}
