//! SQL `WHERE` clause → the same [`Node`] tree as the JSON form.
//!
//! The clause is parsed with `sqlparser` (PostgreSQL dialect, so `$1` parameters
//! and `ILIKE` work) and each comparison is handed to the JSON
//! [`Compiler`] as the equivalent operator, so limits, errors and semantics are
//! shared. Semantics are MongoDB's, not SQL's three-valued logic:
//! `status <> 'x'` matches documents without `status`, and `x = NULL` means
//! "missing or null", like `x IS NULL`.

use serde_json::Value;
use sqlparser::ast::{BinaryOperator, Expr, UnaryOperator, Value as SqlValue};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::{Parser, ParserError};
use sqlparser::tokenizer::Token;

use crate::error::{ErrorKind, FilterError};
use crate::eval::{CmpOp, Node};
use crate::limits::Limits;
use crate::parse::{Compiler, Op, and_of};

type Result<T> = std::result::Result<T, FilterError>;

/// Compiles a `WHERE` clause with its `$n` parameters.
pub(crate) fn compile(clause: &str, params: &[Value], limits: &Limits) -> Result<Node> {
    let syntax = |err: ParserError| {
        let kind = match err {
            ParserError::RecursionLimitExceeded => ErrorKind::TooDeep(limits.max_depth),
            other => ErrorKind::SqlSyntax(
                other
                    .to_string()
                    .trim_start_matches("sql parser error: ")
                    .to_owned(),
            ),
        };
        FilterError::new(kind, "")
    };
    let dialect = PostgreSqlDialect {};
    let mut parser = Parser::new(&dialect)
        // The parser recurses per nesting level; bound it like the tree itself.
        .with_recursion_limit(limits.max_depth.saturating_mul(3).clamp(16, 256))
        .try_with_sql(clause)
        .map_err(syntax)?;
    let expr = parser.parse_expr().map_err(syntax)?;
    let next = parser.peek_token();
    if next.token != Token::EOF {
        return Err(FilterError::new(
            // `Location` displays as " at Line: l, Column: c".
            ErrorKind::SqlSyntax(format!("unexpected {}{}", next.token, next.span.start)),
            "",
        ));
    }
    Translator {
        compiler: Compiler::new(limits),
        params,
    }
    .expr(&expr, 0)
}

struct Translator<'a> {
    compiler: Compiler<'a>,
    params: &'a [Value],
}

fn unsupported(what: impl Into<String>, at: impl AsRef<str>) -> FilterError {
    FilterError::new(ErrorKind::SqlUnsupported(what.into()), at.as_ref())
}

/// The operands of a chain of one associative operator (`a AND b AND c`),
/// collected without recursion so long chains cost no depth.
fn chain<'e>(expr: &'e Expr, op: &BinaryOperator) -> Vec<&'e Expr> {
    let mut out = Vec::new();
    let mut stack = vec![expr];
    while let Some(e) = stack.pop() {
        match e {
            Expr::BinaryOp { left, op: o, right } if o == op => {
                stack.push(right);
                stack.push(left);
            }
            other => out.push(other),
        }
    }
    out
}

