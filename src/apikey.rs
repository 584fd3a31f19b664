//! `herald apikey`: create, list and revoke API keys in the file the server
//! reads.

use crate::cli::{ApikeyCommand, KeyFileArgs};
use anyhow::{Context, bail};
use herald_auth::{ApiKeyInfo, ApiKeys, Permissions};
use std::path::PathBuf;

pub(crate) fn run(command: ApikeyCommand) -> anyhow::Result<()> {
    match command {
        ApikeyCommand::Create(args) => {
            let permissions = Permissions::parse(&args.permissions)?;
            let path = key_file(&args.file)?;
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            let (info, key) = ApiKeys::open(&path)?.create(&args.name, &permissions)?;
            eprintln!(
                "Created API key {:?} (id {}) in {}",
                info.name,
                info.id,
                path.display()
            );
            eprintln!("Permissions: {}", info.permissions.join(", "));
            eprintln!("The key is shown only this once; store it now:");
            println!("{key}");
        }
        ApikeyCommand::List(file) => {
            let path = key_file(&file)?;
            let keys = ApiKeys::open(&path)?.list();
            if keys.is_empty() {
                eprintln!("No API keys in {}", path.display());
            } else {
                print!("{}", table(&keys));
            }
        }
        ApikeyCommand::Revoke(args) => {
            let path = key_file(&args.file)?;
            if !ApiKeys::open(&path)?.revoke(&args.id)? {
                bail!("no API key has id {:?} in {}", args.id, path.display());
            }
            eprintln!("Revoked API key {} in {}", args.id, path.display());
        }
    }
    Ok(())
}

/// The key file `herald serve` would use with the same flags, environment
/// and configuration file.
fn key_file(args: &KeyFileArgs) -> anyhow::Result<PathBuf> {
    let config = crate::settings::load(args.config.as_deref(), None, args.data_dir.as_deref())?;
    Ok(config.api_keys_file())
}

fn table(keys: &[ApiKeyInfo]) -> String {
    let name_width = keys.iter().map(|k| k.name.len()).max().unwrap_or(0).max(4);
    let mut out = format!(
        "{:<12}  {:<name_width$}  {:<17}  PERMISSIONS\n",
        "ID", "NAME", "CREATED (UTC)"
    );
    for key in keys {
        out += &format!(
            "{:<12}  {:<name_width$}  {:<17}  {}\n",
            key.id,
            key.name,
            utc(key.created_at),
            key.permissions.join(",")
        );
    }
    out
}

/// Unix milliseconds as `YYYY-MM-DD HH:MM` (UTC): humantime's RFC 3339
/// form, cut to the minute.
fn utc(unix_ms: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(unix_ms);
    let text = humantime::format_rfc3339_seconds(at).to_string();
    text.get(..16).unwrap_or(&text).replacen('T', " ", 1)
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(utc(1_735_689_599_000), "2024-12-31 23:59");
        assert_eq!(utc(1_709_210_096_789), "2024-02-29 12:34");
    }
}
