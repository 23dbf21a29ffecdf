//! The receive path: every decoded value is a push, a RESP2 pub/sub frame, or the reply
//! to the oldest entry of the FIFO.

use std::time::Instant;

use super::pubsub::{self, PubSubFrame};
use super::queue::{Entry, Extra, Fate, Kind, Request, Role, Subscribing};
use super::{
    is_status, strip_attributes, Connection, ConnectionError, Event, QueueRejection, RequestError, RequestId,
    TransactionAborted, TransactionReplies,
};
use crate::resp::{Protocol, Value};

impl Connection {
    /// One complete value from the server.
    pub(super) fn on_value(&mut self, value: Value, now: Instant) {
        if matches!(value.without_attributes(), Value::Push(_)) {
            let value = strip_attributes(value);
            match value.as_elements().and_then(|items| pubsub::classify(items, true)) {
                Some(frame) => self.on_pubsub(frame, value),
                None => self.events.push_back(Event::Push(value)),
            }
        } else if self.protocol == Protocol::Resp2 && self.expects_pubsub_arrays() {
            match &value {
                Value::Array(items) => match pubsub::classify(items, false) {
                    Some(frame) => self.on_pubsub(frame, value),
                    None => self.on_reply(value, now),
                },
                _ => self.on_reply(value, now),
            }
        } else {
            self.on_reply(value, now);
        }
        self.settle_front();
    }

    /// RESP2: whether arrays may be pub/sub frames (in subscribed mode, or while a
    /// subscribe-family command waits for its confirmations).
    pub(super) fn expects_pubsub_arrays(&self) -> bool {
        !self.subscriptions.is_empty()
            || matches!(
                self.fifo.entries().front(),
                Some(Entry {
                    role: Role::Request(Request {
                        kind: Kind::Subscribe,
                        ..
                    }),
                    ..
                })
            )
    }

    fn on_pubsub(&mut self, frame: PubSubFrame, raw: Value) {
        match frame {
            PubSubFrame::Message { kind, channel, payload } => {
                self.events.push_back(Event::Message { kind, channel, payload });
            }
            PubSubFrame::Invalidate(keys) => self.events.push_back(Event::Invalidate { keys }),
            PubSubFrame::Confirmation { command, channel } => {
                self.subscriptions.apply(command, channel.as_ref());
                let front = match self.fifo.entries().front().map(|e| &e.role) {
                    Some(Role::Request(Request {
                        id,
                        kind: Kind::Subscribe,
                        ..
                    })) => self.extras.subscribing(*id),
                    _ => None,
                };
                let done = match front {
                    Some(sub) if sub.command == command => {
                        sub.confirmations.push(raw);
                        sub.confirmations.len() >= sub.expected.unwrap_or(1)
                    }
                    _ => {
                        // Nobody asked: the server unsubscribed us on its own.
                        self.events.push_back(Event::Push(raw));
                        return;
                    }
                };
                if done {
                    if let Some(Entry {
                        role: Role::Request(request),
                        ..
                    }) = self.fifo.pop()
                    {
                        if let Some(Extra::Subscribe(sub)) = self.extras.take(request.id) {
                            self.subscribe_done(&sub);
                            self.complete(request.id, request.fate, Ok(Value::Array(sub.confirmations)));
                        }
                    }
                }
            }
        }
    }

