//! Normative statements of MQTT 5.0 and 3.1.1 that bind the server and had no test:
//! each test is named for the statement(s) it checks ([MQTT-x.y.z-n], 5.0 numbering
//! unless the name says `v311`), on bytes and virtual time like `tests.rs`. The table
//! mapping every statement to its test is `CONFORMANCE.md` at the repository root.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;

use super::{Access, Acl, BrokerState, Connection, ConnectionConfig, Rules};
use crate::chassis::{SegmentedBuffer, Session};
use crate::mqtt::{
    Ack, Codec, ConnAck, Connect, Packet, Properties, ProtocolVersion, Publish, QoS, Reason, ReasonCode, SubAck,
    Subscribe, Subscription, SubscriptionOptions, Unsubscribe, Will,
};

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;

/// Clients as codecs wired to broker connections in memory.
struct Net {
    state: BrokerState<u32>,
    conns: HashMap<u32, Connection>,
    clients: HashMap<u32, (Codec, SegmentedBuffer)>,
    t0: Instant,
}

impl Net {
    fn new() -> Net {
        Net {
            state: BrokerState::new(),
            conns: HashMap::new(),
            clients: HashMap::new(),
            t0: Instant::now(),
        }
    }

    /// Opens connection `id` with a client codec of `version`, nothing sent yet.
    fn open(&mut self, id: u32, version: ProtocolVersion) {
        self.conns
            .insert(id, Connection::new(ConnectionConfig::default(), self.t0));
        self.clients
            .insert(id, (Codec::client(version), SegmentedBuffer::new()));
    }

    /// Opens connection `id`, sends its CONNECT and returns the CONNACK.
    fn connect(&mut self, id: u32, connect: Connect) -> ConnAck {
        self.open(id, connect.protocol);
        self.send(id, Packet::Connect(Box::new(connect)));
        match self.recv(id).first() {
            Some(Packet::ConnAck(ack)) => ack.clone(),
            other => panic!("no CONNACK: {other:?}"),
        }
    }

    fn send(&mut self, id: u32, packet: Packet) {
        let wire = super::test_wire::encode(&mut self.clients.get_mut(&id).expect("a client").0, &packet);
        self.send_raw(id, &wire);
    }

    fn send_raw(&mut self, id: u32, bytes: &[u8]) {
        let now = self.t0;
        self.conns
            .get_mut(&id)
            .expect("a connection")
            .handle_input(Bytes::copy_from_slice(bytes), now);
        self.pump();
    }

    fn pump(&mut self) {
        super::test_wire::pump(&mut self.state, &mut self.conns, self.t0);
    }

    /// The bytes connection `id` wrote since the last call.
    fn raw(&mut self, id: u32) -> Vec<u8> {
        super::test_wire::take_output(self.conns.get_mut(&id).expect("a connection"))
    }

    /// What connection `id` wrote since the last call, decoded by its client.
    fn recv(&mut self, id: u32) -> Vec<Packet> {
        let bytes = self.raw(id);
        let (codec, buf) = self.clients.get_mut(&id).expect("a client");
        super::test_wire::decode_all(codec, buf, &bytes)
    }

    fn subscribe(&mut self, id: u32, packet_id: u16, filters: &[(&'static str, QoS)]) -> Vec<Packet> {
        let subscriptions = filters
            .iter()
            .map(|&(f, qos)| Subscription {
                filter: Bytes::from_static(f.as_bytes()),
                options: SubscriptionOptions::qos(qos),
            })
            .collect();
        self.send(
            id,
            Packet::Subscribe(Subscribe {
                packet_id,
                properties: Properties::default(),
                subscriptions,
            }),
        );
        self.recv(id)
    }
}

fn connect(version: ProtocolVersion, client_id: &'static str) -> Connect {
    Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 0,
        properties: Properties::default(),
        client_id: Bytes::from_static(client_id.as_bytes()),
        will: None,
        username: None,
        password: None,
    }
}

fn publish(topic: &'static str, payload: &'static str, qos: QoS, packet_id: u16) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: Bytes::from_static(topic.as_bytes()),
        packet_id,
        properties: Properties::default(),
        payload: Bytes::from_static(payload.as_bytes()),
    }
}

fn publishes(packets: &[Packet]) -> Vec<&Publish> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn suback(packets: &[Packet]) -> &SubAck {
    match packets.first() {
        Some(Packet::SubAck(ack)) => ack,
        other => panic!("no SUBACK: {other:?}"),
    }
}

