//! The committer: the one thread that writes.
//!
//! Every mutation goes through here. Owning all write state on one thread
//! (the next offset, the offset floor, log size, the last timestamp) removes
//! every lock from the write path and makes group commit natural:
//!
//! 1. Take the first queued request, then whatever else is queued (up to
//!    [`MAX_GROUP`]) into one group, applying each as soon as it is taken.
//! 2. Apply each request to an overlay of the documents it touches. A request
//!    whose operation fails is dropped whole (its operations are atomic) and
//!    leaves no trace; later requests in the group do not see it.
//! 3. Give the surviving events offsets and timestamps, and serialize each
//!    once into the log's buffer.
//! 4. Write the group's records to the log with one `write` and make them
//!    durable with one `fdatasync` (group commit); answer every request of
//!    the group and broadcast the events; then write the group's documents
//!    into the documents' memtable, while the writers prepare their next
//!    requests (document readers wait for it: see `applied`).
//!
//! The log is the store's write-ahead log: an event is durable before
//! anything derived from it is written. The documents' tables record the
//! last offset they reflect, and opening the store re-applies the events
//! after it (see `docs` and `recover`), so documents lost with the memtable
//! come back from the log; retention removes events only once their
//! documents are flushed. Events become visible (in the log, to
//! subscribers) only after they are durable, so no one ever sees an offset
//! that a crash could take back.
//!
//! # Offsets are never reused
//! Before an offset at or above the persisted *floor* is handed out, the floor
//! is raised by [`FLOOR_STEP`], and the new floor and the group's log records
//! are synced before the group is answered, whatever the durability mode.
//! On open, the next offset is the largest of "last offset in the log + 1",
//! the floor and "last applied offset + 1". So even when `durability = "os"`
//! loses the tail of the log in a power cut, its offsets are skipped, not reused.
//! A clean shutdown lowers the floor to the next offset so restarts leave no gap.

use crate::apply;
use crate::config::{Durability, StoreConfig};
use crate::docs::{Docs, Read};
use crate::envelope::{self, Raw};
use crate::error::StoreError;
use crate::layout::{self, DocRecord};
use crate::log::Appender;
use crate::names::{DocId, TableName};
use crate::stats::{self, Appended};
use crate::store::{Committed, Shared};
use crate::write::{Derived, Op, Router, RowGuard, WriteOp, Written};
use bytes::Bytes;
use fjall::{Database, Keyspace, PersistMode};
use herald_proto::{Epoch, Event, EventBody, Offset, Timestamp, WriteAck};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{mpsc, oneshot};

/// Most requests committed together.
pub(crate) const MAX_GROUP: usize = 1024;
/// Most events a group's buffers are sized for in advance: after a burst
/// of large batches, small writes must not pay for buffers that size.
const MAX_PRESIZED_EVENTS: usize = 4096;
/// How far the offset floor is raised at a time.
pub(crate) const FLOOR_STEP: u64 = 1 << 20;
/// Longest a group waits for more writers before its fsync.
const MAX_GATHER: Duration = Duration::from_micros(150);

pub(crate) type Reply = oneshot::Sender<Result<Vec<Written>, StoreError>>;

/// What the committer is asked to do.
#[derive(Debug)]
pub(crate) enum Request {
    /// Apply these operations atomically.
    Write { ops: Vec<WriteOp>, reply: Reply },
    /// Enforce retention limits now.
    Trim,
    /// Finish queued work, persist, and stop.
    Close { reply: oneshot::Sender<()> },
}

/// The committer's state; lives on its own thread.
pub(crate) struct Committer {
    pub(crate) db: Database,
    pub(crate) docs: Docs,
    pub(crate) meta: Keyspace,
    pub(crate) appender: Appender,
    pub(crate) config: StoreConfig,
    pub(crate) epoch: Epoch,
    pub(crate) shared: Arc<Shared>,
    /// The offset the next event gets.
    pub(crate) next: Offset,
    /// No offset at or above this is durable-safe until the floor is raised.
    pub(crate) floor: u64,
    /// Timestamps never go backwards along the log.
    pub(crate) last_ts: Timestamp,
    pub(crate) log_bytes: u64,
}

