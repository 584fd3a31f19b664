//! The connection task: it owns the socket, reconnects, and routes every
//! server message to the request or subscription it belongs to.
//!
//! One task per [`Client`](crate::Client). It `select!`s over the command
//! queue (from the handles), the socket, and the silence deadline. It never
//! waits on the application: subscription items are handed over with
//! `try_send` (see [`SubTable`]), so a slow reader cannot stall the socket,
//! other subscriptions or the pongs the server's heartbeat expects.
//!
//! When the connection is lost (close frame, I/O error, or no frame at all
//! for two and a half heartbeats) the task waits a jittered backoff, opens a
//! new connection, re-sends every subscription from its last position, and
//! sends the requests made in the meantime. Only [`Command::Close`], or every
//! handle being dropped, ends it.

use crate::client::{ConnectionState, ConnectionStatus};
use crate::config::ClientConfig;
use crate::connect::{self, ServerInfo, Socket};
use crate::error::ClientError;
use crate::requests::{Reply, RequestTable};
use crate::subs::{SubId, SubTable, SubscribeAnswer};
use crate::subscription::Delivery;
use futures_util::{SinkExt, StreamExt};
use herald_proto::{ClientMessage, CloseCode, ErrorCode, ServerMessage, Subscribe};
use std::collections::HashMap;
use std::fmt;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message, protocol::CloseFrame};

/// What a handle asks of the connection task.
pub(crate) enum Command {
    /// Start a subscription (sent now, or on the next connection).
    Subscribe {
        id: SubId,
        request: Subscribe,
        items: mpsc::Sender<Delivery>,
        answer: SubscribeAnswer,
    },
    /// Send a request that is answered by `ref`.
    Request {
        message: ClientMessage,
        reply: Reply,
    },
    /// End a subscription; `reply` hears when the server confirmed.
    Unsubscribe {
        id: String,
        reply: Option<UnsubscribeReply>,
    },
    /// Close the connection for good; `reply` hears when it is done.
    Close { reply: oneshot::Sender<()> },
}

/// Where `unsubscribe` hears the server's confirmation.
pub(crate) type UnsubscribeReply = oneshot::Sender<Result<(), ClientError>>;

/// Who asked the task to stop: a `close` call, or nobody (every handle was
/// dropped).
type Stop = Option<oneshot::Sender<()>>;

/// How long a clean close waits for the server's close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Why a connection ended, for the log.
enum Lost {
    Closed(Option<CloseFrame>),
    Failed(tungstenite::Error),
    Ended,
    Silent(Duration),
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Closed(None) => f.write_str("server closed the connection"),
            Lost::Closed(Some(frame)) => {
                let code = u16::from(frame.code);
                let meaning = match code {
                    c if c == CloseCode::GoingAway.code() => " (server going away)",
                    c if c == CloseCode::MessageTooBig.code() => " (message too big)",
                    c if c == CloseCode::SlowConsumer.code() => " (slow consumer)",
                    c if c == CloseCode::HeartbeatTimeout.code() => " (heartbeat timeout)",
                    _ => "",
                };
                write!(
                    f,
                    "server closed the connection: {code}{meaning} {}",
                    frame.reason
                )
            }
            Lost::Failed(e) => write!(f, "connection failed: {e}"),
            Lost::Ended => f.write_str("connection ended"),
            Lost::Silent(limit) => write!(f, "server silent for {limit:?}"),
        }
    }
}

/// The state of the connection task.
pub(crate) struct Session {
    url: String,
    config: ClientConfig,
    commands: mpsc::Receiver<Command>,
    status: watch::Sender<ConnectionStatus>,
    subs: SubTable,
    requests: RequestTable,
    /// `unsubscribe` calls waiting for `unsubscribed`, by subscription id.
    unsubscribing: HashMap<String, UnsubscribeReply>,
    /// `unsubscribe` messages due on the current connection.
    outbox: Vec<ClientMessage>,
    /// Connections served so far; every one after the first is a reconnection.
    connections: u64,
}

impl Session {
    pub(crate) fn new(
        url: String,
        config: ClientConfig,
        commands: mpsc::Receiver<Command>,
        status: watch::Sender<ConnectionStatus>,
    ) -> Session {
        Session {
            url,
            config,
            commands,
            status,
            subs: SubTable::default(),
            requests: RequestTable::default(),
            unsubscribing: HashMap::new(),
            outbox: Vec::new(),
            connections: 0,
        }
    }

