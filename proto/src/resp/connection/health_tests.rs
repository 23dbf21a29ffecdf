//! The health check and the silence rule, on the virtual clock.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::fake_server::{FakeServer, ServerConfig};
use super::*;
use crate::chassis::sim::{LinkConfig, Pair};

type P = Pair<Connection, FakeServer>;

const STEPS: usize = 100_000;
const INTERVAL: Duration = Duration::from_millis(300);
const TIMEOUT: Duration = Duration::from_millis(500);

fn link() -> LinkConfig {
    LinkConfig {
        max_piece: 1 << 20,
        latency: Duration::from_millis(1),
        jitter: Duration::ZERO,
        partial_write_percent: 0,
    }
}

fn config(protocol: Protocol) -> ConnectionConfig {
    ConnectionConfig {
        protocol,
        health_check_interval: Some(INTERVAL),
        health_check_timeout: Some(TIMEOUT),
        ..ConnectionConfig::default()
    }
}

fn pair(config: ConnectionConfig) -> P {
    let now = Instant::now();
    let mut p = Pair::new(
        Connection::new(config, now),
        FakeServer::new(ServerConfig::default()),
        now,
        11,
        link(),
    );
    assert!(p.drive_until(STEPS, |p| p.a.is_connected()), "handshake");
    p
}

/// Runs the pair until virtual time `d` from now, or up to the next thing due after it
/// (health checks keep a connection busy forever, so it never settles by itself).
fn run_for(p: &mut P, d: Duration) {
    let end = p.now() + d;
    if !p.drive_until(STEPS, |p| p.now() >= end) {
        // Nothing left to do: let the time pass anyway.
        let rest = end - p.now();
        p.advance_clock(rest);
        p.drive_until(STEPS, |p| p.now() >= end);
    }
}

fn pings(p: &P) -> usize {
    p.events_b
        .iter()
        .filter(|args| args.first().is_some_and(|n| n.eq_ignore_ascii_case(b"PING")))
        .count()
}

/// Events other than the handshake's and the expected replies: nothing of the health
/// check may reach the application.
fn unexpected_events(p: &P) -> Vec<&Event> {
    p.events_a
        .iter()
        .filter(|e| !matches!(e, Event::Connected { .. } | Event::Reply { .. } | Event::Message { .. }))
        .collect()
}

fn reply_of(p: &P, id: RequestId) -> Option<&Event> {
    p.events_a.iter().find(|e| match e {
        Event::Reply { id: r, .. } | Event::Failed { id: r, .. } => *r == id,
        _ => false,
    })
}

fn send(p: &mut P, parts: &[&str]) -> RequestId {
    let now = p.now();
    let mut cmd = Cmd::new(parts[0]);
    for a in &parts[1..] {
        cmd.push(*a);
    }
    p.a.send_buffered(&cmd, now).expect("send")
}

#[test]
fn an_idle_connection_pings_and_swallows_the_pong_in_resp3_and_resp2() {
    for protocol in [Protocol::Resp3, Protocol::Resp2] {
        let mut p = pair(config(protocol));
        let idle_from = p.now();
        assert_eq!(
            p.a.poll_timeout(),
            Some(idle_from + INTERVAL),
            "{protocol:?}: timer armed"
        );
        run_for(&mut p, 4 * INTERVAL + INTERVAL / 2);
        assert_eq!(pings(&p), 4, "{protocol:?}: one PING per interval of silence");
        assert!(p.a.is_connected(), "{protocol:?}: {:?}", p.a.error());
        assert!(unexpected_events(&p).is_empty(), "{:?}", unexpected_events(&p));
        assert_eq!(p.a.pending(), 0);
        // Replies still go to the right requests after the pings.
        let get = send(&mut p, &["ECHO", "mine"]);
        run_for(&mut p, Duration::from_millis(10));
        assert_eq!(
            reply_of(&p, get),
            Some(&Event::Reply {
                id: get,
                value: Value::from("mine")
            })
        );
    }
}

