//! The hub: routes every committed event to the subscriptions it matches.
//!
//! Connections are spread over shards by id. Each shard is one task that
//! owns its connections' subscriptions outright — a [`SubIndex`] per topic,
//! no lock — and receives every committed group from the store. So a storm
//! of subscribes or disconnects on one shard delays only that shard's
//! deliveries, and matching runs on several cores.
//!
//! A subscription is live once it is in its shard's index. Starting from a
//! past offset, it first gets its history: recent events from the shard's
//! in-memory window, older ones read from the log by a task of its own
//! (`history.rs`), which then asks the shard to switch it to live at the
//! exact offset it reached — no gap, no duplicate.
//!
//! Besides logged events the hub routes *signals* (`signal.rs`): live-only
//! deliveries with no offset — messages of channels without history,
//! broadcasts, presence changes. Every connection registers with its shard
//! when it connects, so a broadcast can reach connections that subscribe to
//! nothing.
//!
//! Layout: `shard/` (the task: commands, routing, the recent window; its
//! `signal.rs` routes signals), `subscription.rs` (what a subscription
//! selects and where its events go), `history.rs` (snapshot and log reading
//! before a subscription is live), `signal.rs` (what a signal is).
//!
//! [`SubIndex`]: herald_filter::SubIndex

mod history;
mod shard;
mod signal;
mod subscription;

pub use shard::APPEND_TO_DELIVERY_SECONDS;
pub use signal::{MemberChange, Reach, Signal, Target};

use crate::herald::Herald;
use crate::namespace::Namespaces;
use crate::outbox::{Outbox, Outgoing};
use crate::subscribe::Topic;
use crate::view::View;
use herald_filter::{ChangedFields, Filter};
use herald_proto::{
    ErrorCode, LagPolicy, Offset, Op, ServerMessage, StartFrom, SubscriptionInfo, Timestamp,
};
use herald_store::{ChannelName, StoreError};
use serde::Serialize;
use serde_json::Value;
use shard::{Command, Receivers, Shard};
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// How the hub is sized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// Shards (tasks that match events); 0 means one per CPU core.
    pub shards: usize,
    /// Bytes each connection may have queued before it is a slow consumer.
    pub outbox_bytes: usize,
    /// Bytes of recent events each shard keeps in memory, so that resuming
    /// subscribers close to the head need not read the log.
    pub recent_bytes: usize,
    /// Most subscriptions on one connection.
    pub max_subscriptions: usize,
    /// Most documents in one snapshot chunk.
    pub snapshot_chunk_docs: usize,
    /// Most bytes of documents in one snapshot chunk (past the first document).
    pub snapshot_chunk_bytes: usize,
    /// Channel namespaces: which channels keep history, and how long.
    pub namespaces: Arc<Namespaces>,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            shards: 0,
            outbox_bytes: 1 << 20,
            recent_bytes: 4 << 20,
            max_subscriptions: 256,
            snapshot_chunk_docs: 500,
            snapshot_chunk_bytes: 256 << 10,
            namespaces: Arc::default(),
        }
    }
}

/// The hub; cheap to clone.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    herald: Herald,
    config: HubConfig,
    shards: Vec<ShardHandle>,
    next_connection: AtomicU64,
    ended: Arc<EndedMemberships>,
}

/// Where shards report the room memberships they end on their own, so the
/// rooms let go of them too. Set once, by [`Hub::on_memberships_ended`].
type EndedMemberships = std::sync::OnceLock<mpsc::UnboundedSender<EndedMembership>>;

/// A room membership the hub ended on its own: `(connection, room, why)`.
pub type EndedMembership = (u64, ChannelName, herald_proto::LeaveReason);

#[derive(Debug, Clone)]
struct ShardHandle {
    commands: mpsc::UnboundedSender<Command>,
    routed: watch::Receiver<Offset>,
    receivers: Arc<Receivers>,
}

impl Hub {
    /// Starts the shards; call inside a Tokio runtime. They stop when the
    /// last handle (and connection) is dropped.
    #[must_use]
    pub fn start(herald: Herald, config: HubConfig) -> Hub {
        let count = match config.shards {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        };
        let ended = Arc::new(EndedMemberships::new());
        let shards = (0..count)
            .map(|_| Shard::spawn(herald.store.clone(), config.clone(), ended.clone()))
            .collect();
        Hub {
            inner: Arc::new(Inner {
                herald,
                config,
                shards,
                next_connection: AtomicU64::new(1),
                ended,
            }),
        }
    }

