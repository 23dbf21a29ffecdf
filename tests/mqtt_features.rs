//! MQTT 5 features of our broker against clients nobody here wrote, on both drivers:
//! paho-mqtt (Python; `tests/support/mqtt_paho.py` drives it and prints what it saw as
//! JSON) for topic aliases, subscription identifiers, shared subscriptions, the
//! subscription options, will delay, redirection and an unknown authentication
//! method; `mosquitto_pub`/`mosquitto_sub` (5.0 and 3.1.1) against
//! `monocoque mqtt broker --config FILE` for users and the ACL; and, as no client here
//! speaks AUTH, our own codec on a plain socket for the enhanced authentication hook.
//!
//! Each test names the normative statements ([MQTT-x.y.z-n]) it checks.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::mqtt::{Broker, Stopper};
use monocoque::proto::mqtt::broker::{
    Access, AuthExchange, AuthStep, ConnectionConfig, EnhancedAuth, PasswordHash, Redirect,
};
use monocoque::proto::mqtt::{Codec, Connect, Packet, Properties, ProtocolVersion, Reason, ReasonCode};
use monocoque::proto::{IoArena, SegmentedBuffer};
use serde_json::Value;

/// How long one step may take on a loaded machine before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(30);

both_drivers! {
    topic_aliases_both_ways => aliases_uring, aliases_mio;
    subscription_identifiers_of_overlapping_subscriptions => subids_uring, subids_mio;
    shared_subscriptions_round_robin => shared_uring, shared_mio;
    no_local_retain_as_published_retain_handling => options_uring, options_mio;
    will_delay_cancelled_by_a_reconnect => will_delay_uring, will_delay_mio;
    redirection_and_unknown_auth_method => connack_uring, connack_mio;
    enhanced_authentication_through_the_body => enhanced_uring, enhanced_mio;
    config_file_users_and_acl_with_mosquitto_clients => config_uring, config_mio;
}

/// Our broker on its own thread (the driver is built there: io_uring is single-issuer).
struct OurBroker {
    addr: SocketAddr,
    stopper: Stopper,
    thread: Option<JoinHandle<()>>,
}

impl OurBroker {
    fn start(kind: DriverKind, access: Access) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let addr = SocketAddr::from(([127, 0, 0, 1], 0));
            let mut broker =
                Broker::bind_with_access(addr, kind, ConnectionConfig::default(), access).expect("bind the broker");
            let addr = broker.local_addr().expect("the broker's address");
            let stopper = broker.stopper().expect("a stopper");
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

/// Runs a paho scenario against `addr` and returns the JSON it printed.
fn paho(addr: SocketAddr, scenario: &str, extra: &[&str]) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/mqtt_paho.py");
    let mut child = Command::new(support::paho_python())
        .arg(script)
        .args([addr.ip().to_string(), addr.port().to_string(), scenario.to_string()])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let deadline = Instant::now() + PATIENCE * 2;
    while child.try_wait().expect("poll python3").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("python3 output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "paho {scenario} failed ({}): {stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("paho {scenario} printed {stdout:?}: {e}"))
}

/// [MQTT-3.2.2-17] Topic Alias Maximum announced in CONNACK; [MQTT-3.3.2-12] aliases
/// 1..=max accepted from paho (set, use, replace). Towards paho (maximum 2):
/// [MQTT-3.1.2-26, MQTT-3.3.2-11] never above 2, and the mapping paho would build from
/// what it receives gives back every topic. With `mosquitto_pub` (paho 1.6 does not
/// read a DISCONNECT reason without properties): an alias above the maximum ->
/// DISCONNECT 0x94, an unknown alias with an empty topic -> 0x82 (3.3.2.3.4).
fn topic_aliases_both_ways(kind: DriverKind) {
    let broker = OurBroker::start(kind, Access::default());
    let port = broker.addr.port().to_string();
    for (alias, topic, code) in [("11", "a", "148"), ("3", "", "130")] {
        let out = Command::new(support::require_binary("mosquitto_pub", "mosquitto-clients"))
            .args(["-h", "127.0.0.1", "-p", &port, "-V", "5", "-d", "-q", "1", "-m", "x"])
            .args(["-D", "publish", "topic-alias", alias, "-t", topic])
            .output()
            .expect("run mosquitto_pub");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("Received DISCONNECT ({code})")),
            "alias {alias}: {text}"
        );
    }
    let v = paho(broker.addr, "aliases", &[]);
    assert_eq!(v["announced"], 10, "{v}");
    let mut map = std::collections::HashMap::new();
    let mut resolved = Vec::new();
    let mut used_empty = false;
    for m in v["received"].as_array().expect("received") {
        let (topic, alias, payload) = (m[0].as_str().unwrap(), m[1].as_u64(), m[2].as_str().unwrap());
        if let Some(a) = alias {
            assert!((1..=2).contains(&a), "alias {a} above paho's maximum: {v}");
            if topic.is_empty() {
                used_empty = true;
            } else {
                map.insert(a, topic.to_string());
            }
        }
        let topic = if topic.is_empty() {
            map.get(&alias.expect("an empty topic has an alias"))
                .cloned()
                .expect("a known alias")
        } else {
            topic.to_string()
        };
        resolved.push(format!("{topic}={payload}"));
    }
    assert_eq!(
        resolved,
        ["al/a=m1", "al/a=m2", "al/b=m3", "al/b=m4", "al/c=m5", "al/a=m6", "al/c=m7", "al/b=m8", "al/c=m9"],
        "{v}"
    );
    assert!(used_empty, "the broker sent some topics as aliases only: {v}");
}

