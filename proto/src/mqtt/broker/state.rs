//! [`BrokerState`]: one thread's sessions, subscriptions and retained messages.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::Hash;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::chassis::Session;

use super::access::Access;
use super::auth::{AuthExchange, AuthStep};
use super::client_id::ClientId;
use super::cluster::{ClusterMessage, HandedSession, Link};
use super::connection::{Connection, Event};
use super::expiry::{Message, SessionTimers, NEVER_EXPIRES};
use super::outbox::{Flight, FlowStep, Outbox};
use super::persist::{StoreOp, StoredSession, SubscriptionRecord};
use super::retained::Retained;
use super::sessions::SessionTable;
use super::shared::{self, Shared};
use super::will::{effective_delay, PendingWills};
use crate::mqtt::{
    ConnAck, Connect, Packet, Properties, ProtocolVersion, Publish, QoS, Reason, ReasonCode, RetainHandling, SubAck,
    Subscribe, SubscriptionOptions, TopicTree, Unsubscribe, Will,
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
    /// Its Subscription Identifier, 0 for none.
    id: u32,
}

/// A `CONNECT` held while its enhanced authentication exchange runs.
struct PendingAuth {
    connect: Connect,
    exchange: Box<dyn AuthExchange>,
}

/// A connection authenticated by an Authentication Method, which it may use again to
/// re-authenticate (4.12.1), and the re-authentication in progress.
struct Reauth {
    method: Bytes,
    exchange: Option<Box<dyn AuthExchange>>,
}

impl std::fmt::Debug for Reauth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reauth")
            .field("method", &self.method)
            .field("in_progress", &self.exchange.is_some())
            .finish()
    }
}

impl std::fmt::Debug for PendingAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAuth")
            .field("client", &self.connect.client_id)
            .finish()
    }
}

/// A client's session: its subscriptions outlive its connection when it asked for a
/// persistent session.
///
/// One of these sits in the session slab for every client, so it holds only what every
/// session uses; subscriptions, a will, an expiry deadline and an offline queue are in
/// [`SessionMore`], a box that a plain clean session with no subscription never
/// allocates.
#[derive(Debug)]
struct ClientSession<K> {
    /// The connection now attached, if any.
    conn: Option<K>,
    /// Seconds the session outlives its connection ([`NEVER_EXPIRES`] for 3.1.1).
    expiry_interval: u32,
    version: ProtocolVersion,
    /// Whether the session survives the connection (3.1.1: Clean Session 0; 5.0: a
    /// Session Expiry Interval above 0).
    persistent: bool,
    /// Whether the store holds it (a broker with a store, a persistent session).
    stored: bool,
    /// What few sessions have; `None` while all of it is empty.
    more: Option<Box<SessionMore>>,
}

/// The part of a [`ClientSession`] that an idle clean session does not need: boxed,
/// allocated when one of its fields is first set, freed when all are empty again.
#[derive(Debug, Default)]
struct SessionMore {
    /// A B-tree: no allocation for the sessions without any.
    /// Each with its options and Subscription Identifier (0: none).
    subscriptions: BTreeMap<Bytes, (SubscriptionOptions, u32)>,
    /// Boxed: a `Will` is ~460 bytes and most sessions have none.
    will: Option<Box<Will>>,
    /// When the session ends, while it has no connection.
    expires_at: Option<Instant>,
    /// Its outbound QoS 1 and 2 messages while it has no connection.
    outbox: Option<Box<Outbox>>,
}

impl SessionMore {
    fn is_empty(&self) -> bool {
        self.subscriptions.is_empty() && self.will.is_none() && self.expires_at.is_none() && self.outbox.is_none()
    }
}

impl<K> ClientSession<K> {
    /// A session with nothing in its boxed part.
    fn new(conn: Option<K>, version: ProtocolVersion, expiry_interval: u32, persistent: bool, stored: bool) -> Self {
        ClientSession {
            conn,
            expiry_interval,
            version,
            persistent,
            stored,
            more: None,
        }
    }

    /// The boxed part, allocated if the session had none.
    fn more(&mut self) -> &mut SessionMore {
        self.more.get_or_insert_with(Box::default)
    }

    /// Frees the boxed part once nothing is in it.
    fn settle(&mut self) {
        if self.more.as_ref().is_some_and(|m| m.is_empty()) {
            self.more = None;
        }
    }

    /// Its subscriptions (each with its options and Subscription Identifier).
    fn subscriptions(&self) -> impl Iterator<Item = (&Bytes, &(SubscriptionOptions, u32))> + '_ {
        self.more.iter().flat_map(|m| m.subscriptions.iter())
    }

    fn subscription_count(&self) -> usize {
        self.more.as_ref().map_or(0, |m| m.subscriptions.len())
    }

    fn is_subscribed(&self, filter: &[u8]) -> bool {
        self.more.as_ref().is_some_and(|m| m.subscriptions.contains_key(filter))
    }

    /// Adds or replaces a subscription; whether it replaced one.
    fn subscribe(&mut self, filter: Bytes, entry: (SubscriptionOptions, u32)) -> bool {
        self.more().subscriptions.insert(filter, entry).is_some()
    }

    /// Removes a subscription; whether there was one.
    fn unsubscribe(&mut self, filter: &[u8]) -> bool {
        let existed = self
            .more
            .as_mut()
            .is_some_and(|m| m.subscriptions.remove(filter).is_some());
        self.settle();
        existed
    }

    /// Takes all its subscriptions out.
    fn take_subscriptions(&mut self) -> BTreeMap<Bytes, (SubscriptionOptions, u32)> {
        let taken = self
            .more
            .as_mut()
            .map(|m| std::mem::take(&mut m.subscriptions))
            .unwrap_or_default();
        self.settle();
        taken
    }

    fn take_will(&mut self) -> Option<Box<Will>> {
        let will = self.more.as_mut().and_then(|m| m.will.take());
        self.settle();
        will
    }

    fn set_will(&mut self, will: Option<Box<Will>>) {
        match will {
            Some(will) => self.more().will = Some(will),
            None => {
                self.take_will();
            }
        }
    }

    fn expires_at(&self) -> Option<Instant> {
        self.more.as_ref().and_then(|m| m.expires_at)
    }

    fn set_expires_at(&mut self, at: Option<Instant>) {
        match at {
            Some(at) => self.more().expires_at = Some(at),
            None => {
                if let Some(m) = self.more.as_mut() {
                    m.expires_at = None;
                }
                self.settle();
            }
        }
    }

    fn take_outbox(&mut self) -> Option<Box<Outbox>> {
        let outbox = self.more.as_mut().and_then(|m| m.outbox.take());
        self.settle();
        outbox
    }

    fn set_outbox(&mut self, outbox: Option<Box<Outbox>>) {
        match outbox {
            Some(outbox) => self.more().outbox = Some(outbox),
            None => {
                self.take_outbox();
            }
        }
    }

    fn outbox_mut(&mut self) -> Option<&mut Outbox> {
        self.more.as_mut().and_then(|m| m.outbox.as_deref_mut())
    }
}

/// A `CONNECT` on a cluster waiting for the other threads' answers to its takeover
/// before its `CONNACK` (see [`cluster`](super::cluster)).
#[derive(Debug)]
struct Joining<K> {
    /// Its connection, until it closes or loses to a later `CONNECT`.
    key: Option<K>,
    connect: Box<Connect>,
    /// The `CONNACK`'s properties so far.
    properties: Properties,
    stamp: u64,
    /// Answers still to come.
    waiting: usize,
    /// The session an answer brought.
    handed: Option<Box<HandedSession>>,
    /// The takeovers that beat this one: (thread, stamp, clean start). Answered once
    /// this one's answers are in, the latest with the session.
    beaten_by: Vec<(usize, u64, bool)>,
}

/// An answer held until the other threads of a cluster acknowledged this thread's
/// filter announcements up to `needs` (see [`cluster`](super::cluster)).
#[derive(Debug)]
enum Held<K> {
    /// A `SUBACK` and the retained messages that follow it.
    SubAck {
        key: K,
        needs: u64,
        ack: SubAck,
        retained: Vec<(Bytes, QoS)>,
        id: u32,
    },
    /// The `CONNACK` of a session handed over from another thread.
    Connect {
        key: K,
        needs: u64,
        client: Bytes,
        connect: Box<Connect>,
        properties: Properties,
    },
}

impl<K: Copy> Held<K> {
    fn key(&self) -> K {
        match self {
            Held::SubAck { key, .. } | Held::Connect { key, .. } => *key,
        }
    }

    fn needs(&self) -> u64 {
        match self {
            Held::SubAck { needs, .. } | Held::Connect { needs, .. } => *needs,
        }
    }
}

