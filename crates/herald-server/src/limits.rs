//! Rate limits (`[limits]`): messages per connection, publishes per caller,
//! new connections per address, open connections per address and per
//! caller.
//!
//! Rates use GCRA (the `governor` crate): one small state per key, no
//! timers. Keyed state is bounded: keys idle long enough to be back at a
//! full burst are dropped every few seconds ([`Limits::prune`]), and the
//! open-connection counts drop a key when it reaches zero.

use crate::auth::{Principal, Who};
use crate::config::RateLimits;
use crate::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use herald_proto::ErrorCode;
use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The server's limits.
#[derive(Debug)]
pub(crate) struct Limits {
    config: RateLimits,
    message: Option<Quota>,
    publishes: Option<DefaultKeyedRateLimiter<String>>,
    connects: Option<DefaultKeyedRateLimiter<IpAddr>>,
    /// Open connections per address and per caller. A std mutex: held for
    /// a map update, never across `.await`.
    open: Arc<Mutex<OpenCounts>>,
}

#[derive(Debug, Default)]
struct OpenCounts {
    by_ip: HashMap<IpAddr, u32>,
    by_caller: HashMap<String, u32>,
}

fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl Limits {
    pub(crate) fn new(config: &RateLimits) -> Limits {
        Limits {
            message: quota(config.messages_per_second, config.message_burst),
            publishes: quota(config.publishes_per_second, config.publish_burst)
                .map(DefaultKeyedRateLimiter::keyed),
            connects: quota(config.connects_per_second, config.connect_burst)
                .map(DefaultKeyedRateLimiter::keyed),
            open: Arc::default(),
            config: config.clone(),
        }
    }

    /// No limits at all (embedded use and tests).
    pub(crate) fn none() -> Limits {
        Limits::new(&RateLimits {
            messages_per_second: 0,
            publishes_per_second: 0,
            connects_per_second: 0,
            connections_per_ip: 0,
            connections_per_user: 0,
            ..RateLimits::default()
        })
    }

    /// A connection's message limiter, for `who` (`None`: not yet
    /// authenticated). Administrators are not limited.
    pub(crate) fn messages(&self, who: Option<&Principal>) -> MessageLimiter {
        let exempt = who.is_some_and(|w| w.permissions.is_admin());
        MessageLimiter {
            limiter: self
                .message
                .filter(|_| !exempt)
                .map(|quota| Box::new(DefaultDirectRateLimiter::direct(quota))),
            strikes: 0,
            max_strikes: self.config.abuse_strikes.max(1),
        }
    }

    /// One publish by `who`. Administrators are not limited.
    pub(crate) fn publish(&self, who: &Principal) -> Result<(), ApiError> {
        let limiter = self.publishes.as_ref();
        let Some(limiter) = limiter.filter(|_| !who.permissions.is_admin()) else {
            return Ok(());
        };
        limiter.check_key(&who.subject()).map_err(|not_until| {
            ApiError::rate_limited(
                "too many publishes",
                not_until.wait_time_from(DefaultClock::default().now()),
            )
        })
    }

    /// Admits a new connection from `ip` by `who` (`None`: not yet
    /// authenticated, see [`OpenSlot::identify`]): the connect rate, then
    /// the open-connection caps. The slot is held until the returned guard
    /// drops.
    pub(crate) fn connect(
        &self,
        ip: IpAddr,
        who: Option<&Principal>,
    ) -> Result<OpenSlot, ApiError> {
        let per_address = !(self.config.exempt_loopback && ip.is_loopback());
        if per_address
            && let Some(limiter) = &self.connects
            && let Err(not_until) = limiter.check_key(&ip)
        {
            return Err(ApiError::rate_limited(
                "too many new connections from your address",
                not_until.wait_time_from(DefaultClock::default().now()),
            ));
        }
        let per_ip = if per_address {
            self.config.connections_per_ip
        } else {
            0
        };
        {
            let mut open = self.open.lock().expect("open counts lock");
            if per_ip > 0 && open.by_ip.get(&ip).copied().unwrap_or(0) >= per_ip {
                return Err(ApiError::new(
                    ErrorCode::TooManyConnections,
                    format!("your address holds the most connections allowed ({per_ip})"),
                ));
            }
            *open.by_ip.entry(ip).or_default() += 1;
        }
        let mut slot = OpenSlot {
            open: self.open.clone(),
            per_caller: self.config.connections_per_user,
            ip,
            caller: None,
        };
        if let Some(who) = who {
            slot.identify(who)?;
        }
        Ok(slot)
    }

    /// Forgets keys whose limits are back at a full burst, so the state
    /// holds only recently active callers and addresses.
    pub(crate) fn prune(&self) {
        if let Some(limiter) = &self.publishes {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.connects {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// Keys held: (publish callers, connecting addresses, open by address,
    /// open by caller).
    #[cfg(test)]
    pub(crate) fn sizes(&self) -> (usize, usize, usize, usize) {
        let open = self.open.lock().expect("open counts lock");
        (
            self.publishes
                .as_ref()
                .map_or(0, DefaultKeyedRateLimiter::len),
            self.connects
                .as_ref()
                .map_or(0, DefaultKeyedRateLimiter::len),
            open.by_ip.len(),
            open.by_caller.len(),
        )
    }
}

/// A connection's place in the open-connection counts.
#[derive(Debug)]
pub(crate) struct OpenSlot {
    open: Arc<Mutex<OpenCounts>>,
    per_caller: u32,
    ip: IpAddr,
    caller: Option<String>,
}

impl OpenSlot {
    /// Counts the connection against `who`'s cap, once it is known (again
    /// after a token refresh: same caller, nothing changes). Anonymous
    /// clients share no identity: only per-address limits apply to them.
    pub(crate) fn identify(&mut self, who: &Principal) -> Result<(), ApiError> {
        if who.who == Who::Anonymous {
            return Ok(());
        }
        let caller = who.subject();
        let caller = caller.as_str();
        if self.caller.as_deref() == Some(caller) {
            return Ok(());
        }
        let mut open = self.open.lock().expect("open counts lock");
        let per_caller = self.per_caller;
        if per_caller > 0 && open.by_caller.get(caller).copied().unwrap_or(0) >= per_caller {
            return Err(ApiError::new(
                ErrorCode::TooManyConnections,
                format!("you hold the most connections allowed ({per_caller})"),
            ));
        }
        *open.by_caller.entry(caller.to_owned()).or_default() += 1;
        if let Some(previous) = self.caller.replace(caller.to_owned()) {
            release(&mut open.by_caller, &previous);
        }
        Ok(())
    }
}

fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, u32>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n -= 1;
        if *n == 0 {
            counts.remove(key);
        }
    }
}

impl Drop for OpenSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock().expect("open counts lock");
        release(&mut open.by_ip, &self.ip);
        if let Some(caller) = &self.caller {
            release(&mut open.by_caller, caller);
        }
    }
}

