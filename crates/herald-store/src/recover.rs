//! Opening after a crash or from an older format: bringing the documents up
//! to the log, moving documents kept in the engine's `docs` keyspace into
//! their own tree, and moving a first-format log into segments.
//!
//! The log is written (and synced) before the documents it implies, and
//! the documents' tables record the last offset they reflect (`applied`,
//! see `docs`). So on open the documents may lag the log, never lead it (in
//! `fsync` mode), and re-applying the events after `applied` (their new
//! document, or their deletion) brings them level; applying an event twice
//! changes nothing.

use crate::docs::{Change, Docs};
use crate::error::StoreError;
use crate::layout::{self, DocRecord, LogRecord};
use crate::log::{Appender, Log, Opened, Writes};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use herald_proto::{Event, EventBody, Offset, Timestamp};
use std::collections::HashMap;
use std::path::Path;

/// Events re-applied (or records moved) per batch.
const CHUNK: usize = 1024;

/// Opens the log in `dir`, moves a first-format log into it, and brings
/// the documents up to it. Returns the log (its `bytes` counted from
/// `log_start`) and the last offset whose effect is in the documents.
pub(crate) fn open_log(
    db: &Database,
    meta: &Keyspace,
    docs: &Docs,
    dir: &Path,
    writes: Writes,
    log_start: Offset,
) -> Result<(Opened, Offset), StoreError> {
    migrate_engine_docs(db, meta, docs)?;
    // A new log's first segment is named by the log's start: at or below
    // every record it will hold, also those moved from the first format.
    let mut opened = Log::open(dir, log_start, writes, log_start)?;
    let in_segments = opened.last.map(|(o, _)| o);
    if let Some(moved) = migrate_legacy_log(db, docs, &mut opened.appender, in_segments)? {
        opened.last = moved.last.or(opened.last);
        opened.bytes += moved.bytes;
    }
    // Retention removes only events whose documents are flushed, so
    // everything below the log's start is applied.
    let applied = docs.applied().max(Offset(log_start.0.saturating_sub(1)));
    let head = opened
        .last
        .map_or(Offset(log_start.0.saturating_sub(1)), |(o, _)| o);
    if applied > head {
        // The engine kept documents whose events the log no longer has:
        // with `durability = "os"`, the log's unsynced tail lost in a power
        // cut; with "fsync", damage the torn-tail cut removed.
        tracing::error!(%applied, %head, "documents are ahead of the log: events after the head are lost; their offsets will be skipped");
    }
    let caught_up = catch_up_docs(docs, &opened.log, applied, head)?;
    Ok((opened, caught_up))
}

