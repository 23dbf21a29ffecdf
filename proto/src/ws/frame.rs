//! WebSocket framing (RFC 6455 section 5): a streaming decoder and the encoder.
//!
//! The decoder hands a data frame's payload on piece by piece as it arrives, unmasked
//! (a copy XORed with the key: the received buffers are shared, so unmasking in place is
//! not possible), and never holds more than a control frame's 125 bytes of its own: a
//! byte stream carried over WebSocket (MQTT) needs no message reassembly. Every header
//! field is checked as soon as its bytes are there, in a fixed order, so where the
//! stream was cut never changes the outcome.

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{CloseCode, FrameError};
use crate::chassis::SegmentedBuffer;

/// A frame's opcode (section 5.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opcode {
    /// 0x0: the next piece of a fragmented message.
    Continuation,
    /// 0x1: UTF-8 text.
    Text,
    /// 0x2: binary data.
    Binary,
    /// 0x8: the closing handshake.
    Close,
    /// 0x9: a keep-alive probe, answered with a pong.
    Ping,
    /// 0xA: a ping's answer (or an unsolicited heartbeat).
    Pong,
}

impl Opcode {
    /// The opcode's four bits.
    pub fn bits(self) -> u8 {
        match self {
            Opcode::Continuation => 0x0,
            Opcode::Text => 0x1,
            Opcode::Binary => 0x2,
            Opcode::Close => 0x8,
            Opcode::Ping => 0x9,
            Opcode::Pong => 0xA,
        }
    }

    fn from_bits(bits: u8) -> Result<Opcode, FrameError> {
        Ok(match bits {
            0x0 => Opcode::Continuation,
            0x1 => Opcode::Text,
            0x2 => Opcode::Binary,
            0x8 => Opcode::Close,
            0x9 => Opcode::Ping,
            0xA => Opcode::Pong,
            other => return Err(FrameError::ReservedOpcode(other)),
        })
    }

    /// Whether this is a control frame (close, ping, pong; section 5.5).
    pub fn is_control(self) -> bool {
        self.bits() & 0x8 != 0
    }
}

/// The largest payload of a control frame (section 5.5).
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Which end of the connection a decoder or encoder serves: clients mask every frame,
/// servers none (section 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Decodes what clients send (masked), encodes unmasked frames.
    Server,
    /// Decodes what servers send (unmasked), encodes masked frames.
    Client,
}

/// A close frame's body (section 5.5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// The status code.
    pub code: CloseCode,
    /// The reason, UTF-8 (checked), possibly empty.
    pub reason: Bytes,
}

/// What the decoder yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// The next piece of a data message's payload, unmasked: a frame's payload comes as
    /// one or more pieces, in order.
    Data {
        /// Whether the message is text (its first frame's opcode).
        text: bool,
        /// The bytes.
        payload: Bytes,
        /// Whether this piece ends the message (its last frame, all of its payload).
        last: bool,
    },
    /// A ping, with its application data (answer with a pong carrying the same).
    Ping(Bytes),
    /// A pong.
    Pong(Bytes),
    /// A close frame: `None` when it carried no status code.
    Close(Option<Close>),
}

/// Where the decoder stands in the stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before a frame's header.
    Header,
    /// Inside a data frame's payload.
    Payload {
        remaining: u64,
        mask: [u8; 4],
        /// How many payload bytes were unmasked so far, modulo 4.
        phase: u8,
        fin: bool,
    },
}

/// Decodes the frames one side of a connection receives.
#[derive(Debug, Clone)]
pub struct FrameDecoder {
    role: Role,
    max_frame: u64,
    state: State,
    /// The fragmented message in progress: `Some(text)` between its first and last frame.
    message: Option<bool>,
}

impl FrameDecoder {
    /// A decoder for `role` refusing frames longer than `max_frame` bytes (from their
    /// header, before anything is reserved).
    pub fn new(role: Role, max_frame: u64) -> FrameDecoder {
        FrameDecoder {
            role,
            max_frame,
            state: State::Header,
            message: None,
        }
    }

    /// Whether the decoder stands between frames and messages (nothing half-read).
    pub fn is_idle(&self) -> bool {
        self.state == State::Header && self.message.is_none()
    }

