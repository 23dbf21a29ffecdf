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

use std::fs;
use std::path::{Path, PathBuf};

use monocoque_proto::fuzzing::{mqtt_client_seeds, mqtt_server_seeds, plain, TARGETS};

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

/// FNV-1a, 64 bits: a stable name for a seed's content.
fn fnv(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

fn seed_name(input: &[u8]) -> String {
    format!("seed-{:016x}", fnv(input))
}

fn seeds() -> [(&'static str, Vec<Vec<u8>>); 2] {
    [
        ("mqtt_client_decode", mqtt_client_seeds()),
        ("mqtt_server_decode", mqtt_server_seeds()),
    ]
}

#[test]
fn every_plain_seed_is_in_the_committed_corpus() {
    for (target, streams) in seeds() {
        assert!(
            TARGETS.iter().any(|(name, _)| *name == target),
            "{target} is no fuzz target"
        );
        let dir = corpus_dir(target);
        for stream in streams {
            let input = plain(&stream);
            let path = dir.join(seed_name(&input));
            let committed = fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{} is missing ({e}): write the seeds with MQTT_FUZZ_SEEDS (see this file's docs)",
                    path.display()
                )
            });
            assert_eq!(committed, input, "{} differs from its seed", path.display());
        }
    }
}

#[test]
fn write_seeds_when_asked() {
    let Some(out) = std::env::var_os("MQTT_FUZZ_SEEDS") else {
        return;
    };
    for (target, streams) in seeds() {
        let plain_dir = Path::new(&out).join("plain").join(target);
        let all_dir = Path::new(&out).join(target);
        fs::create_dir_all(&plain_dir).expect("create the plain seed directory");
        fs::create_dir_all(&all_dir).expect("create the seed directory");
        for stream in streams {
            let input = plain(&stream);
            fs::write(plain_dir.join(seed_name(&input)), &input).expect("write a seed");
            // Every option and a few split seeds: one byte per piece, small and large pieces.
            for options in 0u8..8 {
                for split in [0u8, 1, 9, 77, 255] {
                    let input = [&[options, split][..], &stream].concat();
                    fs::write(all_dir.join(seed_name(&input)), &input).expect("write a seed");
                }
            }
        }
    }
}
