//! End-to-end tests of Server-Sent Events: `GET /v1/sse` and the shorthand
//! `GET /v1/tables/{table}/events`.
//!
//! Every test starts a real server on an ephemeral port, writes through the
//! REST API and reads the stream with reqwest, parsing the `event:`, `id:`
//! and `data:` lines itself (support's `Sse`), so framing is checked byte
//! for byte.
//!
//! "Nothing else arrived" is checked with a sentinel: a later write that does
//! match. A stream's events arrive in log order, so if the sentinel is the
//! next event, nothing in between was delivered.

mod support;

use herald_server::RealtimeConfig;
use herald_store::StoreConfig;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use support::{Server, Sse, SseBlock, TIMEOUT};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

fn realtime() -> RealtimeConfig {
    RealtimeConfig::default()
}

/// A URL query string, encoded.
fn query(pairs: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(pairs).unwrap()
}

async fn open(server: &Server, path: &str) -> Sse {
    open_with(server, path, &[]).await
}

async fn open_with(server: &Server, path: &str, headers: &[(&str, &str)]) -> Sse {
    match server.sse(path, headers).await {
        Ok(sse) => sse,
        Err((status, body)) => panic!("{path}: {status} {body}"),
    }
}

fn offset(v: &Value) -> u64 {
    v["offset"]
        .as_u64()
        .unwrap_or_else(|| panic!("no offset in {v}"))
}

fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort_unstable();
    keys
}

/// Checks that `block` is an unnamed event whose `id` is its resume token;
/// the envelope.
fn event(server: &Server, block: &SseBlock) -> Value {
    let names: Vec<&str> = block.fields.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["id", "data"], "an unnamed event: {}", block.raw);
    let envelope = block.json();
    assert_eq!(
        block.id().unwrap(),
        format!("{}:{}", server.epoch(), offset(&envelope)),
        "the id is the resume token"
    );
    assert!(
        envelope.get("type").is_none() && envelope.get("subs").is_none(),
        "{envelope}"
    );
    envelope
}

/// Reads blocks up to `event: subscribed`: the events before it (history),
/// the `subscribed` data (checked against its `id:`).
async fn subscribed(server: &Server, sse: &mut Sse) -> (Vec<Value>, Value) {
    let mut history = Vec::new();
    loop {
        let block = sse.next().await;
        if block.event() == Some("subscribed") {
            let data = block.json();
            let at = offset(&data);
            assert_eq!(
                block.raw,
                format!(
                    "event: subscribed\nid: {}:{at}\ndata: {{\"type\":\"subscribed\",\"id\":\"sse\",\"offset\":{at}}}",
                    server.epoch()
                )
            );
            for e in &history {
                assert!(offset(e) <= at, "history {e} after subscribed {at}");
            }
            return (history, data);
        }
        history.push(event(server, &block));
    }
}

/// Reads events up to the one at `last` (inclusive).
async fn events_until(server: &Server, sse: &mut Sse, last: u64) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let block = sse.next().await;
        let e = event(server, &block);
        let at = offset(&e);
        assert!(at <= last, "event {at} past the sentinel {last}");
        events.push(e);
        if at == last {
            return events;
        }
    }
}

fn offsets(events: &[Value]) -> Vec<u64> {
    events.iter().map(offset).collect()
}

async fn patch(server: &Server, table: &str, id: &str, body: Value) -> u64 {
    let path = format!("/v1/tables/{table}/docs/{id}");
    offset(&server.write(Method::PATCH, &path, Some(&body)).await)
}

