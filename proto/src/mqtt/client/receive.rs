//! What the client does with each packet the server sends.

use crate::mqtt::{Ack, ConnAck, Packet, PacketType, Publish, QoS, Reason, ReasonCode, SubAck};

use super::state::Outbound;
use super::{Connection, ConnectionError, Event, Message, Phase, ProtocolViolation, ServerLimits};

impl Connection {
    /// Decodes and handles what was received, while the message queue has room.
    pub(crate) fn process_input(&mut self) -> Result<(), ConnectionError> {
        while self.wants_read() {
            self.guard.check()?;
            let packet = match self.decoder.decode(&mut self.input) {
                Ok(Some(packet)) => packet,
                Ok(None) => return Ok(()),
                Err(e) => {
                    let code = e.reason_code();
                    return Err(self.violated(ConnectionError::Decode(e), code));
                }
            };
            self.last_received = self.now;
            self.handle_packet(packet)?;
        }
        Ok(())
    }

    /// Ends the connection for the server's fault: `DISCONNECT` with `code` first
    /// (5.0 only: a 3.1.1 client just closes).
    fn violated(&mut self, error: ConnectionError, code: ReasonCode) -> ConnectionError {
        if self.config.version.is_v5() && self.phase == Phase::Connected {
            self.send(&Packet::Disconnect(Reason::new(code)));
        }
        self.fail(error.clone());
        error
    }

    fn protocol(&mut self, what: ProtocolViolation, code: ReasonCode) -> ConnectionError {
        self.violated(ConnectionError::Protocol { what, code }, code)
    }

    fn handle_packet(&mut self, packet: Packet) -> Result<(), ConnectionError> {
        if self.phase == Phase::AwaitConnAck {
            // The first packet from the server must be CONNACK [MQTT-3.2.0-1].
            return match packet {
                Packet::ConnAck(ack) => self.on_connack(ack),
                other => Err(self.protocol(
                    ProtocolViolation::Unexpected(other.packet_type()),
                    ReasonCode::ProtocolError,
                )),
            };
        }
        match packet {
            Packet::Publish(p) => self.on_publish(p)?,
            Packet::PubAck(a) => self.on_puback(a),
            Packet::PubRec(a) => self.on_pubrec(a),
            Packet::PubRel(a) => self.on_pubrel(a),
            Packet::PubComp(a) => self.on_pubcomp(a),
            Packet::SubAck(a) => self.on_suback(a, false),
            Packet::UnsubAck(a) => self.on_suback(a, true),
            Packet::PingResp => self.ping_sent = None,
            Packet::Disconnect(reason) => {
                let error = ConnectionError::ServerDisconnect {
                    code: reason.code,
                    reason: reason.properties.reason_string,
                };
                self.fail(error.clone());
                return Err(error);
            }
            other => {
                // A second CONNACK, or AUTH (no enhanced authentication here).
                return Err(self.protocol(
                    ProtocolViolation::Unexpected(other.packet_type()),
                    ReasonCode::ProtocolError,
                ));
            }
        }
        Ok(())
    }

    fn on_connack(&mut self, ack: ConnAck) -> Result<(), ConnectionError> {
        if ack.code.is_error() {
            let error = ConnectionError::Refused {
                code: ack.code,
                reason: ack.properties.reason_string,
            };
            self.fail(error.clone());
            return Err(error);
        }
        let p = &ack.properties;
        let defaults = ServerLimits::default();
        self.limits = ServerLimits {
            receive_maximum: p.receive_maximum.unwrap_or(defaults.receive_maximum),
            maximum_qos: p.maximum_qos.unwrap_or(defaults.maximum_qos),
            retain_available: p.retain_available.unwrap_or(true),
            maximum_packet_size: p.maximum_packet_size.unwrap_or(defaults.maximum_packet_size),
            topic_alias_maximum: p.topic_alias_maximum.unwrap_or(0),
            keep_alive: p.server_keep_alive,
        };
        // Never send a packet over the server's Maximum Packet Size [MQTT-3.1.2-24].
        self.encoder.set_max_packet_size(self.limits.maximum_packet_size);
        self.phase = Phase::Connected;
        self.session_present = ack.session_present;
        self.events.push_back(Event::Connected {
            session_present: ack.session_present,
            assigned_client_id: ack.properties.assigned_client_identifier,
        });
        self.restore_session();
        Ok(())
    }

