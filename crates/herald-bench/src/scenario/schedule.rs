//! Open-loop sending: a sender's requests at times fixed in advance, each
//! stamped with its *scheduled* time, so latency counts from when a
//! request was due and a server that stalls the senders cannot hide the
//! stall (no coordinated omission).

use crate::net;
use std::time::{Duration, Instant};

/// Request `k` of one sender is due at `first + k × interval`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Schedule {
    first: Instant,
    interval: Duration,
}

impl Schedule {
    /// Sender `n`'s share of `rate` requests/s spread over `senders`
    /// senders from `started`; their schedules are staggered across one
    /// interval.
    pub(super) fn share(started: Instant, rate: f64, senders: usize, n: usize) -> Schedule {
        let interval = Duration::from_secs_f64(senders as f64 / rate);
        Schedule {
            first: started + interval.mul_f64(n as f64 / senders as f64),
            interval,
        }
    }

    /// Waits until request `k` is due (returns at once when late): its
    /// scheduled time as wall-clock ns since the epoch, or `None` if it
    /// falls at or after `end`.
    pub(super) async fn wait(&self, k: u64, end: Instant) -> Option<u64> {
        let due = self.first + self.interval.mul_f64(k as f64);
        if due >= end {
            return None;
        }
        tokio::time::sleep_until(due.into()).await;
        Some(net::now_ns().saturating_sub(due.elapsed().as_nanos() as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn shares_are_staggered_and_stop_at_the_end() {
        let started = Instant::now();
        // 4 senders at 400/s in all: each every 10 ms, 2.5 ms apart.
        let s = Schedule::share(started, 400.0, 4, 1);
        assert_eq!(s.interval, Duration::from_millis(10));
        assert_eq!(s.first - started, Duration::from_micros(2500));
        let end = started + Duration::from_millis(30);
        let mut times = Vec::new();
        while let Some(t) = s.wait(times.len() as u64, end).await {
            times.push(t);
        }
        // Due at 2.5, 12.5 and 22.5 ms (however late they ran); 32.5 is
        // past the end.
        assert_eq!(times.len(), 3);
        let apart: Vec<u64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(
            apart.iter().all(|ns| ns.abs_diff(10_000_000) < 2_000_000),
            "{apart:?}"
        );
    }
}