/// One connection's message rate, and its strikes: messages refused in a
/// row. Owned by the connection's task.
#[derive(Debug)]
pub(crate) struct MessageLimiter {
    /// Boxed: it lives in every connection's task, mostly idle.
    limiter: Option<Box<DefaultDirectRateLimiter>>,
    strikes: u32,
    max_strikes: u32,
}

/// What to do with a message.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Handle it.
    Allow,
    /// Refuse it with `rate_limited`; retry after this long.
    Refuse(Duration),
    /// The client keeps going over: close the connection.
    Abuse,
}

impl MessageLimiter {
    /// Counts one message.
    pub(crate) fn check(&mut self) -> Verdict {
        let Some(limiter) = &self.limiter else {
            return Verdict::Allow;
        };
        match limiter.check() {
            Ok(()) => {
                self.strikes = 0;
                Verdict::Allow
            }
            Err(not_until) => {
                self.strikes += 1;
                if self.strikes >= self.max_strikes {
                    Verdict::Abuse
                } else {
                    Verdict::Refuse(not_until.wait_time_from(DefaultClock::default().now()))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(sub: &str) -> Principal {
        Principal {
            who: Who::User(sub.into()),
            permissions: herald_auth::Permissions::none(),
            claims: serde_json::Map::new(),
            expires_at: None,
        }
    }

    fn limits(f: impl FnOnce(&mut RateLimits)) -> Limits {
        let mut config = RateLimits::default();
        f(&mut config);
        Limits::new(&config)
    }

    #[test]
    fn messages_are_refused_past_the_burst_and_abuse_closes() {
        let limits = limits(|c| {
            (c.messages_per_second, c.message_burst, c.abuse_strikes) = (1, 3, 4);
        });
        let mut messages = limits.messages(Some(&user("u")));
        for _ in 0..3 {
            assert_eq!(messages.check(), Verdict::Allow);
        }
        for _ in 0..3 {
            assert!(matches!(messages.check(), Verdict::Refuse(wait) if wait > Duration::ZERO));
        }
        assert_eq!(messages.check(), Verdict::Abuse);
    }

    #[test]
    fn open_connection_caps_hold_and_release() {
        let limits = limits(|c| {
            (c.connections_per_ip, c.connections_per_user) = (2, 3);
        });
        // Loopback is exempt from per-address limits (by default).
        let local: Vec<_> = (0..5)
            .map(|_| limits.connect([127, 0, 0, 1].into(), None).unwrap())
            .collect();
        drop(local);
        let ip: IpAddr = [10, 0, 0, 1].into();
        let a = limits.connect(ip, Some(&user("a"))).unwrap();
        let _b = limits.connect(ip, Some(&user("a"))).unwrap();
        let e = limits.connect(ip, Some(&user("a"))).unwrap_err();
        assert_eq!(e.code, ErrorCode::TooManyConnections);
        let _c = limits
            .connect([10, 0, 0, 2].into(), Some(&user("a")))
            .unwrap();
        let e = limits
            .connect([10, 0, 0, 3].into(), Some(&user("a")))
            .unwrap_err();
        assert!(e.message.contains("you hold"), "{}", e.message);
        drop(a);
        let _d = limits.connect(ip, Some(&user("b"))).unwrap();
        drop((_b, _c, _d));
        assert_eq!(limits.sizes().2, 0, "counts drop their keys at zero");
        assert_eq!(limits.sizes().3, 0);
    }

    #[test]
    fn publish_rate_is_per_caller_and_state_is_pruned() {
        let limits = limits(|c| {
            (c.publishes_per_second, c.publish_burst) = (1000, 1000);
        });
        for i in 0..5_000 {
            limits.publish(&user(&i.to_string())).unwrap();
        }
        assert_eq!(limits.sizes().0, 5_000);
        // Back at a full burst after 1 s at 1000/s.
        std::thread::sleep(Duration::from_millis(1100));
        limits.prune();
        assert_eq!(limits.sizes().0, 0, "idle callers are forgotten");
        let tight = super::tests::limits(|c| {
            (c.publishes_per_second, c.publish_burst) = (1, 1);
        });
        tight.publish(&user("x")).unwrap();
        let e = tight.publish(&user("x")).unwrap_err();
        assert_eq!(e.code, ErrorCode::RateLimited);
        assert!(e.retry_after.is_some());
        tight.publish(&user("y")).unwrap();
        let admin = Principal {
            permissions: herald_auth::Permissions::all(),
            ..user("root")
        };
        for _ in 0..10 {
            tight.publish(&admin).unwrap();
        }
        let mut unlimited = tight.messages(Some(&admin));
        assert!((0..1000).all(|_| unlimited.check() == Verdict::Allow));
    }
}