/// The broker of one thread: sessions by client identifier, the topic tree of
/// subscriptions, the retained messages. Connections report [`Event`]s to
/// [`handle_event`](Self::handle_event), which answers and routes through
/// [`Connections`]. No clock, no I/O.
#[derive(Debug)]
pub struct BrokerState<K> {
    /// Sessions by client identifier, each stored once (see [`SessionTable`]).
    sessions: SessionTable<ClientSession<K>>,
    /// Connections attached to a session (each also carries its session's slot, see
    /// [`Connection::session_slot`]: no map from connections to sessions here).
    connected: usize,
    tree: TopicTree<Subscriber>,
    retained: Retained,
    assigned: u64,
    access: Access,
    shared: Shared,
    wills: PendingWills,
    authenticating: HashMap<K, PendingAuth>,
    reauth: HashMap<K, Reauth>,
    timers: SessionTimers,
    /// The other threads, when this state is one thread of a cluster.
    cluster: Option<Link>,
    /// `CONNECT`s waiting for the other threads, by client identifier.
    joining: HashMap<Bytes, Joining<K>>,
    /// `SUBACK`s and `CONNACK`s waiting until the other threads route by this
    /// thread's filters, in order.
    held: VecDeque<Held<K>>,
    /// Publishes other threads forwarded here.
    forwards_in: u64,
    /// Stored sessions handed to another thread, by client: the stamp of the takeover
    /// answered. Their records stay in this thread's store until the new thread says
    /// they are in its own ([`ClusterMessage::Moved`]).
    moved_out: HashMap<Bytes, u64>,
    /// Sessions handed here whose old thread waits for this thread's next commit:
    /// (thread, client, stamp), told by [`committed`](Self::committed).
    moved_in: Vec<(usize, Bytes, u64)>,
    /// Application messages received from clients and delivered to them ($SYS).
    received: u64,
    sent: u64,
    /// What the store must write, when the broker has one ([`enable_store`](Self::enable_store)).
    store: Option<Vec<StoreOp>>,
    /// The last store sequence number given to a message.
    seq: u64,
    /// The last session record stamp, without a cluster (one has its Lamport clock):
    /// restarts past the largest one restored.
    stamp: u64,
    /// An instant and the wall time it was, given at [`restore`](Self::restore): the
    /// store keeps deadlines in wall time, which this converts to and from.
    wall: Option<(Instant, SystemTime)>,
}

impl<K> Default for BrokerState<K> {
    fn default() -> Self {
        BrokerState {
            sessions: SessionTable::default(),
            connected: 0,
            tree: TopicTree::new(),
            retained: Retained::default(),
            assigned: 0,
            access: Access::default(),
            shared: Shared::default(),
            wills: PendingWills::default(),
            authenticating: HashMap::new(),
            reauth: HashMap::new(),
            timers: SessionTimers::default(),
            cluster: None,
            joining: HashMap::new(),
            held: VecDeque::new(),
            forwards_in: 0,
            moved_out: HashMap::new(),
            moved_in: Vec::new(),
            received: 0,
            sent: 0,
            store: None,
            seq: 0,
            stamp: 0,
            wall: None,
        }
    }
}

impl<K: Copy + Hash + Eq> BrokerState<K> {
    /// An empty broker.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty broker that authenticates, authorizes and redirects as `access` says.
    pub fn with_access(access: Access) -> Self {
        BrokerState {
            access,
            ..Self::default()
        }
    }

    /// Records what changes in persistent sessions and retained messages as
    /// [`StoreOp`]s, for [`drain_store_ops`](Self::drain_store_ops) (a broker with a
    /// store; the connections then need [`ConnectionConfig::durable`](super::ConnectionConfig::durable)).
    pub fn enable_store(&mut self) {
        self.store.get_or_insert_with(Vec::new);
    }

    /// Moves the operations recorded since the last call to the end of `out`, in order:
    /// the body applies them in one transaction and commits it before it releases the
    /// connections' held acknowledgements.
    pub fn drain_store_ops(&mut self, out: &mut Vec<StoreOp>) {
        if let Some(ops) = self.store.as_mut() {
            out.append(ops);
        }
    }

    /// The body committed the operations [`drain_store_ops`](Self::drain_store_ops)
    /// gave it: the threads that handed sessions here are told they are stored (on a
    /// cluster; send [`drain_cluster`](Self::drain_cluster) afterwards). Returns
    /// whether any was told.
    pub fn committed(&mut self) -> bool {
        let Some(link) = self.cluster.as_mut() else {
            return false;
        };
        let told = !self.moved_in.is_empty();
        for (to, client, stamp) in self.moved_in.drain(..) {
            link.moved(to, client, stamp);
        }
        told
    }

    /// A session handed over from another thread is installed or dropped here: once
    /// this thread's store has committed, the old thread may forget it.
    fn settle(&mut self, client: &Bytes, handed: &HandedSession) {
        if let Some((thread, stamp)) = handed.release {
            self.moved_in.push((thread, client.clone(), stamp));
        }
    }

    /// Rebuilds the persistent sessions and retained messages a store returned at
    /// start, before any connection: each session without a connection, its
    /// subscriptions in the tree, its messages in flight where their flow stood (with
    /// their packet identifiers: resent with DUP 1, or `PUBREL`, when the client
    /// resumes [MQTT-4.4.0-1]) and the others queued in order, its unreleased QoS 2
    /// identifiers kept. `now` is the instant `wall` was, the wall clock: deadlines the
    /// store kept in wall time (a message's expiry, the end of a session that had no
    /// connection) still fall when they did; a session that was connected when the
    /// broker stopped counts its expiry from `now`. Enables the store
    /// ([`enable_store`](Self::enable_store)).
    pub fn restore(
        &mut self,
        sessions: Vec<StoredSession>,
        retained: Vec<Publish>,
        max_queued: usize,
        now: Instant,
        wall: SystemTime,
    ) {
        self.enable_store();
        self.wall = Some((now, wall));
        for publish in retained {
            self.retained.apply(&publish, now);
        }
        for stored in sessions {
            // Records written from now on are stamped later than any restored.
            self.stamp = self.stamp.max(stored.record.stamp);
            if let Some(link) = self.cluster.as_mut() {
                link.observe(stored.record.stamp);
            }
            let client = stored.client;
            let mut outbox = Box::new(Outbox::new(max_queued));
            for m in stored.messages {
                self.seq = self.seq.max(m.seq);
                let mut message = Message::received(m.publish, now);
                message.seq = m.seq;
                if let Some(at) = m.expires_at {
                    message.expires = Some(self.instant_of(at, now));
                }
                match m.flight {
                    Some(flight) => outbox.restore_in_flight(message, flight),
                    None => outbox.restore(message),
                }
            }
            outbox.keep_received(stored.received.into_iter().collect());
            let mut subscriptions = BTreeMap::new();
            for (filter, record) in stored.subscriptions {
                self.add_subscription(&client, &filter, record.options, record.id);
                subscriptions.insert(filter, (record.options, record.id));
            }
            let expiry_interval = stored.record.expiry_interval;
            let expires_at = match stored.record.expires_at {
                Some(at) => Some(self.instant_of(at, now)),
                None => SessionTimers::deadline(now, expiry_interval),
            };
            if let Some(at) = expires_at {
                self.timers.schedule(at, client.clone());
            }
            let mut session = ClientSession::new(None, stored.record.version, expiry_interval, true, true);
            for (filter, entry) in subscriptions {
                session.subscribe(filter, entry);
            }
            session.set_expires_at(expires_at);
            session.set_outbox(Some(outbox));
            self.sessions.insert(&client, session);
        }
    }

    /// The instant wall time `at` is (at the earliest `now`: a deadline passed while
    /// the broker was down is due at once).
    fn instant_of(&self, at: SystemTime, now: Instant) -> Instant {
        let Some((anchor, wall)) = self.wall else { return now };
        match at.duration_since(wall) {
            Ok(ahead) => anchor
                .checked_add(ahead)
                .unwrap_or(anchor + Duration::from_secs(u64::from(u32::MAX))),
            Err(_) => now,
        }
        .max(now)
    }

    /// Records the flow steps of a stored session's messages.
    fn record_steps(&mut self, client: &Bytes, steps: Vec<FlowStep>) {
        if steps.is_empty() || !self.is_stored(client) {
            return;
        }
        if let Some(ops) = self.store.as_mut() {
            ops.extend(steps.into_iter().map(|step| step_op(client, step)));
        }
    }

    /// Records `op` if the broker has a store.
    fn record(&mut self, op: impl FnOnce() -> StoreOp) {
        if let Some(ops) = self.store.as_mut() {
            ops.push(op());
        }
    }

    /// Puts a subscription in the tree, or in its shared group.
    fn add_subscription(&mut self, client: &Bytes, filter: &Bytes, options: SubscriptionOptions, id: u32) {
        if shared::split(filter).is_some() {
            self.shared.subscribe(filter, client, options, id);
        } else {
            tree_insert(
                &mut self.tree,
                &mut self.cluster,
                filter,
                Subscriber {
                    client: client.clone(),
                    options,
                    id,
                },
            );
        }
    }

