//! [`SubIndex`]: for one event, every matching subscription among very many.
//!
//! A filter with scalar equalities in its top-level AND is filed in the exact
//! index under their values (see `conj.rs`): one hash lookup of the event's
//! values finds it. When the equalities are the whole filter (the common
//! subscription, `{"tenant": "t1", "user": "u7"}`) nothing is left to confirm;
//! otherwise only its other clauses are checked.
//!
//! Any other filter is registered under one *anchor*: a predicate from its
//! top-level AND that every matching document must satisfy.
//!
//! - `$in` on scalars → a hash bucket per value at that path (among several,
//!   the one whose buckets are currently smallest);
//! - a range (`$gt`, `$gte`, `$lt`, `$lte`) on a number or string → an ordered
//!   map from the bound to subscriptions, probed with a range query;
//! - anything else (`$or` at the top, `$ne`, null equality, `$regex`...) → the
//!   fallback list, evaluated for every event.
//!
//! Matching walks each indexed path of the event once, probes the buckets of
//! the values found there (array elements included, as equality needs), and
//! confirms each candidate with the rest of its filter (a hash probe has
//! already proved its own clause): anchors only have to be *complete*, never
//! exact. Inserting and removing touch only the filter's own buckets; removal
//! scans those buckets, so it costs their length.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::ops::Bound;
use std::sync::Arc;

use foldhash::fast::RandomState;
use serde_json::Value;

use crate::conj::{Shape, Tuple, equalities};
use crate::eval::{CmpOp, Const, Node, Pred};
use crate::filter::Filter;
use crate::keymap::{Key, KeyMap};
use crate::path::Path;
use crate::value::Num;

/// Position of an entry in the slab.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot(u32);

/// Subscriptions of one topic, indexed so that matching an event costs about
/// the number of candidates, not the number of subscriptions.
///
/// ```
/// use herald_filter::{Filter, Limits, SubIndex};
/// use serde_json::json;
/// use std::sync::Arc;
///
/// let mut index = SubIndex::new();
/// let f = |v| Arc::new(Filter::from_json(&v, &Limits::default()).unwrap());
/// index.insert('a', f(json!({"tags": "rust"})));
/// index.insert('b', f(json!({"price": {"$lt": 10}})));
/// let mut out = Vec::new();
/// index.matches(&json!({"tags": ["go", "rust"], "price": 5}), &mut out);
/// out.sort();
/// assert_eq!(out, ['a', 'b']);
/// ```
#[derive(Debug)]
pub struct SubIndex<K> {
    entries: Vec<Option<Entry<K>>>,
    free: Vec<Slot>,
    slots: HashMap<K, Slot, RandomState>,
    paths: Vec<PathIndex>,
    path_ids: HashMap<Path, usize, RandomState>,
    fallback: Vec<Slot>,
    /// Conjunctions of equalities, exactly indexed, by shape (their sorted paths).
    shapes: Vec<Shape<Member<K>>>,
    shape_ids: HashMap<Box<[Path]>, usize, RandomState>,
}

#[derive(Debug)]
struct Entry<K> {
    id: K,
    /// A clone of the caller's filter (one `Arc` hop less than holding the
    /// `Arc<Filter>`: confirming candidates is bound by memory latency).
    filter: Filter,
    anchor: Anchor,
    confirm: Confirm,
}

/// A filter filed in the exact index: its id and, unless its equalities are
/// the whole filter, the slot of the entry whose other clauses to confirm.
#[derive(Debug, Clone, Copy)]
struct Member<K> {
    id: K,
    confirm: Option<Slot>,
}

/// What is left to check on a candidate found through its anchor.
#[derive(Debug, Clone, Copy)]
enum Confirm {
    /// The whole filter (range anchors: a bucket holds bounds up to the value).
    Whole,
    /// Every top-level clause but these (bit `i`: clause `i`), which the
    /// lookup that found the candidate has proved.
    Except(u64),
    /// Nothing: the filter is the anchor's equality or `$in`.
    Nothing,
}

/// Where an entry is registered, so removal finds it without searching.
#[derive(Debug)]
enum Anchor {
    Fallback {
        pos: usize,
    },
    Exact {
        shape: usize,
        tuple: Tuple,
    },
    Eq {
        path: usize,
        keys: Box<[Key]>,
    },
    Range {
        path: usize,
        side: Side,
        bound: RangeBound,
    },
}

/// Which side of the probed value a range bound sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    /// `$gt`/`$gte`: matches values at or above the bound.
    Lower,
    /// `$lt`/`$lte`: matches values at or below the bound.
    Upper,
}

