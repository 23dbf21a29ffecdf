//! The data representations of section 1.5: integers, Variable Byte Integers, UTF-8
//! strings and binary data, read from a packet's body and written into a [`Sink`].

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{DecodeError, Violation};
use crate::chassis::IoArena;

/// The largest value a Variable Byte Integer holds (four bytes).
pub const VBI_MAX: u32 = 268_435_455;

/// The largest string or binary field (a two-byte length).
pub const FIELD_MAX: usize = u16::MAX as usize;

/// Bytes a Variable Byte Integer of `value` takes in its shortest form (1..=4).
#[inline]
pub fn vbi_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Reads a Variable Byte Integer from `byte(0)`, `byte(1)`, ...: `Ok(None)` when the
/// bytes end before it does, else the value and its length. A fifth byte and a form
/// longer than the shortest are malformed [MQTT-1.5.5-1].
#[inline]
pub(crate) fn read_vbi(byte: impl Fn(usize) -> Option<u8>) -> Result<Option<(u32, usize)>, DecodeError> {
    let mut value = 0u32;
    for i in 0..4 {
        let Some(b) = byte(i) else { return Ok(None) };
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            // A last byte of 0 after the first means a shorter form existed.
            if b == 0 && i > 0 {
                return Err(DecodeError::VarIntNotShortest);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    Err(DecodeError::VarIntTooLong)
}

/// Checks the UTF-8 rules of 1.5.4: well formed (which excludes the surrogates
/// U+D800..U+DFFF) and no U+0000. Control characters and non-characters are allowed
/// (the specification says SHOULD NOT, a receiver MAY refuse; this one does not).
#[inline]
pub fn check_utf8(s: &[u8]) -> Result<(), DecodeError> {
    if std::str::from_utf8(s).is_err() {
        return Err(DecodeError::InvalidUtf8);
    }
    if memchr::memchr(0, s).is_some() {
        return Err(DecodeError::NullCharacter);
    }
    Ok(())
}

/// A packet's body being read front to back; every field is a view of it.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Self { buf, pos: 0 }
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.pos == self.buf.len()
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        let s = self.slice(2)?;
        Ok(u16::from_be_bytes([s[0], s[1]]))
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        let s = self.slice(4)?;
        Ok(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }

    /// A Variable Byte Integer; one that runs past the end is truncated.
    pub(crate) fn vbi(&mut self) -> Result<u32, DecodeError> {
        let rest = &self.buf[self.pos..];
        let (value, len) = read_vbi(|i| rest.get(i).copied())?.ok_or(DecodeError::Truncated)?;
        self.pos += len;
        Ok(value)
    }

    fn slice(&mut self, n: usize) -> Result<&[u8], DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    /// The next `n` bytes as a view.
    pub(crate) fn take(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        if self.remaining() < n {
            return Err(DecodeError::Truncated);
        }
        let view = self.buf.slice(self.pos..self.pos + n);
        self.pos += n;
        Ok(view)
    }

    /// Binary Data: a two-byte length, then that many bytes.
    pub(crate) fn binary(&mut self) -> Result<Bytes, DecodeError> {
        let len = usize::from(self.u16()?);
        self.take(len)
    }

    /// A UTF-8 Encoded String: binary data that passes [`check_utf8`].
    pub(crate) fn string(&mut self) -> Result<Bytes, DecodeError> {
        let s = self.binary()?;
        check_utf8(&s)?;
        Ok(s)
    }

    /// Everything left, as a view.
    pub(crate) fn rest(&mut self) -> Bytes {
        let view = self.buf.slice(self.pos..);
        self.pos = self.buf.len();
        view
    }
}

/// Where encoded packets go: the chassis' [`IoArena`] (payloads at least its share
/// threshold are appended without copying), a [`BytesMut`] or a `Vec<u8>`.
pub trait Sink {
    /// Appends one byte.
    fn put_u8(&mut self, byte: u8);
    /// Appends a copy of `data`.
    fn put_slice(&mut self, data: &[u8]);
    /// Appends a payload; a sink that can share it instead of copying does.
    fn put_payload(&mut self, data: &Bytes) {
        self.put_slice(data);
    }
}

impl Sink for IoArena {
    fn put_u8(&mut self, byte: u8) {
        IoArena::put_u8(self, byte);
    }

    fn put_slice(&mut self, data: &[u8]) {
        IoArena::put_slice(self, data);
    }

    fn put_payload(&mut self, data: &Bytes) {
        self.put_bytes(data);
    }
}

impl Sink for BytesMut {
    fn put_u8(&mut self, byte: u8) {
        BufMut::put_u8(self, byte);
    }

    fn put_slice(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }
}

impl Sink for Vec<u8> {
    fn put_u8(&mut self, byte: u8) {
        self.push(byte);
    }

    fn put_slice(&mut self, data: &[u8]) {
        self.extend_from_slice(data);
    }
}

/// Writers over any [`Sink`].
pub(crate) trait SinkExt: Sink {
    fn put_u16(&mut self, v: u16) {
        self.put_slice(&v.to_be_bytes());
    }

    fn put_u32(&mut self, v: u32) {
        self.put_slice(&v.to_be_bytes());
    }

    /// A Variable Byte Integer in its shortest form. `value` is at most [`VBI_MAX`]
    /// (callers check before writing).
    fn put_vbi(&mut self, mut value: u32) {
        debug_assert!(value <= VBI_MAX);
        loop {
            let mut b = (value & 0x7f) as u8;
            value >>= 7;
            if value > 0 {
                b |= 0x80;
            }
            self.put_u8(b);
            if value == 0 {
                return;
            }
        }
    }

    /// A two-byte length and the bytes (string or binary data; checked by the caller).
    fn put_field(&mut self, data: &[u8]) {
        self.put_u16(data.len() as u16);
        self.put_slice(data);
    }
}

impl<S: Sink + ?Sized> SinkExt for S {}

/// Checks a binary field for the encoder: at most 65,535 bytes.
pub(crate) fn check_binary(data: &[u8]) -> Result<(), Violation> {
    if data.len() > FIELD_MAX {
        return Err(Violation::FieldTooLong(data.len()));
    }
    Ok(())
}

/// Checks a string field for the encoder: length and the UTF-8 rules.
pub(crate) fn check_string(data: &[u8]) -> Result<(), Violation> {
    check_binary(data)?;
    check_utf8(data).map_err(|_| Violation::InvalidString)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vbi(bytes: &[u8]) -> Result<Option<(u32, usize)>, DecodeError> {
        read_vbi(|i| bytes.get(i).copied())
    }

    #[test]
    fn vbi_boundaries_of_the_specification() {
        // Table 1-1: the smallest and largest value of each length.
        for (value, bytes) in [
            (0u32, &[0x00][..]),
            (127, &[0x7f]),
            (128, &[0x80, 0x01]),
            (16_383, &[0xff, 0x7f]),
            (16_384, &[0x80, 0x80, 0x01]),
            (2_097_151, &[0xff, 0xff, 0x7f]),
            (2_097_152, &[0x80, 0x80, 0x80, 0x01]),
            (VBI_MAX, &[0xff, 0xff, 0xff, 0x7f]),
        ] {
            assert_eq!(vbi(bytes), Ok(Some((value, bytes.len()))), "{value}");
            let mut out = Vec::new();
            out.put_vbi(value);
            assert_eq!(out, bytes, "{value}");
            assert_eq!(vbi_len(value), bytes.len());
        }
    }

    #[test]
    fn vbi_longer_than_needed_is_malformed() {
        for bytes in [
            &[0x80, 0x00][..],
            &[0x81, 0x00],
            &[0xff, 0x80, 0x00],
            &[0x80, 0x80, 0x80, 0x00],
        ] {
            assert_eq!(vbi(bytes), Err(DecodeError::VarIntNotShortest), "{bytes:02x?}");
        }
    }

    #[test]
    fn vbi_of_five_bytes_is_malformed() {
        assert_eq!(vbi(&[0x80, 0x80, 0x80, 0x80, 0x01]), Err(DecodeError::VarIntTooLong));
        assert_eq!(vbi(&[0xff, 0xff, 0xff, 0xff]), Err(DecodeError::VarIntTooLong));
    }

    #[test]
    fn vbi_cut_short_waits() {
        assert_eq!(vbi(&[]), Ok(None));
        assert_eq!(vbi(&[0x80]), Ok(None));
        assert_eq!(vbi(&[0xff, 0xff, 0xff]), Ok(None));
    }

    #[test]
    fn utf8_rules() {
        assert_eq!(check_utf8("a/b/ü/€/𝄞".as_bytes()), Ok(()));
        // Control characters and a BOM are allowed (SHOULD NOT, not MUST NOT).
        assert_eq!(check_utf8(b"\x01\x7f\xef\xbb\xbf"), Ok(()));
        assert_eq!(check_utf8(b"a\0b"), Err(DecodeError::NullCharacter));
        // U+D800 encoded as UTF-8 (a surrogate), an overlong '/', a lone continuation.
        for bad in [&b"\xed\xa0\x80"[..], b"\xc0\xaf", b"\x80", b"\xf4\x90\x80\x80"] {
            assert_eq!(check_utf8(bad), Err(DecodeError::InvalidUtf8), "{bad:02x?}");
        }
    }

    #[test]
    fn reader_fields_are_views() {
        let body = Bytes::from_static(b"\x00\x03abc\x00\x02\xff\xfe\x81\x01rest");
        let mut r = Reader::new(body.clone());
        let s = r.string().unwrap();
        assert_eq!(&s[..], b"abc");
        assert_eq!(s.as_ptr(), body[2..].as_ptr());
        assert_eq!(&r.binary().unwrap()[..], b"\xff\xfe");
        assert_eq!(r.vbi(), Ok(129));
        assert_eq!(&r.rest()[..], b"rest");
        assert!(r.is_empty());
        assert_eq!(r.u8(), Err(DecodeError::Truncated));
        let mut r = Reader::new(Bytes::from_static(b"\x00\x05ab"));
        assert_eq!(r.string(), Err(DecodeError::Truncated));
    }
}
