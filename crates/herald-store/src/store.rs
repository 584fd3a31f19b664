//! The store handle: open, write through the committer, read directly.

use crate::applied::Applied;
use crate::committer::{Committer, Request};
use crate::config::{Durability, StoreConfig};
use crate::docs::{Docs, Read};
use crate::error::{StoreError, io_error};
use crate::layout::{self, DocRecord, LogRecord};
use crate::log::{Log, Opened, Writes};
use crate::names::{DocId, TableName};
use crate::recover;
use crate::stats::{Counters, StoreStats};
use crate::write::{Router, WriteOp, Written};
use bytes::Bytes;
use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use herald_proto::{Epoch, Event, Offset, ResumeToken, Timestamp};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

/// Requests waiting for the committer; writers wait (async) when it is full.
const QUEUE: usize = 4096;
/// Most bytes of records one `read_log` or `scan` call returns (past the
/// first), whatever its `limit`: client-driven reads stay bounded in memory.
const MAX_STEP_BYTES: usize = 8 << 20;
/// Block cache of the fjall engine, which holds only metadata and settings
/// (the documents' tree has `StoreConfig::cache_bytes`).
const ENGINE_CACHE_BYTES: u64 = 4 << 20;
/// Retention checks more often than this would only steal commit groups.
const MIN_RETENTION_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);
/// Smaller log segments would mean a file per handful of events.
const MIN_SEGMENT_BYTES: u64 = 4096;
/// Committed groups kept for live subscribers; a slower one reads the log.
const BROADCAST: usize = 1024;

/// An event that is durable: its parsed form and its wire JSON, shared.
#[derive(Debug, Clone)]
pub struct Committed {
    /// The event.
    pub event: Arc<Event>,
    /// The event envelope as JSON, serialized once.
    pub json: Bytes,
    /// When it became durable (for delivery latency).
    pub durable_at: std::time::Instant,
}

/// State the committer publishes to readers.
///
/// Only atomics and a broadcast sender: readers never take a lock.
#[derive(Debug)]
pub(crate) struct Shared {
    /// The last durable offset (0 when the log is empty).
    pub(crate) head: AtomicU64,
    /// How far documents reflect the log; document reads wait for the head.
    pub(crate) applied: Applied,
    /// Why writing failed, once it has: the store refuses every later write
    /// (the log's tail is in an unknown state until it is reopened).
    pub(crate) failure: std::sync::OnceLock<String>,
    /// Every offset below this was removed by retention.
    pub(crate) log_start: AtomicU64,
    /// Timestamp of the newest event removed by retention (0: none).
    pub(crate) trimmed_ts: AtomicU64,
    /// Every committed group, in order.
    pub(crate) events: broadcast::Sender<Arc<[Committed]>>,
    /// Becomes `true` when the committer has stopped: nothing more will be
    /// committed, so live subscriptions can end.
    pub(crate) closed: watch::Sender<bool>,
    /// Events appended and log size, for [`Store::stats`].
    pub(crate) counters: Counters,
    /// Derives channel messages from document changes; the committer takes
    /// a copy at the start of each group (a write lock only to replace it).
    pub(crate) router: std::sync::RwLock<Option<Router>>,
}

impl Shared {
    /// Why writing failed, if it has.
    pub(crate) fn failure(&self) -> Option<&str> {
        self.failure.get().map(String::as_str)
    }

    /// Stops the store from writing for good (the first failure is kept),
    /// and releases readers waiting for documents that will not come.
    pub(crate) fn fail(&self, error: &StoreError) {
        tracing::error!(%error, "writing failed; the store refuses further writes");
        let _ = self.failure.set(error.to_string());
        self.applied.stop();
    }
}

/// An embedded store of JSON documents and its change log.
///
/// Writes go to one committer thread (group commit); reads go straight to
/// the engine from any thread.
pub struct Store {
    requests: mpsc::Sender<Request>,
    shared: Arc<Shared>,
    docs: Docs,
    log: Arc<Log>,
    pub(crate) settings: Keyspace,
    epoch: Epoch,
    max_doc_bytes: usize,
    // Keeps the engine (metadata and settings) open as long as the handle.
    pub(crate) db: Database,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("epoch", &self.epoch)
            .field("head", &self.head())
            .field("earliest", &self.earliest())
            .finish_non_exhaustive()
    }
}

