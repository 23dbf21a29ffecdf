//! Topic matching (4.7): [`topic_matches`] for one filter, [`TopicTree`] for many.

use std::collections::HashMap;

/// Whether the topic filter `filter` matches the topic name `topic`: `+` matches one
/// whole level (an empty one too), a trailing `#` the parent level and any number of
/// levels below it, and a topic starting with `$` is not matched by a filter starting
/// with a wildcard [MQTT-4.7.2-1]. `filter` is assumed well formed
/// ([`valid_topic_filter`](super::valid_topic_filter)), without a `$share/{group}/`
/// prefix.
pub fn topic_matches(filter: &[u8], topic: &[u8]) -> bool {
    if topic.first() == Some(&b'$') && matches!(filter.first(), Some(b'+' | b'#')) {
        return false;
    }
    let mut f = filter.split(|&b| b == b'/');
    let mut t = topic.split(|&b| b == b'/');
    loop {
        match (f.next(), t.next()) {
            (Some(b"#"), _) => return true,
            (Some(b"+"), Some(_)) => {}
            (Some(fl), Some(tl)) if fl == tl => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Subscriptions by topic filter, each level a node: matching a topic walks its levels
/// once, visiting only the branches that can match (the level itself, `+`, `#`), so the
/// cost grows with the topic's depth and the matches, not with the number of
/// subscriptions.
///
/// Values are the broker's (a session and its options, a shared group's member...);
/// several may sit under one filter. Filters are assumed well formed and without their
/// `$share/{group}/` prefix, which the broker keeps in the value.
#[derive(Debug)]
pub struct TopicTree<T> {
    root: Node<T>,
    len: usize,
}

#[derive(Debug)]
struct Node<T> {
    /// Values whose filter ends at this level.
    here: Vec<T>,
    /// Values whose filter ends with `#` below this level.
    multi: Vec<T>,
    /// The `+` branch.
    single: Option<Box<Node<T>>>,
    /// Literal levels.
    children: HashMap<Box<[u8]>, Node<T>>,
}

impl<T> Default for Node<T> {
    fn default() -> Self {
        Node {
            here: Vec::new(),
            multi: Vec::new(),
            single: None,
            children: HashMap::new(),
        }
    }
}

impl<T> Node<T> {
    fn is_empty(&self) -> bool {
        self.here.is_empty() && self.multi.is_empty() && self.single.is_none() && self.children.is_empty()
    }
}

impl<T> Default for TopicTree<T> {
    fn default() -> Self {
        TopicTree {
            root: Node::default(),
            len: 0,
        }
    }
}

impl<T> TopicTree<T> {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of values held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no value is held.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Adds `value` under `filter`.
    pub fn insert(&mut self, filter: &[u8], value: T) {
        let mut node = &mut self.root;
        let mut levels = filter.split(|&b| b == b'/').peekable();
        while let Some(level) = levels.next() {
            if level == b"#" && levels.peek().is_none() {
                node.multi.push(value);
                self.len += 1;
                return;
            }
            node = if level == b"+" {
                node.single.get_or_insert_with(Default::default)
            } else {
                node.children.entry(level.into()).or_default()
            };
        }
        node.here.push(value);
        self.len += 1;
    }

    /// Removes and returns the first value under exactly `filter` for which `pick` is
    /// true; nodes left empty are pruned.
    pub fn remove(&mut self, filter: &[u8], mut pick: impl FnMut(&T) -> bool) -> Option<T> {
        let levels: Vec<&[u8]> = filter.split(|&b| b == b'/').collect();
        let removed = remove_in(&mut self.root, &levels, &mut pick);
        if removed.is_some() {
            self.len -= 1;
        }
        removed
    }

    /// Calls `visit` with every value whose filter matches `topic` (once per value: a
    /// session with overlapping subscriptions is visited once per subscription, for the
    /// broker to merge).
    pub fn for_each_match<'a>(&'a self, topic: &[u8], mut visit: impl FnMut(&'a T)) {
        let levels: Levels<'_> = topic.split(is_slash as fn(&u8) -> bool);
        // A `$` topic is not matched by a wildcard at the first level [MQTT-4.7.2-1].
        let dollar = topic.first() == Some(&b'$');
        walk(&self.root, levels, !dollar, &mut visit);
    }
}

fn is_slash(b: &u8) -> bool {
    *b == b'/'
}

/// A topic's levels, not yet walked: a cloneable iterator, so matching allocates
/// nothing.
type Levels<'t> = std::slice::Split<'t, u8, fn(&u8) -> bool>;

fn walk<'a, T>(node: &'a Node<T>, mut levels: Levels<'_>, wildcards: bool, visit: &mut impl FnMut(&'a T)) {
    if wildcards {
        // `#` matches this level's parent and everything below.
        node.multi.iter().for_each(&mut *visit);
    }
    let Some(level) = levels.next() else {
        node.here.iter().for_each(visit);
        return;
    };
    if let Some(child) = node.children.get(level) {
        walk(child, levels.clone(), true, visit);
    }
    if wildcards {
        if let Some(single) = &node.single {
            walk(single, levels, true, visit);
        }
    }
}

fn remove_in<T>(node: &mut Node<T>, levels: &[&[u8]], pick: &mut impl FnMut(&T) -> bool) -> Option<T> {
    let take = |values: &mut Vec<T>, pick: &mut dyn FnMut(&T) -> bool| {
        let i = values.iter().position(&mut *pick)?;
        Some(values.remove(i))
    };
    match levels {
        [] => take(&mut node.here, pick),
        [last] if *last == b"#" => take(&mut node.multi, pick),
        [level, rest @ ..] => {
            if *level == b"+" {
                let child = node.single.as_deref_mut()?;
                let removed = remove_in(child, rest, pick);
                if child.is_empty() {
                    node.single = None;
                }
                removed
            } else {
                let child = node.children.get_mut(*level)?;
                let removed = remove_in(child, rest, pick);
                if child.is_empty() {
                    node.children.remove(*level);
                }
                removed
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn examples_of_section_4_7() {
        for (filter, topic, want) in [
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            ("sport/tennis/player1/#", "sport/tennis/player1/ranking", true),
            ("sport/tennis/player1/#", "sport/tennis/player1/score/wimbledon", true),
            ("sport/#", "sport", true),
            ("#", "sport/tennis", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("#", "$SYS/uptime", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("$SYS/#", "$SYS/monitor/Clients", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            ("a/b", "a/b", true),
            ("a/b", "a/b/c", false),
            ("a/b/c", "a/b", false),
        ] {
            assert_eq!(
                topic_matches(filter.as_bytes(), topic.as_bytes()),
                want,
                "{filter} vs {topic}"
            );
            let mut tree = TopicTree::new();
            tree.insert(filter.as_bytes(), ());
            let mut n = 0;
            tree.for_each_match(topic.as_bytes(), |_| n += 1);
            assert_eq!(n == 1, want, "tree: {filter} vs {topic}");
        }
    }

    #[test]
    fn remove_prunes_and_counts() {
        let mut tree = TopicTree::new();
        tree.insert(b"a/+/c", 1);
        tree.insert(b"a/+/c", 2);
        tree.insert(b"a/#", 3);
        assert_eq!(tree.len(), 3);
        assert_eq!(tree.remove(b"a/+/c", |&v| v == 2), Some(2));
        assert_eq!(tree.remove(b"a/+/c", |&v| v == 2), None);
        assert_eq!(tree.remove(b"a/b/c", |_| true), None);
        assert_eq!(tree.remove(b"a/+/c", |_| true), Some(1));
        assert_eq!(tree.remove(b"a/#", |_| true), Some(3));
        assert!(tree.is_empty());
        assert!(tree.root.is_empty(), "every node pruned");
    }

    fn level() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("a"), Just("b"), Just(""), Just("$s")]
    }

    fn topic() -> impl Strategy<Value = String> {
        proptest::collection::vec(level(), 1..5).prop_map(|l| l.join("/"))
    }

    fn filter() -> impl Strategy<Value = String> {
        let level = prop_oneof![3 => level(), 2 => Just("+")];
        (proptest::collection::vec(level, 1..5), any::<bool>()).prop_map(|(mut l, hash)| {
            if hash {
                l.push("#");
            }
            l.join("/")
        })
    }

    proptest! {
        /// The tree finds exactly the filters that match one by one, after any removals.
        #[test]
        fn tree_agrees_with_one_by_one_matching(
            filters in proptest::collection::vec(filter(), 0..24),
            removed in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
            topics in proptest::collection::vec(topic(), 1..8),
        ) {
            let mut tree = TopicTree::new();
            for (i, f) in filters.iter().enumerate() {
                tree.insert(f.as_bytes(), i);
            }
            let mut live: Vec<usize> = (0..filters.len()).collect();
            for r in removed {
                if live.is_empty() {
                    break;
                }
                let i = live.remove(r.index(live.len()));
                prop_assert_eq!(tree.remove(filters[i].as_bytes(), |&v| v == i), Some(i));
            }
            prop_assert_eq!(tree.len(), live.len());
            for t in topics {
                let mut got = Vec::new();
                tree.for_each_match(t.as_bytes(), |&i| got.push(i));
                got.sort_unstable();
                let want: Vec<usize> = live.iter().copied().filter(|&i| topic_matches(filters[i].as_bytes(), t.as_bytes())).collect();
                prop_assert_eq!(got, want, "topic {}", t);
            }
        }
    }
}
