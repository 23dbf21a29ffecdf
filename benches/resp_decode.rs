//! RESP decoding, side by side: Monocoque's [`Decoder`] (fed from a [`SegmentedBuffer`]),
//! Monocoque's batch [`TapeDecoder`] (every complete value onto a reusable [`Tape`]),
//! the `redis-protocol` crate's zero-copy `Bytes` decoder (`decode_bytes_mut`) and the
//! `redis` crate's parser, on the same byte streams, in one run.
//!
//! ```sh
//! cargo bench --bench resp_decode              # the full run (a few minutes)
//! cargo bench --bench resp_decode -- --quick   # CI smoke: fewer rounds, smaller budgets
//! ```
//!
//! Cases:
//! - (a) a pipeline of 10,000 small replies decoded from one buffer: `+OK`, `:n`, 16-byte
//!   bulks, a mixed RESP2 stream, and a mixed RESP3 stream (maps, sets, doubles, ...).
//! - (b) 64 bulk strings of 1 MiB each in one buffer. Ours must not copy the payloads:
//!   every decoded `Bytes` is checked to point into the input's allocation, and the heap
//!   bytes each decoder allocates while decoding are counted.
//! - (c) a 23 KB array of 1,000 bulks and integers fed in 64-byte pieces, decoding after
//!   each piece as a network client does: ours keeps its progress; `redis-protocol` gets
//!   the piece appended to its `BytesMut` and retries; the `redis` crate re-runs
//!   `parse_redis_value` on everything received so far. Then the same array at 1x, 4x
//!   and 16x its size, in time per byte: flat means linear.
//! - (d) the io_uring receive path below its low-water mark: each stream of (a) and (b)
//!   arrives in 16 KiB receives (the driver's buffer size); "views" decodes zero-copy
//!   views of them, as the driver hands over while its ring is healthy, "copied" first
//!   copies each receive into a `Bytes` of exactly its size, as the driver does once
//!   fewer than `recv_low_water` buffers are left (so kept values never starve the
//!   ring). The copy is timed with the decode: the table is what the fallback costs a
//!   client's receive-and-decode path. It also prints the heap bytes one kept 16-byte
//!   `GET` value costs when its receive was copied.
//!
//! - (e) the client's decode path: a `resp::Connection` with one request waiting per
//!   reply, fed the (a) and (c) streams as the Redis client feeds it: the owned path
//!   (`handle_input` and `poll_event`, a `Value` and an event per reply: what `flush`
//!   runs) and the visiting path (`visit_replies`, each reply a borrowed `TapeRef`: what
//!   `flush_visit` runs), against the tape. Preparing the connections (encoding the
//!   requests) is outside the timed region.
//!
//! Method: every decoder's output is checked first (ours value by value; each peer by
//! the number of values, nested ones included, the sum of the integers and the total
//! bulk bytes). Then each decoder is warmed up, calibrated so that one sample lasts at
//! least a few milliseconds, and timed in interleaved rounds (the order rotates each
//! round); the table gives the median. Work a decoder's API forces on its caller
//! before decoding (copying the input into `redis-protocol`'s `BytesMut`) is outside the
//! timed region; every decoded value is dropped inside it. MB is 10^6 bytes.
//!
//! The tape contender does more than the others inside the timed region, so that nothing
//! it skipped could flatter it: after each `decode` call it walks every token of every
//! new value (children included), reads each string's bytes (summing their lengths) and
//! each integer (summing them), then clears the tape (dropping its segment handles).
//! The other contenders only drop what they decoded.
//!
//! Arguments that are not flags select cases by name (`-- '+OK' 'c:'`), as `cargo bench`
//! filters do. Each decoder's driver is kept out of line, so a profiler (`perf`,
//! `valgrind --tool=callgrind`) attributes the cost to `ours`, `rp_whole`, `redis_read_all`,
//! `client_owned`, `client_visit`...

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::io::Read;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monocoque_proto::resp::{
    Cmd, Connection, ConnectionConfig, Decoder, DecoderConfig, Event, Protocol, Tape, TapeDecoder, TapeKind, TapeRef,
    Value,
};
use monocoque_proto::SegmentedBuffer;
use redis_protocol::resp2::types::BytesFrame as Rp2Frame;
use redis_protocol::resp3::types::BytesFrame as Rp3Frame;

// ---------------------------------------------------------------------------------------
// Allocation accounting: proves the 1 MiB payloads are not copied.

/// The system allocator, counting the bytes requested while [`COUNTING`] is set.
struct CountingAlloc;

/// Whether allocations are being counted (only around one decode at a time).
static COUNTING: AtomicBool = AtomicBool::new(false);
/// Bytes requested by `alloc`, `alloc_zeroed` and growing `realloc`s while counting.
static ALLOCATED: AtomicUsize = AtomicUsize::new(0);