    /// Wills waiting out their delay.
    pub fn pending_will_count(&self) -> usize {
        self.wills.waiting()
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

    /// Connections with a session (connected clients).
    pub fn connected_count(&self) -> usize {
        self.connected
    }

    /// Application messages received from this thread's clients (`PUBLISH`es).
    pub fn messages_received(&self) -> u64 {
        self.received
    }

    /// Application messages handed to this thread's clients (deliveries).
    pub fn messages_sent(&self) -> u64 {
        self.sent
    }

    /// Publishes other threads of a cluster forwarded to this one.
    pub fn forwards_received(&self) -> u64 {
        self.forwards_in
    }

    /// Publishes this thread forwarded to other threads of a cluster (once per thread
    /// each went to).
    pub fn forwards_sent(&self) -> u64 {
        self.cluster.as_ref().map_or(0, Link::forwarded)
    }

    /// Makes this state one thread of a cluster: publishes, shared group members and
    /// client identifiers are told to the other threads through `link`'s outbox
    /// ([`drain_cluster`](Self::drain_cluster)), and their messages come in through
    /// [`handle_cluster`](Self::handle_cluster). Call it before any connection.
    pub fn set_cluster(&mut self, mut link: Link) {
        self.shared.track_changes();
        // Sessions restored before: later records are stamped past theirs.
        link.observe(self.stamp);
        self.cluster = Some(link);
    }

    /// Moves the messages for the other threads into `out`: `(thread, message)`.
    pub fn drain_cluster(&mut self, out: &mut Vec<(usize, ClusterMessage)>) {
        self.sync_groups();
        if let Some(link) = &mut self.cluster {
            link.drain_outbox(out);
        }
    }

    /// Tells the other threads the shared groups whose local member count changed.
    fn sync_groups(&mut self) {
        if let Some(link) = &mut self.cluster {
            for (group, members) in self.shared.take_changes() {
                link.local_members(group, members);
            }
        }
    }

    /// Handles a message from another thread of the cluster.
    pub fn handle_cluster(&mut self, message: ClusterMessage, now: Instant, conns: &mut impl Connections<K>) {
        match message {
            ClusterMessage::Publish(forward) => {
                self.forwards_in += 1;
                let super::cluster::Forward {
                    publisher,
                    publish,
                    groups,
                } = *forward;
                self.deliver_local(&publisher, publish, Some(&groups), now, conns);
            }
            ClusterMessage::Group {
                from,
                group,
                members,
                seq,
            } => {
                if let Some(link) = &mut self.cluster {
                    link.remote_members(from, &group, members, seq);
                }
            }
            ClusterMessage::Filter {
                from,
                filter,
                present,
                seq,
            } => {
                if let Some(link) = &mut self.cluster {
                    link.remote_filter(from, &filter, present, seq);
                }
            }
            ClusterMessage::Moved { client, stamp } => {
                // Still gone from here (a session of it opened here since has
                // cleared the old records already).
                if self.moved_out.get(&client) == Some(&stamp) {
                    self.moved_out.remove(&client);
                    self.record(|| StoreOp::SessionDropped { client });
                }
            }
            ClusterMessage::FilterAck { from, seq } => {
                if let Some(link) = &mut self.cluster {
                    link.filter_acked(from, seq);
                }
                self.release_held(now, conns);
            }
            ClusterMessage::Takeover {
                from,
                client,
                clean_start,
                stamp,
            } => self.takeover_from(from, client, clean_start, stamp, now, conns),
            ClusterMessage::Handoff {
                from: _,
                client,
                stamp,
                session,
                clock,
            } => {
                // Before anything of the client is written here: its stamp is later.
                if let Some(link) = &mut self.cluster {
                    link.observe(clock);
                }
                self.answered(client, stamp, session, now, conns);
            }
        }
    }

    /// Thread `from`'s takeover of `client`: a `CONNECT` of it waiting here is
    /// compared with it (the later wins), else the session here goes there.
    fn takeover_from(
        &mut self,
        from: usize,
        client: Bytes,
        clean_start: bool,
        stamp: u64,
        now: Instant,
        conns: &mut impl Connections<K>,
    ) {
        let Some(link) = self.cluster.as_mut() else { return };
        link.observe(stamp);
        let me = link.me();
        if let Some(j) = self.joining.get_mut(&client) {
            if (j.stamp, me) > (stamp, from) {
                // The one here is later: it keeps whatever session there is.
                link.handoff(from, client, stamp, None);
            } else {
                // The one there is later: this one is refused, and what it gathers
                // goes there once its answers are in.
                if let Some(c) = j.key.take().and_then(|key| conns.connection(key)) {
                    c.refuse(ReasonCode::ServerBusy);
                }
                j.beaten_by.push((from, stamp, clean_start));
            }
            return;
        }
        self.taken_over_remotely(from, client, clean_start, stamp, now, conns);
    }

    /// An answer to this thread's takeover `stamp` of `client`.
    fn answered(
        &mut self,
        client: Bytes,
        stamp: u64,
        session: Option<Box<HandedSession>>,
        now: Instant,
        conns: &mut impl Connections<K>,
    ) {
        match self.joining.get_mut(&client) {
            Some(j) if j.stamp == stamp => {
                j.waiting = j.waiting.saturating_sub(1);
                let extra = match (&j.handed, session) {
                    (None, session) => {
                        j.handed = session;
                        None
                    }
                    (Some(_), extra) => extra,
                };
                let done = j.waiting == 0;
                if let Some(extra) = extra {
                    self.settle(&client, &extra);
                }
                if done {
                    self.joined(client, now, conns);
                }
            }
            // No CONNECT waits for it any more: a session is kept, not lost.
            _ => {
                if let Some(session) = session {
                    if self.sessions.contains_key(&client) {
                        self.settle(&client, &session);
                    } else {
                        self.install_handed(&client, *session, now);
                    }
                }
            }
        }
    }

    /// Every thread answered `client`'s takeover: the `CONNECT` goes on with the
    /// session handed over, or, beaten by a later one elsewhere, hands it there.
    fn joined(&mut self, client: Bytes, now: Instant, conns: &mut impl Connections<K>) {
        let Some(j) = self.joining.remove(&client) else { return };
        let winner = j.beaten_by.iter().copied().max_by_key(|&(t, s, _)| (s, t));
        if let Some((to, stamp, clean_start)) = winner {
            if let Some(link) = self.cluster.as_mut() {
                for &(t, s, _) in j.beaten_by.iter().filter(|&&(t, s, _)| (t, s) != (to, stamp)) {
                    link.handoff(t, client.clone(), s, None);
                }
            }
            match j.handed {
                Some(handed) if !self.sessions.contains_key(&client) => {
                    // Passed on whole, its release with it.
                    if clean_start {
                        self.settle(&client, &handed);
                    }
                    let handed = (!clean_start).then_some(handed);
                    if let Some(link) = self.cluster.as_mut() {
                        link.handoff(to, client, stamp, handed);
                    }
                }
                handed => {
                    if let Some(handed) = handed {
                        self.settle(&client, &handed);
                    }
                    self.taken_over_remotely(to, client, clean_start, stamp, now, conns);
                }
            }
            return;
        }
        let mut installed = false;
        if let Some(handed) = j.handed {
            if !j.connect.clean_start && !self.sessions.contains_key(&client) {
                self.install_handed(&client, *handed, now);
                installed = true;
            } else {
                self.settle(&client, &handed);
            }
        }
        let Some(key) = j.key else { return };
        // The subscriptions that came with the session were announced: the CONNACK
        // waits until every other thread routes by them.
        if let Some(link) = self.cluster.as_ref().filter(|_| installed) {
            let needs = link.announced();
            if !link.settled(needs) {
                self.held.push_back(Held::Connect {
                    key,
                    needs,
                    client,
                    connect: j.connect,
                    properties: j.properties,
                });
                return;
            }
        }
        self.open_joined(key, client, *j.connect, j.properties, now, conns);
    }

    /// Opens the session of a `CONNECT` the other threads answered.
    fn open_joined(
        &mut self,
        key: K,
        client: Bytes,
        connect: Connect,
        properties: Properties,
        now: Instant,
        conns: &mut impl Connections<K>,
    ) {
        self.open_session(key, client, connect, properties, now, conns);
        // Accepting decoded what the client sent after its CONNECT (a SUBSCRIBE
        // pipelined behind it, say). No driver reports that connection ready: the
        // answers came through the mailbox, so its events are taken here.
        while let Some(event) = conns.connection(key).and_then(Session::poll_event) {
            self.handle_event(key, event, now, conns);
        }
    }

    /// Installs a session handed over by another thread, without a connection (the
    /// `CONNECT` that asked for it resumes it next, or it waits out its expiry): its
    /// subscriptions (no `SUBACK`, no retained messages: the client subscribed
    /// before), its messages in flight with their identifiers and queued, its received
    /// QoS 2 identifiers; all recorded when this thread has a store.
    fn install_handed(&mut self, client: &Bytes, handed: HandedSession, now: Instant) {
        self.settle(client, &handed);
        let stored = self.store.is_some();
        let expires_at = SessionTimers::deadline(now, handed.expiry_interval);
        let mut session = ClientSession::new(None, handed.version, handed.expiry_interval, true, stored);
        session.set_expires_at(expires_at);
        self.sessions.insert(client, session);
        self.record_session(client, false);
        self.adopt_subscriptions(client, handed.subscriptions);
        let mut outbox = handed.outbox;
        let seq = &mut self.seq;
        let records = outbox.renumber(|| {
            if stored {
                *seq += 1;
                *seq
            } else {
                0
            }
        });
        let wall = self.wall;
        // The client's unreleased QoS 2 identifiers are stored here now too.
        let received = outbox.take_received();
        if let Some(ops) = self.store.as_mut() {
            ops.extend(received.iter().map(|&packet_id| StoreOp::Received {
                client: client.clone(),
                packet_id,
            }));
            for (seq, publish, flight, expires) in records {
                let expires_at = match (expires, wall) {
                    (Some(at), Some((anchor, wall))) => {
                        Some(wall + at.checked_duration_since(anchor).unwrap_or(Duration::ZERO))
                    }
                    _ => None,
                };
                ops.push(StoreOp::Queued {
                    client: client.clone(),
                    seq,
                    publish,
                    expires_at,
                });
                if let Some(flight) = flight {
                    ops.push(StoreOp::InFlight {
                        client: client.clone(),
                        seq,
                        flight,
                    });
                }
            }
        }
        outbox.keep_received(received);
        if let Some(session) = self.sessions.get_mut(client) {
            session.set_outbox(Some(outbox));
        }
        if let Some(at) = expires_at {
            self.timers.schedule(at, client.clone());
        }
    }

    /// `client` connected on thread `from`: the session here ends as in a takeover on
    /// one thread (0x8E, the will), and moves whole to `from` unless the client
    /// started clean; `from` hears back in any case (its takeover `stamp` answered).
    fn taken_over_remotely(
        &mut self,
        from: usize,
        client: Bytes,
        clean_start: bool,
        stamp: u64,
        now: Instant,
        conns: &mut impl Connections<K>,
    ) {
        self.drop_held_connect(&client, conns);
        if let Some(will) = self.wills.take(&client) {
            if clean_start {
                self.publish_will(&client, will, now, conns);
            }
        }
        let Some(session) = self.sessions.get_mut(&client) else {
            if let Some(link) = &mut self.cluster {
                link.handoff(from, client, stamp, None);
            }
            return;
        };
        let version = session.version;
        let expiry_interval = session.expiry_interval;
        let was_stored = session.stored;
        let old = session.conn.take();
        let will = session.take_will();
        // What the session still owes its client: in its connection, or kept while it
        // was offline.
        let mut outbox = session.take_outbox();
        if let Some(old) = old {
            self.connected = self.connected.saturating_sub(1);
            if let Some(c) = conns.connection(old) {
                c.disconnect(ReasonCode::SessionTakenOver);
                outbox = Some(c.take_outbox());
            }
            let delayed = will
                .as_ref()
                .is_some_and(|w| w.properties.will_delay_interval.unwrap_or(0) > 0);
            if let Some(will) = will.filter(|_| !delayed || clean_start) {
                self.publish_will(&client, *will, now, conns);
            }
        }
        // A stored session handed over stays in this thread's store until the new
        // thread has committed it to its own (`Moved`).
        let me = self.cluster.as_ref().map_or(0, Link::me);
        let release = (was_stored && !clean_start).then_some((me, stamp));
        let handed = (!clean_start).then(|| {
            let mut outbox = outbox.unwrap_or_else(|| Box::new(Outbox::new(0)));
            // This thread's store forgets the session later; the new one records it.
            outbox.take_steps();
            Box::new(HandedSession {
                version,
                expiry_interval,
                subscriptions: self.take_subscriptions(&client),
                outbox,
                release,
            })
        });
        if let Some(link) = &mut self.cluster {
            link.handoff(from, client.clone(), stamp, handed);
        }
        if release.is_some() {
            self.moved_out.insert(client.clone(), stamp);
        }
        self.drop_session_recorded(&client, release.is_none());
        self.sync_groups();
    }

    /// Removes `client`'s subscriptions from the topic tree and the shared groups and
    /// returns them (filter, options, Subscription Identifier), for another thread.
    fn take_subscriptions(&mut self, client: &Bytes) -> Vec<(Bytes, SubscriptionOptions, u32)> {
        let Some(session) = self.sessions.get_mut(client) else {
            return Vec::new();
        };
        let mut out = Vec::with_capacity(session.subscription_count());
        for (filter, (options, _)) in session.take_subscriptions() {
            let id = if shared::split(&filter).is_some() {
                let id = self.shared.member_id(&filter, client).unwrap_or(0);
                self.shared.unsubscribe(&filter, client);
                id
            } else {
                tree_remove(&mut self.tree, &mut self.cluster, &filter, |s| s.client == *client).map_or(0, |s| s.id)
            };
            out.push((filter, options, id));
        }
        out
    }

    /// The subscriptions part of [`install_handed`](Self::install_handed).
    fn adopt_subscriptions(&mut self, client: &Bytes, subscriptions: Vec<(Bytes, SubscriptionOptions, u32)>) {
        let Some(session) = self.sessions.get_mut(client) else {
            return;
        };
        for (filter, options, id) in subscriptions {
            if session.is_subscribed(&filter) {
                continue; // subscribed again since: the newer one stands
            }
            session.subscribe(filter.clone(), (options, id));
            if session.stored {
                let (client, filter) = (client.clone(), filter.clone());
                if let Some(ops) = self.store.as_mut() {
                    ops.push(StoreOp::Subscribed {
                        client,
                        filter,
                        record: SubscriptionRecord { options, id },
                    });
                }
            }
            if shared::split(&filter).is_some() {
                self.shared.subscribe(&filter, client, options, id);
            } else {
                tree_insert(
                    &mut self.tree,
                    &mut self.cluster,
                    &filter,
                    Subscriber {
                        client: client.clone(),
                        options,
                        id,
                    },
                );
            }
        }
        self.sync_groups();
    }

    /// Publishes a message of the broker's own (`$SYS/...`) from this thread, to every
    /// thread's subscribers.
    pub fn publish_system(&mut self, publish: Publish, now: Instant, conns: &mut impl Connections<K>) {
        self.publish(&Bytes::new(), publish, now, conns);
    }

    /// The server is shutting down, step 1: every will is published (the connected
    /// clients' and those waiting out their delay), as their sessions are about to end
    /// without the client's `DISCONNECT`. The connections stay open, so that
    /// subscribers (on this thread or, through the cluster, on others) receive them
    /// before step 2, [`disconnect_all`](Self::disconnect_all).
    pub fn shutdown_wills(&mut self, now: Instant, conns: &mut impl Connections<K>) {
        let connected: Vec<ClientId> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.conn.is_some())
            .map(|(client, _)| client.clone())
            .collect();
        for client in connected {
            if let Some(will) = self.sessions.get_mut(&client).and_then(|s| s.take_will()) {
                self.publish_will(&client, *will, now, conns);
            }
        }
        for (client, will) in self.wills.take_all() {
            self.publish_will(&client, will, now, conns);
        }
    }

