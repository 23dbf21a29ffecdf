//! The `monocoque` command line.

pub mod format;
pub mod nats;
pub mod redis;
mod resp;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::{Parser, Subcommand};
use monocoque::driver::DriverKind;

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
        Command::Doctor => doctor(),
    }
}

/// The parser of `--driver`: the library's [`DriverKind`] has no clap in it, so the
/// names are listed here for `--help` and the error message, and parsed by its
/// `FromStr` (`uring`, its alias `io_uring`, `mio`).
pub fn driver_kind() -> impl TypedValueParser<Value = DriverKind> {
    PossibleValuesParser::new(DriverKind::ALL.map(|kind| match kind {
        DriverKind::Uring => PossibleValue::new(kind.name()).alias("io_uring"),
        DriverKind::Mio => PossibleValue::new(kind.name()),
    }))
    .try_map(|name| name.parse::<DriverKind>())
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

#[cfg(test)]
mod tests {
    use super::*;

    /// `--driver` takes the names `DriverKind`'s `FromStr` takes, and no other.
    #[test]
    fn driver_option_takes_the_library_names() {
        let cmd = clap::Command::new("t");
        let parse = |name: &str| driver_kind().parse_ref(&cmd, None, std::ffi::OsStr::new(name));
        assert_eq!(parse("uring").ok(), Some(DriverKind::Uring));
        assert_eq!(parse("io_uring").ok(), Some(DriverKind::Uring));
        assert_eq!(parse("mio").ok(), Some(DriverKind::Mio));
        let err = parse("epoll").expect_err("not a driver").to_string();
        assert!(err.contains("uring") && err.contains("mio"), "{err}");
        for kind in DriverKind::ALL {
            assert_eq!(parse(&kind.to_string()).ok(), Some(kind), "{kind}");
        }
    }
}
