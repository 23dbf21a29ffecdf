//! `monocoque::nats::Client` against real `nats-server` processes, on both drivers: every
//! test runs as `<name>_uring` and `<name>_mio`.
//!
//! Each test starts its own server (or three-server cluster) on free loopback ports with
//! a generated config file (`support::NatsServer`). A missing `nats-server` fails the
//! test.

mod support;

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::nats::{
    Auth, Client, ClientOptions, Error, Event, HeaderMap, LinkError, ReconnectPolicy, ServerErrorKind,
    SlowConsumerPolicy, SubscriptionPolicy,
};
use monocoque::proto::nats::client::KeyPair;
use support::nats_jwt::{NKey, Role as KeyRole};
use support::{NatsCluster, NatsConfig, NatsServer};

both_drivers! {
    pub_sub_in_order => pub_sub_in_order_uring, pub_sub_in_order_mio;
    queue_group_splits_without_duplicates => queue_group_splits_without_duplicates_uring, queue_group_splits_without_duplicates_mio;
    headers_round_trip => headers_round_trip_uring, headers_round_trip_mio;
    request_reply_and_no_responders => request_reply_and_no_responders_uring, request_reply_and_no_responders_mio;
    auth_token => auth_token_uring, auth_token_mio;
    auth_user_password => auth_user_password_uring, auth_user_password_mio;
    auth_nkey => auth_nkey_uring, auth_nkey_mio;
    verbose_mode => verbose_mode_uring, verbose_mode_mio;
    pedantic_errors_do_not_kill_the_connection => pedantic_errors_do_not_kill_the_connection_uring, pedantic_errors_do_not_kill_the_connection_mio;
    max_payload_is_refused_before_sending => max_payload_is_refused_before_sending_uring, max_payload_is_refused_before_sending_mio;
    unsubscribe_with_max => unsubscribe_with_max_uring, unsubscribe_with_max_mio;
    server_restart_resubscribes_without_duplicates => server_restart_resubscribes_without_duplicates_uring, server_restart_resubscribes_without_duplicates_mio;
    cluster_failover_through_connect_urls => cluster_failover_through_connect_urls_uring, cluster_failover_through_connect_urls_mio;
    slow_consumer_drops_and_reports => slow_consumer_drops_and_reports_uring, slow_consumer_drops_and_reports_mio;
    slow_consumer_backpressure_loses_nothing => slow_consumer_backpressure_loses_nothing_uring, slow_consumer_backpressure_loses_nothing_mio;
    batches_with_backpressure_lose_nothing => batches_with_backpressure_lose_nothing_uring, batches_with_backpressure_lose_nothing_mio;
    publishes_leave_past_the_flush_threshold => publishes_leave_past_the_flush_threshold_uring, publishes_leave_past_the_flush_threshold_mio;
    tcp_connect_into_a_full_backlog_times_out => tcp_connect_into_a_full_backlog_times_out_uring, tcp_connect_into_a_full_backlog_times_out_mio;
    a_host_name_connects => a_host_name_connects_uring, a_host_name_connects_mio;
}

// ---- helpers ----

const WAIT: Duration = Duration::from_secs(5);

fn options(url: &str, driver: DriverKind) -> ClientOptions {
    ClientOptions::from_url(url).expect("valid URL").driver(driver)
}

fn connect(server: &NatsServer, driver: DriverKind) -> Client {
    Client::connect_with(options(&server.url(), driver)).expect("connect to nats-server")
}

/// A user seed (`SU...`) for 32 raw key bytes, encoded by the test-side nkeys encoder
/// (`support::nats_jwt`, checked against the Go library's output), not by the client.
fn user_seed(raw: [u8; 32]) -> String {
    NKey::from_raw(KeyRole::User, raw).seed()
}

/// Parses the sequence number a test put in a payload (`"<n>"` or `"<n>:..."`).
fn seq(payload: &[u8]) -> u64 {
    let text = std::str::from_utf8(payload).expect("utf-8 payload");
    text.split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a sequence number")
}

