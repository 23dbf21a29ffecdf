//! A slab of connections whose ids carry a generation, so an id is never reused while
//! its session is in the driver and a stale id finds nothing.

use monocoque_proto::{ConnId, CoreId};

/// A slot index and the generation of its current occupant.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl Key {
    /// The public id, naming the driver's core.
    pub(crate) fn id(self, core: CoreId) -> ConnId {
        ConnId::new(core, self.index, self.generation)
    }

    /// The key an id was made from, if the id names `core`.
    pub(crate) fn from_id(id: ConnId, core: CoreId) -> Option<Self> {
        (id.core() == core).then_some(Self {
            index: id.slot(),
            generation: id.generation(),
        })
    }
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Values addressed by [`Key`]; a slot's generation moves on when its value is removed.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value`; `None` only if the slab already holds `u32::MAX` values.
    pub(crate) fn insert(&mut self, value: T) -> Option<Key> {
        let index = match self.free.pop() {
            Some(index) => index,
            None => {
                let index = u32::try_from(self.slots.len()).ok().filter(|&i| i < u32::MAX)?;
                self.slots.push(Slot {
                    generation: 0,
                    value: None,
                });
                index
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.value = Some(value);
        self.len += 1;
        Some(Key {
            index,
            generation: slot.generation,
        })
    }

    /// The value under `key`, if it is still there.
    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_ref()
    }

    /// The value under `key`, if it is still there.
    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// The current occupant of slot `index`, with its key.
    pub(crate) fn by_index(&self, index: u32) -> Option<(Key, &T)> {
        let slot = self.slots.get(index as usize)?;
        let key = Key {
            index,
            generation: slot.generation,
        };
        slot.value.as_ref().map(|v| (key, v))
    }

    /// The current occupant of slot `index`, with its key.
    pub(crate) fn by_index_mut(&mut self, index: u32) -> Option<(Key, &mut T)> {
        let slot = self.slots.get_mut(index as usize)?;
        let key = Key {
            index,
            generation: slot.generation,
        };
        slot.value.as_mut().map(|v| (key, v))
    }

    /// Takes the value under `key` out; the slot's next occupant gets a new generation.
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    /// Number of values stored.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Bytes of one slot (size tests).
    #[cfg(test)]
    pub(crate) fn slot_size() -> usize {
        std::mem::size_of::<Slot<T>>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_round_trip_and_are_not_reused() {
        let mut slab = Slab::default();
        let a = slab.insert("a").unwrap();
        let core = CoreId(3);
        assert_eq!(Key::from_id(a.id(core), core), Some(a));
        assert_eq!(Key::from_id(a.id(core), CoreId(4)), None, "another core's id");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b").unwrap();
        // Same slot, new generation: the old id finds nothing.
        assert_eq!(b.index, a.index);
        assert_ne!(b.id(core), a.id(core));
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.len(), 1);
    }

    #[test]
    fn by_index_reports_the_current_generation() {
        let mut slab = Slab::default();
        let a = slab.insert(1).unwrap();
        slab.remove(a);
        let b = slab.insert(2).unwrap();
        let (key, value) = slab.by_index_mut(b.index).unwrap();
        assert_eq!((key, *value), (b, 2));
        assert!(slab.by_index_mut(99).is_none());
    }
}
