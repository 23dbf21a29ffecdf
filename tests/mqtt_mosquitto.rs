//! The MQTT codec against the real broker: mosquitto, started by the test on a free
//! loopback port, on both drivers.
//!
//! A minimal sans-IO session ([`Peer`]) written here encodes our CONNECT, SUBSCRIBE,
//! PUBLISH (QoS 0, 1, 2 with their acknowledgements), PINGREQ, UNSUBSCRIBE and
//! DISCONNECT with [`Encoder`], and decodes everything mosquitto sends with our
//! [`Decoder`]: for 3.1, 3.1.1 and 5.0. A message published by `mosquitto_pub` (every
//! byte value in the payload, 5.0 properties) must come out of our decoder exactly.

mod support;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::{AnyDriver, DriverKind};
use monocoque::proto::mqtt::{
    Ack, Codec, Connect, DecodeError, Packet, Properties, ProtocolVersion, Publish, QoS, Reason, ReasonCode, Subscribe,
    Subscription, SubscriptionOptions, Unsubscribe,
};
use monocoque::proto::{Activity, ConnId, Driver, IoArena, SegmentedBuffer, Session};
use support::Mosquitto;

/// How long one step may take on a loaded machine before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(20);

/// What the peer reports: a packet, or why the stream ended.
#[derive(Debug)]
enum Event {
    Packet(Box<Packet>),
    Error(DecodeError),
    Eof,
    /// The socket failed (a reset).
    Failed(String),
}

/// A client connection: our codec, the received bytes, the arena to send.
struct Peer {
    codec: Codec,
    input: SegmentedBuffer,
    out: IoArena,
    events: VecDeque<Event>,
    closed: bool,
    /// Every byte received, for diagnostics.
    received: usize,
}

impl Peer {
    fn new(version: ProtocolVersion) -> Self {
        Peer {
            codec: Codec::client(version),
            input: SegmentedBuffer::new(),
            out: IoArena::new(),
            events: VecDeque::new(),
            closed: false,
            received: 0,
        }
    }

    fn send(&mut self, packet: &Packet) {
        self.codec
            .encode(packet, &mut self.out)
            .unwrap_or_else(|e| panic!("encoding {packet:?}: {e}"));
    }
}

impl Session for Peer {
    type Event = Event;

