//! Pub/sub: recognising messages, subscription confirmations and invalidations, and
//! tracking what the connection is subscribed to.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::resp::{Cmd, Value};

/// The channel Redis publishes client-side caching invalidations on when tracking is
/// redirected (`CLIENT TRACKING on REDIRECT id`), and in RESP2.
const INVALIDATE_CHANNEL: &[u8] = b"__redis__:invalidate";

/// Where a pub/sub message came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// A channel subscribed with `SUBSCRIBE` (a `message` frame).
    Channel,
    /// A channel that matched this pattern, subscribed with `PSUBSCRIBE` (a `pmessage`
    /// frame).
    Pattern(Bytes),
    /// A shard channel subscribed with `SSUBSCRIBE` (an `smessage` frame).
    Shard,
}

/// The three kinds of subscription, each its own set on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    /// `SUBSCRIBE` / `UNSUBSCRIBE`.
    Channel,
    /// `PSUBSCRIBE` / `PUNSUBSCRIBE`.
    Pattern,
    /// `SSUBSCRIBE` / `SUNSUBSCRIBE`.
    Shard,
}

/// One of the six subscribe-family commands; its confirmations carry the same name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct SubCommand {
    /// Which set the command changes.
    pub family: Family,
    /// `true` for the subscribe forms, `false` for the unsubscribe forms.
    pub subscribe: bool,
}

impl SubCommand {
    /// The six commands, by name (their confirmations carry the same names).
    const ALL: [(&'static [u8], Family, bool); 6] = [
        (b"subscribe", Family::Channel, true),
        (b"psubscribe", Family::Pattern, true),
        (b"ssubscribe", Family::Shard, true),
        (b"unsubscribe", Family::Channel, false),
        (b"punsubscribe", Family::Pattern, false),
        (b"sunsubscribe", Family::Shard, false),
    ];

    /// Recognises a subscribe-family command or confirmation name, in any case.
    pub fn parse(name: &[u8]) -> Option<Self> {
        Self::ALL
            .iter()
            .find(|(n, _, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, family, subscribe)| Self { family, subscribe })
    }
}

/// What an out-of-band frame (a RESP3 push, or a RESP2 array in subscribed mode) is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PubSubFrame {
    /// A published message.
    Message {
        /// Channel, pattern or shard.
        kind: MessageKind,
        /// The channel it was published on.
        channel: Bytes,
        /// What was published.
        payload: Bytes,
    },
    /// Client-side caching: these keys changed (`None`: everything did).
    Invalidate(Option<Vec<Bytes>>),
    /// The server confirms one channel of a subscribe-family command.
    Confirmation {
        /// Which command it confirms.
        command: SubCommand,
        /// The channel or pattern (`None` for an unsubscribe-all with nothing subscribed).
        channel: Option<Bytes>,
    },
}

/// Classifies the elements of a push (`push == true`) or of a RESP2 array received in
/// subscribed mode. `None`: not a pub/sub frame (an unknown push, or a normal reply).
pub(crate) fn classify(items: &[Value], push: bool) -> Option<PubSubFrame> {
    let name = string(items.first()?)?;
    match (&name[..], items.len()) {
        (b"message", 3) | (b"smessage", 3) => {
            let channel = string(&items[1])?;
            if channel == INVALIDATE_CHANNEL {
                return invalidation(&items[2]);
            }
            let kind = if name[0] == b's' {
                MessageKind::Shard
            } else {
                MessageKind::Channel
            };
            Some(PubSubFrame::Message {
                kind,
                channel,
                payload: string(&items[2])?,
            })
        }
        (b"pmessage", 4) => {
            let channel = string(&items[2])?;
            if channel == INVALIDATE_CHANNEL {
                return invalidation(&items[3]);
            }
            Some(PubSubFrame::Message {
                kind: MessageKind::Pattern(string(&items[1])?),
                channel,
                payload: string(&items[3])?,
            })
        }
        (b"invalidate", 2) if push => invalidation(&items[1]),
        (_, 3) => {
            let command = SubCommand::parse(&name)?;
            // Names are sent in lower case; anything else is not a confirmation.
            if name.iter().any(u8::is_ascii_uppercase) {
                return None;
            }
            items[2].as_integer()?;
            let channel = match &items[1] {
                Value::Null => None,
                other => Some(string(other)?),
            };
            Some(PubSubFrame::Confirmation { command, channel })
        }
        _ => None,
    }
}

