//! Property tests: the index against a naive scan, SQL against JSON, and no
//! input that panics.

use std::sync::Arc;

use herald_filter::{Filter, Limits, SubIndex};
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Fields the generators share, so filters and documents meet often.
const FIELDS: &[&str] = &["a", "b", "tags", "items.sku"];

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        (0_i64..4).prop_map(Value::from),
        prop::sample::select(vec![1.0_f64, 1.5, 2.0, -0.0]).prop_map(Value::from),
        prop::sample::select(vec!["x", "y", "z"]).prop_map(Value::from),
        any::<bool>().prop_map(Value::from),
        Just(Value::Null),
    ]
}

fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => scalar(),
        2 => prop::collection::vec(scalar(), 0..4).prop_map(Value::Array),
        1 => prop::collection::vec(scalar().prop_map(|v| json!({"sku": v})), 0..3).prop_map(Value::Array),
        1 => scalar().prop_map(|v| json!({"sku": v, "b": v})),
    ]
}

fn doc() -> impl Strategy<Value = Value> {
    prop::collection::vec(
        (
            prop::sample::select(vec!["a", "b", "tags", "items"]),
            field_value(),
        ),
        0..5,
    )
    .prop_map(|fields| {
        Value::Object(
            fields
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Map<_, _>>(),
        )
    })
}

/// A filter that can be written both as JSON and as SQL.
#[derive(Debug, Clone)]
enum Spec {
    Cmp(&'static str, &'static str, Value),
    In(&'static str, bool, Vec<Value>),
    And(Vec<Spec>),
    Or(Vec<Spec>),
    Not(Box<Spec>),
}

fn spec() -> impl Strategy<Value = Spec> {
    let field = prop::sample::select(FIELDS.to_vec());
    let op = prop::sample::select(vec![
        "$eq", "$eq", "$eq", "$ne", "$gt", "$gte", "$lt", "$lte",
    ]);
    let leaf = prop_oneof![
        4 => (field.clone(), op, scalar()).prop_map(|(f, o, v)| Spec::Cmp(f, o, v)),
        2 => (field, any::<bool>(), prop::collection::vec(scalar(), 0..4)).prop_map(|(f, neg, vs)| Spec::In(f, neg, vs)),
    ];
    leaf.prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            3 => prop::collection::vec(inner.clone(), 1..4).prop_map(Spec::And),
            1 => prop::collection::vec(inner.clone(), 1..3).prop_map(Spec::Or),
            1 => inner.prop_map(|s| Spec::Not(Box::new(s))),
        ]
    })
}

impl Spec {
    fn json(&self) -> Value {
        match self {
            Self::Cmp(f, op, v) => json!({ *f: { *op: v } }),
            Self::In(f, neg, vs) => json!({ *f: { if *neg { "$nin" } else { "$in" }: vs } }),
            Self::And(specs) => json!({"$and": specs.iter().map(Self::json).collect::<Vec<_>>()}),
            Self::Or(specs) => json!({"$or": specs.iter().map(Self::json).collect::<Vec<_>>()}),
            Self::Not(spec) => json!({"$nor": [spec.json()]}),
        }
    }

    fn sql(&self) -> String {
        let lit = |v: &Value| match v {
            Value::String(s) => format!("'{s}'"),
            Value::Null => "NULL".to_owned(),
            other => other.to_string(),
        };
        match self {
            Self::Cmp(f, op, v) => {
                let op = match *op {
                    "$eq" => "=",
                    "$ne" => "<>",
                    "$gt" => ">",
                    "$gte" => ">=",
                    "$lt" => "<",
                    _ => "<=",
                };
                format!("{f} {op} {}", lit(v))
            }
            // SQL has no empty IN list: spell it as its JSON meaning.
            Self::In(_, false, vs) if vs.is_empty() => "FALSE".to_owned(),
            Self::In(_, true, vs) if vs.is_empty() => "TRUE".to_owned(),
            Self::In(f, neg, vs) => format!(
                "{f} {}IN ({})",
                if *neg { "NOT " } else { "" },
                vs.iter().map(lit).collect::<Vec<_>>().join(", ")
            ),
            Self::And(specs) => format!(
                "({})",
                specs
                    .iter()
                    .map(Self::sql)
                    .collect::<Vec<_>>()
                    .join(" AND ")
            ),
            Self::Or(specs) => format!(
                "({})",
                specs.iter().map(Self::sql).collect::<Vec<_>>().join(" OR ")
            ),
            Self::Not(spec) => format!("NOT ({})", spec.sql()),
        }
    }
}

/// Seed-style equality objects (`{"a": 1, "tags": "x"}`): the exactly indexed kind.
fn equalities() -> impl Strategy<Value = Spec> {
    prop::collection::vec((prop::sample::select(FIELDS.to_vec()), scalar()), 1..4).prop_map(
        |pairs| {
            Spec::And(
                pairs
                    .into_iter()
                    .map(|(f, v)| Spec::Cmp(f, "$eq", v))
                    .collect(),
            )
        },
    )
}

