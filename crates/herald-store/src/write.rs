//! Write operations and their outcomes.
//!
//! A [`WriteOp`] is built through constructors that enforce its invariants
//! (the document is an object, its `id` field agrees with the target id), so
//! the committer never sees a malformed operation.

use crate::error::StoreError;
use crate::names::{ChannelName, DocId, TableName};
use bytes::Bytes;
use herald_proto::{EventBody, Offset, Version, WriteAck};
use serde_json::{Map, Value};
use std::sync::Arc;

/// One operation of a write request. Several operations sent together as one
/// request are applied atomically: all of them or none.
#[derive(Debug, Clone)]
pub struct WriteOp(pub(crate) Op, pub(crate) Option<RowGuard>);

/// A row-level write rule: a test every row the operation touches must pass
/// — the stored version it changes or deletes, and the version it writes.
/// Checked by the committer as it applies the operation, so no concurrent
/// write can slip between the check and the change. A stored row that fails
/// reads as missing to a patch or delete (`NotFound`, before any version
/// check), so the writer cannot learn it exists; a put (which may create)
/// and a new row that fails are [`StoreError::RuleViolation`].
#[derive(Clone)]
pub struct RowGuard(Arc<dyn Fn(&Value) -> bool + Send + Sync>);

impl RowGuard {
    /// A guard passing the rows for which `test` is true.
    pub fn new(test: impl Fn(&Value) -> bool + Send + Sync + 'static) -> RowGuard {
        RowGuard(Arc::new(test))
    }

    pub(crate) fn admits(&self, row: &Value) -> bool {
        (self.0)(row)
    }
}

impl std::fmt::Debug for RowGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RowGuard")
    }
}

/// Change routing: derives channel messages from a document change. The
/// committer calls it for every change it applies (on its own thread, so it
/// must be quick) and appends what it derives right after the change, in
/// the same atomic write: a routed message exists exactly when its change
/// does, also across crashes.
#[derive(Clone)]
pub struct Router(Arc<Derive>);

/// What a [`Router`] runs for each change: push what it derives.
type Derive = dyn Fn(&EventBody, &mut Vec<Derived>) + Send + Sync;

impl Router {
    /// A router pushing, for each change, the messages it derives.
    pub fn new(derive: impl Fn(&EventBody, &mut Vec<Derived>) + Send + Sync + 'static) -> Router {
        Router(Arc::new(derive))
    }

    pub(crate) fn derive(&self, change: &EventBody, out: &mut Vec<Derived>) {
        (self.0)(change, out);
    }
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Router")
    }
}

/// A channel message derived from a document change.
#[derive(Debug, Clone, PartialEq)]
pub struct Derived {
    /// Where it is published.
    pub channel: ChannelName,
    /// Its payload.
    pub data: Value,
    /// Its `from` (the rule that derived it, say).
    pub from: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Op {
    Insert {
        table: TableName,
        id: DocId,
        doc: Map<String, Value>,
        /// `doc` as JSON text, encoded by the caller's thread, not the committer's.
        json: Bytes,
    },
    Put {
        table: TableName,
        id: DocId,
        doc: Map<String, Value>,
        json: Bytes,
        expect: Option<Version>,
    },
    Patch {
        table: TableName,
        id: DocId,
        patch: Value,
        expect: Option<Version>,
    },
    Delete {
        table: TableName,
        id: DocId,
        expect: Option<Version>,
    },
    Publish {
        channel: ChannelName,
        data: Value,
        /// `data` as JSON, encoded on the caller's thread.
        json: Bytes,
        from: Option<String>,
    },
}

impl WriteOp {
    /// Creates a document; fails with `AlreadyExists` if the id is taken.
    ///
    /// The id is the document's `id` field, or a generated one (written into
    /// the document) when it has none.
    pub fn insert(table: TableName, doc: Value) -> Result<WriteOp, StoreError> {
        let mut doc = into_object(doc, "document")?;
        let id = match doc.get("id") {
            None => {
                let id = DocId::generate();
                doc.insert("id".into(), Value::String(id.as_str().to_owned()));
                id
            }
            Some(Value::String(s)) => DocId::new(s.clone())?,
            Some(_) => {
                return Err(StoreError::IdMismatch {
                    reason: "must be a string".into(),
                });
            }
        };
        let json = encode(&doc);
        Ok(WriteOp(
            Op::Insert {
                table,
                id,
                doc,
                json,
            },
            None,
        ))
    }

    /// Creates or replaces a document. With `expect`, the stored version must
    /// match or nothing changes.
    pub fn put(
        table: TableName,
        id: DocId,
        doc: Value,
        expect: Option<Version>,
    ) -> Result<WriteOp, StoreError> {
        let doc = with_id(into_object(doc, "document")?, &id)?;
        let json = encode(&doc);
        Ok(WriteOp(
            Op::Put {
                table,
                id,
                doc,
                json,
                expect,
            },
            None,
        ))
    }