    fn handle_input(&mut self, data: Bytes, _now: Instant) {
        self.received += data.len();
        self.input.push(data);
        while !self.closed {
            match self.codec.decode(&mut self.input) {
                Ok(Some(packet)) => self.events.push_back(Event::Packet(Box::new(packet))),
                Ok(None) => break,
                Err(e) => {
                    let e = match e {
                        monocoque::proto::mqtt::CodecError::Decode(d) => d,
                        other => panic!("decode returned {other}"),
                    };
                    self.events.push_back(Event::Error(e));
                    self.closed = true;
                }
            }
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        if !self.closed {
            self.events.push_back(Event::Eof);
        }
        self.closed = true;
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        (!self.out.is_empty()).then_some(&mut self.out)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn is_closed(&self) -> bool {
        self.closed
    }
}

/// One connection to mosquitto on a driver of `kind`.
struct Link {
    kind: DriverKind,
    version: ProtocolVersion,
    driver: AnyDriver<Peer>,
    conn: ConnId,
    activities: Vec<Activity>,
}

impl Link {
    fn connect(kind: DriverKind, version: ProtocolVersion, addr: SocketAddr) -> Self {
        let mut driver = AnyDriver::new(kind).unwrap_or_else(|e| panic!("creating the {kind} driver: {e}"));
        let conn = driver.connect(addr, Peer::new(version)).expect("connect");
        Link {
            kind,
            version,
            driver,
            conn,
            activities: Vec::new(),
        }
    }

    fn send(&mut self, packet: Packet) {
        self.driver
            .session_for_output(self.conn)
            .expect("session")
            .send(&packet);
    }

    /// The next event, turning the driver until there is one.
    fn next_event(&mut self) -> Event {
        self.next_event_within(PATIENCE).unwrap_or_else(|| {
            panic!(
                "{}/{}: nothing from mosquitto within {PATIENCE:?}",
                self.kind, self.version
            )
        })
    }

    /// The next event, or `None` once `wait` has passed without one.
    fn next_event_within(&mut self, wait: Duration) -> Option<Event> {
        let deadline = Instant::now() + wait;
        loop {
            if let Some(e) = self.driver.session_for_output(self.conn).expect("session").poll_event() {
                return Some(e);
            }
            if Instant::now() >= deadline {
                return None;
            }
            self.activities.clear();
            self.driver.turn(Some(deadline), &mut self.activities).expect("turn");
            for a in &self.activities {
                if let Activity::Closed { error: Some(e), .. } = a {
                    return Some(Event::Failed(e.to_string()));
                }
            }
        }
    }

    /// The next packet; an error or the end of the stream fails the test.
    fn next(&mut self) -> Packet {
        match self.next_event() {
            Event::Packet(p) => *p,
            Event::Error(e) => panic!(
                "{}/{}: our decoder refused mosquitto's bytes: {e} (reason {})",
                self.kind,
                self.version,
                e.reason_code()
            ),
            Event::Failed(e) => panic!("{}/{}: the connection failed: {e}", self.kind, self.version),
            other => panic!("{}/{}: expected a packet, got {other:?}", self.kind, self.version),
        }
    }
}

fn s(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

fn connect_packet(version: ProtocolVersion, client_id: &str) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 30,
        properties: if version.is_v5() {
            Properties {
                receive_maximum: Some(10),
                maximum_packet_size: Some(1 << 20),
                topic_alias_maximum: Some(0),
                user_properties: vec![(s("app"), s("monocoque"))],
                ..Properties::default()
            }
        } else {
            Properties::default()
        },
        client_id: s(client_id),
        will: None,
        username: None,
        password: None,
    }))
}

/// The 5.0 properties of the PUBLISH we send, which mosquitto forwards.
fn app_properties() -> Properties {
    Properties {
        payload_format_indicator: Some(true),
        message_expiry_interval: Some(300),
        content_type: Some(s("text/plain")),
        response_topic: Some(s("replies/1")),
        correlation_data: Some(Bytes::from_static(b"\x00\x01\xfe\xff")),
        user_properties: vec![(s("k"), s("v")), (s("k"), s("w")), (s("ü"), s("€"))],
        ..Properties::default()
    }
}

fn publish_packet(version: ProtocolVersion, topic: &str, qos: QoS, id: u16, payload: &'static [u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: s(topic),
        packet_id: if qos == QoS::AtMostOnce { 0 } else { id },
        properties: if version.is_v5() {
            app_properties()
        } else {
            Properties::default()
        },
        payload: Bytes::from_static(payload),
    })
}

/// Checks a PUBLISH mosquitto delivered to our subscription against what was sent.
fn check_delivery(version: ProtocolVersion, got: &Publish, topic: &str, qos: QoS, payload: &[u8]) {
    assert_eq!(
        (&got.topic[..], &got.payload[..], got.qos),
        (topic.as_bytes(), payload, qos)
    );
    assert!(!got.retain && !got.dup);
    assert_eq!(got.packet_id != 0, qos != QoS::AtMostOnce);
    if version.is_v5() {
        let sent = app_properties();
        let p = &got.properties;
        assert_eq!(p.subscription_identifiers, [42], "the SUBSCRIBE's identifier");
        assert_eq!(p.user_properties, sent.user_properties);
        assert_eq!(
            (
                &p.content_type,
                &p.response_topic,
                &p.correlation_data,
                p.payload_format_indicator
            ),
            (
                &sent.content_type,
                &sent.response_topic,
                &sent.correlation_data,
                Some(true)
            )
        );
        // mosquitto forwards the time left.
        assert!(
            matches!(p.message_expiry_interval, Some(1..=300)),
            "{:?}",
            p.message_expiry_interval
        );
    } else {
        assert!(got.properties.is_empty());
    }
}

