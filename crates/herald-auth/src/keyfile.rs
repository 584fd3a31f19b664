//! The API key file on disk: its JSON format, and reading and replacing it
//! so that concurrent writers (the CLI and a running server) never lose each
//! other's changes and readers never see a half-written file.
//!
//! ```json
//! {
//!   "version": 1,
//!   "keys": [
//!     {"id": "k3x9…", "name": "billing", "permissions": ["read:*"],
//!      "created_at": 1735689600000, "secret_sha256": "9f86d0…"}
//!   ]
//! }
//! ```
//!
//! A write takes an exclusive lock on the sibling file `<file>.lock`,
//! re-reads the file, changes it, writes `<file>.tmp` (mode 0600), fsyncs it,
//! renames it over the file and fsyncs the directory. Readers take no lock:
//! the rename swaps the whole file at once.

use crate::error::ConfigError;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    version: u32,
    keys: Vec<Record>,
}

/// One stored key, as written in the file.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Record {
    pub(crate) id: String,
    pub(crate) name: String,
    pub(crate) permissions: Vec<String>,
    /// Unix milliseconds.
    pub(crate) created_at: u64,
    /// SHA-256 of the secret part of the key, lowercase hex.
    pub(crate) secret_sha256: String,
}

/// What identifies one version of the file cheaply. Every write renames a
/// new file into place, so on unix the inode alone changes on each write;
/// length and mtime cover other systems and hand edits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp {
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

impl Stamp {
    fn of(metadata: &std::fs::Metadata) -> Self {
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(metadata);
        #[cfg(not(unix))]
        let inode = 0;
        Self {
            len: metadata.len(),
            modified: metadata.modified().ok(),
            inode,
        }
    }
}

pub(crate) fn describe(path: &Path, what: impl std::fmt::Display) -> ConfigError {
    ConfigError::new(format!("API key file {}: {what}", path.display()))
}

/// The file's stamp now; `None` when it does not exist.
pub(crate) fn stamp(path: &Path) -> Result<Option<Stamp>, ConfigError> {
    match std::fs::metadata(path) {
        Ok(metadata) => Ok(Some(Stamp::of(&metadata))),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(describe(path, e)),
    }
}

/// Reads the file: its records and the stamp of the version read (taken
/// from the open file, so the two always agree). A missing file has no keys.
pub(crate) fn read(path: &Path) -> Result<(Vec<Record>, Option<Stamp>), ConfigError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok((Vec::new(), None)),
        Err(e) => return Err(describe(path, e)),
    };
    let stamp = Stamp::of(&file.metadata().map_err(|e| describe(path, e))?);
    let mut text = Vec::new();
    file.read_to_end(&mut text).map_err(|e| describe(path, e))?;
    let parsed: KeyFile = serde_json::from_slice(&text)
        .map_err(|e| describe(path, format_args!("not a valid key file: {e}")))?;
    if parsed.version != VERSION {
        return Err(describe(
            path,
            format_args!(
                "version {} is not supported (expected {VERSION})",
                parsed.version
            ),
        ));
    }
    Ok((parsed.keys, Some(stamp)))
}

/// Holds the exclusive lock on `<file>.lock` until dropped.
#[derive(Debug)]
pub(crate) struct WriteLock {
    _file: File,
}

/// Blocks until this process holds the exclusive lock for `path`.
pub(crate) fn lock(path: &Path) -> Result<WriteLock, ConfigError> {
    let lock_path = sibling(path, "lock");
    let file = private_file()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(|e| {
            describe(
                path,
                format_args!("cannot open {}: {e}", lock_path.display()),
            )
        })?;
    file.lock().map_err(|e| {
        describe(
            path,
            format_args!("cannot lock {}: {e}", lock_path.display()),
        )
    })?;
    Ok(WriteLock { _file: file })
}

/// Replaces the file with `records`, durably. Call with the lock held.
pub(crate) fn write(
    path: &Path,
    records: &[Record],
    _lock: &WriteLock,
) -> Result<Stamp, ConfigError> {
    let tmp = sibling(path, "tmp");
    let mut json = serde_json::to_vec_pretty(&KeyFile {
        version: VERSION,
        keys: records.to_vec(),
    })
    .map_err(|e| describe(path, e))?;
    json.push(b'\n');
    let fail =
        |e: std::io::Error| describe(path, format_args!("cannot write {}: {e}", tmp.display()));
    let mut file = private_file()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(fail)?;
    file.write_all(&json).map_err(fail)?;
    file.sync_all().map_err(fail)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| describe(path, format_args!("cannot replace: {e}")))?;
    sync_dir(path)?;
    stamp(path)?.ok_or_else(|| describe(path, "vanished right after being written"))
}

/// `<file>.<suffix>` beside the file.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(suffix);
    path.with_file_name(name)
}

/// Open options that create files readable by their owner only: the key
/// file holds no secrets, but its hashes and permissions are nobody else's
/// business.
fn private_file() -> OpenOptions {
    let mut options = OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

/// Makes the rename durable: on unix the directory entry is only on disk
/// once the directory itself is synced.
fn sync_dir(path: &Path) -> Result<(), ConfigError> {
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| describe(path, format_args!("cannot sync {}: {e}", dir.display())))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}
