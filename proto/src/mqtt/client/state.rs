//! [`ReconnectState`]: the session state of a client, which outlives a connection
//! (4.1): our QoS 1/2 publishes not yet complete, the QoS 2 messages received and not
//! yet released, the subscriptions, requests waiting for their acknowledgement, the
//! messages not yet taken, and the counters that name them.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use bytes::Bytes;

use crate::mqtt::{Packet, Publish, QoS, SubscriptionOptions};

use super::{Message, PublishId, RequestId};

/// A QoS 1/2 publish of ours the server has not completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outbound {
    /// `PUBLISH` sent, waiting for `PUBACK` (QoS 1) or `PUBREC` (QoS 2); resent with
    /// DUP set when the session resumes.
    Publish(PublishId, Box<Publish>),
    /// `PUBREC` received and `PUBREL` sent, waiting for `PUBCOMP`; the `PUBREL` is
    /// resent when the session resumes.
    Released(PublishId),
}

impl Outbound {
    pub(crate) fn id(&self) -> PublishId {
        match self {
            Outbound::Publish(id, _) | Outbound::Released(id) => *id,
        }
    }
}

/// A `SUBSCRIBE` or `UNSUBSCRIBE` waiting for its acknowledgement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// `None`: sent by the connection itself (re-subscribing a lost session).
    pub(crate) id: Option<RequestId>,
    /// The packet, resent as it is on the next connection.
    pub(crate) packet: Packet,
}

/// What a lost connection leaves for the next: see the module's doc. From
/// [`Connection::take_reconnect_state`](super::Connection::take_reconnect_state), into
/// [`Connection::resume`](super::Connection::resume).
#[derive(Debug, Clone, Default)]
pub struct ReconnectState {
    /// QoS 1/2 publishes in flight, by packet identifier.
    pub(crate) inflight: HashMap<u16, Outbound>,
    /// Publishes not sent yet (the server's window was full, or no connection yet),
    /// oldest first; QoS 1/2 ones get their packet identifier when they go out.
    pub(crate) waiting: VecDeque<(PublishId, Publish)>,
    /// Bytes of payload and topic in `waiting`.
    pub(crate) waiting_bytes: usize,
    /// QoS 2 packet identifiers received (and delivered) whose `PUBREL` has not come:
    /// a `PUBLISH` reusing one is a duplicate, not delivered again.
    pub(crate) inbound_qos2: HashSet<u16>,
    /// Active subscriptions, by filter (re-subscribed when a session was lost).
    pub(crate) subscriptions: BTreeMap<Bytes, SubscriptionOptions>,
    /// Requests waiting for their acknowledgement, by packet identifier.
    pub(crate) requests: HashMap<u16, Request>,
    /// Received messages not yet taken.
    pub(crate) messages: VecDeque<Message>,
    next_packet_id: u16,
    next_publish: u64,
    next_request: u64,
}

impl ReconnectState {
    /// QoS 1/2 publishes in flight or waiting for the window (not complete).
    pub fn unacknowledged(&self) -> usize {
        self.inflight.len() + self.waiting.iter().filter(|(_, p)| p.qos != QoS::AtMostOnce).count()
    }

    /// Messages received and not taken yet.
    pub fn pending_messages(&self) -> usize {
        self.messages.len()
    }

    pub(crate) fn publish_id(&mut self) -> PublishId {
        self.next_publish += 1;
        PublishId(self.next_publish)
    }

    pub(crate) fn request_id(&mut self) -> RequestId {
        self.next_request += 1;
        RequestId(self.next_request)
    }

    /// A packet identifier not in use by any of our publishes or requests
    /// [MQTT-2.2.1-3], or `None` when all 65535 are.
    pub(crate) fn packet_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.next_packet_id = self.next_packet_id.checked_add(1).unwrap_or(1);
            let id = self.next_packet_id;
            if !self.inflight.contains_key(&id) && !self.requests.contains_key(&id) {
                return Some(id);
            }
        }
        None
    }

    /// The publishes and releases to resend on a resumed session, in the order they
    /// were first sent [MQTT-4.6.0-1].
    pub(crate) fn resend_order(&self) -> Vec<u16> {
        let mut ids: Vec<(PublishId, u16)> = self.inflight.iter().map(|(&pid, o)| (o.id(), pid)).collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, pid)| pid).collect()
    }

    /// Requests to resend, oldest first.
    pub(crate) fn request_order(&self) -> Vec<u16> {
        let mut ids: Vec<(Option<RequestId>, u16)> = self.requests.iter().map(|(&pid, r)| (r.id, pid)).collect();
        ids.sort_unstable();
        ids.into_iter().map(|(_, pid)| pid).collect()
    }
}

/// Bytes a waiting publish holds.
pub(crate) fn publish_bytes(p: &Publish) -> usize {
    p.topic.len() + p.payload.len() + 16
}
