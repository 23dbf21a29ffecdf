//! How a [`Client`](super::Client) connects: address, credentials, driver, protocol,
//! timeouts, limits and the reconnect policy, from a URL or built by hand.

use std::fmt;
use std::time::Duration;

use monocoque_proto::resp::{ConnectionConfig, DecoderConfig, Protocol};

use crate::url::{decode_part, split_host_port, strip_scheme};

/// The port Redis listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 6379;

pub use crate::link_options::{ReconnectPolicy, TcpKeepalive};
pub use crate::url::UrlError;
pub use crate::LinkOptions;

/// Everything a [`Client`](super::Client) needs to connect and run.
///
/// Start from [`from_url`](Self::from_url) (or [`new`](Self::new)) and adjust with the
/// builder methods:
///
/// ```
/// use std::time::Duration;
/// use monocoque::driver::DriverKind;
/// use monocoque::redis::ClientOptions;
///
/// let options = ClientOptions::from_url("redis://app:s%40cret@localhost:6380/2")?
///     .driver(DriverKind::Mio)
///     .client_name("worker-1")
///     .response_timeout(Some(Duration::from_secs(2)))
///     .max_bulk_len(64 << 20);
/// assert_eq!(options.host, "localhost");
/// assert_eq!(options.port, 6380);
/// assert_eq!(options.username.as_deref(), Some("app"));
/// assert_eq!(options.password.as_deref(), Some("s@cret"));
/// assert_eq!(options.database, 2);
/// # Ok::<(), monocoque::redis::UrlError>(())
/// ```
///
/// ## Reconnecting
///
/// After the connection is lost, the client reconnects by its
/// [`reconnect`](LinkOptions::reconnect) policy (here one server, so a round is one
/// attempt): the first attempt is made at once, each further one waits the next delay
/// (`initial`, doubling up to `max`; no jitter by default), at most `max_attempts`
/// attempts per round (`None`: until it succeeds). The wait is spent in the driver and
/// never outlasts the call's own deadline (its response timeout, or the timeout given
/// to `next_event`): a call whose deadline comes first fails with
/// [`LinkError::Reconnect`](super::LinkError::Reconnect) (or
/// [`Error::Timeout`](super::Error::Timeout) before any attempt failed) and the next
/// call goes on with the same round of attempts and delays, and with a handshake still
/// under way (which has its own `connect_timeout`). A call that exhausts the attempts
/// fails with [`LinkError::Reconnect`](super::LinkError::Reconnect); the next call starts a new
/// round.
#[derive(Clone)]
pub struct ClientOptions {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// ACL user name; only sent with a password (`None`: the `default` user).
    pub username: Option<String>,
    /// Password: `AUTH` (or `HELLO 3 AUTH`) is sent when set.
    pub password: Option<String>,
    /// Database selected after connecting (and after every reconnect).
    pub database: u32,
    /// Driver, connect timeout, TCP keepalive and reconnect policy (see
    /// [`ClientOptions`]' section on reconnecting); each has its builder method here.
    pub link: LinkOptions,
    /// `Resp3` (the default) sends `HELLO 3` and falls back to RESP2 when the server
    /// refuses it; `Resp2` never sends `HELLO`.
    pub protocol: Protocol,
    /// Name shown by `CLIENT LIST`.
    pub client_name: Option<String>,
    /// Longest wait for each reply, counted from when the request was handed to the
    /// connection (the clock is read once per batch: requests buffered between two
    /// driver turns count from the first of them). `None` waits forever. A reply half
    /// received at the deadline poisons the connection (the stream stalled mid-frame).
    pub response_timeout: Option<Duration>,
    /// Limits on replies (bulk length, aggregate length, nesting, line length); the
    /// defaults and the worst-case memory each allows per connection are on
    /// [`DecoderConfig`]'s fields (a reply over a limit fails with
    /// [`Error::Connection`](super::Error::Connection) before memory is reserved for it).
    pub decoder: DecoderConfig,
    /// Most requests on the wire at once; more can be buffered, they are sent as replies
    /// come back.
    pub max_pending: usize,
    /// High-water mark of encoded bytes the kernel has not taken yet.
    pub max_outgoing_bytes: usize,
    /// Most bytes of commands buffered but not yet handed to the connection (beyond
    /// `max_pending` or `max_outgoing_bytes`); over it `send_buffered` fails with
    /// [`Error::Backpressure`](super::Error::Backpressure).
    pub max_buffered_bytes: usize,
    /// Most bytes of pub/sub messages and other pushes queued for
    /// [`next_event`](super::Client::next_event); over it new ones are dropped and
    /// counted ([`Event::Lagged`](super::Event::Lagged)).
    pub max_event_bytes: usize,
    /// After this long without I/O, the first request of a batch is held back until a
    /// non-blocking turn of the driver has shown whether the server closed the
    /// connection meanwhile: if it did, the request goes to a new connection instead of
    /// failing. `Some(Duration::ZERO)` checks before every batch (one more syscall per
    /// batch); `None` never checks (a request encoded onto a connection the server
    /// already closed fails with [`Error::Connection`](super::Error::Connection)).
    pub idle_check: Option<Duration>,
    /// After this long with nothing received and no reply owed, the connection sends a
    /// `PING` of its own (its reply is never returned to any call). Default 30 s:
    /// while the client runs the driver (in a call, or waiting in `next_event`), an
    /// idle or subscribed connection to a frozen server is declared lost after at most
    /// this plus [`health_check_timeout`](Self::health_check_timeout). `None`: no
    /// pings.
    pub health_check_interval: Option<Duration>,
    /// The longest silence from the server while a reply is owed (a request's or the
    /// health check's `PING`): past it the connection is declared stale, every request
    /// on it fails with [`Error::Connection`](super::Error::Connection)`(`
    /// [`ConnectionError::Stale`](monocoque_proto::resp::ConnectionError::Stale)`)`,
    /// and the next call reconnects. Default 10 s. Blocking commands (`BLPOP`,
    /// `XREAD`, `WAIT`, ...) are exempt while they are the oldest on the wire; any other
    /// command that may legitimately run longer than this with the server silent (a
    /// long script, `DEBUG SLEEP`) needs a larger value. `None`: never stale (each
    /// request still has its response timeout).
    pub health_check_timeout: Option<Duration>,
}

