//! The MQTT decoder targets, one per side: split invariance and a differential round
//! trip through the encoder.

use bytes::Bytes;

use super::split::pieces;
use crate::chassis::SegmentedBuffer;
use crate::mqtt::{
    Ack, ConnAck, Connect, DecodeError, Decoder, Encoder, Packet, Properties, ProtocolVersion, Publish, QoS, Reason,
    ReasonCode, RetainHandling, Side, SubAck, Subscribe, Subscription, SubscriptionOptions, Unsubscribe, Will,
    DEFAULT_MAX_PACKET_SIZE,
};

/// Fuzzes a server's [`Decoder`] reading what clients send (`CONNECT` first, unless the
/// options give the version).
///
/// Input layout: byte 0 holds options, byte 1 seeds the segment boundaries, the rest is
/// the stream. Options: bits 0-1 the version (0 unknown until `CONNECT`, 1 3.1, 2 3.1.1,
/// 3 5.0), bit 2 a Maximum Packet Size of 64 bytes instead of the default.
///
/// Checks, panicking on the first that fails:
/// 1. decoding never panics, and stops at the first `Err`;
/// 2. the stream cut into pieces decodes to exactly what it decodes to in one piece:
///    the same packets, then the same error, or the same bytes left waiting;
/// 3. every error's reason code is one a 5.0 receiver answers a bad packet with
///    (0x81, 0x82, 0x84, 0x94, 0x95);
/// 4. every decoded packet encodes (as its sender would, in the version in force) no
///    longer than it came, and the encoding decodes back to an identical packet.
pub fn mqtt_server_decode(data: &[u8]) {
    decode_target(Side::Server, data);
}

/// Fuzzes a client's [`Decoder`] reading what servers send. Input layout and checks as
/// [`mqtt_server_decode`], except that version 0 means 5.0 (a client always knows its
/// version).
pub fn mqtt_client_decode(data: &[u8]) {
    decode_target(Side::Client, data);
}

fn decoder(side: Side, options: u8) -> Decoder {
    let max = if options & 4 != 0 { 64 } else { DEFAULT_MAX_PACKET_SIZE };
    let version = match options & 3 {
        1 => Some(ProtocolVersion::V3_1),
        2 => Some(ProtocolVersion::V3_1_1),
        3 => Some(ProtocolVersion::V5),
        _ => None,
    };
    match side {
        Side::Server => {
            let mut d = Decoder::server(max);
            if let Some(v) = version {
                d.set_version(v);
            }
            d
        }
        Side::Client => Decoder::client(version.unwrap_or(ProtocolVersion::V5), max),
    }
}

/// How decoding a whole stream ended.
#[derive(Debug, PartialEq)]
enum End {
    /// Every byte used, or `left` bytes of an incomplete packet waiting.
    Waiting { left: usize },
    /// The stream was rejected.
    Error(DecodeError),
}

/// Decodes `parts` in order: each packet with its version and its size on the wire.
fn decode_pieces(side: Side, options: u8, parts: Vec<&[u8]>) -> (Vec<(Packet, ProtocolVersion, usize)>, End) {
    let mut d = decoder(side, options);
    let mut src = SegmentedBuffer::new();
    let mut out = Vec::new();
    for part in parts {
        src.push_slice(part);
        loop {
            let before = src.len();
            match d.decode(&mut src) {
                Ok(Some(p)) => {
                    // A CONNECT carries its own version, whatever the decoder was told.
                    let version = match &p {
                        Packet::Connect(c) => c.protocol,
                        _ => d.version().expect("a decoded packet fixes the version"),
                    };
                    out.push((p, version, before - src.len()));
                }
                Ok(None) => break,
                Err(e) => return (out, End::Error(e)),
            }
        }
    }
    (out, End::Waiting { left: src.len() })
}

