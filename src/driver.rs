//! The driver, chosen at run time.
//!
//! Bodies are generic over [`Driver`]; a program that lets its user pick the driver
//! (`monocoque redis --driver mio`) needs one concrete type for both. [`AnyDriver`] is
//! that type: an io_uring driver or a mio driver behind one `match`, selected by a
//! [`DriverKind`]. On Linux the default is io_uring; where the kernel refuses io_uring
//! (old kernel, seccomp), [`AnyDriver::new`] returns an error whose message names the mio
//! driver as the way out.
//!
//! ```no_run
//! use monocoque::driver::{AnyDriver, DriverKind};
//! # fn demo<S: monocoque::proto::Session>() -> Result<(), monocoque::driver::DriverError> {
//! let kind: DriverKind = "mio".parse().expect("a known driver name");
//! let driver: AnyDriver<S> = AnyDriver::new(kind)?;
//! assert_eq!(driver.kind(), DriverKind::Mio);
//! # Ok(())
//! # }
//! ```

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

use monocoque_mio::MioDriver;
use monocoque_proto::chassis::SocketOptions;
use monocoque_proto::{Activity, ConnId, CoreId, Driver, ListenerId, Session, SessionFactory, Waker};
use monocoque_uring::{UringDriver, UringError};

/// Which driver runs the sessions: the name a user gives on the command line
/// (`--driver uring|mio`) or in a configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DriverKind {
    /// `monocoque-uring`: io_uring, completion based (Linux 5.19 or later).
    Uring,
    /// `monocoque-mio`: mio readiness with `readv`/`writev`, portable.
    Mio,
}

impl DriverKind {
    /// Every driver, in order of preference.
    pub const ALL: [DriverKind; 2] = [DriverKind::Uring, DriverKind::Mio];

    /// The name [`FromStr`] accepts and [`Display`](fmt::Display) prints.
    pub fn name(self) -> &'static str {
        match self {
            DriverKind::Uring => "uring",
            DriverKind::Mio => "mio",
        }
    }
}

impl Default for DriverKind {
    /// io_uring on Linux, mio elsewhere.
    fn default() -> Self {
        if cfg!(target_os = "linux") {
            DriverKind::Uring
        } else {
            DriverKind::Mio
        }
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A driver name that is neither `uring` (or `io_uring`) nor `mio`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown driver {name:?}: expected \"uring\" (or \"io_uring\") or \"mio\"")]
pub struct UnknownDriver {
    /// The name that was given.
    pub name: String,
}

impl FromStr for DriverKind {
    type Err = UnknownDriver;

    /// Parses `uring`, `io_uring` or `mio`, ignoring ASCII case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("uring") || s.eq_ignore_ascii_case("io_uring") {
            Ok(DriverKind::Uring)
        } else if s.eq_ignore_ascii_case("mio") {
            Ok(DriverKind::Mio)
        } else {
            Err(UnknownDriver { name: s.to_owned() })
        }
    }
}

/// Why a driver could not be created.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// The io_uring driver could not start (its message names the mio driver as the way
    /// out).
    #[error(transparent)]
    Uring(#[from] UringError),
    /// The mio driver could not start (creating the poll instance failed).
    #[error("the mio driver could not start: {0}")]
    Mio(#[source] io::Error),
}

/// An io_uring or a mio driver, chosen at run time; implements [`Driver`] by forwarding
/// every call to the driver inside.
// The variants differ in size, but there is one driver per thread, built once and never
// moved on the hot path; boxing one would add an indirection to every call instead.
#[allow(clippy::large_enum_variant)]
pub enum AnyDriver<S> {
    /// The io_uring driver.
    Uring(UringDriver<S>),
    /// The mio driver.
    Mio(MioDriver<S>),
}

impl<S: Session> AnyDriver<S> {
    /// Creates a driver of the given kind with its default configuration.
    pub fn new(kind: DriverKind) -> Result<Self, DriverError> {
        Self::with_core(kind, CoreId::default())
    }

    /// Creates a driver of the given kind with its default configuration, serving core
    /// `core` (one driver per core: the ids it hands out name it).
    pub fn with_core(kind: DriverKind, core: CoreId) -> Result<Self, DriverError> {
        match kind {
            DriverKind::Uring => Ok(AnyDriver::Uring(UringDriver::with_core(core)?)),
            DriverKind::Mio => MioDriver::with_core(core).map(AnyDriver::Mio).map_err(DriverError::Mio),
        }
    }
}

impl<S> AnyDriver<S> {
    /// Which driver this is.
    pub fn kind(&self) -> DriverKind {
        match self {
            AnyDriver::Uring(_) => DriverKind::Uring,
            AnyDriver::Mio(_) => DriverKind::Mio,
        }
    }
}

impl<S> From<UringDriver<S>> for AnyDriver<S> {
    /// Wraps an io_uring driver built with a non-default configuration.
    fn from(driver: UringDriver<S>) -> Self {
        AnyDriver::Uring(driver)
    }
}

impl<S> From<MioDriver<S>> for AnyDriver<S> {
    /// Wraps a mio driver built with a non-default configuration.
    fn from(driver: MioDriver<S>) -> Self {
        AnyDriver::Mio(driver)
    }
}

impl<S> fmt::Debug for AnyDriver<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AnyDriver")
            .field("kind", &self.kind())
            .finish_non_exhaustive()
    }
}

