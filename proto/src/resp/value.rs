//! The RESP2/RESP3 value tree.

use bytes::Bytes;

/// Which RESP dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Protocol {
    /// RESP2: simple strings, errors, integers, bulk strings, arrays.
    Resp2,
    /// RESP3 (after `HELLO 3`): adds maps, sets, pushes, doubles, booleans, ...
    #[default]
    Resp3,
}

/// One RESP value. Strings are [`Bytes`] views into the received segments.
///
/// RESP2's `$-1` and `*-1` and RESP3's `_` all decode to [`Value::Null`]. Streamed
/// strings and aggregates (`$?`, `*?`, `~?`, `%?`) decode to the same variants as their
/// fixed-length forms. An attribute (`|`) wraps the value that follows it.
#[derive(Debug, Clone)]
pub enum Value {
    /// `+`: a status reply such as `OK`.
    SimpleString(Bytes),
    /// `-`: an error reply, e.g. `ERR unknown command`.
    SimpleError(Bytes),
    /// `:`: a signed 64-bit integer.
    Integer(i64),
    /// `$`: a binary-safe string (also a streamed `$?` string, joined).
    BulkString(Bytes),
    /// `*`: an array.
    Array(Vec<Value>),
    /// `_`, `$-1` or `*-1`.
    Null,
    /// `,`: a double, including `inf`, `-inf` and `nan`.
    Double(f64),
    /// `#t` / `#f`.
    Boolean(bool),
    /// `!`: a binary-safe error.
    BlobError(Bytes),
    /// `=`: a string with a three-byte format such as `txt` or `mkd`.
    Verbatim {
        /// The format, e.g. `*b"txt"`.
        format: [u8; 3],
        /// The text after the `xxx:` prefix.
        text: Bytes,
    },
    /// `(`: an integer of any size, as its decimal digits (with an optional `-`).
    BigNumber(Bytes),
    /// `%`: key/value pairs, in wire order.
    Map(Vec<(Value, Value)>),
    /// `~`: an unordered collection, in wire order.
    Set(Vec<Value>),
    /// `>`: out-of-band data (pub/sub messages, invalidations).
    Push(Vec<Value>),
    /// `|`: attributes attached to the value that follows them.
    Attributed {
        /// The attribute pairs.
        attributes: Vec<(Value, Value)>,
        /// The value they describe.
        value: Box<Value>,
    },
}

impl Value {
    /// Whether this is a `-` or `!` error reply.
    pub fn is_error(&self) -> bool {
        matches!(self, Value::SimpleError(_) | Value::BlobError(_))
    }

    /// The error text of a `-` or `!` reply.
    pub fn as_error(&self) -> Option<&Bytes> {
        match self {
            Value::SimpleError(e) | Value::BlobError(e) => Some(e),
            _ => None,
        }
    }

    /// The bytes of a simple, bulk or verbatim string.
    pub fn as_bytes(&self) -> Option<&Bytes> {
        match self {
            Value::SimpleString(b) | Value::BulkString(b) | Value::Verbatim { text: b, .. } => Some(b),
            _ => None,
        }
    }

    /// The integer of an `:` reply.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The elements of an array, set or push.
    pub fn as_elements(&self) -> Option<&[Value]> {
        match self {
            Value::Array(v) | Value::Set(v) | Value::Push(v) => Some(v),
            _ => None,
        }
    }

    /// The value itself, without any attributes wrapped around it.
    pub fn without_attributes(&self) -> &Value {
        match self {
            Value::Attributed { value, .. } => value.without_attributes(),
            other => other,
        }
    }

    /// Whether this is a null of any dialect.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// Whether encoding this value needs RESP3 (anything beyond RESP2's five types).
    pub fn needs_resp3(&self) -> bool {
        match self {
            Value::SimpleString(_) | Value::SimpleError(_) | Value::Integer(_) | Value::BulkString(_) | Value::Null => {
                false
            }
            Value::Array(items) => items.iter().any(Value::needs_resp3),
            _ => true,
        }
    }
}

/// Structural equality; two NaN doubles are equal, so decoded values compare equal to
/// what was encoded.
impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (SimpleString(a), SimpleString(b))
            | (SimpleError(a), SimpleError(b))
            | (BulkString(a), BulkString(b))
            | (BlobError(a), BlobError(b))
            | (BigNumber(a), BigNumber(b)) => a == b,
            (Integer(a), Integer(b)) => a == b,
            (Array(a), Array(b)) | (Set(a), Set(b)) | (Push(a), Push(b)) => a == b,
            (Null, Null) => true,
            (Double(a), Double(b)) => a == b || (a.is_nan() && b.is_nan()),
            (Boolean(a), Boolean(b)) => a == b,
            (Verbatim { format: fa, text: ta }, Verbatim { format: fb, text: tb }) => fa == fb && ta == tb,
            (Map(a), Map(b)) => a == b,
            (
                Attributed {
                    attributes: aa,
                    value: va,
                },
                Attributed {
                    attributes: ab,
                    value: vb,
                },
            ) => aa == ab && va == vb,
            _ => false,
        }
    }
}

impl From<&'static str> for Value {
    fn from(s: &'static str) -> Self {
        Value::BulkString(Bytes::from_static(s.as_bytes()))
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Value::Integer(i)
    }
}
