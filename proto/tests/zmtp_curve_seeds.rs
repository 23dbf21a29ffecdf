//! The CURVE fuzz target's seeds (`monocoque_proto::fuzzing::zmtp_curve_seeds`) are kept
//! in the committed corpus in their plain form (`fuzz/corpus/zmtp_curve/seed-<hash>`):
//! a valid `HELLO` made with the harness's fixed keys, broken handshake commands, and
//! sealed `MESSAGE` frames in order, replayed, tampered and cut short.
//!
//! To (re)write the seeds, plain and in every option/split mode, for growing a corpus:
//!
//! ```sh
//! ZMTP_CURVE_FUZZ_SEEDS=/tmp/seeds cargo test -p monocoque-proto --test zmtp_curve_seeds
//! cp /tmp/seeds/plain/zmtp_curve/* fuzz/corpus/zmtp_curve/
//! cd fuzz && cargo +nightly fuzz run zmtp_curve /tmp/grown /tmp/seeds/zmtp_curve -- -max_total_time=60
//! ```

#[path = "common/seeds.rs"]
mod seeds;

use monocoque_proto::fuzzing::zmtp_curve_seeds;
use seeds::{assert_committed, write_when_asked, Seeds};

fn seeds() -> Vec<Seeds> {
    vec![("zmtp_curve", zmtp_curve_seeds())]
}

#[test]
fn every_plain_seed_is_in_the_committed_corpus() {
    assert_committed(seeds(), "ZMTP_CURVE_FUZZ_SEEDS");
}

#[test]
fn write_seeds_when_asked() {
    write_when_asked(seeds(), "ZMTP_CURVE_FUZZ_SEEDS");
}
