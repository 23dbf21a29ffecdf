//! The connection against the fake server, over the simulated link.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use proptest::prelude::*;

use super::fake_server::{FakeServer, HelloMode, ServerConfig};
use super::*;
use crate::chassis::sim::{LinkConfig, Pair};
use crate::resp::DecodeError;

type P = Pair<Connection, FakeServer>;

const STEPS: usize = 1_000_000;

fn cmd(parts: &[&str]) -> Cmd {
    let mut c = Cmd::new(parts[0]);
    for p in &parts[1..] {
        c.push(*p);
    }
    c
}

fn bulk(s: &'static str) -> Value {
    Value::from(s)
}

fn ok() -> Value {
    Value::SimpleString("OK".into())
}

fn resp2() -> ConnectionConfig {
    ConnectionConfig {
        protocol: Protocol::Resp2,
        ..ConnectionConfig::default()
    }
}

/// A link with no jitter and no partial writes, for tests that reason about time.
fn steady_link() -> LinkConfig {
    LinkConfig {
        max_piece: 1 << 20,
        latency: Duration::from_millis(1),
        jitter: Duration::ZERO,
        partial_write_percent: 0,
    }
}

fn pair_with(client: ConnectionConfig, server: ServerConfig, seed: u64, link: LinkConfig) -> P {
    let now = Instant::now();
    Pair::new(Connection::new(client, now), FakeServer::new(server), now, seed, link)
}

fn pair(client: ConnectionConfig, server: ServerConfig) -> P {
    pair_with(client, server, 7, LinkConfig::default())
}

fn settle(p: &mut P) {
    assert!(p.drive(STEPS).is_some(), "the simulation did not settle");
}

fn send(p: &mut P, parts: &[&str]) -> RequestId {
    let now = p.now();
    p.a.send_buffered(&cmd(parts), now).expect("send")
}

fn event_id(e: &Event) -> Option<RequestId> {
    match e {
        Event::Reply { id, .. } | Event::Failed { id, .. } => Some(*id),
        _ => None,
    }
}

/// The one terminal event of `id` (panics if there is none, or more than one).
fn outcome(p: &P, id: RequestId) -> &Event {
    let found: Vec<&Event> = p.events_a.iter().filter(|e| event_id(e) == Some(id)).collect();
    assert_eq!(found.len(), 1, "terminal events of {id}: {found:?}");
    found[0]
}

fn reply(p: &P, id: RequestId) -> Value {
    match outcome(p, id) {
        Event::Reply { value, .. } => value.clone(),
        other => panic!("{id}: expected a reply, got {other:?}"),
    }
}

fn failure(p: &P, id: RequestId) -> RequestError {
    match outcome(p, id) {
        Event::Failed { error, .. } => error.clone(),
        other => panic!("{id}: expected a failure, got {other:?}"),
    }
}

fn has_outcome(p: &P, id: RequestId) -> bool {
    p.events_a.iter().any(|e| event_id(e) == Some(id))
}

/// The commands the server received, as strings.
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

fn connected(p: &P) -> &Event {
    p.events_a
        .iter()
        .find(|e| matches!(e, Event::Connected { .. }))
        .expect("connected")
}

fn poisoned_events(p: &P) -> Vec<&ConnectionError> {
    p.events_a
        .iter()
        .filter_map(|e| match e {
            Event::Poisoned(err) => Some(err),
            _ => None,
        })
        .collect()
}

fn confirmation(kind: &'static str, channel: Option<&'static str>, count: i64, protocol: Protocol) -> Value {
    let items = vec![bulk(kind), channel.map_or(Value::Null, bulk), Value::Integer(count)];
    match protocol {
        Protocol::Resp3 => Value::Push(items),
        Protocol::Resp2 => Value::Array(items),
    }
}

// ---- correlation ----

#[test]
fn pipelines_of_1000_commands_correlate_across_200_seeds() {
    for seed in 0..200u64 {
        let protocol = if seed % 2 == 0 {
            Protocol::Resp3
        } else {
            Protocol::Resp2
        };
        let config = ConnectionConfig {
            protocol,
            password: (seed % 3 == 0).then(|| "pw".to_string()),
            database: (seed % 5) as u32,
            ..ConnectionConfig::default()
        };
        let server = ServerConfig {
            password: config.password.clone(),
            hello: [HelloMode::Resp3, HelloMode::NoProto, HelloMode::Unknown][(seed % 7 % 3) as usize],
            ..ServerConfig::default()
        };
        let link = LinkConfig {
            max_piece: 1 + (seed as usize * 37) % 200,
            ..LinkConfig::default()
        };
        let mut p = pair_with(config, server, seed, link);
        let mut model: HashMap<String, i64> = HashMap::new();
        let mut expected = Vec::new();
        for i in 0..1000u64 {
            if i == 500 {
                // Half sent before the handshake completed, half after some replies.
                p.drive_until(STEPS, |p| p.events_a.len() > 100);
            }
            let key = format!("k{}", (i * 7 + seed) % 13);
            let (parts, want) = match i % 4 {
                0 => {
                    let v = (i * 31 + seed) as i64 % 1000;
                    model.insert(key.clone(), v);
                    (vec!["SET".to_string(), key, v.to_string()], ok())
                }
                1 => {
                    let want = model
                        .get(&key)
                        .map_or(Value::Null, |v| Value::BulkString(Bytes::from(v.to_string())));
                    (vec!["GET".to_string(), key], want)
                }
                2 => {
                    let v = model.entry(key.clone()).or_insert(0);
                    *v += 1;
                    (vec!["INCR".to_string(), key], Value::Integer(*v))
                }
                _ => {
                    let msg = format!("echo-{i}");
                    (
                        vec!["ECHO".to_string(), msg.clone()],
                        Value::BulkString(Bytes::from(msg)),
                    )
                }
            };
            let now = p.now();
            let id = p.a.send_buffered(&Cmd::new(&parts[0]).args(&parts[1..]), now).unwrap();
            expected.push((id, want));
        }
        settle(&mut p);
        assert!(p.a.is_connected(), "seed {seed}: {:?}", p.a.error());
        for (id, want) in &expected {
            assert_eq!(&reply(&p, *id), want, "seed {seed}, request {id}");
        }
        assert_eq!(p.a.pending(), 0);
        let terminal = p.events_a.iter().filter(|e| event_id(e).is_some()).count();
        assert_eq!(terminal, 1000, "seed {seed}: one terminal event per request");
    }
}

// ---- handshake ----

