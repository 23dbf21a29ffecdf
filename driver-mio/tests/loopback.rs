//! The mio driver against real loopback sockets: echo, large transfers with partial
//! writes, peers closing and resetting, many connections, timers, refused connects and
//! `wants_read` backpressure.

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_mio::{MioConfig, MioDriver};
use monocoque_proto::{Activity, ConnId, Driver, IoArena, ListenerId, Session};

/// What a [`TestSession`] saw, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Input(usize),
    Eof,
    Timeout,
}

/// A small session with switches for every behaviour the tests need.
#[derive(Debug, Default)]
struct TestSession {
    arena: IoArena,
    /// Send every received buffer back (shared, not copied).
    echo: bool,
    /// Keep a copy of everything received.
    record: bool,
    received: Vec<u8>,
    received_len: usize,
    /// Check received bytes against [`pattern`] instead of recording them.
    verify_pattern: bool,
    pattern_mismatch: bool,
    eof: bool,
    closed: bool,
    close_on_eof: bool,
    paused: bool,
    /// Pause once this many bytes have arrived.
    pause_after: Option<usize>,
    /// Stop reading while this many bytes wait to be sent (0: never).
    high_water: usize,
    timer: Option<Instant>,
    timeouts: usize,
    events: Vec<Seen>,
}

impl TestSession {
    fn echo() -> Self {
        Self {
            echo: true,
            ..Self::default()
        }
    }

    fn recorder(output: &[u8]) -> Self {
        let mut s = Self {
            record: true,
            ..Self::default()
        };
        s.arena.put_slice(output);
        s
    }
}

impl Session for TestSession {
    type Event = Seen;

    fn handle_input(&mut self, data: Bytes, _now: Instant) {
        assert!(!data.is_empty(), "the driver never feeds empty input");
        if self.verify_pattern && !matches_pattern(self.received_len, &data) {
            self.pattern_mismatch = true;
        }
        self.received_len += data.len();
        self.events.push(Seen::Input(data.len()));
        if self.record {
            self.received.extend_from_slice(&data);
        }
        if self.echo {
            self.arena.put_shared(data);
        }
        if self.pause_after.is_some_and(|n| self.received_len >= n) {
            self.paused = true;
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        assert!(!self.eof, "handle_eof is called once");
        self.eof = true;
        self.events.push(Seen::Eof);
        if self.close_on_eof {
            self.closed = true;
        }
    }

    fn handle_timeout(&mut self, now: Instant) {
        let due = self
            .timer
            .take()
            .expect("handle_timeout only after poll_timeout asked for it");
        assert!(now >= due, "timer fired early");
        self.timeouts += 1;
        self.events.push(Seen::Timeout);
    }

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        Some(&mut self.arena)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.timer
    }

    fn poll_event(&mut self) -> Option<Seen> {
        if self.events.is_empty() {
            None
        } else {
            Some(self.events.remove(0))
        }
    }

    fn wants_read(&self) -> bool {
        !self.paused && (self.high_water == 0 || self.arena.len() < self.high_water)
    }

    fn is_closed(&self) -> bool {
        self.closed
    }
}

/// The test stream: byte `i` is `i % 251` (a prime, so no power-of-two chunking lines
/// up with it). Built and checked a cycle at a time, so debug builds stay fast.
const CYCLE: usize = 251;

fn cycle() -> [u8; CYCLE] {
    std::array::from_fn(|i| i as u8)
}

fn pattern(len: usize) -> Vec<u8> {
    let cycle = cycle();
    let mut v = Vec::with_capacity(len + CYCLE);
    while v.len() < len {
        v.extend_from_slice(&cycle);
    }
    v.truncate(len);
    v
}

fn matches_pattern(start: usize, data: &[u8]) -> bool {
    let cycle = cycle();
    let mut i = 0;
    while i < data.len() {
        let pos = (start + i) % CYCLE;
        let len = (CYCLE - pos).min(data.len() - i);
        if data[i..i + len] != cycle[pos..pos + len] {
            return false;
        }
        i += len;
    }
    true
}

