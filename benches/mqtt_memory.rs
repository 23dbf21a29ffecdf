//! Memory per idle MQTT connection: our broker on each driver against mosquitto, in
//! the same run.
//!
//! ```text
//! cargo bench --bench mqtt_memory                          # 15,000 connections per broker
//! cargo bench --bench mqtt_memory -- --connections 2000    # a quicker, rougher run
//! ```
//!
//! Each broker runs in a process of its own (ours: this binary re-run as
//! `--broker-child uring|mio`, `monocoque::mqtt::Broker` on one driver thread;
//! mosquitto with persistence and logging off) on a free loopback port. This process
//! warms it up with 1,000 connections that connect and disconnect (so one-time
//! allocations such as receive-buffer rings and pools are already resident), reads the
//! broker's `VmRSS` from `/proc/PID/status`, then opens N idle MQTT 3.1.1 connections
//! (`CONNECT` with a distinct client id, Clean Session, keep alive 600 s, then
//! `CONNACK` awaited) in batches of 100, lets them sit and reads `VmRSS` again. The
//! growth divided by N is the broker's process memory per idle connection.
//!
//! Kernel socket memory (socket, TCP control block, its queues: about 4 KB per idle
//! socket on both sides of the comparison) is not in RSS and not in these figures. For
//! an idea of it, the machine-wide growth of `Slab:` in `/proc/meminfo` over the same
//! window is printed too, halved (both ends of each connection are on this machine);
//! other processes move it, so it is rough.
//! The client sockets are held by this process, one broker at a time, so both this
//! process and the broker stay under the open-file limit (20,000 here): N must stay
//! below it.

#[path = "common/conditions.rs"]
#[allow(dead_code)]
mod conditions;
#[path = "common/mqtt.rs"]
#[allow(dead_code)]
mod mqtt;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use mqtt::{connect_packet, maybe_run_broker_child, raise_nofile, BrokerProcess, Peer};

/// Connections that connect and disconnect before the baseline is read.
const WARMUP: usize = 1_000;
/// Connections opened at a time (below every broker's listen backlog).
const BATCH: usize = 100;

fn main() {
    maybe_run_broker_child();
    let args: Vec<String> = std::env::args().collect();
    let connections: usize = args
        .iter()
        .position(|a| a == "--connections")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(15_000);
    let limit = raise_nofile();
    assert!(
        (connections as u64) + 100 < limit,
        "{connections} connections need more than the open-file limit ({limit}) allows"
    );
    println!("# benches/mqtt_memory.rs: process memory per idle MQTT connection");
    println!(
        "{} CPU(s), load average {} at start; {connections} idle connections per broker, open-file limit {limit}",
        std::thread::available_parallelism().map_or(0, usize::from),
        conditions::load_average(),
    );
    println!("\n| broker | connections | RSS before | RSS after | growth | per idle connection | kernel slab per socket (rough) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    let mut per = Vec::new();
    for peer in Peer::all() {
        let broker = BrokerProcess::start(peer);
        let (before, after, slab) = measure(&broker, connections);
        let growth = after.saturating_sub(before);
        let each = growth as f64 / connections as f64;
        println!(
            "| {} | {connections} | {:.1} MiB | {:.1} MiB | {:.1} MiB | {:.0} bytes | {:.0} bytes |",
            peer.name(),
            before as f64 / 1048576.0,
            after as f64 / 1048576.0,
            growth as f64 / 1048576.0,
            each,
            slab as f64 / (2 * connections) as f64
        );
        per.push((peer, each));
    }
    let mosquitto = per
        .iter()
        .find(|(p, _)| *p == Peer::Mosquitto)
        .map_or(f64::NAN, |p| p.1);
    println!();
    for (peer, each) in &per {
        if *peer != Peer::Mosquitto {
            println!(
                "{}: {:.0} bytes per idle connection, {:.2}x mosquitto's ({:.0} bytes); 1M idle connections: {:.0} MiB of process memory (+ ~4 KB of kernel socket memory each, ~3.8 GiB, not counted)",
                peer.name(),
                each,
                each / mosquitto,
                mosquitto,
                each * 1e6 / 1048576.0
            );
        }
    }
    println!(
        "mosquitto: 1M idle connections: {:.0} MiB of process memory (+ the same kernel socket memory)",
        mosquitto * 1e6 / 1048576.0
    );
}

/// Warms `broker` up, then opens `n` idle connections: RSS before and after, and the
/// machine's slab growth meanwhile, bytes.
fn measure(broker: &BrokerProcess, n: usize) -> (u64, u64, i64) {
    for start in (0..WARMUP).step_by(BATCH) {
        let batch = open_batch(broker, "warm", start, BATCH);
        for mut s in batch {
            let _ = s.write_all(&[0xE0, 0]); // DISCONNECT
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    let before = broker.rss();
    let slab_before = slab_bytes();
    let mut held = Vec::with_capacity(n);
    for start in (0..n).step_by(BATCH) {
        held.extend(open_batch(broker, "idle", start, BATCH.min(n - start)));
    }
    // Let the broker settle (nothing to do but the bookkeeping of the last batch).
    std::thread::sleep(Duration::from_secs(1));
    let after = broker.rss();
    let slab = slab_bytes() - slab_before;
    drop(held);
    (before, after, slab)
}

/// The kernel's slab memory, machine-wide (`Slab:` of `/proc/meminfo`), bytes.
fn slab_bytes() -> i64 {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Slab:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<i64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// Opens `count` connections and completes their MQTT handshakes.
fn open_batch(broker: &BrokerProcess, tag: &str, start: usize, count: usize) -> Vec<TcpStream> {
    let mut streams: Vec<TcpStream> = (0..count)
        .map(|_| TcpStream::connect(broker.addr).expect("connect to the broker"))
        .collect();
    for (i, s) in streams.iter_mut().enumerate() {
        s.write_all(&connect_packet(&format!("{tag}-{:06}", start + i), 600))
            .expect("send CONNECT");
    }
    for s in &mut streams {
        s.set_read_timeout(Some(Duration::from_secs(20))).expect("read timeout");
        let mut ack = [0u8; 4];
        s.read_exact(&mut ack).expect("CONNACK");
        assert_eq!(ack, [0x20, 2, 0, 0], "CONNACK accepted");
    }
    streams
}
