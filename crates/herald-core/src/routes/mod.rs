//! Change routing: a table's changes republished to channels named from a
//! template over the document (`posts` → `category:{category}`,
//! `notifications` → `user:{user_id}`).
//!
//! Rules come from the configuration (`[routes.<name>]`) and from the admin
//! API; the latter are stored (store setting `("route", <name>)`) and come
//! back after a restart. The compiled rules are installed in the store as
//! its [`Router`]: the committer appends each routed message right after
//! its change, in the same atomic write, so a routed message exists exactly
//! when its change does — no loss and no duplicate across crashes.
//!
//! What a change becomes, in the channel rendered from its document:
//!
//! | change | channel | message `data` |
//! |---|---|---|
//! | insert | from the new document | `{op:"insert", table, id, version, doc}` |
//! | update | from the new document | `{op:"update", table, id, version, doc, changed}` |
//! | update that moves it | from the old document | `{op:"moved", table, id, version}` |
//! | delete | from the old document | `{op:"delete", table, id, version}` |
//!
//! A document whose template cannot be rendered (a field missing, `null`,
//! not a string, number or boolean, or a result that is no valid channel
//! name) is not routed; `herald_route_skipped_total` counts those. The
//! table's hidden fields (`[tables.<name>] hidden`) are removed from routed
//! documents. Routed messages are published with `from: "route:<name>"`.

mod template;

pub use template::Template;

use crate::blocking;
use crate::hub::HubError;
use crate::namespace::Namespaces;
use crate::view::HiddenFields;
use herald_proto::{ErrorCode, EventBody, Op, Version};
use herald_store::{Derived, Router, Store, StoreError, TableName};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// The store setting kind of stored rules.
const KIND: &str = "route";
/// Counter: changes a rule could not route (its template did not render).
pub const ROUTE_SKIPPED_TOTAL: &str = "herald_route_skipped_total";
/// Most rules.
const MAX_RULES: usize = 1000;

/// One routing rule (`[routes.<name>]`, `PUT /v1/admin/routes/{name}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteRule {
    /// The table whose changes are routed.
    pub table: String,
    /// The channel template, e.g. `"category:{category}"`.
    pub channel: String,
    /// Which changes are routed (default: insert, update and delete).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<Vec<Op>>,
}

/// A rule as listings show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteInfo {
    /// Its name.
    pub name: String,
    /// The rule.
    #[serde(flatten)]
    pub rule: RouteRule,
    /// `config` (from `herald.toml`, read-only here) or `api` (stored).
    pub source: &'static str,
    /// Why a stored rule is not applied (the configuration changed since it
    /// was stored); replace or delete it. Absent for rules in force.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// A rule, checked and compiled.
#[derive(Debug)]
struct Compiled {
    /// `route:<name>`, the `from` of its messages.
    from: String,
    template: Template,
    inserts: bool,
    updates: bool,
    deletes: bool,
}

/// What the router needs: compiled rules by table, and the fields to hide.
#[derive(Debug, Default)]
struct Table {
    rules: HashMap<String, Vec<Compiled>>,
    hidden: HashMap<String, Arc<HiddenFields>>,
}

impl Table {
    fn derive(&self, change: &EventBody, out: &mut Vec<Derived>) {
        let (table, id, version) = match change {
            EventBody::Insert {
                table, id, version, ..
            }
            | EventBody::Update {
                table, id, version, ..
            }
            | EventBody::Delete {
                table, id, version, ..
            } => (table, id, *version),
            EventBody::Publish { .. } => return,
        };
        let Some(rules) = self.rules.get(table.as_str()) else {
            return;
        };
        let hidden = self.hidden.get(table.as_str());
        for rule in rules {
            let mut push = |target: Option<herald_store::ChannelName>, data: Value| match target {
                Some(channel) => out.push(Derived {
                    channel,
                    data,
                    from: Some(rule.from.clone()),
                }),
                None => metrics::counter!(ROUTE_SKIPPED_TOTAL).increment(1),
            };
            match change {
                EventBody::Insert { doc, .. } if rule.inserts => {
                    let data = changed(Op::Insert, table, id, version, doc, None, hidden);
                    push(rule.template.render(doc), data);
                }
                EventBody::Update {
                    doc,
                    old,
                    changed: fields,
                    ..
                } if rule.updates => {
                    let to = rule.template.render(doc);
                    // Withheld `old` (a view) never reaches the committer;
                    // `Null` here means no previous version to compare.
                    let from = if old.is_null() {
                        None
                    } else {
                        rule.template.render(old)
                    };
                    if let Some(from) = from.filter(|f| Some(f) != to.as_ref()) {
                        push(Some(from), header("moved", table, id, version));
                    }
                    let data = changed(Op::Update, table, id, version, doc, Some(fields), hidden);
                    push(to, data);
                }
                EventBody::Delete { old, .. } if rule.deletes => {
                    push(
                        rule.template.render(old),
                        header("delete", table, id, version),
                    );
                }
                _ => {}
            }
        }
    }
}

