//! Our MQTT broker against clients nobody here wrote: `mosquitto_sub` and
//! `mosquitto_pub` (Debian `mosquitto-clients`), 3.1.1 and 5.0, on both drivers.
//!
//! The broker runs in a thread of the test on a free loopback port
//! (`support::mqtt::OurBroker`); the clients are child processes. A subscriber runs
//! with `-d`, and the test publishes only once its debug output shows the SUBACK
//! (line-buffered through `stdbuf`), so nothing depends on a sleep.
//! Messages are printed as `MSG|topic|qos|retain|payload` (`-F`) and compared exactly.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::proto::mqtt::broker::ConnectionConfig;
use support::mqtt::{mosquitto_pub, mosquitto_sub, CliBroker, OurBroker, Proc, PATIENCE};

both_drivers! {
    live_messages_at_the_lower_qos_across_versions => live_messages_uring, live_messages_mio;
    retained_set_replace_delete => retained_uring, retained_mio;
    will_on_an_unclean_close_not_on_disconnect => will_uring, will_mio;
    cli_broker_serves_mosquitto_clients => cli_broker_uring, cli_broker_mio;
    session_takeover_disconnects_the_first_client => takeover_uring, takeover_mio;
    silent_clients_are_closed_on_time => silent_uring, silent_mio;
    properties_pass_from_5_to_5_and_are_dropped_for_311 => properties_uring, properties_mio;
}

/// `mosquitto_sub` printing `MSG|topic|qos|retain|payload` (a later `-F` in `args`
/// wins), once subscribed.
fn sub(port: u16, args: &[&str]) -> Proc {
    mosquitto_sub(port, &[&["-F", "MSG|%t|%q|%r|%p"], args].concat())
}

fn live_messages_at_the_lower_qos_across_versions(kind: DriverKind) {
    let broker = OurBroker::start(kind);
    let port = broker.port();
    // A 3.1.1 subscriber at QoS 1, a 5.0 one at QoS 0, a 5.0 one at QoS 2 on a wildcard.
    let s311 = sub(port, &["-V", "311", "-q", "1", "-t", "live/t", "-C", "3"]);
    let s5q0 = sub(port, &["-V", "5", "-q", "0", "-t", "live/t", "-C", "3"]);
    let s5q2 = sub(port, &["-V", "5", "-q", "2", "-t", "live/+", "-C", "3"]);
    mosquitto_pub(port, &["-V", "5", "-q", "0", "-t", "live/t", "-m", "zero"]);
    mosquitto_pub(port, &["-V", "311", "-q", "1", "-t", "live/t", "-m", "one"]);
    mosquitto_pub(port, &["-V", "5", "-q", "2", "-t", "live/t", "-m", "two"]);
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
    let port = broker.port();
    mosquitto_pub(port, &["-V", "5", "-q", "1", "-r", "-t", "keep/a", "-m", "first"]);
    mosquitto_pub(port, &["-V", "311", "-q", "0", "-r", "-t", "keep/a", "-m", "second"]);
    mosquitto_pub(port, &["-V", "5", "-q", "1", "-r", "-t", "keep/b", "-m", "bee"]);
    // A subscriber gets the retained messages with RETAIN 1, at the lower QoS.
    let mut got = sub(port, &["-V", "311", "-q", "1", "-t", "keep/#", "-C", "2"]).messages();
    got.sort();
    assert_eq!(got, ["MSG|keep/a|0|1|second", "MSG|keep/b|1|1|bee"]);
    // An empty retained payload deletes keep/a; `--retained-only` exits at the first
    // live message, so what it printed before is exactly what was retained.
    mosquitto_pub(port, &["-V", "5", "-r", "-t", "keep/a", "-n"]);
    let sub = sub(port, &["-V", "5", "-q", "1", "-t", "keep/#", "--retained-only"]);
    mosquitto_pub(port, &["-V", "5", "-t", "keep/end", "-m", "end"]);
    assert_eq!(sub.messages(), ["MSG|keep/b|1|1|bee"]);
}

fn will_on_an_unclean_close_not_on_disconnect(kind: DriverKind) {
    let broker = OurBroker::start(kind);
    let port = broker.port();
    let watcher = sub(port, &["-V", "5", "-q", "1", "-t", "wills/#", "-C", "2"]);
    // A client with a will that disconnects normally (-C 1 then DISCONNECT): no will.
    let polite = sub(
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
    mosquitto_pub(port, &["-V", "5", "-t", "ping", "-m", "p"]);
    assert_eq!(polite.messages(), ["MSG|ping|0|0|p"]);
    // Clients killed without DISCONNECT: their wills are published, in both versions.
    for (version, topic) in [("5", "wills/v5"), ("311", "wills/v311")] {
        let mut rude = sub(
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
        rude.kill();
    }
    let mut got = watcher.messages();
    got.sort();
    assert_eq!(got, ["MSG|wills/v311|1|0|gone", "MSG|wills/v5|1|0|gone"]);
}

fn cli_broker_serves_mosquitto_clients(kind: DriverKind) {
    let broker = CliBroker::start::<&str>(kind, &[]);
    assert!(broker.first_line.contains(kind.name()), "{}", broker.first_line);
    let port = broker.port();
    mosquitto_pub(port, &["-V", "5", "-q", "1", "-r", "-t", "cli/t", "-m", "hello"]);
    let got = sub(port, &["-V", "311", "-q", "1", "-t", "cli/#", "-C", "1"]).messages();
    assert_eq!(got, ["MSG|cli/t|1|1|hello"]);
}

fn session_takeover_disconnects_the_first_client(kind: DriverKind) {
    let broker = OurBroker::start(kind);
    let port = broker.port();
    let mut first = sub(port, &["-V", "5", "-i", "dup", "-t", "take/t"]);
    let second = sub(port, &["-V", "5", "-i", "dup", "-t", "take/t", "-C", "1"]);
    // The first connection is told why it goes: DISCONNECT 0x8E, Session taken over.
    first.wait_for("Received DISCONNECT (142)");
    mosquitto_pub(port, &["-V", "311", "-t", "take/t", "-m", "to-the-second"]);
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
    let broker = OurBroker::with_limits(kind, config);
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
    let port = broker.port();
    let v5 = sub(port, &["-V", "5", "-t", "props", "-C", "1", "-F", "MSG|%t|%P|%C|%p"]);
    let v311 = sub(port, &["-V", "311", "-t", "props", "-C", "1"]);
    mosquitto_pub(
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
