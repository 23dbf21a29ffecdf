//! Will messages waiting out their Will Delay Interval (5.0, 3.1.3.2.2).
//!
//! The delay the broker keeps is the lower of the Will Delay Interval and the
//! Session Expiry Interval, fixed at `CONNECT` ([`effective_delay`]): the will goes
//! at the earlier of the delay and the session's end [MQTT-3.1.2-8]. A new
//! connection for the client identifier within the delay cancels it
//! [MQTT-3.1.3-9].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::mqtt::Will;

/// The delay to wait before publishing a will: the lower of its Will Delay Interval
/// and the session's expiry (`session_expiry` seconds; a session that ends with the
/// connection has 0).
pub fn effective_delay(will: &Will, session_expiry: u32) -> u32 {
    will.properties.will_delay_interval.unwrap_or(0).min(session_expiry)
}

/// Wills whose connection is gone, by client identifier, each with when it is due.
#[derive(Debug, Default)]
pub struct PendingWills {
    by_client: HashMap<Bytes, (Instant, Will)>,
}

impl PendingWills {
    /// Holds `client`'s will until `now` plus its delay (in its Will Delay Interval
    /// property, as [`effective_delay`] left it).
    pub fn schedule(&mut self, client: Bytes, will: Will, now: Instant) {
        let delay = Duration::from_secs(u64::from(will.properties.will_delay_interval.unwrap_or(0)));
        self.by_client.insert(client, (now + delay, will));
    }

    /// Takes `client`'s pending will away (to cancel or to publish it now).
    pub fn take(&mut self, client: &[u8]) -> Option<Will> {
        self.by_client.remove(client).map(|(_, w)| w)
    }

    /// When the next will is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.by_client.values().map(|(at, _)| *at).min()
    }

    /// Removes and returns the wills due at `now`.
    pub fn take_due(&mut self, now: Instant) -> Vec<(Bytes, Will)> {
        let due: Vec<Bytes> = self
            .by_client
            .iter()
            .filter(|(_, (at, _))| *at <= now)
            .map(|(c, _)| c.clone())
            .collect();
        due.into_iter()
            .filter_map(|c| self.by_client.remove(&c).map(|(_, w)| (c, w)))
            .collect()
    }

    /// Number of wills waiting.
    pub fn waiting(&self) -> usize {
        self.by_client.len()
    }
}
