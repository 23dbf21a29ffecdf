//! The ZMTP engine against libzmq (through pyzmq), on both drivers: our handshake and
//! frames, run by `monocoque_proto::zmtp::Connection` sessions, with a Python peer
//! started by each test on a free loopback port.
//!
//! - our DEALER connects to a libzmq ROUTER: NULL handshake, a multipart message and
//!   the reply the ROUTER routes back by identity;
//! - the same over PLAIN against a libzmq PLAIN server whose ZAP handler is pyzmq's
//!   `ThreadAuthenticator`: the right password is let in, a wrong one refused with the
//!   `ERROR` libzmq sends (ZAP status 400);
//! - a libzmq DEALER connects to our ROUTER: its identity, its message, our reply.
//!
//! pyzmq comes from Debian's `python3-zmq` (scripts/test installs it) or PyPI; a
//! missing pyzmq fails the test, it never passes without its peer.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::{AnyDriver, DriverKind};
use monocoque::proto::zmtp::{Connection, ConnectionConfig, Event, HandshakeConfig, Mechanism, SocketType, ZmtpError};
use monocoque::proto::{Activity, ConnId, Driver, Session};

/// How long a step that takes milliseconds may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// The Python peer. `router MODE`: binds a ROUTER on a free loopback port (printed first)
/// and answers every message `[id, frames...]` with `[id, b"reply", frames...]`; MODE
/// `plain` makes it a PLAIN server whose ZAP handler knows admin/secret. `dealer PORT`:
/// a DEALER with identity `py-dealer` connects, sends `["", "hello", 300 x "x"]`, prints
/// the reply's frames in hex, comma separated, and exits.
const PEER: &str = r#"
import sys, zmq
ctx = zmq.Context()
role = sys.argv[1]
if role == "router":
    if sys.argv[2] == "plain":
        from zmq.auth.thread import ThreadAuthenticator
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_plain(domain="*", passwords={"admin": "secret"})
    s = ctx.socket(zmq.ROUTER)
    if sys.argv[2] == "plain":
        s.plain_server = True
    s.linger = 0
    s.rcvtimeo = 60000
    port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    while True:
        ident, *frames = s.recv_multipart()
        s.send_multipart([ident, b"reply"] + frames)
else:
    s = ctx.socket(zmq.DEALER)
    s.linger = 1000
    s.rcvtimeo = 60000
    s.identity = b"py-dealer"
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    s.send_multipart([b"", b"hello", b"x" * 300])
    print(",".join(f.hex() for f in s.recv_multipart()), flush=True)
"#;

/// A Python interpreter that has pyzmq: `python3` on PATH, else Debian's.
fn python() -> &'static str {
    for candidate in ["python3", "/usr/bin/python3"] {
        let ok = Command::new(candidate)
            .args(["-c", "import zmq"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return candidate;
        }
    }
    panic!("no python3 with pyzmq: install the Debian package `python3-zmq` (scripts/test does this)");
}

/// The peer process, killed on drop.
struct Peer {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn start(args: &[&str]) -> Peer {
        let mut child = Command::new(python())
            .arg("-c")
            .arg(PEER)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the pyzmq peer");
        let stdout = BufReader::new(child.stdout.take().expect("piped stdout"));
        Peer { child, stdout }
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read the peer's output");
        line.trim().to_string()
    }

