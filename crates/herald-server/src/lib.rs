//! Herald's HTTP server: the REST API for tables, batches and replay, and
//! real-time subscriptions over WebSocket and SSE.
//!
//! [`run`] takes the listener and the shutdown signal from its caller (tests
//! bind port 0), serves until the signal fires, closes WebSocket and SSE
//! sessions (1001, going away), lets in-flight requests finish, then closes
//! the store so every acknowledged write is fsynced.
//!
//! # Layout
//! - [`config`]: the whole configuration tree ([`Config`]), as read from `herald.toml`.
//! - `error`: [`ApiError`], the one place a failure becomes an HTTP response.
//! - `extract`: request extractors that fail with precise error codes.
//! - `tables`: document routes (`/v1/tables/{table}/docs...`).
//! - `batch`: `POST /v1/batch`.
//! - `events`: `GET /v1/events`, replay of the log as NDJSON.
//! - `query`: the document filter accepted by queries, replay and subscriptions.
//! - `subscription`: a `subscribe` request (WS message or SSE query) made
//!   into a hub subscription.
//! - `sessions`: the connection limit and the shutdown signal sessions watch.
//! - `ws`: `GET /v1/ws`, the WebSocket protocol.
//! - `sse`: `GET /v1/sse` and `GET /v1/tables/{table}/events`.
//! - `channels`: publishing (`POST /v1/channels/{channel}/messages` and WS
//!   `publish`) under namespace policies, broadcasts (`POST /v1/broadcast`,
//!   WS `broadcast`), channel statistics (`GET /v1/channels[/{channel}]`).
//! - `rooms`: `/v1/rooms...` and the WS room requests (join, leave,
//!   presence, update_presence, remove_member).
//! - `connections`: `GET /v1/connections[/{id}]`.
//! - `routing`: `/v1/admin/routes...`, change routing rules.
//! - `health`: `GET /healthz` and `GET /readyz`.
//! - `cors`: CORS for the origins of `[auth] allowed_origins`.
//! - `metrics`: `GET /metrics` (Prometheus) and the REST write metrics.
//! - `stats`: `GET /v1/stats` and the rates behind it.
//! - [`security`]: [`Security`], built from `[auth]`, `[tables]`,
//!   `[limits]` and `[audit]`, and the extractor that authenticates REST
//!   requests; with `auth` (principals, credentials), `access` (permissions,
//!   row-level rules, hidden fields), `limits` (rate limits), `origin`
//!   (browser origins), `tickets` (single-use SSE tickets), `audit` (the
//!   audit log) and `admin` (`/v1/admin/...`).

mod access;
mod admin;
mod audit;
mod auth;
mod batch;
mod channels;
pub mod config;
mod connections;
mod cors;
mod error;
mod events;
mod extract;
mod health;
mod jwks;
mod limits;
mod metrics;
mod origin;
mod query;
mod rooms;
mod routing;
pub mod security;
mod sessions;
mod sse;
mod stats;
mod subscription;
mod tables;
mod tickets;
mod ws;

pub use config::{Config, HttpConfig, RealtimeConfig};
pub use error::ApiError;
pub use security::Security;

use crate::metrics::{WriteRequest, timed};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use herald_core::clock::{Clock, SystemClock};
use herald_core::{Herald, HiddenFields, Hub, HubConfig, Namespaces, Rooms, RouteSet};
pub use sessions::Sessions;
use std::future::Future;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Where `[http] static_dir` is served.
const STATIC_PREFIX: &str = "/app";

/// How long in-flight requests and streams may take to finish once
/// shutdown began.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// What every handler can reach.
#[derive(Debug, Clone)]
pub(crate) struct AppState {
    pub(crate) herald: Herald,
    pub(crate) hub: Hub,
    pub(crate) http: Arc<HttpConfig>,
    pub(crate) realtime: Arc<RealtimeConfig>,
    pub(crate) sessions: Sessions,
    /// Events and deliveries per second, from the rate ticker.
    pub(crate) rates: tokio::sync::watch::Receiver<stats::Rates>,
    /// The recorder of this server's scrape-time metrics.
    pub(crate) metrics: crate::metrics::ServerMetrics,
    /// Authentication, authorization, limits and audit.
    pub(crate) security: Arc<Security>,
    /// Rooms and presence.
    pub(crate) rooms: Rooms,
    /// Change routing rules.
    pub(crate) routes: RouteSet,
}

