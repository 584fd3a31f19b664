//! The client against a scripted fake server (see `fake/mod.rs`).

mod fake;

use fake::{EPOCH, FakeServer, event};
use futures_util::StreamExt;
use herald_client::proto::{ErrorCode, Offset};
use herald_client::{
    Backoff, Client, ClientConfig, ClientError, ConnectionState, SubscribeRequest, Subscription,
    SubscriptionItem, TokenSource,
};
use serde_json::json;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// A quiet heartbeat: no silence detection within a test's lifetime.
const SLOW_HEARTBEAT_MS: u64 = 60_000;

/// Runs a test body under a deadline, so a hang fails instead of blocking.
async fn bounded<T>(body: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), body)
        .await
        .expect("test took too long")
}

fn config() -> ClientConfig {
    ClientConfig {
        backoff: Backoff {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(50),
            factor: 2.0,
        },
        request_timeout: Duration::from_secs(3),
        connect_timeout: Duration::from_secs(3),
        ..ClientConfig::default()
    }
}

/// Connects a client to `fake`, which answers with `welcome`.
async fn connect(fake: &FakeServer, heartbeat_ms: u64) -> (Client, fake::Conn) {
    let (client, conn) = tokio::join!(
        Client::connect(&fake.url, config()),
        fake.accept(heartbeat_ms)
    );
    (client.unwrap(), conn)
}

/// Subscribes to `request`, with the fake answering `subscribed` at `offset`.
async fn subscribe(
    client: &Client,
    conn: &mut fake::Conn,
    request: SubscribeRequest,
    offset: u64,
) -> Subscription {
    let (sub, _) = tokio::join!(client.subscribe(request), conn.accept_subscription(offset));
    sub.unwrap()
}

async fn next(sub: &mut Subscription) -> SubscriptionItem {
    tokio::time::timeout(Duration::from_secs(5), sub.next())
        .await
        .expect("no item")
        .expect("stream ended")
        .expect("error item")
}

fn event_offset(item: &SubscriptionItem) -> u64 {
    match item {
        SubscriptionItem::Event(event) => event.offset.0,
        other => panic!("expected an event, got {other:?}"),
    }
}

#[tokio::test]
async fn connect_reads_welcome_and_sends_the_token() {
    bounded(async {
        let fake = FakeServer::start().await;
        let config = ClientConfig {
            token: Some(TokenSource::fixed("s3cret")),
            ..config()
        };
        let (client, conn) = tokio::join!(Client::connect(&fake.url, config), fake.accept(1500));
        let client = client.unwrap();
        assert_eq!(conn.authorization.as_deref(), Some("Bearer s3cret"));
        let info = client.server_info();
        assert_eq!(info.connection, "c1");
        assert_eq!(info.epoch.to_string(), EPOCH);
        assert_eq!(info.heartbeat, Duration::from_millis(1500));
        assert_eq!(info.max_subscriptions, 100);
        assert_eq!(client.state(), ConnectionState::Connected);
        assert_eq!(client.reconnects(), 0);
    })
    .await;
}

#[tokio::test]
async fn snapshot_and_history_come_before_live_in_order() {
    bounded(async {
        let fake = FakeServer::start().await;
        let (client, mut conn) = connect(&fake, SLOW_HEARTBEAT_MS).await;
        let request = SubscribeRequest::table("posts").snapshot();
        let pending = tokio::spawn({
            let client = client.clone();
            async move { client.subscribe(request).await }
        });
        let subscribe = conn.recv().await;
        assert_eq!(subscribe["id"], "s1");
        assert_eq!(subscribe["table"], "posts");
        assert_eq!(subscribe["snapshot"], true);
        conn.send(json!({"type": "snapshot", "id": "s1", "docs": [{"id": "a"}], "chunk": 1, "chunks": 1, "offset": 3}))
            .await;
        conn.send(event(&["s1"], 4)).await;
        conn.send(event(&["s1"], 5)).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!pending.is_finished(), "subscribe returned before `subscribed`");
        conn.send(json!({"type": "subscribed", "id": "s1", "offset": 5}))
            .await;
        conn.send(event(&["s1"], 6)).await;
        let mut sub = pending.await.unwrap().unwrap();
        assert_eq!(sub.id(), "s1");

        match next(&mut sub).await {
            SubscriptionItem::Snapshot {
                docs,
                chunk: 1,
                chunks: 1,
                offset: Offset(3),
            } => assert_eq!(docs, [json!({"id": "a"})]),
            other => panic!("{other:?}"),
        }
        assert_eq!(event_offset(&next(&mut sub).await), 4);
        assert_eq!(event_offset(&next(&mut sub).await), 5);
        assert_eq!(
            next(&mut sub).await,
            SubscriptionItem::Live { offset: Offset(5) }
        );
        assert_eq!(event_offset(&next(&mut sub).await), 6);
        assert_eq!(sub.position().unwrap().to_string(), format!("{EPOCH}:6"));
    })
    .await;
}

