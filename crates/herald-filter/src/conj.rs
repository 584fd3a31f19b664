//! Exact index on a filter's scalar equalities, made for the most common
//! subscription: a conjunction of them (`{"tenant": "t1", "user": "u7"}`).
//!
//! The equalities of a filter's top-level AND are described by their paths and
//! values, so the filter is filed under the tuple of its values in a hash map
//! per *shape* (the set of paths). Matching an event looks up the event's own
//! tuple once per shape. When the equalities are the whole filter, every
//! subscription in the bucket found matches and none needs confirming: the
//! cost does not grow with the number of subscriptions. Otherwise the bucket
//! holds exactly the filters whose equalities hold, and only their other
//! clauses remain to be checked.
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

/// Most equalities of one filter in its exact key; the rest are confirmed.
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

/// The scalar equalities of a filter's top-level AND, as an exact key.
#[derive(Debug)]
pub(crate) struct Equalities {
    /// Their paths, sorted: the shape.
    pub(crate) paths: Vec<Path>,
    /// Their values in path order.
    pub(crate) tuple: Tuple,
    /// Bit `i` set: top-level clause `i` is one of them (proved by a lookup hit).
    pub(crate) clauses: u64,
    /// Whether they are the whole filter (nothing left to confirm).
    pub(crate) complete: bool,
}

/// The scalar equalities of `root`'s top-level AND on distinct paths (at most
/// [`MAX_PATHS`], among the first 64 clauses); `None` if there are none.
pub(crate) fn equalities(root: &Node) -> Option<Equalities> {
    let clauses = match root {
        Node::And(nodes) => &nodes[..],
        other => std::slice::from_ref(other),
    };
    let mut pairs: Vec<(&Path, Scalar<'_>)> = Vec::new();
    let mut mask = 0_u64;
    for (i, clause) in clauses.iter().enumerate().take(64) {
        let Node::Field(path, Pred::Eq(c)) = clause else {
            continue;
        };
        let scalar = match c {
            Const::Bool(b) => Scalar::Bool(*b),
            Const::Num(n) => Scalar::Num(*n),
            Const::Str(s) => Scalar::Str(s),
            Const::Null | Const::Compound(_) => continue,
        };
        // A second equality on a path already taken stays to be confirmed.
        if pairs.len() < MAX_PATHS && pairs.iter().all(|(p, _)| *p != path) {
            pairs.push((path, scalar));
            mask |= 1 << i;
        }
    }
    if pairs.is_empty() {
        return None;
    }
    pairs.sort_by(|a, b| a.0.cmp(b.0));
    let mut bytes = Vec::new();
    for (_, scalar) in &pairs {
        scalar.encode(&mut |b| bytes.extend_from_slice(b));
    }
    Some(Equalities {
        complete: pairs.len() == clauses.len(),
        paths: pairs.into_iter().map(|(p, _)| p.clone()).collect(),
        tuple: Tuple::new(&bytes),
        clauses: mask,
    })
}

/// All filters whose equalities have one shape, by value tuple.
#[derive(Debug)]
pub(crate) struct Shape<M> {
    paths: Box<[Path]>,
    /// Members by value tuple. A member carries what matching needs (the id,
    /// and for filters with more than equalities what to confirm), so a
    /// complete conjunction reads nothing but this bucket.
    buckets: HashMap<Tuple, Vec<M>, RandomState>,
}

impl<M> Shape<M> {
    pub(crate) fn new(paths: Vec<Path>) -> Self {
        Self {
            paths: paths.into(),
            buckets: HashMap::default(),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }

    pub(crate) fn insert(&mut self, tuple: Tuple, member: M) {
        self.buckets.entry(tuple).or_default().push(member);
    }

    pub(crate) fn remove(&mut self, tuple: &Tuple, is: impl Fn(&M) -> bool) {
        if let Some(bucket) = self.buckets.get_mut(tuple) {
            if let Some(i) = bucket.iter().position(is) {
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
    pub(crate) fn lookup(&self, doc: &Value, found: &mut impl FnMut(&[M], bool)) {
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
        found: &mut impl FnMut(&[M], bool),
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
        let eqs = equalities(filter.root()).unwrap();
        assert!(eqs.complete);
        let mut shape = Shape::new(eqs.paths);
        shape.insert(eqs.tuple.clone(), 1);
        (shape, eqs.tuple)
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
        shape.remove(&tuple, |m| *m == 1);
        assert!(shape.is_empty());
    }

    #[test]
    fn other_clauses_are_left_to_confirm() {
        let limits = Limits::default();
        let eqs = |f: Value| equalities(Filter::from_json(&f, &limits).unwrap().root());
        for filter in [
            json!({"a": null}),
            json!({"a": {"$gt": 1}}),
            json!({"a": [1]}),
        ] {
            assert!(eqs(filter.clone()).is_none(), "{filter}");
        }
        // Clauses are in field order: a, b, c.
        let partial = eqs(json!({"a": 1, "b": {"$gt": 1}, "c": "x"})).unwrap();
        assert_eq!((partial.clauses, partial.complete), (0b101, false));
        let repeated = eqs(json!({"$and": [{"a": 1}, {"a": 2}]})).unwrap();
        assert_eq!((repeated.clauses, repeated.complete), (0b01, false));
        let five = eqs(json!({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1})).unwrap();
        assert_eq!((five.paths.len(), five.complete), (MAX_PATHS, false));
    }
}
