//! The Redis body under the fuzzer: [`redis::Client`](crate::redis::Client) over the
//! in-memory driver, against a fake server whose every reply names its request.

use std::collections::BTreeSet;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::resp::{Cmd, Connection, Decoder, DecoderConfig, Protocol, Value};
use monocoque_proto::Driver;
use monocoque_proto::SegmentedBuffer;

use super::driver::{FakeServer, Frame, MemDriver};
use super::script::Script;
use super::{calls, loopback, Checks, Clock};
use crate::redis::{cmd, Client, ClientOptions, Error, LinkError};

/// A fake Redis server: `GET k` answers the bulk string `k`, `PING m` the bulk `m`,
/// `SET` `+OK`; the handshake (`HELLO 3` or RESP2's, `CLIENT SETNAME`, `SELECT`),
/// transactions (`MULTI`, `+QUEUED`, `EXEC` with the queued replies) and pub/sub
/// (`SUBSCRIBE`, `UNSUBSCRIBE`, `PUBLISH` to this connection's own subscriptions, RESP2
/// subscribed mode with its `PING` reply) as Redis does. A subscribed connection also
/// gets a message on its first channel with every `PING`. The error a reply may be
/// replaced by is `-ERR fuzz <key or message>`, so an error reply names its request too;
/// a message may be dropped (it shifts no reply).
pub struct RedisServer {
    /// `HELLO 3` is refused with `-NOPROTO` (a server that speaks RESP2 only).
    noproto: bool,
    /// `HELLO 3` succeeded: replies and pushes are RESP3.
    resp3: bool,
    /// The channels this connection subscribes to.
    channels: BTreeSet<Bytes>,
    decoder: Decoder,
    input: SegmentedBuffer,
    /// Replies of the commands queued since `MULTI`.
    multi: Option<Vec<Vec<u8>>>,
}

impl RedisServer {
    /// A server; `noproto` makes it refuse RESP3.
    pub fn new(noproto: bool) -> Self {
        Self {
            noproto,
            resp3: false,
            channels: BTreeSet::new(),
            decoder: Decoder::new(DecoderConfig::new(Protocol::Resp2)),
            input: SegmentedBuffer::new(),
            multi: None,
        }
    }

    /// The frames of one command: its reply, with pub/sub's pushes around it.
    fn answer_all(&mut self, args: &[Bytes], frames: &mut Vec<Frame>) {
        let name = args.first().map(|a| a.to_ascii_uppercase()).unwrap_or_default();
        if self.multi.is_none() {
            match name.as_slice() {
                b"SUBSCRIBE" | b"UNSUBSCRIBE" => {
                    // One confirmation per channel, the count after it.
                    let subscribe = name.as_slice() == b"SUBSCRIBE";
                    for channel in &args[1..] {
                        if subscribe {
                            self.channels.insert(channel.clone());
                        } else {
                            self.channels.remove(channel);
                        }
                        let kind: &[u8] = if subscribe { b"subscribe" } else { b"unsubscribe" };
                        let mut frame = if self.resp3 {
                            b">3\r\n".to_vec()
                        } else {
                            b"*3\r\n".to_vec()
                        };
                        frame.extend_from_slice(&bulk(kind));
                        frame.extend_from_slice(&bulk(channel));
                        frame.extend_from_slice(format!(":{}\r\n", self.channels.len()).as_bytes());
                        frames.push(Frame::fixed(frame));
                    }
                    return;
                }
                b"PUBLISH" if self.channels.contains(&args.get(1).cloned().unwrap_or_default()) => {
                    let reply = self.answer(args);
                    frames.push(reply);
                    let (channel, payload) = (args[1].clone(), args.get(2).cloned().unwrap_or_default());
                    frames.push(self.message(&channel, &payload));
                    return;
                }
                b"PING" if !self.channels.is_empty() => {
                    let reply = self.answer(args);
                    frames.push(reply);
                    if let Some(channel) = self.channels.first().cloned() {
                        let mut payload = channel.to_vec();
                        payload.extend_from_slice(b":ping");
                        frames.push(self.message(&channel, &payload));
                    }
                    return;
                }
                _ => {}
            }
        }
        let reply = self.answer(args);
        frames.push(reply);
    }