    /// Reports every room membership the hub ends on its own: its
    /// connection closed or was cut (`disconnected`), or its join's history
    /// failed to read (`removed`; the client got an `error`). Each
    /// membership is reported at most once, so what is queued is bounded by
    /// the memberships that exist. Only the first call has an effect.
    pub fn on_memberships_ended(&self, to: mpsc::UnboundedSender<EndedMembership>) {
        let _ = self.inner.ended.set(to);
    }

    /// The engine behind the hub.
    #[must_use]
    pub fn herald(&self) -> &Herald {
        &self.inner.herald
    }

    /// Its configuration.
    #[must_use]
    pub fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    /// A new in-process connection with an empty outbox (admitted: the
    /// embedding program vouches for it).
    #[must_use]
    pub fn connect(&self) -> Connection {
        self.connect_as(ClientInfo {
            identified: true,
            ..ClientInfo::default()
        })
    }

    /// A new connection with an empty outbox, described by `info` (for
    /// listings). It registers with its shard, so broadcasts to everyone
    /// reach it.
    #[must_use]
    pub fn connect_as(&self, info: ClientInfo) -> Connection {
        let id = self.inner.next_connection.fetch_add(1, Ordering::Relaxed);
        let shard = self.shard_of(id);
        let outbox = Arc::new(Outbox::new(self.inner.config.outbox_bytes));
        let _ = shard.commands.send(Command::Connect {
            conn: id,
            outbox: outbox.clone(),
            info: Box::new(info),
        });
        Connection {
            id,
            outbox,
            commands: shard.commands.clone(),
            routed: shard.routed.clone(),
            hub: self.clone(),
        }
    }

    /// Starts a subscription for connection `conn`, which must be connected
    /// (`not_found` otherwise): [`Connection::subscribe`] for a connection
    /// held elsewhere, such as a room a server joins it to.
    pub async fn subscribe(&self, conn: u64, spec: SubscriptionSpec) -> Result<(), HubError> {
        self.subscribe_with(conn, None, spec).await
    }

    async fn subscribe_with(
        &self,
        conn: u64,
        outbox: Option<Arc<Outbox>>,
        spec: SubscriptionSpec,
    ) -> Result<(), HubError> {
        let store = &self.inner.herald.store;
        if spec.snapshot && !matches!(spec.topic, Topic::Table(_)) {
            return Err(HubError::new(
                ErrorCode::InvalidParameter,
                "`snapshot` is only for a single table",
            ));
        }
        let start = match spec.from {
            StartFrom::Now => None,
            StartFrom::After(offset) => Some(offset),
            StartFrom::Token(token) => Some(store.token_offset(token)?),
            StartFrom::Time(ts) => {
                let reader = store.clone();
                Some(crate::blocking(move || reader.position_at(ts)).await?)
            }
        };
        if let Some(after) = start {
            let head = store.head();
            if after > head {
                return Err(HubError::new(
                    ErrorCode::InvalidParameter,
                    format!("`from` {after} is ahead of the log's head {head}"),
                ));
            }
            store.check_recoverable(after)?;
            if let Topic::Channel(channel) = &spec.topic {
                self.check_history(channel, after).await?;
            }
        }
        let (reply, answer) = oneshot::channel();
        let command = Command::Subscribe {
            conn,
            outbox,
            spec: Box::new(spec),
            start,
            reply,
        };
        self.shard_of(conn)
            .commands
            .send(command)
            .map_err(|_| stopped())?;
        if let Some(pending) = answer.await.map_err(|_| stopped())?? {
            self.read_history(conn, *pending);
        }
        Ok(())
    }

    /// Where the readable history of `channel` begins: `None` when all the
    /// log retains may be read, `Some(floor)` (read after `floor`) when its
    /// namespace keeps less. Fails when its namespace keeps no history.
    pub async fn history_floor(&self, channel: &ChannelName) -> Result<Option<Offset>, HubError> {
        let namespace = self.inner.config.namespaces.of(channel.as_str());
        if !namespace.history {
            return Err(HubError::new(
                ErrorCode::InvalidParameter,
                format!(
                    "channel {:?} keeps no history (its namespace has history = false): \
                     subscribe from now",
                    channel.as_str()
                ),
            ));
        }
        let Some(retention) = namespace.retention else {
            return Ok(None);
        };
        let oldest = Timestamp(
            Timestamp::now()
                .0
                .saturating_sub(retention.as_millis() as u64),
        );
        let reader = self.inner.herald.store.clone();
        Ok(Some(
            crate::blocking(move || reader.position_at(oldest)).await?,
        ))
    }

