//! Out-of-band traffic: pub/sub messages, tracking invalidations, other pushes and
//! reconnects, queued in arrival order for [`Client::next_event`](super::Client::next_event).

use std::collections::VecDeque;

use bytes::Bytes;
use monocoque_proto::resp::{MessageKind, Value};

/// A message published on a channel this client is subscribed to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// How it matched: a channel, a pattern (which one) or a shard channel.
    pub kind: MessageKind,
    /// The channel it was published on.
    pub channel: Bytes,
    /// What was published.
    pub payload: Bytes,
}

impl Message {
    /// The pattern that matched, for a `PSUBSCRIBE` subscription.
    pub fn pattern(&self) -> Option<&Bytes> {
        match &self.kind {
            MessageKind::Pattern(p) => Some(p),
            _ => None,
        }
    }
}

/// Client-side caching: keys whose cached values are stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalidation {
    /// The keys that changed; `None` means every key (the server flushed, ran out of
    /// tracking memory, or the client reconnected and tracking started over).
    pub keys: Option<Vec<Bytes>>,
}

/// Something that arrived outside any request/reply pair.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A pub/sub message.
    Message(Message),
    /// A tracking invalidation.
    Invalidate(Invalidation),
    /// Any other RESP3 push (or an unsolicited unsubscribe confirmation).
    Push(Value),
    /// The connection was lost and re-established; subscriptions and tracking were
    /// restored. Messages published in between were missed.
    Reconnected,
    /// After a reconnect, restoring a subscription or tracking failed (the server
    /// refused the command): that state is lost.
    RestoreFailed(super::ServerError),
    /// Events that arrived while the queue was over
    /// [`ClientOptions::max_event_bytes`](super::ClientOptions::max_event_bytes) were
    /// dropped; this many, at this point of the stream.
    Lagged {
        /// How many were dropped.
        dropped: u64,
    },
}

impl Event {
    /// Roughly how much memory the event holds, for the queue's byte bound.
    fn weight(&self) -> usize {
        const BASE: usize = 64;
        BASE + match self {
            Event::Message(m) => m.channel.len() + m.payload.len() + m.pattern().map_or(0, Bytes::len),
            Event::Invalidate(i) => i.keys.as_ref().map_or(0, |k| k.iter().map(|k| k.len() + 32).sum()),
            Event::Push(v) => value_weight(v),
            Event::Reconnected | Event::RestoreFailed(_) | Event::Lagged { .. } => 0,
        }
    }
}

fn value_weight(v: &Value) -> usize {
    32 + match v {
        Value::SimpleString(b)
        | Value::SimpleError(b)
        | Value::BulkString(b)
        | Value::BlobError(b)
        | Value::BigNumber(b) => b.len(),
        Value::Verbatim { text, .. } => text.len(),
        Value::Array(items) | Value::Set(items) | Value::Push(items) => items.iter().map(value_weight).sum(),
        Value::Map(pairs) => pairs.iter().map(|(k, v)| value_weight(k) + value_weight(v)).sum(),
        Value::Attributed { attributes, value } => {
            attributes
                .iter()
                .map(|(k, v)| value_weight(k) + value_weight(v))
                .sum::<usize>()
                + value_weight(value)
        }
        Value::Integer(_) | Value::Null | Value::Double(_) | Value::Boolean(_) => 0,
    }
}

/// Events in arrival order, bounded in bytes: over the bound, new events are dropped and
/// counted in an [`Event::Lagged`] marker at the point of the loss.
#[derive(Debug)]
pub(crate) struct EventQueue {
    queue: VecDeque<(usize, Event)>,
    bytes: usize,
    limit: usize,
}

impl EventQueue {
    pub fn new(limit: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            bytes: 0,
            limit,
        }
    }

    pub fn push(&mut self, event: Event) {
        let weight = event.weight();
        if !self.queue.is_empty() && self.bytes.saturating_add(weight) > self.limit {
            if let Some((_, Event::Lagged { dropped })) = self.queue.back_mut() {
                *dropped += 1;
            } else {
                self.queue.push_back((0, Event::Lagged { dropped: 1 }));
            }
            return;
        }
        self.bytes += weight;
        self.queue.push_back((weight, event));
    }

    /// The oldest event.
    #[cfg(test)]
    pub fn pop(&mut self) -> Option<Event> {
        let (weight, event) = self.queue.pop_front()?;
        self.bytes -= weight;
        Some(event)
    }

    /// The oldest event that `pick` accepts, leaving the others in place.
    pub fn pop_matching<T>(
        &mut self,
        mut pick: impl FnMut(&Event) -> bool,
        into: impl FnOnce(Event) -> Option<T>,
    ) -> Option<T> {
        let index = self.queue.iter().position(|(_, e)| pick(e))?;
        let (weight, event) = self.queue.remove(index)?;
        self.bytes -= weight;
        into(event)
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(payload: &'static str) -> Event {
        Event::Message(Message {
            kind: MessageKind::Channel,
            channel: Bytes::from_static(b"c"),
            payload: Bytes::from_static(payload.as_bytes()),
        })
    }

    #[test]
    fn keeps_order_and_picks_by_kind() {
        let mut q = EventQueue::new(1 << 20);
        q.push(Event::Invalidate(Invalidation { keys: None }));
        q.push(message("1"));
        q.push(Event::Reconnected);
        let m = q.pop_matching(
            |e| matches!(e, Event::Message(_)),
            |e| match e {
                Event::Message(m) => Some(m),
                _ => None,
            },
        );
        assert_eq!(m.map(|m| m.payload), Some(Bytes::from_static(b"1")));
        assert_eq!(q.pop(), Some(Event::Invalidate(Invalidation { keys: None })));
        assert_eq!(q.pop(), Some(Event::Reconnected));
        assert_eq!(q.pop(), None);
        assert_eq!(q.bytes, 0);
    }

    #[test]
    fn over_the_bound_new_events_are_counted_not_kept() {
        let mut q = EventQueue::new(200);
        q.push(message("first"));
        q.push(message("second"));
        q.push(message("third"));
        q.push(message("fourth"));
        assert_eq!(q.len(), 3);
        assert!(matches!(q.pop(), Some(Event::Message(m)) if m.payload == "first"));
        assert!(matches!(q.pop(), Some(Event::Message(m)) if m.payload == "second"));
        assert_eq!(q.pop(), Some(Event::Lagged { dropped: 2 }));
        // Room again: a single event is always accepted into an empty queue.
        q.push(Event::Push(Value::Push(vec![Value::BulkString(Bytes::from(vec![
            0u8;
            1000
        ]))])));
        assert_eq!(q.len(), 1);
    }
}
