//! The change log: records in append-only segment files under `log/`.
//!
//! The committer appends through the [`Appender`], one `write` per group
//! and one `fdatasync` per group; readers on any thread go through [`Log`],
//! which maps offsets to segments. A segment is named by the first offset it
//! may hold, so the segment of an offset is the last one named at or below
//! it. Readers never read past the store's head, so they never see a record
//! that is not yet acknowledged (durable, with `durability = "fsync"`), and
//! retention deletes only whole segments below the log's start (a reader
//! that finds one gone notices the new start when it checks after reading).

use crate::error::{StoreError, io_error};
use crate::segment::{self, Mark, RecordRef, Segment};
use crate::staging::{DIRECT_ALIGN, Staging, with_direct_io};
use herald_proto::{Offset, Timestamp};
use std::collections::BTreeMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

/// The folder of the log's segments, inside the data directory.
pub(crate) const DIR: &str = "log";
/// The next segment's file while it is made in advance.
const SPARE: &str = "spare.tmp";

/// The segments of the log, by first offset.
#[derive(Debug)]
pub(crate) struct Log {
    dir: PathBuf,
    segments: RwLock<BTreeMap<Offset, Arc<Segment>>>,
}

/// How the committer's appends reach the disk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Writes {
    /// A segment is sealed, and the next begun, past this many bytes.
    pub(crate) segment_bytes: u64,
    /// Write with direct I/O where the file system takes it. Right when
    /// every group is synced (`durability = "fsync"`): a direct write costs
    /// less than copying into the page cache and writing back in the sync.
    /// Without syncs, a write to the page cache returns sooner.
    pub(crate) direct: bool,
}

/// What opening the log found.
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) log: Arc<Log>,
    pub(crate) appender: Appender,
    /// The last record's offset and timestamp, if the log holds any.
    pub(crate) last: Option<(Offset, Timestamp)>,
    /// Bytes of the records at or above the `count_from` offset.
    pub(crate) bytes: u64,
}

/// Makes a file's creation or removal in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

