//! ZMTP 3.x framing: the streaming frame decoder and the frame encoder (RFC 23).
//!
//! ```text
//! frame      = flags size body
//! flags      = %x00-07                ; bit 0 MORE, bit 1 LONG, bit 2 COMMAND
//! size       = OCTET | 8OCTET          ; 8 bytes, network order, when LONG
//! ```
//!
//! Bits 3 to 7 are reserved and refused; a command never has MORE. The announced size is
//! checked against [`FrameDecoder::max_frame_size`] as soon as the size field is in,
//! before any byte of the body is waited for or reserved. A body that lies inside one
//! received segment is handed out as a view of it; only one that straddles segments is
//! copied, once.

use bytes::Bytes;

use super::ZmtpError;
use crate::{IoArena, SegmentedBuffer};

/// More frames of the same message follow.
pub const FLAG_MORE: u8 = 0x01;
/// The size field is 8 bytes (network order) instead of 1.
pub const FLAG_LONG: u8 = 0x02;
/// The frame is a command, not part of a message.
pub const FLAG_COMMAND: u8 = 0x04;
/// The bits RFC 23 reserves; a peer must send them as zero.
pub const RESERVED_FLAGS: u8 = !(FLAG_MORE | FLAG_LONG | FLAG_COMMAND);

/// The default largest frame accepted: 64 MiB (libzmq's default is unlimited; a bounded
/// default keeps a hostile peer from making us reserve gigabytes).
pub const DEFAULT_MAX_FRAME_SIZE: u64 = 64 << 20;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A frame of a message.
    Message {
        /// The frame's bytes, a view of the received segments.
        body: Bytes,
        /// Whether more frames of the same message follow.
        more: bool,
    },
    /// A command frame: its whole body (name size, name, data), parsed by
    /// [`Command::parse`](super::Command::parse).
    Command(Bytes),
}

/// Decodes frames from the front of a [`SegmentedBuffer`]. Holds no state between calls
/// but its limit: a frame is parsed only once all of it is in, and parsing its header
/// again costs at most nine byte reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameDecoder {
    /// The largest body accepted, in bytes.
    pub max_frame_size: u64,
}

impl Default for FrameDecoder {
    fn default() -> Self {
        FrameDecoder {
            max_frame_size: DEFAULT_MAX_FRAME_SIZE,
        }
    }
}

impl FrameDecoder {
    /// A decoder that accepts bodies of at most `max_frame_size` bytes.
    pub fn new(max_frame_size: u64) -> Self {
        FrameDecoder { max_frame_size }
    }

    /// The next frame, `Ok(None)` if it is not all in yet (nothing consumed), or the
    /// reason the stream is malformed (fatal).
    #[inline]
    pub fn decode(&self, src: &mut SegmentedBuffer) -> Result<Option<Frame>, ZmtpError> {
        // The common case, parsed in place: a short message frame whole in the first
        // segment. Anything else (a command, a long size, reserved bits, a frame over
        // the limit or cut by a segment end) takes the general path, which judges it.
        if let [flags, size, ..] = *src.chunk() {
            let total = 2 + usize::from(size);
            if flags & !FLAG_MORE == 0 && total <= src.chunk().len() && u64::from(size) <= self.max_frame_size {
                return Ok(Some(Frame::Message {
                    body: src.split_in_chunk(2..total, total),
                    more: flags & FLAG_MORE != 0,
                }));
            }
        }
        self.decode_general(src)
    }

    /// The body of the next frame if it is a short, last (no MORE) message frame whole
    /// in the first segment: a one-frame message, the common case, cut out in place.
    /// Anything else is left where it is (`None`) for [`decode`](Self::decode).
    #[inline]
    pub fn decode_single(&self, src: &mut SegmentedBuffer) -> Option<Bytes> {
        if let [0, size, ..] = *src.chunk() {
            let total = 2 + usize::from(size);
            if total <= src.chunk().len() && u64::from(size) <= self.max_frame_size {
                return Some(src.split_in_chunk(2..total, total));
            }
        }
        None
    }

