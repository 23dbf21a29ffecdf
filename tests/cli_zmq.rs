//! `monocoque zmq TYPE ...` against libzmq (through pyzmq), on both drivers: the
//! binary's output and exit status, with libzmq on the other side.
//!
//! - our PUSH to a libzmq PULL (frames split on the separator; exits 0 once delivered),
//!   a libzmq PUSH to our PULL (`--count`, frames joined);
//! - our REQ to a libzmq REP (each line asked, each reply printed), libzmq REQs to our
//!   REP (echoed);
//! - our PUB to a libzmq SUB, a libzmq PUB to our SUB (`--subscribe` filters);
//! - a PUSH whose peer never comes exits 1 once the linger time has passed;
//! - CURVE both ways with keys from `monocoque zmq keygen`: our PUSH client of a libzmq
//!   CURVE PULL server, a libzmq CURVE PUSH client of our PULL server.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const DRIVERS: [&str; 2] = ["uring", "mio"];
const PATIENCE: Duration = Duration::from_secs(30);

/// The pyzmq peer; every role exits on its own within a minute.
///
/// `pull N`: binds a PULL (port printed first), prints N messages (frames joined by
/// `|`). `push PORT N`: sends `[x, i]` for i in 0..N, lingering until delivered.
/// `rep`: binds a REP (port first), answers `frames` with `[re, frames...]`.
/// `req PORT N`: asks `[q, i]` N times, printing each reply. `sub PORT N`: subscribes
/// to everything, prints `connected`, then N messages. `pub`: binds a PUB (port first),
/// publishes `[other, skip]` and `[news, i]` every 20 ms.
const PEER: &str = r#"
import sys, time, zmq
ctx = zmq.Context()
role = sys.argv[1]
def show(frames):
    print("|".join(f.decode() for f in frames), flush=True)