fn loopback() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn echo_listener(driver: &mut MioDriver<TestSession>) -> (ListenerId, SocketAddr) {
    let l = driver
        .listen(loopback(), Box::new(|_, _, _| TestSession::echo()))
        .unwrap();
    (l, driver.listener_addr(l).unwrap())
}

/// Runs turns until `done` holds (checked after every turn), failing after `limit`.
/// Every turn is checked for the contract's "Ready at most once per connection".
fn drive(
    driver: &mut MioDriver<TestSession>,
    limit: Duration,
    mut done: impl FnMut(&mut MioDriver<TestSession>, &[Activity]) -> bool,
) -> Vec<Activity> {
    let end = Instant::now() + limit;
    let mut all = Vec::new();
    let mut out = Vec::new();
    loop {
        if done(driver, &all) {
            return all;
        }
        let now = Instant::now();
        assert!(
            now < end,
            "condition not reached within {limit:?}; activity so far: {all:?}"
        );
        driver
            .turn(Some((now + Duration::from_millis(20)).min(end)), &mut out)
            .unwrap();
        let mut ready = HashMap::new();
        for a in &out {
            if let Activity::Ready(c) = a {
                *ready.entry(*c).or_insert(0) += 1;
            }
        }
        assert!(ready.values().all(|&n| n == 1), "Ready twice in one turn: {out:?}");
        all.append(&mut out);
    }
}

/// Runs turns for `span`, whatever happens.
fn idle(driver: &mut MioDriver<TestSession>, span: Duration) -> Vec<Activity> {
    let end = Instant::now() + span;
    drive(driver, span + Duration::from_secs(1), |_, _| Instant::now() >= end)
}

fn accepted(all: &[Activity]) -> Vec<ConnId> {
    all.iter()
        .filter_map(|a| match a {
            Activity::Accepted { conn, .. } => Some(*conn),
            _ => None,
        })
        .collect()
}

fn closed(all: &[Activity], conn: ConnId) -> Option<Option<&io::Error>> {
    all.iter().find_map(|a| match a {
        Activity::Closed { conn: c, error } if *c == conn => Some(error.as_ref()),
        _ => None,
    })
}

fn session(driver: &MioDriver<TestSession>, conn: ConnId) -> &TestSession {
    driver.session(conn).expect("session still in the driver")
}

#[test]
fn echo_round_trip_over_connect_and_listen() {
    let mut d = MioDriver::new().unwrap();
    let (listener, addr) = echo_listener(&mut d);
    let c = d.connect(addr, TestSession::recorder(b"hello, monocoque")).unwrap();
    let all = drive(&mut d, Duration::from_secs(2), |d, _| {
        session(d, c).received == b"hello, monocoque"
    });
    assert!(all.iter().any(|a| matches!(a, Activity::Connected(x) if *x == c)));
    let servers: Vec<_> = all
        .iter()
        .filter_map(|a| match a {
            Activity::Accepted {
                listener: l,
                conn,
                peer,
            } => Some((*l, *conn, *peer)),
            _ => None,
        })
        .collect();
    assert_eq!(servers.len(), 1);
    let (l, s, peer) = servers[0];
    assert_eq!(l, listener);
    assert!(peer.ip().is_loopback());
    assert_ne!(s, c);
    assert!(all.iter().any(|a| matches!(a, Activity::Ready(x) if *x == c)));

    // Work given through session_for_output goes out in the next turn.
    d.session_for_output(c).unwrap().arena.put_slice(b" and again");
    drive(&mut d, Duration::from_secs(2), |d, _| {
        session(d, c).received == b"hello, monocoque and again"
    });
    assert_eq!(session(&d, s).received_len, 26);
    assert!(session(&d, c).arena.is_empty());
    assert_eq!(d.connection_count(), 2);
    // The events are the body's to drain; the driver left them in place.
    assert_eq!(d.session_for_output(s).unwrap().poll_event(), Some(Seen::Input(16)));
}

