//! Channels: publishing (`POST /v1/channels/{channel}/messages` and the
//! WebSocket `publish`), broadcasting (`POST /v1/broadcast` and `broadcast`),
//! and channel statistics (`GET /v1/channels[/{channel}]`).
//!
//! Who may publish is decided in one place, [`may_publish`]: the
//! `publish:<channel>` permission, then the namespace's publish policy
//! (`anyone`, `members`, `moderators`, `server`) against the caller's
//! [`Standing`] in the room. A message is appended to the log when its
//! namespace keeps history (the answer has its offset), else sent live only.

use crate::AppState;
use crate::auth::{Principal, Who};
use crate::error::ApiError;
use crate::extract::JsonBody;
use crate::security::Caller;
use axum::Json;
use axum::extract::{Path, State};
use herald_auth::Action;
use herald_core::{Published, Signal, Standing};
use herald_proto::{Broadcast, ErrorCode, Offset, Timestamp};
use herald_store::ChannelName;
use serde::Serialize;
use serde_json::{Value, json};

/// Most rooms one broadcast targets.
const MAX_BROADCAST_ROOMS: usize = 100;

/// What `who` (on connection `conn`, if any) is to room `room`.
pub(crate) fn standing(
    app: &AppState,
    who: &Principal,
    conn: Option<u64>,
    room: &ChannelName,
) -> Standing {
    let server = matches!(who.who, Who::ApiKey { .. }) || who.permissions.is_admin();
    let moderator = is_moderator(app, who, room);
    let member = conn.is_some_and(|c| app.rooms.holds(c, room))
        || who
            .publisher()
            .is_some_and(|subject| app.rooms.has_member(room, &subject));
    Standing {
        server,
        moderator,
        member,
    }
}

/// Whether `who` moderates `room`: `moderate:<room>` (admins hold it), or
/// listed in the room's `moderators`.
pub(crate) fn is_moderator(app: &AppState, who: &Principal, room: &ChannelName) -> bool {
    who.may(Action::Moderate, room.as_str())
        || matches!(&who.who, Who::User(sub) if app.rooms.lists_moderator(room, sub))
}

/// `forbidden` unless `who` may publish to `channel`: its permission, then
/// the namespace's publish policy.
pub(crate) fn may_publish(
    app: &AppState,
    who: &Principal,
    conn: Option<u64>,
    channel: &ChannelName,
) -> Result<(), ApiError> {
    who.require(Action::Publish, channel.as_str())?;
    let policy = app.rooms.namespaces().of(channel.as_str()).publish;
    if policy.allows(standing(app, who, conn, channel)) {
        return Ok(());
    }
    let who_may = match policy {
        herald_core::PublishPolicy::Members => "its members and moderators",
        herald_core::PublishPolicy::Moderators => "its moderators",
        _ => "the server (API keys and admins)",
    };
    Err(ApiError::forbidden(format!(
        "only {who_may} may publish to {:?} (its namespace has publish = {:?})",
        channel.as_str(),
        policy.as_str()
    )))
}

/// Publishes `data` to `channel` for `who`, after every check.
pub(crate) async fn publish_as(
    app: &AppState,
    who: &Principal,
    conn: Option<u64>,
    channel: &str,
    data: Value,
) -> Result<Published, ApiError> {
    let channel = ChannelName::new(channel)?;
    may_publish(app, who, conn, &channel)
        .inspect_err(|e| app.security.denied(who, "publish", e))?;
    app.security.limits.publish(who)?;
    Ok(app.hub.publish(channel, data, who.publisher()).await?)
}

/// The answer to a publish.
#[derive(Debug, Serialize)]
pub(crate) struct PublishAnswer {
    /// Absent for a channel without history.
    #[serde(skip_serializing_if = "Option::is_none")]
    offset: Option<Offset>,
    receivers: u64,
}

