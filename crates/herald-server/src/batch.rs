//! `POST /v1/batch`: several writes, atomically.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::security::Caller;
use axum::Json;
use axum::extract::State;
use herald_proto::{ErrorCode, Version, WriteAck};
use herald_store::{DocId, TableName, WriteOp, Written};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One operation of a batch, as sent: every field any operation takes.
///
/// Flat rather than an internally tagged enum, which serde can only read by
/// buffering the whole operation — documents included — and reading it
/// again; [`RawOp::into_op`] checks which fields the `op` takes.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOp {
    op: OpKind,
    table: String,
    #[serde(default)]
    id: Field<Option<String>>,
    #[serde(default)]
    doc: Field<Value>,
    #[serde(default)]
    patch: Field<Value>,
    #[serde(default)]
    if_version: Field<Option<u64>>,
}

/// A field of an operation as sent: absent, or given — `null` included, so
/// `"doc": null` is a document that is not an object (as for a single
/// write), and a field the `op` does not take is refused even when `null`.
#[derive(Debug, Default)]
enum Field<T> {
    #[default]
    Absent,
    Given(T),
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Field<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Field::Given)
    }
}

impl<T> Field<T> {
    fn is_given(&self) -> bool {
        matches!(self, Field::Given(_))
    }

    fn given(self) -> Option<T> {
        match self {
            Field::Given(value) => Some(value),
            Field::Absent => None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "lowercase")]
enum OpKind {
    Insert,
    Put,
    Patch,
    Delete,
}

impl OpKind {
    fn name(self) -> &'static str {
        match self {
            OpKind::Insert => "insert",
            OpKind::Put => "put",
            OpKind::Patch => "patch",
            OpKind::Delete => "delete",
        }
    }
}

/// One operation of a batch, checked.
#[derive(Debug)]
enum BatchOp {
    Insert {
        table: String,
        doc: Value,
    },
    Put {
        table: String,
        id: String,
        doc: Value,
        if_version: Option<u64>,
    },
    Patch {
        table: String,
        id: String,
        patch: Value,
        if_version: Option<u64>,
    },
    Delete {
        table: String,
        id: String,
        if_version: Option<u64>,
    },
}

impl RawOp {
    /// The operation, if it has exactly the fields its `op` takes.
    fn into_op(self) -> Result<BatchOp, String> {
        let RawOp {
            op,
            table,
            id,
            doc,
            patch,
            if_version,
        } = self;
        let name = op.name();
        let needs = |field: &str| format!("\"{name}\" needs \"{field}\"");
        let refuse = |field: &str, given: bool| match given {
            true => Err(format!("\"{name}\" takes no \"{field}\"")),
            false => Ok(()),
        };
        Ok(match op {
            OpKind::Insert => {
                refuse("id", id.is_given())?;
                refuse("patch", patch.is_given())?;
                refuse("if_version", if_version.is_given())?;
                BatchOp::Insert {
                    table,
                    doc: doc.given().ok_or_else(|| needs("doc"))?,
                }
            }
            OpKind::Put => {
                refuse("patch", patch.is_given())?;
                BatchOp::Put {
                    table,
                    id: id.given().flatten().ok_or_else(|| needs("id"))?,
                    doc: doc.given().ok_or_else(|| needs("doc"))?,
                    if_version: if_version.given().flatten(),
                }
            }
            OpKind::Patch => {
                refuse("doc", doc.is_given())?;
                BatchOp::Patch {
                    table,
                    id: id.given().flatten().ok_or_else(|| needs("id"))?,
                    patch: patch.given().ok_or_else(|| needs("patch"))?,
                    if_version: if_version.given().flatten(),
                }
            }
            OpKind::Delete => {
                refuse("doc", doc.is_given())?;
                refuse("patch", patch.is_given())?;
                BatchOp::Delete {
                    table,
                    id: id.given().flatten().ok_or_else(|| needs("id"))?,
                    if_version: if_version.given().flatten(),
                }
            }
        })
    }
}

impl BatchOp {
    fn into_write(self) -> Result<WriteOp, herald_store::StoreError> {
        Ok(match self {
            BatchOp::Insert { table, doc } => WriteOp::insert(TableName::new(table)?, doc)?,
            BatchOp::Put {
                table,
                id,
                doc,
                if_version,
            } => WriteOp::put(
                TableName::new(table)?,
                DocId::new(id)?,
                doc,
                if_version.map(Version),
            )?,
            BatchOp::Patch {
                table,
                id,
                patch,
                if_version,
            } => WriteOp::patch(
                TableName::new(table)?,
                DocId::new(id)?,
                patch,
                if_version.map(Version),
            ),
            BatchOp::Delete {
                table,
                id,
                if_version,
            } => WriteOp::delete(
                TableName::new(table)?,
                DocId::new(id)?,
                if_version.map(Version),
            ),
        })
    }
}

#[derive(Debug, Serialize)]
pub(crate) struct BatchResult {
    results: Vec<WriteAck>,
}

/// Applies `{"ops":[...]}` atomically; answers `{"results":[ack, ...]}`.
pub(crate) async fn batch(
    State(app): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<BatchResult>, ApiError> {
    let Value::Object(mut body) = body else {
        return Err(ApiError::new(
            ErrorCode::InvalidBatch,
            "body must be {\"ops\": [...]}",
        ));
    };
    if let Some(key) = body.keys().find(|k| *k != "ops") {
        return Err(ApiError::new(
            ErrorCode::InvalidBatch,
            format!("unknown field {key:?}; expected only \"ops\""),
        ));
    }
    let Some(Value::Array(ops)) = body.remove("ops") else {
        return Err(ApiError::new(
            ErrorCode::InvalidBatch,
            "\"ops\" must be an array of operations",
        ));
    };
    let mut writes = Vec::with_capacity(ops.len());
    for (index, op) in ops.into_iter().enumerate() {
        let op = serde_json::from_value::<RawOp>(op)
            .map_err(|e| e.to_string())
            .and_then(RawOp::into_op)
            .map_err(|e| ApiError::new(ErrorCode::InvalidBatch, format!("ops[{index}]: {e}")))?;
        let in_op = |inner: ApiError| ApiError {
            message: format!("ops[{index}]: {}", inner.message),
            ..inner
        };
        let write = op.into_write().map_err(|e| in_op(e.into()))?;
        let write = caller.check(
            &app,
            "write",
            app.security.access.write(&caller.0, write).map_err(in_op),
        )?;
        writes.push(write);
    }
    let single = writes.len() == 1;
    let written = app.herald.store().write(writes).await.map_err(|e| {
        // The store names the failing operation only in multi-op batches.
        let error = ApiError::from(e);
        if single {
            ApiError::new(error.code, format!("ops[0]: {}", error.message))
        } else {
            error
        }
    })?;
    Ok(Json(BatchResult {
        results: written.into_iter().filter_map(Written::into_ack).collect(),
    }))
}
