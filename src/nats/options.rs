//! How a [`Client`](super::Client) connects: servers, credentials, driver, keepalive,
//! reconnect policy, buffers and per-subscription limits, from a URL or built by hand.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use monocoque_proto::nats::client::SubscriptionPolicy;

use crate::url::{decode_part, split_host_port, strip_scheme};

/// The port nats-server listens on for clients unless told otherwise.
pub const DEFAULT_PORT: u16 = 4222;

pub use crate::url::UrlError;

/// Credentials written into a server URL: `nats://user:password@host` or
/// `nats://token@host`. They apply when connecting to that server and override
/// [`ClientOptions::auth`].
#[derive(Clone, PartialEq, Eq)]
pub enum UrlAuth {
    /// `nats://token@host`.
    Token(String),
    /// `nats://user:password@host`.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
}

impl fmt::Debug for UrlAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UrlAuth::Token(_) => f.write_str("Token(<redacted>)"),
            UrlAuth::UserPassword { user, .. } => write!(f, "UserPassword {{ user: {user:?}, password: <redacted> }}"),
        }
    }
}

/// One server to connect to: from a URL, or from a later `INFO`'s `connect_urls`.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
    /// Credentials given in the URL, if any.
    pub auth: Option<UrlAuth>,
}

impl ServerAddr {
    /// `host:port`, no credentials.
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
            auth: None,
        }
    }

    /// `host:port` (IPv6 hosts in brackets), for connecting and for messages.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether `other` names the same host and port (credentials aside).
    pub fn same_place(&self, other: &ServerAddr) -> bool {
        self.port == other.port && self.host.eq_ignore_ascii_case(&other.host)
    }
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "nats://{}", self.address())
    }
}

impl fmt::Debug for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self)?;
        if let Some(auth) = &self.auth {
            write!(f, " ({auth:?})")?;
        }
        Ok(())
    }
}

impl FromStr for ServerAddr {
    type Err = UrlError;

    /// Parses one server: `nats://[user:password@|token@]host[:port]`; the scheme may be
    /// left out (`host:port`, as `connect_urls` carry them). User, password and token
    /// are percent-decoded; the port defaults to 4222.
    fn from_str(url: &str) -> Result<Self, Self::Err> {
        let url = url.trim();
        let rest = if let Some(rest) = strip_scheme(url, "nats") {
            rest
        } else if url.contains("://") {
            return Err(UrlError::Scheme {
                url: mask(url),
                expected: "nats",
            });
        } else {
            url
        };
        // A trailing `/` is harmless (`nats://host:4222/`); anything after it is not.
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if let Some(pos) = rest.find(['/', '?', '#']) {
            return Err(UrlError::Unsupported(rest[pos..].to_owned()));
        }
        let (userinfo, hostport) = match rest.rfind('@') {
            Some(pos) => (Some(&rest[..pos]), &rest[pos + 1..]),
            None => (None, rest),
        };
        let auth = match userinfo {
            None => None,
            Some(info) => match info.split_once(':') {
                Some((user, password)) => Some(UrlAuth::UserPassword {
                    user: decode_part(user, "user name")?,
                    password: decode_part(password, "password")?,
                }),
                None if info.is_empty() => None,
                None => Some(UrlAuth::Token(decode_part(info, "token")?)),
            },
        };
        let (host, port) = split_host_port(hostport, DEFAULT_PORT).map_err(|e| match e {
            UrlError::MissingHost(_) => UrlError::MissingHost(mask(url)),
            other => other,
        })?;
        Ok(Self { host, port, auth })
    }
}

/// Parses `url`, one server or several separated by commas
/// (`nats://a:4222,nats://b:4222`); blanks around each are ignored.
pub fn parse_servers(urls: &str) -> Result<Vec<ServerAddr>, UrlError> {
    let servers = urls
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::parse)
        .collect::<Result<Vec<ServerAddr>, UrlError>>()?;
    if servers.is_empty() {
        return Err(UrlError::Empty);
    }
    Ok(servers)
}