    /// Serves `socket`, then reconnects whenever the connection is lost,
    /// until the client is closed.
    pub(crate) async fn run(mut self, socket: Socket, info: ServerInfo) {
        let mut connection = Some((socket, info));
        let stop = loop {
            let (socket, info) = match connection.take() {
                Some(open) => open,
                None => match self.reconnect().await {
                    Ok(open) => open,
                    Err(stop) => break stop,
                },
            };
            match self.serve(socket, info).await {
                Ok(lost) => {
                    tracing::warn!(url = %self.url, "{lost}; reconnecting");
                    self.connection_lost();
                }
                Err(stop) => break stop,
            }
        };
        self.shut_down(stop);
    }

    /// Waits a backoff delay and tries to connect, again and again, while
    /// taking commands (which wait for the next connection).
    async fn reconnect(&mut self) -> Result<(Socket, ServerInfo), Stop> {
        self.status
            .send_modify(|s| s.state = ConnectionState::Reconnecting);
        let mut attempt = 0u32;
        loop {
            let delay = tokio::time::sleep(self.config.backoff.delay(attempt));
            tokio::pin!(delay);
            loop {
                tokio::select! {
                    () = &mut delay => break,
                    command = self.commands.recv() => self.offline(command)?,
                }
            }
            attempt = attempt.saturating_add(1);
            let (url, config) = (self.url.clone(), self.config.clone());
            let open = async move { connect::open(&url, &config).await };
            tokio::pin!(open);
            let opened = loop {
                tokio::select! {
                    opened = &mut open => break opened,
                    command = self.commands.recv() => self.offline(command)?,
                }
            };
            match opened {
                Ok(open) => return Ok(open),
                Err(error) => tracing::warn!(url = %self.url, attempt, %error, "reconnect failed"),
            }
        }
    }

    /// Takes a command while there is no connection.
    fn offline(&mut self, command: Option<Command>) -> Result<(), Stop> {
        match command {
            None => Err(None),
            Some(Command::Close { reply }) => Err(Some(reply)),
            Some(command) => {
                self.handle(command);
                self.outbox.clear();
                Ok(())
            }
        }
    }

    /// Runs one connection until it is lost (`Ok`) or the client stops (`Err`).
    async fn serve(&mut self, mut socket: Socket, info: ServerInfo) -> Result<Lost, Stop> {
        tracing::debug!(connection = %info.connection, epoch = %info.epoch, "connected");
        self.connections += 1;
        let reconnects = self.connections - 1;
        self.status.send_modify(|s| {
            s.state = ConnectionState::Connected;
            s.reconnects = reconnects;
            s.server = info.clone();
        });
        let silence_limit = info.silence_limit();
        let silence = tokio::time::sleep_until(deadline(silence_limit));
        tokio::pin!(silence);
        loop {
            if let Err(e) = self.flush(&mut socket, &info).await {
                return Ok(Lost::Failed(e));
            }
            tokio::select! {
                command = self.commands.recv() => match command {
                    None => return Err(close(socket, None).await),
                    Some(Command::Close { reply }) => return Err(close(socket, Some(reply)).await),
                    Some(command) => self.handle(command),
                },
                frame = socket.next() => {
                    if silence_limit.is_some() {
                        silence.as_mut().reset(deadline(silence_limit));
                    }
                    match frame {
                        Some(Ok(Message::Text(text))) => self.on_message(&text, &info),
                        // Pongs to the server's pings are queued by
                        // tungstenite and written by the next read.
                        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => {}
                        Some(Ok(Message::Binary(_))) => {
                            tracing::warn!("ignoring a binary frame from the server");
                        }
                        Some(Ok(Message::Close(frame))) => return Ok(Lost::Closed(frame)),
                        Some(Err(e)) => return Ok(Lost::Failed(e)),
                        None => return Ok(Lost::Ended),
                    }
                }
                () = &mut silence, if silence_limit.is_some() => {
                    return Ok(Lost::Silent(silence_limit.unwrap_or_default()));
                }
            }
        }
    }

