//! The document filter accepted by `GET .../docs?filter=` and replay.
//!
//! For now a filter is a JSON object of top-level field → value pairs, all of
//! which must be equal (`{"status":"published","category":"tech"}`); the full
//! filter language replaces this behind the same [`DocFilter`] type.

use crate::error::ApiError;
use herald_proto::ErrorCode;
use serde_json::{Map, Value};

/// A compiled document filter.
#[derive(Debug, Clone, Default)]
pub(crate) struct DocFilter {
    equal: Map<String, Value>,
}

impl DocFilter {
    /// Parses the `filter` query parameter.
    pub(crate) fn parse(text: Option<&str>) -> Result<DocFilter, ApiError> {
        let Some(text) = text else {
            return Ok(DocFilter::default());
        };
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(equal)) => {
                if let Some((field, _)) = equal
                    .iter()
                    .find(|(k, v)| k.starts_with('$') || is_operator_object(v))
                {
                    return Err(ApiError::new(
                        ErrorCode::InvalidFilter,
                        format!(
                            "operators are not supported yet at {field}: use field/value equality"
                        ),
                    ));
                }
                Ok(DocFilter { equal })
            }
            Ok(_) => Err(ApiError::new(
                ErrorCode::InvalidFilter,
                "filter must be a JSON object",
            )),
            Err(e) => Err(ApiError::new(
                ErrorCode::InvalidFilter,
                format!("filter is not valid JSON: {e}"),
            )),
        }
    }

    /// Whether the filter keeps everything.
    pub(crate) fn is_empty(&self) -> bool {
        self.equal.is_empty()
    }

    /// Whether `doc` matches.
    pub(crate) fn matches(&self, doc: &Map<String, Value>) -> bool {
        self.equal.iter().all(|(k, v)| doc.get(k) == Some(v))
    }
}

fn is_operator_object(v: &Value) -> bool {
    v.as_object()
        .is_some_and(|o| o.keys().any(|k| k.starts_with('$')))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn equality_on_every_field() {
        let f = DocFilter::parse(Some(r#"{"a":1,"b":"x"}"#)).unwrap();
        let doc = |v: Value| v.as_object().unwrap().clone();
        assert!(f.matches(&doc(json!({"a": 1, "b": "x", "c": 0}))));
        assert!(!f.matches(&doc(json!({"a": 1}))));
        assert!(DocFilter::parse(None).unwrap().is_empty());
        assert!(DocFilter::parse(Some("[1]")).is_err());
        assert!(DocFilter::parse(Some("{")).is_err());
        assert!(DocFilter::parse(Some(r#"{"a":{"$gt":1}}"#)).is_err());
    }
}
