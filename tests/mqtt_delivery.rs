//! Our MQTT broker's delivery guarantees against clients nobody here wrote
//! (`mosquitto_sub`/`mosquitto_pub`, 3.1.1 and 5.0) and against raw sockets where a
//! client must misbehave on purpose, on both drivers.
//!
//! Persistent sessions queue while the client is away and resume with resends; sessions
//! and messages expire; the broker's Receive Maximum, Server Keep Alive and packet size
//! limits hold. Each test names the normative statement it checks.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

use monocoque::driver::DriverKind;
use monocoque::proto::mqtt::broker::ConnectionConfig;
use support::mqtt::{mosquitto_pub, mosquitto_sub, mosquitto_sub_spawn, OurBroker, Proc};

/// How long one step may take on a loaded machine before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(20);

both_drivers! {
    offline_messages_wait_for_a_persistent_session => offline_uring, offline_mio;
    an_expired_session_loses_its_queue => session_expiry_uring, session_expiry_mio;
    an_expired_message_is_not_delivered_the_rest_carry_what_is_left => message_expiry_uring, message_expiry_mio;
    unacknowledged_messages_are_resent_with_dup_on_resumption => resend_uring, resend_mio;
    the_clients_receive_maximum_bounds_the_window => window_uring, window_mio;
    more_than_the_brokers_receive_maximum_gets_0x93 => receive_max_uring, receive_max_mio;
    a_server_keep_alive_cap_reaches_mosquitto_sub => server_keep_alive_uring, server_keep_alive_mio;
    a_100_mb_remaining_length_is_dropped_unread => huge_length_uring, huge_length_mio;
    a_disconnect_with_expiry_0_ends_the_session => disconnect_expiry_uring, disconnect_expiry_mio;
    paho_resumes_a_session_with_qos_1_and_2_in_order => paho_resume_uring, paho_resume_mio;
    a_takeover_continues_the_session_with_what_was_in_flight => takeover_session_uring, takeover_session_mio;
}

/// `mosquitto_sub` printing `MSG|topic|qos|payload` (a later `-F` in `args` wins),
/// once subscribed.
fn start_sub(port: u16, args: &[&str]) -> Proc {
    mosquitto_sub(port, &[&["-F", "MSG|%t|%q|%p"], args].concat())
}

/// [`start_sub`] without waiting for the SUBACK.
fn spawn_sub(port: u16, args: &[&str]) -> Proc {
    mosquitto_sub_spawn(port, &[&["-F", "MSG|%t|%q|%p"], args].concat())
}

fn offline_messages_wait_for_a_persistent_session(kind: DriverKind) {
    // [MQTT-3.1.2-5] (3.1.1, Clean Session 0) and [MQTT-3.1.2-23] (5.0, Session Expiry
    // Interval > 0): QoS 1 and 2 messages matching the session's subscriptions are kept
    // while the client is away and delivered, in order, when it resumes; QoS 0 is not.
    let broker = OurBroker::start(kind);
    let port = broker.port();
    for (version, id, expiry) in [("311", "persist-311", None), ("5", "persist-5", Some("60"))] {
        let topic = format!("off/{version}");
        let mut args = vec!["-V", version, "-c", "-i", id, "-q", "2", "-t", &topic];
        if let Some(x) = expiry {
            args.extend(["-x", x]);
        }
        let mut first = args.clone();
        first.push("-E");
        start_sub(port, &first).messages();
        mosquitto_pub(port, &["-V", "5", "-q", "1", "-t", &topic, "-m", "one"]);
        mosquitto_pub(port, &["-V", "311", "-q", "0", "-t", &topic, "-m", "zero"]);
        mosquitto_pub(port, &["-V", "311", "-q", "2", "-t", &topic, "-m", "two"]);
        args.extend(["-C", "2"]);
        let got = start_sub(port, &args).messages();
        assert_eq!(
            got,
            [format!("MSG|{topic}|1|one"), format!("MSG|{topic}|2|two")],
            "version {version}"
        );
    }
}