/// [MQTT-3.1.0-2] a second CONNECT is a Protocol Error that closes the connection
/// (5.0: DISCONNECT 0x82 [MQTT-4.13.1-1]; 3.1.1: closed); [MQTT-3.2.0-2] no second
/// CONNACK is sent.
#[test]
fn mqtt_3_1_0_2_a_second_connect_closes_without_a_second_connack() {
    for version in [V5, V311] {
        let mut net = Net::new();
        net.connect(1, connect(version, "twice"));
        net.send(1, Packet::Connect(Box::new(connect(version, "twice"))));
        let got = net.recv(1);
        assert!(
            !got.iter().any(|p| matches!(p, Packet::ConnAck(_))),
            "{version}: {got:?}"
        );
        if version == V5 {
            assert_eq!(got, [Packet::Disconnect(Reason::new(ReasonCode::ProtocolError))]);
        } else {
            assert!(got.is_empty(), "3.1.1 has no server DISCONNECT: {got:?}");
        }
        assert!(net.conns[&1].is_closed(), "{version}");
    }
}

/// [MQTT-3.1.0-1] anything but CONNECT first, and [MQTT-3.14.0-1] no DISCONNECT before a
/// CONNACK: the connection closes with nothing sent.
#[test]
fn mqtt_3_1_0_1_and_3_14_0_1_a_first_packet_other_than_connect_closes_silently() {
    let mut net = Net::new();
    net.open(1, V5);
    net.send_raw(1, b"\xc0\x00");
    assert!(net.conns[&1].is_closed());
    assert_eq!(net.raw(1), b"");
    // A malformed first packet: no DISCONNECT 0x81 either.
    net.open(2, V5);
    net.send_raw(2, &[0x10, 0x80, 0x00]);
    assert!(net.conns[&2].is_closed());
    assert_eq!(net.raw(2), b"");
}

/// [MQTT-3.1.4-6] (3.1.1: [MQTT-3.1.4-5]) nothing sent after a refused CONNECT is
/// processed; [MQTT-3.2.2-6] (3.1.1: [MQTT-3.2.2-4]) the refusal has Session Present 0.
#[test]
fn mqtt_3_1_4_6_data_after_a_refused_connect_is_not_processed() {
    let mut net = Net::new();
    net.connect(9, connect(V5, "watch"));
    let ack = net.subscribe(9, 1, &[("r", QoS::AtMostOnce)]);
    assert_eq!(suback(&ack).codes, [ReasonCode::Success]);
    // 3.1.1, empty client id with Clean Session 0: refused with return code 2
    // [MQTT-3.1.3-8 (3.1.1)], and a retained PUBLISH pipelined behind the CONNECT.
    net.open(1, V311);
    let mut c = connect(V311, "");
    c.clean_start = false;
    let mut wire = crate::IoArena::new();
    let codec = &mut net.clients.get_mut(&1).expect("a client").0;
    codec.encode(&Packet::Connect(Box::new(c)), &mut wire).expect("encodes");
    let mut retained = publish("r", "after", QoS::AtMostOnce, 0);
    retained.retain = true;
    codec.encode(&Packet::Publish(retained), &mut wire).expect("encodes");
    net.send_raw(1, &wire.to_vec());
    assert_eq!(net.raw(1), b"\x20\x02\x00\x02", "Session Present 0, return code 2");
    assert!(net.conns[&1].is_closed());
    assert_eq!(net.state.retained_count(), 0);
    assert!(net.recv(9).is_empty(), "the PUBLISH was not routed");
}

/// [MQTT-3.1.3-5] the server accepts any client id of 1 to 23 of the characters
/// 0-9, a-z, A-Z (here 23 of them); [MQTT-3.1.2-6] (3.1.1: [MQTT-3.1.2-4]) Clean Start
/// 0 without a session creates one: Session Present 0 [MQTT-3.2.2-3]; [MQTT-3.1.2-23]
/// (3.1.1: [MQTT-3.1.2-5]) it outlives the connection and is resumed.
#[test]
fn mqtt_3_1_3_5_and_3_1_2_6_a_23_character_id_and_a_new_session() {
    for version in [V5, V311] {
        let mut net = Net::new();
        let mut c = connect(version, "aZ09aZ09aZ09aZ09aZ09aZ0");
        assert_eq!(c.client_id.len(), 23);
        c.clean_start = false;
        if version == V5 {
            c.properties.session_expiry_interval = Some(60);
        }
        let ack = net.connect(1, c.clone());
        assert_eq!(ack.code, ReasonCode::Success, "{version}");
        assert!(!ack.session_present, "{version}");
        assert_eq!(net.state.session_count(), 1);
        net.subscribe(1, 1, &[("kept", QoS::AtMostOnce)]);
        net.conns.get_mut(&1).expect("a connection").handle_eof(net.t0);
        net.pump();
        assert_eq!(net.state.session_count(), 1, "{version}: kept after the close");
        let ack = net.connect(2, c);
        assert!(ack.session_present, "{version}");
        net.connect(3, connect(V5, "p"));
        net.send(3, Packet::Publish(publish("kept", "m", QoS::AtMostOnce, 0)));
        assert_eq!(publishes(&net.recv(2)).len(), 1, "{version}: the subscription too");
    }
}

