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

use crate::error::StoreError;
use crate::segment::{self, Mark, RecordRef, Segment};
use herald_proto::{Offset, Timestamp};
use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

/// The folder of the log's segments, inside the data directory.
pub(crate) const DIR: &str = "log";

/// The segments of the log, by first offset.
#[derive(Debug)]
pub(crate) struct Log {
    dir: PathBuf,
    segments: RwLock<BTreeMap<Offset, Arc<Segment>>>,
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

fn io_error(path: &Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
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
    /// if there is none. New segments roll over past `segment_bytes`.
    pub(crate) fn open(
        data: &Path,
        next: Offset,
        segment_bytes: u64,
        count_from: Offset,
    ) -> Result<Opened, StoreError> {
        let dir = data.join(DIR);
        std::fs::create_dir_all(&dir).map_err(io_error(&dir))?;
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
                let (segment, _) = Segment::create(&dir, next)?;
                sync_dir(&dir)?;
                let segment = Arc::new(segment);
                segments.insert(next, segment.clone());
                segment
            }
        };
        let file = File::options()
            .append(true)
            .open(&active.path)
            .map_err(io_error(&active.path))?;
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
            buf: Vec::new(),
            marks: Vec::new(),
            segment_bytes,
        };
        Ok(Opened {
            log,
            appender,
            last,
            bytes,
        })
    }

    /// Calls `f` with each record after `after`, in offset order, until `f`
    /// returns `false` or the log ends. Records past the store's head may be
    /// visited: callers stop there.
    pub(crate) fn for_each_after(
        &self,
        after: Offset,
        mut f: impl FnMut(RecordRef<'_>) -> bool,
    ) -> Result<(), StoreError> {
        let segments: Vec<Arc<Segment>> = {
            let map = self.segments.read().unwrap_or_else(PoisonError::into_inner);
            let from = map
                .range(..=after.next())
                .next_back()
                .map_or(Offset::ZERO, |(first, _)| *first);
            map.range(from..).map(|(_, s)| s.clone()).collect()
        };
        for segment in segments {
            if segment.for_each_after(after, &mut f)? {
                break;
            }
        }
        Ok(())
    }

    /// The first record at or after `offset`: its offset and timestamp.
    pub(crate) fn first_at_or_after(
        &self,
        offset: Offset,
    ) -> Result<Option<(Offset, Timestamp)>, StoreError> {
        let mut found = None;
        self.for_each_after(Offset(offset.0.saturating_sub(1)), |r| {
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
    /// Bytes written to the segment (before `buf`).
    pos: u64,
    /// Where the segment's last index mark points.
    last_mark: Option<u64>,
    /// Records pushed and not yet written.
    buf: Vec<u8>,
    /// Index marks for records in `buf`.
    marks: Vec<Mark>,
    segment_bytes: u64,
}

impl Appender {
    /// Buffers a record; returns its size in bytes.
    pub(crate) fn push(&mut self, offset: Offset, ts: Timestamp, topic: &str, json: &[u8]) -> u64 {
        let at = self.pos + self.buf.len() as u64;
        if Segment::wants_mark(self.last_mark, at) {
            self.marks.push(Mark {
                offset,
                ts,
                pos: at,
            });
            self.last_mark = Some(at);
        }
        segment::encode(&mut self.buf, offset, ts, topic, json)
    }

    /// Writes the buffered records to the OS; readers may then find them
    /// (up to the head).
    pub(crate) fn write(&mut self) -> Result<(), StoreError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file
            .write_all(&self.buf)
            .map_err(io_error(&self.segment.path))?;
        self.pos += self.buf.len() as u64;
        self.segment.appended(self.pos, &self.marks);
        self.buf.clear();
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
            return Ok(());
        }
        // A sealed segment is whole on disk whatever the durability mode.
        self.sync()?;
        let (segment, file) = Segment::create(&self.log.dir, next)?;
        sync_dir(&self.log.dir)?;
        let segment = Arc::new(segment);
        self.log
            .segments
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(next, segment.clone());
        tracing::debug!(first = %next, "log segment started");
        self.segment = segment;
        self.file = file;
        self.pos = 0;
        self.last_mark = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn append(appender: &mut Appender, offsets: std::ops::RangeInclusive<u64>) {
        for o in offsets {
            appender.push(Offset(o), Timestamp(o), "table:t", &[b'x'; 100]);
            appender.write().unwrap();
            appender.roll_if_full(Offset(o + 1)).unwrap();
        }
    }

    fn offsets_after(log: &Log, after: u64) -> Vec<u64> {
        let mut seen = Vec::new();
        log.for_each_after(Offset(after), |r| {
            seen.push(r.offset.0);
            true
        })
        .unwrap();
        seen
    }

    #[test]
    fn reads_cross_segments_and_whole_segments_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let Opened {
            log, mut appender, ..
        } = Log::open(dir.path(), Offset(1), 1000, Offset(1)).unwrap();
        append(&mut appender, 1..=50);
        assert!(log.segment_count() > 3, "{} segments", log.segment_count());
        assert_eq!(offsets_after(&log, 0), (1..=50).collect::<Vec<_>>());
        assert_eq!(offsets_after(&log, 23), (24..=50).collect::<Vec<_>>());
        assert_eq!(
            log.first_at_or_after(Offset(17)).unwrap(),
            Some((Offset(17), Timestamp(17)))
        );
        assert_eq!(log.first_at_or_after(Offset(51)).unwrap(), None);

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
        } = Log::open(dir.path(), Offset(999), 1000, Offset(1)).unwrap();
        assert_eq!(last, Some((Offset(50), Timestamp(50))));
        assert_eq!(offsets_after(&log, 0), kept);
        append(&mut appender, 51..=52);
        assert_eq!(offsets_after(&log, 49), [50, 51, 52]);
        // The newest segment is never removed.
        log.remove_before(Offset(1000)).unwrap();
        assert_eq!(log.segment_count(), 1);
    }

    #[test]
    fn segments_whose_offsets_overlap_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let Opened { mut appender, .. } =
            Log::open(dir.path(), Offset(1), 1 << 20, Offset(1)).unwrap();
        append(&mut appender, 1..=10);
        drop(appender);
        // A second segment, named above the first's name, repeating 5..=6.
        let (_, mut file) = Segment::create(&dir.path().join(DIR), Offset(5)).unwrap();
        let mut bytes = Vec::new();
        for o in 5..=6 {
            segment::encode(&mut bytes, Offset(o), Timestamp(o), "table:t", b"{}");
        }
        file.write_all(&bytes).unwrap();
        assert!(matches!(
            Log::open(dir.path(), Offset(1), 1 << 20, Offset(1)),
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
        } = Log::open(dir.path(), Offset(7), 1 << 20, Offset(1)).unwrap();
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
