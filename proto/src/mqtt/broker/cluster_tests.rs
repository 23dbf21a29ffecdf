//! Several [`BrokerState`]s wired as the threads of a cluster, their messages carried
//! in memory (as the body's mailboxes do), clients as codecs on bytes.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;

use super::{BrokerState, ClusterMessage, Connection, ConnectionConfig, Link};
use crate::chassis::{SegmentedBuffer, Session};
use crate::mqtt::{
    Codec, Connect, Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode, Subscribe, Subscription,
    SubscriptionOptions, Will,
};

struct Cluster {
    states: Vec<BrokerState<u32>>,
    conns: Vec<HashMap<u32, Connection>>,
    mailboxes: Vec<VecDeque<ClusterMessage>>,
    clients: HashMap<u32, (usize, Codec, SegmentedBuffer)>,
    /// Connections fed input since their events were last taken: as a driver reports
    /// `Ready`, only these are drained (a connection the state touched while handling
    /// a mailbox message is not reported by any driver).
    ready: Vec<(usize, u32)>,
    now: Instant,
}

impl Cluster {
    fn new(threads: usize) -> Cluster {
        let states = (0..threads)
            .map(|me| {
                let mut s = BrokerState::new();
                s.set_cluster(Link::new(me, threads));
                s
            })
            .collect();
        Cluster {
            states,
            conns: (0..threads).map(|_| HashMap::new()).collect(),
            mailboxes: (0..threads).map(|_| VecDeque::new()).collect(),
            clients: HashMap::new(),
            ready: Vec::new(),
            now: Instant::now(),
        }
    }

    /// Connection `id` on thread `thread` sends `connect`; returns its CONNACK's
    /// Session Present and reason code.
    fn connect(&mut self, id: u32, thread: usize, connect: Connect) -> (bool, ReasonCode) {
        self.conns[thread].insert(id, Connection::new(ConnectionConfig::default(), self.now));
        self.clients
            .insert(id, (thread, Codec::client(connect.protocol), SegmentedBuffer::new()));
        self.send(id, Packet::Connect(Box::new(connect)));
        match self.recv(id).first() {
            Some(Packet::ConnAck(ack)) => (ack.session_present, ack.code),
            other => panic!("no CONNACK: {other:?}"),
        }
    }

    fn send(&mut self, id: u32, packet: Packet) {
        let (thread, codec, _) = self.clients.get_mut(&id).expect("client");
        let thread = *thread;
        let mut wire = crate::IoArena::new();
        codec.encode(&packet, &mut wire).expect("encode");
        let conn = self.conns[thread].get_mut(&id).expect("connection");
        conn.handle_input(Bytes::from(wire.to_vec()), self.now);
        self.ready.push((thread, id));
        self.pump();
    }

    /// Connection `id` sends `packet`; nothing is handled yet (see [`events`](Self::events)).
    fn feed(&mut self, id: u32, packet: Packet) {
        let (thread, codec, _) = self.clients.get_mut(&id).expect("client");
        let thread = *thread;
        let mut wire = crate::IoArena::new();
        codec.encode(&packet, &mut wire).expect("encode");
        let conn = self.conns[thread].get_mut(&id).expect("connection");
        conn.handle_input(Bytes::from(wire.to_vec()), self.now);
        self.ready.push((thread, id));
    }

    /// Thread `t` handles its connections' events, and nothing else.
    fn events(&mut self, t: usize) {
        let (mine, others): (Vec<_>, Vec<_>) = std::mem::take(&mut self.ready).into_iter().partition(|r| r.0 == t);
        self.ready = others;
        for (_, id) in mine {
            while let Some(event) = self.conns[t].get_mut(&id).and_then(|c| c.poll_event()) {
                self.states[t].handle_event(id, event, self.now, &mut self.conns[t]);
            }
        }
    }

    /// Thread `t`'s messages for the others go into their mailboxes.
    fn carry(&mut self, t: usize) {
        let mut out = Vec::new();
        self.states[t].drain_cluster(&mut out);
        for (to, message) in out {
            self.mailboxes[to].push_back(message);
        }
    }

    /// Thread `t` handles its mailbox.
    fn take(&mut self, t: usize) {
        while let Some(message) = self.mailboxes[t].pop_front() {
            self.states[t].handle_cluster(message, self.now, &mut self.conns[t]);
        }
    }

    /// Runs every thread's events and every mailbox until nothing moves.
    fn pump(&mut self) {
        loop {
            let mut any = false;
            for (t, id) in std::mem::take(&mut self.ready) {
                while let Some(event) = self.conns[t].get_mut(&id).and_then(|c| c.poll_event()) {
                    any = true;
                    self.states[t].handle_event(id, event, self.now, &mut self.conns[t]);
                }
            }
            for t in 0..self.states.len() {
                // As the body does after each commit.
                self.states[t].committed();
                let mut out = Vec::new();
                self.states[t].drain_cluster(&mut out);
                for (to, message) in out {
                    any = true;
                    self.mailboxes[to].push_back(message);
                }
            }
            for t in 0..self.states.len() {
                while let Some(message) = self.mailboxes[t].pop_front() {
                    any = true;
                    self.states[t].handle_cluster(message, self.now, &mut self.conns[t]);
                }
            }
            if !any {
                return;
            }
        }
    }

