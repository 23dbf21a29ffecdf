//! A bounded mailbox for messages from other threads into one driver's thread.
//!
//! Thread per core means nothing is shared on the hot path: a connection's session
//! lives in one driver, on one thread. Work for it that starts elsewhere (a message
//! published on another core, a request from an application thread) travels as a
//! message into the owning driver's [`Mailbox`], through any number of cloned
//! [`MailboxSender`]s, and wakes that driver through its [`Waker`].
//!
//! The rules:
//!
//! - **Bounded, never growing.** A send that finds `capacity` messages queued fails
//!   with [`MailboxError::Full`], which carries the message back: backpressure for the
//!   sender to apply (retry later, drop, slow its own peer), never a bigger queue. The
//!   memory is fixed when the mailbox is made: two rings of `capacity` messages, the
//!   shared queue and the batch the receiver last took out of it (which
//!   [`Mailbox::try_recv`] hands out one by one; a send finds room again as soon as the
//!   receiver took a batch).
//! - **One wake per batch.** Only a send into an empty mailbox wakes the driver; the
//!   sends that follow before the driver drains it cost a lock and a push, no syscall.
//!   The [`Waker`] coalesces further (one syscall until the driver consumed the last).
//! - **Drain after `Woken`.** The body, seeing
//!   [`Activity::Woken`](super::Activity::Woken), drains the mailbox until it is empty
//!   ([`Mailbox::drain`] or [`Mailbox::try_recv`] until `None`): a message sent while
//!   others were waiting brought no wake of its own.
//! - **In order per sender.** Messages from one thread arrive in the order it sent them.
//! - **A full sender is woken, not polling.** A sender that runs a driver of its own
//!   sends with [`MailboxSender::send_or_notify`], giving its driver's [`Waker`]: a
//!   `Full` then also registers that waker, in the same critical section that found
//!   the queue full, and the receiver's next [`Mailbox::drain`] or
//!   [`Mailbox::try_recv`] that takes a batch out wakes it once and forgets it (so no
//!   wake is lost between "full" and "registered"). The sender waits in its own
//!   `turn` for [`Activity::Woken`](super::Activity::Woken), no sleep, no spinning;
//!   the wake may be spurious (another sender took the room first): it tries again
//!   and registers again. A dropped mailbox wakes its waiters too, so nobody waits for
//!   a receiver that is gone. Registrations are deduplicated by driver
//!   ([`Waker::same_driver`]): the list holds at most one waker per driver that found
//!   the mailbox full, however often it tries, so it is bounded by the threads that
//!   send; it and the receiver's twin keep their allocation once grown.
//!
//! The queue is a mutex around a fixed-capacity ring, swapped wholesale with the
//! receiver's own ring on each drain, so the receiver holds the lock for a pointer swap
//! however many messages it takes, and each sender for one push. `benches/mailbox.rs`
//! compares it with `std::sync::mpsc::sync_channel` (a lock-free bounded queue) alone.
//! A mailbox built on `sync_channel` plus an atomic count of waiting messages (to know
//! when a send finds it empty; this crate forbids `unsafe`, so a lock-free ring of its
//! own is not an option) was tried and measured against this one, both feeding an
//! io_uring driver, medians of 5, three runs: 1.2x-1.4x this one's rate with one
//! sender, but 0.16x-0.38x with four senders on two CPUs, the case cross-core traffic
//! into one core is made of. The mutex stayed.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::Waker;

