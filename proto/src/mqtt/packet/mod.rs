//! The fifteen control packets, each in the module of its exchange.

mod connect;
mod disconnect;
mod publish;
mod subscribe;

use bytes::Bytes;

pub use connect::{ConnAck, Connect, Will};
pub use disconnect::Reason;
pub use publish::{Ack, Publish};
pub use subscribe::{RetainHandling, SubAck, Subscribe, Subscription, SubscriptionOptions, Unsubscribe};

use super::error::{DecodeError, Violation};
use super::wire::{Reader, SinkExt};
use super::{PacketType, ProtocolVersion, ReasonCode, Side};

/// A control packet of any version. Strings, binary data and payloads are [`Bytes`]
/// views of the received packet; 3.1.1 packets have empty properties and Success codes
/// where 5.0 would carry a reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    /// `CONNECT`.
    Connect(Box<Connect>),
    /// `CONNACK`.
    ConnAck(ConnAck),
    /// `PUBLISH`.
    Publish(Publish),
    /// `PUBACK`.
    PubAck(Ack),
    /// `PUBREC`.
    PubRec(Ack),
    /// `PUBREL`.
    PubRel(Ack),
    /// `PUBCOMP`.
    PubComp(Ack),
    /// `SUBSCRIBE`.
    Subscribe(Subscribe),
    /// `SUBACK`.
    SubAck(SubAck),
    /// `UNSUBSCRIBE`.
    Unsubscribe(Unsubscribe),
    /// `UNSUBACK`.
    UnsubAck(SubAck),
    /// `PINGREQ`.
    PingReq,
    /// `PINGRESP`.
    PingResp,
    /// `DISCONNECT`.
    Disconnect(Reason),
    /// `AUTH` (5.0).
    Auth(Reason),
}