    fn recv(&mut self, id: u32) -> Vec<Packet> {
        let (thread, codec, buf) = self.clients.get_mut(&id).expect("client");
        let conn = self.conns[*thread].get_mut(&id).expect("connection");
        if let Some(a) = conn.poll_transmit() {
            let v = a.to_vec();
            a.advance(v.len());
            buf.push_slice(&v);
        }
        let mut out = Vec::new();
        while let Some(p) = codec.decode(buf).expect("decode") {
            out.push(p);
        }
        out
    }

    /// Subscribes; returns the retained messages that followed the SUBACK.
    fn subscribe(&mut self, id: u32, filter: &'static str) -> Vec<(String, String)> {
        self.send(
            id,
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                properties: Properties::default(),
                subscriptions: vec![Subscription {
                    filter: Bytes::from_static(filter.as_bytes()),
                    options: SubscriptionOptions::qos(QoS::AtMostOnce),
                }],
            }),
        );
        let got = self.recv(id);
        assert!(matches!(got.first(), Some(Packet::SubAck(_))), "{got:?}");
        got.into_iter()
            .filter_map(|p| match p {
                Packet::Publish(p) => Some((
                    String::from_utf8_lossy(&p.topic).into_owned(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                )),
                _ => None,
            })
            .collect()
    }

    /// A QoS 0 publish from `id` to `topic`, fed but not handled.
    fn publish_unpumped(&mut self, id: u32, topic: &'static str) {
        self.feed(
            id,
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain: false,
                topic: Bytes::from_static(topic.as_bytes()),
                packet_id: 0,
                properties: Properties::default(),
                payload: Bytes::from_static(b"early"),
            }),
        );
    }

    fn publish(&mut self, id: u32, topic: &'static str, payload: &'static str, retain: bool) {
        self.send(
            id,
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtMostOnce,
                retain,
                topic: Bytes::from_static(topic.as_bytes()),
                packet_id: 0,
                properties: Properties::default(),
                payload: Bytes::from_static(payload.as_bytes()),
            }),
        );
    }

    /// The (topic, payload) of the messages connection `id` got since the last call.
    fn messages(&mut self, id: u32) -> Vec<(String, String)> {
        self.recv(id)
            .into_iter()
            .filter_map(|p| match p {
                Packet::Publish(p) => Some((
                    String::from_utf8_lossy(&p.topic).into_owned(),
                    String::from_utf8_lossy(&p.payload).into_owned(),
                )),
                _ => None,
            })
            .collect()
    }
}

fn connect(client_id: &'static str) -> Connect {
    Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 0,
        properties: Properties::default(),
        client_id: Bytes::from_static(client_id.as_bytes()),
        will: None,
        username: None,
        password: None,
    }
}

fn m(topic: &str, payload: &str) -> (String, String) {
    (topic.into(), payload.into())
}

#[test]
fn publishes_and_retained_messages_reach_every_thread_once() {
    let mut c = Cluster::new(3);
    for (id, t) in [(1, 0), (2, 1), (3, 2)] {
        c.connect(id, t, connect(["a", "b", "c"][t]));
        assert!(c.subscribe(id, "x/#").is_empty());
    }
    c.publish(2, "x/1", "hello", false);
    c.publish(2, "x/r", "kept", true);
    for id in [1, 2, 3] {
        assert_eq!(c.messages(id), [m("x/1", "hello"), m("x/r", "kept")], "client {id}");
    }
    // Each thread keeps a replica: a later subscriber anywhere gets it.
    for (id, t) in [(4, 0), (5, 2)] {
        c.connect(id, t, connect(["d", "", "e"][t]));
        assert_eq!(c.subscribe(id, "x/r"), [m("x/r", "kept")]);
    }
    assert!(c.states.iter().all(|s| s.retained_count() == 1));
    assert_eq!(c.states.iter().map(|s| s.messages_received()).sum::<u64>(), 2);
    assert_eq!(c.states.iter().map(|s| s.messages_sent()).sum::<u64>(), 6);
}

#[test]
fn a_shared_group_gets_one_copy_across_threads() {
    let mut c = Cluster::new(2);
    c.connect(1, 0, connect("w0"));
    let _ = c.subscribe(1, "$share/g/job/#");
    c.connect(2, 1, connect("w1"));
    let _ = c.subscribe(2, "$share/g/job/#");
    c.connect(3, 1, connect("p"));
    for _ in 0..6 {
        c.publish(3, "job/1", "j", false);
    }
    let (a, b) = (c.messages(1).len(), c.messages(2).len());
    assert_eq!(a + b, 6, "each message once: {a} + {b}");
    assert!(a > 0 && b > 0, "both threads served the group: {a} + {b}");
    // The member on thread 0 leaves: thread 1 serves every message.
    c.send(
        1,
        Packet::Unsubscribe(crate::mqtt::Unsubscribe {
            packet_id: 2,
            properties: Properties::default(),
            filters: vec![Bytes::from_static(b"$share/g/job/#")],
        }),
    );
    for _ in 0..4 {
        c.publish(3, "job/1", "j", false);
    }
    assert_eq!((c.messages(1).len(), c.messages(2).len()), (0, 4));
}