/// Why a message was not delivered (the message comes back in every case but `Wake`).
#[derive(Debug, thiserror::Error)]
pub enum MailboxError<M> {
    /// `capacity` messages are queued: backpressure. Try again after the driver
    /// drained it, or give up.
    #[error("the mailbox is full")]
    Full(M),
    /// The receiving [`Mailbox`] is gone (its driver's thread ended).
    #[error("the mailbox is closed")]
    Closed(M),
    /// The message was queued, but waking the driver failed: it will see the message
    /// at its next wake or drain, not necessarily now.
    #[error("the message was queued but the driver could not be woken")]
    Wake(#[source] io::Error),
}

impl<M> MailboxError<M> {
    /// The message that was not delivered (`None` for [`MailboxError::Wake`], whose message
    /// was queued).
    pub fn into_message(self) -> Option<M> {
        match self {
            MailboxError::Full(m) | MailboxError::Closed(m) => Some(m),
            MailboxError::Wake(_) => None,
        }
    }
}

struct State<M> {
    queue: VecDeque<M>,
    /// The receiver dropped: sends fail with `Closed`.
    closed: bool,
    /// A wake failed: the next send wakes even into a non-empty queue.
    wake_owed: bool,
    /// The drivers of senders that found the queue full, at most one waker per
    /// driver: woken when the receiver takes the next batch (or goes).
    waiters: Vec<Waker>,
}

struct Shared<M> {
    state: Mutex<State<M>>,
    capacity: usize,
    waker: Waker,
}

impl<M> Shared<M> {
    fn lock(&self) -> MutexGuard<'_, State<M>> {
        // The state is consistent at every unlock (a push or a swap), so a panic on
        // another thread while it held the lock leaves nothing half done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The receiving end: owned by the driver's thread, drained after
/// [`Activity::Woken`](super::Activity::Woken).
pub struct Mailbox<M> {
    shared: Arc<Shared<M>>,
    /// Messages taken from the shared queue in the last swap and not yet handed out.
    local: VecDeque<M>,
    /// The waiters taken out with the last batch, woken outside the lock (empty
    /// between drains; swapped with the shared list so neither allocates again).
    woken: Vec<Waker>,
}

/// A sending end: clone it for every thread that sends. `Send + Sync` when `M: Send`.
pub struct MailboxSender<M> {
    shared: Arc<Shared<M>>,
}

impl<M> Mailbox<M> {
    /// A mailbox that holds at most `capacity` waiting messages (at least 1) and wakes
    /// its driver through `waker`, with its first sender. Both rings are allocated here,
    /// once: sending and draining never allocate.
    pub fn new(capacity: usize, waker: Waker) -> (Mailbox<M>, MailboxSender<M>) {
        let capacity = capacity.max(1);
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                queue: VecDeque::with_capacity(capacity),
                closed: false,
                wake_owed: false,
                waiters: Vec::new(),
            }),
            capacity,
            waker,
        });
        let sender = MailboxSender {
            shared: Arc::clone(&shared),
        };
        let mailbox = Mailbox {
            shared,
            local: VecDeque::with_capacity(capacity),
            woken: Vec::new(),
        };
        (mailbox, sender)
    }

    /// Another sending end.
    pub fn sender(&self) -> MailboxSender<M> {
        MailboxSender {
            shared: Arc::clone(&self.shared),
        }
    }

    /// How many messages may wait at once.
    pub fn capacity(&self) -> usize {
        self.shared.capacity
    }

    /// Messages queued or taken and not yet handed out (a snapshot: senders may add
    /// more at once). At most twice the capacity.
    pub fn len(&self) -> usize {
        self.local.len() + self.shared.lock().queue.len()
    }

    /// Whether no message is waiting (a snapshot).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next message, if one is waiting.
    pub fn try_recv(&mut self) -> Option<M> {
        if self.local.is_empty() {
            self.refill();
        }
        self.local.pop_front()
    }

    /// Appends every waiting message to `out`, in arrival order; returns how many.
    pub fn drain(&mut self, out: &mut Vec<M>) -> usize {
        let before = out.len();
        out.extend(self.local.drain(..));
        self.refill();
        out.extend(self.local.drain(..));
        out.len() - before
    }

    /// Swaps the (empty) local ring with the shared one: the lock is held for a swap.
    /// The queue has room for `capacity` again, so the senders that found it full are
    /// woken (after the lock is let go: a wake may be a syscall).
    fn refill(&mut self) {
        debug_assert!(self.local.is_empty());
        let mut state = self.shared.lock();
        std::mem::swap(&mut state.queue, &mut self.local);
        if state.waiters.is_empty() {
            return;
        }
        std::mem::swap(&mut state.waiters, &mut self.woken);
        drop(state);
        self.wake_waiters();
    }

    /// Wakes the waiters taken out of the shared list, once each. A waker whose wake
    /// failed is registered again, so the next batch retries it rather than leave its
    /// sender waiting for a wake that never came.
    fn wake_waiters(&mut self) {
        let mut failed = false;
        self.woken.retain(|w| {
            let kept = w.wake().is_err();
            failed |= kept;
            kept
        });
        if failed {
            let mut state = self.shared.lock();
            for w in self.woken.drain(..) {
                register(&mut state.waiters, &w);
            }
        }
    }
}

