//! ZAP (RFC 27) in `monocoque::zmq::Socket`, on both drivers: our server sockets ask a
//! ZAP handler over `tcp://` ([`Options::zap_endpoint`]) and refuse with its status.
//!
//! - pyzmq's own handler (`zmq.auth.base.Authenticator`, its `handle_zap_message` on
//!   a REP socket bound on a TCP port instead of pyzmq's inproc one), configured with
//!   `configure_plain`, `configure_curve` (any key, or a certificate directory that
//!   `zmq.auth.create_certificates` wrote) and `deny`: pyzmq (libzmq) clients with the
//!   right credentials get messages through; wrong ones are refused with the handler's
//!   status, which the libzmq client reports (`ZMQ_EVENT_HANDSHAKE_FAILED_AUTH`; see
//!   [`PLAIN_REFUSED`] for libzmq 4.3.4's PLAIN client, and a raw client reads the
//!   `ERROR` bytes); the handler prints what each request carried (domain, address,
//!   mechanism);
//! - our [`ZapHandler`] serving two of our server sockets, over `tcp://` and `ipc://`,
//!   libzmq clients;
//! - a handler that answers garbage, one that never answers, and none at all: the
//!   handshake is refused (`ERROR 500` to the peer) with a typed error, in bounded time.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::zmq::{generate_keypair, Authenticator, Endpoint, Options, Socket, SocketType, ZapHandler};
use monocoque_proto::zmtp::zap::ZapError;
use monocoque_proto::zmtp::ZmtpError;
use support::zmq_peer::{hex, wait_error, ZmqPeer, PATIENCE};

/// The Python peers; each exits on its own within a minute.
///
/// `handler MODE [ARGS]` binds a REP socket on a free port (printed first), then
/// serves ZAP: `pyzmq DOMAIN USER PASSWORD` runs pyzmq's `Authenticator` (PLAIN
/// users, CURVE any key), `pyzmq-certs` its CURVE check against a certificate
/// directory (the allowed client's public and secret keys printed second), `deny
/// ADDRESS` pyzmq's address check for NULL; `garbage` answers one frame, `silent`
/// never answers. Every request is printed as `req,DOMAIN,ADDRESS,MECHANISM`.
///
/// `client MECH PORT WAIT_MS [CREDENTIALS]` is a libzmq DEALER (`plain USER
/// PASSWORD`, `curve SERVERKEY PUBLIC SECRET`, `null`): it sends `[b"from libzmq"]`
/// and prints the reply's frames in hex, `auth-failed STATUS` when the server refused
/// its handshake with a ZAP status or `protocol-failed CODE` when it failed it
/// otherwise (libzmq's monitor events), or `timeout`. `raw-plain PORT` is a PLAIN
/// client written out by hand (greeting, `HELLO admin guess`) that prints in hex all
/// the server sent until it closed.
const PEER: &str = r#"
import os, sys, tempfile, time, zmq
import zmq.auth
from zmq.auth.base import Authenticator
from zmq.utils.monitor import recv_monitor_message
ctx = zmq.Context()
role = sys.argv[1]
if role == "handler":
    mode = sys.argv[2]
    zap = ctx.socket(zmq.REP)
    zap.linger = 0
    print(zap.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    auth = Authenticator(ctx)
    auth.zap_socket = zap
    if mode == "pyzmq":
        auth.configure_plain(domain=sys.argv[3], passwords={sys.argv[4]: sys.argv[5]})
        auth.configure_curve(domain="*", location=zmq.auth.CURVE_ALLOW_ANY)
    elif mode == "pyzmq-certs":
        certs = tempfile.mkdtemp()
        public_file, secret_file = zmq.auth.create_certificates(certs, "client")
        public, secret = zmq.auth.load_certificate(secret_file)
        os.remove(secret_file)
        auth.configure_curve(domain="*", location=certs)
        print(public.decode() + "," + secret.decode(), flush=True)
    elif mode == "deny":
        auth.deny(sys.argv[3])
    zap.rcvtimeo = 60000
    while True:
        msg = zap.recv_multipart()
        print("req," + ",".join(f.decode("latin-1") for f in [msg[2], msg[3], msg[5]]), flush=True)
        if mode == "garbage":
            zap.send_multipart([b"garbage"])
        elif mode == "silent":
            pass
        else:
            auth.handle_zap_message(msg)
elif role == "raw-plain":
    import socket
    c = socket.create_connection(("127.0.0.1", int(sys.argv[2])))
    g = b"\xff" + b"\0"*8 + b"\x7f\x03\x00" + b"PLAIN".ljust(20, b"\0") + b"\0" + b"\0"*31
    c.sendall(g + b"\x04\x12\x05HELLO\x05admin\x05guess")
    got = b""
    c.settimeout(5)
    try:
        while True:
            d = c.recv(4096)
            if not d: break
            got += d
    except Exception as e:
        got += b"EXC"
    print(got.hex(), flush=True)
    time.sleep(60)
elif role == "client":
    mech, port, wait_ms = sys.argv[2], sys.argv[3], int(sys.argv[4])
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    if mech == "plain":
        s.plain_username = sys.argv[5].encode()
        s.plain_password = sys.argv[6].encode()
    elif mech == "curve":
        s.curve_serverkey = sys.argv[5].encode()
        s.curve_publickey = sys.argv[6].encode()
        s.curve_secretkey = sys.argv[7].encode()
    monitor = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL)
    s.connect("tcp://127.0.0.1:" + port)
    s.send_multipart([b"from libzmq"])
    poller = zmq.Poller()
    poller.register(s, zmq.POLLIN)
    poller.register(monitor, zmq.POLLIN)
    deadline = time.time() + wait_ms / 1000
    said = False
    while not said and time.time() < deadline:
        for sock, _ in poller.poll(100):
            if sock is s:
                print(",".join(f.hex() for f in s.recv_multipart()), flush=True)
                said = True
            elif sock is monitor:
                event = recv_monitor_message(monitor)
                what = "auth-failed " if event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH else "protocol-failed "
                print(what + str(event["value"]), flush=True)
                said = True
    if not said:
        print("timeout", flush=True)
    time.sleep(60)
