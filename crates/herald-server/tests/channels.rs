//! Channel namespaces (history, retention), live-only messages, joins
//! from a position or by the server, channel statistics and connection
//! info — end to end against a real server.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use support::Server;
use support::users::{admin_status, as_admin, config, connect, start_error, token};

const ALL: &[&str] = &["read:*", "presence:*", "publish:*"];

#[tokio::test]
async fn channels_without_history_are_live_only() {
    let server = Server::configured(
        config(json!({"namespaces": {"typing": {"history": false}}})),
        None,
    )
    .await;
    let mut ws = connect(&server, "a", ALL).await;
    ws.subscribe(json!({"id": "t", "channel": "typing:doc1", "filter": {"who": "b"}}))
        .await;
    ws.subscribe(json!({"id": "all", "channel": "typing:doc1"}))
        .await;
    let head = server.herald.store().head();

    let (status, answer) = as_admin(
        &server,
        Method::POST,
        "/v1/channels/typing:doc1/messages",
        Some(&json!({"data": {"who": "b"}})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert!(answer.get("offset").is_none(), "no offset: {answer}");
    assert_eq!(answer["receivers"], 2);
    let message = ws.expect("message").await;
    let mut subs: Vec<&str> = message["subs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    subs.sort_unstable();
    assert_eq!(subs, ["all", "t"]);
    assert_eq!(
        (&message["channel"], &message["data"]),
        (&json!("typing:doc1"), &json!({"who": "b"}))
    );
    assert_eq!(message["from"], "user:root");
    assert!(message.get("offset").is_none());
    // Filters apply to live-only messages as to logged ones.
    as_admin(
        &server,
        Method::POST,
        "/v1/channels/typing:doc1/messages",
        Some(&json!({"data": {"who": "c"}})),
    )
    .await;
    assert_eq!(ws.expect("message").await["subs"], json!(["all"]));
    // Over WebSocket: `published` without an offset.
    ws.send(json!({"type": "publish", "channel": "typing:doc1", "data": 1, "ref": "p"}))
        .await;
    let mut got = [ws.recv().await, ws.recv().await];
    got.sort_by_key(|m| m["type"].as_str().unwrap_or_default().to_owned());
    assert_eq!(got[0]["type"], "message");
    assert_eq!(
        (&got[1]["type"], got[1].get("offset")),
        (&json!("published"), None)
    );

    assert_eq!(
        server.herald.store().head(),
        head,
        "nothing was written to the log"
    );
    ws.refused(
        json!({"type": "subscribe", "id": "h", "channel": "typing:doc1", "from": 0}),
        "invalid_parameter",
    )
    .await;
    let (status, body, _) = server
        .call_as(
            &token("root", &["admin"]),
            Method::GET,
            "/v1/events?topic=typing:doc1",
            None,
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_parameter")),
        "{body}"
    );
    // Too large for a message.
    let big = json!({"data": "x".repeat(1 << 20)});
    let (status, body) = as_admin(
        &server,
        Method::POST,
        "/v1/channels/typing:doc1/messages",
        Some(&big),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (413, &json!("payload_too_large"))
    );
}

#[tokio::test]
async fn a_namespace_retention_bounds_how_far_back_clients_read() {
    let server = Server::configured(
        config(json!({"namespaces": {"short": {"retention": "1s"}}})),
        None,
    )
    .await;
    let first = server_publish(&server, "short:x", json!(1)).await;
    let long_ago = server_publish(&server, "long:x", json!(1)).await;
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let second = server_publish(&server, "short:x", json!(2)).await;

    let mut ws = connect(&server, "a", ALL).await;
    let error = ws
        .refused(
            json!({"type": "subscribe", "id": "s", "channel": "short:x", "from": first - 1}),
            "unrecoverable_position",
        )
        .await;
    let earliest = error["earliest"].as_u64().unwrap();
    assert!(earliest > first && earliest <= second, "{error}");
    let (history, _) = ws
        .subscribe(json!({"id": "s", "channel": "short:x", "from": earliest - 1}))
        .await;
    let offsets: Vec<u64> = history
        .iter()
        .map(|e| e["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [second]);
    // Another namespace keeps the log's whole history.
    let (history, _) = ws
        .subscribe(json!({"id": "l", "channel": "long:x", "from": long_ago - 1}))
        .await;
    assert_eq!(history.len(), 1);
    // Replay: "everything" starts at the namespace's floor; an older `from` is refused.
    let replay = server
        .text(Some(&token("root", &["admin"])), "/v1/events?topic=short:x")
        .await;
    assert_eq!(replay.lines().count(), 1, "{replay}");
    let (status, body, _) = server
        .call_as(
            &token("root", &["admin"]),
            Method::GET,
            &format!("/v1/events?topic=short:x&from={}", first - 1),
            None,
        )
        .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (410, &json!("unrecoverable_position")),
        "{body}"
    );
}

async fn server_publish(server: &Server, channel: &str, data: Value) -> u64 {
    let (status, answer) = as_admin(
        server,
        Method::POST,
        &format!("/v1/channels/{channel}/messages"),
        Some(&json!({"data": data})),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    answer["offset"].as_u64().unwrap()
}

#[tokio::test]
async fn joining_from_a_position_replays_what_was_missed_then_joins() {
    let server = Server::configured(config(json!({})), None).await;
    let before = server_publish(&server, "chat:r", json!("old")).await;
    let missed = server_publish(&server, "chat:r", json!("missed")).await;
    let mut ws = connect(&server, "a", ALL).await;
    ws.send(json!({"type": "join", "room": "chat:r", "from": before, "ref": "j"}))
        .await;
    let event = ws.expect("event").await;
    assert_eq!(
        (event["offset"].as_u64(), &event["subs"]),
        (Some(missed), &json!(["chat:r"]))
    );
    let joined = ws.expect("joined").await;
    assert_eq!(joined["offset"].as_u64(), Some(missed));
    let live = server_publish(&server, "chat:r", json!("live")).await;
    assert_eq!(ws.expect("event").await["offset"].as_u64(), Some(live));
}

#[tokio::test]
async fn the_server_joins_a_connection_to_a_room() {
    let server = Server::configured(
        config(json!({"namespaces": {"chat": {"join_leave": true}}})),
        None,
    )
    .await;
    let (mut ws, welcome) = {
        let mut ws = connect(&server, "ann", &["read:chat:*", "presence:chat:*"]).await;
        ws.send(json!({"type": "ping", "ref": "x"})).await;
        ws.expect("pong").await;
        let (_, info) = as_admin(&server, Method::GET, "/v1/connections", None).await;
        let id = info["connections"][0]["id"].as_str().unwrap().to_owned();
        (ws, id)
    };
    let mut watcher = connect(&server, "w", ALL).await;
    watcher.join("chat:r", Value::Null).await;
    let path = "/v1/rooms/chat:r/members";
    let (status, answer) = as_admin(
        &server,
        Method::POST,
        path,
        Some(&json!({"connection": welcome, "presence": {"via": "server"}})),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(
        (&answer["client"], &answer["members"]),
        (&json!(welcome), &json!(2))
    );
    let joined = ws.expect("joined").await;
    assert!(joined.get("ref").is_none());
    assert_eq!(joined["client"], json!(welcome));
    let announced = watcher.expect("member_joined").await;
    assert_eq!(
        (&announced["member"]["user"], &announced["member"]["data"]),
        (&json!("ann"), &json!({"via": "server"}))
    );
    // Refusals.
    for (body, status, code) in [
        (json!({"connection": welcome}), 409, "already_member"),
        (json!({"connection": "999999"}), 404, "not_found"),
        (json!({"connection": "abc"}), 404, "not_found"),
        (json!({"conn": "1"}), 400, "invalid_parameter"),
    ] {
        let (got, answer) = as_admin(&server, Method::POST, path, Some(&body)).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    let (status, _, _) = server
        .call_as(
            &token("ann", ALL),
            Method::POST,
            path,
            Some(&json!({"connection": welcome})),
        )
        .await;
    assert_eq!(status, 403, "joining others needs moderate:");
    // An SSE stream cannot be joined: it cannot show it is alive.
    let _sse = server
        .sse(
            "/v1/sse?channel=chat:x",
            &[(
                "Authorization",
                &format!("Bearer {}", token("root", &["admin"])),
            )],
        )
        .await
        .unwrap();
    let (_, info) = as_admin(&server, Method::GET, "/v1/connections", None).await;
    let sse_id = info["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["transport"] == "sse")
        .expect("the SSE stream is listed")["id"]
        .clone();
    let (status, answer) = as_admin(
        &server,
        Method::POST,
        path,
        Some(&json!({"connection": sse_id})),
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!("invalid_parameter")),
        "{answer}"
    );
}

#[tokio::test]
async fn channel_statistics_and_connection_info() {
    let server = Server::configured(config(json!({})), None).await;
    let mut ws = connect(&server, "ann", ALL).await;
    ws.join("chat:s", json!({"n": 1})).await;
    ws.subscribe(json!({"id": "sub", "channel": "chat:s"}))
        .await;
    server_publish(&server, "chat:s", json!(1)).await;
    server_publish(&server, "chat:s", json!(2)).await;
    for _ in 0..2 {
        ws.expect("event").await;
    }
    let (status, stats, _) = server
        .call_as(&token("ann", ALL), Method::GET, "/v1/channels/chat:s", None)
        .await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["namespace"], "chat");
    assert_eq!(
        (&stats["subscribers"], &stats["members"], &stats["messages"]),
        (&json!(2), &json!(1), &json!(2))
    );
    assert!(stats["last_activity"].as_u64().unwrap() > 0);
    let (status, _, _) = server
        .call_as(
            &token("x", &["read:other:*"]),
            Method::GET,
            "/v1/channels/chat:s",
            None,
        )
        .await;
    assert_eq!(status, 403);
    let (_, list) = as_admin(&server, Method::GET, "/v1/channels", None).await;
    assert!(
        list["channels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["channel"] == "chat:s"),
        "{list}"
    );

    let (_, all) = as_admin(&server, Method::GET, "/v1/connections", None).await;
    assert_eq!(all["total"], 1);
    let me = &all["connections"][0];
    assert_eq!(
        (&me["transport"], &me["user"]),
        (&json!("websocket"), &json!("user:ann"))
    );
    assert_eq!(me["rooms"], json!(["chat:s"]));
    let ids: Vec<&str> = me["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["chat:s", "sub", "user:ann"]);
    assert!(me["connected_at"].as_u64().unwrap() > 0);
    let id = me["id"].as_str().unwrap();
    let (status, one) =
        as_admin(&server, Method::GET, &format!("/v1/connections/{id}"), None).await;
    assert_eq!((status, &one["rooms"]), (200, &json!(["chat:s"])));
    assert_eq!(
        admin_status(&server, Method::GET, "/v1/connections/424242").await,
        404
    );
    let (status, body) = as_admin(&server, Method::GET, "/v1/connections?limit=0", None).await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_parameter"))
    );
    let (status, _, _) = server
        .call_as(&token("ann", ALL), Method::GET, "/v1/connections", None)
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn a_broadcast_to_everyone_reaches_sse_streams_too() {
    let server = Server::configured(config(json!({})), None).await;
    let bearer = format!("Bearer {}", token("root", &["admin"]));
    let mut sse = server
        .sse("/v1/sse?channel=chat:x", &[("Authorization", &bearer)])
        .await
        .unwrap();
    sse.expect(Some("subscribed")).await;
    let (status, body) = as_admin(
        &server,
        Method::POST,
        "/v1/broadcast",
        Some(&json!({"everyone": true, "data": "hello"})),
    )
    .await;
    assert_eq!((status, &body["receivers"]), (200, &json!(1)));
    let (_, message) = sse.expect(Some("broadcast")).await;
    assert_eq!(message["data"], "hello");
}

#[tokio::test]
async fn bad_namespaces_stop_the_server_from_starting() {
    for (namespaces, words) in [
        (json!({"a:b": {}}), "[namespaces.a:b]"),
        (json!({"chat": {"presence_ttl": "5s"}}), "presence_ttl"),
        (json!({"chat": {"retention": "0s"}}), "retention"),
    ] {
        let err = start_error(config(json!({"namespaces": namespaces})));
        assert!(err.contains(words), "{err}");
    }
    let bad: Result<herald_server::Config, _> =
        serde_json::from_value(json!({"namespaces": {"chat": {"publish": "everyone"}}}));
    assert!(bad.unwrap_err().to_string().contains("everyone"));
}

#[tokio::test]
async fn the_server_joins_only_connections_that_authenticated() {
    let server = Server::configured(config(json!({})), None).await;
    // No credentials at the upgrade: it must send `auth` first.
    let (mut pending, welcome) = server.ws_welcome().await;
    let id = welcome["connection"].as_str().unwrap().to_owned();
    let path = "/v1/rooms/chat:r/members";
    let (status, answer) = as_admin(
        &server,
        Method::POST,
        path,
        Some(&json!({"connection": id})),
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (400, &json!("invalid_parameter")),
        "{answer}"
    );
    pending
        .send(json!({"type": "auth", "token": token("ann", ALL), "ref": "a"}))
        .await;
    pending.expect("authenticated").await;
    let (status, answer) = as_admin(
        &server,
        Method::POST,
        path,
        Some(&json!({"connection": id})),
    )
    .await;
    assert_eq!(status, 201, "{answer}");
    assert_eq!(pending.expect("joined").await["room"], "chat:r");
}