/// Adds `waker` to `waiters` unless a waker of the same driver is there already: one
/// wake per driver is all a batch owes it.
fn register(waiters: &mut Vec<Waker>, waker: &Waker) {
    if !waiters.iter().any(|w| w.same_driver(waker)) {
        waiters.push(waker.clone());
    }
}

impl<M> MailboxSender<M> {
    /// Queues `msg` for the driver, waking it if the mailbox was empty. Fails at once,
    /// with the message, if the mailbox is full or closed.
    pub fn send(&self, msg: M) -> Result<(), MailboxError<M>> {
        self.push(msg, None)
    }

    /// [`send`](Self::send) for a sender that runs a driver: if the mailbox is full,
    /// `waker` (the sender's own driver's) is registered, in the same critical section,
    /// to be woken once when the receiver takes its next batch out or drops the
    /// mailbox. The sender waits for [`Activity::Woken`](super::Activity::Woken) in its
    /// own `turn` and sends again (room may be gone again by then: it registers again).
    /// A driver is registered at most once however often it finds the mailbox full.
    pub fn send_or_notify(&self, msg: M, waker: &Waker) -> Result<(), MailboxError<M>> {
        self.push(msg, Some(waker))
    }

    fn push(&self, msg: M, notify: Option<&Waker>) -> Result<(), MailboxError<M>> {
        let wake = {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(MailboxError::Closed(msg));
            }
            if state.queue.len() >= self.shared.capacity {
                if let Some(waker) = notify {
                    register(&mut state.waiters, waker);
                }
                return Err(MailboxError::Full(msg));
            }
            let wake = state.queue.is_empty() || state.wake_owed;
            state.queue.push_back(msg);
            state.wake_owed = false;
            wake
        };
        if wake {
            if let Err(e) = self.shared.waker.wake() {
                self.shared.lock().wake_owed = true;
                return Err(MailboxError::Wake(e));
            }
        }
        Ok(())
    }

    /// Whether the receiving [`Mailbox`] is gone.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Whether both senders feed the same mailbox.
    pub fn same_mailbox(&self, other: &MailboxSender<M>) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }
}

impl<M> Clone for MailboxSender<M> {
    fn clone(&self) -> Self {
        MailboxSender {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M> Drop for Mailbox<M> {
    fn drop(&mut self) {
        let (waiting, waiters) = {
            let mut state = self.shared.lock();
            state.closed = true;
            (std::mem::take(&mut state.queue), std::mem::take(&mut state.waiters))
        };
        // Dropped outside the lock: a message's own drop may do anything.
        drop(waiting);
        // A sender waiting for room learns, at its next send, that there is none to
        // wait for (`Closed`). Nobody is left to retry a failed wake.
        for w in waiters {
            let _ = w.wake();
        }
    }
}

impl<M> fmt::Debug for Mailbox<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("capacity", &self.shared.capacity)
            .field("waiting", &self.len())
            .finish_non_exhaustive()
    }
}

impl<M> fmt::Debug for MailboxSender<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MailboxSender")
            .field("capacity", &self.shared.capacity)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chassis::WakeSignal;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Mutex;

    /// Counts signals; fails them while `broken` is set.
    #[derive(Clone, Default)]
    struct Signals {
        count: Arc<AtomicUsize>,
        broken: Arc<AtomicBool>,
    }

