//! Delivery guarantees end to end: no loss, no duplicate, no reordering
//! across disconnects and a server restart; a write acknowledged after
//! `subscribed` is always delivered; slow consumers are cut (or told they
//! lagged) with the offset to resume from, without slowing anyone else.

mod support;

use futures_util::StreamExt;
use futures_util::stream::SelectAll;
use herald_client::{Client, ClientConfig, SubscribeRequest, Subscription, SubscriptionItem};
use herald_filter::{ChangedFields, Filter, Limits};
use herald_proto::{Event, EventBody, Offset, Op, ResumeToken};
use herald_server::RealtimeConfig;
use herald_store::{StoreConfig, TopicFilter};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use support::{Server, TIMEOUT};

/// What one test subscription asks for, and the same selection applied to
/// the log afterwards to know exactly what it must have received.
#[derive(Clone)]
struct Selection {
    table: &'static str,
    ops: Option<Vec<Op>>,
    filter: Option<Value>,
    sql: Option<(String, Vec<Value>)>,
    changed: Option<Vec<String>>,
}

impl Selection {
    fn request(&self) -> SubscribeRequest {
        let mut r = SubscribeRequest::table(self.table);
        if let Some(ops) = &self.ops {
            r = r.ops(ops.clone());
        }
        if let Some(f) = &self.filter {
            r = r.filter(f.clone());
        }
        if let Some((sql, params)) = &self.sql {
            r = r.where_sql(sql.clone(), params.clone());
        }
        if let Some(c) = &self.changed {
            r = r.changed(c.clone());
        }
        r
    }

    fn selects(&self, event: &Event) -> bool {
        let limits = Limits::default();
        let topic_ok = match self.table {
            "*" => event.topic.starts_with("table:"),
            t => event.topic == format!("table:{t}"),
        };
        let ops_ok = self
            .ops
            .as_ref()
            .is_none_or(|ops| ops.contains(&event.op()));
        let changed_ok = match (&self.changed, &event.body) {
            (
                Some(c),
                EventBody::Update {
                    changed, doc, old, ..
                },
            ) => ChangedFields::new(c.clone()).touches_update(changed, old, doc),
            _ => true,
        };
        let target = match &event.body {
            EventBody::Insert { doc, .. } | EventBody::Update { doc, .. } => doc,
            EventBody::Delete { old, .. } => old,
            EventBody::Publish { data, .. } => data,
        };
        let filter_ok = self
            .filter
            .as_ref()
            .is_none_or(|f| Filter::from_json(f, &limits).unwrap().matches(target))
            && self.sql.as_ref().is_none_or(|(sql, params)| {
                Filter::from_sql(sql, params, &limits)
                    .unwrap()
                    .matches(target)
            });
        topic_ok && ops_ok && changed_ok && filter_ok
    }
}

/// Fifty different selections over `orders` (and every table).
fn selections() -> Vec<Selection> {
    (0..50)
        .map(|i| {
            let base = Selection {
                table: "orders",
                ops: None,
                filter: None,
                sql: None,
                changed: None,
            };
            match i % 6 {
                0 => Selection {
                    filter: Some(json!({"tenant": format!("t{}", i % 7)})),
                    ..base
                },
                1 => Selection {
                    filter: Some(json!({"amount": {"$gte": i * 2}})),
                    ..base
                },
                2 => Selection {
                    sql: Some((
                        "status = $1 AND amount < $2".into(),
                        vec![json!("open"), json!(40 + i)],
                    )),
                    ..base
                },
                3 => Selection {
                    table: "*",
                    ops: Some(vec![Op::Insert, Op::Delete]),
                    filter: Some(json!({"tenant": {"$in": ["t1", "t2"]}})),
                    ..base
                },
                4 => Selection {
                    ops: Some(vec![Op::Update]),
                    changed: Some(vec!["status".into()]),
                    ..base
                },
                _ => base,
            }
        })
        .collect()
}