    /// A message on `channel`, as a push (RESP3) or an array (RESP2); it may be dropped.
    fn message(&self, channel: &[u8], payload: &[u8]) -> Frame {
        let mut frame = if self.resp3 {
            b">3\r\n".to_vec()
        } else {
            b"*3\r\n".to_vec()
        };
        frame.extend_from_slice(&bulk(b"message"));
        frame.extend_from_slice(&bulk(channel));
        frame.extend_from_slice(&bulk(payload));
        Frame::or(frame, Vec::new())
    }

    fn answer(&mut self, args: &[Bytes]) -> Frame {
        let name = args.first().map(|a| a.to_ascii_uppercase()).unwrap_or_default();
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        let fuzz_error = |tag: &[u8]| {
            let mut e = b"-ERR fuzz ".to_vec();
            e.extend_from_slice(tag);
            e.extend_from_slice(b"\r\n");
            e
        };
        if let Some(queued) = &mut self.multi {
            match name.as_slice() {
                b"EXEC" => {
                    let mut reply = format!("*{}\r\n", queued.len()).into_bytes();
                    for r in queued.drain(..) {
                        reply.extend_from_slice(&r);
                    }
                    self.multi = None;
                    return Frame::or(
                        reply,
                        b"-EXECABORT Transaction discarded because of previous errors.\r\n".to_vec(),
                    );
                }
                b"DISCARD" => {
                    self.multi = None;
                    return Frame::fixed(b"+OK\r\n".to_vec());
                }
                b"MULTI" => return Frame::fixed(b"-ERR MULTI calls can not be nested\r\n".to_vec()),
                _ => {
                    let frame = self.answer_plain(&name, args, &arg, &fuzz_error);
                    if let Some(queued) = &mut self.multi {
                        queued.push(frame.bytes);
                    }
                    return Frame::fixed(b"+QUEUED\r\n".to_vec());
                }
            }
        }
        self.answer_plain(&name, args, &arg, &fuzz_error)
    }

    fn answer_plain(
        &mut self,
        name: &[u8],
        args: &[Bytes],
        arg: &dyn Fn(usize) -> Bytes,
        fuzz_error: &dyn Fn(&[u8]) -> Vec<u8>,
    ) -> Frame {
        match name {
            b"HELLO" => {
                if self.noproto {
                    return Frame::fixed(b"-NOPROTO sorry, this protocol version is not supported\r\n".to_vec());
                }
                let hello = b"%7\r\n$6\r\nserver\r\n$5\r\nredis\r\n$7\r\nversion\r\n$5\r\n7.2.0\r\n\
                    $5\r\nproto\r\n:3\r\n$2\r\nid\r\n:7\r\n$4\r\nmode\r\n$10\r\nstandalone\r\n\
                    $4\r\nrole\r\n$6\r\nmaster\r\n$7\r\nmodules\r\n*0\r\n";
                // Never replaced: the server's protocol follows its own answer.
                self.resp3 = true;
                Frame::fixed(hello.to_vec())
            }
            b"PING" if !self.resp3 && !self.channels.is_empty() => {
                // RESP2 subscribed mode.
                let mut reply = b"*2\r\n$4\r\npong\r\n".to_vec();
                reply.extend_from_slice(&bulk(&arg(1)));
                Frame::or(reply, fuzz_error(&arg(1)))
            }
            b"PING" if args.len() > 1 => Frame::or(bulk(&arg(1)), fuzz_error(&arg(1))),
            b"PING" => Frame::fixed(b"+PONG\r\n".to_vec()),
            b"GET" => Frame::or(bulk(&arg(1)), fuzz_error(&arg(1))),
            b"SET" => Frame::or(b"+OK\r\n".to_vec(), fuzz_error(&arg(1))),
            b"MULTI" => {
                self.multi = Some(Vec::new());
                Frame::fixed(b"+OK\r\n".to_vec())
            }
            b"PUBLISH" => {
                let receivers = i64::from(self.channels.contains(&arg(1)));
                Frame::or(format!(":{receivers}\r\n").into_bytes(), fuzz_error(&arg(1)))
            }
            b"SELECT" | b"AUTH" | b"CLIENT" => Frame::or(b"+OK\r\n".to_vec(), fuzz_error(name)),
            _ => Frame::fixed(b"-ERR unknown command\r\n".to_vec()),
        }
    }
}

