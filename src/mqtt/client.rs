//! The blocking, thread-per-core MQTT client: one connection, driven by one driver on
//! the calling thread, reconnecting and resuming its session.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use bytes::Bytes;
use monocoque_proto::mqtt::client::{Connection, Message};
use monocoque_proto::mqtt::{Properties, QoS, ReasonCode};
use monocoque_proto::Driver;

use super::body::Inner;
use super::{ClientOptions, Error};
use crate::driver::AnyDriver;

/// An MQTT 3.1.1 / 5.0 client: one connection, run by a [`Driver`] on the calling
/// thread.
///
/// Blocking and single-threaded by design (thread per core): every call runs the driver
/// until its work is done; nothing runs in the background (keep alive included: a
/// client left idle longer than its keep alive without a call is disconnected by the
/// server, and the next call reconnects).
///
/// ```no_run
/// use std::time::Duration;
/// use monocoque::mqtt::{Client, QoS};
///
/// let mut client = Client::connect("mqtt://127.0.0.1:1883")?;
/// let mut sub = client.subscribe("sensors/+/temp", QoS::AtLeastOnce)?;
/// client.publish("sensors/kitchen/temp", "21.5", QoS::AtLeastOnce, false)?; // PUBACK received
/// let message = sub.next_message(Duration::from_secs(1))?.expect("a message");
/// assert_eq!(&message.payload[..], b"21.5");
/// client.close()?;
/// # Ok::<(), monocoque::mqtt::Error>(())
/// ```
///
/// ## Delivery
///
/// [`publish`](Self::publish) with QoS 1 or 2 returns once the server acknowledged it
/// (`PUBACK`, or `PUBCOMP`), or with [`Error::Server`] when it answered with an error
/// code. QoS 0 publishes are buffered until [`flush`](Self::flush) or the next
/// blocking call. Received messages go to every [`Subscription`] whose filters match
/// their topic; at most
/// [`max_pending_messages`](ClientOptions::max_pending_messages) wait in all, past which
/// the connection stops reading and the server's flow control holds the rest.
///
/// ## Failures and reconnection
///
/// A lost connection is re-established by the next call, with backoff
/// ([`ReconnectPolicy`](crate::ReconnectPolicy)), within the call's deadline. With a
/// persistent session ([`session_expiry`](ClientOptions::session_expiry) in 5.0,
/// `clean_start(false)` in 3.1.1) it asks for its session back: unacknowledged
/// publishes are resent (so a QoS 1/2 `publish` in progress completes), and messages
/// published while it was away are delivered. When the server no longer has the
/// session, subscriptions are made again.
pub struct Client<D: Driver<Connection> = AnyDriver<Connection>> {
    inner: Rc<RefCell<Inner<D>>>,
}

/// A subscription to one or more topic filters: the messages whose topic they match.
/// Dropping it stops routing messages to it (the server subscription stays, for a
/// persistent session; [`unsubscribe`](Self::unsubscribe) ends it).
pub struct Subscription<D: Driver<Connection> = AnyDriver<Connection>> {
    inner: Rc<RefCell<Inner<D>>>,
    key: u64,
    filters: Vec<String>,
    granted: Vec<ReasonCode>,
}

impl Client<AnyDriver<Connection>> {
    /// Connects to `url` (`mqtt://[user[:password]@]host[:port]`) with default options,
    /// blocking until `CONNACK`.
    pub fn connect(url: &str) -> Result<Self, Error> {
        Self::connect_with(ClientOptions::from_url(url)?)
    }

    /// Connects with `options`, on the driver they name.
    pub fn connect_with(options: ClientOptions) -> Result<Self, Error> {
        Self::connect_with_driver(options.link.open_driver()?, options)
    }
}

impl<D: Driver<Connection>> Client<D> {
    /// Connects with `options` on a driver the caller built; `options.link.driver` is
    /// ignored.
    pub fn connect_with_driver(driver: D, options: ClientOptions) -> Result<Self, Error> {
        let inner = Inner::connect(driver, options)?;
        Ok(Self {
            inner: Rc::new(RefCell::new(inner)),
        })
    }

    // ---- getters ----

    /// The options it was created with.
    pub fn options(&self) -> ClientOptions {
        self.inner.borrow().proto.options.clone()
    }

    /// Whether a connection is up (as far as the client knows without I/O).
    pub fn is_connected(&self) -> bool {
        self.inner.borrow().is_live()
    }

    /// Connections made so far: 1 after connecting, one more per reconnect.
    pub fn connections(&self) -> u64 {
        self.inner.borrow().connections
    }

    /// Session Present of the last `CONNACK`: whether the server resumed a session.
    pub fn session_present(&self) -> bool {
        self.inner.borrow().proto.session_present
    }

    /// The identifier a 5.0 server assigned (when the options gave none).
    pub fn assigned_client_id(&self) -> Option<Bytes> {
        self.inner.borrow().proto.assigned_id.clone()
    }