// ---------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_table_stream_sends_subscribed_then_unnamed_events_with_resume_ids() {
    let server = Server::start().await;
    let epoch = server.epoch();
    let before = server.insert("posts", json!({"id": "old"})).await;
    let mut sse = open(&server, "/v1/sse?table=posts").await;
    let (history, subscribed) = subscribed(&server, &mut sse).await;
    assert!(history.is_empty());
    assert_eq!(
        subscribed,
        json!({"type": "subscribed", "id": "sse", "offset": before})
    );

    let inserted = server.insert("posts", json!({"id": "p1", "n": 1})).await;
    let block = sse.next().await;
    assert!(
        block
            .raw
            .starts_with(&format!("id: {epoch}:{inserted}\ndata: {{")),
        "{}",
        block.raw
    );
    let envelope = event(&server, &block);
    assert_eq!(
        keys(&envelope),
        [
            "changed", "doc", "epoch", "id", "offset", "op", "table", "topic", "ts", "version"
        ]
    );
    let mut expected = envelope.clone();
    expected["ts"] = json!(0);
    assert_eq!(
        expected,
        json!({
            "offset": inserted, "epoch": epoch, "ts": 0, "topic": "table:posts", "op": "insert",
            "table": "posts", "id": "p1", "version": 1, "doc": {"id": "p1", "n": 1},
            "changed": ["id", "n"],
        })
    );

    let updated = patch(&server, "posts", "p1", json!({"n": 2})).await;
    let envelope = event(&server, &sse.next().await);
    assert_eq!(
        (
            offset(&envelope),
            &envelope["op"],
            &envelope["old"],
            &envelope["doc"]
        ),
        (
            updated,
            &json!("update"),
            &json!({"id": "p1", "n": 1}),
            &json!({"id": "p1", "n": 2})
        )
    );
    let deleted = offset(
        &server
            .write(Method::DELETE, "/v1/tables/posts/docs/p1", None)
            .await,
    );
    server.insert("other", json!({"id": "x"})).await;
    server.publish("chat:x", json!(1)).await;
    let last = server.insert("posts", json!({"id": "p2"})).await;
    let events = events_until(&server, &mut sse, last).await;
    assert_eq!(offsets(&events), [deleted, last]);
    assert_eq!(events[0]["op"], "delete");
    assert_eq!(events[0]["old"], json!({"id": "p1", "n": 2}));
    server.stop().await;
}

#[tokio::test]
async fn last_event_id_resumes_exactly_after_that_event() {
    let server = Server::start().await;
    let mut first = open(&server, "/v1/sse?table=posts").await;
    subscribed(&server, &mut first).await;
    let mut written = Vec::new();
    for i in 0..5 {
        written.push(server.insert("posts", json!({"id": format!("p{i}")})).await);
        server.insert("noise", json!({"id": format!("n{i}")})).await;
    }
    let events = events_until(&server, &mut first, written[4]).await;
    assert_eq!(offsets(&events), written);
    drop(first);
    // Missed while disconnected.
    written.push(server.insert("posts", json!({"id": "p5"})).await);
    written.push(server.insert("posts", json!({"id": "p6"})).await);

    // Resuming after the second event: the rest, once each, in order; the
    // header wins over `from` and skips the snapshot.
    let token = format!("{}:{}", server.epoch(), written[1]);
    let mut second = open_with(
        &server,
        "/v1/sse?table=posts&from=0&snapshot=true",
        &[("Last-Event-ID", &token)],
    )
    .await;
    let (history, sub) = subscribed(&server, &mut second).await;
    let p7 = server.insert("posts", json!({"id": "p7"})).await;
    let after = events_until(&server, &mut second, p7).await;
    assert!(after.iter().all(|e| offset(e) > offset(&sub)));
    let mut got = offsets(&history);
    got.extend(offsets(&after));
    let mut want = written[2..].to_vec();
    want.push(p7);
    assert_eq!(got, want, "no gap, no duplicate");
    drop(second);

    // Resuming after `subscribed` itself (its id) replays nothing.
    let head = server.herald.store().head().0;
    let token = format!("{}:{head}", server.epoch());
    let mut third = open_with(&server, "/v1/sse?table=posts", &[("Last-Event-ID", &token)]).await;
    let (history, sub) = subscribed(&server, &mut third).await;
    assert!(history.is_empty());
    assert_eq!(offset(&sub), head);
    let p8 = server.insert("posts", json!({"id": "p8"})).await;
    assert_eq!(offsets(&events_until(&server, &mut third, p8).await), [p8]);

    // The shorthand honours it too.
    let token = format!("{}:{}", server.epoch(), written[5]);
    let mut fourth = open_with(
        &server,
        "/v1/tables/posts/events",
        &[("Last-Event-ID", &token)],
    )
    .await;
    let (history, _) = subscribed(&server, &mut fourth).await;
    let mut got = offsets(&history);
    let p9 = server.insert("posts", json!({"id": "p9"})).await;
    got.extend(offsets(&events_until(&server, &mut fourth, p9).await));
    assert_eq!(got, [written[6], p7, p8, p9]);
    server.stop().await;
}

