//! The general path's rules: which op a line holds, its fields and sizes, and the
//! limits, as nats-server reads them. The frame decoders (`frame`) run every line the
//! fast path (`decode_fast`) leaves through here.
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

use super::{DecodeError, OpName};

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

    /// Field `i` as bytes of `line` (empty if there is no such field).
    pub fn raw<'a>(&self, line: &'a [u8], i: usize) -> &'a [u8] {
        self.range(i).map_or(&[], |r| &line[r])
    }
}

/// Parses a size field: 1 to 9 decimal digits.
pub(crate) fn parse_size(field: &[u8]) -> Result<usize, DecodeError> {
    match field.len() {
        // Nine digits fit in a usize on every target.
        1..=9 => crate::lex::digits(field)
            .map(|n| n as usize)
            .ok_or(DecodeError::InvalidSize),
        0 => Err(DecodeError::InvalidSize),
        _ if field.iter().all(u8::is_ascii_digit) => Err(DecodeError::SizeTooLong),
        _ => Err(DecodeError::InvalidSize),
    }
}

fn too_long(op: OpName, json: bool, max: usize) -> DecodeError {
    if json {
        DecodeError::JsonLineTooLong { op, max }
    } else {
        DecodeError::ControlLineTooLong { max }
    }
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
