//! Delivery guarantees on bytes and virtual time: inflight windows both ways, queues of
//! offline sessions, resends on resumption only, session and message expiry, the output
//! cap of a slow subscriber, keep alive limits, session takeover.
//!
//! Each test names the normative statement it checks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{BrokerState, Connection, ConnectionConfig};
use crate::chassis::{SegmentedBuffer, Session};
use crate::mqtt::{
    Ack, Codec, ConnAck, Connect, Packet, Properties, ProtocolVersion, Publish, QoS, Reason, ReasonCode, Subscribe,
    Subscription, SubscriptionOptions,
};

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;

/// Clients (codecs) wired to broker connections in memory, on a virtual clock.
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

    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }

    /// Opens connection `id` with `config`, sends `connect`; returns the CONNACK and
    /// whatever followed it.
    fn connect_with(
        &mut self,
        id: u32,
        config: ConnectionConfig,
        connect: Connect,
        now: Instant,
    ) -> (ConnAck, Vec<Packet>) {
        self.conns.insert(id, Connection::new(config, now));
        self.clients
            .insert(id, (Codec::client(connect.protocol), SegmentedBuffer::new()));
        self.send(id, Packet::Connect(Box::new(connect)), now);
        let mut got = self.recv(id);
        match got.first() {
            Some(Packet::ConnAck(ack)) => {
                let ack = ack.clone();
                got.remove(0);
                (ack, got)
            }
            other => panic!("no CONNACK: {other:?}"),
        }
    }

    fn connect(&mut self, id: u32, connect: Connect, now: Instant) -> (ConnAck, Vec<Packet>) {
        self.connect_with(id, ConnectionConfig::default(), connect, now)
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

    fn pump(&mut self, now: Instant) {
        super::test_wire::pump(&mut self.state, &mut self.conns, now);
    }

    /// Bytes connection `id` has not yet handed to the kernel.
    fn unsent(&self, id: u32) -> usize {
        self.conns[&id].unsent()
    }

    /// What connection `id` wrote since the last call, decoded by its client.
    fn recv(&mut self, id: u32) -> Vec<Packet> {
        let bytes = super::test_wire::take_output(self.conns.get_mut(&id).unwrap());
        let (codec, buf) = self.clients.get_mut(&id).unwrap();
        super::test_wire::decode_all(codec, buf, &bytes)
    }

    fn eof(&mut self, id: u32, now: Instant) {
        self.conns.get_mut(&id).unwrap().handle_eof(now);
        self.pump(now);
        self.conns.remove(&id);
    }

    fn subscribe(&mut self, id: u32, filter: &'static str, qos: QoS, now: Instant) {
        self.send(
            id,
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                properties: Properties::default(),
                subscriptions: vec![Subscription {
                    filter: Bytes::from_static(filter.as_bytes()),
                    options: SubscriptionOptions::qos(qos),
                }],
            }),
            now,
        );
        assert!(matches!(self.recv(id).first(), Some(Packet::SubAck(_))));
    }

    /// Publishes from connection `id` with packet identifier `pid` and drops its ack.
    fn publish(&mut self, id: u32, pid: u16, payload: &str, qos: QoS, expiry: Option<u32>, now: Instant) {
        self.send(id, Packet::Publish(publish(pid, payload, qos, expiry)), now);
        self.recv(id);
    }
}

fn connect(version: ProtocolVersion, id: &'static str, clean: bool, expiry: Option<u32>) -> Connect {
    Connect {
        protocol: version,
        clean_start: clean,
        keep_alive: 0,
        properties: Properties {
            session_expiry_interval: expiry,
            ..Properties::default()
        },
        client_id: Bytes::from_static(id.as_bytes()),
        will: None,
        username: None,
        password: None,
    }
}

fn publish(pid: u16, payload: &str, qos: QoS, expiry: Option<u32>) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: Bytes::from_static(b"d/t"),
        packet_id: if qos == QoS::AtMostOnce { 0 } else { pid },
        properties: Properties {
            message_expiry_interval: expiry,
            ..Properties::default()
        },
        payload: Bytes::copy_from_slice(payload.as_bytes()),
    }
}

/// (payload, qos, packet id, dup) of each PUBLISH; PUBREL as ("PUBREL", id).
fn seen(packets: &[Packet]) -> Vec<(String, u16, bool)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((String::from_utf8_lossy(&p.payload).into_owned(), p.packet_id, p.dup)),
            Packet::PubRel(a) => Some(("PUBREL".into(), a.packet_id, false)),
            _ => None,
        })
        .collect()
}

fn s(payload: &str, id: u16, dup: bool) -> (String, u16, bool) {
    (payload.into(), id, dup)
}

