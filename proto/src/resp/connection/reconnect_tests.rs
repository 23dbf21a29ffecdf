//! RESP2 subscriber mode, `MULTI` tracking and the hand-over to a new connection
//! ([`Connection::take_reconnect_state`], [`Connection::resume`]): on bytes, and
//! against the fake server over the simulated link, on virtual time.

use std::time::Instant;

use bytes::Bytes;
use proptest::prelude::*;

use super::fake_server::{FakeServer, ServerConfig};
use super::*;
use crate::chassis::sim::{LinkConfig, Pair};

type P = Pair<Connection, FakeServer>;

fn cmd(parts: &[&str]) -> Cmd {
    let mut c = Cmd::new(parts[0]);
    for p in &parts[1..] {
        c.push(*p);
    }
    c
}

fn resp2() -> ConnectionConfig {
    ConnectionConfig {
        protocol: Protocol::Resp2,
        ..ConnectionConfig::default()
    }
}

fn mode_error(name: &str) -> SendError {
    SendError::SubscriberMode {
        command: Bytes::copy_from_slice(name.as_bytes()),
    }
}

fn refused(name: &str) -> Result<(), SendError> {
    Err(mode_error(name))
}

/// What the connection has for the kernel, taken.
fn sent(conn: &mut Connection) -> Vec<u8> {
    let Some(arena) = conn.poll_transmit() else {
        return Vec::new();
    };
    let bytes = arena.to_vec();
    arena.advance(bytes.len());
    bytes
}

fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// A RESP2 connection (connected at once) subscribed to `channels`, confirmed.
fn subscribed_resp2(channels: &[&str], now: Instant) -> Connection {
    let mut conn = Connection::new(resp2(), now);
    let mut parts = vec!["SUBSCRIBE"];
    parts.extend_from_slice(channels);
    conn.send_buffered(&cmd(&parts), now).unwrap();
    sent(&mut conn);
    for (i, channel) in channels.iter().enumerate() {
        let frame = format!(
            "*3\r\n$9\r\nsubscribe\r\n${}\r\n{channel}\r\n:{}\r\n",
            channel.len(),
            i + 1
        );
        conn.handle_input(Bytes::from(frame), now).unwrap();
    }
    events(&mut conn);
    conn
}

fn pair_of(conn: Connection, now: Instant) -> P {
    let link = LinkConfig::default();
    Pair::new(conn, FakeServer::new(ServerConfig::default()), now, 11, link)
}

fn settle(p: &mut P) {
    assert!(p.drive(1_000_000).is_some(), "the simulation did not settle");
}

