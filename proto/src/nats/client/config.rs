//! How a [`Connection`](super::Connection) connects, authenticates and bounds its queues.

use std::fmt;
use std::time::Duration;

use super::nkey::{Creds, CredsError, KeyPair, NKeyError};
use crate::nats::Limits;

/// Settings for one NATS client connection (and, through
/// [`Connection::resume`](super::Connection::resume), for the connections that replace
/// it after a reconnect).
///
/// ```
/// use std::time::Duration;
/// use monocoque_proto::nats::client::{Auth, ClientConfig};
/// let mut config = ClientConfig::default();
/// config.name = Some("worker-1".into());
/// config.auth = Auth::UserPassword { user: "u".into(), password: "secret".into() };
/// config.ping_interval = Duration::from_secs(30);
/// assert!(!config.verbose && config.echo);
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct ClientConfig {
    /// The connection's name, shown by the server's monitoring (`CONNECT` `name`).
    pub name: Option<String>,
    /// Credentials sent in `CONNECT`.
    pub auth: Auth,
    /// Ask the server to acknowledge every op with `+OK` (off by default: the
    /// acknowledgements are ignored, they only cost bandwidth).
    pub verbose: bool,
    /// Ask the server to check subjects strictly; violations come back as
    /// [`Event::ServerError`](super::Event::ServerError) and the connection continues.
    pub pedantic: bool,
    /// Whether this connection receives its own publishes on its subscriptions.
    pub echo: bool,
    /// Decoder limits. `max_payload` is replaced by the smaller of the server's `INFO`
    /// `max_payload` and [`max_payload`](Self::max_payload) once `INFO` arrives (and
    /// then also bounds what may be published). `max_control_line` (4 KiB) and
    /// `max_json_line` (64 KiB) bound what a line without its `\r\n` may cost: a server
    /// streaming an endless line is refused after that many bytes, plus one receive
    /// segment.
    pub limits: Limits,
    /// The client's own ceiling on a message's size (payload plus headers), whatever
    /// the server announces: the limit in force is the smaller of this and the
    /// server's `max_payload`. Default [`DEFAULT_MAX_PAYLOAD`](Self::DEFAULT_MAX_PAYLOAD), 64 MiB
    /// (nats-server refuses to be configured above it). Worst case per connection: one
    /// message of this size being received; a larger one announced is refused on its
    /// control line with
    /// [`DecodeError::PayloadTooLarge`](crate::nats::DecodeError::PayloadTooLarge),
    /// before anything is reserved, and the connection is replaced.
    pub max_payload: usize,
    /// How long from [`Connection::new`](super::Connection::new) (which the body calls
    /// before it opens the socket) until the handshake must be complete: `INFO`
    /// received, `CONNECT` + `PING` sent, `PONG` received.
    pub connect_timeout: Duration,
    /// A keepalive `PING` is sent this often once connected.
    pub ping_interval: Duration,
    /// The connection is poisoned with
    /// [`ConnectionError::StaleConnection`](super::ConnectionError::StaleConnection)
    /// when a keepalive `PING` is due while this many are still unanswered.
    pub max_pings_out: u32,
    /// The prefix of the request inbox (`<prefix>.<id>.*`).
    pub inbox_prefix: String,
    /// The inbox id; `None` derives a 22-character id from [`seed`](Self::seed).
    pub inbox_id: Option<String>,
    /// Seeds every random choice the connection makes (the inbox id). The body passes
    /// real randomness here; tests pass a constant.
    pub seed: u64,
    /// High-water mark of bytes encoded but not yet taken by the kernel (plus bytes held
    /// until the handshake completes). Publishes and requests are accepted while fewer
    /// bytes wait (so the one that crosses it is accepted whole, whatever its size);
    /// then they fail with [`SendError::Backpressure`](super::SendError::Backpressure):
    /// flush and retry. `SUB`, `UNSUB` and `PING` are never refused.
    pub max_outgoing_bytes: usize,
    /// Most bytes of unsent publishes carried from a lost connection into the next one
    /// ([`Connection::take_reconnect_state`](super::Connection::take_reconnect_state)),
    /// and the mark for publishes held before the handshake completes (accepted while
    /// fewer bytes are held, as with `max_outgoing_bytes`). Publishes past it are
    /// dropped (counted) when reconnecting, refused with backpressure while connecting
    /// and by [`ReconnectState::publish`](super::ReconnectState::publish) (a hard bound
    /// there) while disconnected.
    pub reconnect_buffer_bytes: usize,
    /// Most requests waiting for their reply at once.
    pub max_pending_requests: usize,
    /// Most bytes queued across every subscription of the connection (each message
    /// counted as [`SubscriptionPolicy::max_bytes`] counts it: payload plus headers),
    /// whatever each subscription's own limits allow. A message that does not fit is
    /// dropped and reported with [`Event::SlowConsumer`](super::Event::SlowConsumer), as
    /// over a subscription's own limit; a
    /// [`Backpressure`](SlowConsumerPolicy::Backpressure) subscription stops reading
    /// instead, until any subscription is drained (a message larger than the whole bound
    /// is dropped whatever the policy). Default
    /// [`DEFAULT_MAX_PENDING_BYTES`](Self::DEFAULT_MAX_PENDING_BYTES), 64 MiB. Worst case
    /// per connection: this many bytes of payloads and headers, plus, per queued
    /// message, its subject, reply and
    /// [`MESSAGE_OVERHEAD`](SubscriptionPolicy::MESSAGE_OVERHEAD) (bounded by each
    /// subscription's `max_messages`), plus the receive segments the payloads keep alive
    /// (see [`SubscriptionPolicy`]).
    pub max_pending_bytes: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            name: None,
            auth: Auth::None,
            verbose: false,
            pedantic: false,
            echo: true,
            limits: Limits::default(),
            max_payload: Self::DEFAULT_MAX_PAYLOAD,
            connect_timeout: Duration::from_secs(5),
            ping_interval: Duration::from_secs(120),
            max_pings_out: 2,
            inbox_prefix: "_INBOX".to_owned(),
            inbox_id: None,
            seed: 0,
            max_outgoing_bytes: 32 * 1024 * 1024,
            reconnect_buffer_bytes: 8 * 1024 * 1024,
            max_pending_requests: 65_536,
            max_pending_bytes: Self::DEFAULT_MAX_PENDING_BYTES,
        }
    }
}

