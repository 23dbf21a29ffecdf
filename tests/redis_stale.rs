//! Stale connections are detected and replaced, and reconnecting never outlasts the
//! caller's deadline, against a real redis-server frozen with SIGSTOP (or killed).
//!
//! Every test runs its clients on a worker thread (a driver stays on the thread that
//! made it) under a watchdog: a hang fails the test, and a frozen server is thawed.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::redis::{cmd, Client, ClientOptions, Error, Event, LinkError, Protocol, ReconnectPolicy};
use monocoque_proto::resp::ConnectionError;
use support::{Frozen, RedisServer};

both_drivers! {
    frozen_idle_server_is_declared_lost_and_replaced => frozen_idle_server_is_declared_lost_and_replaced_uring, frozen_idle_server_is_declared_lost_and_replaced_mio;
    pipeline_frozen_mid_stream_resolves_every_request => pipeline_frozen_mid_stream_resolves_every_request_uring, pipeline_frozen_mid_stream_resolves_every_request_mio;
    reconnect_stops_at_the_callers_deadline_and_resumes => reconnect_stops_at_the_callers_deadline_and_resumes_uring, reconnect_stops_at_the_callers_deadline_and_resumes_mio;
    handshake_longer_than_each_wait_still_completes => handshake_longer_than_each_wait_still_completes_uring, handshake_longer_than_each_wait_still_completes_mio;
}

const PASSWORD: &str = "s3cret";
const INTERVAL: Duration = Duration::from_millis(300);
const SILENCE: Duration = Duration::from_millis(500);
/// Timer ticks plus a loaded 2-core machine.
const MARGIN: Duration = Duration::from_secs(2);

/// Runs `f` on its own thread; fails the test if it has not returned within `limit`,
/// sending SIGCONT to `thaw` first so that no stopped server outlives the test.
fn within<T: Send + 'static>(limit: Duration, thaw: Option<u32>, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let worker = thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(out) => out,
        Err(mpsc::RecvTimeoutError::Disconnected) => match worker.join() {
            Err(panic) => std::panic::resume_unwind(panic),
            Ok(()) => panic!("the worker ended without a result"),
        },
        Err(mpsc::RecvTimeoutError::Timeout) => {
            if let Some(pid) = thaw {
                // SAFETY: kill(2) on the server's pid; no memory is involved.
                unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) };
            }
            panic!("the test did not return within {limit:?}")
        }
    }
}

fn options(server: &RedisServer, driver: DriverKind) -> ClientOptions {
    ClientOptions::new(server.addr.ip().to_string(), server.addr.port()).driver(driver)
}

