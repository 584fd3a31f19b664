//! Model-based property test: any sequence of write requests against a real
//! [`Store`] behaves exactly like a small in-memory reference model, both in
//! the documents it keeps and in the sequence of events it logs.
//!
//! Each case generates up to 60 requests of 1..=3 operations (insert, put,
//! merge patch, delete, publish) over a tiny space of 2 tables × 4 ids, so
//! conflicts, missing documents, version mismatches, bad patches and failing
//! batches are common. Every request runs against the store and the model:
//! - after each request: success or failure agree; a failure has the same
//!   cause (and, in a multi-op request, the same failing index); a success
//!   acknowledges the same ids, versions and offsets; the head offset agrees;
//! - at the end: every document (by `get` and by a full `scan`) and the whole
//!   change log (offset, topic and every field of every event) agree.
//!
//! The model is deliberately naive: a map of documents plus a vector of
//! events. A request is applied to a clone, which replaces the model only if
//! every operation succeeded; the next offset is always `log.len() + 1`.

use herald_proto::{EventBody, Offset, Timestamp, Version, WriteAck};
use herald_store::{
    ChannelName, DocId, Durability, Store, StoreConfig, StoreError, TableName, TopicFilter,
    WriteOp, Written,
};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::TestCaseError;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet};

type Doc = Map<String, Value>;

const TABLES: [&str; 2] = ["t0", "t1"];
const IDS: [&str; 4] = ["a", "b", "c", "d"];
const CHANNELS: [&str; 2] = ["chat", "news:1"];
const FIELDS: [&str; 3] = ["x", "y", "z"];

// ---------------------------------------------------------------------------
// The reference model.
// ---------------------------------------------------------------------------

/// One operation with every value decided, in the model's own terms.
#[derive(Debug, Clone)]
enum ModelOp {
    Insert {
        table: String,
        id: String,
        /// Always carries `"id": id`.
        doc: Doc,
    },
    Put {
        table: String,
        id: String,
        /// Carries `"id": id` or no `id` at all.
        doc: Doc,
        expect: Option<u64>,
    },
    Patch {
        table: String,
        id: String,
        patch: Value,
        expect: Option<u64>,
    },
    Delete {
        table: String,
        id: String,
        expect: Option<u64>,
    },
    Publish {
        channel: String,
        data: Value,
        from: Option<String>,
    },
}

/// Why the model rejects an operation.
#[derive(Debug, Clone, PartialEq)]
enum ModelError {
    AlreadyExists { table: String, id: String },
    NotFound { table: String, id: String },
    VersionMismatch { expected: u64, actual: Option<u64> },
    NotAnObject,
    IdMismatch,
}

/// An event as the model expects it in the log (no epoch or timestamp).
#[derive(Debug, Clone, PartialEq)]
struct LoggedEvent {
    offset: Offset,
    topic: String,
    body: EventBody,
}

#[derive(Debug, Clone, Default)]
struct Model {
    /// `(table, id)` → `(version, document)`.
    docs: BTreeMap<(String, String), (u64, Doc)>,
    /// Every event, in order; the event at index `i` has offset `i + 1`.
    log: Vec<LoggedEvent>,
}

impl Model {
    fn version(&self, table: &str, id: &str) -> Option<u64> {
        self.docs
            .get(&(table.to_owned(), id.to_owned()))
            .map(|(version, _)| *version)
    }

    fn head(&self) -> Offset {
        Offset(self.log.len() as u64)
    }

    /// Applies a whole request atomically: the new model and what each
    /// operation acknowledges, or the index and cause of the first failure
    /// (in which case `self` is untouched).
    fn apply_request(&self, ops: &[ModelOp]) -> Result<(Model, Vec<Written>), (usize, ModelError)> {
        let mut next = self.clone();
        let mut acks = Vec::new();
        for (index, op) in ops.iter().enumerate() {
            acks.push(next.apply_op(op).map_err(|e| (index, e))?);
        }
        Ok((next, acks))
    }

