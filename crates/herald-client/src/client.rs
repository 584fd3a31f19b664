//! [`Client`]: the application's handle on a connection, and its status.

use crate::config::ClientConfig;
use crate::connect::{self, ServerInfo};
use crate::error::ClientError;
use crate::request::SubscribeRequest;
use crate::session::{Command, Session};
use crate::subs::{SubId, SubTable};
use crate::subscription::{Delivery, Subscription};
use herald_proto::{ClientMessage, Offset, ServerMessage, SubscriptionInfo};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch};

/// How many commands (subscribe, publish, ...) may wait for the connection
/// task before callers wait too.
const COMMAND_QUEUE: usize = 256;

/// A connection to a Herald server that reconnects by itself.
///
/// Cheap to clone: clones share the connection. The connection stays open
/// while a `Client` or a [`Subscription`] exists, until [`Client::close`].
/// Must be used inside a Tokio runtime.
#[derive(Debug, Clone)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    status: watch::Receiver<ConnectionStatus>,
    /// The last subscription id handed out, shared by the clones.
    last_sub: Arc<AtomicU64>,
    request_timeout: Duration,
    subscription_buffer: usize,
}

/// Where the connection stands.
///
/// There is no "connecting" state: [`Client::connect`] returns only once the
/// first connection is open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConnectionState {
    /// Open: requests are sent at once.
    Connected,
    /// Lost; waiting to retry or trying. Requests and subscriptions made now
    /// are sent when the new connection opens.
    Reconnecting,
    /// Closed for good by [`Client::close`] or because every handle was dropped.
    Closed,
}

/// A snapshot of the connection's status; see [`Client::watch_status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionStatus {
    /// Where the connection stands.
    pub state: ConnectionState,
    /// How many times the client connected again after losing the connection.
    pub reconnects: u64,
    /// The `welcome` of the latest connection.
    pub server: ServerInfo,
}

/// The answer to [`Client::publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The message's offset in the log (`None` on a channel without
    /// history, whose messages are not logged).
    pub offset: Option<Offset>,
    /// How many subscriptions on the server it was routed to.
    pub receivers: u64,
}

impl Client {
    /// Connects to the server at `url` (`http://host:port`, `ws://...`, or the
    /// full `.../v1/ws` endpoint) and waits for its `welcome`.
    ///
    /// Fails if this first attempt fails; once connected, a lost connection is
    /// reopened in the background.
    pub async fn connect(url: &str, config: ClientConfig) -> Result<Client, ClientError> {
        let url = connect::ws_url(url)?;
        let (socket, info) = connect::open(&url, &config).await?;
        let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
        let (status_tx, status) = watch::channel(ConnectionStatus {
            state: ConnectionState::Connected,
            reconnects: 0,
            server: info.clone(),
        });
        let client = Client {
            commands,
            status,
            last_sub: Arc::new(AtomicU64::new(0)),
            request_timeout: config.request_timeout,
            subscription_buffer: config.subscription_buffer,
        };
        tokio::spawn(Session::new(url, config, queue, status_tx).run(socket, info));
        Ok(client)
    }

    /// Starts a subscription and returns once the server has sent its
    /// snapshot and history and it is live.
    ///
    /// Those snapshot chunks and history events are the stream's first items,
    /// followed by [`SubscriptionItem::Live`](crate::SubscriptionItem::Live).
    /// A request the server refuses, including a start position it cannot
    /// serve ([`ErrorCode::UnrecoverablePosition`](herald_proto::ErrorCode::UnrecoverablePosition)),
    /// fails here with [`ClientError::Server`]. The request timeout restarts
    /// with every item received, so a long replay does not time out.
    pub async fn subscribe(&self, request: SubscribeRequest) -> Result<Subscription, ClientError> {
        let id = SubId(self.last_sub.fetch_add(1, Ordering::Relaxed) + 1);
        let capacity = SubTable::channel_capacity(self.subscription_buffer);
        let (items_tx, mut items) = mpsc::channel(capacity);
        let (answer_tx, mut answer) = oneshot::channel();
        let command = Command::Subscribe {
            id,
            request: request.into_wire(id.to_string()),
            items: items_tx,
            answer: answer_tx,
        };
        self.send(command).await?;
        // Drain what arrives before `subscribed`, so the connection task never
        // finds the stream's buffer full during a long replay.
        let mut early = VecDeque::new();
        let mut items_open = true;
        loop {
            let step = tokio::time::timeout(self.request_timeout, async {
                tokio::select! {
                    biased;
                    item = items.recv(), if items_open => Handshake::Item(item),
                    answer = &mut answer => Handshake::Answer(answer),
                }
            });
            match step.await {
                Err(_) => return Err(ClientError::Timeout(self.request_timeout)),
                Ok(Handshake::Item(Some(item))) => early.push_back(item),
                Ok(Handshake::Item(None)) => items_open = false,
                Ok(Handshake::Answer(Ok(Ok(())))) => break,
                Ok(Handshake::Answer(Ok(Err(error)))) => return Err(error),
                Ok(Handshake::Answer(Err(_))) => return Err(ClientError::Closed),
            }
        }
        Ok(Subscription::new(
            id.to_string(),
            early,
            items,
            self.commands.clone(),
            self.request_timeout,
        ))
    }

