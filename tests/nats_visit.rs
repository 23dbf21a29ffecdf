//! `Subscription::for_each_message` (messages visited as borrowed frames, no queue)
//! against a real `nats-server`, on both drivers: every test runs as `<name>_uring` and
//! `<name>_mio`.

mod support;

use std::thread;
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::nats::{Client, ClientOptions, Error, Event, HeaderMap, Message, MessageRef};
use support::NatsServer;

both_drivers! {
    visits_mixed_with_next_message_keep_order => visits_mixed_with_next_message_keep_order_uring, visits_mixed_with_next_message_keep_order_mio;
    a_slow_closure_holds_reading_back_and_loses_nothing => a_slow_closure_holds_reading_back_and_loses_nothing_uring, a_slow_closure_holds_reading_back_and_loses_nothing_mio;
    deadlines_and_the_end_of_a_subscription => deadlines_and_the_end_of_a_subscription_uring, deadlines_and_the_end_of_a_subscription_mio;
}

const WAIT: Duration = Duration::from_secs(5);

fn connect(server: &NatsServer, driver: DriverKind) -> Client {
    let options = ClientOptions::from_url(&server.url())
        .expect("valid URL")
        .driver(driver);
    Client::connect_with(options).expect("connect to nats-server")
}

/// The sequence number at the head of a payload (`"<n>:..."`).
fn seq(payload: &[u8]) -> u64 {
    let text = std::str::from_utf8(payload).expect("utf-8 payload");
    text.split(':')
        .next()
        .and_then(|n| n.parse().ok())
        .expect("a sequence number")
}

/// What the test checks of a message, however it was taken: sequence number, reply,
/// header value `N`.
fn parts(m: MessageRef<'_>) -> (u64, Option<Vec<u8>>, Option<String>) {
    let header = m.headers.map(|h| {
        let text = String::from_utf8_lossy(h);
        let line = text.lines().find(|l| l.starts_with("N: ")).expect("header N");
        line[3..].to_owned()
    });
    (seq(m.payload), m.reply.map(<[u8]>::to_vec), header)
}

fn owned_parts(m: &Message) -> (u64, Option<Vec<u8>>, Option<String>) {
    parts(m.as_message_ref())
}

/// Messages with and without reply and headers, taken in turns by `for_each_message`
/// (small and large maximums), `next_message` and `next_messages`: every one once, in
/// order, with its reply and headers intact.
fn visits_mixed_with_next_message_keep_order(driver: DriverKind) {
    const N: u64 = 3000;
    let server = NatsServer::start();
    let mut client = connect(&server, driver);
    let mut sub = client.subscribe("v.>").expect("subscribe");
    client.round_trip().expect("round trip");
    let mut publisher = connect(&server, driver);
    let mut want = Vec::new();
    for i in 0..N {
        let payload = format!("{i}:{}", "p".repeat((i % 50) as usize));
        match i % 3 {
            0 => {
                publisher.publish("v.a", payload).expect("publish");
                want.push((i, None, None));
            }
            1 => {
                publisher
                    .publish_with_reply("v.b", "inbox.x", payload)
                    .expect("publish");
                want.push((i, Some(b"inbox.x".to_vec()), None));
            }
            _ => {
                let mut headers = HeaderMap::new();
                headers.insert("N", i.to_string()).expect("header");
                publisher
                    .publish_with_headers("v.c", &headers, payload)
                    .expect("publish");
                want.push((i, None, Some(i.to_string())));
            }
        }
    }
    publisher.flush().expect("flush");
    let mut got = Vec::new();
    let mut batch = std::collections::VecDeque::new();
    let mut turn = 0u64;
    while (got.len() as u64) < N {
        turn += 1;
        match turn % 4 {
            0 => {
                if let Some(m) = sub.next_message(WAIT).expect("next_message") {
                    got.push(owned_parts(&m));
                }
            }
            1 => {
                sub.next_messages(&mut batch, 5, WAIT).expect("next_messages");
                got.extend(batch.drain(..).map(|m| owned_parts(&m)));
            }
            2 => {
                let n = sub
                    .for_each_message(7, WAIT, |m| got.push(parts(m)))
                    .expect("for_each_message");
                assert!(n <= 7);
            }
            _ => {
                sub.for_each_message(usize::MAX, WAIT, |m| got.push(parts(m)))
                    .expect("for_each_message");
            }
        }
    }
    assert_eq!(got, want, "each message once, in order");
    let quiet = sub.for_each_message(usize::MAX, Duration::from_millis(100), |_| panic!("nothing more"));
    assert_eq!(quiet.expect("quiet"), 0);
    assert_eq!(sub.dropped(), 0);
    assert!(client.is_connected());
}