    /// Applies one operation. Checks come first (existence, then the expected
    /// version, then the content); nothing changes unless all pass.
    fn apply_op(&mut self, op: &ModelOp) -> Result<Written, ModelError> {
        match op {
            ModelOp::Insert { table, id, doc } => {
                if self.version(table, id).is_some() {
                    return Err(ModelError::AlreadyExists {
                        table: table.clone(),
                        id: id.clone(),
                    });
                }
                Ok(self.store_doc(table, id, 1, doc.clone(), None))
            }
            ModelOp::Put {
                table,
                id,
                doc,
                expect,
            } => {
                let current = self.docs.get(&(table.clone(), id.clone())).cloned();
                check_expected(*expect, current.as_ref().map(|(v, _)| *v))?;
                let mut doc = doc.clone();
                doc.insert("id".into(), json!(id));
                Ok(match current {
                    None => self.store_doc(table, id, 1, doc, None),
                    Some((version, old)) => self.store_doc(table, id, version + 1, doc, Some(old)),
                })
            }
            ModelOp::Patch {
                table,
                id,
                patch,
                expect,
            } => {
                let Some((version, old)) = self.docs.get(&(table.clone(), id.clone())).cloned()
                else {
                    return Err(ModelError::NotFound {
                        table: table.clone(),
                        id: id.clone(),
                    });
                };
                check_expected(*expect, Some(version))?;
                let Value::Object(doc) = merge_patch(&Value::Object(old.clone()), patch) else {
                    return Err(ModelError::NotAnObject);
                };
                if doc.get("id") != Some(&json!(id)) {
                    return Err(ModelError::IdMismatch);
                }
                Ok(self.store_doc(table, id, version + 1, doc, Some(old)))
            }
            ModelOp::Delete { table, id, expect } => {
                let slot = (table.clone(), id.clone());
                let Some((version, old)) = self.docs.get(&slot).cloned() else {
                    return Err(ModelError::NotFound {
                        table: table.clone(),
                        id: id.clone(),
                    });
                };
                check_expected(*expect, Some(version))?;
                self.docs.remove(&slot);
                let offset = self.append(
                    format!("table:{table}"),
                    EventBody::Delete {
                        table: table.clone(),
                        id: id.clone(),
                        version: Version(version + 1),
                        changed: changed_fields(&old, &Doc::new()),
                        old: Value::Object(old),
                    },
                );
                Ok(Written::Doc(WriteAck {
                    id: id.clone(),
                    version: Version(version + 1),
                    offset,
                }))
            }
            ModelOp::Publish {
                channel,
                data,
                from,
            } => {
                let offset = self.append(
                    channel.clone(),
                    EventBody::Publish {
                        channel: channel.clone(),
                        data: data.clone(),
                        from: from.clone(),
                    },
                );
                Ok(Written::Message { offset })
            }
        }
    }

    /// Stores `doc` at `version` and logs an insert (no `old`) or an update.
    fn store_doc(
        &mut self,
        table: &str,
        id: &str,
        version: u64,
        doc: Doc,
        old: Option<Doc>,
    ) -> Written {
        self.docs
            .insert((table.to_owned(), id.to_owned()), (version, doc.clone()));
        let body = match old {
            None => EventBody::Insert {
                table: table.to_owned(),
                id: id.to_owned(),
                version: Version(version),
                changed: changed_fields(&Doc::new(), &doc),
                doc: Value::Object(doc),
            },
            Some(old) => EventBody::Update {
                table: table.to_owned(),
                id: id.to_owned(),
                version: Version(version),
                changed: changed_fields(&old, &doc),
                doc: Value::Object(doc),
                old: Value::Object(old),
            },
        };
        let offset = self.append(format!("table:{table}"), body);
        Written::Doc(WriteAck {
            id: id.to_owned(),
            version: Version(version),
            offset,
        })
    }

    fn append(&mut self, topic: String, body: EventBody) -> Offset {
        let offset = Offset(self.log.len() as u64 + 1);
        self.log.push(LoggedEvent {
            offset,
            topic,
            body,
        });
        offset
    }
}

