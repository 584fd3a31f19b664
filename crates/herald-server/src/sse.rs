//! Server-Sent Events: `GET /v1/sse` (one subscription per stream, the same
//! options as a WebSocket `subscribe`) and the shorthand
//! `GET /v1/tables/{table}/events?field=value...` (equality filters).
//!
//! Framing: every event's `id:` is its resume token `epoch:offset`, so a
//! browser's automatic reconnect sends `Last-Event-ID` and resumes exactly
//! after it. Table changes and messages are unnamed events (`onmessage`);
//! `snapshot`, `subscribed`, `lagged` and `error` are named. Payloads are
//! compact JSON, which never contains a raw line break, so no data can
//! inject an SSE field. A comment line every heartbeat keeps proxies open.

use crate::AppState;
use crate::audit::Audit;
use crate::auth::{Credential, Principal};
use crate::error::ApiError;
use crate::extract::{Params, TablePath};
use crate::limits::OpenSlot;
use crate::security::Caller;
use crate::security::ClientIp;
use crate::sessions::{self, Permit};
use crate::{origin, query, subscription};
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{BufMut, Bytes, BytesMut};
use herald_core::{ClientInfo, Connection, End, Outgoing, Transport};
use herald_proto::{Epoch, ErrorCode, LagPolicy, Op, ResumeToken, StartFrom, Subscribe, Timestamp};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The subscription id SSE streams use in `subscribed`/`snapshot` messages.
const SSE_ID: &str = "sse";

/// Query parameters of `GET /v1/sse`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SseParams {
    table: Option<String>,
    channel: Option<String>,
    /// Comma-separated operations.
    ops: Option<String>,
    filter: Option<String>,
    #[serde(rename = "where")]
    where_clause: Option<String>,
    params: Option<String>,
    /// Comma-separated field paths.
    changed: Option<String>,
    /// `now`, an offset, or a resume token (`Last-Event-ID` wins).
    from: Option<String>,
    /// Start at the first event at or after this time (unix ms).
    since: Option<u64>,
    snapshot: Option<bool>,
    on_lag: Option<LagPolicy>,
    /// A single-use ticket from `POST /v1/sse/tickets`.
    ticket: Option<String>,
}

/// `POST /v1/sse/tickets`: a single-use ticket for `?ticket=`, for browsers
/// whose `EventSource` cannot send an `Authorization` header.
pub(crate) async fn ticket(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<axum::Json<Value>, ApiError> {
    let (ticket, ttl) = app.security.tickets.issue(caller.0).ok_or_else(|| {
        ApiError::rate_limited("too many outstanding tickets", app.security.tickets.ttl())
    })?;
    Ok(axum::Json(
        serde_json::json!({"ticket": ticket, "expires_in_ms": ttl.as_millis() as u64}),
    ))
}

/// `GET /v1/sse`.
pub(crate) async fn subscribe(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    Params(params): Params<SseParams>,
) -> Result<Response, ApiError> {
    let filter = params
        .filter
        .as_deref()
        .map(query::parse_filter)
        .transpose()?;
    let sql_params = params
        .params
        .as_deref()
        .map(query::parse_params)
        .transpose()?;
    let request = Subscribe {
        id: SSE_ID.to_owned(),
        table: params.table,
        channel: params.channel,
        ops: params.ops.as_deref().map(parse_ops).transpose()?,
        filter,
        where_clause: params.where_clause,
        params: sql_params,
        changed: params
            .changed
            .map(|c| c.split(',').map(str::to_owned).collect()),
        from: start(params.from.as_deref(), params.since)?,
        snapshot: params.snapshot.unwrap_or(false),
        on_lag: params.on_lag,
    };
    stream(app, ip, &headers, params.ticket.as_deref(), request).await
}

/// Options of the shorthand; every other parameter is a field equality.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ShorthandOptions {
    ops: Option<String>,
    from: Option<String>,
    since: Option<u64>,
    snapshot: Option<bool>,
    ticket: Option<String>,
}

/// Options of `/v1/sse` the shorthand does not take: refused rather than
/// taken for field names, which would silently match nothing.
const SSE_ONLY: [&str; 7] = [
    "table", "channel", "filter", "where", "params", "changed", "on_lag",
];