    /// Received messages that matched no subscription handle (dropped).
    pub fn unrouted(&self) -> u64 {
        self.inner.borrow().proto.unrouted
    }

    // ---- publishing ----

    /// Publishes `payload` on `topic`. QoS 1/2: returns once acknowledged (within
    /// [`operation_timeout`](ClientOptions::operation_timeout), reconnects included).
    /// QoS 0: buffered until [`flush`](Self::flush) or a blocking call.
    ///
    /// # Errors
    /// [`Error::Refused`] for an invalid topic or what the server said it does not take
    /// (nothing sent); [`Error::Server`] for an error code in the acknowledgement;
    /// [`Error::Timeout`]; a connection error when it could not be re-established.
    pub fn publish(&mut self, topic: &str, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Result<(), Error> {
        self.publish_with(topic, payload, qos, retain, Properties::default())
    }

    /// [`publish`](Self::publish) with 5.0 properties (message expiry, content type,
    /// response topic, correlation data, user properties).
    pub fn publish_with(
        &mut self,
        topic: &str,
        payload: impl Into<Bytes>,
        qos: QoS,
        retain: bool,
        properties: Properties,
    ) -> Result<(), Error> {
        self.inner
            .borrow_mut()
            .publish(topic, payload.into(), qos, retain, properties)
    }

    /// Hands everything buffered to the kernel (reconnecting first if needed), within
    /// the operation timeout.
    pub fn flush(&mut self) -> Result<(), Error> {
        self.inner.borrow_mut().flush()
    }

    // ---- subscriptions ----

    /// Subscribes to `filter` (wildcards `+` and `#`; `$share/group/filter` for a shared
    /// subscription) with maximum QoS `qos`; returns once `SUBACK` granted it.
    ///
    /// # Errors
    /// [`Error::Server`] when the server refused it; as [`publish`](Self::publish)
    /// otherwise.
    pub fn subscribe(&mut self, filter: &str, qos: QoS) -> Result<Subscription<D>, Error> {
        self.subscribe_all(&[(filter, qos)])
    }

    /// Subscribes to several filters in one `SUBSCRIBE`, as one handle.
    pub fn subscribe_all(&mut self, filters: &[(&str, QoS)]) -> Result<Subscription<D>, Error> {
        let (key, granted) = self.inner.borrow_mut().subscribe(filters)?;
        Ok(Subscription {
            inner: Rc::clone(&self.inner),
            key,
            filters: filters.iter().map(|(f, _)| (*f).to_owned()).collect(),
            granted,
        })
    }

    /// Sends `DISCONNECT` (Normal Disconnection: no will) and closes the connection.
    /// A persistent session stays on the server for the next client with this id.
    pub fn close(self) -> Result<(), Error> {
        let result = self.inner.borrow_mut().close();
        result
    }

    /// Runs `f` on the driver, e.g. to run other sessions on it between calls.
    pub fn with_driver<T>(&mut self, f: impl FnOnce(&mut D) -> T) -> T {
        f(&mut self.inner.borrow_mut().driver)
    }
}

impl<D: Driver<Connection>> Subscription<D> {
    /// The filters it subscribed.
    pub fn filters(&self) -> &[String] {
        &self.filters
    }

    /// The server's `SUBACK` codes, one per filter (the granted QoS).
    pub fn granted(&self) -> &[ReasonCode] {
        &self.granted
    }

    /// The next message, waiting up to `timeout` (`Duration::ZERO`: only what already
    /// arrived, no reconnect). `Ok(None)` when none came in time.
    ///
    /// # Errors
    /// [`Error::SubscriptionClosed`] after [`unsubscribe`](Self::unsubscribe); a
    /// connection error when the connection could not be re-established.
    pub fn next_message(&mut self, timeout: Duration) -> Result<Option<Message>, Error> {
        self.inner.borrow_mut().next_message(self.key, timeout)
    }

    /// Unsubscribes (waits for `UNSUBACK`); queued messages are discarded.
    pub fn unsubscribe(self) -> Result<(), Error> {
        let result = self.inner.borrow_mut().unsubscribe(self.key);
        result
    }
}

impl<D: Driver<Connection>> Drop for Subscription<D> {
    fn drop(&mut self) {
        if let Ok(mut inner) = self.inner.try_borrow_mut() {
            inner.forget(self.key);
        }
    }
}

impl<D: Driver<Connection>> fmt::Debug for Subscription<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("filters", &self.filters)
            .field("granted", &self.granted)
            .finish_non_exhaustive()
    }
}

impl<D: Driver<Connection>> fmt::Debug for Client<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.inner.borrow();
        f.debug_struct("Client")
            .field("server", &inner.proto.options.server)
            .field("connected", &inner.is_live())
            .field("connections", &inner.connections)
            .finish_non_exhaustive()
    }
}
