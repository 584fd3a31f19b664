//! JSON filter → compiled [`Node`] tree, validating shapes and enforcing
//! [`Limits`] as it goes. The SQL front end (`sql.rs`) drives the same
//! [`Compiler`], so both forms produce the same tree and the same errors.

use regex::RegexBuilder;
use serde_json::{Map, Value};

use crate::error::{ErrorKind, FilterError};
use crate::eval::{CmpOp, Const, InSet, Node, Pred, TypeSet};
use crate::keymap::Key;
use crate::limits::Limits;
use crate::path::Path;

type Result<T> = std::result::Result<T, FilterError>;

/// Field-level operators, parsed once from their `$` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Cmp(CmpOp),
    In,
    Nin,
    Exists,
    Type,
    Regex,
    Options,
    Mod,
    All,
    ElemMatch,
    Size,
    Not,
}

impl Op {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "$eq" => Self::Eq,
            "$ne" => Self::Ne,
            "$gt" => Self::Cmp(CmpOp::Gt),
            "$gte" => Self::Cmp(CmpOp::Gte),
            "$lt" => Self::Cmp(CmpOp::Lt),
            "$lte" => Self::Cmp(CmpOp::Lte),
            "$in" => Self::In,
            "$nin" => Self::Nin,
            "$exists" => Self::Exists,
            "$type" => Self::Type,
            "$regex" => Self::Regex,
            "$options" => Self::Options,
            "$mod" => Self::Mod,
            "$all" => Self::All,
            "$elemMatch" => Self::ElemMatch,
            "$size" => Self::Size,
            "$not" => Self::Not,
            _ => return None,
        })
    }
}

/// Logical operators allowed where a filter document is expected.
fn is_logical(name: &str) -> bool {
    matches!(name, "$and" | "$or" | "$nor")
}

fn invalid(operator: &str, expected: &'static str, at: &str) -> FilterError {
    FilterError::new(
        ErrorKind::InvalidOperand {
            operator: operator.to_owned(),
            expected,
        },
        at,
    )
}

/// `Ok` when a limit holds, else its error at `at`.
fn ensure(holds: bool, at: &str, kind: impl FnOnce() -> ErrorKind) -> Result<()> {
    if holds {
        Ok(())
    } else {
        Err(FilterError::new(kind(), at))
    }
}

/// `at` followed by a field name, as error paths are written.
pub(crate) fn join(at: &str, field: &str) -> String {
    if at.is_empty() {
        field.to_owned()
    } else {
        format!("{at}.{field}")
    }
}

/// AND of compiled clauses, flattening nested ANDs and dropping match-alls.
pub(crate) fn and_of(nodes: Vec<Node>) -> Node {
    let mut flat = Vec::with_capacity(nodes.len());
    for node in nodes {
        match node {
            Node::All => {}
            Node::And(inner) => flat.extend(inner.into_vec()),
            other => flat.push(other),
        }
    }
    match flat.len() {
        0 => Node::All,
        1 => flat.pop().unwrap_or(Node::All),
        _ => Node::And(flat.into_boxed_slice()),
    }
}

/// Compiles filters under one set of limits, counting nodes across the whole filter.
#[derive(Debug)]
pub(crate) struct Compiler<'l> {
    limits: &'l Limits,
    nodes: usize,
}

impl<'l> Compiler<'l> {
    pub(crate) fn new(limits: &'l Limits) -> Self {
        Self { limits, nodes: 0 }
    }

    /// Counts one node against `max_nodes`.
    pub(crate) fn count(&mut self, at: &str) -> Result<()> {
        self.nodes += 1;
        let limit = self.limits.max_nodes;
        ensure(self.nodes <= limit, at, || ErrorKind::TooManyNodes(limit))
    }

    pub(crate) fn depth(&self, depth: usize, at: &str) -> Result<()> {
        let limit = self.limits.max_depth;
        ensure(depth <= limit, at, || ErrorKind::TooDeep(limit))
    }