fn header(op: &str, table: &str, id: &str, version: Version) -> Value {
    json!({"op": op, "table": table, "id": id, "version": version})
}

fn changed(
    op: Op,
    table: &str,
    id: &str,
    version: Version,
    doc: &Value,
    fields: Option<&Vec<String>>,
    hidden: Option<&Arc<HiddenFields>>,
) -> Value {
    let mut data = header(op.as_str(), table, id, version);
    let mut doc = doc.clone();
    let mut fields = fields.cloned();
    if let Some(hidden) = hidden {
        hidden.strip(&mut doc);
        if let Some(f) = &mut fields {
            f.retain(|name| !hidden.overlaps(name));
        }
    }
    data["doc"] = doc;
    if let Some(fields) = fields {
        data["changed"] = json!(fields);
    }
    data
}

/// The rules of a server: from the configuration (fixed) and from the admin
/// API (stored). Cheap to clone.
#[derive(Debug, Clone)]
pub struct RouteSet {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<Store>,
    namespaces: Arc<Namespaces>,
    hidden: HashMap<String, Arc<HiddenFields>>,
    config: BTreeMap<String, RouteRule>,
    /// The stored rules. Lock: guards the map and the router installation
    /// together (so the installed router is always the map's); held across
    /// the blocking store write of a change, never across an `.await`.
    api: Mutex<BTreeMap<String, RouteRule>>,
}

