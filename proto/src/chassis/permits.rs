//! Byte budgets: the high-water marks that bound every queue.

/// The error a producer gets when a queue's byte budget is spent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("backpressure: {requested} bytes requested, {available} of {capacity} available")]
pub struct Backpressure {
    /// Bytes the producer asked for.
    pub requested: usize,
    /// Bytes still free in the budget.
    pub available: usize,
    /// The budget's size.
    pub capacity: usize,
}

/// A byte budget (high-water mark) for one queue.
///
/// Producers [`try_acquire`](Self::try_acquire) the size of what they enqueue and the
/// consumer [`release`](Self::release)s it when the bytes leave. When the budget is
/// spent the producer gets [`Backpressure`] and must wait (or the driver stops reading
/// the socket): queues never grow without bound. An empty queue always accepts one
/// item, however large, so an item bigger than the whole budget still makes progress.
///
/// Sessions are single-threaded (thread per core), so this is a plain counter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BytePermits {
    capacity: usize,
    used: usize,
}

impl BytePermits {
    /// A budget of `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, used: 0 }
    }

    /// Takes `n` bytes from the budget, or reports backpressure and takes nothing.
    pub fn try_acquire(&mut self, n: usize) -> Result<(), Backpressure> {
        if self.used == 0 || n <= self.available() {
            self.used = self.used.saturating_add(n);
            Ok(())
        } else {
            Err(Backpressure {
                requested: n,
                available: self.available(),
                capacity: self.capacity,
            })
        }
    }

    /// Returns `n` bytes to the budget.
    ///
    /// # Panics
    /// In debug builds, if more is released than was acquired (a bookkeeping bug).
    pub fn release(&mut self, n: usize) {
        debug_assert!(n <= self.used, "released {n} of {} used", self.used);
        self.used = self.used.saturating_sub(n);
    }

    /// Bytes still free (zero when over budget).
    pub fn available(&self) -> usize {
        self.capacity.saturating_sub(self.used)
    }

    /// Bytes currently held.
    pub fn used(&self) -> usize {
        self.used
    }

    /// The budget's size.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether the next non-empty acquire would fail.
    pub fn is_exhausted(&self) -> bool {
        self.used > 0 && self.used >= self.capacity
    }

    /// Returns every byte (the queue was emptied at once, e.g. on poison).
    pub fn reset(&mut self) {
        self.used = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acquire_until_full_then_backpressure() {
        let mut p = BytePermits::new(10);
        p.try_acquire(6).unwrap();
        p.try_acquire(4).unwrap();
        assert!(p.is_exhausted());
        let err = p.try_acquire(1).unwrap_err();
        assert_eq!(err.available, 0);
        assert_eq!(err.requested, 1);
        p.release(5);
        p.try_acquire(5).unwrap();
        assert_eq!(p.used(), 10);
    }

    #[test]
    fn empty_budget_accepts_one_oversized_item() {
        let mut p = BytePermits::new(10);
        p.try_acquire(100).unwrap();
        assert!(p.try_acquire(1).is_err());
        p.release(100);
        assert_eq!(p.available(), 10);
    }
}