    /// The server is shutting down, step 2: every connection gets `DISCONNECT` 0x8B
    /// "Server shutting down" (5.0; a 3.1.1 client's is just closed).
    pub fn disconnect_all(&mut self, conns: &mut impl Connections<K>) {
        let keys: Vec<K> = self.sessions.iter().filter_map(|(_, s)| s.conn).collect();
        for key in keys {
            if let Some(c) = conns.connection(key) {
                c.disconnect(ReasonCode::ServerShuttingDown);
            }
        }
    }

    /// The client identifier of connection `key`, once connected.
    pub fn client_id(&self, key: K, conns: &mut impl Connections<K>) -> Option<&[u8]> {
        self.client_of(key, conns).map(|c| &c[..])
    }

    /// The client identifier of connection `key`: its session's (the connection
    /// carries the session's slot), while the session names the connection as its own.
    fn client_of(&self, key: K, conns: &mut impl Connections<K>) -> Option<&ClientId> {
        let slot = conns.connection(key)?.session_slot()?;
        let (client, session) = self.sessions.at(slot)?;
        (session.conn == Some(key)).then_some(client)
    }

    /// Handles one event of connection `key` (drain each connection's events in
    /// order); answers and deliveries go to the connections through `conns`.
    pub fn handle_event(&mut self, key: K, event: Event, now: Instant, conns: &mut impl Connections<K>) {
        match event {
            Event::Connect(connect) => self.connect(key, *connect, now, conns),
            Event::Auth(auth) => self.auth_step(key, auth, now, conns),
            Event::Publish(publish) => {
                let Some(client) = self.client_of(key, conns).cloned() else {
                    return;
                };
                self.received += 1;
                if publish.qos == QoS::ExactlyOnce && self.is_stored(&client) {
                    let packet_id = publish.packet_id;
                    let c = Bytes::copy_from_slice(&client);
                    self.record(|| StoreOp::Received { client: c, packet_id });
                }
                self.publish(&client, publish, now, conns);
            }
            Event::Flow(step) => {
                if let Some(client) = self.stored_client_of(key, conns) {
                    self.record(|| step_op(&client, step));
                }
            }
            Event::Released(packet_id) => {
                if let Some(client) = self.stored_client_of(key, conns) {
                    self.record(|| StoreOp::Released { client, packet_id });
                }
            }
            Event::Subscribe(subscribe) => self.subscribe(key, subscribe, now, conns),
            Event::Unsubscribe(unsubscribe) => self.unsubscribe(key, unsubscribe, conns),
            Event::Closed { publish_will } => {
                self.authenticating.remove(&key);
                // A CONNECT waiting for the other threads goes on without its client.
                for j in self.joining.values_mut().filter(|j| j.key == Some(key)) {
                    j.key = None;
                }
                self.held.retain(|h| h.key() != key);
                self.reauth.remove(&key);
                self.closed(key, publish_will, now, conns);
            }
        }
    }