fn an_expired_session_loses_its_queue(kind: DriverKind) {
    // [MQTT-3.1.2-23]: the session lasts its Session Expiry Interval after the close,
    // and no longer: its queued message is gone with it.
    let broker = OurBroker::start(kind);
    let port = broker.port();
    let base = ["-V", "5", "-c", "-i", "expiring", "-q", "1", "-t", "exp/s"];
    let with = |extra: &[&'static str]| -> Vec<&str> { base.iter().copied().chain(extra.iter().copied()).collect() };
    // Control: within the interval, the queued message is there.
    start_sub(port, &with(&["-x", "60", "-E"])).messages();
    mosquitto_pub(port, &["-V", "5", "-q", "1", "-t", "exp/s", "-m", "kept"]);
    // The queued message comes right after the CONNACK, before the SUBACK.
    let sub = spawn_sub(port, &with(&["-x", "1", "-C", "1"]));
    assert_eq!(sub.messages(), ["MSG|exp/s|1|kept"]);
    // Now with 1 s: three seconds later the session is gone; the first message is the
    // one published after the new SUBACK.
    start_sub(port, &with(&["-x", "1", "-E"])).messages();
    mosquitto_pub(port, &["-V", "5", "-q", "1", "-t", "exp/s", "-m", "stale"]);
    std::thread::sleep(Duration::from_secs(3));
    let sub = start_sub(port, &with(&["-x", "60", "-C", "1"]));
    mosquitto_pub(port, &["-V", "5", "-q", "1", "-t", "exp/s", "-m", "fresh"]);
    assert_eq!(sub.messages(), ["MSG|exp/s|1|fresh"]);
}

fn an_expired_message_is_not_delivered_the_rest_carry_what_is_left(kind: DriverKind) {
    // [MQTT-3.3.2-5]: a message whose Message Expiry Interval passed before delivery
    // started is not delivered; [MQTT-3.3.2-6]: the others carry the interval minus
    // the time they waited.
    let broker = OurBroker::start(kind);
    let port = broker.port();
    let args = ["-V", "5", "-c", "-x", "600", "-i", "msg-exp", "-q", "1", "-t", "mexp"];
    let first: Vec<&str> = args.iter().copied().chain(["-E"]).collect();
    start_sub(port, &first).messages();
    let expiring = |secs: &'static str, payload: &'static str| {
        mosquitto_pub(
            port,
            &[
                "-V",
                "5",
                "-q",
                "1",
                "-t",
                "mexp",
                "-m",
                payload,
                "-D",
                "publish",
                "message-expiry-interval",
                secs,
            ],
        );
    };
    expiring("1", "short");
    expiring("600", "long");
    // The same for retained messages.
    for (secs, topic) in [("1", "mret/short"), ("600", "mret/long")] {
        mosquitto_pub(
            port,
            &[
                "-V",
                "5",
                "-r",
                "-t",
                topic,
                "-m",
                "r",
                "-D",
                "publish",
                "message-expiry-interval",
                secs,
            ],
        );
    }
    std::thread::sleep(Duration::from_secs(3));
    let again: Vec<&str> = args.iter().copied().chain(["-C", "1", "-F", "MSG|%p|%E"]).collect();
    // The queued message comes right after the CONNACK, before the SUBACK.
    let got = spawn_sub(port, &again).messages();
    assert_eq!(got.len(), 1, "{got:?}");
    let (payload, left) = got[0]
        .strip_prefix("MSG|")
        .and_then(|rest| rest.split_once('|'))
        .unwrap_or_else(|| panic!("unexpected line {:?}", got[0]));
    assert_eq!(payload, "long", "the expired message came first: {got:?}");
    let left: u32 = left.parse().unwrap_or_else(|_| panic!("no expiry interval in {got:?}"));
    // Three seconds waited at least; the slack for a loaded machine is generous.
    assert!((500..=597).contains(&left), "interval left {left}");
    // `--retained-only` exits at the first live message: what it printed before is
    // exactly what was retained and not expired.
    let sub = start_sub(port, &["-V", "5", "-t", "mret/#", "--retained-only", "-F", "MSG|%t|%E"]);
    mosquitto_pub(port, &["-V", "5", "-t", "mret/end", "-m", "end"]);
    let got = sub.messages();
    assert_eq!(got.len(), 1, "{got:?}");
    let left: u32 = got[0]
        .strip_prefix("MSG|mret/long|")
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("unexpected {got:?}"));
    assert!((500..=597).contains(&left), "retained interval left {left}");
}

