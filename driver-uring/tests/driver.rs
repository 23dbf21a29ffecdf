//! The io_uring driver over real loopback sockets: echo, large transfers with partial
//! sends, peers closing and resetting, many connections, an exhausted buffer ring,
//! timers, refused connects, read backpressure and receive-buffer lifetimes.
//!
//! The same tests run under AddressSanitizer, where a buffer freed or reused while the
//! kernel still held its address would show up:
//!
//! ```text
//! RUSTFLAGS=-Zsanitizer=address RUSTDOCFLAGS=-Zsanitizer=address \
//!     cargo +nightly test -p monocoque-uring --target x86_64-unknown-linux-gnu
//! ```
//!
//! (`RUSTDOCFLAGS` is for the crate's doctest: rustdoc ignores `RUSTFLAGS`, so without
//! it only the doctest fails, to link; the unit and integration tests pass either way.)

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use monocoque_proto::{Activity, Driver, Session};
use monocoque_uring::{UringConfig, UringDriver};

const LOOPBACK: &str = "127.0.0.1:0";

fn loopback() -> SocketAddr {
    LOOPBACK.parse().unwrap()
}

fn echo_server(d: &mut UringDriver<Peer>) -> SocketAddr {
    let l = d.listen(loopback(), Box::new(|_, _, _| Peer::echo())).unwrap();
    d.listener_addr(l).unwrap()
}

fn echo_round_trip_on(mut d: UringDriver<Peer>) {
    let addr = echo_server(&mut d);
    let msg = b"hello, io_uring";
    let c = d.connect(addr, Peer::sending(msg)).unwrap();
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(5), "echo reply", &mut log, |d, _| {
        d.session(c).unwrap().received.len() >= msg.len()
    });
    assert_eq!(d.session(c).unwrap().received, msg);
    assert!(log.iter().any(|a| matches!(a, Activity::Connected(x) if *x == c)));
    assert!(log.iter().any(|a| matches!(a, Activity::Ready(x) if *x == c)));
    let servers = accepted(&log);
    assert_eq!(servers.len(), 1);
    assert_eq!(d.session(servers[0]).unwrap().received, msg);
}

#[test]
fn echo_round_trip() {
    let d = driver();
    let f = d.features();
    eprintln!("ring features: {f:?}");
    assert!(
        !f.defer_taskrun || f.single_issuer,
        "DEFER_TASKRUN requires SINGLE_ISSUER"
    );
    echo_round_trip_on(d);
}

#[test]
fn echo_round_trip_on_a_plain_ring() {
    let d = driver_with(UringConfig {
        plain_ring: true,
        ..UringConfig::default()
    });
    let f = d.features();
    assert!(!f.single_issuer && !f.defer_taskrun && !f.coop_taskrun && !f.submit_all);
    echo_round_trip_on(d);
}

#[test]
fn echo_without_registered_send_buffers() {
    let d = driver_with(UringConfig {
        send_buffers: 0,
        ..UringConfig::default()
    });
    echo_round_trip_on(d);
}

#[test]
fn transfer_of_32_mib_resumes_partial_sends() {
    let mut d = driver();
    let addr = echo_server(&mut d);
    let data = pattern(7, 32 << 20);
    let mut client = Peer::default();
    client.out.put_shared(Bytes::from(data.clone()));
    let c = d.connect(addr, client).unwrap();
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(60), "32 MiB echoed", &mut log, |d, _| {
        d.session(c).unwrap().received.len() >= data.len()
    });
    let got = &d.session(c).unwrap().received;
    assert_eq!(got.len(), data.len());
    assert!(*got == data, "echoed bytes differ from what was sent");
    let stats = d.stats();
    assert!(stats.partial_sends > 0, "no partial send happened: {stats:?}");
    assert!(stats.sends_vectored > 0 && stats.sends_copied > 0, "{stats:?}");
}

