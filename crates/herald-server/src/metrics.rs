//! Prometheus metrics: `GET /metrics`, and counting and timing REST writes.
//!
//! # Two recorders
//! - **The process's**, for hot paths: REST write outcomes and ack latency
//!   ([`timed`], here) and group commits (the store's committer, see
//!   `herald_store::stats`) record through the [`metrics`] facade. The
//!   first [`App::new`](crate::App::new) of the process builds a Prometheus
//!   recorder and installs it as the global one; later apps reuse it, so
//!   many servers can start in one test process. A thread runs its upkeep
//!   every few seconds (draining histogram samples into buckets), so its
//!   memory stays bounded even when nobody scrapes. If the program
//!   embedding Herald installed another recorder first, these series go to
//!   that one and `/metrics` leaves them out.
//! - **Each server's own** ([`ServerMetrics`]), for what the server already
//!   counts — hub totals, sessions, appended events, log offsets, memory.
//!   Those are read when `/metrics` is scraped ([`Snapshot`]) and set as
//!   absolute values: nothing is added to the hot path, and two servers in
//!   one process never show each other's values (a counter's absolute value
//!   can only rise, so a shared recorder could not hold both).
//!
//! A scrape renders the server's own series, then the process's.
//!
//! # Cardinality
//! Every label comes from a closed set: `op` (event kinds), `request` (the
//! six REST writes) and `outcome` (`ok`, an error code, or `other`). Never a
//! table, channel, document or connection id.

use crate::AppState;
use crate::stats::Snapshot;
use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use herald_proto::ErrorCode;
use herald_store::stats::{COMMIT_GROUP_EVENTS, FSYNC_SECONDS};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

const EVENTS_APPENDED: &str = "herald_events_appended_total";
const HTTP_WRITES: &str = "herald_http_writes_total";
const WRITE_ACK_SECONDS: &str = "herald_write_ack_seconds";
const HUB_EVENTS_ROUTED: &str = "herald_hub_events_routed_total";
const HUB_DELIVERIES: &str = "herald_hub_deliveries_total";
const HUB_DELIVERED_BYTES: &str = "herald_hub_delivered_bytes_total";
const HUB_SLOW_CONSUMERS: &str = "herald_hub_slow_consumers_total";
const HUB_LAGGED: &str = "herald_hub_lagged_total";
const HUB_CONNECTIONS: &str = "herald_hub_connections";
const HUB_SUBSCRIPTIONS: &str = "herald_hub_subscriptions";
const HUB_QUEUED_BYTES: &str = "herald_hub_queued_bytes";
const HUB_ROUTED_OFFSET: &str = "herald_hub_routed_offset";
const SESSIONS_OPEN: &str = "herald_sessions_open";
const SESSIONS_OPENED: &str = "herald_sessions_opened_total";
const LOG_HEAD: &str = "herald_log_head_offset";
const LOG_EARLIEST: &str = "herald_log_earliest_offset";
const LOG_BYTES: &str = "herald_log_bytes";
const RESIDENT_MEMORY: &str = "herald_process_resident_memory_bytes";

/// The kind of a metric, for its description.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Metrics recorded on hot paths into the process's recorder, with their
/// HELP text.
const RECORDED: &[(Kind, &str, &str)] = &[
    (
        Kind::Counter,
        HTTP_WRITES,
        "REST write requests answered, by request (insert, put, patch, delete, batch, publish, broadcast) and outcome (ok or the error code).",
    ),
    (
        Kind::Histogram,
        WRITE_ACK_SECONDS,
        "Seconds from receiving a REST write to its acknowledgement (durable), by request; successful writes only.",
    ),
    (
        Kind::Histogram,
        FSYNC_SECONDS,
        "Seconds to commit one group of writes with its fdatasync.",
    ),
    (
        Kind::Histogram,
        COMMIT_GROUP_EVENTS,
        "Events per group commit (writers that share one fsync).",
    ),
    (
        Kind::Histogram,
        herald_core::hub::APPEND_TO_DELIVERY_SECONDS,
        "Seconds from an event being durable to its being queued for its subscribers' connections (once per event with subscribers).",
    ),
    (
        Kind::Counter,
        herald_core::routes::ROUTE_SKIPPED_TOTAL,
        "Document changes a routing rule did not route because its channel template could not be rendered (a field missing or unusable), counted as the committer applies them.",
    ),
];

