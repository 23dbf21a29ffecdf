//! Property tests for the MQTT codec: every packet type of every version, sent by each
//! side that may send it, survives encode → cut at every byte boundary → decode, and
//! comes out equal; a stream of many packets cut at random decodes to the same packets;
//! the IoArena and Vec sinks write the same bytes; Remaining Lengths are shortest.

use bytes::Bytes;
use monocoque_proto::mqtt::{
    Ack, ConnAck, Connect, Decoder, Encoder, Packet, PacketType, Properties, PropertyContext, ProtocolVersion, Publish,
    QoS, Reason, ReasonCode, RetainHandling, Side, SubAck, Subscribe, Subscription, SubscriptionOptions, Unsubscribe,
    Will, PROTOCOL_MAX_PACKET_SIZE, VBI_MAX,
};
use monocoque_proto::{IoArena, SegmentedBuffer};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------------------

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop_oneof![
        Just(ProtocolVersion::V3_1),
        Just(ProtocolVersion::V3_1_1),
        Just(ProtocolVersion::V5)
    ]
}

/// A UTF-8 string without U+0000: ASCII, two-, three- and four-byte characters,
/// control characters and a BOM (allowed).
fn string() -> impl Strategy<Value = Bytes> {
    "[a-z/ü€𝄞\u{1}\u{7f}\u{feff}]{0,10}".prop_map(|s: String| Bytes::from(s.into_bytes()))
}

fn topic() -> impl Strategy<Value = Bytes> {
    "[a-z0-9/ü€$]{1,12}".prop_map(|s: String| Bytes::from(s.into_bytes()))
}

fn filter() -> impl Strategy<Value = Bytes> {
    "[a-z/+#ü]{1,12}".prop_map(|s: String| Bytes::from(s.into_bytes()))
}

fn binary(max: usize) -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..max).prop_map(Bytes::from)
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce), Just(QoS::ExactlyOnce)]
}

fn packet_id() -> impl Strategy<Value = u16> {
    1..=u16::MAX
}

/// Every property, each present half the time, values in range; then only those
/// `context` allows are kept, and Subscription Identifiers cut to what it allows.
fn properties(context: PropertyContext, version: ProtocolVersion) -> BoxedStrategy<Properties> {
    if !version.is_v5() {
        return Just(Properties::default()).boxed();
    }
    let a = (
        option::of(any::<bool>()),
        option::of(any::<u32>()),
        option::of(string()),
        option::of(string()),
        option::of(binary(12)),
        vec(1..=VBI_MAX, 0..3),
        option::of(any::<u32>()),
        option::of(string()),
        option::of(any::<u16>()),
        option::of((string(), option::of(binary(8)))),
    );
    let b = (
        option::of(any::<bool>()),
        option::of(any::<u32>()),
        option::of(any::<bool>()),
        option::of(string()),
        option::of(string()),
        option::of(string()),
        option::of(1..=u16::MAX),
        option::of(any::<u16>()),
        option::of(1..=u16::MAX),
        option::of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
    );
    let c = (
        option::of(any::<bool>()),
        vec((string(), string()), 0..3),
        option::of(1..=u32::MAX),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
        option::of(any::<bool>()),
    );
    (a, b, c)
        .prop_map(move |(a, b, c)| {
            let (auth_method, auth_data) = match a.9 {
                Some((method, data)) => (Some(method), data),
                None => (None, None),
            };
            let mut p = Properties {
                payload_format_indicator: a.0,
                message_expiry_interval: a.1,
                content_type: a.2,
                response_topic: a.3,
                correlation_data: a.4,
                subscription_identifiers: a.5,
                session_expiry_interval: a.6,
                assigned_client_identifier: a.7,
                server_keep_alive: a.8,
                authentication_method: auth_method,
                authentication_data: auth_data,
                request_problem_information: b.0,
                will_delay_interval: b.1,
                request_response_information: b.2,
                response_information: b.3,
                server_reference: b.4,
                reason_string: b.5,
                receive_maximum: b.6,
                topic_alias_maximum: b.7,
                topic_alias: b.8,
                maximum_qos: b.9,
                retain_available: c.0,
                user_properties: c.1,
                maximum_packet_size: c.2,
                wildcard_subscription_available: c.3,
                subscription_identifier_available: c.4,
                shared_subscription_available: c.5,
            };
            p.retain_allowed(context);
            if context == PropertyContext::Packet(PacketType::Subscribe) {
                p.subscription_identifiers.truncate(1);
            }
            p
        })
        .boxed()
}

