//! `monocoque::zmq::Socket` against libzmq (through pyzmq), on both drivers: each
//! socket type's rule checked with libzmq peers on the other side.
//!
//! - our DEALER connected to two libzmq ROUTERs: round robin out (each gets half),
//!   replies routed back to our identity and fair-queued in;
//! - two libzmq DEALERs (`alpha`, `beta`) connected to our ROUTER: identity frames in,
//!   each reply routed to its own peer, an unknown identity dropped;
//! - PUSH to PULL both ways, order kept; our PUSH queueing while its PULL is not yet
//!   there, and reconnecting until it is;
//! - our PUB to a libzmq SUB and a libzmq XSUB (which does not filter, so what it gets
//!   shows our PUB's filtering), and a libzmq PUB to our SUB, filtered by `news`;
//! - our REQ to a libzmq REP (alternating), two libzmq REQs to our REP (each reply
//!   to its asker);
//! - our XPUB reading a libzmq SUB's subscription and filtering by it, our XSUB
//!   subscribing at a libzmq PUB;
//! - PAIR with a libzmq PAIR, ours binding and ours connecting;
//! - our SUB redials a restarted libzmq PUB and subscribes again;
//! - the remaining valid pairs, each with ours on either side: our REQ to a libzmq
//!   ROUTER and a libzmq REQ to our ROUTER (the empty delimiter kept in the envelope),
//!   our DEALER to a libzmq REP and a libzmq DEALER to our REP, DEALER with DEALER
//!   (ours binding, ours connecting), ROUTER with ROUTER (routing by the identities the
//!   handshake carries, ours binding and ours connecting), our XPUB with a libzmq XSUB
//!   and our XSUB with a libzmq XPUB;
//! - at the HWM, against libzmq peers that stop reading: our PUSH blocks (the send
//!   times out and gives the message back), our PUB drops and keeps going;
//! - byte HWMs against slow peers: our PUSH to a slow libzmq PULL stays under its
//!   send HWM in bytes and blocks, and everything arrives in order; our PULL at its
//!   receive HWM stops reading, so a fast libzmq PUSH blocks, and nothing is lost.
//!
//! pyzmq comes from Debian's `python3-zmq` or PyPI; a missing pyzmq fails the test.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::zmq::{Options, Socket, SocketType};

/// How long a step that takes milliseconds may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// The Python peer; every role exits on its own within a minute.
///
/// `router`: binds a ROUTER (port printed first), answers `[id, frames...]` with
/// `[id, b"reply", PORT, frames...]`.
/// `dealer ID PORT`: a DEALER with identity ID sends `[b"from ID"]`, prints the reply
/// (frames in hex, comma separated) or `timeout`.
/// `pull [PORT]`: binds a PULL (on PORT, else a free port, printed first), prints each
/// message received.
/// `push PORT N`: a PUSH sends `[b"m", i]` for i in 0..N and lingers until delivered.
/// `sub PORT` / `xsub PORT`: subscribes to `news` (XSUB: sends `\x01news` itself),
/// prints the first three messages.
/// `rep`: binds a REP (port printed first), answers `frames` with `[echo, frames...]`.
/// `xsubflood PORT N`: an XSUB connects, sends the subscriptions `\x01t0` ..
/// `\x01t(N-1)`, prints `sent`, and stays connected for a minute.
/// `req ID PORT`: a REQ sends `[b"from ID"]` and prints the reply.
/// `laterep`: binds a REP (port printed first) that prints `got` + the first request
/// in hex, waits a second, then echoes it and every later request as `rep` does.
/// `creq PORT`: a REQ with `REQ_CORRELATE` and `REQ_RELAXED` sends `[b"one"]`, then
/// at once `[b"two"]`, and prints the reply it gets.
/// `pair [PORT]`: a PAIR that connects to PORT, sends `[ping]` and prints the reply;
/// without PORT, binds (port printed first) and answers `frames` with `[pong, frames...]`.
/// `stall pull` / `stall sub PORT`: a PULL that binds (port printed first), or a SUB
/// of everything that connects, and never reads.
/// `slowpull N`: binds a PULL (port printed first) that takes N messages `[i, body]`,
/// 1 ms apart, and prints `ok N` if they came in order (else the first out of order).
/// `fastpush PORT N SIZE`: a PUSH (HWM 10, 100 ms send timeout) sends N messages
/// `[i, SIZE bytes]`, retrying each that times out, and prints `blocked K` (K
/// timeouts) once all are delivered.
/// `rrouter [ID]`: binds a ROUTER (routing id ID if given; port printed first) that
/// answers `[id, frames.., last]` with `[id, frames.., b"re:" + last]`.
/// `rrouter-connect PORT`: a ROUTER with routing id `cli` connects and sends
/// `[b"monocoque", b"hi"]` every 50 ms until a reply comes, then prints it.
/// `dreq PORT`: a DEALER sends `[b"", b"hi"]` as a REQ would and prints the reply.
/// `decho [PORT]`: a DEALER that connects to PORT and sends `[hello]`, or binds (port
/// printed first); either way it answers each message with `b"re:"` before each frame.
/// `xpub`: binds an XPUB (port printed first), prints the first subscription message
/// it gets, then publishes `[other, skip]` and `[news/i, x]` every 20 ms.
/// `pub [PORT TAG]`: binds a PUB (on PORT, else a free port; printed first), publishes
/// `[other, skip]` and `[news/i, TAG]` (TAG `x` by default) every 20 ms.
const PEER: &str = r#"
import sys, time, zmq
ctx = zmq.Context()
role = sys.argv[1]
def show(frames):
    print(",".join(f.hex() for f in frames), flush=True)
def recv_some(s, n):
    s.rcvtimeo = 30000
    for _ in range(n):
        try:
            show(s.recv_multipart())
        except zmq.Again:
            print("timeout", flush=True)
            return
if role == "router":
    s = ctx.socket(zmq.ROUTER)
    s.linger = 0
    s.rcvtimeo = 60000
    port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    while True:
        ident, *frames = s.recv_multipart()
        s.send_multipart([ident, b"reply", str(port).encode()] + frames)
elif role == "dealer":
    s = ctx.socket(zmq.DEALER)
    s.linger = 1000
    s.identity = sys.argv[2].encode()
    s.connect("tcp://127.0.0.1:" + sys.argv[3])
    s.send_multipart([b"from " + s.identity])
    recv_some(s, 1)
