//! The fast path: a whole `PUB`, `HPUB`, `MSG` or `HMSG` frame in its canonical
//! spelling, at the front of the buffer, split in one pass.
//!
//! Canonical means what every client and server writes: the op name in capitals or
//! lower case followed by one space, fields separated by single spaces, `\r\n` at the
//! end of the line, sizes of 1 to 9 digits within the limits, and the payload's `\r\n`
//! already received. Anything else — tabs, runs of blanks, a bare `\n`, a frame
//! not complete yet, any error — returns `None` and the caller runs the general path
//! (`decode`), which decides. So the fast path only ever returns what the general path
//! would return for the same bytes; it skips the general path's per-byte field loop
//! and its `memchr` call (whose set-up costs more than a short control line).
//!
//! Field boundaries are found eight bytes at a time: every byte below `0x21` (space,
//! tab, `\r`, `\n`, other control bytes) ends a field; only a space or the final
//! `\r\n` is accepted as the fast path's separator. When the input holds at least
//! [`WINDOW`] bytes, a line of fewer than [`WINDOW_LINE`] bytes is split within that
//! fixed-size window, straight-line and without bounds checks (every index is masked
//! into it); the last frames of a buffer and longer lines are split by the same rules
//! on the slice.
//!
//! The frame decoders (`frame`) call [`publish_line`] and [`message_line`], which split
//! a line into ranges, and cut the fields out of their input.

use std::ops::Range;

use super::Limits;

/// OR-ed into a little-endian word, lowers the case of its first three letters (and
/// leaves the fourth byte, the separator, as it is).
const LOWER3: u64 = 0x0020_2020;
/// The same for a four-letter name.
const LOWER4: u64 = 0x2020_2020;
const FOUR: u64 = 0xffff_ffff;
const FIVE: u64 = 0xff_ffff_ffff;

const fn word(name: &[u8]) -> u64 {
    let mut w = 0u64;
    let mut i = 0;
    while i < name.len() {
        w |= (name[i] as u64) << (8 * i);
        i += 1;
    }
    w
}

const PUB: u64 = word(b"pub ");
const HPUB: u64 = word(b"hpub ");
const MSG: u64 = word(b"msg ");
const HMSG: u64 = word(b"hmsg ");

/// A bit set in the top of every byte of `w` below `0x21`, and only there (no carry
/// crosses bytes: `(b & 0x7f) + 0x5f` is at most `0xde`).
#[inline(always)]
fn below_0x21(w: u64) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    const TOPS: u64 = 0x8080_8080_8080_8080;
    let t = (w & LOW7).wrapping_add(0x5f5f_5f5f_5f5f_5f5f);
    !(t | w) & TOPS
}

/// Index of the first byte below `0x21` in `buf[from..]`.
#[inline(always)]
fn next_separator(buf: &[u8], mut from: usize) -> Option<usize> {
    while let Some(w) = buf.get(from..).and_then(<[u8]>::first_chunk::<8>) {
        let m = below_0x21(u64::from_le_bytes(*w));
        if m != 0 {
            return Some(from + (m.trailing_zeros() / 8) as usize);
        }
        from += 8;
    }
    buf.get(from..)?.iter().position(|&b| b < 0x21).map(|k| from + k)
}

/// The end of the field starting at `start`, and whether the line ends there (`\r\n`)
/// rather than another field following (one space). `None` for an empty field or any
/// other separator.
#[inline(always)]
fn field(chunk: &[u8], start: usize) -> Option<(usize, bool)> {
    let end = next_separator(chunk, start)?;
    if end == start {
        return None;
    }
    let two = u16::from_le_bytes(*chunk.get(end..)?.first_chunk::<2>()?);
    if two == u16::from_le_bytes(*b"\r\n") {
        Some((end, true))
    } else if two as u8 == b' ' {
        Some((end, false))
    } else {
        None
    }
}

