//! In-process subscriptions: live, replayed, and lagging.

use futures_util::StreamExt;
use herald_core::{Herald, SubscribeOptions, Topic};
use herald_proto::{Offset, Op};
use serde_json::json;
use std::time::Duration;

async fn next_offsets(
    stream: &mut (
             impl futures_util::Stream<
        Item = Result<std::sync::Arc<herald_proto::Event>, herald_core::StoreError>,
    > + Unpin
         ),
    n: usize,
) -> Vec<u64> {
    let mut out = Vec::new();
    while out.len() < n {
        let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .expect("event in time")
            .expect("stream open")
            .expect("no error");
        out.push(event.offset.0);
    }
    out
}

#[tokio::test]
async fn live_subscription_sees_only_its_topic_and_ops() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::open(dir.path()).unwrap();
    herald.insert("a", json!({"id": "before"})).await.unwrap();
    let mut posts =
        Box::pin(herald.subscribe(Topic::table("a").unwrap(), SubscribeOptions::default()));
    let mut deletes = Box::pin(herald.subscribe(
        Topic::AllTables,
        SubscribeOptions {
            ops: Some(vec![Op::Delete]),
            ..Default::default()
        },
    ));
    let mut chat =
        Box::pin(herald.subscribe(Topic::channel("chat").unwrap(), SubscribeOptions::default()));

    herald.insert("b", json!({"id": "x"})).await.unwrap(); // 2
    herald.insert("a", json!({"id": "y"})).await.unwrap(); // 3
    herald.publish("chat", json!("hi")).await.unwrap(); // 4
    herald.delete("b", "x", None).await.unwrap(); // 5
    herald.delete("a", "y", None).await.unwrap(); // 6

    assert_eq!(next_offsets(&mut posts, 2).await, [3, 6]);
    assert_eq!(next_offsets(&mut deletes, 2).await, [5, 6]);
    assert_eq!(next_offsets(&mut chat, 1).await, [4]);
    herald.close().await;
}

#[tokio::test]
async fn resume_from_an_offset_replays_then_goes_live_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::open(dir.path()).unwrap();
    for i in 0..2000 {
        herald.insert("t", json!({"i": i})).await.unwrap();
    }
    let mut sub = Box::pin(herald.subscribe(
        Topic::table("t").unwrap(),
        SubscribeOptions {
            from: Some(Offset(1500)),
            ..Default::default()
        },
    ));
    let writer = {
        let herald = herald.clone();
        tokio::spawn(async move {
            for i in 0..500 {
                herald.insert("t", json!({"i": i})).await.unwrap();
            }
        })
    };
    let got = next_offsets(&mut sub, 1000).await;
    assert_eq!(got, (1501..=2500).collect::<Vec<_>>());
    writer.await.unwrap();
    herald.close().await;
}

#[tokio::test]
async fn a_subscriber_that_falls_behind_the_live_feed_catches_up_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::open(dir.path()).unwrap();
    let mut sub =
        Box::pin(herald.subscribe(Topic::table("t").unwrap(), SubscribeOptions::default()));
    // Far more commit groups than the live buffer holds, while nobody reads.
    for i in 0..3000 {
        herald.insert("t", json!({"i": i})).await.unwrap();
    }
    assert_eq!(
        next_offsets(&mut sub, 3000).await,
        (1..=3000).collect::<Vec<_>>()
    );
    herald.close().await;
}

#[tokio::test]
async fn resuming_below_retention_is_an_error_naming_the_earliest_offset() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = herald_core::StoreConfig::default();
    config.retention.max_bytes = Some(1000);
    let herald = Herald::open_with(dir.path(), config).unwrap();
    for i in 0..40 {
        herald
            .insert(
                "t",
                json!({"i": i, "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}),
            )
            .await
            .unwrap();
    }
    herald.store().enforce_retention().await.unwrap();
    let mut sub = Box::pin(herald.subscribe(
        Topic::table("t").unwrap(),
        SubscribeOptions {
            from: Some(Offset::ZERO),
            ..Default::default()
        },
    ));
    match sub.next().await {
        Some(Err(herald_core::StoreError::Unrecoverable { earliest, .. })) => {
            assert_eq!(earliest, herald.store().earliest());
        }
        other => panic!("unexpected {other:?}"),
    }
    herald.close().await;
}

/// Regression: a live subscription used to wait forever after `close`.
#[tokio::test]
async fn subscriptions_deliver_what_was_committed_then_end_when_the_store_closes() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::open(dir.path()).unwrap();
    let mut sub =
        Box::pin(herald.subscribe(Topic::table("t").unwrap(), SubscribeOptions::default()));
    for i in 0..3 {
        herald.insert("t", json!({"i": i})).await.unwrap();
    }
    herald.close().await;
    let rest: Vec<_> =
        tokio::time::timeout(Duration::from_secs(10), sub.by_ref().collect::<Vec<_>>())
            .await
            .expect("the stream ends after close");
    let offsets: Vec<u64> = rest.into_iter().map(|e| e.unwrap().offset.0).collect();
    assert_eq!(offsets, [1, 2, 3]);
}
