//! Batch decoding onto a tape: the zero-copy layout simd-json uses, for pipelined clients.
//!
//! [`Decoder`] hands out one [`Value`] per call, each string a [`Bytes`] view (two atomic
//! reference-count operations per view, one allocation per aggregate). A client that
//! reads a burst of pipelined replies can instead let a [`TapeDecoder`] append every
//! complete reply to a reusable [`Tape`]:
//!
//! - one [`Bytes`] handle per contiguous input segment the batch covers;
//! - a flat `Vec` of 16-byte tokens: the type, an offset and length into that segment
//!   (strings), the scalar itself (integers, doubles, booleans), or the element count
//!   and the index just past the subtree (aggregates, so a reader skips a whole
//!   subtree in one step).
//!
//! Reading goes through [`TapeRef`]: [`as_bytes`](TapeRef::as_bytes) borrows from the
//! segment (no reference count), [`to_bytes`](TapeRef::to_bytes) makes a view,
//! [`children`](TapeRef::children) walks an aggregate, and
//! [`to_value`](TapeRef::to_value) builds exactly the [`Value`] that [`Decoder`] would
//! have returned.
//!
//! The tape holds only whole top-level values. A value that is not complete in the first
//! segment, and every rare form (attributes, streamed strings and aggregates, anything
//! malformed or over a limit), goes through an inner [`Decoder`], which resumes across
//! calls (a 23 KB array fed in 64-byte pieces is parsed once) and reports the very same
//! errors; its finished [`Value`] is stored on the tape as one token. So the limits, the
//! errors and the values are [`Decoder`]'s by construction: the fast path only accepts
//! what [`Decoder`] accepts, and hands everything else over untouched.
//!
//! ```
//! use monocoque_proto::{SegmentedBuffer, resp::{Tape, TapeDecoder, TapeKind, Value}};
//! let mut src = SegmentedBuffer::new();
//! src.push_slice(b"+OK\r\n:42\r\n*2\r\n$5\r\nhello\r\n_\r\n$3\r\nab");
//! let mut decoder = TapeDecoder::default();
//! let mut tape = Tape::new();
//! assert_eq!(decoder.decode(&mut src, &mut tape).unwrap(), 3); // the bulk is incomplete
//! assert_eq!(tape.get(0).unwrap().as_bytes(), Some(&b"OK"[..]));
//! assert_eq!(tape.get(1).unwrap().as_integer(), Some(42));
//! let array = tape.get(2).unwrap();
//! assert_eq!(array.kind(), TapeKind::Array);
//! let kinds: Vec<TapeKind> = array.children().map(|c| c.kind()).collect();
//! assert_eq!(kinds, [TapeKind::BulkString, TapeKind::Null]);
//! src.push_slice(b"c\r\n");
//! assert_eq!(decoder.decode(&mut src, &mut tape).unwrap(), 1);
//! assert_eq!(tape.get(3).unwrap().to_value(), Value::from("abc"));
//! tape.clear(); // reuse the allocations for the next batch
//! ```

use std::fmt;

use bytes::Bytes;

use super::lex::{find_lf, is_big_number, parse_i64, parse_len, Len};
use super::{DecodeError, Decoder, DecoderConfig, Protocol, Value};
use crate::chassis::SegmentedBuffer;

/// Most tokens a tape holds (token indexes and offsets are `u32`). A tape that full
/// (64 GiB of tokens) takes nothing more until it is cleared.
const MAX_NODES: usize = u32::MAX as usize - 1;

/// A token's type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Tag {
    SimpleString,
    SimpleError,
    Integer,
    BulkString,
    Null,
    Double,
    Boolean,
    BlobError,
    Verbatim,
    BigNumber,
    Array,
    Set,
    Push,
    Map,
    /// A value decoded by the inner [`Decoder`], stored whole in `Tape::values`.
    Value,
}

/// One token, 16 bytes.
///
/// - strings: `seg` is the segment, `a` the offset, `b` the length (a verbatim string
///   keeps its `xxx:` prefix);
/// - integers and doubles: the 64 bits, low half in `a`, high half in `b`;
/// - booleans: `a` is 0 or 1;
/// - aggregates: `a` is the element count (a map's keys and values both count), `b` the
///   index of the first token after the subtree;
/// - [`Tag::Value`]: `a` indexes `Tape::values`.
#[derive(Debug, Clone, Copy)]
struct Node {
    tag: Tag,
    seg: u32,
    a: u32,
    b: u32,
}

impl Node {
    #[inline(always)]
    fn string(tag: Tag, seg: u32, off: usize, len: usize) -> Self {
        // Offsets and lengths lie within the first `MAX_NODES` bytes of a segment: they fit.
        Node {
            tag,
            seg,
            a: off as u32,
            b: len as u32,
        }
    }

    #[inline(always)]
    fn bits(tag: Tag, bits: u64) -> Self {
        Node {
            tag,
            seg: 0,
            a: bits as u32,
            b: (bits >> 32) as u32,
        }
    }

    #[inline(always)]
    fn plain(tag: Tag, a: u32) -> Self {
        Node { tag, seg: 0, a, b: 0 }
    }

    fn wide(&self) -> u64 {
        u64::from(self.a) | u64::from(self.b) << 32
    }

    fn is_aggregate(&self) -> bool {
        matches!(self.tag, Tag::Array | Tag::Set | Tag::Push | Tag::Map)
    }
}

