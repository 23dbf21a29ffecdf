//! The driver contract for Unix stream sockets (`connect_unix`, `listen_unix`), run
//! against both drivers:
//!
//! - a listener on a path echoes 1 MiB for a `std` Unix client, reports the peer as
//!   `UNIX_PEER`, names its path, has no IP address, and removes its file on close;
//! - a connect to a `std` Unix listener is `Connected`, moves bytes both ways, and sees
//!   the peer's close as `Closed`;
//! - a connect to a path with no socket (or a stale one) is `Closed` with the error;
//! - binding over a stale socket file replaces it (as libzmq does), over a live socket
//!   or a regular file fails and leaves the file; dropping the driver removes its file.

mod support;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::{AnyDriver, DriverKind};
use monocoque::proto::chassis::UNIX_PEER;
use monocoque::proto::{Activity, ConnId, Driver, IoArena, Session};

const PATIENCE: Duration = Duration::from_secs(20);

/// A session that keeps what it receives and, in echo mode, sends it back.
#[derive(Debug)]
struct Echo {
    echo: bool,
    arena: IoArena,
    received: Vec<u8>,
    eof: bool,
    events: VecDeque<()>,
}

impl Echo {
    fn new(echo: bool) -> Self {
        Echo {
            echo,
            arena: IoArena::new(),
            received: Vec::new(),
            eof: false,
            events: VecDeque::new(),
        }
    }
}

impl Session for Echo {
    type Event = ();

    fn handle_input(&mut self, data: Bytes, _: Instant) {
        if self.echo {
            self.arena.put_bytes(&data);
        }
        self.received.extend_from_slice(&data);
        self.events.push_back(());
    }

    fn handle_eof(&mut self, _: Instant) {
        self.eof = true;
        self.events.push_back(());
    }

    fn handle_timeout(&mut self, _: Instant) {}

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        Some(&mut self.arena)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_event(&mut self) -> Option<()> {
        self.events.pop_front()
    }

    fn is_closed(&self) -> bool {
        self.eof
    }
}

