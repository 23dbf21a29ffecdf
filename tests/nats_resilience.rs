//! `monocoque::nats::Client` when the server misbehaves, against real `nats-server`
//! processes, on both drivers (every test runs as `<name>_uring` and `<name>_mio`):
//!
//! - keepalive: a frozen server (SIGSTOP) is detected as a stale connection after the
//!   configured unanswered `PING`s, and the client reconnects once it thaws; an idle
//!   healthy connection `PING`s every interval and stays up;
//! - the reconnect buffer: publishes made while disconnected are sent after the restart,
//!   in order, once each, and a publish past the bound fails with a typed error without
//!   losing what was buffered;
//! - lame-duck mode: the client reports it and ends up on the other server of the
//!   cluster with its subscription working and nothing delivered twice.
//!
//! Every wait is on a condition with a deadline. A missing `nats-server` fails the test.

mod support;

use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::nats::{
    Client, ClientOptions, ConnectionError, Error, Event, HeaderMap, LinkError, Message, ReconnectPolicy, Subscription,
};
use support::{NatsCluster, NatsConfig, NatsServer};

both_drivers! {
    frozen_server_is_a_stale_connection_then_reconnects => frozen_server_is_a_stale_connection_then_reconnects_uring, frozen_server_is_a_stale_connection_then_reconnects_mio;
    idle_connection_pings_every_interval_and_stays_up => idle_connection_pings_every_interval_and_stays_up_uring, idle_connection_pings_every_interval_and_stays_up_mio;
    publishes_while_disconnected_are_sent_after_the_restart => publishes_while_disconnected_are_sent_after_the_restart_uring, publishes_while_disconnected_are_sent_after_the_restart_mio;
    a_full_reconnect_buffer_refuses_and_keeps_what_it_holds => a_full_reconnect_buffer_refuses_and_keeps_what_it_holds_uring, a_full_reconnect_buffer_refuses_and_keeps_what_it_holds_mio;
    lame_duck_moves_the_client_to_the_other_server => lame_duck_moves_the_client_to_the_other_server_uring, lame_duck_moves_the_client_to_the_other_server_mio;
    publishes_past_the_reconnect_buffer_are_reported => publishes_past_the_reconnect_buffer_are_reported_uring, publishes_past_the_reconnect_buffer_are_reported_mio;
    a_publish_waiting_for_room_when_the_connection_dies_is_buffered => a_publish_waiting_for_room_when_the_connection_dies_is_buffered_uring, a_publish_waiting_for_room_when_the_connection_dies_is_buffered_mio;
    zero_timeout_polls_never_reconnect => zero_timeout_polls_never_reconnect_uring, zero_timeout_polls_never_reconnect_mio;
}

// ---- helpers ----

const WAIT: Duration = Duration::from_secs(5);

/// The keepalive interval of the keepalive tests: short, so a test takes a second.
const PING_INTERVAL: Duration = Duration::from_millis(200);

fn options(url: &str, driver: DriverKind) -> ClientOptions {
    ClientOptions::from_url(url).expect("valid URL").driver(driver)
}

/// Retries fast and often: a test's server is back within a second or two.
fn fast_reconnect() -> ReconnectPolicy {
    ReconnectPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(200),
        jitter: 0.5,
        max_attempts: Some(100),
    }
}

/// Waits up to `patience` for an event `wanted` accepts; returns it with every event seen
/// before it. Panics on timeout, naming what came instead.
fn wait_for_event(client: &mut Client, patience: Duration, wanted: impl Fn(&Event) -> bool) -> (Event, Vec<Event>) {
    let deadline = Instant::now() + patience;
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.next_event(left).expect("next_event") {
            Some(event) if wanted(&event) => return (event, before),
            Some(other) => before.push(other),
            None => panic!("no matching event within {patience:?}; got {before:?}"),
        }
    }
}

/// Takes every message that arrives within `quiet` of the previous one.
fn drain(sub: &mut Subscription, quiet: Duration) -> Vec<Message> {
    std::iter::from_fn(|| sub.next_message(quiet).expect("receive")).collect()
}

