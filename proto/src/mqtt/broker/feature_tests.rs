//! MQTT 5 features of the broker on bytes and virtual time: topic aliases,
//! subscription identifiers, shared subscriptions, subscription options, will delay,
//! users and ACL, enhanced authentication, server redirection. Each test names the
//! normative statements it checks.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::{
    Access, Acl, AuthExchange, AuthStep, BrokerState, Connection, ConnectionConfig, EnhancedAuth, PasswordHash,
    Redirect, Rules, Users,
};
use crate::chassis::{SegmentedBuffer, Session};
use crate::mqtt::{
    Ack, Codec, ConnAck, Connect, Packet, Properties, ProtocolVersion, Publish, QoS, Reason, ReasonCode,
    RetainHandling, SubAck, Subscribe, Subscription, SubscriptionOptions, Will,
};

const V5: ProtocolVersion = ProtocolVersion::V5;
const V311: ProtocolVersion = ProtocolVersion::V3_1_1;

struct Net {
    state: BrokerState<u32>,
    config: ConnectionConfig,
    conns: HashMap<u32, Connection>,
    clients: HashMap<u32, (Codec, SegmentedBuffer)>,
    t0: Instant,
}

impl Net {
    fn new() -> Net {
        Net::with(Access::default())
    }

    fn with(access: Access) -> Net {
        Net {
            state: BrokerState::with_access(access),
            config: ConnectionConfig::default(),
            conns: HashMap::new(),
            clients: HashMap::new(),
            t0: Instant::now(),
        }
    }

    fn at(&self, secs: u64) -> Instant {
        self.t0 + Duration::from_secs(secs)
    }

    /// Opens connection `id`, sends its CONNECT and returns what came back.
    fn open(&mut self, id: u32, connect: Connect, now: Instant) -> Vec<Packet> {
        self.conns.insert(id, Connection::new(self.config, now));
        self.clients
            .insert(id, (Codec::client(connect.protocol), SegmentedBuffer::new()));
        self.send(id, Packet::Connect(Box::new(connect)), now);
        self.recv(id)
    }

