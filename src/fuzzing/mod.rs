//! Fuzzing the bodies (built only with the `fuzzing` cargo feature, never shipped).
//!
//! Each entry point drives one client body, unchanged and through its public API, over
//! [`MemDriver`]: an in-memory [`Driver`](monocoque_proto::Driver) whose connections
//! reach a fake server scripted by the fuzzer's bytes. The same bytes choose the calls
//! the harness makes and what the server does to each frame it sends (cut into pieces,
//! delayed, made late past the client's timeouts, replaced by an error reply, preceded
//! by bytes no decoder accepts, cut short by a disconnect, never sent because the server
//! froze) and whether a connection attempt is refused. The bodies read the real clock,
//! so the driver sleeps for real: the inputs keep every timeout within milliseconds.
//!
//! Checks, panicking on the first that fails:
//! - every successful reply is the one of the request it was returned for (the fake
//!   servers answer each request with something that names it; error replies name it
//!   too);
//! - every error is one the misbehaviour explains (a timeout, a lost connection, a
//!   refused reconnect or handshake, a server error), never a driver failure or a
//!   refusal of a well-formed request;
//! - every call returns by its own deadline plus a timer tick and a slack, reconnecting
//!   included (the clients' contract): a Redis call by the response timeout, a NATS
//!   request by its timeout, a NATS call without one by the operation timeout, a wait
//!   (`next_event`, `next_message`) by its timeout;
//! - the body never waits in [`Driver::turn`](monocoque_proto::Driver::turn) without a
//!   deadline while nothing could wake it;
//! - the client only sends bytes its server decodes; nothing panics.
//!
//! | target | input |
//! |---|---|
//! | [`redis_body`] | two header bytes (timeouts, protocol, limits), then calls and faults |
//! | [`nats_body`] | two header bytes (timeouts, limits), then calls and faults |

mod calls;
mod driver;
mod nats;
mod redis;
mod script;

use std::cell::RefCell;
use std::net::TcpListener;
use std::time::{Duration, Instant};

pub use driver::{FakeServer, Frame, MemDriver};
pub use nats::NatsServer;
pub use redis::RedisServer;
pub use script::Script;

/// What an input is checked against, beyond "nothing panics, no reply reaches the wrong
/// caller".
#[derive(Debug, Clone, Copy)]
pub struct Checks {
    /// Time allowed past each call's own limit (its timeouts, the reconnect policy's
    /// attempts and backoff).
    pub slack: Duration,
}

impl Checks {
    /// What the fuzz targets check: a slack generous enough for a loaded machine, short
    /// enough that the fuzzer notices a call that overstays.
    pub const FUZZ: Checks = Checks {
        slack: Duration::from_millis(500),
    };

    /// What the corpus replay checks: seconds of slack (a shared CI machine).
    pub const REPLAY: Checks = Checks {
        slack: Duration::from_secs(5),
    };
}

/// A fuzz target's entry point.
pub type Target = fn(&[u8]);

/// Every fuzz target of the bodies, by the name of its file in `fuzz/fuzz_targets/` and
/// of its corpus directory in `fuzz/corpus/`.
pub const TARGETS: &[(&str, Target)] = &[("redis_body", redis_body), ("nats_body", nats_body)];

/// [`Checks::FUZZ`], with the slack from `MONOCOQUE_FUZZ_SLACK_MS` when it is set (a
/// tighter one looks for calls that overstay by less).
fn fuzz_checks() -> Checks {
    thread_local! {
        static SLACK: Option<Duration> = std::env::var("MONOCOQUE_FUZZ_SLACK_MS")
            .ok()
            .and_then(|ms| ms.parse().ok())
            .map(Duration::from_millis);
    }
    let mut checks = Checks::FUZZ;
    if let Some(slack) = SLACK.with(|s| *s) {
        checks.slack = slack;
    }
    checks
}

/// The Redis body ([`crate::redis::Client`]) under the fuzzer, with [`Checks::FUZZ`].
pub fn redis_body(data: &[u8]) {
    twice(data, fuzz_checks(), redis::run);
}

