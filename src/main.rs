//! The `monocoque` command line. The CLI lives in this binary only (`mod cli`), so the
//! `monocoque` library carries neither it nor clap.

mod cli;

use clap::Parser;

fn main() -> std::process::ExitCode {
    cli::run(cli::Cli::parse())
}