fn count(bytes: usize) {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATED.fetch_add(bytes, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, which upholds the
// `GlobalAlloc` contract; the counting touches only atomics and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract for `alloc` is passed on unchanged.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size());
        // SAFETY: the caller's contract for `alloc_zeroed` is passed on unchanged.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes
        // through this wrapper).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(new_size.saturating_sub(layout.size()));
        // SAFETY: the caller's contract for `realloc` is passed on unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Heap bytes requested while `f` runs.
fn allocated_by(f: impl FnOnce()) -> usize {
    ALLOCATED.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATED.load(Ordering::Relaxed)
}

// ---------------------------------------------------------------------------------------
// Inputs.

/// How the input reaches the decoder.
#[derive(Debug, Clone, Copy)]
enum Feed {
    /// All of it, in one buffer.
    Whole,
    /// In pieces of this many bytes, decoding after each piece.
    Pieces(usize),
}

/// One byte stream and what it must decode to.
struct Case {
    name: String,
    protocol: Protocol,
    input: Bytes,
    expected: Vec<Value>,
    feed: Feed,
}

impl Case {
    fn new(name: impl Into<String>, protocol: Protocol, expected: Vec<Value>, feed: Feed) -> Self {
        let mut out = Vec::new();
        for v in &expected {
            write_value(&mut out, v, protocol);
        }
        Self {
            name: name.into(),
            protocol,
            input: Bytes::from(out),
            expected,
            feed,
        }
    }

    fn summary(&self) -> Summary {
        let mut s = Summary::default();
        for v in &self.expected {
            s.top(v);
        }
        s
    }
}

/// Encodes the subset of RESP the cases use. Written out by hand so the inputs do not
/// depend on our own encoder.
fn write_value(out: &mut Vec<u8>, v: &Value, protocol: Protocol) {
    match v {
        Value::SimpleString(s) => line(out, b'+', s),
        Value::SimpleError(s) => line(out, b'-', s),
        Value::Integer(n) => line(out, b':', n.to_string().as_bytes()),
        Value::BulkString(b) => {
            line(out, b'$', b.len().to_string().as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        }
        Value::Null if protocol == Protocol::Resp2 => out.extend_from_slice(b"$-1\r\n"),
        Value::Null => out.extend_from_slice(b"_\r\n"),
        Value::Boolean(b) => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
        Value::Double(d) => line(out, b',', d.to_string().as_bytes()),
        Value::Array(items) | Value::Set(items) => {
            let ty = if matches!(v, Value::Array(_)) { b'*' } else { b'~' };
            line(out, ty, items.len().to_string().as_bytes());
            for item in items {
                write_value(out, item, protocol);
            }
        }
        Value::Map(pairs) => {
            line(out, b'%', pairs.len().to_string().as_bytes());
            for (k, item) in pairs {
                write_value(out, k, protocol);
                write_value(out, item, protocol);
            }
        }
        other => unreachable!("the benchmark inputs do not use {other:?}"),
    }
}

fn line(out: &mut Vec<u8>, ty: u8, body: &[u8]) {
    out.push(ty);
    out.extend_from_slice(body);
    out.extend_from_slice(b"\r\n");
}

fn simple(s: &'static str) -> Value {
    Value::SimpleString(Bytes::from_static(s.as_bytes()))
}

/// 16 bytes that differ from reply to reply.
fn bulk16(i: usize) -> Value {
    Value::BulkString(Bytes::from(format!("value:{i:010}")))
}

const PIPELINE: usize = 10_000;

fn pipeline_cases() -> Vec<Case> {
    let n = |i: usize| i as i64 * 7919 - 1_000_000;
    let mixed2 = |i: usize| match i % 6 {
        0 => simple("OK"),
        1 => Value::Integer(n(i)),
        2 => bulk16(i),
        3 => Value::Null,
        4 => Value::Array(vec![Value::Integer(n(i)), Value::from("hello"), simple("QUEUED")]),
        _ => Value::SimpleError(Bytes::from_static(b"ERR unknown command")),
    };
    let mixed3 = |i: usize| match i % 9 {
        0 => simple("OK"),
        1 => Value::Integer(n(i)),
        2 => bulk16(i),
        3 => Value::Null,
        4 => Value::Boolean(i.is_multiple_of(2)),
        5 => Value::Double(i as f64 + 0.5),
        6 => Value::Map(vec![
            (simple("a"), Value::Integer(n(i))),
            (simple("b"), Value::from("xyz")),
        ]),
        7 => Value::Set(vec![Value::Integer(n(i)), Value::Integer(n(i) + 1)]),
        _ => Value::Array(vec![Value::Integer(n(i)), bulk16(i)]),
    };
    let r2 = Protocol::Resp2;
    vec![
        Case::new(
            "a: 10k `+OK`",
            r2,
            (0..PIPELINE).map(|_| simple("OK")).collect(),
            Feed::Whole,
        ),
        Case::new(
            "a: 10k `:n`",
            r2,
            (0..PIPELINE).map(|i| Value::Integer(n(i))).collect(),
            Feed::Whole,
        ),
        Case::new(
            "a: 10k 16-byte bulks",
            r2,
            (0..PIPELINE).map(bulk16).collect(),
            Feed::Whole,
        ),
        Case::new(
            "a: 10k mixed RESP2",
            r2,
            (0..PIPELINE).map(mixed2).collect(),
            Feed::Whole,
        ),
        Case::new(
            "a: 10k mixed RESP3",
            Protocol::Resp3,
            (0..PIPELINE).map(mixed3).collect(),
            Feed::Whole,
        ),
    ]
}

const MIB: usize = 1024 * 1024;

fn big_bulk_case(count: usize) -> Case {
    let values = (0..count)
        .map(|i| Value::BulkString(Bytes::from(vec![b'a' + (i % 26) as u8; MIB])))
        .collect();
    Case::new(
        format!("b: {count} x 1 MiB bulks"),
        Protocol::Resp2,
        values,
        Feed::Whole,
    )
}

/// An array of `elements` bulks and integers, about 23.5 bytes per element.
fn array_case(elements: usize, piece: usize) -> Case {
    let items = (0..elements)
        .map(|i| {
            if i % 2 == 0 {
                Value::BulkString(Bytes::from(format!("member:{i:08}:abcdefghijklmno")))
            } else {
                Value::Integer(i as i64 * 1000)
            }
        })
        .collect();
    let mut case = Case::new("", Protocol::Resp2, vec![Value::Array(items)], Feed::Pieces(piece));
    case.name = format!(
        "c: {:.1} KB array ({elements} el.), {piece}-byte pieces",
        case.input.len() as f64 / 1e3
    );
    case
}

// ---------------------------------------------------------------------------------------
// What each decoder returned, in a form all three can be compared on.

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Summary {
    /// Top-level values.
    top: usize,
    /// Every value, nested ones (map keys included) too.
    values: usize,
    /// Wrapping sum of every integer.
    int_sum: i64,
    /// Total bytes of every bulk string.
    bulk_bytes: usize,
    /// Total bytes of the other strings (only the tape contender reads them; not compared).
    other_bytes: usize,
}

impl Summary {
    fn top(&mut self, v: &impl Walk) {
        self.top += 1;
        v.walk(self);
    }

    fn int(&mut self, n: i64) {
        self.int_sum = self.int_sum.wrapping_add(n);
    }
}

/// Adds a decoded value (and what it contains) to a [`Summary`].
trait Walk {
    fn walk(&self, s: &mut Summary);
}

impl Walk for Value {
    fn walk(&self, s: &mut Summary) {
        s.values += 1;
        match self {
            Value::Integer(n) => s.int(*n),
            Value::BulkString(b) => s.bulk_bytes += b.len(),
            Value::Array(items) | Value::Set(items) | Value::Push(items) => items.iter().for_each(|v| v.walk(s)),
            Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
                k.walk(s);
                v.walk(s);
            }),
            _ => {}
        }
    }
}

impl Walk for TapeRef<'_> {
    fn walk(&self, s: &mut Summary) {
        s.values += 1;
        match self.kind() {
            TapeKind::Integer => s.int(self.as_integer().unwrap_or_default()),
            TapeKind::BulkString => s.bulk_bytes += self.as_bytes().map_or(0, <[u8]>::len),
            TapeKind::Array | TapeKind::Set | TapeKind::Push | TapeKind::Map => self.children().for_each(|c| c.walk(s)),
            // Read the other strings too (a caller would): their lengths go to `other_bytes`.
            _ => s.other_bytes += self.as_bytes().map_or(0, <[u8]>::len),
        }
    }
}

