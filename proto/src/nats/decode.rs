//! Framing: control lines and payloads out of a [`SegmentedBuffer`], as nats-server
//! reads them.
//!
//! The framer recognises the operation from a line's first bytes, finds the line's end
//! with `memchr`, checks the limits, splits the fields and, for the four operations that
//! carry a payload (`PUB`, `HPUB`, `MSG`, `HMSG`), checks the announced sizes and cuts
//! out the payload. Everything it returns is a view of the received segments. The
//! role-typed codecs turn its [`Frame`]s into ops.
//!
//! The rules, which follow nats-server's parser (`server/parser.go`, `client.go`):
//!
//! - op names are case-insensitive; `PUB`, `HPUB`, `SUB`, `UNSUB`, `MSG`, `HMSG` and
//!   `-ERR` must be followed by a space or tab; `CONNECT` and `INFO` by optional spaces
//!   or tabs and the JSON; `PING`, `PONG` and `+OK` by anything up to the end of the line;
//! - fields are separated by runs of spaces or tabs; optional fields (reply subject,
//!   queue group, `UNSUB` maximum) are told apart by the number of fields;
//! - a control line ends with `\n`, with or without a `\r` before it; a `\r` anywhere
//!   else in a field is an error (nats-server would take it into the subject);
//! - a payload must be followed by exactly `\r\n`;
//! - sizes are 1 to 9 decimal digits; a control line (without its line ending) is at
//!   most [`Limits::max_control_line`] bytes, an `INFO`/`CONNECT` line at most
//!   [`Limits::max_json_line`], a payload (headers included) at most
//!   [`Limits::max_payload`]; each is checked before anything is reserved for it.

use bytes::{Bytes, BytesMut};

use super::{DecodeError, OpName};
use crate::chassis::SegmentedBuffer;

/// Limits on what is decoded (and encoded) on one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest control line, without its line ending (nats-server: `max_control_line`,
    /// 4096 by default).
    pub max_control_line: usize,
    /// Longest `INFO` or `CONNECT` line, without its line ending. These carry JSON that
    /// grows with the cluster (`connect_urls`) or the credentials (a JWT).
    pub max_json_line: usize,
    /// Largest payload, headers included (nats-server: `max_payload`, 1 MiB by default;
    /// a client learns the server's from `INFO`).
    pub max_payload: usize,
}

/// nats-server's default `max_control_line`.
pub const DEFAULT_MAX_CONTROL_LINE: usize = 4096;
/// nats-server's default `max_payload`.
pub const DEFAULT_MAX_PAYLOAD: usize = 1024 * 1024;
/// The default limit for `INFO` and `CONNECT` lines.
pub const DEFAULT_MAX_JSON_LINE: usize = 64 * 1024;
/// The largest size a 9-digit size field can announce.
pub const MAX_SIZE_FIELD: usize = 999_999_999;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_control_line: DEFAULT_MAX_CONTROL_LINE,
            max_json_line: DEFAULT_MAX_JSON_LINE,
            max_payload: DEFAULT_MAX_PAYLOAD,
        }
    }
}

/// What follows an op's name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Args {
    /// A space or tab, then fields separated by runs of spaces or tabs.
    Fields,
    /// A space or tab, then free text (`-ERR`).
    Text,
    /// Optional spaces or tabs, then JSON (`CONNECT`, `INFO`).
    Json,
    /// Anything, ignored (`PING`, `PONG`, `+OK`).
    Ignored,
}

/// An operation one role accepts.
#[derive(Debug)]
pub(crate) struct OpSpec {
    pub name: &'static [u8],
    pub op: OpName,
    pub args: Args,
}

const fn spec(name: &'static [u8], op: OpName, args: Args) -> OpSpec {
    OpSpec { name, op, args }
}

/// What a server receives from clients (the most frequent first).
pub(crate) static CLIENT_OPS: &[OpSpec] = &[
    spec(b"PUB", OpName::Pub, Args::Fields),
    spec(b"HPUB", OpName::Hpub, Args::Fields),
    spec(b"PING", OpName::Ping, Args::Ignored),
    spec(b"PONG", OpName::Pong, Args::Ignored),
    spec(b"SUB", OpName::Sub, Args::Fields),
    spec(b"UNSUB", OpName::Unsub, Args::Fields),
    spec(b"CONNECT", OpName::Connect, Args::Json),
];