/// Gives up after three attempts, quickly: for calls made while the server is down.
fn three_attempts() -> ReconnectPolicy {
    ReconnectPolicy {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(50),
        jitter: 0.5,
        max_attempts: Some(3),
    }
}

/// Waits until `client` has noticed that its server went away (its next blocking call
/// would reconnect).
fn notice_loss(client: &mut Client) {
    let (event, _) = wait_for_event(client, WAIT, |e| matches!(e, Event::Disconnected(_)));
    assert_eq!(event, Event::Disconnected(ConnectionError::Closed));
    assert!(!client.is_connected());
}

/// Takes `n` messages, then checks that no more arrive; returns their payloads.
fn take_exactly(sub: &mut Subscription, n: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    while got.len() < n {
        match sub.next_message(WAIT).expect("receive") {
            Some(m) => got.push(m.payload.to_vec()),
            None => panic!("{} of {n} messages arrived: {got:?}", got.len()),
        }
    }
    let extra = drain(sub, Duration::from_millis(200));
    assert!(extra.is_empty(), "more than {n} messages: {extra:?}");
    got
}

/// `PUB <subject> <len>\r\n<payload>\r\n`: what a publish takes in the reconnect buffer.
fn frame_len(subject: &str, payload: &[u8]) -> usize {
    format!("PUB {subject} {}\r\n", payload.len()).len() + payload.len() + 2
}

/// Parses the sequence number a test put in a payload (`"<n>"`).
fn seq(payload: &[u8]) -> u64 {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.parse().ok())
        .expect("a sequence number")
}

/// A `size`-byte payload starting with sequence number `i` in 8 columns.
fn padded(i: u64, size: usize) -> Vec<u8> {
    let mut payload = format!("{i:>8}").into_bytes();
    payload.resize(size, b'.');
    payload
}

/// The sequence numbers of [`padded`] payloads, in arrival order.
fn padded_seqs(messages: &[Message]) -> Vec<u64> {
    messages
        .iter()
        .map(|m| {
            let text = std::str::from_utf8(&m.payload[..8]).expect("utf-8");
            text.trim().parse().expect("a sequence number")
        })
        .collect()
}

/// How many protocol lines of `kind` (`"<<- [PING]"`, `"->> [PONG]"`) a traced server
/// logged.
fn traced(server: &NatsServer, kind: &str) -> usize {
    server.log().lines().filter(|line| line.ends_with(kind)).count()
}

// ---- keepalive ----

fn frozen_server_is_a_stale_connection_then_reconnects(driver: DriverKind) {
    let server = NatsServer::start();
    let opts = options(&server.url(), driver)
        .ping_interval(PING_INTERVAL)
        .max_pings_out(2)
        .reconnect(fast_reconnect());
    let mut client = Client::connect_with(opts).expect("connect");
    let mut sub = client.subscribe("k.>").expect("subscribe");
    client.round_trip().expect("round trip");

    // A frozen server keeps the socket open and answers nothing: only keepalive notices.
    server.freeze();
    let frozen = Instant::now();
    let (event, before) = wait_for_event(&mut client, WAIT, |e| matches!(e, Event::Disconnected(_)));
    let detected = frozen.elapsed();
    server.thaw();
    assert_eq!(
        event,
        Event::Disconnected(ConnectionError::StaleConnection { pings_out: 2 }),
        "events before: {before:?}"
    );
    // Poisoned when a third PING is due with two unanswered: at least one full interval
    // after the freeze (the first unanswered PING may have left just before it), and
    // well within a few seconds.
    assert!(detected >= PING_INTERVAL - Duration::from_millis(20), "{detected:?}");
    assert!(
        detected < Duration::from_secs(3),
        "stale connection noticed after {detected:?}"
    );
    assert!(!client.is_connected());

    // Thawed, the next call reconnects; the subscription is back, once.
    client.publish("k.after", "1").expect("publish");
    client.round_trip().expect("round trip after the thaw");
    assert!(client.is_connected());
    assert_eq!(client.connections(), 2);
    assert_eq!(take_exactly(&mut sub, 1), [b"1"], "one message, once");
    let (event, _) = wait_for_event(&mut client, WAIT, |e| matches!(e, Event::Reconnected { .. }));
    assert_eq!(
        event,
        Event::Reconnected {
            server: server.addr.to_string()
        }
    );

    // Frozen while a call waits on the server: the call fails with the stale connection
    // (well before its own 5 s timeout), and the next one reconnects.
    server.freeze();
    let frozen = Instant::now();
    let err = client.round_trip().expect_err("no PONG from a frozen server");
    let detected = frozen.elapsed();
    server.thaw();
    assert!(
        matches!(
            err,
            Error::Connection(ConnectionError::StaleConnection { pings_out: 2 })
        ),
        "{err:?}"
    );
    assert!(detected < Duration::from_secs(3), "{detected:?}");
    client.round_trip().expect("round trip after the second thaw");
    assert_eq!(client.connections(), 3);
}

