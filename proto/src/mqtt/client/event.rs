//! What a client connection reports: [`Event`], and the [`Message`]s it receives.

use bytes::Bytes;

use crate::mqtt::{Properties, QoS, ReasonCode};

use super::ConnectionError;

/// Names one publish of ours until its acknowledgement (unique per connection and
/// across a resumed session, unlike packet identifiers, which are reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublishId(pub u64);

/// Names one `SUBSCRIBE` or `UNSUBSCRIBE` of ours until its acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// An application message the server delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its topic (a topic alias already resolved).
    pub topic: Bytes,
    /// Its payload.
    pub payload: Bytes,
    /// The QoS it was delivered with.
    pub qos: QoS,
    /// Whether it is a retained message sent because of a subscription.
    pub retain: bool,
    /// Its 5.0 properties (the Topic Alias removed).
    pub properties: Properties,
}

/// Something that happened on the connection, for the body to act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `CONNACK` accepted the connection.
    Connected {
        /// Whether the server resumed a session ([`Connection`](super::Connection)
        /// re-subscribed otherwise).
        session_present: bool,
        /// The identifier the server assigned (5.0), if it did.
        assigned_client_id: Option<Bytes>,
    },
    /// A message was queued for [`Connection::next_message`](super::Connection::next_message).
    Messages,
    /// A QoS 1 or 2 publish is complete: `PUBACK`, or `PUBCOMP` (or a `PUBREC` with an
    /// error code, which ends the exchange). `Ok` unless the server's reason code is an
    /// error (5.0). A QoS 0 publish has no such event.
    Published {
        /// The publish.
        id: PublishId,
        /// The server's answer.
        result: Result<(), ReasonCode>,
    },
    /// `SUBACK`: a reason code (the granted QoS, or an error) per filter, in order.
    Subscribed {
        /// The request.
        id: RequestId,
        /// One per filter.
        codes: Vec<ReasonCode>,
    },
    /// `UNSUBACK`: a reason code per filter (5.0; `Success` for each in 3.1.1).
    Unsubscribed {
        /// The request.
        id: RequestId,
        /// One per filter.
        codes: Vec<ReasonCode>,
    },
    /// The connection is over (also [`Connection::error`](super::Connection::error)).
    Poisoned(ConnectionError),
}
