//! `$SYS/broker/...`: the broker's statistics as retained messages, like mosquitto's.
//!
//! [`SysTopics`] says when the next round is due and builds its messages from the
//! [`SysTotals`] the body sums over its threads; the body publishes them (retained,
//! QoS 0) through [`BrokerState::publish_system`](super::BrokerState::publish_system).
//! Leading wildcards do not match `$SYS` topics (4.7.2), so only a subscription that
//! names `$SYS/...` sees them. No clock here: `now` is an argument.

use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::mqtt::{Properties, Publish, QoS};

/// The figures of one round, summed over every thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SysTotals {
    /// Clients connected now.
    pub clients_connected: u64,
    /// Application messages received from clients since the start.
    pub messages_received: u64,
    /// Application messages sent to clients since the start.
    pub messages_sent: u64,
    /// Bytes received from clients since the start.
    pub bytes_received: u64,
    /// Bytes queued to clients since the start.
    pub bytes_sent: u64,
    /// Subscriptions held now.
    pub subscriptions: u64,
    /// Retained messages held now (each thread keeps a replica: one thread's count).
    pub retained: u64,
}

/// When the `$SYS` messages are due, and what they say.
#[derive(Debug)]
pub struct SysTopics {
    interval: Duration,
    started: Instant,
    next: Instant,
    version: Bytes,
}

impl SysTopics {
    /// Rounds every `interval` (at least a second) from `now`, the first one at once;
    /// `version` is what `$SYS/broker/version` says.
    pub fn new(interval: Duration, version: &str, now: Instant) -> SysTopics {
        SysTopics {
            interval: interval.max(Duration::from_secs(1)),
            started: now,
            next: now,
            version: Bytes::copy_from_slice(version.as_bytes()),
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) is next due.
    pub fn poll_timeout(&self) -> Instant {
        self.next
    }

    /// The round's messages if one is due at `now` (none otherwise): every topic,
    /// retained, QoS 0.
    pub fn handle_timeout(&mut self, now: Instant, totals: &SysTotals) -> Vec<Publish> {
        if now < self.next {
            return Vec::new();
        }
        // The next round is an interval after this one, not after a late wake.
        while self.next <= now {
            self.next += self.interval;
        }
        let uptime = now.saturating_duration_since(self.started).as_secs();
        let figures: [(&'static str, String); 9] = [
            ("$SYS/broker/uptime", format!("{uptime} seconds")),
            ("$SYS/broker/clients/connected", totals.clients_connected.to_string()),
            ("$SYS/broker/clients/active", totals.clients_connected.to_string()),
            ("$SYS/broker/messages/received", totals.messages_received.to_string()),
            ("$SYS/broker/messages/sent", totals.messages_sent.to_string()),
            ("$SYS/broker/bytes/received", totals.bytes_received.to_string()),
            ("$SYS/broker/bytes/sent", totals.bytes_sent.to_string()),
            ("$SYS/broker/subscriptions/count", totals.subscriptions.to_string()),
            ("$SYS/broker/retained messages/count", totals.retained.to_string()),
        ];
        let mut out = Vec::with_capacity(figures.len() + 1);
        out.push(message("$SYS/broker/version", self.version.clone()));
        for (topic, value) in figures {
            out.push(message(topic, Bytes::from(value)));
        }
        out
    }
}

fn message(topic: &'static str, payload: Bytes) -> Publish {
    Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: true,
        topic: Bytes::from_static(topic.as_bytes()),
        packet_id: 0,
        properties: Properties::default(),
        payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounds_are_due_every_interval_with_the_totals() {
        let t0 = Instant::now();
        let mut sys = SysTopics::new(Duration::from_secs(10), "monocoque 0.1.0", t0);
        let totals = SysTotals {
            clients_connected: 3,
            messages_received: 7,
            bytes_sent: 99,
            ..SysTotals::default()
        };
        let first = sys.handle_timeout(t0, &totals);
        let get = |msgs: &[Publish], topic: &str| {
            msgs.iter()
                .find(|p| p.topic == topic.as_bytes())
                .map(|p| String::from_utf8_lossy(&p.payload).into_owned())
        };
        assert!(first.iter().all(|p| p.retain && p.qos == QoS::AtMostOnce));
        assert_eq!(get(&first, "$SYS/broker/version").as_deref(), Some("monocoque 0.1.0"));
        assert_eq!(get(&first, "$SYS/broker/clients/connected").as_deref(), Some("3"));
        assert_eq!(get(&first, "$SYS/broker/messages/received").as_deref(), Some("7"));
        assert_eq!(get(&first, "$SYS/broker/bytes/sent").as_deref(), Some("99"));
        assert_eq!(get(&first, "$SYS/broker/uptime").as_deref(), Some("0 seconds"));
        assert_eq!(sys.poll_timeout(), t0 + Duration::from_secs(10));
        assert!(sys.handle_timeout(t0 + Duration::from_secs(9), &totals).is_empty());
        // A late wake does not shift the schedule.
        let late = sys.handle_timeout(t0 + Duration::from_secs(12), &totals);
        assert_eq!(get(&late, "$SYS/broker/uptime").as_deref(), Some("12 seconds"));
        assert_eq!(sys.poll_timeout(), t0 + Duration::from_secs(20));
    }
}
