//! `tcp://HOST:PORT` and `ipc://PATH` endpoints, as ZeroMQ spells them.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Where a socket binds or connects: a TCP address, or a Unix socket's path
/// (`ipc://`). [`Socket::bind`](super::Socket::bind) returns the one it bound, printed
/// as libzmq's `ZMQ_LAST_ENDPOINT` (`tcp://127.0.0.1:5555`, `ipc:///tmp/s`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `tcp://HOST:PORT`.
    Tcp(SocketAddr),
    /// `ipc://PATH`: a Unix stream socket at `PATH` (`ipc:///abs` or `ipc://relative`).
    Ipc(PathBuf),
}

impl Endpoint {
    /// The TCP port (0 for `ipc://`, which has none), as `bind` callers read the port
    /// a `tcp://HOST:0` picked.
    pub fn port(&self) -> u16 {
        self.tcp().map_or(0, |a| a.port())
    }

    /// The TCP address, for a `tcp://` endpoint.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            Endpoint::Tcp(addr) => Some(*addr),
            Endpoint::Ipc(_) => None,
        }
    }

    /// The Unix socket's path, for an `ipc://` endpoint.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Endpoint::Tcp(_) => None,
            Endpoint::Ipc(path) => Some(path),
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(addr) => write!(f, "tcp://{addr}"),
            Endpoint::Ipc(path) => write!(f, "ipc://{}", path.display()),
        }
    }
}

/// Why an endpoint was not understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EndpointError {
    /// Only `tcp://` and `ipc://` are supported (`inproc://` is not).
    #[error("unsupported transport in {0:?}: only tcp:// and ipc:// are supported")]
    Transport(String),
    /// An `ipc://` endpoint without a path, or an abstract-namespace one (`ipc://@name`,
    /// not supported).
    #[error("no usable Unix socket path in {0:?}")]
    Path(String),
    /// No `:PORT`, or a port that is not a number from 0 to 65535.
    #[error("no valid port in {0:?}")]
    Port(String),
    /// The host is neither an IP address, `localhost`, nor (to bind) `*`. Host names
    /// are not resolved: resolving would block the socket's thread.
    #[error("host {0:?} is not an IP address, localhost or *")]
    Host(String),
}

/// Parses `tcp://HOST:PORT` (see [`parse_tcp`]) or `ipc://PATH` (`ipc:///tmp/s` is
/// the absolute `/tmp/s`, `ipc://s` the relative `s`).
pub fn parse(endpoint: &str) -> Result<Endpoint, EndpointError> {
    if let Some(path) = endpoint.strip_prefix("ipc://") {
        if path.is_empty() || path.starts_with('@') {
            return Err(EndpointError::Path(endpoint.to_owned()));
        }
        return Ok(Endpoint::Ipc(PathBuf::from(path)));
    }
    parse_tcp(endpoint).map(Endpoint::Tcp)
}

/// Parses `tcp://HOST:PORT`; `HOST` is an IPv4 address, a bracketed IPv6 address,
/// `localhost`, or `*` (every interface, for `bind`; port 0 or `*` picks a free one).
pub fn parse_tcp(endpoint: &str) -> Result<SocketAddr, EndpointError> {
    let rest = endpoint
        .strip_prefix("tcp://")
        .ok_or_else(|| EndpointError::Transport(endpoint.to_owned()))?;
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| EndpointError::Port(endpoint.to_owned()))?;
    let port: u16 = match port {
        "*" => 0,
        p => p.parse().map_err(|_| EndpointError::Port(endpoint.to_owned()))?,
    };
    let ip: IpAddr = match host {
        "*" => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        "localhost" => IpAddr::V4(Ipv4Addr::LOCALHOST),
        h => match h.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            Some(v6) => v6
                .parse::<Ipv6Addr>()
                .map(IpAddr::V6)
                .map_err(|_| EndpointError::Host(host.to_owned()))?,
            None => h
                .parse::<Ipv4Addr>()
                .map(IpAddr::V4)
                .map_err(|_| EndpointError::Host(host.to_owned()))?,
        },
    };
    Ok(SocketAddr::new(ip, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        let tcp = |a: SocketAddr| Ok(Endpoint::Tcp(a));
        assert_eq!(
            parse("tcp://127.0.0.1:5555"),
            tcp(SocketAddr::from(([127, 0, 0, 1], 5555)))
        );
        assert_eq!(parse("tcp://*:*"), tcp(SocketAddr::from(([0, 0, 0, 0], 0))));
        assert_eq!(parse("tcp://localhost:1"), tcp(SocketAddr::from(([127, 0, 0, 1], 1))));
        assert_eq!(parse_tcp("tcp://[::1]:7").map(|a| a.is_ipv6()), Ok(true));
        assert_eq!(parse("ipc:///tmp/x"), Ok(Endpoint::Ipc(PathBuf::from("/tmp/x"))));
        assert_eq!(parse("ipc://rel/x"), Ok(Endpoint::Ipc(PathBuf::from("rel/x"))));
        assert!(matches!(parse("ipc://"), Err(EndpointError::Path(_))));
        assert!(matches!(parse("ipc://@abstract"), Err(EndpointError::Path(_))));
        assert!(matches!(parse("inproc://x"), Err(EndpointError::Transport(_))));
        assert!(matches!(parse("tcp://127.0.0.1"), Err(EndpointError::Port(_))));
        assert!(matches!(parse("tcp://127.0.0.1:70000"), Err(EndpointError::Port(_))));
        assert!(matches!(parse("tcp://example.com:1"), Err(EndpointError::Host(_))));
    }

    #[test]
    fn endpoints_print_as_libzmq_last_endpoint() {
        let tcp = parse("tcp://127.0.0.1:5555").unwrap();
        assert_eq!((tcp.to_string(), tcp.port()), ("tcp://127.0.0.1:5555".to_owned(), 5555));
        let ipc = parse("ipc:///tmp/s").unwrap();
        assert_eq!((ipc.to_string(), ipc.port()), ("ipc:///tmp/s".to_owned(), 0));
        assert_eq!(ipc.path(), Some(Path::new("/tmp/s")));
        assert_eq!(parse("ipc://s").unwrap().to_string(), "ipc://s");
    }
}
