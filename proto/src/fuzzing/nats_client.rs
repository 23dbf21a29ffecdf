//! The NATS client connection target: random operations and server bytes against its
//! invariants, across reconnects.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::nats::client::{
    Auth, ClientConfig, Connection, ConnectionError, Event, RequestId, SendError, SlowConsumerPolicy, SubscriptionEnd,
    SubscriptionPolicy,
};
use crate::nats::{HeaderMap, Headers, Limits, Sid};

/// The user seed the NKey configuration signs with (from the nkeys test vectors).
const SEED: &str = "SUAMLK2ZNL35WSMW37E7UD4VZ7ELPKW7DHC3BWBSD2GCZ7IUQQXZIORRBU";

/// Subjects the fuzzer publishes and requests on.
const PUB_SUBJECTS: &[&[u8]] = &[b"a", b"b", b"a.b", b"c", b"bad subject"];
/// Subjects it subscribes to.
const SUB_SUBJECTS: &[&[u8]] = &[b"a", b"b", b"a.*", b">", b"c"];

/// Whole frames a server might send, so the fuzzer reaches deep states without having
/// to invent valid NATS.
const FRAMES: &[&[u8]] = &[
    b"INFO {\"server_id\":\"S\",\"headers\":true,\"max_payload\":256,\"nonce\":\"n0\",\"connect_urls\":[\"a:1\",\"b:2\"]}\r\n",
    b"INFO {\"headers\":false,\"nonce\":\"n1\"}\r\n",
    b"INFO {\"tls_required\":true}\r\n",
    b"INFO {\"ldm\":true,\"connect_urls\":[\"c:3\",\"a:1\"]}\r\n",
    b"INFO {}\r\n",
    b"PONG\r\n",
    b"PING\r\n",
    b"+OK\r\n",
    b"-ERR 'Authorization Violation'\r\n",
    b"-ERR 'Permissions Violation for Subscription to \"a\"'\r\n",
    b"-ERR 'Permissions Violation for Subscription to \"b\" using queue \"q\"'\r\n",
    b"-ERR 'Permissions Violation for Publish to \"b\"'\r\n",
    b"-ERR 'Stale Connection'\r\n",
    b"-ERR 'Invalid Subject'\r\n",
    b"MSG a 1 10\r\nabc",
    b"defghij\r\n",
    b"BOGUS\r\n",
];

