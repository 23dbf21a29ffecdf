//! Receive buffers: one driver-wide chunk read into until it runs low, and a pool of
//! retired chunks whose memory is reclaimed once every view into it has dropped.
//!
//! Every read lands in the spare capacity of the current chunk; the filled part is split
//! off and frozen into a [`Bytes`] handed to the session, so the bytes are never copied
//! and an idle connection holds no receive buffer. The rest of the chunk serves the next
//! read, whichever connection it is for. A chunk with too little room left is retired;
//! a retired chunk comes back into service when the sessions have dropped all their views
//! of it (`BytesMut::try_reclaim` succeeds only then), so a steady workload recycles a
//! few chunks instead of allocating.

use std::collections::VecDeque;
use std::mem::MaybeUninit;

use bytes::{Bytes, BytesMut};

/// How many retired chunks are tried, oldest first, before a new one is allocated.
const RECLAIM_PROBES: usize = 2;

/// Counters that show how well the pool recycles memory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Chunks allocated from the heap since the driver started.
    pub chunks_allocated: u64,
    /// Times a retired chunk was taken back into service instead of allocating.
    pub chunks_reused: u64,
    /// Retired chunks currently waiting for their views to drop.
    pub chunks_retired: usize,
}

/// The receive buffer pool of one driver.
#[derive(Debug)]
pub(crate) struct RecvPool {
    chunk_size: usize,
    min_space: usize,
    max_retired: usize,
    /// The chunk reads go to; `None` until the first read, so a driver that never
    /// reads holds no buffer.
    current: Option<BytesMut>,
    retired: VecDeque<BytesMut>,
    stats: PoolStats,
}

impl RecvPool {
    /// A pool of `chunk_size`-byte chunks; a chunk with less than `min_space` free bytes
    /// is retired; at most `max_retired` retired chunks are remembered for reuse.
    pub(crate) fn new(chunk_size: usize, min_space: usize, max_retired: usize) -> Self {
        Self {
            chunk_size,
            min_space: min_space.clamp(1, chunk_size),
            max_retired,
            current: None,
            retired: VecDeque::new(),
            stats: PoolStats::default(),
        }
    }

    /// Room to read into: the spare capacity of the current chunk, at least `min_space`
    /// bytes long.
    pub(crate) fn spare(&mut self) -> &mut [MaybeUninit<u8>] {
        let low = self
            .current
            .as_ref()
            .is_none_or(|c| c.capacity() - c.len() < self.min_space);
        if low {
            let next = self.next_chunk();
            if let Some(old) = self.current.replace(next) {
                self.retire(old);
            }
        }
        match &mut self.current {
            Some(chunk) => chunk.spare_capacity_mut(),
            None => &mut [],
        }
    }

    /// Takes the first `n` bytes of the last [`spare`](Self::spare) slice, which a read
    /// has filled, as a frozen view. `n` is clamped to the spare room, so a misreported
    /// count can never expose uninitialised memory.
    pub(crate) fn commit(&mut self, n: usize) -> Bytes {
        let Some(chunk) = self.current.as_mut() else {
            return Bytes::new();
        };
        let n = n.min(chunk.capacity() - chunk.len());
        // SAFETY: the caller's read initialised the first `n` bytes of the spare capacity
        // returned by `spare()` (the slice starts at `len`), and `n` does not exceed that
        // capacity; so `len + n` bytes are initialised and within the allocation.
        unsafe { chunk.set_len(chunk.len() + n) };
        chunk.split().freeze()
    }

    /// Counters for diagnostics and tests.
    pub(crate) fn stats(&self) -> PoolStats {
        PoolStats {
            chunks_retired: self.retired.len(),
            ..self.stats
        }
    }

    fn next_chunk(&mut self) -> BytesMut {
        for _ in 0..RECLAIM_PROBES.min(self.retired.len()) {
            let Some(mut chunk) = self.retired.pop_front() else {
                break;
            };
            chunk.clear();
            // Succeeds only when no frozen view of the chunk is alive: then the whole
            // allocation is ours again, from its start.
            if chunk.try_reclaim(self.chunk_size) {
                self.stats.chunks_reused += 1;
                return chunk;
            }
            self.retired.push_back(chunk);
        }
        self.stats.chunks_allocated += 1;
        BytesMut::with_capacity(self.chunk_size)
    }

