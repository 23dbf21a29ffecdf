//! `monocoque::redis::Client` against a real `redis-server` (and, for broken streams, a
//! fake one), on both drivers: every test runs as `<name>_uring` and `<name>_mio`.
//!
//! Each test starts its own server on a free loopback port with `--save ""` and
//! `--enable-debug-command yes`. A missing `redis-server` fails the test.

mod support;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::{AnyDriver, DriverKind};
use monocoque::proto::resp::{
    Connection, ConnectionError, DecodeError, Decoder, DecoderConfig, HandshakeError, MessageKind,
};
use monocoque::proto::{Activity, ConnId, Driver, ListenerId, SegmentedBuffer, SessionFactory};
use monocoque::redis::{
    cmd, Client, ClientOptions, Error, Event, Invalidation, LinkError, Protocol, ReconnectPolicy, SetOptions,
    SetOutcome, Value,
};
use support::RedisServer;

both_drivers! {
    typed_helpers => typed_helpers_uring, typed_helpers_mio;
    pipeline_100k => pipeline_100k_uring, pipeline_100k_mio;
    binary_safe_and_64mib => binary_safe_and_64mib_uring, binary_safe_and_64mib_mio;
    debug_protocol_every_type => debug_protocol_every_type_uring, debug_protocol_every_type_mio;
    pubsub_and_tracking_interleaved => pubsub_and_tracking_interleaved_uring, pubsub_and_tracking_interleaved_mio;
    resp2_subscriber_mode => resp2_subscriber_mode_uring, resp2_subscriber_mode_mio;
    tracking_redirect_on_resp2 => tracking_redirect_on_resp2_uring, tracking_redirect_on_resp2_mio;
    auth_requirepass => auth_requirepass_uring, auth_requirepass_mio;
    auth_acl_user => auth_acl_user_uring, auth_acl_user_mio;
    select_via_url => select_via_url_uring, select_via_url_mio;
    kill_mid_pipeline_then_restart => kill_mid_pipeline_then_restart_uring, kill_mid_pipeline_then_restart_mio;
    stalled_half_frame_poisons => stalled_half_frame_poisons_uring, stalled_half_frame_poisons_mio;
    late_reply_is_never_misdelivered => late_reply_is_never_misdelivered_uring, late_reply_is_never_misdelivered_mio;
    bulk_over_limit_is_an_error => bulk_over_limit_is_an_error_uring, bulk_over_limit_is_an_error_mio;
    waits_in_the_driver_without_spinning => waits_in_the_driver_without_spinning_uring, waits_in_the_driver_without_spinning_mio;
    lost_restore_is_reported => lost_restore_is_reported_uring, lost_restore_is_reported_mio;
    transaction_cut_by_a_lost_connection_is_not_resent => transaction_cut_by_a_lost_connection_is_not_resent_uring, transaction_cut_by_a_lost_connection_is_not_resent_mio;
    handshake_without_reply_times_out => handshake_without_reply_times_out_uring, handshake_without_reply_times_out_mio;
    tcp_connect_into_a_full_backlog_times_out => tcp_connect_into_a_full_backlog_times_out_uring, tcp_connect_into_a_full_backlog_times_out_mio;
    a_host_name_connects => a_host_name_connects_uring, a_host_name_connects_mio;
    bulk_of_4gib_is_refused_from_its_header => bulk_of_4gib_is_refused_from_its_header_uring, bulk_of_4gib_is_refused_from_its_header_mio;
}

// ---- helpers ----

fn options(addr: SocketAddr, driver: DriverKind) -> ClientOptions {
    ClientOptions::new(addr.ip().to_string(), addr.port()).driver(driver)
}

fn connect(server: &RedisServer, driver: DriverKind, protocol: Protocol) -> Client {
    Client::connect_with(options(server.addr, driver).protocol(protocol)).expect("connect to redis-server")
}