    /// Takes a command from a handle; what it sends waits for [`Session::flush`].
    fn handle(&mut self, command: Command) {
        match command {
            Command::Subscribe {
                id,
                request,
                items,
                answer,
            } => self.subs.add(id, request, items, answer),
            Command::Request { message, reply } => self.requests.add(message, reply),
            Command::Unsubscribe { id, reply } => {
                let known = id.parse::<SubId>().is_ok_and(|sub| self.subs.remove(sub));
                if known {
                    self.outbox
                        .push(ClientMessage::Unsubscribe { id: id.clone() });
                    if let Some(reply) = reply {
                        self.unsubscribing.insert(id, reply);
                    }
                } else if let Some(reply) = reply {
                    let _ = reply.send(Ok(()));
                }
            }
            Command::Close { .. } => unreachable!("close is handled by the loops"),
        }
    }

    /// Writes everything due on this connection: unsubscribes, then
    /// subscriptions and requests not yet sent on it.
    async fn flush(
        &mut self,
        socket: &mut Socket,
        info: &ServerInfo,
    ) -> Result<(), tungstenite::Error> {
        let limit = info.max_message_bytes;
        let mut texts: Vec<String> = Vec::new();
        for message in self.outbox.drain(..) {
            texts.extend(encode(&message, 0).ok());
        }
        for (id, message) in self.subs.take_unsent() {
            match encode(&message, limit) {
                Ok(text) => texts.push(text),
                Err(error) => self.subs.fail(id, error),
            }
        }
        for (key, message) in self.requests.take_unsent() {
            match encode(&message, limit) {
                Ok(text) => texts.push(text),
                Err(error) => self.requests.fail(key, error),
            }
        }
        if texts.is_empty() {
            return Ok(());
        }
        for text in texts {
            socket.feed(Message::text(text)).await?;
        }
        socket.flush().await
    }

    /// Routes one server message.
    fn on_message(&mut self, text: &str, info: &ServerInfo) {
        let message = match serde_json::from_str::<ServerMessage>(text) {
            Ok(message) => message,
            Err(error) => {
                tracing::warn!(%error, "ignoring an unreadable server message");
                return;
            }
        };
        let epoch = info.epoch;
        let gone = match message {
            ServerMessage::Event { subs, event } => self.subs.on_event(&subs, event),
            ServerMessage::Subscribed { id, offset } => self.subs.on_subscribed(&id, offset, epoch),
            ServerMessage::Snapshot {
                id,
                docs,
                chunk,
                chunks,
                offset,
            } => self
                .subs
                .on_snapshot(&id, docs, chunk, chunks, offset, epoch),
            ServerMessage::Lagged {
                id,
                resume_from,
                until,
            } => self.subs.on_lagged(&id, resume_from, until, epoch),
            ServerMessage::Unsubscribed { id } => {
                self.subs.on_unsubscribed(&id);
                if let Some(reply) = self.unsubscribing.remove(&id) {
                    let _ = reply.send(Ok(()));
                }
                Vec::new()
            }
            // Answers to pause, resume and update, which this client does not
            // send (yet).
            ServerMessage::Paused { .. }
            | ServerMessage::Resumed { .. }
            | ServerMessage::Updated { .. }
            | ServerMessage::Stats { .. }
            | ServerMessage::Authenticated { .. } => Vec::new(),
            // Rooms and live-only deliveries, which this client does not
            // ask for (yet).
            ServerMessage::Message { .. }
            | ServerMessage::Broadcast { .. }
            | ServerMessage::MemberJoined { .. }
            | ServerMessage::MemberLeft { .. }
            | ServerMessage::MemberUpdated { .. } => Vec::new(),
            ServerMessage::Published { ref reference, .. }
            | ServerMessage::Pong { ref reference }
            | ServerMessage::Subscriptions { ref reference, .. }
            | ServerMessage::Joined { ref reference, .. }
            | ServerMessage::Left { ref reference, .. }
            | ServerMessage::Presence { ref reference, .. }
            | ServerMessage::PresenceUpdated { ref reference, .. }
            | ServerMessage::BroadcastSent { ref reference, .. }
            | ServerMessage::MemberRemoved { ref reference, .. } => {
                let reference = reference.clone();
                if !self.requests.answer(reference.as_deref(), Ok(message)) {
                    tracing::debug!(?reference, "answer to no pending request");
                }
                Vec::new()
            }
            ServerMessage::Error {
                reference,
                id,
                code,
                message,
                earliest,
                ..
            } => {
                self.on_error(reference, id, code, message, earliest);
                Vec::new()
            }
            ServerMessage::Welcome { .. } => {
                tracing::warn!("ignoring a second welcome");
                Vec::new()
            }
        };
        for id in gone {
            self.outbox
                .push(ClientMessage::Unsubscribe { id: id.to_string() });
        }
    }

