//! Streaming pipelines: `Client::pump_into` against a real `redis-server`, and
//! `monocoque redis --pipe` against a fake server that answers nothing until it has the
//! whole input, on both drivers.
//!
//! A stop-and-wait pipe (send a batch, wait for all its replies, send the next) leaves
//! the server idle between batches; a streaming one keeps handing batches to the kernel
//! while replies come back.

mod support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::redis::{cmd, Client, ClientOptions, Value};
use support::{RedisServer, TempDir};

both_drivers! {
    pump_returns_replies_in_order_under_a_tight_cap => pump_in_order_uring, pump_in_order_mio;
    pump_with_a_past_deadline_never_blocks => pump_never_blocks_uring, pump_never_blocks_mio;
    pipe_streams_batches_before_the_first_replies => pipe_streams_uring, pipe_streams_mio;
    pipe_reports_errors_in_command_order => pipe_error_order_uring, pipe_error_order_mio;
}

fn client(server: &RedisServer, driver: DriverKind, max_pending: usize) -> Client {
    let options = ClientOptions::new("127.0.0.1", server.addr.port())
        .driver(driver)
        .max_pending(max_pending)
        // No liveness hold-back: what the connection takes at once is deterministic.
        .idle_check(None);
    Client::connect_with(options).expect("connect")
}

/// 100 `INCR`s through a connection that takes 8 at a time: the rest wait in the client
/// (`unsent`), and `pump_into` hands them over as replies make room, returning every
/// outcome once, in order, without a `flush`.
fn pump_returns_replies_in_order_under_a_tight_cap(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut client = client(&server, driver, 8);
    for _ in 0..100 {
        client.send_buffered(&cmd("INCR").arg("counter")).expect("buffer");
    }
    assert_eq!(client.buffered(), 100);
    assert_eq!(client.unsent(), 92, "the connection took max_pending of them");
    let mut out = Vec::new();
    let mut calls = 0;
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.len() < 100 {
        assert!(Instant::now() < deadline, "only {} replies after 30 s", out.len());
        let before = out.len();
        let n = client
            .pump_into(Some(Instant::now() + Duration::from_secs(10)), &mut out)
            .expect("pump");
        assert_eq!(n, out.len() - before, "returns how many it appended");
        calls += 1;
    }
    let values: Vec<i64> = out
        .into_iter()
        .map(|r| match r.expect("reply") {
            Value::Integer(i) => i,
            other => panic!("INCR replied {other:?}"),
        })
        .collect();
    assert_eq!(values, (1..=100).collect::<Vec<i64>>(), "every outcome once, in order");
    assert!(calls >= 2, "a cap of 8 cannot answer 100 in one turn");
    assert_eq!((client.buffered(), client.unsent()), (0, 0));
    assert!(client.flush().expect("flush").is_empty(), "nothing is returned twice");
    assert_eq!(client.query_as::<i64>(&cmd("GET").arg("counter")).expect("GET"), 100);
}

/// With a deadline already past, `pump_into` hands the commands to the kernel and
/// returns what arrived, without waiting for a reply the server is still working on.
fn pump_with_a_past_deadline_never_blocks(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let mut client = client(&server, driver, 1024);
    client
        .send_buffered(&cmd("DEBUG").arg("SLEEP").arg("1"))
        .expect("buffer");
    client.send_buffered(&cmd("PING")).expect("buffer");
    let mut out = Vec::new();
    let t0 = Instant::now();
    let n = client.pump_into(Some(Instant::now()), &mut out).expect("pump");
    assert!(
        t0.elapsed() < Duration::from_millis(700),
        "a poll waited {:?} for a 1 s command",
        t0.elapsed()
    );
    assert_eq!((n, client.buffered()), (0, 2), "nothing answered yet");
    // The commands were handed over by that poll: waiting now gets both replies.
    let deadline = Instant::now() + Duration::from_secs(20);
    while out.len() < 2 {
        assert!(Instant::now() < deadline, "replies never came: {out:?}");
        client.pump_into(Some(deadline), &mut out).expect("pump");
    }
    let out: Vec<Value> = out.into_iter().map(|r| r.expect("reply")).collect();
    assert!(matches!(&out[0], Value::SimpleString(s) if &s[..] == b"OK"), "{out:?}");
    assert!(
        matches!(&out[1], Value::SimpleString(s) if &s[..] == b"PONG"),
        "{out:?}"
    );
}

