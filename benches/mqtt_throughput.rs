//! MQTT broker throughput and latency: our broker on each driver against mosquitto, in
//! the same run, with one load generator of our own.
//!
//! ```text
//! cargo bench --bench mqtt_throughput             # full run (3 interleaved repetitions)
//! cargo bench --bench mqtt_throughput -- --quick  # short runs, rough numbers
//! cargo bench --bench mqtt_throughput -- --only uring --case qos0-1-1-16 # one case, for profiling
//! scripts/install-rumqttd                         # adds rumqttd as a second peer (--only rumqttd)
//! cargo bench --bench mqtt_throughput -- --threads 2 --only uring  # our broker as a 2-thread BrokerCluster
//! ```
//!
//! Each broker runs in a process of its own on one thread (ours: this binary re-run as
//! `--broker-child uring|mio`, `monocoque::mqtt::Broker` on one driver; mosquitto 2.0,
//! single-threaded, persistence and logging off), except rumqttd 0.20 when installed,
//! which always runs its router and its listener on two threads (each a
//! current-thread tokio runtime): its CPU per delivery is the comparable figure. The
//! load generator is this process:
//! one thread, all its MQTT 3.1.1 connections on our io_uring driver, packets decoded
//! with `monocoque_proto::mqtt::Codec` (subscribers answer QoS 1 deliveries with
//! `PUBACK`), the publisher's `PUBLISH` packets encoded once with the same codec and
//! copied (a packet identifier patched in for QoS 1, a timestamp in the payload).
//!
//! Cases:
//! - **QoS 0, 1 -> 1 and 1 -> 10 fan-out, 16 and 256 byte payloads**: one publisher
//!   keeps at most `WINDOW` messages ahead of the slowest subscriber (so no broker has
//!   to queue without bound or drop: mosquitto drops QoS 0 beyond 1,000 queued), until
//!   every subscriber has received all N. Messages/s is N over the time from the first
//!   publish to the last delivery; deliveries/s is that times the subscribers.
//! - **QoS 1, 1 -> 1, 16 bytes**: the same, published and subscribed at QoS 1; the
//!   broker acknowledges the publisher and the subscriber acknowledges the broker.
//! - **Latency**: QoS 0, 1 -> 1, 16 bytes at a fixed rate (10,000 msg/s); each payload
//!   carries the instant it was scheduled to be sent (not when it was, so a stall in the
//!   generator counts against the result), the subscriber takes the difference when the
//!   driver hands it the bytes. Percentiles over every message.
//!
//! Beside the rates, the broker's CPU (user + system from `/proc/PID/stat`) per message
//! delivered: on this shared 2-CPU machine the load generator and other jobs compete
//! with the broker, and CPU per message is the steadier measure of its cost.

#[path = "common/conditions.rs"]
mod conditions;
#[path = "common/cpu.rs"]
#[allow(dead_code)]
mod cpu;
#[path = "common/mqtt.rs"]
#[allow(dead_code)]
mod mqtt;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::{AnyDriver, DriverKind};
use monocoque::proto::mqtt::{Ack, Codec, Packet, ProtocolVersion, QoS};
use monocoque::proto::{Activity, ConnId, Driver, IoArena, SegmentedBuffer, Session};
use mqtt::{connect_packet, maybe_run_broker_child, publish_packet, subscribe_packet, BrokerProcess, Peer};

/// Messages the publisher may be ahead of the slowest subscriber.
const WINDOW: u64 = 500;
/// The topic every case publishes to.
const TOPIC: &str = "bench/topic";
/// The fixed rate of the latency case, messages/s.
const LATENCY_RATE: u64 = 10_000;

/// One measured case.
#[derive(Clone, Copy, Debug)]
struct Case {
    name: &'static str,
    subscribers: usize,
    size: usize,
    qos: QoS,
    /// Messages to send (throughput) or seconds of sending at `LATENCY_RATE` x 1000
    /// (latency: `messages` is the count at that rate).
    messages: u64,
    latency: bool,
}

