//! A small fake Redis server, as a [`Session`], for the connection tests.
//!
//! It reads commands with the RESP [`Decoder`] and writes replies with the [`Encoder`],
//! in RESP2 or (after `HELLO 3`) RESP3, and implements just enough of Redis to exercise
//! the client: the handshake in three flavours (RESP3, `-NOPROTO`, Redis < 6's unknown
//! `HELLO`) with `requirepass`, strings, pub/sub in both protocols, transactions with
//! queueing errors and `WATCH`, client-side tracking, and faults: delayed replies, a
//! reply cut in half and never finished, pushes before every reply, raw bytes.
//!
//! Its events are the commands it received, in order.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::chassis::{IoArena, SegmentedBuffer, Session};
use crate::resp::{Decoder, DecoderConfig, Encoder, Protocol, Value};

/// How the server answers `HELLO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HelloMode {
    /// Redis 6+: `HELLO 3` switches to RESP3 and replies with a map.
    Resp3,
    /// A server that refuses RESP3: `-NOPROTO`.
    NoProto,
    /// Redis < 6: `-ERR unknown command 'HELLO'`.
    Unknown,
}

/// The server's fixed settings.
#[derive(Debug, Clone)]
pub(super) struct ServerConfig {
    /// How `HELLO` is answered.
    pub hello: HelloMode,
    /// The ACL user that `password` belongs to (`default` when `None`).
    pub user: Option<String>,
    /// `requirepass`: commands other than `AUTH`/`HELLO` need authentication first.
    pub password: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            hello: HelloMode::Resp3,
            user: None,
            password: None,
        }
    }
}

#[derive(Debug, Default)]
struct Multi {
    queued: Vec<Vec<Bytes>>,
    dirty: bool,
}

/// The fake server session.
#[derive(Debug)]
pub(super) struct FakeServer {
    pub config: ServerConfig,
    /// The protocol it writes.
    pub protocol: Protocol,
    /// The name set with `CLIENT SETNAME` or `HELLO ... SETNAME`.
    pub name: Option<Bytes>,
    /// The database chosen with `SELECT`.
    pub db: i64,
    /// Hold the next reply (and everything after it) back for this long.
    pub delay_next: Option<Duration>,
    /// Send only the first half of the next reply, and nothing ever after.
    pub stall_next: bool,
    /// RESP3: send a push (alternately an invalidation and a message) before every reply.
    pub chatty: bool,
    /// A `WATCH`ed key was changed "by another client": the next `EXEC` returns null.
    pub watch_broken: bool,
    authed: bool,
    decoder: Decoder,
    input: SegmentedBuffer,
    out: IoArena,
    delayed: VecDeque<(Instant, Vec<u8>)>,
    stalled: bool,
    chat_count: u64,
    watching: bool,
    tracking: bool,
    tracked: BTreeSet<Bytes>,
    data: HashMap<Bytes, Bytes>,
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shards: BTreeSet<Bytes>,
    multi: Option<Multi>,
    log: VecDeque<Vec<Bytes>>,
}

fn bulk(b: impl Into<Bytes>) -> Value {
    Value::BulkString(b.into())
}

fn status(s: &'static str) -> Value {
    Value::SimpleString(Bytes::from_static(s.as_bytes()))
}

fn error(s: impl Into<String>) -> Value {
    Value::SimpleError(Bytes::from(s.into()))
}

/// Redis-style arity: positive means exactly, negative at least.
fn arity(name: &str) -> Option<i64> {
    Some(match name {
        "PING" | "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "SUNSUBSCRIBE" | "HELLO" | "FLUSHALL" => -1,
        "SET" | "PUBLISH" => 3,
        "GET" | "INCR" | "SELECT" | "ECHO" => 2,
        "DEL" | "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" | "WATCH" | "AUTH" | "CLIENT" => -2,
        "MULTI" | "EXEC" | "DISCARD" | "UNWATCH" | "RESET" | "QUIT" => 1,
        _ => return None,
    })
}

/// Glob matching with `*` and `?`, enough for `PSUBSCRIBE`.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|i| glob(rest, &text[i..])),
        Some((b'?', rest)) => !text.is_empty() && glob(rest, &text[1..]),
        Some((c, rest)) => text.first() == Some(c) && glob(rest, &text[1..]),
    }
}

