//! Store configuration: one serde tree with documented defaults.

use serde::Deserialize;
use std::time::Duration;

/// When a write is acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// After its group's log records are fsynced: it survives power loss.
    #[default]
    Fsync,
    /// After the log write reaches the OS: it survives a process crash
    /// but not a power loss. Offsets are still never reused.
    Os,
}

/// `[store]` in `herald.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `"fsync"` (default) or `"os"`.
    pub durability: Durability,
    /// Largest serialized document or message payload, in bytes. Default 1 MiB.
    pub max_doc_bytes: usize,
    /// Most operations in one atomic batch. Default 1000.
    pub max_batch_ops: usize,
    /// Block cache of the documents' tables, in bytes. Default 64 MiB.
    pub cache_bytes: u64,
    /// Size at which the log starts a new segment file, in bytes. Retention
    /// frees disk space a whole segment at a time. Default 64 MiB.
    pub segment_bytes: u64,
    /// How long the log keeps events.
    pub retention: RetentionConfig,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            durability: Durability::Fsync,
            max_doc_bytes: 1 << 20,
            max_batch_ops: 1000,
            cache_bytes: 64 << 20,
            segment_bytes: 64 << 20,
            retention: RetentionConfig::default(),
        }
    }
}

/// `[store.retention]`: limits on the change log (documents never expire).
/// With neither limit set, the log is kept forever.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Remove events older than this, e.g. `"7d"`. Default: keep.
    #[serde(with = "humantime_serde")]
    pub max_age: Option<Duration>,
    /// Remove the oldest events while the log is larger than this many bytes.
    /// Default: no limit.
    pub max_bytes: Option<u64>,
    /// How often the limits are enforced. Default `"10s"`.
    #[serde(with = "humantime_serde")]
    pub check_interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        RetentionConfig {
            max_age: None,
            max_bytes: None,
            check_interval: Duration::from_secs(10),
        }
    }
}

impl RetentionConfig {
    /// Whether any limit is set.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        self.max_age.is_some() || self.max_bytes.is_some()
    }
}
