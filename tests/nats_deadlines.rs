//! Every blocking call of the NATS client returns by its deadline, whatever the server
//! and the queues do, against a real nats-server frozen with SIGSTOP (or killed): a
//! flush of a backlog the server does not read, a publish past the high-water mark,
//! requests, round trips and subscriptions while the connection is being replaced, and
//! waiting for a message while the reconnect policy runs. A call that runs out of time
//! leaves the reconnect where it was, and once the server is back everything works.
//! Also the connection-wide bound on queued message bytes, with a real server.
//!
//! The client lives in a worker thread (a driver stays on the thread that made it) and
//! the test waits for it with a watchdog, so a call that hangs fails the test instead
//! of blocking it.

mod support;

use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::nats::{Client, ClientOptions, Error, Event, LinkError, ReconnectPolicy};
use support::NatsServer;

both_drivers! {
    flush_into_a_frozen_server_times_out => flush_into_a_frozen_server_times_out_uring, flush_into_a_frozen_server_times_out_mio;
    publish_past_high_water_times_out => publish_past_high_water_times_out_uring, publish_past_high_water_times_out_mio;
    calls_during_a_reconnect_to_a_frozen_server_keep_their_deadlines => calls_during_a_reconnect_to_a_frozen_server_keep_their_deadlines_uring, calls_during_a_reconnect_to_a_frozen_server_keep_their_deadlines_mio;
    waiting_for_a_message_continues_the_reconnect_across_calls => waiting_for_a_message_continues_the_reconnect_across_calls_uring, waiting_for_a_message_continues_the_reconnect_across_calls_mio;
    the_connection_bounds_queued_bytes => the_connection_bounds_queued_bytes_uring, the_connection_bounds_queued_bytes_mio;
    timeouts_too_long_for_a_deadline_wait_without_one => timeouts_too_long_for_a_deadline_wait_without_one_uring, timeouts_too_long_for_a_deadline_wait_without_one_mio;
    a_publish_blocked_at_high_water_wakes_on_the_thaw => a_publish_blocked_at_high_water_wakes_on_the_thaw_uring, a_publish_blocked_at_high_water_wakes_on_the_thaw_mio;
}

/// `operation_timeout` and the timeouts the tests give.
const TIMEOUT: Duration = Duration::from_secs(1);
/// A timer tick plus a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(3);
/// How long the watchdog waits for a whole scenario before failing the test.
const WATCHDOG: Duration = Duration::from_secs(60);
/// Patience for what must happen once the server is back.
const WAIT: Duration = Duration::from_secs(20);
/// How long a server stays frozen while a call waits for room.
const FROZEN_FOR: Duration = Duration::from_secs(2);
/// The operation timeout of a call that must end on the thaw, not on its deadline.
const LONG: Duration = Duration::from_secs(40);

fn options(server: &NatsServer, driver: DriverKind) -> ClientOptions {
    ClientOptions::from_url(&server.url())
        .expect("valid URL")
        .driver(driver)
        .operation_timeout(TIMEOUT)
}

/// What the worker tells the test.
enum Step<T> {
    /// Connected and set up: freeze the server now.
    Ready,
    /// The calls under test returned this.
    Done(T),
    /// Everything worked again once the server was thawed.
    Recovered,
}

/// Runs a client in a worker thread: connects with `options`; then the test freezes the
/// server and the worker runs `call`; then the test thaws the server
/// and the worker checks that a round trip, a publish and a subscription work again.
/// Returns what `call` returned; fails instead of hanging when a step overruns the
/// watchdog.
fn frozen<T: Send + 'static>(
    server: &NatsServer,
    options: ClientOptions,
    call: impl FnOnce(&mut Client) -> T + Send + 'static,
) -> T {
    let (tx, rx) = mpsc::channel::<Step<T>>();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let mut client = Client::connect_with(options).expect("connect to nats-server");
        let mut after = client.subscribe("after.thaw").expect("subscribe");
        client.round_trip().expect("round trip");
        let _ = tx.send(Step::Ready);
        let _ = go_rx.recv();
        let out = call(&mut client);
        let _ = tx.send(Step::Done(out));
        // Thawed: the client comes back by itself, call after call.
        let _ = go_rx.recv();
        until_ok(|| client.round_trip());
        client.publish("after.thaw", "back").expect("publish");
        until_ok(|| client.flush());
        let got = after
            .next_message(WAIT)
            .expect("receive")
            .expect("a message after the thaw");
        assert_eq!(got.payload, "back");
        let _ = tx.send(Step::Recovered);
    });
    let watch = |rx: &mpsc::Receiver<Step<T>>, what: &str| {
        rx.recv_timeout(WATCHDOG).unwrap_or_else(|_| {
            // Thaw whatever happened, so a failing test leaves no stopped process.
            server.thaw();
            panic!("{what} did not happen within {WATCHDOG:?}")
        })
    };
    assert!(matches!(watch(&rx, "connecting"), Step::Ready));
    server.freeze();
    go_tx.send(()).expect("worker alive");
    let Step::Done(out) = watch(&rx, "the calls under test returning") else {
        panic!("out of order")
    };
    server.thaw();
    go_tx.send(()).expect("worker alive");
    assert!(matches!(watch(&rx, "recovering after the thaw"), Step::Recovered));
    out
}