    fn connect(&mut self, id: u32, connect: Connect, now: Instant) -> ConnAck {
        match self.open(id, connect, now).first() {
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

    fn pump(&mut self, now: Instant) {
        super::test_wire::pump(&mut self.state, &mut self.conns, now);
    }

    fn raw(&mut self, id: u32) -> Vec<u8> {
        super::test_wire::take_output(self.conns.get_mut(&id).unwrap())
    }

    fn recv(&mut self, id: u32) -> Vec<Packet> {
        let bytes = self.raw(id);
        let (codec, buf) = self.clients.get_mut(&id).unwrap();
        super::test_wire::decode_all(codec, buf, &bytes)
    }

    fn eof(&mut self, id: u32, now: Instant) {
        self.conns.get_mut(&id).unwrap().handle_eof(now);
        self.pump(now);
    }

    fn timeout(&mut self, now: Instant) {
        self.state.handle_timeout(now, &mut self.conns);
    }

    fn subscribe_with(
        &mut self,
        id: u32,
        filters: &[(&'static str, SubscriptionOptions)],
        sub_id: Option<u32>,
    ) -> Vec<Packet> {
        self.send(
            id,
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                properties: Properties {
                    subscription_identifiers: sub_id.into_iter().collect(),
                    ..Properties::default()
                },
                subscriptions: filters
                    .iter()
                    .map(|(f, o)| Subscription {
                        filter: Bytes::from_static(f.as_bytes()),
                        options: *o,
                    })
                    .collect(),
            }),
            self.t0,
        );
        self.recv(id)
    }

    fn subscribe(&mut self, id: u32, filter: &'static str, qos: QoS) -> SubAck {
        match self
            .subscribe_with(id, &[(filter, SubscriptionOptions::qos(qos))], None)
            .first()
        {
            Some(Packet::SubAck(ack)) => ack.clone(),
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

fn with_aliases(mut c: Connect, max: u16) -> Connect {
    c.properties.topic_alias_maximum = Some(max);
    c
}

fn publish(topic: &'static str, payload: &'static str, qos: QoS) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: Bytes::from_static(topic.as_bytes()),
        packet_id: if qos == QoS::AtMostOnce { 0 } else { 9 },
        properties: Properties::default(),
        payload: Bytes::from_static(payload.as_bytes()),
    }
}

fn aliased(topic: &'static str, payload: &'static str, alias: u16) -> Packet {
    let mut p = publish(topic, payload, QoS::AtMostOnce);
    p.properties.topic_alias = Some(alias);
    Packet::Publish(p)
}

fn publishes(packets: Vec<Packet>) -> Vec<Publish> {
    packets
        .into_iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn payloads(packets: Vec<Packet>) -> Vec<String> {
    publishes(packets)
        .iter()
        .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        .collect()
}

// ---- Topic aliases ----

/// The Topic Alias Maximum is announced in CONNACK (5.0 3.2.2.3.8; the statement
/// that binds it, [MQTT-3.2.2-17], binds the client);
/// [MQTT-3.3.2-12] the server accepts every alias from 1 to it (set, use, replace).
#[test]
fn client_aliases_are_announced_and_resolved() {
    let mut net = Net::new();
    let t = net.at(0);
    let ack = net.connect(1, connect(V5, "sub"), t);
    assert_eq!(ack.properties.topic_alias_maximum, Some(10));
    assert_eq!(ack.properties.shared_subscription_available, Some(true));
    net.subscribe(1, "a/#", QoS::AtMostOnce);
    net.connect(2, connect(V5, "pub"), t);
    net.send(2, aliased("a/one", "1", 10), t);
    net.send(2, aliased("", "2", 10), t);
    net.send(2, aliased("a/two", "3", 10), t);
    net.send(2, aliased("", "4", 10), t);
    let got: Vec<(String, String, Option<u16>)> = publishes(net.recv(1))
        .iter()
        .map(|p| {
            (
                String::from_utf8_lossy(&p.topic).into(),
                String::from_utf8_lossy(&p.payload).into(),
                p.properties.topic_alias,
            )
        })
        .collect();
    let want = [("a/one", "1"), ("a/one", "2"), ("a/two", "3"), ("a/two", "4")];
    assert_eq!(
        got,
        want.map(|(t, p)| (t.to_string(), p.to_string(), None)).to_vec(),
        "the subscriber (no aliases of its own) gets full topics"
    );
    // 3.1.1 has no Topic Alias Maximum in CONNACK.
    assert_eq!(
        net.connect(3, connect(V311, "old"), t).properties,
        Properties::default()
    );
}

/// An alias above the announced maximum (which [MQTT-3.3.2-9] forbids the client)
/// gets DISCONNECT 0x94; 3.3.2.3.4: an unknown alias with an empty topic is a
/// Protocol Error (0x82). Alias 0 [MQTT-3.3.2-8] is refused by the decoder with 0x94
/// as well.
#[test]
fn invalid_and_unknown_aliases_disconnect() {
    for (packet, code) in [
        (aliased("a", "x", 11), ReasonCode::TopicAliasInvalid),
        (aliased("", "x", 3), ReasonCode::ProtocolError),
    ] {
        let mut net = Net::new();
        let t = net.at(0);
        net.connect(1, connect(V5, "p"), t);
        net.send(1, packet, t);
        assert_eq!(net.recv(1), [Packet::Disconnect(Reason::new(code))]);
        assert!(net.conns[&1].is_closed());
    }
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "p"), t);
    net.send_raw(1, b"\x30\x07\x00\x01t\x03\x23\x00\x00", t);
    assert_eq!(
        net.recv(1),
        [Packet::Disconnect(Reason::new(ReasonCode::TopicAliasInvalid))]
    );
    // With Topic Alias Maximum 0 configured, none is announced and every alias is invalid.
    let mut net = Net::new();
    net.config.topic_alias_maximum = 0;
    let t = net.at(0);
    let ack = net.connect(1, connect(V5, "p"), t);
    assert_eq!(ack.properties.topic_alias_maximum, None);
    net.send(1, aliased("a", "x", 1), t);
    assert_eq!(
        net.recv(1),
        [Packet::Disconnect(Reason::new(ReasonCode::TopicAliasInvalid))]
    );
}

/// [MQTT-3.1.2-26] / [MQTT-3.3.2-11] no alias above the client's maximum,
/// [MQTT-3.1.2-27] none to a client that announced none; first come first served,
/// then the least recently used alias is reassigned.
#[test]
fn broker_aliases_stay_within_the_clients_maximum() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, with_aliases(connect(V5, "s"), 2), t);
    net.subscribe(1, "#", QoS::AtMostOnce);
    net.connect(2, connect(V5, "plain"), t);
    net.subscribe(2, "#", QoS::AtMostOnce);
    net.connect(3, connect(V5, "p"), t);
    for (topic, payload) in [
        ("a", "1"),
        ("a", "2"),
        ("b", "3"),
        ("a", "4"),
        ("c", "5"),
        ("c", "6"),
        ("b", "7"),
    ] {
        net.send(3, Packet::Publish(publish(topic, payload, QoS::AtMostOnce)), t);
    }
    let got: Vec<(String, Option<u16>)> = publishes(net.recv(1))
        .iter()
        .map(|p| (String::from_utf8_lossy(&p.topic).into(), p.properties.topic_alias))
        .collect();
    let want = [
        ("a", Some(1)),
        ("", Some(1)),
        ("b", Some(2)),
        ("", Some(1)),
        // b is the least recently used: c takes its alias.
        ("c", Some(2)),
        ("", Some(2)),
        ("b", Some(1)),
    ];
    assert_eq!(got, want.map(|(t, a)| (t.to_string(), a)).to_vec());
    // Our own decoder on the client side resolves them as a client would.
    assert!(publishes(net.recv(2))
        .iter()
        .all(|p| p.properties.topic_alias.is_none() && !p.topic.is_empty()));
}

