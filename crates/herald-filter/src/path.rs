//! Dotted field paths, split once at compile time, and the walk that resolves
//! them against a document with MongoDB's array rules.
//!
//! Walking `a.b` through `{"a": [{"b": 1}, {"c": 2}]}` reaches `1` (through the
//! first element) and *missing* (the second element has no `b`). A predicate
//! matches when it holds for any value reached; missing matters to `null`
//! equality and `$exists`. A numeric segment indexes into an array
//! (`items.0.sku`) and names a field in an object.

use std::fmt;

use serde_json::Value;

/// One segment of a path, with its array index pre-parsed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Segment {
    name: Box<str>,
    index: Option<usize>,
}

/// A field path such as `items.sku`. The empty path addresses the value itself
/// (used inside value-form `$elemMatch`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub(crate) struct Path {
    segments: Segments,
}

/// The segments, a single one inline: most paths are one field, and keeping it
/// in the node saves a pointer hop per predicate evaluated.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
enum Segments {
    #[default]
    Empty,
    One(Segment),
    Many(Box<[Segment]>),
}

impl Segments {
    fn as_slice(&self) -> &[Segment] {
        match self {
            Self::Empty => &[],
            Self::One(segment) => std::slice::from_ref(segment),
            Self::Many(segments) => segments,
        }
    }
}

impl Path {
    /// Splits a dotted path; `None` if it is empty or has an empty segment.
    pub(crate) fn parse(dotted: &str) -> Option<Self> {
        let mut segments = dotted
            .split('.')
            .map(|name| {
                (!name.is_empty()).then(|| Segment {
                    name: name.into(),
                    // Only canonical decimal spellings index arrays: "01" is a field name.
                    index: name.parse::<usize>().ok().filter(|i| i.to_string() == name),
                })
            })
            .collect::<Option<Vec<Segment>>>()?;
        let segments = match segments.len() {
            1 => Segments::One(segments.pop()?),
            _ => Segments::Many(segments.into()),
        };
        Some(Self { segments })
    }

    /// Calls `visit` with every value the path reaches in `doc` (`None` for a
    /// branch where the field is missing) until `visit` returns `true`; returns
    /// whether it did. Never allocates.
    pub(crate) fn any<'a>(
        &self,
        doc: &'a Value,
        visit: &mut impl FnMut(Option<&'a Value>) -> bool,
    ) -> bool {
        walk(doc, self.segments.as_slice(), visit)
    }
}

fn walk<'a>(
    value: &'a Value,
    segments: &[Segment],
    visit: &mut impl FnMut(Option<&'a Value>) -> bool,
) -> bool {
    let Some((first, rest)) = segments.split_first() else {
        return visit(Some(value));
    };
    match value {
        Value::Object(map) => match map.get(&*first.name) {
            Some(child) => walk(child, rest, visit),
            None => visit(None),
        },
        Value::Array(items) => match first.index {
            Some(i) => match items.get(i) {
                Some(item) => walk(item, rest, visit),
                None => visit(None),
            },
            None => {
                // The field applies to each object element; scalars and nested
                // arrays have no fields. If no element reaches anything, the
                // field is missing (so `{"a.b": null}` matches `{"a": []}`).
                let mut reached = false;
                for item in items {
                    if item.is_object() {
                        reached = true;
                        if walk(item, segments, visit) {
                            return true;
                        }
                    }
                }
                !reached && visit(None)
            }
        },
        _ => visit(None),
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, segment) in self.segments.as_slice().iter().enumerate() {
            if i > 0 {
                f.write_str(".")?;
            }
            f.write_str(&segment.name)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn reached(path: &str, doc: &Value) -> Vec<Option<Value>> {
        let mut out = Vec::new();
        Path::parse(path).unwrap().any(doc, &mut |v| {
            out.push(v.cloned());
            false
        });
        out
    }

    #[test]
    fn nested_objects() {
        assert_eq!(reached("a.b", &json!({"a": {"b": 1}})), [Some(json!(1))]);
        assert_eq!(reached("a.b", &json!({"a": {"c": 1}})), [None]);
        assert_eq!(reached("a.b", &json!({"a": 5})), [None]);
    }

    #[test]
    fn arrays_of_objects() {
        let doc = json!({"items": [{"sku": "x"}, {"n": 1}, 7]});
        assert_eq!(reached("items.sku", &doc), [Some(json!("x")), None]);
        assert_eq!(reached("items.sku", &json!({"items": []})), [None]);
    }

    #[test]
    fn numeric_segments() {
        let doc = json!({"a": [{"b": 1}, {"b": 2}], "o": {"0": "zero"}});
        assert_eq!(reached("a.1.b", &doc), [Some(json!(2))]);
        assert_eq!(reached("a.5.b", &doc), [None]);
        assert_eq!(reached("o.0", &doc), [Some(json!("zero"))]);
    }

    #[test]
    fn rejects_empty_segments() {
        assert!(Path::parse("").is_none());
        assert!(Path::parse("a..b").is_none());
        assert_eq!(Path::parse("a.b").unwrap().to_string(), "a.b");
    }
}
