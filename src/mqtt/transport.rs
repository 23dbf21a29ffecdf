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
    /// This thread's broker is held (another thread's mailbox has no room for its
    /// messages): a connection with events not yet taken reads no more.
    static HELD: Cell<bool> = const { Cell::new(false) };
}

/// Holds (or lets go) this thread's connections' input: while held, a connection
/// whose events the body has not taken stops reading (`wants_read` is false), so TCP
/// flow control holds its client. Only a connection fed input (or a timeout) while
/// held has events, and the driver reports each as `Activity::Ready`: the body, once
/// it lets go, drains those, which has the driver look at `wants_read` again and
/// resume them. A connection without events keeps reading until it has some.
pub(crate) fn set_held(held: bool) {
    HELD.with(|h| h.set(held));
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
        self.0.wants_read() && !(HELD.with(Cell::get) && has_events(&self.0))
    }

    fn is_closed(&self) -> bool {
        self.0.is_closed()
    }

    // Passed through like every other call, so a connection inside that asks to hear
    // of its writes is told (the broker's never ask today).
    fn handle_sent(&mut self) -> bool {
        self.0.handle_sent()
    }
}

/// The MQTT connection inside a session, whatever carries it.
pub(crate) fn connection(session: &mut BrokerSession) -> &mut Connection {
    match session {
        Either::Left(c) => c,
        Either::Right(ws) => ws.inner_mut(),
    }
}

/// Whether the MQTT connection inside a session has events not yet taken.
fn has_events(session: &BrokerSession) -> bool {
    match session {
        Either::Left(c) => c.has_events(),
        Either::Right(ws) => ws.inner().has_events(),
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
    fn a_held_thread_stops_reading_connections_with_events_not_taken() {
        use monocoque_proto::mqtt::broker::ConnectionConfig;
        let now = Instant::now();
        let mut session = Counted(Either::Left(Connection::new(ConnectionConfig::default(), now)));
        set_held(true);
        assert!(session.wants_read(), "no events: reads on while held");
        // A 3.1.1 CONNECT, client id "c": one event for the body.
        let connect = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c";
        session.handle_input(Bytes::from_static(connect), now);
        assert!(!session.wants_read(), "held, with an event not taken: paused");
        set_held(false);
        assert!(session.wants_read(), "let go: reads again");
        set_held(true);
        assert!(session.poll_event().is_some());
        assert!(session.wants_read(), "its events taken: reads again while held");
        set_held(false);
    }

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
