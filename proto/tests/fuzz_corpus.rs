//! Replays the committed fuzz corpus (`fuzz/corpus/<target>/`) through the same entry
//! points the cargo-fuzz targets call, on stable, so CI exercises every input the fuzzer
//! kept, and every `crash-*` reproducer stays a failing test until its bug is fixed (fixed ones are kept as `regression-*`).

use std::collections::BTreeSet;
use std::fs;
use std::panic;
use std::path::{Path, PathBuf};

use monocoque_proto::fuzzing::TARGETS;

/// The targets of the bodies (the root crate's `fuzzing` module), whose corpus
/// `tests/fuzz_bodies.rs` in the root crate replays.
const BODY_TARGETS: &[&str] = &["redis_body", "nats_body"];

/// A committed corpus stays small: a coverage corpus, minimised, not a dump.
const MAX_CORPUS_BYTES: u64 = 2 << 20;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

/// The regular, non-hidden files of `dir`, sorted; panics if `dir` cannot be read.
fn files(dir: &Path) -> Vec<PathBuf> {
    let entries = fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    let mut out: Vec<PathBuf> = entries
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    out.sort();
    out
}

fn names_in(dir: &Path, keep: impl Fn(&Path) -> Option<String>) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| keep(&e.expect("directory entry").path()))
        .collect()
}

#[test]
fn every_fuzz_target_is_known_and_has_a_corpus() {
    let known: BTreeSet<String> = TARGETS
        .iter()
        .map(|(name, _)| *name)
        .chain(BODY_TARGETS.iter().copied())
        .map(str::to_string)
        .collect();
    let sources = names_in(&fuzz_dir().join("fuzz_targets"), |p| {
        if p.extension()? != "rs" {
            return None;
        }
        Some(p.file_stem()?.to_string_lossy().into_owned())
    });
    assert_eq!(sources, known, "fuzz/fuzz_targets/*.rs and fuzzing::TARGETS disagree");
    let corpora = names_in(&fuzz_dir().join("corpus"), |p| {
        if !p.is_dir() {
            return None;
        }
        Some(p.file_name()?.to_string_lossy().into_owned())
    });
    assert_eq!(corpora, known, "fuzz/corpus/* and fuzzing::TARGETS disagree");
}

#[test]
fn corpus_replays_without_a_panic() {
    let mut failures = Vec::new();
    for (name, run) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(name);
        let inputs = files(&dir);
        assert!(
            !inputs.is_empty(),
            "the corpus of `{name}` ({}) is empty",
            dir.display()
        );
        let bytes: u64 = inputs.iter().map(|p| p.metadata().map_or(0, |m| m.len())).sum();
        assert!(
            bytes <= MAX_CORPUS_BYTES,
            "the corpus of `{name}` holds {bytes} bytes: minimise it"
        );
        for path in inputs {
            let data = fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
            if panic::catch_unwind(|| run(&data)).is_err() {
                failures.push(format!("{name}: {}", path.display()));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus input(s) panicked (messages above):\n{}",
        failures.len(),
        failures.join("\n")
    );
}
