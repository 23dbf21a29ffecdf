//! A broker on several threads, sans-IO: what one thread's [`BrokerState`] tells the
//! others, and the routing table of shared subscriptions it keeps about them.
//!
//! Every thread (one driver, one listener on the same port, its own sessions) holds a
//! [`Link`] in its state. What must be global travels as [`ClusterMessage`]s, which the
//! body carries through the other threads' bounded mailboxes:
//!
//! - **Publishes** go to the threads with a matching subscription only: each thread
//!   announces its plain filters ([`ClusterMessage::Filter`], at a filter's first
//!   subscription and after its last) and routes by the others' (`routes.rs`). Each
//!   thread it goes to delivers a [`Forward`] to its own subscriptions, so a message
//!   reaches every subscription once. A retained message goes to every thread (each
//!   applies it to its replica), so a subscriber on any thread sees it.
//! - **A new subscription misses nothing published after its `SUBACK`.** A thread that
//!   has not yet applied thread B's announcement of a filter would not forward to B.
//!   So each thread acknowledges the announcements it applied
//!   ([`ClusterMessage::FilterAck`]), and B holds a `SUBACK` until every other thread
//!   acknowledged every announcement B made before it. A message published anywhere
//!   after the `SUBACK` was sent is routed by a table that has B's filter. Before the
//!   `SUBACK`, B may deliver matching messages it is forwarded: the server may send
//!   matching `PUBLISH`es before the `SUBACK` (5.0, 3.8.4). The same hold applies to
//!   the `CONNACK` of a session handed over from another thread (below): its
//!   subscriptions are announced by the new thread, and the `CONNACK` waits for the
//!   acknowledgements, so a message published after it reaches the session.
//!   Shared group member counts ([`ClusterMessage::Group`]) are numbered in the same
//!   sequence and acknowledged alike, so a shared subscription's `SUBACK` waits too.
//!   (Unsubscribing needs no wait: the thread's own tree stops the delivery at once.)
//! - **Shared subscriptions**: each thread announces its member count of every group
//!   ([`ClusterMessage::Group`]); the publishing thread picks one thread per matching
//!   group, round robin among those with members, and names the group in that thread's
//!   [`Forward`] only, so a group gets one copy across all threads.
//! - **Client identifiers**: a `CONNECT` broadcasts a [`ClusterMessage::Takeover`] and
//!   waits, before its `CONNACK`, for every other thread's [`ClusterMessage::Handoff`]
//!   in answer. A thread holding a session of that client ends its connection (0x8E,
//!   will published) and hands over the whole session ([`HandedSession`]: its
//!   subscriptions, its messages in flight with their packet identifiers and states,
//!   its queue, the QoS 2 identifiers it received and not yet released) unless the
//!   client started clean; the others answer with nothing. So the `CONNACK` says
//!   Session Present 1 and the flows resume with their identifiers [MQTT-4.4.0-1],
//!   whichever thread the client lands on.
//! - **Two `CONNECT`s of one client at once** on two threads: each `Takeover` carries
//!   a Lamport stamp (`Link::takeover`), and the later in the order (stamp, thread)
//!   wins on every thread. The loser is refused (0x89 Server busy, the client may try
//!   again) and, once its own answers are in, hands what it gathered to the winner, so
//!   the session is neither lost nor split.
//!
//! - **A stored session moving threads** is committed to the new thread's store
//!   before the old thread's store forgets it: the old thread keeps its records until
//!   the new one, after its commit, answers [`ClusterMessage::Moved`]
//!   ([`HandedSession::release`]; a handed session dropped rather than installed is
//!   answered too). A crash between the two commits leaves the session in both
//!   stores, never in neither. Every session record carries a stamp of the Lamport
//!   clock below ([`SessionRecord::stamp`](super::SessionRecord::stamp)), ticked at
//!   each write; a [`Handoff`](ClusterMessage::Handoff) carries its sender's clock, so
//!   the new thread's copy is stamped later than anything the old thread wrote of
//!   that client, and the clock restarts past the largest stamp its store holds. At
//!   start, before any thread takes clients, the broker finds the clients stored
//!   more than once and deletes every copy but the newest
//!   ([`stale_copies`](super::stale_copies)).
//!
//! Messages from one thread arrive in the order they were sent (the mailbox's rule),
//! so a publisher's messages keep their order on every thread.
//!
//! [`BrokerState`]: super::BrokerState

