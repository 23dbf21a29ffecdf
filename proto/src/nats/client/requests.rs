//! Requests in flight over the connection's one wildcard inbox subscription.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use bytes::{BufMut, Bytes, BytesMut};

use super::RequestId;
use crate::chassis::sim::SimRng;

/// Characters of a generated inbox id (nuid's alphabet).
const ALPHABET: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A 22-character id from `seed`, as long as a nuid.
pub(super) fn inbox_id(seed: u64) -> String {
    let mut rng = SimRng::new(seed);
    (0..22)
        .map(|_| char::from(ALPHABET[rng.below(ALPHABET.len() as u64) as usize]))
        .collect()
}

/// The pending requests and the inbox their replies come to.
#[derive(Debug)]
pub(super) struct Requests {
    /// `<prefix>.<id>.`: a reply subject is this and the request's token.
    prefix: Bytes,
    /// The sid of the `<prefix>.<id>.*` subscription, once it was sent.
    pub sid: Option<u64>,
    /// Requests waiting, by token (the request id), with their deadlines.
    pending: HashMap<u64, Option<Instant>>,
    deadlines: BTreeSet<(Instant, u64)>,
    /// The last id handed out.
    pub last_id: u64,
}

impl Requests {
    pub fn new(inbox_prefix: &str, inbox_id: &str, last_id: u64) -> Self {
        let mut prefix = BytesMut::with_capacity(inbox_prefix.len() + inbox_id.len() + 2);
        prefix.put_slice(inbox_prefix.as_bytes());
        prefix.put_u8(b'.');
        prefix.put_slice(inbox_id.as_bytes());
        prefix.put_u8(b'.');
        Self {
            prefix: prefix.freeze(),
            sid: None,
            pending: HashMap::new(),
            deadlines: BTreeSet::new(),
            last_id,
        }
    }

    /// The wildcard subject of the inbox subscription.
    pub fn wildcard(&self) -> Vec<u8> {
        let mut s = self.prefix.to_vec();
        s.push(b'*');
        s
    }

    /// The reply subject of request `id`.
    pub fn reply_subject(&self, id: u64) -> Vec<u8> {
        let mut buf = itoa::Buffer::new();
        let token = buf.format(id).as_bytes();
        let mut s = Vec::with_capacity(self.prefix.len() + token.len());
        s.extend_from_slice(&self.prefix);
        s.extend_from_slice(token);
        s
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// The next id, not yet registered.
    pub fn peek_id(&self) -> u64 {
        self.last_id + 1
    }

    pub fn insert(&mut self, deadline: Option<Instant>) -> RequestId {
        self.last_id += 1;
        let id = self.last_id;
        self.pending.insert(id, deadline);
        if let Some(at) = deadline {
            self.deadlines.insert((at, id));
        }
        RequestId(id)
    }

    /// The request a reply subject belongs to, removed from the pending set; `None` for
    /// a subject outside the inbox or a request that already ended.
    pub fn complete(&mut self, subject: &[u8]) -> Option<RequestId> {
        let token = subject.strip_prefix(&self.prefix[..])?;
        let id = crate::lex::parse_u64(token)?;
        let deadline = self.pending.remove(&id)?;
        if let Some(at) = deadline {
            self.deadlines.remove(&(at, id));
        }
        Some(RequestId(id))
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Removes and returns the requests whose deadline is at or before `now`, oldest
    /// deadline first.
    pub fn expire(&mut self, now: Instant) -> Vec<RequestId> {
        let mut expired = Vec::new();
        while let Some(&(at, id)) = self.deadlines.first() {
            if at > now {
                break;
            }
            self.deadlines.pop_first();
            self.pending.remove(&id);
            expired.push(RequestId(id));
        }
        expired
    }

    /// Removes every pending request, in id order.
    pub fn drain(&mut self) -> Vec<RequestId> {
        let mut ids: Vec<u64> = self.pending.drain().map(|(id, _)| id).collect();
        ids.sort_unstable();
        self.deadlines.clear();
        ids.into_iter().map(RequestId).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn inbox_ids_are_seeded() {
        let a = inbox_id(1);
        assert_eq!(a.len(), 22);
        assert_eq!(a, inbox_id(1));
        assert_ne!(a, inbox_id(2));
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric()));
    }

    #[test]
    fn replies_match_by_token_once() {
        let now = Instant::now();
        let mut r = Requests::new("_INBOX", "abc", 0);
        assert_eq!(r.wildcard(), b"_INBOX.abc.*");
        let id = r.insert(Some(now + Duration::from_secs(1)));
        assert_eq!(r.reply_subject(id.0), b"_INBOX.abc.1");
        assert_eq!(r.complete(b"_INBOX.abc.2"), None);
        assert_eq!(r.complete(b"_INBOX.abd.1"), None);
        assert_eq!(r.complete(b"_INBOX.abc.1x"), None);
        assert_eq!(r.complete(b"_INBOX.abc.1"), Some(id));
        assert_eq!(r.complete(b"_INBOX.abc.1"), None, "a second reply is dropped");
        assert_eq!(r.next_deadline(), None);
    }

    #[test]
    fn expiry_in_deadline_order() {
        let now = Instant::now();
        let mut r = Requests::new("_INBOX", "x", 10);
        let late = r.insert(Some(now + Duration::from_secs(2)));
        let early = r.insert(Some(now + Duration::from_secs(1)));
        let never = r.insert(None);
        assert_eq!(r.next_deadline(), Some(now + Duration::from_secs(1)));
        assert!(r.expire(now).is_empty());
        assert_eq!(r.expire(now + Duration::from_secs(5)), [early, late]);
        assert_eq!(r.drain(), [never]);
        assert_eq!(late.get(), 11);
    }
}
