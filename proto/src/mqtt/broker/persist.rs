//! What a broker with a store persists, sans-IO: the [`StoreOp`]s the broker state
//! records as its persistent sessions and retained messages change, the records a
//! store keeps for them (each a format byte and an encoding the codec already has),
//! and the [`StoredSession`]s it hands back at start ([`BrokerState::restore`]).
//!
//! The body applies each turn's operations in one transaction and commits it before
//! the acknowledgements of that turn (`PUBACK`, `PUBREC`, `PUBCOMP`) leave
//! ([`Connection::release_held`]): a message acknowledged to its publisher is in the
//! store. Only persistent sessions are written (a clean session costs nothing), and
//! QoS 0 messages never are.
//!
//! [`BrokerState::restore`]: super::BrokerState::restore
//! [`Connection::release_held`]: super::Connection::release_held

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::outbox::Flight;
use crate::chassis::SegmentedBuffer;
use crate::mqtt::{DecodeError, Decoder, Encoder, Packet, ProtocolVersion, Publish, QoS, Side, SubscriptionOptions};

/// The format byte every record starts with; a record of another format is refused
/// ([`RecordError::Format`]) rather than misread.
pub const FORMAT: u8 = 1;

/// One change for the store, in the order the broker made them. Apply a turn's
/// operations in one transaction, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreOp {
    /// A persistent session opened, resumed, or changed its expiry: (re)write its record.
    Session {
        /// The client identifier.
        client: Bytes,
        /// What is kept of the session itself.
        record: SessionRecord,
    },
    /// A stored session ended (clean start, expiry, a `DISCONNECT` with expiry 0): forget
    /// it with its subscriptions, messages and received identifiers.
    SessionDropped {
        /// The client identifier.
        client: Bytes,
    },
    /// A subscription of a stored session, new or replaced.
    Subscribed {
        /// The client identifier.
        client: Bytes,
        /// The topic filter, `$share/...` included.
        filter: Bytes,
        /// Its options and Subscription Identifier.
        record: SubscriptionRecord,
    },
    /// A stored session's subscription removed.
    Unsubscribed {
        /// The client identifier.
        client: Bytes,
        /// The topic filter.
        filter: Bytes,
    },
    /// A QoS 1 or 2 message queued for a stored session (sent or not yet).
    Queued {
        /// The client identifier.
        client: Bytes,
        /// Its sequence number, unique in the store and increasing.
        seq: u64,
        /// The message as it goes to this client (QoS, flags, identifiers).
        publish: Publish,
        /// When its Message Expiry Interval runs out, in wall time (so that a restart
        /// does not count it again from zero).
        expires_at: Option<SystemTime>,
    },
    /// A queued message's flow moved on: sent with a packet identifier, or released
    /// (`PUBREC` came, `PUBREL` sent). A restart resumes it there, with that identifier
    /// [MQTT-4.4.0-1].
    InFlight {
        /// The client identifier.
        client: Bytes,
        /// The [`Queued`](Self::Queued) sequence number.
        seq: u64,
        /// Its identifier and state.
        flight: Flight,
    },
    /// A queued message's flow ended (acknowledged, refused, expired): forget it.
    Delivered {
        /// The client identifier.
        client: Bytes,
        /// The [`Queued`](Self::Queued) sequence number.
        seq: u64,
    },
    /// A QoS 2 packet identifier received from a stored session's client, not yet
    /// released.
    Received {
        /// The client identifier.
        client: Bytes,
        /// The packet identifier.
        packet_id: u16,
    },
    /// The client's `PUBREL` released a received QoS 2 identifier.
    Released {
        /// The client identifier.
        client: Bytes,
        /// The packet identifier.
        packet_id: u16,
    },
    /// A retained message set or replaced.
    Retained {
        /// The message as the broker keeps it (RETAIN 1, no identifier).
        publish: Publish,
    },
    /// A retained message deleted (an empty retained payload).
    RetainedDeleted {
        /// Its topic.
        topic: Bytes,
    },
}