/// The Redis client's reconnect policy unless told otherwise: at once, then 20 ms
/// doubling up to 2 s, no jitter (one server: there is no crowd of clients to spread
/// over a cluster), 8 attempts per round.
pub const DEFAULT_RECONNECT: ReconnectPolicy = ReconnectPolicy {
    initial: Duration::from_millis(20),
    max: Duration::from_secs(2),
    jitter: 0.0,
    max_attempts: Some(8),
};

impl ClientOptions {
    /// Options for `host:port` with every default: RESP3 with RESP2 fallback, the
    /// default driver (io_uring on Linux), 5 s connect timeout, 30 s response timeout.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        let defaults = ConnectionConfig::default();
        Self {
            host: host.into(),
            port,
            username: None,
            password: None,
            database: 0,
            link: LinkOptions {
                reconnect: DEFAULT_RECONNECT,
                ..LinkOptions::default()
            },
            protocol: Protocol::Resp3,
            client_name: None,
            response_timeout: Some(Duration::from_secs(30)),
            decoder: defaults.decoder,
            max_pending: defaults.max_pending,
            max_outgoing_bytes: defaults.max_outgoing_bytes,
            max_buffered_bytes: 1 << 30,
            max_event_bytes: 64 << 20,
            idle_check: Some(Duration::from_millis(100)),
            health_check_interval: Some(Duration::from_secs(30)),
            health_check_timeout: Some(Duration::from_secs(10)),
        }
    }

    /// Parses `redis://[[user]:password@]host[:port][/db]`.
    ///
    /// User and password are percent-decoded (`%40` is `@`); the port defaults to 6379
    /// and the database to 0. IPv6 hosts go in brackets: `redis://[::1]:6379`.
    /// `redis://:secret@host` sets only the password (the `default` user).
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let rest = strip_scheme(url, "redis").ok_or_else(|| UrlError::Scheme {
            url: mask(url),
            expected: "redis",
        })?;
        if let Some(pos) = rest.find(['?', '#']) {
            return Err(UrlError::Unsupported(rest[pos..].to_owned()));
        }
        let (authority, path) = match rest.find('/') {
            Some(pos) => (&rest[..pos], &rest[pos..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(pos) => (Some(&authority[..pos]), &authority[pos + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            None => (None, None),
            Some(info) => {
                let (user, pass) = match info.split_once(':') {
                    Some((u, p)) => (u, Some(p)),
                    None => (info, None),
                };
                let user = decode_part(user, "user name")?;
                let pass = pass.map(|p| decode_part(p, "password")).transpose()?;
                match pass {
                    // `redis://user@host`: a password with no user is the common
                    // `redis://password@host` form of older clients.
                    None if !user.is_empty() => (None, Some(user)),
                    None => (None, None),
                    Some(p) => ((!user.is_empty()).then_some(user), Some(p)),
                }
            }
        };
        let (host, port) = split_host_port(hostport, DEFAULT_PORT)?;
        let database = match path {
            "" | "/" => 0,
            p => p[1..]
                .parse::<u32>()
                .map_err(|_| UrlError::Database(p[1..].to_owned()))?,
        };
        let mut options = Self::new(host, port);
        options.username = username;
        options.password = password;
        options.database = database;
        Ok(options)
    }

    /// `host:port`, for connecting and for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Sets the ACL user and password.
    #[must_use]
    pub fn auth(mut self, username: Option<&str>, password: &str) -> Self {
        self.username = username.map(str::to_owned);
        self.password = Some(password.to_owned());
        self
    }

    crate::link_options::link_builders!();

    crate::setters::setters! {
        /// Sets the protocol: `Resp3` (HELLO 3, RESP2 fallback) or `Resp2`.
        protocol(protocol: Protocol),
        /// Sets the database selected on connect.
        database(database: u32),
        /// Sets the connection name (`CLIENT SETNAME`).
        client_name(name: impl Into<String>) => client_name = Some(name.into()),
        /// Sets the per-reply timeout (`None`: wait forever).
        response_timeout(timeout: Option<Duration>),
        /// Sets every decoder limit at once.
        decoder(decoder: DecoderConfig),
        /// Sets the longest bulk string accepted in a reply; a longer one poisons the
        /// connection before anything is allocated for it.
        max_bulk_len(len: usize) => decoder.max_bulk_len = len,
        /// Sets the most elements accepted in one reply aggregate.
        max_aggregate_len(len: usize) => decoder.max_aggregate_len = len,
        /// Sets the most requests on the wire at once.
        max_pending(max: usize) => max_pending = max.max(1),
        /// Sets the high-water mark of bytes not yet taken by the kernel.
        max_outgoing_bytes(max: usize),
        /// Sets the most bytes buffered beyond what the connection accepts.
        max_buffered_bytes(max: usize),
        /// Sets the most bytes of queued pub/sub messages and pushes.
        max_event_bytes(max: usize),
        /// Sets the idle time after which a batch first checks the connection is still up.
        idle_check(idle: Option<Duration>),
        /// Sets the idle time after which the connection sends its own `PING` (`None`: no
        /// pings).
        health_check_interval(interval: Option<Duration>),
        /// Sets the longest silence while a reply is owed before the connection is
        /// declared stale (`None`: never).
        health_check_timeout(timeout: Option<Duration>),
    }

    /// The sans-IO connection's configuration for these options.
    pub fn connection_config(&self) -> ConnectionConfig {
        ConnectionConfig {
            protocol: self.protocol,
            username: self.username.clone(),
            password: self.password.clone(),
            client_name: self.client_name.clone(),
            database: self.database,
            decoder: self.decoder.clone(),
            request_timeout: self.response_timeout,
            max_pending: self.max_pending,
            max_outgoing_bytes: self.max_outgoing_bytes,
            health_check_interval: self.health_check_interval,
            health_check_timeout: self.health_check_timeout,
        }
    }
}

/// Shows everything but the password.
impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("database", &self.database)
            .field("link", &self.link)
            .field("protocol", &self.protocol)
            .field("client_name", &self.client_name)
            .field("response_timeout", &self.response_timeout)
            .field("decoder", &self.decoder)
            .field("max_pending", &self.max_pending)
            .field("max_outgoing_bytes", &self.max_outgoing_bytes)
            .field("max_buffered_bytes", &self.max_buffered_bytes)
            .field("max_event_bytes", &self.max_event_bytes)
            .field("idle_check", &self.idle_check)
            .field("health_check_interval", &self.health_check_interval)
            .field("health_check_timeout", &self.health_check_timeout)
            .finish()
    }
}