/// Metrics read from the server when scraped, with their HELP text.
const SCRAPED: &[(Kind, &str, &str)] = &[
    (
        Kind::Counter,
        EVENTS_APPENDED,
        "Events appended to the log since the store opened, by op (insert, update, delete, publish).",
    ),
    (
        Kind::Counter,
        HUB_EVENTS_ROUTED,
        "Events routed by the hub, summed over shards (every shard sees every event).",
    ),
    (
        Kind::Counter,
        HUB_DELIVERIES,
        "Events queued for subscribers, one per matching subscription.",
    ),
    (
        Kind::Counter,
        HUB_DELIVERED_BYTES,
        "Bytes of event frames queued for subscribers.",
    ),
    (
        Kind::Counter,
        HUB_SLOW_CONSUMERS,
        "Connections closed because they fell too far behind (slow_consumer).",
    ),
    (
        Kind::Counter,
        HUB_LAGGED,
        "Times an on_lag=skip subscription started skipping events.",
    ),
    (
        Kind::Gauge,
        HUB_CONNECTIONS,
        "Connections holding at least one subscription.",
    ),
    (
        Kind::Gauge,
        HUB_SUBSCRIPTIONS,
        "Subscriptions open, live or catching up.",
    ),
    (
        Kind::Gauge,
        HUB_QUEUED_BYTES,
        "Bytes waiting in connections' outboxes (queue depth).",
    ),
    (
        Kind::Gauge,
        HUB_ROUTED_OFFSET,
        "Offset every hub shard has routed up to; head minus this is the routing backlog.",
    ),
    (
        Kind::Gauge,
        SESSIONS_OPEN,
        "WebSocket and SSE sessions open.",
    ),
    (
        Kind::Counter,
        SESSIONS_OPENED,
        "WebSocket and SSE sessions admitted since start.",
    ),
    (
        Kind::Gauge,
        LOG_HEAD,
        "Last durable offset of the change log.",
    ),
    (
        Kind::Gauge,
        LOG_EARLIEST,
        "First offset still in the change log (retention removes older ones).",
    ),
    (
        Kind::Gauge,
        LOG_BYTES,
        "Bytes of log records retained, before the engine's compression.",
    ),
    (
        Kind::Gauge,
        RESIDENT_MEMORY,
        "Resident memory of the process in bytes.",
    ),
];

/// Latency buckets in seconds, 100 µs to 10 s; every histogram without
/// buckets of its own uses them.
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Group sizes, powers of two up to the committer's largest group.
const GROUP_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];
/// How often histogram samples are drained into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Describes `metrics` to the recorder the facade points at now.
fn describe(metrics: &[(Kind, &'static str, &'static str)]) {
    for &(kind, name, help) in metrics {
        match kind {
            Kind::Counter => metrics::describe_counter!(name, help),
            Kind::Gauge => metrics::describe_gauge!(name, help),
            Kind::Histogram => metrics::describe_histogram!(name, help),
        }
    }
}

/// The process's recorder, installed as the global one on first use;
/// `None` when another recorder was installed first.
fn process_recorder() -> Option<&'static PrometheusHandle> {
    static PROCESS: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    PROCESS.get_or_init(install).as_ref()
}

fn install() -> Option<PrometheusHandle> {
    let recorder = PrometheusBuilder::new()
        .set_buckets(LATENCY_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(COMMIT_GROUP_EVENTS.into()), GROUP_BUCKETS)
        })
        .expect("bucket lists are not empty")
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_err() {
        tracing::warn!(
            "another metrics recorder is installed; /metrics leaves out write, fsync and group-commit metrics"
        );
        return None;
    }
    describe(RECORDED);
    let upkeep = handle.clone();
    let spawned = std::thread::Builder::new()
        .name("herald-metrics".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the metrics upkeep thread");
    }
    Some(handle)
}

/// One server's metrics: its own recorder for the values read at scrape
/// time, rendered together with the process's. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct ServerMetrics {
    own: Arc<PrometheusRecorder>,
}

