//! The compiled filter tree and its evaluation.
//!
//! The tree is closed: every operator of the language has become one of a few
//! node and predicate variants, with paths split, constants normalized, `$in`
//! lists hashed and regexes compiled. Negations (`$ne`, `$nin`, `$not`,
//! `$exists: false`, `$nor`) are [`Node::Not`] around the positive form, which is
//! exactly MongoDB's meaning: `{"a": {"$ne": 1}}` matches when *no* value at `a`
//! equals 1, including when `a` is missing. Evaluation never allocates.

use std::cmp::Ordering;

use regex::Regex;
use serde_json::Value;

use crate::keymap::KeyMap;
use crate::path::Path;
use crate::value::{Num, bracket, compare};

/// A node of the compiled filter.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Matches every document (`{}`).
    All,
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    /// A predicate over the values reached at a path: true if any value satisfies it.
    Field(Path, Pred),
}

/// A predicate on one value reached by a path (`None`: the field is missing).
#[derive(Debug, Clone)]
pub(crate) enum Pred {
    Eq(Const),
    /// Boxed: a hash set is large, and nodes are kept small so a filter's tree
    /// spans few cache lines.
    In(Box<InSet>),
    Cmp(CmpOp, Const),
    Exists,
    Type(TypeSet),
    Regex(Regex),
    Mod {
        divisor: i128,
        remainder: i128,
    },
    Size(usize),
    /// `$elemMatch`: some element of an array matches the node. Object form
    /// (`objects_only`) looks only at object elements.
    ElemMatch {
        node: Box<Node>,
        objects_only: bool,
    },
}

/// Range operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Gt,
    Gte,
    Lt,
    Lte,
}

impl CmpOp {
    fn accepts(self, ord: Ordering) -> bool {
        match self {
            Self::Gt => ord == Ordering::Greater,
            Self::Gte => ord != Ordering::Less,
            Self::Lt => ord == Ordering::Less,
            Self::Lte => ord != Ordering::Greater,
        }
    }
}

/// A constant operand, normalized so the common cases compare without
/// converting anything.
#[derive(Debug, Clone)]
pub(crate) enum Const {
    Null,
    Bool(bool),
    Num(Num),
    Str(Box<str>),
    /// Arrays and objects, compared structurally (boxed: rare, and large).
    Compound(Box<Value>),
}

impl Const {
    pub(crate) fn of(v: &Value) -> Self {
        match v {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => Self::Num(Num::of(n)),
            Value::String(s) => Self::Str(s.as_str().into()),
            Value::Array(_) | Value::Object(_) => Self::Compound(Box::new(v.clone())),
        }
    }

    /// Order of `v` relative to this constant; `None` across type brackets.
    #[inline]
    fn cmp_value(&self, v: &Value) -> Option<Ordering> {
        match (self, v) {
            (Self::Null, Value::Null) => Some(Ordering::Equal),
            (Self::Bool(c), Value::Bool(b)) => Some(b.cmp(c)),
            (Self::Num(c), Value::Number(n)) => Some(Num::of(n).cmp(c)),
            (Self::Str(c), Value::String(s)) => Some(s.as_str().cmp(c)),
            (Self::Compound(c), _) if bracket(c) == bracket(v) => Some(compare(v, c)),
            _ => None,
        }
    }

    #[inline]
    fn eq_value(&self, v: &Value) -> bool {
        // Equality alone is cheaper than ordering for the common scalars.
        match (self, v) {
            (Self::Str(c), Value::String(s)) => **c == **s,
            (Self::Num(c), Value::Number(n)) => *c == Num::of(n),
            (Self::Bool(c), Value::Bool(b)) => c == b,
            _ => self.cmp_value(v) == Some(Ordering::Equal),
        }
    }

    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }
}

/// The values of an `$in` list: scalars hashed, the rest kept for a scan.
#[derive(Debug, Clone, Default)]
pub(crate) struct InSet {
    pub(crate) keys: KeyMap<()>,
    pub(crate) has_null: bool,
    pub(crate) compound: Vec<Value>,
}

impl InSet {
    #[inline]
    fn contains(&self, v: &Value) -> bool {
        match v {
            Value::Null => self.has_null,
            Value::Array(_) | Value::Object(_) => self
                .compound
                .iter()
                .any(|c| compare(c, v) == Ordering::Equal),
            _ => self.keys.get(v).is_some(),
        }
    }
}

/// `$type` names, as bits of a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct TypeSet(u16);

