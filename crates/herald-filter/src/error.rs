//! The one error type of the crate: what went wrong, and where in the filter.

use std::fmt;

/// Why a filter was rejected. Every expected failure is a variant; [`FilterError`]
/// adds the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// An operator this language does not have (`$foo`, `$where`, `$expr`...).
    #[error("unknown operator \"{0}\"")]
    UnknownOperator(String),
    /// An operator or a filter got an operand of the wrong shape.
    #[error("{operator} expects {expected}")]
    InvalidOperand {
        /// The operator (or `filter`) that was given the operand.
        operator: String,
        /// What it accepts, in words.
        expected: &'static str,
    },
    /// A field path that cannot address anything (empty, or with an empty segment).
    #[error("invalid field path \"{0}\"")]
    InvalidPath(String),
    /// The SQL text does not parse.
    #[error("SQL syntax error: {0}")]
    SqlSyntax(String),
    /// Valid SQL that has no meaning as a filter (functions, subqueries, joins...).
    #[error("unsupported SQL: {0}")]
    SqlUnsupported(String),
    /// A `$n` placeholder with no matching parameter.
    #[error("no value for parameter ${0}")]
    SqlParameter(usize),
    /// Nested deeper than [`crate::Limits::max_depth`].
    #[error("filter nested deeper than {0} levels")]
    TooDeep(usize),
    /// More nodes than [`crate::Limits::max_nodes`].
    #[error("filter has more than {0} nodes")]
    TooManyNodes(usize),
    /// A list longer than [`crate::Limits::max_in_list`].
    #[error("list has {len} values, more than the limit of {limit}")]
    InListTooLong {
        /// Length of the offending list.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// A regular expression longer than [`crate::Limits::max_regex_len`] or
    /// compiling to more than [`crate::Limits::max_regex_compiled`] bytes.
    #[error("regex too large: {0}")]
    RegexTooLarge(String),
    /// A regular expression that does not compile (bad syntax, backreferences,
    /// look-around: the engine is linear-time and has none of those).
    #[error("invalid regex: {0}")]
    InvalidRegex(String),
    /// A string literal or field name longer than [`crate::Limits::max_string_len`].
    #[error("string of {len} bytes is longer than the limit of {limit}")]
    StringTooLong {
        /// Length of the offending string in bytes.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
}

impl ErrorKind {
    /// Stable, machine-readable snake_case code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownOperator(_) => "unknown_operator",
            Self::InvalidOperand { .. } => "invalid_operand",
            Self::InvalidPath(_) => "invalid_path",
            Self::SqlSyntax(_) => "sql_syntax",
            Self::SqlUnsupported(_) => "sql_unsupported",
            Self::SqlParameter(_) => "sql_parameter",
            Self::TooDeep(_) => "too_deep",
            Self::TooManyNodes(_) => "too_many_nodes",
            Self::InListTooLong { .. } => "in_list_too_long",
            Self::RegexTooLarge(_) => "regex_too_large",
            Self::InvalidRegex(_) => "invalid_regex",
            Self::StringTooLong { .. } => "string_too_long",
        }
    }
}

/// A filter that could not be compiled, with the place it went wrong.
///
/// The place is written like the filter itself: `$and[2].amount` is the field
/// `amount` in the third clause of a top-level `$and`; for SQL it is the column.
///
/// ```
/// use herald_filter::{Filter, Limits};
/// let err = Filter::from_json(&serde_json::json!({"$and": [{"a": 1}, {"b": {"$foo": 1}}]}), &Limits::default())
///     .unwrap_err();
/// assert_eq!(err.code(), "unknown_operator");
/// assert_eq!(err.path(), "$and[1].b");
/// assert_eq!(err.to_string(), r#"unknown operator "$foo" at $and[1].b"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterError {
    kind: ErrorKind,
    path: String,
}

impl FilterError {
    pub(crate) fn new(kind: ErrorKind, path: impl Into<String>) -> Self {
        Self {
            kind,
            path: path.into(),
        }
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// Stable, machine-readable snake_case code (`unknown_operator`, `too_deep`...).
    pub fn code(&self) -> &'static str {
        self.kind.code()
    }

    /// Where it went wrong; empty when the error is about the whole filter.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl fmt::Display for FilterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}", self.kind)
        } else {
            write!(f, "{} at {}", self.kind, self.path)
        }
    }
}

impl std::error::Error for FilterError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_the_place() {
        let err = FilterError::new(
            ErrorKind::InvalidOperand {
                operator: "$in".into(),
                expected: "an array",
            },
            "status",
        );
        assert_eq!(err.to_string(), "$in expects an array at status");
        assert_eq!(err.code(), "invalid_operand");
    }

    #[test]
    fn display_without_place() {
        let err = FilterError::new(ErrorKind::SqlSyntax("oops".into()), "");
        assert_eq!(err.to_string(), "SQL syntax error: oops");
    }
}
