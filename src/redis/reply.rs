//! Turning reply [`Value`]s into Rust types, for the typed helpers and
//! [`Client::query_as`](super::Client::query_as).
//!
//! The conversions accept both dialects: a RESP3 map or set and its RESP2 flat-array
//! form, RESP3 booleans and RESP2 `0`/`1` integers, RESP3 doubles and RESP2 bulk-string
//! numbers. Attributes are ignored. An error reply is always [`Error::Server`].

use bytes::Bytes;
use monocoque_proto::resp::Value;

use super::{Error, ServerError};

/// A type a reply can be converted into.
pub trait FromReply: Sized {
    /// Converts `value`, or says what was expected instead.
    fn from_reply(value: Value) -> Result<Self, Error>;
}

/// Strips attributes and turns error replies into [`Error::Server`].
fn plain(value: Value) -> Result<Value, Error> {
    match value {
        Value::Attributed { value, .. } => plain(*value),
        Value::SimpleError(e) | Value::BlobError(e) => Err(Error::Server(ServerError::new(&e))),
        other => Ok(other),
    }
}

impl FromReply for Value {
    /// Any reply but an error, as it came (attributes included).
    fn from_reply(value: Value) -> Result<Self, Error> {
        match value.without_attributes().as_error() {
            Some(e) => Err(Error::Server(ServerError::new(e))),
            None => Ok(value),
        }
    }
}

impl FromReply for () {
    /// Any reply but an error (typically `+OK`).
    fn from_reply(value: Value) -> Result<Self, Error> {
        plain(value).map(drop)
    }
}

impl FromReply for Bytes {
    /// A simple, bulk or verbatim string.
    fn from_reply(value: Value) -> Result<Self, Error> {
        match plain(value)? {
            Value::SimpleString(b) | Value::BulkString(b) | Value::Verbatim { text: b, .. } => Ok(b),
            other => Err(Error::unexpected("a string", other)),
        }
    }
}

impl FromReply for String {
    /// A string that is valid UTF-8.
    fn from_reply(value: Value) -> Result<Self, Error> {
        let bytes = Bytes::from_reply(value)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Error::unexpected("a UTF-8 string", Value::BulkString(bytes)))
    }
}

impl FromReply for i64 {
    /// An integer, or a string holding one (RESP2 answers some numbers as bulk strings).
    fn from_reply(value: Value) -> Result<Self, Error> {
        match plain(value)? {
            Value::Integer(i) => Ok(i),
            Value::BulkString(b) | Value::SimpleString(b) => {
                match std::str::from_utf8(&b).ok().and_then(|s| s.parse().ok()) {
                    Some(i) => Ok(i),
                    None => Err(Error::unexpected("an integer", Value::BulkString(b))),
                }
            }
            other => Err(Error::unexpected("an integer", other)),
        }
    }
}

impl FromReply for f64 {
    /// A RESP3 double, an integer, or a string holding a number (RESP2 `INCRBYFLOAT`,
    /// `ZSCORE`).
    fn from_reply(value: Value) -> Result<Self, Error> {
        match plain(value)? {
            Value::Double(d) => Ok(d),
            Value::Integer(i) => Ok(i as f64),
            Value::BulkString(b) | Value::SimpleString(b) => {
                let parsed = std::str::from_utf8(&b).ok().and_then(|s| match s {
                    "inf" | "+inf" => Some(f64::INFINITY),
                    "-inf" => Some(f64::NEG_INFINITY),
                    s => s.parse().ok(),
                });
                parsed.ok_or_else(|| Error::unexpected("a number", Value::BulkString(b)))
            }
            other => Err(Error::unexpected("a number", other)),
        }
    }
}

impl FromReply for bool {
    /// A RESP3 boolean, an integer (`0` is false), or `+OK` (true) / null (false), as
    /// `SET NX` answers.
    fn from_reply(value: Value) -> Result<Self, Error> {
        match plain(value)? {
            Value::Boolean(b) => Ok(b),
            Value::Integer(i) => Ok(i != 0),
            Value::SimpleString(s) if &s[..] == b"OK" => Ok(true),
            Value::Null => Ok(false),
            other => Err(Error::unexpected("a boolean", other)),
        }
    }
}

impl<T: FromReply> FromReply for Option<T> {
    /// `None` for a null, else the conversion of the value.
    fn from_reply(value: Value) -> Result<Self, Error> {
        match plain(value)? {
            Value::Null => Ok(None),
            other => T::from_reply(other).map(Some),
        }
    }
}

impl<T: FromReply> FromReply for Vec<T> {
    /// An array, set or push, element by element; a null is an empty vector (RESP2
    /// answers some empty results with `*-1`).
    fn from_reply(value: Value) -> Result<Self, Error> {
        match plain(value)? {
            Value::Array(items) | Value::Set(items) | Value::Push(items) => {
                items.into_iter().map(T::from_reply).collect()
            }
            Value::Null => Ok(Vec::new()),
            other => Err(Error::unexpected("an array", other)),
        }
    }
}

/// Key/value pairs from a RESP3 map or a RESP2 flat array `[k1, v1, k2, v2, ...]`
/// (`HGETALL`, `CONFIG GET`).
pub fn pairs<K: FromReply, V: FromReply>(value: Value) -> Result<Vec<(K, V)>, Error> {
    match plain(value)? {
        Value::Map(entries) => entries
            .into_iter()
            .map(|(k, v)| Ok((K::from_reply(k)?, V::from_reply(v)?)))
            .collect(),
        Value::Array(items) if items.len() % 2 == 0 => {
            let mut out = Vec::with_capacity(items.len() / 2);
            let mut it = items.into_iter();
            while let (Some(k), Some(v)) = (it.next(), it.next()) {
                out.push((K::from_reply(k)?, V::from_reply(v)?));
            }
            Ok(out)
        }
        Value::Null => Ok(Vec::new()),
        other => Err(Error::unexpected("a map", other)),
    }
}