/// [MQTT-3.2.2-16] an assigned client identifier is new: two clients connecting with an
/// empty one get different identifiers, neither the one of an existing session.
#[test]
fn mqtt_3_2_2_16_assigned_identifiers_are_unique() {
    let mut net = Net::new();
    let a = net.connect(1, connect(V5, "")).properties.assigned_client_identifier;
    let b = net.connect(2, connect(V5, "")).properties.assigned_client_identifier;
    let (a, b) = (a.expect("assigned"), b.expect("assigned"));
    assert_ne!(a, b);
    assert_eq!(net.state.session_count(), 2);
}

/// [MQTT-3.1.2-14] a will with Will Retain 0 is published as a non-retained message
/// (nothing retained); [MQTT-3.1.2-15] with Will Retain 1, retained; [MQTT-3.1.3-10]
/// the will's User Properties keep their order.
#[test]
fn mqtt_3_1_2_14_will_retain_and_3_1_3_10_will_user_property_order() {
    for retain in [false, true] {
        let mut net = Net::new();
        net.connect(1, connect(V5, "watch"));
        net.subscribe(1, 1, &[("will", QoS::AtMostOnce)]);
        let pairs: Vec<(Bytes, Bytes)> = [("z", "1"), ("a", "2"), ("z", "0")]
            .iter()
            .map(|&(k, v)| (Bytes::from_static(k.as_bytes()), Bytes::from_static(v.as_bytes())))
            .collect();
        let mut c = connect(V5, "w");
        c.will = Some(Will {
            properties: Properties {
                user_properties: pairs.clone(),
                ..Properties::default()
            },
            topic: Bytes::from_static(b"will"),
            payload: Bytes::from_static(b"gone"),
            qos: QoS::AtMostOnce,
            retain,
        });
        net.connect(2, c);
        net.conns.get_mut(&2).expect("a connection").handle_eof(net.t0);
        net.pump();
        let got = net.recv(1);
        let got = publishes(&got);
        assert_eq!(got.len(), 1, "retain {retain}");
        assert_eq!(got[0].properties.user_properties, pairs, "retain {retain}");
        assert_eq!(net.state.retained_count(), usize::from(retain));
    }
}

/// [MQTT-3.3.2-7] topic alias mappings do not outlive the connection: an alias set on
/// one connection is unknown on the next (empty topic, unknown alias: 0x82).
#[test]
fn mqtt_3_3_2_7_aliases_are_not_carried_to_the_next_connection() {
    let mut net = Net::new();
    net.connect(9, connect(V5, "s"));
    net.subscribe(9, 1, &[("al", QoS::AtMostOnce)]);
    let mut c = connect(V5, "p");
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(60);
    net.connect(1, c.clone());
    let mut set = publish("al", "1", QoS::AtMostOnce, 0);
    set.properties.topic_alias = Some(1);
    net.send(1, Packet::Publish(set));
    let mut used = publish("", "2", QoS::AtMostOnce, 0);
    used.properties.topic_alias = Some(1);
    net.send(1, Packet::Publish(used.clone()));
    assert_eq!(publishes(&net.recv(9)).len(), 2, "the alias works on its connection");
    net.send(1, Packet::Disconnect(Reason::new(ReasonCode::Success)));
    let ack = net.connect(2, c);
    assert!(ack.session_present);
    net.send(2, Packet::Publish(used));
    assert_eq!(
        net.recv(2),
        [Packet::Disconnect(Reason::new(ReasonCode::ProtocolError))]
    );
    assert!(net.recv(9).is_empty());
}