    /// Whether the history of `channel` after `after` may be read: its
    /// namespace keeps history, and (with a retention of its own) `after`
    /// is recent enough (`unrecoverable_position` otherwise).
    pub async fn check_history(
        &self,
        channel: &ChannelName,
        after: Offset,
    ) -> Result<(), HubError> {
        match self.history_floor(channel).await? {
            Some(floor) if after < floor => Err(HubError {
                code: ErrorCode::UnrecoverablePosition,
                message: format!(
                    "channel {:?} keeps {} of history: offset {after} is older; start after {floor}",
                    channel.as_str(),
                    humantime::format_duration(
                        self.inner
                            .config
                            .namespaces
                            .of(channel.as_str())
                            .retention
                            .unwrap_or_default()
                    )
                ),
                earliest: Some(floor.next()),
            }),
            _ => Ok(()),
        }
    }

    /// Publishes a message to `channel`: appended to the log when its
    /// namespace keeps history (the answer has its offset), else sent live
    /// to the channel's subscribers as a `message`. The answer counts the
    /// subscriptions it reached on this server.
    pub async fn publish(
        &self,
        channel: ChannelName,
        data: serde_json::Value,
        from: Option<String>,
    ) -> Result<Published, HubError> {
        if self.inner.config.namespaces.of(channel.as_str()).history {
            let offset = self
                .inner
                .herald
                .publish_from(channel.as_str(), data, from)
                .await?;
            let receivers = self.receivers(offset).await;
            return Ok(Published {
                offset: Some(offset),
                receivers,
            });
        }
        let max = self.inner.herald.store.max_doc_bytes();
        let size = serde_json::to_vec(&data).map_or(0, |v| v.len());
        if size > max {
            return Err(HubError::from(StoreError::DocTooLarge { size, max }));
        }
        let reach = self
            .signal(Signal::message(channel, data, from, Timestamp::now()))
            .await;
        Ok(Published {
            offset: None,
            receivers: reach.subscriptions,
        })
    }

    fn read_history(&self, conn: u64, pending: history::Pending) {
        tokio::spawn(history::run(
            self.inner.herald.store.clone(),
            self.inner.config.clone(),
            self.shard_of(conn).commands.clone(),
            pending,
        ));
    }

    fn shard_of(&self, conn: u64) -> &ShardHandle {
        &self.inner.shards[(conn % self.inner.shards.len() as u64) as usize]
    }

    /// Routes a signal on every shard; how far it reached.
    pub async fn signal(&self, signal: Signal) -> Reach {
        let signal = Arc::new(signal);
        let mut answers = Vec::with_capacity(self.inner.shards.len());
        for shard in &self.inner.shards {
            let (reply, answer) = oneshot::channel();
            let command = Command::Signal {
                signal: signal.clone(),
                reply: Some(reply),
            };
            if shard.commands.send(command).is_ok() {
                answers.push(answer);
            }
        }
        let mut reach = Reach::default();
        for answer in answers {
            if let Ok(r) = answer.await {
                reach += r;
            }
        }
        reach
    }

    /// Hands a signal to every shard without waiting: signals handed over
    /// one after another are routed in that order on every shard (presence
    /// changes rely on it).
    pub fn signal_now(&self, signal: Signal) {
        let signal = Arc::new(signal);
        for shard in &self.inner.shards {
            let _ = shard.commands.send(Command::Signal {
                signal: signal.clone(),
                reply: None,
            });
        }
    }

    /// Queues `message` for connection `conn` through its shard: after every
    /// signal handed to the hub before this call, before every one handed
    /// after (an answer describing state those signals change).
    pub fn push_now(&self, conn: u64, message: &ServerMessage) {
        let _ = self.shard_of(conn).commands.send(Command::Push {
            conn,
            item: Outgoing::message(message, None),
        });
    }