fn cases(quick: bool) -> Vec<Case> {
    let scale = if quick { 5 } else { 1 };
    vec![
        Case {
            name: "qos0-1-1-16",
            subscribers: 1,
            size: 16,
            qos: QoS::AtMostOnce,
            messages: 1_000_000 / scale,
            latency: false,
        },
        Case {
            name: "qos0-1-1-256",
            subscribers: 1,
            size: 256,
            qos: QoS::AtMostOnce,
            messages: 1_000_000 / scale,
            latency: false,
        },
        Case {
            name: "qos0-1-10-16",
            subscribers: 10,
            size: 16,
            qos: QoS::AtMostOnce,
            messages: 200_000 / scale,
            latency: false,
        },
        Case {
            name: "qos0-1-10-256",
            subscribers: 10,
            size: 256,
            qos: QoS::AtMostOnce,
            messages: 200_000 / scale,
            latency: false,
        },
        Case {
            name: "qos1-1-1-16",
            subscribers: 1,
            size: 16,
            qos: QoS::AtLeastOnce,
            messages: 300_000 / scale,
            latency: false,
        },
        Case {
            name: "latency-qos0-16",
            subscribers: 1,
            size: 16,
            qos: QoS::AtMostOnce,
            messages: LATENCY_RATE * 3 / scale,
            latency: true,
        },
    ]
}

fn main() {
    maybe_run_broker_child();
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let reps: usize = value("--reps")
        .and_then(|r| r.parse().ok())
        .unwrap_or(if quick { 1 } else { 3 });
    let only: Option<String> = value("--only");
    let only_case: Option<String> = value("--case");
    let threads: usize = value("--threads").and_then(|t| t.parse().ok()).unwrap_or(1).max(1);
    mqtt::BROKER_THREADS.store(threads, std::sync::atomic::Ordering::Relaxed);
    mqtt::raise_nofile();
    let peers: Vec<Peer> = Peer::all()
        .into_iter()
        .filter(|p| {
            only.as_deref().is_none_or(|o| match p {
                Peer::Ours(k) => k.name() == o,
                other => other.name() == o,
            })
        })
        .collect();
    let cases: Vec<Case> = cases(quick)
        .into_iter()
        .filter(|c| only_case.as_deref().is_none_or(|o| o == c.name))
        .collect();
    println!("# benches/mqtt_throughput.rs: MQTT broker throughput and latency, our broker on {threads} thread(s)");
    conditions::print_conditions("mosquitto 2.0.11", reps, quick);
    // results[case][peer] = one Outcome per repetition
    let mut results: Vec<Vec<Vec<Outcome>>> = vec![vec![Vec::new(); peers.len()]; cases.len()];
    for rep in 0..reps {
        // Rotate who goes first: the machine's load drifts.
        for k in 0..peers.len() {
            let p = (k + rep) % peers.len();
            let broker = BrokerProcess::start(peers[p]);
            for (c, case) in cases.iter().enumerate() {
                let outcome = run_case(&broker, *case, &format!("r{rep}"));
                results[c][p].push(outcome);
            }
        }
    }
    println!("load average at end: {}", conditions::load_average());
    print_tables(&cases, &peers, &results);
}

/// What one run of a case measured.
#[derive(Clone, Debug, Default)]
struct Outcome {
    /// Messages published per second (all delivered).
    msgs_per_s: f64,
    /// Messages received by subscribers per second.
    deliveries_per_s: f64,
    /// Broker CPU per delivery, ns.
    cpu_ns_per_delivery: f64,
    /// Latency percentiles (p50, p99, p99.9, max), µs; latency case only.
    latency_us: Option<[f64; 4]>,
    /// Deliveries that never came.
    lost: u64,
}

fn median_of(xs: impl Iterator<Item = f64>) -> f64 {
    cpu::median(xs.collect())
}

