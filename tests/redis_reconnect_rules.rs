//! What a reconnecting `monocoque::redis::Client` restores and refuses, against a real
//! `redis-server`, on both drivers: the rules live in `monocoque_proto::resp::Connection`
//! (`take_reconnect_state`, `resume`, RESP2 subscriber mode); these tests pin them
//! through the client.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::redis::{cmd, Client, ClientOptions, Error, Event, Invalidation, Protocol, ReconnectPolicy, Value};
use support::RedisServer;

both_drivers! {
    resp2_restore_brings_back_tracking_and_subscriptions => resp2_restore_brings_back_tracking_and_subscriptions_uring, resp2_restore_brings_back_tracking_and_subscriptions_mio;
    resp2_subscriber_mode_holds_while_disconnected => resp2_subscriber_mode_holds_while_disconnected_uring, resp2_subscriber_mode_holds_while_disconnected_mio;
    resp2_command_held_behind_a_subscribe_is_refused => resp2_command_held_behind_a_subscribe_is_refused_uring, resp2_command_held_behind_a_subscribe_is_refused_mio;
}

fn options(server: &RedisServer, driver: DriverKind, protocol: Protocol) -> ClientOptions {
    ClientOptions::new(server.addr.ip().to_string(), server.addr.port())
        .driver(driver)
        .protocol(protocol)
        .reconnect(ReconnectPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            jitter: 0.0,
            max_attempts: None,
        })
}

fn connect(server: &RedisServer, driver: DriverKind, protocol: Protocol) -> Client {
    Client::connect_with(options(server, driver, protocol)).expect("connect to redis-server")
}

/// Events for `wait`, until `enough` holds (and then 200 ms more, for any that follow).
fn events_for(client: &mut Client, wait: Duration, enough: impl Fn(&[Event]) -> bool) -> Vec<Event> {
    let deadline = Instant::now() + wait;
    let mut events = Vec::new();
    while Instant::now() < deadline && !enough(&events) {
        if let Some(e) = client.next_event(Duration::from_millis(50)).unwrap() {
            events.push(e);
        }
    }
    let extra = Instant::now() + Duration::from_millis(200);
    while Instant::now() < extra {
        if let Some(e) = client.next_event(Duration::from_millis(50)).unwrap() {
            events.push(e);
        }
    }
    events
}

/// A RESP2 connection with tracking redirected and a subscription: the server refuses
/// `CLIENT TRACKING` in subscriber mode, so the restore must send it before the
/// subscribe. (Sent after it, it came back `-ERR Can't execute 'client|tracking'` as an
/// `Event::RestoreFailed`, and tracking was lost.)
fn resp2_restore_brings_back_tracking_and_subscriptions(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut admin = connect(&server, driver, Protocol::Resp3);
    let mut sink = connect(&server, driver, Protocol::Resp2);
    let sink_id = sink.client_id().unwrap();
    let mut c = connect(&server, driver, Protocol::Resp2);
    c.enable_tracking_redirect(sink_id).unwrap();
    let id = c.client_id().unwrap();
    c.subscribe(&["ch"]).unwrap();

    let killed: i64 = admin.query_as(&cmd("CLIENT").arg("KILL").arg("ID").arg(id)).unwrap();
    assert_eq!(killed, 1);
    let events = events_for(&mut c, Duration::from_secs(5), |e| e.len() >= 2);
    assert_eq!(
        events,
        [Event::Reconnected, Event::Invalidate(Invalidation { keys: None })],
        "tracking and the subscription restored, nothing refused"
    );
    assert_eq!(c.connections(), 2);
    let clients: Bytes = admin.query_as(&cmd("CLIENT").arg("LIST")).unwrap();
    let clients = String::from_utf8_lossy(&clients).into_owned();
    let redirected = format!(" redir={sink_id} ");
    assert!(
        clients
            .lines()
            .any(|l| l.contains(&redirected) && l.contains(" sub=1 ") && !l.contains(&format!("id={id} "))),
        "the new connection tracks into the sink and is subscribed: {clients}"
    );
    assert_eq!(admin.publish("ch", "after").unwrap(), 1);
    let m = c.next_message(Duration::from_secs(5)).unwrap().expect("after");
    assert_eq!(m.payload, Bytes::from_static(b"after"));
}

/// While no connection is up, subscriber mode is judged with the last connection's
/// protocol and the subscriptions it handed over: `GET` is refused at once, `PING` is
/// kept and sent once the subscription is restored.
fn resp2_subscriber_mode_holds_while_disconnected(driver: DriverKind) {
    let mut server = RedisServer::start(&[]);
    let mut c = connect(&server, driver, Protocol::Resp2);
    c.subscribe(&["ch"]).unwrap();
    server.kill();
    // The loss is noticed, the reconnect attempts are refused.
    let _ = c.next_event(Duration::from_millis(300));
    assert!(!c.is_connected());
    match c.send_buffered(&cmd("GET").arg("k")) {
        Err(Error::SubscriberMode { command }) => assert_eq!(command, "GET"),
        other => panic!("GET while disconnected in subscriber mode: {other:?}"),
    }
    assert!(matches!(
        c.send_transaction(&[cmd("INCR").arg("n")]),
        Err(Error::SubscriberMode { .. })
    ));
    c.send_buffered(&cmd("PING")).unwrap();

    server.restart(&[]);
    let replies = c.flush().unwrap();
    let pong = Value::Array(vec![
        Value::BulkString(Bytes::from_static(b"pong")),
        Value::BulkString(Bytes::new()),
    ]);
    match replies.as_slice() {
        [Ok(reply)] => assert_eq!(reply, &pong, "PING answered in subscriber mode"),
        other => panic!("the held PING: {other:?}"),
    }
    let mut admin = connect(&server, driver, Protocol::Resp3);
    assert_eq!(admin.publish("ch", "back").unwrap(), 1);
    let m = c.next_message(Duration::from_secs(5)).unwrap().expect("back");
    assert_eq!(m.payload, Bytes::from_static(b"back"));
}

/// A command kept in the client behind a `SUBSCRIBE` (`max_pending(1)`: the connection
/// takes one request at a time) is refused when it is handed over, after the
/// `SUBSCRIBE`: its outcome is `Error::SubscriberMode`, and it never reaches the server.
fn resp2_command_held_behind_a_subscribe_is_refused(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut c = Client::connect_with(options(&server, driver, Protocol::Resp2).max_pending(1)).unwrap();
    let mut admin = connect(&server, driver, Protocol::Resp3);
    c.send_buffered(&cmd("PING")).unwrap();
    c.send_buffered(&cmd("SUBSCRIBE").arg("ch")).unwrap();
    c.send_buffered(&cmd("INCR").arg("n")).unwrap();
    let replies = c.flush().unwrap();
    assert_eq!(replies.len(), 3);
    assert!(replies[0].is_ok() && replies[1].is_ok(), "{replies:?}");
    match &replies[2] {
        Err(Error::SubscriberMode { command }) => assert_eq!(command, "INCR"),
        other => panic!("INCR behind SUBSCRIBE: {other:?}"),
    }
    assert_eq!(admin.get("n").unwrap(), None, "INCR never ran");
    assert_eq!(admin.publish("ch", "x").unwrap(), 1);
}
