//! The broker's two transports on one driver: MQTT over TCP, and MQTT over WebSocket
//! (a [`WsSession`] around the same [`Connection`]), as one session type.
//!
//! The WebSocket kind is boxed: a driver's slot is as large as its largest session
//! kind, and a plain TCP connection (the common case, and the one the idle-memory
//! target is about) should not pay for the WebSocket state (576 bytes against 328).

use monocoque_proto::mqtt::broker::{Connection, Event};
use monocoque_proto::ws::WsSession;
use monocoque_proto::Either;

/// A broker connection as the driver runs it: plain TCP (left) or WebSocket (right).
pub type BrokerSession = Either<Connection, Box<WsSession<Connection>>>;

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
    fn a_tcp_connection_pays_nothing_for_websocket() {
        assert_eq!(
            std::mem::size_of::<BrokerSession>(),
            std::mem::size_of::<Connection>(),
            "the WebSocket variant must stay boxed"
        );
    }
}
