//! The `SegmentedBuffer` target: random operations checked against a flat `Vec` model.

use bytes::{Buf, Bytes};

use crate::chassis::SegmentedBuffer;

/// Runs a sequence of operations on a [`SegmentedBuffer`] and on a flat `Vec<u8>` model,
/// asserting after each that both hold the same bytes and that every answer agrees.
///
/// The input is read as operations: an opcode byte, then its arguments. Offsets are taken
/// modulo a little more than the buffer's length, so most land inside it and some just
/// past its end; the argument `0xff` means `usize::MAX`. Ran out of bytes: stop.
/// Also asserts the zero-copy promises: a `split_to` inside the first segment and every
/// `split_front` return views of that segment's memory, and no stored segment is empty.
pub fn segmented_buffer(data: &[u8]) {
    let mut ops = Ops(data);
    let mut buf = SegmentedBuffer::new();
    let mut model: Vec<u8> = Vec::new();
    while let Some(op) = ops.byte() {
        match op % 12 {
            0 | 1 => {
                // Push: a length, then that many bytes of the input (fewer at its end).
                let Some(len) = ops.byte() else { break };
                let piece = ops.take(usize::from(len % 64));
                model.extend_from_slice(piece);
                if op % 12 == 0 {
                    buf.push_slice(piece);
                } else {
                    // A view into a larger allocation, as a driver's provided buffer is.
                    let mut backing = vec![0xee; 3];
                    backing.extend_from_slice(piece);
                    backing.extend_from_slice(b"\r\n");
                    buf.push(Bytes::from(backing).slice(3..3 + piece.len()));
                }
            }
            2 => {
                let Some(n) = ops.count(model.len()) else { break };
                buf.advance(n);
                model.drain(..n);
            }
            3 => {
                let Some(n) = ops.count(model.len()) else { break };
                let front = buf.chunk().as_ptr();
                let inside = n <= buf.chunk().len();
                let got = buf.split_to(n);
                assert_eq!(&got[..], &model[..n], "split_to({n})");
                if inside && n > 0 {
                    assert_eq!(got.as_ptr(), front, "split_to({n}) inside the first segment copied");
                }
                model.drain(..n);
            }
            4 => {
                let Some(max) = ops.offset(model.len()) else { break };
                let first = buf.chunk().len();
                let front = buf.chunk().as_ptr();
                let got = buf.split_front(max);
                let n = max.min(first);
                assert_eq!(got.len(), n, "split_front({max}) with a first segment of {first}");
                assert_eq!(&got[..], &model[..n], "split_front({max})");
                if n > 0 {
                    assert_eq!(got.as_ptr(), front, "split_front({max}) copied");
                }
                model.drain(..n);
            }
            5 => {
                let Some(from) = ops.offset(model.len()) else { break };
                let want = model
                    .windows(2)
                    .enumerate()
                    .skip(from)
                    .find(|(_, w)| w == b"\r\n")
                    .map(|(i, _)| i);
                assert_eq!(buf.find_crlf(from), want, "find_crlf({from})");
            }
            6 => {
                let (Some(from), Some(needle)) = (ops.offset(model.len()), ops.byte()) else {
                    break;
                };
                let want = model
                    .iter()
                    .enumerate()
                    .skip(from)
                    .find(|&(_, &b)| b == needle)
                    .map(|(i, _)| i);
                assert_eq!(buf.find_byte(from, needle), want, "find_byte({from}, {needle})");
            }
            7 => {
                let Some(at) = ops.offset(model.len()) else { break };
                assert_eq!(buf.peek(at), model.get(at).copied(), "peek({at})");
            }
            8 => {
                let (Some(at), Some(len)) = (ops.offset(model.len()), ops.byte()) else {
                    break;
                };
                let mut dst = vec![0u8; usize::from(len % 32)];
                let copied = buf.copy_at(at, &mut dst);
                let want = model.get(at..).unwrap_or_default();
                let want = &want[..want.len().min(dst.len())];
                assert_eq!(&dst[..copied], want, "copy_at({at}, {})", dst.len());
            }
            9 => {
                let Some(n) = ops.count(model.len()) else { break };
                // The `Buf` view of the same buffer.
                assert_eq!(buf.remaining(), model.len());
                assert_eq!(Buf::chunk(&buf), buf.chunk());
                let got = buf.copy_to_bytes(n);
                assert_eq!(&got[..], &model[..n], "copy_to_bytes({n})");
                model.drain(..n);
            }
            10 => {
                if ops.byte().is_some_and(|b| b == 0) {
                    buf.clear();
                    model.clear();
                }
            }
            _ => buf.push(Bytes::new()),
        }
        check(&buf, &model);
    }
}

/// The buffer holds exactly the model's bytes, in non-empty segments.
fn check(buf: &SegmentedBuffer, model: &[u8]) {
    assert_eq!(buf.len(), model.len(), "len");
    assert_eq!(buf.is_empty(), model.is_empty(), "is_empty");
    assert!(buf.segments().all(|s| !s.is_empty()), "an empty segment is stored");
    assert_eq!(buf.segments().count(), buf.segment_count(), "segment_count");
    let joined: Vec<u8> = buf.segments().flat_map(|s| s.iter().copied()).collect();
    assert_eq!(joined, model, "contents");
    assert_eq!(buf.chunk(), buf.segments().next().map_or(&[][..], |s| &s[..]), "chunk");
}

/// The operation stream.
struct Ops<'a>(&'a [u8]);

impl<'a> Ops<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (piece, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        piece
    }

    /// A count that is valid for a buffer of `len` bytes (`0..=len`).
    fn count(&mut self, len: usize) -> Option<usize> {
        self.byte().map(|b| usize::from(b) % (len + 1))
    }

    /// An offset, mostly inside a buffer of `len` bytes, sometimes past its end, and
    /// `usize::MAX` for `0xff`.
    fn offset(&mut self, len: usize) -> Option<usize> {
        self.byte().map(|b| {
            if b == 0xff {
                usize::MAX
            } else {
                usize::from(b) % (len + 4)
            }
        })
    }
}
