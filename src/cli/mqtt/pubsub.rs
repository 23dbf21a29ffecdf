//! `monocoque mqtt pub` and `monocoque mqtt sub`: [`monocoque::mqtt::Client`] with the
//! flags people know from `mosquitto_pub` and `mosquitto_sub`.
//!
//! Shared: `-h HOST` (`--help` for help), `-p PORT`, `-V 311|5` (`mqttv311`,
//! `mqttv5`), `-i ID`, `-c` (no clean session: the session persists; 5.0 with `-x`
//! seconds, default never expiring), `-u USER`, `-P PASSWORD`, `-k KEEPALIVE`,
//! `-q QOS`, `-d` (connection events on standard error), `--driver`.
//!
//! - `pub -t TOPIC (-m MESSAGE | -l | -n) [-r]`: `-l` publishes one message per line
//!   of standard input (without its newline), `-n` an empty one; QoS 1/2 publishes
//!   return once acknowledged.
//! - `sub -t FILTER... [-C COUNT] [-v] [-W SECONDS]`: prints one payload per line
//!   (`-v`: `topic payload`), exits after `-C` messages or `-W` seconds.

use std::io::{self, BufRead, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::{ArgAction, Args};
use monocoque::driver::DriverKind;
use monocoque::mqtt::{Client, ClientOptions, Error, ProtocolVersion, QoS, ServerAddr};

use crate::cli::client::driver_kind;

/// The connection flags `pub` and `sub` share.
#[derive(Debug, Args)]
pub struct ConnArgs {
    /// Broker host.
    #[arg(short = 'h', long = "host", default_value = "localhost")]
    pub host: String,
    /// Broker port.
    #[arg(short = 'p', long = "port", default_value_t = 1883)]
    pub port: u16,
    /// Protocol version: 311 (mqttv311) or 5 (mqttv5).
    #[arg(short = 'V', long = "protocol-version", value_parser = protocol_version, default_value = "311")]
    pub version: ProtocolVersion,
    /// Client identifier (default: monocoque-PID).
    #[arg(short = 'i', long = "id")]
    pub id: Option<String>,
    /// Disable clean session: the session persists (5.0: for -x seconds).
    #[arg(short = 'c', long = "disable-clean-session")]
    pub no_clean: bool,
    /// Session Expiry Interval with -c (5.0; default: never expires).
    #[arg(short = 'x', long = "session-expiry-interval")]
    pub session_expiry: Option<u32>,
    /// User name.
    #[arg(short = 'u', long = "username")]
    pub username: Option<String>,
    /// Password.
    #[arg(short = 'P', long = "pw", allow_hyphen_values = true)]
    pub password: Option<String>,
    /// Keep alive in seconds.
    #[arg(short = 'k', long = "keepalive", default_value_t = 60)]
    pub keep_alive: u16,
    /// Quality of service: 0, 1 or 2.
    #[arg(short = 'q', long = "qos", value_parser = clap::value_parser!(u8).range(0..=2), default_value_t = 0)]
    pub qos: u8,
    /// Print connection events on standard error.
    #[arg(short = 'd', long = "debug")]
    pub debug: bool,
    /// I/O driver: io_uring or mio.
    #[arg(long, value_parser = driver_kind(), default_value_t = DriverKind::default())]
    pub driver: DriverKind,
    /// Print help.
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
}

/// `monocoque mqtt pub`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct PubArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Topic to publish on.
    #[arg(short = 't', long = "topic")]
    pub topic: String,
    /// The message.
    #[arg(short = 'm', long = "message", group = "payload", allow_hyphen_values = true)]
    pub message: Option<String>,
    /// One message per line of standard input.
    #[arg(short = 'l', long = "stdin-line", group = "payload")]
    pub lines: bool,
    /// An empty message.
    #[arg(short = 'n', long = "null-message", group = "payload")]
    pub null: bool,
    /// Retain the message.
    #[arg(short = 'r', long = "retain")]
    pub retain: bool,
}

/// `monocoque mqtt sub`.
#[derive(Debug, Args)]
#[command(disable_help_flag = true, disable_version_flag = true)]
pub struct SubArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Topic filter to subscribe to (repeatable).
    #[arg(short = 't', long = "topic", required = true)]
    pub topics: Vec<String>,
    /// Exit after this many messages.
    #[arg(short = 'C', long = "count")]
    pub count: Option<u64>,
    /// Print `topic payload`.
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,
    /// Exit after this many seconds.
    #[arg(short = 'W', long = "timeout")]
    pub timeout: Option<u64>,
}

