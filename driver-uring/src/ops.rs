//! Operations that reference memory, and the memory they reference.
//!
//! A submission that carries an address (send data, iovecs, a `msghdr`, a socket
//! address) returns an [`InFlight`] that owns that memory. The driver keeps it with the
//! connection and hands it back through [`Ring::complete`] once the operation's final
//! completion arrived. An `InFlight` dropped any other way leaks its memory instead of
//! freeing it, so a mistake in the driver can leak but never let the kernel read freed
//! memory.

use std::alloc::{self, Layout};
use std::io;
use std::os::fd::RawFd;
use std::ptr::NonNull;

use bytes::Bytes;
use io_uring::{opcode, types};
use monocoque_proto::IoArena;

use crate::ring::Ring;
use crate::sys::RawAddr;

/// The most iovecs one vectored send carries (the kernel's `UIO_MAXIOV`).
const MAX_IOVECS: usize = 1024;

/// Registered send buffers: `count` slots of `size` bytes, one fixed-buffer index each.
pub(crate) struct SendSlab {
    base: Option<NonNull<u8>>,
    layout: Layout,
    size: usize,
    free: Vec<u16>,
    registered: bool,
}

impl SendSlab {
    /// Allocates the slots and registers them as fixed buffers. A kernel that refuses
    /// the registration (locked-memory limit) leaves them unregistered: sends then use
    /// `SEND` from the same memory.
    pub(crate) fn new(submitter: &io_uring::Submitter<'_>, count: u16, size: u32) -> io::Result<Self> {
        let size = size as usize;
        let total = size * count as usize;
        let layout =
            Layout::from_size_align(total.max(1), 4096).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        if count == 0 {
            return Ok(Self {
                base: None,
                layout,
                size,
                free: Vec::new(),
                registered: false,
            });
        }
        // SAFETY: non-zero size.
        let base = NonNull::new(unsafe { alloc::alloc_zeroed(layout) })
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let iovecs: Vec<libc::iovec> = (0..count as usize)
            .map(|i| libc::iovec {
                iov_base: base.as_ptr().wrapping_add(i * size).cast(),
                iov_len: size,
            })
            .collect();
        // SAFETY: the iovecs describe this allocation, which stays allocated until the
        // slab drops; the ring owning the registration is dropped before the slab.
        let registered = unsafe { submitter.register_buffers(&iovecs) }.is_ok();
        Ok(Self {
            base: Some(base),
            layout,
            size,
            free: (0..count).rev().collect(),
            registered,
        })
    }

    pub(crate) fn registered(&self) -> bool {
        self.registered
    }

    /// Free slots (tests, diagnostics).
    pub(crate) fn free_slots(&self) -> usize {
        self.free.len()
    }
}

impl Drop for SendSlab {
    fn drop(&mut self) {
        if let Some(base) = self.base {
            // SAFETY: allocated in `new` with this layout; the ring dropped first and
            // every send completed (or the ring leaks this slab instead of dropping it).
            unsafe { alloc::dealloc(base.as_ptr(), self.layout) }
        }
    }
}

/// Memory an in-flight operation references.
enum Held {
    Connect {
        _addr: Box<RawAddr>,
    },
    /// A send slot (its index is the fixed-buffer index).
    Slot(u16),
    /// The 8 bytes an eventfd read fills.
    Counter {
        _buf: Box<[u8; 8]>,
    },
    /// One segment sent with `SEND` (boxed, like the next: every connection holds an
    /// `InFlight` slot, and a pointer-sized `Held` keeps it small while idle).
    Segment {
        _seg: Box<Bytes>,
    },
    /// Segments sent with `SENDMSG`.
    Segments {
        _held: Box<HeldSegments>,
    },
}

/// The memory of a `SENDMSG`: the iovecs point into `segs`, `msg` at the iovecs.
struct HeldSegments {
    _segs: Vec<Bytes>,
    _iov: Box<[libc::iovec]>,
    _msg: Box<libc::msghdr>,
}

