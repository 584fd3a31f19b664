//! [`LogLimit`]: a cap on how often one kind of operator log line is
//! written, so a storm (thousands of slow consumers, a flapping client
//! fleet) cannot flood the log. Lines over the cap are counted, and the
//! next line written says how many were suppressed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// At most `per_second` lines of one kind per second.
///
/// ```
/// use herald_core::LogLimit;
/// static SLOW: LogLimit = LogLimit::new(2);
/// if let Some(suppressed) = SLOW.allow() {
///     // tracing::info!(suppressed, "slow consumer: closing the connection");
///     assert_eq!(suppressed, 0);
/// }
/// ```
#[derive(Debug)]
pub struct LogLimit {
    per_second: u64,
    /// The current second (since the Unix epoch) and the lines written in it,
    /// packed: second << 20 | count.
    window: AtomicU64,
    suppressed: AtomicU64,
}

const COUNT_BITS: u32 = 20;
const COUNT_MASK: u64 = (1 << COUNT_BITS) - 1;

impl LogLimit {
    /// A limit of `per_second` lines per second (at most about a million).
    #[must_use]
    pub const fn new(per_second: u32) -> LogLimit {
        LogLimit {
            per_second: per_second as u64,
            window: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
        }
    }

    /// `Some(n)` if a line may be written now, `n` being how many were
    /// suppressed since the last one written; `None` (and counted) if not.
    pub fn allow(&self) -> Option<u64> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut current = self.window.load(Ordering::Relaxed);
        loop {
            let (second, count) = (current >> COUNT_BITS, current & COUNT_MASK);
            let next = if second == now {
                if count >= self.per_second {
                    self.suppressed.fetch_add(1, Ordering::Relaxed);
                    return None;
                }
                current + 1
            } else {
                (now << COUNT_BITS) | 1
            };
            match self.window.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return Some(self.suppressed.swap(0, Ordering::Relaxed)),
                Err(actual) => current = actual,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_what_it_suppresses_and_reports_it_next_time() {
        let limit = LogLimit::new(3);
        let allowed: Vec<Option<u64>> = (0..10).map(|_| limit.allow()).collect();
        // Within one second: three lines. (If the second turned meanwhile, a
        // fourth line is allowed and reports what was suppressed.)
        let written = allowed.iter().flatten().count();
        assert!((3..=4).contains(&written), "{allowed:?}");
        assert_eq!(allowed[..3], [Some(0), Some(0), Some(0)]);
        // A new window: the next line reports the suppressed count.
        limit.window.store(0, Ordering::Relaxed);
        let reported = limit.allow().unwrap();
        assert_eq!(reported as usize + written, 10);
    }
}