/// What a client receives from servers (the most frequent first).
pub(crate) static SERVER_OPS: &[OpSpec] = &[
    spec(b"MSG", OpName::Msg, Args::Fields),
    spec(b"HMSG", OpName::Hmsg, Args::Fields),
    spec(b"PING", OpName::Ping, Args::Ignored),
    spec(b"PONG", OpName::Pong, Args::Ignored),
    spec(b"+OK", OpName::Ok, Args::Ignored),
    spec(b"-ERR", OpName::Err, Args::Text),
    spec(b"INFO", OpName::Info, Args::Json),
];

/// Bytes that decide which op a line holds: the longest name plus its separator.
pub(crate) const HEAD: usize = 8;

enum Recognized {
    Op(&'static OpSpec),
    NeedMore,
    Unknown,
}

/// The op a line starting with `head` (its first bytes, at most [`HEAD`]) holds: `None`
/// while the bytes so far could still start more than one, [`DecodeError::UnknownOp`]
/// as soon as they start none.
#[inline]
pub(crate) fn op_at(ops: &'static [OpSpec], head: &[u8]) -> Result<Option<&'static OpSpec>, DecodeError> {
    match recognize(ops, head) {
        Recognized::Op(spec) => Ok(Some(spec)),
        Recognized::NeedMore => Ok(None),
        Recognized::Unknown => Err(DecodeError::UnknownOp),
    }
}

impl OpSpec {
    /// The longest line this op may have (without its line ending): the JSON limit for
    /// `INFO`/`CONNECT`, the control line limit for the rest, and never over `u32::MAX`
    /// (field ranges are `u32`).
    #[inline]
    pub(crate) fn max_line(&self, limits: &Limits) -> usize {
        if self.args == Args::Json {
            limits.max_json_line
        } else {
            limits.max_control_line
        }
        .min(u32::MAX as usize)
    }

    /// The error for a line of this op longer than [`max_line`](Self::max_line).
    pub(crate) fn too_long(&self, limits: &Limits) -> DecodeError {
        too_long(self.op, self.args == Args::Json, self.max_line(limits))
    }
}

/// A parsed control line: where the arguments start, the fields, and for `PUB`, `HPUB`,
/// `MSG` and `HMSG` the announced header and total sizes.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Control {
    /// Where the arguments start in the line (after the name and, for JSON and text, the
    /// spaces that follow it).
    pub args: usize,
    pub fields: Fields,
    /// `(header size, total size)` of a payload op (`None` header size without headers).
    pub sizes: Option<(Option<usize>, usize)>,
}

/// Splits the control line `text` (without its line ending) of op `spec` and checks
/// the payload op's field count and sizes against `limits`.
#[inline]
pub(crate) fn parse_control(spec: &OpSpec, text: &[u8], limits: &Limits) -> Result<Control, DecodeError> {
    let mut args = spec.name.len();
    let fields = match spec.args {
        Args::Fields => Fields::split(text, args)?,
        Args::Text | Args::Json => {
            while matches!(text.get(args), Some(b' ' | b'\t')) {
                args += 1;
            }
            Fields::default()
        }
        Args::Ignored => Fields::default(),
    };
    let sizes = match spec.op {
        OpName::Pub => Some((None, size(limits, spec.op, &fields, text, 2)?)),
        OpName::Hpub => Some(header_sizes(limits, spec.op, &fields, text, 3)?),
        OpName::Msg => Some((None, size(limits, spec.op, &fields, text, 3)?)),
        OpName::Hmsg => Some(header_sizes(limits, spec.op, &fields, text, 4)?),
        _ => None,
    };
    Ok(Control { args, fields, sizes })
}

/// Checks the field count (`min` or `min + 1`) and returns the last field as a size.
fn size(limits: &Limits, op: OpName, fields: &Fields, line: &[u8], min: usize) -> Result<usize, DecodeError> {
    let count = fields.count;
    if count != min && count != min + 1 {
        return Err(DecodeError::WrongFieldCount { op, count });
    }
    let total = parse_size(fields.raw(line, count - 1))?;
    check_payload(limits, total)?;
    Ok(total)
}

/// Checks the field count (`min` or `min + 1`) and returns the last two fields as the
/// header and total sizes.
fn header_sizes(
    limits: &Limits,
    op: OpName,
    fields: &Fields,
    line: &[u8],
    min: usize,
) -> Result<(Option<usize>, usize), DecodeError> {
    let count = fields.count;
    if count != min && count != min + 1 {
        return Err(DecodeError::WrongFieldCount { op, count });
    }
    let headers = parse_size(fields.raw(line, count - 2))?;
    let total = parse_size(fields.raw(line, count - 1))?;
    if headers > total {
        return Err(DecodeError::HeadersExceedTotal { headers, total });
    }
    check_payload(limits, total)?;
    Ok((Some(headers), total))
}

fn check_payload(limits: &Limits, size: usize) -> Result<(), DecodeError> {
    if size > limits.max_payload {
        return Err(DecodeError::PayloadTooLarge {
            size,
            max: limits.max_payload,
        });
    }
    Ok(())
}

/// Which op `head` (the first bytes of a line, at most [`HEAD`]) starts, if it is
/// decided yet.
fn recognize(ops: &'static [OpSpec], head: &[u8]) -> Recognized {
    let mut possible = false;
    for spec in ops {
        let name = spec.name;
        let need = name.len() + usize::from(matches!(spec.args, Args::Fields | Args::Text));
        let n = head.len().min(name.len());
        if !head[..n].eq_ignore_ascii_case(&name[..n]) {
            continue;
        }
        if head.len() > name.len() && need > name.len() && !matches!(head[name.len()], b' ' | b'\t') {
            continue;
        }
        if head.len() >= need {
            return Recognized::Op(spec);
        }
        possible = true;
    }
    if possible {
        Recognized::NeedMore
    } else {
        Recognized::Unknown
    }
}

/// Most fields any op has (`HMSG subject sid reply hdr total`).
pub(crate) const MAX_FIELDS: usize = 5;

/// The fields of a control line, as ranges of the line.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Fields {
    ranges: [(u32, u32); MAX_FIELDS],
    /// How many fields the line has (may exceed [`MAX_FIELDS`]; only the first are kept).
    pub count: usize,
}