fn bulk(b: &[u8]) -> Vec<u8> {
    let mut out = format!("${}\r\n", b.len()).into_bytes();
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
    out
}

impl FakeServer for RedisServer {
    fn greeting(&mut self) -> Vec<Frame> {
        Vec::new()
    }

    fn receive(&mut self, bytes: &[u8]) -> Vec<Frame> {
        self.input.push_slice(bytes);
        let mut frames = Vec::new();
        loop {
            match self.decoder.decode(&mut self.input) {
                Ok(Some(Value::Array(items))) => {
                    let args: Vec<Bytes> = items
                        .into_iter()
                        .map(|v| match v {
                            Value::BulkString(b) => b,
                            other => panic!("the client sent a command argument that is not a bulk string: {other:?}"),
                        })
                        .collect();
                    self.answer_all(&args, &mut frames);
                }
                Ok(Some(other)) => panic!("the client sent something other than a command: {other:?}"),
                Ok(None) => return frames,
                Err(e) => panic!("the client sent bytes that are not RESP: {e}"),
            }
        }
    }

    fn garbage(&self) -> &'static [u8] {
        b"@fuzz\r\n"
    }
}

/// What a call may take past its own deadline: a timer tick.
const TICK: Duration = Duration::from_millis(2);

/// The channels the harness subscribes and publishes to.
const CHANNELS: [&str; 3] = ["c0", "c1", "c2"];

/// What a request's reply must be.
#[derive(Debug, Clone)]
enum Expect {
    /// `GET k` or `PING m`: the bulk string `tag`.
    Bulk(String),
    /// `SET k v`: `+OK`.
    Ok(String),
}

impl Expect {
    fn tag(&self) -> &str {
        match self {
            Expect::Bulk(t) | Expect::Ok(t) => t,
        }
    }
}

/// The checks of one input's outcomes.
#[derive(Debug, Clone, Copy)]
struct Oracle {
    /// The connection may speak RESP2 (asked for, or a server refusing RESP3): then a
    /// subscribed connection refuses most commands client-side.
    resp2: bool,
}

impl Oracle {
    /// Checks one outcome against the request it was returned for.
    fn check(self, expect: &Expect, outcome: &Result<Value, Error>, what: &str) {
        match outcome {
            Ok(value) => self.check_value(expect, value, what),
            Err(Error::Server(e)) => assert_eq!(
                e.message(),
                format!("fuzz {}", expect.tag()),
                "{what}: an error reply meant for another request was returned for {expect:?}"
            ),
            Err(e) => self.error(e, what),
        }
    }

    fn check_value(self, expect: &Expect, value: &Value, what: &str) {
        let right = match (expect, value) {
            (Expect::Bulk(tag), Value::BulkString(b)) => b.as_ref() == tag.as_bytes(),
            // `PING m` in RESP2 subscribed mode.
            (Expect::Bulk(tag), Value::Array(items)) => {
                matches!(items.as_slice(), [Value::BulkString(p), Value::BulkString(b)]
                    if p.as_ref() == b"pong" && b.as_ref() == tag.as_bytes())
            }
            (Expect::Ok(_), Value::SimpleString(s)) => s.as_ref() == b"OK",
            _ => false,
        };
        assert!(
            right,
            "{what}: {expect:?} got the reply {value:?}, meant for another request"
        );
    }

    /// Buffers `1 + next byte % most` requests that `next` makes of the next bytes; the
    /// expected replies of those the client took (a refusal must be one the
    /// misbehaviour explains).
    fn send_buffered<D: Driver<Connection>>(
        self,
        client: &mut Client<D>,
        script: &Script,
        most: u8,
        next: &mut impl FnMut(u8) -> (Cmd, Expect),
    ) -> Vec<Expect> {
        let count = 1 + script.byte() % most;
        let mut expects = Vec::new();
        for _ in 0..count {
            let (c, expect) = next(script.byte());
            match client.send_buffered(&c) {
                Ok(_) => expects.push(expect),
                Err(e) => self.error(&e, "send_buffered"),
            }
        }
        expects
    }

