//! The hub on its own (no sockets): what the transports rely on.

use herald_core::{Herald, Hub, HubConfig, Outgoing, SubscriptionSpec, Topic};
use herald_proto::Offset;
use herald_store::{Durability, StoreConfig};
use serde_json::json;

fn spec(table: &str) -> SubscriptionSpec {
    SubscriptionSpec::new("s", Topic::table(table).unwrap())
}

/// A shard that falls more than the broadcast's capacity behind the commit
/// feed reads what it missed from the log: its subscribers see no gap.
#[test]
fn a_shard_behind_the_commit_feed_catches_up_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig {
        durability: Durability::Os,
        ..StoreConfig::default()
    };
    let herald = Herald::open_with(dir.path(), config).unwrap();
    // The hub runs on a runtime that is only driven inside `block_on`: while
    // the writes below happen, its shard cannot run at all.
    let hub_runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let conn = hub_runtime.block_on(async {
        let hub = Hub::start(
            herald.clone(),
            HubConfig {
                shards: 1,
                outbox_bytes: 64 << 20,
                ..HubConfig::default()
            },
        );
        let conn = hub.connect();
        conn.subscribe(spec("t")).await.unwrap();
        conn
    });

    const WRITES: u64 = 3000;
    let writer = tokio::runtime::Runtime::new().unwrap();
    let offsets: Vec<u64> = writer.block_on(async {
        let mut offsets = Vec::new();
        for i in 0..WRITES {
            let ack = herald
                .insert("t", json!({"id": format!("d{i}")}))
                .await
                .unwrap();
            offsets.push(ack.offset.0);
        }
        offsets
    });

    let got = hub_runtime.block_on(async {
        let mut got = Vec::new();
        let mut batch = Vec::new();
        while got.len() < offsets.len() {
            tokio::time::timeout(std::time::Duration::from_secs(10), conn.outbox().ready())
                .await
                .expect("events arrive");
            conn.outbox().take(&mut batch);
            for item in batch.drain(..) {
                match item {
                    Outgoing::Event { offset, frame, .. } => {
                        assert!(frame.starts_with(br#"{"type":"event","subs":["s"],"#));
                        got.push(offset.0);
                    }
                    Outgoing::Message { kind, .. } => assert_eq!(kind, "subscribed"),
                }
            }
        }
        got
    });
    assert_eq!(got, offsets);
    let stats = hub_runtime.block_on(conn.hub().stats());
    assert_eq!(stats.routed, Offset(*offsets.last().unwrap()));
    assert_eq!(stats.subscriptions, 1);
    drop(conn);
    writer.block_on(herald.close());
}

/// Connections whose subscriptions have the same ids get the very same
/// frame (one allocation), framed once for the event.
#[tokio::test]
async fn an_event_is_framed_once_for_every_connection_with_the_same_ids() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::open(dir.path()).unwrap();
    let hub = Hub::start(
        herald.clone(),
        HubConfig {
            shards: 1,
            ..HubConfig::default()
        },
    );
    let conns: Vec<_> = (0..4).map(|_| hub.connect()).collect();
    for conn in &conns {
        conn.subscribe(spec("t")).await.unwrap();
    }
    herald.insert("t", json!({"id": "a"})).await.unwrap();
    let mut frames = Vec::new();
    for conn in &conns {
        let mut batch = Vec::new();
        while !batch
            .iter()
            .any(|item| matches!(item, Outgoing::Event { .. }))
        {
            conn.outbox().ready().await;
            conn.outbox().take(&mut batch);
        }
        for item in batch {
            if let Outgoing::Event { frame, .. } = item {
                frames.push(frame);
            }
        }
    }
    assert_eq!(frames.len(), 4);
    assert!(
        frames.iter().all(|f| f.as_ptr() == frames[0].as_ptr()),
        "one shared frame"
    );
    herald.close().await;
}

#[tokio::test]
async fn stats_count_what_was_routed_and_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::open(dir.path()).unwrap();
    let hub = Hub::start(
        herald.clone(),
        HubConfig {
            shards: 1,
            ..HubConfig::default()
        },
    );
    let conn = hub.connect();
    conn.subscribe(spec("t")).await.unwrap();
    let mut other = spec("t");
    other.id = "other".into();
    conn.subscribe(other).await.unwrap();
    herald.insert("t", json!({"id": "a"})).await.unwrap();
    herald.insert("u", json!({"id": "b"})).await.unwrap();
    let last = herald.insert("t", json!({"id": "c"})).await.unwrap().offset;
    let stats = loop {
        let stats = hub.stats().await;
        if stats.routed >= last {
            break stats;
        }
        tokio::task::yield_now().await;
    };
    assert_eq!((stats.connections, stats.subscriptions), (1, 2));
    assert_eq!(stats.totals.events, 3);
    // Two events, each for both subscriptions (in one frame each).
    assert_eq!(stats.totals.deliveries, 4);
    assert!(stats.totals.delivered_bytes > 0);
    assert!(stats.queued_bytes > 0, "nothing drained the outbox");
    assert_eq!((stats.totals.slow_consumers, stats.totals.lagged), (0, 0));
    assert_eq!(hub.totals().await, stats.totals);
    let all = hub.subscriptions().await;
    let seen: Vec<(u64, &str, u64, Offset)> = all
        .iter()
        .map(|(c, s)| (*c, s.id.as_str(), s.delivered, s.last_offset))
        .collect();
    assert_eq!(
        seen,
        [(conn.id(), "other", 2, last), (conn.id(), "s", 2, last)]
    );
    assert!(
        all.iter()
            .all(|(_, s)| s.live && !s.paused && s.created_at.0 > 0)
    );
    drop(conn);
    herald.close().await;
}