/// The server freezes while the clients are idle: each notices within the health
/// check's interval plus timeout, a request on a frozen server fails as stale instead of
/// waiting out its response timeout, and after SIGCONT every client is back on a new
/// connection with AUTH, SELECT, subscriptions (channels and patterns, RESP3 and RESP2
/// subscriber mode) and tracking restored.
fn frozen_idle_server_is_declared_lost_and_replaced(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let base = options(&server, driver)
        .database(3)
        .health_check_interval(Some(INTERVAL))
        .health_check_timeout(Some(SILENCE))
        .response_timeout(Some(Duration::from_secs(5)))
        .connect_timeout(Duration::from_secs(2))
        .reconnect(ReconnectPolicy {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(500),
            jitter: 0.0,
            max_attempts: None,
        });
    let pid = server.pid();
    within(Duration::from_secs(90), Some(pid), move || {
        let _server = server;
        // The publisher (connected before the password is set, it stays
        // authenticated) never checks health: it just waits out the freeze.
        let mut admin = Client::connect_with(base.clone().health_check_interval(None).health_check_timeout(None))
            .expect("connect admin");
        admin
            .query(&cmd("CONFIG").arg("SET").arg("requirepass").arg(PASSWORD))
            .expect("requirepass");
        let base = base.auth(None, PASSWORD);
        let mut client = Client::connect_with(base.clone()).expect("connect");
        let mut sub2 = Client::connect_with(base.clone().protocol(Protocol::Resp2)).expect("connect RESP2");
        let mut busy = Client::connect_with(base).expect("connect busy");
        client.set("k", "in db 3").expect("set");
        client.subscribe(&["news"]).expect("subscribe");
        client.psubscribe(&["n*"]).expect("psubscribe");
        client.enable_tracking().expect("tracking");
        assert_eq!(client.get("k").expect("get").as_deref(), Some(&b"in db 3"[..]));
        sub2.subscribe(&["news"]).expect("subscribe RESP2");

        // Healthy but idle: the pings are answered and consumed, nothing reaches the
        // application, nothing reconnects (RESP3, and RESP2 subscriber mode's
        // `["pong", ""]`).
        let quiet_until = Instant::now() + 4 * INTERVAL;
        while Instant::now() < quiet_until {
            for c in [&mut client, &mut sub2] {
                let event = c.next_event(Duration::from_millis(50)).expect("idle");
                assert_eq!(event, None, "health checks stay internal");
            }
        }
        assert_eq!((client.connections(), sub2.connections()), (1, 1));

        let frozen = Frozen::stop(pid);
        let frozen_at = Instant::now();
        // A request owed by the frozen server fails as stale after the silence bound,
        // not after its 5 s response timeout.
        let owed = busy.get("k");
        let owed_took = frozen_at.elapsed();
        assert!(
            matches!(owed, Err(Error::Connection(ConnectionError::Stale { .. }))),
            "{owed:?}"
        );
        assert!(owed_took <= SILENCE + MARGIN, "the stale request took {owed_took:?}");
        eprintln!("{driver:?}: a request on the frozen server failed as stale after {owed_took:?}");
        // The idle clients notice by themselves while they wait for events.
        let mut lost = [None, None];
        while lost.iter().any(Option::is_none) && frozen_at.elapsed() < Duration::from_secs(20) {
            for (i, c) in [&mut client, &mut sub2].into_iter().enumerate() {
                if lost[i].is_none() {
                    // While frozen, the reconnect attempts inside the wait fail; the
                    // round goes on (no attempt limit), so the wait reports no error.
                    let event = c.next_event(Duration::from_millis(50)).expect("waiting");
                    assert_eq!(event, None);
                    if !c.is_connected() {
                        lost[i] = Some(frozen_at.elapsed());
                    }
                }
            }
        }
        for (name, at) in ["RESP3 client", "RESP2 subscriber"].iter().zip(lost) {
            let at = at.unwrap_or_else(|| panic!("{name}: never declared the frozen server lost"));
            assert!(at <= INTERVAL + SILENCE + MARGIN, "{name}: lost after {at:?}");
            eprintln!("{driver:?}: {name} declared the frozen server lost after {at:?}");
        }
        drop(frozen);

        // The next call reconnects: AUTH and SELECT replayed.
        assert_eq!(
            client.get("k").expect("get after the thaw").as_deref(),
            Some(&b"in db 3"[..])
        );
        assert!(client.connections() >= 2, "a new connection");
        let info: String = client.query_as(&cmd("CLIENT").arg("INFO")).expect("CLIENT INFO");
        assert!(info.contains(" db=3 "), "{info}");
        assert!(busy.get("k").expect("busy after the thaw").is_some());
        // The RESP2 subscriber reconnects in its wait; PING (allowed in subscriber mode)
        // comes after its restored SUBSCRIBE, so the subscription is in place after it.
        let deadline = Instant::now() + Duration::from_secs(20);
        while !sub2.is_connected() && Instant::now() < deadline {
            sub2.next_event(Duration::from_millis(100)).expect("waiting");
        }
        assert!(sub2.is_connected(), "the RESP2 subscriber reconnected");
        sub2.query(&cmd("PING")).expect("PING in subscriber mode");
        assert!(sub2.connections() >= 2);

        // Subscriptions restored: the channel and the pattern on the RESP3 client, the
        // channel on the RESP2 one.
        let receivers = admin.publish("news", "after the thaw").expect("publish");
        assert_eq!(receivers, 3, "news, n* and the RESP2 subscriber's news");
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < 2 && Instant::now() < deadline {
            if let Some(m) = client.next_message(Duration::from_millis(100)).expect("message") {
                got.push((m.pattern().cloned(), m.payload));
            }
        }
        got.sort();
        assert_eq!(
            got,
            [
                (None, "after the thaw".into()),
                (Some("n*".into()), "after the thaw".into())
            ]
        );
        let m = sub2.next_message(Duration::from_secs(5)).expect("RESP2 message");
        assert_eq!(m.map(|m| m.payload), Some("after the thaw".into()));

        // Tracking restored: the reconnect said to drop everything, and a read key's
        // change is reported again.
        let mut events = Vec::new();
        while let Some(e) = client.next_event(Duration::ZERO).expect("events") {
            events.push(e);
        }
        assert!(events.contains(&Event::Reconnected), "{events:?}");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Invalidate(i) if i.keys.is_none())),
            "{events:?}"
        );
        client.get("k").expect("tracked read");
        admin.set("k", "changed").expect("set");
        let inv = client.next_invalidation(Duration::from_secs(5)).expect("invalidation");
        assert_eq!(inv.and_then(|i| i.keys), Some(vec!["k".into()]));
    });
}

