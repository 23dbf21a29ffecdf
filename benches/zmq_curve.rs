//! The cost of CURVE: our PUSH to our PULL, 64-byte messages, NULL against CURVE, on
//! both drivers, printed as messages per second and the CURVE/NULL time ratio.
//!
//! ```text
//! cargo bench --bench zmq_curve                 # 3 repetitions of 200 000 messages
//! cargo bench --bench zmq_curve -- --msgs 50000 --reps 1
//! cargo bench --bench zmq_curve -- --boxes     # the seal + open cost alone
//! cargo bench --bench zmq_curve -- --only curve --driver mio --reps 1   # one case
//! ```
//!
//! `--only` (`null` or `curve`) and `--driver` (`uring` or `mio`) narrow the run to one
//! case, for counting instructions per message under callgrind (two runs of different
//! `--msgs`, the difference divided by the difference in messages).
//!
//! The PULL binds on its own thread (its own driver), the PUSH connects from the
//! calling thread. After a warm-up of 1000 messages (so the handshake is done), the
//! timed window runs from the first send to the PULL having received the last
//! message. Repetitions are interleaved (NULL, CURVE, NULL, ...) and the median kept,
//! because the machine is small and shared. The target is CURVE within 2x of NULL.

use std::sync::mpsc::{channel, Sender};
use std::thread;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque::driver::DriverKind;
use monocoque::zmq::{generate_keypair, Options, Socket, SocketType};
use monocoque_proto::zmtp::curve::KeyPair;

const WARMUP: usize = 1000;
const SIZE: usize = 64;
const PATIENCE: Duration = Duration::from_secs(120);

fn options(kind: DriverKind, curve: Option<(&KeyPair, bool)>) -> Options {
    let mut o = Options {
        driver: kind,
        ..Options::default()
    };
    if let Some((server, is_server)) = curve {
        if is_server {
            o.curve_server = true;
            o.curve_secret_key = Some(Bytes::copy_from_slice(server.secret.as_bytes()));
        } else {
            let client = generate_keypair().unwrap();
            o.curve_server_key = Some(Bytes::copy_from_slice(&server.public.0));
            o.curve_secret_key = Some(Bytes::copy_from_slice(client.secret.as_bytes()));
        }
    }
    o
}

/// The PULL side: binds, reports its port, counts `WARMUP` then `msgs` messages,
/// reporting after each stage.
fn pull(kind: DriverKind, server: Option<KeyPair>, msgs: usize, tell: Sender<u16>) {
    let mut socket =
        Socket::with_options(SocketType::Pull, options(kind, server.as_ref().map(|k| (k, true)))).expect("pull socket");
    let port = socket.bind("tcp://127.0.0.1:0").expect("bind").port();
    tell.send(port).expect("report the port");
    for stage in [WARMUP, msgs] {
        for _ in 0..stage {
            let message = socket.recv(PATIENCE).expect("recv").expect("a message in time");
            assert_eq!(message[0].len(), SIZE);
        }
        tell.send(0).expect("report a stage");
    }
}

/// One timed run: the time to move `msgs` messages.
fn run(kind: DriverKind, curve: bool, msgs: usize) -> Duration {
    let server = curve.then(|| generate_keypair().expect("the OS generator"));
    let (tell, told) = channel();
    let pull_server = server.clone();
    let puller = thread::spawn(move || pull(kind, pull_server, msgs, tell));
    let port = told.recv().expect("the PULL's port");
    let mut push = Socket::with_options(SocketType::Push, options(kind, server.as_ref().map(|k| (k, false))))
        .expect("push socket");
    push.connect(&format!("tcp://127.0.0.1:{port}")).expect("connect");
    let payload = Bytes::from(vec![b'x'; SIZE]);
    let mut stage = |count: usize| {
        let start = Instant::now();
        for _ in 0..count {
            push.send(vec![payload.clone()]).expect("send");
        }
        while told.try_recv().is_err() {
            push.run_for(Duration::from_millis(1)).expect("turn");
            assert!(start.elapsed() < PATIENCE, "the PULL did not get everything");
        }
        start.elapsed()
    };
    stage(WARMUP);
    let took = stage(msgs);
    puller.join().expect("the PULL thread");
    took
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The value after `name`, if given.
fn arg_str(name: &str) -> Option<String> {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// The box alone: seal and open `msgs` 64-byte frames, in ns per frame. As a
/// connection does: sealed into an output arena in batches (a turn's worth), each
/// frame's body then opened.
fn boxes_only(msgs: usize) -> f64 {
    use monocoque_proto::zmtp::curve::{MessageCipher, Role, MESSAGE_OVERHEAD};
    use monocoque_proto::IoArena;
    const BATCH: usize = 64;
    let (c, s) = (generate_keypair().unwrap(), generate_keypair().unwrap());
    let mut client = MessageCipher::new(Role::Client, &c.secret, &s.public);
    let mut server = MessageCipher::new(Role::Server, &s.secret, &c.public);
    let frame = [b'x'; SIZE];
    let wire = 2 + MESSAGE_OVERHEAD + SIZE;
    let mut out = IoArena::new();
    let start = Instant::now();
    let mut left = msgs;
    while left > 0 {
        let batch = left.min(BATCH);
        for _ in 0..batch {
            client.seal_frame_into(0, &frame, &mut out).expect("seal");
        }
        let sealed = out.chunks().next().expect("the batch");
        for one in sealed.chunks(wire) {
            let (_, opened) = server.open(&one[2..]).expect("open");
            assert_eq!(opened.len(), SIZE);
        }
        out.advance(out.len());
        left -= batch;
    }
    start.elapsed().as_nanos() as f64 / msgs as f64
}

fn main() {
    let msgs = arg("--msgs", 200_000);
    let reps = arg("--reps", 3).max(1);
    let only = arg_str("--only");
    let driver = arg_str("--driver");
    // A narrowed run (`--only`) leaves the box alone out: its thread is the PUSH's.
    if only.is_none() {
        println!("MESSAGE box alone, seal + open of {SIZE} B: {:.0} ns", boxes_only(msgs));
    }
    if std::env::args().any(|a| a == "--boxes") {
        return;
    }
    println!("zmq PUSH -> PULL, {SIZE} B messages, {msgs} per run, median of {reps}");
    let (do_null, do_curve) = (only.as_deref() != Some("curve"), only.as_deref() != Some("null"));
    for kind in [DriverKind::Uring, DriverKind::Mio] {
        if driver.as_deref().is_some_and(|d| d != kind.name()) {
            continue;
        }
        let (mut null, mut curve) = (Vec::new(), Vec::new());
        for _ in 0..reps {
            if do_null {
                null.push(run(kind, false, msgs));
            }
            if do_curve {
                curve.push(run(kind, true, msgs));
            }
        }
        let rate = |d: Duration| msgs as f64 / d.as_secs_f64();
        if do_null {
            println!("{kind:>5} NULL : {:>10.0} msg/s", rate(median(null.clone())));
        }
        if do_curve {
            println!("{kind:>5} CURVE: {:>10.0} msg/s", rate(median(curve.clone())));
        }
        if do_null && do_curve {
            let (null, curve) = (median(null), median(curve));
            println!(
                "{kind:>5} CURVE/NULL time ratio: {:.2} (target <= 2.00)",
                curve.as_secs_f64() / null.as_secs_f64()
            );
        }
    }
}