fn print_tables(cases: &[Case], peers: &[Peer], results: &[Vec<Vec<Outcome>>]) {
    let mosq = peers.iter().position(|p| *p == Peer::Mosquitto);
    println!("\n## Throughput (medians)\n");
    print!("| case |");
    for p in peers {
        print!(" {} msg/s | deliveries/s | broker CPU ns/delivery |", p.name());
    }
    for p in peers.iter().filter(|p| **p != Peer::Mosquitto) {
        print!(" {} / mosquitto |", p.name());
    }
    println!();
    println!(
        "|---|{}",
        "---:|".repeat(peers.len() * 3 + peers.len().saturating_sub(1))
    );
    for (c, case) in cases.iter().enumerate().filter(|(_, c)| !c.latency) {
        let rate: Vec<f64> = (0..peers.len())
            .map(|p| median_of(results[c][p].iter().map(|o| o.msgs_per_s)))
            .collect();
        print!("| {} |", case.name);
        for p in 0..peers.len() {
            let lost: u64 = results[c][p].iter().map(|o| o.lost).sum();
            print!(
                " {:.0}{} | {:.0} | {:.0} |",
                rate[p],
                if lost > 0 {
                    format!(" ({lost} lost)")
                } else {
                    String::new()
                },
                median_of(results[c][p].iter().map(|o| o.deliveries_per_s)),
                median_of(results[c][p].iter().map(|o| o.cpu_ns_per_delivery)),
            );
        }
        if let Some(m) = mosq {
            let mcpu = median_of(results[c][m].iter().map(|o| o.cpu_ns_per_delivery));
            for (p, peer) in peers.iter().enumerate() {
                if *peer != Peer::Mosquitto {
                    let cpu = median_of(results[c][p].iter().map(|o| o.cpu_ns_per_delivery));
                    print!(" {:.2}x rate, {:.2}x less CPU |", rate[p] / rate[m], mcpu / cpu);
                }
            }
        }
        println!();
    }
    for (c, case) in cases.iter().enumerate().filter(|(_, c)| c.latency) {
        println!(
            "\n## End-to-end latency, {}: QoS 0, 1 -> 1, {} B at {LATENCY_RATE} msg/s, {} messages (medians of the runs' percentiles)\n",
            case.name, case.size, case.messages
        );
        println!("| broker | p50 µs | p99 µs | p99.9 µs | max µs |");
        println!("|---|---:|---:|---:|---:|");
        for (p, peer) in peers.iter().enumerate() {
            let pick = |i: usize| median_of(results[c][p].iter().filter_map(|o| o.latency_us.map(|l| l[i])));
            println!(
                "| {} | {:.0} | {:.0} | {:.0} | {:.0} |",
                peer.name(),
                pick(0),
                pick(1),
                pick(2),
                pick(3)
            );
        }
    }
}

/// One load-generator connection: decodes what the broker sends, counts deliveries and
/// acknowledgements, answers QoS 1 deliveries, records latencies on request.
struct LoadClient {
    codec: Codec,
    input: SegmentedBuffer,
    out: IoArena,
    connacked: bool,
    subacked: bool,
    received: u64,
    acked: u64,
    failed: bool,
    /// Record latencies: payloads start with the send instant, ns after `epoch`.
    record: bool,
    epoch: Instant,
    latencies_ns: Vec<u64>,
}

impl LoadClient {
    fn new(client_id: &str, epoch: Instant) -> LoadClient {
        let mut out = IoArena::new();
        out.put_slice(&connect_packet(client_id, 600));
        LoadClient {
            codec: Codec::client(ProtocolVersion::V3_1_1),
            input: SegmentedBuffer::new(),
            out,
            connacked: false,
            subacked: false,
            received: 0,
            acked: 0,
            failed: false,
            record: false,
            epoch,
            latencies_ns: Vec::new(),
        }
    }
}

impl Session for LoadClient {
    type Event = ();

