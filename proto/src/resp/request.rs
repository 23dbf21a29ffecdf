//! The server side of RESP: decoding the commands a client sends.
//!
//! A client sends each command as an array of bulk strings (`*<n>\r\n` then `n` times
//! `$<len>\r\n<len bytes>\r\n`), the only form `redis-cli --pipe` and every client
//! library write. The rules are the server's (`processMultibulkBuffer`): `n <= 0` is an
//! empty command, skipped; anything but a bulk string inside is an error. Inline
//! commands (`PING\r\n`, typed into telnet) are not accepted: they are refused as
//! [`CommandDecodeError::NotAnArray`].
//!
//! The reply [`Decoder`](super::Decoder) could read the same bytes, as a general
//! [`Value`](super::Value); this decoder is specialised for requests: each argument is
//! a zero-copy [`Bytes`] view of the received segment, the command's length limits are
//! a server's (argument count, argument length) and no nesting is possible.

use bytes::Bytes;

use crate::chassis::SegmentedBuffer;

/// Limits of a [`CommandDecoder`], each checked on the header line that announces it,
/// before anything is reserved for what it announces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandLimits {
    /// Most arguments in one command, the name included (default
    /// [`DEFAULT_MAX_ARGS`](Self::DEFAULT_MAX_ARGS)). At most
    /// [`PREALLOC_ARGS`] slots are reserved up front and the rest only as arguments
    /// arrive (each at least 6 bytes on the wire), so the worst case per connection is
    /// `max_args` × 32 bytes of argument slots, and only when the client really sent
    /// that many arguments.
    pub max_args: usize,
    /// Longest argument, in bytes (default
    /// [`DEFAULT_MAX_ARG_LEN`](Self::DEFAULT_MAX_ARG_LEN), Redis's
    /// `proto-max-bulk-len`). Nothing is reserved for an announced length: the bytes
    /// stay in the receive segments until the whole argument is there.
    pub max_arg_len: usize,
}

impl CommandLimits {
    /// Default [`max_args`](Self::max_args): 1 Mi arguments.
    pub const DEFAULT_MAX_ARGS: usize = 1024 * 1024;
    /// Default [`max_arg_len`](Self::max_arg_len): 512 MiB, Redis's
    /// `proto-max-bulk-len`.
    pub const DEFAULT_MAX_ARG_LEN: usize = 512 * 1024 * 1024;
}

impl Default for CommandLimits {
    fn default() -> Self {
        Self {
            max_args: Self::DEFAULT_MAX_ARGS,
            max_arg_len: Self::DEFAULT_MAX_ARG_LEN,
        }
    }
}

/// Argument slots reserved up front for a command, whatever its announced count: the
/// rest is reserved as arguments arrive, so a lying count costs nothing.
pub const PREALLOC_ARGS: usize = 64;

/// The longest header line: the marker, a sign, [`MAX_DIGITS`] digits and CRLF.
const MAX_HEADER: usize = 2 + MAX_DIGITS + 2;

/// Digits accepted in a length: 18 always fit in an `i64`, and a line of garbage is
/// refused after a few bytes instead of being buffered.
const MAX_DIGITS: usize = 18;

/// Why the input is not a stream of commands. Fatal: the stream is out of sync (a
/// server answers with an error and closes the connection).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandDecodeError {
    /// A command must start with `*` (inline commands are not accepted).
    #[error("expected '*' (an array of bulk strings), found {}", Shown(*found))]
    NotAnArray {
        /// The byte found instead.
        found: u8,
    },
    /// Every argument must be a bulk string.
    #[error("expected '$' (a bulk string) for argument {arg}, found {}", Shown(*found))]
    NotABulkString {
        /// 1-based position of the argument.
        arg: usize,
        /// The byte found instead.
        found: u8,
    },
    /// A `*` or `$` line that is not a decimal number (at most 18 digits) followed by
    /// CRLF, or a negative argument length.
    #[error("invalid length line")]
    InvalidLength,
    /// A command announced more arguments than [`CommandLimits::max_args`].
    #[error("command of {count} arguments is over the limit of {max}")]
    TooManyArgs {
        /// The announced count.
        count: u64,
        /// The limit.
        max: usize,
    },
    /// An argument announced more bytes than [`CommandLimits::max_arg_len`].
    #[error("argument of {len} bytes is over the {max}-byte limit")]
    ArgTooLong {
        /// The announced length.
        len: u64,
        /// The limit.
        max: usize,
    },
    /// An argument's bytes are not followed by CRLF.
    #[error("argument {arg} is not followed by CRLF")]
    MissingCrlf {
        /// 1-based position of the argument.
        arg: usize,
    },
}