#[test]
fn adopt_reads_bytes_that_arrived_before_the_handover() {
    let std_listener = TcpListener::bind(loopback()).unwrap();
    let client = TcpStream::connect(std_listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = std_listener.accept().unwrap();
    server.write_all(b"greeting").unwrap();
    // Let the bytes land in the client's receive queue before the driver sees it.
    thread::sleep(Duration::from_millis(20));

    let mut d = MioDriver::new().unwrap();
    let c = d.adopt(client, TestSession::recorder(b"hi")).unwrap();
    drive(&mut d, Duration::from_secs(2), |d, _| {
        session(d, c).received == b"greeting"
    });
    let mut buf = [0u8; 2];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");
}

#[test]
fn large_transfer_survives_partial_writes_and_backpressure() {
    const TOTAL: usize = 32 << 20;
    // The checker itself must notice a shifted stream.
    assert!(matches_pattern(1000, &pattern(2000)[1000..]));
    assert!(!matches_pattern(1001, &pattern(2000)[1000..]));
    let mut d = MioDriver::new().unwrap();
    let addr = {
        let l = d
            .listen(
                loopback(),
                Box::new(|_, _, _| TestSession {
                    echo: true,
                    // Stop reading while 2 MiB wait to be echoed: backpressure.
                    high_water: 2 << 20,
                    ..TestSession::default()
                }),
            )
            .unwrap();
        d.listener_addr(l).unwrap()
    };
    let mut client = TestSession {
        verify_pattern: true,
        ..TestSession::default()
    };
    // One 32 MiB segment: no socket takes that in one write.
    client.arena.put_shared(Bytes::from(pattern(TOTAL)));
    let c = d.connect(addr, client).unwrap();

    let mut saw_partial = false;
    let mut server = None;
    drive(&mut d, Duration::from_secs(10), |d, all| {
        let pending = session(d, c).arena.len();
        saw_partial |= pending > 0 && pending < TOTAL;
        if server.is_none() {
            server = accepted(all).first().copied();
        }
        if let Some(s) = server {
            // The echo side never holds much more than its high-water mark.
            assert!(session(d, s).arena.len() <= (2 << 20) + (64 << 10) * 16);
        }
        session(d, c).received_len == TOTAL
    });
    let client = session(&d, c);
    assert!(!client.pattern_mismatch, "bytes arrived corrupted or out of order");
    assert!(saw_partial, "the kernel took 32 MiB in one write?");
    assert!(client.arena.is_empty());
    let stats = d.pool_stats();
    // 64 MiB went through 64 KiB chunks; views are dropped as soon as they are
    // echoed or checked, so chunks come back instead of being allocated anew.
    assert!(stats.chunks_reused > 0, "{stats:?}");
    assert!(stats.chunks_allocated < 256, "{stats:?}");
}

#[test]
fn peer_half_closing_mid_frame_gets_its_echo_then_eof() {
    let mut d = MioDriver::new().unwrap();
    let l = d
        .listen(
            loopback(),
            Box::new(|_, _, _| TestSession {
                echo: true,
                close_on_eof: true,
                ..TestSession::default()
            }),
        )
        .unwrap();
    let addr = d.listener_addr(l).unwrap();
    let peer = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(b"*2\r\n$3\r\nGET\r\n$5\r\nhal").unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let mut back = Vec::new();
        s.read_to_end(&mut back).unwrap();
        back
    });
    let all = drive(&mut d, Duration::from_secs(2), |_, all| {
        accepted(all).first().is_some_and(|&s| closed(all, s).is_some())
    });
    let s = accepted(&all)[0];
    assert!(
        closed(&all, s).unwrap().is_none(),
        "a clean end of stream carries no error"
    );
    assert!(all.iter().any(|a| matches!(a, Activity::Ready(x) if *x == s)));
    let server = session(&d, s);
    assert!(server.eof);
    assert_eq!(server.events.last(), Some(&Seen::Eof));
    assert_eq!(peer.join().unwrap(), b"*2\r\n$3\r\nGET\r\n$5\r\nhal");
    // Closed sessions stay until removed, then their id finds nothing.
    assert!(d.remove(s).is_some());
    assert!(d.session(s).is_none());
}

