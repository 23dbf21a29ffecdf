//! MQTT over WebSocket against clients nobody here wrote: paho-mqtt's websocket
//! transport (Debian `python3-paho-mqtt` or PyPI `paho-mqtt`), 3.1.1 and 5.0, with
//! `mosquitto_sub`/`mosquitto_pub` on the TCP listener of the same broker, on both
//! drivers; and a raw WebSocket client written here for what no polite client sends
//! (frames that break RFC 6455, one message cut into hundreds of frames).
//!
//! The broker runs in a thread of the test with both listeners on free loopback ports.
//! Subscribers print a line once subscribed, and the test publishes only after it, so
//! nothing depends on a sleep.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::mqtt::{Broker, Stopper};
use monocoque::proto::mqtt::{Codec, Connect, Packet, Properties, ProtocolVersion, Publish, QoS};
use monocoque::proto::ws::frame::{encode_frame, encode_header, mask_payload};
use monocoque::proto::ws::{Close, CloseCode, Frame, FrameDecoder, Opcode, Role};
use monocoque::proto::{IoArena, SegmentedBuffer};
use sha2::{Digest, Sha256};

/// How long one step may take on a loaded machine before the test calls it a hang.
const PATIENCE: Duration = Duration::from_secs(30);

both_drivers! {
    paho_ws_publishes_reach_tcp_subscribers => ws_to_tcp_uring, ws_to_tcp_mio;
    tcp_publishes_reach_paho_ws_subscribers => tcp_to_ws_uring, tcp_to_ws_mio;
    malformed_frames_close_with_their_status => malformed_uring, malformed_mio;
    a_large_message_split_over_many_frames => large_uring, large_mio;
    refused_handshakes_get_http_errors => refused_uring, refused_mio;
    cli_ws_listen_serves_paho => cli_uring, cli_mio;
}

/// Our broker on its own thread with a TCP and a WebSocket listener.
struct OurBroker {
    tcp: SocketAddr,
    ws: SocketAddr,
    stopper: Stopper,
    thread: Option<JoinHandle<()>>,
}

impl OurBroker {
    fn start(kind: DriverKind) -> Self {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::spawn(move || {
            let any = SocketAddr::from(([127, 0, 0, 1], 0));
            let mut broker = Broker::bind(any, kind).expect("bind the broker");
            let ws = broker.listen_websocket(any).expect("bind the websocket listener");
            let tcp = broker.local_addr().expect("the broker's address");
            assert_eq!(broker.websocket_addr().map(|a| a.expect("bound")), Some(ws));
            let stopper = broker.stopper().expect("a stopper");
            tx.send((tcp, ws, stopper)).expect("hand over the addresses");
            broker.run().expect("the broker runs until stopped");
        });
        let (tcp, ws, stopper) = rx.recv_timeout(PATIENCE).expect("the broker started");
        OurBroker {
            tcp,
            ws,
            stopper,
            thread: Some(thread),
        }
    }
}

impl Drop for OurBroker {
    fn drop(&mut self) {
        let _ = self.stopper.stop();
        if let Some(t) = self.thread.take() {
            let joined = t.join();
            if !std::thread::panicking() {
                joined.expect("the broker thread ended cleanly");
            }
        }
    }
}

fn paho(args: &[&str]) -> Command {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/paho_ws.py");
    let mut cmd = Command::new(support::paho_python());
    cmd.arg(script).args(args);
    cmd
}

/// A child process whose output lines (stdout and stderr) arrive on a channel.
struct Proc {
    name: &'static str,
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(name: &'static str, mut cmd: Command) -> Proc {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {name}: {e}"));
        let (tx, lines) = mpsc::channel();
        let stdout = child.stdout.take().expect("piped stdout");
        let tx2 = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx2.send(format!("stderr: {line}"));
            }
        });
        Proc {
            name,
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits for an output line containing `needle`.
    fn wait_for(&mut self, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                let hit = line.contains(needle);
                self.seen.push(line);
                if hit {
                    return;
                }
            }
        }
        panic!("no {needle:?} from {}: {:#?}", self.name, self.seen);
    }

    /// Waits for a successful exit; returns the lines starting with `MSG|`.
    fn messages(mut self) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("poll the child") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not finish: {:#?}",
                self.name,
                self.seen
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(line);
        }
        assert!(status.success(), "{} failed ({status}): {:#?}", self.name, self.seen);
        self.seen.iter().filter(|l| l.starts_with("MSG|")).cloned().collect()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `mosquitto_sub` on the TCP listener, printing `MSG|topic|qos|length|hex payload`,
