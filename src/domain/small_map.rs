//! A map that stays a plain vector while it is small.
//!
//! Most channels have a handful of subscribers on a node and most connections a handful of
//! subscriptions, yet a `HashMap` allocates at least four buckets for one entry (a channel's
//! one subscriber cost 628 bytes). Up to [`SPILL`] entries are kept in a vector sized to fit,
//! searched linearly; past that the map becomes a `HashMap`, as before.

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// Entries kept in the vector before the map spills into a `HashMap`.
pub const SPILL: usize = 8;

/// A map of few entries (a vector) or many (a `HashMap`).
#[derive(Debug)]
pub enum SmallMap<K, V> {
    Few(Vec<(K, V)>),
    Many(Box<HashMap<K, V>>),
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self::Few(Vec::new())
    }
}

impl<K: Eq + Hash, V> SmallMap<K, V> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        match self {
            Self::Few(entries) => entries.len(),
            Self::Many(map) => map.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            Self::Few(entries) => entries.iter().find(|(k, _)| k.borrow() == key).map(|(_, v)| v),
            Self::Many(map) => map.get(key),
        }
    }

    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            Self::Few(entries) => entries.iter_mut().find(|(k, _)| k.borrow() == key).map(|(_, v)| v),
            Self::Many(map) => map.get_mut(key),
        }
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get(key).is_some()
    }

    /// Inserts or replaces; returns the value replaced.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        let entries = match self {
            Self::Many(map) => return map.insert(key, value),
            Self::Few(entries) => entries,
        };
        if let Some((_, old)) = entries.iter_mut().find(|(k, _)| *k == key) {
            return Some(std::mem::replace(old, value));
        }
        if entries.len() < SPILL {
            // Grown one slot at a time: a connection with one subscription keeps one slot.
            entries.reserve_exact(1);
            entries.push((key, value));
            return None;
        }
        let mut map: HashMap<K, V> = std::mem::take(entries).into_iter().collect();
        map.insert(key, value);
        *self = Self::Many(Box::new(map));
        None
    }

    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        match self {
            Self::Few(entries) => {
                let at = entries.iter().position(|(k, _)| k.borrow() == key)?;
                let (_, value) = entries.swap_remove(at);
                if entries.is_empty() {
                    *entries = Vec::new();
                }
                Some(value)
            }
            Self::Many(map) => map.remove(key),
        }
    }

    /// Every entry, in no particular order.
    pub fn iter(&self) -> Iter<'_, K, V> {
        match self {
            Self::Few(entries) => Iter::Few(entries.iter()),
            Self::Many(map) => Iter::Many(map.iter()),
        }
    }

    /// Every entry, values mutable, in no particular order.
    pub fn iter_mut(&mut self) -> IterMut<'_, K, V> {
        match self {
            Self::Few(entries) => IterMut::Few(entries.iter_mut()),
            Self::Many(map) => IterMut::Many(map.iter_mut()),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &K> + '_ {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &V> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// Takes every entry out; the map is left empty, holding no allocation.
    pub fn take_all(&mut self) -> Vec<(K, V)> {
        match std::mem::take(self) {
            Self::Few(entries) => entries,
            Self::Many(map) => map.into_iter().collect(),
        }
    }
}

/// See [`SmallMap::iter`].
pub enum Iter<'a, K, V> {
    Few(std::slice::Iter<'a, (K, V)>),
    Many(std::collections::hash_map::Iter<'a, K, V>),
}

impl<'a, K, V> Iterator for Iter<'a, K, V> {
    type Item = (&'a K, &'a V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Few(entries) => entries.next().map(|(k, v)| (k, v)),
            Self::Many(entries) => entries.next(),
        }
    }
}

/// See [`SmallMap::iter_mut`].
pub enum IterMut<'a, K, V> {
    Few(std::slice::IterMut<'a, (K, V)>),
    Many(std::collections::hash_map::IterMut<'a, K, V>),
}

impl<'a, K, V> Iterator for IterMut<'a, K, V> {
    type Item = (&'a K, &'a mut V);

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Self::Few(entries) => entries.next().map(|(k, v)| (&*k, v)),
            Self::Many(entries) => entries.next(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_a_map_below_and_above_the_spill_point() {
        let mut map = SmallMap::new();
        let mut reference = HashMap::new();
        for round in 0..3u32 {
            for key in 0..(SPILL as u32 * 3) {
                let value = key * 10 + round;
                assert_eq!(map.insert(key, value), reference.insert(key, value), "insert {key}");
                assert_eq!(map.len(), reference.len());
                assert_eq!(map.get(&key), reference.get(&key));
            }
            for key in (0..(SPILL as u32 * 3)).step_by(2) {
                assert_eq!(map.remove(&key), reference.remove(&key), "remove {key}");
                assert!(!map.contains_key(&key));
            }
            if let Some(value) = map.get_mut(&1) {
                *value += 1;
            }
            if let Some(value) = reference.get_mut(&1) {
                *value += 1;
            }
            let mut entries: Vec<(u32, u32)> = map.iter().map(|(k, v)| (*k, *v)).collect();
            let mut expected: Vec<(u32, u32)> = reference.iter().map(|(k, v)| (*k, *v)).collect();
            entries.sort();
            expected.sort();
            assert_eq!(entries, expected);
        }
        assert!(matches!(map, SmallMap::Many(_)));
        let all = map.take_all();
        assert_eq!(all.len(), reference.len());
        assert!(map.is_empty());
    }

    #[test]
    fn a_small_map_holds_exactly_its_entries() {
        let mut map = SmallMap::new();
        map.insert("a", 1);
        let SmallMap::Few(entries) = &map else { panic!("one entry spilled") };
        assert_eq!(entries.capacity(), 1);
        assert_eq!(map.remove("a"), Some(1));
        let SmallMap::Few(entries) = &map else { panic!("spilled") };
        assert_eq!(entries.capacity(), 0, "an emptied map holds no allocation");
        assert_eq!(std::mem::size_of::<SmallMap<u64, u64>>(), 24);
    }
}
