//! What every client needs to keep its link to a server up, whatever the protocol: the
//! driver that runs it, how long one connect may take, TCP keepalive on the socket and
//! how to reconnect. Each client's `ClientOptions` holds one [`LinkOptions`] (its `link`
//! field) and gets the builder methods for it from [`link_builders!`], written once here.

use std::time::Duration;

use monocoque_proto::Session;

use crate::driver::{AnyDriver, DriverKind};
use crate::link_error::LinkError;

pub use crate::link::TcpKeepalive;
pub use monocoque_proto::chassis::link::ReconnectPolicy;

/// The protocol-free part of a client's options: how its link to the server is made and
/// kept. Every client's `ClientOptions` carries one as its `link` field, with a builder
/// method per field ([`driver`](crate::redis::ClientOptions::driver),
/// [`connect_timeout`](crate::redis::ClientOptions::connect_timeout),
/// [`tcp_keepalive`](crate::redis::ClientOptions::tcp_keepalive),
/// [`reconnect`](crate::redis::ClientOptions::reconnect)), so the same call reads the
/// same on every client:
///
/// ```
/// use std::time::Duration;
/// use monocoque::driver::DriverKind;
/// use monocoque::{nats, redis, LinkOptions};
///
/// let link = LinkOptions::default().driver(DriverKind::Mio).connect_timeout(Duration::from_secs(1));
/// let r = redis::ClientOptions::from_url("redis://localhost")?.link(link);
/// let n = nats::ClientOptions::from_url("nats://localhost")?.driver(DriverKind::Mio);
/// assert_eq!((r.link.driver, r.link.connect_timeout), (DriverKind::Mio, Duration::from_secs(1)));
/// assert_eq!(n.link.driver, DriverKind::Mio);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct LinkOptions {
    /// Which driver runs the connection (ignored by `connect_with_driver`, which is given
    /// one).
    pub driver: DriverKind,
    /// Longest wait for the TCP connection plus the protocol's handshake, per attempt
    /// (per server, where there are several).
    pub connect_timeout: Duration,
    /// TCP keepalive on the socket, set by the driver when it connects (on by default,
    /// see [`TcpKeepalive`]); `None` leaves the kernel's settings.
    pub tcp_keepalive: Option<TcpKeepalive>,
    /// How to reconnect after the connection is lost: the backoff between attempts and
    /// how many attempts a reconnect may make. Each client documents how it runs it
    /// within its calls' deadlines, and has its own default.
    pub reconnect: ReconnectPolicy,
}

impl Default for LinkOptions {
    /// The default driver (io_uring on Linux), a 5 s connect timeout, TCP keepalive on
    /// with [`TcpKeepalive::default`], the chassis' [`ReconnectPolicy::default`].
    fn default() -> Self {
        Self {
            driver: DriverKind::default(),
            connect_timeout: Duration::from_secs(5),
            tcp_keepalive: Some(TcpKeepalive::default()),
            reconnect: ReconnectPolicy::default(),
        }
    }
}

impl LinkOptions {
    /// The driver these options name, for sessions of type `S`; an io_uring driver the
    /// kernel refuses is [`LinkError::DriverUnavailable`].
    pub fn open_driver<S: Session, E>(&self) -> Result<AnyDriver<S>, LinkError<E>> {
        AnyDriver::new(self.driver).map_err(|e| LinkError::DriverUnavailable(e.into()))
    }
}

/// Writes the builder methods of [`LinkOptions`]' fields into the `impl` block of a
/// client's options type, which holds them in a field named `link`: one definition for
/// every client's `ClientOptions` (and, as `link_builders!(self)`, for `LinkOptions`
/// itself).
macro_rules! link_builders {
    () => {
        $crate::link_options::link_builders!(@in link.);
        $crate::setters::setters! {
            /// Sets every link option at once (driver, connect timeout, keepalive,
            /// reconnect policy).
            link(link: $crate::LinkOptions),
        }
    };
    (self) => {
        $crate::link_options::link_builders!(@in);
    };
    (@in $($link:ident.)?) => {
        $crate::setters::setters! {
            /// Sets the driver that runs the connection.
            driver(driver: $crate::driver::DriverKind) => $($link.)? driver = driver,
            /// Sets the connect (TCP + handshake) timeout of each attempt.
            connect_timeout(timeout: ::std::time::Duration) => $($link.)? connect_timeout = timeout,
            /// Sets TCP keepalive on the socket (`None`: the kernel's settings).
            tcp_keepalive(keepalive: Option<$crate::TcpKeepalive>) => $($link.)? tcp_keepalive = keepalive,
            /// Sets the reconnect policy.
            reconnect(policy: $crate::ReconnectPolicy) => $($link.)? reconnect = policy,
        }
    };
}
pub(crate) use link_builders;

impl LinkOptions {
    link_builders!(self);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builders_set_each_field() {
        let policy = ReconnectPolicy {
            max_attempts: Some(3),
            ..ReconnectPolicy::default()
        };
        let keepalive = TcpKeepalive {
            idle: Duration::from_secs(1),
            interval: Duration::from_secs(2),
            retries: 4,
        };
        let o = LinkOptions::default()
            .driver(DriverKind::Mio)
            .connect_timeout(Duration::from_millis(7))
            .tcp_keepalive(Some(keepalive))
            .reconnect(policy);
        assert_eq!(
            o,
            LinkOptions {
                driver: DriverKind::Mio,
                connect_timeout: Duration::from_millis(7),
                tcp_keepalive: Some(keepalive),
                reconnect: policy,
            }
        );
        assert_eq!(LinkOptions::default().tcp_keepalive(None).tcp_keepalive, None);
    }
}