/// once its SUBACK is in.
fn mosquitto_sub(port: u16, args: &[&str]) -> Proc {
    let mut cmd = Command::new(support::require_binary("stdbuf", "coreutils"));
    cmd.arg("-oL")
        .arg(support::require_binary("mosquitto_sub", "mosquitto-clients"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-d", "-W", "30"])
        .args(["-F", "MSG|%t|%q|%l|%x"])
        .args(args);
    let mut sub = Proc::spawn("mosquitto_sub", cmd);
    sub.wait_for("received SUBACK");
    sub
}

/// Runs `mosquitto_pub` with `args`, the message read from standard input (`-s`).
fn mosquitto_pub(port: u16, args: &[&str], message: &[u8]) {
    let mut child = Command::new(support::require_binary("mosquitto_pub", "mosquitto-clients"))
        .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-s"])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run mosquitto_pub");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(message).expect("write the message");
    drop(stdin);
    let out = child.wait_with_output().expect("mosquitto_pub ends");
    assert!(
        out.status.success(),
        "mosquitto_pub {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha256(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// The payload paho's `size:N` stands for.
fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

/// paho publishes over WebSocket (3.1, 3.1.1 then 5.0), `mosquitto_sub` receives on TCP.
fn paho_ws_publishes_reach_tcp_subscribers(kind: DriverKind) {
    let broker = OurBroker::start(kind);
    for version in ["31", "311", "5"] {
        let topic = format!("ws/to/tcp/{version}");
        let sub = mosquitto_sub(broker.tcp.port(), &["-V", "5", "-q", "1", "-t", &topic, "-C", "2"]);
        let mut publisher = Proc::spawn(
            "paho publisher",
            paho(&[
                "pub",
                &broker.ws.port().to_string(),
                version,
                &topic,
                "hello over websocket",
            ]),
        );
        publisher.wait_for("CONNACK 0");
        publisher.wait_for("PUBLISHED 20");
        // A second one, larger than one TCP read, with every byte value.
        let mut big = Proc::spawn(
            "paho publisher",
            paho(&["pub", &broker.ws.port().to_string(), version, &topic, "size:100000"]),
        );
        big.wait_for("PUBLISHED");
        let got = sub.messages();
        assert_eq!(
            got,
            vec![
                format!("MSG|{topic}|1|20|{}", hex(b"hello over websocket")),
                format!("MSG|{topic}|1|100000|{}", hex(&pattern(100_000))),
            ],
            "version {version}"
        );
    }
}

/// `mosquitto_pub` publishes on TCP, paho receives over WebSocket (3.1.1 then 5.0).
fn tcp_publishes_reach_paho_ws_subscribers(kind: DriverKind) {
    let broker = OurBroker::start(kind);
    for version in ["311", "5"] {
        let topic = format!("tcp/to/ws/{version}");
        let mut sub = Proc::spawn(
            "paho subscriber",
            paho(&["sub", &broker.ws.port().to_string(), version, "tcp/to/ws/#", "2"]),
        );
        sub.wait_for("CONNACK 0");
        sub.wait_for("SUBACK");
        let port = broker.tcp.port();
        mosquitto_pub(port, &["-V", "311", "-q", "1", "-t", &topic], b"from tcp");
        let big = pattern(320_000);
        mosquitto_pub(port, &["-V", "5", "-q", "0", "-t", &topic], &big);
        assert_eq!(
            sub.messages(),
            vec![
                format!("MSG|{topic}|1|8|{}", sha256(b"from tcp")),
                format!("MSG|{topic}|0|{}|{}", big.len(), sha256(&big)),
            ],
            "version {version}"
        );
    }
}

const REQUEST: &str = "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// A raw WebSocket client over a blocking socket.
struct RawWs {
    stream: TcpStream,
    input: SegmentedBuffer,
    decoder: FrameDecoder,
}

impl RawWs {
    /// Connects and sends `request`; returns the client and the response head.
    fn handshake(addr: SocketAddr, request: &str) -> (RawWs, String) {
        let mut stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).expect("a read timeout");
        stream.write_all(request.as_bytes()).expect("send the request");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match stream.read(&mut byte) {
                Ok(1) => head.push(byte[0]),
                other => panic!("the response head ended early ({other:?}): {head:?}"),
            }
        }
        let ws = RawWs {
            stream,
            input: SegmentedBuffer::new(),
            decoder: FrameDecoder::new(Role::Client, 1 << 30),
        };
        (ws, String::from_utf8_lossy(&head).into_owned())
    }

    fn open(addr: SocketAddr) -> RawWs {
        let (ws, head) = RawWs::handshake(addr, REQUEST);
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        assert!(
            head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
            "{head}"
        );
        assert!(head.contains("Sec-WebSocket-Protocol: mqtt\r\n"), "{head}");
        ws
    }

    fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// The next frame from the server, or `None` at the end of the stream.
    fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some(f) = self
                .decoder
                .decode(&mut self.input)
                .expect("the server's frames decode")
            {
                return Some(f);
            }
            let mut buf = vec![0u8; 65536];
            match self.stream.read(&mut buf) {
                Ok(0) => return None,
                Ok(n) => self.input.push_slice(&buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
                Err(e) => panic!("read: {e}"),
            }
        }
    }

    /// The MQTT bytes of the next data frames until `n` bytes arrived.
    fn mqtt_bytes(&mut self, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < n {
            match self.next() {
                Some(Frame::Data {
                    text: false, payload, ..
                }) => out.extend_from_slice(&payload),
                other => panic!("expected binary data, got {other:?}"),
            }
        }
        out
    }
}

