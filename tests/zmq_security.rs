//! CURVE and PLAIN in `monocoque::zmq::Socket`, against libzmq (through pyzmq, whose
//! libzmq must have CURVE: the peer refuses to start otherwise), on both drivers:
//!
//! - CURVE: our DEALER to a libzmq ROUTER server and a libzmq DEALER to our ROUTER
//!   server (its key checked by our authenticator); PUSH to PULL both ways;
//! - a wrong server key on either side: no message delivered, the reason kept in
//!   `Socket::last_error`; a client key our authenticator does not know: refused;
//! - PLAIN both ways (libzmq's server with a ZAP handler), a wrong password refused;
//! - a peer (our own engine over a raw TCP stream) sending a tampered `MESSAGE` box is
//!   disconnected, after a good one was delivered.

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::zmq::{generate_keypair, Authenticator, Options, Socket, SocketType};
use monocoque_proto::zmtp::curve::{CurveRandom, KeyPair, PublicKey};
use monocoque_proto::zmtp::{
    encode_header, Handshake, HandshakeConfig, Mechanism, Progress, SocketType as WireType, ZmtpError,
};
use monocoque_proto::{IoArena, SegmentedBuffer};
use support::zmq_peer::wait_error;

/// How long a step that takes milliseconds may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(30);

/// How long a refused peer is given to (wrongly) get a message through.
const REFUSAL: Duration = Duration::from_secs(3);

/// The Python peer; every role exits on its own within a minute.
///
/// Servers bind (port printed first): `curve-server KIND SECRET`, `plain-server KIND
/// USER PASSWORD` (with a ZAP handler that knows that one user). A ROUTER answers
/// `[id, frames...]` with `[id, b"reply", frames...]`; a PULL prints each message.
/// Clients connect: `curve-client KIND PORT SERVERKEY PUBLIC SECRET WAIT_MS`,
/// `plain-client KIND PORT USER PASSWORD WAIT_MS`. A DEALER sends `[b"from libzmq"]`
/// and prints the reply or `timeout` after WAIT_MS; a PUSH sends `[b"m", i]` for i in
/// 0..3 and lingers. Messages are printed as hex frames, comma separated.
const PEER: &str = r#"
import sys, time, zmq
from zmq.auth.thread import ThreadAuthenticator
if not zmq.has("curve"):
    sys.exit("this libzmq has no CURVE")
ctx = zmq.Context()
role, kind = sys.argv[1], sys.argv[2]
kinds = {"router": zmq.ROUTER, "dealer": zmq.DEALER, "push": zmq.PUSH, "pull": zmq.PULL}
s = ctx.socket(kinds[kind])
s.linger = 0
def show(frames):
    print(",".join(f.hex() for f in frames), flush=True)