impl Fields {
    /// Splits `line[from..]` on runs of spaces and tabs. `line` is at most `u32::MAX`
    /// bytes long (the framer's limits see to it).
    fn split(line: &[u8], from: usize) -> Result<Self, DecodeError> {
        let mut fields = Fields::default();
        let mut i = from;
        loop {
            let Some(skip) = line
                .get(i..)
                .and_then(|rest| rest.iter().position(|&b| b != b' ' && b != b'\t'))
            else {
                return Ok(fields);
            };
            let start = i + skip;
            i = start;
            loop {
                // Every byte above the space is part of a field: the common case.
                match line[i..].iter().position(|&b| b <= b' ') {
                    None => {
                        i = line.len();
                        break;
                    }
                    Some(k) => {
                        i += k;
                        match line[i] {
                            b' ' | b'\t' => break,
                            b'\r' => return Err(DecodeError::CarriageReturnInField),
                            // Other control bytes belong to the field.
                            _ => i += 1,
                        }
                    }
                }
            }
            fields.push(start, i);
        }
    }

    fn push(&mut self, start: usize, end: usize) {
        if let Some(slot) = self.ranges.get_mut(self.count) {
            *slot = (start as u32, end as u32);
        }
        self.count += 1;
    }

    fn range(&self, i: usize) -> Option<std::ops::Range<usize>> {
        match self.ranges.get(i) {
            Some(&(s, e)) if i < self.count => Some(s as usize..e as usize),
            _ => None,
        }
    }

    /// Field `i` as a view of `line` (empty if there is no such field).
    pub fn get(&self, line: &Bytes, i: usize) -> Bytes {
        self.range(i).map_or_else(Bytes::new, |r| line.slice(r))
    }

    /// Field `i` as bytes of `line` (empty if there is no such field).
    pub fn raw<'a>(&self, line: &'a [u8], i: usize) -> &'a [u8] {
        self.range(i).map_or(&[], |r| &line[r])
    }
}