impl FakeServer {
    pub fn new(config: ServerConfig) -> Self {
        Self {
            authed: config.password.is_none(),
            config,
            protocol: Protocol::Resp2,
            name: None,
            db: 0,
            delay_next: None,
            stall_next: false,
            chatty: false,
            watch_broken: false,
            decoder: Decoder::new(DecoderConfig::new(Protocol::Resp2)),
            input: SegmentedBuffer::new(),
            out: IoArena::new(),
            delayed: VecDeque::new(),
            stalled: false,
            chat_count: 0,
            watching: false,
            tracking: false,
            tracked: BTreeSet::new(),
            data: HashMap::new(),
            channels: BTreeSet::new(),
            patterns: BTreeSet::new(),
            shards: BTreeSet::new(),
            multi: None,
            log: VecDeque::new(),
        }
    }

    /// Another client published `payload` on `channel`: deliver it to every matching
    /// subscription of this connection.
    pub fn publish(&mut self, channel: &'static str, payload: &'static str, now: Instant) -> usize {
        let frames = self.deliveries(
            Bytes::from_static(channel.as_bytes()),
            Bytes::from_static(payload.as_bytes()),
        );
        let n = frames.len();
        frames.into_iter().for_each(|f| self.send(&f, now));
        n
    }

    /// Another client published on a shard channel.
    pub fn publish_shard(&mut self, channel: &'static str, payload: &'static str, now: Instant) {
        if self.shards.contains(channel.as_bytes()) {
            let frame = Value::Push(vec![bulk("smessage"), bulk(channel), bulk(payload)]);
            self.send(&frame, now);
        }
    }

    /// A tracking invalidation push (RESP3).
    pub fn invalidate(&mut self, keys: Option<Vec<&'static str>>, now: Instant) {
        let keys = keys.map_or(Value::Null, |k| Value::Array(k.into_iter().map(bulk).collect()));
        self.send(&Value::Push(vec![bulk("invalidate"), keys]), now);
    }

    /// Raw bytes, as they are.
    pub fn inject(&mut self, bytes: &[u8], now: Instant) {
        self.emit(bytes.to_vec(), now);
    }

    fn subscribed(&self) -> bool {
        !(self.channels.is_empty() && self.patterns.is_empty() && self.shards.is_empty())
    }

    fn deliveries(&self, channel: Bytes, payload: Bytes) -> Vec<Value> {
        let mut frames = Vec::new();
        if self.channels.contains(&channel) {
            frames.push(Value::Push(vec![
                bulk("message"),
                bulk(channel.clone()),
                bulk(payload.clone()),
            ]));
        }
        for p in self.patterns.iter().filter(|p| glob(p, &channel)) {
            frames.push(Value::Push(vec![
                bulk("pmessage"),
                bulk(p.clone()),
                bulk(channel.clone()),
                bulk(payload.clone()),
            ]));
        }
        frames
    }

    fn send(&mut self, value: &Value, now: Instant) {
        let mut arena = IoArena::new();
        Encoder::new(self.protocol)
            .encode(value, &mut arena)
            .expect("test values encode");
        self.emit(arena.to_vec(), now);
    }

    fn emit(&mut self, mut bytes: Vec<u8>, now: Instant) {
        if self.stalled || bytes.is_empty() {
            return;
        }
        if std::mem::take(&mut self.stall_next) {
            bytes.truncate(bytes.len().div_ceil(2).min(bytes.len() - 1).max(1));
            self.stalled = true;
        }
        if let Some(d) = self.delay_next.take() {
            let at = self.delayed.back().map_or(now + d, |b| b.0.max(now + d));
            self.delayed.push_back((at, bytes));
        } else if let Some(back) = self.delayed.back() {
            let at = back.0.max(now);
            self.delayed.push_back((at, bytes));
        } else {
            self.out.put_slice(&bytes);
        }
    }

    fn authenticate(&mut self, user: &[u8], password: &[u8]) -> Result<(), Value> {
        let want_user = self.config.user.as_deref().unwrap_or("default").as_bytes();
        let ok = match &self.config.password {
            Some(p) => user == want_user && password == p.as_bytes(),
            None => user == b"default",
        };
        if ok {
            self.authed = true;
            Ok(())
        } else {
            Err(error("WRONGPASS invalid username-password pair or user is disabled."))
        }
    }

