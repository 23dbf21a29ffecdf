//! NATS parsing: Monocoque's frame decoders and the NATS client's receive path on
//! buffers of 1,000 frames, the same buffers `scripts/bench-nats-parse` feeds
//! nats-server's parser (`PUB`, `HPUB`) and nats.go's (`MSG`, `HMSG`).
//!
//! ```sh
//! cargo bench --bench nats_parse              # frames/s of ours, every case
//! cargo bench --bench nats_parse -- --quick   # smoke run: fewer, shorter rounds
//! scripts/bench-nats-parse                    # ours vs the Go parsers, timings and callgrind
//! ```
//!
//! Cases (1,000 identical frames per buffer, one buffer per case):
//! - `pub`: `PUB foo.bar 16` + 16 bytes, decoded by [`ServerFrameDecoder`] (a broker's
//!   side);
//! - `pub-reply`: the same with a reply subject as nats.go makes them;
//! - `hpub`: `HPUB` with a 37-byte header block (`Nats-Msg-Id`) and 16 bytes;
//! - `msg`, `hmsg`: what a subscriber receives, decoded by [`ClientFrameDecoder`].
//!
//! Each case is decoded one way (two for `msg`, `hmsg`):
//! - `frames`: the frame decoder ([`ServerFrameDecoder`]/[`ClientFrameDecoder`]) on the
//!   buffer as one `&[u8]`: recognising the op, finding the line end, splitting and
//!   checking the fields and sizes (limits included), cutting out the payload (and
//!   header block), the [`ClientFrame`]/[`ServerFrame`] of slices built and handed on;
//! - `client` (`msg`, `hmsg` only): the client's receive path, a connected
//!   [`Connection`] subscribed to the subject (sid 1) handed the buffer as one received
//!   segment by `handle_input`, then every message taken with `next_message` (and the
//!   events polled), as an application behind a driver does;
//! - `view` (`msg`, `hmsg` only): the client's zero-queue receive path, the same
//!   connection with its input deferred (`defer_input`), every message handed to a
//!   closure by `visit_messages` as a `MessageRef` of slices of the segment (no view
//!   built, no reference count, no queue).
//!
//! Flags: `--quick`; `--tsv` prints `case<TAB>frames frames/s<TAB>client frames/s<TAB>view
//! frames/s` lines only (for the script, 0 where a case has no client row); `--write-inputs DIR` writes
//! each case's buffer to `DIR/<case>.bin` and lists the cases (`case<TAB>peer<TAB>first
//! frame`); `--callgrind-case CASE [--client | --view] --iterations N` only decodes that
//! buffer N times with the frame decoder (or the client, or its visitor), so `valgrind --tool=callgrind` measures
//! it (the script subtracts a 1-iteration run). Other arguments select cases by name.

use std::hint::black_box;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use monocoque_proto::nats::client::{ClientConfig, Connection, Event, SubscriptionPolicy};
use monocoque_proto::nats::{
    ClientFrameDecoder, ClientOp, DecodeError, FrameDecoder, FrameRole, Headers, Message, Publish, ServerFrameDecoder,
    ServerOp, Sid,
};

/// Frames per buffer.
const FRAMES: usize = 1_000;
const SUBJECT: &str = "foo.bar";
/// A reply subject shaped like nats.go's request inboxes (`_INBOX.` + a 22-character
/// NUID + `.` + a token).
const REPLY: &str = "_INBOX.Nq5vCmJXP9oT3zGEaLbWxR.1";
const PAYLOAD: &[u8; 16] = b"0123456789abcdef";
const HEADERS: &[u8] = b"NATS/1.0\r\nNats-Msg-Id: 0123456789\r\n\r\n";

/// Which side decodes a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A broker decoding what clients send ([`ServerFrameDecoder`]); peer: nats-server.
    Server,
    /// A client decoding what the server delivers ([`ClientFrameDecoder`]); peer: nats.go.
    Client,
}

impl Role {
    fn peer(self) -> &'static str {
        match self {
            Role::Server => "nats-server",
            Role::Client => "nats.go",
        }
    }
}

/// What one frame must decode to.
#[derive(Debug)]
enum Expected {
    Client(ClientOp),
    Server(ServerOp),
}

struct Case {
    name: &'static str,
    role: Role,
    frame: Vec<u8>,
    expected: Expected,
    /// The buffer of [`FRAMES`] frames: one segment, shared (as drivers' pooled buffers
    /// are), so the client's views of it never allocate.
    input: Bytes,
}