/// `GET /v1/tables/{table}/events?field=value...`: each parameter other than
/// `ops`, `from`, `since`, `snapshot` and `ticket` is an equality on a (dotted) field;
/// a field given several times matches any of its values. A value that reads
/// as a JSON number, boolean or null also matches that typed value: `?n=3`
/// matches `3` and `"3"`.
pub(crate) async fn table_shorthand(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    TablePath(table): TablePath,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, ApiError> {
    let mut fields: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    let mut options = Vec::new();
    for (key, value) in query {
        if matches!(
            key.as_str(),
            "ops" | "from" | "since" | "snapshot" | "ticket"
        ) {
            options.push((key, value));
        } else if SSE_ONLY.contains(&key.as_str()) {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                format!(
                    "`{key}` is an option of /v1/sse; here every parameter but ops, from, \
                     since, snapshot and ticket is a field equality"
                ),
            ));
        } else {
            let values = fields.entry(key).or_default();
            if let Some(typed) = serde_json::from_str::<Value>(&value)
                .ok()
                .filter(|v| v.is_number() || v.is_boolean() || v.is_null())
            {
                values.push(typed);
            }
            values.push(Value::String(value));
        }
    }
    let options: ShorthandOptions =
        serde_urlencoded::from_str(&serde_urlencoded::to_string(&options).unwrap_or_default())
            .map_err(|e| {
                ApiError::new(ErrorCode::InvalidParameter, format!("query string: {e}"))
            })?;
    let filter: serde_json::Map<String, Value> = fields
        .into_iter()
        .map(|(field, mut values)| {
            let condition = match values.len() {
                1 => values.remove(0),
                _ => serde_json::json!({ "$in": values }),
            };
            (field, condition)
        })
        .collect();
    let request = Subscribe {
        id: SSE_ID.to_owned(),
        table: Some(table.as_str().to_owned()),
        ops: options.ops.as_deref().map(parse_ops).transpose()?,
        filter: (!filter.is_empty()).then_some(Value::Object(filter)),
        from: start(options.from.as_deref(), options.since)?,
        snapshot: options.snapshot.unwrap_or(false),
        ..Subscribe::default()
    };
    stream(app, ip, &headers, options.ticket.as_deref(), request).await
}

fn parse_ops(text: &str) -> Result<Vec<Op>, ApiError> {
    text.split(',')
        .map(|op| {
            serde_json::from_value(Value::String(op.trim().to_owned())).map_err(|_| {
                ApiError::new(
                    ErrorCode::InvalidParameter,
                    format!("unknown op {op:?}: ops are insert, update, delete, publish"),
                )
            })
        })
        .collect()
}

fn start(from: Option<&str>, since: Option<u64>) -> Result<Option<StartFrom>, ApiError> {
    let from = match (from, since) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidParameter,
                "give from or since, not both",
            ));
        }
        (None, Some(ts)) => return Ok(Some(StartFrom::Time(herald_proto::Timestamp(ts)))),
        (None, None) => return Ok(None),
        (Some(from), None) => from,
    };
    let text = match from.parse::<u64>() {
        Ok(offset) => Value::from(offset),
        Err(_) => Value::String(from.to_owned()),
    };
    serde_json::from_value(text)
        .map(Some)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, e.to_string()))
}

/// Who opens an SSE stream: a ticket's holder, or the request's
/// credentials (header or cookie), or the anonymous caller; then the origin
/// check.
async fn caller(
    app: &AppState,
    ip: IpAddr,
    headers: &HeaderMap,
    ticket: Option<&str>,
) -> Result<Arc<Principal>, ApiError> {
    let security = &app.security;
    let (who, credential) = match ticket {
        Some(ticket) => {
            let who = security.tickets.redeem(ticket).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "unknown, used or expired ticket; get a new one from POST /v1/sse/tickets",
                )
            });
            (
                who.inspect_err(|e| security.auth_failed(ip, e))?,
                Credential::Ticket,
            )
        }
        None => security.authenticate(headers, ip, true).await?,
    };
    origin::check(headers, &security.allowed_origins, credential)
        .inspect_err(|e| security.auth_failed(ip, e))?;
    Ok(who)
}

