//! MQTT: the broker body.
//!
//! [`Broker`] runs the sans-IO broker of [`monocoque_proto::mqtt::broker`] on one
//! driver thread: a listener whose accepted connections are
//! [`Connection`](monocoque_proto::mqtt::broker::Connection) sessions, and one
//! [`BrokerState`](monocoque_proto::mqtt::broker::BrokerState) their events route
//! through. A second listener ([`Broker::listen_websocket`]) carries MQTT over
//! WebSocket ([`BrokerSession`]). `monocoque mqtt broker` is this, on the command line;
//! [`BrokerConfig`] reads its `--config` file (limits, users, ACL, redirection);
//! [`Store`] keeps persistent sessions and retained messages across restarts (`--data`).

mod broker;
mod config;
mod store;
mod transport;

pub use broker::{Broker, BrokerError, Stopper};
pub use config::{BrokerConfig, ConfigError};
pub use store::{Loaded, Store, StoreError};
pub use transport::BrokerSession;
