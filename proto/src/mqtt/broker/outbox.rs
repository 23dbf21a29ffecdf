//! [`Outbox`]: a session's outbound QoS 1 and 2 messages, the ones in flight and the
//! ones waiting for room in the window, kept across connections of a persistent
//! session.
//!
//! Delivery policy (what happens when a subscriber cannot keep up):
//! - QoS 1 and 2 messages take a place in the inflight window: at most the client's
//!   Receive Maximum (5.0; 65,535 for 3.1.1) capped by the broker's `max_inflight`
//!   [MQTT-3.3.4-9]. Beyond the window, or while the connection's unsent output is over
//!   its cap, or while the client is offline, they wait in the queue, in order.
//! - The queue holds at most `max_queued` messages; a message arriving at a full queue
//!   is refused (dropped and counted), like mosquitto's `max_queued_messages`. QoS 0
//!   messages never enter the queue (the connection drops them instead, counted, when
//!   its output is over its cap or the client is offline), so there is never an older
//!   QoS 0 message to evict first.
//! - A queued message whose Message Expiry Interval passes is dropped when it comes to
//!   the head [MQTT-3.3.2-5]; the others go out with the interval left [MQTT-3.3.2-6].
//! - Messages in flight are resent (PUBLISH with DUP 1, or PUBREL for a QoS 2 message
//!   already received) only when the session resumes on a new connection, in their
//!   original order and with their original packet identifiers [MQTT-4.4.0-1]; never on
//!   a timer.

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use crate::mqtt::{Ack, Packet, Publish, QoS, ReasonCode};

use super::expiry::Message;

/// Where a message the broker sent at QoS 1 or 2 stands: named for the packet awaited.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Awaiting {
    /// QoS 1 sent, waiting for `PUBACK`; the message is kept for a resend.
    Ack(Publish),
    /// QoS 2 sent, waiting for `PUBREC`; the message is kept for a resend.
    Rec(Publish),
    /// `PUBREL` sent, waiting for `PUBCOMP`: only the identifier is left.
    Comp,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct InFlight {
    id: u16,
    /// The message's store sequence number (0: not stored).
    seq: u64,
    awaiting: Awaiting,
}

/// A step in the flow of a stored message (one with a store sequence number), for the
/// store to follow ([`Outbox::take_steps`]): a restart resumes each flow where it
/// stood, with its packet identifier [MQTT-4.4.0-1].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowStep {
    /// Its `PUBLISH` went out with `packet_id`: it is in flight.
    Sent {
        /// The store sequence number.
        seq: u64,
        /// The packet identifier it was sent with.
        packet_id: u16,
    },
    /// Its `PUBREC` came and `PUBREL` went: only the identifier is left to complete.
    Released {
        /// The store sequence number.
        seq: u64,
        /// The packet identifier.
        packet_id: u16,
    },
    /// Its flow ended (completed, refused, expired, undeliverable): the store forgets it.
    Ended {
        /// The store sequence number.
        seq: u64,
    },
}

/// Where a message restored from a store stood in its flow (see [`FlowStep`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Flight {
    /// The packet identifier it was sent with.
    pub packet_id: u16,
    /// Whether its `PUBREC` came (then `PUBREL` is what is resent).
    pub released: bool,
}

/// What a `PUBREC` from the client asks of the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecOutcome {
    /// Release the message: send `PUBREL` (Success).
    Release,
    /// The client refused it (a code of 0x80 or more): the flow is over, nothing to
    /// send [MQTT-4.4.0-2].
    Refused,
    /// No QoS 2 flow waits for this identifier: answer `PUBREL` with 0x92 (5.0).
    Unknown,
}

/// A session's outbound QoS 1 and 2 messages: in flight (sent, not yet acknowledged)
/// and queued (waiting for the window, the output or the client to come back). See the
/// module documentation for the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outbox {
    inflight: VecDeque<InFlight>,
    queue: VecDeque<Message>,
    /// QoS 2 packet identifiers received from the client and not yet released: session
    /// state too, so a retransmission after a reconnect is not routed twice.
    received: BTreeSet<u16>,
    next_id: u16,
    max_queued: usize,
    dropped: u64,
    expired: u64,
    /// Steps of stored messages' flows, for the store ([`take_steps`](Self::take_steps)).
    steps: Vec<FlowStep>,
}

impl Outbox {
    /// An empty outbox whose queue holds at most `max_queued` messages.
    pub fn new(max_queued: usize) -> Outbox {
        Outbox {
            inflight: VecDeque::new(),
            queue: VecDeque::new(),
            received: BTreeSet::new(),
            next_id: 1,
            max_queued,
            dropped: 0,
            expired: 0,
            steps: Vec::new(),
        }
    }

