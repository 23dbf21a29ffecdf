//! The output side: encoded bytes waiting for the kernel.

use std::collections::VecDeque;
use std::io::IoSlice;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// Payloads at least this long are appended as shared segments instead of copied.
pub const DEFAULT_SHARE_THRESHOLD: usize = 4096;

/// The staging buffer's first allocation: enough for the small packets of a turn
/// without regrowing.
const STAGING_CAPACITY: usize = 1024;

/// Encoded output waiting to be handed to the kernel.
///
/// Encoders write small items (headers, lengths, short arguments) into one contiguous
/// staging buffer, and append large payloads as separate [`Bytes`] segments without
/// copying them. The driver drains the arena as an iovec list
/// ([`io_slices`](Self::io_slices)) or segment by segment, and reports with
/// [`advance`](Self::advance) how many bytes the kernel took: a partial write resumes
/// exactly where it stopped.
///
/// [`seal`](Self::seal) freezes the staged bytes into an immutable segment, so a
/// completion-based driver (io_uring) can hand their address to the kernel while new
/// writes go on into fresh staging space.
///
/// An arena holds no heap memory while it is empty: its buffers live in a box
/// allocated by the first write and freed once the kernel has taken everything, so a
/// server's idle connections (most of them, at a million connections) cost only this
/// 24-byte struct.
#[derive(Debug)]
pub struct IoArena {
    /// The buffers, while anything is pending.
    pending: Option<Box<Pending>>,
    len: usize,
    share_threshold: usize,
}

/// What an arena holds while it is not empty.
#[derive(Debug)]
struct Pending {
    /// Frozen segments, sent before `staged`.
    sealed: VecDeque<Bytes>,
    /// Small writes, contiguous.
    staged: BytesMut,
}

impl Default for IoArena {
    fn default() -> Self {
        Self::new()
    }
}

impl IoArena {
    /// An empty arena with the default share threshold.
    pub fn new() -> Self {
        Self::with_share_threshold(DEFAULT_SHARE_THRESHOLD)
    }

    /// An empty arena that shares (rather than copies) payloads of at least `threshold`
    /// bytes.
    pub fn with_share_threshold(threshold: usize) -> Self {
        Self {
            pending: None,
            len: 0,
            share_threshold: threshold.max(1),
        }
    }

    /// Bytes waiting to be sent.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing waits to be sent.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The buffers, allocated on the first write after the arena was drained: the
    /// staging buffer at its working size rather than by doubling up from a few bytes.
    #[inline]
    fn buffers(&mut self, n: usize) -> &mut Pending {
        self.pending.get_or_insert_with(|| {
            Box::new(Pending {
                sealed: VecDeque::new(),
                staged: BytesMut::with_capacity(n.max(STAGING_CAPACITY)),
            })
        })
    }

    /// Copies `data` into the staging buffer.
    #[inline]
    pub fn put_slice(&mut self, data: &[u8]) {
        self.buffers(data.len()).staged.extend_from_slice(data);
        self.len += data.len();
    }

    /// Copies one byte into the staging buffer.
    #[inline]
    pub fn put_u8(&mut self, byte: u8) {
        self.buffers(1).staged.put_u8(byte);
        self.len += 1;
    }

    /// Bytes of heap this arena holds (the box, the staging capacity and the sealed
    /// segments' bookkeeping; shared payloads are not counted): 0 when empty.
    pub fn heap_bytes(&self) -> usize {
        self.pending.as_ref().map_or(0, |p| {
            std::mem::size_of::<Pending>() + p.staged.capacity() + p.sealed.capacity() * std::mem::size_of::<Bytes>()
        })
    }

    /// Writes the decimal form of an integer (no allocation).
    pub fn put_int<I: itoa::Integer>(&mut self, value: I) {
        let mut buf = itoa::Buffer::new();
        self.put_slice(buf.format(value).as_bytes());
    }

    /// Appends a payload: shared without copying when it is at least the share
    /// threshold, copied into the staging buffer otherwise (a small copy is cheaper
    /// than one more iovec).
    pub fn put_bytes(&mut self, data: &Bytes) {
        if data.len() >= self.share_threshold {
            self.put_shared(data.clone());
        } else {
            self.put_slice(data);
        }
    }

    /// Appends a small header and its payload: the payload shared as
    /// [`put_bytes`](Self::put_bytes) would share it, or else both copied into the
    /// staging buffer with one reservation (one write per frame, not two: this is on
    /// every small message's path, and the header's copy is a store of known size).
    #[inline(always)]
    pub fn put_framed<const N: usize>(&mut self, head: [u8; N], body: &Bytes) {
        if body.len() >= self.share_threshold {
            self.put_slice(&head);
            self.put_shared(body.clone());
            return;
        }
        let n = N + body.len();
        let staged = &mut self.buffers(n).staged;
        staged.reserve(n);
        // The header's copy is a store of `N` bytes; the body's checks find the
        // room reserved.
        staged.extend_from_slice(&head);
        staged.extend_from_slice(body);
        self.len += n;
    }

