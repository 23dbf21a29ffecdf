//! Time in the broker without a clock: a message's expiry ([`Message`]) and the
//! deadlines of sessions left without a connection ([`SessionTimers`]).
//!
//! Instants come from the caller (`now`); nothing here reads the time.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::mqtt::Publish;

/// The Session Expiry Interval that means "never" (5.0 §3.1.2.11.2).
pub const NEVER_EXPIRES: u32 = u32::MAX;

/// An application message on its way to one subscriber, with the instant its Message
/// Expiry Interval (5.0) runs out, if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The `PUBLISH` as it will be forwarded (its packet identifier is assigned when it
    /// is sent).
    pub publish: Publish,
    /// When the message stops being deliverable.
    pub expires: Option<Instant>,
    /// Its sequence number in the broker's store, for a copy queued for a persistent
    /// session of a broker with a store (0: not stored); its flow's end is reported
    /// ([`Event::Flow`](super::Event::Flow)) so the store forgets it.
    pub seq: u64,
}

impl Message {
    /// A message the broker received at `now`: its expiry is `now` plus the Message
    /// Expiry Interval it carries.
    pub fn received(publish: Publish, now: Instant) -> Message {
        let expires = publish
            .properties
            .message_expiry_interval
            .map(|secs| now + Duration::from_secs(u64::from(secs)));
        Message {
            publish,
            expires,
            seq: 0,
        }
    }

    /// The message with its own copy of topic and payload: a message that may wait (in
    /// a queue, in flight, for an offline session) must not keep alive the whole
    /// receive buffer its views point into.
    pub fn detached(mut self) -> Message {
        self.publish.topic = Bytes::copy_from_slice(&self.publish.topic);
        self.publish.payload = Bytes::copy_from_slice(&self.publish.payload);
        self
    }

    /// The `PUBLISH` to forward at `now`, carrying the interval that remains
    /// [MQTT-3.3.2-6], or `None` once the interval has passed: an expired message is not
    /// delivered [MQTT-3.3.2-5].
    pub fn at(self, now: Instant) -> Option<Publish> {
        let mut publish = self.publish;
        if let Some(expires) = self.expires {
            let left = expires.checked_duration_since(now).filter(|d| !d.is_zero())?;
            // Whole seconds, rounded up: a message with 0.4 s left still has "1".
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            publish.properties.message_expiry_interval = Some(u32::try_from(secs).unwrap_or(u32::MAX));
        }
        Some(publish)
    }

    /// Whether the message can no longer be delivered at `now`.
    pub fn is_expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|e| now >= e)
    }
}

/// When sessions without a connection end: a heap of (deadline, client) ordered by
/// deadline. Entries are not removed when a client comes back; the owner checks each
/// due entry against the session's current deadline (a stale one is skipped).
#[derive(Debug, Default)]
pub struct SessionTimers {
    heap: BinaryHeap<Reverse<(Instant, Bytes)>>,
}

impl SessionTimers {
    /// The deadline after `interval` seconds from `now`, `None` for a session that never
    /// expires ([`NEVER_EXPIRES`]) or whose instant would overflow.
    pub fn deadline(now: Instant, interval: u32) -> Option<Instant> {
        if interval == NEVER_EXPIRES {
            return None;
        }
        now.checked_add(Duration::from_secs(u64::from(interval)))
    }

    /// Schedules `client`'s session to end at `at`.
    pub fn schedule(&mut self, at: Instant, client: Bytes) {
        self.heap.push(Reverse((at, client)));
    }

    /// The earliest deadline, stale or not (waking for a stale one costs a check).
    pub fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The next entry due at `now`, removed.
    pub fn pop_due(&mut self, now: Instant) -> Option<(Instant, Bytes)> {
        if self.next()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse(entry)| entry)
    }

    /// Drops the entries `live` rejects, when stale ones outnumber `expected` (the
    /// sessions that may have a deadline): a client that reconnects often must not grow
    /// the heap without bound.
    pub fn compact(&mut self, expected: usize, mut live: impl FnMut(Instant, &Bytes) -> bool) {
        if self.heap.len() <= 2 * expected + 16 {
            return;
        }
        let entries = std::mem::take(&mut self.heap).into_vec();
        self.heap = entries
            .into_iter()
            .filter(|Reverse((at, client))| live(*at, client))
            .collect();
    }

    /// Entries held (live and stale).
    pub fn len(&self) -> usize {
        self.heap.len()
    }

    /// Whether no deadline is held.
    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{Properties, QoS};

    fn publish(expiry: Option<u32>) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: false,
            topic: Bytes::from_static(b"t"),
            packet_id: 0,
            properties: Properties {
                message_expiry_interval: expiry,
                ..Properties::default()
            },
            payload: Bytes::from_static(b"p"),
        }
    }

    #[test]
    fn a_message_carries_the_interval_left_and_is_dropped_once_it_passed() {
        // [MQTT-3.3.2-5], [MQTT-3.3.2-6]
        let t0 = Instant::now();
        let m = Message::received(publish(Some(10)), t0);
        let at = |secs: u64, millis: u64| t0 + Duration::from_secs(secs) + Duration::from_millis(millis);
        assert_eq!(m.clone().at(t0).unwrap().properties.message_expiry_interval, Some(10));
        assert_eq!(
            m.clone().at(at(3, 0)).unwrap().properties.message_expiry_interval,
            Some(7)
        );
        assert_eq!(
            m.clone().at(at(9, 600)).unwrap().properties.message_expiry_interval,
            Some(1)
        );
        assert!(!m.is_expired(at(9, 999)));
        assert!(m.is_expired(at(10, 0)));
        assert_eq!(m.at(at(10, 0)), None);
        // Without an interval, a message never expires and gains no property.
        let forever = Message::received(publish(None), t0);
        let out = forever.at(at(100_000, 0)).unwrap();
        assert_eq!(out.properties.message_expiry_interval, None);
    }

    #[test]
    fn session_deadlines_come_out_in_order_and_never_means_none() {
        let t0 = Instant::now();
        assert_eq!(SessionTimers::deadline(t0, NEVER_EXPIRES), None);
        let mut timers = SessionTimers::default();
        timers.schedule(SessionTimers::deadline(t0, 5).unwrap(), Bytes::from_static(b"b"));
        timers.schedule(SessionTimers::deadline(t0, 2).unwrap(), Bytes::from_static(b"a"));
        assert_eq!(timers.next(), Some(t0 + Duration::from_secs(2)));
        assert_eq!(timers.pop_due(t0 + Duration::from_secs(1)), None);
        let due = timers.pop_due(t0 + Duration::from_secs(6)).unwrap();
        assert_eq!(due.1, Bytes::from_static(b"a"));
        assert_eq!(
            timers.pop_due(t0 + Duration::from_secs(6)).unwrap().1,
            Bytes::from_static(b"b")
        );
        assert!(timers.is_empty());
    }

    #[test]
    fn stale_deadlines_are_compacted_away() {
        let t0 = Instant::now();
        let mut timers = SessionTimers::default();
        for i in 0..100u64 {
            timers.schedule(t0 + Duration::from_secs(i), Bytes::from_static(b"c"));
        }
        // Only the last deadline is the session's own.
        let live = t0 + Duration::from_secs(99);
        timers.compact(1, |at, _| at == live);
        assert_eq!(timers.len(), 1);
        assert_eq!(timers.next(), Some(live));
    }
}