#[test]
fn hello_3_carries_auth_and_setname_then_selects() {
    let config = ConnectionConfig {
        username: Some("alice".into()),
        password: Some("pw".into()),
        client_name: Some("app".into()),
        database: 3,
        ..ConnectionConfig::default()
    };
    let server = ServerConfig {
        user: Some("alice".into()),
        password: Some("pw".into()),
        ..ServerConfig::default()
    };
    let mut p = pair(config, server);
    settle(&mut p);
    match connected(&p) {
        Event::Connected {
            protocol: Protocol::Resp3,
            hello: Some(Value::Map(pairs)),
        } => assert!(pairs.contains(&(bulk("version"), bulk("7.2.4")))),
        other => panic!("{other:?}"),
    }
    assert_eq!(server_log(&p), ["HELLO 3 AUTH alice pw SETNAME app", "SELECT 3"]);
    assert_eq!((p.b.name.as_deref(), p.b.db), (Some(&b"app"[..]), 3));
    assert_eq!(p.a.protocol(), Protocol::Resp3);
    assert!(p.a.hello().is_some());
    // RESP3 replies decode: HELLO without arguments answers a map.
    let id = send(&mut p, &["HELLO"]);
    settle(&mut p);
    assert!(matches!(reply(&p, id), Value::Map(_)));
}

#[test]
fn noproto_falls_back_to_resp2_auth_setname_select() {
    let config = ConnectionConfig {
        username: Some("alice".into()),
        password: Some("pw".into()),
        client_name: Some("app".into()),
        database: 3,
        ..ConnectionConfig::default()
    };
    let server = ServerConfig {
        hello: HelloMode::NoProto,
        user: Some("alice".into()),
        password: Some("pw".into()),
    };
    let mut p = pair(config, server);
    let id = send(&mut p, &["SET", "a", "1"]);
    settle(&mut p);
    assert_eq!(
        connected(&p),
        &Event::Connected {
            protocol: Protocol::Resp2,
            hello: None
        }
    );
    assert_eq!(
        server_log(&p),
        [
            "HELLO 3 AUTH alice pw SETNAME app",
            "SELECT 3", // pipelined, refused (NOAUTH), ignored
            "AUTH alice pw",
            "CLIENT SETNAME app",
            "SELECT 3",
            "SET a 1",
        ]
    );
    assert_eq!(reply(&p, id), ok());
    assert_eq!((p.b.name.as_deref(), p.b.db), (Some(&b"app"[..]), 3));
    assert_eq!(p.a.protocol(), Protocol::Resp2);
}

#[test]
fn unknown_hello_from_redis_5_falls_back_to_resp2() {
    let config = ConnectionConfig {
        password: Some("pw".into()),
        client_name: Some("app".into()),
        ..ConnectionConfig::default()
    };
    let server = ServerConfig {
        hello: HelloMode::Unknown,
        password: Some("pw".into()),
        ..ServerConfig::default()
    };
    let mut p = pair(config, server);
    let id = send(&mut p, &["GET", "missing"]);
    settle(&mut p);
    assert!(matches!(
        connected(&p),
        Event::Connected {
            protocol: Protocol::Resp2,
            ..
        }
    ));
    assert_eq!(
        server_log(&p),
        [
            "HELLO 3 AUTH default pw SETNAME app",
            "AUTH pw",
            "CLIENT SETNAME app",
            "GET missing"
        ]
    );
    assert_eq!(reply(&p, id), Value::Null);
}

#[test]
fn resp2_without_credentials_is_connected_at_once() {
    let mut conn = Connection::new(resp2(), Instant::now());
    assert!(conn.is_connected());
    assert_eq!(
        conn.poll_event(),
        Some(Event::Connected {
            protocol: Protocol::Resp2,
            hello: None
        })
    );
    assert!(conn.poll_transmit().is_none(), "nothing to negotiate");
}

#[test]
fn wrong_password_is_a_handshake_error_and_held_commands_never_run() {
    for (protocol, hello) in [
        (Protocol::Resp3, HelloMode::Resp3),
        (Protocol::Resp3, HelloMode::NoProto),
        (Protocol::Resp2, HelloMode::Resp3),
    ] {
        let config = ConnectionConfig {
            protocol,
            password: Some("wrong".into()),
            ..ConnectionConfig::default()
        };
        let server = ServerConfig {
            hello,
            password: Some("pw".into()),
            ..ServerConfig::default()
        };
        let mut p = pair(config, server);
        let held = send(&mut p, &["SET", "a", "1"]);
        settle(&mut p);
        let log = server_log(&p);
        assert!(!log.iter().any(|c| c.starts_with("SET")), "{log:?}");
        assert_eq!(log.last().map(String::as_str), Some("AUTH wrong"));
        let RequestError::Poisoned(ConnectionError::Handshake(HandshakeError::Rejected { command, message })) =
            failure(&p, held)
        else {
            panic!("{:?}", p.events_a);
        };
        assert_eq!(command, HandshakeCommand::Auth);
        assert!(message.starts_with(b"WRONGPASS"), "{message:?}");
        assert_eq!(poisoned_events(&p).len(), 1);
        assert!(p.a.is_closed() && !p.a.is_connected());
        assert!(!p.events_a.iter().any(|e| matches!(e, Event::Connected { .. })));
        let err = p.a.send_buffered(&cmd(&["PING"]), p.now()).unwrap_err();
        assert_eq!(err, SendError::Poisoned(p.a.error().cloned().unwrap()));
    }
}

#[test]
fn refused_select_is_a_handshake_error() {
    let config = ConnectionConfig {
        database: 99,
        ..ConnectionConfig::default()
    };
    let mut p = pair(config, ServerConfig::default());
    settle(&mut p);
    assert!(matches!(
        p.a.error(),
        Some(ConnectionError::Handshake(HandshakeError::Rejected {
            command: HandshakeCommand::Select,
            ..
        }))
    ));
}

