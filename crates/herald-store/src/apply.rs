//! What each operation does to one document slot: the store's semantics as
//! pure functions, independent of storage and offsets.

use crate::error::StoreError;
use crate::layout::DocRecord;
use crate::names::{DocId, TableName};
use crate::write::with_id;
use herald_proto::{EventBody, Version};
use serde_json::{Map, Value};

/// Checks `expect` against the slot's current version.
pub(crate) fn check_version(
    expect: Option<Version>,
    current: Option<&DocRecord>,
) -> Result<(), StoreError> {
    match (expect, current) {
        (Some(expected), Some(rec)) if rec.version != expected => {
            Err(StoreError::VersionMismatch {
                expected,
                actual: Some(rec.version),
            })
        }
        (Some(expected), None) => Err(StoreError::VersionMismatch {
            expected,
            actual: None,
        }),
        _ => Ok(()),
    }
}

/// The content of a document that must exist at the expected version.
fn existing(
    table: &TableName,
    id: &DocId,
    expect: Option<Version>,
    current: Option<&DocRecord>,
) -> Result<Map<String, Value>, StoreError> {
    let rec = current.ok_or_else(|| StoreError::NotFound {
        table: table.to_string(),
        id: id.to_string(),
    })?;
    check_version(expect, current)?;
    rec.to_map()
}

fn next_version(current: Option<&DocRecord>) -> Version {
    current.map_or(Version(1), |rec| Version(rec.version.0 + 1))
}

/// Insert into an empty slot.
pub(crate) fn insert(
    table: &TableName,
    id: &DocId,
    doc: Map<String, Value>,
    exists: bool,
) -> Result<EventBody, StoreError> {
    if exists {
        return Err(StoreError::AlreadyExists {
            table: table.to_string(),
            id: id.to_string(),
        });
    }
    Ok(EventBody::Insert {
        table: table.to_string(),
        id: id.to_string(),
        version: Version(1),
        changed: changed_fields(None, Some(&doc)),
        doc: Value::Object(doc),
    })
}

/// Replace (or create) the document.
pub(crate) fn put(
    table: &TableName,
    id: &DocId,
    doc: Map<String, Value>,
    expect: Option<Version>,
    current: Option<&DocRecord>,
) -> Result<EventBody, StoreError> {
    check_version(expect, current)?;
    let version = next_version(current);
    Ok(match current {
        None => EventBody::Insert {
            table: table.to_string(),
            id: id.to_string(),
            version,
            changed: changed_fields(None, Some(&doc)),
            doc: Value::Object(doc),
        },
        Some(rec) => {
            let old = rec.to_map()?;
            EventBody::Update {
                table: table.to_string(),
                id: id.to_string(),
                version,
                changed: changed_fields(Some(&old), Some(&doc)),
                doc: Value::Object(doc),
                old: Value::Object(old),
            }
        }
    })
}

/// Merge-patch an existing document.
pub(crate) fn patch(
    table: &TableName,
    id: &DocId,
    patch: &Value,
    expect: Option<Version>,
    current: Option<&DocRecord>,
) -> Result<EventBody, StoreError> {
    let old = existing(table, id, expect, current)?;
    let mut merged = Value::Object(old.clone());
    json_patch::merge(&mut merged, patch);
    let Value::Object(doc) = merged else {
        return Err(StoreError::NotAnObject {
            what: "merge result",
        });
    };
    if doc.get("id") != Some(&Value::String(id.as_str().to_owned())) {
        return Err(StoreError::IdMismatch {
            reason: "cannot be changed or removed by a patch".into(),
        });
    }
    let doc = with_id(doc, id)?;
    Ok(EventBody::Update {
        table: table.to_string(),
        id: id.to_string(),
        version: next_version(current),
        changed: changed_fields(Some(&old), Some(&doc)),
        doc: Value::Object(doc),
        old: Value::Object(old),
    })
}

/// Delete an existing document.
pub(crate) fn delete(
    table: &TableName,
    id: &DocId,
    expect: Option<Version>,
    current: Option<&DocRecord>,
) -> Result<EventBody, StoreError> {
    let old = existing(table, id, expect, current)?;
    Ok(EventBody::Delete {
        table: table.to_string(),
        id: id.to_string(),
        version: next_version(current),
        changed: changed_fields(Some(&old), None),
        old: Value::Object(old),
    })
}

/// Top-level fields whose value differs between `old` and `new` (a field
/// present on one side only counts as changed), in sorted order.
pub(crate) fn changed_fields(
    old: Option<&Map<String, Value>>,
    new: Option<&Map<String, Value>>,
) -> Vec<String> {
    let empty = Map::new();
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let mut changed: Vec<String> = new
        .iter()
        .filter(|(k, v)| old.get(*k) != Some(*v))
        .map(|(k, _)| k.clone())
        .chain(old.keys().filter(|k| !new.contains_key(*k)).cloned())
        .collect();
    changed.sort_unstable();
    changed
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn changed_fields_covers_added_removed_and_modified() {
        let old = obj(json!({"a": 1, "b": 2, "c": 3}));
        let new = obj(json!({"a": 1, "b": 5, "d": 4}));
        assert_eq!(changed_fields(Some(&old), Some(&new)), vec!["b", "c", "d"]);
        assert_eq!(changed_fields(None, Some(&old)), vec!["a", "b", "c"]);
        assert_eq!(changed_fields(Some(&old), None), vec!["a", "b", "c"]);
        assert!(changed_fields(Some(&old), Some(&old)).is_empty());
    }

    #[test]
    fn patch_cannot_touch_the_id() {
        let t = TableName::new("t").unwrap();
        let id = DocId::new("a").unwrap();
        let rec = DocRecord {
            version: Version(1),
            json: bytes::Bytes::from_static(br#"{"id":"a","x":1}"#),
        };
        for p in [json!({"id": null}), json!({"id": "b"})] {
            assert!(matches!(
                patch(&t, &id, &p, None, Some(&rec)),
                Err(StoreError::IdMismatch { .. })
            ));
        }
        assert!(matches!(
            patch(&t, &id, &json!(5), None, Some(&rec)),
            Err(StoreError::NotAnObject { .. })
        ));
        let body = patch(
            &t,
            &id,
            &json!({"x": null, "y": 2}),
            Some(Version(1)),
            Some(&rec),
        )
        .unwrap();
        let EventBody::Update { version, doc, .. } = body else {
            panic!()
        };
        assert_eq!((version, doc), (Version(2), json!({"id": "a", "y": 2})));
    }

    #[test]
    fn versions_are_checked() {
        let rec = DocRecord {
            version: Version(3),
            json: bytes::Bytes::from_static(br#"{"id":"a"}"#),
        };
        assert!(check_version(None, None).is_ok());
        assert!(check_version(Some(Version(3)), Some(&rec)).is_ok());
        assert!(check_version(Some(Version(2)), Some(&rec)).is_err());
        assert!(check_version(Some(Version(1)), None).is_err());
    }
}
