//! Delivery latency to a steady subscriber while other connections storm
//! the hub with subscribes, unsubscribes and disconnects.
//!
//! ```text
//! cargo run --release -p herald-core --example storm
//! ```
//! A probe connection subscribes to one channel; a publisher sends it a
//! message every millisecond carrying its send time (`durability = "os"`),
//! for two seconds quietly, then two seconds while storm tasks
//! (a) subscribe and unsubscribe filtered subscriptions in a loop and
//! (b) open 2,000 connections with two subscriptions each and drop them all
//! at once, repeatedly. Printed: the probe's publish→queued latency
//! percentiles in each phase, and the storm's operation rate.

use herald_core::{Herald, Hub, HubConfig, Outgoing, SubscriptionSpec, Topic};
use herald_filter::{Filter, Limits};
use herald_store::{Durability, StoreConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn spec(id: &str, channel: &str, filter: serde_json::Value) -> SubscriptionSpec {
    SubscriptionSpec {
        filter: Arc::new(Filter::from_json(&filter, &Limits::default()).expect("filter")),
        ..SubscriptionSpec::new(id, Topic::channel(channel).expect("name"))
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = StoreConfig {
        durability: Durability::Os,
        ..StoreConfig::default()
    };
    let herald = Herald::open_with(dir.path(), config).expect("open");
    let hub = Hub::start(herald.clone(), HubConfig::default());
    let epoch = Instant::now();

    let probe = hub.connect();
    probe
        .subscribe(spec("probe", "probe", serde_json::json!({})))
        .await
        .expect("subscribe");
    let latencies = Arc::new(std::sync::Mutex::new(Vec::<u64>::new()));
    {
        let (outbox, latencies) = (probe.outbox().clone(), latencies.clone());
        tokio::spawn(async move {
            let mut batch = Vec::new();
            loop {
                outbox.ready().await;
                outbox.take(&mut batch);
                let now = epoch.elapsed().as_micros() as u64;
                for item in batch.drain(..) {
                    if let Outgoing::Event { frame, .. } = item {
                        let event: serde_json::Value =
                            serde_json::from_slice(&frame).expect("json");
                        let sent = event["data"]["sent"].as_u64().expect("sent");
                        latencies.lock().expect("lock").push(now - sent);
                    }
                }
            }
        });
    }

    let publishing = Arc::new(AtomicBool::new(true));
    let publisher = {
        let (herald, publishing) = (herald.clone(), publishing.clone());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            while publishing.load(Ordering::Relaxed) {
                tick.tick().await;
                let sent = epoch.elapsed().as_micros() as u64;
                herald
                    .publish("probe", serde_json::json!({"sent": sent}))
                    .await
                    .expect("publish");
            }
        })
    };

    tokio::time::sleep(Duration::from_secs(2)).await;
    let quiet = std::mem::take(&mut *latencies.lock().expect("lock"));

    let storming = Arc::new(AtomicBool::new(true));
    let ops = Arc::new(AtomicU64::new(0));
    let mut storms = Vec::new();
    for t in 0..2 {
        let (hub, storming, ops) = (hub.clone(), storming.clone(), ops.clone());
        storms.push(tokio::spawn(async move {
            let conn = hub.connect();
            let mut n = 0u64;
            while storming.load(Ordering::Relaxed) {
                let id = format!("s{t}-{n}");
                let filter =
                    serde_json::json!({"tenant": format!("t{}", n % 100), "n": {"$gt": n}});
                conn.subscribe(spec(&id, &format!("room:{}", n % 50), filter))
                    .await
                    .expect("subscribe");
                conn.unsubscribe(&id).await.expect("unsubscribe");
                ops.fetch_add(2, Ordering::Relaxed);
                n += 1;
            }
        }));
    }
    {
        let (hub, storming, ops) = (hub.clone(), storming.clone(), ops.clone());
        storms.push(tokio::spawn(async move {
            while storming.load(Ordering::Relaxed) {
                let mut conns = Vec::with_capacity(2000);
                for i in 0..2000 {
                    let conn = hub.connect();
                    for s in 0..2 {
                        conn.subscribe(spec(
                            &format!("d{s}"),
                            &format!("room:{}", i % 50),
                            serde_json::json!({"user": i}),
                        ))
                        .await
                        .expect("subscribe");
                    }
                    conns.push(conn);
                }
                // A disconnect storm: every connection goes at once.
                drop(conns);
                ops.fetch_add(6000, Ordering::Relaxed);
            }
        }));
    }
    let storm_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stormy = std::mem::take(&mut *latencies.lock().expect("lock"));
    storming.store(false, Ordering::Relaxed);
    let storm_ops = ops.load(Ordering::Relaxed) as f64 / storm_started.elapsed().as_secs_f64();
    publishing.store(false, Ordering::Relaxed);
    for s in storms {
        s.await.expect("storm task");
    }
    publisher.await.expect("publisher");

    println!("phase        messages  p50 µs  p99 µs  max µs");
    for (name, mut l) in [("quiet", quiet), ("storm", stormy)] {
        l.sort_unstable();
        let at = |q: f64| l[((l.len() - 1) as f64 * q) as usize];
        println!(
            "{name:<10} {:>10} {:>7} {:>7} {:>7}",
            l.len(),
            at(0.5),
            at(0.99),
            l[l.len() - 1]
        );
    }
    println!("storm: {storm_ops:.0} subscribe/unsubscribe/disconnect operations per second");
    herald.close().await;
}
