//! A `subscribe` request — a WebSocket message, or an SSE query made into
//! one — validated and compiled into a hub subscription.

use crate::access::{Access, ReadGrant};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::query::DocFilter;
use herald_auth::Action;
use herald_core::{Selection, SubscriptionSpec, Topic};
use herald_filter::{ChangedFields, Filter, Limits};
use herald_proto::{ErrorCode, Op, StartFrom, Subscribe, Update};
use serde_json::Value;
use std::sync::Arc;

/// Longest subscription id, in bytes.
const MAX_ID_BYTES: usize = 128;
/// Most fields in a `changed` restriction.
const MAX_CHANGED: usize = 64;

/// What `who` may read of `topic`: `read:<table or channel>` (`read:*`
/// and no binding rules for every table), and for a table its grant.
pub(crate) fn grant(
    access: &Access,
    who: &Principal,
    topic: &Topic,
) -> Result<ReadGrant, ApiError> {
    match topic {
        Topic::AllTables => access.read_all(who).map(|()| ReadGrant::default()),
        Topic::Table(table) => access.read(who, table.as_str()),
        Topic::Channel(channel) => who
            .require(Action::Read, channel.as_str())
            .map(|()| ReadGrant::default()),
    }
}

/// Validates and compiles `request` for `who`: its filter restricted to
/// the rows `who` may read, its events shown through `who`'s view.
pub(crate) fn compile(
    request: Subscribe,
    limits: &Limits,
    access: &Access,
    who: &Principal,
) -> Result<SubscriptionSpec, ApiError> {
    let invalid = |message: String| ApiError::new(ErrorCode::InvalidParameter, message);
    if request.id.is_empty()
        || request.id.len() > MAX_ID_BYTES
        || request.id.chars().any(char::is_control)
    {
        return Err(invalid(format!(
            "a subscription id is 1 to {MAX_ID_BYTES} bytes without control characters"
        )));
    }
    let topic = match (&request.table, &request.channel) {
        (Some(t), None) if t == "*" => Topic::AllTables,
        (Some(t), None) => Topic::table(t)?,
        (None, Some(c)) => Topic::channel(c)?,
        _ => {
            return Err(invalid(
                "give exactly one of `table` (a name, or \"*\" for every table) and `channel`"
                    .into(),
            ));
        }
    };
    if request.snapshot && request.from.is_some() {
        return Err(invalid(
            "give `snapshot` or `from`, not both: a snapshot starts at its own offset".into(),
        ));
    }
    let grant = grant(access, who, &topic)?;
    // `member_*` events show who is in a room: `presence:` on it.
    let sees_presence =
        matches!(&topic, Topic::Channel(c) if who.may(Action::Presence, c.as_str()));
    let selection = selection(
        request.ops,
        request.filter,
        request.where_clause,
        request.params,
        request.changed,
        limits,
    )?
    .restrict(access, &grant)?;
    Ok(SubscriptionSpec {
        id: request.id,
        topic,
        ops: selection.ops,
        filter: selection.filter,
        filter_source: selection.filter_source,
        changed: selection.changed,
        from: request.from.unwrap_or(StartFrom::Now),
        snapshot: request.snapshot,
        on_lag: request.on_lag.unwrap_or_default(),
        view: grant.view().clone(),
        announce: herald_core::Announce::Subscribed,
        sees_presence,
    })
}

/// Validates and compiles an `update` request's new selection, for a
/// subscription to `topic` held by `who`.
pub(crate) fn compile_update(
    request: Update,
    limits: &Limits,
    access: &Access,
    who: &Principal,
    topic: &Topic,
) -> Result<Selection, ApiError> {
    let grant = grant(access, who, topic)?;
    selection(
        request.ops,
        request.filter,
        request.where_clause,
        request.params,
        request.changed,
        limits,
    )?
    .restrict(access, &grant)
}

/// Restricting a selection to what a caller may read.
trait Restrict: Sized {
    fn restrict(self, access: &Access, grant: &ReadGrant) -> Result<Self, ApiError>;
}