fn idle_connection_pings_every_interval_and_stays_up(driver: DriverKind) {
    let server = NatsServer::start_with(NatsConfig::new().trace());
    let opts = options(&server.url(), driver)
        .ping_interval(PING_INTERVAL)
        .max_pings_out(2)
        .reconnect(fast_reconnect());
    let mut client = Client::connect_with(opts).expect("connect");
    let mut sub = client.subscribe("idle").expect("subscribe");
    client.round_trip().expect("round trip");
    // The handshake's PING and the round trip's.
    let pings_before = traced(&server, "<<- [PING]");
    assert_eq!(pings_before, 2, "{}", server.log());

    // Idle for eight intervals: only keepalive traffic.
    let idle = Instant::now();
    let mut events = Vec::new();
    while idle.elapsed() < PING_INTERVAL * 8 {
        let left = (PING_INTERVAL * 8).saturating_sub(idle.elapsed());
        if let Some(event) = client.next_event(left).expect("next_event") {
            events.push(event);
        }
    }
    let elapsed = idle.elapsed();
    assert!(events.is_empty(), "no disconnect, no event: {events:?}");
    assert!(client.is_connected());
    assert_eq!(client.connections(), 1);

    // Still the same connection, and it works; the round trip's PONG also means the
    // server has logged every PING before it.
    client.publish("idle", "still here").expect("publish");
    client.round_trip().expect("round trip");
    let got = sub.next_message(WAIT).expect("receive").expect("a message");
    assert_eq!(got.payload, "still here");
    assert_eq!(client.connections(), 1);

    // A PING every interval: the first is due one interval in, each next one an interval
    // after the previous left, so at most one per interval (plus the round trip's), and
    // at least 4 in eight intervals even with late timers on a loaded machine.
    let pings = traced(&server, "<<- [PING]");
    let keepalives = pings - pings_before - 1;
    let intervals = (idle.elapsed().as_millis() / PING_INTERVAL.as_millis()) as usize;
    assert!(
        (4..=intervals).contains(&keepalives),
        "{keepalives} keepalive PINGs in {elapsed:?} idle"
    );
    // The server answered every one (its own PINGs to the client come every 2 minutes).
    assert_eq!(traced(&server, "->> [PONG]"), pings, "{}", server.log());
}

// ---- the reconnect buffer ----