    impl WakeSignal for Signals {
        fn signal(&self) -> io::Result<()> {
            if self.broken.load(Ordering::SeqCst) {
                return Err(io::Error::from(io::ErrorKind::BrokenPipe));
            }
            self.count.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn mailbox<M>(capacity: usize) -> (Mailbox<M>, MailboxSender<M>, Signals, crate::chassis::WakeLatch) {
        let signals = Signals::default();
        let (waker, latch) = Waker::new(signals.clone());
        let (mb, tx) = Mailbox::new(capacity, waker);
        (mb, tx, signals, latch)
    }

    #[test]
    fn a_full_mailbox_refuses_and_hands_the_message_back() {
        let (mut mb, tx, _, _) = mailbox::<String>(3);
        for i in 0..3 {
            tx.send(format!("m{i}")).unwrap();
        }
        match tx.send("m3".to_owned()) {
            Err(MailboxError::Full(m)) => assert_eq!(m, "m3"),
            other => panic!("a fourth message in a mailbox of 3: {other:?}"),
        }
        assert_eq!(mb.len(), 3);
        assert!(
            matches!(tx.send("m3".to_owned()), Err(MailboxError::Full(_))),
            "still full"
        );
        // The receiver takes the batch: the queue has room for `capacity` again, and
        // no more.
        assert_eq!(mb.try_recv().as_deref(), Some("m0"));
        for i in 3..6 {
            tx.send(format!("m{i}")).unwrap();
        }
        assert!(matches!(tx.send("m6".to_owned()), Err(MailboxError::Full(_))));
        assert_eq!(mb.len(), 5);
        let mut out = Vec::new();
        assert_eq!(mb.drain(&mut out), 5);
        assert_eq!(out, ["m1", "m2", "m3", "m4", "m5"]);
        assert!(mb.is_empty());
    }

    #[test]
    fn only_a_send_into_an_empty_mailbox_wakes() {
        let (mut mb, tx, signals, latch) = mailbox::<u32>(100);
        for i in 0..50 {
            tx.send(i).unwrap();
        }
        assert_eq!(signals.count.load(Ordering::SeqCst), 1, "50 sends, one wake");
        // The driver consumed the wake and the body drained: the next send wakes again.
        assert!(latch.consume());
        let mut out = Vec::new();
        assert_eq!(mb.drain(&mut out), 50);
        assert_eq!(out, (0..50).collect::<Vec<_>>());
        tx.send(50).unwrap();
        assert_eq!(signals.count.load(Ordering::SeqCst), 2);
        // Not drained yet: no further wakes however many sends.
        assert!(latch.consume());
        tx.send(51).unwrap();
        assert_eq!(signals.count.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_failed_wake_is_owed_to_the_next_send() {
        let (mut mb, tx, signals, latch) = mailbox::<u32>(8);
        signals.broken.store(true, Ordering::SeqCst);
        assert!(matches!(tx.send(1), Err(MailboxError::Wake(_))));
        signals.broken.store(false, Ordering::SeqCst);
        // The queue is not empty, but the first message never woke the driver.
        tx.send(2).unwrap();
        assert_eq!(signals.count.load(Ordering::SeqCst), 1);
        assert!(latch.consume());
        assert_eq!((mb.try_recv(), mb.try_recv(), mb.try_recv()), (Some(1), Some(2), None));
    }

    #[test]
    fn sends_to_a_dropped_mailbox_fail_and_waiting_messages_are_dropped() {
        let (mb, tx, _, _) = mailbox::<Arc<()>>(4);
        let token = Arc::new(());
        tx.send(Arc::clone(&token)).unwrap();
        assert!(!tx.is_closed());
        drop(mb);
        assert!(tx.is_closed());
        assert_eq!(
            Arc::strong_count(&token),
            1,
            "the waiting message went with the mailbox"
        );
        assert!(matches!(tx.send(token), Err(MailboxError::Closed(_))));
    }

    #[test]
    fn every_sender_delivers_in_order_across_threads() {
        const SENDERS: u64 = 4;
        const EACH: u64 = 20_000;
        let (mut mb, tx, _, _) = mailbox::<(u64, u64)>(64);
        let mut next = [0u64; SENDERS as usize];
        std::thread::scope(|s| {
            for id in 0..SENDERS {
                let tx = tx.clone();
                s.spawn(move || {
                    let mut i = 0;
                    while i < EACH {
                        match tx.send((id, i)) {
                            Ok(()) => i += 1,
                            Err(MailboxError::Full(_)) => std::thread::yield_now(),
                            Err(e) => panic!("{e}"),
                        }
                    }
                });
            }
            let mut got = 0;
            let mut out = Vec::new();
            while got < SENDERS * EACH {
                out.clear();
                mb.drain(&mut out);
                assert!(out.len() <= 2 * 64, "more than two rings' worth at once");
                for &(id, i) in &out {
                    assert_eq!(i, next[id as usize], "sender {id} out of order");
                    next[id as usize] += 1;
                }
                got += out.len() as u64;
                std::thread::yield_now();
            }
        });
        assert!(next.iter().all(|&n| n == EACH));
        assert!(mb.try_recv().is_none());
    }

    /// A sending thread's own driver: its waker and how often it was signalled.
    fn sender_driver() -> (Waker, Signals, crate::chassis::WakeLatch) {
        let signals = Signals::default();
        let (waker, latch) = Waker::new(signals.clone());
        (waker, signals, latch)
    }

    fn wakes(signals: &Signals) -> usize {
        signals.count.load(Ordering::SeqCst)
    }

    #[test]
    fn a_full_sender_is_woken_once_by_the_drain_that_makes_room() {
        let (mut mb, tx, _, _) = mailbox::<u32>(2);
        let (waker, signals, latch) = sender_driver();
        tx.send_or_notify(0, &waker).unwrap();
        tx.send_or_notify(1, &waker).unwrap();
        assert_eq!(wakes(&signals), 0, "room: nothing registered, nothing woken");
        for _ in 0..5 {
            match tx.send_or_notify(2, &waker) {
                Err(MailboxError::Full(m)) => assert_eq!(m, 2),
                other => panic!("a third message in a mailbox of 2: {other:?}"),
            }
        }
        assert_eq!(wakes(&signals), 0, "full: registered, not woken yet");
        assert_eq!(mb.shared.lock().waiters.len(), 1, "five tries, one registration");
        let mut out = Vec::new();
        assert_eq!(mb.drain(&mut out), 2);
        assert_eq!(wakes(&signals), 1, "the batch taken out woke the sender");
        assert!(latch.consume());
        assert!(mb.shared.lock().waiters.is_empty(), "woken once, then forgotten");
        out.clear();
        assert_eq!(mb.drain(&mut out), 0);
        tx.send_or_notify(2, &waker).unwrap();
        assert_eq!(mb.drain(&mut out), 1);
        assert_eq!(wakes(&signals), 1, "no registration since: no further wake");
        assert_eq!(out, [2]);
    }

    #[test]
    fn try_recv_taking_a_batch_wakes_the_waiters_too() {
        let (mut mb, tx, _, _) = mailbox::<u32>(1);
        let (waker, signals, _latch) = sender_driver();
        tx.send(0).unwrap();
        assert!(matches!(tx.send_or_notify(1, &waker), Err(MailboxError::Full(1))));
        assert_eq!(mb.try_recv(), Some(0));
        assert_eq!(wakes(&signals), 1);
        tx.send_or_notify(1, &waker).unwrap();
        assert_eq!((mb.try_recv(), mb.try_recv()), (Some(1), None));
        assert_eq!(wakes(&signals), 1);
    }

    #[test]
    fn no_wake_for_a_sender_that_did_not_ask() {
        let (mut mb, tx, _, _) = mailbox::<u32>(1);
        let (waker, signals, _latch) = sender_driver();
        tx.send_or_notify(0, &waker).unwrap();
        // A plain `send` that finds it full registers nobody.
        assert!(matches!(tx.send(1), Err(MailboxError::Full(1))));
        let mut out = Vec::new();
        assert_eq!(mb.drain(&mut out), 1);
        assert_eq!(wakes(&signals), 0);
        assert!(mb.shared.lock().waiters.is_empty());
    }

    #[test]
    fn every_waiting_driver_is_woken_each_once() {
        let (mut mb, tx, _, _) = mailbox::<u32>(1);
        let (a, a_signals, _a_latch) = sender_driver();
        let (b, b_signals, _b_latch) = sender_driver();
        tx.send(0).unwrap();
        // Two threads of driver `a` (clones of its waker) and one of `b`.
        let a2 = a.clone();
        assert!(tx.send_or_notify(1, &a).is_err());
        assert!(tx.send_or_notify(2, &a2).is_err());
        assert!(tx.send_or_notify(3, &b).is_err());
        assert_eq!(mb.shared.lock().waiters.len(), 2, "one registration per driver");
        assert_eq!(mb.try_recv(), Some(0));
        assert_eq!((wakes(&a_signals), wakes(&b_signals)), (1, 1));
    }

    #[test]
    fn a_failed_wake_of_a_waiter_is_retried_at_the_next_batch() {
        let (mut mb, tx, _, _) = mailbox::<u32>(1);
        let (waker, signals, _latch) = sender_driver();
        tx.send(0).unwrap();
        assert!(tx.send_or_notify(1, &waker).is_err());
        signals.broken.store(true, Ordering::SeqCst);
        assert_eq!(mb.try_recv(), Some(0));
        assert_eq!(wakes(&signals), 0);
        assert_eq!(mb.shared.lock().waiters.len(), 1, "still registered");
        signals.broken.store(false, Ordering::SeqCst);
        assert_eq!(mb.try_recv(), None);
        assert_eq!(wakes(&signals), 1);
        assert!(mb.shared.lock().waiters.is_empty());
    }

    #[test]
    fn a_dropped_mailbox_wakes_its_waiters() {
        let (mb, tx, _, _) = mailbox::<u32>(1);
        let (waker, signals, _latch) = sender_driver();
        tx.send(0).unwrap();
        assert!(tx.send_or_notify(1, &waker).is_err());
        drop(mb);
        assert_eq!(wakes(&signals), 1, "nobody waits for a receiver that is gone");
        assert!(matches!(tx.send_or_notify(1, &waker), Err(MailboxError::Closed(1))));
    }

    #[test]
    fn a_sender_waiting_on_its_waker_delivers_everything_in_order() {
        // The sender never spins: on `Full` it blocks until its "driver" is woken (a
        // condition variable standing in for `turn`), then tries again.
        const EACH: u64 = 20_000;
        let (mut mb, tx, _, _) = mailbox::<u64>(16);
        let woken = Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        struct Cond(Arc<(Mutex<bool>, std::sync::Condvar)>);
        impl WakeSignal for Cond {
            fn signal(&self) -> io::Result<()> {
                *self.0 .0.lock().unwrap() = true;
                self.0 .1.notify_one();
                Ok(())
            }
        }
        let (waker, latch) = Waker::new(Cond(Arc::clone(&woken)));
        let mut got = Vec::new();
        std::thread::scope(|s| {
            s.spawn(move || {
                let mut i = 0;
                while i < EACH {
                    match tx.send_or_notify(i, &waker) {
                        Ok(()) => i += 1,
                        Err(MailboxError::Full(_)) => {
                            let mut w = woken.0.lock().unwrap();
                            while !*w {
                                w = woken.1.wait(w).unwrap();
                            }
                            *w = false;
                            drop(w);
                            latch.consume();
                        }
                        Err(e) => panic!("{e}"),
                    }
                }
            });
            while (got.len() as u64) < EACH {
                mb.drain(&mut got);
                std::thread::yield_now();
            }
        });
        assert_eq!(got, (0..EACH).collect::<Vec<_>>());
    }

    #[test]
    fn senders_are_send_sync_and_clone() {
        fn check<T: Send + Sync + Clone>() {}
        check::<MailboxSender<String>>();
        fn check_send<T: Send>() {}
        check_send::<Mailbox<String>>();
    }
}