#[tokio::test]
async fn from_and_since_choose_where_a_stream_starts() {
    let server = Server::start().await;
    let epoch = server.epoch();
    let mut written = Vec::new();
    for i in 0..4 {
        if i > 0 {
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        written.push(server.insert("posts", json!({"id": format!("p{i}")})).await);
    }
    let token = format!("{epoch}:{}", written[1]);
    let cases = [
        (format!("from={}", written[0]), written[1..].to_vec()),
        (query(&[("from", &token)]), written[2..].to_vec()),
        ("from=now".to_owned(), vec![]),
        (String::new(), vec![]),
    ];
    for (params, want) in cases {
        let mut sse = open(&server, &format!("/v1/sse?table=posts&{params}")).await;
        let (history, sub) = subscribed(&server, &mut sse).await;
        assert_eq!(offsets(&history), want, "{params}");
        assert_eq!(offset(&sub), *written.last().unwrap(), "{params}");
    }

    // since=<ms>: every event at or after that time.
    let mut all = open(&server, "/v1/sse?table=posts&from=0").await;
    let (history, _) = subscribed(&server, &mut all).await;
    let ts = history[2]["ts"].as_u64().unwrap();
    assert!(history[1]["ts"].as_u64().unwrap() < ts);
    let mut sse = open(&server, &format!("/v1/sse?table=posts&since={ts}")).await;
    let (history, _) = subscribed(&server, &mut sse).await;
    assert_eq!(offsets(&history), written[2..]);
    let mut sse = open(&server, &format!("/v1/tables/posts/events?since={ts}")).await;
    let (history, _) = subscribed(&server, &mut sse).await;
    assert_eq!(offsets(&history), written[2..]);
    let mut sse = open(
        &server,
        &format!("/v1/tables/posts/events?from={}", written[2]),
    )
    .await;
    let (history, _) = subscribed(&server, &mut sse).await;
    assert_eq!(offsets(&history), written[3..]);
    server.stop().await;
}

#[tokio::test]
async fn snapshot_sends_named_chunks_the_last_with_an_id_then_events() {
    let config = RealtimeConfig {
        snapshot_chunk_docs: 2,
        ..realtime()
    };
    let server = Server::start_with(StoreConfig::default(), config).await;
    let epoch = server.epoch();
    for (i, status) in ["open", "closed", "open", "open", "open"]
        .iter()
        .enumerate()
    {
        server
            .insert("tasks", json!({"id": format!("t{i}"), "status": status}))
            .await;
    }
    let head = server.herald.store().head().0;
    let path = format!(
        "/v1/sse?{}",
        query(&[
            ("table", "tasks"),
            ("snapshot", "true"),
            ("filter", r#"{"status":"open"}"#)
        ])
    );
    let mut sse = open(&server, &path).await;
    let doc = |id: &str| json!({"id": id, "status": "open"});
    let expected = [
        (json!([doc("t0"), doc("t2")]), 1),
        (json!([doc("t3"), doc("t4")]), 2),
    ];
    for (docs, chunk) in expected {
        let block = sse.next().await;
        assert_eq!(block.event(), Some("snapshot"), "{}", block.raw);
        let last = chunk == 2;
        let names: Vec<&str> = block.fields.iter().map(|(n, _)| n.as_str()).collect();
        if last {
            assert_eq!(names, ["event", "id", "data"], "the last chunk has an id");
            assert_eq!(block.id().unwrap(), format!("{epoch}:{head}"));
        } else {
            assert_eq!(names, ["event", "data"], "earlier chunks have none");
        }
        assert_eq!(
            block.json(),
            json!({"type": "snapshot", "id": "sse", "docs": docs, "chunk": chunk, "chunks": 2, "offset": head})
        );
    }
    let (history, sub) = subscribed(&server, &mut sse).await;
    assert!(history.is_empty());
    assert_eq!(offset(&sub), head);
    let opened = patch(&server, "tasks", "t1", json!({"status": "open"})).await;
    patch(&server, "tasks", "t0", json!({"status": "closed"})).await;
    let last = server
        .insert("tasks", json!({"id": "t9", "status": "open"}))
        .await;
    assert_eq!(
        offsets(&events_until(&server, &mut sse, last).await),
        [opened, last]
    );

    // The shorthand takes snapshot=true too.
    let mut sse = open(
        &server,
        "/v1/tables/tasks/events?status=closed&snapshot=true",
    )
    .await;
    let block = sse.next().await;
    assert_eq!(block.event(), Some("snapshot"));
    assert_eq!(
        block.json()["docs"],
        json!([{"id": "t0", "status": "closed"}])
    );
    server.stop().await;
}

#[tokio::test]
async fn the_shorthand_filters_by_equality_with_typed_values() {
    let server = Server::start().await;
    let mut sse = open(&server, "/v1/tables/t/events?status=open&n=3").await;
    subscribed(&server, &mut sse).await;
    let a = server
        .insert("t", json!({"id": "a", "status": "open", "n": 3}))
        .await;
    let b = server
        .insert("t", json!({"id": "b", "status": "open", "n": "3"}))
        .await;
    server
        .insert("t", json!({"id": "c", "status": "open", "n": 4}))
        .await;
    server
        .insert("t", json!({"id": "d", "status": "closed", "n": 3}))
        .await;
    server.insert("t", json!({"id": "e", "n": 3})).await;
    server
        .insert("t", json!({"id": "f", "status": "open", "n": 3.5}))
        .await;
    server
        .insert("u", json!({"id": "g", "status": "open", "n": 3}))
        .await;
    let h = server
        .insert("t", json!({"id": "h", "status": "open", "n": 3.0}))
        .await;
    let events = events_until(&server, &mut sse, h).await;
    assert_eq!(offsets(&events), [a, b, h]);

    // ops restricts operations; dotted names reach nested fields; true
    // matches the boolean and the string.
    let mut sse = open(
        &server,
        "/v1/tables/t/events?ops=insert,delete&meta.kind=x&ok=true",
    )
    .await;
    subscribed(&server, &mut sse).await;
    let i = server
        .insert("t", json!({"id": "i", "meta": {"kind": "x"}, "ok": true}))
        .await;
    patch(&server, "t", "i", json!({"n": 1})).await;
    server
        .insert("t", json!({"id": "j", "meta": {"kind": "y"}, "ok": true}))
        .await;
    let k = server
        .insert("t", json!({"id": "k", "meta": {"kind": "x"}, "ok": "true"}))
        .await;
    let gone = offset(
        &server
            .write(Method::DELETE, "/v1/tables/t/docs/i", None)
            .await,
    );
    let events = events_until(&server, &mut sse, gone).await;
    assert_eq!(offsets(&events), [i, k, gone]);
    assert_eq!(events[2]["op"], "delete");

    // A field given twice matches either value.
    let mut sse = open(&server, "/v1/tables/t/events?status=open&status=paid").await;
    subscribed(&server, &mut sse).await;
    let open_one = server
        .insert("t", json!({"id": "l", "status": "open"}))
        .await;
    server
        .insert("t", json!({"id": "m", "status": "closed"}))
        .await;
    let paid = server
        .insert("t", json!({"id": "n", "status": "paid"}))
        .await;
    let events = events_until(&server, &mut sse, paid).await;
    assert_eq!(offsets(&events), [open_one, paid]);
    server.stop().await;
}

#[tokio::test]
async fn sse_options_match_the_websocket_ones() {
    let server = Server::start().await;
    // where + params, ops, changed.
    let path = format!(
        "/v1/sse?{}",
        query(&[
            ("table", "t"),
            ("where", "n > $1"),
            ("params", "[5]"),
            ("ops", "insert,update"),
            ("changed", "n"),
        ])
    );
    let mut sse = open(&server, &path).await;
    subscribed(&server, &mut sse).await;
    server.insert("t", json!({"id": "a", "n": 1})).await;
    let b = server.insert("t", json!({"id": "b", "n": 6})).await;
    patch(&server, "t", "b", json!({"title": "no n change"})).await;
    let raised = patch(&server, "t", "a", json!({"n": 9})).await;
    server
        .write(Method::DELETE, "/v1/tables/t/docs/a", None)
        .await;
    let last = server.insert("t", json!({"id": "c", "n": 7})).await;
    assert_eq!(
        offsets(&events_until(&server, &mut sse, last).await),
        [b, raised, last]
    );

    // A channel stream counts as a receiver.
    let path = format!(
        "/v1/sse?{}",
        query(&[("channel", "chat:x"), ("filter", r#"{"n":{"$gte":5}}"#)])
    );
    let mut sse = open(&server, &path).await;
    subscribed(&server, &mut sse).await;
    assert_eq!(
        server.publish("chat:x", json!({"n": 3})).await["receivers"],
        0
    );
    let answer = server.publish("chat:x", json!({"n": 7})).await;
    assert_eq!(answer["receivers"], 1);
    let envelope = event(&server, &sse.next().await);
    assert_eq!(offset(&envelope), offset(&answer));
    assert_eq!(
        (
            &envelope["topic"],
            &envelope["op"],
            &envelope["channel"],
            &envelope["data"]
        ),
        (
            &json!("chat:x"),
            &json!("publish"),
            &json!("chat:x"),
            &json!({"n": 7})
        )
    );

    // Every table.
    let mut sse = open(&server, "/v1/sse?table=*").await;
    subscribed(&server, &mut sse).await;
    let x = server.insert("x", json!({"id": "1"})).await;
    server.publish("chat:x", json!({"n": 9})).await;
    let y = server.insert("y", json!({"id": "1"})).await;
    assert_eq!(offsets(&events_until(&server, &mut sse, y).await), [x, y]);
    server.stop().await;
}

#[tokio::test]
async fn payloads_cannot_inject_sse_fields() {
    let server = Server::start().await;
    let mut table = open(&server, "/v1/sse?table=evil").await;
    subscribed(&server, &mut table).await;
    let mut channel = open(&server, "/v1/sse?channel=evil").await;
    subscribed(&server, &mut channel).await;
    let nasty = "a\n\ndata: x\r\nid: 9\r\n\r\nevent: evil\n: comment\rretry: 1\u{2028}\u{85}";
    let doc = json!({"id": "e1", "text": nasty, nasty: nasty});
    let at = server.insert("evil", doc.clone()).await;
    let block = table.next().await;
    let envelope = event(&server, &block);
    assert_eq!(offset(&envelope), at);
    assert_eq!(envelope["doc"], doc, "the payload arrives intact");
    assert_eq!(block.raw.matches('\n').count(), 1, "two lines: id and data");
    let answer = server.publish("evil", json!([nasty, {"k": nasty}])).await;
    let block = channel.next().await;
    assert_eq!(event(&server, &block)["data"], json!([nasty, {"k": nasty}]));
    assert_eq!(offset(&block.json()), offset(&answer));
    // On the wire: no carriage return at all, and every line is a known field
    // or a comment.
    for raw in [&table.raw, &channel.raw] {
        assert!(!raw.contains(&b'\r'));
        let text = String::from_utf8(raw.clone()).unwrap();
        for line in text.split('\n') {
            assert!(
                line.is_empty()
                    || [": ", "event: ", "id: ", "data: "]
                        .iter()
                        .any(|p| line.starts_with(p)),
                "unexpected line {line:?}"
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn bad_parameters_get_json_errors_with_precise_codes() {
    let config = RealtimeConfig {
        max_connections: 1,
        ..realtime()
    };
    let server = Server::start_with(StoreConfig::default(), config).await;
    server.insert("t", json!({"id": "a"})).await;
    let other_epoch = server.other_epoch();
    let q = |pairs: &[(&str, &str)]| format!("/v1/sse?{}", query(pairs));
    let other_token = format!("{other_epoch}:1");
    let cases: Vec<(String, u16, &str)> = vec![
        (q(&[("table", "no-dash")]), 400, "invalid_table"),
        (q(&[("table", "")]), 400, "invalid_table"),
        (q(&[("channel", "table:x")]), 400, "invalid_channel"),
        (q(&[]), 400, "invalid_parameter"),
        (
            q(&[("table", "t"), ("channel", "c")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "t"), ("filter", "not json")]),
            400,
            "invalid_filter",
        ),
        (
            q(&[("table", "t"), ("filter", r#"{"$bad":1}"#)]),
            400,
            "invalid_filter",
        ),
        (
            q(&[("table", "t"), ("where", "n >")]),
            400,
            "invalid_filter",
        ),
        (
            q(&[("table", "t"), ("params", "[1]")]),
            400,
            "invalid_filter",
        ),
        (
            q(&[("table", "t"), ("where", "n > $1"), ("params", "{}")]),
            400,
            "invalid_filter",
        ),
        (
            q(&[("table", "t"), ("snapshot", "true"), ("from", "0")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "t"), ("ops", "bogus")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "t"), ("ops", "insert,")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "t"), ("changed", "")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "t"), ("from", "yesterday")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "t"), ("from", "1"), ("since", "1")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "t"), ("since", "soon")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "t"), ("from", "99")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "t"), ("snapshot", "maybe")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "t"), ("on_lag", "never")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("channel", "c"), ("snapshot", "true")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "*"), ("snapshot", "true")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "t"), ("bogus", "1")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "t"), ("status", "open")]),
            400,
            "invalid_parameter",
        ),
        (
            q(&[("table", "t"), ("from", &other_token)]),
            410,
            "unrecoverable_position",
        ),
        ("/v1/tables/no-dash/events".to_owned(), 400, "invalid_table"),
        (
            "/v1/tables/t/events?ops=bogus".to_owned(),
            400,
            "invalid_parameter",
        ),
        (
            "/v1/tables/t/events?snapshot=maybe".to_owned(),
            400,
            "invalid_parameter",
        ),
        (
            "/v1/tables/t/events?from=yesterday".to_owned(),
            400,
            "invalid_parameter",
        ),
        (
            "/v1/tables/t/events?from=99".to_owned(),
            400,
            "invalid_parameter",
        ),
        (
            "/v1/tables/t/events?on_lag=skip".to_owned(),
            400,
            "invalid_parameter",
        ),
        (
            "/v1/tables/t/events?status=open&filter=%7B%7D".to_owned(),
            400,
            "invalid_parameter",
        ),
        (
            "/v1/tables/t/events?from=0&from=1".to_owned(),
            400,
            "invalid_parameter",
        ),
    ];
    for (path, status, code) in &cases {
        let (got, body) = match server.sse(path, &[]).await {
            Ok(_) => panic!("{path} was accepted"),
            Err(refused) => refused,
        };
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (*status, Some(*code)),
            "{path}: {body}"
        );
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // Last-Event-ID must be a token of this epoch.
    for (header, status, code) in [
        ("garbage", 400, "invalid_parameter"),
        ("42", 400, "invalid_parameter"),
        (other_token.as_str(), 410, "unrecoverable_position"),
    ] {
        let Err((got, body)) = server
            .sse("/v1/sse?table=t", &[("Last-Event-ID", header)])
            .await
        else {
            panic!("Last-Event-ID {header} was accepted");
        };
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{header}: {body}"
        );
        if code == "unrecoverable_position" {
            assert_eq!(
                body["error"]["earliest"],
                server.herald.store().earliest().0
            );
        }
    }
    // No refusal kept a connection place (the limit is 1).
    let mut sse = open(&server, "/v1/sse?table=t").await;
    subscribed(&server, &mut sse).await;
    server.stop().await;
}

