//! `monocoque zmq keygen`: a fresh CURVE key pair, printed in Z85 as the options
//! `curve_public_key`, `curve_secret_key` and `curve_server_key` (and libzmq's) take it.
//!
//! Prints two lines, `public-key: <40 characters>` and `secret-key: <40 characters>`.
//! The pair comes from the operating system's generator.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use monocoque_proto::zmtp::curve::KeyPair;

/// Arguments of `monocoque zmq`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  monocoque zmq keygen")]
pub struct ZmqArgs {
    /// What to run.
    #[command(subcommand)]
    pub command: ZmqCommand,
}

/// The `monocoque zmq` subcommands.
#[derive(Debug, Subcommand)]
pub enum ZmqCommand {
    /// Print a new CURVE key pair (public and secret key, Z85).
    Keygen,
}

/// Runs `monocoque zmq`.
pub fn run(args: ZmqArgs) -> ExitCode {
    match args.command {
        ZmqCommand::Keygen => {
            println!("{}", KeyPair::generate());
            ExitCode::SUCCESS
        }
    }
}