    /// A normal (non-push) reply: it answers the oldest entry.
    fn on_reply(&mut self, value: Value, now: Instant) {
        let Some(entry) = self.fifo.pop() else {
            self.poison(ConnectionError::UnexpectedReply(Box::new(value)));
            return;
        };
        match entry.role {
            Role::Handshake(step) => self.on_handshake_reply(step, value, now),
            Role::Multi => {
                self.transaction = Some(TransactionReplies {
                    multi: (!is_status(&value, b"OK")).then_some(value),
                    rejected: Vec::new(),
                });
            }
            Role::Queued(index) => {
                if !is_status(&value, b"QUEUED") {
                    self.transaction
                        .get_or_insert_with(TransactionReplies::default)
                        .rejected
                        .push(QueueRejection { index, reply: value });
                }
            }
            // The health check's PONG (`["pong", ""]` in RESP2 subscriber mode, or even
            // an error reply): it arrived, which is all it had to prove.
            Role::Health => {}
            Role::Request(request) => {
                let outcome = match request.kind {
                    Kind::Plain | Kind::Blocking => Ok(value),
                    Kind::Subscribe => {
                        // An error reply instead of confirmations.
                        if let Some(Extra::Subscribe(sub)) = self.extras.take(request.id) {
                            self.subscribe_done(&sub);
                        }
                        Ok(value)
                    }
                    Kind::Tracking => {
                        let command = match self.extras.take(request.id) {
                            Some(Extra::Tracking(command)) => command,
                            _ => None,
                        };
                        if is_status(&value, b"OK") {
                            self.tracking = command;
                        }
                        Ok(value)
                    }
                    Kind::Hello(protocol) => {
                        if protocol == Protocol::Resp3 {
                            self.hello3_in_flight = self.hello3_in_flight.saturating_sub(1);
                        }
                        if !value.is_error() {
                            self.protocol = protocol;
                        }
                        self.sync_decoder();
                        Ok(value)
                    }
                    Kind::Reset => {
                        if is_status(&value, b"RESET") {
                            self.protocol = Protocol::Resp2;
                            self.subscriptions.clear();
                            self.tracking = None;
                            self.sync_decoder();
                        }
                        Ok(value)
                    }
                    Kind::Exec => match self.transaction.take() {
                        Some(t) if t.multi.is_some() || !t.rejected.is_empty() => {
                            Err(RequestError::TransactionAborted(Box::new(TransactionAborted {
                                multi: t.multi,
                                rejected: t.rejected,
                                exec: value,
                            })))
                        }
                        _ => Ok(value),
                    },
                };
                self.complete(request.id, request.fate, outcome);
            }
        }
    }

    /// Delivers a request's outcome, unless nobody wants it any more. A restore
    /// command's error reply is reported as [`Event::RestoreFailed`].
    pub(super) fn complete(&mut self, id: RequestId, fate: Fate, outcome: Result<Value, RequestError>) {
        match fate {
            Fate::Waiting => {
                self.pending = self.pending.saturating_sub(1);
                self.events.push_back(match outcome {
                    Ok(value) => Event::Reply { id, value },
                    Err(error) => Event::Failed { id, error },
                });
            }
            Fate::Restore => {
                self.restoring.outstanding = self.restoring.outstanding.saturating_sub(1);
                if let Ok(reply) = outcome {
                    if reply.without_attributes().is_error() {
                        self.events.push_back(Event::RestoreFailed { reply });
                    }
                }
            }
            Fate::Abandoned | Fate::TimedOut => self.pending = self.pending.saturating_sub(1),
        }
    }

    /// A subscribe-family command left the FIFO: a subscribe no longer holds RESP2
    /// subscriber mode on its own (its confirmations, if any, now do).
    fn subscribe_done(&mut self, sub: &Subscribing) {
        if sub.command.subscribe {
            self.pending_subscribes = self.pending_subscribes.saturating_sub(1);
        }
    }

    /// An unsubscribe-all learns how many confirmations to expect when it reaches the
    /// front of the FIFO: one per subscription of its kind, or one (with a null channel)
    /// when there is none.
    pub(super) fn settle_front(&mut self) {
        if let Some(Entry {
            role:
                Role::Request(Request {
                    id,
                    kind: Kind::Subscribe,
                    ..
                }),
            ..
        }) = self.fifo.entries().front()
        {
            if let Some(sub) = self.extras.subscribing(*id) {
                if sub.expected.is_none() {
                    sub.expected = Some(self.subscriptions.count(sub.command.family).max(1));
                }
            }
        }
    }

    /// The decoder accepts RESP3 while a `HELLO 3` reply may come, else the protocol in
    /// force.
    pub(super) fn sync_decoder(&mut self) {
        let protocol = if self.hello3_in_flight > 0 {
            Protocol::Resp3
        } else {
            self.protocol
        };
        self.decoder.set_protocol(protocol);
    }
}