/// Runs a responder on its own client and thread: answers `count` requests on
/// `subject` with the payload upper-cased; returns once subscribed.
fn spawn_responder(url: String, driver: DriverKind, subject: &'static str, count: usize) -> thread::JoinHandle<()> {
    let (ready_tx, ready_rx) = mpsc::channel();
    let handle = thread::spawn(move || {
        let mut client = Client::connect_with(options(&url, driver)).expect("responder connects");
        let mut sub = client.subscribe(subject).expect("responder subscribes");
        client.round_trip().expect("responder round trip");
        ready_tx.send(()).expect("signal ready");
        for _ in 0..count {
            let m = sub.next_message(WAIT).expect("responder receives").expect("a request");
            let reply = String::from_utf8_lossy(m.reply.as_deref().expect("a reply subject")).into_owned();
            client
                .publish(&reply, m.payload.to_ascii_uppercase())
                .expect("responder replies");
            client.flush().expect("responder flushes");
        }
    });
    ready_rx.recv_timeout(WAIT).expect("responder ready");
    handle
}

// ---- tests ----

fn pub_sub_in_order(driver: DriverKind) {
    let server = NatsServer::start();
    let mut client = connect(&server, driver);
    let mut all = client.subscribe("orders.>").expect("subscribe");
    let mut only_eu = client.subscribe("orders.eu.*").expect("subscribe");
    client.round_trip().expect("round trip");
    let info = client.server_info().expect("INFO");
    assert_eq!(info.port, server.port());

    // A second client publishes, so this is not only echo.
    let mut publisher = connect(&server, driver);
    for i in 0..2000u64 {
        let region = if i % 2 == 0 { "eu" } else { "us" };
        let body = format!("{i}:{}", "x".repeat((i % 300) as usize));
        publisher
            .publish(&format!("orders.{region}.new"), body)
            .expect("publish");
    }
    publisher
        .publish_with_reply("orders.eu.new", "replies.here", "2000")
        .expect("publish with reply");
    publisher.flush().expect("flush");

    for i in 0..=2000u64 {
        let m = all.next_message(WAIT).expect("receive").expect("a message in time");
        assert_eq!(seq(&m.payload), i, "in order, none missing");
        if i < 2000 {
            assert_eq!(m.payload.len(), format!("{i}:").len() + (i % 300) as usize);
            assert_eq!(m.reply, None);
        } else {
            assert_eq!(m.reply.as_deref(), Some(&b"replies.here"[..]));
        }
    }
    for i in (0..=2000u64).step_by(2) {
        let m = only_eu.next_message(WAIT).expect("receive").expect("an eu message");
        assert_eq!(seq(&m.payload), i);
        assert_eq!(&m.subject[..], b"orders.eu.new");
    }
    assert_eq!(all.next_message(Duration::from_millis(100)).expect("receive"), None);
    assert_eq!(only_eu.next_message(Duration::ZERO).expect("receive"), None);
}

fn queue_group_splits_without_duplicates(driver: DriverKind) {
    let server = NatsServer::start();
    let mut a = connect(&server, driver);
    let mut b = connect(&server, driver);
    let mut a1 = a.queue_subscribe("jobs", "workers").expect("qsub");
    let mut a2 = a.queue_subscribe("jobs", "workers").expect("qsub");
    let mut b1 = b.queue_subscribe("jobs", "workers").expect("qsub");
    let mut watcher = b.subscribe("jobs").expect("plain sub");
    a.round_trip().expect("round trip");
    b.round_trip().expect("round trip");

    let mut publisher = connect(&server, driver);
    const N: u64 = 600;
    for i in 0..N {
        publisher.publish("jobs", i.to_string()).expect("publish");
    }
    publisher.round_trip().expect("round trip");

    let mut seen = HashSet::new();
    let mut per_member = [0u64; 3];
    let deadline = Instant::now() + WAIT * 2;
    while (seen.len() as u64) < N && Instant::now() < deadline {
        for (k, sub) in [&mut a1, &mut a2, &mut b1].into_iter().enumerate() {
            while let Some(m) = sub.next_message(Duration::from_millis(10)).expect("receive") {
                assert!(
                    seen.insert(seq(&m.payload)),
                    "message {} delivered twice",
                    seq(&m.payload)
                );
                per_member[k] += 1;
            }
        }
    }
    assert_eq!(seen.len() as u64, N, "every job delivered once: {per_member:?}");
    assert!(
        per_member.iter().all(|&n| n > 0),
        "split across members: {per_member:?}"
    );
    for i in 0..N {
        let m = watcher
            .next_message(WAIT)
            .expect("receive")
            .expect("the plain subscriber gets all");
        assert_eq!(seq(&m.payload), i);
    }
    for sub in [&mut a1, &mut a2, &mut b1] {
        assert_eq!(sub.next_message(Duration::from_millis(50)).expect("receive"), None);
    }
}

