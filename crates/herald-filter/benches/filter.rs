//! Filter evaluation and subscription-index matching. See BENCHMARKS.md.
//!
//! Run: `cargo bench -p herald-filter --bench filter`

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use herald_filter::{Filter, Limits, SubIndex};
use serde_json::{Value, json};

const TENANTS: u64 = 10_000;
/// Subscriptions sharing one (tenant, user) pair: each event matches this many.
const PER_PAIR: u64 = 10;
/// Distinct events cycled through: about 1 MiB of documents, as if each had
/// just been parsed (a hub matches an event right after decoding it).
const EVENTS: usize = 1024;

fn order(tenant: u64, user: u64) -> Value {
    json!({
        "id": "o-1", "tenant": format!("t{tenant}"), "user": format!("u{user}"),
        "status": "pending", "amount": 150.5, "tags": ["rush", "gift"],
        "customer": {"tier": "premium", "name": "Ann"}
    })
}

fn eval(c: &mut Criterion) {
    let limits = Limits::default();
    let filter = Filter::from_json(
        &json!({"tenant": "t42", "amount": {"$gte": 100}, "status": {"$in": ["pending", "processing"]}}),
        &limits,
    )
    .unwrap();
    let sql = Filter::from_sql(
        "tenant = 't42' AND amount >= 100 AND status IN ('pending', 'processing')",
        &[],
        &limits,
    )
    .unwrap();
    let doc = order(42, 7);
    assert!(filter.matches(&doc));
    let mut group = c.benchmark_group("eval");
    group.throughput(Throughput::Elements(1));
    group.bench_function("3_predicates_json", |b| {
        b.iter(|| filter.matches(black_box(&doc)))
    });
    group.bench_function("3_predicates_sql", |b| {
        b.iter(|| sql.matches(black_box(&doc)))
    });
    group.finish();
}

/// `subs` subscriptions `{tenant, user}` over `subs / PER_PAIR` pairs, tenants
/// drawn from 10k; events pick a random pair, so each matches `PER_PAIR`.
/// With `range`, each filter also has `amount > 0` (true for every event), which
/// takes it off the exact path: anchored on its rarest value, then confirmed.
fn index_of(subs: u64, range: bool) -> (SubIndex<u64>, Vec<Value>) {
    let limits = Limits::default();
    let pairs = subs / PER_PAIR;
    let mut index = SubIndex::new();
    for id in 0..subs {
        let pair = id % pairs;
        let mut filter =
            json!({"tenant": format!("t{}", pair % TENANTS), "user": format!("u{pair}")});
        if range {
            filter["amount"] = json!({"$gt": 0});
        }
        index.insert(id, Arc::new(Filter::from_json(&filter, &limits).unwrap()));
    }
    // A fixed pseudo-random sequence of events (xorshift), cycled by the bench.
    let mut x = 0x9E37_79B9_7F4A_7C15_u64;
    let events = (0..EVENTS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let pair = x % pairs;
            order(pair % TENANTS, pair)
        })
        .collect();
    (index, events)
}

fn sub_index(c: &mut Criterion) {
    let mut group = c.benchmark_group("sub_index");
    group
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Elements(1));
    for (subs, range) in [10_000_u64, 100_000, 1_000_000]
        .into_iter()
        .flat_map(|n| [(n, false), (n, true)])
    {
        let (mut index, events) = index_of(subs, range);
        let mut out = Vec::with_capacity(64);
        index.matches(&events[0], &mut out);
        assert_eq!(out.len() as u64, PER_PAIR);
        let mut i = 0;
        let name = if range { "match_anchored" } else { "match" };
        group.bench_with_input(BenchmarkId::new(name, subs), &index, |b, index| {
            b.iter(|| {
                out.clear();
                i = (i + 1) % events.len();
                index.matches(black_box(&events[i]), &mut out);
                out.len()
            });
        });
        let filter = Arc::new(
            Filter::from_json(&json!({"tenant": "t1", "user": "u1"}), &Limits::default()).unwrap(),
        );
        if range {
            continue;
        }
        group.bench_function(BenchmarkId::new("insert_remove", subs), |b| {
            b.iter(|| {
                index.insert(u64::MAX, filter.clone());
                index.remove(u64::MAX)
            });
        });
    }
    group.finish();
}

criterion_group!(benches, eval, sub_index);
criterion_main!(benches);
