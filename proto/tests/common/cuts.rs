//! Cutting a byte stream at random points, shared by the property tests that check a
//! decoder's output does not depend on where its input was split (`resp_roundtrip.rs`,
//! `resp_tape.rs`, `nats_roundtrip.rs`).
//!
//! Included by each test file with `#[path = "common/cuts.rs"] mod cuts;`.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

/// Cut points: up to `n` random positions (anywhere, so runs of 1-byte pieces and empty
/// pieces happen too).
pub fn cuts(n: usize) -> impl Strategy<Value = Vec<Index>> {
    vec(any::<Index>(), 0..n)
}

/// `data` cut at the given positions.
pub fn split<'a>(data: &'a [u8], cuts: &[Index]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts.iter().map(|i| i.index(data.len() + 1)).collect();
    at.sort_unstable();
    let mut pieces = Vec::with_capacity(at.len() + 1);
    let mut last = 0;
    for c in at.into_iter().chain([data.len()]) {
        pieces.push(&data[last..c]);
        last = c;
    }
    pieces
}