fn headers_round_trip(driver: DriverKind) {
    let server = NatsServer::start();
    let mut client = connect(&server, driver);
    let mut sub = client.subscribe("h.>").expect("subscribe");
    client.round_trip().expect("round trip");
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "abc-1").expect("header");
    headers.append("X-Trace", "one").expect("header");
    headers.append("X-Trace", "two").expect("header");
    client
        .publish_with_headers("h.1", &headers, "body")
        .expect("publish with headers");
    client.publish("h.2", "no headers").expect("publish");
    client.flush().expect("flush");

    let m = sub.next_message(WAIT).expect("receive").expect("a message");
    let got = m.headers.expect("headers arrive");
    assert_eq!(got.get("nats-msg-id").as_deref(), Some(&b"abc-1"[..]));
    let traces: Vec<_> = got.get_all(b"X-Trace").collect();
    assert_eq!(traces, ["one", "two"]);
    assert_eq!(got.status(), None);
    assert_eq!(m.payload, "body");
    let m = sub.next_message(WAIT).expect("receive").expect("a message");
    assert_eq!((m.headers, &m.payload[..]), (None, &b"no headers"[..]));

    // Empty payload with headers.
    client.publish_with_headers("h.3", &headers, "").expect("publish");
    client.flush().expect("flush");
    let m = sub.next_message(WAIT).expect("receive").expect("a message");
    assert!(m.payload.is_empty() && m.headers.is_some());
}

fn request_reply_and_no_responders(driver: DriverKind) {
    let server = NatsServer::start();
    let responder = spawn_responder(server.url(), driver, "svc.upper", 100);
    let mut client = connect(&server, driver);
    for i in 0..100 {
        let reply = client
            .request("svc.upper", format!("hello {i}"), WAIT)
            .expect("a reply");
        assert_eq!(reply.payload, format!("HELLO {i}"));
    }
    responder.join().expect("responder thread");

    let started = Instant::now();
    let err = client.request("svc.nobody", "x", WAIT).unwrap_err();
    assert!(matches!(err, Error::NoResponders), "{err:?}");
    assert!(
        started.elapsed() < WAIT / 2,
        "no-responders is an answer, not a timeout"
    );

    // A subscriber that never answers: the request times out, the connection stays.
    let mut silent = client.subscribe("svc.silent").expect("subscribe");
    client.round_trip().expect("round trip");
    let started = Instant::now();
    let err = client
        .request("svc.silent", "x", Duration::from_millis(300))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout), "{err:?}");
    assert!(started.elapsed() >= Duration::from_millis(290));
    assert!(silent.next_message(WAIT).expect("receive").is_some());
    assert!(client.is_connected());
    client.round_trip().expect("still usable");
}

fn auth_token(driver: DriverKind) {
    let server = NatsServer::start_with(NatsConfig::new().token("s3cr3t"));
    let url = format!("nats://s3cr3t@127.0.0.1:{}", server.port());
    let mut client = Client::connect_with(options(&url, driver)).expect("token in the URL");
    client.round_trip().expect("round trip");
    let mut client = Client::connect_with(options(&server.url(), driver).auth(Auth::Token("s3cr3t".into())))
        .expect("token in the options");
    let mut sub = client.subscribe("t").expect("subscribe");
    client.publish("t", "ok").expect("publish");
    client.flush().expect("flush");
    assert!(sub.next_message(WAIT).expect("receive").is_some());

    for wrong in [
        options(&format!("nats://wrong@127.0.0.1:{}", server.port()), driver),
        options(&server.url(), driver),
    ] {
        let err = Client::connect_with(wrong).unwrap_err();
        assert!(matches!(err, Error::Rejected(_)) && err.is_auth_failure(), "{err:?}");
    }
}

