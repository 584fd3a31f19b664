//! End-to-end tests of the WebSocket protocol (`GET /v1/ws`).
//!
//! Every test starts a real server on an ephemeral port over a fresh data
//! directory, writes through the REST API, and speaks the protocol with a
//! real WebSocket client (tokio-tungstenite), checking messages field by
//! field. Timing tests configure tiny heartbeats so they stay short.
//!
//! "Nothing else arrived" is checked with a sentinel: a later write that does
//! match. A connection's events arrive in log order, so if the sentinel is the
//! next event, nothing in between was delivered.

mod support;

use futures_util::{SinkExt, StreamExt};
use herald_server::RealtimeConfig;
use herald_store::StoreConfig;
use herald_store::config::RetentionConfig;
use rand::Rng;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use support::{Server, TIMEOUT, Ws};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn realtime() -> RealtimeConfig {
    RealtimeConfig::default()
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

fn offset(v: &Value) -> u64 {
    v["offset"]
        .as_u64()
        .unwrap_or_else(|| panic!("no offset in {v}"))
}

fn offsets(events: &[Value]) -> Vec<u64> {
    events.iter().map(offset).collect()
}

/// `event` without its `ts`, which must be a plausible time.
fn without_ts(event: &Value) -> Value {
    let mut event = event.clone();
    let ts = event
        .as_object_mut()
        .unwrap()
        .remove("ts")
        .and_then(|t| t.as_u64())
        .unwrap_or_else(|| panic!("no ts in {event}"));
    assert!(ts > 1_600_000_000_000, "ts {ts} is not unix milliseconds");
    event
}

/// The keys of an object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// The ids of `event["subs"]`, sorted.
fn subs(event: &Value) -> Vec<String> {
    let mut subs: Vec<String> = event["subs"]
        .as_array()
        .unwrap_or_else(|| panic!("no subs in {event}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    subs.sort();
    subs
}

/// Reads events until the one at `last` (inclusive); anything but an event
/// fails.
async fn events_until(ws: &mut Ws, last: u64) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let event = ws.expect("event").await;
        let at = offset(&event);
        assert!(at <= last, "event {at} past the sentinel {last}: {event}");
        events.push(event);
        if at == last {
            return events;
        }
    }
}

async fn patch(server: &Server, table: &str, id: &str, body: Value) -> Value {
    let path = format!("/v1/tables/{table}/docs/{id}");
    server.write(Method::PATCH, &path, Some(&body)).await
}

async fn put(server: &Server, table: &str, id: &str, body: Value) -> Value {
    let path = format!("/v1/tables/{table}/docs/{id}");
    server.write(Method::PUT, &path, Some(&body)).await
}

async fn delete(server: &Server, table: &str, id: &str) -> Value {
    let path = format!("/v1/tables/{table}/docs/{id}");
    server.write(Method::DELETE, &path, None).await
}

/// Inserts `docs` in one atomic batch; the offsets, consecutive.
async fn batch_insert(server: &Server, table: &str, docs: Vec<Value>) -> Vec<u64> {
    let ops: Vec<Value> = docs
        .into_iter()
        .map(|doc| json!({"op": "insert", "table": table, "doc": doc}))
        .collect();
    let answer = server
        .write(Method::POST, "/v1/batch", Some(&json!({ "ops": ops })))
        .await;
    answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(offset)
        .collect()
}

// ---------------------------------------------------------------------------
// Connection and events
// ---------------------------------------------------------------------------

#[tokio::test]
async fn welcome_describes_the_connection_and_the_log() {
    let config = RealtimeConfig {
        heartbeat: Duration::from_millis(1500),
        max_message_bytes: 4096,
        max_subscriptions: 7,
        ..realtime()
    };
    let server = Server::start_with(StoreConfig::default(), config).await;
    let (_first, welcome) = server.ws_welcome().await;
    let connection = welcome["connection"].as_str().unwrap().to_owned();
    assert!(!connection.is_empty());
    assert_eq!(
        welcome,
        json!({
            "type": "welcome",
            "connection": connection,
            "epoch": server.epoch(),
            "offset": 0,
            "heartbeat_ms": 1500,
            "max_message_bytes": 4096,
            "max_subscriptions": 7,
        })
    );
    assert_eq!(server.epoch().len(), 16);

    server.insert("posts", json!({"id": "a"})).await;
    let head = server.insert("posts", json!({"id": "b"})).await;
    let (_second, welcome) = server.ws_welcome().await;
    assert_eq!(welcome["offset"], head, "the log's head when it opened");
    assert_ne!(
        welcome["connection"], connection,
        "connection ids are unique"
    );
    server.stop().await;
}

#[tokio::test]
async fn table_events_carry_the_full_envelope() {
    let server = Server::start().await;
    let epoch = server.epoch();
    let mut ws = server.ws().await;
    let (before, subscribed) = ws.subscribe(json!({"id": "s", "table": "posts"})).await;
    assert!(before.is_empty());
    assert_eq!(
        subscribed,
        json!({"type": "subscribed", "id": "s", "offset": 0})
    );

    let t0 = now_ms();
    let ack = server
        .write(
            Method::POST,
            "/v1/tables/posts/docs",
            Some(&json!({"id": "p1", "title": "hi", "n": 1})),
        )
        .await;
    let t1 = now_ms();
    assert_eq!(keys(&ack), ["id", "offset", "version"]);
    let event = ws.expect("event").await;
    let ts = event["ts"].as_u64().unwrap();
    assert!((t0..=t1).contains(&ts), "ts {ts} outside [{t0}, {t1}]");
    assert_eq!(
        without_ts(&event),
        json!({
            "type": "event", "subs": ["s"], "offset": offset(&ack), "epoch": epoch,
            "topic": "table:posts", "op": "insert", "table": "posts", "id": "p1", "version": 1,
            "doc": {"id": "p1", "title": "hi", "n": 1}, "changed": ["id", "n", "title"],
        })
    );

    let ack = patch(&server, "posts", "p1", json!({"title": "bye"})).await;
    let event = ws.expect("event").await;
    assert!(event["ts"].as_u64().unwrap() >= ts, "ts never goes back");
    assert_eq!(
        without_ts(&event),
        json!({
            "type": "event", "subs": ["s"], "offset": offset(&ack), "epoch": epoch,
            "topic": "table:posts", "op": "update", "table": "posts", "id": "p1", "version": 2,
            "doc": {"id": "p1", "title": "bye", "n": 1},
            "old": {"id": "p1", "title": "hi", "n": 1},
            "changed": ["title"],
        })
    );

    let ack = put(&server, "posts", "p1", json!({"title": "new", "tags": []})).await;
    let event = ws.expect("event").await;
    assert_eq!(
        without_ts(&event),
        json!({
            "type": "event", "subs": ["s"], "offset": offset(&ack), "epoch": epoch,
            "topic": "table:posts", "op": "update", "table": "posts", "id": "p1", "version": 3,
            "doc": {"id": "p1", "title": "new", "tags": []},
            "old": {"id": "p1", "title": "bye", "n": 1},
            "changed": ["n", "tags", "title"],
        })
    );

    let ack = delete(&server, "posts", "p1").await;
    let event = ws.expect("event").await;
    assert_eq!(
        without_ts(&event),
        json!({
            "type": "event", "subs": ["s"], "offset": offset(&ack), "epoch": epoch,
            "topic": "table:posts", "op": "delete", "table": "posts", "id": "p1", "version": 4,
            "old": {"id": "p1", "title": "new", "tags": []},
            "changed": ["id", "tags", "title"],
        })
    );

    // Other tables and channels are not this subscription's.
    server.insert("other", json!({"id": "x"})).await;
    server.publish("chat:x", json!(1)).await;
    let last = server.insert("posts", json!({"id": "p2"})).await;
    assert_eq!(offsets(&events_until(&mut ws, last).await), [last]);
    server.stop().await;
}

#[tokio::test]
async fn ops_restrict_the_operations_delivered() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(json!({"id": "ins", "table": "t", "ops": ["insert"]}))
        .await;
    ws.subscribe(json!({"id": "del", "table": "t", "ops": ["delete"]}))
        .await;
    ws.subscribe(json!({"id": "upd", "table": "t", "ops": ["update", "publish"]}))
        .await;

    let inserted = server.insert("t", json!({"id": "a", "n": 1})).await;
    let updated = offset(&patch(&server, "t", "a", json!({"n": 2})).await);
    let deleted = offset(&delete(&server, "t", "a").await);
    let events = events_until(&mut ws, deleted).await;
    let got: Vec<(u64, &str, Vec<String>)> = events
        .iter()
        .map(|e| (offset(e), e["op"].as_str().unwrap(), subs(e)))
        .collect();
    assert_eq!(
        got,
        [
            (inserted, "insert", vec!["ins".to_owned()]),
            (updated, "update", vec!["upd".to_owned()]),
            (deleted, "delete", vec!["del".to_owned()]),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_json_filter_selects_the_new_document_or_the_deleted_one() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(json!({"id": "open", "table": "t", "filter": {"status": "open"}}))
        .await;

    let a = server
        .insert("t", json!({"id": "a", "status": "open"}))
        .await;
    server
        .insert("t", json!({"id": "b", "status": "closed"}))
        .await;
    // Into the filter: delivered. Out of it: not (the new state does not match).
    let b_opened = offset(&patch(&server, "t", "b", json!({"status": "open"})).await);
    patch(&server, "t", "a", json!({"status": "closed"})).await;
    // Deletes are matched on the old document.
    let b_deleted = offset(&delete(&server, "t", "b").await);
    delete(&server, "t", "a").await;
    let c = server
        .insert("t", json!({"id": "c", "status": "open"}))
        .await;

    let events = events_until(&mut ws, c).await;
    let got: Vec<(u64, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                offset(e),
                e["op"].as_str().unwrap(),
                e["id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (a, "insert", "a"),
            (b_opened, "update", "b"),
            (b_deleted, "delete", "b"),
            (c, "insert", "c"),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn an_sql_where_with_params_filters_events() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let (_, subscribed) = ws
        .subscribe(json!({
            "id": "w", "table": "t",
            "where": "n > $1 AND status = $2", "params": [5, "open"],
        }))
        .await;
    assert_eq!(subscribed["id"], "w");
    server
        .insert("t", json!({"id": "a", "n": 3, "status": "open"}))
        .await;
    server
        .insert("t", json!({"id": "b", "n": 7, "status": "closed"}))
        .await;
    let c = server
        .insert("t", json!({"id": "c", "n": 7, "status": "open"}))
        .await;
    server
        .insert("t", json!({"id": "d", "status": "open"}))
        .await;
    let e = server
        .insert("t", json!({"id": "e", "n": 10.5, "status": "open"}))
        .await;
    assert_eq!(offsets(&events_until(&mut ws, e).await), [c, e]);

    // `filter` and `where` together: both must match.
    ws.subscribe(json!({
        "id": "both", "table": "u", "filter": {"status": "open"}, "where": "n > 5",
    }))
    .await;
    server
        .insert("u", json!({"id": "a", "n": 7, "status": "closed"}))
        .await;
    server
        .insert("u", json!({"id": "b", "n": 3, "status": "open"}))
        .await;
    let both = server
        .insert("u", json!({"id": "c", "n": 9, "status": "open"}))
        .await;
    let events = events_until(&mut ws, both).await;
    assert_eq!(offsets(&events), [both]);
    assert_eq!(events[0]["subs"], json!(["both"]));
    server.stop().await;
}

#[tokio::test]
async fn changed_restricts_updates_to_those_touching_the_fields() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(json!({"id": "c", "table": "t", "changed": ["status"]}))
        .await;

    let inserted = server
        .insert("t", json!({"id": "a", "status": "new", "title": "x"}))
        .await;
    patch(&server, "t", "a", json!({"title": "y"})).await;
    let status = offset(&patch(&server, "t", "a", json!({"status": "done"})).await);
    let both = offset(&patch(&server, "t", "a", json!({"status": "again", "title": "z"})).await);
    // Writing the same value changes nothing.
    patch(&server, "t", "a", json!({"status": "again"})).await;
    let removed = offset(&put(&server, "t", "a", json!({"title": "z"})).await);
    let deleted = offset(&delete(&server, "t", "a").await);
    let events = events_until(&mut ws, deleted).await;
    assert_eq!(offsets(&events), [inserted, status, both, removed, deleted]);
    assert_eq!(events[3]["changed"], json!(["status"]));
    server.stop().await;
}

/// `changed` takes dotted paths: an event's `changed` lists top-level fields
/// only, so a dotted path is compared in `old` and `doc`, and a change
/// elsewhere under `meta` does not pass.
#[tokio::test]
async fn changed_with_a_dotted_path_ignores_sibling_fields() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(json!({"id": "c", "table": "t", "changed": ["meta.kind"]}))
        .await;
    server
        .insert("t", json!({"id": "a", "meta": {"kind": "x", "zip": 1}}))
        .await;
    ws.expect("event").await;
    patch(&server, "t", "a", json!({"meta": {"zip": 2}})).await;
    let kind = offset(&patch(&server, "t", "a", json!({"meta": {"kind": "y"}})).await);
    assert_eq!(
        offset(&ws.expect("event").await),
        kind,
        "the zip change is not for `c`"
    );
    server.stop().await;
}

#[tokio::test]
async fn star_subscribes_to_every_table_but_not_to_channels() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(json!({"id": "all", "table": "*"})).await;
    ws.subscribe(json!({"id": "big", "table": "*", "filter": {"n": {"$gte": 10}}}))
        .await;
    let a = server.insert("alpha", json!({"id": "1", "n": 1})).await;
    let b = server.insert("beta", json!({"id": "1", "n": 10})).await;
    server.publish("chat:x", json!({"n": 100})).await;
    let c = server.insert("gamma", json!({"id": "1", "n": 20})).await;
    let events = events_until(&mut ws, c).await;
    let got: Vec<(u64, &str, Vec<String>)> = events
        .iter()
        .map(|e| (offset(e), e["topic"].as_str().unwrap(), subs(e)))
        .collect();
    let both = vec!["all".to_owned(), "big".to_owned()];
    assert_eq!(
        got,
        [
            (a, "table:alpha", vec!["all".to_owned()]),
            (b, "table:beta", both.clone()),
            (c, "table:gamma", both),
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn channel_messages_reach_subscribers_and_publish_counts_receivers() {
    let server = Server::start().await;
    let epoch = server.epoch();
    let mut a = server.ws().await;
    a.subscribe(json!({"id": "a1", "channel": "chat:x"})).await;
    a.subscribe(json!({"id": "a2", "channel": "chat:x", "filter": {"kind": "msg"}}))
        .await;
    let mut b = server.ws().await;
    b.subscribe(json!({"id": "b", "channel": "chat:x", "filter": {"kind": "other"}}))
        .await;
    let mut publisher = server.ws().await;

    // Nobody listens: 0 receivers.
    publisher
        .send(json!({"type": "publish", "channel": "chat:empty", "data": 1, "ref": "r0"}))
        .await;
    let published = publisher.expect("published").await;
    let empty = offset(&published);
    assert_eq!(
        published,
        json!({"type": "published", "ref": "r0", "offset": empty, "receivers": 0})
    );

    // Two subscriptions of one connection: one event, 2 receivers.
    let data = json!({"kind": "msg", "text": "hi", "list": [1, {"x": null}]});
    publisher
        .send(json!({"type": "publish", "channel": "chat:x", "data": data, "ref": "r1"}))
        .await;
    let published = publisher.expect("published").await;
    let first = offset(&published);
    assert!(first > empty);
    assert_eq!(
        published,
        json!({"type": "published", "ref": "r1", "offset": first, "receivers": 2})
    );
    let event = a.expect("event").await;
    assert_eq!(subs(&event), ["a1", "a2"]);
    assert_eq!(
        without_ts(&event),
        json!({
            "type": "event", "subs": event["subs"], "offset": first, "epoch": epoch,
            "topic": "chat:x", "op": "publish", "channel": "chat:x", "data": data,
        })
    );

    // Without a ref, the answer has none.
    publisher
        .send(json!({"type": "publish", "channel": "chat:x", "data": {"kind": "other"}}))
        .await;
    let published = publisher.expect("published").await;
    let second = offset(&published);
    assert_eq!(
        published,
        json!({"type": "published", "offset": second, "receivers": 2})
    );
    assert_eq!(subs(&a.expect("event").await), ["a1"]);
    let event = b.expect("event").await;
    assert_eq!(
        (offset(&event), subs(&event)),
        (second, vec!["b".to_owned()])
    );

    // REST: {offset, receivers}.
    let answer = server.publish("chat:x", json!({"kind": "msg"})).await;
    let third = offset(&answer);
    assert_eq!(answer, json!({"offset": third, "receivers": 2}));
    let event = a.expect("event").await;
    assert_eq!(
        (offset(&event), subs(&event)),
        (third, vec!["a1".to_owned(), "a2".to_owned()])
    );
    assert_eq!(
        server.publish("chat:nobody", json!(null)).await["receivers"],
        0
    );
    let answer = server.publish("chat:x", json!("plain")).await;
    assert_eq!(answer["receivers"], 1);
    let event = a.expect("event").await;
    assert_eq!(event["data"], "plain");

    // The publisher's own connection is not subscribed: it gets nothing.
    publisher.ping("after").await;
    server.stop().await;
}

#[tokio::test]
async fn publishing_rejects_bad_bodies_channels_and_oversized_messages() {
    let store = StoreConfig {
        max_doc_bytes: 256,
        ..StoreConfig::default()
    };
    let server = Server::start_with(store, realtime()).await;
    let big = json!({"data": "x".repeat(300)});
    let (status, answer) = server
        .call(Method::POST, "/v1/channels/chat:x/messages", Some(&big))
        .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (413, &json!("payload_too_large"))
    );
    let mut ws = server.ws().await;
    ws.send(json!({"type": "publish", "channel": "chat:x", "data": big["data"], "ref": "big"}))
        .await;
    let error = ws.expect_error("payload_too_large").await;
    assert_eq!(error["ref"], "big");
    ws.ping("after").await;
    let cases = [
        (
            "/v1/channels/chat:x/messages",
            json!({"text": 1}),
            400,
            "invalid_parameter",
        ),
        (
            "/v1/channels/chat:x/messages",
            json!({"data": 1, "x": 2}),
            400,
            "invalid_parameter",
        ),
        (
            "/v1/channels/chat:x/messages",
            json!([1]),
            400,
            "invalid_parameter",
        ),
        (
            "/v1/channels/table:x/messages",
            json!({"data": 1}),
            400,
            "invalid_channel",
        ),
        (
            "/v1/channels/a..b/messages",
            json!({"data": 1}),
            400,
            "invalid_channel",
        ),
    ];
    for (path, body, status, code) in cases {
        let (got, answer) = server.call(Method::POST, path, Some(&body)).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{path} {body}: {answer}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn an_event_matching_two_subscriptions_of_a_connection_arrives_once() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(json!({"id": "all", "table": "posts"})).await;
    ws.subscribe(json!({"id": "open", "table": "posts", "filter": {"status": "open"}}))
        .await;
    ws.subscribe(json!({"id": "star", "table": "*"})).await;
    ws.subscribe(json!({"id": "sql", "table": "posts", "where": "status = 'open'"}))
        .await;
    let mut other = server.ws().await;
    other
        .subscribe(json!({"id": "all", "table": "posts"}))
        .await;

    let first = server
        .insert("posts", json!({"id": "a", "status": "open"}))
        .await;
    let second = server
        .insert("posts", json!({"id": "b", "status": "closed"}))
        .await;
    let sentinel = server.insert("sentinel", json!({"id": "s"})).await;
    let events = events_until(&mut ws, sentinel).await;
    let got: Vec<(u64, Vec<String>)> = events.iter().map(|e| (offset(e), subs(e))).collect();
    let names = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    assert_eq!(
        got,
        [
            (first, names(&["all", "open", "sql", "star"])),
            (second, names(&["all", "star"])),
            (sentinel, names(&["star"])),
        ]
    );
    let events = events_until(&mut other, second).await;
    assert_eq!(offsets(&events), [first, second]);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Start positions: history, then live
// ---------------------------------------------------------------------------

/// Posts p1..p5 with noise in between; their offsets.
async fn some_history(server: &Server) -> Vec<u64> {
    let mut posts = Vec::new();
    for i in 1..=5 {
        posts.push(
            server
                .insert("posts", json!({"id": format!("p{i}"), "i": i}))
                .await,
        );
        server.insert("noise", json!({"id": format!("n{i}")})).await;
        server.publish("chat:noise", json!(i)).await;
    }
    posts
}

/// Subscribes with `request` (its `id` is `h`); history and live events up to
/// `live`, a post inserted after `subscribed`, checked to be exactly
/// `expected` then `live`, split by the `subscribed` offset.
async fn expect_history(server: &Server, ws: &mut Ws, request: Value, expected: &[u64]) -> u64 {
    let (before, subscribed) = ws.subscribe(request).await;
    assert_eq!(keys(&subscribed), ["id", "offset", "type"]);
    assert_eq!(subscribed["id"], "h");
    let at = offset(&subscribed);
    assert!(at <= server.herald.store().head().0);
    for event in &before {
        assert_eq!(event["type"], "event", "{event}");
        assert_eq!(event["subs"], json!(["h"]));
        assert!(
            offset(event) <= at,
            "history {event} is after subscribed {at}"
        );
    }
    let live = server
        .insert("posts", json!({"id": format!("live{at}")}))
        .await;
    let after = events_until(ws, live).await;
    for event in &after {
        assert!(
            offset(event) > at,
            "live {event} is not after subscribed {at}"
        );
    }
    let mut all = offsets(&before);
    all.extend(offsets(&after));
    let mut want = expected.to_vec();
    want.push(live);
    assert_eq!(all, want, "history then live, no gap, no duplicate");
    live
}

async fn start_positions(config: RealtimeConfig) {
    let server = Server::start_with(StoreConfig::default(), config).await;
    let epoch = server.epoch();
    let posts = some_history(&server).await;
    let mut ws = server.ws().await;

    // An offset: every post after it.
    let live1 = expect_history(
        &server,
        &mut ws,
        json!({"id": "h", "table": "posts", "from": posts[1]}),
        &posts[2..],
    )
    .await;
    ws.send(json!({"type": "unsubscribe", "id": "h"})).await;
    ws.expect("unsubscribed").await;

    // 0: everything.
    let mut everything = posts.clone();
    everything.push(live1);
    let live2 = expect_history(
        &server,
        &mut ws,
        json!({"id": "h", "table": "posts", "from": 0}),
        &everything,
    )
    .await;
    ws.send(json!({"type": "unsubscribe", "id": "h"})).await;
    ws.expect("unsubscribed").await;

    // A resume token: the same as its offset.
    let token = format!("{epoch}:{}", posts[3]);
    expect_history(
        &server,
        &mut ws,
        json!({"id": "h", "table": "posts", "from": token}),
        &[posts[4], live1, live2],
    )
    .await;
    ws.send(json!({"type": "unsubscribe", "id": "h"})).await;
    ws.expect("unsubscribed").await;

    // The head: nothing to replay. "now" and no `from` start there too.
    let head = server.herald.store().head().0;
    expect_history(
        &server,
        &mut ws,
        json!({"id": "h", "table": "posts", "from": head}),
        &[],
    )
    .await;
    ws.send(json!({"type": "unsubscribe", "id": "h"})).await;
    ws.expect("unsubscribed").await;
    expect_history(
        &server,
        &mut ws,
        json!({"id": "h", "table": "posts", "from": "now"}),
        &[],
    )
    .await;
    ws.send(json!({"type": "unsubscribe", "id": "h"})).await;
    ws.expect("unsubscribed").await;
    let head = server.herald.store().head().0;
    let (before, subscribed) = ws.subscribe(json!({"id": "h", "table": "posts"})).await;
    assert!(before.is_empty());
    assert_eq!(offset(&subscribed), head);
    server.stop().await;
}

#[tokio::test]
async fn from_offset_token_and_now_replay_history_then_go_live() {
    start_positions(realtime()).await;
}

/// With no recent window, history is read from the log by its own task.
#[tokio::test]
async fn from_offset_token_and_now_replay_from_the_log_then_go_live() {
    start_positions(RealtimeConfig {
        recent_bytes: 1,
        ..realtime()
    })
    .await;
}

#[tokio::test]
async fn from_a_timestamp_starts_at_the_first_event_at_or_after_it() {
    let server = Server::start().await;
    let mut posts = Vec::new();
    for i in 0..3 {
        if i > 0 {
            // Distinct milliseconds.
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        posts.push(server.insert("posts", json!({"id": format!("p{i}")})).await);
    }
    let mut ws = server.ws().await;
    let (history, _) = ws
        .subscribe(json!({"id": "all", "table": "posts", "from": 0}))
        .await;
    assert_eq!(offsets(&history), posts);
    let ts: Vec<u64> = history.iter().map(|e| e["ts"].as_u64().unwrap()).collect();
    assert!(ts[0] < ts[1] && ts[1] < ts[2], "{ts:?}");
    ws.send(json!({"type": "unsubscribe", "id": "all"})).await;
    ws.expect("unsubscribed").await;

    let mut expected = posts[1..].to_vec();
    let live = expect_history(
        &server,
        &mut ws,
        json!({"id": "h", "table": "posts", "from": {"ts": ts[1]}}),
        &expected,
    )
    .await;
    expected.push(live);
    ws.send(json!({"type": "unsubscribe", "id": "h"})).await;
    ws.expect("unsubscribed").await;
    // A time between two events starts at the later one.
    expect_history(
        &server,
        &mut ws,
        json!({"id": "h", "table": "posts", "from": {"ts": ts[1] - 1}}),
        &expected,
    )
    .await;
    ws.send(json!({"type": "unsubscribe", "id": "h"})).await;
    ws.expect("unsubscribed").await;
    // A time in the future replays nothing.
    expect_history(
        &server,
        &mut ws,
        json!({"id": "h", "table": "posts", "from": {"ts": now_ms() + 60_000}}),
        &[],
    )
    .await;
    server.stop().await;
}

#[tokio::test]
async fn unusable_start_positions_are_refused_with_precise_codes() {
    let server = Server::start().await;
    let posts = some_history(&server).await;
    let head = server.herald.store().head().0;
    let epoch = server.epoch();
    let mut ws = server.ws().await;

    // A token of another epoch.
    let other = server.other_epoch();
    ws.send(json!({"type": "subscribe", "id": "x", "table": "posts", "from": format!("{other}:{}", posts[0])}))
        .await;
    let error = ws.expect_error("unrecoverable_position").await;
    assert_eq!(keys(&error), ["code", "earliest", "id", "message", "type"]);
    assert_eq!(error["id"], "x");
    assert_eq!(error["earliest"], server.herald.store().earliest().0);

    // Ahead of the head, as an offset or a token.
    for from in [json!(head + 1), json!(format!("{epoch}:{}", head + 100))] {
        ws.send(json!({"type": "subscribe", "id": "x", "table": "posts", "from": from}))
            .await;
        let error = ws.expect_error("invalid_parameter").await;
        assert_eq!(keys(&error), ["code", "id", "message", "type"]);
        assert_eq!(error["id"], "x");
    }

    // Not a position at all.
    for from in [
        json!("yesterday"),
        json!(-1),
        json!("zz:1"),
        json!({"at": 1}),
    ] {
        ws.send(json!({"type": "subscribe", "id": "x", "table": "posts", "from": from}))
            .await;
        ws.expect_error("invalid_message").await;
    }

    // None of them created the subscription.
    ws.send(json!({"type": "list_subscriptions"})).await;
    assert_eq!(
        ws.expect("subscriptions").await,
        json!({"type": "subscriptions", "subscriptions": []})
    );
    ws.ping("still open").await;
    server.stop().await;
}

#[tokio::test]
async fn from_below_retention_is_unrecoverable_with_the_earliest_offset() {
    let store = StoreConfig {
        retention: RetentionConfig {
            max_bytes: Some(1),
            check_interval: Duration::from_secs(3600),
            ..RetentionConfig::default()
        },
        ..StoreConfig::default()
    };
    let server = Server::start_with(store, realtime()).await;
    let posts = some_history(&server).await;
    server.herald.store().enforce_retention().await.unwrap();
    let earliest = server.herald.store().earliest().0;
    assert!(
        earliest > posts[1] + 1,
        "retention trimmed the log (earliest {earliest})"
    );

    let mut ws = server.ws().await;
    for from in [json!(0), json!(posts[0]), json!({"ts": 1})] {
        ws.send(json!({"type": "subscribe", "id": "old", "table": "posts", "from": from}))
            .await;
        let error = ws.expect_error("unrecoverable_position").await;
        assert_eq!(error["id"], "old");
        assert_eq!(error["earliest"], earliest, "{error}");
    }
    // Right before the earliest offset is still complete.
    let (history, _) = ws
        .subscribe(json!({"id": "ok", "table": "posts", "from": earliest - 1}))
        .await;
    assert!(history.iter().all(|e| offset(e) >= earliest));
    server.stop().await;
}

/// Writes `count` documents to `table` through REST, as fast as it can,
/// reporting how many are done; their offsets.
fn spawn_writer(
    server: &Server,
    table: &'static str,
    prefix: String,
    count: usize,
) -> (
    tokio::task::JoinHandle<Vec<u64>>,
    tokio::sync::watch::Receiver<usize>,
) {
    let writer = server.writer();
    let (progress, watch) = tokio::sync::watch::channel(0);
    let task = tokio::spawn(async move {
        let mut offsets = Vec::new();
        for i in 0..count {
            let doc = json!({"id": format!("{prefix}{i:04}"), "i": i});
            offsets.push(writer.insert(table, doc.clone()).await);
            // Noise in another table.
            writer.insert("noise", doc).await;
            progress.send_replace(i + 1);
        }
        offsets
    });
    (task, watch)
}

async fn history_meets_live_under_writes(config: RealtimeConfig) {
    let server = Server::start_with(StoreConfig::default(), config).await;
    let mut base = Vec::new();
    for i in 0..20 {
        base.push(
            server
                .insert("posts", json!({"id": format!("b{i:02}")}))
                .await,
        );
    }
    for round in 0..5 {
        let (writer, mut progress) = spawn_writer(&server, "posts", format!("r{round}w"), 40);
        let wait = rand::rng().random_range(0..10);
        progress.wait_for(|&n| n >= wait).await.unwrap();
        let mut ws = server.ws().await;
        let from = base[round * 3];
        let (before, subscribed) = ws
            .subscribe(json!({"id": "h", "table": "posts", "from": from}))
            .await;
        let at = offset(&subscribed);
        let written = writer.await.unwrap();
        base.extend(&written);
        let sentinel = server
            .insert("posts", json!({"id": format!("end{round}")}))
            .await;
        base.push(sentinel);
        let after = events_until(&mut ws, sentinel).await;
        assert!(before.iter().all(|e| offset(e) <= at));
        assert!(after.iter().all(|e| offset(e) > at));
        let mut got = offsets(&before);
        got.extend(offsets(&after));
        let want: Vec<u64> = base.iter().copied().filter(|&o| o > from).collect();
        assert_eq!(got, want, "round {round}: subscribed at {at}");
    }
    server.stop().await;
}

#[tokio::test]
async fn history_meets_live_without_gap_or_duplicate_under_concurrent_writes() {
    history_meets_live_under_writes(realtime()).await;
}

#[tokio::test]
async fn log_history_meets_live_without_gap_or_duplicate_under_concurrent_writes() {
    history_meets_live_under_writes(RealtimeConfig {
        recent_bytes: 1,
        ..realtime()
    })
    .await;
}

// ---------------------------------------------------------------------------
// Snapshots
// ---------------------------------------------------------------------------

fn small_chunks() -> RealtimeConfig {
    RealtimeConfig {
        snapshot_chunk_docs: 2,
        ..realtime()
    }
}

/// Checks snapshot chunks: numbered 1..=n of n, one offset, ids ascending;
/// the documents and the offset.
fn snapshot_docs(chunks: &[Value], id: &str) -> (Vec<Value>, u64) {
    assert!(!chunks.is_empty(), "at least one chunk");
    let total = chunks.len() as u64;
    let at = offset(&chunks[0]);
    let mut docs = Vec::new();
    for (i, chunk) in chunks.iter().enumerate() {
        assert_eq!(
            keys(chunk),
            ["chunk", "chunks", "docs", "id", "offset", "type"]
        );
        assert_eq!(chunk["type"], "snapshot", "{chunk}");
        assert_eq!(chunk["id"], id);
        assert_eq!(chunk["chunk"], i as u64 + 1);
        assert_eq!(chunk["chunks"], total);
        assert_eq!(offset(chunk), at, "every chunk has the snapshot's offset");
        docs.extend(chunk["docs"].as_array().unwrap().iter().cloned());
    }
    let ids: Vec<&str> = docs.iter().map(|d| d["id"].as_str().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in order: {ids:?}");
    (docs, at)
}

#[tokio::test]
async fn snapshot_sends_matching_documents_in_numbered_chunks_then_live_events() {
    let server = Server::start_with(StoreConfig::default(), small_chunks()).await;
    for (i, status) in ["open", "open", "closed", "open", "open", "closed", "open"]
        .iter()
        .enumerate()
    {
        server
            .insert(
                "tasks",
                json!({"id": format!("d{}", i + 1), "status": status}),
            )
            .await;
    }
    patch(&server, "tasks", "d2", json!({"n": 2})).await;
    server
        .insert("other", json!({"id": "d0", "status": "open"}))
        .await;
    let head = server.herald.store().head().0;

    let mut ws = server.ws().await;
    let (chunks, subscribed) = ws
        .subscribe(
            json!({"id": "s", "table": "tasks", "filter": {"status": "open"}, "snapshot": true}),
        )
        .await;
    let doc = |id: &str| json!({"id": id, "status": "open"});
    assert_eq!(
        chunks,
        [
            json!({"type": "snapshot", "id": "s", "docs": [doc("d1"), {"id": "d2", "status": "open", "n": 2}], "chunk": 1, "chunks": 3, "offset": head}),
            json!({"type": "snapshot", "id": "s", "docs": [doc("d4"), doc("d5")], "chunk": 2, "chunks": 3, "offset": head}),
            json!({"type": "snapshot", "id": "s", "docs": [doc("d7")], "chunk": 3, "chunks": 3, "offset": head}),
        ]
    );
    assert_eq!(
        subscribed,
        json!({"type": "subscribed", "id": "s", "offset": head})
    );

    let opened = offset(&patch(&server, "tasks", "d3", json!({"status": "open"})).await);
    server
        .insert("tasks", json!({"id": "d8", "status": "closed"}))
        .await;
    let inserted = server
        .insert("tasks", json!({"id": "d9", "status": "open"}))
        .await;
    let events = events_until(&mut ws, inserted).await;
    assert_eq!(offsets(&events), [opened, inserted]);
    assert!(opened > head);

    // Nothing matches: one empty chunk.
    let (chunks, subscribed) = ws
        .subscribe(
            json!({"id": "none", "table": "tasks", "where": "status = 'gone'", "snapshot": true}),
        )
        .await;
    let head = server.herald.store().head().0;
    assert_eq!(
        chunks,
        [
            json!({"type": "snapshot", "id": "none", "docs": [], "chunk": 1, "chunks": 1, "offset": head})
        ]
    );
    assert_eq!(offset(&subscribed), head);
    // An empty table too.
    let (chunks, _) = ws
        .subscribe(json!({"id": "empty", "table": "nothing", "snapshot": true}))
        .await;
    assert_eq!(chunks[0]["docs"], json!([]));
    assert_eq!(chunks[0]["chunks"], 1);
    server.stop().await;
}

/// One write of the concurrent snapshot test, as the writer saw it.
#[derive(Debug, Clone)]
struct Write {
    offset: u64,
    op: &'static str,
    id: String,
    version: u64,
    doc: Option<Value>,
    old: Option<Value>,
}

impl Write {
    /// The event a subscription filtered on `status = open` gets for it.
    fn expected_event(&self) -> Option<Value> {
        let target = self.doc.as_ref().or(self.old.as_ref()).unwrap();
        if target["status"] != "open" {
            return None;
        }
        let mut event =
            json!({"offset": self.offset, "op": self.op, "id": self.id, "version": self.version});
        if let Some(doc) = &self.doc {
            event["doc"] = doc.clone();
        }
        if let Some(old) = &self.old {
            event["old"] = old.clone();
        }
        Some(event)
    }
}

/// The fields of `event` that [`Write::expected_event`] predicts.
fn event_core(event: &Value) -> Value {
    let mut core = json!({});
    for key in ["offset", "op", "id", "version", "doc", "old"] {
        if let Some(v) = event.get(key) {
            core[key] = v.clone();
        }
    }
    core
}

/// Random inserts, patches, replacements and deletes on `table`, recorded.
async fn random_writes(
    http: reqwest::Client,
    base: String,
    table: String,
    mut state: BTreeMap<String, Value>,
    count: usize,
    first_new: usize,
    progress: tokio::sync::watch::Sender<usize>,
) -> Vec<Write> {
    let mut writes = Vec::new();
    let mut next_id = first_new;
    for i in 0..count {
        let choice = rand::rng().random_range(0..4);
        let status = if rand::rng().random_bool(0.5) {
            "open"
        } else {
            "closed"
        };
        let existing = (!state.is_empty()).then(|| {
            let at = rand::rng().random_range(0..state.len());
            state.keys().nth(at).unwrap().clone()
        });
        let (method, path, body, op, id) = match (choice, existing) {
            (1, Some(id)) => (
                Method::PATCH,
                id.clone(),
                Some(json!({"status": status, "n": i})),
                "update",
                id,
            ),
            (2, Some(id)) => (
                Method::PUT,
                id.clone(),
                Some(json!({"id": id, "status": status, "m": i})),
                "update",
                id,
            ),
            (3, Some(id)) => (Method::DELETE, id.clone(), None, "delete", id),
            _ => {
                let id = format!("k{next_id:03}");
                next_id += 1;
                (
                    Method::POST,
                    String::new(),
                    Some(json!({"id": id, "status": status})),
                    "insert",
                    id,
                )
            }
        };
        let url = if path.is_empty() {
            format!("{base}/v1/tables/{table}/docs")
        } else {
            format!("{base}/v1/tables/{table}/docs/{path}")
        };
        let mut request = http.request(method, url);
        if let Some(body) = &body {
            request = request.json(body);
        }
        let reply = request.send().await.unwrap();
        assert!(reply.status().is_success(), "{}", reply.status());
        let ack: Value = reply.json().await.unwrap();
        let old = state.get(&id).cloned();
        let doc = match op {
            "insert" => body,
            "delete" => None,
            _ if choice == 1 => {
                let mut doc = old.clone().unwrap();
                for (k, v) in body.unwrap().as_object().unwrap() {
                    doc[k] = v.clone();
                }
                Some(doc)
            }
            _ => body,
        };
        match &doc {
            Some(doc) => state.insert(id.clone(), doc.clone()),
            None => state.remove(&id),
        };
        writes.push(Write {
            offset: offset(&ack),
            op,
            id,
            version: ack["version"].as_u64().unwrap(),
            doc,
            old,
        });
        progress.send_replace(i + 1);
    }
    writes
}

#[tokio::test]
async fn snapshot_then_live_has_no_gap_or_duplicate_under_concurrent_writes() {
    let server = Server::start_with(StoreConfig::default(), small_chunks()).await;
    for round in 0..20 {
        let table = format!("snap{round}");
        let initial = random_writes(
            server.http.clone(),
            server.base.clone(),
            table.clone(),
            BTreeMap::new(),
            12,
            0,
            tokio::sync::watch::channel(0).0,
        )
        .await;
        let mut state = BTreeMap::new();
        for w in &initial {
            match &w.doc {
                Some(doc) => state.insert(w.id.clone(), doc.clone()),
                None => state.remove(&w.id),
            };
        }
        let (progress_tx, mut progress) = tokio::sync::watch::channel(0);
        let writer = tokio::spawn(random_writes(
            server.http.clone(),
            server.base.clone(),
            table.clone(),
            state,
            40,
            100,
            progress_tx,
        ));
        let wait = rand::rng().random_range(0..15);
        progress.wait_for(|&n| n >= wait).await.unwrap();

        let mut ws = server.ws().await;
        let (before, subscribed) = ws
            .subscribe(
                json!({"id": "s", "table": table, "filter": {"status": "open"}, "snapshot": true}),
            )
            .await;
        // Snapshot chunks, then maybe events written since (history), then
        // `subscribed`, then live events.
        let chunks = before
            .iter()
            .take_while(|m| m["type"] == "snapshot")
            .count();
        let (docs, at) = snapshot_docs(&before[..chunks], "s");
        let live_from = offset(&subscribed);
        assert!(
            live_from >= at,
            "subscribed {live_from} before the snapshot {at}"
        );
        let mut events = before[chunks..].to_vec();
        for event in &events {
            assert_eq!(event["type"], "event", "{event}");
            assert!(offset(event) > at && offset(event) <= live_from, "{event}");
        }
        let mut writes = initial;
        writes.extend(writer.await.unwrap());
        let sentinel = server
            .insert(&table, json!({"id": "zzz", "status": "open"}))
            .await;
        let live = events_until(&mut ws, sentinel).await;
        assert!(live.iter().all(|e| offset(e) > live_from));
        events.extend(live);

        // The snapshot is exactly the state at its offset.
        let mut model = BTreeMap::new();
        for w in writes.iter().filter(|w| w.offset <= at) {
            match &w.doc {
                Some(doc) => model.insert(w.id.clone(), doc.clone()),
                None => model.remove(&w.id),
            };
        }
        let want: Vec<Value> = model
            .into_values()
            .filter(|d| d["status"] == "open")
            .collect();
        assert_eq!(docs, want, "round {round}: snapshot at {at}");

        // Then every matching write after it, once, in order.
        let mut want: Vec<Value> = writes
            .iter()
            .filter(|w| w.offset > at)
            .filter_map(Write::expected_event)
            .collect();
        want.push(json!({"offset": sentinel, "op": "insert", "id": "zzz", "version": 1, "doc": {"id": "zzz", "status": "open"}}));
        let got: Vec<Value> = events.iter().map(event_core).collect();
        assert_eq!(
            got, want,
            "round {round}: events after the snapshot at {at}"
        );
    }
    server.stop().await;
}

/// A table of 1000 documents of 1 KB: a snapshot of it (1 MB) cannot all sit
/// in a small outbox and the socket buffers of a client that is not reading.
async fn big_table(server: &Server) {
    batch_insert(server, "big", bulky(1000)).await;
}

fn small_outbox_and_chunks() -> RealtimeConfig {
    RealtimeConfig {
        outbox_bytes: 4 << 10,
        snapshot_chunk_docs: 10,
        ..realtime()
    }
}

#[tokio::test]
async fn a_subscription_is_listed_as_not_live_while_its_snapshot_is_sent() {
    let server = Server::start_with(StoreConfig::default(), small_outbox_and_chunks()).await;
    big_table(&server).await;
    let mut ws = server.ws().await;
    ws.send(json!({"type": "subscribe", "id": "s", "table": "big", "snapshot": true}))
        .await;
    ws.send(json!({"type": "list_subscriptions", "ref": "during"}))
        .await;
    let mut chunks = 0;
    let mut listed = None;
    loop {
        let m = ws.recv().await;
        match m["type"].as_str().unwrap() {
            "snapshot" => chunks += 1,
            "subscriptions" => listed = Some(m),
            "subscribed" => break,
            _ => panic!("unexpected {m}"),
        }
    }
    assert_eq!(chunks, 100);
    assert_eq!(
        without_created_at(listed.expect("the listing arrived before `subscribed`")),
        json!({"type": "subscriptions", "ref": "during", "subscriptions": [
            {"id": "s", "topic": "table:big", "on_lag": "close", "live": false,
             "paused": false, "delivered": 0, "last_offset": 0},
        ]})
    );
    ws.send(json!({"type": "list_subscriptions"})).await;
    assert_eq!(
        ws.expect("subscriptions").await["subscriptions"][0]["live"],
        true
    );
    server.stop().await;
}

#[tokio::test]
async fn unsubscribing_during_a_snapshot_ends_it() {
    let server = Server::start_with(StoreConfig::default(), small_outbox_and_chunks()).await;
    big_table(&server).await;
    let mut ws = server.ws().await;
    ws.send(json!({"type": "subscribe", "id": "s", "table": "big", "snapshot": true}))
        .await;
    ws.send(json!({"type": "unsubscribe", "id": "s"})).await;
    // Some chunks may come first; after `unsubscribed`, nothing for `s`.
    let mut chunks = 0;
    loop {
        let m = ws.recv().await;
        match m["type"].as_str().unwrap() {
            "snapshot" => chunks += 1,
            "unsubscribed" => {
                assert_eq!(m, json!({"type": "unsubscribed", "id": "s"}));
                break;
            }
            _ => panic!("unexpected {m}"),
        }
    }
    assert!(chunks < 100, "the snapshot was cut short ({chunks} chunks)");
    let (before, _) = ws.subscribe(json!({"id": "w", "table": "big"})).await;
    assert!(before.is_empty(), "{before:?}");
    let at = server.insert("big", json!({"id": "new"})).await;
    let event = ws.expect("event").await;
    assert_eq!((offset(&event), subs(&event)), (at, vec!["w".to_owned()]));
    server.stop().await;
}

#[tokio::test]
async fn snapshot_is_only_for_a_single_table() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    for request in [
        json!({"type": "subscribe", "id": "c", "channel": "chat:x", "snapshot": true}),
        json!({"type": "subscribe", "id": "c", "table": "*", "snapshot": true}),
    ] {
        ws.send(request).await;
        let error = ws.expect_error("invalid_parameter").await;
        assert_eq!(error["id"], "c");
        ws.ping("p").await;
    }
    // `snapshot: false` is fine anywhere.
    ws.subscribe(json!({"id": "c", "channel": "chat:x", "snapshot": false}))
        .await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Managing subscriptions
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unsubscribe_stops_events_and_unknown_ids_are_errors() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(json!({"id": "a", "table": "posts"})).await;
    ws.subscribe(json!({"id": "b", "table": "posts"})).await;
    let first = server.insert("posts", json!({"id": "1"})).await;
    let event = ws.expect("event").await;
    assert_eq!(
        (offset(&event), subs(&event)),
        (first, vec!["a".to_owned(), "b".to_owned()])
    );

    ws.send(json!({"type": "unsubscribe", "id": "a"})).await;
    assert_eq!(ws.recv().await, json!({"type": "unsubscribed", "id": "a"}));
    let second = server.insert("posts", json!({"id": "2"})).await;
    let event = ws.expect("event").await;
    assert_eq!(
        (offset(&event), subs(&event)),
        (second, vec!["b".to_owned()])
    );

    for id in ["a", "zz"] {
        ws.send(json!({"type": "unsubscribe", "id": id})).await;
        let error = ws.expect_error("unknown_subscription").await;
        assert_eq!(keys(&error), ["code", "id", "message", "type"]);
        assert_eq!(error["id"], id);
    }

    // The last one: nothing more arrives. Another connection sees the write,
    // so it has been routed.
    ws.send(json!({"type": "unsubscribe", "id": "b"})).await;
    ws.expect("unsubscribed").await;
    let mut witness = server.ws().await;
    witness
        .subscribe(json!({"id": "w", "table": "posts"}))
        .await;
    let third = server.insert("posts", json!({"id": "3"})).await;
    assert_eq!(offset(&witness.expect("event").await), third);
    ws.quiet(Duration::from_millis(50)).await;

    // The id is free again.
    ws.subscribe(json!({"id": "a", "table": "posts"})).await;
    let fourth = server.insert("posts", json!({"id": "4"})).await;
    assert_eq!(offset(&ws.expect("event").await), fourth);
    server.stop().await;
}

#[tokio::test]
async fn duplicate_ids_and_too_many_subscriptions_are_refused() {
    let config = RealtimeConfig {
        max_subscriptions: 3,
        ..realtime()
    };
    let server = Server::start_with(StoreConfig::default(), config).await;
    let (mut ws, welcome) = server.ws_welcome().await;
    assert_eq!(welcome["max_subscriptions"], 3);
    ws.subscribe(json!({"id": "a", "table": "posts"})).await;
    ws.send(json!({"type": "subscribe", "id": "a", "table": "other"}))
        .await;
    let error = ws.expect_error("subscription_exists").await;
    assert_eq!(error["id"], "a");
    ws.subscribe(json!({"id": "b", "channel": "chat:x"})).await;
    ws.subscribe(json!({"id": "c", "table": "*"})).await;
    ws.send(json!({"type": "subscribe", "id": "d", "table": "posts"}))
        .await;
    let error = ws.expect_error("too_many_subscriptions").await;
    assert_eq!(error["id"], "d");
    // At the limit, a duplicate is still reported as a duplicate.
    ws.send(json!({"type": "subscribe", "id": "a", "table": "posts"}))
        .await;
    ws.expect_error("subscription_exists").await;

    // The original `a` is untouched (still on `posts`, not `other`).
    server.insert("other", json!({"id": "1"})).await;
    let posted = server.insert("posts", json!({"id": "1"})).await;
    let events = events_until(&mut ws, posted).await;
    let got: Vec<Vec<String>> = events.iter().map(subs).collect();
    assert_eq!(
        got,
        [vec!["c".to_owned()], vec!["a".to_owned(), "c".to_owned()]]
    );

    // Freeing a place admits one more; the limit is per connection.
    ws.send(json!({"type": "unsubscribe", "id": "c"})).await;
    ws.expect("unsubscribed").await;
    ws.subscribe(json!({"id": "d", "table": "posts"})).await;
    let mut other = server.ws().await;
    for id in ["x", "y", "z"] {
        other.subscribe(json!({"id": id, "table": "posts"})).await;
    }
    server.stop().await;
}

/// A `subscriptions` message with each `created_at` checked (a recent Unix
/// time in ms) and removed.
fn without_created_at(mut message: Value) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    for sub in message["subscriptions"].as_array_mut().unwrap() {
        let created = sub
            .as_object_mut()
            .unwrap()
            .remove("created_at")
            .and_then(|c| c.as_u64())
            .expect("created_at");
        assert!(created <= now && created + 60_000 > now, "{created}");
    }
    message
}

#[tokio::test]
async fn list_subscriptions_describes_each_subscription() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    ws.send(json!({"type": "list_subscriptions", "ref": "l0"}))
        .await;
    assert_eq!(
        ws.recv().await,
        json!({"type": "subscriptions", "ref": "l0", "subscriptions": []})
    );
    ws.subscribe(json!({"id": "c", "channel": "chat:x"})).await;
    ws.subscribe(json!({
        "id": "a", "table": "posts", "ops": ["insert", "delete"],
        "filter": {"status": {"$in": ["open", "new"]}},
    }))
    .await;
    ws.subscribe(json!({"id": "b", "table": "*", "where": "n > $1", "params": [1], "from": "now"}))
        .await;
    ws.send(json!({"type": "list_subscriptions", "ref": "l1"}))
        .await;
    let not_yet = json!({"on_lag": "close", "paused": false, "delivered": 0, "last_offset": 0});
    let with = |mut v: Value| {
        v.as_object_mut()
            .unwrap()
            .extend(not_yet.as_object().unwrap().clone());
        v
    };
    assert_eq!(
        without_created_at(ws.recv().await),
        json!({"type": "subscriptions", "ref": "l1", "subscriptions": [
            with(json!({"id": "a", "topic": "table:posts", "ops": ["insert", "delete"],
             "filter": {"status": {"$in": ["open", "new"]}}, "live": true})),
            with(json!({"id": "b", "topic": "table:*", "filter": "n > $1", "live": true})),
            with(json!({"id": "c", "topic": "chat:x", "live": true})),
        ]})
    );
    // Deliveries are counted per subscription.
    let offset = server
        .insert("posts", json!({"id": "p", "status": "open", "n": 5}))
        .await;
    ws.expect("event").await;
    ws.send(json!({"type": "list_subscriptions"})).await;
    let list = ws.expect("subscriptions").await;
    let counts: Vec<(u64, u64)> = list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["delivered"].as_u64().unwrap(),
                s["last_offset"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(counts, [(1, offset), (1, offset), (0, 0)]);
    ws.send(json!({"type": "unsubscribe", "id": "a"})).await;
    ws.expect("unsubscribed").await;
    ws.send(json!({"type": "list_subscriptions"})).await;
    let list = ws.expect("subscriptions").await;
    assert!(list.get("ref").is_none());
    let ids: Vec<&str> = list["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["b", "c"]);
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

#[tokio::test]
async fn malformed_messages_get_invalid_message_and_the_connection_survives() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    ws.subscribe(json!({"id": "keep", "table": "posts"})).await;
    let cases: [(&str, Option<&str>); 14] = [
        ("not json", None),
        ("{\"type\": \"ping\"", None),
        ("[1, 2]", None),
        ("\"ping\"", None),
        ("{}", None),
        (r#"{"ref": "r1"}"#, Some("r1")),
        (r#"{"type": "dance", "ref": "r2"}"#, Some("r2")),
        (r#"{"type": 7, "ref": "r3"}"#, Some("r3")),
        (r#"{"type": "subscribe", "table": "posts"}"#, None),
        (
            r#"{"type": "publish", "channel": "chat:x", "ref": "r4"}"#,
            Some("r4"),
        ),
        (r#"{"type": "ping", "ref": "r5", "extra": 1}"#, Some("r5")),
        (
            r#"{"type": "subscribe", "id": "s", "table": "posts", "filtr": {}}"#,
            None,
        ),
        (
            r#"{"type": "subscribe", "id": "s", "table": "posts", "ops": ["upsert"]}"#,
            None,
        ),
        (r#"{"type": "ping", "ref": 5}"#, None),
    ];
    for (i, (text, reference)) in cases.iter().enumerate() {
        ws.send_text(text).await;
        let error = ws.expect_error("invalid_message").await;
        match reference {
            Some(r) => {
                assert_eq!(keys(&error), ["code", "message", "ref", "type"], "{text}");
                assert_eq!(error["ref"], *r, "{text}");
            }
            None => assert_eq!(keys(&error), ["code", "message", "type"], "{text}: {error}"),
        }
        ws.ping(&format!("after{i}")).await;
    }
    // Messages that name the wrong field say which.
    ws.send_text(r#"{"type": "subscribe", "id": "s", "table": "posts", "filtr": {}}"#)
        .await;
    let error = ws.expect_error("invalid_message").await;
    assert!(
        error["message"].as_str().unwrap().contains("filtr"),
        "{error}"
    );

    // A binary frame is refused the same way.
    ws.stream
        .send(Message::binary(br#"{"type":"ping"}"#.to_vec()))
        .await
        .unwrap();
    let error = ws.expect_error("invalid_message").await;
    assert_eq!(keys(&error), ["code", "message", "type"]);
    ws.ping("after binary").await;

    // A bad token in `auth` is an error; the (open) connection stays.
    ws.send(json!({"type": "auth", "token": "t"})).await;
    ws.expect_error("unauthorized").await;
    ws.ping("after auth").await;

    // The subscription made before all this still works.
    let at = server.insert("posts", json!({"id": "p"})).await;
    assert_eq!(offset(&ws.expect("event").await), at);
    server.stop().await;
}

#[tokio::test]
async fn invalid_names_filters_and_options_get_their_codes() {
    let server = Server::start().await;
    let mut ws = server.ws().await;
    let long_id = "x".repeat(129);
    let cases = [
        (json!({"id": "s", "table": "no-dash"}), "invalid_table"),
        (json!({"id": "s", "table": ""}), "invalid_table"),
        (json!({"id": "s", "table": "x".repeat(65)}), "invalid_table"),
        (
            json!({"id": "s", "channel": "table:posts"}),
            "invalid_channel",
        ),
        (
            json!({"id": "s", "channel": "has space"}),
            "invalid_channel",
        ),
        (json!({"id": "s", "channel": "a..b"}), "invalid_channel"),
        (
            json!({"id": "s", "table": "posts", "filter": {"$bad": 1}}),
            "invalid_filter",
        ),
        (
            json!({"id": "s", "table": "posts", "filter": {"n": {"$gt": [1]}, "$or": 3}}),
            "invalid_filter",
        ),
        (
            json!({"id": "s", "table": "posts", "where": "n >"}),
            "invalid_filter",
        ),
        (
            json!({"id": "s", "table": "posts", "where": "n > $1"}),
            "invalid_filter",
        ),
        (
            json!({"id": "s", "table": "posts", "snapshot": true, "from": 0}),
            "invalid_parameter",
        ),
        (
            json!({"id": "s", "table": "posts", "params": [1]}),
            "invalid_filter",
        ),
        (
            json!({"id": "s", "table": "posts", "channel": "chat:x"}),
            "invalid_parameter",
        ),
        (json!({"id": "s"}), "invalid_parameter"),
        (json!({"id": "", "table": "posts"}), "invalid_parameter"),
        (json!({"id": "a\nb", "table": "posts"}), "invalid_parameter"),
        (
            json!({"id": long_id, "table": "posts"}),
            "invalid_parameter",
        ),
        (
            json!({"id": "s", "table": "posts", "ops": []}),
            "invalid_parameter",
        ),
        (
            json!({"id": "s", "table": "posts", "changed": []}),
            "invalid_parameter",
        ),
        (
            json!({"id": "s", "table": "posts", "changed": [""]}),
            "invalid_parameter",
        ),
    ];
    for (i, (mut request, code)) in cases.into_iter().enumerate() {
        request["type"] = json!("subscribe");
        ws.send(request.clone()).await;
        let error = ws.expect_error(code).await;
        assert_eq!(error["id"], request["id"], "{request}: {error}");
        assert!(error.get("ref").is_none());
        ws.ping(&format!("s{i}")).await;
    }
    // Publishing to a bad channel, or too big a message.
    for (channel, code) in [
        ("table:x", "invalid_channel"),
        ("", "invalid_channel"),
        ("a b", "invalid_channel"),
    ] {
        ws.send(json!({"type": "publish", "channel": channel, "data": 1, "ref": "p"}))
            .await;
        let error = ws.expect_error(code).await;
        assert_eq!(keys(&error), ["code", "message", "ref", "type"]);
        assert_eq!(error["ref"], "p");
        ws.ping("after publish").await;
    }
    server.stop().await;
}

#[tokio::test]
async fn messages_over_max_message_bytes_close_with_1009() {
    let config = RealtimeConfig {
        max_message_bytes: 1024,
        ..realtime()
    };
    let server = Server::start_with(StoreConfig::default(), config).await;
    let (mut ws, welcome) = server.ws_welcome().await;
    assert_eq!(welcome["max_message_bytes"], 1024);
    // Exactly at the limit: fine.
    let frame = |len: usize| {
        let head = r#"{"type":"ping","ref":""#;
        let tail = r#""}"#;
        format!("{head}{}{tail}", "x".repeat(len - head.len() - tail.len()))
    };
    let exact = frame(1024);
    assert_eq!(exact.len(), 1024);
    ws.send_text(&exact).await;
    let pong = ws.expect("pong").await;
    let reference: Value = serde_json::from_str(&exact).unwrap();
    assert_eq!(pong["ref"], reference["ref"]);
    // One byte more: closed with 1009.
    ws.send_text(&frame(1025)).await;
    let (code, reason) = ws.expect_close().await;
    assert_eq!(code, 1009, "{reason}");
    assert_eq!(reason, "message too big");
    server.stop().await;
}

#[tokio::test]
async fn a_client_close_is_answered_and_frees_the_session() {
    let config = RealtimeConfig {
        max_connections: 1,
        ..realtime()
    };
    let server = Server::start_with(StoreConfig::default(), config).await;
    let mut ws = server.ws().await;
    ws.subscribe(json!({"id": "a", "table": "posts"})).await;
    ws.stream.close(None).await.unwrap();
    // The server answers the close, then the stream ends cleanly.
    let end = tokio::time::timeout(TIMEOUT, async {
        let mut frames = Vec::new();
        while let Some(frame) = ws.stream.next().await {
            frames.push(frame.map_err(|e| e.to_string()));
        }
        frames
    })
    .await
    .expect("the stream ends in time");
    assert!(matches!(end.as_slice(), [Ok(Message::Close(_))]), "{end:?}");
    admitted_soon(&server).await.ping("next").await;
    server.stop().await;
}

// ---------------------------------------------------------------------------
// Heartbeats, limits, shutdown
// ---------------------------------------------------------------------------

/// Reads one server frame (unmasked): opcode and payload; `None` at EOF.
async fn read_frame(tcp: &mut tokio::net::TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 2];
    tcp.read_exact(&mut head).await.ok()?;
    assert_eq!(head[0] & 0x80, 0x80, "unfragmented frames");
    assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
    let len = match head[1] & 0x7f {
        126 => usize::from(tcp.read_u16().await.ok()?),
        127 => usize::try_from(tcp.read_u64().await.ok()?).unwrap(),
        n => usize::from(n),
    };
    let mut payload = vec![0; len];
    tcp.read_exact(&mut payload).await.ok()?;
    Some((head[0] & 0x0f, payload))
}

#[tokio::test]
async fn a_client_that_never_answers_pings_is_closed_with_4001() {
    let config = RealtimeConfig {
        heartbeat: Duration::from_millis(50),
        client_timeout: Duration::from_millis(200),
        ..realtime()
    };
    let server = Server::start_with(StoreConfig::default(), config).await;
    // A raw socket: the handshake by hand, then never a byte from us.
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let request = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        server.addr
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    while !response.ends_with(b"\r\n\r\n") {
        response.push(tcp.read_u8().await.unwrap());
    }
    let started = Instant::now();
    let response = String::from_utf8(response).unwrap();
    assert!(response.starts_with("HTTP/1.1 101"), "{response}");

    let (kinds, close, elapsed) = tokio::time::timeout(TIMEOUT, async {
        let mut kinds = Vec::new();
        loop {
            let (opcode, payload) = read_frame(&mut tcp)
                .await
                .expect("a close frame before EOF");
            kinds.push(opcode);
            if opcode == 0x8 {
                return (kinds, payload, started.elapsed());
            }
        }
    })
    .await
    .expect("closed in time");
    assert_eq!(kinds[0], 0x1, "the welcome comes first");
    let pings = kinds.iter().filter(|&&k| k == 0x9).count();
    assert!(pings >= 2, "pinged every 50ms before giving up: {kinds:?}");
    assert!(
        elapsed >= Duration::from_millis(180) && elapsed < Duration::from_millis(1500),
        "closed after {elapsed:?}"
    );
    assert_eq!(u16::from_be_bytes([close[0], close[1]]), 4001);
    assert_eq!(&close[2..], b"no answer to pings");
    // Then the server hangs up.
    let mut rest = Vec::new();
    let read = tokio::time::timeout(TIMEOUT, tcp.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the socket is closed after the close frame");
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_reads_stays_open_past_the_timeout() {
    let config = RealtimeConfig {
        heartbeat: Duration::from_millis(50),
        client_timeout: Duration::from_millis(200),
        ..realtime()
    };
    let server = Server::start_with(StoreConfig::default(), config).await;
    let (mut ws, welcome) = server.ws_welcome().await;
    assert_eq!(welcome["heartbeat_ms"], 50);
    ws.subscribe(json!({"id": "a", "table": "posts"})).await;
    // Reading answers the server's pings (tungstenite does it for us).
    ws.idle(Duration::from_millis(700)).await;
    ws.ping("alive").await;
    let at = server.insert("posts", json!({"id": "1"})).await;
    assert_eq!(offset(&ws.expect("event").await), at);
    server.stop().await;
}

/// A new WebSocket, retried briefly while a closing session frees its place.
async fn admitted_soon(server: &Server) -> Ws {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        match server.try_ws().await {
            Ok(ws) => return ws,
            Err((503, _)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(refused) => panic!("refused: {refused:?}"),
        }
    }
}

#[tokio::test]
async fn the_connection_limit_refuses_upgrades_with_503_until_one_closes() {
    let config = RealtimeConfig {
        max_connections: 2,
        ..realtime()
    };
    let server = Server::start_with(StoreConfig::default(), config).await;
    let mut first = server.try_ws().await.unwrap();
    let mut second = server.try_ws().await.unwrap();
    for _ in 0..3 {
        let Err((status, body)) = server.try_ws().await else {
            panic!("a third connection was admitted");
        };
        assert_eq!(status, 503);
        assert_eq!(body["error"]["code"], "too_many_connections", "{body}");
    }
    // The open ones are unaffected.
    first.ping("1").await;
    second.ping("2").await;
    first.stream.close(None).await.unwrap();
    drop(first);
    let mut third = admitted_soon(&server).await;
    third.ping("3").await;
    let Err((status, _)) = server.try_ws().await else {
        panic!("the limit still holds");
    };
    assert_eq!(status, 503);
    // Plain HTTP is not limited.
    let (status, _) = server.call(Method::GET, "/healthz", None).await;
    assert_eq!(status, 200);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_closes_websockets_with_1001_and_run_returns_ok() {
    let server = Server::start().await;
    let mut subscribed = server.ws().await;
    subscribed
        .subscribe(json!({"id": "a", "table": "posts"}))
        .await;
    let mut idle = server.ws().await;
    let started = Instant::now();
    let stopping = tokio::spawn(server.stop());
    for ws in [&mut subscribed, &mut idle] {
        let (code, reason) = ws.expect_close().await;
        assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
    }
    tokio::time::timeout(TIMEOUT, stopping)
        .await
        .expect("stopped in time")
        .expect("run returned Ok");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "sessions ended promptly: {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------
// Slow consumers
// ---------------------------------------------------------------------------

fn bulky(count: usize) -> Vec<Value> {
    (0..count)
        .map(|i| json!({"id": format!("b{i:04}"), "pad": "x".repeat(1000)}))
        .collect()
}

/// A connection subscribed to `bulk` with an 8 KiB outbox is cut by one
/// 200 KB commit group; resuming from its `resume_from` must replay the
/// rest, paced by the client like any history.
async fn resume_after_a_burst(config: RealtimeConfig) {
    let server = Server::start_with(StoreConfig::default(), config).await;
    let mut slow = server.ws().await;
    slow.subscribe(json!({"id": "s", "table": "bulk"})).await;
    // One commit group of 200 KB: more than the outbox holds at once.
    let written = batch_insert(&server, "bulk", bulky(200)).await;
    let (got, resume_from) = slow.read_until_cut().await;
    assert!(
        got.len() < written.len(),
        "cut after {} of {}",
        got.len(),
        written.len()
    );
    assert_eq!(got, written[..got.len()], "a prefix, in order");
    assert_eq!(
        resume_from,
        *got.last().unwrap(),
        "resume after the last delivered"
    );

    let mut again = server.ws().await;
    let (history, subscribed) = again
        .subscribe(json!({"id": "s", "table": "bulk", "from": resume_from}))
        .await;
    assert_eq!(offsets(&history), written[got.len()..]);
    assert_eq!(offset(&subscribed), *written.last().unwrap());
    server.stop().await;
}

/// History read from the log is queued with `push_wait`: a backlog many
/// times the outbox is delivered whole.
#[tokio::test]
async fn resuming_from_the_log_after_a_burst_is_paced_by_the_client() {
    resume_after_a_burst(RealtimeConfig {
        outbox_bytes: 8 << 10,
        recent_bytes: 1,
        ..realtime()
    })
    .await;
}

/// The same when the backlog is still in the shard's recent window: a
/// backlog larger than the outbox's room is left to the paced log reader
/// instead of overflowing the resuming connection.
#[tokio::test]
async fn resuming_from_the_recent_window_after_a_burst_is_paced_by_the_client() {
    resume_after_a_burst(RealtimeConfig {
        outbox_bytes: 8 << 10,
        ..realtime()
    })
    .await;
}

/// With `write_delay`, events queued together go out together, and none
/// is held back or lost.
#[tokio::test]
async fn a_write_delay_coalesces_without_losing_anything() {
    let realtime = RealtimeConfig {
        write_delay: Duration::from_millis(30),
        ..RealtimeConfig::default()
    };
    let server = Server::start_with(StoreConfig::default(), realtime).await;
    let mut ws = server.ws().await;
    ws.subscribe(json!({"type": "subscribe", "id": "c", "channel": "co"}))
        .await;
    for n in 0..20 {
        server.publish("co", json!({"n": n})).await;
    }
    for n in 0..20 {
        let event = ws.expect("event").await;
        assert_eq!(event["data"]["n"], n, "{event}");
    }
    ws.quiet(Duration::from_millis(100)).await;
    server.stop().await;
}
