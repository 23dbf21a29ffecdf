//! One test per rule on a packet's form: each feeds the decoder a packet that breaks
//! it, and checks the typed error and the reason code a 5.0 peer would answer with.
//! Then the streaming behaviour: pieces, the size check before the body, zero copy.

use bytes::Bytes;

use super::wire::SinkExt;
use super::*;
use crate::chassis::SegmentedBuffer;

const V3: ProtocolVersion = ProtocolVersion::V3_1_1;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// A server-side decoder that already decoded a `CONNECT` of `version`.
fn server(version: ProtocolVersion) -> Decoder {
    let mut d = Decoder::server(DEFAULT_MAX_PACKET_SIZE);
    d.set_version(version);
    d
}

fn client(version: ProtocolVersion) -> Decoder {
    Decoder::client(version, DEFAULT_MAX_PACKET_SIZE)
}

/// A packet: the first byte, the shortest Remaining Length, the body.
fn frame(first: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    out.put_vbi(body.len() as u32);
    out.extend_from_slice(body);
    out
}

fn decode(d: &mut Decoder, bytes: &[u8]) -> Result<Option<Packet>, DecodeError> {
    let mut src = SegmentedBuffer::new();
    src.push_slice(bytes);
    d.decode(&mut src)
}

/// Decodes `bytes`, expecting `err` and the reason code `code`.
#[track_caller]
fn refuses(d: &mut Decoder, bytes: &[u8], err: DecodeError, code: u8) {
    let got = decode(d, bytes);
    assert_eq!(got, Err(err), "{bytes:02x?}");
    let reason = got.unwrap_err().reason_code();
    assert_eq!(reason.as_u8(), code, "{reason}");
}

fn malformed(err: DecodeError) -> (DecodeError, u8) {
    (err, 0x81)
}

/// A 5.0 `CONNECT` body: flags, then what follows the client id.
fn connect_v5(flags: u8, rest: &[u8]) -> Vec<u8> {
    let mut body = b"\x00\x04MQTT\x05".to_vec();
    body.push(flags);
    body.extend_from_slice(b"\x00\x3c\x00\x00\x01c");
    body.extend_from_slice(rest);
    frame(0x10, &body)
}

#[test]
fn packet_type_0_is_reserved_and_15_is_auth_only_in_5() {
    refuses(
        &mut server(V5),
        &frame(0x00, b""),
        DecodeError::ReservedPacketType(0),
        0x81,
    );
    refuses(
        &mut server(V3),
        &frame(0xf0, b""),
        DecodeError::ReservedPacketType(15),
        0x81,
    );
    assert_eq!(
        decode(&mut server(V5), &frame(0xf0, b"")),
        Ok(Some(Packet::Auth(Reason::default())))
    );
}

#[test]
fn fixed_header_flags_are_0010_for_pubrel_subscribe_unsubscribe_and_0000_elsewhere() {
    for nibble in 1..=15u8 {
        let packet = PacketType::from_nibble(nibble).expect("type");
        let Some(required) = packet.required_flags() else {
            continue;
        };
        for flags in (0..16u8).filter(|&f| f != required) {
            // Whichever side receives this type.
            let mut d = if packet.sent_by(Side::Client, V5) {
                server(V5)
            } else {
                client(V5)
            };
            let (err, code) = malformed(DecodeError::InvalidFlags { packet, flags });
            refuses(&mut d, &frame((nibble << 4) | flags, b"\x00\x01"), err, code);
        }
    }
}

#[test]
fn publish_qos_3_is_malformed_before_the_body_arrives() {
    refuses(&mut server(V5), &[0x36], DecodeError::InvalidQos, 0x81);
}

#[test]
fn remaining_length_must_be_shortest_and_at_most_4_bytes() {
    refuses(
        &mut server(V5),
        &[0xc0, 0x80, 0x00],
        DecodeError::VarIntNotShortest,
        0x81,
    );
    refuses(
        &mut server(V5),
        &[0xc0, 0x80, 0x80, 0x80, 0x80, 0x01],
        DecodeError::VarIntTooLong,
        0x81,
    );
    refuses(
        &mut server(V5),
        &[0xc0, 0xff, 0xff, 0xff, 0xff],
        DecodeError::VarIntTooLong,
        0x81,
    );
}