def serve():
    print(s.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    s.rcvtimeo = 60000
    while True:
        frames = s.recv_multipart()
        if kind == "router":
            s.send_multipart([frames[0], b"reply"] + frames[1:])
        else:
            show(frames)
def act(port, wait_ms):
    s.connect("tcp://127.0.0.1:" + port)
    if kind == "dealer":
        s.rcvtimeo = wait_ms
        s.send_multipart([b"from libzmq"])
        try:
            show(s.recv_multipart())
        except zmq.Again:
            print("timeout", flush=True)
    else:
        for i in range(3):
            s.send_multipart([b"m", bytes([i])])
    time.sleep(60)
if role == "curve-server":
    s.curve_server = True
    s.curve_secretkey = sys.argv[3].encode()
    serve()
elif role == "plain-server":
    auth = ThreadAuthenticator(ctx)
    auth.start()
    auth.configure_plain(domain="*", passwords={sys.argv[3]: sys.argv[4]})
    s.plain_server = True
    serve()
elif role == "curve-client":
    s.curve_serverkey = sys.argv[4].encode()
    s.curve_publickey = sys.argv[5].encode()
    s.curve_secretkey = sys.argv[6].encode()
    act(sys.argv[3], int(sys.argv[7]))
elif role == "plain-client":
    s.plain_username = sys.argv[4].encode()
    s.plain_password = sys.argv[5].encode()
    act(sys.argv[3], int(sys.argv[6]))
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
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the pyzmq peer exited ({status}) without a line");
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

    /// Whether the peer printed nothing (it received nothing to print).
    fn silent(&mut self) -> bool {
        self.lines.try_recv().is_err()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn shown(frames: &[&[u8]]) -> String {
    frames.iter().map(|f| hex(f)).collect::<Vec<_>>().join(",")
}

fn z85(key: &PublicKey) -> String {
    key.to_z85()
}

fn secret(pair: &KeyPair) -> String {
    pair.secret.to_z85().as_str().to_owned()
}

fn base(kind: DriverKind) -> Options {
    Options {
        driver: kind,
        send_timeout: Some(PATIENCE),
        // A refused peer never takes what was queued: dropping must not wait forever
        // (libzmq's default linger, and ours).
        linger: Some(Duration::from_millis(200)),
        ..Options::default()
    }
}

fn curve_server(kind: DriverKind, keys: &KeyPair, allow: &[PublicKey]) -> Options {
    Options {
        curve_server: true,
        curve_secret_key: Some(Bytes::from(secret(keys))),
        authenticator: Some(Authenticator::curve_allow(allow.iter().copied())),
        ..base(kind)
    }
}

fn curve_client(kind: DriverKind, server: &PublicKey, keys: &KeyPair) -> Options {
    Options {
        curve_server_key: Some(Bytes::from(z85(server))),
        // Raw bytes this time: both forms are taken.
        curve_secret_key: Some(Bytes::copy_from_slice(keys.secret.as_bytes())),
        curve_public_key: Some(Bytes::from(z85(&keys.public))),
        ..base(kind)
    }
}

fn open(t: SocketType, options: Options) -> Socket {
    Socket::with_options(t, options).unwrap_or_else(|e| panic!("a {t} socket: {e}"))
}

fn recv(socket: &mut Socket, what: &str) -> Vec<Bytes> {
    socket.recv(PATIENCE).expect("recv").map(Vec::from).unwrap_or_else(|| {
        panic!(
            "{what}: nothing within {PATIENCE:?} (last error: {:?})",
            socket.last_error()
        )
    })
}

fn curve_dealer_and_router(kind: DriverKind) {
    let (server, client) = (generate_keypair().unwrap(), generate_keypair().unwrap());
    // Ours the client, libzmq the server.
    let mut dealer = open(SocketType::Dealer, curve_client(kind, &server.public, &client));
    let (_router, port) = Peer::bound(&["curve-server", "router", &secret(&server)], &mut dealer);
    dealer.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    dealer
        .send(vec![Bytes::from_static(b"hello"), Bytes::from(vec![9u8; 3000])])
        .unwrap();
    let reply = recv(&mut dealer, "libzmq's reply");
    assert_eq!(reply, [&b"reply"[..], b"hello", &[9u8; 3000][..]], "{kind}");
    assert_eq!(dealer.last_error(), None, "{kind}");

    // libzmq the client, ours the server; the client's key is the one allowed.
    let mut router = open(SocketType::Router, curve_server(kind, &server, &[client.public]));
    let port = router.bind("tcp://127.0.0.1:0").unwrap().port();
    let mut peer = Peer::start(&[
        "curve-client",
        "dealer",
        &port.to_string(),
        &z85(&server.public),
        &z85(&client.public),
        &secret(&client),
        "30000",
    ]);
    let request = recv(&mut router, "libzmq's request");
    assert_eq!(&request[1..], [&b"from libzmq"[..]], "{kind}");
    router
        .send(vec![request[0].clone(), Bytes::from_static(b"back")])
        .unwrap();
    assert_eq!(peer.line(&mut router), shown(&[b"back"]), "{kind}");
}

fn curve_push_and_pull(kind: DriverKind) {
    let (server, client) = (generate_keypair().unwrap(), generate_keypair().unwrap());
    let mut push = open(SocketType::Push, curve_client(kind, &server.public, &client));
    let (mut pull, port) = Peer::bound(&["curve-server", "pull", &secret(&server)], &mut push);
    push.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    for i in 0..3u8 {
        push.send(vec![Bytes::from_static(b"n"), Bytes::from(vec![i])]).unwrap();
    }
    for i in 0..3u8 {
        assert_eq!(pull.line(&mut push), shown(&[b"n", &[i]]), "{kind}");
    }

    let mut ours = open(SocketType::Pull, curve_server(kind, &server, &[client.public]));
    let port = ours.bind("tcp://127.0.0.1:0").unwrap().port();
    let _push = Peer::start(&[
        "curve-client",
        "push",
        &port.to_string(),
        &z85(&server.public),
        &z85(&client.public),
        &secret(&client),
        "0",
    ]);
    for i in 0..3u8 {
        assert_eq!(recv(&mut ours, "libzmq's push"), [&b"m"[..], &[i][..]], "{kind}");
    }
}

fn curve_refusals(kind: DriverKind) {
    let (server, client) = (generate_keypair().unwrap(), generate_keypair().unwrap());
    let impostor = generate_keypair().unwrap();

    // Our client expects another server key: libzmq's server cannot open HELLO and
    // closes; nothing is delivered either way.
    let mut dealer = open(SocketType::Dealer, curve_client(kind, &impostor.public, &client));
    let (mut router, port) = Peer::bound(&["curve-server", "router", &secret(&server)], &mut dealer);
    dealer.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    dealer.send(vec![Bytes::from_static(b"hello")]).unwrap();
    assert_eq!(wait_error(&mut dealer), ZmtpError::ClosedDuringHandshake, "{kind}");
    assert_eq!(dealer.recv(REFUSAL).unwrap(), None, "{kind}");
    assert!(
        router.silent(),
        "{kind}: libzmq answered a message it should never have had"
    );

    // libzmq's client expects another server key: our server cannot open its HELLO.
    let mut ours = open(SocketType::Router, curve_server(kind, &server, &[client.public]));
    let port = ours.bind("tcp://127.0.0.1:0").unwrap().port();
    let mut peer = Peer::start(&[
        "curve-client",
        "dealer",
        &port.to_string(),
        &z85(&impostor.public),
        &z85(&client.public),
        &secret(&client),
        "3000",
    ]);
    assert_eq!(
        wait_error(&mut ours),
        ZmtpError::CurveBox { command: "HELLO" },
        "{kind}"
    );
    assert_eq!(peer.line(&mut ours), "timeout", "{kind}");
    assert_eq!(ours.recv(Duration::from_millis(100)).unwrap(), None, "{kind}");

    // The right server key, but a client key our authenticator does not know.
    let mut ours = open(SocketType::Router, curve_server(kind, &server, &[client.public]));
    let port = ours.bind("tcp://127.0.0.1:0").unwrap().port();
    let mut peer = Peer::start(&[
        "curve-client",
        "dealer",
        &port.to_string(),
        &z85(&server.public),
        &z85(&impostor.public),
        &secret(&impostor),
        "3000",
    ]);
    assert!(
        matches!(
            wait_error(&mut ours),
            ZmtpError::AuthenticationDenied { status: 400, .. }
        ),
        "{kind}: {:?}",
        ours.last_error()
    );
    assert_eq!(peer.line(&mut ours), "timeout", "{kind}");
    assert_eq!(ours.recv(Duration::from_millis(100)).unwrap(), None, "{kind}");
}

fn plain_both_ways(kind: DriverKind) {
    let plain_client = |password: &'static str| Options {
        plain_username: Some(Bytes::from_static(b"admin")),
        plain_password: Bytes::from_static(password.as_bytes()),
        ..base(kind)
    };
    // Ours the client of libzmq's PLAIN server (a ZAP handler knows admin/secret).
    let mut dealer = open(SocketType::Dealer, plain_client("secret"));
    let (_router, port) = Peer::bound(&["plain-server", "router", "admin", "secret"], &mut dealer);
    dealer.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    dealer.send(vec![Bytes::from_static(b"hi")]).unwrap();
    assert_eq!(recv(&mut dealer, "the reply"), [&b"reply"[..], b"hi"], "{kind}");

    let mut wrong = open(SocketType::Dealer, plain_client("guess"));
    wrong.connect(&format!("tcp://127.0.0.1:{port}")).unwrap();
    wrong.send(vec![Bytes::from_static(b"hi")]).unwrap();
    assert_eq!(
        wait_error(&mut wrong),
        ZmtpError::Refused { reason: "400".into() },
        "{kind}"
    );
    assert_eq!(wrong.recv(REFUSAL).unwrap(), None, "{kind}");

    // libzmq the client of our PLAIN server.
    let server = Options {
        plain_server: true,
        authenticator: Some(Authenticator::plain_users([(
            Bytes::from_static(b"admin"),
            Bytes::from_static(b"secret"),
        )])),
        ..base(kind)
    };
    let mut router = open(SocketType::Router, server);
    let port = router.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    let mut good = Peer::start(&["plain-client", "dealer", &port, "admin", "secret", "30000"]);
    let request = recv(&mut router, "the PLAIN request");
    assert_eq!(&request[1..], [&b"from libzmq"[..]], "{kind}");
    router
        .send(vec![request[0].clone(), Bytes::from_static(b"ok")])
        .unwrap();
    assert_eq!(good.line(&mut router), shown(&[b"ok"]), "{kind}");

    let mut bad = Peer::start(&["plain-client", "dealer", &port, "admin", "guess", "3000"]);
    assert!(
        matches!(
            wait_error(&mut router),
            ZmtpError::AuthenticationDenied { status: 400, .. }
        ),
        "{kind}"
    );
    assert_eq!(bad.line(&mut router), "timeout", "{kind}");
    assert_eq!(router.recv(Duration::from_millis(100)).unwrap(), None, "{kind}");
}

/// A CURVE DEALER peer played by our own engine over a blocking TCP stream: shakes
/// hands, sends `good` sealed, then `bad` sealed with its last byte flipped; returns
/// whether the server then closed the stream.
fn tampering_client(port: u16, server: PublicKey) -> bool {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(PATIENCE)).expect("timeout");
    let config = HandshakeConfig {
        mechanism: Mechanism::CurveClient {
            keys: generate_keypair().unwrap(),
            server_key: server,
        },
        identity: Bytes::from_static(b"raw"),
        ..HandshakeConfig::null(WireType::Dealer)
    };
    // A test peer: fixed bytes stand in for the generator's (one handshake per run).
    let mut hs = Handshake::with_random(config, CurveRandom::from_bytes([0x42; CurveRandom::LEN])).expect("config");
    let (mut input, mut out) = (SegmentedBuffer::new(), IoArena::new());
    let mut buf = [0u8; 4096];
    loop {
        let progress = hs.handle(&mut input, &mut out).expect("handshake");
        stream.write_all(&out.to_vec()).expect("write");
        out.clear();
        if matches!(progress, Progress::Established(_)) {
            break;
        }
        let n = stream.read(&mut buf).expect("read");
        assert!(n > 0, "the server closed during the handshake");
        input.push_slice(&buf[..n]);
    }
    let mut cipher = hs.take_cipher().expect("a CURVE cipher");
    for (payload, tamper) in [(&b"good"[..], false), (&b"bad"[..], true)] {
        let mut sealed = cipher.seal(0, payload).expect("seal").to_vec();
        if tamper {
            let last = sealed.len() - 1;
            sealed[last] ^= 0x01;
        }
        let mut frame = IoArena::new();
        encode_header(&mut frame, 0, sealed.len() as u64);
        frame.put_slice(&sealed);
        stream.write_all(&frame.to_vec()).expect("write");
    }
    // The server's PINGs would be sealed too; it sends none. Only its close may come.
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(_) => return false,
        }
    }
}