/// Parses a size field: 1 to 9 decimal digits.
pub(crate) fn parse_size(field: &[u8]) -> Result<usize, DecodeError> {
    let mut n: usize = 0;
    for &d in field {
        let digit = d.wrapping_sub(b'0');
        if digit > 9 {
            return Err(DecodeError::InvalidSize);
        }
        // No overflow: the length is checked below, and 19 digits fit in a u64.
        n = n.wrapping_mul(10).wrapping_add(usize::from(digit));
    }
    match field.len() {
        0 => Err(DecodeError::InvalidSize),
        1..=9 => Ok(n),
        _ => Err(DecodeError::SizeTooLong),
    }
}

/// One decoded frame: an op's control line (without its line ending), its fields, and
/// for `PUB`/`HPUB`/`MSG`/`HMSG` the payload.
#[derive(Debug)]
pub(crate) struct Frame {
    pub op: OpName,
    /// The control line without its line ending; for a frame that arrived inside one
    /// segment, the whole frame (fields are ranges from its start either way).
    pub line: Bytes,
    /// Where the arguments start in `line` (after the name and, for JSON and text, the
    /// spaces that follow it).
    pub args: usize,
    /// The fields (for ops whose arguments are fields).
    pub fields: Fields,
    /// The header block (`HPUB`, `HMSG`).
    pub headers: Option<Bytes>,
    /// The payload (`PUB`, `HPUB`, `MSG`, `HMSG`; empty otherwise).
    pub payload: Bytes,
}

/// A control line whose payload has not fully arrived.
#[derive(Debug)]
struct Pending {
    frame: Frame,
    header_len: Option<usize>,
    total: usize,
    /// The payload received so far, used only when it straddles segments.
    acc: BytesMut,
}

/// The resumable framer shared by both roles.
#[derive(Debug)]
pub(crate) struct Framer {
    pub limits: Limits,
    ops: &'static [OpSpec],
    /// How far the current line was already searched for its end.
    scanned: usize,
    pending: Option<Pending>,
}

impl Framer {
    pub fn new(ops: &'static [OpSpec], limits: Limits) -> Self {
        Self {
            limits,
            ops,
            scanned: 0,
            pending: None,
        }
    }

    /// Whether part of a frame was taken from the input but not yet returned.
    pub fn is_mid_frame(&self) -> bool {
        self.pending.is_some()
    }

    /// Whether no frame is in progress, so the next frame starts at the front of the
    /// input (when the fast path, `decode_fast`, may try it).
    #[inline]
    pub fn is_idle(&self) -> bool {
        self.pending.is_none() && self.scanned == 0
    }

    pub fn reset(&mut self) {
        self.scanned = 0;
        self.pending = None;
    }

