//! How far the documents reflect the log, for readers that must see every
//! acknowledged write.
//!
//! The committer acknowledges a group as soon as its events are durable in
//! the log and writes the group's documents right after, so the writers
//! prepare their next request meanwhile. A reader that starts after an
//! acknowledgement must still see that write: document reads first wait
//! until the documents have caught up with the head they saw (at most one
//! group's document write, and only while one is in flight).

use herald_proto::Offset;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};

/// The last offset whose effect on documents is readable.
#[derive(Debug, Default)]
pub(crate) struct Applied {
    offset: AtomicU64,
    /// The committer stopped applying (a failed write, or it ended): nobody
    /// waits.
    stopped: AtomicBool,
    lock: Mutex<()>,
    raised: Condvar,
}

impl Applied {
    pub(crate) fn new(offset: Offset) -> Applied {
        Applied {
            offset: AtomicU64::new(offset.0),
            ..Applied::default()
        }
    }

    /// Documents now reflect every event up to `offset`.
    pub(crate) fn raise(&self, offset: Offset) {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.offset.fetch_max(offset.0, Ordering::SeqCst);
        self.raised.notify_all();
    }

    /// Releases every waiter for good: documents will not catch up (or
    /// already have, for good).
    pub(crate) fn stop(&self) {
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.stopped.store(true, Ordering::SeqCst);
        self.raised.notify_all();
    }

    /// Waits until documents reflect every event up to `offset`.
    pub(crate) fn wait_for(&self, offset: Offset) {
        let reached = || {
            self.offset.load(Ordering::SeqCst) >= offset.0 || self.stopped.load(Ordering::SeqCst)
        };
        if reached() {
            return;
        }
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        while !reached() {
            guard = self
                .raised
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_reader_waits_for_the_documents_to_catch_up() {
        let applied = Arc::new(Applied::new(Offset(3)));
        applied.wait_for(Offset(3));
        let reader = {
            let applied = applied.clone();
            std::thread::spawn(move || applied.wait_for(Offset(5)))
        };
        std::thread::sleep(Duration::from_millis(20));
        assert!(
            !reader.is_finished(),
            "returned before offset 5 was applied"
        );
        applied.raise(Offset(4));
        std::thread::sleep(Duration::from_millis(20));
        assert!(!reader.is_finished(), "returned at offset 4");
        applied.raise(Offset(5));
        reader.join().unwrap();
    }

    #[test]
    fn stopping_releases_waiters() {
        let applied = Arc::new(Applied::new(Offset(0)));
        let reader = {
            let applied = applied.clone();
            std::thread::spawn(move || applied.wait_for(Offset(1)))
        };
        applied.stop();
        reader.join().unwrap();
    }
}