    /// [`decode`](Self::decode) for any frame, however it lies in the segments.
    fn decode_general(&self, src: &mut SegmentedBuffer) -> Result<Option<Frame>, ZmtpError> {
        let Some(flags) = src.peek(0) else {
            return Ok(None);
        };
        if flags & RESERVED_FLAGS != 0 {
            return Err(ZmtpError::ReservedFlags { flags });
        }
        if flags & FLAG_COMMAND != 0 && flags & FLAG_MORE != 0 {
            return Err(ZmtpError::CommandWithMore);
        }
        let (header, size): (usize, u64) = if flags & FLAG_LONG != 0 {
            let mut raw = [0u8; 8];
            if src.copy_at(1, &mut raw) < 8 {
                return Ok(None);
            }
            (9, u64::from_be_bytes(raw))
        } else {
            match src.peek(1) {
                Some(size) => (2, u64::from(size)),
                None => return Ok(None),
            }
        };
        if size > self.max_frame_size {
            return Err(ZmtpError::FrameTooLarge {
                size,
                max: self.max_frame_size,
            });
        }
        // Within the limit, so within usize on any platform the limit was set for; a
        // limit above usize::MAX on a 32-bit target is still refused here.
        let Ok(size) = usize::try_from(size) else {
            return Err(ZmtpError::FrameTooLarge {
                size,
                max: usize::MAX as u64,
            });
        };
        let Some(total) = header.checked_add(size).filter(|&t| t <= src.len()) else {
            return Ok(None);
        };
        let body = if total <= src.chunk().len() {
            src.split_in_chunk(header..total, total)
        } else {
            src.advance(header);
            src.split_to(size)
        };
        Ok(Some(if flags & FLAG_COMMAND != 0 {
            Frame::Command(body)
        } else {
            Frame::Message {
                body,
                more: flags & FLAG_MORE != 0,
            }
        }))
    }
}

/// Writes a decoded [`Frame`] back as it would travel (the short size form up to 255
/// bytes): a relay, a proxy or a test re-sends what it read.
pub fn encode_frame(dst: &mut IoArena, frame: &Frame) {
    match frame {
        Frame::Message { body, more } => encode_message_frame(dst, body, *more),
        Frame::Command(body) => {
            encode_header(dst, FLAG_COMMAND, body.len() as u64);
            dst.put_bytes(body);
        }
    }
}

/// Writes a frame header for a body of `size` bytes: the short form up to 255 bytes,
/// the long form above (libzmq does the same).
pub fn encode_header(dst: &mut IoArena, flags: u8, size: u64) {
    let (head, n) = frame_header(flags, size);
    dst.put_slice(&head[..n]);
}

/// A frame header as bytes, for a writer that puts it in front of a body it builds
/// itself: the array and how many of its bytes are the header (2, or 9 in the long
/// form), the same bytes as [`encode_header`] writes.
#[inline]
pub(crate) fn frame_header(flags: u8, size: u64) -> ([u8; 9], usize) {
    let mut head = [0u8; 9];
    if size > 255 {
        head[0] = flags | FLAG_LONG;
        head[1..].copy_from_slice(&size.to_be_bytes());
        (head, 9)
    } else {
        head[0] = flags & !FLAG_LONG;
        head[1] = size as u8;
        (head, 2)
    }
}

/// Writes one message frame (`more`: another frame of the message follows): header and
/// body in one arena write. Large bodies are shared with the arena, not copied.
#[inline]
pub fn encode_message_frame(dst: &mut IoArena, body: &Bytes, more: bool) {
    let flags = if more { FLAG_MORE } else { 0 };
    match u8::try_from(body.len()) {
        Ok(size) => dst.put_framed([flags, size], body),
        Err(_) => {
            let mut head = [flags | FLAG_LONG, 0, 0, 0, 0, 0, 0, 0, 0];
            head[1..].copy_from_slice(&(body.len() as u64).to_be_bytes());
            dst.put_framed(head, body);
        }
    }
}

