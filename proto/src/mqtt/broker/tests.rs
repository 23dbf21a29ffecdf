//! The broker on bytes and virtual time: clients are codecs wired to connections in
//! memory, every answer decoded from the bytes the connection wrote.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{BrokerState, Connection, ConnectionConfig};
use crate::chassis::{SegmentedBuffer, Session};
use crate::mqtt::{
    Ack, Codec, ConnAck, Connect, Packet, Properties, ProtocolVersion, Publish, QoS, Reason, ReasonCode,
    RetainHandling, SubAck, Subscribe, Subscription, SubscriptionOptions, Unsubscribe, Will,
};

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;

struct Net {
    state: BrokerState<u32>,
    conns: HashMap<u32, Connection>,
    clients: HashMap<u32, (Codec, SegmentedBuffer)>,
    /// Packets decoded but not yet looked at (what followed a SUBACK).
    pending: HashMap<u32, Vec<Packet>>,
    t0: Instant,
}

impl Net {
    fn new() -> Net {
        Net {
            state: BrokerState::new(),
            conns: HashMap::new(),
            clients: HashMap::new(),
            pending: HashMap::new(),
            t0: Instant::now(),
        }
    }

    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }

    /// Opens connection `id` and sends its CONNECT; returns the CONNACK.
    fn connect(&mut self, id: u32, connect: Connect, now: Instant) -> ConnAck {
        self.conns.insert(id, Connection::new(ConnectionConfig::default(), now));
        let version = connect.protocol;
        self.clients
            .insert(id, (Codec::client(version), SegmentedBuffer::new()));
        self.send(id, Packet::Connect(Box::new(connect)), now);
        match self.recv(id).first() {
            Some(Packet::ConnAck(ack)) => ack.clone(),
            other => panic!("no CONNACK: {other:?}"),
        }
    }

    fn send(&mut self, id: u32, packet: Packet, now: Instant) {
        let wire = super::test_wire::encode(&mut self.clients.get_mut(&id).unwrap().0, &packet);
        self.send_raw(id, &wire, now);
    }

    fn send_raw(&mut self, id: u32, bytes: &[u8], now: Instant) {
        self.conns
            .get_mut(&id)
            .unwrap()
            .handle_input(Bytes::copy_from_slice(bytes), now);
        self.pump(now);
    }

    /// Drains every connection's events into the broker until none is left.
    fn pump(&mut self, now: Instant) {
        super::test_wire::pump(&mut self.state, &mut self.conns, now);
    }

    /// What connection `id` wrote since the last call, decoded by its client.
    fn recv(&mut self, id: u32) -> Vec<Packet> {
        let bytes = super::test_wire::take_output(self.conns.get_mut(&id).unwrap());
        let (codec, buf) = self.clients.get_mut(&id).unwrap();
        let mut out = self.pending.remove(&id).unwrap_or_default();
        out.extend(super::test_wire::decode_all(codec, buf, &bytes));
        out
    }

    fn timeout(&mut self, id: u32, now: Instant) {
        self.conns.get_mut(&id).unwrap().handle_timeout(now);
        self.pump(now);
    }

    fn eof(&mut self, id: u32, now: Instant) {
        self.conns.get_mut(&id).unwrap().handle_eof(now);
        self.pump(now);
    }

    fn subscribe(&mut self, id: u32, filter: &'static str, options: SubscriptionOptions) -> SubAck {
        let now = self.t0;
        self.send(
            id,
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                properties: Properties::default(),
                subscriptions: vec![Subscription {
                    filter: Bytes::from_static(filter.as_bytes()),
                    options,
                }],
            }),
            now,
        );
        let mut got = self.recv(id);
        let first = (!got.is_empty()).then(|| got.remove(0));
        self.pending.insert(id, got);
        match first {
            Some(Packet::SubAck(ack)) => ack,
            other => panic!("no SUBACK: {other:?}"),
        }
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

fn publish(topic: &'static str, payload: &'static str, qos: QoS, retain: bool) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain,
        topic: Bytes::from_static(topic.as_bytes()),
        packet_id: if qos == QoS::AtMostOnce { 0 } else { 9 },
        properties: Properties::default(),
        payload: Bytes::from_static(payload.as_bytes()),
    })
}

fn messages(packets: &[Packet]) -> Vec<(String, String, QoS, bool)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((
                String::from_utf8_lossy(&p.topic).into_owned(),
                String::from_utf8_lossy(&p.payload).into_owned(),
                p.qos,
                p.retain,
            )),
            _ => None,
        })
        .collect()
}

fn msg(topic: &str, payload: &str, qos: QoS, retain: bool) -> (String, String, QoS, bool) {
    (topic.into(), payload.into(), qos, retain)
}