#[test]
fn a_client_id_taken_over_from_another_thread_moves_its_session() {
    let mut c = Cluster::new(2);
    c.connect(9, 1, connect("watch"));
    let _ = c.subscribe(9, "will/#");
    let mut old = connect("dup");
    old.clean_start = false;
    old.properties.session_expiry_interval = Some(300);
    old.will = Some(Will {
        properties: Properties::default(),
        topic: Bytes::from_static(b"will/dup"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtMostOnce,
        retain: false,
    });
    c.connect(1, 0, old);
    let _ = c.subscribe(1, "keep/#");
    let mut new = connect("dup");
    new.clean_start = false;
    new.properties.session_expiry_interval = Some(300);
    c.connect(2, 1, new);
    // The old connection is told and closed, its will published [MQTT-3.1.4-3].
    let told = c.recv(1);
    assert!(
        matches!(told.last(), Some(Packet::Disconnect(r)) if r.code == ReasonCode::SessionTakenOver),
        "{told:?}"
    );
    assert!(c.conns[0][&1].is_closed());
    assert_eq!(c.messages(9), [m("will/dup", "gone")]);
    // One session, now on thread 1, with the subscription it had on thread 0.
    c.pump();
    assert_eq!(c.states[0].session_count(), 0);
    c.connect(3, 0, connect("pub"));
    c.publish(3, "keep/x", "still", false);
    assert_eq!(c.messages(2), [m("keep/x", "still")]);
    // Starting clean on the other thread drops the subscriptions instead.
    let mut clean = connect("dup");
    clean.properties.session_expiry_interval = Some(300);
    c.connect(4, 0, clean);
    c.publish(3, "keep/x", "gone", false);
    assert!(c.messages(4).is_empty());
}

#[test]
fn shutdown_publishes_every_will_before_disconnecting() {
    let mut c = Cluster::new(2);
    c.connect(1, 0, connect("watch"));
    let _ = c.subscribe(1, "will/#");
    let mut v = connect("victim");
    v.will = Some(Will {
        properties: Properties::default(),
        topic: Bytes::from_static(b"will/victim"),
        payload: Bytes::from_static(b"bye"),
        qos: QoS::AtMostOnce,
        retain: false,
    });
    c.connect(2, 1, v);
    for t in 0..2 {
        c.states[t].shutdown_wills(c.now, &mut c.conns[t]);
    }
    c.pump();
    assert_eq!(c.messages(1), [m("will/victim", "bye")]);
    for t in 0..2 {
        c.states[t].disconnect_all(&mut c.conns[t]);
    }
    for id in [1, 2] {
        let got = c.recv(id);
        assert!(
            matches!(got.last(), Some(Packet::Disconnect(r)) if r.code == ReasonCode::ServerShuttingDown),
            "{got:?}"
        );
    }
}

/// A persistent session that reconnects on another thread keeps what it was owed: the
/// QoS 1 messages queued while it was offline, and the one in flight to a connection
/// it left without acknowledging, reach the new connection in order [MQTT-3.1.2-5,
/// MQTT-4.4.0-1]; none is lost in the move between threads.
#[test]
fn a_session_moving_threads_brings_its_queued_messages() {
    let mut c = Cluster::new(2);
    let mut sub = connect("roamer");
    sub.clean_start = false;
    sub.properties.session_expiry_interval = Some(300);
    c.connect(1, 0, sub.clone());
    c.send(
        1,
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            subscriptions: vec![Subscription {
                filter: Bytes::from_static(b"q/#"),
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            }],
        }),
    );
    assert!(matches!(c.recv(1).first(), Some(Packet::SubAck(_))));
    c.connect(2, 1, connect("pub"));
    let publish = |c: &mut Cluster, id: u16, payload: &'static str| {
        c.send(
            2,
            Packet::Publish(Publish {
                dup: false,
                qos: QoS::AtLeastOnce,
                retain: false,
                topic: Bytes::from_static(b"q/x"),
                packet_id: id,
                properties: Properties::default(),
                payload: Bytes::from_static(payload.as_bytes()),
            }),
        );
    };
    // In flight to connection 1, never acknowledged; then the connection goes.
    publish(&mut c, 1, "in flight");
    assert_eq!(c.messages(1), [m("q/x", "in flight")]);
    c.conns[0].get_mut(&1).expect("connection").handle_eof(c.now);
    c.ready.push((0, 1));
    c.pump();
    c.conns[0].remove(&1);
    // Queued for the offline session on thread 0.
    publish(&mut c, 2, "queued 1");
    publish(&mut c, 3, "queued 2");
    // The client comes back on thread 1: the session came with it (Session Present 1),
    // the message in flight resent with DUP 1 and its identifier [MQTT-4.4.0-1].
    c.conns[1].insert(3, Connection::new(ConnectionConfig::default(), c.now));
    c.clients
        .insert(3, (1, Codec::client(ProtocolVersion::V5), SegmentedBuffer::new()));
    c.send(3, Packet::Connect(Box::new(sub)));
    let got = c.recv(3);
    assert!(
        matches!(got.first(), Some(Packet::ConnAck(a)) if a.code == ReasonCode::Success && a.session_present),
        "{got:?}"
    );
    let payloads: Vec<(&[u8], u16, bool)> = got
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((&p.payload[..], p.packet_id, p.dup)),
            _ => None,
        })
        .collect();
    assert_eq!(
        payloads,
        [
            (&b"in flight"[..], 1, true),
            (b"queued 1", 2, false),
            (b"queued 2", 3, false)
        ]
    );
    assert_eq!(c.states[0].session_count(), 0, "the session left thread 0");
}

