//! The server under test: a `herald serve` this process starts (over a
//! temporary data directory, on a loopback port) or one already running,
//! named by its URL and process id.

use crate::proc::{self, Sample};
use anyhow::{Context, bail};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

/// How to reach (and measure) the server.
#[derive(Debug)]
pub struct Target {
    /// `http://host:port`.
    pub base: String,
    /// Its process id, for `/proc` readings.
    pub pid: u32,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    /// Starts `herald serve` (this executable) on an ephemeral loopback
    /// port over a fresh directory. `env` adds `HERALD_*` settings.
    pub fn spawn(env: &[(String, String)]) -> anyhow::Result<Target> {
        let dir = tempfile::tempdir().context("temporary data directory")?;
        let exe = std::env::current_exe().context("locating the herald binary")?;
        let mut command = Command::new(&exe);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.path())
            .env("RUST_LOG", "error")
            // Up to the file-descriptor limit by default: benchmarks hold many.
            .env("HERALD_REALTIME__MAX_CONNECTIONS", "19800")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {} serve", exe.display()))?;
        let stdout = child.stdout.take().context("server stdout")?;
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line)?;
        let Some(addr) = line.trim().strip_prefix("herald listening on ") else {
            let _ = child.kill();
            bail!("the server did not start: {line:?}");
        };
        Ok(Target {
            base: addr.to_owned(),
            pid: child.id(),
            child: Some(child),
            _dir: Some(dir),
        })
    }

    /// A server already running at `base` (`http://host:port`) as `pid`.
    pub fn attach(base: &str, pid: u32) -> Target {
        Target {
            base: base.trim_end_matches('/').to_owned(),
            pid,
            child: None,
            _dir: None,
        }
    }

    /// `ws://host:port/v1/ws`.
    pub fn ws_url(&self) -> String {
        crate::net::ws_url(&self.base)
    }

    /// The server's memory and CPU time now.
    pub fn sample(&self) -> anyhow::Result<Sample> {
        proc::sample(self.pid).with_context(|| format!("reading /proc/{}", self.pid))
    }

    /// Starts measuring the CPU the server and this process use.
    pub fn meter(&self) -> anyhow::Result<Meter> {
        Ok(Meter {
            server: self.sample()?,
            generator: proc::sample(std::process::id())?,
        })
    }
}

/// CPU readings of the server and the generator at the start of a run.
#[derive(Debug, Clone, Copy)]
pub struct Meter {
    server: Sample,
    generator: Sample,
}

/// What a run cost: CPU seconds of the server and of the generator, and
/// the server's memory at the end.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub server_cpu_s: f64,
    pub generator_cpu_s: f64,
    pub server_rss_bytes: u64,
}

impl Meter {
    /// The cost since the meter started.
    pub fn read(&self, target: &Target) -> anyhow::Result<Usage> {
        let server = target.sample()?;
        let generator = proc::sample(std::process::id())?;
        Ok(Usage {
            server_cpu_s: server.cpu.saturating_sub(self.server.cpu).as_secs_f64(),
            generator_cpu_s: generator
                .cpu
                .saturating_sub(self.generator.cpu)
                .as_secs_f64(),
            server_rss_bytes: server.rss_bytes,
        })
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