/// Why `pub` or `sub` failed.
#[derive(Debug, thiserror::Error)]
pub enum PubSubError {
    /// The client failed.
    #[error(transparent)]
    Mqtt(#[from] Error),
    /// Standard input or output failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// `pub` was given nothing to send.
    #[error("nothing to publish: give -m MESSAGE, -l or -n")]
    NoPayload,
}

fn protocol_version(s: &str) -> Result<ProtocolVersion, String> {
    match s {
        "311" | "mqttv311" | "31" | "3.1.1" => Ok(ProtocolVersion::V3_1_1),
        "5" | "mqttv5" | "5.0" => Ok(ProtocolVersion::V5),
        other => Err(format!("{other:?}: expected 311 (mqttv311) or 5 (mqttv5)")),
    }
}

fn qos(q: u8) -> QoS {
    QoS::from_bits(q).unwrap_or(QoS::AtMostOnce)
}

/// The client options the flags say.
pub fn options(c: &ConnArgs) -> ClientOptions {
    let server = ServerAddr {
        host: c.host.clone(),
        port: c.port,
    };
    let id =
        c.id.clone()
            .unwrap_or_else(|| format!("monocoque-{}", std::process::id()));
    let mut o = ClientOptions::new(server)
        .driver(c.driver)
        .version(c.version)
        .client_id(id)
        .clean_start(!c.no_clean)
        .keep_alive(Duration::from_secs(u64::from(c.keep_alive)))
        .username(c.username.clone())
        .password(c.password.clone().map(Bytes::from));
    if c.no_clean {
        o = o.session_expiry(c.session_expiry.unwrap_or(u32::MAX));
    }
    o
}

fn connect(c: &ConnArgs) -> Result<Client, Error> {
    let client = Client::connect_with(options(c))?;
    if c.debug {
        eprintln!(
            "connected to {}:{} ({}, session present: {})",
            c.host,
            c.port,
            c.version,
            client.session_present()
        );
    }
    Ok(client)
}

fn report(outcome: Result<ExitCode, PubSubError>) -> ExitCode {
    outcome.unwrap_or_else(|e| {
        eprintln!("monocoque: {e}");
        ExitCode::FAILURE
    })
}

/// Runs `monocoque mqtt pub`.
pub fn run_pub(args: PubArgs) -> ExitCode {
    report(publish(&args))
}

fn publish(args: &PubArgs) -> Result<ExitCode, PubSubError> {
    if args.message.is_none() && !args.lines && !args.null {
        return Err(PubSubError::NoPayload);
    }
    let mut client = connect(&args.conn)?;
    let q = qos(args.conn.qos);
    let mut sent = 0u64;
    if args.lines {
        for line in io::stdin().lock().split(b'\n') {
            let mut line = line?;
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            client.publish(&args.topic, line, q, args.retain)?;
            sent += 1;
        }
    } else {
        let payload = args.message.clone().unwrap_or_default();
        client.publish(&args.topic, payload, q, args.retain)?;
        sent += 1;
    }
    client.flush()?;
    if args.conn.debug {
        eprintln!("published {sent} message(s) to {}", args.topic);
    }
    client.close()?;
    Ok(ExitCode::SUCCESS)
}

/// Runs `monocoque mqtt sub`.
pub fn run_sub(args: SubArgs) -> ExitCode {
    report(subscribe(&args))
}

fn subscribe(args: &SubArgs) -> Result<ExitCode, PubSubError> {
    let mut client = connect(&args.conn)?;
    let q = qos(args.conn.qos);
    let filters: Vec<(&str, QoS)> = args.topics.iter().map(|t| (t.as_str(), q)).collect();
    let mut sub = client.subscribe_all(&filters)?;
    if args.conn.debug {
        eprintln!("subscribed to {} granted {:?}", args.topics.join(" "), sub.granted());
    }
    let deadline = args.timeout.map(|s| Instant::now() + Duration::from_secs(s));
    let mut out = io::stdout().lock();
    let mut received = 0u64;
    while args.count.is_none_or(|c| received < c) {
        let wait = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => left.min(Duration::from_secs(1)),
                _ => break,
            },
            None => Duration::from_secs(1),
        };
        let Some(message) = sub.next_message(wait)? else {
            continue;
        };
        if args.verbose {
            out.write_all(&message.topic)?;
            out.write_all(b" ")?;
        }
        out.write_all(&message.payload)?;
        out.write_all(b"\n")?;
        out.flush()?;
        received += 1;
    }
    drop(sub);
    client.close()?;
    Ok(ExitCode::SUCCESS)
}
