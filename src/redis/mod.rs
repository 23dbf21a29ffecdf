//! The Redis client: [`Client`], pipelined and blocking, over any driver.
//!
//! Built from the sans-IO [`Connection`](monocoque_proto::resp::Connection) (handshake,
//! reply correlation, pub/sub, poisoning) and a [`Driver`](monocoque_proto::Driver)
//! (io_uring or mio) that moves its bytes. Everything protocol lives in the connection;
//! this module adds the blocking calls, the request buffer, typed replies, events and
//! reconnection.
//!
//! ```no_run
//! use std::time::Duration;
//! use monocoque::redis::{cmd, Client, ClientOptions, SetOptions};
//! use monocoque::driver::DriverKind;
//!
//! let options = ClientOptions::from_url("redis://127.0.0.1:6379")?.driver(DriverKind::Mio);
//! let mut client = Client::connect_with(options)?;
//! client.set_with("session", "data", SetOptions::default().ex(60))?;
//! let n: i64 = client.query_as(&cmd("INCRBY").arg("hits").arg(5))?;
//!
//! client.subscribe(&["news"])?; // RESP3: the connection still takes commands
//! client.publish("news", "hello")?;
//! let message = client.next_message(Duration::from_secs(1))?;
//! assert_eq!(message.map(|m| m.payload), Some("hello".into()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod batch;
mod body;
mod calls;
mod client;
mod commands;
mod error;
mod event;
mod options;
mod pump;
mod reply;
mod visit;

pub use batch::RequestId;
pub use client::Client;
pub use commands::{SetOptions, SetOutcome};
pub use error::{Error, ServerError};
pub use event::{Event, Invalidation, Message};
pub use options::{
    ClientOptions, LinkOptions, ReconnectPolicy, TcpKeepalive, UrlError, DEFAULT_PORT, DEFAULT_RECONNECT,
};
pub use reply::{pairs, FromReply};

pub use monocoque_proto::resp::{Cmd, MessageKind, Protocol, TapeKind, TapeRef, ToArg, Value};

/// The link's failures, as this client's [`Error`] carries them in [`Error::Link`].
pub type LinkError = crate::LinkError<Error>;

/// Starts a command: `cmd("HSET").arg("key").arg("field").arg(1)`, for
/// [`Client::query`], [`Client::query_as`] and [`Client::send_buffered`].
pub fn cmd(name: impl ToArg) -> Cmd {
    Cmd::new(name)
}