    /// The next frame or piece of payload in `src`: `Ok(None)` needs more bytes (and
    /// consumed what it could), `Err` is fatal for the connection.
    pub fn decode(&mut self, src: &mut SegmentedBuffer) -> Result<Option<Frame>, FrameError> {
        match self.state {
            State::Header => self.header(src),
            State::Payload {
                remaining,
                mask,
                phase,
                fin,
            } => {
                if src.is_empty() {
                    return Ok(None);
                }
                let max = usize::try_from(remaining).unwrap_or(usize::MAX);
                let piece = src.split_front(max);
                let taken = piece.len();
                let payload = unmask(piece, mask, phase);
                let remaining = remaining - taken as u64;
                let text = self.message.unwrap_or(false);
                if remaining == 0 {
                    self.state = State::Header;
                    if fin {
                        self.message = None;
                    }
                } else {
                    self.state = State::Payload {
                        remaining,
                        mask,
                        phase: ((usize::from(phase) + taken) % 4) as u8,
                        fin,
                    };
                }
                Ok(Some(Frame::Data {
                    text,
                    payload,
                    last: remaining == 0 && fin,
                }))
            }
        }
    }

    fn header(&mut self, src: &mut SegmentedBuffer) -> Result<Option<Frame>, FrameError> {
        let mut head = [0u8; 14];
        let have = src.copy_at(0, &mut head);
        if have < 2 {
            return Ok(None);
        }
        let fin = head[0] & 0x80 != 0;
        let rsv = head[0] & 0x70;
        if rsv != 0 {
            return Err(FrameError::ReservedBits(rsv >> 4));
        }
        let opcode = Opcode::from_bits(head[0] & 0x0F)?;
        let masked = head[1] & 0x80 != 0;
        match (self.role, masked) {
            (Role::Server, false) => return Err(FrameError::Unmasked),
            (Role::Client, true) => return Err(FrameError::Masked),
            _ => {}
        }
        if opcode.is_control() && !fin {
            return Err(FrameError::FragmentedControl);
        }
        let len7 = head[1] & 0x7F;
        if opcode.is_control() && usize::from(len7) > MAX_CONTROL_PAYLOAD {
            // 126 and 127 announce an extended length: over 125 whatever follows.
            return Err(FrameError::ControlTooLong(u64::from(len7)));
        }
        match opcode {
            Opcode::Continuation if self.message.is_none() => return Err(FrameError::UnexpectedContinuation),
            Opcode::Text | Opcode::Binary if self.message.is_some() => return Err(FrameError::InterleavedMessage),
            _ => {}
        }
        let (len, ext) = match len7 {
            126 => {
                if have < 4 {
                    return Ok(None);
                }
                let len = u64::from(u16::from_be_bytes([head[2], head[3]]));
                if len < 126 {
                    return Err(FrameError::NonMinimalLength(len));
                }
                (len, 2)
            }
            127 => {
                if have < 10 {
                    return Ok(None);
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&head[2..10]);
                let len = u64::from_be_bytes(b);
                if len >> 63 != 0 {
                    return Err(FrameError::LengthHighBit);
                }
                if len <= u64::from(u16::MAX) {
                    return Err(FrameError::NonMinimalLength(len));
                }
                (len, 8)
            }
            short => (u64::from(short), 0),
        };
        // Control frames are bounded by 125 bytes already.
        if len > self.max_frame && !opcode.is_control() {
            return Err(FrameError::TooLarge {
                len,
                max: self.max_frame,
            });
        }
        let mask_len = if masked { 4 } else { 0 };
        let head_len = 2 + ext + mask_len;
        if have < head_len {
            return Ok(None);
        }
        let mut mask = [0u8; 4];
        if masked {
            mask.copy_from_slice(&head[2 + ext..head_len]);
        }
        if opcode.is_control() {
            // At most 125 bytes: wait for the whole frame, then consume it at once.
            let total = head_len + len as usize;
            if src.len() < total {
                return Ok(None);
            }
            src.advance(head_len);
            let payload = unmask(src.split_to(len as usize), mask, 0);
            return control(opcode, payload).map(Some);
        }
        src.advance(head_len);
        let text = match opcode {
            Opcode::Continuation => self.message.unwrap_or(false),
            other => other == Opcode::Text,
        };
        if len == 0 {
            self.message = if fin { None } else { Some(text) };
            return Ok(Some(Frame::Data {
                text,
                payload: Bytes::new(),
                last: fin,
            }));
        }
        self.message = Some(text);
        self.state = State::Payload {
            remaining: len,
            mask,
            phase: 0,
            fin,
        };
        self.decode(src)
    }
}

