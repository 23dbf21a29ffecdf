//! [`Codec`]: a [`Decoder`] and an [`Encoder`] for one side that agree on the version.

use super::decode::{Decoder, DEFAULT_MAX_PACKET_SIZE};
use super::encode::Encoder;
use super::error::{DecodeError, EncodeError};
use super::packet::Packet;
use super::{ProtocolVersion, Side};
use crate::chassis::{IoArena, SegmentedBuffer};

/// Why an MQTT codec failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    /// The input stream broke the specification (fatal).
    #[error(transparent)]
    Decode(#[from] DecodeError),
    /// A packet could not be encoded (nothing was written).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

/// Both directions of one side of a connection: the version decoded from a `CONNECT`
/// (server) or encoded into one (client) is adopted by the other direction.
#[derive(Debug, Clone)]
pub struct Codec {
    /// Reads what the peer sends.
    pub decoder: Decoder,
    /// Writes what this side sends.
    pub encoder: Encoder,
}

impl Codec {
    /// A broker's codec; the version comes with the client's `CONNECT`.
    pub fn server(max_packet_size: u32) -> Codec {
        Codec {
            decoder: Decoder::server(max_packet_size),
            encoder: Encoder::new(Side::Server),
        }
    }

    /// A client's codec speaking `version`.
    pub fn client(version: ProtocolVersion) -> Codec {
        Codec {
            decoder: Decoder::client(version, DEFAULT_MAX_PACKET_SIZE),
            encoder: Encoder::with_version(Side::Client, version),
        }
    }
}

impl Codec {
    /// Decodes the next packet from the front of `src` (`Ok(None)`: not whole yet, no
    /// byte lost); the version a server decodes from `CONNECT` is adopted by its encoder.
    pub fn decode(&mut self, src: &mut SegmentedBuffer) -> Result<Option<Packet>, CodecError> {
        let known = self.decoder.version();
        let packet = self.decoder.decode(src)?;
        if let (None, Some(version)) = (known, self.decoder.version()) {
            self.encoder.set_version(version);
        }
        Ok(packet)
    }

    /// Encodes `packet` at the end of `dst` (nothing written on error); the version a
    /// client encodes into `CONNECT` is adopted by its decoder.
    pub fn encode(&mut self, packet: &Packet, dst: &mut IoArena) -> Result<(), CodecError> {
        self.encoder.encode(packet, dst)?;
        if let Packet::Connect(c) = packet {
            self.decoder.set_version(c.protocol);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::mqtt::{ConnAck, Connect, Properties, ReasonCode};

    fn connect(protocol: ProtocolVersion) -> Packet {
        Packet::Connect(Box::new(Connect {
            protocol,
            clean_start: true,
            keep_alive: 0,
            properties: Properties::default(),
            client_id: Bytes::from_static(b"c"),
            will: None,
            username: None,
            password: None,
        }))
    }

    #[test]
    fn the_server_answers_in_the_version_of_the_connect_it_decoded() {
        for (version, connack) in [
            (ProtocolVersion::V3_1_1, &b"\x20\x02\x00\x00"[..]),
            (ProtocolVersion::V5, &b"\x20\x03\x00\x00\x00"[..]),
        ] {
            let mut server = Codec::server(DEFAULT_MAX_PACKET_SIZE);
            let ack = Packet::ConnAck(ConnAck {
                session_present: false,
                code: ReasonCode::Success,
                properties: Properties::default(),
            });
            let mut out = IoArena::new();
            assert_eq!(server.encode(&ack, &mut out), Err(EncodeError::VersionUnknown.into()));
            let mut wire = Vec::new();
            Encoder::new(Side::Client).encode(&connect(version), &mut wire).unwrap();
            let mut src = SegmentedBuffer::from(Bytes::from(wire));
            assert!(matches!(server.decode(&mut src), Ok(Some(Packet::Connect(_)))));
            server.encode(&ack, &mut out).unwrap();
            assert_eq!(out.to_vec(), connack, "{version}");
        }
    }

    #[test]
    fn the_client_speaks_one_version() {
        let mut client = Codec::client(ProtocolVersion::V3_1_1);
        let mut out = IoArena::new();
        assert_eq!(
            client.encode(&connect(ProtocolVersion::V5), &mut out),
            Err(EncodeError::VersionMismatch(ProtocolVersion::V5).into())
        );
        assert!(out.is_empty(), "nothing written on error");
        client.encode(&connect(ProtocolVersion::V3_1_1), &mut out).unwrap();
        // A 3.1.1 CONNACK decodes; in 5.0 the same bytes would lack the property length.
        let mut src = SegmentedBuffer::new();
        src.push_slice(b"\x20\x02\x00\x00");
        assert!(matches!(client.decode(&mut src), Ok(Some(Packet::ConnAck(_)))));
    }
}