    /// The next complete frame, `None` when more bytes are needed.
    #[inline]
    pub fn next(&mut self, src: &mut SegmentedBuffer) -> Result<Option<Frame>, DecodeError> {
        if let Some(pending) = self.pending.as_mut() {
            if !take_payload(pending, src)? {
                return Ok(None);
            }
            return Ok(self.pending.take().map(|p| p.frame));
        }
        let chunk = src.chunk();
        if chunk.is_empty() {
            return Ok(None);
        }
        let mut buf = [0u8; HEAD];
        let head = if chunk.len() >= HEAD {
            &chunk[..HEAD]
        } else {
            let n = src.copy_at(0, &mut buf);
            &buf[..n]
        };
        let Some(spec) = op_at(self.ops, head)? else {
            return Ok(None);
        };
        let max = spec.max_line(&self.limits);
        let Some(lf) = self.find_lf(src) else {
            // The line will be at least one byte shorter than what is buffered (its `\r`
            // may be the last byte received).
            if src.len() > max.saturating_add(1) {
                return Err(spec.too_long(&self.limits));
            }
            self.scanned = src.len();
            return Ok(None);
        };
        self.scanned = 0;
        let chunk = src.chunk();
        let in_chunk = lf < chunk.len();
        let cr = if in_chunk {
            lf > 0 && chunk[lf - 1] == b'\r'
        } else {
            lf > 0 && src.peek(lf - 1) == Some(b'\r')
        };
        let len = lf - usize::from(cr);
        if len > max {
            return Err(spec.too_long(&self.limits));
        }
        // The line in place when it is inside the first segment, else joined once.
        let joined = (!in_chunk).then(|| src.split_to(lf + 1));
        let text: &[u8] = match &joined {
            Some(line) => &line[..len],
            None => &src.chunk()[..len],
        };
        let Control { args, fields, sizes } = parse_control(spec, text, &self.limits)?;
        let mut frame = Frame {
            op: spec.op,
            line: Bytes::new(),
            args,
            fields,
            headers: None,
            payload: Bytes::new(),
        };
        let Some((header_len, total)) = sizes else {
            let mut line = joined.unwrap_or_else(|| src.split_to(lf + 1));
            line.truncate(len);
            frame.line = line;
            return Ok(Some(frame));
        };
        let body = lf + 1;
        if in_chunk && src.chunk().len() >= body + total + 2 {
            // Fast path: the whole frame is in the first segment. One view of it, and
            // views of that for the payload and headers.
            if src.chunk()[body + total..body + total + 2] != *b"\r\n" {
                return Err(DecodeError::MissingPayloadCrlf);
            }
            let all = src.split_to(body + total + 2);
            let h = header_len.unwrap_or(0);
            if header_len.is_some() {
                frame.headers = Some(all.slice(body..body + h));
            }
            frame.payload = all.slice(body + h..body + total);
            frame.line = all;
            return Ok(Some(frame));
        }
        frame.line = joined.unwrap_or_else(|| src.split_to(lf + 1));
        frame.line.truncate(len);
        let mut pending = Pending {
            frame,
            header_len,
            total,
            acc: BytesMut::new(),
        };
        if take_payload(&mut pending, src)? {
            Ok(Some(pending.frame))
        } else {
            self.pending = Some(pending);
            Ok(None)
        }
    }

    /// Position of the `\n` ending the line at the front of `src`.
    fn find_lf(&self, src: &SegmentedBuffer) -> Option<usize> {
        let chunk = src.chunk();
        if self.scanned < chunk.len() {
            if let Some(i) = memchr::memchr(b'\n', &chunk[self.scanned..]) {
                return Some(self.scanned + i);
            }
        }
        if src.len() > chunk.len() {
            src.find_byte(self.scanned.max(chunk.len()), b'\n')
        } else {
            None
        }
    }
}

fn too_long(op: OpName, json: bool, max: usize) -> DecodeError {
    if json {
        DecodeError::JsonLineTooLong { op, max }
    } else {
        DecodeError::ControlLineTooLong { max }
    }
}

/// Receives more of a pending payload; returns whether it is complete (and then stored
/// in the frame, its `\r\n` consumed).
fn take_payload(p: &mut Pending, src: &mut SegmentedBuffer) -> Result<bool, DecodeError> {
    let total = p.total;
    let mut data = if p.acc.is_empty() && src.chunk().len() >= total {
        // Zero copy: the whole payload is in the first segment.
        if !crlf_follows(src, total)? {
            return Ok(false);
        }
        let data = src.split_to(total);
        src.advance(2);
        data
    } else {
        // The payload straddles segments: copy what has arrived, once.
        let mut take = (total - p.acc.len()).min(src.len());
        p.acc.reserve(take);
        while take > 0 {
            let chunk = src.chunk();
            let k = take.min(chunk.len());
            p.acc.extend_from_slice(&chunk[..k]);
            src.advance(k);
            take -= k;
        }
        if p.acc.len() < total || !crlf_follows(src, 0)? {
            return Ok(false);
        }
        src.advance(2);
        p.acc.split().freeze()
    };
    if let Some(h) = p.header_len {
        p.frame.headers = Some(data.split_to(h));
    }
    p.frame.payload = data;
    Ok(true)
}

