//! Authentication: who a request or connection is ([`Principal`]), from a
//! JWT, an API key, a single-use SSE ticket, or nobody (anonymous).
//!
//! Where credentials come from, in order:
//! 1. `Authorization: Bearer <token>` — a JWT, or an API key (`hrld_...`);
//! 2. for WebSocket upgrades and SSE only, the `[auth] cookie` (what a
//!    browser can send; such requests must also pass the origin check);
//! 3. for SSE only, `?ticket=` from `POST /v1/sse/tickets`;
//! 4. on a WebSocket, a first `auth` message within `auth_timeout`.
//!
//! Tokens never appear in URLs (except single-use tickets, which are worth
//! nothing once used) and never in logs: failures are reported by reason.

use crate::config::{Anonymous, AuthConfig};
use crate::error::ApiError;
use crate::jwks::Jwks;
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, COOKIE};
use herald_auth::{Action, ApiKeys, AuthError, JwtVerifier, Permissions};
use herald_proto::ErrorCode;
use serde_json::{Map, Value};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Who is asking.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Who {
    /// A user, by the `sub` of its token.
    User(String),
    /// A server, by its API key.
    ApiKey {
        /// The key's public id.
        id: String,
        /// The key's name.
        name: String,
    },
    /// No credentials.
    Anonymous,
}

/// An authenticated caller: who it is, what it may do, and its claims for
/// row-level rules.
#[derive(Debug, Clone)]
pub(crate) struct Principal {
    pub(crate) who: Who,
    pub(crate) permissions: Permissions,
    /// The token's claims (`$auth.<claim>` in rules); empty for others.
    pub(crate) claims: Map<String, Value>,
    /// When the token expires (unix seconds).
    pub(crate) expires_at: Option<u64>,
}

impl Principal {
    /// The anonymous caller with these permissions.
    fn anonymous(permissions: Permissions) -> Principal {
        Principal {
            who: Who::Anonymous,
            permissions,
            claims: Map::new(),
            expires_at: None,
        }
    }

    /// A stable name for limits and the audit log: `user:<sub>`,
    /// `key:<id>` or `anonymous`.
    pub(crate) fn subject(&self) -> String {
        match &self.who {
            Who::User(sub) => format!("user:{sub}"),
            Who::ApiKey { id, .. } => format!("key:{id}"),
            Who::Anonymous => "anonymous".to_owned(),
        }
    }

    /// The `from` of its messages: its subject, unless anonymous.
    pub(crate) fn publisher(&self) -> Option<String> {
        (self.who != Who::Anonymous).then(|| self.subject())
    }

    /// The `sub` rules substitute for `$auth.sub`; anonymous callers have
    /// none.
    pub(crate) fn sub(&self) -> Option<&str> {
        match &self.who {
            Who::User(sub) => Some(sub),
            Who::ApiKey { id, .. } => Some(id),
            Who::Anonymous => None,
        }
    }

    /// Whether row-level rules and hidden fields bind it: users and
    /// anonymous clients do; API keys (servers) and admins do not.
    pub(crate) fn bound_by_rules(&self) -> bool {
        !matches!(self.who, Who::ApiKey { .. }) && !self.permissions.is_admin()
    }

    /// Whether it may do `action` on `resource`.
    pub(crate) fn may(&self, action: Action, resource: &str) -> bool {
        self.permissions.allows(action, resource)
    }

    /// `forbidden` unless it may do `action` on `resource`.
    pub(crate) fn require(&self, action: Action, resource: &str) -> Result<(), ApiError> {
        if self.may(action, resource) {
            return Ok(());
        }
        Err(ApiError::forbidden(format!(
            "this needs the permission {}",
            permission_name(action, resource)
        )))
    }

    /// `forbidden` unless it holds `admin`.
    pub(crate) fn require_admin(&self) -> Result<(), ApiError> {
        if self.permissions.is_admin() {
            return Ok(());
        }
        Err(ApiError::forbidden("this needs the permission admin"))
    }

    /// Time left before its token expires (`None`: it does not).
    pub(crate) fn expires_in(&self) -> Option<Duration> {
        let at = self.expires_at?;
        Some(Duration::from_secs(at.saturating_sub(unix_now())))
    }
}