/// Fuzzes the NATS client [`Connection`] with a sequence of operations, replacing it
/// with [`Connection::resume`] after [`Connection::take_reconnect_state`] when asked.
///
/// Input layout: byte 0 picks the configuration (bit 0 verbose, bit 1 NKey auth, bit 2 a
/// 64-byte high-water mark, bit 3 a 48-byte reconnect buffer, bit 4 one ping out at
/// most, bit 5 at most 2 pending requests, bits 6–7 a 1 s ping interval and a 2 s
/// connect timeout). The inbox id is `F`, so reply subjects are `_INBOX.F.<id>`. Then
/// operations, one byte each (modulo 14) followed by their operands:
///
/// | op | operands | what |
/// |---|---|---|
/// | 0 | subject, len | `publish` (every fourth with headers) |
/// | 1 | subject, policy | `subscribe` (queue group, limits and policy from the byte) |
/// | 2 | sid index, max | `unsubscribe` (max 0: now) |
/// | 3 | subject, timeout | `request` (timeout 0: none) |
/// | 4 | — | `ping` |
/// | 5 | sid index | `next_message` |
/// | 6 | frame | feed a canned server frame |
/// | 7 | n, n bytes | feed raw server bytes |
/// | 8 | ms | advance the clock by `4 × ms` ms, `handle_timeout` |
/// | 9 | amount | the kernel takes up to `8 × amount` bytes of the arena |
/// | 10 | — | `handle_eof` |
/// | 11 | — | `take_reconnect_state`, then `resume` into a new connection |
/// | 12 | sid, kind, len | feed a `MSG` for sid `1..=10` (to a subject, or an inbox reply, or a 503) |
/// | 13 | — | drain events |
/// | 14 | sid index, max | `next_messages` (at most `max % 8`) |
///
/// Checks, panicking on the first that fails: nothing panics; every request id gets at
/// most one terminal event, only ids that were issued, and once a connection is
/// poisoned every id it issued has had one; ids and sids only increase, across
/// reconnects too; [`Event::Poisoned`] comes once per connection, last, with the stored
/// error, which every later call reports; a closed connection neither reads, sends nor
/// sets a timer; no message reaches a subscription after `unsubscribe(sid, None)`
/// (neither [`Event::Messages`] nor `next_message`), nor beyond its maximum; only
/// [`SlowConsumerPolicy::DropNew`] subscriptions drop; queues stay within their limits,
/// across reconnects too; `wants_read` is false only when
/// poisoned or a backpressured subscription exists; pending requests stay within their
/// limit and outgoing bytes within the high-water mark plus the ops that bypass it.
pub fn nats_client(data: &[u8]) {
    let mut input = Input(data);
    let header = input.byte().unwrap_or(0);
    let config = ClientConfig {
        verbose: header & 1 != 0,
        auth: if header & 2 != 0 {
            Auth::nkey(SEED).unwrap_or_default()
        } else {
            Auth::None
        },
        max_outgoing_bytes: if header & 4 != 0 { 64 } else { 4096 },
        reconnect_buffer_bytes: if header & 8 != 0 { 48 } else { 4096 },
        max_pings_out: if header & 16 != 0 { 1 } else { 2 },
        max_pending_requests: if header & 32 != 0 { 2 } else { 64 },
        ping_interval: Duration::from_secs(if header & 64 != 0 { 1 } else { 120 }),
        connect_timeout: Duration::from_secs(if header & 128 != 0 { 2 } else { 5 }),
        limits: Limits {
            max_control_line: 256,
            max_json_line: 1024,
            max_payload: 256,
        },
        inbox_id: Some("F".into()),
        ..ClientConfig::default()
    };
    let mut now = Instant::now();
    let mut conn = Connection::new(config.clone(), now);
    let mut check = Checker::new(config.clone());

    while let Some(op) = input.byte() {
        match op % 15 {
            0 => {
                let subject = PUB_SUBJECTS[usize::from(input.byte().unwrap_or(0)) % PUB_SUBJECTS.len()];
                let len = usize::from(input.byte().unwrap_or(0));
                let headers = (len % 4 == 3).then(|| headers(len));
                let payload = Bytes::from(vec![b'p'; len]);
                let before = conn.error().is_some();
                let result = conn.publish(subject, None, headers.as_ref(), &payload, now);
                check.sent(&conn, before, result.map(|()| None), len + 64);
            }
            1 => {
                let subject = SUB_SUBJECTS[usize::from(input.byte().unwrap_or(0)) % SUB_SUBJECTS.len()];
                let p = input.byte().unwrap_or(0);
                let queue: Option<&[u8]> = (p & 1 != 0).then_some(b"q");
                let policy = SubscriptionPolicy {
                    max_messages: usize::from(p >> 1 & 3) + 1,
                    max_bytes: if p & 8 != 0 { 16 } else { 1024 },
                    on_full: if p & 16 != 0 {
                        SlowConsumerPolicy::Backpressure
                    } else {
                        SlowConsumerPolicy::DropNew
                    },
                };
                let before = conn.error().is_some();
                let result = conn.subscribe(subject, queue, policy);
                check.slack += 64;
                if let Ok(sid) = &result {
                    check.subscribed(sid.clone(), policy);
                }
                check.sent(&conn, before, result.map(|_| None), 0);
            }
            2 => {
                let sid = check.pick_sid(input.byte().unwrap_or(0));
                let max = u64::from(input.byte().unwrap_or(0) % 8);
                // Everything queued before the call is seen first: a Messages event
                // drained later was emitted later.
                check.drain(&mut conn);
                let before = conn.error().is_some();
                let result = conn.unsubscribe(&sid, (max > 0).then_some(max));
                check.slack += 32;
                if result.is_ok() {
                    check.unsubscribed(&conn, &sid, max);
                }
                check.sent(&conn, before, result.map(|()| None), 0);
            }
            3 => {
                let subject = PUB_SUBJECTS[usize::from(input.byte().unwrap_or(0)) % PUB_SUBJECTS.len()];
                let ms = u64::from(input.byte().unwrap_or(0));
                let timeout = (ms > 0).then(|| Duration::from_millis(ms * 8));
                let before = conn.error().is_some();
                let result = conn.request(subject, None, &Bytes::from_static(b"q"), timeout, now);
                check.slack += 64;
                check.sent(&conn, before, result.map(Some), 128);
            }
            4 => {
                let before = conn.error().is_some();
                let result = conn.ping();
                check.slack += 6;
                check.sent(&conn, before, result.map(|_| None), 0);
            }
            5 => {
                let sid = check.pick_sid(input.byte().unwrap_or(0));
                if let Some(message) = conn.next_message(&sid) {
                    check.took(&sid, message.sid == sid || message.sid.as_u64() == sid.as_u64());
                }
            }
            14 => {
                let sid = check.pick_sid(input.byte().unwrap_or(0));
                let max = usize::from(input.byte().unwrap_or(0) % 8);
                let mut batch = std::collections::VecDeque::new();
                let n = conn.next_messages(&sid, &mut batch, max);
                assert!(
                    n == batch.len() && n <= max,
                    "{n} messages taken, {} handed over",
                    batch.len()
                );
                for message in batch {
                    check.took(&sid, message.sid == sid || message.sid.as_u64() == sid.as_u64());
                }
            }
            6 => {
                let frame = FRAMES[usize::from(input.byte().unwrap_or(0)) % FRAMES.len()];
                check.slack += 6 + 1024; // a PONG, or a CONNECT
                let result = conn.handle_input(Bytes::from_static(frame), now);
                check.handled(&conn, result);
            }
            7 => {
                let n = usize::from(input.byte().unwrap_or(0) % 64);
                let bytes = input.take(n);
                check.slack += 6 * (n / 6 + 1) + 1024;
                let result = conn.handle_input(Bytes::copy_from_slice(bytes), now);
                check.handled(&conn, result);
            }
            8 => {
                now += Duration::from_millis(4 * u64::from(input.byte().unwrap_or(0)));
                let due = conn.poll_timeout().is_some_and(|t| t <= now);
                check.slack += 6;
                let result = conn.handle_timeout(now);
                check.handled(&conn, result);
                if due {
                    assert!(conn.poll_timeout().is_none_or(|t| t > now), "a due timer stayed due");
                }
            }
            9 => {
                let amount = usize::from(input.byte().unwrap_or(0)) * 8;
                if let Some(arena) = conn.poll_transmit() {
                    assert!(!arena.is_empty(), "poll_transmit returned an empty arena");
                    let n = amount.min(arena.len());
                    arena.advance(n);
                }
            }
            10 => {
                let result = conn.handle_eof(now);
                assert!(result.is_err(), "EOF must poison");
                check.handled(&conn, result);
            }
            11 => {
                let state = conn.take_reconnect_state();
                assert!(conn.is_closed());
                assert!(
                    state.replay_len().1 <= config.reconnect_buffer_bytes,
                    "replay over the reconnect buffer"
                );
                check.drain(&mut conn);
                for sid in state.subscriptions() {
                    assert!(!check.unsubscribed.contains(sid), "{sid:?} carried after its UNSUB");
                }
                conn = Connection::resume(config.clone(), state, now);
                check.replaced();
            }
            12 => {
                let sid = 1 + u64::from(input.byte().unwrap_or(0) % 10);
                let kind = input.byte().unwrap_or(0);
                let len = usize::from(input.byte().unwrap_or(0) % 48);
                let frame = message_frame(sid, kind, len);
                let result = conn.handle_input(frame, now);
                check.handled(&conn, result);
            }
            _ => check.drain(&mut conn),
        }
        check.bounds(&mut conn);
    }
    check.drain(&mut conn);
}