/// The memory of one operation the kernel may still read; see the module doc.
pub(crate) struct InFlight {
    held: Option<Held>,
    /// Bytes a send handed to the kernel (0 for other operations).
    len: usize,
}

impl InFlight {
    fn new(held: Held, len: usize) -> Self {
        Self { held: Some(held), len }
    }

    /// Bytes a send handed to the kernel.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        // Not handed back through `Ring::complete`: the kernel may still read it.
        if let Some(held) = self.held.take() {
            std::mem::forget(held);
        }
    }
}

impl Ring {
    /// Releases the memory of an operation whose final completion was reaped.
    pub(crate) fn complete(&mut self, mut op: InFlight) {
        if let Some(Held::Slot(slot)) = op.held.take() {
            self.sends.free.push(slot);
        }
        // Any other memory drops here, with `op.held` already emptied.
    }

    /// Starts a multishot receive on `fd` into the provided-buffer ring.
    pub(crate) fn recv_multi(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::RecvMulti::new(types::Fd(fd), self.bufs.bgid())
            .build()
            .user_data(user_data);
        // SAFETY: the only memory is the registered buffer ring, which lives as long as
        // the ring.
        unsafe { self.push(&entry) }
    }

    /// Starts a single-shot receive on `fd` into the provided-buffer ring (the fallback
    /// for multishot receive: the driver re-arms it after each completion).
    pub(crate) fn recv_once(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::Recv::new(types::Fd(fd), std::ptr::null_mut(), 0)
            .buf_group(self.bufs.bgid())
            .build()
            .flags(io_uring::squeue::Flags::BUFFER_SELECT)
            .user_data(user_data);
        // SAFETY: with BUFFER_SELECT the kernel picks a buffer of the registered ring,
        // which lives as long as the ring; no address of ours is passed.
        unsafe { self.push(&entry) }
    }

    /// Starts a single-shot accept on `fd` (the fallback for multishot accept).
    pub(crate) fn accept_once(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::Accept::new(types::Fd(fd), std::ptr::null_mut(), std::ptr::null_mut())
            .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
            .build()
            .user_data(user_data);
        // SAFETY: no address buffer is passed (null address and length).
        unsafe { self.push(&entry) }
    }

    /// Starts a multishot accept on the listening socket `fd`.
    pub(crate) fn accept_multi(&mut self, fd: RawFd, user_data: u64) -> io::Result<()> {
        let entry = opcode::AcceptMulti::new(types::Fd(fd))
            .flags(libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK)
            .build()
            .user_data(user_data);
        // SAFETY: multishot accept passes no address buffer.
        unsafe { self.push(&entry) }
    }

    /// Starts reading the 8-byte counter of the eventfd `fd` (the driver's wake
    /// source): completes once another thread writes it.
    pub(crate) fn read_counter(&mut self, fd: RawFd, user_data: u64) -> io::Result<InFlight> {
        let mut buf = Box::new([0u8; 8]);
        let entry = opcode::Read::new(types::Fd(fd), buf.as_mut_ptr(), 8)
            .build()
            .user_data(user_data);
        // SAFETY: the buffer lives in a box owned by the returned InFlight, which the
        // driver hands back only after the final completion (or leaks); a box does not
        // move its contents, and nothing else writes or reads them meanwhile.
        unsafe { self.push(&entry) }?;
        Ok(InFlight::new(Held::Counter { _buf: buf }, 0))
    }

    /// Starts connecting `fd` to `addr`.
    pub(crate) fn connect(&mut self, fd: RawFd, addr: RawAddr, user_data: u64) -> io::Result<InFlight> {
        let addr = Box::new(addr);
        let entry = opcode::Connect::new(types::Fd(fd), addr.as_ptr(), addr.len())
            .build()
            .user_data(user_data);
        // SAFETY: the sockaddr lives in a box owned by the returned InFlight, which the
        // driver hands back only after the final completion (or leaks).
        unsafe { self.push(&entry) }?;
        Ok(InFlight::new(Held::Connect { _addr: addr }, 0))
    }