/// Retries `f` (each call within its own deadline) until it succeeds, within [`WAIT`].
fn until_ok<T>(mut f: impl FnMut() -> Result<T, Error>) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        match f() {
            Ok(value) => return value,
            Err(e) if Instant::now() < deadline => {
                assert!(
                    matches!(
                        e,
                        Error::Timeout | Error::Connection(_) | Error::Link(LinkError::Reconnect { .. })
                    ),
                    "{e:?}"
                );
            }
            Err(e) => panic!("still failing after {WAIT:?}: {e:?}"),
        }
    }
}

/// Asserts that a call took its deadline, not (much) more.
fn within(elapsed: Duration, timeout: Duration, what: &str) {
    assert!(
        elapsed <= timeout + MARGIN,
        "{what} took {elapsed:?} (deadline {timeout:?})"
    );
}

/// 64 MiB of publishes a frozen server does not read: the socket buffers fill, and the
/// flush gives up at `operation_timeout` with the rest still buffered.
fn flush_into_a_frozen_server_times_out(driver: DriverKind) {
    let server = NatsServer::start();
    let opts = options(&server, driver).outgoing_buffer_size(128 << 20);
    let (result, elapsed) = frozen(&server, opts, |client| {
        let payload = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
        for _ in 0..1024 {
            client.publish("bulk", payload.clone()).expect("publish");
        }
        let start = Instant::now();
        let result = client.flush();
        (result, start.elapsed())
    });
    assert!(matches!(result, Err(Error::Timeout)), "{result:?}");
    assert!(
        elapsed >= TIMEOUT - Duration::from_millis(50),
        "gave up early: {elapsed:?}"
    );
    within(elapsed, TIMEOUT, "flush");
}

/// Publishing into a frozen server until the outgoing buffer is full: the publish at the
/// high-water mark waits `operation_timeout` for the kernel, then fails.
fn publish_past_high_water_times_out(driver: DriverKind) {
    let server = NatsServer::start();
    let opts = options(&server, driver).outgoing_buffer_size(1 << 20);
    let (result, elapsed, accepted) = frozen(&server, opts, |client| {
        let payload = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
        // The socket buffers take a few MiB, the client 1 MiB more; 256 MiB cannot
        // fit.
        for accepted in 0..4096 {
            let start = Instant::now();
            if let Err(e) = client.publish("bulk", payload.clone()) {
                return (Err(e), start.elapsed(), accepted);
            }
        }
        (Ok(()), Duration::ZERO, 4096)
    });
    assert!(
        matches!(result, Err(Error::Timeout)),
        "{result:?} after {accepted} publishes"
    );
    within(elapsed, TIMEOUT, "the publish at high water");
}

/// The keepalive declares the frozen server's connection dead; the next calls reconnect
/// to it (TCP connects, the handshake never completes). Each returns by its own
/// deadline rather than running the reconnect policy, and the last one continues the
/// handshake the first started.
fn calls_during_a_reconnect_to_a_frozen_server_keep_their_deadlines(driver: DriverKind) {
    let server = NatsServer::start();
    let opts = options(&server, driver)
        .ping_interval(Duration::from_millis(200))
        .max_pings_out(2)
        .connect_timeout(Duration::from_secs(30))
        .reconnect(ReconnectPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(5),
            jitter: 0.0,
            max_attempts: None,
        });
    let timings = frozen(&server, opts, |client| {
        let deadline = Instant::now() + WAIT;
        loop {
            match client.next_event(Duration::from_millis(500)).expect("next_event") {
                Some(Event::Disconnected(_)) => break,
                _ => assert!(Instant::now() < deadline, "the frozen server was never declared stale"),
            }
        }
        let mut timings = Vec::new();
        let start = Instant::now();
        let request = client.request("svc", "ping", TIMEOUT);
        timings.push(("request", start.elapsed(), request.map(|_| ())));
        let start = Instant::now();
        let round_trip = client.round_trip();
        timings.push(("round_trip", start.elapsed(), round_trip.map(|_| ())));
        let start = Instant::now();
        let subscribe = client.subscribe("late");
        timings.push(("subscribe", start.elapsed(), subscribe.map(|_| ())));
        let start = Instant::now();
        let flush = client.flush();
        timings.push(("flush", start.elapsed(), flush));
        let start = Instant::now();
        let event = client.next_event(TIMEOUT).map(|_| ());
        timings.push(("next_event", start.elapsed(), event));
        (timings, client.connections(), client.is_connected())
    });
    let (timings, connections, connected) = timings;
    for (what, elapsed, result) in timings {
        if what == "next_event" {
            assert!(result.is_ok(), "{what}: {result:?}");
        } else {
            assert!(matches!(result, Err(Error::Timeout)), "{what}: {result:?}");
        }
        within(elapsed, TIMEOUT, what);
    }
    assert_eq!(connections, 1, "no handshake completed with the frozen server");
    assert!(!connected);
}