/// Arbitrary JSON, operators included, for the no-panic property.
fn any_json() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "a",
        "b.c",
        "a.0",
        "",
        "$and",
        "$or",
        "$nor",
        "$not",
        "$eq",
        "$ne",
        "$gt",
        "$in",
        "$nin",
        "$all",
        "$size",
        "$exists",
        "$type",
        "$regex",
        "$options",
        "$mod",
        "$elemMatch",
        "$foo",
        "x..y",
    ]);
    let leaf = prop_oneof![
        scalar(),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z(\\\\*+?]{0,6}".prop_map(Value::from),
        prop::sample::select(vec!["i", "msx", "q", "int", "number", "array"]).prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 40, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..4).prop_map(|kv| Value::Object(
                kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
            )),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn index_equals_naive_scan(
        specs in prop::collection::vec(prop_oneof![2 => spec(), 1 => equalities()], 1..40),
        removed in prop::collection::vec(any::<bool>(), 40),
        docs in prop::collection::vec(doc(), 1..8),
    ) {
        let limits = Limits::default();
        let filters: Vec<Arc<Filter>> = specs
            .iter()
            .map(|s| Arc::new(Filter::from_json(&s.json(), &limits).unwrap()))
            .collect();
        let mut index = SubIndex::new();
        for (id, f) in filters.iter().enumerate() {
            index.insert(id, f.clone());
        }
        // Remove some, and re-insert one, to exercise slot reuse.
        for (id, _) in filters.iter().enumerate().filter(|(i, _)| removed[*i]) {
            prop_assert!(index.remove(id));
        }
        if let Some(first) = filters.first() {
            index.insert(0, first.clone());
        }
        let live: Vec<usize> = (0..filters.len()).filter(|i| *i == 0 || !removed[*i]).collect();
        prop_assert_eq!(index.len(), live.len());
        for doc in &docs {
            let mut got = Vec::new();
            index.matches(doc, &mut got);
            let n = got.len();
            got.sort_unstable();
            got.dedup();
            prop_assert_eq!(n, got.len(), "duplicate ids for {}", doc);
            let want: Vec<usize> = live.iter().copied().filter(|i| filters[*i].matches(doc)).collect();
            prop_assert_eq!(got, want, "doc {}", doc);
        }
    }

    #[test]
    fn sql_equals_json(spec in spec(), docs in prop::collection::vec(doc(), 1..8)) {
        let limits = Limits::default();
        let from_json = Filter::from_json(&spec.json(), &limits).unwrap();
        let sql = spec.sql();
        let from_sql = Filter::from_sql(&sql, &[], &limits).unwrap();
        for doc in &docs {
            prop_assert_eq!(from_json.matches(doc), from_sql.matches(doc), "{} vs {} on {}", spec.json(), sql, doc);
        }
    }

    #[test]
    fn no_filter_or_document_panics(filter in any_json(), docs in prop::collection::vec(any_json(), 1..4)) {
        let limits = Limits { max_depth: 4, max_nodes: 16, ..Limits::default() };
        if let Ok(f) = Filter::from_json(&filter, &limits) {
            let mut index = SubIndex::new();
            index.insert(1, Arc::new(f.clone()));
            for doc in &docs {
                let mut out = Vec::new();
                index.matches(doc, &mut out);
                prop_assert_eq!(out.is_empty(), !f.matches(doc));
            }
        }
    }

    #[test]
    fn no_sql_text_panics(text in "[a-z0-9 ()'=<>!$.,%_*-]{0,40}|(NOT |AND |OR |IN |LIKE |IS |NULL |a |1 |'x' |\\( |\\) )+") {
        let _ = Filter::from_sql(&text, &[json!(1)], &Limits::default());
    }

    #[test]
    fn depth_limit_holds(depth in 1_usize..50) {
        let mut filter = json!({"a": 1});
        for _ in 0..depth {
            filter = json!({"$and": [filter]});
        }
        let limits = Limits { max_depth: 20, ..Limits::default() };
        let result = Filter::from_json(&filter, &limits);
        prop_assert_eq!(result.is_ok(), depth < 20, "{:?}", result.err());
    }

    #[test]
    fn node_and_list_limits_hold(fields in 1_usize..60, list in 0_usize..60) {
        let limits = Limits { max_nodes: 30, max_in_list: 30, ..Limits::default() };
        let wide: Map<String, Value> = (0..fields).map(|i| (format!("f{i}"), json!(i))).collect();
        let result = Filter::from_json(&Value::Object(wide), &limits);
        prop_assert_eq!(result.is_ok(), fields <= 30);
        let values: Vec<Value> = (0..list).map(Value::from).collect();
        let result = Filter::from_json(&json!({"a": {"$in": values}}), &limits);
        prop_assert_eq!(result.map_err(|e| e.code()).err(), (list > 30).then_some("in_list_too_long"));
    }
}