fn server_log(p: &P) -> Vec<String> {
    p.events_b
        .iter()
        .map(|args| {
            args.iter()
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

// ---- RESP2 subscriber mode ----

#[test]
fn resp2_subscriber_mode_refuses_other_commands_from_the_subscribe_on() {
    let now = Instant::now();
    let mut conn = Connection::new(resp2(), now);
    assert_eq!(conn.admits(b"GET"), Ok(()));
    conn.send_buffered(&cmd(&["SUBSCRIBE", "ch"]), now).unwrap();
    assert_eq!(sent(&mut conn), b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n");
    // On its way, not confirmed yet: already in subscriber mode.
    assert_eq!(conn.send_buffered(&cmd(&["GET", "k"]), now), Err(mode_error("GET")));
    assert_eq!(conn.send_args(&[b"set", b"k", b"v"], now), Err(mode_error("set")));
    assert_eq!(
        conn.send_transaction(&[cmd(&["INCR", "n"])], now),
        Err(mode_error("MULTI"))
    );
    assert!(sent(&mut conn).is_empty(), "nothing refused was queued");
    assert_eq!(conn.pending(), 1);
    for name in SUBSCRIBER_MODE_COMMANDS {
        assert_eq!(conn.admits(name), Ok(()));
        assert_eq!(conn.admits(&name.to_ascii_lowercase()), Ok(()));
    }
    assert!(conn.send_args(&[b"ping"], now).is_ok());
    conn.handle_input(Bytes::from_static(b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n"), now)
        .unwrap();
    assert_eq!(conn.admits(b"GET"), refused("GET"));
    // Everything unsubscribed: out of subscriber mode.
    conn.send_buffered(&cmd(&["UNSUBSCRIBE"]), now).unwrap();
    conn.handle_input(Bytes::from_static(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"), now)
        .unwrap();
    assert_eq!(
        conn.admits(b"GET"),
        refused("GET"),
        "the unsubscribe is not confirmed yet"
    );
    conn.handle_input(
        Bytes::from_static(b"*3\r\n$11\r\nunsubscribe\r\n$2\r\nch\r\n:0\r\n"),
        now,
    )
    .unwrap();
    assert_eq!(conn.admits(b"GET"), Ok(()));
    assert!(conn.send_buffered(&cmd(&["GET", "k"]), now).is_ok());
}

#[test]
fn a_refused_subscribe_leaves_subscriber_mode() {
    let now = Instant::now();
    let mut conn = Connection::new(resp2(), now);
    conn.send_buffered(&cmd(&["SUBSCRIBE", "ch"]), now).unwrap();
    assert_eq!(conn.admits(b"GET"), refused("GET"));
    conn.handle_input(Bytes::from_static(b"-NOPERM no channel\r\n"), now)
        .unwrap();
    assert_eq!(conn.admits(b"GET"), Ok(()));
}

#[test]
fn resp3_has_no_subscriber_mode() {
    let mut p = pair_of(
        Connection::new(ConnectionConfig::default(), Instant::now()),
        Instant::now(),
    );
    let now = p.now();
    p.a.send_buffered(&cmd(&["SUBSCRIBE", "ch"]), now).unwrap();
    let get = p.a.send_buffered(&cmd(&["SET", "k", "v"]), now).unwrap();
    settle(&mut p);
    assert!(p.a.subscriptions().has_channel(b"ch"));
    assert_eq!(p.a.admits(b"GET"), Ok(()));
    assert!(p.events_a.contains(&Event::Reply {
        id: get,
        value: Value::SimpleString("OK".into())
    }));
}

// ---- MULTI ----

#[test]
fn multi_is_tracked_until_exec_discard_or_reset() {
    let now = Instant::now();
    let mut conn = Connection::new(resp2(), now);
    assert!(!conn.in_multi());
    conn.send_args(&[b"multi"], now).unwrap();
    assert!(conn.in_multi());
    conn.send_args(&[b"SET", b"a", b"1"], now).unwrap();
    assert!(conn.in_multi());
    conn.send_args(&[b"EXEC"], now).unwrap();
    assert!(!conn.in_multi());
    conn.send_buffered(&cmd(&["MULTI"]), now).unwrap();
    conn.send_buffered(&cmd(&["discard"]), now).unwrap();
    assert!(!conn.in_multi());
    conn.send_buffered(&cmd(&["MULTI"]), now).unwrap();
    conn.send_buffered(&cmd(&["RESET"]), now).unwrap();
    assert!(!conn.in_multi());
    // `send_transaction` is one request: it never leaves the connection inside MULTI.
    conn.send_transaction(&[cmd(&["INCR", "n"])], now).unwrap();
    assert!(!conn.in_multi());
}

#[test]
fn a_transaction_cut_by_the_loss_is_handed_over_and_not_resumed() {
    let now = Instant::now();
    let mut conn = Connection::new(resp2(), now);
    conn.send_buffered(&cmd(&["MULTI"]), now).unwrap();
    conn.send_buffered(&cmd(&["SET", "a", "1"]), now).unwrap();
    let _ = conn.handle_eof(now);
    let state = conn.take_reconnect_state();
    assert!(state.transaction_cut());
    let next = Connection::resume(resp2(), state, now);
    assert!(!next.in_multi(), "the new connection is not inside the lost MULTI");

    // What the body still holds: the rest of the transaction fails, up to its EXEC.
    let mut state = {
        let mut conn = Connection::new(resp2(), now);
        conn.send_buffered(&cmd(&["MULTI"]), now).unwrap();
        conn.take_reconnect_state()
    };
    let held: [Option<&[u8]>; 5] = [Some(b"SET"), None, Some(b"exec"), Some(b"GET"), Some(b"EXEC")];
    let cut: Vec<bool> = held.iter().map(|name| state.in_cut_transaction(*name)).collect();
    assert_eq!(cut, [true, true, true, false, false]);
    assert!(!state.transaction_cut());
    for end in ["DISCARD", "reset"] {
        let mut conn = Connection::new(resp2(), now);
        conn.send_buffered(&cmd(&["MULTI"]), now).unwrap();
        let mut state = conn.take_reconnect_state();
        assert!(state.in_cut_transaction(Some(end.as_bytes())));
        assert!(!state.in_cut_transaction(Some(b"SET")), "after {end}");
    }
    assert!(!ReconnectState::default().in_cut_transaction(Some(b"SET")));

    let mut done = Connection::new(resp2(), now);
    done.send_buffered(&cmd(&["MULTI"]), now).unwrap();
    done.send_buffered(&cmd(&["EXEC"]), now).unwrap();
    assert!(!done.take_reconnect_state().transaction_cut());
}

// ---- tracking ----

#[test]
fn tracking_in_force_follows_the_servers_ok() {
    let mut p = pair_of(
        Connection::new(ConnectionConfig::default(), Instant::now()),
        Instant::now(),
    );
    let now = p.now();
    assert!(p.a.tracking().is_none());
    p.a.send_buffered(&cmd(&["CLIENT", "TRACKING", "on"]), now).unwrap();
    assert!(p.a.tracking().is_none(), "not before the server's +OK");
    settle(&mut p);
    let on = p.a.tracking().map(Cmd::arg_bytes);
    assert_eq!(on, Some(vec![&b"CLIENT"[..], b"TRACKING", b"on"]));
    // Refused (the fake server knows no REDIRECT): the command in force stays.
    let now = p.now();
    p.a.send_buffered(&cmd(&["CLIENT", "TRACKING", "on", "REDIRECT", "9"]), now)
        .unwrap();
    settle(&mut p);
    assert_eq!(p.a.tracking().map(Cmd::arg_count), Some(3));
    // Queued in a MULTI: only +QUEUED, nothing changes.
    let now = p.now();
    p.a.send_buffered(&cmd(&["MULTI"]), now).unwrap();
    p.a.send_buffered(&cmd(&["CLIENT", "TRACKING", "off"]), now).unwrap();
    settle(&mut p);
    assert!(p.a.tracking().is_some());
    let now = p.now();
    p.a.send_buffered(&cmd(&["DISCARD"]), now).unwrap();
    p.a.send_buffered(&cmd(&["client", "tracking", "OFF"]), now).unwrap();
    settle(&mut p);
    assert!(p.a.tracking().is_none());
    // RESET turns tracking off on the server.
    let now = p.now();
    p.a.send_args(&[b"CLIENT", b"TRACKING", b"ON"], now).unwrap();
    settle(&mut p);
    assert!(p.a.tracking().is_some(), "send_args takes the same path");
    let now = p.now();
    p.a.send_buffered(&cmd(&["RESET"]), now).unwrap();
    settle(&mut p);
    assert!(p.a.tracking().is_none());
}

// ---- hand-over ----

#[test]
fn take_then_resume_restores_subscriptions_and_tracking_on_a_new_server() {
    let mut p = pair_of(
        Connection::new(ConnectionConfig::default(), Instant::now()),
        Instant::now(),
    );
    let now = p.now();
    for parts in [
        &["CLIENT", "TRACKING", "on"][..],
        &["SUBSCRIBE", "a", "b"],
        &["PSUBSCRIBE", "p*"],
        &["SSUBSCRIBE", "s"],
    ] {
        p.a.send_buffered(&cmd(parts), now).unwrap();
    }
    settle(&mut p);
    let state = p.a.take_reconnect_state();
    assert_eq!(p.a.error(), Some(&ConnectionError::Replaced));
    assert!(
        p.a.subscriptions().is_empty() && p.a.tracking().is_none(),
        "it keeps nothing"
    );
    assert_eq!(state.protocol(), Some(Protocol::Resp3));
    assert!(!state.transaction_cut());
    assert_eq!(state.subscriptions().len(), 4);
    assert!(state.subscriptions().has_shard_channel(b"s"));
    assert_eq!(state.admits(b"GET"), Ok(()), "RESP3: no subscriber mode");

    let now = p.now();
    let mut q = pair_of(Connection::resume(ConnectionConfig::default(), state, now), now);
    let get = q.a.send_buffered(&cmd(&["GET", "k"]), now).unwrap();
    settle(&mut q);
    let log = server_log(&q);
    assert_eq!(
        log[1..],
        [
            "CLIENT TRACKING on",
            "SUBSCRIBE a b",
            "PSUBSCRIBE p*",
            "SSUBSCRIBE s",
            "GET k"
        ],
        "handshake, restore, then what was sent since: {log:?}"
    );
    assert!(log[0].starts_with("HELLO 3"));
    // The restore's replies are consumed: the only reply is GET's.
    let replies: Vec<&Event> = q
        .events_a
        .iter()
        .filter(|e| {
            matches!(
                e,
                Event::Reply { .. } | Event::Failed { .. } | Event::RestoreFailed { .. }
            )
        })
        .collect();
    assert_eq!(
        replies,
        [&Event::Reply {
            id: get,
            value: Value::Null
        }]
    );
    assert_eq!(q.a.pending(), 0);
    assert_eq!(q.a.subscriptions().len(), 4);
    assert!(q.a.tracking().is_some());
    let now = q.now();
    assert_eq!(q.b.publish("b", "hi", now), 1);
    settle(&mut q);
    assert!(q.events_a.contains(&Event::Message {
        kind: MessageKind::Channel,
        channel: "b".into(),
        payload: "hi".into()
    }));
}

#[test]
fn a_refused_restore_is_reported_not_replied() {
    let now = Instant::now();
    let state = subscribed_resp2(&["ch"], now).take_reconnect_state();
    assert_eq!(state.protocol(), Some(Protocol::Resp2));
    let mut conn = Connection::resume(resp2(), state, now);
    assert_eq!(sent(&mut conn), b"*2\r\n$9\r\nSUBSCRIBE\r\n$2\r\nch\r\n");
    assert_eq!(conn.pending(), 0, "restore commands are not the body's requests");
    assert_eq!(conn.admits(b"GET"), refused("GET"), "the restore is on its way");
    conn.handle_input(
        Bytes::from_static(b"-NOPERM this user has no permissions to access the 'ch' channel\r\n"),
        now,
    )
    .unwrap();
    let got = events(&mut conn);
    assert!(matches!(got[0], Event::Connected { .. }));
    match &got[1..] {
        [Event::RestoreFailed { reply }] => assert!(reply.as_error().is_some_and(|e| e.starts_with(b"NOPERM"))),
        other => panic!("after the refusal: {other:?}"),
    }
    assert!(conn.subscriptions().is_empty());
    assert_eq!(conn.admits(b"GET"), Ok(()));
    assert!(
        conn.take_reconnect_state().subscriptions().is_empty(),
        "answered: not carried again"
    );
}

#[test]
fn a_restore_cut_short_is_handed_over_again() {
    let now = Instant::now();
    let state = subscribed_resp2(&["a", "b"], now).take_reconnect_state();
    // Lost after one confirmation of two.
    let mut conn = Connection::resume(resp2(), state.clone(), now);
    sent(&mut conn);
    conn.handle_input(Bytes::from_static(b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n"), now)
        .unwrap();
    let _ = conn.handle_eof(now);
    let again = conn.take_reconnect_state();
    assert_eq!(again.subscriptions(), state.subscriptions());
    // Lost before the handshake completed: everything, protocol included, goes on.
    let config = ConnectionConfig {
        password: Some("pw".into()),
        ..ConnectionConfig::default()
    };
    let mut conn = Connection::resume(config, again, now);
    assert!(!conn.is_connected());
    let _ = conn.handle_eof(now);
    let third = conn.take_reconnect_state();
    assert_eq!(third.subscriptions(), state.subscriptions());
    assert_eq!(third.protocol(), Some(Protocol::Resp2));
}

#[test]
fn while_disconnected_the_last_protocol_judges_subscriber_mode() {
    let now = Instant::now();
    let state = subscribed_resp2(&["ch"], now).take_reconnect_state();
    assert_eq!(state.admits(b"get"), refused("get"));
    assert_eq!(state.admits(b"PING"), Ok(()));
    assert_eq!(ReconnectState::default().admits(b"GET"), Ok(()));
    let empty = Connection::new(resp2(), now).take_reconnect_state();
    assert_eq!(empty.admits(b"GET"), Ok(()), "RESP2 without subscriptions");

    // A new connection that asks for RESP3 judges with RESP2 until its handshake says
    // otherwise.
    let mut p = pair_of(Connection::resume(ConnectionConfig::default(), state, now), now);
    assert!(!p.a.is_connected());
    assert_eq!(p.a.admits(b"GET"), refused("GET"));
    settle(&mut p);
    assert_eq!(p.a.protocol(), Protocol::Resp3);
    assert!(p.a.subscriptions().has_channel(b"ch"));
    assert_eq!(p.a.admits(b"GET"), Ok(()));
}

// ---- hand-over, for any subscriptions ----

/// Channel names from a small alphabet (so sets overlap and repeat).
fn names(max: usize) -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec("[a-c]{1,2}", 0..max)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever a connection is subscribed to and tracking, on either protocol and over
    /// any link, a connection resumed from its state on a fresh server ends up with the
    /// same subscriptions and tracking, never reports its restore as a reply, and the
    /// requests sent meanwhile get their own replies, in order.
    #[test]
    fn resume_restores_any_subscriptions_and_keeps_replies_in_order(
        channels in names(4),
        patterns in names(3),
        shards in names(3),
        tracking: bool,
        resp3: bool,
        seed in 0u64..1000,
        gets in 0usize..5,
    ) {
        let config = if resp3 { ConnectionConfig::default() } else { resp2() };
        let now = Instant::now();
        let link = LinkConfig::default();
        let mut p = Pair::new(Connection::new(config.clone(), now), FakeServer::new(ServerConfig::default()), now, seed, link.clone());
        let now = p.now();
        if tracking && resp3 {
            p.a.send_buffered(&cmd(&["CLIENT", "TRACKING", "on"]), now).unwrap();
        }
        for (name, set) in [("SUBSCRIBE", &channels), ("PSUBSCRIBE", &patterns), ("SSUBSCRIBE", &shards)] {
            if !set.is_empty() {
                let mut parts = vec![name];
                parts.extend(set.iter().map(String::as_str));
                p.a.send_buffered(&cmd(&parts), now).unwrap();
            }
        }
        settle(&mut p);
        let before = p.a.subscriptions().clone();
        let tracked = p.a.tracking().is_some();
        prop_assert_eq!(tracked, tracking && resp3);
        let state = p.a.take_reconnect_state();
        prop_assert_eq!(state.subscriptions(), &before);

        let now = p.now();
        let mut q = Pair::new(Connection::resume(config, state, now), FakeServer::new(ServerConfig::default()), now, seed + 1, link);
        // RESP2 with subscriptions refuses GET; PING always passes.
        let subscribed = !before.is_empty();
        let mut ids = Vec::new();
        for i in 0..gets {
            let key = format!("k{i}");
            let sent = q.a.send_buffered(&cmd(&["GET", &key]), now);
            if resp3 || !subscribed {
                ids.push(sent.unwrap());
            } else {
                let refused = matches!(sent, Err(SendError::SubscriberMode { .. }));
                prop_assert!(refused, "GET in RESP2 subscriber mode: {:?}", sent);
                ids.push(q.a.send_buffered(&cmd(&["PING"]), now).unwrap());
            }
        }
        settle(&mut q);
        prop_assert_eq!(q.a.subscriptions(), &before);
        prop_assert_eq!(q.a.tracking().is_some(), tracked);
        let told = server_log(&q).iter().filter(|c| c.as_str() == "CLIENT TRACKING on").count();
        prop_assert_eq!(told, usize::from(tracked), "the new server was told to track");
        let outcomes: Vec<RequestId> = q
            .events_a
            .iter()
            .filter_map(|e| match e {
                Event::Reply { id, .. } | Event::Failed { id, .. } => Some(*id),
                Event::RestoreFailed { .. } => Some(RequestId(0)),
                _ => None,
            })
            .collect();
        prop_assert_eq!(outcomes, ids);
        prop_assert_eq!(q.a.pending(), 0);
    }
}