#[test]
fn peer_closing_mid_frame_delivers_bytes_then_eof_and_closed() {
    let mut d = driver();
    let l = d.listen(loopback(), Box::new(|_, _, _| Peer::default())).unwrap();
    let addr = d.listener_addr(l).unwrap();
    let half_frame = b"*3\r\n$3\r\nSET\r\n$3\r\nke";
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.write_all(half_frame).unwrap();
    drop(peer);
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(5), "Closed", &mut log, |_, log| {
        accepted(log).first().is_some_and(|c| closed_error(log, *c).is_some())
    });
    let conn = accepted(&log)[0];
    assert_eq!(closed_error(&log, conn), Some(None), "a clean close carries no error");
    let s = d.session(conn).expect("a closed session stays until remove");
    assert_eq!(s.received, half_frame);
    assert!(s.eof);
    let ready_at = log
        .iter()
        .position(|a| matches!(a, Activity::Ready(x) if *x == conn))
        .unwrap();
    let closed_at = log
        .iter()
        .position(|a| matches!(a, Activity::Closed { conn: x, .. } if *x == conn))
        .unwrap();
    assert!(ready_at < closed_at);
    assert!(d.remove(conn).is_some_and(|s| s.received == half_frame));
    assert!(d.session(conn).is_none());
    assert!(d.remove(conn).is_none());
}

#[test]
fn peer_resetting_while_we_send_reports_the_error() {
    let mut d = driver();
    let big = Bytes::from(pattern(3, 16 << 20));
    let l = d
        .listen(
            loopback(),
            Box::new(move |_, _, _| {
                let mut p = Peer::default();
                p.out.put_shared(big.clone());
                p
            }),
        )
        .unwrap();
    let addr = d.listener_addr(l).unwrap();
    let mut log = Vec::new();
    let mut peer = TcpStream::connect(addr).unwrap();
    run_until(&mut d, Duration::from_secs(5), "accept", &mut log, |_, log| {
        !accepted(log).is_empty()
    });
    let conn = accepted(&log)[0];
    run_until(
        &mut d,
        Duration::from_secs(5),
        "a first partial send",
        &mut log,
        |d, _| d.session(conn).unwrap().out.len() < 16 << 20,
    );
    let mut first = [0u8; 1024];
    peer.read_exact(&mut first).unwrap();
    // Closing with unread data makes the kernel answer with a reset.
    drop(peer);
    run_until(
        &mut d,
        Duration::from_secs(10),
        "Closed with error",
        &mut log,
        |_, log| closed_error(log, conn).is_some(),
    );
    let kind = closed_error(&log, conn).unwrap();
    assert!(
        matches!(
            kind,
            Some(std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe)
        ),
        "unexpected close: {kind:?}"
    );
    assert!(d.session(conn).unwrap().eof);
}

#[test]
fn five_hundred_connections_echo_and_close() {
    const N: usize = 500;
    let mut d = driver();
    let addr = echo_server(&mut d);
    let mut clients = Vec::new();
    for i in 0..N {
        let msg = format!("connection {i} says {}", "hi ".repeat(i % 37));
        let c = d.connect(addr, Peer::sending(msg.as_bytes())).unwrap();
        clients.push((c, msg));
    }
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(30), "500 echoes", &mut log, |d, _| {
        clients
            .iter()
            .all(|(c, m)| d.session(*c).unwrap().received.len() >= m.len())
    });
    for (c, m) in &clients {
        assert_eq!(d.session(*c).unwrap().received, m.as_bytes());
    }
    assert_eq!(accepted(&log).len(), N);
    let connected = log.iter().filter(|a| matches!(a, Activity::Connected(_))).count();
    assert_eq!(connected, N);
    let stats = d.stats();
    assert!(
        stats.enters * 4 < stats.submissions,
        "submissions were not batched into few io_uring_enter calls: {stats:?}"
    );

    // Clients finish; the servers see end of stream and close too.
    for (c, _) in &clients {
        d.session_for_output(*c).unwrap().done = true;
    }
    run_until(&mut d, Duration::from_secs(30), "1000 closes", &mut log, |_, log| {
        log.iter().filter(|a| matches!(a, Activity::Closed { .. })).count() >= 2 * N
    });
    for a in &log {
        if let Activity::Closed { error, .. } = a {
            assert!(error.is_none(), "unexpected error: {error:?}");
        }
    }
    let ids: Vec<_> = clients.iter().map(|(c, _)| *c).chain(accepted(&log)).collect();
    for id in ids {
        assert!(d.remove(id).is_some());
    }
    assert_eq!(d.connection_count(), 0);
    // Only the listener's multishot accept is left in flight.
    assert_eq!(d.operations_in_flight(), 1);
}