/// [MQTT-3.3.4-2] one copy at the highest QoS of overlapping subscriptions;
/// [MQTT-3.3.4-3, MQTT-3.3.4-4] with every matching Subscription Identifier; a
/// retained message sent on subscribe carries its subscription's identifier.
fn subscription_identifiers_of_overlapping_subscriptions(kind: DriverKind) {
    let broker = OurBroker::start(kind, Access::default());
    let v = paho(broker.addr, "subids", &[]);
    assert_eq!(v["retained"], serde_json::json!(["si/r", [1]]), "{v}");
    assert_eq!(v["messages"], serde_json::json!([["si/x", 1, [1, 2]]]), "{v}");
}

/// 4.8.2: one member of the group per message, round robin; no retained message on a
/// shared subscription; [MQTT-3.8.3-4] No Local on a shared subscription closes the
/// connection (0x82, which paho 1.6 cannot read: checked in the proto unit test);
/// CONNACK Shared Subscription Available 1.
fn shared_subscriptions_round_robin(kind: DriverKind) {
    let broker = OurBroker::start(kind, Access::default());
    let v = paho(broker.addr, "shared", &[]);
    assert_eq!(v["available"], 1, "{v}");
    assert_eq!(v["granted"], serde_json::json!([1]), "{v}");
    assert_eq!(v["watched"], 9, "{v}");
    let mut counts: Vec<u64> = v["counts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_u64().unwrap())
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [3, 3, 4], "10 messages among 3 members: {v}");
    assert_eq!(v["retained"], 0, "{v}");
    assert!(v["no_local"].as_u64().is_some_and(|rc| rc != 0), "disconnected: {v}");
}

/// [MQTT-3.8.3-3] No Local; [MQTT-3.3.1-12] RETAIN 0 without Retain As Published,
/// [MQTT-3.3.1-13] kept with it; [MQTT-3.3.1-9, -10, -11] Retain Handling 0, 1, 2
/// (each subscribed twice: 2, 1 and 0 retained copies).
fn no_local_retain_as_published_retain_handling(kind: DriverKind) {
    let broker = OurBroker::start(kind, Access::default());
    let v = paho(broker.addr, "options", &[]);
    assert_eq!(v["no_local"], serde_json::json!(["theirs"]), "{v}");
    assert_eq!(v["rap"], serde_json::json!([true]), "{v}");
    assert_eq!(v["not_rap"], serde_json::json!([false]), "{v}");
    assert_eq!(v["retain_handling"], serde_json::json!({"0": 2, "1": 1, "2": 0}), "{v}");
}

/// [MQTT-3.1.2-8] the will waits for its Will Delay Interval (2 s);
/// [MQTT-3.1.3-9] a reconnect within the delay cancels it: the first will to arrive
/// is the second client's, and no other follows.
fn will_delay_cancelled_by_a_reconnect(kind: DriverKind) {
    let broker = OurBroker::start(kind, Access::default());
    let v = paho(broker.addr, "will_delay", &[]);
    assert_eq!(v["first"], "gone2", "{v}");
    assert_eq!(v["then"], serde_json::json!([]), "{v}");
    let waited = v["waited"].as_f64().unwrap();
    assert!(
        waited >= 1.5,
        "published {waited} s after the close, before its 2 s delay"
    );
}