/// The format byte of a [`SessionRecord`] that carries a move stamp
/// ([`SessionRecord::stamp`]). Records of [`FORMAT`] (1), written before stamps
/// existed, are still read, with stamp 0.
pub const SESSION_FORMAT: u8 = 2;

/// What a store keeps of a session itself: `[SESSION_FORMAT, version level, expiry
/// (u32 BE), stamp (u64 BE)]`, then, for a session left without a connection, the wall
/// time it ends (milliseconds since the Unix epoch, u64 BE). The previous format,
/// `[FORMAT, version level, expiry (u32 BE)]` and the optional end, reads as stamp 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionRecord {
    /// The protocol version of its latest `CONNECT`.
    pub version: ProtocolVersion,
    /// Its Session Expiry Interval in seconds (counted from the restart for a session
    /// that was connected when the broker stopped).
    pub expiry_interval: u32,
    /// When the session ends, for one that had no connection (wall time: the broker
    /// restarted in between still ends it then).
    pub expires_at: Option<SystemTime>,
    /// When the record was written, on the cluster's Lamport clock (which restarts
    /// from the largest stamp a store holds): a session that moved threads is written
    /// by its new thread with a larger stamp than its old thread's copy, so a crash
    /// that left both copies keeps the newer ([`stale_copies`]). 0: a record of the
    /// previous format.
    pub stamp: u64,
}

impl SessionRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![SESSION_FORMAT, self.version.level()];
        out.extend_from_slice(&self.expiry_interval.to_be_bytes());
        out.extend_from_slice(&self.stamp.to_be_bytes());
        if let Some(at) = self.expires_at {
            out.extend_from_slice(&wall_millis(at).to_be_bytes());
        }
        out
    }

    /// Reads a record written by [`encode`](Self::encode), or by the previous format
    /// (no stamp: 0).
    pub fn decode(bytes: &[u8]) -> Result<SessionRecord, RecordError> {
        let (format, body) = match bytes.split_first() {
            Some((&f @ (FORMAT | SESSION_FORMAT), body)) => (f, body),
            Some((&other, _)) => return Err(RecordError::Format(other)),
            None => return Err(RecordError::Length(0)),
        };
        // The fixed part (level, expiry, and the stamp in the current format), then
        // the optional end.
        let fixed_len = if format == FORMAT { 5 } else { 13 };
        let (fixed, expires_at) = match body.len() {
            n if n == fixed_len => (body, None),
            n if n == fixed_len + 8 => (&body[..fixed_len], Some(wall_time(&body[fixed_len..])?)),
            _ => return Err(RecordError::Length(bytes.len())),
        };
        let (head, stamp) = fixed.split_at(5);
        let [level, a, b, c, d] = head else {
            return Err(RecordError::Length(bytes.len()));
        };
        // The previous format has no stamp: its records are older than any stamped one.
        let stamp = match <[u8; 8]>::try_from(stamp) {
            Ok(raw) => u64::from_be_bytes(raw),
            Err(_) if format == FORMAT => 0,
            Err(_) => return Err(RecordError::Length(bytes.len())),
        };
        let version = match level {
            3 => ProtocolVersion::V3_1,
            4 => ProtocolVersion::V3_1_1,
            5 => ProtocolVersion::V5,
            other => return Err(RecordError::Version(*other)),
        };
        Ok(SessionRecord {
            version,
            expiry_interval: u32::from_be_bytes([*a, *b, *c, *d]),
            expires_at,
            stamp,
        })
    }
}

/// One store's copy of a stored session, as the start of a broker on several threads
/// sees it ([`stale_copies`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCopy {
    /// Which store holds it (the index of its file: `thread-N.redb`).
    pub store: usize,
    /// The client identifier.
    pub client: Bytes,
    /// Its record's [`stamp`](SessionRecord::stamp).
    pub stamp: u64,
}

