//! `GET /v1/stats`: the server's counters as one JSON object (also the WS
//! `stats` answer), the [`Snapshot`] that both it and `GET /metrics` are
//! built from, and `GET /v1/subscriptions`, every subscription.
//!
//! # Rates
//! A ticker task samples the totals (events appended, deliveries) once a
//! second into a ring of the last [`WINDOW`] samples it owns, and publishes
//! the rate over that window through a `watch` channel: a request reads the
//! latest rate without waiting or locking. The rate over the ring is
//! `(newest - oldest) / (time between them)`, so it covers the last ten
//! seconds once the server has run that long, and is 0 until two samples
//! exist. The ticker ends when the store closes or the app is dropped.

use crate::AppState;
use crate::error::ApiError;
use crate::security::Caller;
use axum::Json;
use axum::extract::State;
use herald_core::{Herald, Hub, HubStats};
use herald_proto::{Epoch, Offset, SubscriptionInfo};
use herald_store::{Appended, StoreStats};
use serde::Serialize;
use std::collections::VecDeque;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// How often the rate ticker samples.
const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// Samples in the rate window: ten intervals of [`SAMPLE_EVERY`].
const WINDOW: usize = 11;

/// Everything the server reports, read at one moment.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub(crate) hub: HubStats,
    pub(crate) store: StoreStats,
    /// WebSocket and SSE sessions open now.
    pub(crate) sessions_open: usize,
    /// Sessions admitted since start.
    pub(crate) sessions_opened: u64,
    /// Resident memory of the process, where the OS tells it.
    pub(crate) resident_bytes: Option<u64>,
}

impl Snapshot {
    pub(crate) async fn take(app: &AppState) -> Snapshot {
        Snapshot {
            hub: app.hub.stats().await,
            store: app.herald.store().stats(),
            sessions_open: app.sessions.open(),
            sessions_opened: app.sessions.opened(),
            resident_bytes: resident_memory_bytes(),
        }
    }
}

/// Per-second rates over the last ten seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Rates {
    pub(crate) events_per_second: f64,
    pub(crate) deliveries_per_second: f64,
}

/// One sample of the totals the rates are computed from.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    events: u64,
    deliveries: u64,
}

/// The rates between the oldest and the newest sample.
fn rates(ring: &VecDeque<Sample>) -> Rates {
    let (Some(oldest), Some(newest)) = (ring.front(), ring.back()) else {
        return Rates::default();
    };
    let seconds = newest.at.duration_since(oldest.at).as_secs_f64();
    if seconds <= 0.0 {
        return Rates::default();
    }
    #[allow(clippy::cast_precision_loss)] // exact below 2^52 events
    let per_second = |from: u64, to: u64| to.saturating_sub(from) as f64 / seconds;
    Rates {
        events_per_second: per_second(oldest.events, newest.events),
        deliveries_per_second: per_second(oldest.deliveries, newest.deliveries),
    }
}

/// Starts the rate ticker (see the module doc); call inside a Tokio runtime.
pub(crate) fn spawn_rate_ticker(herald: Herald, hub: Hub) -> watch::Receiver<Rates> {
    let (publish, rates_rx) = watch::channel(Rates::default());
    tokio::spawn(async move {
        let mut closed = herald.store().closed();
        let mut tick = tokio::time::interval(SAMPLE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut ring = VecDeque::with_capacity(WINDOW);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = publish.closed() => return,
                _ = closed.wait_for(|&c| c) => {
                    publish.send_replace(Rates::default());
                    return;
                }
            }
            let sample = Sample {
                at: Instant::now(),
                events: herald.store().stats().appended.total(),
                deliveries: hub.totals().await.deliveries,
            };
            if ring.len() == WINDOW {
                ring.pop_front();
            }
            ring.push_back(sample);
            publish.send_replace(rates(&ring));
        }
    });
    rates_rx
}

/// The process's resident set size in bytes (`VmRSS` in
/// `/proc/self/status`); `None` where that file does not exist.
pub(crate) fn resident_memory_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The answer to `GET /v1/stats`; every counter counts from when this
/// process started (or opened the store), not across restarts.
#[derive(Debug, Serialize)]
pub(crate) struct Stats {
    /// Events appended to the log (document changes and channel messages).
    events_appended: u64,
    /// The same, by kind: `insert`, `update`, `delete`, `publish`.
    events_appended_by_op: Appended,
    /// Events appended per second over the last ten seconds.
    events_per_second: f64,
    /// Events the hub processed (routed to its subscriptions), counted
    /// once per event.
    events_processed: u64,
    /// Events queued for subscribers: one per matching subscription.
    deliveries: u64,
    /// Deliveries per second over the last ten seconds.
    deliveries_per_second: f64,
    /// Bytes of event frames queued for subscribers (what goes out on
    /// WebSockets and SSE streams, before transport framing).
    bytes_out: u64,
    /// WebSocket and SSE sessions open now.
    sessions: usize,
    /// Sessions admitted since start.
    sessions_opened: u64,
    /// Connections holding at least one subscription.
    connections: usize,
    /// Subscriptions open now, live or catching up.
    subscriptions: usize,
    /// Bytes waiting in connections' outboxes now.
    queued_bytes: usize,
    /// Connections closed for falling behind (`slow_consumer`).
    slow_consumer_disconnects: u64,
    /// Times an `on_lag: "skip"` subscription started skipping events.
    lagged: u64,
    /// Resident memory of the process in bytes; `null` off Linux.
    memory_rss_bytes: Option<u64>,
    /// The change log.
    log: LogStats,
    /// Topics (tables, `table:*`, channels) with live subscriptions, most
    /// subscribed first, at most [`TOPICS`]. Their counters run from when
    /// they last got a subscriber.
    topics: Vec<TopicJson>,
}

