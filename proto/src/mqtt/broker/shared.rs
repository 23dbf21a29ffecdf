//! Shared subscriptions (4.8.2): `$share/{group}/{filter}`. Each message matching a
//! group's filter goes to one member of the group, chosen round robin among the
//! members whose client is connected (any member when none is).

use std::collections::HashMap;

use bytes::Bytes;

use crate::mqtt::{SubscriptionOptions, TopicTree};

/// A member of a group: a client's subscription.
#[derive(Debug, Clone)]
pub struct Member {
    /// The client identifier.
    pub client: Bytes,
    /// Its options (QoS, Retain As Published; No Local is refused on a shared one).
    pub options: SubscriptionOptions,
    /// Its Subscription Identifier, 0 for none.
    pub id: u32,
}

#[derive(Debug)]
struct Group {
    members: Vec<Member>,
    /// Where the round robin goes on.
    next: usize,
}

/// The `$share/{group}/{filter}` part of a filter: `(group, filter)`, `None` for a
/// plain filter. The filter's syntax was checked already.
pub fn split(filter: &[u8]) -> Option<(&[u8], &[u8])> {
    let rest = filter.strip_prefix(b"$share/")?;
    let slash = memchr::memchr(b'/', rest)?;
    Some((&rest[..slash], &rest[slash + 1..]))
}

/// Every shared subscription of one broker: groups by their full filter
/// (`$share/g/f`), found through a topic tree of the inner filters.
#[derive(Debug, Default)]
pub struct Shared {
    groups: HashMap<Bytes, Group>,
    /// Inner filter -> the group's full filter.
    tree: TopicTree<Bytes>,
    /// Groups whose member count changed, with the new count, while a cluster of
    /// threads needs to know ([`track_changes`](Self::track_changes)).
    changes: Option<Vec<(Bytes, usize)>>,
}

impl Shared {
    /// Number of groups.
    #[cfg(test)]
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Adds `client` to the group of `full` (`$share/g/f`), or updates its options;
    /// returns whether it was a member already.
    pub fn subscribe(&mut self, full: &Bytes, client: &Bytes, options: SubscriptionOptions, id: u32) -> bool {
        let Some((_, inner)) = split(full) else {
            return false;
        };
        let group = self.groups.entry(full.clone()).or_insert_with(|| {
            self.tree.insert(inner, full.clone());
            Group {
                members: Vec::new(),
                next: 0,
            }
        });
        let member = Member {
            client: client.clone(),
            options,
            id,
        };
        match group.members.iter_mut().find(|m| m.client == *client) {
            Some(m) => {
                *m = member;
                true
            }
            None => {
                group.members.push(member);
                let count = group.members.len();
                if let Some(changes) = &mut self.changes {
                    changes.push((full.clone(), count));
                }
                false
            }
        }
    }

    /// From now on, remembers every change of a group's member count for
    /// [`take_changes`](Self::take_changes) (the other threads of a cluster route
    /// shared messages by those counts).
    pub fn track_changes(&mut self) {
        self.changes.get_or_insert_with(Vec::new);
    }

