//! [`BrokerState`]: one thread's sessions, subscriptions and retained messages.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Instant;

use bytes::Bytes;

use super::connection::{Connection, Event};
use super::expiry::{Message, SessionTimers, NEVER_EXPIRES};
use super::outbox::Outbox;
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
    subscriptions: HashMap<Bytes, SubscriptionOptions>,
    will: Option<Will>,
    /// Whether the session survives the connection (3.1.1: Clean Session 0; 5.0: a
    /// Session Expiry Interval above 0).
    persistent: bool,
    /// Seconds the session outlives its connection ([`NEVER_EXPIRES`] for 3.1.1).
    expiry_interval: u32,
    /// When the session ends, while it has no connection.
    expires_at: Option<Instant>,
    /// Its outbound QoS 1 and 2 messages while it has no connection.
    outbox: Option<Box<Outbox>>,
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
    timers: SessionTimers,
}

impl<K> Default for BrokerState<K> {
    fn default() -> Self {
        BrokerState {
            sessions: HashMap::new(),
            clients: HashMap::new(),
            tree: TopicTree::new(),
            retained: Retained::default(),
            assigned: 0,
            timers: SessionTimers::default(),
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
                self.publish(&client, publish, now, conns);
            }
            Event::Subscribe(subscribe) => self.subscribe(key, subscribe, now, conns),
            Event::Unsubscribe(unsubscribe) => self.unsubscribe(key, unsubscribe, conns),
            Event::Closed { publish_will } => self.closed(key, publish_will, now, conns),
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due: the earliest end of
    /// a session without a connection.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// Ends the sessions whose expiry interval ran out by `now`, with their
    /// subscriptions and queued messages [MQTT-3.1.2-23]; forgets the retained messages
    /// expired by then (expired ones are never sent in any case).
    pub fn handle_timeout(&mut self, now: Instant) {
        self.retained.purge_expired(now);
        while let Some((at, client)) = self.timers.pop_due(now) {
            let due = self
                .sessions
                .get(&client)
                .is_some_and(|s| s.conn.is_none() && s.expires_at == Some(at));
            if due {
                self.drop_session(&client);
            }
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
                // The session continues on the new connection with what was in flight
                // on the old one.
                let outbox = conns.connection(old).map(|c| {
                    c.disconnect(ReasonCode::SessionTakenOver);
                    c.take_outbox()
                });
                let will = self.sessions.get_mut(&client).and_then(|s| {
                    s.conn = None;
                    if outbox.is_some() {
                        s.outbox = outbox;
                    }
                    s.will.take()
                });
                if let Some(will) = will {
                    self.publish_will(&client, will, now, conns);
                }
            }
        }
        // A session past its expiry is gone, swept or not yet.
        let expired = self
            .sessions
            .get(&client)
            .is_some_and(|s| s.conn.is_none() && s.expires_at.is_some_and(|at| at <= now));
        if connect.clean_start || expired {
            self.drop_session(&client);
        }
        let expiry_interval = if v5 {
            connect.properties.session_expiry_interval.unwrap_or(0)
        } else if connect.clean_start {
            0
        } else {
            NEVER_EXPIRES
        };
        let persistent = expiry_interval > 0;
        let will = connect.will.map(|w| Will {
            properties: w.properties,
            topic: Bytes::copy_from_slice(&w.topic),
            payload: Bytes::copy_from_slice(&w.payload),
            qos: w.qos,
            retain: w.retain,
        });
        let mut resumed = None;
        let session_present = match self.sessions.get_mut(&client) {
            Some(s) => {
                s.conn = Some(key);
                s.version = connect.protocol;
                s.will = will;
                s.persistent = persistent;
                s.expiry_interval = expiry_interval;
                s.expires_at = None;
                resumed = s.outbox.take();
                true
            }
            None => {
                self.sessions.insert(
                    client.clone(),
                    ClientSession {
                        conn: Some(key),
                        version: connect.protocol,
                        subscriptions: HashMap::new(),
                        will,
                        persistent,
                        expiry_interval,
                        expires_at: None,
                        outbox: None,
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
            if let Some(outbox) = resumed {
                c.resume(outbox, now);
            }
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

    fn closed(&mut self, key: K, publish_will: bool, now: Instant, conns: &mut impl Connections<K>) {
        // A connection taken over was detached already.
        let Some(client) = self.clients.remove(&key) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        session.conn = None;
        let will = session.will.take();
        // The DISCONNECT may change the interval: to 0 ends the session now.
        if let Some(expiry) = conns.connection(key).and_then(|c| c.disconnect_session_expiry()) {
            session.expiry_interval = expiry;
            session.persistent = expiry > 0;
        }
        let persistent = session.persistent;
        if persistent {
            // What was in flight and queued stays with the session until it resumes
            // or expires.
            if let Some(c) = conns.connection(key) {
                session.outbox = Some(c.take_outbox());
            }
            session.expires_at = SessionTimers::deadline(now, session.expiry_interval);
            if let Some(at) = session.expires_at {
                self.timers.schedule(at, client.clone());
                let sessions = &self.sessions;
                self.timers.compact(sessions.len(), |at, c| {
                    sessions.get(c).is_some_and(|s| s.expires_at == Some(at))
                });
            }
        }
        if publish_will {
            if let Some(will) = will {
                self.publish_will(&client, will, now, conns);
            }
        }
        if !persistent {
            self.drop_session(&client);
        }
    }

    fn publish_will(&mut self, client: &Bytes, will: Will, now: Instant, conns: &mut impl Connections<K>) {
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
        self.publish(client, publish, now, conns);
    }

    /// Routes a message from `publisher` to every matching subscription (once per
    /// session, at the highest matching QoS capped by the message's), and applies it to
    /// the retained messages when it is retained.
    fn publish(&mut self, publisher: &Bytes, publish: Publish, now: Instant, conns: &mut impl Connections<K>) {
        if publish.retain {
            self.retained.apply(&publish, now);
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
        if targets.is_empty() {
            return;
        }
        let mut message = Message::received(publish, now);
        // QoS 1 and 2 copies may wait; one exact-size copy is shared by all of them.
        if message.publish.qos != QoS::AtMostOnce {
            message = message.detached();
        }
        for (client, (qos, retain_as_published)) in targets {
            let Some(session) = self.sessions.get_mut(client) else {
                continue;
            };
            let mut out = message.clone();
            out.publish.qos = qos.min(message.publish.qos);
            // Forwarded messages carry RETAIN 0 unless Retain As Published [MQTT-3.3.1-12].
            out.publish.retain = message.publish.retain && retain_as_published;
            out.publish.properties.topic_alias = None;
            match session.conn {
                Some(conn) => {
                    if let Some(c) = conns.connection(conn) {
                        c.deliver_message(out, now);
                    }
                }
                // Offline: QoS 1 and 2 messages wait in the session's bounded queue
                // [MQTT-3.1.2-5]; QoS 0 ones are not kept.
                None if out.publish.qos != QoS::AtMostOnce => {
                    if let Some(outbox) = session.outbox.as_mut() {
                        outbox.enqueue(out);
                    }
                }
                None => {}
            }
        }
    }

    fn subscribe(&mut self, key: K, subscribe: Subscribe, now: Instant, conns: &mut impl Connections<K>) {
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
            for message in self.retained.matching(&filter, now) {
                let mut out = message.clone();
                out.publish.qos = qos.min(message.publish.qos);
                c.deliver_message(out, now);
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
