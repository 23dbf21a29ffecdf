//! `monocoque nats ...`: publish, subscribe and request against a NATS server, in the
//! manner of the `nats` command line tool.
//!
//! - `pub SUBJECT PAYLOAD [--count N]` publishes `N` copies (one flush), then checks with
//!   a round trip that the server took them.
//! - `sub SUBJECT [--queue Q] [--count N]` prints each message as it arrives and exits
//!   after `N` (runs until interrupted without `--count`). Once the server has confirmed
//!   the subscription it prints `Subscribing on SUBJECT` on standard error, so a script
//!   can wait for that line before publishing.
//! - `req SUBJECT PAYLOAD [--timeout T]` prints the reply's payload; exits 1 when nobody
//!   answers (no responders) or on timeout.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use clap::{Args, Subcommand};

use super::client::{exit_status, CliError, LinkArgs};
use monocoque::nats::{Auth, Client, ClientOptions, Error, Message};

/// The server `monocoque nats` talks to unless `--server` says otherwise.
pub const DEFAULT_SERVER: &str = "nats://127.0.0.1:4222";

/// Arguments of `monocoque nats`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  monocoque nats pub orders.new '{\"id\":1}' --count 10\n  monocoque nats sub 'orders.>' --queue workers --count 10\n  monocoque nats --server nats://u:p@host:4222 req time.now '' --timeout 2s"
)]
pub struct NatsArgs {
    /// Server(s) to connect to: nats://[user:password@|token@]host[:port], several
    /// separated by commas.
    #[arg(long, short = 's', value_name = "URL", default_value = DEFAULT_SERVER, global = true)]
    pub server: String,
    /// The link's arguments (`--driver`).
    #[command(flatten)]
    pub link: LinkArgs,
    /// A `.creds` file (user JWT and NKey seed) to authenticate with.
    #[arg(long, value_name = "FILE", global = true, conflicts_with = "nkey")]
    pub creds: Option<PathBuf>,
    /// A file holding a user NKey seed (`SU...`) to authenticate with.
    #[arg(long, value_name = "FILE", global = true)]
    pub nkey: Option<PathBuf>,
    /// The connection name the server shows.
    #[arg(long, value_name = "NAME", global = true, default_value = "monocoque-cli")]
    pub name: String,
    /// What to do.
    #[command(subcommand)]
    pub command: NatsCommand,
}

/// The `monocoque nats` subcommands.
#[derive(Debug, Subcommand)]
pub enum NatsCommand {
    /// Publish PAYLOAD to SUBJECT (COUNT times).
    Pub {
        /// The subject.
        subject: String,
        /// The message body (may be empty: '').
        #[arg(allow_hyphen_values = true)]
        payload: String,
        /// How many copies to publish.
        #[arg(long, short = 'c', default_value_t = 1, value_name = "N")]
        count: u64,
    },
    /// Subscribe to SUBJECT and print what arrives.
    Sub {
        /// The subject (wildcards `*` and `>` allowed).
        subject: String,
        /// Join this queue group: each message goes to one member.
        #[arg(long, short = 'q', value_name = "Q")]
        queue: Option<String>,
        /// Exit after this many messages (default: run until interrupted).
        #[arg(long, short = 'c', value_name = "N")]
        count: Option<u64>,
        /// Print only each payload, one per line.
        #[arg(long)]
        raw: bool,
    },
    /// Send a request and print the reply.
    Req {
        /// The subject.
        subject: String,
        /// The request body (may be empty: '').
        #[arg(allow_hyphen_values = true)]
        payload: String,
        /// How long to wait for the reply: `500ms`, `2s`, `1m` or seconds (`1.5`).
        #[arg(long, short = 't', default_value = "5s", value_parser = parse_duration, value_name = "T")]
        timeout: Duration,
    },
}

/// Why a `--timeout` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected e.g. 500ms, 2s, 1m or a number of seconds")]
pub struct DurationError(String);

/// Parses `500ms`, `2s`, `1.5s`, `1m`, `250us` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let t = text.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (number, unit) = t.split_at(split);
    let value: f64 = number.parse().map_err(|_| DurationError(text.to_owned()))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" | "µs" => value / 1e6,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(DurationError(text.to_owned())),
    };
    Duration::try_from_secs_f64(seconds).map_err(|_| DurationError(text.to_owned()))
}

/// Runs `monocoque nats`; returns the process exit status.
pub fn run(args: NatsArgs) -> ExitCode {
    exit_status(run_inner(&args).map(|()| ExitCode::SUCCESS))
}

fn options(args: &NatsArgs) -> Result<ClientOptions, CliError> {
    let mut options = ClientOptions::from_url(&args.server)
        .map_err(Error::from)?
        .driver(args.link.driver)
        .name(args.name.clone());
    if let Some(path) = &args.creds {
        options = options.auth(Auth::CredsFile(path.clone()));
    } else if let Some(path) = &args.nkey {
        let seed = std::fs::read_to_string(path)?;
        options = options.auth(Auth::NKey {
            seed: seed.trim().to_owned(),
        });
    }
    Ok(options)
}

