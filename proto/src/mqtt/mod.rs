//! The MQTT codec: 3.1, 3.1.1 and 5.0, both sides of a connection.
//!
//! - [`Packet`] holds any of the fifteen control packets; strings, binary data and
//!   payloads are [`bytes::Bytes`] views of the received bytes. [`Properties`] is the
//!   5.0 property set (every identifier 0x01-0x2A, typed), [`ReasonCode`] every reason
//!   code, with the packets and senders each may appear with.
//! - [`Decoder`] reads what the other side sends from a [`SegmentedBuffer`]: the fixed
//!   header first (type, flags, a shortest-form Remaining Length of at most 4 bytes),
//!   the packet's size checked against the Maximum Packet Size before its body is
//!   buffered, then the body as one view. Every rule of the specification on a
//!   packet's form is enforced and reported as a typed [`DecodeError`] whose
//!   [`reason_code`](DecodeError::reason_code) is the 5.0 answer (0x81 Malformed Packet,
//!   0x82 Protocol Error, 0x94 Topic Alias invalid, 0x95 Packet too large, ...).
//! - [`Encoder`] writes packets into an [`IoArena`](crate::IoArena) (large payloads
//!   shared, not copied), a `BytesMut` or a `Vec<u8>` ([`Sink`]), after checking the
//!   same rules ([`Violation`]), so what one side refuses to write the other refuses
//!   to read.
//! - [`Codec`] pairs them for one side, so the version one direction learns from
//!   `CONNECT` is the other's.
//!
//! - [`TopicTree`] holds subscriptions by topic filter and finds those matching a
//!   topic ([`topic_matches`] for one), with the wildcard and `$`-topic rules of 4.7.
//!
//! No I/O, no clock, no protocol state beyond the version: keep alive, packet
//! identifiers in flight, topic aliases and sessions are the state machines' job.
//!
//! ```
//! use bytes::Bytes;
//! use monocoque_proto::SegmentedBuffer;
//! use monocoque_proto::mqtt::{
//!     Connect, Decoder, Encoder, Packet, Properties, ProtocolVersion, Publish, QoS, Side,
//!     DEFAULT_MAX_PACKET_SIZE,
//! };
//!
//! // A client writes CONNECT and a QoS 1 PUBLISH...
//! let mut client = Encoder::new(Side::Client);
//! let mut wire = Vec::new();
//! let connect = Connect {
//!     protocol: ProtocolVersion::V5,
//!     clean_start: true,
//!     keep_alive: 30,
//!     properties: Properties { session_expiry_interval: Some(60), ..Properties::default() },
//!     client_id: Bytes::from_static(b"sensor-1"),
//!     will: None,
//!     username: None,
//!     password: None,
//! };
//! client.encode(&Packet::Connect(Box::new(connect)), &mut wire).unwrap();
//! let publish = Publish {
//!     dup: false,
//!     qos: QoS::AtLeastOnce,
//!     retain: false,
//!     topic: Bytes::from_static(b"room/temp"),
//!     packet_id: 7,
//!     properties: Properties::default(),
//!     payload: Bytes::from_static(b"21.5"),
//! };
//! client.encode(&Packet::Publish(publish), &mut wire).unwrap();
//!
//! // ...and a broker reads them as they arrive, in pieces.
//! let mut broker = Decoder::server(DEFAULT_MAX_PACKET_SIZE);
//! let mut src = SegmentedBuffer::new();
//! src.push_slice(&wire[..wire.len() - 3]);
//! let Some(Packet::Connect(c)) = broker.decode(&mut src).unwrap() else { panic!() };
//! assert_eq!((&c.client_id[..], c.properties.session_expiry_interval), (&b"sensor-1"[..], Some(60)));
//! assert_eq!(broker.version(), Some(ProtocolVersion::V5));
//! assert_eq!(broker.decode(&mut src).unwrap(), None); // the PUBLISH is incomplete
//! src.push_slice(&wire[wire.len() - 3..]);
//! let Some(Packet::Publish(p)) = broker.decode(&mut src).unwrap() else { panic!() };
//! assert_eq!((&p.topic[..], p.packet_id, &p.payload[..]), (&b"room/temp"[..], 7, &b"21.5"[..]));
//!
//! // A SUBSCRIBE with reserved flags 0000 instead of 0010 is malformed: DISCONNECT 0x81.
//! src.push_slice(&[0x80, 0x06, 0x00, 0x01, 0x00, 0x01, b'#', 0x00]);
//! let err = broker.decode(&mut src).unwrap_err();
//! assert_eq!(err.reason_code().as_u8(), 0x81);
//! ```

pub mod broker;
pub mod client;
mod codec;
mod decode;
mod encode;
mod error;
mod packet;
mod property;
mod reason;
mod topic;
mod tree;
mod types;
mod wire;

#[cfg(test)]
mod malformed_tests;

pub use codec::{Codec, CodecError};
pub use decode::{Decoder, DEFAULT_MAX_PACKET_SIZE};
pub use encode::{Encoder, PROTOCOL_MAX_PACKET_SIZE};
pub use error::{DecodeError, EncodeError, PropertyContext, Violation};
pub use packet::{
    Ack, ConnAck, Connect, Packet, Publish, Reason, RetainHandling, SubAck, Subscribe, Subscription,
    SubscriptionOptions, Unsubscribe, Will,
};
pub use property::{Properties, PropertyId, PropertyType};
pub use reason::ReasonCode;
pub use topic::{valid_topic_filter, valid_topic_name};
pub use tree::{topic_matches, TopicTree};
pub use types::{PacketType, ProtocolVersion, QoS, Side};
pub use wire::{check_utf8, vbi_len, Sink, FIELD_MAX, VBI_MAX};

#[allow(unused_imports)] // for the links in the docs above
use crate::chassis::SegmentedBuffer;