/// Re-applies the log's events after `applied` (up to its `head`) to the
/// documents, which then say they reach the last one (or `applied`, when
/// retention took the events up to there: snapshots start from the log's
/// start); returns that offset. Not flushed: the log still holds them.
fn catch_up_docs(
    docs: &Docs,
    log: &Log,
    applied: Offset,
    head: Offset,
) -> Result<Offset, StoreError> {
    // By key, so that a chunk holds each document once, as its last event
    // left it.
    let mut chunk = HashMap::new();
    let mut last = applied;
    let mut failed = None;
    let mut count = 0u64;
    log.for_each_after(applied, head, |record| {
        let step = apply(&mut chunk, record.offset, record.json).and_then(|()| {
            last = record.offset;
            count += 1;
            if chunk.len() >= CHUNK {
                docs.commit(chunk.drain(), last)?;
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
    docs.commit(chunk, last)?;
    if count > 0 {
        tracing::info!(from = %applied.next(), to = %last, events = count, "documents brought up to the log");
    }
    Ok(last)
}

/// Stages one event's effect on its document.
fn apply(
    chunk: &mut HashMap<Vec<u8>, Option<Vec<u8>>>,
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
            chunk.insert(
                layout::doc_key(&table, &id),
                Some(DocRecord::encode(version, &json)),
            );
        }
        EventBody::Delete { table, id, .. } => {
            chunk.insert(layout::doc_key(&table, &id), None);
        }
        EventBody::Publish { .. } => {}
    }
    Ok(())
}

/// Moves the documents of the engine's `docs` keyspace (where stores kept
/// them before they had a tree of their own) into the tree, with the
/// `applied` mark that came with them, then drops the keyspace. Copying
/// again after an interruption writes the same records.
fn migrate_engine_docs(db: &Database, meta: &Keyspace, docs: &Docs) -> Result<(), StoreError> {
    if !db
        .list_keyspace_names()
        .iter()
        .any(|name| &**name == layout::LEGACY_DOCS)
    {
        return Ok(());
    }
    let old = db.keyspace(layout::LEGACY_DOCS, KeyspaceCreateOptions::default)?;
    let recorded = layout::read_meta(meta, layout::META_APPLIED)?.unwrap_or(0);
    // An interrupted move left the same mark in the tree; never lower it.
    let applied = Offset(recorded).max(docs.applied());
    let mut chunk: Vec<Change> = Vec::with_capacity(CHUNK);
    let mut moved = 0u64;
    for guard in old.iter() {
        let (key, value) = guard.into_inner()?;
        chunk.push((key.to_vec(), Some(value.to_vec())));
        if chunk.len() >= CHUNK {
            moved += chunk.len() as u64;
            docs.commit(chunk.drain(..), applied)?;
        }
    }
    moved += chunk.len() as u64;
    docs.commit(chunk, applied)?;
    docs.flush_now()?;
    db.delete_keyspace(old)?;
    meta.remove(layout::META_APPLIED)?;
    db.persist(PersistMode::SyncAll)?;
    tracing::info!(
        documents = moved,
        "moved the documents from the engine's keyspace into their own tree"
    );
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
    docs: &Docs,
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
        docs.commit(std::iter::empty(), offset)?;
        docs.flush_now()?;
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

    /// Changes the engine's data directly, as an older version could have
    /// left it (documents in the `docs` keyspace), and syncs the change.
    fn edit_engine(dir: &std::path::Path, change: impl FnOnce(&Database, &Keyspace, &Keyspace)) {
        let (db, docs, meta) = engine(dir);
        change(&db, &docs, &meta);
        db.persist(PersistMode::SyncAll).unwrap();
    }

    fn engine(dir: &std::path::Path) -> (Database, Keyspace, Keyspace) {
        let db = Database::builder(dir).open().unwrap();
        let docs = db
            .keyspace(layout::LEGACY_DOCS, KeyspaceCreateOptions::default)
            .unwrap();
        let meta = db
            .keyspace(layout::META, KeyspaceCreateOptions::default)
            .unwrap();
        (db, docs, meta)
    }

    fn keyspace_names(db: &Database) -> Vec<String> {
        db.list_keyspace_names()
            .iter()
            .map(|n| n.to_string())
            .collect()
    }

    /// Writes `changes` into the documents' tables directly, then records
    /// `flushed` as the last offset they reflect (as a crash between a
    /// flush and its record leaves them, when `flushed` is lower).
    fn edit_docs(dir: &std::path::Path, changes: Vec<Change>, flushed: Offset) {
        let docs_dir = dir.join(layout::DOCS_DIR);
        let docs = Docs::open(&docs_dir, 1 << 20).unwrap();
        docs.commit(changes, flushed).unwrap();
        docs.flush_now().unwrap();
        drop(docs);
        crate::docs::write_flushed(&docs_dir, flushed).unwrap();
    }

    /// The ids of table `t` in the documents' tables.
    fn ids_in_tables(dir: &std::path::Path) -> Vec<String> {
        let docs = Docs::open(&dir.join(layout::DOCS_DIR), 1 << 20).unwrap();
        let prefix = layout::table_prefix("t");
        let mut end = prefix.clone();
        *end.last_mut().unwrap() = 1;
        docs.read()
            .range(prefix.clone()..end)
            .map(|pair| String::from_utf8(pair.unwrap().0[prefix.len()..].to_vec()).unwrap())
            .collect()
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

    /// The documents' tables are lost (as if nothing had been flushed
    /// before a crash): every document and the record of what was flushed
    /// go, the log stays. Opening brings the documents back from the log.
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

        assert_eq!(ids_in_tables(dir.path()), ["a", "c"], "flushed on close");
        std::fs::remove_dir_all(dir.path().join(layout::DOCS_DIR)).unwrap();

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
        let marked = DocRecord::encode(Version(1), br#"{"id":"a","kept":true}"#);
        edit_docs(
            dir.path(),
            vec![(layout::doc_key("t", "a"), Some(marked))],
            Offset(1),
        );
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(
            doc(&store, "a"),
            Some((Version(1), json!({"id": "a", "kept": true})))
        );
        insert(&store, json!({"id": "b"})).await;
        store.close().await;
        drop(store);
        edit_docs(
            dir.path(),
            vec![(layout::doc_key("t", "b"), None)],
            Offset(1),
        );
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

        let db = Database::builder(dir.path()).open().unwrap();
        let names = keyspace_names(&db);
        assert!(
            !names.contains(&layout::LEGACY_LOG.to_owned())
                && !names.contains(&layout::LEGACY_DOCS.to_owned()),
            "the old keyspaces are dropped: {names:?}"
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

    /// A store of the second format (documents in the engine's `docs`
    /// keyspace, their `applied` mark in `meta`) opens with its documents
    /// moved into their own tree: those the keyspace held, and those of
    /// the events after its mark, re-applied from the log.
    #[tokio::test]
    async fn documents_in_the_engine_keyspace_move_into_their_own_tree() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        for id in ["a", "b", "c"] {
            insert(&store, json!({"id": id})).await;
        }
        store.close().await;
        drop(store);
        // As the second format left it: the keyspace has `a` (marked, so
        // that copying it rather than re-applying offset 1 shows) and `b`,
        // and reflects the log up to offset 2; `c` (offset 3) is in the
        // log only.
        std::fs::remove_dir_all(dir.path().join(layout::DOCS_DIR)).unwrap();
        edit_engine(dir.path(), |_, docs, meta| {
            let a = DocRecord::encode(Version(1), br#"{"id":"a","kept":true}"#);
            docs.insert(layout::doc_key("t", "a"), a).unwrap();
            let b = DocRecord::encode(Version(1), br#"{"id":"b"}"#);
            docs.insert(layout::doc_key("t", "b"), b).unwrap();
            meta.insert(layout::META_APPLIED, 2u64.to_be_bytes())
                .unwrap();
        });

        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert_eq!(
            doc(&store, "a"),
            Some((Version(1), json!({"id": "a", "kept": true})))
        );
        assert_eq!(doc(&store, "b"), Some((Version(1), json!({"id": "b"}))));
        assert_eq!(doc(&store, "c"), Some((Version(1), json!({"id": "c"}))));
        assert_eq!(store.snapshot().unwrap().offset(), Offset(3));
        assert_eq!(insert(&store, json!({"id": "d"})).await.offset(), Offset(4));
        store.close().await;
        drop(store);

        let db = Database::builder(dir.path()).open().unwrap();
        assert!(
            !keyspace_names(&db).contains(&layout::LEGACY_DOCS.to_owned()),
            "the old keyspace is dropped"
        );
        let meta = db
            .keyspace(layout::META, KeyspaceCreateOptions::default)
            .unwrap();
        assert_eq!(
            layout::read_meta(&meta, layout::META_APPLIED).unwrap(),
            None
        );
        drop((db, meta));
        assert_eq!(ids_in_tables(dir.path()), ["a", "b", "c", "d"]);
    }

    /// A snapshot held past its store's close keeps the documents' tree
    /// open: the directory is refused (rather than shared by two trees)
    /// until the snapshot goes.
    #[tokio::test]
    async fn a_snapshot_held_past_close_keeps_the_directory_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        insert(&store, json!({"id": "a"})).await;
        let snapshot = store.snapshot().unwrap();
        store.close().await;
        drop(store);
        let Err(StoreError::Io { source, .. }) = Store::open(dir.path(), StoreConfig::default())
        else {
            panic!("opened while a snapshot of the closed store is held");
        };
        assert!(source.to_string().contains("snapshot"), "{source}");
        let page = snapshot.scan(&TableName::new("t").unwrap(), None, 10, |_| true);
        assert_eq!(page.unwrap().docs.len(), 1, "the snapshot still reads");
        drop(snapshot);
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        assert!(doc(&store, "a").is_some());
        store.close().await;
    }
}
