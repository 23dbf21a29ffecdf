//! The `monocoque` command line.

pub mod format;
mod resp;

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
}

/// Runs the parsed command line; returns the process exit status.
pub fn run(cli: Cli) -> std::process::ExitCode {
    match cli.command {
        Command::Resp(cmd) => resp::run(cmd),
    }
}