/// What a [`TapeRef`] holds: the types of [`Value`], without the attribute wrapper
/// (attributes are read with [`TapeRef::attributes`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TapeKind {
    /// `+`: a status reply.
    SimpleString,
    /// `-`: an error reply.
    SimpleError,
    /// `:`: a signed 64-bit integer.
    Integer,
    /// `$`: a binary-safe string (also a joined streamed string).
    BulkString,
    /// `*`: an array.
    Array,
    /// `_`, `$-1` or `*-1`.
    Null,
    /// `,`: a double.
    Double,
    /// `#t` / `#f`.
    Boolean,
    /// `!`: a binary-safe error.
    BlobError,
    /// `=`: a string with a three-byte format.
    Verbatim,
    /// `(`: an integer of any size, as its digits.
    BigNumber,
    /// `%`: key/value pairs.
    Map,
    /// `~`: an unordered collection.
    Set,
    /// `>`: out-of-band data.
    Push,
}

/// Decoded values, kept as segments plus a flat token list; reusable across batches.
///
/// Filled by [`TapeDecoder::decode`], read with [`get`](Self::get) and
/// [`iter`](Self::iter), emptied with [`clear`](Self::clear) (which keeps the
/// allocations, so a client that clears its tape after each batch allocates nothing in
/// the steady state).
#[derive(Debug, Clone, Default)]
pub struct Tape {
    /// The input segments the tokens point into.
    segments: Vec<Bytes>,
    nodes: Vec<Node>,
    /// The token index of each top-level value.
    roots: Vec<u32>,
    /// Values the inner [`Decoder`] produced (rare forms, values split across segments).
    values: Vec<Value>,
    /// Whether a push (`>`, attributed or not, at any depth) was put on the tape since
    /// it was last cleared: without one, no top-level value is a push.
    pushes: bool,
}

impl Tape {
    /// An empty tape.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of top-level values on the tape.
    pub fn len(&self) -> usize {
        self.roots.len()
    }

    /// Whether the tape holds no value.
    pub fn is_empty(&self) -> bool {
        self.roots.is_empty()
    }

    /// The `i`th top-level value, oldest first.
    #[inline]
    pub fn get(&self, i: usize) -> Option<TapeRef<'_>> {
        self.roots.get(i).map(|&idx| self.at(idx))
    }

    /// Every top-level value, oldest first.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = TapeRef<'_>> + '_ {
        self.roots.iter().map(|&idx| self.at(idx))
    }

    /// The top-level values from the `from`th on, oldest first (none past the end).
    #[inline]
    pub fn iter_from(&self, from: usize) -> impl ExactSizeIterator<Item = TapeRef<'_>> + '_ {
        self.roots
            .get(from..)
            .unwrap_or_default()
            .iter()
            .map(|&idx| self.at(idx))
    }

    /// Makes room for at least `values` more top-level values of one token each, so a
    /// batch whose size the reader knows grows the tape once instead of doubling it
    /// step by step (a tape that is cleared and reused keeps the room).
    pub fn reserve(&mut self, values: usize) {
        self.roots.reserve(values);
        self.nodes.reserve(values);
    }

    /// Whether some top-level value may be a push ([`TapeKind::Push`]): `false` proves
    /// none is, so a reader that treats pushes apart need not ask each value's
    /// [`kind`](TapeRef::kind). `true` proves nothing (a push nested in a value decoded
    /// on the fast path sets it too).
    #[inline]
    pub fn may_hold_push(&self) -> bool {
        self.pushes
    }

    /// Number of tokens (nested values included; a value stored whole counts once).
    pub fn token_count(&self) -> usize {
        self.nodes.len()
    }

    /// Number of input segment handles the tape keeps alive.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Drops every value and segment handle, keeping the allocations for reuse.
    pub fn clear(&mut self) {
        self.segments.clear();
        self.nodes.clear();
        self.roots.clear();
        self.values.clear();
        self.pushes = false;
    }

    /// The value whose token is at `idx` (an index the tape itself produced).
    #[inline(always)]
    fn at(&self, idx: u32) -> TapeRef<'_> {
        let node = &self.nodes[idx as usize];
        let at = if node.tag == Tag::Value {
            At::Value(&self.values[node.a as usize])
        } else {
            At::Node(node, idx)
        };
        TapeRef { tape: self, at }
    }

    /// Appends `value`, decoded elsewhere, as one more top-level value (stored whole,
    /// read through [`TapeRef`] like the others): a reader that takes borrowed values
    /// can then be handed an owned one too. Whether it was stored: a tape that holds
    /// its most tokens (`u32::MAX - 1`) takes nothing more until it is cleared.
    pub fn push(&mut self, value: Value) -> bool {
        if self.nodes.len() >= MAX_NODES {
            return false;
        }
        self.push_value(value);
        true
    }

    fn push_value(&mut self, value: Value) {
        // The caller checked that `nodes` has room; `values` and `roots` are no longer.
        self.roots.push(self.nodes.len() as u32);
        self.nodes.push(Node::plain(Tag::Value, self.values.len() as u32));
        self.pushes |= matches!(value.without_attributes(), Value::Push(_));
        self.values.push(value);
    }
}

/// A value on a [`Tape`]: a token or a value stored whole.
#[derive(Clone, Copy)]
enum At<'t> {
    Node(&'t Node, u32),
    Value(&'t Value),
}

/// A borrowed view of one value on a [`Tape`] (top-level or nested).
///
/// Reading strings through [`as_bytes`](Self::as_bytes) costs no reference count;
/// [`to_bytes`](Self::to_bytes) and [`to_value`](Self::to_value) make owned views.
#[derive(Clone, Copy)]
pub struct TapeRef<'t> {
    tape: &'t Tape,
    at: At<'t>,
}

