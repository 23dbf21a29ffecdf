//! Sessions survive a broker restart: `monocoque mqtt broker --data DIR` is SIGKILLed
//! (no clean stop, no final commit) and started again on the same directory and port;
//! what was acknowledged to publishers is still there. Clients are `mosquitto_pub` and
//! `mosquitto_sub` (Debian `mosquitto-clients`) and, for a QoS 2 flow cut by the
//! restart, a raw socket. Both drivers.

mod support;

use std::ffi::OsStr;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use support::mqtt::raw::{persistent_connect, ping, read_n, read_qos2_publish};
use support::mqtt::CliBroker;
use support::{require_binary, TempDir};

/// How long one step may take on a loaded machine before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(30);

both_drivers! {
    acknowledged_messages_survive_sigkill => acknowledged_uring, acknowledged_mio;
    retained_messages_and_subscriptions_survive => retained_uring, retained_mio;
    a_qos2_flow_cut_by_the_restart_completes_once => qos2_flow_uring, qos2_flow_mio;
    a_corrupt_store_is_a_clear_error_at_start => corrupt_uring, corrupt_mio;
    an_unreceived_qos2_message_comes_back_with_its_identifier => unreceived_uring, unreceived_mio;
    a_received_qos2_message_comes_back_as_its_pubrel => released_uring, released_mio;
    a_backlog_past_the_output_cap_flows_without_acks => backlog_uring, backlog_mio;
}

/// `monocoque mqtt broker --data dir` on `port` (0: a free one).
fn start(kind: DriverKind, dir: &Path, port: u16) -> CliBroker {
    CliBroker::start_on(kind, port, &[OsStr::new("--data"), dir.as_os_str()])
}