/// The copies to delete at start so that each client's session is kept once: where a
/// client has a session in several stores (a crash between the new thread's commit
/// of a moved session and the old thread's forgetting it), the copy with the largest
/// stamp survives, written by the thread the session moved to; every other copy is
/// returned. Equal stamps (records of the previous format, stamp 0, which say nothing
/// of their order) keep the copy of the lowest store index, so that the choice is
/// the same at every start. Sorted by store, then client.
pub fn stale_copies(copies: impl IntoIterator<Item = SessionCopy>) -> Vec<SessionCopy> {
    let mut copies: Vec<SessionCopy> = copies.into_iter().collect();
    // By client; within a client the survivor first (largest stamp, lowest store).
    copies.sort_by(|x, y| {
        x.client
            .cmp(&y.client)
            .then(y.stamp.cmp(&x.stamp))
            .then(x.store.cmp(&y.store))
    });
    let mut stale = Vec::new();
    let mut last: Option<Bytes> = None;
    for copy in copies {
        if last.as_ref() == Some(&copy.client) {
            stale.push(copy);
        } else {
            last = Some(copy.client.clone());
        }
    }
    stale.sort_by(|x, y| x.store.cmp(&y.store).then_with(|| x.client.cmp(&y.client)));
    stale
}

/// Milliseconds since the Unix epoch (0 for an earlier time), as records keep wall time.
pub fn wall_millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The wall time `millis` after the Unix epoch (the inverse of [`wall_millis`]).
pub fn from_wall_millis(millis: u64) -> SystemTime {
    UNIX_EPOCH
        .checked_add(Duration::from_millis(millis))
        .unwrap_or(UNIX_EPOCH)
}

fn wall_time(bytes: &[u8]) -> Result<SystemTime, RecordError> {
    let raw: [u8; 8] = bytes.try_into().map_err(|_| RecordError::Length(bytes.len()))?;
    Ok(from_wall_millis(u64::from_be_bytes(raw)))
}

impl Flight {
    /// The record of a message in flight: `[FORMAT, packet id (u16 BE), released (0|1)]`.
    pub fn encode(&self) -> [u8; 4] {
        let [hi, lo] = self.packet_id.to_be_bytes();
        [FORMAT, hi, lo, u8::from(self.released)]
    }

    /// Reads a record written by [`encode`](Self::encode).
    pub fn decode(bytes: &[u8]) -> Result<Flight, RecordError> {
        let body = body(bytes)?;
        let [hi, lo, released @ (0 | 1)] = body else {
            return Err(RecordError::Length(bytes.len()));
        };
        let packet_id = u16::from_be_bytes([*hi, *lo]);
        if packet_id == 0 {
            return Err(RecordError::PacketId);
        }
        Ok(Flight {
            packet_id,
            released: *released == 1,
        })
    }
}

/// What a store keeps of a subscription besides its filter: `[FORMAT, options byte as
/// in SUBSCRIBE, Subscription Identifier (u32 BE, 0: none)]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscriptionRecord {
    /// Its options.
    pub options: SubscriptionOptions,
    /// Its Subscription Identifier, 0 for none.
    pub id: u32,
}

impl SubscriptionRecord {
    /// The record's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![FORMAT, self.options.to_byte()];
        out.extend_from_slice(&self.id.to_be_bytes());
        out
    }

    /// Reads a record written by [`encode`](Self::encode).
    pub fn decode(bytes: &[u8]) -> Result<SubscriptionRecord, RecordError> {
        let body = body(bytes)?;
        let [options, a, b, c, d] = body else {
            return Err(RecordError::Length(bytes.len()));
        };
        let options = SubscriptionOptions::from_byte(*options, ProtocolVersion::V5).map_err(RecordError::Options)?;
        Ok(SubscriptionRecord {
            options,
            id: u32::from_be_bytes([*a, *b, *c, *d]),
        })
    }
}