    /// Messages sent and not yet acknowledged.
    pub fn in_flight(&self) -> usize {
        self.inflight.len()
    }

    /// Messages waiting to be sent.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Messages refused because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Queued messages dropped because their Message Expiry Interval passed.
    pub fn expired(&self) -> u64 {
        self.expired
    }

    /// Queues `message` (QoS 1 or 2) behind the others; refuses it, counted, when the
    /// queue is full.
    pub fn enqueue(&mut self, message: Message) -> bool {
        if self.queue.len() >= self.max_queued {
            self.dropped += 1;
            return false;
        }
        self.queue.push_back(message);
        true
    }

    /// Queues a message restored from the store, whatever the queue's limit (it was
    /// accepted before the restart).
    pub fn restore(&mut self, message: Message) {
        self.queue.push_back(message);
    }

    /// Puts a message restored from the store back in flight where it stood: sent
    /// with `flight.packet_id`, awaiting its acknowledgement, or (QoS 2) released and
    /// awaiting `PUBCOMP`. Call in the order the flows started (store sequence order).
    pub fn restore_in_flight(&mut self, message: Message, flight: Flight) {
        let mut publish = message.publish;
        publish.packet_id = flight.packet_id;
        publish.dup = false;
        let awaiting = match publish.qos {
            QoS::ExactlyOnce if flight.released => Awaiting::Comp,
            QoS::ExactlyOnce => Awaiting::Rec(publish),
            // A QoS 0 copy is never stored; were one, it would be acknowledged like QoS 1.
            QoS::AtLeastOnce | QoS::AtMostOnce => Awaiting::Ack(publish),
        };
        self.inflight.push_back(InFlight {
            id: flight.packet_id,
            seq: message.seq,
            awaiting,
        });
        self.next_id = flight.packet_id.checked_add(1).unwrap_or(1);
    }

    /// Gives every stored message its flow's current step again (a session that moves
    /// to another thread and its store): each in flight as sent or released, with its
    /// identifier, and `renumber` gives each message (in flight or queued) its new
    /// store sequence number, 0 for none. Returns the messages to record, in order.
    pub fn renumber(
        &mut self,
        mut renumber: impl FnMut() -> u64,
    ) -> Vec<(u64, Publish, Option<Flight>, Option<Instant>)> {
        let mut out = Vec::new();
        for f in &mut self.inflight {
            f.seq = renumber();
            let (publish, released) = match &f.awaiting {
                Awaiting::Ack(p) | Awaiting::Rec(p) => (Some(p), false),
                Awaiting::Comp => (None, true),
            };
            if f.seq != 0 {
                let flight = Flight {
                    packet_id: f.id,
                    released,
                };
                match publish {
                    Some(p) => out.push((f.seq, p.clone(), Some(flight), None)),
                    // Only the identifier is left: a record keeps its place.
                    None => out.push((f.seq, released_marker(), Some(flight), None)),
                }
            }
        }
        for m in &mut self.queue {
            m.seq = renumber();
            if m.seq != 0 {
                out.push((m.seq, m.publish.clone(), None, m.expires));
            }
        }
        self.steps.clear();
        out
    }

    /// Starts the next queued message if fewer than `window` are in flight: it gets a
    /// packet identifier and is recorded in flight. Messages expired at `now` are
    /// dropped on the way.
    pub fn start_next(&mut self, window: u16, now: Instant) -> Option<Publish> {
        if self.inflight.len() >= usize::from(window) {
            return None;
        }
        loop {
            let message = self.queue.pop_front()?;
            let seq = message.seq;
            let Some(mut publish) = message.at(now) else {
                self.expired += 1;
                if seq != 0 {
                    self.steps.push(FlowStep::Ended { seq });
                }
                continue;
            };
            let id = self.free_id()?;
            if seq != 0 && publish.qos != QoS::AtMostOnce {
                self.steps.push(FlowStep::Sent { seq, packet_id: id });
            }
            publish.packet_id = id;
            publish.dup = false;
            let awaiting = match publish.qos {
                QoS::AtLeastOnce => Awaiting::Ack(publish.clone()),
                QoS::ExactlyOnce => Awaiting::Rec(publish.clone()),
                // QoS 0 is not queued; should one be, it is sent without a flow.
                QoS::AtMostOnce => {
                    publish.packet_id = 0;
                    return Some(publish);
                }
            };
            self.inflight.push_back(InFlight { id, seq, awaiting });
            return Some(publish);
        }
    }