impl Log {
    /// Opens the log in `data/log`, checking every record, cutting a torn
    /// tail off the newest segment, and starting a first segment at `next`
    /// if there is none.
    pub(crate) fn open(
        data: &Path,
        next: Offset,
        writes: Writes,
        count_from: Offset,
    ) -> Result<Opened, StoreError> {
        let dir = data.join(DIR);
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
        // A spare left by the last run may be half made: make it again.
        match std::fs::remove_file(dir.join(SPARE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_error(&dir)(e)),
            _ => {}
        }
        let mut found = Vec::new();
        for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))? {
            let entry = entry.map_err(io_error(&dir))?;
            if let Some(first) = entry.file_name().to_str().and_then(segment::parse_name) {
                found.push((first, entry.path()));
            }
        }
        found.sort_unstable_by_key(|(first, _)| *first);
        let mut segments = BTreeMap::new();
        let mut last = None;
        let mut bytes = 0;
        let newest = found.len().checked_sub(1);
        for (i, (first, path)) in found.into_iter().enumerate() {
            let recovered = Segment::recover(path, first, Some(i) == newest, count_from)?;
            bytes += recovered.bytes_from;
            if let Some((offset, _)) = last
                && recovered.first.is_some_and(|o| o <= offset)
            {
                return Err(StoreError::Corrupt(format!(
                    "log segment {} repeats offsets up to {offset}",
                    recovered.segment.path.display()
                )));
            }
            last = recovered.last.or(last);
            segments.insert(first, Arc::new(recovered.segment));
        }
        let active = match segments.last_key_value() {
            Some((_, segment)) => segment.clone(),
            None => {
                let segment = Segment::create(&dir, next)?;
                sync_dir(&dir)?;
                let segment = Arc::new(segment);
                segments.insert(next, segment.clone());
                segment
            }
        };
        let (file, staging) = open_for_appends(&active.path, active.len(), writes.direct)?;
        let log = Arc::new(Log {
            dir,
            segments: RwLock::new(segments),
        });
        let appender = Appender {
            log: log.clone(),
            pos: active.len(),
            last_mark: active.last_mark_pos(),
            segment: active,
            file,
            staging,
            marks: Vec::new(),
            segment_bytes: writes.segment_bytes,
            spare: None,
        };
        Ok(Opened {
            log,
            appender,
            last,
            bytes,
        })
    }

    /// Calls `f` with each record after `after` and up to `last`, in offset
    /// order, until `f` returns `false`. Readers pass the store's head as
    /// `last`: records after it may be written but are not acknowledged.
    pub(crate) fn for_each_after(
        &self,
        after: Offset,
        last: Offset,
        mut f: impl FnMut(RecordRef<'_>) -> bool,
    ) -> Result<(), StoreError> {
        if after >= last {
            return Ok(());
        }
        let segments: Vec<Arc<Segment>> = {
            let map = self.segments.read().unwrap_or_else(PoisonError::into_inner);
            let from = map
                .range(..=after.next())
                .next_back()
                .map_or(Offset::ZERO, |(first, _)| *first);
            map.range(from..=last).map(|(_, s)| s.clone()).collect()
        };
        let mut f = |record: RecordRef<'_>| record.offset <= last && f(record);
        for segment in segments {
            if segment.for_each_after(after, &mut f)? {
                break;
            }
        }
        Ok(())
    }

    /// The first record at or after `offset` and up to `last`: its offset
    /// and timestamp.
    pub(crate) fn first_at_or_after(
        &self,
        offset: Offset,
        last: Offset,
    ) -> Result<Option<(Offset, Timestamp)>, StoreError> {
        let mut found = None;
        self.for_each_after(Offset(offset.0.saturating_sub(1)), last, |r| {
            found = Some((r.offset, r.ts));
            false
        })?;
        Ok(found)
    }

    /// Deletes the segments that hold only offsets below `start` (never the
    /// newest); returns how many.
    pub(crate) fn remove_before(&self, start: Offset) -> Result<usize, StoreError> {
        let doomed: Vec<Arc<Segment>> = {
            let mut map = self
                .segments
                .write()
                .unwrap_or_else(PoisonError::into_inner);
            // A segment's records are all below the next segment's name.
            let firsts: Vec<Offset> = map.keys().copied().collect();
            firsts
                .windows(2)
                .take_while(|pair| pair[1] <= start)
                .filter_map(|pair| map.remove(&pair[0]))
                .collect()
        };
        for segment in &doomed {
            std::fs::remove_file(&segment.path).map_err(io_error(&segment.path))?;
        }
        if !doomed.is_empty() {
            sync_dir(&self.dir)?;
        }
        Ok(doomed.len())
    }

    /// Segment files in the log.
    #[cfg(test)]
    pub(crate) fn segment_count(&self) -> usize {
        self.segments
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// The committer's end of the log: buffers a group's records, writes them
/// with one call, syncs, and rolls to a new segment when one is full.
#[derive(Debug)]
pub(crate) struct Appender {
    log: Arc<Log>,
    segment: Arc<Segment>,
    file: File,
    /// Bytes of records written to the segment (before those staged).
    pos: u64,
    /// Where the segment's last index mark points.
    last_mark: Option<u64>,
    /// Records pushed and not yet written.
    staging: Staging,
    /// Index marks for the staged records.
    marks: Vec<Mark>,
    segment_bytes: u64,
    /// The next segment's file, being made in advance.
    spare: Option<std::thread::JoinHandle<Result<PathBuf, StoreError>>>,
}

impl Appender {
    /// The log appended to.
    pub(crate) fn log(&self) -> &Log {
        &self.log
    }

    /// Buffers a record; returns its size in bytes.
    pub(crate) fn push(&mut self, offset: Offset, ts: Timestamp, topic: &str, json: &[u8]) -> u64 {
        let at = self.pos + self.staging.pending() as u64;
        if Segment::wants_mark(self.last_mark, at) {
            self.marks.push(Mark {
                offset,
                ts,
                pos: at,
            });
            self.last_mark = Some(at);
        }
        segment::encode(self.staging.records(), offset, ts, topic, json)
    }

    /// Writes the buffered records to the OS; readers may then find them
    /// (up to the head).
    pub(crate) fn write(&mut self) -> Result<(), StoreError> {
        let pending = self.staging.pending() as u64;
        if pending == 0 {
            return Ok(());
        }
        // At a position, not appended: a segment made in advance is already
        // as long as it will be.
        self.staging
            .write_at(&self.file, self.pos)
            .map_err(io_error(&self.segment.path))?;
        self.pos += pending;
        self.segment.appended(self.pos, &self.marks);
        self.marks.clear();
        Ok(())
    }

    /// Makes what was written durable (`fdatasync`: the data and the file
    /// size, what reading it back needs).
    pub(crate) fn sync(&self) -> Result<(), StoreError> {
        self.file.sync_data().map_err(io_error(&self.segment.path))
    }

    /// Starts a new segment at `next` once the current one is full. Call
    /// between groups: a group's records stay in one segment.
    pub(crate) fn roll_if_full(&mut self, next: Offset) -> Result<(), StoreError> {
        if self.pos < self.segment_bytes {
            if self.pos >= self.segment_bytes / 2 && self.spare.is_none() {
                let cached = !self.staging.is_direct();
                self.spare = make_spare(&self.log.dir, self.segment_bytes, cached);
            }
            return Ok(());
        }
        // A sealed segment is whole on disk whatever the durability mode.
        self.sync()?;
        let segment = match self.take_spare() {
            Some(spare) => {
                let path = self.log.dir.join(segment::file_name(next));
                std::fs::rename(&spare, &path).map_err(io_error(&path))?;
                Segment::empty(path)
            }
            None => Segment::create(&self.log.dir, next)?,
        };
        sync_dir(&self.log.dir)?;
        let (file, staging) = open_for_appends(&segment.path, 0, self.staging.is_direct())?;
        let segment = Arc::new(segment);
        self.log
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(next, segment.clone());
        tracing::debug!(first = %next, "log segment started");
        self.segment = segment;
        self.file = file;
        self.staging = staging;
        self.pos = 0;
        self.last_mark = None;
        Ok(())
    }

    /// The spare segment file, if it is ready; one still being made is left
    /// to finish (for the next roll), one that failed is forgotten.
    fn take_spare(&mut self) -> Option<PathBuf> {
        if !self.spare.as_ref()?.is_finished() {
            return None;
        }
        match self.spare.take()?.join() {
            Ok(Ok(path)) => Some(path),
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "could not make the next log segment in advance");
                None
            }
            Err(_) => None,
        }
    }
}

