//! `monocoque redis ...`: one command, or `--pipe` mass insertion, against a Redis server.
//!
//! One command prints its reply the way `redis-cli` does (the TTY form on a terminal, the
//! raw form otherwise) and exits 1 on an error reply or when the server cannot be
//! reached. `--pipe` reads raw RESP commands from standard input, as
//! `redis-cli --pipe` does, and sends them fully pipelined: a reader thread decodes the
//! input in chunks into batches of about [`PIPE_BATCH_BYTES`] while the main thread
//! streams them to the server, handing each batch to the kernel as soon as the client
//! has room for it and collecting replies as they arrive, so reading stdin, sending and
//! the server's work all overlap (the server never waits for a batch's last reply to
//! reach us before it gets the next batch).

use std::collections::VecDeque;
use std::ffi::OsString;
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use clap::Args;
use monocoque_proto::resp::{
    Cmd, CommandDecodeError, CommandDecoder, CommandLimits, CommandRef, Protocol, TapeRef, Value,
};
use monocoque_proto::SegmentedBuffer;

use super::client::{exit_status, CliError, LinkArgs};
use super::format;
use monocoque::redis::{Client, ClientOptions, Error};

/// The server `monocoque redis` talks to unless `--url` says otherwise.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// Encoded command bytes per `--pipe` batch: each batch is buffered at once and handed
/// to the kernel in one write submission, while the replies to the earlier batches come
/// back and the reader prepares the next one. Small enough that the server has its
/// first bytes quickly, large enough to amortize the driver turn per batch (64 KiB:
/// 1,200 small SETs; 16 KiB and 256 KiB measured no better in `benches/redis_pipeline`).
pub const PIPE_BATCH_BYTES: usize = 64 << 10;

/// Longest `--pipe` wait for the next batch from the reader while requests are
/// outstanding, before polling the connection (hands over what the kernel did not take
/// yet, reads replies) and waiting again: only reached when standard input is slower
/// than the server.
const PIPE_POLL: Duration = Duration::from_millis(5);

/// Bytes read from standard input at a time in `--pipe` mode.
const PIPE_READ_CHUNK: usize = 256 * 1024;

/// Longest argument accepted in `--pipe` input: Redis' default `proto-max-bulk-len`.
const PIPE_MAX_ARG_LEN: usize = CommandLimits::DEFAULT_MAX_ARG_LEN;

/// Most arguments in one `--pipe` command: the server's own limit (`INT_MAX`), which
/// decides; the decoder reserves argument slots only as arguments arrive.
const PIPE_MAX_ARGS: usize = i32::MAX as usize;

/// Batches decoded ahead of the one being sent.
const PIPE_QUEUE_DEPTH: usize = 2;

/// Arguments of `monocoque redis`.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples:\n  monocoque redis SET greeting hello\n  monocoque redis --url redis://127.0.0.1:6380/2 --resp2 HGETALL h\n  monocoque redis --pipe < commands.resp"
)]
pub struct RedisArgs {
    /// Server to connect to: redis://[[user]:password@]host[:port][/db].
    #[arg(long, short = 'u', value_name = "URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// The link's arguments (`--driver`).
    #[command(flatten)]
    pub link: LinkArgs,
    /// Speak RESP3 (HELLO 3, falling back to RESP2 if the server refuses); the default.
    #[arg(long, conflicts_with = "resp2")]
    pub resp3: bool,
    /// Speak RESP2 (no HELLO), as redis-cli does by default.
    #[arg(long)]
    pub resp2: bool,
    /// Mass insertion: read raw RESP commands (arrays of bulk strings) from standard
    /// input, send them pipelined, print a summary of replies and errors, exit 1 if any
    /// reply was an error (as `redis-cli --pipe`).
    #[arg(long, conflicts_with = "command")]
    pub pipe: bool,
    /// With `--pipe`: give up, exit 1, when the server sends no reply for this many
    /// seconds while replies are owed (0 waits forever), as `redis-cli --pipe-timeout`.
    #[arg(long, value_name = "SECS", default_value_t = 30, requires = "pipe")]
    pub pipe_timeout: u64,
    /// Without `--pipe`: longest wait for the command's reply, in seconds (0 waits
    /// forever, for `BLPOP key 0` and the like).
    #[arg(long, value_name = "SECS", default_value_t = 30, conflicts_with = "pipe")]
    pub timeout: u64,
    /// The command and its arguments, e.g. `SET key value` (binary-safe; arguments may
    /// start with `-`).
    #[arg(
        value_name = "CMD",
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true,
        required_unless_present = "pipe"
    )]
    pub command: Vec<OsString>,
}