#[test]
fn peer_reset_while_output_is_pending_ends_with_an_error() {
    let mut d = MioDriver::new().unwrap();
    let (_, addr) = echo_listener(&mut d);
    let client = TcpStream::connect(addr).unwrap();
    let all = drive(&mut d, Duration::from_secs(2), |_, all| !accepted(all).is_empty());
    let s = accepted(&all)[0];
    const BIG: usize = 16 << 20;
    d.session_for_output(s)
        .unwrap()
        .arena
        .put_shared(Bytes::from(vec![7u8; BIG]));
    // The peer reads nothing, so the kernel's buffers fill and writes stall.
    drive(&mut d, Duration::from_secs(2), |d, _| session(d, s).arena.len() < BIG);
    idle(&mut d, Duration::from_millis(30));
    assert!(!session(&d, s).arena.is_empty());
    socket2::SockRef::from(&client)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(client); // RST
    let all = drive(&mut d, Duration::from_secs(2), |_, all| closed(all, s).is_some());
    let err = closed(&all, s).unwrap().expect("a reset is an error");
    assert!(
        matches!(err.kind(), io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe),
        "{err:?}"
    );
    assert!(session(&d, s).eof, "the session heard that the stream ended");
    assert!(all.iter().any(|a| matches!(a, Activity::Ready(x) if *x == s)));
}

#[test]
fn session_that_closes_itself_flushes_first() {
    let mut d = MioDriver::new().unwrap();
    let l = d
        .listen(
            loopback(),
            Box::new(|_, _, _| {
                let mut s = TestSession::default();
                s.arena.put_slice(b"-ERR max clients reached\r\n");
                s.closed = true;
                s
            }),
        )
        .unwrap();
    let addr = d.listener_addr(l).unwrap();
    let mut client = TcpStream::connect(addr).unwrap();
    let all = drive(&mut d, Duration::from_secs(2), |_, all| {
        accepted(all).first().is_some_and(|&s| closed(all, s).is_some())
    });
    let s = accepted(&all)[0];
    assert!(closed(&all, s).unwrap().is_none());
    assert!(
        !session(&d, s).eof,
        "a finished session is not told about end of stream"
    );
    let mut got = Vec::new();
    client.read_to_end(&mut got).unwrap();
    assert_eq!(got, b"-ERR max clients reached\r\n");
}

#[test]
fn five_hundred_concurrent_connections() {
    const N: usize = 500;
    const LEN: usize = 1000;
    let mut d = MioDriver::new().unwrap();
    let (_, addr) = echo_listener(&mut d);
    let message = |i: usize| -> Vec<u8> { (0..LEN).map(|j| ((i * 7 + j) % 256) as u8).collect() };
    let clients: Vec<ConnId> = (0..N)
        .map(|i| d.connect(addr, TestSession::recorder(&message(i))).unwrap())
        .collect();
    let all = drive(&mut d, Duration::from_secs(5), |d, _| {
        clients.iter().all(|&c| session(d, c).received_len == LEN)
    });
    for (i, &c) in clients.iter().enumerate() {
        assert_eq!(session(&d, c).received, message(i), "connection {i}");
    }
    let connected = all.iter().filter(|a| matches!(a, Activity::Connected(_))).count();
    assert_eq!(connected, N);
    let servers = accepted(&all);
    assert_eq!(servers.len(), N);
    assert_eq!(d.connection_count(), 2 * N);
    for c in clients.iter().chain(&servers) {
        assert!(d.remove(*c).is_some());
    }
    assert_eq!(d.connection_count(), 0);
}