/// Documents touched by the requests of one group (or one request), by key.
/// `None` means deleted.
type Overlay = HashMap<Vec<u8>, Option<DocRecord>>;

/// One group on its way to a single commit.
struct Group {
    /// The documents as the previous group left them.
    read: Read,
    /// Each document the group changed, as the group leaves it.
    overlay: Overlay,
    committed: Vec<Committed>,
    /// The events of `committed`, by kind.
    appended: Appended,
    /// It raised the offset floor: the new floor and the group's records
    /// must be synced before any answer, in any durability mode.
    raised_floor: bool,
}

/// What one successful request will write.
struct Pending {
    slots: Overlay,
    events: Vec<PendingEvent>,
}

/// An event waiting for its offset, with the JSON text of its parts that is
/// already encoded.
struct PendingEvent {
    topic: String,
    body: EventBody,
    doc: Option<Bytes>,
    old: Option<Bytes>,
    data: Option<Bytes>,
    /// Derived by the router: appended, but not one of the request's
    /// operations (no outcome of its own).
    derived: bool,
}

fn encode_json<T: serde::Serialize>(value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|e| StoreError::Corrupt(format!("encoding JSON: {e}")))
}

impl Committer {
    /// Runs until closed, or until every sender is gone.
    pub(crate) fn run(mut self, mut rx: mpsc::Receiver<Request>) {
        // Requests and events a group usually holds (decaying maxima): they
        // size the next group's buffers, so none grows while it is filled.
        let mut usual_group = 1usize;
        let mut usual_events = 1usize;
        while let Some(first) = rx.blocking_recv() {
            // Each write is applied as soon as it is taken from the queue, so
            // applying overlaps with the other writers still preparing theirs.
            let mut group = self.open_group(usual_events);
            let mut replies: Vec<(Reply, Result<Vec<Written>, StoreError>)> =
                Vec::with_capacity(usual_group);
            let mut trim = false;
            let mut close = None;
            let mut next = Some(first);
            let gather_until = Instant::now() + MAX_GATHER;
            // A trim or close ends the group, so requests take effect in the
            // order they were queued.
            while let Some(request) = next.take() {
                match request {
                    Request::Write { ops, reply } => {
                        let outcome = self.apply_request(&mut group, ops);
                        replies.push((reply, outcome));
                    }
                    Request::Trim => trim = true,
                    Request::Close { reply } => close = Some(reply),
                }
                if trim || close.is_some() || replies.len() >= MAX_GROUP {
                    break;
                }
                next = self.next_for_group(&mut rx, replies.len(), usual_group, gather_until);
            }
            usual_group = (usual_group * 15 / 16).max(replies.len()).max(1);
            usual_events = (usual_events * 15 / 16)
                .max(group.committed.len())
                .clamp(1, MAX_PRESIZED_EVENTS);
            if !replies.is_empty() {
                self.commit_group(group, replies);
            }
            if trim && let Err(e) = self.trim() {
                tracing::error!(error = %e, "log retention failed");
            }
            if let Some(reply) = close {
                rx.close();
                // Requests queued behind the close are refused: dropping their
                // reply senders answers them with `Closed`.
                while rx.try_recv().is_ok() {}
                self.shutdown();
                // Gone before the answer, with its handle on the documents:
                // the directory can be opened again once `close` returns.
                drop(self);
                let _ = reply.send(());
                return;
            }
        }
        self.shutdown();
    }

    /// The next queued request for the group being formed, if any.
    ///
    /// With `durability = "fsync"`, when fewer requests are queued than
    /// groups usually hold, waits briefly (until `until`) for the writers the
    /// last commit answered to send their next request: they then share this
    /// fsync instead of splitting into two cohorts that each pay for one
    /// (PostgreSQL's `commit_delay`, with the sibling count learned). A lone
    /// writer's usual group is 1, so it never waits.
    fn next_for_group(
        &self,
        rx: &mut mpsc::Receiver<Request>,
        have: usize,
        usual: usize,
        until: Instant,
    ) -> Option<Request> {
        loop {
            match rx.try_recv() {
                Ok(request) => return Some(request),
                Err(TryRecvError::Empty)
                    if self.config.durability == Durability::Fsync
                        && have < usual
                        && Instant::now() < until =>
                {
                    // Not `sleep`: its granularity (the timer slack is
                    // 50 µs) is a third of the whole wait.
                    std::thread::yield_now();
                }
                Err(_) => return None,
            }
        }
    }

