//! The configuration tree, as read from `herald.toml` (plus `HERALD_*`
//! environment variables and command-line flags, layered by the binary).

use herald_core::HubConfig;
use herald_store::StoreConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The whole configuration. Every field has a default, so an empty file (or
/// none) is a valid configuration.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: PathBuf::from("./herald-data"),
            store: StoreConfig::default(),
            http: HttpConfig::default(),
            realtime: RealtimeConfig::default(),
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
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_body_bytes: 8 << 20,
            default_page: 100,
            max_page: 1000,
            filter: herald_filter::Limits::default(),
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
