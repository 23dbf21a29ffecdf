//! [`SessionTable`]: a thread's sessions by client identifier, each stored once.
//!
//! A `HashMap<Bytes, Session>` costs a bucket of key and value for every slot of its
//! table, and a table is between 7/8 and 7/16 full: at 15,000 sessions of 80 bytes,
//! 32,768 buckets of 112 bytes, ~245 bytes a session. Here the sessions (with their
//! identifier) sit in fixed pages of a slab, which never move nor double, and the hash
//! table holds only a 4-byte slot number: ~10 bytes a session for the index. The slot
//! number also names the session for the connection-to-session map. An identifier is
//! stored as a [`ClientId`]: inline when short, so a session costs no allocation of
//! its own.

use std::hash::{BuildHasher, RandomState};

use hashbrown::HashTable;

use super::client_id::ClientId;

/// Sessions per page of the slab.
const PAGE: usize = 256;

/// A page of the slab: `PAGE` slots, each empty or an identifier and its session.
type Page<V> = Box<[Option<(ClientId, V)>]>;

/// Values of type `V` by client identifier, in a paged slab indexed by a hash table of
/// slot numbers.
pub(crate) struct SessionTable<V> {
    /// Slot numbers, hashed by the identifier in their slot.
    index: HashTable<u32>,
    hasher: RandomState,
    /// The slab: fixed pages of `PAGE` slots.
    pages: Vec<Page<V>>,
    /// Slots emptied by [`remove`](Self::remove), for the next insertions.
    free: Vec<u32>,
    /// Slots ever handed out (the used part of the last page ends here).
    high: u32,
    len: usize,
}

impl<V> Default for SessionTable<V> {
    fn default() -> Self {
        SessionTable {
            index: HashTable::new(),
            hasher: RandomState::new(),
            pages: Vec::new(),
            free: Vec::new(),
            high: 0,
            len: 0,
        }
    }
}

impl<V: std::fmt::Debug> std::fmt::Debug for SessionTable<V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

fn slot<V>(pages: &[Page<V>], i: u32) -> Option<&(ClientId, V)> {
    let i = i as usize;
    pages.get(i / PAGE)?.get(i % PAGE)?.as_ref()
}

fn key_of<V>(pages: &[Page<V>], i: u32) -> &[u8] {
    slot(pages, i).map_or(&[][..], |(k, _)| &k[..])
}

impl<V> SessionTable<V> {
    /// Sessions held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn hash(&self, id: &[u8]) -> u64 {
        self.hasher.hash_one(id)
    }

    /// The slot of `id`'s session, if there is one.
    pub(crate) fn slot_of(&self, id: &[u8]) -> Option<u32> {
        let pages = &self.pages;
        self.index.find(self.hash(id), |&i| key_of(pages, i) == id).copied()
    }

    /// `id`'s session.
    pub(crate) fn get(&self, id: &[u8]) -> Option<&V> {
        self.at(self.slot_of(id)?).map(|(_, v)| v)
    }

    /// `id`'s session.
    pub(crate) fn get_mut(&mut self, id: &[u8]) -> Option<&mut V> {
        let i = self.slot_of(id)?;
        self.at_mut(i).map(|(_, v)| v)
    }

    /// Whether `id` has a session.
    pub(crate) fn contains_key(&self, id: &[u8]) -> bool {
        self.slot_of(id).is_some()
    }

    /// The identifier and session in slot `i`, if it is occupied.
    pub(crate) fn at(&self, i: u32) -> Option<(&ClientId, &V)> {
        slot(&self.pages, i).map(|(k, v)| (k, v))
    }

    /// The identifier and session in slot `i`, if it is occupied.
    pub(crate) fn at_mut(&mut self, i: u32) -> Option<(&ClientId, &mut V)> {
        let i = i as usize;
        let (k, v) = self.pages.get_mut(i / PAGE)?.get_mut(i % PAGE)?.as_mut()?;
        Some((&*k, v))
    }

    /// Stores `value` as `id`'s session (replacing the one there) and returns its slot.
    pub(crate) fn insert(&mut self, id: &[u8], value: V) -> u32 {
        if let Some(i) = self.slot_of(id) {
            if let Some((_, v)) = self.at_mut(i) {
                *v = value;
            }
            return i;
        }
        let hash = self.hash(id);
        let i = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = self.high;
                self.high += 1;
                if i as usize / PAGE == self.pages.len() {
                    self.pages.push((0..PAGE).map(|_| None).collect());
                }
                i
            }
        };
        let i_us = i as usize;
        self.pages[i_us / PAGE][i_us % PAGE] = Some((ClientId::new(id), value));
        let (pages, hasher) = (&self.pages, &self.hasher);
        self.index
            .insert_unique(hash, i, |&j| hasher.hash_one(key_of(pages, j)));
        self.len += 1;
        i
    }

    /// Takes `id`'s session out.
    pub(crate) fn remove(&mut self, id: &[u8]) -> Option<V> {
        let hash = self.hash(id);
        let pages = &self.pages;
        let entry = self.index.find_entry(hash, |&i| key_of(pages, i) == id).ok()?;
        let (i, _) = entry.remove();
        let i_us = i as usize;
        let (_, value) = self.pages[i_us / PAGE][i_us % PAGE].take()?;
        self.free.push(i);
        self.len -= 1;
        Some(value)
    }

    /// Every identifier and session, in slot order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&ClientId, &V)> + '_ {
        self.pages
            .iter()
            .flat_map(|p| p.iter())
            .filter_map(|s| s.as_ref().map(|(k, v)| (k, v)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_replaces_and_removes_by_identifier() {
        let mut t = SessionTable::default();
        let a = t.insert(b"a", 1);
        let b = t.insert(b"b", 2);
        assert_ne!(a, b);
        assert_eq!(t.get(b"a"), Some(&1));
        assert_eq!(t.insert(b"a", 3), a, "a replaced value keeps its slot");
        assert_eq!(t.get(b"a"), Some(&3));
        assert_eq!(t.len(), 2);
        assert_eq!(t.remove(b"a"), Some(3));
        assert_eq!(t.remove(b"a"), None);
        assert!(!t.contains_key(b"a"));
        assert_eq!(t.at(a), None, "an emptied slot holds nothing");
        assert_eq!(t.at(b).map(|(k, v)| (&k[..], *v)), Some((&b"b"[..], 2)));
        assert_eq!(t.insert(b"c", 4), a, "the emptied slot is reused");
        assert_eq!(t.len(), 2);
    }

    #[test]
    fn many_sessions_across_pages_stay_where_they_were_put() {
        let mut t = SessionTable::default();
        let slots: Vec<u32> = (0..3 * PAGE as u32 + 7)
            .map(|n| t.insert(format!("client-{n}").as_bytes(), n))
            .collect();
        for (n, &i) in slots.iter().enumerate() {
            let id = format!("client-{n}");
            assert_eq!(t.slot_of(id.as_bytes()), Some(i));
            assert_eq!(t.at(i).map(|(_, v)| *v), Some(n as u32));
        }
        for n in (0..slots.len()).step_by(2) {
            assert_eq!(t.remove(format!("client-{n}").as_bytes()), Some(n as u32));
        }
        assert_eq!(t.len(), slots.len() / 2);
        assert_eq!(t.iter().count(), t.len());
        for n in (1..slots.len()).step_by(2) {
            assert_eq!(t.get(format!("client-{n}").as_bytes()), Some(&(n as u32)));
        }
    }
}
