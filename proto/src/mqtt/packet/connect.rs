//! `CONNECT` (3.1) and `CONNACK` (3.2).

use bytes::Bytes;

use crate::mqtt::error::{DecodeError, PropertyContext, Violation};
use crate::mqtt::property::Properties;
use crate::mqtt::wire::{check_binary, check_string, Reader, SinkExt};
use crate::mqtt::{PacketType, ProtocolVersion, QoS, ReasonCode};

/// `CONNECT`: a client opens a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    /// The protocol version the client speaks (name and level on the wire).
    pub protocol: ProtocolVersion,
    /// Clean Start (5.0) or Clean Session (3.1.1).
    pub clean_start: bool,
    /// Keep alive in seconds (0: off).
    pub keep_alive: u16,
    /// 5.0 properties (empty in 3.1.1).
    pub properties: Properties,
    /// The client identifier (may be empty).
    pub client_id: Bytes,
    /// The will, if any.
    pub will: Option<Will>,
    /// The user name, if any.
    pub username: Option<Bytes>,
    /// The password (binary data), if any.
    pub password: Option<Bytes>,
}

/// The will message of a `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Will {
    /// Will Properties (5.0; empty in 3.1.1).
    pub properties: Properties,
    /// The topic it is published to.
    pub topic: Bytes,
    /// Its payload.
    pub payload: Bytes,
    /// Its QoS.
    pub qos: QoS,
    /// Whether it is retained.
    pub retain: bool,
}

const USERNAME: u8 = 0x80;
const PASSWORD: u8 = 0x40;
const WILL_RETAIN: u8 = 0x20;
const WILL_QOS_SHIFT: u8 = 3;
const WILL_FLAG: u8 = 0x04;
const CLEAN_START: u8 = 0x02;
const RESERVED: u8 = 0x01;

impl Connect {
    /// Reads the body; the version comes from the packet itself.
    pub(crate) fn decode(r: &mut Reader) -> Result<Connect, DecodeError> {
        let name = r.binary()?;
        let level = r.u8()?;
        if &name[..] != b"MQTT" && &name[..] != b"MQIsdp" {
            return Err(DecodeError::InvalidProtocolName);
        }
        let protocol = match level {
            3 => ProtocolVersion::V3_1,
            4 => ProtocolVersion::V3_1_1,
            5 => ProtocolVersion::V5,
            _ => return Err(DecodeError::UnsupportedProtocolLevel(level)),
        };
        // `MQIsdp` goes with level 3 only, `MQTT` with 4 and 5.
        if name != protocol.protocol_name() {
            return Err(DecodeError::UnsupportedProtocolLevel(level));
        }
        let flags = r.u8()?;
        if flags & RESERVED != 0 {
            return Err(DecodeError::ConnectReservedFlag);
        }
        let will_qos = QoS::from_bits((flags >> WILL_QOS_SHIFT) & 3).ok_or(DecodeError::InvalidQos)?;
        let will_retain = flags & WILL_RETAIN != 0;
        if flags & WILL_FLAG == 0 && (will_qos != QoS::AtMostOnce || will_retain) {
            return Err(DecodeError::WillFlagsWithoutWill);
        }
        let keep_alive = r.u16()?;
        let v5 = protocol.is_v5();
        let properties = if v5 {
            Properties::decode(r, PropertyContext::Packet(PacketType::Connect))?
        } else {
            Properties::default()
        };
        let client_id = r.string()?;
        let will = if flags & WILL_FLAG != 0 {
            let properties = if v5 {
                Properties::decode(r, PropertyContext::Will)?
            } else {
                Properties::default()
            };
            Some(Will {
                properties,
                topic: r.string()?,
                payload: r.binary()?,
                qos: will_qos,
                retain: will_retain,
            })
        } else {
            None
        };
        let username = if flags & USERNAME != 0 { Some(r.string()?) } else { None };
        let password = if flags & PASSWORD != 0 { Some(r.binary()?) } else { None };
        Ok(Connect {
            protocol,
            clean_start: flags & CLEAN_START != 0,
            keep_alive,
            properties,
            client_id,
            will,
            username,
            password,
        })
    }

    pub(crate) fn validate(&self) -> Result<(), Violation> {
        if !self.protocol.is_v5() {
            if !self.properties.is_empty() || self.will.as_ref().is_some_and(|w| !w.properties.is_empty()) {
                return Err(Violation::NotInV3(PacketType::Connect));
            }
            if self.password.is_some() && self.username.is_none() {
                return Err(Violation::PasswordWithoutUsername);
            }
        }
        if let Some(will) = &self.will {
            if will.topic.is_empty() {
                return Err(Violation::EmptyTopicName);
            }
            if memchr::memchr2(b'+', b'#', &will.topic).is_some() {
                return Err(Violation::WildcardInTopicName);
            }
        }
        Ok(())
    }