fn invalidation(keys: &Value) -> Option<PubSubFrame> {
    match keys {
        Value::Null => Some(PubSubFrame::Invalidate(None)),
        other => {
            let keys = other.as_elements()?.iter().map(string).collect::<Option<Vec<_>>>()?;
            Some(PubSubFrame::Invalidate(Some(keys)))
        }
    }
}

fn string(value: &Value) -> Option<Bytes> {
    match value {
        Value::BulkString(b) | Value::SimpleString(b) => Some(b.clone()),
        _ => None,
    }
}

/// The channels, patterns and shard channels a connection is subscribed to, as the
/// server confirmed them.
///
/// Updated from every subscribe and unsubscribe confirmation (including those the
/// server sends on its own, such as `sunsubscribe` when a slot migrates). After a
/// reconnect, [`to_commands`](Self::to_commands) gives the commands that restore them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscriptions {
    channels: BTreeSet<Bytes>,
    patterns: BTreeSet<Bytes>,
    shard_channels: BTreeSet<Bytes>,
}

impl Subscriptions {
    /// Channels subscribed with `SUBSCRIBE`, in byte order.
    pub fn channels(&self) -> impl ExactSizeIterator<Item = &Bytes> + '_ {
        self.channels.iter()
    }

    /// Patterns subscribed with `PSUBSCRIBE`, in byte order.
    pub fn patterns(&self) -> impl ExactSizeIterator<Item = &Bytes> + '_ {
        self.patterns.iter()
    }

    /// Shard channels subscribed with `SSUBSCRIBE`, in byte order.
    pub fn shard_channels(&self) -> impl ExactSizeIterator<Item = &Bytes> + '_ {
        self.shard_channels.iter()
    }

    /// Whether `channel` is subscribed with `SUBSCRIBE`.
    pub fn has_channel(&self, channel: &[u8]) -> bool {
        self.channels.contains(channel)
    }

    /// Whether `pattern` is subscribed with `PSUBSCRIBE`.
    pub fn has_pattern(&self, pattern: &[u8]) -> bool {
        self.patterns.contains(pattern)
    }

    /// Whether `channel` is subscribed with `SSUBSCRIBE`.
    pub fn has_shard_channel(&self, channel: &[u8]) -> bool {
        self.shard_channels.contains(channel)
    }

    /// Total number of subscriptions of all three kinds.
    pub fn len(&self) -> usize {
        self.channels.len() + self.patterns.len() + self.shard_channels.len()
    }

    /// Whether there is no subscription at all (a RESP2 connection is then out of
    /// subscribed mode).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `SUBSCRIBE`, `PSUBSCRIBE` and `SSUBSCRIBE` commands (each only if needed)
    /// that restore these subscriptions on a new connection.
    ///
    /// In a cluster, the shard channels of one `SSUBSCRIBE` must hash to one slot; a
    /// body that spans slots should group them itself.
    pub fn to_commands(&self) -> Vec<Cmd> {
        [
            ("SUBSCRIBE", &self.channels),
            ("PSUBSCRIBE", &self.patterns),
            ("SSUBSCRIBE", &self.shard_channels),
        ]
        .into_iter()
        .filter(|(_, set)| !set.is_empty())
        .map(|(name, set)| Cmd::new(name).args(set.iter()))
        .collect()
    }

    /// Subscriptions of one family.
    pub(crate) fn count(&self, family: Family) -> usize {
        self.set(family).len()
    }

    /// Applies one confirmation.
    pub(crate) fn apply(&mut self, command: SubCommand, channel: Option<&Bytes>) {
        let Some(channel) = channel else { return };
        let set = self.set_mut(command.family);
        if command.subscribe {
            set.insert(channel.clone());
        } else {
            set.remove(channel);
        }
    }

    /// Adds every subscription of `other`.
    pub(crate) fn extend(&mut self, other: &Subscriptions) {
        self.channels.extend(other.channels.iter().cloned());
        self.patterns.extend(other.patterns.iter().cloned());
        self.shard_channels.extend(other.shard_channels.iter().cloned());
    }

    /// Forgets everything (after `RESET`).
    pub(crate) fn clear(&mut self) {
        *self = Self::default();
    }

    fn set(&self, family: Family) -> &BTreeSet<Bytes> {
        match family {
            Family::Channel => &self.channels,
            Family::Pattern => &self.patterns,
            Family::Shard => &self.shard_channels,
        }
    }

    fn set_mut(&mut self, family: Family) -> &mut BTreeSet<Bytes> {
        match family {
            Family::Channel => &mut self.channels,
            Family::Pattern => &mut self.patterns,
            Family::Shard => &mut self.shard_channels,
        }
    }
}