/// [`redis_body`] with other checks.
pub fn redis_body_with(data: &[u8], checks: Checks) {
    twice(data, checks, redis::run);
}

/// The NATS body ([`crate::nats::Client`]) under the fuzzer, with [`Checks::FUZZ`].
pub fn nats_body(data: &[u8]) {
    twice(data, fuzz_checks(), nats::run);
}

/// [`nats_body`] with other checks.
pub fn nats_body_with(data: &[u8], checks: Checks) {
    twice(data, checks, nats::run);
}

thread_local! {
    /// A loopback listener whose port the bodies are given as their server's address:
    /// a real address to resolve, though the harness's driver connects nothing (it
    /// wires each session to a fake server).
    static LISTENER: TcpListener = {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener for the fuzz harness");
        listener.set_nonblocking(true).expect("a non-blocking listener");
        listener
    };
}

/// A handle on this thread's loopback listener, and its port.
fn loopback() -> (TcpListener, u16) {
    LISTENER.with(|l| {
        let port = l.local_addr().expect("the listener's address").port();
        (l.try_clone().expect("a second handle on the listener"), port)
    })
}

/// Whether `MONOCOQUE_FUZZ_TRACE` is set: the harness then prints every call, outcome
/// and server fault to stderr, to read what a failing input did.
fn tracing() -> bool {
    thread_local! {
        static TRACE: bool = std::env::var_os("MONOCOQUE_FUZZ_TRACE").is_some();
    }
    TRACE.with(|t| *t)
}

/// The time limit of the calls of one input, and the first call that overstayed it.
#[derive(Debug)]
struct Clock {
    /// What a call without a wait of its own may take: its deadline plus a timer tick.
    limit: Duration,
    slack: Duration,
    overstayed: RefCell<Option<String>>,
}

impl Clock {
    fn new(limit: Duration, slack: Duration) -> Self {
        Self {
            limit,
            slack,
            overstayed: RefCell::new(None),
        }
    }

    /// Whether the call that started at `started` returned within the limit plus the
    /// slack; the first that did not is kept for [`verdict`](Self::verdict).
    fn check(&self, started: Instant, what: &str) -> bool {
        self.check_with(started, Duration::ZERO, what)
    }

    /// [`check`](Self::check), allowing `extra` too (a call's own wait).
    fn check_with(&self, started: Instant, extra: Duration, what: &str) -> bool {
        let elapsed = started.elapsed();
        let limit = self.limit + extra + self.slack;
        if elapsed <= limit {
            return true;
        }
        let message = format!(
            "{what} took {elapsed:?}, more than its limit {limit:?} ({:?} + {extra:?} + slack {:?})",
            self.limit, self.slack
        );
        if tracing() {
            eprintln!("[fuzz] {message}");
        }
        self.overstayed.borrow_mut().get_or_insert(message);
        false
    }

    /// Makes `call` and checks, as [`check`](Self::check), that it returned in time.
    fn time<T>(&self, what: &str, call: impl FnOnce() -> T) -> T {
        self.time_with(what, Duration::ZERO, call)
    }

    /// Makes `call` and checks, as [`check_with`](Self::check_with), that it returned
    /// within `extra` (its own wait) more; traces how long it took.
    fn time_with<T>(&self, what: &str, extra: Duration, call: impl FnOnce() -> T) -> T {
        let started = Instant::now();
        let outcome = call();
        if tracing() {
            eprintln!("[fuzz] {what} returned after {:?}", started.elapsed());
        }
        self.check_with(started, extra, what);
        outcome
    }

    /// The first call that overstayed, if one did.
    fn verdict(self) -> Result<(), String> {
        self.overstayed.into_inner().map_or(Ok(()), Err)
    }
}

/// Runs `run` on `data`; a call that overstays its limit fails the input only if it
/// happens again on a second run: a loaded machine can stall one run by hundreds of
/// milliseconds, a body that overstays does it every time. Every other check panics at
/// once.
fn twice(data: &[u8], checks: Checks, run: fn(&[u8], Checks) -> Result<(), String>) {
    if let Err(first) = run(data, checks) {
        if let Err(second) = run(data, checks) {
            panic!("{second} (and on the first run: {first})");
        }
    }
}