"#;

/// What libzmq 4.3.4's PLAIN client (Debian 12's) reports when a server refuses it
/// with RFC 24's `ERROR`: it only reads its own server's garbled form (see
/// `Command::parse`), so it fails on an "unexpected command"
/// (`ZMQ_PROTOCOL_ERROR_ZMTP_UNEXPECTED_COMMAND`) instead of reporting the status; a
/// libzmq PLAIN server refusing it draws `auth-failed 400`. The bytes our server sends
/// are checked with a raw client (`raw-plain`).
const PLAIN_REFUSED: &str = "protocol-failed 268435457";

/// `ERROR` with status 400, framed: what a refused peer is sent.
const ERROR_400: &str = "040a054552524f5203343030";

/// How long a refused client waits for a reply it must not get.
const REFUSAL_MS: &str = "5000";

fn base(kind: DriverKind) -> Options {
    Options {
        driver: kind,
        send_timeout: Some(PATIENCE),
        linger: Some(Duration::from_millis(200)),
        ..Options::default()
    }
}

fn tcp(port: u16) -> Endpoint {
    Endpoint::Tcp(([127, 0, 0, 1], port).into())
}

/// A handler peer and its port (its first line), read while `socket` turns.
fn handler(args: &[&str], socket: &mut Socket) -> (ZmqPeer, u16) {
    let mut all = vec!["handler"];
    all.extend_from_slice(args);
    let mut peer = ZmqPeer::start(PEER, &all);
    let port = peer.line(socket).parse().expect("the handler prints its port first");
    (peer, port)
}

fn client(args: &[&str]) -> ZmqPeer {
    let mut all = vec!["client"];
    all.extend_from_slice(args);
    ZmqPeer::start(PEER, &all)
}

fn open(t: SocketType, options: Options) -> Socket {
    Socket::with_options(t, options).unwrap_or_else(|e| panic!("a {t} socket: {e}"))
}

