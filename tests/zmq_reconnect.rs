//! Reconnecting `monocoque::zmq::Socket`s, through the chassis' link supervisor, on
//! both drivers:
//!
//! - a libzmq ROUTER (through pyzmq) restarted on the same port: our DEALER redials
//!   it and the replies flow again, now from the new one;
//! - a libzmq PULL restarted on the same port: our PUSH redials it and messages flow
//!   again (the SUB's resubscription is in `zmq_sockets.rs`);
//! - the schedule, seen from a TCP listener that accepts and drops every connection
//!   (each attempt fails its handshake): with `ZMQ_RECONNECT_IVL_MAX` the waits
//!   double (100, 200, 400, 800 ms...), without it they stay near
//!   `ZMQ_RECONNECT_IVL` (100 ms plus up to 100 ms of jitter).
//!
//! Timing assertions only bound what cannot happen (a wait shorter than the
//! backoff, more attempts than the backoff allows), with slack: a loaded machine only
//! makes waits longer.

mod support;

use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::channel;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::zmq::{Options, Socket, SocketType};
use support::zmq_peer::{hex, ZmqPeer, PATIENCE};

/// `router PORT TAG`: binds a ROUTER on PORT (printed first), answers `[id, frames...]`
/// with `[id, TAG, frames...]`.
/// `pull PORT`: binds a PULL on PORT (printed first), prints each message (frames in
/// hex, comma separated).
const PEER: &str = r#"
import sys, zmq
ctx = zmq.Context()
role, port = sys.argv[1], sys.argv[2]
if role == "router":
    s = ctx.socket(zmq.ROUTER)
    s.linger = 0
    s.rcvtimeo = 60000
    s.bind("tcp://127.0.0.1:" + port)
    print(port, flush=True)
    tag = sys.argv[3].encode()
    while True:
        ident, *frames = s.recv_multipart()
        s.send_multipart([ident, tag] + frames)
elif role == "pull":
    s = ctx.socket(zmq.PULL)
    s.linger = 0
    s.rcvtimeo = 60000
    s.bind("tcp://127.0.0.1:" + port)
    print(port, flush=True)
    while True:
        print(",".join(f.hex() for f in s.recv_multipart()), flush=True)
"#;

fn socket(kind: DriverKind, t: SocketType, options: Options) -> Socket {
    let options = Options {
        driver: kind,
        send_timeout: Some(PATIENCE),
        linger: Some(Duration::ZERO),
        ..options
    };
    Socket::with_options(t, options).unwrap_or_else(|e| panic!("{kind}: a {t} socket: {e}"))
}

/// Starts a peer that binds `port`, and waits until it says it did.
fn bound(args: &[&str], socket: &mut Socket) -> ZmqPeer {
    let mut peer = ZmqPeer::start(PEER, args);
    assert_eq!(peer.line(socket), args[1], "the peer prints its port first");
    peer
}

/// Sends requests until one is answered with `tag` (requests sent while the link is
/// down wait in the DEALER's queue, or are lost with a dying peer: hence the retries).
fn until_answered_by(dealer: &mut Socket, tag: &str) {
    let start = Instant::now();
    for i in 0.. {
        assert!(start.elapsed() < PATIENCE, "no reply from the {tag} ROUTER");
        let ask = Bytes::from(format!("q{i}"));
        dealer.send(vec![ask.clone()]).expect("send");
        let Some(reply) = dealer.recv(Duration::from_secs(1)).expect("recv") else {
            continue;
        };
        if reply[0] == tag.as_bytes() {
            return;
        }
    }
}

fn dealer_redials_a_restarted_router(kind: DriverKind) {
    let mut dealer = socket(kind, SocketType::Dealer, Options::default());
    let port = support::free_port().to_string();
    let mut first = bound(&["router", &port, "first"], &mut dealer);
    dealer.connect(&format!("tcp://127.0.0.1:{port}")).expect("connect");
    until_answered_by(&mut dealer, "first");
    first.kill();
    let _second = bound(&["router", &port, "second"], &mut dealer);
    until_answered_by(&mut dealer, "second");
    assert_eq!(dealer.connections(), 1, "{kind}: one link, redialed");
}