/// A `redis-protocol` frame of either dialect.
enum RpFrame {
    V2(Rp2Frame),
    V3(Rp3Frame),
}

impl Walk for RpFrame {
    fn walk(&self, s: &mut Summary) {
        match self {
            RpFrame::V2(f) => f.walk(s),
            RpFrame::V3(f) => f.walk(s),
        }
    }
}

impl Walk for Rp2Frame {
    fn walk(&self, s: &mut Summary) {
        s.values += 1;
        match self {
            Rp2Frame::Integer(n) => s.int(*n),
            Rp2Frame::BulkString(b) => s.bulk_bytes += b.len(),
            Rp2Frame::Array(items) => items.iter().for_each(|v| v.walk(s)),
            _ => {}
        }
    }
}

impl Walk for Rp3Frame {
    fn walk(&self, s: &mut Summary) {
        s.values += 1;
        match self {
            Rp3Frame::Number { data, .. } => s.int(*data),
            Rp3Frame::BlobString { data, .. } => s.bulk_bytes += data.len(),
            Rp3Frame::Array { data, .. } | Rp3Frame::Push { data, .. } => data.iter().for_each(|v| v.walk(s)),
            Rp3Frame::Set { data, .. } => data.iter().for_each(|v| v.walk(s)),
            Rp3Frame::Map { data, .. } => data.iter().for_each(|(k, v)| {
                k.walk(s);
                v.walk(s);
            }),
            _ => {}
        }
    }
}

