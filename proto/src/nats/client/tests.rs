//! The connection against the fake server, over the simulated link, and fed bytes
//! directly where the exact bytes matter.

use std::time::{Duration, Instant};

use bytes::Bytes;

use super::fake_server::{info, FakeServer, Require};
use super::*;
use crate::chassis::sim::{LinkConfig, Pair};
use crate::chassis::Backpressure;
use crate::nats::{ClientOp, DecodeError, EncodeError, HeaderMap, ServerError, ServerErrorKind, ServerOp, StatusCode};

type P = Pair<Connection, FakeServer>;

const SEED: &str = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU";
const PUBLIC: &str = "UCK5N7N66OBOINFXAYC2ACJQYFSOD4VYNU6APEJTAVFZB2SVHLKGEW7L";

fn config() -> ClientConfig {
    ClientConfig {
        name: Some("test".into()),
        seed: 42,
        ..ClientConfig::default()
    }
}

fn pair_with(client: ClientConfig, server: FakeServer, seed: u64) -> P {
    let now = Instant::now();
    Pair::new(Connection::new(client, now), server, now, seed, LinkConfig::default())
}

fn pair(client: ClientConfig) -> P {
    pair_with(client, FakeServer::plain(), 7)
}

/// Steps while bytes are queued or in flight (the clock moves only by link latency),
/// closing the client's side when the server has closed.
fn settle(p: &mut P) {
    for _ in 0..100_000 {
        let server_unsent = p.b.poll_transmit().is_some();
        if p.b.is_closed() && !server_unsent {
            p.close_b();
        }
        let busy = p.in_flight() != (0, 0)
            || (p.a.poll_transmit().is_some() && !p.a.is_closed())
            || server_unsent
            || (p.b.is_closed() && !p.a.is_closed());
        if !busy || !p.step() {
            return;
        }
    }
    panic!("the link did not settle");
}

fn connected() -> P {
    let mut p = pair(config());
    settle(&mut p);
    assert!(p.a.is_connected(), "{:?}", p.events_a);
    assert!(matches!(p.events_a.remove(0), Event::Connected { .. }));
    p
}

/// Events the link collected, then those still queued in the connection.
fn take_events(p: &mut P) -> Vec<Event> {
    let mut events = std::mem::take(&mut p.events_a);
    events.extend(std::iter::from_fn(|| p.a.poll_event()));
    events
}

fn server_ops(p: &mut P) -> Vec<ClientOp> {
    std::mem::take(&mut p.events_b)
}

