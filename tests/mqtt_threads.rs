//! The broker on several threads (`BrokerCluster`, `monocoque mqtt broker --threads N`)
//! against clients nobody here wrote, on both drivers: paho-mqtt
//! (`tests/support/mqtt_threads.py`) for publishes crossing threads, retained messages,
//! shared subscriptions and a client id taken over from another thread;
//! `mosquitto_sub` for the `$SYS` topics and for the wills sent when SIGTERM shuts the
//! broker down.
//!
//! Where a client lands is the kernel's choice (`SO_REUSEPORT` hashes the addresses),
//! so the test first probes local ports: it connects from a port, watches which
//! thread's connection count rises (`BrokerCluster::connections_per_thread`), and
//! resets the probe; a client bound to that port later lands on the same thread.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::mqtt::{BrokerCluster, ClusterOptions};
use monocoque::proto::mqtt::broker::Access;
use serde_json::Value;
use socket2::{Domain, Socket, Type};
use support::mqtt::raw::{persistent_connect, ping, read_n, read_qos2_publish};

/// How long one step may take on a loaded machine before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(30);

both_drivers! {
    publishes_cross_two_threads => fanout2_uring, fanout2_mio;
    publishes_cross_four_threads => fanout4_uring, fanout4_mio;
    retained_seen_from_every_thread => retained_uring, retained_mio;
    client_id_taken_over_from_another_thread => takeover_uring, takeover_mio;
    sys_topics_summed_over_threads => sys_uring, sys_mio;
    sigterm_publishes_wills_and_exits_zero => sigterm_uring, sigterm_mio;
    a_burst_past_the_mailbox_arrives_whole_and_in_order => burst_uring, burst_mio;
    a_subscribe_sent_with_the_connect_is_answered => pipelined_uring, pipelined_mio;
    a_publish_crosses_only_to_the_thread_of_a_subscriber => routed_uring, routed_mio;
    an_unreceived_qos2_message_follows_its_session_to_another_thread => unreceived_uring, unreceived_mio;
    a_received_qos2_message_follows_as_its_pubrel => released_uring, released_mio;
    a_store_written_by_more_threads_is_taken_in => fewer_threads_uring, fewer_threads_mio;
    a_session_left_in_two_stores_is_kept_once_the_newest => two_copies_uring, two_copies_mio;
    filters_restored_past_the_mailbox_reach_every_thread_first => restored_uring, restored_mio;
}

fn start(kind: DriverKind, threads: usize, sys: Option<Duration>) -> BrokerCluster {
    let mut options = ClusterOptions::new(threads, kind);
    options.sys_interval = sys;
    BrokerCluster::start(SocketAddr::from(([127, 0, 0, 1], 0)), options, |_| Access::default())
        .expect("start the cluster")
}

/// Local ports handed out to probes, below the ephemeral range (32768 and up on
/// Linux), in blocks of [`PORT_BLOCK`]: a test process owns the block whose first port
/// it holds a listener on, so test processes running at once never hand out the same
/// port (one picking ports by process id did, now and then: `EADDRINUSE` in paho).
static NEXT_PORT: AtomicU16 = AtomicU16::new(0);

/// Ports per block: more than a whole run of this file probes, so a port comes round
/// again only long after its last connection closed.
const PORT_BLOCK: u16 = 1000;

/// The first port of this process's block; its listener is held for the process's life.
fn port_block() -> u16 {
    static BLOCK: OnceLock<(TcpListener, u16)> = OnceLock::new();
    BLOCK
        .get_or_init(|| {
            (12..32)
                .map(|b| b * PORT_BLOCK)
                .find_map(|first| TcpListener::bind(("127.0.0.1", first)).ok().map(|l| (l, first)))
                .expect("a free block of ports between 12000 and 32000")
        })
        .1
}