    /// Ends subscription `id` of connection `conn` (a room membership, say),
    /// queuing `notice` for the connection instead of `unsubscribed`.
    /// Whether it existed.
    pub async fn remove(&self, conn: u64, id: &str, notice: &ServerMessage) -> bool {
        let (reply, answer) = oneshot::channel();
        let command = Command::Remove {
            conn,
            id: id.to_owned(),
            notice: Outgoing::message(notice, None),
            reply: Some(reply),
        };
        self.shard_of(conn).commands.send(command).is_ok() && answer.await.unwrap_or(false)
    }

    /// [`Hub::remove`] without waiting for the answer.
    pub fn remove_now(&self, conn: u64, id: &str, notice: &ServerMessage) {
        let _ = self.shard_of(conn).commands.send(Command::Remove {
            conn,
            id: id.to_owned(),
            notice: Outgoing::message(notice, None),
            reply: None,
        });
    }

    /// One connection: what it is and its subscriptions (`None`: no such
    /// connection now).
    pub async fn client(&self, conn: u64) -> Option<ClientDetails> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Client { conn, reply };
        if self.shard_of(conn).commands.send(command).is_err() {
            return None;
        }
        answer.await.ok().flatten()
    }

    /// A connection's outbox and info (`None`: no such connection).
    pub async fn outbox(&self, conn: u64) -> Option<(Arc<Outbox>, ClientInfo)> {
        let (reply, answer) = oneshot::channel();
        let command = Command::Outbox { conn, reply };
        if self.shard_of(conn).commands.send(command).is_err() {
            return None;
        }
        answer.await.ok().flatten()
    }

    /// Every connection, by id.
    pub async fn clients(&self) -> Vec<ClientDetails> {
        let mut all = Vec::new();
        for shard in &self.inner.shards {
            let (reply, answer) = oneshot::channel();
            if shard.commands.send(Command::Clients { reply }).is_ok()
                && let Ok(list) = answer.await
            {
                all.extend(list);
            }
        }
        all.sort_by_key(|c| c.id);
        all
    }

    /// One topic's counters summed over shards (`None`: no live
    /// subscription to it).
    pub async fn topic(&self, topic: &str) -> Option<TopicStats> {
        let mut found = Vec::new();
        for shard in &self.inner.shards {
            let (reply, answer) = oneshot::channel();
            let command = Command::Topic {
                topic: topic.to_owned(),
                reply,
            };
            if shard.commands.send(command).is_ok()
                && let Ok(Some(stats)) = answer.await
            {
                found.push(stats);
            }
        }
        merge_topics(found.iter()).pop()
    }

    /// What the shards hold now, summed.
    pub async fn stats(&self) -> HubStats {
        let mut shards = Vec::new();
        for shard in &self.inner.shards {
            let (reply, answer) = oneshot::channel();
            if shard.commands.send(Command::Stats { reply }).is_ok()
                && let Ok(stats) = answer.await
            {
                shards.push(stats);
            }
        }
        HubStats {
            connections: shards.iter().map(|s| s.connections).sum(),
            clients: shards.iter().map(|s| s.clients).sum(),
            subscriptions: shards.iter().map(|s| s.subscriptions).sum(),
            queued_bytes: shards.iter().map(|s| s.queued_bytes).sum(),
            routed: shards.iter().map(|s| s.routed).min().unwrap_or_default(),
            totals: shards.iter().fold(HubTotals::default(), |mut sum, s| {
                sum += s.totals;
                sum
            }),
            topics: merge_topics(shards.iter().flat_map(|s| s.topics.iter())),
            shards: shards.len(),
        }
    }

    /// The counters alone, summed over shards: what [`Hub::stats`] has in
    /// `totals`, without walking connections and topics.
    pub async fn totals(&self) -> HubTotals {
        let mut sum = HubTotals::default();
        for shard in &self.inner.shards {
            let (reply, answer) = oneshot::channel();
            if shard.commands.send(Command::Totals { reply }).is_ok()
                && let Ok(totals) = answer.await
            {
                sum += totals;
            }
        }
        sum
    }

    /// Every subscription of every connection, by connection id then
    /// subscription id.
    pub async fn subscriptions(&self) -> Vec<(u64, SubscriptionInfo)> {
        let mut all = Vec::new();
        for shard in &self.inner.shards {
            let (reply, answer) = oneshot::channel();
            if shard.commands.send(Command::ListAll { reply }).is_ok()
                && let Ok(list) = answer.await
            {
                all.extend(list);
            }
        }
        all.sort_by(|a, b| (a.0, &a.1.id).cmp(&(b.0, &b.1.id)));
        all
    }

    /// How many subscriptions the event at `offset` (a channel message) was
    /// delivered to. Waits (briefly) until every shard has routed it.
    pub async fn receivers(&self, offset: Offset) -> u64 {
        let mut total = 0;
        for shard in &self.inner.shards {
            let mut routed = shard.routed.clone();
            let reached =
                tokio::time::timeout(Duration::from_secs(1), routed.wait_for(|&r| r >= offset))
                    .await;
            if matches!(reached, Ok(Ok(_))) {
                total += shard.receivers.get(offset);
            }
        }
        total
    }
}

