//! `monocoque mqtt ...`: the MQTT broker and its `pub`/`sub` clients.
//!
//! - `broker [--listen ADDR] [--config FILE] [--driver uring|mio] [--threads N]
//!   [--data DIR | --no-store]` runs the broker on N driver threads (default: one per
//!   core, [`default_threads`](monocoque::mqtt::default_threads)), each
//!   with its own listener on ADDR (default: the file's `listen`, else
//!   127.0.0.1:1883), until SIGTERM or SIGINT, which shut it down cleanly (no more
//!   connections, `DISCONNECT` 0x8B to 5.0 clients, every will published, output
//!   flushed, the store committed, exit 0). Once the listeners are bound it prints
//!   `listening on ADDR` on standard error (the bound address, so `--listen
//!   127.0.0.1:0` tells a script its port). FILE is the TOML of
//!   [`BrokerConfig`](monocoque::mqtt::BrokerConfig): limits, users, ACL, redirection,
//!   `sys_interval`. `--data DIR` (default `./monocoque-data`) holds the store of
//!   persistent sessions, their subscriptions and QoS 1/2 messages, and the retained
//!   messages (`DIR/thread-N.redb`, redb, one per thread); `--no-store` keeps nothing
//!   across restarts.
//!   `--ws-listen ADDR` adds a listener for MQTT over WebSocket (subprotocol `mqtt`,
//!   any request path), off by default; once bound it prints `websocket listening on
//!   ADDR`.
//! - `passwd` reads a password from standard input (its first line) and prints the
//!   `password_hash` line for a config file's user, with a fresh random salt.
//! - `pub` and `sub`: a client with `mosquitto_pub`/`mosquitto_sub`'s flags
//!   ([`pubsub`]).

use std::io::{BufRead, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

pub mod pubsub;

use super::client::driver_kind;
use monocoque::driver::DriverKind;
use monocoque::mqtt::{default_threads, BrokerCluster, BrokerConfig, ClusterOptions, DEFAULT_SYS_INTERVAL};
use monocoque::proto::mqtt::broker::PasswordHash;

/// The address `monocoque mqtt broker` listens on unless `--listen` or the config
/// file says otherwise.
pub const DEFAULT_LISTEN: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 1883);

/// The store's directory unless `--data` says otherwise (relative to the working
/// directory).
pub const DEFAULT_DATA: &str = "monocoque-data";

/// Arguments of `monocoque mqtt`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  monocoque mqtt broker\n  monocoque mqtt broker --listen 0.0.0.0:1883 --driver mio\n  monocoque mqtt broker --config broker.toml\n  monocoque mqtt broker --ws-listen 127.0.0.1:8080\n  echo 's3cret' | monocoque mqtt passwd"
)]
pub struct MqttArgs {
    /// What to run.
    #[command(subcommand)]
    pub command: MqttCommand,
}

/// The `monocoque mqtt` subcommands.
#[derive(Debug, Subcommand)]
pub enum MqttCommand {
    /// Run an MQTT 3.1.1/5.0 broker on N driver threads (--threads, default one per core).
    Broker {
        /// The address to listen on [default: the config file's `listen`, else 127.0.0.1:1883].
        #[arg(long, value_name = "ADDR")]
        listen: Option<SocketAddr>,
        /// A TOML config file: limits, users, ACL, redirection (see the README).
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// I/O driver: io_uring (Linux 5.19+) or mio (readiness, portable).
        #[arg(long, value_parser = driver_kind(), value_name = "DRIVER", default_value_t = DriverKind::default())]
        driver: DriverKind,
        /// Also accept MQTT over WebSocket (subprotocol `mqtt`) on this address
        /// (default: off).
        #[arg(long, value_name = "ADDR")]
        ws_listen: Option<SocketAddr>,
        /// Driver threads, each with its own listener on the same port [default: one
        /// per core]. A session that reconnects on another thread moves there whole
        /// (Session Present 1, in-flight messages resent with their packet identifiers).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        threads: Option<u16>,
        /// The directory of the store: persistent sessions, their subscriptions and
        /// QoS 1/2 messages, retained messages (one redb file per thread).
        #[arg(long, value_name = "DIR", default_value = DEFAULT_DATA)]
        data: PathBuf,
        /// Keep nothing across restarts (no store; `--data` is ignored).
        #[arg(long)]
        no_store: bool,
    },
    /// Hash a password read from standard input for a config file's `password_hash`.
    Passwd,
    /// Publish a message, like mosquitto_pub (-h HOST -p PORT -t TOPIC -m MSG -q QOS).
    Pub(pubsub::PubArgs),
    /// Subscribe and print messages, like mosquitto_sub (-h HOST -p PORT -t FILTER -v -C N).
    Sub(pubsub::SubArgs),
}