#[test]
fn commands_sent_before_the_handshake_are_held_until_it_succeeds() {
    let config = ConnectionConfig {
        password: Some("pw".into()),
        ..ConnectionConfig::default()
    };
    let server = ServerConfig {
        hello: HelloMode::NoProto,
        password: Some("pw".into()),
        ..ServerConfig::default()
    };
    let mut p = pair(config, server);
    let now = p.now();
    let set = send(&mut p, &["SET", "a", "1"]);
    let tx = p.a.send_transaction(&[cmd(&["INCR", "a"])], now).unwrap();
    let get = send(&mut p, &["GET", "a"]);
    // Only the handshake is on its way; the rest waits.
    let wire = p.a.poll_transmit().map(|a| a.to_vec()).unwrap_or_default();
    assert!(
        wire.starts_with(b"*5\r\n$5\r\nHELLO"),
        "{:?}",
        String::from_utf8_lossy(&wire)
    );
    assert!(!wire.windows(3).any(|w| w == b"SET"));
    assert!(
        p.a.outgoing_len() > wire.len(),
        "held bytes count against the high-water mark"
    );
    assert_eq!(p.a.pending(), 3);
    settle(&mut p);
    assert_eq!(
        server_log(&p),
        [
            "HELLO 3 AUTH default pw",
            "AUTH pw",
            "SET a 1",
            "MULTI",
            "INCR a",
            "EXEC",
            "GET a"
        ]
    );
    assert_eq!(reply(&p, set), ok());
    assert_eq!(reply(&p, tx), Value::Array(vec![Value::Integer(2)]));
    assert_eq!(reply(&p, get), bulk("2"));
    let connected_at = p.events_a.iter().position(|e| matches!(e, Event::Connected { .. }));
    assert_eq!(connected_at, Some(0), "Connected comes before every reply");
}

#[test]
fn handshake_without_reply_times_out_and_poisons() {
    let config = ConnectionConfig {
        request_timeout: Some(Duration::from_millis(100)),
        ..ConnectionConfig::default()
    };
    let mut p = pair_with(config, ServerConfig::default(), 1, steady_link());
    p.b.delay_next = Some(Duration::from_secs(10));
    let held = send(&mut p, &["PING"]);
    settle(&mut p);
    assert_eq!(
        p.a.error(),
        Some(&ConnectionError::Handshake(HandshakeError::Timeout {
            command: HandshakeCommand::Hello
        }))
    );
    assert!(matches!(failure(&p, held), RequestError::Poisoned(_)));
}

// ---- pushes and pub/sub ----

#[test]
fn resp3_pushes_interleaved_with_replies_never_reach_a_request() {
    for seed in 0..50 {
        let mut p = pair_with(
            ConnectionConfig::default(),
            ServerConfig::default(),
            seed,
            LinkConfig::default(),
        );
        p.b.chatty = true;
        let mut expected = Vec::new();
        for i in 0..200 {
            let key = format!("k{}", i % 5);
            let value = format!("v{i}");
            let id = send(&mut p, &["SET", &key, &value]);
            expected.push((id, ok()));
            let id = send(&mut p, &["GET", &key]);
            expected.push((id, Value::BulkString(Bytes::from(value))));
        }
        settle(&mut p);
        let now = p.now();
        p.b.invalidate(Some(vec!["idle"]), now); // with nothing pending, too
        settle(&mut p);
        for (id, want) in &expected {
            assert_eq!(&reply(&p, *id), want, "seed {seed}");
        }
        let pushes = p
            .events_a
            .iter()
            .filter(|e| matches!(e, Event::Message { .. } | Event::Invalidate { .. }))
            .count();
        // One before each of the 400 replies and the HELLO reply, plus the idle one.
        assert_eq!(pushes, 402, "seed {seed}");
        assert!(!p.a.is_closed());
    }
}

#[test]
fn resp3_subscribe_confirmations_complete_the_request() {
    let r3 = Protocol::Resp3;
    let mut p = pair(ConnectionConfig::default(), ServerConfig::default());
    let sub = send(&mut p, &["SUBSCRIBE", "a", "b"]);
    let psub = send(&mut p, &["PSUBSCRIBE", "n*"]);
    let ssub = send(&mut p, &["SSUBSCRIBE", "s1"]);
    let get = send(&mut p, &["GET", "x"]); // RESP3 allows commands while subscribed
    let publish = send(&mut p, &["PUBLISH", "a", "hi"]);
    let publish_news = send(&mut p, &["PUBLISH", "news", "extra"]);
    settle(&mut p);
    assert_eq!(
        reply(&p, sub),
        Value::Array(vec![
            confirmation("subscribe", Some("a"), 1, r3),
            confirmation("subscribe", Some("b"), 2, r3)
        ])
    );
    assert_eq!(
        reply(&p, psub),
        Value::Array(vec![confirmation("psubscribe", Some("n*"), 3, r3)])
    );
    assert_eq!(
        reply(&p, ssub),
        Value::Array(vec![confirmation("ssubscribe", Some("s1"), 1, r3)])
    );
    assert_eq!(reply(&p, get), Value::Null);
    assert_eq!(reply(&p, publish), Value::Integer(1));
    assert_eq!(reply(&p, publish_news), Value::Integer(1));
    let subs = p.a.subscriptions();
    assert_eq!(
        subs.channels().collect::<Vec<_>>(),
        [&Bytes::from("a"), &Bytes::from("b")]
    );
    assert!(subs.has_pattern(b"n*") && subs.has_shard_channel(b"s1") && subs.len() == 4);
    let now = p.now();
    p.b.publish_shard("s1", "sharded", now);
    settle(&mut p);
    let messages: Vec<&Event> = p
        .events_a
        .iter()
        .filter(|e| matches!(e, Event::Message { .. }))
        .collect();
    assert_eq!(
        messages,
        [
            &Event::Message {
                kind: MessageKind::Channel,
                channel: "a".into(),
                payload: "hi".into()
            },
            &Event::Message {
                kind: MessageKind::Pattern("n*".into()),
                channel: "news".into(),
                payload: "extra".into()
            },
            &Event::Message {
                kind: MessageKind::Shard,
                channel: "s1".into(),
                payload: "sharded".into()
            },
        ]
    );
    let owned = |parts: &[&str]| parts.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
    assert_eq!(
        subs_commands(&p),
        [
            owned(&["SUBSCRIBE", "a", "b"]),
            owned(&["PSUBSCRIBE", "n*"]),
            owned(&["SSUBSCRIBE", "s1"])
        ]
    );

    // Unsubscribe-all: one confirmation per channel of its kind, counted when it reaches
    // the front of the FIFO.
    let unsub = send(&mut p, &["UNSUBSCRIBE"]);
    let punsub = send(&mut p, &["PUNSUBSCRIBE"]);
    let again = send(&mut p, &["UNSUBSCRIBE"]);
    let after = send(&mut p, &["ECHO", "still in order"]);
    settle(&mut p);
    assert_eq!(
        reply(&p, unsub),
        Value::Array(vec![
            confirmation("unsubscribe", Some("a"), 2, r3),
            confirmation("unsubscribe", Some("b"), 1, r3)
        ])
    );
    assert_eq!(
        reply(&p, punsub),
        Value::Array(vec![confirmation("punsubscribe", Some("n*"), 0, r3)])
    );
    assert_eq!(
        reply(&p, again),
        Value::Array(vec![confirmation("unsubscribe", None, 0, r3)])
    );
    assert_eq!(reply(&p, after), bulk("still in order"));
    assert_eq!(p.a.subscriptions().len(), 1, "the shard channel is still subscribed");
}