#[tokio::test]
async fn heartbeats_are_comment_lines() {
    let config = RealtimeConfig {
        heartbeat: Duration::from_millis(50),
        ..realtime()
    };
    let server = Server::start_with(StoreConfig::default(), config).await;
    let mut sse = open(&server, "/v1/sse?table=t").await;
    subscribed(&server, &mut sse).await;
    let started = Instant::now();
    for _ in 0..3 {
        let block = sse.block().await;
        assert_eq!(block.raw, ": ping");
        assert_eq!(block.comments, ["ping"]);
        assert!(block.fields.is_empty());
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // Events still flow between heartbeats.
    let at = server.insert("t", json!({"id": "a"})).await;
    assert_eq!(offset(&event(&server, &sse.next().await)), at);
    server.stop().await;
}

#[tokio::test]
async fn the_connection_limit_counts_sse_streams_and_websockets() {
    let config = RealtimeConfig {
        max_connections: 2,
        ..realtime()
    };
    let server = Server::start_with(StoreConfig::default(), config).await;
    let first = open(&server, "/v1/sse?table=t").await;
    let mut ws = server.try_ws().await.unwrap();
    let Err((status, body)) = server.sse("/v1/sse?table=t", &[]).await else {
        panic!("a third session was admitted");
    };
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("too_many_connections"))
    );
    let Err((status, body)) = server.sse("/v1/tables/t/events", &[]).await else {
        panic!("a third session was admitted");
    };
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("too_many_connections"))
    );
    let Err((status, body)) = server.try_ws().await else {
        panic!("a third session was admitted");
    };
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("too_many_connections"))
    );
    ws.ping("still fine").await;

    // Closing the first stream frees its place, promptly (not at the next
    // heartbeat, 20s away).
    drop(first);
    let deadline = Instant::now() + TIMEOUT;
    let mut sse = loop {
        match server.sse("/v1/sse?table=t", &[]).await {
            Ok(sse) => break sse,
            Err((503, _)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Err(refused) => panic!("refused: {refused:?}"),
        }
    };
    subscribed(&server, &mut sse).await;
    server.stop().await;
}

