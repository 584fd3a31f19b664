//! One file of the change log: a run of framed records, appended only.
//!
//! A record is framed as `body_len: u32 LE ‖ crc32(body): u32 LE ‖ body`,
//! and its body is `offset: u64 BE ‖ ts: u64 BE ‖ topic_len: u16 BE ‖ topic ‖
//! event JSON`. The checksum tells a torn write (a crash in the middle of an
//! append) from a record, so recovery can cut the tail exactly where the
//! last complete record ends.
//!
//! Each segment keeps a sparse index in memory, one [`Mark`] every
//! [`MARK_EVERY`] bytes, so a read seeks to within 16 KiB of any offset.

use crate::error::{StoreError, io_error};
use herald_proto::{Offset, Timestamp};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{PoisonError, RwLock};

/// Frame header: body length and checksum.
pub(crate) const FRAME_HEADER: usize = 4 + 4;
/// Body header: offset, timestamp, topic length.
const BODY_HEADER: usize = 8 + 8 + 2;
/// Bytes of records between two index marks.
const MARK_EVERY: u64 = 16 << 10;
/// Bytes read from the file at a time.
const READ_CHUNK: usize = 64 << 10;
/// File name suffix of segments.
pub(crate) const SUFFIX: &str = ".seg";

/// A record as read, borrowing the reader's buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RecordRef<'a> {
    pub(crate) offset: Offset,
    pub(crate) ts: Timestamp,
    pub(crate) topic: &'a str,
    pub(crate) json: &'a [u8],
    /// Bytes the record takes in the file, frame included.
    pub(crate) size: u64,
}

/// Appends one framed record to `out`; returns its size in bytes.
pub(crate) fn encode(
    out: &mut Vec<u8>,
    offset: Offset,
    ts: Timestamp,
    topic: &str,
    json: &[u8],
) -> u64 {
    let topic_len = u16::try_from(topic.len()).expect("topics are at most 262 bytes");
    let body_len = BODY_HEADER + topic.len() + json.len();
    let start = out.len();
    out.reserve(FRAME_HEADER + body_len);
    out.extend_from_slice(
        &u32::try_from(body_len)
            .expect("records are under 4 GiB")
            .to_le_bytes(),
    );
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&offset.0.to_be_bytes());
    out.extend_from_slice(&ts.0.to_be_bytes());
    out.extend_from_slice(&topic_len.to_be_bytes());
    out.extend_from_slice(topic.as_bytes());
    out.extend_from_slice(json);
    let crc = crc32fast::hash(&out[start + FRAME_HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    (FRAME_HEADER + body_len) as u64
}

/// What the bytes at some position hold.
#[derive(Debug)]
enum Frame {
    /// A whole, intact record: where its parts are, relative to its start.
    Record {
        offset: Offset,
        ts: Timestamp,
        topic: std::ops::Range<usize>,
        json: std::ops::Range<usize>,
        size: usize,
    },
    /// The bytes end inside the frame: read more (or a torn tail).
    Incomplete { needed: usize },
    /// Bytes that are not a record. `torn`: what an interrupted append
    /// leaves (a bad checksum, a length from zeros); otherwise the record's
    /// checksum holds and its content is still wrong: damage.
    Invalid { why: &'static str, torn: bool },
    /// Zeros: the unwritten rest of a segment file made in advance.
    End,
}

fn decode(bytes: &[u8]) -> Frame {
    if bytes.len() < FRAME_HEADER {
        return Frame::Incomplete {
            needed: FRAME_HEADER,
        };
    }
    let body_len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().expect("4 bytes"));
    if body_len == 0 && crc == 0 {
        return Frame::End;
    }
    if body_len < BODY_HEADER {
        return Frame::Invalid {
            why: "record shorter than its header",
            torn: true,
        };
    }
    let size = FRAME_HEADER + body_len;
    if bytes.len() < size {
        return Frame::Incomplete { needed: size };
    }
    let body = &bytes[FRAME_HEADER..size];
    if crc32fast::hash(body) != crc {
        return Frame::Invalid {
            why: "checksum mismatch",
            torn: true,
        };
    }
    let offset = u64::from_be_bytes(body[..8].try_into().expect("8 bytes"));
    let ts = u64::from_be_bytes(body[8..16].try_into().expect("8 bytes"));
    let topic_len = usize::from(u16::from_be_bytes([body[16], body[17]]));
    let topic = FRAME_HEADER + BODY_HEADER..FRAME_HEADER + BODY_HEADER + topic_len;
    if topic.end > size {
        return Frame::Invalid {
            why: "topic runs past the end",
            torn: false,
        };
    }
    // Whether the topic is UTF-8 is checked once, where it is borrowed as
    // text (`Reader::next_frame`).
    Frame::Record {
        offset: Offset(offset),
        ts: Timestamp(ts),
        json: topic.end..size,
        topic,
        size,
    }
}

/// An index entry: the record at `pos` has this offset and timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Mark {
    pub(crate) offset: Offset,
    pub(crate) ts: Timestamp,
    pub(crate) pos: u64,
}