impl ClientConfig {
    /// Default [`max_payload`](Self::max_payload): 64 MiB, the largest `max_payload`
    /// nats-server accepts in its configuration.
    pub const DEFAULT_MAX_PAYLOAD: usize = 64 * 1024 * 1024;

    /// Default [`max_pending_bytes`](Self::max_pending_bytes): 64 MiB across every
    /// subscription of a connection (nats.go's default for one subscription).
    pub const DEFAULT_MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;
}

/// Shows everything but secrets.
impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("name", &self.name)
            .field("auth", &self.auth)
            .field("verbose", &self.verbose)
            .field("pedantic", &self.pedantic)
            .field("echo", &self.echo)
            .field("limits", &self.limits)
            .field("max_payload", &self.max_payload)
            .field("connect_timeout", &self.connect_timeout)
            .field("ping_interval", &self.ping_interval)
            .field("max_pings_out", &self.max_pings_out)
            .field("inbox_prefix", &self.inbox_prefix)
            .field("inbox_id", &self.inbox_id)
            .field("seed", &self.seed)
            .field("max_outgoing_bytes", &self.max_outgoing_bytes)
            .field("reconnect_buffer_bytes", &self.reconnect_buffer_bytes)
            .field("max_pending_requests", &self.max_pending_requests)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .finish()
    }
}

/// Credentials for `CONNECT`.
#[derive(Clone, Default)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// `auth_token`.
    Token(String),
    /// `user` and `pass`.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// An NKey: `nkey` is the public key (`U...`), `sig` the signature of the server's
    /// nonce. Build it with [`Auth::nkey`].
    NKey(KeyPair),
    /// A user JWT and the NKey that signs the nonce (decentralised auth). Build it with
    /// [`Auth::from_creds`] or [`Auth::jwt`].
    Jwt {
        /// The user JWT, sent as `jwt`.
        jwt: String,
        /// The user's key pair.
        key: KeyPair,
    },
}

impl Auth {
    /// NKey authentication from a user seed (`SU...`, as `nk -gen user` prints it).
    ///
    /// # Errors
    /// [`NKeyError`] when the seed does not decode, fails its checksum or is not a user
    /// seed.
    pub fn nkey(seed: &str) -> Result<Self, NKeyError> {
        Ok(Auth::NKey(KeyPair::from_seed(seed)?))
    }