fn subs_commands(p: &P) -> Vec<Vec<Vec<u8>>> {
    let cmds = p.a.subscriptions().to_commands();
    cmds.iter()
        .map(|c| c.arg_bytes().into_iter().map(<[u8]>::to_vec).collect())
        .collect()
}

#[test]
fn subscribe_error_reply_is_that_commands_reply() {
    for config in [ConnectionConfig::default(), resp2()] {
        let mut p = pair(config, ServerConfig::default());
        let bad = send(&mut p, &["SUBSCRIBE"]);
        let next = send(&mut p, &["PING"]);
        settle(&mut p);
        assert!(reply(&p, bad).is_error());
        assert_eq!(reply(&p, next), Value::SimpleString("PONG".into()));
    }
}

#[test]
fn resp2_subscribed_mode_routes_messages_and_pong() {
    let r2 = Protocol::Resp2;
    let mut p = pair(resp2(), ServerConfig::default());
    let sub = send(&mut p, &["SUBSCRIBE", "a", "b"]);
    let ping = send(&mut p, &["PING"]);
    // Refused before it is sent: the server would answer `-ERR Can't execute 'get'`.
    let now = p.now();
    assert_eq!(
        p.a.send_buffered(&cmd(&["GET", "x"]), now),
        Err(SendError::SubscriberMode { command: "GET".into() })
    );
    let psub = send(&mut p, &["PSUBSCRIBE", "n*"]);
    settle(&mut p);
    assert_eq!(
        reply(&p, sub),
        Value::Array(vec![
            confirmation("subscribe", Some("a"), 1, r2),
            confirmation("subscribe", Some("b"), 2, r2)
        ])
    );
    assert_eq!(reply(&p, ping), Value::Array(vec![bulk("pong"), bulk("")]));
    assert_eq!(
        reply(&p, psub),
        Value::Array(vec![confirmation("psubscribe", Some("n*"), 3, r2)])
    );
    let now = p.now();
    assert_eq!(p.b.publish("a", "hello", now), 1);
    assert_eq!(p.b.publish("news", "flash", now), 1);
    // A message whose payload spells a confirmation is still a message.
    p.b.publish("b", "subscribe", now);
    settle(&mut p);
    let messages: Vec<&Event> = p
        .events_a
        .iter()
        .filter(|e| matches!(e, Event::Message { .. }))
        .collect();
    assert_eq!(messages.len(), 3);
    assert_eq!(
        messages[1],
        &Event::Message {
            kind: MessageKind::Pattern("n*".into()),
            channel: "news".into(),
            payload: "flash".into()
        }
    );
    // Leave subscribed mode completely.
    let unsub = send(&mut p, &["UNSUBSCRIBE"]);
    let punsub = send(&mut p, &["PUNSUBSCRIBE", "n*"]);
    settle(&mut p);
    assert_eq!(
        reply(&p, unsub),
        Value::Array(vec![
            confirmation("unsubscribe", Some("a"), 2, r2),
            confirmation("unsubscribe", Some("b"), 1, r2)
        ])
    );
    assert_eq!(reply(&p, punsub).as_elements().map(<[Value]>::len), Some(1));
    assert!(p.a.subscriptions().is_empty());
    // Out of subscribed mode, an array that looks like a message is a reply.
    let set = send(&mut p, &["SET", "m", "message"]);
    let plain = [
        send(&mut p, &["MULTI"]),
        send(&mut p, &["GET", "m"]),
        send(&mut p, &["ECHO", "chan"]),
        send(&mut p, &["ECHO", "payload"]),
        send(&mut p, &["EXEC"]),
    ];
    let now = p.now();
    let tx =
        p.a.send_transaction(
            &[cmd(&["ECHO", "subscribe"]), cmd(&["ECHO", "x"]), cmd(&["INCR", "n"])],
            now,
        )
        .unwrap();
    settle(&mut p);
    assert_eq!(reply(&p, set), ok());
    assert_eq!(
        reply(&p, plain[4]),
        Value::Array(vec![bulk("message"), bulk("chan"), bulk("payload")])
    );
    assert_eq!(
        reply(&p, tx),
        Value::Array(vec![bulk("subscribe"), bulk("x"), Value::Integer(1)])
    );
    assert!(!p.a.is_closed());
}

#[test]
fn unsubscribe_all_with_nothing_subscribed_expects_one_null_confirmation() {
    for (config, protocol) in [
        (ConnectionConfig::default(), Protocol::Resp3),
        (resp2(), Protocol::Resp2),
    ] {
        let mut p = pair(config, ServerConfig::default());
        let unsub = send(&mut p, &["UNSUBSCRIBE"]);
        let sunsub = send(&mut p, &["SUNSUBSCRIBE"]);
        let get = send(&mut p, &["ECHO", "after"]);
        settle(&mut p);
        assert_eq!(
            reply(&p, unsub),
            Value::Array(vec![confirmation("unsubscribe", None, 0, protocol)])
        );
        assert_eq!(
            reply(&p, sunsub),
            Value::Array(vec![confirmation("sunsubscribe", None, 0, protocol)])
        );
        assert_eq!(reply(&p, get), bulk("after"));
    }
}

#[test]
fn unsolicited_confirmation_is_a_push_and_updates_subscriptions() {
    let mut p = pair(ConnectionConfig::default(), ServerConfig::default());
    let sub = send(&mut p, &["SSUBSCRIBE", "s1"]);
    settle(&mut p);
    assert!(matches!(outcome(&p, sub), Event::Reply { .. }));
    assert!(p.a.subscriptions().has_shard_channel(b"s1"));
    // The slot moved: the node unsubscribes us on its own.
    let now = p.now();
    p.b.inject(b">3\r\n$12\r\nsunsubscribe\r\n$2\r\ns1\r\n:0\r\n", now);
    settle(&mut p);
    assert!(p.a.subscriptions().is_empty());
    assert_eq!(
        p.events_a.last(),
        Some(&Event::Push(confirmation(
            "sunsubscribe",
            Some("s1"),
            0,
            Protocol::Resp3
        )))
    );
    assert!(!p.a.is_closed());
}

