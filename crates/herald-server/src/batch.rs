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

/// One operation of a batch, as sent.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
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
        let op: BatchOp = serde_json::from_value(op)
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