    /// Applies a JSON merge patch (RFC 7396) to an existing document.
    #[must_use]
    pub fn patch(table: TableName, id: DocId, patch: Value, expect: Option<Version>) -> WriteOp {
        WriteOp(
            Op::Patch {
                table,
                id,
                patch,
                expect,
            },
            None,
        )
    }

    /// Deletes an existing document.
    #[must_use]
    pub fn delete(table: TableName, id: DocId, expect: Option<Version>) -> WriteOp {
        WriteOp(Op::Delete { table, id, expect }, None)
    }

    /// This operation, applied only if every row it touches passes `guard`
    /// (else [`StoreError::RuleViolation`]).
    #[must_use]
    pub fn guarded(self, guard: RowGuard) -> WriteOp {
        WriteOp(self.0, Some(guard))
    }

    /// The table it writes to (`None` for a publish).
    #[must_use]
    pub fn table(&self) -> Option<&TableName> {
        match &self.0 {
            Op::Insert { table, .. }
            | Op::Put { table, .. }
            | Op::Patch { table, .. }
            | Op::Delete { table, .. } => Some(table),
            Op::Publish { .. } => None,
        }
    }

    /// Appends a message to a channel's log.
    #[must_use]
    pub fn publish(channel: ChannelName, data: Value, from: Option<String>) -> WriteOp {
        let json = encode(&data);
        WriteOp(
            Op::Publish {
                channel,
                data,
                json,
                from,
            },
            None,
        )
    }
}

/// Encodes a document or a message. Done when the operation is built, on
/// the caller's thread, so the single committer thread does not spend its
/// time on it.
fn encode(value: &(impl serde::Serialize + ?Sized)) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("JSON values always serialize"))
}

fn into_object(value: Value, what: &'static str) -> Result<Map<String, Value>, StoreError> {
    match value {
        Value::Object(map) => Ok(map),
        _ => Err(StoreError::NotAnObject { what }),
    }
}

/// Makes sure `doc["id"]` is `id`: sets it when absent, rejects a different one.
pub(crate) fn with_id(
    mut doc: Map<String, Value>,
    id: &DocId,
) -> Result<Map<String, Value>, StoreError> {
    match doc.get("id") {
        None => {
            doc.insert("id".into(), Value::String(id.as_str().to_owned()));
            Ok(doc)
        }
        Some(Value::String(s)) if s == id.as_str() => Ok(doc),
        Some(other) => Err(StoreError::IdMismatch {
            reason: format!("is {other} but the target id is {:?}", id.as_str()),
        }),
    }
}

/// The outcome of one successful operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    /// A document write.
    Doc(WriteAck),
    /// A channel message.
    Message {
        /// The message's offset in the log.
        offset: Offset,
    },
}

impl Written {
    /// The offset of the operation's event.
    #[must_use]
    pub fn offset(&self) -> Offset {
        match self {
            Written::Doc(ack) => ack.offset,
            Written::Message { offset } => *offset,
        }
    }

    /// The document acknowledgement, if this was a document write.
    #[must_use]
    pub fn into_ack(self) -> Option<WriteAck> {
        match self {
            Written::Doc(ack) => Some(ack),
            Written::Message { .. } => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t() -> TableName {
        TableName::new("t").unwrap()
    }

    #[test]
    fn insert_takes_or_generates_the_id() {
        let WriteOp(Op::Insert { id, doc, .. }, _) =
            WriteOp::insert(t(), json!({"id": "a"})).unwrap()
        else {
            panic!()
        };
        assert_eq!((id.as_str(), &doc["id"]), ("a", &json!("a")));
        let WriteOp(Op::Insert { id, doc, .. }, _) = WriteOp::insert(t(), json!({"x": 1})).unwrap()
        else {
            panic!()
        };
        assert_eq!(doc["id"], json!(id.as_str()));
    }

    #[test]
    fn bad_documents_are_rejected() {
        assert!(matches!(
            WriteOp::insert(t(), json!([1])),
            Err(StoreError::NotAnObject { .. })
        ));
        assert!(matches!(
            WriteOp::insert(t(), json!({"id": 5})),
            Err(StoreError::IdMismatch { .. })
        ));
        assert!(matches!(
            WriteOp::insert(t(), json!({"id": ""})),
            Err(StoreError::InvalidId { .. })
        ));
        let id = DocId::new("a").unwrap();
        assert!(matches!(
            WriteOp::put(t(), id.clone(), json!({"id": "b"}), None),
            Err(StoreError::IdMismatch { .. })
        ));
        assert!(WriteOp::put(t(), id, json!({}), None).is_ok());
    }
}