fn run(binary: &str, port: u16, args: &[&str], stdin: Option<&str>) -> Output {
    let path = require_binary(binary, "mosquitto-clients");
    let mut child = Command::new(path)
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {binary}: {e}"));
    if let Some(text) = stdin {
        let mut input = child.stdin.take().expect("piped stdin");
        input.write_all(text.as_bytes()).expect("write stdin");
    }
    let deadline = Instant::now() + PATIENCE * 2;
    loop {
        if let Some(_status) = child.try_wait().expect("wait") {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{binary} {args:?} hung: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stdout(out: &Output) -> Vec<String> {
    assert!(
        out.status.success(),
        "{:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A persistent subscription (`-c`, clean session 0) made and left at once (`-E`).
fn subscribe_and_leave(port: u16, id: &str, filters: &[&str]) {
    let mut args = vec!["-V", "311", "-c", "-i", id, "-q", "2", "-E"];
    for f in filters {
        args.extend(["-t", f]);
    }
    stdout(&run("mosquitto_sub", port, &args, None));
}

/// Publishes each line of `lines` as one message (`-l`) at `qos` and returns how many
/// acknowledgements completed a flow (PUBACK for QoS 1, PUBCOMP for QoS 2).
fn publish_lines(port: u16, qos: &str, topic: &str, lines: &str) -> usize {
    let out = run(
        "mosquitto_pub",
        port,
        &["-V", "5", "-d", "-q", qos, "-t", topic, "-l"],
        Some(lines),
    );
    let ack = if qos == "1" {
        "received PUBACK"
    } else {
        "received PUBCOMP"
    };
    stdout(&out).iter().filter(|l| l.contains(ack)).count()
}

fn acknowledged_messages_survive_sigkill(kind: DriverKind) {
    let dir = TempDir::new("mqtt-persist");
    let broker = start(kind, &dir.path, 0);
    let port = broker.port();
    subscribe_and_leave(port, "durable-sub", &["p/#"]);
    let q1: String = (0..100).map(|i| format!("one-{i}\n")).collect();
    let q2: String = (0..100).map(|i| format!("two-{i}\n")).collect();
    assert_eq!(
        publish_lines(port, "1", "p/1", &q1),
        100,
        "every QoS 1 message acknowledged"
    );
    assert_eq!(
        publish_lines(port, "2", "p/2", &q2),
        100,
        "every QoS 2 message completed"
    );
    broker.kill();
    let _broker = start(kind, &dir.path, port);
    let out = run(
        "mosquitto_sub",
        port,
        &[
            "-V",
            "311",
            "-c",
            "-i",
            "durable-sub",
            "-q",
            "2",
            "-t",
            "p/#",
            "-C",
            "200",
            "-F",
            "%q|%p",
        ],
        None,
    );
    let mut got = stdout(&out);
    got.sort();
    let mut expected: Vec<String> = (0..100)
        .map(|i| format!("1|one-{i}"))
        .chain((0..100).map(|i| format!("2|two-{i}")))
        .collect();
    expected.sort();
    // 200 messages, all distinct: each QoS 2 message exactly once, each QoS 1 at least.
    assert_eq!(got, expected);
}

fn retained_messages_and_subscriptions_survive(kind: DriverKind) {
    let dir = TempDir::new("mqtt-persist");
    let broker = start(kind, &dir.path, 0);
    let port = broker.port();
    subscribe_and_leave(port, "kept-sub", &["s/#"]);
    run(
        "mosquitto_pub",
        port,
        &["-q", "1", "-r", "-t", "r/a", "-m", "kept"],
        None,
    );
    run(
        "mosquitto_pub",
        port,
        &["-q", "1", "-r", "-t", "r/b", "-m", "gone"],
        None,
    );
    run("mosquitto_pub", port, &["-q", "1", "-r", "-t", "r/b", "-n"], None);
    broker.kill();
    let _broker = start(kind, &dir.path, port);
    // Published after the restart, to a subscription made before it: queued for the
    // offline session only if the subscription came back.
    run("mosquitto_pub", port, &["-q", "1", "-t", "s/x", "-m", "after"], None);
    let got = stdout(&run(
        "mosquitto_sub",
        port,
        &[
            "-V",
            "311",
            "-c",
            "-i",
            "kept-sub",
            "-q",
            "1",
            "-t",
            "unrelated",
            "-C",
            "1",
            "-F",
            "%t|%p",
        ],
        None,
    ));
    assert_eq!(got, ["s/x|after"]);
    // The retained message is there, the deleted one is not (a sentinel retained
    // after the restart sorts last).
    run(
        "mosquitto_pub",
        port,
        &["-q", "1", "-r", "-t", "r/z", "-m", "sentinel"],
        None,
    );
    let mut got = stdout(&run(
        "mosquitto_sub",
        port,
        &["-t", "r/#", "-C", "2", "-F", "%t|%p|%r"],
        None,
    ));
    got.sort();
    assert_eq!(got, ["r/a|kept|1", "r/z|sentinel|1"]);
}

/// Reads exactly `n` bytes.
fn raw_connect(port: u16, id: &str) -> (TcpStream, Vec<u8>) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    stream.write_all(&persistent_connect(id)).expect("CONNECT");
    let ack = read_n(&mut stream, 4);
    (stream, ack)
}

fn a_qos2_flow_cut_by_the_restart_completes_once(kind: DriverKind) {
    let dir = TempDir::new("mqtt-persist");
    let broker = start(kind, &dir.path, 0);
    let port = broker.port();
    subscribe_and_leave(port, "q2-sub", &["m/#"]);
    let (mut publisher, ack) = raw_connect(port, "raw-pub");
    assert_eq!(ack, [0x20, 2, 0, 0]);
    // PUBLISH QoS 2, packet identifier 7, "m/q" "once".
    let publish = [0x34, 11, 0, 3, b'm', b'/', b'q', 0, 7, b'o', b'n', b'c', b'e'];
    publisher.write_all(&publish).expect("PUBLISH");
    assert_eq!(read_n(&mut publisher, 4), [0x50, 2, 0, 7], "PUBREC");
    broker.kill();
    drop(publisher);
    let _broker = start(kind, &dir.path, port);
    let (mut publisher, ack) = raw_connect(port, "raw-pub");
    assert_eq!(ack, [0x20, 2, 1, 0], "the session is present after the restart");
    publisher.write_all(&[0x62, 2, 0, 7]).expect("PUBREL");
    assert_eq!(read_n(&mut publisher, 4), [0x70, 2, 0, 7], "PUBCOMP");
    // A sentinel after the flow: the subscriber sees "once" once and the sentinel
    // (in either order: the client library hands a QoS 2 message over at PUBREL).
    run("mosquitto_pub", port, &["-q", "1", "-t", "m/end", "-m", "end"], None);
    let mut got = stdout(&run(
        "mosquitto_sub",
        port,
        &[
            "-V", "311", "-c", "-i", "q2-sub", "-q", "2", "-t", "m/#", "-C", "2", "-F", "%t|%q|%p",
        ],
        None,
    ));
    got.sort();
    assert_eq!(got, ["m/end|1|end", "m/q|2|once"]);
}

fn start_fails(kind: DriverKind, dir: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_monocoque"))
        .args([
            "mqtt",
            "broker",
            "--driver",
            kind.name(),
            "--listen",
            "127.0.0.1:0",
            "--data",
        ])
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("run the broker");
    assert!(!out.status.success(), "the broker started on a corrupt store");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn a_corrupt_store_is_a_clear_error_at_start(kind: DriverKind) {
    // Not a database at all.
    let dir = TempDir::new("mqtt-persist");
    std::fs::write(dir.path.join("thread-0.redb"), vec![0xAB; 8192]).expect("write garbage");
    let err = start_fails(kind, &dir.path);
    assert!(err.contains("cannot open the store"), "{err}");
    // A database with a record this broker cannot read.
    let dir = TempDir::new("mqtt-persist");
    let broker = start(kind, &dir.path, 0);
    subscribe_and_leave(broker.port(), "victim", &["v/#"]);
    broker.kill();
    {
        let db = redb::Database::create(dir.path.join("thread-0.redb")).expect("open the store");
        let txn = db.begin_write().expect("write");
        {
            let sessions: redb::TableDefinition<&[u8], &[u8]> = redb::TableDefinition::new("sessions");
            let mut table = txn.open_table(sessions).expect("sessions");
            table.insert(&b"victim"[..], &[9u8, 4, 0, 0, 0, 0][..]).expect("insert");
        }
        txn.commit().expect("commit");
    }
    let err = start_fails(kind, &dir.path);
    assert!(
        err.contains("corrupt record in table sessions") && err.contains("unknown record format 9"),
        "{err}"
    );
}

/// A raw 3.1.1 subscriber with a persistent session ("-c"), subscribed at QoS 2 to
/// `filter` (1 to 9 bytes).
fn raw_subscriber(port: u16, id: &str, filter: &str) -> TcpStream {
    let (mut stream, ack) = raw_connect(port, id);
    assert_eq!(ack[..2], [0x20, 2]);
    let mut packet = vec![0x82, (2 + 2 + filter.len() + 1) as u8, 0, 1, 0, filter.len() as u8];
    packet.extend_from_slice(filter.as_bytes());
    packet.push(2);
    stream.write_all(&packet).expect("SUBSCRIBE");
    assert_eq!(read_n(&mut stream, 5), [0x90, 3, 0, 1, 2], "SUBACK granting QoS 2");
    stream
}

fn an_unreceived_qos2_message_comes_back_with_its_identifier(kind: DriverKind) {
    // [MQTT-4.4.0-1]: resent with DUP 1 and the SAME packet identifier after a SIGKILL,
    // so the client recognises it; before, it restarted as a new flow (new id, DUP 0).
    let dir = TempDir::new("mqtt-persist");
    let broker = start(kind, &dir.path, 0);
    let port = broker.port();
    let mut sub = raw_subscriber(port, "x-sub", "x/#");
    // Two messages, so the first identifier is not 1 by chance alone.
    for m in ["zero", "first"] {
        run("mosquitto_pub", port, &["-q", "2", "-t", "x/a", "-m", m], None);
    }
    let (dup, zero, payload) = read_qos2_publish(&mut sub, "x/a");
    assert_eq!((dup, &payload[..]), (false, &b"zero"[..]));
    let (dup, id, payload) = read_qos2_publish(&mut sub, "x/a");
    assert_eq!((dup, &payload[..]), (false, &b"first"[..]));
    assert_ne!(id, zero);
    // The first flow completes; the second is cut by the kill before its PUBREC.
    let [zh, zl] = zero.to_be_bytes();
    sub.write_all(&[0x50, 2, zh, zl]).expect("PUBREC");
    assert_eq!(read_n(&mut sub, 4), [0x62, 2, zh, zl], "PUBREL");
    sub.write_all(&[0x70, 2, zh, zl]).expect("PUBCOMP");
    ping(&mut sub);
    broker.kill();
    drop(sub);
    let _broker = start(kind, &dir.path, port);
    let (mut sub, ack) = raw_connect(port, "x-sub");
    assert_eq!(ack, [0x20, 2, 1, 0], "the session is present after the restart");
    let (dup, again, payload) = read_qos2_publish(&mut sub, "x/a");
    assert_eq!(
        (dup, again, &payload[..]),
        (true, id, &b"first"[..]),
        "DUP 1, same identifier"
    );
    let [hi, lo] = id.to_be_bytes();
    sub.write_all(&[0x50, 2, hi, lo]).expect("PUBREC");
    assert_eq!(read_n(&mut sub, 4), [0x62, 2, hi, lo], "PUBREL");
    sub.write_all(&[0x70, 2, hi, lo]).expect("PUBCOMP");
    // Nothing else was owed: the next message is the next one, with a new identifier.
    run("mosquitto_pub", port, &["-q", "2", "-t", "x/a", "-m", "next"], None);
    let (dup, next, payload) = read_qos2_publish(&mut sub, "x/a");
    assert_eq!((dup, &payload[..]), (false, &b"next"[..]));
    assert_ne!(next, id);
}

fn a_received_qos2_message_comes_back_as_its_pubrel(kind: DriverKind) {
    // The subscriber sent PUBREC before the SIGKILL: the broker resends PUBREL for that
    // identifier, and never the PUBLISH (the client would take it as a new message).
    let dir = TempDir::new("mqtt-persist");
    let broker = start(kind, &dir.path, 0);
    let port = broker.port();
    let mut sub = raw_subscriber(port, "y-sub", "y/#");
    run("mosquitto_pub", port, &["-q", "2", "-t", "y/a", "-m", "once"], None);
    let (dup, id, payload) = read_qos2_publish(&mut sub, "y/a");
    assert_eq!((dup, &payload[..]), (false, &b"once"[..]));
    let [hi, lo] = id.to_be_bytes();
    sub.write_all(&[0x50, 2, hi, lo]).expect("PUBREC");
    assert_eq!(read_n(&mut sub, 4), [0x62, 2, hi, lo], "PUBREL");
    ping(&mut sub);
    broker.kill();
    drop(sub);
    let _broker = start(kind, &dir.path, port);
    let (mut sub, ack) = raw_connect(port, "y-sub");
    assert_eq!(ack, [0x20, 2, 1, 0], "the session is present after the restart");
    assert_eq!(read_n(&mut sub, 4), [0x62, 2, hi, lo], "PUBREL for the same identifier");
    sub.write_all(&[0x70, 2, hi, lo]).expect("PUBCOMP");
    // A sentinel: the next thing the subscriber sees is it, not "once" again.
    run("mosquitto_pub", port, &["-q", "2", "-t", "y/end", "-m", "end"], None);
    let (dup, next, payload) = read_qos2_publish(&mut sub, "y/end");
    assert_eq!((dup, &payload[..]), (false, &b"end"[..]));
    assert_ne!(next, 0);
}

/// A raw QoS 1 `PUBLISH` of `payload` to `topic` with identifier `id`.
fn qos1_publish(topic: &str, id: u16, payload: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(4 + topic.len() + payload.len());
    body.extend_from_slice(&(topic.len() as u16).to_be_bytes());
    body.extend_from_slice(topic.as_bytes());
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(payload);
    let mut packet = vec![0x32];
    let mut len = body.len();
    loop {
        let byte = (len % 128) as u8;
        len /= 128;
        packet.push(if len > 0 { byte | 0x80 } else { byte });
        if len == 0 {
            break;
        }
    }
    packet.extend(body);
    packet
}

/// Reads one QoS 1 `PUBLISH`: (DUP flag, packet identifier, payload).
fn read_qos1_publish(stream: &mut TcpStream, topic: &str) -> (bool, u16, Vec<u8>) {
    let head = read_n(stream, 1)[0];
    assert_eq!(head & 0xF6, 0x32, "a QoS 1 PUBLISH: {head:#x}");
    let (mut len, mut shift) = (0usize, 0);
    loop {
        let b = read_n(stream, 1)[0];
        len |= usize::from(b & 0x7F) << shift;
        shift += 7;
        if b & 0x80 == 0 {
            break;
        }
    }
    let body = read_n(stream, len);
    let t = 2 + topic.len();
    assert_eq!(&body[2..t], topic.as_bytes());
    (
        head & 0x08 != 0,
        u16::from_be_bytes([body[t], body[t + 1]]),
        body[t + 2..].to_vec(),
    )
}

fn a_backlog_past_the_output_cap_flows_without_acks(kind: DriverKind) {
    // With a store, a queued message starts only in a turn that ends with a commit (its
    // identifier is stored before it is written): when the driver has written a
    // subscriber's output down, it reports the write and the broker starts the next
    // ones. 1,000 messages of 16 KiB (16 MiB, past the kernel's socket buffers and the
    // 1 MiB output cap) reach a subscriber that reads them all and acknowledges none
    // (the window of 1,024 never closes); without that report they stopped at the cap.
    const N: u16 = 1_000;
    let dir = TempDir::new("mqtt-persist");
    let broker = start(kind, &dir.path, 0);
    let port = broker.port();
    let mut sub = raw_subscriber(port, "b-sub", "b/#");
    let publisher = std::thread::spawn(move || {
        let (mut publisher, ack) = raw_connect(port, "b-pub");
        assert_eq!(ack[..2], [0x20, 2]);
        for id in 1..=N {
            let mut payload = vec![b'x'; 16 * 1024];
            payload[..2].copy_from_slice(&id.to_be_bytes());
            publisher
                .write_all(&qos1_publish("b/a", id, &payload))
                .expect("PUBLISH");
        }
        for _ in 1..=N {
            assert_eq!(read_n(&mut publisher, 2), [0x40, 2], "PUBACK");
            read_n(&mut publisher, 2);
        }
    });
    for n in 1..=N {
        let (dup, _, payload) = read_qos1_publish(&mut sub, "b/a");
        assert!(!dup);
        assert_eq!(u16::from_be_bytes([payload[0], payload[1]]), n, "in order, none lost");
        assert_eq!(payload.len(), 16 * 1024);
    }
    publisher.join().expect("every message acknowledged to the publisher");
}