/// A range bound the index can order.
#[derive(Debug, Clone)]
enum RangeBound {
    Num(Num),
    Str(Box<str>),
}

/// The index of one path.
#[derive(Debug)]
struct PathIndex {
    path: Path,
    eq: KeyMap<Vec<Slot>>,
    lower: Ranges,
    upper: Ranges,
    /// Entries anchored here; a path with none is skipped when matching.
    subs: usize,
}

#[derive(Debug, Default)]
struct Ranges {
    nums: BTreeMap<Num, Vec<Slot>>,
    strs: BTreeMap<Box<str>, Vec<Slot>>,
}

impl Ranges {
    fn bucket(&mut self, bound: &RangeBound) -> &mut Vec<Slot> {
        match bound {
            RangeBound::Num(n) => self.nums.entry(*n).or_default(),
            RangeBound::Str(s) => self.strs.entry(s.clone()).or_default(),
        }
    }

    fn remove(&mut self, bound: &RangeBound, slot: Slot) {
        match bound {
            RangeBound::Num(n) => {
                if let Some(bucket) = self.nums.get_mut(n)
                    && remove_slot(bucket, slot)
                {
                    self.nums.remove(n);
                }
            }
            RangeBound::Str(s) => {
                if let Some(bucket) = self.strs.get_mut(s)
                    && remove_slot(bucket, slot)
                {
                    self.strs.remove(s);
                }
            }
        }
    }

    /// Calls `f` with every bucket whose bound is on `side` of `v`.
    fn probe(&self, side: Side, v: &Value, f: &mut impl FnMut(&[Slot])) {
        match v {
            Value::Number(n) => {
                let n = Num::of(n);
                let range = match side {
                    Side::Lower => self.nums.range(..=n),
                    Side::Upper => self.nums.range(n..),
                };
                range.for_each(|(_, b)| f(b));
            }
            Value::String(s) => {
                let s = s.as_str();
                let bounds = match side {
                    Side::Lower => (Bound::Unbounded, Bound::Included(s)),
                    Side::Upper => (Bound::Included(s), Bound::Unbounded),
                };
                self.strs.range::<str, _>(bounds).for_each(|(_, b)| f(b));
            }
            _ => {}
        }
    }
}

/// Removes `slot` from a bucket; true if the bucket is now empty.
fn remove_slot(bucket: &mut Vec<Slot>, slot: Slot) -> bool {
    if let Some(i) = bucket.iter().position(|s| *s == slot) {
        bucket.swap_remove(i);
    }
    bucket.is_empty()
}

/// An anchor candidate found in a filter, before a path id is assigned.
enum Candidate<'f> {
    /// Equality or `$in` at clause `usize` of the top-level AND.
    Eq(usize, &'f Path, Vec<Key>),
    Range(&'f Path, Side, RangeBound),
}

/// The indexable predicates of a filter's top-level AND.
fn candidates(root: &Node) -> Vec<Candidate<'_>> {
    let clauses = match root {
        Node::And(nodes) => &nodes[..],
        other => std::slice::from_ref(other),
    };
    clauses
        .iter()
        .enumerate()
        .filter_map(|(i, clause)| {
            let Node::Field(path, pred) = clause else {
                return None;
            };
            match pred {
                // Scalar equalities went to the exact index; null equality
                // also matches a missing field, so it is not indexable.
                Pred::In(set) if !set.has_null && set.compound.is_empty() => {
                    Some(Candidate::Eq(i, path, set.keys.keys().collect()))
                }
                Pred::Cmp(op, c) => {
                    let side = match op {
                        CmpOp::Gt | CmpOp::Gte => Side::Lower,
                        CmpOp::Lt | CmpOp::Lte => Side::Upper,
                    };
                    let bound = match c {
                        Const::Num(n) => RangeBound::Num(*n),
                        Const::Str(s) => RangeBound::Str(s.clone()),
                        _ => return None,
                    };
                    Some(Candidate::Range(path, side, bound))
                }
                _ => None,
            }
        })
        .collect()
}

impl<K: Copy + Eq + Hash> Default for SubIndex<K> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Copy + Eq + Hash> SubIndex<K> {
    /// An empty index.
    pub fn new() -> Self {
        Self {
            entries: Vec::new(),
            free: Vec::new(),
            slots: HashMap::default(),
            paths: Vec::new(),
            path_ids: HashMap::default(),
            fallback: Vec::new(),
            shapes: Vec::new(),
            shape_ids: HashMap::default(),
        }
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are no subscriptions.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Every subscription's id, in no particular order: for deliveries
    /// that concern every subscriber whatever its filter.
    pub fn ids(&self) -> impl Iterator<Item = K> + '_ {
        self.slots.keys().copied()
    }