fn props(packet: PacketType, version: ProtocolVersion) -> BoxedStrategy<Properties> {
    properties(PropertyContext::Packet(packet), version)
}

/// A reason code `packet` may carry from `sender` in `version`.
fn code(packet: PacketType, sender: Side, version: ProtocolVersion) -> impl Strategy<Value = ReasonCode> {
    let valid: Vec<ReasonCode> = ReasonCode::ALL
        .iter()
        .copied()
        .filter(|c| c.valid_in(packet, sender, version))
        .collect();
    proptest::sample::select(valid)
}

fn connect(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let will = (
        properties(PropertyContext::Will, version),
        topic(),
        binary(40),
        qos(),
        any::<bool>(),
    )
        .prop_map(|(properties, topic, payload, qos, retain)| Will {
            properties,
            topic,
            payload,
            qos,
            retain,
        });
    (
        any::<bool>(),
        any::<u16>(),
        props(PacketType::Connect, version),
        string(),
        option::of(will),
        option::of(string()),
        option::of(binary(10)),
    )
        .prop_map(
            move |(clean_start, keep_alive, properties, client_id, will, username, password)| {
                // 3.1.1 sends a password only with a user name.
                let password = if version.is_v5() || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::Connect(Box::new(Connect {
                    protocol: version,
                    clean_start,
                    keep_alive,
                    properties,
                    client_id,
                    will,
                    username,
                    password,
                }))
            },
        )
        .boxed()
}

fn publish(version: ProtocolVersion, sender: Side) -> BoxedStrategy<Packet> {
    let payload = prop_oneof![4 => binary(300), 1 => vec(any::<u8>(), 4096..4200).prop_map(Bytes::from)];
    (
        qos(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![4 => topic(), 1 => Just(Bytes::new())],
        packet_id(),
        props(PacketType::Publish, version),
        payload,
    )
        .prop_map(move |(qos, dup, retain, topic, id, mut properties, payload)| {
            if sender == Side::Client {
                properties.subscription_identifiers.clear();
            }
            // An empty topic needs an alias (5.0); otherwise use a one-letter topic.
            let topic = if topic.is_empty() && properties.topic_alias.is_none() {
                Bytes::from_static(b"t")
            } else {
                topic
            };
            Packet::Publish(Publish {
                dup: dup && qos != QoS::AtMostOnce,
                qos,
                retain,
                topic,
                packet_id: if qos == QoS::AtMostOnce { 0 } else { id },
                properties,
                payload,
            })
        })
        .boxed()
}

fn ack(packet: PacketType, version: ProtocolVersion, sender: Side) -> BoxedStrategy<Packet> {
    (packet_id(), code(packet, sender, version), props(packet, version))
        .prop_map(move |(packet_id, code, properties)| {
            let ack = Ack {
                packet_id,
                code,
                properties,
            };
            match packet {
                PacketType::PubAck => Packet::PubAck(ack),
                PacketType::PubRec => Packet::PubRec(ack),
                PacketType::PubRel => Packet::PubRel(ack),
                _ => Packet::PubComp(ack),
            }
        })
        .boxed()
}

fn subscribe(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let v5 = version.is_v5();
    let options = (
        qos(),
        any::<bool>(),
        any::<bool>(),
        prop_oneof![
            Just(RetainHandling::SendAtSubscribe),
            Just(RetainHandling::SendIfNew),
            Just(RetainHandling::DoNotSend)
        ],
    )
        .prop_map(move |(qos, no_local, rap, rh)| {
            if v5 {
                SubscriptionOptions {
                    qos,
                    no_local,
                    retain_as_published: rap,
                    retain_handling: rh,
                }
            } else {
                SubscriptionOptions::qos(qos)
            }
        });
    let subscription = (
        prop_oneof![4 => filter(), 1 => Just(Bytes::from_static(b"$share/g/a/#"))],
        options,
    )
        .prop_map(|(filter, mut options)| {
            if filter.starts_with(b"$share/") {
                options.no_local = false;
            }
            Subscription { filter, options }
        });
    (
        packet_id(),
        props(PacketType::Subscribe, version),
        vec(subscription, 1..4),
    )
        .prop_map(|(packet_id, properties, subscriptions)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                properties,
                subscriptions,
            })
        })
        .boxed()
}

