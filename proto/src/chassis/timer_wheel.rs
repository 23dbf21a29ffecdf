//! [`TimerWheel`]: a driver's connection timers, cheap for many far deadlines.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::time::{Duration, Instant};

/// The width of a bucket.
const TICK: Duration = Duration::from_secs(1);

/// A timer that came due: the slot it was armed for, in that slot's generation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct DueTimer {
    /// The instant it was armed for.
    pub at: Instant,
    /// The connection's slot.
    pub index: u32,
    /// The slot's generation when the instant was read.
    pub generation: u32,
}

/// Connection timers: an exact heap for the current tick, a slot number per far
/// deadline in a bucket per tick.
///
/// A million idle connections each arm a keep-alive deadline minutes away. A heap of
/// (instant, slot, generation) costs 24 bytes an entry, and its capacity doubles. Here
/// a deadline in a tick (1 s) not yet reached costs its slot number only (4 bytes) in
/// the bucket of that tick; when a tick starts, its bucket is moved into a
/// small exact heap, reading each slot's armed instant back from the driver. So the
/// wheel is exact: nothing fires before its instant, and [`next`](TimerWheel::next)
/// never says later than the earliest deadline (at worst it says a tick's start, which
/// wakes the driver to move the tick's bucket).
///
/// Entries are never removed when a timer moves or is cancelled: the driver keeps the
/// one instant each connection is armed for, and an entry that no longer matches it is
/// stale, skipped when it surfaces; [`retain`](TimerWheel::retain) drops them in bulk.
/// The wheel reads no clock: instants are passed in.
#[derive(Debug, Default)]
pub struct TimerWheel {
    /// Timers in ticks already reached: exact.
    near: BinaryHeap<Reverse<DueTimer>>,
    /// Later timers by tick (from `origin`): slot numbers only.
    far: BTreeMap<u64, Vec<u32>>,
    /// Entries in `far`.
    far_len: usize,
    /// Tick 0 starts here: the first instant armed.
    origin: Option<Instant>,
    /// Ticks below this one are reached: a timer in them goes straight to `near`.
    reached: u64,
}

impl TimerWheel {
    /// An empty wheel.
    pub fn new() -> Self {
        Self::default()
    }

    /// The tick `at` falls in, `None` before the origin.
    fn tick(&self, at: Instant) -> Option<u64> {
        let since = at.checked_duration_since(self.origin?)?;
        Some(u64::try_from(since.as_nanos() / TICK.as_nanos()).unwrap_or(u64::MAX))
    }

    /// The instant tick `tick` starts.
    fn start(&self, tick: u64) -> Option<Instant> {
        let origin = self.origin?;
        let nanos = u128::from(tick) * TICK.as_nanos();
        origin.checked_add(Duration::from_nanos(u64::try_from(nanos).ok()?))
    }

    /// Records that slot `index` (of generation `generation`) is armed for `at`.
    pub fn arm(&mut self, at: Instant, index: u32, generation: u32) {
        self.origin.get_or_insert(at);
        match self.tick(at) {
            Some(tick) if tick >= self.reached => {
                self.far.entry(tick).or_default().push(index);
                self.far_len += 1;
            }
            _ => self.near.push(Reverse(DueTimer { at, index, generation })),
        }
    }

