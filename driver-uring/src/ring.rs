//! The ring itself: setup with the best flags the kernel accepts, feature checks, the
//! one `io_uring_enter` per loop iteration, reaping, and teardown that waits until the
//! kernel has let go of every buffer.
//!
//! Every submission goes through [`Ring::push`]; the operations that reference memory
//! are built in [`crate::ops`], which keeps that memory alive until the completion.

use std::io;
use std::mem::ManuallyDrop;
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, SubmitArgs, Timespec};
use io_uring::{cqueue, opcode, squeue, EnterFlags, IoUring, Probe};

use crate::bufring::BufRing;
use crate::ops::SendSlab;
use crate::{sys, UringConfig, UringError};

/// The buffer group id of the receive ring (one per driver).
const RECV_BGID: u16 = 0;

/// Which setup flags the kernel accepted and which send path is in use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RingFeatures {
    /// `IORING_SETUP_SINGLE_ISSUER`: only this thread submits (Linux 6.0).
    pub single_issuer: bool,
    /// `IORING_SETUP_DEFER_TASKRUN`: completion work runs only inside this thread's
    /// `io_uring_enter` (Linux 6.1).
    pub defer_taskrun: bool,
    /// `IORING_SETUP_COOP_TASKRUN`: no inter-processor interrupt to run completion
    /// work (Linux 5.19).
    pub coop_taskrun: bool,
    /// `IORING_SETUP_SUBMIT_ALL`: a failing submission does not stop the rest of the
    /// batch (Linux 5.18).
    pub submit_all: bool,
    /// The send buffers are registered with the kernel (fixed buffers).
    pub registered_send_buffers: bool,
    /// Copied sends use `WRITE_FIXED` on the registered buffers (needs `SIGPIPE`
    /// ignored, as Rust programs have it); otherwise `SEND` with `MSG_NOSIGNAL` from the
    /// same memory.
    pub write_fixed: bool,
}

/// One line of [`UringDriver::feature_report`](crate::UringDriver::feature_report): a
/// kernel feature, whether the driver uses it, and if not, the fallback and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeatureLine {
    /// The feature's name, as io_uring calls it.
    pub name: &'static str,
    /// Whether the driver uses it.
    pub active: bool,
    /// What it gives when active; the fallback in force and the reason otherwise.
    pub detail: String,
}

/// Counters of what the driver did, for tests, diagnostics and benchmarks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct UringStats {
    /// `io_uring_enter` calls (one per loop iteration, plus early flushes of a full
    /// submission queue).
    pub enters: u64,
    /// Operations submitted.
    pub submissions: u64,
    /// Sends copied into a registered buffer.
    pub sends_copied: u64,
    /// Sends made vectored from the arena's segments.
    pub sends_vectored: u64,
    /// Sends the kernel took only part of (the rest was sent by a later send).
    pub partial_sends: u64,
    /// Receives that ended because every receive buffer was held (`ENOBUFS`).
    pub recv_starved: u64,
    /// Receive buffers handed to sessions.
    pub recv_buffers_used: u64,
    /// Of those, receives copied into their own heap buffer because the ring was below
    /// its low-water mark (`UringConfig::recv_low_water`).
    pub recv_copied: u64,
}

/// How long [`Ring::enter`] may block.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    /// Submit and reap what is ready, without blocking.
    Poll,
    /// Block until at least one completion.
    Forever,
    /// Block until at least one completion or the duration passes.
    For(Duration),
}

/// One completion, copied out of the queue.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cqe {
    pub(crate) user_data: u64,
    pub(crate) result: i32,
    pub(crate) flags: u32,
}

impl Cqe {
    /// Whether the operation will post more completions (multishot).
    pub(crate) fn more(&self) -> bool {
        cqueue::more(self.flags)
    }

    /// The provided buffer this completion consumed, if any.
    pub(crate) fn buffer(&self) -> Option<u16> {
        cqueue::buffer_select(self.flags)
    }
}

/// The io_uring instance of one driver, with its receive ring and send buffers.
pub(crate) struct Ring {
    /// Dropped explicitly, before `bufs` and `sends` (see `Drop`).
    io: ManuallyDrop<IoUring>,
    pub(crate) bufs: ManuallyDrop<BufRing>,
    pub(crate) sends: ManuallyDrop<SendSlab>,
    features: RingFeatures,
    pub(crate) stats: UringStats,
    /// Operations whose final completion has not been reaped yet (pushed ones count).
    inflight: usize,
    /// Set by `shutdown` once `inflight` reached zero: the kernel holds no address of
    /// ours, so the memory may be freed.
    drained: bool,
}

/// The flag sets tried, best first: (single issuer, defer taskrun, coop taskrun, submit all).
const SETUPS: [(bool, bool, bool, bool); 4] = [
    (true, true, true, true),
    (true, false, true, true),
    (false, false, true, true),
    (false, false, false, false),
];

