//! The MQTT broker, sans-IO: one [`BrokerState`] per thread and one [`Connection`] per
//! client.
//!
//! A driver runs each [`Connection`] as a [`Session`](crate::Session): it decodes,
//! answers what concerns only itself (`PINGREQ`, the acknowledgements of QoS 1 and 2
//! in both directions, keep alive at 1.5 times, the connect deadline) and reports the
//! rest as [`Event`]s. The body feeds those to [`BrokerState::handle_event`], which
//! holds the sessions by client identifier, the [`TopicTree`](crate::mqtt::TopicTree)
//! of subscriptions and the retained messages, and answers and delivers through the
//! connections ([`Connections`]).
//!
//! Covered: CONNECT/CONNACK (clean start, session present, assigned client identifier,
//! session takeover), SUBSCRIBE/SUBACK (No Local, Retain As Published, Retain Handling),
//! UNSUBSCRIBE/UNSUBACK, PUBLISH QoS 0, 1 and 2 both ways at the lower of the
//! message's and the subscription's QoS (overlapping subscriptions delivered once, at
//! the highest, with every matching Subscription Identifier), retained messages, will
//! messages (with Will Delay Interval), PINGREQ, DISCONNECT; topic aliases both ways,
//! shared subscriptions `$share/{group}/{filter}` (round robin), and [`Access`]:
//! username/password users, an ACL, the enhanced authentication hook ([`EnhancedAuth`],
//! `AUTH` during `CONNECT` and re-authentication with `AUTH` 0x19) and server
//! redirection; delivery guarantees: inflight windows both ways (Receive Maximum), a
//! bounded queue per session ([`Outbox`], which documents the policy), resends only on
//! resumption, session expiry and message expiry ([`Message`]), a cap on each
//! connection's unsent output, a Server Keep Alive cap. Every timer (delayed wills,
//! session expiry, authentication deadlines) is reported by one
//! [`BrokerState::poll_timeout`].

mod access;
mod acl;
mod alias;
mod auth;
mod client_id;
pub mod cluster;
mod connection;
mod expiry;
mod limits;
mod outbox;
mod persist;
mod retained;
mod routes;
mod sessions;
mod shared;
mod state;
pub mod sys;
mod will;

#[cfg(test)]
mod cluster_tests;
#[cfg(test)]
mod conformance_tests;
#[cfg(test)]
mod delivery_tests;
#[cfg(test)]
mod feature_tests;
#[cfg(test)]
mod test_wire;
#[cfg(test)]
mod tests;

pub use access::Access;
pub use acl::{Acl, ClientAcl, Rules};
pub use auth::{AuthExchange, AuthStep, EnhancedAuth, PasswordHash, PasswordHashError, Redirect, Users};
pub use cluster::{ClusterMessage, Forward, HandedSession, Link};
pub use connection::{Connection, ConnectionConfig, Event};
pub use expiry::{Message, SessionTimers, NEVER_EXPIRES};
pub use outbox::{Flight, FlowStep, Outbox, RecOutcome};
pub use persist::{
    decode_publish, encode_publish, from_wall_millis, stale_copies, wall_millis, RecordError, SessionCopy,
    SessionRecord, StoreOp, StoredMessage, StoredSession, SubscriptionRecord, FORMAT, SESSION_FORMAT,
};
pub use retained::Retained;
pub use state::{BrokerState, Connections};
pub use sys::{SysTopics, SysTotals};