impl Walk for redis::Value {
    fn walk(&self, s: &mut Summary) {
        s.values += 1;
        match self {
            redis::Value::Int(n) => s.int(*n),
            redis::Value::BulkString(b) => s.bulk_bytes += b.len(),
            redis::Value::Array(items) | redis::Value::Set(items) | redis::Value::Push { data: items, .. } => {
                items.iter().for_each(|v| v.walk(s))
            }
            redis::Value::Map(pairs) => pairs.iter().for_each(|(k, v)| {
                k.walk(s);
                v.walk(s);
            }),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// The decoders, each driven the way its API is meant to be used. `sink` gets every
// top-level value.

#[inline(never)]
fn ours(case: &Case, sink: &mut impl FnMut(Value)) {
    let mut decoder = Decoder::new(DecoderConfig::new(case.protocol));
    let mut src = SegmentedBuffer::new();
    let mut drain = |src: &mut SegmentedBuffer| {
        while let Some(v) = decoder
            .decode(src)
            .unwrap_or_else(|e| panic!("{}: our decoder rejected the input: {e}", case.name))
        {
            sink(v);
        }
    };
    match case.feed {
        Feed::Whole => {
            src.push(case.input.clone());
            drain(&mut src);
        }
        Feed::Pieces(piece) => {
            let mut at = 0;
            while at < case.input.len() {
                let end = (at + piece).min(case.input.len());
                // What a driver hands over: a view of a received buffer.
                src.push(case.input.slice(at..end));
                drain(&mut src);
                at = end;
            }
        }
    }
    assert!(src.is_empty(), "{}: {} bytes left undecoded", case.name, src.len());
}

/// Ours, the batch API: after each arrival one `TapeDecoder::decode` call puts every
/// complete value on the tape, `sink` reads the tape, and the tape is cleared for reuse.
#[inline(never)]
fn ours_tape(case: &Case, sink: &mut impl FnMut(&Tape)) {
    let mut decoder = TapeDecoder::new(DecoderConfig::new(case.protocol));
    let mut src = SegmentedBuffer::new();
    let mut tape = Tape::new();
    let mut drain = |src: &mut SegmentedBuffer| {
        decoder
            .decode(src, &mut tape)
            .unwrap_or_else(|e| panic!("{}: our tape decoder rejected the input: {e}", case.name));
        sink(&tape);
        tape.clear();
    };
    match case.feed {
        Feed::Whole => {
            src.push(case.input.clone());
            drain(&mut src);
        }
        Feed::Pieces(piece) => {
            let mut at = 0;
            while at < case.input.len() {
                let end = (at + piece).min(case.input.len());
                src.push(case.input.slice(at..end));
                drain(&mut src);
                at = end;
            }
        }
    }
    assert!(src.is_empty(), "{}: {} bytes left undecoded", case.name, src.len());
}

/// What the tape contender does with each batch: reads every value (see the module docs).
fn read_tape(tape: &Tape) {
    let mut s = Summary::default();
    for r in tape.iter() {
        s.top(&r);
    }
    black_box(s);
}

fn rp_next(protocol: Protocol, buf: &mut BytesMut) -> Option<RpFrame> {
    let frame = match protocol {
        Protocol::Resp2 => redis_protocol::resp2::decode::decode_bytes_mut(buf).map(|f| f.map(|f| RpFrame::V2(f.0))),
        Protocol::Resp3 => {
            redis_protocol::resp3::decode::complete::decode_bytes_mut(buf).map(|f| f.map(|f| RpFrame::V3(f.0)))
        }
    };
    frame.unwrap_or_else(|e| panic!("redis-protocol rejected the input: {e:?}"))
}

/// `redis-protocol` on a whole buffer the caller already holds as a `BytesMut`.
#[inline(never)]
fn rp_whole(protocol: Protocol, buf: &mut BytesMut, sink: &mut impl FnMut(RpFrame)) {
    while let Some(f) = rp_next(protocol, buf) {
        sink(f);
    }
    assert!(buf.is_empty(), "redis-protocol left {} bytes undecoded", buf.len());
}

/// `redis-protocol` as a codec uses it: append what arrived, retry the decode.
#[inline(never)]
fn rp_pieces(case: &Case, piece: usize, sink: &mut impl FnMut(RpFrame)) {
    let mut buf = BytesMut::new();
    for chunk in case.input.chunks(piece) {
        buf.extend_from_slice(chunk);
        while let Some(f) = rp_next(case.protocol, &mut buf) {
            sink(f);
        }
    }
    assert!(buf.is_empty(), "redis-protocol left {} bytes undecoded", buf.len());
}

fn redis_parse_error(e: &redis::RedisError) -> ! {
    panic!("the redis crate rejected the input: {e}")
}

/// The `redis` crate's `Parser` reading values one after another from `reader` until it
/// reports the end of input.
#[inline(never)]
fn redis_read_all(mut reader: impl Read, sink: &mut impl FnMut(redis::Value)) {
    let mut parser = redis::Parser::new();
    loop {
        match parser.parse_value(&mut reader) {
            Ok(v) => sink(v),
            Err(e) if e.is_io_error() => return,
            Err(e) => redis_parse_error(&e),
        }
    }
}

/// The `redis` crate on bytes fed in pieces: `parse_redis_value` on everything received
/// so far, after each piece (an incomplete value is an end-of-input error). The crate
/// reports no consumed length, so this serves streams that hold one value (case c).
#[inline(never)]
fn redis_reparse(case: &Case, piece: usize, sink: &mut impl FnMut(redis::Value)) {
    let mut received = Vec::new();
    for chunk in case.input.chunks(piece) {
        received.extend_from_slice(chunk);
        match redis::parse_redis_value(&received) {
            Ok(v) => {
                sink(v);
                received.clear();
            }
            Err(e) if e.is_io_error() => {}
            Err(e) => redis_parse_error(&e),
        }
    }
    assert!(
        received.is_empty(),
        "the redis crate left {} bytes undecoded",
        received.len()
    );
}

/// A reader that returns at most `piece` bytes per `read`: the `redis` crate's blocking
/// client mode, where its parser pulls from the socket and keeps its partial state.
struct PieceReader<'a> {
    data: &'a [u8],
    piece: usize,
}

impl Read for PieceReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.piece.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

// ---------------------------------------------------------------------------------------
// Timing.

struct Opts {
    quick: bool,
    /// Substrings of the case names to run (all when empty), as `cargo bench` filters.
    filters: Vec<String>,
    /// Warm-up runs per decoder (fewer when a run is slow).
    warmup: usize,
    /// Interleaved rounds.
    rounds: usize,
    /// Fewest rounds, even when the budget is exceeded.
    min_rounds: usize,
    /// A sample repeats the decode until it lasts about this long.
    min_sample: Duration,
    /// Time per decoder per case beyond which rounds are cut.
    budget: Duration,
}

impl Opts {
    fn selects(&self, case: &Case) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| case.name.contains(f.as_str()))
    }

    fn from_args() -> Self {
        let args: Vec<String> = std::env::args().collect();
        // `cargo bench` passes `--bench`; without it (`cargo test --benches`) run the
        // smoke version too.
        let quick = args.iter().any(|a| a == "--quick") || !args.iter().any(|a| a == "--bench");
        let filters = args.iter().skip(1).filter(|a| !a.starts_with("--")).cloned().collect();
        if quick {
            Self {
                quick,
                filters,
                warmup: 1,
                rounds: 3,
                min_rounds: 1,
                min_sample: Duration::from_millis(2),
                budget: Duration::from_secs(2),
            }
        } else {
            Self {
                quick,
                filters,
                warmup: 3,
                rounds: 21,
                min_rounds: 3,
                min_sample: Duration::from_millis(20),
                budget: Duration::from_secs(25),
            }
        }
    }
}

/// One contender: performs `reps` decodes and returns the time they took, preparation
/// excluded.
type Contender<'a> = Box<dyn FnMut(usize) -> Duration + 'a>;

/// Seconds per decode for each contender: warm-up, calibration, then the median of
/// interleaved rounds.
fn measure(contenders: &mut [Contender<'_>], max_reps: &[usize], opts: &Opts) -> Vec<f64> {
    let n = contenders.len();
    let mut reps = vec![1usize; n];
    let mut per_sample = vec![0f64; n];
    for (i, run) in contenders.iter_mut().enumerate() {
        let started = Instant::now();
        let mut last = Duration::ZERO;
        for _ in 0..opts.warmup.max(1) {
            last = run(1);
            if started.elapsed() > opts.budget / 4 {
                break;
            }
        }
        let one = last.as_secs_f64().max(1e-9);
        reps[i] = ((opts.min_sample.as_secs_f64() / one).ceil() as usize).clamp(1, max_reps[i].max(1));
        per_sample[i] = one * reps[i] as f64;
    }
    let slowest = per_sample.iter().cloned().fold(0.0, f64::max);
    let rounds = ((opts.budget.as_secs_f64() / slowest) as usize).clamp(opts.min_rounds, opts.rounds);
    let mut samples = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            let t = contenders[i](reps[i]);
            samples[i].push(t.as_secs_f64() / reps[i] as f64);
        }
    }
    samples.into_iter().map(median).collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    }
}