use std::collections::HashMap;

use bytes::Bytes;

use crate::mqtt::{ProtocolVersion, Publish, SubscriptionOptions, TopicTree};

use super::outbox::Outbox;
use super::routes::Routes;
use super::shared;

/// What one thread of a cluster tells another.
#[derive(Debug, Clone)]
pub enum ClusterMessage {
    /// Thread `from` now has (`present`) or no longer has a subscription to the plain
    /// filter `filter`: its announcement number `seq`, to acknowledge with a
    /// [`FilterAck`](Self::FilterAck).
    Filter {
        /// The thread that announces.
        from: usize,
        /// The filter.
        filter: Bytes,
        /// Whether it is subscribed there now.
        present: bool,
        /// The announcement's number (per announcing thread, from 1).
        seq: u64,
    },
    /// The session of `client` the receiver handed over in answer to takeover `stamp`
    /// is committed to another thread's store (or was dropped): the receiver's store
    /// may forget it.
    Moved {
        /// The client identifier.
        client: Bytes,
        /// The stamp of the takeover the receiver answered.
        stamp: u64,
    },
    /// Thread `from` applied the receiver's announcements up to `seq`.
    FilterAck {
        /// The thread that acknowledges.
        from: usize,
        /// The latest announcement it applied.
        seq: u64,
    },
    /// A message published on another thread (boxed: a `Publish` is large, and a
    /// mailbox's ring holds its messages inline).
    Publish(Box<Forward>),
    /// Thread `from` now has `members` members in the shared group `group`
    /// (`$share/g/f`).
    Group {
        /// The thread that counts them.
        from: usize,
        /// The group's full filter.
        group: Bytes,
        /// Its members on that thread (0: none left).
        members: usize,
        /// The announcement's number, in the sequence of [`Filter`](Self::Filter)'s,
        /// acknowledged the same way: a `SUBACK` of a shared subscription waits too.
        seq: u64,
    },
    /// Client `client` connected on thread `from`: a session of it elsewhere ends, and
    /// every other thread answers with a [`Handoff`](Self::Handoff).
    Takeover {
        /// The thread it connected on.
        from: usize,
        /// The client identifier.
        client: Bytes,
        /// Whether it started clean (then its old session is not handed over).
        clean_start: bool,
        /// Its Lamport stamp: of two concurrent `CONNECT`s, the later in the order
        /// (stamp, thread) wins.
        stamp: u64,
    },
    /// The answer to a [`Takeover`](Self::Takeover): the session this thread held for
    /// the client, if any (and the client did not start clean).
    Handoff {
        /// The thread that answers.
        from: usize,
        /// The client identifier.
        client: Bytes,
        /// The stamp of the `Takeover` it answers.
        stamp: u64,
        /// The session, whole.
        session: Option<Box<HandedSession>>,
        /// The answering thread's Lamport clock: the receiver's clock moves past it,
        /// so what the receiver then writes of the client is stamped later than
        /// anything the answering thread wrote of it.
        clock: u64,
    },
}