/// [MQTT-4.7.1-1] `#` only last and alone in its level, [MQTT-4.7.1-2] `+` alone in its
/// level, [MQTT-4.7.3-1] not empty, [MQTT-4.8.2-1, MQTT-4.8.2-2] `$share/{name}/{filter}`
/// with a name and a filter: a SUBSCRIBE with a filter breaking these is refused for that
/// filter in the SUBACK (5.0: 0x8F Topic Filter invalid; 3.1.1: 0x80), the others granted
/// [MQTT-3.8.4-7], and nothing is subscribed for it.
#[test]
fn mqtt_4_7_1_1_invalid_topic_filters_are_refused_in_the_suback() {
    for (version, refused) in [
        (V5, ReasonCode::TopicFilterInvalid),
        (V311, ReasonCode::UnspecifiedError),
    ] {
        let mut net = Net::new();
        net.connect(1, connect(version, "s"));
        let bad = ["a/#/b", "a#", "a+/b", "", "$share/g", "$share//a", "$share/g/"];
        let mut filters: Vec<(&'static str, QoS)> = bad.iter().map(|&f| (f, QoS::AtMostOnce)).collect();
        filters.push(("ok/#", QoS::AtLeastOnce));
        let got = net.subscribe(1, 1, &filters);
        let mut want = vec![refused; bad.len()];
        want.push(ReasonCode::GrantedQoS1);
        assert_eq!(suback(&got).codes, want, "{version}");
        assert_eq!(net.state.subscription_count(), 1, "{version}");
    }
}

/// [MQTT-4.12.0-6] a client that gives no Authentication Method gets no AUTH and no
/// method in its CONNACK; [MQTT-4.12.0-1] a method the server does not support gets
/// CONNACK 0x8C and the close.
#[test]
fn mqtt_4_12_0_6_no_method_no_auth_and_4_12_0_1_an_unknown_one_closes() {
    let mut net = Net::new();
    net.open(1, V5);
    net.send(1, Packet::Connect(Box::new(connect(V5, "plain"))));
    let got = net.recv(1);
    let [Packet::ConnAck(ack)] = &got[..] else {
        panic!("only a CONNACK: {got:?}")
    };
    assert_eq!(ack.code, ReasonCode::Success);
    assert_eq!(ack.properties.authentication_method, None);
    assert_eq!(ack.properties.authentication_data, None);
    let mut c = connect(V5, "scram");
    c.properties.authentication_method = Some(Bytes::from_static(b"SCRAM-SHA-1"));
    let ack = net.connect(2, c);
    assert_eq!(ack.code, ReasonCode::BadAuthenticationMethod);
    assert!(!ack.session_present);
    assert!(net.conns[&2].is_closed());
}

/// [MQTT-3.8.4-1, MQTT-3.8.4-2] SUBACK with the SUBSCRIBE's packet identifier;
/// [MQTT-3.8.4-5, MQTT-3.8.4-6, MQTT-3.9.3-1] one SUBACK, one code per filter, in
/// order, each the QoS granted.
#[test]
fn mqtt_3_8_4_1_suback_carries_the_packet_id_and_a_code_per_filter() {
    for version in [V5, V311] {
        let mut net = Net::new();
        net.connect(1, connect(version, "s"));
        let got = net.subscribe(
            1,
            0x1234,
            &[
                ("a", QoS::ExactlyOnce),
                ("b", QoS::AtMostOnce),
                ("c/#", QoS::AtLeastOnce),
            ],
        );
        assert_eq!(got.len(), 1, "{version}: one SUBACK: {got:?}");
        let ack = suback(&got);
        assert_eq!(ack.packet_id, 0x1234, "{version}");
        assert_eq!(
            ack.codes,
            [ReasonCode::GrantedQoS2, ReasonCode::Success, ReasonCode::GrantedQoS1],
            "{version}"
        );
    }
}

/// [MQTT-3.8.4-3] a SUBSCRIBE with an existing filter replaces the subscription: one
/// copy, at the new QoS.
#[test]
fn mqtt_3_8_4_3_an_identical_filter_replaces_the_subscription() {
    let mut net = Net::new();
    net.connect(1, connect(V5, "s"));
    net.subscribe(1, 1, &[("x", QoS::AtMostOnce)]);
    net.subscribe(1, 2, &[("x", QoS::ExactlyOnce)]);
    assert_eq!(net.state.subscription_count(), 1);
    net.connect(2, connect(V5, "p"));
    net.send(2, Packet::Publish(publish("x", "m", QoS::ExactlyOnce, 5)));
    net.send(2, Packet::PubRel(Ack::success(5)));
    let got = net.recv(1);
    let got = publishes(&got);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].qos, QoS::ExactlyOnce);
}

/// [MQTT-3.10.4-4, MQTT-3.10.4-5] UNSUBACK with the UNSUBSCRIBE's packet identifier,
/// even when nothing was subscribed; [MQTT-3.10.4-6, MQTT-3.11.3-1] one UNSUBACK with a
/// code per filter, in order (5.0).
#[test]
fn mqtt_3_10_4_4_unsuback_carries_the_packet_id_even_for_no_subscription() {
    for version in [V5, V311] {
        let mut net = Net::new();
        net.connect(1, connect(version, "s"));
        net.subscribe(1, 1, &[("b", QoS::AtMostOnce)]);
        net.send(
            1,
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 0xbeef,
                properties: Properties::default(),
                filters: vec![Bytes::from_static(b"never"), Bytes::from_static(b"b")],
            }),
        );
        let got = net.recv(1);
        let [Packet::UnsubAck(ack)] = &got[..] else {
            panic!("{version}: one UNSUBACK: {got:?}")
        };
        assert_eq!(ack.packet_id, 0xbeef, "{version}");
        if version == V5 {
            assert_eq!(ack.codes, [ReasonCode::NoSubscriptionExisted, ReasonCode::Success]);
        }
        assert_eq!(net.state.subscription_count(), 0, "{version}");
    }
}