impl<'t> TapeRef<'t> {
    /// The value's type (for an attributed value, the type of the value itself).
    #[inline]
    pub fn kind(&self) -> TapeKind {
        match self.at {
            At::Node(node, _) => match node.tag {
                Tag::SimpleString => TapeKind::SimpleString,
                Tag::SimpleError => TapeKind::SimpleError,
                Tag::Integer => TapeKind::Integer,
                Tag::BulkString => TapeKind::BulkString,
                Tag::Null | Tag::Value => TapeKind::Null,
                Tag::Double => TapeKind::Double,
                Tag::Boolean => TapeKind::Boolean,
                Tag::BlobError => TapeKind::BlobError,
                Tag::Verbatim => TapeKind::Verbatim,
                Tag::BigNumber => TapeKind::BigNumber,
                Tag::Array => TapeKind::Array,
                Tag::Set => TapeKind::Set,
                Tag::Push => TapeKind::Push,
                Tag::Map => TapeKind::Map,
            },
            At::Value(v) => match v.without_attributes() {
                Value::SimpleString(_) => TapeKind::SimpleString,
                Value::SimpleError(_) => TapeKind::SimpleError,
                Value::Integer(_) => TapeKind::Integer,
                Value::BulkString(_) => TapeKind::BulkString,
                Value::Array(_) => TapeKind::Array,
                Value::Null | Value::Attributed { .. } => TapeKind::Null,
                Value::Double(_) => TapeKind::Double,
                Value::Boolean(_) => TapeKind::Boolean,
                Value::BlobError(_) => TapeKind::BlobError,
                Value::Verbatim { .. } => TapeKind::Verbatim,
                Value::BigNumber(_) => TapeKind::BigNumber,
                Value::Map(_) => TapeKind::Map,
                Value::Set(_) => TapeKind::Set,
                Value::Push(_) => TapeKind::Push,
            },
        }
    }

    /// The bytes of a string-like value, borrowed from the input: simple and bulk
    /// strings, both kinds of error, the text of a verbatim string (without its format),
    /// the digits of a big number.
    #[inline]
    pub fn as_bytes(&self) -> Option<&'t [u8]> {
        match self.at {
            At::Node(node, _) => {
                let (off, len) = self.string_range(node)?;
                self.tape.segments[node.seg as usize].get(off..off + len)
            }
            At::Value(v) => value_bytes(v).map(|b| &b[..]),
        }
    }

    /// [`as_bytes`](Self::as_bytes) as a [`Bytes`] view of the input (one reference
    /// count, no copy).
    pub fn to_bytes(&self) -> Option<Bytes> {
        match self.at {
            At::Node(node, _) => {
                let (off, len) = self.string_range(node)?;
                Some(self.tape.segments[node.seg as usize].slice(off..off + len))
            }
            At::Value(v) => value_bytes(v).cloned(),
        }
    }

    /// Offset and length of a string token's bytes, within its segment.
    #[inline(always)]
    fn string_range(&self, node: &Node) -> Option<(usize, usize)> {
        match node.tag {
            Tag::SimpleString | Tag::SimpleError | Tag::BulkString | Tag::BlobError | Tag::BigNumber => {
                Some((node.a as usize, node.b as usize))
            }
            // A verbatim token always holds at least the `xxx:` prefix.
            Tag::Verbatim => Some((node.a as usize + 4, node.b as usize - 4)),
            _ => None,
        }
    }

    /// The integer of an `:` reply.
    #[inline]
    pub fn as_integer(&self) -> Option<i64> {
        match self.at {
            At::Node(node, _) if node.tag == Tag::Integer => Some(node.wide() as i64),
            At::Node(..) => None,
            At::Value(v) => v.without_attributes().as_integer(),
        }
    }

    /// The number of a `,` reply.
    pub fn as_double(&self) -> Option<f64> {
        match self.at {
            At::Node(node, _) if node.tag == Tag::Double => Some(f64::from_bits(node.wide())),
            At::Node(..) => None,
            At::Value(v) => match v.without_attributes() {
                Value::Double(d) => Some(*d),
                _ => None,
            },
        }
    }

    /// The truth of a `#` reply.
    pub fn as_bool(&self) -> Option<bool> {
        match self.at {
            At::Node(node, _) if node.tag == Tag::Boolean => Some(node.a != 0),
            At::Node(..) => None,
            At::Value(v) => match v.without_attributes() {
                Value::Boolean(b) => Some(*b),
                _ => None,
            },
        }
    }

    /// The three-byte format of a verbatim string, e.g. `*b"txt"`.
    pub fn verbatim_format(&self) -> Option<[u8; 3]> {
        match self.at {
            At::Node(node, _) if node.tag == Tag::Verbatim => {
                let raw = self.tape.segments[node.seg as usize].get(node.a as usize..node.a as usize + 3)?;
                raw.try_into().ok()
            }
            At::Node(..) => None,
            At::Value(v) => match v.without_attributes() {
                Value::Verbatim { format, .. } => Some(*format),
                _ => None,
            },
        }
    }

    /// Whether this is a null of any dialect.
    pub fn is_null(&self) -> bool {
        self.kind() == TapeKind::Null
    }

    /// Whether this is a `-` or `!` error reply.
    pub fn is_error(&self) -> bool {
        matches!(self.kind(), TapeKind::SimpleError | TapeKind::BlobError)
    }

    /// The attributes sent before this value (RESP3 `|`), if any. Values with
    /// attributes are rare and always stored whole, so they are lent as [`Value`]s.
    pub fn attributes(&self) -> Option<&'t [(Value, Value)]> {
        match self.at {
            At::Value(Value::Attributed { attributes, .. }) => Some(attributes),
            _ => None,
        }
    }

    /// Number of children [`children`](Self::children) yields: the elements of an array,
    /// set or push, the keys and values of a map (twice its pair count); 0 for scalars.
    pub fn child_count(&self) -> usize {
        match self.at {
            At::Node(node, _) if node.is_aggregate() => node.a as usize,
            At::Node(..) => 0,
            At::Value(v) => match v.without_attributes() {
                Value::Array(items) | Value::Set(items) | Value::Push(items) => items.len(),
                Value::Map(pairs) => pairs.len() * 2,
                _ => 0,
            },
        }
    }

    /// The children of an aggregate in wire order (a map's keys and values
    /// alternately); nothing for a scalar.
    #[inline]
    pub fn children(&self) -> Children<'t> {
        let inner = match self.at {
            At::Node(node, idx) if node.is_aggregate() => Inner::Nodes {
                next: idx + 1,
                left: node.a,
            },
            At::Node(..) => Inner::Empty,
            At::Value(v) => match v.without_attributes() {
                Value::Array(items) | Value::Set(items) | Value::Push(items) => Inner::Values(items.iter()),
                Value::Map(pairs) => Inner::Pairs {
                    pairs: pairs.iter(),
                    value: None,
                },
                _ => Inner::Empty,
            },
        };
        Children { tape: self.tape, inner }
    }

    /// The key/value pairs of a map; nothing for other types.
    pub fn pairs(&self) -> impl Iterator<Item = (TapeRef<'t>, TapeRef<'t>)> {
        let mut children = if self.kind() == TapeKind::Map {
            self.children()
        } else {
            Children {
                tape: self.tape,
                inner: Inner::Empty,
            }
        };
        std::iter::from_fn(move || Some((children.next()?, children.next()?)))
    }

    /// The [`Value`] [`Decoder`] returns for the same bytes (strings as views of the
    /// input, no copy).
    pub fn to_value(&self) -> Value {
        let node = match self.at {
            At::Value(v) => return v.clone(),
            At::Node(node, _) => node,
        };
        let bytes = || self.to_bytes().unwrap_or_default();
        match node.tag {
            Tag::SimpleString => Value::SimpleString(bytes()),
            Tag::SimpleError => Value::SimpleError(bytes()),
            Tag::BulkString => Value::BulkString(bytes()),
            Tag::BlobError => Value::BlobError(bytes()),
            Tag::BigNumber => Value::BigNumber(bytes()),
            Tag::Verbatim => Value::Verbatim {
                format: self.verbatim_format().unwrap_or_default(),
                text: bytes(),
            },
            Tag::Integer => Value::Integer(node.wide() as i64),
            Tag::Double => Value::Double(f64::from_bits(node.wide())),
            Tag::Boolean => Value::Boolean(node.a != 0),
            Tag::Null | Tag::Value => Value::Null,
            Tag::Array => Value::Array(self.children().map(|c| c.to_value()).collect()),
            Tag::Set => Value::Set(self.children().map(|c| c.to_value()).collect()),
            Tag::Push => Value::Push(self.children().map(|c| c.to_value()).collect()),
            Tag::Map => Value::Map(self.pairs().map(|(k, v)| (k.to_value(), v.to_value())).collect()),
        }
    }
}

