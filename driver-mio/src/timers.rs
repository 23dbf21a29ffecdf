//! Session timers: a min-heap of (deadline, slot, generation) with lazy deletion.
//!
//! A connection remembers the one deadline it has armed; a heap entry is live only while
//! it matches that deadline and the slot's generation. Re-arming pushes a new entry and
//! leaves the old one to be skipped when it surfaces, so moving a keepalive forward on
//! every message costs one push and no search. When stale entries outnumber live ones
//! the heap is compacted.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// One armed (or formerly armed) timer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct TimerEntry {
    /// When it fires.
    pub(crate) at: Instant,
    /// The connection's slot.
    pub(crate) index: u32,
    /// The slot's generation when the timer was armed.
    pub(crate) generation: u32,
}

/// Below this many entries the heap is never compacted.
const COMPACT_MIN: usize = 1024;

/// The timer heap of one driver.
#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Reverse<TimerEntry>>,
    live: usize,
}

impl TimerHeap {
    /// Records that a connection armed a timer at `entry.at`.
    pub(crate) fn arm(&mut self, entry: TimerEntry) {
        self.live += 1;
        self.heap.push(Reverse(entry));
    }

    /// Records that a connection's armed timer was disarmed (moved, fired or dropped);
    /// its heap entry becomes stale.
    pub(crate) fn disarm(&mut self) {
        self.live = self.live.saturating_sub(1);
    }

    /// The earliest entry for which `is_live` holds, discarding stale ones on the way.
    pub(crate) fn next(&mut self, mut is_live: impl FnMut(&TimerEntry) -> bool) -> Option<Instant> {
        while let Some(Reverse(top)) = self.heap.peek() {
            if is_live(top) {
                return Some(top.at);
            }
            self.heap.pop();
        }
        None
    }

    /// Removes and returns the earliest entry due at `now`, live or not (the caller
    /// checks).
    pub(crate) fn pop_due(&mut self, now: Instant) -> Option<TimerEntry> {
        match self.heap.peek() {
            Some(Reverse(top)) if top.at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => None,
        }
    }

    /// Drops stale entries once they are a third of the heap, and the spare capacity
    /// with them: every connection arms a connect deadline and then its keep alive, so
    /// waiting for 4x kept two entries (and their growth) per idle connection. The
    /// rebuild is O(n) once per n/2 re-arms: constant per re-arm.
    pub(crate) fn compact_if_needed(&mut self, mut is_live: impl FnMut(&TimerEntry) -> bool) {
        if self.heap.len() > COMPACT_MIN && self.heap.len() > self.live + self.live / 2 {
            self.heap.retain(|Reverse(e)| is_live(e));
            if self.heap.capacity() > 2 * self.heap.len() {
                self.heap.shrink_to(self.heap.len() + self.heap.len() / 2);
            }
        }
    }

    /// Entries in the heap, live and stale (diagnostics, tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.heap.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn entry(at: Instant, index: u32) -> TimerEntry {
        TimerEntry {
            at,
            index,
            generation: 0,
        }
    }

    #[test]
    fn stale_entries_are_skipped() {
        let t0 = Instant::now();
        let mut heap = TimerHeap::default();
        heap.arm(entry(t0 + Duration::from_millis(5), 1));
        // Connection 1 moves its timer later: the first entry goes stale.
        heap.disarm();
        heap.arm(entry(t0 + Duration::from_millis(50), 1));
        let armed = t0 + Duration::from_millis(50);
        assert_eq!(heap.next(|e| e.at == armed), Some(armed));
        assert_eq!(heap.len(), 1);
        assert_eq!(heap.pop_due(t0 + Duration::from_millis(10)), None);
        assert_eq!(heap.pop_due(armed).map(|e| e.index), Some(1));
    }

    #[test]
    fn due_entries_come_out_in_order() {
        let t0 = Instant::now();
        let mut heap = TimerHeap::default();
        for (i, ms) in [30u64, 10, 20].into_iter().enumerate() {
            heap.arm(entry(t0 + Duration::from_millis(ms), i as u32));
        }
        let now = t0 + Duration::from_millis(25);
        let order: Vec<u32> = std::iter::from_fn(|| heap.pop_due(now)).map(|e| e.index).collect();
        assert_eq!(order, vec![1, 2]);
    }

    #[test]
    fn compaction_drops_only_stale_entries() {
        let t0 = Instant::now();
        let mut heap = TimerHeap::default();
        for i in 0..5000u32 {
            heap.arm(entry(t0 + Duration::from_millis(u64::from(i)), i));
            if i % 10 != 0 {
                heap.disarm();
            }
        }
        heap.compact_if_needed(|e| e.index % 10 == 0);
        assert_eq!(heap.len(), 500);
        assert_eq!(heap.next(|_| true), Some(t0));
    }
}
