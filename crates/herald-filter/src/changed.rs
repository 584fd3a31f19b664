//! Restricting a subscription to updates that touched given fields.

use serde_json::Value;

/// The fields a subscription cares about; an update is relevant when one of its
/// changed fields overlaps one of these.
///
/// Fields are dotted paths. `a` and `a.b` overlap both ways: changing `a`
/// replaces `a.b`, and changing `a.b` changes `a`.
///
/// ```
/// use herald_filter::ChangedFields;
/// let watch = ChangedFields::new(vec!["status".into(), "address.city".into()]);
/// assert!(watch.touches(&["status".into()]));
/// assert!(watch.touches(&["address".into()]));
/// assert!(!watch.touches(&["address.zip".into(), "name".into()]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedFields {
    fields: Vec<String>,
}

impl ChangedFields {
    /// Watches the given dotted field paths.
    pub fn new(fields: Vec<String>) -> Self {
        Self { fields }
    }

    /// The watched fields.
    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// Whether an update that changed `changed` touched a watched field.
    pub fn touches(&self, changed: &[String]) -> bool {
        self.fields
            .iter()
            .any(|field| changed.iter().any(|c| overlaps(field, c)))
    }

    /// Whether an update from `old` to `new` touched a watched field.
    ///
    /// `changed` lists the top-level fields that differ (as the change log
    /// records them); a watched dotted path below one of them is compared in
    /// both documents, so watching `address.city` ignores a change of
    /// `address.zip` alone.
    ///
    /// ```
    /// use herald_filter::ChangedFields;
    /// use serde_json::json;
    /// let watch = ChangedFields::new(vec!["address.city".into()]);
    /// let old = json!({"address": {"city": "Oslo", "zip": "0150"}});
    /// let zip = json!({"address": {"city": "Oslo", "zip": "0151"}});
    /// let city = json!({"address": {"city": "Bergen", "zip": "0150"}});
    /// assert!(!watch.touches_update(&["address".into()], &old, &zip));
    /// assert!(watch.touches_update(&["address".into()], &old, &city));
    /// ```
    pub fn touches_update(&self, changed: &[String], old: &Value, new: &Value) -> bool {
        self.fields.iter().any(|field| match field.split_once('.') {
            None => changed.iter().any(|c| overlaps(field, c)),
            Some((top, _)) => {
                changed.iter().any(|c| c == top) && value_at(old, field) != value_at(new, field)
            }
        })
    }
}

/// The value at a dotted path through objects (and array indexes).
fn value_at<'a>(doc: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(doc, |value, segment| match value {
        Value::Object(map) => map.get(segment),
        Value::Array(items) => segment.parse::<usize>().ok().and_then(|i| items.get(i)),
        _ => None,
    })
}

/// Equal, or one is a dotted prefix of the other.
fn overlaps(a: &str, b: &str) -> bool {
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    long.strip_prefix(short)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_must_end_at_a_dot() {
        assert!(overlaps("a", "a"));
        assert!(overlaps("a", "a.b"));
        assert!(overlaps("a.b", "a"));
        assert!(!overlaps("a", "ab"));
        assert!(!overlaps("a.b", "a.c"));
    }

    #[test]
    fn dotted_paths_compare_the_documents() {
        let watch = ChangedFields::new(vec!["meta.kind".into(), "tags.0".into()]);
        let old = serde_json::json!({"meta": {"kind": "a", "zip": 1}, "tags": ["x", "y"]});
        let zip = serde_json::json!({"meta": {"kind": "a", "zip": 2}, "tags": ["x", "y"]});
        let kind = serde_json::json!({"meta": {"kind": "b", "zip": 1}, "tags": ["x", "y"]});
        let gone = serde_json::json!({"tags": ["x", "y"]});
        let tag1 = serde_json::json!({"meta": {"kind": "a", "zip": 1}, "tags": ["x", "z"]});
        let tag0 = serde_json::json!({"meta": {"kind": "a", "zip": 1}, "tags": ["w", "y"]});
        let meta = ["meta".to_owned()];
        let tags = ["tags".to_owned()];
        assert!(!watch.touches_update(&meta, &old, &zip));
        assert!(watch.touches_update(&meta, &old, &kind));
        assert!(watch.touches_update(&meta, &old, &gone));
        assert!(!watch.touches_update(&tags, &old, &tag1));
        assert!(watch.touches_update(&tags, &old, &tag0));
        // A top-level watch still follows the changed list alone.
        let top = ChangedFields::new(vec!["meta".into()]);
        assert!(top.touches_update(&meta, &old, &zip));
        assert!(!top.touches_update(&tags, &old, &tag1));
    }

    #[test]
    fn nothing_watched_touches_nothing() {
        assert!(!ChangedFields::new(vec![]).touches(&["a".into()]));
        assert!(!ChangedFields::new(vec!["a".into()]).touches(&[]));
    }
}