/// 4.11: CONNACK 0x9C/0x9D with the Server Reference; [MQTT-4.12.0-1] an
/// Authentication Method the broker does not know -> CONNACK 0x8C.
fn redirection_and_unknown_auth_method(kind: DriverKind) {
    for (permanent, code) in [(false, 0x9C), (true, 0x9D)] {
        let access = Access {
            redirect: Some(Redirect {
                server_reference: Bytes::from_static(b"elsewhere:1883"),
                permanent,
            }),
            ..Access::default()
        };
        let broker = OurBroker::start(kind, access);
        let v = paho(broker.addr, "connack", &[]);
        assert_eq!(v["code"], code, "{v}");
        assert_eq!(v["server_reference"], "elsewhere:1883", "{v}");
    }
    let broker = OurBroker::start(kind, Access::default());
    let v = paho(broker.addr, "connack", &["SCRAM-SHA-1"]);
    assert_eq!(v["code"], 0x8C, "{v}");
}

// ---- Enhanced authentication through the body ----

/// An embedder's mechanism: the server sends a nonce, the client answers with the
/// nonce and the shared secret.
struct NonceAuth;

struct NonceExchange {
    sent: bool,
}

impl EnhancedAuth for NonceAuth {
    fn start(&self, method: &[u8], _client: &[u8]) -> Option<Box<dyn AuthExchange>> {
        (method == b"X-NONCE").then(|| Box::new(NonceExchange { sent: false }) as Box<dyn AuthExchange>)
    }
}

impl AuthExchange for NonceExchange {
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep {
        if !self.sent {
            self.sent = true;
            return AuthStep::Continue(Bytes::from_static(b"nonce-1"));
        }
        if data == Some(b"nonce-1:secret") {
            AuthStep::Success(None)
        } else {
            AuthStep::Fail(ReasonCode::NotAuthorized)
        }
    }
}

/// A blocking client speaking our codec (no client nobody here wrote sends AUTH:
/// paho 1.6 and mosquitto_pub 2.0 have no enhanced authentication).
struct RawClient {
    stream: TcpStream,
    codec: Codec,
    input: SegmentedBuffer,
}

impl RawClient {
    fn connect(addr: SocketAddr) -> RawClient {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("read timeout");
        RawClient {
            stream,
            codec: Codec::client(ProtocolVersion::V5),
            input: SegmentedBuffer::new(),
        }
    }

    fn send(&mut self, packet: Packet) {
        let mut out = IoArena::new();
        self.codec.encode(&packet, &mut out).expect("encode");
        self.stream.write_all(&out.to_vec()).expect("write");
    }

    fn next(&mut self) -> Packet {
        loop {
            if let Some(p) = self.codec.decode(&mut self.input).expect("decode") {
                return p;
            }
            let mut buf = [0u8; 4096];
            let n = self.stream.read(&mut buf).expect("read");
            assert!(n > 0, "closed before a packet");
            self.input.push_slice(&buf[..n]);
        }
    }
}

fn auth(data: &'static [u8]) -> Packet {
    Packet::Auth(Reason {
        code: ReasonCode::ContinueAuthentication,
        properties: Properties {
            authentication_method: Some(Bytes::from_static(b"X-NONCE")),
            authentication_data: Some(Bytes::from_static(data)),
            ..Properties::default()
        },
    })
}