/// Subscribes and streams. `Last-Event-ID` (a resume token) replaces the
/// start position and skips the snapshot: the client already has it.
async fn stream(
    app: AppState,
    ip: IpAddr,
    headers: &HeaderMap,
    ticket: Option<&str>,
    mut request: Subscribe,
) -> Result<Response, ApiError> {
    let who = caller(&app, ip, headers, ticket).await?;
    if let Some(last) = headers.get("last-event-id") {
        let token: ResumeToken =
            last.to_str()
                .ok()
                .and_then(|t| t.parse().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidParameter,
                        "Last-Event-ID must be a resume token <epoch>:<offset>",
                    )
                })?;
        request.from = Some(StartFrom::Token(token));
        request.snapshot = false;
    }
    let Some(permit) = app.sessions.admit() else {
        return Err(ApiError::new(
            ErrorCode::TooManyConnections,
            "the server holds the most connections it allows (or is shutting down); retry later",
        ));
    };
    let slot = app.security.limits.connect(ip, Some(&who))?;
    let topic = request
        .table
        .clone()
        .map(|t| format!("table:{t}"))
        .or(request.channel.clone());
    let spec = subscription::compile(request, &app.http.filter, &app.security.access, &who)
        .inspect_err(|e| {
            if e.code == ErrorCode::Forbidden {
                app.security.denied(&who, "subscribe", e);
            }
        })?;
    let conn = app.hub.connect_as(ClientInfo {
        transport: Transport::Sse,
        remote: Some(ip),
        connected_at: Timestamp::now(),
        user: who.publisher(),
        identified: true,
    });
    conn.subscribe(spec).await?;
    let audited = app
        .security
        .audit
        .records_subscriptions()
        .then(|| Audited::new(&app.security.audit, &who.subject(), conn.id(), topic));
    let epoch = app.herald.store().epoch();
    let expires_in = who.expires_in();
    let held = Held {
        _permit: permit,
        _slot: slot,
        _audited: audited,
    };
    let body = events(app, conn, epoch, held, expires_in);
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("text/event-stream")),
            (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// What a stream holds while it lasts: its session place, its place in the
/// connection limits, and the audit record of its end.
struct Held {
    _permit: Permit,
    _slot: OpenSlot,
    _audited: Option<Audited>,
}

/// Records the subscription in the audit log, and its end when dropped.
struct Audited {
    audit: Audit,
    who: String,
    conn: u64,
}

impl Audited {
    fn new(audit: &Audit, who: &str, conn: u64, topic: Option<String>) -> Audited {
        audit.record(
            "subscribed",
            Some(who),
            serde_json::json!({"conn": conn, "id": SSE_ID, "topic": topic}),
        );
        Audited {
            audit: audit.clone(),
            who: who.to_owned(),
            conn,
        }
    }
}

impl Drop for Audited {
    fn drop(&mut self) {
        self.audit.record(
            "subscription_ended",
            Some(&self.who),
            serde_json::json!({"conn": self.conn, "id": SSE_ID, "reason": "stream closed"}),
        );
    }
}

fn events(
    app: AppState,
    conn: Connection,
    epoch: Epoch,
    held: Held,
    expires_in: Option<std::time::Duration>,
) -> impl futures_util::Stream<Item = Result<Bytes, std::convert::Infallible>> {
    async_stream::stream! {
        let _held = held;
        let mut closing = app.sessions.closing();
        let mut heartbeat = tokio::time::interval(app.realtime.heartbeat);
        heartbeat.tick().await;
        let expiry = async {
            match expires_in {
                Some(after) => tokio::time::sleep(after).await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(expiry);
        let mut batch = Vec::new();
        loop {
            tokio::select! {
                () = conn.outbox().ready() => {}
                () = &mut expiry => {
                    let error = ApiError::new(
                        ErrorCode::TokenExpired,
                        "the token expired; reconnect with a fresh one (Last-Event-ID resumes)",
                    )
                    .to_message(Some(SSE_ID.to_owned()), None);
                    let mut out = BytesMut::new();
                    write_item(&mut out, epoch, &Outgoing::message(&error, None));
                    yield Ok(out.freeze());
                    return;
                }
                _ = heartbeat.tick() => {
                    yield Ok(Bytes::from_static(b": ping\n\n"));
                    continue;
                }
                () = sessions::closed(&mut closing) => return,
            }
            let end = conn.outbox().take(&mut batch);
            let mut out = BytesMut::new();
            for item in std::mem::take(&mut batch) {
                write_item(&mut out, epoch, &item);
            }
            if let Some(end) = end {
                let (code, message, resume_from) = match end {
                    End::SlowConsumer { resume_from } => (
                        ErrorCode::SlowConsumer,
                        "the stream fell too far behind; reconnect to resume",
                        Some(resume_from),
                    ),
                    End::Closed => (ErrorCode::Internal, "closed by the server", None),
                };
                let error = ApiError::new(code, message).to_message(Some(SSE_ID.to_owned()), None);
                write_item(&mut out, epoch, &Outgoing::message(&error, resume_from));
                yield Ok(out.freeze());
                return;
            }
            if !out.is_empty() {
                yield Ok(out.freeze());
            }
        }
    }
}

/// Appends one SSE event. An event's data is its envelope (the hub's
/// WebSocket frame without `type` and `subs`), written from the shared frame.
fn write_item(out: &mut BytesMut, epoch: Epoch, item: &Outgoing) {
    let (kind, position) = match item {
        Outgoing::Event { offset, .. } => (None, Some(*offset)),
        Outgoing::Message { kind, position, .. } => (Some(*kind), *position),
    };
    if let Some(kind) = kind {
        out.put_slice(b"event: ");
        out.put_slice(kind.as_bytes());
        out.put_u8(b'\n');
    }
    if let Some(offset) = position {
        out.put_slice(format!("id: {}\n", ResumeToken { epoch, offset }).as_bytes());
    }
    out.put_slice(b"data: ");
    match item {
        Outgoing::Event { .. } => {
            out.put_u8(b'{');
            out.put_slice(item.envelope_fields().unwrap_or_default());
        }
        Outgoing::Message { json, .. } => out.put_slice(json),
    }
    out.put_slice(b"\n\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::Offset;

    #[test]
    fn events_are_framed_with_their_token_and_no_payload_breaks_a_line() {
        let mut out = BytesMut::new();
        let json =
            serde_json::to_vec(&serde_json::json!({"text": "a\n\ndata: evil\r\nid: 1"})).unwrap();
        write_item(
            &mut out,
            Epoch(1),
            &Outgoing::event(br#"["sse"]"#, Offset(42), &json),
        );
        let text = std::str::from_utf8(&out).unwrap();
        assert!(text.starts_with("id: 0000000000000001:42\ndata: {\"text\""));
        assert!(text.ends_with("}\n\n"));
        assert_eq!(text.matches('\n').count(), 3, "{text}");
        assert!(!text.contains('\r'));
    }
}
