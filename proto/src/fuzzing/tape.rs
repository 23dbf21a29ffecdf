//! The tape decoder target: a differential test against [`Decoder`].

use super::resp::{decode_each, identical, small_limits};
use super::split::pieces;
use crate::chassis::SegmentedBuffer;
use crate::resp::{DecodeError, Decoder, DecoderConfig, Protocol, Tape, TapeDecoder, TapeKind, TapeRef, Value};

/// How decoding a stream ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapeEnd {
    /// All input was used; `mid_value` tells whether a value was left unfinished.
    NeedMore {
        /// Part of a value was taken but not finished.
        mid_value: bool,
    },
    /// The stream was rejected.
    Error(DecodeError),
}

/// Fuzzes [`TapeDecoder`] against [`Decoder`].
///
/// Input layout: byte 0 holds options, byte 1 seeds the segment boundaries, the rest is
/// the RESP stream. Options: bit 0 picks RESP2 (set) or RESP3, bit 1 clears the tape
/// after every call (values are read before), bit 2 small limits (so every limit error
/// is reachable).
///
/// Checks, panicking on the first that fails:
/// 1. neither decoder panics;
/// 2. the tape decoder fed the stream in pieces (cut by the seed), decoding after each
///    piece, yields exactly the values [`Decoder`] yields on the stream in one piece,
///    then the same error, or the same "need more" (mid-value or not);
/// 3. every value on the tape reads back consistently: its kind, bytes, scalars and
///    children through [`TapeRef`] agree with its [`to_value`](TapeRef::to_value).
pub fn resp_tape(data: &[u8]) {
    let options = data.first().copied().unwrap_or(0);
    let seed = data.get(1).copied().unwrap_or(0);
    let body = data.get(2..).unwrap_or_default();
    let protocol = if options & 1 != 0 {
        Protocol::Resp2
    } else {
        Protocol::Resp3
    };
    let config = if options & 0b100 != 0 {
        small_limits(protocol)
    } else {
        DecoderConfig::new(protocol)
    };
    let (want, want_end) = value_pieces(&config, vec![body]);
    let (got, got_end) = tape_pieces(&config, pieces(body, seed), options & 0b10 != 0);
    assert_eq!(got_end, want_end, "the tape decoder ended differently");
    assert_eq!(
        got.len(),
        want.len(),
        "the tape decoder found {got:?}, the decoder {want:?}"
    );
    for (a, b) in got.iter().zip(&want) {
        assert!(identical(a, b), "the tape decoder differs:\n{a:?}\n{b:?}");
    }
}

/// [`Decoder`] fed `pieces` one by one, decoding everything available after each.
pub fn value_pieces(config: &DecoderConfig, pieces: Vec<&[u8]>) -> (Vec<Value>, TapeEnd) {
    let mut decoder = Decoder::new(config.clone());
    let mut src = SegmentedBuffer::new();
    let mut values = Vec::new();
    let end = match decode_each(&mut decoder, &mut src, pieces, &mut values) {
        Ok(()) => TapeEnd::NeedMore {
            mid_value: decoder.is_mid_value(),
        },
        Err(e) => TapeEnd::Error(e),
    };
    (values, end)
}

/// [`TapeDecoder`] fed `pieces` one by one, one `decode` call after each, every value
/// checked with [`check_ref`] and materialized. With `clear_each`, the tape is read and
/// cleared after every call; otherwise one tape collects everything.
pub fn tape_pieces(config: &DecoderConfig, pieces: Vec<&[u8]>, clear_each: bool) -> (Vec<Value>, TapeEnd) {
    let mut decoder = TapeDecoder::new(config.clone());
    let mut src = SegmentedBuffer::new();
    let mut tape = Tape::new();
    let mut values = Vec::new();
    let mut end = None;
    for piece in pieces {
        src.push_slice(piece);
        let before = tape.len();
        let result = decoder.decode(&mut src, &mut tape);
        let appended = tape.len() - before;
        if let Ok(n) = result {
            assert_eq!(n, appended, "decode reported {n} values and appended {appended}");
        }
        if clear_each {
            values.extend(tape.iter().map(checked));
            tape.clear();
        }
        if let Err(e) = result {
            end = Some(TapeEnd::Error(e));
            break;
        }
    }
    if !clear_each {
        values.extend(tape.iter().map(checked));
    }
    let end = end.unwrap_or(TapeEnd::NeedMore {
        mid_value: decoder.is_mid_value(),
    });
    (values, end)
}

