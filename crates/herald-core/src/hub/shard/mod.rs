//! One shard of the hub: a task owning some connections' subscriptions.
//!
//! Commands (subscribe, activate, unsubscribe, list, disconnect) and
//! committed groups arrive on two channels and are handled one at a time,
//! so the shard's state needs no lock. Routing an event costs a probe of the
//! topic's index (and of `table:*` for table changes), then one push per
//! recipient connection — the envelope's bytes are shared, and one event
//! matching several subscriptions of a connection is queued once with all
//! their ids.

mod signal;

use super::signal::{Reach, Signal};
use super::subscription::{Selector, Sub, json_string, resume};
use super::{
    Announce, ClientDetails, ClientInfo, HubConfig, HubError, HubStats, HubTotals, Selection,
    SubscriptionSpec, TopicStats, history,
};
use crate::LogLimit;
use crate::outbox::{End, Outbox, Outgoing, Pushed};
use crate::subscribe::{ALL_TABLES, Topic};
use crate::view::View;
use bytes::Bytes;
use herald_filter::SubIndex;
use herald_proto::{
    ErrorCode, EventBody, LagPolicy, LeaveReason, Offset, ServerMessage, SubscriptionInfo,
    Timestamp,
};
use herald_store::{Committed, Store, StoreError, TopicFilter};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Log records per read when the shard itself fell behind the broadcast.
const RECOVER_CHUNK: usize = 1024;
/// Distinct `subs` lists whose frame one event keeps for sharing; clients
/// that number their subscriptions alike (`s1`, `s2`...) share a handful.
const FRAME_CACHE: usize = 8;
/// Histogram: from an event being durable to its being queued for its
/// subscribers' connections (once per event that has subscribers).
pub const APPEND_TO_DELIVERY_SECONDS: &str = "herald_append_to_delivery_seconds";
/// Publish receiver counts kept for acknowledgements.
const RECEIVER_COUNTS: usize = 4096;

pub(super) enum Command {
    /// A new connection: every connection registers, subscribed or not.
    Connect {
        conn: u64,
        outbox: Arc<Outbox>,
        info: Box<ClientInfo>,
    },
    /// The connection's user is now `user` (it authenticated).
    Identify {
        conn: u64,
        user: Option<String>,
    },
    /// Route a signal; its reach, if asked.
    Signal {
        signal: Arc<Signal>,
        reply: Option<oneshot::Sender<Reach>>,
    },
    /// End subscription `id` of `conn`, queuing `notice` (instead of
    /// `unsubscribed`): leaving a room, being removed from it. Memberships
    /// end only this way. Whether it existed.
    Remove {
        conn: u64,
        id: String,
        notice: Outgoing,
        reply: Option<oneshot::Sender<bool>>,
    },
    /// Queue `item` for `conn`, in order with the signals handed to the
    /// shard before and after.
    Push {
        conn: u64,
        item: Outgoing,
    },
    /// One connection's info and subscriptions.
    Client {
        conn: u64,
        reply: oneshot::Sender<Option<ClientDetails>>,
    },
    /// One connection's outbox and info.
    Outbox {
        conn: u64,
        reply: oneshot::Sender<Option<(Arc<Outbox>, ClientInfo)>>,
    },
    /// Every connection's info and subscriptions.
    Clients {
        reply: oneshot::Sender<Vec<ClientDetails>>,
    },
    /// One topic's counters, if it has subscriptions on this shard.
    Topic {
        topic: String,
        reply: oneshot::Sender<Option<TopicStats>>,
    },
    Subscribe {
        conn: u64,
        /// The connection's outbox, registering it if it is not yet; `None`:
        /// it must be registered (`not_found` otherwise).
        outbox: Option<Arc<Outbox>>,
        spec: Box<SubscriptionSpec>,
        /// `None`: from now.
        start: Option<Offset>,
        /// `Some` when history must be read before it is live.
        reply: oneshot::Sender<Result<Option<Box<history::Pending>>, HubError>>,
    },
    /// From a history reader: it has sent everything up to `after`.
    Activate {
        conn: u64,
        id: Arc<str>,
        nonce: u64,
        after: Offset,
        reply: oneshot::Sender<Activated>,
    },
    /// From a history reader that failed: drop the subscription quietly
    /// (the reader has queued the `error`).
    Fail {
        conn: u64,
        id: Arc<str>,
        nonce: u64,
    },
    Unsubscribe {
        conn: u64,
        id: String,
        reply: oneshot::Sender<Result<(), HubError>>,
    },
    List {
        conn: u64,
        reply: oneshot::Sender<Vec<SubscriptionInfo>>,
    },
    /// Every subscription of every connection of the shard.
    ListAll {
        reply: oneshot::Sender<Vec<(u64, SubscriptionInfo)>>,
    },
    Pause {
        conn: u64,
        id: String,
        reply: oneshot::Sender<Result<(), HubError>>,
    },
    Resume {
        conn: u64,
        id: String,
        skip: bool,
        reply: oneshot::Sender<Result<Option<Box<history::Pending>>, HubError>>,
    },
    Update {
        conn: u64,
        id: String,
        selection: Box<Selection>,
        reply: oneshot::Sender<Result<(), HubError>>,
    },
    Disconnect {
        conn: u64,
    },
    Stats {
        reply: oneshot::Sender<HubStats>,
    },
    /// Only the counters: cheap enough to sample every second.
    Totals {
        reply: oneshot::Sender<HubTotals>,
    },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Command::Connect { .. } => "Connect",
            Command::Identify { .. } => "Identify",
            Command::Signal { .. } => "Signal",
            Command::Remove { .. } => "Remove",
            Command::Push { .. } => "Push",
            Command::Client { .. } => "Client",
            Command::Clients { .. } => "Clients",
            Command::Outbox { .. } => "Outbox",
            Command::Topic { .. } => "Topic",
            Command::Subscribe { .. } => "Subscribe",
            Command::Activate { .. } => "Activate",
            Command::Fail { .. } => "Fail",
            Command::Unsubscribe { .. } => "Unsubscribe",
            Command::List { .. } => "List",
            Command::ListAll { .. } => "ListAll",
            Command::Pause { .. } => "Pause",
            Command::Resume { .. } => "Resume",
            Command::Update { .. } => "Update",
            Command::Disconnect { .. } => "Disconnect",
            Command::Stats { .. } => "Stats",
            Command::Totals { .. } => "Totals",
        };
        f.write_str(name)
    }
}