#[test]
fn exhausted_buffer_ring_loses_and_reorders_nothing() {
    const CLIENTS: usize = 24;
    const BYTES: usize = 256 * 1024;
    let mut d = driver_with(UringConfig {
        recv_buffers: 4,
        recv_buffer_size: 1024,
        // These tests are about the ring running dry: no copying at a low-water mark.
        recv_low_water: 0,
        send_buffers: 2,
        send_buffer_size: 4096,
        ..UringConfig::default()
    });
    let addr = echo_server(&mut d);
    let finished = Arc::new(AtomicUsize::new(0));
    let mut threads = Vec::new();
    for i in 0..CLIENTS {
        let finished = Arc::clone(&finished);
        threads.push(thread::spawn(move || {
            let data = pattern(100 + i as u64, BYTES);
            let mut s = TcpStream::connect(addr).unwrap();
            let mut w = s.try_clone().unwrap();
            let payload = data.clone();
            let writer = thread::spawn(move || {
                // Uneven writes, so segments and buffers never line up.
                for chunk in payload.chunks(1000 + i * 77) {
                    w.write_all(chunk).unwrap();
                }
                w.shutdown(Shutdown::Write).unwrap();
            });
            let mut back = Vec::with_capacity(BYTES);
            s.read_to_end(&mut back).unwrap();
            writer.join().unwrap();
            finished.fetch_add(1, Ordering::SeqCst);
            back == data
        }));
    }
    let mut log = Vec::new();
    run_until(
        &mut d,
        Duration::from_secs(60),
        "all clients echoed",
        &mut log,
        |_, _| finished.load(Ordering::SeqCst) == CLIENTS,
    );
    for t in threads {
        assert!(t.join().unwrap(), "a client got back different bytes than it sent");
    }
    let stats = d.stats();
    assert!(stats.recv_starved > 0, "the ring was never exhausted: {stats:?}");
    // Every server session closed after echoing everything; once they are removed
    // every buffer is back in the ring.
    run_until(&mut d, Duration::from_secs(5), "server closes", &mut log, |_, log| {
        log.iter().filter(|a| matches!(a, Activity::Closed { .. })).count() == CLIENTS
    });
    for c in accepted(&log) {
        assert_eq!(d.remove(c).unwrap().received.len(), BYTES);
    }
    d.turn(Some(Instant::now()), &mut Vec::new()).unwrap();
    assert_eq!(d.recv_buffers_available(), 4);
}