fn session(kind: DriverKind, version: ProtocolVersion) {
    let broker = Mosquitto::start();
    let tag = format!("{kind}-{}", version.level());
    let mut link = Link::connect(kind, version, broker.addr);
    let v5 = version.is_v5();

    // CONNECT -> CONNACK.
    link.send(connect_packet(version, &format!("mono-{tag}")));
    let Packet::ConnAck(ack) = link.next() else {
        panic!("{tag}: expected CONNACK")
    };
    assert_eq!(
        (ack.code, ack.session_present),
        (ReasonCode::Success, false),
        "{tag}: {ack:?}"
    );
    if v5 {
        // mosquitto 2 announces its limits; whatever it sends decoded into typed fields.
        assert!(ack.properties.user_properties.is_empty());
    }

    // SUBSCRIBE -> SUBACK.
    let filter = format!("mono/{tag}/#");
    link.send(Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: if v5 {
            Properties {
                subscription_identifiers: vec![42],
                ..Properties::default()
            }
        } else {
            Properties::default()
        },
        subscriptions: vec![
            Subscription {
                filter: s(&filter),
                options: SubscriptionOptions::qos(QoS::ExactlyOnce),
            },
            Subscription {
                filter: s("mono/other/+"),
                options: SubscriptionOptions::qos(QoS::AtMostOnce),
            },
        ],
    }));
    let Packet::SubAck(sub) = link.next() else {
        panic!("{tag}: expected SUBACK")
    };
    assert_eq!(sub.packet_id, 1);
    assert_eq!(sub.codes, [ReasonCode::GrantedQoS2, ReasonCode::Success]);

    // QoS 0 out, QoS 0 in.
    let topic = format!("mono/{tag}/zero");
    link.send(publish_packet(version, &topic, QoS::AtMostOnce, 0, b"zero"));
    let Packet::Publish(p) = link.next() else {
        panic!("{tag}: expected PUBLISH")
    };
    check_delivery(version, &p, &topic, QoS::AtMostOnce, b"zero");

    // QoS 1 out: PUBACK, and the delivery at QoS 1 (in either order), acknowledged.
    let topic = format!("mono/{tag}/one");
    link.send(publish_packet(version, &topic, QoS::AtLeastOnce, 2, b"one"));
    let (mut acked, mut delivered) = (false, false);
    while !(acked && delivered) {
        match link.next() {
            Packet::PubAck(a) => {
                assert_eq!((a.packet_id, a.code), (2, ReasonCode::Success));
                acked = true;
            }
            Packet::Publish(p) => {
                check_delivery(version, &p, &topic, QoS::AtLeastOnce, b"one");
                link.send(Packet::PubAck(Ack::success(p.packet_id)));
                delivered = true;
            }
            other => panic!("{tag}: unexpected {other:?}"),
        }
    }

    // QoS 2 out and in: PUBREC/PUBREL/PUBCOMP both ways.
    let topic = format!("mono/{tag}/two");
    link.send(publish_packet(version, &topic, QoS::ExactlyOnce, 3, b"two"));
    let (mut completed, mut released, mut delivered_id) = (false, false, None);
    while !(completed && released) {
        match link.next() {
            Packet::PubRec(a) => {
                assert_eq!((a.packet_id, a.code), (3, ReasonCode::Success));
                link.send(Packet::PubRel(Ack::success(3)));
            }
            Packet::PubComp(a) => {
                assert_eq!((a.packet_id, a.code), (3, ReasonCode::Success));
                completed = true;
            }
            Packet::Publish(p) => {
                check_delivery(version, &p, &topic, QoS::ExactlyOnce, b"two");
                delivered_id = Some(p.packet_id);
                link.send(Packet::PubRec(Ack::success(p.packet_id)));
            }
            Packet::PubRel(a) => {
                assert_eq!(Some(a.packet_id), delivered_id, "{tag}: PUBREL for the delivery");
                link.send(Packet::PubComp(Ack::success(a.packet_id)));
                released = true;
            }
            other => panic!("{tag}: unexpected {other:?}"),
        }
    }

    // A message from mosquitto_pub, decoded by us exactly: every byte value.
    let topic = format!("mono/{tag}/pub");
    let payload: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    let dir = support::TempDir::new("mosquitto-pub");
    let file = dir.path.join("payload");
    std::fs::write(&file, &payload).expect("write the payload");
    let mut cmd = broker.publisher();
    cmd.args(["-t", &topic, "-q", "1", "-i", &format!("pub-{tag}"), "-f"])
        .arg(&file);
    match version {
        ProtocolVersion::V5 => {
            cmd.args([
                "-V",
                "mqttv5",
                "-D",
                "publish",
                "user-property",
                "origin",
                "mosquitto_pub",
            ]);
            cmd.args(["-D", "publish", "content-type", "application/octet-stream"]);
            cmd.args(["-D", "publish", "correlation-data", "c0rr"]);
        }
        ProtocolVersion::V3_1_1 => {
            cmd.args(["-V", "mqttv311"]);
        }
        ProtocolVersion::V3_1 => {
            cmd.args(["-V", "mqttv31"]);
        }
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mosquitto_pub");
    let Packet::Publish(p) = link.next() else {
        panic!("{tag}: expected mosquitto_pub's PUBLISH")
    };
    assert_eq!((&p.topic[..], p.qos), (topic.as_bytes(), QoS::AtLeastOnce));
    assert_eq!(&p.payload[..], &payload[..], "{tag}: the payload, byte for byte");
    if v5 {
        assert_eq!(p.properties.user_properties, [(s("origin"), s("mosquitto_pub"))]);
        assert_eq!(p.properties.content_type, Some(s("application/octet-stream")));
        assert_eq!(p.properties.correlation_data, Some(s("c0rr")));
        assert_eq!(p.properties.subscription_identifiers, [42]);
    }
    link.send(Packet::PubAck(Ack::success(p.packet_id)));
    let out = child.wait_with_output().expect("mosquitto_pub");
    assert!(
        out.status.success(),
        "mosquitto_pub: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // PINGREQ -> PINGRESP; UNSUBSCRIBE -> UNSUBACK.
    link.send(Packet::PingReq);
    assert_eq!(link.next(), Packet::PingResp);
    link.send(Packet::Unsubscribe(Unsubscribe {
        packet_id: 5,
        properties: Properties::default(),
        filters: vec![s(&filter), s("never/subscribed")],
    }));
    let Packet::UnsubAck(un) = link.next() else {
        panic!("{tag}: expected UNSUBACK")
    };
    assert_eq!(un.packet_id, 5);
    if v5 {
        assert_eq!(un.codes, [ReasonCode::Success, ReasonCode::NoSubscriptionExisted]);
    } else {
        assert!(un.codes.is_empty());
    }

    // DISCONNECT: mosquitto closes the connection, nothing more arrives.
    link.send(Packet::Disconnect(Reason::default()));
    assert!(
        matches!(link.next_event(), Event::Eof),
        "{tag}: expected the end of the stream"
    );
    let peer = link.driver.session(link.conn).expect("session");
    assert!(
        peer.input.is_empty(),
        "{tag}: {} bytes left undecoded",
        peer.input.len()
    );
    assert!(peer.received > 0);
}

fn session_v311(kind: DriverKind) {
    session(kind, ProtocolVersion::V3_1_1);
}

fn session_v5(kind: DriverKind) {
    session(kind, ProtocolVersion::V5);
}

fn session_v31(kind: DriverKind) {
    session(kind, ProtocolVersion::V3_1);
}

/// What mosquitto did with a bad packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mosq {
    /// Sent DISCONNECT with this reason code.
    Code(ReasonCode),
    /// Closed the connection without a DISCONNECT.
    Closes,
    /// Let it pass (answered the next PINGREQ).
    Accepts,
}