/// A size field: 1 to 9 decimal digits. Its own loop rather than the crate's
/// `lex::digits`: sharing that one changed how this path compiles and cost a canonical
/// `PUB` 10 instructions (141 against 131, callgrind, `benches/nats_parse.rs`).
#[inline(always)]
fn size(chunk: &[u8], start: usize, end: usize) -> Option<usize> {
    let field = chunk.get(start..end)?;
    if field.len() > 9 {
        return None;
    }
    let mut n = 0usize;
    for &d in field {
        let digit = d.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        n = n * 10 + usize::from(digit);
    }
    Some(n)
}

/// A canonical control line split: the leading fields (subject, and the sid for
/// `MSG`/`HMSG`), the optional reply, the sizes, and where the payload starts and ends.
#[derive(Clone, Copy)]
pub(crate) struct Line {
    /// Where the subject starts (after the op name and its space).
    start: usize,
    /// Subject (and sid): ends of the leading fields; each starts one byte after the
    /// previous field's end (the first after the op name's space).
    lead: [usize; 2],
    reply: Option<(usize, usize)>,
    headers: usize,
    body: usize,
    end: usize,
}

impl Line {
    /// The subject's range.
    #[inline(always)]
    pub fn subject(&self) -> Range<usize> {
        self.start..self.lead[0]
    }

    /// The sid's range (`MSG`/`HMSG` only).
    #[inline(always)]
    pub fn sid(&self) -> Range<usize> {
        self.lead[0] + 1..self.lead[1]
    }

    /// The reply subject's range, if there is one.
    #[inline(always)]
    pub fn reply(&self) -> Option<Range<usize>> {
        self.reply.map(|(s, e)| s..e)
    }

    /// The header block's range (empty without headers).
    #[inline(always)]
    pub fn headers(&self) -> Range<usize> {
        self.body..self.body + self.headers
    }

    /// The payload's range (after the header block).
    #[inline(always)]
    pub fn payload(&self) -> Range<usize> {
        self.body + self.headers..self.end
    }

    /// The whole frame's length, its final `\r\n` included.
    #[inline(always)]
    pub fn len(&self) -> usize {
        self.end + 2
    }
}

/// Splits a canonical line of `LEAD` leading fields (1 for `PUB`/`HPUB`: subject; 2 for
/// `MSG`/`HMSG`: subject and sid), an optional reply, then the header size when
/// `HEADERS`, then the total size; checks the limits and that the payload and its
/// `\r\n` are in `chunk`.
#[inline(always)]
fn split<const LEAD: usize, const HEADERS: bool>(chunk: &[u8], limits: &Limits, from: usize) -> Option<Line> {
    let mut lead = [0usize; 2];
    let mut start = from;
    for slot in lead.iter_mut().take(LEAD) {
        let (end, last) = field(chunk, start)?;
        if last {
            return None;
        }
        *slot = end;
        start = end + 1;
    }
    // Then 2 or 3 fields (without headers: [reply] size), 3 or 4 with headers
    // ([reply] header-size size): collect their ends.
    let want = 1 + usize::from(HEADERS);
    let mut ends = [0usize; 3];
    let mut n = 0;
    let cr = loop {
        let (end, last) = field(chunk, start)?;
        *ends.get_mut(n)? = end;
        n += 1;
        if last {
            break end;
        }
        start = end + 1;
    };
    if cr > limits.max_control_line || n < want {
        return None;
    }
    let reply = match n - want {
        0 => None,
        1 => Some((start_of(&ends, 0, lead[LEAD - 1]), ends[0])),
        _ => return None,
    };
    let total_at = n - 1;
    let total = size(chunk, start_of(&ends, total_at, lead[LEAD - 1]), ends[total_at])?;
    let headers = if HEADERS {
        let h = size(chunk, start_of(&ends, total_at - 1, lead[LEAD - 1]), ends[total_at - 1])?;
        if h > total {
            return None;
        }
        h
    } else {
        0
    };
    if total > limits.max_payload {
        return None;
    }
    let body = cr + 2;
    let end = body + total;
    if chunk.get(end..)?.first_chunk::<2>()? != b"\r\n" {
        return None;
    }
    Some(Line {
        start: from,
        lead,
        reply,
        headers,
        body,
        end,
    })
}