#[test]
fn timer_fires_without_io() {
    let mut d = driver();
    let l = TcpListener::bind(loopback()).unwrap();
    let _peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (stream, _) = l.accept().unwrap();
    let start = Instant::now();
    let c = d
        .adopt(
            stream,
            Peer {
                timer: Some(start + Duration::from_millis(50)),
                ..Peer::default()
            },
        )
        .unwrap();
    let mut out = Vec::new();
    d.turn(Some(start + Duration::from_secs(5)), &mut out).unwrap();
    let elapsed = start.elapsed();
    assert!(matches!(out.as_slice(), [Activity::Ready(x)] if *x == c), "{out:?}");
    assert!(elapsed >= Duration::from_millis(50), "fired early: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "fired late: {elapsed:?}");
    let s = d.session_for_output(c).unwrap();
    assert_eq!(s.timeouts, 1);
    assert_eq!(s.poll_event(), Some(Ev::Timeout));

    // Nothing armed any more: a turn returns at its deadline, with nothing.
    out.clear();
    let start = Instant::now();
    d.turn(Some(start + Duration::from_millis(30)), &mut out).unwrap();
    assert!(out.is_empty(), "{out:?}");
    assert!(start.elapsed() >= Duration::from_millis(30));

    // A deadline already past only polls.
    let start = Instant::now();
    d.turn(Some(start), &mut out).unwrap();
    assert!(out.is_empty(), "{out:?}");
    assert!(start.elapsed() < Duration::from_secs(1), "a past deadline blocked");
}

#[test]
fn timer_rearms_from_poll_timeout_after_session_for_output() {
    let mut d = driver();
    let l = TcpListener::bind(loopback()).unwrap();
    let _peer = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (stream, _) = l.accept().unwrap();
    let c = d.adopt(stream, Peer::default()).unwrap();
    d.turn(Some(Instant::now()), &mut Vec::new()).unwrap();
    let start = Instant::now();
    d.session_for_output(c).unwrap().timer = Some(start + Duration::from_millis(40));
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(5), "timeout", &mut log, |d, _| {
        d.session(c).unwrap().timeouts == 1
    });
    assert!(start.elapsed() >= Duration::from_millis(40));
}

#[test]
fn connect_refused_is_reported_as_closed_with_the_error() {
    let addr = {
        let l = TcpListener::bind(loopback()).unwrap();
        l.local_addr().unwrap()
    };
    let mut d = driver();
    let c = d.connect(addr, Peer::sending(b"never sent")).unwrap();
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(5), "refusal", &mut log, |_, log| {
        closed_error(log, c).is_some()
    });
    assert_eq!(closed_error(&log, c), Some(Some(std::io::ErrorKind::ConnectionRefused)));
    assert!(!log.iter().any(|a| matches!(a, Activity::Connected(_))));
    assert!(log.iter().any(|a| matches!(a, Activity::Ready(x) if *x == c)));
    assert!(d.session(c).unwrap().eof);
    assert!(d.remove(c).is_some());
    assert_eq!(d.operations_in_flight(), 0);
}

#[test]
fn wants_read_false_stops_reading_and_true_resumes() {
    const LIMIT: usize = 64 * 1024;
    const TOTAL: usize = 4 << 20;
    let mut d = driver();
    let l = d
        .listen(
            loopback(),
            Box::new(|_, _, _| Peer {
                read_limit: Some(LIMIT),
                ..Peer::default()
            }),
        )
        .unwrap();
    let addr = d.listener_addr(l).unwrap();
    let data = pattern(11, TOTAL);
    let payload = data.clone();
    let writer = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&payload).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        // Keep the socket open until the server has read everything.
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).unwrap();
    });
    let mut log = Vec::new();
    run_until(
        &mut d,
        Duration::from_secs(5),
        "the first 64 KiB",
        &mut log,
        |d, log| {
            accepted(log)
                .first()
                .is_some_and(|c| d.session(*c).unwrap().received.len() >= LIMIT)
        },
    );
    let conn = accepted(&log)[0];
    // Let the cancellation settle, then check that nothing more arrives.
    let settle = Instant::now() + Duration::from_millis(100);
    run_until(&mut d, Duration::from_secs(1), "settle", &mut log, |_, _| {
        Instant::now() >= settle
    });
    let paused_at = d.session(conn).unwrap().received.len();
    let wait = Instant::now() + Duration::from_millis(200);
    run_until(&mut d, Duration::from_secs(1), "pause", &mut log, |_, _| {
        Instant::now() >= wait
    });
    assert_eq!(
        d.session(conn).unwrap().received.len(),
        paused_at,
        "read while wants_read was false"
    );
    assert!(paused_at < TOTAL);

    d.session_for_output(conn).unwrap().read_limit = None;
    run_until(&mut d, Duration::from_secs(10), "the rest", &mut log, |d, _| {
        d.session(conn).unwrap().eof
    });
    let got = &d.session(conn).unwrap().received;
    assert!(*got == data, "bytes lost or reordered across the pause");
    d.session_for_output(conn).unwrap().done = true;
    run_until(&mut d, Duration::from_secs(5), "close", &mut log, |_, log| {
        closed_error(log, conn).is_some()
    });
    writer.join().unwrap();
}

