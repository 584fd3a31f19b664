//! Opening after a crash or from an older format: bringing the documents up
//! to the log, and moving a first-format log into segments.
//!
//! The log is written (and synced) before the documents it implies, and
//! each document batch records the last offset it reflects (`applied`). So
//! on open the documents may lag the log, never lead it (in `fsync` mode),
//! and re-applying the events after `applied` (their new document, or their
//! deletion) brings them level; applying an event twice changes nothing.

use crate::applied;
use crate::error::StoreError;
use crate::layout::{self, DocRecord, LogRecord};
use crate::log::{Appender, Log, Opened, Writes};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use herald_proto::{Event, EventBody, Offset, Timestamp};
use std::path::Path;

/// Events re-applied (or records moved) per batch.
const CHUNK: usize = 1024;

/// Opens the log in `dir`, moves a first-format log into it, and brings
/// the documents up to it. Returns the log (its `bytes` counted from
/// `log_start`) and the last offset whose effect is in the documents.
pub(crate) fn open_log(
    db: &Database,
    docs: &Keyspace,
    meta: &Keyspace,
    dir: &Path,
    writes: Writes,
    log_start: Offset,
) -> Result<(Opened, Offset), StoreError> {
    // A new log's first segment is named by the log's start: at or below
    // every record it will hold, also those moved from the first format.
    let mut opened = Log::open(dir, log_start, writes, log_start)?;
    let in_segments = opened.last.map(|(o, _)| o);
    if let Some(moved) = migrate_legacy_log(db, meta, &mut opened.appender, in_segments)? {
        opened.last = moved.last.or(opened.last);
        opened.bytes += moved.bytes;
    }
    let stored = applied::recorded(meta)?;
    // Retention removes only events whose documents are durable (its sync
    // of `log_start` syncs the engine's journal), so everything below the
    // log's start is applied.
    let applied = stored
        .unwrap_or(Offset::ZERO)
        .max(Offset(log_start.0.saturating_sub(1)));
    let head = opened
        .last
        .map_or(Offset(log_start.0.saturating_sub(1)), |(o, _)| o);
    if applied > head {
        // The engine kept documents whose events the log no longer has:
        // with `durability = "os"`, the log's unsynced tail lost in a power
        // cut; with "fsync", damage the torn-tail cut removed.
        tracing::error!(%applied, %head, "documents are ahead of the log: events after the head are lost; their offsets will be skipped");
    }
    let caught_up = catch_up_docs(db, docs, meta, &opened.log, applied, head)?;
    if stored != Some(caught_up) {
        record_applied(db, meta, caught_up)?;
    }
    Ok((opened, caught_up))
}