fn check_expected(expected: Option<u64>, actual: Option<u64>) -> Result<(), ModelError> {
    match expected {
        Some(expected) if actual != Some(expected) => {
            Err(ModelError::VersionMismatch { expected, actual })
        }
        _ => Ok(()),
    }
}

/// RFC 7396 `MergePatch(Target, Patch)`, transcribed from the RFC's pseudocode.
fn merge_patch(target: &Value, patch: &Value) -> Value {
    let Value::Object(patch) = patch else {
        return patch.clone();
    };
    let mut result = match target {
        Value::Object(target) => target.clone(),
        _ => Map::new(),
    };
    for (name, value) in patch {
        if value.is_null() {
            result.remove(name);
        } else {
            let merged = merge_patch(result.get(name).unwrap_or(&Value::Null), value);
            result.insert(name.clone(), merged);
        }
    }
    Value::Object(result)
}

/// Sorted top-level keys present on either side whose values are not equal.
fn changed_fields(old: &Doc, new: &Doc) -> Vec<String> {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    keys.into_iter()
        .filter(|key| old.get(*key) != new.get(*key))
        .cloned()
        .collect()
}

// ---------------------------------------------------------------------------
// Generated requests: independent of state, resolved against the model.
// ---------------------------------------------------------------------------

/// Which expected version an operation carries, relative to the current one.
#[derive(Debug, Clone, Copy)]
enum ExpectSpec {
    /// No expectation.
    Unset,
    /// The current version (1 when the document is missing: a mismatch).
    Current,
    /// One more than the current version (or 1 when missing).
    Ahead,
    /// One less than the current version (0 when missing or at version 1).
    Stale,
}

/// What a patch does to the `id` field, besides its other fields.
#[derive(Debug, Clone, Copy)]
enum IdPatch {
    Untouched,
    SameId,
    Remove,
    OtherId,
    NotAString,
}

#[derive(Debug, Clone)]
enum PatchSpec {
    /// An object patch.
    Merge { fields: Doc, id: IdPatch },
    /// A non-object patch: replaces the whole document, so always invalid.
    Replace(Value),
}

/// Which document an operation targets.
#[derive(Debug, Clone, Copy)]
enum SlotSpec {
    /// `TABLES[table]`, `IDS[id]`, whether it exists or not.
    Fixed { table: usize, id: usize },
    /// The `n`-th existing document (modulo their count), or `t0/a` if none:
    /// keeps most patches and deletes from failing on a missing document.
    Existing(usize),
}

#[derive(Debug, Clone)]
enum OpSpec {
    Insert {
        slot: SlotSpec,
        fields: Doc,
    },
    Put {
        slot: SlotSpec,
        fields: Doc,
        with_id_field: bool,
        expect: ExpectSpec,
    },
    Patch {
        slot: SlotSpec,
        patch: PatchSpec,
        expect: ExpectSpec,
    },
    Delete {
        slot: SlotSpec,
        expect: ExpectSpec,
    },
    Publish {
        channel: usize,
        data: Value,
        from: Option<String>,
    },
}

fn resolve_expect(spec: ExpectSpec, current: Option<u64>) -> Option<u64> {
    match spec {
        ExpectSpec::Unset => None,
        ExpectSpec::Current => Some(current.unwrap_or(1)),
        ExpectSpec::Ahead => Some(current.unwrap_or(0) + 1),
        ExpectSpec::Stale => Some(current.unwrap_or(1) - 1),
    }
}

