//! The MQTT client's calls, on the state the client and its subscriptions share: each
//! runs the driver (through the shared body) until its work is done or its deadline.

use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::chassis::link::Supervisor;
use monocoque_proto::mqtt::client::{Connection, Message, RequestId};
use monocoque_proto::mqtt::{Properties, QoS, ReasonCode, Subscription, SubscriptionOptions};
use monocoque_proto::Driver;

use super::body::{match_filter, Inner, Mqtt, Route};
use super::{ClientOptions, Error};
use crate::link::deadline_after;

impl<D: Driver<Connection>> Inner<D> {
    /// A body connected with `options` on `driver`: one attempt, until `CONNACK`.
    pub(crate) fn connect(driver: D, options: ClientOptions) -> Result<Self, Error> {
        let seed = super::body::seed(options.seed);
        let supervisor = Supervisor::new(std::slice::from_ref(&options.server), options.link.reconnect, seed);
        let mut inner = Self::new(driver, Mqtt::new(options), supervisor);
        inner.open_link(0)?;
        Ok(inner)
    }

    /// Publishes; for QoS 1/2 waits for the acknowledgement (across reconnects: the
    /// resumed session resends it) within the operation timeout.
    pub(crate) fn publish(
        &mut self,
        topic: &str,
        payload: Bytes,
        qos: QoS,
        retain: bool,
        properties: Properties,
    ) -> Result<(), Error> {
        let timeout = self.proto.options.operation_timeout;
        let deadline = deadline_after(timeout);
        let topic = Bytes::copy_from_slice(topic.as_bytes());
        let id = self.with_session(timeout, |session| {
            session.publish_with(topic.clone(), payload.clone(), qos, retain, properties.clone())
        })?;
        let Some(id) = id else {
            // QoS 0: hand it to the kernel now if a lot is buffered, else with the next
            // blocking call or flush.
            let buffered = self.live_session().map_or(0, |s| s.outgoing_len());
            if buffered >= 64 * 1024 {
                self.turn(Some(Instant::now()))?;
            }
            return Ok(());
        };
        loop {
            if let Some(result) = self.proto.published.remove(&id) {
                return result.map_err(Error::Server);
            }
            let now = Instant::now();
            if deadline.is_some_and(|d| now >= d) {
                self.proto.abandoned.insert(id);
                return Err(Error::Timeout);
            }
            if !self.is_live() {
                if let Err(e) = self.ensure_link(deadline) {
                    self.proto.abandoned.insert(id);
                    return Err(e);
                }
                continue;
            }
            self.turn(deadline)?;
        }
    }

    /// Sends a request made by `op` and waits for its acknowledgement's codes.
    fn request(
        &mut self,
        mut op: impl FnMut(&mut Connection) -> Result<RequestId, monocoque_proto::mqtt::client::SendError>,
    ) -> Result<Vec<ReasonCode>, Error> {
        let timeout = self.proto.options.operation_timeout;
        let deadline = deadline_after(timeout);
        let id = self.with_session(timeout, &mut op)?;
        loop {
            if let Some(codes) = self.proto.acks.remove(&id) {
                return Ok(codes);
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Err(Error::Timeout);
            }
            if !self.is_live() {
                self.ensure_link(deadline)?;
                continue;
            }
            self.turn(deadline)?;
        }
    }