/// A page of documents from [`Store::scan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// `(id, record)` pairs in id order (reversed if asked).
    pub docs: Vec<(String, DocRecord)>,
    /// Pass as `after` to get the next page; `None` when this was the last.
    pub next_after: Option<String>,
}

/// Which topics a log read returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicFilter {
    /// Every event.
    All,
    /// Changes of every table (`table:*`).
    AllTables,
    /// One topic.
    Exact(String),
}

impl TopicFilter {
    /// Whether `topic` is selected.
    #[must_use]
    pub fn matches(&self, topic: &str) -> bool {
        match self {
            TopicFilter::All => true,
            TopicFilter::AllTables => topic.starts_with("table:"),
            TopicFilter::Exact(t) => t == topic,
        }
    }
}

/// One chunk of a log read.
#[derive(Debug, Clone)]
pub struct LogChunk {
    /// Matching records, in offset order.
    pub records: Vec<LogRecord>,
    /// The last offset examined: continue from here.
    pub next_after: Offset,
    /// Nothing more to read (reached `to` or the end of the log).
    pub done: bool,
}

impl Store {
    /// Opens (or creates) a store in `dir`.
    ///
    /// Recovery is automatic: the log's torn tail (if any) is cut off, the
    /// documents are brought up to the log, and the next offset is derived
    /// from the log and the persisted offset floor (see `recover`).
    pub fn open(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Store, StoreError> {
        if config.retention.is_enabled() && config.retention.check_interval < MIN_RETENTION_INTERVAL
        {
            return Err(StoreError::InvalidConfig(format!(
                "store.retention.check_interval must be at least {MIN_RETENTION_INTERVAL:?}"
            )));
        }
        if config.segment_bytes < MIN_SEGMENT_BYTES {
            return Err(StoreError::InvalidConfig(format!(
                "store.segment_bytes must be at least {MIN_SEGMENT_BYTES}"
            )));
        }
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        // The engine holds only metadata and settings: small, so its cache is.
        let db = Database::builder(dir)
            .manual_journal_persist(true)
            .cache_size(ENGINE_CACHE_BYTES)
            .open()?;
        let docs = Docs::open(&dir.join(layout::DOCS_DIR), config.cache_bytes)?;
        let meta = db.keyspace(layout::META, KeyspaceCreateOptions::default)?;
        let settings = db.keyspace(layout::SETTINGS, KeyspaceCreateOptions::default)?;

        let read_meta = |key| layout::read_meta(&meta, key);
        let epoch = match read_meta(layout::META_EPOCH)? {
            Some(e) => Epoch(e),
            None => {
                let epoch = Epoch(rand::random::<u64>() | 1);
                meta.insert(layout::META_EPOCH, epoch.0.to_be_bytes())?;
                db.persist(fjall::PersistMode::SyncAll)?;
                tracing::info!(%epoch, dir = %dir.display(), "created a new store");
                epoch
            }
        };
        let log_start = Offset(read_meta(layout::META_LOG_START)?.unwrap_or(1));
        let trimmed_ts = read_meta(layout::META_TRIMMED_TS)?.unwrap_or(0);
        let floor = read_meta(layout::META_OFFSET_FLOOR)?.unwrap_or(1);
        let writes = Writes {
            segment_bytes: config.segment_bytes,
            direct: config.durability == Durability::Fsync,
        };
        let (
            Opened {
                log,
                appender,
                last: last_record,
                bytes: log_bytes,
            },
            applied,
        ) = recover::open_log(&db, &meta, &docs, dir, writes, log_start)?;
        // With the log emptied by retention, the head and the clock continue
        // from what was trimmed.
        let (last_offset, last_ts) =
            last_record.unwrap_or((Offset(log_start.0.saturating_sub(1)), Timestamp(trimmed_ts)));
        let next = Offset(floor.max(last_offset.next().0).max(applied.next().0));

        let (events, _) = broadcast::channel(BROADCAST);
        let shared = Arc::new(Shared {
            head: AtomicU64::new(last_offset.0),
            applied: Applied::new(applied),
            failure: std::sync::OnceLock::new(),
            log_start: AtomicU64::new(log_start.0),
            trimmed_ts: AtomicU64::new(trimmed_ts),
            events,
            closed: watch::Sender::new(false),
            counters: Counters::new(log_bytes),
            router: std::sync::RwLock::new(None),
        });
        let committer = Committer {
            db: db.clone(),
            docs: docs.clone(),
            meta,
            appender,
            config: config.clone(),
            epoch,
            shared: shared.clone(),
            next,
            floor,
            last_ts,
            log_bytes,
        };
        let (requests, rx) = mpsc::channel(QUEUE);
        std::thread::Builder::new()
            .name("herald-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(io_error(dir))?;
        if config.retention.is_enabled() {
            spawn_retention_ticker(requests.downgrade(), config.retention.check_interval);
        }
        tracing::info!(%epoch, head = %last_offset, next = %next, "store open");
        Ok(Store {
            requests,
            shared,
            docs,
            log,
            settings,
            epoch,
            max_doc_bytes: config.max_doc_bytes,
            db,
        })
    }

    /// Applies `ops` atomically and durably; answers once they are fsynced
    /// (or written to the OS with `durability = "os"`).
    ///
    /// Concurrent calls share one fsync. A failing operation fails the whole
    /// call (as [`StoreError::InBatch`] when there are several) and nothing of
    /// it is written.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<Vec<Written>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Write { ops, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Writes one operation; see [`Store::write`].
    pub async fn write_one(&self, op: WriteOp) -> Result<Written, StoreError> {
        let mut written = self.write(vec![op]).await?;
        written.pop().ok_or(StoreError::Closed)
    }

    /// The largest document (or message payload) accepted, in bytes.
    #[must_use]
    pub fn max_doc_bytes(&self) -> usize {
        self.max_doc_bytes
    }

    /// Installs (or, with `None`, removes) the router that derives channel
    /// messages from document changes. Groups committed from now on use it;
    /// each derived message is appended in the same atomic write as the
    /// change it comes from.
    pub fn set_router(&self, router: Option<Router>) {
        *self
            .shared
            .router
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = router;
    }

    /// Finishes queued writes, persists everything and stops the committer.
    /// Later writes fail with [`StoreError::Closed`]. Idempotent.
    pub async fn close(&self) {
        let (reply, done) = oneshot::channel();
        if self.requests.send(Request::Close { reply }).await.is_ok() {
            let _ = done.await;
        }
    }

    /// Asks the committer to enforce retention limits now.
    pub async fn enforce_retention(&self) -> Result<(), StoreError> {
        self.requests
            .send(Request::Trim)
            .await
            .map_err(|_| StoreError::Closed)?;
        // A write round-trip orders us after the trim.
        let (reply, answer) = oneshot::channel();
        self.requests
            .send(Request::Write {
                ops: Vec::new(),
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        let _ = answer.await;
        Ok(())
    }

    /// Reads one document.
    pub fn get(&self, table: &TableName, id: &DocId) -> Result<Option<DocRecord>, StoreError> {
        self.wait_for_docs();
        self.docs
            .read()
            .get(&layout::doc_key(table.as_str(), id.as_str()))?
            .map(|v| DocRecord::decode(&v))
            .transpose()
    }

    /// Waits (at most one group's document write) until the documents
    /// reflect every acknowledged write: see `applied`.
    fn wait_for_docs(&self) {
        self.shared.applied.wait_for(self.head());
    }

    /// Reads documents of a table in id order (or reverse), starting after
    /// the id `after`, keeping those `keep` accepts, until `limit` are kept
    /// or 8 MiB of them are; `next_after` is set whenever there may be more.
    pub fn scan(
        &self,
        table: &TableName,
        after: Option<&str>,
        reverse: bool,
        limit: usize,
        keep: impl FnMut(&DocRecord) -> bool,
    ) -> Result<Page, StoreError> {
        self.wait_for_docs();
        scan_docs(&self.docs.read(), table, after, reverse, limit, keep)
    }

    /// A consistent view of every document as of one log offset, for
    /// snapshots that must line up exactly with the events that follow.
    ///
    /// The view holds every acknowledged write, and only durable ones: its
    /// offset is at or below [`Store::head`].
    pub fn snapshot(&self) -> Result<DocSnapshot, StoreError> {
        self.wait_for_docs();
        Ok(DocSnapshot {
            read: self.docs.read(),
        })
    }

    /// Reads the log after `after` (exclusive) up to `to` (inclusive), keeping
    /// records whose topic `topics` selects, at most `limit` of them and about
    /// 8 MiB.
    ///
    /// Fails with [`StoreError::Unrecoverable`] when retention has removed
    /// events after `after`. Call again with `next_after` until `done`.
    pub fn read_log(
        &self,
        after: Offset,
        to: Option<Offset>,
        topics: &TopicFilter,
        limit: usize,
    ) -> Result<LogChunk, StoreError> {
        self.read_log_capped(after, to, topics, limit, MAX_STEP_BYTES)
    }

    /// [`Store::read_log`], stopping after about `max_bytes` of records
    /// (past the first): for readers that hold their chunk a while.
    pub fn read_log_capped(
        &self,
        after: Offset,
        to: Option<Offset>,
        topics: &TopicFilter,
        limit: usize,
        max_bytes: usize,
    ) -> Result<LogChunk, StoreError> {
        self.check_recoverable(after)?;
        // Never past the head: records after it are not durable yet.
        let end = Offset(to.map_or(u64::MAX, |t| t.0).min(self.head().0));
        let mut records = Vec::new();
        let mut bytes = 0usize;
        let mut next_after = after;
        let mut done = true;
        self.log.for_each_after(after, end, |record| {
            if records.len() >= limit || bytes >= max_bytes {
                done = false;
                return false;
            }
            next_after = record.offset;
            if topics.matches(record.topic) {
                bytes += record.size as usize;
                records.push(LogRecord::from_parts(
                    record.offset,
                    record.ts,
                    record.topic,
                    record.json,
                ));
            }
            true
        })?;
        // Retention may have removed records while we read: if it got past
        // our starting point, what we read may have a hole.
        self.check_recoverable(after)?;
        Ok(LogChunk {
            records,
            next_after,
            done,
        })
    }

    /// Streams every log record after `after` through `f`, in order, without
    /// holding more than one record in memory. Returns how many were visited.
    pub fn for_each_record(
        &self,
        after: Offset,
        mut f: impl FnMut(Offset, Timestamp, &str, &[u8]),
    ) -> Result<u64, StoreError> {
        self.check_recoverable(after)?;
        let mut n = 0;
        self.log.for_each_after(after, self.head(), |record| {
            f(record.offset, record.ts, record.topic, record.json);
            n += 1;
            true
        })?;
        self.check_recoverable(after)?;
        Ok(n)
    }

    /// The position to read after to get the events with `ts >= at`.
    ///
    /// Timestamps never decrease along the log, so this is a binary search.
    /// Fails with [`StoreError::Unrecoverable`] if retention removed events at
    /// or after `at`.
    pub fn position_at(&self, at: Timestamp) -> Result<Offset, StoreError> {
        // `earliest` before `trimmed_ts`: retention stores them in the other
        // order, so a new `earliest` here implies a new `trimmed_ts`.
        let earliest = self.earliest();
        let trimmed = self.shared.trimmed_ts.load(Ordering::SeqCst);
        if trimmed > 0 && at.0 <= trimmed {
            return Err(StoreError::Unrecoverable {
                requested: Offset(earliest.0.saturating_sub(1)),
                earliest,
            });
        }
        // Find the first existing offset in [lo, hi) whose ts >= at.
        let head = self.head();
        let (mut lo, mut hi) = (earliest.0, head.0 + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            match self.log.first_at_or_after(Offset(mid), head)? {
                Some((offset, ts)) if offset.0 < hi => {
                    if ts >= at {
                        hi = mid;
                    } else {
                        lo = offset.0 + 1;
                    }
                }
                _ => hi = mid,
            }
        }
        Ok(Offset(lo.saturating_sub(1)))
    }

    /// The offset a resume token stands for, if the token is of this log's
    /// history ([`StoreError::OtherEpoch`] if not).
    pub fn token_offset(&self, token: ResumeToken) -> Result<Offset, StoreError> {
        if token.epoch != self.epoch {
            return Err(StoreError::OtherEpoch {
                token: token.epoch,
                epoch: self.epoch,
                earliest: self.earliest(),
            });
        }
        Ok(token.offset)
    }

    /// Fails with [`StoreError::Unrecoverable`] if retention removed events
    /// after `after`: reading on from there would have a hole.
    pub fn check_recoverable(&self, after: Offset) -> Result<(), StoreError> {
        let earliest = self.earliest();
        if after.0.saturating_add(1) < earliest.0 {
            return Err(StoreError::Unrecoverable {
                requested: after,
                earliest,
            });
        }
        Ok(())
    }

    /// The store's epoch.
    #[must_use]
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The last durable offset (0 when nothing was ever written).
    #[must_use]
    pub fn head(&self) -> Offset {
        Offset(self.shared.head.load(Ordering::SeqCst))
    }

    /// The first offset still in the log (retention removes older ones).
    #[must_use]
    pub fn earliest(&self) -> Offset {
        Offset(self.shared.log_start.load(Ordering::SeqCst))
    }

    /// Events appended since the store opened, the log's size and bounds.
    /// Lock-free: cheap enough to call on every scrape.
    #[must_use]
    pub fn stats(&self) -> StoreStats {
        StoreStats {
            appended: self.shared.counters.appended(),
            log_bytes: self.shared.counters.log_bytes(),
            head: self.head(),
            earliest: self.earliest(),
            epoch: self.epoch,
        }
    }

    /// Resolves to `true` once the store has stopped committing (closed).
    #[must_use]
    pub fn closed(&self) -> watch::Receiver<bool> {
        self.shared.closed.subscribe()
    }

    /// Receives every group of events committed from now on.
    ///
    /// A receiver that falls more than a thousand groups behind gets
    /// `RecvError::Lagged` and must read the missed events from the log.
    #[must_use]
    pub fn committed(&self) -> broadcast::Receiver<Arc<[Committed]>> {
        self.shared.events.subscribe()
    }
}

/// A consistent, read-only view of the documents at one log offset; see
/// [`Store::snapshot`]. Holding it pins old versions in the engine: keep it
/// short-lived.
pub struct DocSnapshot {
    read: Read,
}

impl std::fmt::Debug for DocSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocSnapshot")
            .field("offset", &self.offset())
            .finish_non_exhaustive()
    }
}

impl DocSnapshot {
    /// The view holds exactly the effects of the events up to this offset.
    #[must_use]
    pub fn offset(&self) -> Offset {
        self.read.applied()
    }

    /// [`Store::scan`], in this view.
    pub fn scan(
        &self,
        table: &TableName,
        after: Option<&str>,
        limit: usize,
        keep: impl FnMut(&DocRecord) -> bool,
    ) -> Result<Page, StoreError> {
        scan_docs(&self.read, table, after, false, limit, keep)
    }
}

/// The body of [`Store::scan`] and [`DocSnapshot::scan`], in `read`: the
/// live store or a snapshot.
fn scan_docs(
    read: &Read,
    table: &TableName,
    after: Option<&str>,
    reverse: bool,
    limit: usize,
    mut keep: impl FnMut(&DocRecord) -> bool,
) -> Result<Page, StoreError> {
    let prefix = layout::table_prefix(table.as_str());
    let mut end = prefix.clone();
    *end.last_mut().expect("prefix ends with the separator") = 1;
    let range = match (after, reverse) {
        (None, _) => read.range(prefix.clone()..end),
        (Some(a), false) => {
            let mut from = layout::doc_key(table.as_str(), a);
            from.push(0);
            read.range(from..end)
        }
        (Some(a), true) => read.range(prefix.clone()..layout::doc_key(table.as_str(), a)),
    };
    let iter: Box<dyn Iterator<Item = _>> = if reverse {
        Box::new(range.rev())
    } else {
        Box::new(range)
    };
    let mut docs = Vec::new();
    let mut last_seen = None;
    let mut bytes = 0usize;
    let mut more = false;
    for pair in iter {
        if docs.len() >= limit || bytes >= MAX_STEP_BYTES {
            more = true;
            break;
        }
        let (key, value) = pair?;
        let id = std::str::from_utf8(&key[prefix.len()..])
            .map_err(|_| StoreError::Corrupt("document key is not UTF-8".into()))?
            .to_owned();
        let record = DocRecord::decode(&value)?;
        last_seen = Some(id.clone());
        if keep(&record) {
            bytes += record.json.len();
            docs.push((id, record));
        }
    }
    let next_after = if more { last_seen } else { None };
    Ok(Page { docs, next_after })
}

/// Sends a `Trim` request every `interval` until the store is gone.
fn spawn_retention_ticker(requests: mpsc::WeakSender<Request>, interval: std::time::Duration) {
    let spawned = std::thread::Builder::new()
        .name("herald-retention".into())
        .spawn(move || {
            loop {
                std::thread::sleep(interval);
                let Some(tx) = requests.upgrade() else { return };
                if tx.blocking_send(Request::Trim).is_err() {
                    return;
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "could not start the retention thread; retention is off");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RetentionConfig;

    /// A store whose log may keep 1,000 bytes, after 30 inserts of about
    /// 150 bytes each: retention has most of the log to remove.
    async fn filled_beyond_retention(dir: &Path) -> Store {
        let config = StoreConfig {
            retention: RetentionConfig {
                max_bytes: Some(1_000),
                ..RetentionConfig::default()
            },
            ..StoreConfig::default()
        };
        let store = Store::open(dir, config).unwrap();
        let t = TableName::new("t").unwrap();
        for n in 0..30 {
            let doc = serde_json::json!({"id": format!("d{n}"), "pad": "x".repeat(100)});
            store
                .write_one(WriteOp::insert(t.clone(), doc).unwrap())
                .await
                .unwrap();
        }
        store
    }

    /// The documents' memtable has no journal, so the log is the only
    /// record of what it holds: retention flushes it before removing the
    /// events (else a crash right after would lose those documents).
    #[tokio::test]
    async fn retention_removes_events_only_once_their_documents_are_flushed() {
        let dir = tempfile::tempdir().unwrap();
        let store = filled_beyond_retention(dir.path()).await;
        let docs_dir = dir.path().join(layout::DOCS_DIR);
        assert_eq!(crate::docs::read_flushed(&docs_dir).unwrap(), Offset::ZERO);
        store.enforce_retention().await.unwrap();
        let removed_up_to = Offset(store.earliest().0 - 1);
        assert!(
            removed_up_to > Offset(10),
            "retention removed {removed_up_to}"
        );
        assert!(crate::docs::read_flushed(&docs_dir).unwrap() >= removed_up_to);
        store.close().await;
    }

    /// After a failed write the documents may lag the head for good, so
    /// the log keeps everything: retention removes nothing.
    #[tokio::test]
    async fn a_store_that_failed_removes_nothing_from_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = filled_beyond_retention(dir.path()).await;
        store
            .shared
            .fail(&StoreError::Corrupt("a test's failure".into()));
        store.enforce_retention().await.unwrap();
        assert_eq!(store.earliest(), Offset(1));
        store.close().await;
    }
}