    /// Copies `head` then `body` into the staging buffer (one reservation) and hands
    /// the copy to `edit`, which rewrites it in place before anything can be sent:
    /// CURVE encrypts a frame where it will go out, with no buffer of its own per
    /// frame. If `edit` fails, nothing stays written and its error is returned.
    #[inline]
    pub fn put_edited<E>(
        &mut self,
        head: &[u8],
        body: &[u8],
        edit: impl FnOnce(&mut [u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        let n = head.len() + body.len();
        let staged = &mut self.buffers(n).staged;
        let start = staged.len();
        staged.reserve(n);
        staged.extend_from_slice(head);
        staged.extend_from_slice(body);
        match edit(&mut staged[start..]) {
            Ok(()) => {
                self.len += n;
                Ok(())
            }
            Err(e) => {
                staged.truncate(start);
                Err(e)
            }
        }
    }

    /// Appends a payload as its own segment, never copying it.
    pub fn put_shared(&mut self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        self.seal();
        self.len += data.len();
        self.buffers(0).sealed.push_back(data);
    }

    /// Freezes the staged bytes into a segment whose address stays fixed until it has
    /// been sent; later writes go to new staging space.
    pub fn seal(&mut self) {
        if let Some(p) = self.pending.as_deref_mut() {
            if !p.staged.is_empty() {
                let frozen = p.staged.split().freeze();
                p.sealed.push_back(frozen);
            }
        }
    }

    /// The pending bytes as slices, in order: sealed segments, then the staged bytes.
    pub fn chunks(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let p = self.pending.as_deref();
        p.into_iter()
            .flat_map(|p| p.sealed.iter().map(|b| &b[..]))
            .chain(p.filter(|p| !p.staged.is_empty()).map(|p| &p.staged[..]))
    }

    /// Number of separate chunks (iovecs) pending.
    pub fn chunk_count(&self) -> usize {
        self.pending
            .as_deref()
            .map_or(0, |p| p.sealed.len() + usize::from(!p.staged.is_empty()))
    }

    /// Fills `dst` with the pending chunks, in order; returns how many were written.
    pub fn io_slices<'a>(&'a self, dst: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, chunk) in dst.iter_mut().zip(self.chunks()) {
            *slot = IoSlice::new(chunk);
            n += 1;
        }
        n
    }