fn auth_user_password(driver: DriverKind) {
    let server = NatsServer::start_with(NatsConfig::new().user("alice", "p@ss w0rd").user("bob", "b"));
    let url = format!("nats://alice:p%40ss%20w0rd@127.0.0.1:{}", server.port());
    let mut client = Client::connect_with(options(&url, driver)).expect("user and password in the URL");
    client.round_trip().expect("round trip");
    let by_options = options(&server.url(), driver).auth(Auth::UserPassword {
        user: "bob".into(),
        password: "b".into(),
    });
    Client::connect_with(by_options)
        .expect("user and password in the options")
        .round_trip()
        .expect("round trip");
    let url = format!("nats://alice:wrong@127.0.0.1:{}", server.port());
    let err = Client::connect_with(options(&url, driver)).unwrap_err();
    assert!(err.is_auth_failure(), "{err:?}");
    let err = Client::connect_with(options(&server.url(), driver)).unwrap_err();
    assert!(err.is_auth_failure(), "{err:?}");
}

fn auth_nkey(driver: DriverKind) {
    let seed = user_seed([7u8; 32]);
    let public = KeyPair::from_seed(&seed).expect("a valid seed").public_key();
    assert!(public.starts_with('U'), "{public}");
    let server = NatsServer::start_with(NatsConfig::new().nkey_user(&public));
    let mut client = Client::connect_with(options(&server.url(), driver).auth(Auth::NKey { seed: seed.clone() }))
        .expect("the server checks our nonce signature");
    let mut sub = client.subscribe("n").expect("subscribe");
    client.publish("n", "signed in").expect("publish");
    client.flush().expect("flush");
    assert_eq!(
        sub.next_message(WAIT).expect("receive").map(|m| m.payload),
        Some("signed in".into())
    );

    let other = user_seed([9u8; 32]);
    let err = Client::connect_with(options(&server.url(), driver).auth(Auth::NKey { seed: other })).unwrap_err();
    assert!(err.is_auth_failure(), "another key is refused: {err:?}");
    let err = Client::connect_with(options(&server.url(), driver)).unwrap_err();
    assert!(err.is_auth_failure(), "no key is refused: {err:?}");
    let err = Client::connect_with(options(&server.url(), driver).auth(Auth::NKey { seed: public })).unwrap_err();
    assert!(matches!(err, Error::NKey(_)), "a public key is not a seed: {err:?}");
}

fn verbose_mode(driver: DriverKind) {
    let server = NatsServer::start_with(NatsConfig::new().trace());
    let mut client = Client::connect_with(options(&server.url(), driver).verbose(true)).expect("connect verbose");
    let mut sub = client.subscribe("v").expect("subscribe");
    for i in 0..100u64 {
        client.publish("v", i.to_string()).expect("publish");
    }
    client.round_trip().expect("round trip through the +OKs");
    for i in 0..100u64 {
        let m = sub.next_message(WAIT).expect("receive").expect("a message");
        assert_eq!(seq(&m.payload), i);
    }
    assert!(server.log().contains("\"verbose\":true"), "CONNECT asked for verbose");
    // CONNECT, SUB and 100 PUBs, each acknowledged (the trace writes `+OK` as `[OK]`).
    let acks = server.log().matches("->> [OK]").count();
    assert!(acks >= 102, "the server acknowledged every op: {acks}");
}

fn pedantic_errors_do_not_kill_the_connection(driver: DriverKind) {
    let server = NatsServer::start();
    let mut client = Client::connect_with(options(&server.url(), driver).pedantic(true)).expect("connect pedantic");
    let mut sub = client.subscribe("p.ok").expect("subscribe");
    client
        .publish("p.*", "wildcards cannot be published to")
        .expect("buffered");
    client.round_trip().expect("round trip");
    let mut server_errors = Vec::new();
    while let Some(event) = client.next_event(Duration::from_millis(200)).expect("event") {
        if let Event::ServerError(e) = event {
            server_errors.push(e);
        }
    }
    assert!(
        server_errors
            .iter()
            .any(|e| e.kind() == ServerErrorKind::InvalidPublishSubject),
        "{server_errors:?}"
    );
    assert!(client.is_connected());
    assert_eq!(client.connections(), 1, "no reconnect was needed");
    client.publish("p.ok", "fine").expect("publish");
    client.flush().expect("flush");
    assert!(sub.next_message(WAIT).expect("receive").is_some());

    // Not pedantic: the same publish is accepted silently (and reaches nobody).
    let mut relaxed = connect(&server, driver);
    relaxed.publish("p.*", "x").expect("publish");
    relaxed.round_trip().expect("round trip");
    assert_eq!(relaxed.next_event(Duration::from_millis(100)).expect("event"), None);
}