/// Turns a generated operation into a concrete one, given the state it will see.
fn resolve(spec: &OpSpec, state: &Model) -> ModelOp {
    let slot = |slot: &SlotSpec| match *slot {
        SlotSpec::Fixed { table, id } => (TABLES[table].to_owned(), IDS[id].to_owned()),
        SlotSpec::Existing(n) if !state.docs.is_empty() => state
            .docs
            .keys()
            .nth(n % state.docs.len())
            .cloned()
            .expect("n is below the count"),
        SlotSpec::Existing(_) => (TABLES[0].to_owned(), IDS[0].to_owned()),
    };
    match spec {
        OpSpec::Insert {
            slot: target,
            fields,
        } => {
            let (table, id) = slot(target);
            let mut doc = fields.clone();
            doc.insert("id".into(), json!(id));
            ModelOp::Insert { table, id, doc }
        }
        OpSpec::Put {
            slot: target,
            fields,
            with_id_field,
            expect,
        } => {
            let (table, id) = slot(target);
            let mut doc = fields.clone();
            if *with_id_field {
                doc.insert("id".into(), json!(id));
            }
            let expect = resolve_expect(*expect, state.version(&table, &id));
            ModelOp::Put {
                table,
                id,
                doc,
                expect,
            }
        }
        OpSpec::Patch {
            slot: target,
            patch,
            expect,
        } => {
            let (table, id) = slot(target);
            let patch = match patch {
                PatchSpec::Replace(value) => value.clone(),
                PatchSpec::Merge {
                    fields,
                    id: id_patch,
                } => {
                    let mut patch = fields.clone();
                    let id_value = match id_patch {
                        IdPatch::Untouched => None,
                        IdPatch::SameId => Some(json!(id)),
                        IdPatch::Remove => Some(Value::Null),
                        IdPatch::OtherId => Some(json!("other")),
                        IdPatch::NotAString => Some(json!(7)),
                    };
                    if let Some(value) = id_value {
                        patch.insert("id".into(), value);
                    }
                    Value::Object(patch)
                }
            };
            let expect = resolve_expect(*expect, state.version(&table, &id));
            ModelOp::Patch {
                table,
                id,
                patch,
                expect,
            }
        }
        OpSpec::Delete {
            slot: target,
            expect,
        } => {
            let (table, id) = slot(target);
            let expect = resolve_expect(*expect, state.version(&table, &id));
            ModelOp::Delete { table, id, expect }
        }
        OpSpec::Publish {
            channel,
            data,
            from,
        } => ModelOp::Publish {
            channel: CHANNELS[*channel].to_owned(),
            data: data.clone(),
            from: from.clone(),
        },
    }
}

/// Resolves a request's operations in order, each against the state the
/// previous ones leave (so "the current version" means it inside a batch too).
fn resolve_request(model: &Model, specs: &[OpSpec]) -> Vec<ModelOp> {
    let mut scratch = model.clone();
    specs
        .iter()
        .map(|spec| {
            let op = resolve(spec, &scratch);
            // A failing op changes nothing; later ops resolve against the same state.
            let _ = scratch.apply_op(&op);
            op
        })
        .collect()
}

fn to_write_op(op: &ModelOp) -> WriteOp {
    let table = |t: &str| TableName::new(t).unwrap();
    let id = |i: &str| DocId::new(i).unwrap();
    let version = |v: Option<u64>| v.map(Version);
    match op {
        ModelOp::Insert { table: t, doc, .. } => {
            WriteOp::insert(table(t), Value::Object(doc.clone())).unwrap()
        }
        ModelOp::Put {
            table: t,
            id: i,
            doc,
            expect,
        } => WriteOp::put(
            table(t),
            id(i),
            Value::Object(doc.clone()),
            version(*expect),
        )
        .unwrap(),
        ModelOp::Patch {
            table: t,
            id: i,
            patch,
            expect,
        } => WriteOp::patch(table(t), id(i), patch.clone(), version(*expect)),
        ModelOp::Delete {
            table: t,
            id: i,
            expect,
        } => WriteOp::delete(table(t), id(i), version(*expect)),
        ModelOp::Publish {
            channel,
            data,
            from,
        } => WriteOp::publish(
            ChannelName::new(channel).unwrap(),
            data.clone(),
            from.clone(),
        ),
    }
}

// ---------------------------------------------------------------------------
// Strategies.
// ---------------------------------------------------------------------------

/// Field values of stored documents and messages.
fn value() -> impl Strategy<Value = Value> + Clone {
    select(vec![
        json!(0),
        json!(1),
        json!("x"),
        json!("y"),
        json!(true),
        Value::Null,
        json!({"k": 1}),
        json!({"k": [1, {"m": null}]}),
        json!([1, 2]),
        json!([]),
    ])
}

