//! Property tests for the RESP engine: every value survives encode → cut anywhere →
//! decode, RESP2 downgrades are the documented ones, every limit has its own error that
//! does not depend on where the stream was cut, the decoder's memory stays bounded by
//! what it received, and garbage is an error, never a panic.

use monocoque_proto::fuzzing::{decode_each, identical};
use monocoque_proto::resp::{DecodeError, Decoder, DecoderConfig, Encoder, Protocol, Value};
use monocoque_proto::{IoArena, SegmentedBuffer};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

#[path = "common/cuts.rs"]
mod cuts;
#[path = "common/resp_strategies.rs"]
mod resp_strategies;

use cuts::{cuts, split};
use resp_strategies::{attributed, encode_all, resp2, resp2_value, resp3, streamed_encoder, value, value_of};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

fn encode(encoder: &Encoder, value: &Value) -> Vec<u8> {
    encode_all(encoder, std::slice::from_ref(value))
}

/// Pushes each piece and decodes all that is available after it. Returns the values and
/// the first error, if any.
fn decode_pieces<'a>(
    config: &DecoderConfig,
    pieces: impl IntoIterator<Item = &'a [u8]>,
) -> (Vec<Value>, Result<(Decoder, SegmentedBuffer), DecodeError>) {
    let mut decoder = Decoder::new(config.clone());
    let mut src = SegmentedBuffer::new();
    let mut values = Vec::new();
    let end = decode_each(&mut decoder, &mut src, pieces, &mut values).map(|()| (decoder, src));
    (values, end)
}