impl RouteSet {
    /// Checks the configured rules, loads the stored ones and installs the
    /// router. `hidden` are the tables' hidden fields.
    pub fn start(
        herald: &crate::Herald,
        namespaces: Arc<Namespaces>,
        config: BTreeMap<String, RouteRule>,
        hidden: HashMap<String, Arc<HiddenFields>>,
    ) -> Result<RouteSet, String> {
        for (name, rule) in &config {
            check_name(name)
                .and_then(|()| compile(&namespaces, &hidden, name, rule))
                .map_err(|e| format!("[routes.{name}]: {}", e.message))?;
        }
        let store = herald.store.clone();
        let mut api = BTreeMap::new();
        for (name, bytes) in store.settings(KIND).map_err(|e| e.to_string())? {
            let rule: RouteRule = serde_json::from_slice(&bytes)
                .map_err(|e| format!("stored route {name:?}: {e}"))?;
            // A stored rule the configuration now refuses (its namespace
            // lost its history, a configured rule took its name) is kept,
            // listed with its problem, and not applied.
            if let Some(problem) = problem(&namespaces, &hidden, &config, &name, &rule) {
                tracing::warn!(route = %name, %problem, "stored route not applied");
            }
            api.insert(name, rule);
        }
        let set = RouteSet {
            inner: Arc::new(Inner {
                store,
                namespaces,
                hidden,
                config,
                api: Mutex::new(BTreeMap::new()),
            }),
        };
        let mut guard = set.lock();
        *guard = api;
        set.install(&guard);
        drop(guard);
        Ok(set)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, RouteRule>> {
        self.inner
            .api
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Compiles every rule into a router and gives it to the store.
    fn install(&self, api: &BTreeMap<String, RouteRule>) {
        let mut table = Table {
            rules: HashMap::new(),
            hidden: self.inner.hidden.clone(),
        };
        let stored = api
            .iter()
            .filter(|(name, _)| !self.inner.config.contains_key(*name));
        for (name, rule) in self.inner.config.iter().chain(stored) {
            if let Ok(compiled) = compile(&self.inner.namespaces, &self.inner.hidden, name, rule) {
                table
                    .rules
                    .entry(rule.table.clone())
                    .or_default()
                    .push(compiled);
            }
        }
        let router = (!table.rules.is_empty()).then(|| {
            let table = Arc::new(table);
            Router::new(move |change, out| table.derive(change, out))
        });
        self.inner.store.set_router(router);
    }

    /// Every rule, by name.
    #[must_use]
    pub fn list(&self) -> Vec<RouteInfo> {
        let api = self.lock();
        let inner = &self.inner;
        let mut all: Vec<RouteInfo> = inner
            .config
            .iter()
            .map(|(name, rule)| RouteInfo {
                name: name.clone(),
                rule: rule.clone(),
                source: "config",
                problem: None,
            })
            .chain(api.iter().map(|(name, rule)| RouteInfo {
                name: name.clone(),
                rule: rule.clone(),
                source: "api",
                problem: problem(&inner.namespaces, &inner.hidden, &inner.config, name, rule),
            }))
            .collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Adds or replaces the stored rule `name`; it applies to changes
    /// committed from now on.
    pub async fn put(&self, name: &str, rule: RouteRule) -> Result<RouteInfo, HubError> {
        check_name(name)?;
        if self.inner.config.contains_key(name) {
            return Err(in_config(name));
        }
        compile(&self.inner.namespaces, &self.inner.hidden, name, &rule)?;
        let set = self.clone();
        let (name, stored) = (name.to_owned(), rule.clone());
        blocking(move || {
            let mut api = set.lock();
            if !api.contains_key(&name) && api.len() + set.inner.config.len() >= MAX_RULES {
                return Ok(Err(HubError::new(
                    ErrorCode::InvalidParameter,
                    format!("there are already {MAX_RULES} routes"),
                )));
            }
            let bytes = serde_json::to_vec(&stored).expect("rules serialize");
            set.inner.store.put_setting(KIND, &name, &bytes)?;
            api.insert(name.clone(), stored.clone());
            set.install(&api);
            Ok::<_, StoreError>(Ok(RouteInfo {
                name,
                rule: stored,
                source: "api",
                problem: None,
            }))
        })
        .await?
    }

    /// Removes the stored rule `name`; whether it existed. A configured
    /// rule is refused unless a stored one of that name shadows it.
    pub async fn delete(&self, name: &str) -> Result<bool, HubError> {
        if self.inner.config.contains_key(name) && !self.lock().contains_key(name) {
            return Err(in_config(name));
        }
        let set = self.clone();
        let name = name.to_owned();
        Ok(blocking(move || {
            let mut api = set.lock();
            if api.remove(&name).is_none() {
                return Ok(false);
            }
            set.inner.store.delete_setting(KIND, &name)?;
            set.install(&api);
            Ok::<_, StoreError>(true)
        })
        .await?)
    }
}

fn check_name(name: &str) -> Result<(), HubError> {
    if name.is_empty()
        || name.len() > 64
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(HubError::new(
            ErrorCode::InvalidParameter,
            format!("route name {name:?}: 1 to 64 letters, digits, _ and -"),
        ));
    }
    Ok(())
}

fn in_config(name: &str) -> HubError {
    HubError::new(
        ErrorCode::AlreadyExists,
        format!("route {name:?} is defined in the configuration file; change it there"),
    )
}

/// Why a stored rule is not applied, if it is not.
fn problem(
    namespaces: &Namespaces,
    hidden: &HashMap<String, Arc<HiddenFields>>,
    config: &BTreeMap<String, RouteRule>,
    name: &str,
    rule: &RouteRule,
) -> Option<String> {
    if config.contains_key(name) {
        return Some("a route of the configuration file has this name".to_owned());
    }
    compile(namespaces, hidden, name, rule)
        .err()
        .map(|e| e.message)
}

/// Checks a rule: its table name, its template (whose fields must not be
/// hidden fields of the table: the channel name would show them), and that
/// the template's namespace keeps history (routed messages are written to
/// the log).
fn compile(
    namespaces: &Namespaces,
    hidden: &HashMap<String, Arc<HiddenFields>>,
    name: &str,
    rule: &RouteRule,
) -> Result<Compiled, HubError> {
    let invalid = |m: String| HubError::new(ErrorCode::InvalidParameter, m);
    TableName::new(rule.table.as_str()).map_err(HubError::from)?;
    let template = Template::parse(&rule.channel).map_err(invalid)?;
    if let Some(hidden) = hidden.get(&rule.table)
        && let Some(field) = template.fields().find(|f| hidden.overlaps(f))
    {
        return Err(invalid(format!(
            "route {name:?}: the template names {field:?}, a hidden field of table {:?}",
            rule.table
        )));
    }
    let sample = match template.namespace() {
        Some(ns) => format!("{ns}:x"),
        None => "x".to_owned(),
    };
    if !namespaces.of(&sample).history {
        return Err(invalid(format!(
            "route {name:?}: namespace {:?} keeps no history, and routed messages are written to \
             the log with their change",
            template.namespace().unwrap_or("*")
        )));
    }
    let ops = rule.ops.as_deref();
    if ops.is_some_and(|ops| ops.is_empty() || ops.contains(&Op::Publish)) {
        return Err(invalid(format!(
            "route {name:?}: `ops` lists at least one of insert, update and delete"
        )));
    }
    let takes = |op| ops.is_none_or(|ops| ops.contains(&op));
    Ok(Compiled {
        from: format!("route:{name}"),
        template,
        inserts: takes(Op::Insert),
        updates: takes(Op::Update),
        deletes: takes(Op::Delete),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(table: &str, channel: &str) -> RouteRule {
        RouteRule {
            table: table.into(),
            channel: channel.into(),
            ops: None,
        }
    }

    fn derive(table: &Table, change: &EventBody) -> Vec<(String, Value)> {
        let mut out = Vec::new();
        table.derive(change, &mut out);
        out.into_iter()
            .map(|d| (d.channel.as_str().to_owned(), d.data))
            .collect()
    }

    #[test]
    fn changes_route_to_the_rendered_channels() {
        let ns = Namespaces::default();
        let mut table = Table::default();
        table.rules.insert(
            "posts".into(),
            vec![
                compile(
                    &ns,
                    &HashMap::new(),
                    "cat",
                    &rule("posts", "category:{category}"),
                )
                .unwrap(),
            ],
        );
        table
            .hidden
            .insert("posts".into(), Arc::new(HiddenFields::new(["secret"])));
        let insert = EventBody::Insert {
            table: "posts".into(),
            id: "p".into(),
            version: Version(1),
            doc: json!({"id": "p", "category": "tech", "secret": 1}),
            changed: vec![],
        };
        let routed = derive(&table, &insert);
        assert_eq!(routed.len(), 1);
        assert_eq!(routed[0].0, "category:tech");
        assert_eq!(
            routed[0].1,
            json!({"op": "insert", "table": "posts", "id": "p", "version": 1, "doc": {"id": "p", "category": "tech"}})
        );
        let moved = EventBody::Update {
            table: "posts".into(),
            id: "p".into(),
            version: Version(2),
            doc: json!({"id": "p", "category": "news"}),
            old: json!({"id": "p", "category": "tech"}),
            changed: vec!["category".into(), "secret".into()],
        };
        let routed = derive(&table, &moved);
        assert_eq!(routed[0].0, "category:tech");
        assert_eq!(routed[0].1["op"], "moved");
        assert!(
            routed[0].1.get("doc").is_none(),
            "the old channel does not see the new document"
        );
        assert_eq!(routed[1].0, "category:news");
        assert_eq!(routed[1].1["changed"], json!(["category"]));
        // Missing field: nothing routed.
        let orphan = EventBody::Delete {
            table: "posts".into(),
            id: "q".into(),
            version: Version(3),
            old: json!({"id": "q"}),
            changed: vec![],
        };
        assert!(derive(&table, &orphan).is_empty());
        let other = EventBody::Insert {
            table: "users".into(),
            id: "u".into(),
            version: Version(1),
            doc: json!({"category": "tech"}),
            changed: vec![],
        };
        assert!(derive(&table, &other).is_empty());
    }

    #[test]
    fn rules_are_checked() {
        let mut config = BTreeMap::new();
        config.insert(
            "typing".to_owned(),
            crate::namespace::Namespace {
                history: false,
                ..Default::default()
            },
        );
        let ns = Namespaces::new(&config, std::time::Duration::from_secs(1)).unwrap();
        let mut hidden = HashMap::new();
        hidden.insert(
            "t".to_owned(),
            Arc::new(HiddenFields::new(["owner.secret"])),
        );
        let err = |r: RouteRule| compile(&ns, &hidden, "r", &r).unwrap_err();
        assert_eq!(
            err(rule("bad-table", "c:{x}")).code,
            ErrorCode::InvalidTable
        );
        assert!(err(rule("t", "{x}:y")).message.contains("literal"));
        assert!(err(rule("t", "typing:{x}")).message.contains("history"));
        let mut publish = rule("t", "c:{x}");
        publish.ops = Some(vec![Op::Publish]);
        assert!(err(publish).message.contains("ops"));
        assert!(
            err(rule("t", "c:{owner.secret}"))
                .message
                .contains("hidden")
        );
        assert!(err(rule("t", "c:{owner}")).message.contains("hidden"));
        assert!(compile(&ns, &hidden, "r", &rule("t", "c:{x}")).is_ok());
        assert!(check_name("ok_name-1").is_ok());
        assert!(check_name("no spaces").is_err());
    }
}
