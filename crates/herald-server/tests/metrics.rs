//! `GET /metrics`, `GET /v1/stats` and `GET /readyz`, checked against known
//! traffic on a real server.
//!
//! `/metrics` is parsed with a Prometheus text-format parser
//! (`prometheus-parse`), not by string matching.
//!
//! The tests of this file share one process and so one metrics recorder.
//! Series read from the scraped server when scraped (appended events, hub
//! totals, sessions, log offsets) belong to that server and are compared
//! exactly. Series recorded on hot paths (write outcomes, the ack and fsync
//! histograms) are shared by every server of the process, so every test
//! here holds [`SERIAL`]: no other test's traffic lands between a test's
//! two scrapes.

mod support;

use prometheus_parse::{Scrape, Value as Sample};
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use support::{Server, TIMEOUT};

/// Held by every test of this file, for its whole run.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// One parsed scrape of `/metrics`.
struct Metrics {
    scrape: Scrape,
}

impl Metrics {
    async fn of(server: &Server) -> Metrics {
        let reply = server
            .http
            .get(format!("{}/metrics", server.base))
            .send()
            .await
            .unwrap();
        assert_eq!(reply.status(), 200);
        let content_type = reply.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let text = reply.text().await.unwrap();
        let scrape = Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap();
        Metrics { scrape }
    }

    /// The value of the series `name{labels}` (a counter, a gauge, or a
    /// histogram's `_count`/`_sum`); 0 when it does not exist yet.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .map_or(0.0, |s| match s.value {
                Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => v,
                ref other => panic!("{name} is not a single value: {other:?}"),
            })
    }

    fn has(&self, name: &str) -> bool {
        self.scrape.samples.iter().any(|s| s.metric == name)
    }
}

/// `after - before` of one series.
fn delta(before: &Metrics, after: &Metrics, name: &str, labels: &[(&str, &str)]) -> f64 {
    after.value(name, labels) - before.value(name, labels)
}

async fn get(server: &Server, path: &str) -> (u16, Value) {
    server.call(Method::GET, path, None).await
}

