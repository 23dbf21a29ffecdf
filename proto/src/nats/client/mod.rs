//! The NATS client connection: a sans-IO state machine for the handshake,
//! authentication, publishing, subscriptions with bounded queues, request/reply over one
//! inbox, keepalive, server errors and cluster discovery, and the state a reconnect
//! carries over.
//!
//! See [`Connection`] for the manual.

mod config;
mod error;
mod event;
mod nkey;

pub use config::{Auth, ClientConfig, SlowConsumerPolicy, SubscriptionPolicy};
pub use error::{ConnectionError, RequestError, SendError};
pub use event::{Event, PingId, RequestId, SubscriptionEnd};
pub use nkey::{CredsError, KeyPair, NKeyError};

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::chassis::{IoArena, Session};
use crate::nats::{Headers, Message, ServerInfo, Sid};

/// A NATS client connection, sans I/O. (Skeleton: the API is settled, the bodies follow.)
#[derive(Debug)]
pub struct Connection {
    config: ClientConfig,
    transmit: IoArena,
}

/// What survives a lost connection into the next one: active subscriptions (with their
/// queued messages and remaining maximum counts), unsent publishes within
/// [`ClientConfig::reconnect_buffer_bytes`], the servers learned so far and the id
/// counters.
#[derive(Debug, Default)]
pub struct ReconnectState {
    _private: (),
}

impl Connection {
    /// A connection about to be opened: it waits for the server's `INFO`.
    pub fn new(config: ClientConfig, now: Instant) -> Self {
        let _ = now;
        Self {
            config,
            transmit: IoArena::new(),
        }
    }

    /// A connection that continues `state` (taken from a lost connection with
    /// [`take_reconnect_state`](Self::take_reconnect_state)).
    pub fn resume(config: ClientConfig, state: ReconnectState, now: Instant) -> Self {
        let _ = state;
        Self::new(config, now)
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// Whether the handshake completed and the connection is not poisoned.
    pub fn is_connected(&self) -> bool {
        unimplemented!("skeleton")
    }

    /// The latest `INFO` from the server.
    pub fn server_info(&self) -> Option<&ServerInfo> {
        unimplemented!("skeleton")
    }

    /// Every server learned from `connect_urls` of every `INFO`, first seen first.
    pub fn known_servers(&self) -> &[String] {
        unimplemented!("skeleton")
    }

    /// Why the connection was poisoned, once it is.
    pub fn error(&self) -> Option<&ConnectionError> {
        unimplemented!("skeleton")
    }

    /// Bytes encoded but not yet taken by the kernel, plus bytes held until the
    /// handshake completes.
    pub fn outgoing_len(&self) -> usize {
        unimplemented!("skeleton")
    }

    /// Requests waiting for their reply.
    pub fn pending_requests(&self) -> usize {
        unimplemented!("skeleton")
    }

    /// Messages and bytes queued for a subscription, `None` for an unknown sid.
    pub fn pending_messages(&self, sid: &Sid) -> Option<(usize, usize)> {
        let _ = sid;
        unimplemented!("skeleton")
    }

    /// Whether the driver should read the socket.
    pub fn wants_read(&self) -> bool {
        unimplemented!("skeleton")
    }

    /// Whether the connection is finished.
    pub fn is_closed(&self) -> bool {
        unimplemented!("skeleton")
    }

    /// Bytes received from the server.
    pub fn handle_input(&mut self, data: Bytes, now: Instant) -> Result<(), ConnectionError> {
        let _ = (data, now);
        unimplemented!("skeleton")
    }

    /// The server closed the connection.
    pub fn handle_eof(&mut self, now: Instant) -> Result<(), ConnectionError> {
        let _ = now;
        unimplemented!("skeleton")
    }

    /// The instant from `poll_timeout` has come.
    pub fn handle_timeout(&mut self, now: Instant) -> Result<(), ConnectionError> {
        let _ = now;
        unimplemented!("skeleton")
    }

    /// Buffers a `PUB`/`HPUB`.
    pub fn publish(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        headers: Option<&Headers>,
        payload: &Bytes,
        now: Instant,
    ) -> Result<(), SendError> {
        let _ = (subject, reply, headers, payload, now);
        unimplemented!("skeleton")
    }

    /// Subscribes.
    pub fn subscribe(
        &mut self,
        subject: &[u8],
        queue: Option<&[u8]>,
        policy: SubscriptionPolicy,
    ) -> Result<Sid, SendError> {
        let _ = (subject, queue, policy);
        unimplemented!("skeleton")
    }

    /// Unsubscribes now (`max: None`) or after `max` messages in all.
    pub fn unsubscribe(&mut self, sid: &Sid, max: Option<u64>) -> Result<(), SendError> {
        let _ = (sid, max);
        unimplemented!("skeleton")
    }

    /// Publishes a request with a reply subject in this connection's inbox.
    pub fn request(
        &mut self,
        subject: &[u8],
        headers: Option<&Headers>,
        payload: &Bytes,
        timeout: Option<Duration>,
        now: Instant,
    ) -> Result<RequestId, SendError> {
        let _ = (subject, headers, payload, timeout, now);
        unimplemented!("skeleton")
    }

    /// Sends a `PING`; [`Event::Pong`] says the server processed everything before it.
    pub fn ping(&mut self) -> Result<PingId, SendError> {
        unimplemented!("skeleton")
    }

    /// Takes the oldest queued message of a subscription.
    pub fn next_message(&mut self, sid: &Sid) -> Option<Message> {
        let _ = sid;
        unimplemented!("skeleton")
    }

    /// Takes what a new connection needs to continue this one; poisons this one with
    /// [`ConnectionError::Replaced`] unless it already was poisoned.
    pub fn take_reconnect_state(&mut self) -> ReconnectState {
        unimplemented!("skeleton")
    }

    /// The arena to flush.
    pub fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        (!self.transmit.is_empty()).then_some(&mut self.transmit)
    }

    /// When `handle_timeout` should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        unimplemented!("skeleton")
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        unimplemented!("skeleton")
    }
}

impl Session for Connection {
    type Event = Event;

    fn handle_input(&mut self, data: Bytes, now: Instant) {
        let _ = Connection::handle_input(self, data, now);
    }

    fn handle_eof(&mut self, now: Instant) {
        let _ = Connection::handle_eof(self, now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        let _ = Connection::handle_timeout(self, now);
    }

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        Connection::poll_transmit(self)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        Connection::poll_timeout(self)
    }

    fn poll_event(&mut self) -> Option<Event> {
        Connection::poll_event(self)
    }

    fn wants_read(&self) -> bool {
        Connection::wants_read(self)
    }

    fn is_closed(&self) -> bool {
        Connection::is_closed(self)
    }
}