/// Why `monocoque redis --pipe` gave up (besides the client's errors and those of the
/// standard streams, which [`CliError`] carries too).
#[derive(Debug, thiserror::Error)]
pub enum PipeError {
    /// The `--pipe` input is not a stream of RESP commands.
    #[error("input command {index} is malformed: {source}")]
    Input {
        /// 1-based position of the bad command in the input (empty arrays, which the
        /// server ignores, not counted).
        index: u64,
        /// What is wrong with it.
        #[source]
        source: CommandDecodeError,
    },
    /// Standard input ended in the middle of a command.
    #[error("input ended inside command {index}")]
    Truncated {
        /// 1-based position of the incomplete command.
        index: u64,
    },
    /// The reader thread died without reporting why (it panicked).
    #[error("the input reader thread failed")]
    Reader,
    /// `--pipe`: the server sent no reply for `--pipe-timeout` seconds while replies
    /// were owed (a frozen or overloaded server).
    #[error("no reply from the server for {seconds} s (--pipe-timeout); {replies} replies received, {outstanding} outstanding")]
    PipeTimeout {
        /// The `--pipe-timeout` in force.
        seconds: u64,
        /// Replies received before giving up.
        replies: u64,
        /// Requests sent or buffered without a reply.
        outstanding: usize,
    },
}

/// Runs `monocoque redis`; returns the process exit status.
pub fn run(args: RedisArgs) -> ExitCode {
    exit_status(if args.pipe { pipe(&args) } else { one_command(&args) })
}

fn options(args: &RedisArgs) -> Result<ClientOptions, Error> {
    let protocol = if args.resp2 { Protocol::Resp2 } else { Protocol::Resp3 };
    Ok(ClientOptions::from_url(&args.url)?
        .driver(args.link.driver)
        .protocol(protocol)
        // `--pipe` bounds the wait by the server's progress (`--pipe-timeout`), not
        // per request; a one-shot command by `--timeout` (0: as long as it takes).
        .response_timeout(if args.pipe || args.timeout == 0 {
            None
        } else {
            Some(Duration::from_secs(args.timeout))
        })
        // Silence is judged by those two bounds alone (0 really waits forever): no
        // stale rule of the client's own on top.
        .health_check_timeout(None))
}

/// Builds the command from the command-line words, byte for byte.
fn command_from_words(words: &[OsString]) -> Option<Cmd> {
    let (name, rest) = words.split_first()?;
    let mut cmd = Cmd::new(name.as_bytes());
    for word in rest {
        cmd.push(word.as_bytes());
    }
    Some(cmd)
}

/// The reply as a value, error replies included (whichever way the client reports them).
fn reply_value(reply: Result<Value, Error>) -> Result<Value, Error> {
    match reply {
        Ok(v) => Ok(v),
        Err(Error::Server(e)) => Ok(Value::SimpleError(Bytes::from(e.to_string()))),
        Err(e) => Err(e),
    }
}

/// Formats `value` as redis-cli prints a top-level reply: the TTY form plus a newline on
/// a terminal, the raw form otherwise (where an error reply is followed by an empty line,
/// as redis-cli's raw error formatting ends with its own newline).
pub fn format_reply(value: &Value, tty: bool) -> Vec<u8> {
    if tty {
        let mut out = format::tty(value).into_bytes();
        out.push(b'\n');
        out
    } else {
        let mut out = format::raw(value);
        if value.without_attributes().is_error() {
            out.push(b'\n');
        }
        out
    }
}

