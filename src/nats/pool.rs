//! The servers a client knows (configured, then discovered from `connect_urls`) and the
//! random numbers behind reconnect jitter and inbox names.

use std::time::{SystemTime, UNIX_EPOCH};

use super::options::ServerAddr;

/// Every server the client may connect to, configured ones first, each once.
#[derive(Debug, Clone)]
pub(crate) struct ServerPool {
    servers: Vec<ServerAddr>,
    /// How many of `servers` were configured (the rest were discovered).
    configured: usize,
}

impl ServerPool {
    pub(crate) fn new(configured: &[ServerAddr]) -> Self {
        let mut pool = Self {
            servers: Vec::with_capacity(configured.len()),
            configured: 0,
        };
        for server in configured {
            if !pool.contains(server) {
                pool.servers.push(server.clone());
            }
        }
        pool.configured = pool.servers.len();
        pool
    }

    pub(crate) fn len(&self) -> usize {
        self.servers.len()
    }

    pub(crate) fn get(&self, index: usize) -> Option<&ServerAddr> {
        self.servers.get(index)
    }

    pub(crate) fn servers(&self) -> &[ServerAddr] {
        &self.servers
    }

    fn contains(&self, server: &ServerAddr) -> bool {
        self.servers.iter().any(|s| s.same_place(server))
    }

    /// Adds a server named by an `INFO`'s `connect_urls` (`host:port`); returns whether
    /// it was new. It inherits the credentials of the first configured URL (the servers
    /// of one cluster share them), as nats.go does.
    pub(crate) fn add_discovered(&mut self, host_port: &str) -> bool {
        let Ok(mut server) = host_port.parse::<ServerAddr>() else {
            return false;
        };
        if self.contains(&server) {
            return false;
        }
        if server.auth.is_none() {
            server.auth = self.servers.first().and_then(|s| s.auth.clone());
        }
        self.servers.push(server);
        true
    }

    /// Servers learned from `connect_urls`.
    pub(crate) fn discovered(&self) -> &[ServerAddr] {
        &self.servers[self.configured..]
    }
}

/// xorshift64*: enough randomness for jitter and inbox ids, seeded once.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    /// Seeded with `seed`, or from the clock and the process id.
    pub(crate) fn new(seed: Option<u64>) -> Self {
        let seed = seed.unwrap_or_else(|| {
            let nanos = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64);
            nanos ^ (u64::from(std::process::id()) << 32) ^ 0x9e37_79b9_7f4a_7c15
        });
        // Zero is xorshift's fixed point.
        Self(seed.max(1))
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configured_then_discovered_each_once() {
        let configured: Vec<ServerAddr> = ["nats://tok@a:1", "a:1", "b:2"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut pool = ServerPool::new(&configured);
        assert_eq!(pool.len(), 2);
        assert!(!pool.add_discovered("b:2"));
        assert!(!pool.add_discovered("A:1"));
        assert!(pool.add_discovered("c:3"));
        assert!(!pool.add_discovered("not a url:x"));
        assert_eq!(pool.discovered().len(), 1);
        assert_eq!(pool.get(2).map(ServerAddr::address).as_deref(), Some("c:3"));
        assert_eq!(pool.get(2).and_then(|s| s.auth.clone()), configured[0].auth.clone());
        assert_eq!(pool.servers().len(), 3);
    }

    #[test]
    fn random_units_are_in_range_and_seeded() {
        let mut a = Rng::new(Some(7));
        let mut b = Rng::new(Some(7));
        let xs: Vec<f64> = (0..1000).map(|_| a.unit()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert_eq!(xs[..5], (0..5).map(|_| b.unit()).collect::<Vec<_>>()[..]);
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((0.4..0.6).contains(&mean), "{mean}");
        assert_ne!(Rng::new(Some(0)).next_u64(), 0);
    }
}
