//! Store benchmarks: durable appends under concurrency, and full log replay.
//!
//! Run: `cargo bench -p herald-store --bench log`. Results go in BENCHMARKS.md.

#[allow(dead_code, unreachable_pub)]
mod load;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use herald_proto::Offset;
use herald_store::{Durability, Store, StoreConfig, TableName, TopicFilter, WriteOp};
use std::time::{Duration, Instant};

// The same allocator as the `herald` binary, so the figures match the server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn appends(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (name, durability) in [("fsync", Durability::Fsync), ("os", Durability::Os)] {
        // Each writer waits for its acknowledgement before its next write
        // (closed loop): one document per write, eight per atomic batch, or
        // one channel message (an event without a document).
        for (shape, kind, per_write) in [
            ("64_writers_1KiB", load::Kind::Insert, 1u64),
            ("64_writers_batches_of_8_1KiB", load::Kind::Insert, 8),
            ("64_writers_publish_1KiB", load::Kind::Publish, 1),
        ] {
            // A fresh store for each: the engine's compactions of one
            // benchmark's documents must not run during the next.
            let dir = tempfile::tempdir().unwrap();
            let store = load::open_store(dir.path(), durability);
            let docs = load::Docs::new(1024);
            group.bench_function(format!("{shape}_{name}"), |b| {
                b.iter_custom(|iters| {
                    runtime.block_on(async {
                        let start = Instant::now();
                        let written =
                            load::write_load(&store, &docs, kind, 64, per_write, iters).await;
                        // Report time per event actually written.
                        start.elapsed().mul_f64(iters as f64 / written as f64)
                    })
                });
            });
            runtime.block_on(store.close());
        }
    }
    group.finish();
}

fn replay(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut group = c.benchmark_group("replay");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    for (events, size) in [(500_000u64, 200usize), (200_000, 1024)] {
        let dir = tempfile::tempdir().unwrap();
        let config = StoreConfig {
            durability: Durability::Os,
            ..StoreConfig::default()
        };
        let store = Store::open(dir.path(), config).unwrap();
        let table = TableName::new("bench").unwrap();
        let pads = load::paddings(size);
        runtime.block_on(async {
            for chunk in 0..events / 1000 {
                let ops = (0..1000)
                    .map(|i| {
                        WriteOp::insert(table.clone(), load::doc(chunk * 1000 + i, &pads)).unwrap()
                    })
                    .collect();
                store.write(ops).await.unwrap();
            }
        });
        group.throughput(Throughput::Elements(events));
        group.bench_function(format!("full_log_{events}_events_{size}B_docs"), |b| {
            b.iter(|| {
                let mut bytes = 0usize;
                let n = store
                    .for_each_record(Offset::ZERO, |_, _, _, json| bytes += json.len())
                    .unwrap();
                assert_eq!(n, events);
                bytes
            });
        });
        // The path replay over HTTP and subscription catch-up take: chunked
        // reads that copy each record out.
        group.bench_function(
            format!("read_log_chunks_{events}_events_{size}B_docs"),
            |b| {
                b.iter(|| {
                    let (mut after, mut n) = (Offset::ZERO, 0u64);
                    loop {
                        let chunk = store
                            .read_log(after, None, &TopicFilter::All, 1024)
                            .unwrap();
                        n += chunk.records.len() as u64;
                        after = chunk.next_after;
                        if chunk.done {
                            break;
                        }
                    }
                    assert_eq!(n, events);
                    n
                });
            },
        );
        runtime.block_on(store.close());
    }
    group.finish();
}

criterion_group!(benches, appends, replay);
criterion_main!(benches);