fn a_disconnect_with_expiry_0_ends_the_session(kind: DriverKind) {
    // [MQTT-3.1.2-23]: the DISCONNECT's Session Expiry Interval replaces the CONNECT's;
    // 0 ends the session at once, so nothing is queued for the next connection.
    let broker = OurBroker::start(kind);
    let port = broker.port();
    let args = ["-V", "5", "-c", "-x", "600", "-i", "bye-now", "-q", "1", "-t", "bye"];
    let first: Vec<&str> = args
        .iter()
        .copied()
        .chain(["-E", "-D", "disconnect", "session-expiry-interval", "0"])
        .collect();
    start_sub(port, &first).messages();
    mosquitto_pub(
        port,
        &["-V", "5", "-q", "1", "-t", "bye", "-m", "dropped-with-the-session"],
    );
    let sub = start_sub(port, &args.iter().copied().chain(["-C", "1"]).collect::<Vec<_>>());
    mosquitto_pub(port, &["-V", "5", "-q", "1", "-t", "bye", "-m", "live"]);
    assert_eq!(sub.messages(), ["MSG|bye|1|live"]);
}

/// A Python interpreter that has paho-mqtt: `python3` on PATH, else Debian's.
fn paho_python() -> &'static str {
    for candidate in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import paho.mqtt.client"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return candidate;
        }
    }
    panic!("no python3 with paho-mqtt: install the Debian package `python3-paho-mqtt` (scripts/test does this)");
}

fn paho_resumes_a_session_with_qos_1_and_2_in_order(kind: DriverKind) {
    // paho-mqtt, 5.0 (Session Expiry 300) and 3.1.1 (Clean Session 0): session present
    // on resumption ([MQTT-3.2.2-3]; 3.1.1: [MQTT-3.2.2-2]); [MQTT-3.1.2-5] (3.1.1) /
    // [MQTT-3.1.2-23] (5.0) the messages
    // published while it was away all arrive, once each (QoS 2 exactly once), and in
    // the order published for each QoS [MQTT-4.6.0-6] (paho hands a QoS 2 message to
    // the application at PUBREL, so the two QoS interleave differently).
    let broker = OurBroker::start(kind);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/paho/resume.py");
    for version in ["5", "311"] {
        let out = Command::new(paho_python())
            .args([script, &broker.port().to_string(), version])
            .output()
            .expect("run the paho script");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "paho {version} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<&str> = stdout.lines().collect();
        assert_eq!(
            lines[..2],
            ["first present=0 rc=0", "again present=1 rc=0"],
            "{version}"
        );
        let got = &lines[2..];
        let of_qos = |q: &str| -> Vec<&str> { got.iter().copied().filter(|l| l.ends_with(q)).collect() };
        assert_eq!(
            of_qos("qos=1"),
            ["got m0 qos=1", "got m2 qos=1", "got m4 qos=1"],
            "{version}: {got:?}"
        );
        assert_eq!(
            of_qos("qos=2"),
            ["got m1 qos=2", "got m3 qos=2", "got m5 qos=2"],
            "{version}: {got:?}"
        );
        assert_eq!(got.len(), 6, "{version}: nothing twice: {got:?}");
    }
}

// ---- raw clients: what no well-behaved client would do ----

/// A raw MQTT client over a blocking socket.
struct Raw {
    stream: TcpStream,
    buf: Vec<u8>,
}

/// One packet read whole: its first byte and its body.
#[derive(Debug, PartialEq, Eq)]
struct RawPacket {
    header: u8,
    body: Vec<u8>,
}

