//! `Client::flush_visit` and `Client::pump_visit` (replies handed over as borrowed
//! `TapeRef`s) against a real `redis-server`, on both drivers: every visit is checked
//! against what `flush` returns for the same commands.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::redis::{cmd, Client, ClientOptions, Cmd, Error, Protocol, TapeKind, Value};
use support::RedisServer;

both_drivers! {
    pipelined_get_set_incr_and_errors => pipelined_get_set_incr_and_errors_uring, pipelined_get_set_incr_and_errors_mio;
    a_bulk_split_across_reads => a_bulk_split_across_reads_uring, a_bulk_split_across_reads_mio;
    transactions_pushes_and_queries_keep_their_order => transactions_pushes_and_queries_keep_their_order_uring, transactions_pushes_and_queries_keep_their_order_mio;
    pump_visit_streams_in_order => pump_visit_streams_in_order_uring, pump_visit_streams_in_order_mio;
    a_lost_connection_is_visited_as_errors => a_lost_connection_is_visited_as_errors_uring, a_lost_connection_is_visited_as_errors_mio;
}

fn options(server: &RedisServer, driver: DriverKind, protocol: Protocol) -> ClientOptions {
    ClientOptions::new(server.addr.ip().to_string(), server.addr.port())
        .driver(driver)
        .protocol(protocol)
}

/// An outcome as both paths can be compared: the value, or the server error's code.
fn owned(outcome: Result<Value, Error>) -> Result<Value, String> {
    match outcome {
        Ok(v) => Ok(v),
        Err(Error::Server(e)) => Err(e.code().to_owned()),
        Err(other) => Err(format!("not a server error: {other}")),
    }
}

/// `flush_visit`, each reply kept with `to_value`.
fn visit_all(c: &mut Client) -> Vec<Result<Value, String>> {
    let mut got = Vec::new();
    let n = c
        .flush_visit(|reply| got.push(owned(reply.map(|r| r.to_value()))))
        .unwrap();
    assert_eq!(n, got.len());
    got
}

/// A mixed pipeline: SET, GET (hit and miss), INCR, an unknown command, a type error,
/// LRANGE, HGETALL (a map on RESP3).
fn script(i: usize) -> Vec<Cmd> {
    vec![
        cmd("SET").arg(format!("key:{i}")).arg(format!("value:{i:010}")),
        cmd("GET").arg(format!("key:{i}")),
        cmd("GET").arg(format!("missing:{i}")),
        cmd("INCR").arg("counter"),
        cmd("NOSUCHCOMMAND").arg(i),
        cmd("INCR").arg(format!("key:{i}")),
        cmd("RPUSH").arg("list").arg(i),
        cmd("LRANGE").arg("list").arg(0).arg(1),
        cmd("HSET").arg("h").arg("f").arg(i),
        cmd("HGETALL").arg("h"),
    ]
}

fn pipelined_get_set_incr_and_errors(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        // A small window: most commands wait in the client and go out as replies come.
        let mut c = Client::connect_with(options(&server, driver, protocol).max_pending(500)).unwrap();
        c.query(&cmd("FLUSHALL")).unwrap();
        const ROUNDS: usize = 2_000;
        for i in 0..ROUNDS {
            for command in script(i) {
                c.send_buffered(&command).unwrap();
            }
        }
        let visited = visit_all(&mut c);
        assert_eq!(visited.len(), ROUNDS * 10);
        for (i, round) in visited.chunks(10).enumerate() {
            assert_eq!(round[0], Ok(Value::SimpleString("OK".into())), "{protocol:?} round {i}");
            assert_eq!(round[1], Ok(Value::BulkString(Bytes::from(format!("value:{i:010}")))));
            assert_eq!(round[2], Ok(Value::Null));
            assert_eq!(round[3], Ok(Value::Integer(i as i64 + 1)));
            assert_eq!(round[4], Err("ERR".to_owned()));
            assert_eq!(round[5], Err("ERR".to_owned()), "not an integer");
            assert_eq!(round[6], Ok(Value::Integer(i as i64 + 1)));
            assert!(matches!(&round[7], Ok(Value::Array(a)) if a.len() == (i + 1).min(2)));
        }
        // The same commands through `flush` give the same outcomes.
        c.query(&cmd("FLUSHALL")).unwrap();
        for i in 0..ROUNDS {
            for command in script(i) {
                c.send_buffered(&command).unwrap();
            }
        }
        let flushed: Vec<_> = c.flush().unwrap().into_iter().map(owned).collect();
        assert_eq!(visited, flushed, "{protocol:?}");

        // Borrowed reads see the kinds and bytes without `to_value`.
        c.send_buffered(&cmd("GET").arg("key:7")).unwrap();
        c.send_buffered(&cmd("INCR").arg("counter")).unwrap();
        c.send_buffered(&cmd("WRONG")).unwrap();
        let mut seen = Vec::new();
        c.flush_visit(|reply| match reply {
            Ok(r) => seen.push(format!(
                "{:?} {:?} {:?}",
                r.kind(),
                r.as_bytes().map(<[u8]>::to_vec),
                r.as_integer()
            )),
            Err(e) => seen.push(format!("error {e}")),
        })
        .unwrap();
        assert_eq!(
            seen[0],
            format!(
                "{:?} Some({:?}) None",
                TapeKind::BulkString,
                b"value:0000000007".to_vec()
            )
        );
        assert_eq!(seen[1], format!("{:?} None Some({})", TapeKind::Integer, ROUNDS + 1));
        assert!(
            seen[2].starts_with("error server error: ERR unknown command"),
            "{}",
            seen[2]
        );
    }
}