#[test]
fn maximum_packet_size_is_checked_from_the_fixed_header() {
    // A PUBLISH announcing 268,435,455 bytes: refused with 0x95 after 5 bytes, nothing
    // buffered for it.
    let mut d = Decoder::server(1024);
    d.set_version(V5);
    let mut src = SegmentedBuffer::new();
    src.push_slice(&[0x30, 0xff, 0xff, 0xff]);
    assert_eq!(d.decode(&mut src), Ok(None)); // the length is not complete yet
    src.push_slice(&[0x7f]);
    let err = d.decode(&mut src).unwrap_err();
    assert_eq!(
        err,
        DecodeError::PacketTooLarge {
            size: 268_435_460,
            max: 1024
        }
    );
    assert_eq!(err.reason_code(), ReasonCode::PacketTooLarge);
    // The limit counts the fixed header: 1024 bytes exactly is accepted, 1025 is not.
    let mut body = b"\x00\x01t\x00".to_vec();
    body.resize(1024 - 3, b'x');
    let mut d = Decoder::server(1024);
    d.set_version(V5);
    assert!(matches!(
        decode(&mut d, &frame(0x30, &body)),
        Ok(Some(Packet::Publish(_)))
    ));
    body.push(b'x');
    assert!(matches!(
        decode(&mut d, &frame(0x30, &body)),
        Err(DecodeError::PacketTooLarge { size: 1025, max: 1024 })
    ));
}

#[test]
fn fields_past_the_end_and_bytes_after_the_last_field_are_malformed() {
    // Topic length 9 in a 4-byte body.
    refuses(
        &mut server(V5),
        &frame(0x30, b"\x00\x09ab"),
        DecodeError::Truncated,
        0x81,
    );
    // PINGREQ and 3.1.1 DISCONNECT have no body.
    refuses(
        &mut server(V5),
        &frame(0xc0, b"\x00"),
        DecodeError::TrailingBytes(PacketType::PingReq),
        0x81,
    );
    refuses(
        &mut server(V3),
        &frame(0xe0, b"\x00"),
        DecodeError::TrailingBytes(PacketType::Disconnect),
        0x81,
    );
    // A 3.1.1 PUBACK is exactly a packet identifier.
    refuses(
        &mut server(V3),
        &frame(0x40, b"\x00\x01\x00"),
        DecodeError::TrailingBytes(PacketType::PubAck),
        0x81,
    );
    // A property block longer than the packet.
    refuses(
        &mut server(V5),
        &frame(0x30, b"\x00\x01t\x09\x01"),
        DecodeError::Truncated,
        0x81,
    );
}

#[test]
fn strings_must_be_well_formed_utf8_without_u0000() {
    refuses(
        &mut server(V5),
        &frame(0x30, b"\x00\x03a\x00b\x00"),
        DecodeError::NullCharacter,
        0x81,
    );
    // U+D800 (a surrogate) as UTF-8.
    refuses(
        &mut server(V5),
        &frame(0x30, b"\x00\x03\xed\xa0\x80\x00"),
        DecodeError::InvalidUtf8,
        0x81,
    );
    // The client identifier and the user name are strings; the password is binary.
    let bad_client_id = frame(0x10, b"\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x01\xff");
    refuses(
        &mut Decoder::server(1024),
        &bad_client_id,
        DecodeError::InvalidUtf8,
        0x81,
    );
    let password = connect_v5(0x42 | 0x80, b"\x00\x01u\x00\x02\xff\x00");
    assert!(matches!(
        decode(&mut Decoder::server(1024), &password),
        Ok(Some(Packet::Connect(_)))
    ));
}