impl fmt::Debug for TapeRef<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TapeRef").field(&self.to_value()).finish()
    }
}

fn value_bytes(v: &Value) -> Option<&Bytes> {
    match v.without_attributes() {
        Value::SimpleString(b)
        | Value::SimpleError(b)
        | Value::BulkString(b)
        | Value::BlobError(b)
        | Value::BigNumber(b)
        | Value::Verbatim { text: b, .. } => Some(b),
        _ => None,
    }
}

/// The children of an aggregate on a [`Tape`]; see [`TapeRef::children`].
#[derive(Clone)]
pub struct Children<'t> {
    tape: &'t Tape,
    inner: Inner<'t>,
}

#[derive(Clone)]
enum Inner<'t> {
    Empty,
    /// Tokens: the next child's index and how many children are left.
    Nodes {
        next: u32,
        left: u32,
    },
    Values(std::slice::Iter<'t, Value>),
    Pairs {
        pairs: std::slice::Iter<'t, (Value, Value)>,
        /// The value of the pair whose key was just yielded.
        value: Option<&'t Value>,
    },
}

impl<'t> Iterator for Children<'t> {
    type Item = TapeRef<'t>;

    #[inline]
    fn next(&mut self) -> Option<TapeRef<'t>> {
        let tape = self.tape;
        let value = |v| TapeRef { tape, at: At::Value(v) };
        match &mut self.inner {
            Inner::Empty => None,
            Inner::Nodes { next, left } => {
                if *left == 0 {
                    return None;
                }
                *left -= 1;
                let child = tape.at(*next);
                *next = match child.at {
                    At::Node(node, _) if node.is_aggregate() => node.b,
                    _ => *next + 1,
                };
                Some(child)
            }
            Inner::Values(items) => items.next().map(value),
            Inner::Pairs { pairs, value: pending } => {
                if let Some(v) = pending.take() {
                    return Some(value(v));
                }
                let (k, v) = pairs.next()?;
                *pending = Some(v);
                Some(value(k))
            }
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = match &self.inner {
            Inner::Empty => 0,
            Inner::Nodes { left, .. } => *left as usize,
            Inner::Values(items) => items.len(),
            Inner::Pairs { pairs, value } => pairs.len() * 2 + usize::from(value.is_some()),
        };
        (n, Some(n))
    }
}

impl ExactSizeIterator for Children<'_> {}

/// The limits the fast path checks, copied out of the [`DecoderConfig`].
#[derive(Debug, Clone, Copy)]
struct Limits {
    resp3: bool,
    max_bulk_len: usize,
    max_aggregate_len: usize,
    max_depth: usize,
    max_line_len: usize,
}

impl From<&DecoderConfig> for Limits {
    fn from(c: &DecoderConfig) -> Self {
        Self {
            resp3: c.protocol == Protocol::Resp3,
            max_bulk_len: c.max_bulk_len,
            // Counts are stored as `u32`: a larger one is left to the inner decoder.
            max_aggregate_len: c.max_aggregate_len.min(u32::MAX as usize),
            max_depth: c.max_depth,
            max_line_len: c.max_line_len,
        }
    }
}