impl Translator<'_> {
    fn expr(&mut self, expr: &Expr, depth: usize) -> Result<Node> {
        self.compiler.depth(depth, "")?;
        match expr {
            Expr::Nested(inner) => self.expr(inner, depth + 1),
            Expr::BinaryOp {
                op: op @ (BinaryOperator::And | BinaryOperator::Or),
                ..
            } => {
                self.compiler.count("")?;
                let children = chain(expr, op)
                    .into_iter()
                    .map(|e| self.expr(e, depth + 1))
                    .collect::<Result<Vec<_>>>()?;
                Ok(match op {
                    BinaryOperator::And => and_of(children),
                    _ => Node::Or(children.into_boxed_slice()),
                })
            }
            Expr::BinaryOp { left, op, right } => self.comparison(left, op, right, depth),
            Expr::UnaryOp {
                op: UnaryOperator::Not,
                expr,
            } => {
                self.compiler.count("")?;
                Ok(Node::Not(Box::new(self.expr(expr, depth + 1)?)))
            }
            Expr::IsNull(e) => self.leaf(e, Op::Eq, &Value::Null, depth),
            Expr::IsNotNull(e) => self.leaf(e, Op::Ne, &Value::Null, depth),
            Expr::IsTrue(e) => self.leaf(e, Op::Eq, &Value::Bool(true), depth),
            Expr::IsNotTrue(e) => self.leaf(e, Op::Ne, &Value::Bool(true), depth),
            Expr::IsFalse(e) => self.leaf(e, Op::Eq, &Value::Bool(false), depth),
            Expr::IsNotFalse(e) => self.leaf(e, Op::Ne, &Value::Bool(false), depth),
            Expr::InList {
                expr,
                list,
                negated,
            } => {
                let at = column(expr)?;
                let values = list
                    .iter()
                    .map(|e| self.value(e, &at))
                    .collect::<Result<Vec<_>>>()?;
                let op = if *negated { Op::Nin } else { Op::In };
                self.leaf(expr, op, &Value::Array(values), depth)
            }
            Expr::Between {
                expr,
                negated,
                low,
                high,
            } => {
                let at = column(expr)?;
                let low = self.value(low, &at)?;
                let high = self.value(high, &at)?;
                let both = and_of(vec![
                    self.leaf(expr, Op::Cmp(CmpOp::Gte), &low, depth)?,
                    self.leaf(expr, Op::Cmp(CmpOp::Lte), &high, depth)?,
                ]);
                Ok(if *negated {
                    Node::Not(Box::new(both))
                } else {
                    both
                })
            }
            Expr::Like {
                negated,
                any: false,
                expr,
                pattern,
                escape_char,
            } => self.like(
                expr,
                pattern,
                escape_char.as_deref(),
                *negated,
                false,
                depth,
            ),
            Expr::ILike {
                negated,
                any: false,
                expr,
                pattern,
                escape_char,
            } => self.like(expr, pattern, escape_char.as_deref(), *negated, true, depth),
            Expr::Value(v) => match v.value {
                SqlValue::Boolean(true) => Ok(Node::All),
                SqlValue::Boolean(false) => Ok(Node::Not(Box::new(Node::All))),
                _ => Err(unsupported(
                    format!("a bare value {expr} is not a condition"),
                    "",
                )),
            },
            Expr::Identifier(_) | Expr::CompoundIdentifier(_) => {
                self.leaf(expr, Op::Eq, &Value::Bool(true), depth)
            }
            other => Err(unsupported(format!("expression {other}"), "")),
        }
    }

    /// `column <op> value` or `value <op> column`.
    fn comparison(
        &mut self,
        left: &Expr,
        op: &BinaryOperator,
        right: &Expr,
        depth: usize,
    ) -> Result<Node> {
        let (op, flipped) = match op {
            BinaryOperator::Eq => (Op::Eq, Op::Eq),
            BinaryOperator::NotEq => (Op::Ne, Op::Ne),
            BinaryOperator::Gt => (Op::Cmp(CmpOp::Gt), Op::Cmp(CmpOp::Lt)),
            BinaryOperator::GtEq => (Op::Cmp(CmpOp::Gte), Op::Cmp(CmpOp::Lte)),
            BinaryOperator::Lt => (Op::Cmp(CmpOp::Lt), Op::Cmp(CmpOp::Gt)),
            BinaryOperator::LtEq => (Op::Cmp(CmpOp::Lte), Op::Cmp(CmpOp::Gte)),
            other => {
                return Err(unsupported(
                    format!("operator {other}"),
                    column(left).unwrap_or_default(),
                ));
            }
        };
        match (column(left), column(right)) {
            (Ok(at), _) => {
                let value = self.value(right, &at)?;
                self.leaf(left, op, &value, depth)
            }
            (Err(_), Ok(at)) => {
                let value = self.value(left, &at)?;
                self.leaf(right, flipped, &value, depth)
            }
            (Err(err), Err(_)) => Err(err),
        }
    }

    fn like(
        &mut self,
        expr: &Expr,
        pattern: &Expr,
        escape: Option<&Expr>,
        negated: bool,
        insensitive: bool,
        depth: usize,
    ) -> Result<Node> {
        let at = column(expr)?;
        let Value::String(pattern) = self.value(pattern, &at)? else {
            return Err(unsupported("LIKE needs a string pattern", at));
        };
        let escape = match escape.map(|e| self.value(e, &at)).transpose()? {
            None => Some('\\'),
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) if s.chars().count() == 1 => s.chars().next(),
            Some(_) => return Err(unsupported("ESCAPE needs a single character", at)),
        };
        let regex = Value::String(like_to_regex(&pattern, escape));
        let options = Value::String(if insensitive { "is" } else { "s" }.into());
        let path = self.compiler.path(&at, &at)?;
        let node = self
            .compiler
            .op(&path, Op::Regex, &regex, Some(&options), &at, depth)?;
        Ok(if negated {
            Node::Not(Box::new(node))
        } else {
            node
        })
    }

    fn leaf(&mut self, column_expr: &Expr, op: Op, value: &Value, depth: usize) -> Result<Node> {
        let at = column(column_expr)?;
        let path = self.compiler.path(&at, &at)?;
        self.compiler.op(&path, op, value, None, &at, depth)
    }

    /// A literal or parameter, as JSON.
    fn value(&self, expr: &Expr, at: &str) -> Result<Value> {
        match expr {
            Expr::Value(v) => match &v.value {
                SqlValue::Number(text, _) => {
                    number(text).ok_or_else(|| unsupported(format!("number {text}"), at))
                }
                SqlValue::SingleQuotedString(s)
                | SqlValue::EscapedStringLiteral(s)
                | SqlValue::DollarQuotedString(sqlparser::ast::DollarQuotedString {
                    value: s,
                    ..
                }) => Ok(Value::String(s.clone())),
                SqlValue::Boolean(b) => Ok(Value::Bool(*b)),
                SqlValue::Null => Ok(Value::Null),
                SqlValue::Placeholder(p) => {
                    let n = p
                        .strip_prefix('$')
                        .and_then(|n| n.parse::<usize>().ok())
                        .filter(|n| *n >= 1)
                        .ok_or_else(|| {
                            unsupported(format!("placeholder {p} (use $1, $2...)"), at)
                        })?;
                    self.params
                        .get(n - 1)
                        .cloned()
                        .ok_or_else(|| FilterError::new(ErrorKind::SqlParameter(n), at))
                }
                other => Err(unsupported(format!("value {other}"), at)),
            },
            Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr,
            } => match self.value(expr, at)? {
                Value::Number(n) => {
                    number(&format!("-{n}")).ok_or_else(|| unsupported("negative number", at))
                }
                _ => Err(unsupported(format!("-{expr}"), at)),
            },
            Expr::Nested(inner) => self.value(inner, at),
            other => Err(unsupported(
                format!("{other} where a value was expected"),
                at,
            )),
        }
    }
}