/// A byte in an error message: itself when printable, its hex code otherwise.
struct Shown(u8);

impl std::fmt::Display for Shown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", char::from(self.0))
        } else {
            write!(f, "byte 0x{:02x}", self.0)
        }
    }
}

/// One command as a client sent it: its arguments, the name first, each a zero-copy
/// view of the received bytes (copied only when it straddled two receive segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Never empty: empty arrays are skipped by the decoder.
    args: Vec<Bytes>,
}

impl Command {
    /// The first argument, the command's name, as sent (Redis matches it ignoring
    /// ASCII case).
    pub fn name(&self) -> &[u8] {
        &self.args[0]
    }

    /// Every argument, the name first.
    pub fn args(&self) -> &[Bytes] {
        &self.args
    }

    /// Number of arguments, the name included (at least 1).
    pub fn arg_count(&self) -> usize {
        self.args.len()
    }

    /// The arguments, taken out.
    pub fn into_args(self) -> Vec<Bytes> {
        self.args
    }
}

/// One command lent by [`CommandDecoder::decode_with`]: its arguments as slices of the
/// input (or of the decoder, for a command that straddled segments).
#[derive(Debug, Clone, Copy)]
pub struct CommandRef<'a>(Lent<'a>);

/// Where a [`CommandRef`]'s arguments are.
#[derive(Debug, Clone, Copy)]
enum Lent<'a> {
    /// In one segment: `frame[start..end]` for each span.
    Spans {
        frame: &'a [u8],
        spans: &'a [(usize, usize)],
    },
    /// Taken from the input by the resumable path.
    Args(&'a [Bytes]),
}

impl<'a> CommandRef<'a> {
    /// Number of arguments, the name included (at least 1).
    pub fn arg_count(&self) -> usize {
        match self.0 {
            Lent::Spans { spans, .. } => spans.len(),
            Lent::Args(args) => args.len(),
        }
    }

    /// The argument at `index` (0 is the name).
    pub fn arg(&self, index: usize) -> Option<&'a [u8]> {
        match self.0 {
            Lent::Spans { frame, spans } => spans.get(index).and_then(|&(start, end)| frame.get(start..end)),
            Lent::Args(args) => args.get(index).map(|arg| &arg[..]),
        }
    }

    /// The first argument, the command's name, as sent.
    pub fn name(&self) -> &'a [u8] {
        self.arg(0).unwrap_or_default()
    }

    /// Every argument, the name first.
    pub fn iter(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let this = *self;
        (0..this.arg_count()).filter_map(move |i| this.arg(i))
    }
}

/// Where a [`CommandDecoder`] is inside the command it is reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between commands: a `*<n>` line comes next.
    Start,
    /// Inside a command: `remaining` more arguments, the next one's `$<len>` line first.
    Header { remaining: usize },
    /// Inside a command: the `$<len>` line of an argument was taken, its `len` bytes
    /// and CRLF are awaited; `remaining` counts this argument.
    Body { remaining: usize, len: usize },
}

/// A resumable decoder of client commands: feed it bytes, get whole [`Command`]s.
///
/// `decode` returns `Ok(None)` until a whole command is buffered. A partly received
/// command is kept in the decoder (its header lines and whole arguments taken from the
/// input), so the next call resumes where the last stopped and no byte is parsed
/// twice. An `Err` is fatal: the stream is out of sync.
///
/// ```
/// use monocoque_proto::{SegmentedBuffer, resp::CommandDecoder};
/// let mut src = SegmentedBuffer::new();
/// src.push_slice(b"*2\r\n$4\r\nECHO\r\n$5\r\nhel");
/// let mut decoder = CommandDecoder::default();
/// assert_eq!(decoder.decode(&mut src), Ok(None)); // need more
/// src.push_slice(b"lo\r\n");
/// let command = decoder.decode(&mut src).unwrap().unwrap();
/// assert_eq!(command.name(), b"ECHO");
/// assert_eq!(command.args()[1], "hello");
/// ```
#[derive(Debug)]
pub struct CommandDecoder {
    limits: CommandLimits,
    state: State,
    /// The arguments of the command being read.
    args: Vec<Bytes>,
    /// Where the arguments of a command scanned in place lie in its segment
    /// ([`decode_with`](Self::decode_with)), kept for its allocation.
    spans: Vec<(usize, usize)>,
}

