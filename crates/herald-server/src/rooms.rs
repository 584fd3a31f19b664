//! Rooms over the wire: the WebSocket requests `join`, `leave`, `presence`,
//! `update_presence` and `remove_member`, and the REST routes
//! `/v1/rooms...`. The rooms themselves (membership, presence, expiry) are
//! `herald_core::Rooms`; this module checks who may do what.
//!
//! | request | needs |
//! |---|---|
//! | join room `R` | `read:R` and `presence:R` |
//! | see `R`'s presence or settings | `presence:R` |
//! | remove a member of `R` | a moderator of `R`: `moderate:R` (admins hold it), or listed in `R`'s `moderators` |
//! | create, change or delete `R`; join a connection to it | `moderate:R` |

use crate::AppState;
use crate::auth::Principal;
use crate::channels::is_moderator;
use crate::error::ApiError;
use crate::extract::{JsonBody, Params};
use crate::security::Caller;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use herald_auth::Action;
use herald_core::{Connection, JoinRequest, RoomInfo, RoomSettings};
use herald_proto::{ClientMessage, ErrorCode, Join, LeaveReason, ServerMessage};
use herald_store::ChannelName;
use serde::Deserialize;
use serde_json::{Value, json};

/// `read:R` and `presence:R`: what joining room `R` takes.
fn may_join(who: &Principal, room: &ChannelName) -> Result<(), ApiError> {
    who.require(Action::Presence, room.as_str())?;
    who.require(Action::Read, room.as_str())
}

/// `forbidden` unless `who` moderates `room`: `moderate:<room>` (admins
/// hold it), or listed in the room's `moderators`. An API key without
/// `moderate:` is no moderator: a narrowly scoped integration key must not
/// be able to remove anyone anywhere.
fn require_moderator(app: &AppState, who: &Principal, room: &ChannelName) -> Result<(), ApiError> {
    if is_moderator(app, who, room) {
        return Ok(());
    }
    Err(ApiError::forbidden(format!(
        "only moderators of {:?} may remove its members (moderate:{} or its `moderators`)",
        room.as_str(),
        room.as_str()
    )))
}

/// A member's client id, which is a connection id.
fn client_id(client: &str, room: &ChannelName) -> Result<u64, ApiError> {
    client.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::NotMember,
            format!("no client {client:?} in room {:?}", room.as_str()),
        )
    })
}

/// Handles a room request of a WebSocket client (other messages are
/// ignored). The answer to queue, if any: a successful `join` and `leave`
/// are answered through the hub, in order with the room's messages.
pub(crate) async fn on_ws(
    app: &AppState,
    conn: &Connection,
    who: &Principal,
    message: ClientMessage,
) -> Result<Option<ServerMessage>, ApiError> {
    let rooms = &app.rooms;
    let denied = |what: &'static str| move |e: &ApiError| app.security.denied(who, what, e);
    match message {
        ClientMessage::Join(Join {
            room,
            presence,
            from,
            reference,
        }) => {
            let room = ChannelName::new(room)?;
            may_join(who, &room).inspect_err(denied("join"))?;
            let request = JoinRequest {
                data: presence.unwrap_or(Value::Null),
                from,
                reference,
                create: who.may(Action::Moderate, room.as_str()),
            };
            rooms.join(conn, who.publisher(), room, request).await?;
            Ok(None)
        }
        ClientMessage::Leave { room, reference } => {
            let room = ChannelName::new(room)?;
            rooms.leave(conn.id(), &room, LeaveReason::Left, None, reference)?;
            Ok(None)
        }
        ClientMessage::Presence {
            room,
            after,
            limit,
            reference,
        } => {
            let room = ChannelName::new(room)?;
            who.require(Action::Presence, room.as_str())
                .inspect_err(denied("presence"))?;
            rooms.answer_presence(conn.id(), &room, after.as_deref(), limit, reference)?;
            Ok(None)
        }
        ClientMessage::UpdatePresence {
            room,
            data,
            reference,
        } => {
            let room = ChannelName::new(room)?;
            Ok(Some(ServerMessage::PresenceUpdated {
                reference,
                member: rooms.update_presence(conn.id(), &room, data)?,
                room: room.as_str().to_owned(),
            }))
        }
        ClientMessage::RemoveMember {
            room,
            client,
            reference,
        } => {
            let room = ChannelName::new(room)?;
            require_moderator(app, who, &room).inspect_err(denied("remove_member"))?;
            let id = client_id(&client, &room)?;
            rooms.leave(id, &room, LeaveReason::Removed, who.publisher(), None)?;
            Ok(Some(ServerMessage::MemberRemoved {
                reference,
                room: room.as_str().to_owned(),
                client,
            }))
        }
        _ => Ok(None),
    }
}