fn publishes_while_disconnected_are_sent_after_the_restart(driver: DriverKind) {
    let mut server = NatsServer::start();
    let opts = options(&server.url(), driver).reconnect(three_attempts());
    let mut client = Client::connect_with(opts).expect("connect");
    let mut own = client.subscribe("buf.>").expect("subscribe");
    client.publish("buf.x", "before").expect("publish");
    client.round_trip().expect("round trip");
    assert_eq!(take_exactly(&mut own, 1), [b"before"]);

    // SIGKILL: the kernel closes the server's sockets.
    server.kill();
    notice_loss(&mut client);
    // Publishes while disconnected return at once, buffered: different sizes, one with
    // headers.
    let mut expected: Vec<Vec<u8>> = Vec::new();
    for i in 0..20usize {
        let payload = format!("{i}:{}", "d".repeat(i * 37)).into_bytes();
        client.publish("buf.x", payload.clone()).expect("buffered");
        expected.push(payload);
    }
    let mut headers = HeaderMap::new();
    headers.insert("Nats-Msg-Id", "while-down").expect("header");
    client
        .publish_with_headers("buf.h", &headers, "with headers")
        .expect("buffered with headers");
    expected.push(b"with headers".to_vec());
    assert!(!client.is_connected());

    // A blocking call while the server is down fails after the policy's attempts...
    let err = client.flush().expect_err("the server is down");
    assert!(
        matches!(err, Error::Link(LinkError::Reconnect { attempts: 3, .. })),
        "{err:?}"
    );
    // ... and loses nothing: publishing goes on into the buffer.
    client.publish("buf.x", "after the failed flush").expect("buffered");
    expected.push(b"after the failed flush".to_vec());

    server.restart();
    let mut watcher = Client::connect_with(options(&server.url(), driver)).expect("connect the watcher");
    let mut watched = watcher.subscribe("buf.>").expect("subscribe");
    watcher.round_trip().expect("round trip");

    // The next blocking call reconnects, resubscribes, then sends the buffer.
    client.flush().expect("reconnect and send");
    client.round_trip().expect("round trip");
    assert_eq!(client.connections(), 2);
    assert_eq!(
        take_exactly(&mut watched, expected.len()),
        expected,
        "in order, once each"
    );
    let own_got = take_exactly(&mut own, expected.len());
    assert_eq!(own_got, expected, "the resubscription got them too, once each");

    // Headers survived the buffer.
    client
        .publish_with_headers("buf.h", &headers, "connected")
        .expect("publish");
    client.round_trip().expect("round trip");
    let m = watched.next_message(WAIT).expect("receive").expect("a message");
    assert_eq!(m.payload, "connected");
    let (_, before) = wait_for_event(&mut client, WAIT, |e| matches!(e, Event::Reconnected { .. }));
    assert!(before.is_empty(), "{before:?}");
}

fn a_full_reconnect_buffer_refuses_and_keeps_what_it_holds(driver: DriverKind) {
    let mut server = NatsServer::start();
    let payloads: Vec<Vec<u8>> = (0..5u8).map(|i| vec![b'a' + i; 100]).collect();
    let small = b"z".to_vec();
    // Room for the five and the small one, exactly.
    let capacity = payloads.iter().map(|p| frame_len("buf.x", p)).sum::<usize>() + frame_len("buf.x", &small);
    let opts = options(&server.url(), driver)
        .reconnect(three_attempts())
        .reconnect_buffer_size(capacity);
    let mut client = Client::connect_with(opts).expect("connect");
    client.round_trip().expect("round trip");

    // SIGTERM: nats-server closes its clients itself.
    server.stop();
    notice_loss(&mut client);
    for p in &payloads {
        client.publish("buf.x", p.clone()).expect("buffered");
    }
    // A sixth 100-byte publish does not fit: a typed error, twice, nothing buffered.
    let big = frame_len("buf.x", &[0; 100]);
    for _ in 0..2 {
        match client.publish("buf.x", vec![b'!'; 100]) {
            Err(Error::ReconnectBufferFull {
                requested,
                available,
                capacity: c,
            }) => assert_eq!((requested, available, c), (big, frame_len("buf.x", &small), capacity)),
            other => panic!("expected ReconnectBufferFull, got {other:?}"),
        }
    }
    // What still fits is accepted; then the buffer is full to the byte.
    client.publish("buf.x", small.clone()).expect("fits exactly");
    let err = client.publish("buf.x", "").expect_err("full");
    assert!(
        matches!(err, Error::ReconnectBufferFull { available: 0, .. }),
        "{err:?}"
    );

    server.restart();
    let mut watcher = Client::connect_with(options(&server.url(), driver)).expect("connect the watcher");
    let mut watched = watcher.subscribe("buf.>").expect("subscribe");
    watcher.round_trip().expect("round trip");
    client.flush().expect("reconnect and send");
    client.round_trip().expect("round trip");

    let mut expected = payloads;
    expected.push(small);
    assert_eq!(take_exactly(&mut watched, expected.len()), expected);
    // Connected again, the bound no longer applies to publishes.
    client.publish("buf.x", vec![b'!'; 100]).expect("publish");
    client.round_trip().expect("round trip");
    assert_eq!(take_exactly(&mut watched, 1), [vec![b'!'; 100]]);
}