// ---- Subscription identifiers ----

/// [MQTT-3.3.4-2] overlapping subscriptions: one copy at the highest QoS;
/// [MQTT-3.3.4-3, MQTT-3.3.4-4] carrying every matching Subscription Identifier;
/// the identifier also comes with retained messages sent on subscribe.
#[test]
fn overlapping_subscriptions_carry_every_identifier() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "s"), t);
    net.connect(2, connect(V5, "p"), t);
    let mut retained = publish("a/r", "kept", QoS::AtMostOnce);
    retained.retain = true;
    net.send(2, Packet::Publish(retained), t);
    let got = net.subscribe_with(1, &[("a/+", SubscriptionOptions::qos(QoS::AtMostOnce))], Some(7));
    let p = &publishes(got)[0];
    assert_eq!(p.properties.subscription_identifiers, [7]);
    net.subscribe_with(1, &[("a/#", SubscriptionOptions::qos(QoS::AtLeastOnce))], Some(3));
    net.subscribe_with(1, &[("#", SubscriptionOptions::qos(QoS::AtMostOnce))], None);
    net.send(2, Packet::Publish(publish("a/b", "x", QoS::ExactlyOnce)), t);
    let got = publishes(net.recv(1));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        (got[0].qos, &got[0].properties.subscription_identifiers[..]),
        (QoS::AtLeastOnce, &[3, 7][..])
    );
    // A 3.1.1 subscriber gets no properties at all.
    net.connect(3, connect(V311, "old"), t);
    net.subscribe(3, "a/#", QoS::AtMostOnce);
    net.send(2, Packet::Publish(publish("a/b", "y", QoS::AtMostOnce)), t);
    assert!(publishes(net.recv(3))[0].properties.is_empty());
}

// ---- Shared subscriptions ----

/// 4.8.2: each message to one member of each group, round robin; no retained
/// messages on subscribing to a shared subscription; [MQTT-4.8.2-3] the member's
/// granted QoS is respected; [MQTT-3.8.3-4] No Local on a shared subscription is a
/// Protocol Error.
#[test]
fn shared_groups_share_the_messages() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(9, connect(V5, "p"), t);
    let mut retained = publish("job/r", "old", QoS::AtMostOnce);
    retained.retain = true;
    net.send(9, Packet::Publish(retained), t);
    for (id, name) in [(1, "w1"), (2, "w2"), (3, "w3")] {
        net.connect(id, connect(V5, name), t);
        let got = net.subscribe_with(
            id,
            &[("$share/g/job/+", SubscriptionOptions::qos(QoS::AtLeastOnce))],
            Some(id),
        );
        assert_eq!(got.len(), 1, "a SUBACK and no retained message: {got:?}");
    }
    net.connect(4, connect(V311, "other"), t);
    assert_eq!(
        net.subscribe(4, "$share/h/job/#", QoS::AtMostOnce).codes,
        [ReasonCode::Success]
    );
    for payload in ["0", "1", "2", "3", "4", "5"] {
        net.send(9, Packet::Publish(publish("job/x", payload, QoS::AtLeastOnce)), t);
    }
    let mut total = 0;
    for id in [1, 2, 3] {
        let got = publishes(net.recv(id));
        assert_eq!(got.len(), 2, "worker {id}: {got:?}");
        assert!(got
            .iter()
            .all(|p| p.qos == QoS::AtLeastOnce && p.properties.subscription_identifiers == [id]));
        total += got.len();
    }
    assert_eq!(total, 6);
    let other = publishes(net.recv(4));
    assert_eq!(other.len(), 6, "group h has one member");
    assert!(other.iter().all(|p| p.qos == QoS::AtMostOnce));
    // A member gone: the others take its share.
    net.eof(3, t);
    for payload in ["6", "7", "8", "9"] {
        net.send(9, Packet::Publish(publish("job/x", payload, QoS::AtMostOnce)), t);
    }
    assert_eq!(payloads(net.recv(1)).len() + payloads(net.recv(2)).len(), 4);
    // No Local on a shared subscription: 0x82.
    net.connect(5, connect(V5, "nl"), t);
    net.send_raw(5, b"\x82\x10\x00\x02\x00\x00\x0a$share/g/t\x04", t);
    assert_eq!(
        net.recv(5),
        [Packet::Disconnect(Reason::new(ReasonCode::ProtocolError))]
    );
}

