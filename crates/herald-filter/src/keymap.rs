//! A hash map keyed by JSON scalars that is looked up with a borrowed
//! `&serde_json::Value`, so neither `$in` nor the subscription index allocates
//! a key per lookup.

use std::collections::HashMap;

use foldhash::fast::RandomState;
use serde_json::Value;

use crate::value::Num;

/// A hashable scalar: what `$in` sets and the subscription index key on.
/// Null, arrays and objects have no key; callers handle them without hashing.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    Bool(bool),
    Num(Num),
    Str(Box<str>),
}

impl Key {
    pub(crate) fn of(v: &Value) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(Self::Bool(*b)),
            Value::Number(n) => Some(Self::Num(Num::of(n))),
            Value::String(s) => Some(Self::Str(s.as_str().into())),
            _ => None,
        }
    }
}

/// Map from [`Key`] to `T`, split by type so strings are found by `&str`.
/// Hashing is foldhash with a per-map random seed: fast, and keys chosen by a
/// client cannot be crafted to collide.
#[derive(Debug, Clone)]
pub(crate) struct KeyMap<T> {
    strs: HashMap<Box<str>, T, RandomState>,
    nums: HashMap<Num, T, RandomState>,
    bools: [Option<T>; 2],
}

impl<T> Default for KeyMap<T> {
    fn default() -> Self {
        Self {
            strs: HashMap::default(),
            nums: HashMap::default(),
            bools: [None, None],
        }
    }
}

impl<T> KeyMap<T> {
    /// The entry for a document value; `None` for values with no key.
    #[inline]
    pub(crate) fn get(&self, v: &Value) -> Option<&T> {
        match v {
            Value::String(s) => self.strs.get(s.as_str()),
            Value::Number(n) => self.nums.get(&Num::of(n)),
            Value::Bool(b) => self.bools[usize::from(*b)].as_ref(),
            _ => None,
        }
    }

    pub(crate) fn get_or_default(&mut self, key: &Key) -> &mut T
    where
        T: Default,
    {
        match key {
            Key::Str(s) => self.strs.entry(s.clone()).or_default(),
            Key::Num(n) => self.nums.entry(*n).or_default(),
            Key::Bool(b) => self.bools[usize::from(*b)].get_or_insert_with(T::default),
        }
    }

    pub(crate) fn get_key(&self, key: &Key) -> Option<&T> {
        match key {
            Key::Str(s) => self.strs.get(s),
            Key::Num(n) => self.nums.get(n),
            Key::Bool(b) => self.bools[usize::from(*b)].as_ref(),
        }
    }

    pub(crate) fn get_mut(&mut self, key: &Key) -> Option<&mut T> {
        match key {
            Key::Str(s) => self.strs.get_mut(s),
            Key::Num(n) => self.nums.get_mut(n),
            Key::Bool(b) => self.bools[usize::from(*b)].as_mut(),
        }
    }

    pub(crate) fn remove(&mut self, key: &Key) {
        match key {
            Key::Str(s) => {
                self.strs.remove(s);
            }
            Key::Num(n) => {
                self.nums.remove(n);
            }
            Key::Bool(b) => self.bools[usize::from(*b)] = None,
        }
    }

    /// Every key present.
    pub(crate) fn keys(&self) -> impl Iterator<Item = Key> + '_ {
        let bools = [false, true]
            .into_iter()
            .filter(|b| self.bools[usize::from(*b)].is_some());
        self.strs
            .keys()
            .map(|s| Key::Str(s.clone()))
            .chain(self.nums.keys().map(|n| Key::Num(*n)))
            .chain(bools.map(Key::Bool))
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.strs.len() + self.nums.len() + self.bools.iter().flatten().count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_match_by_value() {
        let mut map = KeyMap::<u8>::default();
        *map.get_or_default(&Key::of(&json!(1)).unwrap()) = 7;
        assert_eq!(map.get(&json!(1.0)), Some(&7));
        assert_eq!(map.get(&json!("1")), None);
        assert_eq!(map.len(), 1);
        map.remove(&Key::of(&json!(1.0)).unwrap());
        assert_eq!(map.len(), 0);
    }
}