    /// The sealed segments (call [`seal`](Self::seal) first to include staged bytes).
    pub fn sealed(&self) -> impl Iterator<Item = &Bytes> + '_ {
        self.pending.as_deref().into_iter().flat_map(|p| p.sealed.iter())
    }

    /// Records that the kernel took the first `n` pending bytes.
    ///
    /// # Panics
    /// If `n > self.len()`: a kernel never reports more than it was given.
    pub fn advance(&mut self, mut n: usize) {
        assert!(n <= self.len, "advance({n}) past the end ({})", self.len);
        self.len -= n;
        if self.len == 0 {
            // Everything went: free the buffers (an idle connection holds none).
            self.pending = None;
            return;
        }
        let Some(p) = self.pending.as_deref_mut() else {
            return;
        };
        while n > 0 {
            if let Some(front) = p.sealed.front_mut() {
                if n < front.len() {
                    front.advance(n);
                    return;
                }
                n -= front.len();
                p.sealed.pop_front();
            } else {
                p.staged.advance(n);
                break;
            }
        }
        if p.staged.is_empty() {
            // Reuse the allocation from its start once everything staged is gone.
            p.staged.clear();
        }
    }

    /// Drops everything pending (the connection is gone).
    pub fn clear(&mut self) {
        self.len = 0;
        self.pending = None;
    }

    /// Moves all of `other`'s pending bytes to the end of `self`, in order.
    pub fn append(&mut self, other: &mut IoArena) {
        other.seal();
        if let Some(mut p) = other.pending.take() {
            for seg in p.sealed.drain(..) {
                if seg.len() < self.share_threshold {
                    self.put_slice(&seg);
                } else {
                    self.put_shared(seg);
                }
            }
        }
        other.len = 0;
    }

    /// Copies all pending bytes into one vector (tests, diagnostics).
    pub fn to_vec(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        for c in self.chunks() {
            out.extend_from_slice(c);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_writes_stay_contiguous() {
        let mut a = IoArena::new();
        a.put_u8(b'*');
        a.put_int(12_i64);
        a.put_slice(b"\r\n");
        assert_eq!(a.chunk_count(), 1);
        assert_eq!(a.to_vec(), b"*12\r\n");
    }

    #[test]
    fn an_edited_write_lands_rewritten_or_not_at_all() {
        let mut a = IoArena::new();
        a.put_slice(b"<");
        a.put_edited(b"ab", b"cd", |buf| {
            assert_eq!(buf, b"abcd");
            buf.make_ascii_uppercase();
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(a.len(), 5);
        // A failed edit leaves the arena as it was, whatever it had scribbled.
        assert_eq!(
            a.put_edited(b"xy", b"z", |buf| {
                buf.fill(b'!');
                Err("no")
            }),
            Err("no")
        );
        a.put_slice(b">");
        assert_eq!(a.len(), 6);
        assert_eq!(a.to_vec(), b"<ABCD>");
    }

    #[test]
    fn a_framed_payload_is_copied_behind_its_header_or_shared_when_large() {
        let mut a = IoArena::with_share_threshold(8);
        let small = Bytes::from_static(b"abc");
        let big = Bytes::from(vec![7u8; 100]);
        a.put_framed([0, 3], &small);
        // Past the staging buffer's first allocation: the reservation grows it.
        let mid = Bytes::from(vec![5u8; 7]);
        for _ in 0..300 {
            a.put_framed([1, 7], &mid);
        }
        a.put_framed([2, 0, 0, 0, 0, 0, 0, 0, 100], &big);
        a.put_framed([0, 0], &Bytes::new());
        let mut want = b"\x00\x03abc".to_vec();
        for _ in 0..300 {
            want.extend_from_slice(&[1, 7, 5, 5, 5, 5, 5, 5, 5]);
        }
        want.extend_from_slice(&[2, 0, 0, 0, 0, 0, 0, 0, 100]);
        want.extend_from_slice(&big);
        want.extend_from_slice(&[0, 0]);
        assert_eq!(a.to_vec(), want);
        assert_eq!(a.len(), want.len());
        let chunks: Vec<&[u8]> = a.chunks().collect();
        assert_eq!(chunks.len(), 3, "staged, the shared body, staged");
        assert_eq!(chunks[1].as_ptr(), big.as_ptr());
        // A partial write resumes where it stopped.
        a.advance(5);
        assert_eq!(a.to_vec(), want[5..]);
    }

    #[test]
    fn large_payloads_are_shared_not_copied() {
        let mut a = IoArena::with_share_threshold(8);
        let big = Bytes::from(vec![7u8; 100]);
        a.put_slice(b"$100\r\n");
        a.put_bytes(&big);
        a.put_slice(b"\r\n");
        assert_eq!(a.chunk_count(), 3);
        let chunks: Vec<&[u8]> = a.chunks().collect();
        assert_eq!(chunks[1].as_ptr(), big.as_ptr());
        assert_eq!(a.len(), 108);
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let mut a = IoArena::with_share_threshold(4);
        a.put_slice(b"ab");
        a.put_bytes(&Bytes::from_static(b"cdefg"));
        a.put_slice(b"hi");
        let all = a.to_vec();
        let mut sent = Vec::new();
        for step in [1, 3, 2, 3] {
            let c: Vec<u8> = a.to_vec();
            sent.extend_from_slice(&c[..step]);
            a.advance(step);
        }
        assert!(a.is_empty());
        assert_eq!(sent, all);
    }

    #[test]
    fn iovecs_cover_every_chunk_in_order() {
        let mut a = IoArena::with_share_threshold(4);
        a.put_slice(b"x");
        a.put_bytes(&Bytes::from_static(b"yyyy"));
        a.put_slice(b"z");
        let mut io = [IoSlice::new(&[]); 8];
        let n = a.io_slices(&mut io);
        let joined: Vec<u8> = io[..n].iter().flat_map(|s| s.iter().copied()).collect();
        assert_eq!(joined, b"xyyyyz");
    }

    #[test]
    fn sealed_addresses_survive_later_writes() {
        let mut a = IoArena::new();
        a.put_slice(b"first");
        a.seal();
        let addr = a.sealed().next().map(|b| b.as_ptr());
        for _ in 0..1000 {
            a.put_slice(b"more bytes that force the staging buffer to grow");
        }
        assert_eq!(a.sealed().next().map(|b| b.as_ptr()), addr);
        assert_eq!(&a.to_vec()[..5], b"first");
    }

    #[test]
    fn an_empty_arena_holds_no_heap_memory() {
        let mut a = IoArena::new();
        assert_eq!(a.heap_bytes(), 0, "nothing allocated before the first write");
        a.put_slice(b"hello");
        a.seal();
        a.put_slice(b" world");
        assert!(a.heap_bytes() > 0);
        a.advance(3);
        assert!(a.heap_bytes() > 0, "still holding what is pending");
        a.advance(8);
        assert!(a.is_empty());
        assert_eq!(a.heap_bytes(), 0, "drained: the buffers are freed");
        a.put_u8(b'!');
        assert_eq!(a.to_vec(), b"!");
        a.clear();
        assert_eq!(a.heap_bytes(), 0);
    }

    #[test]
    fn append_keeps_order() {
        let mut a = IoArena::new();
        let mut b = IoArena::with_share_threshold(2);
        a.put_slice(b"1");
        b.put_slice(b"2");
        b.put_bytes(&Bytes::from_static(b"33"));
        a.append(&mut b);
        assert!(b.is_empty());
        assert_eq!(a.to_vec(), b"1233");
    }
}