    /// Forgets the flow of `id` without an acknowledgement: the message could not be
    /// sent to this client (larger than its Maximum Packet Size).
    pub fn abandon(&mut self, id: u16) {
        if let Some(i) = self.position(id) {
            self.end(i);
        }
    }

    /// A `PUBACK`: ends the QoS 1 flow of `id`; returns whether one was waiting.
    pub fn puback(&mut self, id: u16) -> bool {
        match self.position(id) {
            Some(i) if matches!(self.inflight[i].awaiting, Awaiting::Ack(_)) => {
                self.end(i);
                true
            }
            _ => false,
        }
    }

    /// A `PUBREC` with `code`: the QoS 2 flow of `id` moves on to `PUBREL`, or ends when
    /// the client refused the message.
    pub fn pubrec(&mut self, id: u16, code: ReasonCode) -> RecOutcome {
        let Some(i) = self.position(id) else {
            return RecOutcome::Unknown;
        };
        match self.inflight[i].awaiting {
            Awaiting::Rec(_) if code.as_u8() >= 0x80 => {
                self.end(i);
                RecOutcome::Refused
            }
            Awaiting::Rec(_) | Awaiting::Comp => {
                // The payload is no longer needed: only PUBREL can be resent now.
                let f = &mut self.inflight[i];
                if f.seq != 0 && f.awaiting != Awaiting::Comp {
                    self.steps.push(FlowStep::Released {
                        seq: f.seq,
                        packet_id: id,
                    });
                }
                f.awaiting = Awaiting::Comp;
                RecOutcome::Release
            }
            Awaiting::Ack(_) => RecOutcome::Unknown,
        }
    }

    /// A `PUBCOMP`: ends the QoS 2 flow of `id`; returns whether one was waiting.
    pub fn pubcomp(&mut self, id: u16) -> bool {
        match self.position(id) {
            Some(i) if self.inflight[i].awaiting == Awaiting::Comp => {
                self.end(i);
                true
            }
            _ => false,
        }
    }

    /// Ends the flow at `i`, noting a stored message's end for the store.
    fn end(&mut self, i: usize) {
        if let Some(f) = self.inflight.remove(i) {
            if f.seq != 0 {
                self.steps.push(FlowStep::Ended { seq: f.seq });
            }
        }
    }

    /// The steps of stored messages' flows since the last call, in order: the store
    /// follows them (an identifier given, a release, an end).
    pub fn take_steps(&mut self) -> Vec<FlowStep> {
        std::mem::take(&mut self.steps)
    }

    /// Whether [`take_steps`](Self::take_steps) has anything.
    pub fn has_steps(&self) -> bool {
        !self.steps.is_empty()
    }

    /// Whether a step not yet taken put bytes on the wire (a `PUBLISH` given its
    /// identifier, a `PUBREL`): a durable broker writes them only after the store holds
    /// the step, or a restart could resend the message under another identifier, or
    /// resend a `PUBLISH` the client already completed.
    pub fn has_written_steps(&self) -> bool {
        self.steps.iter().any(|s| !matches!(s, FlowStep::Ended { .. }))
    }

    /// What to resend when the session resumes, in the order first sent: each
    /// unacknowledged `PUBLISH` with DUP 1 [MQTT-3.3.1-1], each `PUBREL` not completed,
    /// with their original packet identifiers [MQTT-4.4.0-1].
    pub fn resend(&self) -> impl Iterator<Item = Packet> + '_ {
        self.inflight.iter().map(|f| match &f.awaiting {
            Awaiting::Ack(p) | Awaiting::Rec(p) => {
                let mut p = p.clone();
                p.dup = true;
                Packet::Publish(p)
            }
            Awaiting::Comp => Packet::PubRel(Ack::success(f.id)),
        })
    }

    /// The QoS 2 identifiers received from the client and not yet released.
    pub fn take_received(&mut self) -> BTreeSet<u16> {
        std::mem::take(&mut self.received)
    }

    /// Keeps the client's unreleased QoS 2 identifiers with the session.
    pub fn keep_received(&mut self, received: BTreeSet<u16>) {
        self.received = received;
    }

    fn position(&self, id: u16) -> Option<usize> {
        self.inflight.iter().position(|f| f.id == id)
    }

    /// The next packet identifier not in flight (identifiers are reused only once
    /// their flow ended [MQTT-2.2.1-3]).
    fn free_id(&mut self) -> Option<u16> {
        if self.inflight.len() >= usize::from(u16::MAX) {
            return None;
        }
        loop {
            let id = self.next_id;
            self.next_id = self.next_id.checked_add(1).unwrap_or(1);
            if self.position(id).is_none() {
                return Some(id);
            }
        }
    }
}