/// A ROUTER server with `options`, bound on a free port; the port as text.
fn server(options: Options) -> (Socket, String) {
    let mut router = open(SocketType::Router, options);
    let port = router.bind("tcp://127.0.0.1:0").unwrap().port().to_string();
    (router, port)
}

/// The client's request received, answered `back`, and the answer seen by the client.
fn served(router: &mut Socket, client: &mut ZmqPeer) {
    let request = router
        .recv(PATIENCE)
        .expect("recv")
        .unwrap_or_else(|| panic!("no request within {PATIENCE:?} (last error: {:?})", router.last_error()));
    assert_eq!(&request[1..], [&b"from libzmq"[..]]);
    router
        .send(vec![request[0].clone(), Bytes::from_static(b"back")])
        .unwrap();
    assert_eq!(client.line(router), hex(b"back"));
    assert_eq!(router.last_error(), None);
}

fn plain_with_pyzmqs_handler(kind: DriverKind) {
    let mut scratch = open(SocketType::Dealer, base(kind));
    let (mut zap, zap_port) = handler(&["pyzmq", "global", "admin", "secret"], &mut scratch);
    let options = |domain: &'static str| Options {
        plain_server: true,
        zap_domain: Bytes::from_static(domain.as_bytes()),
        zap_endpoint: Some(tcp(zap_port)),
        ..base(kind)
    };
    let (mut router, port) = server(options("global"));

    let mut good = client(&["plain", &port, "30000", "admin", "secret"]);
    served(&mut router, &mut good);
    assert_eq!(zap.line(&mut router), "req,global,127.0.0.1,PLAIN", "{kind}");

    let mut raw = ZmqPeer::start(PEER, &["raw-plain", &port]);
    let sent = raw.line(&mut router);
    assert!(sent.ends_with(ERROR_400), "{kind}: our server sent {sent}");
    assert_eq!(
        router.last_error(),
        Some(&ZmtpError::AuthenticationDenied {
            status: 400,
            reason: "Invalid password".into()
        }),
        "{kind}"
    );
    assert_eq!(zap.line(&mut router), "req,global,127.0.0.1,PLAIN", "{kind}");
    let mut bad = client(&["plain", &port, REFUSAL_MS, "admin", "guess"]);
    assert_eq!(
        wait_error(&mut router),
        ZmtpError::AuthenticationDenied {
            status: 400,
            reason: "Invalid password".into()
        },
        "{kind}"
    );
    assert_eq!(bad.line(&mut router), PLAIN_REFUSED, "{kind}");
    assert_eq!(router.recv(Duration::from_millis(100)).unwrap(), None, "{kind}");

    // The domain is passed: pyzmq knows admin in `global` only.
    let (mut other, port) = server(options("elsewhere"));
    let mut refused = client(&["plain", &port, REFUSAL_MS, "admin", "secret"]);
    assert_eq!(
        wait_error(&mut other),
        ZmtpError::AuthenticationDenied {
            status: 400,
            reason: "Invalid domain".into()
        },
        "{kind}"
    );
    assert_eq!(refused.line(&mut other), PLAIN_REFUSED, "{kind}");
    // After the bad client's retries (for as long as it lived), this one's requests.
    drop(bad);
    let start = Instant::now();
    while zap.line(&mut other) != "req,elsewhere,127.0.0.1,PLAIN" {
        assert!(
            start.elapsed() < PATIENCE,
            "{kind}: the domain never reached the handler"
        );
    }
}

