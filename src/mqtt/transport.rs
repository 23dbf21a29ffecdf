//! The broker's two transports on one driver: MQTT over TCP, and MQTT over WebSocket
//! (a [`WsSession`] around the same [`Connection`]), as one session type; and
//! [`Counted`], the session the driver runs, which counts the bytes for `$SYS`.
//!
//! The WebSocket kind is boxed: a driver's slot is as large as its largest session
//! kind, and a plain TCP connection (the common case, and the one the idle-memory
//! target is about) should not pay for the WebSocket state (576 bytes against 328).

use std::cell::Cell;
use std::time::Instant;

use bytes::Bytes;
use monocoque_proto::mqtt::broker::{Connection, Event};
use monocoque_proto::ws::WsSession;
use monocoque_proto::{Either, IoArena, Session};

/// A broker connection as the driver runs it: plain TCP (left) or WebSocket (right).
pub type BrokerSession = Either<Connection, Box<WsSession<Connection>>>;

thread_local! {
    /// Bytes received from and queued to clients by this thread's connections.
    static BYTES: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// This thread's byte counts so far: `(received, sent)`. Sent counts the MQTT bytes
/// queued to clients (over WebSocket: the broker's packets, without the frames and
/// without the acknowledgements the connection writes on its own).
pub(crate) fn bytes() -> (u64, u64) {
    BYTES.with(Cell::get)
}

/// Adds `n` bytes queued to clients.
pub(crate) fn count_sent(n: usize) {
    BYTES.with(|b| {
        let (r, s) = b.get();
        b.set((r, s + n as u64));
    });
}

fn count_received(n: usize) {
    BYTES.with(|b| {
        let (r, s) = b.get();
        b.set((r + n as u64, s));
    });
}

/// A [`BrokerSession`] that counts what it receives and what it writes on its own
/// (acknowledgements, `PINGRESP`) in this thread's [`bytes`]; a newtype, so a slot
/// stays the size of a [`Connection`].
#[derive(Debug)]
pub(crate) struct Counted(pub(crate) BrokerSession);

/// The queued length of a TCP connection's arena (a WebSocket one is not measured:
/// its framing moves the inner connection's bytes as it goes).
pub(crate) fn queued(session: &mut BrokerSession) -> usize {
    match session {
        Either::Left(c) => Session::poll_transmit(c).map_or(0, |a| a.len()),
        Either::Right(_) => 0,
    }
}

impl Counted {
    fn counting(&mut self, f: impl FnOnce(&mut BrokerSession)) {
        let before = queued(&mut self.0);
        f(&mut self.0);
        count_sent(queued(&mut self.0).saturating_sub(before));
    }
}

impl Session for Counted {
    type Event = Either<Event, Event>;

    fn handle_input(&mut self, data: Bytes, now: Instant) {
        count_received(data.len());
        self.counting(|s| s.handle_input(data, now));
    }

    fn handle_eof(&mut self, now: Instant) {
        self.0.handle_eof(now);
    }

    fn handle_timeout(&mut self, now: Instant) {
        self.counting(|s| s.handle_timeout(now));
    }

    fn poll_transmit(&mut self) -> Option<&mut IoArena> {
        self.0.poll_transmit()
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.0.poll_timeout()
    }

    fn poll_event(&mut self) -> Option<Self::Event> {
        self.0.poll_event()
    }

    fn wants_read(&self) -> bool {
        self.0.wants_read()
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }
}

/// The MQTT connection inside a session, whatever carries it.
pub(crate) fn connection(session: &mut BrokerSession) -> &mut Connection {
    match session {
        Either::Left(c) => c,
        Either::Right(ws) => ws.inner_mut(),
    }
}

/// A session's event: the same MQTT event on either transport.
pub(crate) fn event(event: Either<Event, Event>) -> Event {
    match event {
        Either::Left(e) | Either::Right(e) => e,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tcp_connection_pays_nothing_for_websocket_or_counting() {
        assert_eq!(
            std::mem::size_of::<BrokerSession>(),
            std::mem::size_of::<Connection>(),
            "the WebSocket variant must stay boxed"
        );
        assert_eq!(std::mem::size_of::<Counted>(), std::mem::size_of::<Connection>());
    }
}