    /// The errors a call may end with when the server misbehaves.
    fn error(self, e: &Error, what: &str) {
        let subscriber_mode = self.resp2 && matches!(e, Error::SubscriberMode { .. });
        assert!(
            subscriber_mode
                || matches!(
                    e,
                    Error::Timeout
                        | Error::Connection(_)
                        | Error::Link(
                            LinkError::Connect { .. } | LinkError::ConnectTimeout { .. } | LinkError::Reconnect { .. }
                        )
                        | Error::Handshake(_)
                ),
            "{what}: unexpected error {e:?}"
        );
    }
}

/// Fuzzes the Redis body. See [`super`] for the checks.
///
/// Input: byte 0 sets the response timeout (`2 + bits 0-2` ms) and the connect timeout
/// (`4 + bits 4-6` ms), bit 3 a server that refuses RESP3 (`-NOPROTO`), bit 7 a health
/// check every 3 ms of silence (stale after 4 ms); byte 1 RESP2
/// (bit 0), `max_pending` 3 (bit 1), a 3 ms idle check (bit 2), database 1 (bit 3), a
/// client name (bit 4), a 64-byte outgoing cap (bit 5), reconnect attempts per call
/// (`1 + bits 6-7`, 1-2 ms apart). Then calls, one byte each (modulo 11) and their
/// operands, interleaved with the driver's reads (a byte per connection attempt, two per
/// server frame, see [`MemDriver`]):
///
/// | op | operands | call |
/// |---|---|---|
/// | 0-2 | — | `query` of `GET k<n>`, `SET k<n> v` or `PING p<n>` (by `op / 11`) |
/// | 3 | count, a kind per request | `send_buffered` each, then `flush` (`flush_visit` when `op / 11` is odd) |
/// | 4 | count, a kind per request | `send_buffered` each, then `pump_into` (`pump_visit` when `op / 11` is odd) until all are in |
/// | 5 | count, kinds, flag | `send_buffered` each, `pump_into` now (flag), `discard_buffered` |
/// | 6 | count, kinds | `transaction` |
/// | 7 | ms | `next_event` |
/// | 8 | channel, flag | `subscribe` or `unsubscribe` (`c0`-`c2`) |
/// | 9 | channel | `publish` `<channel>:m<n>` |
/// | 10 | ms | `next_message` |
pub fn run(data: &[u8], checks: Checks) -> Result<(), String> {
    let script = Script::new(data);
    let h0 = script.byte();
    let h1 = script.byte();
    let response = Duration::from_millis(2 + u64::from(h0 & 7));
    let link = calls::link_options(h0, h1, 0.0);
    let connect = link.connect_timeout;
    let mut options = ClientOptions::new("127.0.0.1", 0)
        .link(link)
        .protocol(if h1 & 1 != 0 { Protocol::Resp2 } else { Protocol::Resp3 })
        .response_timeout(Some(response))
        .idle_check((h1 & 4 != 0).then(|| Duration::from_millis(3)))
        .database(u32::from(h1 & 8 != 0));
    if h1 & 2 != 0 {
        options = options.max_pending(3);
    }
    if h0 & 0x80 != 0 {
        // The connection's own PING after 3 ms of silence, stale 4 ms into one owed.
        options = options
            .health_check_interval(Some(Duration::from_millis(3)))
            .health_check_timeout(Some(Duration::from_millis(4)));
    }
    if h1 & 16 != 0 {
        options = options.client_name("fuzz");
    }
    if h1 & 32 != 0 {
        options = options.max_outgoing_bytes(64);
    }
    let noproto = h0 & 0x08 != 0 && h1 & 1 == 0;
    let (listener, port): (TcpListener, u16) = loopback();
    options.port = port;
    let driver: MemDriver<Connection, RedisServer> = MemDriver::new(
        script.clone(),
        Box::new(move || RedisServer::new(noproto)),
        response * 2 + Duration::from_millis(1),
        Some(listener),
    );
    // Every call returns by its response timeout (a wait, by its own timeout) plus a
    // timer tick, a reconnect included: the client's contract. Connecting, by the
    // connect timeout.
    let clock = Clock::new(response + TICK, checks.slack);
    let ck = Oracle {
        resp2: h1 & 1 != 0 || noproto,
    };

    let connected = calls::connect(
        &clock,
        connect,
        || Client::connect_with_driver(driver, options),
        |e| ck.error(e, "connect"),
    );
    let Some(mut client) = connected else {
        return clock.verdict();
    };
    // Channels subscribed at some point (a message may still arrive after an
    // unsubscribe, or for a subscribe whose call failed after it was sent).
    let mut subscribed: BTreeSet<&str> = BTreeSet::new();
    let mut publishes = 0u64;
    let mut n = 0u64;
    let mut next = |kind: u8| {
        n += 1;
        match kind % 3 {
            0 => (cmd("GET").arg(format!("k{n}")), Expect::Bulk(format!("k{n}"))),
            1 => (cmd("SET").arg(format!("k{n}")).arg("v"), Expect::Ok(format!("k{n}"))),
            _ => (cmd("PING").arg(format!("p{n}")), Expect::Bulk(format!("p{n}"))),
        }
    };
    let names = [
        "query",
        "query",
        "query",
        "flush",
        "pump_into",
        "discard",
        "transaction",
        "next_event",
        "(un)subscribe",
        "publish",
        "next_message",
    ];
    calls::run_calls(&script, &names, |kind, op| {
        match kind {
            0..=2 => {
                let (c, expect) = next(op / 11);
                let outcome = clock.time("query", || client.query(&c));
                if super::tracing() {
                    eprintln!("[fuzz] {expect:?}: {outcome:?}");
                }
                ck.check(&expect, &outcome, "query");
            }
            3 => {
                // A pipeline: buffered, then flushed; every outcome in request order.
                let expects = ck.send_buffered(&mut client, &script, 12, &mut next);
                let visit = (op / 11) % 2 == 1;
                let outcomes = if visit {
                    // The same outcomes, handed over as borrowed replies.
                    let mut got = Vec::new();
                    clock
                        .time("flush_visit", || {
                            client.flush_visit(|reply| got.push(reply.map(|r| r.to_value())))
                        })
                        .map(|n| {
                            assert_eq!(n, got.len(), "flush_visit miscounted");
                            got
                        })
                } else {
                    clock.time("flush", || client.flush())
                };
                match outcomes {
                    Ok(outcomes) => {
                        assert_eq!(
                            outcomes.len(),
                            expects.len(),
                            "flush returned a wrong number of outcomes"
                        );
                        for (expect, outcome) in expects.iter().zip(&outcomes) {
                            ck.check(expect, outcome, "flush");
                        }
                    }
                    Err(e) => ck.error(&e, "flush"),
                }
            }
            4 => {
                // A streaming pipeline: pump_into until every outcome is in.
                let expects = ck.send_buffered(&mut client, &script, 12, &mut next);
                let t = Instant::now();
                let mut outcomes = Vec::new();
                let visit = (op / 11) % 2 == 1;
                while outcomes.len() < expects.len() {
                    let until = Some(Instant::now() + response);
                    let got = if visit {
                        client.pump_visit(until, |reply| outcomes.push(reply.map(|r| r.to_value())))
                    } else {
                        client.pump_into(until, &mut outcomes)
                    };
                    if let Err(e) = got {
                        ck.error(&e, "pump_into");
                        break;
                    }
                    if super::tracing() {
                        eprintln!(
                            "[fuzz] pump_into: {} of {} outcomes, {} unsent",
                            outcomes.len(),
                            expects.len(),
                            client.unsent()
                        );
                    }
                    if !clock.check(t, "pump_into until every outcome is in") {
                        break;
                    }
                }
                assert!(
                    outcomes.len() <= expects.len(),
                    "pump_into returned more outcomes than requests"
                );
                for (expect, outcome) in expects.iter().zip(&outcomes) {
                    ck.check(expect, outcome, "pump_into");
                }
            }
            5 => {
                // Requests buffered then dropped: their replies must reach nobody.
                ck.send_buffered(&mut client, &script, 6, &mut next);
                if script.byte() & 1 != 0 {
                    // Hand them to the kernel first, so their replies do come back.
                    let mut none = Vec::new();
                    let pumped = clock.time("pump_into with a past deadline", || {
                        client.pump_into(Some(Instant::now()), &mut none)
                    });
                    if let Err(e) = pumped {
                        ck.error(&e, "pump_into");
                    }
                    for outcome in &none {
                        if let Err(e) = outcome {
                            if !matches!(e, Error::Server(_)) {
                                ck.error(e, "pump_into");
                            }
                        }
                    }
                }
                client.discard_buffered();
            }
            6 => {
                // A transaction: EXEC's array holds the queued commands' replies, in order.
                let count = 1 + usize::from(script.byte() % 4);
                let mut cmds = Vec::new();
                let mut expects = Vec::new();
                for _ in 0..count {
                    let (c, expect) = next(script.byte());
                    cmds.push(c);
                    expects.push(expect);
                }
                let outcome = clock.time("transaction", || client.transaction(&cmds));
                match outcome {
                    Ok(Value::Array(items)) => {
                        assert_eq!(items.len(), expects.len(), "EXEC's array has a wrong length: {items:?}");
                        for (expect, item) in expects.iter().zip(&items) {
                            ck.check_value(expect, item, "transaction");
                        }
                    }
                    Ok(other) => panic!("transaction returned {other:?}, not EXEC's array"),
                    // Queueing errors abort it; an error reply to EXEC itself (the fake's
                    // `-EXECABORT` after every command was queued) is a server error.
                    Err(Error::TransactionAborted(_)) => {}
                    Err(Error::Server(e)) if e.code() == "EXECABORT" => {}
                    Err(e) => ck.error(&e, "transaction"),
                }
            }
            8 => {
                let channel = CHANNELS[usize::from(script.byte()) % CHANNELS.len()];
                let subscribe = script.byte() & 1 == 0;
                if subscribe {
                    // Counted from the attempt: a call that fails may have reached the
                    // server.
                    subscribed.insert(channel);
                }
                let outcome = if subscribe {
                    clock.time("subscribe", || client.subscribe(&[channel]))
                } else {
                    clock.time("unsubscribe", || client.unsubscribe(&[channel]))
                };
                match outcome {
                    Ok(()) => {}
                    Err(Error::Server(e)) => panic!("(un)subscribe got the error reply {e:?}"),
                    Err(e) => ck.error(&e, "subscribe"),
                }
            }
            9 => {
                let channel = CHANNELS[usize::from(script.byte()) % CHANNELS.len()];
                publishes += 1;
                let outcome = clock.time("publish", || client.publish(channel, format!("{channel}:m{publishes}")));
                match outcome {
                    Ok(receivers) => assert!(
                        (0..=1).contains(&receivers),
                        "PUBLISH got {receivers}, the reply of another request"
                    ),
                    Err(Error::Server(e)) => assert_eq!(
                        e.message(),
                        format!("fuzz {channel}"),
                        "PUBLISH got an error reply meant for another request"
                    ),
                    Err(Error::UnexpectedReply { got, .. }) => {
                        panic!("PUBLISH got {got:?}, the reply of another request")
                    }
                    Err(e) => ck.error(&e, "publish"),
                }
            }
            10 => {
                let wait = script.millis(4);
                let outcome = clock.time_with("next_message", wait, || client.next_message(wait));
                match outcome {
                    Ok(Some(message)) => {
                        let channel = std::str::from_utf8(&message.channel).unwrap_or("");
                        assert!(
                            subscribed.contains(channel),
                            "a message on {channel:?}, never subscribed to: {message:?}"
                        );
                        assert!(
                            message.payload.starts_with(format!("{channel}:").as_bytes()),
                            "a message on {channel:?} carries another channel's payload: {message:?}"
                        );
                    }
                    Ok(None) => {}
                    Err(e) => ck.error(&e, "next_message"),
                }
            }
            _ => {
                let wait = script.millis(8);
                if let Err(e) = clock.time_with("next_event", wait, || client.next_event(wait)) {
                    ck.error(&e, "next_event");
                }
            }
        }
    });
    clock.verdict()
}