#[test]
fn a_timer_fires_with_no_io() {
    let mut d = MioDriver::new().unwrap();
    let (_, addr) = echo_listener(&mut d);
    let start = Instant::now();
    let c = d
        .connect(
            addr,
            TestSession {
                timer: Some(start + Duration::from_millis(60)),
                ..TestSession::default()
            },
        )
        .unwrap();
    let all = drive(&mut d, Duration::from_secs(2), |d, _| session(d, c).timeouts == 1);
    assert!(start.elapsed() >= Duration::from_millis(60));
    assert!(all.iter().any(|a| matches!(a, Activity::Ready(x) if *x == c)));
    assert_eq!(session(&d, c).events, vec![Seen::Timeout]);

    // A timer armed through session_for_output, with turn waiting on no deadline at all: the
    // timer alone must end the wait.
    let again = Instant::now();
    d.session_for_output(c).unwrap().timer = Some(again + Duration::from_millis(30));
    let mut out = Vec::new();
    d.turn(None, &mut out).unwrap();
    assert!(again.elapsed() >= Duration::from_millis(30));
    assert!(
        out.iter().any(|a| matches!(a, Activity::Ready(x) if *x == c)),
        "{out:?}"
    );
    assert_eq!(session(&d, c).timeouts, 2);

    // A timer moved later does not fire at its old instant.
    let moved = Instant::now();
    d.session_for_output(c).unwrap().timer = Some(moved + Duration::from_millis(10));
    d.turn(Some(moved + Duration::from_millis(1)), &mut out).unwrap();
    d.session_for_output(c).unwrap().timer = Some(moved + Duration::from_millis(80));
    // The old instant passes before the driver gets to look at the session again.
    thread::sleep(Duration::from_millis(20));
    idle(&mut d, Duration::from_millis(20));
    assert_eq!(
        session(&d, c).timeouts,
        2,
        "fired the instant the session moved away from"
    );
    drive(&mut d, Duration::from_secs(2), |d, _| session(d, c).timeouts == 3);
    assert!(moved.elapsed() >= Duration::from_millis(80));

    // A cancelled timer never fires.
    let cancel = Instant::now();
    d.session_for_output(c).unwrap().timer = Some(cancel + Duration::from_millis(10));
    d.turn(Some(cancel), &mut out).unwrap();
    d.session_for_output(c).unwrap().timer = None;
    thread::sleep(Duration::from_millis(20));
    idle(&mut d, Duration::from_millis(20));
    assert_eq!(session(&d, c).timeouts, 3, "fired a cancelled timer");
}

#[test]
fn turn_honours_its_deadline() {
    let mut d: MioDriver<TestSession> = MioDriver::new().unwrap();
    let mut out = Vec::new();
    let start = Instant::now();
    d.turn(Some(start + Duration::from_millis(50)), &mut out).unwrap();
    assert!(out.is_empty());
    assert!(start.elapsed() >= Duration::from_millis(50));
    // A deadline already past only reaps what is ready.
    let start = Instant::now();
    d.turn(Some(start - Duration::from_secs(1)), &mut out).unwrap();
    assert!(out.is_empty());
    assert!(start.elapsed() < Duration::from_millis(50));
}

#[test]
fn connect_refused_arrives_as_closed_with_an_error() {
    let port = {
        let l = TcpListener::bind(loopback()).unwrap();
        l.local_addr().unwrap()
    };
    let mut d = MioDriver::new().unwrap();
    let c = d.connect(port, TestSession::recorder(b"never sent")).unwrap();
    let all = drive(&mut d, Duration::from_secs(2), |_, all| closed(all, c).is_some());
    let err = closed(&all, c).unwrap().expect("refused is an error");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err:?}");
    assert!(!all.iter().any(|a| matches!(a, Activity::Connected(_))));
    assert!(all.iter().any(|a| matches!(a, Activity::Ready(x) if *x == c)));
    assert!(session(&d, c).eof);
}

#[test]
fn close_listener_stops_accepting() {
    let mut d = MioDriver::new().unwrap();
    let (l, addr) = echo_listener(&mut d);
    d.close_listener(l).unwrap();
    assert_eq!(d.listener_addr(l).unwrap_err().kind(), io::ErrorKind::NotFound);
    assert_eq!(d.close_listener(l).unwrap_err().kind(), io::ErrorKind::NotFound);
    let c = d.connect(addr, TestSession::default()).unwrap();
    let all = drive(&mut d, Duration::from_secs(2), |_, all| closed(all, c).is_some());
    assert!(closed(&all, c).unwrap().is_some());
    assert!(accepted(&all).is_empty());
}

