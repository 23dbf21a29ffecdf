//! Why a packet was refused, with the reason code a 5.0 peer answers with.

use super::{PacketType, PropertyId, ProtocolVersion, ReasonCode, Side};

/// A rule of the specification that a packet's content breaks. Shared by the decoder
/// (a peer sent it: fatal) and the encoder (the caller asked for it: nothing written),
/// so what one side refuses to write the other refuses to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Violation {
    /// A reason code this packet may not carry (in this version, from this sender).
    #[error("reason code 0x{code:02X} is not valid in {packet}")]
    InvalidReasonCode {
        /// The packet.
        packet: PacketType,
        /// The byte received or asked for.
        code: u8,
    },
    /// A property this packet (or will) may not carry (2.2.2.2: malformed).
    #[error("property {property:?} is not valid in {context}")]
    PropertyNotAllowed {
        /// The property.
        property: PropertyId,
        /// Where it was found.
        context: PropertyContext,
    },
    /// A property whose value is out of its range: a flag other than 0 or 1, a Receive
    /// Maximum, Maximum Packet Size, Topic Alias or Subscription Identifier of 0, a
    /// Maximum QoS of 2 (protocol error).
    #[error("property {0:?} has a value out of its range")]
    InvalidPropertyValue(PropertyId),
    /// Authentication Data without an Authentication Method (3.1.2.11.10).
    #[error("Authentication Data without an Authentication Method")]
    AuthDataWithoutMethod,
    /// A 3.1.1 packet with properties, or a reason code only 5.0 can express.
    #[error("{0} in 3.1.1 cannot carry 5.0 properties or reason codes")]
    NotInV3(PacketType),
    /// A packet this sender never sends in this version (`AUTH` in 3.1.1, `CONNECT` from a
    /// server, ...).
    #[error("{packet} is not sent by a {sender}")]
    UnexpectedPacket {
        /// The packet.
        packet: PacketType,
        /// Who sent it.
        sender: Side,
    },
    /// A Packet Identifier of 0 [MQTT-2.2.1-3].
    #[error("packet identifier 0")]
    ZeroPacketId,
    /// DUP set on a QoS 0 `PUBLISH` [MQTT-3.3.1-2].
    #[error("DUP flag on a QoS 0 PUBLISH")]
    DupOnQos0,
    /// A `PUBLISH` (or will) Topic Name with `+` or `#` [MQTT-3.3.2-2].
    #[error("wildcard in a topic name")]
    WildcardInTopicName,
    /// A Response Topic with `+` or `#` [MQTT-3.3.2-14].
    #[error("wildcard in a response topic")]
    WildcardInResponseTopic,
    /// An empty Topic Name (allowed only in 5.0, with a Topic Alias).
    #[error("empty topic name")]
    EmptyTopicName,
    /// A Subscription Identifier in a `PUBLISH` from a client [MQTT-3.3.4-6].
    #[error("subscription identifier in a PUBLISH from a client")]
    SubscriptionIdFromClient,
    /// A `SUBSCRIBE`, `UNSUBSCRIBE`, `SUBACK` or `UNSUBACK` with an empty list.
    #[error("{0} with an empty list")]
    EmptyList(PacketType),
    /// A 5.0 subscription's Retain Handling of 3.
    #[error("retain handling 3")]
    InvalidRetainHandling,
    /// No Local on a shared subscription [MQTT-3.8.3-4].
    #[error("No Local on a shared subscription")]
    NoLocalOnSharedSubscription,
    /// 5.0 subscription options (No Local, Retain As Published, Retain Handling) in a
    /// 3.1.1 `SUBSCRIBE`, whose reserved bits would carry them.
    #[error("5.0 subscription options in 3.1.1")]
    SubscriptionOptionsInV3,
    /// A 3.1.1 `CONNECT` with a password but no user name [MQTT-3.1.2-22].
    #[error("password without a user name")]
    PasswordWithoutUsername,
    /// A `CONNACK` with Session Present set and a failure code [MQTT-3.2.2-6].
    #[error("session present with a failure code")]
    SessionPresentOnFailure,
    /// A Session Expiry Interval in a `DISCONNECT` from a server [MQTT-3.14.2-2].
    #[error("session expiry interval in a DISCONNECT from the server")]
    SessionExpiryFromServer,
    /// A string or binary field over 65,535 bytes (encoder only).
    #[error("field of {0} bytes is longer than 65,535")]
    FieldTooLong(usize),
    /// A UTF-8 string field that is not well formed UTF-8, or holds U+0000 (encoder
    /// side of [`DecodeError::InvalidUtf8`] and [`DecodeError::NullCharacter`]).
    #[error("string is not well formed UTF-8 without U+0000")]
    InvalidString,
}

impl Violation {
    /// The 5.0 reason code a receiver answers with (in `CONNACK` before the connection
    /// is accepted, `DISCONNECT` after).
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            Violation::PropertyNotAllowed { .. } | Violation::FieldTooLong(_) | Violation::InvalidString => {
                ReasonCode::MalformedPacket
            }
            // A Topic Alias of 0 [MQTT-3.3.2-8]: 0x94 Topic Alias invalid (mosquitto 2.0
            // answers 0x81). A wildcard in a topic name is a Protocol Error, not 0x90
            // ("correctly formed, but not accepted"), as mosquitto answers too.
            Violation::InvalidPropertyValue(PropertyId::TopicAlias) => ReasonCode::TopicAliasInvalid,
            // The flags of 3.1.1 CONNECT and SUBSCRIBE are checked bit by bit: malformed.
            Violation::PasswordWithoutUsername | Violation::SubscriptionOptionsInV3 | Violation::DupOnQos0 => {
                ReasonCode::MalformedPacket
            }
            _ => ReasonCode::ProtocolError,
        }
    }
}

