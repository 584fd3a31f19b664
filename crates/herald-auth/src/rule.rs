//! Row-level rules: filter templates whose `"$auth.<path>"` strings are
//! replaced by the caller's claims, e.g. `{"user_id": "$auth.sub"}`.
//!
//! The server instantiates a table's rule once per session and compiles the
//! result into every subscription, query, snapshot and replay on that table,
//! so a rule costs nothing per event.

use crate::error::{AuthError, AuthErrorKind, ConfigError};
use serde::Deserialize;
use serde_json::{Map, Value};

const PREFIX: &str = "$auth.";

/// A filter template with claim references.
///
/// A JSON string that is *exactly* `"$auth.<path>"` is a reference; `<path>`
/// is dot-separated claim names (`org.id` reads `{"org": {"id": …}}`) made
/// of `[A-Za-z0-9_-]`, and `sub` is the verified subject. Strings that merely
/// contain `$auth` are left alone. Object keys are never substituted.
///
/// ```
/// use herald_auth::RowRule;
/// use serde_json::json;
/// let rule = RowRule::new(json!({"tenant": "$auth.org.id", "owner": "$auth.sub"}))?;
/// let claims = json!({"org": {"id": 7}}).as_object().unwrap().clone();
/// let filter = rule.instantiate("alice", &claims)?;
/// assert_eq!(filter, json!({"tenant": 7, "owner": "alice"}));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "Value")]
pub struct RowRule {
    template: Value,
}

impl RowRule {
    /// Checks that `template` is an object and that every reference is a
    /// well-formed path.
    pub fn new(template: Value) -> Result<Self, ConfigError> {
        if !template.is_object() {
            return Err(ConfigError::new(format!(
                "a row rule must be a JSON object, not {template}"
            )));
        }
        check(&template)?;
        Ok(Self { template })
    }

    /// The template with every reference replaced by the claim it names
    /// (any JSON type). A claim that is missing or `null` is an error
    /// ([`MissingClaim`](AuthErrorKind::MissingClaim)) rather than a filter
    /// on null: a rule must fail closed, never match rows that belong to
    /// nobody.
    pub fn instantiate(&self, sub: &str, claims: &Map<String, Value>) -> Result<Value, AuthError> {
        substitute(&self.template, &|path| lookup(path, sub, claims))
    }

    /// The template with every reference replaced by a placeholder string:
    /// what a server compiles at start-up to check the rule's filter before
    /// any caller's claims are known.
    pub fn with_placeholders(&self) -> Value {
        substitute(&self.template, &|_| Ok(Value::String("placeholder".into())))
            .unwrap_or_else(|_| self.template.clone())
    }

    /// The template as written.
    pub fn template(&self) -> &Value {
        &self.template
    }
}

impl TryFrom<Value> for RowRule {
    type Error = ConfigError;

    fn try_from(template: Value) -> Result<Self, Self::Error> {
        Self::new(template)
    }
}

fn check(value: &Value) -> Result<(), ConfigError> {
    match value {
        Value::String(s) => match reference(s) {
            Some(path) if !valid_path(path) => Err(ConfigError::new(format!(
                "row rule reference {s:?} is not a dotted claim path such as \"$auth.sub\" or \"$auth.org.id\""
            ))),
            None if s == "$auth" => Err(ConfigError::new(
                "row rule reference \"$auth\" names no claim; write e.g. \"$auth.sub\"",
            )),
            _ => Ok(()),
        },
        Value::Array(items) => items.iter().try_for_each(check),
        Value::Object(map) => map.values().try_for_each(check),
        _ => Ok(()),
    }
}

fn reference(s: &str) -> Option<&str> {
    s.strip_prefix(PREFIX)
}

fn valid_path(path: &str) -> bool {
    path.split('.').all(|segment| {
        !segment.is_empty()
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    })
}

/// `value` with every reference replaced by what `claim` gives for its path.
fn substitute(
    value: &Value,
    claim: &impl Fn(&str) -> Result<Value, AuthError>,
) -> Result<Value, AuthError> {
    Ok(match value {
        Value::String(s) => match reference(s) {
            Some(path) => claim(path)?,
            None => value.clone(),
        },
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|v| substitute(v, claim))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| Ok((k.clone(), substitute(v, claim)?)))
                .collect::<Result<_, AuthError>>()?,
        ),
        _ => value.clone(),
    })
}

fn lookup(path: &str, sub: &str, claims: &Map<String, Value>) -> Result<Value, AuthError> {
    if path == "sub" {
        return Ok(Value::String(sub.to_owned()));
    }
    let mut segments = path.split('.');
    let mut found = segments.next().and_then(|s| claims.get(s));
    for segment in segments {
        found = found.and_then(|v| v.get(segment));
    }
    match found {
        Some(Value::Null) | None => Err(AuthError::new(
            AuthErrorKind::MissingClaim,
            format!("a row rule needs claim {path}, which the token does not have"),
        )),
        Some(value) => Ok(value.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn references_are_replaced_by_claims_of_any_type() {
        let rule = RowRule::new(json!({
            "user_id": "$auth.sub",
            "tenant": "$auth.org.id",
            "$or": [{"team": {"$in": "$auth.teams"}}, {"public": true}],
            "level": {"$lte": "$auth.level"},
        }))
        .unwrap();
        let filter = rule
            .instantiate(
                "alice",
                &claims(json!({"sub": "ignored", "org": {"id": "acme"}, "teams": ["a", "b"], "level": 3})),
            )
            .unwrap();
        assert_eq!(
            filter,
            json!({
                "user_id": "alice",
                "tenant": "acme",
                "$or": [{"team": {"$in": ["a", "b"]}}, {"public": true}],
                "level": {"$lte": 3},
            })
        );
    }

    #[test]
    fn a_missing_or_null_claim_fails_closed_naming_it() {
        let rule = RowRule::new(json!({"tenant": "$auth.org.id"})).unwrap();
        for c in [
            json!({}),
            json!({"org": {}}),
            json!({"org": 5}),
            json!({"org": {"id": null}}),
        ] {
            let err = rule.instantiate("alice", &claims(c)).unwrap_err();
            assert_eq!(err.kind, AuthErrorKind::MissingClaim);
            assert!(err.message.contains("org.id"), "{err}");
        }
    }

    #[test]
    fn strings_that_merely_mention_auth_are_left_alone() {
        let template = json!({
            "a": "price in $auth.units",
            "b": "$authx",
            "c": "$AUTH.sub",
            "$auth.sub": 1,
        });
        let rule = RowRule::new(template.clone()).unwrap();
        assert_eq!(rule.instantiate("alice", &Map::new()).unwrap(), template);
        assert_eq!(rule.template(), &template);
    }

    #[test]
    fn malformed_templates_are_refused() {
        for bad in [
            json!(["$auth.sub"]),
            json!("$auth.sub"),
            json!({"a": "$auth."}),
            json!({"a": "$auth"}),
            json!({"a": "$auth.org..id"}),
            json!({"a": "$auth.org.id."}),
            json!({"a": {"b": ["$auth.has space"]}}),
        ] {
            assert!(RowRule::new(bad.clone()).is_err(), "{bad}");
        }
        assert!(serde_json::from_value::<RowRule>(json!({"a": "$auth."})).is_err());
        assert!(serde_json::from_value::<RowRule>(json!({"a": "$auth.sub"})).is_ok());
    }
}