#[test]
fn connack_answers_in_each_version_and_assigns_an_id_in_v5() {
    let mut net = Net::new();
    let t = net.at(0);
    let ack = net.connect(1, connect(V5, ""), t);
    assert_eq!(ack.code, ReasonCode::Success);
    let assigned = ack.properties.assigned_client_identifier.expect("an assigned id");
    assert!(!assigned.is_empty());
    assert_eq!(net.state.client_id(1, &mut net.conns), Some(&assigned[..]));
    // 3.1.1 with an empty id and Clean Session 0: identifier rejected, closed.
    let mut c = connect(V311, "");
    c.clean_start = false;
    let ack = net.connect(2, c, t);
    assert_eq!(ack.code, ReasonCode::ClientIdentifierNotValid);
    assert!(net.conns[&2].is_closed());
    // The raw 3.1.1 CONNACK of a plain connect is 20 02 00 00.
    net.conns.insert(3, Connection::new(ConnectionConfig::default(), t));
    net.send_raw(3, b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x00\x00\x01a", t);
    let conn = net.conns.get_mut(&3).unwrap();
    assert_eq!(conn.poll_transmit().unwrap().to_vec(), b"\x20\x02\x00\x00");
}

#[test]
fn qos_is_the_lower_of_message_and_subscription() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "sub5"), t);
    net.connect(2, connect(V311, "sub3"), t);
    net.connect(3, connect(V5, "pub"), t);
    let ack = net.subscribe(1, "a/+", SubscriptionOptions::qos(QoS::AtLeastOnce));
    assert_eq!(ack.codes, [ReasonCode::GrantedQoS1]);
    let ack = net.subscribe(2, "a/#", SubscriptionOptions::qos(QoS::AtMostOnce));
    assert_eq!(ack.codes, [ReasonCode::Success]);
    net.send(3, publish("a/b", "one", QoS::AtLeastOnce, false), t);
    assert_eq!(net.recv(3), [Packet::PubAck(Ack::success(9))]);
    assert_eq!(messages(&net.recv(1)), [msg("a/b", "one", QoS::AtLeastOnce, false)]);
    assert_eq!(messages(&net.recv(2)), [msg("a/b", "one", QoS::AtMostOnce, false)]);
    net.send(3, publish("a/c", "two", QoS::AtMostOnce, false), t);
    assert_eq!(messages(&net.recv(1)), [msg("a/c", "two", QoS::AtMostOnce, false)]);
    assert_eq!(messages(&net.recv(2)), [msg("a/c", "two", QoS::AtMostOnce, false)]);
    // No match: nothing.
    net.send(3, publish("b", "three", QoS::AtMostOnce, false), t);
    assert!(net.recv(1).is_empty() && net.recv(2).is_empty());
    // The subscriber acknowledges its QoS 1 delivery: nothing left in flight.
    assert_eq!(net.conns[&1].in_flight(), 1);
    net.send(1, Packet::PubAck(Ack::success(1)), t);
    assert_eq!(net.conns[&1].in_flight(), 0);
}

#[test]
fn overlapping_subscriptions_deliver_once_at_the_highest_qos() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "s"), t);
    net.subscribe(1, "x/#", SubscriptionOptions::qos(QoS::AtMostOnce));
    net.subscribe(1, "x/+", SubscriptionOptions::qos(QoS::ExactlyOnce));
    net.connect(2, connect(V5, "p"), t);
    net.send(2, publish("x/y", "m", QoS::ExactlyOnce, false), t);
    assert_eq!(messages(&net.recv(1)), [msg("x/y", "m", QoS::ExactlyOnce, false)]);
}

#[test]
fn qos2_both_ways_routes_once() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V311, "s"), t);
    net.subscribe(1, "q", SubscriptionOptions::qos(QoS::ExactlyOnce));
    net.connect(2, connect(V311, "p"), t);
    net.send(2, publish("q", "m", QoS::ExactlyOnce, false), t);
    assert_eq!(net.recv(2), [Packet::PubRec(Ack::success(9))]);
    // A retransmission before PUBREL is acknowledged again, not delivered again.
    net.send(2, publish("q", "m", QoS::ExactlyOnce, false), t);
    assert_eq!(net.recv(2), [Packet::PubRec(Ack::success(9))]);
    net.send(2, Packet::PubRel(Ack::success(9)), t);
    assert_eq!(net.recv(2), [Packet::PubComp(Ack::success(9))]);
    assert_eq!(messages(&net.recv(1)), [msg("q", "m", QoS::ExactlyOnce, false)]);
    net.send(1, Packet::PubRec(Ack::success(1)), t);
    assert_eq!(net.recv(1), [Packet::PubRel(Ack::success(1))]);
    assert_eq!(net.conns[&1].in_flight(), 1);
    net.send(1, Packet::PubComp(Ack::success(1)), t);
    assert_eq!(net.conns[&1].in_flight(), 0);
}

