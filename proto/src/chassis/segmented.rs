//! Received bytes as a queue of reference-counted segments.

use std::collections::VecDeque;
use std::ops::Range;

use bytes::{Buf, Bytes, BytesMut};

/// Received bytes kept as the segments the driver handed over, in order.
///
/// A driver pushes each received buffer as a [`Bytes`] (for io_uring, a view into a
/// provided buffer); decoders read from the front. Taking a range that lies inside one
/// segment is zero copy ([`split_to`](Self::split_to) returns a view sharing the
/// segment's memory); only a range that straddles segments is copied, once, into a new
/// allocation of exactly its length.
///
/// Searches ([`find_byte`](Self::find_byte), [`find_crlf`](Self::find_crlf)) use
/// `memchr` inside each segment and handle a `\r\n` split across two segments, so a line
/// protocol never has to join segments just to find where a line ends.
#[derive(Debug, Default, Clone)]
pub struct SegmentedBuffer {
    segments: VecDeque<Bytes>,
    len: usize,
}

impl SegmentedBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes at the back. Empty buffers are ignored, so every stored
    /// segment holds at least one byte.
    pub fn push(&mut self, bytes: Bytes) {
        if !bytes.is_empty() {
            self.len += bytes.len();
            self.segments.push_back(bytes);
        }
    }

    /// Copies `data` in as a new segment (for callers that hold a slice, e.g. tests).
    pub fn push_slice(&mut self, data: &[u8]) {
        self.push(Bytes::copy_from_slice(data));
    }

    /// Number of readable bytes.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no byte is readable.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Number of segments currently held.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// The first segment's readable bytes: the contiguous view decoders parse in place.
    /// Empty when the buffer is empty.
    #[inline]
    pub fn chunk(&self) -> &[u8] {
        self.segments.front().map_or(&[], |s| &s[..])
    }

    /// The first segment itself, for a decoder that cuts views out of it before it
    /// [`advance`](Self::advance)s: a `slice` of it is one reference count, with no
    /// second look at the queue. `None` when the buffer is empty.
    #[inline]
    pub fn front(&self) -> Option<&Bytes> {
        self.segments.front()
    }

    /// The segments, front first.
    pub fn segments(&self) -> impl Iterator<Item = &Bytes> + '_ {
        self.segments.iter()
    }

    /// Drops all bytes.
    pub fn clear(&mut self) {
        self.segments.clear();
        self.len = 0;
    }

    /// Discards the first `n` bytes.
    ///
    /// # Panics
    /// If `n > self.len()`: callers measure before they advance.
    #[inline(always)]
    pub fn advance(&mut self, n: usize) {
        // Fast path: the bytes end inside the first segment (a decoder stepping over a
        // header it parsed in place).
        if let Some(front) = self.segments.front_mut() {
            if n < front.len() {
                front.advance(n);
                self.len -= n;
                return;
            }
        }
        self.advance_slow(n);
    }

    #[inline(never)]
    fn advance_slow(&mut self, mut n: usize) {
        assert!(n <= self.len, "advance({n}) past the end ({})", self.len);
        self.len -= n;
        while n > 0 {
            let Some(front) = self.segments.front_mut() else {
                break;
            };
            if n < front.len() {
                front.advance(n);
                return;
            }
            n -= front.len();
            self.segments.pop_front();
        }
    }

    /// Removes and returns the first `n` bytes: a view of the first segment when the
    /// range lies inside it, otherwise one copy into a buffer of exactly `n` bytes.
    ///
    /// # Panics
    /// If `n > self.len()`.
    pub fn split_to(&mut self, n: usize) -> Bytes {
        assert!(n <= self.len, "split_to({n}) past the end ({})", self.len);
        if n == 0 {
            return Bytes::new();
        }
        let front = self.segments.front_mut().expect("non-empty buffer has a segment");
        if n < front.len() {
            self.len -= n;
            return front.split_to(n);
        }
        if n == front.len() {
            self.len -= n;
            return self.segments.pop_front().expect("front exists");
        }
        let mut joined = BytesMut::with_capacity(n);
        let mut left = n;
        while left > 0 {
            let front = self.segments.front_mut().expect("length checked");
            let take = left.min(front.len());
            joined.extend_from_slice(&front[..take]);
            left -= take;
            if take == front.len() {
                self.segments.pop_front();
            } else {
                front.advance(take);
            }
        }
        self.len -= n;
        joined.freeze()
    }

    /// Consumes the first `consumed` bytes, which lie in the first segment, and returns
    /// a zero-copy view of `range` within them: one step for a frame a decoder found
    /// whole in [`chunk`](Self::chunk) (header, payload, trailer), where `advance`,
    /// `split_to`, `advance` would touch the queue three times.
    ///
    /// # Panics
    /// If `consumed` is longer than the first segment, or `range` does not lie within
    /// `..consumed`: callers measure in `chunk()` first.
    #[inline(always)]
    pub fn split_in_chunk(&mut self, range: Range<usize>, consumed: usize) -> Bytes {
        // The common case inline: the frame ends before the segment does.
        if let Some(front) = self.segments.front_mut() {
            if range.start <= range.end && range.end <= consumed && consumed < front.len() {
                let view = front.slice(range);
                front.advance(consumed);
                self.len -= consumed;
                return view;
            }
        }
        self.split_in_chunk_rest(range, consumed)
    }

    /// The rest of [`split_in_chunk`](Self::split_in_chunk): the frame ends the segment,
    /// or the call is out of bounds.
    #[inline(never)]
    fn split_in_chunk_rest(&mut self, range: Range<usize>, consumed: usize) -> Bytes {
        let front = match self.segments.front_mut() {
            Some(front) if range.start <= range.end && range.end <= consumed && consumed <= front.len() => front,
            None if consumed == 0 && range == (0..0) => return Bytes::new(),
            front => panic!(
                "split_in_chunk({range:?}, {consumed}) outside the first segment ({})",
                front.map_or(0, |f| f.len())
            ),
        };
        self.len -= consumed;
        if consumed < front.len() {
            let view = front.slice(range);
            front.advance(consumed);
            view
        } else {
            // The frame ends the segment: hand out the segment itself, trimmed.
            let mut seg = std::mem::take(front);
            self.segments.pop_front();
            seg.truncate(range.end);
            seg.advance(range.start);
            seg
        }
    }

    /// Removes up to `max` bytes from the front without copying: the whole first
    /// segment or a prefix of it. Used to collect a large payload segment by segment.
    pub fn split_front(&mut self, max: usize) -> Bytes {
        let Some(front) = self.segments.front_mut() else {
            return Bytes::new();
        };
        if max < front.len() {
            self.len -= max;
            front.split_to(max)
        } else {
            let seg = self.segments.pop_front().expect("front exists");
            self.len -= seg.len();
            seg
        }
    }

    /// The byte at `offset` from the front, if there is one.
    pub fn peek(&self, mut offset: usize) -> Option<u8> {
        for seg in &self.segments {
            if offset < seg.len() {
                return Some(seg[offset]);
            }
            offset -= seg.len();
        }
        None
    }

    /// Copies bytes starting at `offset` into `dst` without consuming them; returns how
    /// many were copied (fewer than `dst.len()` when the buffer ends first).
    pub fn copy_at(&self, mut offset: usize, dst: &mut [u8]) -> usize {
        let mut copied = 0;
        for seg in &self.segments {
            if copied == dst.len() {
                break;
            }
            if offset >= seg.len() {
                offset -= seg.len();
                continue;
            }
            let avail = &seg[offset..];
            offset = 0;
            let take = avail.len().min(dst.len() - copied);
            dst[copied..copied + take].copy_from_slice(&avail[..take]);
            copied += take;
        }
        copied
    }

    /// Position of the first `needle` at or after `from`, searching across segments.
    pub fn find_byte(&self, from: usize, needle: u8) -> Option<usize> {
        let mut base = 0;
        for seg in &self.segments {
            let end = base + seg.len();
            if from < end {
                let start = from.saturating_sub(base);
                if let Some(i) = memchr::memchr(needle, &seg[start..]) {
                    return Some(base + start + i);
                }
            }
            base = end;
        }
        None
    }

    /// Position of the `\r` of the first `\r\n` whose `\r` is at or after `from`,
    /// including a pair split across two segments.
    pub fn find_crlf(&self, from: usize) -> Option<usize> {
        // Search for '\n' and look back one byte: the '\r' may end the previous segment.
        let mut search = from.saturating_add(1);
        loop {
            let lf = self.find_byte(search, b'\n')?;
            if self.peek(lf - 1) == Some(b'\r') {
                return Some(lf - 1);
            }
            search = lf + 1;
        }
    }
}

