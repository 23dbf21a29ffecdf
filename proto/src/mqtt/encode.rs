//! The encoder: every rule checked before a byte is written, the shortest Variable Byte
//! Integers, payloads shared rather than copied where the sink can.

use super::error::EncodeError;
use super::packet::Packet;
use super::wire::{vbi_len, Sink, SinkExt, VBI_MAX};
use super::{ProtocolVersion, Side};

/// Encodes the packets `side` sends.
///
/// A client-side encoder learns the version from the `CONNECT` it encodes (or
/// [`set_version`](Self::set_version)); a server-side one is told the version of the
/// `CONNECT` it decoded. [`set_max_packet_size`](Self::set_max_packet_size) sets the
/// peer's Maximum Packet Size: a larger packet is refused, not sent.
#[derive(Debug, Clone)]
pub struct Encoder {
    side: Side,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
}

/// The largest packet the protocol can frame: a 4-byte Remaining Length of 268,435,455
/// after the type byte.
pub const PROTOCOL_MAX_PACKET_SIZE: u32 = 1 + 4 + VBI_MAX;

impl Encoder {
    /// An encoder for `side`, version unknown, no size limit but the protocol's.
    pub fn new(side: Side) -> Encoder {
        Encoder {
            side,
            version: None,
            max_packet_size: PROTOCOL_MAX_PACKET_SIZE,
        }
    }

    /// An encoder for `side` speaking `version`.
    pub fn with_version(side: Side, version: ProtocolVersion) -> Encoder {
        Encoder {
            version: Some(version),
            ..Encoder::new(side)
        }
    }

    /// The side it encodes for.
    pub fn side(&self) -> Side {
        self.side
    }

    /// The protocol version, once known.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Sets the protocol version.
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = Some(version);
    }

    /// Sets the peer's Maximum Packet Size.
    pub fn set_max_packet_size(&mut self, max: u32) {
        self.max_packet_size = max;
    }

    /// The bytes `packet` takes on the wire, after checking it can be sent.
    pub fn encoded_len(&self, packet: &Packet) -> Result<usize, EncodeError> {
        let version = self.version_for(packet)?;
        packet.validate(version, self.side)?;
        packet.check_fields()?;
        self.size(packet, version).map(|(size, _)| size)
    }

    /// Writes `packet` at the end of `dst`; on error nothing is written.
    pub fn encode<S: Sink + ?Sized>(&mut self, packet: &Packet, dst: &mut S) -> Result<(), EncodeError> {
        let version = self.version_for(packet)?;
        packet.validate(version, self.side)?;
        packet.check_fields()?;
        let (_, body) = self.size(packet, version)?;
        dst.put_u8(((packet.packet_type() as u8) << 4) | packet.flags());
        dst.put_vbi(body as u32);
        packet.write_body(version, dst);
        if self.version.is_none() {
            self.version = Some(version);
        }
        Ok(())
    }

    fn version_for(&self, packet: &Packet) -> Result<ProtocolVersion, EncodeError> {
        match (packet, self.version) {
            (Packet::Connect(c), Some(v)) if c.protocol != v => Err(EncodeError::VersionMismatch(c.protocol)),
            (Packet::Connect(c), _) => Ok(c.protocol),
            (_, Some(v)) => Ok(v),
            (_, None) => Err(EncodeError::VersionUnknown),
        }
    }

    /// The whole size and the Remaining Length, within the limits.
    fn size(&self, packet: &Packet, version: ProtocolVersion) -> Result<(usize, usize), EncodeError> {
        let body = packet.body_len(version);
        let size = if body > VBI_MAX as usize {
            body as u64 + 5
        } else {
            (1 + vbi_len(body as u32) + body) as u64
        };
        if body > VBI_MAX as usize || size > u64::from(self.max_packet_size) {
            return Err(EncodeError::PacketTooLarge {
                size,
                max: u64::from(self.max_packet_size),
            });
        }
        Ok((size as usize, body))
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::mqtt::{Ack, PacketType, Properties, PropertyContext, PropertyId, Publish, QoS, ReasonCode, Violation};

    fn publish(topic: &'static [u8], payload: Bytes, properties: Properties) -> Packet {
        Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: Bytes::from_static(topic),
            packet_id: 0,
            properties,
            payload,
        })
    }

    /// Encodes `packet` as a 5.0 client would, checking nothing is written on error.
    fn encode(packet: &Packet, max: u32) -> Result<Vec<u8>, EncodeError> {
        let mut e = Encoder::with_version(Side::Client, ProtocolVersion::V5);
        e.set_max_packet_size(max);
        let mut out = Vec::new();
        let r = e.encode(packet, &mut out);
        if r.is_err() {
            assert!(out.is_empty(), "wrote {out:?} before failing");
        }
        r.map(|()| out)
    }

    #[test]
    fn every_rule_is_checked_before_writing() {
        let none = Properties::default();
        assert_eq!(
            encode(&publish(b"a/+", Bytes::new(), none.clone()), u32::MAX),
            Err(Violation::WildcardInTopicName.into())
        );
        assert_eq!(
            encode(&publish(b"a\0", Bytes::new(), none.clone()), u32::MAX),
            Err(Violation::InvalidString.into())
        );
        let long = Properties {
            content_type: Some(Bytes::from(vec![b'x'; 65_536])),
            ..Properties::default()
        };
        assert_eq!(
            encode(&publish(b"t", Bytes::new(), long), u32::MAX),
            Err(Violation::FieldTooLong(65_536).into())
        );
        let wrong = Properties {
            session_expiry_interval: Some(1),
            ..Properties::default()
        };
        assert_eq!(
            encode(&publish(b"t", Bytes::new(), wrong), u32::MAX),
            Err(Violation::PropertyNotAllowed {
                property: PropertyId::SessionExpiryInterval,
                context: PropertyContext::Packet(PacketType::Publish),
            }
            .into())
        );
        let ack = Packet::PubAck(Ack {
            packet_id: 1,
            code: ReasonCode::GrantedQoS1,
            properties: none.clone(),
        });
        assert_eq!(
            encode(&ack, u32::MAX),
            Err(Violation::InvalidReasonCode {
                packet: PacketType::PubAck,
                code: 1
            }
            .into())
        );
        assert_eq!(
            encode(&Packet::PingResp, u32::MAX),
            Err(Violation::UnexpectedPacket {
                packet: PacketType::PingResp,
                sender: Side::Client
            }
            .into())
        );
    }

    #[test]
    fn the_peers_maximum_packet_size_is_respected() {
        // 1 type byte + 1 length byte + 2 + 1 topic + 1 property length + payload.
        let packet = |n| publish(b"t", Bytes::from(vec![0u8; n]), Properties::default());
        assert_eq!(encode(&packet(10), 16).map(|w| w.len()), Ok(16));
        assert_eq!(
            encode(&packet(11), 16),
            Err(EncodeError::PacketTooLarge { size: 17, max: 16 })
        );
        // Over the largest Remaining Length, whatever the limit.
        assert!(matches!(
            encode(&packet(VBI_MAX as usize), u32::MAX),
            Err(EncodeError::PacketTooLarge { .. })
        ));
    }
}
