//! The NATS body under the fuzzer: [`nats::Client`](crate::nats::Client) over the
//! in-memory driver, against a fake server that routes every message to the
//! subscriptions of its subject and answers every request with its own payload.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use monocoque_proto::nats::client::Connection;
use monocoque_proto::nats::{ClientOp, ServerFrameDecoder};

use super::driver::{FakeServer, Frame, MemDriver};
use super::script::Script;
use super::{calls, loopback, Checks, Clock};
use crate::nats::{Client, ClientOptions, Error, LinkError, ServerAddr, Subscription};

/// A fake nats-server: sends `INFO` first, answers `PING` with `PONG` (and ops with
/// `+OK` when verbose), keeps the client's subscriptions, delivers each `PUB` to the
/// matching ones, and answers a `PUB` with a reply subject (a request) by sending its
/// payload back to the reply subject. A delivered message may be replaced by a
/// permissions `-ERR` naming its subject, a request's answer by the 503 "no responders"
/// status, a `PONG` by the fatal `-ERR 'Stale Connection'`.
pub struct NatsServer {
    decoder: ServerFrameDecoder,
    /// What the client sent that is not decoded yet.
    input: Vec<u8>,
    verbose: bool,
    /// Subscriptions by sid: the subject (pattern) each listens on.
    subs: BTreeMap<Bytes, Bytes>,
}

impl NatsServer {
    /// A server with no subscriptions.
    pub fn new() -> Self {
        Self {
            decoder: ServerFrameDecoder::default(),
            input: Vec::new(),
            verbose: false,
            subs: BTreeMap::new(),
        }
    }

    fn ok(&self, frames: &mut Vec<Frame>) {
        if self.verbose {
            frames.push(Frame::fixed(b"+OK\r\n".to_vec()));
        }
    }

    /// `MSG`s of `payload` on `subject` to every subscription matching `pattern_of`.
    fn deliver(&self, subject: &[u8], payload: &[u8], request: bool, frames: &mut Vec<Frame>) {
        for (sid, pattern) in &self.subs {
            if !matches(pattern, subject) {
                continue;
            }
            let mut msg = b"MSG ".to_vec();
            msg.extend_from_slice(subject);
            msg.push(b' ');
            msg.extend_from_slice(sid);
            msg.extend_from_slice(format!(" {}\r\n", payload.len()).as_bytes());
            msg.extend_from_slice(payload);
            msg.extend_from_slice(b"\r\n");
            let instead = if request {
                let mut status = b"HMSG ".to_vec();
                status.extend_from_slice(subject);
                status.push(b' ');
                status.extend_from_slice(sid);
                let block = b"NATS/1.0 503\r\n\r\n";
                status.extend_from_slice(format!(" {} {}\r\n", block.len(), block.len()).as_bytes());
                status.extend_from_slice(block);
                status.extend_from_slice(b"\r\n");
                status
            } else {
                let mut e = b"-ERR 'Permissions Violation for Subscription to \"".to_vec();
                e.extend_from_slice(pattern);
                e.extend_from_slice(b"\"'\r\n");
                e
            };
            frames.push(Frame::or(msg, instead));
        }
    }
}

impl Default for NatsServer {
    fn default() -> Self {
        Self::new()
    }
}