/// How the client proves who it is, unless a server URL carries its own credentials.
#[derive(Clone, Default, PartialEq, Eq)]
pub enum Auth {
    /// No credentials.
    #[default]
    None,
    /// `auth_token` in `CONNECT`.
    Token(String),
    /// `user` and `pass` in `CONNECT`.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// An NKey: the public key goes in `CONNECT` with the server nonce signed by the
    /// seed (`SU...`).
    NKey {
        /// The user's seed, in the `nkeys` text encoding.
        seed: String,
    },
    /// A user JWT plus the NKey seed that signs the nonce, as decentralized (operator
    /// mode) authentication wants.
    Jwt {
        /// The user JWT.
        jwt: String,
        /// The user's seed.
        seed: String,
    },
    /// A `.creds` file holding a user JWT and its seed (read at every connect, so a
    /// rotated file is picked up).
    CredsFile(PathBuf),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Token(_) => f.write_str("Token(<redacted>)"),
            Auth::UserPassword { user, .. } => write!(f, "UserPassword {{ user: {user:?}, password: <redacted> }}"),
            Auth::NKey { .. } => f.write_str("NKey { seed: <redacted> }"),
            Auth::Jwt { .. } => f.write_str("Jwt { jwt: <redacted>, seed: <redacted> }"),
            Auth::CredsFile(path) => write!(f, "CredsFile({path:?})"),
        }
    }
}

pub use crate::link_options::{ReconnectPolicy, TcpKeepalive};
pub use crate::LinkOptions;

/// Everything a [`Client`](super::Client) needs to connect and run.
///
/// ```
/// use std::time::Duration;
/// use monocoque::driver::DriverKind;
/// use monocoque::nats::{Auth, ClientOptions};
///
/// let options = ClientOptions::from_url("nats://a.example:4222, nats://b.example:4223")?
///     .driver(DriverKind::Mio)
///     .name("worker-1")
///     .auth(Auth::Token("s3cret".into()))
///     .ping_interval(Duration::from_secs(10));
/// assert_eq!(options.servers.len(), 2);
/// assert_eq!(options.servers[1].port, 4223);
/// # Ok::<(), monocoque::nats::UrlError>(())
/// ```
///
/// ## Reconnecting
///
/// After the connection is lost, the client cycles through every known server (those
/// configured, then those learned from `connect_urls`) by its
/// [`reconnect`](LinkOptions::reconnect) policy: two full rounds are separated by
/// `initial`, doubling up to `max`, each wait stretched by a random factor of up to
/// `jitter` (so a cluster's clients do not all come back at once); `max_attempts`
/// bounds the attempts of one reconnect (`None`: until it succeeds).
///
/// A reconnect runs inside the blocking calls, within each call's own deadline: a call
/// whose time runs out leaves it where it is (attempts made, the server to try next,
/// when the backoff allows the next attempt) and the next call continues it. It ends
/// when a server completes the handshake, or with
/// [`LinkError::Reconnect`](super::LinkError::Reconnect) once the attempts run out (the call
/// after that starts a new one). The policy is the chassis' own
/// ([`monocoque_proto::chassis::link`]), whose supervisor runs it.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Servers to connect to, tried in order; servers learned from `connect_urls` are
    /// added after them.
    pub servers: Vec<ServerAddr>,
    /// Driver, connect timeout (per server), TCP keepalive and reconnect policy (see
    /// [`ClientOptions`]' section on reconnecting); each has its builder method here.
    pub link: LinkOptions,
    /// The connection's name (shown by the server's monitoring).
    pub name: Option<String>,
    /// Credentials, unless the server's URL carries its own.
    pub auth: Auth,
    /// Ask the server to acknowledge every operation with `+OK`.
    pub verbose: bool,
    /// Ask the server for strict checks (subjects are validated, and refused with
    /// `-ERR`).
    pub pedantic: bool,
    /// Whether messages published on this connection come back to its own
    /// subscriptions.
    pub echo: bool,
    /// Send a `PING` after this long without one.
    pub ping_interval: Duration,
    /// Unanswered `PING`s after which the connection counts as dead.
    pub max_pings_out: u32,
    /// Whether to reconnect at all; without it a lost connection fails every call.
    pub allow_reconnect: bool,
    /// Most bytes of publishes kept while disconnected, replayed on the next connection;
    /// beyond it `publish` fails with [`Error::ReconnectBufferFull`](super::Error::ReconnectBufferFull).
    pub reconnect_buffer_size: usize,
    /// Default timeout of [`Client::request`](super::Client::request) callers that do not
    /// give one.
    pub request_timeout: Duration,
    /// Longest a blocking call without a timeout of its own waits:
    /// [`flush`](super::Client::flush), [`round_trip`](super::Client::round_trip),
    /// [`subscribe`](super::Client::subscribe), [`unsubscribe`](super::Client::unsubscribe)
    /// and a publish past the high-water mark
    /// ([`outgoing_buffer_size`](Self::outgoing_buffer_size)), reconnecting included.
    /// Past it they fail with [`Error::Timeout`](super::Error::Timeout) (a reconnect in
    /// progress continues in the next call). Default 10 s, as nats.go's `FlushTimeout`.
    pub operation_timeout: Duration,
    /// Most bytes buffered for sending before the kernel takes them; past it a publish
    /// waits for the kernel (a slow or stuck server slows the publisher instead of
    /// growing its memory).
    pub outgoing_buffer_size: usize,
    /// Buffered bytes past which a publish hands the buffer to the kernel itself, without
    /// waiting for it (a polling driver turn). Small enough to keep a publishing loop's
    /// buffer in cache; large enough that a syscall carries hundreds of messages.
    pub flush_threshold: usize,
    /// The client's own ceiling on one message (payload plus headers), whatever the
    /// server announces in `INFO`: the limit in force is the smaller of the two. Default
    /// 64 MiB; worst case per connection, one message of this size being received. A
    /// larger message is refused on its control line (the connection is replaced with
    /// [`Event::Disconnected`](super::Event::Disconnected) carrying
    /// `DecodeError::PayloadTooLarge`) before anything is reserved for it.
    pub max_payload: usize,
    /// Pending limits and slow-consumer policy of every new subscription (each can have
    /// its own with [`Client::subscribe_with`](super::Client::subscribe_with)).
    pub subscription_policy: SubscriptionPolicy,
    /// Most bytes of messages (payloads plus headers) queued across every subscription
    /// of the connection, whatever each one's own limits: past it new messages are
    /// dropped and reported as [`Event::SlowConsumer`](super::Event::SlowConsumer) (a
    /// [`Backpressure`](monocoque_proto::nats::client::SlowConsumerPolicy::Backpressure)
    /// subscription stops reading instead). Default 64 MiB; worst case per connection,
    /// this plus the subjects and bookkeeping of the queued messages (see
    /// [`ClientConfig::max_pending_bytes`](monocoque_proto::nats::client::ClientConfig::max_pending_bytes)).
    pub max_pending_bytes: usize,
    /// Seed of the random numbers behind jitter and inbox names (`None`: from the clock
    /// and the process id).
    pub seed: Option<u64>,
}