    /// JWT authentication from a JWT and the user seed that goes with it.
    ///
    /// # Errors
    /// As [`Auth::nkey`].
    pub fn jwt(jwt: impl Into<String>, seed: &str) -> Result<Self, NKeyError> {
        Ok(Auth::Jwt {
            jwt: jwt.into(),
            key: KeyPair::from_seed(seed)?,
        })
    }

    /// JWT authentication from the contents of a `.creds` file (the
    /// `-----BEGIN NATS USER JWT-----` and `-----BEGIN USER NKEY SEED-----` blocks that
    /// `nsc` writes).
    ///
    /// # Errors
    /// [`CredsError`] when a block is missing or the seed is invalid.
    pub fn from_creds(contents: &str) -> Result<Self, CredsError> {
        let creds = Creds::parse(contents)?;
        Ok(Auth::Jwt {
            key: KeyPair::from_seed(&creds.seed)?,
            jwt: creds.jwt,
        })
    }
}

/// Shows which method, never a secret (the NKey's public key is shown).
impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
            Auth::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"<redacted>")
                .finish(),
            Auth::NKey(key) => f.debug_tuple("NKey").field(&key.public_key()).finish(),
            Auth::Jwt { key, .. } => f
                .debug_struct("Jwt")
                .field("jwt", &"<redacted>")
                .field("nkey", &key.public_key())
                .finish(),
        }
    }
}

/// What a subscription does when its pending queue is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SlowConsumerPolicy {
    /// Drop the new message and report it with
    /// [`Event::SlowConsumer`](super::Event::SlowConsumer); the connection keeps reading.
    #[default]
    DropNew,
    /// Stop reading the socket ([`Connection::wants_read`](super::Connection::wants_read)
    /// turns false) until the application takes messages from this subscription. Every
    /// other subscription waits too: use it where losing a message is worse than
    /// stalling the connection.
    Backpressure,
}

/// How much a subscription may hold that the application has not taken yet, and what
/// happens past it.
///
/// What a queued message costs: `max_bytes` counts its payload and headers (as nats.go
/// does); its subject, reply subject (each at most a control line, 4 KiB) and
/// [`MESSAGE_OVERHEAD`](Self::MESSAGE_OVERHEAD) bytes (under 200) of bookkeeping come on top and
/// are bounded by `max_messages`. The payload is a zero-copy view into the receive
/// buffer it arrived in, so at worst a queued message also keeps the rest of that
/// buffer alive: one receive segment (io_uring: a 16 KiB provided buffer, which the
/// driver copies out of when its ring runs low; mio: its read chunk), shared by every
/// message that arrived in it. Worst case per subscription: `max_bytes` + `max_messages`
/// × (overhead + subject + reply) + one receive segment per queued message whose segment
/// no other live value shares; in practice messages share segments and the last term
/// is the size of the receive ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SubscriptionPolicy {
    /// Most messages pending (default 512 Ki, as nats.go).
    pub max_messages: usize,
    /// Most bytes pending, counted as above (default 64 MiB, as nats.go). This is a hard
    /// bound: a message larger than `max_bytes` is never queued, even on an empty queue;
    /// it is dropped and reported with [`Event::SlowConsumer`](super::Event::SlowConsumer)
    /// whatever [`on_full`](Self::on_full) says (waiting for room it can never have
    /// would stall the connection for good).
    pub max_bytes: usize,
    /// What happens when a message does not fit.
    pub on_full: SlowConsumerPolicy,
}

impl Default for SubscriptionPolicy {
    /// nats.go's defaults: 512 Ki messages, 64 MiB, drop new messages.
    fn default() -> Self {
        Self {
            max_messages: 512 * 1024,
            max_bytes: 64 * 1024 * 1024,
            on_full: SlowConsumerPolicy::DropNew,
        }
    }
}

// README and the docs above say the overhead is under 200 bytes.
const _: () = assert!(SubscriptionPolicy::MESSAGE_OVERHEAD < 200);

impl SubscriptionPolicy {
    /// Bytes a queued message costs on top of its subject, reply, headers and payload:
    /// the [`Message`](crate::nats::Message) itself in its queue slot (not counted in
    /// `max_bytes`; bounded by `max_messages`).
    pub const MESSAGE_OVERHEAD: usize = std::mem::size_of::<crate::nats::Message>();

    /// The default limits with the [`SlowConsumerPolicy::Backpressure`] policy.
    pub fn backpressure() -> Self {
        Self {
            on_full: SlowConsumerPolicy::Backpressure,
            ..Self::default()
        }
    }
}
