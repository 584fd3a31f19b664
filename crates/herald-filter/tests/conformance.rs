//! Table-driven conformance: every operator and the array / null / type rules,
//! in the JSON form and (where SQL can say it) the SQL form.

use herald_filter::{Filter, Limits};
use serde_json::{Value, json};

/// One filter, its SQL spelling if it has one, and documents with the expected answer.
struct Case {
    json: Value,
    sql: Option<&'static str>,
    docs: Vec<(Value, bool)>,
}

fn case(json: Value, sql: Option<&'static str>, docs: Vec<(Value, bool)>) -> Case {
    Case { json, sql, docs }
}

fn cases() -> Vec<Case> {
    vec![
        // Implicit equality, seed-style shorthand and implicit AND.
        case(
            json!({"status": "published", "category": "technology"}),
            Some("status = 'published' AND category = 'technology'"),
            vec![
                (
                    json!({"status": "published", "category": "technology"}),
                    true,
                ),
                (json!({"status": "published", "category": "sports"}), false),
                (json!({"status": "published"}), false),
            ],
        ),
        case(
            json!({}),
            Some("TRUE"),
            vec![(json!({}), true), (json!({"a": 1}), true)],
        ),
        // $eq / $ne with numbers compared by value.
        case(
            json!({"n": {"$eq": 1}}),
            Some("n = 1"),
            vec![
                (json!({"n": 1}), true),
                (json!({"n": 1.0}), true),
                (json!({"n": "1"}), false),
                (json!({}), false),
            ],
        ),
        case(
            json!({"n": {"$ne": 1}}),
            Some("n <> 1"),
            vec![
                (json!({"n": 1.0}), false),
                (json!({"n": 2}), true),
                (json!({}), true),
                (json!({"n": [1, 2]}), false),
            ],
        ),
        // Ranges and type bracketing.
        case(
            json!({"n": {"$gt": 5}}),
            Some("n > 5"),
            vec![
                (json!({"n": 6}), true),
                (json!({"n": 5.5}), true),
                (json!({"n": 5}), false),
                (json!({"n": "9"}), false),
                (json!({"n": [1, 9]}), true),
                (json!({}), false),
            ],
        ),
        case(
            json!({"n": {"$gte": 5, "$lt": 10}}),
            Some("n BETWEEN 5 AND 9.5"),
            vec![
                (json!({"n": 5}), true),
                (json!({"n": 9.5}), true),
                (json!({"n": 10}), false),
                (json!({"n": 4}), false),
            ],
        ),
        case(
            json!({"n": {"$lte": -1}}),
            Some("-1 >= n"),
            vec![
                (json!({"n": -1.0}), true),
                (json!({"n": 0}), false),
                (json!({"n": null}), false),
            ],
        ),
        case(
            json!({"s": {"$lt": "b"}}),
            Some("s < 'b'"),
            vec![
                (json!({"s": "a"}), true),
                (json!({"s": "b"}), false),
                (json!({"s": 1}), false),
                (json!({"s": true}), false),
            ],
        ),
        // $in / $nin, with null meaning missing.
        case(
            json!({"status": {"$in": ["pending", "processing"]}}),
            Some("status IN ('pending', 'processing')"),
            vec![
                (json!({"status": "pending"}), true),
                (json!({"status": "done"}), false),
                (json!({"status": ["done", "processing"]}), true),
                (json!({}), false),
            ],
        ),
        case(
            json!({"n": {"$in": [1, null]}}),
            Some("n IN (1.0, NULL)"),
            vec![
                (json!({"n": 1}), true),
                (json!({}), true),
                (json!({"n": null}), true),
                (json!({"n": 2}), false),
            ],
        ),
        case(
            json!({"status": {"$nin": ["a", "b"]}}),
            Some("status NOT IN ('a', 'b')"),
            vec![
                (json!({"status": "c"}), true),
                (json!({"status": "a"}), false),
                (json!({}), true),
                (json!({"status": ["c", "b"]}), false),
            ],
        ),
        // Logical operators.
        case(
            json!({"$or": [{"priority": "high"}, {"customer_tier": "premium"}]}),
            Some("priority = 'high' OR customer_tier = 'premium'"),
            vec![
                (json!({"priority": "high"}), true),
                (json!({"customer_tier": "premium"}), true),
                (json!({"priority": "low", "customer_tier": "basic"}), false),
            ],
        ),
        case(
            json!({"$and": [{"a": 1}, {"$or": [{"b": 1}, {"c": 1}]}]}),
            Some("a = 1 AND (b = 1 OR c = 1)"),
            vec![
                (json!({"a": 1, "c": 1}), true),
                (json!({"a": 1}), false),
                (json!({"b": 1, "c": 1}), false),
            ],
        ),
        case(
            json!({"$nor": [{"a": 1}, {"b": 1}]}),
            Some("NOT (a = 1 OR b = 1)"),
            vec![
                (json!({"a": 2, "b": 2}), true),
                (json!({"a": 1}), false),
                (json!({}), true),
            ],
        ),
        case(
            json!({"n": {"$not": {"$gt": 5}}}),
            Some("NOT n > 5"),
            vec![
                (json!({"n": 5}), true),
                (json!({"n": 6}), false),
                (json!({}), true),
                (json!({"n": "x"}), true),
            ],
        ),
        // Null and missing.
        case(
            json!({"deleted_at": null}),
            Some("deleted_at IS NULL"),
            vec![
                (json!({}), true),
                (json!({"deleted_at": null}), true),
                (json!({"deleted_at": "2024"}), false),
                (json!({"deleted_at": [null, 1]}), true),
            ],
        ),
        case(
            json!({"deleted_at": {"$ne": null}}),
            Some("deleted_at IS NOT NULL"),
            vec![
                (json!({}), false),
                (json!({"deleted_at": null}), false),
                (json!({"deleted_at": 0}), true),
            ],
        ),
        case(
            json!({"a.b": null}),
            Some("a.b = NULL"),
            vec![
                (json!({"a": {"b": null}}), true),
                (json!({"a": {}}), true),
                (json!({"a": [{"b": 1}, {"c": 1}]}), true),
                (json!({"a": [{"b": 1}]}), false),
                (json!({"a": []}), true),
            ],
        ),
        case(
            json!({"n": {"$gte": null}}),
            None,
            vec![
                (json!({}), true),
                (json!({"n": null}), true),
                (json!({"n": 0}), false),
            ],
        ),
        case(
            json!({"n": {"$gt": null}}),
            None,
            vec![(json!({}), false), (json!({"n": null}), false)],
        ),
        // $exists and $type.
        case(
            json!({"a": {"$exists": true}}),
            None,
            vec![
                (json!({"a": null}), true),
                (json!({"a": 0}), true),
                (json!({}), false),
            ],
        ),
        case(
            json!({"a.b": {"$exists": false}}),
            None,
            vec![(json!({"a": {"b": 1}}), false), (json!({"a": 1}), true)],
        ),
        case(
            json!({"v": {"$type": "string"}}),
            None,
            vec![
                (json!({"v": "x"}), true),
                (json!({"v": 1}), false),
                (json!({"v": [1, "x"]}), true),
                (json!({}), false),
            ],
        ),
        case(
            json!({"v": {"$type": ["int", "null"]}}),
            None,
            vec![
                (json!({"v": 3}), true),
                (json!({"v": null}), true),
                (json!({"v": 3.5}), false),
                (json!({"v": 1e12 as i64}), false),
            ],
        ),
        case(
            json!({"v": {"$type": "number"}}),
            None,
            vec![
                (json!({"v": 3}), true),
                (json!({"v": 3.5}), true),
                (json!({"v": "3"}), false),
            ],
        ),
        case(
            json!({"v": {"$type": "array"}}),
            None,
            vec![(json!({"v": []}), true), (json!({"v": {}}), false)],
        ),
        case(
            json!({"v": {"$type": 3}}),
            None,
            vec![(json!({"v": {}}), true), (json!({"v": true}), false)],
        ),
        // $regex with options, and LIKE.
        case(
            json!({"name": {"$regex": "^a"}}),
            Some("name LIKE 'a%'"),
            vec![
                (json!({"name": "alice"}), true),
                (json!({"name": "bob"}), false),
                (json!({"name": ["bob", "ann"]}), true),
                (json!({"name": 1}), false),
            ],
        ),
        case(
            json!({"name": {"$regex": "^A.C$", "$options": "i"}}),
            Some("name ILIKE 'a_c'"),
            vec![
                (json!({"name": "abc"}), true),
                (json!({"name": "ABC"}), true),
                (json!({"name": "abbc"}), false),
            ],
        ),
        case(
            json!({"t": {"$regex": "^b$", "$options": "m"}}),
            None,
            vec![(json!({"t": "a\nb\nc"}), true)],
        ),
        case(
            json!({"t": {"$regex": "a.b", "$options": "s"}}),
            None,
            vec![(json!({"t": "a\nb"}), true)],
        ),
        case(
            json!({"t": {"$regex": "a b # comment", "$options": "x"}}),
            None,
            vec![(json!({"t": "ab"}), true)],
        ),
        case(
            json!({"name": {"$not": {"$regex": "^a"}}}),
            Some("name NOT LIKE 'a%'"),
            vec![
                (json!({"name": "bob"}), true),
                (json!({"name": "al"}), false),
                (json!({}), true),
            ],
        ),
        // $mod.
        case(
            json!({"n": {"$mod": [4, 1]}}),
            None,
            vec![
                (json!({"n": 5}), true),
                (json!({"n": 5.7}), true),
                (json!({"n": 6}), false),
                (json!({"n": -3}), false),
                (json!({"n": "5"}), false),
            ],
        ),
        // Arrays: containment, exact equality, $all, $elemMatch, $size.
        case(
            json!({"tags": "a"}),
            Some("tags = 'a'"),
            vec![
                (json!({"tags": ["b", "a"]}), true),
                (json!({"tags": ["b"]}), false),
                (json!({"tags": "a"}), true),
            ],
        ),
        case(
            json!({"tags": ["a", "b"]}),
            None,
            vec![
                (json!({"tags": ["a", "b"]}), true),
                (json!({"tags": ["b", "a"]}), false),
                (json!({"tags": [["a", "b"], "c"]}), true),
            ],
        ),
        case(
            json!({"tags": {"$all": ["a", "b"]}}),
            None,
            vec![
                (json!({"tags": ["b", "c", "a"]}), true),
                (json!({"tags": ["a"]}), false),
            ],
        ),
        case(
            json!({"tags": {"$all": []}}),
            None,
            vec![(json!({"tags": []}), false)],
        ),
        case(
            json!({"items.sku": "x"}),
            Some("items.sku = 'x'"),
            vec![
                (json!({"items": [{"sku": "y"}, {"sku": "x"}]}), true),
                (json!({"items": [{"sku": "y"}]}), false),
            ],
        ),
        case(
            json!({"items.0.sku": "x"}),
            None,
            vec![
                (json!({"items": [{"sku": "x"}, {"sku": "y"}]}), true),
                (json!({"items": [{"sku": "y"}, {"sku": "x"}]}), false),
            ],
        ),
        case(
            json!({"items": {"$elemMatch": {"sku": "x", "qty": {"$gte": 2}}}}),
            None,
            vec![
                (
                    json!({"items": [{"sku": "x", "qty": 1}, {"sku": "y", "qty": 5}]}),
                    false,
                ),
                (json!({"items": [{"sku": "x", "qty": 3}]}), true),
                (json!({"items": {"sku": "x", "qty": 3}}), false),
            ],
        ),
        case(
            json!({"scores": {"$elemMatch": {"$gte": 80, "$lt": 85}}}),
            None,
            vec![
                (json!({"scores": [70, 82]}), true),
                (json!({"scores": [70, 90]}), false),
            ],
        ),
        case(
            json!({"scores": {"$gte": 80, "$lt": 85}}),
            None,
            // Without $elemMatch each operator may be met by a different element.
            vec![
                (json!({"scores": [70, 90]}), true),
                (json!({"scores": [70, 75]}), false),
            ],
        ),
        case(
            json!({"tags": {"$size": 2}}),
            None,
            vec![
                (json!({"tags": [1, 2]}), true),
                (json!({"tags": [1]}), false),
                (json!({"tags": "ab"}), false),
            ],
        ),
        // Exact equality of objects.
        case(
            json!({"addr": {"city": "Paris", "zip": "75001"}}),
            None,
            vec![
                (json!({"addr": {"zip": "75001", "city": "Paris"}}), true),
                (json!({"addr": {"city": "Paris"}}), false),
                (
                    json!({"addr": {"city": "Paris", "zip": "75001", "x": 1}}),
                    false,
                ),
            ],
        ),
        case(
            json!({"addr": {"$eq": {}}}),
            None,
            vec![
                (json!({"addr": {}}), true),
                (json!({"addr": {"a": 1}}), false),
            ],
        ),
        // Booleans.
        case(
            json!({"active": true}),
            Some("active"),
            vec![
                (json!({"active": true}), true),
                (json!({"active": 1}), false),
                (json!({"active": false}), false),
            ],
        ),
        case(
            json!({"active": false}),
            Some("active IS FALSE"),
            vec![(json!({"active": false}), true), (json!({}), false)],
        ),
        // The example from the issue.
        case(
            json!({
                "amount": {"$gte": 100},
                "status": {"$in": ["pending", "processing"]},
                "$or": [{"priority": "high"}, {"customer_tier": "premium"}],
                "name": {"$regex": "^a", "$options": "s"},
                "deleted_at": null
            }),
            Some(
                "amount >= 100 AND status IN ('pending','processing') AND (priority = 'high' OR customer_tier = 'premium') \
                 AND name LIKE 'a%' AND deleted_at IS NULL",
            ),
            vec![
                (
                    json!({"amount": 150, "status": "pending", "priority": "high", "name": "ann"}),
                    true,
                ),
                (
                    json!({"amount": 150, "status": "pending", "customer_tier": "premium", "name": "ann", "deleted_at": null}),
                    true,
                ),
                (
                    json!({"amount": 150, "status": "pending", "priority": "high", "name": "ann", "deleted_at": 1}),
                    false,
                ),
                (
                    json!({"amount": 50, "status": "pending", "priority": "high", "name": "ann"}),
                    false,
                ),
                (
                    json!({"amount": 150, "status": "pending", "priority": "low", "name": "ann"}),
                    false,
                ),
            ],
        ),
    ]
}