/// A persistent session's CONNECT (5.0, expiry 300 s).
fn resume(client_id: &'static str) -> Connect {
    let mut c = connect(client_id);
    c.clean_start = false;
    c.properties.session_expiry_interval = Some(300);
    c
}

fn qos2(topic: &'static str, id: u16, payload: &'static str) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: Bytes::from_static(topic.as_bytes()),
        packet_id: id,
        properties: Properties::default(),
        payload: Bytes::from_static(payload.as_bytes()),
    })
}

/// (payload or "PUBREL", packet id, dup) of each PUBLISH and PUBREL.
fn flows(packets: &[Packet]) -> Vec<(String, u16, bool)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((String::from_utf8_lossy(&p.payload).into_owned(), p.packet_id, p.dup)),
            Packet::PubRel(a) => Some(("PUBREL".into(), a.packet_id, false)),
            _ => None,
        })
        .collect()
}

fn f(payload: &str, id: u16, dup: bool) -> (String, u16, bool) {
    (payload.into(), id, dup)
}

#[test]
fn a_session_moving_threads_resumes_its_qos_2_flows_both_ways() {
    // Outbound: PUBLISH DUP 1 with its identifier for one not received, PUBREL for one
    // received [MQTT-4.4.0-1]. Inbound: a QoS 2 identifier not yet released moves too,
    // so the client's retransmission is not routed twice and its PUBREL completes.
    let mut c = Cluster::new(2);
    c.connect(1, 0, resume("roamer"));
    c.send(
        1,
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            subscriptions: vec![Subscription {
                filter: Bytes::from_static(b"q/#"),
                options: SubscriptionOptions::qos(QoS::ExactlyOnce),
            }],
        }),
    );
    assert!(matches!(c.recv(1).first(), Some(Packet::SubAck(_))));
    c.connect(2, 1, connect("pub"));
    let _ = c.subscribe(2, "from/#");
    c.send(2, qos2("q/x", 1, "not received"));
    c.send(2, qos2("q/x", 2, "received"));
    assert_eq!(
        flows(&c.recv(1)),
        [f("not received", 1, false), f("received", 2, false)]
    );
    c.send(1, Packet::PubRec(crate::mqtt::Ack::success(2)));
    assert_eq!(flows(&c.recv(1)), [f("PUBREL", 2, false)]);
    // The roamer publishes at QoS 2 and gets PUBREC; its PUBREL is still to come.
    c.send(1, qos2("from/r", 7, "once"));
    assert!(matches!(c.recv(1).first(), Some(Packet::PubRec(a)) if a.packet_id == 7));
    c.recv(2);
    // It comes back on thread 1 before the broker heard it leave (a takeover).
    c.conns[1].insert(3, Connection::new(ConnectionConfig::default(), c.now));
    c.clients
        .insert(3, (1, Codec::client(ProtocolVersion::V5), SegmentedBuffer::new()));
    c.send(3, Packet::Connect(Box::new(resume("roamer"))));
    let got = c.recv(3);
    assert!(
        matches!(got.first(), Some(Packet::ConnAck(a)) if a.session_present),
        "{got:?}"
    );
    assert_eq!(flows(&got), [f("not received", 1, true), f("PUBREL", 2, false)]);
    // Its retransmission of 7 is not routed again; its PUBREL completes with Success.
    let mut again = qos2("from/r", 7, "once");
    if let Packet::Publish(p) = &mut again {
        p.dup = true;
    }
    c.send(3, again);
    c.send(3, Packet::PubRel(crate::mqtt::Ack::success(7)));
    let got = c.recv(3);
    assert!(
        got.iter()
            .any(|p| matches!(p, Packet::PubComp(a) if a.packet_id == 7 && a.code == ReasonCode::Success)),
        "{got:?}"
    );
    assert!(c.messages(2).is_empty(), "routed once only");
    // A new message takes an identifier no flow holds.
    c.send(2, qos2("q/y", 3, "new"));
    assert_eq!(flows(&c.recv(3)), [f("new", 3, false)]);
    assert_eq!(c.states[0].session_count(), 0, "the session left thread 0");
}

