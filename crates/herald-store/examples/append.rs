//! Append load for profiling and A/B tests of the store:
//! `cargo run --release -p herald-store --example append -- [writers] [docs_per_write] [events] [fsync|os] [insert|publish]`.
//!
//! Prints events/s and the CPU time per event (user + system, from /proc) of
//! the process and of the committer thread, which stay comparable when other
//! work shares the machine; then how long opening the store again takes (it
//! reads the whole log back).

#[path = "../benches/load.rs"]
#[allow(dead_code, unreachable_pub)]
mod load;

use herald_store::{Durability, Store, StoreConfig};
use std::time::Instant;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// User + system CPU seconds in a `/proc/.../stat` file (Linux).
fn cpu_seconds_in(stat: &str) -> f64 {
    let stat = std::fs::read_to_string(stat).unwrap_or_default();
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

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    cpu_seconds_in("/proc/self/stat")
}

/// User + system CPU seconds of the store's committer thread so far: the
/// one thread every write passes through, so its time per event bounds
/// the throughput and varies less from run to run than the throughput.
fn committer_cpu_seconds() -> f64 {
    let tasks = std::fs::read_dir("/proc/self/task").into_iter().flatten();
    tasks
        .flatten()
        .map(|task| task.path())
        .filter(|task| {
            std::fs::read_to_string(task.join("comm"))
                .is_ok_and(|comm| comm.starts_with("herald-commit"))
        })
        .map(|task| cpu_seconds_in(&task.join("stat").to_string_lossy()))
        .sum()
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
    let (cpu0, committer0, start) = (cpu_seconds(), committer_cpu_seconds(), Instant::now());
    let written = runtime.block_on(load::write_load(
        &store, &docs, kind, writers, per_write, events,
    ));
    let (elapsed, cpu) = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu0);
    let committer = committer_cpu_seconds() - committer0;
    let written = written as f64;
    println!(
        "{writers} writers x {per_write} docs/write, {written} events, {:?} {:?}: {:.0} events/s, {:.1} us CPU/event, {:.2} cores busy, committer {:.2} us CPU/event",
        durability,
        kind,
        written / elapsed,
        cpu / written * 1e6,
        cpu / elapsed,
        committer / written * 1e6,
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