/// [MQTT-3.8.3-3] No Local; [MQTT-3.3.1-12] RETAIN 0 on forwarding without Retain As
/// Published, [MQTT-3.3.1-13] kept with it; [MQTT-3.3.1-9, -10, -11] Retain Handling
/// 0, 1 and 2.
#[test]
fn no_local_retain_as_published_and_retain_handling() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "me"), t);
    let mut nl = SubscriptionOptions::qos(QoS::AtMostOnce);
    nl.no_local = true;
    net.subscribe_with(1, &[("own", nl)], None);
    net.send(1, Packet::Publish(publish("own", "mine", QoS::AtMostOnce)), t);
    assert!(publishes(net.recv(1)).is_empty(), "not sent its own message");
    net.connect(2, connect(V5, "else"), t);
    net.send(2, Packet::Publish(publish("own", "theirs", QoS::AtMostOnce)), t);
    assert_eq!(payloads(net.recv(1)), ["theirs"]);

    let mut rap = SubscriptionOptions::qos(QoS::AtMostOnce);
    rap.retain_as_published = true;
    net.subscribe_with(1, &[("rap", rap)], None);
    net.subscribe(2, "rap", QoS::AtMostOnce);
    let mut r = publish("rap", "r", QoS::AtMostOnce);
    r.retain = true;
    net.send(2, Packet::Publish(r.clone()), t);
    net.send(1, Packet::Publish(r), t);
    let kept: Vec<bool> = publishes(net.recv(1)).iter().map(|p| p.retain).collect();
    let cleared: Vec<bool> = publishes(net.recv(2)).iter().map(|p| p.retain).collect();
    assert_eq!((kept, cleared), (vec![true, true], vec![false, false]));

    for (handling, first, again) in [
        (RetainHandling::SendAtSubscribe, 1, 1),
        (RetainHandling::SendIfNew, 1, 0),
        (RetainHandling::DoNotSend, 0, 0),
    ] {
        let mut o = SubscriptionOptions::qos(QoS::AtMostOnce);
        o.retain_handling = handling;
        net.connect(3, connect(V5, "rh"), t);
        assert_eq!(
            publishes(net.subscribe_with(3, &[("rap", o)], None)).len(),
            first,
            "{handling:?}"
        );
        assert_eq!(
            publishes(net.subscribe_with(3, &[("rap", o)], None)).len(),
            again,
            "{handling:?} again"
        );
        net.send(3, Packet::Disconnect(Reason::new(ReasonCode::Success)), t);
    }
}

// ---- Will delay ----

fn will_connect(client: &'static str, delay: u32, expiry: u32) -> Connect {
    let mut c = connect(V5, client);
    c.properties.session_expiry_interval = Some(expiry);
    c.will = Some(Will {
        properties: Properties {
            will_delay_interval: Some(delay),
            ..Properties::default()
        },
        topic: Bytes::from_static(b"will"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
    });
    c
}

/// [MQTT-3.1.2-8] the will is published at the earlier of the Will Delay Interval
/// and the session's end; [MQTT-3.1.3-9] a new connection within the delay cancels it.
#[test]
fn will_delay_waits_and_a_reconnect_cancels() {
    // (will delay, session expiry, reconnect at, published at)
    for (delay, expiry, reconnect, published) in [
        (30, 100, None, Some(30)),
        (30, 5, None, Some(5)),
        (30, 0, None, Some(0)),
        (0, 100, None, Some(0)),
        (30, 100, Some(10), None),
    ] as [(u32, u32, Option<u64>, Option<u64>); 5]
    {
        let mut net = Net::new();
        let t = net.at(0);
        net.connect(1, connect(V5, "watch"), t);
        net.subscribe(1, "will", QoS::AtMostOnce);
        net.connect(2, will_connect("w", delay, expiry), t);
        net.eof(2, t);
        let case = format!("delay {delay}, expiry {expiry}, reconnect {reconnect:?}");
        if published == Some(0) {
            assert_eq!(payloads(net.recv(1)), ["gone"], "{case}");
            continue;
        }
        assert!(net.recv(1).is_empty(), "{case}: not at once");
        assert_eq!(
            net.state.poll_timeout(),
            Some(net.at(delay.min(expiry).into())),
            "{case}"
        );
        if let Some(at) = reconnect {
            let mut again = connect(V5, "w");
            again.clean_start = false;
            net.connect(3, again, net.at(at));
            assert_eq!(net.state.pending_will_count(), 0, "{case}");
        }
        let end = net.at(200);
        if let Some(at) = published {
            net.timeout(net.at(at - 1));
            assert!(net.recv(1).is_empty(), "{case}: not before its time");
        }
        net.timeout(end);
        let want: Vec<&str> = published.map(|_| "gone").into_iter().collect();
        assert_eq!(payloads(net.recv(1)), want, "{case}");
    }
}

/// A reconnect with Clean Start ends the old session: its waiting will goes at once.
#[test]
fn a_clean_start_reconnect_sends_the_waiting_will() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "watch"), t);
    net.subscribe(1, "will", QoS::AtMostOnce);
    net.connect(2, will_connect("w", 30, 100), t);
    net.eof(2, t);
    net.connect(3, connect(V5, "w"), net.at(3));
    assert_eq!(payloads(net.recv(1)), ["gone"]);
    assert_eq!(net.state.pending_will_count(), 0);
    // The old session's expiry may still wake the broker (a stale timer is skipped
    // then); nothing is published again.
    net.timeout(net.at(200));
    assert!(net.recv(1).is_empty());
}