/// A random write through HTTP; errors (conflicts, a restarting server) are
/// fine: the log afterwards says what happened.
async fn random_write(http: &reqwest::Client, base: &str, writer: usize, rng: &mut impl Rng) {
    let table = if rng.random_bool(0.8) {
        "orders"
    } else {
        "other"
    };
    let id = format!("w{writer}-{}", rng.random_range(0..60));
    let doc = json!({
        "tenant": format!("t{}", rng.random_range(0..7)),
        "amount": rng.random_range(0..100),
        "status": if rng.random_bool(0.5) { "open" } else { "closed" },
    });
    let url = format!("{base}/v1/tables/{table}/docs/{id}");
    let request = match rng.random_range(0..10) {
        0..=4 => http.put(url).json(&doc),
        5..=7 => http
            .patch(url)
            .json(&json!({"status": doc["status"], "n": rng.random_range(0..3)})),
        _ => http.delete(url),
    };
    let _ = request.timeout(Duration::from_secs(5)).send().await;
}

/// Every event of the log, in order.
fn log_events(server: &Server) -> Vec<Event> {
    let store = server.herald.store();
    let mut events = Vec::new();
    let mut after = Offset(0);
    loop {
        let chunk = store
            .read_log(after, None, &TopicFilter::All, 4096)
            .unwrap();
        events.extend(chunk.records.iter().map(|r| r.to_event().unwrap()));
        after = chunk.next_after;
        if chunk.done {
            return events;
        }
    }
}

/// One test subscriber: what it received, and where it started.
#[derive(Default)]
struct Received {
    start: Option<Offset>,
    offsets: Vec<u64>,
    position: Option<ResumeToken>,
}

