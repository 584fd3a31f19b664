//! What the in-process examples share: the process's CPU time, and a task
//! that drains a connection's outbox as a transport writer would (without a
//! socket), counting what it takes.

use herald_core::{Outbox, Outgoing};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

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
            let n = batch.drain(..).filter(|item| count(item)).count();
            counted.fetch_add(n as u64, Ordering::Relaxed);
            if end.is_some() {
                return;
            }
        }
    });
}