fn a_bulk_split_across_reads(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    for protocol in [Protocol::Resp2, Protocol::Resp3] {
        let mut c = Client::connect_with(options(&server, driver, protocol)).unwrap();
        // 8 MiB: many receives on either driver, so the reply straddles segments.
        let big: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
        c.query(&cmd("SET").arg("big").arg(&big[..])).unwrap();
        for _ in 0..3 {
            c.send_buffered(&cmd("INCR").arg("n")).unwrap();
            c.send_buffered(&cmd("GET").arg("big")).unwrap();
        }
        let mut lens = Vec::new();
        let mut ints = Vec::new();
        let n = c
            .flush_visit(|reply| {
                let r = reply.unwrap();
                match r.kind() {
                    TapeKind::BulkString => {
                        assert!(r.as_bytes() == Some(&big[..]), "the bulk's bytes");
                        lens.push(r.as_bytes().map_or(0, <[u8]>::len));
                    }
                    _ => ints.push(r.as_integer().unwrap()),
                }
            })
            .unwrap();
        assert_eq!(n, 6, "{protocol:?}");
        assert_eq!(lens, [big.len(); 3]);
        let start = ints[0];
        assert_eq!(ints, [start, start + 1, start + 2]);
    }
}

fn transactions_pushes_and_queries_keep_their_order(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut publisher = Client::connect_with(options(&server, driver, Protocol::Resp2)).unwrap();
    let mut c = Client::connect_with(options(&server, driver, Protocol::Resp3)).unwrap();
    c.subscribe(&["news"]).unwrap();
    for round in 0..50 {
        c.send_buffered(&cmd("SET").arg("t").arg(round)).unwrap();
        c.send_transaction(&[cmd("INCR").arg("t"), cmd("GET").arg("t")])
            .unwrap();
        c.send_buffered(&cmd("GET").arg("t")).unwrap();
        c.send_buffered(&cmd("MULTI")).unwrap();
        c.send_buffered(&cmd("INCR").arg("t")).unwrap();
        c.send_buffered(&cmd("EXEC")).unwrap();
        // Taken by the query: not visited again.
        let got = c.query(&cmd("INCR").arg("t")).unwrap();
        assert_eq!(got, Value::Integer(round + 3));
        publisher.publish("news", format!("m{round}")).unwrap();
        c.send_buffered(&cmd("GET").arg("t")).unwrap();
        let visited = visit_all(&mut c);
        let n = |v: i64| Value::BulkString(Bytes::from(v.to_string()));
        assert_eq!(
            visited,
            [
                Ok(Value::SimpleString("OK".into())),
                Ok(Value::Array(vec![Value::Integer(round + 1), n(round + 1)])),
                Ok(n(round + 1)),
                Ok(Value::SimpleString("OK".into())),
                Ok(Value::SimpleString("QUEUED".into())),
                Ok(Value::Array(vec![Value::Integer(round + 2)])),
                Ok(n(round + 3)),
            ],
            "round {round}"
        );
        // The push that came among the replies is an event, as without a visit.
        let message = c.next_message(Duration::from_secs(10)).unwrap().expect("a message");
        assert_eq!(&message.payload[..], format!("m{round}").as_bytes());
    }
}

fn pump_visit_streams_in_order(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut c = Client::connect_with(options(&server, driver, Protocol::Resp3).max_pending(2_000)).unwrap();
    const N: i64 = 50_000;
    let mut sent = 0;
    let mut next = 1;
    let deadline = Instant::now() + Duration::from_secs(120);
    while next <= N {
        assert!(Instant::now() < deadline, "stuck at {next}");
        while sent < N && c.unsent() == 0 && c.buffered() < 1_500 {
            c.send_buffered(&cmd("INCR").arg("s")).unwrap();
            sent += 1;
        }
        c.pump_visit(Some(Instant::now() + Duration::from_secs(5)), |reply| {
            assert_eq!(reply.unwrap().as_integer(), Some(next));
            next += 1;
        })
        .unwrap();
    }
    assert_eq!(c.buffered(), 0);
    // Replies kept in the client between calls are visited as owned values.
    c.send_buffered(&cmd("INCR").arg("s")).unwrap();
    let mut replies = Vec::new();
    c.pump_into(Some(Instant::now() + Duration::from_secs(5)), &mut replies)
        .unwrap();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].as_ref().unwrap(), &Value::Integer(N + 1));
}

fn a_lost_connection_is_visited_as_errors(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut c = Client::connect_with(options(&server, driver, Protocol::Resp3)).unwrap();
    let id: i64 = c.query_as(&cmd("CLIENT").arg("ID")).unwrap();
    c.send_buffered(&cmd("SET").arg("a").arg(1)).unwrap();
    // Holds the connection until the other client kills it.
    c.send_buffered(&cmd("BLPOP").arg("nothing").arg(0)).unwrap();
    c.send_buffered(&cmd("GET").arg("a")).unwrap();
    let killer_options = options(&server, driver, Protocol::Resp3);
    let handle = std::thread::spawn(move || {
        // The io_uring ring is single-issuer: the client is made on its thread.
        let mut killer = Client::connect_with(killer_options).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        killer.query(&cmd("CLIENT").arg("KILL").arg("ID").arg(id)).unwrap()
    });
    let mut got = Vec::new();
    c.flush_visit(|reply| {
        got.push(match reply {
            Ok(r) => Ok(r.to_value()),
            Err(e) => Err(e.is_connection_failure()),
        })
    })
    .unwrap();
    assert_eq!(handle.join().unwrap(), Value::Integer(1));
    assert_eq!(got, [Ok(Value::SimpleString("OK".into())), Err(true), Err(true)]);
    // The client reconnects for what comes next.
    c.send_buffered(&cmd("GET").arg("a")).unwrap();
    assert_eq!(visit_all(&mut c), [Ok(Value::from("1"))]);
}
