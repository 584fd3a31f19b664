//! What the in-process examples share: the process's CPU time, and a task
//! that drains a connection's outbox as a transport writer would (without a
//! socket), counting what it takes.

use herald_core::{Herald, Hub, HubConfig, Outbox, Outgoing};
use herald_store::{Durability, StoreConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The command line's counts, `defaults` for those not given.
pub(crate) fn counts<const N: usize>(defaults: [usize; N]) -> [usize; N] {
    let mut args = std::env::args().skip(1);
    defaults.map(|default| args.next().map_or(default, |a| a.parse().expect("a count")))
}

/// Runs `main` on a multi-threaded runtime.
pub(crate) fn block_on(main: impl std::future::Future<Output = ()>) {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(main);
}

/// A store in a temporary directory (OS durability: the hub is what is
/// measured) and a hub over it whose outboxes hold 64 MiB.
pub(crate) fn hub() -> (Herald, Hub, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = StoreConfig {
        durability: Durability::Os,
        ..StoreConfig::default()
    };
    let herald = Herald::open_with(dir.path(), config).expect("open");
    let hub = Hub::start(
        herald.clone(),
        HubConfig {
            outbox_bytes: 64 << 20,
            ..HubConfig::default()
        },
    );
    (herald, hub, dir)
}

/// User + system CPU time of this process, from /proc.
pub(crate) fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("proc stat");
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .expect("stat")
        .split_whitespace()
        .collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

/// Empties `outbox` until it ends, adding to `counted` the items `count`
/// accepts.
pub(crate) fn drain(outbox: Arc<Outbox>, counted: Arc<AtomicU64>, count: fn(&Outgoing) -> bool) {
    tokio::spawn(async move {
        let mut batch = Vec::new();
        loop {
            outbox.ready().await;
            let end = outbox.take(&mut batch);
            let n = batch.drain(..).filter(&count).count();
            counted.fetch_add(n as u64, Ordering::Relaxed);
            if end.is_some() {
                return;
            }
        }
    });
}
