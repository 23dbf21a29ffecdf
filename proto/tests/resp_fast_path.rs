//! The RESP decoder's fast path (a value whole in the first segment, aggregates of
//! scalars included) against its general path, on random input.
//!
//! Fed one byte per segment, the decoder never takes the fast path (no line is whole in
//! a one-byte segment), so decoding a stream whole and decoding it byte by byte compare
//! the two paths: the same values, bit for bit, and the same end (the same error, or
//! the same "need more").

use monocoque_proto::fuzzing::{identical, small_limits, value_pieces, TapeEnd};
use monocoque_proto::resp::{DecoderConfig, Encoder, Protocol, Value};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

#[path = "common/resp_strategies.rs"]
#[allow(dead_code)] // shared by the RESP tests: this one uses a part of it
mod resp_strategies;

use resp_strategies::{encode_all, resp2_value, value};

/// Decodes `input` whole and byte by byte; fails unless both give the same values and
/// end the same way. Returns how decoding ended.
fn same_both_ways(config: &DecoderConfig, input: &[u8]) -> Result<TapeEnd, TestCaseError> {
    let (fast, fast_end) = value_pieces(config, vec![input]);
    let (general, general_end) = value_pieces(config, input.chunks(1).collect());
    prop_assert_eq!(&fast_end, &general_end, "values {:?}", fast);
    prop_assert_eq!(fast.len(), general.len(), "{:?}\nvs\n{:?}", fast, general);
    for (f, g) in fast.iter().zip(&general) {
        prop_assert!(identical(f, g), "fast path\n{:?}\ngeneral path\n{:?}", f, g);
    }
    Ok(fast_end)
}

/// Overwrites the bytes at `noise`'s positions, so that malformed input, limits and
/// truncated values reach both paths.
fn mutate(mut wire: Vec<u8>, noise: &[(Index, u8)], truncate: Option<Index>) -> Vec<u8> {
    if !wire.is_empty() {
        for (at, byte) in noise {
            let i = at.index(wire.len());
            wire[i] = *byte;
        }
        if let Some(cut) = truncate {
            wire.truncate(cut.index(wire.len() + 1));
        }
    }
    wire
}

/// A byte that is often meaningful to RESP: a type byte, a digit, a sign, CR or LF.
fn resp_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => proptest::sample::select(b"+-:$*_,#!=(%~>|.;?\r\n0123456789".to_vec()),
        1 => any::<u8>(),
    ]
}

/// A value wrapped in `levels` one-element arrays: nesting around the fast path's own
/// depth bound and the configured `max_depth`.
fn nest(value: Value, levels: usize) -> Value {
    (0..levels).fold(value, |v, _| Value::Array(vec![v]))
}

fn config(protocol: Protocol, small: bool, max_depth: usize) -> DecoderConfig {
    let base = if small {
        small_limits(protocol)
    } else {
        DecoderConfig::new(protocol)
    };
    DecoderConfig { max_depth, ..base }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn resp3_fast_path_decodes_as_the_general_path(
        values in vec(value(), 1..5),
        levels in 0usize..12,
        small in any::<bool>(),
        max_depth in 1usize..14,
        noise in vec((any::<Index>(), resp_byte()), 0..3),
        truncate in proptest::option::of(any::<Index>()),
    ) {
        let values: Vec<Value> = values.into_iter().map(|v| nest(v, levels)).collect();
        let wire = encode_all(&Encoder::new(Protocol::Resp3), &values);
        let input = mutate(wire, &noise, truncate);
        same_both_ways(&config(Protocol::Resp3, small, max_depth), &input)?;
    }

    #[test]
    fn resp2_fast_path_decodes_as_the_general_path(
        values in vec(resp2_value(), 1..5),
        levels in 0usize..12,
        small in any::<bool>(),
        max_depth in 1usize..14,
        noise in vec((any::<Index>(), resp_byte()), 0..3),
        truncate in proptest::option::of(any::<Index>()),
    ) {
        let values: Vec<Value> = values.into_iter().map(|v| nest(v, levels)).collect();
        let wire = encode_all(&Encoder::new(Protocol::Resp2), &values);
        let input = mutate(wire, &noise, truncate);
        same_both_ways(&config(Protocol::Resp2, small, max_depth), &input)?;
    }

    /// Unmutated values decode to themselves on the fast path too (the comparison above
    /// would also pass if both paths refused everything).
    #[test]
    fn resp3_fast_path_round_trips(values in vec(value(), 1..5), levels in 0usize..12) {
        let values: Vec<Value> = values.into_iter().map(|v| nest(v, levels)).collect();
        let wire = encode_all(&Encoder::new(Protocol::Resp3), &values);
        let end = same_both_ways(&DecoderConfig::new(Protocol::Resp3), &wire)?;
        prop_assert_eq!(end, TapeEnd::NeedMore { mid_value: false });
        let (got, _) = value_pieces(&DecoderConfig::new(Protocol::Resp3), vec![&wire[..]]);
        prop_assert_eq!(got.len(), values.len());
        for (g, v) in got.iter().zip(&values) {
            prop_assert!(identical(g, v), "decoded\n{:?}\nsent\n{:?}", g, v);
        }
    }

    /// Doubles: the short decimal form the fast path computes itself gives exactly the
    /// bits `str::parse::<f64>` gives, and every other form is still parsed by it.
    #[test]
    fn doubles_parse_as_the_standard_parser_does(
        text in prop_oneof![
            4 => "-?[0-9]{1,17}(\\.[0-9]{1,17})?",
            1 => "[-+]?[0-9.]{0,18}",
            1 => "[-+]?[0-9]{1,5}(\\.[0-9]{0,5})?(e[-+]?[0-9]{1,3})?",
            1 => "[-+]?(inf|nan|infinity)",
        ]
    ) {
        let input = format!(",{text}\r\n");
        let end = same_both_ways(&DecoderConfig::new(Protocol::Resp3), input.as_bytes())?;
        let (got, _) = value_pieces(&DecoderConfig::new(Protocol::Resp3), vec![input.as_bytes()]);
        match text.parse::<f64>() {
            Ok(want) => {
                prop_assert_eq!(got.len(), 1, "{} ended {:?}", text, end);
                let Value::Double(d) = got[0] else {
                    return Err(TestCaseError::fail(format!("{text} decoded to {:?}", got[0])));
                };
                prop_assert_eq!(d.to_bits(), want.to_bits(), "{}", text);
            }
            Err(_) => prop_assert!(got.is_empty() && end != TapeEnd::NeedMore { mid_value: false }, "{text}"),
        }
    }
}
