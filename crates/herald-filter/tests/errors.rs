//! Every error: its code, its place and its message.

use herald_filter::{Filter, Limits};
use serde_json::{Value, json};

fn json_err(filter: Value, limits: &Limits) -> (String, String, String) {
    let err = Filter::from_json(&filter, limits).expect_err("filter should be rejected");
    (
        err.code().to_owned(),
        err.path().to_owned(),
        err.to_string(),
    )
}

fn sql_err(sql: &str, params: &[Value], limits: &Limits) -> (String, String, String) {
    let err = Filter::from_sql(sql, params, limits).expect_err("clause should be rejected");
    (
        err.code().to_owned(),
        err.path().to_owned(),
        err.to_string(),
    )
}

#[test]
fn json_errors_name_code_and_place() {
    let d = Limits::default();
    let table: Vec<(Value, &str, &str, &str)> = vec![
        (
            json!({"$and": [{"a": 1}, {"b": 1}, {"amount": {"$foo": 1}}]}),
            "unknown_operator",
            "$and[2].amount",
            r#"unknown operator "$foo" at $and[2].amount"#,
        ),
        (
            json!({"$where": "1"}),
            "unknown_operator",
            "",
            r#"unknown operator "$where""#,
        ),
        (
            json!({"status": {"$in": "a"}}),
            "invalid_operand",
            "status",
            "$in expects an array at status",
        ),
        (
            json!({"status": {"$nin": 1}}),
            "invalid_operand",
            "status",
            "$nin expects an array at status",
        ),
        (
            json!([1]),
            "invalid_operand",
            "",
            "filter expects an object",
        ),
        (
            json!({"$or": []}),
            "invalid_operand",
            "$or",
            "$or expects a non-empty array of filters at $or",
        ),
        (
            json!({"$or": [1]}),
            "invalid_operand",
            "$or[0]",
            "filter expects an object at $or[0]",
        ),
        (
            json!({"a": {"$gt": 1, "b": 2}}),
            "invalid_operand",
            "a",
            "an operator object expects only $-operators (not also fields) at a",
        ),
        (
            json!({"a": {"$exists": "yes"}}),
            "invalid_operand",
            "a",
            "$exists expects a boolean at a",
        ),
        (
            json!({"a": {"$size": -1}}),
            "invalid_operand",
            "a",
            "$size expects a non-negative integer at a",
        ),
        (
            json!({"a": {"$mod": [0, 1]}}),
            "invalid_operand",
            "a",
            "$mod expects a non-zero divisor at a",
        ),
        (
            json!({"a": {"$mod": [1]}}),
            "invalid_operand",
            "a",
            "$mod expects an array of two numbers [divisor, remainder] at a",
        ),
        (
            json!({"a": {"$not": 1}}),
            "invalid_operand",
            "a",
            "$not expects an object of operators at a",
        ),
        (
            json!({"a": {"$options": "i"}}),
            "invalid_operand",
            "a",
            "$options expects a sibling $regex at a",
        ),
        (
            json!({"a": {"$regex": "x", "$options": "q"}}),
            "invalid_operand",
            "a",
            "$options expects a string of the flags i, m, s, x at a",
        ),
        (
            json!({"a": {"$type": "date"}}),
            "invalid_operand",
            "a",
            "$type expects a type name (double, string, object, array, bool, null, int, long, decimal, number) or a list of them at a",
        ),
        (
            json!({"a": {"$elemMatch": 1}}),
            "invalid_operand",
            "a",
            "$elemMatch expects an object at a",
        ),
        (
            json!({"a": {"$elemMatch": {"b": {"$bad": 1}}}}),
            "unknown_operator",
            "a.$elemMatch.b",
            r#"unknown operator "$bad" at a.$elemMatch.b"#,
        ),
        (
            json!({"a..b": 1}),
            "invalid_path",
            "a..b",
            r#"invalid field path "a..b" at a..b"#,
        ),
        (
            json!({"a": {"$regex": "(a)\\1"}}),
            "invalid_regex",
            "a",
            "invalid regex: backreferences are not supported at a",
        ),
        (json!({"a": {"$regex": "(?=a)"}}), "invalid_regex", "a", ""),
    ];
    for (filter, code, path, message) in table {
        let (c, p, m) = json_err(filter.clone(), &d);
        assert_eq!((c.as_str(), p.as_str()), (code, path), "{filter}: {m}");
        if !message.is_empty() {
            assert_eq!(m, message, "{filter}");
        }
    }
}