/// Hub shards: every shard routes every event.
fn shards(hub: &HubStats) -> u64 {
    hub.shards.max(1) as u64
}

/// Most topics listed in [`Stats`].
const TOPICS: usize = 100;

/// One entry of [`Stats::topics`].
#[derive(Debug, Serialize)]
struct TopicJson {
    /// `table:<name>`, `table:*` or the channel name.
    topic: String,
    /// Live subscriptions to it.
    subscriptions: usize,
    /// Its events (messages, or table changes) routed to subscribers.
    events: u64,
    /// Events queued for its subscriptions.
    deliveries: u64,
    /// When its last event was appended (Unix ms; 0: none yet).
    last_event: herald_proto::Timestamp,
}

/// The `log` part of [`Stats`].
#[derive(Debug, Serialize)]
struct LogStats {
    /// The last durable offset (0 when nothing was written).
    head: Offset,
    /// The first offset still in the log.
    earliest: Offset,
    /// The offset the hub has routed every event up to.
    routed: Offset,
    /// The store's epoch (16 hex digits).
    epoch: Epoch,
    /// Bytes of log records retained.
    bytes: u64,
}

impl Stats {
    /// The statistics now.
    pub(crate) async fn now(app: &AppState) -> Stats {
        let rates = *app.rates.borrow();
        Stats::new(Snapshot::take(app).await, rates)
    }

    fn new(snapshot: Snapshot, rates: Rates) -> Stats {
        let Snapshot {
            hub,
            store,
            sessions_open,
            sessions_opened,
            resident_bytes,
        } = snapshot;
        Stats {
            events_appended: store.appended.total(),
            events_appended_by_op: store.appended,
            events_per_second: rates.events_per_second,
            events_processed: hub.totals.events / shards(&hub),
            deliveries: hub.totals.deliveries,
            deliveries_per_second: rates.deliveries_per_second,
            bytes_out: hub.totals.delivered_bytes,
            sessions: sessions_open,
            sessions_opened,
            connections: hub.connections,
            subscriptions: hub.subscriptions,
            queued_bytes: hub.queued_bytes,
            slow_consumer_disconnects: hub.totals.slow_consumers,
            lagged: hub.totals.lagged,
            memory_rss_bytes: resident_bytes,
            log: LogStats {
                head: store.head,
                earliest: store.earliest,
                routed: hub.routed,
                epoch: store.epoch,
                bytes: store.log_bytes,
            },
            topics: hub
                .topics
                .into_iter()
                .take(TOPICS)
                .map(|t| TopicJson {
                    topic: t.topic,
                    subscriptions: t.subscriptions,
                    events: t.events,
                    deliveries: t.deliveries,
                    last_event: t.last_event,
                })
                .collect(),
        }
    }
}

/// `GET /v1/stats` (`admin`).
pub(crate) async fn stats(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Stats>, ApiError> {
    caller.require_admin(&app, "stats")?;
    Ok(Json(Stats::now(&app).await))
}

/// One subscription in `GET /v1/subscriptions`.
#[derive(Debug, Serialize)]
pub(crate) struct Listed {
    /// The connection holding it (as in its `welcome`).
    connection: String,
    #[serde(flatten)]
    subscription: SubscriptionInfo,
}

/// `GET /v1/subscriptions`: every subscription of every connection
/// (`admin`).
pub(crate) async fn subscriptions(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller.require_admin(&app, "list subscriptions")?;
    let listed: Vec<Listed> = app
        .hub
        .subscriptions()
        .await
        .into_iter()
        .map(|(conn, subscription)| Listed {
            connection: conn.to_string(),
            subscription,
        })
        .collect();
    Ok(Json(serde_json::json!({ "subscriptions": listed })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Instant, secs: u64, events: u64, deliveries: u64) -> Sample {
        Sample {
            at: at + Duration::from_secs(secs),
            events,
            deliveries,
        }
    }

    #[test]
    fn rates_span_the_oldest_to_the_newest_sample() {
        let t0 = Instant::now();
        let ring: VecDeque<Sample> = [
            sample(t0, 0, 100, 0),
            sample(t0, 5, 120, 50),
            sample(t0, 10, 150, 200),
        ]
        .into();
        assert_eq!(
            rates(&ring),
            Rates {
                events_per_second: 5.0,
                deliveries_per_second: 20.0
            }
        );
    }

    #[test]
    fn rates_are_zero_until_two_samples_exist() {
        let t0 = Instant::now();
        assert_eq!(rates(&VecDeque::new()), Rates::default());
        assert_eq!(rates(&[sample(t0, 0, 9, 9)].into()), Rates::default());
    }

    #[test]
    fn resident_memory_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(resident_memory_bytes().is_some_and(|b| b > 0));
        }
    }
}
