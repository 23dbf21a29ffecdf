//! The topic prefixes a subscriber asked for, counted as libzmq counts them: two
//! `SUBSCRIBE`s of one topic need two `CANCEL`s.

use bytes::Bytes;

/// A multiset of topic prefixes; a message matches when its first frame starts with
/// one of them (the empty prefix matches everything).
#[derive(Debug, Clone, Default)]
pub struct Subscriptions {
    topics: Vec<(Bytes, usize)>,
}

impl Subscriptions {
    /// No subscriptions: nothing matches.
    pub fn new() -> Self {
        Subscriptions::default()
    }

    /// Adds one subscription to `topic`; true if the topic is new.
    pub fn subscribe(&mut self, topic: Bytes) -> bool {
        match self.topics.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, count)) => {
                *count += 1;
                false
            }
            None => {
                self.topics.push((topic, 1));
                true
            }
        }
    }

    /// Removes one subscription to `topic`; true if that was its last one. Cancelling a
    /// topic never subscribed does nothing (libzmq ignores it too).
    pub fn cancel(&mut self, topic: &[u8]) -> bool {
        let Some(i) = self.topics.iter().position(|(t, _)| t == topic) else {
            return false;
        };
        self.topics[i].1 -= 1;
        if self.topics[i].1 == 0 {
            self.topics.swap_remove(i);
            return true;
        }
        false
    }

    /// Whether a message whose first frame is `first` matches.
    pub fn matches(&self, first: &[u8]) -> bool {
        self.topics.iter().any(|(t, _)| first.starts_with(t))
    }

    /// The distinct topics (what a reconnected subscriber sends again).
    pub fn topics(&self) -> impl Iterator<Item = &Bytes> {
        self.topics.iter().map(|(t, _)| t)
    }

    /// The distinct topics and how many times each was subscribed.
    pub fn counts(&self) -> impl Iterator<Item = (&Bytes, usize)> {
        self.topics.iter().map(|(t, n)| (t, *n))
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_and_are_counted() {
        let mut s = Subscriptions::new();
        assert!(!s.matches(b"news"));
        assert!(s.subscribe(Bytes::from_static(b"news")));
        assert!(!s.subscribe(Bytes::from_static(b"news")));
        assert!(s.matches(b"news/today"));
        assert!(!s.matches(b"new"));
        assert!(!s.matches(b"other"));
        assert!(!s.cancel(b"news"));
        assert!(s.matches(b"news"));
        assert!(s.cancel(b"news"));
        assert!(!s.matches(b"news"));
        assert!(!s.cancel(b"never"));
        s.subscribe(Bytes::new());
        assert!(s.matches(b"") && s.matches(b"anything"));
    }
}
