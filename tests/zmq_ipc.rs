//! `monocoque::zmq::Socket` over `ipc://` (Unix stream sockets) against libzmq through
//! pyzmq, both directions, on both drivers:
//!
//! - our PUSH connected to a libzmq PULL bound on an absolute path, a libzmq PUSH
//!   connected to our PULL bound on a relative one (`ipc://target/...`);
//! - our REQ to a libzmq REP, libzmq REQs to our REP;
//! - our DEALER to a libzmq ROUTER, a libzmq DEALER to our ROUTER (routed by identity);
//! - our PUSH connected before the libzmq PULL binds (no socket file yet: redialed);
//! - our bound socket file is removed when the socket closes, and a stale one left by
//!   a killed libzmq process is replaced when we bind.

mod support;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::zmq::{Endpoint, Options, Socket, SocketType};
use support::zmq_peer::{hex, ZmqPeer, PATIENCE};

/// The pyzmq peer; every role takes the endpoint as its second argument, and a role
/// that binds prints `bound` once it has.
///
/// `pull EP`: binds a PULL, prints each message (frames in hex, comma separated).
/// `push EP N`: a PUSH connects, sends `[m, i]` for i in 0..N, lingers until delivered.
/// `rep EP`: binds a REP, answers `frames` with `[echo, frames...]`.
/// `req EP ID`: a REQ connects, sends `[from ID]`, prints the reply.
/// `router EP`: binds a ROUTER, answers `[id, frames...]` with `[id, reply, frames...]`.
/// `dealer EP ID`: a DEALER with identity ID connects, sends `[from ID]`, prints the reply.
const PEER: &str = r#"
import sys, zmq
ctx = zmq.Context()
role, ep = sys.argv[1], sys.argv[2]
def show(frames):
    print(",".join(f.hex() for f in frames), flush=True)
def bind(kind):
    s = ctx.socket(kind)
    s.linger = 0
    s.rcvtimeo = 60000
    s.bind(ep)
    print("bound", flush=True)
    return s
if role == "pull":
    s = bind(zmq.PULL)
    while True:
        show(s.recv_multipart())
elif role == "push":
    s = ctx.socket(zmq.PUSH)
    s.linger = 30000
    s.connect(ep)
    for i in range(int(sys.argv[3])):
        s.send_multipart([b"m", str(i).encode()])
    s.close()
    ctx.term()
elif role == "rep":
    s = bind(zmq.REP)
    while True:
        s.send_multipart([b"echo"] + s.recv_multipart())
elif role == "req":
    s = ctx.socket(zmq.REQ)
    s.linger = 1000
    s.rcvtimeo = 30000
    s.connect(ep)
    s.send_multipart([b"from " + sys.argv[3].encode()])
    show(s.recv_multipart())
elif role == "router":
    s = bind(zmq.ROUTER)
    while True:
        ident, *frames = s.recv_multipart()
        s.send_multipart([ident, b"reply"] + frames)
elif role == "dealer":
    s = ctx.socket(zmq.DEALER)
    s.linger = 1000
    s.rcvtimeo = 30000
    s.identity = sys.argv[3].encode()
    s.connect(ep)
    s.send_multipart([b"from " + s.identity])
    show(s.recv_multipart())
"#;

/// A fresh absolute path for a socket file (its directory removed on drop).
struct SocketDir(PathBuf);

