//! Will messages waiting out their Will Delay Interval (5.0, 3.1.3.2.2).
//!
//! The delay the broker keeps is the lower of the Will Delay Interval and the
//! Session Expiry Interval ([`effective_delay`]), taken at `CONNECT` and again when a
//! `DISCONNECT` shortens the session: the will goes at the earlier of the delay and
//! the session's end [MQTT-3.1.2-8]. A new
//! connection for the client identifier within the delay cancels it
//! [MQTT-3.1.3-9].

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::mqtt::Will;

/// The delay to wait before publishing a will: the lower of its Will Delay Interval
/// and the session's expiry (`session_expiry` seconds; a session that ends with the
/// connection has 0).
pub fn effective_delay(will: &Will, session_expiry: u32) -> u32 {
    will.properties.will_delay_interval.unwrap_or(0).min(session_expiry)
}

/// Wills whose connection is gone, by client identifier, each with when it is due;
/// an index by due time keeps the next deadline and the due wills cheap to find.
#[derive(Debug, Default)]
pub struct PendingWills {
    by_client: HashMap<Bytes, (Instant, u64, Will)>,
    by_due: BTreeMap<(Instant, u64), Bytes>,
    seq: u64,
}

impl PendingWills {
    /// Holds `client`'s will until `now` plus its delay (in its Will Delay Interval
    /// property, as [`effective_delay`] left it).
    pub fn schedule(&mut self, client: Bytes, will: Will, now: Instant) {
        self.take(&client);
        let delay = Duration::from_secs(u64::from(will.properties.will_delay_interval.unwrap_or(0)));
        self.seq += 1;
        let due = now + delay;
        self.by_due.insert((due, self.seq), client.clone());
        self.by_client.insert(client, (due, self.seq, will));
    }

    /// Takes `client`'s pending will away (to cancel or to publish it now).
    pub fn take(&mut self, client: &[u8]) -> Option<Will> {
        let (due, seq, will) = self.by_client.remove(client)?;
        self.by_due.remove(&(due, seq));
        Some(will)
    }

    /// When the next will is due.
    pub fn next_due(&self) -> Option<Instant> {
        self.by_due.keys().next().map(|(due, _)| *due)
    }

    /// Removes and returns the wills due at `now`, earliest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<(Bytes, Will)> {
        let mut out = Vec::new();
        while let Some(entry) = self.by_due.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let client = entry.remove();
            if let Some((_, _, will)) = self.by_client.remove(&client) {
                out.push((client, will));
            }
        }
        out
    }

    /// Number of wills waiting.
    pub fn waiting(&self) -> usize {
        self.by_client.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::{Properties, QoS};

    fn will(delay: u32) -> Will {
        Will {
            properties: Properties {
                will_delay_interval: Some(delay),
                ..Properties::default()
            },
            topic: Bytes::from_static(b"w"),
            payload: Bytes::new(),
            qos: QoS::AtMostOnce,
            retain: false,
        }
    }

    #[test]
    fn due_in_order_rescheduled_and_cancelled() {
        let t = Instant::now();
        let at = |s| t + Duration::from_secs(s);
        let mut w = PendingWills::default();
        w.schedule(Bytes::from_static(b"a"), will(5), t);
        w.schedule(Bytes::from_static(b"b"), will(2), t);
        w.schedule(Bytes::from_static(b"c"), will(9), t);
        w.schedule(Bytes::from_static(b"a"), will(3), t);
        assert_eq!((w.waiting(), w.next_due()), (3, Some(at(2))));
        assert!(w.take(b"c").is_some());
        assert!(w.take_due(at(1)).is_empty());
        let due: Vec<Bytes> = w.take_due(at(5)).into_iter().map(|(c, _)| c).collect();
        assert_eq!(due, [Bytes::from_static(b"b"), Bytes::from_static(b"a")]);
        assert_eq!((w.waiting(), w.next_due()), (0, None));
    }
}
