//! `monocoque::mqtt::Client` against the real thing: mosquitto (a broker nobody here
//! wrote), started by the test on a free loopback port, on both drivers, in 3.1.1 and
//! 5.0.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::mqtt::{Client, ClientOptions, Error, ProtocolVersion, QoS, ReasonCode, Subscription};
use monocoque::ReconnectPolicy;
use support::mqtt::OurBroker;
use support::Mosquitto;

/// How long one step may take on a loaded machine before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(20);

both_drivers! {
    qos_0_1_2_round_trip_v311 => qos_0_1_2_round_trip_v311_uring, qos_0_1_2_round_trip_v311_mio;
    qos_0_1_2_round_trip_v5 => qos_0_1_2_round_trip_v5_uring, qos_0_1_2_round_trip_v5_mio;
    qos_0_1_2_round_trip_on_our_broker => qos_0_1_2_round_trip_on_our_broker_uring, qos_0_1_2_round_trip_on_our_broker_mio;
    retained_messages => retained_messages_uring, retained_messages_mio;
    persistent_session_across_client_reconnect => persistent_session_across_client_reconnect_uring, persistent_session_across_client_reconnect_mio;
    link_cut_resumes_the_session => link_cut_resumes_the_session_uring, link_cut_resumes_the_session_mio;
    broker_restart_resubscribes => broker_restart_resubscribes_uring, broker_restart_resubscribes_mio;
    qos2_is_not_duplicated => qos2_is_not_duplicated_uring, qos2_is_not_duplicated_mio;
    unsubscribe_and_refusals => unsubscribe_and_refusals_uring, unsubscribe_and_refusals_mio;
}

fn options(addr: SocketAddr, driver: DriverKind, version: ProtocolVersion, id: &str) -> ClientOptions {
    ClientOptions::from_url(&format!("mqtt://{addr}"))
        .unwrap()
        .driver(driver)
        .version(version)
        .client_id(id)
        .operation_timeout(PATIENCE)
        .connect_timeout(PATIENCE)
}

/// A client id unique to this test and driver (mosquitto is per test, but clearer logs).
fn id(name: &str, driver: DriverKind) -> String {
    format!("{name}-{driver}")
}

fn next(sub: &mut Subscription) -> monocoque::mqtt::Message {
    sub.next_message(PATIENCE)
        .expect("receives")
        .expect("a message within the patience")
}

fn round_trip(driver: DriverKind, version: ProtocolVersion, broker: SocketAddr) {
    let mut sub_client = Client::connect_with(options(broker, driver, version, &id("sub", driver))).unwrap();
    let mut sub = sub_client.subscribe("t/#", QoS::ExactlyOnce).unwrap();
    assert_eq!(sub.granted(), [ReasonCode::GrantedQoS2]);
    let mut publisher = Client::connect_with(options(broker, driver, version, &id("pub", driver))).unwrap();
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        // QoS 1/2 return once acknowledged (PUBACK / PUBCOMP).
        publisher
            .publish(&format!("t/{i}"), format!("m{i}"), qos, false)
            .unwrap();
    }
    publisher.flush().unwrap();
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        let m = next(&mut sub);
        assert_eq!(
            (&m.topic[..], &m.payload[..]),
            (format!("t/{i}").as_bytes(), format!("m{i}").as_bytes())
        );
        assert_eq!(m.qos, qos, "delivered at the publish's QoS (the subscription allows 2)");
        assert!(!m.retain);
    }
    // The same topic again: in 5.0 the second and third go as a Topic Alias with an
    // empty topic (mosquitto and ours allow 10), which the server must resolve
    // [MQTT-3.3.2-12]; our broker aliases them towards the subscriber too.
    for i in 0..3 {
        publisher
            .publish("t/same", format!("s{i}"), QoS::AtLeastOnce, false)
            .unwrap();
    }
    for i in 0..3 {
        let m = next(&mut sub);
        assert_eq!(
            (&m.topic[..], &m.payload[..]),
            (&b"t/same"[..], format!("s{i}").as_bytes())
        );
    }
    // A large payload, both ways.
    let big = vec![0xa5u8; 200_000];
    publisher
        .publish("t/big", big.clone(), QoS::AtLeastOnce, false)
        .unwrap();
    assert_eq!(next(&mut sub).payload, big);
    assert_eq!(sub.next_message(Duration::ZERO).unwrap(), None);
    publisher.close().unwrap();
    sub_client.close().unwrap();
}