fn payload(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

fn drain(p: &mut P, sid: &Sid) -> Vec<Bytes> {
    std::iter::from_fn(|| p.a.next_message(sid))
        .map(|m| m.payload)
        .collect()
}

fn poisoned(events: &[Event]) -> Option<&ConnectionError> {
    events.iter().find_map(|e| match e {
        Event::Poisoned(e) => Some(e),
        _ => None,
    })
}

// ---- handshake ----

#[test]
fn handshake_sends_connect_and_ping_then_is_connected_on_pong() {
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    assert!(conn.poll_transmit().is_none(), "the server speaks first");
    assert_eq!(conn.poll_timeout(), Some(now + Duration::from_secs(5)));
    conn.handle_input(
        Bytes::from_static(
            b"INFO {\"server_id\":\"S\",\"headers\":true,\"max_payload\":64,\"connect_urls\":[\"10.0.0.2:4222\"]}\r\n",
        ),
        now,
    )
    .unwrap();
    let sent = conn.poll_transmit().unwrap().to_vec();
    let text = String::from_utf8(sent).unwrap();
    let (connect, rest) = text.split_once("\r\n").unwrap();
    assert_eq!(rest, "PING\r\n");
    let json: serde_json::Value = serde_json::from_str(connect.strip_prefix("CONNECT ").unwrap()).unwrap();
    for (key, want) in [
        ("verbose", serde_json::json!(false)),
        ("pedantic", serde_json::json!(false)),
        ("headers", serde_json::json!(true)),
        ("no_responders", serde_json::json!(true)),
        ("echo", serde_json::json!(true)),
        ("protocol", serde_json::json!(1)),
        ("name", serde_json::json!("test")),
        ("lang", serde_json::json!("rust")),
    ] {
        assert_eq!(json[key], want, "{key} in {connect}");
    }
    assert!(json.get("auth_token").is_none() && json.get("sig").is_none());
    assert!(!conn.is_connected());
    assert_eq!(
        conn.poll_event(),
        Some(Event::ServersDiscovered {
            added: vec!["10.0.0.2:4222".into()]
        })
    );
    conn.handle_input(Bytes::from_static(b"PONG\r\n"), now).unwrap();
    let Some(Event::Connected { info }) = conn.poll_event() else {
        panic!("connected")
    };
    assert_eq!(info.server_id, "S");
    assert!(conn.is_connected());
    assert_eq!(
        conn.poll_timeout(),
        Some(now + Duration::from_secs(120)),
        "keepalive armed"
    );
    // The server's max_payload now bounds publishes.
    let big = Bytes::from(vec![0u8; 65]);
    assert!(matches!(
        conn.publish(b"s", None, None, &big, now),
        Err(SendError::Encode(EncodeError::PayloadTooLarge { size: 65, max: 64 }))
    ));
}

#[test]
fn verbose_and_pedantic_are_sent_and_acknowledgements_ignored() {
    let mut p = pair(ClientConfig {
        verbose: true,
        pedantic: true,
        echo: false,
        ..config()
    });
    settle(&mut p);
    assert!(p.a.is_connected());
    let c = p.b.connect.clone().unwrap();
    assert!(c.verbose && c.pedantic && !c.echo);
    let sid = p.a.subscribe(b"x", None, SubscriptionPolicy::default()).unwrap();
    p.a.publish(b"x", None, None, &payload("a"), p.now()).unwrap();
    settle(&mut p);
    assert!(p.a.is_connected(), "+OK acknowledgements are not errors");
    assert!(drain(&mut p, &sid).is_empty(), "no echo");
}

#[test]
fn every_auth_method_is_accepted_by_a_checking_server() {
    let creds = format!(
        "-----BEGIN NATS USER JWT-----\nhead.claims.sig\n------END NATS USER JWT------\n\n\
         -----BEGIN USER NKEY SEED-----\n{SEED}\n------END USER NKEY SEED------\n"
    );
    let cases = [
        (Auth::Token("tok".into()), Require::Token("tok")),
        (
            Auth::UserPassword {
                user: "u".into(),
                password: "p".into(),
            },
            Require::UserPassword("u", "p"),
        ),
        (Auth::nkey(SEED).unwrap(), Require::NKey(PUBLIC.into())),
        (
            Auth::from_creds(&creds).unwrap(),
            Require::Jwt("head.claims.sig", PUBLIC.into()),
        ),
    ];
    for (auth, require) in cases {
        let what = format!("{auth:?}");
        let mut p = pair_with(ClientConfig { auth, ..config() }, FakeServer::new(info(), require), 3);
        settle(&mut p);
        assert!(p.a.is_connected(), "{what}: {:?}", p.events_a);
    }
}

#[test]
fn refused_credentials_poison_with_a_typed_server_error() {
    let auth = Auth::UserPassword {
        user: "u".into(),
        password: "wrong".into(),
    };
    let server = FakeServer::new(info(), Require::UserPassword("u", "p"));
    let mut p = pair_with(ClientConfig { auth, ..config() }, server, 3);
    let id = p.a.request(b"svc", None, &payload("q"), None, p.now()).unwrap();
    settle(&mut p);
    let events = take_events(&mut p);
    let error = poisoned(&events).expect("poisoned").clone();
    assert_eq!(
        error.server_error().map(ServerError::kind),
        Some(ServerErrorKind::AuthorizationViolation)
    );
    assert!(error.is_auth_or_config());
    assert_eq!(
        events[0],
        Event::RequestFailed {
            id,
            error: RequestError::Poisoned(error.clone())
        }
    );
    assert!(matches!(events.last(), Some(Event::Poisoned(_))));
    assert_eq!(
        p.a.publish(b"s", None, None, &payload("x"), p.now()),
        Err(SendError::Poisoned(error.clone()))
    );
    assert_eq!(p.a.handle_input(Bytes::from_static(b"PONG\r\n"), p.now()), Err(error));
    assert!(p.a.is_closed() && !p.a.wants_read() && p.a.poll_timeout().is_none());
}

#[test]
fn nkey_without_a_nonce_and_tls_required_are_refused_before_sending() {
    let now = Instant::now();
    let mut conn = Connection::new(
        ClientConfig {
            auth: Auth::nkey(SEED).unwrap(),
            ..config()
        },
        now,
    );
    assert_eq!(
        conn.handle_input(Bytes::from_static(b"INFO {}\r\n"), now),
        Err(ConnectionError::NonceMissing)
    );
    assert!(conn.poll_transmit().is_none());

    let mut conn = Connection::new(config(), now);
    let err = conn.handle_input(Bytes::from_static(b"INFO {\"tls_required\":true}\r\n"), now);
    assert_eq!(err, Err(ConnectionError::TlsRequired));
    assert!(err.unwrap_err().is_auth_or_config());
    assert!(conn.poll_transmit().is_none(), "no plaintext CONNECT to a TLS server");
}

#[test]
fn the_server_must_start_with_info() {
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    assert_eq!(
        conn.handle_input(Bytes::from_static(b"PING\r\n"), now),
        Err(ConnectionError::ExpectedInfo)
    );
    let mut conn = Connection::new(config(), now);
    let err = conn
        .handle_input(Bytes::from_static(b"-ERR 'Maximum Connections Exceeded'\r\n"), now)
        .unwrap_err();
    assert_eq!(
        err.server_error().unwrap().kind(),
        ServerErrorKind::MaxConnectionsExceeded
    );
}

#[test]
fn handshake_times_out() {
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    conn.handle_timeout(now + Duration::from_secs(4)).unwrap();
    assert_eq!(
        conn.handle_timeout(now + Duration::from_secs(5)),
        Err(ConnectionError::HandshakeTimeout)
    );
    // Also when INFO came but PONG did not.
    let mut conn = Connection::new(config(), now);
    conn.handle_input(Bytes::from_static(b"INFO {}\r\n"), now).unwrap();
    assert_eq!(
        conn.handle_timeout(now + Duration::from_secs(6)),
        Err(ConnectionError::HandshakeTimeout)
    );
}

#[test]
fn ops_before_the_handshake_are_held_until_pong() {
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    let sid = conn.subscribe(b"a", Some(b"q"), SubscriptionPolicy::default()).unwrap();
    conn.publish(b"a", None, None, &payload("early"), now).unwrap();
    let ping = conn.ping().unwrap();
    assert!(conn.poll_transmit().is_none());
    assert_eq!(conn.outgoing_len(), 11 + 16 + 6);
    conn.handle_input(Bytes::from_static(b"INFO {}\r\n"), now).unwrap();
    let arena = conn.poll_transmit().unwrap();
    assert!(!arena.to_vec().windows(3).any(|w| w == b"SUB"), "held until PONG");
    let n = arena.len();
    arena.advance(n);
    conn.handle_input(Bytes::from_static(b"PONG\r\n"), now).unwrap();
    assert_eq!(
        conn.poll_transmit().unwrap().to_vec(),
        b"SUB a q 1\r\nPUB a 5\r\nearly\r\nPING\r\n"
    );
    assert!(matches!(conn.poll_event(), Some(Event::Connected { .. })));
    conn.handle_input(Bytes::from_static(b"PONG\r\n"), now).unwrap();
    assert_eq!(conn.poll_event(), Some(Event::Pong { id: ping }));
    assert_eq!(sid.as_u64(), Some(1));
}

#[test]
fn publishes_held_during_the_handshake_are_bounded_by_the_reconnect_buffer() {
    let now = Instant::now();
    let mut conn = Connection::new(
        ClientConfig {
            reconnect_buffer_bytes: 30,
            ..config()
        },
        now,
    );
    conn.publish(b"a", None, None, &payload("0123456789"), now).unwrap();
    conn.publish(b"a", None, None, &payload("0123456789"), now).unwrap();
    assert!(matches!(
        conn.publish(b"a", None, None, &payload("x"), now),
        Err(SendError::Backpressure(Backpressure { capacity: 30, .. }))
    ));
}

// ---- publish and subscribe ----

#[test]
fn publish_and_subscribe_round_trip_with_queue_groups_and_headers() {
    let mut p = connected();
    let plain = p.a.subscribe(b"orders.*", None, SubscriptionPolicy::default()).unwrap();
    let grouped =
        p.a.subscribe(b"orders.>", Some(b"workers"), SubscriptionPolicy::default())
            .unwrap();
    let mut headers = HeaderMap::new();
    headers.insert("Trace", "t1").unwrap();
    let now = p.now();
    p.a.publish(b"orders.new", None, Some(&headers.to_headers()), &payload("one"), now)
        .unwrap();
    p.a.publish(b"orders.new", Some(b"reply.here"), None, &payload("two"), now)
        .unwrap();
    settle(&mut p);
    let subs: Vec<_> = server_ops(&mut p)
        .into_iter()
        .filter_map(|op| match op {
            ClientOp::Subscribe(s) => Some((s.subject, s.queue)),
            _ => None,
        })
        .collect();
    assert_eq!(
        subs[1],
        (Bytes::from_static(b"orders.>"), Some(Bytes::from_static(b"workers")))
    );
    let events = take_events(&mut p);
    assert_eq!(
        events,
        [
            Event::Messages { sid: plain.clone() },
            Event::Messages { sid: grouped.clone() }
        ],
        "one notification per queue until drained"
    );
    let first = p.a.next_message(&plain).unwrap();
    assert_eq!(first.headers.unwrap().get("trace").unwrap(), "t1");
    assert_eq!(first.subject, "orders.new");
    let second = p.a.next_message(&plain).unwrap();
    assert_eq!(
        (second.payload, second.reply),
        (payload("two"), Some(Bytes::from_static(b"reply.here")))
    );
    assert!(p.a.next_message(&plain).is_none());
    assert_eq!(drain(&mut p, &grouped), [payload("one"), payload("two")]);
    // Drained: the next message notifies again.
    p.a.publish(b"orders.x", None, None, &payload("3"), p.now()).unwrap();
    settle(&mut p);
    assert_eq!(
        take_events(&mut p),
        [Event::Messages { sid: plain }, Event::Messages { sid: grouped }]
    );
}

#[test]
fn publishes_are_buffered_until_flushed() {
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    conn.handle_input(Bytes::from_static(b"INFO {\"headers\":true}\r\nPONG\r\n"), now)
        .unwrap();
    let n = conn.poll_transmit().unwrap().len();
    conn.poll_transmit().unwrap().advance(n);
    for i in 0..100u8 {
        conn.publish(b"s", None, None, &Bytes::from(vec![i]), now).unwrap();
    }
    let arena = conn.poll_transmit().unwrap();
    assert_eq!(arena.chunk_count(), 1, "100 publishes, one contiguous write");
    assert_eq!(arena.len(), 100 * b"PUB s 1\r\nx\r\n".len());
}

#[test]
fn outgoing_bytes_are_bounded() {
    let mut p = pair(ClientConfig {
        max_outgoing_bytes: 64,
        ..config()
    });
    settle(&mut p);
    let now = p.now();
    let mut accepted = 0;
    let err = loop {
        match p.a.publish(b"s", None, None, &payload("0123456789"), now) {
            Ok(()) => accepted += 1,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, SendError::Backpressure(_)));
    assert_eq!(accepted, 3, "22-byte publishes while fewer than 64 bytes wait");
    assert_eq!(p.a.outgoing_len(), 66);
    settle(&mut p);
    p.a.publish(b"s", None, None, &payload("0123456789"), p.now()).unwrap();
}

/// A body waiting for room hears of the write that made it (`handle_sent` true once, at
/// half the high-water mark), and of the one that emptied the arena when it asks for
/// that; a body that does not ask is told nothing.
#[test]
fn writes_are_reported_only_when_asked_and_at_the_mark() {
    let mut p = pair(ClientConfig {
        max_outgoing_bytes: 64,
        ..config()
    });
    settle(&mut p);
    let now = p.now();
    while p.a.publish(b"s", None, None, &payload("0123456789"), now).is_ok() {}
    assert_eq!(p.a.outgoing_len(), 66);
    let take = |c: &mut Connection, n| Session::poll_transmit(c).expect("output").advance(n);
    take(&mut p.a, 1);
    assert!(!Session::handle_sent(&mut p.a), "nobody asked");
    p.a.report_room();
    take(&mut p.a, 22);
    assert!(!Session::handle_sent(&mut p.a), "43 bytes left: above half the mark");
    take(&mut p.a, 11);
    assert!(Session::handle_sent(&mut p.a), "32 bytes left: room");
    assert!(!Session::handle_sent(&mut p.a), "once per request");
    p.a.report_sent(0);
    take(&mut p.a, 31);
    assert!(!Session::handle_sent(&mut p.a), "not empty yet");
    take(&mut p.a, 1);
    assert!(Session::handle_sent(&mut p.a), "empty");
}

#[test]
fn invalid_input_is_refused_and_nothing_is_sent() {
    let mut p = connected();
    let now = p.now();
    assert_eq!(
        p.a.publish(b"bad subject", None, None, &payload("x"), now),
        Err(SendError::Encode(EncodeError::InvalidSubject))
    );
    assert_eq!(
        p.a.subscribe(b"ok", Some(b"bad queue"), SubscriptionPolicy::default()),
        Err(SendError::Encode(EncodeError::InvalidQueue))
    );
    assert_eq!(
        p.a.unsubscribe(&Sid::from_u64(99), None),
        Err(SendError::UnknownSubscription)
    );
    assert!(p.a.poll_transmit().is_none());
    // The refused subscribe did not use up a sid.
    assert_eq!(
        p.a.subscribe(b"ok", None, SubscriptionPolicy::default())
            .unwrap()
            .as_u64(),
        Some(1)
    );
}

#[test]
fn headers_are_refused_when_the_server_has_none() {
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    conn.handle_input(Bytes::from_static(b"INFO {\"headers\":false}\r\nPONG\r\n"), now)
        .unwrap();
    let h = HeaderMap::new().to_headers();
    assert_eq!(
        conn.publish(b"s", None, Some(&h), &payload("x"), now),
        Err(SendError::HeadersNotSupported)
    );
    assert_eq!(
        conn.request(b"s", Some(&h), &payload("x"), None, now),
        Err(SendError::HeadersNotSupported)
    );
}

#[test]
fn unsubscribe_now_drops_queued_messages_and_ignores_late_ones() {
    let mut p = connected();
    let sid = p.a.subscribe(b"s", None, SubscriptionPolicy::default()).unwrap();
    settle(&mut p);
    p.a.publish(b"s", None, None, &payload("queued"), p.now()).unwrap();
    settle(&mut p);
    assert_eq!(p.a.pending_messages(&sid), Some((1, 6)));
    p.a.unsubscribe(&sid, None).unwrap();
    assert_eq!(p.a.pending_messages(&sid), None);
    assert!(p.a.next_message(&sid).is_none());
    // The server sent this before it processed the UNSUB.
    p.a.handle_input(Bytes::from_static(b"MSG s 1 4\r\nlate\r\n"), p.now())
        .unwrap();
    assert!(p.a.next_message(&sid).is_none());
    settle(&mut p);
    let ops = server_ops(&mut p);
    assert!(ops
        .iter()
        .any(|op| matches!(op, ClientOp::Unsubscribe(u) if u.max_msgs.is_none())));
    assert!(p.b.sids().is_empty());
    take_events(&mut p);
    p.a.publish(b"s", None, None, &payload("after"), p.now()).unwrap();
    settle(&mut p);
    assert!(take_events(&mut p).is_empty());
}

#[test]
fn unsubscribe_after_a_maximum_ends_the_subscription() {
    let mut p = connected();
    let sid = p.a.subscribe(b"s", None, SubscriptionPolicy::default()).unwrap();
    p.a.unsubscribe(&sid, Some(3)).unwrap();
    for text in ["1", "2", "3", "4", "5"] {
        p.a.publish(b"s", None, None, &payload(text), p.now()).unwrap();
    }
    settle(&mut p);
    assert!(server_ops(&mut p)
        .iter()
        .any(|op| matches!(op, ClientOp::Unsubscribe(u) if u.max_msgs == Some(3))));
    assert_eq!(
        take_events(&mut p),
        [
            Event::Messages { sid: sid.clone() },
            Event::SubscriptionEnded {
                sid: sid.clone(),
                reason: SubscriptionEnd::MaxReached
            }
        ]
    );
    assert_eq!(drain(&mut p, &sid), [payload("1"), payload("2"), payload("3")]);
    assert_eq!(p.a.pending_messages(&sid), None, "forgotten once drained");
    // A maximum already reached ends it at once.
    let sid = p.a.subscribe(b"t", None, SubscriptionPolicy::default()).unwrap();
    p.a.publish(b"t", None, None, &payload("1"), p.now()).unwrap();
    settle(&mut p);
    take_events(&mut p);
    p.a.unsubscribe(&sid, Some(1)).unwrap();
    assert_eq!(
        take_events(&mut p).last(),
        Some(&Event::SubscriptionEnded {
            sid: sid.clone(),
            reason: SubscriptionEnd::MaxReached
        })
    );
    assert_eq!(drain(&mut p, &sid), [payload("1")]);
}

// ---- requests ----

#[test]
fn requests_share_one_inbox_and_match_replies_by_token() {
    let mut p = connected();
    let service = p.a.subscribe(b"svc", None, SubscriptionPolicy::default()).unwrap();
    let now = p.now();
    let first =
        p.a.request(b"svc", None, &payload("q1"), Some(Duration::from_secs(1)), now)
            .unwrap();
    let second = p.a.request(b"svc", None, &payload("q2"), None, now).unwrap();
    settle(&mut p);
    let inbox_subs: Vec<Bytes> = server_ops(&mut p)
        .into_iter()
        .filter_map(|op| match op {
            ClientOp::Subscribe(s) if s.subject.starts_with(b"_INBOX.") => Some(s.subject),
            _ => None,
        })
        .collect();
    assert_eq!(inbox_subs.len(), 1, "one wildcard inbox subscription");
    assert!(inbox_subs[0].ends_with(b".*"));
    assert_eq!(inbox_subs[0].len(), "_INBOX.".len() + 22 + 2);
    // Answer in reverse order.
    let q1 = p.a.next_message(&service).unwrap();
    let q2 = p.a.next_message(&service).unwrap();
    p.a.publish(&q2.reply.unwrap(), None, None, &payload("a2"), p.now())
        .unwrap();
    p.a.publish(&q1.reply.clone().unwrap(), None, None, &payload("a1"), p.now())
        .unwrap();
    // A second reply to the same request is dropped.
    p.a.publish(&q1.reply.unwrap(), None, None, &payload("again"), p.now())
        .unwrap();
    settle(&mut p);
    let responses: Vec<(RequestId, Bytes)> = take_events(&mut p)
        .into_iter()
        .filter_map(|e| match e {
            Event::Response { id, message } => Some((id, message.payload)),
            _ => None,
        })
        .collect();
    assert_eq!(responses, [(second, payload("a2")), (first, payload("a1"))]);
    assert_eq!(p.a.pending_requests(), 0);
    assert_eq!(
        p.a.poll_timeout(),
        Some(now + Duration::from_secs(120)),
        "no request deadline left"
    );
}

#[test]
fn no_responders_fail_the_request() {
    let mut p = connected();
    let id =
        p.a.request(b"nobody", None, &payload("q"), Some(Duration::from_secs(1)), p.now())
            .unwrap();
    settle(&mut p);
    assert_eq!(
        take_events(&mut p),
        [Event::RequestFailed {
            id,
            error: RequestError::NoResponders
        }]
    );
    // A 503 as the server writes it, and other statuses that are replies.
    let now = Instant::now();
    let mut conn = Connection::new(
        ClientConfig {
            inbox_id: Some("I".into()),
            ..config()
        },
        now,
    );
    conn.handle_input(Bytes::from_static(b"INFO {\"headers\":true}\r\nPONG\r\n"), now)
        .unwrap();
    let _ = conn.poll_event();
    let n = conn.poll_transmit().unwrap().len();
    conn.poll_transmit().unwrap().advance(n);
    let a = conn.request(b"x", None, &payload(""), None, now).unwrap();
    let b = conn.request(b"x", None, &payload(""), None, now).unwrap();
    assert!(conn
        .poll_transmit()
        .unwrap()
        .to_vec()
        .starts_with(b"SUB _INBOX.I.* 1\r\nPUB x _INBOX.I.1 0\r\n"));
    conn.handle_input(
        Bytes::from_static(
            b"HMSG _INBOX.I.1 1 16 16\r\nNATS/1.0 503\r\n\r\n\r\nHMSG _INBOX.I.2 1 18 18\r\nNATS/1.0 408 x\r\n\r\n\r\n",
        ),
        now,
    )
    .unwrap();
    assert_eq!(
        conn.poll_event(),
        Some(Event::RequestFailed {
            id: a,
            error: RequestError::NoResponders
        })
    );
    let Some(Event::Response { id, message }) = conn.poll_event() else {
        panic!("response")
    };
    assert_eq!(
        (id, message.headers.and_then(|h| h.status())),
        (b, Some(StatusCode::RequestTimeout))
    );
}

#[test]
fn requests_time_out_and_late_replies_are_dropped() {
    let now = Instant::now();
    let mut conn = Connection::new(
        ClientConfig {
            inbox_id: Some("I".into()),
            ..config()
        },
        now,
    );
    conn.handle_input(Bytes::from_static(b"INFO {}\r\nPONG\r\n"), now)
        .unwrap();
    let _ = conn.poll_event();
    let slow = conn
        .request(b"x", None, &payload(""), Some(Duration::from_millis(50)), now)
        .unwrap();
    let slower = conn
        .request(b"x", None, &payload(""), Some(Duration::from_millis(80)), now)
        .unwrap();
    assert_eq!(conn.poll_timeout(), Some(now + Duration::from_millis(50)));
    conn.handle_timeout(now + Duration::from_millis(60)).unwrap();
    assert_eq!(
        conn.poll_event(),
        Some(Event::RequestFailed {
            id: slow,
            error: RequestError::Timeout
        })
    );
    assert_eq!(conn.poll_event(), None);
    assert_eq!(conn.poll_timeout(), Some(now + Duration::from_millis(80)));
    conn.handle_input(
        Bytes::from_static(b"MSG _INBOX.I.1 1 4\r\nlate\r\nMSG _INBOX.I.2 1 2\r\nok\r\n"),
        now,
    )
    .unwrap();
    let Some(Event::Response { id, .. }) = conn.poll_event() else {
        panic!("response")
    };
    assert_eq!(id, slower);
    assert_eq!(conn.poll_event(), None, "the late reply is dropped");
}

#[test]
fn pending_requests_are_bounded() {
    let mut p = connected();
    p.a = Connection::new(
        ClientConfig {
            max_pending_requests: 2,
            ..config()
        },
        p.now(),
    );
    let now = p.now();
    p.a.request(b"x", None, &payload(""), None, now).unwrap();
    p.a.request(b"x", None, &payload(""), None, now).unwrap();
    assert_eq!(
        p.a.request(b"x", None, &payload(""), None, now),
        Err(SendError::TooManyPendingRequests { max: 2 })
    );
}

// ---- keepalive ----

#[test]
fn keepalive_pings_and_a_stale_connection_is_poisoned() {
    let interval = Duration::from_secs(10);
    let mut p = pair(ClientConfig {
        ping_interval: interval,
        max_pings_out: 2,
        ..config()
    });
    settle(&mut p);
    let start = p.now();
    // An answering server keeps the connection up.
    for round in 1..=5u32 {
        p.advance_clock(interval);
        p.step();
        settle(&mut p);
        assert!(p.a.is_connected(), "round {round}");
    }
    let pings = server_ops(&mut p)
        .iter()
        .filter(|op| matches!(op, ClientOp::Ping))
        .count();
    assert_eq!(pings, 1 + 5, "the handshake's and one per interval");
    // A silent one does not.
    p.b.answer_pings = false;
    let silent_from = p.now();
    assert!(p.drive_until(10_000, |p| p.a.is_closed()));
    assert_eq!(p.a.error(), Some(&ConnectionError::StaleConnection { pings_out: 2 }));
    let waited = p.now() - silent_from;
    assert!(
        waited > interval * 2 && waited <= interval * 3 + Duration::from_secs(1),
        "{waited:?}"
    );
    assert!(p.now() > start);
}

#[test]
fn ping_is_answered_in_order() {
    let mut p = connected();
    let a = p.a.ping().unwrap();
    let b = p.a.ping().unwrap();
    settle(&mut p);
    assert_eq!(take_events(&mut p), [Event::Pong { id: a }, Event::Pong { id: b }]);
    // The server's PINGs are answered.
    p.b.send(ServerOp::Ping);
    settle(&mut p);
    assert!(server_ops(&mut p).contains(&ClientOp::Pong));
}

// ---- server errors and INFO ----

#[test]
fn permission_violations_are_events_and_the_connection_continues() {
    let mut p = connected();
    let sid = p.a.subscribe(b"secret", None, SubscriptionPolicy::default()).unwrap();
    let other =
        p.a.subscribe(b"secret", Some(b"q"), SubscriptionPolicy::default())
            .unwrap();
    settle(&mut p);
    p.b.error("Permissions Violation for Subscription to \"secret\"");
    p.b.error("Permissions Violation for Publish to \"forbidden\"");
    p.b.error("Permissions Violation for Subscription to \"unknown\"");
    settle(&mut p);
    let events = take_events(&mut p);
    assert!(matches!(
        &events[0],
        Event::SubscriptionEnded { sid: s, reason: SubscriptionEnd::Refused(_) } if *s == sid
    ));
    assert!(matches!(&events[1], Event::ServerError(e) if e.kind() == ServerErrorKind::PublishPermissionViolation));
    assert!(matches!(&events[2], Event::ServerError(e) if e.kind() == ServerErrorKind::SubscribePermissionViolation));
    assert_eq!(events.len(), 3);
    assert!(p.a.is_connected());
    assert_eq!(p.a.pending_messages(&sid), None);
    assert!(
        p.a.pending_messages(&other).is_some(),
        "the queue group subscription is another one"
    );
    p.b.error("Permissions Violation for Subscription to \"secret\" using queue \"q\"");
    settle(&mut p);
    assert!(matches!(
        &take_events(&mut p)[..],
        [Event::SubscriptionEnded { sid: s, .. }] if *s == other
    ));
}

#[test]
fn fatal_server_errors_poison() {
    for (text, kind) in [
        ("Stale Connection", ServerErrorKind::StaleConnection),
        ("Maximum Payload Violation", ServerErrorKind::MaxPayloadViolation),
        ("Authorization Violation", ServerErrorKind::AuthorizationViolation),
        ("Something New", ServerErrorKind::Other),
    ] {
        let mut p = connected();
        p.b.error(text);
        settle(&mut p);
        let error = p.a.error().expect(text);
        assert_eq!(error.server_error().map(ServerError::kind), Some(kind), "{text}");
        assert_eq!(
            error.is_auth_or_config(),
            kind == ServerErrorKind::AuthorizationViolation
        );
    }
}

#[test]
fn connect_urls_accumulate_over_every_info_and_lame_duck_is_reported() {
    let mut p = connected();
    let mut update = info();
    update.connect_urls = vec!["a:4222".into(), "b:4222".into()];
    p.b.send(ServerOp::Info(Box::new(update.clone())));
    update.connect_urls = vec!["b:4222".into(), "c:4222".into(), "c:4222".into()];
    p.b.send(ServerOp::Info(Box::new(update.clone())));
    update.connect_urls = vec!["a:4222".into()];
    update.ldm = true;
    p.b.send(ServerOp::Info(Box::new(update.clone())));
    p.b.send(ServerOp::Info(Box::new(update)));
    settle(&mut p);
    assert_eq!(
        take_events(&mut p),
        [
            Event::ServersDiscovered {
                added: vec!["a:4222".into(), "b:4222".into()]
            },
            Event::ServersDiscovered {
                added: vec!["c:4222".into()]
            },
            Event::LameDuck,
        ]
    );
    assert_eq!(p.a.known_servers(), ["a:4222", "b:4222", "c:4222"]);
    assert!(p.a.server_info().unwrap().ldm);
    assert!(p.a.is_connected());
}

// ---- slow consumers ----

#[test]
fn drop_new_policy_bounds_the_queue_and_reports_drops() {
    let mut p = connected();
    let policy = SubscriptionPolicy {
        max_messages: 2,
        max_bytes: 1 << 20,
        on_full: SlowConsumerPolicy::DropNew,
    };
    let sid = p.a.subscribe(b"s", None, policy).unwrap();
    let bytes_sid =
        p.a.subscribe(
            b"s",
            None,
            SubscriptionPolicy {
                max_messages: 100,
                max_bytes: 10,
                ..policy
            },
        )
        .unwrap();
    for _ in 0..5 {
        p.a.publish(b"s", None, None, &payload("1234"), p.now()).unwrap();
    }
    // One input holding every delivery: drops are reported once per subscription.
    let now = p.now();
    settle(&mut p);
    let events = take_events(&mut p);
    let dropped: u64 = events
        .iter()
        .filter_map(|e| match e {
            Event::SlowConsumer { sid: s, dropped } if *s == sid => Some(*dropped),
            _ => None,
        })
        .sum();
    assert_eq!(dropped, 3);
    assert_eq!(p.a.pending_messages(&sid), Some((2, 8)));
    assert_eq!(
        p.a.pending_messages(&bytes_sid),
        Some((2, 8)),
        "a third 4-byte message is over 10 bytes"
    );
    assert_eq!(p.a.dropped_messages(&bytes_sid), Some(3));
    assert!(p.a.wants_read());
    assert!(now <= p.now());
    assert_eq!(drain(&mut p, &sid).len(), 2);
}

#[test]
fn backpressure_policy_stops_reading_and_loses_nothing() {
    let mut p = connected();
    let policy = SubscriptionPolicy {
        max_messages: 2,
        max_bytes: 1 << 20,
        on_full: SlowConsumerPolicy::Backpressure,
    };
    let sid = p.a.subscribe(b"s", None, policy).unwrap();
    let other = p.a.subscribe(b"t", None, SubscriptionPolicy::default()).unwrap();
    for i in 0..10u8 {
        p.a.publish(b"s", None, None, &Bytes::from(vec![b'0' + i]), p.now())
            .unwrap();
    }
    p.a.publish(b"t", None, None, &payload("behind"), p.now()).unwrap();
    settle(&mut p);
    assert!(!p.a.wants_read(), "stalled");
    assert_eq!(p.a.pending_messages(&sid), Some((2, 2)));
    assert_eq!(p.a.pending_messages(&other), Some((0, 0)), "what follows waits too");
    let mut got = Vec::new();
    while let Some(m) = p.a.next_message(&sid) {
        got.push(m.payload[0]);
        settle(&mut p);
        assert!(p.a.pending_messages(&sid).unwrap().0 <= 2);
    }
    assert_eq!(got, (b'0'..=b'9').collect::<Vec<u8>>());
    assert!(p.a.wants_read());
    assert_eq!(drain(&mut p, &other), [payload("behind")]);
    assert!(!take_events(&mut p)
        .iter()
        .any(|e| matches!(e, Event::SlowConsumer { .. })));
}

#[test]
fn the_connection_bounds_queued_bytes_across_subscriptions() {
    let mut p = pair(ClientConfig {
        max_pending_bytes: 10,
        ..config()
    });
    settle(&mut p);
    assert!(matches!(take_events(&mut p).first(), Some(Event::Connected { .. })));
    // Each subscription alone would take every message.
    let a = p.a.subscribe(b"a", None, SubscriptionPolicy::default()).unwrap();
    let b = p.a.subscribe(b"b", None, SubscriptionPolicy::default()).unwrap();
    for _ in 0..3 {
        p.a.publish(b"a", None, None, &payload("1234"), p.now()).unwrap();
        p.a.publish(b"b", None, None, &payload("1234"), p.now()).unwrap();
    }
    settle(&mut p);
    // 4 + 4 bytes queued; a third message would make 12 > 10.
    assert_eq!(p.a.pending_bytes(), 8);
    assert_eq!(p.a.pending_messages(&a), Some((1, 4)));
    assert_eq!(p.a.pending_messages(&b), Some((1, 4)));
    assert_eq!((p.a.dropped_messages(&a), p.a.dropped_messages(&b)), (Some(2), Some(2)));
    let reported: Vec<(Sid, u64)> = take_events(&mut p)
        .into_iter()
        .filter_map(|e| match e {
            Event::SlowConsumer { sid, dropped } => Some((sid, dropped)),
            _ => None,
        })
        .collect();
    assert_eq!(
        reported.iter().map(|(_, n)| n).sum::<u64>(),
        4,
        "reported as slow consumers: {reported:?}"
    );
    assert!(reported.iter().any(|(s, _)| *s == a) && reported.iter().any(|(s, _)| *s == b));
    assert!(p.a.wants_read(), "dropping, not stalling");

    // Taking a message frees room for every subscription.
    assert_eq!(p.a.next_message(&a).map(|m| m.payload), Some(payload("1234")));
    assert_eq!(p.a.pending_bytes(), 4);
    p.a.publish(b"b", None, None, &payload("5678"), p.now()).unwrap();
    settle(&mut p);
    assert_eq!(p.a.pending_messages(&b), Some((2, 8)));
    assert_eq!(p.a.pending_bytes(), 8);
    // Unsubscribing drops its queue, and its bytes.
    p.a.unsubscribe(&b, None).unwrap();
    assert_eq!(p.a.pending_bytes(), 0);
    // A message over the whole bound never fits, even with every queue empty.
    p.a.publish(b"a", None, None, &payload("12345678901"), p.now()).unwrap();
    p.a.publish(b"a", None, None, &payload("ok"), p.now()).unwrap();
    settle(&mut p);
    assert_eq!(drain(&mut p, &a), [payload("ok")]);
    assert_eq!(p.a.dropped_messages(&a), Some(3));

    // A reconnect carries the queued bytes with the subscriptions.
    p.a.publish(b"a", None, None, &payload("kept"), p.now()).unwrap();
    settle(&mut p);
    let state = p.a.take_reconnect_state();
    let resumed = Connection::resume(p.a.config().clone(), state, p.now());
    assert_eq!(resumed.pending_bytes(), 4);
}

#[test]
fn a_backpressured_subscription_waits_for_room_the_connection_frees() {
    let now = Instant::now();
    let mut conn = Connection::new(
        ClientConfig {
            max_pending_bytes: 8,
            ..config()
        },
        now,
    );
    conn.handle_input(Bytes::from_static(b"INFO {}\r\nPONG\r\n"), now)
        .unwrap();
    let dropping = conn.subscribe(b"d", None, SubscriptionPolicy::default()).unwrap();
    let waiting = conn.subscribe(b"s", None, SubscriptionPolicy::backpressure()).unwrap();
    conn.handle_input(
        Bytes::from_static(b"MSG d 1 4\r\n1234\r\nMSG d 1 4\r\n5678\r\nMSG s 2 1\r\nx\r\n"),
        now,
    )
    .unwrap();
    assert_eq!(conn.pending_bytes(), 8);
    assert!(!conn.wants_read(), "the backpressured subscription waits for room");
    assert_eq!(conn.pending_messages(&waiting), Some((0, 0)));
    // Room freed by another subscription resumes it.
    assert!(conn.next_message(&dropping).is_some());
    assert!(conn.wants_read());
    assert_eq!(conn.next_message(&waiting).map(|m| m.payload), Some(payload("x")));
    assert_eq!(conn.dropped_messages(&waiting), Some(0));
}

#[test]
fn unsubscribing_a_stalled_subscription_resumes_reading() {
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    conn.handle_input(Bytes::from_static(b"INFO {}\r\nPONG\r\n"), now)
        .unwrap();
    let policy = SubscriptionPolicy {
        max_messages: 1,
        ..SubscriptionPolicy::backpressure()
    };
    let sid = conn.subscribe(b"s", None, policy).unwrap();
    let other = conn.subscribe(b"t", None, SubscriptionPolicy::default()).unwrap();
    conn.handle_input(
        Bytes::from_static(b"MSG s 1 1\r\na\r\nMSG s 1 1\r\nb\r\nMSG t 2 1\r\nc\r\n"),
        now,
    )
    .unwrap();
    assert!(!conn.wants_read());
    // Input the driver had already read is kept, not decoded.
    conn.handle_input(Bytes::from_static(b"MSG t 2 1\r\nd\r\n"), now)
        .unwrap();
    assert_eq!(conn.pending_messages(&other), Some((0, 0)));
    conn.unsubscribe(&sid, None).unwrap();
    assert!(conn.wants_read());
    let got: Vec<Bytes> = std::iter::from_fn(|| conn.next_message(&other))
        .map(|m| m.payload)
        .collect();
    assert_eq!(got, [payload("c"), payload("d")]);
}

#[test]
fn keepalive_does_not_count_while_reading_is_paused() {
    let now = Instant::now();
    let mut conn = Connection::new(
        ClientConfig {
            ping_interval: Duration::from_secs(1),
            ..config()
        },
        now,
    );
    conn.handle_input(Bytes::from_static(b"INFO {}\r\nPONG\r\n"), now)
        .unwrap();
    let sid = conn
        .subscribe(
            b"s",
            None,
            SubscriptionPolicy {
                max_messages: 1,
                ..SubscriptionPolicy::backpressure()
            },
        )
        .unwrap();
    conn.handle_input(Bytes::from_static(b"MSG s 1 1\r\na\r\nMSG s 1 1\r\nb\r\n"), now)
        .unwrap();
    for s in 1..10 {
        conn.handle_timeout(now + Duration::from_secs(s)).unwrap();
    }
    assert!(conn.next_message(&sid).is_some());
    assert!(conn.wants_read());
}

// ---- poison ----

#[test]
fn decode_errors_poison_and_every_pending_request_fails_once() {
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    conn.handle_input(Bytes::from_static(b"INFO {}\r\nPONG\r\n"), now)
        .unwrap();
    let _ = conn.poll_event();
    let ids: Vec<RequestId> = (0..3)
        .map(|_| {
            conn.request(b"x", None, &payload(""), Some(Duration::from_secs(1)), now)
                .unwrap()
        })
        .collect();
    let err = conn.handle_input(Bytes::from_static(b"BOGUS\r\n"), now).unwrap_err();
    assert_eq!(err, ConnectionError::Decode(DecodeError::UnknownOp));
    let events: Vec<Event> = std::iter::from_fn(|| conn.poll_event()).collect();
    let failed: Vec<RequestId> = events
        .iter()
        .filter_map(|e| match e {
            Event::RequestFailed {
                id,
                error: RequestError::Poisoned(e),
            } if *e == err => Some(*id),
            _ => None,
        })
        .collect();
    assert_eq!(failed, ids);
    assert_eq!(events.last(), Some(&Event::Poisoned(err.clone())));
    assert_eq!(events.len(), 4);
    assert_eq!(conn.handle_timeout(now + Duration::from_secs(2)), Err(err.clone()));
    assert_eq!(conn.handle_eof(now), Err(err.clone()));
    assert_eq!(conn.ping(), Err(SendError::Poisoned(err)));
    assert_eq!(conn.poll_event(), None, "nothing after Poisoned");
}

#[test]
fn end_of_stream_poisons() {
    let mut p = connected();
    p.b.close();
    settle(&mut p);
    assert_eq!(p.a.error(), Some(&ConnectionError::Closed));
}

// ---- reconnect ----

#[test]
fn reconnect_resubscribes_replays_and_never_delivers_twice() {
    let mut p = connected();
    let now = p.now();
    let kept = p.a.subscribe(b"k", Some(b"g"), SubscriptionPolicy::default()).unwrap();
    let limited = p.a.subscribe(b"l", None, SubscriptionPolicy::default()).unwrap();
    let gone = p.a.subscribe(b"gone", None, SubscriptionPolicy::default()).unwrap();
    p.a.unsubscribe(&limited, Some(3)).unwrap();
    p.a.unsubscribe(&gone, None).unwrap();
    p.a.publish(b"k", None, None, &payload("before"), now).unwrap();
    p.a.publish(b"l", None, None, &payload("l1"), now).unwrap();
    settle(&mut p);
    take_events(&mut p);
    // Publishes the kernel never took: the link is cut first.
    p.close_a();
    p.a.publish(b"k", None, None, &payload("unsent1"), now).unwrap();
    p.a.publish(b"l", None, None, &payload("l2"), now).unwrap();
    let request = p.a.request(b"svc", None, &payload("q"), None, now).unwrap();
    let state = p.a.take_reconnect_state();
    let events = take_events(&mut p);
    assert!(events.contains(&Event::RequestFailed {
        id: request,
        error: RequestError::Poisoned(ConnectionError::Replaced)
    }));
    let carried: Vec<Sid> = state.subscriptions().cloned().collect();
    assert_eq!(carried, [kept.clone(), limited.clone()]);
    assert_eq!(state.replay_len().0, 3, "two publishes and the request");
    assert_eq!(state.dropped_publishes(), 0);
    assert_eq!(p.a.next_message(&kept), None, "the queues moved");

    // The replacement connection, to a fresh server.
    let mut q = pair_with(config(), FakeServer::plain(), 9);
    q.a = Connection::resume(config(), state, q.now());
    settle(&mut q);
    assert!(q.a.is_connected());
    let ops = std::mem::take(&mut q.events_b);
    let resubscribed: Vec<(Bytes, Option<Bytes>, Option<u64>)> = ops
        .iter()
        .filter_map(|op| match op {
            ClientOp::Subscribe(s) => Some((s.subject.clone(), s.queue.clone(), s.sid.as_u64())),
            _ => None,
        })
        .collect();
    assert_eq!(
        resubscribed,
        [
            (Bytes::from_static(b"k"), Some(Bytes::from_static(b"g")), Some(1)),
            (Bytes::from_static(b"l"), None, Some(2))
        ]
    );
    assert!(ops
        .iter()
        .any(|op| matches!(op, ClientOp::Unsubscribe(u) if u.sid.as_u64() == Some(2) && u.max_msgs == Some(2))));
    // Queued messages kept their place; replayed publishes were delivered once each.
    assert_eq!(drain(&mut q, &kept), [payload("before"), payload("unsent1")]);
    assert_eq!(drain(&mut q, &limited), [payload("l1"), payload("l2")]);
    // Ids continue: no reuse.
    let next = q.a.request(b"svc", None, &payload("q"), None, q.now()).unwrap();
    assert!(next > request);
    // Sids 1-4 were the old connection's (4 its inbox), 5 is the new inbox.
    assert_eq!(
        q.a.subscribe(b"new", None, SubscriptionPolicy::default())
            .unwrap()
            .as_u64(),
        Some(6)
    );
}

#[test]
fn reconnect_replay_is_bounded_and_a_stalled_message_is_kept() {
    let now = Instant::now();
    let config = ClientConfig {
        reconnect_buffer_bytes: 44,
        ..config()
    };
    let mut conn = Connection::new(config.clone(), now);
    let info = Bytes::from_static(b"INFO {\"connect_urls\":[\"n2:4222\"]}\r\nPONG\r\n");
    conn.handle_input(info, now).unwrap();
    let sid = conn
        .subscribe(
            b"s",
            None,
            SubscriptionPolicy {
                max_messages: 1,
                ..SubscriptionPolicy::backpressure()
            },
        )
        .unwrap();
    conn.handle_input(Bytes::from_static(b"MSG s 1 1\r\na\r\nMSG s 1 1\r\nb\r\n"), now)
        .unwrap();
    assert!(!conn.wants_read());
    for _ in 0..5 {
        conn.publish(b"p", None, None, &payload("0123456789"), now).unwrap(); // 22 bytes each
    }
    let state = conn.take_reconnect_state();
    assert_eq!(
        state.replay_len(),
        (2, 44),
        "SUB and CONNECT are not replayed; the oldest publishes fit"
    );
    assert_eq!(state.dropped_publishes(), 3);
    assert_eq!(state.known_servers(), ["n2:4222"]);
    let mut next = Connection::resume(config, state, now);
    assert_eq!(
        next.known_servers(),
        ["n2:4222"],
        "discovered servers outlive the connection"
    );
    assert_eq!(
        next.pending_messages(&sid),
        Some((1, 1)),
        "the queue is kept within its limit"
    );
    assert!(next.wants_read(), "the handshake is read");
    // A message before the handshake completes cannot be for a subscription of this
    // connection (none was sent yet): it is ignored.
    next.handle_input(Bytes::from_static(b"INFO {}\r\nMSG s 1 1\r\nx\r\nPONG\r\n"), now)
        .unwrap();
    assert!(next.is_connected());
    let sent = next.poll_transmit().unwrap().to_vec();
    assert!(sent.ends_with(b"SUB s 1\r\nPUB p 10\r\n0123456789\r\nPUB p 10\r\n0123456789\r\n"));
    assert!(
        !next.wants_read(),
        "connected, the carried message still waits for room"
    );
    next.handle_input(Bytes::from_static(b"MSG s 1 1\r\nc\r\n"), now)
        .unwrap();
    assert_eq!(next.next_message(&sid).unwrap().payload, "a");
    assert!(!next.wants_read(), "b took the room, c waits");
    assert_eq!(next.next_message(&sid).unwrap().payload, "b");
    assert!(next.wants_read());
    assert_eq!(next.next_message(&sid).unwrap().payload, "c");
    assert_eq!(next.next_message(&sid), None);
}

#[test]
fn publishes_while_disconnected_join_the_replay_within_a_hard_bound() {
    let now = Instant::now();
    let config = ClientConfig {
        reconnect_buffer_bytes: 60,
        ..config()
    };
    let mut conn = Connection::new(config.clone(), now);
    let info = Bytes::from_static(b"INFO {\"max_payload\":16,\"headers\":false}\r\nPONG\r\n");
    conn.handle_input(info, now).unwrap();
    let sid = conn.subscribe(b"s", None, SubscriptionPolicy::default()).unwrap();
    conn.publish(b"p", None, None, &payload("unsent"), now).unwrap(); // 17 bytes
    conn.handle_eof(now).unwrap_err();
    let mut state = conn.take_reconnect_state();
    assert_eq!(state.replay_len(), (1, 17));

    // Refused by the lost server's limits: nothing buffered.
    assert!(matches!(
        state.publish(b"p", None, None, &payload("0123456789abcdefg")),
        Err(SendError::Encode(EncodeError::PayloadTooLarge { size: 17, max: 16 }))
    ));
    assert!(matches!(
        state.publish(b"bad subject", None, None, &payload("x")),
        Err(SendError::Encode(_))
    ));
    let h = HeaderMap::new().to_headers();
    assert_eq!(
        state.publish(b"p", None, Some(&h), &payload("x")),
        Err(SendError::HeadersNotSupported)
    );
    // 13 bytes each: three fit (17 + 39 = 56), the fourth does not.
    for d in ["d1", "d2", "d3"] {
        state.publish(b"p", None, None, &payload(d)).unwrap();
    }
    assert_eq!(
        state.publish(b"p", None, None, &payload("d4")),
        Err(SendError::Backpressure(Backpressure {
            requested: 13,
            available: 4,
            capacity: 60
        }))
    );
    assert_eq!(state.replay_len(), (4, 56), "the refusal kept what was buffered");

    // A connection that fails before its handshake hands every one of them on.
    let mut failed = Connection::resume(config.clone(), state, now);
    failed.handle_eof(now).unwrap_err();
    let state = failed.take_reconnect_state();
    assert_eq!((state.replay_len(), state.dropped_publishes()), ((4, 56), 0));

    // The next one sends them after the resubscription, in order.
    let mut next = Connection::resume(config, state, now);
    next.handle_input(Bytes::from_static(b"INFO {}\r\nPONG\r\n"), now)
        .unwrap();
    let sent = next.poll_transmit().unwrap().to_vec();
    assert!(
        sent.ends_with(b"SUB s 1\r\nPUB p 6\r\nunsent\r\nPUB p 2\r\nd1\r\nPUB p 2\r\nd2\r\nPUB p 2\r\nd3\r\n"),
        "{}",
        String::from_utf8_lossy(&sent)
    );
    assert_eq!(sid.as_u64(), Some(1));
}

// ---- byte splitting ----

#[test]
fn traffic_survives_any_byte_splitting() {
    for seed in 0..24 {
        let mut p = pair_with(config(), FakeServer::plain(), seed);
        let sid = p.a.subscribe(b"data.*", None, SubscriptionPolicy::default()).unwrap();
        let service =
            p.a.subscribe(b"svc", Some(b"g"), SubscriptionPolicy::default())
                .unwrap();
        let mut sent = Vec::new();
        for i in 0..40usize {
            let body = Bytes::from(vec![b'a' + (i % 26) as u8; i * 13 % 300]);
            let mut headers = HeaderMap::new();
            headers.insert("N", i.to_string()).unwrap();
            let h = (i % 3 == 0).then(|| headers.to_headers());
            p.a.publish(b"data.x", None, h.as_ref(), &body, p.now()).unwrap();
            sent.push(body);
        }
        let id =
            p.a.request(b"svc", None, &payload("ping"), Some(Duration::from_secs(5)), p.now())
                .unwrap();
        settle(&mut p);
        assert!(p.a.is_connected(), "seed {seed}: {:?}", p.a.error());
        assert_eq!(drain(&mut p, &sid), sent, "seed {seed}");
        let question = p.a.next_message(&service).unwrap();
        p.a.publish(&question.reply.unwrap(), None, None, &payload("pong"), p.now())
            .unwrap();
        settle(&mut p);
        let answered = take_events(&mut p)
            .into_iter()
            .any(|e| matches!(e, Event::Response { id: got, ref message } if got == id && message.payload == "pong"));
        assert!(answered, "seed {seed}");
    }
}

// ---- random operation sequences ----

/// A short prefix that gets a fuzz input past the handshake: INFO, the kernel takes
/// CONNECT, PONG.
const CONNECTED: [u8; 6] = [6, 0, 9, 255, 6, 5];

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(512))]

    /// The fuzz target's invariants (see [`crate::fuzzing::nats_client`]) over random
    /// operation sequences, from a connected start and from scratch.
    #[test]
    fn random_operations_keep_every_invariant(
        header in proptest::prelude::any::<u8>(),
        connected in proptest::prelude::any::<bool>(),
        ops in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
    ) {
        let mut input = vec![header];
        if connected {
            input.extend_from_slice(&CONNECTED);
        }
        input.extend_from_slice(&ops);
        crate::fuzzing::nats_client(&input);
    }
}

