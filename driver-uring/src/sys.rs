//! The few socket syscalls std does not offer: a non-blocking socket before connect,
//! listeners with a chosen backlog and `SO_REUSEPORT`, and Unix-socket listeners that
//! clear a stale socket file first and remove theirs when closed.

use std::io;
use std::mem;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use monocoque_proto::chassis::TcpKeepalive;

/// A socket address in the kernel's layout, for `bind` and the `Connect` operation.
pub(crate) enum RawAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
    /// A Unix socket path, and the length of the address that holds it.
    Unix(libc::sockaddr_un, libc::socklen_t),
}

impl RawAddr {
    pub(crate) fn new(addr: &SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => Self::V4(libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            }),
            SocketAddr::V6(a) => Self::V6(libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            }),
        }
    }

    /// The address of the Unix socket at `path` (a path that does not fit
    /// `sun_path` with its terminating zero, or holds a zero byte, is refused).
    pub(crate) fn unix(path: &Path) -> io::Result<Self> {
        // SAFETY: an all-zero sockaddr_un is a valid (empty) value.
        let mut addr: libc::sockaddr_un = unsafe { mem::zeroed() };
        addr.sun_family = libc::AF_UNIX as libc::sa_family_t;
        let bytes = path.as_os_str().as_bytes();
        if bytes.is_empty() || bytes.len() >= addr.sun_path.len() || bytes.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a Unix socket path must be 1 to 107 bytes without a zero byte",
            ));
        }
        for (dst, src) in addr.sun_path.iter_mut().zip(bytes) {
            *dst = *src as libc::c_char;
        }
        let len = mem::size_of::<libc::sa_family_t>() + bytes.len() + 1;
        Ok(Self::Unix(addr, len as libc::socklen_t))
    }

    pub(crate) fn family(&self) -> libc::c_int {
        match self {
            Self::V4(_) => libc::AF_INET,
            Self::V6(_) => libc::AF_INET6,
            Self::Unix(..) => libc::AF_UNIX,
        }
    }

    pub(crate) fn as_ptr(&self) -> *const libc::sockaddr {
        match self {
            Self::V4(a) => (a as *const libc::sockaddr_in).cast(),
            Self::V6(a) => (a as *const libc::sockaddr_in6).cast(),
            Self::Unix(a, _) => (a as *const libc::sockaddr_un).cast(),
        }
    }

    pub(crate) fn len(&self) -> libc::socklen_t {
        let len = match self {
            Self::V4(_) => mem::size_of::<libc::sockaddr_in>(),
            Self::V6(_) => mem::size_of::<libc::sockaddr_in6>(),
            Self::Unix(_, len) => return *len,
        };
        len as libc::socklen_t
    }
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// A new non-blocking, close-on-exec stream socket of `family` (TCP for the IP
/// families, a Unix stream socket for `AF_UNIX`).
pub(crate) fn tcp_socket(family: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: socket(2) takes no pointers; a non-negative result is a new descriptor that
    // nothing else owns, so OwnedFd may take it.
    unsafe {
        let fd = cvt(libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        ))?;
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

fn set_int_opt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value points at a live c_int of the length given; the fd is
    // owned and open for the duration of the call.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
    .map(drop)
}

/// A non-blocking listener on `addr` with `SO_REUSEADDR` (and `SO_REUSEPORT` if asked).
pub(crate) fn listener(addr: &SocketAddr, backlog: i32, reuse_port: bool) -> io::Result<TcpListener> {
    let raw = RawAddr::new(addr);
    let fd = tcp_socket(raw.family())?;
    set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    if reuse_port {
        set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, 1)?;
    }
    // SAFETY: `raw` is a valid sockaddr of the length passed, alive across the call.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), raw.as_ptr(), raw.len()) })?;
    // SAFETY: listen(2) takes no pointers.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok(TcpListener::from(fd))
}

/// The file of a bound Unix socket: removed when dropped (the listener closed), as
/// libzmq removes its `ipc://` files.
#[derive(Debug)]
pub(crate) struct BoundPath(PathBuf);

