//! The provided-buffer ring: receive memory the kernel picks from, handed to sessions as
//! zero-copy [`Bytes`] views, and given back to the kernel when the last view drops.
//!
//! Ownership of a buffer id moves in a cycle, and at every point exactly one party may
//! touch its memory:
//!
//! 1. *provided*: the id sits in the ring; the kernel may write into the buffer at any
//!    time. Userspace never reads or writes it.
//! 2. *received*: a completion named the id; [`BufRing::take`] wraps it in a
//!    [`RecvBuf`] owner inside a `Bytes`. Userspace reads it (through the views); nobody
//!    writes it.
//! 3. *returned*: the last view dropped; [`RecvBuf`]'s `Drop` sets the id's bit in an
//!    atomic bitmap (views may drop on any thread). The driver collects the bits every
//!    loop iteration ([`BufRing::reprovide`]) and puts the ids back in the ring: 1 again.
//!
//! The memory is reference counted ([`Pool`] behind an `Arc`), so views outliving the
//! driver stay valid; the ring of entries itself lives in [`BufRing`], which the driver
//! drops only after the kernel has let go of it.

use std::alloc::{self, Layout};
use std::io;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use io_uring::types::BufRingEntry;
use io_uring::Submitter;

/// The page size the kernel requires the ring of entries to be aligned to.
const RING_ALIGN: usize = 4096;

/// The receive memory: `count` buffers of `size` bytes, plus the bitmap of returned ids.
struct Pool {
    base: NonNull<u8>,
    layout: Layout,
    size: usize,
    /// Bit `id` is set once the last view of buffer `id` dropped.
    returned: Box<[AtomicU64]>,
    /// Set after any bit: lets the driver skip the bitmap scan when nothing returned.
    any_returned: AtomicBool,
}

// SAFETY: the pool is plain memory plus atomics. Its bytes are only read through a
// `RecvBuf` (which exists only while the kernel does not own that buffer, see the module
// doc) and written only by the kernel while the buffer is provided; the bitmap is atomic.
// So sharing it between threads (views may be sent anywhere) cannot race.
unsafe impl Send for Pool {}
// SAFETY: as for `Send`: every shared access is a read of memory nobody writes, or atomic.
unsafe impl Sync for Pool {}

impl Pool {
    fn new(count: u16, size: u32) -> io::Result<Self> {
        let size = size as usize;
        let total = size
            .checked_mul(count as usize)
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let layout = Layout::from_size_align(total.max(1), RING_ALIGN)
            .map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        // SAFETY: the layout has a non-zero size.
        let base = NonNull::new(unsafe { alloc::alloc_zeroed(layout) })
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let words = (count as usize).div_ceil(64);
        Ok(Self {
            base,
            layout,
            size,
            returned: (0..words).map(|_| AtomicU64::new(0)).collect(),
            any_returned: AtomicBool::new(false),
        })
    }

    fn addr(&self, bid: u16) -> *mut u8 {
        // The offset stays inside the allocation: bid < count, checked by every caller.
        self.base.as_ptr().wrapping_add(bid as usize * self.size)
    }

    fn give_back(&self, bid: u16) {
        self.returned[bid as usize / 64].fetch_or(1 << (bid % 64), Ordering::Release);
        self.any_returned.store(true, Ordering::Release);
    }
}

impl Drop for Pool {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout; the last `Arc` is gone, so no
        // view reads it, and the driver keeps its own `Arc` until the kernel let go.
        unsafe { alloc::dealloc(self.base.as_ptr(), self.layout) }
    }
}

/// The owner behind the `Bytes` views of one received buffer.
pub(crate) struct RecvBuf {
    pool: Arc<Pool>,
    bid: u16,
    len: usize,
}

impl AsRef<[u8]> for RecvBuf {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: `bid` was checked against the pool's count and `len` against its
        // buffer size in `BufRing::take`, so the range lies inside the pool's live
        // allocation (this owner holds an `Arc`). The kernel wrote these bytes before it
        // posted the completion that named `bid`, and the id is not provided again
        // until this owner drops, so nothing writes them while the slice lives.
        unsafe { std::slice::from_raw_parts(self.pool.addr(self.bid), self.len) }
    }
}

impl Drop for RecvBuf {
    fn drop(&mut self) {
        self.pool.give_back(self.bid);
    }
}

/// A registered provided-buffer ring (one buffer group).
pub(crate) struct BufRing {
    entries: NonNull<BufRingEntry>,
    entries_layout: Layout,
    count: u16,
    /// Our copy of the tail the kernel reads: the next entry to fill.
    tail: u16,
    bgid: u16,
    pool: Arc<Pool>,
    /// Ids currently provided to the kernel.
    provided: usize,
    /// Below this many provided ids, [`take`](Self::take) copies instead of lending.
    low_water: usize,
    /// Receives copied out because the ring ran low.
    copied: u64,
}