    fn string(&self, s: &str, at: &str) -> Result<()> {
        let (len, limit) = (s.len(), self.limits.max_string_len);
        ensure(len <= limit, at, || ErrorKind::StringTooLong { len, limit })
    }

    /// Checks a literal operand: nesting depth and the size of every string in it.
    pub(crate) fn literal(&self, v: &Value, at: &str, depth: usize) -> Result<()> {
        self.depth(depth, at)?;
        match v {
            Value::String(s) => self.string(s, at),
            Value::Array(items) => items
                .iter()
                .try_for_each(|item| self.literal(item, at, depth + 1)),
            Value::Object(map) => map.iter().try_for_each(|(k, item)| {
                self.string(k, at)?;
                self.literal(item, at, depth + 1)
            }),
            _ => Ok(()),
        }
    }

    fn list<'v>(&self, operator: &str, v: &'v Value, at: &str) -> Result<&'v [Value]> {
        let items = v
            .as_array()
            .ok_or_else(|| invalid(operator, "an array", at))?;
        let (len, limit) = (items.len(), self.limits.max_in_list);
        ensure(len <= limit, at, || ErrorKind::InListTooLong { len, limit })?;
        Ok(items)
    }

    /// A filter document: implicit AND of its fields and logical operators.
    pub(crate) fn filter(&mut self, v: &Value, at: &str, depth: usize) -> Result<Node> {
        self.depth(depth, at)?;
        let map = v
            .as_object()
            .ok_or_else(|| invalid("filter", "an object", at))?;
        let mut clauses = Vec::with_capacity(map.len());
        for (key, operand) in map {
            if is_logical(key) {
                clauses.push(self.logical(key, operand, at, depth)?);
            } else if key.starts_with('$') {
                return Err(FilterError::new(
                    ErrorKind::UnknownOperator(key.clone()),
                    at,
                ));
            } else {
                clauses.push(self.field(key, operand, &join(at, key), depth + 1)?);
            }
        }
        Ok(and_of(clauses))
    }

    fn logical(&mut self, op: &str, operand: &Value, at: &str, depth: usize) -> Result<Node> {
        let op_at = join(at, op);
        let items = operand
            .as_array()
            .filter(|items| !items.is_empty())
            .ok_or_else(|| invalid(op, "a non-empty array of filters", &op_at))?;
        self.count(&op_at)?;
        let children = items
            .iter()
            .enumerate()
            .map(|(i, item)| self.filter(item, &format!("{op_at}[{i}]"), depth + 1))
            .collect::<Result<Vec<_>>>()?;
        Ok(match op {
            "$and" => and_of(children),
            "$or" => Node::Or(children.into_boxed_slice()),
            _ => Node::Not(Box::new(Node::Or(children.into_boxed_slice()))),
        })
    }

    /// Parses a dotted field name into a path.
    pub(crate) fn path(&self, dotted: &str, at: &str) -> Result<Path> {
        self.string(dotted, at)?;
        Path::parse(dotted)
            .ok_or_else(|| FilterError::new(ErrorKind::InvalidPath(dotted.to_owned()), at))
    }

    /// `field: operand`: an operator object, or a literal for implicit equality.
    fn field(&mut self, key: &str, operand: &Value, at: &str, depth: usize) -> Result<Node> {
        let path = self.path(key, at)?;
        match operand {
            Value::Object(map) if map.keys().any(|k| k.starts_with('$')) => {
                self.operators(&path, map, at, depth)
            }
            _ => self.op(&path, Op::Eq, operand, None, at, depth),
        }
    }

    /// An operator object such as `{"$gt": 1, "$lt": 5}`: the AND of its operators.
    fn operators(
        &mut self,
        path: &Path,
        map: &Map<String, Value>,
        at: &str,
        depth: usize,
    ) -> Result<Node> {
        self.depth(depth, at)?;
        if map.keys().any(|k| !k.starts_with('$')) {
            return Err(invalid(
                "an operator object",
                "only $-operators (not also fields)",
                at,
            ));
        }
        let options = map.get("$options");
        let mut clauses = Vec::with_capacity(map.len());
        for (name, operand) in map {
            let op = Op::parse(name)
                .ok_or_else(|| FilterError::new(ErrorKind::UnknownOperator(name.clone()), at))?;
            match op {
                Op::Options if !map.contains_key("$regex") => {
                    return Err(invalid("$options", "a sibling $regex", at));
                }
                Op::Options => {}
                _ => clauses.push(self.op(path, op, operand, options, at, depth)?),
            }
        }
        Ok(and_of(clauses))
    }

    /// One operator applied at a path. `options` is the `$options` of a `$regex`.
    pub(crate) fn op(
        &mut self,
        path: &Path,
        op: Op,
        operand: &Value,
        options: Option<&Value>,
        at: &str,
        depth: usize,
    ) -> Result<Node> {
        self.count(at)?;
        let field = |pred| Node::Field(path.clone(), pred);
        Ok(match op {
            Op::Eq => {
                self.literal(operand, at, depth)?;
                field(Pred::Eq(Const::of(operand)))
            }
            Op::Ne => Node::Not(Box::new(self.op(path, Op::Eq, operand, None, at, depth)?)),
            Op::Cmp(cmp) => {
                self.literal(operand, at, depth)?;
                field(Pred::Cmp(cmp, Const::of(operand)))
            }
            Op::In => field(Pred::In(self.in_set("$in", operand, at, depth)?)),
            Op::Nin => Node::Not(Box::new(field(Pred::In(
                self.in_set("$nin", operand, at, depth)?,
            )))),
            Op::Exists => {
                let exists = match operand {
                    Value::Bool(b) => *b,
                    Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                    _ => return Err(invalid("$exists", "a boolean", at)),
                };
                if exists {
                    field(Pred::Exists)
                } else {
                    Node::Not(Box::new(field(Pred::Exists)))
                }
            }
            Op::Type => field(Pred::Type(type_set(operand, at)?)),
            Op::Regex => field(Pred::Regex(self.regex(operand, options, at)?)),
            Op::Options => return Err(invalid("$options", "a sibling $regex", at)),
            Op::Mod => {
                let (divisor, remainder) = match operand.as_array().map(Vec::as_slice) {
                    Some([Value::Number(d), Value::Number(r)]) => (
                        crate::value::Num::of(d).truncated(),
                        crate::value::Num::of(r).truncated(),
                    ),
                    _ => {
                        return Err(invalid(
                            "$mod",
                            "an array of two numbers [divisor, remainder]",
                            at,
                        ));
                    }
                };
                if divisor == 0 {
                    return Err(invalid("$mod", "a non-zero divisor", at));
                }
                field(Pred::Mod { divisor, remainder })
            }
            Op::All => {
                let items = self.list("$all", operand, at)?;
                if items.is_empty() {
                    // MongoDB: `$all: []` matches nothing.
                    return Ok(Node::Not(Box::new(Node::All)));
                }
                let mut clauses = Vec::with_capacity(items.len());
                for item in items {
                    clauses.push(self.op(path, Op::Eq, item, None, at, depth)?);
                }
                and_of(clauses)
            }
            Op::ElemMatch => {
                let map = operand
                    .as_object()
                    .ok_or_else(|| invalid("$elemMatch", "an object", at))?;
                let inner_at = join(at, "$elemMatch");
                // Value form when every key is a field operator: `{"$gte": 80, "$lt": 85}`.
                let value_form =
                    !map.is_empty() && map.keys().all(|k| k.starts_with('$') && !is_logical(k));
                let node = if value_form {
                    self.operators(&Path::default(), map, &inner_at, depth + 1)?
                } else {
                    self.filter(operand, &inner_at, depth + 1)?
                };
                field(Pred::ElemMatch {
                    node: Box::new(node),
                    objects_only: !value_form,
                })
            }
            Op::Size => {
                let size = operand
                    .as_u64()
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| invalid("$size", "a non-negative integer", at))?;
                field(Pred::Size(size))
            }
            Op::Not => {
                let map = operand
                    .as_object()
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| invalid("$not", "an object of operators", at))?;
                if map.keys().any(|k| !k.starts_with('$')) {
                    return Err(invalid("$not", "an object of operators", at));
                }
                Node::Not(Box::new(self.operators(path, map, at, depth + 1)?))
            }
        })
    }

    fn in_set(
        &self,
        operator: &str,
        operand: &Value,
        at: &str,
        depth: usize,
    ) -> Result<Box<InSet>> {
        let items = self.list(operator, operand, at)?;
        let mut set = InSet::default();
        for item in items {
            self.literal(item, at, depth + 1)?;
            match item {
                Value::Null => set.has_null = true,
                Value::Array(_) | Value::Object(_) => set.compound.push(item.clone()),
                scalar => {
                    if let Some(key) = Key::of(scalar) {
                        set.keys.get_or_default(&key);
                    }
                }
            }
        }
        Ok(Box::new(set))
    }

    fn regex(&self, pattern: &Value, options: Option<&Value>, at: &str) -> Result<regex::Regex> {
        let pattern = pattern
            .as_str()
            .ok_or_else(|| invalid("$regex", "a string", at))?;
        let options = match options {
            None => "",
            Some(Value::String(s)) => s,
            Some(_) => return Err(invalid("$options", "a string of the flags i, m, s, x", at)),
        };
        compile_regex(pattern, options, self.limits).map_err(|kind| FilterError::new(kind, at))
    }
}

