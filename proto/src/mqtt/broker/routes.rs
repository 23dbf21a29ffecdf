//! Which threads of a cluster a publish goes to: each thread counts its own plain
//! (not shared) subscription filters and announces a filter to the others when its
//! count leaves or reaches 0; each keeps the others' filters in a topic tree, so a
//! publish is forwarded only to the threads with a matching subscription.
//!
//! Announcements are numbered per thread; a thread that applies one owes its author an
//! acknowledgement of the latest number it applied (one per author per batch, not one
//! per announcement). As a mailbox keeps one sender's messages in order, "thread `t`
//! acknowledged `n`" means `t` routes by every announcement up to `n`: a state holds a
//! `SUBACK` until every other thread acknowledged what it announced before
//! ([`Routes::settled`]), so no message published anywhere after the `SUBACK` misses
//! the new subscription (see [`cluster`](super::cluster)).

use std::collections::HashMap;

use bytes::Bytes;

use crate::mqtt::TopicTree;

/// One thread's view of the cluster's subscription filters.
#[derive(Debug)]
pub(crate) struct Routes {
    me: usize,
    threads: usize,
    /// This thread's plain filters, each with its number of subscriptions.
    local: HashMap<Bytes, u32>,
    /// The other threads' filters: each (filter, thread) once.
    remote: TopicTree<usize>,
    /// The number of this thread's latest announcement.
    announced: u64,
    /// By thread: the latest of this thread's announcements it acknowledged.
    acked: Vec<u64>,
    /// By thread: the latest of its announcements applied here and not yet
    /// acknowledged (0: nothing owed).
    owed: Vec<u64>,
    /// By thread: whether the publish being routed goes there (kept between calls,
    /// so routing allocates nothing).
    hits: Vec<bool>,
}

/// An announcement to make: `filter` now is (`true`) or is no longer subscribed here,
/// numbered `seq`.
pub(crate) type Announcement = (Bytes, bool, u64);

impl Routes {
    /// Thread `me` of `threads`.
    pub(crate) fn new(me: usize, threads: usize) -> Routes {
        Routes {
            me,
            threads,
            local: HashMap::new(),
            remote: TopicTree::new(),
            announced: 0,
            acked: vec![0; threads],
            owed: vec![0; threads],
            hits: vec![false; threads],
        }
    }

    /// A subscription to `filter` was added here: the first one is announced.
    pub(crate) fn added(&mut self, filter: &[u8]) -> Option<Announcement> {
        if self.threads <= 1 {
            return None;
        }
        if let Some(n) = self.local.get_mut(filter) {
            *n += 1;
            return None;
        }
        let filter = Bytes::copy_from_slice(filter);
        self.local.insert(filter.clone(), 1);
        self.announced += 1;
        Some((filter, true, self.announced))
    }

    /// A subscription to `filter` was removed here: the last one is announced.
    pub(crate) fn removed(&mut self, filter: &[u8]) -> Option<Announcement> {
        let n = self.local.get_mut(filter)?;
        *n -= 1;
        if *n > 0 {
            return None;
        }
        let (filter, _) = self.local.remove_entry(filter)?;
        self.announced += 1;
        Some((filter, false, self.announced))
    }

    /// Thread `from`'s announcement `seq`: `filter` is (or is no longer) subscribed
    /// there. An acknowledgement is owed.
    pub(crate) fn apply(&mut self, from: usize, filter: &[u8], present: bool, seq: u64) {
        if from >= self.threads || from == self.me {
            return;
        }
        // Announcements come at the 0 <-> 1 transitions only, so the pair is in the
        // tree at most once; removing first keeps that true whatever arrives.
        self.remote.remove(filter, |&t| t == from);
        if present {
            self.remote.insert(filter, from);
        }
        self.owed[from] = self.owed[from].max(seq);
    }

    /// Numbers an announcement of another kind (a shared group's member count) in
    /// the same sequence, so that it is waited for the same way.
    pub(crate) fn next_seq(&mut self) -> u64 {
        self.announced += 1;
        self.announced
    }

    /// Thread `from`'s announcement `seq` (of another kind) was applied here.
    pub(crate) fn owe(&mut self, from: usize, seq: u64) {
        if from < self.threads && from != self.me {
            self.owed[from] = self.owed[from].max(seq);
        }
    }