/// [MQTT-3.10.4-2] after UNSUBSCRIBE nothing new is sent for the filter;
/// [MQTT-3.10.4-3] a QoS 1 message already sent still completes with its PUBACK.
#[test]
fn mqtt_3_10_4_3_an_unsubscribe_lets_a_started_delivery_complete() {
    let mut net = Net::new();
    net.connect(1, connect(V5, "s"));
    net.subscribe(1, 1, &[("u", QoS::AtLeastOnce)]);
    net.connect(2, connect(V5, "p"));
    net.send(2, Packet::Publish(publish("u", "first", QoS::AtLeastOnce, 1)));
    let got = net.recv(1);
    let got = publishes(&got);
    assert_eq!(got.len(), 1);
    let id = got[0].packet_id;
    net.send(
        1,
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 2,
            properties: Properties::default(),
            filters: vec![Bytes::from_static(b"u")],
        }),
    );
    assert!(matches!(&net.recv(1)[..], [Packet::UnsubAck(_)]));
    assert_eq!(net.conns[&1].in_flight(), 1);
    net.send(2, Packet::Publish(publish("u", "second", QoS::AtLeastOnce, 2)));
    assert!(net.recv(1).is_empty());
    net.send(1, Packet::PubAck(Ack::success(id)));
    assert_eq!(net.conns[&1].in_flight(), 0);
    assert!(net.conns[&1].is_open());
}

/// [MQTT-3.3.1-8] (3.1.1: [MQTT-3.3.1-12]) a PUBLISH with RETAIN 0 neither stores nor
/// replaces nor removes the retained message, even with an empty payload.
#[test]
fn mqtt_3_3_1_8_retain_0_leaves_the_retained_message_alone() {
    let mut net = Net::new();
    net.connect(1, connect(V5, "p"));
    let mut r = publish("t", "kept", QoS::AtMostOnce, 0);
    r.retain = true;
    net.send(1, Packet::Publish(r));
    net.send(1, Packet::Publish(publish("t", "live", QoS::AtMostOnce, 0)));
    net.send(1, Packet::Publish(publish("t", "", QoS::AtMostOnce, 0)));
    net.send(1, Packet::Publish(publish("u", "other", QoS::AtMostOnce, 0)));
    assert_eq!(net.state.retained_count(), 1);
    net.connect(2, connect(V311, "s"));
    let got = net.subscribe(2, 1, &[("#", QoS::AtMostOnce)]);
    let got = publishes(&got);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((&got[0].payload[..], got[0].retain), (&b"kept"[..], true));
}

/// [MQTT-3.3.1-3] the DUP of a forwarded PUBLISH is the broker's own (a first delivery:
/// 0), not the publisher's; [MQTT-4.3.2-2] a new QoS 1 message goes out with DUP 0.
#[test]
fn mqtt_3_3_1_3_dup_is_not_propagated() {
    let mut net = Net::new();
    net.connect(1, connect(V5, "s"));
    net.subscribe(1, 1, &[("d", QoS::AtLeastOnce)]);
    net.connect(2, connect(V311, "p"));
    let mut again = publish("d", "m", QoS::AtLeastOnce, 3);
    again.dup = true;
    net.send(2, Packet::Publish(again));
    assert_eq!(net.recv(2), [Packet::PubAck(Ack::success(3))]);
    let got = net.recv(1);
    let got = publishes(&got);
    assert_eq!(got.len(), 1);
    assert!(!got[0].dup);
    // [MQTT-3.3.1-2, MQTT-4.3.1-1] a QoS 0 delivery has DUP 0 too.
    net.subscribe(1, 2, &[("d", QoS::AtMostOnce)]);
    net.send(2, Packet::Publish(publish("d", "z", QoS::AtMostOnce, 0)));
    let got = net.recv(1);
    let got = publishes(&got);
    assert_eq!((got.len(), got[0].qos, got[0].dup), (1, QoS::AtMostOnce, false));
}

