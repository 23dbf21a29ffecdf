//! The small enums every packet speaks of: protocol version, QoS, packet type, side.

use std::fmt;

/// The protocol level a connection speaks, fixed by its `CONNECT`.
///
/// 3.1 (`MQIsdp`, level 3) and 3.1.1 (`MQTT`, level 4) share one wire format; 5.0
/// (`MQTT`, level 5) adds properties, reason codes and `AUTH`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name `MQIsdp`, level 3.
    V3_1,
    /// MQTT 3.1.1: protocol name `MQTT`, level 4.
    V3_1_1,
    /// MQTT 5.0: protocol name `MQTT`, level 5.
    V5,
}

impl ProtocolVersion {
    /// The protocol level byte of `CONNECT`.
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V3_1 => 3,
            ProtocolVersion::V3_1_1 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    /// The protocol name `CONNECT` carries with this level.
    pub fn protocol_name(self) -> &'static [u8] {
        match self {
            ProtocolVersion::V3_1 => b"MQIsdp",
            ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => b"MQTT",
        }
    }

    /// Whether packets carry properties and reason codes (5.0).
    #[inline]
    pub fn is_v5(self) -> bool {
        self == ProtocolVersion::V5
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolVersion::V3_1 => "3.1",
            ProtocolVersion::V3_1_1 => "3.1.1",
            ProtocolVersion::V5 => "5.0",
        })
    }
}

/// Quality of service of a publication or a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    /// 0: at most once, no acknowledgement.
    #[default]
    AtMostOnce,
    /// 1: at least once, `PUBACK`.
    AtLeastOnce,
    /// 2: exactly once, `PUBREC`/`PUBREL`/`PUBCOMP`.
    ExactlyOnce,
}

impl QoS {
    /// The QoS of the two bits `bits` (0..=3); `None` for 3, which is malformed.
    #[inline]
    pub fn from_bits(bits: u8) -> Option<QoS> {
        match bits {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    /// The two-bit value on the wire.
    #[inline]
    pub fn bits(self) -> u8 {
        self as u8
    }
}

/// The control packet types, numbered as in the fixed header's high nibble.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    /// 1: a client asks to connect.
    Connect = 1,
    /// 2: the server's answer to `CONNECT`.
    ConnAck = 2,
    /// 3: an application message, either direction.
    Publish = 3,
    /// 4: QoS 1 acknowledgement.
    PubAck = 4,
    /// 5: QoS 2, publish received.
    PubRec = 5,
    /// 6: QoS 2, publish release.
    PubRel = 6,
    /// 7: QoS 2, publish complete.
    PubComp = 7,
    /// 8: a client subscribes.
    Subscribe = 8,
    /// 9: the server's answer to `SUBSCRIBE`.
    SubAck = 9,
    /// 10: a client unsubscribes.
    Unsubscribe = 10,
    /// 11: the server's answer to `UNSUBSCRIBE`.
    UnsubAck = 11,
    /// 12: keepalive request.
    PingReq = 12,
    /// 13: keepalive answer.
    PingResp = 13,
    /// 14: the end of a connection, either direction (server-sent only in 5.0).
    Disconnect = 14,
    /// 15: enhanced authentication exchange (5.0 only).
    Auth = 15,
}

impl PacketType {
    /// The type of the high nibble `nibble`; `None` for 0 (reserved).
    pub fn from_nibble(nibble: u8) -> Option<PacketType> {
        Some(match nibble {
            1 => PacketType::Connect,
            2 => PacketType::ConnAck,
            3 => PacketType::Publish,
            4 => PacketType::PubAck,
            5 => PacketType::PubRec,
            6 => PacketType::PubRel,
            7 => PacketType::PubComp,
            8 => PacketType::Subscribe,
            9 => PacketType::SubAck,
            10 => PacketType::Unsubscribe,
            11 => PacketType::UnsubAck,
            12 => PacketType::PingReq,
            13 => PacketType::PingResp,
            14 => PacketType::Disconnect,
            15 => PacketType::Auth,
            _ => return None,
        })
    }

    /// The fixed header's flag nibble this type must carry; `None` for `PUBLISH`, whose
    /// flags are DUP, QoS and RETAIN. `PUBREL`, `SUBSCRIBE` and `UNSUBSCRIBE` carry
    /// `0010`, every other type `0000` [MQTT-2.1.3-1].
    pub fn required_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }

    /// Whether a peer on `sender` side may send this type in `version`.
    pub fn sent_by(self, sender: Side, version: ProtocolVersion) -> bool {
        use PacketType::*;
        match self {
            Connect | Subscribe | Unsubscribe | PingReq => sender == Side::Client,
            ConnAck | SubAck | UnsubAck | PingResp => sender == Side::Server,
            Publish | PubAck | PubRec | PubRel | PubComp => true,
            // A 3.1.1 server closes the connection instead of sending DISCONNECT.
            Disconnect => sender == Side::Client || version.is_v5(),
            Auth => version.is_v5(),
        }
    }

    /// The name as the specification writes it.
    pub fn name(self) -> &'static str {
        match self {
            PacketType::Connect => "CONNECT",
            PacketType::ConnAck => "CONNACK",
            PacketType::Publish => "PUBLISH",
            PacketType::PubAck => "PUBACK",
            PacketType::PubRec => "PUBREC",
            PacketType::PubRel => "PUBREL",
            PacketType::PubComp => "PUBCOMP",
            PacketType::Subscribe => "SUBSCRIBE",
            PacketType::SubAck => "SUBACK",
            PacketType::Unsubscribe => "UNSUBSCRIBE",
            PacketType::UnsubAck => "UNSUBACK",
            PacketType::PingReq => "PINGREQ",
            PacketType::PingResp => "PINGRESP",
            PacketType::Disconnect => "DISCONNECT",
            PacketType::Auth => "AUTH",
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One end of a connection. A codec is built for the side it runs on: a server
/// decodes what clients send and encodes what servers send, a client the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The end that sent `CONNECT`.
    Client,
    /// The broker.
    Server,
}

impl Side {
    /// The other end.
    pub fn peer(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Client => "client",
            Side::Server => "server",
        })
    }
}