/// `POST /v1/channels/{channel}/messages` with `{"data": <any JSON>}`.
pub(crate) async fn publish(
    State(app): State<AppState>,
    caller: Caller,
    Path(channel): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<PublishAnswer>, ApiError> {
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
    let published = publish_as(&app, &caller.0, None, &channel, data).await?;
    Ok(Json(PublishAnswer {
        offset: published.offset,
        receivers: published.receivers,
    }))
}

/// Sends a broadcast for `who`, after every check: `publish` (and the
/// publish policy) on every targeted room, or `publish:*` for everyone.
/// The connections it reached.
pub(crate) async fn broadcast_as(
    app: &AppState,
    who: &Principal,
    conn: Option<u64>,
    request: Broadcast,
) -> Result<u64, ApiError> {
    let rooms = match (request.rooms, request.everyone) {
        (Some(rooms), false) if (1..=MAX_BROADCAST_ROOMS).contains(&rooms.len()) => {
            let mut names = Vec::with_capacity(rooms.len());
            for room in rooms {
                let room = ChannelName::new(room)?;
                may_publish(app, who, conn, &room)
                    .inspect_err(|e| app.security.denied(who, "broadcast", e))?;
                if !names.contains(&room) {
                    names.push(room);
                }
            }
            Some(names)
        }
        (None, true) => {
            who.require(Action::Publish, "*")
                .map_err(|_| {
                    ApiError::forbidden("a broadcast to everyone needs the permission publish:*")
                })
                .inspect_err(|e| app.security.denied(who, "broadcast", e))?;
            None
        }
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                format!("give `rooms` (1 to {MAX_BROADCAST_ROOMS} room names) or `everyone: true`"),
            ));
        }
    };
    let max = app.herald.store().max_doc_bytes();
    let size = serde_json::to_vec(&request.data).map_or(0, |v| v.len());
    if size > max {
        return Err(ApiError::new(
            ErrorCode::PayloadTooLarge,
            format!("the data is {size} bytes; the limit is {max}"),
        ));
    }
    app.security.limits.publish(who)?;
    let signal = Signal::broadcast(rooms, &request.data, who.publisher(), Timestamp::now());
    Ok(app.hub.signal(signal).await.connections)
}

/// `POST /v1/broadcast` with `{"rooms": [...], "data": ...}` or
/// `{"everyone": true, "data": ...}`: `{"receivers": <connections>}`.
pub(crate) async fn broadcast(
    State(app): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody,
) -> Result<Json<Value>, ApiError> {
    let request: Broadcast = serde_json::from_value(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("broadcast: {e}")))?;
    if request.reference.is_some() {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            "`ref` is for WebSocket requests",
        ));
    }
    let receivers = broadcast_as(&app, &caller.0, None, request).await?;
    Ok(Json(json!({"receivers": receivers})))
}

/// One channel's numbers.
#[derive(Debug, Serialize)]
pub(crate) struct ChannelStats {
    channel: String,
    /// Its namespace (absent: none).
    #[serde(skip_serializing_if = "Option::is_none")]
    namespace: Option<String>,
    history: bool,
    presence: bool,
    /// Live subscriptions on this server, room memberships included.
    subscribers: usize,
    /// Members of its room.
    members: usize,
    /// Messages routed while it had subscribers.
    messages: u64,
    /// When its last message was sent (Unix ms; 0: none seen).
    last_activity: Timestamp,
}

async fn channel_stats(app: &AppState, channel: &ChannelName) -> ChannelStats {
    let policy = app.rooms.namespaces().of(channel.as_str());
    let topic = app.hub.topic(channel.as_str()).await.unwrap_or_default();
    ChannelStats {
        channel: channel.as_str().to_owned(),
        namespace: herald_core::namespace::name_of(channel.as_str()).map(str::to_owned),
        history: policy.history,
        presence: policy.presence,
        subscribers: topic.subscriptions,
        members: app.rooms.room(channel).map_or(0, |r| r.members),
        messages: topic.events,
        last_activity: topic.last_event,
    }
}

/// `GET /v1/channels/{channel}`: needs `read:` or `presence:` on it.
pub(crate) async fn channel(
    State(app): State<AppState>,
    caller: Caller,
    Path(channel): Path<String>,
) -> Result<Json<ChannelStats>, ApiError> {
    let channel = ChannelName::new(channel)?;
    let who = &caller.0;
    if !who.may(Action::Presence, channel.as_str()) {
        who.require(Action::Read, channel.as_str())?;
    }
    Ok(Json(channel_stats(&app, &channel).await))
}

/// `GET /v1/channels` (admin): every channel with subscribers or a room.
pub(crate) async fn channels(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin(&app, "list channels")?;
    let mut names: Vec<String> = app
        .hub
        .stats()
        .await
        .topics
        .into_iter()
        .map(|t| t.topic)
        .filter(|t| !t.starts_with("table:"))
        .chain(app.rooms.list().into_iter().map(|r| r.room))
        .collect();
    names.sort();
    names.dedup();
    let mut list = Vec::with_capacity(names.len());
    for name in names {
        if let Ok(channel) = ChannelName::new(name) {
            list.push(channel_stats(&app, &channel).await);
        }
    }
    Ok(Json(json!({"channels": list})))
}
