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
