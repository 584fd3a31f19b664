//! `/v1/admin/routes`: change routing rules (`herald_core::RouteSet`), for
//! callers holding `admin`. Rules from `herald.toml` are listed but changed
//! only there; rules added here are stored and survive restarts.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::security::Caller;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use herald_core::{RouteInfo, RouteRule};
use herald_proto::ErrorCode;
use serde_json::{Value, json};

/// `GET /v1/admin/routes`: every rule.
pub(crate) async fn list(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin(&app, "list routes")?;
    Ok(Json(json!({"routes": app.routes.list()})))
}

/// `PUT /v1/admin/routes/{name}` with `{"table", "channel", "ops"?}`.
pub(crate) async fn put(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<RouteInfo>, ApiError> {
    caller.require_admin(&app, "change a route")?;
    let rule: RouteRule = serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("route: {e}; the body is {{\"table\", \"channel\", \"ops\"?}}"),
        )
    })?;
    let info = app.routes.put(&name, rule).await?;
    app.security.audit.record(
        "route_changed",
        Some(&caller.0.subject()),
        json!({"route": name}),
    );
    Ok(Json(info))
}

/// `DELETE /v1/admin/routes/{name}`.
pub(crate) async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<StatusCode, ApiError> {
    caller.require_admin(&app, "delete a route")?;
    if !app.routes.delete(&name).await? {
        return Err(ApiError::new(
            ErrorCode::NotFound,
            format!("no stored route {name:?}"),
        ));
    }
    app.security.audit.record(
        "route_deleted",
        Some(&caller.0.subject()),
        json!({"route": name}),
    );
    Ok(StatusCode::NO_CONTENT)
}
