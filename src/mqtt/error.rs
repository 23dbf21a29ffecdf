//! What can go wrong talking to an MQTT server, as one typed enum.

use monocoque_proto::mqtt::client::{ConnectionError, SendError};
use monocoque_proto::mqtt::ReasonCode;

use super::LinkError;
use crate::url::UrlError;

/// Why a [`Client`](super::Client) or [`Subscription`](super::Subscription) call failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The link under the connection failed: a malformed URL, the driver, the
    /// connect, its timeout, or a reconnect that ran out of attempts.
    #[error(transparent)]
    Link(#[from] LinkError),
    /// The server refused the connection in `CONNACK` (credentials, client id, not
    /// authorized, ...). A reconnect does not try it again with the same settings.
    #[error("the server refused the connection: {0}")]
    Rejected(ConnectionError),
    /// The connection was lost (closed, malformed input, keep alive, the server's
    /// `DISCONNECT`); the next call reconnects.
    #[error("connection lost: {0}")]
    Connection(ConnectionError),
    /// The connection was lost and reconnecting is off.
    #[error("connection lost and reconnecting is disabled: {0}")]
    Disconnected(ConnectionError),
    /// The call cannot be sent (an invalid topic, a QoS or retain the server refuses, a
    /// packet too large). Nothing was sent.
    #[error("refused: {0}")]
    Refused(SendError),
    /// The server answered with an error reason code: a `PUBACK`/`PUBREC` (5.0) or a
    /// `SUBACK` failure (0x80 in 3.1.1).
    #[error("the server answered {0:?}")]
    Server(ReasonCode),
    /// Not done within the call's timeout.
    #[error("timed out")]
    Timeout,
    /// The subscription was unsubscribed.
    #[error("subscription closed")]
    SubscriptionClosed,
}

impl From<UrlError> for Error {
    fn from(e: UrlError) -> Self {
        Error::Link(LinkError::Url(e))
    }
}

impl From<ConnectionError> for Error {
    /// A refused `CONNACK` is [`Error::Rejected`], any other loss [`Error::Connection`].
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::Refused { .. } => Error::Rejected(e),
            other => Error::Connection(other),
        }
    }
}