    /// A group sized for `events` events (a document each).
    fn open_group(&self, events: usize) -> Group {
        Group {
            read: self.docs.read(),
            overlay: Overlay::with_capacity(events),
            committed: Vec::with_capacity(events),
            appended: Appended::default(),
            raised_floor: false,
        }
    }

    /// Makes an applied group durable with one sync, answers its requests,
    /// broadcasts its events, then writes its documents.
    fn commit_group(
        &mut self,
        group: Group,
        replies: Vec<(Reply, Result<Vec<Written>, StoreError>)>,
    ) {
        let Group {
            overlay,
            mut committed,
            appended,
            raised_floor,
            ..
        } = group;
        let last = committed.last().map(|c| c.event.offset);
        if let Some(last) = last {
            if let Err(e) = self.persist_log(raised_floor) {
                self.shared.fail(&e);
                let reason = e.to_string();
                for (reply, outcome) in replies {
                    let _ = reply.send(outcome.and(Err(StoreError::CommitFailed {
                        reason: reason.clone(),
                    })));
                }
                return;
            }
            metrics::histogram!(stats::COMMIT_GROUP_EVENTS).record(committed.len() as f64);
            // Counted before any reply is sent: an acknowledged write is
            // already in the stats.
            self.shared.counters.add(&appended);
            self.shared.counters.set_log_bytes(self.log_bytes);
            self.shared.head.store(last.0, Ordering::SeqCst);
            let durable_at = Instant::now();
            for event in &mut committed {
                event.durable_at = durable_at;
            }
            // No receivers is fine: nobody is subscribed.
            let _ = self.shared.events.send(committed.into());
        }
        for (reply, outcome) in replies {
            let _ = reply.send(outcome);
        }
        // The writers prepare their next requests while the documents are
        // written; readers wait for them (see `applied`).
        if let Some(last) = last {
            // A full segment is sealed between groups, so a group's records
            // stay in one file.
            let written = self
                .apply_docs(overlay, last)
                .and_then(|()| self.appender.roll_if_full(self.next));
            if let Err(e) = written {
                self.shared.fail(&e);
            }
        }
    }

    /// Writes the group's log records and makes them durable.
    fn persist_log(&mut self, raised_floor: bool) -> Result<(), StoreError> {
        self.appender.write()?;
        if raised_floor || self.config.durability == Durability::Fsync {
            let started = Instant::now();
            self.appender.sync()?;
            metrics::histogram!(stats::FSYNC_SECONDS).record(started.elapsed());
        }
        if raised_floor {
            self.write_meta(
                &[(layout::META_OFFSET_FLOOR, self.floor)],
                PersistMode::SyncData,
            )?;
        }
        Ok(())
    }

    /// Writes values of the `meta` keyspace in one batch, persisted `mode`.
    fn write_meta(&self, values: &[(&[u8], u64)], mode: PersistMode) -> Result<(), StoreError> {
        let mut batch = self.db.batch();
        for &(key, value) in values {
            batch.insert(&self.meta, key, value.to_be_bytes());
        }
        Ok(batch.durability(Some(mode)).commit()?)
    }

    /// Writes the documents of a group whose events are durable, up to `last`.
    fn apply_docs(&mut self, overlay: Overlay, last: Offset) -> Result<(), StoreError> {
        let changes = overlay.into_iter().map(|(key, slot)| {
            let record = slot.map(|rec| DocRecord::encode(rec.version, &rec.json));
            (key, record)
        });
        self.docs.commit(changes, last)?;
        self.shared.applied.raise(last);
        Ok(())
    }

