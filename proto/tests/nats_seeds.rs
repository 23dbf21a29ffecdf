//! The NATS fuzz targets' seeds (`monocoque_proto::fuzzing::nats_*_seeds`) are kept in
//! the committed corpus in their plain form (`fuzz/corpus/<target>/seed-<hash>`), so the
//! corpus always holds a real `INFO`, a real `CONNECT`, every op and every header status,
//! whatever minimisation kept.
//!
//! To (re)write the seeds, plain and in every option/split mode, for growing a corpus:
//!
//! ```sh
//! NATS_FUZZ_SEEDS=/tmp/seeds cargo test -p monocoque-proto --test nats_seeds
//! cd fuzz && cargo +nightly fuzz run nats_client_decode /tmp/grown /tmp/seeds/nats_client_decode -- -max_total_time=60
//! ```

#[path = "common/seeds.rs"]
mod seeds;

use monocoque_proto::fuzzing::{nats_client_seeds, nats_server_seeds};
use seeds::{assert_committed, write_when_asked, Seeds};

fn seeds() -> Vec<Seeds> {
    vec![
        ("nats_client_decode", nats_client_seeds()),
        ("nats_server_decode", nats_server_seeds()),
    ]
}

#[test]
fn every_plain_seed_is_in_the_committed_corpus() {
    assert_committed(seeds(), "NATS_FUZZ_SEEDS");
}

#[test]
fn write_seeds_when_asked() {
    write_when_asked(seeds(), "NATS_FUZZ_SEEDS");
}
