//! The MQTT fuzz targets' seeds (`monocoque_proto::fuzzing::mqtt_*_seeds`) are kept in
//! the committed corpus in their plain form (`fuzz/corpus/<target>/seed-<hash>`), so the
//! corpus always holds a whole session of every version with every packet type and
//! most properties, and the hand-written malformed packets, whatever minimisation kept.
//!
//! To (re)write the seeds, plain and in every option/split mode, for growing a corpus:
//!
//! ```sh
//! MQTT_FUZZ_SEEDS=/tmp/seeds cargo test -p monocoque-proto --test mqtt_seeds
//! cd fuzz && cargo +nightly fuzz run mqtt_server_decode /tmp/grown /tmp/seeds/mqtt_server_decode -- -max_total_time=60
//! ```

#[path = "common/seeds.rs"]
mod seeds;

use monocoque_proto::fuzzing::{mqtt_broker_seeds, mqtt_client_seeds, mqtt_client_session_seeds, mqtt_server_seeds};
use seeds::{assert_committed, write_when_asked, Seeds};

fn seeds() -> Vec<Seeds> {
    vec![
        ("mqtt_client_decode", mqtt_client_seeds()),
        ("mqtt_server_decode", mqtt_server_seeds()),
        ("mqtt_broker", mqtt_broker_seeds()),
        ("mqtt_client_session", mqtt_client_session_seeds()),
    ]
}

#[test]
fn every_plain_seed_is_in_the_committed_corpus() {
    assert_committed(seeds(), "MQTT_FUZZ_SEEDS");
}

#[test]
fn write_seeds_when_asked() {
    write_when_asked(seeds(), "MQTT_FUZZ_SEEDS");
}