    /// The client identifier of connection `key` as a `Bytes` of its own, if its
    /// session is stored (for the store's operations).
    fn stored_client_of(&self, key: K, conns: &mut impl Connections<K>) -> Option<Bytes> {
        let client = self.client_of(key, conns)?;
        self.is_stored(client).then(|| Bytes::copy_from_slice(client))
    }

    fn is_stored(&self, client: &[u8]) -> bool {
        self.sessions.get(client).is_some_and(|s| s.stored)
    }

    /// Records the flow steps of stored messages left in `outbox` (a session's, as it
    /// leaves its connection).
    fn record_ended(&mut self, client: &Bytes, outbox: &mut Outbox) {
        if outbox.has_steps() {
            let steps = outbox.take_steps();
            self.record_steps(client, steps);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due: the earlier of the
    /// next delayed will and the next end of a session without a connection.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match (self.wills.next_due(), self.timers.next()) {
            (Some(will), Some(session)) => Some(will.min(session)),
            (will, session) => will.or(session),
        }
    }

    /// Publishes the wills whose delay has passed by `now`; ends the sessions whose
    /// expiry interval ran out by then, with their subscriptions and queued messages
    /// [MQTT-3.1.2-23], publishing a will still waiting (it goes at the latest when the
    /// session ends [MQTT-3.1.2-8]); forgets the retained messages expired by then
    /// (expired ones are never sent in any case).
    pub fn handle_timeout(&mut self, now: Instant, conns: &mut impl Connections<K>) {
        for (client, will) in self.wills.take_due(now) {
            self.publish_will(&client, will, now, conns);
        }
        self.retained.purge_expired(now);
        while let Some((at, client)) = self.timers.pop_due(now) {
            let due = self
                .sessions
                .get(&client)
                .is_some_and(|s| s.conn.is_none() && s.expires_at() == Some(at));
            if due {
                if let Some(will) = self.wills.take(&client) {
                    self.publish_will(&client, will, now, conns);
                }
                self.drop_session(&client);
            }
        }
    }

    /// The gate before a session: redirection, enhanced or username/password
    /// authentication, the will's ACL check.
    fn connect(&mut self, key: K, connect: Connect, now: Instant, conns: &mut impl Connections<K>) {
        let v5 = connect.protocol.is_v5();
        if let Some(redirect) = &self.access.redirect {
            let mut ack = ConnAck {
                session_present: false,
                code: ReasonCode::ServerUnavailable,
                properties: Properties::default(),
            };
            if v5 {
                ack.code = redirect.code();
                ack.properties.server_reference = Some(redirect.server_reference.clone());
            }
            if let Some(c) = conns.connection(key) {
                c.refuse_with(ack);
            }
            return;
        }
        if v5 {
            if let Some(method) = connect.properties.authentication_method.clone() {
                let exchange = self
                    .access
                    .enhanced
                    .as_ref()
                    .and_then(|e| e.start(&method, &connect.client_id));
                let Some(exchange) = exchange else {
                    // [MQTT-4.12.0-1]
                    if let Some(c) = conns.connection(key) {
                        c.refuse(ReasonCode::BadAuthenticationMethod);
                    }
                    return;
                };
                let data = connect.properties.authentication_data.clone();
                self.authenticating.insert(key, PendingAuth { connect, exchange });
                self.auth_advance(key, data.as_deref(), now, conns);
                return;
            }
        }
        if let Some(users) = &self.access.users {
            if let Err(code) = users.check(connect.username.as_deref(), connect.password.as_deref()) {
                if let Some(c) = conns.connection(key) {
                    c.refuse(code);
                }
                return;
            }
        }
        self.admit(key, connect, None, now, conns);
    }

    /// The client's `AUTH` during `CONNECT`.
    fn auth_step(&mut self, key: K, auth: Reason, now: Instant, conns: &mut impl Connections<K>) {
        let Some(pending) = self.authenticating.get(&key) else {
            self.reauth_step(key, auth, conns);
            return;
        };
        // Every AUTH carries the CONNECT's method [MQTT-4.12.0-5].
        if auth.properties.authentication_method != pending.connect.properties.authentication_method {
            self.authenticating.remove(&key);
            if let Some(c) = conns.connection(key) {
                c.refuse(ReasonCode::ProtocolError);
            }
            return;
        }
        self.auth_advance(key, auth.properties.authentication_data.as_deref(), now, conns);
    }

    /// The client's `AUTH` once connected: 0x19 starts a re-authentication with the
    /// `CONNECT`'s method [MQTT-4.12.1-1], 0x18 continues it; success answers `AUTH`
    /// 0x00, failure `DISCONNECT` (4.12.1).
    fn reauth_step(&mut self, key: K, auth: Reason, conns: &mut impl Connections<K>) {
        let client = self.client_of(key, conns).map(|c| c.to_vec()).unwrap_or_default();
        let outcome = match self.reauth.get_mut(&key) {
            Some(r) if auth.properties.authentication_method.as_ref() == Some(&r.method) => {
                if auth.code == ReasonCode::ReAuthenticate {
                    r.exchange = self.access.enhanced.as_ref().and_then(|e| e.start(&r.method, &client));
                }
                match r.exchange.as_mut() {
                    Some(exchange) => exchange.step(auth.properties.authentication_data.as_deref()),
                    None => AuthStep::Fail(ReasonCode::ProtocolError),
                }
            }
            _ => AuthStep::Fail(ReasonCode::ProtocolError),
        };
        let Some(method) = self.reauth.get(&key).map(|r| r.method.clone()) else {
            if let Some(c) = conns.connection(key) {
                c.disconnect(ReasonCode::ProtocolError);
            }
            return;
        };
        let reply = |code, data| {
            Packet::Auth(Reason {
                code,
                properties: Properties {
                    authentication_method: Some(method.clone()),
                    authentication_data: data,
                    ..Properties::default()
                },
            })
        };
        let Some(c) = conns.connection(key) else { return };
        match outcome {
            AuthStep::Continue(data) => {
                c.send(&reply(ReasonCode::ContinueAuthentication, Some(data)));
            }
            AuthStep::Success(data) => {
                c.send(&reply(ReasonCode::Success, data));
                if let Some(r) = self.reauth.get_mut(&key) {
                    r.exchange = None;
                }
            }
            AuthStep::Fail(code) => {
                let code = if code.as_u8() >= 0x80 {
                    code
                } else {
                    ReasonCode::NotAuthorized
                };
                c.disconnect(code);
            }
        }
    }

    /// Runs one step of `key`'s exchange with the client's data.
    fn auth_advance(&mut self, key: K, data: Option<&[u8]>, now: Instant, conns: &mut impl Connections<K>) {
        let Some(pending) = self.authenticating.get_mut(&key) else {
            return;
        };
        let method = pending.connect.properties.authentication_method.clone();
        match pending.exchange.step(data) {
            AuthStep::Continue(data) => {
                // AUTH 0x18 with the method and the server's data [MQTT-4.12.0-2].
                let properties = Properties {
                    authentication_method: method,
                    authentication_data: Some(data),
                    ..Properties::default()
                };
                if let Some(c) = conns.connection(key) {
                    c.challenge(properties, now);
                }
            }
            AuthStep::Success(data) => {
                let Some(pending) = self.authenticating.remove(&key) else {
                    return;
                };
                let properties = Properties {
                    authentication_method: method,
                    authentication_data: data,
                    ..Properties::default()
                };
                self.admit(key, pending.connect, Some(properties), now, conns);
            }
            AuthStep::Fail(code) => {
                self.authenticating.remove(&key);
                // [MQTT-4.12.0-4]: a CONNACK of 0x80 or above, then the close.
                let code = if code.as_u8() >= 0x80 {
                    code
                } else {
                    ReasonCode::NotAuthorized
                };
                if let Some(c) = conns.connection(key) {
                    c.refuse(code);
                }
            }
        }
    }

