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

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use foldhash::fast::RandomState;
use serde_json::Value;

use crate::eval::{Const, Node, Pred};
use crate::path::Path;
use crate::value::Num;

/// Most paths a conjunction may have to be indexed exactly.
pub(crate) const MAX_PATHS: usize = 4;

/// Bytes of a tuple kept inline: two short ids (`"t42"`, `"u1234"`) fit,
/// so the common lookup reads no memory beyond the hash table itself.
const INLINE: usize = 30;

/// Bytes of a probe encoded on the stack before spilling to the heap.
const PROBE: usize = 128;

/// The value tuple of a filed conjunction, in shape order, encoded as bytes:
/// per value a tag, then the value (strings with their length), so equal
/// tuples, and only they, have equal bytes. Numbers are encoded in their
/// normalized form: `1` and `1.0` encode alike.
#[derive(Debug, Clone)]
pub(crate) enum Tuple {
    Inline { len: u8, buf: [u8; INLINE] },
    Heap(Box<[u8]>),
}

impl Tuple {
    fn new(bytes: &[u8]) -> Self {
        match u8::try_from(bytes.len()) {
            Ok(len) if bytes.len() <= INLINE => {
                let mut buf = [0; INLINE];
                buf[..bytes.len()].copy_from_slice(bytes);
                Self::Inline { len, buf }
            }
            _ => Self::Heap(bytes.into()),
        }
    }

    fn as_bytes(&self) -> &[u8] {
        match self {
            Self::Inline { len, buf } => &buf[..usize::from(*len)],
            Self::Heap(bytes) => bytes,
        }
    }
}

impl PartialEq for Tuple {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for Tuple {}

impl Hash for Tuple {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Must hash as the `[u8]` it borrows as.
        self.as_bytes().hash(state);
    }
}

impl Borrow<[u8]> for Tuple {
    fn borrow(&self) -> &[u8] {
        self.as_bytes()
    }
}

/// A scalar on its way into a tuple's bytes, from a filter constant or a document value.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Bool(bool),
    Num(Num),
    Str(&'a str),
}

impl<'a> Scalar<'a> {
    fn of_value(v: &'a Value) -> Option<Self> {
        match v {
            Value::Bool(b) => Some(Self::Bool(*b)),
            Value::Number(n) => Some(Self::Num(Num::of(n))),
            Value::String(s) => Some(Self::Str(s)),
            _ => None,
        }
    }

    /// Writes the encoding in pieces to `out`.
    fn encode(self, out: &mut impl FnMut(&[u8])) {
        match self {
            Self::Bool(b) => out(&[0, u8::from(b)]),
            Self::Num(Num::Int(i)) => {
                out(&[1]);
                out(&i.to_le_bytes());
            }
            Self::Num(Num::Float(f)) => {
                out(&[2]);
                out(&f.to_bits().to_le_bytes());
            }
            Self::Str(s) => {
                out(&[3]);
                // A length that does not fit u32 cannot be a filter key (limits
                // bound them far lower); saturating keeps the encoding total.
                out(&u32::try_from(s.len()).unwrap_or(u32::MAX).to_le_bytes());
                out(s.as_bytes());
            }
        }
    }
}

/// Encodes a document's tuple on the stack, spilling to the heap only for
/// unusually long values.
struct Probe {
    buf: [u8; PROBE],
    len: usize,
    spill: Vec<u8>,
}

impl Probe {
    fn encode(values: &[&Value]) -> Self {
        let mut probe = Self {
            buf: [0; PROBE],
            len: 0,
            spill: Vec::new(),
        };
        for v in values {
            if let Some(s) = Scalar::of_value(v) {
                s.encode(&mut |bytes| probe.push(bytes));
            }
        }
        probe
    }

    fn push(&mut self, bytes: &[u8]) {
        if self.spill.is_empty() && self.len + bytes.len() <= PROBE {
            self.buf[self.len..self.len + bytes.len()].copy_from_slice(bytes);
            self.len += bytes.len();
        } else {
            if self.spill.is_empty() {
                self.spill.extend_from_slice(&self.buf[..self.len]);
            }
            self.spill.extend_from_slice(bytes);
        }
    }

    fn bytes(&self) -> &[u8] {
        if self.spill.is_empty() {
            &self.buf[..self.len]
        } else {
            &self.spill
        }
    }
}

/// If `root` is a conjunction of scalar equalities on distinct paths, its
/// paths (sorted) and its value tuple in the same order.
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
                Const::Bool(b) => Some((path, Scalar::Bool(*b))),
                Const::Num(n) => Some((path, Scalar::Num(*n))),
                Const::Str(s) => Some((path, Scalar::Str(s))),
                Const::Null | Const::Compound(_) => None,
            },
            _ => None,
        })
        .collect::<Option<Vec<_>>>()?;
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    if pairs.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let mut bytes = Vec::new();
    for (_, scalar) in &pairs {
        scalar.encode(&mut |b| bytes.extend_from_slice(b));
    }
    let paths = pairs.into_iter().map(|(p, _)| p.clone()).collect();
    Some((paths, Tuple::new(&bytes)))
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
            if let Some(bucket) = self.buckets.get(Probe::encode(&tuple[..depth]).bytes()) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Filter, Limits};
    use serde_json::json;

    fn shape_of(filter: &Value) -> (Shape<u8>, Tuple) {
        let filter = Filter::from_json(filter, &Limits::default()).unwrap();
        let (paths, tuple) = conjunction(filter.root()).unwrap();
        let mut shape = Shape::new(paths);
        shape.insert(tuple.clone(), 1);
        (shape, tuple)
    }

    fn found(shape: &Shape<u8>, doc: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        shape.lookup(doc, &mut |ids, _| out.extend_from_slice(ids));
        out
    }

    #[test]
    fn numbers_encode_by_value() {
        let (shape, _) = shape_of(&json!({"n": 1, "s": "x"}));
        assert_eq!(found(&shape, &json!({"n": 1.0, "s": "x"})), [1]);
        assert!(found(&shape, &json!({"n": "1", "s": "x"})).is_empty());
    }

    #[test]
    fn long_values_spill_and_still_match() {
        let long = "x".repeat(PROBE * 2);
        let (shape, tuple) = shape_of(&json!({"a": long, "b": true}));
        assert!(matches!(tuple, Tuple::Heap(_)));
        assert_eq!(found(&shape, &json!({"a": long, "b": true})), [1]);
    }

    #[test]
    fn every_combination_is_looked_up() {
        let (shape, _) = shape_of(&json!({"a": "x", "b": 2}));
        assert_eq!(found(&shape, &json!({"a": ["y", "x"], "b": [1, 2]})), [1]);
    }

    #[test]
    fn removing_empties_the_shape() {
        let (mut shape, tuple) = shape_of(&json!({"a": "x"}));
        shape.remove(&tuple, 1);
        assert!(shape.is_empty());
    }

    #[test]
    fn only_equalities_on_distinct_paths_qualify() {
        let limits = Limits::default();
        for filter in [
            json!({"a": null}),
            json!({"a": {"$gt": 1}}),
            json!({"$and": [{"a": 1}, {"a": 2}]}),
            json!({"a": [1]}),
        ] {
            assert!(
                conjunction(Filter::from_json(&filter, &limits).unwrap().root()).is_none(),
                "{filter}"
            );
        }
    }
}