/// Opens a segment file whose records end at `len` for the appender: with
/// direct I/O if `direct` and the file system takes it.
fn open_for_appends(path: &Path, len: u64, direct: bool) -> Result<(File, Staging), StoreError> {
    use std::os::unix::fs::FileExt;
    if direct {
        match with_direct_io(File::options().write(true)).open(path) {
            Ok(file) => {
                // The written part of the last page, which the next write
                // repeats.
                let tail_len = (len % DIRECT_ALIGN as u64) as usize;
                let mut tail = vec![0; tail_len];
                if tail_len > 0 {
                    File::open(path)
                        .and_then(|f| f.read_exact_at(&mut tail, len - tail_len as u64))
                        .map_err(io_error(path))?;
                }
                return Ok((file, Staging::direct(&tail)));
            }
            Err(e) => {
                tracing::debug!(path = %path.display(), error = %e, "no direct I/O here: the log writes through the page cache")
            }
        }
    }
    let file = File::options()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    Ok((file, Staging::buffered()))
}

/// Makes the next segment's file in advance, on its own thread: `bytes` of
/// zeros, synced. Overwriting blocks that exist needs no file-system
/// metadata written, so each group's `fdatasync` then flushes only its
/// data. `cached`: the log writes through the page cache, so the zeros are
/// read into it.
fn make_spare(
    dir: &Path,
    bytes: u64,
    cached: bool,
) -> Option<std::thread::JoinHandle<Result<PathBuf, StoreError>>> {
    let path = dir.join(SPARE);
    let spawned = std::thread::Builder::new()
        .name("herald-log-spare".into())
        .spawn(move || {
            // Not every file system takes direct I/O.
            write_zeros(&path, bytes, Zeros::Direct { cached })
                .or_else(|_| write_zeros(&path, bytes, Zeros::Buffered))
                .map_err(io_error(&path))?;
            Ok(path)
        });
    spawned
        .inspect_err(|e| tracing::warn!(error = %e, "could not start making the next log segment"))
        .ok()
}

/// How [`write_zeros`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Zeros {
    /// Through the page cache.
    Buffered,
    /// With direct I/O: copying 64 MiB of zeros through the page cache took
    /// as much CPU as all the engine's compactions, and left as much dirty
    /// memory for the kernel to write back. `cached`: then read into the
    /// page cache, so that a buffered write of part of a page does not
    /// first read it from the disk.
    Direct { cached: bool },
}