    /// Applies one request's operations; on success stages them in `group`.
    fn apply_request(
        &mut self,
        group: &mut Group,
        ops: Vec<WriteOp>,
    ) -> Result<Vec<Written>, StoreError> {
        if let Some(reason) = self.shared.failure() {
            return Err(StoreError::CommitFailed {
                reason: reason.to_owned(),
            });
        }
        if ops.is_empty() {
            return Err(StoreError::EmptyBatch);
        }
        if ops.len() > self.config.max_batch_ops {
            return Err(StoreError::BatchTooLarge {
                len: ops.len(),
                max: self.config.max_batch_ops,
            });
        }
        let single = ops.len() == 1;
        // Per request, not per group: a rule changed once `set_router`
        // returned applies to every request taken after.
        let router = self
            .shared
            .router
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let mut pending = Pending {
            slots: Overlay::with_capacity(ops.len()),
            events: Vec::with_capacity(ops.len()),
        };
        for (index, op) in ops.into_iter().enumerate() {
            self.apply_op(op, group, router.as_ref(), &mut pending)
                .map_err(|e| {
                    if single {
                        e
                    } else {
                        StoreError::InBatch {
                            index,
                            source: Box::new(e),
                        }
                    }
                })?;
        }
        Ok(self.stage(group, pending))
    }

    fn apply_op(
        &self,
        WriteOp(op, guard): WriteOp,
        group: &Group,
        router: Option<&Router>,
        pending: &mut Pending,
    ) -> Result<(), StoreError> {
        // `old` is the stored JSON text of the document before the write.
        // `new` is the new document's JSON when the caller already encoded it.
        let (key, topic, body, old, new) = match op {
            Op::Publish {
                channel,
                data,
                json: data_json,
                from,
            } => {
                self.check_size(data_json.len())?;
                let topic = channel.as_str().to_owned();
                let body = EventBody::Publish {
                    channel: topic.clone(),
                    data,
                    from,
                };
                pending.events.push(PendingEvent {
                    topic,
                    body,
                    doc: None,
                    old: None,
                    data: Some(data_json),
                    derived: false,
                });
                return Ok(());
            }
            Op::Insert {
                table,
                id,
                doc,
                json,
            } => {
                let key = layout::doc_key(table.as_str(), id.as_str());
                let exists = match lookup(&pending.slots, &group.overlay, &key) {
                    Some(slot) => slot.is_some(),
                    None => group.read.contains(&key)?,
                };
                let body = apply::insert(&table, &id, doc, exists)?;
                (key, table.topic(), body, None, Some(json))
            }
            Op::Put {
                table,
                id,
                doc,
                json,
                expect,
            } => {
                let key = layout::doc_key(table.as_str(), id.as_str());
                let current = current(group, &pending.slots, &key)?;
                check_stored(guard.as_ref(), &table, &id, current.as_ref(), Hidden::No)?;
                let body = apply::put(&table, &id, doc, expect, current.as_ref())?;
                (
                    key,
                    table.topic(),
                    body,
                    current.map(|r| r.json),
                    Some(json),
                )
            }
            Op::Patch {
                table,
                id,
                patch,
                expect,
            } => {
                let key = layout::doc_key(table.as_str(), id.as_str());
                let current = current(group, &pending.slots, &key)?;
                check_stored(guard.as_ref(), &table, &id, current.as_ref(), Hidden::Yes)?;
                let body = apply::patch(&table, &id, &patch, expect, current.as_ref())?;
                (key, table.topic(), body, current.map(|r| r.json), None)
            }
            Op::Delete { table, id, expect } => {
                let key = layout::doc_key(table.as_str(), id.as_str());
                let current = current(group, &pending.slots, &key)?;
                check_stored(guard.as_ref(), &table, &id, current.as_ref(), Hidden::Yes)?;
                let body = apply::delete(&table, &id, expect, current.as_ref())?;
                (key, table.topic(), body, current.map(|r| r.json), None)
            }
        };
        if let Some(guard) = &guard
            && let EventBody::Insert { table, id, doc, .. }
            | EventBody::Update { table, id, doc, .. } = &body
            && !guard.admits(doc)
        {
            return Err(StoreError::RuleViolation {
                table: table.clone(),
                id: id.clone(),
                which: "the new row",
            });
        }
        // The new slot content follows from the event; its JSON is encoded
        // once, for the document record and for the envelope.
        let (slot, doc) = match &body {
            EventBody::Insert { version, doc, .. } | EventBody::Update { version, doc, .. } => {
                let json = match new {
                    Some(json) => json,
                    None => Bytes::from(encode_json(doc)?),
                };
                self.check_size(json.len())?;
                let record = DocRecord {
                    version: *version,
                    json: json.clone(),
                };
                (Some(record), Some(json))
            }
            EventBody::Delete { .. } | EventBody::Publish { .. } => (None, None),
        };
        pending.slots.insert(key, slot);
        let mut derived = Vec::new();
        if let Some(router) = router {
            router.derive(&body, &mut derived);
        }
        pending.events.push(PendingEvent {
            topic,
            body,
            doc,
            old,
            data: None,
            derived: false,
        });
        for Derived {
            channel,
            data,
            from,
        } in derived
        {
            let topic = channel.as_str().to_owned();
            pending.events.push(PendingEvent {
                body: EventBody::Publish {
                    channel: topic.clone(),
                    data,
                    from,
                },
                topic,
                doc: None,
                old: None,
                data: None,
                derived: true,
            });
        }
        Ok(())
    }