#[test]
fn retained_set_replace_delete_and_retain_handling() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "p"), t);
    net.send(1, publish("r/1", "old", QoS::AtMostOnce, true), t);
    net.send(1, publish("r/1", "new", QoS::AtLeastOnce, true), t);
    net.send(1, publish("r/2", "two", QoS::AtMostOnce, true), t);
    net.send(1, publish("r/2", "", QoS::AtMostOnce, true), t);
    assert_eq!(net.state.retained_count(), 1);
    net.connect(2, connect(V5, "s"), t);
    net.subscribe(2, "r/#", SubscriptionOptions::qos(QoS::AtLeastOnce));
    assert_eq!(messages(&net.recv(2)), [msg("r/1", "new", QoS::AtLeastOnce, true)]);
    // Retain Handling 1 sends only for a new subscription; 2 never.
    let mut again = SubscriptionOptions::qos(QoS::AtMostOnce);
    again.retain_handling = RetainHandling::SendIfNew;
    net.subscribe(2, "r/#", again);
    assert!(messages(&net.recv(2)).is_empty());
    again.retain_handling = RetainHandling::DoNotSend;
    net.subscribe(2, "r/+", again);
    assert!(messages(&net.recv(2)).is_empty());
    // Live retained messages are forwarded with RETAIN 0 (Retain As Published unset).
    net.send(1, publish("r/3", "live", QoS::AtMostOnce, true), t);
    assert_eq!(messages(&net.recv(2)), [msg("r/3", "live", QoS::AtMostOnce, false)]);
}

#[test]
fn unsubscribe_stops_delivery_and_reports_in_v5() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "s"), t);
    net.subscribe(1, "u", SubscriptionOptions::qos(QoS::AtMostOnce));
    let unsub = |_| {
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 4,
            properties: Properties::default(),
            filters: vec![Bytes::from_static(b"u"), Bytes::from_static(b"never")],
        })
    };
    net.send(1, unsub(()), t);
    let Packet::UnsubAck(ack) = &net.recv(1)[0] else {
        panic!()
    };
    assert_eq!(ack.codes, [ReasonCode::Success, ReasonCode::NoSubscriptionExisted]);
    assert_eq!(net.state.subscription_count(), 0);
    net.connect(2, connect(V5, "p"), t);
    net.send(2, publish("u", "m", QoS::AtMostOnce, false), t);
    assert!(net.recv(1).is_empty());
}