impl BufRing {
    /// Allocates `count` buffers of `size` bytes, registers them as buffer group `bgid`
    /// and provides all of them.
    ///
    /// The caller must keep this value alive until the ring it was registered with has
    /// been torn down (the driver drops its `IoUring` first, after draining every
    /// operation), because the kernel reads the entries and writes the buffers.
    ///
    /// While fewer than `low_water` ids are provided, [`take`](Self::take) copies what
    /// was received into an exactly-sized heap buffer and gives the id straight back:
    /// views a program keeps then pin their own bytes, not a whole ring buffer, so the
    /// ring can never be emptied by kept values (0 disables the copy).
    pub(crate) fn register(
        submitter: &Submitter<'_>,
        bgid: u16,
        count: u16,
        size: u32,
        low_water: u16,
    ) -> io::Result<Self> {
        debug_assert!(count.is_power_of_two());
        let pool = Arc::new(Pool::new(count, size)?);
        let bytes = (count as usize * std::mem::size_of::<BufRingEntry>()).max(RING_ALIGN);
        let entries_layout =
            Layout::from_size_align(bytes, RING_ALIGN).map_err(|_| io::Error::from(io::ErrorKind::OutOfMemory))?;
        // SAFETY: non-zero size.
        let entries = NonNull::new(unsafe { alloc::alloc_zeroed(entries_layout) }.cast::<BufRingEntry>())
            .ok_or_else(|| io::Error::from(io::ErrorKind::OutOfMemory))?;
        let mut ring = Self {
            entries,
            entries_layout,
            count,
            tail: 0,
            bgid,
            pool,
            provided: 0,
            low_water: low_water as usize,
            copied: 0,
        };
        // SAFETY: the entries are page aligned, zeroed, `count` long, and stay allocated
        // until `ring` drops, which the caller orders after the io_uring's teardown.
        unsafe { submitter.register_buf_ring_with_flags(entries.as_ptr() as u64, count, bgid, 0)? };
        for bid in 0..count {
            ring.push(bid);
        }
        ring.publish();
        Ok(ring)
    }

    /// The buffer group id to name in receive operations.
    pub(crate) fn bgid(&self) -> u16 {
        self.bgid
    }

    /// Ids the kernel can currently fill.
    pub(crate) fn provided(&self) -> usize {
        self.provided
    }

    /// Writes entry `bid` at our tail (not yet visible to the kernel).
    fn push(&mut self, bid: u16) {
        let idx = (self.tail & (self.count - 1)) as usize;
        // SAFETY: idx < count, inside the entries allocation. The kernel only reads
        // entries between its head and the published tail; this slot is past the
        // published tail, so the kernel is not reading it now.
        let entry = unsafe { &mut *self.entries.as_ptr().add(idx) };
        entry.set_addr(self.pool.addr(bid) as u64);
        entry.set_len(self.pool.size as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        self.provided += 1;
    }

    /// Makes every pushed entry visible to the kernel.
    fn publish(&self) {
        // SAFETY: `entries` is the ring's first entry, initialised (zeroed, then
        // written); the tail field overlays its reserved field, which the kernel reads
        // atomically, so we store to it atomically with release ordering, after the
        // entry writes it publishes.
        unsafe {
            let tail = BufRingEntry::tail(self.entries.as_ptr()) as *const AtomicU16;
            (*tail).store(self.tail, Ordering::Release);
        }
    }

    /// Takes buffer `bid`, which a completion reported filled with `len` bytes, as a
    /// [`Bytes`]: a zero-copy view of the buffer while the ring is healthy, or, once
    /// fewer than the low-water mark of ids are provided, an exactly-sized copy, the id
    /// going straight back to the kernel. `None` if the kernel named an id or length
    /// outside the ring (never expected; the caller treats it as a connection error).
    pub(crate) fn take(&mut self, bid: u16, len: usize) -> Option<Bytes> {
        if bid >= self.count || len > self.pool.size {
            return None;
        }
        self.provided = self.provided.saturating_sub(1);
        if self.provided < self.low_water {
            // SAFETY: `bid` and `len` were checked above, so the range lies inside the
            // pool's allocation. The kernel wrote these bytes before it posted the
            // completion naming `bid`, and the id is provided again only below, after
            // the copy, so nothing writes them while the slice lives.
            let received = unsafe { std::slice::from_raw_parts(self.pool.addr(bid), len) };
            let copy = Bytes::copy_from_slice(received);
            self.push(bid);
            self.publish();
            self.copied += 1;
            return Some(copy);
        }
        Some(Bytes::from_owner(RecvBuf {
            pool: Arc::clone(&self.pool),
            bid,
            len,
        }))
    }

    /// Receives [`take`](Self::take) copied because the ring ran low.
    pub(crate) fn copied(&self) -> u64 {
        self.copied
    }

    /// Gives `bid` back at once (a completion consumed it without data).
    pub(crate) fn give_back(&mut self, bid: u16) {
        if bid < self.count {
            self.provided = self.provided.saturating_sub(1);
            self.pool.give_back(bid);
        }
    }

    /// Puts every returned buffer back into the ring; returns how many.
    pub(crate) fn reprovide(&mut self) -> usize {
        if !self.pool.any_returned.swap(false, Ordering::Acquire) {
            return 0;
        }
        let mut n = 0;
        for word in 0..self.pool.returned.len() {
            let mut bits = self.pool.returned[word].swap(0, Ordering::Acquire);
            while bits != 0 {
                let bit = bits.trailing_zeros();
                bits &= bits - 1;
                self.push((word * 64) as u16 + bit as u16);
                n += 1;
            }
        }
        if n > 0 {
            self.publish();
        }
        n
    }
}

impl Drop for BufRing {
    fn drop(&mut self) {
        // SAFETY: allocated in `register` with this layout; the driver drops the ring
        // (and with it the registration) before this value, after draining every
        // operation, so the kernel no longer reads the entries.
        unsafe { alloc::dealloc(self.entries.as_ptr().cast(), self.entries_layout) }
    }
}
