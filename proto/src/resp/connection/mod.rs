//! The Redis client connection: a sans-IO state machine that pipelines commands,
//! correlates replies, routes pushes, and poisons itself when the stream can no longer
//! be trusted.
//!
//! See [`Connection`] for the manual.

mod config;
mod error;
mod event;
mod handshake;
mod health;
mod pubsub;
mod queue;
mod receive;
mod reconnect;
mod subscriber_mode;
mod visit;

#[cfg(test)]
mod fake_server;
#[cfg(test)]
mod health_tests;
#[cfg(test)]
mod reconnect_tests;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::time::Instant;

use bytes::Bytes;

pub use config::ConnectionConfig;
pub use error::{
    ConnectionError, HandshakeCommand, HandshakeError, QueueRejection, RequestError, SendError, TransactionAborted,
};
pub use event::{Event, RequestId};
pub use pubsub::{MessageKind, Subscriptions};
pub use reconnect::ReconnectState;
pub use subscriber_mode::SUBSCRIBER_MODE_COMMANDS;

use pubsub::SubCommand;
use queue::{Entry, Extra, Extras, Fate, Fifo, Kind, Request, Role, Subscribing};
use reconnect::Restoring;

use crate::chassis::{Backpressure, BytePermits, IoArena, PoisonGuard, SegmentedBuffer, SentWatch, Session};
use crate::resp::{Cmd, Protocol, Tape, TapeDecoder, Value};

/// `*1\r\n$5\r\nMULTI\r\n`.
const MULTI: &[u8] = b"*1\r\n$5\r\nMULTI\r\n";
/// `*1\r\n$4\r\nEXEC\r\n`.
const EXEC: &[u8] = b"*1\r\n$4\r\nEXEC\r\n";
/// `*1\r\n$4\r\nPING\r\n`: the health check.
const PING: &[u8] = b"*1\r\n$4\r\nPING\r\n";

