//! # monocoque-proto
//!
//! The sans-IO half of Monocoque: everything that decides, nothing that waits. This
//! crate never opens a socket, spawns a thread or reads the clock; time is an argument
//! (`now: Instant`) to every call that needs it. The drivers (`monocoque-uring`,
//! `monocoque-mio`) move bytes between the kernel and the sessions defined here, and the
//! `monocoque` crate puts blocking clients on top. Because nothing here waits, every
//! protocol rule can be tested by feeding bytes and instants, as the examples below do.
//!
//! ## The layers
//!
//! - [`chassis`]: what every protocol shares. [`SegmentedBuffer`] holds received bytes
//!   as reference-counted segments; decoders take zero-copy views of it. [`IoArena`]
//!   holds encoded output, small writes copied into one contiguous buffer and large
//!   payloads shared as they are; the driver hands it to the kernel in one call.
//!   [`Session`] is the contract of a connection's state machine, [`Driver`] the contract
//!   of the event loops that run sessions, [`PoisonGuard`] the terminal state of a connection whose stream can't be trusted,
//!   [`BytePermits`] the byte budget that bounds every queue. For many cores: [`Waker`],
//!   [`Mailbox`], [`ConnId::core`]; for several protocols on one core: [`Either`].
//!   [`sim::Pair`] wires two sessions together in memory on a virtual clock.
//! - [`resp`]: Redis RESP2/RESP3 — values, a resumable [`resp::Decoder`], the
//!   [`resp::TapeDecoder`] for pipelines, command encoding, the client
//!   [`resp::Connection`] and the server-side [`resp::CommandDecoder`].
//! - [`nats`]: NATS — one frame decoder per side ([`nats::ClientFrameDecoder`],
//!   [`nats::ServerFrameDecoder`]), the ops and their encoders, lazily parsed headers,
//!   `INFO`/`CONNECT` JSON and the client [`nats::client::Connection`].
//! - [`zmtp`]: ZeroMQ's ZMTP 3.x — greeting, frames, commands, the NULL and PLAIN
//!   [`zmtp::Handshake`] and one connection as a [`zmtp::Connection`] session.
//! - [`mqtt`]: MQTT 3.1, 3.1.1 and 5.0 — every packet, property and reason code, the
//!   streaming [`mqtt::Decoder`] (Maximum Packet Size checked from the fixed header)
//!   and the [`mqtt::Encoder`], for either side of a connection; and the sans-IO broker
//!   ([`mqtt::broker`]: a [`mqtt::broker::Connection`] session per client, one
//!   [`mqtt::broker::BrokerState`] per thread).
//! - [`ws`]: WebSocket (RFC 6455) — the server's opening handshake, a streaming
//!   [`ws::FrameDecoder`] and the encoder, and [`ws::WsSession`], which carries a
//!   byte-stream session (MQTT over WebSocket) in binary frames.
//!
//! **Sans-IO and zero-copy.** A session is fed [`bytes::Bytes`] the driver received and
//! hands back an [`IoArena`] to send; strings, payloads and arguments it decodes are
//! views of the received buffers (on io_uring, the kernel's provided buffers), so the
//! bytes of a message are never copied between the socket and the application unless a
//! frame straddles two receives.
//!
//! ## The run-loop rule
//!
//! Every [`Session`] is driven the same way, by every driver:
//!
//! 1. feed input: `handle_input(bytes, now)` for each received buffer, `handle_eof` when
//!    the peer closed, `handle_timeout(now)` when `poll_timeout()` has passed;
//! 2. drain output before the next input: `poll_transmit()` (flush the arena, then
//!    `advance` by what the kernel took), `poll_event()` until `None`, and re-arm the
//!    timer from `poll_timeout()`;
//! 3. stop reading while `wants_read()` is false; close once `is_closed()` and the
//!    arena is empty.
//!
//! A body (a blocking client, a broker) blocks only in [`Driver::turn`], and always
//! with the deadline of the call it is serving, so no call outlives its timeout. The
//! repository's `ARCHITECTURE.md` has the longer version: where each kind of decision
//! lives, memory ownership, the multi-core contract and how to add an engine.
//!
//! ## RESP: a client connection fed a server's bytes
//!
//! [`resp::Connection`] is the whole Redis client protocol (handshake, pipelining,
//! reply correlation, pub/sub, poisoning) as a state machine. Here a driver's part is
//! played by hand: take the bytes it wants to send, feed it the reply in two pieces.
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use monocoque_proto::resp::{Cmd, Connection, ConnectionConfig, Event, Protocol, Value};
//!
//! let now = Instant::now();
//! let config = ConnectionConfig { protocol: Protocol::Resp2, ..ConnectionConfig::default() };
//! let mut conn = Connection::new(config, now);
//! // RESP2 with nothing to authenticate: connected at once, no handshake to send.
//! assert!(matches!(conn.poll_event(), Some(Event::Connected { protocol: Protocol::Resp2, .. })));
//!
//! let id = conn.send_buffered(&Cmd::new("GET").arg("greeting"), now).unwrap();
//! let arena = conn.poll_transmit().expect("a command to send");
//! assert_eq!(arena.to_vec(), b"*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\n");
//! let written = arena.len();
//! arena.advance(written); // what the kernel took
//!
//! conn.handle_input(Bytes::from_static(b"$5\r\nhel"), now).unwrap();
//! assert!(conn.poll_event().is_none()); // half a reply: nothing yet
//! conn.handle_input(Bytes::from_static(b"lo\r\n"), now).unwrap();
//! match conn.poll_event() {
//!     Some(Event::Reply { id: replied, value }) => {
//!         assert_eq!(replied, id);
//!         assert_eq!(value, Value::from("hello"));
//!     }
//!     other => panic!("expected the reply, got {other:?}"),
//! }
//! ```
//!
//! ## RESP: decoding a captured reply stream, and a server reading a pipeline
//!
//! [`resp::Decoder`] turns a stream of replies into [`resp::Value`]s, one per call;
//! [`resp::CommandDecoder`] is the server's side, client commands into
//! [`resp::Command`]s whose arguments are views of the input.
//!
//! ```
//! use monocoque_proto::SegmentedBuffer;
//! use monocoque_proto::resp::{CommandDecoder, Decoder, Value};
//!
//! // Three pipelined replies, as captured from a server: SET's, INCR's, GET of a miss.
//! let mut replies = SegmentedBuffer::new();
//! replies.push_slice(b"+OK\r\n:42\r\n$-1\r\n");
//! let mut decoder = Decoder::default();
//! let mut values = Vec::new();
//! while let Some(value) = decoder.decode(&mut replies).unwrap() {
//!     values.push(value);
//! }
//! assert_eq!(values, [Value::SimpleString("OK".into()), Value::Integer(42), Value::Null]);
//!
//! // A client's pipeline: two commands in one read.
//! let mut requests = SegmentedBuffer::new();
//! requests.push_slice(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n");
//! let mut commands = CommandDecoder::default();
//! let set = commands.decode(&mut requests).unwrap().expect("SET");
//! assert_eq!((set.name(), set.arg_count()), (&b"SET"[..], 3));
//! let get = commands.decode(&mut requests).unwrap().expect("GET");
//! assert_eq!(get.args()[1], "k");
//! assert_eq!(commands.decode(&mut requests), Ok(None)); // the stream is drained
//! ```
//!
//! ## NATS: a client connection fed `INFO` then `MSG`
//!
//! [`nats::client::Connection`] waits for the server's `INFO`, answers `CONNECT` and
//! `PING`, and is connected on the `PONG`; messages wait in each subscription's bounded
//! queue until taken.
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use monocoque_proto::nats::client::{ClientConfig, Connection, Event, SubscriptionPolicy};
//!
//! let now = Instant::now();
//! let mut conn = Connection::new(ClientConfig::default(), now);
//! assert!(conn.poll_transmit().is_none()); // the server speaks first
//!
//! conn.handle_input(Bytes::from_static(b"INFO {\"server_id\":\"demo\",\"max_payload\":1048576}\r\n"), now).unwrap();
//! let arena = conn.poll_transmit().expect("CONNECT and PING");
//! let sent = arena.to_vec();
//! assert!(sent.starts_with(b"CONNECT {") && sent.ends_with(b"PING\r\n"));
//! let written = arena.len();
//! arena.advance(written);
//! conn.handle_input(Bytes::from_static(b"PONG\r\n"), now).unwrap();
//! assert!(matches!(conn.poll_event(), Some(Event::Connected { .. })));
//!
//! let sid = conn.subscribe(b"orders.>", None, SubscriptionPolicy::default()).unwrap();
//! let arena = conn.poll_transmit().expect("SUB");
//! assert_eq!(arena.to_vec(), b"SUB orders.> 1\r\n");
//! let written = arena.len();
//! arena.advance(written);
//!
//! conn.handle_input(Bytes::from_static(b"MSG orders.new 1 5\r\nhello\r\n"), now).unwrap();
//! assert!(matches!(conn.poll_event(), Some(Event::Messages { sid: s }) if s == sid));
//! let message = conn.next_message(&sid).expect("one message queued");
//! assert_eq!((&message.subject[..], &message.payload[..]), (&b"orders.new"[..], &b"hello"[..]));
//! assert!(conn.next_message(&sid).is_none());
//! ```
//!
//! ## NATS: the frame decoder
//!
//! [`nats::ClientFrameDecoder`] reads what a server sends straight out of a contiguous
//! buffer: every field of a [`nats::ServerFrame`] is a slice of it, so a frame costs no
//! allocation and no reference count. It is what the client connection runs.
//!
//! ```
//! use monocoque_proto::nats::{ClientFrameDecoder, ServerFrame};
//!
//! let buf = b"PING\r\nMSG orders.new 9 _INBOX.1 5\r\nhello\r\nMSG orders.old 9 2\r\nh";
//! let mut decoder = ClientFrameDecoder::default();
//! let (frame, len) = decoder.decode(buf).unwrap().expect("PING");
//! assert!(matches!(frame, ServerFrame::Ping));
//! let mut at = len;
//! let (frame, len) = decoder.decode(&buf[at..]).unwrap().expect("MSG");
//! let ServerFrame::Message(msg) = frame else { panic!("{frame:?}") };
//! assert_eq!((msg.subject, msg.sid, msg.reply, msg.payload), (&b"orders.new"[..], &b"9"[..], Some(&b"_INBOX.1"[..]), &b"hello"[..]));
//! at += len;
//! assert_eq!(decoder.decode(&buf[at..]).unwrap(), None); // half a frame: read more
//! ```
//!
//! ## The chassis: a session over the simulated link
//!
//! Any [`Session`] can be run against another through [`sim::Pair`]: bytes cut into
//! random pieces, partial writes, latency, all on a virtual clock and decided by a
//! seed. Here the Redis client connection talks to a server of a dozen lines built on
//! [`resp::CommandDecoder`], which answers every command with its argument count.
//!
//! ```
//! use std::time::Instant;
//! use bytes::Bytes;
//! use monocoque_proto::{IoArena, SegmentedBuffer, Session};
//! use monocoque_proto::resp::{Cmd, CommandDecoder, Connection, ConnectionConfig, Event, Protocol, Value};
//! use monocoque_proto::sim::{LinkConfig, Pair};
//!
//! /// Answers each command with `:<number of arguments>`.
//! #[derive(Default)]
//! struct Counter { input: SegmentedBuffer, decoder: CommandDecoder, out: IoArena, seen: usize }
//!
//! impl Session for Counter {
//!     type Event = usize;
//!     fn handle_input(&mut self, data: Bytes, _now: Instant) {
//!         self.input.push(data);
//!         while let Ok(Some(command)) = self.decoder.decode(&mut self.input) {
//!             self.out.put_slice(format!(":{}\r\n", command.arg_count()).as_bytes());
//!             self.seen += 1;
//!         }
//!     }
//!     fn handle_eof(&mut self, _now: Instant) {}
//!     fn handle_timeout(&mut self, _now: Instant) {}
//!     fn poll_transmit(&mut self) -> Option<&mut IoArena> {
//!         (!self.out.is_empty()).then_some(&mut self.out)
//!     }
//!     fn poll_timeout(&self) -> Option<Instant> { None }
//!     fn poll_event(&mut self) -> Option<usize> { (self.seen > 0).then(|| std::mem::take(&mut self.seen)) }
//!     fn is_closed(&self) -> bool { false }
//! }
//!
//! let now = Instant::now();
//! let config = ConnectionConfig { protocol: Protocol::Resp2, ..ConnectionConfig::default() };
//! let mut pair = Pair::new(Connection::new(config, now), Counter::default(), now, 42, LinkConfig::default());
//! let mset = Cmd::new("MSET").arg("a").arg("1").arg("b").arg("2");
//! let id = pair.a.send_buffered(&mset, now).unwrap();
//! assert!(pair.drive(10_000).is_some(), "the simulation settles");
//! let replied = pair.events_a.iter().find_map(|e| match e {
//!     Event::Reply { id: r, value } if *r == id => Some(value.clone()),
//!     _ => None,
//! });
//! assert_eq!(replied, Some(Value::Integer(5)));
//! assert_eq!(pair.events_b.iter().sum::<usize>(), 1); // one command reached the server
//! ```
//!
//! ## Features
//!
//! - `fuzzing` (off by default): the fuzz harness, one entry point per cargo-fuzz
//!   target, shared with the corpus replay tests. Test and fuzz builds turn it on; it is
//!   never shipped.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod chassis;
mod lex;
pub mod mqtt;
pub mod nats;
pub mod resp;
pub mod ws;
pub mod zmtp;

/// The fuzz harness: one entry point per cargo-fuzz target, shared with the corpus
/// replay test. Only with the `fuzzing` feature (test and fuzz builds), never shipped.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;

pub use chassis::{
    sim, Activity, Backpressure, BytePermits, ConnId, CoreId, Driver, Either, IoArena, ListenerId, Mailbox,
    MailboxError, MailboxSender, PoisonGuard, SegmentedBuffer, Session, SessionFactory, WakeLatch, WakeSignal, Waker,
    DEFAULT_SHARE_THRESHOLD,
};