fn qos_0_1_2_round_trip_v311(driver: DriverKind) {
    let broker = Mosquitto::start();
    round_trip(driver, ProtocolVersion::V3_1_1, broker.addr);
}

fn qos_0_1_2_round_trip_v5(driver: DriverKind) {
    let broker = Mosquitto::start();
    round_trip(driver, ProtocolVersion::V5, broker.addr);
}

/// Our client on our broker (`support::mqtt::OurBroker`), both versions: unlike
/// mosquitto, ours sends Topic Aliases to a 5.0 subscriber, which the client resolves.
fn qos_0_1_2_round_trip_on_our_broker(driver: DriverKind) {
    let broker = OurBroker::start(driver);
    round_trip(driver, ProtocolVersion::V3_1_1, broker.addr);
    round_trip(driver, ProtocolVersion::V5, broker.addr);
}

fn retained_messages(driver: DriverKind) {
    let broker = Mosquitto::start();
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let topic = format!("r/{version}");
        let mut publisher = Client::connect_with(options(broker.addr, driver, version, &id("p", driver))).unwrap();
        publisher.publish(&topic, "kept", QoS::AtLeastOnce, true).unwrap();
        publisher.close().unwrap();
        let mut client = Client::connect_with(options(broker.addr, driver, version, &id("s", driver))).unwrap();
        let mut sub = client.subscribe(&topic, QoS::AtLeastOnce).unwrap();
        let m = next(&mut sub);
        assert_eq!(&m.payload[..], b"kept");
        assert!(
            m.retain,
            "a retained message sent because of the subscription [MQTT-3.3.1-9]"
        );
        // An empty retained payload deletes it (5.0 [MQTT-3.3.1-6], 3.1.1 [MQTT-3.3.1-10]).
        client.publish(&topic, "", QoS::AtLeastOnce, true).unwrap();
        let m = next(&mut sub);
        assert!(m.payload.is_empty());
        drop(sub);
        let mut sub = client.subscribe(&topic, QoS::AtLeastOnce).unwrap();
        assert_eq!(sub.next_message(Duration::from_millis(500)).unwrap(), None, "deleted");
        client.close().unwrap();
    }
}

/// A subscriber with a persistent session closes; messages published meanwhile are
/// delivered when a client with its id comes back without a clean start, with
/// Session Present 1: the server resumes the session of a Clean Start 0 (5.0
/// [MQTT-3.1.2-5], 3.1.1 [MQTT-3.1.2-4]).
fn persistent_session_across_client_reconnect(driver: DriverKind) {
    let broker = Mosquitto::start();
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let name = id(&format!("persist{}", version.level()), driver);
        let persistent = |clean| {
            options(broker.addr, driver, version, &name)
                .clean_start(clean)
                .session_expiry(300)
        };
        // 3.1.1 keeps a session only without Clean Session [MQTT-3.1.2-4]; 5.0 keeps
        // it for the Session Expiry Interval even after a clean start (5.0 3.1.2.11.2).
        let mut client = Client::connect_with(persistent(version.is_v5())).unwrap();
        assert!(!client.session_present());
        let sub = client.subscribe("away/#", QoS::ExactlyOnce).unwrap();
        drop(sub);
        client.close().unwrap();

        let mut publisher = Client::connect_with(options(broker.addr, driver, version, &id("pp", driver))).unwrap();
        for i in 0..5 {
            let qos = if i % 2 == 0 { QoS::AtLeastOnce } else { QoS::ExactlyOnce };
            publisher.publish("away/x", format!("{i}"), qos, false).unwrap();
        }
        publisher.close().unwrap();

        let mut client = Client::connect_with(persistent(false)).unwrap();
        assert!(client.session_present(), "the server kept the session");
        // The subscription is the session's: a handle for it routes what was queued.
        let mut sub = client.subscribe("away/#", QoS::ExactlyOnce).unwrap();
        let got: Vec<String> = (0..5)
            .map(|_| String::from_utf8(next(&mut sub).payload.to_vec()).unwrap())
            .collect();
        assert_eq!(got, ["0", "1", "2", "3", "4"]);
        assert_eq!(sub.next_message(Duration::from_millis(300)).unwrap(), None, "each once");
        client.close().unwrap();
    }
}