/// Decodes every complete value available onto a [`Tape`] (see [`Tape`] for its layout).
///
/// Same limits ([`DecoderConfig`]), same errors ([`DecodeError`]) and same values as
/// [`Decoder`]. An `Err` is fatal, as with [`Decoder`]: the stream is out of sync.
#[derive(Debug)]
pub struct TapeDecoder {
    /// Takes what the fast path does not: rare forms, values across segments, errors.
    decoder: Decoder,
    limits: Limits,
    /// The front value was handed to `decoder`, which has not finished it: it must be
    /// asked first, since it may hold part of it (or how far it searched its line).
    pending: bool,
    /// Open aggregates of the value being read: token index, children still expected.
    stack: Vec<(u32, u32)>,
}

impl Default for TapeDecoder {
    fn default() -> Self {
        Self::new(DecoderConfig::default())
    }
}

impl TapeDecoder {
    /// A decoder with the given limits and dialect.
    pub fn new(config: DecoderConfig) -> Self {
        Self {
            limits: Limits::from(&config),
            decoder: Decoder::new(config),
            pending: false,
            stack: Vec::new(),
        }
    }

    /// The limits and dialect in force.
    pub fn config(&self) -> &DecoderConfig {
        self.decoder.config()
    }

    /// Switches dialect, e.g. after `HELLO 3` succeeded.
    pub fn set_protocol(&mut self, protocol: Protocol) {
        self.decoder.set_protocol(protocol);
        self.limits = Limits::from(self.decoder.config());
    }

    /// Whether part of a value has been taken from the input but not yet put on a tape.
    pub fn is_mid_value(&self) -> bool {
        self.decoder.is_mid_value()
    }

    /// Forgets any partial value (the connection was replaced).
    pub fn reset(&mut self) {
        self.decoder.reset();
        self.pending = false;
    }

    /// The next complete value at the front of `src` as an owned [`Value`] (`None`: not
    /// whole yet), from the inner [`Decoder`]: for a reader that wants values rather
    /// than a tape. Calls to this and to [`decode`](Self::decode) may alternate on one
    /// stream: a value this left half read is finished by the next call of either.
    #[inline]
    pub fn decode_value(&mut self, src: &mut SegmentedBuffer) -> Result<Option<Value>, DecodeError> {
        let decoded = self.decoder.decode(src);
        // The inner decoder may keep part of a value, or how far it searched a line:
        // the fast path must then let it finish first.
        self.pending = matches!(decoded, Ok(None));
        decoded
    }

    /// Appends every complete top-level value at the front of `src` to `tape`, consumes
    /// their bytes, and returns how many were appended. A value that goes on past the end
    /// of `src` is kept for the next call (only the part the inner decoder already took
    /// is consumed).
    ///
    /// On `Err`, the values completed before the malformed one are on the tape.
    pub fn decode(&mut self, src: &mut SegmentedBuffer, tape: &mut Tape) -> Result<usize, DecodeError> {
        let mut appended = 0;
        loop {
            if self.pending {
                if tape.nodes.len() >= MAX_NODES {
                    return Ok(appended);
                }
                match self.decoder.decode(src)? {
                    Some(value) => {
                        tape.push_value(value);
                        appended += 1;
                        self.pending = false;
                    }
                    None => return Ok(appended),
                }
            }
            let chunk = src.chunk();
            if chunk.is_empty() {
                return Ok(appended);
            }
            // Every segment handle comes with at least one token, so this index fits.
            let seg = tape.segments.len() as u32;
            let (used, values) = self.fast_run(chunk, seg, tape);
            let whole = used == chunk.len();
            if used > 0 {
                tape.segments.push(src.split_to(used));
                appended += values;
            }
            if !whole {
                // The value at the front is the inner decoder's.
                self.pending = true;
            }
        }
    }

    /// Puts the values that lie whole at the front of `chunk` on the tape; returns the
    /// bytes they take and how many they are.
    #[inline(always)]
    fn fast_run(&mut self, chunk: &[u8], seg: u32, tape: &mut Tape) -> (usize, usize) {
        // Each token takes at least 3 input bytes, so this keeps token indexes and
        // offsets within `u32`.
        let room = MAX_NODES.saturating_sub(tape.nodes.len());
        let chunk = &chunk[..chunk.len().min(room)];
        let lim = self.limits;
        let mut pos = 0;
        let mut values = 0;
        while pos < chunk.len() {
            let mark = tape.nodes.len();
            match self.fast_value(&lim, chunk, pos, seg, &mut tape.nodes, &mut tape.pushes) {
                Some(end) => {
                    tape.roots.push(mark as u32);
                    pos = end;
                    values += 1;
                }
                None => {
                    tape.nodes.truncate(mark);
                    break;
                }
            }
        }
        (pos, values)
    }