impl TypeSet {
    pub(crate) const DOUBLE: Self = Self(1);
    pub(crate) const STRING: Self = Self(1 << 1);
    pub(crate) const OBJECT: Self = Self(1 << 2);
    pub(crate) const ARRAY: Self = Self(1 << 3);
    pub(crate) const BOOL: Self = Self(1 << 4);
    pub(crate) const NULL: Self = Self(1 << 5);
    pub(crate) const INT: Self = Self(1 << 6);
    pub(crate) const LONG: Self = Self(1 << 7);
    /// Decimal128 is accepted as a name but no JSON value has that type.
    pub(crate) const DECIMAL: Self = Self(1 << 8);
    pub(crate) const NUMBER: Self =
        Self(Self::DOUBLE.0 | Self::INT.0 | Self::LONG.0 | Self::DECIMAL.0);

    /// The set for a MongoDB type alias or number.
    pub(crate) fn named(name: &str) -> Option<Self> {
        Some(match name {
            "double" | "1" => Self::DOUBLE,
            "string" | "2" => Self::STRING,
            "object" | "3" => Self::OBJECT,
            "array" | "4" => Self::ARRAY,
            "bool" | "8" => Self::BOOL,
            "null" | "10" => Self::NULL,
            "int" | "16" => Self::INT,
            "long" | "18" => Self::LONG,
            "decimal" | "19" => Self::DECIMAL,
            "number" => Self::NUMBER,
            _ => return None,
        })
    }

    pub(crate) fn with(self, other: Self) -> Self {
        Self(self.0 | other.0)
    }

    fn of(v: &Value) -> Self {
        match v {
            Value::Null => Self::NULL,
            Value::Bool(_) => Self::BOOL,
            Value::String(_) => Self::STRING,
            Value::Array(_) => Self::ARRAY,
            Value::Object(_) => Self::OBJECT,
            Value::Number(n) if n.is_f64() => Self::DOUBLE,
            Value::Number(n) => match n.as_i64() {
                Some(i) if i32::try_from(i).is_ok() => Self::INT,
                _ => Self::LONG,
            },
        }
    }

    fn contains(self, v: &Value) -> bool {
        self.0 & Self::of(v).0 != 0
    }
}

impl Node {
    /// Evaluates the node against a document (or, inside `$elemMatch`, an element).
    pub(crate) fn matches(&self, doc: &Value) -> bool {
        match self {
            Self::All => true,
            Self::And(nodes) => nodes.iter().all(|n| n.matches(doc)),
            Self::Or(nodes) => nodes.iter().any(|n| n.matches(doc)),
            Self::Not(node) => !node.matches(doc),
            Self::Field(path, pred) => path.any(doc, &mut |leaf| pred.test(leaf)),
        }
    }
}

impl Node {
    /// Evaluates a top-level AND without the clauses known to be true
    /// (bit `i` of `known`: clause `i`).
    pub(crate) fn matches_except(&self, doc: &Value, known: u64) -> bool {
        let known = |i: usize| i < 64 && known & (1 << i) != 0;
        match self {
            Self::And(nodes) => nodes
                .iter()
                .enumerate()
                .all(|(i, n)| known(i) || n.matches(doc)),
            other => known(0) || other.matches(doc),
        }
    }
}

/// True if `test` holds for `v` or, when `v` is an array, for one of its elements.
#[inline]
fn self_or_element(v: &Value, test: impl Fn(&Value) -> bool) -> bool {
    test(v) || matches!(v, Value::Array(items) if items.iter().any(&test))
}

impl Pred {
    fn test(&self, leaf: Option<&Value>) -> bool {
        let Some(v) = leaf else {
            return match self {
                Self::Eq(c) => c.is_null(),
                Self::In(set) => set.has_null,
                Self::Cmp(op, c) => c.is_null() && matches!(op, CmpOp::Gte | CmpOp::Lte),
                _ => false,
            };
        };
        match self {
            Self::Eq(c) => self_or_element(v, |x| c.eq_value(x)),
            Self::In(set) => self_or_element(v, |x| set.contains(x)),
            Self::Cmp(op, c) => {
                self_or_element(v, |x| c.cmp_value(x).is_some_and(|o| op.accepts(o)))
            }
            Self::Exists => true,
            Self::Type(types) => self_or_element(v, |x| types.contains(x)),
            Self::Regex(re) => self_or_element(v, |x| x.as_str().is_some_and(|s| re.is_match(s))),
            Self::Mod { divisor, remainder } => self_or_element(v, |x| {
                x.as_number()
                    .and_then(|n| Num::of(n).truncated().checked_rem(*divisor))
                    .is_some_and(|r| r == *remainder)
            }),
            Self::Size(n) => v.as_array().is_some_and(|a| a.len() == *n),
            Self::ElemMatch { node, objects_only } => v.as_array().is_some_and(|items| {
                items
                    .iter()
                    .any(|item| (!objects_only || item.is_object()) && node.matches(item))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Confirming index candidates is bound by memory latency: a filter's tree
    /// should span as few cache lines as possible.
    #[test]
    fn nodes_stay_small() {
        assert!(
            size_of::<Node>() <= 80,
            "Node is {} bytes",
            size_of::<Node>()
        );
    }
}