/// [MQTT-3.1.2-8] with a session the client's DISCONNECT shortened (3.14.2.2.2): a
/// DISCONNECT 0x04 (with will) that sets the Session Expiry Interval to 5 makes a
/// 30-second will go when the session ends, at 5.
#[test]
fn a_disconnect_that_shortens_the_session_brings_the_will_forward() {
    let mut net = Net::new();
    let t = net.at(0);
    net.connect(1, connect(V5, "watch"), t);
    net.subscribe(1, "will", QoS::AtMostOnce);
    net.connect(2, will_connect("w", 30, 100), t);
    let mut disconnect = Reason::new(ReasonCode::DisconnectWithWillMessage);
    disconnect.properties.session_expiry_interval = Some(5);
    net.send(2, Packet::Disconnect(disconnect), t);
    net.eof(2, t);
    assert_eq!(net.state.pending_will_count(), 1);
    net.timeout(net.at(4));
    assert!(net.recv(1).is_empty(), "not before the session's end");
    net.timeout(net.at(5));
    assert_eq!(payloads(net.recv(1)), ["gone"]);
    assert_eq!(net.state.session_count(), 1, "the session ended with it");
}

// ---- Users and ACL ----

fn access_with_users() -> Access {
    let mut users = Users::new(false);
    users.insert("alice", PasswordHash::new(b"wonderland", b"0123456789abcdef", 1000));
    users.insert("bob", PasswordHash::new(b"builder", b"fedcba9876543210", 1000));
    let mut acl = Acl {
        all: Rules {
            publish: vec!["clients/%c/#".into()],
            subscribe: vec!["clients/%c/#".into()],
        },
        ..Acl::default()
    };
    acl.users.insert(
        "alice".into(),
        Rules {
            publish: vec!["sensors/alice/#".into()],
            subscribe: vec!["sensors/#".into()],
        },
    );
    Access {
        users: Some(users),
        acl: Some(acl),
        ..Access::default()
    }
}

fn login(version: ProtocolVersion, client: &'static str, user: &'static str, password: &'static str) -> Connect {
    let mut c = connect(version, client);
    c.username = Some(Bytes::from_static(user.as_bytes()));
    c.password = Some(Bytes::from_static(password.as_bytes()));
    c
}

/// [MQTT-3.1.4-2] failed authentication closes the connection after CONNACK 0x86
/// (5.0) or return code 4 (3.1.1) [MQTT-3.2.2-7 (5.0), MQTT-3.2.2-5 (3.1.1)].
#[test]
fn wrong_credentials_are_refused_in_each_version() {
    let mut net = Net::with(access_with_users());
    let t = net.at(0);
    assert_eq!(
        net.connect(1, login(V5, "a", "alice", "wonderland"), t).code,
        ReasonCode::Success
    );
    for (id, c) in [
        (2, login(V5, "b", "alice", "wrong")),
        (3, login(V5, "c", "mallory", "wonderland")),
        (4, connect(V5, "d")),
    ] {
        assert_eq!(net.connect(id, c, t).code, ReasonCode::BadUserNameOrPassword);
        assert!(net.conns[&id].is_closed());
    }
    net.conns.insert(5, Connection::new(net.config, t));
    net.clients.insert(5, (Codec::client(V311), SegmentedBuffer::new()));
    net.send(5, Packet::Connect(Box::new(login(V311, "e", "bob", "nope"))), t);
    assert_eq!(net.raw(5), b"\x20\x02\x00\x04");
    assert!(net.conns[&5].is_closed());
}