/// The URL with whatever sits between `:` and `@` replaced, for error messages.
fn mask(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let authority = &url[scheme + 3..at];
            match authority.find(':') {
                Some(colon) => format!("{}:***{}", &url[..scheme + 3 + colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_url() {
        let o = ClientOptions::from_url("redis://alice:p%3Ass%40w0rd%25@db.example:6380/15").unwrap();
        assert_eq!(o.host, "db.example");
        assert_eq!(o.port, 6380);
        assert_eq!(o.username.as_deref(), Some("alice"));
        assert_eq!(o.password.as_deref(), Some("p:ss@w0rd%"));
        assert_eq!(o.database, 15);
        assert_eq!(o.address(), "db.example:6380");
    }

    #[test]
    fn defaults() {
        let o = ClientOptions::from_url("redis://localhost").unwrap();
        assert_eq!((o.host.as_str(), o.port, o.database), ("localhost", DEFAULT_PORT, 0));
        assert_eq!((o.username, o.password), (None, None));
        assert_eq!(o.protocol, Protocol::Resp3);
        assert_eq!(o.link.driver, crate::driver::DriverKind::default());
        let o = ClientOptions::from_url("REDIS://127.0.0.1:7000/").unwrap();
        assert_eq!((o.host.as_str(), o.port, o.database), ("127.0.0.1", 7000, 0));
        let o = ClientOptions::from_url("redis://h:/3").unwrap();
        assert_eq!((o.port, o.database), (DEFAULT_PORT, 3));
    }

    #[test]
    fn password_only_forms() {
        let o = ClientOptions::from_url("redis://:secret@h").unwrap();
        assert_eq!((o.username, o.password.as_deref()), (None, Some("secret")));
        let o = ClientOptions::from_url("redis://secret@h").unwrap();
        assert_eq!((o.username, o.password.as_deref()), (None, Some("secret")));
        // An `@` inside the password must be encoded, but the last `@` ends the userinfo.
        let o = ClientOptions::from_url("redis://u:a@b@h:1").unwrap();
        assert_eq!((o.password.as_deref(), o.host.as_str()), (Some("a@b"), "h"));
    }

    #[test]
    fn ipv6() {
        let o = ClientOptions::from_url("redis://[::1]:6390/1").unwrap();
        assert_eq!((o.host.as_str(), o.port, o.database), ("::1", 6390, 1));
        assert_eq!(o.address(), "[::1]:6390");
        let o = ClientOptions::from_url("redis://[fe80::1]").unwrap();
        assert_eq!((o.host.as_str(), o.port), ("fe80::1", DEFAULT_PORT));
        assert_eq!(ClientOptions::from_url("redis://[::1").unwrap_err(), UrlError::Ipv6);
        assert!(matches!(
            ClientOptions::from_url("redis://[::1]x").unwrap_err(),
            UrlError::Port(_)
        ));
    }

    #[test]
    fn errors_are_typed() {
        let err = ClientOptions::from_url("rediss://u:pw@h").unwrap_err();
        assert_eq!(
            err,
            UrlError::Scheme {
                url: "rediss://u:***@h".into(),
                expected: "redis"
            }
        );
        assert!(!err.to_string().contains("pw"));
        assert_eq!(
            ClientOptions::from_url("http://h").unwrap_err(),
            UrlError::Scheme {
                url: "http://h".into(),
                expected: "redis"
            }
        );
        assert_eq!(
            ClientOptions::from_url("redis://").unwrap_err(),
            UrlError::MissingHost(String::new())
        );
        assert_eq!(
            ClientOptions::from_url("redis://u:p@:1").unwrap_err(),
            UrlError::MissingHost(":1".into())
        );
        assert_eq!(
            ClientOptions::from_url("redis://h:70000").unwrap_err(),
            UrlError::Port("70000".into())
        );
        assert_eq!(
            ClientOptions::from_url("redis://h:0").unwrap_err(),
            UrlError::Port("0".into())
        );
        assert_eq!(
            ClientOptions::from_url("redis://h:x1").unwrap_err(),
            UrlError::Port("x1".into())
        );
        assert_eq!(
            ClientOptions::from_url("redis://h/db").unwrap_err(),
            UrlError::Database("db".into())
        );
        assert_eq!(
            ClientOptions::from_url("redis://h/1/2").unwrap_err(),
            UrlError::Database("1/2".into())
        );
        assert_eq!(
            ClientOptions::from_url("redis://h/-1").unwrap_err(),
            UrlError::Database("-1".into())
        );
        assert_eq!(
            ClientOptions::from_url("redis://u:%zz@h").unwrap_err(),
            UrlError::PercentEncoding("password")
        );
        assert_eq!(
            ClientOptions::from_url("redis://%ff:p@h").unwrap_err(),
            UrlError::PercentEncoding("user name")
        );
        assert_eq!(
            ClientOptions::from_url("redis://u:%4@h").unwrap_err(),
            UrlError::PercentEncoding("password")
        );
        assert_eq!(
            ClientOptions::from_url("redis://h?protocol=3").unwrap_err(),
            UrlError::Unsupported("?protocol=3".into())
        );
    }

    #[test]
    fn debug_hides_the_password() {
        let o = ClientOptions::from_url("redis://u:hunter2@h").unwrap();
        let shown = format!("{o:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"));
    }

    #[test]
    fn builders_reach_the_connection_config() {
        let o = ClientOptions::new("h", 1)
            .protocol(Protocol::Resp2)
            .auth(Some("bob"), "pw")
            .database(4)
            .client_name("n")
            .response_timeout(Some(Duration::from_millis(250)))
            .max_bulk_len(10)
            .max_aggregate_len(11)
            .max_pending(12)
            .max_outgoing_bytes(13);
        let c = o.connection_config();
        assert_eq!(c.protocol, Protocol::Resp2);
        assert_eq!(c.username.as_deref(), Some("bob"));
        assert_eq!(c.password.as_deref(), Some("pw"));
        assert_eq!(c.database, 4);
        assert_eq!(c.client_name.as_deref(), Some("n"));
        assert_eq!(c.request_timeout, Some(Duration::from_millis(250)));
        assert_eq!((c.decoder.max_bulk_len, c.decoder.max_aggregate_len), (10, 11));
        assert_eq!((c.max_pending, c.max_outgoing_bytes), (12, 13));
        assert_eq!(ClientOptions::new("h", 1).max_pending(0).max_pending, 1);
    }

    #[test]
    fn reconnects_by_its_own_default_policy() {
        let o = ClientOptions::new("h", 1);
        assert_eq!(o.link.reconnect, DEFAULT_RECONNECT);
        let delays: Vec<_> = (0..9).map(|a| o.link.reconnect.delay(a).as_millis()).collect();
        assert_eq!(delays, [0, 20, 40, 80, 160, 320, 640, 1280, 2000]);
        assert!(o.link.reconnect.allows(7) && !o.link.reconnect.allows(8));
        assert_eq!(o.link.tcp_keepalive, Some(TcpKeepalive::default()));
        let once = o.reconnect(ReconnectPolicy::once());
        assert!(once.link.reconnect.allows(0) && !once.link.reconnect.allows(1));
    }
}