/// [MQTT-2.2.1-4] (3.1.1: [MQTT-2.3.1-1]) the server gives each QoS 1 and 2 PUBLISH in
/// flight its own non-zero packet identifier; [MQTT-4.3.2-5] after the PUBACK, and
/// [MQTT-4.3.3-12] after the PUBCOMP, a PUBLISH with the same identifier from the client
/// is a new message, delivered again.
#[test]
fn mqtt_2_2_1_4_and_4_3_3_12_identifiers_in_flight_are_distinct_and_reusable_after_the_flow() {
    let mut net = Net::new();
    net.connect(1, connect(V5, "s"));
    net.subscribe(1, 1, &[("q/#", QoS::ExactlyOnce)]);
    net.connect(2, connect(V5, "p"));
    for (topic, qos) in [
        ("q/1", QoS::AtLeastOnce),
        ("q/2", QoS::ExactlyOnce),
        ("q/1", QoS::AtLeastOnce),
    ] {
        net.send(2, Packet::Publish(publish(topic, "m", qos, 7)));
        if qos == QoS::ExactlyOnce {
            assert_eq!(net.recv(2), [Packet::PubRec(Ack::success(7))]);
            net.send(2, Packet::PubRel(Ack::success(7)));
            assert_eq!(net.recv(2), [Packet::PubComp(Ack::success(7))]);
        } else {
            assert_eq!(net.recv(2), [Packet::PubAck(Ack::success(7))]);
        }
    }
    let got = net.recv(1);
    let got = publishes(&got);
    assert_eq!(got.len(), 3, "each one a new message: {got:?}");
    // [MQTT-4.3.2-2, MQTT-4.3.3-2] first deliveries have DUP 0.
    assert!(got.iter().all(|p| !p.dup), "{got:?}");
    let mut ids: Vec<u16> = got.iter().map(|p| p.packet_id).collect();
    assert!(ids.iter().all(|&id| id != 0), "{ids:?}");
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 3, "distinct while in flight");
}

/// [MQTT-3.3.2-4] Payload Format Indicator, [MQTT-3.3.2-15] Response Topic,
/// [MQTT-3.3.2-16] Correlation Data, [MQTT-3.3.2-17, MQTT-3.3.2-18] every User Property
/// unaltered and in order (a repeated name included), [MQTT-3.3.2-20] Content Type: all
/// forwarded as received.
#[test]
fn mqtt_3_3_2_4_to_3_3_2_20_application_properties_are_forwarded_unaltered() {
    let mut net = Net::new();
    net.connect(1, connect(V5, "s"));
    net.subscribe(1, 1, &[("req", QoS::AtMostOnce)]);
    net.connect(2, connect(V5, "p"));
    let pairs = [("z", "1"), ("a", "2"), ("z", "3")];
    let mut p = publish("req", "{}", QoS::AtMostOnce, 0);
    p.properties = Properties {
        payload_format_indicator: Some(true),
        response_topic: Some(Bytes::from_static(b"resp/for/p")),
        correlation_data: Some(Bytes::from_static(b"\x00\x01\xfe")),
        content_type: Some(Bytes::from_static(b"application/json")),
        user_properties: pairs
            .iter()
            .map(|&(k, v)| (Bytes::from_static(k.as_bytes()), Bytes::from_static(v.as_bytes())))
            .collect(),
        ..Properties::default()
    };
    let sent = p.properties.clone();
    net.send(2, Packet::Publish(p));
    let got = net.recv(1);
    let got = publishes(&got);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].properties, sent);
}

/// 3.1.1 [MQTT-3.1.3-6]: a zero-byte client id with Clean Session 1 is given a unique
/// id of the server's and the connection goes on as if the client had sent it.
#[test]
fn mqtt_3_1_3_6_v311_a_zero_byte_id_with_a_clean_session_is_assigned_one() {
    let mut net = Net::new();
    assert_eq!(net.connect(1, connect(V311, "")).code, ReasonCode::Success);
    assert_eq!(net.connect(2, connect(V311, "")).code, ReasonCode::Success);
    let (a, b) = (
        net.state.client_id(1, &mut net.conns).map(<[u8]>::to_vec),
        net.state.client_id(2, &mut net.conns).map(<[u8]>::to_vec),
    );
    let (a, b) = (a.expect("an id"), b.expect("an id"));
    assert!(!a.is_empty() && a != b);
    net.subscribe(1, 1, &[("t", QoS::AtMostOnce)]);
    net.send(2, Packet::Publish(publish("t", "m", QoS::AtMostOnce, 0)));
    assert_eq!(publishes(&net.recv(1)).len(), 1);
}

/// 3.1.1 [MQTT-3.1.2-2]: a protocol level the server does not support gets CONNACK
/// return code 1 (unacceptable protocol version), then the close.
#[test]
fn mqtt_3_1_2_2_v311_an_unsupported_level_gets_return_code_1() {
    let mut net = Net::new();
    net.open(1, V311);
    net.send_raw(1, b"\x10\x0d\x00\x04MQTT\x06\x02\x00\x00\x00\x01a");
    assert_eq!(net.raw(1), b"\x20\x02\x00\x01");
    assert!(net.conns[&1].is_closed());
}

/// 3.1.1 [MQTT-3.1.2-12] (5.0: no will stored without the Will Flag): a connection
/// without a will that ends without DISCONNECT publishes nothing.
#[test]
fn mqtt_3_1_2_12_v311_no_will_flag_no_will() {
    for version in [V311, V5] {
        let mut net = Net::new();
        net.connect(1, connect(version, "watch"));
        net.subscribe(1, 1, &[("#", QoS::AtMostOnce)]);
        net.connect(2, connect(version, "quiet"));
        net.conns.get_mut(&2).expect("a connection").handle_eof(net.t0);
        net.pump();
        assert!(net.recv(1).is_empty(), "{version}");
    }
}

