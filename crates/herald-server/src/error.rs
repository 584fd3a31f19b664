//! [`ApiError`]: the one place a failure becomes an HTTP response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_proto::error::ErrorDetail;
use herald_proto::{ErrorBody, ErrorCode, ServerMessage};
use herald_store::StoreError;

/// An error answered as `{"error":{"code","message"}}` with the code's status.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable explanation.
    pub message: String,
    /// For `unrecoverable_position`: the earliest offset available.
    pub earliest: Option<u64>,
    /// For `rate_limited`: when a retry may succeed (`Retry-After`).
    pub retry_after: Option<std::time::Duration>,
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            earliest: None,
            retry_after: None,
        }
    }

    /// `rate_limited`, retry after `wait`.
    pub fn rate_limited(what: &str, wait: std::time::Duration) -> ApiError {
        ApiError {
            retry_after: Some(wait),
            ..ApiError::new(
                ErrorCode::RateLimited,
                format!("{what}; retry in {} ms", wait.as_millis().max(1)),
            )
        }
    }

    /// `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Forbidden, message)
    }

    /// The JSON body of this error.
    #[must_use]
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
                earliest: self.earliest,
                retry_after_ms: self.retry_after_ms(),
            },
        }
    }

    /// This error as a WebSocket (or SSE) `error` message.
    #[must_use]
    pub fn to_message(&self, id: Option<String>, reference: Option<String>) -> ServerMessage {
        ServerMessage::Error {
            reference,
            id,
            code: self.code,
            message: self.message.clone(),
            earliest: self.earliest.map(herald_proto::Offset),
            retry_after_ms: self.retry_after_ms(),
        }
    }

    fn retry_after_ms(&self) -> Option<u64> {
        self.retry_after.map(|d| d.as_millis().max(1) as u64)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        match e.code() {
            ErrorCode::Internal => {
                static FAILURES: herald_core::LogLimit = herald_core::LogLimit::new(10);
                if let Some(suppressed) = FAILURES.allow() {
                    tracing::error!(error = %e, suppressed, "storage failure");
                }
                ApiError::new(
                    ErrorCode::Internal,
                    "internal storage error; see the server log",
                )
            }
            code => ApiError {
                earliest: e.earliest().map(|o| o.0),
                ..ApiError::new(code, e.to_string())
            },
        }
    }
}

impl From<herald_core::HubError> for ApiError {
    fn from(e: herald_core::HubError) -> ApiError {
        ApiError {
            earliest: e.earliest.map(|o| o.0),
            ..ApiError::new(e.code, e.message)
        }
    }
}

impl From<ApiError> for herald_core::HubError {
    fn from(e: ApiError) -> herald_core::HubError {
        herald_core::HubError {
            code: e.code,
            message: e.message,
            earliest: e.earliest.map(herald_proto::Offset),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = (status, axum::Json(self.body())).into_response();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds.max(1)),
            );
        }
        // For the write metrics (`metrics::time_write`): the outcome label.
        response.extensions_mut().insert(self.code);
        response
    }
}

pub(crate) async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such route; see docs/api.md")
}

pub(crate) async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this path",
    )
}
