//! The documents: an LSM tree written without a journal of its own.
//!
//! Every document change is first an event in the log, durable before the
//! change is applied here. So the tree needs no write-ahead log: its
//! memtable is lost in a crash, and opening re-applies the log's events
//! after the last offset its tables reflect. That offset is recorded in the
//! file `flushed` after each flush, once the tables are durable; a crash in
//! between only means re-applying a few more events, and applying an event
//! twice changes nothing. Leaving out the engine's journal saves writing
//! each document a second time, and the journal's syncs, which competed
//! with the log's for the disk.
//!
//! (The offset is not a key of the tree: written with every group, it
//! would stretch every table's key range to cover every new key, so point
//! reads would consult every table's filter and compactions would overlap.)
//!
//! The committer is the only writer. Two threads of this module keep the
//! tree in shape: a *flusher* turns sealed memtables into tables, and a
//! *compactor* merges tables (leveled). The committer waits when they fall
//! behind (too many sealed memtables or level-0 runs), so memory and read
//! cost stay bounded.
//!
//! # Reads are versioned
//! Each group is written at one sequence number `s` and becomes readable at
//! once when `readable` moves past `s`, together with the last offset the
//! group reflects. Every read holds a [`Read`] whose sequence number is
//! registered until it ends, and old versions are garbage-collected only
//! below the oldest registered read: a snapshot sees exactly the groups
//! before it, and knows their last offset, however long it is held.

use crate::error::{StoreError, io_error};
use herald_proto::Offset;
use lsm_tree::compaction::{CompactionStrategy, Leveled};
use lsm_tree::config::{
    BloomConstructionPolicy, CompressionPolicy, FilterPolicy, FilterPolicyEntry,
    RestartIntervalPolicy,
};
use lsm_tree::{
    AbstractTree, AnyTree, Cache, CompressionType, Guard, SeqNo, SequenceNumberCounter,
};
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

/// The file recording the last offset the tables reflect.
const FLUSHED_FILE: &str = "flushed";
/// The file locked while the tree is open (by a store, or by a read that
/// outlived its store): a second tree on the same folder would delete the
/// first one's table files as its own.
const LOCK_FILE: &str = "lock";
/// The active memtable is sealed (and flushed) at this size.
const MEMTABLE_BYTES: u64 = 64 << 20;
/// The committer waits while this many memtables wait to be flushed.
const MAX_SEALED: usize = 4;
/// The committer waits while level 0 has this many runs (compaction behind).
const MAX_L0_RUNS: usize = 20;
/// How often a waiting committer looks again.
const STALL_POLL: Duration = Duration::from_millis(1);

/// One document change of a group: a new record, or a deletion.
pub(crate) type Change = (Vec<u8>, Option<Vec<u8>>);

/// Handle to the documents' tree; clones share it. The background threads
/// stop at [`Docs::stop`], or when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct Docs {
    inner: Arc<Inner>,
    workers: Arc<Workers>,
}

impl std::fmt::Debug for Docs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Docs")
            .field("applied", &self.applied())
            .field("flushed", &self.inner.flushed.load(Ordering::SeqCst))
            .finish_non_exhaustive()
    }
}

struct Inner {
    tree: AnyTree,
    dir: PathBuf,
    /// The active memtable is sealed at this size.
    memtable_bytes: u64,
    /// The next sequence number; the tree takes its versions' from it too.
    seqno: SequenceNumberCounter,
    reads: Mutex<Reads>,
    /// The last offset applied when a memtable was last sealed.
    sealed_upto: AtomicU64,
    /// The last offset whose effect is in flushed tables (durable).
    flushed: AtomicU64,
    /// Why the last flush failed, until one succeeds.
    flush_failure: Mutex<Option<String>>,
    /// Why the last compaction failed, until one succeeds.
    compact_failure: Mutex<Option<String>>,
    /// Held (locked) as long as the tree is open.
    _lock: std::fs::File,
}

