//! `DISCONNECT` (3.14) and `AUTH` (3.15): a reason code and properties, both left off
//! the wire when they are Success and empty.

use crate::mqtt::error::{DecodeError, PropertyContext, Violation};
use crate::mqtt::property::Properties;
use crate::mqtt::wire::{Reader, SinkExt};
use crate::mqtt::{PacketType, ProtocolVersion, ReasonCode};

/// `DISCONNECT` or `AUTH` (which one is the [`Packet`](super::Packet) variant's).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reason {
    /// The reason code (Success: normal disconnection; always Success in 3.1.1).
    pub code: ReasonCode,
    /// 5.0 properties.
    pub properties: Properties,
}

impl Reason {
    /// A reason code without properties.
    pub fn new(code: ReasonCode) -> Reason {
        Reason {
            code,
            properties: Properties::default(),
        }
    }

    pub(crate) fn decode(r: &mut Reader, packet: PacketType, version: ProtocolVersion) -> Result<Reason, DecodeError> {
        let mut reason = Reason::default();
        if version.is_v5() && !r.is_empty() {
            let raw = r.u8()?;
            reason.code = ReasonCode::from_u8(raw).ok_or(Violation::InvalidReasonCode { packet, code: raw })?;
            if !r.is_empty() {
                reason.properties = Properties::decode(r, PropertyContext::Packet(packet))?;
            }
        }
        Ok(reason)
    }

    pub(crate) fn validate(&self, packet: PacketType, version: ProtocolVersion) -> Result<(), Violation> {
        if !version.is_v5() && !self.properties.is_empty() {
            return Err(Violation::NotInV3(packet));
        }
        Ok(())
    }

    pub(crate) fn check_fields(&self, packet: PacketType) -> Result<(), Violation> {
        self.properties.validate(PropertyContext::Packet(packet))
    }

    fn form(&self, version: ProtocolVersion) -> (bool, bool) {
        if !version.is_v5() {
            return (false, false);
        }
        let props = !self.properties.is_empty();
        (props || self.code != ReasonCode::Success, props)
    }

    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        let (code, props) = self.form(version);
        usize::from(code) + if props { self.properties.encoded_len() } else { 0 }
    }

    pub(crate) fn write<S: SinkExt + ?Sized>(&self, version: ProtocolVersion, out: &mut S) {
        let (code, props) = self.form(version);
        if code {
            out.put_u8(self.code.as_u8());
        }
        if props {
            self.properties.write(out);
        }
    }
}