/// Where a property was found: a packet, or the Will Properties of a `CONNECT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyContext {
    /// A packet's own properties.
    Packet(PacketType),
    /// The Will Properties in a `CONNECT` payload.
    Will,
}

impl std::fmt::Display for PropertyContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PropertyContext::Packet(p) => write!(f, "{p}"),
            PropertyContext::Will => f.write_str("Will Properties"),
        }
    }
}

/// A fatal decoding error: the connection cannot go on. [`reason_code`](Self::reason_code)
/// says what a 5.0 peer answers (`CONNACK` or `DISCONNECT`); a 3.1.1 server closes the
/// connection, except for an unsupported protocol level, answered with `CONNACK` return
/// code 1 ([`ReasonCode::v3_connack`]).
///
/// The variant does not depend on how the stream was cut into segments.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Packet type 0, or 15 (`AUTH`) before 5.0.
    #[error("reserved packet type {0}")]
    ReservedPacketType(u8),
    /// Fixed-header flags other than the type requires [MQTT-2.1.3-1].
    #[error("{packet} with flags {flags:04b}")]
    InvalidFlags {
        /// The packet.
        packet: PacketType,
        /// The low nibble received.
        flags: u8,
    },
    /// A QoS of 3 (`PUBLISH`, a will, a subscription) [MQTT-3.3.1-4].
    #[error("QoS 3")]
    InvalidQos,
    /// A Variable Byte Integer of a fifth byte.
    #[error("variable byte integer longer than 4 bytes")]
    VarIntTooLong,
    /// A Variable Byte Integer not in its shortest form [MQTT-1.5.5-1].
    #[error("variable byte integer not in its shortest form")]
    VarIntNotShortest,
    /// The packet is larger than the Maximum Packet Size, known from the fixed header
    /// before any of its body is buffered.
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// The whole packet's size, fixed header included.
        size: u64,
        /// The limit in force.
        max: u32,
    },
    /// A field runs past the end of the packet (its Remaining Length).
    #[error("field runs past the end of the packet")]
    Truncated,
    /// Bytes left in the packet after its last field.
    #[error("{0} has bytes after its last field")]
    TrailingBytes(PacketType),
    /// A string that is not well formed UTF-8 (surrogates included) [MQTT-1.5.4-1].
    #[error("string is not well formed UTF-8")]
    InvalidUtf8,
    /// A string holding U+0000 [MQTT-1.5.4-2].
    #[error("string holds U+0000")]
    NullCharacter,
    /// A `CONNECT` whose protocol name is neither `MQTT` nor `MQIsdp`, or does not match
    /// its level.
    #[error("unknown protocol name")]
    InvalidProtocolName,
    /// A `CONNECT` protocol level other than 3, 4 or 5 [MQTT-3.1.2-2].
    #[error("unsupported protocol level {0}")]
    UnsupportedProtocolLevel(u8),
    /// The reserved bit of `CONNECT`'s flags is set [MQTT-3.1.2-3].
    #[error("reserved CONNECT flag set")]
    ConnectReservedFlag,
    /// Will QoS or Will Retain set without the Will Flag [MQTT-3.1.2-11, -13].
    #[error("will QoS or retain without a will")]
    WillFlagsWithoutWill,
    /// Reserved bits of `CONNACK`'s acknowledge flags set [MQTT-3.2.2-1].
    #[error("reserved CONNACK flags set")]
    ConnAckReservedFlags,
    /// Reserved bits of a subscription's options set [MQTT-3.8.3-5].
    #[error("reserved subscription option bits set")]
    SubscriptionReservedBits,
    /// A property identifier the specification does not define.
    #[error("unknown property identifier 0x{0:02X}")]
    UnknownProperty(u32),
    /// A single-valued property given twice (protocol error).
    #[error("property {0:?} given more than once")]
    DuplicateProperty(PropertyId),
    /// A server-side decoder that has not yet been told the protocol version got a
    /// packet other than `CONNECT` [MQTT-3.1.0-1].
    #[error("{0} before CONNECT")]
    ConnectExpected(PacketType),
    /// The content breaks a rule that the encoder enforces too.
    #[error(transparent)]
    Invalid(#[from] Violation),
}

impl DecodeError {
    /// The 5.0 reason code a receiver answers with: 0x81 Malformed Packet, 0x82 Protocol
    /// Error, 0x84 Unsupported Protocol Version, 0x94 Topic Alias invalid or 0x95 Packet
    /// too large.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            DecodeError::PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            DecodeError::UnsupportedProtocolLevel(_) => ReasonCode::UnsupportedProtocolVersion,
            DecodeError::InvalidProtocolName | DecodeError::DuplicateProperty(_) | DecodeError::ConnectExpected(_) => {
                ReasonCode::ProtocolError
            }
            DecodeError::Invalid(v) => v.reason_code(),
            _ => ReasonCode::MalformedPacket,
        }
    }
}

/// Why a packet cannot be put on the wire. On error nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The packet would be larger than the peer's Maximum Packet Size, or than the
    /// largest Remaining Length (268,435,455).
    #[error("packet of {size} bytes exceeds the maximum of {max}")]
    PacketTooLarge {
        /// The whole packet's size, fixed header included.
        size: u64,
        /// The limit in force.
        max: u64,
    },
    /// The version was not set (a server-side codec before `CONNECT`).
    #[error("protocol version unknown: decode or encode CONNECT first")]
    VersionUnknown,
    /// `CONNECT` names another version than the codec speaks.
    #[error("CONNECT for {0} on a codec speaking another version")]
    VersionMismatch(ProtocolVersion),
    /// The content breaks a rule of the specification.
    #[error(transparent)]
    Invalid(#[from] Violation),
}
