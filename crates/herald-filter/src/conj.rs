//! Exact index for the most common subscription: a conjunction of scalar
//! equalities (`{"tenant": "t1", "user": "u7"}`).
//!
//! Such a filter is fully described by its paths and their values, so it is
//! filed under the tuple of its values in a hash map per *shape* (the set of
//! paths). Matching an event looks up the event's own tuple once per shape:
//! every subscription in the bucket found matches, none needs confirming, and
//! the cost does not grow with the number of subscriptions.
//!
//! Array semantics still hold: when a path reaches several scalars (array
//! elements, or arrays of objects), every combination is looked up.

use std::hash::{Hash, Hasher};

use foldhash::fast::RandomState;
use hashbrown::{Equivalent, HashMap};
use serde_json::Value;

use crate::eval::{Const, Node, Pred};
use crate::keymap::{Key, hash_scalar};
use crate::path::Path;

/// Most paths a conjunction may have to be indexed exactly.
pub(crate) const MAX_PATHS: usize = 4;

/// The value tuple of a filed conjunction, in shape order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tuple(Box<[Key]>);

impl Hash for Tuple {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.0.iter().for_each(|k| k.hash(state));
    }
}

/// A document's values for a shape, borrowed: looked up without building a [`Tuple`].
struct Probe<'a, 'd>(&'a [&'d Value]);

impl Hash for Probe<'_, '_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for v in self.0 {
            hash_scalar(v, state);
        }
    }
}

impl Equivalent<Tuple> for Probe<'_, '_> {
    fn equivalent(&self, key: &Tuple) -> bool {
        self.0.len() == key.0.len() && key.0.iter().zip(self.0).all(|(k, v)| k.matches(v))
    }
}

/// If `root` is a conjunction of scalar equalities on distinct paths, its
/// paths (sorted) and values in the same order.
pub(crate) fn conjunction(root: &Node) -> Option<(Vec<Path>, Tuple)> {
    let clauses = match root {
        Node::And(nodes) => &nodes[..],
        other => std::slice::from_ref(other),
    };
    if clauses.len() > MAX_PATHS {
        return None;
    }
    let mut pairs = clauses
        .iter()
        .map(|clause| match clause {
            Node::Field(path, Pred::Eq(c)) => match c {
                Const::Bool(b) => Some((path, Key::Bool(*b))),
                Const::Num(n) => Some((path, Key::Num(*n))),
                Const::Str(s) => Some((path, Key::Str(s.clone()))),
                Const::Null | Const::Compound(_) => None,
            },
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let (paths, keys): (Vec<Path>, Vec<Key>) =
        pairs.into_iter().map(|(p, k)| (p.clone(), k)).unzip();
    Some((paths, Tuple(keys.into())))
}

/// All conjunctions of one shape.
#[derive(Debug)]
pub(crate) struct Shape<K> {
    paths: Box<[Path]>,
    /// Subscription ids by value tuple: ids, not slots, so matching reads
    /// nothing but this bucket.
    buckets: HashMap<Tuple, Vec<K>, RandomState>,
}

impl<K: Copy + PartialEq> Shape<K> {
    pub(crate) fn new(paths: Vec<Path>) -> Self {
        Self {
            paths: paths.into(),
            buckets: HashMap::default(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub(crate) fn insert(&mut self, tuple: Tuple, id: K) {
        self.buckets.entry(tuple).or_default().push(id);
    }

    pub(crate) fn remove(&mut self, tuple: &Tuple, id: K) {
        if let Some(bucket) = self.buckets.get_mut(tuple) {
            if let Some(i) = bucket.iter().position(|s| *s == id) {
                bucket.swap_remove(i);
            }
            if bucket.is_empty() {
                self.buckets.remove(tuple);
            }
        }
    }

    /// Calls `found` with the bucket of every value combination `doc` has for
    /// this shape, and with `true` as second argument from the second lookup on
    /// (when the same bucket might come again).
    pub(crate) fn lookup(&self, doc: &Value, found: &mut impl FnMut(&[K], bool)) {
        let mut tuple: [&Value; MAX_PATHS] = [&Value::Null; MAX_PATHS];
        let mut lookups = 0_usize;
        self.combine(doc, 0, &mut tuple, &mut lookups, found);
    }

    fn combine<'d>(
        &self,
        doc: &'d Value,
        depth: usize,
        tuple: &mut [&'d Value; MAX_PATHS],
        lookups: &mut usize,
        found: &mut impl FnMut(&[K], bool),
    ) {
        let Some(path) = self.paths.get(depth) else {
            if let Some(bucket) = self.buckets.get(&Probe(&tuple[..depth])) {
                found(bucket, *lookups > 0);
            }
            *lookups += 1;
            return;
        };
        let mut each = |v: &'d Value| {
            if matches!(v, Value::Bool(_) | Value::Number(_) | Value::String(_)) {
                tuple[depth] = v;
                self.combine(doc, depth + 1, tuple, lookups, found);
            }
        };
        path.any(doc, &mut |leaf| {
            match leaf {
                Some(Value::Array(items)) => items.iter().for_each(&mut each),
                Some(v) => each(v),
                None => {}
            }
            false
        });
    }
}