/// Positions within a window of [`WINDOW`] bytes where fields may start and end: a line
/// (without its `\r\n`) of fewer bytes than this, less one, is split by
/// [`split_window`].
const WINDOW_LINE: usize = 64;
/// The window: [`WINDOW_LINE`] positions and a word's worth of bytes after the last.
const WINDOW: usize = WINDOW_LINE + 8;

/// Why [`split_window`] gave up.
enum Miss {
    /// Not canonical (or incomplete): the general path decides.
    Other,
    /// The line goes on past the window: split it on the slice.
    Slice,
}

/// The word at `at` (taken modulo [`WINDOW_LINE`], so no bounds check is needed).
#[inline(always)]
fn window_word(win: &[u8; WINDOW], at: usize) -> u64 {
    let at = at % WINDOW_LINE;
    let mut w = [0u8; 8];
    w.copy_from_slice(&win[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Whether the field ending at `end` (a byte below `0x21`, inside the window) ends the
/// line (`\r\n`) rather than being followed by another (one space).
#[inline(always)]
fn window_separator(win: &[u8; WINDOW], end: usize) -> Result<bool, Miss> {
    // The next field, if any, must start inside the window too.
    if end >= WINDOW_LINE - 1 {
        return Err(Miss::Slice);
    }
    let two = u16::from_le_bytes([win[end], win[end + 1]]);
    if two == u16::from_le_bytes(*b"\r\n") {
        Ok(true)
    } else if two as u8 == b' ' {
        Ok(false)
    } else {
        Err(Miss::Other)
    }
}

/// The field starting at `start` (inside the window): its end, and whether the line
/// ends there (`\r\n`) rather than another field following (one space).
#[inline(always)]
fn window_field(win: &[u8; WINDOW], start: usize) -> Result<(usize, bool), Miss> {
    let mut at = start;
    let end = loop {
        let m = below_0x21(window_word(win, at));
        if m != 0 {
            break at + (m.trailing_zeros() / 8) as usize;
        }
        at += 8;
        if at >= WINDOW_LINE {
            return Err(Miss::Slice);
        }
    };
    if end == start {
        return Err(Miss::Other);
    }
    Ok((end, window_separator(win, end)?))
}

/// A field after the leading ones (a size, or the reply subject before the sizes): as
/// [`window_field`], and its value when it is 1 to 9 decimal digits. The digits are
/// read one by one, as the field is scanned, since sizes are short.
#[inline(always)]
fn window_value(win: &[u8; WINDOW], start: usize) -> Result<(usize, bool, Option<usize>), Miss> {
    let Some(bytes) = win.get(start..start + 10) else {
        return Err(Miss::Slice);
    };
    let mut n = 0usize;
    let mut len = 0;
    while len < 9 {
        let digit = bytes[len].wrapping_sub(b'0');
        if digit > 9 {
            break;
        }
        n = n * 10 + usize::from(digit);
        len += 1;
    }
    if len > 0 && bytes[len] < 0x21 {
        let end = start + len;
        return Ok((end, window_separator(win, end)?, Some(n)));
    }
    // Not a size (or more than 9 digits): a token.
    let (end, last) = window_field(win, start)?;
    Ok((end, last, None))
}

/// [`split`] for a line inside `win`, the first [`WINDOW`] bytes of `chunk`: the same
/// rules, unrolled. [`Miss::Slice`] when the line does not end inside the window.
#[inline(always)]
fn split_window<const LEAD: usize, const HEADERS: bool>(
    win: &[u8; WINDOW],
    chunk: &[u8],
    limits: &Limits,
    from: usize,
) -> Result<Line, Miss> {
    let mut lead = [0usize; 2];
    let mut start = from;
    for slot in lead.iter_mut().take(LEAD) {
        let (end, last) = window_field(win, start)?;
        if last {
            return Err(Miss::Other);
        }
        *slot = end;
        start = end + 1;
    }
    // Without headers `[reply] size`, with headers `[reply] header-size size`.
    let (a_end, a_last, a_value) = window_value(win, start)?;
    let a = Some((start, a_end));
    let (reply, headers, total, cr) = if !HEADERS {
        if a_last {
            (None, Some(0), a_value, a_end)
        } else {
            let (b_end, b_last, b_value) = window_value(win, a_end + 1)?;
            if !b_last {
                return Err(Miss::Other);
            }
            (a, Some(0), b_value, b_end)
        }
    } else {
        if a_last {
            return Err(Miss::Other);
        }
        let (b_end, b_last, b_value) = window_value(win, a_end + 1)?;
        if b_last {
            (None, a_value, b_value, b_end)
        } else {
            let (c_end, c_last, c_value) = window_value(win, b_end + 1)?;
            if !c_last {
                return Err(Miss::Other);
            }
            (a, b_value, c_value, c_end)
        }
    };
    let (Some(headers), Some(total)) = (headers, total) else {
        return Err(Miss::Other);
    };
    if cr > limits.max_control_line || headers > total || total > limits.max_payload {
        return Err(Miss::Other);
    }
    let body = cr + 2;
    let end = body + total;
    match chunk.get(end..end + 2) {
        Some(b"\r\n") => {}
        _ => return Err(Miss::Other),
    }
    Ok(Line {
        start: from,
        lead,
        reply,
        headers,
        body,
        end,
    })
}

/// Splits a canonical line at the front of `chunk`: within the window when `chunk`
/// holds one and the line fits, else on the slice.
#[inline(always)]
fn split_any<const LEAD: usize, const HEADERS: bool>(chunk: &[u8], limits: &Limits, from: usize) -> Option<Line> {
    if let Some(win) = chunk.first_chunk::<WINDOW>() {
        match split_window::<LEAD, HEADERS>(win, chunk, limits, from) {
            Ok(line) => return Some(line),
            Err(Miss::Other) => return None,
            Err(Miss::Slice) => {}
        }
    }
    split::<LEAD, HEADERS>(chunk, limits, from)
}

/// Where field `i` of `ends` starts: after the previous one, or after `lead_end`.
#[inline(always)]
fn start_of(ends: &[usize; 3], i: usize, lead_end: usize) -> usize {
    match i.checked_sub(1) {
        Some(prev) => ends[prev] + 1,
        None => lead_end + 1,
    }
}

/// A canonical payload frame whole at the front of `chunk`, split, and whether it has
/// headers: `plain` and `with_headers` are the op words (`PUB`/`HPUB` or `MSG`/`HMSG`),
/// `LEAD` the fields before the reply (1: subject; 2: subject and sid).
#[inline(always)]
fn payload_line<const LEAD: usize>(
    chunk: &[u8],
    limits: &Limits,
    plain: u64,
    with_headers: u64,
) -> Option<(Line, bool)> {
    let head = u64::from_le_bytes(*chunk.first_chunk::<8>()?);
    if (head & FOUR) | LOWER3 == plain {
        Some((split_any::<LEAD, false>(chunk, limits, 4)?, false))
    } else if (head & FIVE) | LOWER4 == with_headers {
        Some((split_any::<LEAD, true>(chunk, limits, 5)?, true))
    } else {
        None
    }
}

/// A canonical `PUB`/`HPUB` whole at the front of `chunk`, split, and whether it is an
/// `HPUB`.
#[inline(always)]
pub(crate) fn publish_line(chunk: &[u8], limits: &Limits) -> Option<(Line, bool)> {
    payload_line::<1>(chunk, limits, PUB, HPUB)
}

/// A canonical `MSG`/`HMSG` whole at the front of `chunk`, split, and whether it is an
/// `HMSG`.
#[inline(always)]
pub(crate) fn message_line(chunk: &[u8], limits: &Limits) -> Option<(Line, bool)> {
    payload_line::<2>(chunk, limits, MSG, HMSG)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn separators_are_the_bytes_below_0x21() {
        for b in 0..=255u8 {
            for pos in 0..8 {
                let mut w = [b'a'; 8];
                w[pos] = b;
                let m = below_0x21(u64::from_le_bytes(w));
                let want = if b < 0x21 { 0x80u64 << (8 * pos) } else { 0 };
                assert_eq!(m, want, "byte {b:#x} at {pos}");
            }
        }
        let line = b"PUB foo.bar.baz.qux.quux 16\r\n";
        assert_eq!(next_separator(line, 4), Some(24));
        assert_eq!(next_separator(line, 25), Some(27));
        assert_eq!(next_separator(b"abc", 0), None);
        assert_eq!(next_separator(b"abc\x7f\x80\xff \n", 0), Some(6));
    }

    #[test]
    fn a_four_letter_op_needs_a_real_space() {
        // OR-ing 0x20 into the separator turned a NUL into a space: found by the
        // nats_client_decode fuzz target. The general path rejects a NUL there.
        for frame in [
            &b"HMSG\0a 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"[..],
            b"HPUB\0a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n",
        ] {
            let client = crate::nats::ClientFrameDecoder::default().decode(frame);
            let server = crate::nats::ServerFrameDecoder::default().decode(frame);
            assert!(client.is_err() && server.is_err(), "{client:?} {server:?}");
        }
    }

    #[test]
    fn op_words_match_either_case_and_need_a_space() {
        let head = |s: &[u8]| {
            let mut w = [0u8; 8];
            w[..s.len()].copy_from_slice(s);
            u64::from_le_bytes(w)
        };
        assert_eq!((head(b"PUB foo ") & FOUR) | LOWER3, PUB);
        assert_eq!((head(b"pUb foo ") & FOUR) | LOWER3, PUB);
        assert_ne!((head(b"PUB\tfoo ") & FOUR) | LOWER3, PUB);
        assert_ne!((head(b"PUB\0foo ") & FOUR) | LOWER3, PUB);
        assert_eq!((head(b"hPuB foo") & FIVE) | LOWER4, HPUB);
        assert_ne!((head(b"HPUB\tfoo") & FIVE) | LOWER4, HPUB);
        assert_eq!((head(b"MSG a 1 ") & FOUR) | LOWER3, MSG);
        assert_eq!((head(b"HMSG a 1") & FIVE) | LOWER4, HMSG);
    }

    /// A canonical `PUB`/`HPUB` at the front of `input`: its subject, reply, header
    /// block and payload, and its length.
    #[allow(clippy::type_complexity)]
    fn fast_client(input: &[u8]) -> Option<(&[u8], Option<&[u8]>, Option<&[u8]>, &[u8], usize)> {
        let (line, headers) = publish_line(input, &Limits::default())?;
        Some((
            &input[line.subject()],
            line.reply().map(|r| &input[r]),
            headers.then(|| &input[line.headers()]),
            &input[line.payload()],
            line.len(),
        ))
    }

    #[test]
    fn canonical_frames_take_the_fast_path() {
        let input = b"PUB foo.bar 5\r\nhello\r\nPING\r\n";
        assert_eq!(
            fast_client(input),
            Some((&b"foo.bar"[..], None, None, &b"hello"[..], input.len() - 6))
        );
        let input = b"hpub a r 12 14\r\nNATS/1.0\r\n\r\nhi\r\n";
        assert_eq!(
            fast_client(input),
            Some((
                &b"a"[..],
                Some(&b"r"[..]),
                Some(&b"NATS/1.0\r\n\r\n"[..]),
                &b"hi"[..],
                input.len()
            ))
        );
    }

    #[test]
    fn anything_unusual_is_left_to_the_general_path() {
        for input in [
            &b"PUB  foo 5\r\nhello\r\n"[..], // a run of spaces
            b"PUB foo\t5\r\nhello\r\n",      // a tab
            b"PUB foo 5\nhello\r\n",         // a bare \n
            b"PUB foo 5 \r\nhello\r\n",      // a trailing space
            b"PUB foo 5\r\nhello\r\r",       // no \r\n after the payload
            b"PUB foo 5\r\nhell",            // incomplete
            b"PUB foo 0123456789\r\n",       // 10 digits
            b"PUB foo 5x\r\nhello\r\n",      // not a size
            b"PUB foo 2000000\r\n",          // over max_payload
            b"PUB foo\r\n\r\n",              // too few fields
            b"PUB a b c 5\r\nhello\r\n",     // too many fields
            b"HPUB foo 6 5\r\nhello\r\n",    // headers over total
            b"PUB foo\x01 5\r\nhello\r\n",   // a control byte inside a field
            b"SUB foo 1\r\n",                // not a payload op
            b"PUB a\r\n",                    // shorter than a word
        ] {
            assert!(fast_client(input).is_none(), "{:?}", String::from_utf8_lossy(input));
        }
        let mut long = b"PUB ".to_vec();
        long.extend(std::iter::repeat_n(b'a', 5000));
        long.extend_from_slice(b" 1\r\nx\r\n");
        assert!(fast_client(&long).is_none());
    }

    /// `input` followed by enough bytes for the window split.
    fn padded(input: &[u8]) -> Vec<u8> {
        [input, &[b'x'; WINDOW][..]].concat()
    }

    #[test]
    fn the_window_refuses_what_the_slice_refuses() {
        for input in [
            &b"PUB  foo 5\r\nhello\r\n"[..],
            b"PUB foo\t5\r\nhello\r\n",
            b"PUB foo 5\nhello\r\n",
            b"PUB foo 5 \r\nhello\r\n",
            b"PUB foo 5\r\nhello\r\r",
            b"PUB foo 5\r\nhell",
            b"PUB foo 0123456789\r\n",
            b"PUB foo 5x\r\nhello\r\n",
            b"PUB foo x5\r\nhello\r\n",
            b"PUB foo 2000000\r\n",
            b"PUB foo\r\n\r\n",
            b"PUB a b c 5\r\nhello\r\n",
            b"HPUB foo 6 5\r\nhello\r\n",
            b"HPUB foo r x 5\r\nhello\r\n",
            b"HPUB foo 5\r\nhello\r\n",
            b"PUB foo\x01 5\r\nhello\r\n",
            b"PUB foo 5\x01\r\nhello\r\n",
            b"PUB foo 5\r\x01hello\r\n",
            b"SUB foo 1\r\n",
            b"PUB a\r\n",
        ] {
            let input = padded(input);
            assert!(fast_client(&input).is_none(), "{:?}", String::from_utf8_lossy(&input));
        }
    }

    #[test]
    fn window_and_slice_split_alike() {
        let mut frames = Vec::new();
        for len in [1, 7, 8, 9, 15, 16, 40, 50, 55, 56, 57, 58, 59, 60, 61, 62, 63, 64, 70] {
            let subject = "s".repeat(len);
            for size in ["5", "05", "0000005", "00000005", "000000005"] {
                frames.push(format!("PUB {subject} {size}\r\nhello\r\n"));
                frames.push(format!("PUB {subject} 12345 {size}\r\nhello\r\n"));
                frames.push(format!("HPUB {subject} {size} {size}\r\nhello\r\n"));
                frames.push(format!("HPUB {subject} r{len} 0 {size}\r\nhello\r\n"));
                frames.push(format!("MSG {subject} {len} {size}\r\nhello\r\n"));
                frames.push(format!("MSG {subject} 1 _INBOX.{len} {size}\r\nhello\r\n"));
                frames.push(format!("HMSG {subject} 1 2 {size}\r\nhello\r\n"));
                frames.push(format!("HMSG {subject} 1 r 2 {size}\r\nhello\r\n"));
            }
        }
        let limits = Limits::default();
        for frame in frames {
            let frame = frame.as_bytes();
            let long = padded(frame);
            let (client, server) = if frame[0] == b'P' || frame[0] == b'H' && frame[1] == b'P' {
                (publish_line(frame, &limits), publish_line(&long, &limits))
            } else {
                (message_line(frame, &limits), message_line(&long, &limits))
            };
            let ranges = |l: Option<(Line, bool)>| {
                l.map(|(l, h)| (l.subject(), l.sid(), l.reply(), l.headers(), l.payload(), l.len(), h))
            };
            let (slice, window) = (ranges(client), ranges(server));
            assert!(slice.is_some(), "{:?}", String::from_utf8_lossy(frame));
            assert_eq!(slice, window, "{:?}", String::from_utf8_lossy(frame));
        }
    }
}