    fn handle_input(&mut self, data: Bytes, now: Instant) {
        self.input.push(data);
        loop {
            match self.codec.decode(&mut self.input) {
                Ok(Some(Packet::ConnAck(_))) => self.connacked = true,
                Ok(Some(Packet::SubAck(_))) => self.subacked = true,
                Ok(Some(Packet::Publish(p))) => {
                    self.received += 1;
                    if p.qos == QoS::AtLeastOnce {
                        let _ = self
                            .codec
                            .encode(&Packet::PubAck(Ack::success(p.packet_id)), &mut self.out);
                    }
                    if self.record && p.payload.len() >= 8 {
                        let mut t = [0u8; 8];
                        t.copy_from_slice(&p.payload[..8]);
                        let sent = u64::from_le_bytes(t);
                        let at = now.saturating_duration_since(self.epoch).as_nanos() as u64;
                        self.latencies_ns.push(at.saturating_sub(sent));
                    }
                }
                Ok(Some(Packet::PubAck(_))) => self.acked += 1,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    self.failed = true;
                    break;
                }
            }
        }
    }

    fn handle_eof(&mut self, _now: Instant) {
        self.failed = true;
    }

    fn handle_timeout(&mut self, _now: Instant) {}

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        (!self.out.is_empty()).then_some(&mut self.out)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn poll_event(&mut self) -> Option<()> {
        None
    }

    fn is_closed(&self) -> bool {
        self.failed
    }
}

/// The load generator's driver and connections for one case.
struct Load {
    driver: AnyDriver<LoadClient>,
    publisher: ConnId,
    subscribers: Vec<ConnId>,
    activity: Vec<Activity>,
}

impl Load {
    fn turn(&mut self, deadline: Instant) {
        self.activity.clear();
        self.driver
            .turn(Some(deadline), &mut self.activity)
            .expect("load generator turn");
        for a in &self.activity {
            if let Activity::Closed { conn, error } = a {
                panic!("load generator connection {conn:?} closed: {error:?}");
            }
        }
    }

    fn client(&self, conn: ConnId) -> &LoadClient {
        self.driver.session(conn).expect("a load generator connection")
    }

    fn wait_for(&mut self, what: &str, mut done: impl FnMut(&Load) -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done(self) {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            self.turn(Instant::now() + Duration::from_millis(10));
        }
    }

    fn min_received(&self) -> u64 {
        self.subscribers
            .iter()
            .map(|&s| self.client(s).received)
            .min()
            .unwrap_or(0)
    }
}

fn connect(addr: SocketAddr, case: Case, tag: &str) -> Load {
    let epoch = Instant::now();
    let mut driver: AnyDriver<LoadClient> = AnyDriver::new(DriverKind::Uring).expect("load generator driver");
    let subscribers: Vec<ConnId> = (0..case.subscribers)
        .map(|i| {
            let mut c = LoadClient::new(&format!("sub-{tag}-{}-{i}", case.name), epoch);
            c.record = case.latency;
            c.out.put_slice(&subscribe_packet(TOPIC, case.qos));
            driver.connect(addr, c).expect("connect a subscriber")
        })
        .collect();
    let publisher = driver
        .connect(addr, LoadClient::new(&format!("pub-{tag}-{}", case.name), epoch))
        .expect("connect the publisher");
    let mut load = Load {
        driver,
        publisher,
        subscribers,
        activity: Vec::new(),
    };
    load.wait_for("CONNACKs and SUBACKs", |l| {
        l.client(l.publisher).connacked
            && l.subscribers.iter().all(|&s| {
                let c = l.client(s);
                c.connacked && c.subacked
            })
    });
    load
}

/// The publisher's packet, encoded once: where the payload (timestamp) and the packet
/// identifier sit in it.
struct Template {
    bytes: Vec<u8>,
    payload_at: usize,
    id_at: Option<usize>,
}

impl Template {
    fn new(case: Case) -> Template {
        let payload = vec![b'x'; case.size];
        let bytes = publish_packet(TOPIC, &payload, case.qos);
        let payload_at = bytes.len() - case.size;
        let id_at = (case.qos != QoS::AtMostOnce).then(|| payload_at - 2);
        Template {
            bytes,
            payload_at,
            id_at,
        }
    }

    /// Appends message number `n` stamped with `at_ns`.
    fn put(&mut self, out: &mut IoArena, n: u64, at_ns: u64) {
        if let Some(i) = self.id_at {
            let id = (n % 65_535 + 1) as u16;
            self.bytes[i..i + 2].copy_from_slice(&id.to_be_bytes());
        }
        if self.bytes.len() - self.payload_at >= 8 {
            self.bytes[self.payload_at..self.payload_at + 8].copy_from_slice(&at_ns.to_le_bytes());
        }
        out.put_slice(&self.bytes);
    }
}

