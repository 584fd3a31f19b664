//! Row-level security as a property: whatever the users, their filters and
//! the writes, every read path shows each user exactly its own rows, never
//! a hidden field, and never the previous version of a row that was
//! someone else's.
//!
//! Each case starts a real server with `[tables.docs]` rules
//! (`read = write = {"owner": "$auth.sub"}`, `hidden = ["secret"]`) and HS256
//! tokens, opens a live WebSocket subscription and an SSE stream per user
//! (some with a filter `{"n": {"$gte": k}}`), then runs random inserts,
//! puts, patches and deletes — most by an admin, some by users, whose
//! outcome (success, `forbidden`, `not_found`, `already_exists`) a model
//! predicts. The admin's replay of the table is the ground truth; from it
//! the model derives what each user must see:
//! - live (WebSocket and SSE), history (`from: 0`) and replay: exactly the
//!   events whose subject (the new document, or the deleted one) is the
//!   user's and matches its filter, each as the user's view renders it;
//! - query and snapshot: exactly the final documents the user owns (that
//!   match its filter); read-one: those, and `not_found` for every other id.
//!
//! Completeness is awaited deterministically: after the random writes the
//! admin inserts one sentinel row per user, and a user's live streams are
//! read up to their own sentinel (events reach a connection in log order).

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use proptest::prelude::*;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{Server, Sse, Ws};

/// The HS256 secret tokens are signed with (at least 32 bytes).
const SECRET: &str = "rules-test-shared-secret-of-at-least-32-bytes";
/// Document ids are drawn from `d0`..`d5`, so writes collide.
const IDS: usize = 6;
/// A whole case (server start to stop) must end within this.
const CASE_TIMEOUT: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------

/// Whose a row is.
#[derive(Debug, Clone, Copy)]
enum Owner {
    /// User `u<i>`.
    User(usize),
    /// An owner that is no user.
    Nobody,
    /// No `owner` field at all.
    Missing,
}

/// One write, as sent.
#[derive(Debug, Clone)]
enum Change {
    Insert {
        id: usize,
        owner: Owner,
        n: i64,
    },
    Put {
        id: usize,
        owner: Owner,
        n: i64,
    },
    /// A merge patch: `owner` (`Missing` removes it) and `n` when set, and
    /// a new `secret` when `secret`.
    Patch {
        id: usize,
        owner: Option<Owner>,
        n: Option<i64>,
        secret: bool,
    },
    Delete {
        id: usize,
    },
}

/// Who writes.
#[derive(Debug, Clone, Copy)]
enum Actor {
    Admin,
    User(usize),
}

/// One user's reading: its subscription filter, its permissions.
#[derive(Debug, Clone)]
struct Reader {
    /// Subscribes (and queries, replays) with `{"n": {"$gte": k}}`.
    min_n: Option<i64>,
    /// Holds `read_hidden:docs`.
    sees_hidden: bool,
}

#[derive(Debug, Clone)]
struct Scenario {
    readers: Vec<Reader>,
    writes: Vec<(Actor, Change)>,
    /// No recent window: history is read from the log, not from memory.
    from_log: bool,
    /// Hub shards. With one, every connection shares the shard's cache of
    /// rendered frames.
    shards: usize,
}

fn scenario() -> impl Strategy<Value = Scenario> {
    (2usize..=4).prop_flat_map(|users| {
        let reader = (
            proptest::option::weighted(0.5, 0i64..10),
            proptest::bool::weighted(0.25),
        )
            .prop_map(|(min_n, sees_hidden)| Reader { min_n, sees_hidden });
        let owner = prop_oneof![
            6 => (0..users).prop_map(Owner::User),
            1 => Just(Owner::Nobody),
            1 => Just(Owner::Missing),
        ];
        let whole = (0..IDS, owner.clone(), 0i64..10);
        let insert = whole
            .clone()
            .prop_map(|(id, owner, n)| Change::Insert { id, owner, n });
        let put = whole.prop_map(|(id, owner, n)| Change::Put { id, owner, n });
        let patch = (
            0..IDS,
            proptest::option::of(owner),
            proptest::option::of(0i64..10),
            any::<bool>(),
        )
            .prop_map(|(id, owner, n, secret)| Change::Patch {
                id,
                owner,
                n,
                secret,
            });
        let delete = (0..IDS).prop_map(|id| Change::Delete { id });
        let change = prop_oneof![3 => insert, 2 => put, 4 => patch, 1 => delete];
        let actor = prop_oneof![
            3 => Just(Actor::Admin),
            1 => (0..users).prop_map(Actor::User),
        ];
        (
            proptest::collection::vec(reader, users),
            proptest::collection::vec((actor, change), 1..=30),
            any::<bool>(),
            prop_oneof![Just(1usize), Just(2)],
        )
            .prop_map(|(readers, writes, from_log, shards)| Scenario {
                readers,
                writes,
                from_log,
                shards,
            })
    })
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn every_read_path_shows_each_user_exactly_its_own_rows(scenario in scenario()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            tokio::time::timeout(CASE_TIMEOUT, check(scenario))
                .await
                .expect("the case ends in time");
        });
    }
}

