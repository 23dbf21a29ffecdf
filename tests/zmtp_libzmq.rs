//! The ZMTP engine against libzmq (through pyzmq), on both drivers: our handshake and
//! frames, run by `monocoque_proto::zmtp::Connection` sessions, with a Python peer
//! started by each test on a free loopback port.
//!
//! - our DEALER connects to a libzmq ROUTER: NULL handshake, a multipart message and
//!   the reply the ROUTER routes back by identity;
//! - the same over PLAIN against a libzmq PLAIN server whose ZAP handler is pyzmq's
//!   `ThreadAuthenticator`: the right password is let in, a wrong one refused with the
//!   `ERROR` libzmq sends (ZAP status 400);
//! - a libzmq DEALER connects to our ROUTER: its identity, its message, our reply; and
//!   as a PLAIN client to our PLAIN server, our verdict letting the right password in
//!   and refusing a wrong one;
//! - heartbeats: libzmq's PINGs answered (it drops a silent peer after 500 ms), ours
//!   answered by libzmq (we would drop it after 300 ms);
//! - a 2 MB frame from libzmq against our 1 MiB limit: refused, nothing delivered;
//! - a libzmq PUSH connecting to our ROUTER: never established;
//! - subscriptions both ways: our SUB's (3.0 message form) read by a libzmq XPUB that
//!   then filters by it, a libzmq SUB's read by our PUB connection.
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
use monocoque::proto::zmtp::{
    AuthDecision, AuthRequest, Connection, ConnectionConfig, Event, HandshakeConfig, Mechanism, SocketType,
    Subscription, ZmtpError,
};
use monocoque::proto::{Activity, ConnId, Driver, Session};

/// How long a step that takes milliseconds may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// The Python peer.
///
/// `router MODE`: binds a ROUTER on a free loopback port (printed first) and answers
/// every message `[id, frames...]` with `[id, b"reply", frames...]`, or with a 2 MB
/// frame when the first frame is `big`. MODE `plain`: a PLAIN server whose ZAP handler
/// knows admin/secret; `heartbeat`: libzmq sends a PING every 100 ms and drops a peer
/// silent for 500 ms.
///
/// `dealer PORT [USER PASSWORD]`: a DEALER with identity `py-dealer` (a PLAIN client
/// with the credentials, if given) connects, sends `["", "hello", 300 x "x"]`, prints
/// the reply's frames in hex, comma separated (or `timeout` after 3 s), and exits.
///
/// `push PORT`: a PUSH connects, sends one message and lingers a second.
///
/// `xpub`: binds an XPUB (port printed first), prints each subscription message it
/// receives in hex, and after the first one publishes `other/skip` then `news/hello`.
///
/// `sub PORT`: a SUB subscribed to `news` connects, prints the first message it
/// receives (frames in hex, comma separated) and exits.
const PEER: &str = r#"
import sys, time, zmq
ctx = zmq.Context()
role = sys.argv[1]
if role == "router":
    mode = sys.argv[2]
    if mode == "plain":
        from zmq.auth.thread import ThreadAuthenticator
        auth = ThreadAuthenticator(ctx)
        auth.start()
        auth.configure_plain(domain="*", passwords={"admin": "secret"})
    s = ctx.socket(zmq.ROUTER)
    if mode == "plain":
        s.plain_server = True
    if mode == "heartbeat":
        s.heartbeat_ivl = 100
        s.heartbeat_timeout = 500
        s.heartbeat_ttl = 2000
    s.linger = 0
    s.rcvtimeo = 60000
    port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    while True:
        ident, *frames = s.recv_multipart()
        if frames == [b"big"]:
            s.send_multipart([ident, b"x" * 2000000])
        else:
            s.send_multipart([ident, b"reply"] + frames)
elif role == "dealer":
    s = ctx.socket(zmq.DEALER)
    s.linger = 1000
    s.rcvtimeo = 3000
    s.identity = b"py-dealer"
    if len(sys.argv) > 3:
        s.plain_username = sys.argv[3].encode()
        s.plain_password = sys.argv[4].encode()
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    s.send_multipart([b"", b"hello", b"x" * 300])
    try:
        print(",".join(f.hex() for f in s.recv_multipart()), flush=True)
    except zmq.Again:
        print("timeout", flush=True)