impl ClientOptions {
    /// Options for the given servers with every default.
    pub fn new(servers: Vec<ServerAddr>) -> Self {
        Self {
            servers,
            link: LinkOptions::default(),
            name: None,
            auth: Auth::None,
            verbose: false,
            pedantic: false,
            echo: true,
            ping_interval: Duration::from_secs(120),
            max_pings_out: 2,
            allow_reconnect: true,
            reconnect_buffer_size: 8 << 20,
            request_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(10),
            outgoing_buffer_size: 32 << 20,
            flush_threshold: 64 * 1024,
            max_payload: monocoque_proto::nats::client::ClientConfig::DEFAULT_MAX_PAYLOAD,
            subscription_policy: SubscriptionPolicy::default(),
            max_pending_bytes: monocoque_proto::nats::client::ClientConfig::DEFAULT_MAX_PENDING_BYTES,
            seed: None,
        }
    }

    /// Parses one server URL or several separated by commas; see [`ServerAddr`]'s
    /// `FromStr` for the form.
    pub fn from_url(urls: &str) -> Result<Self, UrlError> {
        Ok(Self::new(parse_servers(urls)?))
    }

    crate::link_options::link_builders!();

    crate::setters::setters! {
        /// Sets the connection name.
        name(name: impl Into<String>) => name = Some(name.into()),
        /// Sets the credentials.
        auth(auth: Auth),
        /// Sets verbose mode (`+OK` after every operation).
        verbose(verbose: bool),
        /// Sets pedantic mode (strict subject checks by the server).
        pedantic(pedantic: bool),
        /// Sets whether the connection receives its own messages.
        echo(echo: bool),
        /// Sets the keepalive `PING` interval.
        ping_interval(interval: Duration),
        /// Sets how many `PING`s may go unanswered before the connection counts as dead.
        max_pings_out(max: u32) => max_pings_out = max.max(1),
        /// Turns reconnection on or off.
        allow_reconnect(allow: bool),
        /// Sets the most bytes of publishes kept while disconnected.
        reconnect_buffer_size(bytes: usize),
        /// Sets [`outgoing_buffer_size`](Self::outgoing_buffer_size).
        outgoing_buffer_size(bytes: usize),
        /// Sets [`flush_threshold`](Self::flush_threshold).
        flush_threshold(bytes: usize),
        /// Sets the default request timeout.
        request_timeout(timeout: Duration),
        /// Sets [`operation_timeout`](Self::operation_timeout).
        operation_timeout(timeout: Duration),
        /// Sets the client's ceiling on one message's size (see
        /// [`max_payload`](Self::max_payload)).
        max_payload(max: usize),
        /// Sets the pending limits and slow-consumer policy of new subscriptions.
        subscription_policy(policy: SubscriptionPolicy),
        /// Sets [`max_pending_bytes`](Self::max_pending_bytes).
        max_pending_bytes(bytes: usize),
        /// Seeds the random numbers (jitter, inbox names), for reproducible runs.
        seed(seed: u64) => seed = Some(seed),
    }
}

