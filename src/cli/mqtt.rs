//! `monocoque mqtt ...`: the MQTT broker.
//!
//! - `broker [--listen ADDR] [--driver uring|mio]` runs the broker on one driver
//!   thread, listening on ADDR (default 127.0.0.1:1883), until the process is killed.
//!   Once the listener is bound it prints `listening on ADDR` on standard error (the
//!   bound address, so `--listen 127.0.0.1:0` tells a script its port).
//!   `--ws-listen ADDR` adds a listener for MQTT over WebSocket (subprotocol `mqtt`,
//!   any request path), off by default; once bound it prints `websocket listening on
//!   ADDR`.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::client::driver_kind;
use monocoque::driver::DriverKind;
use monocoque::mqtt::Broker;

/// The address `monocoque mqtt broker` listens on unless `--listen` says otherwise.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:1883";

/// Arguments of `monocoque mqtt`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  monocoque mqtt broker\n  monocoque mqtt broker --listen 0.0.0.0:1883 --driver mio\n  monocoque mqtt broker --ws-listen 127.0.0.1:8080"
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
        /// Also accept MQTT over WebSocket (subprotocol `mqtt`) on this address
        /// (default: off).
        #[arg(long, value_name = "ADDR")]
        ws_listen: Option<SocketAddr>,
    },
}

/// Runs `monocoque mqtt`; returns the exit status.
pub fn run(args: MqttArgs) -> ExitCode {
    match args.command {
        MqttCommand::Broker {
            listen,
            driver,
            ws_listen,
        } => broker(listen, driver, ws_listen),
    }
}

fn broker(listen: SocketAddr, driver: DriverKind, ws_listen: Option<SocketAddr>) -> ExitCode {
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
    if let Some(ws) = ws_listen {
        match broker.listen_websocket(ws) {
            Ok(addr) => eprintln!("websocket listening on {addr}"),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
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
        let MqttCommand::Broker {
            listen,
            driver,
            ws_listen,
        } = parse(&["broker"]);
        assert_eq!(listen, DEFAULT_LISTEN.parse().unwrap());
        assert_eq!(driver, DriverKind::default());
        assert_eq!(ws_listen, None);
        let MqttCommand::Broker { ws_listen, .. } = parse(&["broker", "--ws-listen", "127.0.0.1:8080"]);
        assert_eq!(ws_listen, Some("127.0.0.1:8080".parse().unwrap()));
        let MqttCommand::Broker { listen, driver, .. } =
            parse(&["broker", "--listen", "0.0.0.0:1999", "--driver", "mio"]);
        assert_eq!(listen, "0.0.0.0:1999".parse().unwrap());
        assert_eq!(driver, DriverKind::Mio);
        assert!(Cli::try_parse_from(["monocoque", "mqtt", "broker", "--driver", "epoll"]).is_err());
    }
}
