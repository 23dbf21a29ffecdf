//! The MQTT side of the shared client body ([`crate::link::Body`]): what the client
//! and its subscriptions keep besides the link, how a session is built (a resumed
//! [`ReconnectState`] and the identifier the server assigned), and what its events
//! become.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use monocoque_proto::chassis::link::Rng;
use monocoque_proto::mqtt::client::{
    self as sm, Connection, ConnectionError, Message, PublishId, ReconnectState, RequestId, SendError,
};
use monocoque_proto::mqtt::{topic_matches, ReasonCode};

use super::options::ServerAddr;
use super::{ClientOptions, Error};
use crate::link::{self, Cx, Protocol, TcpKeepalive};

/// The body of an MQTT client: the shared link machinery over the [`Mqtt`] state.
pub(crate) type Inner<D> = link::Body<D, Mqtt>;

/// The current connection (the session enforces the connect timeout itself).
pub(crate) type Link = link::Link<ConnectionError>;

/// A subscription handle's filters and the messages routed to it.
#[derive(Debug, Default)]
pub(crate) struct Route {
    /// The filters it subscribed (a shared subscription's `$share/group/` removed).
    pub(crate) filters: Vec<Bytes>,
    /// The filters as subscribed (what `UNSUBSCRIBE` names).
    pub(crate) subscribed: Vec<Bytes>,
    pub(crate) queue: VecDeque<Message>,
    pub(crate) closed: bool,
}

/// Everything the client and its subscriptions share, besides the link.
pub(crate) struct Mqtt {
    pub(crate) options: ClientOptions,
    /// What the last connection left for the next one (the session state).
    pub(crate) carry: Option<ReconnectState>,
    /// The identifier a 5.0 server assigned to an empty one.
    pub(crate) assigned_id: Option<Bytes>,
    /// Session Present of the last `CONNACK`.
    pub(crate) session_present: bool,
    /// Completed publishes a call waits for.
    pub(crate) published: HashMap<PublishId, Result<(), ReasonCode>>,
    /// Publishes whose call gave up waiting: their completion is dropped.
    pub(crate) abandoned: HashSet<PublishId>,
    /// Acknowledged (un)subscriptions a call waits for.
    pub(crate) acks: HashMap<RequestId, Vec<ReasonCode>>,
    /// Subscription handles, by key.
    pub(crate) routes: HashMap<u64, Route>,
    pub(crate) last_route: u64,
    /// Messages in every route's queue.
    pub(crate) routed: usize,
    /// Messages that matched no subscription handle.
    pub(crate) unrouted: u64,
    /// Connections lost so far.
    pub(crate) disconnections: u64,
}

impl Mqtt {
    /// The state of a client with `options`, before its first connection.
    pub(crate) fn new(options: ClientOptions) -> Self {
        Self {
            options,
            carry: None,
            assigned_id: None,
            session_present: false,
            published: HashMap::new(),
            abandoned: HashSet::new(),
            acks: HashMap::new(),
            routes: HashMap::new(),
            last_route: 0,
            routed: 0,
            unrouted: 0,
            disconnections: 0,
        }
    }

    /// Moves messages from `session` into the handles' queues while they hold fewer
    /// than [`ClientOptions::max_pending_messages`] in all (past it the session
    /// stops reading: the server's window throttles it).
    pub(crate) fn route(&mut self, session: &mut Connection) {
        while self.routed < self.options.max_pending_messages {
            let Some(message) = session.next_message() else { return };
            let mut matched = false;
            for route in self.routes.values_mut().filter(|r| !r.closed) {
                if route.filters.iter().any(|f| topic_matches(f, &message.topic)) {
                    route.queue.push_back(message.clone());
                    self.routed += 1;
                    matched = true;
                }
            }
            if !matched {
                self.unrouted += 1;
            }
        }
    }
}

/// The seed of the reconnect jitter: `seed`, or one from the clock and the process id.
pub(crate) fn seed(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15
    })
}

/// A filter as it matches topics: a shared subscription's `$share/group/` removed.
pub(crate) fn match_filter(filter: &str) -> Bytes {
    let shared = filter
        .strip_prefix("$share/")
        .and_then(|rest| rest.split_once('/'))
        .map(|(_, f)| f);
    Bytes::copy_from_slice(shared.unwrap_or(filter).as_bytes())
}

impl Protocol for Mqtt {
    type Session = Connection;
    type Server = ServerAddr;
    type Lost = ConnectionError;
    type State = ();
    type Error = Error;

    fn address(&self, server: &ServerAddr) -> (String, u16) {
        (server.host.clone(), server.port)
    }

    fn server_name(&self, server: &ServerAddr) -> String {
        server.to_string()
    }

    fn connect_timeout(&self) -> Duration {
        self.options.link.connect_timeout
    }

    fn handshake_grace(&self) -> Duration {
        Duration::from_secs(1)
    }

    fn keepalive(&self) -> Option<TcpKeepalive> {
        self.options.link.tcp_keepalive
    }

    /// A fresh session, or one resuming what the last connection left.
    fn session(&mut self, _: &ServerAddr, _: &mut Rng, now: Instant) -> Result<Connection, Error> {
        let config = self.options.config(self.assigned_id.as_ref());
        Ok(match self.carry.take() {
            Some(state) => Connection::resume(config, state, now),
            None => Connection::new(config, now),
        })
    }

    fn salvage(&mut self, mut session: Connection) {
        self.carry = Some(session.take_reconnect_state());
    }

    fn on_event(&mut self, cx: &mut Cx<'_, Self>, event: sm::Event) {
        match event {
            sm::Event::Connected {
                session_present,
                assigned_client_id,
            } => {
                if cx.up().is_none() {
                    return;
                }
                self.session_present = session_present;
                if assigned_client_id.is_some() {
                    self.assigned_id = assigned_client_id;
                }
            }
            sm::Event::Messages => {}
            sm::Event::Published { id, result } => {
                if !self.abandoned.remove(&id) {
                    self.published.insert(id, result);
                }
            }
            sm::Event::Subscribed { id, codes } | sm::Event::Unsubscribed { id, codes } => {
                self.acks.insert(id, codes);
            }
            sm::Event::Poisoned(error) => cx.kill(error),
        }
    }

    link::losses!(Connection, lost: ConnectionError, error: Error);

    /// Credentials or an identity the server refused: not tried again.
    fn refused(error: &Error) -> bool {
        matches!(
            error,
            Error::Rejected(ConnectionError::Refused {
                code: ReasonCode::BadUserNameOrPassword
                    | ReasonCode::NotAuthorized
                    | ReasonCode::ClientIdentifierNotValid
                    | ReasonCode::Banned
                    | ReasonCode::BadAuthenticationMethod
                    | ReasonCode::UnsupportedProtocolVersion,
                ..
            })
        )
    }

    /// Keeps the session state (unacknowledged publishes, subscriptions, queued
    /// messages) for the next connection.
    fn buried(&mut self, link: Link, session: Option<Connection>, _: &ConnectionError) {
        if let Some(mut session) = session {
            self.carry = Some(session.take_reconnect_state());
        }
        if link.ready {
            self.disconnections += 1;
        }
    }

    fn driver_lost(_: &Error) -> ConnectionError {
        ConnectionError::Closed
    }
}

link::retrying!(Mqtt, session: Connection, send: SendError, backpressure: SendError::Backpressure { .. }, lost: ConnectionError, error: Error);