/// A persistent session moving to another thread: everything it is but its connection.
#[derive(Debug, Clone)]
pub struct HandedSession {
    /// The protocol version of its latest `CONNECT`.
    pub version: ProtocolVersion,
    /// Its Session Expiry Interval, should the client be gone when it arrives.
    pub expiry_interval: u32,
    /// Its subscriptions: filter, options, Subscription Identifier (0: none).
    pub subscriptions: Vec<(Bytes, SubscriptionOptions, u32)>,
    /// Its messages in flight (identifiers and states) and queued, and the QoS 2
    /// identifiers its client sent and has not released.
    pub outbox: Box<Outbox>,
    /// The thread whose store still holds the session, and the stamp of the takeover
    /// it answered: told ([`ClusterMessage::Moved`]) once the session is committed to
    /// the new thread's store (or dropped), and only then does it forget the session,
    /// so a crash between the two commits leaves the session in one store or both,
    /// never in neither. `None` without a store.
    pub release: Option<(usize, u64)>,
}

/// A publish forwarded to another thread.
#[derive(Debug, Clone)]
pub struct Forward {
    /// Who published it (for No Local).
    pub publisher: Bytes,
    /// The message as the publishing thread received it.
    pub publish: Publish,
    /// The shared groups (full filters) this thread delivers it to, one member each.
    pub groups: Vec<Bytes>,
}

/// A shared group's members on every thread.
#[derive(Debug)]
struct GroupRoute {
    members: Vec<usize>,
    next: usize,
}

/// One thread's end of a cluster: who it is, the other threads' shared group
/// members, and the messages waiting to be sent ([`drain_outbox`](Self::drain_outbox)).
#[derive(Debug)]
pub struct Link {
    me: usize,
    threads: usize,
    groups: HashMap<Bytes, GroupRoute>,
    /// Inner filter -> the group's full filter, for every group with members anywhere.
    tree: TopicTree<Bytes>,
    outbox: Vec<(usize, ClusterMessage)>,
    /// The Lamport clock that stamps takeovers.
    clock: u64,
    /// The plain filters of this thread and of the others.
    routes: Routes,
    /// Publishes forwarded to other threads (one per thread it went to).
    forwarded: u64,
}

impl Link {
    /// Thread `me` of `threads` (at least 1).
    pub fn new(me: usize, threads: usize) -> Link {
        let threads = threads.max(1);
        Link {
            me: me.min(threads - 1),
            threads,
            groups: HashMap::new(),
            tree: TopicTree::new(),
            outbox: Vec::new(),
            clock: 0,
            routes: Routes::new(me.min(threads - 1), threads),
            forwarded: 0,
        }
    }

    /// This thread's index.
    pub fn me(&self) -> usize {
        self.me
    }

    /// How many threads the cluster has.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Moves the messages waiting to be sent into `out`: `(thread, message)`, in the
    /// order they were made.
    pub fn drain_outbox(&mut self, out: &mut Vec<(usize, ClusterMessage)>) {
        out.append(&mut self.outbox);
        let me = self.me;
        out.extend(
            self.routes
                .take_owed()
                .map(|(t, seq)| (t, ClusterMessage::FilterAck { from: me, seq })),
        );
    }

    /// Whether messages wait to be sent.
    pub fn has_outbox(&self) -> bool {
        !self.outbox.is_empty()
    }

    /// Publishes this thread forwarded to others (a publish counts once per thread it
    /// went to).
    pub fn forwarded(&self) -> u64 {
        self.forwarded
    }

    /// A subscription to the plain filter `filter` was added on this thread.
    pub(crate) fn filter_added(&mut self, filter: &[u8]) {
        if let Some(a) = self.routes.added(filter) {
            self.announce(a);
        }
    }

    /// A subscription to the plain filter `filter` was removed from this thread.
    pub(crate) fn filter_removed(&mut self, filter: &[u8]) {
        if let Some(a) = self.routes.removed(filter) {
            self.announce(a);
        }
    }

    fn announce(&mut self, (filter, present, seq): (Bytes, bool, u64)) {
        self.broadcast(ClusterMessage::Filter {
            from: self.me,
            filter,
            present,
            seq,
        });
    }

    /// Thread `from` announced `filter` (see [`ClusterMessage::Filter`]).
    pub(crate) fn remote_filter(&mut self, from: usize, filter: &[u8], present: bool, seq: u64) {
        self.routes.apply(from, filter, present, seq);
    }

