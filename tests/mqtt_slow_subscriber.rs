//! A subscriber that stops reading does not grow the broker's memory without bound,
//! and the other subscribers still receive everything.
//!
//! Its own test binary, one test looping over both drivers, so the process's resident
//! memory is the broker's alone (the default test runner would run other socket tests
//! in parallel threads of the same process).

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use monocoque::driver::DriverKind;
use monocoque::proto::mqtt::broker::ConnectionConfig;
use support::mqtt::OurBroker;

const PATIENCE: Duration = Duration::from_secs(30);
/// Messages flooded, and the payload of each: 24 MB in all.
const MESSAGES: usize = 24_000;
const PAYLOAD: usize = 1000;
/// Sent before waiting for the reading subscriber to catch up (100 KB: under the
/// output cap, so it is never the reading subscriber that drops).
const BATCH: usize = 100;
const OUTPUT_CAP: usize = 256 * 1024;

/// The process's resident set, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// A 3.1.1 packet: the header byte, the remaining length, the body.
fn packet(header: u8, body: &[u8]) -> Vec<u8> {
    let mut p = vec![header];
    let mut len = body.len();
    loop {
        let mut b = (len % 128) as u8;
        len /= 128;
        if len > 0 {
            b |= 0x80;
        }
        p.push(b);
        if len == 0 {
            break;
        }
    }
    p.extend_from_slice(body);
    p
}

fn string(s: &str) -> Vec<u8> {
    let mut v = (s.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(s.as_bytes());
    v
}

/// A raw 3.1.1 client connected as `id`, its CONNACK read.
fn raw_client(addr: SocketAddr, id: &str) -> TcpStream {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).expect("a read timeout");
    let mut body = string("MQTT");
    body.extend_from_slice(&[4, 0x02, 0, 0]);
    body.extend_from_slice(&string(id));
    s.write_all(&packet(0x10, &body)).expect("CONNECT");
    let mut ack = [0u8; 4];
    s.read_exact(&mut ack).expect("CONNACK");
    assert_eq!(ack, [0x20, 2, 0, 0]);
    s
}

/// Counts the PUBLISH packets that arrive on `s` until it is quiet for two seconds.
fn drain_count(s: &mut TcpStream) -> usize {
    s.set_read_timeout(Some(Duration::from_secs(2)))
        .expect("a read timeout");
    let mut buf = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let mut count = 0;
    loop {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return count,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        // Whole packets: header, remaining length, body.
        loop {
            let mut len = 0usize;
            let mut i = 1;
            let mut complete = false;
            while let Some(&b) = buf.get(i) {
                len |= usize::from(b & 0x7f) << (7 * (i - 1));
                i += 1;
                if b & 0x80 == 0 {
                    complete = true;
                    break;
                }
            }
            if !complete || buf.len() < i + len {
                break;
            }
            if buf[0] & 0xf0 == 0x30 {
                count += 1;
            }
            buf.drain(..i + len);
        }
    }
}

#[test]
fn a_subscriber_that_never_reads_costs_bounded_memory_on_both_drivers() {
    let sub_binary = support::require_binary("mosquitto_sub", "mosquitto-clients");
    let stdbuf = support::require_binary("stdbuf", "coreutils");
    for kind in DriverKind::ALL {
        let config = ConnectionConfig {
            max_output_bytes: OUTPUT_CAP,
            ..ConnectionConfig::default()
        };
        let broker = OurBroker::with_limits(kind, config);
        let addr = broker.addr;

        // The reading subscriber: mosquitto_sub printing one short line per message.
        let mut reader = Command::new(&stdbuf)
            .arg("-oL")
            .arg(&sub_binary)
            .args(["-h", "127.0.0.1", "-p", &addr.port().to_string(), "-V", "5"])
            .args(["-t", "flood/#", "-F", "M", "-d"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn mosquitto_sub");
        let received = Arc::new(AtomicUsize::new(0));
        let (subscribed_tx, subscribed) = mpsc::channel();
        {
            let received = Arc::clone(&received);
            let stdout = reader.stdout.take().expect("piped stdout");
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if line == "M" {
                        received.fetch_add(1, Ordering::Release);
                    } else if line.contains("received SUBACK") {
                        let _ = subscribed_tx.send(());
                    }
                }
            });
        }
        subscribed.recv_timeout(PATIENCE).expect("mosquitto_sub subscribed");

        // The subscriber that stops reading: subscribes, then never reads again.
        let mut stuck = raw_client(addr, "stuck");
        let mut sub = vec![0, 1];
        sub.extend_from_slice(&string("flood/#"));
        sub.push(0);
        stuck.write_all(&packet(0x82, &sub)).expect("SUBSCRIBE");
        let mut suback = [0u8; 5];
        stuck.read_exact(&mut suback).expect("SUBACK");
        assert_eq!(suback, [0x90, 3, 0, 1, 0]);

        let mut publisher = raw_client(addr, "flood");
        let mut body = string("flood/t");
        body.extend_from_slice(&[b'x'; PAYLOAD]);
        let one = packet(0x30, &body);
        let before = rss_kib();
        let mut peak = before;
        let mut sent = 0;
        while sent < MESSAGES {
            let batch: Vec<u8> = one.iter().copied().cycle().take(one.len() * BATCH).collect();
            publisher.write_all(&batch).expect("publish a batch");
            sent += BATCH;
            let deadline = Instant::now() + PATIENCE;
            while received.load(Ordering::Acquire) < sent {
                assert!(
                    Instant::now() < deadline,
                    "{kind}: the reading subscriber stalled at {} of {sent}",
                    received.load(Ordering::Acquire)
                );
                std::thread::sleep(Duration::from_millis(1));
            }
            peak = peak.max(rss_kib());
        }
        let growth_mib = peak.saturating_sub(before) as f64 / 1024.0;
        eprintln!(
            "{kind}: flooded {} MB past a subscriber that never reads; RSS {before} KiB -> peak {peak} KiB (+{growth_mib:.1} MiB)",
            MESSAGES * PAYLOAD / 1_000_000
        );
        // Every message reached the reading subscriber.
        assert_eq!(received.load(Ordering::Acquire), MESSAGES, "{kind}");
        // Unbounded, the stuck subscriber's output alone would be ~20 MiB more (24 MB
        // less what the kernel's socket buffers took); capped, it is 256 KiB.
        assert!(growth_mib < 8.0, "{kind}: RSS grew by {growth_mib:.1} MiB");
        // The stuck subscriber got what its socket and the capped output held, not all.
        let got = drain_count(&mut stuck);
        assert!(got < MESSAGES / 2, "{kind}: the stuck subscriber got {got}");
        eprintln!("{kind}: the stuck subscriber got {got} of {MESSAGES} when it finally read");

        let _ = reader.kill();
        let _ = reader.wait();
        drop(broker);
    }
}