    fn dispatch(&mut self, args: Vec<Bytes>, now: Instant) {
        self.log.push_back(args.clone());
        let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
        let frames = self.command(&name, &args);
        if self.chatty && self.protocol == Protocol::Resp3 {
            self.chat_count += 1;
            let noise = if self.chat_count.is_multiple_of(2) {
                Value::Push(vec![bulk("invalidate"), Value::Array(vec![bulk("noise")])])
            } else {
                Value::Push(vec![bulk("message"), bulk("noise"), bulk(self.chat_count.to_string())])
            };
            self.send(&noise, now);
        }
        for f in frames {
            self.send(&f, now);
        }
    }

    /// Runs one command; the last frame is its reply, those before it pushes.
    fn command(&mut self, name: &str, args: &[Bytes]) -> Vec<Value> {
        let queueing = self.multi.is_some() && !matches!(name, "EXEC" | "DISCARD" | "MULTI" | "RESET" | "QUIT");
        let check = match arity(name) {
            None => Err(error(format!(
                "ERR unknown command '{}', with args beginning with: ",
                String::from_utf8_lossy(&args[0])
            ))),
            Some(a) if (a >= 0 && args.len() as i64 != a) || (a < 0 && (args.len() as i64) < -a) => {
                Err(error(format!(
                    "ERR wrong number of arguments for '{}' command",
                    name.to_ascii_lowercase()
                )))
            }
            Some(_) if queueing && name == "WATCH" => Err(error("ERR WATCH inside MULTI is not allowed")),
            Some(_) => Ok(()),
        };
        if let Err(e) = check {
            if let Some(m) = &mut self.multi {
                m.dirty = true;
            }
            return vec![e];
        }
        if !self.authed && !matches!(name, "AUTH" | "HELLO" | "QUIT" | "RESET") {
            return vec![error("NOAUTH Authentication required.")];
        }
        if queueing {
            if let Some(m) = &mut self.multi {
                m.queued.push(args.to_vec());
            }
            return vec![status("QUEUED")];
        }
        let resp2_sub = self.protocol == Protocol::Resp2 && self.subscribed();
        if resp2_sub && !matches!(name, "PING" | "QUIT" | "RESET") && !name.ends_with("SUBSCRIBE") {
            return vec![error(format!(
                "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
                name.to_ascii_lowercase()
            ))];
        }
        self.run(name, args)
    }

