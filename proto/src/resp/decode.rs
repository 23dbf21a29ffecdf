//! The resumable RESP2/RESP3 decoder.
//!
//! Values are parsed in place from the first segment of the [`SegmentedBuffer`] when
//! they fit there (the common case), and through a slower path that handles lines and
//! payloads straddling segments. A value that lies whole in the first segment (scalars,
//! and aggregates of them a few levels deep; not attributes or streamed forms) takes a
//! short path of its own (`Decoder::quick`, reading with the `fast` module), which leaves
//! anything unusual, errors included, to the general one. The general path builds
//! aggregates on an explicit stack, so a frame that arrives in many pieces is resumed,
//! not parsed again, and nesting costs no call depth. What the short path reads of a
//! value it then gives up on (one not yet whole) is read again by the general path; it
//! looks at most 8 levels deep, so that stays a bounded factor: decoding is linear.

use bytes::{Bytes, BytesMut};

use super::fast;
use super::lex::{find_lf, is_big_number, parse_i64, parse_len, Len};
use super::{DecodeError, Protocol, Value};
use crate::chassis::SegmentedBuffer;

/// Limits and dialect for a [`Decoder`]. Every limit is checked before anything is
/// reserved for the value it guards, so the defaults bound what a server (or anything
/// posing as one) can make a connection hold: see each field for the worst case it
/// allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecoderConfig {
    /// RESP2 rejects RESP3-only types; RESP3 accepts everything, RESP2 nulls included.
    pub protocol: Protocol,
    /// Longest bulk, blob error, verbatim or streamed string, in bytes (default
    /// [`DEFAULT_MAX_BULK_LEN`](Self::DEFAULT_MAX_BULK_LEN), Redis's own `proto-max-bulk-len`, 512 MiB, so every
    /// value a Redis server can store can be read). Worst case per connection: one
    /// string of this size being received, plus one receive segment when it straddles
    /// segments and is joined.
    pub max_bulk_len: usize,
    /// Most elements in one aggregate (a map's pairs count twice); default
    /// [`DEFAULT_MAX_AGGREGATE_LEN`](Self::DEFAULT_MAX_AGGREGATE_LEN), 16 Mi. The announced length is checked on the
    /// header line; at most 1024 slots are reserved up front and the
    /// rest only as elements arrive (each at least 3 bytes on the wire). Worst case per
    /// connection: `max_aggregate_len` × `size_of::<Value>()` (40 bytes) = 640 MiB of
    /// element slots in one aggregate, and only when the server really sends that
    /// many elements.
    pub max_aggregate_len: usize,
    /// Deepest nesting of aggregates (attributes included); default
    /// [`DEFAULT_MAX_DEPTH`](Self::DEFAULT_MAX_DEPTH), 32 (Redis's deepest replies nest a handful of levels).
    /// Worst case per connection: `max_depth` open aggregates, each with up to
    /// 1024 reserved slots: 32 × 1024 × 40 B = 1.25 MiB.
    pub max_depth: usize,
    /// Longest header or simple line (`+`, `-`, `:`, `(`, ...) before its `\r\n`;
    /// default [`DEFAULT_MAX_LINE_LEN`](Self::DEFAULT_MAX_LINE_LEN), 64 KiB. A line with no `\r\n` is refused as
    /// soon as this many bytes of it have arrived, so a server streaming an endless
    /// line costs at most this plus one receive segment.
    pub max_line_len: usize,
}

impl Default for DecoderConfig {
    fn default() -> Self {
        Self {
            protocol: Protocol::Resp3,
            max_bulk_len: Self::DEFAULT_MAX_BULK_LEN,
            max_aggregate_len: Self::DEFAULT_MAX_AGGREGATE_LEN,
            max_depth: Self::DEFAULT_MAX_DEPTH,
            max_line_len: Self::DEFAULT_MAX_LINE_LEN,
        }
    }
}

impl DecoderConfig {
    /// Default [`max_bulk_len`](Self::max_bulk_len): Redis's `proto-max-bulk-len`,
    /// 512 MiB.
    pub const DEFAULT_MAX_BULK_LEN: usize = 512 * 1024 * 1024;
    /// Default [`max_aggregate_len`](Self::max_aggregate_len): 16 Mi elements.
    pub const DEFAULT_MAX_AGGREGATE_LEN: usize = 16 * 1024 * 1024;
    /// Default [`max_depth`](Self::max_depth): 32 levels.
    pub const DEFAULT_MAX_DEPTH: usize = 32;
    /// Default [`max_line_len`](Self::max_line_len): 64 KiB.
    pub const DEFAULT_MAX_LINE_LEN: usize = 64 * 1024;

    /// The defaults, for the given dialect.
    pub fn new(protocol: Protocol) -> Self {
        Self {
            protocol,
            ..Self::default()
        }
    }
}

/// Elements reserved up front for an aggregate, whatever its announced length: the
/// rest is reserved only as elements arrive, so a lying length costs nothing.
const PREALLOC_ELEMENTS: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AggKind {
    Array,
    Set,
    Push,
    Map,
    Attribute,
}