#[test]
fn a_stalled_message_for_a_subscription_that_ended_is_dropped_and_reading_resumes() {
    let now = Instant::now();
    let mut conn = Connection::new(config(), now);
    conn.handle_input(Bytes::from_static(b"INFO {}\r\nPONG\r\n"), now)
        .unwrap();
    let policy = SubscriptionPolicy {
        max_messages: 1,
        ..SubscriptionPolicy::backpressure()
    };
    let sid = conn.subscribe(b"s", None, policy).unwrap();
    let other = conn.subscribe(b"t", None, SubscriptionPolicy::default()).unwrap();
    conn.handle_input(
        Bytes::from_static(b"MSG s 1 1\r\na\r\nMSG s 1 1\r\nb\r\nMSG t 2 1\r\nc\r\n"),
        now,
    )
    .unwrap();
    assert!(!conn.wants_read());
    // The maximum is already reached: the stalled message is past it.
    conn.unsubscribe(&sid, Some(1)).unwrap();
    assert!(conn.wants_read());
    assert_eq!(conn.next_message(&other).unwrap().payload, "c");
    // Forgetting the ended subscription does not stall anything either.
    conn.unsubscribe(&sid, None).unwrap();
    assert_eq!(conn.next_message(&sid), None);
    assert!(conn.wants_read());
}

