//! `monocoque zmq TYPE (--bind|--connect) ENDPOINT ...`: a ZeroMQ socket on the command
//! line, talking to any ZMTP 3 peer (libzmq included).
//!
//! - Sending types (PUSH, PUB, XPUB, DEALER, PAIR) send one message per line of standard
//!   input, frames split on `--separator` (without it, a line is one frame), then exit
//!   once every message has been written to a peer; status 1 if the linger time
//!   (`--linger`) passed first.
//! - Receiving types (PULL, SUB, XSUB, ROUTER) print one message per line, frames
//!   joined by the separator (a tab without it); a ROUTER's first frame is the sender's
//!   identity. SUB subscribes to `--subscribe` topics (everything without one), XSUB
//!   sends them as subscription messages.
//! - REQ sends each line as a request and prints the reply; REP echoes every request.
//! - `--count N` stops after N messages sent, received, asked or answered.
//! - `--curve-server SECRET` makes the socket a CURVE server; `--curve-serverkey KEY
//!   --curve-secret SECRET` a CURVE client of that server (keys in Z85).
//! - `monocoque zmq keygen` prints a CURVE key pair, as libzmq's `curve_keygen` does.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::sync::mpsc::{self, TryRecvError};
use std::time::Duration;

use bytes::Bytes;
use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Subcommand};
use monocoque::driver::DriverKind;
use monocoque::zmq::{generate_keypair, Message, Options, Socket, SocketType, ZmqError};

use super::client::driver_kind;

/// Arguments of `monocoque zmq`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  \
    seq 3 | monocoque zmq push --connect tcp://127.0.0.1:5555\n  \
    monocoque zmq pull --bind 'tcp://*:5555' --count 3\n  \
    echo 'a|b' | monocoque zmq req --connect tcp://127.0.0.1:5556 --separator '|'\n  \
    monocoque zmq sub --connect tcp://127.0.0.1:5557 --subscribe news\n  \
    monocoque zmq keygen\n  \
    monocoque zmq pull --bind 'tcp://*:5555' --curve-server SECRET\n  \
    monocoque zmq push --connect tcp://127.0.0.1:5555 --curve-serverkey KEY --curve-secret SECRET",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
pub struct ZmqArgs {
    /// A tool instead of a socket.
    #[command(subcommand)]
    pub command: Option<ZmqCommand>,
    /// The socket type.
    #[arg(value_parser = socket_type(), value_name = "TYPE", ignore_case = true, required = true)]
    pub socket_type: Option<SocketType>,
    /// Accept peers on ENDPOINT (`tcp://HOST:PORT`, `*` for every interface); repeatable.
    #[arg(long, value_name = "ENDPOINT", required_unless_present = "connect")]
    pub bind: Vec<String>,
    /// Connect (and reconnect) to ENDPOINT; repeatable.
    #[arg(long, value_name = "ENDPOINT")]
    pub connect: Vec<String>,
    /// Stop after N messages sent, received, asked or answered.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Splits input lines into frames and joins received frames (without it: a line is
    /// one frame, and frames print joined by a tab).
    #[arg(long, value_name = "STR", allow_hyphen_values = true)]
    pub separator: Option<String>,
    /// SUB/XSUB: a topic prefix to subscribe to (repeatable; none: everything).
    #[arg(long, value_name = "TOPIC")]
    pub subscribe: Vec<String>,
    /// How long to wait at exit for queued messages to reach a peer, in milliseconds
    /// (-1: forever, libzmq's default).
    #[arg(long, value_name = "MS", default_value_t = -1, allow_negative_numbers = true)]
    pub linger: i64,
    /// Be a CURVE server with this secret key (Z85, as `monocoque zmq keygen` prints it).
    #[arg(
        long,
        value_name = "SECRET",
        conflicts_with = "curve_serverkey",
        allow_hyphen_values = true
    )]
    pub curve_server: Option<String>,
    /// Be a CURVE client of the server with this public key (Z85); needs `--curve-secret`.
    #[arg(long, value_name = "KEY", requires = "curve_secret", allow_hyphen_values = true)]
    pub curve_serverkey: Option<String>,
    /// The CURVE client's own secret key (Z85).
    #[arg(
        long,
        value_name = "SECRET",
        requires = "curve_serverkey",
        allow_hyphen_values = true
    )]
    pub curve_secret: Option<String>,
    /// I/O driver: io_uring (Linux 5.19+) or mio (readiness, portable).
    #[arg(long, value_parser = driver_kind(), value_name = "DRIVER", default_value_t = DriverKind::default())]
    pub driver: DriverKind,
}

/// The `monocoque zmq` tools.
#[derive(Debug, Subcommand)]
pub enum ZmqCommand {
    /// Print a new CURVE key pair in Z85 (`public-key: ...`, `secret-key: ...`), as
    /// libzmq's `curve_keygen` does.
    Keygen,
}

