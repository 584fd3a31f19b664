//! Command-line flags.

use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

/// Herald: a real-time data server. Applications write JSON documents to
/// tables; clients subscribe to the changes.
#[derive(Debug, Parser)]
#[command(
    name = "herald",
    version,
    about = "Herald: a real-time data server. Applications write JSON documents to tables; clients subscribe to the changes."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the server.
    ///
    /// Settings are layered: built-in defaults, then the config file, then
    /// HERALD_* environment variables (nested keys with `__`, e.g.
    /// HERALD_STORE__DURABILITY=os), then these flags.
    Serve(ServeArgs),
    /// Create, list and revoke API keys (for servers and scripts).
    ///
    /// Keys are stored hashed in the API key file the server reads:
    /// `auth.api_keys_file`, by default `<data_dir>/apikeys.json`, found
    /// the way `herald serve` finds it (flags, HERALD_* variables, config
    /// file). A running server picks up changes within a second.
    #[command(subcommand)]
    Apikey(ApikeyCommand),
    /// Measure a server: idle connections, fan-out, table changes, resume,
    /// broadcasts to rooms.
    ///
    /// Starts `herald serve` on a loopback port over a temporary directory
    /// (or tests the one given with --url and --pid), runs the scenario,
    /// prints a summary and, with --out, writes it as JSON. Every message
    /// received is checked for loss, duplicates and order. See
    /// BENCHMARKS.md for the recorded runs.
    Bench(herald_bench::BenchArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum ApikeyCommand {
    /// Create a key and print it. The key is shown only this once.
    ///
    /// The key is printed alone on standard output, so
    /// `KEY=$(herald apikey create …)` works; its id, name and permissions
    /// go to standard error.
    Create(ApikeyCreateArgs),
    /// List the keys: id, name, creation time and permissions (never the
    /// keys themselves, which are not stored).
    List(KeyFileArgs),
    /// Revoke a key by its id (see `herald apikey list`).
    Revoke(ApikeyRevokeArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ApikeyCreateArgs {
    /// A label for the key: 1 to 64 letters, digits, '_', '.' or '-'.
    #[arg(long, value_name = "NAME")]
    pub(crate) name: String,
    /// What the key may do, comma-separated, e.g. `read:*,publish:chat:*`.
    /// Forms: read:TABLE, write:TABLE, publish:CHANNEL, presence:ROOM,
    /// moderate:ROOM, read_hidden:TABLE (with `*` wildcards), metrics, admin.
    #[arg(
        long,
        value_name = "PERMISSIONS",
        value_delimiter = ',',
        required = true,
        num_args = 1..
    )]
    pub(crate) permissions: Vec<String>,
    #[command(flatten)]
    pub(crate) file: KeyFileArgs,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ApikeyRevokeArgs {
    /// The key's id: the 12 characters after `hrld_`.
    #[arg(value_name = "ID")]
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) file: KeyFileArgs,
}

/// Where the API key file is: the same flags as `herald serve`.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct KeyFileArgs {
    /// Data directory; the key file is `<DIR>/apikeys.json` unless the
    /// configuration sets `auth.api_keys_file` [default: ./herald-data].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Configuration file (TOML). Without this flag, ./herald.toml is read if
    /// it exists; with it, the file must exist.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}

#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:7070].
    #[arg(long, value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// Directory for the store's files [default: ./herald-data].
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Configuration file (TOML). Without this flag, ./herald.toml is read if
    /// it exists; with it, the file must exist.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
}