/// Evaluates `$body` with `$d` bound to the driver inside `$this`, whichever it is.
macro_rules! dispatch {
    ($this:expr, $d:ident => $body:expr) => {
        match $this {
            AnyDriver::Uring($d) => $body,
            AnyDriver::Mio($d) => $body,
        }
    };
}

/// Unix stream sockets, on whichever driver this is: see
/// [`UringDriver::connect_unix`] and [`MioDriver::connect_unix`].
impl<S: Session> AnyDriver<S> {
    /// Starts connecting to the Unix socket at `path` (a refused connect, or no socket
    /// there, is reported later as [`Activity::Closed`]).
    pub fn connect_unix(&mut self, path: &Path, session: S) -> io::Result<ConnId> {
        dispatch!(self, d => d.connect_unix(path, session))
    }

    /// Listens on the Unix socket `path`: a stale socket file there is removed first,
    /// and the file is removed when the listener closes. Accepted peers are reported
    /// with the address [`UNIX_PEER`](monocoque_proto::chassis::UNIX_PEER).
    pub fn listen_unix(&mut self, path: &Path, factory: SessionFactory<S>) -> io::Result<ListenerId> {
        dispatch!(self, d => d.listen_unix(path, factory))
    }

    /// The path a Unix-socket listener is bound to (`None` for a TCP listener).
    pub fn listener_path(&self, listener: ListenerId) -> Option<&Path> {
        dispatch!(self, d => d.listener_path(listener))
    }
}

impl<S: Session> Driver<S> for AnyDriver<S> {
    fn connect_with(&mut self, addr: SocketAddr, session: S, options: &SocketOptions) -> io::Result<ConnId> {
        dispatch!(self, d => d.connect_with(addr, session, options))
    }

    fn adopt(&mut self, stream: TcpStream, session: S) -> io::Result<ConnId> {
        dispatch!(self, d => d.adopt(stream, session))
    }

    fn listen(&mut self, addr: SocketAddr, factory: SessionFactory<S>) -> io::Result<ListenerId> {
        dispatch!(self, d => d.listen(addr, factory))
    }

    fn listener_addr(&self, listener: ListenerId) -> io::Result<SocketAddr> {
        dispatch!(self, d => d.listener_addr(listener))
    }

    fn close_listener(&mut self, listener: ListenerId) -> io::Result<()> {
        dispatch!(self, d => d.close_listener(listener))
    }

    fn core(&self) -> CoreId {
        dispatch!(self, d => d.core())
    }

    fn connection_count(&self) -> usize {
        dispatch!(self, d => d.connection_count())
    }

    fn session(&self, conn: ConnId) -> Option<&S> {
        dispatch!(self, d => d.session(conn))
    }

    fn session_for_output(&mut self, conn: ConnId) -> Option<&mut S> {
        dispatch!(self, d => d.session_for_output(conn))
    }

    fn remove(&mut self, conn: ConnId) -> Option<S> {
        dispatch!(self, d => d.remove(conn))
    }

    fn turn(&mut self, deadline: Option<Instant>, out: &mut Vec<Activity>) -> io::Result<()> {
        dispatch!(self, d => d.turn(deadline, out))
    }

    fn waker(&mut self) -> io::Result<Waker> {
        dispatch!(self, d => d.waker())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_name_and_prints_the_canonical_one() {
        assert_eq!("uring".parse(), Ok(DriverKind::Uring));
        assert_eq!("io_uring".parse(), Ok(DriverKind::Uring));
        assert_eq!("IO_URING".parse(), Ok(DriverKind::Uring));
        assert_eq!("mio".parse(), Ok(DriverKind::Mio));
        assert_eq!("Mio".parse(), Ok(DriverKind::Mio));
        assert_eq!(
            "epoll".parse::<DriverKind>(),
            Err(UnknownDriver {
                name: "epoll".to_owned()
            })
        );
        for kind in DriverKind::ALL {
            assert_eq!(kind.to_string().parse(), Ok(kind));
        }
    }

    #[test]
    fn default_is_io_uring_on_linux() {
        let expected = if cfg!(target_os = "linux") {
            DriverKind::Uring
        } else {
            DriverKind::Mio
        };
        assert_eq!(DriverKind::default(), expected);
    }
}