#[test]
fn connect_protocol_name_level_and_flags() {
    let mut d = Decoder::server(1024);
    refuses(
        &mut d,
        &frame(0x10, b"\x00\x04MQTX\x05\x02\x00\x00\x00\x00\x00"),
        DecodeError::InvalidProtocolName,
        0x82,
    );
    refuses(
        &mut d,
        &frame(0x10, b"\x00\x04MQTT\x06\x02\x00\x00\x00\x00\x00"),
        DecodeError::UnsupportedProtocolLevel(6),
        0x84,
    );
    // MQIsdp goes with level 3 only.
    refuses(
        &mut d,
        &frame(0x10, b"\x00\x06MQIsdp\x04\x02\x00\x00\x00\x00"),
        DecodeError::UnsupportedProtocolLevel(4),
        0x84,
    );
    assert_eq!(ReasonCode::UnsupportedProtocolVersion.v3_connack(), Some(1));
    refuses(&mut d, &connect_v5(0x03, b""), DecodeError::ConnectReservedFlag, 0x81);
    // Will QoS 1 or Will Retain without the Will Flag.
    refuses(&mut d, &connect_v5(0x0a, b""), DecodeError::WillFlagsWithoutWill, 0x81);
    refuses(&mut d, &connect_v5(0x22, b""), DecodeError::WillFlagsWithoutWill, 0x81);
    // Will QoS 3.
    refuses(
        &mut d,
        &connect_v5(0x1e, b"\x00\x00\x01t\x00\x00"),
        DecodeError::InvalidQos,
        0x81,
    );
    // 3.1.1: a password without a user name.
    refuses(
        &mut d,
        &frame(0x10, b"\x00\x04MQTT\x04\x42\x00\x00\x00\x01c\x00\x01p"),
        Violation::PasswordWithoutUsername.into(),
        0x81,
    );
    // Nothing decoded: the version is still unknown.
    assert_eq!(d.version(), None);
    // 5.0 allows it.
    let ok = connect_v5(0x42, b"\x00\x01p");
    let Ok(Some(Packet::Connect(c))) = decode(&mut d, &ok) else {
        panic!()
    };
    assert_eq!((c.username, c.password), (None, Some(Bytes::from_static(b"p"))));
    assert_eq!(d.version(), Some(V5));
}

#[test]
fn the_server_expects_connect_first_and_refuses_packets_it_never_receives() {
    refuses(
        &mut Decoder::server(1024),
        &frame(0xc0, b""),
        DecodeError::ConnectExpected(PacketType::PingReq),
        0x82,
    );
    let unexpected = |packet, sender| Violation::UnexpectedPacket { packet, sender }.into();
    refuses(
        &mut server(V5),
        &frame(0x20, b"\x00\x00\x00"),
        unexpected(PacketType::ConnAck, Side::Client),
        0x82,
    );
    refuses(
        &mut server(V5),
        &frame(0xd0, b""),
        unexpected(PacketType::PingResp, Side::Client),
        0x82,
    );
    refuses(
        &mut client(V5),
        &frame(0x82, b"\x00\x01\x00\x00\x01a\x00"),
        unexpected(PacketType::Subscribe, Side::Server),
        0x82,
    );
    refuses(
        &mut client(V5),
        &frame(0xc0, b""),
        unexpected(PacketType::PingReq, Side::Server),
        0x82,
    );
    // A 3.1.1 server never sends DISCONNECT.
    refuses(
        &mut client(V3),
        &frame(0xe0, b""),
        unexpected(PacketType::Disconnect, Side::Server),
        0x82,
    );
}

#[test]
fn connack_flags_and_codes() {
    refuses(
        &mut client(V5),
        &frame(0x20, b"\x02\x00\x00"),
        DecodeError::ConnAckReservedFlags,
        0x81,
    );
    let bad = |code| {
        Violation::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code,
        }
        .into()
    };
    refuses(&mut client(V3), &frame(0x20, b"\x00\x06"), bad(6), 0x82);
    // Granted QoS 1 is a reason code, but not a CONNACK one.
    refuses(&mut client(V5), &frame(0x20, b"\x00\x01\x00"), bad(1), 0x82);
    refuses(
        &mut client(V5),
        &frame(0x20, b"\x01\x87\x00"),
        Violation::SessionPresentOnFailure.into(),
        0x82,
    );
    let Ok(Some(Packet::ConnAck(ack))) = decode(&mut client(V3), &frame(0x20, b"\x00\x05")) else {
        panic!()
    };
    assert_eq!(ack.code, ReasonCode::NotAuthorized);
}