    /// When the driver must look again at the latest: the earliest exact deadline, or
    /// the start of the earliest bucket not yet reached, whichever comes first (may be
    /// a stale entry's instant: waking for nothing is harmless).
    pub fn next(&self) -> Option<Instant> {
        let near = self.near.peek().map(|Reverse(t)| t.at);
        let far = self.far.keys().next().and_then(|&tick| self.start(tick));
        match (near, far) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// [`next`](Self::next), first dropping the stale entries on top of the exact heap
    /// (`armed(index)` gives the slot's armed instant and generation, if any).
    pub fn next_live(&mut self, mut armed: impl FnMut(u32) -> Option<(Instant, u32)>) -> Option<Instant> {
        while let Some(Reverse(top)) = self.near.peek() {
            if armed(top.index) == Some((top.at, top.generation)) {
                break;
            }
            self.near.pop();
        }
        self.next()
    }

    /// Moves the buckets of the ticks started by `now` into the exact heap: each slot's
    /// armed instant and generation comes from `armed(index)`; a slot no longer armed
    /// in that tick was moved or cancelled (its newer entry is elsewhere).
    fn reach(&mut self, now: Instant, armed: &mut impl FnMut(u32) -> Option<(Instant, u32)>) {
        let Some(now_tick) = self.tick(now) else { return };
        while let Some(entry) = self.far.first_entry() {
            let tick = *entry.key();
            if tick > now_tick {
                break;
            }
            let mut slots = entry.remove();
            self.far_len -= slots.len();
            slots.sort_unstable();
            slots.dedup();
            for index in slots {
                if let Some((at, generation)) = armed(index) {
                    if self.tick(at) == Some(tick) {
                        self.near.push(Reverse(DueTimer { at, index, generation }));
                    }
                }
            }
        }
        self.reached = self.reached.max(now_tick.saturating_add(1));
    }

    /// Removes and returns the earliest timer due at `now`, live or stale (the caller
    /// checks it against the slot). `armed(index)` gives a slot's armed instant and
    /// generation, for the buckets whose tick `now` has reached.
    pub fn pop_due(&mut self, now: Instant, mut armed: impl FnMut(u32) -> Option<(Instant, u32)>) -> Option<DueTimer> {
        if self
            .far
            .keys()
            .next()
            .is_some_and(|&tick| self.start(tick).is_some_and(|s| s <= now))
        {
            self.reach(now, &mut armed);
        }
        match self.near.peek() {
            Some(Reverse(top)) if top.at <= now => self.near.pop().map(|Reverse(t)| t),
            _ => None,
        }
    }

    /// Entries held, live and stale.
    pub fn len(&self) -> usize {
        self.near.len() + self.far_len
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps only the live entries (`armed(index)`: the slot's armed instant and
    /// generation, if any) and gives back the spare capacity.
    pub fn retain(&mut self, mut armed: impl FnMut(u32) -> Option<(Instant, u32)>) {
        self.near
            .retain(|Reverse(t)| armed(t.index) == Some((t.at, t.generation)));
        if self.near.capacity() > 2 * self.near.len() {
            self.near.shrink_to(self.near.len() + self.near.len() / 2);
        }
        let origin = self.origin;
        let tick_of = |at: Instant| {
            let since = at.checked_duration_since(origin?)?;
            Some(u64::try_from(since.as_nanos() / TICK.as_nanos()).unwrap_or(u64::MAX))
        };
        let mut far_len = 0;
        self.far.retain(|&tick, slots| {
            slots.sort_unstable();
            slots.dedup();
            slots.retain(|&index| armed(index).is_some_and(|(at, _)| tick_of(at) == Some(tick)));
            if slots.capacity() > 2 * slots.len() {
                slots.shrink_to_fit();
            }
            far_len += slots.len();
            !slots.is_empty()
        });
        self.far_len = far_len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// Slots and the instant each is armed for, as a driver keeps them.
    #[derive(Default)]
    struct Slots(HashMap<u32, Instant>);

    impl Slots {
        fn arm(&mut self, wheel: &mut TimerWheel, index: u32, at: Instant) {
            self.0.insert(index, at);
            wheel.arm(at, index, 0);
        }

        fn armed(&self) -> impl FnMut(u32) -> Option<(Instant, u32)> + '_ {
            |index| self.0.get(&index).map(|&at| (at, 0))
        }

        /// Fires what is due at `now` as a driver does: live entries only, disarmed.
        fn fire(&mut self, wheel: &mut TimerWheel, now: Instant) -> Vec<u32> {
            let mut fired = Vec::new();
            while let Some(t) = wheel.pop_due(now, |i| self.0.get(&i).map(|&at| (at, 0))) {
                if self.0.get(&t.index) == Some(&t.at) {
                    self.0.remove(&t.index);
                    fired.push(t.index);
                }
            }
            fired
        }
    }

    #[test]
    fn fires_in_order_never_early_near_and_far() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut wheel = TimerWheel::new();
        let mut slots = Slots::default();
        // The first instant armed (30 ms) is the origin of the ticks.
        for (index, at) in [(2, 30), (1, 90_000), (3, 2_500), (4, 2_400), (5, 90_000)] {
            slots.arm(&mut wheel, index, ms(at));
        }
        // Each costs its slot number only until its tick is reached (even the origin's).
        assert_eq!(wheel.far_len, 5);
        assert!(wheel.near.is_empty());
        assert!(wheel.next().is_some_and(|n| n <= ms(30)));
        assert_eq!(slots.fire(&mut wheel, ms(29)), Vec::<u32>::new());
        assert_eq!(slots.fire(&mut wheel, ms(30)), vec![2]);
        // The next wake is no later than the earliest deadline.
        assert!(wheel.next().is_some_and(|n| n <= ms(2_400)));
        assert_eq!(slots.fire(&mut wheel, ms(2_399)), Vec::<u32>::new());
        assert_eq!(wheel.next(), Some(ms(2_400)), "the tick reached: exact again");
        assert_eq!(slots.fire(&mut wheel, ms(2_500)), vec![4, 3]);
        assert_eq!(slots.fire(&mut wheel, ms(89_999)), Vec::<u32>::new());
        let mut last = slots.fire(&mut wheel, ms(90_000));
        last.sort_unstable();
        assert_eq!(last, vec![1, 5]);
        assert!(wheel.is_empty());
        assert_eq!(wheel.next(), None);
    }

    #[test]
    fn a_moved_or_cancelled_timer_does_not_fire_and_retain_drops_it() {
        let t0 = Instant::now();
        let s = |n: u64| t0 + Duration::from_secs(n);
        let mut wheel = TimerWheel::new();
        let mut slots = Slots::default();
        slots.arm(&mut wheel, 1, s(10));
        slots.arm(&mut wheel, 2, s(10));
        // Slot 1 moves later (a keep alive renewed), slot 2 is cancelled, twice re-armed
        // in one tick.
        slots.arm(&mut wheel, 1, s(20));
        slots.0.remove(&2);
        slots.arm(&mut wheel, 3, s(30));
        slots.arm(&mut wheel, 3, s(30) + Duration::from_millis(1));
        assert_eq!(wheel.len(), 5);
        wheel.retain(slots.armed());
        assert_eq!(wheel.len(), 2, "one live entry per armed slot");
        assert_eq!(slots.fire(&mut wheel, s(15)), Vec::<u32>::new());
        assert_eq!(slots.fire(&mut wheel, s(20)), vec![1]);
        assert_eq!(slots.fire(&mut wheel, s(30)), Vec::<u32>::new());
        assert_eq!(slots.fire(&mut wheel, s(31)), vec![3]);
    }

    #[test]
    fn a_deadline_in_a_reached_tick_or_before_the_origin_is_exact() {
        let t0 = Instant::now() + Duration::from_secs(100);
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let mut wheel = TimerWheel::new();
        let mut slots = Slots::default();
        slots.arm(&mut wheel, 1, t0);
        // Before the origin (the first instant armed).
        slots.arm(&mut wheel, 2, t0 - Duration::from_secs(1));
        assert_eq!(wheel.next(), Some(t0 - Duration::from_secs(1)));
        assert_eq!(slots.fire(&mut wheel, t0 - Duration::from_secs(1)), vec![2]);
        assert_eq!(slots.fire(&mut wheel, ms(200)), vec![1]);
        // `t0`'s tick is reached: a deadline in it is exact at once.
        slots.arm(&mut wheel, 3, ms(300));
        assert_eq!(wheel.next(), Some(ms(300)));
        assert_eq!(slots.fire(&mut wheel, ms(299)), Vec::<u32>::new());
        assert_eq!(slots.fire(&mut wheel, ms(300)), vec![3]);
    }
}
