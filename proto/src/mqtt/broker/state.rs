//! [`BrokerState`]: one thread's sessions, subscriptions and retained messages.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::time::Instant;

use bytes::Bytes;

use super::connection::{Connection, Event};
use super::retained::Retained;
use crate::mqtt::{
    ConnAck, Connect, Packet, Properties, ProtocolVersion, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscriptionOptions, TopicTree, Unsubscribe, Will,
};

/// How the broker state reaches the connections a driver holds (by the driver's
/// connection id, `K`): the body implements it over its driver, tests over a map.
pub trait Connections<K> {
    /// The connection `key`, if it is still there.
    fn connection(&mut self, key: K) -> Option<&mut Connection>;
}

impl<K: Hash + Eq> Connections<K> for HashMap<K, Connection> {
    fn connection(&mut self, key: K) -> Option<&mut Connection> {
        self.get_mut(&key)
    }
}

/// A subscription in the topic tree: whose it is and with which options.
#[derive(Debug, Clone)]
struct Subscriber {
    client: Bytes,
    options: SubscriptionOptions,
}

/// A client's session: its subscriptions outlive its connection when it asked for a
/// persistent session.
#[derive(Debug)]
struct ClientSession<K> {
    /// The connection now attached, if any.
    conn: Option<K>,
    version: ProtocolVersion,
    /// A B-tree: 24 bytes and no allocation for the (many) sessions without any,
    /// against 48 for an empty `HashMap`.
    subscriptions: BTreeMap<Bytes, SubscriptionOptions>,
    /// Boxed: a `Will` is ~460 bytes and most sessions have none.
    will: Option<Box<Will>>,
    /// Whether the session survives the connection (3.1.1: Clean Session 0; 5.0: a
    /// Session Expiry Interval above 0, kept without expiry for now).
    persistent: bool,
}

/// The broker of one thread: sessions by client identifier, the topic tree of
/// subscriptions, the retained messages. Connections report [`Event`]s to
/// [`handle_event`](Self::handle_event), which answers and routes through
/// [`Connections`]. No clock, no I/O.
#[derive(Debug)]
pub struct BrokerState<K> {
    sessions: HashMap<Bytes, ClientSession<K>>,
    clients: HashMap<K, Bytes>,
    tree: TopicTree<Subscriber>,
    retained: Retained,
    assigned: u64,
}

impl<K> Default for BrokerState<K> {
    fn default() -> Self {
        BrokerState {
            sessions: HashMap::new(),
            clients: HashMap::new(),
            tree: TopicTree::new(),
            retained: Retained::default(),
            assigned: 0,
        }
    }
}

impl<K: Copy + Hash + Eq> BrokerState<K> {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sessions held (connected or persistent).
    pub fn session_count(&self) -> usize {
        self.sessions.len()
    }

    /// Subscriptions in the topic tree.
    pub fn subscription_count(&self) -> usize {
        self.tree.len()
    }

    /// Retained messages held.
    pub fn retained_count(&self) -> usize {
        self.retained.len()
    }

    /// The client identifier of connection `key`, once connected.
    pub fn client_id(&self, key: K) -> Option<&Bytes> {
        self.clients.get(&key)
    }

    /// Handles one event of connection `key` (drain each connection's events in
    /// order); answers and deliveries go to the connections through `conns`.
    pub fn handle_event(&mut self, key: K, event: Event, now: Instant, conns: &mut impl Connections<K>) {
        match event {
            Event::Connect(connect) => self.connect(key, *connect, now, conns),
            Event::Publish(publish) => {
                let Some(client) = self.clients.get(&key).cloned() else {
                    return;
                };
                self.publish(&client, publish, conns);
            }
            Event::Subscribe(subscribe) => self.subscribe(key, subscribe, conns),
            Event::Unsubscribe(unsubscribe) => self.unsubscribe(key, unsubscribe, conns),
            Event::Closed { publish_will } => self.closed(key, publish_will, conns),
        }
    }

