//! The line-level pieces both RESP reply decoders ([`Decoder`](super::Decoder) and
//! [`TapeDecoder`](super::TapeDecoder)) parse with: finding a line's end, length fields
//! and integers (their digits read by the crate's `lex`, which NATS shares). One copy, so that the two decoders cannot drift apart on what a valid
//! line is; every function is `#[inline(always)]`, as each was in the decoder it came
//! from, so the hot loops compile as before.

/// A length field: a count, `-1` or `?`.
pub(super) enum Len {
    Count(u64),
    Null,
    Streamed,
}

/// Position of the first `\n` in `chunk` at or after `from`. RESP lines are mostly
/// short, so the first 16 bytes are scanned a word at a time, where `memchr`'s setup
/// would cost more than the search itself.
#[inline(always)]
pub(super) fn find_lf(chunk: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([0x01; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    const LFS: u64 = u64::from_le_bytes([b'\n'; 8]);
    let mut at = from;
    for _ in 0..2 {
        let Some(word) = chunk.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) else {
            break;
        };
        let x = u64::from_le_bytes(word) ^ LFS;
        // A high bit marks each zero byte of `x` (a `\n`); the lowest mark is exact.
        let zeros = x.wrapping_sub(ONES) & !x & HIGHS;
        if zeros != 0 {
            return Some(at + (zeros.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr::memchr(b'\n', chunk.get(at..)?).map(|i| at + i)
}

/// Parses a length field: digits, `-1` or `?`; `None` when it is none of them.
#[inline(always)]
pub(super) fn parse_len(line: &[u8]) -> Option<Len> {
    // Digits first: they are the common case.
    if let Some(n) = crate::lex::digits(line) {
        return Some(Len::Count(n));
    }
    match line {
        b"?" => Some(Len::Streamed),
        b"-1" => Some(Len::Null),
        _ => None,
    }
}

/// Parses an optionally signed decimal `i64`, rejecting overflow and stray bytes.
#[inline(always)]
pub(super) fn parse_i64(line: &[u8]) -> Option<i64> {
    let (neg, digits) = match line {
        [b'-', rest @ ..] => (true, rest),
        [b'+', rest @ ..] => (false, rest),
        _ => (false, line),
    };
    if digits.is_empty() || digits.len() > 19 {
        return None;
    }
    if digits.len() <= 18 {
        // Eighteen digits stay below 2^63: the cast cannot wrap.
        let n = crate::lex::digits(digits)? as i64;
        return Some(if neg { -n } else { n });
    }
    // Accumulate negatively so i64::MIN parses.
    let mut n: i64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_sub(i64::from(d - b'0'))?;
    }
    if neg {
        Some(n)
    } else {
        n.checked_neg()
    }
}

/// Whether `text` is a RESP3 big number: an optional sign, then one or more digits.
#[inline(always)]
pub(super) fn is_big_number(text: &[u8]) -> bool {
    let digits = match text {
        [b'-' | b'+', rest @ ..] => rest,
        _ => text,
    };
    !digits.is_empty() && digits.iter().all(u8::is_ascii_digit)
}