#[test]
fn a_resp2_subscriber_pings_and_its_pong_array_is_no_message() {
    let mut p = pair(config(Protocol::Resp2));
    let sub = send(&mut p, &["SUBSCRIBE", "news"]);
    run_for(&mut p, Duration::from_millis(10));
    assert!(matches!(reply_of(&p, sub), Some(Event::Reply { .. })));
    assert!(p.a.subscriptions().has_channel(b"news"));
    run_for(&mut p, 3 * INTERVAL + INTERVAL / 2);
    // (`run_for` may overshoot by one jump of the clock: at least three.)
    assert!(pings(&p) >= 3, "{:?}", p.events_b);
    let now = p.now();
    p.b.publish("news", "after the pings", now);
    run_for(&mut p, Duration::from_millis(10));
    assert!(p.a.is_connected(), "{:?}", p.a.error());
    assert!(unexpected_events(&p).is_empty(), "{:?}", unexpected_events(&p));
    let messages: Vec<&Event> = p
        .events_a
        .iter()
        .filter(|e| matches!(e, Event::Message { .. }))
        .collect();
    assert_eq!(
        messages,
        [&Event::Message {
            kind: MessageKind::Channel,
            channel: Bytes::from_static(b"news"),
            payload: Bytes::from_static(b"after the pings"),
        }]
    );
}

#[test]
fn a_silent_server_fails_the_idle_connection_after_interval_plus_timeout() {
    let mut p = pair(config(Protocol::Resp3));
    let start = p.now();
    // The server answers nothing from now on (its replies are held far past the test).
    p.b.delay_next = Some(Duration::from_secs(3600));
    assert!(p.drive_until(STEPS, |p| p.a.is_closed()));
    let elapsed = p.now() - start;
    assert!(
        elapsed >= INTERVAL + TIMEOUT && elapsed <= INTERVAL + TIMEOUT + Duration::from_millis(5),
        "declared stale after {elapsed:?}"
    );
    assert_eq!(pings(&p), 1);
    assert!(matches!(p.a.error(), Some(ConnectionError::Stale { silent_for }) if *silent_for >= TIMEOUT));
    assert!(matches!(
        p.events_a.last(),
        Some(Event::Poisoned(ConnectionError::Stale { .. }))
    ));
    assert_eq!(p.a.poll_timeout(), None);
}

#[test]
fn a_request_owed_by_a_silent_server_fails_with_stale_even_without_pings() {
    let config = ConnectionConfig {
        health_check_interval: None,
        ..config(Protocol::Resp3)
    };
    let mut p = pair(config);
    // Long idle: the silence clock starts when the request is sent, not at the last
    // byte received.
    p.advance_clock(Duration::from_secs(60));
    assert_eq!(p.a.poll_timeout(), None, "nothing owed, no pings: no timer");
    p.b.delay_next = Some(Duration::from_secs(3600));
    let sent_at = p.now();
    let get = send(&mut p, &["GET", "k"]);
    assert!(p.a.poll_timeout().is_some_and(|t| t <= sent_at + TIMEOUT));
    assert!(p.drive_until(STEPS, |p| p.a.is_closed()));
    assert_eq!(p.now(), sent_at + TIMEOUT);
    assert!(matches!(
        reply_of(&p, get),
        Some(Event::Failed {
            error: RequestError::Poisoned(ConnectionError::Stale { .. }),
            ..
        })
    ));
    assert_eq!(pings(&p), 0);
}

#[test]
fn a_slow_reply_within_the_timeout_is_not_stale() {
    let mut p = pair(config(Protocol::Resp3));
    p.b.delay_next = Some(TIMEOUT - Duration::from_millis(50));
    let get = send(&mut p, &["ECHO", "late"]);
    run_for(&mut p, TIMEOUT + Duration::from_millis(50));
    assert!(p.a.is_connected(), "{:?}", p.a.error());
    assert!(matches!(reply_of(&p, get), Some(Event::Reply { .. })));
}