/// Ill-formed UTF-8 in any string field is a Malformed Packet that closes the
/// connection (5.0: DISCONNECT 0x81): a User Property's name [MQTT-1.5.7-1], a Response
/// Topic [MQTT-3.3.2-13], a Content Type [MQTT-3.3.2-19], a SUBSCRIBE filter
/// [MQTT-3.8.3-1] and an UNSUBSCRIBE filter [MQTT-3.10.3-1] (3.1.1: the same numbers for
/// the filters, closed without a word).
#[test]
fn mqtt_1_5_7_1_and_3_8_3_1_ill_formed_utf8_in_any_string_closes() {
    let v5: [&[u8]; 5] = [
        &[0x30, 0x0c, 0, 1, b't', 7, 0x26, 0, 1, 0xff, 0, 1, b'v', b'x'],
        &[0x30, 0x09, 0, 1, b't', 4, 0x08, 0, 1, 0xff, b'x'],
        &[0x30, 0x09, 0, 1, b't', 4, 0x03, 0, 1, 0xff, b'x'],
        &[0x82, 0x07, 0, 1, 0, 0, 1, 0xff, 0],
        &[0xa2, 0x06, 0, 1, 0, 0, 1, 0xff],
    ];
    let v311: [&[u8]; 2] = [&[0x82, 0x06, 0, 1, 0, 1, 0xff, 0], &[0xa2, 0x05, 0, 1, 0, 1, 0xff]];
    for (version, packets) in [(V5, &v5[..]), (V311, &v311[..])] {
        for bytes in packets {
            let mut net = Net::new();
            net.connect(1, connect(version, "c"));
            net.send_raw(1, bytes);
            let want = if version == V5 {
                vec![Packet::Disconnect(Reason::new(ReasonCode::MalformedPacket))]
            } else {
                vec![]
            };
            assert_eq!(net.recv(1), want, "{version} {bytes:02x?}");
            assert!(net.conns[&1].is_closed(), "{version} {bytes:02x?}");
        }
    }
}

/// [MQTT-3.1.2-9] (3.1.1: the same number): with the Will Flag set, the will's fields
/// must follow the client id; a CONNECT that ends there is malformed and closed, with
/// no CONNACK.
#[test]
fn mqtt_3_1_2_9_a_will_flag_without_the_will_closes() {
    for bytes in [
        &b"\x10\x0e\x00\x04MQTT\x05\x06\x00\x00\x00\x00\x01c"[..],
        &b"\x10\x0d\x00\x04MQTT\x04\x06\x00\x00\x00\x01c"[..],
    ] {
        let mut net = Net::new();
        net.open(1, V5);
        net.send_raw(1, bytes);
        assert_eq!(net.raw(1), b"", "{bytes:02x?}");
        assert!(net.conns[&1].is_closed(), "{bytes:02x?}");
        assert_eq!(net.state.session_count(), 0);
    }
}

/// [MQTT-3.3.2-14] a Response Topic with a wildcard is refused as a Protocol Error
/// (0x82), like a wildcard in a Topic Name; a well-formed one is forwarded.
#[test]
fn mqtt_3_3_2_14_a_response_topic_with_a_wildcard_is_a_protocol_error() {
    let mut net = Net::new();
    net.connect(1, connect(V5, "c"));
    // Written by hand: our own encoder refuses it.
    net.send_raw(1, b"\x30\x0f\x00\x01t\x0a\x08\x00\x07reply/+x");
    assert_eq!(
        net.recv(1),
        [Packet::Disconnect(Reason::new(ReasonCode::ProtocolError))]
    );
    assert!(net.conns[&1].is_closed());
    net.connect(2, connect(V5, "s"));
    net.subscribe(2, 1, &[("t", QoS::AtMostOnce)]);
    net.connect(3, connect(V5, "c"));
    net.send_raw(3, b"\x30\x0f\x00\x01t\x0a\x08\x00\x07reply/1x");
    let got = net.recv(2);
    let got = publishes(&got);
    assert_eq!(got[0].properties.response_topic.as_deref(), Some(&b"reply/1"[..]));
}

/// [MQTT-4.7.3-4] no normalization: a filter with a precomposed "ü" does not match a
/// topic with "u" and a combining diaeresis, and each matches itself.
#[test]
fn mqtt_4_7_3_4_matching_does_not_normalize() {
    let mut net = Net::new();
    net.connect(1, connect(V5, "s"));
    net.subscribe(1, 1, &[("a/\u{fc}", QoS::AtMostOnce)]);
    net.connect(2, connect(V311, "p"));
    net.send(
        2,
        Packet::Publish(publish("a/u\u{308}", "decomposed", QoS::AtMostOnce, 0)),
    );
    net.send(
        2,
        Packet::Publish(publish("a/\u{fc}", "precomposed", QoS::AtMostOnce, 0)),
    );
    let got = net.recv(1);
    let got: Vec<&[u8]> = publishes(&got).iter().map(|p| &p.payload[..]).collect();
    assert_eq!(got, [&b"precomposed"[..]]);
}

