//! Signals through the hub on its own: live-only deliveries to channel
//! subscriptions and to every connection, one copy per connection, the
//! member a presence change is about left out, slow connections cut.

use herald_core::{
    Herald, Hub, HubConfig, MemberChange, Outgoing, Signal, SubscriptionSpec, Topic,
};
use herald_proto::{LeaveReason, Member, Timestamp};
use herald_store::ChannelName;
use serde_json::{Value, json};
use std::sync::Arc;

fn channel(name: &str) -> ChannelName {
    ChannelName::new(name).unwrap()
}

fn hub(outbox_bytes: usize) -> (Hub, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let herald = Herald::open(dir.path()).unwrap();
    let config = HubConfig {
        shards: 2,
        outbox_bytes,
        ..HubConfig::default()
    };
    (Hub::start(herald, config), dir)
}

/// Every message queued for `conn`'s outbox now, as JSON, skipping
/// `subscribed` announcements.
fn drain(outbox: &Arc<herald_core::Outbox>) -> Vec<Value> {
    let mut batch = Vec::new();
    outbox.take(&mut batch);
    batch
        .into_iter()
        .filter_map(|item| match item {
            Outgoing::Message {
                kind: "subscribed", ..
            } => None,
            Outgoing::Message { json, .. } => Some(serde_json::from_slice(&json).unwrap()),
            Outgoing::Event { frame, .. } => Some(serde_json::from_slice(&frame).unwrap()),
        })
        .collect()
}

async fn subscribe(conn: &herald_core::Connection, id: &str, topic: &str, filter: Option<Value>) {
    let mut spec = SubscriptionSpec::new(id, Topic::channel(topic).unwrap());
    if let Some(filter) = filter {
        spec.filter =
            Arc::new(herald_filter::Filter::from_json(&filter, &Default::default()).unwrap());
    }
    conn.subscribe(spec).await.unwrap();
}

#[tokio::test]
async fn a_signal_reaches_each_connection_once_with_every_matching_subscription() {
    let (hub, _dir) = hub(1 << 20);
    let both = hub.connect();
    let one = hub.connect();
    let none = hub.connect();
    subscribe(&both, "a", "room:a", None).await;
    subscribe(&both, "b", "room:b", None).await;
    subscribe(&both, "b-again", "room:b", None).await;
    subscribe(&one, "a", "room:a", None).await;
    subscribe(&none, "c", "room:c", None).await;
    let signal = Signal::broadcast(
        Some(vec![channel("room:a"), channel("room:b")]),
        &json!("hi"),
        None,
        Timestamp(1),
    );
    let reach = hub.signal(signal).await;
    assert_eq!((reach.connections, reach.subscriptions), (2, 4));
    let got = drain(both.outbox());
    assert_eq!(got.len(), 1, "one copy: {got:?}");
    let mut subs: Vec<&str> = got[0]["subs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    subs.sort_unstable();
    assert_eq!(subs, ["a", "b", "b-again"]);
    assert_eq!(drain(one.outbox())[0]["subs"], json!(["a"]));
    assert!(drain(none.outbox()).is_empty());

    // To everyone: connections without any subscription too.
    let idle = hub.connect();
    let reach = hub
        .signal(Signal::broadcast(None, &json!(1), None, Timestamp(2)))
        .await;
    assert_eq!(reach.connections, 4);
    for conn in [&both, &one, &none, &idle] {
        let got = drain(conn.outbox());
        assert_eq!((got.len(), &got[0]["subs"]), (1, &json!([])));
    }
}

#[tokio::test]
async fn channel_messages_honour_filters_and_presence_changes_skip_their_member() {
    let (hub, _dir) = hub(1 << 20);
    let picky = hub.connect();
    let member = hub.connect();
    subscribe(&picky, "p", "chat:x", Some(json!({"urgent": true}))).await;
    subscribe(&member, "chat:x", "chat:x", None).await;
    let message = |data: Value| Signal::message(channel("chat:x"), data, None, Timestamp(1));
    assert_eq!(
        hub.signal(message(json!({"urgent": false})))
            .await
            .subscriptions,
        1
    );
    assert_eq!(
        hub.signal(message(json!({"urgent": true})))
            .await
            .subscriptions,
        2
    );
    assert_eq!(drain(picky.outbox()).len(), 1);
    assert_eq!(drain(member.outbox()).len(), 2);

    let who = Member {
        client: member.id().to_string(),
        user: None,
        data: Value::Null,
        joined_at: Timestamp(1),
        updated_at: Timestamp(1),
    };
    let left = Signal::member(
        channel("chat:x"),
        member.id(),
        &who,
        MemberChange::Left(LeaveReason::Expired),
    );
    hub.signal_now(left);
    // Ordered behind a round trip on every shard.
    hub.signal(message(json!({"urgent": true}))).await;
    let got = drain(picky.outbox());
    assert_eq!(got[0]["type"], "member_left");
    assert_eq!(got[0]["reason"], "expired");
    let mine = drain(member.outbox());
    assert!(mine.iter().all(|m| m["type"] != "member_left"), "{mine:?}");
}

#[tokio::test]
async fn a_connection_without_room_for_a_signal_is_cut_as_a_slow_consumer() {
    let (hub, _dir) = hub(4096);
    let slow = hub.connect();
    let fast = hub.connect();
    let data = json!("x".repeat(1500));
    for _ in 0..4 {
        hub.signal(Signal::broadcast(None, &data, None, Timestamp(1)))
            .await;
        drain(fast.outbox());
    }
    let mut batch = Vec::new();
    let end = slow.outbox().take(&mut batch);
    assert!(
        matches!(end, Some(herald_core::End::SlowConsumer { .. })),
        "{end:?} after {} items",
        batch.len()
    );
    let stats = hub.stats().await;
    assert_eq!(stats.totals.slow_consumers, 1);
    assert_eq!(stats.clients, 1, "the cut connection is forgotten");
}

#[tokio::test]
async fn a_skipping_subscription_comes_back_on_live_only_traffic_alone() {
    let (hub, _dir) = hub(4096);
    let conn = hub.connect();
    let mut spec = SubscriptionSpec::new("t", Topic::channel("typing:x").unwrap());
    spec.on_lag = herald_proto::LagPolicy::Skip;
    conn.subscribe(spec).await.unwrap();
    drain(conn.outbox());
    let message = |n: usize| {
        Signal::message(
            channel("typing:x"),
            json!("x".repeat(n)),
            None,
            Timestamp(1),
        )
    };
    // Fill the outbox, overflow once, then drain: only live-only messages
    // follow, no logged event at all.
    for _ in 0..3 {
        hub.signal(message(1500)).await;
    }
    drain(conn.outbox());
    let reach = hub.signal(message(10)).await;
    assert_eq!(reach.subscriptions, 1, "delivered again");
    let got = drain(conn.outbox());
    assert_eq!(got[0]["type"], "lagged", "{got:?}");
    assert_eq!(got[1]["type"], "message");
}