#[derive(Debug)]
struct Frame {
    kind: AggKind,
    /// Elements still expected (fixed-length frames only).
    remaining: usize,
    streamed: bool,
    /// Elements so far; maps and attributes hold keys and values alternately.
    items: Vec<Value>,
    /// An attribute waiting for the next element of this frame.
    attr: Option<Vec<(Value, Value)>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PayloadKind {
    Bulk,
    BlobError,
    Verbatim,
    Chunk,
}

/// A length-prefixed payload being received.
#[derive(Debug)]
struct Payload {
    kind: PayloadKind,
    len: usize,
    /// Bytes copied so far, used only when the payload straddles segments.
    acc: BytesMut,
}

/// What one decoding step produced.
enum Step {
    NeedMore,
    Value(Value),
    /// State advanced; keep decoding.
    Continue,
}

/// What reading the start of a value produced.
enum Start {
    NeedMore,
    Value(Value),
    /// An aggregate, payload or streamed string was opened; keep decoding.
    Opened,
    /// A `.` closed the innermost streamed aggregate.
    End,
}

/// A resumable RESP decoder: feed it bytes, get whole values.
///
/// `decode` returns `Ok(None)` until a whole top-level value is buffered. Aggregates and
/// payloads that are only partly received are kept in the decoder, so the next call
/// resumes where the last stopped. An `Err` is fatal: the stream is out of sync.
#[derive(Debug)]
pub struct Decoder {
    config: DecoderConfig,
    /// `config`'s limits as the fast path reads them.
    fast: fast::Limits,
    stack: Vec<Frame>,
    payload: Option<Payload>,
    /// Chunks of a streamed string (`$?`) received so far.
    streamed: Option<BytesMut>,
    /// An attribute waiting for the next top-level value.
    top_attr: Option<Vec<(Value, Value)>>,
    /// How far the current line was already searched for its end.
    scanned: usize,
    /// Holds a line that straddles segments.
    line_buf: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new(DecoderConfig::default())
    }
}

impl Decoder {
    /// A decoder with the given limits and dialect.
    pub fn new(config: DecoderConfig) -> Self {
        Self {
            fast: fast::Limits::from(&config),
            config,
            stack: Vec::new(),
            payload: None,
            streamed: None,
            top_attr: None,
            scanned: 0,
            line_buf: Vec::new(),
        }
    }

    /// The limits and dialect in force.
    pub fn config(&self) -> &DecoderConfig {
        &self.config
    }