impl Default for CommandDecoder {
    fn default() -> Self {
        Self::new(CommandLimits::default())
    }
}

/// A header line at the front of the input.
enum Line {
    /// Not all of it has arrived.
    Partial,
    /// The number, and the line's length (marker and CRLF included).
    Whole(i64, usize),
}

impl CommandDecoder {
    /// A decoder with the given limits.
    pub fn new(limits: CommandLimits) -> Self {
        Self {
            limits,
            state: State::Start,
            args: Vec::new(),
            spans: Vec::new(),
        }
    }

    /// The limits in force.
    pub fn limits(&self) -> &CommandLimits {
        &self.limits
    }

    /// Whether part of a command has been taken from the input but not yet returned:
    /// the input ended inside a command if it ends now.
    pub fn is_mid_command(&self) -> bool {
        self.state != State::Start
    }

    /// Forgets any partial command (the connection was replaced).
    pub fn reset(&mut self) {
        self.state = State::Start;
        self.args.clear();
    }

    /// Decodes the next complete command from the front of `src`, skipping empty
    /// arrays; `Ok(None)` when more input is needed.
    pub fn decode(&mut self, src: &mut SegmentedBuffer) -> Result<Option<Command>, CommandDecodeError> {
        Ok(self.read(src)?.then(|| Command {
            args: std::mem::take(&mut self.args),
        }))
    }

