//! Change routing end to end: rules from the configuration and the admin
//! API republish table changes to channels named from the documents,
//! atomically with the change; rules added over the API survive restarts.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use support::users::{admin_status, as_admin, config, start_error};
use support::{Server, Ws};

/// Subscribes `ws` to channel `channel` (id = the channel name).
async fn follow(ws: &mut Ws, channel: &str) {
    ws.subscribe(json!({"id": channel, "channel": channel}))
        .await;
}

async fn write(server: &Server, method: Method, path: &str, body: Value) -> Value {
    let (status, answer) = as_admin(server, method, path, Some(&body)).await;
    assert!((200..300).contains(&status), "{path}: {status} {answer}");
    answer
}

#[tokio::test]
async fn configured_rules_republish_changes_where_the_document_says() {
    let server = Server::configured(
        config(json!({
            "routes": {"by_category": {"table": "posts", "channel": "category:{category}"}},
            "tables": {"posts": {"hidden": ["secret"]}},
        })),
        None,
    )
    .await;
    let mut tech = server
        .ws_with(&[("Authorization", &admin())])
        .await
        .unwrap();
    let mut news = server
        .ws_with(&[("Authorization", &admin())])
        .await
        .unwrap();
    follow(&mut tech, "category:tech").await;
    follow(&mut news, "category:news").await;

    let ack = write(
        &server,
        Method::POST,
        "/v1/tables/posts/docs",
        json!({"id": "p1", "category": "tech", "secret": "s", "title": "T"}),
    )
    .await;
    let event = tech.expect("event").await;
    assert_eq!(event["channel"], "category:tech");
    assert_eq!(event["from"], "route:by_category");
    assert_eq!(
        event["offset"].as_u64(),
        Some(ack["offset"].as_u64().unwrap() + 1),
        "right after its change"
    );
    assert_eq!(
        event["data"],
        json!({"op": "insert", "table": "posts", "id": "p1", "version": 1, "doc": {"id": "p1", "category": "tech", "title": "T"}}),
        "hidden fields never leave through a route"
    );

    // An update that moves the document: the old channel learns it left,
    // without seeing the new document; the new one gets the update.
    write(
        &server,
        Method::PATCH,
        "/v1/tables/posts/docs/p1",
        json!({"category": "news"}),
    )
    .await;
    let moved = tech.expect("event").await;
    assert_eq!(
        moved["data"],
        json!({"op": "moved", "table": "posts", "id": "p1", "version": 2})
    );
    let update = news.expect("event").await;
    assert_eq!(update["data"]["op"], "update");
    assert_eq!(update["data"]["doc"]["category"], "news");
    assert_eq!(update["data"]["changed"], json!(["category"]));

    // Missing or unusable fields: the write succeeds, nothing is routed.
    for doc in [
        json!({"id": "p2"}),
        json!({"id": "p3", "category": null}),
        json!({"id": "p4", "category": {"nested": true}}),
        json!({"id": "p5", "category": "two words"}),
        json!({"id": "p6", "category": ""}),
    ] {
        write(&server, Method::POST, "/v1/tables/posts/docs", doc).await;
    }
    let text = server.text(Some(&token_admin()), "/metrics").await;
    let skipped = text
        .lines()
        .find(|l| l.starts_with("herald_route_skipped_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok());
    assert!(
        skipped.is_some_and(|n| n >= 4.0),
        "skips are counted: {skipped:?}"
    );

    // Delete: routed from the old document.
    write(
        &server,
        Method::DELETE,
        "/v1/tables/posts/docs/p1",
        json!(null),
    )
    .await;
    let deleted = news.expect("event").await;
    assert_eq!(
        deleted["data"],
        json!({"op": "delete", "table": "posts", "id": "p1", "version": 3})
    );
    tech.quiet(Duration::from_millis(150)).await;
    news.quiet(Duration::from_millis(50)).await;

    // Replay of the channel has them too: they are in the log.
    let replay = server
        .text(Some(&token_admin()), "/v1/events?topic=category:news")
        .await;
    assert_eq!(replay.lines().count(), 2, "{replay}");
}

#[tokio::test]
async fn rules_added_over_the_api_are_stored_and_checked() {
    let config = config(
        json!({"routes": {"fixed": {"table": "posts", "channel": "category:{category}"}},
                               "namespaces": {"typing": {"history": false}}}),
    );
    let server = Server::configured(config.clone(), None).await;
    let rule = json!({"table": "notifications", "channel": "user:{user_id}", "ops": ["insert"]});
    let answer = write(
        &server,
        Method::PUT,
        "/v1/admin/routes/notify",
        rule.clone(),
    )
    .await;
    assert_eq!(answer["source"], "api");

    let mut ws = server
        .ws_with(&[("Authorization", &admin())])
        .await
        .unwrap();
    follow(&mut ws, "user:42").await;
    write(
        &server,
        Method::POST,
        "/v1/tables/notifications/docs",
        json!({"id": "n1", "user_id": 42, "text": "hi"}),
    )
    .await;
    let event = ws.expect("event").await;
    assert_eq!(
        (&event["channel"], &event["data"]["doc"]["text"]),
        (&json!("user:42"), &json!("hi"))
    );
    // `ops`: only inserts.
    write(
        &server,
        Method::PATCH,
        "/v1/tables/notifications/docs/n1",
        json!({"text": "edited"}),
    )
    .await;
    ws.quiet(Duration::from_millis(150)).await;

    // Refusals, each precise.
    for (name, body, status, code) in [
        ("fixed", rule.clone(), 409, "already_exists"),
        ("bad name", rule.clone(), 400, "invalid_parameter"),
        (
            "x",
            json!({"table": "t", "channel": "{ns}:x"}),
            400,
            "invalid_parameter",
        ),
        (
            "x",
            json!({"table": "t", "channel": "typing:{x}"}),
            400,
            "invalid_parameter",
        ),
        (
            "x",
            json!({"table": "bad-table", "channel": "c:{x}"}),
            400,
            "invalid_table",
        ),
        (
            "x",
            json!({"table": "t", "channel": "c:{x}", "ops": ["publish"]}),
            400,
            "invalid_parameter",
        ),
        ("x", json!({"table": "t"}), 400, "invalid_parameter"),
    ] {
        let path = format!("/v1/admin/routes/{}", name.replace(' ', "%20"));
        let (got, answer) = as_admin(&server, Method::PUT, &path, Some(&body)).await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{name} {body}: {answer}"
        );
    }
    let (status, _, _) = server
        .call_as(
            &support::users::token("u", &["read:*"]),
            Method::GET,
            "/v1/admin/routes",
            None,
        )
        .await;
    assert_eq!(status, 403);

    // After a restart the stored rule is back, and applied.
    let addr = server.addr;
    drop(ws);
    let dir = server.stop().await;
    let server = Server::configured_in(dir, config.clone(), None, Some(addr)).await;
    let (_, list) = as_admin(&server, Method::GET, "/v1/admin/routes", None).await;
    let names: Vec<(&str, &str)> = list["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].as_str().unwrap(), r["source"].as_str().unwrap()))
        .collect();
    assert_eq!(names, [("fixed", "config"), ("notify", "api")]);
    let mut ws = server
        .ws_with(&[("Authorization", &admin())])
        .await
        .unwrap();
    follow(&mut ws, "user:7").await;
    write(
        &server,
        Method::POST,
        "/v1/tables/notifications/docs",
        json!({"id": "n2", "user_id": "7"}),
    )
    .await;
    assert_eq!(ws.expect("event").await["channel"], "user:7");

    // Deleted: no longer applied, and gone after a restart.
    assert_eq!(
        admin_status(&server, Method::DELETE, "/v1/admin/routes/notify").await,
        204
    );
    assert_eq!(
        admin_status(&server, Method::DELETE, "/v1/admin/routes/notify").await,
        404
    );
    assert_eq!(
        admin_status(&server, Method::DELETE, "/v1/admin/routes/fixed").await,
        409
    );
    write(
        &server,
        Method::POST,
        "/v1/tables/notifications/docs",
        json!({"id": "n3", "user_id": "7"}),
    )
    .await;
    ws.quiet(Duration::from_millis(150)).await;
    drop(ws);
    let dir = server.stop().await;
    let server = Server::configured_in(dir, config, None, Some(addr)).await;
    let (_, list) = as_admin(&server, Method::GET, "/v1/admin/routes", None).await;
    assert_eq!(list["routes"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_bad_configured_rule_stops_the_server_from_starting() {
    let err = start_error(config(
        json!({"routes": {"r": {"table": "t", "channel": "{x}:y"}}}),
    ));
    assert!(
        err.contains("[routes.r]") && err.contains("literal"),
        "{err}"
    );
}

fn token_admin() -> String {
    support::users::token("root", &["admin"])
}

fn admin() -> String {
    format!("Bearer {}", token_admin())
}

#[tokio::test]
async fn a_stored_rule_the_configuration_no_longer_allows_is_listed_with_its_problem() {
    let open = config(json!({"tables": {"notes": {"hidden": ["owner"]}}}));
    let server = Server::configured(open.clone(), None).await;
    // A template may not name a hidden field: the channel name would show it.
    let (status, answer) = as_admin(
        &server,
        Method::PUT,
        "/v1/admin/routes/leak",
        Some(&json!({"table": "notes", "channel": "owner:{owner}"})),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("hidden"),
        "{answer}"
    );
    write(
        &server,
        Method::PUT,
        "/v1/admin/routes/notes",
        json!({"table": "notes", "channel": "notes:{topic}"}),
    )
    .await;

    // The namespace loses its history: the stored rule can no longer apply.
    let addr = server.addr;
    let dir = server.stop().await;
    let mut strict = open.clone();
    strict.namespaces = serde_json::from_value(json!({"notes": {"history": false}})).unwrap();
    let server = Server::configured_in(dir, strict, None, Some(addr)).await;
    let (_, list) = as_admin(&server, Method::GET, "/v1/admin/routes", None).await;
    let route = &list["routes"][0];
    assert_eq!(route["name"], "notes");
    assert!(
        route["problem"].as_str().unwrap().contains("history"),
        "{route}"
    );
    let mut ws = server
        .ws_with(&[("Authorization", &admin())])
        .await
        .unwrap();
    ws.subscribe(json!({"id": "n", "channel": "notes:a"})).await;
    write(
        &server,
        Method::POST,
        "/v1/tables/notes/docs",
        json!({"topic": "a"}),
    )
    .await;
    ws.quiet(Duration::from_millis(150)).await;
    // It can be deleted like any stored rule.
    assert_eq!(
        admin_status(&server, Method::DELETE, "/v1/admin/routes/notes").await,
        204
    );
    let (_, list) = as_admin(&server, Method::GET, "/v1/admin/routes", None).await;
    assert_eq!(list["routes"], json!([]));
}
