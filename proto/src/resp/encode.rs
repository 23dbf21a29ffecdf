//! Encoding values into an [`IoArena`].

use std::num::NonZeroUsize;

use super::{Protocol, Value};
use crate::chassis::IoArena;

/// Why a value cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A simple string, simple error or big number contains `\r` or `\n`, which its
    /// line framing cannot carry.
    #[error("line-framed value contains CR or LF")]
    LineBreakInLine,
    /// A big number is not an optionally signed run of digits.
    #[error("big number is not a run of digits")]
    InvalidBigNumber,
}

/// Encodes [`Value`]s in one dialect.
///
/// In RESP2, RESP3-only types are downgraded the way Redis downgrades them for RESP2
/// clients: maps become flat arrays, sets and pushes arrays, doubles and big numbers
/// and verbatim strings bulk strings, booleans the integers 1/0, blob errors simple
/// errors, nulls `$-1`; attributes are dropped.
///
/// In RESP3 it can also produce the streamed forms (`$?` with `;n` chunks, and `*?`,
/// `~?`, `%?` ended by `.`), which a server may use for values of unknown size.
#[derive(Debug, Clone, Default)]
pub struct Encoder {
    /// The dialect to write.
    pub protocol: Protocol,
    /// RESP3 only: write bulk strings as streamed strings in chunks of this size.
    pub stream_strings: Option<NonZeroUsize>,
    /// RESP3 only: write arrays, sets and maps as streamed aggregates.
    pub stream_aggregates: bool,
}

impl Encoder {
    /// A plain encoder for `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            ..Self::default()
        }
    }

    /// Appends `value` to `dst`. On error nothing is written.
    pub fn encode(&self, value: &Value, dst: &mut IoArena) -> Result<(), EncodeError> {
        validate(value)?;
        self.write(value, dst);
        Ok(())
    }

    fn resp3(&self) -> bool {
        self.protocol == Protocol::Resp3
    }

    fn write(&self, value: &Value, dst: &mut IoArena) {
        match value {
            Value::SimpleString(s) => line(dst, b'+', s),
            Value::SimpleError(s) => line(dst, b'-', s),
            Value::Integer(i) => {
                dst.put_u8(b':');
                dst.put_int(*i);
                dst.put_slice(b"\r\n");
            }
            Value::BulkString(b) => match self.stream_strings {
                Some(chunk) if self.resp3() => {
                    dst.put_slice(b"$?\r\n");
                    for piece in b.chunks(chunk.get()) {
                        header(dst, b';', piece.len());
                        dst.put_bytes(&b.slice_ref(piece));
                        dst.put_slice(b"\r\n");
                    }
                    dst.put_slice(b";0\r\n");
                }
                _ => blob(dst, b'$', b),
            },
            Value::Null if self.resp3() => dst.put_slice(b"_\r\n"),
            Value::Null => dst.put_slice(b"$-1\r\n"),
            Value::Array(items) => self.aggregate(dst, b'*', items.len(), items.iter()),
            Value::Set(items) if self.resp3() => self.aggregate(dst, b'~', items.len(), items.iter()),
            Value::Push(items) if self.resp3() => {
                header(dst, b'>', items.len());
                items.iter().for_each(|v| self.write(v, dst));
            }
            Value::Set(items) | Value::Push(items) => self.aggregate(dst, b'*', items.len(), items.iter()),
            Value::Map(pairs) if self.resp3() => {
                self.aggregate(dst, b'%', pairs.len(), pairs.iter().flat_map(|(k, v)| [k, v]));
            }
            Value::Map(pairs) => self.aggregate(dst, b'*', pairs.len() * 2, pairs.iter().flat_map(|(k, v)| [k, v])),
            Value::Double(d) => {
                let mut buf = ryu::Buffer::new();
                let text: &[u8] = if d.is_nan() {
                    b"nan"
                } else if d.is_infinite() {
                    if *d > 0.0 {
                        b"inf"
                    } else {
                        b"-inf"
                    }
                } else {
                    buf.format_finite(*d).as_bytes()
                };
                if self.resp3() {
                    line(dst, b',', text);
                } else {
                    header(dst, b'$', text.len());
                    dst.put_slice(text);
                    dst.put_slice(b"\r\n");
                }
            }
            Value::Boolean(b) if self.resp3() => dst.put_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Value::Boolean(b) => dst.put_slice(if *b { b":1\r\n" } else { b":0\r\n" }),
            Value::BlobError(e) if self.resp3() => blob(dst, b'!', e),
            Value::BlobError(e) => {
                // RESP2 has only line errors: replace line breaks rather than break framing.
                dst.put_u8(b'-');
                for &c in e.iter() {
                    dst.put_u8(if c == b'\r' || c == b'\n' { b' ' } else { c });
                }
                dst.put_slice(b"\r\n");
            }
            Value::Verbatim { format, text } if self.resp3() => {
                header(dst, b'=', text.len() + 4);
                dst.put_slice(format);
                dst.put_u8(b':');
                dst.put_bytes(text);
                dst.put_slice(b"\r\n");
            }
            Value::Verbatim { text, .. } => blob(dst, b'$', text),
            Value::BigNumber(n) if self.resp3() => line(dst, b'(', n),
            Value::BigNumber(n) => blob(dst, b'$', n),
            Value::Attributed { attributes, value } => {
                if self.resp3() {
                    header(dst, b'|', attributes.len());
                    for (k, v) in attributes {
                        self.write(k, dst);
                        self.write(v, dst);
                    }
                }
                self.write(value, dst);
            }
        }
    }

    fn aggregate<'a>(&self, dst: &mut IoArena, ty: u8, len: usize, items: impl Iterator<Item = &'a Value>) {
        if self.stream_aggregates && self.resp3() {
            dst.put_u8(ty);
            dst.put_slice(b"?\r\n");
            items.for_each(|v| self.write(v, dst));
            dst.put_slice(b".\r\n");
        } else {
            header(dst, ty, len);
            items.for_each(|v| self.write(v, dst));
        }
    }
}