#[test]
fn receive_buffers_return_only_after_their_views_drop() {
    const BUFFERS: u16 = 8;
    let mut d = driver_with(UringConfig {
        recv_buffers: BUFFERS,
        recv_buffer_size: 4096,
        ..UringConfig::default()
    });
    let l = d
        .listen(
            loopback(),
            Box::new(|_, _, _| Peer {
                hold: true,
                ..Peer::default()
            }),
        )
        .unwrap();
    let addr = d.listener_addr(l).unwrap();
    let mut peer = TcpStream::connect(addr).unwrap();
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(5), "accept", &mut log, |_, log| {
        !accepted(log).is_empty()
    });
    let conn = accepted(&log)[0];
    assert_eq!(d.recv_buffers_available(), BUFFERS as usize);
    let mut sent = Vec::new();
    for i in 0..3u8 {
        let chunk = vec![b'a' + i; 100];
        peer.write_all(&chunk).unwrap();
        sent.extend_from_slice(&chunk);
        let want = sent.len();
        run_until(&mut d, Duration::from_secs(5), "chunk", &mut log, |d, _| {
            d.session(conn).unwrap().received.len() >= want
        });
    }
    let held = d.session(conn).unwrap().held.len();
    assert!(held >= 1);
    assert_eq!(d.recv_buffers_available(), BUFFERS as usize - held);
    let snapshot: Vec<Vec<u8>> = d.session(conn).unwrap().held.iter().map(|b| b.to_vec()).collect();

    // More traffic while the views live must not reuse their buffers.
    d.session_for_output(conn).unwrap().hold = false;
    for i in 0..20u8 {
        peer.write_all(&[b'0' + i % 10; 700]).unwrap();
        let want = sent.len() + 700 * (i as usize + 1);
        run_until(&mut d, Duration::from_secs(5), "more", &mut log, |d, _| {
            d.session(conn).unwrap().received.len() >= want
        });
    }
    let now: Vec<Vec<u8>> = d.session(conn).unwrap().held.iter().map(|b| b.to_vec()).collect();
    assert_eq!(now, snapshot, "a buffer was reused while a view of it lived");
    assert_eq!(snapshot.concat(), sent);

    d.session_for_output(conn).unwrap().held.clear();
    d.turn(Some(Instant::now()), &mut Vec::new()).unwrap();
    assert_eq!(d.recv_buffers_available(), BUFFERS as usize);
}

#[test]
fn views_outlive_the_driver() {
    let mut d = driver();
    let l = d
        .listen(
            loopback(),
            Box::new(|_, _, _| Peer {
                hold: true,
                ..Peer::default()
            }),
        )
        .unwrap();
    let addr = d.listener_addr(l).unwrap();
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.write_all(b"still here after the driver").unwrap();
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(5), "data", &mut log, |d, log| {
        accepted(log)
            .first()
            .is_some_and(|c| d.session(*c).unwrap().received.len() >= 27)
    });
    let conn = accepted(&log)[0];
    let views = std::mem::take(&mut d.session_for_output(conn).unwrap().held);
    drop(d);
    assert_eq!(views.concat(), b"still here after the driver");
}

#[test]
fn removed_ids_stay_invalid_and_are_not_reused() {
    let mut d = driver();
    let l = TcpListener::bind(loopback()).unwrap();
    let mk = || {
        let _c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        l.accept().unwrap().0
    };
    let c1 = d.adopt(mk(), Peer::default()).unwrap();
    d.turn(Some(Instant::now()), &mut Vec::new()).unwrap();
    assert!(d.remove(c1).is_some());
    assert!(d.session(c1).is_none() && d.session_for_output(c1).is_none() && d.remove(c1).is_none());
    let mut ids = vec![c1];
    for _ in 0..5 {
        d.turn(Some(Instant::now()), &mut Vec::new()).unwrap();
        let c = d.adopt(mk(), Peer::default()).unwrap();
        assert!(!ids.contains(&c), "id {c:?} reused");
        assert!(d.session(c1).is_none());
        ids.push(c);
        d.turn(Some(Instant::now()), &mut Vec::new()).unwrap();
        assert!(d.remove(c).is_some());
    }
}