// ---- lame-duck mode ----

fn lame_duck_moves_the_client_to_the_other_server(driver: DriverKind) {
    // nats-server's shortest lame-duck duration is 30 s; the grace period before it
    // closes its clients (then, with one client, exits) can be short.
    let config = NatsConfig::new().raw("lame_duck_duration: \"30s\"\nlame_duck_grace_period: \"500ms\"");
    let cluster = NatsCluster::start(2, config);
    let (first, second) = (&cluster.servers[0], &cluster.servers[1]);
    // Only the first server is configured: the second is learned from INFO.
    let mut client =
        Client::connect_with(options(&first.url(), driver).reconnect(fast_reconnect())).expect("connect to the first");
    let mut sub = client.subscribe("ldm.>").expect("subscribe");
    client.round_trip().expect("round trip");
    assert_eq!(client.current_server().port, first.port());
    assert!(
        client.discovered_servers().iter().any(|s| s.port == second.port()),
        "{:?}",
        client.discovered_servers()
    );

    // A publisher on the second server; interest crosses the route shortly after the
    // SUB, so publish until the first message arrives.
    let mut publisher = Client::connect_with(options(&second.url(), driver)).expect("connect to the second");
    let mut received = Vec::new();
    let mut next = 0u64;
    let deadline = Instant::now() + WAIT;
    while received.is_empty() {
        assert!(Instant::now() < deadline, "no message crossed the route");
        publisher.publish("ldm.x", next.to_string()).expect("publish");
        publisher.round_trip().expect("round trip");
        next += 1;
        received.extend(
            drain(&mut sub, Duration::from_millis(50))
                .iter()
                .map(|m| seq(&m.payload)),
        );
    }

    first.lame_duck();
    let (_, before) = wait_for_event(&mut client, WAIT, |e| *e == Event::LameDuck);
    assert!(
        before.iter().all(|e| !matches!(e, Event::Disconnected(_))),
        "lame duck is announced before the server closes the connection: {before:?}"
    );

    // Keep publishing until the client, moved to the second server, receives again.
    let deadline = Instant::now() + Duration::from_secs(15);
    while client.connections() < 2 || client.current_server().port != second.port() || !received.contains(&(next - 1)) {
        assert!(
            Instant::now() < deadline,
            "no failover: on {:?}, {} connections, received {received:?}",
            client.current_server(),
            client.connections()
        );
        publisher.publish("ldm.x", next.to_string()).expect("publish");
        publisher.flush().expect("flush");
        next += 1;
        received.extend(
            drain(&mut sub, Duration::from_millis(50))
                .iter()
                .map(|m| seq(&m.payload)),
        );
    }
    assert!(
        received.windows(2).all(|w| w[0] < w[1]),
        "in order, nothing twice: {received:?}"
    );
    assert_eq!(client.connections(), 2);
    let mut events = Vec::new();
    while let Some(event) = client.next_event(Duration::ZERO).expect("next_event") {
        events.push(event);
    }
    assert!(events.iter().any(|e| matches!(e, Event::Disconnected(_))), "{events:?}");
    assert!(
        events.contains(&Event::Reconnected {
            server: second.addr.to_string()
        }),
        "{events:?}"
    );
    assert!(!events.contains(&Event::LameDuck), "reported once: {events:?}");

    // The subscription works on the second server: once it has the resubscription (the
    // message that ended the loop may have come through the first server just before it
    // closed), a publish there arrives once.
    client.round_trip().expect("round trip");
    assert_eq!(client.current_server().port, second.port());
    publisher.publish("ldm.done", "done").expect("publish");
    publisher.round_trip().expect("round trip");
    let mut tail = Vec::new();
    while tail.last().is_none_or(|m: &Message| m.payload != "done") {
        tail.push(sub.next_message(WAIT).expect("receive").expect("\"done\" arrives"));
    }
    tail.extend(drain(&mut sub, Duration::from_millis(200)));
    let done = tail.iter().filter(|m| m.payload == "done").count();
    assert_eq!(done, 1, "{tail:?}");
}