#[tokio::test]
async fn metrics_move_with_known_traffic() {
    let _serial = SERIAL.lock().await;
    let server = Server::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(json!({"id": "s", "table": "posts"})).await;
    let before = Metrics::of(&server).await;

    const N: u64 = 5;
    let mut last = 0;
    for i in 0..N {
        last = server.insert("posts", json!({ "n": i })).await;
    }
    for _ in 0..N {
        ws.expect("event").await;
    }
    let after = Metrics::of(&server).await;

    // Read from this server at scrape time: exact.
    for (op, n) in [("insert", N), ("update", 0), ("delete", 0), ("publish", 0)] {
        assert_eq!(
            after.value("herald_events_appended_total", &[("op", op)]),
            n as f64,
            "op {op}"
        );
    }
    assert_eq!(after.value("herald_sessions_open", &[]), 1.0);
    assert_eq!(after.value("herald_sessions_opened_total", &[]), 1.0);
    assert_eq!(after.value("herald_hub_connections", &[]), 1.0);
    assert_eq!(after.value("herald_hub_subscriptions", &[]), 1.0);
    assert_eq!(
        delta(&before, &after, "herald_hub_deliveries_total", &[]),
        N as f64
    );
    assert!(delta(&before, &after, "herald_hub_delivered_bytes_total", &[]) > 0.0);
    assert!(delta(&before, &after, "herald_hub_events_routed_total", &[]) >= N as f64);
    assert_eq!(after.value("herald_hub_slow_consumers_total", &[]), 0.0);
    assert_eq!(after.value("herald_hub_lagged_total", &[]), 0.0);
    assert_eq!(after.value("herald_log_head_offset", &[]), last as f64);
    assert_eq!(after.value("herald_log_earliest_offset", &[]), 1.0);
    assert!(delta(&before, &after, "herald_log_bytes", &[]) > 0.0);
    assert!(after.value("herald_process_resident_memory_bytes", &[]) > 0.0);

    // Process-wide, compared under SERIAL.
    let insert = [("request", "insert")];
    assert_eq!(
        delta(&before, &after, "herald_write_ack_seconds_count", &insert),
        N as f64
    );
    assert!(delta(&before, &after, "herald_write_ack_seconds_sum", &insert) > 0.0);
    assert_eq!(
        delta(
            &before,
            &after,
            "herald_http_writes_total",
            &[("request", "insert"), ("outcome", "ok")]
        ),
        N as f64
    );
    assert!(delta(&before, &after, "herald_fsync_seconds_count", &[]) > 0.0);
    // One per event with a subscriber.
    assert_eq!(
        delta(
            &before,
            &after,
            "herald_append_to_delivery_seconds_count",
            &[]
        ),
        N as f64
    );
    assert!(delta(&before, &after, "herald_commit_group_events_count", &[]) > 0.0);
    assert_eq!(
        delta(&before, &after, "herald_commit_group_events_sum", &[]),
        N as f64
    );

    drop(ws);
    let deadline = Instant::now() + TIMEOUT;
    while Metrics::of(&server)
        .await
        .value("herald_sessions_open", &[])
        != 0.0
    {
        assert!(Instant::now() < deadline, "the session never closed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn write_outcomes_are_counted_by_error_code() {
    let _serial = SERIAL.lock().await;
    let server = Server::start().await;
    let before = Metrics::of(&server).await;

    server.insert("t", json!({"id": "a"})).await;
    let (status, _) = server
        .call(Method::POST, "/v1/tables/t/docs", Some(&json!({"id": "a"})))
        .await;
    assert_eq!(status, 409);
    let (status, _) = server
        .call(Method::PATCH, "/v1/tables/t/docs/missing", Some(&json!({})))
        .await;
    assert_eq!(status, 404);
    let (status, _) = server
        .call(Method::POST, "/v1/batch", Some(&json!({"ops": []})))
        .await;
    assert_eq!(status, 400);
    server.publish("news", json!("hello")).await;
    server
        .write(Method::DELETE, "/v1/tables/t/docs/a", None)
        .await;

    let after = Metrics::of(&server).await;
    let writes = |request: &str, outcome: &str| {
        delta(
            &before,
            &after,
            "herald_http_writes_total",
            &[("request", request), ("outcome", outcome)],
        )
    };
    assert_eq!(writes("insert", "ok"), 1.0);
    assert_eq!(writes("insert", "already_exists"), 1.0);
    assert_eq!(writes("patch", "not_found"), 1.0);
    assert_eq!(writes("batch", "invalid_batch"), 1.0);
    assert_eq!(writes("publish", "ok"), 1.0);
    assert_eq!(writes("delete", "ok"), 1.0);
    // Only acknowledged writes are timed.
    let acks = |request: &str| {
        delta(
            &before,
            &after,
            "herald_write_ack_seconds_count",
            &[("request", request)],
        )
    };
    assert_eq!(acks("insert"), 1.0);
    assert_eq!(acks("patch"), 0.0);
    assert_eq!(acks("batch"), 0.0);
    assert_eq!(acks("publish"), 1.0);
    assert_eq!(acks("delete"), 1.0);
    for (op, n) in [("insert", 1.0), ("delete", 1.0), ("publish", 1.0)] {
        assert_eq!(
            after.value("herald_events_appended_total", &[("op", op)]),
            n,
            "{op}"
        );
    }
}

#[tokio::test]
async fn metric_labels_come_from_closed_sets() {
    let _serial = SERIAL.lock().await;
    let server = Server::start().await;
    // Table names, ids and channel names must never become label values.
    server
        .insert("unbounded_table", json!({"id": "unbounded-id"}))
        .await;
    server
        .write(
            Method::PUT,
            "/v1/tables/unbounded_table/docs/unbounded-id",
            Some(&json!({"x": 1})),
        )
        .await;
    server.publish("unbounded-channel", json!(1)).await;
    let metrics = Metrics::of(&server).await;

    let ops = ["insert", "update", "delete", "publish"];
    let requests = [
        "insert",
        "put",
        "patch",
        "delete",
        "batch",
        "publish",
        "broadcast",
    ];
    let mut names = BTreeSet::new();
    for sample in &metrics.scrape.samples {
        if !sample.metric.starts_with("herald_") {
            continue;
        }
        names.insert(sample.metric.clone());
        for (key, value) in sample.labels.iter() {
            let allowed = match key.as_str() {
                "op" => ops.contains(&value.as_str()),
                "request" => requests.contains(&value.as_str()),
                "outcome" => {
                    value == "ok"
                        || value == "other"
                        || serde_json::from_value::<herald_proto::ErrorCode>(json!(value)).is_ok()
                }
                _ => false,
            };
            assert!(allowed, "{}{{{key}={value:?}}}", sample.metric);
        }
    }
    for name in &names {
        let base = name
            .strip_suffix("_count")
            .or_else(|| name.strip_suffix("_sum"))
            .filter(|base| metrics.has(base))
            .unwrap_or(name);
        assert!(
            metrics.scrape.docs.get(base).is_some_and(|h| !h.is_empty()),
            "{base} has no HELP"
        );
    }
    for expected in [
        "herald_events_appended_total",
        "herald_http_writes_total",
        "herald_write_ack_seconds",
        "herald_fsync_seconds",
        "herald_commit_group_events",
        "herald_hub_events_routed_total",
        "herald_hub_deliveries_total",
        "herald_hub_delivered_bytes_total",
        "herald_hub_slow_consumers_total",
        "herald_hub_lagged_total",
        "herald_hub_connections",
        "herald_hub_subscriptions",
        "herald_hub_queued_bytes",
        "herald_hub_routed_offset",
        "herald_sessions_open",
        "herald_sessions_opened_total",
        "herald_log_head_offset",
        "herald_log_earliest_offset",
        "herald_log_bytes",
        "herald_process_resident_memory_bytes",
    ] {
        assert!(metrics.has(expected), "{expected} is missing");
    }
}

#[tokio::test]
async fn each_server_scrapes_its_own_values() {
    let _serial = SERIAL.lock().await;
    let a = Server::start().await;
    let b = Server::start().await;
    for i in 0..3 {
        a.insert("t", json!({ "i": i })).await;
    }
    for i in 0..7 {
        b.insert("t", json!({ "i": i })).await;
    }
    // Scraped concurrently, many times: never the other server's values.
    for _ in 0..20 {
        let (ma, mb) = tokio::join!(Metrics::of(&a), Metrics::of(&b));
        assert_eq!(
            ma.value("herald_events_appended_total", &[("op", "insert")]),
            3.0
        );
        assert_eq!(ma.value("herald_log_head_offset", &[]), 3.0);
        assert_eq!(
            mb.value("herald_events_appended_total", &[("op", "insert")]),
            7.0
        );
        assert_eq!(mb.value("herald_log_head_offset", &[]), 7.0);
    }
}

#[tokio::test]
async fn stats_report_known_traffic() {
    let _serial = SERIAL.lock().await;
    let server = Server::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(json!({"id": "s", "table": "posts"})).await;
    const N: u64 = 4;
    for i in 0..N {
        server.insert("posts", json!({ "n": i })).await;
    }
    let published = server.publish("elsewhere", json!("x")).await;
    for _ in 0..N {
        ws.expect("event").await;
    }

    let (status, stats) = get(&server, "/v1/stats").await;
    assert_eq!(status, 200, "{stats}");
    let keys: BTreeSet<&str> = stats
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        BTreeSet::from([
            "events_appended",
            "events_appended_by_op",
            "events_per_second",
            "events_processed",
            "deliveries",
            "deliveries_per_second",
            "bytes_out",
            "sessions",
            "sessions_opened",
            "connections",
            "subscriptions",
            "queued_bytes",
            "slow_consumer_disconnects",
            "lagged",
            "memory_rss_bytes",
            "log",
            "topics",
        ])
    );
    assert_eq!(stats["events_appended"], N + 1);
    assert_eq!(
        stats["events_appended_by_op"],
        json!({"insert": N, "update": 0, "delete": 0, "publish": 1})
    );
    assert_eq!(stats["deliveries"], N);
    assert_eq!(stats["events_processed"], N + 1);
    assert!(stats["bytes_out"].as_u64().unwrap() > 0);
    assert_eq!(stats["sessions"], 1);
    assert_eq!(stats["sessions_opened"], 1);
    assert_eq!(stats["connections"], 1);
    assert_eq!(stats["subscriptions"], 1);
    assert_eq!(stats["slow_consumer_disconnects"], 0);
    assert_eq!(stats["lagged"], 0);
    assert!(stats["queued_bytes"].is_u64());
    assert!(stats["memory_rss_bytes"].as_u64().unwrap() > 0);
    let head = published["offset"].as_u64().unwrap();
    assert_eq!(stats["log"]["head"], head);
    assert_eq!(stats["log"]["earliest"], 1);
    assert_eq!(stats["log"]["epoch"], server.epoch());
    assert!(stats["log"]["bytes"].as_u64().unwrap() > 0);
    assert!(stats["log"]["routed"].as_u64().unwrap() <= head);

    // The rates come from a once-a-second sampler: within a few seconds
    // they show the traffic above.
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (_, stats) = get(&server, "/v1/stats").await;
        let events = stats["events_per_second"].as_f64().unwrap();
        let deliveries = stats["deliveries_per_second"].as_f64().unwrap();
        if events > 0.0 && deliveries > 0.0 {
            break;
        }
        assert!(Instant::now() < deadline, "the rates stayed 0: {stats}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn readyz_fails_once_shutdown_begins() {
    let _serial = SERIAL.lock().await;
    let server = Server::start().await;
    assert_eq!(
        get(&server, "/readyz").await,
        (200, json!({"status": "ready"}))
    );
    server.sessions.shut_down();
    let (status, body) = get(&server, "/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "shutting_down", "{body}");
    // Liveness is unaffected.
    assert_eq!(
        get(&server, "/healthz").await,
        (200, json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn readyz_fails_once_the_store_is_closed() {
    let _serial = SERIAL.lock().await;
    let server = Server::start().await;
    assert_eq!(get(&server, "/readyz").await.0, 200);
    server.herald.close().await;
    let (status, body) = get(&server, "/readyz").await;
    assert_eq!(status, 503);
    assert_eq!(body["error"]["code"], "shutting_down", "{body}");
}