elif role == "pull":
    s = ctx.socket(zmq.PULL)
    s.linger = 0
    if len(sys.argv) > 2:
        s.bind("tcp://127.0.0.1:" + sys.argv[2])
        port = sys.argv[2]
    else:
        port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    recv_some(s, 1000000)
elif role == "push":
    s = ctx.socket(zmq.PUSH)
    s.linger = 30000
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    for i in range(int(sys.argv[3])):
        s.send_multipart([b"m", str(i).encode()])
    s.close()
    # Waits for the linger: exiting without it may drop the connection mid-handshake.
    ctx.term()
elif role in ("sub", "xsub"):
    if role == "sub":
        s = ctx.socket(zmq.SUB)
        s.subscribe(b"news")
    else:
        s = ctx.socket(zmq.XSUB)
    s.linger = 0
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    if role == "xsub":
        s.send(b"\x01news")
    recv_some(s, 3)
elif role == "xsubflood":
    s = ctx.socket(zmq.XSUB)
    s.linger = 0
    s.sndhwm = 0
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    for i in range(int(sys.argv[3])):
        s.send(b"\x01t" + str(i).encode())
    print("sent", flush=True)
    time.sleep(60)
elif role == "rep":
    s = ctx.socket(zmq.REP)
    s.linger = 0
    s.rcvtimeo = 60000
    port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    while True:
        s.send_multipart([b"echo"] + s.recv_multipart())
elif role == "laterep":
    s = ctx.socket(zmq.REP)
    s.linger = 0
    s.rcvtimeo = 60000
    port = s.bind_to_random_port("tcp://127.0.0.1")
    print(port, flush=True)
    first = s.recv_multipart()
    print("got" + ",".join(f.hex() for f in first), flush=True)
    time.sleep(1)
    s.send_multipart([b"echo"] + first)
    while True:
        s.send_multipart([b"echo"] + s.recv_multipart())
elif role == "creq":
    s = ctx.socket(zmq.REQ)
    s.linger = 1000
    s.setsockopt(zmq.REQ_CORRELATE, 1)
    s.setsockopt(zmq.REQ_RELAXED, 1)
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    s.send_multipart([b"one"])
    s.send_multipart([b"two"])
    recv_some(s, 1)
elif role == "req":
    s = ctx.socket(zmq.REQ)
    s.linger = 1000
    s.connect("tcp://127.0.0.1:" + sys.argv[3])
    s.send_multipart([b"from " + sys.argv[2].encode()])
    recv_some(s, 1)
elif role == "pair":
    s = ctx.socket(zmq.PAIR)
    s.linger = 1000
    if len(sys.argv) > 2:
        s.connect("tcp://127.0.0.1:" + sys.argv[2])
        s.send_multipart([b"ping"])
        recv_some(s, 1)
    else:
        print(s.bind_to_random_port("tcp://127.0.0.1"), flush=True)
        s.rcvtimeo = 30000
        s.send_multipart([b"pong"] + s.recv_multipart())
        time.sleep(30)
