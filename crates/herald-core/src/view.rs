//! [`View`]: what one reader may see of the rows sent to it.
//!
//! Row-level security decides *which* rows a reader gets by folding its rule
//! into the subscription's (or query's) filter. What is left for the view is
//! what the filter cannot express:
//! - fields hidden from the reader are removed from every document it is
//!   sent (and from `changed`);
//! - an update's previous version (`old`) is shown only if the reader's rule
//!   admits it too: a row that moved *into* the reader's rows must not reveal
//!   what it was before (another user's row). `changed` goes with it, since
//!   it describes the difference.
//!
//! Events and documents a view leaves unchanged are passed on as the shared
//! bytes; only those it changes are re-encoded.

use crate::outbox::Outgoing;
use herald_filter::Filter;
use herald_proto::{Event, EventBody};
use serde_json::Value;
use std::borrow::Cow;
use std::sync::Arc;

/// Field paths removed from documents: `ssn`, or `profile.phone` (inside an
/// array, from each element).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HiddenFields {
    paths: Vec<Vec<String>>,
    /// Each path's first segment as a quoted JSON string, to look for.
    keys: Vec<Vec<u8>>,
}

impl HiddenFields {
    /// Hides these dotted paths. Empty segments are dropped.
    #[must_use]
    pub fn new<S: AsRef<str>>(paths: impl IntoIterator<Item = S>) -> HiddenFields {
        let paths: Vec<Vec<String>> = paths
            .into_iter()
            .map(|p| {
                p.as_ref()
                    .split('.')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect::<Vec<_>>()
            })
            .filter(|p| !p.is_empty())
            .collect();
        let keys = paths
            .iter()
            .map(|p| serde_json::to_vec(&p[0]).expect("a string serializes"))
            .collect();
        HiddenFields { paths, keys }
    }

    /// Whether nothing is hidden.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Whether reading the dotted `path` would reveal a hidden field: it is
    /// one, lies inside one, or contains one (`profile` contains
    /// `profile.phone`).
    #[must_use]
    pub fn overlaps(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.split('.').collect();
        self.paths
            .iter()
            .any(|hidden| hidden.iter().zip(&segments).all(|(h, s)| h.as_str() == *s))
    }

    /// Removes the hidden fields from `doc`; `true` if anything was removed.
    pub fn strip(&self, doc: &mut Value) -> bool {
        let mut removed = false;
        for path in &self.paths {
            removed |= remove_path(doc, path);
        }
        removed
    }

    /// Whether a top-level field name is hidden as a whole.
    fn hides_field(&self, field: &str) -> bool {
        self.paths.iter().any(|p| p.len() == 1 && p[0] == field)
    }

    /// A cheap test that `json` cannot hold a hidden field: none of the
    /// paths' first segments appears in it as a quoted string. (Stored JSON
    /// is serde_json's output, which never escapes a plain character.)
    fn absent_from(&self, json: &[u8]) -> bool {
        self.keys
            .iter()
            .all(|key| !json.windows(key.len()).any(|w| w == key.as_slice()))
    }
}

fn remove_path(value: &mut Value, path: &[String]) -> bool {
    match value {
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |removed, item| remove_path(item, path) | removed),
        Value::Object(fields) => match path {
            [] => false,
            [last] => fields.remove(last).is_some(),
            [first, rest @ ..] => fields.get_mut(first).is_some_and(|v| remove_path(v, rest)),
        },
        _ => false,
    }
}

/// What one reader may see: hidden fields, and the row rule an update's
/// previous version must pass. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct View {
    /// `None` when nothing is hidden (the default allocates nothing).
    hidden: Option<Arc<HiddenFields>>,
    rule: Option<Arc<Filter>>,
}

impl View {
    /// A view hiding `hidden` and, when `rule` is set, showing an update's
    /// `old` only if the rule admits it.
    #[must_use]
    pub fn new(hidden: Arc<HiddenFields>, rule: Option<Arc<Filter>>) -> View {
        View {
            hidden: (!hidden.is_empty()).then_some(hidden),
            rule,
        }
    }