fn next_port() -> u16 {
    port_block() + 1 + NEXT_PORT.fetch_add(1, Ordering::Relaxed) % (PORT_BLOCK - 1)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + PATIENCE;
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// `per_thread` local ports for each thread of `cluster`: a connection from one of
/// `ports[t]` lands on thread `t`.
fn ports_by_thread(cluster: &BrokerCluster, per_thread: usize) -> Vec<Vec<u16>> {
    let threads = cluster.threads();
    let mut found = vec![Vec::new(); threads];
    let mut tries = 0;
    while found.iter().any(|p| p.len() < per_thread) {
        tries += 1;
        assert!(tries < 2000, "probing found {found:?}");
        let port = next_port();
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
        socket.set_reuse_address(true).expect("SO_REUSEADDR");
        // Closed with a reset: no TIME_WAIT, so the client can bind the port again.
        socket.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
        if socket
            .bind(&SocketAddrV4::new([127, 0, 0, 1].into(), port).into())
            .is_err()
        {
            continue;
        }
        let before = cluster.connections_per_thread();
        if socket.connect(&cluster.local_addr().into()).is_err() {
            continue;
        }
        let mut landed = None;
        wait_for("the probe to land", || {
            let now = cluster.connections_per_thread();
            landed = now.iter().zip(&before).position(|(a, b)| a > b);
            landed.is_some()
        });
        drop(socket);
        wait_for("the probe to go", || cluster.connections_per_thread() == before);
        let t = landed.expect("landed");
        if found[t].len() < per_thread {
            found[t].push(port);
        }
    }
    found
}

/// Runs a scenario of `tests/support/mqtt_threads.py`; its JSON report.
fn paho(addr: SocketAddr, scenario: &str, args: Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/mqtt_threads.py");
    let out = Command::new(support::paho_python())
        .args([
            script,
            &addr.ip().to_string(),
            &addr.port().to_string(),
            scenario,
            &args.to_string(),
        ])
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{scenario} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the script's JSON")
}

fn stop(cluster: BrokerCluster) {
    cluster.stop().expect("stop");
    cluster.join().expect("the threads end cleanly");
}

fn publishes_cross_threads(kind: DriverKind, threads: usize) {
    let cluster = start(kind, threads, None);
    // Per thread: a subscriber, a member of the shared group, a publisher.
    let ports = ports_by_thread(&cluster, 3);
    let col = |k: usize| ports.iter().map(|p| p[k]).collect::<Vec<_>>();
    let n = 40;
    let report = paho(
        cluster.local_addr(),
        "fanout",
        serde_json::json!({"subs": col(0), "shared": col(1), "pubs": col(2), "n": n}),
    );
    let expected: Vec<String> = (0..n).map(|i| i.to_string()).chain(["end".to_string()]).collect();
    // Every subscriber, on every thread, saw every publisher's messages once, in order.
    for (i, sub) in report["subs"].as_array().expect("subs").iter().enumerate() {
        for p in 0..threads {
            let got: Vec<String> = sub[format!("fan/p{p}")]
                .as_array()
                .unwrap_or_else(|| panic!("subscriber {i} got nothing from publisher {p}: {sub}"))
                .iter()
                .map(|v| v.as_str().expect("payload").to_string())
                .collect();
            assert_eq!(got, expected, "subscriber {i} (thread {i}), publisher {p} (thread {p})");
        }
    }
    // The shared group got each message once across all threads, in order per
    // publisher as far as one member sees it, and more than one thread served it.
    for p in 0..threads {
        let got: Vec<String> = report["shared"][format!("fan/p{p}")]
            .as_array()
            .expect("shared")
            .iter()
            .map(|v| v.as_str().expect("payload").to_string())
            .collect();
        let mut sorted = got.clone();
        sorted.sort_by_key(|s| s.parse::<u32>().unwrap_or(u32::MAX));
        assert_eq!(sorted, expected, "publisher {p}: the group got each message once");
    }
    let per_member: Vec<u64> = report["shared_per_member"]
        .as_array()
        .expect("counts")
        .iter()
        .map(|v| v.as_u64().expect("count"))
        .collect();
    assert_eq!(per_member.iter().sum::<u64>(), (threads * (n + 1)) as u64);
    assert!(
        per_member.iter().filter(|&&c| c > 0).count() >= 2,
        "the group's members on several threads share the work: {per_member:?}"
    );
    stop(cluster);
}

fn publishes_cross_two_threads(kind: DriverKind) {
    publishes_cross_threads(kind, 2);
}

fn publishes_cross_four_threads(kind: DriverKind) {
    publishes_cross_threads(kind, 4);
}

fn retained_seen_from_every_thread(kind: DriverKind) {
    let cluster = start(kind, 4, None);
    // Set on the last thread, then replaced from the first: each time, a subscriber
    // arriving on any thread gets the current value (each thread's replica follows).
    for (publisher, payload) in [(3, "kept"), (0, "replaced")] {
        // Fresh ports each round: the last round's are in TIME_WAIT.
        let ports = ports_by_thread(&cluster, 2);
        let report = paho(
            cluster.local_addr(),
            "retained",
            serde_json::json!({
                "pub": ports[publisher][1],
                "payload": payload,
                "subs": ports.iter().map(|p| p[0]).collect::<Vec<_>>(),
            }),
        );
        for (t, got) in report["subs"].as_array().expect("subs").iter().enumerate() {
            assert_eq!(
                got,
                &serde_json::json!([["ret/x", payload, 1]]),
                "a subscriber on thread {t} sees the message retained on thread {publisher}"
            );
        }
    }
    stop(cluster);
}

fn client_id_taken_over_from_another_thread(kind: DriverKind) {
    let cluster = start(kind, 2, None);
    let ports = ports_by_thread(&cluster, 2);
    let report = paho(
        cluster.local_addr(),
        "takeover",
        serde_json::json!({"old": ports[0][0], "new": ports[1][0], "observer": ports[1][1], "pub": ports[0][1]}),
    );
    // The old connection is told with a DISCONNECT (0x8E, encoded without properties:
    // remaining length 1, which paho 1.6 does not parse the reason code of; the code
    // itself is checked with mosquitto_sub in tests/mqtt_broker.rs).
    let old = report["old_rc"].as_str().expect("the old connection's DISCONNECT");
    assert!(old.starts_with("Received DISCONNECT"), "{report}");
    assert_eq!(
        report["will"],
        serde_json::json!([["will/dup", "gone", 0]]),
        "its will is published [MQTT-3.1.4-3]"
    );
    assert!(
        !report["new_got"].as_array().expect("new_got").is_empty(),
        "the session's subscription moved to the new thread: {report}"
    );
    // The CONNACK waited until the publisher's thread routed the moved subscription
    // to the new one: the first message published after it arrives.
    assert_eq!(report["new_got"][0][1], "0", "{report}");
    assert_eq!(report["old_got"], serde_json::json!([]));
    stop(cluster);
}

/// A `mosquitto_sub` whose `-v` lines the test reads as they come.
struct Sub {
    child: Child,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Sub {
    fn start(port: u16, args: &[&str]) -> Sub {
        let mosquitto_sub = support::require_binary("mosquitto_sub", "mosquitto-clients");
        let mut child = Command::new(mosquitto_sub)
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-v"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto_sub");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Sub { child, lines }
    }

    fn next(&self) -> String {
        self.lines.recv_timeout(PATIENCE).expect("a line from mosquitto_sub")
    }
}

impl Drop for Sub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn mosquitto_pub(port: u16, args: &[&str]) {
    let mosquitto_pub = support::require_binary("mosquitto_pub", "mosquitto-clients");
    let status = Command::new(mosquitto_pub)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .status()
        .expect("run mosquitto_pub");
    assert!(status.success());
}

/// Publishes cross only to a thread with a matching subscription: `mosquitto_sub` on
/// one of three threads, `mosquitto_pub` landing wherever the kernel puts it. Every
/// message arrives; the forwards all go to the subscriber's thread, none to the
/// others; once the subscriber is gone, nothing crosses.
fn a_publish_crosses_only_to_the_thread_of_a_subscriber(kind: DriverKind) {
    let cluster = start(kind, 3, None);
    let port = cluster.local_addr().port();
    let sub = Sub::start(port, &["-V", "5", "-t", "route/#"]);
    wait_for("the subscriber", || cluster.subscriptions() == 1);
    let at = cluster
        .clients_per_thread()
        .iter()
        .position(|&c| c == 1)
        .expect("the subscriber's thread");
    let crossed = || cluster.forwards_sent_per_thread().iter().sum::<u64>();
    // Each mosquitto_pub lands on any of the three threads: publish until a few came
    // from the other two (the odds that 60 all land with the subscriber: 3^-60).
    let mut sent = 0;
    while sent < 60 && (sent < 6 || crossed() < 3) {
        mosquitto_pub(port, &["-V", "5", "-t", "route/x", "-m", &sent.to_string()]);
        assert_eq!(sub.next(), format!("route/x {sent}"));
        sent += 1;
    }
    // Each thread reports after its turn, the senders' figures possibly after the
    // subscriber's: wait until what was sent and what was received agree.
    let settled = || {
        let received: u64 = cluster.forwards_per_thread().iter().sum();
        received == crossed()
    };
    wait_for("the threads to report", settled);
    let forwarded = crossed();
    assert!(forwarded >= 3, "only {forwarded} of {sent} publishes crossed threads");
    let received = cluster.forwards_per_thread();
    assert_eq!(received[at], forwarded, "{received:?}");
    for (t, &n) in received.iter().enumerate().filter(|&(t, _)| t != at) {
        assert_eq!(n, 0, "thread {t} has no subscriber, yet got forwards: {received:?}");
    }
    // The subscriber goes (its filter is withdrawn from the other threads before a
    // new client's CONNACK: that CONNECT's takeover round trip follows it through the
    // mailboxes); later publishes stay where they land.
    drop(sub);
    wait_for("the subscription to go", || cluster.subscriptions() == 0);
    for i in 0..10 {
        mosquitto_pub(port, &["-V", "5", "-t", "route/x", "-m", &i.to_string()]);
    }
    wait_for("the threads to report", settled);
    let after = crossed();
    assert_eq!(after, forwarded, "publishes crossed with no subscriber anywhere");
    stop(cluster);
}

fn sys_topics_summed_over_threads(kind: DriverKind) {
    let cluster = start(kind, 2, Some(Duration::from_secs(1)));
    let port = cluster.local_addr().port();
    // Leading wildcards do not match $SYS [MQTT-4.7.2-1]: this one sees only the marker.
    let all = Sub::start(port, &["-V", "5", "-t", "#", "-t", "+/broker/#"]);
    let sys = Sub::start(
        port,
        &[
            "-V",
            "5",
            "-t",
            "$SYS/broker/messages/received",
            "-t",
            "$SYS/broker/clients/connected",
            "-t",
            "$SYS/broker/version",
        ],
    );
    wait_for("both subscribers", || cluster.subscriptions() == 5);
    for i in 0..5 {
        mosquitto_pub(port, &["-t", "m/x", "-m", &i.to_string()]);
    }
    for i in 0..5 {
        assert_eq!(all.next(), format!("m/x {i}"));
    }
    // Rounds come every second: wait for one that counts the 5 messages and the two
    // subscribers, from whichever threads they are on.
    let mut seen = BTreeMap::new();
    let end = Instant::now() + PATIENCE;
    while Instant::now() < end {
        let line = sys.next();
        let (topic, value) = line.split_once(' ').expect("topic value");
        seen.insert(topic.to_string(), value.to_string());
        if seen.get("$SYS/broker/messages/received").map(String::as_str) == Some("5")
            && seen.get("$SYS/broker/clients/connected").map(String::as_str) == Some("2")
        {
            break;
        }
    }
    assert_eq!(
        seen.get("$SYS/broker/messages/received").map(String::as_str),
        Some("5"),
        "{seen:?}"
    );
    assert_eq!(
        seen.get("$SYS/broker/clients/connected").map(String::as_str),
        Some("2"),
        "{seen:?}"
    );
    assert!(seen["$SYS/broker/version"].starts_with("monocoque "));
    mosquitto_pub(port, &["-t", "m/end", "-m", "end"]);
    assert_eq!(
        all.next(),
        "m/end end",
        "no $SYS message reached the wildcard subscriber"
    );
    drop((all, sys));
    stop(cluster);
}

fn sigterm_publishes_wills_and_exits_zero(kind: DriverKind) {
    let binary = env!("CARGO_BIN_EXE_monocoque");
    let dir = support::TempDir::new("mqtt-sigterm");
    let config = dir.path.join("broker.toml");
    std::fs::write(&config, "sys_interval = 1\n").expect("write the config");
    let mut broker = Command::new(binary)
        .args([
            "mqtt",
            "broker",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--driver",
        ])
        .arg(kind.name())
        .arg("--config")
        .arg(&config)
        .arg("--data")
        .arg(dir.path.join("data"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the broker");
    let mut err = BufReader::new(broker.stderr.take().expect("stderr"));
    let mut line = String::new();
    err.read_line(&mut line).expect("the broker's first line");
    let addr: SocketAddr = line
        .split_whitespace()
        .nth(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let observer = Sub::start(
        addr.port(),
        &["-V", "5", "-t", "will/#", "-t", "$SYS/broker/clients/connected"],
    );
    let victims: Vec<Sub> = (0..4)
        .map(|i| {
            let id = format!("victim{i}");
            Sub::start(
                addr.port(),
                &[
                    "-V",
                    "5",
                    "-i",
                    &id,
                    "-t",
                    "nothing",
                    "--will-topic",
                    &format!("will/{id}"),
                    "--will-payload",
                    "bye",
                ],
            )
        })
        .collect();
    // Everyone is connected once $SYS (every second, from the config) counts them.
    let end = Instant::now() + PATIENCE;
    while observer.next() != "$SYS/broker/clients/connected 5" {
        assert!(Instant::now() < end, "the clients never all connected");
    }
    let started = Instant::now();
    // SAFETY: kill(2) on the broker's pid, a process this test started and has not waited.
    let rc = unsafe { libc::kill(broker.id() as libc::pid_t, libc::SIGTERM) };
    assert_eq!(rc, 0);
    let mut wills = HashSet::new();
    while wills.len() < victims.len() {
        let line = observer.next();
        if line.starts_with("$SYS/") {
            continue;
        }
        assert!(line.ends_with(" bye"), "{line}");
        wills.insert(line);
    }
    let status = loop {
        if let Some(status) = broker.try_wait().expect("wait") {
            break status;
        }
        assert!(started.elapsed() < PATIENCE, "the broker did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(10));
    };
    assert!(status.success(), "exit status {status}");
    drop(victims);
}

/// A bare MQTT 3.1.1 client on a socket bound to a given local port (so it lands on a
/// known thread): enough to publish a burst of QoS 0 messages in one write and to
/// read them back as a subscriber, with nothing between the test and the bytes.
struct RawClient {
    stream: TcpStream,
}

/// An MQTT packet: the first byte, the remaining length, the body.
fn mqtt_packet(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        out.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    out.extend_from_slice(body);
    out
}

/// A string as MQTT encodes it: two bytes of length, then the bytes.
fn mqtt_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

/// A QoS 0 `PUBLISH`.
fn mqtt_publish(topic: &str, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    mqtt_string(&mut body, topic.as_bytes());
    body.extend_from_slice(payload);
    mqtt_packet(0x30, &body)
}

impl RawClient {
    fn connect(addr: SocketAddr, local_port: u16, client_id: &str) -> RawClient {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
        socket.set_reuse_address(true).expect("SO_REUSEADDR");
        socket
            .bind(&SocketAddrV4::new([127, 0, 0, 1].into(), local_port).into())
            .expect("bind the probed port");
        socket.connect(&addr.into()).expect("connect");
        let stream: TcpStream = socket.into();
        stream.set_read_timeout(Some(PATIENCE)).expect("read timeout");
        let mut client = RawClient { stream };
        let mut body = Vec::new();
        mqtt_string(&mut body, b"MQTT");
        body.extend_from_slice(&[4, 0x02, 0, 60]); // 3.1.1, clean session, keep alive 60 s
        mqtt_string(&mut body, client_id.as_bytes());
        client.write(&mqtt_packet(0x10, &body));
        let (first, ack) = client.read_packet();
        assert_eq!((first, ack.as_slice()), (0x20, &[0, 0][..]), "{client_id}: CONNACK");
        client
    }

    fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("write to the broker");
    }

    fn subscribe(&mut self, filter: &str) {
        let mut body = vec![0, 1];
        mqtt_string(&mut body, filter.as_bytes());
        body.push(0);
        self.write(&mqtt_packet(0x82, &body));
        let (first, _) = self.read_packet();
        assert_eq!(first, 0x90, "SUBACK");
    }

    /// The next packet: its first byte and its body. Fails after [`PATIENCE`].
    fn read_packet(&mut self) -> (u8, Vec<u8>) {
        let mut byte = [0u8; 1];
        self.stream.read_exact(&mut byte).expect("a packet within PATIENCE");
        let first = byte[0];
        let (mut len, mut shift) = (0usize, 0);
        loop {
            self.stream.read_exact(&mut byte).expect("the remaining length");
            len |= ((byte[0] & 0x7f) as usize) << shift;
            shift += 7;
            if byte[0] & 0x80 == 0 {
                break;
            }
        }
        let mut body = vec![0u8; len];
        self.stream.read_exact(&mut body).expect("the packet's body");
        (first, body)
    }
}

/// Two threads, mailboxes of 2 messages: on each thread a subscriber to `burst/#` and
/// a publisher that writes 5,000 QoS 0 messages in one go. Both threads' publishes
/// fill the other's mailbox at once (each thread is held, waiting for room, while it
/// keeps draining its own), so the burst crosses 2 messages at a time, every sender
/// woken by the receiver's drain. Every subscriber gets every publisher's messages,
/// all of them, in order: a full mailbox holds the publishers (TCP flow control), it
/// drops nothing. Without the wake a held thread would wait in its driver forever.
fn a_burst_past_the_mailbox_arrives_whole_and_in_order(kind: DriverKind) {
    const N: usize = 5_000;
    let mut options = ClusterOptions::new(2, kind);
    options.sys_interval = None;
    options.mailbox_capacity = 2;
    let cluster = BrokerCluster::start(SocketAddr::from(([127, 0, 0, 1], 0)), options, |_| Access::default())
        .expect("start the cluster");
    let addr = cluster.local_addr();
    // Per thread: a subscriber's port, a publisher's port.
    let ports = ports_by_thread(&cluster, 2);
    // How many subscribers saw publisher p's probe (so its publishes reach both).
    let probed: Arc<[AtomicUsize; 2]> = Arc::new([AtomicUsize::new(0), AtomicUsize::new(0)]);
    let readers: Vec<_> = (0..2)
        .map(|t| {
            let mut sub = RawClient::connect(addr, ports[t][0], &format!("sub{t}"));
            sub.subscribe("burst/#");
            let probed = Arc::clone(&probed);
            std::thread::spawn(move || {
                let mut got: Vec<Vec<usize>> = vec![Vec::new(); 2];
                let mut seen_probe = [false; 2];
                while got.iter().any(|g| g.len() < N) {
                    let (first, body) = sub.read_packet();
                    assert_eq!(first, 0x30, "subscriber {t}: only QoS 0 PUBLISH expected");
                    let topic_len = u16::from_be_bytes([body[0], body[1]]) as usize;
                    let topic = std::str::from_utf8(&body[2..2 + topic_len]).expect("a UTF-8 topic");
                    let payload = std::str::from_utf8(&body[2 + topic_len..]).expect("a UTF-8 payload");
                    let (p, probe) = match topic {
                        "burst/p0" => (0, false),
                        "burst/p1" => (1, false),
                        "burst/p0/probe" => (0, true),
                        "burst/p1/probe" => (1, true),
                        other => panic!("subscriber {t}: unexpected topic {other}"),
                    };
                    if probe {
                        if !seen_probe[p] {
                            seen_probe[p] = true;
                            probed[p].fetch_add(1, Ordering::AcqRel);
                        }
                    } else {
                        got[p].push(payload.parse().expect("a number"));
                    }
                }
                got
            })
        })
        .collect();
    let publishers: Vec<_> = (0..2)
        .map(|t| {
            let mut publisher = RawClient::connect(addr, ports[t][1], &format!("pub{t}"));
            let probed = Arc::clone(&probed);
            std::thread::spawn(move || {
                let topic = format!("burst/p{t}");
                let probe = mqtt_publish(&format!("{topic}/probe"), b"?");
                let end = Instant::now() + PATIENCE;
                while probed[t].load(Ordering::Acquire) < 2 {
                    assert!(Instant::now() < end, "publisher {t}: the subscribers never saw a probe");
                    publisher.write(&probe);
                    std::thread::sleep(Duration::from_millis(20));
                }
                let burst: Vec<u8> = (0..N)
                    .flat_map(|i| mqtt_publish(&topic, i.to_string().as_bytes()))
                    .collect();
                publisher.write(&burst);
                // Kept open until the subscribers have everything.
                publisher
            })
        })
        .collect();
    // The readers first: each gives up after PATIENCE, where a publisher held for
    // ever would block in its write.
    for (t, reader) in readers.into_iter().enumerate() {
        let got = reader.join().unwrap_or_else(|e| std::panic::resume_unwind(e));
        for (p, seqs) in got.iter().enumerate() {
            assert!(
                seqs.iter().copied().eq(0..N),
                "{kind}: subscriber {t} (thread {t}) from publisher {p} (thread {p}): {} messages, first gap at {:?}",
                seqs.len(),
                seqs.iter().enumerate().find(|(i, s)| *i != **s).map(|(i, _)| i)
            );
        }
    }
    for p in publishers {
        drop(p.join().unwrap_or_else(|e| std::panic::resume_unwind(e)));
    }
    stop(cluster);
}

/// A raw TCP client from local port `from` (so it lands on the thread probed for it).
fn raw_from(cluster: &BrokerCluster, from: u16) -> TcpStream {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("a socket");
    socket.set_reuse_address(true).expect("SO_REUSEADDR");
    socket.set_linger(Some(Duration::ZERO)).expect("SO_LINGER");
    socket
        .bind(&SocketAddrV4::new([127, 0, 0, 1].into(), from).into())
        .expect("bind the probed port");
    socket.connect(&cluster.local_addr().into()).expect("connect");
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream
}

/// A 3.1.1 CONNECT with Clean Session 0 for `id` from local port `from`; the CONNACK.
fn raw_connect(cluster: &BrokerCluster, from: u16, id: &str) -> (TcpStream, Vec<u8>) {
    let mut stream = raw_from(cluster, from);
    stream.write_all(&persistent_connect(id)).expect("CONNECT");
    let ack = read_n(&mut stream, 4);
    (stream, ack)
}

/// A persistent raw subscriber on the thread of local port `from`, subscribed at QoS 2
/// to `z/#`, that has received the QoS 2 message "cut" (not acknowledged): its stream
/// and the message's packet identifier.
fn subscriber_with_a_flow(cluster: &BrokerCluster, from: u16, id: &str) -> (TcpStream, u16) {
    let (mut sub, ack) = raw_connect(cluster, from, id);
    assert_eq!(ack, [0x20, 2, 0, 0]);
    sub.write_all(&[0x82, 8, 0, 1, 0, 3, b'z', b'/', b'#', 2])
        .expect("SUBSCRIBE");
    assert_eq!(read_n(&mut sub, 5), [0x90, 3, 0, 1, 2], "SUBACK");
    // Two messages, so the identifier of the one cut is not 1 by chance alone.
    for m in ["done", "cut"] {
        mosquitto_pub(cluster.local_addr().port(), &["-q", "2", "-t", "z/a", "-m", m]);
    }
    let (_, done, payload) = read_qos2_publish(&mut sub, "z/a");
    assert_eq!(payload, b"done");
    let (dup, cut, payload) = read_qos2_publish(&mut sub, "z/a");
    assert_eq!((dup, &payload[..]), (false, &b"cut"[..]));
    let [hi, lo] = done.to_be_bytes();
    sub.write_all(&[0x50, 2, hi, lo]).expect("PUBREC");
    assert_eq!(read_n(&mut sub, 4), [0x62, 2, hi, lo], "PUBREL");
    sub.write_all(&[0x70, 2, hi, lo]).expect("PUBCOMP");
    // A PINGREQ answered: the PUBCOMP before it was handled (that flow is over).
    ping(&mut sub);
    (sub, cut)
}

fn an_unreceived_qos2_message_follows_its_session_to_another_thread(kind: DriverKind) {
    // The session moves from thread 0 to thread 1 whole: Session Present 1 and the
    // message in flight resent with DUP 1 and its identifier [MQTT-4.4.0-1]. Before,
    // the CONNACK said 0 and the message came again as a new flow (new id, DUP 0).
    let cluster = start(kind, 2, None);
    let ports = ports_by_thread(&cluster, 1);
    let (old, id) = subscriber_with_a_flow(&cluster, ports[0][0], "z-sub");
    // It comes back on thread 1 while the old connection is still open (a takeover).
    let (mut sub, ack) = raw_connect(&cluster, ports[1][0], "z-sub");
    assert_eq!(ack, [0x20, 2, 1, 0], "Session Present 1 on the other thread");
    let (dup, again, payload) = read_qos2_publish(&mut sub, "z/a");
    assert_eq!(
        (dup, again, &payload[..]),
        (true, id, &b"cut"[..]),
        "DUP 1, same identifier"
    );
    let [hi, lo] = id.to_be_bytes();
    sub.write_all(&[0x50, 2, hi, lo]).expect("PUBREC");
    assert_eq!(read_n(&mut sub, 4), [0x62, 2, hi, lo], "PUBREL");
    sub.write_all(&[0x70, 2, hi, lo]).expect("PUBCOMP");
    mosquitto_pub(cluster.local_addr().port(), &["-q", "2", "-t", "z/a", "-m", "next"]);
    let (dup, next, payload) = read_qos2_publish(&mut sub, "z/a");
    assert_eq!((dup, &payload[..]), (false, &b"next"[..]));
    assert_ne!(next, id);
    drop(old);
    stop(cluster);
}

fn a_received_qos2_message_follows_as_its_pubrel(kind: DriverKind) {
    // PUBREC sent on thread 0, then the client leaves and comes back on thread 1: it
    // gets PUBREL for that identifier and never the PUBLISH again.
    let cluster = start(kind, 2, None);
    let ports = ports_by_thread(&cluster, 1);
    let (mut old, id) = subscriber_with_a_flow(&cluster, ports[0][0], "w-sub");
    let [hi, lo] = id.to_be_bytes();
    old.write_all(&[0x50, 2, hi, lo]).expect("PUBREC");
    assert_eq!(read_n(&mut old, 4), [0x62, 2, hi, lo], "PUBREL");
    // DISCONNECT: the session waits offline on thread 0.
    old.write_all(&[0xE0, 0]).expect("DISCONNECT");
    let mut rest = Vec::new();
    let _ = old.read_to_end(&mut rest);
    let (mut sub, ack) = raw_connect(&cluster, ports[1][0], "w-sub");
    assert_eq!(ack, [0x20, 2, 1, 0], "Session Present 1 on the other thread");
    assert_eq!(read_n(&mut sub, 4), [0x62, 2, hi, lo], "PUBREL for the same identifier");
    sub.write_all(&[0x70, 2, hi, lo]).expect("PUBCOMP");
    mosquitto_pub(cluster.local_addr().port(), &["-q", "2", "-t", "z/end", "-m", "end"]);
    let (dup, _, payload) = read_qos2_publish(&mut sub, "z/end");
    assert_eq!(
        (dup, &payload[..]),
        (false, &b"end"[..]),
        "the next thing is the sentinel"
    );
    stop(cluster);
}

fn a_store_written_by_more_threads_is_taken_in(kind: DriverKind) {
    // A session stored by thread 1 of a 2-thread broker (`thread-1.redb`), with a QoS 2
    // message in flight, is still there when the broker restarts on 1 thread: thread 0
    // takes the file in. Before, the file was ignored and the session lost.
    let dir = support::TempDir::new("mqtt-threads-store");
    let mut options = ClusterOptions::new(2, kind);
    options.sys_interval = None;
    options.data = Some(dir.path.clone());
    let cluster = BrokerCluster::start(SocketAddr::from(([127, 0, 0, 1], 0)), options.clone(), |_| {
        Access::default()
    })
    .expect("start the cluster");
    let ports = ports_by_thread(&cluster, 1);
    let (old, id) = subscriber_with_a_flow(&cluster, ports[1][0], "v-sub");
    drop(old);
    stop(cluster);
    assert!(dir.path.join("thread-1.redb").exists());
    options.threads = 1;
    let cluster = BrokerCluster::start(SocketAddr::from(([127, 0, 0, 1], 0)), options, |_| Access::default())
        .expect("restart on one thread");
    assert!(!dir.path.join("thread-1.redb").exists(), "taken in by thread 0");
    let (mut sub, ack) = raw_connect(&cluster, next_port(), "v-sub");
    assert_eq!(ack, [0x20, 2, 1, 0], "Session Present 1 after the restart");
    let (dup, again, payload) = read_qos2_publish(&mut sub, "z/a");
    assert_eq!(
        (dup, again, &payload[..]),
        (true, id, &b"cut"[..]),
        "DUP 1, same identifier"
    );
    stop(cluster);
}

/// A client may send packets right after its CONNECT, before the CONNACK. On two
/// threads the CONNACK waits for the other thread's answer through the mailbox; the
/// SUBSCRIBE written in the same segment as the CONNECT still gets its SUBACK (it was
/// left unhandled before, and the client waited forever). Each client lands on
/// whichever thread the kernel picks, so eight of them cover both threads.
fn a_subscribe_sent_with_the_connect_is_answered(kind: DriverKind) {
    let cluster = start(kind, 2, None);
    for i in 0..8 {
        let mut stream = TcpStream::connect(cluster.local_addr()).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("read timeout");
        let mut connect = Vec::new();
        mqtt_string(&mut connect, b"MQTT");
        connect.extend_from_slice(&[4, 0x02, 0, 60]);
        mqtt_string(&mut connect, format!("eager-{i}").as_bytes());
        let mut subscribe = vec![0, 7];
        mqtt_string(&mut subscribe, b"eager/#");
        subscribe.push(0);
        let mut wire = mqtt_packet(0x10, &connect);
        wire.extend_from_slice(&mqtt_packet(0x82, &subscribe));
        stream.write_all(&wire).expect("write CONNECT and SUBSCRIBE at once");
        let mut reply = [0u8; 9];
        stream
            .read_exact(&mut reply)
            .expect("CONNACK and SUBACK within PATIENCE");
        assert_eq!(reply, [0x20, 2, 0, 0, 0x90, 3, 0, 7, 0], "client {i}");
    }
    stop(cluster);
}

/// Writes a copy of the stored session `client` into thread `thread`'s store under
/// `dir`, its record stamped `stamp`: its subscriptions (QoS 1) and its queued QoS 1
/// messages on `d/x`, as a broker thread commits them.
fn write_copy(dir: &std::path::Path, thread: usize, client: &str, stamp: u64, filters: &[&str], queued: &[&str]) {
    use bytes::Bytes;
    use monocoque::mqtt::{Properties, ProtocolVersion, QoS, Store};
    use monocoque::proto::mqtt::broker::{SessionRecord, StoreOp, SubscriptionRecord};
    use monocoque::proto::mqtt::{Publish, SubscriptionOptions};
    let client = Bytes::copy_from_slice(client.as_bytes());
    let mut ops = vec![StoreOp::Session {
        client: client.clone(),
        record: SessionRecord {
            version: ProtocolVersion::V5,
            expiry_interval: 300,
            expires_at: None,
            stamp,
        },
    }];
    for f in filters {
        ops.push(StoreOp::Subscribed {
            client: client.clone(),
            filter: Bytes::copy_from_slice(f.as_bytes()),
            record: SubscriptionRecord {
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
                id: 0,
            },
        });
    }
    for (i, payload) in queued.iter().enumerate() {
        ops.push(StoreOp::Queued {
            client: client.clone(),
            seq: i as u64 + 1,
            publish: Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: Bytes::from_static(b"d/x"),
                packet_id: 0,
                properties: Properties::default(),
                payload: Bytes::copy_from_slice(payload.as_bytes()),
            },
            expires_at: None,
        });
    }
    let mut store = Store::open(dir, thread).expect("open the store");
    store.apply(&ops).expect("commit the copy");
}

/// What thread `thread`'s store under `dir` holds of `client`: its record stamp, its
/// filters and its queued payloads (the whole store read back, every row checked).
fn stored_copy(dir: &std::path::Path, thread: usize, client: &str) -> Option<(u64, Vec<String>, Vec<String>)> {
    let store = monocoque::mqtt::Store::open(dir, thread).expect("open the store");
    let loaded = store
        .load()
        .expect("the store reads back whole (no row left without its session)");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    loaded
        .sessions
        .into_iter()
        .find(|s| s.client == client.as_bytes())
        .map(|s| {
            (
                s.record.stamp,
                s.subscriptions.iter().map(|(f, _)| text(f)).collect(),
                s.messages.iter().map(|m| text(&m.publish.payload)).collect(),
            )
        })
}

/// A crash between the two commits of a session moving threads (thread 0's copy to
/// thread 1) left it in both stores. The start keeps the newer copy only, with all
/// its rows; the client, coming back on the thread of the stale copy, gets the newer
/// copy's messages and what was published since, each once. Before, both threads
/// loaded a copy, both subscribed and queued, and the client resumed the stale one
/// (its old subscription, a message it had acknowledged, none of the newer ones).
/// The publish lands on either thread: on thread 0 (no session there now) it crosses
/// by thread 1's restored filter, which thread 0 knows before it takes a client
/// (before, only after thread 1's first wake: the message was acknowledged and lost).
fn a_session_left_in_two_stores_is_kept_once_the_newest(kind: DriverKind) {
    let dir = support::TempDir::new("mqtt-threads-two-copies");
    let data = dir.path.join("data");
    // The stale copy: a subscription since removed, a message since acknowledged.
    write_copy(&data, 0, "twice", 5, &["d/#", "old/#"], &["acked"]);
    write_copy(&data, 1, "twice", 9, &["d/#"], &["n1", "n2"]);
    let mut options = ClusterOptions::new(2, kind);
    options.sys_interval = None;
    options.data = Some(data.clone());
    let cluster = BrokerCluster::start(SocketAddr::from(([127, 0, 0, 1], 0)), options.clone(), |_| {
        Access::default()
    })
    .expect("start the cluster");
    stop(cluster);
    assert_eq!(
        stored_copy(&data, 0, "twice"),
        None,
        "the stale copy is gone with its rows"
    );
    assert_eq!(
        stored_copy(&data, 1, "twice"),
        Some((9, vec!["d/#".into()], vec!["n1".into(), "n2".into()])),
        "the newer copy is whole"
    );
    // The same state again, and this time the broker takes clients.
    write_copy(&data, 0, "twice", 5, &["d/#", "old/#"], &["acked"]);
    let cluster = BrokerCluster::start(SocketAddr::from(([127, 0, 0, 1], 0)), options, |_| Access::default())
        .expect("restart the cluster");
    // Probed first: the probes watch connection counts, which the publishers' would
    // blur.
    let ports = ports_by_thread(&cluster, 1);
    let port = cluster.local_addr().port();
    mosquitto_pub(port, &["-V", "5", "-q", "1", "-t", "d/x", "-m", "p1"]);
    mosquitto_pub(port, &["-V", "5", "-q", "1", "-t", "old/x", "-m", "o1"]);
    let report = paho(
        cluster.local_addr(),
        "resume",
        serde_json::json!({"id": "twice", "port": ports[0][0], "n": 3, "quiet": 1.0}),
    );
    assert_eq!(report["session_present"], true, "{report}");
    assert_eq!(
        report["got"],
        serde_json::json!([["d/x", "n1"], ["d/x", "n2"], ["d/x", "p1"]]),
        "each message once, from the newer copy"
    );
    stop(cluster);
    // The session moved to thread 0 with the reconnect; thread 1 forgot it.
    assert_eq!(stored_copy(&data, 1, "twice"), None);
    let (stamp, filters, queued) = stored_copy(&data, 0, "twice").expect("kept on thread 0");
    assert!(stamp > 9, "stamped later than the copy it came from: {stamp}");
    assert_eq!((filters, queued), (vec!["d/#".to_string()], Vec::<String>::new()));
}

/// Thread 1's store holds an offline session subscribed to 2,000 filters, and the
/// mailboxes hold 2 messages. Before any thread takes a client, thread 0 has applied
/// all 2,000 (the start-up exchange goes in rounds until every thread's restored
/// filters are out). Publishers with assigned identifiers (which make no round trip
/// through the other threads before they publish) connect at once, each with a QoS 1
/// `PUBLISH` to the last filter in the same write as its `CONNECT`: every message
/// acknowledged reaches the session, whichever thread took its publisher. Before,
/// thread 0 knew only the first 2 filters until thread 1 woke for something else and
/// sent the rest, 2 at a time: a publish on thread 0 meanwhile was acknowledged and
/// lost.
fn filters_restored_past_the_mailbox_reach_every_thread_first(kind: DriverKind) {
    const FILTERS: usize = 2_000;
    let dir = support::TempDir::new("mqtt-threads-restored");
    let data = dir.path.join("data");
    let filters: Vec<String> = (0..FILTERS).map(|i| format!("dev/{i}/cmd")).collect();
    let refs: Vec<&str> = filters.iter().map(String::as_str).collect();
    write_copy(&data, 1, "many", 1, &refs, &[]);
    let mut options = ClusterOptions::new(2, kind);
    options.sys_interval = None;
    options.data = Some(data);
    options.mailbox_capacity = 2;
    let cluster = BrokerCluster::start(SocketAddr::from(([127, 0, 0, 1], 0)), options, |_| Access::default())
        .expect("start the cluster");
    let addr = cluster.local_addr();
    let topic = &filters[FILTERS - 1];
    // 3.1.1, Clean Session 1, an empty identifier (the broker assigns one).
    let connect = [0x10, 12, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 0, 0, 0];
    let mut publishers: Vec<TcpStream> = Vec::new();
    let mut payloads = Vec::new();
    // Until some publisher landed on thread 0 (each lands on either, as the kernel
    // hashes its address): the case the test is about.
    while cluster.connections_per_thread()[0] == 0 {
        assert!(publishers.len() < 64, "no publisher landed on thread 0");
        for _ in 0..8 {
            let i = publishers.len();
            let payload = format!("m{i}");
            let mut body = Vec::new();
            mqtt_string(&mut body, topic.as_bytes());
            body.extend_from_slice(&(i as u16 + 1).to_be_bytes());
            body.extend_from_slice(payload.as_bytes());
            let mut wire = connect.to_vec();
            wire.extend(mqtt_packet(0x32, &body));
            let mut stream = TcpStream::connect(addr).expect("connect");
            stream.set_read_timeout(Some(PATIENCE)).expect("a read timeout");
            stream.write_all(&wire).expect("CONNECT and PUBLISH");
            publishers.push(stream);
            payloads.push(payload);
        }
        let n = publishers.len() as u64;
        wait_for("the publishers to land", || {
            cluster.connections_per_thread().iter().sum::<u64>() == n
        });
    }
    for (i, stream) in publishers.iter_mut().enumerate() {
        let [hi, lo] = (i as u16 + 1).to_be_bytes();
        assert_eq!(read_n(stream, 4), [0x20, 2, 0, 0], "CONNACK");
        assert_eq!(read_n(stream, 4), [0x40, 2, hi, lo], "PUBACK");
    }
    // The session's client comes back: every acknowledged message is there for it.
    let mut sub = RawClient {
        stream: TcpStream::connect(addr).expect("connect"),
    };
    sub.stream.set_read_timeout(Some(PATIENCE)).expect("a read timeout");
    sub.stream.write_all(&persistent_connect("many")).expect("CONNECT");
    assert_eq!(read_n(&mut sub.stream, 4), [0x20, 2, 1, 0], "Session Present 1");
    let mut got = Vec::new();
    while got.len() < payloads.len() {
        let (first, body) = sub.read_packet();
        assert_eq!(first & 0xF6, 0x32, "a QoS 1 PUBLISH");
        let t = 2 + topic.len();
        assert_eq!(&body[2..t], topic.as_bytes());
        sub.stream.write_all(&[0x40, 2, body[t], body[t + 1]]).expect("PUBACK");
        got.push(String::from_utf8_lossy(&body[t + 2..]).into_owned());
    }
    got.sort();
    payloads.sort();
    assert_eq!(got, payloads, "every acknowledged message, once");
    ping(&mut sub.stream);
    stop(cluster);
}