elif role == "xpub":
    s = ctx.socket(zmq.XPUB)
    s.linger = 0
    s.rcvtimeo = 60000
    port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    print(s.recv().hex(), flush=True)
    s.send_multipart([b"other", b"skip"])
    s.send_multipart([b"news", b"hello"])
    time.sleep(60)
elif role == "sub":
    s = ctx.socket(zmq.SUB)
    s.linger = 0
    s.rcvtimeo = 10000
    s.subscribe(b"news")
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    print(",".join(f.hex() for f in s.recv_multipart()), flush=True)
else:
    s = ctx.socket(zmq.PUSH)
    s.linger = 0
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    s.send(b"pushed")
    time.sleep(1)
"#;

/// The peer process, killed on drop.
struct Peer {
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Peer {
    fn start(args: &[&str]) -> Peer {
        let mut child = Command::new(support::pyzmq_python())
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
    /// The verdict on PLAIN credentials our servers are asked for.
    judge: fn(&AuthRequest) -> AuthDecision,
}

/// Lets admin/secret in.
fn admin_only(request: &AuthRequest) -> AuthDecision {
    if request.username == "admin" && request.password == "secret" {
        AuthDecision::Allow {
            user_id: request.username.clone(),
        }
    } else {
        AuthDecision::Deny {
            status: 400,
            reason: "wrong credentials".into(),
        }
    }
}

impl Net {
    fn new(kind: DriverKind) -> Net {
        let driver = AnyDriver::new(kind).unwrap_or_else(|e| panic!("creating the {kind} driver failed: {e}"));
        Net {
            kind,
            driver,
            events: Vec::new(),
            judge: admin_only,
        }
    }

    /// One turn of at most `max`, its events collected (and PLAIN verdicts given).
    fn turn(&mut self, max: Duration) {
        let mut activities = Vec::new();
        self.driver
            .turn(Some(Instant::now() + max), &mut activities)
            .unwrap_or_else(|e| panic!("{}: turn failed: {e}", self.kind));
        for activity in &activities {
            let conn = match activity {
                Activity::Ready(c) | Activity::Connected(c) => *c,
                Activity::Accepted { conn, .. } => *conn,
                Activity::Closed { conn, .. } => *conn,
                Activity::Sent(_) | Activity::Woken => continue,
            };
            let judge = self.judge;
            if let Some(session) = self.driver.session_for_output(conn) {
                while let Some(event) = session.poll_event() {
                    if let Event::Authenticate(request) = &event {
                        session.authenticate(judge(request), Instant::now());
                    }
                    self.events.push((conn, event));
                }
            }
        }
    }

    /// Turns for `dur`.
    fn turn_for(&mut self, dur: Duration) {
        let end = Instant::now() + dur;
        while Instant::now() < end {
            self.turn(end - Instant::now());
        }
    }

    /// The events of one connection.
    fn of(&self, conn: ConnId) -> Vec<&Event> {
        self.events.iter().filter(|(c, _)| *c == conn).map(|(_, e)| e).collect()
    }

    /// Turns until `done` holds for the events so far, failing after [`PATIENCE`].
    fn until(&mut self, what: &str, mut done: impl FnMut(&[(ConnId, Event)]) -> bool) {
        let start = Instant::now();
        while !done(&self.events) {
            assert!(
                start.elapsed() < PATIENCE,
                "{}: {what}: not done after {PATIENCE:?}; events: {:#?}",
                self.kind,
                self.events
            );
            self.turn(Duration::from_millis(50));
        }
    }

    fn messages_any(&self) -> Vec<Vec<Bytes>> {
        self.events
            .iter()
            .filter_map(|(_, e)| match e {
                Event::Message(m) => Some(m.to_vec()),
                _ => None,
            })
            .collect()
    }

    fn messages(&self, conn: ConnId) -> Vec<Vec<Bytes>> {
        self.events
            .iter()
            .filter(|(c, _)| *c == conn)
            .filter_map(|(_, e)| match e {
                Event::Message(m) => Some(m.to_vec()),
                _ => None,
            })
            .collect()
    }
}

fn established(conn: ConnId) -> impl FnMut(&[(ConnId, Event)]) -> bool {
    move |events| {
        events.iter().any(|(c, e)| {
            assert!(
                *c != conn || !matches!(e, Event::Failed(_) | Event::Closed),
                "the handshake failed: {e:?}"
            );
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
            assert!(
                *c != conn || !matches!(e, Event::Failed(_) | Event::Closed),
                "the connection ended: {e:?}"
            );
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

/// Listens with a ROUTER of `mechanism`, runs a pyzmq DEALER with `args` against it,
/// answers its message with `["", "world"]` and returns what the DEALER printed.
fn serve_libzmq_dealer(net: &mut Net, mechanism: Mechanism, credentials: &[&str]) -> String {
    let factory = Box::new(move |_, _, now| {
        let mut handshake = HandshakeConfig::null(SocketType::Router);
        handshake.mechanism = mechanism.clone();
        Connection::new(ConnectionConfig::new(handshake), now).expect("valid")
    });
    let listener = net
        .driver
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)), factory)
        .expect("listen");
    let port = net.driver.listener_addr(listener).expect("bound").port().to_string();
    let mut args = vec!["dealer", &port];
    args.extend_from_slice(credentials);
    let mut peer = Peer::start(&args);
    let kind = net.kind;
    let start = Instant::now();
    let mut answered = Vec::new();
    let status = loop {
        if let Some(status) = peer.child.try_wait().expect("wait on the peer") {
            break status;
        }
        assert!(start.elapsed() < PATIENCE, "{kind}: the DEALER did not finish");
        net.turn(Duration::from_millis(20));
        let asking: Vec<ConnId> = net
            .events
            .iter()
            .filter(|(c, e)| matches!(e, Event::Message(_)) && !answered.contains(c))
            .map(|(c, _)| *c)
            .collect();
        for conn in asking {
            answered.push(conn);
            if let Some(session) = net.driver.session_for_output(conn) {
                session
                    .send(&[Bytes::new(), Bytes::from_static(b"world")])
                    .expect("open");
            }
        }
    };
    assert!(status.success(), "{kind}: the DEALER failed: {status}");
    peer.line()
}

fn libzmq_dealer_to_our_router(kind: DriverKind) {
    let mut net = Net::new(kind);
    let printed = serve_libzmq_dealer(&mut net, Mechanism::Null, &[]);
    assert_eq!(printed, format!(",{}", hex(b"world")));
    let conn = net
        .events
        .iter()
        .find_map(|(c, e)| matches!(e, Event::Message(_)).then_some(*c))
        .expect("a message");
    let identity = net.events.iter().find_map(|(c, e)| match e {
        Event::Established(peer) if *c == conn => Some(peer.peer_identity.clone()),
        _ => None,
    });
    assert_eq!(identity.as_deref(), Some(&b"py-dealer"[..]));
    let want = vec![Bytes::new(), Bytes::from_static(b"hello"), Bytes::from(vec![b'x'; 300])];
    assert_eq!(net.messages(conn), [want]);
}

fn libzmq_plain_dealer_to_our_plain_router(kind: DriverKind) {
    let mut net = Net::new(kind);
    let printed = serve_libzmq_dealer(&mut net, Mechanism::PlainServer, &["admin", "secret"]);
    assert_eq!(
        printed,
        format!(",{}", hex(b"world")),
        "{kind}: the right password is let in"
    );
    let user = net.events.iter().find_map(|(_, e)| match e {
        Event::Established(peer) => peer.user_id.clone(),
        _ => None,
    });
    assert_eq!(user.as_deref(), Some(&b"admin"[..]));

    let mut net = Net::new(kind);
    let printed = serve_libzmq_dealer(&mut net, Mechanism::PlainServer, &["admin", "guess"]);
    assert_eq!(printed, "timeout", "{kind}: a wrong password gets no reply");
    assert!(net.messages_any().is_empty());
    let denied = net
        .events
        .iter()
        .filter(|(_, e)| matches!(e, Event::Failed(ZmtpError::AuthenticationDenied { status: 400, .. })));
    assert!(denied.count() >= 1, "{kind}: {:#?}", net.events);
    assert!(!net.events.iter().any(|(_, e)| matches!(e, Event::Established(_))));
}

fn heartbeats_with_libzmq(kind: DriverKind) {
    // libzmq PINGs every 100 ms and drops a peer silent for 500 ms: our PONGs keep
    // the connection up for 1.5 s of idleness.
    let (_peer, addr) = Peer::router("heartbeat");
    let mut net = Net::new(kind);
    let id = net
        .driver
        .connect(
            addr,
            Connection::new(dealer(Mechanism::Null), Instant::now()).expect("valid"),
        )
        .expect("connect");
    net.until("the handshake", established(id));
    net.turn_for(Duration::from_millis(1500));
    net.driver
        .session_for_output(id)
        .expect("open")
        .send(&[Bytes::from_static(b"still")])
        .expect("open");
    net.until("the reply after idling", has_message(id));
    assert!(
        !net.of(id).iter().any(|e| matches!(e, Event::Closed | Event::Failed(_))),
        "{:#?}",
        net.of(id)
    );

    // Our PINGs to a libzmq that sends none: its PONGs keep our 300 ms timeout happy.
    let (_quiet, addr) = Peer::router("null");
    let mut config = dealer(Mechanism::Null);
    config.heartbeat_interval = Some(Duration::from_millis(100));
    config.heartbeat_timeout = Some(Duration::from_millis(300));
    config.heartbeat_ttl = Duration::from_secs(5);
    let id = net
        .driver
        .connect(addr, Connection::new(config, Instant::now()).expect("valid"))
        .expect("connect");
    net.until("the handshake", established(id));
    net.turn_for(Duration::from_millis(1500));
    assert!(
        !net.of(id).iter().any(|e| matches!(e, Event::Closed | Event::Failed(_))),
        "{:#?}",
        net.of(id)
    );
    net.driver
        .session_for_output(id)
        .expect("open")
        .send(&[Bytes::from_static(b"still")])
        .expect("open");
    net.until("the reply after idling", has_message(id));
}

fn oversized_frame_from_libzmq(kind: DriverKind) {
    let (_peer, addr) = Peer::router("null");
    let mut net = Net::new(kind);
    let mut config = dealer(Mechanism::Null);
    config.max_frame_size = 1 << 20;
    let mut conn = Connection::new(config, Instant::now()).expect("valid");
    conn.send(&[Bytes::from_static(b"big")]).expect("queued");
    let id = net.driver.connect(addr, conn).expect("connect");
    net.until("the refusal", |events| {
        events.iter().any(|(c, e)| *c == id && matches!(e, Event::Failed(_)))
    });
    assert!(net.of(id).contains(&&Event::Failed(ZmtpError::FrameTooLarge {
        size: 2_000_000,
        max: 1 << 20
    })));
    assert!(net.messages(id).is_empty());
}

fn libzmq_push_is_refused_by_our_router(kind: DriverKind) {
    let mut net = Net::new(kind);
    let factory = Box::new(|_, _, now| {
        Connection::new(ConnectionConfig::new(HandshakeConfig::null(SocketType::Router)), now).expect("valid")
    });
    let listener = net
        .driver
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)), factory)
        .expect("listen");
    let port = net.driver.listener_addr(listener).expect("bound").port().to_string();
    let _peer = Peer::start(&["push", &port]);
    net.until("the refusal", |events| {
        events.iter().any(|(_, e)| matches!(e, Event::Failed(_)))
    });
    let refused = Event::Failed(ZmtpError::IncompatibleSocketType {
        ours: SocketType::Router,
        theirs: SocketType::Push,
    });
    // Both sides check: libzmq reads our READY (sent with our greeting) and may close
    // before its own READY is out, so ours ends either refusing the PUSH's READY or
    // seeing the connection close mid-handshake. Never established, either way.
    let closed = Event::Failed(ZmtpError::ClosedDuringHandshake);
    assert!(
        net.events.iter().all(|(_, e)| *e == refused || *e == closed),
        "{kind}: {:#?}",
        net.events
    );
    assert!(
        net.messages_any().is_empty(),
        "nothing from a refused peer is delivered"
    );
}

