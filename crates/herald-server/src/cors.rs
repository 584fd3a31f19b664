//! CORS: lets pages of the origins in `[auth] allowed_origins` call the REST
//! API and open SSE streams from the browser. With the list empty no CORS
//! header is sent, so only same-origin pages (and non-browser clients) can
//! read answers — a page on another site cannot use a loopback server's
//! anonymous access. WebSockets are not covered by CORS; `origin.rs` checks
//! their upgrades against the same list.

use axum::http::{HeaderName, HeaderValue, Method, header};
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);

/// The CORS layer for `allowed` origins (`None` when the list is empty, or
/// holds no valid origin).
pub(crate) fn layer(allowed: &[String]) -> Option<CorsLayer> {
    let origins: Vec<HeaderValue> = allowed
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    if origins.is_empty() {
        return None;
    }
    Some(
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::IF_MATCH,
                HeaderName::from_static("last-event-id"),
            ])
            .expose_headers([header::ETAG, header::LOCATION, header::RETRY_AFTER])
            // Cookie-authenticated SSE streams need credentials.
            .allow_credentials(true)
            .max_age(PREFLIGHT_MAX_AGE),
    )
}
