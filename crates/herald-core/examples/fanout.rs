//! Hub fan-out throughput, in process (no sockets): how many deliveries per
//! second the hub routes and queues, and its CPU cost per delivery.
//!
//! ```text
//! cargo run --release -p herald-core --example fanout -- 1000 20000 10
//! ```
//! Arguments: subscribers (default 1000), messages (default 20000), channels
//! (default 10). Each subscriber is its own connection subscribed to one
//! channel (round robin); messages of ~100 bytes are published to the
//! channels in turn, 100 per write. A drain task per connection empties its
//! outbox as a transport writer would (without a socket), counting events.

mod support;

use herald_core::{Outgoing, SubscriptionSpec, Topic};
use herald_store::{ChannelName, WriteOp};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let [subscribers, messages, channels] = support::counts([1000, 20_000, 10]);
    support::block_on(run(subscribers, messages, channels));
}

async fn run(subscribers: usize, messages: usize, channels: usize) {
    let (herald, hub, _dir) = support::hub();
    let delivered = Arc::new(AtomicU64::new(0));
    let mut connections = Vec::new();
    for i in 0..subscribers {
        let conn = hub.connect();
        let topic = Topic::channel(&format!("bench:{}", i % channels)).expect("name");
        let spec = SubscriptionSpec::new("s", topic);
        conn.subscribe(spec).await.expect("subscribe");
        support::drain(conn.outbox().clone(), delivered.clone(), |item| {
            matches!(item, Outgoing::Event { .. })
        });
        connections.push(conn);
    }
    let expected = (messages * subscribers / channels) as u64;
    let payload = serde_json::json!({"text": "x".repeat(60), "n": 0});
    let cpu_before = support::cpu_seconds();
    let started = Instant::now();
    for batch in 0..messages / 100 {
        let ops = (0..100)
            .map(|i| {
                let channel = format!("bench:{}", (batch * 100 + i) % channels);
                WriteOp::publish(
                    ChannelName::new(&channel).expect("name"),
                    payload.clone(),
                    None,
                )
            })
            .collect();
        herald.store().write(ops).await.expect("publish");
    }
    let published = started.elapsed();
    while delivered.load(Ordering::Relaxed) < expected {
        if started.elapsed() > Duration::from_secs(120) {
            panic!(
                "only {} of {expected} delivered",
                delivered.load(Ordering::Relaxed)
            );
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    let cpu = support::cpu_seconds() - cpu_before;
    println!(
        "{subscribers} subscribers, {channels} channels, {messages} messages ({published:.2?} to publish): \
         {expected} deliveries in {elapsed:.2?} = {:.0} deliveries/s; process CPU {cpu:.2}s = {:.0} deliveries per CPU-second",
        expected as f64 / elapsed.as_secs_f64(),
        expected as f64 / cpu,
    );
    drop(connections);
    herald.close().await;
}
