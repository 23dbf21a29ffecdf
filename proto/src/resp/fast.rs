//! The [`Decoder`](super::Decoder)'s fast path: a value that lies whole in one segment,
//! read in place without consuming anything.
//!
//! [`aggregate`] reads an aggregate of scalars (and of aggregates of those, a few levels
//! deep), the shape of nearly every multi-value reply, straight from the segment:
//! no frame stack, no intermediate element list, strings cut from the segment as
//! views. It returns `None` for anything it does not take (attributes, streamed forms,
//! a value that goes on past the segment) and for anything the general path would
//! refuse (malformed input, a limit exceeded): the caller then leaves the value to the
//! general path, which decodes it or reports the precise error. So the fast path only
//! accepts what the general path accepts, and builds the very same [`Value`].

use bytes::Bytes;

use super::lex::{find_lf, is_big_number, parse_i64, parse_len, Len};
use super::{DecoderConfig, Protocol, Value};

/// Aggregates nested deeper than this (counted from where the fast path started) are
/// left to the general path, so the recursion here stays shallow whatever `max_depth`
/// the configuration allows.
const FAST_NESTING: usize = 8;

/// Elements reserved up front for an aggregate (as the general path does): the rest
/// only as elements are read.
const PREALLOC_ELEMENTS: usize = 1024;

/// The limits the fast path checks, copied out of the [`DecoderConfig`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Limits {
    resp3: bool,
    max_bulk_len: u64,
    max_aggregate_len: u64,
    max_line_len: usize,
    max_depth: usize,
    /// The depth (enclosing aggregates) at which an aggregate may no longer be opened
    /// here: `max_depth`, or [`FAST_NESTING`] levels below where the fast path started.
    depth_limit: usize,
}

impl From<&DecoderConfig> for Limits {
    fn from(config: &DecoderConfig) -> Self {
        Self {
            resp3: config.protocol == Protocol::Resp3,
            max_bulk_len: config.max_bulk_len as u64,
            max_aggregate_len: config.max_aggregate_len as u64,
            max_line_len: config.max_line_len,
            max_depth: config.max_depth,
            depth_limit: config.max_depth,
        }
    }
}

/// Reads the aggregate (`*`, and RESP3's `%`, `~`, `>`) at the front of `seg`, which
/// `depth` aggregates enclose, with its elements. Returns the value and the bytes it
/// takes, or `None` to leave it to the general path.
#[inline(never)]
pub(super) fn aggregate(lim: &Limits, seg: &Bytes, depth: usize) -> Option<(Value, usize)> {
    let lim = Limits {
        depth_limit: lim.max_depth.min(depth.saturating_add(FAST_NESTING)),
        ..*lim
    };
    value_at(&lim, seg, 0, depth)
}

/// Reads the value starting at `seg[pos]`, which `depth` aggregates enclose. Returns the
/// value and the offset just past it, or `None` to leave it to the general path.
#[inline(always)]
fn value_at(lim: &Limits, seg: &Bytes, pos: usize, depth: usize) -> Option<(Value, usize)> {
    let chunk: &[u8] = seg;
    let ty = *chunk.get(pos)?;
    match ty {
        b'+' | b'-' | b':' | b'$' | b'*' => {}
        b'_' | b'#' | b',' | b'%' | b'~' | b'>' | b'(' | b'!' | b'=' if lim.resp3 => {}
        _ => return None,
    }
    let lf = find_lf(chunk, pos + 1)?;
    // `lf > pos`, so `cr >= pos`; a line that is only its type byte has no `\r`.
    let cr = lf - 1;
    if cr - pos > lim.max_line_len || chunk[cr] != b'\r' {
        return None;
    }
    let body = &chunk[pos + 1..cr];
    let next = lf + 1;
    let value = match ty {
        b':' => Value::Integer(parse_i64(body)?),
        b'$' | b'!' | b'=' => return payload_at(lim, seg, ty, body, next),
        b'+' | b'-' => {
            if ty == b'+' {
                if let Some(known) = well_known_status(body) {
                    return Some((Value::SimpleString(known), next));
                }
            }
            // A plain loop: status lines are short, `contains` would call `memchr`.
            #[allow(clippy::manual_contains)]
            let has_cr = body.iter().any(|&b| b == b'\r');
            if has_cr {
                return None;
            }
            let text = seg.slice(pos + 1..cr);
            if ty == b'+' {
                Value::SimpleString(text)
            } else {
                Value::SimpleError(text)
            }
        }
        b'*' | b'%' | b'~' | b'>' => return aggregate_at(lim, seg, ty, body, next, depth),
        b'_' if body.is_empty() => Value::Null,
        b'#' => match body {
            b"t" => Value::Boolean(true),
            b"f" => Value::Boolean(false),
            _ => return None,
        },
        b',' => Value::Double(parse_double(body)?),
        b'(' if is_big_number(body) => Value::BigNumber(seg.slice(pos + 1..cr)),
        _ => return None,
    };
    Some((value, next))
}

/// A `$`, `!` or `=` value whose header line `body` ends at `next`.
#[inline(always)]
fn payload_at(lim: &Limits, seg: &Bytes, ty: u8, body: &[u8], next: usize) -> Option<(Value, usize)> {
    let n = match parse_len(body)? {
        Len::Count(n) if n <= lim.max_bulk_len => n as usize,
        Len::Null if ty == b'$' => return Some((Value::Null, next)),
        _ => return None,
    };
    let end = next.checked_add(n)?;
    if seg.get(end..end.checked_add(2)?)? != b"\r\n" {
        return None;
    }
    let value = match ty {
        b'$' => Value::BulkString(seg.slice(next..end)),
        b'!' => Value::BlobError(seg.slice(next..end)),
        _ => {
            if n < 4 || seg[next + 3] != b':' {
                return None;
            }
            Value::Verbatim {
                format: [seg[next], seg[next + 1], seg[next + 2]],
                text: seg.slice(next + 4..end),
            }
        }
    };
    Some((value, end + 2))
}