#[test]
fn removing_mid_transfer_then_dropping_the_driver_is_clean() {
    let mut d = driver();
    let addr = echo_server(&mut d);
    let mut client = Peer::default();
    // Far more than loopback can hold in flight: one send may hand the kernel as much as
    // the receiver's buffer grows to (tcp_rmem's maximum, 32 MiB here), and an 8 MiB
    // transfer was once all taken before 64 KiB had come back.
    client.out.put_shared(Bytes::from(pattern(5, 128 << 20)));
    let c = d.connect(addr, client).unwrap();
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(5), "some echo", &mut log, |d, _| {
        d.session(c).unwrap().received.len() > 64 * 1024
    });
    let s = d.remove(c).unwrap();
    assert!(!s.out.is_empty(), "the transfer finished too early to test removal");
    // The server side sees the connection end.
    run_until(&mut d, Duration::from_secs(10), "server close", &mut log, |_, log| {
        accepted(log).first().is_some_and(|c| closed_error(log, *c).is_some())
    });
    assert_eq!(d.connection_count(), 1);
    drop(d);
}

#[test]
fn closed_listener_refuses_new_connections() {
    let mut d = driver();
    let l = d.listen(loopback(), Box::new(|_, _, _| Peer::echo())).unwrap();
    let addr = d.listener_addr(l).unwrap();
    d.close_listener(l).unwrap();
    assert!(d.listener_addr(l).is_err());
    assert!(d.close_listener(l).is_err());
    // Let the accept's cancellation complete, which closes the socket.
    let end = Instant::now() + Duration::from_millis(50);
    while Instant::now() < end {
        d.turn(Some(end), &mut Vec::new()).unwrap();
    }
    let c = d.connect(addr, Peer::sending(b"x")).unwrap();
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(5), "refusal", &mut log, |_, log| {
        closed_error(log, c).is_some()
    });
    assert_eq!(closed_error(&log, c), Some(Some(std::io::ErrorKind::ConnectionRefused)));
    assert!(accepted(&log).is_empty());
}

