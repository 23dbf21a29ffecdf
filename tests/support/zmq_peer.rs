//! A pyzmq (libzmq) peer process for the `zmq::Socket` tests: a Python script given
//! by the test, its output lines read on a thread so the test keeps turning its
//! socket while it waits for them. Killed on drop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use monocoque::zmq::Socket;
use monocoque_proto::zmtp::ZmtpError;

/// How long a step that takes milliseconds may take on a loaded machine.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// The peer process and the lines it printed.
pub struct ZmqPeer {
    child: Child,
    /// Every line the peer printed, trimmed, in order.
    pub lines: Receiver<String>,
}

impl ZmqPeer {
    /// Runs `script` with `args` under a Python that has pyzmq.
    pub fn start(script: &str, args: &[&str]) -> ZmqPeer {
        let mut child = Command::new(super::pyzmq_python())
            .arg("-c")
            .arg(script)
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
        ZmqPeer { child, lines }
    }

    /// The next line, waiting at most [`PATIENCE`] while `socket` keeps turning.
    pub fn line(&mut self, socket: &mut Socket) -> String {
        let start = Instant::now();
        loop {
            if let Ok(line) = self.lines.try_recv() {
                return line;
            }
            assert!(start.elapsed() < PATIENCE, "the peer printed nothing for {PATIENCE:?}");
            socket.run_for(Duration::from_millis(10)).expect("turn");
        }
    }

    /// Kills the peer and waits for it to exit (its sockets are closed by then).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ZmqPeer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `bytes` in lower-case hex, as the peers print frames.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Turns `socket` until it has recorded an error, at most [`PATIENCE`].
pub fn wait_error(socket: &mut Socket) -> ZmtpError {
    let start = Instant::now();
    while socket.last_error().is_none() {
        assert!(start.elapsed() < PATIENCE, "no connection failed");
        socket.run_for(Duration::from_millis(10)).expect("turn");
    }
    socket.last_error().cloned().expect("checked above")
}