impl Case {
    fn new(name: &'static str, role: Role, frame: Vec<u8>, expected: Expected) -> Self {
        let mut all = BytesMut::with_capacity(frame.len() * FRAMES);
        for _ in 0..FRAMES {
            all.extend_from_slice(&frame);
        }
        Self {
            name,
            role,
            frame,
            expected,
            input: all.freeze(),
        }
    }
}

fn frame(line: String, body: &[&[u8]]) -> Vec<u8> {
    let mut out = line.into_bytes();
    out.extend_from_slice(b"\r\n");
    for part in body {
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"\r\n");
    out
}

fn cases() -> Vec<Case> {
    let (h, t) = (HEADERS.len(), HEADERS.len() + PAYLOAD.len());
    let n = PAYLOAD.len();
    let publish = |reply: Option<&'static str>, headers: bool| {
        Expected::Client(ClientOp::Publish(Publish {
            subject: Bytes::from_static(SUBJECT.as_bytes()),
            reply: reply.map(|r| Bytes::from_static(r.as_bytes())),
            headers: headers.then(|| Headers::from_raw(Bytes::from_static(HEADERS))),
            payload: Bytes::from_static(PAYLOAD),
        }))
    };
    let message = |headers: bool| {
        Expected::Server(ServerOp::Message(Message {
            subject: Bytes::from_static(SUBJECT.as_bytes()),
            sid: Sid::from_u64(1),
            reply: None,
            headers: headers.then(|| Headers::from_raw(Bytes::from_static(HEADERS))),
            payload: Bytes::from_static(PAYLOAD),
        }))
    };
    vec![
        Case::new(
            "pub",
            Role::Server,
            frame(format!("PUB {SUBJECT} {n}"), &[PAYLOAD]),
            publish(None, false),
        ),
        Case::new(
            "pub-reply",
            Role::Server,
            frame(format!("PUB {SUBJECT} {REPLY} {n}"), &[PAYLOAD]),
            publish(Some(REPLY), false),
        ),
        Case::new(
            "hpub",
            Role::Server,
            frame(format!("HPUB {SUBJECT} {h} {t}"), &[HEADERS, PAYLOAD]),
            publish(None, true),
        ),
        Case::new(
            "msg",
            Role::Client,
            frame(format!("MSG {SUBJECT} 1 {n}"), &[PAYLOAD]),
            message(false),
        ),
        Case::new(
            "hmsg",
            Role::Client,
            frame(format!("HMSG {SUBJECT} 1 {h} {t}"), &[HEADERS, PAYLOAD]),
            message(true),
        ),
    ]
}

// ---------------------------------------------------------------------------------------
// The measured work: each runner decodes one buffer and hands every frame on. Out of
// line, so a profile attributes the cost by name.

/// Decodes every frame in `input` with `decoder` (either side's), handing each on;
/// returns how many there were and the bytes they took.
#[inline(never)]
fn frames<R: FrameRole>(decoder: &mut FrameDecoder<R>, input: &[u8]) -> Result<(usize, usize), DecodeError> {
    let (mut n, mut at) = (0, 0);
    loop {
        // Borrowed where it was returned: the frame is not moved before it is handed on.
        let decoded = decoder.decode(&input[at..]);
        match &decoded {
            Ok(Some((frame, len))) => {
                black_box(frame);
                at += len;
                n += 1;
            }
            Ok(None) => return Ok((n, at)),
            Err(e) => return Err(e.clone()),
        }
    }
}

/// Which of our decoders a run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The frame decoder: frames of slices.
    Frames,
    /// The client's whole receive path (`MSG`/`HMSG` cases only): a connected
    /// [`Connection`] subscribed to the subject given the buffer as one received
    /// segment, then every message taken by the application.
    Client,
    /// The client's visitor (`MSG`/`HMSG` cases only): the same connection with its
    /// input deferred, every message visited as a `MessageRef` of the segment.
    View,
}

/// A connected client subscribed to [`SUBJECT`] (sid 1), as the application sees it
/// after the handshake.
struct Subscriber {
    conn: Connection,
    sid: Sid,
}