#[test]
fn wants_read_pauses_and_resumes_without_a_new_edge() {
    let mut d = MioDriver::new().unwrap();
    let l = d
        .listen(
            loopback(),
            Box::new(|_, _, _| TestSession {
                pause_after: Some(1000),
                ..TestSession::default()
            }),
        )
        .unwrap();
    let addr = d.listener_addr(l).unwrap();
    let (go, wait) = mpsc::channel::<()>();
    let peer = thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(&[1u8; 1000]).unwrap();
        wait.recv().unwrap();
        s.write_all(&[2u8; 3000]).unwrap();
        // Keep the connection open (no EOF edge either) until the test is done.
        let _ = wait.recv();
    });
    let all = drive(&mut d, Duration::from_secs(2), |d, all| {
        accepted(all)
            .first()
            .is_some_and(|&s| session(d, s).received_len >= 1000)
    });
    let s = accepted(&all)[0];
    assert!(session(&d, s).paused);
    go.send(()).unwrap();
    // The second write arrives (its readable edge too) while the session is paused.
    let quiet = idle(&mut d, Duration::from_millis(150));
    assert_eq!(session(&d, s).received_len, 1000);
    assert!(
        !quiet.iter().any(|a| matches!(a, Activity::Ready(x) if *x == s)),
        "{quiet:?}"
    );

    // Resume: the driver must remember the socket still holds bytes.
    d.session_for_output(s).unwrap().paused = false;
    d.session_for_output(s).unwrap().pause_after = None;
    drive(&mut d, Duration::from_secs(2), |d, _| {
        session(d, s).received_len == 4000
    });
    drop(go);
    peer.join().unwrap();
}

#[test]
fn ids_are_not_reused_and_stale_ids_find_nothing() {
    let mut d = MioDriver::new().unwrap();
    let (_, addr) = echo_listener(&mut d);
    let first = d.connect(addr, TestSession::default()).unwrap();
    assert!(d.remove(first).is_some());
    let second = d.connect(addr, TestSession::recorder(b"x")).unwrap();
    assert_ne!(first, second);
    assert!(d.session(first).is_none());
    assert!(d.session_for_output(first).is_none());
    assert!(d.remove(first).is_none());
    drive(&mut d, Duration::from_secs(2), |d, _| {
        session(d, second).received == b"x"
    });
}

#[test]
fn invalid_configuration_is_rejected() {
    let bad = MioConfig {
        min_read_space: 1 << 20,
        ..MioConfig::default()
    };
    let err = MioDriver::<TestSession>::with_config(bad).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    let zero = MioConfig {
        max_events: 0,
        ..MioConfig::default()
    };
    assert!(MioDriver::<TestSession>::with_config(zero).is_err());
}

#[test]
fn tiny_budgets_many_iovecs_and_small_chunks_still_deliver_everything_in_order() {
    // A read budget of one byte requeues the connection after every read, 4 KiB chunks
    // rotate constantly, and 300 shared segments exceed what one sendmsg takes.
    let config = MioConfig {
        recv_buffer_size: 4096,
        min_read_space: 1024,
        pool_size: 4,
        read_budget: 1,
        max_events: 8,
        ..MioConfig::default()
    };
    let mut d = MioDriver::with_config(config).unwrap();
    let (_, addr) = echo_listener(&mut d);
    const SEGMENT: usize = 5000;
    const SEGMENTS: usize = 300;
    let data = pattern(SEGMENT * SEGMENTS);
    let mut client = TestSession {
        verify_pattern: true,
        ..TestSession::default()
    };
    for piece in data.chunks(SEGMENT) {
        client.arena.put_shared(Bytes::copy_from_slice(piece));
    }
    assert_eq!(client.arena.chunk_count(), SEGMENTS);
    let c = d.connect(addr, client).unwrap();
    drive(&mut d, Duration::from_secs(5), |d, _| {
        session(d, c).received_len == data.len()
    });
    assert!(!session(&d, c).pattern_mismatch);
    assert!(d.pool_stats().chunks_reused > 0, "{:?}", d.pool_stats());
}