/// A closure slower than the publisher: the client stops reading instead of queueing
/// (what is queued stays within about the 1 MiB of input held back per call), the
/// server keeps the rest, and every message arrives in order; keepalive and round trips
/// still work in between.
fn a_slow_closure_holds_reading_back_and_loses_nothing(driver: DriverKind) {
    const N: u64 = 20_000;
    let server = NatsServer::start();
    let mut client = connect(&server, driver);
    let mut sub = client.subscribe("slow").expect("subscribe");
    client.round_trip().expect("round trip");
    let url = server.url();
    let publisher = thread::spawn(move || {
        let options = ClientOptions::from_url(&url).expect("valid URL").driver(driver);
        let mut publisher = Client::connect_with(options).expect("publisher connects");
        for i in 0..N {
            publisher
                .publish("slow", format!("{i}:{}", "s".repeat(300)))
                .expect("publish");
        }
        publisher.flush().expect("flush");
        publisher.round_trip().expect("round trip");
    });
    let mut next = 0;
    let mut most_queued = 0;
    let started = Instant::now();
    while next < N {
        assert!(started.elapsed() < Duration::from_secs(120), "stuck at {next}");
        sub.for_each_message(usize::MAX, WAIT, |m| {
            assert_eq!(seq(m.payload), next, "in order, nothing lost or twice");
            next += 1;
            if next % 64 == 0 {
                // Slow: about 6 MB published, read at most at 64 messages a millisecond.
                thread::sleep(Duration::from_millis(1));
            }
        })
        .expect("for_each_message");
        most_queued = most_queued.max(client.pending_bytes());
        if next % 5000 < 50 {
            client.round_trip().expect("round trip while visiting");
        }
    }
    publisher.join().expect("publisher");
    assert!(
        most_queued <= 2 << 20,
        "queued {most_queued} bytes: reading waited for the closure"
    );
    assert_eq!(sub.dropped(), 0);
    assert!(client.is_connected());
    assert_eq!(client.connections(), 1);
    while let Some(event) = client.next_event(Duration::ZERO).expect("event") {
        assert!(!matches!(event, Event::SlowConsumer { .. }), "{event:?}");
    }
}

/// Nothing published: the call returns 0 by its deadline (a poll at once); a
/// subscription that reached its maximum is visited up to it, then closed.
fn deadlines_and_the_end_of_a_subscription(driver: DriverKind) {
    let server = NatsServer::start();
    let mut client = connect(&server, driver);
    let mut sub = client.subscribe("d").expect("subscribe");
    client.round_trip().expect("round trip");
    let started = Instant::now();
    let n = sub
        .for_each_message(usize::MAX, Duration::from_millis(300), |_| {
            panic!("nothing was published")
        })
        .expect("quiet");
    let waited = started.elapsed();
    assert_eq!(n, 0);
    assert!(waited >= Duration::from_millis(300), "returned early: {waited:?}");
    assert!(waited < Duration::from_millis(300) + WAIT, "returned late: {waited:?}");
    assert_eq!(
        sub.for_each_message(usize::MAX, Duration::ZERO, |_| ()).expect("poll"),
        0
    );
    assert_eq!(sub.for_each_message(0, WAIT, |_| ()).expect("max 0"), 0);

    sub.unsubscribe_after(5).expect("unsubscribe after 5");
    let mut publisher = connect(&server, driver);
    for i in 0..10 {
        publisher.publish("d", format!("{i}:")).expect("publish");
    }
    publisher.flush().expect("flush");
    let mut got = Vec::new();
    let closed = loop {
        match sub.for_each_message(usize::MAX, WAIT, |m| got.push(seq(m.payload))) {
            Ok(n) => assert!(n > 0, "the first five come within the wait"),
            Err(e) => break e,
        }
    };
    assert_eq!(got, [0, 1, 2, 3, 4]);
    assert!(matches!(closed, Error::SubscriptionClosed), "{closed:?}");
    assert!(client.is_connected());
}
