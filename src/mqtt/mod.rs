//! MQTT: the broker body and the client.
//!
//! [`Broker`] runs the sans-IO broker of [`monocoque_proto::mqtt::broker`] on one
//! driver thread: a listener whose accepted connections are
//! [`Connection`](monocoque_proto::mqtt::broker::Connection) sessions, and one
//! [`BrokerState`](monocoque_proto::mqtt::broker::BrokerState) their events route
//! through. A second listener ([`Broker::listen_websocket`]) carries MQTT over
//! WebSocket ([`BrokerSession`]). `monocoque mqtt broker` is this, on the command line;
//! [`BrokerConfig`] reads its `--config` file (limits, users, ACL, redirection);
//! [`Store`] keeps persistent sessions and retained messages across restarts (`--data`).
//!
//! [`Client`] runs the sans-IO client connection of
//! [`monocoque_proto::mqtt::client`] on the shared link supervisor: QoS 0/1/2 both
//! ways, reconnect with backoff, session resumption. `monocoque mqtt pub` and
//! `monocoque mqtt sub` are this, on the command line.

mod body;
mod broker;
mod calls;
mod client;
mod cluster;
mod config;
mod error;
mod options;
mod store;
mod transport;

pub use broker::{Broker, BrokerError, Stopper};
pub use client::{Client, Subscription};
pub use cluster::{default_threads, BrokerCluster, ClusterOptions};
pub use config::{BrokerConfig, ConfigError, DEFAULT_SYS_INTERVAL};
pub use error::Error;
pub use options::{ClientOptions, ServerAddr, DEFAULT_PORT};
pub use store::{Loaded, Store, StoreError};
pub use transport::BrokerSession;

/// The link's failures, as this client's [`Error`] carries them in [`Error::Link`].
pub type LinkError = crate::LinkError<Error>;

pub use monocoque_proto::mqtt::client::{ConnectionError, Message, SendError};
pub use monocoque_proto::mqtt::{Properties, ProtocolVersion, QoS, ReasonCode, Will};