/// The assembled server: its routes, the hub and the open sessions.
#[derive(Debug, Clone)]
pub struct App {
    state: AppState,
}

impl App {
    /// Starts the hub over `herald`, open to everyone
    /// ([`Security::open`]), with the default channel policies and no
    /// routing rules; call inside a Tokio runtime. Fails if the stored rooms
    /// or routing rules cannot be read.
    ///
    /// The first app of the process installs the Prometheus recorder
    /// behind `GET /metrics`.
    pub fn new(herald: Herald, http: HttpConfig, realtime: RealtimeConfig) -> Result<App, String> {
        let config = Config {
            http,
            realtime,
            ..Config::default()
        };
        App::assemble(herald, &config, Security::open(), Arc::new(SystemClock))
    }

    /// The server `config` describes: its security (`[auth]`, `[tables]`,
    /// `[limits]`, `[audit]`), channel namespaces and routing rules. Fails
    /// with a message for the operator.
    pub fn from_config(herald: Herald, config: &Config) -> Result<App, String> {
        App::from_config_with_clock(herald, config, Arc::new(SystemClock))
    }

    /// [`App::from_config`], with presence reading `clock` (tests step a
    /// [`ManualClock`](herald_core::clock::ManualClock) through TTLs).
    pub fn from_config_with_clock(
        herald: Herald,
        config: &Config,
        clock: Arc<dyn Clock>,
    ) -> Result<App, String> {
        let security = Security::from_config(config)?;
        App::assemble(herald, config, security, clock)
    }

    fn assemble(
        herald: Herald,
        config: &Config,
        security: Security,
        clock: Arc<dyn Clock>,
    ) -> Result<App, String> {
        let namespaces = Arc::new(Namespaces::new(
            &config.namespaces,
            config.realtime.heartbeat,
        )?);
        let hidden = config
            .tables
            .iter()
            .filter(|(_, rules)| !rules.hidden.is_empty())
            .map(|(table, rules)| (table.clone(), Arc::new(HiddenFields::new(&rules.hidden))))
            .collect();
        let routes = RouteSet::start(&herald, namespaces.clone(), config.routes.clone(), hidden)?;
        let hub = Hub::start(
            herald.clone(),
            HubConfig {
                namespaces,
                ..config.realtime.hub()
            },
        );
        let rooms = Rooms::start(hub.clone(), clock).map_err(|e| format!("loading rooms: {e}"))?;
        let security = Arc::new(security);
        security.spawn_upkeep();
        let realtime = config.realtime.clone();
        Ok(App {
            state: AppState {
                rates: stats::spawn_rate_ticker(herald.clone(), hub.clone()),
                metrics: crate::metrics::ServerMetrics::new(),
                hub,
                sessions: Sessions::new(realtime.max_connections),
                herald,
                http: Arc::new(config.http.clone()),
                realtime: Arc::new(realtime),
                security,
                rooms,
                routes,
            },
        })
    }

    /// The rooms and their presence.
    #[must_use]
    pub fn rooms(&self) -> &Rooms {
        &self.state.rooms
    }

    /// The hub routing events to subscriptions.
    #[must_use]
    pub fn hub(&self) -> &Hub {
        &self.state.hub
    }

    /// The open WebSocket and SSE sessions.
    #[must_use]
    pub fn sessions(&self) -> &Sessions {
        &self.state.sessions
    }

