//! Loading the configuration: defaults, file, environment, flags.

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use herald_server::Config;
use std::net::SocketAddr;
use std::path::Path;

const DEFAULT_FILE: &str = "herald.toml";

/// Builds the configuration from the file (`config`, else `./herald.toml`
/// if present), the environment and the flags given.
pub(crate) fn load(
    config: Option<&Path>,
    listen: Option<SocketAddr>,
    data_dir: Option<&Path>,
) -> anyhow::Result<Config> {
    let mut figment = Figment::new();
    match config {
        Some(path) => {
            if !path.is_file() {
                bail!("config file {} does not exist", path.display());
            }
            figment = figment.merge(Toml::file(path));
        }
        None if Path::new(DEFAULT_FILE).is_file() => {
            figment = figment.merge(Toml::file(DEFAULT_FILE))
        }
        None => {}
    }
    figment = figment.merge(Env::prefixed("HERALD_").split("__"));
    if let Some(listen) = listen {
        figment = figment.merge(Serialized::default("listen", listen.to_string()));
    }
    if let Some(dir) = data_dir {
        figment = figment.merge(Serialized::default("data_dir", dir));
    }
    figment.extract::<Config>().context("invalid configuration")
}
