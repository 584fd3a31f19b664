//! [`Filter`]: a compiled filter, the type the rest of Herald holds.

use std::sync::Arc;

use serde_json::Value;

use crate::error::FilterError;
use crate::eval::{Node, Pred};
use crate::limits::Limits;
use crate::parse::{Compiler, and_of};

/// A compiled filter: immutable, `Send + Sync`, and cheap to clone (the tree is
/// shared behind an `Arc`).
///
/// ```
/// use herald_filter::{Filter, Limits};
/// use serde_json::json;
///
/// let limits = Limits::default();
/// let json = Filter::from_json(&json!({"amount": {"$gte": 100}, "status": {"$in": ["pending", "paid"]}}), &limits)?;
/// let sql = Filter::from_sql("amount >= $1 AND status IN ('pending', 'paid')", &[json!(100)], &limits)?;
/// let doc = json!({"amount": 150, "status": "paid"});
/// assert!(json.matches(&doc) && sql.matches(&doc));
/// # Ok::<(), herald_filter::FilterError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Filter {
    root: Arc<Node>,
}

impl Filter {
    /// Compiles a MongoDB-style filter document.
    pub fn from_json(filter: &Value, limits: &Limits) -> Result<Self, FilterError> {
        let root = Compiler::new(limits).filter(filter, "", 0)?;
        Ok(Self::from_node(root))
    }

    /// Compiles a SQL `WHERE` clause (without the `WHERE` keyword); `$1`, `$2`...
    /// refer to `params[0]`, `params[1]`...
    pub fn from_sql(
        where_clause: &str,
        params: &[Value],
        limits: &Limits,
    ) -> Result<Self, FilterError> {
        let root = crate::sql::compile(where_clause, params, limits)?;
        Ok(Self::from_node(root))
    }

    /// The filter that matches every document.
    pub fn match_all() -> Self {
        Self::from_node(Node::All)
    }

    pub(crate) fn from_node(root: Node) -> Self {
        Self {
            root: Arc::new(root),
        }
    }

    pub(crate) fn root(&self) -> &Node {
        &self.root
    }

    /// Whether `doc` matches. Does not allocate.
    #[inline]
    pub fn matches(&self, doc: &Value) -> bool {
        self.root.matches(doc)
    }

    /// Whether this is the match-all filter (for instance `{}`).
    pub fn is_match_all(&self) -> bool {
        matches!(*self.root, Node::All)
    }

    /// The dotted field paths the filter reads; an `$elemMatch`'s inner
    /// fields are joined to its array's path (`items.sku`). Used to refuse
    /// filters that would probe fields hidden from their author.
    pub fn fields(&self) -> Vec<String> {
        fn walk(node: &Node, prefix: &str, out: &mut Vec<String>) {
            match node {
                Node::All => {}
                Node::And(nodes) | Node::Or(nodes) => {
                    nodes.iter().for_each(|n| walk(n, prefix, out));
                }
                Node::Not(node) => walk(node, prefix, out),
                Node::Field(path, pred) => {
                    let path = path.to_string();
                    let full = match (prefix.is_empty(), path.is_empty()) {
                        (true, _) => path,
                        (false, true) => prefix.to_owned(),
                        (false, false) => format!("{prefix}.{path}"),
                    };
                    if let Pred::ElemMatch { node, .. } = pred {
                        walk(node, &full, out);
                    }
                    out.push(full);
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.root, "", &mut out);
        out.sort();
        out.dedup();
        out
    }

    /// Both filters: used to combine a user's filter with a row-level security rule.
    /// Limits are not re-applied; each side was checked when it was compiled.
    #[must_use]
    pub fn and(self, other: Filter) -> Filter {
        let left = Arc::unwrap_or_clone(self.root);
        let right = Arc::unwrap_or_clone(other.root);
        Self::from_node(and_of(vec![left, right]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn compile(v: Value) -> Filter {
        Filter::from_json(&v, &Limits::default()).unwrap()
    }

    #[test]
    fn fields_lists_every_path_read() {
        let f = compile(
            json!({"a": 1, "$or": [{"b.c": {"$gt": 1}}, {"items": {"$elemMatch": {"sku": "x"}}}], "d": {"$not": {"$exists": true}}}),
        );
        assert_eq!(f.fields(), ["a", "b.c", "d", "items", "items.sku"]);
        let sql = Filter::from_sql("x = 1 AND y.z > 2", &[], &Limits::default()).unwrap();
        assert_eq!(sql.fields(), ["x", "y.z"]);
        assert!(Filter::match_all().fields().is_empty());
    }

    #[test]
    fn and_combines_both_sides() {
        let both = compile(json!({"a": 1})).and(compile(json!({"b": 2})));
        assert!(both.matches(&json!({"a": 1, "b": 2})));
        assert!(!both.matches(&json!({"a": 1, "b": 3})));
        assert!(Filter::match_all().and(Filter::match_all()).is_match_all());
    }

    #[test]
    fn filter_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<Filter>();
    }
}
