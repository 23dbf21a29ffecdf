//! Session timers: a [`TimerWheel`] of deadlines with lazy deletion, and the count of
//! connections armed that bounds its stale entries.
//!
//! A connection remembers the one deadline it has armed; a wheel entry is live only
//! while it matches that deadline and the slot's generation. Re-arming adds a new entry
//! and leaves the old one to be skipped when it surfaces, so moving a keepalive forward
//! on every message costs one push and no search. When stale entries outnumber live
//! ones the wheel is compacted. A far deadline (a keep alive) costs the wheel a slot
//! number, not an (instant, slot, generation) heap entry.

use std::time::Instant;

use monocoque_proto::chassis::{DueTimer, TimerWheel};

/// Below this many entries the wheel is never compacted.
const COMPACT_MIN: usize = 1024;

/// The timers of one driver. `armed(index)` in the methods gives slot `index`'s armed
/// deadline and generation, if it has one.
#[derive(Debug, Default)]
pub(crate) struct Timers {
    wheel: TimerWheel,
    live: usize,
}

impl Timers {
    /// Records that the connection in slot `index` armed a timer at `at`.
    pub(crate) fn arm(&mut self, at: Instant, index: u32, generation: u32) {
        self.live += 1;
        self.wheel.arm(at, index, generation);
    }

    /// Records that a connection's armed timer was disarmed (moved, fired or dropped);
    /// its entry becomes stale.
    pub(crate) fn disarm(&mut self) {
        self.live = self.live.saturating_sub(1);
    }

    /// When to look again at the latest, discarding stale entries on the way.
    pub(crate) fn next(&mut self, armed: impl FnMut(u32) -> Option<(Instant, u32)>) -> Option<Instant> {
        self.wheel.next_live(armed)
    }

    /// Removes and returns the earliest entry due at `now`, live or not (the caller
    /// checks).
    pub(crate) fn pop_due(
        &mut self,
        now: Instant,
        armed: impl FnMut(u32) -> Option<(Instant, u32)>,
    ) -> Option<DueTimer> {
        self.wheel.pop_due(now, armed)
    }

    /// Drops stale entries once they are a third of the wheel, and the spare capacity
    /// with them: every connection arms a connect deadline and then its keep alive, so
    /// waiting for 4x kept two entries (and their growth) per idle connection. The
    /// rebuild is O(n) once per n/2 re-arms: constant per re-arm.
    pub(crate) fn compact_if_needed(&mut self, armed: impl FnMut(u32) -> Option<(Instant, u32)>) {
        let len = self.wheel.len();
        if len > COMPACT_MIN && len > self.live + self.live / 2 {
            self.wheel.retain(armed);
        }
    }

    /// Entries in the wheel, live and stale (diagnostics, tests).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.wheel.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::time::Duration;

    #[test]
    fn stale_entries_are_skipped() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        timers.arm(t0 + Duration::from_millis(5), 1, 0);
        // Connection 1 moves its timer later: the first entry goes stale.
        timers.disarm();
        let armed = t0 + Duration::from_millis(50);
        timers.arm(armed, 1, 0);
        let slot = |i: u32| (i == 1).then_some((armed, 0));
        // The next wake is no later than the live deadline (a bucket's start, at worst).
        assert!(timers.next(slot).is_some_and(|t| t <= armed));
        assert_eq!(timers.pop_due(t0 + Duration::from_millis(10), slot), None);
        assert_eq!(timers.pop_due(armed, slot).map(|e| e.index), Some(1));
    }

    #[test]
    fn compaction_drops_only_stale_entries() {
        let t0 = Instant::now();
        let mut timers = Timers::default();
        let mut slots = HashMap::new();
        for i in 0..5000u32 {
            let at = t0 + Duration::from_millis(u64::from(i));
            timers.arm(at, i, 0);
            if i % 10 == 0 {
                slots.insert(i, at);
            } else {
                timers.disarm();
            }
        }
        timers.compact_if_needed(|i| slots.get(&i).map(|&at| (at, 0)));
        assert_eq!(timers.len(), 500);
        assert_eq!(timers.next(|i| slots.get(&i).map(|&at| (at, 0))), Some(t0));
    }
}
