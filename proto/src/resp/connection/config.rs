//! How a [`Connection`](super::Connection) connects and what bounds it.

use std::fmt;
use std::time::Duration;

use crate::resp::{DecoderConfig, Protocol};

/// Settings for one Redis client connection.
///
/// ```
/// use std::time::Duration;
/// use monocoque_proto::resp::{ConnectionConfig, Protocol};
/// let mut config = ConnectionConfig::default();
/// config.password = Some("secret".into());
/// config.client_name = Some("worker-1".into());
/// config.database = 2;
/// config.request_timeout = Some(Duration::from_secs(5));
/// assert_eq!(config.protocol, Protocol::Resp3);
/// assert!(!format!("{config:?}").contains("secret"));
/// ```
#[derive(Clone)]
pub struct ConnectionConfig {
    /// The protocol to ask for. `Resp3` (the default) sends `HELLO 3`, carrying `AUTH`
    /// and `SETNAME`, and falls back to RESP2 (`AUTH`, `CLIENT SETNAME`) when the
    /// server refuses it. `Resp2` sends no `HELLO`.
    pub protocol: Protocol,
    /// The ACL user (Redis 6+). Only used with a password; `None` is the `default` user.
    pub username: Option<String>,
    /// The password: `AUTH` (or `HELLO ... AUTH`) is sent when it is set.
    pub password: Option<String>,
    /// The connection's name, as `CLIENT LIST` shows it.
    pub client_name: Option<String>,
    /// The database to `SELECT` after authenticating; 0 sends nothing.
    pub database: u32,
    /// Decoder limits for replies. Its `protocol` is ignored: the handshake decides.
    pub decoder: DecoderConfig,
    /// How long a request may wait for its reply, from the moment it was sent
    /// (buffered). `None` (the default) waits forever. It applies to the handshake too.
    pub request_timeout: Option<Duration>,
    /// Most requests waiting for replies at once (a transaction counts once).
    pub max_pending: usize,
    /// High-water mark of bytes encoded but not yet taken by the kernel (the transmit
    /// arena plus commands held during the handshake). Over it, sends fail with
    /// backpressure; when nothing is waiting, one command of any size is accepted.
    pub max_outgoing_bytes: usize,
    /// After this long with nothing received and no reply owed, the connection sends a
    /// `PING` of its own (its reply is consumed internally, never reported), so a
    /// frozen or vanished server is noticed on an idle connection too. `None` (the
    /// default here; the blocking client turns it on) never pings.
    pub health_check_interval: Option<Duration>,
    /// While a reply is owed (a request's or the health check's), the longest silence
    /// from the server: no byte received (and no outgoing byte taken by the kernel)
    /// for this long poisons the connection with
    /// [`ConnectionError::Stale`](super::ConnectionError::Stale). Blocking commands
    /// (`BLPOP`, `XREAD`, `WAIT`, ...) are exempt while they are the oldest request:
    /// their silence is expected. `None` (the default here) never declares it stale.
    pub health_check_timeout: Option<Duration>,
}

impl Default for ConnectionConfig {
    fn default() -> Self {
        Self {
            protocol: Protocol::Resp3,
            username: None,
            password: None,
            client_name: None,
            database: 0,
            decoder: DecoderConfig::default(),
            request_timeout: None,
            max_pending: 65_536,
            max_outgoing_bytes: 16 * 1024 * 1024,
            health_check_interval: None,
            health_check_timeout: None,
        }
    }
}

/// Shows everything but the password.
impl fmt::Debug for ConnectionConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionConfig")
            .field("protocol", &self.protocol)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("client_name", &self.client_name)
            .field("database", &self.database)
            .field("decoder", &self.decoder)
            .field("request_timeout", &self.request_timeout)
            .field("max_pending", &self.max_pending)
            .field("max_outgoing_bytes", &self.max_outgoing_bytes)
            .field("health_check_interval", &self.health_check_interval)
            .field("health_check_timeout", &self.health_check_timeout)
            .finish()
    }
}