/// What reads see, and who reads. One lock, so that a read opens at a
/// sequence number and offset that belong together, and the GC watermark
/// never passes an open read.
struct Reads {
    /// Reads see what was written below this sequence number...
    readable: SeqNo,
    /// ...which is the documents as of this offset.
    applied: Offset,
    /// Open reads, by sequence number.
    open: BTreeMap<SeqNo, usize>,
}

/// What the background threads are asked to do.
enum Work {
    Flush,
    Compact,
}

struct Workers(Mutex<Running>);

struct Running {
    /// Gone once stopped.
    flush: Option<SyncSender<Work>>,
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Stops the threads and waits for them, so that nothing writes the
    /// tree's folder once the store is closed (it may be opened again).
    fn stop(&self) {
        let mut running = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        running.flush.take();
        for thread in running.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.stop();
    }
}

impl Docs {
    /// Opens (or creates) the tree in `dir`, with `cache_bytes` of block
    /// cache.
    pub(crate) fn open(dir: &Path, cache_bytes: u64) -> Result<Docs, StoreError> {
        Docs::open_sized(dir, cache_bytes, MEMTABLE_BYTES)
    }

    /// [`Docs::open`] with memtables sealed at `memtable_bytes` (tests use
    /// small ones to exercise flushes and compactions).
    fn open_sized(dir: &Path, cache_bytes: u64, memtable_bytes: u64) -> Result<Docs, StoreError> {
        std::fs::create_dir_all(dir).map_err(io_error(dir))?;
        let lock = lock(dir)?;
        let seqno = SequenceNumberCounter::default();
        // The tree bumps this when it installs a version; reads use
        // `readable` instead, which moves only after whole groups.
        let unused_visible = SequenceNumberCounter::default();
        let tree = lsm_tree::Config::new(dir, seqno.clone(), unused_visible)
            .use_cache(Arc::new(Cache::with_capacity_bytes(cache_bytes)))
            .data_block_restart_interval_policy(RestartIntervalPolicy::new([10, 16]))
            .filter_policy(FilterPolicy::new([
                FilterPolicyEntry::Bloom(BloomConstructionPolicy::FalsePositiveRate(0.0001)),
                FilterPolicyEntry::Bloom(BloomConstructionPolicy::BitsPerKey(10.0)),
            ]))
            .data_block_compression_policy(CompressionPolicy::new([
                CompressionType::None,
                CompressionType::None,
                CompressionType::Lz4,
            ]))
            .open()?;
        let next = tree.get_highest_seqno().map_or(1, |s| s + 1);
        seqno.fetch_max(next);
        let flushed = read_flushed(dir)?;
        let inner = Arc::new(Inner {
            tree,
            dir: dir.to_owned(),
            memtable_bytes,
            seqno,
            reads: Mutex::new(Reads {
                readable: next,
                applied: flushed,
                open: BTreeMap::new(),
            }),
            sealed_upto: AtomicU64::new(flushed.0),
            flushed: AtomicU64::new(flushed.0),
            flush_failure: Mutex::new(None),
            compact_failure: Mutex::new(None),
            _lock: lock,
        });
        let workers = Workers::start(&inner).map_err(io_error(dir))?;
        Ok(Docs {
            inner,
            workers: Arc::new(workers),
        })
    }

    /// The last offset whose effect is in the documents.
    pub(crate) fn applied(&self) -> Offset {
        self.inner.reads().applied
    }

    /// The last offset whose effect is durable in the tree's tables: the
    /// log must keep every event after it.
    pub(crate) fn flushed(&self) -> Offset {
        Offset(self.inner.flushed.load(Ordering::SeqCst))
    }

    /// Writes one group's changes, which bring the documents up to the
    /// log's `last` offset; readers see all of them or none. Committer only.
    pub(crate) fn commit(
        &self,
        changes: impl IntoIterator<Item = Change>,
        last: Offset,
    ) -> Result<(), StoreError> {
        let inner = &self.inner;
        self.make_room()?;
        // Taken after any sealing: the group lands in the memtable of the
        // newest version, which reads at `seqno + 1` pick.
        let seqno = inner.seqno.next();
        for (key, value) in changes {
            match value {
                Some(value) => inner.tree.insert(key, value, seqno),
                None => inner.tree.remove(key, seqno),
            };
        }
        let mut reads = inner.reads();
        reads.readable = seqno + 1;
        reads.applied = last.max(reads.applied);
        Ok(())
    }