/// A Redis client connection, sans I/O.
///
/// It is driven by the chassis run-loop rule (see
/// [`Session`](crate::Session)): feed it received bytes, end of stream and timer expiry;
/// drain its transmit arena, its events and its timer. It never reads the clock or does
/// I/O. A blocking body uses it like this:
///
/// 1. [`send_buffered`](Self::send_buffered) as many commands as it likes (each
///    returns a [`RequestId`]), or a [`send_transaction`](Self::send_transaction);
/// 2. flush [`poll_transmit`](Self::poll_transmit) to the socket;
/// 3. feed replies with [`handle_input`](Self::handle_input) and pump
///    [`poll_event`](Self::poll_event) until every id it waits for has its
///    [`Event::Reply`] or [`Event::Failed`].
///
/// ```
/// use std::time::Instant;
/// use bytes::Bytes;
/// use monocoque_proto::resp::{Cmd, Connection, ConnectionConfig, Event, Protocol, Value};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let now = Instant::now();
/// let config = ConnectionConfig { protocol: Protocol::Resp2, ..ConnectionConfig::default() };
/// let mut conn = Connection::new(config, now); // RESP2, no password: nothing to negotiate
/// assert!(matches!(conn.poll_event(), Some(Event::Connected { .. })));
///
/// let id = conn.send_buffered(&Cmd::new("GET").arg("k"), now)?;
/// let arena = conn.poll_transmit().expect("the GET is waiting");
/// assert_eq!(arena.to_vec(), b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
/// let sent = arena.len(); // what the kernel took
/// arena.advance(sent);
///
/// conn.handle_input(Bytes::from_static(b"$1\r\nv\r\n"), now)?;
/// assert_eq!(conn.poll_event(), Some(Event::Reply { id, value: Value::from("v") }));
/// # Ok(())
/// # }
/// ```
///
/// ## What it handles
///
/// - **Handshake.** `HELLO 3` (with `AUTH` and `SETNAME`) and `SELECT`, falling back to
///   RESP2 (`AUTH`, `CLIENT SETNAME`, `SELECT`) when the server refuses `HELLO`.
///   Commands sent before it completes are held and released in order after it, so
///   they never run unauthenticated or on the wrong database.
/// - **Correlation.** A FIFO matches replies to requests in order. RESP3 pushes and
///   RESP2 pub/sub frames never complete a request; subscribe-family commands are
///   completed by their confirmations; `send_transaction`'s `+OK`/`+QUEUED` replies are
///   consumed internally.
/// - **Time.** Requests time out individually; a reply half received when its deadline
///   passes poisons the connection.
/// - **Health.** With [`ConnectionConfig::health_check_interval`], an idle connection
///   sends its own `PING` (the reply is consumed here); with
///   [`ConnectionConfig::health_check_timeout`], a server silent that long while a reply
///   is owed poisons the connection with [`ConnectionError::Stale`]. Both instants are
///   part of [`poll_timeout`](Self::poll_timeout).
/// - **Poison.** Decode errors, replies with no request, stalled frames, end of stream and
///   handshake failures are fatal: every pending request fails with the same
///   [`ConnectionError`], and so does every later call.
/// - **Bounds.** Pending requests, outgoing bytes and reply sizes are all limited.
/// - **RESP2 subscriber mode.** From the moment a subscribe is queued until everything
///   is unsubscribed, a RESP2 connection refuses commands the server would refuse
///   ([`SendError::SubscriberMode`], see [`admits`](Self::admits)).
/// - **Reconnecting.** [`take_reconnect_state`](Self::take_reconnect_state) takes what
///   a lost connection had (subscriptions, `CLIENT TRACKING`, its protocol, whether it
///   was inside a `MULTI`); [`resume`](Self::resume) starts a new one that restores it
///   after the handshake.
///
/// ## Methods
///
/// They come in four families, in the order a driver uses them (as in
/// `quinn-proto`):
///
/// - **getters**: [`config`](Self::config), [`protocol`](Self::protocol),
///   [`is_connected`](Self::is_connected), [`hello`](Self::hello),
///   [`subscriptions`](Self::subscriptions), [`tracking`](Self::tracking),
///   [`in_multi`](Self::in_multi), [`admits`](Self::admits), [`pending`](Self::pending),
///   [`outgoing_len`](Self::outgoing_len), [`error`](Self::error),
///   [`wants_read`](Self::wants_read), [`is_closed`](Self::is_closed);
/// - **input**: [`handle_input`](Self::handle_input), [`handle_eof`](Self::handle_eof),
///   [`handle_timeout`](Self::handle_timeout), each taking `now`;
/// - **mutators**: [`send_buffered`](Self::send_buffered),
///   [`send_transaction`](Self::send_transaction), [`abandon`](Self::abandon),
///   [`take_reconnect_state`](Self::take_reconnect_state),
///   [`report_sent`](Self::report_sent), [`report_room`](Self::report_room);
/// - **output**: [`poll_transmit`](Self::poll_transmit), [`poll_event`](Self::poll_event),
///   [`poll_timeout`](Self::poll_timeout), to drain after every input;
/// - **visiting** (replies without building values): [`defer_input`](Self::defer_input),
///   [`is_input_deferred`](Self::is_input_deferred), then
///   [`visit_replies`](Self::visit_replies), which hands plain requests' replies over as
///   borrowed [`TapeRef`](crate::resp::TapeRef)s decoded onto a tape.
///
/// It also implements [`Session`], so any driver and [`sim::Pair`](crate::sim::Pair) can
/// run it.
#[derive(Debug)]
pub struct Connection {
    config: ConnectionConfig,
    /// The protocol the server speaks to us now.
    protocol: Protocol,
    /// `HELLO 3` commands in flight: their replies (and later ones) may be RESP3.
    hello3_in_flight: usize,
    /// Handshake replies still expected; the handshake is over at zero.
    handshake_outstanding: usize,
    /// Whether [`Event::Connected`] was emitted.
    connected: bool,
    /// The server's `HELLO` reply.
    hello: Option<Value>,
    /// One decoder for both paths: owned values (`decode_value`) as input arrives, or
    /// a tape of borrowed replies for [`visit_replies`](Self::visit_replies).
    decoder: TapeDecoder,
    /// The tape a visit decodes onto, kept for its allocations.
    tape: Tape,
    /// Received input is held back for a visit ([`defer_input`](Self::defer_input)).
    deferred: bool,
    input: SegmentedBuffer,
    /// Bytes for the kernel.
    transmit: IoArena,
    /// User commands encoded during the handshake, released after it.
    held: IoArena,
    /// The high-water mark on `transmit` + `held`.
    permits: BytePermits,
    /// Entries whose bytes are in `transmit` (or already sent).
    fifo: Fifo,
    /// Entries whose bytes are in `held`.
    held_fifo: Fifo,
    /// What the tracking and subscribe-family requests of both FIFOs carry.
    extras: Extras,
    events: VecDeque<Event>,
    guard: PoisonGuard<ConnectionError>,
    /// The last id handed out.
    last_id: u64,
    /// User requests whose reply has not been consumed yet.
    pending: usize,
    subscriptions: Subscriptions,
    /// A `MULTI` sent with `send_buffered` has no `EXEC`/`DISCARD` yet.
    in_multi: bool,
    /// Subscribe commands (not unsubscribes) queued whose confirmations are not all in:
    /// on RESP2 the connection is in subscriber mode from the moment one is queued.
    pending_subscribes: usize,
    /// The `CLIENT TRACKING ON ...` command in force (confirmed by `+OK`, or carried
    /// from a lost connection), replayed on the next one.
    tracking: Option<Cmd>,
    /// The protocol RESP2 subscriber mode is judged with until the handshake
    /// completes: the lost connection's when resumed, else the one asked for.
    assumed_protocol: Protocol,
    /// What [`resume`](Self::resume) is restoring.
    restoring: Restoring,
    /// What the current `send_transaction` collected before its `EXEC` reply.
    transaction: Option<TransactionReplies>,
    /// Since when the server has given no sign of life that counts: the last byte
    /// received, the moment a reply became owed on an idle connection, or the last
    /// time the kernel was seen taking outgoing bytes.
    quiet_since: Instant,
    /// `transmit.len()` at the end of the last call: a shorter arena at the start of
    /// the next one means the kernel took bytes in between.
    transmit_mark: usize,
    /// When `transmit_mark` was taken.
    transmit_mark_at: Instant,
    /// Whether the body waits to hear of a write ([`Session::handle_sent`]).
    sent_watch: SentWatch,
}

