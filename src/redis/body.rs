//! The Redis side of the shared client body ([`crate::link::Body`]): what the client
//! keeps besides the link (the batch of requests, the event queue, what to restore),
//! what a connection's events become, what a new connection replays, and what a lost
//! one fails; with the RESP2 subscriber-mode and `MULTI` rules the client applies.

use std::collections::{BTreeSet, VecDeque};
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::chassis::link::Rng;
use monocoque_proto::resp::{self, Cmd, Connection, Protocol as Resp, Subscriptions, Value};

use super::batch::Batch;
use super::event::{Event, EventQueue, Invalidation, Message};
use super::{ClientOptions, Error, LinkError, ServerError};
use crate::link::{self, Cx, DialError, OneServer, Protocol, TcpKeepalive};

/// The body of a Redis client: the shared link machinery over the [`Redis`] state.
pub(crate) type Inner<D> = link::Body<D, Redis>;

/// The current connection, with what the client keeps per connection.
pub(crate) type Link = link::Link<Error, OnLink>;

/// Commands a RESP2 connection accepts in subscriber mode.
pub(crate) const SUBSCRIBER_MODE_COMMANDS: [&[u8]; 9] = [
    b"SUBSCRIBE",
    b"PSUBSCRIBE",
    b"SSUBSCRIBE",
    b"UNSUBSCRIBE",
    b"PUNSUBSCRIBE",
    b"SUNSUBSCRIBE",
    b"PING",
    b"QUIT",
    b"RESET",
];

/// Everything the client keeps besides the link.
pub(crate) struct Redis {
    pub(crate) options: ClientOptions,
    pub(crate) batch: Batch,
    pub(crate) events: EventQueue,
    /// Subscriptions and tracking to restore on the next connection.
    pub(crate) restore: Restore,
    /// The protocol of the last connection (RESP2 subscriber mode is checked with it
    /// while disconnected).
    pub(crate) protocol: Resp,
    /// A RESP2 subscribe was buffered: treat the connection as in subscriber mode until
    /// the batch settles.
    pub(crate) subscribing: bool,
    /// The first unsent request waits for a liveness check
    /// ([`ClientOptions::idle_check`]).
    pub(crate) check_liveness: bool,
    /// The clock read by the first request buffered since the last driver turn, reused
    /// by the next ones (one clock read per batch, not per command).
    pub(crate) batch_clock: Option<Instant>,
}

impl Redis {
    /// The state of a client with `options`, before its first connection.
    pub(crate) fn new(options: ClientOptions) -> Self {
        Self {
            events: EventQueue::new(options.max_event_bytes),
            protocol: options.protocol,
            options,
            batch: Batch::default(),
            restore: Restore::default(),
            subscribing: false,
            check_liveness: false,
            batch_clock: None,
        }
    }

    /// After a batch completed: the RESP2 subscriber-mode hint follows what the server
    /// confirmed.
    pub(crate) fn settle(&mut self) {
        self.subscribing = false;
    }

    /// Notes a subscribe on its way (RESP2 subscriber mode starts with it).
    pub(crate) fn note_subscribe(&mut self, name: Option<&[u8]>) {
        if let Some(name) = name {
            let is = |s: &[u8]| name.eq_ignore_ascii_case(s);
            if is(b"SUBSCRIBE") || is(b"PSUBSCRIBE") || is(b"SSUBSCRIBE") {
                self.subscribing = true;
            }
        }
    }

    /// A request on the current connection ended.
    fn complete(&mut self, link: &mut Link, id: resp::RequestId, outcome: Result<Value, Error>) {
        if !link.state.restoring.is_empty() {
            if let Some(pos) = link.state.restoring.iter().position(|r| *r == id) {
                link.state.restoring.swap_remove(pos);
                if let Err(Error::Server(e)) = outcome {
                    self.events.push(Event::RestoreFailed(e));
                }
                return;
            }
        }
        // Outcomes come in send order, so this is nearly always the front.
        let seq = match link.state.inflight.front() {
            Some(&(front, seq)) if front == id => {
                link.state.inflight.pop_front();
                seq
            }
            _ => match link.state.inflight.binary_search_by_key(&id, |(i, _)| *i) {
                Ok(pos) => match link.state.inflight.remove(pos) {
                    Some((_, seq)) => seq,
                    None => return,
                },
                Err(_) => return,
            },
        };
        self.batch.complete(seq, outcome);
    }
}