fn decode_target(side: Side, data: &[u8]) {
    let options = data.first().copied().unwrap_or(0);
    let seed = data.get(1).copied().unwrap_or(0);
    let body = data.get(2..).unwrap_or_default();

    let (packets, end) = decode_pieces(side, options, vec![body]);
    let (split_packets, split_end) = decode_pieces(side, options, pieces(body, seed));
    assert_eq!(split_end, end, "segment boundaries changed how decoding ended");
    assert_eq!(split_packets, packets, "segment boundaries changed the packets");

    if let End::Error(e) = &end {
        let code = e.reason_code().as_u8();
        assert!(
            matches!(code, 0x81 | 0x82 | 0x84 | 0x94 | 0x95),
            "{e:?} answered with 0x{code:02x}"
        );
    }

    let sender = side.peer();
    for (packet, version, size) in packets {
        let mut wire = Vec::new();
        Encoder::with_version(sender, version)
            .encode(&packet, &mut wire)
            .unwrap_or_else(|e| panic!("a decoded packet does not encode: {e}: {packet:?}"));
        assert!(
            wire.len() <= size,
            "{size} bytes re-encoded as {}: {packet:?}",
            wire.len()
        );
        let mut d = decoder(side, 0);
        d.set_version(version);
        d.set_max_packet_size(u32::MAX);
        let mut src = SegmentedBuffer::from(Bytes::from(wire));
        assert_eq!(d.decode(&mut src), Ok(Some(packet)), "the re-encoded packet differs");
        assert!(src.is_empty(), "the re-encoding left bytes over");
    }
}

fn encode_all(sender: Side, version: ProtocolVersion, packets: &[Packet]) -> Vec<u8> {
    let mut encoder = Encoder::with_version(sender, version);
    let mut out = Vec::new();
    for p in packets {
        encoder.encode(p, &mut out).expect("a seed packet encodes");
    }
    out
}

fn b(s: &'static str) -> Bytes {
    Bytes::from_static(s.as_bytes())
}

/// Properties that touch many identifiers of a `PUBLISH`.
fn publish_properties() -> Properties {
    Properties {
        payload_format_indicator: Some(true),
        message_expiry_interval: Some(60),
        content_type: Some(b("text/plain")),
        response_topic: Some(b("reply/here")),
        correlation_data: Some(Bytes::from_static(b"\x00\x01")),
        user_properties: vec![(b("k"), b("v")), (b("k"), b("w"))],
        ..Properties::default()
    }
}

fn connect(version: ProtocolVersion) -> Packet {
    let v5 = version.is_v5();
    Packet::Connect(Box::new(Connect {
        protocol: version,
        clean_start: true,
        keep_alive: 60,
        properties: if v5 {
            Properties {
                session_expiry_interval: Some(u32::MAX),
                receive_maximum: Some(20),
                maximum_packet_size: Some(1 << 16),
                topic_alias_maximum: Some(10),
                request_problem_information: Some(true),
                request_response_information: Some(false),
                authentication_method: Some(b("SCRAM-SHA-1")),
                authentication_data: Some(b("client-first")),
                user_properties: vec![(b("app"), b("fuzz"))],
                ..Properties::default()
            }
        } else {
            Properties::default()
        },
        client_id: b("client-1"),
        will: Some(Will {
            properties: if v5 {
                Properties {
                    will_delay_interval: Some(5),
                    ..publish_properties()
                }
            } else {
                Properties::default()
            },
            topic: b("clients/1/status"),
            payload: b("gone"),
            qos: QoS::AtLeastOnce,
            retain: true,
        }),
        username: Some(b("user")),
        password: Some(Bytes::from_static(b"\xffsecret")),
    }))
}

fn publish(qos: QoS, id: u16, v5: bool, payload: &'static [u8]) -> Packet {
    Packet::Publish(Publish {
        dup: false,
        qos,
        retain: qos == QoS::AtMostOnce,
        topic: b("sensors/room-1/temp"),
        packet_id: id,
        properties: if v5 {
            publish_properties()
        } else {
            Properties::default()
        },
        payload: Bytes::from_static(payload),
    })
}

