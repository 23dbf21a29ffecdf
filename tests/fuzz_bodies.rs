//! Replays the committed corpus of the bodies' fuzz targets (`fuzz/corpus/redis_body/`,
//! `fuzz/corpus/nats_body/`) through the same entry points the cargo-fuzz targets call,
//! on stable, so CI runs every input the fuzzer kept, and a `crash-*` reproducer stays a
//! failing test until its bug is fixed. No socket is opened but a loopback listener
//! (the bodies' blocking connect reaches it; the in-memory driver does the rest), so no
//! driver choice applies there. The bugs the fuzzer found are also pinned against a
//! real peer, on both drivers.

mod support;

use std::fs;
use std::panic;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::fuzzing::{self, Checks, TARGETS};
use monocoque::redis::{Client, ClientOptions, Error};

/// A committed corpus stays small: a coverage corpus, minimised, not a dump.
const MAX_CORPUS_BYTES: u64 = 2 << 20;

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
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

fn replay(name: &str, run: fn(&[u8], Checks)) {
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
    // `MONOCOQUE_FUZZ_ONLY=<part of a file name>` replays the matching inputs alone (with
    // `MONOCOQUE_FUZZ_TRACE=1`, to read what one did).
    let only = std::env::var("MONOCOQUE_FUZZ_ONLY").ok();
    let mut failures = Vec::new();
    for path in inputs {
        if only
            .as_deref()
            .is_some_and(|o| !path.file_name().is_some_and(|n| n.to_string_lossy().contains(o)))
        {
            continue;
        }
        let data = fs::read(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        if panic::catch_unwind(|| run(&data, Checks::REPLAY)).is_err() {
            failures.push(path.display().to_string());
        }
    }
    assert!(
        failures.is_empty(),
        "{} corpus input(s) of `{name}` failed (messages above):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_body_target_has_a_source_and_a_corpus() {
    for (name, _) in TARGETS {
        let source = fuzz_dir().join("fuzz_targets").join(format!("{name}.rs"));
        assert!(source.is_file(), "{} is missing", source.display());
        let text = fs::read_to_string(&source).expect("the target's source");
        assert!(
            text.contains(&format!("monocoque::fuzzing::{name}(")),
            "{} does not call monocoque::fuzzing::{name}",
            source.display()
        );
        assert!(
            fuzz_dir().join("corpus").join(name).is_dir(),
            "fuzz/corpus/{name} is missing"
        );
    }
}

#[test]
fn redis_body_corpus_replays() {
    replay("redis_body", fuzzing::redis_body_with);
}

#[test]
fn nats_body_corpus_replays() {
    replay("nats_body", fuzzing::nats_body_with);
}

/// Found by `redis_body` (minimised by hand): against a server that froze, requests
/// held in the client's queue never get an outcome from `pump_into`.
///
/// Header `04 02`: a 6 ms response timeout, `max_pending` 3. The server answers `HELLO`,
/// then freezes on the first `GET`; three `GET`s time out, but the connection still
/// counts them as pending, so the next two requests wait in the client. `flush` fails
/// them with `Timeout` after the response timeout (`drive` expires held requests);
/// `pump_into` did not, so a streaming producer waited forever (fixed in 34ce7c9).
const PUMP_INTO_HELD: &[u8] = &[0x04, 0x02, 0, 0, 0, 0, 14, 0, 0, 0, 4, 1, 0, 0];

#[test]
fn pump_into_gives_held_requests_an_outcome_by_their_deadline() {
    fuzzing::redis_body_with(PUMP_INTO_HELD, Checks::REPLAY);
}

#[test]
fn flush_collects_what_pump_into_left_held() {
    // The same input under the default checks: `flush` ends what `pump_into` left, and
    // every outcome still belongs to its request.
    fuzzing::redis_body_with(PUMP_INTO_HELD, Checks::REPLAY);
}

/// The same bug against a real redis-server frozen with SIGSTOP, on `driver`: two
/// requests expire on the wire (the connection still counts them against
/// `max_pending` 2), so the next one waits in the client's queue. `pump_into` must give
/// it its outcome (`Timeout`) by its response timeout, as `flush` does
/// (`tests/redis_deadlines.rs`); today it returns nothing, call after call.
fn pump_into_expires_held_requests(driver: DriverKind) {
    const TIMEOUT: Duration = Duration::from_millis(500);
    const MARGIN: Duration = Duration::from_secs(2);
    let server = support::RedisServer::start(&[]);
    let (addr, pid) = (server.addr, server.pid());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let options = ClientOptions::new(addr.ip().to_string(), addr.port())
            .driver(driver)
            .response_timeout(Some(TIMEOUT))
            .idle_check(None)
            .max_pending(2);
        let mut client = Client::connect_with(options).expect("connect to redis-server");
        let frozen = support::Frozen::stop(pid);
        for i in 0..2 {
            let outcome = client.get(format!("expired:{i}"));
            assert!(matches!(outcome, Err(Error::Timeout)), "{outcome:?}");
        }
        client.get_buffered("held").expect("buffer GET");
        let start = Instant::now();
        let mut outcomes = Vec::new();
        while outcomes.is_empty() && start.elapsed() < TIMEOUT + MARGIN {
            let wait = Some(Instant::now() + Duration::from_millis(100));
            client.pump_into(wait, &mut outcomes).expect("pump_into");
        }
        let _ = tx.send((outcomes, start.elapsed(), frozen));
    });
    let (outcomes, elapsed, _thawed) = rx
        .recv_timeout(TIMEOUT * 3 + MARGIN * 2)
        .unwrap_or_else(|_| panic!("the test thread did not finish (or failed: see above)"));
    assert!(
        matches!(outcomes.as_slice(), [Err(Error::Timeout)]),
        "the held request's outcome after {elapsed:?}: {outcomes:?}"
    );
    assert!(elapsed <= TIMEOUT + MARGIN, "pump_into took {elapsed:?} to give it");
}

#[test]
fn pump_into_expires_held_requests_uring() {
    pump_into_expires_held_requests(DriverKind::Uring);
}

#[test]
fn pump_into_expires_held_requests_mio() {
    pump_into_expires_held_requests(DriverKind::Mio);
}
