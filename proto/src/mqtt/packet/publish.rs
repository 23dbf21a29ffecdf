//! `PUBLISH` (3.3) and its acknowledgements `PUBACK`, `PUBREC`, `PUBREL`, `PUBCOMP`
//! (3.4-3.7), which share one layout.

use bytes::Bytes;

use crate::mqtt::error::{DecodeError, PropertyContext, Violation};
use crate::mqtt::property::Properties;
use crate::mqtt::wire::{check_string, Reader, SinkExt};
use crate::mqtt::{PacketType, ProtocolVersion, QoS, ReasonCode, Side};

/// `PUBLISH`: an application message, either direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    /// DUP: a redelivery (QoS 1 and 2 only).
    pub dup: bool,
    /// The QoS it is sent at.
    pub qos: QoS,
    /// RETAIN.
    pub retain: bool,
    /// The topic name (empty in 5.0 when a Topic Alias stands for it).
    pub topic: Bytes,
    /// The packet identifier: non-zero for QoS 1 and 2, 0 (and not on the wire) for QoS 0.
    pub packet_id: u16,
    /// 5.0 properties.
    pub properties: Properties,
    /// The application message: a view of the received packet.
    pub payload: Bytes,
}

pub(crate) const DUP: u8 = 0x08;
pub(crate) const RETAIN: u8 = 0x01;

impl Publish {
    pub(crate) fn decode(r: &mut Reader, flags: u8, version: ProtocolVersion) -> Result<Publish, DecodeError> {
        let qos = QoS::from_bits((flags >> 1) & 3).ok_or(DecodeError::InvalidQos)?;
        let topic = r.string()?;
        let packet_id = if qos == QoS::AtMostOnce { 0 } else { r.u16()? };
        let properties = if version.is_v5() {
            Properties::decode(r, PropertyContext::Packet(PacketType::Publish))?
        } else {
            Properties::default()
        };
        Ok(Publish {
            dup: flags & DUP != 0,
            qos,
            retain: flags & RETAIN != 0,
            topic,
            packet_id,
            properties,
            payload: r.rest(),
        })
    }

    pub(crate) fn flags(&self) -> u8 {
        let mut f = self.qos.bits() << 1;
        if self.dup {
            f |= DUP;
        }
        if self.retain {
            f |= RETAIN;
        }
        f
    }

    pub(crate) fn validate(&self, version: ProtocolVersion, sender: Side) -> Result<(), Violation> {
        if self.qos == QoS::AtMostOnce {
            if self.dup {
                return Err(Violation::DupOnQos0);
            }
        } else if self.packet_id == 0 {
            return Err(Violation::ZeroPacketId);
        }
        if memchr::memchr2(b'+', b'#', &self.topic).is_some() {
            return Err(Violation::WildcardInTopicName);
        }
        let response_topic = self.properties.response_topic.as_deref().unwrap_or_default();
        if memchr::memchr2(b'+', b'#', response_topic).is_some() {
            return Err(Violation::WildcardInResponseTopic);
        }
        if self.topic.is_empty() && self.properties.topic_alias.is_none() {
            return Err(Violation::EmptyTopicName);
        }
        if !version.is_v5() && !self.properties.is_empty() {
            return Err(Violation::NotInV3(PacketType::Publish));
        }
        if sender == Side::Client && !self.properties.subscription_identifiers.is_empty() {
            return Err(Violation::SubscriptionIdFromClient);
        }
        Ok(())
    }

    pub(crate) fn check_fields(&self) -> Result<(), Violation> {
        self.properties.validate(PropertyContext::Packet(PacketType::Publish))?;
        check_string(&self.topic)
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        2 + self.topic.len()
            + if self.qos == QoS::AtMostOnce { 0 } else { 2 }
            + if version.is_v5() {
                self.properties.encoded_len()
            } else {
                0
            }
            + self.payload.len()
    }

    pub(crate) fn write<S: SinkExt + ?Sized>(&self, version: ProtocolVersion, out: &mut S) {
        out.put_field(&self.topic);
        if self.qos != QoS::AtMostOnce {
            out.put_u16(self.packet_id);
        }
        if version.is_v5() {
            self.properties.write(out);
        }
        out.put_payload(&self.payload);
    }
}

/// `PUBACK`, `PUBREC`, `PUBREL` or `PUBCOMP`: a packet identifier, and in 5.0 a reason
/// code and properties, both omitted on the wire when they are Success and empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ack {
    /// The publication's packet identifier.
    pub packet_id: u16,
    /// The reason code (always Success in 3.1.1).
    pub code: ReasonCode,
    /// 5.0 properties.
    pub properties: Properties,
}

impl Ack {
    /// A successful acknowledgement of `packet_id`.
    pub fn success(packet_id: u16) -> Ack {
        Ack {
            packet_id,
            code: ReasonCode::Success,
            properties: Properties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader, packet: PacketType, version: ProtocolVersion) -> Result<Ack, DecodeError> {
        let packet_id = r.u16()?;
        let mut ack = Ack::success(packet_id);
        if version.is_v5() && !r.is_empty() {
            let raw = r.u8()?;
            ack.code = ReasonCode::from_u8(raw).ok_or(Violation::InvalidReasonCode { packet, code: raw })?;
            if !r.is_empty() {
                ack.properties = Properties::decode(r, PropertyContext::Packet(packet))?;
            }
        }
        Ok(ack)
    }

    pub(crate) fn validate(&self, packet: PacketType, version: ProtocolVersion) -> Result<(), Violation> {
        if self.packet_id == 0 {
            return Err(Violation::ZeroPacketId);
        }
        if !version.is_v5() && !self.properties.is_empty() {
            return Err(Violation::NotInV3(packet));
        }
        Ok(())
    }

    pub(crate) fn check_fields(&self, packet: PacketType) -> Result<(), Violation> {
        self.properties.validate(PropertyContext::Packet(packet))
    }

    /// The shortest form: no reason code when Success without properties, no property
    /// length when there are none (3.4.2.1).
    fn form(&self, version: ProtocolVersion) -> (bool, bool) {
        if !version.is_v5() {
            return (false, false);
        }
        let props = !self.properties.is_empty();
        (props || self.code != ReasonCode::Success, props)
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let (code, props) = self.form(version);
        2 + usize::from(code) + if props { self.properties.encoded_len() } else { 0 }
    }

    pub(crate) fn write<S: SinkExt + ?Sized>(&self, version: ProtocolVersion, out: &mut S) {
        let (code, props) = self.form(version);
        out.put_u16(self.packet_id);
        if code {
            out.put_u8(self.code.as_u8());
        }
        if props {
            self.properties.write(out);
        }
    }
}