    /// Seals a full memtable (for the flusher), and waits while the
    /// background threads are too far behind. Fails when they are behind
    /// because their work fails (a full disk): waiting would never end.
    fn make_room(&self) -> Result<(), StoreError> {
        let inner = &self.inner;
        if inner.tree.active_memtable().size() >= inner.memtable_bytes {
            self.seal();
        }
        while inner.tree.sealed_memtable_count() >= MAX_SEALED
            || inner.tree.l0_run_count() >= MAX_L0_RUNS
        {
            if let Some(reason) = inner.failure() {
                return Err(StoreError::CommitFailed {
                    reason: format!("writing the documents' tables failed: {reason}"),
                });
            }
            if !self.workers.alive() {
                return Err(StoreError::CommitFailed {
                    reason: "the documents' flush or compaction thread is gone".into(),
                });
            }
            self.workers.request(Work::Flush);
            std::thread::sleep(STALL_POLL);
        }
        Ok(())
    }

    /// Seals the active memtable and asks the flusher to write it out.
    fn seal(&self) {
        let inner = &self.inner;
        if inner.tree.rotate_memtable().is_some() {
            inner
                .sealed_upto
                .fetch_max(self.applied().0, Ordering::SeqCst);
            self.workers.request(Work::Flush);
        }
    }

    /// Makes everything applied so far durable in tables, now. Committer
    /// only (nothing is written meanwhile).
    pub(crate) fn flush_now(&self) -> Result<(), StoreError> {
        self.seal();
        // The active memtable is empty now: everything applied is sealed
        // (or flushed), also what an empty group's offset moved past.
        self.inner
            .sealed_upto
            .fetch_max(self.applied().0, Ordering::SeqCst);
        self.inner.flush_sealed()?;
        self.workers.request(Work::Compact);
        Ok(())
    }

    /// Makes sure the tables reach `offset`, flushing now if they do not:
    /// the log may then drop the events up to it. Committer only.
    pub(crate) fn flush_through(&self, offset: Offset) -> Result<(), StoreError> {
        if self.flushed() < offset {
            self.flush_now()?;
        }
        if self.flushed() < offset {
            return Err(StoreError::CommitFailed {
                reason: format!(
                    "the documents reach offset {} only; events up to {offset} must stay",
                    self.flushed()
                ),
            });
        }
        Ok(())
    }

    /// Stops the flush and compaction threads, after the work they have
    /// begun. Writes after this still work but are not flushed until
    /// [`Docs::flush_now`]. Committer only, when the store closes.
    pub(crate) fn stop(&self) {
        self.workers.stop();
    }

    /// Opens a read of everything written so far.
    pub(crate) fn read(&self) -> Read {
        let mut reads = self.inner.reads();
        let (seqno, applied) = (reads.readable, reads.applied);
        *reads.open.entry(seqno).or_default() += 1;
        Read {
            inner: self.inner.clone(),
            seqno,
            applied,
        }
    }
}

impl Inner {
    fn reads(&self) -> std::sync::MutexGuard<'_, Reads> {
        self.reads.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Why the background work is failing, if it is: a flush or a
    /// compaction that failed and has not succeeded since.
    fn failure(&self) -> Option<String> {
        let lock = |slot: &Mutex<Option<String>>| {
            slot.lock().unwrap_or_else(PoisonError::into_inner).clone()
        };
        lock(&self.flush_failure).or_else(|| lock(&self.compact_failure))
    }

    /// Versions below this may be garbage-collected: no read needs them.
    fn gc_watermark(&self) -> SeqNo {
        let reads = self.reads();
        let oldest = reads.open.keys().next().copied();
        oldest.map_or(reads.readable, |oldest| oldest.min(reads.readable))
    }