#[test]
fn two_connects_of_one_client_at_once_leave_the_later_one_with_the_session() {
    // Both CONNECTs reach their threads before either thread hears of the other: the
    // later in (stamp, thread) wins on both, the other is refused, and the session
    // (offline on thread 0) ends up whole with the winner.
    let mut c = Cluster::new(2);
    c.connect(1, 0, resume("twin"));
    let _ = c.subscribe(1, "keep/#");
    c.conns[0].get_mut(&1).expect("connection").handle_eof(c.now);
    c.ready.push((0, 1));
    c.pump();
    c.conns[0].remove(&1);
    for (id, thread) in [(2, 0), (3, 1)] {
        c.conns[thread].insert(id, Connection::new(ConnectionConfig::default(), c.now));
        let mut codec = Codec::client(ProtocolVersion::V5);
        let mut wire = crate::IoArena::new();
        codec
            .encode(&Packet::Connect(Box::new(resume("twin"))), &mut wire)
            .expect("encode");
        c.clients.insert(id, (thread, codec, SegmentedBuffer::new()));
        let conn = c.conns[thread].get_mut(&id).expect("connection");
        conn.handle_input(Bytes::from(wire.to_vec()), c.now);
        c.ready.push((thread, id));
    }
    c.pump();
    let lost = c.recv(2);
    assert!(
        matches!(lost.first(), Some(Packet::ConnAck(a)) if a.code == ReasonCode::ServerBusy),
        "{lost:?}"
    );
    let won = c.recv(3);
    assert!(
        matches!(won.first(), Some(Packet::ConnAck(a)) if a.code == ReasonCode::Success && a.session_present),
        "{won:?}"
    );
    assert_eq!(c.states[0].session_count(), 0);
    c.connect(4, 0, connect("pub"));
    c.publish(4, "keep/x", "here", false);
    assert_eq!(c.messages(3), [m("keep/x", "here")]);
}

#[test]
fn a_session_moving_threads_is_recorded_whole_in_the_new_threads_store() {
    // Each thread has its own store: the old one forgets the session, the new one
    // records all of it, flights with their identifiers and the inbound QoS 2 ids.
    use super::StoreOp;
    let mut c = Cluster::new(2);
    for s in &mut c.states {
        s.enable_store();
    }
    c.connect(1, 0, resume("roamer"));
    c.send(
        1,
        Packet::Subscribe(Subscribe {
            packet_id: 1,
            properties: Properties::default(),
            subscriptions: vec![Subscription {
                filter: Bytes::from_static(b"q/#"),
                options: SubscriptionOptions::qos(QoS::ExactlyOnce),
            }],
        }),
    );
    assert!(matches!(c.recv(1).first(), Some(Packet::SubAck(_))));
    c.connect(2, 1, connect("pub"));
    c.send(2, qos2("q/x", 1, "m"));
    assert_eq!(flows(&c.recv(1)), [f("m", 1, false)]);
    c.send(1, qos2("from/r", 7, "in"));
    assert!(matches!(c.recv(1).first(), Some(Packet::PubRec(a)) if a.packet_id == 7));
    let mut before = Vec::new();
    c.states[0].drain_store_ops(&mut before);
    assert!(
        before
            .iter()
            .any(|op| matches!(op, StoreOp::InFlight { flight, .. } if flight.packet_id == 1 && !flight.released)),
        "the identifier is recorded when the PUBLISH goes: {before:?}"
    );
    c.states[1].drain_store_ops(&mut Vec::new());
    c.conns[1].insert(3, Connection::new(ConnectionConfig::default(), c.now));
    c.clients
        .insert(3, (1, Codec::client(ProtocolVersion::V5), SegmentedBuffer::new()));
    c.send(3, Packet::Connect(Box::new(resume("roamer"))));
    assert_eq!(flows(&c.recv(3)), [f("m", 1, true)]);
    let mut old = Vec::new();
    c.states[0].drain_store_ops(&mut old);
    assert!(old.contains(&StoreOp::SessionDropped {
        client: "roamer".into()
    }));
    let mut new = Vec::new();
    c.states[1].drain_store_ops(&mut new);
    let roamer = |client: &Bytes| client == "roamer";
    assert!(new
        .iter()
        .any(|op| matches!(op, StoreOp::Session { client, .. } if roamer(client))));
    assert!(new
        .iter()
        .any(|op| matches!(op, StoreOp::Subscribed { client, filter, .. } if roamer(client) && filter == "q/#")));
    assert!(new
        .iter()
        .any(|op| matches!(op, StoreOp::Received { client, packet_id: 7 } if roamer(client))));
    let queued = new.iter().find_map(|op| match op {
        StoreOp::Queued {
            client, seq, publish, ..
        } if roamer(client) && publish.payload == "m" => Some(*seq),
        _ => None,
    });
    let seq = queued.expect("the message in flight is recorded");
    assert!(
        new.iter().any(
            |op| matches!(op, StoreOp::InFlight { seq: s, flight, .. } if *s == seq && flight.packet_id == 1 && !flight.released)
        ),
        "{new:?}"
    );
}