/// Field values of merge patches: removals, nested merges and plain values.
fn patch_value() -> impl Strategy<Value = Value> + Clone {
    prop_oneof![
        3 => Just(Value::Null),
        6 => value(),
        2 => select(vec![
            json!({"k": null}),
            json!({"k": 2, "m": null}),
            json!({"k": {"n": 1}}),
            json!({"m": {"k": null}}),
        ]),
    ]
}

fn fields(values: impl Strategy<Value = Value> + Clone) -> impl Strategy<Value = Doc> + Clone {
    proptest::collection::btree_map(select(FIELDS.to_vec()), values, 0..=3).prop_map(|map| {
        map.into_iter()
            .map(|(key, value)| (key.to_owned(), value))
            .collect()
    })
}

fn expect() -> impl Strategy<Value = ExpectSpec> + Clone {
    prop_oneof![
        5 => Just(ExpectSpec::Unset),
        5 => Just(ExpectSpec::Current),
        1 => Just(ExpectSpec::Ahead),
        1 => Just(ExpectSpec::Stale),
    ]
}

fn patch_spec() -> impl Strategy<Value = PatchSpec> + Clone {
    let id_patch = prop_oneof![
        24 => Just(IdPatch::Untouched),
        1 => Just(IdPatch::SameId),
        1 => Just(IdPatch::Remove),
        1 => Just(IdPatch::OtherId),
        1 => Just(IdPatch::NotAString),
    ];
    prop_oneof![
        12 => (fields(patch_value()), id_patch)
            .prop_map(|(fields, id)| PatchSpec::Merge { fields, id }),
        1 => select(vec![Value::Null, json!(5), json!("s"), json!([1]), json!(true)])
            .prop_map(PatchSpec::Replace),
    ]
}

fn fixed_slot() -> impl Strategy<Value = SlotSpec> + Clone {
    (0..TABLES.len(), 0..IDS.len()).prop_map(|(table, id)| SlotSpec::Fixed { table, id })
}

/// Mostly an existing document, sometimes any slot.
fn likely_existing_slot() -> impl Strategy<Value = SlotSpec> + Clone {
    prop_oneof![
        3 => any::<usize>().prop_map(SlotSpec::Existing),
        1 => fixed_slot(),
    ]
}

fn op_spec() -> impl Strategy<Value = OpSpec> {
    prop_oneof![
        3 => (fixed_slot(), fields(value()))
            .prop_map(|(slot, fields)| OpSpec::Insert { slot, fields }),
        3 => (likely_existing_slot(), fields(value()), any::<bool>(), expect()).prop_map(
            |(slot, fields, with_id_field, expect)| OpSpec::Put {
                slot,
                fields,
                with_id_field,
                expect,
            }
        ),
        4 => (likely_existing_slot(), patch_spec(), expect())
            .prop_map(|(slot, patch, expect)| OpSpec::Patch { slot, patch, expect }),
        2 => (likely_existing_slot(), expect())
            .prop_map(|(slot, expect)| OpSpec::Delete { slot, expect }),
        1 => (0..CHANNELS.len(), value(), proptest::option::of(Just("alice".to_owned())))
            .prop_map(|(channel, data, from)| OpSpec::Publish {
                channel,
                data,
                from,
            }),
    ]
}

fn requests() -> impl Strategy<Value = Vec<Vec<OpSpec>>> {
    proptest::collection::vec(proptest::collection::vec(op_spec(), 1..=3), 1..=60)
}

// ---------------------------------------------------------------------------
// Running and checking.
// ---------------------------------------------------------------------------

