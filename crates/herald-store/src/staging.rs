//! A group's log records on their way to the segment file.
//!
//! Written through the page cache, the records go as they are. Written with
//! direct I/O (`O_DIRECT`), the disk takes whole pages from page-aligned
//! memory at page-aligned positions, so the staging area starts at an
//! aligned address and begins with the segment's last partial page as
//! written before: each write rewrites that page together with the new
//! records, and the rest of the last page is zeros, as the file already
//! holds there. Direct writes skip copying the group into the page cache
//! and the kernel's write-back pass over those pages in `fdatasync`, which
//! then only flushes the disk's cache.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};

/// Alignment for direct I/O: a page, which every block size divides.
pub(crate) const DIRECT_ALIGN: usize = 4096;

/// `options`, opening with direct I/O (`O_DIRECT`). A file system that does
/// not take it refuses the open.
pub(crate) fn with_direct_io(options: &mut OpenOptions) -> &mut OpenOptions {
    options.custom_flags(rustix::fs::OFlags::DIRECT.bits().cast_signed())
}
/// Bytes a direct staging area holds before it first grows.
const INITIAL: usize = 256 << 10;

/// Records pushed since the last write, and how they will be written.
#[derive(Debug)]
pub(crate) enum Staging {
    /// Written through the page cache as they are.
    Buffered(Vec<u8>),
    /// Written with direct I/O, in whole pages.
    Direct(Pages),
}

/// A staging area for direct I/O.
#[derive(Debug)]
pub(crate) struct Pages {
    /// `raw[at..]` is the area, at an aligned address: `tail` bytes of the
    /// segment's last partial page, then the records pushed since;
    /// `raw[..at]` is padding.
    raw: Vec<u8>,
    at: usize,
    tail: usize,
}

impl Staging {
    /// Empty, for writes through the page cache.
    pub(crate) fn buffered() -> Staging {
        Staging::Buffered(Vec::new())
    }

    /// Empty, for direct writes to a segment whose data ends with `tail`,
    /// the bytes of its last page that are written (none at a page boundary).
    pub(crate) fn direct(tail: &[u8]) -> Staging {
        debug_assert!(tail.len() < DIRECT_ALIGN);
        let mut pages = Pages {
            raw: Vec::new(),
            at: 0,
            tail: tail.len(),
        };
        pages.realign(INITIAL);
        pages.raw.extend_from_slice(tail);
        Staging::Direct(pages)
    }

    /// Whether writes are direct.
    pub(crate) fn is_direct(&self) -> bool {
        matches!(self, Staging::Direct(_))
    }

    /// Where records are pushed: append to the end.
    pub(crate) fn records(&mut self) -> &mut Vec<u8> {
        match self {
            Staging::Buffered(raw) | Staging::Direct(Pages { raw, .. }) => raw,
        }
    }

    /// Bytes of records pushed since the last write.
    pub(crate) fn pending(&self) -> usize {
        match self {
            Staging::Buffered(raw) => raw.len(),
            Staging::Direct(pages) => pages.raw.len() - pages.at - pages.tail,
        }
    }

    /// Writes the pending records, which start at `pos` in `file`, and
    /// empties the staging area.
    pub(crate) fn write_at(&mut self, file: &File, pos: u64) -> std::io::Result<()> {
        match self {
            Staging::Buffered(raw) => {
                file.write_all_at(raw, pos)?;
                raw.clear();
                Ok(())
            }
            Staging::Direct(pages) => pages.write_at(file, pos),
        }
    }
}

impl Pages {
    fn write_at(&mut self, file: &File, pos: u64) -> std::io::Result<()> {
        debug_assert_eq!((pos - self.tail as u64) % DIRECT_ALIGN as u64, 0);
        let data = self.raw.len() - self.at;
        let pages = data.next_multiple_of(DIRECT_ALIGN);
        // Pushing may have moved the records to memory that is not aligned,
        // or too small to pad to whole pages in place.
        if self.raw.capacity() < self.at + pages || self.misaligned() {
            self.realign(pages);
        }
        self.raw.resize(self.at + pages, 0);
        file.write_all_at(&self.raw[self.at..], pos - self.tail as u64)?;
        // The new last page, if partial, is the next write's first.
        let tail = data % DIRECT_ALIGN;
        let from = self.at + data - tail;
        self.raw.copy_within(from..from + tail, self.at);
        self.raw.truncate(self.at + tail);
        self.tail = tail;
        Ok(())
    }