impl BoundPath {
    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for BoundPath {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Removes the socket file at `path` if it is stale: a socket nobody listens on (a
/// connect is refused), left by a process that did not remove it. libzmq removes
/// whatever is there; this leaves a live socket (bind then fails with `EADDRINUSE`)
/// and anything that is not a socket.
fn remove_stale_socket(path: &Path) -> io::Result<()> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
        Ok(meta) if !meta.file_type().is_socket() => return Ok(()),
        Ok(_) => {}
    }
    let raw = RawAddr::unix(path)?;
    let probe = tcp_socket(libc::AF_UNIX)?;
    // SAFETY: `raw` is a valid sockaddr of the length passed, alive across the call.
    // Non-blocking: a listener with a full backlog answers EAGAIN, not a wait.
    let ret = unsafe { libc::connect(probe.as_raw_fd(), raw.as_ptr(), raw.len()) };
    if ret < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::ECONNREFUSED) {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// A non-blocking listener on the Unix socket `path` (a stale socket file there is
/// removed first), held in a `TcpListener`: the driver only takes its descriptor for
/// accept operations and closes it by dropping it, the same for either family.
pub(crate) fn unix_listener(path: &Path, backlog: i32) -> io::Result<(TcpListener, BoundPath)> {
    let raw = RawAddr::unix(path)?;
    remove_stale_socket(path)?;
    let fd = tcp_socket(libc::AF_UNIX)?;
    // SAFETY: `raw` is a valid sockaddr of the length passed, alive across the call.
    cvt(unsafe { libc::bind(fd.as_raw_fd(), raw.as_ptr(), raw.len()) })?;
    let bound = BoundPath(path.to_owned());
    // SAFETY: listen(2) takes no pointers.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) })?;
    Ok((TcpListener::from(fd), bound))
}

/// Whether `SIGPIPE` is ignored in this process, so a plain `write` to a socket the peer
/// reset returns `EPIPE` instead of killing the process (Rust programs ignore it by
/// default). Decides whether sends may use `WRITE_FIXED`, which cannot carry
/// `MSG_NOSIGNAL`.
pub(crate) fn sigpipe_ignored() -> bool {
    // SAFETY: an all-zero sigaction is a valid value for the kernel to overwrite.
    let mut old: libc::sigaction = unsafe { mem::zeroed() };
    // SAFETY: a null new action only queries the current one into `old`, which is live.
    let ret = unsafe { libc::sigaction(libc::SIGPIPE, std::ptr::null(), &mut old) };
    ret == 0 && old.sa_sigaction == libc::SIG_IGN
}

/// Takes ownership of a socket an accept completion returned.
pub(crate) fn accepted_stream(fd: libc::c_int) -> TcpStream {
    // SAFETY: the kernel created `fd` for this process in the accept completion being
    // handled, and nothing else has seen it, so this is its only owner.
    unsafe { TcpStream::from_raw_fd(fd) }
}

/// Turns on TCP keepalive with the given timings (seconds, rounded down, at least 1:
/// the kernel's unit).
pub(crate) fn set_keepalive(fd: &OwnedFd, keepalive: TcpKeepalive) -> io::Result<()> {
    let secs = |d: std::time::Duration| libc::c_int::try_from(d.as_secs().max(1)).unwrap_or(libc::c_int::MAX);
    let retries = libc::c_int::try_from(keepalive.retries).unwrap_or(libc::c_int::MAX);
    set_int_opt(fd, libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs(keepalive.idle))?;
    set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, secs(keepalive.interval))?;
    set_int_opt(fd, libc::IPPROTO_TCP, libc::TCP_KEEPCNT, retries)
}

/// Sets `TCP_NODELAY` on a stream socket: the driver already batches writes.
pub(crate) fn prepare_stream(stream: &TcpStream) -> io::Result<()> {
    stream.set_nodelay(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listener_binds_a_free_port_with_reuse_port() {
        let l = listener(&"127.0.0.1:0".parse().unwrap(), 16, true).unwrap();
        let addr = l.local_addr().unwrap();
        assert_ne!(addr.port(), 0);
        // A second listener on the same port works only because of SO_REUSEPORT.
        let l2 = listener(&addr, 16, true).unwrap();
        assert_eq!(l2.local_addr().unwrap(), addr);
    }

    #[test]
    fn unix_paths_fit_sun_path_or_are_refused() {
        let raw = RawAddr::unix(Path::new("/tmp/x.sock")).unwrap();
        assert_eq!(raw.family(), libc::AF_UNIX);
        assert_eq!(raw.len() as usize, mem::size_of::<libc::sa_family_t>() + 11 + 1);
        let long = "/tmp/".to_owned() + &"x".repeat(200);
        assert!(RawAddr::unix(Path::new(&long)).is_err());
        assert!(RawAddr::unix(Path::new("")).is_err());
    }

    #[test]
    fn ipv6_address_round_trips_through_raw_form() {
        let addr: SocketAddr = "[::1]:4242".parse().unwrap();
        let raw = RawAddr::new(&addr);
        assert_eq!(raw.family(), libc::AF_INET6);
        assert_eq!(raw.len() as usize, mem::size_of::<libc::sockaddr_in6>());
        match raw {
            RawAddr::V6(a) => {
                assert_eq!(u16::from_be(a.sin6_port), 4242);
                assert_eq!(a.sin6_addr.s6_addr[15], 1);
            }
            RawAddr::V4(_) | RawAddr::Unix(..) => panic!("v6 address became another family"),
        }
    }
}