fn one_command(args: &RedisArgs) -> Result<ExitCode, CliError> {
    // clap guarantees at least one word without --pipe; an empty list is a usage error.
    let Some(cmd) = command_from_words(&args.command) else {
        return Ok(ExitCode::from(2));
    };
    let mut client = Client::connect_with(options(args)?)?;
    let value = reply_value(client.query(&cmd))?;
    let stdout = io::stdout();
    let tty = stdout.is_terminal();
    let mut out = stdout.lock();
    out.write_all(&format_reply(&value, tty))?;
    out.flush()?;
    Ok(if value.without_attributes().is_error() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// One batch of decoded `--pipe` commands.
struct PipeBatch {
    cmds: Vec<Cmd>,
    /// The input ended after this batch.
    last: bool,
}

/// Decodes RESP commands from `input` chunk by chunk and sends them to `tx` in batches
/// of about `batch_bytes` encoded bytes; the last batch (possibly empty) has `last` set.
/// On malformed input, the complete commands before the bad one are still sent (as
/// `redis-cli --pipe` would have sent them) and the error is returned. Stops quietly
/// when the receiver is gone.
fn read_commands(input: impl Read, batch_bytes: usize, tx: &mpsc::SyncSender<PipeBatch>) -> Result<(), CliError> {
    let mut batcher = Batcher {
        cmds: Vec::new(),
        pending: 0,
        batch_bytes,
        tx,
    };
    let result = decode_input(input, &mut batcher);
    let cmds = std::mem::take(&mut batcher.cmds);
    match result {
        Ok(()) => {
            let _ = tx.send(PipeBatch { cmds, last: true });
            Ok(())
        }
        Err(e) => {
            if !cmds.is_empty() {
                let _ = tx.send(PipeBatch { cmds, last: false });
            }
            Err(e)
        }
    }
}

/// Collects decoded commands into batches for the sending thread.
struct Batcher<'a> {
    cmds: Vec<Cmd>,
    /// Encoded bytes in `cmds`.
    pending: usize,
    batch_bytes: usize,
    tx: &'a mpsc::SyncSender<PipeBatch>,
}

impl Batcher<'_> {
    /// Adds `cmd`; hands the batch over when it is full. `false` when the receiver is
    /// gone.
    fn push(&mut self, cmd: Cmd) -> bool {
        self.pending += cmd.encoded_len();
        self.cmds.push(cmd);
        if self.pending < self.batch_bytes {
            return true;
        }
        self.pending = 0;
        let cmds = std::mem::take(&mut self.cmds);
        self.tx.send(PipeBatch { cmds, last: false }).is_ok()
    }
}

/// Reads all of `input`, [`PIPE_READ_CHUNK`] bytes at a time, decodes it with the
/// server-side [`CommandDecoder`] and hands each command to `batcher`. Each read is one
/// segment of the decoder's input, and each command is lent in place and copied once,
/// into its `Cmd`; memory stays at a chunk or two plus the largest command.
fn decode_input(mut input: impl Read, batcher: &mut Batcher<'_>) -> Result<(), CliError> {
    let mut decoder = CommandDecoder::new(CommandLimits {
        max_args: PIPE_MAX_ARGS,
        max_arg_len: PIPE_MAX_ARG_LEN,
    });
    let mut src = SegmentedBuffer::new();
    // Zeroed room for the next reads; each read's bytes are split off its front.
    let mut room = BytesMut::new();
    let mut index = 0u64;
    loop {
        if room.len() < PIPE_READ_CHUNK / 2 {
            room = BytesMut::zeroed(PIPE_READ_CHUNK);
        }
        let n = loop {
            match input.read(&mut room) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
        };
        if n == 0 {
            break;
        }
        src.push(room.split_to(n).freeze());
        loop {
            // Each command is lent in place and copied once, into its `Cmd`.
            let cmd = match decoder.decode_with(&mut src, to_cmd) {
                Ok(Some(cmd)) => cmd,
                Ok(None) => break,
                Err(source) => {
                    return Err(PipeError::Input {
                        index: index + 1,
                        source,
                    }
                    .into())
                }
            };
            index += 1;
            if !batcher.push(cmd) {
                return Ok(());
            }
        }
    }
    if decoder.is_mid_command() || !src.is_empty() {
        return Err(PipeError::Truncated { index: index + 1 }.into());
    }
    Ok(())
}

/// The client's form of a decoded command.
fn to_cmd(command: CommandRef<'_>) -> Cmd {
    let mut args = command.iter();
    let mut cmd = Cmd::new(args.next().unwrap_or_default());
    for arg in args {
        cmd.push(arg);
    }
    cmd
}