/// `data` XORed with `mask`, starting `phase` bytes into the key: a copy, since the
/// received buffers are shared; `data` itself when there is no mask (a server's frames,
/// or a client's all-zero key).
fn unmask(data: Bytes, mask: [u8; 4], phase: u8) -> Bytes {
    if mask == [0; 4] {
        return data;
    }
    let mut key = mask;
    key.rotate_left(usize::from(phase));
    let mut out = BytesMut::from(&data[..]);
    apply_mask(&mut out, key);
    out.freeze()
}

/// XORs `data` with `key` in place, the key starting at `data[0]`.
fn apply_mask(data: &mut [u8], key: [u8; 4]) {
    let word = u32::from_ne_bytes(key);
    let mut chunks = data.chunks_exact_mut(4);
    for chunk in &mut chunks {
        let mut w = [0u8; 4];
        w.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u32::from_ne_bytes(w) ^ word).to_ne_bytes());
    }
    for (b, k) in chunks.into_remainder().iter_mut().zip(key) {
        *b ^= k;
    }
}

fn control(opcode: Opcode, payload: Bytes) -> Result<Frame, FrameError> {
    Ok(match opcode {
        Opcode::Ping => Frame::Ping(payload),
        Opcode::Pong => Frame::Pong(payload),
        _ => Frame::Close(close_body(payload)?),
    })
}

fn close_body(payload: Bytes) -> Result<Option<Close>, FrameError> {
    match payload.len() {
        0 => Ok(None),
        1 => Err(FrameError::CloseTooShort),
        _ => {
            let code = CloseCode(u16::from_be_bytes([payload[0], payload[1]]));
            if !code.is_sendable() {
                return Err(FrameError::InvalidCloseCode(code.0));
            }
            let reason = payload.slice(2..);
            if std::str::from_utf8(&reason).is_err() {
                return Err(FrameError::CloseReasonNotUtf8);
            }
            Ok(Some(Close { code, reason }))
        }
    }
}

/// A frame header as bytes (at most 14), ready to be put before the payload.
#[derive(Debug, Clone, Copy)]
pub struct FrameHead {
    buf: [u8; 14],
    len: u8,
}

impl std::ops::Deref for FrameHead {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// A frame header: `fin`, `opcode`, a payload of `len` bytes, and the `mask` a client
/// puts on its frames (`None` for a server). The payload follows, masked by the caller
/// with [`mask_payload`] when `mask` is given.
pub fn encode_header(fin: bool, opcode: Opcode, len: u64, mask: Option<[u8; 4]>) -> FrameHead {
    let mut buf = [0u8; 14];
    let mut dst = &mut buf[..];
    dst.put_u8(u8::from(fin) << 7 | opcode.bits());
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len < 126 {
        dst.put_u8(mask_bit | len as u8);
    } else if len <= u64::from(u16::MAX) {
        dst.put_u8(mask_bit | 126);
        dst.put_u16(len as u16);
    } else {
        dst.put_u8(mask_bit | 127);
        dst.put_u64(len);
    }
    if let Some(key) = mask {
        dst.put_slice(&key);
    }
    let written = 14 - dst.len();
    FrameHead {
        buf,
        len: written as u8,
    }
}

/// Masks (or unmasks) a payload in place with a client's key (section 5.3).
pub fn mask_payload(data: &mut [u8], key: [u8; 4]) {
    apply_mask(data, key);
}

/// Writes a whole frame: header then payload, masked with `mask` if given.
pub fn encode_frame(fin: bool, opcode: Opcode, payload: &[u8], mask: Option<[u8; 4]>, dst: &mut impl BufMut) {
    dst.put_slice(&encode_header(fin, opcode, payload.len() as u64, mask));
    match mask {
        Some(key) => {
            let mut copy = payload.to_vec();
            apply_mask(&mut copy, key);
            dst.put_slice(&copy);
        }
        None => dst.put_slice(payload),
    }
}

/// Writes a close frame with `code` and `reason` (truncated to fit in 125 bytes at a
/// character boundary).
pub fn encode_close(code: CloseCode, reason: &str, mask: Option<[u8; 4]>, dst: &mut impl BufMut) {
    let mut end = reason.len().min(MAX_CONTROL_PAYLOAD - 2);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut body = Vec::with_capacity(2 + end);
    body.extend_from_slice(&code.0.to_be_bytes());
    body.extend_from_slice(&reason.as_bytes()[..end]);
    encode_frame(true, Opcode::Close, &body, mask, dst);
}

#[cfg(test)]
mod tests;