/// The outcome of [`Hub::publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The message's offset (`None`: its channel keeps no history).
    pub offset: Option<Offset>,
    /// Subscriptions it was routed to on this server.
    pub receivers: u64,
}

/// A snapshot of the hub's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubStats {
    /// Connections holding at least one subscription.
    pub connections: usize,
    /// Connections registered, subscribed or not.
    pub clients: usize,
    /// Subscriptions, live or reading history.
    pub subscriptions: usize,
    /// Bytes queued in those connections' outboxes.
    pub queued_bytes: usize,
    /// The offset every shard has routed up to.
    pub routed: Offset,
    /// Counters since the hub started (summed over shards).
    pub totals: HubTotals,
    /// Topics with live subscriptions, most subscribed first.
    pub topics: Vec<TopicStats>,
    /// Shards that answered.
    pub shards: usize,
}

/// One topic with live subscriptions (`table:<name>`, `table:*` or a
/// channel). Its counters run from when it last got a subscriber.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TopicStats {
    /// The topic.
    pub topic: String,
    /// Live subscriptions to it.
    pub subscriptions: usize,
    /// Its events routed (for `table:*`: every table change).
    pub events: u64,
    /// Events queued for its subscriptions.
    pub deliveries: u64,
    /// When its last event was appended (0: none yet).
    pub last_event: Timestamp,
}

/// Counters since the hub started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HubTotals {
    /// Events each shard routed (every shard sees every event: this is
    /// events × shards).
    pub events: u64,
    /// Events queued for a subscription (counted per subscription).
    pub deliveries: u64,
    /// Bytes of event frames queued.
    pub delivered_bytes: u64,
    /// Connections closed because they fell behind.
    pub slow_consumers: u64,
    /// Times an `on_lag: "skip"` subscription started skipping events.
    pub lagged: u64,
}

impl std::ops::AddAssign for HubTotals {
    fn add_assign(&mut self, other: HubTotals) {
        self.events += other.events;
        self.deliveries += other.deliveries;
        self.delivered_bytes += other.delivered_bytes;
        self.slow_consumers += other.slow_consumers;
        self.lagged += other.lagged;
    }
}

/// Sums the shards' views of each topic (every shard routes every event, so
/// a topic's events are the most any shard saw, not the sum).
fn merge_topics<'a>(topics: impl Iterator<Item = &'a TopicStats>) -> Vec<TopicStats> {
    let mut merged: std::collections::HashMap<&str, TopicStats> = std::collections::HashMap::new();
    for t in topics {
        let m = merged.entry(&t.topic).or_insert_with(|| TopicStats {
            topic: t.topic.clone(),
            ..TopicStats::default()
        });
        m.subscriptions += t.subscriptions;
        m.events = m.events.max(t.events);
        m.deliveries += t.deliveries;
        m.last_event = m.last_event.max(t.last_event);
    }
    let mut list: Vec<TopicStats> = merged.into_values().collect();
    list.sort_by(|a, b| {
        b.subscriptions
            .cmp(&a.subscriptions)
            .then_with(|| a.topic.cmp(&b.topic))
    });
    list
}

/// How a connection reaches the server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// A WebSocket.
    #[serde(rename = "websocket")]
    WebSocket,
    /// A Server-Sent Events stream.
    Sse,
    /// An embedding program, in process.
    #[default]
    InProcess,
}

/// What a connection is, for listings.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ClientInfo {
    /// How it connects.
    pub transport: Transport,
    /// Its peer's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<IpAddr>,
    /// When it connected.
    pub connected_at: Timestamp,
    /// Who it is (`user:<sub>`, `key:<id>`), once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Whether it has been admitted (authenticated, or let in as the
    /// anonymous caller); a WebSocket that must still send `auth` has not.
    #[serde(skip)]
    pub identified: bool,
}

