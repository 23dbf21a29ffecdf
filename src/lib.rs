//! # Monocoque
//!
//! A multi-protocol I/O kernel: thread per core, io_uring (or mio), pooled zero-copy
//! buffers and sans-IO state machines. This crate is the part that waits: the drivers
//! that run sessions over sockets, and the blocking clients built on them. The protocol
//! engines, which decide everything and wait for nothing, live in [`monocoque_proto`]
//! (re-exported here as [`proto`]); its crate documentation has a runnable example per
//! protocol.
//!
//! ## The layers
//!
//! - [`proto::chassis`]: buffers ([`proto::SegmentedBuffer`], [`proto::IoArena`]), the
//!   [`Session`](proto::Session) and [`Driver`](proto::Driver) contracts, the cross-core
//!   [`Waker`](proto::Waker) and [`Mailbox`](proto::Mailbox), the in-memory
//!   [`sim`](proto::sim).
//! - [`proto::resp`], [`proto::nats`]: the engines, the decoders, encoders and
//!   connection state machine of each protocol.
//! - The drivers, `monocoque-uring` (io_uring) and `monocoque-mio` (epoll through mio),
//!   chosen at run time through [`driver::AnyDriver`].
//! - The bodies: [`redis::Client`], [`nats::Client`] and [`zmq::Socket`], blocking and
//!   thread-per-core; [`mqtt::Broker`], the MQTT broker on one driver thread.
//!
//! **Sans-IO and zero-copy.** A driver feeds each session the [`bytes::Bytes`] it
//! received (on io_uring, buffers the kernel filled from its provided-buffer ring) and
//! hands the kernel the session's [`IoArena`](proto::IoArena); a value a client returns
//! is a view of those buffers, not a copy. Everything about the protocol is decided in
//! `monocoque-proto` on bytes and instants, so it is tested without a socket.
//!
//! ## The run-loop rule
//!
//! A driver runs each session by the rule of [`proto::Session`]: feed input, then drain
//! output and events before the next input. A body blocks only in
//! [`Driver::turn`](proto::Driver::turn), and always with the deadline of the call it is
//! serving: a `get` with a one-second timeout turns with that second's end as deadline,
//! so no call outlives its timeout and no sleep hides anywhere. The repository's
//! `ARCHITECTURE.md` has the longer version (where each kind of decision lives, memory
//! ownership, the multi-core contract, how to add an engine).
//!
//! ## A body on a driver
//!
//! How the clients are written, reduced to one call: queue the request in the session,
//! then [`turn`](proto::Driver::turn) with the call's deadline and drain the session
//! when the turn reports it [`Ready`](proto::Activity::Ready). The peer here is a
//! thread playing a Redis server for one reply.
//!
//! ```
//! use std::io::{Read, Write};
//! use std::net::TcpListener;
//! use std::time::{Duration, Instant};
//! use monocoque::driver::{AnyDriver, DriverKind};
//! use monocoque::proto::{Activity, ConnId, CoreId, Driver};
//! use monocoque::proto::resp::{Cmd, Connection, ConnectionConfig, Event, Protocol, Value};
//!
//! /// `GET key`, blocking at most `timeout`; `None` on timeout or a closed connection.
//! fn get(driver: &mut AnyDriver<Connection>, conn: ConnId, key: &str, timeout: Duration) -> Option<Value> {
//!     let deadline = Instant::now() + timeout;
//!     let id = driver.session_for_output(conn)?.send_buffered(&Cmd::new("GET").arg(key), Instant::now()).ok()?;
//!     let mut activity = Vec::new();
//!     while Instant::now() < deadline {
//!         activity.clear();
//!         driver.turn(Some(deadline), &mut activity).ok()?; // the only place it blocks
//!         for a in &activity {
//!             match a {
//!                 Activity::Ready(c) if *c == conn => {
//!                     let session = driver.session_for_output(conn)?;
//!                     while let Some(event) = session.poll_event() {
//!                         if let Event::Reply { id: r, value } = event {
//!                             if r == id {
//!                                 return Some(value);
//!                             }
//!                         }
//!                     }
//!                 }
//!                 Activity::Closed { .. } => return None,
//!                 _ => {}
//!             }
//!         }
//!     }
//!     None
//! }
//!
//! // The peer: reads one command, answers one bulk string.
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let addr = listener.local_addr()?;
//! let peer = std::thread::spawn(move || -> std::io::Result<Vec<u8>> {
//!     let (mut socket, _) = listener.accept()?;
//!     let (mut got, mut buf) = (Vec::new(), [0u8; 64]);
//!     while !got.ends_with(b"greeting\r\n") {
//!         let n = socket.read(&mut buf)?;
//!         if n == 0 { break; }
//!         got.extend_from_slice(&buf[..n]);
//!     }
//!     socket.write_all(b"$5\r\nhello\r\n")?;
//!     Ok(got)
//! });
//!
//! let mut driver: AnyDriver<Connection> = AnyDriver::with_core(DriverKind::Mio, CoreId(3))?;
//! let config = ConnectionConfig { protocol: Protocol::Resp2, ..ConnectionConfig::default() };
//! let conn = driver.connect(addr, Connection::new(config, Instant::now()))?;
//! assert_eq!(conn.core(), CoreId(3)); // an address names the core that owns it
//! assert_eq!(get(&mut driver, conn, "greeting", Duration::from_secs(30)), Some(Value::from("hello")));
//! assert_eq!(peer.join().unwrap()?, b"*2\r\n$3\r\nGET\r\n$8\r\ngreeting\r\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## Many cores
//!
//! One driver per core, each owning its connections; nothing is shared on the hot path.
//! Work for another core travels as a message into that driver's bounded
//! [`Mailbox`](proto::Mailbox), whose sender wakes it through its
//! [`Driver::waker`](proto::Driver::waker): the driver's `turn` returns with
//! [`Activity::Woken`](proto::Activity::Woken) and the body drains the mailbox. A full
//! mailbox hands the message back ([`MailboxError::Full`](proto::MailboxError::Full)):
//! backpressure, never growth; a sender running a driver of its own uses
//! [`send_or_notify`](proto::MailboxSender::send_or_notify) and is woken when the
//! receiver takes the next batch out. A message about a connection goes to the mailbox of
//! [`ConnId::core`](proto::ConnId::core). Several protocols share one core's driver
//! through [`Either`](proto::Either).
//!
//! ```
//! use std::time::{Duration, Instant};
//! use monocoque::driver::{AnyDriver, DriverKind};
//! use monocoque::proto::{resp, Activity, Driver, Mailbox};
//!
//! let mut driver: AnyDriver<resp::Connection> = AnyDriver::new(DriverKind::Mio)?;
//! let (mut mailbox, sender) = Mailbox::<String>::new(16, driver.waker()?);
//! std::thread::spawn(move || sender.send("from another core".to_string())).join().unwrap()?;
//!
//! let mut activity = Vec::new();
//! driver.turn(Some(Instant::now() + Duration::from_secs(30)), &mut activity)?;
//! assert!(activity.iter().any(|a| matches!(a, Activity::Woken)));
//! assert_eq!(mailbox.try_recv().as_deref(), Some("from another core"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ## The blocking clients
//!
//! Each client owns one driver on the calling thread (create it on the thread that uses
//! it: the io_uring ring accepts submissions from one thread only) and reconnects by
//! itself. Both need a running server, so these examples are compiled, not run.
//!
//! ```no_run
//! use monocoque::redis::Client;
//!
//! let mut redis = Client::connect("redis://127.0.0.1:6379")?;
//! redis.set("greeting", "hello")?;
//! assert_eq!(redis.get("greeting")?.as_deref(), Some(&b"hello"[..]));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! ```no_run
//! use std::time::Duration;
//! use monocoque::nats::Client;
//!
//! let mut nats = Client::connect("nats://127.0.0.1:4222")?;
//! let mut orders = nats.subscribe("orders.>")?;
//! nats.publish("orders.new", "hello")?;
//! let message = orders.next_message(Duration::from_secs(1))?.expect("our own message");
//! assert_eq!(message.payload, "hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! What every client needs of its link, whatever the protocol (driver, connect timeout,
//! TCP keepalive, reconnect policy), is one [`LinkOptions`] in each client's options,
//! set with the same builder methods; what can go wrong with the link is one
//! [`LinkError`], carried by each client's `Error` as its `Link` variant.
//!
//! [`redis`] and [`nats`] have the longer tours (options, pipelining, pub/sub,
//! requests); [`driver`] how the driver is chosen.
//!
//! ## Features
//!
//! - `cli` (default): the `monocoque` binary and its clap dependency. The library has no
//!   clap in it; a library user who wants none in the build depends on `monocoque` with
//!   `default-features = false`.

pub use monocoque_proto as proto;

pub use link_error::LinkError;
pub use link_options::{LinkOptions, ReconnectPolicy, TcpKeepalive};
pub use url::UrlError;

pub mod driver;
/// The bodies' fuzz harness: only with the `fuzzing` feature (the fuzz targets and the
/// corpus replay), never in a shipped build.
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
mod link;
mod link_error;
mod link_options;
pub mod mqtt;
pub mod nats;
pub mod redis;
mod setters;
mod url;
pub mod zmq;
