//! The retained messages: the last retained `PUBLISH` of each topic.

use std::collections::HashMap;
use std::time::Instant;

use bytes::Bytes;

use super::expiry::Message;
use crate::mqtt::{topic_matches, Publish};

/// The last retained message of each topic, stored as its own copy (not a view that
/// would keep a whole receive buffer alive), with the instant its Message Expiry
/// Interval runs out.
#[derive(Debug, Default)]
pub struct Retained {
    by_topic: HashMap<Bytes, Message>,
}

impl Retained {
    /// Applies a retained `PUBLISH` received at `now`: an empty payload deletes the
    /// topic's message [MQTT-3.3.1-6], any other sets or replaces it [MQTT-3.3.1-5].
    pub fn apply(&mut self, publish: &Publish, now: Instant) {
        if publish.payload.is_empty() {
            self.by_topic.remove(&publish.topic[..]);
            return;
        }
        let mut kept = publish.clone();
        kept.topic = Bytes::copy_from_slice(&publish.topic);
        kept.payload = Bytes::copy_from_slice(&publish.payload);
        kept.retain = true;
        kept.dup = false;
        kept.packet_id = 0;
        kept.properties.topic_alias = None;
        kept.properties.subscription_identifiers.clear();
        self.by_topic.insert(kept.topic.clone(), Message::received(kept, now));
    }

    /// The messages whose topic `filter` matches and that have not expired at `now`
    /// [MQTT-3.3.2-5] (a scan: fine for the numbers of retained topics this broker
    /// holds today). Each is sent with the interval left [MQTT-3.3.2-6].
    pub fn matching<'a>(&'a self, filter: &'a [u8], now: Instant) -> impl Iterator<Item = &'a Message> + 'a {
        self.by_topic
            .values()
            .filter(move |m| !m.is_expired(now) && topic_matches(filter, &m.publish.topic))
    }

    /// Forgets the messages expired at `now`.
    pub fn purge_expired(&mut self, now: Instant) {
        self.by_topic.retain(|_, m| !m.is_expired(now));
    }

    /// Number of retained messages.
    pub fn len(&self) -> usize {
        self.by_topic.len()
    }

    /// Whether no message is retained.
    pub fn is_empty(&self) -> bool {
        self.by_topic.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::mqtt::{Properties, QoS};

    #[test]
    fn a_retained_message_expires_and_carries_the_interval_left() {
        // [MQTT-3.3.2-5], [MQTT-3.3.2-6] for retained messages.
        let t0 = Instant::now();
        let mut r = Retained::default();
        let publish = Publish {
            dup: false,
            qos: QoS::AtLeastOnce,
            retain: true,
            topic: Bytes::from_static(b"r/t"),
            packet_id: 3,
            properties: Properties {
                message_expiry_interval: Some(10),
                ..Properties::default()
            },
            payload: Bytes::from_static(b"kept"),
        };
        r.apply(&publish, t0);
        let at4 = t0 + Duration::from_secs(4);
        let found: Vec<Publish> = r.matching(b"r/#", at4).filter_map(|m| m.clone().at(at4)).collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].properties.message_expiry_interval, Some(6));
        assert_eq!(found[0].packet_id, 0);
        let at10 = t0 + Duration::from_secs(10);
        assert_eq!(r.matching(b"r/#", at10).count(), 0);
        r.purge_expired(at10);
        assert!(r.is_empty());
    }
}