/// Writes a multipart message: every frame but the last with MORE. An empty message
/// writes nothing (ZeroMQ has no zero-frame messages).
pub fn encode_message(dst: &mut IoArena, frames: &[Bytes]) {
    let last = frames.len().saturating_sub(1);
    for (i, frame) in frames.iter().enumerate() {
        encode_message_frame(dst, frame, i < last);
    }
}

/// Writes a command frame whose body is `name` followed by `data` (already encoded).
/// The name must be 1 to 255 bytes; the command constructors in this module guarantee
/// it.
pub fn encode_command_frame(dst: &mut IoArena, name: &[u8], data: &[&[u8]]) {
    let data_len: usize = data.iter().map(|d| d.len()).sum();
    let name_len = name.len().min(255);
    encode_header(dst, FLAG_COMMAND, (1 + name_len + data_len) as u64);
    dst.put_u8(name_len as u8);
    dst.put_slice(&name[..name_len]);
    for part in data {
        dst.put_slice(part);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arena_bytes(f: impl FnOnce(&mut IoArena)) -> Vec<u8> {
        let mut arena = IoArena::new();
        f(&mut arena);
        arena.chunks().flatten().copied().collect()
    }

    #[test]
    fn a_header_is_short_up_to_255_bytes_and_long_above() {
        assert_eq!(
            arena_bytes(|a| encode_header(a, FLAG_MORE | FLAG_LONG, 255)),
            [FLAG_MORE, 255]
        );
        assert_eq!(
            arena_bytes(|a| encode_header(a, FLAG_COMMAND, 256)),
            [FLAG_COMMAND | FLAG_LONG, 0, 0, 0, 0, 0, 0, 1, 0]
        );
        let (head, n) = frame_header(0, u64::MAX);
        assert_eq!(head[..n], [FLAG_LONG, 255, 255, 255, 255, 255, 255, 255, 255]);
        assert_eq!(frame_header(FLAG_MORE, 0), ([FLAG_MORE, 0, 0, 0, 0, 0, 0, 0, 0], 2));
    }

    #[test]
    fn short_and_long_frames_encode_as_libzmq_does() {
        let short = arena_bytes(|a| encode_message(a, &[Bytes::from_static(b"id"), Bytes::from_static(b"")]));
        assert_eq!(short, [0x01, 2, b'i', b'd', 0x00, 0]);
        let body = Bytes::from(vec![7u8; 256]);
        let long = arena_bytes(|a| encode_message_frame(a, &body, false));
        assert_eq!(&long[..9], &[0x02, 0, 0, 0, 0, 0, 0, 1, 0]);
        assert_eq!(long.len(), 9 + 256);
        let ready = arena_bytes(|a| encode_command_frame(a, b"PING", &[&[0, 10]]));
        assert_eq!(ready, [0x04, 7, 4, b'P', b'I', b'N', b'G', 0, 10]);
    }

    #[test]
    fn frames_decode_zero_copy_from_one_segment() {
        let wire = Bytes::from_static(&[0x01, 2, b'i', b'd', 0x04, 5, 4, b'P', b'O', b'N', b'G', 0x00, 0]);
        let mut src = SegmentedBuffer::from(wire.clone());
        let d = FrameDecoder::default();
        let Some(Frame::Message { body, more: true }) = d.decode(&mut src).unwrap() else {
            panic!()
        };
        assert_eq!((&body[..], body.as_ptr()), (&b"id"[..], wire[2..].as_ptr()));
        assert_eq!(
            d.decode(&mut src).unwrap(),
            Some(Frame::Command(Bytes::from_static(b"\x04PONG")))
        );
        assert_eq!(
            d.decode(&mut src).unwrap(),
            Some(Frame::Message {
                body: Bytes::new(),
                more: false
            })
        );
        assert_eq!(d.decode(&mut src).unwrap(), None);
    }

    #[test]
    fn a_long_frame_accepts_a_small_size_and_waits_for_its_body() {
        let d = FrameDecoder::default();
        let mut src = SegmentedBuffer::new();
        src.push_slice(&[0x02, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(d.decode(&mut src).unwrap(), None);
        src.push_slice(&[3, b'a']);
        assert_eq!(d.decode(&mut src).unwrap(), None);
        assert_eq!(src.len(), 10, "nothing consumed");
        src.push_slice(b"bc");
        assert_eq!(
            d.decode(&mut src).unwrap(),
            Some(Frame::Message {
                body: Bytes::from_static(b"abc"),
                more: false
            })
        );
        assert!(src.is_empty());
    }

    #[test]
    fn the_size_is_checked_before_the_body_arrives() {
        let d = FrameDecoder::new(1000);
        let mut src = SegmentedBuffer::new();
        // 2^62 announced, nine bytes sent: refused now, not after waiting for the body.
        src.push_slice(&[0x02, 0x40, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            d.decode(&mut src),
            Err(ZmtpError::FrameTooLarge {
                size: 1 << 62,
                max: 1000
            })
        );
        let mut src = SegmentedBuffer::new();
        src.push_slice(&[0x02, 0, 0, 0, 0, 0, 0, 0x03, 0xE9]);
        assert_eq!(
            d.decode(&mut src),
            Err(ZmtpError::FrameTooLarge { size: 1001, max: 1000 })
        );
        let mut src = SegmentedBuffer::new();
        src.push_slice(&[0x00, 200]);
        assert_eq!(
            FrameDecoder::new(100).decode(&mut src),
            Err(ZmtpError::FrameTooLarge { size: 200, max: 100 })
        );
    }

    #[test]
    fn both_kinds_of_frame_round_trip() {
        let decoder = FrameDecoder::default();
        let frames = [
            Frame::Message {
                body: Bytes::from(vec![1u8; 300]),
                more: true,
            },
            Frame::Message {
                body: Bytes::new(),
                more: false,
            },
            Frame::Command(Bytes::from_static(b"\x04PING\x00\x00")),
        ];
        let mut arena = IoArena::new();
        for f in &frames {
            encode_frame(&mut arena, f);
        }
        let mut src = SegmentedBuffer::new();
        src.push_slice(&arena.chunks().flatten().copied().collect::<Vec<u8>>());
        for f in frames {
            assert_eq!(decoder.decode(&mut src).unwrap(), Some(f));
        }
        assert!(src.is_empty());
    }

    #[test]
    fn the_in_place_path_keeps_the_limit_and_every_cut() {
        // Short message frames (the path parsed in place) at the limit and one over.
        assert_eq!(
            FrameDecoder::new(3).decode(&mut SegmentedBuffer::from(Bytes::from_static(&[0x01, 4, 1, 2, 3, 4]))),
            Err(ZmtpError::FrameTooLarge { size: 4, max: 3 })
        );
        let wire: Vec<u8> = [
            &[0x01, 3, 1, 2, 3][..],
            &[0x00, 0],
            &[0x04, 1, 0],
            &[0x00, 255],
            &[9; 255],
        ]
        .concat();
        let whole = {
            let mut src = SegmentedBuffer::from(Bytes::from(wire.clone()));
            std::iter::from_fn(|| FrameDecoder::new(255).decode(&mut src).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(whole.len(), 4);
        for cut in 0..=wire.len() {
            let mut src = SegmentedBuffer::new();
            let mut frames = Vec::new();
            for piece in [&wire[..cut], &wire[cut..]] {
                src.push_slice(piece);
                while let Some(frame) = FrameDecoder::new(255).decode(&mut src).unwrap() {
                    frames.push(frame);
                }
            }
            assert_eq!(frames, whole, "cut at {cut}");
        }
    }

    #[test]
    fn reserved_bits_and_commands_with_more_are_refused() {
        let d = FrameDecoder::default();
        for flags in [0x08u8, 0x10, 0x20, 0x40, 0x80, 0xFF] {
            let mut src = SegmentedBuffer::new();
            src.push_slice(&[flags]);
            assert_eq!(d.decode(&mut src), Err(ZmtpError::ReservedFlags { flags }));
        }
        let mut src = SegmentedBuffer::new();
        src.push_slice(&[0x05]);
        assert_eq!(d.decode(&mut src), Err(ZmtpError::CommandWithMore));
    }
}