    /// Flushes every sealed memtable into tables, then records how far
    /// they reach.
    fn flush_sealed(&self) -> Result<(), StoreError> {
        // Read before flushing: what is flushed reaches at least this.
        let upto = self.sealed_upto.load(Ordering::SeqCst);
        // Held through the record too, so records are written in turn.
        let lock = self.tree.get_flush_lock();
        let flushed = self
            .tree
            .flush(&lock, self.gc_watermark())
            .map_err(StoreError::from)
            .and_then(|_| {
                if upto > self.flushed.load(Ordering::SeqCst) {
                    write_flushed(&self.dir, Offset(upto))?;
                    self.flushed.store(upto, Ordering::SeqCst);
                }
                Ok(())
            });
        record(&self.flush_failure, &flushed);
        flushed
    }

    /// Compacts until the strategy has nothing more to do.
    fn compact(&self, strategy: &Arc<dyn CompactionStrategy>) -> Result<(), StoreError> {
        loop {
            let before = self.tree.current_version().id();
            let compacted = self
                .tree
                .compact(strategy.clone(), self.gc_watermark())
                .map_err(StoreError::from);
            record(&self.compact_failure, &compacted);
            compacted?;
            if self.tree.current_version().id() == before {
                return Ok(());
            }
        }
    }
}

impl Workers {
    fn start(inner: &Arc<Inner>) -> std::io::Result<Workers> {
        let (flush_tx, flush_rx) = mpsc::sync_channel(MAX_SEALED);
        let (compact_tx, compact_rx) = mpsc::sync_channel(1);
        let flusher = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("herald-flush".into())
                .spawn(move || run_flusher(&inner, &flush_rx, &compact_tx))?
        };
        let compactor = {
            let inner = inner.clone();
            std::thread::Builder::new()
                .name("herald-compact".into())
                .spawn(move || run_compactor(&inner, &compact_rx))?
        };
        Ok(Workers(Mutex::new(Running {
            flush: Some(flush_tx),
            threads: vec![flusher, compactor],
        })))
    }

    /// Whether both threads run (neither was stopped nor panicked).
    fn alive(&self) -> bool {
        let running = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        running.flush.is_some() && running.threads.iter().all(|t| !t.is_finished())
    }

    /// Asks for work without waiting; a request already queued covers it.
    fn request(&self, work: Work) {
        let running = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(tx) = &running.flush {
            let _ = tx.try_send(work);
        }
    }
}

/// Flushes sealed memtables as they come, then hands over to the compactor.
/// Ends once stopped, after the work already asked for.
fn run_flusher(inner: &Inner, rx: &Receiver<Work>, compact: &SyncSender<()>) {
    while let Ok(work) = rx.recv() {
        if matches!(work, Work::Flush)
            && let Err(e) = inner.flush_sealed()
        {
            // The log still holds every event, and the memtable stays in
            // memory: the next flush tries again (see `make_room`).
            tracing::error!(error = %e, "flushing documents failed");
        }
        let _ = compact.try_send(());
    }
}

fn run_compactor(inner: &Inner, rx: &Receiver<()>) {
    let strategy: Arc<dyn CompactionStrategy> = Arc::new(Leveled::default());
    while rx.recv().is_ok() {
        if let Err(e) = inner.compact(&strategy) {
            tracing::error!(error = %e, "compacting documents failed");
        }
    }
}

/// A consistent read of the documents at one sequence number, registered
/// so that the versions it sees stay until it is dropped.
pub(crate) struct Read {
    inner: Arc<Inner>,
    seqno: SeqNo,
    applied: Offset,
}

impl Drop for Read {
    fn drop(&mut self) {
        let mut reads = self.inner.reads();
        if let Some(count) = reads.open.get_mut(&self.seqno) {
            *count -= 1;
            if *count == 0 {
                reads.open.remove(&self.seqno);
            }
        }
    }
}