/// Times `reps` runs of `f`.
fn timed(reps: usize, mut f: impl FnMut()) -> Duration {
    let started = Instant::now();
    for _ in 0..reps {
        f();
    }
    started.elapsed()
}

/// The four contenders of the main table for `case`: ours, redis-protocol, redis, ours
/// (tape).
fn contenders(case: &Case) -> (Vec<Contender<'_>>, Vec<usize>) {
    // Each `redis-protocol` repetition needs its own copy of a whole-buffer input; keep
    // those copies under 256 MiB.
    let rp_reps = (256 * MIB / case.input.len().max(1)).max(1);
    let ours_c: Contender<'_> = Box::new(move |reps| {
        timed(reps, || {
            ours(case, &mut |v| {
                black_box(v);
            })
        })
    });
    let (rp_c, redis_c): (Contender<'_>, Contender<'_>) = match case.feed {
        Feed::Whole => (
            Box::new(move |reps| {
                let mut bufs: Vec<BytesMut> = (0..reps).map(|_| BytesMut::from(&case.input[..])).collect();
                let started = Instant::now();
                for buf in &mut bufs {
                    rp_whole(case.protocol, buf, &mut |f| {
                        black_box(f);
                    });
                }
                let took = started.elapsed();
                drop(bufs);
                took
            }),
            Box::new(move |reps| {
                timed(reps, || {
                    redis_read_all(&case.input[..], &mut |v| {
                        black_box(v);
                    })
                })
            }),
        ),
        Feed::Pieces(piece) => (
            Box::new(move |reps| {
                timed(reps, || {
                    rp_pieces(case, piece, &mut |f| {
                        black_box(f);
                    })
                })
            }),
            Box::new(move |reps| {
                timed(reps, || {
                    redis_reparse(case, piece, &mut |v| {
                        black_box(v);
                    })
                })
            }),
        ),
    };
    let tape_c: Contender<'_> = Box::new(move |reps| timed(reps, || ours_tape(case, &mut read_tape)));
    (
        vec![ours_c, rp_c, redis_c, tape_c],
        vec![usize::MAX, rp_reps, usize::MAX, usize::MAX],
    )
}

// ---------------------------------------------------------------------------------------
// The client's decode path: a `resp::Connection` with one plain request waiting per
// reply, fed the stream the way `redis::Client` feeds it.

/// A connection speaking `case`'s protocol (the `HELLO 3` reply fed for RESP3), with one
/// `GET` waiting per top-level value and their bytes already taken from its arena: what
/// the client holds when the replies come. Preparation, outside the timed region.
#[inline(never)]
fn pending_connection(case: &Case) -> Connection {
    let now = Instant::now();
    let config = ConnectionConfig {
        protocol: case.protocol,
        max_pending: usize::MAX,
        max_outgoing_bytes: usize::MAX,
        ..ConnectionConfig::default()
    };
    let mut conn = Connection::new(config, now);
    if case.protocol == Protocol::Resp3 {
        conn.handle_input(Bytes::from_static(b"%1\r\n+proto\r\n:3\r\n"), now)
            .unwrap_or_else(|e| panic!("{}: the HELLO reply was refused: {e}", case.name));
    }
    assert!(conn.is_connected(), "{}: the connection did not connect", case.name);
    let get = Cmd::new("GET").arg("k");
    for _ in 0..case.expected.len() {
        conn.send_buffered(&get, now)
            .unwrap_or_else(|e| panic!("{}: send_buffered refused: {e}", case.name));
    }
    if let Some(arena) = conn.poll_transmit() {
        let n = arena.len();
        arena.advance(n);
    }
    while conn.poll_event().is_some() {}
    conn
}

/// The arrivals of `case`, as a driver hands them over.
fn arrivals(case: &Case) -> Vec<Bytes> {
    match case.feed {
        Feed::Whole => vec![case.input.clone()],
        Feed::Pieces(piece) => (0..case.input.len())
            .step_by(piece)
            .map(|at| case.input.slice(at..(at + piece).min(case.input.len())))
            .collect(),
    }
}

/// The client's owned path (`flush`, `flush_into`, `query`): `handle_input` decodes
/// each value into a `Value`, correlates it and queues an `Event::Reply`, which the
/// client takes with `poll_event`. `sink` gets every reply.
#[inline(never)]
fn client_owned(conn: &mut Connection, arrivals: &[Bytes], now: Instant, sink: &mut impl FnMut(Value)) {
    for data in arrivals {
        conn.handle_input(data.clone(), now)
            .unwrap_or_else(|e| panic!("the connection rejected the input: {e}"));
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Reply { value, .. } => sink(value),
                other => panic!("unexpected event {other:?}"),
            }
        }
    }
}

