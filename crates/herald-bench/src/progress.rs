//! A progress line on standard error every second while a scenario runs.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Counters a scenario bumps and the progress line shows.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) sent: AtomicU64,
    pub(crate) received: AtomicU64,
}

impl Counters {
    pub(crate) fn sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn received(&self, n: u64) {
        self.received.fetch_add(n, Ordering::Relaxed);
    }
}

/// Prints progress until dropped.
#[derive(Debug)]
pub(crate) struct Progress(tokio::task::JoinHandle<()>);

impl Progress {
    pub(crate) fn start(what: &'static str, counters: Arc<Counters>) -> Progress {
        Progress(tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let (mut last_sent, mut last_received) = (0, 0);
            loop {
                tick.tick().await;
                let sent = counters.sent.load(Ordering::Relaxed);
                let received = counters.received.load(Ordering::Relaxed);
                eprintln!(
                    "[{:>4.0}s] {what}: sent {sent} ({}/s)  received {received} ({}/s)",
                    started.elapsed().as_secs_f64(),
                    sent - last_sent,
                    received - last_received,
                );
                (last_sent, last_received) = (sent, received);
            }
        }))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.0.abort();
    }
}