    /// A ROUTER peer and the address it bound.
    fn router(mode: &str) -> (Peer, SocketAddr) {
        let mut peer = Peer::start(&["router", mode]);
        let port: u16 = peer.line().parse().expect("the peer prints its port first");
        (peer, SocketAddr::from(([127, 0, 0, 1], port)))
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A driver running ZMTP connections, and every event they reported.
struct Net {
    kind: DriverKind,
    driver: AnyDriver<Connection>,
    events: Vec<(ConnId, Event)>,
}

impl Net {
    fn new(kind: DriverKind) -> Net {
        let driver = AnyDriver::new(kind).unwrap_or_else(|e| panic!("creating the {kind} driver failed: {e}"));
        Net {
            kind,
            driver,
            events: Vec::new(),
        }
    }

    /// Turns until `done` holds for the events so far, failing after [`PATIENCE`].
    fn until(&mut self, what: &str, mut done: impl FnMut(&[(ConnId, Event)]) -> bool) {
        let start = Instant::now();
        let mut activities = Vec::new();
        while !done(&self.events) {
            assert!(
                start.elapsed() < PATIENCE,
                "{}: {what}: not done after {PATIENCE:?}; events: {:#?}",
                self.kind,
                self.events
            );
            activities.clear();
            self.driver
                .turn(Some(Instant::now() + Duration::from_millis(50)), &mut activities)
                .unwrap_or_else(|e| panic!("{}: turn failed: {e}", self.kind));
            for activity in &activities {
                let conn = match activity {
                    Activity::Ready(c) | Activity::Connected(c) => *c,
                    Activity::Accepted { conn, .. } => *conn,
                    Activity::Closed { conn, .. } => *conn,
                    Activity::Woken => continue,
                };
                if let Some(session) = self.driver.session_for_output(conn) {
                    while let Some(event) = session.poll_event() {
                        self.events.push((conn, event));
                    }
                }
            }
        }
    }

    fn messages(&self, conn: ConnId) -> Vec<Vec<Bytes>> {
        self.events
            .iter()
            .filter(|(c, _)| *c == conn)
            .filter_map(|(_, e)| match e {
                Event::Message(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }
}

fn established(conn: ConnId) -> impl FnMut(&[(ConnId, Event)]) -> bool {
    move |events| {
        events.iter().any(|(c, e)| {
            assert!(!matches!(e, Event::Failed(_)), "the handshake failed: {e:?}");
            *c == conn && matches!(e, Event::Established(_))
        })
    }
}

fn dealer(mechanism: Mechanism) -> ConnectionConfig {
    let mut handshake = HandshakeConfig::null(SocketType::Dealer);
    handshake.identity = Bytes::from_static(b"monocoque");
    handshake.mechanism = mechanism;
    ConnectionConfig::new(handshake)
}

fn has_message(conn: ConnId) -> impl FnMut(&[(ConnId, Event)]) -> bool {
    move |events| {
        events.iter().any(|(c, e)| {
            assert!(!matches!(e, Event::Failed(_)), "the connection failed: {e:?}");
            *c == conn && matches!(e, Event::Message(_))
        })
    }
}

/// Our DEALER against the peer's ROUTER: handshake, a three-frame message (one frame
/// long enough for the 8-byte size), and the reply routed back to us by identity.
fn dealer_round_trip(net: &mut Net, addr: SocketAddr, mechanism: Mechanism) {
    let mut conn = Connection::new(dealer(mechanism), Instant::now()).expect("a valid configuration");
    let big = Bytes::from(vec![b'z'; 70_000]);
    let message = vec![Bytes::from_static(b"request"), Bytes::new(), big];
    // Queued before the handshake: sent once it completes.
    conn.send(&message).expect("queued");
    let id = net.driver.connect(addr, conn).expect("connect");
    net.until("the handshake", established(id));
    let peer = net
        .events
        .iter()
        .find_map(|(c, e)| match e {
            Event::Established(peer) if *c == id => Some(peer.clone()),
            _ => None,
        })
        .expect("established");
    assert_eq!(peer.peer_socket_type, SocketType::Router);
    assert_eq!(peer.version.minor, 1, "libzmq 4.x speaks ZMTP 3.1");
    net.until("the reply", has_message(id));
    let mut want = vec![Bytes::from_static(b"reply")];
    want.extend(message);
    assert_eq!(net.messages(id), [want]);
}

fn null_dealer_to_libzmq_router(kind: DriverKind) {
    let (_peer, addr) = Peer::router("null");
    let mut net = Net::new(kind);
    dealer_round_trip(&mut net, addr, Mechanism::Null);
}

fn plain_dealer_to_libzmq_plain_server(kind: DriverKind) {
    let (_peer, addr) = Peer::router("plain");
    let mut net = Net::new(kind);
    let right = Mechanism::PlainClient {
        username: Bytes::from_static(b"admin"),
        password: Bytes::from_static(b"secret"),
    };
    dealer_round_trip(&mut net, addr, right);

    let wrong = Mechanism::PlainClient {
        username: Bytes::from_static(b"admin"),
        password: Bytes::from_static(b"guess"),
    };
    let id = net
        .driver
        .connect(addr, Connection::new(dealer(wrong), Instant::now()).expect("valid"))
        .expect("connect");
    net.until("the refusal", |events| {
        events
            .iter()
            .any(|(c, e)| *c == id && matches!(e, Event::Failed(_) | Event::Established(_)))
    });
    let outcome: Vec<&Event> = net.events.iter().filter(|(c, _)| *c == id).map(|(_, e)| e).collect();
    assert_eq!(
        outcome,
        [&Event::Failed(ZmtpError::Refused { reason: "400".into() })],
        "{kind}: libzmq refuses a wrong password with ERROR 400"
    );
}

fn libzmq_dealer_to_our_router(kind: DriverKind) {
    let mut net = Net::new(kind);
    let factory = Box::new(|_, _, now| {
        let mut handshake = HandshakeConfig::null(SocketType::Router);
        handshake.mechanism = Mechanism::Null;
        Connection::new(ConnectionConfig::new(handshake), now).expect("valid")
    });
    let listener = net
        .driver
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)), factory)
        .expect("listen");
    let addr = net.driver.listener_addr(listener).expect("bound");
    let mut peer = Peer::start(&["dealer", &addr.port().to_string()]);

    let mut conn = None;
    net.until("the DEALER's message", |events| {
        conn = events
            .iter()
            .find_map(|(c, e)| matches!(e, Event::Message(_)).then_some(*c));
        conn.is_some()
    });
    let conn = conn.expect("found above");
    let identity = net.events.iter().find_map(|(c, e)| match e {
        Event::Established(peer) if *c == conn => Some(peer.peer_identity.clone()),
        _ => None,
    });
    assert_eq!(identity.as_deref(), Some(&b"py-dealer"[..]));
    let want = vec![Bytes::new(), Bytes::from_static(b"hello"), Bytes::from(vec![b'x'; 300])];
    assert_eq!(net.messages(conn), [want]);

    let session = net.driver.session_for_output(conn).expect("still open");
    session
        .send(&[Bytes::new(), Bytes::from_static(b"world")])
        .expect("open");
    // Turn until the peer printed the reply and exited.
    let start = Instant::now();
    let status = loop {
        if let Some(status) = peer.child.try_wait().expect("wait on the peer") {
            break status;
        }
        assert!(start.elapsed() < PATIENCE, "{kind}: the DEALER got no reply");
        let mut activities = Vec::new();
        net.driver
            .turn(Some(Instant::now() + Duration::from_millis(20)), &mut activities)
            .expect("turn");
    };
    assert!(status.success(), "{kind}: the DEALER failed: {status}");
    assert_eq!(peer.line(), format!(",{}", hex(b"world")));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

both_drivers! {
    null_dealer_to_libzmq_router => uring_null_dealer_to_libzmq_router, mio_null_dealer_to_libzmq_router;
    plain_dealer_to_libzmq_plain_server => uring_plain_dealer_to_libzmq_plain_server, mio_plain_dealer_to_libzmq_plain_server;
    libzmq_dealer_to_our_router => uring_libzmq_dealer_to_our_router, mio_libzmq_dealer_to_our_router;
}