/// Bytes of `--pipe` input in the streaming test: more than any batch size the pipe has
/// used (1 MiB), so a stop-and-wait pipe must wait for replies before sending it all.
const STREAM_INPUT_BYTES: usize = 3 << 20;

/// `monocoque redis --pipe` against a fake server that reads everything and answers
/// only once it has received the whole input: a pipe that waits for a batch's replies
/// before sending the next batch never finishes; a streaming one does, with the
/// summary redis-cli prints.
fn pipe_streams_batches_before_the_first_replies(driver: DriverKind) {
    let value = "v".repeat(1000);
    let mut input = Vec::new();
    let mut n = 0;
    while input.len() < STREAM_INPUT_BYTES {
        let key = format!("key:{n}");
        write!(
            input,
            "*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n${}\r\n{value}\r\n",
            key.len(),
            value.len()
        )
        .expect("encode");
        n += 1;
    }
    let dir = TempDir::new("redis-streaming");
    let input_path = dir.path.join("sets.resp");
    std::fs::write(&input_path, &input).expect("write input");

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let expected = input.len();
    let server = thread::spawn(move || -> Vec<u8> {
        let (mut s, _) = listener.accept().expect("accept");
        s.set_read_timeout(Some(Duration::from_secs(40))).expect("timeout");
        let mut got = Vec::with_capacity(expected);
        let mut buf = vec![0u8; 256 * 1024];
        while got.len() < expected {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => return got,
                Ok(k) => got.extend_from_slice(&buf[..k]),
            }
        }
        // Everything is in: now answer every SET, then wait for the client to leave.
        s.write_all(&b"+OK\r\n".repeat(n)).expect("reply");
        while matches!(s.read(&mut buf), Ok(k) if k > 0) {}
        got
    });

    let out_path = dir.path.join("stdout.txt");
    let mut child = Command::new(env!("CARGO_BIN_EXE_monocoque"))
        .args(["redis", "--pipe", "--resp2", "--driver", &driver.to_string()])
        .args(["--url", &format!("redis://127.0.0.1:{port}")])
        .stdin(std::fs::File::open(&input_path).expect("open input"))
        .stdout(std::fs::File::create(&out_path).expect("create stdout file"))
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn monocoque");
    let t0 = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            break status;
        }
        if t0.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{driver}: --pipe still running after 30 s: it waits for replies the server only sends once it has the whole input");
        }
        thread::sleep(Duration::from_millis(20));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut stderr).expect("read stderr");
    }
    let stdout = std::fs::read_to_string(&out_path).expect("read stdout");
    assert_eq!(status.code(), Some(0), "{driver}: stdout {stdout:?} stderr {stderr:?}");
    assert_eq!(
        stdout,
        format!("All data transferred. Waiting for the last reply...\nLast reply received from server.\nerrors: 0, replies: {n}\n"),
        "{driver}"
    );
    let got = server.join().expect("fake server");
    assert!(
        got == input,
        "{driver}: the server received the input byte for byte ({} of {} bytes)",
        got.len(),
        input.len()
    );
}

/// A command refused before sending (`MONITOR`, which a pipelined connection cannot
/// carry) is reported among the server's error replies in input order, not ahead of the
/// errors of the commands before it.
fn pipe_reports_errors_in_command_order(driver: DriverKind) {
    let server = RedisServer::start(&[]);
    let dir = TempDir::new("redis-streaming-order");
    let input_path = dir.path.join("mixed.resp");
    std::fs::write(
        &input_path,
        b"*1\r\n$7\r\nBOGUS_A\r\n*1\r\n$7\r\nMONITOR\r\n*1\r\n$7\r\nBOGUS_B\r\n*1\r\n$4\r\nPING\r\n",
    )
    .expect("write input");
    let out = Command::new(env!("CARGO_BIN_EXE_monocoque"))
        .args(["redis", "--pipe", "--driver", &driver.to_string()])
        .args(["--url", &format!("redis://{}", server.addr)])
        .stdin(std::fs::File::open(&input_path).expect("open input"))
        .output()
        .expect("run monocoque");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{driver}: {stdout} {stderr}");
    assert!(stdout.ends_with("errors: 3, replies: 3\n"), "{driver}: {stdout}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{driver}: one line per error: {stderr}");
    assert!(lines[0].contains("BOGUS_A"), "{driver}: {stderr}");
    assert!(lines[1].contains("MONITOR"), "{driver}: {stderr}");
    assert!(lines[2].contains("BOGUS_B"), "{driver}: {stderr}");
}
