//! The retained messages: the last retained `PUBLISH` of each topic.

use std::collections::HashMap;

use bytes::Bytes;

use crate::mqtt::{topic_matches, Publish};

/// The last retained message of each topic, stored as its own copy (not a view that
/// would keep a whole receive buffer alive).
#[derive(Debug, Default)]
pub struct Retained {
    by_topic: HashMap<Bytes, Publish>,
}

impl Retained {
    /// Applies a retained `PUBLISH`: an empty payload deletes the topic's message
    /// [MQTT-3.3.1-6], any other sets or replaces it [MQTT-3.3.1-5].
    pub fn apply(&mut self, publish: &Publish) {
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
        self.by_topic.insert(kept.topic.clone(), kept);
    }

    /// The messages whose topic `filter` matches (a scan: fine for the numbers of
    /// retained topics this broker holds today).
    pub fn matching<'a>(&'a self, filter: &'a [u8]) -> impl Iterator<Item = &'a Publish> + 'a {
        self.by_topic.values().filter(move |p| topic_matches(filter, &p.topic))
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