    fn on_error(
        &mut self,
        reference: Option<String>,
        id: Option<String>,
        code: ErrorCode,
        message: String,
        earliest: Option<herald_proto::Offset>,
    ) {
        if reference.is_some() {
            let error = ClientError::Server {
                code,
                message,
                earliest,
            };
            if !self.requests.answer(reference.as_deref(), Err(error)) {
                tracing::debug!(?reference, "error for no pending request");
            }
        } else if let Some(id) = id {
            if self.subs.on_error(&id, code, message.clone(), earliest) {
                return;
            }
            if let Some(reply) = self.unsubscribing.remove(&id) {
                // Already gone on the server: that is what was asked.
                let result = if code == ErrorCode::UnknownSubscription {
                    Ok(())
                } else {
                    Err(ClientError::Server {
                        code,
                        message,
                        earliest,
                    })
                };
                let _ = reply.send(result);
            }
        } else {
            tracing::warn!(code = code.as_str(), %message, "server reported an error");
        }
    }

    /// The connection is gone: what was sent on it is settled or re-queued.
    fn connection_lost(&mut self) {
        self.status
            .send_modify(|s| s.state = ConnectionState::Reconnecting);
        self.outbox.clear();
        self.subs.connection_lost();
        self.requests.connection_lost();
        // The server forgot every subscription with the connection.
        for (_, reply) in self.unsubscribing.drain() {
            let _ = reply.send(Ok(()));
        }
    }

    /// Ends everything: pending calls fail with `Closed`, streams end.
    fn shut_down(mut self, stop: Stop) {
        tracing::debug!(url = %self.url, "client closed");
        self.status
            .send_modify(|s| s.state = ConnectionState::Closed);
        self.subs.close_all();
        self.requests.close_all();
        for (_, reply) in self.unsubscribing.drain() {
            let _ = reply.send(Ok(()));
        }
        self.commands.close();
        while let Ok(command) = self.commands.try_recv() {
            match command {
                Command::Subscribe { answer, .. } => {
                    let _ = answer.send(Err(ClientError::Closed));
                }
                Command::Request { reply, .. } => {
                    let _ = reply.send(Err(ClientError::Closed));
                }
                Command::Unsubscribe { reply, .. } => {
                    if let Some(reply) = reply {
                        let _ = reply.send(Ok(()));
                    }
                }
                Command::Close { reply } => {
                    let _ = reply.send(());
                }
            }
        }
        if let Some(reply) = stop {
            let _ = reply.send(());
        }
    }
}

/// When a connection silent from now on is taken for dead; far away when
/// the server does not ping (or pings so rarely the sum overflows).
fn deadline(silence_limit: Option<Duration>) -> Instant {
    let now = Instant::now();
    silence_limit
        .and_then(|limit| now.checked_add(limit))
        .unwrap_or_else(|| now + Duration::from_secs(86_400 * 365))
}

/// Serializes a message, refusing it if it is larger than `limit` (0: no limit).
fn encode(message: &ClientMessage, limit: usize) -> Result<String, ClientError> {
    let text = serde_json::to_string(message)
        .map_err(|e| ClientError::Protocol(format!("cannot encode {message:?}: {e}")))?;
    if limit > 0 && text.len() > limit {
        return Err(ClientError::MessageTooBig {
            size: text.len(),
            limit,
        });
    }
    Ok(text)
}

/// Closes the socket cleanly (code 1000), waiting briefly for the server's
/// answer, and passes `stop` on.
async fn close(mut socket: Socket, stop: Stop) -> Stop {
    let frame = CloseFrame {
        code: tungstenite::protocol::frame::coding::CloseCode::Normal,
        reason: "".into(),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if socket.close(Some(frame)).await.is_ok() {
            while let Some(Ok(_)) = socket.next().await {}
        }
    })
    .await;
    stop
}