fn max_payload_is_refused_before_sending(driver: DriverKind) {
    let server = NatsServer::start_with(NatsConfig::new().max_payload(1024));
    let mut client = connect(&server, driver);
    assert_eq!(client.server_info().map(|i| i.max_payload), Some(1024));
    let mut sub = client.subscribe("big").expect("subscribe");
    let err = client.publish("big", vec![b'x'; 1025]).unwrap_err();
    assert!(matches!(err, Error::Refused(_)) && err.is_max_payload(), "{err:?}");
    let mut headers = HeaderMap::new();
    headers.insert("K", "v").expect("header");
    let err = client
        .publish_with_headers("big", &headers, vec![b'x'; 1020])
        .unwrap_err();
    assert!(err.is_max_payload(), "headers count toward the limit: {err:?}");
    client.publish("big", vec![b'y'; 1024]).expect("exactly the limit");
    client.flush().expect("flush");
    let m = sub.next_message(WAIT).expect("receive").expect("a message");
    assert_eq!(m.payload.len(), 1024);
    assert_eq!(client.connections(), 1);
    assert!(client.is_connected());
}

fn unsubscribe_with_max(driver: DriverKind) {
    let server = NatsServer::start();
    let mut client = connect(&server, driver);
    let mut sub = client.subscribe("u").expect("subscribe");
    sub.unsubscribe_after(3).expect("unsubscribe after 3");
    let mut gone = client.subscribe("u").expect("subscribe");
    client.unsubscribe(&gone, None).expect("unsubscribe now");
    client.round_trip().expect("round trip");
    for i in 0..10u64 {
        client.publish("u", i.to_string()).expect("publish");
    }
    client.round_trip().expect("round trip");
    for i in 0..3u64 {
        assert_eq!(
            seq(&sub.next_message(WAIT).expect("receive").expect("message").payload),
            i
        );
    }
    let err = sub.next_message(Duration::from_millis(200)).unwrap_err();
    assert!(matches!(err, Error::SubscriptionClosed), "{err:?}");
    assert!(matches!(
        gone.next_message(Duration::ZERO),
        Err(Error::SubscriptionClosed)
    ));
    // A dropped handle unsubscribes.
    let dropped = client.subscribe("d").expect("subscribe");
    drop(dropped);
    client.round_trip().expect("round trip");
    let mut other = connect(&server, driver);
    let err = other.request("d", "anyone?", WAIT).unwrap_err();
    assert!(matches!(err, Error::NoResponders), "{err:?}");
}

fn server_restart_resubscribes_without_duplicates(driver: DriverKind) {
    let server = NatsServer::start();
    let opts = options(&server.url(), driver).reconnect(ReconnectPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        jitter: 0.5,
        max_attempts: Some(200),
    });
    let mut client = Client::connect_with(opts).expect("connect");
    let mut sub = client.subscribe("r.>").expect("subscribe");
    let mut queue = client.queue_subscribe("r.q", "g").expect("queue subscribe");
    client.round_trip().expect("round trip");
    for i in 0..50u64 {
        client.publish("r.x", i.to_string()).expect("publish");
    }
    client.flush().expect("flush");
    let mut received = Vec::new();
    for _ in 0..50 {
        received.push(seq(&sub.next_message(WAIT).expect("receive").expect("message").payload));
    }

    // Kill it, bring it back 300 ms later from another thread: the client finds the
    // connection gone on its next call and retries with backoff meanwhile.
    let mut server = server;
    server.kill();
    let restarter = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        server.restart();
        server
    });
    let mut next = 50u64;
    let deadline = Instant::now() + Duration::from_secs(20);
    // Publish until messages flow again (those published into the dead socket may be
    // lost: at most once).
    while received.len() < 60 && Instant::now() < deadline {
        match client.publish("r.x", next.to_string()).and_then(|()| client.flush()) {
            Ok(()) => next += 1,
            Err(e) => panic!("the client should reconnect on its own: {e}"),
        }
        while let Some(m) = sub.next_message(Duration::from_millis(50)).expect("receive") {
            received.push(seq(&m.payload));
        }
    }
    let server = restarter.join().expect("restarter thread");
    assert!(received.len() >= 60, "messages flow after the restart: {received:?}");
    let unique: BTreeSet<u64> = received.iter().copied().collect();
    assert_eq!(unique.len(), received.len(), "nothing delivered twice: {received:?}");
    assert!(received.windows(2).all(|w| w[0] < w[1]), "in order: {received:?}");
    assert!(client.connections() >= 2, "it reconnected");

    let mut events = Vec::new();
    while let Some(e) = client.next_event(Duration::ZERO).expect("event") {
        events.push(e);
    }
    assert!(events.iter().any(|e| matches!(e, Event::Disconnected(_))), "{events:?}");
    assert!(
        events.iter().any(|e| matches!(e, Event::Reconnected { .. })),
        "{events:?}"
    );

    // The queue subscription came back too, once.
    client.publish("r.q", "after").expect("publish");
    client.round_trip().expect("round trip");
    assert_eq!(
        queue.next_message(WAIT).expect("receive").map(|m| m.payload),
        Some("after".into())
    );
    assert_eq!(queue.next_message(Duration::from_millis(100)).expect("receive"), None);
    // `r.>` got "after" too, once.
    let mut after = 0;
    while let Some(m) = sub.next_message(Duration::from_millis(100)).expect("receive") {
        if m.payload == "after" {
            after += 1;
        }
    }
    assert_eq!(after, 1);
    drop(server);
}