fn headers(len: usize) -> Headers {
    let mut map = HeaderMap::new();
    // Names and values are fixed and valid.
    let _ = map.insert("K", if len.is_multiple_of(2) { "even" } else { "odd" });
    map.to_headers()
}

/// A `MSG` (or a 503 `HMSG`) for `sid`: `kind` picks the subject (`a`, or the reply
/// subject of request `kind >> 2 & 7`) and whether it is a no-responders status.
fn message_frame(sid: u64, kind: u8, len: usize) -> Bytes {
    let subject = if kind & 1 == 0 {
        "a".to_owned()
    } else {
        format!("_INBOX.F.{}", (kind >> 2) & 7)
    };
    let text = if kind & 2 != 0 {
        format!("HMSG {subject} {sid} 16 16\r\nNATS/1.0 503\r\n\r\n\r\n")
    } else {
        format!("MSG {subject} {sid} {len}\r\n{}\r\n", "m".repeat(len))
    };
    Bytes::from(text)
}

/// The fuzz input, consumed from the front.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        head
    }
}

/// What a subscription promised.
struct SubModel {
    policy: SubscriptionPolicy,
    /// Most messages the application may take in all (after `unsubscribe` with a max).
    bound: Option<u64>,
    taken: u64,
}

/// What the connections promised, and what they did.
struct Checker {
    config: ClientConfig,
    /// Requests issued by the current connection.
    issued: Vec<RequestId>,
    /// Every request id ever issued, and how many terminal events each got.
    terminal: HashMap<RequestId, usize>,
    last_request: Option<RequestId>,
    last_sid: u64,
    subs: HashMap<Sid, SubModel>,
    unsubscribed: HashSet<Sid>,
    connected: bool,
    poisoned: Option<ConnectionError>,
    largest_op: usize,
    /// Bytes of ops that bypass the high-water mark (SUB, UNSUB, PING, PONG, CONNECT).
    slack: usize,
}