    /// Subscribes `filters` as one handle; waits for `SUBACK`. A filter the server
    /// refused is [`Error::Server`] (the others stay subscribed).
    pub(crate) fn subscribe(&mut self, filters: &[(&str, QoS)]) -> Result<(u64, Vec<ReasonCode>), Error> {
        let subscriptions: Vec<Subscription> = filters
            .iter()
            .map(|(f, qos)| Subscription {
                filter: Bytes::copy_from_slice(f.as_bytes()),
                options: SubscriptionOptions::qos(*qos),
            })
            .collect();
        // The handle exists before the SUBSCRIBE goes out: retained messages can come
        // right behind the SUBACK.
        self.proto.last_route += 1;
        let key = self.proto.last_route;
        let route = Route {
            filters: filters.iter().map(|(f, _)| match_filter(f)).collect(),
            subscribed: subscriptions.iter().map(|s| s.filter.clone()).collect(),
            ..Route::default()
        };
        self.proto.routes.insert(key, route);
        let codes = self.request(|s| s.subscribe(subscriptions.clone(), Properties::default()));
        let codes = match codes {
            Ok(codes) => codes,
            Err(e) => {
                self.forget(key);
                return Err(e);
            }
        };
        if let Some(&refused) = codes.iter().find(|c| c.is_error()) {
            self.forget(key);
            return Err(Error::Server(refused));
        }
        Ok((key, codes))
    }

    /// Unsubscribes a handle's filters; waits for `UNSUBACK`.
    pub(crate) fn unsubscribe(&mut self, key: u64) -> Result<(), Error> {
        let Some(route) = self.proto.routes.get_mut(&key) else {
            return Err(Error::SubscriptionClosed);
        };
        route.closed = true;
        let filters = route.subscribed.clone();
        self.request(|s| s.unsubscribe(filters.clone()))?;
        self.forget(key);
        Ok(())
    }

    /// Drops a handle and its queued messages.
    pub(crate) fn forget(&mut self, key: u64) {
        if let Some(route) = self.proto.routes.remove(&key) {
            self.proto.routed -= route.queue.len();
        }
    }

    /// The next message for handle `key`, waiting up to `timeout` (a reconnect
    /// included).
    pub(crate) fn next_message(&mut self, key: u64, timeout: Duration) -> Result<Option<Message>, Error> {
        if let Some(m) = self.take_routed(key)? {
            return Ok(Some(m));
        }
        let deadline = Instant::now().checked_add(timeout);
        let mut last_look = false;
        loop {
            if let Some(conn) = self.link.as_ref().filter(|l| l.is_live()).map(|l| l.conn) {
                if let Some(session) = self.driver.session_for_output(conn) {
                    self.proto.route(session);
                }
            }
            if let Some(m) = self.take_routed(key)? {
                return Ok(Some(m));
            }
            if !self.wait_step(deadline, timeout.is_zero(), &mut last_look)? {
                return Ok(None);
            }
        }
    }

    fn take_routed(&mut self, key: u64) -> Result<Option<Message>, Error> {
        let Some(route) = self.proto.routes.get_mut(&key) else {
            return Err(Error::SubscriptionClosed);
        };
        let message = route.queue.pop_front();
        if message.is_some() {
            self.proto.routed -= 1;
        }
        Ok(message)
    }

    /// Hands everything buffered to the kernel within the operation timeout
    /// (reconnecting first if needed).
    pub(crate) fn flush(&mut self) -> Result<(), Error> {
        self.drain_output(deadline_after(self.proto.options.operation_timeout))
    }

    /// Sends `DISCONNECT` (Normal Disconnection) and waits, within the operation
    /// timeout, until the server closed its end (or the session's linger passed).
    pub(crate) fn close(&mut self) -> Result<(), Error> {
        let deadline = deadline_after(self.proto.options.operation_timeout);
        let Some(session) = self.current_session() else {
            self.bury_dead();
            return Ok(());
        };
        session.disconnect(ReasonCode::Success, Instant::now());
        // Until the session is closed: DISCONNECT sent and the server's end closed (or
        // the session's linger over), so nothing we sent is lost to a reset.
        loop {
            let done = self.session().is_none_or(|s| s.is_closed() && s.outgoing_len() == 0);
            if done || deadline.is_some_and(|d| Instant::now() >= d) || self.link.is_none() {
                break;
            }
            // The last write, or the server's close (the driver reports it), ends the
            // turn; the session's linger timer closes it at the latest.
            if let Some(session) = self.current_session() {
                session.report_sent(0);
            }
            self.turn(deadline)?;
        }
        self.drain_events();
        self.bury_link();
        Ok(())
    }
}