/// One `--pipe` outcome, in command order: the errors of commands refused before it
/// are printed first, then it is counted (an error reply, or a request's failure, is
/// printed to `err`). A connection failure ends the run.
fn on_pipe_reply(
    reply: Result<TapeRef<'_>, Error>,
    refused: &mut VecDeque<(u64, String)>,
    answered: &mut u64,
    stats: &mut PipeStats,
    err: &mut impl Write,
) -> Result<(), CliError> {
    while refused.front().is_some_and(|(at, _)| *at <= *answered) {
        if let Some((_, text)) = refused.pop_front() {
            stats.errors += 1;
            writeln!(err, "{text}")?;
        }
    }
    *answered += 1;
    match reply {
        Ok(_) => stats.replies += 1,
        Err(Error::Server(e)) => {
            stats.replies += 1;
            stats.errors += 1;
            writeln!(err, "{e}")?;
        }
        Err(e) if e.is_connection_failure() => return Err(e.into()),
        Err(e) => {
            stats.errors += 1;
            writeln!(err, "{e}")?;
        }
    }
    Ok(())
}

/// Counts of `--pipe` outcomes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct PipeStats {
    replies: u64,
    errors: u64,
}

fn pipe(args: &RedisArgs) -> Result<ExitCode, CliError> {
    let mut client = Client::connect_with(options(args)?)?;
    let (tx, rx) = mpsc::sync_channel::<PipeBatch>(PIPE_QUEUE_DEPTH);
    let reader = thread::Builder::new()
        .name("monocoque-pipe-reader".into())
        .spawn(move || read_commands(io::stdin().lock(), PIPE_BATCH_BYTES, &tx))?;

    let stdout = io::stdout();
    let stderr = io::stderr();
    let mut err = io::BufWriter::new(stderr.lock());
    let mut stats = PipeStats::default();
    let mut finished = false;
    let outcome = (|| -> Result<(), CliError> {
        // Streaming: a batch is buffered as soon as the client has room for it, while
        // the replies to the earlier ones come back, so the server never waits for us
        // between batches. Room: nothing held back in the client and at most
        // `max_pending` requests outstanding or refused errors waiting to be printed (a
        // batch is always taken when there are none).
        let max_pending = client.options().max_pending;
        let mut next: Option<PipeBatch> = None;
        let mut input_open = true;
        // Errors of commands refused before sending, with the number of requests
        // accepted before each: printed in command order among the reply errors.
        let mut refused: VecDeque<(u64, String)> = VecDeque::new();
        let (mut accepted, mut answered) = (0u64, 0u64);
        let pipe_timeout = (args.pipe_timeout > 0).then(|| Duration::from_secs(args.pipe_timeout));
        // The last time the server answered, or nothing was owed.
        let mut progress = Instant::now();
        loop {
            if client.buffered() == 0 {
                progress = Instant::now();
            }
            // Whether the client could take more commands now.
            let open = client.unsent() == 0 && client.buffered() + refused.len() < max_pending;
            // Waiting for input was the wait of this round (the replies are polled).
            let mut waited_for_input = false;
            if input_open && next.is_none() {
                let received = if client.buffered() == 0 {
                    rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected)
                } else if open {
                    // Input first, as redis-cli does: a batch is sent the moment the
                    // reader has it; replies wait in the socket buffer meanwhile.
                    waited_for_input = true;
                    rx.recv_timeout(PIPE_POLL)
                } else {
                    rx.try_recv().map_err(|e| match e {
                        mpsc::TryRecvError::Empty => mpsc::RecvTimeoutError::Timeout,
                        mpsc::TryRecvError::Disconnected => mpsc::RecvTimeoutError::Disconnected,
                    })
                };
                match received {
                    Ok(batch) => next = Some(batch),
                    Err(mpsc::RecvTimeoutError::Timeout) => {}
                    // The reader stopped early (bad input): finish what was sent.
                    Err(mpsc::RecvTimeoutError::Disconnected) => input_open = false,
                }
            }
            let mut wait = waited_for_input.then(Instant::now);
            let waiting = client.buffered() + refused.len();
            let room = client.unsent() == 0
                && next
                    .as_ref()
                    .is_some_and(|b| waiting == 0 || waiting + b.cmds.len() <= max_pending);
            if room {
                if let Some(batch) = next.take() {
                    for cmd in &batch.cmds {
                        match client.send_buffered(cmd) {
                            Ok(_) => accepted += 1,
                            Err(e) if e.is_connection_failure() => return Err(e.into()),
                            // Refused before sending (e.g. MONITOR): an error for this
                            // command.
                            Err(e) if accepted == answered => {
                                stats.errors += 1;
                                writeln!(err, "{e}")?;
                            }
                            Err(e) => refused.push_back((accepted, e.to_string())),
                        }
                    }
                    if batch.last {
                        input_open = false;
                        finished = true;
                        let mut out = stdout.lock();
                        writeln!(out, "All data transferred. Waiting for the last reply...")?;
                        out.flush()?;
                    }
                    // Hand the batch to the kernel and take what arrived, without
                    // waiting: the next batch may be ready.
                    wait = Some(Instant::now());
                }
            }
            // Never wait past the no-progress deadline.
            let stall = pipe_timeout.and_then(|t| progress.checked_add(t));
            let wait = wait.or(stall);
            // Replies are only counted (and error replies printed): they are visited
            // where they arrived, never built into values.
            let mut failed: Option<CliError> = None;
            let visited = if client.buffered() > 0 {
                client.pump_visit(wait, |reply| {
                    if failed.is_none() {
                        let seen = on_pipe_reply(reply, &mut refused, &mut answered, &mut stats, &mut err);
                        failed = seen.err();
                    }
                })?
            } else {
                0
            };
            if let Some(e) = failed {
                return Err(e);
            }
            if visited > 0 {
                progress = Instant::now();
            } else if client.buffered() > 0 && stall.is_some_and(|d| Instant::now() >= d) {
                return Err(PipeError::PipeTimeout {
                    seconds: args.pipe_timeout,
                    replies: stats.replies,
                    outstanding: client.buffered(),
                }
                .into());
            }
            if !input_open && next.is_none() && client.buffered() == 0 {
                for (_, text) in refused.drain(..) {
                    stats.errors += 1;
                    writeln!(err, "{text}")?;
                }
                break;
            }
        }
        Ok(())
    })();
    err.flush()?;
    // On failure, return at once: the reader may be blocked reading stdin, and exiting
    // ends it.
    outcome?;
    drop(rx);
    reader.join().map_err(|_| PipeError::Reader)??;
    if !finished {
        return Err(PipeError::Reader.into());
    }
    let mut out = stdout.lock();
    writeln!(out, "Last reply received from server.")?;
    writeln!(out, "errors: {}, replies: {}", stats.errors, stats.replies)?;
    out.flush()?;
    Ok(if stats.errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batches(input: &[u8], batch_bytes: usize) -> (Vec<PipeBatch>, Result<(), CliError>) {
        let (tx, rx) = mpsc::sync_channel(1024);
        let result = read_commands(input, batch_bytes, &tx);
        drop(tx);
        (rx.into_iter().collect(), result)
    }

    fn names(batch: &PipeBatch) -> Vec<Vec<Vec<u8>>> {
        batch
            .cmds
            .iter()
            .map(|c| c.arg_bytes().into_iter().map(<[u8]>::to_vec).collect())
            .collect()
    }

    #[test]
    fn commands_are_batched_by_encoded_size_and_the_last_batch_is_marked() {
        let one = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n";
        let input: Vec<u8> = one.iter().copied().cycle().take(one.len() * 10).collect();
        let (out, result) = batches(&input, one.len() * 4);
        assert!(result.is_ok());
        let sizes: Vec<usize> = out.iter().map(|b| b.cmds.len()).collect();
        assert_eq!(sizes, [4, 4, 2]);
        assert_eq!(out.iter().map(|b| b.last).collect::<Vec<_>>(), [false, false, true]);
        assert_eq!(names(&out[0])[0], [b"SET".to_vec(), b"k".to_vec(), b"v".to_vec()]);
        let total: usize = out.iter().flat_map(|b| &b.cmds).map(Cmd::encoded_len).sum();
        assert_eq!(total, input.len(), "re-encoding gives the input back");
    }

    #[test]
    fn empty_input_gives_one_empty_last_batch() {
        let (out, result) = batches(b"", PIPE_BATCH_BYTES);
        assert!(result.is_ok());
        assert_eq!(out.len(), 1);
        assert!(out[0].last && out[0].cmds.is_empty());
    }

    #[test]
    fn a_command_split_across_reads_is_joined() {
        // A reader that returns one byte at a time.
        struct Trickle<'a>(&'a [u8]);
        impl Read for Trickle<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let Some((&b, rest)) = self.0.split_first() else {
                    return Ok(0);
                };
                buf[0] = b;
                self.0 = rest;
                Ok(1)
            }
        }
        let input = b"*2\r\n$3\r\nGET\r\n$5\r\nhello\r\n*0\r\n*1\r\n$4\r\nPING\r\n";
        let (tx, rx) = mpsc::sync_channel(16);
        read_commands(Trickle(input), PIPE_BATCH_BYTES, &tx).expect("valid input");
        drop(tx);
        let out: Vec<PipeBatch> = rx.into_iter().collect();
        assert_eq!(out.len(), 1);
        assert_eq!(
            names(&out[0]),
            [vec![b"GET".to_vec(), b"hello".to_vec()], vec![b"PING".to_vec()]]
        );
    }

    #[test]
    fn a_command_larger_than_the_read_chunk_is_assembled() {
        // Reads of at most 10,000 bytes, as from a slow pipe.
        struct Pieces<'a>(&'a [u8]);
        impl Read for Pieces<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = self.0.len().min(buf.len()).min(10_000);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let value: Vec<u8> = (0..3 * PIPE_READ_CHUNK + 17).map(|i| (i % 251) as u8).collect();
        let mut input = format!("*3\r\n$3\r\nSET\r\n$3\r\nbig\r\n${}\r\n", value.len()).into_bytes();
        input.extend_from_slice(&value);
        input.extend_from_slice(b"\r\n*1\r\n$4\r\nPING\r\n");
        let (tx, rx) = mpsc::sync_channel(16);
        read_commands(Pieces(&input), PIPE_BATCH_BYTES, &tx).expect("valid input");
        drop(tx);
        let out: Vec<PipeBatch> = rx.into_iter().collect();
        let cmds: Vec<&Cmd> = out.iter().flat_map(|b| &b.cmds).collect();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0].arg_bytes()[2], &value[..]);
        assert_eq!(cmds[1].arg_bytes(), vec![&b"PING"[..]]);
    }

    #[test]
    fn bad_input_is_reported_with_its_position() {
        let (sent, result) = batches(b"*1\r\n$4\r\nPING\r\n+OK\r\n", PIPE_BATCH_BYTES);
        assert!(matches!(
            result,
            Err(CliError::Pipe(PipeError::Input {
                index: 2,
                source: CommandDecodeError::NotAnArray { found: b'+' }
            }))
        ));
        // The complete command before the bad value still goes out, in a batch that is
        // not marked last.
        assert_eq!(sent.len(), 1);
        assert_eq!((sent[0].cmds.len(), sent[0].last), (1, false));
        let (_, result) = batches(b"*1\r\n:1\r\n", PIPE_BATCH_BYTES);
        assert!(matches!(
            result,
            Err(CliError::Pipe(PipeError::Input {
                index: 1,
                source: CommandDecodeError::NotABulkString { arg: 1, .. }
            }))
        ));
        let (_, result) = batches(b"*1\r\n$4\r\nPI", PIPE_BATCH_BYTES);
        assert!(matches!(result, Err(CliError::Pipe(PipeError::Truncated { index: 1 }))));
        let (_, result) = batches(b"*1\r\n$4\r\nPING\r\nSET k v\r\n", PIPE_BATCH_BYTES);
        assert!(matches!(
            result,
            Err(CliError::Pipe(PipeError::Input {
                index: 2,
                source: CommandDecodeError::NotAnArray { found: b'S' }
            }))
        ));
    }

    #[test]
    fn words_become_one_binary_safe_command() {
        let words: Vec<OsString> = ["SET", "k", "-1"].map(OsString::from).to_vec();
        let cmd = command_from_words(&words).expect("non-empty");
        assert_eq!(cmd.arg_bytes(), vec![&b"SET"[..], b"k", b"-1"]);
        assert!(command_from_words(&[]).is_none());
    }

    #[test]
    fn top_level_errors_end_with_an_empty_line_in_raw_mode() {
        let e = Value::SimpleError(Bytes::from_static(b"ERR nope"));
        assert_eq!(format_reply(&e, false), b"ERR nope\n\n");
        assert_eq!(format_reply(&e, true), b"(error) ERR nope\n");
        assert_eq!(format_reply(&Value::Integer(3), false), b"3\n");
        assert_eq!(format_reply(&Value::Integer(3), true), b"(integer) 3\n");
    }
}