fn our_sub_to_libzmq_xpub(kind: DriverKind) {
    let mut peer = Peer::start(&["xpub"]);
    let port: u16 = peer.line().parse().expect("the peer prints its port first");
    let mut net = Net::new(kind);
    let mut conn = Connection::new(
        ConnectionConfig::new(HandshakeConfig::null(SocketType::Sub)),
        Instant::now(),
    )
    .expect("valid");
    conn.send_subscription(&Subscription::Subscribe(Bytes::from_static(b"news")))
        .expect("queued");
    let id = net
        .driver
        .connect(SocketAddr::from(([127, 0, 0, 1], port)), conn)
        .expect("connect");
    net.until("the publication", has_message(id));
    assert_eq!(peer.line(), hex(b"\x01news"), "{kind}: libzmq reads our subscription");
    // libzmq filtered by our subscription: `other` never came.
    assert_eq!(
        net.messages(id),
        [vec![Bytes::from_static(b"news"), Bytes::from_static(b"hello")]]
    );
}

fn libzmq_sub_to_our_pub(kind: DriverKind) {
    let mut net = Net::new(kind);
    let factory = Box::new(|_, _, now| {
        Connection::new(ConnectionConfig::new(HandshakeConfig::null(SocketType::Pub)), now).expect("valid")
    });
    let listener = net
        .driver
        .listen(SocketAddr::from(([127, 0, 0, 1], 0)), factory)
        .expect("listen");
    let port = net.driver.listener_addr(listener).expect("bound").port().to_string();
    let mut peer = Peer::start(&["sub", &port]);
    let mut conn = None;
    net.until("the subscription", |events| {
        conn = events
            .iter()
            .find_map(|(c, e)| matches!(e, Event::Subscription(_)).then_some(*c));
        conn.is_some()
    });
    let conn = conn.expect("found above");
    let subs: Vec<&Event> = net
        .of(conn)
        .into_iter()
        .filter(|e| matches!(e, Event::Subscription(_)))
        .collect();
    assert_eq!(
        subs,
        [&Event::Subscription(Subscription::Subscribe(Bytes::from_static(
            b"news"
        )))]
    );
    // A message on the topic reaches libzmq's SUB (its own filter lets it through).
    let session = net.driver.session_for_output(conn).expect("open");
    session
        .send(&[Bytes::from_static(b"news"), Bytes::from_static(b"flash")])
        .expect("open");
    let start = Instant::now();
    while peer.child.try_wait().expect("wait").is_none() {
        assert!(start.elapsed() < PATIENCE, "{kind}: the SUB got nothing");
        net.turn(Duration::from_millis(20));
    }
    assert_eq!(peer.line(), format!("{},{}", hex(b"news"), hex(b"flash")));
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

both_drivers! {
    null_dealer_to_libzmq_router => uring_null_dealer_to_libzmq_router, mio_null_dealer_to_libzmq_router;
    plain_dealer_to_libzmq_plain_server => uring_plain_dealer_to_libzmq_plain_server, mio_plain_dealer_to_libzmq_plain_server;
    libzmq_dealer_to_our_router => uring_libzmq_dealer_to_our_router, mio_libzmq_dealer_to_our_router;
    libzmq_plain_dealer_to_our_plain_router => uring_libzmq_plain_dealer_to_our_plain_router, mio_libzmq_plain_dealer_to_our_plain_router;
    heartbeats_with_libzmq => uring_heartbeats_with_libzmq, mio_heartbeats_with_libzmq;
    oversized_frame_from_libzmq => uring_oversized_frame_from_libzmq, mio_oversized_frame_from_libzmq;
    libzmq_push_is_refused_by_our_router => uring_libzmq_push_is_refused_by_our_router, mio_libzmq_push_is_refused_by_our_router;
    our_sub_to_libzmq_xpub => uring_our_sub_to_libzmq_xpub, mio_our_sub_to_libzmq_xpub;
    libzmq_sub_to_our_pub => uring_libzmq_sub_to_our_pub, mio_libzmq_sub_to_our_pub;
}
