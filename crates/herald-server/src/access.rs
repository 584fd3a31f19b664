//! Authorization of table access: permissions, row-level rules and hidden
//! fields (`[tables.<name>]`), turned into what each read and write needs.
//!
//! A read rule is instantiated with the caller's claims and compiled once
//! per subscription, query or replay ([`ReadGrant`]), then joined to its
//! filter: the index and the scans do the rest, so a rule costs nothing per
//! event beyond the filter. A write rule becomes a [`RowGuard`] the store
//! checks as it applies the write, so no concurrent write can slip between
//! the check and the change.

use crate::auth::Principal;
use crate::config::TableRules;
use crate::error::ApiError;
use herald_auth::{Action, RowRule};
use herald_core::{HiddenFields, View};
use herald_filter::{Filter, Limits};
use herald_store::{RowGuard, TableName, WriteOp};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// One table's compiled `[tables.<name>]`.
#[derive(Debug)]
struct Rules {
    read: Option<RowRule>,
    write: Option<RowRule>,
    hidden: Arc<HiddenFields>,
}

/// Every table's rules.
#[derive(Debug, Default)]
pub(crate) struct Access {
    tables: HashMap<String, Rules>,
    limits: Limits,
}

/// What one caller may read of one table: the rule joined to its filters,
/// and the view its documents are shown through.
#[derive(Debug, Clone, Default)]
pub(crate) struct ReadGrant {
    rule: Option<Arc<Filter>>,
    view: View,
}

impl ReadGrant {
    /// `filter`, restricted to the rows the caller may read.
    pub(crate) fn restrict(&self, filter: Filter) -> Filter {
        match &self.rule {
            Some(rule) => filter.and(Filter::clone(rule)),
            None => filter,
        }
    }

    /// Whether the caller may read the stored document `json` (parsed only
    /// when a rule applies).
    pub(crate) fn admits(&self, json: &[u8]) -> bool {
        self.rule.as_ref().is_none_or(|rule| {
            serde_json::from_slice(json).is_ok_and(|doc: Value| rule.matches(&doc))
        })
    }

    /// How documents and events are shown to the caller.
    pub(crate) fn view(&self) -> &View {
        &self.view
    }
}

impl Access {
    /// Compiles `[tables.*]`, checking names and rules.
    pub(crate) fn new(
        tables: &BTreeMap<String, TableRules>,
        limits: &Limits,
    ) -> Result<Access, String> {
        let mut compiled = HashMap::new();
        for (name, rules) in tables {
            TableName::new(name.as_str()).map_err(|e| format!("[tables.{name}]: {e}"))?;
            let rule = |which: &str, template: &Option<Value>| {
                template
                    .clone()
                    .map(|t| {
                        let rule =
                            RowRule::new(t).map_err(|e| format!("tables.{name}.{which}: {e}"))?;
                        // A rule must compile once its claims are filled in;
                        // check with placeholder claims now, not at the first
                        // request.
                        Filter::from_json(&rule.with_placeholders(), limits)
                            .map_err(|e| format!("tables.{name}.{which}: {e}"))?;
                        Ok::<_, String>(rule)
                    })
                    .transpose()
            };
            compiled.insert(
                name.clone(),
                Rules {
                    read: rule("read", &rules.read)?,
                    write: rule("write", &rules.write)?,
                    hidden: Arc::new(HiddenFields::new(&rules.hidden)),
                },
            );
        }
        Ok(Access {
            tables: compiled,
            limits: limits.clone(),
        })
    }

    /// `read:<table>`, and the caller's grant on it.
    pub(crate) fn read(&self, who: &Principal, table: &str) -> Result<ReadGrant, ApiError> {
        who.require(Action::Read, table)?;
        let Some(rules) = self.tables.get(table).filter(|_| who.bound_by_rules()) else {
            return Ok(ReadGrant::default());
        };
        let rule = rules
            .read
            .as_ref()
            .map(|rule| self.compile(who, table, "read", rule).map(Arc::new))
            .transpose()?;
        let hidden = if who.may(Action::ReadHidden, table) {
            Arc::default()
        } else {
            rules.hidden.clone()
        };
        Ok(ReadGrant {
            view: View::new(hidden, rule.clone()),
            rule,
        })
    }

    /// `forbidden` if `filter` reads a field hidden from the caller (it
    /// could probe the field's values).
    pub(crate) fn check_filter(&self, grant: &ReadGrant, filter: &Filter) -> Result<(), ApiError> {
        let hidden = grant.view.hidden();
        match filter.fields().into_iter().find(|f| hidden.overlaps(f)) {
            Some(field) => Err(ApiError::forbidden(format!(
                "the filter reads {field:?}, a field hidden from you"
            ))),
            None => Ok(()),
        }
    }

    /// Reading every table at once (`table:*`, replay of everything):
    /// `read:*`, and no table's rules or hidden fields may bind the caller
    /// (they are per table).
    pub(crate) fn read_all(&self, who: &Principal) -> Result<(), ApiError> {
        if !who.permissions.allows_every(Action::Read) {
            return Err(ApiError::forbidden(
                "reading every table needs the permission read:*",
            ));
        }
        if who.bound_by_rules() && !self.tables.is_empty() {
            return Err(ApiError::forbidden(
                "tables have row-level rules or hidden fields: subscribe to (or replay) one table at a time",
            ));
        }
        Ok(())
    }

    /// `write:<table>`, and `op` guarded by the table's write rule.
    pub(crate) fn write(&self, who: &Principal, op: WriteOp) -> Result<WriteOp, ApiError> {
        let Some(table) = op.table() else {
            return Ok(op);
        };
        who.require(Action::Write, table.as_str())?;
        let Some(rule) = self
            .tables
            .get(table.as_str())
            .filter(|_| who.bound_by_rules())
            .and_then(|rules| rules.write.as_ref())
        else {
            return Ok(op);
        };
        let filter = self.compile(who, table.as_str(), "write", rule)?;
        let fields = filter.fields();
        Ok(op.guarded(RowGuard::new(move |row| {
            filter.matches(row) && fields.iter().all(|f| plain_at(row, f))
        })))
    }

    /// A rule instantiated with the caller's claims, compiled.
    fn compile(
        &self,
        who: &Principal,
        table: &str,
        which: &str,
        rule: &RowRule,
    ) -> Result<Filter, ApiError> {
        // An anonymous caller has no `sub`: a rule on it admits nothing.
        let Some(sub) = who.sub() else {
            return Err(ApiError::forbidden(format!(
                "the {which} rule of table {table:?} applies to authenticated users; sign in"
            )));
        };
        let filter = rule.instantiate(sub, &who.claims).map_err(|e| {
            ApiError::forbidden(format!(
                "the {which} rule of table {table:?} needs a claim your token lacks: {}",
                e.message
            ))
        })?;
        Filter::from_json(&filter, &self.limits).map_err(|e| {
            ApiError::forbidden(format!(
                "the {which} rule of table {table:?} does not compile with your claims: {e}"
            ))
        })
    }
}

/// Whether the dotted `path` in `row` reaches no array. A write rule's
/// fields must hold plain values in rows a user writes: equality matches an
/// array's elements, so `{"owner": ["alice", "bob"]}` would pass alice's
/// rule `{"owner": "alice"}` and put the row in bob's hands too.
fn plain_at(row: &Value, path: &str) -> bool {
    let mut at = row;
    for segment in path.split('.') {
        match at {
            Value::Array(_) => return false,
            Value::Object(fields) => match fields.get(segment) {
                Some(next) => at = next,
                None => return true,
            },
            _ => return true,
        }
    }
    !at.is_array()
}