fn run_case(broker: &BrokerProcess, case: Case, tag: &str) -> Outcome {
    let mut load = connect(broker.addr, case, tag);
    let mut template = Template::new(case);
    if case.latency {
        return run_latency(&mut load, &mut template, case);
    }
    // Warm up with a tenth of the messages, then time the rest from a clean start.
    let warm = case.messages / 10;
    pump(&mut load, &mut template, case, 0, warm);
    let cpu0 = broker.cpu();
    let t0 = Instant::now();
    let lost = pump(&mut load, &mut template, case, warm, warm + case.messages);
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = broker.cpu().saturating_sub(cpu0);
    let deliveries = case.messages * case.subscribers as u64;
    Outcome {
        msgs_per_s: case.messages as f64 / elapsed,
        deliveries_per_s: deliveries as f64 / elapsed,
        cpu_ns_per_delivery: cpu.as_nanos() as f64 / deliveries as f64,
        latency_us: None,
        lost,
    }
}

/// Publishes messages `from..to`, at most `WINDOW` ahead of the slowest subscriber (and,
/// at QoS 1, of the broker's acknowledgements), until every subscriber has them all or
/// nothing arrived for two seconds; returns the deliveries missing.
fn pump(load: &mut Load, template: &mut Template, case: Case, from: u64, to: u64) -> u64 {
    let mut sent = from;
    let mut last_progress = (Instant::now(), load.min_received());
    loop {
        let received = load.min_received();
        if received >= to {
            return 0;
        }
        if received != last_progress.1 {
            last_progress = (Instant::now(), received);
        } else if last_progress.0.elapsed() > Duration::from_secs(2) {
            return load
                .subscribers
                .iter()
                .map(|&s| to.saturating_sub(load.client(s).received))
                .sum();
        }
        let acked = load.client(load.publisher).acked;
        let floor = if case.qos == QoS::AtMostOnce {
            received
        } else {
            received.min(acked)
        };
        let room = (floor + WINDOW).saturating_sub(sent).min(to - sent);
        if room > 0 {
            let publisher = load.publisher;
            let client = load.driver.session_for_output(publisher).expect("the publisher");
            for _ in 0..room {
                template.put(&mut client.out, sent, 0);
                sent += 1;
            }
        }
        load.turn(Instant::now() + Duration::from_millis(100));
    }
}

/// Sends `case.messages` at `LATENCY_RATE`, each stamped with its scheduled instant.
fn run_latency(load: &mut Load, template: &mut Template, case: Case) -> Outcome {
    let epoch = load.client(load.publisher).epoch;
    let interval_ns = 1_000_000_000 / LATENCY_RATE;
    let start = Instant::now() + Duration::from_millis(10);
    let mut sent = 0u64;
    let sub = load.subscribers[0];
    while sent < case.messages {
        let now = Instant::now();
        let due = if now < start {
            0
        } else {
            ((now - start).as_nanos() as u64 / interval_ns + 1).min(case.messages)
        };
        if due > sent {
            let publisher = load.publisher;
            let client = load.driver.session_for_output(publisher).expect("the publisher");
            while sent < due {
                let scheduled = start + Duration::from_nanos(sent * interval_ns);
                let at_ns = scheduled.saturating_duration_since(epoch).as_nanos() as u64;
                template.put(&mut client.out, sent, at_ns);
                sent += 1;
            }
        }
        let next = start + Duration::from_nanos(sent * interval_ns);
        load.turn(next);
    }
    load.wait_for("the last latency messages", |l| l.client(sub).received >= case.messages);
    let mut lat = std::mem::take(&mut load.driver.session_for_output(sub).expect("subscriber").latencies_ns);
    lat.sort_unstable();
    let pct = |p: f64| lat[((lat.len() as f64 * p) as usize).min(lat.len() - 1)] as f64 / 1000.0;
    Outcome {
        latency_us: Some([pct(0.50), pct(0.99), pct(0.999), pct(1.0)]),
        ..Outcome::default()
    }
}