    fn check_size(&self, size: usize) -> Result<(), StoreError> {
        if size > self.config.max_doc_bytes {
            return Err(StoreError::DocTooLarge {
                size,
                max: self.config.max_doc_bytes,
            });
        }
        Ok(())
    }

    /// Gives a successful request's events their offsets and stages its writes.
    fn stage(&mut self, group: &mut Group, pending: Pending) -> Vec<Written> {
        group.overlay.extend(pending.slots);
        let mut written = Vec::with_capacity(pending.events.len());
        for pending_event in pending.events {
            let PendingEvent {
                topic,
                body,
                doc,
                old,
                data,
                derived,
            } = pending_event;
            let offset = self.assign_offset(group);
            let ts = self.tick();
            let event = Event {
                offset,
                epoch: self.epoch,
                ts,
                topic,
                body,
            };
            let raw = Raw {
                doc: doc.as_deref(),
                old: old.as_deref(),
                data: data.as_deref(),
            };
            let json = envelope::encode(&event, raw);
            self.log_bytes += self.appender.push(offset, ts, &event.topic, &json);
            group.appended.count(&event.body);
            if !derived {
                written.push(match &event.body {
                    EventBody::Insert { id, version, .. }
                    | EventBody::Update { id, version, .. }
                    | EventBody::Delete { id, version, .. } => Written::Doc(WriteAck {
                        id: id.clone(),
                        version: *version,
                        offset,
                    }),
                    EventBody::Publish { .. } => Written::Message { offset },
                });
            }
            group.committed.push(Committed {
                event: Arc::new(event),
                json: Bytes::from(json),
                // Set again once the group is durable.
                durable_at: Instant::now(),
            });
        }
        written
    }

    fn assign_offset(&mut self, group: &mut Group) -> Offset {
        let offset = self.next;
        self.next = offset.next();
        if offset.0 >= self.floor {
            self.floor = offset.0 + FLOOR_STEP;
            group.raised_floor = true;
        }
        offset
    }

    /// The first offset retention kept; the committer is its only writer.
    fn log_start(&self) -> Offset {
        Offset(self.shared.log_start.load(Ordering::SeqCst))
    }

    fn tick(&mut self) -> Timestamp {
        self.last_ts = self.last_ts.max(Timestamp::now());
        self.last_ts
    }

