//! Broadcast throughput, in process (no sockets): R rooms of M members
//! each, every broadcast sent to all R rooms at once. How many deliveries per
//! second the hub queues, and its CPU cost per delivery.
//!
//! ```text
//! cargo run --release -p herald-core --example broadcast -- 10 1000 2000
//! ```
//! Arguments: rooms (default 10), members per room (default 1000),
//! broadcasts (default 2000). Each member is its own connection that joins
//! one room through [`Rooms`]; a drain task per connection empties its
//! outbox as a transport writer would, counting broadcasts. Broadcasts of
//! ~100 bytes are sent by one task, each waiting for every shard to have
//! queued the previous one (as `POST /v1/broadcast` does).

mod support;

use herald_core::clock::SystemClock;
use herald_core::{JoinRequest, Outgoing, Rooms, Signal};
use herald_proto::Timestamp;
use herald_store::ChannelName;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let [rooms, members, broadcasts] = support::counts([10, 1000, 2000]);
    support::block_on(run(rooms, members, broadcasts));
}

async fn run(room_count: usize, members: usize, broadcasts: usize) {
    let (herald, hub, _dir) = support::hub();
    let rooms = Rooms::start(hub.clone(), Arc::new(SystemClock)).expect("rooms");
    let names: Vec<ChannelName> = (0..room_count)
        .map(|r| ChannelName::new(format!("bench:{r}")).expect("a room name"))
        .collect();
    let delivered = Arc::new(AtomicU64::new(0));
    let mut connections = Vec::with_capacity(room_count * members);
    let joining = Instant::now();
    for room in &names {
        for _ in 0..members {
            let conn = hub.connect();
            rooms
                .join(&conn, None, room.clone(), JoinRequest::default())
                .await
                .expect("join");
            support::drain(conn.outbox().clone(), delivered.clone(), |item| {
                matches!(
                    item,
                    Outgoing::Message {
                        kind: "broadcast",
                        ..
                    }
                )
            });
            connections.push(conn);
        }
    }
    let joined = joining.elapsed();
    let data = serde_json::json!({"text": "x".repeat(60), "n": 0});
    let expected = (broadcasts * room_count * members) as u64;
    let cpu_before = support::cpu_seconds();
    let started = Instant::now();
    for _ in 0..broadcasts {
        let signal = Signal::broadcast(Some(names.clone()), &data, None, Timestamp::now());
        let reach = hub.signal(signal).await;
        assert_eq!(reach.connections, (room_count * members) as u64);
    }
    let sent = started.elapsed();
    while delivered.load(Ordering::Relaxed) < expected {
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "only {} of {expected} delivered",
            delivered.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let elapsed = started.elapsed();
    let cpu = support::cpu_seconds() - cpu_before;
    println!(
        "{room_count} rooms x {members} members (joined in {joined:.2?}), {broadcasts} broadcasts \
         ({sent:.2?} to send): {expected} deliveries in {elapsed:.2?} = {:.0} deliveries/s; \
         process CPU {cpu:.2}s = {:.0} deliveries per CPU-second",
        expected as f64 / elapsed.as_secs_f64(),
        expected as f64 / cpu,
    );
    drop(connections);
    herald.close().await;
}
