//! [`ClientOptions`]: the server, the session (version, client id, clean start, keep
//! alive, expiry, credentials, will), the limits, and the link (driver, connect
//! timeout, reconnect policy).

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use monocoque_proto::chassis::link::Endpoint;
use monocoque_proto::mqtt::client::ClientConfig;
use monocoque_proto::mqtt::{ProtocolVersion, Will};

use crate::url::{decode_part, split_host_port, strip_scheme, UrlError};
use crate::LinkOptions;

/// The MQTT port, used when a URL names none.
pub const DEFAULT_PORT: u16 = 1883;

/// Where the broker is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerAddr {
    /// Host name or IP literal.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl fmt::Display for ServerAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl Endpoint for ServerAddr {
    fn same_place(&self, other: &Self) -> bool {
        self == other
    }
}

/// How a [`Client`](super::Client) connects and what session it asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientOptions {
    /// The broker.
    pub server: ServerAddr,
    /// Driver, connect timeout, TCP keepalive, reconnect policy.
    pub link: LinkOptions,
    /// 3.1.1 or 5.0 (default 5.0).
    pub version: ProtocolVersion,
    /// The client identifier; empty lets the server assign one (5.0; kept for the
    /// reconnects). A persistent session needs one in 3.1.1.
    pub client_id: String,
    /// Clean Start / Clean Session of the first connection (default true). Reconnects
    /// ask for the session back when it is persistent.
    pub clean_start: bool,
    /// Keep Alive (whole seconds, default 60 s; zero: none).
    pub keep_alive: Duration,
    /// Session Expiry Interval in seconds (5.0; default 0: the session ends with the
    /// connection). 3.1.1 keeps the session when `clean_start` is false.
    pub session_expiry: u32,
    /// User name.
    pub username: Option<String>,
    /// Password.
    pub password: Option<Bytes>,
    /// The will message.
    pub will: Option<Will>,
    /// Receive Maximum we announce (5.0).
    pub receive_maximum: u16,
    /// Largest packet we accept.
    pub maximum_packet_size: u32,
    /// Topic aliases the server may use towards us (5.0).
    pub topic_alias_maximum: u16,
    /// Whether our publishes use topic aliases when the server allows them (5.0).
    pub use_topic_aliases: bool,
    /// Most received messages queued (across every subscription) before the
    /// connection stops reading.
    pub max_pending_messages: usize,
    /// Most bytes of publishes buffered before publishing waits for the kernel.
    pub max_outgoing_bytes: usize,
    /// How long calls without a timeout of their own may take (publishing with QoS 1/2
    /// until acknowledged, subscribing until `SUBACK`, flush, close), a reconnect
    /// included (default 10 s).
    pub operation_timeout: Duration,
    /// Whether a lost connection is re-established by the next call (default true).
    pub allow_reconnect: bool,
    /// Seed of the reconnect jitter, for reproducible runs.
    pub seed: Option<u64>,
}

impl ClientOptions {
    /// Options for `server` with the defaults.
    pub fn new(server: ServerAddr) -> Self {
        let c = ClientConfig::default();
        Self {
            server,
            link: LinkOptions::default(),
            version: ProtocolVersion::V5,
            client_id: String::new(),
            clean_start: true,
            keep_alive: Duration::from_secs(u64::from(c.keep_alive)),
            session_expiry: 0,
            username: None,
            password: None,
            will: None,
            receive_maximum: c.receive_maximum,
            maximum_packet_size: c.maximum_packet_size,
            topic_alias_maximum: c.topic_alias_maximum,
            use_topic_aliases: c.use_topic_aliases,
            max_pending_messages: c.max_pending_messages,
            max_outgoing_bytes: c.max_outgoing_bytes,
            operation_timeout: Duration::from_secs(10),
            allow_reconnect: true,
            seed: None,
        }
    }