/// A message's record: `FORMAT`, then the `PUBLISH` packet as the MQTT 5.0 codec
/// writes it to a client (properties and all).
pub fn encode_publish(publish: &Publish) -> Result<Vec<u8>, RecordError> {
    let mut publish = publish.clone();
    // QoS 1 and 2 need an identifier on the wire; the stored one means nothing.
    publish.packet_id = if publish.qos == QoS::AtMostOnce { 0 } else { 1 };
    publish.properties.topic_alias = None;
    let mut out = vec![FORMAT];
    Encoder::with_version(Side::Server, ProtocolVersion::V5)
        .encode(&Packet::Publish(publish), &mut out)
        .map_err(|_| RecordError::Unencodable)?;
    Ok(out)
}

/// Reads a message record written by [`encode_publish`] (packet identifier 0).
pub fn decode_publish(bytes: &[u8]) -> Result<Publish, RecordError> {
    let body = body(bytes)?;
    let mut input = SegmentedBuffer::new();
    input.push(Bytes::copy_from_slice(body));
    let mut decoder = Decoder::client(ProtocolVersion::V5, u32::MAX);
    match decoder.decode(&mut input) {
        Ok(Some(Packet::Publish(mut publish))) if input.is_empty() => {
            publish.packet_id = 0;
            Ok(publish)
        }
        Ok(Some(_)) => Err(RecordError::NotPublish),
        Ok(None) => Err(RecordError::Length(bytes.len())),
        Err(e) => Err(RecordError::Publish(e)),
    }
}

/// The bytes after a record's format byte, once that byte is checked.
fn body(bytes: &[u8]) -> Result<&[u8], RecordError> {
    match bytes.split_first() {
        Some((&FORMAT, body)) => Ok(body),
        Some((&other, _)) => Err(RecordError::Format(other)),
        None => Err(RecordError::Length(0)),
    }
}

/// Why a stored record could not be read (or a message not written).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    /// The record starts with a format byte this broker does not know.
    #[error("unknown record format {0} (this broker writes format {FORMAT})")]
    Format(u8),
    /// The record is not as long as its format says.
    #[error("a record of {0} bytes has the wrong length")]
    Length(usize),
    /// A session record names no protocol level this broker speaks.
    #[error("unknown protocol level {0}")]
    Version(u8),
    /// A subscription's options byte is invalid.
    #[error("invalid subscription options: {0}")]
    Options(DecodeError),
    /// A message record is not a valid `PUBLISH`.
    #[error("invalid stored PUBLISH: {0}")]
    Publish(DecodeError),
    /// A message record holds another packet.
    #[error("a message record holds another packet than PUBLISH")]
    NotPublish,
    /// A message in flight with packet identifier 0.
    #[error("a message in flight with packet identifier 0")]
    PacketId,
    /// The message cannot be encoded (larger than MQTT allows).
    #[error("the message cannot be encoded")]
    Unencodable,
}

/// A persistent session as the store returns it at start, for
/// [`BrokerState::restore`](super::BrokerState::restore).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    /// The client identifier.
    pub client: Bytes,
    /// The session's own record.
    pub record: SessionRecord,
    /// Its subscriptions: filter and record.
    pub subscriptions: Vec<(Bytes, SubscriptionRecord)>,
    /// Its QoS 1 and 2 messages not yet completed, by increasing sequence number.
    pub messages: Vec<StoredMessage>,
    /// The QoS 2 packet identifiers its client sent and has not released.
    pub received: Vec<u16>,
}

