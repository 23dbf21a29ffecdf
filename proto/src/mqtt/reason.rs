//! Reason codes (5.0) and return codes (3.1.1), and which packet may carry which.

use std::fmt;

use super::{PacketType, ProtocolVersion, Side};

macro_rules! reason_codes {
    ($($(#[$doc:meta])* $name:ident = $value:literal,)*) => {
        /// A 5.0 reason code (section 2.4). 3.1.1's `CONNACK` return codes and `SUBACK`
        /// return codes map onto the 5.0 codes of the same meaning (see
        /// [`ReasonCode::v3_connack`], [`ReasonCode::from_v3_connack`]).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
        pub enum ReasonCode {
            $($(#[$doc])* $name = $value,)*
        }

        impl ReasonCode {
            /// Every reason code, in numeric order.
            pub const ALL: &'static [ReasonCode] = &[$(ReasonCode::$name,)*];

            /// The code of the byte `value`, if the specification defines one.
            pub fn from_u8(value: u8) -> Option<ReasonCode> {
                match value {
                    $($value => Some(ReasonCode::$name),)*
                    _ => None,
                }
            }
        }
    };
}

reason_codes! {
    /// 0x00: Success; also Normal disconnection (`DISCONNECT`) and Granted QoS 0 (`SUBACK`).
    #[default]
    Success = 0x00,
    /// 0x01: Granted QoS 1.
    GrantedQoS1 = 0x01,
    /// 0x02: Granted QoS 2.
    GrantedQoS2 = 0x02,
    /// 0x04: Disconnect with Will Message.
    DisconnectWithWillMessage = 0x04,
    /// 0x10: No matching subscribers.
    NoMatchingSubscribers = 0x10,
    /// 0x11: No subscription existed.
    NoSubscriptionExisted = 0x11,
    /// 0x18: Continue authentication.
    ContinueAuthentication = 0x18,
    /// 0x19: Re-authenticate.
    ReAuthenticate = 0x19,
    /// 0x80: Unspecified error (3.1.1's SUBACK Failure).
    UnspecifiedError = 0x80,
    /// 0x81: Malformed Packet.
    MalformedPacket = 0x81,
    /// 0x82: Protocol Error.
    ProtocolError = 0x82,
    /// 0x83: Implementation specific error.
    ImplementationSpecificError = 0x83,
    /// 0x84: Unsupported Protocol Version.
    UnsupportedProtocolVersion = 0x84,
    /// 0x85: Client Identifier not valid.
    ClientIdentifierNotValid = 0x85,
    /// 0x86: Bad User Name or Password.
    BadUserNameOrPassword = 0x86,
    /// 0x87: Not authorized.
    NotAuthorized = 0x87,
    /// 0x88: Server unavailable.
    ServerUnavailable = 0x88,
    /// 0x89: Server busy.
    ServerBusy = 0x89,
    /// 0x8A: Banned.
    Banned = 0x8A,
    /// 0x8B: Server shutting down.
    ServerShuttingDown = 0x8B,
    /// 0x8C: Bad authentication method.
    BadAuthenticationMethod = 0x8C,
    /// 0x8D: Keep Alive timeout.
    KeepAliveTimeout = 0x8D,
    /// 0x8E: Session taken over.
    SessionTakenOver = 0x8E,
    /// 0x8F: Topic Filter invalid.
    TopicFilterInvalid = 0x8F,
    /// 0x90: Topic Name invalid.
    TopicNameInvalid = 0x90,
    /// 0x91: Packet Identifier in use.
    PacketIdentifierInUse = 0x91,
    /// 0x92: Packet Identifier not found.
    PacketIdentifierNotFound = 0x92,
    /// 0x93: Receive Maximum exceeded.
    ReceiveMaximumExceeded = 0x93,
    /// 0x94: Topic Alias invalid.
    TopicAliasInvalid = 0x94,
    /// 0x95: Packet too large.
    PacketTooLarge = 0x95,
    /// 0x96: Message rate too high.
    MessageRateTooHigh = 0x96,
    /// 0x97: Quota exceeded.
    QuotaExceeded = 0x97,
    /// 0x98: Administrative action.
    AdministrativeAction = 0x98,
    /// 0x99: Payload format invalid.
    PayloadFormatInvalid = 0x99,
    /// 0x9A: Retain not supported.
    RetainNotSupported = 0x9A,
    /// 0x9B: QoS not supported.
    QoSNotSupported = 0x9B,
    /// 0x9C: Use another server.
    UseAnotherServer = 0x9C,
    /// 0x9D: Server moved.
    ServerMoved = 0x9D,
    /// 0x9E: Shared Subscriptions not supported.
    SharedSubscriptionsNotSupported = 0x9E,
    /// 0x9F: Connection rate exceeded.
    ConnectionRateExceeded = 0x9F,
    /// 0xA0: Maximum connect time.
    MaximumConnectTime = 0xA0,
    /// 0xA1: Subscription Identifiers not supported.
    SubscriptionIdentifiersNotSupported = 0xA1,
    /// 0xA2: Wildcard Subscriptions not supported.
    WildcardSubscriptionsNotSupported = 0xA2,
}

use ReasonCode::*;

/// 5.0 `CONNACK` codes (3.2.2.2).
const CONNACK: &[ReasonCode] = &[
    Success,
    UnspecifiedError,
    MalformedPacket,
    ProtocolError,
    ImplementationSpecificError,
    UnsupportedProtocolVersion,
    ClientIdentifierNotValid,
    BadUserNameOrPassword,
    NotAuthorized,
    ServerUnavailable,
    ServerBusy,
    Banned,
    BadAuthenticationMethod,
    TopicNameInvalid,
    PacketTooLarge,
    QuotaExceeded,
    PayloadFormatInvalid,
    RetainNotSupported,
    QoSNotSupported,
    UseAnotherServer,
    ServerMoved,
    ConnectionRateExceeded,
];

/// `PUBACK` and `PUBREC` codes (3.4.2.1, 3.5.2.1).
const PUBACK: &[ReasonCode] = &[
    Success,
    NoMatchingSubscribers,
    UnspecifiedError,
    ImplementationSpecificError,
    NotAuthorized,
    TopicNameInvalid,
    PacketIdentifierInUse,
    QuotaExceeded,
    PayloadFormatInvalid,
];

/// `PUBREL` and `PUBCOMP` codes (3.6.2.1, 3.7.2.1).
const PUBREL: &[ReasonCode] = &[Success, PacketIdentifierNotFound];

/// 5.0 `SUBACK` codes (3.9.3).
const SUBACK: &[ReasonCode] = &[
    Success,
    GrantedQoS1,
    GrantedQoS2,
    UnspecifiedError,
    ImplementationSpecificError,
    NotAuthorized,
    TopicFilterInvalid,
    PacketIdentifierInUse,
    QuotaExceeded,
    SharedSubscriptionsNotSupported,
    SubscriptionIdentifiersNotSupported,
    WildcardSubscriptionsNotSupported,
];

/// 3.1.1 `SUBACK` return codes: the granted QoS or Failure (0x80).
const SUBACK_V3: &[ReasonCode] = &[Success, GrantedQoS1, GrantedQoS2, UnspecifiedError];

/// `UNSUBACK` codes (3.11.3).
const UNSUBACK: &[ReasonCode] = &[
    Success,
    NoSubscriptionExisted,
    UnspecifiedError,
    ImplementationSpecificError,
    NotAuthorized,
    TopicFilterInvalid,
    PacketIdentifierInUse,
];

/// `DISCONNECT` codes either side may send (3.14.2.1).
const DISCONNECT_EITHER: &[ReasonCode] = &[
    Success,
    UnspecifiedError,
    MalformedPacket,
    ProtocolError,
    ImplementationSpecificError,
    TopicNameInvalid,
    ReceiveMaximumExceeded,
    TopicAliasInvalid,
    PacketTooLarge,
    MessageRateTooHigh,
    QuotaExceeded,
    AdministrativeAction,
    PayloadFormatInvalid,
];

/// `DISCONNECT` codes only a server sends.
const DISCONNECT_SERVER: &[ReasonCode] = &[
    NotAuthorized,
    ServerBusy,
    ServerShuttingDown,
    KeepAliveTimeout,
    SessionTakenOver,
    TopicFilterInvalid,
    RetainNotSupported,
    QoSNotSupported,
    UseAnotherServer,
    ServerMoved,
    SharedSubscriptionsNotSupported,
    ConnectionRateExceeded,
    MaximumConnectTime,
    SubscriptionIdentifiersNotSupported,
    WildcardSubscriptionsNotSupported,
];

/// `AUTH` codes (3.15.2.1).
const AUTH: &[ReasonCode] = &[Success, ContinueAuthentication, ReAuthenticate];

impl ReasonCode {
    /// The byte on the wire.
    #[inline]
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// Whether this code means failure (0x80 and above).
    pub fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// Whether a packet of type `packet`, sent by `sender` in `version`, may carry this
    /// code. Packets without a reason code (and 3.1.1 packets other than `CONNACK` and
    /// `SUBACK`) accept only [`Success`](ReasonCode::Success), which is what their
    /// absence means.
    pub fn valid_in(self, packet: PacketType, sender: Side, version: ProtocolVersion) -> bool {
        let table: &[ReasonCode] = match (packet, version.is_v5()) {
            (PacketType::ConnAck, true) => CONNACK,
            (PacketType::ConnAck, false) => return self.v3_connack().is_some(),
            (PacketType::SubAck, false) => SUBACK_V3,
            (PacketType::SubAck, true) => SUBACK,
            (_, false) => &[Success],
            (PacketType::PubAck | PacketType::PubRec, true) => PUBACK,
            (PacketType::PubRel | PacketType::PubComp, true) => PUBREL,
            (PacketType::UnsubAck, true) => UNSUBACK,
            (PacketType::Disconnect, true) => {
                return DISCONNECT_EITHER.contains(&self)
                    || match sender {
                        Side::Client => self == DisconnectWithWillMessage,
                        Side::Server => DISCONNECT_SERVER.contains(&self),
                    };
            }
            (PacketType::Auth, true) => AUTH,
            (_, true) => &[Success],
        };
        table.contains(&self)
    }

    /// The 3.1.1 `CONNACK` return code of the same meaning (0 accepted, 1 unacceptable
    /// protocol version, 2 identifier rejected, 3 server unavailable, 4 bad user name or
    /// password, 5 not authorized), if there is one.
    pub fn v3_connack(self) -> Option<u8> {
        Some(match self {
            Success => 0,
            UnsupportedProtocolVersion => 1,
            ClientIdentifierNotValid => 2,
            ServerUnavailable => 3,
            BadUserNameOrPassword => 4,
            NotAuthorized => 5,
            _ => return None,
        })
    }

    /// The 5.0 code of a 3.1.1 `CONNACK` return code (0..=5).
    pub fn from_v3_connack(code: u8) -> Option<ReasonCode> {
        Some(match code {
            0 => Success,
            1 => UnsupportedProtocolVersion,
            2 => ClientIdentifierNotValid,
            3 => ServerUnavailable,
            4 => BadUserNameOrPassword,
            5 => NotAuthorized,
            _ => return None,
        })
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?} (0x{:02X})", self.as_u8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_through_its_byte() {
        assert_eq!(ReasonCode::ALL.len(), 43);
        for &code in ReasonCode::ALL {
            assert_eq!(ReasonCode::from_u8(code.as_u8()), Some(code));
        }
        let defined = (0..=255u8).filter(|&b| ReasonCode::from_u8(b).is_some()).count();
        assert_eq!(defined, ReasonCode::ALL.len());
    }

    #[test]
    fn disconnect_codes_depend_on_the_sender() {
        let v5 = ProtocolVersion::V5;
        assert!(DisconnectWithWillMessage.valid_in(PacketType::Disconnect, Side::Client, v5));
        assert!(!DisconnectWithWillMessage.valid_in(PacketType::Disconnect, Side::Server, v5));
        assert!(ServerShuttingDown.valid_in(PacketType::Disconnect, Side::Server, v5));
        assert!(!ServerShuttingDown.valid_in(PacketType::Disconnect, Side::Client, v5));
        assert!(MalformedPacket.valid_in(PacketType::Disconnect, Side::Client, v5));
    }

    #[test]
    fn v3_codes_are_the_3_1_1_tables() {
        let v3 = ProtocolVersion::V3_1_1;
        for code in 0..=5 {
            let rc = ReasonCode::from_v3_connack(code).expect("defined");
            assert_eq!(rc.v3_connack(), Some(code));
            assert!(rc.valid_in(PacketType::ConnAck, Side::Server, v3));
        }
        assert!(!Banned.valid_in(PacketType::ConnAck, Side::Server, v3));
        assert!(UnspecifiedError.valid_in(PacketType::SubAck, Side::Server, v3));
        assert!(!NotAuthorized.valid_in(PacketType::SubAck, Side::Server, v3));
        assert!(!NoMatchingSubscribers.valid_in(PacketType::PubAck, Side::Client, v3));
        assert!(NoMatchingSubscribers.valid_in(PacketType::PubAck, Side::Client, ProtocolVersion::V5));
        assert!(!NoMatchingSubscribers.valid_in(PacketType::PubComp, Side::Client, ProtocolVersion::V5));
    }
}