/// What a store keeps for a message released and awaiting `PUBCOMP`, whose content is
/// gone: a QoS 2 `PUBLISH` with an empty payload, only ever read back as released.
fn released_marker() -> Publish {
    Publish {
        dup: false,
        qos: QoS::ExactlyOnce,
        retain: false,
        topic: bytes::Bytes::from_static(b"$released"),
        packet_id: 0,
        properties: crate::mqtt::Properties::default(),
        payload: bytes::Bytes::new(),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use bytes::Bytes;

    use super::*;
    use crate::mqtt::Properties;

    fn message(qos: QoS, payload: &'static str) -> Message {
        Message {
            publish: Publish {
                dup: false,
                qos,
                retain: false,
                topic: Bytes::from_static(b"t"),
                packet_id: 0,
                properties: Properties::default(),
                payload: Bytes::from_static(payload.as_bytes()),
            },
            expires: None,
            seq: 0,
        }
    }

    #[test]
    fn the_window_bounds_what_is_in_flight_and_an_ack_opens_it() {
        // [MQTT-3.3.4-9]: never more than Receive Maximum unacknowledged.
        let now = Instant::now();
        let mut o = Outbox::new(10);
        for p in ["a", "b", "c"] {
            assert!(o.enqueue(message(QoS::AtLeastOnce, p)));
        }
        let first = o.start_next(2, now).unwrap();
        let second = o.start_next(2, now).unwrap();
        assert_eq!((first.packet_id, &first.payload[..]), (1, &b"a"[..]));
        assert_eq!((second.packet_id, &second.payload[..]), (2, &b"b"[..]));
        assert_eq!(o.start_next(2, now), None, "window of 2 is full");
        assert_eq!(o.queued(), 1);
        assert!(!o.puback(7), "unknown identifier");
        assert!(o.puback(1));
        let third = o.start_next(2, now).unwrap();
        assert_eq!((third.packet_id, &third.payload[..]), (3, &b"c"[..]));
    }

    #[test]
    fn a_full_queue_refuses_and_counts() {
        let now = Instant::now();
        let mut o = Outbox::new(2);
        assert!(o.enqueue(message(QoS::AtLeastOnce, "1")));
        assert!(o.enqueue(message(QoS::ExactlyOnce, "2")));
        assert!(!o.enqueue(message(QoS::AtLeastOnce, "3")));
        assert_eq!((o.queued(), o.dropped()), (2, 1));
        // The oldest stay, in order.
        assert_eq!(&o.start_next(10, now).unwrap().payload[..], b"1");
        assert_eq!(&o.start_next(10, now).unwrap().payload[..], b"2");
    }

    #[test]
    fn resend_keeps_order_identifiers_and_sets_dup_and_pubrel() {
        // [MQTT-4.4.0-1], [MQTT-3.3.1-1]
        let now = Instant::now();
        let mut o = Outbox::new(10);
        o.enqueue(message(QoS::ExactlyOnce, "two"));
        o.enqueue(message(QoS::AtLeastOnce, "one"));
        o.enqueue(message(QoS::ExactlyOnce, "released"));
        for _ in 0..3 {
            o.start_next(10, now).unwrap();
        }
        assert_eq!(o.pubrec(3, ReasonCode::Success), RecOutcome::Release);
        let again: Vec<Packet> = o.resend().collect();
        assert_eq!(again.len(), 3);
        match &again[0] {
            Packet::Publish(p) => assert!(p.dup && p.packet_id == 1 && &p.payload[..] == b"two"),
            other => panic!("{other:?}"),
        }
        match &again[1] {
            Packet::Publish(p) => assert!(p.dup && p.packet_id == 2 && p.qos == QoS::AtLeastOnce),
            other => panic!("{other:?}"),
        }
        assert_eq!(again[2], Packet::PubRel(Ack::success(3)));
        assert!(o.pubcomp(3));
        assert_eq!(o.in_flight(), 2);
    }

    #[test]
    fn a_refused_pubrec_ends_the_flow_and_unknown_ids_are_reported() {
        // [MQTT-4.4.0-2]: treated as acknowledged, never resent.
        let now = Instant::now();
        let mut o = Outbox::new(10);
        o.enqueue(message(QoS::ExactlyOnce, "x"));
        o.start_next(10, now).unwrap();
        assert_eq!(o.pubrec(9, ReasonCode::Success), RecOutcome::Unknown);
        assert_eq!(o.pubrec(1, ReasonCode::QuotaExceeded), RecOutcome::Refused);
        assert_eq!(o.resend().count(), 0);
        assert!(!o.pubcomp(1));
    }

    #[test]
    fn expired_messages_are_skipped_at_the_head() {
        // [MQTT-3.3.2-5]
        let now = Instant::now();
        let mut o = Outbox::new(10);
        let mut stale = message(QoS::AtLeastOnce, "stale");
        stale.expires = Some(now + Duration::from_secs(1));
        o.enqueue(stale);
        o.enqueue(message(QoS::AtLeastOnce, "fresh"));
        let got = o.start_next(10, now + Duration::from_secs(2)).unwrap();
        assert_eq!(&got.payload[..], b"fresh");
        assert_eq!(got.packet_id, 1);
        assert_eq!(o.expired(), 1);
    }

    #[test]
    fn identifiers_in_flight_are_not_reused_across_the_wrap() {
        // [MQTT-2.2.1-3]
        let now = Instant::now();
        let mut o = Outbox::new(10);
        o.next_id = u16::MAX;
        o.enqueue(message(QoS::AtLeastOnce, "a"));
        o.enqueue(message(QoS::AtLeastOnce, "b"));
        assert_eq!(o.start_next(10, now).unwrap().packet_id, u16::MAX);
        assert_eq!(o.start_next(10, now).unwrap().packet_id, 1);
        o.next_id = u16::MAX;
        o.enqueue(message(QoS::AtLeastOnce, "c"));
        assert_eq!(o.start_next(10, now).unwrap().packet_id, 2);
    }

    #[test]
    fn stored_flows_report_each_step_and_restore_where_they_stood() {
        // What the store follows: the identifier given, the release, the end.
        let now = Instant::now();
        let mut o = Outbox::new(10);
        for (seq, payload) in [(5, "a"), (6, "b"), (7, "c")] {
            let mut m = message(QoS::ExactlyOnce, payload);
            m.seq = seq;
            o.enqueue(m);
        }
        let mut plain = message(QoS::AtLeastOnce, "not stored");
        plain.seq = 0;
        o.enqueue(plain);
        for _ in 0..4 {
            o.start_next(10, now).unwrap();
        }
        assert_eq!(o.pubrec(2, ReasonCode::Success), RecOutcome::Release);
        assert_eq!(
            o.pubrec(2, ReasonCode::Success),
            RecOutcome::Release,
            "a repeat is no new step"
        );
        assert_eq!(o.pubrec(3, ReasonCode::Success), RecOutcome::Release);
        assert!(o.pubcomp(3));
        assert_eq!(
            o.take_steps(),
            [
                FlowStep::Sent { seq: 5, packet_id: 1 },
                FlowStep::Sent { seq: 6, packet_id: 2 },
                FlowStep::Sent { seq: 7, packet_id: 3 },
                FlowStep::Released { seq: 6, packet_id: 2 },
                FlowStep::Released { seq: 7, packet_id: 3 },
                FlowStep::Ended { seq: 7 },
            ]
        );
        assert!(!o.has_steps());

        // After a restart: the same identifiers and states, and new ones avoid them.
        let mut r = Outbox::new(10);
        let mut a = message(QoS::ExactlyOnce, "a");
        a.seq = 5;
        r.restore_in_flight(
            a,
            Flight {
                packet_id: 1,
                released: false,
            },
        );
        let mut b = message(QoS::ExactlyOnce, "b");
        b.seq = 6;
        r.restore_in_flight(
            b,
            Flight {
                packet_id: 2,
                released: true,
            },
        );
        let again: Vec<Packet> = r.resend().collect();
        match &again[..] {
            [Packet::Publish(p), Packet::PubRel(rel)] => {
                assert!(p.dup && p.packet_id == 1 && &p.payload[..] == b"a");
                assert_eq!(rel.packet_id, 2);
            }
            other => panic!("{other:?}"),
        }
        r.enqueue(message(QoS::AtLeastOnce, "new"));
        assert_eq!(r.start_next(10, now).unwrap().packet_id, 3);
        assert!(r.pubcomp(2));
        assert_eq!(r.take_steps(), [FlowStep::Ended { seq: 6 }]);

        // Moving to another thread's store: each message renumbered, flights kept.
        let mut next = 100;
        let records = r.renumber(|| {
            next += 1;
            next
        });
        let summary: Vec<_> = records
            .iter()
            .map(|(seq, p, f, _)| (*seq, p.payload.clone(), f.map(|f| (f.packet_id, f.released))))
            .collect();
        assert_eq!(
            summary,
            [
                (101, bytes::Bytes::from("a"), Some((1, false))),
                (102, bytes::Bytes::from("new"), Some((3, false))),
            ]
        );
        assert!(r.puback(3));
        assert_eq!(r.take_steps(), [FlowStep::Ended { seq: 102 }]);
    }
}
