//! The RESP decoder targets: split invariance and a differential round trip.

use std::num::NonZeroUsize;

use super::split::pieces;
use super::tape::{value_pieces, TapeEnd};
use crate::chassis::{IoArena, SegmentedBuffer};
use crate::resp::{DecodeError, Decoder, DecoderConfig, Encoder, Protocol, Value};

/// Fuzzes the decoder in RESP2 mode. See [`resp_decode_resp3`] for the input layout and
/// what is checked.
pub fn resp_decode_resp2(data: &[u8]) {
    decode_target(Protocol::Resp2, data);
}

/// Fuzzes the decoder in RESP3 mode.
///
/// Input layout: byte 0 holds options, byte 1 seeds the segment boundaries, the rest is
/// the RESP stream. Options: bits 0–1 pick the encoder used for the round trip (plain,
/// streamed strings, streamed aggregates, both), bits 3–5 the streamed chunk size
/// (1–8), bit 2 small decoder limits (so every limit error is reachable).
///
/// Checks, panicking on the first that fails:
/// 1. decoding never panics, and stops at the first `Err`;
/// 2. the stream cut into pieces (by the seed) decodes to exactly what the stream in one
///    piece decodes to: the same values and the same error, or the same "need more";
/// 3. a stream whose first byte is no RESP type produces no value and is rejected at
///    once with `UnknownType`;
/// 4. every decoded value encodes (in the same dialect), and the encoding, itself cut
///    into pieces, decodes back to an identical value and nothing else.
pub fn resp_decode_resp3(data: &[u8]) {
    decode_target(Protocol::Resp3, data);
}

fn decode_target(protocol: Protocol, data: &[u8]) {
    let options = data.first().copied().unwrap_or(0);
    let seed = data.get(1).copied().unwrap_or(0);
    let body = data.get(2..).unwrap_or_default();
    let config = if options & 0b100 != 0 {
        small_limits(protocol)
    } else {
        DecoderConfig::new(protocol)
    };

    let (values, end) = value_pieces(&config, vec![body]);
    let (split_values, split_end) = value_pieces(&config, pieces(body, seed));
    assert_eq!(split_end, end, "segment boundaries changed how decoding ended");
    assert_eq!(
        split_values.len(),
        values.len(),
        "segment boundaries changed the value count"
    );
    for (a, b) in split_values.iter().zip(&values) {
        assert!(identical(a, b), "segment boundaries changed a value:\n{a:?}\n{b:?}");
    }

    if let Some(&ty) = body.first() {
        if !is_type_byte(ty) {
            // The decoder rejects an unknown type byte as soon as it sees it.
            assert!(values.is_empty(), "a stream starting with 0x{ty:02x} produced a value");
            assert_eq!(
                end,
                TapeEnd::Error(DecodeError::UnknownType(ty)),
                "0x{ty:02x} started a stream"
            );
        }
    }

    let encoder = Encoder {
        protocol,
        stream_strings: (options & 1 != 0).then(|| NonZeroUsize::MIN.saturating_add(usize::from(options >> 3 & 7))),
        stream_aggregates: options & 2 != 0,
    };
    // Round trips decode with the default limits: a value within small limits is within
    // them too, and several attributes before one value merge into one longer attribute.
    let round_trip_config = DecoderConfig::new(protocol);
    for value in &values {
        let mut arena = IoArena::new();
        encoder
            .encode(value, &mut arena)
            .unwrap_or_else(|e| panic!("decoded value does not encode ({e}): {value:?}"));
        let wire = arena.to_vec();
        let (again, end) = value_pieces(&round_trip_config, pieces(&wire, seed));
        assert_eq!(
            end,
            TapeEnd::NeedMore { mid_value: false },
            "re-encoded {value:?} as {wire:?}"
        );
        assert_eq!(again.len(), 1, "re-encoded {value:?} as {wire:?}, got {again:?}");
        assert!(
            identical(&again[0], value),
            "round trip changed the value:\n{value:?}\n{:?}",
            again[0]
        );
    }
}

/// Limits small enough that short inputs reach every limit error: bulk strings of 64
/// bytes, aggregates of 8 elements, 4 levels of nesting, lines of 32 bytes.
pub fn small_limits(protocol: Protocol) -> DecoderConfig {
    DecoderConfig {
        protocol,
        max_bulk_len: 64,
        max_aggregate_len: 8,
        max_depth: 4,
        max_line_len: 32,
    }
}

/// Pushes `pieces` into `src` one by one and, after each, decodes everything available
/// into `values`; stops at the first error. The caller keeps `decoder` and `src` to look
/// at what is left (a value in progress, undecoded bytes).
pub fn decode_each<'a>(
    decoder: &mut Decoder,
    src: &mut SegmentedBuffer,
    pieces: impl IntoIterator<Item = &'a [u8]>,
    values: &mut Vec<Value>,
) -> Result<(), DecodeError> {
    for piece in pieces {
        src.push_slice(piece);
        while let Some(v) = decoder.decode(src)? {
            values.push(v);
        }
    }
    Ok(())
}

fn is_type_byte(b: u8) -> bool {
    b"+-:$*_,#!=(%~|>;.".contains(&b)
}

/// Structural equality that is stricter than `==` on doubles: `0.0` and `-0.0` differ,
/// any two NaNs are the same.
pub fn identical(a: &Value, b: &Value) -> bool {
    use Value::*;
    let all = |x: &[Value], y: &[Value]| x.len() == y.len() && x.iter().zip(y).all(|(x, y)| identical(x, y));
    let pairs = |x: &[(Value, Value)], y: &[(Value, Value)]| {
        x.len() == y.len()
            && x.iter()
                .zip(y)
                .all(|((k, v), (l, w))| identical(k, l) && identical(v, w))
    };
    match (a, b) {
        (Double(x), Double(y)) => x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
        (Array(x), Array(y)) | (Set(x), Set(y)) | (Push(x), Push(y)) => all(x, y),
        (Map(x), Map(y)) => pairs(x, y),
        (
            Attributed {
                attributes: x,
                value: v,
            },
            Attributed {
                attributes: y,
                value: w,
            },
        ) => pairs(x, y) && identical(v, w),
        _ => a == b,
    }
}