// ---------------------------------------------------------------------------
// The model
// ---------------------------------------------------------------------------

fn user_name(i: usize) -> String {
    format!("u{i}")
}

fn doc_id(id: usize) -> String {
    format!("d{id}")
}

fn owner_value(owner: Owner) -> Value {
    match owner {
        Owner::User(i) => json!(user_name(i)),
        Owner::Nobody => json!("nobody"),
        Owner::Missing => Value::Null,
    }
}

/// A whole document (`secret` tells the step that wrote it).
fn document(id: &str, owner: Owner, n: i64, step: usize) -> Value {
    let mut doc = json!({"id": id, "n": n, "secret": format!("s{step}")});
    if !matches!(owner, Owner::Missing) {
        doc["owner"] = owner_value(owner);
    }
    doc
}

/// The request for `change`: method, path and body.
fn request(change: &Change, step: usize) -> (Method, String, Option<Value>) {
    let path = |id: usize| format!("/v1/tables/docs/docs/{}", doc_id(id));
    match *change {
        Change::Insert { id, owner, n } => (
            Method::POST,
            "/v1/tables/docs/docs".to_owned(),
            Some(document(&doc_id(id), owner, n, step)),
        ),
        Change::Put { id, owner, n } => (
            Method::PUT,
            path(id),
            Some(document(&doc_id(id), owner, n, step)),
        ),
        Change::Patch {
            id,
            owner,
            n,
            secret,
        } => {
            let mut patch = json!({});
            if let Some(owner) = owner {
                patch["owner"] = owner_value(owner);
            }
            if let Some(n) = n {
                patch["n"] = json!(n);
            }
            if secret {
                patch["secret"] = json!(format!("s{step}"));
            }
            (Method::PATCH, path(id), Some(patch))
        }
        Change::Delete { id } => (Method::DELETE, path(id), None),
    }
}

fn change_id(change: &Change) -> String {
    match *change {
        Change::Insert { id, .. }
        | Change::Put { id, .. }
        | Change::Patch { id, .. }
        | Change::Delete { id } => doc_id(id),
    }
}

fn owned_by(doc: &Value, user: &str) -> bool {
    doc.get("owner").and_then(Value::as_str) == Some(user)
}

/// What a write does to `current` (the stored row): the row after it
/// (`None`: deleted), or the error code. The store's own errors come first;
/// then a user's write rule: the stored row and the new one must be its own.
fn predict(
    current: Option<&Value>,
    change: &Change,
    body: Option<&Value>,
    actor: Option<&str>,
) -> Result<Option<Value>, &'static str> {
    let after = match (change, current) {
        (Change::Insert { .. }, Some(_)) => return Err("already_exists"),
        (Change::Patch { .. } | Change::Delete { .. }, None) => return Err("not_found"),
        (Change::Insert { .. } | Change::Put { .. }, _) => body.cloned(),
        (Change::Patch { .. }, Some(current)) => {
            let mut doc = current.clone();
            for (field, value) in body.unwrap().as_object().unwrap() {
                match value {
                    Value::Null => doc.as_object_mut().unwrap().remove(field),
                    v => doc
                        .as_object_mut()
                        .unwrap()
                        .insert(field.clone(), v.clone()),
                };
            }
            Some(doc)
        }
        (Change::Delete { .. }, Some(_)) => None,
    };
    if let Some(user) = actor {
        // Another's stored row reads as missing to a patch or delete (its
        // existence is not revealed); a put over it, or a new row that is not
        // the user's, is refused.
        if let Some(current) = current
            && !owned_by(current, user)
        {
            return Err(match change {
                Change::Patch { .. } | Change::Delete { .. } => "not_found",
                _ => "forbidden",
            });
        }
        if after.as_ref().is_some_and(|row| !owned_by(row, user)) {
            return Err("forbidden");
        }
    }
    Ok(after)
}