fn mqtt(packet: Packet) -> Vec<u8> {
    let mut codec = Codec::client(ProtocolVersion::V5);
    let mut out = IoArena::new();
    codec.encode(&packet, &mut out).expect("encodes");
    out.to_vec()
}

fn connect(client_id: &'static str) -> Packet {
    Packet::Connect(Box::new(Connect {
        protocol: ProtocolVersion::V5,
        clean_start: true,
        keep_alive: 0,
        properties: Properties::default(),
        client_id: Bytes::from_static(client_id.as_bytes()),
        will: None,
        username: None,
        password: None,
    }))
}

fn masked(fin: bool, opcode: Opcode, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(fin, opcode, payload, Some([0x5a, 0x01, 0xc3, 0x7e]), &mut out);
    out
}

/// Frames that break RFC 6455 close the connection with the status the RFC gives, and
/// the broker goes on serving: nothing was reserved for a length it refused.
fn malformed_frames_close_with_their_status(kind: DriverKind) {
    let broker = OurBroker::start(kind);
    let cases: Vec<(&str, Vec<u8>, CloseCode)> = vec![
        // Section 5.1: "a server MUST close the connection upon receiving a frame that
        // is not masked" (status 1002, section 7.4.1).
        (
            "section 5.1, unmasked",
            vec![0x82, 0x02, 0x10, 0x00],
            CloseCode::PROTOCOL_ERROR,
        ),
        // Section 5.2 (63-bit length) and 10.4 (limits): 2^62 bytes announced in a
        // ten-byte header, refused with 1009 before any payload or mask is sent.
        (
            "section 10.4, oversized",
            vec![0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0],
            CloseCode::MESSAGE_TOO_BIG,
        ),
        // Section 5.2: the most significant bit of a 64-bit length must be 0.
        (
            "section 5.2, 64-bit length high bit",
            vec![0x82, 0xFF, 0x80, 0, 0, 0, 0, 0, 0, 1],
            CloseCode::PROTOCOL_ERROR,
        ),
        // Section 5.2: RSV1 without a negotiated extension.
        (
            "section 5.2, RSV1",
            vec![0xC2, 0x80, 1, 2, 3, 4],
            CloseCode::PROTOCOL_ERROR,
        ),
        // Section 5.5: a control frame over 125 bytes.
        (
            "section 5.5, long ping",
            masked(true, Opcode::Ping, &[0u8; 126]),
            CloseCode::PROTOCOL_ERROR,
        ),
        // Section 5.4: a continuation with no message to continue.
        (
            "section 5.4, orphan continuation",
            masked(true, Opcode::Continuation, b"x"),
            CloseCode::PROTOCOL_ERROR,
        ),
        // Section 7.4.1 with [MQTT-6.0.0-1]: text frames are data MQTT cannot accept.
        (
            "MQTT-6.0.0-1, text",
            masked(true, Opcode::Text, b"\x10"),
            CloseCode::UNSUPPORTED_DATA,
        ),
    ];
    for (what, wire, code) in cases {
        let mut ws = RawWs::open(broker.ws);
        ws.send(&wire);
        assert_eq!(
            ws.next(),
            Some(Frame::Close(Some(Close {
                code,
                reason: Bytes::new()
            }))),
            "{what}"
        );
        assert_eq!(
            ws.next(),
            None,
            "{what}: the server closes the connection after its close frame"
        );
    }
    // Still serving: a whole CONNECT/CONNACK over WebSocket.
    let mut ws = RawWs::open(broker.ws);
    ws.send(&masked(true, Opcode::Binary, &mqtt(connect("after"))));
    let connack = ws.mqtt_bytes(3);
    assert_eq!(connack[0], 0x20, "a CONNACK: {connack:?}");
    // A close from the client is echoed (section 5.5.1), then the server closes.
    ws.send(&masked(true, Opcode::Close, &1000u16.to_be_bytes()));
    let mut echoed = None;
    while let Some(frame) = ws.next() {
        if let Frame::Close(c) = frame {
            echoed = c;
        }
    }
    assert_eq!(echoed.map(|c| c.code), Some(CloseCode::NORMAL));
}

