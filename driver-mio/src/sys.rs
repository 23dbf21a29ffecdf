//! The few socket calls mio does not make for us: receive into uninitialised memory,
//! vectored send without `SIGPIPE`, socket options, and connect/listen with options set
//! before the socket is used.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use mio::net::{TcpListener, TcpStream, UnixListener};
use monocoque_proto::chassis::{SocketOptions, TcpKeepalive};
use socket2::{Domain, Protocol, SockAddr, SockRef, Socket, Type};

/// Flags for every send: never raise `SIGPIPE` when the peer is gone (the error comes
/// back as `EPIPE` instead), whatever the host program does with the signal.
#[cfg(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "solaris"
))]
const SEND_FLAGS: libc::c_int = libc::MSG_NOSIGNAL;
#[cfg(not(any(
    target_os = "linux",
    target_os = "android",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
    target_os = "illumos",
    target_os = "solaris"
)))]
const SEND_FLAGS: std::ffi::c_int = 0;

/// One `recv` into `buf`; returns how many bytes it initialised.
pub(crate) fn recv(stream: &TcpStream, buf: &mut [MaybeUninit<u8>]) -> io::Result<usize> {
    SockRef::from(stream).recv(buf)
}

/// One vectored send (`sendmsg`, the `writev` of sockets) of `bufs`.
pub(crate) fn send_vectored(stream: &TcpStream, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    SockRef::from(stream).send_vectored_with_flags(bufs, SEND_FLAGS)
}

/// Options every stream gets: `TCP_NODELAY` (the arena already batches, and pipelining
/// clients must not wait for Nagle), and no `SIGPIPE` where that is a socket option.
pub(crate) fn prepare_stream(sock: SockRef<'_>) -> io::Result<()> {
    sock.set_tcp_nodelay(true)?;
    #[cfg(any(target_os = "macos", target_os = "ios", target_os = "tvos", target_os = "watchos"))]
    sock.set_nosigpipe(true)?;
    Ok(())
}

/// Turns on TCP keepalive with the given timings.
pub(crate) fn set_keepalive(sock: SockRef<'_>, keepalive: TcpKeepalive) -> io::Result<()> {
    let params = socket2::TcpKeepalive::new()
        .with_time(keepalive.idle)
        .with_interval(keepalive.interval)
        .with_retries(keepalive.retries);
    sock.set_tcp_keepalive(&params)
}

/// Whether a non-blocking `connect` error only means "in progress".
fn connect_in_progress(err: &io::Error) -> bool {
    #[cfg(unix)]
    if err.raw_os_error() == Some(libc::EINPROGRESS) {
        return true;
    }
    err.kind() == io::ErrorKind::WouldBlock
}

/// Opens a non-blocking socket and starts connecting it to `addr`.
///
/// An error making the socket is returned at once; an error from `connect` itself comes
/// back beside the socket, so the driver can report it the way it reports a connection
/// refused later ([`monocoque_proto::Activity::Closed`]).
pub(crate) fn start_connect(addr: SocketAddr, options: &SocketOptions) -> io::Result<(TcpStream, Option<io::Error>)> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    prepare_stream(SockRef::from(&socket))?;
    if let Some(keepalive) = options.keepalive {
        set_keepalive(SockRef::from(&socket), keepalive)?;
    }
    let failure = match socket.connect(&addr.into()) {
        Ok(()) => None,
        Err(e) if connect_in_progress(&e) => None,
        Err(e) => Some(e),
    };
    Ok((TcpStream::from_std(socket.into()), failure))
}

/// Binds and listens on `addr`, non-blocking, with `SO_REUSEADDR` (and `SO_REUSEPORT`
/// when asked, so one listener per thread can share a port).
pub(crate) fn listen(addr: SocketAddr, backlog: i32, reuse_port: bool) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    if reuse_port {
        #[cfg(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin"))))]
        socket.set_reuse_port(true)?;
        #[cfg(not(all(unix, not(any(target_os = "solaris", target_os = "illumos", target_os = "cygwin")))))]
        return Err(io::Error::from(io::ErrorKind::Unsupported));
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(TcpListener::from_std(socket.into()))
}

/// A Unix stream socket in a [`TcpStream`]: the driver only makes descriptor-level
/// calls on a connection's stream (`recv`, `sendmsg`, `SO_ERROR`, `getpeername`
/// through socket2, the poll registration), the same for either family, so one type
/// carries both and the TCP paths stay as they are.
pub(crate) fn unix_in_tcp_stream(fd: OwnedFd) -> TcpStream {
    TcpStream::from_std(std::net::TcpStream::from(fd))
}

/// Opens a non-blocking Unix stream socket and starts connecting it to `path`; an error
/// from `connect` comes back beside the socket, as in [`start_connect`]. A listener
/// whose backlog is full answers `EAGAIN`, which is a failure here (the connect is not
/// in progress), as libzmq treats it.
pub(crate) fn start_connect_unix(path: &Path) -> io::Result<(TcpStream, Option<io::Error>)> {
    let addr = SockAddr::unix(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    let failure = match socket.connect(&addr) {
        Ok(()) => None,
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => None,
        Err(e) => Some(e),
    };
    Ok((unix_in_tcp_stream(OwnedFd::from(socket)), failure))
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
    let probe = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    // Non-blocking: a listener with a full backlog answers EAGAIN, not a wait.
    probe.set_nonblocking(true)?;
    match probe.connect(&SockAddr::unix(path)?) {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => match std::fs::remove_file(path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Binds and listens on the Unix socket `path`, non-blocking (a stale socket file there
/// is removed first).
pub(crate) fn listen_unix(path: &Path, backlog: i32) -> io::Result<(UnixListener, BoundPath)> {
    let addr = SockAddr::unix(path)?;
    remove_stale_socket(path)?;
    let socket = Socket::new(Domain::UNIX, Type::STREAM, None)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr)?;
    let bound = BoundPath(path.to_owned());
    socket.listen(backlog)?;
    Ok((UnixListener::from(OwnedFd::from(socket)), bound))
}
