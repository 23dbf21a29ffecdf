//! Why a client's link could not be made or kept, whatever the protocol: the server
//! URL, the driver (unavailable, or failed), the connect (refused, unreachable, unresolvable), its
//! timeout, and a reconnect that ran out of attempts. Each client's `Error` carries it
//! as `Error::Link`.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use crate::driver::DriverError;
use crate::url::UrlError;

/// A failure of the link under a client rather than of the protocol on it. Every
/// client's `Error` carries it as its `Link` variant (`E` is that `Error`: a reconnect
/// that gave up says why its last attempt failed), so the same `match` reads the same
/// on every client; each client module names its own as `LinkError`
/// ([`redis::LinkError`](crate::redis::LinkError),
/// [`nats::LinkError`](crate::nats::LinkError)):
///
/// ```
/// use std::time::Duration;
/// use monocoque::redis::{self, LinkError};
///
/// let e = redis::Error::from(LinkError::ConnectTimeout { server: "db:6379".into(), timeout: Duration::from_secs(5) });
/// assert!(matches!(e, redis::Error::Link(LinkError::ConnectTimeout { .. })));
/// assert!(e.is_connection_failure());
/// assert_eq!(e.to_string(), "connecting to db:6379 took longer than 5s");
/// ```
///
/// It is `Clone` (errors of the operating system are shared behind an [`Arc`]) so that
/// one failure can be reported to every caller it affected.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError<E> {
    /// The server URL is malformed (nothing was tried).
    #[error("invalid server URL: {0}")]
    Url(UrlError),
    /// The driver could not be created (for io_uring: its message names mio as the way
    /// out).
    #[error("driver unavailable: {0}")]
    DriverUnavailable(Arc<DriverError>),
    /// The driver's event loop failed; the connection it ran is gone.
    #[error("driver failed: {0}")]
    Driver(Arc<io::Error>),
    /// Resolving or connecting to a server failed.
    #[error("cannot connect to {server}: {source}")]
    Connect {
        /// The server (`host:port`).
        server: String,
        /// What the operating system said.
        source: Arc<io::Error>,
    },
    /// The TCP connection, or the handshake on it, did not complete in the time it was
    /// given (the `timeout` carried): the
    /// [`connect_timeout`](crate::LinkOptions::connect_timeout), or less when a
    /// reconnect ran into the call's own deadline.
    #[error("connecting to {server} took longer than {timeout:?}")]
    ConnectTimeout {
        /// The server (`host:port`).
        server: String,
        /// The time the attempt was given.
        timeout: Duration,
    },
    /// Reconnecting failed `attempts` times in a row (across every server the client
    /// knows, and across the calls the reconnect spanned), and either the reconnect
    /// policy allows no more or the call's deadline came before the next attempt;
    /// `last` is the last failure.
    #[error("reconnecting failed after {attempts} attempt(s): {last}")]
    Reconnect {
        /// Attempts made in this round of the policy (a round can span calls: one that
        /// times out leaves it to the next).
        attempts: u32,
        /// Why the last one failed.
        last: Box<E>,
    },
}

impl<E> LinkError<E> {
    /// A reconnect that gave up after `attempts`, the last failing with `last`.
    pub fn reconnect(attempts: u32, last: E) -> Self {
        LinkError::Reconnect {
            attempts,
            last: Box::new(last),
        }
    }

    /// Whether a connection failed or was lost (everything but a URL or a driver that
    /// no retry mends).
    pub fn is_connection_failure(&self) -> bool {
        !matches!(self, LinkError::Url(_) | LinkError::DriverUnavailable(_))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_an_unavailable_driver_is_not_a_connection_failure() {
        let io = || Arc::new(io::Error::from(io::ErrorKind::ConnectionRefused));
        let unavailable =
            LinkError::<io::Error>::DriverUnavailable(Arc::new(DriverError::Mio(io::Error::other("no poll"))));
        assert!(!unavailable.is_connection_failure());
        let url = LinkError::<io::Error>::Url(UrlError::Empty);
        assert!(!url.is_connection_failure());
        assert_eq!(url.to_string(), "invalid server URL: no server URL given");
        let connect = LinkError::<io::Error>::Connect {
            server: "h:1".into(),
            source: io(),
        };
        assert!(connect.is_connection_failure());
        assert!(connect.to_string().starts_with("cannot connect to h:1: "), "{connect}");
        assert!(LinkError::<io::Error>::Driver(io()).is_connection_failure());
        let gave_up = LinkError::reconnect(3, io::Error::from(io::ErrorKind::ConnectionRefused));
        assert!(gave_up.is_connection_failure());
        assert!(
            gave_up
                .to_string()
                .starts_with("reconnecting failed after 3 attempt(s): "),
            "{gave_up}"
        );
    }

    #[test]
    fn is_send_and_sync() {
        fn check<T: Send + Sync + 'static>() {}
        check::<LinkError<io::Error>>();
    }
}