#[test]
fn publish_rules() {
    // DUP on QoS 0.
    refuses(
        &mut server(V5),
        &frame(0x38, b"\x00\x01t\x00"),
        Violation::DupOnQos0.into(),
        0x81,
    );
    // Packet identifier 0 at QoS 1.
    refuses(
        &mut server(V5),
        &frame(0x32, b"\x00\x01t\x00\x00\x00"),
        Violation::ZeroPacketId.into(),
        0x82,
    );
    // Wildcards in a topic name: a Protocol Error (0x90 is for a name "correctly
    // formed, but not accepted").
    refuses(
        &mut server(V5),
        &frame(0x30, b"\x00\x03a/+\x00"),
        Violation::WildcardInTopicName.into(),
        0x82,
    );
    refuses(
        &mut server(V3),
        &frame(0x30, b"\x00\x03a/#"),
        Violation::WildcardInTopicName.into(),
        0x82,
    );
    // An empty topic: only with a Topic Alias, only in 5.0.
    refuses(
        &mut server(V3),
        &frame(0x30, b"\x00\x00x"),
        Violation::EmptyTopicName.into(),
        0x82,
    );
    refuses(
        &mut server(V5),
        &frame(0x30, b"\x00\x00\x00x"),
        Violation::EmptyTopicName.into(),
        0x82,
    );
    let Ok(Some(Packet::Publish(p))) = decode(&mut server(V5), &frame(0x30, b"\x00\x00\x03\x23\x00\x05x")) else {
        panic!()
    };
    assert_eq!(p.properties.topic_alias, Some(5));
    // A Subscription Identifier only from the server.
    let with_sub_id = frame(0x30, b"\x00\x01t\x02\x0b\x07x");
    refuses(
        &mut server(V5),
        &with_sub_id,
        Violation::SubscriptionIdFromClient.into(),
        0x82,
    );
    assert!(matches!(
        decode(&mut client(V5), &with_sub_id),
        Ok(Some(Packet::Publish(_)))
    ));
    // A property of another packet: malformed.
    let err = Violation::PropertyNotAllowed {
        property: PropertyId::SessionExpiryInterval,
        context: PropertyContext::Packet(PacketType::Publish),
    };
    refuses(
        &mut server(V5),
        &frame(0x30, b"\x00\x01t\x05\x11\x00\x00\x00\x01"),
        err.into(),
        0x81,
    );
}

#[test]
fn acknowledgement_codes_depend_on_the_packet() {
    let bad = |packet, code| Violation::InvalidReasonCode { packet, code }.into();
    // No Matching Subscribers is a PUBACK code, not a PUBCOMP one; 0x04 is no ack code.
    assert!(matches!(
        decode(&mut server(V5), &frame(0x40, b"\x00\x01\x10")),
        Ok(Some(Packet::PubAck(_)))
    ));
    refuses(
        &mut server(V5),
        &frame(0x70, b"\x00\x01\x10"),
        bad(PacketType::PubComp, 0x10),
        0x82,
    );
    refuses(
        &mut server(V5),
        &frame(0x50, b"\x00\x01\x04"),
        bad(PacketType::PubRec, 0x04),
        0x82,
    );
    // 0x03 is no reason code at all.
    refuses(
        &mut server(V5),
        &frame(0x62, b"\x00\x01\x03"),
        bad(PacketType::PubRel, 0x03),
        0x82,
    );
    refuses(
        &mut server(V5),
        &frame(0x40, b"\x00\x00"),
        Violation::ZeroPacketId.into(),
        0x82,
    );
}