/// Replies to a `send_transaction`'s `MULTI` and commands that were not as expected.
#[derive(Debug, Default)]
struct TransactionReplies {
    multi: Option<Value>,
    rejected: Vec<QueueRejection>,
}

/// What a command's name says about how it is answered.
enum Special {
    None,
    Subscribe(SubCommand),
    Multi,
    EndMulti,
    Reset,
    Hello(Option<Protocol>),
    /// `CLIENT TRACKING ...`.
    Tracking,
    /// A command the server may hold back for long (`BLPOP`, `WAIT`, ...).
    Blocking,
    Unsupported,
}

impl Connection {
    /// A connection that has just been opened: the handshake is queued in the transmit
    /// arena, to be flushed before anything else. With RESP2 and nothing to
    /// authenticate, name or select, it is connected at once ([`Event::Connected`] is
    /// already waiting).
    pub fn new(config: ConnectionConfig, now: Instant) -> Self {
        let mut decoder_config = config.decoder.clone();
        decoder_config.protocol = config.protocol;
        let mut conn = Self {
            protocol: Protocol::Resp2,
            hello3_in_flight: 0,
            handshake_outstanding: 0,
            connected: false,
            hello: None,
            decoder: TapeDecoder::new(decoder_config),
            tape: Tape::new(),
            deferred: false,
            input: SegmentedBuffer::new(),
            transmit: IoArena::new(),
            held: IoArena::new(),
            permits: BytePermits::new(config.max_outgoing_bytes),
            fifo: Fifo::default(),
            held_fifo: Fifo::default(),
            extras: Extras::default(),
            events: VecDeque::new(),
            guard: PoisonGuard::new(),
            last_id: 0,
            pending: 0,
            subscriptions: Subscriptions::default(),
            in_multi: false,
            pending_subscribes: 0,
            tracking: None,
            assumed_protocol: config.protocol,
            restoring: Restoring::default(),
            transaction: None,
            quiet_since: now,
            transmit_mark: 0,
            transmit_mark_at: now,
            sent_watch: SentWatch::default(),
            config,
        };
        conn.start_handshake(now);
        conn.mark_transmit(now);
        conn
    }

    // ---- getters ----

    /// The settings it was created with.
    pub fn config(&self) -> &ConnectionConfig {
        &self.config
    }

    /// The protocol the server speaks to this connection now: RESP2 until `HELLO 3`
    /// succeeds (and again after `RESET` or a user's `HELLO 2`).
    pub fn protocol(&self) -> Protocol {
        self.protocol
    }

    /// Whether the handshake completed and the connection is not poisoned.
    pub fn is_connected(&self) -> bool {
        self.connected && !self.guard.is_poisoned()
    }

    /// The server's reply to the handshake's `HELLO`, when it succeeded (server,
    /// version, client id, role, modules).
    pub fn hello(&self) -> Option<&Value> {
        self.hello.as_ref()
    }

    /// What the server confirmed this connection is subscribed to. A new connection
    /// restores it through [`take_reconnect_state`](Self::take_reconnect_state) and
    /// [`resume`](Self::resume).
    pub fn subscriptions(&self) -> &Subscriptions {
        &self.subscriptions
    }

    /// The `CLIENT TRACKING ON ...` command in force: the last one the server answered
    /// `+OK` (until a `CLIENT TRACKING OFF` or `RESET` is), or the one a
    /// [resumed](Self::resume) connection restores. A new connection replays it; the
    /// server forgot which keys were read, so a body that restores tracking should
    /// treat every cached key as invalid.
    pub fn tracking(&self) -> Option<&Cmd> {
        self.tracking.as_ref()
    }