#[test]
fn tracking_invalidations_are_events() {
    let mut p = pair(ConnectionConfig::default(), ServerConfig::default());
    let ids = [
        send(&mut p, &["CLIENT", "TRACKING", "on"]),
        send(&mut p, &["GET", "k"]),
        send(&mut p, &["SET", "k", "v"]),
        send(&mut p, &["FLUSHALL"]),
    ];
    settle(&mut p);
    assert_eq!(reply(&p, ids[3]), ok());
    let invalidations: Vec<&Event> = p
        .events_a
        .iter()
        .filter(|e| matches!(e, Event::Invalidate { .. }))
        .collect();
    assert_eq!(
        invalidations,
        [
            &Event::Invalidate {
                keys: Some(vec!["k".into()])
            },
            &Event::Invalidate { keys: None }
        ]
    );
    // An unknown push is a push, never a reply.
    let ping = send(&mut p, &["PING"]);
    let now = p.now();
    p.b.inject(b">2\r\n$6\r\ncustom\r\n:1\r\n", now);
    settle(&mut p);
    assert_eq!(reply(&p, ping), Value::SimpleString("PONG".into()));
    assert!(p
        .events_a
        .contains(&Event::Push(Value::Push(vec![bulk("custom"), Value::Integer(1)]))));
}

#[test]
fn user_reset_and_hello_switch_protocol() {
    let mut p = pair(ConnectionConfig::default(), ServerConfig::default());
    let sub = send(&mut p, &["SUBSCRIBE", "a"]);
    let reset = send(&mut p, &["RESET"]);
    settle(&mut p);
    assert!(matches!(outcome(&p, sub), Event::Reply { .. }));
    assert_eq!(reply(&p, reset), Value::SimpleString("RESET".into()));
    assert_eq!(p.a.protocol(), Protocol::Resp2);
    assert!(p.a.subscriptions().is_empty());
    let hello = send(&mut p, &["HELLO", "3"]);
    let get = send(&mut p, &["GET", "none"]);
    settle(&mut p);
    assert!(matches!(reply(&p, hello), Value::Map(_)));
    assert_eq!(reply(&p, get), Value::Null);
    assert_eq!(p.a.protocol(), Protocol::Resp3);
    let hello2 = send(&mut p, &["HELLO", "2"]);
    settle(&mut p);
    assert!(
        matches!(reply(&p, hello2), Value::Array(_)),
        "maps are flattened in RESP2"
    );
    assert_eq!(p.a.protocol(), Protocol::Resp2);
}

// ---- transactions ----

#[test]
fn send_transaction_is_one_request() {
    let mut p = pair(ConnectionConfig::default(), ServerConfig::default());
    settle(&mut p);
    let now = p.now();
    let tx =
        p.a.send_transaction(&[cmd(&["SET", "a", "1"]), cmd(&["INCR", "a"]), cmd(&["GET", "a"])], now)
            .unwrap();
    let after = send(&mut p, &["GET", "a"]);
    assert_eq!(p.a.pending(), 2);
    settle(&mut p);
    assert_eq!(reply(&p, tx), Value::Array(vec![ok(), Value::Integer(2), bulk("2")]));
    assert_eq!(reply(&p, after), bulk("2"));
    assert_eq!(
        server_log(&p)[1..],
        ["MULTI", "SET a 1", "INCR a", "GET a", "EXEC", "GET a"]
    );
    // +OK and +QUEUED never surface.
    assert_eq!(p.events_a.iter().filter(|e| event_id(e).is_some()).count(), 2);
}

#[test]
fn transaction_with_queue_errors_reports_them_with_execabort() {
    let mut p = pair(resp2(), ServerConfig::default());
    let now = p.now();
    let tx =
        p.a.send_transaction(
            &[
                cmd(&["SET", "a", "1"]),
                cmd(&["NOSUCH", "x"]),
                cmd(&["GET"]),
                cmd(&["INCR", "a"]),
            ],
            now,
        )
        .unwrap();
    let after = send(&mut p, &["GET", "a"]);
    settle(&mut p);
    let RequestError::TransactionAborted(aborted) = failure(&p, tx) else {
        panic!("{:?}", p.events_a)
    };
    assert_eq!(aborted.multi, None);
    assert_eq!(aborted.rejected.iter().map(|r| r.index).collect::<Vec<_>>(), [1, 2]);
    assert!(aborted.rejected[0]
        .reply
        .as_error()
        .unwrap()
        .starts_with(b"ERR unknown command 'NOSUCH'"));
    assert!(aborted.exec.as_error().unwrap().starts_with(b"EXECABORT"));
    assert!(aborted.to_string().contains("command 1: ERR unknown command"));
    assert_eq!(reply(&p, after), Value::Null, "the transaction did not run");
}

#[test]
fn transaction_with_failed_watch_replies_null() {
    let mut p = pair(ConnectionConfig::default(), ServerConfig::default());
    let watch = send(&mut p, &["WATCH", "a"]);
    let now = p.now();
    p.b.watch_broken = true;
    let tx = p.a.send_transaction(&[cmd(&["SET", "a", "1"])], now).unwrap();
    let after = send(&mut p, &["GET", "a"]);
    settle(&mut p);
    assert_eq!(reply(&p, watch), ok());
    assert_eq!(reply(&p, tx), Value::Null);
    assert_eq!(reply(&p, after), Value::Null);
}

#[test]
fn plain_multi_exec_correlate_and_guard_nesting() {
    let mut p = pair(ConnectionConfig::default(), ServerConfig::default());
    let ids = [
        send(&mut p, &["MULTI"]),
        send(&mut p, &["SET", "a", "5"]),
        send(&mut p, &["INCR", "a"]),
    ];
    let now = p.now();
    assert_eq!(
        p.a.send_transaction(&[cmd(&["PING"])], now),
        Err(SendError::NestedTransaction)
    );
    assert_eq!(
        p.a.send_buffered(&cmd(&["SUBSCRIBE", "x"]), now),
        Err(SendError::NotAllowedInTransaction {
            command: "SUBSCRIBE".into()
        })
    );
    let exec = send(&mut p, &["EXEC"]);
    let multi2 = send(&mut p, &["MULTI"]);
    let queued = send(&mut p, &["INCR", "a"]);
    let discard = send(&mut p, &["DISCARD"]);
    let get = send(&mut p, &["GET", "a"]);
    settle(&mut p);
    assert_eq!(reply(&p, ids[0]), ok());
    assert_eq!(reply(&p, ids[1]), Value::SimpleString("QUEUED".into()));
    assert_eq!(reply(&p, ids[2]), Value::SimpleString("QUEUED".into()));
    assert_eq!(reply(&p, exec), Value::Array(vec![ok(), Value::Integer(6)]));
    assert_eq!(reply(&p, multi2), ok());
    assert_eq!(reply(&p, queued), Value::SimpleString("QUEUED".into()));
    assert_eq!(reply(&p, discard), ok());
    assert_eq!(reply(&p, get), bulk("6"));
    // EXECABORT through plain commands is just EXEC's reply.
    let plain = [
        send(&mut p, &["MULTI"]),
        send(&mut p, &["NOSUCH"]),
        send(&mut p, &["EXEC"]),
    ];
    settle(&mut p);
    assert!(reply(&p, plain[1]).is_error());
    assert!(reply(&p, plain[2]).as_error().unwrap().starts_with(b"EXECABORT"));
}

