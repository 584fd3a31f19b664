//! Opening after a crash or from an older format: bringing the documents up
//! to the log, and moving a first-format log into segments.
//!
//! The log is written (and synced) before the documents it implies, and
//! each document batch records the last offset it reflects (`applied`). So
//! on open the documents may lag the log, never lead it (in `fsync` mode),
//! and re-applying the events after `applied` (their new document, or their
//! deletion) brings them level; applying an event twice changes nothing.

use crate::error::StoreError;
use crate::layout::{self, DocRecord, LogRecord};
use crate::log::{Appender, Log};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};
use herald_proto::{Event, EventBody, Offset, Timestamp};

/// Events re-applied per engine batch.
const CHUNK: usize = 1024;

/// Re-applies the log's events after `applied` to the documents; returns the
/// last offset applied (`applied` when there was nothing to do).
pub(crate) fn catch_up_docs(
    db: &Database,
    docs: &Keyspace,
    meta: &Keyspace,
    log: &Log,
    applied: Offset,
) -> Result<Offset, StoreError> {
    let mut batch = db.batch();
    let mut last = applied;
    let mut failed = None;
    let mut count = 0u64;
    log.for_each_after(applied, |record| {
        let step = apply(&mut batch, docs, record.offset, record.json).and_then(|()| {
            last = record.offset;
            count += 1;
            if batch.len() >= CHUNK {
                let full = std::mem::replace(&mut batch, db.batch());
                commit(full, meta, last)?;
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
        commit(batch, meta, last)?;
        db.persist(PersistMode::SyncAll)?;
        tracing::info!(from = %applied.next(), to = %last, events = count, "documents brought up to the log");
    }
    Ok(last)
}

fn commit(mut batch: fjall::OwnedWriteBatch, meta: &Keyspace, last: Offset) -> Result<(), StoreError> {
    batch.insert(meta, layout::META_APPLIED, last.0.to_be_bytes());
    batch.durability(Some(PersistMode::Buffer)).commit()?;
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
            batch.insert(docs, layout::doc_key(&table, &id), DocRecord::encode(version, &json));
        }
        EventBody::Delete { table, id, .. } => batch.remove(docs, layout::doc_key(&table, &id)),
        EventBody::Publish { .. } => {}
    }
    Ok(())
}

/// Moves the records of a first-format `log` keyspace that the segments do
/// not hold yet (so an interrupted move resumes) into the log, then drops
/// the keyspace. In that format documents and events were written
/// atomically, so every record moved is already applied. Returns the last
/// record moved, if any.
pub(crate) fn migrate_legacy_log(
    db: &Database,
    appender: &mut Appender,
    after: Option<Offset>,
) -> Result<Option<(Offset, Timestamp)>, StoreError> {
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
    for guard in legacy.range(layout::log_key(from)..) {
        let (key, value) = guard.into_inner()?;
        let offset = layout::decode_log_key(&key)?;
        let (ts, topic, json) = LogRecord::split(&value)?;
        appender.push(offset, ts, topic, json);
        last = Some((offset, ts));
        moved += 1;
        if moved.is_multiple_of(CHUNK as u64) {
            appender.write()?;
            appender.roll_if_full(offset.next())?;
        }
    }
    appender.write()?;
    appender.sync()?;
    db.delete_keyspace(legacy)?;
    db.persist(PersistMode::SyncAll)?;
    tracing::info!(events = moved, "moved the log from the engine into segment files");
    Ok(last)
}