fn run_inner(args: &NatsArgs) -> Result<(), CliError> {
    let mut client = Client::connect_with(options(args)?)?;
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match &args.command {
        NatsCommand::Pub {
            subject,
            payload,
            count,
        } => {
            let payload = Bytes::copy_from_slice(payload.as_bytes());
            for _ in 0..*count {
                client.publish(subject, payload.clone())?;
            }
            // The round trip proves the server took every publish before we exit.
            client.round_trip()?;
            writeln!(out, "Published {count} message(s) to \"{subject}\"")?;
        }
        NatsCommand::Sub {
            subject,
            queue,
            count,
            raw,
        } => {
            let mut sub = match queue {
                Some(q) => client.queue_subscribe(subject, q)?,
                None => client.subscribe(subject)?,
            };
            client.round_trip()?;
            eprintln!("Subscribing on {subject}");
            let mut received = 0u64;
            while count.is_none_or(|n| received < n) {
                let Some(message) = sub.next_message(Duration::from_secs(3600))? else {
                    continue;
                };
                received += 1;
                print_message(&mut out, received, &message, *raw)?;
                out.flush()?;
            }
        }
        NatsCommand::Req {
            subject,
            payload,
            timeout,
        } => {
            let reply = client.request(subject, Bytes::copy_from_slice(payload.as_bytes()), *timeout)?;
            out.write_all(&reply.payload)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// Prints one received message: `[#n] Received on "subject"` (with its reply subject),
/// its headers, its payload and a blank line; or only the payload with `raw`.
fn print_message(out: &mut impl Write, n: u64, message: &Message, raw: bool) -> io::Result<()> {
    if raw {
        out.write_all(&message.payload)?;
        return out.write_all(b"\n");
    }
    write!(
        out,
        "[#{n}] Received on \"{}\"",
        String::from_utf8_lossy(&message.subject)
    )?;
    if let Some(reply) = &message.reply {
        write!(out, " with reply \"{}\"", String::from_utf8_lossy(reply))?;
    }
    out.write_all(b"\n")?;
    if let Some(headers) = &message.headers {
        for (name, value) in headers.iter() {
            writeln!(
                out,
                "{}: {}",
                String::from_utf8_lossy(&name),
                String::from_utf8_lossy(&value)
            )?;
        }
    }
    out.write_all(&message.payload)?;
    out.write_all(b"\n\n")
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(words: &[&str]) -> NatsArgs {
        let mut argv = vec!["monocoque", "nats"];
        argv.extend_from_slice(words);
        match Cli::try_parse_from(argv).unwrap().command {
            Command::Nats(args) => args,
            other => panic!("not nats: {other:?}"),
        }
    }

    #[test]
    fn pub_with_count_and_global_options_anywhere() {
        let a = parse(&[
            "--server",
            "nats://h:1",
            "pub",
            "a.b",
            "hi",
            "--count",
            "3",
            "--driver",
            "mio",
        ]);
        assert_eq!(a.server, "nats://h:1");
        assert_eq!(a.link.driver, monocoque::driver::DriverKind::Mio);
        match a.command {
            NatsCommand::Pub {
                subject,
                payload,
                count,
            } => assert_eq!((subject.as_str(), payload.as_str(), count), ("a.b", "hi", 3)),
            other => panic!("{other:?}"),
        }
        let a = parse(&["pub", "s", "-starts-with-dash"]);
        assert_eq!(a.server, DEFAULT_SERVER);
        assert!(matches!(a.command, NatsCommand::Pub { payload, count: 1, .. } if payload == "-starts-with-dash"));
    }

    #[test]
    fn sub_and_req() {
        let a = parse(&["sub", "x.>", "--queue", "workers", "-c", "5"]);
        assert!(matches!(
            a.command,
            NatsCommand::Sub { ref subject, ref queue, count: Some(5), raw: false }
                if subject == "x.>" && queue.as_deref() == Some("workers")
        ));
        let a = parse(&["req", "svc", "", "--timeout", "250ms"]);
        assert!(matches!(
            a.command,
            NatsCommand::Req { ref payload, timeout, .. } if payload.is_empty() && timeout == Duration::from_millis(250)
        ));
        let a = parse(&["req", "svc", "p"]);
        assert!(matches!(a.command, NatsCommand::Req { timeout, .. } if timeout == Duration::from_secs(5)));
    }

    #[test]
    fn bad_arguments_are_refused() {
        for words in [
            &["pub", "only-subject"][..],
            &["sub"],
            &["req", "s", "p", "--timeout", "soon"],
            &["pub", "s", "p", "--count", "-1"],
            &["--driver", "epoll", "pub", "s", "p"],
            &["frobnicate"],
        ] {
            let mut argv = vec!["monocoque", "nats"];
            argv.extend_from_slice(words);
            assert!(Cli::try_parse_from(&argv).is_err(), "{words:?}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration(" 3 s "), Ok(Duration::from_secs(3)));
        for bad in ["", "s", "1x", "-1s", "1e999", "."] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn message_printing() {
        let mut headers = monocoque::proto::nats::HeaderMap::new();
        headers.insert("Trace", "t1").unwrap();
        let message = Message {
            subject: Bytes::from_static(b"a.b"),
            sid: monocoque::proto::nats::Sid::from_u64(1),
            reply: Some(Bytes::from_static(b"_INBOX.x")),
            headers: Some(headers.to_headers()),
            payload: Bytes::from_static(b"hello"),
        };
        let mut out = Vec::new();
        print_message(&mut out, 7, &message, false).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "[#7] Received on \"a.b\" with reply \"_INBOX.x\"\nTrace: t1\nhello\n\n"
        );
        let mut out = Vec::new();
        print_message(&mut out, 1, &message, true).unwrap();
        assert_eq!(out, b"hello\n");
    }
}