/// A user of the case.
#[derive(Debug)]
struct User {
    name: String,
    token: String,
    reader: Reader,
}

impl User {
    /// Its filter, if it has one.
    fn filter(&self) -> Option<Value> {
        self.reader.min_n.map(|k| json!({"n": {"$gte": k}}))
    }

    /// Whether its rule and filter select `doc`.
    fn selects(&self, doc: &Value) -> bool {
        owned_by(doc, &self.name)
            && self
                .reader
                .min_n
                .is_none_or(|k| doc["n"].as_i64().is_some_and(|n| n >= k))
    }

    /// `doc` as it is shown to the user.
    fn shown(&self, doc: &Value) -> Value {
        let mut doc = doc.clone();
        if !self.reader.sees_hidden {
            doc.as_object_mut().unwrap().remove("secret");
        }
        doc
    }

    /// The admin's envelope `event` as the user must receive it, if at all
    /// (`filtered`: under its filter too, else under its rule alone).
    fn view(&self, event: &Value, filtered: bool) -> Option<Value> {
        let subject = match event["op"].as_str() {
            Some("delete") => &event["old"],
            _ => &event["doc"],
        };
        let admitted = if filtered {
            self.selects(subject)
        } else {
            owned_by(subject, &self.name)
        };
        if !admitted {
            return None;
        }
        let mut event = event.clone();
        let fields = event.as_object_mut().unwrap();
        // The previous version is shown only if it was the user's too.
        if fields
            .get("old")
            .is_some_and(|old| !owned_by(old, &self.name))
        {
            fields.remove("old");
            fields.remove("changed");
        }
        for key in ["doc", "old"] {
            if let Some(doc) = fields.get(key) {
                let shown = self.shown(doc);
                fields.insert(key.to_owned(), shown);
            }
        }
        if !self.reader.sees_hidden
            && let Some(Value::Array(changed)) = fields.get_mut("changed")
        {
            changed.retain(|f| f != "secret");
        }
        Some(event)
    }

    /// The events of `log` the user must receive.
    fn events(&self, log: &[Value], filtered: bool) -> Vec<Value> {
        log.iter().filter_map(|e| self.view(e, filtered)).collect()
    }

    /// The documents of `state` it must be shown, in id order.
    fn docs(&self, state: &BTreeMap<String, Value>, filtered: bool) -> Vec<Value> {
        state
            .values()
            .filter(|doc| {
                if filtered {
                    self.selects(doc)
                } else {
                    owned_by(doc, &self.name)
                }
            })
            .map(|doc| self.shown(doc))
            .collect()
    }

