//! The socket fuzz target's seeds (`monocoque_proto::fuzzing::zmtp_socket_seeds`) are
//! kept in the committed corpus in their plain form (`fuzz/corpus/zmtp_socket/seed-<hash>`):
//! for every socket type, peers that attach, shake hands, send decoded and raw
//! messages, detach, come back and leave, around the application's sends, receives and
//! subscriptions.
//!
//! To (re)write the seeds, plain and with every HWM option byte, for growing a corpus:
//!
//! ```sh
//! ZMTP_SOCKET_FUZZ_SEEDS=/tmp/seeds cargo test -p monocoque-proto --test zmtp_socket_seeds
//! cp /tmp/seeds/plain/zmtp_socket/* fuzz/corpus/zmtp_socket/
//! cd fuzz && cargo +nightly fuzz run zmtp_socket /tmp/grown /tmp/seeds/zmtp_socket -- -max_total_time=60
//! ```

#[path = "common/seeds.rs"]
mod seeds;

use monocoque_proto::fuzzing::zmtp_socket_seeds;
use seeds::{assert_committed, write_when_asked, Seeds};

fn seeds() -> Vec<Seeds> {
    vec![("zmtp_socket", zmtp_socket_seeds())]
}

#[test]
fn every_plain_seed_is_in_the_committed_corpus() {
    assert_committed(seeds(), "ZMTP_SOCKET_FUZZ_SEEDS");
}

#[test]
fn write_seeds_when_asked() {
    write_when_asked(seeds(), "ZMTP_SOCKET_FUZZ_SEEDS");
}
