//! The NATS client: [`Client`], blocking and thread-per-core, over any driver.
//!
//! Built from the sans-IO [`Connection`]
//! (handshake, authentication, subscriptions with bounded queues, request/reply over one
//! inbox, keepalive, server errors, discovery) and a [`Driver`](monocoque_proto::Driver)
//! (io_uring or mio) that moves its bytes. Everything protocol lives in the connection;
//! this module adds blocking calls, subscription handles, typed errors, events, and
//! reconnection across every server the cluster names.
//!
//! ```no_run
//! use std::time::Duration;
//! use monocoque::driver::DriverKind;
//! use monocoque::nats::{Client, ClientOptions};
//!
//! let options = ClientOptions::from_url("nats://127.0.0.1:4222")?.driver(DriverKind::Mio);
//! let mut client = Client::connect_with(options)?;
//!
//! let mut workers = client.queue_subscribe("jobs", "workers")?;
//! client.publish("jobs", "resize photo 7")?;
//! client.flush()?;
//! let job = workers.next_message(Duration::from_secs(1))?;
//! assert_eq!(job.map(|m| m.payload), Some("resize photo 7".into()));
//!
//! match client.request("time.now", "", Duration::from_millis(500)) {
//!     Ok(reply) => println!("{:?}", reply.payload),
//!     Err(monocoque::nats::Error::NoResponders) => println!("nobody serves time.now"),
//!     Err(e) => return Err(e.into()),
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod body;
mod calls;
mod client;
mod error;
mod event;
mod options;
mod pool;

pub use client::{Client, Subscription};
pub use error::Error;
pub use event::{Event, MAX_QUEUED_EVENTS};
pub use options::{
    parse_servers, Auth, ClientOptions, LinkOptions, ReconnectPolicy, ServerAddr, TcpKeepalive, UrlAuth, UrlError,
    DEFAULT_PORT,
};

/// The link's failures, as this client's [`Error`] carries them in [`Error::Link`].
pub type LinkError = crate::LinkError<Error>;

pub use monocoque_proto::nats::client::{
    Connection, ConnectionError, RequestError, SendError, SlowConsumerPolicy, SubscriptionEnd, SubscriptionPolicy,
};
pub use monocoque_proto::nats::{
    HeaderMap, Headers, Message, MessageRef, ServerError, ServerErrorKind, ServerInfo, Sid, StatusCode,
};