impl Subscriber {
    fn new() -> Result<Self, String> {
        let now = Instant::now();
        let mut conn = Connection::new(ClientConfig::default(), now);
        let sid = conn
            .subscribe(SUBJECT.as_bytes(), None, SubscriptionPolicy::default())
            .map_err(|e| format!("subscribe: {e}"))?;
        let info = Bytes::from_static(b"INFO {\"max_payload\":1048576,\"headers\":true}\r\n");
        conn.handle_input(info, now).map_err(|e| format!("INFO: {e}"))?;
        conn.handle_input(Bytes::from_static(b"PONG\r\n"), now)
            .map_err(|e| format!("PONG: {e}"))?;
        if !conn.is_connected() {
            return Err("the handshake did not complete".into());
        }
        let mut sub = Self { conn, sid };
        sub.drain_output();
        Ok(sub)
    }

    /// What a driver does between reads: the arena written, the events taken.
    fn drain_output(&mut self) {
        if let Some(arena) = self.conn.poll_transmit() {
            let n = arena.len();
            arena.advance(n);
        }
        while let Some(event) = self.conn.poll_event() {
            black_box(&event);
        }
    }

    /// Hands `input` to the connection as one received segment, then takes every
    /// message it queued; returns how many.
    #[inline(never)]
    fn receive(&mut self, input: &Bytes) -> Result<usize, String> {
        self.conn
            .handle_input(input.clone(), Instant::now())
            .map_err(|e| format!("handle_input: {e}"))?;
        let mut n = 0;
        while let Some(event) = self.conn.poll_event() {
            if !matches!(event, Event::Messages { .. }) {
                return Err(format!("unexpected event {event:?}"));
            }
        }
        while let Some(message) = self.conn.next_message(&self.sid) {
            black_box(&message);
            n += 1;
        }
        Ok(n)
    }

    /// Hands `input` to the connection, its input deferred, as one received segment,
    /// then visits every message of the subscription; returns how many.
    #[inline(never)]
    fn visit(&mut self, input: &Bytes) -> Result<usize, String> {
        self.conn.defer_input(true);
        self.conn
            .handle_input(input.clone(), Instant::now())
            .map_err(|e| format!("handle_input: {e}"))?;
        let mut n = 0;
        self.conn.visit_messages(&self.sid, usize::MAX, |m| {
            black_box(&m);
            n += 1;
        });
        if let Some(event) = self.conn.poll_event() {
            return Err(format!("unexpected event {event:?}"));
        }
        Ok(n)
    }
}

/// A decoder for one case, its state kept across buffers as a connection keeps it.
struct Runner<'a> {
    case: &'a Case,
    kind: Kind,
    server_frames: ServerFrameDecoder,
    client_frames: ClientFrameDecoder,
    subscriber: Option<Subscriber>,
}

impl<'a> Runner<'a> {
    fn new(case: &'a Case, kind: Kind) -> Result<Self, String> {
        let subscriber = match kind {
            Kind::Client | Kind::View => Some(Subscriber::new()?),
            Kind::Frames => None,
        };
        Ok(Self {
            case,
            kind,
            server_frames: ServerFrameDecoder::default(),
            client_frames: ClientFrameDecoder::default(),
            subscriber,
        })
    }

    /// Decodes the case's buffer once; returns the number of frames.
    #[inline]
    fn run(&mut self) -> Result<usize, String> {
        let input = &self.case.input;
        let decoded = match (self.kind, self.case.role) {
            (Kind::Frames, Role::Server) => frames(&mut self.server_frames, input).map(|(n, at)| (n, input.len() - at)),
            (Kind::Frames, Role::Client) => frames(&mut self.client_frames, input).map(|(n, at)| (n, input.len() - at)),
            (Kind::Client | Kind::View, Role::Client) => {
                let subscriber = self.subscriber.as_mut().ok_or("no subscriber")?;
                let n = match self.kind {
                    Kind::View => subscriber.visit(input)?,
                    _ => subscriber.receive(input)?,
                };
                return match n {
                    FRAMES => Ok(n),
                    _ => Err(format!("{}: {n} messages received, expected {FRAMES}", self.case.name)),
                };
            }
            (Kind::Client | Kind::View, Role::Server) => return Err(format!("{}: not a client case", self.case.name)),
        };
        let (n, left) = decoded.map_err(|e| format!("{}: decode error {e}", self.case.name))?;
        if n != FRAMES || left != 0 {
            return Err(format!(
                "{}: {n} frames decoded, {left} bytes left (expected {FRAMES}, 0)",
                self.case.name,
            ));
        }
        Ok(n)
    }