if role == "pull":
    s = ctx.socket(zmq.PULL)
    s.linger = 0
    s.rcvtimeo = 60000
    print(s.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    for _ in range(int(sys.argv[2])):
        show(s.recv_multipart())
elif role == "push":
    s = ctx.socket(zmq.PUSH)
    s.linger = 30000
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    for i in range(int(sys.argv[3])):
        s.send_multipart([b"x", str(i).encode()])
    s.close()
    ctx.term()
elif role == "rep":
    s = ctx.socket(zmq.REP)
    s.linger = 0
    s.rcvtimeo = 60000
    print(s.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    while True:
        s.send_multipart([b"re"] + s.recv_multipart())
elif role == "req":
    s = ctx.socket(zmq.REQ)
    s.linger = 1000
    s.rcvtimeo = 60000
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    for i in range(int(sys.argv[3])):
        s.send_multipart([b"q", str(i).encode()])
        show(s.recv_multipart())
elif role == "sub":
    s = ctx.socket(zmq.SUB)
    s.linger = 0
    s.rcvtimeo = 60000
    s.subscribe(b"")
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    print("connected", flush=True)
    for _ in range(int(sys.argv[3])):
        show(s.recv_multipart())
elif role == "pub":
    s = ctx.socket(zmq.PUB)
    s.linger = 0
    print(s.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    for i in range(3000):
        s.send_multipart([b"other", b"skip"])
        s.send_multipart([b"news", str(i).encode()])
        time.sleep(0.02)
elif role == "curvepull":
    s = ctx.socket(zmq.PULL)
    s.linger = 0
    s.rcvtimeo = 60000
    s.curve_server = True
    s.curve_secretkey = sys.argv[2].encode()
    print(s.bind_to_random_port("tcp://127.0.0.1"), flush=True)
    for _ in range(int(sys.argv[3])):
        show(s.recv_multipart())
elif role == "curvepush":
    s = ctx.socket(zmq.PUSH)
    s.linger = 30000
    public, secret = zmq.curve_keypair()
    s.curve_publickey = public
    s.curve_secretkey = secret
    s.curve_serverkey = sys.argv[3].encode()
    s.connect("tcp://127.0.0.1:" + sys.argv[2])
    for i in range(int(sys.argv[4])):
        s.send_multipart([b"x", str(i).encode()])
    s.close()
    ctx.term()
"#;

/// A process whose output lines are read on a thread; killed on drop.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    errors: Receiver<String>,
}

impl Proc {
    fn spawn(mut command: Command) -> Proc {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        let lines = reader(child.stdout.take().expect("stdout"));
        let errors = reader(child.stderr.take().expect("stderr"));
        let stdin = child.stdin.take();
        Proc {
            child,
            stdin,
            lines,
            errors,
        }
    }

    fn peer(args: &[&str]) -> Proc {
        let mut command = Command::new(support::pyzmq_python());
        command.arg("-c").arg(PEER).args(args);
        Proc::spawn(command)
    }

    fn ours(args: &[&str]) -> Proc {
        let mut command = Command::new(env!("CARGO_BIN_EXE_monocoque"));
        command.arg("zmq").args(args);
        Proc::spawn(command)
    }

    fn line(&self) -> String {
        self.lines.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            panic!(
                "no line within {PATIENCE:?}; stderr: {:?}",
                self.errors.try_iter().collect::<Vec<_>>()
            )
        })
    }

    /// Our socket's bound port, from its `bound ADDR` line on standard error.
    fn bound_port(&self) -> String {
        let line = self.errors.recv_timeout(PATIENCE).expect("a bound line");
        let addr = line.strip_prefix("bound ").unwrap_or_else(|| panic!("{line}"));
        addr.rsplit_once(':').expect("host:port").1.to_string()
    }

    fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        stdin.write_all(text.as_bytes()).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The exit status, waiting at most [`PATIENCE`].
    fn status(&mut self) -> Option<i32> {
        self.close_stdin();
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code();
            }
            assert!(start.elapsed() < PATIENCE, "still running after {PATIENCE:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn reader(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn our_push_to_libzmq_pull() {
    for driver in DRIVERS {
        let pull = Proc::peer(&["pull", "3"]);
        let endpoint = format!("tcp://127.0.0.1:{}", pull.line());
        let mut push = Proc::ours(&["push", "--connect", &endpoint, "--separator", "|", "--driver", driver]);
        push.write("a|b\nc\n|d\n");
        assert_eq!(push.status(), Some(0), "{driver}: exits 0 once delivered");
        assert_eq!(pull.line(), "a|b", "{driver}");
        assert_eq!(pull.line(), "c", "{driver}");
        assert_eq!(pull.line(), "|d", "{driver}: an empty first frame");
    }
}

#[test]
fn libzmq_push_to_our_pull() {
    for driver in DRIVERS {
        let mut pull = Proc::ours(&[
            "PULL",
            "--bind",
            "tcp://127.0.0.1:0",
            "--count",
            "3",
            "--separator",
            ":",
            "--driver",
            driver,
        ]);
        let port = pull.bound_port();
        let _push = Proc::peer(&["push", &port, "3"]);
        for i in 0..3 {
            assert_eq!(pull.line(), format!("x:{i}"), "{driver}");
        }
        assert_eq!(pull.status(), Some(0), "{driver}: exits after --count");
    }
}

#[test]
fn our_req_to_libzmq_rep() {
    for driver in DRIVERS {
        let rep = Proc::peer(&["rep"]);
        let endpoint = format!("tcp://127.0.0.1:{}", rep.line());
        let mut req = Proc::ours(&["req", "--connect", &endpoint, "--separator", "|", "--driver", driver]);
        req.write("one\ntwo|2\n");
        assert_eq!(req.line(), "re|one", "{driver}");
        assert_eq!(req.line(), "re|two|2", "{driver}");
        assert_eq!(req.status(), Some(0), "{driver}");
    }
}

#[test]
fn libzmq_req_to_our_rep() {
    for driver in DRIVERS {
        let mut rep = Proc::ours(&[
            "rep",
            "--bind",
            "tcp://127.0.0.1:0",
            "--count",
            "2",
            "--separator",
            "|",
            "--driver",
            driver,
        ]);
        let port = rep.bound_port();
        let req = Proc::peer(&["req", &port, "2"]);
        assert_eq!(req.line(), "q|0", "{driver}: echoed");
        assert_eq!(req.line(), "q|1", "{driver}");
        assert_eq!(rep.line(), "q|0", "{driver}: and printed");
        assert_eq!(rep.line(), "q|1", "{driver}");
        assert_eq!(rep.status(), Some(0), "{driver}");
    }
}

#[test]
fn our_pub_to_libzmq_sub() {
    for driver in DRIVERS {
        let mut publisher = Proc::ours(&[
            "pub",
            "--bind",
            "tcp://127.0.0.1:0",
            "--separator",
            "|",
            "--driver",
            driver,
        ]);
        let port = publisher.bound_port();
        let sub = Proc::peer(&["sub", &port, "3"]);
        assert_eq!(sub.line(), "connected");
        // A PUB drops what no subscriber is there for yet: publish until three arrive.
        let start = Instant::now();
        let mut got = Vec::new();
        for i in 0.. {
            assert!(start.elapsed() < PATIENCE, "{driver}: the SUB got {got:?}");
            publisher.write(&format!("news|{i}\n"));
            std::thread::sleep(Duration::from_millis(20));
            got.extend(sub.lines.try_iter());
            if got.len() >= 3 {
                break;
            }
        }
        assert!(got.iter().all(|l| l.starts_with("news|")), "{driver}: {got:?}");
        assert_eq!(publisher.status(), Some(0), "{driver}");
    }
}

#[test]
fn libzmq_pub_to_our_sub() {
    for driver in DRIVERS {
        let publisher = Proc::peer(&["pub"]);
        let endpoint = format!("tcp://127.0.0.1:{}", publisher.line());
        let mut sub = Proc::ours(&[
            "sub",
            "--connect",
            &endpoint,
            "--subscribe",
            "news",
            "--count",
            "3",
            "--separator",
            "|",
            "--driver",
            driver,
        ]);
        for _ in 0..3 {
            let line = sub.line();
            assert!(line.starts_with("news|"), "{driver}: filtered: {line}");
        }
        assert_eq!(sub.status(), Some(0), "{driver}");
    }
}

#[test]
fn a_sender_whose_peer_never_comes_exits_1_after_the_linger() {
    for driver in DRIVERS {
        let endpoint = format!("tcp://127.0.0.1:{}", support::free_port());
        let mut push = Proc::ours(&["push", "--connect", &endpoint, "--linger", "300", "--driver", driver]);
        push.write("lost\n");
        assert_eq!(push.status(), Some(1), "{driver}");
        let error = push.errors.recv_timeout(PATIENCE).expect("an error line");
        assert!(error.contains("linger"), "{driver}: {error}");
    }
}

/// A key pair from `monocoque zmq keygen`: (public, secret), Z85.
fn keygen() -> (String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_monocoque"))
        .args(["zmq", "keygen"])
        .output()
        .expect("run keygen");
    assert!(out.status.success(), "keygen failed");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .to_string()
    };
    (field("public-key: "), field("secret-key: "))
}