impl Packet {
    /// Its type.
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }

    /// Parses the body of a packet of type `packet` whose fixed-header flags were
    /// checked, then applies [`validate`](Self::validate) for `sender`.
    pub(crate) fn decode_body(
        packet: PacketType,
        flags: u8,
        body: Bytes,
        version: ProtocolVersion,
        sender: Side,
    ) -> Result<Packet, DecodeError> {
        let mut r = Reader::new(body);
        let (version, decoded) = match packet {
            PacketType::Connect => {
                let connect = Connect::decode(&mut r)?;
                (connect.protocol, Packet::Connect(Box::new(connect)))
            }
            PacketType::ConnAck => (version, Packet::ConnAck(ConnAck::decode(&mut r, version)?)),
            PacketType::Publish => (version, Packet::Publish(Publish::decode(&mut r, flags, version)?)),
            PacketType::PubAck => (version, Packet::PubAck(Ack::decode(&mut r, packet, version)?)),
            PacketType::PubRec => (version, Packet::PubRec(Ack::decode(&mut r, packet, version)?)),
            PacketType::PubRel => (version, Packet::PubRel(Ack::decode(&mut r, packet, version)?)),
            PacketType::PubComp => (version, Packet::PubComp(Ack::decode(&mut r, packet, version)?)),
            PacketType::Subscribe => (version, Packet::Subscribe(Subscribe::decode(&mut r, version)?)),
            PacketType::SubAck => (version, Packet::SubAck(SubAck::decode(&mut r, packet, version)?)),
            PacketType::Unsubscribe => (version, Packet::Unsubscribe(Unsubscribe::decode(&mut r, version)?)),
            PacketType::UnsubAck => (version, Packet::UnsubAck(SubAck::decode(&mut r, packet, version)?)),
            PacketType::PingReq => (version, Packet::PingReq),
            PacketType::PingResp => (version, Packet::PingResp),
            PacketType::Disconnect => (version, Packet::Disconnect(Reason::decode(&mut r, packet, version)?)),
            PacketType::Auth => (version, Packet::Auth(Reason::decode(&mut r, packet, version)?)),
        };
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes(packet));
        }
        decoded.validate(version, sender)?;
        Ok(decoded)
    }

    /// The rules on a packet's content that both directions enforce: who may send it,
    /// which reason codes it may carry, non-zero packet identifiers, topic names, lists,
    /// subscription options, what 3.1.1 cannot express.
    pub fn validate(&self, version: ProtocolVersion, sender: Side) -> Result<(), Violation> {
        let packet = self.packet_type();
        if !packet.sent_by(sender, version) {
            return Err(Violation::UnexpectedPacket { packet, sender });
        }
        let code_ok = |code: ReasonCode| {
            if code.valid_in(packet, sender, version) {
                Ok(())
            } else {
                Err(Violation::InvalidReasonCode {
                    packet,
                    code: code.as_u8(),
                })
            }
        };
        match self {
            Packet::Connect(c) => c.validate(),
            Packet::ConnAck(c) => {
                code_ok(c.code)?;
                c.validate(version)
            }
            Packet::Publish(p) => p.validate(version, sender),
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => {
                code_ok(a.code)?;
                a.validate(packet, version)
            }
            Packet::Subscribe(s) => s.validate(version),
            Packet::SubAck(s) | Packet::UnsubAck(s) => {
                s.codes.iter().try_for_each(|&c| code_ok(c))?;
                s.validate(packet, version)
            }
            Packet::Unsubscribe(u) => u.validate(version),
            Packet::PingReq | Packet::PingResp => Ok(()),
            Packet::Disconnect(d) => {
                code_ok(d.code)?;
                // A server does not change the session expiry [MQTT-3.14.2-2].
                if sender == Side::Server && d.properties.session_expiry_interval.is_some() {
                    return Err(Violation::SessionExpiryFromServer);
                }
                d.validate(packet, version)
            }
            Packet::Auth(a) => {
                code_ok(a.code)?;
                a.validate(packet, version)
            }
        }
    }

    /// What only the encoder checks (the decoder's parsing enforces it already): string
    /// and binary lengths, UTF-8, properties allowed where they are and in range.
    pub(crate) fn check_fields(&self) -> Result<(), Violation> {
        let packet = self.packet_type();
        match self {
            Packet::Connect(c) => c.check_fields(),
            Packet::ConnAck(c) => c.properties.validate(super::error::PropertyContext::Packet(packet)),
            Packet::Publish(p) => p.check_fields(),
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => a.check_fields(packet),
            Packet::Subscribe(s) => s.check_fields(),
            Packet::SubAck(s) | Packet::UnsubAck(s) => s.check_fields(packet),
            Packet::Unsubscribe(u) => u.check_fields(),
            Packet::PingReq | Packet::PingResp => Ok(()),
            Packet::Disconnect(r) | Packet::Auth(r) => r.check_fields(packet),
        }
    }

    /// The low nibble of the fixed header's first byte.
    pub(crate) fn flags(&self) -> u8 {
        match self {
            Packet::Publish(p) => p.flags(),
            _ => self.packet_type().required_flags().unwrap_or(0),
        }
    }

    /// The Remaining Length: bytes after the fixed header.
    pub(crate) fn body_len(&self, version: ProtocolVersion) -> usize {
        match self {
            Packet::Connect(c) => c.body_len(),
            Packet::ConnAck(c) => c.body_len(version),
            Packet::Publish(p) => p.body_len(version),
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => a.body_len(version),
            Packet::Subscribe(s) => s.body_len(version),
            Packet::SubAck(s) | Packet::UnsubAck(s) => s.body_len(version),
            Packet::Unsubscribe(u) => u.body_len(version),
            Packet::PingReq | Packet::PingResp => 0,
            Packet::Disconnect(r) | Packet::Auth(r) => r.body_len(version),
        }
    }

    /// Writes the body (after the fixed header).
    pub(crate) fn write_body<S: SinkExt + ?Sized>(&self, version: ProtocolVersion, out: &mut S) {
        match self {
            Packet::Connect(c) => c.write(out),
            Packet::ConnAck(c) => c.write(version, out),
            Packet::Publish(p) => p.write(version, out),
            Packet::PubAck(a) | Packet::PubRec(a) | Packet::PubRel(a) | Packet::PubComp(a) => a.write(version, out),
            Packet::Subscribe(s) => s.write(version, out),
            Packet::SubAck(s) | Packet::UnsubAck(s) => s.write(version, out),
            Packet::Unsubscribe(u) => u.write(version, out),
            Packet::PingReq | Packet::PingResp => {}
            Packet::Disconnect(r) | Packet::Auth(r) => r.write(version, out),
        }
    }
}
