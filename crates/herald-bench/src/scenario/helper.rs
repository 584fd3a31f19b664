//! Helper processes: `herald bench <subcommand>` started from this
//! executable, talking over its standard input and output, killed if
//! dropped. Scenarios use them to hold more connections than one process's
//! file descriptors allow.

use anyhow::Context;
use std::process::Stdio;
use tokio::process::{Child, Command};

/// Starts `herald bench <args...>` with piped standard input and output.
pub(super) fn spawn(args: &[&str]) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("locating the herald binary")?;
    Command::new(exe)
        .arg("bench")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting a helper: herald bench {}", args.join(" ")))
}