    pub(crate) fn check_fields(&self) -> Result<(), Violation> {
        self.properties.validate(PropertyContext::Packet(PacketType::Connect))?;
        check_string(&self.client_id)?;
        if let Some(will) = &self.will {
            will.properties.validate(PropertyContext::Will)?;
            check_string(&will.topic)?;
            check_binary(&will.payload)?;
        }
        if let Some(u) = &self.username {
            check_string(u)?;
        }
        if let Some(p) = &self.password {
            check_binary(p)?;
        }
        Ok(())
    }

    pub(crate) fn body_len(&self) -> usize {
        let v5 = self.protocol.is_v5();
        let props = |p: &Properties| if v5 { p.encoded_len() } else { 0 };
        2 + self.protocol.protocol_name().len()
            + 1
            + 1
            + 2
            + props(&self.properties)
            + 2
            + self.client_id.len()
            + self
                .will
                .as_ref()
                .map_or(0, |w| props(&w.properties) + 2 + w.topic.len() + 2 + w.payload.len())
            + self.username.as_ref().map_or(0, |u| 2 + u.len())
            + self.password.as_ref().map_or(0, |p| 2 + p.len())
    }

    pub(crate) fn write<S: SinkExt + ?Sized>(&self, out: &mut S) {
        let v5 = self.protocol.is_v5();
        out.put_field(self.protocol.protocol_name());
        out.put_u8(self.protocol.level());
        let mut flags = 0;
        if self.username.is_some() {
            flags |= USERNAME;
        }
        if self.password.is_some() {
            flags |= PASSWORD;
        }
        if let Some(will) = &self.will {
            flags |= WILL_FLAG | (will.qos.bits() << WILL_QOS_SHIFT);
            if will.retain {
                flags |= WILL_RETAIN;
            }
        }
        if self.clean_start {
            flags |= CLEAN_START;
        }
        out.put_u8(flags);
        out.put_u16(self.keep_alive);
        if v5 {
            self.properties.write(out);
        }
        out.put_field(&self.client_id);
        if let Some(will) = &self.will {
            if v5 {
                will.properties.write(out);
            }
            out.put_field(&will.topic);
            out.put_field(&will.payload);
        }
        if let Some(u) = &self.username {
            out.put_field(u);
        }
        if let Some(p) = &self.password {
            out.put_field(p);
        }
    }
}

/// `CONNACK`: the server accepts or refuses a `CONNECT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a session.
    pub session_present: bool,
    /// The reason code (3.1.1: the return code's 5.0 equivalent, see
    /// [`ReasonCode::v3_connack`]).
    pub code: ReasonCode,
    /// 5.0 properties.
    pub properties: Properties,
}

impl ConnAck {
    pub(crate) fn decode(r: &mut Reader, version: ProtocolVersion) -> Result<ConnAck, DecodeError> {
        let flags = r.u8()?;
        if flags & !1 != 0 {
            return Err(DecodeError::ConnAckReservedFlags);
        }
        let raw = r.u8()?;
        let code = if version.is_v5() {
            ReasonCode::from_u8(raw)
        } else {
            ReasonCode::from_v3_connack(raw)
        };
        let code = code.ok_or(Violation::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code: raw,
        })?;
        let properties = if version.is_v5() {
            Properties::decode(r, PropertyContext::Packet(PacketType::ConnAck))?
        } else {
            Properties::default()
        };
        Ok(ConnAck {
            session_present: flags & 1 != 0,
            code,
            properties,
        })
    }

    pub(crate) fn validate(&self, version: ProtocolVersion) -> Result<(), Violation> {
        if self.session_present && self.code != ReasonCode::Success {
            return Err(Violation::SessionPresentOnFailure);
        }
        if !version.is_v5() && !self.properties.is_empty() {
            return Err(Violation::NotInV3(PacketType::ConnAck));
        }
        Ok(())
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        2 + if version.is_v5() {
            self.properties.encoded_len()
        } else {
            0
        }
    }

    pub(crate) fn write<S: SinkExt + ?Sized>(&self, version: ProtocolVersion, out: &mut S) {
        out.put_u8(u8::from(self.session_present));
        if version.is_v5() {
            out.put_u8(self.code.as_u8());
            self.properties.write(out);
        } else {
            // validate() checked the code has a 3.1.1 equivalent.
            out.put_u8(self.code.v3_connack().unwrap_or(0));
        }
    }
}