/// What the client keeps per connection.
#[derive(Debug, Default)]
pub(crate) struct OnLink {
    /// The server's reply to `HELLO`.
    pub(crate) hello: Option<Value>,
    /// Requests on this connection: (its id, the batch sequence number), in send order.
    pub(crate) inflight: VecDeque<(resp::RequestId, u64)>,
    /// Restore commands (resubscribe, tracking) on this connection, awaiting replies.
    restoring: Vec<resp::RequestId>,
    /// A `MULTI` was sent and its `EXEC`/`DISCARD` not yet.
    in_multi: bool,
}

/// What a new connection must restore.
#[derive(Debug, Default, Clone)]
pub(crate) struct Restore {
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shard_channels: BTreeSet<Bytes>,
    /// The `CLIENT TRACKING ON ...` command in force.
    pub(crate) tracking: Option<Cmd>,
}

impl Restore {
    fn set_subscriptions(&mut self, subs: &Subscriptions, merge: bool) {
        if !merge {
            self.channels.clear();
            self.patterns.clear();
            self.shard_channels.clear();
        }
        self.channels.extend(subs.channels().cloned());
        self.patterns.extend(subs.patterns().cloned());
        self.shard_channels.extend(subs.shard_channels().cloned());
    }

    /// Whether anything is subscribed.
    pub(crate) fn has_subscriptions(&self) -> bool {
        !self.channels.is_empty() || !self.patterns.is_empty() || !self.shard_channels.is_empty()
    }

    fn commands(&self) -> Vec<Cmd> {
        let mut out: Vec<Cmd> = [
            ("SUBSCRIBE", &self.channels),
            ("PSUBSCRIBE", &self.patterns),
            ("SSUBSCRIBE", &self.shard_channels),
        ]
        .into_iter()
        .filter(|(_, set)| !set.is_empty())
        .map(|(name, set)| Cmd::new(name).args(set.iter()))
        .collect();
        out.extend(self.tracking.clone());
        out
    }
}

/// Tracks `MULTI` ... `EXEC`/`DISCARD` sent on `link` (`name`: the command's).
pub(crate) fn note_multi(link: &mut Link, name: Option<&[u8]>) {
    let Some(name) = name else { return };
    if name.eq_ignore_ascii_case(b"MULTI") {
        link.state.in_multi = true;
    } else if name.eq_ignore_ascii_case(b"EXEC")
        || name.eq_ignore_ascii_case(b"DISCARD")
        || name.eq_ignore_ascii_case(b"RESET")
    {
        link.state.in_multi = false;
    }
}

impl Protocol for Redis {
    type Session = Connection;
    type Server = OneServer;
    type Lost = Error;
    type State = OnLink;
    type Error = Error;

    fn address(&self, _: &OneServer) -> (String, u16) {
        (self.options.host.clone(), self.options.port)
    }

    fn connect_timeout(&self) -> Duration {
        self.options.link.connect_timeout
    }

    fn keepalive(&self) -> Option<TcpKeepalive> {
        self.options.link.tcp_keepalive
    }

    fn session(&mut self, _: &OneServer, _: &mut Rng, now: Instant) -> Result<Connection, Error> {
        Ok(Connection::new(self.options.connection_config(), now))
    }

    fn dial_failed(&self, _: &OneServer, error: DialError<Error>, given: Duration) -> Error {
        match error {
            // What a timeout reports: the time the TCP connect was given.
            DialError::TimedOut => Error::from(LinkError::ConnectTimeout {
                server: self.options.address(),
                timeout: given,
            }),
            DialError::Io(e) => Error::from(LinkError::Connect {
                server: self.options.address(),
                source: Arc::new(e),
            }),
            DialError::Session(e) => e,
        }
    }