/// A `*`, `%`, `~` or `>` aggregate whose header line `body` ends at `next`, and its
/// elements. Out of line: it calls [`value_at`] for each element.
#[inline(never)]
fn aggregate_at(lim: &Limits, seg: &Bytes, ty: u8, body: &[u8], next: usize, depth: usize) -> Option<(Value, usize)> {
    let n = match parse_len(body)? {
        Len::Count(n) => n,
        Len::Null if ty == b'*' => return Some((Value::Null, next)),
        _ => return None,
    };
    let elements = if ty == b'%' { n.saturating_mul(2) } else { n };
    // Every element takes at least 3 bytes (`_\r\n`): an aggregate announcing more than
    // the rest of the segment can hold is not whole here, and nothing is reserved for it.
    if elements > lim.max_aggregate_len || elements > ((seg.len() - next) / 3) as u64 || depth >= lim.depth_limit {
        return None;
    }
    let n = n as usize;
    let mut pos = next;
    let inner = depth + 1;
    if ty == b'%' {
        let mut pairs = Vec::with_capacity(n.min(PREALLOC_ELEMENTS));
        for _ in 0..n {
            let (key, at) = value_at(lim, seg, pos, inner)?;
            let (value, at) = value_at(lim, seg, at, inner)?;
            pairs.push((key, value));
            pos = at;
        }
        return Some((Value::Map(pairs), pos));
    }
    let mut items = Vec::with_capacity(n.min(PREALLOC_ELEMENTS));
    for _ in 0..n {
        let (item, at) = value_at(lim, seg, pos, inner)?;
        items.push(item);
        pos = at;
    }
    let value = match ty {
        b'*' => Value::Array(items),
        b'~' => Value::Set(items),
        _ => Value::Push(items),
    };
    Some((value, pos))
}

/// Status replies common enough to be worth a static `Bytes`: returning one costs no
/// reference count, where a view of the input costs two atomic operations.
#[inline(always)]
pub(super) fn well_known_status(line: &[u8]) -> Option<Bytes> {
    match *line {
        [b'O', b'K'] => Some(Bytes::from_static(b"OK")),
        [b'P', b'O', b'N', b'G'] => Some(Bytes::from_static(b"PONG")),
        [b'Q', b'U', b'E', b'U', b'E', b'D'] => Some(Bytes::from_static(b"QUEUED")),
        _ => None,
    }
}

/// Parses a RESP3 double as `str::parse::<f64>` does; `None` when that refuses it.
#[inline]
pub(super) fn parse_double(line: &[u8]) -> Option<f64> {
    if let Some(d) = short_decimal(line) {
        return Some(d);
    }
    // Rust also accepts "infinity"; RESP3 says "inf", and Redis never sends the long form,
    // so accepting it is harmless.
    std::str::from_utf8(line).ok()?.parse::<f64>().ok()
}

/// Powers of ten that are exact in an `f64` (up to 10^22; 15 are enough here).
const POW10: [f64; 16] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
];

/// The common double: `-`? digits (`.` digits)?, at most 15 digits in all. Its digits
/// are an integer below 2^53 and its scale a power of ten at most 10^15, both exact in
/// an `f64`, so one division gives the correctly rounded value, the one
/// `str::parse::<f64>` returns (the fast path of every correct decimal parser).
/// `None` for any other form.
#[inline(always)]
fn short_decimal(line: &[u8]) -> Option<f64> {
    let (neg, text) = match line {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, line),
    };
    if text.is_empty() || text.len() > 16 {
        return None;
    }
    let mut mantissa: u64 = 0;
    let mut point = None;
    for (i, &b) in text.iter().enumerate() {
        let digit = b.wrapping_sub(b'0');
        if digit <= 9 {
            mantissa = mantissa * 10 + u64::from(digit);
        } else if b == b'.' && point.is_none() {
            point = Some(i);
        } else {
            return None;
        }
    }
    let scale = match point {
        // Digits on both sides of the point: "5." and ".5" are left to `str::parse`.
        Some(i) if i == 0 || i + 1 == text.len() => return None,
        Some(i) => text.len() - i - 1,
        // Sixteen digits could exceed 2^53.
        None if text.len() > 15 => return None,
        None => 0,
    };
    let d = mantissa as f64 / POW10[scale];
    Some(if neg { -d } else { d })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_std(line: &[u8]) -> Option<f64> {
        std::str::from_utf8(line).ok()?.parse::<f64>().ok()
    }

    #[test]
    fn short_decimals_match_the_standard_parser() {
        for text in [
            "0",
            "-0",
            "1",
            "-1",
            "0.5",
            "1234.5",
            "-1234.5",
            "0.1",
            "0.3",
            "3.14159265358979",
            "999999999999999",
            "99999999999999.9",
            "0.00000000000001",
            "123456789012345",
            "1.79769313486231",
        ] {
            let fast = short_decimal(text.as_bytes()).unwrap_or_else(|| panic!("{text} not taken"));
            assert_eq!(fast.to_bits(), parse_std(text.as_bytes()).unwrap().to_bits(), "{text}");
        }
        // Forms left to the standard parser.
        for text in [
            "",
            "-",
            ".5",
            "5.",
            "1e3",
            "inf",
            "+1",
            "1.2.3",
            "1234567890123456",
            "12345678901234.56",
        ] {
            assert_eq!(short_decimal(text.as_bytes()), None, "{text}");
        }
    }
}