    /// Opens (or resumes) the session of an authenticated `CONNECT`; `auth` holds the
    /// Authentication Method and Data for the `CONNACK` of an enhanced exchange.
    fn admit(
        &mut self,
        key: K,
        connect: Connect,
        auth: Option<Properties>,
        now: Instant,
        conns: &mut impl Connections<K>,
    ) {
        let v5 = connect.protocol.is_v5();
        if let Some(method) = auth.as_ref().and_then(|a| a.authentication_method.clone()) {
            self.reauth.insert(key, Reauth { method, exchange: None });
        }
        let mut properties = auth.unwrap_or_default();
        if let Some(acl) = &self.access.acl {
            let acl = acl.for_client(connect.username.as_deref(), &connect.client_id);
            // A will to a topic the client may not publish to is refused with the
            // CONNECT, as mosquitto does.
            if connect.will.as_ref().is_some_and(|w| !acl.may_publish(&w.topic)) {
                if let Some(c) = conns.connection(key) {
                    c.refuse(ReasonCode::NotAuthorized);
                }
                return;
            }
            if let Some(c) = conns.connection(key) {
                c.set_acl(Arc::new(acl));
            }
        }
        let assigned = connect.client_id.is_empty();
        let client = if assigned {
            // 3.1.1 assigns one only to a clean session (3.1.1 [MQTT-3.1.3-8]); 3.1 never.
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
            properties.shared_subscription_available = Some(true);
            properties.subscription_identifier_available = Some(true);
        }
        // Any new connection for the client id within a will's delay cancels it
        // [MQTT-3.1.3-9]; one that starts clean ends the session, and so sends it.
        if let Some(will) = self.wills.take(&client) {
            if connect.clean_start {
                self.publish_will(&client, will, now, conns);
            }
        }
        // On a cluster, the id may hold a session on another thread: it comes here
        // before the CONNACK (an id this thread assigned is new everywhere).
        if self.cluster.as_ref().is_some_and(|l| l.threads() > 1 && !assigned) {
            self.drop_held_connect(&client, conns);
        }
        if let Some(link) = self.cluster.as_mut().filter(|l| l.threads() > 1 && !assigned) {
            let j = match self.joining.remove(&client) {
                // A second CONNECT here while the first waits: the later one takes
                // its place (as in a takeover), answers and all.
                Some(mut j) => {
                    if let Some(c) = j.key.take().and_then(|old| conns.connection(old)) {
                        c.refuse(ReasonCode::ServerBusy);
                    }
                    j.key = Some(key);
                    j.connect = Box::new(connect);
                    j.properties = properties;
                    j
                }
                None => Joining {
                    key: Some(key),
                    stamp: link.takeover(&client, connect.clean_start),
                    connect: Box::new(connect),
                    properties,
                    waiting: link.threads() - 1,
                    handed: None,
                    beaten_by: Vec::new(),
                },
            };
            self.joining.insert(client, j);
            return;
        }
        self.open_session(key, client, connect, properties, now, conns);
    }

    /// The rest of [`admit`](Self::admit), once no other thread holds the client's
    /// session (a session handed over is here by now): takes over a connection here,
    /// opens or resumes the session and answers `CONNACK`.
    fn open_session(
        &mut self,
        key: K,
        client: Bytes,
        connect: Connect,
        properties: Properties,
        now: Instant,
        conns: &mut impl Connections<K>,
    ) {
        let v5 = connect.protocol.is_v5();
        // Session takeover [MQTT-3.1.4-3]: the connection holding the id goes, and its
        // will is published as for any connection that ends without DISCONNECT.
        if let Some(old) = self.sessions.get(&client).and_then(|s| s.conn) {
            if old != key {
                self.connected = self.connected.saturating_sub(1);
                // The session continues on the new connection with what was in flight
                // on the old one.
                let mut outbox = conns.connection(old).map(|c| {
                    c.disconnect(ReasonCode::SessionTakenOver);
                    c.take_outbox()
                });
                if let Some(o) = outbox.as_mut() {
                    self.record_ended(&client, o);
                }
                let will = self.sessions.get_mut(&client).and_then(|s| {
                    s.conn = None;
                    if outbox.is_some() {
                        s.set_outbox(outbox);
                    }
                    s.take_will()
                });
                // A delayed will is cancelled by the new connection when the session
                // goes on [MQTT-3.1.3-9].
                let delayed = will
                    .as_ref()
                    .is_some_and(|w| w.properties.will_delay_interval.unwrap_or(0) > 0);
                if let Some(will) = will.filter(|_| !delayed || connect.clean_start) {
                    self.publish_will(&client, *will, now, conns);
                }
            }
        }
        // A session past its expiry is gone, swept or not yet.
        let expired = self
            .sessions
            .get(&client)
            .is_some_and(|s| s.conn.is_none() && s.expires_at().is_some_and(|at| at <= now));
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
        let will = connect.will.map(|w| {
            let mut will = Will {
                properties: w.properties,
                topic: Bytes::copy_from_slice(&w.topic),
                payload: Bytes::copy_from_slice(&w.payload),
                qos: w.qos,
                retain: w.retain,
            };
            // The delay kept is the lower of the will's and the session's [MQTT-3.1.2-8]
            // (3.1.1 has no delay: its 0 stays 0).
            let delay = effective_delay(&will, expiry_interval);
            will.properties.will_delay_interval = (delay > 0).then_some(delay);
            Box::new(will)
        });
        let mut resumed = None;
        let recording = self.store.is_some();
        let was_stored = self.is_stored(&client);
        let session_present = match self.sessions.get_mut(&client) {
            Some(s) => {
                s.stored = persistent && recording;
                s.conn = Some(key);
                s.version = connect.protocol;
                s.set_will(will);
                s.persistent = persistent;
                s.expiry_interval = expiry_interval;
                s.set_expires_at(None);
                resumed = s.take_outbox();
                true
            }
            None => {
                // Stored as a `ClientId` (inline when short): no allocation of its
                // own, and no view of the larger buffer `client` may be.
                let mut session = ClientSession::new(
                    Some(key),
                    connect.protocol,
                    expiry_interval,
                    persistent,
                    persistent && recording,
                );
                session.set_will(will);
                self.sessions.insert(&client, session);
                false
            }
        };
        self.record_session(&client, was_stored);
        if let Some(slot) = self.sessions.slot_of(&client) {
            self.connected += 1;
            if let Some(c) = conns.connection(key) {
                c.set_session_slot(slot);
            }
        }
        let ack = ConnAck {
            session_present,
            code: ReasonCode::Success,
            properties,
        };
        if let Some(c) = conns.connection(key) {
            c.accept(ack, connect.keep_alive, now);
            if let Some(outbox) = resumed {
                c.resume(outbox, now);
                let steps = c.take_flow_steps();
                self.record_steps(&client, steps);
            }
        }
    }

    /// Records a session's record after it changed (opened, resumed, a new expiry):
    /// written while it is persistent, forgotten when it stopped being so.
    fn record_session(&mut self, client: &Bytes, was_stored: bool) {
        // The records of a session that moved away and is not yet forgotten go first:
        // this one replaces them.
        if self.moved_out.remove(client).is_some() {
            let c = client.clone();
            self.record(|| StoreOp::SessionDropped { client: c });
        }
        let Some(s) = self.sessions.get(client) else { return };
        if s.stored {
            let expires_at = match (s.conn, s.expires_at(), self.wall) {
                (None, Some(at), Some((anchor, wall))) => {
                    Some(wall + at.checked_duration_since(anchor).unwrap_or(Duration::ZERO))
                }
                _ => None,
            };
            let version = s.version;
            let expiry_interval = s.expiry_interval;
            let record = super::persist::SessionRecord {
                version,
                expiry_interval,
                expires_at,
                stamp: self.next_stamp(),
            };
            let Some(s) = self.sessions.get(client) else { return };
            let subscriptions: Vec<_> = if was_stored {
                Vec::new()
            } else {
                // A live session that becomes persistent (a takeover): its subscriptions too.
                s.subscriptions().map(|(f, (o, id))| (f.clone(), *o, *id)).collect()
            };
            let c = client.clone();
            self.record(|| StoreOp::Session { client: c, record });
            for (filter, options, id) in subscriptions {
                let client = client.clone();
                self.record(|| StoreOp::Subscribed {
                    client,
                    filter,
                    record: SubscriptionRecord { options, id },
                });
            }
        } else if was_stored {
            let client = client.clone();
            self.record(|| StoreOp::SessionDropped { client });
        }
    }

    /// The stamp of a session record written now ([`SessionRecord::stamp`]): the
    /// cluster's Lamport clock, advanced (a lone broker's own counter).
    ///
    /// [`SessionRecord::stamp`]: super::persist::SessionRecord::stamp
    fn next_stamp(&mut self) -> u64 {
        match self.cluster.as_mut() {
            Some(link) => link.tick(),
            None => {
                self.stamp += 1;
                self.stamp
            }
        }
    }