/// `GET /v1/rooms`: the rooms the caller may see (`presence:` on them).
pub(crate) async fn list(State(app): State<AppState>, caller: Caller) -> Json<Value> {
    let rooms: Vec<RoomInfo> = app
        .rooms
        .list()
        .into_iter()
        .filter(|r| caller.0.may(Action::Presence, &r.room))
        .collect();
    Json(json!({"rooms": rooms}))
}

/// `GET /v1/rooms/{room}`.
pub(crate) async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
) -> Result<Json<RoomInfo>, ApiError> {
    let room = ChannelName::new(room)?;
    caller.require(&app, "room", Action::Presence, room.as_str())?;
    app.rooms
        .room(&room)
        .map(Json)
        .ok_or_else(|| no_room(&room))
}

fn no_room(room: &ChannelName) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!(
            "no room {:?} (a room exists while it has members, or once it has settings)",
            room.as_str()
        ),
    )
}

/// `PUT /v1/rooms/{room}` with its settings: creates or changes it.
pub(crate) async fn put(
    State(app): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<Json<RoomInfo>, ApiError> {
    let room = ChannelName::new(room)?;
    caller.require(&app, "room", Action::Moderate, room.as_str())?;
    let settings: RoomSettings = serde_json::from_value(body)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, format!("room settings: {e}")))?;
    Ok(Json(app.rooms.put(&room, settings).await?))
}

/// `DELETE /v1/rooms/{room}`: its members are told, its settings removed.
pub(crate) async fn delete(
    State(app): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
) -> Result<StatusCode, ApiError> {
    let room = ChannelName::new(room)?;
    caller.require(&app, "room", Action::Moderate, room.as_str())?;
    if app.rooms.delete(&room).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(no_room(&room))
    }
}

/// Query parameters of `GET /v1/rooms/{room}/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct MembersPage {
    /// Members after this client id (a page's `next`).
    after: Option<String>,
    /// Most members in the page (1 to 1000, the default).
    limit: Option<usize>,
}

/// `GET /v1/rooms/{room}/members?after=&limit=`: a page of the room's
/// presence, by client id.
pub(crate) async fn members(
    State(app): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    Params(page): Params<MembersPage>,
) -> Result<Json<Value>, ApiError> {
    let room = ChannelName::new(room)?;
    caller.require(&app, "presence", Action::Presence, room.as_str())?;
    let page = app
        .rooms
        .presence(&room, page.after.as_deref(), page.limit)?;
    Ok(Json(
        json!({"room": room.as_str(), "members": page.members, "next": page.next}),
    ))
}

/// The body of `POST /v1/rooms/{room}/members`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AddMember {
    /// The connection to join (its `welcome`'s `connection`).
    connection: String,
    /// Its presence data.
    #[serde(default)]
    presence: Value,
}

/// `POST /v1/rooms/{room}/members` with `{"connection": "<id>"}`: the
/// server joins one of its WebSocket connections to the room. The
/// connection gets `joined`; the answer is `{room, client, members}`.
pub(crate) async fn add_member(
    State(app): State<AppState>,
    caller: Caller,
    Path(room): Path<String>,
    JsonBody(body): JsonBody,
) -> Result<impl IntoResponse, ApiError> {
    let room = ChannelName::new(room)?;
    caller.require(&app, "join", Action::Moderate, room.as_str())?;
    let add: AddMember = serde_json::from_value(body).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("{e}; the body is {{\"connection\": \"<id>\", \"presence\": <any JSON>}}"),
        )
    })?;
    let conn: u64 = add.connection.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::NotFound,
            format!("no connection {:?} on this server", add.connection),
        )
    })?;
    // On its own task: a client hanging up mid-request cannot leave a
    // half-made membership behind.
    let rooms = app.rooms.clone();
    let name = room.clone();
    let joined = tokio::spawn(async move {
        // The caller holds `moderate:` on the room: it may create it.
        let request = JoinRequest {
            data: add.presence,
            create: true,
            ..JoinRequest::default()
        };
        rooms.join_by_id(conn, name, request).await
    })
    .await
    .map_err(|_| ApiError::new(ErrorCode::Internal, "the join failed; see the server log"))??;
    Ok((
        StatusCode::CREATED,
        Json(json!({"room": room.as_str(), "client": conn.to_string(), "members": joined})),
    ))
}

/// `DELETE /v1/rooms/{room}/members/{client}`: a moderator removes a
/// member, which gets `left` with reason `removed`.
pub(crate) async fn remove_member(
    State(app): State<AppState>,
    caller: Caller,
    Path((room, client)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    let room = ChannelName::new(room)?;
    caller.check(
        &app,
        "remove_member",
        require_moderator(&app, &caller.0, &room),
    )?;
    let id = client_id(&client, &room)?;
    let member = app
        .rooms
        .leave(id, &room, LeaveReason::Removed, caller.0.publisher(), None)?;
    Ok(Json(json!({"room": room.as_str(), "removed": member})))
}
