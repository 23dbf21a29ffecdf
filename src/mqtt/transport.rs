//! The broker's two transports on one driver: MQTT over TCP, and MQTT over WebSocket
//! (a [`WsSession`] around the same [`Connection`]), as one session type.

use monocoque_proto::mqtt::broker::{Connection, Event};
use monocoque_proto::ws::WsSession;
use monocoque_proto::Either;

/// A broker connection as the driver runs it: plain TCP (left) or WebSocket (right).
pub type BrokerSession = Either<Connection, WsSession<Connection>>;

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
