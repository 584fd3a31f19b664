//! The configuration tree, as read from `herald.toml` (plus `HERALD_*`
//! environment variables and command-line flags, layered by the binary).

use herald_core::HubConfig;
use herald_store::StoreConfig;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole configuration. Every field has a default, so an empty file (or
/// none) is a valid configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address to listen on. Default `127.0.0.1:7070`.
    pub listen: SocketAddr,
    /// Where the store keeps its files. Default `./herald-data`.
    pub data_dir: PathBuf,
    /// `[store]`: durability, limits, retention.
    pub store: StoreConfig,
    /// `[http]`: request limits and paging.
    pub http: HttpConfig,
    /// `[realtime]`: WebSocket and SSE subscriptions.
    pub realtime: RealtimeConfig,
    /// `[auth]`: who may connect, and how they prove it.
    pub auth: AuthConfig,
    /// `[tables.<name>]`: row-level rules and hidden fields per table.
    pub tables: BTreeMap<String, TableRules>,
    /// `[limits]`: rate limits per connection, user and address.
    pub limits: RateLimits,
    /// `[audit]`: the audit log.
    pub audit: AuditConfig,
    /// `[namespaces.<name>]`: the policy of channels `<name>:…` (history,
    /// presence, joins and leaves, room size, who may publish, persistent
    /// rooms); `[namespaces."*"]` for every other channel. See
    /// docs/channels.md.
    pub namespaces: BTreeMap<String, herald_core::Namespace>,
    /// `[routes.<name>]`: a table's changes republished to channels named
    /// from its documents (`table`, `channel` template, `ops`).
    pub routes: BTreeMap<String, herald_core::RouteRule>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: PathBuf::from("./herald-data"),
            store: StoreConfig::default(),
            http: HttpConfig::default(),
            realtime: RealtimeConfig::default(),
            auth: AuthConfig::default(),
            tables: BTreeMap::new(),
            limits: RateLimits::default(),
            audit: AuditConfig::default(),
            namespaces: BTreeMap::new(),
            routes: BTreeMap::new(),
        }
    }
}

/// `[http]` in `herald.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Largest request body in bytes (413 beyond). Default 8 MiB.
    pub max_body_bytes: usize,
    /// Documents per query page when `limit` is not given. Default 100.
    pub default_page: usize,
    /// Largest `limit` a query may ask for. Default 1000.
    pub max_page: usize,
    /// `[http.filter]`: limits on filters in queries and replay (depth, size,
    /// `$in` length, regex and string sizes); see docs/filters.md.
    pub filter: herald_filter::Limits,
    /// A directory of files served at `/app/` (an application's pages, the
    /// chat example), same-origin with the API. Default: none.
    pub static_dir: Option<PathBuf>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 8 << 20,
            default_page: 100,
            max_page: 1000,
            filter: herald_filter::Limits::default(),
            static_dir: None,
        }
    }
}

/// `[realtime]` in `herald.toml`: connections, subscriptions and the hub.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RealtimeConfig {
    /// How often the server pings each WebSocket (and sends an SSE comment).
    /// Default 20s.
    #[serde(with = "humantime_serde")]
    pub heartbeat: Duration,
    /// A WebSocket from which nothing (not even a pong) arrived for this long
    /// is closed with 4001. Default 45s.
    #[serde(with = "humantime_serde")]
    pub client_timeout: Duration,
    /// Largest WebSocket message a client may send (close 1009 beyond).
    /// Default 64 KiB.
    pub max_message_bytes: usize,
    /// Most subscriptions on one connection. Default 256.
    pub max_subscriptions: usize,
    /// Most WebSocket and SSE connections at once (503 beyond). Default 16384.
    pub max_connections: usize,
    /// Bytes queued for one connection before it is a slow consumer.
    /// Default 1 MiB.
    pub outbox_bytes: usize,
    /// Recent events each hub shard keeps in memory for resuming clients.
    /// Default 4 MiB.
    pub recent_bytes: usize,
    /// Hub shards; 0 means one per CPU core. Default 0.
    pub shards: usize,
    /// Most documents per snapshot message. Default 500.
    pub snapshot_chunk_docs: usize,
    /// How long a WebSocket writer waits, once something is queued, for
    /// more to write in the same system call. Trades latency for CPU under
    /// fan-out (docs/operations.md). Default 0 (write at once).
    #[serde(with = "humantime_serde")]
    pub write_delay: Duration,
    /// Every WebSocket of an authenticated user is subscribed to its
    /// personal channel `user:<sub>` (subscription id `user:<sub>`), so a
    /// message published there reaches all of that user's tabs and devices.
    /// Default true.
    pub personal_channels: bool,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        let hub = HubConfig::default();
        RealtimeConfig {
            heartbeat: Duration::from_secs(20),
            client_timeout: Duration::from_secs(45),
            max_message_bytes: 64 << 10,
            max_subscriptions: hub.max_subscriptions,
            max_connections: 16_384,
            outbox_bytes: hub.outbox_bytes,
            recent_bytes: hub.recent_bytes,
            shards: hub.shards,
            snapshot_chunk_docs: hub.snapshot_chunk_docs,
            write_delay: Duration::ZERO,
            personal_channels: true,
        }
    }
}

impl RealtimeConfig {
    /// The hub's share of these settings.
    #[must_use]
    pub fn hub(&self) -> HubConfig {
        HubConfig {
            shards: self.shards,
            outbox_bytes: self.outbox_bytes,
            recent_bytes: self.recent_bytes,
            max_subscriptions: self.max_subscriptions,
            snapshot_chunk_docs: self.snapshot_chunk_docs,
            ..HubConfig::default()
        }
    }
}