/// The server is killed and stays down; a long reconnect policy (10 attempts, 400 ms
/// apart) runs across many short `next_message` calls, each returning by its timeout.
/// The attempts add up across calls until the policy is spent; once the server is
/// back, the next wait reconnects and the subscription works.
fn waiting_for_a_message_continues_the_reconnect_across_calls(driver: DriverKind) {
    let mut server = NatsServer::start();
    let opts = options(&server, driver).reconnect(ReconnectPolicy {
        initial: Duration::from_millis(400),
        max: Duration::from_millis(400),
        jitter: 0.0,
        max_attempts: Some(10),
    });
    let poll = Duration::from_millis(250);
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let mut client = Client::connect_with(opts).expect("connect to nats-server");
        let mut sub = client.subscribe("k").expect("subscribe");
        client.round_trip().expect("round trip");
        let _ = tx.send(None);
        let _ = go_rx.recv();
        let mut calls = Vec::new();
        let outcome = loop {
            let start = Instant::now();
            match sub.next_message(poll) {
                Ok(None) => calls.push(start.elapsed()),
                other => break (other.map(|m| m.is_some()), start.elapsed()),
            }
            if calls.len() > 200 {
                break (Ok(false), Duration::ZERO);
            }
        };
        let _ = tx.send(Some((calls, outcome)));
        // The server is back: the next wait starts a new reconnect, and it succeeds.
        let _ = go_rx.recv();
        client.publish("k", "back").expect("buffered while disconnected");
        let got = sub.next_message(WAIT).expect("reconnect").expect("a message");
        assert_eq!(got.payload, "back");
        assert_eq!(client.connections(), 2);
        let _ = tx.send(None);
    });
    let watch = |rx: &mpsc::Receiver<_>, what: &str| {
        rx.recv_timeout(WATCHDOG)
            .unwrap_or_else(|_| panic!("{what} did not happen within {WATCHDOG:?}"))
    };
    assert!(watch(&rx, "connecting").is_none());
    server.kill();
    go_tx.send(()).expect("worker alive");
    let (calls, (outcome, last)) = watch(&rx, "the reconnect policy running out").expect("outcome");
    for (i, elapsed) in calls.iter().enumerate() {
        within(*elapsed, poll, &format!("next_message #{i}"));
    }
    within(last, poll, "the last next_message");
    match outcome {
        Err(Error::Link(LinkError::Reconnect { attempts: 10, .. })) => {}
        other => panic!(
            "expected the policy's 10 attempts to run out, got {other:?} after {} calls",
            calls.len()
        ),
    }
    // Ten attempts 400 ms apart cannot fit in one 250 ms call, and a call that started
    // the policy afresh would make one attempt and wait: they were spread over calls,
    // each continuing where the last stopped (about 15 of them on an idle machine).
    let spent: Duration = calls.iter().sum::<Duration>() + last;
    assert!(spent >= Duration::from_millis(9 * 400 - 100), "{spent:?} in all");
    assert!(calls.len() >= 2, "{} calls", calls.len());
    server.restart();
    go_tx.send(()).expect("worker alive");
    assert!(watch(&rx, "reconnecting after the restart").is_none());
}