    /// Publishes `data` to `channel` and returns its offset.
    ///
    /// Sent at most once: if the connection drops before the answer, this
    /// fails with [`ClientError::ConnectionLost`] and the message may or may
    /// not have been published.
    pub async fn publish(
        &self,
        channel: impl Into<String>,
        data: Value,
    ) -> Result<Published, ClientError> {
        let message = ClientMessage::Publish {
            channel: channel.into(),
            data,
            reference: None,
        };
        match self.request(message).await? {
            ServerMessage::Published {
                offset, receivers, ..
            } => Ok(Published { offset, receivers }),
            other => Err(unexpected("published", &other)),
        }
    }

    /// Sends a `ping` and returns the round-trip time.
    pub async fn ping(&self) -> Result<Duration, ClientError> {
        let start = Instant::now();
        match self
            .request(ClientMessage::Ping { reference: None })
            .await?
        {
            ServerMessage::Pong { .. } => Ok(start.elapsed()),
            other => Err(unexpected("pong", &other)),
        }
    }

    /// The subscriptions the server holds for this connection.
    pub async fn list_subscriptions(&self) -> Result<Vec<SubscriptionInfo>, ClientError> {
        let message = ClientMessage::ListSubscriptions { reference: None };
        match self.request(message).await? {
            ServerMessage::Subscriptions { subscriptions, .. } => Ok(subscriptions),
            other => Err(unexpected("subscriptions", &other)),
        }
    }

    /// Closes the connection with code 1000 and does not reconnect. Pending
    /// requests fail with [`ClientError::Closed`] and every subscription's
    /// stream ends. Closing a closed client does nothing.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.commands.send(Command::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
    }

    /// The connection's current status.
    #[must_use]
    pub fn status(&self) -> ConnectionStatus {
        self.status.borrow().clone()
    }

    /// Where the connection stands.
    #[must_use]
    pub fn state(&self) -> ConnectionState {
        self.status.borrow().state
    }

    /// How many times the client has reconnected.
    #[must_use]
    pub fn reconnects(&self) -> u64 {
        self.status.borrow().reconnects
    }

    /// The `welcome` of the current (or latest) connection.
    #[must_use]
    pub fn server_info(&self) -> ServerInfo {
        self.status.borrow().server.clone()
    }

    /// A receiver that sees every status change, e.g. to wait for a
    /// reconnection with [`watch::Receiver::wait_for`].
    #[must_use]
    pub fn watch_status(&self) -> watch::Receiver<ConnectionStatus> {
        self.status.clone()
    }

    async fn send(&self, command: Command) -> Result<(), ClientError> {
        self.commands
            .send(command)
            .await
            .map_err(|_| ClientError::Closed)
    }

    /// Sends a request that is answered by `ref` and waits for the answer.
    async fn request(&self, message: ClientMessage) -> Result<ServerMessage, ClientError> {
        let exchange = async {
            let (reply, answer) = oneshot::channel();
            self.send(Command::Request { message, reply }).await?;
            answer.await.map_err(|_| ClientError::Closed)?
        };
        tokio::time::timeout(self.request_timeout, exchange)
            .await
            .map_err(|_| ClientError::Timeout(self.request_timeout))?
    }
}

/// One step of waiting for `subscribed`: an early item, or the answer.
enum Handshake {
    Item(Option<Delivery>),
    Answer(Result<Result<(), ClientError>, oneshot::error::RecvError>),
}

fn unexpected(wanted: &str, got: &ServerMessage) -> ClientError {
    ClientError::Protocol(format!("expected {wanted}, got {got:?}"))
}
