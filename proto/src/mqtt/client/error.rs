//! Why a client connection ended ([`ConnectionError`]) or refused a call
//! ([`SendError`]).

use bytes::Bytes;

use crate::mqtt::{DecodeError, EncodeError, PacketType, QoS, ReasonCode};

/// Why a client connection ended: stored once, every later call reports it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    /// The server's bytes broke the specification (we sent DISCONNECT with the code,
    /// in 5.0).
    #[error("malformed input from the server: {0}")]
    Decode(#[from] DecodeError),
    /// The server refused the connection in `CONNACK`.
    #[error("the server refused the connection: {code:?}")]
    Refused {
        /// Its reason code (3.1.1 return codes mapped to their 5.0 names).
        code: ReasonCode,
        /// Its Reason String (5.0), if any.
        reason: Option<Bytes>,
    },
    /// The server sent `DISCONNECT` (5.0).
    #[error("the server disconnected: {code:?}")]
    ServerDisconnect {
        /// Its reason code.
        code: ReasonCode,
        /// Its Reason String, if any.
        reason: Option<Bytes>,
    },
    /// The server broke a rule of the protocol's state machine (a packet out of
    /// place, an unknown packet identifier or topic alias, its window exceeded): we
    /// sent DISCONNECT with `code` (5.0) and closed.
    #[error("protocol violation by the server: {what} ({code:?})")]
    Protocol {
        /// What happened.
        what: ProtocolViolation,
        /// The reason code we disconnected with.
        code: ReasonCode,
    },
    /// A packet of ours could not be encoded (a configured field too long, or a
    /// packet over the server's Maximum Packet Size).
    #[error("cannot encode our packet: {0}")]
    Encode(EncodeError),
    /// No `CONNACK` within the connect timeout.
    #[error("no CONNACK in time")]
    HandshakeTimeout,
    /// A `PINGREQ` (or any packet, once one was due) went unanswered too long.
    #[error("the server stopped answering (keep alive)")]
    KeepAliveTimeout,
    /// The stream ended.
    #[error("connection closed")]
    Closed,
    /// We sent `DISCONNECT` ([`Connection::disconnect`](super::Connection::disconnect)).
    #[error("disconnected by the client")]
    Disconnected,
}

/// A rule of the client/server exchange the server broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolViolation {
    /// A packet a server must not send now (a second `CONNACK`, anything before it).
    #[error("unexpected {0}")]
    Unexpected(PacketType),
    /// More QoS 2 messages unreleased than our Receive Maximum.
    #[error("receive maximum exceeded")]
    ReceiveMaximum,
    /// A Topic Alias of 0 or above our Topic Alias Maximum.
    #[error("topic alias {0} out of range")]
    TopicAliasRange(u16),
    /// A Topic Alias never given a topic on this connection.
    #[error("unknown topic alias {0}")]
    UnknownTopicAlias(u16),
}

/// Why a call was refused; nothing was sent, the connection stays as it was.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The connection is over.
    #[error(transparent)]
    Poisoned(ConnectionError),
    /// The output buffer or the packet identifiers are exhausted: drain, then retry.
    #[error("output full ({queued} bytes queued)")]
    Backpressure {
        /// Bytes waiting.
        queued: usize,
    },
    /// An invalid topic name or filter.
    #[error("invalid topic")]
    InvalidTopic,
    /// The server's Maximum QoS is lower (5.0 CONNACK).
    #[error("the server accepts at most {max:?}")]
    QosNotSupported {
        /// The server's maximum.
        max: QoS,
    },
    /// The server has no retained messages (5.0 CONNACK).
    #[error("the server does not support retained messages")]
    RetainNotSupported,
    /// The packet does not fit (our rules or the server's Maximum Packet Size).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}