    fn on_publish(&mut self, mut p: Publish) -> Result<(), ConnectionError> {
        if let Some(alias) = p.properties.topic_alias.take() {
            if alias == 0 || alias > self.config.topic_alias_maximum {
                return Err(self.protocol(ProtocolViolation::TopicAliasRange(alias), ReasonCode::TopicAliasInvalid));
            }
            if p.topic.is_empty() {
                match self.aliases_in.get(&alias) {
                    Some(topic) => p.topic = topic.clone(),
                    None => {
                        return Err(
                            self.protocol(ProtocolViolation::UnknownTopicAlias(alias), ReasonCode::ProtocolError)
                        )
                    }
                }
            } else {
                self.aliases_in.insert(alias, p.topic.clone());
            }
        }
        match p.qos {
            QoS::AtMostOnce => self.deliver(p),
            QoS::AtLeastOnce => {
                let id = p.packet_id;
                self.deliver(p);
                self.send(&Packet::PubAck(Ack::success(id)));
            }
            QoS::ExactlyOnce => {
                let id = p.packet_id;
                // A resent PUBLISH of a message not yet released is not delivered again
                // [MQTT-4.3.3-10]; it gets its PUBREC again.
                if !self.state.inbound_qos2.contains(&id) {
                    if self.config.version.is_v5()
                        && self.state.inbound_qos2.len() >= usize::from(self.config.receive_maximum)
                    {
                        return Err(
                            self.protocol(ProtocolViolation::ReceiveMaximum, ReasonCode::ReceiveMaximumExceeded)
                        );
                    }
                    self.state.inbound_qos2.insert(id);
                    self.deliver(p);
                }
                self.send(&Packet::PubRec(Ack::success(id)));
            }
        }
        Ok(())
    }

    fn deliver(&mut self, p: Publish) {
        let was_empty = self.state.messages.is_empty();
        self.state.messages.push_back(Message {
            topic: p.topic,
            payload: p.payload,
            qos: p.qos,
            retain: p.retain,
            properties: p.properties,
        });
        if was_empty {
            self.events.push_back(Event::Messages);
        }
    }

    fn complete(&mut self, packet_id: u16, code: ReasonCode) {
        if let Some(outbound) = self.state.inflight.remove(&packet_id) {
            let result = if code.is_error() { Err(code) } else { Ok(()) };
            self.events.push_back(Event::Published {
                id: outbound.id(),
                result,
            });
            // A slot of the server's window is free.
            self.pump();
        }
    }

    fn on_puback(&mut self, a: Ack) {
        if let Some(Outbound::Publish(_, p)) = self.state.inflight.get(&a.packet_id) {
            if p.qos == QoS::AtLeastOnce {
                self.complete(a.packet_id, a.code);
            }
        }
    }

    fn on_pubrec(&mut self, a: Ack) {
        match self.state.inflight.get_mut(&a.packet_id) {
            Some(Outbound::Publish(id, p)) if p.qos == QoS::ExactlyOnce => {
                if a.code.is_error() {
                    // A PUBREC with an error ends the exchange: no PUBREL.
                    self.complete(a.packet_id, a.code);
                    return;
                }
                // PUBREL answers PUBREC [MQTT-4.3.3-4]; the message is released.
                let id = *id;
                self.state.inflight.insert(a.packet_id, Outbound::Released(id));
                self.send(&Packet::PubRel(Ack::success(a.packet_id)));
            }
            Some(Outbound::Released(_)) => self.send(&Packet::PubRel(Ack::success(a.packet_id))),
            _ => {
                // Not ours (any more): 5.0 answers Packet Identifier not found.
                if self.config.version.is_v5() {
                    let mut rel = Ack::success(a.packet_id);
                    rel.code = ReasonCode::PacketIdentifierNotFound;
                    self.send(&Packet::PubRel(rel));
                }
            }
        }
    }

    fn on_pubrel(&mut self, a: Ack) {
        let known = self.state.inbound_qos2.remove(&a.packet_id);
        let mut comp = Ack::success(a.packet_id);
        if !known && self.config.version.is_v5() {
            comp.code = ReasonCode::PacketIdentifierNotFound;
        }
        self.send(&Packet::PubComp(comp));
    }

    fn on_pubcomp(&mut self, a: Ack) {
        if let Some(Outbound::Released(_)) = self.state.inflight.get(&a.packet_id) {
            self.complete(a.packet_id, a.code);
        }
    }

    fn on_suback(&mut self, a: SubAck, unsubscribe: bool) {
        let Some(request) = self.state.requests.remove(&a.packet_id) else {
            return;
        };
        let is_unsubscribe = matches!(request.packet, Packet::Unsubscribe(_));
        if is_unsubscribe != unsubscribe {
            // An acknowledgement of the wrong kind: keep the request.
            self.state.requests.insert(a.packet_id, request);
            let packet = if unsubscribe {
                PacketType::UnsubAck
            } else {
                PacketType::SubAck
            };
            let _ = self.protocol(ProtocolViolation::Unexpected(packet), ReasonCode::ProtocolError);
            return;
        }
        if let (false, Packet::Subscribe(s)) = (unsubscribe, &request.packet) {
            // A refused filter is no subscription: not made again later.
            for (sub, code) in s.subscriptions.iter().zip(&a.codes) {
                if code.is_error() {
                    self.state.subscriptions.remove(&sub.filter);
                }
            }
        }
        let codes = if unsubscribe && !self.config.version.is_v5() {
            // 3.1.1's UNSUBACK has no codes.
            match &request.packet {
                Packet::Unsubscribe(u) => vec![ReasonCode::Success; u.filters.len()],
                _ => a.codes,
            }
        } else {
            a.codes
        };
        let Some(id) = request.id else { return };
        self.events.push_back(if unsubscribe {
            Event::Unsubscribed { id, codes }
        } else {
            Event::Subscribed { id, codes }
        });
    }
}
