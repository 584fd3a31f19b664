//! Evaluation and index matching allocate nothing (beyond `out` growth).
//! Counted, not timed: deterministic on any machine.

use std::sync::Arc;

use herald_filter::{Filter, Limits, SubIndex};
use serde_json::json;

fn order() -> serde_json::Value {
    json!({
        "id": "o-1", "tenant": "t42", "status": "pending", "amount": 150.5,
        "tags": ["rush", "gift"], "items": [{"sku": "a1", "qty": 2}, {"sku": "b7", "qty": 1}],
        "customer": {"tier": "premium", "name": "Ann"}
    })
}

#[test]
fn the_counter_counts() {
    let info = allocation_counter::measure(|| drop(std::hint::black_box(vec![1_u8; 16])));
    assert!(info.count_total > 0);
}

#[test]
fn evaluating_common_operators_does_not_allocate() {
    let limits = Limits::default();
    let filters = [
        json!({"tenant": "t42", "amount": {"$gte": 100}, "status": {"$in": ["pending", "processing"]}}),
        json!({"tags": "gift", "items.sku": "b7", "customer.tier": {"$ne": "basic"}}),
        json!({"$or": [{"deleted_at": null}, {"amount": {"$lt": 0}}], "name": {"$exists": false}}),
        json!({"customer.name": {"$regex": "^a", "$options": "i"}, "items": {"$elemMatch": {"qty": {"$gt": 1}}}}),
        json!({"tags": {"$all": ["rush", "gift"], "$size": 2}, "amount": {"$type": "number", "$mod": [10, 0]}}),
    ];
    let doc = order();
    for filter in &filters {
        let compiled = Filter::from_json(filter, &limits).unwrap();
        // Warm up: the regex engine builds its per-thread cache on first use.
        compiled.matches(&doc);
        let mut result = false;
        let info = allocation_counter::measure(|| {
            for _ in 0..100 {
                result ^= compiled.matches(std::hint::black_box(&doc));
            }
        });
        assert_eq!(info.count_total, 0, "{filter} allocated");
    }
}

#[test]
fn sub_index_matching_does_not_allocate() {
    let limits = Limits::default();
    let mut index = SubIndex::new();
    for i in 0..1000_u64 {
        let filter = match i % 5 {
            0 => json!({"tenant": format!("t{}", i % 50), "amount": {"$gt": 10}}),
            4 => json!({"tenant": format!("t{}", i % 50), "tags": "gift"}),
            1 => json!({"tags": {"$in": ["gift", format!("x{i}")]}}),
            2 => json!({"amount": {"$gte": i}}),
            _ => json!({"$or": [{"tenant": "t42"}, {"status": "x"}]}),
        };
        index.insert(i, Arc::new(Filter::from_json(&filter, &limits).unwrap()));
    }
    let doc = order();
    let mut out = Vec::with_capacity(1000);
    index.matches(&doc, &mut out);
    assert!(!out.is_empty());
    let info = allocation_counter::measure(|| {
        for _ in 0..10 {
            out.clear();
            index.matches(std::hint::black_box(&doc), &mut out);
        }
    });
    assert_eq!(info.count_total, 0);
}