/// A connection lost with more unsent publishes than the reconnect buffer holds reports
/// how many it will not replay, and that count closes the books: every publish either
/// reached the server before the loss or is counted (or is the one frame the kernel had
/// taken part of, which the server discards with the connection).
fn publishes_past_the_reconnect_buffer_are_reported(driver: DriverKind) {
    const COUNT: u64 = 512;
    const SIZE: usize = 32 * 1024;
    let server = NatsServer::start();
    // The subscriber keeps the default keepalive: it must survive the freeze.
    let mut subscriber = Client::connect_with(options(&server.url(), driver)).expect("connect");
    let mut sub = subscriber.subscribe("bulk").expect("subscribe");
    subscriber.round_trip().expect("round trip");
    let opts = options(&server.url(), driver)
        .ping_interval(PING_INTERVAL)
        .max_pings_out(2)
        .reconnect_buffer_size(4096)
        .reconnect(fast_reconnect());
    let mut client = Client::connect_with(opts).expect("connect");
    client.round_trip().expect("round trip");

    // 16 MiB into a frozen server: the socket buffers take a few MiB, the rest waits in
    // the client when keepalive declares the connection stale.
    server.freeze();
    for i in 0..COUNT {
        client.publish("bulk", padded(i, SIZE)).expect("publish");
    }
    let (_, before) = wait_for_event(&mut client, WAIT, |e| matches!(e, Event::Disconnected(_)));
    assert!(before.is_empty(), "{before:?}");
    let (event, between) = wait_for_event(&mut client, WAIT, |e| matches!(e, Event::PublishesDropped { .. }));
    assert!(between.is_empty(), "reported right after the loss: {between:?}");
    let Event::PublishesDropped { count } = event else {
        unreachable!()
    };
    server.thaw();

    // What the kernel had taken reaches the subscriber, in order, from the first.
    let received = padded_seqs(&drain(&mut sub, Duration::from_millis(500)));
    assert_eq!(
        received,
        (0..received.len() as u64).collect::<Vec<_>>(),
        "in order, none skipped"
    );
    let accounted = received.len() as u64 + count as u64;
    assert!(
        count > 0 && count < COUNT as usize,
        "{count} dropped, {} received",
        received.len()
    );
    assert!(
        accounted == COUNT || accounted == COUNT - 1,
        "{} received + {count} reported dropped of {COUNT}",
        received.len()
    );
}