fn ack(code: ReasonCode, v5: bool) -> Ack {
    Ack {
        packet_id: 7,
        code: if v5 { code } else { ReasonCode::Success },
        properties: if v5 && code.is_error() {
            Properties {
                reason_string: Some(b("no")),
                ..Properties::default()
            }
        } else {
            Properties::default()
        },
    }
}

/// Hand-written packets that break a rule each (without header bytes).
const BAD_FROM_CLIENTS: &[&[u8]] = &[
    b"\x10\x0e\x00\x04MQTT\x05\x03\x00\x3c\x00\x00\x01c",
    b"\x10\x0e\x00\x04MQTT\x06\x02\x00\x3c\x00\x00\x01c",
    b"\x10\x0e\x00\x06MQIsdp\x04\x02\x00\x3c\x00\x00",
    b"\xc0\x00",
    b"\x30\xff\xff\xff\xff\x01",
    b"\x30\x80\x00",
];

const BAD_FROM_SERVERS: &[&[u8]] = &[
    b"\x20\x03\x02\x00\x00",
    b"\x20\x03\x01\x87\x00",
    b"\x82\x06\x00\x01\x00\x00\x01a",
    b"\xe0\x01\x04",
    b"\x36\x00",
];

/// The seed streams of [`mqtt_server_decode`] (what clients send), without header bytes:
/// a session per version, then the malformed packets.
pub fn mqtt_server_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let v5 = version.is_v5();
        let mut packets = vec![
            connect(version),
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                properties: if v5 {
                    Properties {
                        subscription_identifiers: vec![42],
                        user_properties: vec![(b("a"), b("b"))],
                        ..Properties::default()
                    }
                } else {
                    Properties::default()
                },
                subscriptions: vec![
                    Subscription {
                        filter: b("sensors/+/temp"),
                        options: SubscriptionOptions::qos(QoS::ExactlyOnce),
                    },
                    Subscription {
                        filter: b("$share/g/alerts/#"),
                        options: if v5 {
                            SubscriptionOptions {
                                qos: QoS::AtLeastOnce,
                                no_local: false,
                                retain_as_published: true,
                                retain_handling: RetainHandling::DoNotSend,
                            }
                        } else {
                            SubscriptionOptions::qos(QoS::AtLeastOnce)
                        },
                    },
                ],
            }),
            publish(QoS::AtMostOnce, 0, v5, b"21.5"),
            publish(QoS::AtLeastOnce, 7, v5, b"{\"t\":21.5}"),
            publish(QoS::ExactlyOnce, 8, v5, b""),
            Packet::PubAck(ack(ReasonCode::Success, v5)),
            Packet::PubRec(ack(ReasonCode::QuotaExceeded, v5)),
            Packet::PubRel(ack(ReasonCode::PacketIdentifierNotFound, v5)),
            Packet::PubComp(ack(ReasonCode::Success, v5)),
            Packet::Unsubscribe(Unsubscribe {
                packet_id: 2,
                properties: Properties::default(),
                filters: vec![b("sensors/+/temp"), b("a")],
            }),
            Packet::PingReq,
        ];
        if v5 {
            packets.push(Packet::Auth(Reason::new(ReasonCode::ContinueAuthentication)));
            packets.push(Packet::Disconnect(Reason {
                code: ReasonCode::DisconnectWithWillMessage,
                properties: Properties {
                    session_expiry_interval: Some(0),
                    reason_string: Some(b("bye")),
                    ..Properties::default()
                },
            }));
        } else {
            packets.push(Packet::Disconnect(Reason::default()));
        }
        seeds.push(encode_all(Side::Client, version, &packets));
    }
    seeds.extend(BAD_FROM_CLIENTS.iter().map(|s| s.to_vec()));
    seeds
}