#[test]
fn curve_both_ways_with_libzmq() {
    for driver in DRIVERS {
        // Our PUSH, a CURVE client of libzmq's CURVE PULL server.
        let (server_public, server_secret) = keygen();
        let (_, client_secret) = keygen();
        let pull = Proc::peer(&["curvepull", &server_secret, "2"]);
        let endpoint = format!("tcp://127.0.0.1:{}", pull.line());
        let mut push = Proc::ours(&[
            "push",
            "--connect",
            &endpoint,
            "--curve-serverkey",
            &server_public,
            "--curve-secret",
            &client_secret,
            "--driver",
            driver,
        ]);
        push.write("sealed\nagain\n");
        assert_eq!(push.status(), Some(0), "{driver}: exits 0 once delivered");
        assert_eq!(pull.line(), "sealed", "{driver}");
        assert_eq!(pull.line(), "again", "{driver}");

        // libzmq's CURVE PUSH client of our CURVE PULL server.
        let (server_public, server_secret) = keygen();
        let mut pull = Proc::ours(&[
            "pull",
            "--bind",
            "tcp://127.0.0.1:0",
            "--count",
            "2",
            "--separator",
            ":",
            "--curve-server",
            &server_secret,
            "--driver",
            driver,
        ]);
        let port = pull.bound_port();
        let _push = Proc::peer(&["curvepush", &port, &server_public, "2"]);
        assert_eq!(pull.line(), "x:0", "{driver}");
        assert_eq!(pull.line(), "x:1", "{driver}");
        assert_eq!(pull.status(), Some(0), "{driver}");
    }
}
