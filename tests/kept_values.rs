//! Kept values never stop a connection.
//!
//! Reply values and message payloads are zero-copy views into receive memory. A program
//! that keeps many of them (a cache) must not starve its own connection: on io_uring a
//! kept view used to pin a whole 16 KiB buffer of the provided-buffer ring, so ~255 kept
//! values from separate round trips emptied the ring and every later call on that thread
//! timed out. These tests keep 10,000 values (and 10,000 NATS messages), then make 1,000
//! more round trips, on both drivers, against a real redis-server and nats-server.

mod support;

use std::time::Duration;

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::nats;
use monocoque::redis;
use support::{NatsServer, RedisServer};

both_drivers! {
    redis_values_kept_from_separate_gets => redis_values_kept_from_separate_gets_uring, redis_values_kept_from_separate_gets_mio;
    nats_messages_kept_one_per_round_trip => nats_messages_kept_one_per_round_trip_uring, nats_messages_kept_one_per_round_trip_mio;
    nats_messages_kept_in_bursts => nats_messages_kept_in_bursts_uring, nats_messages_kept_in_bursts_mio;
}

const KEPT: usize = 10_000;
const MORE: usize = 1_000;
/// Short enough that a starved connection fails the test quickly, long enough for a
/// loaded 2-core machine.
const TIMEOUT: Duration = Duration::from_secs(5);

fn redis_values_kept_from_separate_gets(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let options = redis::ClientOptions::new(server.addr.ip().to_string(), server.addr.port())
        .driver(driver)
        .response_timeout(Some(TIMEOUT));
    let mut client = redis::Client::connect_with(options).expect("connect to redis-server");
    for k in 0..10 {
        client
            .set(format!("key:{k}"), format!("value number {k}"))
            .expect("SET");
    }
    let mut kept: Vec<Bytes> = Vec::with_capacity(KEPT);
    for i in 0..KEPT {
        // One GET per round trip: every reply arrives in its own receive.
        let value = client
            .get(format!("key:{}", i % 10))
            .unwrap_or_else(|e| panic!("GET {i} with {} values kept: {e}", kept.len()))
            .expect("the key exists");
        kept.push(value);
    }
    for i in 0..MORE {
        let value = client
            .get(format!("key:{}", i % 10))
            .unwrap_or_else(|e| panic!("GET {i} after keeping {KEPT} values: {e}"));
        assert_eq!(value.as_deref(), Some(format!("value number {}", i % 10).as_bytes()));
    }
    for (i, value) in kept.iter().enumerate() {
        assert_eq!(
            &value[..],
            format!("value number {}", i % 10).as_bytes(),
            "kept value {i} changed"
        );
    }
}

fn nats_client(server: &NatsServer, driver: DriverKind) -> nats::Client {
    let options = nats::ClientOptions::from_url(&server.url())
        .expect("valid URL")
        .driver(driver);
    nats::Client::connect_with(options).expect("connect to nats-server")
}

fn payload(i: usize) -> Vec<u8> {
    format!("payload {i:06}").into_bytes()
}

/// Publishes one message and receives it before the next: `count` round trips.
fn publish_receive_round_trips(
    client: &mut nats::Client,
    sub: &mut nats::Subscription,
    start: usize,
    count: usize,
    kept: &mut Vec<Bytes>,
) {
    for i in start..start + count {
        client.publish("kept", payload(i)).expect("publish");
        client.flush().expect("flush");
        let msg = sub
            .next_message(TIMEOUT)
            .unwrap_or_else(|e| panic!("message {i} with {} kept: {e}", kept.len()))
            .unwrap_or_else(|| panic!("message {i} did not come within {TIMEOUT:?} with {} kept", kept.len()));
        assert_eq!(&msg.payload[..], &payload(i)[..]);
        kept.push(msg.payload);
    }
}

fn nats_messages_kept_one_per_round_trip(driver: DriverKind) {
    let server = NatsServer::start();
    let mut client = nats_client(&server, driver);
    let mut sub = client.subscribe("kept").expect("subscribe");
    let mut kept = Vec::with_capacity(KEPT);
    publish_receive_round_trips(&mut client, &mut sub, 0, KEPT, &mut kept);
    let mut more = Vec::new();
    publish_receive_round_trips(&mut client, &mut sub, KEPT, MORE, &mut more);
    for (i, p) in kept.iter().enumerate() {
        assert_eq!(&p[..], &payload(i)[..], "kept payload {i} changed");
    }
}

fn nats_messages_kept_in_bursts(driver: DriverKind) {
    const BURST: usize = 500;
    let server = NatsServer::start();
    let mut client = nats_client(&server, driver);
    let mut sub = client.subscribe("kept").expect("subscribe");
    let mut kept = Vec::with_capacity(KEPT);
    for burst in 0..KEPT / BURST {
        for i in burst * BURST..(burst + 1) * BURST {
            client.publish("kept", payload(i)).expect("publish");
        }
        client.flush().expect("flush");
        for i in burst * BURST..(burst + 1) * BURST {
            let msg = sub
                .next_message(TIMEOUT)
                .unwrap_or_else(|e| panic!("message {i}: {e}"))
                .unwrap_or_else(|| panic!("message {i} did not come within {TIMEOUT:?}"));
            assert_eq!(&msg.payload[..], &payload(i)[..]);
            kept.push(msg.payload);
        }
    }
    let mut more = Vec::new();
    publish_receive_round_trips(&mut client, &mut sub, KEPT, MORE, &mut more);
    for (i, p) in kept.iter().enumerate() {
        assert_eq!(&p[..], &payload(i)[..], "kept payload {i} changed");
    }
}
