//! The options of a [`Socket`](super::Socket), named after libzmq's.

use std::time::Duration;

use bytes::Bytes;

use crate::driver::DriverKind;

/// How a [`Socket`](super::Socket) behaves; the defaults are libzmq's where it has one.
#[derive(Debug, Clone)]
pub struct Options {
    /// The driver the socket runs on.
    pub driver: DriverKind,
    /// `ZMQ_ROUTING_ID`: the identity a DEALER announces (a ROUTER peer routes by it).
    pub identity: Bytes,
    /// `ZMQ_SNDHWM`: messages queued per peer before DEALER and PUSH block and PUB and
    /// ROUTER drop (1000; 0: no limit).
    pub send_hwm: usize,
    /// The same bound in bytes of frames per peer (64 MiB; 0: no limit; libzmq has
    /// none). A message larger than this still goes, alone.
    pub send_hwm_bytes: usize,
    /// `ZMQ_RCVHWM`: messages received from one peer and not yet taken by `recv`
    /// before the socket stops reading that peer (1000; 0: no limit). The peer then
    /// meets TCP's flow control: its sends block or drop by its own HWM.
    pub recv_hwm: usize,
    /// The same bound in bytes (64 MiB; 0: no limit).
    pub recv_hwm_bytes: usize,
    /// `ZMQ_LINGER`: how long [`Socket::close`](super::Socket::close) (and dropping
    /// the socket) waits for queued messages to be written to a peer. `None`: forever,
    /// libzmq's default (-1); `Some(Duration::ZERO)`: not at all.
    pub linger: Option<Duration>,
    /// `ZMQ_SNDTIMEO`: how long a blocked `send` waits (`None`: forever, libzmq's -1).
    pub send_timeout: Option<Duration>,
    /// `ZMQ_RECONNECT_IVL`: the wait before redialing a lost or refused connection
    /// (100 ms).
    pub reconnect_interval: Duration,
    /// `ZMQ_MAXMSGSIZE` for one frame (64 MiB).
    pub max_frame_size: u64,
    /// `ZMQ_HEARTBEAT_IVL` (`None`: no heartbeats).
    pub heartbeat_interval: Option<Duration>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            driver: DriverKind::default(),
            identity: Bytes::new(),
            send_hwm: 1000,
            send_hwm_bytes: monocoque_proto::zmtp::socket::DEFAULT_HWM_BYTES,
            recv_hwm: 1000,
            recv_hwm_bytes: monocoque_proto::zmtp::socket::DEFAULT_HWM_BYTES,
            linger: None,
            send_timeout: None,
            reconnect_interval: Duration::from_millis(100),
            max_frame_size: monocoque_proto::zmtp::DEFAULT_MAX_FRAME_SIZE,
            heartbeat_interval: None,
        }
    }
}
