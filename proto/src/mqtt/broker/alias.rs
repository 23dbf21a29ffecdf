//! Topic aliases (5.0, 3.3.2.3.4) of one connection, in both directions.
//!
//! - Client to broker ([`Inbound`]): the broker announces its Topic Alias Maximum in
//!   `CONNACK`; a `PUBLISH` with a topic and an alias sets (or replaces) the mapping, one
//!   with an empty topic uses it. Alias 0 or above the maximum is `0x94` Topic Alias
//!   invalid, an unknown alias with an empty topic `0x82` Protocol Error.
//! - Broker to client ([`Outbound`]): up to the lower of the client's Topic Alias
//!   Maximum (from `CONNECT`) and the broker's own cap. Policy: aliases are handed out
//!   first come, first served (1, 2, ...) until all are used; then the least recently
//!   used alias is given to the new topic (sent with its topic name, which replaces the
//!   client's mapping). A topic that has an alias is sent with an empty topic name.
//!
//! Mappings live only as long as the connection [MQTT-3.3.2-7]: a new connection
//! starts with none.

use std::collections::HashMap;

use bytes::Bytes;

use crate::mqtt::{Publish, ReasonCode};

/// The client's aliases, as the broker resolves them.
#[derive(Debug, Default)]
pub struct Inbound {
    /// Topic of alias `i + 1`.
    topics: Vec<Option<Bytes>>,
}

impl Inbound {
    /// Resolves `publish`'s Topic Alias against `maximum` (the value announced in
    /// `CONNACK`): afterwards the topic is the full name and the alias is gone. The
    /// error is the `DISCONNECT` reason code.
    pub fn resolve(&mut self, maximum: u16, publish: &mut Publish) -> Result<(), ReasonCode> {
        let Some(alias) = publish.properties.topic_alias.take() else {
            return Ok(());
        };
        // [MQTT-3.3.2-8], [MQTT-3.2.2-17]: 0 or above our maximum is invalid.
        if alias == 0 || alias > maximum {
            return Err(ReasonCode::TopicAliasInvalid);
        }
        let slot = usize::from(alias - 1);
        if publish.topic.is_empty() {
            // 3.3.2.3.4: no mapping and no topic name is a Protocol Error.
            let topic = self.topics.get(slot).and_then(Option::as_ref);
            publish.topic = topic.ok_or(ReasonCode::ProtocolError)?.clone();
            return Ok(());
        }
        if self.topics.len() <= slot {
            self.topics.resize(slot + 1, None);
        }
        // Our own copy, not a view holding the whole receive buffer.
        self.topics[slot] = Some(Bytes::copy_from_slice(&publish.topic));
        Ok(())
    }
}

/// The broker's aliases towards the client.
#[derive(Debug)]
pub struct Outbound {
    maximum: u16,
    by_topic: HashMap<Bytes, u16>,
    /// Topic and last use of alias `i + 1`.
    slots: Vec<(Bytes, u64)>,
    clock: u64,
}

/// What [`Outbound::choose`] picked for a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Choice {
    /// The alias to send.
    pub alias: u16,
    /// Whether the client knows it already (send an empty topic name).
    pub known: bool,
}

impl Outbound {
    /// Aliases `1..=maximum` (0: none are used).
    pub fn new(maximum: u16) -> Outbound {
        Outbound {
            maximum,
            by_topic: HashMap::new(),
            slots: Vec::new(),
            clock: 0,
        }
    }

    /// The alias to send `topic` with, without changing anything (the mapping counts
    /// only once the packet is written: [`commit`](Self::commit)). `None` when aliases
    /// are off.
    pub fn choose(&self, topic: &[u8]) -> Option<Choice> {
        if self.maximum == 0 {
            return None;
        }
        if let Some(&alias) = self.by_topic.get(topic) {
            return Some(Choice { alias, known: true });
        }
        let alias = if self.slots.len() < usize::from(self.maximum) {
            // First come, first served while aliases are free.
            u16::try_from(self.slots.len() + 1).ok()?
        } else {
            // Then the least recently used one is reassigned.
            let (i, _) = self.slots.iter().enumerate().min_by_key(|(_, (_, used))| *used)?;
            u16::try_from(i + 1).ok()?
        };
        Some(Choice { alias, known: false })
    }