    /// Number of subscriptions with nothing indexable, tested on every event.
    pub fn fallback_len(&self) -> usize {
        self.fallback.len()
    }

    /// Adds (or replaces) a subscription. Costs the size of its filter plus a
    /// few hash or tree operations; nothing else is rebuilt.
    pub fn insert(&mut self, id: K, filter: Arc<Filter>) {
        self.remove(id);
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                let slot =
                    Slot(u32::try_from(self.entries.len()).expect("fewer than 2^32 subscriptions"));
                self.entries.push(None);
                slot
            }
        };
        let filter = Filter::clone(&filter);
        let mut confirm = Confirm::Whole;
        let anchor = match equalities(filter.root()) {
            Some(eqs) => {
                confirm = if eqs.complete {
                    Confirm::Nothing
                } else {
                    Confirm::Except(eqs.clauses)
                };
                let member = Member {
                    id,
                    confirm: (!eqs.complete).then_some(slot),
                };
                self.register_exact(member, eqs.paths, eqs.tuple)
            }
            None => self.register(slot, filter.root(), &mut confirm),
        };
        self.entries[slot.0 as usize] = Some(Entry {
            id,
            filter,
            anchor,
            confirm,
        });
        self.slots.insert(id, slot);
    }

    /// Files a filter under the shape and values of its equalities.
    fn register_exact(&mut self, member: Member<K>, paths: Vec<Path>, tuple: Tuple) -> Anchor {
        let paths: Box<[Path]> = paths.into();
        let shape = match self.shape_ids.get(&paths) {
            Some(&shape) => shape,
            None => {
                self.shapes.push(Shape::new(paths.to_vec()));
                self.shape_ids.insert(paths, self.shapes.len() - 1);
                self.shapes.len() - 1
            }
        };
        self.shapes[shape].insert(tuple.clone(), member);
        Anchor::Exact { shape, tuple }
    }

    /// Picks the anchor of a filter and files `slot` under it.
    fn register(&mut self, slot: Slot, root: &Node, confirm: &mut Confirm) -> Anchor {
        let mut best: Option<(usize, Candidate<'_>)> = None;
        for candidate in candidates(root) {
            // Equality beats ranges; among equalities, the emptiest buckets win.
            let cost = match &candidate {
                Candidate::Eq(_, path, keys) => {
                    let index = self.path_ids.get(*path).map(|&i| &self.paths[i]);
                    keys.iter()
                        .map(|k| 1 + index.and_then(|p| p.eq.get_key(k)).map_or(0, Vec::len))
                        .sum()
                }
                Candidate::Range(..) => usize::MAX,
            };
            if best.as_ref().is_none_or(|(best_cost, _)| cost < *best_cost) {
                best = Some((cost, candidate));
            }
        }
        let Some((_, candidate)) = best else {
            self.fallback.push(slot);
            return Anchor::Fallback {
                pos: self.fallback.len() - 1,
            };
        };
        // A probe that finds an equality bucket has proved that clause true.
        *confirm = match (&candidate, root) {
            (Candidate::Eq(..), Node::Field(..)) => Confirm::Nothing,
            (Candidate::Eq(clause, ..), _) if *clause < 64 => Confirm::Except(1 << clause),
            _ => Confirm::Whole,
        };
        let (path, anchor) = match candidate {
            Candidate::Eq(_, path, keys) => (
                path,
                Anchor::Eq {
                    path: 0,
                    keys: keys.into(),
                },
            ),
            Candidate::Range(path, side, bound) => (
                path,
                Anchor::Range {
                    path: 0,
                    side,
                    bound,
                },
            ),
        };
        let id = self.path_id(path);
        let index = &mut self.paths[id];
        index.subs += 1;
        match anchor {
            Anchor::Eq { keys, .. } => {
                for key in &keys {
                    index.eq.get_or_default(key).push(slot);
                }
                Anchor::Eq { path: id, keys }
            }
            Anchor::Range { side, bound, .. } => {
                index.ranges(side).bucket(&bound).push(slot);
                Anchor::Range {
                    path: id,
                    side,
                    bound,
                }
            }
            Anchor::Fallback { .. } | Anchor::Exact { .. } => {
                unreachable!("candidates are neither")
            }
        }
    }

    fn path_id(&mut self, path: &Path) -> usize {
        if let Some(&id) = self.path_ids.get(path) {
            return id;
        }
        self.paths.push(PathIndex {
            path: path.clone(),
            eq: KeyMap::default(),
            lower: Ranges::default(),
            upper: Ranges::default(),
            subs: 0,
        });
        self.path_ids.insert(path.clone(), self.paths.len() - 1);
        self.paths.len() - 1
    }

    /// Removes a subscription; false if there was none with that id.
    pub fn remove(&mut self, id: K) -> bool {
        let Some(slot) = self.slots.remove(&id) else {
            return false;
        };
        let Some(entry) = self.entries[slot.0 as usize].take() else {
            return false;
        };
        match entry.anchor {
            Anchor::Exact { shape, tuple } => self.shapes[shape].remove(&tuple, |m| m.id == id),
            Anchor::Fallback { pos } => {
                self.fallback.swap_remove(pos);
                if let Some(&moved) = self.fallback.get(pos)
                    && let Some(Entry {
                        anchor: Anchor::Fallback { pos: p },
                        ..
                    }) = &mut self.entries[moved.0 as usize]
                {
                    *p = pos;
                }
            }
            Anchor::Eq { path, keys } => {
                let index = &mut self.paths[path];
                index.subs -= 1;
                for key in keys.iter() {
                    if let Some(bucket) = index.eq.get_mut(key)
                        && remove_slot(bucket, slot)
                    {
                        index.eq.remove(key);
                    }
                }
            }
            Anchor::Range { path, side, bound } => {
                let index = &mut self.paths[path];
                index.subs -= 1;
                index.ranges(side).remove(&bound, slot);
            }
        }
        self.free.push(slot);
        true
    }

    /// Appends to `out` the id of every subscription whose filter matches `doc`,
    /// each exactly once, in no particular order. Allocates nothing beyond the
    /// growth of `out`, except once when the values at an equality-indexed set
    /// of paths add up to more than 128 bytes (the lookup key then spills to
    /// the heap).
    pub fn matches(&self, doc: &Value, out: &mut Vec<K>) {
        for &slot in &self.fallback {
            self.confirm(slot, doc, out, None);
        }
        for shape in &self.shapes {
            if shape.is_empty() {
                continue;
            }
            // A subscription sits in one bucket of one shape: a bucket can only
            // come twice when the document repeats a value combination.
            let start = out.len();
            shape.lookup(doc, &mut |members, again| {
                for member in members {
                    match member.confirm {
                        None if again && out[start..].contains(&member.id) => {}
                        None => out.push(member.id),
                        Some(slot) => self.confirm(slot, doc, out, again.then_some(start)),
                    }
                }
            });
        }
        for index in &self.paths {
            if index.subs == 0 {
                continue;
            }
            // A subscription sits in one path's buckets, so duplicates can only
            // come from several values probed at this path: check for them only
            // from the second probe on.
            let start = out.len();
            let mut probes = 0_usize;
            let mut probe = |v: &Value, out: &mut Vec<K>| {
                let dedup = (probes > 0).then_some(start);
                probes += 1;
                let mut visit = |bucket: &[Slot]| {
                    for &slot in bucket {
                        self.confirm(slot, doc, out, dedup);
                    }
                };
                if let Some(bucket) = index.eq.get(v) {
                    visit(bucket);
                }
                index.lower.probe(Side::Lower, v, &mut visit);
                index.upper.probe(Side::Upper, v, &mut visit);
            };
            index.path.any(doc, &mut |leaf| {
                match leaf {
                    Some(Value::Array(items)) => items.iter().for_each(|item| probe(item, out)),
                    Some(v) => probe(v, out),
                    None => {}
                }
                false
            });
        }
    }

    /// Pushes the id of `slot` if its filter matches (and, when `dedup` gives the
    /// start of this path's output, if it is not already there).
    #[inline]
    fn confirm(&self, slot: Slot, doc: &Value, out: &mut Vec<K>, dedup: Option<usize>) {
        if let Some(entry) = &self.entries[slot.0 as usize]
            && dedup.is_none_or(|start| !out[start..].contains(&entry.id))
            && match entry.confirm {
                Confirm::Whole => entry.filter.matches(doc),
                Confirm::Except(clauses) => entry.filter.root().matches_except(doc, clauses),
                Confirm::Nothing => true,
            }
        {
            out.push(entry.id);
        }
    }
}

impl PathIndex {
    fn ranges(&mut self, side: Side) -> &mut Ranges {
        match side {
            Side::Lower => &mut self.lower,
            Side::Upper => &mut self.upper,
        }
    }
}