/// The parser of TYPE: RFC 23's names, in either case.
fn socket_type() -> impl TypedValueParser<Value = SocketType> {
    const NAMES: [&str; 11] = [
        "req", "rep", "dealer", "router", "pub", "sub", "xpub", "xsub", "push", "pull", "pair",
    ];
    PossibleValuesParser::new(NAMES).map(|name| {
        SocketType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(&name))
            .unwrap_or(SocketType::Pair)
    })
}

/// What the command does with its socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Send,
    Receive,
    Ask,
    Answer,
}

fn role(socket_type: SocketType) -> Role {
    match socket_type {
        SocketType::Req => Role::Ask,
        SocketType::Rep => Role::Answer,
        SocketType::Pull | SocketType::Sub | SocketType::Xsub | SocketType::Router => Role::Receive,
        SocketType::Push | SocketType::Pub | SocketType::Xpub | SocketType::Dealer | SocketType::Pair => Role::Send,
    }
}

/// Why `monocoque zmq` failed.
#[derive(Debug, thiserror::Error)]
enum ZmqCliError {
    #[error(transparent)]
    Zmq(#[from] ZmqError),
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    #[error("not every message reached a peer within the linger time ({0} ms)")]
    Undelivered(i64),
    #[error("a socket TYPE is required")]
    NoSocketType,
}

/// Runs `monocoque zmq`; returns the exit status.
pub fn run(args: ZmqArgs) -> ExitCode {
    if let Some(ZmqCommand::Keygen) = args.command {
        return match generate_keypair() {
            Ok(pair) => {
                println!("{pair}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("monocoque: {e}");
                ExitCode::FAILURE
            }
        };
    }
    match run_socket(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("monocoque: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run_socket(args: &ZmqArgs) -> Result<(), ZmqCliError> {
    let socket_type = args.socket_type.ok_or(ZmqCliError::NoSocketType)?;
    let key = |z85: &Option<String>| z85.as_ref().map(|k| Bytes::from(k.clone()));
    let options = Options {
        driver: args.driver,
        linger: u64::try_from(args.linger).ok().map(Duration::from_millis),
        curve_server: args.curve_server.is_some(),
        curve_secret_key: key(&args.curve_server).or_else(|| key(&args.curve_secret)),
        curve_server_key: key(&args.curve_serverkey),
        ..Options::default()
    };
    let mut socket = Socket::with_options(socket_type, options)?;
    for endpoint in &args.bind {
        let addr = socket.bind(endpoint)?;
        eprintln!("bound {addr}");
    }
    for endpoint in &args.connect {
        socket.connect(endpoint)?;
    }
    match socket_type {
        SocketType::Sub if args.subscribe.is_empty() => socket.subscribe(Bytes::new()),
        SocketType::Sub => {
            for topic in &args.subscribe {
                socket.subscribe(Bytes::from(topic.clone()));
            }
        }
        SocketType::Xsub => {
            let topics = if args.subscribe.is_empty() {
                vec![String::new()]
            } else {
                args.subscribe.clone()
            };
            for topic in topics {
                let mut message = vec![1u8];
                message.extend_from_slice(topic.as_bytes());
                socket.send(vec![Bytes::from(message)])?;
            }
        }
        _ => {}
    }
    let count = args.count.unwrap_or(u64::MAX);
    let separator = args.separator.as_deref();
    match role(socket_type) {
        Role::Send => send_lines(&mut socket, separator, count)?,
        Role::Ask => ask_lines(&mut socket, separator, count)?,
        Role::Receive => receive(&mut socket, separator, count, false)?,
        Role::Answer => receive(&mut socket, separator, count, true)?,
    }
    if socket.close()? {
        Ok(())
    } else {
        Err(ZmqCliError::Undelivered(args.linger))
    }
}

/// Standard input's lines, read on a thread so the socket keeps turning (accepting,
/// shaking hands, writing) while none comes.
fn stdin_lines() -> mpsc::Receiver<io::Result<Vec<u8>>> {
    let (tx, rx) = mpsc::sync_channel(1024);
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line) {
                Ok(0) => return,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                    }
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if tx.send(Ok(line)).is_err() {
                        return;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            }
        }
    });
    rx
}

/// The next line of input, turning the socket while it waits; `None` at the end.
fn next_line(socket: &mut Socket, lines: &mpsc::Receiver<io::Result<Vec<u8>>>) -> Result<Option<Vec<u8>>, ZmqCliError> {
    loop {
        match lines.try_recv() {
            Ok(line) => return Ok(Some(line?)),
            Err(TryRecvError::Disconnected) => return Ok(None),
            Err(TryRecvError::Empty) => socket.run_for(Duration::from_millis(2))?,
        }
    }
}