/// [MQTT-3.3.4-5] a shared and a non-shared subscription of one client matching the same
/// message: two copies, each with its own subscription's identifier.
#[test]
fn mqtt_3_3_4_5_separate_copies_carry_their_own_identifier() {
    let mut net = Net::new();
    net.connect(1, connect(V5, "s"));
    for (id, filter) in [(1, "$share/g/t"), (2, "t")] {
        let mut s = Subscribe {
            packet_id: id as u16,
            properties: Properties::default(),
            subscriptions: vec![Subscription {
                filter: Bytes::from_static(filter.as_bytes()),
                options: SubscriptionOptions::qos(QoS::AtMostOnce),
            }],
        };
        s.properties.subscription_identifiers = vec![id];
        net.send(1, Packet::Subscribe(s));
        net.recv(1);
    }
    net.connect(2, connect(V5, "p"));
    net.send(2, Packet::Publish(publish("t", "m", QoS::AtMostOnce, 0)));
    let got = net.recv(1);
    let mut ids: Vec<Vec<u32>> = publishes(&got)
        .iter()
        .map(|p| p.properties.subscription_identifiers.clone())
        .collect();
    ids.sort();
    assert_eq!(ids, [vec![1], vec![2]]);
}

/// Shared subscriptions: [MQTT-4.8.2-6] a member refusing a message (PUBACK 0x80) does
/// not get it re-sent to another member; [MQTT-4.8.2-5] nor does a member whose session
/// ended before acknowledging it.
#[test]
fn mqtt_4_8_2_5_and_4_8_2_6_a_refused_or_orphaned_shared_message_goes_to_no_other_member() {
    for refuse in [true, false] {
        let mut net = Net::new();
        net.connect(1, connect(V5, "m1"));
        net.connect(2, connect(V5, "m2"));
        for id in [1, 2] {
            net.subscribe(id, 1, &[("$share/g/job", QoS::AtLeastOnce)]);
        }
        net.connect(3, connect(V5, "p"));
        net.send(3, Packet::Publish(publish("job", "once", QoS::AtLeastOnce, 1)));
        let (one, two) = (publishes(&net.recv(1)).len(), publishes(&net.recv(2)).len());
        assert_eq!(one + two, 1, "one member gets it");
        let (first, other) = if one == 1 { (1, 2) } else { (2, 1) };
        if refuse {
            let mut no = Ack::success(1);
            no.code = ReasonCode::UnspecifiedError;
            net.send(first, Packet::PubAck(no));
        } else {
            net.conns.get_mut(&first).expect("a connection").handle_eof(net.t0);
            net.pump();
        }
        assert!(net.recv(other).is_empty(), "refuse {refuse}");
    }
}

/// [MQTT-4.3.3-9] after a PUBREC of 0x80 or more (here 0x87, the ACL refusing the
/// topic), a PUBLISH with the same Packet Identifier is a new message: acknowledged
/// with PUBREC 0x00 and, after PUBREL, delivered.
#[test]
fn mqtt_4_3_3_9_after_a_refusing_pubrec_the_identifier_is_new() {
    let mut net = Net::new();
    net.state = BrokerState::with_access(Access {
        acl: Some(Acl {
            all: Rules {
                publish: vec!["open/#".into()],
                subscribe: vec!["#".into()],
            },
            ..Acl::default()
        }),
        ..Access::default()
    });
    net.connect(1, connect(V5, "s"));
    net.subscribe(1, 1, &[("#", QoS::AtMostOnce)]);
    net.connect(2, connect(V5, "p"));
    net.send(2, Packet::Publish(publish("closed", "no", QoS::ExactlyOnce, 5)));
    let mut refused = Ack::success(5);
    refused.code = ReasonCode::NotAuthorized;
    assert_eq!(net.recv(2), [Packet::PubRec(refused)]);
    net.send(2, Packet::Publish(publish("open/t", "yes", QoS::ExactlyOnce, 5)));
    assert_eq!(net.recv(2), [Packet::PubRec(Ack::success(5))]);
    net.send(2, Packet::PubRel(Ack::success(5)));
    assert_eq!(net.recv(2), [Packet::PubComp(Ack::success(5))]);
    let got = net.recv(1);
    let got: Vec<&[u8]> = publishes(&got).iter().map(|p| &p.payload[..]).collect();
    assert_eq!(got, [&b"yes"[..]]);
}
