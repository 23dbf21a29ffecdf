//! The Redis client connection target: random operations against its invariants.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::resp::{
    Cmd, Connection, ConnectionConfig, ConnectionError, DecoderConfig, Event, Protocol, RequestId, SendError,
};

/// Commands the fuzzer sends, chosen by one byte; an argument byte picks the key. The
/// empty slice is `Cmd::default()`, which must be refused.
const COMMANDS: &[&[&str]] = &[
    &["GET", "k"],
    &["SET", "k", "v"],
    &["PING"],
    &["INCR", "k"],
    &["SUBSCRIBE", "a"],
    &["SUBSCRIBE", "a", "b"],
    &["UNSUBSCRIBE"],
    &["UNSUBSCRIBE", "a"],
    &["PSUBSCRIBE", "p*"],
    &["PUNSUBSCRIBE"],
    &["SSUBSCRIBE", "s"],
    &["SUNSUBSCRIBE"],
    &["MULTI"],
    &["EXEC"],
    &["DISCARD"],
    &["HELLO", "3"],
    &["HELLO", "2"],
    &["RESET"],
    &["MONITOR"],
    &["CLIENT", "REPLY", "OFF"],
    &["CLIENT", "TRACKING", "on"],
    &[],
];

/// Frames a server might send, so that the fuzzer reaches deep states without having
/// to invent valid RESP.
const FRAMES: &[&[u8]] = &[
    b"+OK\r\n",
    b"+QUEUED\r\n",
    b":1\r\n",
    b"$1\r\nv\r\n",
    b"$-1\r\n",
    b"_\r\n",
    b"-ERR x\r\n",
    b"-NOPROTO sorry\r\n",
    b"-WRONGPASS invalid\r\n",
    b"-EXECABORT discarded\r\n",
    b"+RESET\r\n",
    b"*0\r\n",
    b"*1\r\n:1\r\n",
    b"*2\r\n$4\r\npong\r\n$0\r\n\r\n",
    b"%1\r\n$6\r\nserver\r\n$5\r\nredis\r\n",
    b"|1\r\n+ttl\r\n:3\r\n+OK\r\n",
    b">3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n",
    b">4\r\n$8\r\npmessage\r\n$2\r\np*\r\n$2\r\npx\r\n$1\r\ny\r\n",
    b">3\r\n$8\r\nsmessage\r\n$1\r\ns\r\n$1\r\nz\r\n",
    b">3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n",
    b">3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n",
    b">3\r\n$10\r\npsubscribe\r\n$2\r\np*\r\n:1\r\n",
    b">3\r\n$10\r\nssubscribe\r\n$1\r\ns\r\n:1\r\n",
    b">3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n",
    b">3\r\n$11\r\nunsubscribe\r\n_\r\n:0\r\n",
    b">3\r\n$12\r\nsunsubscribe\r\n$1\r\ns\r\n:0\r\n",
    b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n",
    b">2\r\n$10\r\ninvalidate\r\n_\r\n",
    b">1\r\n$7\r\nunknown\r\n",
    b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n",
    b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n",
    b"*3\r\n$11\r\nunsubscribe\r\n$1\r\na\r\n:0\r\n",
    b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$1\r\nx\r\n",
    b"*3\r\n$7\r\nmessage\r\n$20\r\n__redis__:invalidate\r\n*1\r\n$1\r\nk\r\n",
    b"$5\r\nab",
    b"cd\r\n",
];

/// Slack over the high-water mark: handshake commands skip it (they are small).
const HANDSHAKE_SLACK: usize = 512;