impl SocketDir {
    fn new() -> SocketDir {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("monocoque-ipc-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        SocketDir(dir)
    }

    /// `ipc:///tmp/.../NAME`.
    fn endpoint(&self, name: &str) -> String {
        format!("ipc://{}", self.0.join(name).display())
    }
}

impl Drop for SocketDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn socket(kind: DriverKind, t: SocketType) -> Socket {
    let options = Options {
        driver: kind,
        identity: Bytes::from_static(b"monocoque"),
        send_timeout: Some(PATIENCE),
        linger: Some(PATIENCE),
        ..Options::default()
    };
    Socket::with_options(t, options).unwrap_or_else(|e| panic!("{kind}: a {t} socket: {e}"))
}

fn recv(socket: &mut Socket, what: &str) -> Vec<Bytes> {
    socket
        .recv(PATIENCE)
        .expect("recv")
        .map(Vec::from)
        .unwrap_or_else(|| panic!("{what}: nothing within {PATIENCE:?}"))
}

fn shown(frames: &[&[u8]]) -> String {
    frames.iter().map(|f| hex(f)).collect::<Vec<_>>().join(",")
}

/// Starts a peer that binds, and waits until it has.
fn bound(args: &[&str], socket: &mut Socket) -> ZmqPeer {
    let mut peer = ZmqPeer::start(PEER, args);
    assert_eq!(peer.line(socket), "bound");
    peer
}

fn our_push_to_libzmq_pull(kind: DriverKind) {
    let dir = SocketDir::new();
    let ep = dir.endpoint("pull.sock");
    let mut push = socket(kind, SocketType::Push);
    let mut pull = bound(&["pull", &ep], &mut push);
    push.connect(&ep).expect("connect");
    for i in 0..50 {
        push.send(vec![Bytes::from_static(b"m"), Bytes::from(i.to_string())])
            .expect("send");
    }
    for i in 0..50 {
        assert_eq!(pull.line(&mut push), shown(&[b"m", i.to_string().as_bytes()]), "{kind}");
    }
}

fn libzmq_push_to_our_pull(kind: DriverKind) {
    // A relative path, as `ipc://relative` names one (tests run in the package root).
    std::fs::create_dir_all("target/ipc-tests").expect("a directory under target/");
    let name = format!("target/ipc-tests/pull-{}-{kind}.sock", std::process::id());
    let ep = format!("ipc://{name}");
    let mut pull = socket(kind, SocketType::Pull);
    assert_eq!(pull.bind(&ep).expect("bind"), Endpoint::Ipc(PathBuf::from(&name)));
    assert!(
        std::path::Path::new(&name).exists(),
        "{kind}: bound relative to the working directory"
    );
    let _push = ZmqPeer::start(PEER, &["push", &ep, "50"]);
    for i in 0..50 {
        let message = recv(&mut pull, &format!("pushed message {i}"));
        assert_eq!(
            message,
            vec![Bytes::from_static(b"m"), Bytes::from(i.to_string())],
            "{kind}"
        );
    }
    drop(pull);
    assert!(
        !std::path::Path::new(&name).exists(),
        "{kind}: removed when the socket closed"
    );
}

fn our_req_to_libzmq_rep(kind: DriverKind) {
    let dir = SocketDir::new();
    let ep = dir.endpoint("rep.sock");
    let mut req = socket(kind, SocketType::Req);
    let _rep = bound(&["rep", &ep], &mut req);
    req.connect(&ep).expect("connect");
    for i in 0..3 {
        req.send(vec![Bytes::from(format!("q{i}"))]).expect("send");
        let reply = recv(&mut req, "the REP's reply");
        assert_eq!(
            reply,
            vec![Bytes::from_static(b"echo"), Bytes::from(format!("q{i}"))],
            "{kind}"
        );
    }
}

fn libzmq_reqs_to_our_rep(kind: DriverKind) {
    let dir = SocketDir::new();
    let ep = dir.endpoint("rep.sock");
    let mut rep = socket(kind, SocketType::Rep);
    rep.bind(&ep).expect("bind");
    let mut peers = [
        ZmqPeer::start(PEER, &["req", &ep, "alpha"]),
        ZmqPeer::start(PEER, &["req", &ep, "beta"]),
    ];
    for _ in 0..2 {
        let request = recv(&mut rep, "a request");
        rep.send(vec![Bytes::from_static(b"to"), request[0].clone()])
            .expect("send");
    }
    for (peer, id) in peers.iter_mut().zip(["alpha", "beta"]) {
        let expected = shown(&[b"to", format!("from {id}").as_bytes()]);
        assert_eq!(peer.line(&mut rep), expected, "{kind}: each REQ gets its own reply");
    }
}

fn our_dealer_to_libzmq_router(kind: DriverKind) {
    let dir = SocketDir::new();
    let ep = dir.endpoint("router.sock");
    let mut dealer = socket(kind, SocketType::Dealer);
    let _router = bound(&["router", &ep], &mut dealer);
    dealer.connect(&ep).expect("connect");
    dealer.send(vec![Bytes::from_static(b"hello")]).expect("send");
    let reply = recv(&mut dealer, "the ROUTER's reply");
    assert_eq!(
        reply,
        vec![Bytes::from_static(b"reply"), Bytes::from_static(b"hello")],
        "{kind}"
    );
}

fn libzmq_dealer_to_our_router(kind: DriverKind) {
    let dir = SocketDir::new();
    let ep = dir.endpoint("router.sock");
    let mut router = socket(kind, SocketType::Router);
    router.bind(&ep).expect("bind");
    let mut dealer = ZmqPeer::start(PEER, &["dealer", &ep, "alpha"]);
    let message = recv(&mut router, "the DEALER's message");
    assert_eq!(
        message,
        vec![Bytes::from_static(b"alpha"), Bytes::from_static(b"from alpha")],
        "{kind}"
    );
    router
        .send(vec![Bytes::from_static(b"alpha"), Bytes::from_static(b"back")])
        .expect("send");
    assert_eq!(dealer.line(&mut router), hex(b"back"), "{kind}: routed by identity");
}

fn our_push_redials_until_the_pull_binds(kind: DriverKind) {
    let dir = SocketDir::new();
    let ep = dir.endpoint("later.sock");
    let mut push = socket(kind, SocketType::Push);
    // No socket file yet: refused at once, redialed, the message queued meanwhile.
    push.connect(&ep).expect("connect");
    push.send(vec![Bytes::from_static(b"early")]).expect("queued");
    push.run_for(Duration::from_millis(300)).expect("turn");
    let mut pull = bound(&["pull", &ep], &mut push);
    assert_eq!(pull.line(&mut push), hex(b"early"), "{kind}");
}

fn we_replace_the_stale_file_of_a_killed_libzmq(kind: DriverKind) {
    let dir = SocketDir::new();
    let ep = dir.endpoint("stale.sock");
    let path = PathBuf::from(ep.strip_prefix("ipc://").expect("ipc"));
    let mut pull = socket(kind, SocketType::Pull);
    let mut theirs = bound(&["pull", &ep], &mut pull);
    theirs.kill();
    assert!(path.exists(), "a killed libzmq leaves its file");
    pull.bind(&ep).expect("bound over the stale file");
    let _push = ZmqPeer::start(PEER, &["push", &ep, "1"]);
    assert_eq!(
        recv(&mut pull, "from the PUSH"),
        vec![Bytes::from_static(b"m"), Bytes::from_static(b"0")],
        "{kind}"
    );
}

both_drivers! {
    our_push_to_libzmq_pull => uring_our_push_to_libzmq_pull, mio_our_push_to_libzmq_pull;
    libzmq_push_to_our_pull => uring_libzmq_push_to_our_pull, mio_libzmq_push_to_our_pull;
    our_req_to_libzmq_rep => uring_our_req_to_libzmq_rep, mio_our_req_to_libzmq_rep;
    libzmq_reqs_to_our_rep => uring_libzmq_reqs_to_our_rep, mio_libzmq_reqs_to_our_rep;
    our_dealer_to_libzmq_router => uring_our_dealer_to_libzmq_router, mio_our_dealer_to_libzmq_router;
    libzmq_dealer_to_our_router => uring_libzmq_dealer_to_our_router, mio_libzmq_dealer_to_our_router;
    our_push_redials_until_the_pull_binds => uring_our_push_redials_until_the_pull_binds, mio_our_push_redials_until_the_pull_binds;
    we_replace_the_stale_file_of_a_killed_libzmq => uring_we_replace_the_stale_file_of_a_killed_libzmq, mio_we_replace_the_stale_file_of_a_killed_libzmq;
}