    fn assign_client_id(&mut self) -> Bytes {
        loop {
            self.assigned += 1;
            // Unique across a cluster's threads: each names itself in the ids it assigns.
            let id = match &self.cluster {
                Some(link) => Bytes::from(format!("monocoque-{}-{}", link.me(), self.assigned)),
                None => Bytes::from(format!("monocoque-{}", self.assigned)),
            };
            if !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }

    /// Forgets a session and its subscriptions.
    fn drop_session(&mut self, client: &Bytes) {
        self.drop_session_recorded(client, true);
    }

    /// [`drop_session`](Self::drop_session); the store forgets it too if `record`.
    fn drop_session_recorded(&mut self, client: &Bytes, record: bool) {
        if let Some(session) = self.sessions.remove(client) {
            if session.stored && record {
                let client = client.clone();
                self.record(|| StoreOp::SessionDropped { client });
            }
            for (filter, _) in session.subscriptions() {
                if shared::split(filter).is_some() {
                    self.shared.unsubscribe(filter, client);
                } else {
                    tree_remove(&mut self.tree, &mut self.cluster, filter, |s| s.client == *client);
                }
            }
        }
    }

    fn closed(&mut self, key: K, publish_will: bool, now: Instant, conns: &mut impl Connections<K>) {
        // A connection taken over was detached already.
        let client = self.client_of(key, conns).map(|c| Bytes::copy_from_slice(c));
        if client.is_some() {
            self.connected = self.connected.saturating_sub(1);
        }
        let Some(client) = client else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        session.conn = None;
        let will = session.take_will();
        // The DISCONNECT may change the interval: to 0 ends the session now.
        let mut changed = false;
        if let Some(expiry) = conns.connection(key).and_then(|c| c.disconnect_session_expiry()) {
            changed = expiry != session.expiry_interval && expiry > 0;
            session.expiry_interval = expiry;
            session.persistent = expiry > 0;
        }
        let persistent = session.persistent;
        let expiry_interval = session.expiry_interval;
        if persistent {
            // What was in flight and queued stays with the session until it resumes
            // or expires.
            if let Some(c) = conns.connection(key) {
                session.set_outbox(Some(c.take_outbox()));
            }
            let stored = session.stored;
            if let Some(mut outbox) = session.take_outbox() {
                self.record_ended(&client, &mut outbox);
                if let Some(s) = self.sessions.get_mut(&client) {
                    s.set_outbox(Some(outbox));
                }
            }
            let Some(session) = self.sessions.get_mut(&client) else {
                return;
            };
            let expires_at = SessionTimers::deadline(now, session.expiry_interval);
            session.set_expires_at(expires_at);
            // The record says when the session ends, in wall time, so that a restart
            // does not give it its whole interval again.
            if stored && (changed || (expires_at.is_some() && self.wall.is_some())) {
                self.record_session(&client, true);
            }
            let Some(session) = self.sessions.get_mut(&client) else {
                return;
            };
            if let Some(at) = session.expires_at() {
                self.timers.schedule(at, client.clone());
                let sessions = &self.sessions;
                self.timers.compact(sessions.len(), |at, c| {
                    sessions.get(c).is_some_and(|s| s.expires_at() == Some(at))
                });
            }
        }
        if publish_will {
            if let Some(will) = will {
                let mut will = *will;
                // A DISCONNECT may have shortened the session: the will waits no longer
                // than the session now lasts [MQTT-3.1.2-8].
                let delay = effective_delay(&will, expiry_interval);
                will.properties.will_delay_interval = (delay > 0).then_some(delay);
                if delay > 0 {
                    self.wills.schedule(client.clone(), will, now);
                } else {
                    self.publish_will(&client, will, now, conns);
                }
            }
        }
        if !persistent {
            self.drop_session(&client);
        }
    }

    fn publish_will(&mut self, client: &[u8], will: Will, now: Instant, conns: &mut impl Connections<K>) {
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
    fn publish(&mut self, publisher: &[u8], publish: Publish, now: Instant, conns: &mut impl Connections<K>) {
        // On a cluster, the other threads get it too, and each matching shared group is
        // served by one thread.
        let groups = self.cluster.as_mut().map(|link| link.route(publisher, &publish));
        self.deliver_local(publisher, publish, groups.as_deref(), now, conns);
    }

    /// [`publish`](Self::publish) to this thread's subscriptions only; `groups` (on a
    /// cluster) names the shared groups this thread serves.
    fn deliver_local(
        &mut self,
        publisher: &[u8],
        publish: Publish,
        groups: Option<&[Bytes]>,
        now: Instant,
        conns: &mut impl Connections<K>,
    ) {
        if publish.retain {
            self.retained.apply(&publish, now);
            if publish.payload.is_empty() {
                let topic = Bytes::copy_from_slice(&publish.topic);
                self.record(|| StoreOp::RetainedDeleted { topic });
            } else if self.store.is_some() {
                let mut kept = publish.clone();
                kept.dup = false;
                kept.packet_id = 0;
                kept.properties.subscription_identifiers.clear();
                self.record(|| StoreOp::Retained { publish: kept });
            }
        }
        // Per session: the highest QoS of its matching subscriptions [MQTT-3.3.4-2],
        // whether any of them keeps the retain flag as published, and every
        // Subscription Identifier among them [MQTT-3.3.4-3, MQTT-3.3.4-4].
        let mut targets: HashMap<&Bytes, (QoS, bool, Vec<u32>)> = HashMap::new();
        self.tree.for_each_match(&publish.topic, |s| {
            // No Local [MQTT-3.8.3-3].
            if s.options.no_local && s.client[..] == *publisher {
                return;
            }
            let entry = targets.entry(&s.client).or_insert((QoS::AtMostOnce, false, Vec::new()));
            entry.0 = entry.0.max(s.options.qos);
            entry.1 |= s.options.retain_as_published;
            if s.id != 0 {
                entry.2.push(s.id);
            }
        });
        // One member of each matching shared group, each its own copy.
        let mut picked = Vec::new();
        let sessions = &self.sessions;
        self.shared.pick_in(
            &publish.topic,
            |g| groups.is_none_or(|groups| groups.contains(g)),
            |c| sessions.get(c).is_some_and(|s| s.conn.is_some()),
            |m| picked.push((m.client.clone(), m.options, m.id)),
        );
        if targets.is_empty() && picked.is_empty() {
            return;
        }
        let mut message = Message::received(publish, now);
        // QoS 1 and 2 copies may wait; one exact-size copy is shared by all of them.
        if message.publish.qos != QoS::AtMostOnce {
            message = message.detached();
        }
        let shared_targets = picked.iter().map(|(c, o, id)| {
            (
                c,
                (o.qos, o.retain_as_published, if *id == 0 { vec![] } else { vec![*id] }),
            )
        });
        for (client, (qos, retain_as_published, mut ids)) in targets.into_iter().chain(shared_targets) {
            let Some(session) = self.sessions.get_mut(client) else {
                continue;
            };
            let mut out = message.clone();
            out.publish.qos = qos.min(message.publish.qos);
            // Forwarded messages carry RETAIN 0 unless Retain As Published [MQTT-3.3.1-12].
            out.publish.retain = message.publish.retain && retain_as_published;
            out.publish.properties.topic_alias = None;
            ids.sort_unstable();
            out.publish.properties.subscription_identifiers = ids;
            let mut books = Books {
                seq: &mut self.seq,
                sent: &mut self.sent,
                store: &mut self.store,
                wall: self.wall,
            };
            books.deliver(session, client, out, now, conns);
        }
    }

    fn subscribe(&mut self, key: K, subscribe: Subscribe, now: Instant, conns: &mut impl Connections<K>) {
        let Some(client) = self.client_of(key, conns).map(|c| Bytes::copy_from_slice(c)) else {
            return;
        };
        let acl = conns.connection(key).and_then(|c| c.acl().cloned());
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        let v5 = session.version.is_v5();
        let id = subscribe
            .properties
            .subscription_identifiers
            .first()
            .copied()
            .unwrap_or(0);
        let mut codes = Vec::with_capacity(subscribe.subscriptions.len());
        let mut retained_for = Vec::new();
        for sub in &subscribe.subscriptions {
            // A filter breaking 4.7.1 / 4.7.3 / 4.8.2 is refused for itself alone
            // [MQTT-4.7.1-1, MQTT-4.7.1-2, MQTT-4.7.3-1, MQTT-4.8.2-1, MQTT-4.8.2-2].
            if !crate::mqtt::valid_topic_filter(&sub.filter) {
                codes.push(if v5 {
                    ReasonCode::TopicFilterInvalid
                } else {
                    ReasonCode::UnspecifiedError
                });
                continue;
            }
            let shared = shared::split(&sub.filter);
            let inner = shared.map_or(&sub.filter[..], |(_, f)| f);
            if acl.as_ref().is_some_and(|acl| !acl.may_subscribe(inner)) {
                codes.push(if v5 {
                    ReasonCode::NotAuthorized
                } else {
                    ReasonCode::UnspecifiedError
                });
                continue;
            }
            let granted = match sub.options.qos {
                QoS::AtMostOnce => ReasonCode::Success,
                QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
                QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
            };
            let filter = Bytes::copy_from_slice(&sub.filter);
            if session.stored {
                if let Some(ops) = self.store.as_mut() {
                    ops.push(StoreOp::Subscribed {
                        client: client.clone(),
                        filter: filter.clone(),
                        record: SubscriptionRecord {
                            options: sub.options,
                            id,
                        },
                    });
                }
            }
            if shared.is_some() {
                // A shared subscription gets no retained messages (4.8.2).
                self.shared.subscribe(&filter, &client, sub.options, id);
                session.subscribe(filter, (sub.options, id));
                codes.push(granted);
                continue;
            }
            let existed = session.subscribe(filter.clone(), (sub.options, id));
            let subscriber = Subscriber {
                client: client.clone(),
                options: sub.options,
                id,
            };
            if existed {
                // Replaced: the filter's count here does not change.
                self.tree.remove(&filter, |s| s.client == client);
                self.tree.insert(&filter, subscriber);
            } else {
                tree_insert(&mut self.tree, &mut self.cluster, &filter, subscriber);
            }
            codes.push(granted);
            let send = match sub.options.retain_handling {
                RetainHandling::SendAtSubscribe => true,
                RetainHandling::SendIfNew => !existed,
                RetainHandling::DoNotSend => false,
            };
            if send {
                retained_for.push((filter, sub.options.qos));
            }
        }
        let ack = SubAck {
            packet_id: subscribe.packet_id,
            properties: Properties::default(),
            codes,
        };
        // On a cluster, the SUBACK waits until every other thread routes by what this
        // one announced (see [`cluster`](super::cluster)), shared group members
        // included; a connection's SUBACKs keep their order.
        self.sync_groups();
        if let Some(link) = &self.cluster {
            let needs = link.announced();
            if !link.settled(needs) || self.held.iter().any(|h| h.key() == key) {
                self.held.push_back(Held::SubAck {
                    key,
                    needs,
                    ack,
                    retained: retained_for,
                    id,
                });
                return;
            }
        }
        self.send_suback(key, ack, retained_for, id, now, conns);
    }

    /// Sends a `SUBACK` and the retained messages that follow it.
    fn send_suback(
        &mut self,
        key: K,
        ack: SubAck,
        retained_for: Vec<(Bytes, QoS)>,
        id: u32,
        now: Instant,
        conns: &mut impl Connections<K>,
    ) {
        let Some(c) = conns.connection(key) else { return };
        c.send(&Packet::SubAck(ack));
        // Retained messages follow the SUBACK, with RETAIN 1 (3.1.1 [MQTT-3.3.1-8]; 5.0 3.3.1.3).
        for (filter, qos) in retained_for {
            for message in self.retained.matching(&filter, now) {
                let mut out = message.clone();
                out.publish.qos = qos.min(message.publish.qos);
                if id != 0 {
                    out.publish.properties.subscription_identifiers = vec![id];
                }
                c.deliver_message(out, now);
            }
        }
    }

    /// Sends the `SUBACK`s and `CONNACK`s held for the other threads whose
    /// announcements are now all acknowledged, in the order they were held.
    fn release_held(&mut self, now: Instant, conns: &mut impl Connections<K>) {
        loop {
            let settled = match (&self.cluster, self.held.front()) {
                (Some(link), Some(h)) => link.settled(h.needs()),
                _ => false,
            };
            if !settled {
                return;
            }
            match self.held.pop_front() {
                Some(Held::SubAck {
                    key, ack, retained, id, ..
                }) => self.send_suback(key, ack, retained, id, now, conns),
                Some(Held::Connect {
                    key,
                    client,
                    connect,
                    properties,
                    ..
                }) => self.open_joined(key, client, *connect, properties, now, conns),
                None => return,
            }
        }
    }

    /// Refuses (0x89) a `CONNECT` of `client` held for the other threads: another
    /// `CONNECT` of it came since. The session it would resume stays.
    fn drop_held_connect(&mut self, client: &Bytes, conns: &mut impl Connections<K>) {
        let mut refused = Vec::new();
        self.held.retain(|h| match h {
            Held::Connect { key, client: c, .. } if c == client => {
                refused.push(*key);
                false
            }
            _ => true,
        });
        for key in refused {
            if let Some(c) = conns.connection(key) {
                c.refuse(ReasonCode::ServerBusy);
            }
        }
    }

    fn unsubscribe(&mut self, key: K, unsubscribe: Unsubscribe, conns: &mut impl Connections<K>) {
        let Some(client) = self.client_of(key, conns).map(|c| Bytes::copy_from_slice(c)) else {
            return;
        };
        let Some(session) = self.sessions.get_mut(&client) else {
            return;
        };
        let v5 = session.version.is_v5();
        let mut codes = Vec::new();
        for filter in &unsubscribe.filters {
            let existed = session.unsubscribe(filter);
            if existed && session.stored {
                if let Some(ops) = self.store.as_mut() {
                    ops.push(StoreOp::Unsubscribed {
                        client: client.clone(),
                        filter: Bytes::copy_from_slice(filter),
                    });
                }
            }
            if existed {
                if shared::split(filter).is_some() {
                    self.shared.unsubscribe(filter, &client);
                } else {
                    tree_remove(&mut self.tree, &mut self.cluster, filter, |s| s.client == client);
                }
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

/// Where a delivery to a session is counted and recorded: the state's store sequence,
/// its `$SYS` count of messages sent and its queue of store operations (fields of
/// [`BrokerState`] borrowed apart from its sessions and topic tree).
struct Books<'a> {
    seq: &'a mut u64,
    sent: &'a mut u64,
    store: &'a mut Option<Vec<StoreOp>>,
    /// The state's wall-clock anchor, for the deadlines the store keeps.
    wall: Option<(Instant, SystemTime)>,
}

impl Books<'_> {
    /// Sends `out` to `session`'s connection, or queues it while the session is
    /// offline (QoS 1 and 2 only [MQTT-3.1.2-5]); a stored session's QoS 1 and 2 copy
    /// is recorded, to be written before its publisher hears that the message arrived.
    fn deliver<K: Copy>(
        &mut self,
        session: &mut ClientSession<K>,
        client: &Bytes,
        mut out: Message,
        now: Instant,
        conns: &mut impl Connections<K>,
    ) {
        let stored = session.stored && out.publish.qos != QoS::AtMostOnce;
        let copy = stored.then(|| {
            *self.seq += 1;
            out.seq = *self.seq;
            let expires_at = match (out.expires, self.wall) {
                (Some(at), Some((anchor, wall))) => {
                    Some(wall + at.checked_duration_since(anchor).unwrap_or(Duration::ZERO))
                }
                _ => None,
            };
            (*self.seq, out.publish.clone(), expires_at)
        });
        let mut steps = Vec::new();
        let kept = match session.conn {
            Some(conn) => match conns.connection(conn) {
                Some(c) => {
                    let sent = c.deliver_message(out, now);
                    *self.sent += u64::from(sent);
                    if stored {
                        // The identifier it went out with is recorded in this turn's
                        // commit, not at the client's next packet.
                        steps = c.take_flow_steps();
                    }
                    sent
                }
                None => false,
            },
            None if out.publish.qos != QoS::AtMostOnce => {
                session.outbox_mut().is_some_and(|outbox| outbox.enqueue(out))
            }
            None => false,
        };
        let Some(ops) = self.store.as_mut() else { return };
        if let (Some((seq, publish, expires_at)), true) = (copy, kept) {
            ops.push(StoreOp::Queued {
                client: client.clone(),
                seq,
                publish,
                expires_at,
            });
        }
        ops.extend(steps.into_iter().map(|step| step_op(client, step)));
    }
}

/// The store operation of a stored message's flow step.
fn step_op(client: &Bytes, step: FlowStep) -> StoreOp {
    let client = client.clone();
    match step {
        FlowStep::Sent { seq, packet_id } => StoreOp::InFlight {
            client,
            seq,
            flight: Flight {
                packet_id,
                released: false,
            },
        },
        FlowStep::Released { seq, packet_id } => StoreOp::InFlight {
            client,
            seq,
            flight: Flight {
                packet_id,
                released: true,
            },
        },
        FlowStep::Ended { seq } => StoreOp::Delivered { client, seq },
    }
}

/// Puts a plain subscription in the tree; on a cluster, a filter new to this thread is
/// announced to the others.
fn tree_insert(tree: &mut TopicTree<Subscriber>, cluster: &mut Option<Link>, filter: &[u8], subscriber: Subscriber) {
    tree.insert(filter, subscriber);
    if let Some(link) = cluster {
        link.filter_added(filter);
    }
}

/// Takes a plain subscription out of the tree; on a cluster, a filter this thread no
/// longer has is announced to the others.
fn tree_remove(
    tree: &mut TopicTree<Subscriber>,
    cluster: &mut Option<Link>,
    filter: &[u8],
    pick: impl FnMut(&Subscriber) -> bool,
) -> Option<Subscriber> {
    let removed = tree.remove(filter, pick);
    if removed.is_some() {
        if let Some(link) = cluster {
            link.filter_removed(filter);
        }
    }
    removed
}

#[cfg(test)]
mod size_tests {
    use std::mem::size_of;

    use super::{ClientSession, SessionMore};
    use crate::chassis::ConnId;

    /// A session sits in the slab for every client: a field added to it costs a
    /// million sessions its size. Put what a plain clean session does not use in
    /// `SessionMore`.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn a_session_holds_only_its_always_used_fields() {
        assert_eq!(size_of::<ClientSession<ConnId>>(), 32);
        assert_eq!(size_of::<SessionMore>(), 56);
    }
}
