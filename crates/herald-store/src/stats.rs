//! [`StoreStats`]: what the store has appended since it opened, and the
//! metrics the committer records.
//!
//! The committer adds each group's counts to [`Counters`] once the group is
//! durable, with relaxed atomic adds: no lock on the write path, and readers
//! ([`Store::stats`](crate::Store::stats)) never wait for it. A write's
//! counts are visible before its acknowledgement is sent.
//!
//! Distributions go through the [`metrics`] facade (a no-op until a
//! recorder is installed, as `herald-server` does): [`FSYNC_SECONDS`] and
//! [`COMMIT_GROUP_EVENTS`], recorded once per group commit.

use herald_proto::{Epoch, EventBody, Offset};
use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};

/// Histogram: seconds one group's `fdatasync` of the log took.
pub const FSYNC_SECONDS: &str = "herald_fsync_seconds";
/// Histogram: events in one committed group.
pub const COMMIT_GROUP_EVENTS: &str = "herald_commit_group_events";

/// Events appended to the log, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Appended {
    /// Documents created (`insert`, or `put` of a new id).
    pub insert: u64,
    /// Documents replaced or patched.
    pub update: u64,
    /// Documents deleted.
    pub delete: u64,
    /// Channel messages published.
    pub publish: u64,
}

impl Appended {
    /// Every kind together.
    #[must_use]
    pub fn total(&self) -> u64 {
        self.insert + self.update + self.delete + self.publish
    }

    /// Counts one event.
    pub(crate) fn count(&mut self, body: &EventBody) {
        match body {
            EventBody::Insert { .. } => self.insert += 1,
            EventBody::Update { .. } => self.update += 1,
            EventBody::Delete { .. } => self.delete += 1,
            EventBody::Publish { .. } => self.publish += 1,
        }
    }
}

/// What the store holds and has done since it was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreStats {
    /// Events appended since this process opened the store (not persisted:
    /// a restart counts from zero).
    pub appended: Appended,
    /// Bytes of log records retained (keys and values as written, before
    /// the engine's compression).
    pub log_bytes: u64,
    /// The last durable offset (0 when nothing was ever written).
    pub head: Offset,
    /// The first offset still in the log.
    pub earliest: Offset,
    /// The store's epoch.
    pub epoch: Epoch,
}

/// Counters the committer publishes; readers load them without locking.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    insert: AtomicU64,
    update: AtomicU64,
    delete: AtomicU64,
    publish: AtomicU64,
    log_bytes: AtomicU64,
}

impl Counters {
    pub(crate) fn new(log_bytes: u64) -> Counters {
        Counters {
            log_bytes: AtomicU64::new(log_bytes),
            ..Counters::default()
        }
    }

    /// Adds one committed group's events.
    pub(crate) fn add(&self, group: &Appended) {
        for (counter, n) in [
            (&self.insert, group.insert),
            (&self.update, group.update),
            (&self.delete, group.delete),
            (&self.publish, group.publish),
        ] {
            if n > 0 {
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    pub(crate) fn set_log_bytes(&self, bytes: u64) {
        self.log_bytes.store(bytes, Ordering::Relaxed);
    }

    pub(crate) fn appended(&self) -> Appended {
        Appended {
            insert: self.insert.load(Ordering::Relaxed),
            update: self.update.load(Ordering::Relaxed),
            delete: self.delete.load(Ordering::Relaxed),
            publish: self.publish.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn log_bytes(&self) -> u64 {
        self.log_bytes.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_add_groups_by_kind() {
        let counters = Counters::new(7);
        counters.add(&Appended {
            insert: 2,
            update: 1,
            delete: 0,
            publish: 3,
        });
        counters.add(&Appended {
            insert: 1,
            ..Appended::default()
        });
        let appended = counters.appended();
        assert_eq!(
            appended,
            Appended {
                insert: 3,
                update: 1,
                delete: 0,
                publish: 3
            }
        );
        assert_eq!(appended.total(), 7);
        assert_eq!(counters.log_bytes(), 7);
    }
}