fn curve_with_pyzmqs_handler(kind: DriverKind) {
    let keys = generate_keypair().unwrap();
    let curve_server = |zap_port| Options {
        curve_server: true,
        curve_secret_key: Some(Bytes::from(keys.secret.to_z85().as_str().to_owned())),
        zap_endpoint: Some(tcp(zap_port)),
        ..base(kind)
    };
    let server_key = keys.public.to_z85();

    // Any key (CURVE_ALLOW_ANY).
    let mut scratch = open(SocketType::Dealer, base(kind));
    let (mut zap, zap_port) = handler(&["pyzmq", "global", "admin", "secret"], &mut scratch);
    let (mut router, port) = server(curve_server(zap_port));
    let client_keys = generate_keypair().unwrap();
    let (public, secret) = (
        client_keys.public.to_z85(),
        client_keys.secret.to_z85().as_str().to_owned(),
    );
    let mut good = client(&["curve", &port, "30000", &server_key, &public, &secret]);
    served(&mut router, &mut good);
    assert_eq!(zap.line(&mut router), "req,,127.0.0.1,CURVE", "{kind}");

    // Only the key of the certificate pyzmq wrote.
    let (mut zap, zap_port) = handler(&["pyzmq-certs"], &mut scratch);
    let allowed = zap.line(&mut scratch);
    let (public, secret) = allowed.split_once(',').expect("public,secret");
    let (mut router, port) = server(curve_server(zap_port));
    let mut good = client(&["curve", &port, "30000", &server_key, public, secret]);
    served(&mut router, &mut good);
    let mut stranger = client(&[
        "curve",
        &port,
        REFUSAL_MS,
        &server_key,
        &client_keys.public.to_z85(),
        client_keys.secret.to_z85().as_str(),
    ]);
    assert_eq!(
        wait_error(&mut router),
        ZmtpError::AuthenticationDenied {
            status: 400,
            reason: "Unknown key".into()
        },
        "{kind}"
    );
    assert_eq!(stranger.line(&mut router), "auth-failed 400", "{kind}");
    assert_eq!(router.recv(Duration::from_millis(100)).unwrap(), None, "{kind}");
}

fn null_with_a_domain_asks_the_handler(kind: DriverKind) {
    let mut scratch = open(SocketType::Dealer, base(kind));
    let null_server = |zap_port, domain: &'static str| Options {
        zap_domain: Bytes::from_static(domain.as_bytes()),
        zap_endpoint: Some(tcp(zap_port)),
        ..base(kind)
    };
    // pyzmq allows NULL from an address it does not deny.
    let (mut zap, zap_port) = handler(&["deny", "127.0.0.2"], &mut scratch);
    let (mut router, port) = server(null_server(zap_port, "global"));
    let mut good = client(&["null", &port, "30000"]);
    served(&mut router, &mut good);
    assert_eq!(zap.line(&mut router), "req,global,127.0.0.1,NULL", "{kind}");

    // ... and denies one it does.
    let (mut zap, zap_port) = handler(&["deny", "127.0.0.1"], &mut scratch);
    let (mut router, port) = server(null_server(zap_port, "global"));
    let mut refused = client(&["null", &port, REFUSAL_MS]);
    assert_eq!(
        wait_error(&mut router),
        ZmtpError::AuthenticationDenied {
            status: 400,
            reason: "Address is blacklisted".into()
        },
        "{kind}"
    );
    assert_eq!(refused.line(&mut router), "auth-failed 400", "{kind}");
    assert_eq!(zap.line(&mut router), "req,global,127.0.0.1,NULL", "{kind}");

    // No domain: NULL asks no one (the silent handler would refuse everyone).
    let (zap, zap_port) = handler(&["silent"], &mut scratch);
    let (mut router, port) = server(null_server(zap_port, ""));
    let mut good = client(&["null", &port, "30000"]);
    served(&mut router, &mut good);
    assert!(
        zap.lines.try_recv().is_err(),
        "{kind}: a NULL socket with no domain asked"
    );
}

