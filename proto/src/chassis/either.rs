//! Sessions of two kinds on one driver.
//!
//! A driver runs one session type `S`. A core that serves two protocols (an MQTT
//! listener and NATS bridge links, a RESP server and its replication link) runs
//! `Either<A, B>`: every [`Session`] call is one `match` on the variant, then the
//! inner session's own method, statically dispatched (no trait object, no allocation).
//! More protocols nest: `Either<A, Either<B, C>>`. `benches/mailbox.rs` measures the
//! cost against the bare session on the driver's hot path.
//!
//! The body that reads a connection's events gets `Either<A::Event, B::Event>` and
//! knows which protocol the connection speaks from the variant, or from how it made it.

use std::time::Instant;

use bytes::Bytes;

use super::{IoArena, Session};

/// One of two values: a session of one of two protocols, or an event of one of them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Either<L, R> {
    /// The first kind.
    Left(L),
    /// The second kind.
    Right(R),
}

impl<L, R> Either<L, R> {
    /// The first kind, if this is it.
    pub fn left(&self) -> Option<&L> {
        match self {
            Either::Left(l) => Some(l),
            Either::Right(_) => None,
        }
    }

    /// The second kind, if this is it.
    pub fn right(&self) -> Option<&R> {
        match self {
            Either::Left(_) => None,
            Either::Right(r) => Some(r),
        }
    }

    /// The first kind, mutably, if this is it.
    pub fn left_mut(&mut self) -> Option<&mut L> {
        match self {
            Either::Left(l) => Some(l),
            Either::Right(_) => None,
        }
    }

    /// The second kind, mutably, if this is it.
    pub fn right_mut(&mut self) -> Option<&mut R> {
        match self {
            Either::Left(_) => None,
            Either::Right(r) => Some(r),
        }
    }
}

/// Calls `$method` on whichever session is inside.
macro_rules! both {
    ($this:expr, $s:ident => $body:expr) => {
        match $this {
            Either::Left($s) => $body,
            Either::Right($s) => $body,
        }
    };
}

impl<L: Session, R: Session> Session for Either<L, R> {
    type Event = Either<L::Event, R::Event>;

    #[inline]
    fn handle_input(&mut self, data: Bytes, now: Instant) {
        both!(self, s => s.handle_input(data, now))
    }

    #[inline]
    fn handle_eof(&mut self, now: Instant) {
        both!(self, s => s.handle_eof(now))
    }

    #[inline]
    fn handle_timeout(&mut self, now: Instant) {
        both!(self, s => s.handle_timeout(now))
    }

    #[inline]
    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        both!(self, s => s.poll_transmit())
    }

    #[inline]
    fn poll_timeout(&self) -> Option<Instant> {
        both!(self, s => s.poll_timeout())
    }

    #[inline]
    fn poll_event(&mut self) -> Option<Self::Event> {
        match self {
            Either::Left(s) => s.poll_event().map(Either::Left),
            Either::Right(s) => s.poll_event().map(Either::Right),
        }
    }

    #[inline]
    fn wants_read(&self) -> bool {
        both!(self, s => s.wants_read())
    }

    #[inline]
    fn is_closed(&self) -> bool {
        both!(self, s => s.is_closed())
    }

    #[inline]
    fn handle_sent(&mut self) -> bool {
        both!(self, s => s.handle_sent())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chassis::sim::{LinkConfig, Pair};

    /// Echoes what it receives; reports each input's length.
    #[derive(Default)]
    struct Echo {
        out: IoArena,
        events: Vec<usize>,
    }

    impl Session for Echo {
        type Event = usize;
        fn handle_input(&mut self, data: Bytes, _now: Instant) {
            self.events.push(data.len());
            self.out.put_shared(data);
        }
        fn handle_eof(&mut self, _now: Instant) {}
        fn handle_timeout(&mut self, _now: Instant) {}
        fn poll_transmit(&mut self) -> Option<&mut IoArena> {
            (!self.out.is_empty()).then_some(&mut self.out)
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn poll_event(&mut self) -> Option<usize> {
            self.events.pop()
        }
        fn is_closed(&self) -> bool {
            false
        }
    }

    /// Collects what it receives; says something first.
    #[derive(Default)]
    struct Hello {
        out: IoArena,
        got: Vec<u8>,
        said: bool,
    }

    impl Session for Hello {
        type Event = String;
        fn handle_input(&mut self, data: Bytes, _now: Instant) {
            self.got.extend_from_slice(&data);
        }
        fn handle_eof(&mut self, _now: Instant) {}
        fn handle_timeout(&mut self, _now: Instant) {}
        fn poll_transmit(&mut self) -> Option<&mut IoArena> {
            if !self.said {
                self.said = true;
                self.out.put_slice(b"hello");
            }
            (!self.out.is_empty()).then_some(&mut self.out)
        }
        fn poll_timeout(&self) -> Option<Instant> {
            None
        }
        fn poll_event(&mut self) -> Option<String> {
            (!self.got.is_empty()).then(|| String::from_utf8_lossy(&std::mem::take(&mut self.got)).into_owned())
        }
        fn is_closed(&self) -> bool {
            false
        }
    }

    #[test]
    fn either_forwards_every_call_to_the_session_inside() {
        type Mixed = Either<Hello, Echo>;
        let now = Instant::now();
        let client = Mixed::Left(Hello::default());
        let server = Mixed::Right(Echo::default());
        let mut pair = Pair::new(client, server, now, 7, LinkConfig::default());
        pair.drive_until(1000, |p| {
            p.events_a
                .iter()
                .map(|e| e.left().map_or(0, String::len))
                .sum::<usize>()
                == 5
        });
        assert!(pair.a.right().is_none() && pair.b.left().is_none());
        let echoed: String = pair.events_a.iter().filter_map(|e| e.left().cloned()).collect();
        assert_eq!(echoed, "hello");
        let received: usize = pair.events_b.iter().filter_map(|e| e.right().copied()).sum();
        assert_eq!(received, 5);
    }
}