/// ACL refusals: SUBACK 0x87 (5.0) / 0x80 (3.1.1) [MQTT-3.9.3-1 order kept];
/// PUBACK/PUBREC 0x87 for QoS 1/2 in 5.0, silently dropped for QoS 0 and in 3.1.1;
/// a will to a forbidden topic refuses the CONNECT with 0x87 / 5.
#[test]
fn the_acl_refuses_subscriptions_and_publications() {
    let mut net = Net::with(access_with_users());
    let t = net.at(0);
    net.connect(1, login(V5, "a", "alice", "wonderland"), t);
    let got = net.subscribe_with(
        1,
        &[
            ("sensors/#", SubscriptionOptions::qos(QoS::AtLeastOnce)),
            ("#", SubscriptionOptions::qos(QoS::AtMostOnce)),
            ("clients/a/in", SubscriptionOptions::qos(QoS::AtMostOnce)),
            ("$share/g/sensors/x", SubscriptionOptions::qos(QoS::AtMostOnce)),
            ("$share/g/secret", SubscriptionOptions::qos(QoS::AtMostOnce)),
        ],
        None,
    );
    let Packet::SubAck(ack) = &got[0] else {
        panic!("{got:?}")
    };
    use ReasonCode::*;
    assert_eq!(ack.codes, [GrantedQoS1, NotAuthorized, Success, Success, NotAuthorized]);
    net.connect(2, login(V311, "b", "bob", "builder"), t);
    assert_eq!(net.subscribe(2, "sensors/#", QoS::AtMostOnce).codes, [UnspecifiedError]);
    assert_eq!(net.subscribe(2, "clients/b/#", QoS::AtMostOnce).codes, [Success]);

    // Alice publishes: allowed topic routed, others refused by QoS.
    let mut p1 = publish("secret/x", "no", QoS::AtLeastOnce);
    p1.packet_id = 1;
    net.send(1, Packet::Publish(p1), t);
    let mut p2 = publish("secret/x", "no", QoS::ExactlyOnce);
    p2.packet_id = 2;
    net.send(1, Packet::Publish(p2), t);
    net.send(1, Packet::Publish(publish("secret/x", "no", QoS::AtMostOnce)), t);
    net.send(
        1,
        Packet::Publish(publish("sensors/alice/t", "yes", QoS::AtMostOnce)),
        t,
    );
    let mut refused = Ack::success(1);
    refused.code = NotAuthorized;
    let mut refused2 = Ack::success(2);
    refused2.code = NotAuthorized;
    let got = net.recv(1);
    assert_eq!(got[0], Packet::PubAck(refused));
    assert_eq!(got[1], Packet::PubRec(refused2));
    assert_eq!(payloads(got), ["yes"], "only the allowed message routed");
    // Bob (3.1.1) is acknowledged as usual and dropped.
    let mut p = publish("clients/a/in", "from bob", QoS::AtLeastOnce);
    p.packet_id = 4;
    net.send(2, Packet::Publish(p), t);
    assert_eq!(net.recv(2), [Packet::PubAck(Ack::success(4))]);
    net.send(2, Packet::Publish(publish("clients/b/x", "ok", QoS::AtMostOnce)), t);
    assert_eq!(payloads(net.recv(2)), ["ok"]);
    assert!(net.recv(1).is_empty());

    // A will to a forbidden topic.
    let mut c = login(V5, "w", "alice", "wonderland");
    c.will = Some(Will {
        properties: Properties::default(),
        topic: Bytes::from_static(b"elsewhere"),
        payload: Bytes::new(),
        qos: QoS::AtMostOnce,
        retain: false,
    });
    assert_eq!(net.connect(3, c, t).code, NotAuthorized);
}

// ---- Enhanced authentication ----

/// A challenge/response test mechanism: the server sends a nonce, the client answers
/// with the nonce followed by the shared secret.
struct Challenge {
    secret: &'static [u8],
}

struct ChallengeExchange {
    secret: &'static [u8],
    nonce: Option<Bytes>,
}

impl EnhancedAuth for Challenge {
    fn start(&self, method: &[u8], _client: &[u8]) -> Option<Box<dyn AuthExchange>> {
        (method == b"TEST-CHALLENGE").then(|| {
            Box::new(ChallengeExchange {
                secret: self.secret,
                nonce: None,
            }) as Box<dyn AuthExchange>
        })
    }
}

impl AuthExchange for ChallengeExchange {
    fn step(&mut self, data: Option<&[u8]>) -> AuthStep {
        match &self.nonce {
            None => {
                let nonce = Bytes::from_static(b"n0nce");
                self.nonce = Some(nonce.clone());
                AuthStep::Continue(nonce)
            }
            Some(nonce) => {
                let mut want = nonce.to_vec();
                want.extend_from_slice(self.secret);
                if data == Some(&want[..]) {
                    AuthStep::Success(Some(Bytes::from_static(b"welcome")))
                } else {
                    AuthStep::Fail(ReasonCode::NotAuthorized)
                }
            }
        }
    }
}