/// Malformed packets, written by hand (our encoder refuses to write them): what each
/// breaks, its bytes, the reason code our decoder gives it, and what mosquitto 2.0 does
/// with it on a 5.0 connection. Where the two differ, the comment above the row cites
/// the specification our code follows.
const BAD_PACKETS: &[(&str, &[u8], ReasonCode, Mosq)] = &[
    (
        "Session Expiry Interval in PUBLISH",
        b"\x30\x0b\x00\x01t\x05\x11\x00\x00\x00\x01hi",
        ReasonCode::MalformedPacket,
        Mosq::Code(ReasonCode::MalformedPacket),
    ),
    // 0x94 is "Topic Alias invalid"; 0 is a well-typed Two Byte Integer, so not malformed by 2.2.2.2
    (
        "Topic Alias 0",
        b"\x30\x07\x00\x01t\x03\x23\x00\x00",
        ReasonCode::TopicAliasInvalid,
        Mosq::Code(ReasonCode::MalformedPacket),
    ),
    (
        "PUBLISH QoS 3",
        b"\x36\x07\x00\x01t\x00\x01\x00x",
        ReasonCode::MalformedPacket,
        Mosq::Code(ReasonCode::MalformedPacket),
    ),
    (
        "wildcard in a topic name",
        b"\x30\x06\x00\x03a/+\x00",
        ReasonCode::ProtocolError,
        Mosq::Code(ReasonCode::ProtocolError),
    ),
    // "It is a Protocol Error to include the Payload Format Indicator more than once"
    (
        "Payload Format Indicator twice",
        b"\x30\x08\x00\x01t\x04\x01\x00\x01\x01",
        ReasonCode::ProtocolError,
        Mosq::Closes,
    ),
    // only 0 and 1 are defined; mosquitto lets 2 through
    (
        "Payload Format Indicator 2",
        b"\x30\x06\x00\x01t\x02\x01\x02",
        ReasonCode::ProtocolError,
        Mosq::Accepts,
    ),
    // [MQTT-3.3.4-6]: a client MUST NOT send one
    (
        "Subscription Identifier from a client",
        b"\x30\x06\x00\x01t\x02\x0b\x01",
        ReasonCode::ProtocolError,
        Mosq::Accepts,
    ),
    (
        "PUBLISH packet identifier 0",
        b"\x32\x06\x00\x01t\x00\x00\x00",
        ReasonCode::ProtocolError,
        Mosq::Code(ReasonCode::ProtocolError),
    ),
    // [MQTT-3.3.1-2]: DUP MUST be 0 at QoS 0
    (
        "DUP on QoS 0",
        b"\x38\x04\x00\x01t\x00",
        ReasonCode::MalformedPacket,
        Mosq::Accepts,
    ),
    (
        "U+0000 in a topic name",
        b"\x30\x05\x00\x02t\x00\x00",
        ReasonCode::MalformedPacket,
        Mosq::Code(ReasonCode::MalformedPacket),
    ),
    (
        "surrogate in a topic name",
        b"\x30\x06\x00\x03\xed\xa0\x80\x00",
        ReasonCode::MalformedPacket,
        Mosq::Code(ReasonCode::MalformedPacket),
    ),
    // 3.8.3: "A SUBSCRIBE packet with no Payload is a Protocol Error"
    (
        "SUBSCRIBE without filters",
        b"\x82\x03\x00\x01\x00",
        ReasonCode::ProtocolError,
        Mosq::Code(ReasonCode::MalformedPacket),
    ),
    (
        "SUBSCRIBE reserved option bits",
        b"\x82\x07\x00\x01\x00\x00\x01a\x40",
        ReasonCode::MalformedPacket,
        Mosq::Code(ReasonCode::MalformedPacket),
    ),
    // 3.8.3.1: "It is a Protocol Error to send a Retain Handling value of 3"
    (
        "SUBSCRIBE Retain Handling 3",
        b"\x82\x07\x00\x01\x00\x00\x01a\x30",
        ReasonCode::ProtocolError,
        Mosq::Code(ReasonCode::MalformedPacket),
    ),
    (
        "SUBSCRIBE flags 0000",
        b"\x80\x07\x00\x01\x00\x00\x01a\x00",
        ReasonCode::MalformedPacket,
        Mosq::Code(ReasonCode::MalformedPacket),
    ),
    (
        "PUBREL flags 0000",
        b"\x60\x02\x00\x01",
        ReasonCode::MalformedPacket,
        Mosq::Closes,
    ),
    // [MQTT-1.5.5-1]: the shortest form MUST be used
    (
        "Remaining Length not shortest",
        b"\xc0\x80\x00",
        ReasonCode::MalformedPacket,
        Mosq::Accepts,
    ),
    (
        "unknown property 0x04",
        b"\x30\x06\x00\x01t\x02\x04\x00",
        ReasonCode::MalformedPacket,
        Mosq::Code(ReasonCode::MalformedPacket),
    ),
];