#[test]
fn json_form_conforms() {
    for (i, case) in cases().into_iter().enumerate() {
        let filter = Filter::from_json(&case.json, &Limits::default())
            .unwrap_or_else(|e| panic!("case {i}: {e}"));
        for (doc, expected) in &case.docs {
            assert_eq!(
                filter.matches(doc),
                *expected,
                "case {i}: {} on {doc}",
                case.json
            );
        }
    }
}

#[test]
fn sql_form_conforms() {
    for (i, case) in cases().into_iter().enumerate() {
        let Some(sql) = case.sql else { continue };
        let filter = Filter::from_sql(sql, &[], &Limits::default())
            .unwrap_or_else(|e| panic!("case {i}: {sql}: {e}"));
        for (doc, expected) in &case.docs {
            assert_eq!(filter.matches(doc), *expected, "case {i}: {sql} on {doc}");
        }
    }
}

#[test]
fn sql_parameters_bind_by_position() {
    let filter = Filter::from_sql(
        "tenant = $1 AND amount > $2 AND status IN ($3, 'x')",
        &[json!("t1"), json!(10), json!("open")],
        &Limits::default(),
    )
    .unwrap();
    assert!(filter.matches(&json!({"tenant": "t1", "amount": 11, "status": "open"})));
    assert!(!filter.matches(&json!({"tenant": "t1", "amount": 10, "status": "open"})));
}

#[test]
fn like_escapes_and_literals() {
    let limits = Limits::default();
    let f = Filter::from_sql(r"code LIKE '10\%_' ", &[], &limits).unwrap();
    assert!(f.matches(&json!({"code": "10%x"})));
    assert!(!f.matches(&json!({"code": "100x"})));
    let f = Filter::from_sql("code LIKE 'a.c'", &[], &limits).unwrap();
    assert!(!f.matches(&json!({"code": "abc"})));
    let f = Filter::from_sql("code LIKE 'a!%' ESCAPE '!'", &[], &limits).unwrap();
    assert!(f.matches(&json!({"code": "a%"})));
}