/// A QoS 1 or 2 message of a stored session, as the store returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMessage {
    /// Its sequence number ([`StoreOp::Queued`]).
    pub seq: u64,
    /// The message (packet identifier 0).
    pub publish: Publish,
    /// Where its flow stood, if it was sent ([`StoreOp::InFlight`]).
    pub flight: Option<Flight>,
    /// When its Message Expiry Interval runs out, in wall time.
    pub expires_at: Option<SystemTime>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{Properties, RetainHandling};

    fn publish(qos: QoS) -> Publish {
        Publish {
            dup: false,
            qos,
            retain: true,
            topic: Bytes::from_static(b"a/b"),
            packet_id: 9,
            properties: Properties {
                message_expiry_interval: Some(60),
                subscription_identifiers: vec![3, 7],
                topic_alias: Some(2),
                ..Properties::default()
            },
            payload: Bytes::from_static(b"payload"),
        }
    }

    #[test]
    fn a_message_record_round_trips_without_identifier_or_alias() {
        for qos in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce] {
            let record = encode_publish(&publish(qos)).expect("encodes");
            assert_eq!(record[0], FORMAT);
            let mut expected = publish(qos);
            expected.packet_id = 0;
            expected.properties.topic_alias = None;
            assert_eq!(decode_publish(&record), Ok(expected));
        }
    }

    #[test]
    fn session_and_subscription_records_round_trip() {
        let session = SessionRecord {
            version: ProtocolVersion::V3_1_1,
            expiry_interval: u32::MAX,
            expires_at: None,
            stamp: 7,
        };
        assert_eq!(SessionRecord::decode(&session.encode()), Ok(session));
        // A session without a connection keeps its end in wall time (to the millisecond).
        let offline = SessionRecord {
            version: ProtocolVersion::V5,
            expiry_interval: 60,
            expires_at: Some(from_wall_millis(1_800_000_000_123)),
            stamp: u64::MAX,
        };
        assert_eq!(offline.encode().len(), 22);
        assert_eq!(SessionRecord::decode(&offline.encode()), Ok(offline));
        let sub = SubscriptionRecord {
            options: SubscriptionOptions {
                qos: QoS::ExactlyOnce,
                no_local: true,
                retain_as_published: true,
                retain_handling: RetainHandling::DoNotSend,
            },
            id: 70_000,
        };
        assert_eq!(SubscriptionRecord::decode(&sub.encode()), Ok(sub));
    }

    #[test]
    fn corrupt_records_are_typed_errors() {
        assert_eq!(SessionRecord::decode(&[]), Err(RecordError::Length(0)));
        assert_eq!(SessionRecord::decode(&[3, 4, 0, 0, 0, 1]), Err(RecordError::Format(3)));
        assert_eq!(SessionRecord::decode(&[FORMAT, 4, 0]), Err(RecordError::Length(3)));
        // The current format without its stamp is short, not a record of the previous.
        assert_eq!(
            SessionRecord::decode(&[SESSION_FORMAT, 4, 0, 0, 0, 1]),
            Err(RecordError::Length(6))
        );
        assert_eq!(
            SessionRecord::decode(&[SESSION_FORMAT, 4, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
            Err(RecordError::Length(15))
        );
        assert_eq!(
            SessionRecord::decode(&[FORMAT, 9, 0, 0, 0, 1]),
            Err(RecordError::Version(9))
        );
        assert!(matches!(
            SubscriptionRecord::decode(&[FORMAT, 0xFF, 0, 0, 0, 0]),
            Err(RecordError::Options(_))
        ));
        let mut record = encode_publish(&publish(QoS::AtLeastOnce)).expect("encodes");
        assert_eq!(
            decode_publish(&record[..record.len() - 1]),
            Err(RecordError::Length(record.len() - 1))
        );
        record[1] = 0xC0; // PINGREQ's type nibble
        assert!(decode_publish(&record).is_err());
        assert_eq!(decode_publish(&[FORMAT, 0x40, 2, 0, 1]), Err(RecordError::NotPublish));
        assert_eq!(
            SessionRecord::decode(&[FORMAT, 4, 0, 0, 0, 1, 0]),
            Err(RecordError::Length(7))
        );
        assert_eq!(Flight::decode(&[FORMAT, 0, 0, 0]), Err(RecordError::PacketId));
        assert_eq!(Flight::decode(&[FORMAT, 0, 1, 2]), Err(RecordError::Length(4)));
        assert_eq!(Flight::decode(&[3, 0, 1, 0]), Err(RecordError::Format(3)));
    }

    #[test]
    fn a_session_record_of_the_previous_format_reads_with_stamp_0() {
        // As the broker before move stamps wrote them: `[1, level, expiry]` and the end.
        assert_eq!(
            SessionRecord::decode(&[FORMAT, 4, 0, 0, 0, 60]),
            Ok(SessionRecord {
                version: ProtocolVersion::V3_1_1,
                expiry_interval: 60,
                expires_at: None,
                stamp: 0,
            })
        );
        let mut offline = vec![FORMAT, 5, 0, 0, 1, 0];
        offline.extend_from_slice(&1_800_000_000_123u64.to_be_bytes());
        assert_eq!(
            SessionRecord::decode(&offline),
            Ok(SessionRecord {
                version: ProtocolVersion::V5,
                expiry_interval: 256,
                expires_at: Some(from_wall_millis(1_800_000_000_123)),
                stamp: 0,
            })
        );
        // Written again, it takes the current format.
        let again = SessionRecord::decode(&offline).expect("reads");
        assert_eq!(again.encode()[0], SESSION_FORMAT);
    }

    fn copy(store: usize, client: &'static str, stamp: u64) -> SessionCopy {
        SessionCopy {
            store,
            client: Bytes::from_static(client.as_bytes()),
            stamp,
        }
    }

    #[test]
    fn the_copy_with_the_largest_stamp_survives() {
        // "a" moved from store 0 (stamp 4) to store 1 (stamp 9) and the crash left
        // both; "b" is in one store only; "c" moved 2 -> 0 -> 1 and is in all three.
        let stale = stale_copies([
            copy(0, "a", 4),
            copy(1, "a", 9),
            copy(1, "b", 3),
            copy(0, "c", 11),
            copy(2, "c", 5),
            copy(1, "c", 12),
        ]);
        assert_eq!(stale, [copy(0, "a", 4), copy(0, "c", 11), copy(2, "c", 5)]);
        // The order the stores are read in changes nothing.
        let stale_reversed = stale_copies([copy(1, "a", 9), copy(0, "a", 4)]);
        assert_eq!(stale_reversed, [copy(0, "a", 4)]);
        assert_eq!(stale_copies([copy(0, "a", 4), copy(1, "a", 9)]), stale_reversed);
        // A newer copy in a lower store wins too.
        assert_eq!(stale_copies([copy(0, "a", 9), copy(1, "a", 4)]), [copy(1, "a", 4)]);
        // Nothing duplicated: nothing stale.
        assert_eq!(stale_copies([copy(0, "a", 1), copy(1, "b", 1)]), []);
        assert_eq!(stale_copies([]), []);
    }

    #[test]
    fn equal_stamps_keep_the_lowest_store_every_time() {
        // Records of the previous format (stamp 0) say nothing of their order: the
        // choice is at least the same at every start, and one copy is kept.
        for order in [[2, 0, 1], [1, 2, 0], [0, 1, 2]] {
            let stale = stale_copies(order.map(|s| copy(s, "old", 0)));
            assert_eq!(stale, [copy(1, "old", 0), copy(2, "old", 0)]);
        }
        // A stamped copy is newer than one of the previous format, wherever it is.
        assert_eq!(stale_copies([copy(0, "m", 0), copy(3, "m", 1)]), [copy(0, "m", 0)]);
    }

    #[test]
    fn a_flight_record_keeps_identifier_and_state() {
        for flight in [
            Flight {
                packet_id: 1,
                released: false,
            },
            Flight {
                packet_id: u16::MAX,
                released: true,
            },
        ] {
            assert_eq!(Flight::decode(&flight.encode()), Ok(flight));
        }
    }
}