impl Read {
    /// The value under `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<lsm_tree::Slice>, StoreError> {
        Ok(self.inner.tree.get(key, self.seqno)?)
    }

    /// Whether `key` holds a value.
    pub(crate) fn contains(&self, key: &[u8]) -> Result<bool, StoreError> {
        Ok(self.inner.tree.contains_key(key, self.seqno)?)
    }

    /// The documents this read sees are those as of this offset.
    pub(crate) fn applied(&self) -> Offset {
        self.applied
    }

    /// Key-value pairs in `range`, in key order (reversible).
    pub(crate) fn range(
        &self,
        range: Range<Vec<u8>>,
    ) -> impl DoubleEndedIterator<Item = Result<(lsm_tree::Slice, lsm_tree::Slice), StoreError>> + use<>
    {
        self.inner
            .tree
            .range(range, self.seqno, None)
            .map(|guard| guard.into_inner().map_err(StoreError::from))
    }
}

/// Notes in `slot` how a flush or a compaction ended.
fn record<T>(slot: &Mutex<Option<String>>, outcome: &Result<T, StoreError>) {
    *slot.lock().unwrap_or_else(PoisonError::into_inner) =
        outcome.as_ref().err().map(ToString::to_string);
}

/// Locks the tree's folder for this process's tree, or says who has it.
fn lock(dir: &Path) -> Result<std::fs::File, StoreError> {
    let path = dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_error(&path))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(io_error(&path)(std::io::Error::other(
            "the documents are open already: another store (or a snapshot \
             of a closed one, still held) uses this directory",
        ))),
        Err(std::fs::TryLockError::Error(e)) => Err(io_error(&path)(e)),
    }
}

/// The last offset the tables reflect, as recorded by [`write_flushed`];
/// zero when nothing was ever flushed.
pub(crate) fn read_flushed(dir: &Path) -> Result<Offset, StoreError> {
    let path = dir.join(FLUSHED_FILE);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Offset::ZERO),
        Err(e) => return Err(io_error(&path)(e)),
    };
    let corrupt = || {
        StoreError::Corrupt(format!(
            "{}: {} bytes that do not hold an offset and its checksum",
            path.display(),
            bytes.len()
        ))
    };
    let (offset, crc) = bytes.split_at_checked(8).ok_or_else(corrupt)?;
    let offset: [u8; 8] = offset.try_into().map_err(|_| corrupt())?;
    let crc: [u8; 4] = crc.try_into().map_err(|_| corrupt())?;
    if crc32fast::hash(&offset) != u32::from_le_bytes(crc) {
        return Err(corrupt());
    }
    Ok(Offset(u64::from_be_bytes(offset)))
}

