//! Fair queueing of received messages: one queue per peer, taken from in turn, so a
//! busy peer cannot starve a quiet one (libzmq's `fq_t`).

use std::collections::VecDeque;

use crate::zmtp::Message;

/// Received messages per peer, delivered round robin across peers.
#[derive(Debug)]
pub struct FairQueue<P> {
    /// Peers with at least one message, in the order they will be served, with the
    /// bytes of their messages.
    queues: VecDeque<(P, VecDeque<Message>, usize)>,
    len: usize,
    /// The last emptied peer queue, kept for the next peer that has messages: a
    /// receiver that keeps up empties its queue every turn, and a new one would grow
    /// again by doubling, copying its messages each time.
    spare: VecDeque<Message>,
}

impl<P> Default for FairQueue<P> {
    fn default() -> Self {
        FairQueue {
            queues: VecDeque::new(),
            len: 0,
            spare: VecDeque::new(),
        }
    }
}

impl<P: Copy + Eq> FairQueue<P> {
    /// Queues `message` from `peer`; its bytes.
    #[inline]
    pub fn push(&mut self, peer: P, message: Message) -> usize {
        self.len += 1;
        let size = message.size();
        // The common case first: the peer that sent the last message (a lone one).
        if let Some((p, q, bytes)) = self.queues.back_mut() {
            if *p == peer {
                q.push_back(message);
                *bytes += size;
                return size;
            }
        }
        match self.queues.iter_mut().find(|(p, _, _)| *p == peer) {
            Some((_, q, bytes)) => {
                q.push_back(message);
                *bytes += size;
            }
            None => {
                let mut queue = std::mem::take(&mut self.spare);
                queue.push_back(message);
                self.queues.push_back((peer, queue, size));
            }
        }
        size
    }

    /// Moves every waiting message into `out`, in the order [`pop`](Self::pop) would
    /// give them (a lone peer's queue at once).
    pub fn drain_into(&mut self, out: &mut Vec<Message>) {
        if self.queues.len() == 1 {
            if let Some((_, mut queue, _)) = self.queues.pop_front() {
                out.extend(queue.drain(..));
                self.len = 0;
                self.spare = queue;
            }
            return;
        }
        while let Some((_, message)) = self.pop() {
            out.push(message);
        }
    }

    /// The next message, from the peer whose turn it is; that peer then goes last.
    pub fn pop(&mut self) -> Option<(P, Message)> {
        let (peer, queue, bytes) = self.queues.front_mut()?;
        let peer = *peer;
        let message = queue.pop_front()?;
        self.len -= 1;
        *bytes = bytes.saturating_sub(message.size());
        if queue.is_empty() {
            if let Some((_, queue, _)) = self.queues.pop_front() {
                self.spare = queue;
            }
        } else if self.queues.len() > 1 {
            // Its turn is over: to the back (a lone peer stays where it is).
            self.queues.rotate_left(1);
        }
        Some((peer, message))
    }

    /// How many messages `peer` has waiting, and their bytes (one look).
    pub fn queued_of(&self, peer: P) -> (usize, usize) {
        self.queues
            .iter()
            .find(|(p, _, _)| *p == peer)
            .map_or((0, 0), |(_, q, b)| (q.len(), *b))
    }

    /// How many messages `peer` has waiting.
    pub fn len_of(&self, peer: P) -> usize {
        self.queues
            .iter()
            .find(|(p, _, _)| *p == peer)
            .map_or(0, |(_, q, _)| q.len())
    }

    /// The bytes of the messages `peer` has waiting.
    pub fn bytes_of(&self, peer: P) -> usize {
        self.queues
            .iter()
            .find(|(p, _, _)| *p == peer)
            .map_or(0, |(_, _, b)| *b)
    }

    /// Messages waiting from every peer.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is waiting.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(s: &'static str) -> Message {
        Message::from(bytes::Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn peers_take_turns() {
        let mut q = FairQueue::default();
        for m in ["a1", "a2", "a3"] {
            q.push(1, msg(m));
        }
        q.push(2, msg("b1"));
        assert_eq!(q.len(), 4);
        assert_eq!(q.len_of(1), 3);
        assert_eq!(q.bytes_of(1), 6);
        assert_eq!(q.bytes_of(3), 0);
        let order: Vec<_> = std::iter::from_fn(|| q.pop()).map(|(p, m)| (p, m[0].clone())).collect();
        assert_eq!(
            order,
            vec![(1, "a1".into()), (2, "b1".into()), (1, "a2".into()), (1, "a3".into())]
        );
        assert!(q.is_empty());
    }

    #[test]
    fn draining_gives_the_order_pop_would() {
        for peers in [1u8, 3] {
            let (mut a, mut b) = (FairQueue::default(), FairQueue::default());
            for round in 0..2 {
                for i in 0..7u8 {
                    let m = Message::from(bytes::Bytes::from(vec![i; usize::from(i)]));
                    a.push(i % peers, m.clone());
                    b.push(i % peers, m);
                }
                assert_eq!(a.queued_of(0), (b.len_of(0), b.bytes_of(0)));
                let popped: Vec<Message> = std::iter::from_fn(|| a.pop()).map(|(_, m)| m).collect();
                let mut drained = Vec::new();
                b.drain_into(&mut drained);
                assert_eq!(drained, popped, "{peers} peers, round {round}");
                assert!(a.is_empty() && b.is_empty() && b.queued_of(0) == (0, 0));
            }
        }
    }
}