    /// Starts sending the front of `arena` on `fd`: copied into a registered buffer when
    /// it fits one and one is free, vectored from the arena's segments otherwise. The
    /// caller advances the arena by the completion's result.
    pub(crate) fn send(&mut self, fd: RawFd, arena: &mut IoArena, user_data: u64) -> io::Result<InFlight> {
        let len = arena.len();
        if len <= self.sends.size {
            if let (Some(base), Some(slot)) = (self.sends.base, self.sends.free.pop()) {
                let dst = base.as_ptr().wrapping_add(slot as usize * self.sends.size);
                let mut off = 0;
                for chunk in arena.chunks() {
                    // SAFETY: the slot is `size` bytes at `dst` inside the slab, and the
                    // chunks total `len <= size` bytes; the slot was free, so no
                    // operation reads it; the source is arena memory, a distinct
                    // allocation.
                    unsafe { std::ptr::copy_nonoverlapping(chunk.as_ptr(), dst.add(off), chunk.len()) };
                    off += chunk.len();
                }
                let entry = if self.features().write_fixed {
                    opcode::WriteFixed::new(types::Fd(fd), dst, len as u32, slot).build()
                } else {
                    opcode::Send::new(types::Fd(fd), dst, len as u32)
                        .flags(libc::MSG_NOSIGNAL)
                        .build()
                };
                // SAFETY: the slot stays out of the free list, so unwritten, until the
                // returned InFlight comes back through `complete` after the final
                // completion; the slab outlives the ring's operations.
                if let Err(e) = unsafe { self.push(&entry.user_data(user_data)) } {
                    self.sends.free.push(slot);
                    return Err(e);
                }
                self.stats.sends_copied += 1;
                return Ok(InFlight::new(Held::Slot(slot), len));
            }
        }
        self.stats.sends_vectored += 1;
        arena.seal();
        let segs: Vec<Bytes> = arena.sealed().take(MAX_IOVECS).cloned().collect();
        if let [seg] = segs.as_slice() {
            let seg = seg.clone();
            let n = seg.len().min(u32::MAX as usize) as u32;
            let entry = opcode::Send::new(types::Fd(fd), seg.as_ptr(), n)
                .flags(libc::MSG_NOSIGNAL)
                .build()
                .user_data(user_data);
            // SAFETY: the returned InFlight holds a reference to the segment's memory,
            // which `Bytes` never moves or mutates, until the final completion.
            unsafe { self.push(&entry) }?;
            return Ok(InFlight::new(Held::Segment { _seg: Box::new(seg) }, n as usize));
        }
        let iov: Box<[libc::iovec]> = segs
            .iter()
            .map(|b| libc::iovec {
                iov_base: b.as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            })
            .collect();
        // SAFETY: msghdr is a plain C struct for which all-zero is a valid value (no
        // name, no control data).
        let mut msg: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = iov.len() as _;
        let entry = opcode::SendMsg::new(types::Fd(fd), &*msg)
            .flags(libc::MSG_NOSIGNAL as u32)
            .build()
            .user_data(user_data);
        // SAFETY: the msghdr, the iovecs it points at and the segments they point into
        // are all owned by the returned InFlight (boxes and `Bytes` do not move their
        // contents) until the final completion.
        unsafe { self.push(&entry) }?;
        let len = segs.iter().map(Bytes::len).sum();
        Ok(InFlight::new(
            // Moving the boxes and the vector moves no memory the kernel reads.
            Held::Segments {
                _held: Box::new(HeldSegments {
                    _segs: segs,
                    _iov: iov,
                    _msg: msg,
                }),
            },
            len,
        ))
    }
}