#[test]
fn keepalive_is_enforced_at_one_and_a_half_times_and_publishes_the_will() {
    let mut net = Net::new();
    net.connect(1, connect(V311, "s"), net.at(0));
    net.subscribe(1, "will", SubscriptionOptions::qos(QoS::AtMostOnce));
    let mut c = connect(V5, "w");
    c.keep_alive = 10;
    c.will = Some(Will {
        properties: Properties::default(),
        topic: Bytes::from_static(b"will"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
    });
    net.connect(2, c, net.at(0));
    assert_eq!(net.conns[&2].poll_timeout(), Some(net.at(15)));
    net.send(2, Packet::PingReq, net.at(14));
    assert_eq!(net.recv(2), [Packet::PingResp]);
    assert_eq!(net.conns[&2].poll_timeout(), Some(net.at(29)));
    net.timeout(2, net.at(28));
    assert!(!net.conns[&2].is_closed(), "not before 1.5x");
    net.timeout(2, net.at(29));
    assert!(net.conns[&2].is_closed());
    assert_eq!(
        net.recv(2),
        [Packet::Disconnect(Reason::new(ReasonCode::KeepAliveTimeout))]
    );
    assert_eq!(messages(&net.recv(1)), [msg("will", "gone", QoS::AtMostOnce, false)]);
    assert_eq!(net.state.session_count(), 1, "the clean session of `w` is gone");
}

#[test]
fn a_normal_disconnect_drops_the_will_and_an_eof_publishes_it() {
    for (normal, expect) in [(true, 0), (false, 1)] {
        let mut net = Net::new();
        let t = net.at(0);
        net.connect(1, connect(V5, "s"), t);
        net.subscribe(1, "w", SubscriptionOptions::qos(QoS::AtLeastOnce));
        let mut c = connect(V311, "w");
        c.will = Some(Will {
            properties: Properties::default(),
            topic: Bytes::from_static(b"w"),
            payload: Bytes::from_static(b"bye"),
            qos: QoS::AtLeastOnce,
            retain: true,
        });
        net.connect(2, c, t);
        if normal {
            net.send(2, Packet::Disconnect(Reason::new(ReasonCode::Success)), t);
        } else {
            net.eof(2, t);
        }
        assert_eq!(messages(&net.recv(1)).len(), expect);
        assert_eq!(net.state.retained_count(), expect, "a retained will is retained");
    }
}

#[test]
fn a_connection_that_never_connects_is_closed_at_the_connect_deadline() {
    let mut net = Net::new();
    let t = net.at(0);
    net.conns.insert(1, Connection::new(ConnectionConfig::default(), t));
    net.send_raw(1, b"\x10\x0d\x00\x04MQ", t);
    assert_eq!(net.conns[&1].poll_timeout(), Some(net.at(10)));
    net.timeout(1, net.at(10));
    assert!(net.conns[&1].is_closed());
}

#[test]
fn takeover_disconnects_the_old_connection_and_keeps_a_persistent_session() {
    let mut net = Net::new();
    let t = net.at(0);
    let mut c = connect(V5, "dev");
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(60);
    net.connect(1, c.clone(), t);
    net.subscribe(1, "t", SubscriptionOptions::qos(QoS::AtMostOnce));
    let ack = net.connect(2, c, t);
    assert!(ack.session_present);
    assert!(net.conns[&1].is_closed());
    assert_eq!(
        net.recv(1),
        [Packet::Disconnect(Reason::new(ReasonCode::SessionTakenOver))]
    );
    // The old connection's end does not touch the session now held by the new one.
    net.eof(1, t);
    net.connect(3, connect(V5, "p"), t);
    net.send(3, publish("t", "m", QoS::AtMostOnce, false), t);
    assert_eq!(messages(&net.recv(2)), [msg("t", "m", QoS::AtMostOnce, false)]);
    // A clean start forgets the subscriptions.
    let ack = net.connect(4, connect(V5, "dev"), t);
    assert!(!ack.session_present);
    net.send(3, publish("t", "m", QoS::AtMostOnce, false), t);
    assert!(messages(&net.recv(4)).is_empty());
}

#[test]
fn packets_pipelined_after_connect_wait_for_the_connack() {
    let mut net = Net::new();
    let t = net.at(0);
    net.conns.insert(1, Connection::new(ConnectionConfig::default(), t));
    net.clients.insert(1, (Codec::client(V311), SegmentedBuffer::new()));
    let mut wire = crate::IoArena::new();
    let codec = &mut net.clients.get_mut(&1).unwrap().0;
    codec
        .encode(&Packet::Connect(Box::new(connect(V311, "c"))), &mut wire)
        .unwrap();
    codec
        .encode(&publish("p", "m", QoS::AtLeastOnce, false), &mut wire)
        .unwrap();
    net.send_raw(1, &wire.to_vec(), t);
    let got = net.recv(1);
    assert!(matches!(got[0], Packet::ConnAck(_)), "{got:?}");
    assert_eq!(got[1], Packet::PubAck(Ack::success(9)));
}

#[test]
fn no_local_skips_the_publishers_own_subscription() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "me"), t);
    let mut options = SubscriptionOptions::qos(QoS::AtMostOnce);
    options.no_local = true;
    net.subscribe(1, "n", options);
    net.send(1, publish("n", "m", QoS::AtMostOnce, false), t);
    assert!(messages(&net.recv(1)).is_empty());
}

#[test]
fn a_malformed_packet_closes_with_the_reason_and_the_will() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "c"), t);
    // SUBSCRIBE with reserved flags 0000: malformed.
    net.send_raw(1, &[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'#', 0x00], t);
    assert!(net.conns[&1].is_closed());
    assert_eq!(
        net.recv(1),
        [Packet::Disconnect(Reason::new(ReasonCode::MalformedPacket))]
    );
}

#[test]
fn nothing_larger_than_the_clients_maximum_packet_size_is_sent() {
    let mut net = Net::new();
    let t = net.at(0);
    let mut c = connect(V5, "small");
    c.properties.maximum_packet_size = Some(20);
    net.connect(1, c, t);
    net.subscribe(1, "m", SubscriptionOptions::qos(QoS::AtLeastOnce));
    net.connect(2, connect(V5, "p"), t);
    net.send(2, publish("m", "fits", QoS::AtLeastOnce, false), t);
    net.send(
        2,
        publish("m", "far too long for twenty bytes", QoS::AtLeastOnce, false),
        t,
    );
    assert_eq!(messages(&net.recv(1)), [msg("m", "fits", QoS::AtLeastOnce, false)]);
    assert_eq!(net.conns[&1].in_flight(), 1, "the dropped message holds no packet id");
}