    /// Thread `from` applied this thread's announcements up to `seq`.
    pub(crate) fn acknowledged(&mut self, from: usize, seq: u64) {
        if let Some(a) = self.acked.get_mut(from) {
            *a = (*a).max(seq);
        }
    }

    /// The number of this thread's latest announcement.
    pub(crate) fn announced(&self) -> u64 {
        self.announced
    }

    /// Whether every other thread applied this thread's announcements up to `seq`.
    pub(crate) fn settled(&self, seq: u64) -> bool {
        self.acked.iter().enumerate().all(|(t, &a)| t == self.me || a >= seq)
    }

    /// The acknowledgements owed: `(thread, seq)`, each once.
    pub(crate) fn take_owed(&mut self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.owed
            .iter_mut()
            .enumerate()
            .filter(|(_, s)| **s > 0)
            .map(|(t, s)| (t, std::mem::take(s)))
    }

    /// Marks the other threads with a subscription matching `topic` (all of them for
    /// a retained message: every thread keeps a replica), for [`hit`](Self::hit).
    pub(crate) fn mark(&mut self, topic: &[u8], retain: bool) {
        let hits = &mut self.hits;
        hits.iter_mut().for_each(|h| *h = retain);
        if !retain {
            self.remote.for_each_match(topic, |&t| hits[t] = true);
        }
        hits[self.me] = false;
    }

    /// Whether the publish last [`mark`](Self::mark)ed goes to thread `t`.
    pub(crate) fn hit(&self, t: usize) -> bool {
        self.hits.get(t).copied().unwrap_or(false)
    }

    /// Plain filters subscribed on this thread (distinct).
    pub(crate) fn local_filters(&self) -> usize {
        self.local.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_and_last_subscription_of_a_filter_are_announced() {
        let mut r = Routes::new(0, 2);
        assert_eq!(r.added(b"a/+"), Some((Bytes::from_static(b"a/+"), true, 1)));
        assert_eq!(r.added(b"a/+"), None);
        assert_eq!(r.removed(b"a/+"), None);
        assert_eq!(r.removed(b"a/+"), Some((Bytes::from_static(b"a/+"), false, 2)));
        assert_eq!(r.removed(b"a/+"), None, "not subscribed");
        assert_eq!(r.local_filters(), 0);
        // One thread alone announces nothing and keeps no count.
        let mut alone = Routes::new(0, 1);
        assert_eq!(alone.added(b"a"), None);
        assert_eq!(alone.local_filters(), 0);
    }

    #[test]
    fn a_publish_is_marked_for_the_threads_whose_filters_match() {
        let mut r = Routes::new(0, 4);
        r.apply(1, b"a/#", true, 1);
        r.apply(2, b"a/b", true, 1);
        r.apply(3, b"c", true, 1);
        r.apply(0, b"a/b", true, 1); // never itself
        r.mark(b"a/b", false);
        assert_eq!((0..4).map(|t| r.hit(t)).collect::<Vec<_>>(), [false, true, true, false]);
        r.mark(b"z", false);
        assert!((0..4).all(|t| !r.hit(t)));
        // A retained message goes to every other thread's replica.
        r.mark(b"z", true);
        assert_eq!((0..4).map(|t| r.hit(t)).collect::<Vec<_>>(), [false, true, true, true]);
        r.apply(1, b"a/#", false, 2);
        r.mark(b"a/x", false);
        assert!((0..4).all(|t| !r.hit(t)));
        // A repeated announcement does not add the thread twice.
        r.apply(2, b"a/b", true, 3);
        r.apply(2, b"a/b", false, 4);
        r.mark(b"a/b", false);
        assert!(!r.hit(2));
    }

    #[test]
    fn settled_once_every_other_thread_acknowledged() {
        let mut r = Routes::new(1, 3);
        let _ = r.added(b"x");
        let seq = r.announced();
        assert!(!r.settled(seq));
        r.acknowledged(0, seq);
        assert!(!r.settled(seq));
        r.acknowledged(2, seq + 5);
        r.acknowledged(2, seq); // late and lower: ignored
        assert!(r.settled(seq) && r.settled(0));
        // Owed acknowledgements: the latest per author, each once.
        r.apply(0, b"y", true, 3);
        r.apply(0, b"z", true, 4);
        r.apply(2, b"y", true, 1);
        assert_eq!(r.take_owed().collect::<Vec<_>>(), [(0, 4), (2, 1)]);
        assert_eq!(r.take_owed().count(), 0);
    }
}
