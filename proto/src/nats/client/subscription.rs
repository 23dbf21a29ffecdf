//! One subscription's state: what to resubscribe, and its bounded queue of messages
//! the application has not taken yet.

use std::collections::VecDeque;
use std::hash::{BuildHasherDefault, Hasher};

use bytes::Bytes;

use super::{SlowConsumerPolicy, SubscriptionPolicy};

/// Room left under the connection-wide bound on queued bytes
/// ([`ClientConfig::max_pending_bytes`](super::ClientConfig::max_pending_bytes)), shared
/// by every subscription.
#[derive(Debug, Clone, Copy)]
pub(super) struct SharedRoom {
    /// Bytes that may still be queued, across subscriptions.
    pub available: usize,
    /// The bound itself.
    pub capacity: usize,
}

impl SharedRoom {
    /// No connection-wide bound (for tests of one subscription).
    #[cfg(test)]
    pub const UNBOUNDED: Self = Self {
        available: usize::MAX,
        capacity: usize::MAX,
    };
}
use crate::chassis::BytePermits;
use crate::nats::{Message, Sid};

/// What became of a message offered to a subscription.
#[derive(Debug)]
pub(super) enum Offer {
    /// Queued; `notify` when the queue was empty and no notification is outstanding.
    Queued {
        /// Emit [`Event::Messages`](super::Event::Messages).
        notify: bool,
        /// The message reached the subscription's maximum: it ends.
        ended: bool,
    },
    /// Dropped: the queue is full and the policy is to drop (or the subscription had
    /// already received its maximum).
    Dropped {
        /// The subscription's maximum is reached with this message.
        ended: bool,
    },
    /// The queue is full and the policy is backpressure: the message comes back.
    Full(Message),
}

/// A subscription the application made.
#[derive(Debug, Clone)]
pub(super) struct Subscription {
    pub sid: Sid,
    pub subject: Bytes,
    pub queue_group: Option<Bytes>,
    pub policy: SubscriptionPolicy,
    /// The maximum given to `unsubscribe(sid, Some(max))`: messages in all.
    pub max: Option<u64>,
    /// Messages the server delivered (queued or dropped).
    pub received: u64,
    /// No more messages come: the maximum was reached or the server refused it. It is
    /// kept only until its queue is drained.
    pub ended: bool,
    messages: VecDeque<Message>,
    bytes: BytePermits,
    /// An [`Event::Messages`](super::Event::Messages) is outstanding (emitted since the
    /// queue was last empty).
    pub notified: bool,
    /// Messages dropped and not yet reported.
    pub unreported_drops: u64,
    /// Messages dropped in all.
    pub dropped_total: u64,
}

/// Hashes the subscription map's keys, the connection's own sids, with one
/// multiplication (Fibonacci hashing) instead of SipHash: a message costs two lookups
/// (queueing it, taking it), SipHash made them about a tenth of the receive path. The
/// keys are chosen by the client, never by the server (a server's sid only looks one
/// up), so no peer can pick keys that collide.
pub(super) type SidHash = BuildHasherDefault<SidHasher>;

/// The hasher of [`SidHash`].
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct SidHasher(u64);