#[test]
fn misuse_is_refused_before_anything_is_queued() {
    let mut conn = Connection::new(resp2(), Instant::now());
    let now = Instant::now();
    let empty = Cmd::default();
    assert_eq!(conn.send_buffered(&empty, now), Err(SendError::EmptyCommand));
    assert_eq!(conn.send_transaction(&[empty], now), Err(SendError::EmptyCommand));
    assert_eq!(
        conn.send_buffered(&cmd(&["monitor"]), now),
        Err(SendError::Unsupported {
            command: "monitor".into()
        })
    );
    assert_eq!(
        conn.send_buffered(&cmd(&["CLIENT", "reply", "OFF"]), now),
        Err(SendError::Unsupported {
            command: "CLIENT".into()
        })
    );
    assert_eq!(
        conn.send_transaction(&[cmd(&["exec"])], now),
        Err(SendError::NestedTransaction)
    );
    assert_eq!(
        conn.send_transaction(&[cmd(&["SUBSCRIBE", "a"])], now),
        Err(SendError::NotAllowedInTransaction {
            command: "SUBSCRIBE".into()
        })
    );
    assert!(conn.poll_transmit().is_none());
    assert_eq!(conn.pending(), 0);
    assert!(conn.send_buffered(&cmd(&["CLIENT", "SETNAME", "x"]), now).is_ok());
}

#[test]
fn send_args_is_send_buffered_without_a_cmd() {
    let mut p = pair(ConnectionConfig::default(), ServerConfig::default());
    let now = p.now();
    let set = p.a.send_args(&[b"SET", b"a", b"5"], now).unwrap();
    // Special commands take the general path and keep their meaning.
    let multi = p.a.send_args(&[b"multi"], now).unwrap();
    let incr = p.a.send_args(&[b"INCR", b"a"], now).unwrap();
    assert_eq!(
        p.a.send_args(&[b"SUBSCRIBE", b"x"], now),
        Err(SendError::NotAllowedInTransaction {
            command: "SUBSCRIBE".into()
        })
    );
    let exec = p.a.send_args(&[b"EXEC"], now).unwrap();
    let get = p.a.send_args(&[b"GET", b"a"], now).unwrap();
    settle(&mut p);
    assert_eq!(reply(&p, set), ok());
    assert_eq!(reply(&p, multi), ok());
    assert_eq!(reply(&p, incr), Value::SimpleString("QUEUED".into()));
    assert_eq!(reply(&p, exec), Value::Array(vec![Value::Integer(6)]));
    assert_eq!(reply(&p, get), bulk("6"));

    let mut conn = Connection::new(resp2(), Instant::now());
    assert_eq!(conn.send_args(&[], now), Err(SendError::EmptyCommand));
    assert_eq!(
        conn.send_args(&[b"MONITOR"], now),
        Err(SendError::Unsupported {
            command: "MONITOR".into()
        })
    );
    assert!(conn.poll_transmit().is_none());
    conn.send_args(&[b"GET", b"k"], now).unwrap();
    let arena = conn.poll_transmit().unwrap();
    let mut expected = IoArena::new();
    cmd(&["GET", "k"]).encode(&mut expected);
    assert_eq!(arena.to_vec(), expected.to_vec());
}