impl Ring {
    pub(crate) fn new(cfg: &UringConfig) -> Result<Self, UringError> {
        cfg.validate()?;
        let setups: &[(bool, bool, bool, bool)] = if cfg.plain_ring { &SETUPS[3..] } else { &SETUPS };
        let mut last = None;
        let mut built = None;
        for &(single, defer, coop, all) in setups {
            let mut b = IoUring::builder();
            b.setup_cqsize(cfg.cq_entries);
            if single {
                b.setup_single_issuer();
            }
            if defer {
                b.setup_defer_taskrun();
            }
            if coop {
                b.setup_coop_taskrun();
            }
            if all {
                b.setup_submit_all();
            }
            match b.build(cfg.sq_entries) {
                Ok(io) => {
                    built = Some((io, (single, defer, coop, all)));
                    break;
                }
                // An unknown flag: try the next, more conservative set.
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = Some(e),
                Err(e) => return Err(UringError::from_setup(e)),
            }
        }
        let Some((io, (single_issuer, defer_taskrun, coop_taskrun, submit_all))) = built else {
            return Err(UringError::from_setup(
                last.unwrap_or_else(|| io::Error::from_raw_os_error(libc::EINVAL)),
            ));
        };
        check_features(&io)?;

        let bufs = BufRing::register(
            &io.submitter(),
            RECV_BGID,
            cfg.recv_buffers,
            cfg.recv_buffer_size,
            cfg.effective_low_water(),
        )
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EINVAL | libc::EOPNOTSUPP) => UringError::Unsupported {
                feature: "provided-buffer rings",
                needs: "Linux 5.19",
            },
            _ => UringError::Setup {
                step: "registering the receive buffer ring",
                source: e,
            },
        })?;
        let sends = match SendSlab::new(&io.submitter(), cfg.send_buffers, cfg.send_buffer_size) {
            Ok(sends) => sends,
            Err(source) => {
                // The ring (and its registration) goes before the buffer ring's memory.
                drop(io);
                drop(bufs);
                return Err(UringError::Setup {
                    step: "allocating the send buffers",
                    source,
                });
            }
        };
        let features = RingFeatures {
            single_issuer,
            defer_taskrun,
            coop_taskrun,
            submit_all,
            registered_send_buffers: sends.registered(),
            write_fixed: sends.registered() && sys::sigpipe_ignored(),
        };
        Ok(Self {
            io: ManuallyDrop::new(io),
            bufs: ManuallyDrop::new(bufs),
            sends: ManuallyDrop::new(sends),
            features,
            stats: UringStats::default(),
            inflight: 0,
            drained: false,
        })
    }

    pub(crate) fn features(&self) -> RingFeatures {
        self.features
    }

    /// Operations still owed a final completion.
    pub(crate) fn inflight(&self) -> usize {
        self.inflight
    }

    /// Queues one submission (flushing the queue first if it is full).
    ///
    /// # Safety
    /// Every address `entry` carries (buffers, iovecs, `msghdr`, socket addresses) must
    /// stay valid, and unwritten by userspace where the kernel reads it, until the
    /// operation's final completion has been reaped.
    pub(crate) unsafe fn push(&mut self, entry: &squeue::Entry) -> io::Result<()> {
        for _ in 0..2 {
            // SAFETY: forwarded from this function's contract.
            if unsafe { self.io.submission().push(entry) }.is_ok() {
                self.inflight += 1;
                self.stats.submissions += 1;
                return Ok(());
            }
            // Queue full: hand what is queued to the kernel now and retry once.
            self.stats.enters += 1;
            self.io.submit()?;
        }
        Err(io::Error::other("io_uring submission queue stays full"))
    }

    /// Queues a memory-free cancellation of the operation tagged `target`.
    pub(crate) fn cancel(&mut self, target: u64, user_data: u64) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(target).build().user_data(user_data);
        // SAFETY: a cancellation names its target by user_data and references no memory.
        unsafe { self.push(&entry) }
    }

    /// Submits everything queued and waits as `wait` says, in one `io_uring_enter`.
    /// Always passes `GETEVENTS`, which with `DEFER_TASKRUN` is what runs the
    /// completion work.
    pub(crate) fn enter(&mut self, wait: Wait) -> io::Result<()> {
        self.stats.enters += 1;
        let to_submit = self.io.submission().len() as u32;
        let get = EnterFlags::GETEVENTS.bits();
        let submitter = self.io.submitter();
        let res = match wait {
            // SAFETY: no argument pointer is passed.
            Wait::Poll => unsafe { submitter.enter::<libc::sigset_t>(to_submit, 0, get, None) },
            // SAFETY: as above.
            Wait::Forever => unsafe { submitter.enter::<libc::sigset_t>(to_submit, 1, get, None) },
            Wait::For(d) => {
                let ts = Timespec::from(d);
                let args = SubmitArgs::new().timespec(&ts);
                // SAFETY: with EXT_ARG the argument is an io_uring_getevents_arg
                // (`SubmitArgs` is a transparent wrapper of it) whose timespec pointer
                // refers to `ts`; both live on this stack frame across the call.
                unsafe { submitter.enter(to_submit, 1, get | EnterFlags::EXT_ARG.bits(), Some(&args)) }
            }
        };
        match res {
            Ok(_) => Ok(()),
            // Timeout, a signal, or a full completion queue to reap first: all are
            // ordinary wakeups for the loop.
            Err(e)
                if matches!(
                    e.raw_os_error(),
                    Some(libc::ETIME | libc::EINTR | libc::EBUSY | libc::EAGAIN)
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Moves every ready completion into `out`.
    pub(crate) fn reap(&mut self, out: &mut Vec<Cqe>) {
        for c in self.io.completion() {
            let cqe = Cqe {
                user_data: c.user_data(),
                result: c.result(),
                flags: c.flags(),
            };
            if !cqe.more() {
                self.inflight = self.inflight.saturating_sub(1);
            }
            out.push(cqe);
        }
    }

    /// Cancels every operation and waits (up to `limit`) for their final completions,
    /// so the memory they reference can be freed. Returns whether the kernel let go of
    /// everything; if not, `Drop` leaks the memory instead of freeing it.
    pub(crate) fn shutdown(&mut self, limit: Duration) -> bool {
        if self.inflight > 0 {
            let entry = opcode::AsyncCancel2::new(CancelBuilder::any()).build().user_data(0);
            // SAFETY: references no memory.
            let _ = unsafe { self.push(&entry) };
        }
        let end = Instant::now() + limit;
        let mut cqes = Vec::new();
        while self.inflight > 0 {
            let now = Instant::now();
            if now >= end || self.enter(Wait::For(end - now)).is_err() {
                break;
            }
            cqes.clear();
            self.reap(&mut cqes);
            for bid in cqes.iter().filter_map(Cqe::buffer) {
                self.bufs.give_back(bid);
            }
        }
        self.drained = self.inflight == 0;
        self.drained
    }
}

/// Fails with [`UringError::Unsupported`] unless the kernel has everything the driver
/// uses.
fn check_features(io: &IoUring) -> Result<(), UringError> {
    let params = io.params();
    if !params.is_feature_nodrop() {
        return Err(UringError::Unsupported {
            feature: "FEAT_NODROP (no lost completions)",
            needs: "Linux 5.5",
        });
    }
    if !params.is_feature_ext_arg() {
        return Err(UringError::Unsupported {
            feature: "EXT_ARG (timed waits)",
            needs: "Linux 5.11",
        });
    }
    let mut probe = Probe::new();
    io.submitter()
        .register_probe(&mut probe)
        .map_err(|_| UringError::Unsupported {
            feature: "the opcode probe",
            needs: "Linux 5.6",
        })?;
    let needed: [(u8, &'static str, &'static str); 9] = [
        (opcode::Recv::CODE, "RECV", "Linux 5.6"),
        (opcode::Read::CODE, "READ", "Linux 5.6"),
        (opcode::Send::CODE, "SEND", "Linux 5.6"),
        (opcode::SendMsg::CODE, "SENDMSG", "Linux 5.3"),
        (opcode::WriteFixed::CODE, "WRITE_FIXED", "Linux 5.1"),
        (opcode::Accept::CODE, "ACCEPT", "Linux 5.5"),
        (opcode::Connect::CODE, "CONNECT", "Linux 5.5"),
        (opcode::AsyncCancel::CODE, "ASYNC_CANCEL", "Linux 5.5"),
        // Multishot receive has no opcode of its own; it arrived in the same release as
        // SEND_ZC, so that opcode's presence vouches for it.
        (opcode::SendZc::CODE, "multishot receive", "Linux 6.0"),
    ];
    for (code, feature, needs) in needed {
        if !probe.is_supported(code) {
            return Err(UringError::Unsupported { feature, needs });
        }
    }
    Ok(())
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: each field is dropped exactly once, here, and never used after. The
        // ring goes first, so its registrations end before their memory is freed.
        unsafe { ManuallyDrop::drop(&mut self.io) };
        if self.drained {
            // SAFETY: as above; the kernel holds no address in these any more.
            unsafe {
                ManuallyDrop::drop(&mut self.bufs);
                ManuallyDrop::drop(&mut self.sends);
            }
        }
        // Otherwise operations may still be running in the kernel's teardown: the
        // receive ring and send buffers are leaked rather than freed under it.
    }
}
