//! [`Sessions`]: how many WebSocket and SSE sessions are open, the limit on
//! them, and the shutdown signal they watch.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Notify, watch};

/// Open real-time sessions and the signal that ends them. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Sessions {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    open: AtomicUsize,
    /// Sessions admitted since start.
    opened: AtomicU64,
    limit: usize,
    closing: watch::Sender<bool>,
    all_closed: Notify,
}

/// One open session; dropping it frees its place.
#[derive(Debug)]
pub(crate) struct Permit {
    inner: Arc<Inner>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        if self.inner.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.inner.all_closed.notify_waiters();
        }
    }
}

impl Sessions {
    pub(crate) fn new(limit: usize) -> Sessions {
        Sessions {
            inner: Arc::new(Inner {
                open: AtomicUsize::new(0),
                opened: AtomicU64::new(0),
                limit,
                closing: watch::Sender::new(false),
                all_closed: Notify::new(),
            }),
        }
    }

    /// A place for a new session, unless the limit is reached or the server
    /// is shutting down.
    pub(crate) fn admit(&self) -> Option<Permit> {
        if *self.inner.closing.borrow() {
            return None;
        }
        let admitted = self
            .inner
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.inner.limit).then_some(n + 1)
            })
            .is_ok();
        if admitted {
            self.inner.opened.fetch_add(1, Ordering::Relaxed);
        }
        admitted.then(|| Permit {
            inner: self.inner.clone(),
        })
    }

    /// Sessions open now.
    #[must_use]
    pub fn open(&self) -> usize {
        self.inner.open.load(Ordering::Acquire)
    }

    /// Sessions admitted since the server started.
    #[must_use]
    pub fn opened(&self) -> u64 {
        self.inner.opened.load(Ordering::Relaxed)
    }

    /// Whether shutdown has begun.
    #[must_use]
    pub fn is_closing(&self) -> bool {
        *self.inner.closing.borrow()
    }

    /// Resolves once shutdown has begun.
    pub(crate) fn closing(&self) -> watch::Receiver<bool> {
        self.inner.closing.subscribe()
    }

    /// Tells every session to end (WebSockets close with 1001).
    pub fn shut_down(&self) {
        self.inner.closing.send_replace(true);
    }

    /// Waits until every session has ended, at most `limit`.
    pub async fn wait_closed(&self, limit: Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                let closed = self.inner.all_closed.notified();
                if self.open() == 0 {
                    return;
                }
                closed.await;
            }
        })
        .await;
    }
}

/// Resolves when `closing` turns true (or its sender is gone).
pub(crate) async fn closed(closing: &mut watch::Receiver<bool>) {
    let _ = closing.wait_for(|&c| c).await;
}