#[tokio::test]
async fn shutdown_ends_sse_streams_and_run_returns_ok() {
    let server = Server::start().await;
    let mut sse = open(&server, "/v1/sse?table=t").await;
    subscribed(&server, &mut sse).await;
    let mut shorthand = open(&server, "/v1/tables/t/events").await;
    subscribed(&server, &mut shorthand).await;
    let started = Instant::now();
    let stopping = tokio::spawn(server.stop());
    sse.expect_end().await;
    shorthand.expect_end().await;
    tokio::time::timeout(TIMEOUT, stopping)
        .await
        .expect("stopped in time")
        .expect("run returned Ok");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_slow_stream_ends_with_an_error_event_whose_id_resumes_it() {
    let config = RealtimeConfig {
        outbox_bytes: 8 << 10,
        // Resume reads the log (see ws.rs for the recent-window case).
        recent_bytes: 1,
        ..realtime()
    };
    let server = Server::start_with(StoreConfig::default(), config).await;
    let epoch = server.epoch();
    let mut sse = open(&server, "/v1/sse?table=bulk").await;
    subscribed(&server, &mut sse).await;
    // One commit group of 200 KB: more than the outbox holds at once.
    let ops: Vec<Value> = (0..200)
        .map(|i| json!({"op": "insert", "table": "bulk", "doc": {"id": format!("b{i:03}"), "pad": "x".repeat(1000)}}))
        .collect();
    let answer = server
        .write(Method::POST, "/v1/batch", Some(&json!({ "ops": ops })))
        .await;
    let written: Vec<u64> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(offset)
        .collect();
    let mut got = Vec::new();
    let error = loop {
        let block = sse.next().await;
        if block.event() == Some("error") {
            break block;
        }
        got.push(offset(&event(&server, &block)));
    };
    assert!(
        got.len() < written.len(),
        "cut after {} of {}",
        got.len(),
        written.len()
    );
    assert_eq!(got, written[..got.len()]);
    let resume_from = *got.last().unwrap();
    assert_eq!(error.id().unwrap(), format!("{epoch}:{resume_from}"));
    let data = error.json();
    assert_eq!(keys(&data), ["code", "id", "message", "type"]);
    assert_eq!(
        (&data["type"], &data["id"], &data["code"]),
        (&json!("error"), &json!("sse"), &json!("slow_consumer"))
    );
    sse.expect_end().await;

    // What a browser does: reconnect with the last id.
    let token = error.id().unwrap().to_owned();
    let mut again = open_with(&server, "/v1/sse?table=bulk", &[("Last-Event-ID", &token)]).await;
    let (history, _) = subscribed(&server, &mut again).await;
    assert_eq!(offsets(&history), written[got.len()..]);
    server.stop().await;
}
