//! `tcp://HOST:PORT` endpoints, as ZeroMQ spells them.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use thiserror::Error;

/// Why an endpoint was not understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EndpointError {
    /// Only `tcp://` is supported (`ipc://` and `inproc://` are not yet).
    #[error("unsupported transport in {0:?}: only tcp:// is supported")]
    Transport(String),
    /// No `:PORT`, or a port that is not a number from 0 to 65535.
    #[error("no valid port in {0:?}")]
    Port(String),
    /// The host is neither an IP address, `localhost`, nor (to bind) `*`. Host names
    /// are not resolved: resolving would block the socket's thread.
    #[error("host {0:?} is not an IP address, localhost or *")]
    Host(String),
}

/// Parses `tcp://HOST:PORT`; `HOST` is an IPv4 address, a bracketed IPv6 address,
/// `localhost`, or `*` (every interface, for `bind`; port 0 or `*` picks a free one).
pub fn parse(endpoint: &str) -> Result<SocketAddr, EndpointError> {
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
        assert_eq!(
            parse("tcp://127.0.0.1:5555"),
            Ok(SocketAddr::from(([127, 0, 0, 1], 5555)))
        );
        assert_eq!(parse("tcp://*:*"), Ok(SocketAddr::from(([0, 0, 0, 0], 0))));
        assert_eq!(parse("tcp://localhost:1"), Ok(SocketAddr::from(([127, 0, 0, 1], 1))));
        assert_eq!(parse("tcp://[::1]:7").map(|a| a.is_ipv6()), Ok(true));
        assert!(matches!(parse("ipc:///tmp/x"), Err(EndpointError::Transport(_))));
        assert!(matches!(parse("tcp://127.0.0.1"), Err(EndpointError::Port(_))));
        assert!(matches!(parse("tcp://127.0.0.1:70000"), Err(EndpointError::Port(_))));
        assert!(matches!(parse("tcp://example.com:1"), Err(EndpointError::Host(_))));
    }
}
