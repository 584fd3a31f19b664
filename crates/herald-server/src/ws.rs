//! `GET /v1/ws`: the WebSocket protocol (docs/protocol.md).
//!
//! One task per connection runs two halves concurrently: the reader handles
//! client messages in order; the writer drains the connection's outbox —
//! everything queued at once, one flush — and pings on the heartbeat. Both
//! borrow from the task's frame, so an idle connection costs one task, its
//! socket buffers and an empty outbox.

use crate::AppState;
use crate::error::ApiError;
use crate::sessions::{self, Permit};
use crate::subscription;
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use herald_core::{Connection, End, HubError, LogLimit, Outgoing};
use herald_proto::{ClientMessage, CloseCode, ErrorCode, ServerMessage};
use serde_json::Value;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Socket read buffer: small, since idle connections dominate; a large
/// message grows it only while it is read.
const READ_BUFFER: usize = 1 << 10;
/// Bytes the socket writer gathers before writing (we flush per batch).
const WRITE_BUFFER: usize = 16 << 10;

/// Accepts the upgrade if a session place is free.
pub(crate) async fn upgrade(State(app): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let Some(permit) = app.sessions.admit() else {
        return ApiError::new(
            ErrorCode::TooManyConnections,
            "the server holds the most connections it allows (or is shutting down); retry later",
        )
        .into_response();
    };
    let max = app.realtime.max_message_bytes;
    upgrade
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(WRITE_BUFFER)
        // Our outbox is the queue; this only bounds one batch in flight.
        .max_write_buffer_size(WRITE_BUFFER.max(app.realtime.outbox_bytes) * 4)
        .max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| session(socket, app, permit))
}

/// How a session ended, and so how its socket is closed.
enum Exit {
    /// The socket failed: nothing more to send.
    Gone,
    /// The client sent a close frame. The WebSocket layer has queued the
    /// answering close frame; a flush sends it, completing the handshake.
    ClosedByClient,
    /// Close with this code and reason.
    Close(CloseCode, String),
}

async fn session(socket: WebSocket, app: AppState, _permit: Permit) {
    let conn = app.hub.connect();
    let store = app.herald.store();
    let welcome = ServerMessage::Welcome {
        connection: conn.id().to_string(),
        epoch: store.epoch(),
        offset: store.head(),
        heartbeat_ms: app.realtime.heartbeat.as_millis() as u64,
        max_message_bytes: app.realtime.max_message_bytes,
        max_subscriptions: app.realtime.max_subscriptions,
    };
    reply(&conn, &welcome);
    let (mut sink, mut stream) = socket.split();
    let started = Instant::now();
    // Milliseconds since `started` when the client last sent anything.
    let last_heard = AtomicU64::new(0);
    let exit = {
        let reader = async {
            while let Some(received) = stream.next().await {
                last_heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                match received {
                    // Boxed: the handling future is large and lives only while
                    // a message is handled, not in every idle connection.
                    Ok(Message::Text(text)) => Box::pin(handle(&app, &conn, text.as_str())).await,
                    Ok(Message::Binary(_)) => {
                        let e = HubError::new(
                            ErrorCode::InvalidMessage,
                            "binary frames are not supported; send JSON text",
                        );
                        reply(&conn, &e.to_message(None, None));
                    }
                    Ok(Message::Ping(_) | Message::Pong(_)) => {}
                    Ok(Message::Close(_)) => return Exit::ClosedByClient,
                    Err(e) => return read_failure(&e),
                }
            }
            Exit::Gone
        };
        let writer = async {
            let mut closing = app.sessions.closing();
            let mut heartbeat = tokio::time::interval(app.realtime.heartbeat);
            heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            heartbeat.tick().await;
            let timeout = app.realtime.client_timeout;
            let mut batch = Vec::new();
            loop {
                tokio::select! {
                    () = conn.outbox().ready() => {}
                    _ = heartbeat.tick() => {
                        let heard = Duration::from_millis(last_heard.load(Ordering::Relaxed));
                        if started.elapsed().saturating_sub(heard) > timeout {
                            return Exit::Close(CloseCode::HeartbeatTimeout, "no answer to pings".into());
                        }
                        let ping = sink.send(Message::Ping(Bytes::new()));
                        if !matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(()))) {
                            return Exit::Gone;
                        }
                        continue;
                    }
                    () = sessions::closed(&mut closing) => {
                        return Exit::Close(CloseCode::GoingAway, "server shutting down".into());
                    }
                }
                let end = conn.outbox().take(&mut batch);
                // A client that stops reading blocks the write once its
                // socket buffers are full: give up on it after the same
                // timeout as a silent one, so it cannot hold its place.
                let write = async {
                    for item in batch.drain(..) {
                        sink.feed(Message::Text(frame(item))).await?;
                    }
                    sink.flush().await
                };
                match tokio::time::timeout(timeout, write).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => return Exit::Gone,
                    Err(_) => {
                        static STUCK: LogLimit = LogLimit::new(10);
                        if let Some(suppressed) = STUCK.allow() {
                            tracing::info!(
                                conn = conn.id(),
                                suppressed,
                                "websocket write timed out; dropping the connection"
                            );
                        }
                        return Exit::Gone;
                    }
                }
                match end {
                    None => {}
                    Some(End::SlowConsumer { resume_from }) => {
                        let reason =
                            format!(r#"{{"code":"slow_consumer","resume_from":{resume_from}}}"#);
                        return Exit::Close(CloseCode::SlowConsumer, reason);
                    }
                    Some(End::Closed) => {
                        return Exit::Close(CloseCode::Internal, "closed by the server".into());
                    }
                }
            }
        };
        tokio::pin!(reader, writer);
        tokio::select! {
            exit = &mut reader => exit,
            exit = &mut writer => exit,
        }
    };
    match exit {
        Exit::Gone => {}
        Exit::ClosedByClient => {
            let _ = tokio::time::timeout(Duration::from_secs(1), sink.flush()).await;
        }
        Exit::Close(code, reason) => {
            let close = CloseFrame {
                code: code.code(),
                reason: Utf8Bytes::from(reason),
            };
            let _ = tokio::time::timeout(
                Duration::from_secs(1),
                sink.send(Message::Close(Some(close))),
            )
            .await;
        }
    }
    // Dropping `conn` removes its subscriptions from the hub.
}

