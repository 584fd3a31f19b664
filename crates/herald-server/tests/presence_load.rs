//! Presence under churn: 1,000 connections join one room, then 900 drop
//! abruptly (no leave, no close frame) and 100 go silent (connected, but
//! never heard from again). An observer must see each join and each leave
//! exactly once, and once the presence TTL has passed the room must hold
//! no ghost and no duplicate.

mod support;

use futures_util::future::join_all;
use herald_core::clock::ManualClock;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use support::{Server, Ws};

const CROWD: usize = 1000;
const SILENT: usize = 100;
const ROOM: &str = "chat:crowd";

/// Every member of the room, page after page (1,000 a page).
async fn members(server: &Server) -> Vec<String> {
    let mut all = Vec::new();
    let mut after = String::new();
    loop {
        // No credentials configured, on loopback: anonymous callers are admins.
        let path = format!("/v1/rooms/{ROOM}/members?after={after}");
        let (status, body) = server.call(Method::GET, &path, None).await;
        assert_eq!(status, 200, "{body}");
        let page = body["members"].as_array().unwrap();
        assert!(page.len() <= 1000);
        all.extend(
            page.iter()
                .map(|m| m["client"].as_str().unwrap().to_owned()),
        );
        match body["next"].as_str() {
            Some(next) => after = next.to_owned(),
            None => return all,
        }
    }
}

/// Reads `n` presence changes of `kind` on `ws`, each about a new client.
async fn collect(ws: &mut Ws, kind: &str, n: usize, seen: &mut HashSet<String>) -> Vec<Value> {
    let mut got = Vec::with_capacity(n);
    while got.len() < n {
        let m = ws.recv().await;
        match m["type"].as_str() {
            Some(k) if k == kind => {
                let client = m["member"]["client"].as_str().unwrap().to_owned();
                assert!(
                    seen.insert(client.clone()),
                    "{kind} twice for client {client}"
                );
                got.push(m);
            }
            Some("pong") => {}
            _ => panic!("unexpected while collecting {kind}: {m}"),
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_members_join_and_drop_without_ghosts_or_duplicates() {
    let clock = ManualClock::starting_at(1_000_000);
    let mut config: herald_server::Config = serde_json::from_value(json!({
        "namespaces": {"chat": {"join_leave": true, "presence_ttl": "60s"}},
        "realtime": {"max_connections": 5000},
    }))
    .unwrap();
    config.limits.exempt_loopback = true;
    let server = Server::configured(config, Some(clock.clone())).await;

    let mut observer = server.ws().await;
    observer.join(ROOM, json!({"role": "observer"})).await;

    // 1,000 clients join, 50 at a time.
    let mut crowd: Vec<Ws> = Vec::with_capacity(CROWD);
    for batch in 0..CROWD / 50 {
        let joined = join_all((0..50).map(|i| {
            let server = &server;
            async move {
                let mut ws = server.ws().await;
                ws.join(ROOM, json!({"n": batch * 50 + i})).await;
                ws
            }
        }))
        .await;
        crowd.extend(joined);
    }
    let mut joined = HashSet::new();
    collect(&mut observer, "member_joined", CROWD, &mut joined).await;
    let listed = members(&server).await;
    assert_eq!(listed.len(), CROWD + 1);
    assert_eq!(
        listed.iter().collect::<HashSet<_>>().len(),
        CROWD + 1,
        "no duplicate"
    );

    // 900 drop abruptly; 100 stay connected but silent.
    let silent: Vec<Ws> = crowd.split_off(CROWD - SILENT);
    drop(crowd);
    let mut left = HashSet::new();
    let dropped = collect(&mut observer, "member_left", CROWD - SILENT, &mut left).await;
    assert!(dropped.iter().all(|m| m["reason"] == "disconnected"));
    assert_eq!(members(&server).await.len(), SILENT + 1);

    // Half a TTL later the observer is heard from; the silent ones are not.
    clock.advance(Duration::from_secs(30));
    observer.ping("alive").await;
    server.rooms.sweep();
    clock.advance(Duration::from_secs(31));
    server.rooms.sweep();
    let expired = collect(&mut observer, "member_left", SILENT, &mut left).await;
    assert!(expired.iter().all(|m| m["reason"] == "expired"));
    assert_eq!(left, joined, "every member that joined left, once");

    let remaining = members(&server).await;
    assert_eq!(remaining.len(), 1, "only the observer: {remaining:?}");
    assert!(!joined.contains(&remaining[0]));
    observer.quiet(Duration::from_millis(200)).await;
    drop(silent);
}
