//! The NATS side of the shared client body ([`crate::link::Body`]): what the client
//! and its subscriptions keep besides the link, how a session is built (credentials,
//! a resumed [`ReconnectState`]), what its events become, and what a new connection
//! replays.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use monocoque_proto::chassis::link::Rng;
use monocoque_proto::nats::client::{
    self as sm, ClientConfig, Connection, ConnectionError, PingId, ReconnectState, RequestError, RequestId, SendError,
    SubscriptionEnd,
};
use monocoque_proto::nats::{Message, ServerInfo, Sid};

use super::event::MAX_QUEUED_EVENTS;
use super::options::{Auth, ServerAddr, UrlAuth};
use super::{ClientOptions, Error, Event};
use crate::link::{self, Cx, Protocol, TcpKeepalive};

/// The body of a NATS client: the shared link machinery over the [`Nats`] state.
pub(crate) type Inner<D> = link::Body<D, Nats>;

/// The current connection (its handshake deadline is a backstop: the session enforces
/// the connect timeout itself).
pub(crate) type Link = link::Link<ConnectionError>;

/// Everything the client and its subscriptions share, besides the link.
pub(crate) struct Nats {
    pub(crate) options: ClientOptions,
    /// What the last connection left for the next one (subscriptions, unsent publishes).
    pub(crate) carry: Option<ReconnectState>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) responses: HashMap<RequestId, Result<Message, RequestError>>,
    pub(crate) pongs: HashSet<PingId>,
    /// Subscriptions that ended on their own.
    pub(crate) ended: HashMap<Sid, SubscriptionEnd>,
    /// Subscriptions the application unsubscribed.
    pub(crate) unsubscribed: HashSet<Sid>,
    /// Messages dropped per subscription (slow consumer), in all.
    pub(crate) dropped: HashMap<Sid, u64>,
    /// Subscriptions dropped while disconnected: unsubscribed on the next connection.
    pub(crate) orphans: Vec<Sid>,
    pub(crate) info: Option<ServerInfo>,
    /// Outgoing bytes at which the next publish hands the buffer to the kernel without
    /// waiting ([`ClientOptions::flush_threshold`] past what was left after the last
    /// turn), so a publishing loop sends as it goes and never rereads cold memory.
    pub(crate) auto_flush_at: usize,
}

impl Nats {
    /// The state of a client with `options`, before its first connection.
    pub(crate) fn new(options: ClientOptions) -> Self {
        Self {
            auto_flush_at: options.flush_threshold,
            options,
            carry: None,
            events: VecDeque::new(),
            responses: HashMap::new(),
            pongs: HashSet::new(),
            ended: HashMap::new(),
            unsubscribed: HashSet::new(),
            dropped: HashMap::new(),
            orphans: Vec::new(),
            info: None,
        }
    }

    /// Queues an event for [`next_event`](super::Client::next_event), dropping the
    /// oldest past [`MAX_QUEUED_EVENTS`].
    pub(crate) fn push_event(&mut self, event: Event) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

impl Protocol for Nats {
    type Session = Connection;
    type Server = ServerAddr;
    type Lost = ConnectionError;
    type State = ();
    type Error = Error;

    fn address(&self, server: &ServerAddr) -> (String, u16) {
        (server.host.clone(), server.port)
    }

    fn connect_timeout(&self) -> Duration {
        self.options.link.connect_timeout
    }

    fn keepalive(&self) -> Option<TcpKeepalive> {
        self.options.link.tcp_keepalive
    }

    fn handshake_grace(&self) -> Duration {
        Duration::from_secs(1)
    }

    /// A fresh session, or one resuming what the last connection left.
    fn session(&mut self, server: &ServerAddr, rng: &mut Rng, now: Instant) -> Result<Connection, Error> {
        let config = config_for(&self.options, rng, server)?;
        Ok(match self.carry.take() {
            Some(state) => Connection::resume(config, state, now),
            None => Connection::new(config, now),
        })
    }

    /// What a failed connect carried goes into the next one.
    fn salvage(&mut self, mut session: Connection) {
        self.carry = Some(session.take_reconnect_state());
    }

    fn server_name(&self, server: &ServerAddr) -> String {
        server.address()
    }

    /// Subscriptions dropped while disconnected are unsubscribed, queued until the
    /// handshake completes like the resubscriptions.
    fn started(&mut self, session: &mut Connection, _: &mut Link) {
        for sid in self.orphans.drain(..) {
            let _ = session.unsubscribe(&sid, None);
        }
    }

