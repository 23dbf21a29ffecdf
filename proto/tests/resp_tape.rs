//! Property tests for [`TapeDecoder`]: every generated value survives encode → cut at
//! every byte boundary and at random points → tape-decode → `to_value()`, the tape's
//! readers agree with the values, and on the committed vectors and on arbitrary bytes
//! the tape decoder yields exactly what [`Decoder`](monocoque_proto::resp::Decoder)
//! yields: the same values, then the same error or the same "need more".

use std::path::{Path, PathBuf};

use bytes::Bytes;
use monocoque_proto::fuzzing::{check_ref, identical, small_limits, tape_pieces, value_pieces, TapeEnd};
use monocoque_proto::resp::{DecoderConfig, Encoder, Protocol, Tape, TapeDecoder, Value};
use monocoque_proto::SegmentedBuffer;
use proptest::collection::vec;
use proptest::prelude::*;

#[path = "common/cuts.rs"]
mod cuts;
#[path = "common/resp_strategies.rs"]
mod resp_strategies;

use cuts::{cuts, split};
use resp_strategies::{encode_all, resp2, resp2_value, resp3, streamed_encoder, value, value_of};

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// Tape-decodes `pieces` (one tape for all, then once more clearing the tape after each
/// call) and checks the result is exactly `expected`, with nothing pending.
fn assert_tape_decodes_to(config: &DecoderConfig, pieces: Vec<&[u8]>, expected: &[Value]) -> Result<(), TestCaseError> {
    for clear_each in [false, true] {
        let (got, end) = tape_pieces(config, pieces.clone(), clear_each);
        prop_assert_eq!(&end, &TapeEnd::NeedMore { mid_value: false }, "after {:?}", got);
        prop_assert_eq!(got.len(), expected.len(), "{:?}", got);
        for (g, e) in got.iter().zip(expected) {
            prop_assert!(identical(g, e), "tape gave\n{:?}\nexpected\n{:?}", g, e);
        }
    }
    Ok(())
}

/// The tape decoder on `pieces` against the plain decoder on the whole stream.
fn assert_same_as_decoder(config: &DecoderConfig, whole: &[u8], pieces: Vec<&[u8]>) -> Result<(), TestCaseError> {
    let (want, want_end) = value_pieces(config, vec![whole]);
    let (got, got_end) = tape_pieces(config, pieces, false);
    prop_assert_eq!(got_end, want_end, "values {:?}", got);
    prop_assert_eq!(got.len(), want.len(), "{:?} vs {:?}", got, want);
    for (g, w) in got.iter().zip(&want) {
        prop_assert!(identical(g, w), "tape gave\n{:?}\ndecoder gave\n{:?}", g, w);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn resp3_survives_every_two_way_split(v in value_of(false)) {
        let wire = encode_all(&Encoder::new(Protocol::Resp3), std::slice::from_ref(&v));
        for cut in 0..=wire.len() {
            assert_tape_decodes_to(&resp3(), vec![&wire[..cut], &wire[cut..]], std::slice::from_ref(&v))?;
        }
    }

    #[test]
    fn resp3_pipelines_survive_random_cuts(values in vec(value(), 1..8), cuts in cuts(12)) {
        let wire = encode_all(&Encoder::new(Protocol::Resp3), &values);
        assert_tape_decodes_to(&resp3(), vec![&wire[..]], &values)?;
        assert_tape_decodes_to(&resp3(), split(&wire, &cuts), &values)?;
    }

    #[test]
    fn resp3_survives_one_byte_pieces(values in vec(value_of(false), 1..4)) {
        let wire = encode_all(&Encoder::new(Protocol::Resp3), &values);
        assert_tape_decodes_to(&resp3(), wire.chunks(1).collect(), &values)?;
    }

    #[test]
    fn streamed_forms_survive_random_cuts(
        values in vec(value_of(false), 1..4),
        encoder in streamed_encoder(),
        cuts in cuts(8),
    ) {
        let wire = encode_all(&encoder, &values);
        assert_tape_decodes_to(&resp3(), vec![&wire[..]], &values)?;
        assert_tape_decodes_to(&resp3(), split(&wire, &cuts), &values)?;
    }

    #[test]
    fn resp2_survives_every_two_way_split_and_random_cuts(values in vec(resp2_value(), 1..4), cuts in cuts(8)) {
        let wire = encode_all(&Encoder::new(Protocol::Resp2), &values);
        for cut in 0..=wire.len() {
            assert_tape_decodes_to(&resp2(), vec![&wire[..cut], &wire[cut..]], &values)?;
        }
        assert_tape_decodes_to(&resp2(), split(&wire, &cuts), &values)?;
    }

    #[test]
    fn arbitrary_bytes_match_the_decoder(
        data in vec(prop_oneof![4 => any::<u8>(), 3 => prop::sample::select(b"+-:$*_,#!=(%~|>;.?\r\n0123456789-".to_vec())], 0..200),
        cuts in cuts(8),
        resp2_mode in any::<bool>(),
        small in any::<bool>(),
    ) {
        let protocol = if resp2_mode { Protocol::Resp2 } else { Protocol::Resp3 };
        let config = if small { small_limits(protocol) } else { DecoderConfig::new(protocol) };
        assert_same_as_decoder(&config, &data, split(&data, &cuts))?;
    }

    #[test]
    fn valid_streams_with_small_limits_match_the_decoder(values in vec(value_of(false), 1..4), cuts in cuts(8)) {
        // Some values break the small limits: the tape must reject them exactly as the
        // decoder does, after the same values.
        let wire = encode_all(&Encoder::new(Protocol::Resp3), &values);
        assert_same_as_decoder(&small_limits(Protocol::Resp3), &wire, split(&wire, &cuts))?;
    }
}

// ---------------------------------------------------------------------------------------
// Committed vectors
// ---------------------------------------------------------------------------------------

fn vectors() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/vectors")
}