/// The seed streams of [`mqtt_client_decode`] (what servers send), without header bytes.
pub fn mqtt_client_seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let v5 = version.is_v5();
        let mut packets = vec![
            Packet::ConnAck(ConnAck {
                session_present: true,
                code: ReasonCode::Success,
                properties: if v5 {
                    Properties {
                        session_expiry_interval: Some(300),
                        assigned_client_identifier: Some(b("auto-1")),
                        server_keep_alive: Some(30),
                        receive_maximum: Some(100),
                        topic_alias_maximum: Some(10),
                        maximum_qos: Some(QoS::AtLeastOnce),
                        retain_available: Some(true),
                        maximum_packet_size: Some(1 << 20),
                        wildcard_subscription_available: Some(true),
                        subscription_identifier_available: Some(true),
                        shared_subscription_available: Some(false),
                        response_information: Some(b("resp/")),
                        server_reference: Some(b("other:1883")),
                        reason_string: Some(b("welcome")),
                        ..Properties::default()
                    }
                } else {
                    Properties::default()
                },
            }),
            Packet::SubAck(SubAck {
                packet_id: 1,
                properties: Properties::default(),
                codes: vec![ReasonCode::GrantedQoS2, ReasonCode::UnspecifiedError],
            }),
            publish(QoS::AtLeastOnce, 9, v5, b"hello"),
            Packet::PubAck(ack(ReasonCode::NoMatchingSubscribers, v5)),
            Packet::PubRec(ack(ReasonCode::Success, v5)),
            Packet::PubComp(ack(ReasonCode::Success, v5)),
            Packet::UnsubAck(SubAck {
                packet_id: 2,
                properties: Properties::default(),
                codes: if v5 {
                    vec![ReasonCode::NoSubscriptionExisted]
                } else {
                    Vec::new()
                },
            }),
            Packet::PingResp,
        ];
        if v5 {
            if let Packet::Publish(p) = &mut packets[2] {
                p.properties.subscription_identifiers = vec![1, 42];
                p.properties.topic_alias = Some(3);
            }
            packets.push(Packet::Auth(Reason::new(ReasonCode::Success)));
            packets.push(Packet::Disconnect(Reason {
                code: ReasonCode::ServerMoved,
                properties: Properties {
                    server_reference: Some(b("elsewhere:1883")),
                    ..Properties::default()
                },
            }));
        }
        seeds.push(encode_all(Side::Server, version, &packets));
    }
    seeds.push(encode_all(
        Side::Server,
        ProtocolVersion::V3_1_1,
        &[Packet::ConnAck(ConnAck {
            session_present: false,
            code: ReasonCode::NotAuthorized,
            properties: Properties::default(),
        })],
    ));
    seeds.extend(BAD_FROM_SERVERS.iter().map(|s| s.to_vec()));
    seeds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_sessions_decode_whole_and_bad_seeds_fail() {
        for (side, seeds, bad, options) in [
            (Side::Server, mqtt_server_seeds(), BAD_FROM_CLIENTS.len(), 0),
            (Side::Client, mqtt_client_seeds(), BAD_FROM_SERVERS.len(), 3),
        ] {
            let good = seeds.len() - bad;
            for (i, s) in seeds.iter().enumerate() {
                // Client seeds: the 3.1.1 ones (every other) in 3.1.1.
                let options = if side == Side::Client && i != 1 && i < good {
                    2
                } else {
                    options
                };
                let (packets, end) = decode_pieces(side, options, vec![s]);
                if i < good {
                    assert_eq!(end, End::Waiting { left: 0 }, "seed {i} of {side}");
                    assert!(!packets.is_empty());
                } else {
                    assert!(matches!(end, End::Error(_)), "bad seed {i} of {side}: {end:?}");
                }
            }
        }
    }

    #[test]
    fn targets_accept_every_seed_in_every_mode() {
        for s in mqtt_server_seeds() {
            for header in [[0u8, 0], [1, 1], [2, 7], [3, 200], [4, 9], [7, 3]] {
                mqtt_server_decode(&[&header[..], &s].concat());
            }
        }
        for s in mqtt_client_seeds() {
            for header in [[0u8, 0], [1, 1], [2, 7], [3, 200], [4, 9], [6, 3]] {
                mqtt_client_decode(&[&header[..], &s].concat());
            }
        }
    }
}