// ---- the receive path: views of the received segments ----

/// A client past the handshake, fed bytes directly, subscribed to `s` (sid 1).
fn fed(limits: crate::nats::Limits) -> (Connection, Sid, Instant) {
    let now = Instant::now();
    let mut conn = Connection::new(ClientConfig { limits, ..config() }, now);
    conn.handle_input(Bytes::from_static(b"INFO {}\r\nPONG\r\n"), now)
        .unwrap();
    let sid = conn.subscribe(b"s", None, SubscriptionPolicy::default()).unwrap();
    (conn, sid, now)
}

#[test]
fn messages_inside_one_segment_are_views_of_it_and_straddling_ones_are_whole() {
    let (mut conn, sid, now) = fed(crate::nats::Limits::default());
    let segment =
        Bytes::from_static(b"MSG s 1 r 5\r\nhello\r\nHMSG s 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\nMSG s 1 3\r\nab");
    let range = segment.as_ptr_range();
    conn.handle_input(segment.clone(), now).unwrap();
    let inside = |b: &Bytes| range.contains(&b.as_ptr());
    let first = conn.next_message(&sid).unwrap();
    assert_eq!(
        (&first.payload[..], first.reply.as_deref()),
        (&b"hello"[..], Some(&b"r"[..]))
    );
    assert!(inside(&first.payload) && inside(&first.subject));
    // The sid is the subscription's own (the server echoes it): no view of the segment.
    assert!(first.sid == sid && !inside(first.sid.as_bytes()));
    let second = conn.next_message(&sid).unwrap();
    assert!(inside(second.headers.as_ref().unwrap().as_bytes()) && inside(&second.payload));
    assert_eq!(conn.next_message(&sid), None);
    // The third frame straddles two segments: joined once, then whole.
    conn.handle_input(Bytes::from_static(b"c\r\nMSG s 1 2\r\nxy\r\n"), now)
        .unwrap();
    let third = conn.next_message(&sid).unwrap();
    assert_eq!((&third.payload[..], inside(&third.payload)), (&b"abc"[..], false));
    assert_eq!(conn.next_message(&sid).unwrap().payload, "xy");
    assert!(conn.is_connected());
}

