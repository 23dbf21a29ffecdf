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
    a_flush_past_high_water_completes_on_the_thaw => a_flush_past_high_water_completes_on_the_thaw_uring, a_flush_past_high_water_completes_on_the_thaw_mio;
}

const TIMEOUT: Duration = Duration::from_secs(1);
/// Timer tick plus a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(2);
/// How long the server stays frozen while a flush waits.
const FROZEN_FOR: Duration = Duration::from_secs(2);
/// The response timeout of a flush that must end on the thaw, not on its deadline.
const LONG: Duration = Duration::from_secs(40);
/// How long the watchdog waits for the whole scenario before failing the test.
const WATCHDOG: Duration = Duration::from_secs(60);

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

/// 64 MiB of SETs into a frozen server, past the connection's 1 MiB high-water mark: the
/// rest waits in the client, the connection asks to hear (`Activity::Sent`) when the
/// kernel has made room, and the flush, blocked through the freeze, completes once the
/// server is thawed, long before the response timeout. (Here the replies that follow
/// the thaw would wake the flush too; the NATS and MQTT tests are the ones only the
/// report can wake.)
fn a_flush_past_high_water_completes_on_the_thaw(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let (addr, pid) = (server.addr, server.pid());
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let mut options = ClientOptions::new(addr.ip().to_string(), addr.port())
            .driver(driver)
            .response_timeout(Some(LONG))
            .idle_check(None);
        options.max_outgoing_bytes = 1 << 20;
        let mut client = Client::connect_with(options).expect("connect to redis-server");
        client.set("k", "v").expect("set");
        let _ = tx.send(None);
        let _ = go_rx.recv();
        let value = vec![b'x'; 64 * 1024];
        for i in 0..1024 {
            client
                .set_buffered(format!("big:{}", i % 16), &value)
                .expect("buffer SET");
        }
        let start = Instant::now();
        let outcomes = client.flush().expect("flush");
        let _ = tx.send(Some((outcomes, start.elapsed(), Instant::now())));
    });
    let watch = || {
        rx.recv_timeout(WATCHDOG).unwrap_or_else(|_| {
            // SAFETY: kill(2) on the child's pid; no memory is involved.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
            panic!("the flush did not return within {WATCHDOG:?}")
        })
    };
    assert!(watch().is_none());
    let frozen = support::Frozen::stop(pid);
    go_tx.send(()).expect("worker alive");
    thread::sleep(FROZEN_FOR);
    let thawed = Instant::now();
    drop(frozen);
    let (outcomes, took, done) = watch().expect("the outcome");
    assert_eq!(outcomes.len(), 1024);
    assert!(
        outcomes.iter().all(Result::is_ok),
        "{:?}",
        outcomes.iter().find(|o| o.is_err())
    );
    assert!(
        took >= FROZEN_FOR / 2,
        "the flush did not wait for the frozen server ({took:?})"
    );
    let after = done.saturating_duration_since(thawed);
    assert!(
        after <= MARGIN + MARGIN,
        "done {after:?} after the thaw (the response timeout is {LONG:?})"
    );
}