/// A connection and its subscriptions.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientDetails {
    /// Its id (the `connection` of its `welcome`).
    pub id: u64,
    /// What it is.
    pub info: ClientInfo,
    /// Its subscriptions (room memberships included), by id.
    pub subscriptions: Vec<SubscriptionInfo>,
}

/// A failure to subscribe, unsubscribe or list, as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubError {
    /// Machine-readable reason.
    pub code: ErrorCode,
    /// Explanation.
    pub message: String,
    /// For `unrecoverable_position`: the earliest offset available.
    pub earliest: Option<Offset>,
}

impl HubError {
    /// An error without a position.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> HubError {
        HubError {
            code,
            message: message.into(),
            earliest: None,
        }
    }

    /// The `error` message for subscription `id`.
    #[must_use]
    pub fn to_message(&self, id: Option<String>, reference: Option<String>) -> ServerMessage {
        ServerMessage::Error {
            reference,
            id,
            code: self.code,
            message: self.message.clone(),
            earliest: self.earliest,
            retry_after_ms: None,
        }
    }
}

impl std::fmt::Display for HubError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code.as_str(), self.message)
    }
}

impl std::error::Error for HubError {}

impl From<StoreError> for HubError {
    fn from(e: StoreError) -> HubError {
        match e.code() {
            ErrorCode::Internal => {
                static FAILURES: crate::LogLimit = crate::LogLimit::new(10);
                if let Some(suppressed) = FAILURES.allow() {
                    tracing::error!(error = %e, suppressed, "storage failure in a subscription");
                }
                HubError::new(
                    ErrorCode::Internal,
                    "internal storage error; see the server log",
                )
            }
            code => HubError {
                code,
                message: e.to_string(),
                earliest: e.earliest(),
            },
        }
    }
}

/// A subscription, validated and compiled.
#[derive(Debug, Clone)]
pub struct SubscriptionSpec {
    /// The client's id for it.
    pub id: String,
    /// What it listens to.
    pub topic: Topic,
    /// Only these operations (`None`: all).
    pub ops: Option<Vec<Op>>,
    /// The filter on the document (or message data).
    pub filter: Arc<Filter>,
    /// The filter as the client gave it, for listings.
    pub filter_source: Option<Value>,
    /// Updates only when one of these fields changed.
    pub changed: Option<ChangedFields>,
    /// Where it starts.
    pub from: StartFrom,
    /// Send the matching documents first (table topics only).
    pub snapshot: bool,
    /// What happens when the connection falls behind.
    pub on_lag: LagPolicy,
    /// What the reader may see of the events (hidden fields, row rule for
    /// an update's previous version). Transparent by default.
    pub view: View,
    /// How it is announced live.
    pub announce: Announce,
    /// It gets the presence changes of its channel's room (`member_*`):
    /// its reader may see presence there. Default true.
    pub sees_presence: bool,
}

/// How a subscription is announced once it is live.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum Announce {
    /// `subscribed {id, offset}`.
    #[default]
    Subscribed,
    /// A room membership (its id is the room), announced by this `joined`
    /// message (the hub sets its offset). It ends with
    /// [`Connection::leave`] or [`Hub::remove`], never `unsubscribe`.
    Joined(Box<ServerMessage>),
    /// Not at all: the client was told otherwise (a personal channel, named
    /// in `welcome`).
    Silent,
}

impl SubscriptionSpec {
    /// Every event of `topic`, from now on, closing the connection if it
    /// falls behind: set the other fields to narrow it.
    #[must_use]
    pub fn new(id: impl Into<String>, topic: Topic) -> SubscriptionSpec {
        SubscriptionSpec {
            id: id.into(),
            topic,
            ops: None,
            filter: Arc::new(Filter::match_all()),
            filter_source: None,
            changed: None,
            from: StartFrom::Now,
            snapshot: false,
            on_lag: LagPolicy::Close,
            view: View::default(),
            announce: Announce::Subscribed,
            sees_presence: true,
        }
    }
}