    /// Parses `mqtt://[user[:password]@]host[:port]` (`tcp://` too; port 1883 by
    /// default).
    pub fn from_url(url: &str) -> Result<Self, UrlError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(UrlError::Empty);
        }
        let rest = strip_scheme(url, "mqtt")
            .or_else(|| strip_scheme(url, "tcp"))
            .ok_or_else(|| UrlError::Scheme {
                url: url.split('@').next_back().unwrap_or_default().to_owned(),
                expected: "mqtt",
            })?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if let Some(i) = rest.find(['/', '?', '#']) {
            return Err(UrlError::Unsupported(rest[i..].to_owned()));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, rest),
        };
        let (host, port) = split_host_port(hostport, DEFAULT_PORT)?;
        let mut options = Self::new(ServerAddr { host, port });
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            options.username = Some(decode_part(user, "user name")?);
            if let Some(p) = password {
                options.password = Some(Bytes::from(decode_part(p, "password")?));
            }
        }
        Ok(options)
    }

    crate::link_options::link_builders!();

    crate::setters::setters! {
        /// Sets the protocol version.
        version(version: ProtocolVersion),
        /// Sets the client identifier.
        client_id(id: impl Into<String>) => client_id = id.into(),
        /// Sets Clean Start of the first connection.
        clean_start(clean: bool),
        /// Sets the keep alive interval (whole seconds).
        keep_alive(interval: Duration),
        /// Sets the Session Expiry Interval (5.0), in seconds.
        session_expiry(seconds: u32),
        /// Sets the user name.
        username(user: Option<String>),
        /// Sets the password.
        password(password: Option<Bytes>),
        /// Sets the will message.
        will(will: Option<Will>),
        /// Sets the Receive Maximum we announce.
        receive_maximum(max: u16) => receive_maximum = max.max(1),
        /// Sets the largest packet we accept.
        maximum_packet_size(max: u32),
        /// Sets the Topic Alias Maximum we announce.
        topic_alias_maximum(max: u16),
        /// Turns outbound topic aliases on or off.
        use_topic_aliases(on: bool),
        /// Sets [`max_pending_messages`](Self::max_pending_messages).
        max_pending_messages(max: usize) => max_pending_messages = max.max(1),
        /// Sets [`operation_timeout`](Self::operation_timeout).
        operation_timeout(timeout: Duration),
        /// Turns reconnection on or off.
        allow_reconnect(allow: bool),
        /// Seeds the reconnect jitter.
        seed(seed: Option<u64>),
    }

    /// The session's configuration; `assigned` is the identifier a 5.0 server gave an
    /// empty one (reused, so a reconnect finds its session).
    pub(crate) fn config(&self, assigned: Option<&Bytes>) -> ClientConfig {
        let client_id = match assigned {
            Some(id) if self.client_id.is_empty() => id.clone(),
            _ => Bytes::from(self.client_id.clone()),
        };
        ClientConfig {
            version: self.version,
            client_id,
            clean_start: self.clean_start,
            keep_alive: u16::try_from(self.keep_alive.as_secs()).unwrap_or(u16::MAX),
            ping_timeout: None,
            session_expiry: self.session_expiry,
            receive_maximum: self.receive_maximum,
            maximum_packet_size: self.maximum_packet_size,
            topic_alias_maximum: self.topic_alias_maximum,
            use_topic_aliases: self.use_topic_aliases,
            username: self.username.clone().map(Bytes::from),
            password: self.password.clone(),
            will: self.will.clone(),
            connect_timeout: self.link.connect_timeout,
            close_linger: Duration::from_secs(1),
            max_outgoing_bytes: self.max_outgoing_bytes,
            max_pending_messages: self.max_pending_messages,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let o = ClientOptions::from_url("mqtt://bob:s%40cret@broker.local:1999").unwrap();
        assert_eq!(
            o.server,
            ServerAddr {
                host: "broker.local".into(),
                port: 1999
            }
        );
        assert_eq!(o.username.as_deref(), Some("bob"));
        assert_eq!(o.password.as_deref(), Some(&b"s@cret"[..]));
        let o = ClientOptions::from_url("tcp://127.0.0.1").unwrap();
        assert_eq!(o.server.port, DEFAULT_PORT);
        assert!(matches!(
            ClientOptions::from_url("nats://x"),
            Err(UrlError::Scheme { .. })
        ));
        assert!(matches!(
            ClientOptions::from_url("mqtt://x/a"),
            Err(UrlError::Unsupported(_))
        ));
        assert_eq!(ClientOptions::from_url(" "), Err(UrlError::Empty));
    }
}
