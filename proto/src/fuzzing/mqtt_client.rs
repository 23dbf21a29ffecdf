//! The MQTT client connection target: arbitrary server bytes after `CONNECT`, with the
//! client publishing, taking messages, timing out and resuming its session between
//! pieces.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::split::pieces;
use crate::chassis::SegmentedBuffer;
use crate::mqtt::client::{ClientConfig, Connection, ConnectionError, Event, PublishId, SendError};
use crate::mqtt::{
    Ack, Codec, ConnAck, Encoder, Packet, Properties, ProtocolVersion, Publish, QoS, Reason, ReasonCode, Side, SubAck,
    Subscription, SubscriptionOptions, DEFAULT_MAX_PACKET_SIZE,
};

/// Fuzzes the MQTT client [`Connection`] with what a server sends.
///
/// Input layout: byte 0 holds options, byte 1 seeds the segment boundaries and the
/// client's actions between segments, the rest is the server's stream. Options: bit 0
/// 3.1.1 instead of 5.0; bit 1 a persistent session; bit 2 a queue of 2 messages; bit 3
/// a Receive Maximum of 2 and 2 inbound topic aliases. Between two segments the client,
/// as the seed says: the kernel takes its output, publishes (QoS 0, 1 or 2, topic
/// `a` or `b`), subscribes, takes a message, the clock moves on 7 s
/// (`handle_timeout`), or the stream ends and a new connection resumes the session
/// (the rest of the stream goes to it).
///
/// Checks, panicking on the first that fails: nothing panics; every byte the client
/// writes decodes, on a server's codec, into valid packets (`CONNECT` first); a
/// [`Event::Published`] names an issued publish of QoS 1/2, at most once; one
/// [`Event::Poisoned`] per connection, last, with the stored error, which every later
/// call reports; a closed connection sets no timer; nothing is queued past the
/// message bound.
pub fn mqtt_client_session(data: &[u8]) {
    let [options, seed, stream @ ..] = data else { return };
    let config = ClientConfig {
        version: if options & 1 != 0 {
            ProtocolVersion::V3_1_1
        } else {
            ProtocolVersion::V5
        },
        client_id: Bytes::from_static(b"fuzz"),
        clean_start: options & 2 == 0,
        session_expiry: if options & 2 != 0 { 60 } else { 0 },
        keep_alive: 5,
        max_pending_messages: if options & 4 != 0 { 2 } else { 64 },
        receive_maximum: if options & 8 != 0 { 2 } else { u16::MAX },
        topic_alias_maximum: if options & 8 != 0 { 2 } else { 16 },
        connect_timeout: Duration::from_secs(10),
        ..ClientConfig::default()
    };
    let mut now = Instant::now();
    let mut session = Checked::new(Connection::new(config.clone(), now));
    let mut issued = HashSet::new();
    let mut completed = HashSet::new();
    let mut rng = u32::from(*seed) | 0x100;
    for piece in pieces(stream, *seed) {
        session.feed(piece, now);
        session.check(&issued, &mut completed);
        rng = rng.wrapping_mul(1_103_515_245).wrapping_add(12345);
        match (rng >> 16) % 8 {
            0 | 1 => session.transmit(),
            2 => {
                let qos = QoS::from_bits(((rng >> 20) % 3) as u8).unwrap_or_default();
                let topic = if rng & (1 << 24) != 0 { "a" } else { "b" };
                match session.conn.publish(
                    Bytes::from_static(topic.as_bytes()),
                    Bytes::from_static(b"p"),
                    qos,
                    false,
                ) {
                    Ok(Some(id)) => assert!(issued.insert(id), "a publish id issued twice"),
                    Ok(None) => {}
                    Err(SendError::Poisoned(e)) => assert_eq!(Some(&e), session.conn.error()),
                    Err(_) => {}
                }
            }
            3 => {
                let sub = Subscription {
                    filter: Bytes::from_static(b"a/#"),
                    options: SubscriptionOptions::qos(QoS::ExactlyOnce),
                };
                if let Err(SendError::Poisoned(e)) = session.conn.subscribe(vec![sub], Properties::default()) {
                    assert_eq!(Some(&e), session.conn.error());
                }
            }
            4 => {
                let _ = session.conn.next_message();
            }
            5 => {
                now += Duration::from_secs(7);
                session.conn.handle_timeout(now);
            }
            6 => {
                session.conn.handle_eof(now);
                session.check(&issued, &mut completed);
                let state = session.conn.take_reconnect_state();
                session = Checked::new(Connection::resume(config.clone(), state, now));
            }
            _ => {}
        }
        session.check(&issued, &mut completed);
    }
}

/// A connection and a server codec reading everything it writes.
struct Checked {
    conn: Connection,
    server: Codec,
    input: SegmentedBuffer,
    poisoned: bool,
}

impl Checked {
    fn new(conn: Connection) -> Self {
        let mut checked = Checked {
            conn,
            server: Codec::server(DEFAULT_MAX_PACKET_SIZE),
            input: SegmentedBuffer::new(),
            poisoned: false,
        };
        checked.transmit();
        checked
    }