impl Checker {
    fn new(config: ClientConfig) -> Self {
        Self {
            config,
            issued: Vec::new(),
            terminal: HashMap::new(),
            last_request: None,
            last_sid: 0,
            subs: HashMap::new(),
            unsubscribed: HashSet::new(),
            connected: false,
            poisoned: None,
            largest_op: 0,
            slack: 0,
        }
    }

    fn pick_sid(&self, byte: u8) -> Sid {
        Sid::from_u64(1 + u64::from(byte) % (self.last_sid + 2))
    }

    fn subscribed(&mut self, sid: Sid, policy: SubscriptionPolicy) {
        let n = sid.as_u64().expect("decimal sid");
        assert!(n > self.last_sid, "sids increase: {n} after {}", self.last_sid);
        self.last_sid = n;
        self.subs.insert(
            sid,
            SubModel {
                policy,
                bound: None,
                taken: 0,
            },
        );
    }

    fn unsubscribed(&mut self, conn: &Connection, sid: &Sid, max: u64) {
        if max == 0 {
            self.unsubscribed.insert(sid.clone());
            assert!(conn.pending_messages(sid).is_none(), "queue kept after UNSUB");
        } else if let Some(model) = self.subs.get_mut(sid) {
            let pending = conn.pending_messages(sid).map_or(0, |p| p.0 as u64);
            // The stalled message (not queued yet) may still arrive. A later maximum
            // replaces an earlier one, as nats-server's `processUnsub` does.
            model.bound = Some(max.max(model.taken + pending + 1));
        }
    }

    fn took(&mut self, sid: &Sid, same_sid: bool) {
        assert!(same_sid, "a message for another sid was taken from {sid:?}");
        assert!(
            !self.unsubscribed.contains(sid),
            "message taken from {sid:?} after its UNSUB"
        );
        if let Some(model) = self.subs.get_mut(sid) {
            model.taken += 1;
            if let Some(bound) = model.bound {
                assert!(model.taken <= bound, "{sid:?} delivered past its maximum");
            }
        }
    }

    /// A mutator's result; `before` is whether the connection was poisoned before the
    /// call (`unsubscribe` may resume decoding, which may poison it after accepting).
    fn sent(&mut self, conn: &Connection, before: bool, result: Result<Option<RequestId>, SendError>, len: usize) {
        match result {
            Ok(id) => {
                assert!(self.poisoned.is_none() && !before, "accepted on a poisoned connection");
                self.largest_op = self.largest_op.max(len);
                if let Some(id) = id {
                    assert!(self.last_request.is_none_or(|last| last < id), "request ids increase");
                    self.last_request = Some(id);
                    self.issued.push(id);
                    self.terminal.insert(id, 0);
                }
            }
            Err(SendError::Poisoned(e)) => {
                assert_eq!(Some(&e), conn.error(), "send reports the poisoning error");
            }
            Err(_) => assert!(conn.error().is_none(), "a poisoned connection reports the poison first"),
        }
    }