fn push_redials_a_restarted_pull(kind: DriverKind) {
    let mut push = socket(kind, SocketType::Push, Options::default());
    let port = support::free_port().to_string();
    let mut first = bound(&["pull", &port], &mut push);
    push.connect(&format!("tcp://127.0.0.1:{port}")).expect("connect");
    push.send(vec![Bytes::from_static(b"before")]).expect("send");
    assert_eq!(first.line(&mut push), hex(b"before"), "{kind}");
    first.kill();
    // Until the loss is seen, a message may still go to the dead connection: numbered
    // messages until the new PULL has one, then the rest must follow in order.
    let mut second = bound(&["pull", &port], &mut push);
    let start = Instant::now();
    let mut sent = 0;
    let first_seen: usize = loop {
        assert!(start.elapsed() < PATIENCE, "{kind}: nothing reached the new PULL");
        push.send(vec![Bytes::from(sent.to_string())]).expect("send");
        sent += 1;
        push.run_for(Duration::from_millis(50)).expect("turn");
        if let Ok(line) = second.lines.try_recv() {
            let text = String::from_utf8(hex_decode(&line)).expect("a number");
            break text.parse().expect("a number");
        }
    };
    for i in first_seen + 1..sent {
        assert_eq!(
            second.line(&mut push),
            hex(i.to_string().as_bytes()),
            "{kind}: in order"
        );
    }
    push.send(vec![Bytes::from_static(b"after")]).expect("send");
    assert_eq!(second.line(&mut push), hex(b"after"), "{kind}");
}

fn hex_decode(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

/// When a DEALER with `options` dialed a listener that drops every connection at
/// once, during `window`: the instants of the accepts, from the first.
fn attempts(kind: DriverKind, options: Options, window: Duration) -> Vec<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("non-blocking");
    let port = listener.local_addr().expect("address").port();
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = channel();
    let accepter = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        let _ = tx.send(Instant::now());
                        drop(stream);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        })
    };
    let mut dealer = socket(kind, SocketType::Dealer, options);
    dealer.connect(&format!("tcp://127.0.0.1:{port}")).expect("connect");
    dealer.run_for(window).expect("turn");
    stop.store(true, Ordering::Relaxed);
    accepter.join().expect("the accepting thread");
    let seen: Vec<Instant> = rx.try_iter().collect();
    let first = *seen.first().expect("at least the first attempt");
    seen.iter().map(|t| *t - first).collect()
}

fn gaps(at: &[Duration]) -> Vec<Duration> {
    at.windows(2).map(|w| w[1] - w[0]).collect()
}

fn backoff_doubles_with_reconnect_ivl_max(kind: DriverKind) {
    let ms = Duration::from_millis;
    let options = Options {
        reconnect_interval: ms(100),
        reconnect_interval_max: ms(3200),
        ..Options::default()
    };
    let at = attempts(kind, options, ms(3000));
    let gaps = gaps(&at);
    // Attempts no sooner than 0, 100, 300, 700, 1500, 3100 ms: at most five in 3 s
    // (a fixed 100 ms interval would make about thirty).
    assert!(at.len() <= 5, "{kind}: {} attempts in 3 s: {at:?}", at.len());
    assert!(at.len() >= 3, "{kind}: the redials stopped: {at:?}");
    // Each wait at least the doubled interval, less half of it for how late the
    // listener's thread may have seen an accept on a loaded machine.
    for (i, gap) in gaps.iter().enumerate() {
        let least = ms(100 << i) / 2;
        assert!(*gap >= least, "{kind}: wait {i} was {gap:?}, below {least:?}: {gaps:?}");
    }
    assert!(gaps[1] > gaps[0], "{kind}: the waits grow: {gaps:?}");
}

fn interval_stays_fixed_without_reconnect_ivl_max(kind: DriverKind) {
    let ms = Duration::from_millis;
    let options = Options {
        reconnect_interval: ms(100),
        ..Options::default()
    };
    let at = attempts(kind, options, ms(3000));
    // Waits of 100 to 200 ms: about twenty attempts in 3 s; eight leaves room for load,
    // and backoff (at most five) could not make them.
    assert!(at.len() >= 8, "{kind}: only {} attempts in 3 s: {at:?}", at.len());
    let gaps = gaps(&at);
    assert!(
        gaps.iter().all(|g| *g >= ms(50)),
        "{kind}: a redial came sooner than the interval: {gaps:?}"
    );
}

both_drivers! {
    dealer_redials_a_restarted_router => uring_dealer_redials_a_restarted_router, mio_dealer_redials_a_restarted_router;
    push_redials_a_restarted_pull => uring_push_redials_a_restarted_pull, mio_push_redials_a_restarted_pull;
    backoff_doubles_with_reconnect_ivl_max => uring_backoff_doubles_with_reconnect_ivl_max, mio_backoff_doubles_with_reconnect_ivl_max;
    interval_stays_fixed_without_reconnect_ivl_max => uring_interval_stays_fixed_without_reconnect_ivl_max, mio_interval_stays_fixed_without_reconnect_ivl_max;
}