    /// Switches dialect, e.g. after `HELLO 3` succeeded.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.config.protocol = protocol;
        self.fast = fast::Limits::from(&self.config);
    }

    /// Whether part of a value has been taken from the input but not yet returned.
    pub fn is_mid_value(&self) -> bool {
        !self.stack.is_empty() || self.payload.is_some() || self.streamed.is_some() || self.top_attr.is_some()
    }

    /// Forgets any partial value (the connection was replaced).
    pub fn reset(&mut self) {
        self.stack.clear();
        self.payload = None;
        self.streamed = None;
        self.top_attr = None;
        self.scanned = 0;
    }

    /// Decodes the next complete top-level value from the front of `src`.
    #[inline(always)]
    pub fn decode(&mut self, src: &mut SegmentedBuffer) -> Result<Option<Value>, DecodeError> {
        if self.stack.is_empty() && self.top_attr.is_none() {
            if let Some(value) = self.quick(src) {
                return Ok(Some(value));
            }
        }
        self.decode_general(src)
    }

    /// The common case, decoded without the general machinery: a `+`, `-`, `:` or `$`
    /// value (or RESP3's `_` and `#`) whose bytes lie whole in the first segment, or an
    /// aggregate that does (read by the `fast` module), with nothing partial pending.
    /// Anything else, malformed input included, is left to the general path (`None`),
    /// which then reports the precise error.
    #[inline(always)]
    fn quick(&mut self, src: &mut SegmentedBuffer) -> Option<Value> {
        if self.payload.is_some() || self.streamed.is_some() || self.scanned != 0 {
            return None;
        }
        let chunk = src.chunk();
        let ty = *chunk.first()?;
        match ty {
            b'+' | b'-' | b':' | b'$' => {}
            b'_' | b'#' if self.config.protocol == Protocol::Resp3 => {}
            b'*' | b'%' | b'~' | b'>' => {
                let (value, end) = fast::aggregate(&self.fast, src.front()?, self.stack.len())?;
                src.advance(end);
                return Some(value);
            }
            _ => return None,
        }
        let lf = find_lf(chunk, 1)?;
        let line_len = lf - 1;
        if line_len > self.config.max_line_len || chunk[line_len] != b'\r' {
            return None;
        }
        let body = &chunk[1..line_len];
        let total = lf + 1;
        match ty {
            b':' => {
                let n = parse_i64(body)?;
                src.advance(total);
                Some(Value::Integer(n))
            }
            b'_' | b'#' => {
                let value = match body {
                    b"" if ty == b'_' => Value::Null,
                    b"t" if ty == b'#' => Value::Boolean(true),
                    b"f" if ty == b'#' => Value::Boolean(false),
                    _ => return None,
                };
                src.advance(total);
                Some(value)
            }
            b'$' => {
                let n = match parse_len(body) {
                    Some(Len::Count(n)) => usize::try_from(n).ok().filter(|&n| n <= self.config.max_bulk_len)?,
                    Some(Len::Null) => {
                        src.advance(total);
                        return Some(Value::Null);
                    }
                    _ => return None,
                };
                let end = total.checked_add(n)?;
                if chunk.get(end..end.checked_add(2)?)? != b"\r\n" {
                    return None;
                }
                Some(Value::BulkString(src.split_in_chunk(total..end, end + 2)))
            }
            _ => {
                if ty == b'+' {
                    if let Some(known) = fast::well_known_status(body) {
                        src.advance(total);
                        return Some(Value::SimpleString(known));
                    }
                }
                if body.contains(&b'\r') {
                    return None;
                }
                let text = src.split_in_chunk(1..line_len, total);
                Some(if ty == b'+' {
                    Value::SimpleString(text)
                } else {
                    Value::SimpleError(text)
                })
            }
        }
    }

    /// Every case: payloads and lines across segments, aggregates, streamed values,
    /// attributes and errors.
    #[inline(never)]
    fn decode_general(&mut self, src: &mut SegmentedBuffer) -> Result<Option<Value>, DecodeError> {
        loop {
            let value = if let Some(value) = self.quick(src) {
                value
            } else if self.payload.is_some() {
                match self.continue_payload(src)? {
                    Step::Value(v) => v,
                    Step::Continue => continue,
                    Step::NeedMore => return Ok(None),
                }
            } else if self.streamed.is_some() {
                match self.read_chunk_header(src)? {
                    Step::Value(v) => v,
                    Step::Continue => continue,
                    Step::NeedMore => return Ok(None),
                }
            } else {
                match self.read_start(src)? {
                    Start::NeedMore => return Ok(None),
                    Start::Value(v) => v,
                    Start::Opened => match self.close_empty_frame()? {
                        Some(v) => v,
                        None => continue,
                    },
                    Start::End => match self.close_streamed_frame()? {
                        Some(v) => v,
                        None => continue,
                    },
                }
            };
            if let Some(done) = self.attach(value)? {
                return Ok(Some(done));
            }
        }
    }

    /// Finds the current line. Returns `(line_len, total_len)` where the line starts at
    /// the front of `src` (type byte included) and `total_len` adds the `\r\n`.
    /// The line's bytes are in `src.chunk()` when `line_len + 2 <= chunk.len()`,
    /// otherwise they were copied into `line_buf`.
    #[inline]
    fn find_line(&mut self, src: &SegmentedBuffer) -> Result<Option<usize>, DecodeError> {
        let chunk = src.chunk();
        if chunk.len() > 1 {
            let from = self.scanned.max(1).min(chunk.len());
            if let Some(lf) = find_lf(chunk, from) {
                // The whole line is in the chunk: check its end in place.
                let line_len = lf - 1;
                if line_len > self.config.max_line_len {
                    return Err(DecodeError::LineTooLong {
                        max: self.config.max_line_len,
                    });
                }
                if chunk[line_len] != b'\r' {
                    return Err(DecodeError::BareLineBreak);
                }
                self.scanned = 0;
                return Ok(Some(line_len));
            }
        }
        self.find_line_across(src)
    }

    /// The rest of [`find_line`](Self::find_line): the line is not (yet) whole in the
    /// first segment.
    #[inline(never)]
    fn find_line_across(&mut self, src: &SegmentedBuffer) -> Result<Option<usize>, DecodeError> {
        let chunk = src.chunk();
        if src.len() > chunk.len() {
            // The line goes on in later segments.
            let from = self.scanned.max(chunk.len()).max(1);
            if let Some(lf) = src.find_byte(from, b'\n') {
                return self.accept_line(src, lf).map(Some);
            }
        }
        self.scanned = src.len();
        if src.len() > self.config.max_line_len + 2 {
            return Err(DecodeError::LineTooLong {
                max: self.config.max_line_len,
            });
        }
        Ok(None)
    }

    /// Validates the line ending at the `\n` at `lf`; returns the line length.
    fn accept_line(&mut self, src: &SegmentedBuffer, lf: usize) -> Result<usize, DecodeError> {
        let line_len = lf - 1;
        if line_len > self.config.max_line_len {
            return Err(DecodeError::LineTooLong {
                max: self.config.max_line_len,
            });
        }
        if src.peek(line_len) != Some(b'\r') {
            return Err(DecodeError::BareLineBreak);
        }
        self.scanned = 0;
        if lf >= src.chunk().len() {
            self.line_buf.clear();
            self.line_buf.resize(line_len, 0);
            src.copy_at(0, &mut self.line_buf);
        }
        Ok(line_len)
    }

    fn read_start(&mut self, src: &mut SegmentedBuffer) -> Result<Start, DecodeError> {
        let Some(&ty) = src.chunk().first() else {
            return Ok(Start::NeedMore);
        };
        // An unknown type byte is an error at once: waiting for its line would let a
        // peer that speaks another protocol hold the connection until the line limit.
        if !is_resp_type(ty) && ty != b'.' && ty != b';' {
            return Err(DecodeError::UnknownType(ty));
        }
        let Some(line_len) = self.find_line(src)? else {
            return Ok(Start::NeedMore);
        };
        let total = line_len + 2;
        // The line without its type byte; in place when the whole line is in the chunk.
        let in_chunk = total <= src.chunk().len();
        macro_rules! line {
            () => {
                if in_chunk {
                    &src.chunk()[1..line_len]
                } else {
                    &self.line_buf[1..line_len]
                }
            };
        }
        if self.config.protocol == Protocol::Resp2 && !matches!(ty, b'+' | b'-' | b':' | b'$' | b'*') {
            return Err(if is_resp_type(ty) {
                DecodeError::Resp3OnResp2(ty)
            } else {
                DecodeError::UnknownType(ty)
            });
        }
        let start = match ty {
            b'+' | b'-' | b'(' => {
                if ty == b'(' {
                    validate_big_number(line!())?;
                } else if line!().contains(&b'\r') {
                    // A simple string cannot hold a line break: `\r` alone is not one we
                    // can keep, and re-encoding it would change the frame boundaries.
                    return Err(DecodeError::BareLineBreak);
                }
                let text = if in_chunk {
                    src.split_in_chunk(1..line_len, total)
                } else {
                    src.advance(1);
                    let text = src.split_to(line_len - 1);
                    src.advance(2);
                    text
                };
                return Ok(Start::Value(match ty {
                    b'+' => Value::SimpleString(text),
                    b'-' => Value::SimpleError(text),
                    _ => Value::BigNumber(text),
                }));
            }
            b':' => Start::Value(Value::Integer(parse_i64(line!()).ok_or(DecodeError::InvalidInteger)?)),
            b'$' | b'!' | b'=' => {
                let len = parse_len(line!()).ok_or(DecodeError::InvalidLength)?;
                return self.open_payload(ty, len, total, src);
            }
            b'*' | b'~' | b'%' | b'|' | b'>' => {
                let len = parse_len(line!()).ok_or(DecodeError::InvalidLength)?;
                src.advance(total);
                return self.open_frame(ty, len);
            }
            b'_' => {
                if line_len != 1 {
                    return Err(DecodeError::InvalidLength);
                }
                Start::Value(Value::Null)
            }
            b',' => Start::Value(Value::Double(parse_double(line!())?)),
            b'#' => Start::Value(Value::Boolean(match line!() {
                b"t" => true,
                b"f" => false,
                _ => return Err(DecodeError::InvalidBoolean),
            })),
            b'.' => {
                if line_len != 1 {
                    return Err(DecodeError::UnexpectedStreamMarker(b'.'));
                }
                Start::End
            }
            b';' => return Err(DecodeError::UnexpectedStreamMarker(b';')),
            other => return Err(DecodeError::UnknownType(other)),
        };
        src.advance(total);
        Ok(start)
    }

    /// Opens the payload announced by a `$`, `!` or `=` header of `header` bytes, which
    /// are still at the front of `src`.
    fn open_payload(
        &mut self,
        ty: u8,
        len: Len,
        header: usize,
        src: &mut SegmentedBuffer,
    ) -> Result<Start, DecodeError> {
        let n = match len {
            Len::Null if ty == b'$' => {
                src.advance(header);
                return Ok(Start::Value(Value::Null));
            }
            Len::Streamed if ty == b'$' && self.config.protocol == Protocol::Resp3 => {
                src.advance(header);
                self.streamed = Some(BytesMut::new());
                return Ok(Start::Opened);
            }
            Len::Count(n) => n,
            _ => return Err(DecodeError::InvalidLength),
        };
        let n = self.check_bulk_len(n)?;
        let kind = match ty {
            b'$' => PayloadKind::Bulk,
            b'!' => PayloadKind::BlobError,
            _ => {
                if n < 4 {
                    return Err(DecodeError::InvalidVerbatim);
                }
                PayloadKind::Verbatim
            }
        };
        // Fast path: header, payload and CRLF are all in the first segment.
        let chunk = src.chunk();
        let end = header.saturating_add(n);
        if chunk.len().saturating_sub(2) >= end {
            if &chunk[end..end + 2] != b"\r\n" {
                return Err(DecodeError::MissingCrlf);
            }
            let data = src.split_in_chunk(header..end, end + 2);
            return finish_payload(kind, data).map(Start::Value);
        }
        src.advance(header);
        self.payload = Some(Payload {
            kind,
            len: n,
            acc: BytesMut::new(),
        });
        Ok(Start::Opened)
    }

    fn check_bulk_len(&self, n: u64) -> Result<usize, DecodeError> {
        match usize::try_from(n) {
            Ok(len) if len <= self.config.max_bulk_len => Ok(len),
            _ => Err(DecodeError::BulkTooLong {
                len: n,
                max: self.config.max_bulk_len,
            }),
        }
    }

    /// Receives more of the open payload; returns the finished value, if any.
    fn continue_payload(&mut self, src: &mut SegmentedBuffer) -> Result<Step, DecodeError> {
        let p = self.payload.as_mut().expect("payload is open");
        let data = if p.acc.is_empty() && src.chunk().len() >= p.len {
            // Still zero copy: the whole payload sits in the first segment.
            if src.len() < p.len + 2 {
                return Ok(Step::NeedMore);
            }
            let data = src.split_to(p.len);
            check_crlf(src)?;
            data
        } else {
            let want = p.len - p.acc.len();
            let mut take = want.min(src.len());
            p.acc.reserve(take);
            while take > 0 {
                let chunk = src.chunk();
                let k = take.min(chunk.len());
                p.acc.extend_from_slice(&chunk[..k]);
                src.advance(k);
                take -= k;
            }
            if p.acc.len() < p.len || src.len() < 2 {
                return Ok(Step::NeedMore);
            }
            check_crlf(src)?;
            p.acc.split().freeze()
        };
        let kind = p.kind;
        self.payload = None;
        if kind == PayloadKind::Chunk {
            self.streamed
                .as_mut()
                .expect("chunks belong to a streamed string")
                .extend_from_slice(&data);
            return Ok(Step::Continue);
        }
        finish_payload(kind, data).map(Step::Value)
    }

    /// Reads a `;n` header inside a streamed string: the `;0` that ends it (the joined
    /// string), or the start of the next chunk.
    fn read_chunk_header(&mut self, src: &mut SegmentedBuffer) -> Result<Step, DecodeError> {
        let Some(&ty) = src.chunk().first() else {
            return Ok(Step::NeedMore);
        };
        if ty != b';' {
            return Err(DecodeError::ExpectedChunk);
        }
        let Some(line_len) = self.find_line(src)? else {
            return Ok(Step::NeedMore);
        };
        let total = line_len + 2;
        let len = if total <= src.chunk().len() {
            parse_len(&src.chunk()[1..line_len]).ok_or(DecodeError::InvalidLength)?
        } else {
            parse_len(&self.line_buf[1..line_len]).ok_or(DecodeError::InvalidLength)?
        };
        let Len::Count(n) = len else {
            return Err(DecodeError::InvalidLength);
        };
        src.advance(total);
        if n == 0 {
            let joined = self.streamed.take().expect("streamed string is open");
            return Ok(Step::Value(Value::BulkString(joined.freeze())));
        }
        let so_far = self.streamed.as_ref().map_or(0, BytesMut::len) as u64;
        let n = self.check_bulk_len(so_far.saturating_add(n))? - so_far as usize;
        self.payload = Some(Payload {
            kind: PayloadKind::Chunk,
            len: n,
            acc: BytesMut::new(),
        });
        Ok(Step::Continue)
    }

    fn open_frame(&mut self, ty: u8, len: Len) -> Result<Start, DecodeError> {
        let kind = match ty {
            b'*' => AggKind::Array,
            b'~' => AggKind::Set,
            b'%' => AggKind::Map,
            b'|' => AggKind::Attribute,
            _ => AggKind::Push,
        };
        let (count, streamed) = match len {
            Len::Null if kind == AggKind::Array => return Ok(Start::Value(Value::Null)),
            Len::Streamed
                if self.config.protocol == Protocol::Resp3
                    && matches!(kind, AggKind::Array | AggKind::Set | AggKind::Map) =>
            {
                (0, true)
            }
            Len::Count(n) => {
                let elements = if matches!(kind, AggKind::Map | AggKind::Attribute) {
                    n.saturating_mul(2)
                } else {
                    n
                };
                match usize::try_from(elements) {
                    Ok(e) if e <= self.config.max_aggregate_len => (e, false),
                    _ => {
                        return Err(DecodeError::AggregateTooLong {
                            len: elements,
                            max: self.config.max_aggregate_len,
                        })
                    }
                }
            }
            _ => return Err(DecodeError::InvalidLength),
        };
        if self.stack.len() >= self.config.max_depth {
            return Err(DecodeError::TooDeep {
                max: self.config.max_depth,
            });
        }
        self.stack.push(Frame {
            kind,
            remaining: count,
            streamed,
            items: Vec::with_capacity(count.min(PREALLOC_ELEMENTS)),
            attr: None,
        });
        Ok(Start::Opened)
    }

    /// An aggregate that was just opened with zero elements is already complete.
    fn close_empty_frame(&mut self) -> Result<Option<Value>, DecodeError> {
        match self.stack.last() {
            Some(f) if !f.streamed && f.remaining == 0 && f.items.is_empty() => {
                let frame = self.stack.pop().expect("checked");
                self.complete(frame)
            }
            _ => Ok(None),
        }
    }

    fn close_streamed_frame(&mut self) -> Result<Option<Value>, DecodeError> {
        match self.stack.last() {
            Some(f) if f.streamed => {
                if f.attr.is_some() {
                    return Err(DecodeError::DanglingAttribute);
                }
                if f.kind == AggKind::Map && f.items.len() % 2 != 0 {
                    return Err(DecodeError::OddMap);
                }
                let frame = self.stack.pop().expect("checked");
                self.complete(frame)
            }
            _ => Err(DecodeError::UnexpectedStreamMarker(b'.')),
        }
    }

    /// Turns a finished frame into its value; an attribute instead becomes pending for
    /// the next value at its level (and `None` is returned).
    fn complete(&mut self, frame: Frame) -> Result<Option<Value>, DecodeError> {
        let value = match frame.kind {
            AggKind::Array => Value::Array(frame.items),
            AggKind::Set => Value::Set(frame.items),
            AggKind::Push => Value::Push(frame.items),
            AggKind::Map => Value::Map(pairs(frame.items)),
            AggKind::Attribute => {
                let attrs = pairs(frame.items);
                let slot = match self.stack.last_mut() {
                    Some(parent) => &mut parent.attr,
                    None => &mut self.top_attr,
                };
                match slot {
                    Some(existing) => existing.extend(attrs),
                    None => *slot = Some(attrs),
                }
                return Ok(None);
            }
        };
        Ok(Some(value))
    }

    /// Adds a finished value to the innermost open frame, closing frames as they fill;
    /// returns a finished top-level value.
    fn attach(&mut self, mut value: Value) -> Result<Option<Value>, DecodeError> {
        loop {
            let Some(top) = self.stack.last_mut() else {
                if let Some(attributes) = self.top_attr.take() {
                    value = Value::Attributed {
                        attributes,
                        value: Box::new(value),
                    };
                }
                return Ok(Some(value));
            };
            if let Some(attributes) = top.attr.take() {
                value = Value::Attributed {
                    attributes,
                    value: Box::new(value),
                };
            }
            top.items.push(value);
            if top.streamed {
                if top.items.len() > self.config.max_aggregate_len {
                    return Err(DecodeError::AggregateTooLong {
                        len: top.items.len() as u64,
                        max: self.config.max_aggregate_len,
                    });
                }
                return Ok(None);
            }
            top.remaining -= 1;
            if top.remaining > 0 {
                return Ok(None);
            }
            let frame = self.stack.pop().expect("top exists");
            match self.complete(frame)? {
                Some(v) => value = v,
                None => return Ok(None),
            }
        }
    }
}