#[test]
fn a_blocking_command_may_stay_silent() {
    let mut p = pair(config(Protocol::Resp3));
    // The fake server does not know BLPOP: its error reply stands for the value it
    // would pop, ten timeouts later.
    p.b.delay_next = Some(10 * TIMEOUT);
    let blpop = send(&mut p, &["BLPOP", "queue", "0"]);
    assert_eq!(p.a.poll_timeout(), None, "no silence rule behind a blocking command");
    run_for(&mut p, 11 * TIMEOUT);
    assert!(p.a.is_connected(), "{:?}", p.a.error());
    assert!(matches!(reply_of(&p, blpop), Some(Event::Reply { .. })));
    assert_eq!(pings(&p), 1, "idle again after the reply: the health check resumes");
}

#[test]
fn a_request_sent_behind_a_health_ping_keeps_its_own_deadline() {
    let config = ConnectionConfig {
        request_timeout: Some(Duration::from_millis(50)),
        health_check_timeout: None,
        ..config(Protocol::Resp3)
    };
    let mut p = pair(config);
    // The PONG (and everything after it) comes 200 ms late.
    p.b.delay_next = Some(Duration::from_millis(200));
    assert!(p.drive_until(STEPS, |p| pings(p) == 1));
    let sent_at = p.now();
    let get = send(&mut p, &["GET", "k"]);
    assert_eq!(p.a.poll_timeout(), Some(sent_at + Duration::from_millis(50)));
    assert!(p.drive_until(STEPS, |p| reply_of(p, get).is_some()));
    assert_eq!(
        reply_of(&p, get),
        Some(&Event::Failed {
            id: get,
            error: RequestError::Timeout
        })
    );
    assert_eq!(p.now(), sent_at + Duration::from_millis(50));
    run_for(&mut p, Duration::from_millis(300));
    assert!(p.a.is_connected(), "the late PONG and GET reply were consumed");
    assert!(unexpected_events(&p).iter().all(|e| matches!(e, Event::Failed { .. })));
}

#[test]
fn no_ping_inside_an_open_multi() {
    let mut p = pair(config(Protocol::Resp3));
    send(&mut p, &["MULTI"]);
    run_for(&mut p, 5 * INTERVAL);
    assert_eq!(pings(&p), 0, "a PING would have joined the user's transaction");
    send(&mut p, &["EXEC"]);
    run_for(&mut p, INTERVAL + INTERVAL / 2);
    assert_eq!(pings(&p), 1);
}

#[test]
fn outgoing_bytes_taken_by_the_kernel_count_as_progress() {
    let now = Instant::now();
    let config = ConnectionConfig {
        protocol: Protocol::Resp2,
        health_check_timeout: Some(TIMEOUT),
        ..ConnectionConfig::default()
    };
    let mut conn = Connection::new(config, now);
    let value = vec![b'x'; 10_000];
    conn.send_buffered(&Cmd::new("SET").arg("k").arg(&value[..]), now)
        .expect("send");
    let probe = TIMEOUT / 4;
    assert_eq!(
        conn.poll_timeout(),
        Some(now + probe),
        "bytes wait: progress is watched"
    );
    // The kernel takes some: an upload still moving.
    let arena = conn.poll_transmit().expect("bytes to send");
    arena.advance(1000);
    let at = now + probe;
    conn.handle_timeout(at).expect("still alive");
    assert_eq!(conn.poll_timeout(), Some(at + probe));
    // Then nothing more moves and nothing comes back: stale a timeout after the last
    // progress, whatever the probes in between.
    let mut t = at;
    while t < at + TIMEOUT {
        t = conn.poll_timeout().expect("timer");
        if let Err(e) = conn.handle_timeout(t) {
            assert_eq!(e, ConnectionError::Stale { silent_for: TIMEOUT });
            break;
        }
    }
    assert_eq!(t, at + TIMEOUT);
    assert!(conn.is_closed());
}