#[tokio::test]
async fn one_event_frame_reaches_both_subscriptions() {
    bounded(async {
        let fake = FakeServer::start().await;
        let (client, mut conn) = connect(&fake, SLOW_HEARTBEAT_MS).await;
        let mut a = subscribe(&client, &mut conn, SubscribeRequest::channel("chat"), 0).await;
        let mut b = subscribe(&client, &mut conn, SubscribeRequest::all_tables(), 0).await;
        assert_ne!(a.id(), b.id());
        conn.send(event(&[a.id(), b.id()], 10)).await;
        assert!(matches!(next(&mut a).await, SubscriptionItem::Live { .. }));
        assert!(matches!(next(&mut b).await, SubscriptionItem::Live { .. }));
        let (SubscriptionItem::Event(ea), SubscriptionItem::Event(eb)) =
            (next(&mut a).await, next(&mut b).await)
        else {
            panic!("expected events");
        };
        assert_eq!(ea.offset, Offset(10));
        assert!(Arc::ptr_eq(&ea, &eb), "one frame is parsed once");
    })
    .await;
}

#[tokio::test]
async fn reconnect_resumes_from_the_last_position_without_duplicates() {
    bounded(async {
        let fake = FakeServer::start().await;
        let (client, mut conn) = connect(&fake, SLOW_HEARTBEAT_MS).await;
        let mut sub = subscribe(&client, &mut conn, SubscribeRequest::channel("chat"), 4).await;
        conn.send(event(&["s1"], 5)).await;
        conn.send(event(&["s1"], 6)).await;
        assert_eq!(
            next(&mut sub).await,
            SubscriptionItem::Live { offset: Offset(4) }
        );
        assert_eq!(event_offset(&next(&mut sub).await), 5);
        assert_eq!(event_offset(&next(&mut sub).await), 6);

        let mut status = client.watch_status();
        drop(conn);
        let mut conn = fake.accept(SLOW_HEARTBEAT_MS).await;
        let resubscribe = conn.recv().await;
        assert_eq!(resubscribe["type"], "subscribe");
        assert_eq!(resubscribe["id"], "s1");
        assert_eq!(resubscribe["channel"], "chat");
        assert_eq!(resubscribe["from"], format!("{EPOCH}:6"));
        assert!(resubscribe.get("snapshot").is_none(), "{resubscribe}");

        // The server replays from its own idea of the position: 6 again.
        conn.send(event(&["s1"], 6)).await;
        conn.send(event(&["s1"], 7)).await;
        conn.send(json!({"type": "subscribed", "id": "s1", "offset": 7}))
            .await;
        conn.send(event(&["s1"], 8)).await;
        assert_eq!(event_offset(&next(&mut sub).await), 7);
        assert_eq!(
            next(&mut sub).await,
            SubscriptionItem::Resumed { offset: Offset(7) }
        );
        assert_eq!(event_offset(&next(&mut sub).await), 8);

        status.wait_for(|s| s.reconnects == 1).await.unwrap();
        assert_eq!(client.state(), ConnectionState::Connected);
    })
    .await;
}