impl Buf for SegmentedBuffer {
    fn remaining(&self) -> usize {
        self.len
    }

    fn chunk(&self) -> &[u8] {
        SegmentedBuffer::chunk(self)
    }

    fn advance(&mut self, cnt: usize) {
        SegmentedBuffer::advance(self, cnt);
    }

    fn copy_to_bytes(&mut self, len: usize) -> Bytes {
        self.split_to(len)
    }
}

impl From<Bytes> for SegmentedBuffer {
    fn from(bytes: Bytes) -> Self {
        let mut buf = Self::new();
        buf.push(bytes);
        buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn segmented(parts: &[&[u8]]) -> SegmentedBuffer {
        let mut b = SegmentedBuffer::new();
        for p in parts {
            b.push_slice(p);
        }
        b
    }

    #[test]
    fn split_inside_one_segment_shares_memory() {
        let seg = Bytes::from_static(b"hello world");
        let mut b = SegmentedBuffer::from(seg.clone());
        let hello = b.split_to(5);
        assert_eq!(&hello[..], b"hello");
        assert_eq!(hello.as_ptr(), seg.as_ptr(), "zero copy view");
        assert_eq!(b.len(), 6);
        assert_eq!(b.chunk(), b" world");
    }

    #[test]
    fn split_across_segments_joins_once() {
        let mut b = segmented(&[b"ab", b"cd", b"ef"]);
        assert_eq!(&b.split_to(5)[..], b"abcde");
        assert_eq!(b.len(), 1);
        assert_eq!(b.segment_count(), 1);
        assert_eq!(&b.split_to(1)[..], b"f");
        assert!(b.is_empty());
    }

    #[test]
    fn crlf_split_across_segments_is_found() {
        let b = segmented(&[b"+OK\r", b"\n:1\r\n"]);
        assert_eq!(b.find_crlf(0), Some(3));
        assert_eq!(b.find_crlf(4), Some(7));
        assert_eq!(b.find_crlf(8), None);
    }

    #[test]
    fn lone_lf_is_not_crlf() {
        let b = segmented(&[b"a\nb", b"\r", b"\n"]);
        assert_eq!(b.find_crlf(0), Some(3));
        assert_eq!(b.find_byte(0, b'\n'), Some(1));
    }

    #[test]
    fn empty_pushes_are_ignored() {
        let mut b = SegmentedBuffer::new();
        b.push(Bytes::new());
        assert_eq!(b.segment_count(), 0);
        assert_eq!(b.chunk(), b"");
        assert_eq!(b.find_crlf(0), None);
    }

    #[test]
    fn split_in_chunk_is_one_zero_copy_step() {
        let seg = Bytes::from_static(b"$5\r\nhello\r\n+OK\r\n");
        let mut b = SegmentedBuffer::from(seg.clone());
        b.push_slice(b":1\r\n");
        let hello = b.split_in_chunk(4..9, 11);
        assert_eq!(&hello[..], b"hello");
        assert_eq!(hello.as_ptr(), seg[4..].as_ptr(), "zero copy view");
        assert_eq!(b.len(), 9);
        // The frame that ends the first segment takes the segment itself.
        let ok = b.split_in_chunk(1..3, 5);
        assert_eq!(&ok[..], b"OK");
        assert_eq!(ok.as_ptr(), seg[12..].as_ptr());
        assert_eq!(b.segment_count(), 1);
        assert_eq!(b.chunk(), b":1\r\n");
        assert!(b.split_in_chunk(1..1, 1).is_empty());
        assert_eq!(b.len(), 3);
    }

    #[test]
    #[should_panic(expected = "outside the first segment")]
    fn split_in_chunk_refuses_to_straddle() {
        let mut b = segmented(&[b"ab", b"cd"]);
        b.split_in_chunk(0..3, 3);
    }

    #[test]
    fn split_front_never_copies() {
        let mut b = segmented(&[b"abc", b"def"]);
        assert_eq!(&b.split_front(2)[..], b"ab");
        assert_eq!(&b.split_front(10)[..], b"c");
        assert_eq!(&b.split_front(10)[..], b"def");
        assert!(b.split_front(10).is_empty());
    }

    proptest! {
        #[test]
        fn behaves_like_a_flat_vec(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            cuts in proptest::collection::vec(0usize..200, 0..10),
            ops in proptest::collection::vec((0u8..5, 0usize..50), 0..20),
        ) {
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(data.len())).collect();
            cuts.sort_unstable();
            let mut buf = SegmentedBuffer::new();
            let mut last = 0;
            for c in cuts.into_iter().chain([data.len()]) {
                buf.push_slice(&data[last..c]);
                last = c;
            }
            let mut model: Vec<u8> = data.clone();
            for (op, n) in ops {
                let n = n.min(model.len());
                match op {
                    0 => { buf.advance(n); model.drain(..n); }
                    1 => {
                        let got = buf.split_to(n);
                        let want: Vec<u8> = model.drain(..n).collect();
                        prop_assert_eq!(&got[..], &want[..]);
                    }
                    2 => {
                        let want = model.windows(2).enumerate().skip(n)
                            .find(|(_, w)| w == b"\r\n").map(|(i, _)| i);
                        prop_assert_eq!(buf.find_crlf(n), want);
                    }
                    3 => {
                        // A frame inside the first segment: skip a third, keep a third.
                        let consumed = n.min(buf.chunk().len());
                        let range = consumed / 3..consumed * 2 / 3;
                        let got = buf.split_in_chunk(range.clone(), consumed);
                        let frame: Vec<u8> = model.drain(..consumed).collect();
                        prop_assert_eq!(&got[..], &frame[range]);
                    }
                    _ => {
                        let mut dst = [0u8; 7];
                        let k = buf.copy_at(n, &mut dst);
                        let want = &model[n.min(model.len())..];
                        let want = &want[..want.len().min(7)];
                        prop_assert_eq!(&dst[..k], want);
                    }
                }
                prop_assert_eq!(buf.len(), model.len());
            }
        }
    }
}