/// `read:orders`, `admin`...
fn permission_name(action: Action, resource: &str) -> String {
    match action {
        Action::Admin | Action::Metrics => action.as_str().to_owned(),
        _ => format!("{}:{resource}", action.as_str()),
    }
}

/// How a request proved who it is; the origin check depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Credential {
    /// No credentials, admitted as the anonymous caller: ambient like a
    /// cookie (a page on any site gets the same).
    Anonymous,
    /// No credentials yet: a WebSocket that must send `auth` first.
    Pending,
    /// `Authorization` header: a script or server; no browser sends it
    /// cross-site on its own.
    Header,
    /// A cookie: ambient, sent by the browser on any site's behalf.
    Cookie,
    /// A single-use SSE ticket.
    Ticket,
}

/// Checks credentials. Built once at start-up.
#[derive(Debug)]
pub(crate) struct Auth {
    jwt: Option<JwtVerifier>,
    /// Where more keys come from, if `auth.jwt.jwks_url` is set.
    pub(crate) jwks: Option<Jwks>,
    keys: Option<ApiKeys>,
    /// The anonymous principal, if anonymous access is allowed.
    anonymous: Option<Arc<Principal>>,
    /// Cookie name to read (WS upgrade and SSE), if any.
    cookie: Option<String>,
    pub(crate) auth_timeout: Duration,
}

impl Auth {
    /// Everyone is an administrator: embedded use and tests.
    pub(crate) fn open() -> Auth {
        Auth {
            jwt: None,
            jwks: None,
            keys: None,
            anonymous: Some(Arc::new(Principal::anonymous(Permissions::all()))),
            cookie: None,
            auth_timeout: AuthConfig::default().auth_timeout,
        }
    }

    /// From `[auth]`. Refuses a public `listen` address with no
    /// credentials configured unless anonymous access is explicitly allowed.
    pub(crate) fn new(
        config: &AuthConfig,
        keys_file: &Path,
        listen: SocketAddr,
    ) -> Result<Auth, String> {
        let jwt = config
            .jwt
            .as_ref()
            .map(JwtVerifier::new)
            .transpose()
            .map_err(|e| format!("[auth.jwt]: {e}"))?;
        let jwks = config.jwt.as_ref().map(Jwks::new).transpose()?.flatten();
        if let Some(jwt) = &config.jwt
            && jwt.audience.is_none()
        {
            tracing::warn!(
                "auth.jwt.audience is not set: tokens your identity provider issued for other \
                 applications are accepted too (docs/security.md)"
            );
        }
        let keys = ApiKeys::open(keys_file).map_err(|e| format!("API keys: {e}"))?;
        let credentials = jwt.is_some() || !keys.is_empty();
        let permissions = |list: &[String]| {
            Permissions::parse(list).map_err(|e| format!("auth.anonymous_permissions: {e}"))
        };
        let anonymous = match config.anonymous {
            Anonymous::Deny => None,
            Anonymous::Allow => Some(Principal::anonymous(permissions(
                &config.anonymous_permissions,
            )?)),
            Anonymous::Auto if credentials => None,
            Anonymous::Auto if listen.ip().is_loopback() => {
                tracing::warn!(
                    "no credentials configured: anonymous clients have full access; \
                     fine on loopback, see docs/security.md before exposing the server"
                );
                Some(Principal::anonymous(Permissions::all()))
            }
            Anonymous::Auto => {
                return Err(format!(
                    "refusing to listen on {listen} with no authentication configured: anyone \
                     could read and write everything. Configure [auth.jwt] keys or create an \
                     API key (herald apikey create), or set auth.anonymous = \"allow\" with \
                     auth.anonymous_permissions to serve anonymous clients on purpose \
                     (docs/security.md)"
                ));
            }
        };
        Ok(Auth {
            jwt,
            jwks,
            keys: Some(keys),
            anonymous: anonymous.map(Arc::new),
            cookie: (!config.cookie.is_empty()).then(|| config.cookie.clone()),
            auth_timeout: config.auth_timeout,
        })
    }

    /// The API keys, for the admin routes and the reload ticker.
    pub(crate) fn api_keys(&self) -> Option<&ApiKeys> {
        self.keys.as_ref()
    }

    /// The JWT verifier, if tokens are accepted.
    pub(crate) fn jwt(&self) -> Option<&JwtVerifier> {
        self.jwt.as_ref()
    }