/// The client's visiting path (`flush_visit`, `pump_visit`): input held back, then
/// `visit_replies` decodes it onto the connection's tape and hands each reply over as a
/// `TapeRef`. `sink` gets every reply.
#[inline(never)]
fn client_visit(conn: &mut Connection, arrivals: &[Bytes], now: Instant, sink: &mut impl FnMut(TapeRef<'_>)) {
    conn.defer_input(true, now);
    for data in arrivals {
        conn.handle_input(data.clone(), now)
            .unwrap_or_else(|e| panic!("the connection rejected the input: {e}"));
        conn.visit_replies(now, |_, reply| sink(reply))
            .unwrap_or_else(|e| panic!("the connection rejected the input: {e}"));
    }
}

/// Contenders of table (e) for `case`: the client's owned path (each value dropped),
/// its visiting path (each reply walked as the tape contender walks), and the tape.
fn client_contenders(case: &Case) -> (Vec<Contender<'_>>, Vec<usize>) {
    let input = arrivals(case);
    let input2 = input.clone();
    // Each repetition needs its own connection with its requests waiting: bound them.
    let max_reps = (64 * MIB / (case.expected.len() * 64).max(1)).max(1);
    let owned_c: Contender<'_> = Box::new(move |reps| {
        let mut conns: Vec<Connection> = (0..reps).map(|_| pending_connection(case)).collect();
        let now = Instant::now();
        let started = Instant::now();
        for conn in &mut conns {
            client_owned(conn, &input, now, &mut |v| {
                black_box(v);
            });
        }
        let took = started.elapsed();
        drop(conns);
        took
    });
    let visit_c: Contender<'_> = Box::new(move |reps| {
        let mut conns: Vec<Connection> = (0..reps).map(|_| pending_connection(case)).collect();
        let now = Instant::now();
        let started = Instant::now();
        for conn in &mut conns {
            let mut s = Summary::default();
            client_visit(conn, &input2, now, &mut |r| s.top(&r));
            black_box(s);
        }
        let took = started.elapsed();
        drop(conns);
        took
    });
    let tape_c: Contender<'_> = Box::new(move |reps| timed(reps, || ours_tape(case, &mut read_tape)));
    let to_value_c: Contender<'_> = Box::new(move |reps| timed(reps, || tape_to_values(case)));
    (
        vec![owned_c, visit_c, tape_c, to_value_c],
        vec![max_reps, max_reps, usize::MAX, usize::MAX],
    )
}

/// The tape as a source of owned values: every value on it turned into a `Value` with
/// `to_value` and dropped (what the owned path would cost if the tape replaced
/// `Decoder` there).
#[inline(never)]
fn tape_to_values(case: &Case) {
    ours_tape(case, &mut |tape| {
        for r in tape.iter() {
            black_box(r.to_value());
        }
    });
}

/// Checks that both client paths return `case`'s values.
fn check_client(case: &Case) {
    let input = arrivals(case);
    let now = Instant::now();
    let mut got = Vec::new();
    client_owned(&mut pending_connection(case), &input, now, &mut |v| got.push(v));
    assert!(
        got == case.expected,
        "{}: the client's owned path returned different values",
        case.name
    );
    let mut got = Vec::new();
    let mut conn = pending_connection(case);
    client_visit(&mut conn, &input, now, &mut |r| got.push(r.to_value()));
    assert!(
        got == case.expected,
        "{}: the client's visit returned different values",
        case.name
    );
    assert_eq!(conn.pending(), 0, "{}: requests left waiting", case.name);
}