/// One segment file, shared by the appender and readers. Readers open the
/// file for each read, so a long log holds no descriptor per segment.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) path: PathBuf,
    /// Bytes of complete records; readers never look past it.
    len: AtomicU64,
    /// Sparse index, in offset (and file) order.
    marks: RwLock<Vec<Mark>>,
}

/// The file name of the segment whose first offset is `first`.
pub(crate) fn file_name(first: Offset) -> String {
    format!("{:020}{SUFFIX}", first.0)
}

/// The first offset a segment file name stands for.
pub(crate) fn parse_name(name: &str) -> Option<Offset> {
    let digits = name.strip_suffix(SUFFIX)?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok().map(Offset))
        .flatten()
}

/// What [`Segment::recover`] found.
#[derive(Debug)]
pub(crate) struct Recovered {
    pub(crate) segment: Segment,
    /// The first record's offset.
    pub(crate) first: Option<Offset>,
    /// The last record's offset and timestamp.
    pub(crate) last: Option<(Offset, Timestamp)>,
    /// Bytes of the records at or above the `count_from` offset.
    pub(crate) bytes_from: u64,
}

impl Segment {
    /// A segment of no records yet over the file at `path` (new, or made
    /// in advance and just renamed: zeros).
    pub(crate) fn empty(path: PathBuf) -> Segment {
        Segment {
            path,
            len: AtomicU64::new(0),
            marks: RwLock::new(Vec::new()),
        }
    }

    /// Creates an empty segment file.
    pub(crate) fn create(dir: &Path, first: Offset) -> Result<Segment, StoreError> {
        let path = dir.join(file_name(first));
        File::options()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        Ok(Segment::empty(path))
    }

    /// Opens a segment written before, checking every record and building
    /// its index. With `cut_torn_tail`, bytes after the last intact record
    /// are removed (what a crash mid-append leaves); otherwise they are an
    /// error, since only the newest segment can have been cut short.
    pub(crate) fn recover(
        path: PathBuf,
        first: Offset,
        cut_torn_tail: bool,
        count_from: Offset,
    ) -> Result<Recovered, StoreError> {
        let file = File::options()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(io_error(&path))?;
        let size = file.metadata().map_err(io_error(&path))?.len();
        let segment = Segment::empty(path);
        let mut marks = Vec::new();
        let mut first_record = None;
        let mut last: Option<(Offset, Timestamp)> = None;
        let mut bytes_from = 0;
        let mut reader = Reader::new(&file, 0, size);
        let mut bad = None;
        loop {
            match reader.next_frame() {
                Ok(Some((pos, record))) => {
                    let after = last.map_or(Offset(first.0.saturating_sub(1)), |(o, _)| o);
                    if record.offset <= after {
                        bad = Some((pos, "offsets go backwards", false));
                        break;
                    }
                    if Segment::wants_mark(marks.last().map(|m: &Mark| m.pos), pos) {
                        marks.push(Mark {
                            offset: record.offset,
                            ts: record.ts,
                            pos,
                        });
                    }
                    if record.offset >= count_from {
                        bytes_from += record.size;
                    }
                    first_record = first_record.or(Some(record.offset));
                    last = Some((record.offset, record.ts));
                }
                Ok(None) => break,
                Err(ReadError::Invalid { pos, why, torn }) => {
                    bad = Some((pos, why, torn));
                    break;
                }
                Err(ReadError::Io(e)) => return Err(io_error(&segment.path)(e)),
            }
        }
        // Where the intact records end: at a torn append, if any (the
        // reader stops in front of a frame it cannot read).
        let data_end = reader.pos;
        if let Some((pos, why, torn)) = bad {
            // Only the newest segment is appended to, and only a torn
            // append is a crash's doing: anything else is not cut away.
            if !(cut_torn_tail && torn) {
                return Err(StoreError::Corrupt(format!(
                    "log segment {} at byte {pos}: {why}",
                    segment.path.display()
                )));
            }
            tracing::warn!(
                segment = %segment.path.display(),
                at = pos,
                bytes = size - pos,
                why,
                "cutting the log's torn tail (an append a crash interrupted, never acknowledged)"
            );
        }
        if cut_torn_tail && data_end < size {
            // A torn append, or the zeros of a segment made in advance (see
            // `log`). Appends go on at the data's end; whatever an
            // interrupted append left further on must not be read after
            // them, so the rest goes (this segment grows as it is written
            // from now on).
            file.set_len(data_end).map_err(io_error(&segment.path))?;
            file.sync_all().map_err(io_error(&segment.path))?;
        }
        segment.len.store(data_end, Ordering::SeqCst);
        *segment
            .marks
            .write()
            .unwrap_or_else(PoisonError::into_inner) = marks;
        Ok(Recovered {
            segment,
            first: first_record,
            last,
            bytes_from,
        })
    }

