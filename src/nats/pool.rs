//! The NATS side of the reconnect supervisor's server pool: what makes two servers the
//! same place, the credentials a discovered server inherits, and the seed of the
//! jitter (the supervisor itself, in `monocoque_proto::chassis::link`, reads no clock).

use std::time::{SystemTime, UNIX_EPOCH};

use monocoque_proto::chassis::link::Endpoint;

use super::options::ServerAddr;

impl Endpoint for ServerAddr {
    fn same_place(&self, other: &Self) -> bool {
        ServerAddr::same_place(self, other)
    }
}

/// A server named by an `INFO`'s `connect_urls` (`host:port`), or `None` if it does not
/// parse. It inherits the credentials of the first configured URL (`first`: the servers
/// of one cluster share them), as nats.go does.
pub(crate) fn discovered(host_port: &str, first: Option<&ServerAddr>) -> Option<ServerAddr> {
    let mut server = host_port.parse::<ServerAddr>().ok()?;
    if server.auth.is_none() {
        server.auth = first.and_then(|s| s.auth.clone());
    }
    Some(server)
}

/// The seed of the client's random numbers (jitter, session seeds): `seed`, or one from
/// the clock and the process id.
pub(crate) fn seed(seed: Option<u64>) -> u64 {
    seed.unwrap_or_else(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15
    })
}

#[cfg(test)]
mod tests {
    use monocoque_proto::chassis::link::{ReconnectPolicy, Supervisor};

    use super::*;
    use crate::nats::Error;

    #[test]
    fn configured_then_discovered_each_once() {
        let configured: Vec<ServerAddr> = ["nats://tok@a:1", "a:1", "b:2"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut pool: Supervisor<ServerAddr, Error> = Supervisor::new(&configured, ReconnectPolicy::default(), 1);
        assert_eq!(pool.servers().len(), 2);
        let mut add = |hp: &str| {
            let first = pool.servers().first().cloned();
            discovered(hp, first.as_ref()).is_some_and(|s| pool.add(s))
        };
        assert!(!add("b:2"));
        assert!(!add("A:1"));
        assert!(add("c:3"));
        assert!(!add("not a url:x"));
        assert_eq!(pool.discovered().len(), 1);
        assert_eq!(pool.servers().get(2).map(ServerAddr::address).as_deref(), Some("c:3"));
        assert_eq!(
            pool.servers().get(2).and_then(|s| s.auth.clone()),
            configured[0].auth.clone()
        );
        assert_eq!(pool.servers().len(), 3);
    }

    #[test]
    fn a_given_seed_is_kept() {
        assert_eq!(seed(Some(7)), 7);
    }
}