/// Table (e): the client's decode path, owned and visiting, against the tape.
fn client_report(cases: &[Case], opts: &Opts) {
    println!("(e) the client's decode path: a `resp::Connection` with one request waiting per reply");
    println!();
    println!(
        "\"client owned\" is `handle_input` + `poll_event` (what `flush` runs: a `Value` and an event per \
         reply, each dropped); \"client visit\" is `defer_input` + `handle_input` + `visit_replies` (what \
         `flush_visit` runs), walking each reply as the tape contender does; \"tape\" is the tape contender; \
         \"tape + to_value\" decodes onto the tape and turns every value into a `Value` (each dropped)."
    );
    println!();
    println!(
        "| case | values | client owned MB/s | client visit MB/s | tape MB/s | tape + to_value MB/s \
         | visit / owned | visit / tape |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    for case in cases
        .iter()
        .filter(|c| c.name.starts_with("a:") || c.name.starts_with("c:"))
    {
        check_client(case);
        let (mut cs, max_reps) = client_contenders(case);
        let secs = measure(&mut cs, &max_reps, opts);
        let bytes = case.input.len();
        println!(
            "| {} | {} | {} | {} | {} | {} | {:.2}x | {:.2}x |",
            case.name,
            case.summary().values,
            fmt_rate(mb_s(bytes, secs[0])),
            fmt_rate(mb_s(bytes, secs[1])),
            fmt_rate(mb_s(bytes, secs[2])),
            fmt_rate(mb_s(bytes, secs[3])),
            secs[0] / secs[1],
            secs[2] / secs[1],
        );
        eprintln!("measured client {}", case.name);
    }
}

/// Decodes `case` once with every decoder and checks the results; returns the summary.
fn check(case: &Case) -> Summary {
    let want = case.summary();

    let mut got = Vec::new();
    ours(case, &mut |v| got.push(v));
    assert!(
        got == case.expected,
        "{}: our decoder returned different values",
        case.name
    );

    let mut tape_values = Vec::new();
    let mut tape_summary = Summary::default();
    ours_tape(case, &mut |tape| {
        for r in tape.iter() {
            tape_values.push(r.to_value());
            tape_summary.top(&r);
        }
    });
    assert!(
        tape_values == case.expected,
        "{}: our tape decoder returned different values",
        case.name
    );
    tape_summary.other_bytes = 0;
    assert_eq!(tape_summary, want, "{}: the tape walk disagrees", case.name);

    let mut rp = Summary::default();
    match case.feed {
        Feed::Whole => rp_whole(case.protocol, &mut BytesMut::from(&case.input[..]), &mut |f| rp.top(&f)),
        Feed::Pieces(piece) => rp_pieces(case, piece, &mut |f| rp.top(&f)),
    }
    assert_eq!(rp, want, "{}: redis-protocol disagrees", case.name);

    let mut rd = Summary::default();
    match case.feed {
        Feed::Whole => redis_read_all(&case.input[..], &mut |v| rd.top(&v)),
        Feed::Pieces(piece) => {
            redis_reparse(case, piece, &mut |v| rd.top(&v));
            let mut pulled = Summary::default();
            let reader = PieceReader {
                data: &case.input,
                piece,
            };
            redis_read_all(reader, &mut |v| pulled.top(&v));
            assert_eq!(pulled, want, "{}: the redis crate (pull mode) disagrees", case.name);
        }
    }
    assert_eq!(rd, want, "{}: the redis crate disagrees", case.name);
    want
}

/// The driver's receive buffer size (io_uring's provided buffers): case (d) cuts every
/// stream into receives of this size.
const RECV: usize = 16 * 1024;

/// Ours fed `case.input` in receives of [`RECV`] bytes: zero-copy views of the input
/// (`copy == false`), or each receive copied into its own `Bytes` first, as the io_uring
/// driver does below its low-water mark.
#[inline(never)]
fn ours_received(case: &Case, copy: bool, sink: &mut impl FnMut(Value)) {
    let mut decoder = Decoder::new(DecoderConfig::new(case.protocol));
    let mut src = SegmentedBuffer::new();
    let mut at = 0;
    while at < case.input.len() {
        let end = (at + RECV).min(case.input.len());
        let piece = if copy {
            Bytes::copy_from_slice(&case.input[at..end])
        } else {
            case.input.slice(at..end)
        };
        src.push(piece);
        while let Some(v) = decoder
            .decode(&mut src)
            .unwrap_or_else(|e| panic!("{}: our decoder rejected the input: {e}", case.name))
        {
            sink(v);
        }
        at = end;
    }
    assert!(src.is_empty(), "{}: {} bytes left undecoded", case.name, src.len());
}

/// Case (d): receive-and-decode throughput with views and with copied receives, and the
/// heap cost of one kept value whose receive was copied.
fn low_water_report(cases: &[Case], opts: &Opts) {
    println!("(d) below the io_uring low-water mark: ours fed {RECV}-byte receives as views vs copied");
    println!();
    println!("| case | input bytes | views MB/s | copied MB/s | copied / views time |");
    println!("|---|---:|---:|---:|---:|");
    for case in cases.iter().filter(|c| matches!(c.feed, Feed::Whole)) {
        let mut count = [0usize; 2];
        for (i, copy) in [false, true].into_iter().enumerate() {
            ours_received(case, copy, &mut |_| count[i] += 1);
        }
        assert_eq!(count[0], case.expected.len(), "{}: views lost values", case.name);
        assert_eq!(count[1], case.expected.len(), "{}: copies lost values", case.name);
        let mut cs: Vec<Contender<'_>> = [false, true]
            .into_iter()
            .map(|copy| -> Contender<'_> {
                Box::new(move |reps| {
                    timed(reps, || {
                        ours_received(case, copy, &mut |v| {
                            black_box(v);
                        })
                    })
                })
            })
            .collect();
        let secs = measure(&mut cs, &[usize::MAX, usize::MAX], opts);
        println!(
            "| {} | {} | {} | {} | {:.2}x |",
            case.name,
            case.input.len(),
            fmt_rate(mb_s(case.input.len(), secs[0])),
            fmt_rate(mb_s(case.input.len(), secs[1])),
            secs[1] / secs[0]
        );
        eprintln!("measured low water {}", case.name);
    }
    // One GET reply carrying a 16-byte value, received alone and copied: what keeping
    // its value costs on the heap (the copy, plus the shared header a view of it needs).
    let reply = Bytes::from_static(b"$16\r\n0123456789abcdef\r\n");
    let mut decoder = Decoder::new(DecoderConfig::new(Protocol::Resp2));
    let mut src = SegmentedBuffer::new();
    let mut kept = Vec::with_capacity(2);
    // The first reply warms the decoder and the buffer's own storage up; the second is
    // measured, so the figure is what one more kept value costs.
    let mut receive_and_keep = |kept: &mut Vec<Value>| {
        src.push(Bytes::copy_from_slice(&reply));
        if let Ok(Some(v)) = decoder.decode(&mut src) {
            kept.push(v);
        }
    };
    receive_and_keep(&mut kept);
    let heap = allocated_by(|| receive_and_keep(&mut kept));
    assert_eq!(kept.len(), 2, "the GET replies did not decode");
    println!();
    println!(
        "A kept 16-byte GET value whose {}-byte receive was copied costs {heap} heap bytes (the copy and \
         the header its view shares); above the low-water mark it pins a whole {RECV}-byte receive buffer.",
        reply.len()
    );
}

// ---------------------------------------------------------------------------------------
// Report.

struct Row {
    name: String,
    bytes: usize,
    values: usize,
    /// Seconds per decode: ours, redis-protocol, redis, ours (tape).
    secs: Vec<f64>,
}

fn mb_s(bytes: usize, secs: f64) -> f64 {
    bytes as f64 / secs / 1e6
}

fn fmt_rate(x: f64) -> String {
    if x >= 100.0 {
        format!("{x:.0}")
    } else if x >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn print_table(rows: &[Row]) {
    println!("Columns: \"ours\" is `Decoder::decode` in a loop, one `Value` per call, each dropped;");
    println!("\"tape\" is `TapeDecoder::decode` once per arrival onto a reused `Tape`, then a walk of every");
    println!("token (children included) reading each string's bytes and each integer, then `Tape::clear`;");
    println!("\"redis-protocol\" is `decode_bytes_mut` in a loop, each frame dropped; \"redis\" is the redis");
    println!("crate's `Parser::parse_value` in a loop (case c: `parse_redis_value` on all received so far).");
    println!();
    println!(
        "| case | input bytes | values | ours MB/s | tape MB/s | tape M values/s | redis-protocol MB/s | redis MB/s \
         | ours / redis-protocol | ours / redis | tape / redis-protocol | tape / redis |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let [o, p, d, t] = [r.secs[0], r.secs[1], r.secs[2], r.secs[3]];
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.1}x | {:.1}x | {:.1}x | {:.1}x |",
            r.name,
            r.bytes,
            r.values,
            fmt_rate(mb_s(r.bytes, o)),
            fmt_rate(mb_s(r.bytes, t)),
            fmt_rate(r.values as f64 / t / 1e6),
            fmt_rate(mb_s(r.bytes, p)),
            fmt_rate(mb_s(r.bytes, d)),
            p / o,
            d / o,
            p / t,
            d / t,
        );
    }
}

fn cpu_description() -> String {
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{model}, {cpus} logical CPUs available")
}