#[test]
fn limits_each_have_their_error() {
    let small = Limits {
        max_depth: 3,
        max_nodes: 4,
        max_in_list: 2,
        max_regex_len: 8,
        max_regex_compiled: 1000,
        max_string_len: 5,
    };
    let deep = json!({"$and": [{"$or": [{"$and": [{"a": 1}]}]}]});
    assert_eq!(json_err(deep, &small).0, "too_deep");
    let deep_literal = json!({"a": [[[[1]]]]});
    assert_eq!(json_err(deep_literal, &small).0, "too_deep");
    let many = json!({"a": 1, "b": 1, "c": 1, "d": 1, "e": 1});
    assert_eq!(
        json_err(many, &small),
        (
            "too_many_nodes".into(),
            "e".into(),
            "filter has more than 4 nodes at e".into()
        )
    );
    let long_in = json!({"s": {"$in": [1, 2, 3]}});
    assert_eq!(
        json_err(long_in, &small).2,
        "list has 3 values, more than the limit of 2 at s"
    );
    assert_eq!(
        json_err(json!({"s": {"$regex": "abcdefghij"}}), &small).0,
        "regex_too_large"
    );
    assert_eq!(
        json_err(json!({"s": {"$regex": "\\w{50}"}}), &small).0,
        "regex_too_large"
    );
    assert_eq!(
        json_err(json!({"s": "abcdef"}), &small).2,
        "string of 6 bytes is longer than the limit of 5 at s"
    );
    assert_eq!(json_err(json!({"abcdef": 1}), &small).0, "string_too_long");

    assert_eq!(sql_err("s IN (1, 2, 3)", &[], &small).0, "in_list_too_long");
    assert_eq!(
        sql_err("s LIKE 'abcdefghij'", &[], &small).0,
        "regex_too_large"
    );
    let nested = "((((((((((a = 1))))))))))";
    assert_eq!(sql_err(nested, &[], &small).0, "too_deep");
}

#[test]
fn sql_errors_name_the_column() {
    let d = Limits::default();
    let (code, path, msg) = sql_err("amount >=", &[], &d);
    assert_eq!((code.as_str(), path.as_str()), ("sql_syntax", ""));
    assert_eq!(msg, "SQL syntax error: Expected: an expression, found: EOF");
    assert_eq!(
        sql_err("a = 1 b", &[], &d).2,
        "SQL syntax error: unexpected b at Line: 1, Column: 7"
    );
    assert_eq!(
        sql_err("amount = lower(x)", &[], &d).2,
        "unsupported SQL: lower(x) where a value was expected at amount"
    );
    let (code, path, msg) = sql_err("tenant = $2", &[json!(1)], &d);
    assert_eq!(
        (code.as_str(), path.as_str(), msg.as_str()),
        (
            "sql_parameter",
            "tenant",
            "no value for parameter $2 at tenant"
        )
    );
    let (code, path, _) = sql_err("amount = lower(x)", &[], &d);
    assert_eq!(
        (code.as_str(), path.as_str()),
        ("sql_unsupported", "amount")
    );
    let (code, path, msg) = sql_err("a.b + 1 = 2", &[], &d);
    assert_eq!((code.as_str(), path.as_str()), ("sql_unsupported", ""));
    assert_eq!(msg, "unsupported SQL: a.b + 1 where a column was expected");
}

#[test]
fn sql_parameters_are_values_never_operators() {
    let f = Filter::from_sql("status = $1", &[json!({"$gt": 1})], &Limits::default()).unwrap();
    assert!(!f.matches(&json!({"status": 5})));
    assert!(f.matches(&json!({"status": {"$gt": 1}})));
}