/// A line's frames: split on the separator, or the whole line.
fn frames(line: Vec<u8>, separator: Option<&str>) -> Vec<Bytes> {
    let Some(sep) = separator.map(str::as_bytes).filter(|s| !s.is_empty()) else {
        return vec![Bytes::from(line)];
    };
    let line = Bytes::from(line);
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= line.len() {
        if &line[i..i + sep.len()] == sep {
            out.push(line.slice(start..i));
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(line.slice(start..));
    out
}

fn print(out: &mut impl Write, message: &[Bytes], separator: Option<&str>) -> io::Result<()> {
    let sep = separator.unwrap_or("\t").as_bytes();
    for (i, frame) in message.iter().enumerate() {
        if i > 0 {
            out.write_all(sep)?;
        }
        out.write_all(frame)?;
    }
    out.write_all(b"\n")?;
    out.flush()
}

fn send_lines(socket: &mut Socket, separator: Option<&str>, count: u64) -> Result<(), ZmqCliError> {
    let lines = stdin_lines();
    let mut sent = 0;
    while sent < count {
        let Some(line) = next_line(socket, &lines)? else { break };
        socket.send(frames(line, separator))?;
        sent += 1;
    }
    Ok(())
}

fn ask_lines(socket: &mut Socket, separator: Option<&str>, count: u64) -> Result<(), ZmqCliError> {
    let lines = stdin_lines();
    let mut out = io::stdout().lock();
    let mut asked = 0;
    while asked < count {
        let Some(line) = next_line(socket, &lines)? else { break };
        socket.send(frames(line, separator))?;
        let reply = recv(socket)?;
        print(&mut out, &reply, separator)?;
        asked += 1;
    }
    Ok(())
}

/// Prints received messages; a REP (`echo`) sends each back as its reply.
fn receive(socket: &mut Socket, separator: Option<&str>, count: u64, echo: bool) -> Result<(), ZmqCliError> {
    let mut out = io::stdout().lock();
    let mut received = 0;
    while received < count {
        let message = recv(socket)?;
        print(&mut out, &message, separator)?;
        if echo {
            socket.send(message)?;
        }
        received += 1;
    }
    Ok(())
}

/// The next message, however long it takes.
fn recv(socket: &mut Socket) -> Result<Message, ZmqError> {
    loop {
        if let Some(message) = socket.recv(Duration::from_secs(3600))? {
            return Ok(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> Result<ZmqArgs, clap::Error> {
        let mut argv = vec!["monocoque", "zmq"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv)?.command {
            Command::Zmq(a) => Ok(a),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn arguments_parse() {
        let a = parse(&[
            "PUSH",
            "--connect",
            "tcp://127.0.0.1:1",
            "--count",
            "3",
            "--driver",
            "mio",
        ])
        .unwrap();
        assert_eq!(a.socket_type, Some(SocketType::Push));
        assert_eq!(a.connect, ["tcp://127.0.0.1:1"]);
        assert_eq!(a.count, Some(3));
        assert_eq!(a.linger, -1);
        assert_eq!(a.driver, DriverKind::Mio);
        let a = parse(&["xsub", "--bind", "tcp://*:1", "--linger", "250", "--separator", "|"]).unwrap();
        assert_eq!(a.socket_type, Some(SocketType::Xsub));
        assert_eq!((a.linger, a.separator.as_deref()), (250, Some("|")));
        assert!(parse(&["push"]).is_err(), "an endpoint is required");
        assert!(parse(&["stream", "--bind", "tcp://*:1"]).is_err());
        assert!(parse(&[]).is_err(), "a type or a tool is required");
        let a = parse(&["keygen"]).unwrap();
        assert!(matches!(a.command, Some(ZmqCommand::Keygen)));
        let a = parse(&["pull", "--bind", "tcp://*:1", "--curve-server", "S"]).unwrap();
        assert_eq!(a.curve_server.as_deref(), Some("S"));
        let a = parse(&[
            "push",
            "--connect",
            "tcp://h:1",
            "--curve-serverkey",
            "K",
            "--curve-secret",
            "S",
        ])
        .unwrap();
        assert_eq!(
            (a.curve_serverkey.as_deref(), a.curve_secret.as_deref()),
            (Some("K"), Some("S"))
        );
        assert!(parse(&["push", "--connect", "tcp://h:1", "--curve-serverkey", "K"]).is_err());
        // Z85 has '-' in its alphabet: a key may start with it (CI once drew one).
        let a = parse(&[
            "push",
            "--connect",
            "tcp://h:1",
            "--curve-serverkey",
            "-K",
            "--curve-secret",
            "-S",
            "--separator",
            "-",
        ])
        .unwrap();
        assert_eq!(
            (
                a.curve_serverkey.as_deref(),
                a.curve_secret.as_deref(),
                a.separator.as_deref()
            ),
            (Some("-K"), Some("-S"), Some("-"))
        );
        let a = parse(&["pull", "--bind", "tcp://*:1", "--curve-server", "-S"]).unwrap();
        assert_eq!(a.curve_server.as_deref(), Some("-S"));
    }

    #[test]
    fn lines_split_into_frames() {
        let f = |line: &str, sep| frames(line.as_bytes().to_vec(), sep);
        assert_eq!(f("a|b||c", Some("|")), ["a", "b", "", "c"]);
        assert_eq!(f("a::b", Some("::")), ["a", "b"]);
        assert_eq!(f("a|b", None), ["a|b"]);
        assert_eq!(f("", Some("|")), [""]);
        let mut out = Vec::new();
        print(&mut out, &f("x|y", Some("|")), None).unwrap();
        assert_eq!(out, b"x\ty\n");
    }
}