    /// Whether the view changes nothing.
    #[must_use]
    pub fn is_transparent(&self) -> bool {
        self.hidden.is_none() && self.rule.is_none()
    }

    /// The fields hidden from the reader.
    #[must_use]
    pub fn hidden(&self) -> &HiddenFields {
        self.hidden.as_deref().unwrap_or(&NOTHING_HIDDEN)
    }

    /// Whether two views are the same one (built from the same parts), so
    /// one rendering of an event serves both.
    #[must_use]
    pub fn same(&self, other: &View) -> bool {
        fn same<T>(a: Option<&Arc<T>>, b: Option<&Arc<T>>) -> bool {
            match (a, b) {
                (None, None) => true,
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                _ => false,
            }
        }
        same(self.hidden.as_ref(), other.hidden.as_ref())
            && same(self.rule.as_ref(), other.rule.as_ref())
    }

    /// An event framed for the subscriptions `subs` (a JSON array of ids),
    /// as this reader may see it.
    #[must_use]
    pub fn frame(&self, subs: &[u8], event: &Event, json: &[u8]) -> Outgoing {
        Outgoing::event(subs, event.offset, &self.event(event, json))
    }

    /// Whether an update's previous version is shown. Evaluated once per
    /// update delivered under a rule: the one per-event cost of a rule beyond
    /// the subscription's filter.
    #[must_use]
    pub fn shows_old(&self, event: &Event) -> bool {
        match (&event.body, &self.rule) {
            (EventBody::Update { old, .. }, Some(rule)) => rule.matches(old),
            _ => true,
        }
    }

    /// A stored document's JSON as this reader may see it.
    #[must_use]
    pub fn doc<'a>(&self, json: &'a [u8]) -> Cow<'a, [u8]> {
        let Some(hidden) = self.visible_hidden(json) else {
            return Cow::Borrowed(json);
        };
        let Ok(mut doc) = serde_json::from_slice::<Value>(json) else {
            return Cow::Borrowed(json);
        };
        if !hidden.strip(&mut doc) {
            return Cow::Borrowed(json);
        }
        Cow::Owned(serde_json::to_vec(&doc).expect("a JSON value serializes"))
    }

    /// An event's envelope JSON (`json`, the encoding of `event`) as this
    /// reader may see it.
    #[must_use]
    pub fn event<'a>(&self, event: &Event, json: &'a [u8]) -> Cow<'a, [u8]> {
        let shows_old = self.shows_old(event);
        let hidden = self.visible_hidden(json);
        if shows_old && hidden.is_none() {
            return Cow::Borrowed(json);
        }
        let hidden = hidden.unwrap_or(&NOTHING_HIDDEN);
        let mut event = event.clone();
        let mut changed_anything = !shows_old;
        match &mut event.body {
            EventBody::Insert { doc, changed, .. } => {
                changed_anything |= hidden.strip(doc);
                changed_anything |= strip_changed(hidden, changed);
            }
            EventBody::Update {
                doc, old, changed, ..
            } => {
                changed_anything |= hidden.strip(doc);
                if shows_old {
                    changed_anything |= hidden.strip(old);
                    changed_anything |= strip_changed(hidden, changed);
                }
            }
            EventBody::Delete { old, changed, .. } => {
                changed_anything |= hidden.strip(old);
                changed_anything |= strip_changed(hidden, changed);
            }
            EventBody::Publish { .. } => {}
        }
        if !changed_anything {
            return Cow::Borrowed(json);
        }
        if shows_old {
            return Cow::Owned(serde_json::to_vec(&event).expect("an event serializes"));
        }
        // Withheld: no `old` and no `changed` at all, rather than empty ones
        // the reader might take for the truth.
        let mut value = serde_json::to_value(&event).expect("an event serializes");
        if let Some(fields) = value.as_object_mut() {
            fields.remove("old");
            fields.remove("changed");
        }
        Cow::Owned(serde_json::to_vec(&value).expect("a JSON value serializes"))
    }

    /// The hidden fields, if `json` may hold one.
    fn visible_hidden(&self, json: &[u8]) -> Option<&HiddenFields> {
        self.hidden.as_deref().filter(|h| !h.absent_from(json))
    }
}