/// One 300 kB PUBLISH cut into 300 WebSocket frames (one fragmented message of 150
/// frames, then 150 single-frame messages, with pings between), received whole by
/// `mosquitto_sub` on TCP; and its echo to a WebSocket subscriber, reassembled here.
fn a_large_message_split_over_many_frames(kind: DriverKind) {
    let broker = OurBroker::start(kind);
    let payload = pattern(300_000);
    let sub = mosquitto_sub(broker.tcp.port(), &["-V", "5", "-t", "big/one", "-C", "1"]);

    let mut reader = RawWs::open(broker.ws);
    reader.send(&masked(true, Opcode::Binary, &mqtt(connect("big-reader"))));
    assert_eq!(reader.mqtt_bytes(3)[0], 0x20);
    let subscribe = monocoque::proto::mqtt::Subscribe {
        packet_id: 1,
        properties: Properties::default(),
        subscriptions: vec![monocoque::proto::mqtt::Subscription {
            filter: Bytes::from_static(b"big/one"),
            options: Default::default(),
        }],
    };
    reader.send(&masked(true, Opcode::Binary, &mqtt(Packet::Subscribe(subscribe))));
    assert_eq!(reader.mqtt_bytes(3)[0], 0x90, "a SUBACK");

    let mut writer = RawWs::open(broker.ws);
    let publish = Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: Bytes::from_static(b"big/one"),
        packet_id: 0,
        properties: Properties::default(),
        payload: Bytes::from(payload.clone()),
    });
    let wire = [mqtt(connect("big-writer")), mqtt(publish)].concat();
    let pieces: Vec<&[u8]> = wire.chunks(wire.len().div_ceil(300)).collect();
    assert!(pieces.len() >= 290);
    let mut out = Vec::new();
    let half = pieces.len() / 2;
    for (i, piece) in pieces.iter().enumerate() {
        let (fin, opcode) = match i {
            0 => (false, Opcode::Binary),
            i if i < half - 1 => (false, Opcode::Continuation),
            i if i == half - 1 => (true, Opcode::Continuation),
            _ => (true, Opcode::Binary),
        };
        // The header, then the payload masked with a key of its own.
        let key = [i as u8, 0x33, (i >> 8) as u8, 0xa5];
        out.extend_from_slice(&encode_header(fin, opcode, piece.len() as u64, Some(key)));
        let mut body = piece.to_vec();
        mask_payload(&mut body, key);
        out.extend_from_slice(&body);
        if i % 50 == 25 {
            out.extend(masked(true, Opcode::Ping, b"still here"));
        }
    }
    writer.send(&out);

    let got = sub.messages();
    assert_eq!(got, vec![format!("MSG|big/one|0|300000|{}", hex(&payload))]);
    // The writer got its CONNACK and a pong per ping (answered as they came, so
    // possibly before the CONNACK the broker sends once it has seen the CONNECT).
    let (mut pongs, mut data) = (0, Vec::new());
    while pongs < 6 || data.len() < 3 {
        match writer.next() {
            Some(Frame::Pong(p)) => {
                assert_eq!(&p[..], b"still here");
                pongs += 1;
            }
            Some(Frame::Data {
                text: false, payload, ..
            }) => data.extend_from_slice(&payload),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((pongs, data[0]), (6, 0x20));
    // The WebSocket reader gets the message whole.
    let mut codec = Codec::client(ProtocolVersion::V5);
    let mut src = SegmentedBuffer::new();
    let message = loop {
        match codec.decode(&mut src).expect("a valid packet") {
            Some(Packet::Publish(p)) => break p,
            Some(other) => panic!("{other:?}"),
            None => match reader.next() {
                Some(Frame::Data { payload, .. }) => src.push(payload),
                other => panic!("{other:?}"),
            },
        }
    };
    assert_eq!(&message.topic[..], b"big/one");
    assert_eq!(message.payload.len(), payload.len());
    assert!(message.payload[..] == payload[..]);
}

/// Section 4.2.1 / 4.4: a request the server cannot accept gets an HTTP error and the
/// connection closes; a wrong version names the one it speaks.
fn refused_handshakes_get_http_errors(kind: DriverKind) {
    let broker = OurBroker::start(kind);
    for (request, status) in [
        (REQUEST.replace("Version: 13", "Version: 8"), "HTTP/1.1 426 "),
        (REQUEST.replace("Protocol: mqtt", "Protocol: chat"), "HTTP/1.1 400 "),
        (REQUEST.replace("Upgrade: websocket\r\n", ""), "HTTP/1.1 400 "),
    ] {
        let (mut ws, head) = RawWs::handshake(broker.ws, &request);
        assert!(head.starts_with(status), "{head}");
        if status.contains("426") {
            assert!(head.contains("Sec-WebSocket-Version: 13\r\n"), "{head}");
        }
        assert_eq!(ws.next(), None, "the connection closes after a refusal");
    }
    // MQTT on the WebSocket port without the upgrade is refused the same way.
    let mut raw = TcpStream::connect(broker.ws).expect("connect");
    raw.set_read_timeout(Some(PATIENCE)).expect("a read timeout");
    raw.write_all(&mqtt(connect("plain"))).expect("send");
    raw.write_all(b"\r\n\r\n").expect("send");
    let mut answer = Vec::new();
    let _ = raw.read_to_end(&mut answer);
    assert!(
        answer.starts_with(b"HTTP/1.1 400 "),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
}

/// `monocoque mqtt broker --ws-listen`: paho publishes over WebSocket, `mosquitto_sub`
/// gets it on the TCP listener.
fn cli_ws_listen_serves_paho(kind: DriverKind) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_monocoque"))
        .args([
            "mqtt",
            "broker",
            "--no-store",
            "--listen",
            "127.0.0.1:0",
            "--ws-listen",
            "127.0.0.1:0",
        ])
        .args(["--driver", kind.name()])
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn monocoque mqtt broker");
    let stderr = child.stderr.take().expect("piped stderr");
    let guard = KillOnDrop(child);
    let mut lines = BufReader::new(stderr).lines().map_while(Result::ok);
    let mut addr = |prefix: &str| -> SocketAddr {
        let line = lines.next().unwrap_or_default();
        line.strip_prefix(prefix)
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("expected {prefix:?}, got {line:?}"))
    };
    let tcp = addr("listening on ");
    let ws = addr("websocket listening on ");
    let sub = mosquitto_sub(tcp.port(), &["-V", "311", "-t", "cli/ws", "-C", "1"]);
    let mut publisher = Proc::spawn(
        "paho publisher",
        paho(&["pub", &ws.port().to_string(), "5", "cli/ws", "hi"]),
    );
    publisher.wait_for("PUBLISHED");
    assert_eq!(sub.messages(), vec![format!("MSG|cli/ws|0|2|{}", hex(b"hi"))]);
    drop(guard);
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