/// Writes a file of at least `bytes` zeros (whole pages) and syncs it.
fn write_zeros(path: &Path, bytes: u64, how: Zeros) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    const CHUNK: usize = 1 << 20;
    let mut options = File::options();
    options.write(true).create(true).truncate(true);
    if let Zeros::Direct { .. } = how {
        with_direct_io(&mut options);
    }
    let file = options.open(path)?;
    // Direct I/O wants an aligned buffer: the aligned part of a larger one.
    let raw = vec![0u8; CHUNK + DIRECT_ALIGN];
    let at = raw.as_ptr().align_offset(DIRECT_ALIGN);
    let zeros = &raw[at..at + CHUNK];
    let bytes = bytes.next_multiple_of(DIRECT_ALIGN as u64);
    let mut written = 0u64;
    while written < bytes {
        let n = CHUNK.min(usize::try_from(bytes - written).unwrap_or(CHUNK));
        file.write_all_at(&zeros[..n], written)?;
        written += n as u64;
    }
    file.sync_all()?;
    if how == (Zeros::Direct { cached: true }) {
        rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::WillNeed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Direct writes where the file system takes them, as with `fsync`.
    fn writes(segment_bytes: u64) -> Writes {
        Writes {
            segment_bytes,
            direct: true,
        }
    }

    fn append(appender: &mut Appender, offsets: std::ops::RangeInclusive<u64>) {
        for o in offsets {
            appender.push(Offset(o), Timestamp(o), "table:t", &[b'x'; 100]);
            appender.write().unwrap();
            appender.roll_if_full(Offset(o + 1)).unwrap();
        }
    }

    fn offsets_after(log: &Log, after: u64) -> Vec<u64> {
        let mut seen = Vec::new();
        log.for_each_after(Offset(after), Offset(u64::MAX), |r| {
            seen.push(r.offset.0);
            true
        })
        .unwrap();
        seen
    }

    #[test]
    fn reads_cross_segments_and_whole_segments_are_removed() {
        for direct in [false, true] {
            reads_cross_segments_and_whole_segments_are_removed_with(Writes {
                segment_bytes: 1000,
                direct,
            });
        }
    }

    fn reads_cross_segments_and_whole_segments_are_removed_with(writes: Writes) {
        let dir = tempfile::tempdir().unwrap();
        let Opened {
            log, mut appender, ..
        } = Log::open(dir.path(), Offset(1), writes, Offset(1)).unwrap();
        append(&mut appender, 1..=50);
        assert!(log.segment_count() > 3, "{} segments", log.segment_count());
        assert_eq!(offsets_after(&log, 0), (1..=50).collect::<Vec<_>>());
        assert_eq!(offsets_after(&log, 23), (24..=50).collect::<Vec<_>>());
        assert_eq!(
            log.first_at_or_after(Offset(17), Offset(50)).unwrap(),
            Some((Offset(17), Timestamp(17)))
        );
        assert_eq!(log.first_at_or_after(Offset(51), Offset(60)).unwrap(), None);
        // Nothing past `last`, however much the segments hold.
        assert_eq!(log.first_at_or_after(Offset(17), Offset(16)).unwrap(), None);
        let mut upto_20 = Vec::new();
        log.for_each_after(Offset(10), Offset(20), |r| {
            upto_20.push(r.offset.0);
            true
        })
        .unwrap();
        assert_eq!(upto_20, (11..=20).collect::<Vec<_>>());

        let before = log.segment_count();
        let removed = log.remove_before(Offset(30)).unwrap();
        assert!(removed > 0);
        assert_eq!(log.segment_count(), before - removed);
        // Everything from 30 on is still there; the first kept segment may
        // start a little earlier.
        let kept = offsets_after(&log, 0);
        assert!(kept[0] <= 30 && kept.ends_with(&(30..=50).collect::<Vec<_>>()));
        drop((log, appender));

        // Reopened: the same records, and appends continue.
        let Opened {
            log,
            mut appender,
            last,
            ..
        } = Log::open(dir.path(), Offset(999), writes, Offset(1)).unwrap();
        assert_eq!(last, Some((Offset(50), Timestamp(50))));
        assert_eq!(offsets_after(&log, 0), kept);
        append(&mut appender, 51..=52);
        assert_eq!(offsets_after(&log, 49), [50, 51, 52]);
        // The newest segment is never removed.
        log.remove_before(Offset(1000)).unwrap();
        assert_eq!(log.segment_count(), 1);
    }

    #[test]
    fn appends_are_direct_where_asked_and_the_file_system_takes_it() {
        for direct in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            let writes = Writes {
                segment_bytes: 1 << 20,
                direct,
            };
            let Opened { appender, .. } =
                Log::open(dir.path(), Offset(1), writes, Offset(1)).unwrap();
            let taken = with_direct_io(File::options().write(true))
                .open(&appender.segment.path)
                .is_ok();
            assert_eq!(appender.staging.is_direct(), direct && taken, "{writes:?}");
        }
    }

    #[test]
    fn the_next_segment_is_made_in_advance_and_used() {
        let dir = tempfile::tempdir().unwrap();
        let Opened {
            log, mut appender, ..
        } = Log::open(dir.path(), Offset(1), writes(4096), Offset(1)).unwrap();
        // Past half of the first segment, its successor is being made.
        let mut o = 0;
        while appender.spare.is_none() {
            o += 1;
            append(&mut appender, o..=o);
        }
        while !appender.spare.as_ref().unwrap().is_finished() {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let first_segments = log.segment_count();
        while log.segment_count() == first_segments {
            o += 1;
            append(&mut appender, o..=o);
        }
        // The new segment is the spare, renamed: already full length.
        let newest = appender.segment.path.clone();
        assert_eq!(std::fs::metadata(&newest).unwrap().len(), 4096);
        assert!(!dir.path().join(DIR).join(SPARE).exists());
        append(&mut appender, o + 1..=o + 3);
        assert_eq!(offsets_after(&log, 0), (1..=o + 3).collect::<Vec<_>>());
        drop((log, appender));

        // Reopened, the zeros end it and appends continue at the data's end.
        let Opened {
            log,
            mut appender,
            last,
            ..
        } = Log::open(dir.path(), Offset(1), writes(4096), Offset(1)).unwrap();
        assert_eq!(last.map(|(o, _)| o), Some(Offset(o + 3)));
        append(&mut appender, o + 4..=o + 4);
        assert_eq!(offsets_after(&log, 0), (1..=o + 4).collect::<Vec<_>>());
    }

    #[test]
    fn spare_files_are_whole_pages_of_zeros_with_or_without_direct_io() {
        let dir = tempfile::tempdir().unwrap();
        for how in [Zeros::Direct { cached: true }, Zeros::Buffered] {
            let path = dir.path().join(format!("zeros-{how:?}"));
            // Rounded up to whole pages, which direct I/O writes.
            write_zeros(&path, 3 * 4096 + 10, how).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(bytes.len(), 4 * 4096);
            assert!(bytes.iter().all(|&b| b == 0));
            // Made again over a longer file, it is cut to size.
            write_zeros(&path, 4096, how).unwrap();
            assert_eq!(std::fs::metadata(&path).unwrap().len(), 4096);
        }
    }

    #[test]
    fn segments_whose_offsets_overlap_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let Opened { mut appender, .. } =
            Log::open(dir.path(), Offset(1), writes(1 << 20), Offset(1)).unwrap();
        append(&mut appender, 1..=10);
        drop(appender);
        // A second segment, named above the first's name, repeating 5..=6.
        let segment = Segment::create(&dir.path().join(DIR), Offset(5)).unwrap();
        let mut file = File::options().write(true).open(&segment.path).unwrap();
        let mut bytes = Vec::new();
        for o in 5..=6 {
            segment::encode(&mut bytes, Offset(o), Timestamp(o), "table:t", b"{}");
        }
        file.write_all(&bytes).unwrap();
        assert!(matches!(
            Log::open(dir.path(), Offset(1), writes(1 << 20), Offset(1)),
            Err(StoreError::Corrupt(why)) if why.contains("repeats")
        ));
    }

    #[test]
    fn an_empty_log_starts_at_the_next_offset() {
        let dir = tempfile::tempdir().unwrap();
        let Opened {
            log,
            mut appender,
            last,
            ..
        } = Log::open(dir.path(), Offset(7), writes(1 << 20), Offset(1)).unwrap();
        assert_eq!(last, None);
        assert!(offsets_after(&log, 0).is_empty());
        append(&mut appender, 7..=8);
        assert_eq!(offsets_after(&log, 0), [7, 8]);
        assert!(
            dir.path()
                .join(DIR)
                .join(segment::file_name(Offset(7)))
                .exists()
        );
    }
}
