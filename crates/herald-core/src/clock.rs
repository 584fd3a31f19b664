//! Time for presence: when members joined, changed, were last heard from.
//!
//! Presence expiry depends on time, so it reads it through [`Clock`]: the
//! system clock in a server, a [`ManualClock`] in tests that step time
//! forward instead of sleeping through a TTL.

use herald_proto::Timestamp;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A source of the current time (Unix milliseconds).
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> Timestamp;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// A clock that moves only when told to.
///
/// ```
/// use herald_core::clock::{Clock, ManualClock};
/// let clock = ManualClock::starting_at(1_000);
/// clock.advance(std::time::Duration::from_secs(2));
/// assert_eq!(clock.now().0, 3_000);
/// ```
#[derive(Debug, Default)]
pub struct ManualClock {
    now: AtomicU64,
}

impl ManualClock {
    /// A clock showing `ms` (Unix milliseconds).
    #[must_use]
    pub fn starting_at(ms: u64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now: AtomicU64::new(ms),
        })
    }

    /// Moves it forward.
    pub fn advance(&self, by: Duration) {
        self.now.fetch_add(by.as_millis() as u64, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        Timestamp(self.now.load(Ordering::SeqCst))
    }
}
