//! Hostile servers against the real clients, on both drivers: a server that announces
//! huge lengths, nests without end, never ends a line, or announces (and then sends) a
//! 1 GB NATS message. Each case must end in a typed error, with the process's memory
//! flat: RSS grows by less than a few MiB beyond the configured bound.
//!
//! The servers are written here (a std `TcpListener` in a thread) and speak just enough
//! of the protocol to get the client past its handshake.

#[macro_use]
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::proto::nats::client::ConnectionError as NatsConnectionError;
use monocoque::proto::nats::DecodeError as NatsDecodeError;
use monocoque::proto::resp::{ConnectionError as RespConnectionError, DecodeError as RespDecodeError, DecoderConfig};

/// RSS growth allowed beyond a case's own bound: allocator and driver noise.
const SLACK: usize = 8 << 20;

/// One case at a time: RSS is the whole process's, so cases running side by side would
/// see each other's memory.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The process's resident set, in bytes (`/proc/self/statm`, second field, in pages).
fn rss() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").expect("/proc/self/statm");
    let pages: usize = statm
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .expect("statm field");
    pages * 4096
}

/// Writes `data`, then `chunk` repeatedly until `total` bytes of it are sent or the
/// client goes away (a refused stream is closed by the client: errors end the stream).
fn stream(sock: &mut TcpStream, data: &[u8], chunk: &[u8], total: usize) {
    if sock.write_all(data).is_err() {
        return;
    }
    let mut sent = 0;
    while sent < total {
        if sock.write_all(chunk).is_err() {
            return;
        }
        sent += chunk.len();
    }
}

/// Reads until `needle` has been seen; returns what was read (empty on EOF or error).
fn read_until(sock: &mut TcpStream, needle: &[u8]) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !seen.windows(needle.len()).any(|w| w == needle) {
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => return Vec::new(),
            Ok(n) => seen.extend_from_slice(&buf[..n]),
        }
    }
    seen
}

// ---- RESP -----------------------------------------------------------------------------

/// A Redis that answers `HELLO` and one `PING`, then answers the next command with
/// `hostile`, followed by `chunk` repeated up to `total` bytes.
fn hostile_redis(hostile: Vec<u8>, chunk: Vec<u8>, total: usize) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = thread::spawn(move || {
        let Ok((mut sock, _)) = listener.accept() else {
            return;
        };
        sock.set_read_timeout(Some(Duration::from_secs(30))).ok();
        if read_until(&mut sock, b"HELLO").is_empty() {
            return;
        }
        let hello = b"%3\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.0.0\r\n$5\r\nproto\r\n:3\r\n";
        if sock.write_all(hello).is_err() || read_until(&mut sock, b"PING").is_empty() {
            return;
        }
        if sock.write_all(b"+PONG\r\n").is_err() || read_until(&mut sock, b"GET").is_empty() {
            return;
        }
        stream(&mut sock, &hostile, &chunk, total);
        // Hold the socket until the client closes it.
        let mut rest = [0u8; 4096];
        while matches!(sock.read(&mut rest), Ok(n) if n > 0) {}
    });
    (port, handle)
}