    /// Whether a `MULTI` sent with [`send_buffered`](Self::send_buffered) has no
    /// `EXEC` or `DISCARD` yet: commands sent now are queued in the transaction.
    pub fn in_multi(&self) -> bool {
        self.in_multi
    }

    /// Requests whose replies have not been consumed yet, abandoned and timed-out ones
    /// included (their late replies are still to come).
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Bytes encoded but not yet taken by the kernel, held commands included: what the
    /// high-water mark is compared with.
    pub fn outgoing_len(&self) -> usize {
        self.transmit.len() + self.held.len()
    }

    /// Why the connection was poisoned, once it is.
    pub fn error(&self) -> Option<&ConnectionError> {
        self.guard.error()
    }

    /// Whether the driver should keep reading: until the connection is finished, and
    /// not while too much input waits for a visit ([`defer_input`](Self::defer_input)).
    pub fn wants_read(&self) -> bool {
        !self.is_closed() && !self.deferred_full()
    }

    /// Whether the connection is finished (poisoned, closed or its handshake failed):
    /// the driver can close the socket.
    pub fn is_closed(&self) -> bool {
        self.guard.is_poisoned()
    }

    // ---- handle_* ----

    /// Bytes received from the server. Every complete reply is matched to its request
    /// and turned into events.
    ///
    /// Returns the poisoning error if the connection is (or now becomes) poisoned.
    pub fn handle_input(&mut self, data: Bytes, now: Instant) -> Result<(), ConnectionError> {
        self.guard.check()?;
        if !data.is_empty() {
            self.quiet_since = self.quiet_since.max(now);
        }
        self.input.push(data);
        if self.deferred {
            self.mark_transmit(now);
            return Ok(());
        }
        self.decode_input(now)
    }

    /// Acts on every complete value in the input, as owned values.
    fn decode_input(&mut self, now: Instant) -> Result<(), ConnectionError> {
        loop {
            match self.decoder.decode_value(&mut self.input) {
                Ok(Some(value)) => {
                    self.on_value(value, now);
                    self.guard.check()?;
                }
                Ok(None) => {
                    self.mark_transmit(now);
                    return Ok(());
                }
                Err(e) => return Err(self.poison(ConnectionError::Decode(e))),
            }
        }
    }

    /// The server closed the connection (or the driver saw it fail): the connection is
    /// poisoned with [`ConnectionError::Closed`] unless it already was. Always returns
    /// the poisoning error.
    pub fn handle_eof(&mut self, now: Instant) -> Result<(), ConnectionError> {
        self.guard.check()?;
        // Replies that arrived before the end are delivered first.
        self.settle(now);
        self.guard.check()?;
        Err(self.poison(ConnectionError::Closed))
    }

    /// The instant from [`poll_timeout`](Self::poll_timeout) has come: requests past
    /// their deadline fail with [`RequestError::Timeout`] (their replies will be dropped
    /// when they come). The connection is poisoned instead when the oldest request is
    /// past its deadline while a reply is half received (the stream stalled mid-frame),
    /// or when a handshake command timed out.
    ///
    /// It also runs the health check: an idle connection past
    /// [`health_check_interval`](ConnectionConfig::health_check_interval) queues its
    /// `PING` (flush [`poll_transmit`](Self::poll_transmit) after this call), and one
    /// silent past [`health_check_timeout`](ConnectionConfig::health_check_timeout)
    /// while a reply is owed is poisoned with [`ConnectionError::Stale`].
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ConnectionError> {
        self.guard.check()?;
        // Input held for a visit is not a stalled reply: act on it first.
        self.settle(now);
        self.guard.check()?;
        // Sent entries first: a handshake timeout explains why held requests fail.
        self.expire_sent(now);
        if !self.guard.is_poisoned() {
            self.expire_held(now);
        }
        if !self.guard.is_poisoned() {
            self.check_health(now);
        }
        self.mark_transmit(now);
        self.guard.check()
    }

    // ---- mutators ----

    /// Asks the driver to report ([`Activity::Sent`](crate::Activity::Sent)) the first
    /// write the kernel takes that leaves at most `below` bytes of output here (0: once
    /// it is empty), once: a body waiting for a flush sleeps in its driver turn until
    /// then instead of polling.
    pub fn report_sent(&mut self, below: usize) {
        self.sent_watch.ask(below);
    }

