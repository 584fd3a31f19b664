//! Steering live subscriptions over WebSocket: pause and resume without
//! loss, filter updates at an exact offset, listings that reflect reality.

mod support;

use herald_server::RealtimeConfig;
use herald_store::StoreConfig;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use support::{Server, Ws};

/// Inserts into `t` until stopped (ten times at least), alternating `n`
/// between 0 and 1; returns the offsets written.
fn writer(server: &Server, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<Vec<u64>> {
    let writer = server.writer();
    tokio::spawn(async move {
        let mut offsets = Vec::new();
        let mut i = 0u64;
        // At least a few writes, however late the task gets to run.
        while i < 10 || !stop.load(Ordering::Relaxed) {
            offsets.push(writer.insert("t", json!({"n": i % 2, "i": i})).await);
            i += 1;
        }
        offsets
    })
}

/// Every insert into `t` in the log after `after`: `(offset, n)`.
async fn log_of_t(server: &Server, after: u64) -> Vec<(u64, u64)> {
    let text = server
        .text(None, &format!("/v1/events?topic=table:t&from={after}"))
        .await;
    text.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|e| {
            (
                e["offset"].as_u64().unwrap(),
                e["doc"]["n"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Reads messages for subscription `id` until one of `kind`; the event
/// offsets before it, and it.
async fn events_until_message(ws: &mut Ws, kind: &str) -> (Vec<u64>, Value) {
    let mut offsets = Vec::new();
    loop {
        let m = ws.recv().await;
        match m["type"].as_str() {
            Some("event") => offsets.push(m["offset"].as_u64().unwrap()),
            Some(k) if k == kind => return (offsets, m),
            _ => panic!("expected events then {kind}, got {m}"),
        }
    }
}

/// Reads events until one at or after `last`.
async fn events_through(ws: &mut Ws, last: u64, into: &mut Vec<u64>) {
    while into.last().is_none_or(|&o| o < last) {
        let m = ws.expect("event").await;
        into.push(m["offset"].as_u64().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pause_and_resume_lose_nothing_under_concurrent_writes() {
    // From the shards' recent window, and (with none) from the log.
    for recent_bytes in [RealtimeConfig::default().recent_bytes, 1] {
        let config = RealtimeConfig {
            recent_bytes,
            ..RealtimeConfig::default()
        };
        let server = Server::start_with(StoreConfig::default(), config).await;
        pause_and_resume_rounds(&server).await;
        server.stop().await;
    }
}

async fn pause_and_resume_rounds(server: &Server) {
    for round in 0..8 {
        let skip = round % 4 == 3;
        let mut ws = server.ws().await;
        let (_, subscribed) = ws.subscribe(json!({"id": "s", "table": "t"})).await;
        let start = subscribed["offset"].as_u64().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writes = writer(server, stop.clone());
        tokio::time::sleep(Duration::from_millis(20)).await;

        ws.send(json!({"type": "pause", "id": "s"})).await;
        let (mut got, paused) = events_until_message(&mut ws, "paused").await;
        let paused_at = paused["offset"].as_u64().unwrap();
        assert!(got.iter().all(|&o| o <= paused_at), "round {round}");
        // While paused, writes go on and nothing arrives.
        ws.quiet(Duration::from_millis(40)).await;
        let list = ws_list(&mut ws).await;
        assert_eq!(list[0]["paused"], true);

        ws.send(json!({"type": "resume", "id": "s", "skip": skip}))
            .await;
        let (missed, resumed) = events_until_message(&mut ws, "resumed").await;
        let resumed_at = resumed["offset"].as_u64().unwrap();
        if skip {
            assert!(missed.is_empty(), "round {round}: skip replays nothing");
        }
        got.extend(&missed);
        tokio::time::sleep(Duration::from_millis(20)).await;
        stop.store(true, Ordering::Relaxed);
        let written = writes.await.unwrap();
        events_through(&mut ws, *written.last().unwrap(), &mut got).await;

        let log: Vec<u64> = log_of_t(server, start).await.iter().map(|e| e.0).collect();
        let expected: Vec<u64> = if skip {
            log.iter()
                .copied()
                .filter(|&o| o <= paused_at || o > resumed_at)
                .collect()
        } else {
            log
        };
        assert_eq!(got, expected, "round {round} (skip: {skip})");
        let list = ws_list(&mut ws).await;
        assert_eq!(list[0]["paused"], false);
        assert_eq!(list[0]["delivered"], got.len());
        assert_eq!(list[0]["last_offset"], *got.last().unwrap());
    }
}

async fn ws_list(ws: &mut Ws) -> Vec<Value> {
    ws.send(json!({"type": "list_subscriptions", "ref": "l"}))
        .await;
    let m = ws.expect("subscriptions").await;
    m["subscriptions"].as_array().unwrap().clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_filter_update_switches_at_one_offset_without_gap_or_duplicate() {
    let server = Server::start().await;
    for round in 0..20 {
        let mut ws = server.ws().await;
        let (_, subscribed) = ws
            .subscribe(json!({"id": "u", "table": "t", "filter": {"n": 0}}))
            .await;
        let start = subscribed["offset"].as_u64().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let writes = writer(&server, stop.clone());
        tokio::time::sleep(Duration::from_millis(10)).await;
        ws.send(json!({"type": "update", "id": "u", "where": "n = $1", "params": [1]}))
            .await;
        let (mut got, updated) = events_until_message(&mut ws, "updated").await;
        let at = updated["offset"].as_u64().unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        stop.store(true, Ordering::Relaxed);
        let written = writes.await.unwrap();
        let log = log_of_t(&server, start).await;
        let expected: Vec<u64> = log
            .iter()
            .filter(|&&(o, n)| if o <= at { n == 0 } else { n == 1 })
            .map(|e| e.0)
            .collect();
        let last = *expected.last().unwrap();
        assert!(last <= *written.last().unwrap());
        events_through(&mut ws, last, &mut got).await;
        assert_eq!(got, expected, "round {round}: switch at {at}");
        let list = ws_list(&mut ws).await;
        assert_eq!(list[0]["filter"], json!("n = $1"));
    }
    server.stop().await;
}

#[tokio::test]
async fn steering_errors_name_the_subscription_and_keep_the_connection() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    for (request, code) in [
        (
            json!({"type": "pause", "id": "nope"}),
            "unknown_subscription",
        ),
        (
            json!({"type": "resume", "id": "nope"}),
            "unknown_subscription",
        ),
        (
            json!({"type": "update", "id": "nope"}),
            "unknown_subscription",
        ),
    ] {
        ws.send(request.clone()).await;
        let e = ws.expect("error").await;
        assert_eq!(
            (e["code"].as_str(), e["id"].as_str()),
            (Some(code), Some("nope")),
            "{request}"
        );
    }
    ws.subscribe(json!({"id": "s", "table": "t"})).await;
    for (request, code) in [
        (json!({"type": "resume", "id": "s"}), "invalid_parameter"),
        (
            json!({"type": "update", "id": "s", "filter": {"$bad": 1}}),
            "invalid_filter",
        ),
        (
            json!({"type": "update", "id": "s", "ops": []}),
            "invalid_parameter",
        ),
        (
            json!({"type": "pause", "id": "s", "extra": 1}),
            "invalid_message",
        ),
    ] {
        ws.send(request.clone()).await;
        let e = ws.expect("error").await;
        assert_eq!(e["code"], code, "{request}: {e}");
    }
    // Pausing twice answers twice, with the same offset.
    ws.send(json!({"type": "pause", "id": "s"})).await;
    let first = ws.expect("paused").await;
    ws.send(json!({"type": "pause", "id": "s"})).await;
    assert_eq!(ws.expect("paused").await, first);
    // A paused subscription can be updated, and then resumed.
    ws.send(json!({"type": "update", "id": "s", "ops": ["delete"]}))
        .await;
    ws.expect("updated").await;
    ws.send(json!({"type": "resume", "id": "s"})).await;
    ws.expect("resumed").await;
    server.insert("t", json!({"id": "a"})).await;
    let deleted = server
        .http
        .delete(format!("{}/v1/tables/t/docs/a", server.base))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let event = ws.expect("event").await;
    assert_eq!(event["offset"], deleted["offset"]);
    assert_eq!(event["op"], "delete");
    server.stop().await;
}

#[tokio::test]
async fn admins_list_every_subscription_and_connections_ask_for_stats() {
    let server = Server::start().await;
    let (mut a, welcome_a) = server.ws_welcome().await;
    let (mut b, welcome_b) = server.ws_welcome().await;
    a.subscribe(json!({"id": "x", "table": "t"})).await;
    b.subscribe(json!({"id": "y", "channel": "chat:z"})).await;
    b.subscribe(
        json!({"id": "z", "table": "*", "filter": {"k": 1}, "changed": ["k"], "on_lag": "skip"}),
    )
    .await;
    let offset = server.insert("t", json!({"k": 1})).await;
    a.expect("event").await;
    b.expect("event").await;

    let listed: Value = server
        .http
        .get(format!("{}/v1/subscriptions", server.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let rows: Vec<(String, String, String, u64, u64)> = listed["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["connection"].as_str().unwrap().to_owned(),
                s["id"].as_str().unwrap().to_owned(),
                s["topic"].as_str().unwrap().to_owned(),
                s["delivered"].as_u64().unwrap(),
                s["last_offset"].as_u64().unwrap(),
            )
        })
        .collect();
    let (ca, cb) = (
        welcome_a["connection"].as_str().unwrap().to_owned(),
        welcome_b["connection"].as_str().unwrap().to_owned(),
    );
    let mut expected = vec![
        (ca, "x".to_owned(), "table:t".to_owned(), 1, offset),
        (cb.clone(), "y".to_owned(), "chat:z".to_owned(), 0, 0),
        (cb, "z".to_owned(), "table:*".to_owned(), 1, offset),
    ];
    expected.sort_by(|l, r| {
        (l.0.parse::<u64>().unwrap(), &l.1).cmp(&(r.0.parse::<u64>().unwrap(), &r.1))
    });
    assert_eq!(rows, expected);

    let z = &listed["subscriptions"][2];
    assert_eq!(
        (z["changed"].clone(), z["on_lag"].clone()),
        (json!(["k"]), json!("skip"))
    );
    a.send(json!({"type": "stats", "ref": "st"})).await;
    let stats = a.expect("stats").await;
    assert_eq!(stats["ref"], "st");
    assert_eq!(stats["stats"]["subscriptions"], 3);
    assert_eq!(stats["stats"]["sessions"], 2);
    assert_eq!(stats["stats"]["deliveries"], 2);
    let topics: Vec<(String, u64, u64, u64)> = stats["stats"]["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["topic"].as_str().unwrap().to_owned(),
                t["subscriptions"].as_u64().unwrap(),
                t["events"].as_u64().unwrap(),
                t["deliveries"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        topics,
        [
            ("chat:z".to_owned(), 1, 0, 0),
            ("table:*".to_owned(), 1, 1, 1),
            ("table:t".to_owned(), 1, 1, 1),
        ]
    );
    server.stop().await;
}