/// Runs a `GET` against a hostile Redis; returns the decode error the client reported
/// and the RSS growth across the call.
fn redis_case(driver: DriverKind, hostile: Vec<u8>, chunk: Vec<u8>, total: usize) -> (RespDecodeError, usize) {
    let _one = serial();
    let (port, server) = hostile_redis(hostile, chunk, total);
    let options = monocoque::redis::ClientOptions::new("127.0.0.1", port)
        .driver(driver)
        .response_timeout(Some(Duration::from_secs(20)));
    let mut client = monocoque::redis::Client::connect_with(options).expect("connect");
    client.ping().expect("ping");
    let before = rss();
    let started = Instant::now();
    let result = client.get("key");
    let grew = rss().saturating_sub(before);
    eprintln!(
        "{driver:?}: error after {:?}, RSS grew by {grew} bytes",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    drop(client);
    server.join().expect("server thread");
    match result {
        Err(monocoque::redis::Error::Connection(RespConnectionError::Decode(e))) => (e, grew),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

fn redis_huge_aggregate(driver: DriverKind) {
    // 4 MiB of elements after the header: were they stored, 1 Mi × 40-byte values.
    let (err, grew) = redis_case(driver, b"*4000000000\r\n".to_vec(), b":1\r\n".repeat(1024), 4 << 20);
    assert_eq!(
        err,
        RespDecodeError::AggregateTooLong {
            len: 4_000_000_000,
            max: DecoderConfig::DEFAULT_MAX_AGGREGATE_LEN
        }
    );
    assert!(grew < SLACK, "RSS grew by {grew} bytes");
}

fn redis_huge_bulk(driver: DriverKind) {
    let (err, grew) = redis_case(driver, b"$4294967295\r\n".to_vec(), vec![b'x'; 64 << 10], 16 << 20);
    assert_eq!(
        err,
        RespDecodeError::BulkTooLong {
            len: 4_294_967_295,
            max: DecoderConfig::DEFAULT_MAX_BULK_LEN
        }
    );
    assert!(grew < SLACK, "RSS grew by {grew} bytes");
}

fn redis_deep_nesting(driver: DriverKind) {
    // `*1\r\n` × 1,000,000, in 4 MB.
    let (err, grew) = redis_case(driver, Vec::new(), b"*1\r\n".repeat(1000), 4_000_000);
    assert_eq!(
        err,
        RespDecodeError::TooDeep {
            max: DecoderConfig::DEFAULT_MAX_DEPTH
        }
    );
    assert!(grew < SLACK, "RSS grew by {grew} bytes");
}

fn redis_endless_line(driver: DriverKind) {
    // A simple string that never ends: 16 MiB streamed with no CRLF.
    let (err, grew) = redis_case(driver, b"+".to_vec(), vec![b'a'; 64 << 10], 16 << 20);
    assert_eq!(
        err,
        RespDecodeError::LineTooLong {
            max: DecoderConfig::DEFAULT_MAX_LINE_LEN
        }
    );
    assert!(
        grew < DecoderConfig::DEFAULT_MAX_LINE_LEN + SLACK,
        "RSS grew by {grew} bytes"
    );
}

// ---- NATS -----------------------------------------------------------------------------

/// A NATS server that announces `max_payload`, completes the handshake, waits for the
/// client's `SUB`, then sends `hostile` (with `{sid}` replaced by the subscription's
/// id) and `chunk` repeated up to `total` bytes.
fn hostile_nats(max_payload: u64, hostile: String, chunk: Vec<u8>, total: usize) -> (u16, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = thread::spawn(move || {
        let Ok((mut sock, _)) = listener.accept() else {
            return;
        };
        sock.set_read_timeout(Some(Duration::from_secs(30))).ok();
        let info = format!(
            "INFO {{\"server_id\":\"HOSTILE\",\"version\":\"2.9.0\",\"proto\":1,\"headers\":true,\"max_payload\":{max_payload}}}\r\n"
        );
        if sock.write_all(info.as_bytes()).is_err() || read_until(&mut sock, b"PING\r\n").is_empty() {
            return;
        }
        if sock.write_all(b"PONG\r\n").is_err() {
            return;
        }
        let seen = read_until(&mut sock, b"SUB ");
        let seen = if seen.is_empty() {
            return;
        } else {
            let mut seen = seen;
            while !seen.ends_with(b"\r\n") {
                let mut byte = [0u8; 1];
                match sock.read(&mut byte) {
                    Ok(1) => seen.push(byte[0]),
                    _ => return,
                }
            }
            seen
        };
        let text = String::from_utf8_lossy(&seen);
        let line = text.lines().find(|l| l.starts_with("SUB ")).unwrap_or_default();
        let sid = line.split_whitespace().last().unwrap_or("1").to_owned();
        let hostile = hostile.replace("{sid}", &sid);
        stream(&mut sock, hostile.as_bytes(), &chunk, total);
        let mut rest = [0u8; 4096];
        loop {
            match sock.read(&mut rest) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
    });
    (port, handle)
}

/// Subscribes on a hostile NATS server and waits for a message; returns the decode
/// error the client reported and the RSS growth across the wait.
fn nats_case(
    driver: DriverKind,
    max_payload: u64,
    hostile: &str,
    chunk: Vec<u8>,
    total: usize,
) -> (NatsDecodeError, usize) {
    let _one = serial();
    let (port, server) = hostile_nats(max_payload, hostile.to_owned(), chunk, total);
    let options = monocoque::nats::ClientOptions::from_url(&format!("nats://127.0.0.1:{port}"))
        .expect("url")
        .driver(driver)
        .allow_reconnect(false);
    let mut client = monocoque::nats::Client::connect_with(options).expect("connect");
    let mut sub = client.subscribe("foo").expect("subscribe");
    let before = rss();
    let started = Instant::now();
    let mut result = Ok(None);
    while started.elapsed() < Duration::from_secs(20) {
        result = sub.next_message(Duration::from_secs(1));
        if !matches!(result, Ok(None)) {
            break;
        }
    }
    let grew = rss().saturating_sub(before);
    eprintln!(
        "{driver:?}: error after {:?}, RSS grew by {grew} bytes",
        started.elapsed()
    );
    drop(sub);
    drop(client);
    server.join().expect("server thread");
    match result {
        Err(
            monocoque::nats::Error::Disconnected(NatsConnectionError::Decode(e))
            | monocoque::nats::Error::Connection(NatsConnectionError::Decode(e)),
        ) => (e, grew),
        other => panic!(
            "expected a decode error, got {:?}",
            other.map(|m| m.map(|m| m.payload.len()))
        ),
    }
}

fn nats_gigabyte_message(driver: DriverKind) {
    // The server allows 1 GB and sends a message of almost that, in 1 MiB chunks.
    let size = 999_999_000;
    let (err, grew) = nats_case(
        driver,
        1_000_000_000,
        &format!("MSG foo {{sid}} {size}\r\n"),
        vec![b'x'; 1 << 20],
        size,
    );
    let ceiling = monocoque::proto::nats::client::ClientConfig::DEFAULT_MAX_PAYLOAD;
    assert_eq!(err, NatsDecodeError::PayloadTooLarge { size, max: ceiling });
    assert!(grew < SLACK, "RSS grew by {grew} bytes");
}

fn nats_endless_control_line(driver: DriverKind) {
    // A MSG whose control line never ends: 16 MiB of subject.
    let (err, grew) = nats_case(driver, 1 << 20, "MSG ", vec![b'a'; 64 << 10], 16 << 20);
    assert!(matches!(err, NatsDecodeError::ControlLineTooLong { .. }), "{err:?}");
    assert!(grew < SLACK, "RSS grew by {grew} bytes");
}

both_drivers! {
    redis_huge_aggregate => redis_huge_aggregate_uring, redis_huge_aggregate_mio;
    redis_huge_bulk => redis_huge_bulk_uring, redis_huge_bulk_mio;
    redis_deep_nesting => redis_deep_nesting_uring, redis_deep_nesting_mio;
    redis_endless_line => redis_endless_line_uring, redis_endless_line_mio;
    nats_gigabyte_message => nats_gigabyte_message_uring, nats_gigabyte_message_mio;
    nats_endless_control_line => nats_endless_control_line_uring, nats_endless_control_line_mio;
}