impl Hasher for SidHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Not used by `u64` keys; correct for any other.
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    #[inline]
    fn write_u64(&mut self, n: u64) {
        // 2^64 / the golden ratio: distinct low bits for distinct low bits of `n` (the
        // bucket index), well-mixed high bits (hashbrown's control byte).
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// The bytes counted for a message in a queue: payload plus headers, as nats.go counts
/// (see [`SubscriptionPolicy`] for what else it keeps alive).
pub(super) fn message_size(message: &Message) -> usize {
    message.payload.len() + message.headers.as_ref().map_or(0, |h| h.len())
}

impl Subscription {
    pub fn new(sid: Sid, subject: Bytes, queue_group: Option<Bytes>, policy: SubscriptionPolicy) -> Self {
        Self {
            sid,
            subject,
            queue_group,
            policy,
            max: None,
            received: 0,
            ended: false,
            messages: VecDeque::new(),
            bytes: BytePermits::new(policy.max_bytes),
            notified: false,
            unreported_drops: 0,
            dropped_total: 0,
        }
    }

    /// Messages still to come before the maximum, if there is one.
    pub fn remaining(&self) -> Option<u64> {
        self.max.map(|max| max.saturating_sub(self.received))
    }

    /// Queued messages and bytes.
    pub fn pending(&self) -> (usize, usize) {
        (self.messages.len(), self.bytes.used())
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// Whether a message may go straight to a visitor
    /// ([`Connection::visit_messages`](super::Connection::visit_messages)): the
    /// subscription takes more, and nothing is queued that would have to come first.
    #[inline]
    pub fn visitable(&self) -> bool {
        !self.ended && self.remaining() != Some(0) && self.messages.is_empty()
    }

    /// Whether a message of `size` bytes is queued at once by [`offer`](Self::offer):
    /// the subscription takes more, and the message fits in its queue and under the
    /// connection-wide bound. The receive path's fast case: such a message is built in
    /// its queue's slot ([`push`](Self::push)) instead of going through `offer`.
    #[inline]
    pub fn accepts(&self, size: usize, shared: SharedRoom) -> bool {
        !self.ended
            && self.remaining() != Some(0)
            && size <= self.policy.max_bytes
            && size <= shared.capacity
            && self.messages.len() < self.policy.max_messages.max(1)
            && size <= self.bytes.available()
            && size <= shared.available
    }

    /// Queues a message of `size` bytes that [`accepts`](Self::accepts) said fits;
    /// whether to notify (the queue was empty, no notification outstanding) and whether
    /// the subscription reached its maximum with it.
    #[inline]
    pub fn push(&mut self, message: Message, size: usize) -> (bool, bool) {
        self.bytes.try_acquire(size).ok();
        self.received += 1;
        self.messages.push_back(message);
        let notify = !self.notified;
        self.notified = true;
        let ended = self.remaining() == Some(0);
        self.ended |= ended;
        (notify, ended)
    }

    /// Offers a message the server delivered, with `shared` room left under the
    /// connection-wide bound.
    pub fn offer(&mut self, message: Message, shared: SharedRoom) -> Offer {
        let size = message_size(&message);
        if self.accepts(size, shared) {
            let (notify, ended) = self.push(message, size);
            return Offer::Queued { notify, ended };
        }
        if self.ended || self.remaining() == Some(0) {
            // The server counts too; a message past the maximum is not delivered.
            return Offer::Dropped { ended: false };
        }
        // Never fits, even in an empty queue: dropped whatever the policy (waiting for
        // room it can never have would stall the connection).
        let oversized = size > self.policy.max_bytes || size > shared.capacity;
        match self.policy.on_full {
            SlowConsumerPolicy::Backpressure if !oversized => Offer::Full(message),
            SlowConsumerPolicy::Backpressure | SlowConsumerPolicy::DropNew => {
                self.received += 1;
                self.unreported_drops += 1;
                self.dropped_total += 1;
                let ended = self.remaining() == Some(0);
                self.ended |= ended;
                Offer::Dropped { ended }
            }
        }
    }

    /// Takes the oldest queued message.
    pub fn take(&mut self) -> Option<Message> {
        let message = self.messages.pop_front()?;
        self.bytes.release(message_size(&message));
        if self.messages.is_empty() {
            self.notified = false;
        }
        Some(message)
    }

    /// Moves up to `max` of the oldest queued messages, in order, to the back of `out`;
    /// returns how many and the bytes they counted. Taking the whole queue into an
    /// empty `out` swaps the two queues: no message is moved.
    pub fn take_into(&mut self, out: &mut VecDeque<Message>, max: usize) -> (usize, usize) {
        let n = self.messages.len().min(max);
        let bytes = if n == self.messages.len() {
            let bytes = self.bytes.used();
            if out.is_empty() {
                std::mem::swap(out, &mut self.messages);
            } else {
                out.append(&mut self.messages);
            }
            bytes
        } else {
            let start = out.len();
            out.extend(self.messages.drain(..n));
            out.range(start..).map(message_size).sum()
        };
        self.bytes.release(bytes);
        if self.messages.is_empty() {
            self.notified = false;
        }
        (n, bytes)
    }

    /// Whether a message of `size` bytes would be queued now.
    /// A message that can never fit (over `max_bytes`) counts as having room: offering
    /// it drops it.
    pub fn has_room_for(&self, size: usize, shared: SharedRoom) -> bool {
        size > self.policy.max_bytes
            || size > shared.capacity
            || (self.messages.len() < self.policy.max_messages.max(1)
                && size <= self.bytes.available()
                && size <= shared.available)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: usize) -> Message {
        Message {
            subject: Bytes::from_static(b"s"),
            sid: Sid::from_u64(1),
            reply: None,
            headers: None,
            payload: Bytes::from(vec![b'x'; n]),
        }
    }

    fn sub(max_messages: usize, max_bytes: usize, on_full: SlowConsumerPolicy) -> Subscription {
        let policy = SubscriptionPolicy {
            max_messages,
            max_bytes,
            on_full,
        };
        Subscription::new(Sid::from_u64(1), Bytes::from_static(b"s"), None, policy)
    }

    /// What `message(n)` counts against `max_bytes`.
    fn cost(n: usize) -> usize {
        message_size(&message(n))
    }

    #[test]
    fn bounded_by_messages_and_bytes() {
        let mut s = sub(2, cost(4) + cost(6), SlowConsumerPolicy::DropNew);
        assert!(matches!(
            s.offer(message(4), SharedRoom::UNBOUNDED),
            Offer::Queued {
                notify: true,
                ended: false
            }
        ));
        assert!(matches!(
            s.offer(message(4), SharedRoom::UNBOUNDED),
            Offer::Queued { notify: false, .. }
        ));
        assert!(
            matches!(
                s.offer(message(1), SharedRoom::UNBOUNDED),
                Offer::Dropped { ended: false }
            ),
            "message limit"
        );
        assert_eq!(s.take().map(|m| m.payload.len()), Some(4));
        assert!(
            matches!(s.offer(message(7), SharedRoom::UNBOUNDED), Offer::Dropped { .. }),
            "byte limit"
        );
        assert!(matches!(
            s.offer(message(6), SharedRoom::UNBOUNDED),
            Offer::Queued { .. }
        ));
        assert_eq!(s.pending(), (2, cost(4) + cost(6)));
        assert_eq!((s.unreported_drops, s.dropped_total, s.received), (2, 2, 5));
        s.take();
        s.take();
        assert!(!s.notified && s.pending() == (0, 0));
    }

    #[test]
    fn an_empty_queue_does_not_take_a_message_over_the_bound() {
        for policy in [SlowConsumerPolicy::DropNew, SlowConsumerPolicy::Backpressure] {
            let mut s = sub(10, cost(100), policy);
            assert!(
                matches!(
                    s.offer(message(101), SharedRoom::UNBOUNDED),
                    Offer::Dropped { ended: false }
                ),
                "{policy:?}: dropped, not queued nor stalled"
            );
            assert_eq!(s.pending(), (0, 0));
            assert_eq!((s.unreported_drops, s.dropped_total, s.received), (1, 1, 1));
            // It would never fit: a stalled one is let through to be dropped.
            assert!(s.has_room_for(cost(101), SharedRoom::UNBOUNDED));
            assert!(
                matches!(s.offer(message(100), SharedRoom::UNBOUNDED), Offer::Queued { .. }),
                "at the bound: queued"
            );
        }
    }

    #[test]
    fn backpressure_hands_the_message_back_uncounted() {
        let mut s = sub(1, 2 * cost(2), SlowConsumerPolicy::Backpressure);
        s.offer(message(1), SharedRoom::UNBOUNDED);
        let Offer::Full(m) = s.offer(message(2), SharedRoom::UNBOUNDED) else {
            panic!("full")
        };
        assert_eq!(s.received, 1);
        assert!(!s.has_room_for(cost(2), SharedRoom::UNBOUNDED));
        s.take();
        assert!(s.has_room_for(cost(2), SharedRoom::UNBOUNDED));
        assert!(matches!(
            s.offer(m, SharedRoom::UNBOUNDED),
            Offer::Queued { notify: true, .. }
        ));
    }

    #[test]
    fn take_into_moves_the_oldest_and_releases_their_bytes() {
        let mut s = sub(10, 100 * cost(1), SlowConsumerPolicy::Backpressure);
        for n in 1..=5 {
            assert!(matches!(
                s.offer(message(n), SharedRoom::UNBOUNDED),
                Offer::Queued { .. }
            ));
        }
        let mut out = VecDeque::new();
        // Part of the queue: moved, oldest first.
        assert_eq!(s.take_into(&mut out, 2), (2, cost(1) + cost(2)));
        assert_eq!(s.pending(), (3, cost(3) + cost(4) + cost(5)));
        assert!(s.notified, "not emptied: the notification stays outstanding");
        // The rest behind what `out` holds.
        assert_eq!(s.take_into(&mut out, usize::MAX), (3, cost(3) + cost(4) + cost(5)));
        let lens: Vec<usize> = out.iter().map(|m| m.payload.len()).collect();
        assert_eq!(lens, [1, 2, 3, 4, 5]);
        assert!(!s.notified && s.pending() == (0, 0) && s.is_empty());
        // The whole queue into an empty `out`: swapped, and the subscription goes on
        // with the queue it got.
        s.offer(message(6), SharedRoom::UNBOUNDED);
        let mut swapped = VecDeque::new();
        assert_eq!(s.take_into(&mut swapped, usize::MAX), (1, cost(6)));
        assert_eq!(swapped.front().map(|m| m.payload.len()), Some(6));
        assert_eq!(s.take_into(&mut swapped, usize::MAX), (0, 0));
        assert!(matches!(
            s.offer(message(7), SharedRoom::UNBOUNDED),
            Offer::Queued { notify: true, .. }
        ));
        assert_eq!(s.pending(), (1, cost(7)));
    }

    #[test]
    fn maximum_ends_the_subscription() {
        let mut s = sub(10, 100 * cost(1), SlowConsumerPolicy::DropNew);
        s.max = Some(2);
        s.offer(message(1), SharedRoom::UNBOUNDED);
        assert!(matches!(
            s.offer(message(1), SharedRoom::UNBOUNDED),
            Offer::Queued { ended: true, .. }
        ));
        assert!(s.ended);
        assert!(matches!(
            s.offer(message(1), SharedRoom::UNBOUNDED),
            Offer::Dropped { ended: false }
        ));
        assert_eq!(s.received, 2);
    }
}