impl Restrict for Selection {
    fn restrict(self, access: &Access, grant: &ReadGrant) -> Result<Selection, ApiError> {
        access.check_filter(grant, &self.filter)?;
        if let Some(changed) = &self.changed
            && let Some(field) = changed
                .fields()
                .iter()
                .find(|f| grant.view().hidden().overlaps(f))
        {
            return Err(ApiError::forbidden(format!(
                "`changed` names {field:?}, a field hidden from you"
            )));
        }
        let filter = Arc::new(grant.restrict(Filter::clone(&self.filter)));
        Ok(Selection { filter, ..self })
    }
}

/// Operations, filter (JSON and/or SQL) and changed fields, as `subscribe`
/// and `update` give them.
fn selection(
    ops: Option<Vec<Op>>,
    filter: Option<Value>,
    where_clause: Option<String>,
    params: Option<Vec<Value>>,
    changed: Option<Vec<String>>,
    limits: &Limits,
) -> Result<Selection, ApiError> {
    let invalid = |message: String| ApiError::new(ErrorCode::InvalidParameter, message);
    let compiled = DocFilter::compile(
        filter.as_ref(),
        where_clause.as_deref(),
        params.as_deref().unwrap_or_default(),
        limits,
    )?;
    let changed = match changed {
        None => None,
        Some(fields) => {
            if fields.is_empty()
                || fields.len() > MAX_CHANGED
                || fields.iter().any(|f| f.is_empty() || f.len() > 256)
            {
                return Err(invalid(format!(
                    "`changed` lists 1 to {MAX_CHANGED} non-empty field paths"
                )));
            }
            Some(ChangedFields::new(fields))
        }
    };
    if matches!(ops.as_deref(), Some([])) {
        return Err(invalid(
            "`ops` lists at least one of insert, update, delete, publish".into(),
        ));
    }
    let filter_source = match (filter, where_clause) {
        (Some(f), None) => Some(f),
        (None, Some(w)) => Some(Value::String(w)),
        (None, None) => None,
        // Both given (both must match): list them together.
        (Some(f), Some(w)) => Some(serde_json::json!({"filter": f, "where": w})),
    };
    Ok(Selection {
        ops,
        filter: Arc::new(compiled.into_filter()),
        filter_source,
        changed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn request(v: Value) -> Subscribe {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn bad_requests_get_precise_codes() {
        let limits = Limits::default();
        let access = Access::default();
        let admin = Principal {
            who: crate::auth::Who::Anonymous,
            permissions: herald_auth::Permissions::all(),
            claims: serde_json::Map::new(),
            expires_at: None,
        };
        let cases = [
            (json!({"id": "", "table": "t"}), ErrorCode::InvalidParameter),
            (json!({"id": "a"}), ErrorCode::InvalidParameter),
            (
                json!({"id": "a", "table": "t", "channel": "c"}),
                ErrorCode::InvalidParameter,
            ),
            (
                json!({"id": "a", "table": "no-dash"}),
                ErrorCode::InvalidTable,
            ),
            (
                json!({"id": "a", "channel": "table:x"}),
                ErrorCode::InvalidChannel,
            ),
            (
                json!({"id": "a", "table": "t", "filter": {"$bad": 1}}),
                ErrorCode::InvalidFilter,
            ),
            (
                json!({"id": "a", "table": "t", "snapshot": true, "from": "now"}),
                ErrorCode::InvalidParameter,
            ),
            (
                json!({"id": "a", "table": "t", "changed": []}),
                ErrorCode::InvalidParameter,
            ),
            (
                json!({"id": "a", "table": "t", "ops": []}),
                ErrorCode::InvalidParameter,
            ),
        ];
        for (body, code) in cases {
            let err = compile(request(body.clone()), &limits, &access, &admin).unwrap_err();
            assert_eq!(err.code, code, "{body}: {}", err.message);
        }
        let ok = compile(
            request(json!({"id": "a", "table": "*", "where": "n > $1", "params": [1]})),
            &limits,
            &access,
            &admin,
        )
        .unwrap();
        assert_eq!(ok.topic, Topic::AllTables);
        assert!(ok.filter.matches(&json!({"n": 2})));
    }
}