#[test]
fn a_subscribe_pipelined_behind_a_connect_is_answered_once_the_threads_have() {
    // A client may send packets right after its CONNECT. On a cluster the CONNACK waits
    // for the other threads' answers, which arrive through the mailbox, so no driver
    // reports the connection ready again: the SUBSCRIBE decoded with the CONNECT's
    // acceptance must be handled then, not left in the connection's queue.
    let mut c = Cluster::new(2);
    c.conns[1].insert(1, Connection::new(ConnectionConfig::default(), c.now));
    let mut codec = Codec::client(ProtocolVersion::V5);
    let mut wire = crate::IoArena::new();
    codec
        .encode(&Packet::Connect(Box::new(connect("eager"))), &mut wire)
        .expect("encode");
    codec
        .encode(
            &Packet::Subscribe(Subscribe {
                packet_id: 9,
                properties: Properties::default(),
                subscriptions: vec![Subscription {
                    filter: Bytes::from_static(b"e/#"),
                    options: SubscriptionOptions::qos(QoS::AtMostOnce),
                }],
            }),
            &mut wire,
        )
        .expect("encode");
    c.clients.insert(1, (1, codec, SegmentedBuffer::new()));
    let conn = c.conns[1].get_mut(&1).expect("connection");
    conn.handle_input(Bytes::from(wire.to_vec()), c.now);
    c.ready.push((1, 1));
    c.pump();
    let got = c.recv(1);
    assert!(
        matches!(got.first(), Some(Packet::ConnAck(a)) if a.code == ReasonCode::Success),
        "{got:?}"
    );
    assert!(
        matches!(got.get(1), Some(Packet::SubAck(a)) if a.packet_id == 9),
        "the pipelined SUBSCRIBE is answered: {got:?}"
    );
    c.connect(2, 0, connect("talker"));
    c.publish(2, "e/1", "heard", false);
    assert_eq!(c.messages(1), [m("e/1", "heard")]);
}

fn subscribe_packet(packet_id: u16, filter: &'static str) -> Packet {
    Packet::Subscribe(Subscribe {
        packet_id,
        properties: Properties::default(),
        subscriptions: vec![Subscription {
            filter: Bytes::from_static(filter.as_bytes()),
            options: SubscriptionOptions::qos(QoS::AtMostOnce),
        }],
    })
}

fn unsubscribe_packet(filter: &'static str) -> Packet {
    Packet::Unsubscribe(crate::mqtt::Unsubscribe {
        packet_id: 2,
        properties: Properties::default(),
        filters: vec![Bytes::from_static(filter.as_bytes())],
    })
}

#[test]
fn a_publish_goes_only_to_the_threads_with_a_matching_subscription() {
    let mut c = Cluster::new(3);
    c.connect(1, 0, connect("pub"));
    c.connect(2, 1, connect("sub"));
    c.connect(3, 2, connect("idle"));
    let _ = c.subscribe(2, "t/+");
    let _ = c.subscribe(3, "other");
    for _ in 0..3 {
        c.publish(1, "t/1", "x", false);
    }
    assert_eq!(c.messages(2).len(), 3);
    let forwards: Vec<u64> = c.states.iter().map(|s| s.forwards_received()).collect();
    assert_eq!(forwards, [0, 3, 0], "thread 2 has no matching subscription");
    assert_eq!(c.states[0].forwards_sent(), 3);
    // A topic nobody subscribed to stays on its thread.
    c.publish(1, "nobody", "x", false);
    assert_eq!(c.states[0].forwards_sent(), 3);
    // Unsubscribed: thread 1 is no longer sent anything.
    c.send(2, unsubscribe_packet("t/+"));
    assert!(matches!(c.recv(2).first(), Some(Packet::UnsubAck(_))));
    c.publish(1, "t/1", "x", false);
    assert_eq!(c.states[1].forwards_received(), 3);
    assert!(c.messages(2).is_empty());
    // A second subscriber of a filter on a thread, then one of them leaving, keeps it.
    c.connect(4, 1, connect("sub2"));
    let _ = c.subscribe(2, "t/+");
    let _ = c.subscribe(4, "t/+");
    c.send(4, unsubscribe_packet("t/+"));
    c.publish(1, "t/1", "y", false);
    assert_eq!(c.messages(2), [m("t/1", "y")]);
    assert_eq!(c.states[1].forwards_received(), 4);
}