/// Fuzzes [`Connection`] with a sequence of operations.
///
/// Input layout: byte 0 picks the configuration (bit 0 RESP2, bit 1 a password, bit 2 a
/// client name, bit 3 a 50 ms request timeout, bit 4 at most 4 pending requests, bit 5 a
/// 64-byte high-water mark, bits 6–7 the database). Then operations, one byte each
/// (modulo 9) followed by their operands:
///
/// | op | operands | what |
/// |---|---|---|
/// | 0 | command, key | `send_buffered` a command from a fixed list |
/// | 1 | n, n bytes | feed raw server bytes |
/// | 2 | frame | feed a canned server frame |
/// | 3 | ms | advance the virtual clock, `handle_timeout` |
/// | 4 | index | `abandon` the index-th id issued |
/// | 5 | — | `handle_eof` |
/// | 6 | count, commands | `send_transaction` |
/// | 7 | amount | the kernel takes up to `4 × amount` bytes of the arena |
/// | 8 | — | drain events |
/// | 9 | — | toggle [`defer_input`](Connection::defer_input) |
/// | 10 | — | [`visit_replies`](Connection::visit_replies) |
///
/// Checks, panicking on the first that fails: nothing panics; every id gets at most one
/// terminal event ([`Event::Reply`] or [`Event::Failed`], or a visit), only ids that
/// were issued, and none once abandoned; a visit hands ids over in increasing order; [`Event::Connected`] at most once, before any reply;
/// [`Event::Poisoned`] exactly once after a poison, after which every issued id that
/// was not abandoned has had its terminal event and no event follows; a poisoned
/// connection reports the same error to every call; pending requests stay within the
/// limit and outgoing bytes within the high-water mark (plus one request and the
/// handshake).
pub fn resp_connection(data: &[u8]) {
    let mut input = Input(data);
    let header = input.byte().unwrap_or(0);
    let config = ConnectionConfig {
        protocol: if header & 1 != 0 {
            Protocol::Resp2
        } else {
            Protocol::Resp3
        },
        username: None,
        password: (header & 2 != 0).then(|| "pw".to_string()),
        client_name: (header & 4 != 0).then(|| "fz".to_string()),
        database: u32::from(header >> 6),
        decoder: DecoderConfig {
            protocol: Protocol::Resp3,
            max_bulk_len: 256,
            max_aggregate_len: 64,
            max_depth: 8,
            max_line_len: 128,
        },
        request_timeout: (header & 8 != 0).then_some(Duration::from_millis(50)),
        max_pending: if header & 16 != 0 { 4 } else { 64 },
        max_outgoing_bytes: if header & 32 != 0 { 64 } else { 4096 },
        health_check_interval: None,
        health_check_timeout: None,
    };
    let mut now = Instant::now();
    let mut conn = Connection::new(config.clone(), now);
    let mut check = Checker::new(config);

    while let Some(op) = input.byte() {
        match op % 11 {
            0 => {
                let cmd = command(input.byte().unwrap_or(0), input.byte().unwrap_or(0));
                let result = conn.send_buffered(&cmd, now);
                check.sent(&conn, result.map_err(Some), cmd.encoded_len());
            }
            1 => {
                let n = usize::from(input.byte().unwrap_or(0) % 64);
                let bytes = input.take(n);
                let result = conn.handle_input(Bytes::copy_from_slice(bytes), now);
                check.handled(&conn, result);
            }
            2 => {
                let frame = FRAMES[usize::from(input.byte().unwrap_or(0)) % FRAMES.len()];
                let result = conn.handle_input(Bytes::from_static(frame), now);
                check.handled(&conn, result);
            }
            3 => {
                now += Duration::from_millis(u64::from(input.byte().unwrap_or(0)));
                let due = conn.poll_timeout().is_some_and(|t| t <= now);
                let result = conn.handle_timeout(now);
                check.handled(&conn, result);
                if due {
                    assert!(conn.poll_timeout().is_none_or(|t| t > now), "a due timer stayed due");
                }
            }
            4 => {
                let index = usize::from(input.byte().unwrap_or(0));
                if let Some(&id) = check.issued.get(index % check.issued.len().max(1)) {
                    if conn.abandon(id) {
                        assert!(check.abandoned.insert(id), "{id} abandoned twice");
                        assert!(!check.terminal.contains_key(&id), "{id} abandoned after its event");
                    }
                }
            }
            5 => {
                let result = conn.handle_eof(now);
                assert!(result.is_err(), "EOF must poison");
                check.handled(&conn, result);
            }
            6 => {
                let count = input.byte().unwrap_or(0) % 4;
                let cmds: Vec<Cmd> = (0..count)
                    .map(|_| command(input.byte().unwrap_or(0), input.byte().unwrap_or(0)))
                    .collect();
                let len = cmds.iter().map(Cmd::encoded_len).sum::<usize>() + 32;
                let result = conn.send_transaction(&cmds, now);
                check.sent(&conn, result.map_err(Some), len);
            }
            7 => {
                let amount = usize::from(input.byte().unwrap_or(0)) * 4;
                if let Some(arena) = conn.poll_transmit() {
                    assert!(!arena.is_empty(), "poll_transmit returned an empty arena");
                    let n = amount.min(arena.len());
                    arena.advance(n);
                }
            }
            8 => check.drain(&mut conn),
            9 => {
                let defer = !conn.is_input_deferred();
                conn.defer_input(defer, now);
                assert_eq!(conn.is_input_deferred(), defer);
            }
            _ => {
                let mut visited = Vec::new();
                let result = conn.visit_replies(now, |id, reply| {
                    // A borrowed reply reads back as the value it stands for.
                    let value = reply.to_value();
                    assert_eq!(
                        reply.kind() == crate::resp::TapeKind::Integer,
                        value.as_integer().is_some()
                    );
                    visited.push(id);
                });
                assert!(
                    visited.windows(2).all(|w| w[0] < w[1]),
                    "visited out of order: {visited:?}"
                );
                for id in visited {
                    check.terminated(id, true);
                }
                check.handled(&conn, result.map(|_| ()));
            }
        }
        check.bounds(&conn);
    }
    check.drain(&mut conn);
}