    /// The member count changes since the last call: `(group, members)`, in order.
    pub fn take_changes(&mut self) -> Vec<(Bytes, usize)> {
        self.changes.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// The Subscription Identifier of `client`'s membership in `full`, if a member.
    pub fn member_id(&self, full: &[u8], client: &[u8]) -> Option<u32> {
        let group = self.groups.get(full)?;
        group.members.iter().find(|m| m.client == client).map(|m| m.id)
    }

    /// Removes `client` from the group of `full`; returns whether it was a member. An
    /// empty group is forgotten.
    pub fn unsubscribe(&mut self, full: &[u8], client: &[u8]) -> bool {
        let Some(group) = self.groups.get_mut(full) else {
            return false;
        };
        let Some(i) = group.members.iter().position(|m| m.client == client) else {
            return false;
        };
        group.members.remove(i);
        let count = group.members.len();
        if let Some(changes) = &mut self.changes {
            changes.push((Bytes::copy_from_slice(full), count));
        }
        if group.members.is_empty() {
            self.groups.remove(full);
            if let Some((_, inner)) = split(full) {
                self.tree.remove(inner, |f| f == full);
            }
        }
        true
    }

    /// Picks one member of every group whose filter matches `topic`, round robin,
    /// preferring members for which `online` is true, and calls `deliver` with it.
    #[cfg(test)]
    pub fn pick(&mut self, topic: &[u8], online: impl Fn(&Bytes) -> bool, deliver: impl FnMut(&Member)) {
        self.pick_in(topic, |_| true, online, deliver);
    }

    /// [`pick`](Self::pick) for the matching groups `include` accepts only: on a
    /// cluster, the groups the publishing thread chose this thread for.
    pub fn pick_in(
        &mut self,
        topic: &[u8],
        include: impl Fn(&Bytes) -> bool,
        online: impl Fn(&Bytes) -> bool,
        mut deliver: impl FnMut(&Member),
    ) {
        if self.groups.is_empty() {
            return;
        }
        let mut matched: Vec<&Bytes> = Vec::new();
        self.tree.for_each_match(topic, |full| {
            if include(full) {
                matched.push(full);
            }
        });
        for full in matched {
            let Some(group) = self.groups.get_mut(full) else {
                continue;
            };
            let n = group.members.len();
            if n == 0 {
                continue;
            }
            let start = group.next % n;
            let chosen = (0..n)
                .map(|k| (start + k) % n)
                .find(|&i| online(&group.members[i].client))
                .unwrap_or(start);
            group.next = chosen + 1;
            deliver(&group.members[chosen]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mqtt::QoS;

    fn b(s: &'static str) -> Bytes {
        Bytes::from_static(s.as_bytes())
    }

    #[test]
    fn round_robin_among_online_members_per_group() {
        let mut s = Shared::default();
        let opts = SubscriptionOptions::qos(QoS::AtMostOnce);
        assert!(!s.subscribe(&b("$share/g/a/+"), &b("x"), opts, 0));
        assert!(!s.subscribe(&b("$share/g/a/+"), &b("y"), opts, 0));
        assert!(s.subscribe(&b("$share/g/a/+"), &b("y"), opts, 7));
        assert!(!s.subscribe(&b("$share/h/a/#"), &b("z"), opts, 0));
        let mut got = Vec::new();
        for _ in 0..4 {
            s.pick(b"a/1", |_| true, |m| got.push((m.client.clone(), m.id)));
        }
        // Group g alternates between x and y; group h (one member) gets every message.
        let g: Vec<_> = got.iter().filter(|(c, _)| c != "z").cloned().collect();
        assert_eq!(g, [(b("x"), 0), (b("y"), 7), (b("x"), 0), (b("y"), 7)]);
        assert_eq!(got.iter().filter(|(c, _)| c == "z").count(), 4);
        got.clear();
        // y offline: x gets every message of group g.
        for _ in 0..3 {
            s.pick(b"a/1", |c| c != "y", |m| got.push((m.client.clone(), m.id)));
        }
        assert!(got.iter().all(|(c, _)| c != "y"));
        assert!(s.unsubscribe(b"$share/h/a/#", b"z"));
        assert!(!s.unsubscribe(b"$share/h/a/#", b"z"));
        assert_eq!(s.group_count(), 1);
        assert!(s.tree.len() == 1);
    }

    #[test]
    fn tracked_member_counts_and_a_filtered_pick() {
        let mut s = Shared::default();
        let opts = SubscriptionOptions::qos(QoS::AtMostOnce);
        s.subscribe(&b("$share/g/a"), &b("x"), opts, 0);
        assert!(s.take_changes().is_empty(), "untracked until asked");
        s.track_changes();
        s.subscribe(&b("$share/g/a"), &b("y"), opts, 0);
        s.subscribe(&b("$share/g/a"), &b("y"), opts, 3); // an update, not a new member
        s.subscribe(&b("$share/h/a"), &b("z"), opts, 0);
        s.unsubscribe(b"$share/g/a", b"x");
        assert_eq!(
            s.take_changes(),
            [(b("$share/g/a"), 2), (b("$share/h/a"), 1), (b("$share/g/a"), 1)]
        );
        assert!(s.take_changes().is_empty());
        let mut got = Vec::new();
        s.pick_in(b"a", |g| g == "$share/h/a", |_| true, |m| got.push(m.client.clone()));
        assert_eq!(got, [b("z")]);
    }
}