fn validate(value: &Value) -> Result<(), EncodeError> {
    match value {
        Value::SimpleString(s) | Value::SimpleError(s) if memchr::memchr2(b'\r', b'\n', s).is_some() => {
            return Err(EncodeError::LineBreakInLine);
        }
        Value::BigNumber(n) if !super::lex::is_big_number(n) => {
            return Err(EncodeError::InvalidBigNumber);
        }
        Value::Array(items) | Value::Set(items) | Value::Push(items) => items.iter().try_for_each(validate)?,
        Value::Map(pairs) => pairs
            .iter()
            .try_for_each(|(k, v)| validate(k).and_then(|_| validate(v)))?,
        Value::Attributed { attributes, value } => {
            attributes
                .iter()
                .try_for_each(|(k, v)| validate(k).and_then(|_| validate(v)))?;
            validate(value)?;
        }
        _ => {}
    }
    Ok(())
}

/// Writes `<ty><len>\r\n`.
pub(crate) fn header(dst: &mut IoArena, ty: u8, len: usize) {
    dst.put_u8(ty);
    dst.put_int(len);
    dst.put_slice(b"\r\n");
}

fn line(dst: &mut IoArena, ty: u8, text: &[u8]) {
    dst.put_u8(ty);
    dst.put_slice(text);
    dst.put_slice(b"\r\n");
}

fn blob(dst: &mut IoArena, ty: u8, data: &bytes::Bytes) {
    header(dst, ty, data.len());
    dst.put_bytes(data);
    dst.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(e: &Encoder, v: &Value) -> Vec<u8> {
        let mut a = IoArena::new();
        e.encode(v, &mut a).unwrap();
        a.to_vec()
    }

    #[test]
    fn resp3_forms() {
        let e = Encoder::new(Protocol::Resp3);
        assert_eq!(enc(&e, &Value::Double(f64::INFINITY)), b",inf\r\n");
        assert_eq!(enc(&e, &Value::Double(1.5)), b",1.5\r\n");
        assert_eq!(enc(&e, &Value::Null), b"_\r\n");
        assert_eq!(
            enc(&e, &Value::Map(vec![(Value::from("a"), Value::Integer(1))])),
            b"%1\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(
            enc(
                &e,
                &Value::Verbatim {
                    format: *b"txt",
                    text: "hi".into()
                }
            ),
            b"=6\r\ntxt:hi\r\n"
        );
    }

    #[test]
    fn resp2_downgrades_like_redis() {
        let e = Encoder::new(Protocol::Resp2);
        assert_eq!(enc(&e, &Value::Null), b"$-1\r\n");
        assert_eq!(enc(&e, &Value::Boolean(true)), b":1\r\n");
        assert_eq!(
            enc(&e, &Value::Map(vec![(Value::from("a"), Value::Integer(1))])),
            b"*2\r\n$1\r\na\r\n:1\r\n"
        );
        assert_eq!(enc(&e, &Value::Double(2.0)), b"$3\r\n2.0\r\n");
    }

    #[test]
    fn streamed_forms() {
        let e = Encoder {
            protocol: Protocol::Resp3,
            stream_strings: NonZeroUsize::new(4),
            stream_aggregates: true,
        };
        assert_eq!(enc(&e, &Value::from("Hello")), b"$?\r\n;4\r\nHell\r\n;1\r\no\r\n;0\r\n");
        assert_eq!(enc(&e, &Value::Array(vec![Value::Integer(1)])), b"*?\r\n:1\r\n.\r\n");
    }

    #[test]
    fn line_breaks_in_line_values_are_refused() {
        let e = Encoder::new(Protocol::Resp3);
        let mut a = IoArena::new();
        let bad = Value::Array(vec![Value::SimpleString("a\r\nb".into())]);
        assert_eq!(e.encode(&bad, &mut a), Err(EncodeError::LineBreakInLine));
        assert!(a.is_empty(), "nothing written on error");
    }
}