/// NATS subject matching: `*` one token, `>` the rest.
fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let mut p = pattern.split(|&b| b == b'.');
    let mut s = subject.split(|&b| b == b'.');
    loop {
        match (p.next(), s.next()) {
            (Some(b">"), Some(_)) => return true,
            (Some(b"*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

impl FakeServer for NatsServer {
    fn greeting(&mut self) -> Vec<Frame> {
        vec![Frame::fixed(
            b"INFO {\"server_id\":\"FUZZ\",\"server_name\":\"fuzz\",\"version\":\"2.10.0\",\"proto\":1,\
              \"headers\":true,\"max_payload\":1048576}\r\n"
                .to_vec(),
        )]
    }

    fn receive(&mut self, bytes: &[u8]) -> Vec<Frame> {
        self.input.extend_from_slice(bytes);
        let mut frames = Vec::new();
        loop {
            let op = match self.decoder.decode(&self.input) {
                Ok(Some((frame, len))) => {
                    let op = frame.to_op();
                    self.input.drain(..len);
                    op
                }
                Ok(None) => return frames,
                Err(e) => panic!("the client sent bytes that are not NATS: {e}"),
            };
            match op {
                ClientOp::Connect(options) => {
                    self.verbose = options.verbose;
                    self.ok(&mut frames);
                }
                // A PONG may give way to a fatal error (the server then drops the
                // client): its ping is never answered, and nothing shifts.
                ClientOp::Ping => frames.push(Frame::or(b"PONG\r\n".to_vec(), b"-ERR 'Stale Connection'\r\n".to_vec())),
                ClientOp::Pong => {}
                ClientOp::Subscribe(sub) => {
                    self.subs.insert(sub.sid.as_bytes().clone(), sub.subject);
                    self.ok(&mut frames);
                }
                ClientOp::Unsubscribe(unsub) => {
                    if unsub.max_msgs.is_none() {
                        self.subs.remove(unsub.sid.as_bytes());
                    }
                    self.ok(&mut frames);
                }
                ClientOp::Publish(publish) => {
                    self.ok(&mut frames);
                    self.deliver(&publish.subject, &publish.payload, false, &mut frames);
                    if let Some(reply) = &publish.reply {
                        self.deliver(reply, &publish.payload, true, &mut frames);
                    }
                }
            }
        }
    }

    fn garbage(&self) -> &'static [u8] {
        b"@fuzz\r\n"
    }
}

/// The errors a call may end with when the server misbehaves.
fn check_error(e: &Error, what: &str) {
    assert!(
        matches!(
            e,
            Error::Timeout
                | Error::Connection(_)
                | Error::Disconnected(_)
                | Error::Link(
                    LinkError::Connect { .. } | LinkError::ConnectTimeout { .. } | LinkError::Reconnect { .. }
                )
                | Error::Rejected(_)
        ),
        "{what}: unexpected error {e:?}"
    );
}

/// What a call may take past its own deadline: a timer tick.
const TICK: Duration = Duration::from_millis(2);

/// The subjects subscriptions listen on and messages are published to.
const SUBJECTS: [&str; 3] = ["s0", "s1", "s.*"];
/// The subjects messages go to (`s.x` reaches `s.*`).
const TARGETS: [&str; 3] = ["s0", "s1", "s.x"];

/// Fuzzes the NATS body. See [`super`] for the checks.
///
/// Input: byte 0 sets the request timeout (`2 + bits 0-2` ms), the connect timeout
/// (`4 + bits 4-6` ms) and the operation timeout (4, 8, 12 or 16 ms by bits 3 and 7);
/// byte 1 a 5 ms ping interval (bit 0), one ping out at most (bit
/// 1), verbose (bit 2), no reconnecting (bit 3), a 64-byte reconnect buffer (bit 4),
/// reconnect attempts per call (`1 + bits 6-7`). Then calls, one byte each (modulo 8)
/// and their operands, interleaved with the driver's reads (a byte per connection
/// attempt, two per server frame, see [`MemDriver`]):
///
/// | op | operands | call |
/// |---|---|---|
/// | 0 | — | `request` to `q<n>` with payload `r<n>` |
/// | 1 | subject | `subscribe` to `s0`, `s1` or `s.*` (at most 4 held; the oldest dropped) |
/// | 2 | subject | `publish` `m<n>` to `s0`, `s1` or `s.x` |
/// | 3 | subscription, ms | `next_message` |
/// | 4 | — | `round_trip` |
/// | 5 | — | `flush` |
/// | 6 | ms | `next_event` |
/// | 7 | subscription | `Subscription::unsubscribe` |
pub fn run(data: &[u8], checks: Checks) -> Result<(), String> {
    let script = Script::new(data);
    let h0 = script.byte();
    let h1 = script.byte();
    let timeout = Duration::from_millis(2 + u64::from(h0 & 7));
    let operation = Duration::from_millis(4 + 4 * u64::from((h0 >> 3) & 1) + 8 * u64::from(h0 >> 7));
    let (listener, port) = loopback();
    let link = calls::link_options(h0, h1, 0.5);
    let connect = link.connect_timeout;
    let mut options = ClientOptions::new(vec![ServerAddr::new("127.0.0.1", port)])
        .link(link)
        .request_timeout(timeout)
        .operation_timeout(operation)
        .ping_interval(if h1 & 1 != 0 {
            Duration::from_millis(5)
        } else {
            Duration::from_secs(60)
        })
        .max_pings_out(if h1 & 2 != 0 { 1 } else { 2 })
        .verbose(h1 & 4 != 0)
        .allow_reconnect(h1 & 8 == 0)
        .seed(1);
    if h1 & 16 != 0 {
        options = options.reconnect_buffer_size(64);
    }
    let driver: MemDriver<Connection, NatsServer> = MemDriver::new(
        script.clone(),
        Box::new(NatsServer::new),
        timeout * 2 + Duration::from_millis(1),
        Some(listener),
    );
    // Every call returns by its own deadline plus a timer tick, a reconnect included
    // (the client's contract); connecting tries the one server once.
    let clock = Clock::new(TICK, checks.slack);
    let connected = calls::connect(
        &clock,
        connect + calls::DELAY_CAP,
        || Client::connect_with_driver(driver, options),
        |e| check_error(e, "connect"),
    );
    let Some(mut client) = connected else {
        return clock.verdict();
    };
    let mut subs: Vec<Subscription<MemDriver<Connection, NatsServer>>> = Vec::new();
    // Payloads published to each target subject, to check what a subscription receives.
    let mut published: Vec<HashSet<Bytes>> = vec![HashSet::new(); TARGETS.len()];
    let mut n = 0u64;
    let names = [
        "request",
        "subscribe",
        "publish",
        "next_message",
        "round_trip",
        "flush",
        "next_event",
        "unsubscribe",
    ];
    calls::run_calls(&script, &names, |kind, _| {
        n += 1;
        match kind {
            0 => {
                let payload = format!("r{n}");
                let outcome = clock.time_with("request", timeout, || {
                    client.request(&format!("q{n}"), payload.clone(), timeout)
                });
                if super::tracing() {
                    eprintln!("[fuzz] request r{n}: {outcome:?}");
                }
                match outcome {
                    Ok(message) => assert_eq!(
                        message.payload,
                        payload.as_bytes(),
                        "a request got the answer of another: {message:?}"
                    ),
                    Err(Error::NoResponders) => {}
                    Err(e) => check_error(&e, "request"),
                }
            }
            1 => {
                let subject = SUBJECTS[usize::from(script.byte()) % SUBJECTS.len()];
                let outcome = clock.time_with("subscribe", operation, || client.subscribe(subject));
                match outcome {
                    Ok(sub) => {
                        if subs.len() >= 4 {
                            // Dropping a handle unsubscribes.
                            subs.remove(0);
                        }
                        subs.push(sub);
                    }
                    Err(e) => check_error(&e, "subscribe"),
                }
            }
            2 => {
                let index = usize::from(script.byte()) % TARGETS.len();
                let payload = Bytes::from(format!("m{n}"));
                published[index].insert(payload.clone());
                let outcome = clock.time_with("publish", operation, || client.publish(TARGETS[index], payload));
                match outcome {
                    Ok(()) | Err(Error::ReconnectBufferFull { .. }) => {}
                    Err(e) => check_error(&e, "publish"),
                }
            }
            3 => {
                let pick = usize::from(script.byte());
                let wait = script.millis(4);
                let Some(sub) = (!subs.is_empty())
                    .then(|| pick % subs.len())
                    .and_then(|i| subs.get_mut(i))
                else {
                    return;
                };
                let outcome = clock.time_with("next_message", wait, || sub.next_message(wait));
                match outcome {
                    Ok(Some(message)) => {
                        let subject = std::str::from_utf8(&message.subject).unwrap_or("");
                        assert!(
                            matches(sub.subject().as_bytes(), subject.as_bytes()),
                            "a subscription to {} received a message to {subject:?}",
                            sub.subject()
                        );
                        let sent = TARGETS
                            .iter()
                            .position(|t| *t == subject)
                            .is_some_and(|i| published[i].contains(&message.payload));
                        assert!(sent, "a message never published to {subject}: {message:?}");
                    }
                    Ok(None) | Err(Error::SubscriptionClosed) => {}
                    Err(e) => check_error(&e, "next_message"),
                }
            }
            4 => {
                let outcome = clock.time_with("round_trip", operation, || client.round_trip());
                if let Err(e) = outcome {
                    check_error(&e, "round_trip");
                }
            }
            5 => {
                let outcome = clock.time_with("flush", operation, || client.flush());
                if let Err(e) = outcome {
                    check_error(&e, "flush");
                }
            }
            6 => {
                let wait = script.millis(8);
                let outcome = clock.time_with("next_event", wait, || client.next_event(wait));
                if let Err(e) = outcome {
                    check_error(&e, "next_event");
                }
            }
            _ => {
                let pick = usize::from(script.byte());
                if subs.is_empty() {
                    return;
                }
                let sub = subs.remove(pick % subs.len());
                let outcome = clock.time_with("unsubscribe", operation, || sub.unsubscribe());
                if let Err(e) = outcome {
                    check_error(&e, "unsubscribe");
                }
            }
        }
    });
    clock.verdict()
}