    /// Records that `topic` went out with `choice`.
    pub fn commit(&mut self, topic: &Bytes, choice: Choice) {
        self.clock += 1;
        let slot = usize::from(choice.alias - 1);
        if choice.known {
            if let Some(s) = self.slots.get_mut(slot) {
                s.1 = self.clock;
            }
            return;
        }
        let topic = Bytes::copy_from_slice(topic);
        if slot < self.slots.len() {
            let old = std::mem::replace(&mut self.slots[slot], (topic.clone(), self.clock));
            self.by_topic.remove(&old.0);
        } else {
            self.slots.push((topic.clone(), self.clock));
        }
        self.by_topic.insert(topic, choice.alias);
    }
}

/// Both directions, allocated only for a connection that uses aliases.
#[derive(Debug)]
pub struct Aliases {
    /// Client to broker.
    pub inbound: Inbound,
    /// Broker to client.
    pub outbound: Outbound,
}

impl Aliases {
    /// No mapping yet; the broker sends at most `outbound_maximum` aliases.
    pub fn new(outbound_maximum: u16) -> Aliases {
        Aliases {
            inbound: Inbound::default(),
            outbound: Outbound::new(outbound_maximum),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{Properties, QoS};

    fn publish(topic: &'static str, alias: Option<u16>) -> Publish {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: Bytes::from_static(topic.as_bytes()),
            packet_id: 0,
            properties: Properties {
                topic_alias: alias,
                ..Properties::default()
            },
            payload: Bytes::new(),
        }
    }

    #[test]
    fn inbound_sets_uses_replaces_and_refuses() {
        let mut a = Inbound::default();
        let mut p = publish("a/b", Some(2));
        a.resolve(4, &mut p).unwrap();
        assert_eq!((&p.topic[..], p.properties.topic_alias), (&b"a/b"[..], None));
        let mut p = publish("", Some(2));
        a.resolve(4, &mut p).unwrap();
        assert_eq!(&p.topic[..], b"a/b");
        let mut p = publish("c", Some(2));
        a.resolve(4, &mut p).unwrap();
        let mut p = publish("", Some(2));
        a.resolve(4, &mut p).unwrap();
        assert_eq!(&p.topic[..], b"c", "replaced");
        assert_eq!(a.resolve(4, &mut publish("", Some(1))), Err(ReasonCode::ProtocolError));
        assert_eq!(
            a.resolve(4, &mut publish("x", Some(5))),
            Err(ReasonCode::TopicAliasInvalid)
        );
        assert_eq!(
            a.resolve(0, &mut publish("x", Some(1))),
            Err(ReasonCode::TopicAliasInvalid)
        );
    }

    #[test]
    fn outbound_first_come_then_least_recently_used() {
        let mut o = Outbound::new(2);
        let (a, b, c) = (
            Bytes::from_static(b"a"),
            Bytes::from_static(b"b"),
            Bytes::from_static(b"c"),
        );
        let send = |o: &mut Outbound, t: &Bytes| {
            let ch = o.choose(t).unwrap();
            o.commit(t, ch);
            ch
        };
        assert_eq!(send(&mut o, &a), Choice { alias: 1, known: false });
        assert_eq!(send(&mut o, &b), Choice { alias: 2, known: false });
        assert_eq!(send(&mut o, &a), Choice { alias: 1, known: true });
        // b is the least recently used: c takes alias 2.
        assert_eq!(send(&mut o, &c), Choice { alias: 2, known: false });
        assert_eq!(send(&mut o, &b), Choice { alias: 1, known: false });
        assert_eq!(send(&mut o, &c), Choice { alias: 2, known: true });
        assert_eq!(Outbound::new(0).choose(b"a"), None);
    }
}