/// A TCP proxy between the client and the broker whose connections the test can cut.
struct Proxy {
    addr: SocketAddr,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (c, s) = (Arc::clone(&conns), Arc::clone(&stop));
        thread::spawn(move || {
            for down in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(down) = down else { continue };
                let Ok(up) = TcpStream::connect(upstream) else { continue };
                c.lock()
                    .unwrap()
                    .extend([down.try_clone().unwrap(), up.try_clone().unwrap()]);
                for (mut from, mut to) in [(down.try_clone().unwrap(), up.try_clone().unwrap()), (up, down)] {
                    thread::spawn(move || {
                        let mut buf = [0u8; 16384];
                        while let Ok(n) = from.read(&mut buf) {
                            if n == 0 || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                        }
                        let _ = to.shutdown(Shutdown::Both);
                        let _ = from.shutdown(Shutdown::Both);
                    });
                }
            }
        });
        Proxy { addr, conns, stop }
    }

    /// Cuts every connection through it (both sides see the stream end).
    fn cut(&self) {
        for s in self.conns.lock().unwrap().drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        self.cut();
        let _ = TcpStream::connect(self.addr);
    }
}

/// The client's own link is cut; messages published while it is away are delivered by
/// the resumed session after the automatic reconnect (Session Present 1).
fn link_cut_resumes_the_session(driver: DriverKind) {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr);
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let reconnect = ReconnectPolicy {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
            ..ReconnectPolicy::default()
        };
        let o = options(
            proxy.addr,
            driver,
            version,
            &id(&format!("cut{}", version.level()), driver),
        )
        .clean_start(false)
        .session_expiry(300)
        .reconnect(reconnect);
        let mut client = Client::connect_with(o).unwrap();
        let mut sub = client.subscribe("cut/#", QoS::AtLeastOnce).unwrap();
        proxy.cut();
        let mut publisher = Client::connect_with(options(broker.addr, driver, version, &id("cp", driver))).unwrap();
        for i in 0..3 {
            publisher
                .publish("cut/x", format!("{i}"), QoS::AtLeastOnce, false)
                .unwrap();
        }
        let got: Vec<String> = (0..3)
            .map(|_| String::from_utf8(next(&mut sub).payload.to_vec()).unwrap())
            .collect();
        assert_eq!(got, ["0", "1", "2"]);
        assert_eq!(client.connections(), 2, "reconnected once");
        assert!(client.session_present(), "resumed");
        // Our own QoS 1 publish goes through the new link.
        client.publish("cut/self", "me", QoS::AtLeastOnce, false).unwrap();
        assert_eq!(&next(&mut sub).payload[..], b"me");
        publisher.close().unwrap();
        client.close().unwrap();
    }
}