/// Whether the store's error is the model's error.
fn same_cause(actual: &StoreError, expected: &ModelError) -> bool {
    match (actual, expected) {
        (
            StoreError::AlreadyExists { table, id },
            ModelError::AlreadyExists {
                table: model_table,
                id: model_id,
            },
        )
        | (
            StoreError::NotFound { table, id },
            ModelError::NotFound {
                table: model_table,
                id: model_id,
            },
        ) => table == model_table && id == model_id,
        (
            StoreError::VersionMismatch { expected, actual },
            ModelError::VersionMismatch {
                expected: model_expected,
                actual: model_actual,
            },
        ) => expected.0 == *model_expected && actual.map(|v| v.0) == *model_actual,
        (StoreError::NotAnObject { .. }, ModelError::NotAnObject)
        | (StoreError::IdMismatch { .. }, ModelError::IdMismatch) => true,
        _ => false,
    }
}

/// Checks a failed request: one operation fails with its own error; in a
/// batch the error is `InBatch` naming the failing operation's index.
fn check_failure(
    actual: &StoreError,
    op_count: usize,
    index: usize,
    expected: &ModelError,
) -> Result<(), TestCaseError> {
    let cause = if op_count == 1 {
        actual
    } else {
        match actual {
            StoreError::InBatch { index: i, source } => {
                prop_assert_eq!(*i, index, "failing index of the batch");
                source
            }
            other => {
                return Err(TestCaseError::fail(format!(
                    "expected InBatch {{ index: {index}, .. }}, got {other:?}"
                )));
            }
        }
    };
    prop_assert!(
        same_cause(cause, expected),
        "store failed with {:?}, the model with {:?}",
        actual,
        expected
    );
    Ok(())
}

/// Every document slot, by `get` and by a full `scan` of each table.
fn check_documents(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    for table in TABLES {
        let table_name = TableName::new(table).unwrap();
        for id in IDS {
            let stored = store
                .get(&table_name, &DocId::new(id).unwrap())
                .unwrap()
                .map(|record| (record.version.0, record.to_map().unwrap()));
            let expected = model.docs.get(&(table.to_owned(), id.to_owned())).cloned();
            prop_assert_eq!(stored, expected, "get {}/{}", table, id);
        }
        let page = store
            .scan(&table_name, None, false, usize::MAX, |_| true)
            .unwrap();
        prop_assert_eq!(page.next_after, None);
        let scanned: Vec<(String, u64, Doc)> = page
            .docs
            .into_iter()
            .map(|(id, record)| (id, record.version.0, record.to_map().unwrap()))
            .collect();
        let expected: Vec<(String, u64, Doc)> = model
            .docs
            .iter()
            .filter(|((t, _), _)| t == table)
            .map(|((_, id), (version, doc))| (id.clone(), *version, doc.clone()))
            .collect();
        prop_assert_eq!(scanned, expected, "scan of {}", table);
    }
    Ok(())
}

/// The whole log, event by event.
fn check_log(store: &Store, model: &Model) -> Result<(), TestCaseError> {
    let chunk = store
        .read_log(Offset::ZERO, None, &TopicFilter::All, usize::MAX)
        .unwrap();
    prop_assert!(chunk.done);
    let mut last_ts = Timestamp(0);
    let mut logged = Vec::with_capacity(chunk.records.len());
    for record in &chunk.records {
        let event = record.to_event().unwrap();
        prop_assert_eq!(event.offset, record.offset);
        prop_assert_eq!(&event.topic, &record.topic);
        prop_assert_eq!(event.ts, record.ts);
        prop_assert_eq!(event.epoch, store.epoch());
        prop_assert!(event.ts >= last_ts, "timestamps never decrease");
        last_ts = event.ts;
        logged.push(LoggedEvent {
            offset: event.offset,
            topic: event.topic,
            body: event.body,
        });
    }
    for (position, (actual, expected)) in logged.iter().zip(&model.log).enumerate() {
        prop_assert_eq!(actual, expected, "log event #{}", position);
    }
    prop_assert_eq!(logged.len(), model.log.len(), "log length");
    Ok(())
}

