//! [`Codec`]: a [`Decoder`] and an [`Encoder`] for one side that agree on the version.

use super::decode::{Decoder, DEFAULT_MAX_PACKET_SIZE};
use super::encode::Encoder;
use super::error::{DecodeError, EncodeError};
use super::packet::Packet;
use super::{ProtocolVersion, Side};
use crate::chassis::{IoArena, MonocoqueCodec, SegmentedBuffer};

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

impl MonocoqueCodec for Codec {
    type Decoded = Packet;
    type Encoded = Packet;
    type Error = CodecError;

    fn decode(&mut self, src: &mut SegmentedBuffer) -> Result<Option<Packet>, CodecError> {
        let known = self.decoder.version();
        let packet = self.decoder.decode(src)?;
        if let (None, Some(version)) = (known, self.decoder.version()) {
            self.encoder.set_version(version);
        }
        Ok(packet)
    }

    fn encode(&mut self, packet: &Packet, dst: &mut IoArena) -> Result<(), CodecError> {
        self.encoder.encode(packet, dst)?;
        if let Packet::Connect(c) = packet {
            self.decoder.set_version(c.protocol);
        }
        Ok(())
    }
}
