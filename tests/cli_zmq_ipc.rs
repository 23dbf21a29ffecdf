//! `monocoque zmq pull --bind ipc://PATH` with a libzmq PUSH (through pyzmq) connecting
//! over the Unix socket, on both drivers: the binary prints what arrived, says where it
//! bound, exits after `--count`, and leaves no socket file behind.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

const PATIENCE: Duration = Duration::from_secs(30);

/// A libzmq PUSH that connects to `argv[1]` and sends `[x, i]` for i in 0..3.
const PUSH: &str = r#"
import sys, zmq
ctx = zmq.Context()
s = ctx.socket(zmq.PUSH)
s.linger = 30000
s.connect(sys.argv[1])
for i in range(3):
    s.send_multipart([b"x", str(i).encode()])
s.close()
ctx.term()
"#;

fn lines(pipe: impl std::io::Read + Send + 'static) -> Receiver<String> {
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

/// Kills the child on drop.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn libzmq_push_to_our_pull_over_ipc() {
    for driver in ["uring", "mio"] {
        let dir = std::env::temp_dir().join(format!("monocoque-cli-ipc-{}-{driver}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        let path = dir.join("pull.sock");
        let endpoint = format!("ipc://{}", path.display());
        let mut ours = Command::new(env!("CARGO_BIN_EXE_monocoque"))
            .args(["zmq", "pull", "--bind", &endpoint, "--count", "3", "--separator", ":"])
            .args(["--driver", driver])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn monocoque");
        let out = lines(ours.stdout.take().expect("stdout"));
        let err = lines(ours.stderr.take().expect("stderr"));
        let mut ours = Killed(ours);
        assert_eq!(
            err.recv_timeout(PATIENCE).expect("a bound line"),
            format!("bound {endpoint}"),
            "{driver}"
        );
        let _push = Killed(
            Command::new(support::pyzmq_python())
                .args(["-c", PUSH, &endpoint])
                .spawn()
                .expect("start the pyzmq PUSH"),
        );
        for i in 0..3 {
            assert_eq!(
                out.recv_timeout(PATIENCE).expect("a message"),
                format!("x:{i}"),
                "{driver}"
            );
        }
        let start = Instant::now();
        let status = loop {
            if let Some(status) = ours.0.try_wait().expect("wait") {
                break status;
            }
            assert!(start.elapsed() < PATIENCE, "{driver}: still running after --count");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{driver}: {status}");
        assert!(!path.exists(), "{driver}: the socket file is removed on exit");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