/// Whether `\r\n` is at `at`; `false` when it has not arrived yet, an error as soon as a
/// byte that arrived is wrong.
fn crlf_follows(src: &SegmentedBuffer, at: usize) -> Result<bool, DecodeError> {
    let mut crlf = [0u8; 2];
    let n = src.copy_at(at, &mut crlf);
    if crlf[..n] != b"\r\n"[..n] {
        return Err(DecodeError::MissingPayloadCrlf);
    }
    Ok(n == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recognized(ops: &'static [OpSpec], head: &[u8]) -> Option<Option<OpName>> {
        match recognize(ops, head) {
            Recognized::Op(s) => Some(Some(s.op)),
            Recognized::NeedMore => Some(None),
            Recognized::Unknown => None,
        }
    }

    #[test]
    fn op_names_are_case_insensitive_and_need_their_separator() {
        assert_eq!(recognized(CLIENT_OPS, b"pUb foo"), Some(Some(OpName::Pub)));
        assert_eq!(recognized(CLIENT_OPS, b"PUB\tfoo"), Some(Some(OpName::Pub)));
        assert_eq!(recognized(CLIENT_OPS, b"PUB"), Some(None));
        assert_eq!(recognized(CLIENT_OPS, b"P"), Some(None));
        assert_eq!(recognized(CLIENT_OPS, b"PUBX"), None);
        assert_eq!(recognized(CLIENT_OPS, b"PUB\r\n"), None);
        assert_eq!(recognized(CLIENT_OPS, b"hpub "), Some(Some(OpName::Hpub)));
        assert_eq!(recognized(CLIENT_OPS, b"ping"), Some(Some(OpName::Ping)));
        assert_eq!(recognized(CLIENT_OPS, b"PINGX"), Some(Some(OpName::Ping)));
        assert_eq!(recognized(CLIENT_OPS, b"connect{"), Some(Some(OpName::Connect)));
        assert_eq!(recognized(CLIENT_OPS, b"CONNEC"), Some(None));
        assert_eq!(recognized(CLIENT_OPS, b"UNSUB 1"), Some(Some(OpName::Unsub)));
        assert_eq!(recognized(CLIENT_OPS, b"MSG "), None, "a server does not accept MSG");
        assert_eq!(recognized(CLIENT_OPS, b"\r\n"), None);
        assert_eq!(recognized(SERVER_OPS, b"+ok\r\n"), Some(Some(OpName::Ok)));
        assert_eq!(recognized(SERVER_OPS, b"-err "), Some(Some(OpName::Err)));
        assert_eq!(recognized(SERVER_OPS, b"-ERR\r\n"), None);
        assert_eq!(recognized(SERVER_OPS, b"INFO{}"), Some(Some(OpName::Info)));
        assert_eq!(recognized(SERVER_OPS, b"PUB "), None, "a client does not accept PUB");
        assert_eq!(recognized(SERVER_OPS, b"PU"), None);
        assert_eq!(recognized(SERVER_OPS, b"HM"), Some(None));
    }

    #[test]
    fn fields_split_on_runs_of_blanks() {
        let line = b"PUB \t foo\t\tbar  5 ";
        let f = Fields::split(line, 3).unwrap();
        assert_eq!(f.count, 3);
        assert_eq!(f.raw(line, 0), b"foo");
        assert_eq!(f.raw(line, 1), b"bar");
        assert_eq!(f.raw(line, 2), b"5");
        assert_eq!(f.raw(line, 3), b"");
        let many = Fields::split(b" a b c d e f g", 0).unwrap();
        assert_eq!(many.count, 7);
        assert_eq!(many.raw(b" a b c d e f g", 6), b"");
        assert_eq!(
            Fields::split(b" a\rb 1", 0).unwrap_err(),
            DecodeError::CarriageReturnInField
        );
    }

    #[test]
    fn sizes_are_one_to_nine_digits() {
        assert_eq!(parse_size(b"0"), Ok(0));
        assert_eq!(parse_size(b"007"), Ok(7));
        assert_eq!(parse_size(b"999999999"), Ok(999_999_999));
        assert_eq!(parse_size(b"0000000001"), Err(DecodeError::SizeTooLong));
        assert_eq!(parse_size(b""), Err(DecodeError::InvalidSize));
        assert_eq!(parse_size(b"-1"), Err(DecodeError::InvalidSize));
        assert_eq!(parse_size(b"1e3"), Err(DecodeError::InvalidSize));
        assert_eq!(parse_size(b"12345678901x"), Err(DecodeError::InvalidSize));
    }
}