/// The answer to [`Command::Activate`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Activated {
    /// The subscription is live.
    Live,
    /// The shard's recent window starts after `after`: read more log first.
    Behind,
    /// The subscription no longer exists.
    Gone,
}

/// How many subscriptions recent channel messages were delivered to.
#[derive(Debug, Default)]
pub(super) struct Receivers {
    counts: Mutex<VecDeque<(Offset, u64)>>,
}

impl Receivers {
    fn record(&self, offset: Offset, count: u64) {
        let mut counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        if counts.len() == RECEIVER_COUNTS {
            counts.pop_front();
        }
        counts.push_back((offset, count));
    }

    pub(super) fn get(&self, offset: Offset) -> u64 {
        let counts = self.counts.lock().unwrap_or_else(|e| e.into_inner());
        counts
            .binary_search_by_key(&offset, |&(o, _)| o)
            .map_or(0, |i| counts[i].1)
    }
}

/// A topic with live subscriptions on this shard: their index, and what
/// went through it since it had some.
#[derive(Debug, Default)]
struct TopicEntry {
    index: SubIndex<usize>,
    events: u64,
    deliveries: u64,
    last_event: Timestamp,
}

impl TopicEntry {
    fn stats(&self, topic: &str) -> TopicStats {
        TopicStats {
            topic: topic.to_owned(),
            subscriptions: self.index.len(),
            events: self.events,
            deliveries: self.deliveries,
            last_event: self.last_event,
        }
    }
}

/// A connection of the shard: registered when it connects, whether or not
/// it subscribes, until it disconnects (or is cut as a slow consumer).
#[derive(Debug)]
struct Conn {
    outbox: Arc<Outbox>,
    subs: HashMap<Arc<str>, usize>,
    info: ClientInfo,
}

impl Conn {
    fn new(outbox: Arc<Outbox>, info: ClientInfo) -> Conn {
        Conn {
            outbox,
            subs: HashMap::new(),
            info,
        }
    }
}

/// The last committed groups, so subscriptions resuming near the head need
/// not read the log.
#[derive(Debug)]
struct Recent {
    groups: VecDeque<Arc<[Committed]>>,
    bytes: usize,
    limit: usize,
    /// Every event after this offset is in `groups` (or not routed yet).
    floor: Offset,
}

impl Recent {
    fn push(&mut self, group: Arc<[Committed]>) {
        self.bytes += group.iter().map(|c| c.json.len()).sum::<usize>();
        self.groups.push_back(group);
        while self.bytes > self.limit {
            let Some(old) = self.groups.pop_front() else {
                break;
            };
            self.bytes -= old.iter().map(|c| c.json.len()).sum::<usize>();
            if let Some(last) = old.last() {
                self.floor = last.event.offset;
            }
        }
    }

    fn after(&self, after: Offset) -> impl Iterator<Item = &Committed> {
        self.groups
            .iter()
            .flat_map(|g| g.iter())
            .filter(move |c| c.event.offset > after)
    }
}