fn enhanced(method: &'static str) -> Connect {
    let mut c = connect(V5, "e");
    c.properties.authentication_method = Some(Bytes::from_static(method.as_bytes()));
    c
}

fn auth_packet(method: &'static str, data: &'static [u8]) -> Packet {
    Packet::Auth(Reason {
        code: ReasonCode::ContinueAuthentication,
        properties: Properties {
            authentication_method: Some(Bytes::from_static(method.as_bytes())),
            authentication_data: Some(Bytes::from_static(data)),
            ..Properties::default()
        },
    })
}

/// [MQTT-4.12.0-2] AUTH 0x18 continues; [MQTT-4.12.0-5] every AUTH and the CONNACK
/// carry the method; [MQTT-4.12.0-4] a failed exchange ends with CONNACK >= 0x80 and
/// a close; [MQTT-4.12.0-1] an unknown method gets 0x8C.
#[test]
fn enhanced_authentication_runs_challenge_and_response() {
    let net_with = || {
        Net::with(Access {
            enhanced: Some(Box::new(Challenge { secret: b"s3cret" })),
            ..Access::default()
        })
    };
    let mut net = net_with();
    let t = net.at(0);
    let got = net.open(1, enhanced("TEST-CHALLENGE"), t);
    let [Packet::Auth(challenge)] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(challenge.code, ReasonCode::ContinueAuthentication);
    assert_eq!(
        challenge.properties.authentication_method.as_deref(),
        Some(&b"TEST-CHALLENGE"[..])
    );
    assert_eq!(challenge.properties.authentication_data.as_deref(), Some(&b"n0nce"[..]));
    net.send(1, auth_packet("TEST-CHALLENGE", b"n0nces3cret"), t);
    let got = net.recv(1);
    let [Packet::ConnAck(ack)] = &got[..] else {
        panic!("{got:?}")
    };
    assert_eq!(ack.code, ReasonCode::Success);
    assert_eq!(
        ack.properties.authentication_method.as_deref(),
        Some(&b"TEST-CHALLENGE"[..])
    );
    assert_eq!(ack.properties.authentication_data.as_deref(), Some(&b"welcome"[..]));
    assert!(net.conns[&1].is_open());

    // A wrong response.
    net.open(2, enhanced("TEST-CHALLENGE"), t);
    net.send(2, auth_packet("TEST-CHALLENGE", b"guess"), t);
    let got = net.recv(2);
    assert!(
        matches!(&got[..], [Packet::ConnAck(a)] if a.code == ReasonCode::NotAuthorized),
        "{got:?}"
    );
    assert!(net.conns[&2].is_closed());
    // An AUTH with another method.
    net.open(3, enhanced("TEST-CHALLENGE"), t);
    net.send(3, auth_packet("OTHER", b"n0nces3cret"), t);
    assert!(matches!(&net.recv(3)[..], [Packet::ConnAck(a)] if a.code == ReasonCode::ProtocolError));
    // A PUBLISH instead of AUTH: protocol error.
    net.open(4, enhanced("TEST-CHALLENGE"), t);
    net.send_raw(4, b"\x30\x04\x00\x01t\x00", t);
    assert_eq!(
        net.recv(4),
        [Packet::Disconnect(Reason::new(ReasonCode::ProtocolError))]
    );
    assert!(net.conns[&4].is_closed());
    // An unknown method, with or without a hook.
    let ack = net.connect(5, enhanced("SCRAM-SHA-1"), t);
    assert_eq!(ack.code, ReasonCode::BadAuthenticationMethod);
    let mut plain = Net::new();
    let ack = plain.connect(1, enhanced("TEST-CHALLENGE"), t);
    assert_eq!(ack.code, ReasonCode::BadAuthenticationMethod);
    // A client that never answers the challenge is closed at the connect timeout.
    let mut net = net_with();
    net.open(1, enhanced("TEST-CHALLENGE"), t);
    let deadline = net.conns[&1].poll_timeout().expect("a deadline while authenticating");
    assert_eq!(deadline, t + ConnectionConfig::default().connect_timeout);
    net.conns.get_mut(&1).unwrap().handle_timeout(deadline);
    assert!(net.conns[&1].is_closed());
}

// ---- Server redirection ----