#[test]
fn decode_errors_are_the_same_however_the_bytes_are_split() {
    let small = crate::nats::Limits {
        max_control_line: 32,
        max_json_line: 512,
        max_payload: 8,
    };
    let cases: [(&[u8], DecodeError); 4] = [
        (b"MSG s 1 3\r\nabcX\r\n", DecodeError::MissingPayloadCrlf),
        (b"MSG s 1 9\r\n", DecodeError::PayloadTooLarge { size: 9, max: 8 }),
        (b"BOGUS\r\n", DecodeError::UnknownOp),
        (
            &[&b"MSG "[..], &[b'a'; 200]].concat().leak()[..],
            DecodeError::ControlLineTooLong { max: 32 },
        ),
    ];
    for (input, error) in cases {
        for piece in [input.len(), 7, 3, 1] {
            let (mut conn, _, now) = fed(small);
            let mut got = Ok(());
            for chunk in input.chunks(piece) {
                got = conn.handle_input(Bytes::copy_from_slice(chunk), now);
                if got.is_err() {
                    break;
                }
            }
            let shown = String::from_utf8_lossy(input);
            assert_eq!(
                got,
                Err(ConnectionError::Decode(error.clone())),
                "{shown:?} in pieces of {piece}"
            );
        }
    }
}