impl Raw {
    fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("a read timeout");
        Raw {
            stream,
            buf: Vec::new(),
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next packet, or `None` once the broker closed the connection.
    fn next(&mut self) -> Option<RawPacket> {
        loop {
            if let Some((packet, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(packet);
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("no packet from the broker: {e} (buffered {:?})", self.buf),
            }
        }
    }

    /// Whether nothing (not even bytes already read) arrives within `wait`.
    fn quiet_for(&mut self, wait: Duration) -> bool {
        if !self.buf.is_empty() {
            return false;
        }
        self.stream.set_read_timeout(Some(wait)).expect("a read timeout");
        let mut chunk = [0u8; 64];
        let quiet = match self.stream.read(&mut chunk) {
            Ok(n) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n == 0
            }
            Err(e) => matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        };
        self.stream.set_read_timeout(Some(PATIENCE)).expect("a read timeout");
        quiet
    }
}

fn parse(buf: &[u8]) -> Option<(RawPacket, usize)> {
    let mut len = 0usize;
    let mut i = 1;
    loop {
        let b = *buf.get(i)?;
        len |= usize::from(b & 0x7f) << (7 * (i - 1));
        i += 1;
        if b & 0x80 == 0 {
            break;
        }
    }
    let end = i + len;
    (buf.len() >= end).then(|| {
        (
            RawPacket {
                header: buf[0],
                body: buf[i..end].to_vec(),
            },
            end,
        )
    })
}

/// A packet with its fixed header (bodies here are under 128 bytes).
fn packet(header: u8, body: &[u8]) -> Vec<u8> {
    assert!(body.len() < 128);
    let mut p = vec![header, body.len() as u8];
    p.extend_from_slice(body);
    p
}

fn string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

/// CONNECT: level 4 or 5, Clean Session/Start bit, keep alive 0, `props` (5.0 only).
fn connect_packet(level: u8, clean: bool, id: &str, props: &[u8]) -> Vec<u8> {
    let mut body = string("MQTT");
    body.push(level);
    body.push(if clean { 0x02 } else { 0x00 });
    body.extend_from_slice(&[0, 0]);
    if level == 5 {
        body.push(props.len() as u8);
        body.extend_from_slice(props);
    }
    body.extend_from_slice(&string(id));
    packet(0x10, &body)
}

fn subscribe_packet(level: u8, filter: &str, qos: u8) -> Vec<u8> {
    let mut body = vec![0, 1];
    if level == 5 {
        body.push(0);
    }
    body.extend_from_slice(&string(filter));
    body.push(qos);
    packet(0x82, &body)
}

/// Connects and subscribes; returns the client and its CONNACK.
fn raw_session(
    addr: SocketAddr,
    level: u8,
    clean: bool,
    id: &str,
    props: &[u8],
    sub: Option<(&str, u8)>,
) -> (Raw, RawPacket) {
    let mut c = Raw::connect(addr);
    c.send(&connect_packet(level, clean, id, props));
    let ack = c.next().expect("a CONNACK");
    assert_eq!(ack.header, 0x20, "{ack:?}");
    if let Some((filter, qos)) = sub {
        c.send(&subscribe_packet(level, filter, qos));
        assert_eq!(c.next().expect("a SUBACK").header, 0x90);
    }
    (c, ack)
}

/// A PUBLISH's (flags, packet id, payload), for QoS 1 and 2 on a level 4 client.
fn publish_fields(p: &RawPacket) -> (u8, u16, Vec<u8>) {
    assert_eq!(p.header & 0xf0, 0x30, "{p:?}");
    let tlen = usize::from(u16::from_be_bytes([p.body[0], p.body[1]]));
    let id = u16::from_be_bytes([p.body[2 + tlen], p.body[3 + tlen]]);
    (p.header & 0x0f, id, p.body[4 + tlen..].to_vec())
}

fn unacknowledged_messages_are_resent_with_dup_on_resumption(kind: DriverKind) {
    // [MQTT-4.4.0-1]: on resumption (session present: [MQTT-3.2.2-3], 3.1.1's
    // [MQTT-3.2.2-2]) the unacknowledged
    // PUBLISH is resent with its original identifier and DUP 1 [MQTT-3.3.1-1], the
    // PUBREL of a message the client received is resent, then what queued meanwhile.
    let broker = OurBroker::start(kind);
    let (mut sub, ack) = raw_session(broker.addr, 4, false, "raw-resend", &[], Some(("rs/t", 2)));
    assert_eq!(ack.body, [0, 0], "a new session");
    mosquitto_pub(broker.port(), &["-V", "311", "-q", "2", "-t", "rs/t", "-m", "first"]);
    mosquitto_pub(broker.port(), &["-V", "311", "-q", "2", "-t", "rs/t", "-m", "second"]);
    let first = publish_fields(&sub.next().expect("first"));
    let second = publish_fields(&sub.next().expect("second"));
    assert_eq!((first.0, &first.2[..]), (0x04, &b"first"[..]), "QoS 2, DUP 0");
    // PUBREC the second only, then vanish without DISCONNECT.
    sub.send(&packet(0x50, &second.1.to_be_bytes()));
    let rel = sub.next().expect("PUBREL");
    assert_eq!(
        rel,
        RawPacket {
            header: 0x62,
            body: second.1.to_be_bytes().to_vec()
        }
    );
    drop(sub);
    mosquitto_pub(broker.port(), &["-V", "311", "-q", "1", "-t", "rs/t", "-m", "third"]);
    let (mut again, ack) = raw_session(broker.addr, 4, false, "raw-resend", &[], None);
    assert_eq!(ack.body, [1, 0], "session present");
    let resent = publish_fields(&again.next().expect("the resend"));
    assert_eq!(resent, (0x0c, first.1, b"first".to_vec()), "DUP 1, QoS 2, same id");
    let rel = again.next().expect("PUBREL again");
    assert_eq!(
        rel,
        RawPacket {
            header: 0x62,
            body: second.1.to_be_bytes().to_vec()
        }
    );
    let third = publish_fields(&again.next().expect("the queued one"));
    assert_eq!((third.0, &third.2[..]), (0x02, &b"third"[..]), "QoS 1, DUP 0");
    // Nothing is resent while the connection lasts, however long [MQTT-4.4.0-1].
    assert!(again.quiet_for(Duration::from_secs(2)), "resent on a timer");
}

fn the_clients_receive_maximum_bounds_the_window(kind: DriverKind) {
    // [MQTT-3.3.4-9]: no more unacknowledged QoS 1/2 PUBLISH than the client's Receive
    // Maximum (here 2); the third follows the first PUBACK.
    let broker = OurBroker::start(kind);
    let (mut sub, _) = raw_session(broker.addr, 5, true, "raw-window", &[0x21, 0, 2], Some(("win", 1)));
    for m in ["a", "b", "c"] {
        mosquitto_pub(broker.port(), &["-V", "5", "-q", "1", "-t", "win", "-m", m]);
    }
    let a = sub.next().expect("a");
    let b = sub.next().expect("b");
    assert!(
        sub.quiet_for(Duration::from_secs(2)),
        "a third PUBLISH beyond the window"
    );
    // Acknowledge the first (5.0 PUBACK: the id, success implied).
    assert_eq!((a.body.last(), b.body.last()), (Some(&b'a'), Some(&b'b')));
    // The packet identifier follows the topic "win".
    let id = |p: &RawPacket| [p.body[2 + 3], p.body[3 + 3]];
    sub.send(&packet(0x40, &id(&a)));
    let c = sub.next().expect("c once a window slot frees");
    assert_eq!(c.body.last(), Some(&b'c'));
}

fn more_than_the_brokers_receive_maximum_gets_0x93(kind: DriverKind) {
    // The CONNACK announces the broker's Receive Maximum (2 here); a client with more
    // QoS 2 messages unreleased gets DISCONNECT 0x93 (5.0 §3.3.4) and the close.
    let config = ConnectionConfig {
        receive_maximum: 2,
        ..ConnectionConfig::default()
    };
    let broker = OurBroker::with_limits(kind, config);
    let (mut c, ack) = raw_session(broker.addr, 5, true, "raw-flood", &[], None);
    // CONNACK: flags, code, properties holding Receive Maximum (0x21) = 2.
    assert!(ack.body.windows(3).any(|w| w == [0x21, 0, 2]), "{ack:?}");
    for id in 1u16..=2 {
        let mut body = string("rm");
        body.extend_from_slice(&id.to_be_bytes());
        body.push(0);
        body.push(b'x');
        c.send(&packet(0x34, &body));
        assert_eq!(c.next().expect("PUBREC").header, 0x50);
    }
    let mut body = string("rm");
    body.extend_from_slice(&3u16.to_be_bytes());
    body.extend_from_slice(&[0, b'x']);
    c.send(&packet(0x34, &body));
    assert_eq!(
        c.next(),
        Some(RawPacket {
            header: 0xe0,
            body: vec![0x93]
        })
    );
    assert_eq!(c.next(), None, "then the close");
}

fn a_server_keep_alive_cap_reaches_mosquitto_sub(kind: DriverKind) {
    // [MQTT-3.2.2-21]: a 5.0 client asking for 600 s uses the broker's cap (1 s): it
    // pings within seconds. A 3.1.1 client over the cap is refused (mosquitto's
    // max_keepalive behaviour).
    let config = ConnectionConfig {
        max_keep_alive: Some(1),
        ..ConnectionConfig::default()
    };
    let broker = OurBroker::with_limits(kind, config);
    let mut v5 = start_sub(broker.port(), &["-V", "5", "-k", "600", "-t", "ka"]);
    v5.wait_for("sending PINGREQ");
    v5.wait_for("received PINGRESP");
    let mut v311 = spawn_sub(broker.port(), &["-V", "311", "-k", "600", "-t", "ka"]);
    v311.wait_for("identifier rejected");
}

fn a_100_mb_remaining_length_is_dropped_unread(kind: DriverKind) {
    // The Maximum Packet Size is checked from the fixed header: a PUBLISH announcing
    // 100,000,000 bytes closes the connection (5.0: DISCONNECT 0x95 first) while only
    // its first bytes were sent, so nothing waited for, or allocated, the body.
    let broker = OurBroker::start(kind);
    for level in [4u8, 5] {
        let (mut c, _) = raw_session(broker.addr, level, true, "huge", &[], None);
        c.send(b"\x30\x80\xc2\xd7\x2f\x00\x01t");
        let before_close = c.next();
        if level == 5 {
            assert_eq!(
                before_close,
                Some(RawPacket {
                    header: 0xe0,
                    body: vec![0x95]
                })
            );
            assert_eq!(c.next(), None);
        } else {
            assert_eq!(before_close, None, "3.1.1: closed without a word");
        }
    }
    // The broker still serves.
    let sub = start_sub(broker.port(), &["-V", "311", "-t", "after", "-C", "1"]);
    mosquitto_pub(broker.port(), &["-t", "after", "-m", "ok"]);
    assert_eq!(sub.messages(), ["MSG|after|0|ok"]);
}

fn a_takeover_continues_the_session_with_what_was_in_flight(kind: DriverKind) {
    // [MQTT-3.1.4-3]: a second CONNECT with the client id disconnects the first (5.0:
    // DISCONNECT 0x8E, Session taken over); with Clean Start 0 the session continues
    // on the new connection, the unacknowledged message resent with DUP 1
    // [MQTT-4.4.0-1].
    let broker = OurBroker::start(kind);
    // Session Expiry Interval (0x11) = 60.
    let expiry = [0x11, 0, 0, 0, 60];
    let (mut first, _) = raw_session(broker.addr, 5, true, "taken", &expiry, Some(("tk", 1)));
    mosquitto_pub(broker.port(), &["-V", "5", "-q", "1", "-t", "tk", "-m", "held"]);
    let held = first.next().expect("the message");
    assert_eq!(held.header, 0x32, "QoS 1, DUP 0: {held:?}");
    let (mut second, ack) = raw_session(broker.addr, 5, false, "taken", &expiry, None);
    assert_eq!(ack.body[0], 1, "session present");
    assert_eq!(
        first.next(),
        Some(RawPacket {
            header: 0xe0,
            body: vec![0x8e]
        })
    );
    assert_eq!(first.next(), None, "then the close");
    let resent = second.next().expect("the resend");
    assert_eq!(resent.header, 0x3a, "QoS 1, DUP 1: {resent:?}");
    assert_eq!(resent.body, held.body, "same identifier, same message");
    // The subscription moved too.
    mosquitto_pub(broker.port(), &["-V", "5", "-q", "1", "-t", "tk", "-m", "next"]);
    let next = second.next().expect("the next message");
    assert_eq!((next.header, next.body.last()), (0x32, Some(&b't')));
}