#[test]
fn subscribe_rules() {
    let empty = |p| Violation::EmptyList(p).into();
    refuses(
        &mut server(V5),
        &frame(0x82, b"\x00\x01\x00"),
        empty(PacketType::Subscribe),
        0x82,
    );
    refuses(
        &mut server(V3),
        &frame(0x82, b"\x00\x01"),
        empty(PacketType::Subscribe),
        0x82,
    );
    refuses(
        &mut server(V5),
        &frame(0xa2, b"\x00\x01\x00"),
        empty(PacketType::Unsubscribe),
        0x82,
    );
    // Reserved option bits: 7-6 in 5.0, 7-2 in 3.1.1.
    refuses(
        &mut server(V5),
        &frame(0x82, b"\x00\x01\x00\x00\x01a\x40"),
        DecodeError::SubscriptionReservedBits,
        0x81,
    );
    refuses(
        &mut server(V3),
        &frame(0x82, b"\x00\x01\x00\x01a\x04"),
        DecodeError::SubscriptionReservedBits,
        0x81,
    );
    refuses(
        &mut server(V5),
        &frame(0x82, b"\x00\x01\x00\x00\x01a\x03"),
        DecodeError::InvalidQos,
        0x81,
    );
    refuses(
        &mut server(V5),
        &frame(0x82, b"\x00\x01\x00\x00\x01a\x30"),
        Violation::InvalidRetainHandling.into(),
        0x82,
    );
    let shared = frame(0x82, b"\x00\x01\x00\x00\x0a$share/g/a\x04");
    refuses(
        &mut server(V5),
        &shared,
        Violation::NoLocalOnSharedSubscription.into(),
        0x82,
    );
    refuses(
        &mut server(V5),
        &frame(0x82, b"\x00\x00\x00\x00\x01a\x00"),
        Violation::ZeroPacketId.into(),
        0x82,
    );
    // 3.1.1 SUBACK codes: a QoS or 0x80.
    let bad = Violation::InvalidReasonCode {
        packet: PacketType::SubAck,
        code: 0x87,
    };
    refuses(&mut client(V3), &frame(0x90, b"\x00\x01\x87"), bad.into(), 0x82);
    assert!(matches!(
        decode(&mut client(V5), &frame(0x90, b"\x00\x01\x00\x87")),
        Ok(Some(Packet::SubAck(_)))
    ));
    // A 3.1.1 UNSUBACK has no payload; a 5.0 one has a code per filter.
    assert!(matches!(
        decode(&mut client(V3), &frame(0xb0, b"\x00\x01")),
        Ok(Some(Packet::UnsubAck(_)))
    ));
    refuses(
        &mut client(V5),
        &frame(0xb0, b"\x00\x01\x00"),
        empty(PacketType::UnsubAck),
        0x82,
    );
}

#[test]
fn disconnect_codes_depend_on_the_sender() {
    let bad = |code| {
        Violation::InvalidReasonCode {
            packet: PacketType::Disconnect,
            code,
        }
        .into()
    };
    // Server shutting down, from a client; Disconnect with Will, from a server.
    refuses(&mut server(V5), &frame(0xe0, b"\x8b"), bad(0x8b), 0x82);
    refuses(&mut client(V5), &frame(0xe0, b"\x04"), bad(0x04), 0x82);
    assert!(matches!(
        decode(&mut server(V5), &frame(0xe0, b"\x04")),
        Ok(Some(Packet::Disconnect(_)))
    ));
    refuses(
        &mut client(V5),
        &frame(0xe0, b"\x00\x05\x11\x00\x00\x00\x01"),
        Violation::SessionExpiryFromServer.into(),
        0x82,
    );
    let bad_auth = Violation::InvalidReasonCode {
        packet: PacketType::Auth,
        code: 0x80,
    };
    refuses(&mut server(V5), &frame(0xf0, b"\x80\x00"), bad_auth.into(), 0x82);
}

#[test]
fn a_packet_in_pieces_is_decoded_once_whole() {
    let packet = frame(0x32, b"\x00\x03a/b\x00\x07\x00hello");
    for cut in 0..packet.len() {
        let mut d = server(V5);
        let mut src = SegmentedBuffer::new();
        src.push_slice(&packet[..cut]);
        assert_eq!(d.decode(&mut src), Ok(None), "cut at {cut}");
        assert_eq!(src.len(), cut, "nothing consumed while waiting");
        src.push_slice(&packet[cut..]);
        let Ok(Some(Packet::Publish(p))) = d.decode(&mut src) else {
            panic!("cut at {cut}")
        };
        assert_eq!(
            (&p.topic[..], p.packet_id, &p.payload[..]),
            (&b"a/b"[..], 7, &b"hello"[..])
        );
        assert!(src.is_empty());
    }
}

#[test]
fn fields_are_views_of_the_received_segment() {
    let mut wire = frame(0x30, b"\x00\x03a/b\x00payload");
    wire.extend(frame(0xc0, b""));
    let seg = Bytes::from(wire);
    let mut src = SegmentedBuffer::from(seg.clone());
    let Ok(Some(Packet::Publish(p))) = server(V5).decode(&mut src) else {
        panic!()
    };
    assert_eq!(p.topic.as_ptr(), seg[4..].as_ptr());
    assert_eq!(p.payload.as_ptr(), seg[8..].as_ptr());
    assert_eq!(server(V5).decode(&mut src), Ok(Some(Packet::PingReq)));
    assert!(src.is_empty());
}