/// 100,000 SETs in one flush; the server freezes while it works through them (a
/// `DEBUG SLEEP` in the middle makes sure it is mid-stream). `flush` returns by the
/// response timeout with exactly 100,000 typed outcomes, the connection is declared
/// stale rather than left to time out request by request, and after SIGCONT the client
/// works again.
fn pipeline_frozen_mid_stream_resolves_every_request(driver: DriverKind) {
    const N: usize = 100_000;
    const TIMEOUT: Duration = Duration::from_secs(4);
    let server = RedisServer::start(&[]);
    let pid = server.pid();
    let options = options(&server, driver)
        .health_check_interval(Some(INTERVAL))
        .health_check_timeout(Some(Duration::from_secs(1)))
        .response_timeout(Some(TIMEOUT))
        .connect_timeout(Duration::from_secs(1));
    within(Duration::from_secs(90), Some(pid), move || {
        let _server = server;
        let mut client = Client::connect_with(options).expect("connect");
        client.set("warm", "up").expect("set");
        for i in 0..N / 2 {
            client.set_buffered(format!("k{i}"), "v").expect("buffer");
        }
        client
            .send_buffered(&cmd("DEBUG").arg("SLEEP").arg("0.5"))
            .expect("buffer DEBUG SLEEP");
        for i in N / 2 + 1..N {
            client.set_buffered(format!("k{i}"), "v").expect("buffer");
        }
        let start = Instant::now();
        let freezer = thread::spawn(move || {
            thread::sleep(Duration::from_millis(250));
            Frozen::stop(pid)
        });
        let outcomes = client.flush().expect("flush");
        let took = start.elapsed();
        let frozen = freezer.join().expect("freezer");
        assert_eq!(outcomes.len(), N);
        let typed = |o: &Result<_, Error>| {
            matches!(
                o,
                Ok(_)
                    | Err(Error::Timeout
                        | Error::Connection(ConnectionError::Stale { .. })
                        | Error::Link(LinkError::Reconnect { .. } | LinkError::ConnectTimeout { .. }))
            )
        };
        assert!(outcomes.iter().all(typed), "{:?}", outcomes.iter().find(|o| !typed(o)));
        let stale = outcomes
            .iter()
            .filter(|o| matches!(o, Err(Error::Connection(ConnectionError::Stale { .. }))))
            .count();
        assert!(stale > 0, "the frozen connection was declared stale");
        assert!(took <= TIMEOUT + MARGIN, "flush took {took:?}");
        let ok = outcomes.iter().filter(|o| o.is_ok()).count();
        eprintln!(
            "{driver:?}: flush returned after {took:?}: {ok} ok, {stale} stale, {} other errors",
            N - ok - stale
        );
        drop(frozen);
        client.set("after", "thaw").expect("set after the thaw");
        assert_eq!(client.get("after").expect("get").as_deref(), Some(&b"thaw"[..]));
        assert!(client.connections() >= 2);
    });
}