/// Proves ours returns views into the input for every 1 MiB payload, and reports the
/// heap bytes each decoder requests for one decode.
fn zero_copy_report(case: &Case) {
    let range = case.input.as_ptr() as usize..case.input.as_ptr() as usize + case.input.len();
    let inside = |b: &[u8]| {
        let p = b.as_ptr() as usize;
        range.contains(&p) && p + b.len() <= range.end
    };
    let mut payloads = 0;
    ours(case, &mut |v| {
        let b = v
            .as_bytes()
            .unwrap_or_else(|| panic!("{}: expected a bulk, got {v:?}", case.name));
        assert!(inside(b), "{}: our decoder copied a payload", case.name);
        payloads += 1;
    });
    assert_eq!(payloads, case.expected.len());
    let mut tape_payloads = 0;
    ours_tape(case, &mut |tape| {
        for r in tape.iter() {
            let b = r
                .as_bytes()
                .unwrap_or_else(|| panic!("{}: expected a bulk, got {r:?}", case.name));
            assert!(inside(b), "{}: our tape decoder copied a payload", case.name);
            tape_payloads += 1;
        }
    });
    assert_eq!(tape_payloads, case.expected.len());

    let tape_alloc = allocated_by(|| ours_tape(case, &mut read_tape));
    let ours_alloc = allocated_by(|| ours(case, &mut |v| drop(black_box(v))));
    let mut buf = BytesMut::from(&case.input[..]);
    let rp_alloc = allocated_by(|| rp_whole(case.protocol, &mut buf, &mut |f| drop(black_box(f))));
    drop(buf);
    let redis_alloc = allocated_by(|| redis_read_all(&case.input[..], &mut |v| drop(black_box(v))));
    let payload = case.expected.len() * MIB;
    assert!(
        tape_alloc < payload / 64,
        "{}: our tape decoder allocated {tape_alloc} bytes for {payload} bytes of payload",
        case.name
    );
    assert!(
        ours_alloc < payload / 64,
        "{}: our decoder allocated {ours_alloc} bytes for {payload} bytes of payload",
        case.name
    );
    println!(
        "(b) zero copy: all {payloads} decoded payloads of ours and of ours (tape) point into the input \
         buffer's allocation (checked by address range). Heap bytes requested during one decode of {payload} \
         payload bytes: ours {ours_alloc}, ours (tape, a fresh tape) {tape_alloc}, redis-protocol {rp_alloc}, \
         redis {redis_alloc}."
    );
}

fn main() {
    let opts = Opts::from_args();
    println!("# RESP decode: monocoque (Decoder and TapeDecoder) vs redis-protocol 6 vs redis 1.8");
    println!();
    println!("cpu: {}", cpu_description());
    println!(
        "mode: {} ({} rounds max, samples >= {} ms, median reported)",
        if opts.quick { "quick" } else { "full" },
        opts.rounds,
        opts.min_sample.as_millis()
    );
    println!();

    let mut cases = pipeline_cases();
    cases.push(big_bulk_case(64));
    cases.push(array_case(1000, 64));
    cases.retain(|c| opts.selects(c));
    let scales: Vec<usize> = if opts.quick { vec![1, 4] } else { vec![1, 4, 16] };
    let (scales, arrays): (Vec<usize>, Vec<Case>) = scales
        .into_iter()
        .map(|s| (s, array_case(1000 * s, 64)))
        .filter(|(_, c)| opts.selects(c))
        .unzip();

    for case in cases.iter().chain(&arrays) {
        check(case);
    }
    if let Some(big) = cases.iter().find(|c| c.name.starts_with("b:")) {
        zero_copy_report(big);
        println!();
    }

    let mut rows = Vec::new();
    for case in &cases {
        let (mut cs, max_reps) = contenders(case);
        let secs = measure(&mut cs, &max_reps, &opts);
        rows.push(Row {
            name: case.name.clone(),
            bytes: case.input.len(),
            values: case.summary().values,
            secs,
        });
        eprintln!("measured {}", case.name);
    }
    print_table(&rows);
    println!();
    low_water_report(&cases, &opts);
    println!();
    client_report(&cases, &opts);
    println!();

    // Linearity: the array at several sizes, 64-byte pieces, time per byte.
    if arrays.is_empty() {
        return;
    }
    println!("(c) linearity: the array in 64-byte pieces, ns per input byte (flat = linear)");
    println!();
    println!(
        "| array | input bytes | ours ns/B | tape ns/B | redis-protocol ns/B | redis re-parse ns/B \
         | redis pull-parser ns/B |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut per_byte: Vec<Vec<f64>> = Vec::new();
    for (case, scale) in arrays.iter().zip(&scales) {
        let Feed::Pieces(piece) = case.feed else {
            unreachable!("the arrays are fed in pieces")
        };
        let (mut cs, mut max_reps) = contenders(case);
        cs.push(Box::new(move |reps| {
            timed(reps, || {
                let reader = PieceReader {
                    data: &case.input,
                    piece,
                };
                redis_read_all(reader, &mut |v| {
                    black_box(v);
                })
            })
        }));
        max_reps.push(usize::MAX);
        let secs = measure(&mut cs, &max_reps, &opts);
        let ns: Vec<f64> = secs.iter().map(|s| s * 1e9 / case.input.len() as f64).collect();
        println!(
            "| {scale}x ({} el.) | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} |",
            scale * 1000,
            case.input.len(),
            ns[0],
            ns[3],
            ns[1],
            ns[2],
            ns[4]
        );
        per_byte.push(ns);
        eprintln!("measured linearity {scale}x");
    }
    if let (Some(first), Some(last)) = (per_byte.first(), per_byte.last()) {
        let growth: Vec<String> = (0..first.len())
            .map(|i| format!("{:.1}x", last[i] / first[i]))
            .collect();
        println!();
        println!(
            "time per byte at {}x vs 1x: ours {}, tape {}, redis-protocol {}, redis re-parse {}, \
             redis pull-parser {}",
            scales.last().copied().unwrap_or(1),
            growth[0],
            growth[3],
            growth[1],
            growth[2],
            growth[4]
        );
    }
}
