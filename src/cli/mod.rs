//! The `monocoque` command line.

pub mod client;
pub mod format;
pub mod mqtt;
pub mod nats;
pub mod redis;
mod resp;
pub mod zmq_keygen;

use clap::{Parser, Subcommand};

/// Monocoque: a multi-protocol I/O kernel.
#[derive(Debug, Parser)]
#[command(name = "monocoque", version, about, propagate_version = true)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with the RESP (Redis) protocol engine.
    #[command(subcommand)]
    Resp(resp::RespCommand),
    /// Send a command to a Redis server (or mass-insert with --pipe), like redis-cli.
    Redis(redis::RedisArgs),
    /// Publish, subscribe or send a request to a NATS server, like the nats tool.
    Nats(nats::NatsArgs),
    /// Run an MQTT broker.
    Mqtt(mqtt::MqttArgs),
    /// ZeroMQ tools: `keygen` prints a CURVE key pair.
    Zmq(zmq_keygen::ZmqArgs),
    /// Say which io_uring features the kernel gave: one line per feature, active or the
    /// fallback in force and why.
    Doctor,
}

/// Runs the parsed command line; returns the process exit status.
pub fn run(cli: Cli) -> std::process::ExitCode {
    match cli.command {
        Command::Resp(cmd) => resp::run(cmd),
        Command::Redis(args) => redis::run(args),
        Command::Nats(args) => nats::run(args),
        Command::Mqtt(args) => mqtt::run(args),
        Command::Zmq(args) => zmq_keygen::run(args),
        Command::Doctor => doctor(),
    }
}

/// Prints one line per io_uring feature (`feature: active|fallback - detail`); exits 1
/// when the io_uring driver cannot start at all, saying why.
fn doctor() -> std::process::ExitCode {
    use monocoque_uring::UringDriver;
    println!("monocoque {}", env!("CARGO_PKG_VERSION"));
    match UringDriver::<monocoque_proto::resp::Connection>::new() {
        Ok(driver) => {
            println!("io_uring: available");
            for line in driver.feature_report() {
                let state = if line.active { "active" } else { "inactive" };
                println!("{}: {state} - {}", line.name, line.detail);
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            println!("io_uring: unavailable - {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