/// The URL with its credentials replaced, for error messages.
fn mask(url: &str) -> String {
    let start = url.find("://").map_or(0, |p| p + 3);
    match url.rfind('@') {
        Some(at) if at >= start => format!("{}***{}", &url[..start], &url[at..]),
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(url: &str) -> ServerAddr {
        url.parse().unwrap()
    }

    #[test]
    fn forms_of_one_server() {
        let s = one("nats://127.0.0.1:4333");
        assert_eq!((s.host.as_str(), s.port, s.auth.clone()), ("127.0.0.1", 4333, None));
        assert_eq!(s.to_string(), "nats://127.0.0.1:4333");
        let s = one("NATS://demo.nats.io");
        assert_eq!((s.host.as_str(), s.port), ("demo.nats.io", DEFAULT_PORT));
        let s = one("localhost:5000");
        assert_eq!((s.host.as_str(), s.port), ("localhost", 5000));
        let s = one("localhost");
        assert_eq!(s.port, DEFAULT_PORT);
        let s = one("nats://h:7/");
        assert_eq!(s.port, 7);
        let s = one("[::1]:4222");
        assert_eq!((s.host.as_str(), s.address()), ("::1", "[::1]:4222".to_owned()));
        assert!(s.same_place(&ServerAddr::new("::1", 4222)));
        assert!(!s.same_place(&ServerAddr::new("::1", 4223)));
    }

    #[test]
    fn credentials_in_the_url() {
        let s = one("nats://alice:p%40ss:w@h:1");
        assert_eq!(
            s.auth,
            Some(UrlAuth::UserPassword {
                user: "alice".into(),
                password: "p@ss:w".into()
            })
        );
        let s = one("nats://s3cr%2Ft@h");
        assert_eq!(s.auth, Some(UrlAuth::Token("s3cr/t".into())));
        assert_eq!(one("nats://@h").auth, None);
        let shown = format!("{:?}", one("nats://alice:hunter2@h"));
        assert!(!shown.contains("hunter2") && shown.contains("alice"), "{shown}");
        let shown = format!("{:?}", one("nats://tok3n@h"));
        assert!(!shown.contains("tok3n"), "{shown}");
    }

    #[test]
    fn several_servers() {
        let servers = parse_servers("nats://a:1, nats://b:2 ,c:3,,").unwrap();
        let places: Vec<String> = servers.iter().map(ServerAddr::address).collect();
        assert_eq!(places, ["a:1", "b:2", "c:3"]);
        assert_eq!(parse_servers(" , ").unwrap_err(), UrlError::Empty);
        assert_eq!(parse_servers("").unwrap_err(), UrlError::Empty);
        assert!(matches!(
            parse_servers("nats://a:1,tls://b:2"),
            Err(UrlError::Scheme { .. })
        ));
        let o = ClientOptions::from_url("nats://a:1,nats://b:2").unwrap();
        assert_eq!(o.servers.len(), 2);
    }

    #[test]
    fn errors_are_typed() {
        let e = "tls://u:pw@h".parse::<ServerAddr>().unwrap_err();
        assert_eq!(
            e,
            UrlError::Scheme {
                url: "tls://***@h".into(),
                expected: "nats"
            }
        );
        assert!(!e.to_string().contains("pw"));
        assert!(matches!("ws://h".parse::<ServerAddr>(), Err(UrlError::Scheme { .. })));
        assert!(matches!("nats://".parse::<ServerAddr>(), Err(UrlError::MissingHost(_))));
        let e = "nats://u:secret@:4222".parse::<ServerAddr>().unwrap_err();
        assert!(matches!(e, UrlError::MissingHost(_)) && !e.to_string().contains("secret"));
        assert_eq!("nats://h:0".parse::<ServerAddr>(), Err(UrlError::Port("0".into())));
        assert_eq!(
            "nats://h:65536".parse::<ServerAddr>(),
            Err(UrlError::Port("65536".into()))
        );
        assert_eq!("nats://h:x".parse::<ServerAddr>(), Err(UrlError::Port("x".into())));
        assert_eq!("nats://[::1".parse::<ServerAddr>(), Err(UrlError::Ipv6));
        assert_eq!(
            "nats://h/sub".parse::<ServerAddr>(),
            Err(UrlError::Unsupported("/sub".into()))
        );
        assert_eq!(
            "nats://h?x=1".parse::<ServerAddr>(),
            Err(UrlError::Unsupported("?x=1".into()))
        );
        assert_eq!(
            "nats://u:%zz@h".parse::<ServerAddr>(),
            Err(UrlError::PercentEncoding("password"))
        );
        assert_eq!(
            "nats://%ff@h".parse::<ServerAddr>(),
            Err(UrlError::PercentEncoding("token"))
        );
    }

    #[test]
    fn backoff_with_jitter_stays_in_bounds() {
        let p = ReconnectPolicy {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(70),
            jitter: 0.5,
            max_attempts: Some(5),
        };
        let delays: Vec<_> = (0..6).map(|r| p.delay(r).as_millis()).collect();
        assert_eq!(delays, [0, 10, 20, 40, 70, 70]);
        assert_eq!(p.delay(u32::MAX), Duration::from_millis(70));
        assert_eq!(p.delay_with_jitter(2, 0.0), Duration::from_millis(20));
        let top = p.delay_with_jitter(2, 0.999_999);
        assert!(
            top > Duration::from_micros(29_990) && top < Duration::from_millis(30),
            "{top:?}"
        );
        assert_eq!(
            p.delay_with_jitter(3, 7.0),
            Duration::from_millis(60),
            "unit is clamped"
        );
        assert_eq!(p.delay_with_jitter(0, 0.9), Duration::ZERO);
        assert!(p.allows(4) && !p.allows(5));
        assert!(ReconnectPolicy {
            max_attempts: None,
            ..p
        }
        .allows(u32::MAX));
        assert!(ReconnectPolicy {
            max_attempts: Some(0),
            ..p
        }
        .allows(0));
    }

    #[test]
    fn debug_hides_secrets() {
        let o = ClientOptions::from_url("nats://h").unwrap().auth(Auth::NKey {
            seed: "SUAGMJH5XLGZKQQWAWKRZJIGMOU4HPFUYLXJMXOO5NLFEO2OOQJ5LPRDPM".into(),
        });
        let shown = format!("{o:?}");
        assert!(!shown.contains("SUAG"), "{shown}");
        for auth in [
            Auth::Token("tok3n".into()),
            Auth::UserPassword {
                user: "u".into(),
                password: "hunter2".into(),
            },
            Auth::Jwt {
                jwt: "eyJ0".into(),
                seed: "SUAG".into(),
            },
        ] {
            let shown = format!("{auth:?}");
            assert!(
                !shown.contains("tok3n") && !shown.contains("hunter2") && !shown.contains("eyJ0"),
                "{shown}"
            );
        }
    }

    #[test]
    fn builders() {
        let o = ClientOptions::from_url("h")
            .unwrap()
            .name("n")
            .verbose(true)
            .pedantic(true)
            .echo(false)
            .max_pings_out(0)
            .ping_interval(Duration::from_millis(5))
            .reconnect_buffer_size(10)
            .request_timeout(Duration::from_millis(7))
            .operation_timeout(Duration::from_millis(9))
            .max_pending_bytes(11)
            .allow_reconnect(false)
            .seed(3);
        assert_eq!(o.name.as_deref(), Some("n"));
        assert!(o.verbose && o.pedantic && !o.echo && !o.allow_reconnect);
        assert_eq!(o.max_pings_out, 1);
        assert_eq!(o.ping_interval, Duration::from_millis(5));
        assert_eq!((o.reconnect_buffer_size, o.seed), (10, Some(3)));
        assert_eq!(o.operation_timeout, Duration::from_millis(9));
        assert_eq!(o.max_pending_bytes, 11);
        let defaults = ClientOptions::from_url("h").unwrap();
        assert_eq!(defaults.operation_timeout, Duration::from_secs(10));
        assert_eq!(defaults.max_pending_bytes, 64 << 20);
    }
}