/// Two subscriptions whose own limits would take everything, under a 64 KiB bound for
/// the connection: what does not fit is dropped and reported as a slow consumer, and
/// taking messages makes room again.
fn the_connection_bounds_queued_bytes(driver: DriverKind) {
    let server = NatsServer::start();
    let mut client = Client::connect_with(options(&server, driver).max_pending_bytes(64 * 1024)).expect("connect");
    let mut a = client.subscribe("bound.a").expect("subscribe");
    let mut b = client.subscribe("bound.b").expect("subscribe");
    client.round_trip().expect("round trip");
    let payload = bytes::Bytes::from(vec![b'x'; 1024]);
    for _ in 0..100 {
        client.publish("bound.a", payload.clone()).expect("publish");
        client.publish("bound.b", payload.clone()).expect("publish");
    }
    client.round_trip().expect("round trip");
    // The round trip's PONG follows every message the server sent for those publishes.
    let (queued_a, bytes_a) = a.pending().expect("queue");
    let (queued_b, bytes_b) = b.pending().expect("queue");
    assert!(bytes_a + bytes_b <= 64 * 1024, "{bytes_a} + {bytes_b} bytes queued");
    assert_eq!(client.pending_bytes(), bytes_a + bytes_b);
    assert_eq!(queued_a + queued_b, 64, "exactly what fits");
    assert_eq!(a.dropped() + b.dropped(), 200 - 64);
    assert_eq!(queued_a as u64 + a.dropped(), 100);
    let mut reported = 0;
    while let Some(event) = client.next_event(Duration::ZERO).expect("next_event") {
        if let Event::SlowConsumer { dropped, .. } = event {
            reported += dropped;
        }
    }
    assert_eq!(reported, 200 - 64, "every drop reported");
    // Taking messages makes room for the other subscription.
    for _ in 0..queued_a {
        a.next_message(Duration::ZERO).expect("receive").expect("queued");
    }
    client.publish("bound.b", payload.clone()).expect("publish");
    client.round_trip().expect("round trip");
    assert_eq!(b.pending().map(|p| p.0), Some(queued_b + 1));
    assert_eq!(client.pending_bytes(), (queued_b + 1) * 1024);
    assert!(b.next_message(TIMEOUT).expect("receive").is_some());
}

/// `Duration::MAX` (as a program says "no timeout") is past any `Instant`: the calls wait
/// without a deadline instead of overflowing.
fn timeouts_too_long_for_a_deadline_wait_without_one(driver: DriverKind) {
    let server = NatsServer::start();
    let mut client = Client::connect_with(options(&server, driver).operation_timeout(Duration::MAX)).expect("connect");
    let mut sub = client.subscribe("forever").expect("subscribe");
    client.publish("forever", "x").expect("publish");
    client.flush().expect("flush");
    client.round_trip().expect("round trip");
    let got = sub.next_message(Duration::MAX).expect("receive").expect("a message");
    assert_eq!(got.payload, "x");
    let err = client
        .request("nobody.home", "?", Duration::MAX)
        .expect_err("no responders");
    assert!(matches!(err, Error::NoResponders), "{err:?}");
}

/// A publish blocked at the high-water mark of a frozen server ends once the server is
/// thawed, long before its deadline: the waiting call sleeps in the driver's turn until
/// the driver reports the write that made room (`Activity::Sent`), and the flush of the
/// rest wakes on the write that empties the buffer. A wait that ended only at its
/// deadline would take `LONG` and fail with a timeout.
fn a_publish_blocked_at_high_water_wakes_on_the_thaw(driver: DriverKind) {
    let server = NatsServer::start();
    let opts = options(&server, driver)
        .operation_timeout(LONG)
        .outgoing_buffer_size(1 << 20);
    let (tx, rx) = mpsc::channel();
    let (go_tx, go_rx) = mpsc::channel::<()>();
    thread::spawn(move || {
        let mut client = Client::connect_with(opts).expect("connect to nats-server");
        client.round_trip().expect("round trip");
        let _ = tx.send(None);
        let _ = go_rx.recv();
        let payload = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
        let mut longest = Duration::ZERO;
        // 64 MiB: the socket buffers take a few MiB, the client 1 MiB more.
        let mut result = Ok(());
        for _ in 0..1024 {
            let start = Instant::now();
            result = client.publish("bulk", payload.clone());
            longest = longest.max(start.elapsed());
            if result.is_err() {
                break;
            }
        }
        if result.is_ok() {
            result = client.flush();
        }
        let _ = tx.send(Some((result, longest, Instant::now())));
    });
    let watch = |what: &str| {
        rx.recv_timeout(WATCHDOG).unwrap_or_else(|_| {
            server.thaw();
            panic!("{what} did not happen within {WATCHDOG:?}")
        })
    };
    assert!(watch("connecting").is_none());
    server.freeze();
    go_tx.send(()).expect("worker alive");
    thread::sleep(FROZEN_FOR);
    let thawed = Instant::now();
    server.thaw();
    let (result, longest, done) = watch("publishing and flushing").expect("the outcome");
    result.expect("every publish and the flush succeed once the server is back");
    // One publish waited through the freeze: the buffers did fill.
    assert!(
        longest >= FROZEN_FOR - Duration::from_millis(500),
        "no publish waited for the frozen server ({longest:?})"
    );
    let after = done.saturating_duration_since(thawed);
    assert!(
        after <= MARGIN + MARGIN,
        "done {after:?} after the thaw (a wait for the deadline takes {LONG:?})"
    );
}
