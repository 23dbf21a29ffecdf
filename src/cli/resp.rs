//! `monocoque resp ...`: the RESP engine on the command line.

use std::io::{self, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use bytes::Bytes;
use clap::{Args, Subcommand};
use monocoque_proto::resp::{Decoder, DecoderConfig, Protocol};
use monocoque_proto::SegmentedBuffer;

use super::client::{exit_status, CliError};
use super::format;

/// RESP tools.
#[derive(Debug, Subcommand)]
pub enum RespCommand {
    /// Decode a raw RESP byte stream (a capture, `redis-cli --pipe` input, ...) and
    /// print each value as redis-cli would.
    Decode(DecodeArgs),
}

/// Arguments of `monocoque resp decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// File to read; standard input when absent.
    pub file: Option<PathBuf>,
    /// Decode as RESP2 (RESP3-only types are an error).
    #[arg(long)]
    pub resp2: bool,
    /// Print the raw form even on a terminal (as `redis-cli --raw`).
    #[arg(long)]
    pub raw: bool,
    /// Largest bulk string accepted, in bytes.
    #[arg(long, default_value_t = 512 * 1024 * 1024)]
    pub max_bulk_len: usize,
}

/// Runs a `resp` subcommand.
pub fn run(cmd: RespCommand) -> ExitCode {
    match cmd {
        RespCommand::Decode(args) => exit_status(decode(&args).map_err(CliError::from)),
    }
}

fn decode(args: &DecodeArgs) -> io::Result<ExitCode> {
    let protocol = if args.resp2 { Protocol::Resp2 } else { Protocol::Resp3 };
    let mut decoder = Decoder::new(DecoderConfig {
        max_bulk_len: args.max_bulk_len,
        ..DecoderConfig::new(protocol)
    });
    let mut input: Box<dyn Read> = match &args.file {
        Some(path) => Box::new(std::fs::File::open(path)?),
        None => Box::new(io::stdin().lock()),
    };
    let stdout = io::stdout();
    let tty = stdout.is_terminal() && !args.raw;
    let mut out = io::BufWriter::new(stdout.lock());
    let mut src = SegmentedBuffer::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut count = 0usize;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        src.push(Bytes::copy_from_slice(&buf[..n]));
        loop {
            match decoder.decode(&mut src) {
                Ok(Some(value)) => {
                    count += 1;
                    if tty {
                        writeln!(out, "{}", format::tty(&value))?;
                    } else {
                        out.write_all(&format::raw(&value))?;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    out.flush()?;
                    eprintln!("monocoque: value {}: {e}", count + 1);
                    return Ok(ExitCode::FAILURE);
                }
            }
        }
    }
    out.flush()?;
    if decoder.is_mid_value() || !src.is_empty() {
        eprintln!("monocoque: input ended inside value {}", count + 1);
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