    /// The routes, ready to serve.
    pub fn router(&self) -> Router {
        let router = Router::new()
            .route("/healthz", get(health::healthz))
            .route("/readyz", get(health::readyz))
            .route("/metrics", get(crate::metrics::scrape))
            .route("/v1/stats", get(stats::stats))
            .route("/v1/subscriptions", get(stats::subscriptions))
            .route(
                "/v1/tables/{table}/docs",
                post(timed(tables::insert, WriteRequest::Insert)).get(tables::query),
            )
            .route(
                "/v1/tables/{table}/docs/{id}",
                get(tables::read)
                    .put(timed(tables::put, WriteRequest::Put))
                    .patch(timed(tables::patch, WriteRequest::Patch))
                    .delete(timed(tables::delete, WriteRequest::Delete)),
            )
            .route("/v1/batch", post(timed(batch::batch, WriteRequest::Batch)))
            .route("/v1/events", get(events::replay))
            .route(
                "/v1/channels/{channel}/messages",
                post(timed(channels::publish, WriteRequest::Publish)),
            )
            .route("/v1/channels", get(channels::channels))
            .route("/v1/channels/{channel}", get(channels::channel))
            .route(
                "/v1/broadcast",
                post(timed(channels::broadcast, WriteRequest::Broadcast)),
            )
            .route("/v1/rooms", get(rooms::list))
            .route(
                "/v1/rooms/{room}",
                get(rooms::get).put(rooms::put).delete(rooms::delete),
            )
            .route(
                "/v1/rooms/{room}/members",
                get(rooms::members).post(rooms::add_member),
            )
            .route(
                "/v1/rooms/{room}/members/{client}",
                axum::routing::delete(rooms::remove_member),
            )
            .route("/v1/connections", get(connections::list))
            .route("/v1/connections/{id}", get(connections::get))
            .route("/v1/ws", get(ws::upgrade))
            .route("/v1/sse", get(sse::subscribe))
            .route("/v1/sse/tickets", post(sse::ticket))
            .route(
                "/v1/admin/apikeys",
                get(admin::list_keys).post(admin::create_key),
            )
            .route(
                "/v1/admin/apikeys/{id}",
                axum::routing::delete(admin::revoke_key),
            )
            .route("/v1/admin/audit", get(admin::audit))
            .route("/v1/admin/routes", get(routing::list))
            .route(
                "/v1/admin/routes/{name}",
                axum::routing::put(routing::put).delete(routing::delete),
            )
            .route("/v1/tables/{table}/events", get(sse::table_shorthand));
        let router = match &self.state.http.static_dir {
            Some(dir) => router.nest_service(
                STATIC_PREFIX,
                tower_http::services::ServeDir::new(dir).append_index_html_on_directories(true),
            ),
            None => router,
        };
        let router = router
            .fallback(error::not_found)
            .method_not_allowed_fallback(error::method_not_allowed)
            .layer(DefaultBodyLimit::max(self.state.http.max_body_bytes));
        let router = match cors::layer(&self.state.security.allowed_origins) {
            Some(cors) => router.layer(cors),
            None => router,
        };
        router
            .layer(tower_http::trace::TraceLayer::new_for_http())
            .with_state(self.state.clone())
    }

    /// Serves on `listener` until `shutdown` resolves, then ends WebSocket
    /// and SSE sessions (1001), drains in-flight requests and closes the
    /// store (final fsync).
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let sessions = self.state.sessions.clone();
        let (began, beginning) = tokio::sync::oneshot::channel::<()>();
        let service = self
            .router()
            .into_make_service_with_connect_info::<std::net::SocketAddr>();
        // No Nagle delay: events are small and latency matters more than
        // packet count (with delayed ACKs, Nagle can hold an event 40 ms).
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = axum::serve(listener, service).with_graceful_shutdown(async move {
            shutdown.await;
            sessions.shut_down();
            let _ = began.send(());
        });
        // In-flight requests get a grace period; a client that does not read
        // its response (or stream) cannot keep the server from stopping.
        let grace = async {
            match beginning.await {
                Ok(()) => tokio::time::sleep(SHUTDOWN_GRACE).await,
                Err(_) => std::future::pending().await,
            }
        };
        let served = tokio::select! {
            served = server.into_future() => served,
            () = grace => {
                tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open after the grace period; dropping them");
                Ok(())
            }
        };
        // Upgraded WebSockets outlive the HTTP server: let them say goodbye.
        self.state
            .sessions
            .wait_closed(std::time::Duration::from_secs(5))
            .await;
        tracing::info!("stopped accepting; closing the store");
        self.state.herald.close().await;
        served
    }
}

/// [`App::new`] (open to every caller: see [`App::from_config`] for a
/// server with authentication) then [`App::serve`].
pub async fn run(
    listener: TcpListener,
    herald: Herald,
    http: HttpConfig,
    realtime: RealtimeConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    App::new(herald, http, realtime)
        .map_err(std::io::Error::other)?
        .serve(listener, shutdown)
        .await
}