#[test]
fn a_payload_arriving_in_pieces_is_gathered_and_the_pieces_released() {
    let (mut conn, sid, now) = fed(crate::nats::Limits::default());
    let payload: Vec<u8> = (0..1000u32).map(|i| b'a' + (i % 26) as u8).collect();
    let wire = [&b"MSG s 1 1000\r\n"[..], &payload, b"\r\nPING\r\n"].concat();
    for piece in wire.chunks(10) {
        conn.handle_input(Bytes::copy_from_slice(piece), now).unwrap();
        // Each piece is copied into the frame being gathered and dropped: received
        // segments (io_uring's ring buffers) are not held until the frame completes.
        assert!(
            conn.input.segment_count() <= 1,
            "{} segments held",
            conn.input.segment_count()
        );
    }
    assert_eq!(conn.next_message(&sid).unwrap().payload, payload);
    assert_eq!(conn.next_message(&sid), None);
    // The PING after it was answered.
    assert!(conn.poll_transmit().unwrap().to_vec().ends_with(b"PONG\r\n"));
}

// ---- taking messages in batches ----

/// `n` messages of one digit each (`0`, `1`, ...) for sid `sid` on subject `s`, in one
/// segment.
fn digits(sid: u64, n: u8) -> Bytes {
    let mut wire = Vec::new();
    for i in 0..n {
        wire.extend_from_slice(format!("MSG s {sid} 1\r\n{}\r\n", char::from(b'0' + i)).as_bytes());
    }
    Bytes::from(wire)
}