/// A reply that must be the status `+OK`.
pub(crate) fn ok(value: Value) -> Result<(), Error> {
    match plain(value)? {
        Value::SimpleString(s) if &s[..] == b"OK" => Ok(()),
        other => Err(Error::unexpected("OK", other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(s: &'static str) -> Value {
        Value::BulkString(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn strings_and_nulls() {
        assert_eq!(Bytes::from_reply(bulk("v")).unwrap(), "v");
        assert_eq!(Bytes::from_reply(Value::SimpleString("OK".into())).unwrap(), "OK");
        let verbatim = Value::Verbatim {
            format: *b"txt",
            text: "hi".into(),
        };
        assert_eq!(Bytes::from_reply(verbatim).unwrap(), "hi");
        assert_eq!(Option::<Bytes>::from_reply(Value::Null).unwrap(), None);
        assert_eq!(
            Option::<Bytes>::from_reply(bulk("x")).unwrap().as_deref(),
            Some(&b"x"[..])
        );
        assert_eq!(String::from_reply(bulk("é")).unwrap(), "é");
        assert!(matches!(
            String::from_reply(Value::BulkString(Bytes::from_static(b"\xff"))),
            Err(Error::UnexpectedReply { .. })
        ));
        assert!(matches!(
            Bytes::from_reply(Value::Integer(1)),
            Err(Error::UnexpectedReply {
                expected: "a string",
                ..
            })
        ));
    }

    #[test]
    fn errors_become_server_errors() {
        let err = i64::from_reply(Value::SimpleError("WRONGTYPE bad".into())).unwrap_err();
        assert_eq!(err.server_error().map(ServerError::code), Some("WRONGTYPE"));
        let err = Value::from_reply(Value::BlobError("SYNTAX x".into())).unwrap_err();
        assert_eq!(err.server_error().map(ServerError::code), Some("SYNTAX"));
        let attributed = Value::Attributed {
            attributes: vec![],
            value: Box::new(Value::SimpleError("ERR no".into())),
        };
        assert!(Option::<Bytes>::from_reply(attributed)
            .unwrap_err()
            .server_error()
            .is_some());
    }

    #[test]
    fn numbers_and_booleans() {
        assert_eq!(i64::from_reply(Value::Integer(-3)).unwrap(), -3);
        assert_eq!(i64::from_reply(bulk("42")).unwrap(), 42);
        assert!(i64::from_reply(bulk("4x")).is_err());
        assert_eq!(f64::from_reply(Value::Double(1.5)).unwrap(), 1.5);
        assert_eq!(f64::from_reply(bulk("2.25")).unwrap(), 2.25);
        assert_eq!(f64::from_reply(bulk("-inf")).unwrap(), f64::NEG_INFINITY);
        assert_eq!(f64::from_reply(Value::Integer(2)).unwrap(), 2.0);
        assert!(bool::from_reply(Value::Boolean(true)).unwrap());
        assert!(!bool::from_reply(Value::Integer(0)).unwrap());
        assert!(bool::from_reply(Value::Integer(1)).unwrap());
        assert!(bool::from_reply(Value::SimpleString("OK".into())).unwrap());
        assert!(!bool::from_reply(Value::Null).unwrap());
        assert!(bool::from_reply(bulk("yes")).is_err());
        <()>::from_reply(Value::Integer(0)).unwrap();
        ok(Value::SimpleString("OK".into())).unwrap();
        assert!(ok(Value::SimpleString("QUEUED".into())).is_err());
    }

    #[test]
    fn aggregates_in_both_dialects() {
        let arr = Value::Array(vec![bulk("a"), Value::Null, bulk("c")]);
        let got = Vec::<Option<Bytes>>::from_reply(arr).unwrap();
        assert_eq!(got, vec![Some(Bytes::from("a")), None, Some(Bytes::from("c"))]);
        let set = Value::Set(vec![bulk("x"), bulk("y")]);
        assert_eq!(
            Vec::<Bytes>::from_reply(set).unwrap(),
            vec![Bytes::from("x"), Bytes::from("y")]
        );
        assert!(Vec::<Bytes>::from_reply(Value::Null).unwrap().is_empty());
        assert!(Vec::<Bytes>::from_reply(Value::Integer(1)).is_err());

        let map = Value::Map(vec![(bulk("f"), bulk("1")), (bulk("g"), bulk("2"))]);
        let flat = Value::Array(vec![bulk("f"), bulk("1"), bulk("g"), bulk("2")]);
        let expected = vec![
            (Bytes::from("f"), Bytes::from("1")),
            (Bytes::from("g"), Bytes::from("2")),
        ];
        assert_eq!(pairs::<Bytes, Bytes>(map).unwrap(), expected);
        assert_eq!(pairs::<Bytes, Bytes>(flat).unwrap(), expected);
        assert!(pairs::<Bytes, Bytes>(Value::Array(vec![bulk("odd")])).is_err());
        let numbers = Value::Map(vec![(bulk("n"), Value::Integer(7))]);
        assert_eq!(pairs::<String, i64>(numbers).unwrap(), vec![("n".to_owned(), 7)]);
    }
}
