//! What the client sends on its own: publishes (through the server's window),
//! subscriptions, and what a new connection resends.

use bytes::Bytes;

use crate::mqtt::{
    valid_topic_filter, valid_topic_name, Packet, Properties, Publish, QoS, Subscribe, Subscription, Unsubscribe,
};

use super::state::{publish_bytes, Outbound, Request};
use super::{Connection, Event, Phase, PublishId, RequestId, SendError};

impl Connection {
    /// Publishes `payload` on `topic`. QoS 0 returns `None`; QoS 1 and 2 return the id
    /// its [`Event::Published`] will carry. Before `CONNACK`, or while the server's
    /// Receive Maximum is reached, the publish waits (in order).
    ///
    /// # Errors
    /// An invalid topic, a QoS or retain the server refused, a packet over the server's
    /// Maximum Packet Size, [`SendError::Backpressure`] past
    /// [`ClientConfig::max_outgoing_bytes`](super::ClientConfig::max_outgoing_bytes),
    /// or the connection's error.
    pub fn publish(
        &mut self,
        topic: Bytes,
        payload: Bytes,
        qos: QoS,
        retain: bool,
    ) -> Result<Option<PublishId>, SendError> {
        self.publish_with(topic, payload, qos, retain, Properties::default())
    }

    /// [`publish`](Self::publish) with 5.0 properties (message expiry, content type,
    /// response topic, correlation data, user properties; a Topic Alias here is
    /// refused: the connection assigns them).
    pub fn publish_with(
        &mut self,
        topic: Bytes,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: Properties,
    ) -> Result<Option<PublishId>, SendError> {
        self.guard.check().map_err(SendError::Poisoned)?;
        if !valid_topic_name(&topic) || properties.topic_alias.is_some() {
            return Err(SendError::InvalidTopic);
        }
        if self.phase == Phase::Connected {
            if qos > self.limits.maximum_qos {
                return Err(SendError::QosNotSupported {
                    max: self.limits.maximum_qos,
                });
            }
            if retain && !self.limits.retain_available {
                return Err(SendError::RetainNotSupported);
            }
        }
        let queued = self.outgoing_len();
        if queued >= self.config.max_outgoing_bytes {
            return Err(SendError::Backpressure { queued });
        }
        let publish = Publish {
            dup: false,
            qos,
            retain,
            topic,
            packet_id: if qos == QoS::AtMostOnce { 0 } else { 1 },
            properties,
            payload,
        };
        // Checked as it will go out (the alias only makes it smaller).
        self.encoder.encoded_len(&Packet::Publish(publish.clone()))?;
        let id = self.state.publish_id();
        self.state.waiting_bytes += publish_bytes(&publish);
        self.state.waiting.push_back((id, publish));
        self.pump();
        Ok((qos != QoS::AtMostOnce).then_some(id))
    }

    /// Subscribes to `subscriptions` (5.0 `properties`: a Subscription Identifier, user
    /// properties); [`Event::Subscribed`] carries the server's answer. The filters are
    /// remembered, to subscribe again when a session is lost.
    pub fn subscribe(
        &mut self,
        subscriptions: Vec<Subscription>,
        properties: Properties,
    ) -> Result<RequestId, SendError> {
        self.guard.check().map_err(SendError::Poisoned)?;
        if subscriptions.is_empty() || subscriptions.iter().any(|s| !valid_topic_filter(&s.filter)) {
            return Err(SendError::InvalidTopic);
        }
        let packet_id = self.request_packet_id()?;
        let packet = Packet::Subscribe(Subscribe {
            packet_id,
            properties,
            subscriptions,
        });
        self.encoder.encoded_len(&packet)?;
        if let Packet::Subscribe(s) = &packet {
            for sub in &s.subscriptions {
                self.state.subscriptions.insert(sub.filter.clone(), sub.options);
            }
        }
        Ok(self.request(packet_id, packet))
    }

    /// Unsubscribes from `filters`; [`Event::Unsubscribed`] carries the answer.
    pub fn unsubscribe(&mut self, filters: Vec<Bytes>) -> Result<RequestId, SendError> {
        self.guard.check().map_err(SendError::Poisoned)?;
        if filters.is_empty() || filters.iter().any(|f| !valid_topic_filter(f)) {
            return Err(SendError::InvalidTopic);
        }
        let packet_id = self.request_packet_id()?;
        let packet = Packet::Unsubscribe(Unsubscribe {
            packet_id,
            properties: Properties::default(),
            filters,
        });
        self.encoder.encoded_len(&packet)?;
        if let Packet::Unsubscribe(u) = &packet {
            for filter in &u.filters {
                self.state.subscriptions.remove(filter);
            }
        }
        Ok(self.request(packet_id, packet))
    }

    fn request_packet_id(&mut self) -> Result<u16, SendError> {
        self.state.packet_id().ok_or(SendError::Backpressure {
            queued: self.outgoing_len(),
        })
    }

    /// Records request `packet` and sends it now if connected (else on `CONNACK`).
    fn request(&mut self, packet_id: u16, packet: Packet) -> RequestId {
        let id = self.state.request_id();
        if self.phase == Phase::Connected {
            self.send(&packet);
        }
        self.state.requests.insert(packet_id, Request { id: Some(id), packet });
        id
    }