/// [MQTT-4.12.0-2] AUTH 0x18 with the method [MQTT-4.12.0-5], the client's AUTH,
/// then CONNACK 0 with the method; [MQTT-4.12.0-4] a wrong answer ends with CONNACK
/// 0x87 and the close: the hook an embedder passes to `Broker::bind_with_access`.
fn enhanced_authentication_through_the_body(kind: DriverKind) {
    let broker = OurBroker::start(
        kind,
        Access {
            enhanced: Some(Box::new(NonceAuth)),
            ..Access::default()
        },
    );
    let cases: [(&'static [u8], ReasonCode); 2] = [
        (b"nonce-1:secret", ReasonCode::Success),
        (b"nonce-1:guess", ReasonCode::NotAuthorized),
    ];
    for (answer, want) in cases {
        let mut client = RawClient::connect(broker.addr);
        client.send(Packet::Connect(Box::new(Connect {
            protocol: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 30,
            properties: Properties {
                authentication_method: Some(Bytes::from_static(b"X-NONCE")),
                ..Properties::default()
            },
            client_id: Bytes::from_static(b"enhanced"),
            will: None,
            username: None,
            password: None,
        })));
        let Packet::Auth(challenge) = client.next() else {
            panic!("expected AUTH")
        };
        assert_eq!(challenge.code, ReasonCode::ContinueAuthentication);
        assert_eq!(
            challenge.properties.authentication_data.as_deref(),
            Some(&b"nonce-1"[..])
        );
        client.send(auth(answer));
        let Packet::ConnAck(ack) = client.next() else {
            panic!("expected CONNACK")
        };
        assert_eq!(ack.code, want);
        if want == ReasonCode::Success {
            assert_eq!(ack.properties.authentication_method.as_deref(), Some(&b"X-NONCE"[..]));
            client.send(Packet::PingReq);
            assert_eq!(client.next(), Packet::PingResp);
        } else {
            let mut rest = [0u8; 16];
            assert_eq!(client.stream.read(&mut rest).expect("read the close"), 0, "closed");
        }
    }
}

// ---- The config file, with mosquitto's clients ----

/// `monocoque mqtt broker --config FILE` on a free port, killed on drop.
struct CliBroker {
    child: Child,
    port: u16,
}

impl CliBroker {
    fn start(kind: DriverKind, config: &Path) -> CliBroker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_monocoque"))
            .args([
                "mqtt",
                "broker",
                "--no-store",
                "--listen",
                "127.0.0.1:0",
                "--driver",
                kind.name(),
                "--config",
            ])
            .arg(config)
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn monocoque mqtt broker");
        let mut first = String::new();
        BufReader::new(child.stderr.take().expect("piped stderr"))
            .read_line(&mut first)
            .expect("read the first line");
        let port = first
            .strip_prefix("listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse::<SocketAddr>().ok())
            .unwrap_or_else(|| panic!("unexpected first line {first:?}"))
            .port();
        CliBroker { child, port }
    }

    /// Runs a mosquitto client to its end: (success, stdout + stderr).
    fn run(&self, binary: &str, args: &[&str]) -> (bool, String) {
        let out = Command::new(support::require_binary(binary, "mosquitto-clients"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
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

    /// Starts `mosquitto_sub` with `args` (debug on) and returns it once subscribed.
    fn subscriber(&self, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
        let mut child = Command::new(support::require_binary("stdbuf", "coreutils"))
            .arg("-oL")
            .arg(support::require_binary("mosquitto_sub", "mosquitto-clients"))
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-d", "-W", "30"])
            .args(["-F", "MSG|%t|%p"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto_sub");
        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let seen = wait_line(&rx, "received SUBACK");
        assert!(!seen.is_empty(), "mosquitto_sub never subscribed");
        (child, rx)
    }
}

impl Drop for CliBroker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Lines up to and with the first containing `needle` (empty if none came in time).
fn wait_line(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + PATIENCE;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            let hit = line.contains(needle);
            seen.push(line);
            if hit {
                return seen;
            }
        }
    }
    Vec::new()
}

/// `monocoque mqtt passwd` hashes a password read from standard input.
fn passwd(password: &str) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_monocoque"))
        .args(["mqtt", "passwd"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn monocoque mqtt passwd");
    writeln!(child.stdin.take().expect("stdin"), "{password}").expect("write the password");
    let out = child.wait_with_output().expect("passwd output");
    assert!(out.status.success());
    let line = String::from_utf8(out.stdout).expect("utf-8");
    let hash = line
        .trim()
        .strip_prefix("password_hash = \"")
        .and_then(|h| h.strip_suffix('"'))
        .unwrap_or_else(|| panic!("passwd printed {line:?}"));
    let parsed = PasswordHash::parse(hash).expect("a hash the config file reads");
    assert!(parsed.verify(password.as_bytes()) && !parsed.verify(b"other"));
    line.trim().to_string()
}

/// Users: [MQTT-3.1.4-2] a wrong password refused, CONNACK 0x86 (5.0) / 4 (3.1.1),
/// then closed [MQTT-3.2.2-7]. ACL: a forbidden subscription gets SUBACK 0x87 (5.0) /
/// 0x80 (3.1.1); a forbidden QoS 1 publish gets PUBACK 0x87 in 5.0 and is dropped
/// (acknowledged as usual) in 3.1.1; allowed traffic flows; `%c` patterns apply.
fn config_file_users_and_acl_with_mosquitto_clients(kind: DriverKind) {
    let dir = support::TempDir::new("mqtt-config");
    let file: PathBuf = dir.path.join("broker.toml");
    let alice = passwd("wonderland");
    let bob = passwd("builder");
    std::fs::write(
        &file,
        format!(
            "[limits]\ntopic_alias_maximum = 5\n\n\
             [[user]]\nname = \"alice\"\n{alice}\npublish = [\"sensors/alice/#\"]\nsubscribe = [\"sensors/#\", \"clients/#\"]\n\n\
             [[user]]\nname = \"bob\"\n{bob}\n\n\
             [acl]\nall = {{ publish = [\"clients/%c/#\"], subscribe = [\"clients/%c/#\"] }}\n"
        ),
    )
    .expect("write the config");
    let broker = CliBroker::start(kind, &file);
    let alice_v5 = ["-V", "5", "-u", "alice", "-P", "wonderland"];

    // Authentication.
    let (ok, text) = broker.run(
        "mosquitto_pub",
        &[
            "-V",
            "5",
            "-u",
            "alice",
            "-P",
            "nope",
            "-t",
            "sensors/alice/t",
            "-m",
            "x",
        ],
    );
    assert!(!ok && text.contains("Bad User Name or Password"), "{text}");
    let (ok, text) = broker.run(
        "mosquitto_pub",
        &["-V", "311", "-u", "bob", "-P", "nope", "-t", "x", "-m", "x"],
    );
    assert!(
        !ok && text.to_lowercase().contains("bad user name or password"),
        "{text}"
    );
    let (ok, text) = broker.run("mosquitto_pub", &["-V", "5", "-t", "x", "-m", "anonymous"]);
    assert!(
        !ok && text.contains("Bad User Name or Password"),
        "anonymous refused: {text}"
    );

    // A forbidden subscription, in each version.
    let (ok, text) = broker.run(
        "mosquitto_sub",
        &[
            "-V",
            "5",
            "-u",
            "alice",
            "-P",
            "wonderland",
            "-t",
            "secret/#",
            "-C",
            "1",
            "-W",
            "10",
        ],
    );
    assert!(
        text.contains("All subscription requests were denied"),
        "5.0 ({ok}): {text}"
    );
    let (ok, text) = broker.run(
        "mosquitto_sub",
        &[
            "-V",
            "311",
            "-u",
            "bob",
            "-P",
            "builder",
            "-t",
            "sensors/#",
            "-C",
            "1",
            "-W",
            "10",
        ],
    );
    assert!(
        text.contains("All subscription requests were denied"),
        "3.1.1 ({ok}): {text}"
    );

    // Alice's subscriber sees what she may publish, not what she may not.
    let (mut sub, lines) = broker.subscriber(&[&alice_v5[..], &["-t", "sensors/#", "-i", "watch"]].concat());
    let (ok, text) = broker.run(
        "mosquitto_pub",
        &[&alice_v5[..], &["-q", "1", "-t", "sensors/bob/t", "-m", "forged"]].concat(),
    );
    assert!(text.contains("Not authorized"), "5.0 PUBACK 0x87 ({ok}): {text}");
    let (ok, text) = broker.run(
        "mosquitto_pub",
        &[
            "-V",
            "311",
            "-u",
            "bob",
            "-P",
            "builder",
            "-q",
            "1",
            "-t",
            "sensors/bob/t",
            "-m",
            "dropped",
        ],
    );
    assert!(ok, "3.1.1: acknowledged as usual: {text}");
    let (ok, text) = broker.run(
        "mosquitto_pub",
        &[&alice_v5[..], &["-q", "1", "-t", "sensors/alice/t", "-m", "real"]].concat(),
    );
    assert!(ok, "{text}");
    let seen = wait_line(&lines, "MSG|");
    assert_eq!(
        seen.last().map(String::as_str),
        Some("MSG|sensors/alice/t|real"),
        "{seen:#?}"
    );
    assert!(
        !seen.iter().any(|l| l.contains("forged") || l.contains("dropped")),
        "{seen:#?}"
    );
    let _ = sub.kill();
    let _ = sub.wait();

    // A %c pattern: bob may publish under his client id only (QoS 0 refusals are
    // silent in both versions).
    let (mut all, lines) = broker.subscriber(&[&alice_v5[..], &["-t", "clients/#", "-i", "watch2"]].concat());
    let bob_as = |id: &'static str, topic: &'static str, payload: &'static str| {
        let (ok, text) = broker.run(
            "mosquitto_pub",
            &[
                "-V", "5", "-u", "bob", "-P", "builder", "-i", id, "-t", topic, "-m", payload,
            ],
        );
        assert!(ok, "{text}");
    };
    bob_as("b1", "clients/b2/x", "not mine");
    bob_as("b1", "clients/b1/x", "mine");
    let seen = wait_line(&lines, "MSG|");
    assert_eq!(
        seen.last().map(String::as_str),
        Some("MSG|clients/b1/x|mine"),
        "{seen:#?}"
    );
    assert!(!seen.iter().any(|l| l.contains("not mine")), "{seen:#?}");
    let _ = all.kill();
    let _ = all.wait();
}
