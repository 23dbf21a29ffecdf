//! The socket types of ZMTP 3.x and which of them may talk to each other.

use std::fmt;

/// A ZeroMQ socket type, as the `Socket-Type` property of `READY` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SocketType {
    /// `REQ`: strict request then reply.
    Req,
    /// `REP`: strict reply to each request.
    Rep,
    /// `DEALER`: asynchronous requests, round robin.
    Dealer,
    /// `ROUTER`: addresses peers by identity.
    Router,
    /// `PUB`: publishes to subscribers.
    Pub,
    /// `SUB`: subscribes to a publisher.
    Sub,
    /// `XPUB`: a `PUB` that sees subscriptions.
    Xpub,
    /// `XSUB`: a `SUB` that sends subscriptions as messages.
    Xsub,
    /// `PUSH`: pipeline sender.
    Push,
    /// `PULL`: pipeline receiver.
    Pull,
    /// `PAIR`: exclusive pair.
    Pair,
}

impl SocketType {
    /// Every socket type, in RFC 23's order.
    pub const ALL: [SocketType; 11] = [
        SocketType::Req,
        SocketType::Rep,
        SocketType::Dealer,
        SocketType::Router,
        SocketType::Pub,
        SocketType::Sub,
        SocketType::Xpub,
        SocketType::Xsub,
        SocketType::Push,
        SocketType::Pull,
        SocketType::Pair,
    ];

    /// The name on the wire (upper case, as libzmq sends it).
    pub const fn as_str(self) -> &'static str {
        match self {
            SocketType::Req => "REQ",
            SocketType::Rep => "REP",
            SocketType::Dealer => "DEALER",
            SocketType::Router => "ROUTER",
            SocketType::Pub => "PUB",
            SocketType::Sub => "SUB",
            SocketType::Xpub => "XPUB",
            SocketType::Xsub => "XSUB",
            SocketType::Push => "PUSH",
            SocketType::Pull => "PULL",
            SocketType::Pair => "PAIR",
        }
    }

    /// The socket type a `Socket-Type` value names. RFC 23 spells them in upper case and
    /// libzmq compares them exactly, so this does too.
    pub fn from_wire(name: &[u8]) -> Option<SocketType> {
        SocketType::ALL.into_iter().find(|t| t.as_str().as_bytes() == name)
    }

    /// Whether a socket of this type may talk to a `peer` (RFC 23, "Socket
    /// Compatibility"): REQ with REP or ROUTER, REP with REQ or DEALER, DEALER with REP,
    /// DEALER or ROUTER, ROUTER with REQ, DEALER or ROUTER, PUB and XPUB with SUB or
    /// XSUB (and back), PUSH with PULL, PAIR with PAIR.
    pub const fn is_compatible_with(self, peer: SocketType) -> bool {
        use SocketType::*;
        matches!(
            (self, peer),
            (Req, Rep | Router)
                | (Rep, Req | Dealer)
                | (Dealer, Rep | Dealer | Router)
                | (Router, Req | Dealer | Router)
                | (Pub | Xpub, Sub | Xsub)
                | (Sub | Xsub, Pub | Xpub)
                | (Push, Pull)
                | (Pull, Push)
                | (Pair, Pair)
        )
    }

    /// Whether this type announces an `Identity` in its metadata (libzmq sends it for
    /// REQ, DEALER and ROUTER, the types a ROUTER peer addresses).
    pub const fn announces_identity(self) -> bool {
        matches!(self, SocketType::Req | SocketType::Dealer | SocketType::Router)
    }
}

impl fmt::Display for SocketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_exact() {
        for t in SocketType::ALL {
            assert_eq!(SocketType::from_wire(t.as_str().as_bytes()), Some(t));
        }
        assert_eq!(SocketType::from_wire(b"dealer"), None);
        assert_eq!(SocketType::from_wire(b"DEALER "), None);
    }

    #[test]
    fn compatibility_is_symmetric_and_matches_rfc_23() {
        for a in SocketType::ALL {
            for b in SocketType::ALL {
                assert_eq!(a.is_compatible_with(b), b.is_compatible_with(a), "{a} {b}");
            }
        }
        let valid = SocketType::ALL
            .iter()
            .flat_map(|a| SocketType::ALL.iter().map(move |b| (*a, *b)))
            .filter(|(a, b)| a.is_compatible_with(*b))
            .count();
        // REQ 2, REP 2, DEALER 3, ROUTER 3, PUB 2, SUB 2, XPUB 2, XSUB 2, PUSH 1, PULL 1, PAIR 1.
        assert_eq!(valid, 21);
        assert!(!SocketType::Req.is_compatible_with(SocketType::Req));
        assert!(!SocketType::Pub.is_compatible_with(SocketType::Pub));
        assert!(!SocketType::Push.is_compatible_with(SocketType::Dealer));
    }
}