    fn run(&mut self, name: &str, args: &[Bytes]) -> Vec<Value> {
        let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
        match name {
            "PING" if self.protocol == Protocol::Resp2 && self.subscribed() => {
                vec![Value::Array(vec![bulk("pong"), bulk(arg(1))])]
            }
            "PING" if args.len() > 1 => vec![bulk(arg(1))],
            "PING" => vec![status("PONG")],
            "ECHO" => vec![bulk(arg(1))],
            "QUIT" => vec![status("OK")],
            "SET" => {
                let key = arg(1);
                self.data.insert(key.clone(), arg(2));
                let mut frames = Vec::new();
                if self.tracking && self.tracked.remove(&key) {
                    frames.push(Value::Push(vec![bulk("invalidate"), Value::Array(vec![bulk(key)])]));
                }
                frames.push(status("OK"));
                frames
            }
            "GET" => {
                if self.tracking {
                    self.tracked.insert(arg(1));
                }
                vec![self.data.get(&arg(1)).cloned().map_or(Value::Null, bulk)]
            }
            "INCR" => {
                let current = self.data.get(&arg(1)).map_or(Some(0), |v| {
                    std::str::from_utf8(v).ok().and_then(|s| s.parse::<i64>().ok())
                });
                match current.and_then(|n| n.checked_add(1)) {
                    Some(n) => {
                        self.data.insert(arg(1), Bytes::from(n.to_string()));
                        vec![Value::Integer(n)]
                    }
                    None => vec![error("ERR value is not an integer or out of range")],
                }
            }
            "DEL" => {
                let n = args[1..].iter().filter(|k| self.data.remove(*k).is_some()).count();
                vec![Value::Integer(n as i64)]
            }
            "FLUSHALL" => {
                self.data.clear();
                let mut frames = Vec::new();
                if self.tracking {
                    self.tracked.clear();
                    frames.push(Value::Push(vec![bulk("invalidate"), Value::Null]));
                }
                frames.push(status("OK"));
                frames
            }
            "SELECT" => match std::str::from_utf8(&arg(1)).ok().and_then(|s| s.parse::<i64>().ok()) {
                Some(n) if (0..16).contains(&n) => {
                    self.db = n;
                    vec![status("OK")]
                }
                _ => vec![error("ERR DB index is out of range")],
            },
            "AUTH" => {
                let (user, pass) = if args.len() == 3 {
                    (arg(1), arg(2))
                } else {
                    (Bytes::from_static(b"default"), arg(1))
                };
                match self.authenticate(&user, &pass) {
                    Ok(()) => vec![status("OK")],
                    Err(e) => vec![e],
                }
            }
            "HELLO" => self.hello(args),
            "CLIENT" => {
                let sub = String::from_utf8_lossy(&arg(1)).to_ascii_uppercase();
                match (sub.as_str(), args.len()) {
                    ("SETNAME", 3) => {
                        self.name = Some(arg(2));
                        vec![status("OK")]
                    }
                    ("GETNAME", 2) => vec![self.name.clone().map_or(Value::Null, bulk)],
                    ("ID", 2) => vec![Value::Integer(7)],
                    ("TRACKING", 3) => {
                        self.tracking = arg(2).eq_ignore_ascii_case(b"on");
                        vec![status("OK")]
                    }
                    _ => vec![error("ERR unknown subcommand")],
                }
            }
            "SUBSCRIBE" | "PSUBSCRIBE" | "SSUBSCRIBE" | "UNSUBSCRIBE" | "PUNSUBSCRIBE" | "SUNSUBSCRIBE" => {
                self.subscribe(name, &args[1..])
            }
            "PUBLISH" => {
                let mut frames = self.deliveries(arg(1), arg(2));
                frames.push(Value::Integer(frames.len() as i64));
                frames
            }
            "MULTI" if self.multi.is_some() => vec![error("ERR MULTI calls can not be nested")],
            "MULTI" => {
                self.multi = Some(Multi::default());
                vec![status("OK")]
            }
            "DISCARD" => match self.multi.take() {
                Some(_) => {
                    self.watching = false;
                    vec![status("OK")]
                }
                None => vec![error("ERR DISCARD without MULTI")],
            },
            "EXEC" => self.exec(),
            "WATCH" => {
                self.watching = true;
                vec![status("OK")]
            }
            "UNWATCH" => {
                self.watching = false;
                vec![status("OK")]
            }
            "RESET" => {
                self.protocol = Protocol::Resp2;
                self.channels.clear();
                self.patterns.clear();
                self.shards.clear();
                self.multi = None;
                self.watching = false;
                self.tracking = false;
                self.authed = self.config.password.is_none();
                self.db = 0;
                vec![status("RESET")]
            }
            _ => vec![error("ERR not implemented by the fake server")],
        }
    }

    fn hello(&mut self, args: &[Bytes]) -> Vec<Value> {
        match self.config.hello {
            HelloMode::Unknown => {
                return vec![error(format!(
                    "ERR unknown command 'HELLO', with args beginning with: '{}' ",
                    String::from_utf8_lossy(&args.get(1).cloned().unwrap_or_default())
                ))]
            }
            HelloMode::NoProto => return vec![error("NOPROTO sorry, this protocol version is not supported.")],
            HelloMode::Resp3 => {}
        }
        let protocol = match args.get(1).map(|b| &b[..]) {
            None => self.protocol,
            Some(b"2") => Protocol::Resp2,
            Some(b"3") => Protocol::Resp3,
            Some(_) => return vec![error("NOPROTO unsupported protocol version")],
        };
        let mut i = 2;
        let mut setname = None;
        while i < args.len() {
            let opt = args[i].to_ascii_uppercase();
            if opt == b"AUTH" && i + 2 < args.len() {
                if let Err(e) = self.authenticate(&args[i + 1].clone(), &args[i + 2].clone()) {
                    return vec![e];
                }
                i += 3;
            } else if opt == b"SETNAME" && i + 1 < args.len() {
                setname = Some(args[i + 1].clone());
                i += 2;
            } else {
                return vec![error("ERR Syntax error in HELLO option")];
            }
        }
        if !self.authed {
            return vec![error(
                "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used",
            )];
        }
        if setname.is_some() {
            self.name = setname;
        }
        self.protocol = protocol;
        let proto = match protocol {
            Protocol::Resp2 => 2,
            Protocol::Resp3 => 3,
        };
        vec![Value::Map(vec![
            (bulk("server"), bulk("redis")),
            (bulk("version"), bulk("7.2.4")),
            (bulk("proto"), Value::Integer(proto)),
            (bulk("id"), Value::Integer(7)),
            (bulk("mode"), bulk("standalone")),
            (bulk("role"), bulk("master")),
            (bulk("modules"), Value::Array(Vec::new())),
        ])]
    }

