//! Extractors that fail with a precise [`ApiError`] instead of axum's plain
//! text rejections.

use crate::error::ApiError;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::{CONTENT_TYPE, IF_MATCH};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use herald_proto::{ErrorCode, Version};
use herald_store::{DocId, TableName};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// A JSON request body: `application/json` (or any `+json` type), parsed,
/// with the parse error's line and column in the message.
#[derive(Debug)]
pub(crate) struct JsonBody(pub(crate) Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let mime = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        if mime != "application/json"
            && !(mime.starts_with("application/") && mime.ends_with("+json"))
        {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "expected Content-Type: application/json, got {:?}",
                    truncate(content_type)
                ),
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    ErrorCode::PayloadTooLarge,
                    "request body is larger than http.max_body_bytes",
                )
            } else {
                ApiError::new(ErrorCode::InvalidJson, rejection.body_text())
            }
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::new(ErrorCode::InvalidJson, format!("invalid JSON body: {e}")))
    }
}

/// Query parameters deserialized into `T` (unknown parameters are errors
/// when `T` denies them).
#[derive(Debug)]
pub(crate) struct Params<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for Params<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(Params)
            .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("query string: {e}")))
    }
}

/// `{table}` from the path, validated.
#[derive(Debug)]
pub(crate) struct TablePath(pub(crate) TableName);

impl<S: Send + Sync> FromRequestParts<S> for TablePath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(table) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, e.body_text()))?;
        Ok(TablePath(TableName::new(table)?))
    }
}

/// `{table}/docs/{id}` from the path, validated.
#[derive(Debug)]
pub(crate) struct DocPath(pub(crate) TableName, pub(crate) DocId);

impl<S: Send + Sync> FromRequestParts<S> for DocPath {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path((table, id)) = Path::<(String, String)>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, e.body_text()))?;
        Ok(DocPath(TableName::new(table)?, DocId::new(id)?))
    }
}

/// The version an `If-Match` header demands: `"3"` or `3`.
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<Version>, ApiError> {
    let Some(value) = headers.get(IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    let digits = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    digits.parse().map(|v| Some(Version(v))).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!(
                "If-Match must be a document version such as \"3\", got {:?}",
                truncate(text)
            ),
        )
    })
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}