    /// [`report_sent`](Self::report_sent) at the mark where a call refused for a full
    /// buffer ([`SendError::Backpressure`]) has room again: half the high-water mark, so one wake lets the
    /// body refill a lot while the kernel still has the rest to send.
    pub fn report_room(&mut self) {
        self.sent_watch.ask(self.config.max_outgoing_bytes / 2);
    }

    /// Encodes `cmd` for sending and returns the id its [`Event::Reply`] (or
    /// [`Event::Failed`]) will carry. Call [`poll_transmit`](Self::poll_transmit) to
    /// send it; many commands buffered before one flush go out in one write.
    ///
    /// During the handshake the command is held and sent once the handshake succeeds.
    ///
    /// Subscribe-family commands are completed by their confirmations: the reply is an
    /// array of them. `MULTI`, `EXEC` and `DISCARD` work as plain commands (each gets its
    /// own reply: `+OK`, `+QUEUED`..., then `EXEC`'s array).
    ///
    /// # Errors
    /// [`SendError::Backpressure`] over the high-water mark, [`SendError::TooManyPending`]
    /// at the pending limit, [`SendError::Poisoned`] once poisoned,
    /// [`SendError::SubscriberMode`] in RESP2 subscriber mode, and the misuse errors
    /// documented on [`SendError`]. Nothing is queued on error.
    pub fn send_buffered(&mut self, cmd: &Cmd, now: Instant) -> Result<RequestId, SendError> {
        self.guard.check()?;
        if cmd.arg_count() == 0 {
            return Err(SendError::EmptyCommand);
        }
        self.admits(cmd.name())?;
        let class = special(cmd);
        let (kind, extra) = self.kind_of(cmd, &class)?;
        self.check_pending()?;
        self.reserve(cmd.encoded_len())?;
        Ok(self.queue_cmd(cmd, &class, (kind, extra), Fate::Waiting, now))
    }

    /// [`send_buffered`](Self::send_buffered) for the command whose arguments (name
    /// first) are `args`, encoded straight into the transmit arena: no [`Cmd`] is
    /// built, nothing is allocated. The fast path for the common commands (`GET`,
    /// `SET`, ...); the few whose replies need special handling (the subscribe family,
    /// `MULTI`/`EXEC`, `HELLO`, `RESET`) take the general path and behave as with
    /// `send_buffered`. Every argument is copied; a large [`Bytes`] payload is shared
    /// only through a [`Cmd`].
    ///
    /// # Errors
    /// As [`send_buffered`](Self::send_buffered).
    pub fn send_args(&mut self, args: &[&[u8]], now: Instant) -> Result<RequestId, SendError> {
        self.guard.check()?;
        let Some(&name) = args.first() else {
            return Err(SendError::EmptyCommand);
        };
        self.admits(name)?;
        if !matches!(classify(name, || args.get(1).copied()), Special::None) {
            return self.send_buffered(&Cmd::new(name).args(&args[1..]), now);
        }
        self.check_pending()?;
        self.reserve(Cmd::args_encoded_len(args))?;
        let id = self.next_id();
        let deadline = self.deadline(now);
        self.before_queue(now);
        let (arena, fifo) = self.outbox();
        Cmd::encode_args(arena, args);
        fifo.push(Entry {
            owner: id.0,
            role: Role::Request(Request {
                id,
                fate: Fate::Waiting,
                kind: Kind::Plain,
            }),
            deadline,
        });
        self.pending += 1;
        self.settle_front();
        self.mark_transmit(now);
        Ok(id)
    }