    fn connect(&mut self, key: K, connect: Connect, now: Instant, conns: &mut impl Connections<K>) {
        let v5 = connect.protocol.is_v5();
        let mut properties = Properties::default();
        let client = if connect.client_id.is_empty() {
            // 3.1.1 assigns one only to a clean session [MQTT-3.1.3-7]; 3.1 never.
            if !v5 && (!connect.clean_start || connect.protocol == ProtocolVersion::V3_1) {
                if let Some(c) = conns.connection(key) {
                    c.refuse(ReasonCode::ClientIdentifierNotValid);
                }
                return;
            }
            let id = self.assign_client_id();
            if v5 {
                properties.assigned_client_identifier = Some(id.clone());
            }
            id
        } else {
            Bytes::copy_from_slice(&connect.client_id)
        };
        if v5 {
            properties.shared_subscription_available = Some(false);
            properties.subscription_identifier_available = Some(false);
        }
        // Session takeover [MQTT-3.1.4-3]: the connection holding the id goes, and its
        // will is published as for any connection that ends without DISCONNECT.
        if let Some(old) = self.sessions.get(&client).and_then(|s| s.conn) {
            if old != key {
                self.clients.remove(&old);
                if let Some(c) = conns.connection(old) {
                    c.disconnect(ReasonCode::SessionTakenOver);
                }
                let will = self.sessions.get_mut(&client).and_then(|s| {
                    s.conn = None;
                    s.will.take()
                });
                if let Some(will) = will {
                    self.publish_will(&client, *will, conns);
                }
            }
        }
        if connect.clean_start {
            self.drop_session(&client);
        }
        let persistent = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0) > 0
        } else {
            !connect.clean_start
        };
        let will = connect.will.map(|w| {
            Box::new(Will {
                properties: w.properties,
                topic: Bytes::copy_from_slice(&w.topic),
                payload: Bytes::copy_from_slice(&w.payload),
                qos: w.qos,
                retain: w.retain,
            })
        });
        let session_present = match self.sessions.get_mut(&client) {
            Some(s) => {
                s.conn = Some(key);
                s.version = connect.protocol;
                s.will = will;
                s.persistent = persistent;
                true
            }
            None => {
                self.sessions.insert(
                    client.clone(),
                    ClientSession {
                        conn: Some(key),
                        version: connect.protocol,
                        subscriptions: BTreeMap::new(),
                        will,
                        persistent,
                    },
                );
                false
            }
        };
        self.clients.insert(key, client);
        let ack = ConnAck {
            session_present,
            code: ReasonCode::Success,
            properties,
        };
        if let Some(c) = conns.connection(key) {
            c.accept(ack, connect.keep_alive, now);
        }
    }

    fn assign_client_id(&mut self) -> Bytes {
        loop {
            self.assigned += 1;
            let id = Bytes::from(format!("monocoque-{}", self.assigned));
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Forgets a session and its subscriptions.
    fn drop_session(&mut self, client: &Bytes) {
        if let Some(session) = self.sessions.remove(client) {
            for filter in session.subscriptions.keys() {
                self.tree.remove(filter, |s| s.client == *client);
            }
        }
    }

    fn closed(&mut self, key: K, publish_will: bool, conns: &mut impl Connections<K>) {
        // A connection taken over was detached already.
        let Some(client) = self.clients.remove(&key) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        session.conn = None;
        let will = session.will.take();
        let persistent = session.persistent;
        if publish_will {
            if let Some(will) = will {
                self.publish_will(&client, *will, conns);
            }
        }
        if !persistent {
            self.drop_session(&client);
        }
    }

    fn publish_will(&mut self, client: &Bytes, will: Will, conns: &mut impl Connections<K>) {
        let mut properties = will.properties;
        properties.will_delay_interval = None;
        let publish = Publish {
            dup: false,
            qos: will.qos,
            retain: will.retain,
            topic: will.topic,
            packet_id: 0,
            properties,
            payload: will.payload,
        };
        self.publish(client, publish, conns);
    }

    /// Routes a message from `publisher` to every matching subscription (once per
    /// session, at the highest matching QoS capped by the message's), and applies it to
    /// the retained messages when it is retained.
    fn publish(&mut self, publisher: &Bytes, publish: Publish, conns: &mut impl Connections<K>) {
        if publish.retain {
            self.retained.apply(&publish);
        }
        // Per session: the highest QoS of its matching subscriptions, and whether any
        // of them keeps the retain flag as published.
        let mut targets: HashMap<&Bytes, (QoS, bool)> = HashMap::new();
        self.tree.for_each_match(&publish.topic, |s| {
            if s.options.no_local && s.client == *publisher {
                return;
            }
            let entry = targets.entry(&s.client).or_insert((QoS::AtMostOnce, false));
            entry.0 = entry.0.max(s.options.qos);
            entry.1 |= s.options.retain_as_published;
        });
        for (client, (qos, retain_as_published)) in targets {
            let Some(conn) = self.sessions.get(client).and_then(|s| s.conn) else {
                continue;
            };
            let Some(c) = conns.connection(conn) else { continue };
            let mut out = publish.clone();
            out.qos = qos.min(publish.qos);
            // Forwarded messages carry RETAIN 0 unless Retain As Published [MQTT-3.3.1-12].
            out.retain = publish.retain && retain_as_published;
            out.properties.topic_alias = None;
            c.deliver(out);
        }
    }

    fn subscribe(&mut self, key: K, subscribe: Subscribe, conns: &mut impl Connections<K>) {
        let Some(client) = self.clients.get(&key).cloned() else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        let v5 = session.version.is_v5();
        let mut codes = Vec::with_capacity(subscribe.subscriptions.len());
        let mut retained_for = Vec::new();
        for sub in &subscribe.subscriptions {
            if sub.filter.starts_with(b"$share/") {
                codes.push(if v5 {
                    ReasonCode::SharedSubscriptionsNotSupported
                } else {
                    ReasonCode::UnspecifiedError
                });
                continue;
            }
            let filter = Bytes::copy_from_slice(&sub.filter);
            let existed = session.subscriptions.insert(filter.clone(), sub.options).is_some();
            if existed {
                self.tree.remove(&filter, |s| s.client == client);
            }
            self.tree.insert(
                &filter,
                Subscriber {
                    client: client.clone(),
                    options: sub.options,
                },
            );
            codes.push(match sub.options.qos {
                QoS::AtMostOnce => ReasonCode::Success,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            });
            let send = match sub.options.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendIfNew => !existed,
                RetainHandling::DoNotSend => false,
            };
            if send {
                retained_for.push((filter, sub.options.qos));
            }
        }
        let Some(c) = conns.connection(key) else { return };
        c.send(&Packet::SubAck(SubAck {
            packet_id: subscribe.packet_id,
            properties: Properties::default(),
            codes,
        }));
        // Retained messages follow the SUBACK, with RETAIN 1 [MQTT-3.3.1-9].
        for (filter, qos) in retained_for {
            for message in self.retained.matching(&filter) {
                let mut out = message.clone();
                out.qos = qos.min(message.qos);
                c.deliver(out);
            }
        }
    }

    fn unsubscribe(&mut self, key: K, unsubscribe: Unsubscribe, conns: &mut impl Connections<K>) {
        let Some(client) = self.clients.get(&key).cloned() else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        let v5 = session.version.is_v5();
        let mut codes = Vec::new();
        for filter in &unsubscribe.filters {
            let existed = session.subscriptions.remove(&filter[..]).is_some();
            if existed {
                self.tree.remove(filter, |s| s.client == client);
            }
            if v5 {
                codes.push(if existed {
                    ReasonCode::Success
                } else {
                    ReasonCode::NoSubscriptionExisted
                });
            }
        }
        if let Some(c) = conns.connection(key) {
            c.send(&Packet::UnsubAck(SubAck {
                packet_id: unsubscribe.packet_id,
                properties: Properties::default(),
                codes,
            }));
        }
    }
}
