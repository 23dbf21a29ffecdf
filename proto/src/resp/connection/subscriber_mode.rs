//! RESP2 subscriber mode: while a RESP2 connection has subscriptions (or a subscribe
//! is on its way), the server accepts only a few commands, and answers anything else
//! with an error. The connection refuses those commands itself, before they are sent.

use bytes::Bytes;

use super::{Connection, SendError};
use crate::resp::Protocol;

/// The commands a RESP2 connection accepts in subscriber mode.
pub const SUBSCRIBER_MODE_COMMANDS: [&[u8]; 9] = [
    b"SUBSCRIBE",
    b"PSUBSCRIBE",
    b"SSUBSCRIBE",
    b"UNSUBSCRIBE",
    b"PUNSUBSCRIBE",
    b"SUNSUBSCRIBE",
    b"PING",
    b"QUIT",
    b"RESET",
];

/// Whether subscriber mode allows the command named `name` (in any case).
fn allows(name: &[u8]) -> bool {
    SUBSCRIBER_MODE_COMMANDS.iter().any(|c| name.eq_ignore_ascii_case(c))
}

/// The rule itself: in subscriber mode (`protocol` RESP2 and `subscribed`), only
/// [`SUBSCRIBER_MODE_COMMANDS`] pass.
pub(super) fn check(protocol: Protocol, subscribed: bool, name: &[u8]) -> Result<(), SendError> {
    if protocol == Protocol::Resp2 && subscribed && !allows(name) {
        return Err(SendError::SubscriberMode {
            command: Bytes::copy_from_slice(name),
        });
    }
    Ok(())
}

impl Connection {
    /// Whether the connection would take a command named `name` now as far as RESP2
    /// subscriber mode goes: `Err(SendError::SubscriberMode)` when it is in it and
    /// `name` is not one of [`SUBSCRIBER_MODE_COMMANDS`]. The send methods check it
    /// first; a body that keeps commands of its own before handing them over asks it
    /// too, to refuse them when they are given.
    ///
    /// The connection is in subscriber mode when it speaks RESP2 (before the handshake
    /// completes: the protocol asked for, or a [resumed](Self::resume) connection's
    /// last one) and it has subscriptions or a subscribe command is on its way.
    ///
    /// # Errors
    /// [`SendError::SubscriberMode`], as said.
    pub fn admits(&self, name: &[u8]) -> Result<(), SendError> {
        let protocol = if self.connected {
            self.protocol
        } else {
            self.assumed_protocol
        };
        if protocol != Protocol::Resp2 {
            return Ok(());
        }
        let subscribed = self.pending_subscribes > 0 || !self.subscriptions.is_empty();
        check(protocol, subscribed, name)
    }
}