/// A fresh directory for this test's socket files (removed on drop).
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("monocoque-unix-{}-{tag}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Turns `driver` until `done` says so, collecting every activity.
fn turn_until(
    driver: &mut AnyDriver<Echo>,
    seen: &mut Vec<Activity>,
    what: &str,
    mut done: impl FnMut(&mut AnyDriver<Echo>, &[Activity]) -> bool,
) {
    let start = Instant::now();
    while !done(driver, seen) {
        assert!(start.elapsed() < PATIENCE, "{what}: not within {PATIENCE:?}: {seen:?}");
        let mut out = Vec::new();
        driver
            .turn(Some(Instant::now() + Duration::from_millis(20)), &mut out)
            .expect("turn");
        seen.extend(out);
    }
}

/// Reads `n` bytes from `stream` while `driver` turns (its sends go out in turns).
fn read_while_turning(
    driver: &mut AnyDriver<Echo>,
    seen: &mut Vec<Activity>,
    stream: &mut UnixStream,
    n: usize,
) -> Vec<u8> {
    stream.set_nonblocking(true).expect("non-blocking");
    let mut got = Vec::new();
    turn_until(driver, seen, "bytes from the driver", |_, _| {
        let mut buf = [0; 4096];
        while got.len() < n {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        got.len() >= n
    });
    got
}

fn closed(seen: &[Activity], conn: ConnId) -> Option<Option<io::ErrorKind>> {
    seen.iter().find_map(|a| match a {
        Activity::Closed { conn: c, error } if *c == conn => Some(error.as_ref().map(io::Error::kind)),
        _ => None,
    })
}

fn listener_echoes_and_removes_its_file(kind: DriverKind) {
    let dir = TempDir::new("listen");
    let path = dir.path("echo.sock");
    let mut driver: AnyDriver<Echo> = AnyDriver::new(kind).expect("driver");
    let listener = driver
        .listen_unix(
            &path,
            Box::new(|_, peer, _| {
                assert_eq!(peer, UNIX_PEER);
                Echo::new(true)
            }),
        )
        .expect("listen");
    assert_eq!(driver.listener_path(listener), Some(path.as_path()), "{kind}");
    assert_eq!(
        driver.listener_addr(listener).map_err(|e| e.kind()),
        Err(io::ErrorKind::Unsupported),
        "{kind}: no IP address"
    );
    let payload: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    let client = {
        let path = path.clone();
        let payload = payload.clone();
        std::thread::spawn(move || {
            let mut stream = UnixStream::connect(&path).expect("connect");
            stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
            let writer = {
                let mut stream = stream.try_clone().expect("clone");
                std::thread::spawn(move || {
                    stream.write_all(&payload).expect("write");
                    stream.shutdown(std::net::Shutdown::Write).expect("shutdown");
                })
            };
            let mut back = Vec::new();
            stream.read_to_end(&mut back).expect("read the echo");
            writer.join().expect("writer");
            back
        })
    };
    let mut seen = Vec::new();
    turn_until(&mut driver, &mut seen, "the echo", |_, seen| {
        seen.iter().any(|a| matches!(a, Activity::Closed { .. }))
    });
    let accepted: Vec<_> = seen
        .iter()
        .filter_map(|a| match a {
            Activity::Accepted { peer, .. } => Some(*peer),
            _ => None,
        })
        .collect();
    assert_eq!(accepted, [UNIX_PEER], "{kind}");
    assert_eq!(client.join().expect("client"), payload, "{kind}: 1 MiB echoed");
    assert!(path.exists(), "{kind}: the file is there while the listener is");
    driver.close_listener(listener).expect("close");
    assert!(!path.exists(), "{kind}: the file is removed on close");
    assert_eq!(driver.listener_path(listener), None);
}

fn connect_moves_bytes_both_ways(kind: DriverKind) {
    let dir = TempDir::new("connect");
    let path = dir.path("peer.sock");
    let server = UnixListener::bind(&path).expect("bind");
    let mut driver: AnyDriver<Echo> = AnyDriver::new(kind).expect("driver");
    let mut session = Echo::new(false);
    session.arena.put_slice(b"queued before connecting");
    let conn = driver.connect_unix(&path, session).expect("connect");
    // io_uring submits the connect in the next turn: accept while turning.
    server.set_nonblocking(true).expect("non-blocking");
    let mut accepted = None;
    let mut seen = Vec::new();
    turn_until(&mut driver, &mut seen, "connected and accepted", |_, seen| {
        if accepted.is_none() {
            accepted = server.accept().ok().map(|(s, _)| s);
        }
        accepted.is_some() && seen.iter().any(|a| matches!(a, Activity::Connected(c) if *c == conn))
    });
    let mut peer = accepted.expect("accepted");
    let got = read_while_turning(&mut driver, &mut seen, &mut peer, 24);
    assert_eq!(got, b"queued before connecting", "{kind}");
    peer.write_all(b"and back").expect("write");
    drop(peer);
    turn_until(&mut driver, &mut seen, "the peer's bytes and close", |d, seen| {
        closed(seen, conn).is_some() && d.session(conn).is_some_and(|s| s.eof)
    });
    assert_eq!(
        driver.session(conn).map(|s| s.received.clone()),
        Some(b"and back".to_vec()),
        "{kind}"
    );
    assert_eq!(closed(&seen, conn), Some(None), "{kind}: a clean close");
    assert!(driver.remove(conn).is_some());
}

fn connect_without_a_listener_is_closed_with_the_error(kind: DriverKind) {
    let dir = TempDir::new("refused");
    let mut driver: AnyDriver<Echo> = AnyDriver::new(kind).expect("driver");
    let missing = dir.path("nobody.sock");
    let conn = driver.connect_unix(&missing, Echo::new(false)).expect("started");
    let mut seen = Vec::new();
    turn_until(&mut driver, &mut seen, "the failure", |_, seen| {
        closed(seen, conn).is_some()
    });
    assert_eq!(closed(&seen, conn), Some(Some(io::ErrorKind::NotFound)), "{kind}");
    // A socket file nobody listens on: refused.
    let stale = dir.path("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind"));
    let conn = driver.connect_unix(&stale, Echo::new(false)).expect("started");
    turn_until(&mut driver, &mut seen, "the refusal", |_, seen| {
        closed(seen, conn).is_some()
    });
    assert_eq!(
        closed(&seen, conn),
        Some(Some(io::ErrorKind::ConnectionRefused)),
        "{kind}"
    );
    assert!(
        !seen.iter().any(|a| matches!(a, Activity::Connected(_))),
        "{kind}: nothing connected"
    );
    let long = dir.path(&"x".repeat(200));
    assert!(
        driver.connect_unix(&long, Echo::new(false)).is_err(),
        "{kind}: too long"
    );
}

fn binding_replaces_only_a_stale_socket(kind: DriverKind) {
    let dir = TempDir::new("stale");
    let mut driver: AnyDriver<Echo> = AnyDriver::new(kind).expect("driver");
    // Left behind by a listener that did not remove its file (std's does not).
    let stale = dir.path("stale.sock");
    drop(UnixListener::bind(&stale).expect("bind"));
    assert!(stale.exists());
    let listener = driver
        .listen_unix(&stale, Box::new(|_, _, _| Echo::new(true)))
        .expect("bound over the stale file");
    let mut client = UnixStream::connect(&stale).expect("the new listener answers");
    client.write_all(b"ping").expect("write");
    let mut seen = Vec::new();
    let got = read_while_turning(&mut driver, &mut seen, &mut client, 4);
    assert_eq!(got, b"ping", "{kind}: echoed");

    // A live socket (ours) is not taken over; neither is a file that is no socket.
    let err = driver
        .listen_unix(&stale, Box::new(|_, _, _| Echo::new(true)))
        .expect_err("the path is in use");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{kind}");
    let plain = dir.path("plain");
    std::fs::write(&plain, b"keep me").expect("a regular file");
    assert!(driver.listen_unix(&plain, Box::new(|_, _, _| Echo::new(true))).is_err());
    assert_eq!(std::fs::read(&plain).expect("kept"), b"keep me", "{kind}");

    // Dropping the driver closes the listener and removes its file.
    assert!(driver.listener_path(listener).is_some());
    drop(driver);
    assert!(!stale.exists(), "{kind}: removed with the driver");
}

fn exists(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok()
}

fn a_closed_listener_frees_the_path_for_the_next(kind: DriverKind) {
    let dir = TempDir::new("rebind");
    let path = dir.path("again.sock");
    let mut driver: AnyDriver<Echo> = AnyDriver::new(kind).expect("driver");
    for round in 0..3 {
        let listener = driver
            .listen_unix(&path, Box::new(|_, _, _| Echo::new(true)))
            .unwrap_or_else(|e| panic!("{kind}: round {round}: {e}"));
        let mut seen = Vec::new();
        let _client = UnixStream::connect(&path).expect("connect");
        turn_until(&mut driver, &mut seen, "accepted", |_, seen| {
            seen.iter().any(|a| matches!(a, Activity::Accepted { .. }))
        });
        driver.close_listener(listener).expect("close");
        assert!(!exists(&path), "{kind}: round {round}: removed at close");
    }
}

both_drivers! {
    listener_echoes_and_removes_its_file => uring_listener_echoes_and_removes_its_file, mio_listener_echoes_and_removes_its_file;
    connect_moves_bytes_both_ways => uring_connect_moves_bytes_both_ways, mio_connect_moves_bytes_both_ways;
    connect_without_a_listener_is_closed_with_the_error => uring_connect_without_a_listener_is_closed_with_the_error, mio_connect_without_a_listener_is_closed_with_the_error;
    binding_replaces_only_a_stale_socket => uring_binding_replaces_only_a_stale_socket, mio_binding_replaces_only_a_stale_socket;
    a_closed_listener_frees_the_path_for_the_next => uring_a_closed_listener_frees_the_path_for_the_next, mio_a_closed_listener_frees_the_path_for_the_next;
}