    /// As [`decode`](Self::decode), but lends the command to `f` as slices instead of
    /// returning it: no `Bytes` and no vector per command. A command that lies whole in
    /// the first segment is scanned in place and lent straight from it; any other
    /// takes the resumable path and is lent from the decoder. For a caller that copies
    /// the arguments anyway (a proxy re-encoding them, `monocoque redis --pipe`), this
    /// saves two atomic reference count operations per argument.
    pub fn decode_with<R>(
        &mut self,
        src: &mut SegmentedBuffer,
        f: impl FnOnce(CommandRef<'_>) -> R,
    ) -> Result<Option<R>, CommandDecodeError> {
        if self.state == State::Start {
            if let Some(total) = self.scan_in_place(src.chunk()) {
                let out = f(CommandRef(Lent::Spans {
                    frame: src.chunk(),
                    spans: &self.spans,
                }));
                src.advance(total);
                return Ok(Some(out));
            }
        }
        if !self.read(src)? {
            return Ok(None);
        }
        let out = f(CommandRef(Lent::Args(&self.args)));
        self.args.clear();
        Ok(Some(out))
    }

    /// Scans one whole, valid, non-empty command at the front of `chunk`, noting where
    /// its arguments lie in `self.spans`; its length. `None` for anything else
    /// (incomplete, an empty array, over a limit, malformed), left to the resumable
    /// path, which then reports the precise error.
    #[inline]
    fn scan_in_place(&mut self, chunk: &[u8]) -> Option<usize> {
        if chunk.first() != Some(&b'*') {
            return None;
        }
        let Ok(Line::Whole(count, mut pos)) = number_line(chunk) else {
            return None;
        };
        let count = usize::try_from(count)
            .ok()
            .filter(|&n| n >= 1 && n <= self.limits.max_args)?;
        self.spans.clear();
        self.spans.reserve(count.min(PREALLOC_ARGS));
        for _ in 0..count {
            let rest = chunk.get(pos..)?;
            if rest.first() != Some(&b'$') {
                return None;
            }
            let Ok(Line::Whole(len, used)) = number_line(rest) else {
                return None;
            };
            let len = usize::try_from(len).ok().filter(|&n| n <= self.limits.max_arg_len)?;
            let start = pos + used;
            let end = start.checked_add(len)?;
            if chunk.get(end..end.checked_add(2)?)? != b"\r\n" {
                return None;
            }
            self.spans.push((start, end));
            pos = end + 2;
        }
        Some(pos)
    }

    /// Reads input until `self.args` holds a whole command (`true`) or the input runs
    /// out (`false`).
    fn read(&mut self, src: &mut SegmentedBuffer) -> Result<bool, CommandDecodeError> {
        loop {
            match self.state {
                State::Start => {
                    let Some(&marker) = src.chunk().first() else {
                        return Ok(false);
                    };
                    if marker != b'*' {
                        return Err(CommandDecodeError::NotAnArray { found: marker });
                    }
                    let Line::Whole(count, used) = header(src)? else {
                        return Ok(false);
                    };
                    src.advance(used);
                    // `*0` and `*-1`: nothing to run, as Redis ignores them.
                    let Ok(count @ 1..) = u64::try_from(count) else {
                        continue;
                    };
                    let max = self.limits.max_args;
                    let remaining = usize::try_from(count)
                        .ok()
                        .filter(|&n| n <= max)
                        .ok_or(CommandDecodeError::TooManyArgs { count, max })?;
                    self.args.clear();
                    self.args.reserve(remaining.min(PREALLOC_ARGS));
                    self.state = State::Header { remaining };
                }
                State::Header { remaining } => {
                    let Some(&marker) = src.chunk().first() else {
                        return Ok(false);
                    };
                    let arg = self.args.len() + 1;
                    if marker != b'$' {
                        return Err(CommandDecodeError::NotABulkString { arg, found: marker });
                    }
                    let Line::Whole(len, used) = header(src)? else {
                        return Ok(false);
                    };
                    let len = u64::try_from(len).map_err(|_| CommandDecodeError::InvalidLength)?;
                    let max = self.limits.max_arg_len;
                    let len = usize::try_from(len)
                        .ok()
                        .filter(|&n| n <= max)
                        .ok_or(CommandDecodeError::ArgTooLong { len, max })?;
                    // The common case: the line, the bytes and their CRLF lie in the
                    // first segment, taken in one step.
                    let chunk = src.chunk();
                    let end = used.saturating_add(len);
                    if chunk.len() >= end.saturating_add(2) {
                        if &chunk[end..end + 2] != b"\r\n" {
                            return Err(CommandDecodeError::MissingCrlf { arg });
                        }
                        let bytes = src.split_in_chunk(used..end, end + 2);
                        if self.push(bytes, remaining) {
                            return Ok(true);
                        }
                    } else {
                        src.advance(used);
                        self.state = State::Body { remaining, len };
                    }
                }
                State::Body { remaining, len } => {
                    if src.len() < len.saturating_add(2) {
                        return Ok(false);
                    }
                    if src.peek(len) != Some(b'\r') || src.peek(len + 1) != Some(b'\n') {
                        return Err(CommandDecodeError::MissingCrlf {
                            arg: self.args.len() + 1,
                        });
                    }
                    let bytes = src.split_to(len);
                    src.advance(2);
                    if self.push(bytes, remaining) {
                        return Ok(true);
                    }
                }
            }
        }
    }

    /// Adds a whole argument; `true` when it was the command's last.
    #[inline]
    fn push(&mut self, arg: Bytes, remaining: usize) -> bool {
        self.args.push(arg);
        if remaining > 1 {
            self.state = State::Header {
                remaining: remaining - 1,
            };
            return false;
        }
        self.state = State::Start;
        true
    }
}

/// Reads the `<marker><number>\r\n` line at the front of `src` without taking it: in
/// place when the first segment holds it, else from a copy of its first bytes.
#[inline]
fn header(src: &SegmentedBuffer) -> Result<Line, CommandDecodeError> {
    let chunk = src.chunk();
    match number_line(chunk)? {
        Line::Partial if src.len() > chunk.len() => {
            let mut line = [0u8; MAX_HEADER];
            let n = src.copy_at(0, &mut line);
            number_line(&line[..n])
        }
        line => Ok(line),
    }
}

/// Parses `<marker><number>\r\n` (an optional `-`, 1 to [`MAX_DIGITS`] digits, no
/// leading zero) at the front of `input`; the marker is the caller's to check.
#[inline]
fn number_line(input: &[u8]) -> Result<Line, CommandDecodeError> {
    let negative = input.get(1) == Some(&b'-');
    let digits = 1 + usize::from(negative);
    let mut i = digits;
    let mut n: i64 = 0;
    loop {
        match input.get(i) {
            Some(&d @ b'0'..=b'9') => {
                // No leading zero, and no `-0`: the server's `string2ll` refuses them.
                if i - digits == MAX_DIGITS || (i > digits && n == 0) || (negative && d == b'0' && i == digits) {
                    return Err(CommandDecodeError::InvalidLength);
                }
                n = n * 10 + i64::from(d - b'0');
                i += 1;
            }
            Some(b'\r') if i > digits => break,
            Some(_) => return Err(CommandDecodeError::InvalidLength),
            None => return Ok(Line::Partial),
        }
    }
    match input.get(i + 1) {
        None => Ok(Line::Partial),
        Some(b'\n') => Ok(Line::Whole(if negative { -n } else { n }, i + 2)),
        Some(_) => Err(CommandDecodeError::InvalidLength),
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::chassis::IoArena;
    use crate::resp::Cmd;

    /// Every command `decoder` returns for `input` given at once, then the error or
    /// "need more" that stopped it.
    fn decode_all(input: &[u8], limits: CommandLimits) -> (Vec<Vec<Vec<u8>>>, Result<(), CommandDecodeError>) {
        let mut src = SegmentedBuffer::new();
        src.push_slice(input);
        let mut decoder = CommandDecoder::new(limits);
        let mut out = Vec::new();
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(cmd)) => out.push(cmd.args().iter().map(|a| a.to_vec()).collect()),
                Ok(None) => return (out, Ok(())),
                Err(e) => return (out, Err(e)),
            }
        }
    }

    fn err(input: &[u8]) -> CommandDecodeError {
        decode_all(input, CommandLimits::default()).1.expect_err("malformed")
    }

    #[test]
    fn commands_and_empty_arrays() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nk\r\n\r\n$0\r\n\r\n*0\r\n*-1\r\n*1\r\n$4\r\nPING\r\n*1\r\n";
        let (cmds, end) = decode_all(input, CommandLimits::default());
        assert_eq!(end, Ok(()));
        assert_eq!(
            cmds,
            [
                vec![b"SET".to_vec(), b"k\r\n".to_vec(), Vec::new()],
                vec![b"PING".to_vec()]
            ]
        );
    }

    #[test]
    fn an_argument_in_one_segment_is_a_view_of_it() {
        let segment = Bytes::from_static(b"*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n");
        let mut src = SegmentedBuffer::new();
        src.push(segment.clone());
        let cmd = CommandDecoder::default().decode(&mut src).unwrap().unwrap();
        let inside = segment.as_ptr_range();
        for arg in cmd.args() {
            assert!(inside.contains(&arg.as_ptr()), "{arg:?} was copied");
        }
        assert!(src.is_empty());
    }

    #[test]
    fn every_prefix_needs_more_and_nothing_is_parsed_twice() {
        let input = b"*2\r\n$4\r\nECHO\r\n$11\r\nhello\0world\r\n";
        let mut src = SegmentedBuffer::new();
        let mut decoder = CommandDecoder::default();
        for (i, &byte) in input.iter().enumerate() {
            assert_eq!(decoder.decode(&mut src), Ok(None), "after {i} bytes");
            assert_eq!(decoder.is_mid_command(), src.len() < i, "header lines are taken");
            src.push_slice(&[byte]);
        }
        let cmd = decoder.decode(&mut src).unwrap().expect("whole");
        assert_eq!(cmd.args(), [&b"ECHO"[..], b"hello\0world"]);
        assert!(!decoder.is_mid_command() && src.is_empty());
    }

    #[test]
    fn malformed_input_is_a_typed_error() {
        use CommandDecodeError::*;
        assert_eq!(err(b"SET k v\r\n"), NotAnArray { found: b'S' });
        assert_eq!(err(b"*1\r\n:1\r\n"), NotABulkString { arg: 1, found: b':' });
        assert_eq!(err(b"*2\r\n$1\r\na\r\n+x"), NotABulkString { arg: 2, found: b'+' });
        assert_eq!(err(b"*1x\r\n"), InvalidLength);
        assert_eq!(err(b"*\r\n"), InvalidLength);
        assert_eq!(err(b"*-\r\n"), InvalidLength);
        assert_eq!(err(b"*01"), InvalidLength, "a leading zero, refused at once");
        assert_eq!(err(b"*-0"), InvalidLength);
        assert_eq!(err(b"*1\r\n$00\r\n"), InvalidLength);
        assert_eq!(err(b"*1\rX"), InvalidLength);
        assert_eq!(err(b"*1\r\n$-1\r\n"), InvalidLength);
        assert_eq!(err(b"*1\r\n$3\r\nabcd\r\n"), MissingCrlf { arg: 1 });
        assert_eq!(err(b"*1\r\n$99999999999999999999\r\n"), InvalidLength);
        assert_eq!(err(&[b'*'; 40]), InvalidLength, "no CRLF within the header limit");
        let small = CommandLimits {
            max_args: 2,
            max_arg_len: 9,
        };
        let (_, end) = decode_all(b"*1\r\n$10\r\n", small);
        assert_eq!(end, Err(ArgTooLong { len: 10, max: 9 }));
        let (_, end) = decode_all(b"*3\r\n", small);
        assert_eq!(end, Err(TooManyArgs { count: 3, max: 2 }));
        assert_eq!(
            err(b"*1\r\n$1\r\nabc").to_string(),
            "argument 1 is not followed by CRLF",
            "detected as soon as the two bytes after the argument arrive"
        );
        assert_eq!(
            err(b"*1\r\n\x01").to_string(),
            "expected '$' (a bulk string) for argument 1, found byte 0x01"
        );
    }

    #[test]
    fn an_announced_size_reserves_nothing_before_the_bytes_arrive() {
        let mut decoder = CommandDecoder::default();
        let mut src = SegmentedBuffer::new();
        src.push_slice(b"*1000000\r\n$500000000\r\nab");
        assert_eq!(decoder.decode(&mut src), Ok(None));
        assert!(decoder.args.capacity() <= PREALLOC_ARGS, "{}", decoder.args.capacity());
        assert_eq!(src.len(), 2, "the argument's bytes wait in the input");
    }

    /// `decode_with` over `pieces`: the commands, copied out, and how it ended.
    fn lent_pieces(pieces: &[&[u8]]) -> (Vec<Vec<Vec<u8>>>, Result<(), CommandDecodeError>) {
        let mut src = SegmentedBuffer::new();
        let mut decoder = CommandDecoder::default();
        let mut out = Vec::new();
        for piece in pieces {
            src.push_slice(piece);
            loop {
                match decoder.decode_with(&mut src, |cmd| cmd.iter().map(<[u8]>::to_vec).collect()) {
                    Ok(Some(cmd)) => out.push(cmd),
                    Ok(None) => break,
                    Err(e) => return (out, Err(e)),
                }
            }
        }
        (out, Ok(()))
    }

    #[test]
    fn decode_with_lends_from_the_segment_or_the_decoder() {
        let segment = Bytes::from_static(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPI");
        let mut src = SegmentedBuffer::new();
        src.push(segment.clone());
        let mut decoder = CommandDecoder::default();
        let inside = segment.as_ptr_range();
        let lent = decoder.decode_with(&mut src, |cmd| {
            assert_eq!(
                (cmd.name(), cmd.arg_count(), cmd.arg(1), cmd.arg(2)),
                (&b"GET"[..], 2, Some(&b"k"[..]), None)
            );
            cmd.iter().all(|arg| inside.contains(&arg.as_ptr()))
        });
        assert_eq!(lent, Ok(Some(true)), "lent from the segment, in place");
        assert_eq!(decoder.decode_with(&mut src, |_| ()), Ok(None));
        src.push_slice(b"NG\r\n");
        let name = decoder.decode_with(&mut src, |cmd| cmd.name().to_vec());
        assert_eq!(name, Ok(Some(b"PING".to_vec())), "across segments, through the decoder");
        assert!(src.is_empty() && !decoder.is_mid_command());
    }

    #[test]
    fn decode_with_reports_the_errors_decode_does() {
        for input in [
            &b"*1\r\n:1\r\n"[..],
            b"SET\r\n",
            b"*1\r\n$3\r\nabcd\r\n",
            b"*2\r\n$1\r\na\r\n$-1\r\n",
        ] {
            assert_eq!(
                lent_pieces(&[input]).1,
                decode_all(input, CommandLimits::default()).1,
                "{input:?}"
            );
        }
    }

    #[test]
    fn reset_forgets_a_partial_command() {
        let mut decoder = CommandDecoder::default();
        let mut src = SegmentedBuffer::new();
        src.push_slice(b"*2\r\n$3\r\nGET\r\n");
        assert_eq!(decoder.decode(&mut src), Ok(None));
        assert!(decoder.is_mid_command());
        decoder.reset();
        src.push_slice(b"*1\r\n$4\r\nPING\r\n");
        assert_eq!(decoder.decode(&mut src).unwrap().unwrap().name(), b"PING");
    }

    /// The wire form [`Cmd`], the client's encoder, gives `args`.
    fn encode(args: &[Vec<u8>]) -> Vec<u8> {
        let mut cmd = Cmd::new(&args[0][..]);
        for arg in &args[1..] {
            cmd.push(&arg[..]);
        }
        let mut arena = IoArena::new();
        cmd.encode(&mut arena);
        arena.to_vec()
    }

    proptest! {
        /// Encode commands with the client's `Cmd`, cut the stream at every byte
        /// boundary (one cut, and byte by byte), decode: the same commands, in order.
        #[test]
        fn client_commands_round_trip_whatever_the_cuts(
            commands in prop::collection::vec(
                prop::collection::vec(prop::collection::vec(any::<u8>(), 0..24), 1..6),
                1..4,
            )
        ) {
            let wire: Vec<u8> = commands.iter().flat_map(|c| encode(c)).collect();
            let decode_pieces = |pieces: &[&[u8]]| {
                let mut src = SegmentedBuffer::new();
                let mut decoder = CommandDecoder::default();
                let mut out = Vec::new();
                for piece in pieces {
                    src.push_slice(piece);
                    while let Some(cmd) = decoder.decode(&mut src).expect("valid") {
                        out.push(cmd.into_args().iter().map(|a| a.to_vec()).collect::<Vec<_>>());
                    }
                }
                prop_assert!(src.is_empty() && !decoder.is_mid_command());
                Ok(out)
            };
            for cut in 0..=wire.len() {
                let (a, b) = wire.split_at(cut);
                prop_assert_eq!(&decode_pieces(&[a, b])?, &commands, "cut at {}", cut);
            }
            let bytes: Vec<&[u8]> = wire.chunks(1).collect();
            prop_assert_eq!(&decode_pieces(&bytes)?, &commands);
            prop_assert_eq!(lent_pieces(&[&wire[..]]), (commands.clone(), Ok(())));
            prop_assert_eq!(lent_pieces(&bytes), (commands.clone(), Ok(())));
        }

        /// No input panics, and the outcome does not depend on how it is cut.
        #[test]
        fn any_input_decodes_the_same_whatever_the_cut(
            input in prop::collection::vec(prop_oneof![
                Just(b'*'), Just(b'$'), Just(b'\r'), Just(b'\n'), Just(b'-'),
                b'0'..=b'9', any::<u8>(),
            ], 0..64),
            cut in any::<prop::sample::Index>(),
        ) {
            let limits = CommandLimits { max_args: 4, max_arg_len: 16 };
            let whole = decode_all(&input, limits);
            let cut = cut.index(input.len() + 1);
            let mut src = SegmentedBuffer::new();
            let mut decoder = CommandDecoder::new(limits);
            let mut out = Vec::new();
            let mut end = Ok(());
            'pieces: for piece in [&input[..cut], &input[cut..]] {
                src.push_slice(piece);
                loop {
                    match decoder.decode(&mut src) {
                        Ok(Some(cmd)) => out.push(cmd.args().iter().map(|a| a.to_vec()).collect()),
                        Ok(None) => break,
                        Err(e) => { end = Err(e); break 'pieces; }
                    }
                }
            }
            prop_assert_eq!((out, end), whole);
            prop_assert_eq!(
                lent_pieces(&[&input[..cut], &input[cut..]]),
                decode_all(&input, CommandLimits::default())
            );
        }
    }
}