/// Runs `monocoque mqtt`; returns the exit status.
pub fn run(args: MqttArgs) -> ExitCode {
    match args.command {
        MqttCommand::Broker {
            listen,
            config,
            driver,
            ws_listen,
            threads,
            data,
            no_store,
        } => broker(listen, config, driver, ws_listen, threads, (!no_store).then_some(data)),
        MqttCommand::Passwd => passwd(),
        MqttCommand::Pub(args) => pubsub::run_pub(args),
        MqttCommand::Sub(args) => pubsub::run_sub(args),
    }
}

fn passwd() -> ExitCode {
    let mut line = String::new();
    if let Err(e) = std::io::stdin().lock().read_line(&mut line) {
        eprintln!("error: reading the password: {e}");
        return ExitCode::FAILURE;
    }
    let password = line.trim_end_matches(['\r', '\n']);
    if password.is_empty() {
        eprintln!("error: an empty password");
        return ExitCode::FAILURE;
    }
    let mut salt = [0u8; 16];
    if let Err(e) = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut salt)) {
        eprintln!("error: drawing a salt from /dev/urandom: {e}");
        return ExitCode::FAILURE;
    }
    let hash = PasswordHash::new(password.as_bytes(), &salt, PasswordHash::DEFAULT_ITERATIONS);
    println!("password_hash = \"{hash}\"");
    ExitCode::SUCCESS
}