    /// Fails if `value` (an event or a document received by the user, from
    /// `path`) shows another's row, a hidden field, or another's `old`.
    fn assert_no_leak(&self, path: &str, value: &Value) {
        let rows: Vec<&Value> = match value.get("op") {
            Some(_) => ["doc", "old"]
                .iter()
                .filter_map(|k| value.get(*k))
                .collect(),
            None => vec![value],
        };
        for row in rows {
            assert!(
                owned_by(row, &self.name),
                "{}: {path} showed a row that is not its own: {value}",
                self.name
            );
            assert!(
                self.reader.sees_hidden || row.get("secret").is_none(),
                "{}: {path} showed the hidden field: {value}",
                self.name
            );
        }
        if !self.reader.sees_hidden
            && let Some(changed) = value.get("changed").and_then(Value::as_array)
        {
            assert!(
                !changed.contains(&json!("secret")),
                "{}: {path} named the hidden field in changed: {value}",
                self.name
            );
        }
    }
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

fn config(scenario: &Scenario) -> herald_server::Config {
    let mut config: herald_server::Config = serde_json::from_value(json!({
        "auth": {
            "anonymous": "deny",
            "jwt": {"keys": [{"algorithm": "HS256", "secret": SECRET}]},
        },
        "tables": {
            "docs": {
                "read": {"owner": "$auth.sub"},
                "write": {"owner": "$auth.sub"},
                "hidden": ["secret"],
            },
        },
        // Small snapshot chunks: chunking runs under the rule too.
        "realtime": {"snapshot_chunk_docs": 2},
    }))
    .expect("a valid configuration");
    if scenario.from_log {
        config.realtime.recent_bytes = 1;
    }
    config.realtime.shards = scenario.shards;
    config
}

/// An HS256 token for `sub`, valid for an hour.
fn token(sub: &str, permissions: &[&str]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = json!({"sub": sub, "exp": now + 3600, "permissions": permissions});
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// Percent-encodes a query parameter value.
fn encode(value: &str) -> String {
    let mut out = String::new();
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `?filter=...&` for `filter`, or nothing.
fn filter_param(filter: Option<&Value>) -> String {
    filter.map_or_else(String::new, |f| {
        format!("filter={}&", encode(&f.to_string()))
    })
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn offset(v: &Value) -> u64 {
    v["offset"]
        .as_u64()
        .unwrap_or_else(|| panic!("no offset in {v}"))
}

/// `GET /v1/events?topic=table:docs` (with `filter`) as `token`: the
/// envelopes.
async fn replay(server: &Server, token: &str, filter: Option<&Value>) -> Vec<Value> {
    let path = format!(
        "{}/v1/events?{}topic=table:docs",
        server.base,
        filter_param(filter)
    );
    let reply = tokio::time::timeout(
        support::TIMEOUT,
        server.http.get(path).bearer_auth(token).send(),
    )
    .await
    .expect("a replay in time")
    .unwrap();
    assert_eq!(reply.status(), 200);
    let text = tokio::time::timeout(support::TIMEOUT, reply.text())
        .await
        .expect("the whole replay in time")
        .unwrap();
    text.lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// `GET /v1/tables/docs/docs` (with `filter`) as `token`: the documents.
async fn query(server: &Server, token: &str, filter: Option<&Value>) -> Vec<Value> {
    let path = format!("/v1/tables/docs/docs?{}limit=1000", filter_param(filter));
    let (status, answer, _) = server.call_as(token, Method::GET, &path, None).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["next_cursor"], Value::Null);
    answer["docs"].as_array().unwrap().clone()
}

/// Live events on `ws` up to the one at `last`, without `type` and `subs`
/// (which must be `["live"]`).
async fn live_events(ws: &mut Ws, last: u64) -> Vec<Value> {
    let mut events = Vec::new();
    while events.last().is_none_or(|e| offset(e) < last) {
        let mut event = ws.expect("event").await;
        assert_eq!(event["subs"], json!(["live"]), "{event}");
        let fields = event.as_object_mut().unwrap();
        fields.remove("type");
        fields.remove("subs");
        events.push(event);
    }
    events
}

/// SSE events up to the one at `last`.
async fn sse_events(sse: &mut Sse, last: u64) -> Vec<Value> {
    let mut events = Vec::new();
    while events.last().is_none_or(|e| offset(e) < last) {
        let (_, event) = sse.expect(None).await;
        events.push(event);
    }
    events
}

/// Subscribes `request` on `ws`: what came before `subscribed`.
async fn subscribe(ws: &mut Ws, request: Value) -> Vec<Value> {
    ws.subscribe(request).await.0
}

// ---------------------------------------------------------------------------
// One case
// ---------------------------------------------------------------------------

async fn check(scenario: Scenario) {
    let server = Server::secured(config(&scenario), |_| {}).await;
    let admin = token("root", &["admin"]);
    // The admin first, with the users' subscription id: an event rendered
    // for it (everything, unfiltered) must never be what a user is sent.
    let mut admin_ws = server
        .ws_with(&[("Authorization", &bearer(&admin))])
        .await
        .expect("the admin connects");
    subscribe(&mut admin_ws, json!({"id": "live", "table": "docs"})).await;
    let users: Vec<User> = scenario
        .readers
        .iter()
        .enumerate()
        .map(|(i, reader)| {
            let mut permissions = vec!["read:*", "write:*"];
            if reader.sees_hidden {
                permissions.push("read_hidden:docs");
            }
            User {
                name: user_name(i),
                token: token(&user_name(i), &permissions),
                reader: reader.clone(),
            }
        })
        .collect();

    // Live readers, before any write.
    let mut live = Vec::new();
    for user in &users {
        let auth = bearer(&user.token);
        let mut ws = server
            .ws_with(&[("Authorization", &auth)])
            .await
            .expect("the user connects");
        let mut request = json!({"id": "live", "table": "docs"});
        if let Some(filter) = user.filter() {
            request["filter"] = filter;
        }
        assert_eq!(subscribe(&mut ws, request).await, Vec::<Value>::new());
        let path = format!("/v1/sse?{}table=docs", filter_param(user.filter().as_ref()));
        let mut sse = server
            .sse(&path, &[("Authorization", &auth)])
            .await
            .expect("the user streams");
        let (_, subscribed) = sse.expect(Some("subscribed")).await;
        assert_eq!(subscribed["type"], "subscribed");
        live.push((ws, sse));
    }

    // The writes, their outcomes predicted; then one sentinel per user.
    let mut state: BTreeMap<String, Value> = BTreeMap::new();
    let mut offsets = Vec::new();
    let mut sentinels = Vec::new();
    let ends = users.iter().enumerate().map(|(i, _)| {
        let change = Change::Insert {
            id: 0,
            owner: Owner::User(i),
            n: 100,
        };
        (Actor::Admin, change)
    });
    let writes: Vec<(Actor, Change)> = scenario.writes.iter().cloned().chain(ends).collect();
    let first_sentinel = scenario.writes.len();
    for (step, (actor, change)) in writes.iter().enumerate() {
        let (method, path, mut body) = request(change, step);
        let mut id = change_id(change);
        if step >= first_sentinel {
            // Sentinels get ids of their own.
            id = format!("end-{}", user_name(step - first_sentinel));
            body.as_mut().unwrap()["id"] = json!(id);
        }
        let (token, actor) = match *actor {
            Actor::Admin => (&admin, None),
            Actor::User(i) => (&users[i].token, Some(users[i].name.as_str())),
        };
        let current = state.get(&id).cloned();
        let predicted = predict(current.as_ref(), change, body.as_ref(), actor);
        let (status, answer, _) = server
            .call_as(token, method.clone(), &path, body.as_ref())
            .await;
        let what = format!("step {step}: {actor:?} {method} {path} {body:?}");
        match predicted {
            Ok(after) => {
                assert!((200..300).contains(&status), "{what}: {status} {answer}");
                offsets.push(offset(&answer));
                if step >= first_sentinel {
                    sentinels.push(offset(&answer));
                }
                match after {
                    Some(doc) => state.insert(id, doc),
                    None => state.remove(&id),
                };
            }
            Err(code) => {
                assert_eq!(answer["error"]["code"], code, "{what}: {status} {answer}");
                if code == "forbidden" {
                    assert_eq!(status, 403, "{what}");
                    // Refused: the row is as it was.
                    let path = format!("/v1/tables/docs/docs/{id}");
                    let (status, stored, _) =
                        server.call_as(&admin, Method::GET, &path, None).await;
                    match &current {
                        Some(doc) => assert_eq!((status, &stored), (200, doc), "{what}"),
                        None => assert_eq!(status, 404, "{what}: {stored}"),
                    }
                }
            }
        }
    }

    // The ground truth: the admin's replay, checked against the model.
    let log = replay(&server, &admin, None).await;
    let got: Vec<u64> = log.iter().map(offset).collect();
    assert_eq!(got, offsets, "the admin replays every successful write");
    let mut replayed: BTreeMap<String, Value> = BTreeMap::new();
    for event in &log {
        let id = event["id"].as_str().unwrap().to_owned();
        match event["op"].as_str().unwrap() {
            "delete" => replayed.remove(&id),
            _ => replayed.insert(id, event["doc"].clone()),
        };
    }
    assert_eq!(replayed, state, "the log folds into the model's table");
    let got = live_events(&mut admin_ws, *offsets.last().unwrap()).await;
    assert_eq!(got, log, "the admin's live events are the log");

    let ids: Vec<String> = (0..IDS)
        .map(doc_id)
        .chain(users.iter().map(|u| format!("end-{}", u.name)))
        .collect();
    for (i, (user, (ws, sse))) in users.iter().zip(&mut live).enumerate() {
        let last = sentinels[i];
        let leak = |path: &str, values: &[Value]| {
            for v in values {
                user.assert_no_leak(path, v);
            }
        };
        let expected = user.events(&log, true);
        let all_events = user.events(&log, false);
        let filter = user.filter();
        let who = &user.name;

        // Live, over WebSocket and SSE.
        let got = live_events(ws, last).await;
        leak("the live WebSocket", &got);
        assert_eq!(got, expected, "{who}: live WebSocket events");
        let got = sse_events(sse, last).await;
        leak("the live SSE stream", &got);
        assert_eq!(got, expected, "{who}: live SSE events");

        // Replay, with the filter and under the rule alone.
        let got = replay(&server, &user.token, filter.as_ref()).await;
        leak("replay", &got);
        assert_eq!(got, expected, "{who}: replay with its filter");
        let got = replay(&server, &user.token, None).await;
        leak("replay", &got);
        assert_eq!(got, all_events, "{who}: replay");

        // Query, with the filter and without.
        let got = query(&server, &user.token, filter.as_ref()).await;
        leak("query", &got);
        assert_eq!(got, user.docs(&state, true), "{who}: query with its filter");
        let got = query(&server, &user.token, None).await;
        leak("query", &got);
        assert_eq!(got, user.docs(&state, false), "{who}: query");

        // Read one: its rows, and nothing of anyone else's.
        for id in &ids {
            let path = format!("/v1/tables/docs/docs/{id}");
            let (status, doc, _) = server.call_as(&user.token, Method::GET, &path, None).await;
            match state.get(id).filter(|d| owned_by(d, who)) {
                Some(mine) => {
                    user.assert_no_leak(&path, &doc);
                    assert_eq!((status, doc), (200, user.shown(mine)), "{who}: {path}");
                }
                None => assert_eq!(
                    (status, &doc["error"]["code"]),
                    (404, &json!("not_found")),
                    "{who}: {path} {doc}"
                ),
            }
        }

        // A snapshot, then history from the start, on a new connection.
        let auth = bearer(&user.token);
        let mut late = server
            .ws_with(&[("Authorization", &auth)])
            .await
            .expect("the user connects");
        let mut request = json!({"id": "snap", "table": "docs", "snapshot": true});
        if let Some(filter) = &filter {
            request["filter"] = filter.clone();
        }
        let chunks = subscribe(&mut late, request).await;
        let docs: Vec<Value> = chunks
            .iter()
            .flat_map(|chunk| {
                assert_eq!(chunk["type"], "snapshot", "{chunk}");
                chunk["docs"].as_array().unwrap().clone()
            })
            .collect();
        leak("the snapshot", &docs);
        assert_eq!(docs, user.docs(&state, true), "{who}: snapshot");
        let mut request = json!({"id": "hist", "table": "docs", "from": 0});
        if let Some(filter) = &filter {
            request["filter"] = filter.clone();
        }
        let history: Vec<Value> = subscribe(&mut late, request)
            .await
            .into_iter()
            .map(|mut event| {
                assert_eq!(event["subs"], json!(["hist"]), "{event}");
                let fields = event.as_object_mut().unwrap();
                fields.remove("type");
                fields.remove("subs");
                event
            })
            .collect();
        leak("history", &history);
        assert_eq!(history, expected, "{who}: history from 0");

        // Filters (subscriptions, queries, the SSE shorthand) and `changed`
        // may not probe the hidden field, and a rule-bound user reads one
        // table at a time.
        let probes = [
            json!({"id": "p1", "table": "docs", "filter": {"secret": "s0"}}),
            json!({"id": "p2", "table": "docs", "changed": ["secret"]}),
        ];
        for probe in probes {
            let mut message = probe.clone();
            message["type"] = json!("subscribe");
            late.send(message).await;
            let answer = late.recv().await;
            if user.reader.sees_hidden {
                assert_eq!(answer["type"], "subscribed", "{who}: {probe} {answer}");
            } else {
                assert_eq!(
                    (&answer["type"], &answer["code"]),
                    (&json!("error"), &json!("forbidden")),
                    "{who}: {probe} {answer}"
                );
            }
        }
        late.send(json!({"type": "subscribe", "id": "all", "table": "*"}))
            .await;
        let answer = late.expect("error").await;
        assert_eq!(answer["code"], "forbidden", "{who}: {answer}");
        let path = format!(
            "/v1/tables/docs/docs?{}",
            filter_param(Some(&json!({"secret": "s0"})))
        );
        let (status, answer, _) = server.call_as(&user.token, Method::GET, &path, None).await;
        let want = if user.reader.sees_hidden { 200 } else { 403 };
        assert_eq!(
            status, want,
            "{who}: a query filtering on the hidden field: {answer}"
        );
        let shorthand = server
            .sse(
                "/v1/tables/docs/events?secret=s0",
                &[("Authorization", &auth)],
            )
            .await;
        let status = shorthand.map_or_else(|(status, _)| status, |_| 200);
        assert_eq!(status, want, "{who}: an SSE shorthand on the hidden field");
    }
    server.stop().await;
}