    /// Reads the value at `chunk[pos..]` onto `nodes` and returns where it ends, or
    /// `None` when it is not whole in `chunk`, is a rare form, or is not what
    /// [`Decoder`] accepts (the caller then drops the tokens pushed and hands the value
    /// to the inner decoder, which reports the precise error).
    #[inline(always)]
    fn fast_value(
        &mut self,
        lim: &Limits,
        chunk: &[u8],
        mut pos: usize,
        seg: u32,
        nodes: &mut Vec<Node>,
        pushes: &mut bool,
    ) -> Option<usize> {
        self.stack.clear();
        loop {
            let ty = *chunk.get(pos)?;
            let lf = find_lf(chunk, pos + 1)?;
            let cr = lf - 1;
            if cr == pos || chunk[cr] != b'\r' || cr - pos > lim.max_line_len {
                return None;
            }
            let body = &chunk[pos + 1..cr];
            let next = lf + 1;
            match ty {
                b'+' | b'-' => {
                    // A plain loop: status lines are short, `contains` would call `memchr`.
                    #[allow(clippy::manual_contains)]
                    let has_cr = body.iter().any(|&b| b == b'\r');
                    if has_cr {
                        return None;
                    }
                    let tag = if ty == b'+' {
                        Tag::SimpleString
                    } else {
                        Tag::SimpleError
                    };
                    nodes.push(Node::string(tag, seg, pos + 1, body.len()));
                    pos = next;
                }
                b':' => {
                    nodes.push(Node::bits(Tag::Integer, parse_i64(body)? as u64));
                    pos = next;
                }
                b'$' | b'!' | b'=' => {
                    if ty != b'$' && !lim.resp3 {
                        return None;
                    }
                    match parse_len(body)? {
                        Len::Null if ty == b'$' => {
                            nodes.push(Node::plain(Tag::Null, 0));
                            pos = next;
                        }
                        Len::Count(n) if n <= lim.max_bulk_len as u64 => {
                            let n = n as usize;
                            let end = next.checked_add(n)?;
                            if chunk.get(end..end.checked_add(2)?)? != b"\r\n" {
                                return None;
                            }
                            let tag = match ty {
                                b'$' => Tag::BulkString,
                                b'!' => Tag::BlobError,
                                _ => {
                                    if n < 4 || chunk[next + 3] != b':' {
                                        return None;
                                    }
                                    Tag::Verbatim
                                }
                            };
                            nodes.push(Node::string(tag, seg, next, n));
                            pos = end + 2;
                        }
                        _ => return None,
                    }
                }
                b'*' | b'~' | b'%' | b'>' => {
                    if ty != b'*' && !lim.resp3 {
                        return None;
                    }
                    match parse_len(body)? {
                        Len::Null if ty == b'*' => {
                            nodes.push(Node::plain(Tag::Null, 0));
                            pos = next;
                        }
                        Len::Count(n) => {
                            let (tag, elements) = match ty {
                                b'*' => (Tag::Array, n),
                                b'~' => (Tag::Set, n),
                                b'>' => {
                                    // Set even if the value is then handed to the inner
                                    // decoder: the flag may only err towards `true`.
                                    *pushes = true;
                                    (Tag::Push, n)
                                }
                                _ => (Tag::Map, n.saturating_mul(2)),
                            };
                            if elements > lim.max_aggregate_len as u64 || self.stack.len() >= lim.max_depth {
                                return None;
                            }
                            // `max_aggregate_len` is at most `u32::MAX` here.
                            let elements = elements as u32;
                            let idx = nodes.len() as u32;
                            nodes.push(Node {
                                tag,
                                seg: 0,
                                a: elements,
                                b: idx + 1,
                            });
                            pos = next;
                            if elements > 0 {
                                self.stack.push((idx, elements));
                                continue;
                            }
                        }
                        _ => return None,
                    }
                }
                b'_' if lim.resp3 && body.is_empty() => {
                    nodes.push(Node::plain(Tag::Null, 0));
                    pos = next;
                }
                b'#' if lim.resp3 => {
                    let truth = match body {
                        b"t" => 1,
                        b"f" => 0,
                        _ => return None,
                    };
                    nodes.push(Node::plain(Tag::Boolean, truth));
                    pos = next;
                }
                b',' if lim.resp3 => {
                    let d = std::str::from_utf8(body).ok()?.parse::<f64>().ok()?;
                    nodes.push(Node::bits(Tag::Double, d.to_bits()));
                    pos = next;
                }
                b'(' if lim.resp3 => {
                    if !is_big_number(body) {
                        return None;
                    }
                    nodes.push(Node::string(Tag::BigNumber, seg, pos + 1, body.len()));
                    pos = next;
                }
                _ => return None,
            }
            // A value is complete: count it in its parent, closing parents as they fill.
            loop {
                let Some(top) = self.stack.last_mut() else {
                    return Some(pos);
                };
                top.1 -= 1;
                if top.1 > 0 {
                    break;
                }
                let idx = top.0 as usize;
                self.stack.pop();
                nodes[idx].b = nodes.len() as u32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fuzzing::{check_ref, tape_pieces, value_pieces, TapeEnd};

    /// Every form at once: fast-path scalars and aggregates, and the rare forms the
    /// inner decoder takes (attributes, streamed strings and aggregates).
    const ALL: &[u8] = b"+OK\r\n-ERR no\r\n:-42\r\n$5\r\nhe\r\no\r\n$0\r\n\r\n$-1\r\n*-1\r\n_\r\n#t\r\n#f\r\n\
,1.5e3\r\n,-inf\r\n,nan\r\n(-12345678901234567890\r\n!5\r\nERR x\r\n=9\r\ntxt:hello\r\n\
*3\r\n:1\r\n*0\r\n*2\r\n%1\r\n+k\r\n~1\r\n:2\r\n>1\r\n$1\r\nx\r\n%0\r\n~0\r\n\
|1\r\n+ttl\r\n:3\r\n*1\r\n|1\r\n+k\r\n+v\r\n:7\r\n$?\r\n;4\r\nHell\r\n;1\r\no\r\n;0\r\n\
*?\r\n:1\r\n%?\r\n+a\r\n:1\r\n.\r\n.\r\n:9223372036854775807\r\n";

    fn whole(config: &DecoderConfig, input: &[u8]) -> (Vec<Value>, TapeEnd) {
        value_pieces(config, vec![input])
    }

    #[test]
    fn every_type_decodes_as_the_decoder_does_at_every_split() {
        let config = DecoderConfig::default();
        let want = whole(&config, ALL);
        assert_eq!(want.1, TapeEnd::NeedMore { mid_value: false });
        assert_eq!(want.0.len(), 23);
        for cut in 0..=ALL.len() {
            for clear in [false, true] {
                let got = tape_pieces(&config, vec![&ALL[..cut], &ALL[cut..]], clear);
                assert_eq!(got, want, "cut at {cut}");
            }
        }
        let bytewise = tape_pieces(&config, ALL.chunks(1).collect(), false);
        assert_eq!(bytewise, want);
    }

    #[test]
    fn one_segment_becomes_tokens_and_one_handle() {
        let mut src = SegmentedBuffer::from(Bytes::from_static(
            b"+OK\r\n:7\r\n$16\r\nvalue:0000000001\r\n*2\r\n*1\r\n:1\r\n$1\r\nz\r\n%1\r\n+a\r\n,0.5\r\n",
        ));
        let mut decoder = TapeDecoder::default();
        let mut tape = Tape::new();
        assert_eq!(decoder.decode(&mut src, &mut tape), Ok(5));
        assert!(src.is_empty());
        assert_eq!(tape.segment_count(), 1);
        assert!(tape.values.is_empty(), "the fast path took everything");
        assert_eq!(tape.token_count(), 10);
        let array = tape.get(3).unwrap();
        // The skip index jumps over the nested array.
        let kids: Vec<_> = array.children().collect();
        assert_eq!(kids.len(), 2);
        assert_eq!(kids[0].children().next().unwrap().as_integer(), Some(1));
        assert_eq!(kids[1].as_bytes(), Some(&b"z"[..]));
        let map = tape.get(4).unwrap();
        let (k, v) = map.pairs().next().unwrap();
        assert_eq!((k.as_bytes(), v.as_double()), (Some(&b"a"[..]), Some(0.5)));
        assert!(tape.get(5).is_none());
        for r in tape.iter() {
            check_ref(r, &r.to_value());
        }
    }

    #[test]
    fn strings_borrow_from_the_input() {
        let seg = Bytes::from_static(b"$5\r\nhello\r\n+OK\r\n");
        let mut src = SegmentedBuffer::from(seg.clone());
        let mut tape = Tape::new();
        TapeDecoder::default().decode(&mut src, &mut tape).unwrap();
        let bulk = tape.get(0).unwrap();
        assert_eq!(bulk.as_bytes().unwrap().as_ptr(), seg[4..].as_ptr());
        assert_eq!(bulk.to_bytes().unwrap().as_ptr(), seg[4..].as_ptr());
        assert_eq!(tape.get(1).unwrap().as_bytes().unwrap().as_ptr(), seg[12..].as_ptr());
    }

    #[test]
    fn errors_are_the_decoders_and_earlier_values_stay() {
        let cases: &[&[u8]] = &[
            b"+OK\r\nx\r\n",
            b":1\r\n+OK\n",
            b"+O\rK\r\n",
            b":12a\r\n",
            b":9223372036854775808\r\n",
            b"$3\r\nabcd\r\n",
            b"$-2\r\n",
            b"#x\r\n",
            b",1.2.3\r\n",
            b"(12x\r\n",
            b"=3\r\ntxt\r\n",
            b"=4\r\ntxtx\r\n",
            b"!-1\r\n",
            b"~-1\r\n",
            b"_x\r\n",
            b";3\r\n",
            b".\r\n",
            b"*1\r\n*1\r\n:1\r\n.\r\n",
            b"%?\r\n+a\r\n.\r\n",
        ];
        for config in [DecoderConfig::default(), DecoderConfig::new(Protocol::Resp2)] {
            for &input in cases {
                let want = whole(&config, input);
                for cut in 0..=input.len() {
                    let got = tape_pieces(&config, vec![&input[..cut], &input[cut..]], false);
                    assert_eq!(got, want, "{:?} cut at {cut}", String::from_utf8_lossy(input));
                }
            }
        }
        let (values, end) = whole(&DecoderConfig::default(), b"+OK\r\nx\r\n");
        assert_eq!(values.len(), 1);
        assert_eq!(end, TapeEnd::Error(DecodeError::UnknownType(b'x')));
    }

    #[test]
    fn resp2_rejects_resp3_types_as_the_decoder_does() {
        let config = DecoderConfig::new(Protocol::Resp2);
        for input in [
            &b"%0\r\n"[..],
            b"_\r\n",
            b"#t\r\n",
            b",1\r\n",
            b"(1\r\n",
            b"!1\r\nx\r\n",
            b"$?\r\n",
        ] {
            let got = tape_pieces(&config, vec![input], false);
            assert_eq!(got, whole(&config, input));
            assert!(matches!(got.1, TapeEnd::Error(_)), "{got:?}");
        }
    }

    #[test]
    fn limits_are_the_decoders() {
        let config = DecoderConfig {
            max_bulk_len: 10,
            max_aggregate_len: 3,
            max_depth: 2,
            max_line_len: 16,
            ..DecoderConfig::default()
        };
        let inputs: &[&[u8]] = &[
            b"$11\r\n",
            b"$4294967296000\r\n",
            b"$10\r\n0123456789\r\n",
            b"*4\r\n",
            b"*3\r\n:1\r\n:2\r\n:3\r\n",
            b"%2\r\n",
            b"*?\r\n:1\r\n:1\r\n:1\r\n:1\r\n",
            b"*1\r\n*1\r\n*1\r\n",
            b"*1\r\n*1\r\n:1\r\n",
            b"+0123456789abcdefghij",
            b"+0123456789abcdefg\r\n",
            b"+0123456789abcde\r\n",
            b"$?\r\n;6\r\nabcdef\r\n;6\r\n",
        ];
        for &input in inputs {
            let want = whole(&config, input);
            for cut in 0..=input.len() {
                assert_eq!(
                    tape_pieces(&config, vec![&input[..cut], &input[cut..]], false),
                    want,
                    "{:?} cut at {cut}",
                    String::from_utf8_lossy(input)
                );
            }
        }
        let nested = b"*1\r\n".repeat(100_000);
        let got = tape_pieces(&DecoderConfig::default(), vec![&nested], false);
        assert_eq!(got.1, TapeEnd::Error(DecodeError::TooDeep { max: 32 }));
    }

    #[test]
    fn a_large_array_in_small_pieces_is_parsed_once() {
        let mut input = b"*1000\r\n".to_vec();
        for i in 0..500 {
            input.extend_from_slice(format!("$4\r\n{i:04}\r\n:{i}\r\n").as_bytes());
        }
        let mut decoder = TapeDecoder::default();
        let mut src = SegmentedBuffer::new();
        let mut tape = Tape::new();
        for piece in input.chunks(64) {
            src.push_slice(piece);
            decoder.decode(&mut src, &mut tape).unwrap();
            // Complete elements are taken out as they arrive: the buffer never holds
            // more than a piece and one element's worth of bytes.
            assert!(src.len() <= 64 + 12, "buffer holds {}", src.len());
        }
        assert_eq!(tape.len(), 1);
        assert_eq!(tape.get(0).unwrap().child_count(), 1000);
        assert!(!decoder.is_mid_value());
    }

    #[test]
    fn a_long_line_in_small_pieces_is_searched_once() {
        // The inner decoder remembers how far it searched; the fast path must not start
        // over on every piece (nor consume bytes behind its back).
        let mut input = vec![b'+'];
        input.extend(std::iter::repeat_n(b'a', 60_000));
        input.extend_from_slice(b"\r\n:1\r\n");
        let got = tape_pieces(&DecoderConfig::default(), input.chunks(7).collect(), false);
        assert_eq!(got, whole(&DecoderConfig::default(), &input));
        assert_eq!(got.0.len(), 2);
    }

    #[test]
    fn clear_keeps_the_tape_reusable() {
        let mut decoder = TapeDecoder::default();
        let mut tape = Tape::new();
        let mut src = SegmentedBuffer::new();
        for round in 0..3 {
            src.push_slice(b"*2\r\n:1\r\n$1\r\na\r\n+OK\r\n");
            assert_eq!(decoder.decode(&mut src, &mut tape), Ok(2), "round {round}");
            assert_eq!(tape.len(), 2);
            assert_eq!(tape.get(1).unwrap().as_bytes(), Some(&b"OK"[..]));
            tape.clear();
            assert!(tape.is_empty() && tape.token_count() == 0 && tape.segment_count() == 0);
        }
    }

    #[test]
    fn values_across_segments_are_stored_whole() {
        let mut src = SegmentedBuffer::new();
        src.push_slice(b"+OK\r\n$5\r\nhel");
        src.push_slice(b"lo\r\n:5\r\n");
        let mut tape = Tape::new();
        assert_eq!(TapeDecoder::default().decode(&mut src, &mut tape), Ok(3));
        assert_eq!(tape.values.len(), 1);
        assert_eq!(tape.segment_count(), 2);
        let got: Vec<Value> = tape.iter().map(|r| r.to_value()).collect();
        assert_eq!(
            got,
            [
                Value::SimpleString("OK".into()),
                Value::from("hello"),
                Value::Integer(5)
            ]
        );
    }

    mod round_trip {
        use proptest::collection::vec;
        use proptest::prelude::*;

        use super::*;
        use crate::chassis::IoArena;
        use crate::resp::Encoder;

        fn text() -> impl Strategy<Value = Bytes> {
            "[a-zA-Z0-9 :_-]{0,12}".prop_map(Bytes::from)
        }

        fn scalar() -> impl Strategy<Value = Value> {
            prop_oneof![
                text().prop_map(Value::SimpleString),
                text().prop_map(|t| Value::SimpleError(Bytes::from([&b"ERR "[..], &t].concat()))),
                any::<i64>().prop_map(Value::Integer),
                vec(any::<u8>(), 0..40).prop_map(|b| Value::BulkString(Bytes::from(b))),
                Just(Value::Null),
                any::<bool>().prop_map(Value::Boolean),
                (-1.0e9f64..1.0e9).prop_map(Value::Double),
                "-?[1-9][0-9]{0,30}".prop_map(|d| Value::BigNumber(Bytes::from(d))),
            ]
        }

        fn value() -> impl Strategy<Value = Value> {
            scalar().prop_recursive(3, 24, 4, |inner| {
                prop_oneof![
                    vec(inner.clone(), 0..4).prop_map(Value::Array),
                    vec(inner.clone(), 0..4).prop_map(Value::Set),
                    vec((inner.clone(), inner), 0..3).prop_map(Value::Map),
                ]
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Encoded values come back from the tape as they went in, and as `Decoder`
            /// returns them, wherever the stream is cut in two, and fed byte by byte.
            #[test]
            fn encoded_values_round_trip_at_every_split(values in vec(value(), 1..6), clear in any::<bool>()) {
                let mut arena = IoArena::new();
                for v in &values {
                    Encoder::new(Protocol::Resp3).encode(v, &mut arena).unwrap();
                }
                let bytes = arena.to_vec();
                let config = DecoderConfig::default();
                let want = whole(&config, &bytes);
                prop_assert_eq!(&want.0, &values);
                prop_assert_eq!(&want.1, &TapeEnd::NeedMore { mid_value: false });
                for cut in 0..=bytes.len() {
                    let got = tape_pieces(&config, vec![&bytes[..cut], &bytes[cut..]], clear);
                    prop_assert_eq!(&got, &want, "cut at {}", cut);
                }
                prop_assert_eq!(&tape_pieces(&config, bytes.chunks(1).collect(), clear), &want);
            }
        }
    }

    #[test]
    fn attributes_are_readable() {
        let mut src = SegmentedBuffer::new();
        src.push_slice(b"|1\r\n+ttl\r\n:3\r\n$2\r\nhi\r\n");
        let mut tape = Tape::new();
        TapeDecoder::default().decode(&mut src, &mut tape).unwrap();
        let r = tape.get(0).unwrap();
        assert_eq!(r.kind(), TapeKind::BulkString);
        assert_eq!(r.as_bytes(), Some(&b"hi"[..]));
        assert_eq!(r.attributes().map(<[_]>::len), Some(1));
        assert!(matches!(r.to_value(), Value::Attributed { .. }));
    }
}
