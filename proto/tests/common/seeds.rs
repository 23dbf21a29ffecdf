//! The seed check shared by the `*_seeds` tests: every plain seed of a fuzz target is in
//! the committed corpus under its content's name, and the seeds are written on request.
//! Included by each test file with `#[path = "common/seeds.rs"] mod seeds;`.

use std::fs;
use std::path::{Path, PathBuf};

use monocoque_proto::fuzzing::{plain, TARGETS};

/// A fuzz target's name and the streams its seeds are made of.
pub type Seeds = (&'static str, Vec<Vec<u8>>);

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

/// Fails unless every plain seed of `seeds` is committed as it is (`env` names the
/// variable that writes them, for the message).
pub fn assert_committed(seeds: Vec<Seeds>, env: &str) {
    for (target, streams) in seeds {
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
                    "{} is missing ({e}): write the seeds with {env} (see the test's docs)",
                    path.display()
                )
            });
            assert_eq!(committed, input, "{} differs from its seed", path.display());
        }
    }
}

/// Writes `seeds` under the directory named by the environment variable `env`, if set:
/// the plain seeds, and each with every option byte and a few split seeds.
pub fn write_when_asked(seeds: Vec<Seeds>, env: &str) {
    let Some(out) = std::env::var_os(env) else {
        return;
    };
    for (target, streams) in seeds {
        let plain_dir = Path::new(&out).join("plain").join(target);
        let all_dir = Path::new(&out).join(target);
        fs::create_dir_all(&plain_dir).expect("create the plain seed directory");
        fs::create_dir_all(&all_dir).expect("create the seed directory");
        for stream in streams {
            let input = plain(&stream);
            fs::write(plain_dir.join(seed_name(&input)), &input).expect("write a seed");
            // Every option and a few split seeds: one byte per piece, small and large pieces.
            for options in 0u8..4 {
                for split in [0u8, 1, 9, 77, 255] {
                    let input = [&[options, split][..], &stream].concat();
                    fs::write(all_dir.join(seed_name(&input)), &input).expect("write a seed");
                }
            }
        }
    }
}
