//! The browser origin check for WebSocket upgrades and SSE streams, against
//! cross-site WebSocket hijacking: a page on another site can open a
//! WebSocket to us, and the browser attaches our cookies to it.
//!
//! A request with an `Origin` header passes if the origin is in
//! `[auth] allowed_origins`; with that list empty, it passes unless it rests
//! on ambient authority — a cookie, or anonymous access, which any page the
//! user visits would get too (a default server on loopback makes anonymous
//! callers administrators) — and comes from another origin than the `Host`
//! it was sent to. Requests without `Origin` are not from a browser page
//! and pass.

use crate::auth::Credential;
use crate::error::ApiError;
use axum::http::HeaderMap;
use axum::http::header::{HOST, ORIGIN};
use herald_proto::ErrorCode;

/// Checks the request's origin.
pub(crate) fn check(
    headers: &HeaderMap,
    allowed: &[String],
    credential: Credential,
) -> Result<(), ApiError> {
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().unwrap_or("");
    let refused = || {
        let shown: String = origin.chars().take(100).collect();
        ApiError::new(
            ErrorCode::OriginNotAllowed,
            format!("origin {shown:?} is not allowed (auth.allowed_origins)"),
        )
    };
    if !allowed.is_empty() {
        return match allowed.iter().any(|a| a.eq_ignore_ascii_case(origin)) {
            true => Ok(()),
            false => Err(refused()),
        };
    }
    if !matches!(credential, Credential::Cookie | Credential::Anonymous) {
        return Ok(());
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("");
    let authority = origin.split_once("://").map_or("", |(_, rest)| rest);
    if !host.is_empty() && authority.eq_ignore_ascii_case(host) {
        Ok(())
    } else {
        Err(refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(ORIGIN, o.parse().unwrap());
        }
        h
    }

    #[test]
    fn allowlist_and_same_origin_rules() {
        let list = vec!["https://app.example.com".to_owned()];
        let ok = |o, c| check(&headers(o, "herald:7070"), &list, c).is_ok();
        assert!(ok(Some("https://app.example.com"), Credential::Header));
        assert!(!ok(Some("https://evil.example"), Credential::Header));
        assert!(ok(None, Credential::Cookie), "not a browser page");
        let open = |o, c| check(&headers(o, "herald:7070"), &[], c).is_ok();
        assert!(open(Some("https://evil.example"), Credential::Header));
        assert!(open(Some("https://evil.example"), Credential::Pending));
        assert!(!open(Some("https://evil.example"), Credential::Cookie));
        assert!(!open(Some("https://evil.example"), Credential::Anonymous));
        assert!(open(Some("http://herald:7070"), Credential::Cookie));
        assert!(open(Some("http://herald:7070"), Credential::Anonymous));
        assert!(open(None, Credential::Anonymous), "not a browser page");
    }
}
