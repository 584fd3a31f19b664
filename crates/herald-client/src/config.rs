//! How a [`Client`](crate::Client) connects: credentials, reconnect backoff,
//! timeouts and buffer sizes.

use futures_util::future::BoxFuture;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Settings of a [`Client`](crate::Client). Every field has a default.
///
/// ```
/// use herald_client::{ClientConfig, TokenSource};
/// use std::time::Duration;
///
/// let config = ClientConfig {
///     token: Some(TokenSource::fixed("secret")),
///     request_timeout: Duration::from_secs(5),
///     ..ClientConfig::default()
/// };
/// # let _ = config;
/// ```
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Where the bearer token comes from. It is asked for on every connection
    /// attempt, so a hook can refresh an expired token before a reconnect.
    /// Sent as `Authorization: Bearer <token>`. Default: no token.
    pub token: Option<TokenSource>,
    /// Delays between reconnection attempts.
    pub backoff: Backoff,
    /// How long one connection attempt (TCP, WebSocket handshake and the
    /// server's `welcome`) may take. Default: 10 s.
    pub connect_timeout: Duration,
    /// How long `publish`, `ping`, `list_subscriptions`, `unsubscribe` and
    /// `subscribe` wait for their answer. For `subscribe` the clock restarts
    /// with every snapshot chunk or history event, so a long replay does not
    /// time out while it makes progress. Default: 10 s.
    pub request_timeout: Duration,
    /// How many items a subscription buffers for the application once it is
    /// live. When the application falls this far behind, the subscription
    /// ends with [`ClientError::Overflow`](crate::ClientError::Overflow)
    /// instead of growing without bound. Default: 65 536.
    pub subscription_buffer: usize,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            token: None,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(10),
            subscription_buffer: 65_536,
        }
    }
}

/// A hook that yields the bearer token for a connection attempt, or `None`
/// to connect without one.
///
/// ```
/// use herald_client::TokenSource;
///
/// let source = TokenSource::new(|| Box::pin(async { Some("fresh-token".to_owned()) }));
/// # let _ = source;
/// ```
#[derive(Clone)]
pub struct TokenSource(Arc<dyn Fn() -> BoxFuture<'static, Option<String>> + Send + Sync>);

impl TokenSource {
    /// A hook called before every connection attempt.
    pub fn new<F>(hook: F) -> TokenSource
    where
        F: Fn() -> BoxFuture<'static, Option<String>> + Send + Sync + 'static,
    {
        TokenSource(Arc::new(hook))
    }

    /// The same token every time.
    pub fn fixed(token: impl Into<String>) -> TokenSource {
        let token: String = token.into();
        TokenSource::new(move || {
            let token = token.clone();
            Box::pin(async move { Some(token) })
        })
    }

    pub(crate) async fn token(&self) -> Option<String> {
        (self.0)().await
    }
}

impl fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenSource(..)")
    }
}

/// Exponential backoff with full jitter between reconnection attempts.
///
/// Attempt `n` (from 0) waits a uniformly random time between zero and
/// `min(max, initial * factor^n)`. The attempt count starts again at zero
/// once a connection is established.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    /// The ceiling of the first delay. Default: 100 ms.
    pub initial: Duration,
    /// The largest ceiling. Default: 10 s.
    pub max: Duration,
    /// How much the ceiling grows per failed attempt. Default: 2.
    pub factor: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(10),
            factor: 2.0,
        }
    }
}

impl Backoff {
    /// The longest delay before attempt `attempt` (counted from 0).
    #[must_use]
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exponent = i32::try_from(attempt).unwrap_or(i32::MAX);
        let grown = self.initial.as_secs_f64() * self.factor.max(1.0).powi(exponent);
        if grown.is_finite() && grown < self.max.as_secs_f64() {
            Duration::from_secs_f64(grown)
        } else {
            self.max
        }
    }

    /// A random delay before attempt `attempt`: full jitter under [`Backoff::ceiling`].
    #[must_use]
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self.ceiling(attempt);
        ceiling.mul_f64(rand::random::<f64>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_grows_by_factor_up_to_max() {
        let b = Backoff::default();
        assert_eq!(b.ceiling(0), Duration::from_millis(100));
        assert_eq!(b.ceiling(1), Duration::from_millis(200));
        assert_eq!(b.ceiling(3), Duration::from_millis(800));
        assert_eq!(b.ceiling(7), Duration::from_secs(10));
        assert_eq!(b.ceiling(u32::MAX), Duration::from_secs(10));
    }

    #[test]
    fn delay_stays_under_ceiling() {
        let b = Backoff::default();
        for attempt in 0..20 {
            assert!(b.delay(attempt) <= b.ceiling(attempt));
        }
    }
}