    /// Thread `from` acknowledged this thread's announcements up to `seq`.
    pub(crate) fn filter_acked(&mut self, from: usize, seq: u64) {
        self.routes.acknowledged(from, seq);
    }

    /// The number of this thread's latest filter announcement: what a `SUBACK` sent
    /// now waits for ([`settled`](Self::settled)).
    pub(crate) fn announced(&self) -> u64 {
        self.routes.announced()
    }

    /// Whether every other thread applied this thread's announcements up to `seq`.
    pub(crate) fn settled(&self, seq: u64) -> bool {
        self.routes.settled(seq)
    }

    /// Plain filters subscribed on this thread (distinct), as announced.
    pub fn local_filters(&self) -> usize {
        self.routes.local_filters()
    }

    fn broadcast(&mut self, message: ClusterMessage) {
        for t in (0..self.threads).filter(|&t| t != self.me) {
            self.outbox.push((t, message.clone()));
        }
    }

    /// Thread `from` has `members` members in `group`.
    pub(crate) fn set_members(&mut self, from: usize, group: &Bytes, members: usize) {
        if from >= self.threads {
            return;
        }
        let threads = self.threads;
        let route = match self.groups.get_mut(group) {
            Some(route) => route,
            None if members == 0 => return,
            None => {
                if let Some((_, inner)) = shared::split(group) {
                    self.tree.insert(inner, group.clone());
                }
                self.groups.entry(group.clone()).or_insert(GroupRoute {
                    members: vec![0; threads],
                    next: 0,
                })
            }
        };
        route.members[from] = members;
        if route.members.iter().all(|&m| m == 0) {
            self.groups.remove(group);
            if let Some((_, inner)) = shared::split(group) {
                self.tree.remove(inner, |f| f == group);
            }
        }
    }

    /// This thread now has `members` members in `group`: noted, and told to the others.
    pub(crate) fn local_members(&mut self, group: Bytes, members: usize) {
        self.set_members(self.me, &group, members);
        let seq = self.routes.next_seq();
        self.broadcast(ClusterMessage::Group {
            from: self.me,
            group,
            members,
            seq,
        });
    }

    /// Thread `from`'s shared group announcement `seq`: `members` in `group`.
    pub(crate) fn remote_members(&mut self, from: usize, group: &Bytes, members: usize, seq: u64) {
        self.set_members(from, group, members);
        self.routes.owe(from, seq);
    }

    /// Forwards a message published on this thread to the other threads with a
    /// matching subscription (every one if it is retained), choosing one thread for
    /// each matching shared group; returns the groups this thread serves.
    pub(crate) fn route(&mut self, publisher: &[u8], publish: &Publish) -> Vec<Bytes> {
        // (thread, group): usually none, and then nothing is allocated.
        let mut chosen: Vec<(usize, Bytes)> = Vec::new();
        let groups = &mut self.groups;
        self.tree.for_each_match(&publish.topic, |full| {
            let Some(route) = groups.get_mut(full) else { return };
            let n = route.members.len();
            let start = route.next % n;
            let Some(t) = (0..n).map(|k| (start + k) % n).find(|&t| route.members[t] > 0) else {
                return;
            };
            route.next = t + 1;
            chosen.push((t, full.clone()));
        });
        self.routes.mark(&publish.topic, publish.retain);
        for t in (0..self.threads).filter(|&t| t != self.me) {
            let groups: Vec<Bytes> = chosen.iter().filter(|(c, _)| *c == t).map(|(_, g)| g.clone()).collect();
            if groups.is_empty() && !self.routes.hit(t) {
                continue;
            }
            self.forwarded += 1;
            self.outbox.push((
                t,
                ClusterMessage::Publish(Box::new(Forward {
                    publisher: Bytes::copy_from_slice(publisher),
                    publish: publish.clone(),
                    groups,
                })),
            ));
        }
        chosen
            .into_iter()
            .filter(|(t, _)| *t == self.me)
            .map(|(_, g)| g)
            .collect()
    }