    /// Verifies a bearer token: an API key or a JWT. A JWT naming a `kid`
    /// we do not know makes us fetch the JWKS document again (rate-limited)
    /// and retry once.
    pub(crate) async fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        match self.verify_now(token) {
            Err(e) if e.kind == herald_auth::AuthErrorKind::UnknownKey => {
                let (Some(jwks), Some(jwt), Some(kid)) = (&self.jwks, &self.jwt, token_kid(token))
                else {
                    return Err(e);
                };
                if jwks.refetch(jwt, &kid).await {
                    self.verify_now(token)
                } else {
                    Err(e)
                }
            }
            verified => verified,
        }
    }

    fn verify_now(&self, token: &str) -> Result<Principal, AuthError> {
        if ApiKeys::looks_like_key(token)
            && let Some(keys) = &self.keys
        {
            let (info, permissions) = keys.verify(token)?;
            return Ok(Principal {
                who: Who::ApiKey {
                    id: info.id,
                    name: info.name,
                },
                permissions,
                claims: Map::new(),
                expires_at: None,
            });
        }
        let Some(jwt) = &self.jwt else {
            return Err(AuthError::new(
                herald_auth::AuthErrorKind::UnknownKey,
                "this server accepts no tokens ([auth.jwt] is not configured)",
            ));
        };
        let claims = jwt.verify(token)?;
        Ok(Principal {
            who: Who::User(claims.sub),
            permissions: claims.permissions,
            claims: claims.raw,
            expires_at: claims.expires_at,
        })
    }

    /// The anonymous principal, or `unauthorized`.
    pub(crate) fn anonymous(&self) -> Result<Arc<Principal>, ApiError> {
        self.anonymous.clone().ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "authentication required: send Authorization: Bearer <token or API key>",
            )
        })
    }

    /// Whether anonymous clients are allowed.
    pub(crate) fn allows_anonymous(&self) -> bool {
        self.anonymous.is_some()
    }

    /// Authenticates a request from its headers, or the anonymous caller.
    /// `browser` requests (WS upgrade, SSE) may also use the cookie.
    pub(crate) async fn request(
        &self,
        headers: &HeaderMap,
        browser: bool,
    ) -> Result<(Arc<Principal>, Credential), ApiError> {
        match self.presented(headers, browser).await? {
            Some(found) => Ok(found),
            None => Ok((self.anonymous()?, Credential::Anonymous)),
        }
    }

    /// The credentials a request carries, verified; `None` if it carries
    /// none.
    pub(crate) async fn presented(
        &self,
        headers: &HeaderMap,
        browser: bool,
    ) -> Result<Option<(Arc<Principal>, Credential)>, ApiError> {
        if let Some(value) = headers.get(AUTHORIZATION) {
            let token = value
                .to_str()
                .ok()
                .and_then(|v| {
                    v.strip_prefix("Bearer ")
                        .or_else(|| v.strip_prefix("bearer "))
                })
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::Unauthorized,
                        "the Authorization header must be `Bearer <token>`",
                    )
                })?;
            let who = self.verify(token).await.map_err(rejected)?;
            return Ok(Some((Arc::new(who), Credential::Header)));
        }
        if browser
            && let Some(name) = &self.cookie
            && let Some(token) = cookie(headers, name)
        {
            let who = self.verify(token).await.map_err(rejected)?;
            return Ok(Some((Arc::new(who), Credential::Cookie)));
        }
        Ok(None)
    }
}

/// The `kid` in a JWT's header, if it has one.
fn token_kid(token: &str) -> Option<String> {
    use base64::Engine;
    let header = token.split('.').next()?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .ok()?;
    let header: Value = serde_json::from_slice(&bytes).ok()?;
    header.get("kid")?.as_str().map(str::to_owned)
}

/// The value of cookie `name`, if the request carries it.
fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
}

/// A rejected credential as an API error: `token_expired` or
/// `unauthorized`, with the check that failed.
pub(crate) fn rejected(e: AuthError) -> ApiError {
    let code = if e.is_expired() {
        ErrorCode::TokenExpired
    } else {
        ErrorCode::Unauthorized
    };
    ApiError::new(
        code,
        format!("credentials rejected ({}): {}", e.kind.as_str(), e.message),
    )
}

/// Seconds since the epoch.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
