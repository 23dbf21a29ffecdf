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