    /// Removes the oldest log records beyond the retention limits.
    fn trim(&mut self) -> Result<(), StoreError> {
        // After a failed write the documents may lag the head for good: the
        // log must keep what they lack.
        if let Some(reason) = self.shared.failure() {
            return Err(StoreError::CommitFailed {
                reason: reason.to_owned(),
            });
        }
        let retention = &self.config.retention;
        let oldest_kept = retention.max_age.map(|age| {
            Timestamp(
                Timestamp::now()
                    .0
                    .saturating_sub(u64::try_from(age.as_millis()).unwrap_or(u64::MAX)),
            )
        });
        let mut freed = 0u64;
        let mut last = None;
        let log_bytes = self.log_bytes;
        let head = Offset(self.shared.head.load(Ordering::SeqCst));
        self.appender.log().for_each_after(
            Offset(self.log_start().0.saturating_sub(1)),
            head,
            |record| {
                let over_size = retention
                    .max_bytes
                    .is_some_and(|max| log_bytes - freed > max);
                let too_old = oldest_kept.is_some_and(|oldest| record.ts < oldest);
                if !(over_size || too_old) {
                    return false;
                }
                freed += record.size;
                last = Some((record.offset, record.ts));
                true
            },
        )?;
        let Some((last, last_ts)) = last else {
            return Ok(());
        };
        // The documents' engine keeps no journal: the log is the only record
        // of changes not yet in its tables, so those must be flushed first.
        self.docs.flush_through(last)?;
        let start = last.next();
        // Announce the new start before removing anything, so a reader that
        // raced the removal notices it (see `Store::read_log`).
        // `trimmed_ts` first: a reader that sees the new start then also
        // sees the new timestamp (see `Store::position_at`).
        self.shared.trimmed_ts.store(last_ts.0, Ordering::SeqCst);
        self.shared.log_start.store(start.0, Ordering::SeqCst);
        self.log_bytes -= freed;
        self.shared.counters.set_log_bytes(self.log_bytes);
        // Durable before any file goes, so the start never falls back below
        // a removed segment.
        self.write_meta(
            &[
                (layout::META_LOG_START, start.0),
                (layout::META_TRIMMED_TS, last_ts.0),
            ],
            PersistMode::SyncData,
        )?;
        let removed = self.appender.log().remove_before(start)?;
        tracing::debug!(start = %start, freed, segments = removed, "log retention removed old events");
        Ok(())
    }

    /// Persists everything and lowers the floor so a clean restart has no gap.
    fn shutdown(&mut self) {
        // Subscriptions end once they have delivered what was committed.
        self.shared.closed.send_replace(true);
        // The documents' flushes and compactions end with the store (the
        // directory may be opened again right after).
        self.docs.stop();
        if self.shared.failure().is_some() {
            return;
        }
        if let Err(e) = self.appender.sync() {
            tracing::error!(error = %e, "final sync of the log failed");
            return;
        }
        // Not needed for safety (opening re-applies the log), but it makes
        // the next open quick.
        if let Err(e) = self.docs.flush_now() {
            tracing::error!(error = %e, "final flush of the documents failed");
        }
        let floor = [(layout::META_OFFSET_FLOOR, self.next.0)];
        if let Err(e) = self.write_meta(&floor, PersistMode::SyncAll) {
            tracing::error!(error = %e, "final persist failed");
        }
    }
}

impl Drop for Committer {
    /// However the committer ends (closed, or a panic), readers waiting for
    /// documents must not wait for it any longer.
    fn drop(&mut self) {
        self.shared.applied.stop();
    }
}

/// The current record of a slot: this request's own writes first, then
/// the group's, then what is committed.
fn current(group: &Group, mine: &Overlay, key: &[u8]) -> Result<Option<DocRecord>, StoreError> {
    match lookup(mine, &group.overlay, key) {
        Some(slot) => Ok(slot.clone()),
        None => group
            .read
            .get(key)?
            .map(|v| DocRecord::decode(&v))
            .transpose(),
    }
}

fn lookup<'a>(mine: &'a Overlay, group: &'a Overlay, key: &[u8]) -> Option<&'a Option<DocRecord>> {
    mine.get(key).or_else(|| group.get(key))
}

/// Whether a stored row the guard refuses reads as missing.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Hidden {
    /// Patch and delete: the writer may not learn the row exists, so it is
    /// `NotFound`, checked before versions (an `If-Match` must not probe it).
    Yes,
    /// Put: creating and replacing share the path, so a taken id is
    /// refused as a rule violation.
    No,
}

/// A guarded operation's stored row (if any) must pass the guard.
fn check_stored(
    guard: Option<&RowGuard>,
    table: &TableName,
    id: &DocId,
    current: Option<&DocRecord>,
    hidden: Hidden,
) -> Result<(), StoreError> {
    let (Some(guard), Some(current)) = (guard, current) else {
        return Ok(());
    };
    if guard.admits(&serde_json::Value::Object(current.to_map()?)) {
        return Ok(());
    }
    Err(match hidden {
        Hidden::Yes => StoreError::NotFound {
            table: table.to_string(),
            id: id.to_string(),
        },
        Hidden::No => StoreError::RuleViolation {
            table: table.to_string(),
            id: id.to_string(),
            which: "the stored row",
        },
    })
}