    /// Subscriptions and tracking, sent right after the handshake.
    fn started(&mut self, session: &mut Connection, link: &mut Link) {
        let now = Instant::now();
        for cmd in &self.restore.commands() {
            if let Ok(id) = session.send_buffered(cmd, now) {
                link.state.restoring.push(id);
            }
        }
    }

    fn on_event(&mut self, cx: &mut Cx<'_, Self>, event: resp::Event) {
        match event {
            resp::Event::Reply { id, value } => {
                let outcome = match value.without_attributes().as_error() {
                    Some(text) => Err(Error::Server(ServerError::new(text))),
                    None => Ok(value),
                };
                self.complete(cx.link, id, outcome);
            }
            resp::Event::Failed { id, error } => self.complete(cx.link, id, Err(Error::from(error))),
            resp::Event::Connected { protocol, hello } => {
                cx.link.state.hello = hello;
                self.protocol = protocol;
                // Every connection after the first says so, and one that restores
                // tracking invalidates everything (the server forgot what was read).
                if cx.up().is_some_and(|n| n > 1) {
                    self.events.push(Event::Reconnected);
                    if self.restore.tracking.is_some() {
                        self.events.push(Event::Invalidate(Invalidation { keys: None }));
                    }
                }
            }
            resp::Event::Message { kind, channel, payload } => {
                self.events.push(Event::Message(Message { kind, channel, payload }));
            }
            resp::Event::Invalidate { keys } => self.events.push(Event::Invalidate(Invalidation { keys })),
            resp::Event::Push(value) => self.events.push(Event::Push(value)),
            resp::Event::Poisoned(error) => cx.kill(Error::from(error)),
        }
    }

    fn drained(&mut self, session: &Connection) {
        if session.is_connected() {
            // A user's `HELLO 2|3` or `RESET` changes it after the handshake.
            self.protocol = session.protocol();
        }
    }

    fn ended(session: &Connection) -> Option<Error> {
        session
            .is_closed()
            .then(|| Error::from(session.error().cloned().unwrap_or(resp::ConnectionError::Closed)))
    }

    fn closed() -> Error {
        Error::Connection(resp::ConnectionError::Closed)
    }

    fn handshake_timeout(&self) -> Error {
        Error::from(LinkError::ConnectTimeout {
            server: self.options.address(),
            timeout: self.options.link.connect_timeout,
        })
    }

    fn failure(lost: Error) -> Error {
        lost
    }

    /// Every request still on the link fails, what it was subscribed to is kept for the
    /// next connection, and a transaction cut by the loss fails whole.
    fn buried(&mut self, mut link: Link, session: Option<Connection>, lost: &Error) {
        if let Some(session) = &session {
            // A link that never finished restoring keeps the old set too.
            let merge = !link.state.restoring.is_empty() || !link.ready;
            self.restore.set_subscriptions(session.subscriptions(), merge);
        }
        for (_, seq) in link.state.inflight.drain(..) {
            self.batch.complete(seq, Err(lost.clone()));
        }
        if link.state.in_multi {
            // The transaction's MULTI is gone with the connection: its remaining
            // commands must not run on their own on the next one.
            while let Some(request) = self.batch.next_unsent() {
                let ends = request
                    .name()
                    .is_some_and(|n| n.eq_ignore_ascii_case(b"EXEC") || n.eq_ignore_ascii_case(b"DISCARD"));
                self.batch.fail_next_unsent(lost.clone());
                if ends {
                    break;
                }
            }
        }
    }

    fn driver_failed(error: io::Error) -> (Error, Error) {
        let error = Error::from(LinkError::Driver(Arc::new(error)));
        (error.clone(), error)
    }

    /// The batch is dropped (the link, and what was on it, is gone already).
    fn aborted(&mut self) {
        self.batch.clear();
        self.settle();
    }

    fn turned(&mut self) {
        self.batch_clock = None;
    }
}