fn malformed_packets_get_our_reason_code(kind: DriverKind) {
    let broker = Mosquitto::start();
    let mut report = Vec::new();
    for (i, &(what, raw, want, mosquitto)) in BAD_PACKETS.iter().enumerate() {
        let mut ours = monocoque::proto::mqtt::Decoder::server(1024);
        ours.set_version(ProtocolVersion::V5);
        let mut src = SegmentedBuffer::new();
        src.push_slice(raw);
        let ours = match ours.decode(&mut src) {
            Err(e) => e.reason_code(),
            Ok(p) => panic!("{what}: our decoder accepted it: {p:?}"),
        };
        assert_eq!(ours, want, "{what}: our reason code");
        let mut link = Link::connect(kind, ProtocolVersion::V5, broker.addr);
        link.send(connect_packet(ProtocolVersion::V5, &format!("mono-bad-{kind}-{i}")));
        assert!(matches!(link.next(), Packet::ConnAck(a) if a.code == ReasonCode::Success));
        link.driver
            .session_for_output(link.conn)
            .expect("session")
            .out
            .put_slice(raw);
        // Where mosquitto lets the packet pass, a PINGREQ behind it shows it (a PINGRESP);
        // elsewhere it answers or closes, and nothing is sent behind the packet (data
        // unread at close would turn the close into a reset and lose the DISCONNECT).
        if mosquitto == Mosq::Accepts {
            link.send(Packet::PingReq);
        }
        let event = link.next_event();
        let theirs = match event {
            Event::Packet(p) => match *p {
                Packet::Disconnect(d) => Mosq::Code(d.code),
                Packet::PingResp => Mosq::Accepts,
                other => panic!("{what}: mosquitto sent {other:?}"),
            },
            Event::Eof | Event::Failed(_) => Mosq::Closes,
            Event::Error(e) => panic!("{what}: mosquitto's answer did not decode: {e}"),
        };
        if theirs != mosquitto {
            report.push(format!("{what}: mosquitto {theirs:?}, expected {mosquitto:?}"));
        }
    }
    assert!(
        report.is_empty(),
        "{kind}: mosquitto differs from the table:\n{}",
        report.join("\n")
    );
}

both_drivers! {
    session_v311 => uring_session_v311, mio_session_v311;
    session_v5 => uring_session_v5, mio_session_v5;
    session_v31 => uring_session_v31, mio_session_v31;
    malformed_packets_get_our_reason_code => uring_malformed_packets, mio_malformed_packets;
}

#[test]
fn mosquitto_is_the_expected_broker() {
    let version = Mosquitto::version();
    assert!(version.starts_with("mosquitto version 2."), "{version}");
}