pub(super) struct Shard {
    store: Arc<Store>,
    config: HubConfig,
    commands: mpsc::UnboundedReceiver<Command>,
    live: broadcast::Receiver<Arc<[Committed]>>,
    /// The last offset routed.
    head: Offset,
    recent: Recent,
    subs: slab::Slab<Sub>,
    conns: HashMap<u64, Conn>,
    topics: HashMap<String, TopicEntry>,
    /// Subscriptions skipping events until their connection has room.
    lagging: Vec<usize>,
    next_nonce: u64,
    routed: watch::Sender<Offset>,
    receivers: Arc<Receivers>,
    matched: Vec<usize>,
    deliveries: Vec<(u64, usize)>,
    /// Frames built for the event being routed, by `subs` list.
    frames: Vec<(Bytes, Outgoing)>,
    totals: HubTotals,
    /// Told of memberships the shard ends on its own.
    ended: Arc<super::EndedMemberships>,
}

fn not_live(id: &str) -> HubError {
    HubError::new(
        ErrorCode::InvalidParameter,
        format!("subscription {id:?} is not live yet: wait for `subscribed`"),
    )
}

impl std::fmt::Debug for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shard")
            .field("head", &self.head)
            .field("subs", &self.subs.len())
            .field("conns", &self.conns.len())
            .finish_non_exhaustive()
    }
}

impl Shard {
    /// Starts a shard task; its handle.
    pub(super) fn spawn(
        store: Arc<Store>,
        config: HubConfig,
        ended: Arc<super::EndedMemberships>,
    ) -> super::ShardHandle {
        // Receive first, then read the head: every group not yet routed at
        // `head` is then in the receiver (groups at or below it are skipped).
        let live = store.committed();
        let head = store.head();
        let (commands_tx, commands) = mpsc::unbounded_channel();
        let (routed, routed_rx) = watch::channel(head);
        let receivers = Arc::new(Receivers::default());
        let shard = Shard {
            recent: Recent {
                groups: VecDeque::new(),
                bytes: 0,
                limit: config.recent_bytes,
                floor: head,
            },
            store,
            config,
            commands,
            live,
            head,
            subs: slab::Slab::new(),
            conns: HashMap::new(),
            topics: HashMap::new(),
            lagging: Vec::new(),
            next_nonce: 1,
            routed,
            receivers: receivers.clone(),
            matched: Vec::new(),
            deliveries: Vec::new(),
            frames: Vec::new(),
            totals: HubTotals::default(),
            ended,
        };
        tokio::spawn(shard.run());
        super::ShardHandle {
            commands: commands_tx,
            routed: routed_rx,
            receivers,
        }
    }