impl ServerMetrics {
    /// Also installs the process's recorder if no app did yet.
    pub(crate) fn new() -> ServerMetrics {
        process_recorder();
        let own = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&own, || describe(SCRAPED));
        ServerMetrics { own: Arc::new(own) }
    }

    /// Sets `snapshot`'s values and renders every metric as Prometheus text.
    fn render(&self, snapshot: &Snapshot) -> String {
        metrics::with_local_recorder(&*self.own, || record(snapshot));
        let mut text = self.own.handle().render();
        if let Some(process) = process_recorder() {
            text.push_str(&process.render());
        }
        text
    }
}

/// Sets the values read at scrape time.
#[allow(clippy::cast_precision_loss)] // gauges are f64; exact below 2^52
fn record(s: &Snapshot) {
    let appended = &s.store.appended;
    for (op, n) in [
        ("insert", appended.insert),
        ("update", appended.update),
        ("delete", appended.delete),
        ("publish", appended.publish),
    ] {
        counter!(EVENTS_APPENDED, "op" => op).absolute(n);
    }
    let totals = &s.hub.totals;
    counter!(HUB_EVENTS_ROUTED).absolute(totals.events);
    counter!(HUB_DELIVERIES).absolute(totals.deliveries);
    counter!(HUB_DELIVERED_BYTES).absolute(totals.delivered_bytes);
    counter!(HUB_SLOW_CONSUMERS).absolute(totals.slow_consumers);
    counter!(HUB_LAGGED).absolute(totals.lagged);
    counter!(SESSIONS_OPENED).absolute(s.sessions_opened);
    gauge!(HUB_CONNECTIONS).set(s.hub.connections as f64);
    gauge!(HUB_SUBSCRIPTIONS).set(s.hub.subscriptions as f64);
    gauge!(HUB_QUEUED_BYTES).set(s.hub.queued_bytes as f64);
    gauge!(HUB_ROUTED_OFFSET).set(s.hub.routed.0 as f64);
    gauge!(SESSIONS_OPEN).set(s.sessions_open as f64);
    gauge!(LOG_HEAD).set(s.store.head.0 as f64);
    gauge!(LOG_EARLIEST).set(s.store.earliest.0 as f64);
    gauge!(LOG_BYTES).set(s.store.log_bytes as f64);
    if let Some(bytes) = s.resident_bytes {
        gauge!(RESIDENT_MEMORY).set(bytes as f64);
    }
}

/// `GET /metrics`: Prometheus text format 0.0.4 (`metrics` or `admin`).
pub(crate) async fn scrape(
    State(app): State<AppState>,
    caller: crate::security::Caller,
) -> Response {
    if let Err(e) = caller.require(&app, "metrics", herald_auth::Action::Metrics, "") {
        return e.into_response();
    }
    let snapshot = Snapshot::take(&app).await;
    let text = app.metrics.render(&snapshot);
    (
        [(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
        text,
    )
        .into_response()
}

/// Which REST write a request is: the `request` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WriteRequest {
    Insert,
    Put,
    Patch,
    Delete,
    Batch,
    Publish,
    Broadcast,
}

impl WriteRequest {
    fn as_str(self) -> &'static str {
        match self {
            WriteRequest::Insert => "insert",
            WriteRequest::Put => "put",
            WriteRequest::Patch => "patch",
            WriteRequest::Delete => "delete",
            WriteRequest::Batch => "batch",
            WriteRequest::Publish => "publish",
            WriteRequest::Broadcast => "broadcast",
        }
    }
}

/// `handler`, counting its outcomes and timing its acknowledgements.
pub(crate) fn timed<H, T>(handler: H, request: WriteRequest) -> impl Handler<T, AppState>
where
    H: Handler<T, AppState>,
    T: 'static,
{
    handler.layer(axum::middleware::from_fn_with_state(request, time_write))
}

/// Times one write from when the router hands it over (before its body is
/// read) to its answer; the outcome is the error code [`ApiError`] left in
/// the response, `ok` for a success, `other` for anything else.
///
/// [`ApiError`]: crate::ApiError
async fn time_write(State(request): State<WriteRequest>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let response = next.run(req).await;
    let outcome = match response.extensions().get::<ErrorCode>() {
        Some(code) => code.as_str(),
        None if response.status().is_success() => "ok",
        None => "other",
    };
    if outcome == "ok" {
        histogram!(WRITE_ACK_SECONDS, "request" => request.as_str()).record(started.elapsed());
    }
    counter!(HTTP_WRITES, "request" => request.as_str(), "outcome" => outcome).increment(1);
    response
}