    fn handled(&mut self, conn: &Connection, result: Result<(), ConnectionError>) {
        match (result, conn.error()) {
            (Ok(()), None) => {}
            (Err(e), Some(stored)) => assert_eq!(&e, stored, "handle_* reports the stored error"),
            (r, stored) => panic!("handle_* returned {r:?} with {stored:?} stored"),
        }
    }

    /// A new connection continues the old one.
    fn replaced(&mut self) {
        assert!(self.poisoned.is_some(), "the replaced connection reported Poisoned");
        self.issued.clear();
        self.connected = false;
        self.poisoned = None;
        self.slack = 0;
        self.largest_op = 0;
    }

    fn bounds(&mut self, conn: &mut Connection) {
        assert!(conn.pending_requests() <= self.config.max_pending_requests);
        let bound = self.config.max_outgoing_bytes.max(self.config.reconnect_buffer_bytes)
            + self.largest_op
            + self.slack
            + 4096;
        assert!(conn.outgoing_len() <= bound, "{} bytes outgoing", conn.outgoing_len());
        let mut backpressured = false;
        for (sid, model) in &self.subs {
            if let Some((messages, bytes)) = conn.pending_messages(sid) {
                backpressured |= model.policy.on_full == SlowConsumerPolicy::Backpressure;
                // A hard bound: even an empty queue takes no message over it.
                assert!(
                    messages <= model.policy.max_messages,
                    "{sid:?} holds {messages} messages"
                );
                assert!(bytes <= model.policy.max_bytes, "{sid:?} holds {bytes} bytes");
            }
        }
        if !conn.wants_read() {
            assert!(conn.is_closed() || backpressured, "reading paused for no reason");
        }
        if conn.is_closed() {
            assert!(conn.error().is_some());
            assert!(conn.poll_timeout().is_none());
            assert!(!conn.wants_read());
            assert!(conn.poll_transmit().is_none());
        }
    }

    fn drain(&mut self, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            assert!(self.poisoned.is_none(), "event after Poisoned: {event:?}");
            match event {
                Event::Connected { .. } => {
                    assert!(!self.connected, "connected twice");
                    self.connected = true;
                }
                Event::Response { id, .. } | Event::RequestFailed { id, .. } => {
                    let n = self
                        .terminal
                        .get_mut(&id)
                        .unwrap_or_else(|| panic!("event for unknown {id}"));
                    *n += 1;
                    assert_eq!(*n, 1, "{id} got two terminal events");
                }
                Event::Messages { sid } => {
                    assert!(
                        !self.unsubscribed.contains(&sid),
                        "Messages for {sid:?} after its UNSUB"
                    );
                    assert!(self.subs.contains_key(&sid), "Messages for unknown {sid:?}");
                }
                Event::SlowConsumer { sid, dropped } => {
                    assert!(dropped > 0);
                    let model = self.subs.get(&sid).expect("SlowConsumer for a known sid");
                    // A message over `max_bytes` is dropped whatever the policy (here
                    // payloads reach 256 bytes); otherwise only DropNew drops.
                    assert!(
                        model.policy.on_full == SlowConsumerPolicy::DropNew || model.policy.max_bytes < 512,
                        "a backpressured sub dropped"
                    );
                }
                Event::SubscriptionEnded { sid, reason } => {
                    assert!(self.subs.contains_key(&sid), "end of unknown {sid:?}");
                    assert!(
                        !matches!(reason, SubscriptionEnd::NotRestored(_)),
                        "same limits restore"
                    );
                }
                Event::Poisoned(error) => {
                    assert_eq!(Some(&error), conn.error(), "Poisoned carries the stored error");
                    for id in &self.issued {
                        assert_eq!(
                            self.terminal.get(id),
                            Some(&1),
                            "{id} pending at the poison was not failed"
                        );
                    }
                    self.poisoned = Some(error);
                }
                Event::Pong { .. } | Event::ServerError(_) | Event::ServersDiscovered { .. } | Event::LameDuck => {}
            }
        }
        if conn.is_closed() {
            assert!(self.poisoned.is_some(), "closed without Event::Poisoned");
        }
    }
}