    async fn run(mut self) {
        loop {
            // Committed groups first: a storm of commands (subscribes,
            // disconnects) waits behind deliveries, never the reverse.
            tokio::select! {
                biased;
                group = self.live.recv() => match group {
                    Ok(group) => self.route_group(group),
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(missed, "hub shard fell behind the commit feed; reading the log");
                        if let Err(e) = self.recover().await {
                            tracing::error!(error = %e, "hub shard could not read the log; closing its connections");
                            self.end_all();
                            self.restart_at(self.store.head());
                        }
                    }
                    Err(RecvError::Closed) => return,
                },
                command = self.commands.recv() => match command {
                    Some(command) => self.handle(command),
                    // Every hub handle and connection is gone.
                    None => return,
                },
            }
        }
    }

    /// Routes what the broadcast dropped, from the log, up to the store's head.
    async fn recover(&mut self) -> Result<(), StoreError> {
        loop {
            // Only what is durable: the log may hold a group being fsynced,
            // which the broadcast will bring.
            let (store, after, head) = (self.store.clone(), self.head, self.store.head());
            let chunk = crate::blocking(move || {
                store.read_log(after, Some(head), &TopicFilter::All, RECOVER_CHUNK)
            })
            .await?;
            let group = chunk
                .records
                .iter()
                .map(|r| {
                    Ok(Committed {
                        event: Arc::new(r.to_event()?),
                        json: r.json.clone(),
                        durable_at: std::time::Instant::now(),
                    })
                })
                .collect::<Result<Vec<_>, StoreError>>()?;
            if !group.is_empty() {
                self.route_group(group.into());
            }
            self.head = self.head.max(chunk.next_after);
            if chunk.done {
                return Ok(());
            }
        }
    }

    fn route_group(&mut self, group: Arc<[Committed]>) {
        let Some(last) = group.last() else { return };
        if last.event.offset <= self.head {
            return;
        }
        for committed in group.iter() {
            if committed.event.offset > self.head {
                self.route(committed);
                self.head = committed.event.offset;
            }
        }
        self.recent.push(group);
        if !self.lagging.is_empty() {
            self.resume_lagging();
        }
        self.routed.send_replace(self.head);
    }

    fn route(&mut self, committed: &Committed) {
        let event = &*committed.event;
        self.totals.events += 1;
        self.matched.clear();
        let target = event.subject();
        // The event's topic, then `table:*` for a table change: matches
        // before `split` are the topic's own.
        if let Some(entry) = self.topics.get_mut(&event.topic) {
            entry.events += 1;
            entry.last_event = event.ts;
            entry.index.matches(target, &mut self.matched);
        }
        let split = self.matched.len();
        if event.topic.starts_with("table:")
            && let Some(entry) = self.topics.get_mut(ALL_TABLES)
        {
            entry.events += 1;
            entry.last_event = event.ts;
            entry.index.matches(target, &mut self.matched);
        }
        self.deliveries.clear();
        let mut own = 0;
        for (i, &slot) in self.matched.iter().enumerate() {
            let sub = &mut self.subs[slot];
            if sub.lagging.is_some() && sub.selector.admits(event, &sub.view) {
                // Skipping since an overflow: back if there is room now,
                // after telling where the gap ends (here).
                resume(sub, event.offset);
            }
            if sub.wants(event) {
                self.deliveries.push((sub.conn, slot));
                own += usize::from(i < split);
            }
        }
        // Per-topic counts: one lookup per topic, not one per delivery.
        let star = (self.deliveries.len() - own) as u64;
        if own > 0
            && let Some(entry) = self.topics.get_mut(&event.topic)
        {
            entry.deliveries += own as u64;
        }
        if star > 0
            && let Some(entry) = self.topics.get_mut(ALL_TABLES)
        {
            entry.deliveries += star;
        }
        if matches!(event.body, EventBody::Publish { .. }) {
            self.receivers
                .record(event.offset, self.deliveries.len() as u64);
        }
        if self.deliveries.is_empty() {
            return;
        }
        // Group by connection: one queued item per connection.
        self.deliveries.sort_unstable();
        self.frames.clear();
        let deliveries = std::mem::take(&mut self.deliveries);
        for group in deliveries.chunk_by(|a, b| a.0 == b.0) {
            if group
                .iter()
                .all(|&(_, s)| self.subs[s].view.is_transparent())
            {
                self.deliver(group, committed, None);
            } else {
                self.deliver_viewed(group, committed);
            }
        }
        self.deliveries = deliveries;
        metrics::histogram!(APPEND_TO_DELIVERY_SECONDS).record(committed.durable_at.elapsed());
    }

    /// Queues `committed` once for the subscriptions in `group` (all of one
    /// connection), framed for their ids — a frame already built for this
    /// event and the same ids (`frames`) is shared.
    fn deliver(&mut self, group: &[(u64, usize)], committed: &Committed, view: Option<&View>) {
        let subs = self.subs_list(group);
        let item = match self.frames.iter().find(|(s, _)| *s == subs) {
            // Rendered for one reader's view: not shared.
            _ if let Some(view) = view => view.frame(&subs, &committed.event, &committed.json),
            Some((_, item)) => item.clone(),
            None => {
                let item = Outgoing::event(&subs, committed.event.offset, &committed.json);
                if self.frames.len() < FRAME_CACHE {
                    self.frames.push((subs, item.clone()));
                }
                item
            }
        };
        let outbox = self.subs[group[0].1].outbox.clone();
        let size = item.size() as u64;
        match outbox.push(item) {
            Pushed::Queued => {
                self.totals.deliveries += group.len() as u64;
                self.totals.delivered_bytes += size;
                for &(_, slot) in group {
                    self.subs[slot].progress.record(1, committed.event.offset);
                }
            }
            Pushed::Full => {
                let slots: Vec<usize> = group.iter().map(|&(_, s)| s).collect();
                self.overflow(group[0].0, &slots, committed.event.offset);
            }
            Pushed::Ended => {}
        }
    }

    /// The `subs` list of a group of one connection's subscriptions: the
    /// one subscription's (shared, no allocation) or a new list.
    fn subs_list(&self, group: &[(u64, usize)]) -> Bytes {
        if let [(_, slot)] = group {
            return self.subs[*slot].subs_json.clone();
        }
        let mut list = Vec::with_capacity(group.len() * 8 + 2);
        list.push(b'[');
        for (i, &(_, slot)) in group.iter().enumerate() {
            if i > 0 {
                list.push(b',');
            }
            list.extend_from_slice(&self.subs[slot].id_json);
        }
        list.push(b']');
        Bytes::from(list)
    }

    /// [`Shard::deliver`] for a connection with subscriptions under views
    /// (row-level rules, hidden fields): one item per distinct view, each
    /// rendered for it.
    fn deliver_viewed(&mut self, group: &[(u64, usize)], committed: &Committed) {
        let mut rest: Vec<(u64, usize)> = group.to_vec();
        while let Some(&(_, first)) = rest.first() {
            // An overflow closing the connection removed its subscriptions.
            if !self.subs.contains(first) {
                return;
            }
            let view = self.subs[first].view.clone();
            let (same, other): (Vec<_>, Vec<_>) = rest
                .into_iter()
                .partition(|&(_, s)| self.subs[s].view.same(&view));
            self.deliver(&same, committed, Some(&view));
            rest = other;
        }
    }

    /// Connection `conn` has no room for the event at `offset`, meant for
    /// `slots`: skip it for `skip` subscriptions, or end the connection.
    fn overflow(&mut self, conn: u64, slots: &[usize], offset: Offset) {
        let resume_from = Offset(offset.0 - 1);
        if slots.is_empty()
            || slots
                .iter()
                .any(|&s| self.subs[s].on_lag == LagPolicy::Close)
        {
            if let Some(c) = self.conns.get(&conn) {
                c.outbox.end(End::SlowConsumer { resume_from });
            }
            static SLOW: LogLimit = LogLimit::new(10);
            if let Some(suppressed) = SLOW.allow() {
                tracing::info!(conn, %resume_from, suppressed, "slow consumer: closing the connection");
            }
            self.totals.slow_consumers += 1;
            self.remove_conn(conn);
            return;
        }
        for &slot in slots {
            let sub = &mut self.subs[slot];
            if sub.lagging.is_none() {
                sub.lagging = Some(resume_from);
                self.lagging.push(slot);
                self.totals.lagged += 1;
            }
        }
    }

    /// Tells lagging subscriptions whose connection has room again where
    /// their gap is, and delivers to them from the next event on.
    fn resume_lagging(&mut self) {
        let until = self.head.next();
        let subs = &mut self.subs;
        self.lagging
            .retain(|&slot| subs.get_mut(slot).is_some_and(|sub| !resume(sub, until)));
    }

    fn handle(&mut self, command: Command) {
        match command {
            Command::Connect { conn, outbox, info } => {
                self.conns.insert(conn, Conn::new(outbox, *info));
            }
            Command::Identify { conn, user } => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.info.user = user;
                    c.info.identified = true;
                }
            }
            Command::Signal { signal, reply } => {
                let reach = self.route_signal(&signal);
                if let Some(reply) = reply {
                    let _ = reply.send(reach);
                }
            }
            Command::Remove {
                conn,
                id,
                notice,
                reply,
            } => {
                let slot = self
                    .conns
                    .get(&conn)
                    .and_then(|c| c.subs.get(id.as_str()).copied());
                if let Some(slot) = slot {
                    let sub = self.remove_sub(slot);
                    let _ = sub.outbox.push_control(notice, self.head);
                }
                if let Some(reply) = reply {
                    let _ = reply.send(slot.is_some());
                }
            }
            Command::Push { conn, item } => {
                if let Some(c) = self.conns.get(&conn) {
                    let _ = c.outbox.push_control(item, self.head);
                }
            }
            Command::Client { conn, reply } => {
                let _ = reply.send(self.conns.get(&conn).map(|c| self.details(conn, c)));
            }
            Command::Outbox { conn, reply } => {
                let found = self
                    .conns
                    .get(&conn)
                    .map(|c| (c.outbox.clone(), c.info.clone()));
                let _ = reply.send(found);
            }
            Command::Clients { reply } => {
                let list = self
                    .conns
                    .iter()
                    .map(|(&id, c)| self.details(id, c))
                    .collect();
                let _ = reply.send(list);
            }
            Command::Topic { topic, reply } => {
                let _ = reply.send(self.topics.get(&topic).map(|e| e.stats(&topic)));
            }
            Command::Subscribe {
                conn,
                outbox,
                spec,
                start,
                reply,
            } => {
                let answer = self.subscribe(conn, outbox, *spec, start);
                let _ = reply.send(answer);
            }
            Command::Activate {
                conn,
                id,
                nonce,
                after,
                reply,
            } => {
                let answer = match self.find(conn, &id, nonce) {
                    Some(slot) => self.activate(slot, after),
                    None => Activated::Gone,
                };
                let _ = reply.send(answer);
            }
            Command::Fail { conn, id, nonce } => {
                if let Some(slot) = self.find(conn, &id, nonce) {
                    let sub = self.remove_sub(slot);
                    self.report_ended(&sub, LeaveReason::Removed);
                }
            }
            Command::Unsubscribe { conn, id, reply } => {
                let answer = self.steerable(conn, &id).map(|slot| {
                    let sub = self.remove_sub(slot);
                    let done = Outgoing::message(&ServerMessage::Unsubscribed { id }, None);
                    let _ = sub.outbox.push_control(done, self.head);
                });
                let _ = reply.send(answer);
            }
            Command::List { conn, reply } => {
                let mut list: Vec<SubscriptionInfo> = self
                    .conns
                    .get(&conn)
                    .map(|c| c.subs.values().map(|&s| self.subs[s].info()).collect())
                    .unwrap_or_default();
                list.sort_by(|a, b| a.id.cmp(&b.id));
                let _ = reply.send(list);
            }
            Command::ListAll { reply } => {
                let list = self.subs.iter().map(|(_, s)| (s.conn, s.info())).collect();
                let _ = reply.send(list);
            }
            Command::Pause { conn, id, reply } => {
                let answer = self.steerable(conn, &id).and_then(|slot| self.pause(slot));
                let _ = reply.send(answer);
            }
            Command::Resume {
                conn,
                id,
                skip,
                reply,
            } => {
                let answer = self
                    .steerable(conn, &id)
                    .and_then(|slot| self.resume_paused(slot, skip));
                let _ = reply.send(answer);
            }
            Command::Update {
                conn,
                id,
                selection,
                reply,
            } => {
                let answer = self
                    .steerable(conn, &id)
                    .and_then(|slot| self.update(slot, *selection));
                let _ = reply.send(answer);
            }
            Command::Disconnect { conn } => self.remove_conn(conn),
            Command::Totals { reply } => {
                let _ = reply.send(self.totals);
            }
            Command::Stats { reply } => {
                let _ = reply.send(HubStats {
                    connections: self.conns.values().filter(|c| !c.subs.is_empty()).count(),
                    clients: self.conns.len(),
                    subscriptions: self.subs.len(),
                    queued_bytes: self.conns.values().map(|c| c.outbox.bytes()).sum(),
                    routed: self.head,
                    totals: self.totals,
                    topics: self.topics.iter().map(|(t, e)| e.stats(t)).collect(),
                    shards: 1,
                });
            }
        }
    }

    fn details(&self, id: u64, conn: &Conn) -> ClientDetails {
        let mut subscriptions: Vec<SubscriptionInfo> =
            conn.subs.values().map(|&s| self.subs[s].info()).collect();
        subscriptions.sort_by(|a, b| a.id.cmp(&b.id));
        ClientDetails {
            id,
            info: conn.info.clone(),
            subscriptions,
        }
    }

    /// The slot of subscription `id` of `conn`, or `unknown_subscription`.
    fn slot_of(&self, conn: u64, id: &str) -> Result<usize, HubError> {
        self.conns
            .get(&conn)
            .and_then(|c| c.subs.get(id).copied())
            .ok_or_else(|| {
                HubError::new(
                    ErrorCode::UnknownSubscription,
                    format!("no subscription {id:?} on this connection"),
                )
            })
    }

    /// [`Shard::slot_of`] for `unsubscribe`, `pause`, `resume` and
    /// `update`, which a room membership refuses: it ends with `leave`, and
    /// a paused or filtered member would sit in the presence list without
    /// hearing the room.
    fn steerable(&self, conn: u64, id: &str) -> Result<usize, HubError> {
        let slot = self.slot_of(conn, id)?;
        if self.subs[slot].membership {
            return Err(HubError::new(
                ErrorCode::InvalidParameter,
                format!("{id:?} is a room you joined: it is left with `leave`, not steered"),
            ));
        }
        Ok(slot)
    }

    /// Stops delivering to a live subscription; `paused` names the last
    /// offset it got (or, if it was skipping, the start of its gap, which
    /// resuming fills).
    fn pause(&mut self, slot: usize) -> Result<(), HubError> {
        let head = self.head;
        let sub = &mut self.subs[slot];
        if sub.paused.is_none() {
            if !sub.live {
                return Err(not_live(&sub.id));
            }
            let at = sub.lagging.take().unwrap_or(sub.after.max(head));
            sub.paused = Some(at);
            self.unindex(slot);
        }
        let sub = &self.subs[slot];
        let offset = sub.paused.unwrap_or_default();
        let paused = Outgoing::message(
            &ServerMessage::Paused {
                id: sub.id.to_string(),
                offset,
            },
            None,
        );
        let _ = sub.outbox.push_control(paused, offset);
        Ok(())
    }

    /// Makes a paused subscription live again: from where it paused (the
    /// recent window or, via the returned reader, the log), or from now.
    fn resume_paused(
        &mut self,
        slot: usize,
        skip: bool,
    ) -> Result<Option<Box<history::Pending>>, HubError> {
        let sub = &mut self.subs[slot];
        let Some(paused_at) = sub.paused.take() else {
            return Err(HubError::new(
                ErrorCode::InvalidParameter,
                format!("subscription {:?} is not paused", sub.id),
            ));
        };
        sub.resuming = true;
        if skip {
            sub.after = self.head;
            self.go_live(slot, self.head);
            return Ok(None);
        }
        sub.after = paused_at;
        let pending = sub.pending(paused_at, false);
        Ok(match self.activate(slot, paused_at) {
            Activated::Live | Activated::Gone => None,
            Activated::Behind => Some(Box::new(pending)),
        })
    }

    /// Replaces a subscription's selection: events routed so far were
    /// matched with the old one, every later one with the new one.
    fn update(&mut self, slot: usize, selection: Selection) -> Result<(), HubError> {
        let sub = &self.subs[slot];
        if !sub.live && sub.paused.is_none() {
            return Err(not_live(&sub.id));
        }
        let live = sub.live;
        if live {
            self.unindex(slot);
        }
        let sub = &mut self.subs[slot];
        sub.selector = Selector::new(
            selection.ops.as_deref(),
            selection.changed,
            selection.filter,
        );
        sub.filter_source = selection.filter_source;
        sub.ops_list = selection.ops;
        if live {
            self.index(slot);
        }
        let sub = &self.subs[slot];
        let offset = self.head.max(sub.after);
        let updated = Outgoing::message(
            &ServerMessage::Updated {
                id: sub.id.to_string(),
                offset,
            },
            None,
        );
        let _ = sub.outbox.push_control(updated, offset);
        Ok(())
    }

    fn index(&mut self, slot: usize) {
        let sub = &self.subs[slot];
        self.topics
            .entry(sub.topic.key())
            .or_default()
            .index
            .insert(slot, sub.selector.filter().clone());
    }

    fn unindex(&mut self, slot: usize) {
        let topic = self.subs[slot].topic.key();
        if let Some(entry) = self.topics.get_mut(&topic) {
            entry.index.remove(slot);
            if entry.index.is_empty() {
                self.topics.remove(&topic);
            }
        }
    }

    fn find(&self, conn: u64, id: &str, nonce: u64) -> Option<usize> {
        let slot = *self.conns.get(&conn)?.subs.get(id)?;
        (self.subs[slot].nonce == nonce).then_some(slot)
    }

    fn subscribe(
        &mut self,
        conn: u64,
        outbox: Option<Arc<Outbox>>,
        spec: SubscriptionSpec,
        start: Option<Offset>,
    ) -> Result<Option<Box<history::Pending>>, HubError> {
        let entry = match outbox {
            Some(outbox) => self
                .conns
                .entry(conn)
                .or_insert_with(|| Conn::new(outbox, ClientInfo::default())),
            None => self.conns.get_mut(&conn).ok_or_else(|| {
                HubError::new(ErrorCode::NotFound, format!("no connection {conn}"))
            })?,
        };
        let outbox = entry.outbox.clone();
        if entry.subs.contains_key(spec.id.as_str()) {
            return Err(HubError::new(
                ErrorCode::SubscriptionExists,
                format!("this connection already has a subscription {:?}", spec.id),
            ));
        }
        if entry.subs.len() >= self.config.max_subscriptions {
            return Err(HubError::new(
                ErrorCode::TooManySubscriptions,
                format!(
                    "a connection may hold at most {} subscriptions",
                    self.config.max_subscriptions
                ),
            ));
        }
        let id: Arc<str> = spec.id.as_str().into();
        let id_json = json_string(&spec.id);
        let mut subs_json = Vec::with_capacity(id_json.len() + 2);
        subs_json.push(b'[');
        subs_json.extend_from_slice(&id_json);
        subs_json.push(b']');
        let nonce = self.next_nonce;
        self.next_nonce += 1;
        let after = start.unwrap_or(self.head);
        let sub = Sub {
            conn,
            nonce,
            id: id.clone(),
            id_json,
            subs_json: subs_json.into(),
            topic: spec.topic.clone(),
            selector: Selector::of(&spec),
            filter_source: spec.filter_source.clone(),
            ops_list: spec.ops.clone(),
            on_lag: spec.on_lag,
            view: spec.view,
            after,
            live: false,
            lagging: None,
            paused: None,
            resuming: false,
            created_at: Timestamp::now(),
            progress: Arc::default(),
            outbox,
            cancel: Arc::new(AtomicBool::new(false)),
            membership: matches!(spec.announce, Announce::Joined(_)),
            announce: spec.announce,
            sees_presence: spec.sees_presence,
        };
        let pending = sub.pending(after, spec.snapshot);
        let slot = self.subs.insert(sub);
        entry.subs.insert(id, slot);
        match start {
            _ if spec.snapshot => Ok(Some(Box::new(pending))),
            None => {
                self.go_live(slot, self.head);
                Ok(None)
            }
            Some(after) => match self.activate(slot, after) {
                Activated::Live | Activated::Gone => Ok(None),
                Activated::Behind => Ok(Some(Box::new(pending))),
            },
        }
    }

    /// Delivers the recent events after `after` to a pending subscription,
    /// then makes it live — if they fit in its connection's outbox now.
    /// Otherwise, or if the recent window no longer reaches back to `after`,
    /// the history reader goes on from the log, paced by the client.
    fn activate(&mut self, slot: usize, after: Offset) -> Activated {
        if after < self.recent.floor {
            return Activated::Behind;
        }
        let sub = &self.subs[slot];
        let backlog: Vec<Outgoing> = self
            .recent
            .after(after)
            .filter(|c| {
                sub.topic.selects(&c.event.topic) && sub.selector.selects(&c.event, &sub.view)
            })
            .map(|c| sub.view.frame(&sub.subs_json, &c.event, &c.json))
            .collect();
        let bytes: usize = backlog.iter().map(Outgoing::size).sum();
        if bytes > sub.outbox.room() {
            return Activated::Behind;
        }
        for item in backlog {
            let offset = match &item {
                Outgoing::Event { offset, .. } => *offset,
                Outgoing::Message { .. } => continue,
            };
            // Only the connection's own answers can have taken the room
            // meanwhile; then this is an overflow like any other.
            if sub.outbox.push(item) == Pushed::Queued {
                sub.progress.record(1, offset);
            } else {
                let conn = sub.conn;
                self.overflow(conn, &[slot], offset);
                if !self.subs.contains(slot) {
                    return Activated::Gone;
                }
                break;
            }
        }
        self.go_live(slot, after.max(self.head));
        Activated::Live
    }

    fn go_live(&mut self, slot: usize, at: Offset) {
        let sub = &mut self.subs[slot];
        sub.after = sub.after.max(at);
        sub.live = true;
        let (id, offset) = (sub.id.to_string(), sub.after);
        let announce = if std::mem::take(&mut sub.resuming) {
            Some(ServerMessage::Resumed { id, offset })
        } else {
            match std::mem::take(&mut sub.announce) {
                Announce::Subscribed => Some(ServerMessage::Subscribed { id, offset }),
                Announce::Joined(joined) => Some(joined.live_at(offset)),
                Announce::Silent => None,
            }
        };
        if let Some(announce) = announce {
            let _ = sub
                .outbox
                .push_control(Outgoing::message(&announce, Some(offset)), offset);
        }
        self.index(slot);
    }

    fn remove_sub(&mut self, slot: usize) -> Sub {
        if self.subs[slot].live {
            self.unindex(slot);
        }
        let sub = self.subs.remove(slot);
        sub.outbox.cancel(&sub.cancel);
        if let Some(conn) = self.conns.get_mut(&sub.conn) {
            conn.subs.remove(&sub.id);
        }
        sub
    }

    fn remove_conn(&mut self, conn: u64) {
        let Some(entry) = self.conns.get(&conn) else {
            return;
        };
        let slots: Vec<usize> = entry.subs.values().copied().collect();
        for slot in slots {
            let sub = self.remove_sub(slot);
            self.report_ended(&sub, LeaveReason::Disconnected);
        }
        self.conns.remove(&conn);
    }

    /// Tells the rooms that the hub ended membership `sub` on its own.
    fn report_ended(&self, sub: &Sub, reason: LeaveReason) {
        if sub.membership
            && let Topic::Channel(room) = &sub.topic
            && let Some(ended) = self.ended.get()
        {
            let _ = ended.send((sub.conn, room.clone(), reason));
        }
    }

    /// Forgets what was routed: the shard continues from `head` with an
    /// empty recent window, so no later subscription can be served across
    /// the events it failed to route.
    fn restart_at(&mut self, head: Offset) {
        self.head = head;
        self.recent.groups.clear();
        self.recent.bytes = 0;
        self.recent.floor = head;
        self.routed.send_replace(head);
    }

    fn end_all(&mut self) {
        let conns: Vec<u64> = self.conns.keys().copied().collect();
        for conn in conns {
            if let Some(c) = self.conns.get(&conn) {
                c.outbox.end(End::Closed);
            }
            self.remove_conn(conn);
        }
    }
}