#[test]
fn the_clients_receive_maximum_bounds_what_is_in_flight() {
    // [MQTT-3.3.4-9]: never more than the client's Receive Maximum unacknowledged QoS 1
    // and 2 PUBLISH; the rest waits in order and follows the acknowledgements.
    let mut net = Net::new();
    let t = net.at(0);
    let mut c = connect(V5, "sub", true, None);
    c.properties.receive_maximum = Some(2);
    net.connect(1, c, t);
    net.subscribe(1, "d/#", QoS::ExactlyOnce, t);
    net.connect(2, connect(V5, "pub", true, None), t);
    for (i, p) in ["a", "b", "c", "d"].iter().enumerate() {
        net.publish(2, i as u16 + 1, p, QoS::AtLeastOnce, None, t);
    }
    assert_eq!(seen(&net.recv(1)), [s("a", 1, false), s("b", 2, false)]);
    assert_eq!((net.conns[&1].in_flight(), net.conns[&1].queued()), (2, 2));
    // QoS 0 is outside the window.
    net.publish(2, 0, "zero", QoS::AtMostOnce, None, t);
    assert_eq!(seen(&net.recv(1)), [s("zero", 0, false)]);
    net.send(1, Packet::PubAck(Ack::success(1)), t);
    assert_eq!(seen(&net.recv(1)), [s("c", 3, false)]);
    // A QoS 2 flow holds its place until PUBCOMP, not PUBREC.
    net.publish(2, 9, "e", QoS::ExactlyOnce, None, t);
    net.send(1, Packet::PubAck(Ack::success(2)), t);
    net.send(1, Packet::PubAck(Ack::success(3)), t);
    assert_eq!(seen(&net.recv(1)), [s("d", 4, false), s("e", 5, false)]);
    net.publish(2, 10, "f", QoS::AtLeastOnce, None, t);
    net.send(1, Packet::PubRec(Ack::success(5)), t);
    assert_eq!(seen(&net.recv(1)), [s("PUBREL", 5, false)]);
    net.send(1, Packet::PubComp(Ack::success(5)), t);
    assert_eq!(seen(&net.recv(1)), [s("f", 6, false)]);
}

#[test]
fn the_brokers_receive_maximum_is_announced_and_enforced_with_0x93() {
    // The CONNACK's Receive Maximum; a client with more unreleased QoS 2 messages gets
    // DISCONNECT 0x93 (5.0 §3.3.4, §4.9). A retransmission does not count twice.
    let config = ConnectionConfig {
        receive_maximum: 2,
        ..ConnectionConfig::default()
    };
    let mut net = Net::new();
    let t = net.at(0);
    let (ack, _) = net.connect_with(1, config, connect(V5, "p", true, None), t);
    assert_eq!(ack.properties.receive_maximum, Some(2));
    net.send(1, Packet::Publish(publish(1, "a", QoS::ExactlyOnce, None)), t);
    net.send(1, Packet::Publish(publish(2, "b", QoS::ExactlyOnce, None)), t);
    net.send(1, Packet::Publish(publish(2, "b", QoS::ExactlyOnce, None)), t);
    assert_eq!(net.recv(1).len(), 3, "three PUBRECs");
    // QoS 1 is acknowledged at once and never waits.
    net.send(1, Packet::Publish(publish(3, "q1", QoS::AtLeastOnce, None)), t);
    assert_eq!(net.recv(1), [Packet::PubAck(Ack::success(3))]);
    assert!(!net.conns[&1].is_closed());
    net.send(1, Packet::Publish(publish(4, "c", QoS::ExactlyOnce, None)), t);
    assert_eq!(
        net.recv(1),
        [Packet::Disconnect(Reason::new(ReasonCode::ReceiveMaximumExceeded))]
    );
    assert!(net.conns[&1].is_closed());
    // A 3.1.1 CONNACK has no properties: nothing announced.
    let (ack, _) = net.connect_with(2, config, connect(V311, "q", true, None), t);
    assert_eq!(ack.properties, Properties::default());
}

#[test]
fn an_offline_session_queues_and_resumes_with_resends_then_the_queue() {
    // [MQTT-3.1.2-5] (3.1.1) / [MQTT-3.1.2-23] (5.0): the session stores QoS 1 and 2
    // messages while the client is away; [MQTT-4.4.0-1]: on resumption, unacknowledged
    // PUBLISH (DUP 1 [MQTT-3.3.1-1]) and PUBREL are resent with their identifiers, in
    // order, then the queue drains; session present 1 (3.1.1 [MQTT-3.2.2-2], 5.0
    // [MQTT-3.2.2-3]).
    for (version, expiry) in [(V311, None), (V5, Some(60))] {
        let mut net = Net::new();
        let t = net.at(0);
        net.connect(1, connect(version, "s", false, expiry), t);
        net.subscribe(1, "d/#", QoS::ExactlyOnce, t);
        net.connect(2, connect(V5, "pub", true, None), t);
        net.publish(2, 1, "one", QoS::ExactlyOnce, None, t);
        net.publish(2, 2, "two", QoS::ExactlyOnce, None, t);
        assert_eq!(seen(&net.recv(1)), [s("one", 1, false), s("two", 2, false)]);
        // "two" is received: the broker releases it; then the client goes away.
        net.send(1, Packet::PubRec(Ack::success(2)), t);
        assert_eq!(seen(&net.recv(1)), [s("PUBREL", 2, false)]);
        net.eof(1, t);
        assert_eq!(net.state.session_count(), 2, "{version}: the session stays");
        net.publish(2, 3, "three", QoS::AtLeastOnce, None, t);
        net.publish(2, 0, "lost", QoS::AtMostOnce, None, t);
        net.publish(2, 4, "four", QoS::ExactlyOnce, None, t);
        let (ack, after) = net.connect(3, connect(version, "s", false, expiry), net.at(5));
        assert!(ack.session_present, "{version}");
        assert_eq!(
            seen(&after),
            [
                s("one", 1, true),
                s("PUBREL", 2, false),
                s("three", 3, false),
                s("four", 4, false)
            ],
            "{version}"
        );
    }
}

