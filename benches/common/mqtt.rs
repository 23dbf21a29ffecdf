//! What the MQTT benchmarks share: the brokers under test as child processes (ours, by
//! re-running this benchmark's own binary in broker mode, mosquitto, and rumqttd when
//! `scripts/install-rumqttd` built it), their memory and CPU from `/proc`, and MQTT 3.1.1
//! packets encoded with the proto codec.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::mqtt::{Broker, BrokerCluster, ClusterOptions};
use monocoque::proto::mqtt::broker::Access;
use monocoque::proto::mqtt::{Codec, Connect, Packet, Properties, ProtocolVersion, Publish, QoS, Subscribe};
use monocoque::proto::mqtt::{Subscription, SubscriptionOptions};
use monocoque::proto::IoArena;

/// The argument that turns a benchmark binary into one of our brokers.
pub const BROKER_CHILD: &str = "--broker-child";

/// Driver threads our broker children run (`BrokerCluster` above 1); set before
/// starting them (`mqtt_throughput --threads N`).
pub static BROKER_THREADS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);

/// A broker under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// `monocoque::mqtt::Broker` on one driver thread.
    Ours(DriverKind),
    /// mosquitto (single-threaded).
    Mosquitto,
    /// rumqttd 0.20 (Rust, tokio: a router thread and a thread per listener), the
    /// second peer: run where its binary is found ([`rumqttd_binary`]).
    Rumqttd,
}

impl Peer {
    /// Every broker this machine can run, in table order: ours on each driver,
    /// mosquitto, and rumqttd if [`rumqttd_binary`] finds it (a note says so if not).
    pub fn all() -> Vec<Peer> {
        let mut peers = vec![
            Peer::Ours(DriverKind::Uring),
            Peer::Ours(DriverKind::Mio),
            Peer::Mosquitto,
        ];
        match rumqttd_binary() {
            Some(_) => peers.push(Peer::Rumqttd),
            None => println!(
                "note: rumqttd not found (RUMQTTD, PATH, target/peers/bin): its column is left out; \
                 scripts/install-rumqttd builds it (about 4 minutes of CPU)"
            ),
        }
        peers
    }

    /// The name in the tables (and for `--only`).
    pub fn name(self) -> &'static str {
        match self {
            Peer::Ours(DriverKind::Uring) => "monocoque io_uring",
            Peer::Ours(DriverKind::Mio) => "monocoque mio",
            Peer::Mosquitto => "mosquitto",
            Peer::Rumqttd => "rumqttd",
        }
    }
}

/// The rumqttd executable: `$RUMQTTD`, else `rumqttd` on `PATH`, else where
/// `scripts/install-rumqttd` puts it (`target/peers/bin/rumqttd`).
pub fn rumqttd_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("RUMQTTD") {
        return Some(PathBuf::from(path));
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("rumqttd"))
            .find(|candidate| candidate.is_file())
    });
    on_path.or_else(|| {
        let installed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/peers/bin/rumqttd");
        installed.is_file().then_some(installed)
    })
}

/// If this process was started as a broker child (`--broker-child uring|mio`), runs the
/// broker until killed and never returns; otherwise returns.
pub fn maybe_run_broker_child() {
    let args: Vec<String> = std::env::args().collect();
    let Some(i) = args.iter().position(|a| a == BROKER_CHILD) else {
        return;
    };
    let kind: DriverKind = args[i + 1].parse().expect("a driver name");
    let threads: usize = args.get(i + 2).and_then(|t| t.parse().ok()).unwrap_or(1);
    if threads > 1 {
        // No $SYS and no store: the same work as the one-thread broker, spread.
        let mut options = ClusterOptions::new(threads, kind);
        options.sys_interval = None;
        let cluster = BrokerCluster::start("127.0.0.1:0".parse().unwrap(), options, |_| Access::default())
            .expect("start the cluster");
        println!("listening {}", cluster.local_addr());
        std::io::stdout().flush().expect("flush stdout");
        cluster.join().expect("cluster run");
        std::process::exit(0);
    }
    let mut broker = Broker::bind("127.0.0.1:0".parse().unwrap(), kind).expect("bind the broker");
    let addr = broker.local_addr().expect("local address");
    println!("listening {addr}");
    std::io::stdout().flush().expect("flush stdout");
    broker.run().expect("broker run");
    std::process::exit(0);
}