fn check_crlf(src: &mut SegmentedBuffer) -> Result<(), DecodeError> {
    let mut crlf = [0u8; 2];
    src.copy_at(0, &mut crlf);
    if &crlf != b"\r\n" {
        return Err(DecodeError::MissingCrlf);
    }
    src.advance(2);
    Ok(())
}

fn finish_payload(kind: PayloadKind, data: Bytes) -> Result<Value, DecodeError> {
    Ok(match kind {
        PayloadKind::Bulk | PayloadKind::Chunk => Value::BulkString(data),
        PayloadKind::BlobError => Value::BlobError(data),
        PayloadKind::Verbatim => {
            if data.len() < 4 || data[3] != b':' {
                return Err(DecodeError::InvalidVerbatim);
            }
            Value::Verbatim {
                format: [data[0], data[1], data[2]],
                text: data.slice(4..),
            }
        }
    })
}

fn pairs(items: Vec<Value>) -> Vec<(Value, Value)> {
    let mut out = Vec::with_capacity(items.len() / 2);
    let mut it = items.into_iter();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    out
}

fn is_resp_type(b: u8) -> bool {
    matches!(
        b,
        b'+' | b'-'
            | b':'
            | b'$'
            | b'*'
            | b'_'
            | b','
            | b'#'
            | b'!'
            | b'='
            | b'('
            | b'%'
            | b'~'
            | b'|'
            | b'>'
            | b';'
            | b'.'
    )
}

