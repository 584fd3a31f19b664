//! Herald's HTTP server: the REST API for tables, batches and replay.
//!
//! [`run`] takes the listener and the shutdown signal from its caller (tests
//! bind port 0), serves until the signal fires, lets in-flight requests
//! finish, then closes the store so every acknowledged write is fsynced.
//!
//! # Layout
//! - [`config`]: the whole configuration tree ([`Config`]), as read from `herald.toml`.
//! - `error`: [`ApiError`], the one place a failure becomes an HTTP response.
//! - `extract`: request extractors that fail with precise error codes.
//! - `tables`: document routes (`/v1/tables/{table}/docs...`).
//! - `batch`: `POST /v1/batch`.
//! - `events`: `GET /v1/events`, replay of the log as NDJSON.
//! - `query`: the document filter accepted by queries and replay.

mod batch;
pub mod config;
mod error;
mod events;
mod extract;
mod query;
mod tables;

pub use config::{Config, HttpConfig};
pub use error::ApiError;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use herald_core::Herald;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) herald: Herald,
    pub(crate) http: Arc<HttpConfig>,
}

/// The application's routes, ready to serve.
pub fn router(herald: Herald, http: HttpConfig) -> Router {
    let max_body = http.max_body_bytes;
    let state = AppState {
        herald,
        http: Arc::new(http),
    };
    Router::new()
        .route("/healthz", get(healthz))
        .route(
            "/v1/tables/{table}/docs",
            post(tables::insert).get(tables::query),
        )
        .route(
            "/v1/tables/{table}/docs/{id}",
            get(tables::read)
                .put(tables::put)
                .patch(tables::patch)
                .delete(tables::delete),
        )
        .route("/v1/batch", post(batch::batch))
        .route("/v1/events", get(events::replay))
        .fallback(error::not_found)
        .method_not_allowed_fallback(error::method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// Serves `herald` on `listener` until `shutdown` resolves, then drains
/// in-flight requests and closes the store (final fsync).
pub async fn run(
    listener: TcpListener,
    herald: Herald,
    http: HttpConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(herald.clone(), http);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    tracing::info!("stopped accepting; closing the store");
    herald.close().await;
    served
}

async fn healthz() -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({"status": "ok"}))
}
