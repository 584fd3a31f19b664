//! Error codes: the closed set of machine-readable reasons a request fails.

use serde::{Deserialize, Serialize};

/// Every error a client can receive, with the HTTP status it maps to.
///
/// The wire name is the snake_case form of the variant (`invalid_json`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON; the message says where.
    InvalidJson,
    /// The request's content type is not `application/json`.
    UnsupportedMediaType,
    /// A document (or merge result) is not a JSON object.
    NotAnObject,
    /// A channel name breaks the channel naming rules.
    InvalidChannel,
    /// A table name is not `[A-Za-z0-9_]{1,64}`.
    InvalidTable,
    /// A document id is empty, longer than 256 bytes, or has control characters.
    InvalidId,
    /// The body's `id` differs from the id in the path.
    IdMismatch,
    /// A request or document is larger than allowed.
    PayloadTooLarge,
    /// A query parameter or field has a bad value.
    InvalidParameter,
    /// A filter could not be parsed or is not supported.
    InvalidFilter,
    /// A batch is empty or too large.
    InvalidBatch,
    /// The document already exists (insert).
    AlreadyExists,
    /// The expected version does not match the stored one.
    VersionMismatch,
    /// No such document, or no such route.
    NotFound,
    /// The HTTP method is not allowed on this path.
    MethodNotAllowed,
    /// A resume position is below retention or from another epoch.
    UnrecoverablePosition,
    /// The server is shutting down and takes no more writes.
    ShuttingDown,
    /// A WebSocket message is not JSON, has an unknown `type`, or lacks or
    /// misnames a field.
    InvalidMessage,
    /// The connection already holds the most subscriptions allowed.
    TooManySubscriptions,
    /// The connection already has a subscription with this id.
    SubscriptionExists,
    /// The connection has no subscription with this id.
    UnknownSubscription,
    /// The server holds the most connections allowed.
    TooManyConnections,
    /// The connection fell too far behind its events and was closed.
    SlowConsumer,
    /// The client did not answer the server's pings in time.
    HeartbeatTimeout,
    /// No valid credentials: a missing, malformed, forged or rejected
    /// token or API key; the message says which check failed.
    Unauthorized,
    /// The token has expired (send a fresh one with `auth`).
    TokenExpired,
    /// Authenticated, but not allowed to do this; the message names the
    /// permission or rule.
    Forbidden,
    /// The request's `Origin` is not allowed.
    OriginNotAllowed,
    /// Too many requests; retry after `retry_after_ms`.
    RateLimited,
    /// The room holds the most members it allows.
    RoomFull,
    /// The connection is already a member of the room.
    AlreadyMember,
    /// The connection (or client) is not a member of the room.
    NotMember,
    /// Something failed inside the server; details are in its log.
    Internal,
}

impl ErrorCode {
    /// The wire name, e.g. `"version_mismatch"`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::NotAnObject => "not_an_object",
            ErrorCode::InvalidChannel => "invalid_channel",
            ErrorCode::InvalidTable => "invalid_table",
            ErrorCode::InvalidId => "invalid_id",
            ErrorCode::IdMismatch => "id_mismatch",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::InvalidParameter => "invalid_parameter",
            ErrorCode::InvalidFilter => "invalid_filter",
            ErrorCode::InvalidBatch => "invalid_batch",
            ErrorCode::AlreadyExists => "already_exists",
            ErrorCode::VersionMismatch => "version_mismatch",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::UnrecoverablePosition => "unrecoverable_position",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::TooManySubscriptions => "too_many_subscriptions",
            ErrorCode::SubscriptionExists => "subscription_exists",
            ErrorCode::UnknownSubscription => "unknown_subscription",
            ErrorCode::TooManyConnections => "too_many_connections",
            ErrorCode::SlowConsumer => "slow_consumer",
            ErrorCode::HeartbeatTimeout => "heartbeat_timeout",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::OriginNotAllowed => "origin_not_allowed",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::RoomFull => "room_full",
            ErrorCode::AlreadyMember => "already_member",
            ErrorCode::NotMember => "not_member",
            ErrorCode::Internal => "internal",
        }
    }

    /// The HTTP status this code is answered with.
    #[must_use]
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidJson
            | ErrorCode::NotAnObject
            | ErrorCode::InvalidChannel
            | ErrorCode::InvalidTable
            | ErrorCode::InvalidId
            | ErrorCode::IdMismatch
            | ErrorCode::InvalidParameter
            | ErrorCode::InvalidFilter
            | ErrorCode::InvalidBatch
            | ErrorCode::InvalidMessage => 400,
            ErrorCode::Unauthorized | ErrorCode::TokenExpired => 401,
            ErrorCode::Forbidden | ErrorCode::OriginNotAllowed => 403,
            ErrorCode::RateLimited => 429,
            ErrorCode::NotFound | ErrorCode::UnknownSubscription | ErrorCode::NotMember => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::AlreadyExists
            | ErrorCode::SubscriptionExists
            | ErrorCode::AlreadyMember
            | ErrorCode::RoomFull => 409,
            ErrorCode::UnrecoverablePosition => 410,
            ErrorCode::VersionMismatch => 412,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::UnsupportedMediaType => 415,
            ErrorCode::TooManySubscriptions => 429,
            ErrorCode::ShuttingDown | ErrorCode::TooManyConnections => 503,
            ErrorCode::SlowConsumer | ErrorCode::HeartbeatTimeout => 408,
            ErrorCode::Internal => 500,
        }
    }
}

/// The JSON body of every error: `{"error":{"code":"...","message":"..."}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error itself.
    pub error: ErrorDetail,
}

/// The inside of an [`ErrorBody`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Human-readable explanation; never contains secrets.
    pub message: String,
    /// For `unrecoverable_position`: the earliest offset still available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub earliest: Option<u64>,
    /// For `rate_limited`: milliseconds until a retry may succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::UnsupportedMediaType,
            ErrorCode::VersionMismatch,
            ErrorCode::UnrecoverablePosition,
            ErrorCode::InvalidMessage,
            ErrorCode::TooManySubscriptions,
            ErrorCode::SubscriptionExists,
            ErrorCode::UnknownSubscription,
            ErrorCode::TooManyConnections,
            ErrorCode::SlowConsumer,
            ErrorCode::HeartbeatTimeout,
            ErrorCode::Unauthorized,
            ErrorCode::TokenExpired,
            ErrorCode::Forbidden,
            ErrorCode::OriginNotAllowed,
            ErrorCode::RateLimited,
            ErrorCode::RoomFull,
            ErrorCode::AlreadyMember,
            ErrorCode::NotMember,
            ErrorCode::Internal,
        ] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }
}