/// The race the acknowledgements close: thread 1 takes a SUBSCRIBE before thread 0 has
/// heard of its filter. Its SUBACK waits until thread 0 routes by it, so a message
/// published on thread 0 after the SUBACK reaches the subscriber.
#[test]
fn a_suback_waits_until_every_other_thread_routes_to_the_new_filter() {
    let mut c = Cluster::new(2);
    c.connect(1, 0, connect("pub"));
    c.connect(2, 1, connect("sub"));
    c.feed(2, subscribe_packet(5, "r/#"));
    c.events(1);
    assert!(c.recv(2).is_empty(), "no SUBACK before thread 0 routes to r/#");
    // Meanwhile thread 0 takes a publish: it does not know the filter yet (and the
    // SUBACK has not gone, so the subscriber was promised nothing).
    c.publish_unpumped(1, "r/early");
    c.events(0);
    c.carry(0);
    c.carry(1);
    c.take(0); // the announcement
    c.carry(0); // its acknowledgement
    c.take(1);
    let got = c.recv(2);
    assert!(
        matches!(got.first(), Some(Packet::SubAck(a)) if a.packet_id == 5),
        "{got:?}"
    );
    c.publish(1, "r/late", "x", false);
    assert_eq!(c.messages(2), [m("r/late", "x")]);
    // A SUBSCRIBE of a filter the other threads know is answered at once.
    c.connect(3, 1, connect("sub3"));
    c.feed(3, subscribe_packet(6, "r/#"));
    c.events(1);
    assert!(matches!(c.recv(3).first(), Some(Packet::SubAck(a)) if a.packet_id == 6));
}

/// A session handed to another thread brings its subscriptions, announced by the new
/// thread; its CONNACK waits until the others route by them, and the old thread is
/// sent nothing more.
#[test]
fn a_session_moving_threads_moves_its_routes_before_its_connack() {
    let mut c = Cluster::new(3);
    c.connect(1, 2, connect("pub"));
    c.connect(2, 0, resume("mover"));
    let _ = c.subscribe(2, "mv/#");
    c.publish(1, "mv/1", "a", false);
    assert_eq!(c.messages(2), [m("mv/1", "a")]);
    // It reconnects on thread 1 (a takeover).
    c.conns[1].insert(3, Connection::new(ConnectionConfig::default(), c.now));
    c.clients
        .insert(3, (1, Codec::client(ProtocolVersion::V5), SegmentedBuffer::new()));
    c.feed(3, Packet::Connect(Box::new(resume("mover"))));
    c.events(1);
    c.carry(1);
    c.take(0); // thread 0 hands the session over
    c.take(2);
    c.carry(0);
    c.carry(2);
    c.take(1); // the answers: the session is installed, its filter announced
    assert!(
        c.recv(3).is_empty(),
        "no CONNACK before the other threads route mv/# here"
    );
    c.pump();
    let got = c.recv(3);
    assert!(
        matches!(got.first(), Some(Packet::ConnAck(a)) if a.session_present),
        "{got:?}"
    );
    let before = c.states[0].forwards_received();
    c.publish(1, "mv/2", "b", false);
    assert_eq!(c.messages(3), [m("mv/2", "b")]);
    assert_eq!(c.states[0].forwards_received(), before, "the old thread gets nothing");
}

/// A stored session moving threads is committed to the new thread's store before the
/// old one forgets it: a crash between the two commits leaves it in one store or both
/// (the next CONNECT keeps one), never in neither.
#[test]
fn a_stored_session_leaves_the_old_store_only_once_the_new_one_committed_it() {
    use super::StoreOp;
    let mut c = Cluster::new(2);
    for s in &mut c.states {
        s.enable_store();
    }
    c.connect(1, 0, resume("roamer"));
    let _ = c.subscribe(1, "q/#");
    for s in &mut c.states {
        s.drain_store_ops(&mut Vec::new());
    }
    let dropped = |ops: &[StoreOp]| {
        ops.iter()
            .any(|op| matches!(op, StoreOp::SessionDropped { client } if client == "roamer"))
    };
    // The client comes back on thread 1: thread 0 hands the session over.
    c.conns[1].insert(2, Connection::new(ConnectionConfig::default(), c.now));
    c.clients
        .insert(2, (1, Codec::client(ProtocolVersion::V5), SegmentedBuffer::new()));
    c.feed(2, Packet::Connect(Box::new(resume("roamer"))));
    c.events(1);
    c.carry(1);
    c.take(0);
    c.carry(0);
    c.take(1);
    let mut old = Vec::new();
    c.states[0].drain_store_ops(&mut old);
    assert!(!dropped(&old), "forgotten before the new thread stored it: {old:?}");
    let mut new = Vec::new();
    c.states[1].drain_store_ops(&mut new);
    assert!(new
        .iter()
        .any(|op| matches!(op, StoreOp::Session { client, .. } if client == "roamer")));
    // Thread 1 commits; thread 0 hears it and forgets the session.
    assert!(c.states[1].committed());
    c.carry(1);
    c.take(0);
    let mut old = Vec::new();
    c.states[0].drain_store_ops(&mut old);
    assert!(dropped(&old), "{old:?}");
    c.pump();
    assert!(matches!(c.recv(2).first(), Some(Packet::ConnAck(a)) if a.session_present));
    // Moving back: thread 0 records it whole again, and forgets it once thread 1...
    c.conns[0].insert(3, Connection::new(ConnectionConfig::default(), c.now));
    c.clients
        .insert(3, (0, Codec::client(ProtocolVersion::V5), SegmentedBuffer::new()));
    c.send(3, Packet::Connect(Box::new(resume("roamer"))));
    assert!(matches!(c.recv(3).first(), Some(Packet::ConnAck(a)) if a.session_present));
    let mut back = Vec::new();
    c.states[0].drain_store_ops(&mut back);
    assert!(back
        .iter()
        .any(|op| matches!(op, StoreOp::Subscribed { client, filter, .. } if client == "roamer" && filter == "q/#")));
    let mut left = Vec::new();
    c.states[1].drain_store_ops(&mut left);
    assert!(dropped(&left), "thread 1 forgot it once thread 0 committed: {left:?}");
}