fn broker(
    listen: Option<SocketAddr>,
    config: Option<PathBuf>,
    driver: DriverKind,
    ws_listen: Option<SocketAddr>,
    threads: Option<u16>,
    data: Option<PathBuf>,
) -> ExitCode {
    let threads = threads.map_or_else(default_threads, usize::from);
    // Each thread gets its own rules: the file is read once and parsed per thread.
    let text = match config.as_deref().map(std::fs::read_to_string).transpose() {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", config.unwrap_or_default().display());
            return ExitCode::FAILURE;
        }
    };
    let mut configs = Vec::with_capacity(threads);
    for _ in 0..threads {
        match text.as_deref().map(BrokerConfig::parse).transpose() {
            Ok(c) => configs.push(c),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let first = configs.first().and_then(Option::as_ref);
    let listen = listen.or(first.and_then(|c| c.listen)).unwrap_or(DEFAULT_LISTEN);
    let mut options = ClusterOptions::new(threads, driver);
    options.ws_listen = ws_listen;
    options.connection = first.map(|c| c.connection).unwrap_or_default();
    options.sys_interval = first.map_or(Some(DEFAULT_SYS_INTERVAL), |c| c.sys_interval);
    options.data = data;
    let mut accesses: Vec<_> = configs
        .into_iter()
        .map(|c| c.map(|c| c.access).unwrap_or_default())
        .collect();
    // The broker threads inherit a mask without SIGTERM and SIGINT: only the signal
    // thread below takes them.
    let signals = match signals::block() {
        Ok(signals) => signals,
        Err(e) => {
            eprintln!("error: blocking SIGTERM/SIGINT: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cluster = match BrokerCluster::start(listen, options, |i| std::mem::take(&mut accesses[i])) {
        Ok(cluster) => cluster,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("listening on {} ({driver}, {threads} threads)", cluster.local_addr());
    if let Some(ws) = cluster.websocket_addr() {
        eprintln!("websocket listening on {ws}");
    }
    let stoppers = cluster.stoppers();
    let waiter = std::thread::Builder::new().name("signals".into()).spawn(move || {
        if let Ok(signal) = signals.wait() {
            eprintln!("{signal}: shutting down");
            for s in &stoppers {
                let _ = s.stop();
            }
        }
    });
    if let Err(e) = waiter {
        eprintln!("error: starting the signal thread: {e}");
        let _ = cluster.stop();
    }
    match cluster.join() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM and SIGINT, taken synchronously by one thread (`sigwait`) rather than in
/// a handler: the thread that takes them may do anything (print, wake drivers).
mod signals {
    use std::io;

    /// The blocked set, for [`wait`](Blocked::wait).
    pub struct Blocked(libc::sigset_t);

    /// Blocks SIGTERM and SIGINT in this thread (and the threads it starts after).
    pub fn block() -> io::Result<Blocked> {
        // SAFETY: an all-zero `sigset_t` is a valid value to hand `sigemptyset`, which
        // initialises it.
        let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
        // SAFETY: `set` is a valid, exclusively borrowed `sigset_t` for these calls, and
        // the signal numbers are valid.
        let rc = unsafe {
            libc::sigemptyset(&mut set);
            libc::sigaddset(&mut set, libc::SIGTERM);
            libc::sigaddset(&mut set, libc::SIGINT);
            libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
        };
        if rc != 0 {
            return Err(io::Error::from_raw_os_error(rc));
        }
        Ok(Blocked(set))
    }

    impl Blocked {
        /// Waits for one of the signals; says which.
        pub fn wait(&self) -> io::Result<&'static str> {
            let mut signal: libc::c_int = 0;
            // SAFETY: `self.0` is an initialised set and `signal` a valid out pointer.
            let rc = unsafe { libc::sigwait(&self.0, &mut signal) };
            if rc != 0 {
                return Err(io::Error::from_raw_os_error(rc));
            }
            Ok(if signal == libc::SIGTERM { "SIGTERM" } else { "SIGINT" })
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(args: &[&str]) -> MqttCommand {
        let mut argv = vec!["monocoque", "mqtt"];
        argv.extend_from_slice(args);
        match Cli::try_parse_from(argv).expect("parses").command {
            Command::Mqtt(a) => a.command,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn broker_defaults_and_flags() {
        let MqttCommand::Broker {
            listen,
            config,
            driver,
            ws_listen,
            threads,
            ..
        } = parse(&["broker"])
        else {
            panic!("broker")
        };
        assert_eq!(threads, None);
        let MqttCommand::Broker { threads, .. } = parse(&["broker", "--threads", "4"]) else {
            panic!("broker")
        };
        assert_eq!(threads, Some(4));
        assert!(Cli::try_parse_from(["monocoque", "mqtt", "broker", "--threads", "0"]).is_err());
        assert_eq!((listen, config), (None, None));
        assert_eq!(driver, DriverKind::default());
        assert_eq!(ws_listen, None);
        let MqttCommand::Broker { data, no_store, .. } = parse(&["broker"]) else {
            panic!("broker")
        };
        assert_eq!((data, no_store), (PathBuf::from(DEFAULT_DATA), false));
        let MqttCommand::Broker { data, no_store, .. } = parse(&["broker", "--data", "/var/lib/m", "--no-store"])
        else {
            panic!("broker")
        };
        assert_eq!((data, no_store), (PathBuf::from("/var/lib/m"), true));
        let MqttCommand::Broker { ws_listen, .. } = parse(&["broker", "--ws-listen", "127.0.0.1:8080"]) else {
            panic!("broker")
        };
        assert_eq!(ws_listen, Some("127.0.0.1:8080".parse().unwrap()));
        let MqttCommand::Broker {
            listen, config, driver, ..
        } = parse(&[
            "broker",
            "--listen",
            "0.0.0.0:1999",
            "--driver",
            "mio",
            "--config",
            "b.toml",
        ])
        else {
            panic!("broker")
        };
        assert_eq!(listen, Some("0.0.0.0:1999".parse().unwrap()));
        assert_eq!(config, Some(PathBuf::from("b.toml")));
        assert_eq!(driver, DriverKind::Mio);
        assert!(matches!(parse(&["passwd"]), MqttCommand::Passwd));
        assert!(Cli::try_parse_from(["monocoque", "mqtt", "broker", "--driver", "epoll"]).is_err());
    }

    #[test]
    fn pub_and_sub_take_mosquittos_flags() {
        let MqttCommand::Pub(p) = parse(&[
            "pub", "-h", "broker", "-p", "1999", "-t", "a/b", "-m", "hi", "-q", "2", "-r", "-V", "mqttv5", "-c", "-i",
            "me", "-u", "u", "-P", "pw", "-k", "5", "-d",
        ]) else {
            panic!("pub")
        };
        assert_eq!((p.conn.host.as_str(), p.conn.port, p.conn.qos), ("broker", 1999, 2));
        assert_eq!(
            (p.topic.as_str(), p.message.as_deref(), p.retain),
            ("a/b", Some("hi"), true)
        );
        assert_eq!(p.conn.version, monocoque::mqtt::ProtocolVersion::V5);
        assert!(p.conn.no_clean && p.conn.debug);
        let o = pubsub::options(&p.conn);
        assert_eq!(
            (o.client_id.as_str(), o.clean_start, o.session_expiry),
            ("me", false, u32::MAX)
        );
        assert_eq!(o.username.as_deref(), Some("u"));
        assert_eq!(o.keep_alive, std::time::Duration::from_secs(5));

        let MqttCommand::Sub(s) = parse(&["sub", "-t", "a/#", "-t", "b/+", "-C", "3", "-v", "-V", "311"]) else {
            panic!("sub")
        };
        assert_eq!(s.topics, ["a/#", "b/+"]);
        assert_eq!((s.count, s.verbose), (Some(3), true));
        assert_eq!(s.conn.version, monocoque::mqtt::ProtocolVersion::V3_1_1);
        assert!(Cli::try_parse_from(["monocoque", "mqtt", "sub", "-t", "x", "-V", "4"]).is_err());
        assert!(Cli::try_parse_from(["monocoque", "mqtt", "pub", "-t", "x", "-m", "a", "-l"]).is_err());
        assert!(Cli::try_parse_from(["monocoque", "mqtt", "pub", "-t", "x", "-q", "3"]).is_err());
        // A message or password may start with '-', as mosquitto_pub's getopt allows.
        let MqttCommand::Pub(p) = parse(&["pub", "-t", "t", "-m", "-5", "-P", "-pw"]) else {
            panic!("pub")
        };
        assert_eq!(
            (p.message.as_deref(), p.conn.password.as_deref()),
            (Some("-5"), Some("-pw"))
        );
    }
}