/// 4.11: CONNACK 0x9C Use another server / 0x9D Server moved with a Server
/// Reference (5.0); a 3.1.1 client gets 3 Server unavailable.
#[test]
fn redirection_answers_with_the_server_reference() {
    for (permanent, code) in [(false, ReasonCode::UseAnotherServer), (true, ReasonCode::ServerMoved)] {
        let mut net = Net::with(Access {
            redirect: Some(Redirect {
                server_reference: Bytes::from_static(b"other.example:1883"),
                permanent,
            }),
            ..Access::default()
        });
        let t = net.at(0);
        let ack = net.connect(1, connect(V5, "r"), t);
        assert_eq!(ack.code, code);
        assert_eq!(
            ack.properties.server_reference.as_deref(),
            Some(&b"other.example:1883"[..])
        );
        assert!(net.conns[&1].is_closed());
        net.conns.insert(2, Connection::new(net.config, t));
        net.clients.insert(2, (Codec::client(V311), SegmentedBuffer::new()));
        net.send(2, Packet::Connect(Box::new(connect(V311, "old"))), t);
        assert_eq!(net.raw(2), b"\x20\x02\x00\x03");
        assert_eq!(net.state.session_count(), 0);
    }
}

// ---- Server Keep Alive ----

/// [MQTT-3.2.2-21] a Server Keep Alive in CONNACK replaces the client's, and the
/// broker enforces it (at 1.5 times); a client asking for less keeps its own.
#[test]
fn server_keep_alive_caps_the_clients() {
    let mut net = Net::new();
    net.config.max_keep_alive = Some(20);
    let t = net.at(0);
    let mut c = connect(V5, "slow");
    c.keep_alive = 600;
    assert_eq!(net.connect(1, c, t).properties.server_keep_alive, Some(20));
    assert_eq!(net.conns[&1].poll_timeout(), Some(net.at(30)));
    let mut c = connect(V5, "fast");
    c.keep_alive = 10;
    assert_eq!(net.connect(2, c, t).properties.server_keep_alive, None);
    assert_eq!(net.conns[&2].poll_timeout(), Some(net.at(15)));
}

/// 4.12.1 re-authentication: AUTH 0x19 with the CONNECT's method [MQTT-4.12.1-1]
/// runs a new exchange (AUTH 0x18 both ways) ending with AUTH 0x00, or DISCONNECT
/// 0x87 on failure; AUTH from a client that connected without a method, or with
/// another method, is a Protocol Error.
#[test]
fn re_authentication_after_connack() {
    let mut net = Net::with(Access {
        enhanced: Some(Box::new(Challenge { secret: b"s3cret" })),
        ..Access::default()
    });
    let t = net.at(0);
    net.open(1, enhanced("TEST-CHALLENGE"), t);
    net.send(1, auth_packet("TEST-CHALLENGE", b"n0nces3cret"), t);
    assert!(matches!(&net.recv(1)[..], [Packet::ConnAck(a)] if a.code == ReasonCode::Success));
    let reauth = |data: &'static [u8]| {
        let Packet::Auth(mut r) = auth_packet("TEST-CHALLENGE", data) else {
            unreachable!()
        };
        r.code = ReasonCode::ReAuthenticate;
        Packet::Auth(r)
    };
    for round in 0..2 {
        net.send(1, reauth(b""), t);
        let got = net.recv(1);
        let [Packet::Auth(challenge)] = &got[..] else {
            panic!("round {round}: {got:?}")
        };
        assert_eq!(challenge.code, ReasonCode::ContinueAuthentication);
        assert_eq!(challenge.properties.authentication_data.as_deref(), Some(&b"n0nce"[..]));
        net.send(1, auth_packet("TEST-CHALLENGE", b"n0nces3cret"), t);
        let got = net.recv(1);
        let [Packet::Auth(done)] = &got[..] else {
            panic!("round {round}: {got:?}")
        };
        assert_eq!(done.code, ReasonCode::Success);
        assert_eq!(
            done.properties.authentication_method.as_deref(),
            Some(&b"TEST-CHALLENGE"[..])
        );
        assert!(net.conns[&1].is_open());
    }
    net.send(1, reauth(b""), t);
    net.recv(1);
    net.send(1, auth_packet("TEST-CHALLENGE", b"wrong"), t);
    assert_eq!(
        net.recv(1),
        [Packet::Disconnect(Reason::new(ReasonCode::NotAuthorized))]
    );
    assert!(net.conns[&1].is_closed());

    // Another method, and a client that connected without one.
    net.open(2, enhanced("TEST-CHALLENGE"), t);
    net.send(2, auth_packet("TEST-CHALLENGE", b"n0nces3cret"), t);
    net.recv(2);
    let Packet::Auth(mut other) = auth_packet("OTHER", b"") else {
        unreachable!()
    };
    other.code = ReasonCode::ReAuthenticate;
    net.send(2, Packet::Auth(other.clone()), t);
    assert_eq!(
        net.recv(2),
        [Packet::Disconnect(Reason::new(ReasonCode::ProtocolError))]
    );
    net.connect(3, connect(V5, "plain"), t);
    net.send(3, Packet::Auth(other), t);
    assert_eq!(
        net.recv(3),
        [Packet::Disconnect(Reason::new(ReasonCode::ProtocolError))]
    );
}