#[test]
fn nothing_is_resent_on_the_same_connection_whatever_the_time() {
    // [MQTT-4.4.0-1]: resends only on resumption, never on a timer.
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "s", false, Some(60)), t);
    net.subscribe(1, "d/#", QoS::AtLeastOnce, t);
    net.connect(2, connect(V5, "pub", true, None), t);
    net.publish(2, 1, "m", QoS::AtLeastOnce, None, t);
    assert_eq!(seen(&net.recv(1)), [s("m", 1, false)]);
    for secs in [1, 60, 3600] {
        let later = net.at(secs);
        net.conns.get_mut(&1).unwrap().handle_timeout(later);
        net.pump(later);
        assert!(net.recv(1).is_empty(), "resent after {secs} s");
    }
    assert_eq!(net.conns[&1].in_flight(), 1);
}

#[test]
fn a_clean_start_discards_what_was_queued() {
    // [MQTT-3.1.2-4] (5.0) / [MQTT-3.1.2-6] (3.1.1): Clean Start 1 starts a new session.
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V311, "s", false, None), t);
    net.subscribe(1, "d/#", QoS::AtLeastOnce, t);
    net.eof(1, t);
    net.connect(2, connect(V5, "pub", true, None), t);
    net.publish(2, 1, "queued", QoS::AtLeastOnce, None, t);
    let (ack, after) = net.connect(3, connect(V311, "s", true, None), t);
    assert!(!ack.session_present);
    assert!(after.is_empty());
}

#[test]
fn the_offline_queue_is_bounded_and_refuses_the_newest() {
    let config = ConnectionConfig {
        max_queued_messages: 3,
        ..ConnectionConfig::default()
    };
    let mut net = Net::new();
    let t = net.at(0);
    net.connect_with(1, config, connect(V311, "s", false, None), t);
    net.subscribe(1, "d/#", QoS::AtLeastOnce, t);
    net.eof(1, t);
    net.connect(2, connect(V5, "pub", true, None), t);
    for (i, p) in ["1", "2", "3", "4", "5"].iter().enumerate() {
        net.publish(2, i as u16 + 1, p, QoS::AtLeastOnce, None, t);
    }
    let (_, after) = net.connect_with(3, config, connect(V311, "s", false, None), t);
    assert_eq!(seen(&after), [s("1", 1, false), s("2", 2, false), s("3", 3, false)]);
    assert_eq!(net.conns[&3].dropped(), 2);
}

#[test]
fn sessions_expire_on_virtual_time_with_their_queues() {
    // [MQTT-3.1.2-23]: kept for the Session Expiry Interval after the connection
    // closes, then gone; 0xFFFFFFFF never expires.
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "short", false, Some(10)), t);
    net.subscribe(1, "d/#", QoS::AtLeastOnce, t);
    net.connect(2, connect(V5, "forever", false, Some(u32::MAX)), t);
    net.subscribe(2, "d/#", QoS::AtLeastOnce, t);
    net.connect(3, connect(V5, "gone", true, None), t);
    net.subscribe(3, "d/#", QoS::AtLeastOnce, t);
    assert_eq!(net.state.poll_timeout(), None, "nobody offline");
    net.eof(1, t);
    net.eof(2, t);
    net.eof(3, t);
    // Expiry 0 (absent): the session ended with its connection.
    assert_eq!(net.state.session_count(), 2);
    assert_eq!(net.state.poll_timeout(), Some(net.at(10)));
    net.connect(4, connect(V5, "pub", true, None), t);
    net.publish(4, 1, "queued", QoS::AtLeastOnce, None, t);
    net.state.handle_timeout(net.at(9), &mut net.conns);
    assert_eq!(net.state.session_count(), 3);
    net.state.handle_timeout(net.at(10), &mut net.conns);
    assert_eq!(net.state.session_count(), 2, "short expired; forever and pub stay");
    assert_eq!(net.state.subscription_count(), 1);
    assert_eq!(net.state.poll_timeout(), None);
    let (ack, after) = net.connect(5, connect(V5, "short", false, Some(10)), net.at(11));
    assert!(!ack.session_present);
    assert!(after.is_empty());
    let (ack, after) = net.connect(6, connect(V5, "forever", false, Some(u32::MAX)), net.at(1_000_000));
    assert!(ack.session_present);
    assert_eq!(seen(&after), [s("queued", 1, false)]);
}

#[test]
fn a_resumed_session_outlives_its_old_deadline() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "s", false, Some(10)), t);
    net.eof(1, t);
    net.connect(2, connect(V5, "s", false, Some(10)), net.at(5));
    net.state.handle_timeout(net.at(10), &mut net.conns);
    assert_eq!(net.state.session_count(), 1, "connected: not expired");
    net.eof(2, net.at(20));
    assert_eq!(net.state.poll_timeout(), Some(net.at(30)));
    net.state.handle_timeout(net.at(30), &mut net.conns);
    assert_eq!(net.state.session_count(), 0);
    // A session found past its deadline before the sweep is not resumed either.
    net.connect(3, connect(V5, "x", false, Some(1)), t);
    net.eof(3, t);
    let (ack, _) = net.connect(4, connect(V5, "x", false, Some(1)), net.at(2));
    assert!(!ack.session_present);
}