/// Records durably that the tables reflect the log up to `offset`: written
/// aside, synced, then renamed over the last record (and the rename synced).
pub(crate) fn write_flushed(dir: &Path, offset: Offset) -> Result<(), StoreError> {
    let path = dir.join(FLUSHED_FILE);
    let staged = dir.join(format!("{FLUSHED_FILE}.tmp"));
    let mut bytes = offset.0.to_be_bytes().to_vec();
    bytes.extend_from_slice(&crc32fast::hash(&bytes).to_le_bytes());
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&staged)?;
        std::io::Write::write_all(&mut file, &bytes)?;
        file.sync_all()?;
        std::fs::rename(&staged, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(io_error(&path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(key: &str, value: Option<&str>) -> Change {
        (
            key.as_bytes().to_vec(),
            value.map(|v| v.as_bytes().to_vec()),
        )
    }

    fn value(read: &Read, key: &str) -> Option<String> {
        read.get(key.as_bytes())
            .unwrap()
            .map(|v| String::from_utf8(v.to_vec()).unwrap())
    }

    fn keys(read: &Read) -> Vec<String> {
        read.range(b"a".to_vec()..b"z".to_vec())
            .map(|pair| String::from_utf8(pair.unwrap().0.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn a_read_sees_whole_groups_and_the_offset_they_reach() {
        let dir = tempfile::tempdir().unwrap();
        let docs = Docs::open(dir.path(), 1 << 20).unwrap();
        assert_eq!(docs.read().applied(), Offset::ZERO);
        docs.commit([change("a", Some("1")), change("b", Some("1"))], Offset(2))
            .unwrap();
        let before = docs.read();
        docs.commit([change("a", Some("2")), change("b", None)], Offset(5))
            .unwrap();
        let after = docs.read();
        assert_eq!(
            (value(&before, "a"), value(&before, "b"), before.applied()),
            (Some("1".into()), Some("1".into()), Offset(2))
        );
        assert_eq!(
            (value(&after, "a"), value(&after, "b"), after.applied()),
            (Some("2".into()), None, Offset(5))
        );
        assert_eq!(
            (keys(&before), keys(&after)),
            (vec!["a".into(), "b".into()], vec!["a".into()])
        );
        assert!(after.contains(b"a").unwrap() && !after.contains(b"b").unwrap());
    }

    /// An open read keeps its versions through flushes and compactions,
    /// which garbage-collect every version no read needs.
    #[test]
    fn an_open_read_keeps_its_view_through_flushes_and_compactions() {
        let dir = tempfile::tempdir().unwrap();
        let docs = Docs::open(dir.path(), 1 << 20).unwrap();
        docs.commit(
            [change("k", Some("old")), change("gone", Some("x"))],
            Offset(1),
        )
        .unwrap();
        // Opened while its view is in the memtable only.
        let held = docs.read();
        for round in 2..40u64 {
            let v = format!("v{round}");
            docs.commit([change("k", Some(&v)), change("gone", None)], Offset(round))
                .unwrap();
            docs.flush_now().unwrap();
        }
        // Merge everything the flushes made, as the compactor does.
        docs.inner
            .compact(&(Arc::new(Leveled::default()) as Arc<dyn CompactionStrategy>))
            .unwrap();
        assert!(docs.inner.tree.table_count() < 38, "compacted");
        assert_eq!(
            (value(&held, "k"), value(&held, "gone"), held.applied()),
            (Some("old".into()), Some("x".into()), Offset(1))
        );
        assert_eq!(keys(&held), ["gone", "k"]);
        let now = docs.read();
        assert_eq!(
            (value(&now, "k"), keys(&now)),
            (Some("v39".into()), vec!["k".into()])
        );
        // The versions kept for `held` go with it, at the next flush.
        let kept = docs.inner.tree.version_free_list_len();
        assert!(kept >= 38, "only {kept} old versions kept");
        drop((held, now));
        // No compaction begun under the old watermark may finish after the
        // flush below and keep the versions again.
        docs.stop();
        docs.commit([change("k", Some("last"))], Offset(40))
            .unwrap();
        docs.flush_now().unwrap();
        let kept = docs.inner.tree.version_free_list_len();
        assert!(kept <= 2, "{kept} old versions kept after the reads ended");
    }

    /// What was flushed (and its offset) is there after reopening; what
    /// was only in the memtable is not, and the log brings it back.
    #[test]
    fn reopening_finds_the_flushed_tables_and_how_far_they_reach() {
        let dir = tempfile::tempdir().unwrap();
        let docs = Docs::open(dir.path(), 1 << 20).unwrap();
        for n in 1..=3 {
            docs.commit([change("a", Some(&n.to_string()))], Offset(n))
                .unwrap();
        }
        docs.flush_now().unwrap();
        docs.commit([change("b", Some("1"))], Offset(4)).unwrap();
        assert_eq!((docs.applied(), docs.flushed()), (Offset(4), Offset(3)));
        drop(docs);
        let docs = Docs::open(dir.path(), 1 << 20).unwrap();
        assert_eq!((docs.applied(), docs.flushed()), (Offset(3), Offset(3)));
        let read = docs.read();
        assert_eq!((keys(&read), read.applied()), (vec!["a".into()], Offset(3)));
        // Sequence numbers go on above the tables': a new write is seen
        // over the older one, also once both are in tables.
        drop(read);
        docs.commit([change("a", Some("new"))], Offset(4)).unwrap();
        docs.flush_now().unwrap();
        assert_eq!(value(&docs.read(), "a"), Some("new".into()));
    }

    #[test]
    fn a_second_tree_on_the_same_folder_is_refused_while_the_first_is_open() {
        let dir = tempfile::tempdir().unwrap();
        let first = Docs::open(dir.path(), 1 << 20).unwrap();
        let read = first.read();
        drop(first);
        let Err(StoreError::Io { source, .. }) = Docs::open(dir.path(), 1 << 20) else {
            panic!("a second tree opened beside a live read of the first");
        };
        assert!(source.to_string().contains("open already"), "{source}");
        drop(read);
        Docs::open(dir.path(), 1 << 20).unwrap();
    }

    /// Many groups through small memtables: the flusher and the compactor
    /// run on their own while reads go on; what a reopen finds is exactly
    /// the documents as of one offset, at or after the one `flushed`
    /// records (a flush may take a memtable sealed after it read how far
    /// the sealed ones reach), and the log would bring the rest.
    #[test]
    fn flushes_and_compactions_on_their_own_keep_every_group() {
        const KEYS: u64 = 300;
        /// Group `n` (offset `n`) writes keys `5n..5n+5` (mod KEYS) with
        /// the value `n`, except that every 7th group deletes them.
        fn group(n: u64) -> Vec<Change> {
            (5 * n..5 * n + 5)
                .map(|k| {
                    let value = (!n.is_multiple_of(7)).then(|| format!("{n:0>200}"));
                    change(&format!("k{:04}", k % KEYS), value.as_deref())
                })
                .collect()
        }
        /// The documents as of offset `upto`.
        fn expected(upto: u64) -> BTreeMap<String, String> {
            let mut docs = BTreeMap::new();
            for n in 1..=upto {
                for (key, value) in group(n) {
                    let key = String::from_utf8(key).unwrap();
                    match value {
                        Some(v) => docs.insert(key, String::from_utf8(v).unwrap()),
                        None => docs.remove(&key),
                    };
                }
            }
            docs
        }
        fn contents(read: &Read) -> BTreeMap<String, String> {
            read.range(b"k".to_vec()..b"l".to_vec())
                .map(|pair| {
                    let (k, v) = pair.unwrap();
                    (
                        String::from_utf8(k.to_vec()).unwrap(),
                        String::from_utf8(v.to_vec()).unwrap(),
                    )
                })
                .collect()
        }

        let dir = tempfile::tempdir().unwrap();
        let docs = Docs::open_sized(dir.path(), 1 << 20, 32 << 10).unwrap();
        let early = docs.read();
        let groups = 3000;
        for n in 1..=groups {
            docs.commit(group(n), Offset(n)).unwrap();
            if n % 500 == 0 {
                let read = docs.read();
                assert_eq!((contents(&read), read.applied()), (expected(n), Offset(n)));
            }
        }
        assert!(
            contents(&early).is_empty(),
            "a read opened first sees nothing"
        );
        assert!(docs.inner.tree.table_count() > 0, "nothing was flushed");
        let flushed = docs.flushed();
        assert!(flushed > Offset(groups / 2), "flushed only up to {flushed}");
        drop((early, docs));

        let docs = Docs::open(dir.path(), 1 << 20).unwrap();
        let flushed = docs.flushed();
        let read = docs.read();
        assert_eq!(read.applied(), flushed);
        let found = contents(&read);
        assert!(
            (flushed.0..=groups).any(|upto| found == expected(upto)),
            "the tables hold no group's state from offset {flushed} on"
        );
    }

    #[test]
    fn a_damaged_record_of_what_was_flushed_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        write_flushed(dir.path(), Offset(7)).unwrap();
        assert_eq!(read_flushed(dir.path()).unwrap(), Offset(7));
        let path = dir.path().join(FLUSHED_FILE);
        for damaged in [&b"short"[..], &[0u8; 12][..], &[7u8; 13][..]] {
            std::fs::write(&path, damaged).unwrap();
            let Err(StoreError::Corrupt(message)) = Docs::open(dir.path(), 1 << 20) else {
                panic!("{damaged:?} was accepted");
            };
            assert!(message.contains("flushed"), "{message}");
        }
    }
}