fn checked(r: TapeRef<'_>) -> Value {
    let v = r.to_value();
    check_ref(r, &v);
    v
}

/// Panics unless every reader of `r` agrees with `v` (its [`to_value`](TapeRef::to_value)
/// or what it should be), children included.
pub fn check_ref(r: TapeRef<'_>, v: &Value) {
    assert!(identical(&r.to_value(), v), "{r:?} is not {v:?}");
    assert_eq!(r.attributes().is_some(), matches!(v, Value::Attributed { .. }), "{v:?}");
    let inner = v.without_attributes();
    let (kind, bytes) = match inner {
        Value::SimpleString(b) => (TapeKind::SimpleString, Some(b)),
        Value::SimpleError(b) => (TapeKind::SimpleError, Some(b)),
        Value::Integer(_) => (TapeKind::Integer, None),
        Value::BulkString(b) => (TapeKind::BulkString, Some(b)),
        Value::Array(_) => (TapeKind::Array, None),
        Value::Null | Value::Attributed { .. } => (TapeKind::Null, None),
        Value::Double(_) => (TapeKind::Double, None),
        Value::Boolean(_) => (TapeKind::Boolean, None),
        Value::BlobError(b) => (TapeKind::BlobError, Some(b)),
        Value::Verbatim { text, .. } => (TapeKind::Verbatim, Some(text)),
        Value::BigNumber(b) => (TapeKind::BigNumber, Some(b)),
        Value::Map(_) => (TapeKind::Map, None),
        Value::Set(_) => (TapeKind::Set, None),
        Value::Push(_) => (TapeKind::Push, None),
    };
    assert_eq!(r.kind(), kind, "{v:?}");
    assert_eq!(r.as_bytes(), bytes.map(|b| &b[..]), "{v:?}");
    assert_eq!(r.to_bytes().as_ref(), bytes, "{v:?}");
    assert_eq!(r.as_integer(), inner.as_integer(), "{v:?}");
    assert_eq!(r.is_null(), inner.is_null());
    assert_eq!(r.is_error(), inner.is_error());
    match inner {
        Value::Double(d) => assert_eq!(r.as_double().map(f64::to_bits), Some(d.to_bits())),
        Value::Boolean(b) => assert_eq!(r.as_bool(), Some(*b)),
        Value::Verbatim { format, .. } => assert_eq!(r.verbatim_format(), Some(*format)),
        _ => {
            assert_eq!(r.as_double(), None);
            assert_eq!(r.as_bool(), None);
            assert_eq!(r.verbatim_format(), None);
        }
    }
    let children: Vec<&Value> = match inner {
        Value::Array(items) | Value::Set(items) | Value::Push(items) => items.iter().collect(),
        Value::Map(pairs) => pairs.iter().flat_map(|(k, v)| [k, v]).collect(),
        _ => Vec::new(),
    };
    assert_eq!(r.child_count(), children.len(), "{v:?}");
    assert_eq!(r.children().len(), children.len(), "{v:?}");
    let mut walked = 0;
    for (c, w) in r.children().zip(&children) {
        check_ref(c, w);
        walked += 1;
    }
    assert_eq!(walked, children.len(), "{v:?}");
    if let Value::Map(pairs) = inner {
        assert_eq!(r.pairs().count(), pairs.len());
    } else {
        assert_eq!(r.pairs().count(), 0);
    }
}