/// Runs every request against the store and the model, then compares all state.
async fn run(store: &Store, requests: &[Vec<OpSpec>]) -> Result<(), TestCaseError> {
    let mut model = Model::default();
    for (number, specs) in requests.iter().enumerate() {
        let ops = resolve_request(&model, specs);
        let expected = model.apply_request(&ops);
        let actual = store.write(ops.iter().map(to_write_op).collect()).await;
        match (expected, actual) {
            (Ok((next, acks)), Ok(written)) => {
                prop_assert_eq!(written, acks, "request #{}: {:?}", number, ops);
                model = next;
            }
            (Err((index, error)), Err(actual)) => {
                check_failure(&actual, ops.len(), index, &error)
                    .map_err(|e| TestCaseError::fail(format!("request #{number} {ops:?}: {e}")))?;
            }
            (Ok(_), Err(actual)) => {
                return Err(TestCaseError::fail(format!(
                    "request #{number} {ops:?}: the model accepts it, the store failed: {actual:?}"
                )));
            }
            (Err(expected), Ok(written)) => {
                return Err(TestCaseError::fail(format!(
                    "request #{number} {ops:?}: the model rejects it ({expected:?}), \
                     the store accepted it: {written:?}"
                )));
            }
        }
        prop_assert_eq!(store.head(), model.head(), "head after request #{}", number);
    }
    check_documents(store, &model)?;
    check_log(store, &model)
}

/// Durability does not change semantics; skipping fsync keeps cases fast.
fn config() -> StoreConfig {
    StoreConfig {
        durability: Durability::Os,
        ..StoreConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn store_matches_the_model(requests in requests()) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let store = Store::open(dir.path(), config()).unwrap();
            let outcome = run(&store, &requests).await;
            store.close().await;
            outcome
        })?;
    }
}

// ---------------------------------------------------------------------------
// The model itself, on hand-checked examples.
// ---------------------------------------------------------------------------

#[test]
fn the_model_merge_patch_follows_rfc_7396_examples() {
    // Appendix A of RFC 7396.
    let cases = [
        (json!({"a": "b"}), json!({"a": "c"}), json!({"a": "c"})),
        (
            json!({"a": "b"}),
            json!({"b": "c"}),
            json!({"a": "b", "b": "c"}),
        ),
        (json!({"a": "b"}), json!({"a": null}), json!({})),
        (
            json!({"a": "b", "b": "c"}),
            json!({"a": null}),
            json!({"b": "c"}),
        ),
        (json!({"a": ["b"]}), json!({"a": "c"}), json!({"a": "c"})),
        (json!({"a": "c"}), json!({"a": ["b"]}), json!({"a": ["b"]})),
        (
            json!({"a": {"b": "c"}}),
            json!({"a": {"b": "d", "c": null}}),
            json!({"a": {"b": "d"}}),
        ),
        (
            json!({"a": [{"b": "c"}]}),
            json!({"a": [1]}),
            json!({"a": [1]}),
        ),
        (json!(["a", "b"]), json!(["c", "d"]), json!(["c", "d"])),
        (json!({"a": "b"}), json!(["c"]), json!(["c"])),
        (json!({"a": "foo"}), json!(null), json!(null)),
        (json!({"a": "foo"}), json!("bar"), json!("bar")),
        (
            json!({"e": null}),
            json!({"a": 1}),
            json!({"e": null, "a": 1}),
        ),
        (
            json!([1, 2]),
            json!({"a": "b", "c": null}),
            json!({"a": "b"}),
        ),
        (
            json!({}),
            json!({"a": {"bb": {"ccc": null}}}),
            json!({"a": {"bb": {}}}),
        ),
    ];
    for (target, patch, result) in cases {
        assert_eq!(merge_patch(&target, &patch), result, "{target} + {patch}");
    }
}

#[test]
fn the_model_changed_fields_counts_one_sided_keys() {
    let old = json!({"id": "a", "x": 1, "y": {"k": 1}, "z": null});
    let new = json!({"id": "a", "x": 2, "y": {"k": 1}, "w": true});
    let (Value::Object(old), Value::Object(new)) = (old, new) else {
        unreachable!()
    };
    assert_eq!(changed_fields(&old, &new), ["w", "x", "z"]);
    assert_eq!(changed_fields(&Doc::new(), &new), ["id", "w", "x", "y"]);
    assert!(changed_fields(&old, &old).is_empty());
}