fn url(server: &RedisServer) -> String {
    format!("redis://127.0.0.1:{}", server.addr.port())
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn bulk(s: &str) -> Value {
    Value::BulkString(b(s))
}

fn server_code(result: Result<impl std::fmt::Debug, Error>) -> String {
    match result {
        Err(Error::Server(e)) => e.code().to_owned(),
        other => panic!("expected a server error, got {other:?}"),
    }
}

// ---- typed helpers ----

fn typed_helpers(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    for protocol in [Protocol::Resp3, Protocol::Resp2] {
        let mut c = connect(&server, driver, protocol);
        assert_eq!(c.protocol(), protocol);
        c.flushdb().unwrap();
        c.ping().unwrap();

        c.set("k", "v").unwrap();
        assert_eq!(c.get("k").unwrap(), Some(b("v")));
        assert_eq!(c.get("missing").unwrap(), None);

        assert_eq!(
            c.set_with("e", "1", SetOptions::default().ex(100)).unwrap(),
            SetOutcome::Written
        );
        assert!((1..=100).contains(&c.ttl("e").unwrap()));
        assert_eq!(
            c.set_with("e", "2", SetOptions::default().nx()).unwrap(),
            SetOutcome::NotWritten
        );
        assert_eq!(
            c.set_with("nothing", "2", SetOptions::default().xx()).unwrap(),
            SetOutcome::NotWritten
        );
        assert_eq!(c.get("nothing").unwrap(), None);
        assert_eq!(
            c.set_with(
                "e",
                "3",
                SetOptions {
                    keepttl: true,
                    get: true,
                    ..SetOptions::default()
                }
            )
            .unwrap(),
            SetOutcome::Previous(Some(b("1")))
        );
        assert!(c.ttl("e").unwrap() > 0, "KEEPTTL kept the expiry");
        assert_eq!(
            c.set_with("p", "x", SetOptions::default().px(50_000)).unwrap(),
            SetOutcome::Written
        );
        assert!((1..=50).contains(&c.ttl("p").unwrap()));
        assert_eq!(
            c.set_with("fresh", "x", SetOptions::default().get()).unwrap(),
            SetOutcome::Previous(None)
        );
        assert_eq!(
            server_code(c.set_with("e", "x", SetOptions::default().nx().xx())),
            "ERR"
        );

        assert_eq!(c.exists(&["k", "e", "missing"]).unwrap(), 2);
        assert_eq!(c.del(&["k", "missing"]).unwrap(), 1);
        assert_eq!(c.exists(&["k"]).unwrap(), 0);

        assert_eq!(c.incr("n").unwrap(), 1);
        assert_eq!(c.incr_by("n", 10).unwrap(), 11);
        assert_eq!(c.decr("n").unwrap(), 10);
        assert_eq!(c.decr_by("n", 15).unwrap(), -5);
        c.set("text", "abc").unwrap();
        assert_eq!(server_code(c.incr("text")), "ERR", "not an integer");
        assert_eq!(server_code(c.lpush("e", &["x"])), "WRONGTYPE");

        c.mset(&[("a", "1"), ("b", "2")]).unwrap();
        assert_eq!(
            c.mget(&["a", "missing", "b"]).unwrap(),
            vec![Some(b("1")), None, Some(b("2"))]
        );

        assert!(c.expire("a", 100).unwrap());
        assert!(!c.expire("missing", 100).unwrap());
        assert!((1..=100).contains(&c.ttl("a").unwrap()));
        assert_eq!(c.ttl("b").unwrap(), -1);
        assert_eq!(c.ttl("missing").unwrap(), -2);

        assert_eq!(c.hset("h", &[("f1", "v1"), ("f2", "v2")]).unwrap(), 2);
        assert_eq!(c.hset("h", &[("f1", "v1b")]).unwrap(), 0);
        assert_eq!(c.hget("h", "f1").unwrap(), Some(b("v1b")));
        assert_eq!(c.hget("h", "nope").unwrap(), None);
        let mut all = c.hgetall("h").unwrap();
        all.sort();
        assert_eq!(all, vec![(b("f1"), b("v1b")), (b("f2"), b("v2"))]);
        assert!(c.hgetall("missing").unwrap().is_empty());

        assert_eq!(c.lpush("l", &["a", "b"]).unwrap(), 2);
        assert_eq!(c.rpush("l", &["c"]).unwrap(), 3);
        assert_eq!(c.lrange("l", 0, -1).unwrap(), vec![b("b"), b("a"), b("c")]);
        assert_eq!(c.lrange("l", -1, -1).unwrap(), vec![b("c")]);

        assert_eq!(c.sadd("s", &["x", "y", "x"]).unwrap(), 2);
        let members: BTreeSet<Bytes> = c.smembers("s").unwrap().into_iter().collect();
        assert_eq!(members, BTreeSet::from([b("x"), b("y")]));

        assert_eq!(c.publish("nobody-listens", "m").unwrap(), 0);

        let before = c.dbsize().unwrap();
        c.select(1).unwrap();
        assert_eq!(c.options().database, 1);
        assert_eq!(c.dbsize().unwrap(), 0);
        c.set("only-in-1", "x").unwrap();
        c.select(0).unwrap();
        assert_eq!(c.get("only-in-1").unwrap(), None);
        assert_eq!(c.dbsize().unwrap(), before);
        c.select(1).unwrap();
        c.flushdb().unwrap();
        c.select(0).unwrap();

        // The generic builder and typed conversions.
        assert_eq!(c.query_as::<String>(&cmd("ECHO").arg("hi")).unwrap(), "hi");
        assert_eq!(c.query(&cmd("STRLEN").arg("b")).unwrap(), Value::Integer(1));
        assert!(c.client_id().unwrap() > 0);
        assert!(matches!(c.query_as::<i64>(&cmd("GET").arg("b")), Ok(2)));
        assert!(matches!(
            c.query_as::<i64>(&cmd("LRANGE").arg("l").arg(0).arg(-1)),
            Err(Error::UnexpectedReply { .. })
        ));

        // Transactions, and commands the connection refuses before sending.
        let tx = c.transaction(&[cmd("INCR").arg("t"), cmd("INCR").arg("t")]).unwrap();
        assert_eq!(tx, Value::Array(vec![Value::Integer(1), Value::Integer(2)]));
        assert!(matches!(
            c.transaction(&[cmd("INCR").arg("t"), cmd("NOSUCHCOMMAND")]),
            Err(Error::TransactionAborted(_))
        ));
        assert_eq!(c.get("t").unwrap(), Some(b("2")), "an aborted transaction ran nothing");
        assert!(matches!(c.send_buffered(&cmd("MONITOR")), Err(Error::Refused(_))));

        c.flushdb().unwrap();
        assert_eq!(c.dbsize().unwrap(), 0);
        assert_eq!(c.connections(), 1);
    }
}

// ---- pipelines ----

fn pipeline_100k(driver: DriverKind) {
    const N: usize = 100_000;
    let server = RedisServer::start(&[]);
    let mut c = connect(&server, driver, Protocol::Resp3);

    // More than the default max_pending (65,536): the rest goes out as replies come back.
    let started = Instant::now();
    for _ in 0..N {
        c.send_buffered(&cmd("INCR").arg("counter")).unwrap();
    }
    let replies = c.flush().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(replies.len(), N);
    for (i, reply) in replies.into_iter().enumerate() {
        assert_eq!(reply.unwrap(), Value::Integer(i as i64 + 1), "reply {i}");
    }
    eprintln!("{driver}: {N} INCR in one flush: {elapsed:?}");

    // SET/GET pairs with a small max_pending, so most of them wait in the client.
    let mut small = Client::connect_with(options(server.addr, driver).max_pending(1000)).unwrap();
    for i in 0..N / 2 {
        small
            .send_buffered(&cmd("SET").arg(format!("key:{i}")).arg(format!("value:{i}")))
            .unwrap();
        small.send_buffered(&cmd("GET").arg(format!("key:{i}"))).unwrap();
    }
    assert_eq!(small.buffered(), N);
    let replies = small.flush().unwrap();
    assert_eq!(replies.len(), N);
    for (i, pair) in replies.chunks(2).enumerate() {
        assert_eq!(pair[0].as_ref().unwrap(), &Value::SimpleString(b("OK")), "SET {i}");
        assert_eq!(pair[1].as_ref().unwrap(), &bulk(&format!("value:{i}")), "GET {i}");
    }
    assert_eq!(small.buffered(), 0);
    assert_eq!(small.dbsize().unwrap(), 1 + N as i64 / 2);

    // A query after buffered requests: its reply, and the earlier ones kept for flush.
    let first = c.send_buffered(&cmd("GET").arg("counter")).unwrap();
    let second = c.send_buffered(&cmd("ECHO").arg("x")).unwrap();
    assert!(second > first);
    assert_eq!(c.query(&cmd("ECHO").arg("now")).unwrap(), bulk("now"));
    let rest = c.flush().unwrap();
    assert_eq!(rest.len(), 2);
    assert_eq!(rest[0].as_ref().unwrap(), &bulk(&N.to_string()));
    assert_eq!(rest[1].as_ref().unwrap(), &bulk("x"));
    assert!(c.flush().unwrap().is_empty());

    // Discarded requests run (they were encoded), but their replies reach nobody.
    c.send_buffered(&cmd("ECHO").arg("a")).unwrap();
    c.send_buffered(&cmd("ECHO").arg("b")).unwrap();
    assert_eq!(c.buffered(), 2);
    c.discard_buffered();
    assert_eq!(c.buffered(), 0);
    assert_eq!(c.query(&cmd("ECHO").arg("c")).unwrap(), bulk("c"));
    assert!(c.flush().unwrap().is_empty());

    // Requests beyond what the connection takes wait in the client, up to a byte bound.
    let mut bounded = Client::connect_with(
        options(server.addr, driver)
            .max_pending(2)
            .max_buffered_bytes(200)
            .idle_check(None),
    )
    .unwrap();
    let mut accepted = 0;
    let err = loop {
        match bounded.send_buffered(&cmd("ECHO").arg("0123456789")) {
            Ok(_) => accepted += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Backpressure { limit: 200, .. }), "{err:?}");
    assert!(accepted > 2, "{accepted} accepted");
    let replies = bounded.flush().unwrap();
    assert_eq!(replies.len(), accepted);
    assert!(replies.iter().all(|r| r.as_ref().unwrap() == &bulk("0123456789")));
}

// ---- values ----

fn binary_safe_and_64mib(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    for protocol in [Protocol::Resp3, Protocol::Resp2] {
        let mut c = connect(&server, driver, protocol);
        let every_byte: Vec<u8> = (0..=255u8).collect();
        let key = Bytes::from(every_byte.clone());
        let value = Bytes::from(every_byte.repeat(3));
        c.set(&key, &value).unwrap();
        assert_eq!(c.get(&key).unwrap(), Some(value.clone()));
        assert_eq!(c.query_as::<i64>(&cmd("STRLEN").arg(&key)).unwrap(), 768);
        // CR, LF and "\r\n" inside values and keys must not confuse the framing.
        c.set("\r\n", "a\r\nb\r\n$3\r\n").unwrap();
        assert_eq!(c.get("\r\n").unwrap(), Some(b("a\r\nb\r\n$3\r\n")));
        c.set("empty", "").unwrap();
        assert_eq!(c.get("empty").unwrap(), Some(Bytes::new()));
    }

    let mut c = connect(&server, driver, Protocol::Resp3);
    let big: Vec<u8> = (0..64 * 1024 * 1024)
        .map(|i: usize| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let big = Bytes::from(big);
    let started = Instant::now();
    c.set("big", big.clone()).unwrap();
    let back = c.get("big").unwrap().expect("the big value");
    eprintln!("{driver}: 64 MiB SET + GET: {:?}", started.elapsed());
    assert_eq!(back.len(), big.len());
    assert!(back == big, "the 64 MiB value came back changed");
    assert_eq!(c.query_as::<i64>(&cmd("STRLEN").arg("big")).unwrap(), 64 * 1024 * 1024);
    // The connection is still in step afterwards.
    assert_eq!(c.query(&cmd("ECHO").arg("after")).unwrap(), bulk("after"));
}

// `3.141` below is the literal DEBUG PROTOCOL sends, not an approximation of π.
#[allow(clippy::approx_constant)]
fn debug_protocol_every_type(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let cases = |p: &str| cmd("DEBUG").arg("PROTOCOL").arg(p);

    let mut c = connect(&server, driver, Protocol::Resp3);
    assert_eq!(c.protocol(), Protocol::Resp3);
    let hello = c.server_hello().expect("the HELLO reply");
    assert!(matches!(hello, Value::Map(_)));
    let types = [
        "string", "integer", "double", "bignum", "null", "array", "set", "map", "attrib", "push", "verbatim", "true",
        "false",
    ];
    let ints = |v: &[i64]| v.iter().map(|&i| Value::Integer(i)).collect::<Vec<_>>();
    let expected3 = vec![
        bulk("Hello World"),
        Value::Integer(12345),
        Value::Double(3.141),
        Value::BigNumber(b("1234567999999999999999999999999999999")),
        Value::Null,
        Value::Array(ints(&[0, 1, 2])),
        Value::Set(ints(&[0, 1, 2])),
        Value::Map(vec![
            (Value::Integer(0), Value::Boolean(false)),
            (Value::Integer(1), Value::Boolean(true)),
            (Value::Integer(2), Value::Boolean(false)),
        ]),
        Value::Attributed {
            attributes: vec![(
                bulk("key-popularity"),
                Value::Array(vec![bulk("key:123"), Value::Integer(90)]),
            )],
            value: Box::new(bulk("Some real reply following the attribute")),
        },
        bulk("Some real reply following the push reply"),
        Value::Verbatim {
            format: *b"txt",
            text: b("This is a verbatim\nstring"),
        },
        Value::Boolean(true),
        Value::Boolean(false),
    ];
    // One by one, then all in one pipeline (the push lands between replies).
    for (t, want) in types.iter().zip(&expected3) {
        assert_eq!(&c.query(&cases(t)).unwrap(), want, "RESP3 {t}");
    }
    for t in types {
        c.send_buffered(&cases(t)).unwrap();
    }
    let got: Vec<Value> = c.flush().unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(got, expected3);
    let push = Value::Push(vec![bulk("server-cpu-usage"), Value::Integer(42)]);
    for _ in 0..2 {
        assert_eq!(c.next_event(Duration::ZERO).unwrap(), Some(Event::Push(push.clone())));
    }
    assert_eq!(c.next_event(Duration::ZERO).unwrap(), None);

    let mut c = connect(&server, driver, Protocol::Resp2);
    assert_eq!(c.protocol(), Protocol::Resp2);
    assert!(c.server_hello().is_none());
    let expected2 = [
        Ok(bulk("Hello World")),
        Ok(Value::Integer(12345)),
        Ok(bulk("3.141")),
        Ok(bulk("1234567999999999999999999999999999999")),
        Ok(Value::Null),
        Ok(Value::Array(ints(&[0, 1, 2]))),
        Ok(Value::Array(ints(&[0, 1, 2]))),
        Ok(Value::Array(ints(&[0, 0, 1, 1, 2, 0]))),
        Ok(bulk("Some real reply following the attribute")),
        Err("ERR"),
        Ok(bulk("This is a verbatim\nstring")),
        Ok(Value::Integer(1)),
        Ok(Value::Integer(0)),
    ];
    for t in types {
        c.send_buffered(&cases(t)).unwrap();
    }
    let got = c.flush().unwrap();
    for ((t, got), want) in types.iter().zip(got).zip(expected2) {
        match (got, want) {
            (Ok(v), Ok(w)) => assert_eq!(v, w, "RESP2 {t}"),
            (Err(Error::Server(e)), Err(code)) => assert_eq!(e.code(), code, "RESP2 {t}"),
            (got, want) => panic!("RESP2 {t}: got {got:?}, want {want:?}"),
        }
    }
    assert_eq!(c.next_event(Duration::ZERO).unwrap(), None);
}

// ---- pub/sub and tracking ----

fn pubsub_and_tracking_interleaved(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut a = connect(&server, driver, Protocol::Resp3);
    let mut other = connect(&server, driver, Protocol::Resp3);

    a.subscribe(&["news"]).unwrap();
    a.psubscribe(&["sport.*"]).unwrap();
    a.enable_tracking().unwrap();
    a.set("k", "1").unwrap();
    assert_eq!(a.get("k").unwrap(), Some(b("1"))); // now tracked

    // One pipeline whose replies are interleaved with pushes to this very connection.
    a.send_buffered(&cmd("PUBLISH").arg("news").arg("m1")).unwrap();
    a.send_buffered(&cmd("SET").arg("k").arg("2")).unwrap();
    a.send_buffered(&cmd("GET").arg("k")).unwrap();
    a.send_buffered(&cmd("PUBLISH").arg("sport.golf").arg("m2")).unwrap();
    a.send_buffered(&cmd("INCR").arg("n")).unwrap();
    let replies: Vec<Value> = a.flush().unwrap().into_iter().map(Result::unwrap).collect();
    assert_eq!(
        replies,
        vec![
            Value::Integer(1),
            Value::SimpleString(b("OK")),
            bulk("2"),
            Value::Integer(1),
            Value::Integer(1)
        ]
    );
    let events: Vec<Event> = std::iter::from_fn(|| a.next_event(Duration::ZERO).unwrap()).collect();
    assert_eq!(
        events,
        vec![
            Event::Message(monocoque::redis::Message {
                kind: MessageKind::Channel,
                channel: b("news"),
                payload: b("m1"),
            }),
            Event::Invalidate(Invalidation {
                keys: Some(vec![b("k")])
            }),
            Event::Message(monocoque::redis::Message {
                kind: MessageKind::Pattern(b("sport.*")),
                channel: b("sport.golf"),
                payload: b("m2"),
            }),
        ]
    );

    // Another client's writes and publications arrive while this one keeps working.
    other.set("k", "3").unwrap();
    assert_eq!(other.publish("news", "m3").unwrap(), 1);
    assert_eq!(other.publish("sport.chess", "m4").unwrap(), 1);
    assert_eq!(a.ping().map(|_| "pong").unwrap(), "pong");
    let message = a.next_message(Duration::from_secs(5)).unwrap().expect("m3");
    assert_eq!((message.channel, message.payload), (b("news"), b("m3")));
    let inval = a.next_invalidation(Duration::from_secs(5)).unwrap().expect("k changed");
    assert_eq!(inval.keys, Some(vec![b("k")]));
    let message = a.next_message(Duration::from_secs(5)).unwrap().expect("m4");
    assert_eq!(message.pattern(), Some(&b("sport.*")));
    assert_eq!(message.payload, b("m4"));
    assert_eq!(a.get("k").unwrap(), Some(b("3")));
    assert_eq!(a.next_event(Duration::from_millis(50)).unwrap(), None);

    // Unsubscribed: publications no longer arrive.
    a.unsubscribe::<&str>(&[]).unwrap();
    a.punsubscribe::<&str>(&[]).unwrap();
    assert_eq!(other.publish("news", "m5").unwrap(), 0);
    a.disable_tracking().unwrap();
    other.set("k", "4").unwrap();
    assert_eq!(a.next_event(Duration::from_millis(100)).unwrap(), None);
}

fn resp2_subscriber_mode(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut a = connect(&server, driver, Protocol::Resp2);
    let mut other = connect(&server, driver, Protocol::Resp3);
    assert!(matches!(a.enable_tracking(), Err(Error::NeedsResp3(_))));

    a.subscribe(&["ch"]).unwrap();
    match a.get("x") {
        Err(Error::SubscriberMode { command }) => assert_eq!(command, "GET"),
        other => panic!("GET in subscriber mode: {other:?}"),
    }
    assert!(matches!(
        a.send_buffered(&cmd("set").arg("a").arg("b")),
        Err(Error::SubscriberMode { .. })
    ));
    a.ping().unwrap();
    assert_eq!(other.publish("ch", "hello").unwrap(), 1);
    let m = a.next_message(Duration::from_secs(5)).unwrap().expect("hello");
    assert_eq!(
        (m.kind, m.channel, m.payload),
        (MessageKind::Channel, b("ch"), b("hello"))
    );

    a.psubscribe(&["p.*"]).unwrap();
    assert_eq!(other.publish("p.1", "x").unwrap(), 1);
    let m = a.next_message(Duration::from_secs(5)).unwrap().expect("x");
    assert_eq!((m.pattern(), &m.payload), (Some(&b("p.*")), &b("x")));

    a.unsubscribe(&["ch"]).unwrap();
    assert!(
        matches!(a.get("x"), Err(Error::SubscriberMode { .. })),
        "still has a pattern"
    );
    a.punsubscribe::<&str>(&[]).unwrap();
    assert_eq!(a.get("x").unwrap(), None, "out of subscriber mode");
    assert_eq!(other.publish("ch", "gone").unwrap(), 0);
}

fn tracking_redirect_on_resp2(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut sink = connect(&server, driver, Protocol::Resp2);
    let sink_id = sink.client_id().unwrap();
    sink.subscribe(&["__redis__:invalidate"]).unwrap();
    let mut cache = connect(&server, driver, Protocol::Resp2);
    let mut writer = connect(&server, driver, Protocol::Resp2);
    cache.enable_tracking_redirect(sink_id).unwrap();
    writer.set("tk", "1").unwrap();
    assert_eq!(cache.get("tk").unwrap(), Some(b("1")));
    writer.set("tk", "2").unwrap();
    let inval = sink
        .next_invalidation(Duration::from_secs(5))
        .unwrap()
        .expect("an invalidation");
    assert_eq!(inval.keys, Some(vec![b("tk")]));
}

// ---- authentication and databases ----

fn auth_requirepass(driver: DriverKind) {
    // `RedisServer::start` waits for +PONG, so the password is set once it runs.
    let server = RedisServer::start(&[]);
    let mut setup = connect(&server, driver, Protocol::Resp3);
    setup
        .query(&cmd("CONFIG").arg("SET").arg("requirepass").arg("s3cr:t@"))
        .unwrap();
    drop(setup);
    let port = server.addr.port();
    for protocol in [Protocol::Resp3, Protocol::Resp2] {
        let good = ClientOptions::from_url(&format!("redis://:s3cr%3At%40@127.0.0.1:{port}"))
            .unwrap()
            .driver(driver)
            .protocol(protocol);
        let mut c = Client::connect_with(good).unwrap();
        c.ping().unwrap();
        c.set("k", "v").unwrap();
        assert_eq!(c.protocol(), protocol);

        let bad = ClientOptions::from_url(&format!("redis://:wrong@127.0.0.1:{port}"))
            .unwrap()
            .driver(driver)
            .protocol(protocol);
        match Client::connect_with(bad) {
            Err(Error::Handshake(HandshakeError::Rejected { message, .. })) => {
                assert!(message.starts_with(b"WRONGPASS"), "{message:?}")
            }
            other => panic!("wrong password: {other:?}"),
        }

        // No password: the connection works, every command is refused.
        let mut anonymous = Client::connect_with(options(server.addr, driver).protocol(Protocol::Resp2)).unwrap();
        assert_eq!(server_code(anonymous.get("k")), "NOAUTH");
    }
}

fn auth_acl_user(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut admin = connect(&server, driver, Protocol::Resp3);
    let setuser = cmd("ACL")
        .arg("SETUSER")
        .arg("alice")
        .arg("on")
        .arg(">p@ss:w/rd")
        .arg("~app:*")
        .arg("+@all");
    assert_eq!(admin.query(&setuser).unwrap(), Value::SimpleString(b("OK")));
    let port = server.addr.port();
    for protocol in [Protocol::Resp3, Protocol::Resp2] {
        let url = format!("redis://alice:p%40ss%3Aw%2Frd@127.0.0.1:{port}");
        let mut alice =
            Client::connect_with(ClientOptions::from_url(&url).unwrap().driver(driver).protocol(protocol)).unwrap();
        assert_eq!(alice.query_as::<String>(&cmd("ACL").arg("WHOAMI")).unwrap(), "alice");
        alice.set("app:1", "x").unwrap();
        assert_eq!(server_code(alice.set("other", "x")), "NOPERM");
        assert_eq!(alice.get("app:1").unwrap(), Some(b("x")));

        let wrong = format!("redis://alice:nope@127.0.0.1:{port}");
        let err = Client::connect_with(
            ClientOptions::from_url(&wrong)
                .unwrap()
                .driver(driver)
                .protocol(protocol),
        )
        .expect_err("wrong password");
        assert!(
            matches!(err, Error::Handshake(HandshakeError::Rejected { .. })),
            "{err:?}"
        );
    }
}

fn select_via_url(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut in3 = Client::connect_with(
        ClientOptions::from_url(&format!("{}/3", url(&server)))
            .unwrap()
            .driver(driver),
    )
    .unwrap();
    let mut admin = connect(&server, driver, Protocol::Resp3);
    in3.set("k", "three").unwrap();
    assert_eq!(admin.get("k").unwrap(), None);
    admin.select(3).unwrap();
    assert_eq!(admin.get("k").unwrap(), Some(b("three")));
    admin.select(0).unwrap();
    let info: String = in3.query_as(&cmd("CLIENT").arg("INFO")).unwrap();
    assert!(info.contains(" db=3 "), "{info}");

    // The server drops the connection: the next call reconnects, into database 3 again.
    let id = in3.client_id().unwrap();
    let killed: i64 = admin.query_as(&cmd("CLIENT").arg("KILL").arg("ID").arg(id)).unwrap();
    assert_eq!(killed, 1);
    thread::sleep(Duration::from_millis(150));
    assert_eq!(in3.get("k").unwrap(), Some(b("three")));
    assert_eq!(in3.connections(), 2);
    assert_ne!(in3.client_id().unwrap(), id);
    assert_eq!(in3.next_event(Duration::ZERO).unwrap(), Some(Event::Reconnected));

    // `select` changes the database reconnects use.
    in3.select(5).unwrap();
    in3.set("k5", "five").unwrap();
    let id = in3.client_id().unwrap();
    admin.query(&cmd("CLIENT").arg("KILL").arg("ID").arg(id)).unwrap();
    thread::sleep(Duration::from_millis(150));
    assert_eq!(in3.get("k5").unwrap(), Some(b("five")));
    assert_eq!(in3.connections(), 3);
}

// ---- failures ----

fn kill_mid_pipeline_then_restart(driver: DriverKind) {
    const FIRST: usize = 20_000;
    const SECOND: usize = 30_000;
    let mut server = RedisServer::start(&[]);
    let addr = server.addr;
    let policy = ReconnectPolicy {
        initial: Duration::from_millis(20),
        max: Duration::from_millis(100),
        jitter: 0.0,
        max_attempts: Some(30),
    };
    // A small max_pending keeps most of the pipeline in the client when the server dies:
    // those requests were never sent, so they go to the restarted server.
    let mut c = Client::connect_with(options(addr, driver).max_pending(2000).reconnect(policy)).unwrap();
    c.subscribe(&["events"]).unwrap();
    c.set("marker", "old").unwrap();

    for _ in 0..FIRST {
        c.send_buffered(&cmd("INCR").arg("counter")).unwrap();
    }
    c.send_buffered(&cmd("DEBUG").arg("SLEEP").arg(2)).unwrap();
    for _ in 0..SECOND {
        c.send_buffered(&cmd("INCR").arg("counter")).unwrap();
    }
    let killer = thread::spawn(move || {
        thread::sleep(Duration::from_millis(400)); // the server is in DEBUG SLEEP
        server.kill();
        thread::sleep(Duration::from_millis(200));
        server.restart(&[]);
        server
    });
    let replies = c.flush().unwrap();
    let server = killer.join().unwrap();
    assert_eq!(replies.len(), FIRST + 1 + SECOND);

    // Replies from the first server count 1, 2, 3...; then requests lost with it fail;
    // then requests sent to the restarted (empty) server count from 1 again. Nothing
    // else: no reply lands on the wrong request.
    let mut phase = 0; // 0: first server, 1: failures, 2: restarted server
    let (mut first_ok, mut failed, mut second_ok) = (0i64, 0usize, 0i64);
    for (i, reply) in replies.iter().enumerate() {
        if i == FIRST {
            match reply {
                Ok(v) => panic!("DEBUG SLEEP answered {v:?} although the server was killed during it"),
                Err(e) => assert!(e.is_connection_failure(), "DEBUG SLEEP: {e:?}"),
            }
            phase = phase.max(1);
            failed += 1;
            continue;
        }
        match (phase, reply) {
            (0, Ok(Value::Integer(n))) if *n == first_ok + 1 => first_ok += 1,
            (0 | 1, Err(e)) if e.is_connection_failure() => {
                phase = 1;
                failed += 1;
            }
            (1 | 2, Ok(Value::Integer(n))) if *n == second_ok + 1 => {
                phase = 2;
                second_ok += 1;
            }
            _ => panic!(
                "reply {i} out of place (phase {phase}, {first_ok} ok, {failed} failed, {second_ok} ok): {reply:?}"
            ),
        }
    }
    // Replies written before the kill arrived; at most the requests on the wire (2000)
    // can have been lost with the server.
    assert!(
        first_ok as usize + 2000 >= FIRST,
        "only {first_ok} of the first {FIRST} answered"
    );
    assert!(second_ok > 0, "requests never sent went to the restarted server");
    assert_eq!(first_ok as usize + failed + second_ok as usize, FIRST + 1 + SECOND);
    eprintln!("{driver}: {first_ok} answered, {failed} lost with the server, {second_ok} answered after the restart");

    // The client is on the new server, resubscribed, and told the application.
    assert_eq!(c.get("marker").unwrap(), None, "a fresh server");
    assert_eq!(c.get("counter").unwrap(), Some(b(&second_ok.to_string())));
    assert_eq!(c.connections(), 2);
    let mut other = Client::connect_with(options(server.addr, driver)).unwrap();
    assert_eq!(other.publish("events", "after-restart").unwrap(), 1);
    let mut saw_reconnected = false;
    let message = loop {
        match c.next_event(Duration::from_secs(5)).unwrap() {
            Some(Event::Reconnected) => saw_reconnected = true,
            Some(Event::Message(m)) => break m,
            other => panic!("unexpected event {other:?}"),
        }
    };
    assert!(saw_reconnected);
    assert_eq!(message.payload, b("after-restart"));

    // Killed while idle: the next call notices before sending and reconnects.
    let mut server = server;
    server.kill();
    server.restart(&[]);
    thread::sleep(Duration::from_millis(150)); // idle for longer than `idle_check`
    c.set("k", "v").unwrap();
    assert_eq!(c.get("k").unwrap(), Some(b("v")));
    assert_eq!(c.connections(), 3);
    assert_eq!(
        other.publish("events", "again").unwrap(),
        1,
        "`other` reconnected too, `c` resubscribed"
    );
    assert_eq!(
        c.next_message(Duration::from_secs(5)).unwrap().map(|m| m.payload),
        Some(b("again"))
    );

    // Gone for good: a call fails once the policy's attempts are spent; the next call
    // starts over and succeeds once the server is back.
    server.kill();
    thread::sleep(Duration::from_millis(150));
    let started = Instant::now();
    match c.get("k") {
        Err(Error::Link(LinkError::Reconnect { attempts, last })) => {
            assert_eq!(attempts, 30);
            assert!(matches!(*last, Error::Link(LinkError::Connect { .. })), "{last:?}");
        }
        other => panic!("no server: {other:?}"),
    }
    eprintln!("{driver}: 30 reconnect attempts took {:?}", started.elapsed());
    server.restart(&[]);
    assert_eq!(c.get("k").unwrap(), None);
    assert_eq!(c.connections(), 4);
}

/// A fake server: accepts `connections` connections, each served on its own thread,
/// answers `HELLO` with a minimal map, and hands every other command to
/// `on_command(connection number, command name, stream)`. A connection's thread ends
/// when the client closes it.
fn fake_server(
    connections: usize,
    on_command: impl Fn(usize, &str, &mut TcpStream) + Send + Sync + 'static,
) -> (SocketAddr, thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake server");
    let addr = listener.local_addr().unwrap();
    let on_command = std::sync::Arc::new(on_command);
    let handle = thread::spawn(move || {
        let mut served = Vec::new();
        for n in 0..connections {
            let (stream, _) = listener.accept().expect("accept");
            let on_command = on_command.clone();
            served.push(thread::spawn(move || serve_fake(n, stream, &*on_command)));
        }
        for t in served {
            t.join().expect("a fake connection thread");
        }
    });
    (addr, handle)
}

fn serve_fake(n: usize, mut stream: TcpStream, on_command: &dyn Fn(usize, &str, &mut TcpStream)) {
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut decoder = Decoder::new(DecoderConfig::default());
    let mut input = SegmentedBuffer::new();
    let mut buf = vec![0u8; 4096];
    loop {
        let value = loop {
            if let Some(v) = decoder.decode(&mut input).expect("a valid command") {
                break Some(v);
            }
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break None,
                Ok(k) => input.push_slice(&buf[..k]),
            }
        };
        let Some(Value::Array(args)) = value else { return };
        let name = String::from_utf8_lossy(args[0].as_bytes().expect("bulk name")).to_uppercase();
        if name == "HELLO" {
            // Errors writing mean the client is gone; the next read ends the loop.
            let _ = stream.write_all(b"%1\r\n$5\r\nproto\r\n:3\r\n");
            continue;
        }
        on_command(n, &name, &mut stream);
    }
}

fn stalled_half_frame_poisons(driver: DriverKind) {
    let (addr, server) = fake_server(2, |conn, _name, stream| {
        let _ = if conn == 0 {
            // Half a bulk string, then silence (the socket stays open until the client
            // closes it).
            stream.write_all(b"$10\r\nabc")
        } else {
            stream.write_all(b"$3\r\nxyz\r\n")
        };
    });
    let timeout = Duration::from_millis(300);
    let mut c = Client::connect_with(options(addr, driver).response_timeout(Some(timeout))).unwrap();
    assert_eq!(c.protocol(), Protocol::Resp3);
    let started = Instant::now();
    let err = c.get("first").expect_err("a stalled reply");
    let waited = started.elapsed();
    assert!(
        matches!(err, Error::Connection(ConnectionError::TimedOutMidFrame)),
        "{err:?}"
    );
    assert!(
        waited >= timeout && waited < Duration::from_secs(2),
        "waited {waited:?}"
    );
    // The next request runs on a new connection and sees its own reply, not "abc...".
    assert_eq!(c.get("second").unwrap(), Some(b("xyz")));
    assert_eq!(c.connections(), 2);
    drop(c);
    server.join().unwrap();
}

fn late_reply_is_never_misdelivered(driver: DriverKind) {
    let (addr, server) = fake_server(1, |_, name, stream| {
        if name == "GET" {
            // The first GET: answer nothing until the second arrives, then both.
        } else if name == "ECHO" {
            thread::sleep(Duration::from_millis(50));
            let _ = stream.write_all(b"$4\r\nlate\r\n$5\r\nfresh\r\n");
        }
    });
    let timeout = Duration::from_millis(200);
    let mut c = Client::connect_with(options(addr, driver).response_timeout(Some(timeout))).unwrap();
    let started = Instant::now();
    assert!(matches!(c.get("slow"), Err(Error::Timeout)));
    assert!(started.elapsed() >= timeout);
    // The timed-out GET's reply ("late") arrives first and is dropped.
    assert_eq!(c.query(&cmd("ECHO").arg("fresh")).unwrap(), bulk("fresh"));
    assert_eq!(c.connections(), 1, "a plain timeout keeps the connection");
    drop(c);
    server.join().unwrap();
}

fn bulk_over_limit_is_an_error(driver: DriverKind) {
    const LIMIT: usize = 1024 * 1024;
    let server = RedisServer::start(&[]);
    {
        let mut writer = connect(&server, driver, Protocol::Resp3);
        writer.set("small", vec![b's'; LIMIT]).unwrap();
        writer.set("big", vec![b'b'; LIMIT + 1]).unwrap();
    }
    let mut c = Client::connect_with(options(server.addr, driver).max_bulk_len(LIMIT)).unwrap();
    assert_eq!(c.get("small").unwrap().map(|v| v.len()), Some(LIMIT));
    match c.get("big") {
        Err(Error::Connection(ConnectionError::Decode(DecodeError::BulkTooLong { len, max }))) => {
            assert_eq!((len, max), (LIMIT as u64 + 1, LIMIT))
        }
        other => panic!("a bulk over the limit: {other:?}"),
    }
    // Nothing of the big value leaks into the next request's reply.
    assert_eq!(c.get("small").unwrap().map(|v| v.len()), Some(LIMIT));
    assert_eq!(c.connections(), 2);

    assert_eq!(c.query(&cmd("ECHO").arg("ok")).unwrap(), bulk("ok"));
}

fn bulk_of_4gib_is_refused_from_its_header(driver: DriverKind) {
    // A server that announces a 4 GiB string and sends a few MiB of it: the client must
    // refuse it from the header (the default limit is 512 MiB), not reserve 4 GiB.
    let (addr, server) = fake_server(1, |_, _, stream| {
        let _ = stream.write_all(b"$4294967296\r\n");
        let chunk = vec![b'x'; 1024 * 1024];
        for _ in 0..8 {
            if stream.write_all(&chunk).is_err() {
                break;
            }
        }
    });
    let mut c = Client::connect_with(options(addr, driver).reconnect(ReconnectPolicy::once())).unwrap();
    match c.get("huge") {
        Err(Error::Connection(ConnectionError::Decode(DecodeError::BulkTooLong { len, max }))) => {
            assert_eq!((len, max), (1 << 32, 512 * 1024 * 1024))
        }
        other => panic!("a 4 GiB bulk: {other:?}"),
    }
    drop(c);
    server.join().unwrap();
}

// ---- the generic form, and blocking without spinning ----

/// A driver that forwards to a real one and counts its turns.
struct Counting {
    inner: AnyDriver<Connection>,
    turns: usize,
    /// Turns that reported no activity (only a deadline should cause those).
    empty: usize,
}

impl Driver<Connection> for Counting {
    fn connect_with(
        &mut self,
        addr: SocketAddr,
        session: Connection,
        options: &monocoque::proto::chassis::SocketOptions,
    ) -> std::io::Result<ConnId> {
        self.inner.connect_with(addr, session, options)
    }
    fn adopt(&mut self, stream: TcpStream, session: Connection) -> std::io::Result<ConnId> {
        self.inner.adopt(stream, session)
    }
    fn listen(&mut self, addr: SocketAddr, factory: SessionFactory<Connection>) -> std::io::Result<ListenerId> {
        self.inner.listen(addr, factory)
    }
    fn listener_addr(&self, listener: ListenerId) -> std::io::Result<SocketAddr> {
        self.inner.listener_addr(listener)
    }
    fn close_listener(&mut self, listener: ListenerId) -> std::io::Result<()> {
        self.inner.close_listener(listener)
    }
    fn core(&self) -> monocoque::proto::CoreId {
        self.inner.core()
    }
    fn connection_count(&self) -> usize {
        self.inner.connection_count()
    }
    fn session(&self, conn: ConnId) -> Option<&Connection> {
        self.inner.session(conn)
    }
    fn session_for_output(&mut self, conn: ConnId) -> Option<&mut Connection> {
        self.inner.session_for_output(conn)
    }
    fn remove(&mut self, conn: ConnId) -> Option<Connection> {
        self.inner.remove(conn)
    }
    fn turn(&mut self, deadline: Option<Instant>, out: &mut Vec<Activity>) -> std::io::Result<()> {
        let before = out.len();
        self.inner.turn(deadline, out)?;
        self.turns += 1;
        if out.len() == before {
            self.empty += 1;
        }
        Ok(())
    }
    fn waker(&mut self) -> std::io::Result<monocoque::proto::Waker> {
        self.inner.waker()
    }
}

impl Counting {
    fn take(&mut self) -> (usize, usize) {
        let counts = (self.turns, self.empty);
        (self.turns, self.empty) = (0, 0);
        counts
    }
}

fn waits_in_the_driver_without_spinning(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let counting = Counting {
        inner: AnyDriver::new(driver).expect("the driver starts"),
        turns: 0,
        empty: 0,
    };
    let mut c: Client<Counting> =
        Client::connect_with_driver(counting, options(server.addr, driver).idle_check(None)).unwrap();
    c.driver_mut().take();

    // A 10,000-command pipeline: every turn brought replies, and far fewer turns than
    // commands.
    for _ in 0..10_000 {
        c.send_buffered(&cmd("INCR").arg("n")).unwrap();
    }
    let replies = c.flush().unwrap();
    assert_eq!(replies.last().unwrap().as_ref().unwrap(), &Value::Integer(10_000));
    let (turns, empty) = c.driver_mut().take();
    eprintln!("{driver}: 10,000 replies in {turns} turns");
    assert_eq!(empty, 0, "a blocking flush never turns for nothing");
    assert!(turns < 1_000, "{turns} turns for one pipeline");

    // A reply that takes 300 ms: the client sleeps in the driver meanwhile.
    let started = Instant::now();
    assert_eq!(
        c.query(&cmd("DEBUG").arg("SLEEP").arg("0.3")).unwrap(),
        Value::SimpleString(b("OK"))
    );
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (turns, empty) = c.driver_mut().take();
    assert!(
        turns <= 3 && empty == 0,
        "{turns} turns ({empty} empty) waiting for one slow reply"
    );

    // Waiting for a message that does not come: one turn to the deadline, one last look.
    let started = Instant::now();
    assert_eq!(c.next_message(Duration::from_millis(300)).unwrap(), None);
    assert!(started.elapsed() >= Duration::from_millis(300));
    let (turns, _) = c.driver_mut().take();
    assert!(turns <= 3, "{turns} turns waiting 300 ms for nothing");
}

// ---- more failure paths ----

fn lost_restore_is_reported(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut admin = connect(&server, driver, Protocol::Resp3);
    let setuser = cmd("ACL")
        .arg("SETUSER")
        .arg("u")
        .arg("on")
        .arg(">pw")
        .arg("~*")
        .arg("+@all");
    admin.query(&setuser.arg("resetchannels").arg("&news")).unwrap();
    let url = format!("redis://u:pw@127.0.0.1:{}", server.addr.port());
    let mut c = Client::connect_with(ClientOptions::from_url(&url).unwrap().driver(driver)).unwrap();
    c.subscribe(&["news"]).unwrap();
    // Revoking the channel disconnects the subscriber; resubscribing is then refused.
    admin
        .query(&cmd("ACL").arg("SETUSER").arg("u").arg("resetchannels"))
        .unwrap();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while events.len() < 2 && Instant::now() < deadline {
        if let Some(e) = c.next_event(Duration::from_millis(100)).unwrap() {
            events.push(e);
        }
    }
    match events.as_slice() {
        [Event::Reconnected, Event::RestoreFailed(e)] => assert_eq!(e.code(), "NOPERM"),
        other => panic!("events after the revocation: {other:?}"),
    }
    // The client works, without the subscription.
    c.set("k", "v").unwrap();
    assert_eq!(admin.publish("news", "x").unwrap(), 0);
    assert_eq!(c.connections(), 2);
}

fn transaction_cut_by_a_lost_connection_is_not_resent(driver: DriverKind) {
    // The first connection acknowledges MULTI and dies; the second answers GET.
    let (addr, server) = fake_server(2, |conn, name, stream| {
        if conn == 0 {
            // The client may send the next command as soon as +OK arrives, before it sees
            // the shutdown: that command reaches this dead connection and gets no reply.
            if name == "MULTI" {
                let _ = stream.write_all(b"+OK\r\n");
                let _ = stream.shutdown(std::net::Shutdown::Both);
            }
        } else {
            assert_eq!(name, "GET", "the transaction's remains never reach a new connection");
            let _ = stream.write_all(b"$5\r\nafter\r\n");
        }
    });
    // max_pending(1): one request on the wire at a time, the rest wait in the client.
    let mut c = Client::connect_with(options(addr, driver).max_pending(1).idle_check(None)).unwrap();
    for command in [
        cmd("MULTI"),
        cmd("SET").arg("a").arg("1"),
        cmd("SET").arg("b").arg("2"),
        cmd("EXEC"),
    ] {
        c.send_buffered(&command).unwrap();
    }
    c.send_buffered(&cmd("GET").arg("c")).unwrap();
    let replies = c.flush().unwrap();
    assert_eq!(replies[0].as_ref().unwrap(), &Value::SimpleString(b("OK")));
    for (i, r) in replies[1..4].iter().enumerate() {
        assert!(
            matches!(r, Err(e) if e.is_connection_failure()),
            "entry {}: {r:?}",
            i + 1
        );
    }
    assert_eq!(replies[4].as_ref().unwrap(), &bulk("after"));
    assert_eq!(c.connections(), 2);
    drop(c);
    server.join().unwrap();
}

/// A listener whose accept queue is full (backlog 0, filled by connects nobody
/// accepts): the kernel drops further SYNs, so a connect to it hangs for minutes.
/// Returns the listener and the fillers, to keep alive while the test runs.
fn full_backlog() -> (socket2::Socket, Vec<TcpStream>, SocketAddr) {
    let sock = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    sock.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    sock.listen(0).unwrap();
    let addr = sock.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    for _ in 0..16 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(300)) {
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
    let result = Client::connect_with(options(addr, driver).connect_timeout(timeout));
    let waited = started.elapsed();
    // The TCP connect was given the whole timeout: that is what the error reports.
    assert!(
        matches!(result, Err(Error::Link(LinkError::ConnectTimeout { timeout: t, .. })) if t == timeout),
        "{result:?}"
    );
    assert!(
        waited >= timeout && waited < timeout + Duration::from_secs(5),
        "waited {waited:?}"
    );
}

fn a_host_name_connects(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut c = Client::connect_with(ClientOptions::new("localhost", server.addr.port()).driver(driver)).unwrap();
    c.set("k", "v").unwrap();
    assert_eq!(c.get("k").unwrap(), Some(b("v")));
}

fn handshake_without_reply_times_out(driver: DriverKind) {
    // A listener that never answers: the kernel completes the TCP handshake, HELLO waits.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap();
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    let result = Client::connect_with(options(addr, driver).connect_timeout(timeout).response_timeout(None));
    assert!(
        matches!(result, Err(Error::Link(LinkError::ConnectTimeout { timeout: t, .. })) if t == timeout),
        "{result:?}"
    );
    let waited = started.elapsed();
    assert!(
        waited >= timeout && waited < Duration::from_secs(3),
        "waited {waited:?}"
    );
    // With a response timeout shorter than the connect timeout, the handshake step fails.
    let result = Client::connect_with(
        options(addr, driver)
            .connect_timeout(Duration::from_secs(5))
            .response_timeout(Some(timeout)),
    );
    assert!(
        matches!(result, Err(Error::Handshake(HandshakeError::Timeout { .. }))),
        "{result:?}"
    );
    drop(silent);
}