static NOTHING_HIDDEN: HiddenFields = HiddenFields {
    paths: Vec::new(),
    keys: Vec::new(),
};

fn strip_changed(hidden: &HiddenFields, changed: &mut Vec<String>) -> bool {
    let before = changed.len();
    changed.retain(|f| !hidden.hides_field(f));
    changed.len() != before
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_filter::Limits;
    use herald_proto::{Epoch, Offset, Timestamp, Version};
    use serde_json::json;

    fn update(old: Value, doc: Value) -> Event {
        Event {
            offset: Offset(7),
            epoch: Epoch(1),
            ts: Timestamp(1),
            topic: "table:t".into(),
            body: EventBody::Update {
                table: "t".into(),
                id: "a".into(),
                version: Version(2),
                doc,
                old,
                changed: vec!["owner".into(), "ssn".into()],
            },
        }
    }

    fn rule(v: Value) -> Option<Arc<Filter>> {
        Some(Arc::new(Filter::from_json(&v, &Limits::default()).unwrap()))
    }

    #[test]
    fn hidden_fields_leave_every_document_and_changed() {
        let hidden = Arc::new(HiddenFields::new(["ssn", "profile.phone", "items.cost"]));
        let view = View::new(hidden, None);
        let doc = json!({"id": "a", "ssn": "1", "profile": {"phone": "2", "name": "n"}, "items": [{"cost": 3, "sku": "x", "ssn": 4}]});
        let json = serde_json::to_vec(&doc).unwrap();
        let seen: Value = serde_json::from_slice(&view.doc(&json)).unwrap();
        assert_eq!(
            seen,
            json!({"id": "a", "profile": {"name": "n"}, "items": [{"sku": "x", "ssn": 4}]})
        );
        let event = update(json!({"owner": "u1", "ssn": "0"}), doc);
        let json = serde_json::to_vec(&event).unwrap();
        let seen: Event = serde_json::from_slice(&view.event(&event, &json)).unwrap();
        let EventBody::Update {
            doc, old, changed, ..
        } = seen.body
        else {
            panic!()
        };
        assert!(doc.get("ssn").is_none() && old.get("ssn").is_none());
        assert_eq!(changed, ["owner"]);
    }

    #[test]
    fn old_is_withheld_when_the_rule_rejects_it() {
        let view = View::new(Arc::default(), rule(json!({"owner": "u1"})));
        let event = update(
            json!({"owner": "u2", "x": 1}),
            json!({"owner": "u1", "x": 2}),
        );
        let json = serde_json::to_vec(&event).unwrap();
        let seen = view.event(&event, &json);
        let value: Value = serde_json::from_slice(&seen).unwrap();
        assert!(
            value.get("old").is_none() && value.get("changed").is_none(),
            "{value}"
        );
        assert_eq!(value["doc"], json!({"owner": "u1", "x": 2}));
        // The rule admits both versions: the shared bytes, untouched.
        let event = update(
            json!({"owner": "u1", "x": 1}),
            json!({"owner": "u1", "x": 2}),
        );
        let json = serde_json::to_vec(&event).unwrap();
        assert!(matches!(view.event(&event, &json), Cow::Borrowed(_)));
    }

    #[test]
    fn overlap_covers_inside_and_around() {
        let hidden = HiddenFields::new(["profile.phone"]);
        assert!(hidden.overlaps("profile"));
        assert!(hidden.overlaps("profile.phone"));
        assert!(hidden.overlaps("profile.phone.country"));
        assert!(!hidden.overlaps("profile.name"));
        assert!(!hidden.overlaps("phone"));
    }
}