    /// Tells thread `to` its session of `client` (takeover `stamp`) is committed here.
    pub(crate) fn moved(&mut self, to: usize, client: Bytes, stamp: u64) {
        if to < self.threads && to != self.me {
            self.outbox.push((to, ClusterMessage::Moved { client, stamp }));
        }
    }

    /// `client` connected here: a session of it on another thread ends. Returns the
    /// takeover's stamp (the clock, advanced).
    pub(crate) fn takeover(&mut self, client: &Bytes, clean_start: bool) -> u64 {
        self.clock += 1;
        let stamp = self.clock;
        self.broadcast(ClusterMessage::Takeover {
            from: self.me,
            client: client.clone(),
            clean_start,
            stamp,
        });
        stamp
    }

    /// A takeover stamped `stamp` came (or a handoff from a thread whose clock was
    /// `stamp`): the clock moves past it, so that a later `CONNECT` or record here is
    /// stamped later.
    pub(crate) fn observe(&mut self, stamp: u64) {
        self.clock = self.clock.max(stamp);
    }

    /// The stamp of a session record written now: the clock, advanced.
    pub(crate) fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Answers thread `to`'s takeover `stamp` of `client` with `session`.
    pub(crate) fn handoff(&mut self, to: usize, client: Bytes, stamp: u64, session: Option<Box<HandedSession>>) {
        if to < self.threads && to != self.me {
            self.outbox.push((
                to,
                ClusterMessage::Handoff {
                    from: self.me,
                    client,
                    stamp,
                    session,
                    clock: self.clock,
                },
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{Properties, QoS};

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    fn publish(topic: &'static str) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: b(topic),
            packet_id: 0,
            properties: Properties::default(),
            payload: b("x"),
        }
    }

    fn forwards(link: &mut Link) -> Vec<(usize, Vec<Bytes>)> {
        let mut out = Vec::new();
        link.drain_outbox(&mut out);
        out.into_iter()
            .filter_map(|(t, m)| match m {
                ClusterMessage::Publish(f) => Some((t, f.groups)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_publish_goes_once_to_each_other_thread_with_a_matching_filter() {
        let mut link = Link::new(1, 3);
        assert!(link.route(&b("p"), &publish("a/b")).is_empty());
        assert_eq!(forwards(&mut link), [], "no thread subscribed");
        link.remote_filter(0, b"a/+", true, 1);
        link.remote_filter(0, b"a/#", true, 2);
        link.remote_filter(2, b"x", true, 1);
        assert!(link.route(&b("p"), &publish("a/b")).is_empty());
        assert_eq!(forwards(&mut link), [(0, vec![])], "once, though two filters match");
        assert_eq!(link.forwarded(), 1);
        // A retained message goes to every thread's replica.
        let mut retained = publish("q");
        retained.retain = true;
        let _ = link.route(&b("p"), &retained);
        assert_eq!(forwards(&mut link), [(0, vec![]), (2, vec![])]);
        // Thread 0's filter went: nothing more goes there.
        link.remote_filter(0, b"a/+", false, 3);
        link.remote_filter(0, b"a/#", false, 4);
        let _ = link.route(&b("p"), &publish("a/b"));
        assert_eq!(forwards(&mut link), []);
        assert!(!link.has_outbox());
    }

    #[test]
    fn filters_are_announced_and_acknowledged_once_per_batch() {
        let mut link = Link::new(0, 3);
        link.filter_added(b"a");
        link.filter_added(b"a"); // a second subscriber: nothing new to say
        link.filter_added(b"b");
        assert!(!link.settled(link.announced()));
        let mut out = Vec::new();
        link.drain_outbox(&mut out);
        let said: Vec<(usize, &[u8], bool, u64)> = out
            .iter()
            .filter_map(|(t, m)| match m {
                ClusterMessage::Filter {
                    from: 0,
                    filter,
                    present,
                    seq,
                } => Some((*t, &filter[..], *present, *seq)),
                _ => None,
            })
            .collect();
        assert_eq!(
            said,
            [
                (1, &b"a"[..], true, 1),
                (2, b"a", true, 1),
                (1, b"b", true, 2),
                (2, b"b", true, 2)
            ]
        );
        link.filter_acked(1, 2);
        link.filter_acked(2, 1);
        assert!(link.settled(1) && !link.settled(2));
        link.filter_acked(2, 2);
        assert!(link.settled(link.announced()));
        // Announcements received are acknowledged at the next drain, the latest only.
        link.remote_filter(2, b"c", true, 7);
        link.remote_filter(2, b"d", true, 8);
        let mut out = Vec::new();
        link.drain_outbox(&mut out);
        assert!(
            matches!(&out[..], [(2, ClusterMessage::FilterAck { from: 0, seq: 8 })]),
            "{out:?}"
        );
    }

    #[test]
    fn a_shared_group_is_served_by_one_thread_round_robin_among_those_with_members() {
        let mut link = Link::new(0, 3);
        let g = b("$share/g/a/+");
        link.set_members(1, &g, 2);
        link.set_members(2, &g, 1);
        let mut served = Vec::new();
        for _ in 0..4 {
            let mine = link.route(&b("p"), &publish("a/x"));
            assert!(mine.is_empty(), "no members here");
            let f = forwards(&mut link);
            let with: Vec<usize> = f.iter().filter(|(_, g)| !g.is_empty()).map(|(t, _)| *t).collect();
            assert_eq!(with.len(), 1, "exactly one thread per group: {f:?}");
            served.push(with[0]);
        }
        assert_eq!(served, [1, 2, 1, 2]);
        // Local members join the rotation; a thread down to 0 leaves it.
        link.local_members(g.clone(), 1);
        let mut out = Vec::new();
        link.drain_outbox(&mut out);
        assert!(matches!(
            &out[..],
            [
                (
                    1,
                    ClusterMessage::Group {
                        from: 0,
                        members: 1,
                        seq: 1,
                        ..
                    }
                ),
                (2, _)
            ]
        ));
        link.set_members(1, &g, 0);
        link.set_members(2, &g, 0);
        for _ in 0..2 {
            assert_eq!(link.route(&b("p"), &publish("a/x")), std::slice::from_ref(&g));
            assert!(forwards(&mut link).iter().all(|(_, g)| g.is_empty()));
        }
        // Non-matching topics pick no group; a group with no members anywhere is gone.
        assert!(link.route(&b("p"), &publish("b")).is_empty());
        link.local_members(g.clone(), 0);
        assert!(link.groups.is_empty() && link.tree.is_empty());
    }

    #[test]
    fn takeover_is_broadcast_and_handoff_goes_to_one_thread() {
        let mut link = Link::new(0, 2);
        assert_eq!(link.takeover(&b("c"), false), 1);
        link.handoff(1, b("d"), 5, None);
        link.handoff(0, b("e"), 5, None); // never to itself
        link.handoff(7, b("e"), 5, None); // nor to a thread that does not exist
        let mut out = Vec::new();
        link.drain_outbox(&mut out);
        assert_eq!(out.len(), 2);
        assert!(matches!(
            &out[0],
            (
                1,
                ClusterMessage::Takeover {
                    from: 0,
                    clean_start: false,
                    stamp: 1,
                    ..
                }
            )
        ));
        assert!(matches!(
            &out[1],
            (1, ClusterMessage::Handoff { from: 0, stamp: 5, .. })
        ));
        // Stamps follow what was seen: a takeover after one stamped 9 is stamped 10.
        link.observe(9);
        link.observe(3);
        assert_eq!(link.takeover(&b("c"), true), 10);
    }
}
