//! The WebSocket fuzz targets' seeds (`monocoque_proto::fuzzing::ws_*_seeds`) are kept
//! in the committed corpus in their plain form (`fuzz/corpus/<target>/seed-<hash>`), so
//! the corpus always holds a browser's and paho's opening requests, every frame kind and
//! each broken frame, whatever minimisation kept.
//!
//! To (re)write the seeds, plain and in every option/split mode, for growing a corpus:
//!
//! ```sh
//! WS_FUZZ_SEEDS=/tmp/seeds cargo test -p monocoque-proto --test ws_seeds
//! cp /tmp/seeds/plain/ws_frames/* fuzz/corpus/ws_frames/
//! cd fuzz && cargo +nightly fuzz run ws_frames /tmp/grown /tmp/seeds/ws_frames -- -max_total_time=60
//! ```

#[path = "common/seeds.rs"]
mod seeds;

use monocoque_proto::fuzzing::{ws_frames_seeds, ws_handshake_seeds};
use seeds::{assert_committed, write_when_asked, Seeds};

fn seeds() -> Vec<Seeds> {
    vec![("ws_handshake", ws_handshake_seeds()), ("ws_frames", ws_frames_seeds())]
}

#[test]
fn every_plain_seed_is_in_the_committed_corpus() {
    assert_committed(seeds(), "WS_FUZZ_SEEDS");
}

#[test]
fn write_seeds_when_asked() {
    write_when_asked(seeds(), "WS_FUZZ_SEEDS");
}
