//! `GET /v1/connections[/{id}]` (admin): who is connected, how, since when,
//! in which rooms and with which subscriptions.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Params;
use crate::security::Caller;
use axum::Json;
use axum::extract::{Path, State};
use herald_core::ClientDetails;
use herald_proto::{ErrorCode, SubscriptionInfo};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Connections per page by default, and at most.
const PAGE: usize = 100;
const MAX_PAGE: usize = 1000;

/// One connection as listed.
#[derive(Debug, Serialize)]
struct Connection {
    /// Its id (its `welcome`'s `connection`; its client id in rooms).
    id: String,
    #[serde(flatten)]
    info: herald_core::ClientInfo,
    rooms: Vec<String>,
    subscriptions: Vec<SubscriptionInfo>,
}

fn describe(app: &AppState, details: ClientDetails) -> Connection {
    Connection {
        id: details.id.to_string(),
        rooms: app.rooms.rooms_of(details.id),
        info: details.info,
        subscriptions: details.subscriptions,
    }
}

/// Query parameters of `GET /v1/connections`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Page {
    /// Connections with ids above this one (a `next_after`).
    after: Option<String>,
    limit: Option<usize>,
}

/// `GET /v1/connections?after=&limit=`: connections by id, a page at a time.
pub(crate) async fn list(
    State(app): State<AppState>,
    caller: Caller,
    Params(page): Params<Page>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin(&app, "list connections")?;
    let limit = page.limit.unwrap_or(PAGE);
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::new(
            ErrorCode::InvalidParameter,
            format!("`limit` is 1 to {MAX_PAGE}"),
        ));
    }
    let after = match page.after.as_deref() {
        None => 0,
        Some(id) => id.parse().map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidParameter,
                "`after` is a connection id (a `next_after`)",
            )
        })?,
    };
    let all = app.hub.clients().await;
    let total = all.len();
    let mut chosen: Vec<ClientDetails> = all.into_iter().filter(|c| c.id > after).collect();
    let more = chosen.len() > limit;
    chosen.truncate(limit);
    let next = more
        .then(|| chosen.last().map(|c| c.id.to_string()))
        .flatten();
    let connections: Vec<Connection> = chosen.into_iter().map(|c| describe(&app, c)).collect();
    Ok(Json(json!({
        "connections": connections,
        "total": total,
        "next_after": next,
    })))
}

/// `GET /v1/connections/{id}`.
pub(crate) async fn get(
    State(app): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    caller.require_admin(&app, "see a connection")?;
    let missing = || ApiError::new(ErrorCode::NotFound, format!("no connection {id:?}"));
    let conn: u64 = id.parse().map_err(|_| missing())?;
    let details = app.hub.client(conn).await.ok_or_else(missing)?;
    Ok(Json(json!(describe(&app, details))))
}