elif role == "stall":
    # A PULL or SUB (subscribed to everything) that never reads: its queue of one
    # message fills, then the kernel's buffers, then the sender's queue.
    s = ctx.socket(zmq.PULL if sys.argv[2] == "pull" else zmq.SUB)
    s.rcvhwm = 1
    s.linger = 0
    if sys.argv[2] == "sub":
        s.subscribe(b"")
        s.connect("tcp://127.0.0.1:" + sys.argv[3])
        print("connected", flush=True)
    else:
        print(s.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    time.sleep(60)
elif role == "slowpull":
    s = ctx.socket(zmq.PULL)
    s.rcvhwm = 10
    s.linger = 0
    s.rcvtimeo = 30000
    print(s.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    n = int(sys.argv[2])
    for i in range(n):
        frames = s.recv_multipart()
        if frames[0] != str(i).encode():
            print("out of order at", i, frames[0], flush=True)
            sys.exit(1)
        time.sleep(0.001)
    print("ok", n, flush=True)
elif role == "fastpush":
    s = ctx.socket(zmq.PUSH)
    s.sndhwm = 10
    s.sndtimeo = 100
    s.linger = 30000
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    body = b"x" * int(sys.argv[4])
    blocked = 0
    for i in range(int(sys.argv[3])):
        while True:
            try:
                s.send_multipart([str(i).encode(), body])
                break
            except zmq.Again:
                blocked += 1
    s.close()
    ctx.term()
    print("blocked", blocked, flush=True)
elif role == "rrouter":
    s = ctx.socket(zmq.ROUTER)
    if len(sys.argv) > 2:
        s.routing_id = sys.argv[2].encode()
    s.linger = 0
    s.rcvtimeo = 60000
    print(s.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    while True:
        ident, *frames = s.recv_multipart()
        s.send_multipart([ident] + frames[:-1] + [b"re:" + frames[-1]])
elif role == "rrouter-connect":
    s = ctx.socket(zmq.ROUTER)
    s.routing_id = b"cli"
    s.linger = 0
    s.rcvtimeo = 50
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    for _ in range(600):
        s.send_multipart([b"monocoque", b"hi"])
        try:
            show(s.recv_multipart())
            break
        except zmq.Again:
            pass
    time.sleep(30)
elif role == "dreq":
    s = ctx.socket(zmq.DEALER)
    s.linger = 1000
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    s.send_multipart([b"", b"hi"])
    recv_some(s, 1)
elif role == "decho":
    s = ctx.socket(zmq.DEALER)
    s.linger = 1000
    s.rcvtimeo = 60000
    if len(sys.argv) > 2:
        s.connect("tcp://127.0.0.1:" + sys.argv[2])
        s.send_multipart([b"hello"])
    else:
        print(s.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    while True:
        s.send_multipart([b"re:" + f for f in s.recv_multipart()])
elif role == "xpub":
    s = ctx.socket(zmq.XPUB)
    s.linger = 0
    s.rcvtimeo = 60000
    print(s.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    show([s.recv()])
    for i in range(3000):
        s.send_multipart([b"other", b"skip"])
        s.send_multipart([b"news/" + str(i).encode(), b"x"])
        time.sleep(0.02)
elif role == "pub":
    s = ctx.socket(zmq.PUB)
    s.linger = 0
    if len(sys.argv) > 2:
        port = sys.argv[2]
        s.bind("tcp://127.0.0.1:" + port)
        tag = sys.argv[3].encode()
    else:
        port = s.bind_to_random_port("tcp://127.0.0.1")
        tag = b"x"
    print(port, flush=True)
    for i in range(3000):
        s.send_multipart([b"other", b"skip"])
        s.send_multipart([b"news/" + str(i).encode(), tag])
        time.sleep(0.02)
"#;

/// The peer process (killed on drop), its output lines read on a thread so the test
/// keeps turning its socket while it waits for them.
struct Peer {
    child: Child,
    lines: Receiver<String>,
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
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in stdout.lines() {
                let Ok(line) = line else { return };
                if tx.send(line.trim().to_string()).is_err() {
                    return;
                }
            }
        });
        Peer { child, lines }
    }

    /// The next line, waiting at most [`PATIENCE`] while `socket` keeps turning.
    fn line(&mut self, socket: &mut Socket) -> String {
        let start = Instant::now();
        loop {
            if let Ok(line) = self.lines.try_recv() {
                return line;
            }
            assert!(start.elapsed() < PATIENCE, "the peer printed nothing for {PATIENCE:?}");
            socket.run_for(Duration::from_millis(10)).expect("turn");
        }
    }

    /// A peer that binds, and the port it printed.
    fn bound(args: &[&str], socket: &mut Socket) -> (Peer, u16) {
        let mut peer = Peer::start(args);
        let port = peer.line(socket).parse().expect("the peer prints its port first");
        (peer, port)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn shown(frames: &[&[u8]]) -> String {
    frames.iter().map(|f: &&[u8]| hex(f)).collect::<Vec<_>>().join(",")
}

fn recv(socket: &mut Socket, what: &str) -> Vec<Bytes> {
    socket.recv(PATIENCE).expect("recv").map(Vec::from).unwrap_or_else(|| {
        panic!(
            "{what}: nothing within {PATIENCE:?} ({} connections now)",
            socket.connections()
        )
    })
}

fn our_dealer_to_libzmq_routers(kind: DriverKind) {
    let mut dealer = socket(kind, SocketType::Dealer);
    let (_a, port_a) = Peer::bound(&["router"], &mut dealer);
    let (_b, port_b) = Peer::bound(&["router"], &mut dealer);
    dealer.connect(&format!("tcp://127.0.0.1:{port_a}")).unwrap();
    dealer.connect(&format!("tcp://127.0.0.1:{port_b}")).unwrap();
    for i in 0..4u8 {
        dealer
            .send(vec![Bytes::from_static(b"req"), Bytes::from(vec![i])])
            .unwrap();
    }
    let mut per_port = std::collections::HashMap::<Bytes, Vec<u8>>::new();
    for _ in 0..4 {
        let reply = recv(&mut dealer, "a reply");
        assert_eq!(reply.len(), 4, "{kind}: {reply:?}");
        assert_eq!(&reply[0][..], b"reply");
        assert_eq!(&reply[2][..], b"req");
        per_port.entry(reply[1].clone()).or_default().push(reply[3][0]);
    }
    // Round robin: two each, alternating.
    let mut got: Vec<_> = per_port.into_iter().collect();
    got.sort();
    let mut expected = vec![Bytes::from(port_a.to_string()), Bytes::from(port_b.to_string())];
    expected.sort();
    let counts: Vec<_> = got.iter().map(|(p, ids)| (p.clone(), ids.len())).collect();
    assert_eq!(
        counts,
        expected.into_iter().map(|p| (p, 2)).collect::<Vec<_>>(),
        "{kind}"
    );
    let mut ids: Vec<u8> = got.iter().flat_map(|(_, ids)| ids.clone()).collect();
    ids.sort();
    assert_eq!(ids, vec![0, 1, 2, 3], "{kind}");
    for (_, ids) in &got {
        let mut ids = ids.clone();
        ids.sort();
        assert!(
            ids == vec![0, 2] || ids == vec![1, 3],
            "{kind}: not alternating: {got:?}"
        );
    }
}

fn libzmq_dealers_to_our_router(kind: DriverKind) {
    let mut router = socket(kind, SocketType::Router);
    let port = router.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let mut alpha = Peer::start(&["dealer", "alpha", &port]);
    let mut beta = Peer::start(&["dealer", "beta", &port]);
    let mut seen = Vec::new();
    for _ in 0..2 {
        let message = recv(&mut router, "a dealer's message");
        assert_eq!(message.len(), 2, "{kind}: {message:?}");
        let mut expected = b"from ".to_vec();
        expected.extend_from_slice(&message[0]);
        assert_eq!(
            &message[1][..],
            &expected[..],
            "{kind}: the identity frame names the sender"
        );
        seen.push(message[0].clone());
    }
    seen.sort();
    assert_eq!(seen, vec![Bytes::from_static(b"alpha"), Bytes::from_static(b"beta")]);
    router
        .send(vec![Bytes::from_static(b"nobody"), Bytes::from_static(b"x")])
        .unwrap();
    assert_eq!(router.dropped(), 1, "{kind}: unroutable is dropped");
    for id in [&b"beta"[..], b"alpha"] {
        router
            .send(vec![
                Bytes::copy_from_slice(id),
                Bytes::from_static(b"for"),
                Bytes::copy_from_slice(id),
            ])
            .unwrap();
    }
    assert!(router.flush(PATIENCE).unwrap(), "{kind}: replies flushed");
    assert_eq!(alpha.line(&mut router), shown(&[b"for", b"alpha"]), "{kind}");
    assert_eq!(beta.line(&mut router), shown(&[b"for", b"beta"]), "{kind}");
}

fn our_push_to_libzmq_pull(kind: DriverKind) {
    let mut push = socket(kind, SocketType::Push);
    let (mut pull, port) = Peer::bound(&["pull"], &mut push);
    push.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    for i in 0..100 {
        push.send(vec![Bytes::from_static(b"m"), Bytes::from(i.to_string())])
            .unwrap();
    }
    for i in 0..100 {
        assert_eq!(pull.line(&mut push), shown(&[b"m", i.to_string().as_bytes()]), "{kind}");
    }
}

fn our_push_waits_and_reconnects_for_its_pull(kind: DriverKind) {
    let mut push = socket(kind, SocketType::Push);
    let port = support::free_port().to_string();
    // Nothing listens yet: refused, redialed every 100 ms, messages queued meanwhile.
    push.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    for i in 0..10 {
        push.send(vec![Bytes::from(i.to_string())]).unwrap();
    }
    push.run_for(Duration::from_millis(300)).unwrap();
    let mut pull = Peer::start(&["pull", &port]);
    assert_eq!(pull.line(&mut push), port);
    for i in 0..10 {
        assert_eq!(pull.line(&mut push), hex(i.to_string().as_bytes()), "{kind}");
    }
}

fn libzmq_push_to_our_pull(kind: DriverKind) {
    let mut pull = socket(kind, SocketType::Pull);
    let port = pull.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let _push = Peer::start(&["push", &port, "100"]);
    for i in 0..100 {
        let what = format!("pushed message {i} ({} connections)", pull.connections());
        let message = recv(&mut pull, &what);
        assert_eq!(
            message,
            vec![Bytes::from_static(b"m"), Bytes::from(i.to_string())],
            "{kind}"
        );
    }
}

fn our_pub_to_libzmq_sub_and_xsub(kind: DriverKind) {
    let mut publisher = socket(kind, SocketType::Pub);
    let port = publisher.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let mut peers = [Peer::start(&["sub", &port]), Peer::start(&["xsub", &port])];
    let mut lines: [Vec<String>; 2] = Default::default();
    let start = Instant::now();
    let mut i = 0;
    while lines.iter().any(|l| l.len() < 3) {
        assert!(start.elapsed() < PATIENCE, "{kind}: subscribers got {lines:?}");
        publisher
            .send(vec![Bytes::from_static(b"other"), Bytes::from_static(b"skip")])
            .unwrap();
        publisher
            .send(vec![Bytes::from(format!("news/{i}")), Bytes::from_static(b"x")])
            .unwrap();
        i += 1;
        publisher.run_for(Duration::from_millis(20)).unwrap();
        for (peer, got) in peers.iter_mut().zip(lines.iter_mut()) {
            while let Ok(line) = peer.lines.try_recv() {
                got.push(line);
            }
        }
    }
    for got in &lines {
        for line in got {
            assert!(line.starts_with(&hex(b"news/")), "{kind}: only news passes: {lines:?}");
            assert!(line.ends_with(&format!(",{}", hex(b"x"))), "{kind}: {line}");
        }
    }
}

fn libzmq_pub_to_our_sub(kind: DriverKind) {
    let mut sub = socket(kind, SocketType::Sub);
    let (_publisher, port) = Peer::bound(&["pub"], &mut sub);
    sub.subscribe(Bytes::from_static(b"news"));
    sub.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    for _ in 0..3 {
        let message = recv(&mut sub, "a publication");
        assert!(message[0].starts_with(b"news/"), "{kind}: {message:?}");
        assert_eq!(&message[1][..], b"x");
    }
}

/// A 64 KiB message: a few hundred fill the kernel's buffers on loopback.
fn big(i: usize) -> Vec<Bytes> {
    vec![Bytes::from(i.to_string()), Bytes::from(vec![b'x'; 64 << 10])]
}

/// libzmq's semantics at the HWM for a PUSH: once the peer stops reading and every
/// queue is full, `send` blocks (here: times out and gives the message back).
fn our_push_blocks_at_the_hwm(kind: DriverKind) {
    let options = Options {
        driver: kind,
        send_hwm: 4,
        send_timeout: Some(Duration::from_secs(1)),
        linger: Some(Duration::ZERO),
        ..Options::default()
    };
    let mut push = Socket::with_options(SocketType::Push, options).unwrap();
    let (_pull, port) = Peer::bound(&["stall", "pull"], &mut push);
    push.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    // At most 2000 x 64 KiB (128 MiB) before the kernel's buffers must be full.
    let blocked_at = (0..2000).find(|&i| match push.send(big(i)) {
        Ok(()) => false,
        Err(monocoque::zmq::ZmqError::SendTimeout(back)) => {
            assert_eq!(back, big(i), "{kind}: the message comes back whole");
            true
        }
        Err(e) => panic!("{kind}: {e}"),
    });
    assert!(blocked_at.is_some_and(|i| i >= 4), "{kind}: blocked at {blocked_at:?}");
}

/// ... and for a PUB: it never blocks, it drops for the subscriber that is behind.
fn our_pub_drops_at_the_hwm(kind: DriverKind) {
    let options = Options {
        driver: kind,
        send_hwm: 4,
        // Were a PUB to block, `send` would fail instead of waiting forever.
        send_timeout: Some(PATIENCE),
        linger: Some(Duration::ZERO),
        ..Options::default()
    };
    let mut publisher = Socket::with_options(SocketType::Pub, options).unwrap();
    let port = publisher.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let mut sub = Peer::start(&["stall", "sub", &port]);
    assert_eq!(sub.line(&mut publisher), "connected");
    let start = Instant::now();
    let mut sent = 0;
    while publisher.dropped() == 0 {
        assert!(start.elapsed() < PATIENCE, "{kind}: {sent} sent, none dropped");
        for _ in 0..50 {
            publisher.send(big(sent)).unwrap();
            sent += 1;
        }
        publisher.run_for(Duration::from_millis(1)).unwrap();
    }
    assert!(publisher.dropped() as usize <= sent, "{kind}");
}

/// 2000 messages of 16 KiB: 32 MiB, more than loopback's kernel buffers hold.
const SLOW_COUNT: usize = 2000;
const SLOW_SIZE: usize = 16 << 10;

/// Our PUSH to a libzmq PULL that reads a message a millisecond: the queue stays under
/// the send HWM in bytes (the sends block, here time out and are retried), and every
/// message arrives, in order.
fn our_push_to_a_slow_libzmq_pull_is_held_back_in_bytes(kind: DriverKind) {
    const HWM_BYTES: usize = 64 << 10;
    let options = Options {
        driver: kind,
        send_hwm_bytes: HWM_BYTES,
        send_timeout: Some(Duration::from_millis(50)),
        linger: Some(PATIENCE),
        ..Options::default()
    };
    let mut push = Socket::with_options(SocketType::Push, options).unwrap();
    let (mut pull, port) = Peer::bound(&["slowpull", &SLOW_COUNT.to_string()], &mut push);
    push.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let body = Bytes::from(vec![b'x'; SLOW_SIZE]);
    let (mut blocked, mut most_queued) = (0, 0);
    for i in 0..SLOW_COUNT {
        let mut message = vec![Bytes::from(i.to_string()), body.clone()];
        loop {
            match push.send(message) {
                Ok(()) => break,
                Err(monocoque::zmq::ZmqError::SendTimeout(back)) => {
                    blocked += 1;
                    message = back.into_vec();
                }
                Err(e) => panic!("{kind}: {e}"),
            }
        }
        most_queued = most_queued.max(push.queued().1);
    }
    assert!(
        most_queued <= HWM_BYTES,
        "{kind}: {most_queued} bytes queued, over the {HWM_BYTES} byte HWM"
    );
    assert!(blocked > 0, "{kind}: the slow peer never held our sends back");
    assert!(push.flush(PATIENCE).unwrap(), "{kind}: everything written");
    assert_eq!(pull.line(&mut push), format!("ok {SLOW_COUNT}"), "{kind}");
    assert!(push.close().unwrap(), "{kind}");
}

/// Runs `pull` (receive HWM 10) without taking anything until its queue is full (the
/// Python peer may take seconds to start on a loaded machine), then a while longer:
/// what it holds never passes the HWM.
fn fill_to_the_hwm(pull: &mut Socket, kind: DriverKind) {
    let deadline = std::time::Instant::now() + PATIENCE;
    while pull.received_len() < 10 && std::time::Instant::now() < deadline {
        pull.run_for(Duration::from_millis(50)).unwrap();
        assert!(pull.received_len() <= 10, "{kind}: {} held", pull.received_len());
    }
    for _ in 0..10 {
        pull.run_for(Duration::from_millis(50)).unwrap();
        assert!(pull.received_len() <= 10, "{kind}: {} held", pull.received_len());
    }
    assert_eq!(pull.received_len(), 10, "{kind}: the queue filled up to the HWM");
}

/// A libzmq PUSH sending faster than our PULL takes: our PULL holds at most its
/// receive HWM and stops reading, TCP pushes back until the libzmq PUSH's own HWM
/// blocks it; then every message is received, in order.
fn our_pull_at_its_receive_hwm_holds_a_fast_libzmq_push_back(kind: DriverKind) {
    let options = Options {
        driver: kind,
        recv_hwm: 10,
        linger: Some(Duration::ZERO),
        ..Options::default()
    };
    let mut pull = Socket::with_options(SocketType::Pull, options).unwrap();
    let port = pull.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let mut push = Peer::start(&["fastpush", &port, &SLOW_COUNT.to_string(), &SLOW_SIZE.to_string()]);
    fill_to_the_hwm(&mut pull, kind);
    for i in 0..SLOW_COUNT {
        let message = recv(&mut pull, "a pushed message");
        assert_eq!(message[0], Bytes::from(i.to_string()), "{kind}: in order");
        assert_eq!(message[1].len(), SLOW_SIZE, "{kind}");
    }
    let line = push.line(&mut pull);
    let blocked: usize = line
        .strip_prefix("blocked ")
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{kind}: {line}"));
    assert!(blocked > 0, "{kind}: the libzmq PUSH was never held back");
}

/// `recv_batch` against a fast libzmq PUSH held at our receive HWM: the first batch
/// holds at least what the socket held, every batch is in order, the socket never
/// holds more than the HWM between calls, and nothing is lost.
fn our_pull_takes_batches_from_a_fast_libzmq_push(kind: DriverKind) {
    let options = Options {
        driver: kind,
        recv_hwm: 10,
        linger: Some(Duration::ZERO),
        ..Options::default()
    };
    let mut pull = Socket::with_options(SocketType::Pull, options).unwrap();
    let port = pull.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let mut push = Peer::start(&["fastpush", &port, &SLOW_COUNT.to_string(), &SLOW_SIZE.to_string()]);
    fill_to_the_hwm(&mut pull, kind);
    let mut batch = Vec::new();
    let first = pull.recv_batch(&mut batch, PATIENCE).unwrap();
    assert!(
        first >= 10,
        "{kind}: the first batch took {first}, fewer than were held"
    );
    let mut next = 0;
    while next < SLOW_COUNT {
        if batch.is_empty() {
            let n = pull.recv_batch(&mut batch, PATIENCE).unwrap();
            assert!(n > 0, "{kind}: nothing within {PATIENCE:?} after {next}");
            assert_eq!(n, batch.len(), "{kind}: the count returned");
        }
        assert!(pull.received_len() <= 10, "{kind}: {} held", pull.received_len());
        for message in batch.drain(..) {
            assert_eq!(message[0], Bytes::from(next.to_string()), "{kind}: in order");
            assert_eq!(message[1].len(), SLOW_SIZE, "{kind}");
            next += 1;
        }
    }
    assert_eq!(next, SLOW_COUNT, "{kind}: no more than was sent");
    let line = push.line(&mut pull);
    assert!(line.starts_with("blocked "), "{kind}: {line}");
    assert_eq!(
        pull.recv_batch(&mut batch, Duration::from_millis(100)).unwrap(),
        0,
        "{kind}"
    );
}

/// `close` lingers until what was sent is written (the messages arrive though the
/// socket is gone), and says false when a peer never came within the linger time.
fn close_lingers_and_says_whether_everything_went(kind: DriverKind) {
    let mut push = socket(kind, SocketType::Push);
    let (mut pull, port) = Peer::bound(&["pull"], &mut push);
    push.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    for i in 0..100 {
        push.send(vec![Bytes::from(i.to_string())]).unwrap();
    }
    assert!(push.close().unwrap(), "{kind}: everything written");
    let mut other = socket(kind, SocketType::Pull);
    for i in 0..100 {
        assert_eq!(pull.line(&mut other), hex(i.to_string().as_bytes()), "{kind}");
    }

    let options = Options {
        driver: kind,
        linger: Some(Duration::from_millis(300)),
        ..Options::default()
    };
    let mut push = Socket::with_options(SocketType::Push, options).unwrap();
    push.connect(&format!("tcp://127.0.0.1:{}", support::free_port()))
        .unwrap();
    push.send(vec![Bytes::from_static(b"nobody")]).unwrap();
    let start = Instant::now();
    assert!(!push.close().unwrap(), "{kind}: no peer came: not delivered");
    assert!(start.elapsed() >= Duration::from_millis(300), "{kind}: lingered");
}

/// A SUB whose publisher restarts on the same port: redialed, and subscribed again
/// (the new publisher knows nothing of the old subscription and would filter
/// everything out).
fn our_sub_resubscribes_after_the_pub_restarts(kind: DriverKind) {
    let mut sub = socket(kind, SocketType::Sub);
    let port = support::free_port().to_string();
    let first = Peer::start(&["pub", &port, "first"]);
    sub.subscribe(Bytes::from_static(b"news"));
    sub.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let message = recv(&mut sub, "from the first publisher");
    assert_eq!(&message[1][..], b"first", "{kind}");
    drop(first);
    let _second = Peer::start(&["pub", &port, "second"]);
    let start = Instant::now();
    loop {
        let message = recv(&mut sub, "from the second publisher");
        assert!(message[0].starts_with(b"news/"), "{kind}: {message:?}");
        if &message[1][..] == b"second" {
            break;
        }
        assert!(
            start.elapsed() < PATIENCE,
            "{kind}: only the first publisher's messages"
        );
    }
}

fn our_req_to_libzmq_rep(kind: DriverKind) {
    let mut req = socket(kind, SocketType::Req);
    let (_rep, port) = Peer::bound(&["rep"], &mut req);
    req.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    for i in 0..3 {
        req.send(vec![Bytes::from(format!("q{i}"))]).unwrap();
        assert!(
            matches!(
                req.send(vec![Bytes::from_static(b"too soon")]),
                Err(monocoque::zmq::ZmqError::Socket(_))
            ),
            "{kind}: a REQ alternates"
        );
        let reply = recv(&mut req, "the REP's reply");
        assert_eq!(
            reply,
            vec![Bytes::from_static(b"echo"), Bytes::from(format!("q{i}"))],
            "{kind}"
        );
    }
}

fn our_relaxed_correlated_req_to_a_late_libzmq_rep(kind: DriverKind) {
    // ZMQ_REQ_RELAXED lets a second request go while the first is unanswered;
    // ZMQ_REQ_CORRELATE makes the REP's late answer to the first (it echoes the id
    // frame back) not count as the second's reply. Without the id the late "one" would
    // be delivered as the answer to "two", as libzmq documents.
    let mut req = Socket::with_options(
        SocketType::Req,
        Options {
            driver: kind,
            req_relaxed: true,
            req_correlate: true,
            ..Options::default()
        },
    )
    .unwrap();
    let (mut rep, port) = Peer::bound(&["laterep"], &mut req);
    req.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    req.send(vec![Bytes::from_static(b"one")]).unwrap();
    assert_eq!(rep.line(&mut req), format!("got{}", hex(b"one")), "{kind}");
    req.send(vec![Bytes::from_static(b"two")]).unwrap();
    let reply = recv(&mut req, "the reply to the second request");
    assert_eq!(
        reply,
        [Bytes::from_static(b"echo"), Bytes::from_static(b"two")],
        "{kind}: the late reply to the first was taken"
    );
}

fn a_relaxed_correlated_libzmq_req_to_our_rep(kind: DriverKind) {
    // libzmq's REQ checks the id it put in front of its request: our REP sends the
    // whole envelope back, so its reply to the second request is the one delivered.
    let mut rep = socket(kind, SocketType::Rep);
    let port = rep.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let mut peer = Peer::start(&["creq", &port]);
    for _ in 0..2 {
        let request = recv(&mut rep, "a request");
        assert_eq!(
            request.len(),
            1,
            "{kind}: the id and envelope are not delivered: {request:?}"
        );
        rep.send(vec![Bytes::from_static(b"re"), request[0].clone()]).unwrap();
    }
    assert_eq!(peer.line(&mut rep), shown(&[b"re", b"two"]), "{kind}");
}

fn libzmq_reqs_to_our_rep(kind: DriverKind) {
    let mut rep = socket(kind, SocketType::Rep);
    let port = rep.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let mut peers = [
        Peer::start(&["req", "alpha", &port]),
        Peer::start(&["req", "beta", &port]),
    ];
    for _ in 0..2 {
        let request = recv(&mut rep, "a request");
        assert_eq!(request.len(), 1, "{kind}: the envelope is not delivered: {request:?}");
        rep.send(vec![Bytes::from_static(b"to"), request[0].clone()]).unwrap();
    }
    for (peer, id) in peers.iter_mut().zip(["alpha", "beta"]) {
        let expected = shown(&[b"to", format!("from {id}").as_bytes()]);
        assert_eq!(peer.line(&mut rep), expected, "{kind}: each REQ gets its own reply");
    }
}

fn pair_with_libzmq_both_ways(kind: DriverKind) {
    let mut ours = socket(kind, SocketType::Pair);
    let port = ours.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let mut theirs = Peer::start(&["pair", &port]);
    assert_eq!(
        recv(&mut ours, "the PAIR's ping"),
        vec![Bytes::from_static(b"ping")],
        "{kind}"
    );
    ours.send(vec![Bytes::from_static(b"back")]).unwrap();
    assert_eq!(theirs.line(&mut ours), hex(b"back"), "{kind}");

    let mut ours = socket(kind, SocketType::Pair);
    let (_theirs, port) = Peer::bound(&["pair"], &mut ours);
    ours.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    assert!(
        matches!(
            ours.connect(&format!("tcp://127.0.0.1:{port}")),
            Err(monocoque::zmq::ZmqError::Socket(_))
        ),
        "{kind}: a PAIR has one peer"
    );
    ours.send(vec![Bytes::from_static(b"hi")]).unwrap();
    let reply = recv(&mut ours, "the PAIR's pong");
    assert_eq!(
        reply,
        vec![Bytes::from_static(b"pong"), Bytes::from_static(b"hi")],
        "{kind}"
    );
}

fn our_xpub_to_libzmq_sub(kind: DriverKind) {
    our_xpub_filters_for(kind, "sub");
}

/// Our XPUB reads the subscription of a libzmq `role` (SUB or XSUB) peer, then
/// publishes news and other topics until the peer printed three messages: all news.
fn our_xpub_filters_for(kind: DriverKind, role: &str) {
    let mut xpub = socket(kind, SocketType::Xpub);
    let port = xpub.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let peer = Peer::start(&[role, &port]);
    let subscription = recv(&mut xpub, "the peer's subscription");
    assert_eq!(subscription, vec![Bytes::from_static(b"\x01news")], "{kind} {role}");
    let mut lines = Vec::new();
    let start = Instant::now();
    for i in 0.. {
        assert!(start.elapsed() < PATIENCE, "{kind}: the {role} got {lines:?}");
        xpub.send(vec![Bytes::from_static(b"other"), Bytes::from_static(b"skip")])
            .unwrap();
        xpub.send(vec![Bytes::from(format!("news/{i}")), Bytes::from_static(b"x")])
            .unwrap();
        xpub.run_for(Duration::from_millis(20)).unwrap();
        lines.extend(peer.lines.try_iter());
        if lines.len() >= 3 {
            break;
        }
    }
    assert!(
        lines.iter().all(|l| l.starts_with(&hex(b"news/"))),
        "{kind} {role}: {lines:?}"
    );
}

fn our_xpub_holds_a_subscription_flood_at_its_receive_hwm(kind: DriverKind) {
    // An XPUB delivers its peers' subscriptions to `recv`: a peer that sends thousands
    // while the application does not read is held at the receive HWM (its socket is
    // not read, TCP pushes back) and nothing is lost once the application reads.
    const N: usize = 5_000;
    const HWM: usize = 10;
    let mut xpub = Socket::with_options(
        SocketType::Xpub,
        Options {
            driver: kind,
            recv_hwm: HWM,
            ..Options::default()
        },
    )
    .unwrap();
    let port = xpub.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let mut peer = Peer::start(&["xsubflood", &port, &N.to_string()]);
    assert_eq!(peer.line(&mut xpub), "sent", "{kind}");
    for _ in 0..5 {
        xpub.run_for(Duration::from_millis(100)).unwrap();
    }
    assert!(
        xpub.received_len() <= HWM,
        "{kind}: {} subscriptions queued past the receive HWM of {HWM}",
        xpub.received_len()
    );
    for i in 0..N {
        let event = recv(&mut xpub, "a subscription");
        assert_eq!(
            event,
            vec![Bytes::from(format!("\x01t{i}"))],
            "{kind}: in order, none lost"
        );
    }
}

fn our_xsub_to_libzmq_pub(kind: DriverKind) {
    let mut xsub = socket(kind, SocketType::Xsub);
    let (_publisher, port) = Peer::bound(&["pub"], &mut xsub);
    xsub.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    xsub.send(vec![Bytes::from_static(b"\x01news")]).unwrap();
    for _ in 0..3 {
        let message = recv(&mut xsub, "a publication");
        assert!(message[0].starts_with(b"news/"), "{kind}: {message:?}");
    }
}

fn our_req_to_libzmq_router(kind: DriverKind) {
    let mut req = socket(kind, SocketType::Req);
    let (_router, port) = Peer::bound(&["rrouter"], &mut req);
    req.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    for i in 0..3 {
        req.send(vec![Bytes::from(format!("q{i}"))]).unwrap();
        // The ROUTER saw [our identity, "", body] and kept the envelope in its reply.
        assert_eq!(
            recv(&mut req, "the ROUTER's reply"),
            vec![Bytes::from(format!("re:q{i}"))],
            "{kind}"
        );
    }
}

fn libzmq_req_to_our_router(kind: DriverKind) {
    let mut router = socket(kind, SocketType::Router);
    let port = router.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let mut req = Peer::start(&["req", "alpha", &port]);
    let request = recv(&mut router, "the REQ's request");
    assert_eq!(request.len(), 3, "{kind}: [identity, delimiter, body]: {request:?}");
    assert!(request[1].is_empty(), "{kind}: the empty delimiter: {request:?}");
    assert_eq!(&request[2][..], b"from alpha", "{kind}");
    router
        .send(vec![request[0].clone(), Bytes::new(), Bytes::from_static(b"back")])
        .unwrap();
    assert_eq!(req.line(&mut router), hex(b"back"), "{kind}");
}

fn our_dealer_to_libzmq_rep(kind: DriverKind) {
    let mut dealer = socket(kind, SocketType::Dealer);
    let (_rep, port) = Peer::bound(&["rep"], &mut dealer);
    dealer.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    // A DEALER talking to a REP writes the delimiter a REQ would.
    dealer.send(vec![Bytes::new(), Bytes::from_static(b"hi")]).unwrap();
    assert_eq!(
        recv(&mut dealer, "the REP's reply"),
        vec![Bytes::new(), Bytes::from_static(b"echo"), Bytes::from_static(b"hi")],
        "{kind}"
    );
}

fn libzmq_dealer_to_our_rep(kind: DriverKind) {
    let mut rep = socket(kind, SocketType::Rep);
    let port = rep.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let mut dealer = Peer::start(&["dreq", &port]);
    assert_eq!(
        recv(&mut rep, "the DEALER's request"),
        vec![Bytes::from_static(b"hi")],
        "{kind}: the envelope stays in the REP"
    );
    rep.send(vec![Bytes::from_static(b"back")]).unwrap();
    assert_eq!(dealer.line(&mut rep), shown(&[b"", b"back"]), "{kind}");
}

fn dealer_with_libzmq_dealer_both_ways(kind: DriverKind) {
    let mut ours = socket(kind, SocketType::Dealer);
    let port = ours.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let _theirs = Peer::start(&["decho", &port]);
    assert_eq!(
        recv(&mut ours, "the DEALER's hello"),
        vec![Bytes::from_static(b"hello")],
        "{kind}"
    );
    ours.send(vec![Bytes::from_static(b"a"), Bytes::from_static(b"b")])
        .unwrap();
    assert_eq!(
        recv(&mut ours, "the echo"),
        vec![Bytes::from_static(b"re:a"), Bytes::from_static(b"re:b")],
        "{kind}"
    );

    let mut ours = socket(kind, SocketType::Dealer);
    let (_theirs, port) = Peer::bound(&["decho"], &mut ours);
    ours.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    ours.send(vec![Bytes::from_static(b"x")]).unwrap();
    assert_eq!(recv(&mut ours, "the echo"), vec![Bytes::from_static(b"re:x")], "{kind}");
}

fn router_with_libzmq_router_both_ways(kind: DriverKind) {
    // Ours connects to a ROUTER whose routing id `srv` came in its READY: messages to
    // `srv` are dropped until the handshake is done, then routed.
    let mut ours = socket(kind, SocketType::Router);
    let (_theirs, port) = Peer::bound(&["rrouter", "srv"], &mut ours);
    ours.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    let start = Instant::now();
    let reply = loop {
        assert!(start.elapsed() < PATIENCE, "{kind}: `srv` never became routable");
        ours.send(vec![Bytes::from_static(b"srv"), Bytes::from_static(b"x")])
            .unwrap();
        if let Some(reply) = ours.recv(Duration::from_millis(50)).unwrap() {
            break reply;
        }
    };
    assert_eq!(
        reply,
        vec![Bytes::from_static(b"srv"), Bytes::from_static(b"re:x")],
        "{kind}"
    );

    // A libzmq ROUTER (`cli`) connects to ours and routes to our identity.
    let mut ours = socket(kind, SocketType::Router);
    let port = ours.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let mut theirs = Peer::start(&["rrouter-connect", &port]);
    let message = recv(&mut ours, "the connecting ROUTER's message");
    assert_eq!(
        message,
        vec![Bytes::from_static(b"cli"), Bytes::from_static(b"hi")],
        "{kind}"
    );
    ours.send(vec![Bytes::from_static(b"cli"), Bytes::from_static(b"back")])
        .unwrap();
    assert_eq!(theirs.line(&mut ours), shown(&[b"monocoque", b"back"]), "{kind}");
}

fn our_xpub_to_libzmq_xsub(kind: DriverKind) {
    our_xpub_filters_for(kind, "xsub");
}

fn our_xsub_to_libzmq_xpub(kind: DriverKind) {
    let mut xsub = socket(kind, SocketType::Xsub);
    let (mut xpub, port) = Peer::bound(&["xpub"], &mut xsub);
    xsub.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    xsub.send(vec![Bytes::from_static(b"\x01news")]).unwrap();
    assert_eq!(
        xpub.line(&mut xsub),
        hex(b"\x01news"),
        "{kind}: the subscription as sent"
    );
    for _ in 0..3 {
        let message = recv(&mut xsub, "a publication");
        assert!(
            message[0].starts_with(b"news/"),
            "{kind}: filtered by the XPUB: {message:?}"
        );
    }
}

both_drivers! {
    our_req_to_libzmq_router => uring_our_req_to_libzmq_router, mio_our_req_to_libzmq_router;
    libzmq_req_to_our_router => uring_libzmq_req_to_our_router, mio_libzmq_req_to_our_router;
    our_dealer_to_libzmq_rep => uring_our_dealer_to_libzmq_rep, mio_our_dealer_to_libzmq_rep;
    libzmq_dealer_to_our_rep => uring_libzmq_dealer_to_our_rep, mio_libzmq_dealer_to_our_rep;
    dealer_with_libzmq_dealer_both_ways => uring_dealer_with_libzmq_dealer_both_ways, mio_dealer_with_libzmq_dealer_both_ways;
    router_with_libzmq_router_both_ways => uring_router_with_libzmq_router_both_ways, mio_router_with_libzmq_router_both_ways;
    our_xpub_to_libzmq_xsub => uring_our_xpub_to_libzmq_xsub, mio_our_xpub_to_libzmq_xsub;
    our_xsub_to_libzmq_xpub => uring_our_xsub_to_libzmq_xpub, mio_our_xsub_to_libzmq_xpub;
    our_xpub_holds_a_subscription_flood_at_its_receive_hwm => uring_our_xpub_holds_a_subscription_flood_at_its_receive_hwm, mio_our_xpub_holds_a_subscription_flood_at_its_receive_hwm;
    our_xpub_to_libzmq_sub => uring_our_xpub_to_libzmq_sub, mio_our_xpub_to_libzmq_sub;
    our_xsub_to_libzmq_pub => uring_our_xsub_to_libzmq_pub, mio_our_xsub_to_libzmq_pub;
    pair_with_libzmq_both_ways => uring_pair_with_libzmq_both_ways, mio_pair_with_libzmq_both_ways;
    our_req_to_libzmq_rep => uring_our_req_to_libzmq_rep, mio_our_req_to_libzmq_rep;
    libzmq_reqs_to_our_rep => uring_libzmq_reqs_to_our_rep, mio_libzmq_reqs_to_our_rep;
    our_relaxed_correlated_req_to_a_late_libzmq_rep => uring_our_relaxed_correlated_req_to_a_late_libzmq_rep, mio_our_relaxed_correlated_req_to_a_late_libzmq_rep;
    a_relaxed_correlated_libzmq_req_to_our_rep => uring_a_relaxed_correlated_libzmq_req_to_our_rep, mio_a_relaxed_correlated_libzmq_req_to_our_rep;
    our_sub_resubscribes_after_the_pub_restarts => uring_our_sub_resubscribes_after_the_pub_restarts, mio_our_sub_resubscribes_after_the_pub_restarts;
    our_push_blocks_at_the_hwm => uring_our_push_blocks_at_the_hwm, mio_our_push_blocks_at_the_hwm;
    our_pub_drops_at_the_hwm => uring_our_pub_drops_at_the_hwm, mio_our_pub_drops_at_the_hwm;
    close_lingers_and_says_whether_everything_went => uring_close_lingers_and_says_whether_everything_went, mio_close_lingers_and_says_whether_everything_went;
    our_push_to_a_slow_libzmq_pull_is_held_back_in_bytes => uring_our_push_to_a_slow_libzmq_pull_is_held_back_in_bytes, mio_our_push_to_a_slow_libzmq_pull_is_held_back_in_bytes;
    our_pull_at_its_receive_hwm_holds_a_fast_libzmq_push_back => uring_our_pull_at_its_receive_hwm_holds_a_fast_libzmq_push_back, mio_our_pull_at_its_receive_hwm_holds_a_fast_libzmq_push_back;
    our_pull_takes_batches_from_a_fast_libzmq_push => uring_our_pull_takes_batches_from_a_fast_libzmq_push, mio_our_pull_takes_batches_from_a_fast_libzmq_push;
    our_dealer_to_libzmq_routers => uring_our_dealer_to_libzmq_routers, mio_our_dealer_to_libzmq_routers;
    libzmq_dealers_to_our_router => uring_libzmq_dealers_to_our_router, mio_libzmq_dealers_to_our_router;
    our_push_to_libzmq_pull => uring_our_push_to_libzmq_pull, mio_our_push_to_libzmq_pull;
    our_push_waits_and_reconnects_for_its_pull => uring_our_push_waits_and_reconnects_for_its_pull, mio_our_push_waits_and_reconnects_for_its_pull;
    libzmq_push_to_our_pull => uring_libzmq_push_to_our_pull, mio_libzmq_push_to_our_pull;
    our_pub_to_libzmq_sub_and_xsub => uring_our_pub_to_libzmq_sub_and_xsub, mio_our_pub_to_libzmq_sub_and_xsub;
    libzmq_pub_to_our_sub => uring_libzmq_pub_to_our_sub, mio_libzmq_pub_to_our_sub;
}