fn cluster_failover_through_connect_urls(driver: DriverKind) {
    let mut cluster = NatsCluster::start(3, NatsConfig::new());
    let first = cluster.servers[0].url();
    // Only the first server's URL: the others are learned from INFO.
    let mut client = Client::connect_with(options(&first, driver).reconnect(ReconnectPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        jitter: 0.5,
        max_attempts: Some(100),
    }))
    .expect("connect to the first server");
    let mut sub = client.subscribe("c.>").expect("subscribe");
    client.round_trip().expect("round trip");
    let discovered: Vec<u16> = client.discovered_servers().iter().map(|s| s.port).collect();
    for other in &cluster.servers[1..] {
        assert!(discovered.contains(&other.port()), "learned {discovered:?}");
    }
    assert_eq!(client.current_server().port, cluster.servers[0].port());

    // A publisher on the third server. The subscription's interest reaches it over the
    // cluster's routes a little after the subscriber's round trip to the first server
    // (a publish before that goes nowhere): publish until one arrives, then take the
    // ones still on their way, so that none is counted below.
    let mut publisher = Client::connect_with(options(&cluster.servers[2].url(), driver)).expect("connect");
    let deadline = Instant::now() + WAIT;
    let mut before = None;
    while before.is_none() && Instant::now() < deadline {
        publisher.publish("c.before", "0").expect("publish");
        publisher.round_trip().expect("round trip");
        before = sub.next_message(Duration::from_millis(50)).expect("receive");
    }
    assert_eq!(before.map(|m| m.payload), Some("0".into()));
    while let Some(m) = sub.next_message(Duration::from_millis(100)).expect("receive") {
        assert_eq!(m.payload, "0", "only the publishes before the failover so far");
    }

    cluster.servers[0].kill();
    // Keep publishing until the subscriber, failed over, receives again (interest
    // crosses the routes a little after the resubscription).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut got = Vec::new();
    let mut n = 1u64;
    while got.is_empty() && Instant::now() < deadline {
        publisher.publish("c.after", n.to_string()).expect("publish");
        publisher.flush().expect("flush");
        n += 1;
        while let Some(m) = sub
            .next_message(Duration::from_millis(100))
            .expect("failover, not an error")
        {
            got.push(seq(&m.payload));
        }
    }
    assert!(!got.is_empty(), "the subscriber receives through another server");
    let now_on = client.current_server().port;
    assert_ne!(now_on, cluster.servers[0].port());
    assert!(cluster.servers[1..].iter().any(|s| s.port() == now_on));
    assert_eq!(client.connections(), 2);
    let unique: BTreeSet<u64> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "nothing twice: {got:?}");
}