    /// Decodes the buffer once more with the frame decoder and compares every frame
    /// with the expected op.
    fn check_frames(&mut self) -> Result<(), String> {
        let input = &self.case.input[..];
        let (mut n, mut at) = (0, 0);
        loop {
            let same = match (&self.case.expected, self.case.role) {
                (Expected::Client(want), Role::Server) => match self.server_frames.decode(&input[at..]) {
                    Ok(Some((frame, len))) => {
                        at += len;
                        frame.to_op() == *want
                    }
                    Ok(None) => break,
                    Err(e) => return Err(format!("{}: decode error {e}", self.case.name)),
                },
                (Expected::Server(want), Role::Client) => match self.client_frames.decode(&input[at..]) {
                    Ok(Some((frame, len))) => {
                        at += len;
                        frame.to_op() == *want
                    }
                    Ok(None) => break,
                    Err(e) => return Err(format!("{}: decode error {e}", self.case.name)),
                },
                _ => return Err(format!("{}: expected op of the wrong role", self.case.name)),
            };
            if !same {
                return Err(format!("{}: frame {n} decoded to something else", self.case.name));
            }
            n += 1;
        }
        if n != FRAMES || at != input.len() {
            return Err(format!("{}: {n} frames checked, expected {FRAMES}", self.case.name));
        }
        Ok(())
    }

    /// Hands the buffer to the deferring connection once more and compares every
    /// message visited with the expected one.
    fn check_view(&mut self) -> Result<(), String> {
        let Expected::Server(ServerOp::Message(want)) = &self.case.expected else {
            return Err(format!("{}: not a client case", self.case.name));
        };
        let want = want.as_message_ref();
        let subscriber = self.subscriber.as_mut().ok_or("no subscriber")?;
        subscriber.conn.defer_input(true);
        subscriber
            .conn
            .handle_input(self.case.input.clone(), Instant::now())
            .map_err(|e| format!("handle_input: {e}"))?;
        let (mut n, mut wrong) = (0, None);
        subscriber.conn.visit_messages(&subscriber.sid, usize::MAX, |m| {
            if m != want && wrong.is_none() {
                wrong = Some(format!("message {n} is {m:?}"));
            }
            n += 1;
        });
        if let Some(wrong) = wrong {
            return Err(format!("{}: {wrong}", self.case.name));
        }
        if n != FRAMES {
            return Err(format!("{}: {n} messages visited, expected {FRAMES}", self.case.name));
        }
        Ok(())
    }

