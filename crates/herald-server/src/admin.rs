//! `/v1/admin/...`: API keys and the audit log, for callers holding
//! `admin`. Every action is audited.

use crate::AppState;
use crate::audit::AuditQuery;
use crate::error::ApiError;
use crate::extract::{JsonBody, Params};
use crate::security::Caller;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_auth::{ApiKeyInfo, ApiKeys, Permissions};
use herald_proto::ErrorCode;
use serde::Deserialize;
use serde_json::{Value, json};

fn keys(app: &AppState) -> Result<&ApiKeys, ApiError> {
    app.security
        .auth
        .api_keys()
        .ok_or_else(|| ApiError::new(ErrorCode::NotFound, "this server has no API key store"))
}

/// `GET /v1/admin/apikeys`: every key, without secrets.
pub(crate) async fn list_keys(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin(&app, "list API keys")?;
    Ok(Json(json!({"keys": keys(&app)?.list()})))
}

/// The body of `POST /v1/admin/apikeys`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewKey {
    name: String,
    permissions: Vec<String>,
}

/// `POST /v1/admin/apikeys` `{"name", "permissions": [...]}`: 201 with the
/// key, shown this once.
pub(crate) async fn create_key(
    State(app): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    caller.require_admin(&app, "create an API key")?;
    let request: NewKey = serde_json::from_value(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("body: {e}")))?;
    let permissions = Permissions::parse(&request.permissions)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, e.to_string()))?;
    let (info, secret): (ApiKeyInfo, String) = keys(&app)?
        .create(&request.name, &permissions)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, e.to_string()))?;
    app.security.audit.record(
        "key_created",
        Some(&caller.0.subject()),
        json!({"key": info.id, "name": info.name, "permissions": info.permissions}),
    );
    Ok((
        StatusCode::CREATED,
        Json(json!({"key": secret, "info": info})),
    ))
}

/// `DELETE /v1/admin/apikeys/{id}`.
pub(crate) async fn revoke_key(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin(&app, "revoke an API key")?;
    let revoked = keys(&app)?
        .revoke(&id)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    if !revoked {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            "no API key with this id",
        ));
    }
    app.security
        .audit
        .record("key_revoked", Some(&caller.0.subject()), json!({"key": id}));
    Ok(Json(json!({"revoked": id})))
}

/// `GET /v1/admin/audit?kind=&who=&since=&limit=`: audit records, oldest
/// first.
pub(crate) async fn audit(
    State(app): State<AppState>,
    caller: Caller,
    Params(query): Params<AuditQuery>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin(&app, "read the audit log")?;
    let audit = app.security.audit.clone();
    let records = tokio::task::spawn_blocking(move || audit.query(&query))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("audit reader stopped: {e}")))?
        .map_err(|e| ApiError::new(ErrorCode::Internal, format!("reading the audit log: {e}")))?;
    Ok(Json(json!({"records": records})))
}