    /// Bytes of complete records.
    pub(crate) fn len(&self) -> u64 {
        self.len.load(Ordering::SeqCst)
    }

    /// Records appended: `len` bytes in all now, with these new marks.
    pub(crate) fn appended(&self, len: u64, marks: &[Mark]) {
        if !marks.is_empty() {
            self.marks
                .write()
                .unwrap_or_else(PoisonError::into_inner)
                .extend_from_slice(marks);
        }
        self.len.store(len, Ordering::SeqCst);
    }

    /// Whether a record at `pos` should be indexed, given the last mark.
    pub(crate) fn wants_mark(last_mark: Option<u64>, pos: u64) -> bool {
        last_mark.is_none_or(|m| pos >= m + MARK_EVERY)
    }

    /// The position of the last mark, if any.
    pub(crate) fn last_mark_pos(&self) -> Option<u64> {
        self.marks
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .last()
            .map(|m| m.pos)
    }

    /// Where to start reading to find the first record with an offset at
    /// or above `offset`.
    fn seek(&self, offset: Offset) -> u64 {
        let marks = self.marks.read().unwrap_or_else(PoisonError::into_inner);
        let i = marks.partition_point(|m| m.offset <= offset);
        i.checked_sub(1).map_or(0, |i| marks[i].pos)
    }

    /// Calls `f` with each record whose offset is above `after`, in order,
    /// until `f` says stop. Returns `true` if stopped by `f`.
    pub(crate) fn for_each_after(
        &self,
        after: Offset,
        mut f: impl FnMut(RecordRef<'_>) -> bool,
    ) -> Result<bool, StoreError> {
        let start = self.seek(after.next());
        let end = self.len();
        let file = match File::open(&self.path) {
            Ok(file) => file,
            // Removed by retention since the caller listed it: the caller
            // finds the log's new start when it checks after reading.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error(&self.path)(e)),
        };
        let mut reader = Reader::new(&file, start, end);
        loop {
            match reader.next_frame() {
                Ok(Some((_, record))) => {
                    if record.offset > after && !f(record) {
                        return Ok(true);
                    }
                }
                Ok(None) => return Ok(false),
                Err(ReadError::Invalid { pos, why, .. }) => {
                    return Err(StoreError::Corrupt(format!(
                        "log segment {} at byte {pos}: {why}",
                        self.path.display()
                    )));
                }
                Err(ReadError::Io(e)) => return Err(io_error(&self.path)(e)),
            }
        }
    }
}

#[derive(Debug)]
enum ReadError {
    Invalid {
        pos: u64,
        why: &'static str,
        torn: bool,
    },
    Io(std::io::Error),
}

/// Reads frames from `[pos, end)` of a segment file through a buffer.
struct Reader<'s> {
    file: &'s File,
    /// File position of `buf[start]`.
    pos: u64,
    end: u64,
    buf: Vec<u8>,
    start: usize,
}