    fn on_event(&mut self, cx: &mut Cx<'_, Self>, event: sm::Event) {
        match event {
            sm::Event::Connected { info } => {
                let Some(connections) = cx.up() else { return };
                self.info = Some(*info);
                if connections > 1 {
                    let servers = cx.supervisor.servers();
                    let server = servers.get(cx.supervisor.current());
                    let server = server.map(ServerAddr::address).unwrap_or_default();
                    self.push_event(Event::Reconnected { server });
                }
            }
            sm::Event::Messages { .. } => {}
            sm::Event::SlowConsumer { sid, dropped } => {
                *self.dropped.entry(sid.clone()).or_default() += dropped;
                self.push_event(Event::SlowConsumer { sid, dropped });
            }
            sm::Event::SubscriptionEnded { sid, reason } => {
                self.ended.insert(sid.clone(), reason.clone());
                self.push_event(Event::SubscriptionEnded { sid, reason });
            }
            sm::Event::Response { id, message } => {
                self.responses.insert(id, Ok(message));
            }
            sm::Event::RequestFailed { id, error } => {
                self.responses.insert(id, Err(error));
            }
            sm::Event::Pong { id } => {
                self.pongs.insert(id);
            }
            sm::Event::ServerError(e) => self.push_event(Event::ServerError(e)),
            sm::Event::ServersDiscovered { added } => {
                for server in &added {
                    let first = cx.supervisor.servers().first();
                    if let Some(server) = super::pool::discovered(server, first) {
                        cx.supervisor.add(server);
                    }
                }
                self.push_event(Event::ServersDiscovered(added));
            }
            sm::Event::LameDuck => self.push_event(Event::LameDuck),
            sm::Event::Poisoned(error) => cx.kill(error),
        }
    }

    link::losses!(Connection, lost: ConnectionError, error: Error);

    fn refused(error: &Error) -> bool {
        matches!(error, Error::Rejected(_))
    }

    /// Keeps what the next connection carries (subscriptions, unsent publishes); the
    /// requests and pings on it are over (their failures were reported as events).
    fn buried(&mut self, link: Link, session: Option<Connection>, lost: &ConnectionError) {
        if let Some(mut session) = session {
            self.carry = Some(session.take_reconnect_state());
        }
        self.pongs.clear();
        if link.ready {
            self.push_event(Event::Disconnected(lost.clone()));
        }
        let dropped = self.carry.as_ref().map_or(0, ReconnectState::dropped_publishes);
        if dropped > 0 {
            self.push_event(Event::PublishesDropped { count: dropped });
        }
    }

    fn driver_lost(_: &Error) -> ConnectionError {
        ConnectionError::Closed
    }
}

link::retrying!(Nats, session: Connection, send: SendError, backpressure: SendError::Backpressure(_), lost: ConnectionError, error: Error);

/// The session's configuration for `server`: its URL's credentials, else the
/// options' (a `.creds` file is read now, so a rotated file is picked up).
fn config_for(o: &ClientOptions, rng: &mut Rng, server: &ServerAddr) -> Result<ClientConfig, Error> {
    let auth = match &server.auth {
        Some(UrlAuth::Token(token)) => sm::Auth::Token(token.clone()),
        Some(UrlAuth::UserPassword { user, password }) => sm::Auth::UserPassword {
            user: user.clone(),
            password: password.clone(),
        },
        None => match &o.auth {
            Auth::None => sm::Auth::None,
            Auth::Token(token) => sm::Auth::Token(token.clone()),
            Auth::UserPassword { user, password } => sm::Auth::UserPassword {
                user: user.clone(),
                password: password.clone(),
            },
            Auth::NKey { seed } => sm::Auth::nkey(seed)?,
            Auth::Jwt { jwt, seed } => sm::Auth::jwt(jwt.clone(), seed)?,
            Auth::CredsFile(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| Error::CredsFile {
                    path: path.display().to_string(),
                    source: Arc::new(e),
                })?;
                sm::Auth::from_creds(&text)?
            }
        },
    };
    Ok(ClientConfig {
        name: o.name.clone(),
        auth,
        verbose: o.verbose,
        pedantic: o.pedantic,
        echo: o.echo,
        connect_timeout: o.link.connect_timeout,
        ping_interval: o.ping_interval,
        max_pings_out: o.max_pings_out,
        seed: rng.next_u64(),
        reconnect_buffer_bytes: o.reconnect_buffer_size,
        max_outgoing_bytes: o.outgoing_buffer_size,
        max_payload: o.max_payload,
        max_pending_bytes: o.max_pending_bytes,
        ..ClientConfig::default()
    })
}
