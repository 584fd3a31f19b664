//! JSON values as the filter language sees them: type brackets, numbers compared
//! by value, a total order, and hashable keys for the index and `$in` sets.
//!
//! Numbers are held as [`Num`]: an integral value (whatever JSON spelling, `1` or
//! `1.0`) is `Int`, anything else `Float`. Equality of two numbers is therefore
//! equality of their `Num`, which is what lets `$in` sets and the subscription
//! index hash numbers and still agree with comparison.

use std::cmp::Ordering;

use serde_json::{Number, Value};

/// A JSON number, normalized so that equal values have equal representations.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Num {
    /// An integral value. `i128` holds every `i64`, every `u64`, and every
    /// integral `f64` below 2^127.
    Int(i128),
    /// A non-integral (or huge) finite value. Never NaN: JSON has no NaN.
    Float(f64),
}

/// 2^127 as f64: integral floats at or beyond it stay `Float`.
const TWO_POW_127: f64 = 170_141_183_460_469_231_731_687_303_715_884_105_728.0;

impl Num {
    pub(crate) fn of(n: &Number) -> Self {
        if let Some(i) = n.as_i64() {
            Self::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Self::Int(i128::from(u))
        } else {
            Self::from_f64(n.as_f64().unwrap_or(0.0))
        }
    }

    fn from_f64(f: f64) -> Self {
        if f.fract() == 0.0 && f.abs() < TWO_POW_127 {
            // Exact: the float is integral and in range; `-0.0` becomes `0`.
            #[allow(clippy::cast_possible_truncation)]
            Self::Int(f as i128)
        } else {
            Self::Float(f)
        }
    }

    /// The value truncated toward zero, saturating, as `$mod` needs.
    pub(crate) fn truncated(self) -> i128 {
        match self {
            Self::Int(i) => i,
            #[allow(clippy::cast_possible_truncation)]
            Self::Float(f) => f.trunc() as i128,
        }
    }
}

/// Compares an integer with a float exactly (no rounding of the integer).
fn cmp_int_float(i: i128, f: f64) -> Ordering {
    if f >= TWO_POW_127 {
        return Ordering::Less;
    }
    if f < -TWO_POW_127 {
        return Ordering::Greater;
    }
    #[allow(clippy::cast_possible_truncation)]
    let whole = f.trunc() as i128;
    i.cmp(&whole).then_with(|| {
        // Same integral part: the fraction decides.
        0.0_f64.partial_cmp(&f.fract()).unwrap_or(Ordering::Equal)
    })
}

impl Ord for Num {
    fn cmp(&self, other: &Self) -> Ordering {
        match (*self, *other) {
            (Self::Int(a), Self::Int(b)) => a.cmp(&b),
            (Self::Float(a), Self::Float(b)) => a.total_cmp(&b),
            (Self::Int(a), Self::Float(b)) => cmp_int_float(a, b),
            (Self::Float(a), Self::Int(b)) => cmp_int_float(b, a).reverse(),
        }
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Num {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Num {}

impl std::hash::Hash for Num {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Normalization makes equal numbers share a variant, so hash by variant.
        match *self {
            Self::Int(i) => i.hash(state),
            Self::Float(f) => f.to_bits().hash(state),
        }
    }
}

/// The type brackets of MongoDB's comparison order: values of different brackets
/// are never equal and never compare with `$gt`/`$lt`; across brackets the total
/// order follows this declaration order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Bracket {
    Null,
    Number,
    String,
    Object,
    Array,
    Bool,
}

pub(crate) fn bracket(v: &Value) -> Bracket {
    match v {
        Value::Null => Bracket::Null,
        Value::Number(_) => Bracket::Number,
        Value::String(_) => Bracket::String,
        Value::Object(_) => Bracket::Object,
        Value::Array(_) => Bracket::Array,
        Value::Bool(_) => Bracket::Bool,
    }
}

/// Total order over JSON values: bracket first, then value. Objects compare
/// field by field (name, then value) in the map's iteration order.
pub(crate) fn compare(a: &Value, b: &Value) -> Ordering {
    match (a, b) {
        (Value::Null, Value::Null) => Ordering::Equal,
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => Num::of(x).cmp(&Num::of(y)),
        (Value::String(x), Value::String(y)) => x.cmp(y),
        (Value::Array(x), Value::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let ord = compare(p, q);
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            x.len().cmp(&y.len())
        }
        (Value::Object(x), Value::Object(y)) => {
            for ((k1, v1), (k2, v2)) in x.iter().zip(y) {
                let ord = k1.cmp(k2).then_with(|| compare(v1, v2));
                if ord != Ordering::Equal {
                    return ord;
                }
            }
            x.len().cmp(&y.len())
        }
        _ => bracket(a).cmp(&bracket(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn integers_and_floats_compare_by_value() {
        assert_eq!(compare(&json!(1), &json!(1.0)), Ordering::Equal);
        assert_eq!(compare(&json!(1), &json!(1.5)), Ordering::Less);
        assert_eq!(compare(&json!(-1), &json!(-1.5)), Ordering::Greater);
        assert_eq!(compare(&json!(u64::MAX), &json!(-1)), Ordering::Greater);
        assert_eq!(compare(&json!(-0.0), &json!(0)), Ordering::Equal);
    }

    #[test]
    fn large_integers_are_not_rounded() {
        // 2^53 + 1 is not representable as f64; it must not equal 2^53 as a float.
        let big = 9_007_199_254_740_993_i64;
        assert_ne!(
            compare(&json!(big), &json!(9_007_199_254_740_992.0)),
            Ordering::Equal
        );
    }

    #[test]
    fn brackets_order_types() {
        assert_eq!(compare(&json!(null), &json!(0)), Ordering::Less);
        assert_eq!(compare(&json!(5), &json!("a")), Ordering::Less);
        assert_eq!(compare(&json!("a"), &json!({})), Ordering::Less);
        assert_eq!(compare(&json!({}), &json!([])), Ordering::Less);
        assert_eq!(compare(&json!([]), &json!(false)), Ordering::Less);
    }
}