/// Runs a client holding `selections`, dropping and resuming it at random
/// moments until `stop`.
async fn subscriber(
    url: String,
    selections: Vec<(usize, Selection)>,
    received: Arc<Vec<Mutex<Received>>>,
    stop: Arc<AtomicBool>,
    drops: Arc<AtomicU64>,
) {
    let mut rng = StdRng::from_os_rng();
    while !stop.load(Ordering::Relaxed) {
        let client = match Client::connect(&url, ClientConfig::default()).await {
            Ok(c) => c,
            Err(_) => {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let mut streams: SelectAll<_> = SelectAll::new();
        let mut ok = true;
        for (index, selection) in &selections {
            let position = received[*index].lock().unwrap().position;
            let request = match position {
                Some(token) => selection.request().resume_from(token),
                None => selection.request(),
            };
            match client.subscribe(request).await {
                Ok(sub) => streams.push(tag(*index, sub)),
                Err(_) => {
                    ok = false;
                    break;
                }
            }
        }
        if !ok {
            client.close().await;
            continue;
        }
        // Stay connected for a while, then drop everything and resume.
        let stay = tokio::time::sleep(Duration::from_millis(rng.random_range(100..600)));
        tokio::pin!(stay);
        loop {
            tokio::select! {
                () = &mut stay => break,
                item = streams.next() => {
                    let Some((index, item)) = item else { break };
                    let Ok(item) = item else { break };
                    let mut r = received[index].lock().unwrap();
                    match item {
                        SubscriptionItem::Live { offset } if r.start.is_none() => r.start = Some(offset),
                        SubscriptionItem::Event(ref event) => r.offsets.push(event.offset.0),
                        _ => {}
                    }
                    if let Some(offset) = item.offset() {
                        let epoch = client.server_info().epoch;
                        r.position = Some(ResumeToken { epoch, offset });
                    }
                }
            }
            if stop.load(Ordering::Relaxed) {
                break;
            }
        }
        drops.fetch_add(1, Ordering::Relaxed);
        drop(streams);
        client.close().await;
    }
}

fn tag(
    index: usize,
    sub: Subscription,
) -> impl futures_util::Stream<Item = (usize, Result<SubscriptionItem, herald_client::ClientError>)>
+ Unpin {
    Box::pin(sub.map(move |item| (index, item)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_subscribers_get_exactly_their_events_across_drops_and_a_restart() {
    let server = Server::start().await;
    let addr = server.addr;
    let url = server.base.clone();
    let all = selections();
    let received: Arc<Vec<Mutex<Received>>> =
        Arc::new((0..all.len()).map(|_| Mutex::default()).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let drops = Arc::new(AtomicU64::new(0));
    let mut subscribers = Vec::new();
    for client in 0..10 {
        let mine: Vec<(usize, Selection)> = (0..all.len())
            .filter(|i| i % 10 == client)
            .map(|i| (i, all[i].clone()))
            .collect();
        subscribers.push(tokio::spawn(subscriber(
            url.clone(),
            mine,
            received.clone(),
            stop.clone(),
            drops.clone(),
        )));
    }
    // Every subscription is live before the writes start.
    tokio::time::timeout(TIMEOUT, async {
        while received.iter().any(|r| r.lock().unwrap().start.is_none()) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every subscription goes live");

    const WRITERS: usize = 8;
    const WRITES: usize = 20_000;
    let written = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let (url, written) = (url.clone(), written.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().no_proxy().build().unwrap();
                let mut rng = StdRng::from_os_rng();
                for _ in 0..WRITES / WRITERS {
                    random_write(&http, &url, w, &mut rng).await;
                    written.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    // Restart the server half-way through.
    while written.load(Ordering::Relaxed) < (WRITES / 2) as u64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let dir = server.stop().await;
    let server = Server::start_in(
        dir,
        StoreConfig::default(),
        RealtimeConfig::default(),
        Some(addr),
    )
    .await;
    for w in writers {
        w.await.unwrap();
    }

    let events = log_events(&server);
    assert!(events.len() > WRITES / 2, "only {} events", events.len());
    let expected: Vec<Vec<u64>> = all
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let start = received[i].lock().unwrap().start.unwrap();
            events
                .iter()
                .filter(|e| e.offset > start && s.selects(e))
                .map(|e| e.offset.0)
                .collect()
        })
        .collect();
    let caught_up = tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let behind = (0..all.len())
                .filter(|&i| received[i].lock().unwrap().offsets.len() < expected[i].len())
                .count();
            if behind == 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    // A little longer, so duplicates or extras would show.
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for s in subscribers {
        let _ = tokio::time::timeout(TIMEOUT, s).await;
    }
    for (i, want) in expected.iter().enumerate() {
        let got = &received[i].lock().unwrap().offsets;
        assert!(
            got == want,
            "subscription {i} ({:?}): got {} events, expected {}; first difference at {:?}",
            all[i].filter,
            got.len(),
            want.len(),
            got.iter().zip(want).position(|(a, b)| a != b)
        );
    }
    caught_up.expect("every subscriber caught up");
    let total: usize = expected.iter().map(Vec::len).sum();
    assert!(total > 10_000, "the selections matched only {total} events");
    assert!(
        drops.load(Ordering::Relaxed) >= 20,
        "subscribers were dropped only {} times",
        drops.load(Ordering::Relaxed)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_write_acknowledged_after_subscribed_is_always_delivered() {
    let server = Server::start().await;
    // Background writers keep the hub busy while we subscribe.
    let stop = Arc::new(AtomicBool::new(false));
    let background: Vec<_> = (0..2)
        .map(|w| {
            let (url, stop) = (server.base.clone(), stop.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder().no_proxy().build().unwrap();
                let mut rng = StdRng::from_os_rng();
                while !stop.load(Ordering::Relaxed) {
                    random_write(&http, &url, w, &mut rng).await;
                }
            })
        })
        .collect();
    let mut ws = server.ws().await;
    for round in 0..200 {
        let id = format!("s{round}");
        let (_, subscribed) = ws
            .subscribe(json!({"id": id, "table": "orders", "filter": {"round": round}}))
            .await;
        let acked = server
            .insert("orders", json!({"id": format!("r{round}"), "round": round}))
            .await;
        assert!(acked > subscribed["offset"].as_u64().unwrap());
        let event = ws.expect("event").await;
        assert_eq!(event["subs"], json!([id]), "round {round}");
        assert_eq!(event["offset"], acked, "round {round}");
        ws.send(json!({"type": "unsubscribe", "id": id})).await;
        ws.expect("unsubscribed").await;
    }
    stop.store(true, Ordering::Relaxed);
    for b in background {
        b.await.unwrap();
    }
    server.stop().await;
}

/// A 256 KiB outbox: a client that stops reading overflows soon, one that
/// reads keeps up with the test's commits of 50 × 4 KB documents.
fn small_outbox() -> RealtimeConfig {
    RealtimeConfig {
        outbox_bytes: 256 << 10,
        ..RealtimeConfig::default()
    }
}

async fn write_big_docs(server: &Server, count: usize) -> Vec<u64> {
    let pad = "x".repeat(4000);
    let mut offsets = Vec::new();
    for chunk in (0..count).collect::<Vec<_>>().chunks(50) {
        let ops: Vec<Value> = chunk
            .iter()
            .map(|i| json!({"op": "insert", "table": "big", "doc": {"id": format!("d{i}"), "pad": pad}}))
            .collect();
        let reply = server.post("/v1/batch", &json!({"ops": ops})).await;
        offsets.extend(
            reply["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["offset"].as_u64().unwrap()),
        );
    }
    offsets
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_consumer_is_closed_with_its_resume_offset_and_others_get_everything() {
    let server = Server::start_with(StoreConfig::default(), small_outbox()).await;
    let mut slow = server.ws().await;
    slow.subscribe(json!({"id": "s", "table": "big"})).await;
    let mut fast = server.ws().await;
    fast.subscribe(json!({"id": "f", "table": "big"})).await;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < 3000 {
            let m = fast.expect("event").await;
            got.push(m["offset"].as_u64().unwrap());
        }
        got
    });
    // Sample what the hub holds queued while the writes go on.
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (hub, sampling) = (server.hub.clone(), sampling.clone());
        tokio::spawn(async move {
            let mut most = 0;
            while sampling.load(Ordering::Relaxed) {
                most = most.max(hub.stats().await.queued_bytes);
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            most
        })
    };
    // 3000 × 4 KB = 12 MB: far more than the socket buffers and the outbox.
    let offsets = write_big_docs(&server, 3000).await;
    sampling.store(false, Ordering::Relaxed);
    // Two connections, each bounded by its outbox (control messages may
    // take it to twice that).
    let most = sampler.await.unwrap();
    let limit = small_outbox().outbox_bytes;
    assert!(
        most > 0 && most <= 2 * 2 * limit,
        "up to {most} bytes queued with {limit}-byte outboxes"
    );
    assert_eq!(
        reader.await.unwrap(),
        offsets,
        "the fast reader got everything"
    );

    // Now the slow one reads: what was queued, then the close (4000,
    // `slow_consumer`, with the offset to resume from).
    let (got, resume_from) = slow.read_until_cut().await;
    assert_eq!(server.hub.stats().await.totals.slow_consumers, 1);
    assert!(got.len() < offsets.len(), "the slow consumer was cut");
    // It got exactly every event up to resume_from, and nothing after.
    let upto: Vec<u64> = offsets
        .iter()
        .copied()
        .filter(|&o| o <= resume_from)
        .collect();
    assert_eq!(got, upto);
    // Resuming from there gets the rest.
    let mut again = server.ws().await;
    let (history, _) = again
        .subscribe(json!({"id": "s", "table": "big", "from": resume_from}))
        .await;
    let rest: Vec<u64> = history
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    let after: Vec<u64> = offsets
        .iter()
        .copied()
        .filter(|&o| o > resume_from)
        .collect();
    assert_eq!(rest, after);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lagging_skip_subscription_is_told_where_its_gap_is() {
    let server = Server::start_with(StoreConfig::default(), small_outbox()).await;
    let mut slow = server.ws().await;
    slow.subscribe(json!({"id": "s", "table": "big", "on_lag": "skip"}))
        .await;
    let offsets = write_big_docs(&server, 3000).await;
    // Reading again: what was queued before the overflow...
    let mut got = Vec::new();
    while let Ok(m) = tokio::time::timeout(Duration::from_millis(500), slow.recv()).await {
        assert_eq!(m["type"], "event", "{m}");
        got.push(m["offset"].as_u64().unwrap());
    }
    assert!(got.len() < offsets.len(), "the subscription skipped events");
    let prefix: Vec<u64> = offsets[..got.len()].to_vec();
    assert_eq!(got, prefix, "everything before the gap, in order");
    // ...then, with the next event, `lagged` naming the gap.
    let next = server.insert("big", json!({"id": "after"})).await;
    let lagged = slow.expect("lagged").await;
    assert_eq!(lagged["id"], "s");
    assert_eq!(lagged["resume_from"], *got.last().unwrap());
    assert_eq!(lagged["until"], next);
    let m = slow.expect("event").await;
    assert_eq!(m["offset"], next);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_that_stops_reading_is_dropped_after_the_client_timeout() {
    let config = RealtimeConfig {
        client_timeout: Duration::from_millis(500),
        ..small_outbox()
    };
    let server = Server::start_with(StoreConfig::default(), config).await;
    let mut stuck = server.ws().await;
    stuck.subscribe(json!({"id": "s", "table": "big"})).await;
    // 12 MB for a client that never reads again: the server's writes block
    // once the socket buffers are full.
    write_big_docs(&server, 3000).await;
    let released = tokio::time::timeout(TIMEOUT, async {
        while server.sessions.open() > 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(released.is_ok(), "the stuck session still holds its place");
    drop(stuck);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn history_for_one_subscription_never_overflows_the_others() {
    let server = Server::start_with(StoreConfig::default(), small_outbox()).await;
    // 8 MB of history, more than thirty outboxes.
    let history = write_big_docs(&server, 2000).await;
    let mut ws = server.ws().await;
    ws.subscribe(json!({"id": "live", "table": "live"})).await;
    // Live events keep coming while the history is read.
    let writer = {
        let writer = server.writer();
        tokio::spawn(async move {
            let mut offsets = Vec::new();
            for i in 0..200 {
                let doc = json!({"id": format!("l{i}"), "pad": "y".repeat(2000)});
                offsets.push(writer.insert("live", doc).await);
            }
            offsets
        })
    };
    ws.send(json!({"type": "subscribe", "id": "old", "table": "big", "from": 0}))
        .await;
    let (mut old, mut live) = (Vec::new(), Vec::new());
    let mut subscribed = false;
    while !(subscribed && live.len() == 200) {
        let m = ws.recv().await;
        match (m["type"].as_str(), m["subs"][0].as_str()) {
            (Some("event"), Some("old")) => old.push(m["offset"].as_u64().unwrap()),
            (Some("event"), Some("live")) => live.push(m["offset"].as_u64().unwrap()),
            (Some("subscribed"), _) => subscribed = true,
            _ => panic!("unexpected {m}"),
        }
    }
    let live_offsets = writer.await.unwrap();
    assert_eq!(old, history, "the whole history, in order");
    assert_eq!(live, live_offsets, "every live event, in order");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_rust_client_gets_a_snapshot_then_every_later_change() {
    let server = Server::start().await;
    for i in 0..5 {
        server
            .insert("docs", json!({"id": format!("d{i}"), "n": i}))
            .await;
    }
    let client = Client::connect(&server.base, ClientConfig::default())
        .await
        .unwrap();
    let mut sub = client
        .subscribe(
            SubscribeRequest::table("docs")
                .filter(json!({"n": {"$gte": 2}}))
                .snapshot(),
        )
        .await
        .unwrap();
    let later = server.insert("docs", json!({"id": "d9", "n": 9})).await;
    server.insert("docs", json!({"id": "d1b", "n": 1})).await;
    let mut snapshot_ids = Vec::new();
    let (mut at, mut live_at) = (None, None);
    let event = loop {
        match tokio::time::timeout(TIMEOUT, sub.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap()
        {
            SubscriptionItem::Snapshot { docs, offset, .. } => {
                at = Some(offset);
                snapshot_ids.extend(docs.iter().map(|d| d["id"].as_str().unwrap().to_owned()));
            }
            SubscriptionItem::Live { offset } => live_at = Some(offset),
            SubscriptionItem::Event(event) => break event,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(snapshot_ids, ["d2", "d3", "d4"]);
    assert!(live_at >= at);
    assert_eq!(event.offset.0, later, "the first change after the snapshot");
    client.close().await;
    server.stop().await;
}
