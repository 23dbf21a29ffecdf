//! The streaming decoder: fixed header first, the size checked against the Maximum
//! Packet Size before the body is buffered, then the body as one view.

use super::error::DecodeError;
use super::packet::Packet;
use super::wire::read_vbi;
use super::{PacketType, ProtocolVersion, QoS, Side};
use crate::chassis::SegmentedBuffer;

/// The default Maximum Packet Size a decoder accepts: 1 MiB, fixed header included.
/// (The protocol's own ceiling is 268,435,460 bytes; a broker announces its limit in
/// `CONNACK`, a client in `CONNECT`.)
pub const DEFAULT_MAX_PACKET_SIZE: u32 = 1 << 20;

/// A fixed header read from the front of the buffer, kept while its body arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Header {
    packet: PacketType,
    flags: u8,
    /// Bytes of the fixed header (2..=5).
    header_len: u8,
    /// The Remaining Length (at most 268,435,455). Both narrow: a broker holds a
    /// decoder per connection.
    body_len: u32,
}

/// Decodes the packets the peer of `side` sends, from a [`SegmentedBuffer`].
///
/// [`decode`](Self::decode) returns `Ok(Some(packet))` per packet, `Ok(None)` until a
/// whole packet is buffered (consuming nothing: the fixed header, once complete, is
/// kept, so a packet arriving in pieces is never parsed twice), and `Err` for a packet
/// that breaks the specification; the error's
/// [`reason_code`](DecodeError::reason_code) is what to answer. The size announced by
/// the fixed header is checked against the Maximum Packet Size as soon as the header is
/// complete, before the body is buffered.
///
/// The packet's fields are views of the received segment holding it (or, for a packet
/// that straddles segments, of one copy of it).
///
/// A server-side decoder does not know the version until it decodes `CONNECT`; it
/// adopts that packet's version, and refuses any other packet before it
/// ([`DecodeError::ConnectExpected`]). A client-side decoder is told the version it
/// sends in its `CONNECT`. [`set_version`](Self::set_version) changes it.
#[derive(Debug, Clone)]
pub struct Decoder {
    side: Side,
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
    pending: Option<Header>,
}

impl Decoder {
    /// A broker's decoder: reads what clients send; the version comes with `CONNECT`.
    pub fn server(max_packet_size: u32) -> Decoder {
        Decoder {
            side: Side::Server,
            version: None,
            max_packet_size,
            pending: None,
        }
    }

    /// A client's decoder: reads what servers send, in `version`.
    pub fn client(version: ProtocolVersion, max_packet_size: u32) -> Decoder {
        Decoder {
            side: Side::Client,
            version: Some(version),
            max_packet_size,
            pending: None,
        }
    }

    /// The side it runs on (it decodes what the other side sends).
    pub fn side(&self) -> Side {
        self.side
    }

    /// The protocol version, once known.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Sets the protocol version (after `CONNECT`).
    pub fn set_version(&mut self, version: ProtocolVersion) {
        self.version = Some(version);
    }

    /// The largest packet accepted, fixed header included.
    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// Changes the largest packet accepted (a broker's configuration, a client's
    /// `CONNECT`).
    pub fn set_max_packet_size(&mut self, max: u32) {
        self.max_packet_size = max;
    }

    /// Decodes the next packet from the front of `src`.
    pub fn decode(&mut self, src: &mut SegmentedBuffer) -> Result<Option<Packet>, DecodeError> {
        let header = match self.pending {
            Some(h) => h,
            None => match self.header(src)? {
                Some(h) => h,
                None => return Ok(None),
            },
        };
        let (header_len, body_len) = (usize::from(header.header_len), header.body_len as usize);
        if src.len() < header_len + body_len {
            self.pending = Some(header);
            return Ok(None);
        }
        self.pending = None;
        src.advance(header_len);
        let body = src.split_to(body_len);
        // Only CONNECT gets here without a version, and it carries its own.
        let version = self.version.unwrap_or(ProtocolVersion::V5);
        let packet = Packet::decode_body(header.packet, header.flags, body, version, self.side.peer())?;
        if let (Packet::Connect(c), None) = (&packet, self.version) {
            self.version = Some(c.protocol);
        }
        Ok(Some(packet))
    }

    /// Reads and checks the fixed header without consuming it.
    fn header(&self, src: &SegmentedBuffer) -> Result<Option<Header>, DecodeError> {
        let Some(first) = src.peek(0) else { return Ok(None) };
        let nibble = first >> 4;
        let flags = first & 0x0f;
        let packet = PacketType::from_nibble(nibble).ok_or(DecodeError::ReservedPacketType(nibble))?;
        let version = match self.version {
            Some(v) => v,
            None if packet == PacketType::Connect => ProtocolVersion::V5,
            None => return Err(DecodeError::ConnectExpected(packet)),
        };
        if packet == PacketType::Auth && !version.is_v5() {
            return Err(DecodeError::ReservedPacketType(nibble));
        }
        match packet.required_flags() {
            Some(required) if flags != required => return Err(DecodeError::InvalidFlags { packet, flags }),
            None if QoS::from_bits((flags >> 1) & 3).is_none() => return Err(DecodeError::InvalidQos),
            _ => {}
        }
        let sender = self.side.peer();
        if !packet.sent_by(sender, version) {
            return Err(super::Violation::UnexpectedPacket { packet, sender }.into());
        }
        let Some((body_len, vbi_len)) = read_vbi(|i| src.peek(1 + i))? else {
            return Ok(None);
        };
        let header_len = 1 + vbi_len;
        let size = header_len as u64 + u64::from(body_len);
        if size > u64::from(self.max_packet_size) {
            return Err(DecodeError::PacketTooLarge {
                size,
                max: self.max_packet_size,
            });
        }
        Ok(Some(Header {
            packet,
            flags,
            // At most 5: one type byte and a Variable Byte Integer of up to 4.
            header_len: header_len as u8,
            body_len,
        }))
    }
}