/// A subscription's new selection, for [`Connection::update`].
#[derive(Debug, Clone)]
pub struct Selection {
    /// Only these operations (`None`: all).
    pub ops: Option<Vec<Op>>,
    /// The filter.
    pub filter: Arc<Filter>,
    /// The filter as the client gave it, for listings.
    pub filter_source: Option<Value>,
    /// Updates only when one of these fields changed.
    pub changed: Option<ChangedFields>,
}

/// One client connection's handle on the hub. Dropping it removes every
/// subscription it holds.
#[derive(Debug)]
pub struct Connection {
    id: u64,
    outbox: Arc<Outbox>,
    commands: mpsc::UnboundedSender<Command>,
    routed: watch::Receiver<Offset>,
    hub: Hub,
}

impl Connection {
    /// The connection's id, unique in this process.
    #[must_use]
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The queue the transport writes from.
    #[must_use]
    pub fn outbox(&self) -> &Arc<Outbox> {
        &self.outbox
    }

    /// The hub it belongs to.
    #[must_use]
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// Every event up to this offset has been routed to this connection's
    /// live subscriptions (queued, if it matched): the position to resume
    /// from if the connection is closed now.
    #[must_use]
    pub fn routed(&self) -> Offset {
        *self.routed.borrow()
    }

    /// Starts a subscription. Returns once it is accepted; its snapshot,
    /// history, `subscribed` message and events then arrive in the outbox in
    /// that order. Errors arrive here, except for failures while reading
    /// history, which arrive in the outbox as an `error` for the id.
    pub async fn subscribe(&self, spec: SubscriptionSpec) -> Result<(), HubError> {
        self.hub
            .subscribe_with(self.id, Some(self.outbox.clone()), spec)
            .await
    }

    /// Says who the connection is now (`user:<sub>`, `key:<id>`; `None`:
    /// the anonymous caller): it is admitted.
    pub fn identify(&self, user: Option<String>) {
        let _ = self.commands.send(Command::Identify {
            conn: self.id,
            user,
        });
    }

    /// Ends subscription `id` (a room membership), queuing `notice` after
    /// anything already queued for it. Whether it existed.
    pub async fn leave(&self, id: &str, notice: &ServerMessage) -> bool {
        self.hub.remove(self.id, id, notice).await
    }

    /// Ends a subscription; an `unsubscribed` message follows in the outbox
    /// after anything already queued for it.
    pub async fn unsubscribe(&self, id: &str) -> Result<(), HubError> {
        self.ask(|reply| Command::Unsubscribe {
            conn: self.id,
            id: id.to_owned(),
            reply,
        })
        .await?
    }

    /// Pauses a live subscription: a `paused` message follows in the outbox
    /// and nothing more for it until [`Connection::resume`].
    pub async fn pause(&self, id: &str) -> Result<(), HubError> {
        self.ask(|reply| Command::Pause {
            conn: self.id,
            id: id.to_owned(),
            reply,
        })
        .await?
    }

    /// Resumes a paused subscription: every matching event it missed (unless
    /// `skip`), then `resumed`, then live events.
    pub async fn resume(&self, id: &str, skip: bool) -> Result<(), HubError> {
        let pending = self
            .ask(|reply| Command::Resume {
                conn: self.id,
                id: id.to_owned(),
                skip,
                reply,
            })
            .await??;
        if let Some(pending) = pending {
            self.read_history(*pending);
        }
        Ok(())
    }

    /// Replaces a live (or paused) subscription's selection; an `updated`
    /// message names the offset of the switch.
    pub async fn update(&self, id: &str, selection: Selection) -> Result<(), HubError> {
        self.ask(|reply| Command::Update {
            conn: self.id,
            id: id.to_owned(),
            selection: Box::new(selection),
            reply,
        })
        .await?
    }

    fn read_history(&self, pending: history::Pending) {
        self.hub.read_history(self.id, pending);
    }

    /// Every subscription of this connection, in id order.
    pub async fn subscriptions(&self) -> Result<Vec<SubscriptionInfo>, HubError> {
        self.ask(|reply| Command::List {
            conn: self.id,
            reply,
        })
        .await
    }

    /// Sends the command `make` builds around a reply channel to the
    /// connection's shard; the reply.
    async fn ask<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, HubError> {
        let (reply, answer) = oneshot::channel();
        self.commands.send(make(reply)).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Disconnect { conn: self.id });
    }
}

fn stopped() -> HubError {
    HubError::new(ErrorCode::ShuttingDown, "the hub has stopped")
}
