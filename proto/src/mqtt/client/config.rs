//! [`ClientConfig`]: what a client connection announces in `CONNECT` and the limits it
//! keeps, all bounded by default.

use std::time::Duration;

use bytes::Bytes;

use crate::mqtt::{ProtocolVersion, Will, DEFAULT_MAX_PACKET_SIZE};

/// How a client connection behaves: the `CONNECT` it sends and its own limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// 3.1.1 or 5.0 (3.1 is accepted too: the 3.1.1 rules apply).
    pub version: ProtocolVersion,
    /// The client identifier; empty asks the server to assign one (5.0 reports it in
    /// [`Event::Connected`](super::Event::Connected)).
    pub client_id: Bytes,
    /// Clean Start (5.0) / Clean Session (3.1.1) of the first connection. A resumed
    /// connection asks for its session back (see [`Connection::resume`](super::Connection::resume)).
    pub clean_start: bool,
    /// Keep Alive in seconds (0: none). A `PINGREQ` goes out when nothing was sent for
    /// this long; 5.0's Server Keep Alive replaces it.
    pub keep_alive: u16,
    /// How long a `PINGREQ` may go unanswered (and how long any packet may take to
    /// arrive once one is due) before the connection is called dead; `None`: the keep
    /// alive interval itself.
    pub ping_timeout: Option<Duration>,
    /// Session Expiry Interval in seconds (5.0; `u32::MAX` never expires). For 3.1.1 a
    /// session persists when `clean_start` is false.
    pub session_expiry: u32,
    /// Receive Maximum we announce (5.0): QoS 1/2 messages the server may have
    /// unacknowledged towards us.
    pub receive_maximum: u16,
    /// Largest packet we accept (5.0 announces it; enforced from the fixed header).
    pub maximum_packet_size: u32,
    /// Topic Alias Maximum we announce (5.0): aliases the server may use towards us.
    pub topic_alias_maximum: u16,
    /// Whether our PUBLISHes use topic aliases when the server allows them (5.0).
    pub use_topic_aliases: bool,
    /// User name, if any.
    pub username: Option<Bytes>,
    /// Password, if any.
    pub password: Option<Bytes>,
    /// The will message, if any.
    pub will: Option<Will>,
    /// How long the server may take to answer `CONNECT`.
    pub connect_timeout: Duration,
    /// How long, after our `DISCONNECT`, we wait for the server to close its end before
    /// closing ours.
    pub close_linger: Duration,
    /// Most bytes of encoded output held (waiting for the kernel or for the window);
    /// past it, publishing fails with backpressure.
    pub max_outgoing_bytes: usize,
    /// Most received messages queued for the application; past it the connection stops
    /// reading (the server holds the rest).
    pub max_pending_messages: usize,
}

impl Default for ClientConfig {
    /// 5.0, an empty client id (assigned), clean start, 60 s keep alive, no session
    /// expiry, receive maximum 65535, the codec's default maximum packet size, 16
    /// inbound topic aliases, outbound aliases on, a 10 s connect timeout, a 1 s linger after `DISCONNECT`, 8 MiB of
    /// output and 65536 queued messages.
    fn default() -> Self {
        Self {
            version: ProtocolVersion::V5,
            client_id: Bytes::new(),
            clean_start: true,
            keep_alive: 60,
            ping_timeout: None,
            session_expiry: 0,
            receive_maximum: u16::MAX,
            maximum_packet_size: DEFAULT_MAX_PACKET_SIZE,
            topic_alias_maximum: 16,
            use_topic_aliases: true,
            username: None,
            password: None,
            will: None,
            connect_timeout: Duration::from_secs(10),
            close_linger: Duration::from_secs(1),
            max_outgoing_bytes: 8 << 20,
            max_pending_messages: 65536,
        }
    }
}

impl ClientConfig {
    /// Whether the session outlives a connection, so a reconnect can resume it.
    pub fn persistent(&self) -> bool {
        if self.version.is_v5() {
            self.session_expiry > 0
        } else {
            !self.clean_start
        }
    }

    /// The keep alive interval, if any.
    pub(crate) fn keep_alive_interval(&self) -> Option<Duration> {
        (self.keep_alive > 0).then(|| Duration::from_secs(u64::from(self.keep_alive)))
    }
}