    fn feed(&mut self, piece: &[u8], now: Instant) {
        match self.conn.handle_input(Bytes::copy_from_slice(piece), now) {
            Ok(()) => {}
            Err(e) => assert_eq!(Some(&e), self.conn.error(), "the stored error is reported"),
        }
    }

    /// The kernel takes everything: it must decode as valid packets.
    fn transmit(&mut self) {
        if let Some(out) = self.conn.poll_transmit() {
            self.input.push(Bytes::from(out.to_vec()));
            out.clear();
        }
        loop {
            match self.server.decode(&mut self.input) {
                Ok(Some(_)) => {}
                Ok(None) => return,
                Err(e) => panic!("the client wrote an invalid packet: {e}"),
            }
        }
    }

    fn check(&mut self, issued: &HashSet<PublishId>, completed: &mut HashSet<PublishId>) {
        while let Some(event) = self.conn.poll_event() {
            assert!(!self.poisoned, "an event after Poisoned: {event:?}");
            match event {
                Event::Published { id, .. } => {
                    assert!(issued.contains(&id), "completed a publish never issued");
                    assert!(completed.insert(id), "a publish completed twice");
                }
                Event::Poisoned(e) => {
                    assert_eq!(Some(&e), self.conn.error());
                    self.poisoned = true;
                }
                _ => {}
            }
        }
        if self.conn.is_closed() {
            assert!(self.conn.poll_timeout().is_none(), "a closed connection sets no timer");
            let err: Option<ConnectionError> = self.conn.error().cloned();
            assert!(err.is_some());
        }
        assert!(self.conn.pending_messages() <= self.conn.config().max_pending_messages);
    }
}

/// Seeds for [`mqtt_client_session`]: 5.0 server streams through CONNACK, SUBACK,
/// publishes of every QoS (with topic aliases), the acknowledgements of the client's
/// first publishes, PINGRESP and DISCONNECT, and a few broken ones.
pub fn mqtt_client_session_seeds() -> Vec<Vec<u8>> {
    let b = Bytes::from_static;
    let mut encoder = Encoder::with_version(Side::Server, ProtocolVersion::V5);
    let encode = |encoder: &mut Encoder, packets: &[Packet]| {
        let mut out = Vec::new();
        for p in packets {
            encoder.encode(p, &mut out).expect("a seed packet encodes");
        }
        out
    };
    let connack = |session_present, properties| {
        Packet::ConnAck(ConnAck {
            session_present,
            code: ReasonCode::Success,
            properties,
        })
    };
    let publish = |qos, packet_id, topic: &'static [u8], alias| {
        Packet::Publish(Publish {
            dup: false,
            qos,
            retain: false,
            topic: b(topic),
            packet_id,
            properties: Properties {
                topic_alias: alias,
                ..Properties::default()
            },
            payload: b(b"payload"),
        })
    };
    let limits = Properties {
        receive_maximum: Some(2),
        topic_alias_maximum: Some(2),
        server_keep_alive: Some(3),
        maximum_qos: Some(QoS::AtLeastOnce),
        ..Properties::default()
    };
    let mut seeds = vec![
        encode(
            &mut encoder,
            &[
                connack(false, Properties::default()),
                Packet::SubAck(SubAck {
                    packet_id: 1,
                    properties: Properties::default(),
                    codes: vec![ReasonCode::GrantedQoS2],
                }),
                publish(QoS::AtMostOnce, 0, b"a/x", Some(1)),
                publish(QoS::AtLeastOnce, 5, b"", Some(1)),
                publish(QoS::ExactlyOnce, 6, b"a/y", None),
                publish(QoS::ExactlyOnce, 6, b"a/y", None),
                Packet::PubRel(Ack::success(6)),
                Packet::PubAck(Ack::success(1)),
                Packet::PubRec(Ack::success(2)),
                Packet::PubComp(Ack::success(2)),
                Packet::PingResp,
                Packet::Disconnect(Reason::new(ReasonCode::ServerShuttingDown)),
            ],
        ),
        encode(
            &mut encoder,
            &[
                connack(true, limits),
                Packet::PubRec(Ack::success(1)),
                Packet::PubComp(Ack::success(1)),
                publish(QoS::ExactlyOnce, 1, b"a/z", Some(3)),
            ],
        ),
        encode(
            &mut encoder,
            &[Packet::ConnAck(ConnAck {
                session_present: false,
                code: ReasonCode::NotAuthorized,
                properties: Properties::default(),
            })],
        ),
    ];
    // Not CONNACK first; a malformed PUBLISH (QoS 3) after one.
    seeds.push(encode(&mut encoder, &[Packet::PingResp]));
    let mut bad = encode(&mut encoder, &[connack(false, Properties::default())]);
    bad.extend_from_slice(b"\x36\x04\x00\x01a\x00");
    seeds.push(bad);
    seeds
}