fn slow_consumer_drops_and_reports(driver: DriverKind) {
    let server = NatsServer::start();
    let mut client = connect(&server, driver);
    let policy = SubscriptionPolicy {
        max_messages: 100,
        max_bytes: 1 << 20,
        on_full: SlowConsumerPolicy::DropNew,
    };
    let mut slow = client.subscribe_with("s", None, policy).expect("subscribe");
    let mut fast = client.subscribe("s").expect("subscribe");
    client.round_trip().expect("round trip");
    let mut publisher = connect(&server, driver);
    for i in 0..1000u64 {
        publisher
            .publish("s", format!("{i}:{}", "p".repeat(100)))
            .expect("publish");
    }
    publisher.round_trip().expect("round trip");
    // Take the fast subscription's messages (this reads the socket) without touching
    // the slow one.
    for i in 0..1000u64 {
        assert_eq!(
            seq(&fast.next_message(WAIT).expect("receive").expect("message").payload),
            i
        );
    }
    let (messages, bytes) = slow.pending().expect("pending");
    assert_eq!(messages, 100, "bounded");
    assert!(bytes <= 100 * 110, "{bytes}");
    assert_eq!(slow.dropped(), 900);
    let mut reported = 0;
    while let Some(event) = client.next_event(Duration::ZERO).expect("event") {
        if let Event::SlowConsumer { sid, dropped } = event {
            assert_eq!(&sid, slow.sid());
            reported += dropped;
        }
    }
    assert_eq!(reported, 900);
    for i in 0..100u64 {
        assert_eq!(
            seq(&slow.next_message(WAIT).expect("receive").expect("message").payload),
            i
        );
    }
    assert_eq!(slow.next_message(Duration::from_millis(50)).expect("receive"), None);
    assert!(client.is_connected());
}

fn slow_consumer_backpressure_loses_nothing(driver: DriverKind) {
    let server = NatsServer::start();
    let mut client = connect(&server, driver);
    let policy = SubscriptionPolicy {
        max_messages: 100,
        max_bytes: 1 << 20,
        on_full: SlowConsumerPolicy::Backpressure,
    };
    let mut sub = client.subscribe_with("b", None, policy).expect("subscribe");
    client.round_trip().expect("round trip");
    let mut publisher = connect(&server, driver);
    const N: u64 = 5000;
    for i in 0..N {
        publisher
            .publish("b", format!("{i}:{}", "q".repeat(200)))
            .expect("publish");
    }
    publisher.round_trip().expect("round trip");
    // Let the client read for a while without taking messages: it stops at the limit.
    let _ = client.next_event(Duration::from_millis(300)).expect("event");
    let (messages, _) = sub.pending().expect("pending");
    assert!(messages <= 100, "reading stopped at the limit: {messages}");
    assert!(messages > 0);
    for i in 0..N {
        let m = sub.next_message(WAIT).expect("receive").expect("nothing lost");
        assert_eq!(seq(&m.payload), i);
        if i % 500 == 0 {
            assert!(sub.pending().expect("pending").0 <= 100);
        }
    }
    assert_eq!(sub.dropped(), 0);
    assert!(client.is_connected());
    assert_eq!(client.connections(), 1);
}

/// `next_messages` hands over what `next_message` would, in batches: every message, in
/// order, each batch within `max` and the subscription's own bound, the stalled socket
/// read again after each batch; nothing once the queue is empty and nothing more comes.
fn batches_with_backpressure_lose_nothing(driver: DriverKind) {
    let server = NatsServer::start();
    let mut client = connect(&server, driver);
    let policy = SubscriptionPolicy {
        max_messages: 100,
        max_bytes: 1 << 20,
        on_full: SlowConsumerPolicy::Backpressure,
    };
    let mut sub = client.subscribe_with("b", None, policy).expect("subscribe");
    client.round_trip().expect("round trip");
    let mut publisher = connect(&server, driver);
    const N: u64 = 5000;
    for i in 0..N {
        publisher
            .publish("b", format!("{i}:{}", "q".repeat(200)))
            .expect("publish");
    }
    publisher.round_trip().expect("round trip");
    // Let the client read for a while without taking messages: it stops at the limit.
    let _ = client.next_event(Duration::from_millis(300)).expect("event");
    assert!(sub.pending().expect("pending").0 <= 100);
    let mut batch = VecDeque::new();
    assert_eq!(sub.next_messages(&mut batch, 0, WAIT).expect("max 0"), 0);
    let (mut next, mut batches) = (0, 0);
    while next < N {
        let n = sub.next_messages(&mut batch, 64, WAIT).expect("receive");
        assert!(
            n > 0 && n <= 64 && n == batch.len(),
            "{n} taken, {} handed over",
            batch.len()
        );
        for m in batch.drain(..) {
            assert_eq!(seq(&m.payload), next, "in order, nothing lost or twice");
            next += 1;
        }
        batches += 1;
    }
    assert!(batches >= N / 64, "{batches} batches for {N} messages of at most 64");
    let quiet = sub.next_messages(&mut batch, 64, Duration::from_millis(100));
    assert_eq!(quiet.expect("nothing more"), 0);
    assert!(batch.is_empty());
    assert_eq!(sub.dropped(), 0);
    assert!(client.is_connected());
    assert_eq!(client.connections(), 1);
}

