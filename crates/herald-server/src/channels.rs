//! `POST /v1/channels/{channel}/messages`: publish a message.
//!
//! The body is `{"data": <any JSON>}`. The message is appended to the log
//! like a table change (so it replays and resumes the same way) and the
//! answer, once it is durable, is `{"offset", "receivers"}`: the number of
//! subscriptions it was delivered to.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::security::Caller;
use axum::Json;
use axum::extract::{Path, State};
use herald_auth::Action;
use herald_proto::{ErrorCode, Offset};
use herald_store::ChannelName;
use serde::Serialize;
use serde_json::Value;

/// The answer to a publish.
#[derive(Debug, Serialize)]
pub(crate) struct Published {
    offset: Offset,
    receivers: u64,
}

pub(crate) async fn publish(
    State(app): State<AppState>,
    caller: Caller,
    Path(channel): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<Published>, ApiError> {
    let channel = ChannelName::new(&channel)?;
    caller.check(
        &app,
        "publish",
        caller.0.require(Action::Publish, channel.as_str()),
    )?;
    app.security.limits.publish(&caller.0)?;
    let data = match body {
        Value::Object(mut fields) if fields.len() == 1 && fields.contains_key("data") => {
            fields.remove("data").unwrap_or(Value::Null)
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                r#"the body is {"data": <any JSON value>}"#,
            ));
        }
    };
    let offset = app
        .herald
        .publish_from(channel.as_str(), data, caller.0.publisher())
        .await?;
    let receivers = app.hub.receivers(offset).await;
    Ok(Json(Published { offset, receivers }))
}