#[test]
fn queued_messages_expire_and_carry_the_interval_left() {
    // [MQTT-3.3.2-5]: an expired message is not delivered; [MQTT-3.3.2-6]: the
    // forwarded PUBLISH carries the interval minus the time it waited.
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "s", false, Some(600)), t);
    net.subscribe(1, "d/#", QoS::AtLeastOnce, t);
    net.connect(2, connect(V5, "pub", true, None), t);
    net.publish(2, 1, "live", QoS::AtLeastOnce, Some(30), t);
    let live = net.recv(1);
    match &live[..] {
        [Packet::Publish(p)] => assert_eq!(p.properties.message_expiry_interval, Some(30)),
        other => panic!("{other:?}"),
    }
    net.send(1, Packet::PubAck(Ack::success(1)), t);
    net.eof(1, t);
    net.publish(2, 2, "short", QoS::AtLeastOnce, Some(5), t);
    net.publish(2, 3, "long", QoS::AtLeastOnce, Some(100), t);
    net.publish(2, 4, "none", QoS::AtLeastOnce, None, t);
    let (_, after) = net.connect(3, connect(V5, "s", false, Some(600)), net.at(10));
    let got: Vec<(String, Option<u32>)> = after
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((
                String::from_utf8_lossy(&p.payload).into_owned(),
                p.properties.message_expiry_interval,
            )),
            _ => None,
        })
        .collect();
    assert_eq!(got, [("long".to_string(), Some(90)), ("none".to_string(), None)]);
}

#[test]
fn a_slow_subscriber_is_capped_qos0_dropped_qos1_queued() {
    // Unsent output past `max_output_bytes`: QoS 0 dropped and counted, QoS 1 and 2 to
    // the bounded queue; others still receive; the queue follows once the client reads.
    let config = ConnectionConfig {
        max_output_bytes: 1000,
        max_queued_messages: 5,
        ..ConnectionConfig::default()
    };
    let payload = "x".repeat(100);
    let mut net = Net::new();
    let t = net.at(0);
    net.connect_with(1, config, connect(V311, "slow", true, None), t);
    net.subscribe(1, "d/#", QoS::AtLeastOnce, t);
    net.connect(2, connect(V311, "fast", true, None), t);
    net.subscribe(2, "d/#", QoS::AtMostOnce, t);
    net.connect(3, connect(V311, "pub", true, None), t);
    for _ in 0..100 {
        net.publish(3, 0, &payload, QoS::AtMostOnce, None, t);
        assert_eq!(net.recv(2).len(), 1, "the fast subscriber gets every message");
    }
    // The output stops at the cap plus at most one message.
    let unsent = net.unsent(1);
    assert!((1000..1000 + 110).contains(&unsent), "{unsent} bytes unsent");
    assert_eq!(net.conns[&1].dropped(), 100 - 10);
    for i in 0..8 {
        net.publish(3, i + 1, &payload, QoS::AtLeastOnce, None, t);
    }
    assert_eq!(net.conns[&1].queued(), 5, "bounded queue");
    assert_eq!(net.conns[&1].dropped(), 90 + 3);
    assert_eq!(net.unsent(1), unsent);
    // The client reads everything: the queue follows (from poll_transmit).
    assert_eq!(net.recv(1).len(), 10);
    assert_eq!(seen(&net.recv(1)).len(), 5);
    assert_eq!(net.conns[&1].queued(), 0);
}

#[test]
fn takeover_moves_the_session_and_what_is_in_flight() {
    // [MQTT-3.1.4-3]: the existing connection is disconnected (5.0: 0x8E) and, with
    // Clean Start 0, the session continues on the new one [MQTT-4.4.0-1].
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "same", false, Some(60)), t);
    net.subscribe(1, "d/#", QoS::AtLeastOnce, t);
    net.connect(2, connect(V5, "pub", true, None), t);
    net.publish(2, 1, "held", QoS::AtLeastOnce, None, t);
    assert_eq!(seen(&net.recv(1)), [s("held", 1, false)]);
    let (ack, after) = net.connect(3, connect(V5, "same", false, Some(60)), t);
    assert!(ack.session_present);
    assert_eq!(seen(&after), [s("held", 1, true)]);
    assert_eq!(
        net.recv(1),
        [Packet::Disconnect(Reason::new(ReasonCode::SessionTakenOver))]
    );
    assert!(net.conns[&1].is_closed());
    net.publish(2, 2, "next", QoS::AtLeastOnce, None, t);
    assert_eq!(seen(&net.recv(3)), [s("next", 2, false)]);
    assert!(net.recv(1).is_empty());
}

#[test]
fn a_server_keep_alive_cap_is_announced_and_enforced_at_one_and_a_half() {
    // [MQTT-3.2.2-21]: the client uses the Server Keep Alive; [MQTT-3.1.2-22]: closed
    // after 1.5 times it without a packet.
    let config = ConnectionConfig {
        max_keep_alive: Some(10),
        ..ConnectionConfig::default()
    };
    let mut net = Net::new();
    let t = net.at(0);
    let mut c = connect(V5, "k", true, None);
    c.keep_alive = 600;
    let (ack, _) = net.connect_with(1, config, c, t);
    assert_eq!(ack.properties.server_keep_alive, Some(10));
    assert_eq!(net.conns[&1].poll_timeout(), Some(net.at(15)));
    let (t14, t15) = (net.at(14), net.at(15));
    net.conns.get_mut(&1).unwrap().handle_timeout(t14);
    assert!(!net.conns[&1].is_closed());
    net.conns.get_mut(&1).unwrap().handle_timeout(t15);
    assert!(net.conns[&1].is_closed());
    assert_eq!(
        net.recv(1),
        [Packet::Disconnect(Reason::new(ReasonCode::KeepAliveTimeout))]
    );
    // 3.1.1 cannot be told: refused (identifier rejected, 0x02 on the wire).
    let mut c = connect(V311, "k3", true, None);
    c.keep_alive = 600;
    let (ack, _) = net.connect_with(2, config, c, t);
    assert_eq!(ack.code, ReasonCode::ClientIdentifierNotValid);
    assert!(net.conns[&2].is_closed());
}