fn command(which: u8, key: u8) -> Cmd {
    let parts = COMMANDS[usize::from(which) % COMMANDS.len()];
    let Some((name, args)) = parts.split_first() else {
        return Cmd::default();
    };
    let mut cmd = Cmd::new(*name);
    for arg in args {
        if *arg == "k" {
            cmd.push(format!("k{}", key % 4));
        } else {
            cmd.push(*arg);
        }
    }
    cmd
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

/// What the connection promised, and what it did.
struct Checker {
    config: ConnectionConfig,
    issued: Vec<RequestId>,
    abandoned: HashSet<RequestId>,
    terminal: HashMap<RequestId, usize>,
    connected: bool,
    /// Whether any request got a [`Event::Reply`].
    replied: bool,
    poisoned: Option<ConnectionError>,
    largest_request: usize,
}

impl Checker {
    fn new(config: ConnectionConfig) -> Self {
        Self {
            config,
            issued: Vec::new(),
            abandoned: HashSet::new(),
            terminal: HashMap::new(),
            connected: false,
            replied: false,
            poisoned: None,
            largest_request: 0,
        }
    }

    fn sent(&mut self, conn: &Connection, result: Result<RequestId, Option<SendError>>, len: usize) {
        match result {
            Ok(id) => {
                assert!(
                    self.poisoned.is_none() && conn.error().is_none(),
                    "sent on a poisoned connection"
                );
                assert!(self.issued.last().is_none_or(|last| *last < id), "ids increase");
                self.issued.push(id);
                self.largest_request = self.largest_request.max(len);
            }
            Err(Some(SendError::Poisoned(e))) => {
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

    fn bounds(&self, conn: &Connection) {
        assert!(conn.pending() <= self.config.max_pending, "{} pending", conn.pending());
        let bound = self.config.max_outgoing_bytes + self.largest_request + HANDSHAKE_SLACK;
        assert!(conn.outgoing_len() <= bound, "{} bytes outgoing", conn.outgoing_len());
        if conn.is_closed() {
            assert!(conn.error().is_some());
            assert!(conn.poll_timeout().is_none());
            assert!(!conn.wants_read());
        }
    }

    /// Request `id` got its terminal event, or was visited (`replied`: it was answered).
    fn terminated(&mut self, id: RequestId, replied: bool) {
        assert!(self.poisoned.is_none(), "{id} ended after Poisoned");
        self.replied |= replied;
        assert!(self.issued.contains(&id), "event for unknown {id}");
        assert!(!self.abandoned.contains(&id), "event for abandoned {id}");
        let n = self.terminal.entry(id).or_insert(0);
        *n += 1;
        assert_eq!(*n, 1, "{id} got two terminal events");
    }

    fn drain(&mut self, conn: &mut Connection) {
        while let Some(event) = conn.poll_event() {
            assert!(self.poisoned.is_none(), "event after Poisoned: {event:?}");
            match event {
                Event::Connected { .. } => {
                    assert!(!self.connected, "connected twice");
                    // A request may fail (time out) while the handshake runs; none is answered.
                    assert!(!self.replied, "connected after a reply");
                    self.connected = true;
                }
                Event::Reply { id, .. } => self.terminated(id, true),
                Event::Failed { id, .. } => self.terminated(id, false),
                Event::Poisoned(error) => {
                    assert_eq!(Some(&error), conn.error(), "Poisoned carries the stored error");
                    for id in &self.issued {
                        assert!(
                            self.abandoned.contains(id) || self.terminal.contains_key(id),
                            "{id} pending at the poison was not failed"
                        );
                    }
                    self.poisoned = Some(error);
                }
                Event::Message { .. } | Event::Invalidate { .. } | Event::Push(_) => {}
                Event::RestoreFailed { .. } => panic!("a connection that restores nothing reported {event:?}"),
            }
        }
        if conn.is_closed() {
            assert!(self.poisoned.is_some(), "closed without Event::Poisoned");
            assert!(conn.poll_transmit().is_none());
        }
    }
}