#[test]
fn driver_reports_setup_errors_as_io_errors_naming_mio() {
    let err = UringDriver::<Peer>::with_config(UringConfig {
        recv_buffers: 3,
        ..UringConfig::default()
    })
    .err()
    .expect("a ring of 3 buffers is invalid");
    let io: std::io::Error = err.into();
    assert_eq!(io.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn pausing_inside_handle_input_stops_input_at_once() {
    const TOTAL: usize = 2 << 20;
    let mut d = driver();
    let l = TcpListener::bind(loopback()).unwrap();
    let mut theirs = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let ours = l.accept().unwrap().0;
    let c = d
        .adopt(
            ours,
            Peer {
                read_limit: Some(1),
                ..Peer::default()
            },
        )
        .unwrap();
    let data = pattern(21, TOTAL);
    let payload = data.clone();
    let writer = thread::spawn(move || {
        theirs.write_all(&payload).unwrap();
        theirs
    });
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(5), "first input", &mut log, |d, _| {
        !d.session(c).unwrap().received.is_empty()
    });
    let settle = Instant::now() + Duration::from_millis(200);
    run_until(&mut d, Duration::from_secs(2), "settle", &mut log, |_, _| {
        Instant::now() >= settle
    });
    let inputs = log
        .iter()
        .filter(|a| matches!(a, Activity::Ready(x) if *x == c))
        .count();
    assert_eq!(inputs, 1, "input fed after the session paused itself");
    d.session_for_output(c).unwrap().read_limit = None;
    run_until(&mut d, Duration::from_secs(10), "the rest", &mut log, |d, _| {
        d.session(c).unwrap().received.len() >= TOTAL
    });
    assert!(
        d.session(c).unwrap().received == data,
        "bytes lost or reordered across the pause"
    );
    drop(writer.join().unwrap());
}

#[test]
fn a_timer_moved_through_session_for_output_fires_at_its_new_instant() {
    let mut d = driver();
    let l = TcpListener::bind(loopback()).unwrap();
    let _theirs = TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let c = d
        .adopt(
            l.accept().unwrap().0,
            Peer {
                timer: Some(Instant::now() + Duration::from_millis(20)),
                ..Peer::default()
            },
        )
        .unwrap();
    d.turn(Some(Instant::now()), &mut Vec::new()).unwrap(); // armed for +20 ms
                                                            // (A loaded machine may legitimately have fired it already; count from here.)
    let before = d.session(c).unwrap().timeouts;
    let moved = Instant::now() + Duration::from_millis(300);
    d.session_for_output(c).unwrap().timer = Some(moved);
    thread::sleep(Duration::from_millis(50)); // the armed instant passes
    let mut out = Vec::new();
    d.turn(Some(Instant::now() + Duration::from_millis(50)), &mut out)
        .unwrap();
    assert_eq!(d.session(c).unwrap().timeouts, before, "fired the stale instant");
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(5), "moved timer", &mut log, |d, _| {
        d.session(c).unwrap().timeouts == before + 1
    });
    assert!(Instant::now() >= moved);

    // Cancelled after arming: never fires.
    d.session_for_output(c).unwrap().timer = Some(Instant::now() + Duration::from_millis(20));
    d.turn(Some(Instant::now()), &mut Vec::new()).unwrap();
    let before = d.session(c).unwrap().timeouts;
    d.session_for_output(c).unwrap().timer = None;
    thread::sleep(Duration::from_millis(40));
    let end = Instant::now() + Duration::from_millis(50);
    while Instant::now() < end {
        d.turn(Some(end), &mut Vec::new()).unwrap();
    }
    assert_eq!(d.session(c).unwrap().timeouts, before, "fired a cancelled timer");
}

#[test]
fn views_dropped_on_another_thread_revive_a_starved_ring() {
    const TOTAL: usize = 16 * 1024;
    let mut d = driver_with(UringConfig {
        recv_buffers: 4,
        recv_buffer_size: 1024,
        // These tests are about the ring running dry: no copying at a low-water mark.
        recv_low_water: 0,
        ..UringConfig::default()
    });
    let l = d
        .listen(
            loopback(),
            Box::new(|_, _, _| Peer {
                hold: true,
                ..Peer::default()
            }),
        )
        .unwrap();
    let addr = d.listener_addr(l).unwrap();
    let mut peer = TcpStream::connect(addr).unwrap();
    let data = pattern(31, TOTAL);
    peer.write_all(&data).unwrap();
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(5), "a starved ring", &mut log, |d, log| {
        d.stats().recv_starved > 0
            && accepted(log)
                .first()
                .is_some_and(|c| d.session(*c).unwrap().received.len() == 4 * 1024)
    });
    let conn = accepted(&log)[0];
    let views = {
        let s = d.session_for_output(conn).unwrap();
        s.hold = false;
        std::mem::take(&mut s.held)
    };
    d.turn(Some(Instant::now()), &mut Vec::new()).unwrap();
    let dropper = thread::spawn(move || {
        thread::sleep(Duration::from_millis(50));
        drop(views);
    });
    // Long deadlines: only the driver noticing the returned buffers by itself can make
    // the turns return early.
    let start = Instant::now();
    while d.session(conn).unwrap().received.len() < TOTAL && start.elapsed() < Duration::from_secs(3) {
        d.turn(Some(start + Duration::from_secs(3)), &mut Vec::new()).unwrap();
    }
    dropper.join().unwrap();
    assert!(d.session(conn).unwrap().received == data);
    assert!(start.elapsed() < Duration::from_secs(1), "took {:?}", start.elapsed());
}