    /// Hands the buffer to the connection once more and compares every message the
    /// application takes with the expected one.
    fn check_client(&mut self) -> Result<(), String> {
        let Expected::Server(ServerOp::Message(want)) = &self.case.expected else {
            return Err(format!("{}: not a client case", self.case.name));
        };
        let subscriber = self.subscriber.as_mut().ok_or("no subscriber")?;
        subscriber
            .conn
            .handle_input(self.case.input.clone(), Instant::now())
            .map_err(|e| format!("handle_input: {e}"))?;
        subscriber.drain_output();
        let mut n = 0;
        while let Some(message) = subscriber.conn.next_message(&subscriber.sid) {
            if message != *want {
                return Err(format!("{}: message {n} is {message:?}", self.case.name));
            }
            n += 1;
        }
        if n != FRAMES {
            return Err(format!("{}: {n} messages checked, expected {FRAMES}", self.case.name));
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Timing.

struct Opts {
    quick: bool,
    tsv: bool,
    filters: Vec<String>,
    write_inputs: Option<PathBuf>,
    callgrind_case: Option<String>,
    client: bool,
    view: bool,
    iterations: usize,
}

impl Opts {
    fn from_args() -> Result<Self, String> {
        let mut opts = Opts {
            quick: false,
            tsv: false,
            filters: Vec::new(),
            write_inputs: None,
            callgrind_case: None,
            client: false,
            view: false,
            iterations: 1,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |flag: &str| args.next().ok_or_else(|| format!("{flag} needs a value"));
            match arg.as_str() {
                "--quick" => opts.quick = true,
                "--tsv" => opts.tsv = true,
                "--client" => opts.client = true,
                "--view" => opts.view = true,
                // Passed by `cargo bench`.
                "--bench" => {}
                "--write-inputs" => opts.write_inputs = Some(PathBuf::from(value("--write-inputs")?)),
                "--callgrind-case" => opts.callgrind_case = Some(value("--callgrind-case")?),
                "--iterations" => {
                    let v = value("--iterations")?;
                    opts.iterations = v.parse().map_err(|_| format!("--iterations {v}: not a count"))?;
                }
                flag if flag.starts_with("--") => return Err(format!("unknown flag {flag}")),
                _ => opts.filters.push(arg),
            }
        }
        Ok(opts)
    }

    fn selects(&self, case: &Case) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| case.name.contains(f.as_str()))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Frames per second for one case: a warm-up, buffers per sample calibrated to last a
/// few milliseconds, then the median of the samples.
fn frames_per_sec(runner: &mut Runner<'_>, quick: bool) -> Result<f64, String> {
    let (warm, sample, rounds) = if quick {
        (Duration::from_millis(20), Duration::from_millis(2), 5)
    } else {
        (Duration::from_millis(200), Duration::from_millis(10), 21)
    };
    let started = Instant::now();
    let mut reps = 0usize;
    while started.elapsed() < warm {
        runner.run()?;
        reps += 1;
    }
    let per_buffer = started.elapsed().as_secs_f64() / reps as f64;
    let reps = ((sample.as_secs_f64() / per_buffer).ceil() as usize).max(1);
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let t = Instant::now();
        let mut frames = 0;
        for _ in 0..reps {
            frames += runner.run()?;
        }
        samples.push(frames as f64 / t.elapsed().as_secs_f64());
    }
    Ok(median(samples))
}

/// A frame's control line, for display.
fn first_line(frame: &[u8]) -> String {
    let end = frame.iter().position(|&b| b == b'\r').unwrap_or(frame.len());
    String::from_utf8_lossy(&frame[..end]).into_owned()
}

fn real_main() -> Result<(), String> {
    let opts = Opts::from_args()?;
    let cases = cases();

    if let Some(dir) = &opts.write_inputs {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for case in cases.iter().filter(|c| opts.selects(c)) {
            let path = dir.join(format!("{}.bin", case.name));
            std::fs::write(&path, &case.input).map_err(|e| format!("{}: {e}", path.display()))?;
            println!("{}\t{}\t{}", case.name, case.role.peer(), first_line(&case.frame));
        }
        return Ok(());
    }

    if let Some(name) = &opts.callgrind_case {
        let case = cases
            .iter()
            .find(|c| c.name == name.as_str())
            .ok_or_else(|| format!("no case {name}"))?;
        let kind = match (opts.client, opts.view) {
            (_, true) => Kind::View,
            (true, false) => Kind::Client,
            (false, false) => Kind::Frames,
        };
        let mut runner = Runner::new(case, kind)?;
        let mut frames = 0;
        for _ in 0..opts.iterations {
            frames += runner.run()?;
        }
        black_box(frames);
        return Ok(());
    }

    if !opts.tsv {
        println!(
            "NATS parsing, ours: {FRAMES} frames per buffer, {} (median of samples)",
            if opts.quick { "quick run" } else { "full run" }
        );
        println!(
            "| case | first line | bytes/frame | frames ns/frame | frames frames/s | client ns/frame | client frames/s | view ns/frame | view frames/s |"
        );
        println!("|---|---|---:|---:|---:|---:|---:|---:|---:|");
    }
    for case in cases.iter().filter(|c| opts.selects(c)) {
        let mut frames = Runner::new(case, Kind::Frames)?;
        frames.check_frames()?;
        let frames_fps = frames_per_sec(&mut frames, opts.quick)?;
        let (client_fps, view_fps) = match case.role {
            Role::Client => {
                let mut client = Runner::new(case, Kind::Client)?;
                client.check_client()?;
                let mut view = Runner::new(case, Kind::View)?;
                view.check_view()?;
                (
                    frames_per_sec(&mut client, opts.quick)?,
                    frames_per_sec(&mut view, opts.quick)?,
                )
            }
            Role::Server => (0.0, 0.0),
        };
        if opts.tsv {
            println!("{}\t{frames_fps:.0}\t{client_fps:.0}\t{view_fps:.0}", case.name);
        } else {
            let rate = |fps: f64| match case.role {
                Role::Client => format!("{:.1} | {:.2}M", 1e9 / fps, fps / 1e6),
                Role::Server => "- | -".to_string(),
            };
            let (client, view) = (rate(client_fps), rate(view_fps));
            println!(
                "| {} | `{}` | {} | {:.1} | {:.2}M | {client} | {view} |",
                case.name,
                first_line(&case.frame),
                case.frame.len(),
                1e9 / frames_fps,
                frames_fps / 1e6
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("nats_parse: {e}");
            ExitCode::FAILURE
        }
    }
}