fn payloads(queue: &std::collections::VecDeque<Message>) -> Vec<u8> {
    queue.iter().map(|m| m.payload[0]).collect()
}

#[test]
fn next_messages_takes_in_order_within_max_and_reading_resumes_once() {
    let (mut conn, _, now) = fed(crate::nats::Limits::default());
    let policy = SubscriptionPolicy {
        max_messages: 3,
        max_bytes: 1 << 20,
        on_full: SlowConsumerPolicy::Backpressure,
    };
    let sid = conn.subscribe(b"s", None, policy).unwrap();
    assert_eq!(sid.as_u64(), Some(2));
    assert!(matches!(conn.poll_event(), Some(Event::Connected { .. })));
    conn.handle_input(digits(2, 10), now).unwrap();
    assert!(!conn.wants_read(), "three queued, the fourth stalled");
    assert_eq!((conn.pending_messages(&sid), conn.pending_bytes()), (Some((3, 3)), 3));
    assert_eq!(conn.poll_event(), Some(Event::Messages { sid: sid.clone() }));

    // At most `max`, oldest first; the room it frees lets the stalled one in.
    let mut out = std::collections::VecDeque::new();
    assert_eq!(conn.next_messages(&sid, &mut out, 2), 2);
    assert_eq!(payloads(&out), b"01");
    assert_eq!((conn.pending_messages(&sid), conn.pending_bytes()), (Some((3, 3)), 3));
    assert!(!conn.wants_read());
    assert_eq!(conn.poll_event(), None, "the queue never emptied: no new notification");

    // The whole queue into a non-empty `out`: appended behind what it holds.
    assert_eq!(conn.next_messages(&sid, &mut out, usize::MAX), 3);
    assert_eq!(payloads(&out), b"01234");
    assert_eq!(
        conn.pending_messages(&sid),
        Some((3, 3)),
        "refilled once, up to the bound"
    );
    assert_eq!(conn.poll_event(), Some(Event::Messages { sid: sid.clone() }));

    // Into an empty `out` (the queues are swapped), until nothing is left.
    let mut got = payloads(&out);
    loop {
        let mut batch = std::collections::VecDeque::new();
        if conn.next_messages(&sid, &mut batch, usize::MAX) == 0 {
            break;
        }
        assert!(batch.len() <= 3);
        got.extend(payloads(&batch));
    }
    assert_eq!(got, b"0123456789", "nothing lost, nothing twice, in order");
    assert!(conn.wants_read());
    assert_eq!((conn.pending_messages(&sid), conn.pending_bytes()), (Some((0, 0)), 0));
    assert_eq!(
        conn.next_messages(&Sid::from_u64(99), &mut out, 1),
        0,
        "not a subscription"
    );
    assert_eq!(conn.next_messages(&sid, &mut out, 0), 0);

    // The queue the subscription got back from the swap works as its own did.
    conn.handle_input(digits(2, 2), now).unwrap();
    assert_eq!(conn.poll_event(), Some(Event::Messages { sid: sid.clone() }));
    assert_eq!(conn.next_message(&sid).map(|m| m.payload), Some(payload("0")));
    assert_eq!(conn.pending_bytes(), 1);
}