impl<'s> Reader<'s> {
    fn new(file: &'s File, pos: u64, end: u64) -> Reader<'s> {
        Reader {
            file,
            pos,
            end,
            buf: Vec::new(),
            start: 0,
        }
    }

    /// Makes at least `needed` bytes available from `start` (fewer at the end).
    fn fill(&mut self, needed: usize) -> std::io::Result<()> {
        self.buf.drain(..self.start);
        self.start = 0;
        let file_pos = self.pos + self.buf.len() as u64;
        let want = needed.max(READ_CHUNK).saturating_sub(self.buf.len());
        let available = usize::try_from(self.end.saturating_sub(file_pos)).unwrap_or(usize::MAX);
        let n = want.min(available);
        if n == 0 {
            return Ok(());
        }
        let old = self.buf.len();
        self.buf.resize(old + n, 0);
        self.file.read_exact_at(&mut self.buf[old..], file_pos)?;
        Ok(())
    }

    /// The next record and its position, or `None` at the end.
    fn next_frame(&mut self) -> Result<Option<(u64, RecordRef<'_>)>, ReadError> {
        let mut needed = FRAME_HEADER;
        loop {
            let have = self.buf.len() - self.start;
            if have < needed {
                self.fill(needed).map_err(ReadError::Io)?;
                if self.buf.len() - self.start == have {
                    // Nothing more in the file.
                    return if have == 0 {
                        Ok(None)
                    } else {
                        Err(ReadError::Invalid {
                            pos: self.pos,
                            why: "record cut short",
                            torn: true,
                        })
                    };
                }
                continue;
            }
            match decode(&self.buf[self.start..]) {
                Frame::Incomplete { needed: n } => needed = n,
                Frame::Invalid { why, torn } => {
                    return Err(ReadError::Invalid {
                        pos: self.pos,
                        why,
                        torn,
                    });
                }
                Frame::End => return Ok(None),
                Frame::Record {
                    offset,
                    ts,
                    topic,
                    json,
                    size,
                } => {
                    let (at, base) = (self.pos, self.start);
                    self.start += size;
                    self.pos += size as u64;
                    let bytes = &self.buf[base..base + size];
                    let topic =
                        std::str::from_utf8(&bytes[topic]).map_err(|_| ReadError::Invalid {
                            pos: at,
                            why: "topic is not UTF-8",
                            torn: false,
                        })?;
                    let record = RecordRef {
                        offset,
                        ts,
                        topic,
                        json: &bytes[json],
                        size: size as u64,
                    };
                    return Ok(Some((at, record)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_records(
        dir: &Path,
        offsets: std::ops::RangeInclusive<u64>,
    ) -> (Segment, File, Vec<u8>) {
        let segment = Segment::create(dir, Offset(*offsets.start())).unwrap();
        let mut file = File::options().write(true).open(&segment.path).unwrap();
        let mut bytes = Vec::new();
        for o in offsets {
            encode(
                &mut bytes,
                Offset(o),
                Timestamp(o * 10),
                "table:t",
                format!("{{\"o\":{o}}}").as_bytes(),
            );
        }
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        segment.appended(bytes.len() as u64, &[]);
        (segment, file, bytes)
    }

    fn offsets_after(segment: &Segment, after: u64) -> Vec<u64> {
        let mut seen = Vec::new();
        segment
            .for_each_after(Offset(after), |r| {
                seen.push(r.offset.0);
                true
            })
            .unwrap();
        seen
    }

    #[test]
    fn names_round_trip_and_strangers_are_ignored() {
        assert_eq!(parse_name(&file_name(Offset(42))), Some(Offset(42)));
        assert_eq!(parse_name("42.seg"), None);
        assert_eq!(parse_name("0000000000000000004x.seg"), None);
        assert_eq!(parse_name("00000000000000000042.tmp"), None);
    }

    #[test]
    fn records_read_back_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, _file, _) = write_records(dir.path(), 1..=2000);
        assert_eq!(offsets_after(&segment, 0).len(), 2000);
        assert_eq!(
            offsets_after(&segment, 1500),
            (1501..=2000).collect::<Vec<_>>()
        );
        assert!(offsets_after(&segment, 2000).is_empty());
        // The index is built on recovery and used by later reads.
        let recovered =
            Segment::recover(segment.path.clone(), Offset(1), false, Offset(1001)).unwrap();
        assert_eq!(recovered.last, Some((Offset(2000), Timestamp(20_000))));
        let mut expected = Vec::new();
        for o in 1001..=2000u64 {
            encode(
                &mut expected,
                Offset(o),
                Timestamp(o * 10),
                "table:t",
                format!("{{\"o\":{o}}}").as_bytes(),
            );
        }
        assert_eq!(recovered.bytes_from, expected.len() as u64);
        assert!(recovered.segment.marks.read().unwrap().len() > 1);
        assert_eq!(offsets_after(&recovered.segment, 1999), [2000]);
        let mut first = None;
        recovered
            .segment
            .for_each_after(Offset(700), |r| {
                first = Some((r.offset, r.ts, r.topic.to_owned(), r.json.to_vec()));
                false
            })
            .unwrap();
        assert_eq!(
            first,
            Some((
                Offset(701),
                Timestamp(7010),
                "table:t".into(),
                br#"{"o":701}"#.to_vec()
            ))
        );
    }

    #[test]
    fn zeros_after_the_records_end_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, file, bytes) = write_records(dir.path(), 1..=10);
        let data = bytes.len() as u64;
        // A segment made in advance: zeros after the records, and further on
        // what an interrupted append could leave among them.
        file.set_len(data + 8192).unwrap();
        let mut stray = Vec::new();
        encode(&mut stray, Offset(11), Timestamp(110), "table:t", b"{}");
        file.write_all_at(&stray, data + 4096).unwrap();

        // An older segment: the zeros end it, nothing is changed.
        let older = Segment::recover(segment.path.clone(), Offset(1), false, Offset(1)).unwrap();
        assert_eq!(
            (older.last.unwrap().0, older.segment.len()),
            (Offset(10), data)
        );
        assert_eq!(std::fs::metadata(&segment.path).unwrap().len(), data + 8192);

        // The newest: appends go on at the data's end, so the rest goes.
        let newest = Segment::recover(segment.path.clone(), Offset(1), true, Offset(1)).unwrap();
        assert_eq!(
            (newest.last.unwrap().0, newest.segment.len()),
            (Offset(10), data)
        );
        assert_eq!(std::fs::metadata(&segment.path).unwrap().len(), data);
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_whole_record() {
        let dir = tempfile::tempdir().unwrap();
        let (segment, _file, bytes) = write_records(dir.path(), 1..=10);
        let whole = bytes.len() as u64;
        // Every way an append can be cut short, and garbage after it.
        for cut in [1u64, 5, 9, 20] {
            let file = File::options().write(true).open(&segment.path).unwrap();
            file.set_len(whole).unwrap();
            let mut record = Vec::new();
            encode(&mut record, Offset(11), Timestamp(110), "table:t", b"{}");
            file.write_all_at(&record[..cut as usize], whole).unwrap();
            let recovered =
                Segment::recover(segment.path.clone(), Offset(1), true, Offset(1)).unwrap();
            assert_eq!(recovered.last.unwrap().0, Offset(10));
            assert_eq!(recovered.segment.len(), whole);
            assert_eq!(std::fs::metadata(&segment.path).unwrap().len(), whole);
            // An older segment may not be cut: that is damage, not a crash.
            file.write_all_at(&record[..cut as usize], whole).unwrap();
            assert!(matches!(
                Segment::recover(segment.path.clone(), Offset(1), false, Offset(1)),
                Err(StoreError::Corrupt(_))
            ));
        }
        // A whole record whose checksum holds but whose content is wrong is
        // damage, not a torn append: reported, never cut away.
        let file = File::options().write(true).open(&segment.path).unwrap();
        let refused_and_kept = |record: &[u8], why: &str| {
            file.set_len(whole).unwrap();
            file.write_all_at(record, whole).unwrap();
            assert!(matches!(
                Segment::recover(segment.path.clone(), Offset(1), true, Offset(1)),
                Err(StoreError::Corrupt(got)) if got.contains(why)
            ));
            assert_eq!(
                std::fs::metadata(&segment.path).unwrap().len(),
                whole + record.len() as u64
            );
        };
        // Its offset goes backwards.
        let mut stale = Vec::new();
        encode(&mut stale, Offset(3), Timestamp(30), "table:t", b"{}");
        refused_and_kept(&stale, "backwards");
        // Its topic is not text.
        let mut odd = Vec::new();
        encode(&mut odd, Offset(11), Timestamp(110), "table:t", b"{}");
        odd[FRAME_HEADER + BODY_HEADER] = 0xff;
        let crc = crc32fast::hash(&odd[FRAME_HEADER..]);
        odd[4..8].copy_from_slice(&crc.to_le_bytes());
        refused_and_kept(&odd, "UTF-8");
        // A flipped byte inside a record is caught by its checksum.
        file.set_len(whole).unwrap();
        file.write_all_at(b"X", whole - 3).unwrap();
        let recovered = Segment::recover(segment.path.clone(), Offset(1), true, Offset(1)).unwrap();
        assert_eq!(recovered.last.unwrap().0, Offset(9));
    }
}