#[test]
fn a_huge_remaining_length_closes_without_buffering() {
    // The Maximum Packet Size is checked from the fixed header: a PUBLISH announcing
    // ~100 MB gets DISCONNECT 0x95 and the close, before any body is held.
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "big", true, None), t);
    // 0x30, remaining length 100,000,000 as a variable byte integer (80 c2 d7 2f).
    net.send_raw(1, b"\x30\x80\xc2\xd7\x2f\x00\x01t", t);
    assert_eq!(
        net.recv(1),
        [Packet::Disconnect(Reason::new(ReasonCode::PacketTooLarge))]
    );
    assert!(net.conns[&1].is_closed());
}

#[test]
fn the_disconnect_may_change_the_session_expiry_but_not_from_zero() {
    // [MQTT-3.1.2-23] with the DISCONNECT's interval; from 0 it is a
    // protocol error (5.0 3.14.2.2.2, a sentence without a statement number).
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "shorter", false, Some(600)), t);
    let mut bye = Reason::new(ReasonCode::Success);
    bye.properties.session_expiry_interval = Some(0);
    net.send(1, Packet::Disconnect(bye.clone()), t);
    assert_eq!(net.state.session_count(), 0, "ended at the DISCONNECT");
    net.connect(2, connect(V5, "longer", false, Some(1)), t);
    bye.properties.session_expiry_interval = Some(60);
    net.send(2, Packet::Disconnect(bye.clone()), t);
    assert_eq!(net.state.poll_timeout(), Some(net.at(60)));
    net.connect(3, connect(V5, "zero", false, None), t);
    net.send(3, Packet::Disconnect(bye), t);
    assert_eq!(
        net.recv(3),
        [Packet::Disconnect(Reason::new(ReasonCode::ProtocolError))]
    );
    assert!(net.conns[&3].is_closed());
    assert_eq!(net.state.session_count(), 1, "only longer is kept");
}

#[test]
fn a_resend_too_large_for_the_new_connection_ends_its_flow() {
    // [MQTT-3.1.2-25]: nothing over the client's Maximum Packet Size is sent; the
    // message then does not hold a window place for ever.
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "s", false, Some(60)), t);
    net.subscribe(1, "d/#", QoS::AtLeastOnce, t);
    net.connect(2, connect(V5, "pub", true, None), t);
    net.publish(2, 1, &"x".repeat(200), QoS::AtLeastOnce, None, t);
    assert_eq!(net.recv(1).len(), 1);
    net.eof(1, t);
    let mut small = connect(V5, "s", false, Some(60));
    small.properties.maximum_packet_size = Some(100);
    small.properties.receive_maximum = Some(1);
    let (ack, after) = net.connect(3, small, t);
    assert!(ack.session_present);
    assert!(after.is_empty(), "{after:?}");
    assert_eq!(net.conns[&3].in_flight(), 0);
    // The window of 1 is free for the next message.
    net.publish(2, 2, "small", QoS::AtLeastOnce, None, t);
    assert_eq!(seen(&net.recv(3)), [s("small", 2, false)]);
}

/// A broker with a store: the store operations it records, applied to an in-memory
/// model of the store, as the body applies them to redb.
mod store {
    use std::collections::BTreeMap;

    use super::*;
    use std::time::SystemTime;

    use crate::mqtt::broker::{StoreOp, StoredMessage, StoredSession};

    fn durable() -> ConnectionConfig {
        ConnectionConfig {
            durable: true,
            ..ConnectionConfig::default()
        }
    }

    fn ops(net: &mut Net) -> Vec<StoreOp> {
        let mut out = Vec::new();
        net.state.drain_store_ops(&mut out);
        out
    }

    /// The sessions a store holding `ops` returns at start.
    fn replay(ops: &[StoreOp]) -> Vec<StoredSession> {
        let mut sessions: BTreeMap<Bytes, StoredSession> = BTreeMap::new();
        for op in ops {
            match op.clone() {
                StoreOp::Session { client, record } => {
                    sessions
                        .entry(client.clone())
                        .or_insert_with(|| StoredSession {
                            client,
                            record,
                            subscriptions: vec![],
                            messages: vec![],
                            received: vec![],
                        })
                        .record = record;
                }
                StoreOp::SessionDropped { client } => {
                    sessions.remove(&client);
                }
                StoreOp::Subscribed { client, filter, record } => {
                    let s = sessions.get_mut(&client).expect("subscribed to a stored session");
                    s.subscriptions.retain(|(f, _)| *f != filter);
                    s.subscriptions.push((filter, record));
                }
                StoreOp::Unsubscribed { client, filter } => {
                    sessions
                        .get_mut(&client)
                        .unwrap()
                        .subscriptions
                        .retain(|(f, _)| *f != filter);
                }
                StoreOp::Queued {
                    client,
                    seq,
                    publish,
                    expires_at,
                } => sessions.get_mut(&client).unwrap().messages.push(StoredMessage {
                    seq,
                    publish,
                    flight: None,
                    expires_at,
                }),
                StoreOp::InFlight { client, seq, flight } => {
                    let s = sessions.get_mut(&client).expect("a stored session");
                    s.messages
                        .iter_mut()
                        .find(|m| m.seq == seq)
                        .expect("a stored message")
                        .flight = Some(flight);
                }
                StoreOp::Delivered { client, seq } => {
                    sessions.get_mut(&client).unwrap().messages.retain(|m| m.seq != seq)
                }
                StoreOp::Received { client, packet_id } => sessions.get_mut(&client).unwrap().received.push(packet_id),
                StoreOp::Released { client, packet_id } => sessions
                    .get_mut(&client)
                    .unwrap()
                    .received
                    .retain(|id| *id != packet_id),
                StoreOp::Retained { .. } | StoreOp::RetainedDeleted { .. } => {}
            }
        }
        sessions.into_values().collect()
    }