    /// Sends `MULTI`, `cmds` and `EXEC` as one pipelined batch, and returns the id of
    /// the transaction's single result.
    ///
    /// The `+OK` and `+QUEUED` replies are consumed here. The result is an
    /// [`Event::Reply`] with `EXEC`'s reply (an array of the commands' results, or a
    /// null when a `WATCH`ed key changed), or, when `MULTI` or a command was refused
    /// (Redis then discards the transaction: `-EXECABORT`), an [`Event::Failed`] with
    /// [`RequestError::TransactionAborted`] carrying each refusal and `EXEC`'s reply.
    ///
    /// # Errors
    /// As [`send_buffered`](Self::send_buffered), plus [`SendError::NestedTransaction`]
    /// while a plain `MULTI` is open or when `cmds` holds `MULTI`/`EXEC`/`DISCARD`, and
    /// [`SendError::NotAllowedInTransaction`] for the subscribe family, `HELLO` and
    /// `RESET`.
    pub fn send_transaction(&mut self, cmds: &[Cmd], now: Instant) -> Result<RequestId, SendError> {
        self.guard.check()?;
        self.admits(b"MULTI")?;
        if self.in_multi {
            return Err(SendError::NestedTransaction);
        }
        let mut len = MULTI.len() + EXEC.len();
        for cmd in cmds {
            if cmd.arg_count() == 0 {
                return Err(SendError::EmptyCommand);
            }
            match special(cmd) {
                // Inside `MULTI` a blocking command does not block, and `CLIENT
                // TRACKING`'s reply is in `EXEC`'s array (it is not replayed).
                Special::None | Special::Blocking | Special::Tracking => {}
                Special::Multi | Special::EndMulti => return Err(SendError::NestedTransaction),
                Special::Unsupported => return Err(unsupported(cmd)),
                Special::Subscribe(_) | Special::Hello(_) | Special::Reset => {
                    return Err(SendError::NotAllowedInTransaction {
                        command: Bytes::copy_from_slice(cmd.name()),
                    })
                }
            }
            len += cmd.encoded_len();
        }
        self.check_pending()?;
        self.reserve(len)?;
        let id = self.next_id();
        let deadline = self.deadline(now);
        self.before_queue(now);
        let (arena, fifo) = self.outbox();
        let entry = |role| Entry {
            owner: id.0,
            role,
            deadline,
        };
        arena.put_slice(MULTI);
        fifo.push(entry(Role::Multi));
        for (index, cmd) in cmds.iter().enumerate() {
            cmd.encode(arena);
            fifo.push(entry(Role::Queued(index)));
        }
        arena.put_slice(EXEC);
        fifo.push(entry(Role::Request(Request {
            id,
            fate: Fate::Waiting,
            kind: Kind::Exec,
        })));
        self.pending += 1;
        self.settle_front();
        self.mark_transmit(now);
        Ok(id)
    }

    /// The caller no longer wants request `id`'s reply: it is still consumed in order
    /// when it comes, and dropped. No event is emitted for it, ever.
    ///
    /// Returns whether `id` was waiting (false if it already completed, failed, or was
    /// abandoned).
    pub fn abandon(&mut self, id: RequestId) -> bool {
        // Ids are unique across both FIFOs.
        self.fifo.abandon(id) || self.held_fifo.abandon(id)
    }

    // ---- poll_* ----

