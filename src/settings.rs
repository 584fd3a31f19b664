//! Loading the configuration: defaults, file, environment, flags.

use crate::cli::ServeArgs;
use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use herald_server::Config;
use std::path::Path;

const DEFAULT_FILE: &str = "herald.toml";

/// Builds the configuration for `herald serve`.
pub(crate) fn load(args: &ServeArgs) -> anyhow::Result<Config> {
    let mut figment = Figment::new();
    match &args.config {
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
    if let Some(listen) = args.listen {
        figment = figment.merge(Serialized::default("listen", listen.to_string()));
    }
    if let Some(dir) = &args.data_dir {
        figment = figment.merge(Serialized::default("data_dir", dir));
    }
    figment.extract::<Config>().context("invalid configuration")
}