/// A read error: an oversized message closes with 1009; anything else means
/// the socket is gone.
fn read_failure(e: &axum::Error) -> Exit {
    use std::error::Error as _;
    let cause = e
        .source()
        .and_then(|s| s.downcast_ref::<tungstenite::Error>());
    if let Some(tungstenite::Error::Capacity(_)) = cause {
        Exit::Close(CloseCode::MessageTooBig, "message too big".into())
    } else {
        static LOST: LogLimit = LogLimit::new(10);
        if let Some(suppressed) = LOST.allow() {
            tracing::info!(error = %e, suppressed, "websocket connection lost");
        }
        Exit::Gone
    }
}

/// Handles one client message; answers go through the outbox, in order
/// with the events.
async fn handle(app: &AppState, conn: &Connection, text: &str) {
    let message = match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => message,
        Err(e) => {
            reply(conn, &invalid_message(text, &e));
            return;
        }
    };
    match message {
        ClientMessage::Subscribe(request) => {
            let id = request.id.clone();
            let spec = match subscription::compile(request, &app.http.filter) {
                Ok(spec) => spec,
                Err(e) => {
                    reply(conn, &HubError::from(e).to_message(Some(id), None));
                    return;
                }
            };
            if let Err(e) = conn.subscribe(spec).await {
                reply(conn, &e.to_message(Some(id), None));
            }
        }
        ClientMessage::Unsubscribe { id } => {
            if let Err(e) = conn.unsubscribe(&id).await {
                reply(conn, &e.to_message(Some(id), None));
            }
        }
        ClientMessage::Pause { id } => {
            if let Err(e) = conn.pause(&id).await {
                reply(conn, &e.to_message(Some(id), None));
            }
        }
        ClientMessage::Resume { id, skip } => {
            if let Err(e) = conn.resume(&id, skip).await {
                reply(conn, &e.to_message(Some(id), None));
            }
        }
        ClientMessage::Update(request) => {
            let id = request.id.clone();
            let result = match subscription::compile_update(request, &app.http.filter) {
                Ok(selection) => conn.update(&id, selection).await,
                Err(e) => Err(e.into()),
            };
            if let Err(e) = result {
                reply(conn, &e.to_message(Some(id), None));
            }
        }
        ClientMessage::Publish {
            channel,
            data,
            reference,
        } => match app.herald.publish(&channel, data).await {
            Ok(offset) => {
                let receivers = app.hub.receivers(offset).await;
                reply(
                    conn,
                    &ServerMessage::Published {
                        reference,
                        offset,
                        receivers,
                    },
                );
            }
            Err(e) => {
                let e = HubError::from(e);
                reply(conn, &e.to_message(None, reference));
            }
        },
        ClientMessage::Ping { reference } => reply(conn, &ServerMessage::Pong { reference }),
        ClientMessage::ListSubscriptions { reference } => match conn.subscriptions().await {
            Ok(subscriptions) => reply(
                conn,
                &ServerMessage::Subscriptions {
                    reference,
                    subscriptions,
                },
            ),
            Err(e) => reply(conn, &e.to_message(None, reference)),
        },
        ClientMessage::Stats { reference } => {
            let stats =
                serde_json::to_value(crate::stats::Stats::now(app).await).unwrap_or_default();
            reply(conn, &ServerMessage::Stats { reference, stats });
        }
        // Authentication comes with the security work; until then every
        // connection is anonymous and a token changes nothing.
        ClientMessage::Auth { .. } => {}
    }
}

/// Queues a server message. Control messages may exceed the outbox limit a
/// little; a client that lets them pile up is a slow consumer, told to
/// resume after what has been routed to it.
fn reply(conn: &Connection, message: &ServerMessage) {
    let item = Outgoing::message(message, None);
    let _ = conn.outbox().push_control(item, conn.routed());
}

/// The `error` for a message that does not parse, echoing its `ref` when
/// it has one.
fn invalid_message(text: &str, e: &serde_json::Error) -> ServerMessage {
    let parsed = serde_json::from_str::<Value>(text).ok();
    let reference = parsed
        .as_ref()
        .and_then(|v| v.get("ref"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let message = match &parsed {
        None => format!("not JSON: {e}"),
        Some(v) if !v.is_object() => "a message is a JSON object with a `type`".to_owned(),
        Some(_) => format!("{e}; see docs/protocol.md"),
    };
    HubError::new(ErrorCode::InvalidMessage, message).to_message(None, reference)
}

/// The text of one WebSocket message: event frames are built (once, and
/// shared) by the hub.
fn frame(item: Outgoing) -> Utf8Bytes {
    let bytes = match item {
        Outgoing::Message { json, .. } => json,
        Outgoing::Event { frame, .. } => frame,
    };
    // serde_json output and frames built from it: UTF-8 by construction.
    Utf8Bytes::try_from(bytes).unwrap_or_else(|_| Utf8Bytes::from_static("{}"))
}