    /// Remembers a chunk that ran low. Its handle may have no room left at all (the
    /// last read filled it); it still owns a share of the allocation, which
    /// `try_reclaim` recovers whole once the views are gone.
    fn retire(&mut self, chunk: BytesMut) {
        if self.max_retired == 0 {
            return;
        }
        if self.retired.len() >= self.max_retired {
            // Forget the oldest: its memory is freed when its last view drops.
            self.retired.pop_front();
        }
        self.retired.push_back(chunk);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fill(pool: &mut RecvPool, byte: u8, n: usize) -> Bytes {
        let spare = pool.spare();
        assert!(spare.len() >= n);
        for slot in &mut spare[..n] {
            slot.write(byte);
        }
        pool.commit(n)
    }

    #[test]
    fn views_share_one_chunk_without_copying() {
        let mut pool = RecvPool::new(1024, 64, 4);
        let a = fill(&mut pool, b'a', 100);
        let b = fill(&mut pool, b'b', 200);
        assert_eq!(&a[..], &[b'a'; 100][..]);
        assert_eq!(&b[..], &[b'b'; 200][..]);
        // Consecutive reads sit side by side in the same allocation.
        assert_eq!(a.as_ptr().wrapping_add(100), b.as_ptr());
        assert_eq!(pool.stats().chunks_allocated, 1);
    }

    #[test]
    fn a_chunk_comes_back_once_its_views_drop() {
        let mut pool = RecvPool::new(1024, 512, 4);
        let first = fill(&mut pool, 1, 600);
        let first_addr = first.as_ptr();
        // Less than min_space left: the next read retires the chunk.
        let second = fill(&mut pool, 2, 600);
        assert_eq!(pool.stats().chunks_allocated, 2);
        drop(first);
        // The third read retires the second chunk and reclaims the first.
        let third = fill(&mut pool, 3, 600);
        assert_eq!(third.as_ptr(), first_addr);
        assert_eq!(pool.stats().chunks_reused, 1);
        assert_eq!(pool.stats().chunks_allocated, 2);
        // A chunk still viewed is never handed out again.
        let fourth = fill(&mut pool, 4, 600);
        assert_ne!(fourth.as_ptr(), second.as_ptr());
        assert_eq!(&second[..], &[2; 600][..]);
        assert_eq!(&third[..], &[3; 600][..]);
    }

    #[test]
    fn a_completely_filled_chunk_is_reclaimed_too() {
        let mut pool = RecvPool::new(1024, 512, 4);
        let whole = pool.spare().len();
        let first = fill(&mut pool, 1, whole);
        let first_addr = first.as_ptr();
        let second = fill(&mut pool, 2, 10);
        drop(first);
        let rest = pool.spare().len();
        let _tail = fill(&mut pool, 3, rest);
        let third = fill(&mut pool, 4, 10);
        assert_eq!(third.as_ptr(), first_addr);
        assert_eq!(pool.stats().chunks_allocated, 2);
        assert_eq!(&second[..], &[2; 10][..]);
    }

    #[test]
    fn the_retired_list_is_bounded() {
        let mut pool = RecvPool::new(256, 200, 2);
        let held: Vec<Bytes> = (0..10).map(|i| fill(&mut pool, i, 100)).collect();
        assert!(pool.stats().chunks_retired <= 2);
        for (i, view) in held.iter().enumerate() {
            assert!(view.iter().all(|&b| usize::from(b) == i));
        }
    }

    #[test]
    fn commit_clamps_an_overlong_count() {
        let mut pool = RecvPool::new(64, 64, 0);
        let spare_len = pool.spare().len();
        for slot in pool.spare() {
            slot.write(9);
        }
        let got = pool.commit(spare_len + 1000);
        assert_eq!(got.len(), spare_len);
    }
}
