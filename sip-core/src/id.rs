//! Generational slots: the tables behind the typed ids ([`ClientTxId`](crate::ClientTxId),
//! [`ServerTxId`](crate::ServerTxId), [`FlowId`](crate::FlowId)). A freed slot is reused with a
//! new generation, so an id kept past the end of its transaction or flow never reaches the
//! entry that took its place.

/// A slot index and the generation it was issued in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Slots per chunk. Storage grows a chunk at a time: a live entry never moves, growing never
/// copies the table, and at most one chunk is spare (a doubling vector would keep up to
/// half of its memory unused and copy everything each time it grows).
const CHUNK: usize = 1024;

/// A table of values addressed by [`Key`].
#[derive(Debug)]
pub(crate) struct Slab<T> {
    chunks: Vec<Vec<Slot<T>>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            chunks: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value` and returns its key.
    pub(crate) fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            if let Some(slot) = self.slot_mut(index) {
                slot.value = Some(value);
                return Key {
                    index,
                    generation: slot.generation,
                };
            }
        }
        if self.chunks.last().is_none_or(|c| c.len() == CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        let index =
            ((self.chunks.len() - 1) * CHUNK + self.chunks.last().map_or(0, Vec::len)) as u32;
        if let Some(chunk) = self.chunks.last_mut() {
            chunk.push(Slot {
                generation: 0,
                value: Some(value),
            });
        }
        Key {
            index,
            generation: 0,
        }
    }

    fn slot(&self, index: u32) -> Option<&Slot<T>> {
        let i = index as usize;
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    fn slot_mut(&mut self, index: u32) -> Option<&mut Slot<T>> {
        let i = index as usize;
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    /// The value under `key`, if it is still alive.
    pub(crate) fn get(&self, key: Key) -> Option<&T> {
        let slot = self.slot(key.index)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_ref()
    }

    /// The value under `key`, mutably.
    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let slot = self.slot_mut(key.index)?;
        if slot.generation != key.generation {
            return None;
        }
        slot.value.as_mut()
    }

    /// Frees the slot; the next value stored there gets a new generation.
    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self.slot_mut(key.index)?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    /// How many values are stored.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Every live key and value.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (Key, &T)> + '_ {
        self.chunks
            .iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, s)| {
                s.value.as_ref().map(|v| {
                    (
                        Key {
                            index: i as u32,
                            generation: s.generation,
                        },
                        v,
                    )
                })
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stale_key_does_not_reach_the_slot_reused_after_it() {
        let mut s = Slab::default();
        let a = s.insert("a");
        assert_eq!(s.remove(a), Some("a"));
        let b = s.insert("b");
        assert_eq!(a.index, b.index);
        assert_eq!(s.get(a), None);
        assert_eq!(s.remove(a), None);
        assert_eq!(s.get(b), Some(&"b"));
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn keys_stay_valid_across_chunks() {
        let mut s = Slab::default();
        let keys: Vec<_> = (0..3 * CHUNK + 5).map(|i| s.insert(i)).collect();
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(s.get(*k), Some(&i));
        }
        assert_eq!(s.iter().count(), keys.len());
        assert_eq!(s.remove(keys[CHUNK + 1]), Some(CHUNK + 1));
        let again = s.insert(7);
        assert_eq!(again.index, keys[CHUNK + 1].index);
        assert_eq!(s.get(again), Some(&7));
    }
}
