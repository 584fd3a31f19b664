//! The document filter accepted by queries (`GET .../docs`) and replay
//! (`GET /v1/events`): `filter=` (MongoDB-style JSON) and/or `where=` (SQL),
//! with `params=` (a JSON array) for `$1`-style placeholders. Both compile
//! once, through `herald-filter`, into one [`Filter`]; given both, a document
//! must match both. The language is in docs/filters.md.

use crate::access::{Access, ReadGrant};
use crate::error::ApiError;
use herald_filter::{Filter, Limits};
use herald_proto::ErrorCode;
use serde_json::Value;

/// A compiled document filter.
#[derive(Debug, Clone)]
pub(crate) struct DocFilter(Filter);

impl DocFilter {
    /// Compiles the `filter`, `where` and `params` query parameters.
    pub(crate) fn parse(
        filter: Option<&str>,
        where_clause: Option<&str>,
        params: Option<&str>,
        limits: &Limits,
    ) -> Result<DocFilter, ApiError> {
        let filter = filter.map(parse_filter).transpose()?;
        let params = params.map(parse_params).transpose()?.unwrap_or_default();
        DocFilter::compile(filter.as_ref(), where_clause, &params, limits)
    }

    /// Compiles a JSON filter and/or an SQL `WHERE` clause with its parameters.
    pub(crate) fn compile(
        filter: Option<&Value>,
        where_clause: Option<&str>,
        params: &[Value],
        limits: &Limits,
    ) -> Result<DocFilter, ApiError> {
        let invalid = |what: &str, e: herald_filter::FilterError| {
            ApiError::new(
                ErrorCode::InvalidFilter,
                format!("{what}: {e} ({})", e.code()),
            )
        };
        let mut compiled = Filter::match_all();
        if let Some(json) = filter {
            compiled = Filter::from_json(json, limits).map_err(|e| invalid("filter", e))?;
        }
        match where_clause {
            Some(sql) => {
                let sql = Filter::from_sql(sql, params, limits).map_err(|e| invalid("where", e))?;
                compiled = compiled.and(sql);
            }
            None if !params.is_empty() => {
                return Err(ApiError::new(
                    ErrorCode::InvalidFilter,
                    "params are only used with where",
                ));
            }
            None => {}
        }
        Ok(DocFilter(compiled))
    }

    /// The compiled filter.
    pub(crate) fn into_filter(self) -> Filter {
        self.0
    }

    /// This filter restricted to what `grant` lets its caller read; `forbidden`
    /// if it reads a field hidden from the caller.
    pub(crate) fn restrict(
        self,
        access: &Access,
        grant: &ReadGrant,
    ) -> Result<DocFilter, ApiError> {
        access.check_filter(grant, &self.0)?;
        Ok(DocFilter(grant.restrict(self.0)))
    }

    /// Whether the filter keeps everything.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_match_all()
    }

    /// Whether `doc` matches.
    pub(crate) fn matches(&self, doc: &Value) -> bool {
        self.0.matches(doc)
    }
}

/// The `filter` query parameter: JSON text.
pub(crate) fn parse_filter(text: &str) -> Result<Value, ApiError> {
    serde_json::from_str(text).map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidFilter,
            format!("filter is not valid JSON: {e}"),
        )
    })
}

/// The `params` query parameter: a JSON array of values for `$1`, `$2`...
pub(crate) fn parse_params(text: &str) -> Result<Vec<Value>, ApiError> {
    match serde_json::from_str(text) {
        Ok(Value::Array(values)) => Ok(values),
        _ => Err(ApiError::new(
            ErrorCode::InvalidFilter,
            "params must be a JSON array of values for $1, $2, ...",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(
        filter: Option<&str>,
        sql: Option<&str>,
        params: Option<&str>,
    ) -> Result<DocFilter, ApiError> {
        DocFilter::parse(filter, sql, params, &Limits::default())
    }

    #[test]
    fn json_and_sql_combine_with_and() {
        let f = parse(
            Some(r#"{"status":"open"}"#),
            Some("amount >= $1"),
            Some("[100]"),
        )
        .unwrap();
        assert!(f.matches(&json!({"status": "open", "amount": 150})));
        assert!(!f.matches(&json!({"status": "open", "amount": 50})));
        assert!(!f.matches(&json!({"status": "closed", "amount": 150})));
        assert!(parse(None, None, None).unwrap().is_empty());
    }

    #[test]
    fn errors_are_invalid_filter_with_the_place() {
        for (filter, sql, params) in [
            (Some("{"), None, None),
            (Some("[1]"), None, None),
            (Some(r#"{"$and":[{"a":1},{"b":{"$foo":1}}]}"#), None, None),
            (None, Some("amount >"), None),
            (None, Some("a = $1"), Some("{}")),
            (None, None, Some("[1]")),
        ] {
            let e = parse(filter, sql, params).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidFilter, "{filter:?} {sql:?}");
        }
        let e = parse(Some(r#"{"$and":[{"a":1},{"b":{"$foo":1}}]}"#), None, None).unwrap_err();
        assert!(
            e.message.contains("$foo") && e.message.contains("$and[1].b"),
            "{}",
            e.message
        );
    }
}