/// The dotted field path a column expression names.
fn column(expr: &Expr) -> Result<String> {
    match expr {
        Expr::Identifier(ident) => Ok(ident.value.clone()),
        Expr::CompoundIdentifier(idents) => Ok(idents
            .iter()
            .map(|i| i.value.as_str())
            .collect::<Vec<_>>()
            .join(".")),
        Expr::Nested(inner) => column(inner),
        other => Err(unsupported(
            format!("{other} where a column was expected"),
            "",
        )),
    }
}

fn number(text: &str) -> Option<Value> {
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_number)
        .or_else(|| {
            text.parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
        })
}

/// Translates a LIKE pattern (`%` any run, `_` one character) to an anchored regex.
fn like_to_regex(pattern: &str, escape: Option<char>) -> String {
    let mut out = String::with_capacity(pattern.len() + 8);
    out.push('^');
    let mut chars = pattern.chars();
    let mut buf = [0u8; 4];
    while let Some(c) = chars.next() {
        match c {
            c if Some(c) == escape => {
                if let Some(next) = chars.next() {
                    out.push_str(&regex::escape(next.encode_utf8(&mut buf)));
                }
            }
            '%' => out.push_str(".*"),
            '_' => out.push('.'),
            c => out.push_str(&regex::escape(c.encode_utf8(&mut buf))),
        }
    }
    out.push('$');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn like_patterns() {
        assert_eq!(like_to_regex("a%", Some('\\')), "^a.*$");
        assert_eq!(like_to_regex("a_b.c", Some('\\')), r"^a.b\.c$");
        assert_eq!(like_to_regex(r"100\%", Some('\\')), r"^100%$");
    }

    #[test]
    fn and_chains_cost_no_depth() {
        let clause = vec!["a = 1"; 200].join(" AND ");
        assert!(compile(&clause, &[], &Limits::default()).is_ok());
    }
}