fn suback(packet: PacketType, version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let count = if packet == PacketType::UnsubAck && !version.is_v5() {
        0..1
    } else {
        1..5
    };
    (
        packet_id(),
        props(packet, version),
        vec(code(packet, Side::Server, version), count),
    )
        .prop_map(move |(packet_id, properties, codes)| {
            let ack = SubAck {
                packet_id,
                properties,
                codes,
            };
            if packet == PacketType::SubAck {
                Packet::SubAck(ack)
            } else {
                Packet::UnsubAck(ack)
            }
        })
        .boxed()
}

fn reason(packet: PacketType, version: ProtocolVersion, sender: Side) -> BoxedStrategy<Packet> {
    (code(packet, sender, version), props(packet, version))
        .prop_map(move |(code, mut properties)| {
            if sender == Side::Server {
                properties.session_expiry_interval = None;
            }
            let r = Reason { code, properties };
            if packet == PacketType::Disconnect {
                Packet::Disconnect(r)
            } else {
                Packet::Auth(r)
            }
        })
        .boxed()
}

/// Any packet `sender` may send in `version`.
fn packet(version: ProtocolVersion, sender: Side) -> BoxedStrategy<Packet> {
    let mut choices: Vec<BoxedStrategy<Packet>> = vec![
        publish(version, sender),
        ack(PacketType::PubAck, version, sender),
        ack(PacketType::PubRec, version, sender),
        ack(PacketType::PubRel, version, sender),
        ack(PacketType::PubComp, version, sender),
    ];
    match sender {
        Side::Client => {
            choices.push(connect(version));
            choices.push(subscribe(version));
            choices.push(
                (
                    packet_id(),
                    props(PacketType::Unsubscribe, version),
                    vec(filter(), 1..4),
                )
                    .prop_map(|(packet_id, properties, filters)| {
                        Packet::Unsubscribe(Unsubscribe {
                            packet_id,
                            properties,
                            filters,
                        })
                    })
                    .boxed(),
            );
            choices.push(Just(Packet::PingReq).boxed());
            choices.push(reason(PacketType::Disconnect, version, sender));
        }
        Side::Server => {
            choices.push(
                (
                    any::<bool>(),
                    code(PacketType::ConnAck, sender, version),
                    props(PacketType::ConnAck, version),
                )
                    .prop_map(|(session_present, code, properties)| {
                        Packet::ConnAck(ConnAck {
                            session_present: session_present && code == ReasonCode::Success,
                            code,
                            properties,
                        })
                    })
                    .boxed(),
            );
            choices.push(suback(PacketType::SubAck, version));
            choices.push(suback(PacketType::UnsubAck, version));
            choices.push(Just(Packet::PingResp).boxed());
            if version.is_v5() {
                choices.push(reason(PacketType::Disconnect, version, sender));
            }
        }
    }
    if version.is_v5() {
        choices.push(reason(PacketType::Auth, version, sender));
    }
    proptest::strategy::Union::new(choices).boxed()
}

fn side() -> impl Strategy<Value = Side> {
    prop_oneof![Just(Side::Client), Just(Side::Server)]
}

/// A version, a sender and packets that sender may send in it.
fn stream(max: usize) -> impl Strategy<Value = (ProtocolVersion, Side, Vec<Packet>)> {
    (version(), side()).prop_flat_map(move |(v, s)| (Just(v), Just(s), vec(packet(v, s), 1..max)))
}

// ---------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------

/// The decoder of the side that receives what `sender` sends, in `version`.
fn receiver(sender: Side, version: ProtocolVersion) -> Decoder {
    match sender {
        Side::Client => {
            let mut d = Decoder::server(PROTOCOL_MAX_PACKET_SIZE);
            d.set_version(version);
            d
        }
        Side::Server => Decoder::client(version, PROTOCOL_MAX_PACKET_SIZE),
    }
}