    fn subscribe(&mut self, name: &str, channels: &[Bytes]) -> Vec<Value> {
        let kind = Bytes::from(name.to_ascii_lowercase());
        let shard = matches!(name, "SSUBSCRIBE" | "SUNSUBSCRIBE");
        let subscribe = !name.contains("UNSUB");
        let set = match name {
            "SUBSCRIBE" | "UNSUBSCRIBE" => &mut self.channels,
            "PSUBSCRIBE" | "PUNSUBSCRIBE" => &mut self.patterns,
            _ => &mut self.shards,
        };
        let targets: Vec<Option<Bytes>> = if !subscribe && channels.is_empty() {
            if set.is_empty() {
                vec![None]
            } else {
                set.iter().cloned().map(Some).collect()
            }
        } else {
            channels.iter().cloned().map(Some).collect()
        };
        let mut frames = Vec::new();
        for target in targets {
            if let Some(ch) = &target {
                let set = match name {
                    "SUBSCRIBE" | "UNSUBSCRIBE" => &mut self.channels,
                    "PSUBSCRIBE" | "PUNSUBSCRIBE" => &mut self.patterns,
                    _ => &mut self.shards,
                };
                if subscribe {
                    set.insert(ch.clone());
                } else {
                    set.remove(ch);
                }
            }
            let count = if shard {
                self.shards.len()
            } else {
                self.channels.len() + self.patterns.len()
            };
            frames.push(Value::Push(vec![
                bulk(kind.clone()),
                target.map_or(Value::Null, bulk),
                Value::Integer(count as i64),
            ]));
        }
        frames
    }

    fn exec(&mut self) -> Vec<Value> {
        let Some(multi) = self.multi.take() else {
            return vec![error("ERR EXEC without MULTI")];
        };
        let watched = std::mem::take(&mut self.watching);
        if multi.dirty {
            return vec![error("EXECABORT Transaction discarded because of previous errors.")];
        }
        if watched && std::mem::take(&mut self.watch_broken) {
            return vec![Value::Null];
        }
        let mut frames = Vec::new();
        let mut results = Vec::new();
        for args in multi.queued {
            let name = String::from_utf8_lossy(&args[0]).to_ascii_uppercase();
            let mut out = self.run(&name, &args);
            let reply = out.pop().unwrap_or(Value::Null);
            frames.extend(out);
            results.push(reply);
        }
        frames.push(Value::Array(results));
        frames
    }
}

impl Session for FakeServer {
    type Event = Vec<Bytes>;

    fn handle_input(&mut self, data: Bytes, now: Instant) {
        self.input.push(data);
        while let Ok(Some(value)) = self.decoder.decode(&mut self.input) {
            let args: Option<Vec<Bytes>> = value
                .as_elements()
                .map(|items| items.iter().filter_map(|v| v.as_bytes().cloned()).collect());
            match args {
                Some(args) if !args.is_empty() => self.dispatch(args, now),
                _ => self.send(&error("ERR Protocol error: expected an array of bulk strings"), now),
            }
        }
    }

    fn handle_eof(&mut self, _now: Instant) {}

    fn handle_timeout(&mut self, now: Instant) {
        while self.delayed.front().is_some_and(|d| d.0 <= now) {
            if let Some((_, bytes)) = self.delayed.pop_front() {
                self.out.put_slice(&bytes);
            }
        }
    }

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        (!self.out.is_empty()).then_some(&mut self.out)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.delayed.front().map(|d| d.0)
    }

    fn poll_event(&mut self) -> Option<Vec<Bytes>> {
        self.log.pop_front()
    }

    fn is_closed(&self) -> bool {
        false
    }
}