/// A publish waiting for room in the outgoing buffer (the server stopped reading) when
/// keepalive declares the connection dead does not block in a reconnect to the frozen
/// server: it goes to the reconnect buffer, and once that is full the publisher hears
/// so at once. Every publish kept is delivered after the thaw.
fn a_publish_waiting_for_room_when_the_connection_dies_is_buffered(driver: DriverKind) {
    const SIZE: usize = 32 * 1024;
    let server = NatsServer::start();
    let mut subscriber = Client::connect_with(options(&server.url(), driver)).expect("connect");
    let mut sub = subscriber.subscribe("room").expect("subscribe");
    subscriber.round_trip().expect("round trip");
    let opts = options(&server.url(), driver)
        .ping_interval(PING_INTERVAL)
        .max_pings_out(2)
        .outgoing_buffer_size(1 << 20)
        .reconnect_buffer_size(256 * 1024)
        .reconnect(fast_reconnect());
    let mut client = Client::connect_with(opts).expect("connect");
    client.round_trip().expect("round trip");

    server.freeze();
    let frozen = Instant::now();
    let mut accepted = 0u64;
    let refused = loop {
        match client.publish("room", padded(accepted, SIZE)) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
        assert!(
            frozen.elapsed() < Duration::from_secs(10),
            "{accepted} publishes and still no refusal"
        );
    };
    let waited = frozen.elapsed();
    assert!(
        matches!(refused, Error::ReconnectBufferFull { .. }),
        "the reconnect buffer fills: {refused:?}"
    );
    assert!(waited < Duration::from_secs(3), "no blocking reconnect: {waited:?}");
    // Both events are queued already: taking them does not reconnect (asking for one
    // more would, and the server is still frozen).
    let (event, before) = wait_for_event(&mut client, WAIT, |e| matches!(e, Event::PublishesDropped { .. }));
    assert_eq!(
        before,
        [Event::Disconnected(ConnectionError::StaleConnection { pings_out: 2 })]
    );
    let Event::PublishesDropped { count: dropped } = event else {
        unreachable!()
    };

    server.thaw();
    client.flush().expect("reconnects and replays");
    client.round_trip().expect("round trip");
    // Every accepted publish is delivered once, except the newest unsent ones reported
    // dropped at the loss and at most one frame the kernel had half taken. Order holds
    // per connection only: the old connection's backlog, read by the server after the
    // thaw, and the replay on the new one race through the server.
    let mut received = padded_seqs(&drain(&mut sub, Duration::from_millis(500)));
    let count = received.len();
    received.sort_unstable();
    received.dedup();
    assert_eq!(received.len(), count, "none twice");
    let kept = accepted - dropped as u64;
    let missing: Vec<u64> = (0..kept).filter(|i| received.binary_search(i).is_err()).collect();
    assert!(
        received.iter().all(|&i| i < kept) && missing.len() <= 1,
        "{count} received of the {kept} oldest kept ({accepted} accepted, {dropped} dropped); missing {missing:?}"
    );
}

/// `next_event` and `next_message` with a zero timeout are polls: with the server gone
/// they report the loss and return at once, leaving the reconnect to a call that waits.
fn zero_timeout_polls_never_reconnect(driver: DriverKind) {
    let mut server = NatsServer::start();
    let mut client = Client::connect_with(options(&server.url(), driver).reconnect(fast_reconnect())).expect("connect");
    let mut sub = client.subscribe("poll").expect("subscribe");
    client.round_trip().expect("round trip");
    server.kill();

    let started = Instant::now();
    let mut polls = 0u32;
    let disconnected = loop {
        let poll = Instant::now();
        let event = client.next_event(Duration::ZERO).expect("a poll does not fail");
        assert!(
            poll.elapsed() < Duration::from_millis(200),
            "a poll blocked for {:?}",
            poll.elapsed()
        );
        polls += 1;
        match event {
            Some(event @ Event::Disconnected(_)) => break event,
            Some(other) => panic!("unexpected {other:?}"),
            None => {
                assert!(started.elapsed() < WAIT, "the loss not seen in {polls} polls");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    assert_eq!(disconnected, Event::Disconnected(ConnectionError::Closed));
    for _ in 0..3 {
        let poll = Instant::now();
        assert_eq!(client.next_event(Duration::ZERO).expect("poll"), None);
        assert_eq!(sub.next_message(Duration::ZERO).expect("poll"), None);
        assert!(poll.elapsed() < Duration::from_millis(200), "{:?}", poll.elapsed());
    }
    assert_eq!(client.connections(), 1, "no reconnect was attempted");

    // A call that waits reconnects, and the subscription is back.
    server.restart();
    client.publish("poll", "back").expect("publish");
    client.round_trip().expect("reconnects");
    assert_eq!(client.connections(), 2);
    assert_eq!(take_exactly(&mut sub, 1), [b"back"]);
}
