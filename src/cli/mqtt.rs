//! `monocoque mqtt ...`: the MQTT broker.
//!
//! - `broker [--listen ADDR] [--driver uring|mio]` runs the broker on one driver
//!   thread, listening on ADDR (default 127.0.0.1:1883), until the process is killed.
//!   Once the listener is bound it prints `listening on ADDR` on standard error (the
//!   bound address, so `--listen 127.0.0.1:0` tells a script its port).
//! - `pub` and `sub`: a client with `mosquitto_pub`/`mosquitto_sub`'s flags
//!   ([`pubsub`]).

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Subcommand};

pub mod pubsub;

use super::client::driver_kind;
use monocoque::driver::DriverKind;
use monocoque::mqtt::Broker;

/// The address `monocoque mqtt broker` listens on unless `--listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1883";

/// Arguments of `monocoque mqtt`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  monocoque mqtt broker\n  monocoque mqtt broker --listen 0.0.0.0:1883 --driver mio"
)]
pub struct MqttArgs {
    /// What to run.
    #[command(subcommand)]
    pub command: MqttCommand,
}

/// The `monocoque mqtt` subcommands.
#[derive(Debug, Subcommand)]
pub enum MqttCommand {
    /// Run an MQTT 3.1.1/5.0 broker on one driver thread.
    Broker {
        /// The address to listen on.
        #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// I/O driver: io_uring (Linux 5.19+) or mio (readiness, portable).
        #[arg(long, value_parser = driver_kind(), value_name = "DRIVER", default_value_t = DriverKind::default())]
        driver: DriverKind,
    },
    /// Publish a message, like mosquitto_pub (-h HOST -p PORT -t TOPIC -m MSG -q QOS).
    Pub(pubsub::PubArgs),
    /// Subscribe and print messages, like mosquitto_sub (-h HOST -p PORT -t FILTER -v -C N).
    Sub(pubsub::SubArgs),
}

/// Runs `monocoque mqtt`; returns the exit status.
pub fn run(args: MqttArgs) -> ExitCode {
    match args.command {
        MqttCommand::Broker { listen, driver } => broker(listen, driver),
        MqttCommand::Pub(args) => pubsub::run_pub(args),
        MqttCommand::Sub(args) => pubsub::run_sub(args),
    }
}

fn broker(listen: SocketAddr, driver: DriverKind) -> ExitCode {
    let mut broker = match Broker::bind(listen, driver) {
        Ok(broker) => broker,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match broker.local_addr() {
        Ok(addr) => eprintln!("listening on {addr} ({driver})"),
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    }
    match broker.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
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
        let MqttCommand::Broker { listen, driver } = parse(&["broker"]) else {
            panic!("broker")
        };
        assert_eq!(listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(driver, DriverKind::default());
        let MqttCommand::Broker { listen, driver } = parse(&["broker", "--listen", "0.0.0.0:1999", "--driver", "mio"])
        else {
            panic!("broker")
        };
        assert_eq!(listen, "0.0.0.0:1999".parse().unwrap());
        assert_eq!(driver, DriverKind::Mio);
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
    }
}