    /// The bytes to send, if any: write them to the socket, then
    /// [`advance`](IoArena::advance) the arena by what the kernel took. `None` once
    /// poisoned.
    #[must_use]
    pub fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        (!self.transmit.is_empty() && !self.guard.is_poisoned()).then_some(&mut self.transmit)
    }

    /// The next event; drain until `None` after every input.
    #[must_use]
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next: the earliest
    /// request deadline not yet handled, the next health-check `PING` or the instant
    /// the silence becomes staleness. `None` without any of them or once poisoned.
    #[must_use]
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.guard.is_poisoned() {
            return None;
        }
        [
            self.fifo.next_deadline(),
            self.held_fifo.next_deadline(),
            self.next_health_check(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    // ---- internals: sending ----

    fn next_id(&mut self) -> RequestId {
        self.last_id += 1;
        RequestId(self.last_id)
    }

    /// How `cmd`'s reply is recognised (and what its entry carries besides), or why it
    /// cannot be sent now.
    fn kind_of(&self, cmd: &Cmd, class: &Special) -> Result<(Kind, Option<Extra>), SendError> {
        Ok(match *class {
            Special::Unsupported => return Err(unsupported(cmd)),
            Special::Subscribe(_) | Special::Hello(_) if self.in_multi => {
                return Err(SendError::NotAllowedInTransaction {
                    command: Bytes::copy_from_slice(cmd.name()),
                })
            }
            Special::Subscribe(command) => (
                Kind::Subscribe,
                Some(Extra::Subscribe(Subscribing {
                    command,
                    expected: (command.subscribe || cmd.arg_count() > 1).then(|| cmd.arg_count() - 1),
                    confirmations: Vec::new(),
                })),
            ),
            Special::Hello(Some(protocol)) => (Kind::Hello(protocol), None),
            Special::Reset => (Kind::Reset, None),
            Special::Blocking => (Kind::Blocking, None),
            Special::Tracking => match cmd.arg_bytes().get(2) {
                Some(on) if on.eq_ignore_ascii_case(b"ON") => {
                    (Kind::Tracking, Some(Extra::Tracking(Some(cmd.clone()))))
                }
                Some(off) if off.eq_ignore_ascii_case(b"OFF") => (Kind::Tracking, Some(Extra::Tracking(None))),
                _ => (Kind::Plain, None),
            },
            Special::None | Special::Multi | Special::EndMulti | Special::Hello(None) => (Kind::Plain, None),
        })
    }

    /// Encodes `cmd` (checked, with room reserved) and queues its entry: a user
    /// request (`Fate::Waiting`) or one of the connection's own restore commands.
    fn queue_cmd(
        &mut self,
        cmd: &Cmd,
        class: &Special,
        (kind, extra): (Kind, Option<Extra>),
        fate: Fate,
        now: Instant,
    ) -> RequestId {
        match class {
            Special::Multi => self.in_multi = true,
            Special::EndMulti | Special::Reset => self.in_multi = false,
            _ => {}
        }
        if matches!(kind, Kind::Hello(Protocol::Resp3)) {
            self.hello3_in_flight += 1;
            self.sync_decoder();
        }
        if matches!(&extra, Some(Extra::Subscribe(sub)) if sub.command.subscribe) {
            self.pending_subscribes += 1;
        }
        let id = self.next_id();
        if let Some(extra) = extra {
            self.extras.insert(id, extra);
        }
        let deadline = self.deadline(now);
        self.before_queue(now);
        let (arena, fifo) = self.outbox();
        cmd.encode(arena);
        fifo.push(Entry {
            owner: id.0,
            role: Role::Request(Request { id, fate, kind }),
            deadline,
        });
        match fate {
            Fate::Restore => self.restoring.outstanding += 1,
            _ => self.pending += 1,
        }
        self.settle_front();
        self.mark_transmit(now);
        id
    }

    fn deadline(&self, now: Instant) -> Option<Instant> {
        self.config.request_timeout.and_then(|t| now.checked_add(t))
    }

    /// Where user commands go: held during the handshake, straight out after it.
    fn outbox(&mut self) -> (&mut IoArena, &mut Fifo) {
        if self.connected {
            (&mut self.transmit, &mut self.fifo)
        } else {
            (&mut self.held, &mut self.held_fifo)
        }
    }

    fn check_pending(&self) -> Result<(), SendError> {
        if self.pending >= self.config.max_pending {
            return Err(SendError::TooManyPending {
                max: self.config.max_pending,
            });
        }
        Ok(())
    }

    /// Takes `n` bytes from the high-water mark, counting what the kernel has not taken
    /// yet (the driver advances the arena without telling us, so the budget is synced
    /// with the arenas first).
    fn reserve(&mut self, n: usize) -> Result<(), Backpressure> {
        self.permits.reset();
        self.permits.try_acquire(self.outgoing_len())?;
        self.permits.try_acquire(n)
    }

    // ---- internals: time ----

    fn expire_held(&mut self, now: Instant) {
        while let Some(entry) = self.held_fifo.entries().get(self.held_fifo.expired) {
            if entry.deadline.is_none_or(|d| d > now) {
                break;
            }
            expire_next(&mut self.held_fifo, &mut self.events);
        }
    }

    fn expire_sent(&mut self, now: Instant) {
        let mid_frame = self.decoder.is_mid_value() || !self.input.is_empty();
        while let Some(&entry) = self.fifo.entries().get(self.fifo.expired) {
            if matches!(entry.role, Role::Health) {
                // No deadline of its own: step over it to the requests behind.
                self.fifo.expired += 1;
                continue;
            }
            if entry.deadline.is_none_or(|d| d > now) {
                break;
            }
            // Deadlines are in FIFO order, so the oldest entry's has passed too (now or
            // earlier): its reply is overdue and still half received, the stream stalled.
            if mid_frame {
                self.poison(ConnectionError::TimedOutMidFrame);
                return;
            }
            if let Role::Handshake(step) = entry.role {
                let command = step.command();
                self.poison(HandshakeError::Timeout { command }.into());
                return;
            }
            expire_next(&mut self.fifo, &mut self.events);
        }
    }

    // ---- internals: poison ----

    /// Poisons the connection: every waiting request fails with `error`, then
    /// [`Event::Poisoned`]. Returns the stored error (the first one wins).
    fn poison(&mut self, error: ConnectionError) -> ConnectionError {
        if let Some(first) = self.guard.error() {
            return first.clone();
        }
        let error = self.guard.poison(error);
        let entries: Vec<Entry> = self.fifo.drain().chain(self.held_fifo.drain()).collect();
        for entry in entries {
            if let Role::Request(r) = entry.role {
                if r.fate == Fate::Waiting {
                    self.events.push_back(Event::Failed {
                        id: r.id,
                        error: RequestError::Poisoned(error.clone()),
                    });
                }
            }
        }
        self.events.push_back(Event::Poisoned(error.clone()));
        self.extras.clear();
        self.pending = 0;
        self.pending_subscribes = 0;
        self.transaction = None;
        self.transmit.clear();
        self.held.clear();
        self.permits.reset();
        self.input.clear();
        self.decoder.reset();
        error
    }
}

impl Session for Connection {
    type Event = Event;

    fn handle_input(&mut self, data: Bytes, now: Instant) {
        // The error is also reported by `Event::Poisoned` and `is_closed`.
        let _ = Connection::handle_input(self, data, now);
    }

    fn handle_eof(&mut self, now: Instant) {
        let _ = Connection::handle_eof(self, now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        let _ = Connection::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        Connection::poll_transmit(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Connection::poll_timeout(self)
    }

    fn poll_event(&mut self) -> Option<Event> {
        Connection::poll_event(self)
    }

    fn wants_read(&self) -> bool {
        Connection::wants_read(self)
    }

    fn is_closed(&self) -> bool {
        Connection::is_closed(self)
    }
    fn handle_sent(&mut self) -> bool {
        self.sent_watch.sent(self.transmit.len())
    }
}

/// What a command's name (and, for `HELLO` and `CLIENT`, its first argument) says
/// about how it is answered.
fn special(cmd: &Cmd) -> Special {
    classify(cmd.name(), || cmd.arg_bytes().get(1).copied())
}

/// [`special`] from the command's name and, when the name needs it, its second
/// argument.
fn classify<'a>(name: &[u8], second: impl Fn() -> Option<&'a [u8]>) -> Special {
    // Every special name is 4 (`EXEC`) to 12 (`PUNSUBSCRIBE`) bytes long: `GET`, `SET`
    // and other short names are plain without comparing anything.
    if !(4..=12).contains(&name.len()) {
        return Special::None;
    }
    if let Some(command) = SubCommand::parse(name) {
        return Special::Subscribe(command);
    }
    let is = |s: &[u8]| name.eq_ignore_ascii_case(s);
    if is(b"MULTI") {
        Special::Multi
    } else if is(b"EXEC") || is(b"DISCARD") {
        Special::EndMulti
    } else if is(b"RESET") {
        Special::Reset
    } else if is(b"HELLO") {
        Special::Hello(match second() {
            Some(b"2") => Some(Protocol::Resp2),
            Some(b"3") => Some(Protocol::Resp3),
            _ => None,
        })
    } else if is(b"MONITOR") || (is(b"CLIENT") && second().is_some_and(|sub| sub.eq_ignore_ascii_case(b"REPLY"))) {
        Special::Unsupported
    } else if is(b"CLIENT") && second().is_some_and(|sub| sub.eq_ignore_ascii_case(b"TRACKING")) {
        Special::Tracking
    } else if is_blocking(name) {
        Special::Blocking
    } else {
        Special::None
    }
}

fn unsupported(cmd: &Cmd) -> SendError {
    SendError::Unsupported {
        command: Bytes::copy_from_slice(cmd.name()),
    }
}

/// Whether `name` is a command the server may answer only much later: the blocking
/// list, sorted-set and stream reads and `WAIT`. (`XREAD` blocks only with `BLOCK`;
/// treating it as blocking merely suspends the silence rule while it is the oldest.)
fn is_blocking(name: &[u8]) -> bool {
    const BLOCKING: [&[u8]; 12] = [
        b"BLPOP",
        b"BRPOP",
        b"BRPOPLPUSH",
        b"BLMOVE",
        b"BLMPOP",
        b"BZPOPMIN",
        b"BZPOPMAX",
        b"BZMPOP",
        b"XREAD",
        b"XREADGROUP",
        b"WAIT",
        b"WAITAOF",
    ];
    matches!(name.first(), Some(b'B' | b'b' | b'W' | b'w' | b'X' | b'x'))
        && BLOCKING.iter().any(|b| name.eq_ignore_ascii_case(b))
}

/// Whether `value` is the status reply `+<text>`.
fn is_status(value: &Value, text: &[u8]) -> bool {
    matches!(value, Value::SimpleString(s) if s == text)
}

fn strip_attributes(value: Value) -> Value {
    match value {
        Value::Attributed { value, .. } => strip_attributes(*value),
        other => other,
    }
}

/// Handles the deadline of `fifo`'s next entry not yet expired (which has passed): a
/// request still waited for times out, reported in `events`.
fn expire_next(fifo: &mut Fifo, events: &mut VecDeque<Event>) {
    let timed_out = fifo.update(fifo.expired, |entry| match &mut entry.role {
        Role::Request(r) if r.fate == Fate::Waiting => {
            r.fate = Fate::TimedOut;
            Some(r.id)
        }
        _ => None,
    });
    if let Some(Some(id)) = timed_out {
        events.push_back(Event::Failed {
            id,
            error: RequestError::Timeout,
        });
    }
    fifo.expired += 1;
}
