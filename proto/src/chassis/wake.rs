//! Waking a driver from another thread.
//!
//! A driver blocks in [`Driver::turn`](super::Driver::turn) until one of its sockets or
//! timers needs it. Another thread (another core's driver, a plain application thread)
//! that hands it work needs a way to interrupt that wait: a [`Waker`]. The driver fills
//! it with its own [`WakeSignal`] (io_uring: a write to an eventfd whose read is kept
//! armed in the ring; mio: `mio::Waker`), and reports the wake as
//! [`Activity::Woken`](super::Activity::Woken).
//!
//! Wakes coalesce: between two wakes the driver has consumed, only the first reaches the
//! kernel; the others are one atomic swap each. A wake is never lost: one sent while the
//! driver is busy, or not inside `turn` at all, makes the next `turn` return at once.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The one operation a driver needs another thread to perform to interrupt its wait (a
/// write to an eventfd, `mio::Waker::wake`). Implemented by the drivers; a body never
/// calls it directly, it calls [`Waker::wake`].
pub trait WakeSignal: Send + Sync + 'static {
    /// Makes the driver's current or next wait return. Called once per wake that the
    /// driver has not consumed yet.
    fn signal(&self) -> io::Result<()>;
}

struct Shared {
    /// A signal was sent and the driver has not consumed it yet: further wakes need no
    /// syscall.
    pending: AtomicBool,
    signal: Box<dyn WakeSignal>,
}

/// Wakes one driver from any thread: cheap to clone, `Send + Sync`.
///
/// Made by the driver ([`Driver::waker`](super::Driver::waker)); the driver keeps the
/// matching [`WakeLatch`].
#[derive(Clone)]
pub struct Waker {
    shared: Arc<Shared>,
}

/// The driver's end of a [`Waker`]: tells it that a signal was consumed, so the next
/// wake signals again.
pub struct WakeLatch {
    shared: Arc<Shared>,
}

impl Waker {
    /// A waker over `signal`, and the latch its driver keeps.
    pub fn new(signal: impl WakeSignal) -> (Waker, WakeLatch) {
        let shared = Arc::new(Shared {
            pending: AtomicBool::new(false),
            signal: Box::new(signal),
        });
        (
            Waker {
                shared: Arc::clone(&shared),
            },
            WakeLatch { shared },
        )
    }

    /// Makes the driver's current (or next) [`turn`](super::Driver::turn) return with
    /// [`Activity::Woken`](super::Activity::Woken). Costs a syscall only if no earlier
    /// wake is still waiting to be consumed.
    ///
    /// Everything this thread wrote before `wake` is visible to the driver's thread
    /// once it reports the wake.
    pub fn wake(&self) -> io::Result<()> {
        // AcqRel: publishes what this thread wrote before (the message in a mailbox) to
        // the driver, whose `consume` swap reads this write.
        if self.shared.pending.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.shared.signal.signal().inspect_err(|_| {
            // Nothing reached the driver: let the next wake try again.
            self.shared.pending.store(false, Ordering::Release);
        })
    }

    /// Whether both wakers wake the same driver.
    pub fn same_driver(&self, other: &Waker) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl WakeLatch {
    /// Called by the driver once it consumed a signal (the eventfd read completed, the
    /// mio waker's event came), before it reports
    /// [`Activity::Woken`](super::Activity::Woken). Returns whether a wake was pending
    /// (false for a spurious signal).
    pub fn consume(&self) -> bool {
        self.shared.pending.swap(false, Ordering::AcqRel)
    }
}

impl fmt::Debug for Waker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Waker")
            .field("pending", &self.shared.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl fmt::Debug for WakeLatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WakeLatch")
            .field("pending", &self.shared.pending.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[derive(Clone, Default)]
    struct Count(Arc<AtomicUsize>);

    impl WakeSignal for Count {
        fn signal(&self) -> io::Result<()> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    struct Broken;

    impl WakeSignal for Broken {
        fn signal(&self) -> io::Result<()> {
            Err(io::Error::from(io::ErrorKind::BrokenPipe))
        }
    }

    #[test]
    fn wakes_coalesce_until_consumed() {
        let count = Count::default();
        let (waker, latch) = Waker::new(count.clone());
        let other = waker.clone();
        assert!(waker.same_driver(&other));
        for _ in 0..10 {
            waker.wake().unwrap();
            other.wake().unwrap();
        }
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "one syscall for 20 wakes");
        assert!(latch.consume());
        assert!(!latch.consume(), "a second consume finds nothing pending");
        waker.wake().unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 2, "a wake after consume signals again");
    }

    #[test]
    fn a_failed_signal_is_retried_by_the_next_wake() {
        let (waker, latch) = Waker::new(Broken);
        assert!(waker.wake().is_err());
        assert!(waker.wake().is_err(), "the failure did not leave the wake pending");
        assert!(!latch.consume());
    }

    #[test]
    fn wakers_are_send_sync_clone() {
        fn check<T: Send + Sync + Clone + 'static>() {}
        check::<Waker>();
        let (waker, _latch) = Waker::new(Count::default());
        let (other, _) = Waker::new(Count::default());
        assert!(!waker.same_driver(&other));
    }
}