fn files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    out.sort();
    out
}

#[test]
fn committed_vectors_decode_as_the_decoder_does_at_every_split() {
    let mut checked = 0;
    let sets = [
        ("spec", "resp", Protocol::Resp3),
        ("spec", "resp", Protocol::Resp2),
        ("redis-server/resp2", "bin", Protocol::Resp2),
        ("redis-server/resp3", "bin", Protocol::Resp3),
    ];
    for (dir, ext, protocol) in sets {
        let paths = files(&vectors().join(dir), ext);
        assert!(paths.len() >= 13, "vectors missing in {dir}: {paths:?}");
        for path in paths {
            let bytes = std::fs::read(&path).expect("read vector");
            let config = DecoderConfig::new(protocol);
            let (want, want_end) = value_pieces(&config, vec![&bytes]);
            if protocol == Protocol::Resp3 || dir != "spec" {
                assert_eq!(want_end, TapeEnd::NeedMore { mid_value: false }, "{}", path.display());
                assert!(!want.is_empty(), "{}", path.display());
            }
            for cut in 0..=bytes.len() {
                for clear_each in [false, true] {
                    let (got, got_end) = tape_pieces(&config, vec![&bytes[..cut], &bytes[cut..]], clear_each);
                    assert_eq!(got_end, want_end, "{} cut at {cut}", path.display());
                    assert_eq!(got, want, "{} cut at {cut}", path.display());
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 80, "only {checked} vectors");
}

#[test]
fn a_pipelined_batch_reads_without_materializing() {
    // What a pipelined client does: one read, one decode call, walk the tape.
    let values: Vec<Value> = (0..1000)
        .map(|i| match i % 4 {
            0 => Value::SimpleString(Bytes::from_static(b"OK")),
            1 => Value::Integer(i),
            2 => Value::BulkString(Bytes::from(format!("value:{i:010}"))),
            _ => Value::Array(vec![Value::Integer(i), Value::from("x")]),
        })
        .collect();
    let wire = Bytes::from(encode_all(&Encoder::new(Protocol::Resp2), &values));
    let mut src = SegmentedBuffer::from(wire.clone());
    let mut decoder = TapeDecoder::new(resp2());
    let mut tape = Tape::new();
    assert_eq!(decoder.decode(&mut src, &mut tape), Ok(1000));
    assert_eq!(tape.segment_count(), 1);
    assert_eq!(tape.token_count(), 750 + 250 * 3);
    let inside = |b: &[u8]| wire.as_ptr_range().contains(&b.as_ptr());
    for (r, v) in tape.iter().zip(&values) {
        check_ref(r, v);
        if let Some(b) = r.as_bytes().filter(|b| !b.is_empty()) {
            assert!(inside(b), "a string was copied");
        }
    }
}