#[test]
fn send_args_respects_backpressure_and_the_pending_limit() {
    let mut config = resp2();
    config.max_outgoing_bytes = 100;
    config.max_pending = 4;
    let mut conn = Connection::new(config, Instant::now());
    let now = Instant::now();
    let small = cmd(&["GET", "k"]);
    let mut accepted = 0;
    let refusal = loop {
        match conn.send_args(&[b"GET", b"k"], now) {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
    };
    assert_eq!(accepted, (100 / small.encoded_len()).min(4));
    assert!(matches!(
        refusal,
        SendError::Backpressure(_) | SendError::TooManyPending { max: 4 }
    ));
    assert!(conn.outgoing_len() <= 100);
    assert_eq!(conn.pending(), accepted);
}

// ---- abandon and timeouts ----

#[test]
fn abandoned_reply_is_dropped_and_the_next_caller_gets_its_own() {
    let mut p = pair(ConnectionConfig::default(), ServerConfig::default());
    settle(&mut p);
    let set_a = send(&mut p, &["SET", "a", "A"]);
    let set_b = send(&mut p, &["SET", "b", "B"]);
    let get_a = send(&mut p, &["GET", "a"]);
    let get_b = send(&mut p, &["GET", "b"]);
    let now = p.now();
    let tx = p.a.send_transaction(&[cmd(&["GET", "a"])], now).unwrap();
    assert!(p.a.abandon(get_a));
    assert!(!p.a.abandon(get_a), "only once");
    assert!(p.a.abandon(tx));
    settle(&mut p);
    assert_eq!(reply(&p, set_a), ok());
    assert_eq!(reply(&p, set_b), ok());
    assert!(!has_outcome(&p, get_a));
    assert!(!has_outcome(&p, tx));
    assert_eq!(reply(&p, get_b), bulk("B"));
    assert_eq!(p.a.pending(), 0);
    assert!(!p.a.abandon(get_b), "completed requests cannot be abandoned");
}

#[test]
fn timeout_with_nothing_received_fails_only_that_request() {
    let config = ConnectionConfig {
        request_timeout: Some(Duration::from_millis(100)),
        ..ConnectionConfig::default()
    };
    let mut p = pair_with(config, ServerConfig::default(), 3, steady_link());
    settle(&mut p);
    let start = p.now();
    p.b.delay_next = Some(Duration::from_millis(150));
    let slow = send(&mut p, &["SET", "a", "1"]);
    assert_eq!(p.a.poll_timeout(), Some(start + Duration::from_millis(100)));
    p.drive_until(STEPS, |p| has_outcome(p, slow));
    assert_eq!(failure(&p, slow), RequestError::Timeout);
    assert!(p.now() >= start + Duration::from_millis(100));
    assert!(
        p.now() < start + Duration::from_millis(150),
        "failed at its deadline, not at the reply"
    );
    let next = send(&mut p, &["GET", "a"]);
    settle(&mut p);
    assert_eq!(reply(&p, next), bulk("1"), "the late reply went nowhere");
    assert_eq!(
        outcome(&p, slow),
        &Event::Failed {
            id: slow,
            error: RequestError::Timeout
        }
    );
    assert!(p.a.is_connected());
    assert_eq!(p.a.pending(), 0);
    assert_eq!(p.a.poll_timeout(), None);
}

#[test]
fn held_requests_time_out_while_the_handshake_is_slow() {
    let config = ConnectionConfig {
        password: Some("pw".into()),
        request_timeout: Some(Duration::from_millis(100)),
        ..ConnectionConfig::default()
    };
    let server = ServerConfig {
        hello: HelloMode::NoProto,
        password: Some("pw".into()),
        ..ServerConfig::default()
    };
    let mut p = pair_with(config, server, 3, steady_link());
    let start = p.now();
    // HELLO is refused after 90 ms, and the fallback AUTH takes 30 ms more: the held
    // PING passes its deadline while it is still held.
    p.b.delay_next = Some(Duration::from_millis(90));
    let held = send(&mut p, &["PING"]);
    p.drive_until(STEPS, |p| !p.events_b.is_empty());
    p.b.delay_next = Some(Duration::from_millis(30));
    p.drive_until(STEPS, |p| has_outcome(p, held));
    assert_eq!(failure(&p, held), RequestError::Timeout);
    assert!(p.now() < start + Duration::from_millis(110));
    assert!(!p.a.is_connected());
    settle(&mut p);
    assert!(p.a.is_connected(), "{:?}", p.a.error());
    assert_eq!(server_log(&p), ["HELLO 3 AUTH default pw", "AUTH pw", "PING"]);
    let next = send(&mut p, &["ECHO", "mine"]);
    settle(&mut p);
    assert_eq!(reply(&p, next), bulk("mine"), "the held PING's late reply was dropped");
    assert_eq!(
        outcome(&p, held),
        &Event::Failed {
            id: held,
            error: RequestError::Timeout
        }
    );
}

#[test]
fn stalled_half_frame_past_the_deadline_poisons_every_request() {
    let config = ConnectionConfig {
        request_timeout: Some(Duration::from_millis(100)),
        ..ConnectionConfig::default()
    };
    let mut p = pair_with(config, ServerConfig::default(), 5, steady_link());
    let set = send(&mut p, &["SET", "a", "a-long-value"]);
    settle(&mut p);
    assert_eq!(reply(&p, set), ok());
    p.b.stall_next = true;
    let ids = [
        send(&mut p, &["GET", "a"]),
        send(&mut p, &["GET", "b"]),
        send(&mut p, &["INCR", "c"]),
    ];
    let now = p.now();
    let tx = p.a.send_transaction(&[cmd(&["PING"])], now).unwrap();
    settle(&mut p);
    assert_eq!(p.a.error(), Some(&ConnectionError::TimedOutMidFrame));
    for id in ids.into_iter().chain([tx]) {
        assert_eq!(
            failure(&p, id),
            RequestError::Poisoned(ConnectionError::TimedOutMidFrame),
            "{id}"
        );
    }
    assert_eq!(poisoned_events(&p), [&ConnectionError::TimedOutMidFrame]);
    assert!(p.a.is_closed());
    assert_eq!(p.a.poll_timeout(), None);
    let now = p.now();
    assert_eq!(
        p.a.send_buffered(&cmd(&["PING"]), now),
        Err(SendError::Poisoned(ConnectionError::TimedOutMidFrame))
    );
    assert_eq!(
        p.a.handle_input(Bytes::from_static(b"+OK\r\n"), now),
        Err(ConnectionError::TimedOutMidFrame)
    );
    assert_eq!(p.a.handle_timeout(now), Err(ConnectionError::TimedOutMidFrame));
    assert_eq!(p.a.handle_eof(now), Err(ConnectionError::TimedOutMidFrame));
    assert!(p.a.poll_event().is_none(), "no more events after the poison");
}

#[test]
fn a_front_that_timed_out_empty_then_stalls_mid_frame_poisons_at_the_next_deadline() {
    let config = ConnectionConfig {
        request_timeout: Some(Duration::from_millis(100)),
        ..resp2()
    };
    let t = Instant::now();
    let mut conn = Connection::new(config, t);
    assert!(matches!(conn.poll_event(), Some(Event::Connected { .. })));
    let first = conn.send_buffered(&cmd(&["GET", "a"]), t).unwrap();
    let second = conn
        .send_buffered(&cmd(&["GET", "b"]), t + Duration::from_millis(50))
        .unwrap();
    conn.handle_timeout(t + Duration::from_millis(100)).unwrap();
    assert_eq!(
        conn.poll_event(),
        Some(Event::Failed {
            id: first,
            error: RequestError::Timeout
        })
    );
    // Half of the first reply arrives, then nothing.
    conn.handle_input(Bytes::from_static(b"$10\r\nhal"), t + Duration::from_millis(120))
        .unwrap();
    assert_eq!(conn.poll_timeout(), Some(t + Duration::from_millis(150)));
    // Called early, nothing happens.
    conn.handle_timeout(t + Duration::from_millis(149)).unwrap();
    assert_eq!(conn.poll_event(), None);
    assert_eq!(
        conn.handle_timeout(t + Duration::from_millis(150)),
        Err(ConnectionError::TimedOutMidFrame)
    );
    assert_eq!(
        conn.poll_event(),
        Some(Event::Failed {
            id: second,
            error: RequestError::Poisoned(ConnectionError::TimedOutMidFrame)
        })
    );
    assert_eq!(
        conn.poll_event(),
        Some(Event::Poisoned(ConnectionError::TimedOutMidFrame))
    );
    assert_eq!(conn.poll_event(), None);
}

// ---- poison ----

#[test]
fn reply_with_no_request_poisons() {
    let mut p = pair(ConnectionConfig::default(), ServerConfig::default());
    settle(&mut p);
    let now = p.now();
    p.b.inject(b"+OK\r\n", now);
    settle(&mut p);
    assert!(matches!(p.a.error(), Some(ConnectionError::UnexpectedReply(v)) if **v == ok()));
    assert_eq!(poisoned_events(&p).len(), 1);
    assert!(p.a.is_closed());
}

#[test]
fn decode_error_poisons_pending_requests() {
    let mut p = pair(resp2(), ServerConfig::default());
    settle(&mut p);
    p.b.delay_next = Some(Duration::from_millis(10));
    let ids = [send(&mut p, &["GET", "a"]), send(&mut p, &["GET", "b"])];
    let now = p.now();
    p.b.inject(b"?garbage\r\n", now);
    settle(&mut p);
    let expected = ConnectionError::Decode(DecodeError::UnknownType(b'?'));
    for id in ids {
        assert_eq!(failure(&p, id), RequestError::Poisoned(expected.clone()));
    }
    assert_eq!(poisoned_events(&p), [&expected]);
}

#[test]
fn resp3_type_on_a_resp2_connection_is_a_decode_error() {
    let mut conn = Connection::new(resp2(), Instant::now());
    let _ = conn.poll_event();
    let id = conn.send_buffered(&cmd(&["GET", "a"]), Instant::now()).unwrap();
    let err = conn
        .handle_input(Bytes::from_static(b"%1\r\n+a\r\n+b\r\n"), Instant::now())
        .unwrap_err();
    assert_eq!(err, ConnectionError::Decode(DecodeError::Resp3OnResp2(b'%')));
    assert_eq!(
        conn.poll_event(),
        Some(Event::Failed {
            id,
            error: RequestError::Poisoned(err.clone())
        })
    );
}

#[test]
fn eof_poisons_pending_requests() {
    let mut p = pair(ConnectionConfig::default(), ServerConfig::default());
    settle(&mut p);
    p.b.delay_next = Some(Duration::from_millis(10));
    let ids = [send(&mut p, &["GET", "a"]), send(&mut p, &["SUBSCRIBE", "a"])];
    p.close_b();
    settle(&mut p);
    for id in ids {
        assert_eq!(failure(&p, id), RequestError::Poisoned(ConnectionError::Closed));
    }
    assert_eq!(poisoned_events(&p), [&ConnectionError::Closed]);
    assert!(p.a.is_closed() && !p.a.wants_read());
}

#[test]
fn decoder_limits_apply_to_replies() {
    let mut config = resp2();
    config.decoder.max_bulk_len = 8;
    let mut p = pair(config, ServerConfig::default());
    let set = send(&mut p, &["SET", "big", "0123456789"]);
    let get = send(&mut p, &["GET", "big"]);
    settle(&mut p);
    assert_eq!(reply(&p, set), ok());
    assert_eq!(
        failure(&p, get),
        RequestError::Poisoned(ConnectionError::Decode(DecodeError::BulkTooLong { len: 10, max: 8 }))
    );
}

// ---- bounds ----

#[test]
fn backpressure_over_the_high_water_mark() {
    let mut config = resp2();
    config.max_outgoing_bytes = 100;
    let mut conn = Connection::new(config, Instant::now());
    let now = Instant::now();
    // An empty arena accepts one command of any size.
    let big = Cmd::new("SET").arg("k").arg(vec![b'x'; 500]);
    conn.send_buffered(&big, now).unwrap();
    let small = cmd(&["GET", "k"]);
    let Err(SendError::Backpressure(bp)) = conn.send_buffered(&small, now) else {
        panic!("expected backpressure")
    };
    assert_eq!((bp.requested, bp.capacity), (small.encoded_len(), 100));
    assert_eq!(conn.pending(), 1, "nothing was queued");
    let arena = conn.poll_transmit().unwrap();
    let len = arena.len();
    arena.advance(len);
    // Drained: accepted again, until the mark.
    let mut accepted = 0;
    while conn.send_buffered(&small, now).is_ok() {
        accepted += 1;
    }
    assert_eq!(accepted, 100 / small.encoded_len());
    assert!(conn.outgoing_len() <= 100);
    let now = Instant::now();
    assert!(matches!(
        conn.send_transaction(std::slice::from_ref(&small), now),
        Err(SendError::Backpressure(_))
    ));
}

/// A body waiting for room hears of the write that made it (`handle_sent` true once, at
/// half the high-water mark), and of the one that emptied the arena when it asks for
/// that; a body that does not ask is told nothing.
#[test]
fn writes_are_reported_only_when_asked_and_at_the_mark() {
    let mut config = resp2();
    config.max_outgoing_bytes = 100;
    let mut conn = Connection::new(config, Instant::now());
    let now = Instant::now();
    conn.send_buffered(&Cmd::new("SET").arg("k").arg(vec![b'x'; 500]), now)
        .unwrap();
    let left = conn.outgoing_len();
    let take = |c: &mut Connection, n| Session::poll_transmit(c).expect("output").advance(n);
    take(&mut conn, 1);
    assert!(!Session::handle_sent(&mut conn), "nobody asked");
    conn.report_room();
    take(&mut conn, left - 1 - 51);
    assert!(!Session::handle_sent(&mut conn), "51 bytes left: above half the mark");
    take(&mut conn, 1);
    assert!(Session::handle_sent(&mut conn), "50 bytes left: room");
    assert!(!Session::handle_sent(&mut conn), "once per request");
    conn.report_sent(0);
    take(&mut conn, 50);
    assert!(Session::handle_sent(&mut conn), "empty");
}

#[test]
fn max_pending_bounds_requests_in_flight() {
    let mut config = resp2();
    config.max_pending = 3;
    let mut p = pair(config, ServerConfig::default());
    let ids: Vec<RequestId> = (0..3).map(|_| send(&mut p, &["PING"])).collect();
    let now = p.now();
    assert_eq!(
        p.a.send_buffered(&cmd(&["PING"]), now),
        Err(SendError::TooManyPending { max: 3 })
    );
    assert_eq!(
        p.a.send_transaction(&[cmd(&["PING"])], now),
        Err(SendError::TooManyPending { max: 3 })
    );
    p.a.abandon(ids[0]);
    assert!(
        p.a.send_buffered(&cmd(&["PING"]), now).is_err(),
        "abandoned replies are still due"
    );
    settle(&mut p);
    assert_eq!(p.a.pending(), 0);
    send(&mut p, &["PING"]);
}

#[test]
fn config_debug_hides_the_password() {
    let config = ConnectionConfig {
        password: Some("hunter2".into()),
        ..ConnectionConfig::default()
    };
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2") && shown.contains("redacted"));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The fuzz target's invariants hold for arbitrary operation sequences.
    #[test]
    fn random_operations_keep_the_invariants(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        crate::fuzzing::resp_connection(&data);
    }
}
