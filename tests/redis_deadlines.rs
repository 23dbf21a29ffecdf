//! Every blocking call of the Redis client returns by its deadline, whatever state its
//! queue is in: requests held in the client (over `max_pending`) and requests behind
//! already-expired ones, against a real redis-server frozen with SIGSTOP.

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::redis::{Client, ClientOptions, Error};
use support::RedisServer;

both_drivers! {
    held_requests_fail_by_their_deadline => held_requests_fail_by_their_deadline_uring, held_requests_fail_by_their_deadline_mio;
    query_behind_expired_requests_returns => query_behind_expired_requests_returns_uring, query_behind_expired_requests_returns_mio;
}

const TIMEOUT: Duration = Duration::from_secs(1);
/// Timer tick plus a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(2);

/// Connects on the calling thread (a driver stays on the thread that made it), freezes
/// the server, then runs `f`; fails the test instead of hanging when the whole thing has
/// not returned within `limit`.
fn frozen_call<T: Send + 'static>(
    server: &RedisServer,
    driver: DriverKind,
    limit: Duration,
    f: impl FnOnce(&mut Client) -> T + Send + 'static,
) -> T {
    let (addr, pid) = (server.addr, server.pid());
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let options = ClientOptions::new(addr.ip().to_string(), addr.port())
            .driver(driver)
            .response_timeout(Some(TIMEOUT))
            .idle_check(None)
            .max_pending(4);
        let mut client = Client::connect_with(options).expect("connect to redis-server");
        client.set("k", "v").expect("set");
        let frozen = support::Frozen::stop(pid);
        let out = f(&mut client);
        let _ = tx.send((out, frozen));
    });
    let outcome = rx.recv_timeout(limit);
    // Thaw whatever happened, so a failing test leaves no stopped process.
    if outcome.is_err() {
        // SAFETY: kill(2) on the child's pid; no memory is involved.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
    }
    outcome
        .map(|(out, _thawed)| out)
        .unwrap_or_else(|_| panic!("the call did not return within {limit:?}"))
}

/// 100 GETs with room for 4 on the wire: 96 wait in the client's own queue, where the
/// connection's timer does not see them. `flush` must still return by the deadline.
fn held_requests_fail_by_their_deadline(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let (outcomes, elapsed) = frozen_call(&server, driver, TIMEOUT + MARGIN + Duration::from_secs(5), |client| {
        for i in 0..100 {
            client.get_buffered(format!("key:{i}")).expect("buffer GET");
        }
        let start = Instant::now();
        let outcomes = client.flush().expect("flush");
        (outcomes, start.elapsed())
    });
    assert_eq!(outcomes.len(), 100);
    assert!(
        outcomes.iter().all(|o| matches!(o, Err(Error::Timeout))),
        "every request times out: {:?}",
        outcomes.iter().find(|o| !matches!(o, Err(Error::Timeout)))
    );
    assert!(elapsed <= TIMEOUT + MARGIN, "flush took {elapsed:?}");
}

/// Four requests expire on the wire (their late replies still count against
/// `max_pending`), so the next query waits in the client's queue; it must fail by its
/// deadline instead of waiting with no timer.
fn query_behind_expired_requests_returns(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let elapsed = frozen_call(
        &server,
        driver,
        2 * (TIMEOUT + MARGIN) + Duration::from_secs(5),
        |client| {
            for _ in 0..4 {
                client.get_buffered("k").expect("buffer GET");
            }
            let outcomes = client.flush().expect("flush");
            assert!(
                outcomes.iter().all(|o| matches!(o, Err(Error::Timeout))),
                "{outcomes:?}"
            );
            let start = Instant::now();
            let result = client.get("k");
            assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
            start.elapsed()
        },
    );
    assert!(elapsed <= TIMEOUT + MARGIN, "the query took {elapsed:?}");
}
