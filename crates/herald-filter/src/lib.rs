//! Herald's filter language: MongoDB-style JSON filters and SQL `WHERE`
//! clauses, compiled once into a tree that evaluates without allocating, and
//! [`SubIndex`], which finds every subscription matching an event among very
//! many without testing each one.
//!
//! Pure computation: no async, no I/O. The store (queries), the hub
//! (subscriptions), security rules and live queries all use it. The language is
//! documented for users in `docs/filters.md`.
//!
//! ```
//! use herald_filter::{Filter, Limits, SubIndex};
//! use serde_json::json;
//! use std::sync::Arc;
//!
//! let limits = Limits::default();
//! let mut index = SubIndex::new();
//! index.insert(1_u64, Arc::new(Filter::from_json(&json!({"tenant": "t1", "amount": {"$gt": 10}}), &limits)?));
//! index.insert(2, Arc::new(Filter::from_sql("tenant = 't2'", &[], &limits)?));
//! let mut out = Vec::new();
//! index.matches(&json!({"tenant": "t1", "amount": 12}), &mut out);
//! assert_eq!(out, [1]);
//! # Ok::<(), herald_filter::FilterError>(())
//! ```
//!
//! # Layout
//!
//! - `filter.rs` — [`Filter`], the compiled filter everyone holds.
//! - `parse.rs` — JSON filter → tree: operator shapes, limits, regex compilation.
//! - `sql.rs` — SQL `WHERE` → the same tree, through the same compiler.
//! - `eval.rs` — the closed tree (`Node`, `Pred`) and its evaluation.
//! - `path.rs` — dotted paths and MongoDB's walk through nested objects and arrays.
//! - `value.rs` — type brackets, numbers by value, the total order of JSON values.
//! - `keymap.rs` — scalar-keyed hash map looked up by `&Value` (for `$in` and the index).
//! - `index.rs` — [`SubIndex`]: subscriptions indexed by an anchor predicate each.
//! - `conj.rs` — the exact part of the index, keyed on a filter's equalities.
//! - `changed.rs` — [`ChangedFields`], restricting updates to touched fields.
//! - `limits.rs`, `error.rs` — [`Limits`] and [`FilterError`].

mod changed;
mod conj;
mod error;
mod eval;
mod filter;
mod index;
mod keymap;
mod limits;
mod parse;
mod path;
mod sql;
mod value;

pub use changed::ChangedFields;
pub use error::{ErrorKind, FilterError};
pub use filter::Filter;
pub use index::SubIndex;
pub use limits::Limits;