/// The server is gone for good and the reconnect policy waits long between attempts: a
/// call with a 1 s response timeout fails by its deadline with the reconnect's error
/// instead of running the whole policy, and the next call goes on with the same round
/// (its attempt count grows) instead of starting over. Once the server is back, calls
/// succeed again.
fn reconnect_stops_at_the_callers_deadline_and_resumes(driver: DriverKind) {
    const TIMEOUT: Duration = Duration::from_secs(1);
    let mut server = RedisServer::start(&[]);
    let options = options(&server, driver)
        .response_timeout(Some(TIMEOUT))
        .reconnect(ReconnectPolicy {
            initial: Duration::from_millis(1500),
            max: Duration::from_secs(60),
            jitter: 0.0,
            max_attempts: Some(10),
        });
    within(Duration::from_secs(60), None, move || {
        let mut client = Client::connect_with(options).expect("connect");
        client.set("k", "v").expect("set");
        server.kill();
        thread::sleep(Duration::from_millis(200));

        // Attempt 1 at once (refused), attempt 2 not before 1.5 s: past the deadline.
        let start = Instant::now();
        let first = client.get("k");
        let took = start.elapsed();
        assert!(took <= TIMEOUT + MARGIN, "the first call took {took:?}");
        eprintln!("{driver:?}: first call failed after {took:?}");
        match &first {
            Err(Error::Link(LinkError::Reconnect { attempts: 1, last })) => {
                assert!(matches!(**last, Error::Link(LinkError::Connect { .. })), "{last:?}")
            }
            other => panic!("first call: {other:?}"),
        }
        // The same round goes on: attempt 2 comes 1.5 s after attempt 1, within this
        // call's second (a new round would make attempt 1 again).
        let start = Instant::now();
        let second = client.get("k");
        let took = start.elapsed();
        assert!(took <= TIMEOUT + MARGIN, "the second call took {took:?}");
        eprintln!("{driver:?}: second call failed after {took:?}");
        assert!(
            matches!(&second, Err(Error::Link(LinkError::Reconnect { attempts: 2, .. }))),
            "second call: {second:?}"
        );

        // Back: a later call reconnects once the backoff allows it.
        server.restart(&[]);
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            match client.set("k", "again") {
                Ok(()) => break,
                Err(e) => last = Some(e),
            }
        }
        assert!(client.is_connected(), "no reconnect within 30 s: {last:?}");
        assert_eq!(client.get("k").expect("get").as_deref(), Some(&b"again"[..]));
        assert_eq!(client.connections(), 2);
    });
}

/// A TCP proxy to `upstream` on a free loopback port that holds every chunk `delay`
/// before passing it on, both ways: a distant server. Returns the port.
fn slow_proxy(upstream: SocketAddr, delay: Duration) -> u16 {
    fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        thread::sleep(delay);
                        if to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        });
    }
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let port = listener.local_addr().expect("proxy address").port();
    thread::spawn(move || {
        for down in listener.incoming() {
            let Ok(down) = down else { break };
            let Ok(up) = TcpStream::connect(upstream) else { continue };
            let (Ok(down2), Ok(up2)) = (down.try_clone(), up.try_clone()) else {
                continue;
            };
            pipe(down, up, delay);
            pipe(up2, down2, delay);
        }
    });
    port
}

/// Through a proxy adding 150 ms each way, a handshake takes over 300 ms. A subscriber
/// whose connection is killed waits for events 50 ms at a time: each wait must leave
/// the handshake under way for the next one instead of abandoning it, so the client
/// gets back on, resubscribed, within a few seconds.
fn handshake_longer_than_each_wait_still_completes(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let proxy = slow_proxy(server.addr, Duration::from_millis(150));
    let direct = options(&server, driver);
    let slow = ClientOptions::new("127.0.0.1", proxy)
        .driver(driver)
        .connect_timeout(Duration::from_secs(5))
        .reconnect(ReconnectPolicy {
            initial: Duration::from_millis(20),
            max: Duration::from_millis(200),
            jitter: 0.0,
            max_attempts: None,
        });
    within(Duration::from_secs(60), None, move || {
        let _server = server;
        let mut admin = Client::connect_with(direct).expect("connect directly");
        let mut client = Client::connect_with(slow).expect("connect through the proxy");
        client.subscribe(&["news"]).expect("subscribe");
        let id = client.client_id().expect("client id");
        let killed: i64 = admin
            .query_as(&cmd("CLIENT").arg("KILL").arg("ID").arg(id))
            .expect("CLIENT KILL");
        assert_eq!(killed, 1);
        let start = Instant::now();
        let mut reconnected = false;
        while !reconnected && start.elapsed() < Duration::from_secs(10) {
            // A wait that runs out mid-handshake returns `Ok(None)`.
            match client.next_event(Duration::from_millis(50)).expect("waiting") {
                Some(Event::Reconnected) => reconnected = true,
                Some(other) => panic!("unexpected event {other:?}"),
                None => {}
            }
        }
        let took = start.elapsed();
        assert!(reconnected, "not back after {took:?}");
        eprintln!("{driver:?}: back after {took:?} of 50 ms waits");
        assert!(client.is_connected());
        assert_eq!(client.connections(), 2);
        // The restored SUBSCRIBE went out after the handshake; a PING behind it means it
        // ran.
        client.query(&cmd("PING")).expect("PING");
        assert_eq!(admin.publish("news", "back").expect("publish"), 1);
        let m = client.next_message(Duration::from_secs(5)).expect("message");
        assert_eq!(m.map(|m| m.payload), Some("back".into()));
    });
}
