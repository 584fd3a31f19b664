//! Keys from an identity provider's JWKS document (`auth.jwt.jwks_url`):
//! fetched at start, every `jwks_refresh`, and when a token names a `kid`
//! we do not know — at most once per `jwks_min_interval`, however many
//! tokens ask, so forged `kid`s cannot turn the server against the
//! provider. A failed fetch keeps the keys we had.

use herald_auth::{JwtConfig, JwtVerifier};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Largest JWKS document accepted.
const MAX_BYTES: usize = 1 << 20;
/// Time allowed for one fetch.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the keys come from, and when they were last fetched.
#[derive(Debug)]
pub(crate) struct Jwks {
    url: String,
    client: reqwest::Client,
    pub(crate) refresh: Duration,
    min_interval: Duration,
    /// When the last fetch began. A tokio mutex: held across the fetch, so
    /// concurrent unknown `kid`s wait for one fetch instead of each making
    /// their own.
    last: Mutex<Option<Instant>>,
}

impl Jwks {
    /// From `[auth.jwt]`, if it names a JWKS URL.
    pub(crate) fn new(config: &JwtConfig) -> Result<Option<Jwks>, String> {
        let Some(url) = &config.jwks_url else {
            return Ok(None);
        };
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("auth.jwt.jwks_url: {e}"))?;
        if !matches!(parsed.scheme(), "https" | "http") {
            return Err("auth.jwt.jwks_url must be an https:// (or http://) URL".to_owned());
        }
        let client = reqwest::Client::builder()
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| format!("JWKS client: {e}"))?;
        Ok(Some(Jwks {
            url: url.clone(),
            client,
            refresh: config.jwks_refresh.max(Duration::from_secs(1)),
            min_interval: config.jwks_min_interval,
            last: Mutex::new(None),
        }))
    }

    /// Fetches the document now and loads its keys; the number loaded.
    pub(crate) async fn fetch(&self, verifier: &JwtVerifier) -> Result<usize, String> {
        let mut last = self.last.lock().await;
        self.fetch_locked(verifier, &mut last).await
    }

    /// Fetches again because a token named an unknown `kid`, unless a
    /// fetch began less than `jwks_min_interval` ago. Whether it fetched.
    pub(crate) async fn refetch(&self, verifier: &JwtVerifier, kid: &str) -> bool {
        let mut last = self.last.lock().await;
        // Another request may have fetched while this one waited.
        if verifier.has_kid(kid) {
            return true;
        }
        if last.is_some_and(|at| at.elapsed() < self.min_interval) {
            return false;
        }
        match self.fetch_locked(verifier, &mut last).await {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "fetching the JWKS document failed; keeping the keys we had");
                false
            }
        }
    }

    async fn fetch_locked(
        &self,
        verifier: &JwtVerifier,
        last: &mut Option<Instant>,
    ) -> Result<usize, String> {
        *last = Some(Instant::now());
        let mut response = self
            .client
            .get(&self.url)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("GET {}: {e}", self.url))?;
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("reading {}: {e}", self.url))?
        {
            if body.len() + chunk.len() > MAX_BYTES {
                return Err(format!("{} is larger than {MAX_BYTES} bytes", self.url));
            }
            body.extend_from_slice(&chunk);
        }
        verifier
            .set_jwks(&body)
            .map_err(|e| format!("{}: {e}", self.url))
    }
}