#[test]
fn echo_over_ipv6_loopback() {
    let mut d = driver();
    let l = d
        .listen("[::1]:0".parse().unwrap(), Box::new(|_, _, _| Peer::echo()))
        .unwrap();
    let addr = d.listener_addr(l).unwrap();
    assert!(addr.is_ipv6());
    let c = d.connect(addr, Peer::sending(b"over v6")).unwrap();
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(5), "v6 echo", &mut log, |d, _| {
        d.session(c).unwrap().received.len() >= 7
    });
    assert_eq!(d.session(c).unwrap().received, b"over v6");
    let peer = log.iter().find_map(|a| match a {
        Activity::Accepted { peer, .. } => Some(*peer),
        _ => None,
    });
    assert!(peer.is_some_and(|p| p.is_ipv6() && p.ip().is_loopback()), "{peer:?}");
}

/// A session that keeps every received view (a program caching every value) empties a
/// ring without a low-water mark; with the default mark, receives below it are copied
/// and their buffers go straight back, so receiving never stops, the bytes are intact,
/// and the ring keeps at least the mark's worth of buffers.
#[test]
fn holding_every_received_view_never_stops_receiving() {
    const BUFFERS: u16 = 16;
    const CHUNKS: usize = 1000;
    let mut d = driver_with(UringConfig {
        recv_buffers: BUFFERS,
        recv_buffer_size: 1024,
        ..UringConfig::default()
    });
    let low_water = d.config().effective_low_water() as usize;
    assert!(low_water > 0);
    let l = d
        .listen(
            loopback(),
            Box::new(|_, _, _| Peer {
                hold: true,
                ..Peer::default()
            }),
        )
        .unwrap();
    let addr = d.listener_addr(l).unwrap();
    let mut peer = TcpStream::connect(addr).unwrap();
    let mut log = Vec::new();
    run_until(&mut d, Duration::from_secs(5), "accept", &mut log, |_, log| {
        !accepted(log).is_empty()
    });
    let conn = accepted(&log)[0];
    let mut sent = Vec::new();
    for i in 0..CHUNKS {
        // One write per round, received before the next: one receive buffer each.
        let chunk = format!("value-{i:05};");
        peer.write_all(chunk.as_bytes()).unwrap();
        sent.extend_from_slice(chunk.as_bytes());
        let want = sent.len();
        run_until(&mut d, Duration::from_secs(5), "chunk", &mut log, |d, _| {
            d.session(conn).unwrap().received.len() >= want
        });
    }
    let session = d.session(conn).unwrap();
    assert!(session.received == sent);
    assert!(session.held.len() >= CHUNKS / 2, "{} views", session.held.len());
    assert_eq!(session.held.concat(), sent, "a kept view changed");
    let stats = d.stats();
    assert!(stats.recv_copied > 0, "{stats:?}");
    assert!(d.recv_buffers_available() >= low_water, "{stats:?}");
}

/// Forced fallbacks show in the feature report with their reason, and the driver still
/// echoes.
#[test]
fn feature_report_names_forced_fallbacks() {
    let d = driver_with(UringConfig {
        plain_ring: true,
        send_buffers: 0,
        single_shot_recv: true,
        single_shot_accept: true,
        ..UringConfig::default()
    });
    let report = d.feature_report();
    let find = |name: &str| report.iter().find(|l| l.name == name).cloned().unwrap();
    for name in ["SINGLE_ISSUER", "DEFER_TASKRUN", "COOP_TASKRUN", "SUBMIT_ALL"] {
        let line = find(name);
        assert!(!line.active && line.detail.contains("plain_ring"), "{line:?}");
    }
    let sends = find("registered send buffers");
    assert!(!sends.active && sends.detail.contains("send_buffers is 0"), "{sends:?}");
    assert!(!find("WRITE_FIXED").active);
    assert!(find("provided-buffer ring").active);
    for name in ["multishot receive", "multishot accept"] {
        let line = find(name);
        assert!(!line.active && line.detail.contains("single-shot"), "{line:?}");
    }
    echo_round_trip_on(d);

    let full = driver();
    assert!(full.feature_report().iter().any(|l| l.name == "SINGLE_ISSUER"));
    assert_eq!(full.feature_report().len(), report.len());
}
