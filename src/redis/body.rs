//! The Redis side of the shared client body ([`crate::link::Body`]): what the client
//! keeps besides the link (the batch of requests, the event queue, what the last
//! connection handed over),
//! what a connection's events become, what a new connection replays, and what a lost
//! one fails. The RESP2 subscriber-mode and `MULTI` rules are `resp::Connection`'s.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use monocoque_proto::chassis::link::Rng;
use monocoque_proto::resp::{self, Connection, Protocol as Resp, ReconnectState, Tape, Value};

use super::batch::Batch;
use super::event::{Event, EventQueue, Invalidation, Message};
use super::{ClientOptions, Error, LinkError, ServerError};
use crate::link::{self, Cx, OneServer, Protocol, TcpKeepalive};

/// The body of a Redis client: the shared link machinery over the [`Redis`] state.
pub(crate) type Inner<D> = link::Body<D, Redis>;

/// The current connection, with what the client keeps per connection.
pub(crate) type Link = link::Link<Error, OnLink>;

/// Everything the client keeps besides the link.
pub(crate) struct Redis {
    pub(crate) options: ClientOptions,
    pub(crate) batch: Batch,
    pub(crate) events: EventQueue,
    /// What the last connection handed over (subscriptions, tracking, its protocol)
    /// for the next one to restore; `None` before the first connection is lost.
    pub(crate) carry: Option<ReconnectState>,
    /// The protocol of the current (or last) connection.
    pub(crate) protocol: Resp,
    /// The first unsent request waits for a liveness check
    /// ([`ClientOptions::idle_check`]).
    pub(crate) check_liveness: bool,
    /// The clock read by the first request buffered since the last driver turn, reused
    /// by the next ones (one clock read per batch, not per command).
    pub(crate) batch_clock: Option<Instant>,
    /// Holds one owned outcome at a time for a visit, which reads every reply through
    /// a [`TapeRef`](resp::TapeRef) (kept for its allocations).
    pub(crate) scratch: Tape,
}

impl Redis {
    /// The state of a client with `options`, before its first connection.
    pub(crate) fn new(options: ClientOptions) -> Self {
        Self {
            events: EventQueue::new(options.max_event_bytes),
            protocol: options.protocol,
            options,
            batch: Batch::default(),
            carry: None,
            check_liveness: false,
            batch_clock: None,
            scratch: Tape::new(),
        }
    }

    /// A request on the current connection ended.
    pub(crate) fn complete(&mut self, link: &mut Link, id: resp::RequestId, outcome: Result<Value, Error>) {
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

    /// A fresh session, or one that restores what the last connection handed over
    /// (subscriptions, tracking) right after its handshake.
    fn session(&mut self, _: &OneServer, _: &mut Rng, now: Instant) -> Result<Connection, Error> {
        let config = self.options.connection_config();
        Ok(match &self.carry {
            Some(state) => Connection::resume(config, state.clone(), now),
            None => Connection::new(config, now),
        })
    }

    fn server_name(&self, _: &OneServer) -> String {
        self.options.address()
    }

    fn on_event(&mut self, cx: &mut Cx<'_, Self>, event: resp::Event) {
        match event {
            resp::Event::Reply { id, value } => self.complete(cx.link, id, reply_outcome(value)),
            resp::Event::Failed { id, error } => self.complete(cx.link, id, Err(Error::from(error))),
            resp::Event::Connected { protocol, hello } => {
                cx.link.state.hello = hello;
                self.protocol = protocol;
                // Every connection after the first says so, and one that restores
                // tracking invalidates everything (the server forgot what was read).
                if cx.up().is_some_and(|n| n > 1) {
                    self.events.push(Event::Reconnected);
                    if self.carry.as_ref().is_some_and(|c| c.tracking().is_some()) {
                        self.events.push(Event::Invalidate(Invalidation { keys: None }));
                    }
                }
            }
            resp::Event::Message { kind, channel, payload } => {
                self.events.push(Event::Message(Message { kind, channel, payload }));
            }
            resp::Event::Invalidate { keys } => self.events.push(Event::Invalidate(Invalidation { keys })),
            resp::Event::Push(value) => self.events.push(Event::Push(value)),
            resp::Event::RestoreFailed { reply } => {
                let text = reply.without_attributes().as_error().cloned().unwrap_or_default();
                self.events.push(Event::RestoreFailed(ServerError::new(&text)));
            }
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

    /// Every request still on the link fails, what the session hands over is kept for
    /// the next connection, and a transaction cut by the loss fails whole.
    fn buried(&mut self, mut link: Link, session: Option<Connection>, lost: &Error) {
        for (_, seq) in link.state.inflight.drain(..) {
            self.batch.complete(seq, Err(lost.clone()));
        }
        // A link that never finished restoring hands over the old set too.
        if let Some(mut session) = session {
            let mut state = session.take_reconnect_state();
            // A transaction's MULTI gone with the connection: its remaining commands
            // must not run on their own on the next one.
            while let Some(request) = self.batch.next_unsent() {
                if !state.in_cut_transaction(request.name()) {
                    break;
                }
                self.batch.fail_next_unsent(lost.clone());
            }
            self.carry = Some(state);
        }
    }

    fn driver_lost(error: &Error) -> Error {
        error.clone()
    }

    /// The batch is dropped (the link, and what was on it, is gone already).
    fn aborted(&mut self) {
        self.batch.clear();
    }

    fn turned(&mut self) {
        self.batch_clock = None;
    }
}

/// What a reply means to the caller: an error reply is an [`Error::Server`].
pub(crate) fn reply_outcome(value: Value) -> Result<Value, Error> {
    match value.without_attributes().as_error() {
        Some(text) => Err(Error::Server(ServerError::new(text))),
        None => Ok(value),
    }
}
