//! The driver's wake source: an eventfd whose 8-byte read is kept armed in the ring.
//!
//! Why an eventfd rather than `IORING_OP_MSG_RING`: a message between rings needs a ring
//! on the sending side, and with `SINGLE_ISSUER` only the thread that owns a ring may
//! submit on it, so a plain application thread (or a mio driver) could not wake an
//! io_uring driver at all. An eventfd can be written from any thread. Its cost is one
//! `write` per wake on the sender (wakes coalesce in [`monocoque_proto::Waker`], so a
//! busy driver gets at most one per turn) and no syscall on the driver: the read is an
//! ordinary ring operation that completes inside the `io_uring_enter` the driver makes
//! anyway, and is re-armed with the next submission batch.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::Arc;

use monocoque_proto::WakeSignal;

/// An eventfd shared by the driver (which reads it through the ring) and every waker
/// (which writes it). The descriptor closes when the last of them drops, so a waker
/// that outlives its driver writes into a counter nobody reads, harmlessly.
#[derive(Clone, Debug)]
pub(crate) struct EventFd(Arc<OwnedFd>);

impl EventFd {
    /// A new non-blocking, close-on-exec eventfd with a zero counter.
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: eventfd(2) takes no pointers; a non-negative result is a new
        // descriptor nothing else owns.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` was just created and is owned by nothing else.
        Ok(Self(Arc::new(unsafe { OwnedFd::from_raw_fd(fd) })))
    }

    pub(crate) fn raw(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

impl WakeSignal for EventFd {
    fn signal(&self) -> io::Result<()> {
        let one: u64 = 1;
        loop {
            // SAFETY: writes the 8 bytes of a live u64 to an open descriptor this value
            // owns a share of.
            let n = unsafe { libc::write(self.raw(), (&one as *const u64).cast(), 8) };
            if n == 8 {
                return Ok(());
            }
            let err = io::Error::last_os_error();
            match err.kind() {
                io::ErrorKind::Interrupted => continue,
                // The counter is at its maximum: the driver has a wake pending anyway.
                io::ErrorKind::WouldBlock => return Ok(()),
                _ => return Err(err),
            }
        }
    }
}