/// Compiles a pattern with MongoDB's option letters under the regex limits.
pub(crate) fn compile_regex(
    pattern: &str,
    options: &str,
    limits: &Limits,
) -> std::result::Result<regex::Regex, ErrorKind> {
    if pattern.len() > limits.max_regex_len {
        return Err(ErrorKind::RegexTooLarge(format!(
            "pattern of {} bytes is longer than the limit of {}",
            pattern.len(),
            limits.max_regex_len
        )));
    }
    let mut builder = RegexBuilder::new(pattern);
    for flag in options.chars() {
        match flag {
            'i' => builder.case_insensitive(true),
            'm' => builder.multi_line(true),
            's' => builder.dot_matches_new_line(true),
            'x' => builder.ignore_whitespace(true),
            _ => {
                return Err(ErrorKind::InvalidOperand {
                    operator: "$options".into(),
                    expected: "a string of the flags i, m, s, x",
                });
            }
        };
    }
    builder
        .size_limit(limits.max_regex_compiled)
        .build()
        .map_err(|err| match err {
            regex::Error::CompiledTooBig(limit) => ErrorKind::RegexTooLarge(format!(
                "compiled form exceeds the limit of {limit} bytes"
            )),
            // The engine's message spans lines (pattern, caret, reason): keep the reason.
            other => ErrorKind::InvalidRegex(
                other
                    .to_string()
                    .lines()
                    .rev()
                    .find(|line| !line.trim().is_empty())
                    .unwrap_or_default()
                    .trim()
                    .trim_start_matches("error: ")
                    .to_owned(),
            ),
        })
}

fn type_set(operand: &Value, at: &str) -> Result<TypeSet> {
    let one = |v: &Value| {
        let name = match v {
            Value::String(s) => s.clone(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        TypeSet::named(&name)
    };
    let expected = "a type name (double, string, object, array, bool, null, int, long, decimal, number) or a list of them";
    match operand {
        Value::Array(items) if !items.is_empty() => {
            items.iter().try_fold(TypeSet::default(), |set, item| {
                one(item)
                    .map(|t| set.with(t))
                    .ok_or_else(|| invalid("$type", expected, at))
            })
        }
        other => one(other).ok_or_else(|| invalid("$type", expected, at)),
    }
}
