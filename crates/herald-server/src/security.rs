//! [`Security`]: the runtime form of `[auth]`, `[tables]`, `[limits]` and
//! `[audit]`, built once at start-up, and [`Caller`], the extractor that
//! authenticates a REST request.

use crate::AppState;
use crate::access::Access;
use crate::audit::Audit;
use crate::auth::{Auth, Credential, Principal};
use crate::config::Config;
use crate::error::ApiError;
use crate::limits::Limits;
use crate::tickets::Tickets;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde_json::json;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

/// Everything that decides who may do what.
#[derive(Debug)]
pub struct Security {
    pub(crate) auth: Auth,
    pub(crate) access: Access,
    pub(crate) limits: Limits,
    pub(crate) tickets: Tickets,
    pub(crate) audit: Audit,
    pub(crate) allowed_origins: Vec<String>,
}

impl Security {
    /// No authentication, rules, limits or audit: every caller is an
    /// administrator. For embedding behind another gate, and tests.
    #[must_use]
    pub fn open() -> Security {
        Security {
            auth: Auth::open(),
            access: Access::default(),
            limits: Limits::none(),
            tickets: Tickets::new(crate::config::AuthConfig::default().ticket_ttl),
            audit: Audit::off(),
            allowed_origins: Vec::new(),
        }
    }

    /// From the configuration. Fails with a message for the operator: a
    /// bad key or rule, or a public address with no authentication.
    pub fn from_config(config: &Config) -> Result<Security, String> {
        let auth = Auth::new(&config.auth, &config.api_keys_file(), config.listen)?;
        let access = Access::new(&config.tables, &config.http.filter)?;
        let audit = Audit::start(&config.audit, &config.data_dir)
            .map_err(|e| format!("opening the audit log: {e}"))?;
        Ok(Security {
            auth,
            access,
            limits: Limits::new(&config.limits),
            tickets: Tickets::new(config.auth.ticket_ttl),
            audit,
            allowed_origins: config.auth.allowed_origins.clone(),
        })
    }

    /// Background upkeep: reloads API keys changed by `herald apikey`,
    /// forgets idle rate-limit keys, and fetches the JWKS document (at start
    /// and every `jwks_refresh`). Call inside a Tokio runtime.
    pub(crate) fn spawn_upkeep(self: &Arc<Security>) {
        if self.auth.jwks.is_some() {
            let security = Arc::downgrade(self);
            tokio::spawn(async move {
                loop {
                    let Some(strong) = security.upgrade() else {
                        return;
                    };
                    let (Some(jwks), Some(jwt)) = (&strong.auth.jwks, strong.auth.jwt()) else {
                        return;
                    };
                    match jwks.fetch(jwt).await {
                        Ok(n) => tracing::info!(keys = n, "JWKS keys loaded"),
                        Err(e) => {
                            tracing::warn!(error = %e, "fetching the JWKS document failed; keeping the keys we had")
                        }
                    }
                    let every = jwks.refresh;
                    drop(strong);
                    tokio::time::sleep(every).await;
                }
            });
        }
        let security = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            let mut n = 0u64;
            loop {
                tick.tick().await;
                let Some(security) = security.upgrade() else {
                    return;
                };
                if let Some(keys) = security.auth.api_keys() {
                    match keys.reload_if_changed() {
                        Ok(true) => tracing::info!("API keys reloaded"),
                        Ok(false) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "reloading API keys failed; keeping the previous ones")
                        }
                    }
                }
                n += 1;
                if n.is_multiple_of(10) {
                    security.limits.prune();
                }
            }
        });
    }

    /// Authenticates a request; a failure is audited.
    pub(crate) async fn authenticate(
        &self,
        headers: &HeaderMap,
        ip: IpAddr,
        browser: bool,
    ) -> Result<(Arc<Principal>, Credential), ApiError> {
        self.auth
            .request(headers, browser)
            .await
            .inspect_err(|e| self.auth_failed(ip, e))
    }

    /// Audits a failed authentication.
    pub(crate) fn auth_failed(&self, ip: IpAddr, e: &ApiError) {
        self.audit.record(
            "auth_failure",
            None,
            json!({"ip": ip.to_string(), "code": e.code.as_str(), "reason": e.message}),
        );
    }

    /// Audits a refusal.
    pub(crate) fn denied(&self, who: &Principal, what: &str, e: &ApiError) {
        self.audit.record(
            "denied",
            Some(&who.subject()),
            json!({"what": what, "code": e.code.as_str(), "reason": e.message}),
        );
    }
}

/// The client's address, where the server knows it.
pub(crate) fn client_ip(parts: &Parts) -> IpAddr {
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip())
}

/// The client's address (unspecified when the server was not started with
/// connection info, as by embedders serving [`crate::App::router`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ClientIp(pub(crate) IpAddr);

impl<S: Send + Sync> FromRequestParts<S> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientIp(client_ip(parts)))
    }
}

/// The authenticated caller of a REST request.
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub(crate) Arc<Principal>);

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, app: &AppState) -> Result<Self, ApiError> {
        let ip = client_ip(parts);
        let (who, _) = app.security.authenticate(&parts.headers, ip, false).await?;
        Ok(Caller(who))
    }
}

impl Caller {
    /// `forbidden` (audited as a refusal of `what`) unless the caller may
    /// do `action` on `resource`.
    pub(crate) fn require(
        &self,
        app: &AppState,
        what: &str,
        action: herald_auth::Action,
        resource: &str,
    ) -> Result<(), ApiError> {
        self.check(app, what, self.0.require(action, resource))
    }

    /// `forbidden` (audited as a refusal of `what`) unless the caller holds
    /// `admin`.
    pub(crate) fn require_admin(&self, app: &AppState, what: &str) -> Result<(), ApiError> {
        self.check(app, what, self.0.require_admin())
    }

    /// Checks `allowed`, auditing a refusal of `what`.
    pub(crate) fn check<T>(
        &self,
        app: &AppState,
        what: &str,
        allowed: Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        allowed.inspect_err(|e| app.security.denied(&self.0, what, e))
    }
}
