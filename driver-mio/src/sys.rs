//! The few socket calls mio does not make for us: receive into uninitialised memory,
//! vectored send without `SIGPIPE`, socket options, and connect/listen with options set
//! before the socket is used.

use std::io::{self, IoSlice};
use std::mem::MaybeUninit;
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use monocoque_proto::chassis::{SocketOptions, TcpKeepalive};
use socket2::{Domain, Protocol, SockRef, Socket, Type};

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
