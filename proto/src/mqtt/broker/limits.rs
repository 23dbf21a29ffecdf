//! The broker's limits as the `CONNACK` states them: its Receive Maximum, its Topic
//! Alias Maximum and the keep alive it allows (Server Keep Alive in 5.0, a refusal in 3.1.1).

use crate::mqtt::{ConnAck, Connect, ReasonCode};
use std::cell::RefCell;
use std::sync::Arc;

use super::ConnectionConfig;

/// The limits a connection keeps from its [`ConnectionConfig`], shared by the
/// connections of a thread made with the same configuration ([`shared`]): a
/// connection holds a pointer, not a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    max_output_bytes: u32,
    max_queued: u32,
    /// The broker's Receive Maximum.
    pub(crate) receive_maximum: u16,
    /// The cap on QoS 1 and 2 messages in flight to the client.
    pub(crate) max_inflight: u16,
    /// The keep alive cap, if any.
    pub(crate) max_keep_alive: Option<u16>,
    /// Topic aliases allowed each way (0: none).
    pub(crate) topic_alias_maximum: u16,
    /// Acknowledgements wait for the store ([`ConnectionConfig::durable`]).
    pub(crate) durable: bool,
    /// The connect timeout in milliseconds, for each enhanced authentication step.
    pub(crate) auth_timeout_ms: u32,
}

thread_local! {
    /// The limits last made on this thread: the connections of a broker thread all
    /// share one configuration, so they share one copy.
    static LAST: RefCell<Option<Arc<Limits>>> = const { RefCell::new(None) };
}

/// The limits of `config`, shared with the previous connection made on this thread
/// when it had the same.
pub(crate) fn shared(config: &ConnectionConfig) -> Arc<Limits> {
    let limits = Limits::from(config);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match last.as_ref() {
            Some(kept) if **kept == limits => Arc::clone(kept),
            _ => {
                let made = Arc::new(limits);
                *last = Some(Arc::clone(&made));
                made
            }
        }
    })
}

impl From<&ConnectionConfig> for Limits {
    fn from(c: &ConnectionConfig) -> Limits {
        Limits {
            max_output_bytes: u32::try_from(c.max_output_bytes).unwrap_or(u32::MAX),
            max_queued: u32::try_from(c.max_queued_messages).unwrap_or(u32::MAX),
            receive_maximum: c.receive_maximum,
            max_inflight: c.max_inflight,
            max_keep_alive: c.max_keep_alive,
            topic_alias_maximum: c.topic_alias_maximum,
            durable: c.durable,
            auth_timeout_ms: u32::try_from(c.connect_timeout.as_millis()).unwrap_or(u32::MAX),
        }
    }
}

impl Limits {
    /// Unsent output bytes past which the connection stops taking messages.
    pub(crate) fn max_output_bytes(&self) -> usize {
        self.max_output_bytes as usize
    }

    /// The most messages a session queues.
    pub(crate) fn max_queued(&self) -> usize {
        self.max_queued as usize
    }
}

/// Whether a `CONNECT` is refused for its keep alive: a 3.1.1 client cannot be told
/// another value, so one asking for more than the cap (or for none) is refused with
/// "identifier rejected", as mosquitto's `max_keepalive` does.
pub(crate) fn refusal(connect: &Connect, config: &Limits) -> Option<ReasonCode> {
    let cap = config.max_keep_alive?;
    let over = connect.keep_alive == 0 || connect.keep_alive > cap;
    (!connect.protocol.is_v5() && over).then_some(ReasonCode::ClientIdentifierNotValid)
}

/// Completes an accepting `CONNACK` with the broker's limits and returns the keep alive
/// in force: the client's, or for a 5.0 client over the cap, the cap, announced as
/// Server Keep Alive, which the client then uses [MQTT-3.2.2-21]. The broker's
/// Receive Maximum is announced when it is below the default 65,535.
pub(crate) fn negotiate(ack: &mut ConnAck, keep_alive: u16, v5: bool, config: &Limits) -> u16 {
    if !v5 {
        return keep_alive;
    }
    if config.receive_maximum < u16::MAX {
        ack.properties.receive_maximum = Some(config.receive_maximum.max(1));
    }
    if config.topic_alias_maximum > 0 {
        ack.properties.topic_alias_maximum = Some(config.topic_alias_maximum);
    }
    match config.max_keep_alive {
        Some(cap) if keep_alive == 0 || keep_alive > cap => {
            ack.properties.server_keep_alive = Some(cap);
            cap
        }
        _ => keep_alive,
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::mqtt::{Properties, ProtocolVersion};

    fn connect(protocol: ProtocolVersion, keep_alive: u16) -> Connect {
        Connect {
            protocol,
            clean_start: true,
            keep_alive,
            properties: Properties::default(),
            client_id: Bytes::from_static(b"c"),
            will: None,
            username: None,
            password: None,
        }
    }

    fn ack() -> ConnAck {
        ConnAck {
            session_present: false,
            code: ReasonCode::Success,
            properties: Properties::default(),
        }
    }

    #[test]
    fn a_capped_keep_alive_is_announced_to_5_and_refused_to_311() {
        let config = Limits::from(&ConnectionConfig {
            max_keep_alive: Some(30),
            ..ConnectionConfig::default()
        });
        let mut a = ack();
        assert_eq!(negotiate(&mut a, 60, true, &config), 30);
        assert_eq!(a.properties.server_keep_alive, Some(30));
        let mut a = ack();
        assert_eq!(negotiate(&mut a, 0, true, &config), 30, "none asked: the cap");
        let mut a = ack();
        assert_eq!(negotiate(&mut a, 10, true, &config), 10);
        assert_eq!(a.properties.server_keep_alive, None);
        assert_eq!(
            refusal(&connect(ProtocolVersion::V3_1_1, 60), &config),
            Some(ReasonCode::ClientIdentifierNotValid)
        );
        assert_eq!(
            refusal(&connect(ProtocolVersion::V3_1_1, 0), &config),
            Some(ReasonCode::ClientIdentifierNotValid)
        );
        assert_eq!(refusal(&connect(ProtocolVersion::V3_1_1, 30), &config), None);
        assert_eq!(refusal(&connect(ProtocolVersion::V5, 60), &config), None);
        assert_eq!(
            refusal(
                &connect(ProtocolVersion::V3_1_1, 60),
                &Limits::from(&ConnectionConfig::default())
            ),
            None
        );
    }

    #[test]
    fn the_receive_maximum_is_announced_to_5_only() {
        let config = Limits::from(&ConnectionConfig {
            receive_maximum: 4,
            ..ConnectionConfig::default()
        });
        let mut a = ack();
        negotiate(&mut a, 10, true, &config);
        assert_eq!(a.properties.receive_maximum, Some(4));
        let mut a = ack();
        negotiate(&mut a, 10, false, &config);
        assert_eq!(a.properties, Properties::default());
    }
}