/// The broker restarts (no persistence: the session is gone): the client reconnects,
/// sees Session Present 0, and subscribes again; messages published after that reach
/// it.
fn broker_restart_resubscribes(driver: DriverKind) {
    let mut broker = Mosquitto::start();
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let reconnect = ReconnectPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
            ..ReconnectPolicy::default()
        };
        let o = options(broker.addr, driver, version, &id("restart", driver))
            .clean_start(false)
            .session_expiry(300)
            .reconnect(reconnect);
        let mut client = Client::connect_with(o).unwrap();
        let mut sub = client.subscribe("rs/#", QoS::AtLeastOnce).unwrap();
        client.publish("rs/a", "before", QoS::AtLeastOnce, false).unwrap();
        assert_eq!(&next(&mut sub).payload[..], b"before");

        broker.restart();
        // Until our client has re-subscribed, publishes are lost to it: publish until
        // one arrives, then check the stream goes on in order.
        let mut publisher = Client::connect_with(options(broker.addr, driver, version, &id("rp", driver))).unwrap();
        let deadline = Instant::now() + PATIENCE;
        let first = loop {
            assert!(Instant::now() < deadline, "never resubscribed");
            publisher.publish("rs/a", "probe", QoS::AtLeastOnce, false).unwrap();
            if let Some(m) = sub.next_message(Duration::from_millis(200)).unwrap() {
                break m;
            }
        };
        assert_eq!(&first.payload[..], b"probe");
        assert!(client.connections() >= 2);
        assert!(
            !client.session_present(),
            "a restarted broker without persistence lost it"
        );
        while sub.next_message(Duration::from_millis(200)).unwrap().is_some() {}
        for i in 0..3 {
            publisher
                .publish("rs/b", format!("{i}"), QoS::AtLeastOnce, false)
                .unwrap();
        }
        for i in 0..3 {
            assert_eq!(next(&mut sub).payload, format!("{i}").as_bytes());
        }
        publisher.close().unwrap();
        client.close().unwrap();
    }
}

/// QoS 2 both ways, many messages, with the publisher's link cut mid-stream: every
/// message arrives exactly once [MQTT-4.3.3-10] (no duplicate from the resent PUBLISH
/// with DUP, [MQTT-4.4.0-1]).
fn qos2_is_not_duplicated(driver: DriverKind) {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(broker.addr);
    let version = ProtocolVersion::V5;
    let mut sub_client = Client::connect_with(options(broker.addr, driver, version, &id("q2s", driver))).unwrap();
    let mut sub = sub_client.subscribe("q2/#", QoS::ExactlyOnce).unwrap();
    let reconnect = ReconnectPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        ..ReconnectPolicy::default()
    };
    let o = options(proxy.addr, driver, version, &id("q2p", driver))
        .clean_start(false)
        .session_expiry(300)
        .reconnect(reconnect);
    let mut publisher = Client::connect_with(o).unwrap();
    let n = 200;
    for i in 0..n {
        if i == n / 2 {
            proxy.cut();
        }
        publisher
            .publish("q2/x", format!("{i}"), QoS::ExactlyOnce, false)
            .unwrap();
    }
    assert!(publisher.connections() >= 2, "the cut was felt");
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(
            String::from_utf8(next(&mut sub).payload.to_vec())
                .unwrap()
                .parse::<u32>()
                .unwrap(),
        );
    }
    assert_eq!(
        sub.next_message(Duration::from_millis(500)).unwrap(),
        None,
        "no duplicate"
    );
    got.sort_unstable();
    assert_eq!(got, (0..n).collect::<Vec<_>>());
    publisher.close().unwrap();
    sub_client.close().unwrap();
}

fn unsubscribe_and_refusals(driver: DriverKind) {
    let broker = Mosquitto::start();
    let version = ProtocolVersion::V5;
    let mut client = Client::connect_with(options(broker.addr, driver, version, &id("u", driver))).unwrap();
    let mut keep = client.subscribe("u/keep", QoS::AtMostOnce).unwrap();
    let gone = client.subscribe("u/gone", QoS::AtMostOnce).unwrap();
    gone.unsubscribe().unwrap();
    client.publish("u/gone", "x", QoS::AtLeastOnce, false).unwrap();
    client.publish("u/keep", "y", QoS::AtLeastOnce, false).unwrap();
    assert_eq!(&next(&mut keep).payload[..], b"y");
    assert_eq!(client.unrouted(), 0, "nothing came for the unsubscribed filter");
    // An invalid topic is refused before anything is sent; the connection stays.
    assert!(matches!(
        client.publish("a/+", "x", QoS::AtMostOnce, false),
        Err(Error::Refused(_))
    ));
    assert!(client.is_connected());
    client.close().unwrap();
}