/// The same for a shared subscription: the member count is acknowledged before the
/// SUBACK, so the group's only member, on another thread, gets what is published after.
#[test]
fn a_shared_subscriptions_suback_waits_for_its_member_count_to_be_known() {
    let mut c = Cluster::new(2);
    c.connect(1, 0, connect("pub"));
    c.connect(2, 1, connect("worker"));
    c.feed(2, subscribe_packet(7, "$share/g/job/#"));
    c.events(1);
    assert!(c.recv(2).is_empty(), "no SUBACK before thread 0 knows the member");
    c.carry(1);
    c.take(0);
    c.carry(0);
    c.take(1);
    let got = c.recv(2);
    assert!(
        matches!(got.first(), Some(Packet::SubAck(a)) if a.packet_id == 7),
        "{got:?}"
    );
    c.publish(1, "job/1", "work", false);
    assert_eq!(c.messages(2), [m("job/1", "work")]);
}

/// The stamp of the latest session record of `client` among `ops`.
fn record_stamp(ops: &[super::StoreOp], client: &str) -> Option<u64> {
    ops.iter().rev().find_map(|op| match op {
        super::StoreOp::Session { client: c, record } if c == client => Some(record.stamp),
        _ => None,
    })
}

/// Thread 0 restored `roamer` (subscribed to `q/#`) from its store with record stamp
/// `stamp`; thread 1 has an empty store and a clock far behind.
fn restored_on_thread_0(stamp: u64) -> Cluster {
    use super::{SessionRecord, StoredSession, SubscriptionRecord};
    let mut c = Cluster::new(2);
    let stored = StoredSession {
        client: Bytes::from_static(b"roamer"),
        record: SessionRecord {
            version: ProtocolVersion::V5,
            expiry_interval: 300,
            expires_at: None,
            stamp,
        },
        subscriptions: vec![(
            Bytes::from_static(b"q/#"),
            SubscriptionRecord {
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
                id: 0,
            },
        )],
        messages: Vec::new(),
        received: Vec::new(),
    };
    let now = c.now;
    c.states[0].restore(vec![stored], Vec::new(), 100, now, std::time::SystemTime::now());
    c.states[1].enable_store();
    c
}

#[test]
fn a_session_moving_threads_is_stamped_later_than_the_copy_it_came_from() {
    // A crash between the new thread's commit and the old one's forgetting leaves
    // both copies; the start keeps the one with the larger stamp, so the new
    // thread's must be larger, however far behind its own clock was.
    let mut c = restored_on_thread_0(1_000);
    let mut last = 1_000;
    // 0 -> 1 (thread 1's clock never passed 1), 1 -> 0, then 0 -> 1 again after
    // thread 0 rewrote the record where thread 1 could not see (a DISCONNECT).
    for (moves, (id, to)) in [(1, 1), (2, 0), (3, 1)].into_iter().enumerate() {
        let (present, _) = c.connect(id, to, resume("roamer"));
        assert!(present, "move {moves}");
        let mut ops = Vec::new();
        c.states[to].drain_store_ops(&mut ops);
        let stamp = record_stamp(&ops, "roamer").expect("the new thread recorded the session");
        assert!(stamp > last, "move {moves}: new {stamp}, old {last}");
        last = stamp;
        if to == 0 {
            c.send(id, Packet::Disconnect(crate::mqtt::Reason::new(ReasonCode::Success)));
            c.pump();
            let mut ops = Vec::new();
            c.states[0].drain_store_ops(&mut ops);
            last = record_stamp(&ops, "roamer").expect("rewritten with its end");
        }
    }
}

#[test]
fn a_clean_start_elsewhere_is_stamped_later_than_the_session_it_replaces() {
    // Thread 0 forgets the old session in its own commit, which may come after
    // thread 1 committed the new one: the new one must win at the next start.
    let mut c = restored_on_thread_0(1_000);
    let mut fresh = connect("roamer");
    fresh.properties.session_expiry_interval = Some(60);
    let (present, _) = c.connect(1, 1, fresh);
    assert!(!present);
    let mut new = Vec::new();
    c.states[1].drain_store_ops(&mut new);
    let stamp = record_stamp(&new, "roamer").expect("thread 1 recorded the new session");
    assert!(stamp > 1_000, "{stamp}");
}