impl Config {
    /// The API key file: `auth.api_keys_file`, else
    /// `<data_dir>/apikeys.json`.
    #[must_use]
    pub fn api_keys_file(&self) -> PathBuf {
        self.auth
            .api_keys_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("apikeys.json"))
    }
}

/// `[auth]` in `herald.toml`: authentication. See docs/security.md.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// Who a request without credentials is. Default `auto`.
    pub anonymous: Anonymous,
    /// What anonymous clients may do when `anonymous = "allow"`. Default:
    /// everything but `admin` and `metrics` (`read:*`, `write:*`,
    /// `publish:*`, `presence:*`).
    pub anonymous_permissions: Vec<String>,
    /// `[auth.jwt]`: keys and claims checks for JSON Web Tokens.
    pub jwt: Option<herald_auth::JwtConfig>,
    /// API keys file (`herald apikey create`). Default
    /// `<data_dir>/apikeys.json`.
    pub api_keys_file: Option<PathBuf>,
    /// A WebSocket that did not authenticate at the upgrade must send
    /// `auth` within this time. Default 10s.
    #[serde(with = "humantime_serde")]
    pub auth_timeout: Duration,
    /// Cookie holding a token, read on WebSocket upgrades and SSE requests
    /// (what browsers can send). Empty: cookies are not read. Default
    /// `herald_token`.
    pub cookie: String,
    /// Browser origins allowed to open WebSockets and SSE streams. Empty:
    /// any origin, except that a request authenticated by cookie must be
    /// same-origin. Default empty.
    pub allowed_origins: Vec<String>,
    /// Lifetime of a single-use SSE ticket (`POST /v1/sse/tickets`).
    /// Default 30s.
    #[serde(with = "humantime_serde")]
    pub ticket_ttl: Duration,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            anonymous: Anonymous::Auto,
            anonymous_permissions: ["read:*", "write:*", "publish:*", "presence:*"]
                .map(str::to_owned)
                .to_vec(),
            jwt: None,
            api_keys_file: None,
            auth_timeout: Duration::from_secs(10),
            cookie: "herald_token".to_owned(),
            allowed_origins: Vec::new(),
            ticket_ttl: Duration::from_secs(30),
        }
    }
}

/// Who a request without credentials is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Anonymous {
    /// With no credentials configured (no JWT keys, no API keys) and a
    /// loopback listen address: an administrator, so a fresh install just
    /// works on one machine. With credentials configured: refused. With
    /// none on a public address: the server refuses to start.
    Auto,
    /// Refused: every request must authenticate.
    Deny,
    /// Allowed, with `anonymous_permissions`, on any address.
    Allow,
}

/// `[tables.<name>]`: what users may see and change in one table. Rules
/// bind users (JWT) and anonymous clients; API keys and `admin` are exempt.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TableRules {
    /// Row-level read rule: a filter with `"$auth.<claim>"` values, e.g.
    /// `{"user_id": "$auth.sub"}`, joined to every subscription, snapshot,
    /// query, replay and read of the table.
    pub read: Option<Value>,
    /// Row-level write rule: the rows a user may create, change or delete
    /// (both the stored row and the result must match).
    pub write: Option<Value>,
    /// Fields removed from every document a reader is sent, unless it holds
    /// `read_hidden:<table>`.
    pub hidden: Vec<String>,
}

/// `[limits]` in `herald.toml`: rate limits. A rate of 0 turns that limit
/// off. Exceeding one answers `rate_limited` with a retry time. Callers
/// holding `admin` are exempt from the message and publish rates; per-user
/// limits count users and API keys, not anonymous clients (who share no
/// identity), which the per-address limits cover.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimits {
    /// WebSocket messages per second per connection. Default 100.
    pub messages_per_second: u32,
    /// Burst above that rate. Default 200.
    pub message_burst: u32,
    /// Rate-limited messages in a row after which the connection is closed
    /// (1008, policy violation). Default 50.
    pub abuse_strikes: u32,
    /// Publishes per second per user or API key (REST and WebSocket).
    /// Default 1000.
    pub publishes_per_second: u32,
    /// Burst above that rate. Default 2000.
    pub publish_burst: u32,
    /// New connections (WebSocket and SSE) per second per client address.
    /// Default 50.
    pub connects_per_second: u32,
    /// Burst above that rate. Default 100.
    pub connect_burst: u32,
    /// Open WebSocket and SSE connections per client address. Default 2000.
    pub connections_per_ip: u32,
    /// Open WebSocket and SSE connections per user or API key. Default 200.
    pub connections_per_user: u32,
    /// Loopback clients (a proxy on the same host, a benchmark) are exempt
    /// from the per-address limits. Default true.
    pub exempt_loopback: bool,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            messages_per_second: 100,
            message_burst: 200,
            abuse_strikes: 50,
            publishes_per_second: 1000,
            publish_burst: 2000,
            connects_per_second: 50,
            connect_burst: 100,
            connections_per_ip: 2000,
            connections_per_user: 200,
            exempt_loopback: true,
        }
    }
}

/// `[audit]` in `herald.toml`: the audit log (JSON lines, see
/// docs/security.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Directory of the audit files. Default `<data_dir>/audit`.
    pub dir: Option<PathBuf>,
    /// Record every subscription created and ended (busy servers may turn
    /// this off). Default true.
    pub subscriptions: bool,
    /// Size at which the current file is rotated. Default 64 MiB.
    pub file_bytes: u64,
    /// Rotated files kept. Default 8.
    pub keep_files: usize,
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            dir: None,
            subscriptions: true,
            file_bytes: 64 << 20,
            keep_files: 8,
        }
    }
}
