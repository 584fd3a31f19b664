//! [`ApiError`]: the one place a failure becomes an HTTP response.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use herald_proto::error::ErrorDetail;
use herald_proto::{ErrorBody, ErrorCode};
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
}

impl ApiError {
    /// An error with a code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            earliest: None,
        }
    }

    /// The JSON body of this error.
    #[must_use]
    pub fn body(&self) -> ErrorBody {
        ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message.clone(),
                earliest: self.earliest,
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        let code = match e.root() {
            StoreError::InvalidTable { .. } => ErrorCode::InvalidTable,
            StoreError::InvalidId { .. } => ErrorCode::InvalidId,
            StoreError::InvalidChannel { .. } => ErrorCode::InvalidChannel,
            StoreError::NotAnObject { .. } => ErrorCode::NotAnObject,
            StoreError::IdMismatch { .. } => ErrorCode::IdMismatch,
            StoreError::DocTooLarge { .. } => ErrorCode::PayloadTooLarge,
            StoreError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            StoreError::NotFound { .. } => ErrorCode::NotFound,
            StoreError::VersionMismatch { .. } => ErrorCode::VersionMismatch,
            StoreError::EmptyBatch | StoreError::BatchTooLarge { .. } => ErrorCode::InvalidBatch,
            StoreError::Unrecoverable { earliest, .. } => {
                return ApiError {
                    earliest: Some(earliest.0),
                    ..ApiError::new(ErrorCode::UnrecoverablePosition, e.to_string())
                };
            }
            StoreError::Closed => ErrorCode::ShuttingDown,
            StoreError::InBatch { .. }
            | StoreError::CommitFailed { .. }
            | StoreError::InvalidConfig(_)
            | StoreError::Engine(_)
            | StoreError::Corrupt(_)
            | StoreError::Io { .. } => {
                tracing::error!(error = %e, "storage failure");
                return ApiError::new(
                    ErrorCode::Internal,
                    "internal storage error; see the server log",
                );
            }
        };
        ApiError::new(code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, axum::Json(self.body())).into_response()
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
