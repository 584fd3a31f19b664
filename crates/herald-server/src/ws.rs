//! `GET /v1/ws`: the WebSocket protocol (docs/protocol.md).
//!
//! One task per connection runs two halves concurrently: the reader handles
//! client messages in order; the writer drains the connection's outbox —
//! everything queued at once, one flush — and pings on the heartbeat. Both
//! borrow from the task's frame, so an idle connection costs one task, its
//! socket buffers and an empty outbox.

use crate::AppState;
use crate::auth::{Credential, Principal, Who};
use crate::error::ApiError;
use crate::limits::{MessageLimiter, OpenSlot, Verdict};
use crate::security::ClientIp;
use crate::sessions::{self, Permit};
use crate::{origin, subscription};
use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use herald_core::{
    Announce, ClientInfo, Connection, End, HubError, LogLimit, Outgoing, SubscriptionSpec, Topic,
    Transport,
};
use herald_proto::{ClientMessage, CloseCode, ErrorCode, ServerMessage, Timestamp};
use serde_json::Value;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Socket read buffer: small, since idle connections dominate (client
/// messages are mostly a few hundred bytes); a larger message grows it.
const READ_BUFFER: usize = 256;
/// Bytes the socket writer gathers before writing (we flush per batch).
const WRITE_BUFFER: usize = 16 << 10;

/// Accepts the upgrade if the caller's credentials (if any), origin and
/// limits allow, and a session place is free. Without credentials and
/// without anonymous access, the client must send `auth` within
/// `auth_timeout`.
pub(crate) async fn upgrade(
    State(app): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    match admit(&app, ip, &headers).await {
        Ok(admitted) => {
            let max = app.realtime.max_message_bytes;
            upgrade
                .read_buffer_size(READ_BUFFER)
                .write_buffer_size(WRITE_BUFFER)
                // Our outbox is the queue; this only bounds one batch in flight.
                .max_write_buffer_size(WRITE_BUFFER.max(app.realtime.outbox_bytes) * 4)
                .max_message_size(max)
                .max_frame_size(max)
                // Split here, not in the session: the whole socket would
                // otherwise sit in every connection's task next to the
                // halves that replace it.
                .on_upgrade(move |socket| {
                    let (sink, stream) = socket.split();
                    session(sink, stream, app, admitted)
                })
        }
        Err(e) => e.into_response(),
    }
}

/// What the upgrade established: who (if known yet), and the places held.
struct Admitted {
    who: Option<Arc<Principal>>,
    ip: IpAddr,
    permit: Permit,
    slot: OpenSlot,
}

async fn admit(app: &AppState, ip: IpAddr, headers: &HeaderMap) -> Result<Admitted, ApiError> {
    let security = &app.security;
    let presented = security
        .auth
        .presented(headers, true)
        .await
        .inspect_err(|e| security.auth_failed(ip, e))?;
    let (who, credential) = match presented {
        Some((who, credential)) => (Some(who), credential),
        None if security.auth.allows_anonymous() => {
            (Some(security.auth.anonymous()?), Credential::Anonymous)
        }
        None => (None, Credential::Pending),
    };
    origin::check(headers, &security.allowed_origins, credential)
        .inspect_err(|e| security.auth_failed(ip, e))?;
    let slot = security.limits.connect(ip, who.as_deref())?;
    let permit = app.sessions.admit().ok_or_else(|| {
        ApiError::new(
            ErrorCode::TooManyConnections,
            "the server holds the most connections it allows (or is shutting down); retry later",
        )
    })?;
    Ok(Admitted {
        who,
        ip,
        permit,
        slot,
    })
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

async fn session(
    mut sink: SplitSink<WebSocket, Message>,
    mut stream: SplitStream<WebSocket>,
    app: AppState,
    admitted: Admitted,
) {
    let Admitted {
        who,
        ip,
        permit: _permit,
        slot,
    } = admitted;
    let conn = app.hub.connect_as(ClientInfo {
        transport: Transport::WebSocket,
        remote: Some(ip),
        connected_at: Timestamp::now(),
        user: who.as_deref().and_then(Principal::publisher),
        identified: who.is_some(),
    });
    welcome(&app, &conn, who.as_deref());
    let started = Instant::now();
    // Milliseconds since `started` when the client last sent anything.
    let last_heard = AtomicU64::new(0);
    // Milliseconds since `started` by which the client must (re)authenticate:
    // set by the reader, enforced by the writer.
    let deadline = AtomicU64::new(u64::MAX);
    let authenticated = AtomicBool::new(false);
    let clock = Clock {
        started,
        deadline: &deadline,
        authenticated: &authenticated,
    };
    let mut client = Client {
        who: None,
        ip,
        slot,
        messages: app.security.limits.messages(who.as_deref()),
        subscriptions: Vec::new(),
    };
    match who {
        Some(who) => {
            // Boxed: the personal channel's subscription is a large future
            // that would otherwise take room in every idle session's task.
            Box::pin(identified(&app, &conn, &mut client, &clock, who)).await;
        }
        None => clock.due_in(Some(app.security.auth.auth_timeout)),
    }
    let exit = {
        let reader = async {
            let presence_clock = app.rooms.clock();
            while let Some(received) = stream.next().await {
                last_heard.store(started.elapsed().as_millis() as u64, Ordering::Relaxed);
                conn.outbox().hear(presence_clock.now());
                match received {
                    // Boxed: the handling future is large and lives only while
                    // a message is handled, not in every idle connection.
                    Ok(Message::Text(text)) => {
                        match client.messages.check() {
                            Verdict::Allow => {}
                            Verdict::Refuse(wait) => {
                                let e = ApiError::rate_limited("too many messages", wait);
                                reply(&conn, &e.to_message(None, None));
                                continue;
                            }
                            Verdict::Abuse => return abuse(&app, &client),
                        }
                        if let Err(exit) =
                            Box::pin(handle(&app, &conn, &mut client, &clock, text.as_str())).await
                        {
                            return exit;
                        }
                    }
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
            let write_delay = app.realtime.write_delay;
            let mut batch = Vec::new();
            // The credentials deadline's timer: on the heap, and only while
            // there is a deadline (most connections have none), so it costs
            // idle connections a pointer.
            let mut timer: Option<(u64, Pin<Box<tokio::time::Sleep>>)> = None;
            loop {
                let due = deadline.load(Ordering::Relaxed);
                if due == u64::MAX {
                    timer = None;
                } else if timer.as_ref().is_none_or(|(armed, _)| *armed != due) {
                    let at = tokio::time::Instant::from_std(started) + Duration::from_millis(due);
                    timer = Some((due, Box::pin(tokio::time::sleep_until(at))));
                }
                tokio::select! {
                    () = conn.outbox().ready() => {
                        // Coalescing, if configured: more events may join
                        // this write (one system call for several).
                        if !write_delay.is_zero() {
                            tokio::time::sleep(write_delay).await;
                        }
                    }
                    () = expired(&mut timer) => {
                        if deadline.load(Ordering::Relaxed) != due {
                            continue;
                        }
                        let (code, reason) = if authenticated.load(Ordering::Relaxed) {
                            (CloseCode::TokenExpired, "token expired; send a fresh one with auth before it does")
                        } else {
                            (CloseCode::Unauthorized, "not authenticated in time; send auth first")
                        };
                        return Exit::Close(code, reason.into());
                    }
                    _ = heartbeat.tick() => {
                        let heard = Duration::from_millis(last_heard.load(Ordering::Relaxed));
                        if started.elapsed().saturating_sub(heard) > timeout {
                            return Exit::Close(CloseCode::HeartbeatTimeout, "no answer to pings".into());
                        }
                        let ping = sink.send(Message::Ping(Bytes::new()));
                        // Boxed, like the other rare waits here: a timeout
                        // holds a timer, which would otherwise sit in every
                        // idle connection's task.
                        if !matches!(Box::pin(tokio::time::timeout(timeout, ping)).await, Ok(Ok(()))) {
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
                // The batch's buffer goes with the write (`take`): idle
                // connections keep none.
                let write = async {
                    for item in std::mem::take(&mut batch) {
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
            let _ = Box::pin(tokio::time::timeout(Duration::from_secs(1), sink.flush())).await;
        }
        Exit::Close(code, reason) => {
            let close = CloseFrame {
                code: code.code(),
                reason: Utf8Bytes::from(reason),
            };
            // What is queued first (the errors that led here, say), unless
            // the connection is closing because it is too slow to take it.
            let mut rest = Vec::new();
            if code != CloseCode::SlowConsumer {
                let _ = conn.outbox().take(&mut rest);
            }
            let goodbye = async {
                for item in rest {
                    sink.feed(Message::Text(frame(item))).await?;
                }
                sink.send(Message::Close(Some(close))).await
            };
            let _ = Box::pin(tokio::time::timeout(Duration::from_secs(1), goodbye)).await;
        }
    }
    if let Some(who) = client.subject() {
        for id in &client.subscriptions {
            subscription_ended(&app, &conn, &who, id, "connection closed");
        }
    }
    // Dropping `conn` removes its subscriptions from the hub.
}

/// Queues the `welcome`. Not inline in [`session`]: a message built there
/// would keep its room in every idle session's task.
fn welcome(app: &AppState, conn: &Connection, who: Option<&Principal>) {
    let store = app.herald.store();
    let welcome = ServerMessage::Welcome {
        connection: conn.id().to_string(),
        epoch: store.epoch(),
        offset: store.head(),
        heartbeat_ms: app.realtime.heartbeat.as_millis() as u64,
        max_message_bytes: app.realtime.max_message_bytes,
        max_subscriptions: app.realtime.max_subscriptions,
        personal_channel: who.and_then(|w| personal_channel(app, w)),
    };
    reply(conn, &welcome);
}

/// A client that kept exceeding its message rate: audited, then closed.
fn abuse(app: &AppState, client: &Client) -> Exit {
    app.security.audit.record(
        "abuse",
        client.subject().as_deref(),
        serde_json::json!({"ip": client.ip.to_string(), "reason": "kept exceeding the message rate"}),
    );
    Exit::Close(
        CloseCode::PolicyViolation,
        "rate limit exceeded repeatedly".into(),
    )
}

/// Resolves when the timer fires; never without one.
async fn expired(timer: &mut Option<(u64, Pin<Box<tokio::time::Sleep>>)>) {
    match timer {
        Some((_, sleep)) => sleep.as_mut().await,
        None => std::future::pending().await,
    }
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

/// The session's clock for credentials: the time by which the client
/// must authenticate, or its token expires. The reader sets it, the writer
/// enforces it (both borrow it from the session task's frame).
struct Clock<'a> {
    started: Instant,
    /// Milliseconds since `started`; `u64::MAX`: none.
    deadline: &'a AtomicU64,
    /// Whether the deadline is a token's expiry (else: authenticate first).
    authenticated: &'a AtomicBool,
}

impl Clock<'_> {
    fn due_in(&self, within: Option<Duration>) {
        let at = within.map_or(u64::MAX, |d| {
            (self.started.elapsed() + d).as_millis() as u64
        });
        self.deadline.store(at, Ordering::Relaxed);
    }
}

/// Who the client is, and its per-connection limits. Owned by the reader.
struct Client {
    who: Option<Arc<Principal>>,
    ip: IpAddr,
    slot: OpenSlot,
    messages: MessageLimiter,
    /// Ids of its live subscriptions, for the audit log (kept only when
    /// subscriptions are audited).
    subscriptions: Vec<String>,
}

impl Client {
    /// The connection is now `who`; its token's expiry is the deadline.
    fn identify(&mut self, clock: &Clock<'_>, who: Arc<Principal>) {
        clock.authenticated.store(true, Ordering::Relaxed);
        clock.due_in(who.expires_in());
        self.who = Some(who);
    }

    fn subject(&self) -> Option<String> {
        self.who.as_ref().map(|w| w.subject())
    }
}

/// Handles one client message; answers go through the outbox, in order
/// with the events. `Err` ends the session.
async fn handle(
    app: &AppState,
    conn: &Connection,
    client: &mut Client,
    clock: &Clock<'_>,
    text: &str,
) -> Result<(), Exit> {
    let message = match serde_json::from_str::<ClientMessage>(text) {
        Ok(message) => message,
        Err(e) => {
            reply(conn, &invalid_message(text, &e));
            return Ok(());
        }
    };
    if let ClientMessage::Auth { token, reference } = message {
        return authenticate(app, conn, client, clock, &token, reference).await;
    }
    let Some(who) = client.who.clone() else {
        if let ClientMessage::Ping { reference } = message {
            reply(conn, &ServerMessage::Pong { reference });
        } else {
            let e = ApiError::new(
                ErrorCode::Unauthorized,
                "authenticate first: send {\"type\":\"auth\",\"token\":...}",
            );
            reply(conn, &e.to_message(None, None));
        }
        return Ok(());
    };
    let security = &app.security;
    let denied = |what: &str, e: &ApiError| security.denied(&who, what, e);
    match message {
        ClientMessage::Subscribe(request) => {
            let id = request.id.clone();
            let topic = request
                .table
                .clone()
                .map(|t| format!("table:{t}"))
                .or(request.channel.clone());
            let spec =
                match subscription::compile(request, &app.http.filter, &security.access, &who) {
                    Ok(spec) => spec,
                    Err(e) => {
                        if e.code == ErrorCode::Forbidden {
                            denied("subscribe", &e);
                        }
                        reply(conn, &e.to_message(Some(id), None));
                        return Ok(());
                    }
                };
            match conn.subscribe(spec).await {
                Ok(()) if security.audit.records_subscriptions() => {
                    security.audit.record(
                        "subscribed",
                        Some(&who.subject()),
                        serde_json::json!({"conn": conn.id(), "id": id, "topic": topic}),
                    );
                    client.subscriptions.push(id);
                }
                Ok(()) => {}
                Err(e) => reply(conn, &e.to_message(Some(id), None)),
            }
        }
        ClientMessage::Unsubscribe { id } => match conn.unsubscribe(&id).await {
            Ok(()) => {
                if let Some(at) = client.subscriptions.iter().position(|s| *s == id) {
                    client.subscriptions.swap_remove(at);
                    subscription_ended(app, conn, &who.subject(), &id, "unsubscribed");
                }
            }
            Err(e) => reply(conn, &e.to_message(Some(id), None)),
        },
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
            let result = match subscription_topic(conn, &id).await {
                Ok(topic) => match subscription::compile_update(
                    request,
                    &app.http.filter,
                    &security.access,
                    &who,
                    &topic,
                ) {
                    Ok(selection) => conn.update(&id, selection).await.map_err(ApiError::from),
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                reply(conn, &e.to_message(Some(id), None));
            }
        }
        ClientMessage::Publish {
            channel,
            data,
            reference,
        } => match crate::channels::publish_as(app, &who, Some(conn.id()), &channel, data).await {
            Ok(published) => reply(
                conn,
                &ServerMessage::Published {
                    reference,
                    offset: published.offset,
                    receivers: published.receivers,
                },
            ),
            Err(e) => reply(conn, &e.to_message(None, reference)),
        },
        ClientMessage::Broadcast(request) => {
            let reference = request.reference.clone();
            match crate::channels::broadcast_as(app, &who, Some(conn.id()), request).await {
                Ok(receivers) => reply(
                    conn,
                    &ServerMessage::BroadcastSent {
                        reference,
                        receivers,
                    },
                ),
                Err(e) => reply(conn, &e.to_message(None, reference)),
            }
        }
        room @ (ClientMessage::Join(_)
        | ClientMessage::Leave { .. }
        | ClientMessage::Presence { .. }
        | ClientMessage::UpdatePresence { .. }
        | ClientMessage::RemoveMember { .. }) => {
            let reference = room.reference().map(str::to_owned);
            match crate::rooms::on_ws(app, conn, &who, room).await {
                Ok(Some(answer)) => reply(conn, &answer),
                Ok(None) => {}
                Err(e) => reply(conn, &e.to_message(None, reference)),
            }
        }
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
            if let Err(e) = who.require_admin() {
                denied("stats", &e);
                reply(conn, &e.to_message(None, reference));
                return Ok(());
            }
            let stats =
                serde_json::to_value(crate::stats::Stats::now(app).await).unwrap_or_default();
            reply(conn, &ServerMessage::Stats { reference, stats });
        }
        ClientMessage::Auth { .. } => unreachable!("handled above"),
    }
    Ok(())
}

/// `auth`: the first credentials of a connection that had none, or a fresh
/// token for the same subject. A rejected token closes a connection that
/// is not yet authenticated (4003); one that is keeps its identity.
async fn authenticate(
    app: &AppState,
    conn: &Connection,
    client: &mut Client,
    clock: &Clock<'_>,
    token: &str,
    reference: Option<String>,
) -> Result<(), Exit> {
    let security = &app.security;
    let verified = security
        .auth
        .verify(token)
        .await
        .map_err(crate::auth::rejected)
        .inspect_err(|e| security.auth_failed(client.ip, e));
    let who = match verified {
        Ok(who) => who,
        Err(e) if client.who.is_none() => {
            return Err(Exit::Close(CloseCode::Unauthorized, close_reason(&e)));
        }
        Err(e) => {
            reply(conn, &e.to_message(None, reference));
            return Ok(());
        }
    };
    if let Some(current) = &client.who
        && current.who != who.who
        && current.who != crate::auth::Who::Anonymous
    {
        let e = ApiError::forbidden(
            "a connection keeps its identity: a fresh token must be for the same subject; reconnect to change user",
        );
        reply(conn, &e.to_message(None, reference));
        return Ok(());
    }
    let subject = who.subject();
    if let Err(e) = client.slot.identify(&who) {
        return Err(Exit::Close(CloseCode::PolicyViolation, close_reason(&e)));
    }
    let expires_at = who.expires_at;
    let who = Arc::new(who);
    client.messages = security.limits.messages(Some(&who));
    let personal_channel = identified(app, conn, client, clock, who).await;
    reply(
        conn,
        &ServerMessage::Authenticated {
            reference,
            who: subject,
            expires_at,
            personal_channel,
        },
    );
    Ok(())
}

/// A close frame's reason: at most 123 bytes, cut at a character boundary.
fn close_reason(e: &ApiError) -> String {
    let mut reason = format!("{}: {}", e.code.as_str(), e.message);
    while reason.len() > 123 {
        reason.pop();
    }
    reason
}

/// The connection is now `who`: its identity everywhere it shows, its
/// token's expiry as its deadline, and (for a user) its personal channel,
/// whose name it returns.
async fn identified(
    app: &AppState,
    conn: &Connection,
    client: &mut Client,
    clock: &Clock<'_>,
    who: Arc<Principal>,
) -> Option<String> {
    let subject = who.publisher();
    conn.identify(subject.clone());
    app.rooms.identify(conn.id(), subject);
    let mut personal = personal_channel(app, &who);
    // A fresh token for the same user keeps the subscription it has.
    let new_user = client
        .who
        .as_ref()
        .is_none_or(|before| before.who != who.who);
    if let Some(name) = personal.clone().filter(|_| new_user)
        && let Ok(topic) = Topic::channel(&name)
    {
        let mut spec = SubscriptionSpec::new(name.clone(), topic);
        spec.announce = Announce::Silent;
        spec.sees_presence = who.may(herald_auth::Action::Presence, &name);
        if let Err(e) = conn.subscribe(spec).await {
            // Its id taken by one of the client's own subscriptions, say:
            // not announced, and the client is told why.
            personal = None;
            reply(conn, &e.to_message(Some(name), None));
        }
    }
    client.identify(clock, who);
    personal
}

/// A user's personal channel, `user:<sub>`: every connection of the user
/// is subscribed to it (id `user:<sub>`). `None` for API keys and
/// anonymous clients, when turned off, or when the `sub` cannot be part of
/// a channel name.
fn personal_channel(app: &AppState, who: &Principal) -> Option<String> {
    let Who::User(sub) = &who.who else {
        return None;
    };
    let name = format!("user:{sub}");
    (app.realtime.personal_channels && Topic::channel(&name).is_ok()).then_some(name)
}

/// The topic of the connection's subscription `id`.
async fn subscription_topic(conn: &Connection, id: &str) -> Result<Topic, ApiError> {
    let info = conn
        .subscriptions()
        .await?
        .into_iter()
        .find(|s| s.id == id)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnknownSubscription,
                format!("this connection has no subscription {id:?}"),
            )
        })?;
    Topic::parse(&info.topic).map_err(ApiError::from)
}

fn subscription_ended(app: &AppState, conn: &Connection, who: &str, id: &str, reason: &str) {
    app.security.audit.record(
        "subscription_ended",
        Some(who),
        serde_json::json!({"conn": conn.id(), "id": id, "reason": reason}),
    );
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