    fn misaligned(&self) -> bool {
        self.raw[self.at..].as_ptr().align_offset(DIRECT_ALIGN) != 0
    }

    /// Moves the area to fresh memory, aligned, with room for at least
    /// `len` bytes.
    fn realign(&mut self, len: usize) {
        let room = len.max(self.raw.capacity()).max(INITIAL);
        let mut fresh: Vec<u8> = Vec::with_capacity(room + DIRECT_ALIGN);
        let at = fresh.as_ptr().align_offset(DIRECT_ALIGN);
        fresh.resize(at, 0);
        fresh.extend_from_slice(&self.raw[self.at..]);
        self.raw = fresh;
        self.at = at;
        debug_assert!(!self.misaligned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    /// Pieces of these sizes, of bytes that are never zero (as records end).
    fn pieces(sizes: &[usize]) -> Vec<Vec<u8>> {
        let mut n = 0u8;
        let mut next = move || {
            n = n % 250 + 1;
            n
        };
        sizes
            .iter()
            .map(|&size| (0..size).map(|_| next()).collect())
            .collect()
    }

    /// Pushes each piece and writes it, the first at `start`.
    fn stage_and_write(staging: &mut Staging, file: &File, start: u64, pieces: &[Vec<u8>]) {
        let mut pos = start;
        for piece in pieces {
            staging.records().extend_from_slice(piece);
            assert_eq!(staging.pending(), piece.len());
            staging.write_at(file, pos).unwrap();
            assert_eq!(staging.pending(), 0);
            pos += piece.len() as u64;
        }
    }

    fn open_direct(path: &Path) -> Option<File> {
        with_direct_io(File::options().write(true)).open(path).ok()
    }

    #[test]
    fn direct_and_buffered_writes_leave_the_same_records() {
        let dir = tempfile::tempdir().unwrap();
        // Pieces inside one page, across pages, of exactly a page, and one
        // larger than a staging area's first allocation.
        let pieces = pieces(&[10, 100, 4000, 4096, 1, 9000, 300_000, 5]);
        let want = pieces.concat();
        // (name, direct staging, direct file): where the file system refuses
        // direct I/O, the staging's arithmetic is still checked.
        let cases = [
            ("buffered", false, false),
            ("direct staging, buffered file", true, false),
            ("direct", true, true),
        ];
        for (name, direct_staging, direct_file) in cases {
            let path = dir.path().join(name);
            File::create(&path).unwrap();
            let file = if direct_file {
                let Some(file) = open_direct(&path) else {
                    continue;
                };
                file
            } else {
                File::options().write(true).open(&path).unwrap()
            };
            let mut staging = if direct_staging {
                Staging::direct(&[])
            } else {
                Staging::buffered()
            };
            stage_and_write(&mut staging, &file, 0, &pieces);
            let bytes = std::fs::read(&path).unwrap();
            assert_eq!(&bytes[..want.len()], &want[..], "{name}");
            // Direct writes end with the rest of the last page, zeros.
            let end = if staging.is_direct() {
                want.len().next_multiple_of(DIRECT_ALIGN)
            } else {
                want.len()
            };
            assert_eq!(bytes.len(), end, "{name}");
            assert!(bytes[want.len()..].iter().all(|&b| b == 0), "{name}");
        }
    }

    #[test]
    fn a_direct_staging_goes_on_from_a_partial_page() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        // A segment whose data ends 100 bytes into its second page.
        let before = pieces(&[DIRECT_ALIGN + 100]).concat();
        std::fs::write(&path, &before).unwrap();
        let file =
            open_direct(&path).unwrap_or_else(|| File::options().write(true).open(&path).unwrap());
        let added = pieces(&[50, 5000]);
        let mut staging = Staging::direct(&before[DIRECT_ALIGN..]);
        stage_and_write(&mut staging, &file, before.len() as u64, &added);
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..before.len()], &before[..]);
        let added = added.concat();
        assert_eq!(&bytes[before.len()..before.len() + added.len()], &added[..]);
        assert_eq!(
            bytes.len(),
            (before.len() + added.len()).next_multiple_of(DIRECT_ALIGN)
        );
    }
}