#[tokio::test]
async fn unrecoverable_position_after_reconnect_ends_the_stream() {
    bounded(async {
        let fake = FakeServer::start().await;
        let (client, mut conn) = connect(&fake, SLOW_HEARTBEAT_MS).await;
        let mut sub = subscribe(&client, &mut conn, SubscribeRequest::channel("chat"), 4).await;
        conn.send(event(&["s1"], 5)).await;
        assert!(matches!(
            next(&mut sub).await,
            SubscriptionItem::Live { .. }
        ));
        assert_eq!(event_offset(&next(&mut sub).await), 5);

        conn.close(4000, r#"{"code":"slow_consumer","resume_from":5}"#)
            .await;
        let mut conn = fake.accept(SLOW_HEARTBEAT_MS).await;
        let resubscribe = conn.recv().await;
        assert_eq!(resubscribe["from"], format!("{EPOCH}:5"));
        conn.send(json!({
            "type": "error", "id": "s1", "code": "unrecoverable_position",
            "message": "offset 5 is below retention", "earliest": 10
        }))
        .await;

        let error = tokio::time::timeout(Duration::from_secs(5), sub.next())
            .await
            .unwrap()
            .expect("an error item")
            .unwrap_err();
        match error {
            ClientError::Server { code, earliest, .. } => {
                assert_eq!(code, ErrorCode::UnrecoverablePosition);
                assert_eq!(earliest, Some(Offset(10)));
            }
            other => panic!("{other:?}"),
        }
        assert!(
            sub.next().await.is_none(),
            "the stream ends after the error"
        );
    })
    .await;
}

#[tokio::test]
async fn a_refused_subscription_fails_subscribe() {
    bounded(async {
        let fake = FakeServer::start().await;
        let (client, mut conn) = connect(&fake, SLOW_HEARTBEAT_MS).await;
        let request = SubscribeRequest::table("posts").filter(json!({"$nope": 1}));
        let answer = async {
            let subscribe = conn.recv().await;
            conn.send(json!({
                "type": "error", "id": subscribe["id"], "code": "invalid_filter",
                "message": "unknown operator $nope"
            }))
            .await;
        };
        let (result, ()) = tokio::join!(client.subscribe(request), answer);
        let error = result.unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::InvalidFilter), "{error}");

        let answer = async {
            let list = conn.recv().await;
            assert_eq!(list["type"], "list_subscriptions");
            conn.send(json!({"type": "subscriptions", "ref": list["ref"], "subscriptions": []}))
                .await;
        };
        let (listed, ()) = tokio::join!(client.list_subscriptions(), answer);
        assert!(listed.unwrap().is_empty());
    })
    .await;
}

#[tokio::test]
async fn publish_answers_are_matched_by_ref() {
    bounded(async {
        let fake = FakeServer::start().await;
        let (client, mut conn) = connect(&fake, SLOW_HEARTBEAT_MS).await;
        let server = async {
            let first = conn.recv().await;
            let second = conn.recv().await;
            let third = conn.recv().await;
            assert_ne!(first["ref"], second["ref"]);
            // Answer out of order; each offset echoes the payload.
            for publish in [&third, &second] {
                conn.send(json!({
                    "type": "published", "ref": publish["ref"],
                    "offset": publish["data"], "receivers": 2
                }))
                .await;
            }
            conn.send(json!({
                "type": "error", "ref": first["ref"], "code": "invalid_channel",
                "message": "bad name"
            }))
            .await;
        };
        let (bad, a, b, ()) = tokio::join!(
            client.publish("bad name", json!(1)),
            client.publish("chat", json!(20)),
            client.publish("chat", json!(30)),
            server
        );
        assert_eq!(bad.unwrap_err().code(), Some(ErrorCode::InvalidChannel));
        assert_eq!(a.unwrap().offset, Some(Offset(20)));
        let b = b.unwrap();
        assert_eq!((b.offset, b.receivers), (Some(Offset(30)), 2));
    })
    .await;
}

#[tokio::test]
async fn publish_fails_when_the_connection_drops_and_is_not_sent_again() {
    bounded(async {
        let fake = FakeServer::start().await;
        let (client, mut conn) = connect(&fake, SLOW_HEARTBEAT_MS).await;
        let server = async {
            let publish = conn.recv().await;
            assert_eq!(publish["type"], "publish");
            drop(conn);
        };
        let (result, ()) = tokio::join!(client.publish("chat", json!("hi")), server);
        assert!(
            matches!(result, Err(ClientError::ConnectionLost)),
            "{result:?}"
        );

        let mut conn = fake.accept(SLOW_HEARTBEAT_MS).await;
        let server = async {
            let first = conn.recv().await;
            assert_eq!(first["type"], "ping", "the publish was sent again: {first}");
            conn.send(json!({"type": "pong", "ref": first["ref"]}))
                .await;
        };
        let (pong, ()) = tokio::join!(client.ping(), server);
        pong.unwrap();
        assert_eq!(client.reconnects(), 1);
    })
    .await;
}

