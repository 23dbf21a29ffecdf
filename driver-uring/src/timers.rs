//! Session timers: a min-heap of deadlines with lazy invalidation.
//!
//! Each connection remembers the one instant it is armed for; the heap may hold older
//! entries for it, which are skipped when they surface (the connection's instant no
//! longer matches). When stale entries pile up the heap is rebuilt.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// A deadline for connection slot `index` of generation `gen`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerEntry {
    pub(crate) at: Instant,
    pub(crate) index: u32,
    pub(crate) gen: u32,
}

/// Pending deadlines, earliest first.
#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Reverse<TimerEntry>>,
}

impl TimerHeap {
    pub(crate) fn push(&mut self, entry: TimerEntry) {
        self.heap.push(Reverse(entry));
    }

    /// The earliest entry, possibly stale.
    pub(crate) fn next(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse(e)| e.at)
    }

    /// Removes and returns the earliest entry if it is due at `now`.
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerEntry> {
        match self.heap.peek() {
            Some(Reverse(e)) if e.at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }

    /// Keeps only the entries `live` accepts.
    pub(crate) fn retain(&mut self, mut live: impl FnMut(&TimerEntry) -> bool) {
        self.heap.retain(|Reverse(e)| live(e));
        // Give back what a burst of re-arms grew: idle servers hold one entry per
        // connection, not the high-water mark.
        if self.heap.capacity() > 2 * self.heap.len() {
            self.heap.shrink_to(self.heap.len() + self.heap.len() / 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_order_and_only_when_due() {
        let t0 = Instant::now();
        let mut h = TimerHeap::default();
        for (i, ms) in [30u64, 10, 20].into_iter().enumerate() {
            h.push(TimerEntry {
                at: t0 + Duration::from_millis(ms),
                index: i as u32,
                gen: 0,
            });
        }
        assert_eq!(h.next(), Some(t0 + Duration::from_millis(10)));
        assert!(h.pop_due(t0).is_none());
        let due: Vec<u32> = std::iter::from_fn(|| h.pop_due(t0 + Duration::from_millis(25)))
            .map(|e| e.index)
            .collect();
        assert_eq!(due, vec![1, 2]);
        assert_eq!(h.len(), 1);
        h.retain(|_| false);
        assert_eq!(h.next(), None);
    }
}