/// Decodes pieces that make up exactly `expected`, and checks nothing else is produced
/// or left over.
fn assert_decodes_to<'a>(
    config: &DecoderConfig,
    pieces: impl IntoIterator<Item = &'a [u8]>,
    expected: &[Value],
) -> Result<(), TestCaseError> {
    let (got, end) = decode_pieces(config, pieces);
    let (decoder, src) = end.map_err(|e| TestCaseError::fail(format!("decode error {e} after {got:?}")))?;
    prop_assert!(src.is_empty(), "{} bytes left undecoded", src.len());
    prop_assert!(!decoder.is_mid_value(), "decoder still holds part of a value");
    prop_assert_eq!(got.len(), expected.len(), "{:?}", got);
    for (g, e) in got.iter().zip(expected) {
        prop_assert!(identical(g, e), "decoded\n{:?}\nexpected\n{:?}", g, e);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// RESP3 round trips
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn resp3_survives_every_two_way_split(v in value()) {
        let wire = encode(&Encoder::new(Protocol::Resp3), &v);
        for cut in 0..=wire.len() {
            assert_decodes_to(&resp3(), [&wire[..cut], &wire[cut..]], std::slice::from_ref(&v))?;
        }
    }

    #[test]
    // Small payloads only: a 4 KiB string streamed in 1-byte chunks is 30 KiB of wire,
    // and every cut of it would take minutes in a debug build.
    fn resp3_streamed_forms_survive_every_two_way_split(v in value_of(false), encoder in streamed_encoder()) {
        let wire = encode(&encoder, &v);
        for cut in 0..=wire.len() {
            assert_decodes_to(&resp3(), [&wire[..cut], &wire[cut..]], std::slice::from_ref(&v))?;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn resp3_survives_random_multiway_splits(v in value(), cuts in cuts(64)) {
        let wire = encode(&Encoder::new(Protocol::Resp3), &v);
        assert_decodes_to(&resp3(), split(&wire, &cuts), std::slice::from_ref(&v))?;
    }

    #[test]
    fn resp3_survives_one_byte_pieces(v in value()) {
        let wire = encode(&Encoder::new(Protocol::Resp3), &v);
        assert_decodes_to(&resp3(), wire.chunks(1), std::slice::from_ref(&v))?;
    }

    #[test]
    fn resp3_pipeline_from_random_pieces(values in vec(value(), 1..6), cuts in cuts(48)) {
        let wire = encode_all(&Encoder::new(Protocol::Resp3), &values);
        assert_decodes_to(&resp3(), split(&wire, &cuts), &values)?;
    }

    #[test]
    fn resp3_streamed_pipeline_from_random_pieces(
        values in vec(value(), 1..6),
        encoder in streamed_encoder(),
        cuts in cuts(48),
    ) {
        let wire = encode_all(&encoder, &values);
        assert_decodes_to(&resp3(), split(&wire, &cuts), &values)?;
    }

    #[test]
    fn resp3_arena_segments_as_received_segments(values in vec(value(), 1..4)) {
        // The arena shares large payloads as segments of their own; hand them over as
        // the driver would have received them.
        let mut arena = IoArena::with_share_threshold(16);
        for v in &values {
            Encoder::new(Protocol::Resp3).encode(v, &mut arena).expect("encodable");
        }
        arena.seal();
        assert_decodes_to(&resp3(), arena.chunks(), &values)?;
    }
}

#[test]
fn identical_tells_negative_zero_apart() {
    assert!(!identical(&Value::Double(0.0), &Value::Double(-0.0)));
    assert!(identical(&Value::Double(f64::NAN), &Value::Double(-f64::NAN)));
    assert!(identical(
        &Value::Array(vec![Value::Double(-0.0)]),
        &Value::Array(vec![Value::Double(-0.0)])
    ));
}

#[test]
fn doubles_keep_their_bits() {
    let e = Encoder::new(Protocol::Resp3);
    for d in [
        -0.0,
        5e-324,
        -2.225_073_858_507_201e-308, // largest subnormal
        f64::MIN_POSITIVE,
        f64::MAX,
        1e-300,
        123.456e200,
        f64::INFINITY,
        f64::NEG_INFINITY,
    ] {
        let wire = encode(&e, &Value::Double(d));
        let (got, end) = decode_pieces(&resp3(), [&wire[..]]);
        assert!(end.is_ok());
        match got[..] {
            [Value::Double(g)] => assert_eq!(g.to_bits(), d.to_bits(), "{d:e} → {:?}", String::from_utf8_lossy(&wire)),
            _ => panic!("{got:?}"),
        }
    }
    // The spec's spellings, and exponents in both cases.
    for (text, want) in [
        (",inf\r\n", f64::INFINITY),
        (",-inf\r\n", f64::NEG_INFINITY),
        (",1.23E+5\r\n", 123_000.0),
        (",-4e-2\r\n", -0.04),
        (",-0\r\n", -0.0),
    ] {
        let (got, _) = decode_pieces(&resp3(), [text.as_bytes()]);
        assert!(
            matches!(got[..], [Value::Double(g)] if g.to_bits() == want.to_bits()),
            "{text:?}: {got:?}"
        );
    }
    let (got, _) = decode_pieces(&resp3(), [&b",nan\r\n"[..]]);
    assert!(matches!(got[..], [Value::Double(g)] if g.is_nan()));
}

#[test]
fn push_is_accepted_at_any_position() {
    let push = || Value::Push(vec![Value::SimpleString("message".into()), Value::from("x")]);
    let cases = [
        push(),
        Value::Array(vec![Value::Integer(1), push()]),
        Value::Map(vec![(push(), push())]),
        Value::Set(vec![push()]),
        Value::Push(vec![push()]),
        attributed(vec![(push(), push())], push()),
        Value::Array(vec![attributed(vec![(Value::from("k"), push())], Value::Null)]),
    ];
    let wire = encode_all(&Encoder::new(Protocol::Resp3), &cases);
    for cut in 0..=wire.len() {
        assert_decodes_to(&resp3(), [&wire[..cut], &wire[cut..]], &cases).unwrap();
    }
}

#[test]
fn attributes_attach_to_the_following_value() {
    // The spec's example: an attribute before an array, and one inside it.
    let wire =
        b"|1\r\n+key-popularity\r\n%2\r\n$1\r\na\r\n,0.1923\r\n$1\r\nb\r\n,0.0012\r\n*2\r\n:2039123\r\n:9543892\r\n";
    let (got, end) = decode_pieces(&resp3(), [&wire[..]]);
    assert!(end.is_ok());
    let Value::Attributed { attributes, value } = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(attributes.len(), 1);
    assert_eq!(
        **value,
        Value::Array(vec![Value::Integer(2_039_123), Value::Integer(9_543_892)])
    );
    // Two attributes in a row describe the same value: they merge.
    let (got, _) = decode_pieces(&resp3(), [&b"*1\r\n|1\r\n+a\r\n:1\r\n|1\r\n+b\r\n:2\r\n#t\r\n"[..]]);
    assert_eq!(
        got,
        vec![Value::Array(vec![Value::Attributed {
            attributes: vec![
                (Value::SimpleString("a".into()), Value::Integer(1)),
                (Value::SimpleString("b".into()), Value::Integer(2)),
            ],
            value: Box::new(Value::Boolean(true)),
        }])]
    );
}

// ---------------------------------------------------------------------------------------
// RESP2
// ---------------------------------------------------------------------------------------

/// Whether `got` is what the RESP2 encoder documents for `orig`: maps flatten to arrays,
/// sets and pushes become arrays, doubles, big numbers and verbatim strings bulk
/// strings, booleans 1/0, blob errors line errors (CR/LF replaced by spaces), attributes
/// dropped.
fn is_downgrade_of(orig: &Value, got: &Value) -> bool {
    let all = |xs: &mut dyn Iterator<Item = &Value>, ys: &[Value]| {
        let xs: Vec<&Value> = xs.collect();
        xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| is_downgrade_of(x, y))
    };
    match (orig, got) {
        (Value::Attributed { value, .. }, got) => is_downgrade_of(value, got),
        (Value::Map(pairs), Value::Array(ys)) => all(&mut pairs.iter().flat_map(|(k, v)| [k, v]), ys),
        (Value::Array(xs) | Value::Set(xs) | Value::Push(xs), Value::Array(ys)) => all(&mut xs.iter(), ys),
        (Value::Double(d), Value::BulkString(text)) => std::str::from_utf8(text)
            .ok()
            .and_then(|t| t.parse::<f64>().ok())
            .is_some_and(|g| g.to_bits() == d.to_bits() || (g.is_nan() && d.is_nan())),
        (Value::BigNumber(n) | Value::Verbatim { text: n, .. }, Value::BulkString(b)) => n == b,
        (Value::Boolean(b), Value::Integer(i)) => *i == i64::from(*b),
        (Value::BlobError(e), Value::SimpleError(s)) => {
            e.len() == s.len()
                && e.iter()
                    .zip(s.iter())
                    .all(|(&a, &b)| b == if matches!(a, b'\r' | b'\n') { b' ' } else { a })
        }
        (orig, got) => identical(orig, got),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn resp2_values_round_trip_in_resp2_mode(v in resp2_value(), cuts in cuts(48)) {
        let wire = encode(&Encoder::new(Protocol::Resp2), &v);
        assert_decodes_to(&resp2(), split(&wire, &cuts), std::slice::from_ref(&v))?;
    }

    #[test]
    fn resp2_pipeline_round_trips(values in vec(resp2_value(), 1..6), cuts in cuts(48)) {
        let wire = encode_all(&Encoder::new(Protocol::Resp2), &values);
        assert_decodes_to(&resp2(), split(&wire, &cuts), &values)?;
    }

    #[test]
    fn resp3_values_downgrade_as_documented(v in value(), cuts in cuts(32)) {
        let wire = encode(&Encoder::new(Protocol::Resp2), &v);
        let (got, end) = decode_pieces(&resp2(), split(&wire, &cuts));
        let (decoder, src) = end.map_err(|e| TestCaseError::fail(format!("{e}: {:?}", String::from_utf8_lossy(&wire))))?;
        prop_assert!(src.is_empty() && !decoder.is_mid_value());
        prop_assert_eq!(got.len(), 1);
        prop_assert!(is_downgrade_of(&v, &got[0]), "{:?}\ndowngraded to\n{:?}", v, got[0]);
    }
}

#[test]
fn resp2_downgrades_exactly() {
    let e = Encoder::new(Protocol::Resp2);
    let s = |t: &'static str| Value::SimpleString(t.into());
    let cases: Vec<(Value, &[u8], Value)> = vec![
        (
            Value::Map(vec![(Value::from("a"), Value::Integer(1)), (s("b"), Value::Null)]),
            b"*4\r\n$1\r\na\r\n:1\r\n+b\r\n$-1\r\n",
            Value::Array(vec![Value::from("a"), Value::Integer(1), s("b"), Value::Null]),
        ),
        (
            Value::Set(vec![Value::Integer(1), Value::Boolean(true)]),
            b"*2\r\n:1\r\n:1\r\n",
            Value::Array(vec![Value::Integer(1), Value::Integer(1)]),
        ),
        (
            Value::Push(vec![s("message"), Value::from("ch"), Value::from("hi")]),
            b"*3\r\n+message\r\n$2\r\nch\r\n$2\r\nhi\r\n",
            Value::Array(vec![s("message"), Value::from("ch"), Value::from("hi")]),
        ),
        (Value::Double(1.5), b"$3\r\n1.5\r\n", Value::from("1.5")),
        (Value::Double(f64::NEG_INFINITY), b"$4\r\n-inf\r\n", Value::from("-inf")),
        (Value::Double(f64::NAN), b"$3\r\nnan\r\n", Value::from("nan")),
        (Value::Boolean(false), b":0\r\n", Value::Integer(0)),
        (
            Value::BlobError("ERR a\r\nb".into()),
            b"-ERR a  b\r\n",
            Value::SimpleError("ERR a  b".into()),
        ),
        (
            Value::Verbatim {
                format: *b"txt",
                text: "hi".into(),
            },
            b"$2\r\nhi\r\n",
            Value::from("hi"),
        ),
        (
            Value::BigNumber("-123456789012345678901234567890".into()),
            b"$31\r\n-123456789012345678901234567890\r\n",
            Value::from("-123456789012345678901234567890"),
        ),
        (Value::Null, b"$-1\r\n", Value::Null),
        (
            attributed(vec![(s("ttl"), Value::Integer(3))], Value::Integer(7)),
            b":7\r\n",
            Value::Integer(7),
        ),
        (
            Value::Array(vec![Value::Map(vec![]), Value::Set(vec![Value::Double(2.0)])]),
            b"*2\r\n*0\r\n*1\r\n$3\r\n2.0\r\n",
            Value::Array(vec![Value::Array(vec![]), Value::Array(vec![Value::from("2.0")])]),
        ),
    ];
    for (value, wire, decoded) in cases {
        assert_eq!(
            String::from_utf8_lossy(&encode(&e, &value)),
            String::from_utf8_lossy(wire),
            "{value:?}"
        );
        let (got, end) = decode_pieces(&resp2(), [wire]);
        assert!(end.is_ok(), "{value:?}");
        assert_eq!(got, vec![decoded]);
    }
}

#[test]
fn resp2_mode_rejects_every_resp3_type() {
    for ty in b"_,#!=(%~|>".iter().copied() {
        let (_, end) = decode_pieces(&resp2(), [&[ty, b'1', b'\r', b'\n'][..]]);
        assert_eq!(end.err(), Some(DecodeError::Resp3OnResp2(ty)), "{}", char::from(ty));
    }
    for streamed in [&b"$?\r\n"[..], b"*?\r\n"] {
        let (_, end) = decode_pieces(&resp2(), [streamed]);
        assert_eq!(end.err(), Some(DecodeError::InvalidLength));
    }
}

// ---------------------------------------------------------------------------------------
// Limits
// ---------------------------------------------------------------------------------------

fn small_limits() -> DecoderConfig {
    DecoderConfig {
        max_bulk_len: 10,
        max_aggregate_len: 3,
        max_depth: 3,
        max_line_len: 16,
        ..resp3()
    }
}

/// Inputs that break one limit each, with the error they must give.
fn limit_cases() -> Vec<(DecoderConfig, Vec<u8>, DecodeError)> {
    let small = small_limits();
    let bulk = |len| DecodeError::BulkTooLong { len, max: 10 };
    let agg = |len| DecodeError::AggregateTooLong { len, max: 3 };
    let mut cases: Vec<(DecoderConfig, &[u8], DecodeError)> = vec![
        // Bulk length, for every length-prefixed string, announced or streamed.
        (small.clone(), b"$11\r\n", bulk(11)),
        (small.clone(), b"!11\r\nERR\r\n", bulk(11)),
        (small.clone(), b"=15\r\ntxt:", bulk(15)),
        (small.clone(), b"$?\r\n;6\r\nabcdef\r\n;5\r\n", bulk(11)),
        (small.clone(), b"$?\r\n;99999999999\r\n", bulk(99_999_999_999)),
        (small.clone(), b"*1\r\n$12\r\nabc", bulk(12)),
        (small.clone(), b"$10\r\n0123456789\r\n$11\r\n", bulk(11)),
        // Aggregate length: maps and attributes count their pairs twice, streamed
        // aggregates count as they go.
        (small.clone(), b"*4\r\n", agg(4)),
        (small.clone(), b"~4\r\n", agg(4)),
        (small.clone(), b">4\r\n", agg(4)),
        (small.clone(), b"%2\r\n", agg(4)),
        (small.clone(), b"|2\r\n", agg(4)),
        (small.clone(), b"*?\r\n:1\r\n:2\r\n:3\r\n:4\r\n", agg(4)),
        (small.clone(), b"~?\r\n#t\r\n#t\r\n#t\r\n#t\r\n.\r\n", agg(4)),
        (small.clone(), b"%?\r\n+a\r\n:1\r\n+b\r\n:2\r\n.\r\n", agg(4)),
        (small.clone(), b"*1\r\n%99999999999999\r\n", agg(199_999_999_999_998)),
        // Nesting depth, attributes included.
        (
            small.clone(),
            b"*1\r\n*1\r\n*1\r\n*1\r\n",
            DecodeError::TooDeep { max: 3 },
        ),
        (
            small.clone(),
            b"*1\r\n~1\r\n%1\r\n|1\r\n",
            DecodeError::TooDeep { max: 3 },
        ),
        (
            small.clone(),
            b"*?\r\n>1\r\n*?\r\n*0\r\n",
            DecodeError::TooDeep { max: 3 },
        ),
        // Line length, with and without the CRLF in sight, for values and headers.
        (
            small.clone(),
            b"+0123456789abcdefghij",
            DecodeError::LineTooLong { max: 16 },
        ),
        (
            small.clone(),
            b"+0123456789abcdefg\r\n",
            DecodeError::LineTooLong { max: 16 },
        ),
        (
            small.clone(),
            b"*1\r\n:00000000000000001\r\n",
            DecodeError::LineTooLong { max: 16 },
        ),
        (
            small.clone(),
            b"$000000000000000000000001",
            DecodeError::LineTooLong { max: 16 },
        ),
        (
            small.clone(),
            b"$?\r\n;0000000000000000001\r\n",
            DecodeError::LineTooLong { max: 16 },
        ),
    ];
    // The defaults: a huge announcement is refused before any payload arrives.
    let defaults = resp3();
    let huge: [(&[u8], DecodeError); 5] = [
        (
            b"$536870912000\r\n",
            DecodeError::BulkTooLong {
                len: 536_870_912_000,
                max: 512 << 20,
            },
        ),
        (
            b"$536870913\r\n",
            DecodeError::BulkTooLong {
                len: 536_870_913,
                max: 512 << 20,
            },
        ),
        (
            b"*4294967296\r\n",
            DecodeError::AggregateTooLong {
                len: 4_294_967_296,
                max: DecoderConfig::DEFAULT_MAX_AGGREGATE_LEN,
            },
        ),
        (
            b"%2147483648\r\n",
            DecodeError::AggregateTooLong {
                len: 4_294_967_296,
                max: DecoderConfig::DEFAULT_MAX_AGGREGATE_LEN,
            },
        ),
        (
            b"$9999999999999999999\r\n",
            DecodeError::BulkTooLong {
                len: 9_999_999_999_999_999_999,
                max: 512 << 20,
            },
        ),
    ];
    for (input, err) in huge {
        cases.push((defaults.clone(), input, err));
    }
    let mut owned: Vec<(DecoderConfig, Vec<u8>, DecodeError)> =
        cases.into_iter().map(|(c, i, e)| (c, i.to_vec(), e)).collect();
    owned.push((
        defaults.clone(),
        b"*1\r\n".repeat(100_000),
        DecodeError::TooDeep { max: 32 },
    ));
    let mut long_line = b"+".to_vec();
    long_line.resize((64 << 10) + 3, b'x');
    owned.push((defaults, long_line, DecodeError::LineTooLong { max: 64 << 10 }));
    owned
}

#[test]
fn every_limit_has_its_own_error() {
    for (config, input, want) in limit_cases() {
        let (_, end) = decode_pieces(&config, [&input[..]]);
        let shown = String::from_utf8_lossy(&input[..input.len().min(40)]).into_owned();
        assert_eq!(end.err(), Some(want), "{shown:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn limit_errors_do_not_depend_on_cuts(case in any::<Index>(), cuts in cuts(32)) {
        let cases = limit_cases();
        let (config, input, want) = &cases[case.index(cases.len())];
        let (_, end) = decode_pieces(config, split(input, &cuts));
        prop_assert_eq!(end.err(), Some(want.clone()));
    }
}

#[test]
fn nesting_costs_no_call_depth() {
    // With no depth limit, 100,000 nested arrays are held on the decoder's own stack,
    // not the thread's, and dropping the half-built value does not recurse either.
    let config = DecoderConfig {
        max_depth: usize::MAX,
        ..resp3()
    };
    let input = b"*1\r\n".repeat(100_000);
    let (values, end) = decode_pieces(&config, input.chunks(4096));
    let (decoder, src) = end.expect("no limit hit");
    assert!(values.is_empty());
    assert!(src.is_empty());
    assert!(decoder.is_mid_value());
}

// ---------------------------------------------------------------------------------------
// Bounded memory
// ---------------------------------------------------------------------------------------

/// Counts the bytes allocated and freed by each thread, so a test can measure what the
/// decoder holds while other tests run on other threads.
mod alloc_counter {
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;

    pub struct Counting;

    thread_local! {
        static LIVE: Cell<isize> = const { Cell::new(0) };
        static PEAK: Cell<isize> = const { Cell::new(0) };
    }

    fn track(delta: isize) {
        let _ = LIVE.try_with(|live| {
            let now = live.get() + delta;
            live.set(now);
            let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
        });
    }

    // SAFETY: every call forwards to `System` with the caller's arguments unchanged; the
    // bookkeeping touches only const-initialised thread locals, which never allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = System.alloc(layout);
            if !p.is_null() {
                track(layout.size() as isize);
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let p = System.alloc_zeroed(layout);
            if !p.is_null() {
                track(layout.size() as isize);
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            System.dealloc(ptr, layout);
            track(-(layout.size() as isize));
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = System.realloc(ptr, layout, new_size);
            if !p.is_null() {
                track(new_size as isize - layout.size() as isize);
            }
            p
        }
    }

    /// Bytes this thread holds now.
    pub fn live() -> isize {
        LIVE.with(Cell::get)
    }

    /// Starts a new peak measurement from what this thread holds now.
    pub fn reset_peak() {
        PEAK.with(|p| p.set(live()));
    }

    /// The most this thread held since [`reset_peak`].
    pub fn peak() -> isize {
        PEAK.with(Cell::get)
    }
}

#[global_allocator]
static ALLOCATOR: alloc_counter::Counting = alloc_counter::Counting;

#[test]
fn a_refused_announcement_reserves_nothing() {
    let mut decoder = Decoder::default();
    let mut src = SegmentedBuffer::new();
    src.push_slice(b"$536870912000\r\n");
    alloc_counter::reset_peak();
    let before = alloc_counter::live();
    let result = decoder.decode(&mut src);
    let peak = alloc_counter::peak() - before;
    assert_eq!(
        result,
        Err(DecodeError::BulkTooLong {
            len: 536_870_912_000,
            max: 512 << 20
        })
    );
    assert!(peak < 4096, "refusing a 500 GiB string allocated {peak} bytes");
}

#[test]
fn memory_follows_received_bytes_not_announced_lengths() {
    const PIECE: usize = 4096;
    // A bulk string at the limit (512 MiB) announced, 1 MiB of it received; an array of
    // 16 Mi elements (the default limit) announced, a few received; a streamed string of 1 MiB in chunks.
    let mut big_bulk = b"$536870912\r\n".to_vec();
    big_bulk.resize(big_bulk.len() + (1 << 20), b'x');
    let mut big_array = format!("*{}\r\n", DecoderConfig::DEFAULT_MAX_AGGREGATE_LEN).into_bytes();
    for _ in 0..1000 {
        big_array.extend_from_slice(b":1\r\n");
    }
    let mut streamed = b"$?\r\n".to_vec();
    for _ in 0..256 {
        streamed.extend_from_slice(b";4096\r\n");
        streamed.resize(streamed.len() + 4096, b'y');
        streamed.extend_from_slice(b"\r\n");
    }
    let elements = 1024 * std::mem::size_of::<Value>() as isize;
    for (input, slack) in [
        (big_bulk, 64 << 10),
        (big_array, elements + (64 << 10)),
        (streamed, 64 << 10),
    ] {
        let start = alloc_counter::live();
        alloc_counter::reset_peak();
        let mut decoder = Decoder::default();
        let mut src = SegmentedBuffer::new();
        for (i, piece) in input.chunks(PIECE).enumerate() {
            src.push_slice(piece);
            assert_eq!(decoder.decode(&mut src), Ok(None));
            let received = ((i + 1) * PIECE).min(input.len()) as isize;
            // Twice what was received: growing buffers double their capacity.
            let bound = 2 * received + slack;
            let peak = alloc_counter::peak() - start;
            assert!(
                peak <= bound,
                "holding {peak} bytes after receiving {received} (bound {bound})"
            );
        }
        assert!(decoder.is_mid_value());
    }
}

#[test]
fn an_endless_line_is_refused_at_the_line_limit() {
    let mut decoder = Decoder::default();
    let mut src = SegmentedBuffer::new();
    let piece = vec![b'a'; 4 << 10];
    src.push_slice(b"+");
    let mut received = 1;
    let err = loop {
        src.push_slice(&piece);
        received += piece.len();
        match decoder.decode(&mut src) {
            Ok(None) => assert!(received <= (64 << 10) + 2, "still waiting after {received} bytes"),
            Ok(Some(v)) => panic!("{v:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, DecodeError::LineTooLong { max: 64 << 10 });
}

// ---------------------------------------------------------------------------------------
// Garbage
// ---------------------------------------------------------------------------------------

/// RESP's own tokens, so byte soup gets past the first byte.
const TOKENS: &[&[u8]] = &[
    b"\r\n", b"\r", b"\n", b"?", b"-1", b"txt:", b"inf", b"t", b"x", b"0", b"1", b"2", b"5", b"+", b"-", b":", b"$",
    b"*", b"_", b",", b"#", b"!", b"=", b"(", b"%", b"~", b"|", b">", b";", b".",
];

fn resp_ish() -> impl Strategy<Value = Vec<u8>> {
    vec(proptest::sample::select(TOKENS), 0..48).prop_map(|tokens| tokens.concat())
}

fn garbage() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![vec(any::<u8>(), 0..256), resp_ish()]
}

/// How a whole stream ended, comparable across cuts.
fn outcome(config: &DecoderConfig, pieces: Vec<&[u8]>) -> (Vec<Value>, Option<DecodeError>) {
    let (values, end) = decode_pieces(config, pieces);
    (values, end.err())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn garbage_is_an_error_not_a_panic(data in garbage(), cuts in cuts(16), resp3_mode in any::<bool>()) {
        let config = if resp3_mode { resp3() } else { resp2() };
        let (values, err) = outcome(&config, vec![&data[..]]);
        let (split_values, split_err) = outcome(&config, split(&data, &cuts));
        prop_assert_eq!(&split_err, &err);
        prop_assert_eq!(split_values.len(), values.len());
        for (a, b) in split_values.iter().zip(&values) {
            prop_assert!(identical(a, b));
        }
        // A first byte that is no type is an error once its line has ended.
        if let Some(&ty) = data.first() {
            let is_type = b"+-:$*_,#!=(%~|>;.".contains(&ty);
            if !is_type && data[1..].contains(&b'\n') {
                prop_assert!(err.is_some(), "0x{:02x} started a stream", ty);
            }
        }
    }

    #[test]
    fn garbage_through_the_fuzz_entry_points(data in garbage()) {
        monocoque_proto::fuzzing::resp_decode_resp2(&data);
        monocoque_proto::fuzzing::resp_decode_resp3(&data);
    }
}