#[tokio::test]
async fn close_sends_1000_ends_streams_and_does_not_reconnect() {
    bounded(async {
        let fake = FakeServer::start().await;
        let (client, mut conn) = connect(&fake, SLOW_HEARTBEAT_MS).await;
        let mut sub = subscribe(&client, &mut conn, SubscribeRequest::channel("chat"), 0).await;
        let server = async {
            match conn.recv_frame().await {
                Some(tokio_tungstenite::tungstenite::Message::Close(Some(frame))) => {
                    assert_eq!(u16::from(frame.code), 1000);
                }
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        tokio::join!(client.close(), server);
        assert_eq!(client.state(), ConnectionState::Closed);
        assert!(matches!(
            next(&mut sub).await,
            SubscriptionItem::Live { .. }
        ));
        assert!(sub.next().await.is_none(), "the stream ends on close");
        assert!(matches!(
            client.publish("chat", json!(1)).await,
            Err(ClientError::Closed)
        ));
        assert!(
            !fake.connects_within(Duration::from_millis(300)).await,
            "a closed client reconnected"
        );
    })
    .await;
}

#[tokio::test]
async fn a_silent_server_is_taken_for_dead() {
    bounded(async {
        let fake = FakeServer::start().await;
        // Heartbeat 100 ms: after 250 ms without a frame the client gives up.
        let (client, conn) = connect(&fake, 100).await;
        let _ = &conn; // holds the socket open without a word
        let mut reconnected = fake.accept(SLOW_HEARTBEAT_MS).await;
        let mut status = client.watch_status();
        status.wait_for(|s| s.reconnects == 1).await.unwrap();
        let server = async {
            let ping = reconnected.recv().await;
            reconnected
                .send(json!({"type": "pong", "ref": ping["ref"]}))
                .await;
        };
        let (pong, ()) = tokio::join!(client.ping(), server);
        pong.unwrap();
    })
    .await;
}

#[tokio::test]
async fn server_pings_keep_a_quiet_connection_alive() {
    bounded(async {
        let fake = FakeServer::start().await;
        let (client, mut conn) = connect(&fake, 50).await;
        let mut pongs = 0;
        for _ in 0..8 {
            conn.ping().await;
            tokio::time::sleep(Duration::from_millis(40)).await;
            // Each ping is answered before the next one is sent.
            if let Some(tokio_tungstenite::tungstenite::Message::Pong(_)) = conn.recv_frame().await
            {
                pongs += 1;
            }
        }
        assert_eq!(pongs, 8);
        assert_eq!(client.reconnects(), 0);
        assert_eq!(client.state(), ConnectionState::Connected);
    })
    .await;
}

#[tokio::test]
async fn dropping_or_unsubscribing_a_subscription_tells_the_server() {
    bounded(async {
        let fake = FakeServer::start().await;
        let (client, mut conn) = connect(&fake, SLOW_HEARTBEAT_MS).await;
        let dropped = subscribe(&client, &mut conn, SubscribeRequest::channel("a"), 0).await;
        let kept = subscribe(&client, &mut conn, SubscribeRequest::channel("b"), 0).await;
        drop(dropped);
        assert_eq!(
            conn.recv().await,
            json!({"type": "unsubscribe", "id": "s1"})
        );
        // Events for the dropped subscription are ignored.
        conn.send(event(&["s1"], 3)).await;

        let server = async {
            let unsubscribe = conn.recv().await;
            assert_eq!(unsubscribe, json!({"type": "unsubscribe", "id": "s2"}));
            conn.send(json!({"type": "unsubscribed", "id": "s2"})).await;
        };
        let (result, ()) = tokio::join!(kept.unsubscribe(), server);
        result.unwrap();
    })
    .await;
}

#[tokio::test]
async fn requests_made_while_reconnecting_wait_for_the_new_connection() {
    bounded(async {
        let fake = FakeServer::start().await;
        let (client, conn) = connect(&fake, SLOW_HEARTBEAT_MS).await;
        let mut status = client.watch_status();
        drop(conn);
        // The fake accepts nothing yet, so the client stays in Reconnecting.
        status
            .wait_for(|s| s.state == ConnectionState::Reconnecting)
            .await
            .unwrap();
        let publish = tokio::spawn({
            let client = client.clone();
            async move { client.publish("chat", json!("queued")).await }
        });
        let subscription = tokio::spawn({
            let client = client.clone();
            async move { client.subscribe(SubscribeRequest::channel("chat")).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;

        let mut conn = fake.accept(SLOW_HEARTBEAT_MS).await;
        let mut seen = Vec::new();
        for _ in 0..2 {
            let message = conn.recv().await;
            match message["type"].as_str() {
                Some("publish") => {
                    conn.send(json!({"type": "published", "ref": message["ref"], "offset": 9, "receivers": 0}))
                        .await;
                }
                Some("subscribe") => {
                    assert!(message.get("from").is_none(), "{message}");
                    conn.send(json!({"type": "subscribed", "id": message["id"], "offset": 9}))
                        .await;
                }
                _ => panic!("unexpected {message}"),
            }
            seen.push(message["type"].as_str().unwrap().to_owned());
        }
        seen.sort();
        assert_eq!(seen, ["publish", "subscribe"]);
        assert_eq!(publish.await.unwrap().unwrap().offset, Some(Offset(9)));
        let mut sub = subscription.await.unwrap().unwrap();
        assert_eq!(next(&mut sub).await, SubscriptionItem::Live { offset: Offset(9) });
    })
    .await;
}