fn our_handler_serves_our_server(kind: DriverKind) {
    let (tx, rx) = std::sync::mpsc::channel();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let stopped = stop.clone();
    let ipc = std::env::temp_dir().join(format!("monocoque-zap-{}-{kind}.sock", std::process::id()));
    let ipc_endpoint = format!("ipc://{}", ipc.display());
    let thread = std::thread::spawn(move || {
        let users = Authenticator::plain_users([(Bytes::from_static(b"admin"), Bytes::from_static(b"secret"))]);
        let mut handler = ZapHandler::new(base(kind), users).expect("handler");
        tx.send(handler.bind("tcp://127.0.0.1:0").expect("bind")).expect("send");
        tx.send(handler.bind(&ipc_endpoint).expect("bind ipc")).expect("send");
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            handler.serve(Duration::from_millis(50)).expect("serve");
        }
        handler.served()
    });
    let endpoint = rx.recv_timeout(PATIENCE).expect("the handler's endpoint");
    let ipc_endpoint = rx.recv_timeout(PATIENCE).expect("the handler's ipc endpoint");
    // Two server sockets, one handler, over tcp:// and ipc://.
    let options = |zap_endpoint| Options {
        plain_server: true,
        zap_endpoint: Some(zap_endpoint),
        ..base(kind)
    };
    let (mut first, first_port) = server(options(endpoint));
    let (mut second, second_port) = server(options(ipc_endpoint));
    let mut good = client(&["plain", &first_port, "30000", "admin", "secret"]);
    served(&mut first, &mut good);
    let mut good = client(&["plain", &second_port, "30000", "admin", "secret"]);
    served(&mut second, &mut good);
    let mut bad = client(&["plain", &second_port, REFUSAL_MS, "admin", "guess"]);
    assert!(
        matches!(
            wait_error(&mut second),
            ZmtpError::AuthenticationDenied { status: 400, .. }
        ),
        "{kind}: {:?}",
        second.last_error()
    );
    assert_eq!(bad.line(&mut second), PLAIN_REFUSED, "{kind}");
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(thread.join().expect("handler thread") >= 3, "{kind}");
}

fn a_broken_handler_refuses_in_bounded_time(kind: DriverKind) {
    let mut scratch = open(SocketType::Dealer, base(kind));
    // NULL with a domain: libzmq's NULL client reports the status it was refused with.
    let server_with = |zap_port| Options {
        zap_domain: Bytes::from_static(b"global"),
        zap_endpoint: Some(tcp(zap_port)),
        zap_timeout: Duration::from_millis(500),
        ..base(kind)
    };

    let (mut zap, zap_port) = handler(&["garbage"], &mut scratch);
    let (mut router, port) = server(server_with(zap_port));
    let mut refused = client(&["null", &port, REFUSAL_MS]);
    assert_eq!(
        wait_error(&mut router),
        ZmtpError::Zap(ZapError::FrameCount {
            what: "reply",
            expected: 6,
            got: 1
        }),
        "{kind}"
    );
    assert_eq!(refused.line(&mut router), "auth-failed 500", "{kind}");
    assert!(zap.line(&mut router).starts_with("req,"), "{kind}");

    for silent in [true, false] {
        // A handler that never answers, then none at all (a port nobody listens on).
        let (_zap, zap_port) = if silent {
            let (zap, port) = handler(&["silent"], &mut scratch);
            (Some(zap), port)
        } else {
            (None, support::free_port())
        };
        let (mut router, port) = server(server_with(zap_port));
        let start = Instant::now();
        let mut refused = client(&["null", &port, REFUSAL_MS]);
        assert_eq!(
            wait_error(&mut router),
            ZmtpError::Zap(ZapError::NoReply { millis: 500 }),
            "{kind}"
        );
        assert!(start.elapsed() < PATIENCE, "{kind}");
        assert_eq!(refused.line(&mut router), "auth-failed 500", "{kind}");
        assert_eq!(router.recv(Duration::from_millis(100)).unwrap(), None, "{kind}");
    }
}

both_drivers! {
    plain_with_pyzmqs_handler => plain_with_pyzmqs_handler_uring, plain_with_pyzmqs_handler_mio;
    curve_with_pyzmqs_handler => curve_with_pyzmqs_handler_uring, curve_with_pyzmqs_handler_mio;
    null_with_a_domain_asks_the_handler => null_with_a_domain_asks_the_handler_uring, null_with_a_domain_asks_the_handler_mio;
    our_handler_serves_our_server => our_handler_serves_our_server_uring, our_handler_serves_our_server_mio;
    a_broken_handler_refuses_in_bounded_time => a_broken_handler_refuses_in_bounded_time_uring, a_broken_handler_refuses_in_bounded_time_mio;
}
