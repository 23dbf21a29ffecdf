//! What the client subcommands (`monocoque redis`, `monocoque nats`) share: the
//! arguments of the link under the client (`--driver`), the command line's one error
//! type, and how a failed command ends the process.

use std::io;
use std::process::ExitCode;

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::Args;
use monocoque::driver::DriverKind;

use super::redis::PipeError;

/// The arguments every client subcommand takes for its link (global: they may come
/// before or after a subcommand's own words).
#[derive(Debug, Clone, Args)]
pub struct LinkArgs {
    /// I/O driver: io_uring (Linux 5.19+) or mio (readiness, portable).
    #[arg(long, value_parser = driver_kind(), value_name = "DRIVER", default_value_t = DriverKind::default(), global = true)]
    pub driver: DriverKind,
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

/// Why a `monocoque` command failed, printed on standard error before exiting 1.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Connecting to Redis, the handshake, the connection or the command failed.
    #[error(transparent)]
    Redis(#[from] monocoque::redis::Error),
    /// Connecting to NATS, the handshake, the connection or a request failed.
    #[error(transparent)]
    Nats(#[from] monocoque::nats::Error),
    /// Standard input or output failed, or a file could not be read.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// `redis --pipe`: the input or the server let the mass insertion down.
    #[error(transparent)]
    Pipe(#[from] PipeError),
}

/// The process's exit status for a command's outcome: its own status when it ran, or
/// 1 after printing why it failed (`monocoque: ...` on standard error).
pub fn exit_status(outcome: Result<ExitCode, CliError>) -> ExitCode {
    outcome.unwrap_or_else(|e| {
        eprintln!("monocoque: {e}");
        ExitCode::FAILURE
    })
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
