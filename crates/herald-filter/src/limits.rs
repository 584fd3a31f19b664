//! Limits that keep a hostile filter from costing more than a filter should.
//!
//! Every limit is checked while compiling, so a [`crate::Filter`] that exists is
//! known to be small; evaluation never needs to check anything again.

use serde::Deserialize;

/// Bounds applied when compiling a filter. Each one has its own error code.
///
/// Servers embed this in their configuration; every field is optional there and
/// defaults to the value documented on it.
///
/// ```
/// let limits: herald_filter::Limits = serde_json::from_str(r#"{"max_depth": 8}"#).unwrap();
/// assert_eq!(limits.max_depth, 8);
/// assert_eq!(limits.max_nodes, 1024);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Deepest nesting of logical operators, field objects and literal values
    /// (error `too_deep`). Default 32.
    pub max_depth: usize,
    /// Most predicates and logical nodes in one filter (error `too_many_nodes`).
    /// Default 1024.
    pub max_nodes: usize,
    /// Longest `$in`, `$nin` or `$all` list, and SQL `IN (...)` list
    /// (error `in_list_too_long`). Default 10 000.
    pub max_in_list: usize,
    /// Longest regular expression source in bytes, `LIKE` patterns included
    /// (error `regex_too_large`). Default 1024.
    pub max_regex_len: usize,
    /// Largest compiled regular expression in bytes (error `regex_too_large`).
    /// Default 1 MiB.
    pub max_regex_compiled: usize,
    /// Longest string literal or field name in bytes (error `string_too_long`).
    /// Default 4096.
    pub max_string_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 32,
            max_nodes: 1024,
            max_in_list: 10_000,
            max_regex_len: 1024,
            max_regex_compiled: 1 << 20,
            max_string_len: 4096,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_defaults() {
        let limits: Limits = serde_json::from_str("{}").unwrap();
        assert_eq!(limits, Limits::default());
    }

    #[test]
    fn unknown_field_is_rejected() {
        assert!(serde_json::from_str::<Limits>(r#"{"max_dept": 3}"#).is_err());
    }
}