    #[test]
    fn only_persistent_sessions_and_qos_1_2_messages_are_recorded_and_acks_wait() {
        let mut net = Net::new();
        net.state.enable_store();
        let t = net.at(0);
        net.connect_with(1, durable(), connect(V5, "sub", true, Some(100)), t);
        net.subscribe(1, "d/#", QoS::ExactlyOnce, t);
        net.connect_with(3, durable(), connect(V5, "clean", true, None), t);
        net.subscribe(3, "d/#", QoS::ExactlyOnce, t);
        let recorded = ops(&mut net);
        assert!(
            matches!(&recorded[..], [StoreOp::Session { client, .. }, StoreOp::Subscribed { .. }] if client == "sub")
        );
        net.eof(1, t);
        net.connect_with(2, durable(), connect(V5, "pub", true, None), t);
        assert!(
            ops(&mut net).is_empty(),
            "a clean session costs nothing: {:?}",
            ops(&mut net)
        );
        net.send(2, Packet::Publish(publish(1, "one", QoS::AtLeastOnce, None)), t);
        // The PUBACK waits for the commit.
        assert!(net.recv(2).is_empty());
        assert!(net.conns.get_mut(&2).unwrap().release_held());
        assert!(matches!(net.recv(2)[..], [Packet::PubAck(_)]));
        net.publish(2, 2, "two", QoS::ExactlyOnce, None, t);
        net.publish(2, 0, "zero", QoS::AtMostOnce, None, t);
        let recorded = ops(&mut net);
        let queued: Vec<_> = recorded
            .iter()
            .map(|op| match op {
                StoreOp::Queued {
                    client, seq, publish, ..
                } => (client.clone(), *seq, publish.payload.clone()),
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(
            queued,
            [
                ("sub".into(), 1, Bytes::from("one")),
                ("sub".into(), 2, Bytes::from("two"))
            ]
        );
    }

    #[test]
    fn a_restored_session_gets_its_messages_and_its_acks_are_recorded() {
        let mut net = Net::new();
        net.state.enable_store();
        let t = net.at(0);
        net.connect_with(1, durable(), connect(V311, "sub", false, None), t);
        net.subscribe(1, "d/#", QoS::ExactlyOnce, t);
        net.eof(1, t);
        net.connect_with(2, durable(), connect(V5, "pub", false, Some(60)), t);
        net.publish(2, 1, "one", QoS::AtLeastOnce, None, t);
        net.conns.get_mut(&2).unwrap().release_held();
        assert!(matches!(net.recv(2)[..], [Packet::PubAck(_)]));
        // A QoS 2 message received, PUBREC sent, not released: then the restart.
        net.send(2, Packet::Publish(publish(7, "two", QoS::ExactlyOnce, None)), t);
        net.conns.get_mut(&2).unwrap().release_held();
        assert!(matches!(net.recv(2)[..], [Packet::PubRec(_)]));
        let recorded = ops(&mut net);
        let stored = replay(&recorded);
        assert_eq!(stored.len(), 2, "{recorded:?}");

        let mut after = Net::new();
        after.state.restore(stored, vec![], 1000, t, SystemTime::now());
        let (ack, got) = after.connect_with(1, durable(), connect(V311, "sub", false, None), t);
        assert!(ack.session_present);
        assert_eq!(seen(&got), [s("one", 1, false), s("two", 2, false)]);
        // The publisher's PUBREL finds its identifier and completes.
        let (ack, _) = after.connect_with(2, durable(), connect(V5, "pub", false, Some(60)), t);
        assert!(ack.session_present);
        after.send(2, Packet::PubRel(Ack::success(7)), t);
        assert!(after.conns.get_mut(&2).unwrap().release_held());
        assert!(matches!(&after.recv(2)[..], [Packet::PubComp(a)] if a.code == ReasonCode::Success));
        // Nothing is routed twice.
        assert!(seen(&after.recv(1)).is_empty());
        after.send(1, Packet::PubAck(Ack::success(1)), t);
        after.send(1, Packet::PubRec(Ack::success(2)), t);
        after.send(1, Packet::PubComp(Ack::success(2)), t);
        let recorded = ops(&mut after);
        assert!(recorded.contains(&StoreOp::Released {
            client: "pub".into(),
            packet_id: 7
        }));
        let delivered: Vec<_> = recorded
            .iter()
            .filter_map(|op| match op {
                StoreOp::Delivered { seq, .. } => Some(*seq),
                _ => None,
            })
            .collect();
        assert_eq!(delivered, [1, 2]);
        // A clean start forgets the stored session.
        after.eof(1, t);
        after.connect_with(4, durable(), connect(V311, "sub", true, None), t);
        assert!(ops(&mut after).contains(&StoreOp::SessionDropped { client: "sub".into() }));
    }

    /// A connection's packets since the last call, released if held (the commit).
    fn flush(net: &mut Net, id: u32) -> Vec<Packet> {
        net.conns.get_mut(&id).unwrap().release_held();
        net.recv(id)
    }

    /// The packet identifiers of the `InFlight` steps in `ops`, with whether released.
    fn flights(ops: &[StoreOp]) -> Vec<(u16, bool)> {
        ops.iter()
            .filter_map(|op| match op {
                StoreOp::InFlight { flight, .. } => Some((flight.packet_id, flight.released)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_identifier_or_a_release_is_stored_before_it_is_written() {
        // [MQTT-4.4.0-1] after a restart needs the store to hold each flow as the client
        // saw it: a queued message that an acknowledgement starts, and a PUBREL, go out
        // only after the commit that records them (before, they went in the driver's
        // same turn, and a crash there resent the message under another identifier).
        let mut net = Net::new();
        net.state.enable_store();
        let t = net.at(0);
        let mut sub = connect(V5, "sub", false, Some(100));
        sub.properties.receive_maximum = Some(1);
        net.connect_with(1, durable(), sub, t);
        net.subscribe(1, "d/#", QoS::ExactlyOnce, t);
        net.connect_with(2, durable(), connect(V5, "pub", true, None), t);
        net.send(2, Packet::Publish(publish(1, "one", QoS::AtLeastOnce, None)), t);
        net.send(2, Packet::Publish(publish(2, "two", QoS::AtLeastOnce, None)), t);
        flush(&mut net, 2);
        let first = seen(&net.recv(1));
        assert_eq!(first.len(), 1, "a window of one: {first:?}");
        ops(&mut net);

        net.send(1, Packet::PubAck(Ack::success(first[0].1)), t);
        assert!(
            net.recv(1).is_empty(),
            "PUBLISH written before its identifier was stored"
        );
        let recorded = ops(&mut net);
        let second = seen(&flush(&mut net, 1));
        assert_eq!(second.len(), 1, "{second:?}");
        assert_eq!((second[0].0.as_str(), second[0].2), ("two", false));
        assert_eq!(flights(&recorded), [(second[0].1, false)], "{recorded:?}");

        net.send(1, Packet::PubAck(Ack::success(second[0].1)), t);
        flush(&mut net, 1);
        net.send(2, Packet::Publish(publish(3, "three", QoS::ExactlyOnce, None)), t);
        flush(&mut net, 2);
        let third = seen(&net.recv(1));
        assert_eq!(third.len(), 1, "{third:?}");
        ops(&mut net);
        net.send(1, Packet::PubRec(Ack::success(third[0].1)), t);
        assert!(net.recv(1).is_empty(), "PUBREL written before the release was stored");
        assert_eq!(flights(&ops(&mut net)), [(third[0].1, true)]);
        assert_eq!(seen(&flush(&mut net, 1)), [s("PUBREL", third[0].1, false)]);
    }

    #[test]
    fn queued_messages_start_from_the_body_after_a_write() {
        // A durable connection does not start queued messages while the driver takes
        // its output (nothing records their identifiers there): it asks to hear of the
        // write, and the body starts them in a turn that ends with a commit.
        let mut net = Net::new();
        net.state.enable_store();
        let t = net.at(0);
        let small = ConnectionConfig {
            durable: true,
            max_output_bytes: 100,
            ..ConnectionConfig::default()
        };
        net.connect_with(1, small, connect(V5, "sub", false, Some(100)), t);
        net.subscribe(1, "d/#", QoS::AtLeastOnce, t);
        net.connect_with(2, durable(), connect(V5, "pub", true, None), t);
        let big = "x".repeat(150);
        for pid in 1..=3 {
            net.send(2, Packet::Publish(publish(pid, &big, QoS::AtLeastOnce, None)), t);
        }
        flush(&mut net, 2);
        let recorded = ops(&mut net);
        assert_eq!(flights(&recorded).len(), 1, "{recorded:?}");
        assert_eq!(net.conns[&1].queued(), 2);
        assert!(
            !net.conns.get_mut(&1).unwrap().handle_sent(),
            "a full output does not ask"
        );
        assert_eq!(seen(&net.recv(1)).len(), 1);
        // The kernel took everything: the queue waits for the body.
        assert!(
            net.recv(1).is_empty(),
            "a queued message written before its identifier was stored"
        );
        let c = net.conns.get_mut(&1).unwrap();
        assert!(c.handle_sent(), "the write is reported to the body");
        c.start_queued();
        net.pump(t);
        let recorded = ops(&mut net);
        let got: Vec<u16> = seen(&net.recv(1)).iter().map(|m| m.1).collect();
        assert_eq!(got.len(), 1, "one more fits the output");
        assert_eq!(flights(&recorded), [(got[0], false)]);
        // A connection without a store starts them itself and never asks.
        let mut plain = Net::new();
        let small = ConnectionConfig {
            max_output_bytes: 100,
            ..ConnectionConfig::default()
        };
        plain.connect_with(1, small, connect(V5, "sub", false, Some(100)), t);
        plain.subscribe(1, "d/#", QoS::AtLeastOnce, t);
        plain.connect(2, connect(V5, "pub", true, None), t);
        for pid in 1..=2 {
            plain.publish(2, pid, &big, QoS::AtLeastOnce, None, t);
        }
        assert_eq!(seen(&plain.recv(1)).len(), 1);
        assert_eq!(seen(&plain.recv(1)).len(), 1);
        assert!(!plain.conns.get_mut(&1).unwrap().handle_sent());
    }

    #[test]
    fn a_restart_resumes_each_flow_with_its_identifier() {
        // [MQTT-4.4.0-1]: PUBLISH with DUP 1 and the same identifier for one not yet
        // received, PUBREL for one received; new messages take other identifiers.
        let wall = SystemTime::now();
        let mut net = Net::new();
        let t = net.at(0);
        net.state.restore(vec![], vec![], 1000, t, wall);
        let mut sub = connect(V5, "sub", false, Some(600));
        sub.properties.receive_maximum = Some(2);
        net.connect_with(1, durable(), sub.clone(), t);
        net.subscribe(1, "d/#", QoS::ExactlyOnce, t);
        net.connect_with(2, durable(), connect(V5, "pub", true, None), t);
        for (pid, payload) in [(1, "unacked"), (2, "received"), (3, "queued")] {
            net.send(2, Packet::Publish(publish(pid, payload, QoS::ExactlyOnce, None)), t);
            flush(&mut net, 2);
        }
        // A window of 2: two in flight, the third queued.
        assert_eq!(seen(&net.recv(1)), [s("unacked", 1, false), s("received", 2, false)]);
        net.send(1, Packet::PubRec(Ack::success(2)), t);
        assert_eq!(seen(&flush(&mut net, 1)), [s("PUBREL", 2, false)]);
        // The broker dies here: the store holds what the commits held.
        let stored = replay(&ops(&mut net));
        let kept = stored.iter().find(|s| s.client == "sub").expect("stored");
        let flights: Vec<_> = kept
            .messages
            .iter()
            .map(|m| m.flight.map(|f| (f.packet_id, f.released)))
            .collect();
        assert_eq!(flights, [Some((1, false)), Some((2, true)), None]);

        let mut after = Net::new();
        let t2 = after.at(0);
        after
            .state
            .restore(stored, vec![], 1000, t2, wall + Duration::from_secs(1));
        let (ack, got) = after.connect_with(1, durable(), sub, t2);
        assert!(ack.session_present);
        assert_eq!(seen(&got), [s("unacked", 1, true), s("PUBREL", 2, false)]);
        after.send(1, Packet::PubComp(Ack::success(2)), t2);
        assert_eq!(seen(&flush(&mut after, 1)), [s("queued", 3, false)]);
        // A new message waits for the window, then takes an identifier no flow holds.
        after.connect_with(2, durable(), connect(V5, "pub", true, None), t2);
        after.send(2, Packet::Publish(publish(9, "new", QoS::ExactlyOnce, None)), t2);
        flush(&mut after, 2);
        after.send(1, Packet::PubRec(Ack::success(1)), t2);
        assert_eq!(seen(&flush(&mut after, 1)), [s("PUBREL", 1, false)]);
        let recorded = ops(&mut after);
        after.send(1, Packet::PubComp(Ack::success(1)), t2);
        assert_eq!(seen(&flush(&mut after, 1)), [s("new", 4, false)]);
        assert!(recorded.contains(&StoreOp::Delivered {
            client: "sub".into(),
            seq: 2
        }));
        assert!(recorded.iter().any(|op| matches!(op,
            StoreOp::InFlight { seq: 1, flight, .. } if flight.packet_id == 1 && flight.released)));
        assert!(recorded.iter().any(|op| matches!(op,
            StoreOp::InFlight { seq: 3, flight, .. } if flight.packet_id == 3 && !flight.released)));
    }

    #[test]
    fn deadlines_kept_in_wall_time_do_not_restart_from_zero() {
        let wall = SystemTime::now();
        let mut net = Net::new();
        let t = net.at(0);
        net.state.restore(vec![], vec![], 1000, t, wall);
        net.connect_with(1, durable(), connect(V5, "sub", false, Some(100)), t);
        net.subscribe(1, "d/#", QoS::AtLeastOnce, t);
        net.eof(1, t);
        net.connect_with(2, durable(), connect(V5, "pub", true, None), t);
        net.send(2, Packet::Publish(publish(1, "sixty", QoS::AtLeastOnce, Some(60))), t);
        flush(&mut net, 2);
        let stored = replay(&ops(&mut net));

        // Down for 50 s: the message has 10 s left, the session 50 s.
        let mut after = Net::new();
        let t2 = after.at(0);
        after
            .state
            .restore(stored.clone(), vec![], 1000, t2, wall + Duration::from_secs(50));
        assert_eq!(after.state.poll_timeout(), Some(t2 + Duration::from_secs(50)));
        let (ack, got) = after.connect_with(1, durable(), connect(V5, "sub", false, Some(100)), t2);
        assert!(ack.session_present);
        match &got[..] {
            [Packet::Publish(p)] => assert_eq!(p.properties.message_expiry_interval, Some(10)),
            other => panic!("{other:?}"),
        }
        // Down for 150 s: the session ended while the broker was down.
        let mut late = Net::new();
        let t3 = late.at(0);
        late.state
            .restore(stored, vec![], 1000, t3, wall + Duration::from_secs(150));
        let (ack, got) = late.connect_with(1, durable(), connect(V5, "sub", false, Some(100)), t3);
        assert!(!ack.session_present);
        assert!(got.is_empty());
    }
}