/// A publishing loop that never flushes still sends: each publish that takes the buffer
/// past `flush_threshold` hands it to the kernel, so everything up to the last such
/// publish reaches a subscriber; the tail waits for the flush.
fn publishes_leave_past_the_flush_threshold(driver: DriverKind) {
    const THRESHOLD: usize = 1024;
    const COUNT: u64 = 100;
    let server = NatsServer::start();
    let mut subscriber = connect(&server, driver);
    let mut sub = subscriber.subscribe("stream.data").expect("subscribe");
    subscriber.round_trip().expect("round trip");

    let options = options(&server.url(), driver).flush_threshold(THRESHOLD);
    let mut publisher = Client::connect_with(options).expect("connect to nats-server");
    // Every frame is `PUB stream.data 100\r\n` + 100 bytes + `\r\n`: 123 bytes, so the
    // 9th publish crosses 1024 bytes and each later crossing comes within 9 more.
    let frame = "PUB stream.data 100\r\n".len() + 100 + 2;
    let mut buffered = 0usize;
    let mut sent_without_flush = 0u64;
    for i in 0..COUNT {
        publisher.publish("stream.data", format!("{i:0>100}")).expect("publish");
        buffered += frame;
        if buffered >= THRESHOLD {
            buffered = 0;
            sent_without_flush = i + 1;
        }
    }
    assert!(
        sent_without_flush >= COUNT - 9,
        "the model crosses the threshold every 9 frames"
    );
    for i in 0..sent_without_flush {
        let m = sub
            .next_message(WAIT)
            .expect("receive")
            .unwrap_or_else(|| panic!("message {i} left without a flush"));
        assert_eq!(m.payload, format!("{i:0>100}").as_bytes(), "in order, none missing");
    }
    publisher.flush().expect("flush");
    for i in sent_without_flush..COUNT {
        let m = sub
            .next_message(WAIT)
            .expect("receive")
            .expect("the tail after the flush");
        assert_eq!(m.payload, format!("{i:0>100}").as_bytes());
    }
    assert_eq!(sub.next_message(Duration::from_millis(100)).expect("receive"), None);
}

// ---- connecting ----

/// A listener whose accept queue is full (backlog 0, filled by connects nobody
/// accepts): the kernel drops further SYNs, so a connect to it hangs for minutes.
/// Returns the listener and the fillers, to keep alive while the test runs.
fn full_backlog() -> (socket2::Socket, Vec<std::net::TcpStream>, std::net::SocketAddr) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into())
        .unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
            Ok(stream) => fillers.push(stream),
            Err(_) => break,
        }
    }
    (sock, fillers, addr)
}

fn tcp_connect_into_a_full_backlog_times_out(driver: DriverKind) {
    let (_listener, _fillers, addr) = full_backlog();
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let result = Client::connect_with(options(&format!("nats://{addr}"), driver).connect_timeout(timeout));
    let waited = started.elapsed();
    assert!(
        matches!(&result, Err(Error::Link(LinkError::ConnectTimeout { timeout: t, .. })) if *t == timeout),
        "{result:?}"
    );
    assert!(
        waited >= timeout && waited < timeout + Duration::from_secs(5),
        "waited {waited:?}"
    );
}

fn a_host_name_connects(driver: DriverKind) {
    let server = NatsServer::start();
    let url = format!("nats://localhost:{}", server.port());
    let mut c = Client::connect_with(options(&url, driver)).expect("connect through localhost");
    c.publish("greet", "hi").unwrap();
    c.flush().unwrap();
}