fn parse_double(line: &[u8]) -> Result<f64, DecodeError> {
    fast::parse_double(line).ok_or(DecodeError::InvalidDouble)
}

fn validate_big_number(line: &[u8]) -> Result<(), DecodeError> {
    if !is_big_number(line) {
        return Err(DecodeError::InvalidBigNumber);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(cfg: DecoderConfig, input: &[u8]) -> Result<Vec<Value>, DecodeError> {
        let mut d = Decoder::new(cfg);
        let mut src = SegmentedBuffer::new();
        src.push_slice(input);
        let mut out = Vec::new();
        while let Some(v) = d.decode(&mut src)? {
            out.push(v);
        }
        assert!(src.is_empty(), "left {} bytes", src.len());
        Ok(out)
    }

    fn one(input: &[u8]) -> Value {
        let mut v = decode_all(DecoderConfig::default(), input).unwrap();
        assert_eq!(v.len(), 1, "{v:?}");
        v.pop().unwrap()
    }

    fn err(input: &[u8]) -> DecodeError {
        decode_all(DecoderConfig::default(), input).unwrap_err()
    }

    fn bulk(s: &'static str) -> Value {
        Value::BulkString(Bytes::from_static(s.as_bytes()))
    }

    #[test]
    fn scalars() {
        assert_eq!(one(b"+OK\r\n"), Value::SimpleString("OK".into()));
        assert_eq!(one(b"-ERR no\r\n"), Value::SimpleError("ERR no".into()));
        assert_eq!(one(b":-42\r\n"), Value::Integer(-42));
        assert_eq!(one(b":-9223372036854775808\r\n"), Value::Integer(i64::MIN));
        assert_eq!(one(b"$5\r\nhe\r\no\r\n"), bulk("he\r\no"));
        assert_eq!(one(b"$0\r\n\r\n"), bulk(""));
        assert_eq!(one(b"$-1\r\n"), Value::Null);
        assert_eq!(one(b"*-1\r\n"), Value::Null);
        assert_eq!(one(b"_\r\n"), Value::Null);
        assert_eq!(one(b"#t\r\n"), Value::Boolean(true));
        assert_eq!(one(b",1.5e3\r\n"), Value::Double(1500.0));
        assert_eq!(one(b",-inf\r\n"), Value::Double(f64::NEG_INFINITY));
        assert!(matches!(one(b",nan\r\n"), Value::Double(d) if d.is_nan()));
        assert_eq!(
            one(b"(-123456789012345678901234567890\r\n"),
            Value::BigNumber("-123456789012345678901234567890".into())
        );
        assert_eq!(one(b"!5\r\nERR x\r\n"), Value::BlobError("ERR x".into()));
        assert_eq!(
            one(b"=9\r\ntxt:hello\r\n"),
            Value::Verbatim {
                format: *b"txt",
                text: "hello".into()
            }
        );
    }

    #[test]
    fn aggregates_and_attributes() {
        assert_eq!(
            one(b"*2\r\n:1\r\n*0\r\n"),
            Value::Array(vec![Value::Integer(1), Value::Array(vec![])])
        );
        assert_eq!(
            one(b"%1\r\n+a\r\n:1\r\n"),
            Value::Map(vec![(Value::SimpleString("a".into()), Value::Integer(1))])
        );
        assert_eq!(one(b"~1\r\n#f\r\n"), Value::Set(vec![Value::Boolean(false)]));
        assert_eq!(
            one(b">2\r\n+message\r\n$1\r\nx\r\n"),
            Value::Push(vec![Value::SimpleString("message".into()), bulk("x")])
        );
        let attributed = one(b"|1\r\n+ttl\r\n:3\r\n*1\r\n|1\r\n+k\r\n+v\r\n:7\r\n");
        assert_eq!(
            attributed,
            Value::Attributed {
                attributes: vec![(Value::SimpleString("ttl".into()), Value::Integer(3))],
                value: Box::new(Value::Array(vec![Value::Attributed {
                    attributes: vec![(Value::SimpleString("k".into()), Value::SimpleString("v".into()))],
                    value: Box::new(Value::Integer(7)),
                }])),
            }
        );
    }

    #[test]
    fn streamed_values() {
        // The specification's own example: it does spell "Hello word".
        assert_eq!(
            one(b"$?\r\n;4\r\nHell\r\n;5\r\no wor\r\n;1\r\nd\r\n;0\r\n"),
            bulk("Hello word")
        );
        assert_eq!(
            one(b"*?\r\n:1\r\n:2\r\n.\r\n"),
            Value::Array(vec![Value::Integer(1), Value::Integer(2)])
        );
        assert_eq!(
            one(b"%?\r\n+a\r\n:1\r\n.\r\n"),
            Value::Map(vec![(Value::SimpleString("a".into()), Value::Integer(1))])
        );
        assert_eq!(err(b"%?\r\n+a\r\n.\r\n"), DecodeError::OddMap);
        assert_eq!(err(b".\r\n"), DecodeError::UnexpectedStreamMarker(b'.'));
        assert_eq!(err(b"$?\r\n:1\r\n"), DecodeError::ExpectedChunk);
    }

    #[test]
    fn resp2_rejects_resp3_types() {
        let cfg = DecoderConfig::new(Protocol::Resp2);
        assert_eq!(
            decode_all(cfg.clone(), b"%0\r\n").unwrap_err(),
            DecodeError::Resp3OnResp2(b'%')
        );
        assert_eq!(
            decode_all(cfg.clone(), b"$?\r\n").unwrap_err(),
            DecodeError::InvalidLength
        );
        assert_eq!(
            decode_all(cfg, b"*-1\r\n$-1\r\n").unwrap(),
            vec![Value::Null, Value::Null]
        );
    }

    #[test]
    fn malformed_input_is_a_clear_error() {
        assert_eq!(err(b"x\r\n"), DecodeError::UnknownType(b'x'));
        assert_eq!(err(b"+OK\n"), DecodeError::BareLineBreak);
        assert_eq!(err(b"+O\rK\r\n"), DecodeError::BareLineBreak);
        assert_eq!(err(b"-E\rR\r\n"), DecodeError::BareLineBreak);
        assert_eq!(err(b"x"), DecodeError::UnknownType(b'x'));
        assert_eq!(err(b":12a\r\n"), DecodeError::InvalidInteger);
        assert_eq!(err(b":9223372036854775808\r\n"), DecodeError::InvalidInteger);
        assert_eq!(err(b"$3\r\nabcd\r\n"), DecodeError::MissingCrlf);
        assert_eq!(err(b"$-2\r\n"), DecodeError::InvalidLength);
        assert_eq!(err(b"$\r\n"), DecodeError::InvalidLength);
        assert_eq!(err(b"#x\r\n"), DecodeError::InvalidBoolean);
        assert_eq!(err(b",1.2.3\r\n"), DecodeError::InvalidDouble);
        assert_eq!(err(b"(12x\r\n"), DecodeError::InvalidBigNumber);
        assert_eq!(err(b"=3\r\ntxt\r\n"), DecodeError::InvalidVerbatim);
        assert_eq!(err(b"=4\r\ntxtx\r\n"), DecodeError::InvalidVerbatim);
        assert_eq!(err(b";3\r\n"), DecodeError::UnexpectedStreamMarker(b';'));
    }

    /// The defaults refuse what a hostile server can announce, on the header line, and
    /// the worst cases documented on [`DecoderConfig`] hold.
    #[test]
    fn defaults_bound_what_a_server_can_announce() {
        let cfg = DecoderConfig::default();
        let e = |input: &[u8]| {
            let mut d = Decoder::new(cfg.clone());
            let mut src = SegmentedBuffer::new();
            src.push_slice(input);
            loop {
                match d.decode(&mut src) {
                    Ok(Some(_)) => continue,
                    Ok(None) => panic!("waits for more after {} bytes", input.len()),
                    Err(e) => return e,
                }
            }
        };
        let max = DecoderConfig::DEFAULT_MAX_AGGREGATE_LEN;
        assert_eq!(
            e(b"*4000000000\r\n"),
            DecodeError::AggregateTooLong {
                len: 4_000_000_000,
                max
            }
        );
        assert_eq!(
            e(b"*4294967295\r\n"),
            DecodeError::AggregateTooLong {
                len: 4_294_967_295,
                max
            }
        );
        assert_eq!(
            e(b"%3000000000\r\n"),
            DecodeError::AggregateTooLong {
                len: 6_000_000_000,
                max
            }
        );
        let max = DecoderConfig::DEFAULT_MAX_BULK_LEN;
        assert_eq!(
            e(b"$4294967295\r\n"),
            DecodeError::BulkTooLong {
                len: 4_294_967_295,
                max
            }
        );
        assert_eq!(e(&b"*1\r\n".repeat(1_000)), DecodeError::TooDeep { max: 32 });
        let mut endless = b"+".to_vec();
        endless.resize(DecoderConfig::DEFAULT_MAX_LINE_LEN + 3, b'a');
        assert_eq!(e(&endless), DecodeError::LineTooLong { max: 64 * 1024 });
        // Just under the limits still decodes: a legal reply of these sizes is read.
        let mut deep = b"*1\r\n".repeat(32);
        deep.extend_from_slice(b":1\r\n");
        assert_eq!(decode_all(cfg.clone(), &deep).map(|v| v.len()), Ok(1));
        // The documented worst cases use a 40-byte element slot.
        assert_eq!(std::mem::size_of::<Value>(), 40);
    }

    #[test]
    fn limits_are_checked_before_reserving() {
        let cfg = DecoderConfig {
            max_bulk_len: 10,
            max_aggregate_len: 3,
            max_depth: 2,
            max_line_len: 16,
            ..DecoderConfig::default()
        };
        let e = |input: &[u8]| decode_all(cfg.clone(), input).unwrap_err();
        assert_eq!(e(b"$11\r\n"), DecodeError::BulkTooLong { len: 11, max: 10 });
        assert_eq!(
            e(b"$4294967296000\r\n"),
            DecodeError::BulkTooLong {
                len: 4_294_967_296_000,
                max: 10
            }
        );
        assert_eq!(e(b"*4\r\n"), DecodeError::AggregateTooLong { len: 4, max: 3 });
        assert_eq!(e(b"%2\r\n"), DecodeError::AggregateTooLong { len: 4, max: 3 });
        assert_eq!(
            e(b"*?\r\n:1\r\n:1\r\n:1\r\n:1\r\n"),
            DecodeError::AggregateTooLong { len: 4, max: 3 }
        );
        assert_eq!(e(b"*1\r\n*1\r\n*1\r\n"), DecodeError::TooDeep { max: 2 });
        assert_eq!(e(b"+0123456789abcdefghij"), DecodeError::LineTooLong { max: 16 });
        assert_eq!(e(b"+0123456789abcdefg\r\n"), DecodeError::LineTooLong { max: 16 });
        assert_eq!(
            e(b"$?\r\n;6\r\nabcdef\r\n;6\r\n"),
            DecodeError::BulkTooLong { len: 12, max: 10 }
        );
    }

    #[test]
    fn hundred_thousand_nested_arrays_error_without_overflow() {
        let input = b"*1\r\n".repeat(100_000);
        assert_eq!(err(&input), DecodeError::TooDeep { max: 32 });
    }

    #[test]
    fn every_split_point_decodes_the_same() {
        let input: &[u8] = b"*3\r\n$5\r\nhello\r\n%1\r\n+k\r\n,2.5\r\n$?\r\n;2\r\nab\r\n;0\r\n|1\r\n+a\r\n:1\r\n:2\r\n";
        let whole = decode_all(DecoderConfig::default(), input).unwrap();
        for cut in 0..=input.len() {
            let mut d = Decoder::default();
            let mut src = SegmentedBuffer::new();
            let mut out = Vec::new();
            for part in [&input[..cut], &input[cut..]] {
                src.push_slice(part);
                while let Some(v) = d.decode(&mut src).unwrap() {
                    out.push(v);
                }
            }
            assert_eq!(out, whole, "cut at {cut}");
        }
    }

    #[test]
    fn byte_by_byte_keeps_progress() {
        let mut input = b"*1000\r\n".to_vec();
        for i in 0..1000 {
            input.extend_from_slice(format!("$4\r\n{i:04}\r\n").as_bytes());
        }
        let mut d = Decoder::default();
        let mut src = SegmentedBuffer::new();
        let mut got = None;
        for b in &input {
            src.push_slice(std::slice::from_ref(b));
            if let Some(v) = d.decode(&mut src).unwrap() {
                got = Some(v);
            }
            // Complete elements are taken out: the buffer never holds more than one
            // element's worth of bytes.
            assert!(src.len() <= 10, "buffer holds {}", src.len());
        }
        assert_eq!(got.unwrap().as_elements().unwrap().len(), 1000);
        assert!(!d.is_mid_value());
    }

    #[test]
    fn bulk_in_one_segment_is_a_view() {
        let seg = Bytes::from_static(b"$5\r\nhello\r\n");
        let mut src = SegmentedBuffer::from(seg.clone());
        let v = Decoder::default().decode(&mut src).unwrap().unwrap();
        assert_eq!(v.as_bytes().unwrap().as_ptr(), seg[4..].as_ptr());
    }
}
