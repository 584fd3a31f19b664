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
/// again; [`RawOp::into_write`] checks which fields the `op` takes.
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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

impl RawOp {
    /// The write this operation asks for: first its fields, checked against
    /// what its `op` takes (`invalid_batch`), then its table, id and
    /// document, validated as for a single write.
    fn into_write(self) -> Result<WriteOp, ApiError> {
        let RawOp {
            op,
            table,
            id,
            doc,
            patch,
            if_version,
        } = self;
        let name = op.name();
        if op == OpKind::Insert {
            // Refused even as `null`, so asked before they are read.
            refuse(name, "id", id.is_given())?;
            refuse(name, "patch", patch.is_given())?;
            refuse(name, "if_version", if_version.is_given())?;
        }
        let id = id.given().flatten();
        let expect = if_version.given().flatten().map(Version);
        match op {
            OpKind::Insert => {
                let doc = need(name, "doc", doc.given())?;
                Ok(WriteOp::insert(TableName::new(table)?, doc)?)
            }
            OpKind::Put => {
                refuse(name, "patch", patch.is_given())?;
                let (id, doc) = (need(name, "id", id)?, need(name, "doc", doc.given())?);
                let (table, id) = (TableName::new(table)?, DocId::new(id)?);
                Ok(WriteOp::put(table, id, doc, expect)?)
            }
            OpKind::Patch => {
                refuse(name, "doc", doc.is_given())?;
                let (id, patch) = (need(name, "id", id)?, need(name, "patch", patch.given())?);
                let (table, id) = (TableName::new(table)?, DocId::new(id)?);
                Ok(WriteOp::patch(table, id, patch, expect))
            }
            OpKind::Delete => {
                refuse(name, "doc", doc.is_given())?;
                refuse(name, "patch", patch.is_given())?;
                let id = need(name, "id", id)?;
                let (table, id) = (TableName::new(table)?, DocId::new(id)?);
                Ok(WriteOp::delete(table, id, expect))
            }
        }
    }
}

fn invalid(message: String) -> ApiError {
    ApiError::new(ErrorCode::InvalidBatch, message)
}

/// Refuses a field `op` does not take, if it was `given`.
fn refuse(op: &str, field: &str, given: bool) -> Result<(), ApiError> {
    match given {
        true => Err(invalid(format!("\"{op}\" takes no \"{field}\""))),
        false => Ok(()),
    }
}

/// A field `op` needs.
fn need<T>(op: &str, field: &str, value: Option<T>) -> Result<T, ApiError> {
    value.ok_or_else(|| invalid(format!("\"{op}\" needs \"{field}\"")))
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
        let in_op = |inner: ApiError| ApiError {
            message: format!("ops[{index}]: {}", inner.message),
            ..inner
        };
        let write = serde_json::from_value::<RawOp>(op)
            .map_err(|e| invalid(e.to_string()))
            .and_then(RawOp::into_write)
            .map_err(in_op)?;
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
