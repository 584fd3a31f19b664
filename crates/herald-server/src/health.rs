//! Probes: `GET /healthz` (the process serves) and `GET /readyz` (it takes
//! traffic).

use crate::AppState;
use crate::error::ApiError;
use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use herald_proto::ErrorCode;
use serde_json::{Value, json};

/// `GET /healthz`: 200 while the process serves.
pub(crate) async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 while the store is open and shutdown has not begun;
/// 503 `shutting_down` after, so a load balancer stops sending traffic
/// while sessions drain.
pub(crate) async fn readyz(State(app): State<AppState>) -> Response {
    if app.sessions.is_closing() {
        return ApiError::new(ErrorCode::ShuttingDown, "the server is shutting down")
            .into_response();
    }
    if *app.herald.store().closed().borrow() {
        return ApiError::new(ErrorCode::ShuttingDown, "the store is closed").into_response();
    }
    Json(json!({"status": "ready"})).into_response()
}