#[test]
fn next_messages_frees_room_for_another_subscription_and_ends_a_drained_one() {
    let now = Instant::now();
    let mut conn = Connection::new(
        ClientConfig {
            max_pending_bytes: 8,
            ..config()
        },
        now,
    );
    conn.handle_input(Bytes::from_static(b"INFO {}\r\nPONG\r\n"), now)
        .unwrap();
    let dropping = conn.subscribe(b"d", None, SubscriptionPolicy::default()).unwrap();
    let waiting = conn.subscribe(b"s", None, SubscriptionPolicy::backpressure()).unwrap();
    conn.unsubscribe(&dropping, Some(2)).unwrap();
    conn.handle_input(
        Bytes::from_static(b"MSG d 1 4\r\n1234\r\nMSG d 1 4\r\n5678\r\nMSG s 2 1\r\nx\r\n"),
        now,
    )
    .unwrap();
    assert!(!conn.wants_read(), "the backpressured subscription waits for room");
    let mut out = std::collections::VecDeque::new();
    assert_eq!(conn.next_messages(&dropping, &mut out, usize::MAX), 2);
    assert!(conn.wants_read(), "room freed by another subscription resumes it");
    assert_eq!(
        conn.pending_messages(&dropping),
        None,
        "ended at its maximum and drained: gone"
    );
    assert_eq!(conn.pending_bytes(), 1);
    assert_eq!(conn.next_messages(&waiting, &mut out, usize::MAX), 1);
    assert_eq!(
        out.iter().map(|m| m.payload.clone()).collect::<Vec<_>>(),
        [payload("1234"), payload("5678"), payload("x")]
    );
    assert_eq!(conn.pending_bytes(), 0);
}
