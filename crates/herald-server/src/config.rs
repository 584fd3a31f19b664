//! The configuration tree, as read from `herald.toml` (plus `HERALD_*`
//! environment variables and command-line flags, layered by the binary).

use herald_store::StoreConfig;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::PathBuf;

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
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7070)),
            data_dir: PathBuf::from("./herald-data"),
            store: StoreConfig::default(),
            http: HttpConfig::default(),
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