fn a_tampered_message_box_disconnects(kind: DriverKind) {
    let server = generate_keypair().unwrap();
    // No authenticator: any client key (this test is about the boxes after the
    // handshake).
    let mut options = curve_server(kind, &server, &[]);
    options.authenticator = None;
    let mut router = open(SocketType::Router, options);
    let port = router.bind("tcp://127.0.0.1:0").unwrap().port();
    let public = server.public;
    let client = std::thread::spawn(move || tampering_client(port, public));
    assert_eq!(recv(&mut router, "the good box"), [&b"raw"[..], b"good"], "{kind}");
    assert_eq!(
        wait_error(&mut router),
        ZmtpError::CurveBox { command: "MESSAGE" },
        "{kind}"
    );
    assert_eq!(
        router.recv(Duration::from_millis(100)).unwrap(),
        None,
        "{kind}: bad box delivered"
    );
    let start = Instant::now();
    while !client.is_finished() && start.elapsed() < PATIENCE {
        router.run_for(Duration::from_millis(10)).expect("turn");
    }
    assert!(
        client.join().expect("client thread"),
        "{kind}: the stream was not closed"
    );
    assert_eq!(router.connections(), 0, "{kind}");
}

both_drivers! {
    curve_dealer_and_router => curve_dealer_and_router_uring, curve_dealer_and_router_mio;
    curve_push_and_pull => curve_push_and_pull_uring, curve_push_and_pull_mio;
    curve_refusals => curve_refusals_uring, curve_refusals_mio;
    plain_both_ways => plain_both_ways_uring, plain_both_ways_mio;
    a_tampered_message_box_disconnects => a_tampered_message_box_disconnects_uring, a_tampered_message_box_disconnects_mio;
}