fn encode(version: ProtocolVersion, sender: Side, packet: &Packet) -> Vec<u8> {
    let mut out = Vec::new();
    Encoder::with_version(sender, version)
        .encode(packet, &mut out)
        .unwrap_or_else(|e| panic!("{e}: {packet:?}"));
    out
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// encode → split at every byte boundary → decode → equal, for every packet.
    #[test]
    fn every_packet_survives_every_cut((version, sender, packets) in stream(2)) {
        let packet = &packets[0];
        let wire = encode(version, sender, packet);
        for cut in 0..=wire.len() {
            let mut decoder = receiver(sender, version);
            let mut src = SegmentedBuffer::new();
            src.push_slice(&wire[..cut]);
            if cut < wire.len() {
                prop_assert_eq!(decoder.decode(&mut src), Ok(None), "cut at {}", cut);
                src.push_slice(&wire[cut..]);
            }
            let decoded = decoder.decode(&mut src);
            prop_assert_eq!(decoded.as_ref(), Ok(&Some(packet.clone())), "cut at {} of {:02x?}", cut, wire);
            prop_assert!(src.is_empty());
            prop_assert_eq!(decoder.decode(&mut src), Ok(None));
        }
    }

    /// Many packets in one stream, cut at random points, decode in order; the IoArena
    /// (which shares large payloads) writes the same bytes as a Vec.
    #[test]
    fn streams_decode_whatever_the_cuts(
        (version, sender, packets) in stream(8),
        cuts in vec(any::<prop::sample::Index>(), 0..12),
    ) {
        let mut wire = Vec::new();
        let mut arena = IoArena::with_share_threshold(64);
        let mut encoder = Encoder::with_version(sender, version);
        for p in &packets {
            wire.extend(encode(version, sender, p));
            encoder.encode(p, &mut arena).expect("encodes");
        }
        prop_assert_eq!(arena.to_vec(), wire.clone());
        let mut points: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        points.push(wire.len());
        points.sort_unstable();
        let mut decoder = receiver(sender, version);
        let mut src = SegmentedBuffer::new();
        let mut got = Vec::new();
        let mut at = 0;
        for p in points {
            src.push_slice(&wire[at..p]);
            at = p;
            while let Some(packet) = decoder.decode(&mut src).expect("decodes") {
                got.push(packet);
            }
        }
        prop_assert_eq!(got, packets);
    }

    /// The Remaining Length is the shortest Variable Byte Integer.
    #[test]
    fn remaining_length_is_shortest(len in prop_oneof![0usize..300, 16_300usize..16_500, 2_097_100usize..2_097_200]) {
        let publish = Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: Bytes::from_static(b"t"),
            packet_id: 0,
            properties: Properties::default(),
            payload: Bytes::from(vec![0u8; len]),
        });
        let wire = encode(ProtocolVersion::V3_1_1, Side::Client, &publish);
        let body = 3 + len;
        let vbi = monocoque_proto::mqtt::vbi_len(body as u32);
        prop_assert_eq!(wire.len(), 1 + vbi + body);
        prop_assert!(wire[vbi] & 0x80 == 0 && (vbi == 1 || wire[vbi] != 0));
        let mut decoder = receiver(Side::Client, ProtocolVersion::V3_1_1);
        let mut src = SegmentedBuffer::from(Bytes::from(wire));
        prop_assert_eq!(decoder.decode(&mut src), Ok(Some(publish)));
    }
}

/// A server-side decoder learns the version from the CONNECT, whichever it is.
#[test]
fn the_server_adopts_the_version_of_connect() {
    for version in [ProtocolVersion::V3_1, ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
        let connect = Packet::Connect(Box::new(Connect {
            protocol: version,
            clean_start: true,
            keep_alive: 10,
            properties: Properties::default(),
            client_id: Bytes::from_static(b"c"),
            will: None,
            username: None,
            password: None,
        }));
        let mut wire = encode(version, Side::Client, &connect);
        wire.extend(encode(version, Side::Client, &Packet::PingReq));
        let mut decoder = Decoder::server(1024);
        let mut src = SegmentedBuffer::from(Bytes::from(wire));
        assert_eq!(decoder.decode(&mut src), Ok(Some(connect)));
        assert_eq!(decoder.version(), Some(version));
        assert_eq!(decoder.decode(&mut src), Ok(Some(Packet::PingReq)));
    }
}