/// Re-applies the log's events after `applied` (up to its `head`) to the
/// documents; returns the last offset applied (`applied` when there was
/// nothing to do).
fn catch_up_docs(
    db: &Database,
    docs: &Keyspace,
    meta: &Keyspace,
    log: &Log,
    applied: Offset,
    head: Offset,
) -> Result<Offset, StoreError> {
    let mut batch = db.batch();
    let mut last = applied;
    let mut failed = None;
    let mut count = 0u64;
    log.for_each_after(applied, head, |record| {
        let step = apply(&mut batch, docs, record.offset, record.json).and_then(|()| {
            last = record.offset;
            count += 1;
            if batch.len() >= CHUNK {
                let full = std::mem::replace(&mut batch, db.batch());
                applied::commit_docs(full, meta, last)?;
            }
            Ok(())
        });
        match step {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if count > 0 {
        applied::commit_docs(batch, meta, last)?;
        db.persist(PersistMode::SyncAll)?;
        tracing::info!(from = %applied.next(), to = %last, events = count, "documents brought up to the log");
    }
    Ok(last)
}

/// Records, durably, that the documents reflect the log up to `offset`.
fn record_applied(db: &Database, meta: &Keyspace, offset: Offset) -> Result<(), StoreError> {
    meta.insert(layout::META_APPLIED, offset.0.to_be_bytes())?;
    db.persist(PersistMode::SyncAll)?;
    Ok(())
}

/// Stages one event's effect on its document.
fn apply(
    batch: &mut fjall::OwnedWriteBatch,
    docs: &Keyspace,
    offset: Offset,
    json: &[u8],
) -> Result<(), StoreError> {
    let event: Event = serde_json::from_slice(json)
        .map_err(|e| StoreError::Corrupt(format!("event JSON at offset {offset}: {e}")))?;
    match event.body {
        EventBody::Insert {
            table,
            id,
            version,
            doc,
            ..
        }
        | EventBody::Update {
            table,
            id,
            version,
            doc,
            ..
        } => {
            let json = serde_json::to_vec(&doc)
                .map_err(|e| StoreError::Corrupt(format!("document at offset {offset}: {e}")))?;
            batch.insert(
                docs,
                layout::doc_key(&table, &id),
                DocRecord::encode(version, &json),
            );
        }
        EventBody::Delete { table, id, .. } => batch.remove(docs, layout::doc_key(&table, &id)),
        EventBody::Publish { .. } => {}
    }
    Ok(())
}

/// What [`migrate_legacy_log`] moved.
struct Moved {
    last: Option<(Offset, Timestamp)>,
    bytes: u64,
}

/// Moves the records of a first-format `log` keyspace that the segments do
/// not hold yet (so an interrupted move resumes) into the log, then drops
/// the keyspace. In that format documents and events were written
/// atomically, so every record moved is already applied, and recorded so
/// before the keyspace goes.
fn migrate_legacy_log(
    db: &Database,
    meta: &Keyspace,
    appender: &mut Appender,
    after: Option<Offset>,
) -> Result<Option<Moved>, StoreError> {
    if !db
        .list_keyspace_names()
        .iter()
        .any(|name| &**name == layout::LEGACY_LOG)
    {
        return Ok(None);
    }
    let legacy = db.keyspace(layout::LEGACY_LOG, KeyspaceCreateOptions::default)?;
    let from = after.map_or(Offset(1), Offset::next);
    let mut last = None;
    let mut moved = 0u64;
    let mut bytes = 0;
    for guard in legacy.range(layout::log_key(from)..) {
        let (key, value) = guard.into_inner()?;
        let offset = layout::decode_log_key(&key)?;
        let (ts, topic, json) = LogRecord::split(&value)?;
        bytes += appender.push(offset, ts, topic, json);
        last = Some((offset, ts));
        moved += 1;
        if moved.is_multiple_of(CHUNK as u64) {
            appender.write()?;
            appender.roll_if_full(offset.next())?;
        }
    }
    appender.write()?;
    appender.sync()?;
    // Everything in the segments is applied, also what an interrupted move
    // had copied before.
    if let Some(offset) = last.map(|(o, _)| o).or(after) {
        record_applied(db, meta, offset)?;
    }
    db.delete_keyspace(legacy)?;
    db.persist(PersistMode::SyncAll)?;
    tracing::info!(
        events = moved,
        "moved the log from the engine into segment files"
    );
    Ok(Some(Moved { last, bytes }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ChannelName, DocId, Store, StoreConfig, TableName, TopicFilter, WriteOp};
    use herald_proto::{Epoch, Version};
    use serde_json::json;
    use std::sync::Arc;

    /// Changes the engine's data directly, as a crash or an older version
    /// could have left it, and syncs the change.
    fn edit_engine(dir: &std::path::Path, change: impl FnOnce(&Database, &Keyspace, &Keyspace)) {
        let (db, docs, meta) = engine(dir);
        change(&db, &docs, &meta);
        db.persist(PersistMode::SyncAll).unwrap();
    }

    fn engine(dir: &std::path::Path) -> (Database, Keyspace, Keyspace) {
        let db = Database::builder(dir).open().unwrap();
        let docs = db
            .keyspace(layout::DOCS, KeyspaceCreateOptions::default)
            .unwrap();
        let meta = db
            .keyspace(layout::META, KeyspaceCreateOptions::default)
            .unwrap();
        (db, docs, meta)
    }

    /// Inserts `doc` into table `t`.
    async fn insert(store: &Store, doc: serde_json::Value) -> crate::Written {
        let op = WriteOp::insert(TableName::new("t").unwrap(), doc).unwrap();
        store.write_one(op).await.unwrap()
    }

    fn doc(store: &Store, id: &str) -> Option<(Version, serde_json::Value)> {
        let t = TableName::new("t").unwrap();
        store
            .get(&t, &DocId::new(id).unwrap())
            .unwrap()
            .map(|r| (r.version, serde_json::from_slice(&r.json).unwrap()))
    }

    /// The engine's unsynced tail is lost (as in a power cut): every
    /// document and the `applied` mark go back to nothing, the log stays.
    /// Opening brings the documents back from the log.
    #[tokio::test]
    async fn documents_lost_with_the_engine_tail_come_back_from_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let t = TableName::new("t").unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        for op in [
            WriteOp::insert(t.clone(), json!({"id": "a", "n": 1})).unwrap(),
            WriteOp::insert(t.clone(), json!({"id": "b", "n": 1})).unwrap(),
            WriteOp::put(t.clone(), DocId::new("a").unwrap(), json!({"n": 2}), None).unwrap(),
            WriteOp::delete(t.clone(), DocId::new("b").unwrap(), None),
            WriteOp::publish(ChannelName::new("c").unwrap(), json!("hi"), None),
            WriteOp::insert(t.clone(), json!({"id": "c", "s": "é\"\\"})).unwrap(),
        ] {
            store.write_one(op).await.unwrap();
        }
        let before = (doc(&store, "a"), doc(&store, "b"), doc(&store, "c"));
        assert_eq!(before.0, Some((Version(2), json!({"id": "a", "n": 2}))));
        store.close().await;
        drop(store);

        edit_engine(dir.path(), |_, docs, meta| {
            let keys: Vec<_> = docs.iter().map(|g| g.key().unwrap()).collect();
            assert_eq!(keys.len(), 2);
            for key in keys {
                docs.remove(key).unwrap();
            }
            meta.remove(layout::META_APPLIED).unwrap();
        });

        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(
            (doc(&store, "a"), doc(&store, "b"), doc(&store, "c")),
            before
        );
        // Versions and offsets go on from where they were.
        let ack = store
            .write_one(WriteOp::put(t.clone(), DocId::new("a").unwrap(), json!({}), None).unwrap())
            .await
            .unwrap()
            .into_ack()
            .unwrap();
        assert_eq!((ack.version, ack.offset), (Version(3), Offset(7)));
        let snapshot = store.snapshot().unwrap();
        assert_eq!(snapshot.offset(), Offset(7));
        store.close().await;
    }

    /// Only the tail is missing: documents up to `applied` stay as they are,
    /// the events after it are applied once.
    #[tokio::test]
    async fn only_the_events_after_applied_are_applied() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        insert(&store, json!({"id": "a", "n": 1})).await;
        store.close().await;
        drop(store);
        // Mark document `a` in the engine: re-applying offset 1 would
        // overwrite the mark.
        edit_engine(dir.path(), |_, docs, _| {
            docs.insert(
                layout::doc_key("t", "a"),
                DocRecord::encode(Version(1), br#"{"id":"a","kept":true}"#),
            )
            .unwrap();
        });
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(
            doc(&store, "a"),
            Some((Version(1), json!({"id": "a", "kept": true})))
        );
        insert(&store, json!({"id": "b"})).await;
        store.close().await;
        drop(store);
        edit_engine(dir.path(), |_, docs, meta| {
            docs.remove(layout::doc_key("t", "b")).unwrap();
            meta.insert(layout::META_APPLIED, 1u64.to_be_bytes())
                .unwrap();
        });
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(
            doc(&store, "a"),
            Some((Version(1), json!({"id": "a", "kept": true})))
        );
        assert_eq!(doc(&store, "b").map(|(v, _)| v), Some(Version(1)));
        store.close().await;
    }

    /// A first-format store whose retention removed every event: nothing is
    /// moved, and reads do not wait for documents that are long written.
    #[tokio::test]
    async fn a_first_format_store_with_an_empty_log_opens_ready() {
        let dir = tempfile::tempdir().unwrap();
        edit_engine(dir.path(), |db, docs, meta| {
            let _legacy = db
                .keyspace(layout::LEGACY_LOG, KeyspaceCreateOptions::default)
                .unwrap();
            meta.insert(layout::META_EPOCH, 5u64.to_be_bytes()).unwrap();
            meta.insert(layout::META_LOG_START, 41u64.to_be_bytes())
                .unwrap();
            meta.insert(layout::META_OFFSET_FLOOR, 41u64.to_be_bytes())
                .unwrap();
            docs.insert(
                layout::doc_key("t", "a"),
                DocRecord::encode(Version(3), br#"{"id":"a"}"#),
            )
            .unwrap();
        });
        let store = Arc::new(Store::open(dir.path(), StoreConfig::default()).unwrap());
        assert_eq!((store.head(), store.earliest()), (Offset(40), Offset(41)));
        // On its own thread: a read that hangs fails the test, not hangs it.
        let (reader, done) = std::sync::mpsc::channel();
        let reading = store.clone();
        std::thread::spawn(move || {
            let _ = reader.send(doc(&reading, "a").map(|(v, _)| v));
        });
        let got = done.recv_timeout(std::time::Duration::from_secs(10));
        assert_eq!(
            got,
            Ok(Some(Version(3))),
            "a read waited for documents that never come"
        );
        assert_eq!(store.snapshot().unwrap().offset(), Offset(40));
        let written = insert(&store, json!({"id": "b"})).await;
        assert_eq!(written.offset(), Offset(41));
        store.close().await;
    }

    /// A directory of the first format (the log in a fjall keyspace) is
    /// moved into segments on open, and everything goes on from it.
    #[tokio::test]
    async fn a_first_format_log_is_moved_into_segments() {
        let dir = tempfile::tempdir().unwrap();
        let epoch = Epoch(77);
        edit_engine(dir.path(), |db, docs, meta| {
            let log = db
                .keyspace(layout::LEGACY_LOG, KeyspaceCreateOptions::default)
                .unwrap();
            meta.insert(layout::META_EPOCH, epoch.0.to_be_bytes())
                .unwrap();
            meta.insert(layout::META_OFFSET_FLOOR, 4u64.to_be_bytes())
                .unwrap();
            for (offset, id) in [(1u64, "a"), (2, "b"), (3, "c")] {
                let doc = json!({"id": id});
                let event = Event {
                    offset: Offset(offset),
                    epoch,
                    ts: Timestamp(1000 + offset),
                    topic: "table:t".into(),
                    body: EventBody::Insert {
                        table: "t".into(),
                        id: id.into(),
                        version: Version(1),
                        changed: vec!["id".into()],
                        doc: doc.clone(),
                    },
                };
                let json = serde_json::to_vec(&event).unwrap();
                log.insert(
                    layout::log_key(Offset(offset)),
                    LogRecord::encode(Timestamp(1000 + offset), "table:t", &json),
                )
                .unwrap();
                docs.insert(
                    layout::doc_key("t", id),
                    DocRecord::encode(Version(1), &serde_json::to_vec(&doc).unwrap()),
                )
                .unwrap();
            }
        });

        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!((store.epoch(), store.head()), (epoch, Offset(3)));
        let chunk = store
            .read_log(Offset::ZERO, None, &TopicFilter::All, 10)
            .unwrap();
        let read: Vec<_> = chunk.records.iter().map(|r| (r.offset.0, r.ts.0)).collect();
        assert_eq!(read, [(1, 1001), (2, 1002), (3, 1003)]);
        assert_eq!(chunk.records[1].to_event().unwrap().offset, Offset(2));
        assert!(doc(&store, "c").is_some());
        let written = insert(&store, json!({"id": "d"})).await;
        assert_eq!(written.offset(), Offset(4));
        store.close().await;
        drop(store);

        let (db, _, _) = engine(dir.path());
        assert!(
            !db.list_keyspace_names()
                .iter()
                .any(|n| &**n == layout::LEGACY_LOG),
            "the old keyspace is dropped"
        );
        drop(db);
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(store.head(), Offset(4));
        assert_eq!(
            store
                .read_log(Offset::ZERO, None, &TopicFilter::All, 10)
                .unwrap()
                .records
                .len(),
            4
        );
        store.close().await;
    }
}