/// Raises this process's open-file limit to its hard limit (children inherit it).
pub fn raise_nofile() -> u64 {
    // SAFETY: `rlimit` is plain old data; get/setrlimit only read and write it.
    unsafe {
        let mut lim: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
        lim.rlim_cur
    }
}

/// A broker child process, killed on drop.
pub struct BrokerProcess {
    child: Child,
    /// Where clients connect.
    pub addr: SocketAddr,
    /// Its process id, for `/proc`.
    pub pid: u32,
    dir: Option<PathBuf>,
    _stdout: Option<ChildStdout>,
}

impl BrokerProcess {
    /// Starts `peer` on a free loopback port and waits until it answers a `CONNECT`.
    pub fn start(peer: Peer) -> BrokerProcess {
        match peer {
            Peer::Ours(kind) => Self::ours(kind),
            Peer::Mosquitto => Self::mosquitto(),
            Peer::Rumqttd => Self::rumqttd(),
        }
    }

    fn ours(kind: DriverKind) -> BrokerProcess {
        let exe = std::env::current_exe().expect("this benchmark's path");
        let threads = BROKER_THREADS.load(std::sync::atomic::Ordering::Relaxed);
        let mut child = Command::new(exe)
            .arg(BROKER_CHILD)
            .arg(kind.name())
            .arg(threads.to_string())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the broker child");
        let mut stdout = BufReader::new(child.stdout.take().expect("child stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("the broker's address line");
        let addr: SocketAddr = line
            .trim()
            .strip_prefix("listening ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("unexpected line from the broker child: {line:?}"));
        let pid = child.id();
        let broker = BrokerProcess {
            child,
            addr,
            pid,
            dir: None,
            _stdout: Some(stdout.into_inner()),
        };
        assert!(broker.answers(), "our broker does not answer CONNECT");
        broker
    }

    fn mosquitto() -> BrokerProcess {
        Self::configured(
            "mosquitto",
            "mosquitto.conf",
            |port| {
                format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_type none\nlog_dest none\nmax_connections -1\nset_tcp_nodelay true\n")
            },
            |config| {
                let mut command = Command::new("mosquitto");
                command.arg("-c").arg(config);
                command
            },
        )
    }

    /// rumqttd with one MQTT 3.1.1 listener, no console, metrics or WebSocket, room for
    /// the memory bench's connections, and an inflight window above the benches' 500.
    fn rumqttd() -> BrokerProcess {
        let binary = rumqttd_binary().expect("rumqttd (scripts/install-rumqttd)");
        Self::configured(
            "rumqttd",
            "rumqttd.toml",
            |port| {
                format!(
                    "id = 0\n[router]\nid = 0\nmax_connections = 20000\nmax_outgoing_packet_count = 200\n\
                 max_segment_size = 104857600\nmax_segment_count = 10\n\
                 [v4.1]\nname = \"v4-1\"\nlisten = \"127.0.0.1:{port}\"\nnext_connection_delay_ms = 0\n\
                 [v4.1.connections]\nconnection_timeout_ms = 60000\nmax_payload_size = 20480\n\
                 max_inflight_count = 1000\ndynamic_filters = true\n"
                )
            },
            |config| {
                let mut command = Command::new(&binary);
                command.arg("-q").arg("-c").arg(config);
                command
            },
        )
    }

    /// Starts a broker configured by a file: `config(port)` is written to `file` in a
    /// fresh directory and `command(path)` started, on another free port if the broker
    /// exits (it lost the port to someone else) or does not answer within 10 s.
    fn configured(
        name: &str,
        file: &str,
        config: impl Fn(u16) -> String,
        command: impl Fn(&std::path::Path) -> Command,
    ) -> BrokerProcess {
        for attempt in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .expect("a free port");
            let dir =
                std::env::temp_dir().join(format!("monocoque-mqtt-bench-{name}-{}-{attempt}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("temp dir");
            let path = dir.join(file);
            std::fs::write(&path, config(port)).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            let child = command(&path)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
            let pid = child.id();
            let mut broker = BrokerProcess {
                child,
                addr: SocketAddr::from(([127, 0, 0, 1], port)),
                pid,
                dir: Some(dir),
                _stdout: None,
            };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = broker.child.try_wait() {
                    break; // lost the port to someone else: try another
                }
                if broker.answers() {
                    return broker;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("{name} did not start");
    }

    /// Whether a fresh connection gets a `CONNACK`.
    fn answers(&self) -> bool {
        for _ in 0..100 {
            if let Ok(mut s) = TcpStream::connect(self.addr) {
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let mut ack = [0u8; 4];
                if s.write_all(&connect_packet("bench-probe", 600)).is_ok()
                    && s.read_exact(&mut ack).is_ok()
                    && ack[0] == 0x20
                {
                    let _ = s.write_all(&[0xE0, 0]);
                    return true;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Resident set size, bytes (`VmRSS` of `/proc/PID/status`).
    pub fn rss(&self) -> u64 {
        status_kb(self.pid, "VmRSS:") * 1024
    }

    /// User + system CPU time the broker has used so far.
    pub fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).unwrap_or_default();
        // The fields after the command name (which may hold spaces) end with ')'.
        let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = [11, 12]
            .iter()
            .filter_map(|&i| fields.get(i).and_then(|f| f.parse::<u64>().ok()))
            .sum();
        // SAFETY: sysconf takes no pointers.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
        Duration::from_nanos(ticks * 1_000_000_000 / hz)
    }
}

impl Drop for BrokerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// A `kB` field of `/proc/PID/status` (0 if missing).
pub fn status_kb(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Encodes `packet` as a 3.1.1 client would send it.
pub fn encode(packet: &Packet) -> Vec<u8> {
    let mut codec = Codec::client(ProtocolVersion::V3_1_1);
    let mut arena = IoArena::new();
    codec.encode(packet, &mut arena).expect("encode");
    arena.to_vec()
}

/// A 3.1.1 `CONNECT` with Clean Session and `keep_alive` seconds (the benches ask for
/// 600: long enough for any run, and rumqttd refuses 0 with `ZeroKeepAlive`).
pub fn connect_packet(client_id: &str, keep_alive: u16) -> Vec<u8> {
    encode(&Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V3_1_1,
        clean_start: true,
        keep_alive,
        properties: Properties::default(),
        client_id: Bytes::copy_from_slice(client_id.as_bytes()),
        will: None,
        username: None,
        password: None,
    })))
}

/// A `SUBSCRIBE` to `filter` at `qos`.
pub fn subscribe_packet(filter: &str, qos: QoS) -> Vec<u8> {
    encode(&Packet::Subscribe(Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        subscriptions: vec![Subscription {
            filter: Bytes::copy_from_slice(filter.as_bytes()),
            options: SubscriptionOptions {
                qos,
                ..SubscriptionOptions::default()
            },
        }],
    }))
}

/// A `PUBLISH` of `payload` to `topic` (packet identifier 1 for QoS 1 and 2).
pub fn publish_packet(topic: &str, payload: &[u8], qos: QoS) -> Vec<u8> {
    encode(&Packet::Publish(Publish {
        dup: false,
        qos,
        retain: false,
        topic: Bytes::copy_from_slice(topic.as_bytes()),
        packet_id: if qos == QoS::AtMostOnce { 0 } else { 1 },
        properties: Properties::default(),
        payload: Bytes::copy_from_slice(payload),
    }))
}
