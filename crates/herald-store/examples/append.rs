//! Append load for profiling and A/B tests of the store:
//! `cargo run --release -p herald-store --example append -- [writers] [docs_per_write] [events] [fsync|os] [insert|publish]`.
//!
//! Prints events/s and the process's CPU time per event (user + system, from
//! /proc), which stays comparable when other work shares the machine; then
//! how long opening the store again takes (it reads the whole log back).

#[path = "../benches/load.rs"]
#[allow(dead_code, unreachable_pub)]
mod load;

use herald_store::{Durability, Store, StoreConfig};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// User + system CPU seconds of this process so far (Linux).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit(')')
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    let ticks: f64 = fields.get(11..13).map_or(0.0, |f| {
        f.iter().filter_map(|v| v.parse::<f64>().ok()).sum()
    });
    ticks / 100.0
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |i: usize, default: u64| args.get(i).and_then(|a| a.parse().ok()).unwrap_or(default);
    let (writers, per_write, events) = (arg(1, 64), arg(2, 1), arg(3, 200_000));
    let durability = match args.get(4).map(String::as_str) {
        Some("os") => Durability::Os,
        _ => Durability::Fsync,
    };
    let kind = match args.get(5).map(String::as_str) {
        Some("publish") => load::Kind::Publish,
        _ => load::Kind::Insert,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = load::open_store(dir.path(), durability);
    let docs = load::Docs::new(1024);
    let (cpu0, start) = (cpu_seconds(), Instant::now());
    let written = runtime.block_on(load::write_load(
        &store, &docs, kind, writers, per_write, events,
    ));
    let (elapsed, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let written = written as f64;
    println!(
        "{writers} writers x {per_write} docs/write, {written} events, {:?} {:?}: {:.0} events/s, {:.1} us CPU/event, {:.2} cores busy",
        durability,
        kind,
        written / elapsed,
        cpu / written * 1e6,
        cpu / elapsed
    );
    runtime.block_on(store.close());
    drop(store);
    // Opening reads every log segment back (checksums, index).
    let started = Instant::now();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let log_mib = store.stats().log_bytes as f64 / (1 << 20) as f64;
    println!(
        "reopened in {:.0} ms ({log_mib:.0} MiB of log)",
        started.elapsed().as_secs_f64() * 1e3
    );
    runtime.block_on(store.close());
}