    /// Sends what waits while the server's window has room: QoS 0 at once, QoS 1/2
    /// while fewer than its Receive Maximum are unacknowledged [MQTT-4.9.0-2].
    pub(crate) fn pump(&mut self) {
        while self.phase == Phase::Connected && !self.guard.is_poisoned() {
            let Some((_, front)) = self.state.waiting.front() else {
                return;
            };
            let qos = front.qos;
            let packet_id = if qos == QoS::AtMostOnce {
                0
            } else {
                if self.state.inflight.len() >= usize::from(self.limits.receive_maximum) {
                    return;
                }
                match self.state.packet_id() {
                    Some(id) => id,
                    None => return,
                }
            };
            let Some((id, mut publish)) = self.state.waiting.pop_front() else {
                return;
            };
            self.state.waiting_bytes -= publish_bytes(&publish);
            publish.packet_id = packet_id;
            if qos > self.limits.maximum_qos || (publish.retain && !self.limits.retain_available) {
                // Queued before CONNACK said the server refuses it: never sent.
                if qos != QoS::AtMostOnce {
                    self.events.push_back(Event::Published {
                        id,
                        result: Err(if publish.retain && !self.limits.retain_available {
                            crate::mqtt::ReasonCode::RetainNotSupported
                        } else {
                            crate::mqtt::ReasonCode::QoSNotSupported
                        }),
                    });
                }
                continue;
            }
            self.send_publish(&publish);
            if qos != QoS::AtMostOnce {
                self.state
                    .inflight
                    .insert(packet_id, Outbound::Publish(id, Box::new(publish)));
            }
        }
    }

    /// Encodes `publish`, with a topic alias when the server takes them: the first use
    /// of a topic carries the topic and its new alias, later ones the alias alone.
    pub(crate) fn send_publish(&mut self, publish: &Publish) {
        let max = self.limits.topic_alias_maximum;
        if self.config.use_topic_aliases && self.config.version.is_v5() && max > 0 {
            let mut aliased = publish.clone();
            match self.aliases_out.get(&publish.topic) {
                Some(&alias) => {
                    aliased.topic = Bytes::new();
                    aliased.properties.topic_alias = Some(alias);
                }
                None if self.aliases_out.len() < usize::from(max) => {
                    // Aliases are 1..=Topic Alias Maximum [MQTT-3.3.2-9].
                    let alias = self.aliases_out.len() as u16 + 1;
                    self.aliases_out.insert(publish.topic.clone(), alias);
                    aliased.properties.topic_alias = Some(alias);
                }
                None => return self.send(&Packet::Publish(aliased)),
            }
            return self.send(&Packet::Publish(aliased));
        }
        self.send(&Packet::Publish(publish.clone()));
    }

    /// After `CONNACK`: what the session needs resent. With the session present, the
    /// unacknowledged PUBLISHes (DUP set [MQTT-3.3.1-1]) and PUBRELs with their
    /// original packet identifiers, in order [MQTT-4.4.0-1]; without it, the server
    /// knows nothing of them: subscriptions are made again, releases count as complete
    /// (the server had the message), publishes go out again as new ones. Requests not
    /// acknowledged are resent either way.
    pub(crate) fn restore_session(&mut self) {
        if self.session_present {
            for packet_id in self.state.resend_order() {
                match self.state.inflight.get(&packet_id).cloned() {
                    Some(Outbound::Publish(_, mut publish)) => {
                        publish.dup = true;
                        self.send(&Packet::Publish(*publish));
                    }
                    Some(Outbound::Released(_)) => {
                        self.send(&Packet::PubRel(crate::mqtt::Ack::success(packet_id)));
                    }
                    None => {}
                }
            }
        } else {
            self.state.inbound_qos2.clear();
            let mut fresh = Vec::new();
            for packet_id in self.state.resend_order() {
                match self.state.inflight.remove(&packet_id) {
                    Some(Outbound::Publish(id, mut publish)) => {
                        publish.dup = false;
                        fresh.push((id, *publish));
                    }
                    Some(Outbound::Released(id)) => self.events.push_back(Event::Published { id, result: Ok(()) }),
                    None => {}
                }
            }
            for (id, publish) in fresh.into_iter().rev() {
                self.state.waiting_bytes += publish_bytes(&publish);
                self.state.waiting.push_front((id, publish));
            }
            self.resubscribe();
        }
        for packet_id in self.state.request_order() {
            if let Some(request) = self.state.requests.get(&packet_id) {
                let packet = request.packet.clone();
                self.send(&packet);
            }
        }
        self.pump();
    }

    /// Subscribes again every filter not in a pending request (a lost session).
    fn resubscribe(&mut self) {
        let pending: Vec<Bytes> = self
            .state
            .requests
            .values()
            .filter_map(|r| match &r.packet {
                Packet::Subscribe(s) => Some(s.subscriptions.iter().map(|s| s.filter.clone()).collect::<Vec<_>>()),
                _ => None,
            })
            .flatten()
            .collect();
        let subscriptions: Vec<Subscription> = self
            .state
            .subscriptions
            .iter()
            .filter(|(filter, _)| !pending.contains(filter))
            .map(|(filter, &options)| Subscription {
                filter: filter.clone(),
                options,
            })
            .collect();
        // One SUBSCRIBE per batch small enough for any server.
        for chunk in subscriptions.chunks(64) {
            let Some(packet_id) = self.state.packet_id() else {
                return;
            };
            let packet = Packet::Subscribe(Subscribe {
                packet_id,
                properties: Properties::default(),
                subscriptions: chunk.to_vec(),
            });
            self.state.requests.insert(packet_id, Request { id: None, packet });
        }
    }
}
