//! `fanout`'s subscribers in helper processes (`--procs N`), so a run is
//! not bounded by one process's file descriptors (20,000 here).
//!
//! Each helper (`herald bench receivers`, hidden) subscribes its share of
//! the subscribers, answers `ready`, then reports `received <n>` (its
//! running total) every 200 ms on standard output. The end of a run takes
//! two steps, so that every figure is read while all subscribers are still
//! connected, as in an in-process run:
//!
//! 1. The coordinator writes the acknowledged publishes per stream on the
//!    helper's standard input; the helper waits for the deliveries that
//!    makes due and answers `caught_up`.
//! 2. Once every helper has, the coordinator reads the clock and the
//!    server, then writes `finish`; the helper checks its deliveries exactly
//!    as an in-process run would and answers `result <json>`: its latency
//!    histogram, sequence checks and CPU time up to `caught_up`.

use super::fanout::{expected_for, open_subscribers};
use super::helper;
use super::subscriber::{Totals, wait_for};
use crate::net::{self, Sources};
use crate::proc;
use crate::progress::Counters;
use crate::stats::{Integrity, Latency};
use anyhow::{Context, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::mpsc;

/// `herald bench receivers` (internal): holds fanout subscribers
/// `first..first + count`.
#[derive(Debug, Clone, Args)]
pub struct ReceiversArgs {
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub first: usize,
    #[arg(long)]
    pub count: usize,
    #[arg(long)]
    pub channels: usize,
    #[arg(long, default_value_t = 1)]
    pub sources: u8,
}

/// What a helper saw, as it reports it.
#[derive(Debug, Serialize, Deserialize)]
struct Report {
    /// The latency histogram ([`Latency::encode`]).
    latency: String,
    integrity: Integrity,
    strays: u64,
    disconnected: u64,
    /// CPU seconds the helper used from `ready` to its result: part of the
    /// generator's cost.
    cpu_s: f64,
}

impl Report {
    fn of(totals: &Totals, cpu_s: f64) -> Report {
        Report {
            latency: totals.latency.encode(),
            integrity: totals.integrity,
            strays: totals.strays,
            disconnected: totals.disconnected,
            cpu_s,
        }
    }

    fn into_totals(self) -> anyhow::Result<Totals> {
        Ok(Totals {
            latency: Latency::decode(&self.latency)?,
            integrity: self.integrity,
            strays: self.strays,
            disconnected: self.disconnected,
        })
    }
}

/// The helper process.
pub async fn receivers(args: ReceiversArgs) -> anyhow::Result<()> {
    let server = net::server_addr(&args.url)?;
    let sources = Sources::new(args.sources);
    let counters = Arc::new(Counters::default());
    let (done, stop) = tokio::sync::watch::channel(false);
    let mine = args.first..args.first + args.count;
    let readers = open_subscribers(
        &net::ws_url(&args.url),
        server,
        &sources,
        mine.clone(),
        args.channels,
        &counters,
        &stop,
    )
    .await?;
    let cpu_at_ready = proc::sample(std::process::id())?.cpu;
    let mut stdout = tokio::io::stdout();
    stdout.write_all(b"ready\n").await?;
    stdout.flush().await?;
    let (say, said) = mpsc::channel(2);
    let reporter = tokio::spawn(report(stdout, counters.clone(), said));

    let mut stdin = BufReader::new(tokio::io::stdin()).lines();
    let line = stdin
        .next_line()
        .await?
        .context("the coordinator closed before the run ended")?;
    let acked: HashMap<u32, u64> =
        serde_json::from_str(&line).context("the acknowledged publishes")?;
    let due: u64 = mine
        .clone()
        .map(|i| expected_for(i, args.channels, &acked).values().sum::<u64>())
        .sum();
    wait_for(&counters, due).await;
    let cpu = proc::sample(std::process::id())?
        .cpu
        .saturating_sub(cpu_at_ready);
    say.send("caught_up\n".to_owned()).await?;
    // `finish`, or the coordinator gone: either way the run is over.
    let _ = stdin.next_line().await;
    let _ = done.send(true);
    let mut totals = Totals::default();
    for (i, reader) in mine.zip(readers) {
        totals.add(&reader.await?, &expected_for(i, args.channels, &acked));
    }
    let report = Report::of(&totals, cpu.as_secs_f64());
    say.send(format!("result {}\n", serde_json::to_string(&report)?))
        .await?;
    drop(say);
    reporter.await?
}

/// Writes the running total every 200 ms and each line `said`, until the
/// sender is gone: the one writer of standard output, so no progress line
/// can cut into another.
async fn report(
    mut stdout: tokio::io::Stdout,
    counters: Arc<Counters>,
    mut said: mpsc::Receiver<String>,
) -> anyhow::Result<()> {
    loop {
        let line = tokio::select! {
            line = said.recv() => match line {
                Some(line) => line,
                None => return Ok(()),
            },
            () = tokio::time::sleep(Duration::from_millis(200)) => {
                format!("received {}\n", counters.received.load(Ordering::Relaxed))
            }
        };
        stdout.write_all(line.as_bytes()).await?;
        stdout.flush().await?;
    }
}

/// One helper, seen from the coordinator.
pub(super) struct Helper {
    child: Child,
    stdin: ChildStdin,
    /// Its lines other than progress (which go to the shared counters).
    lines: mpsc::Receiver<String>,
}

impl Helper {
    /// Starts a helper for subscribers `first..first + count`; returns once
    /// every one of them is subscribed.
    pub(super) async fn start(
        url: &str,
        sources: u8,
        channels: usize,
        first: usize,
        count: usize,
        counters: Arc<Counters>,
    ) -> anyhow::Result<Helper> {
        let (first, count) = (first.to_string(), count.to_string());
        let (channels, sources) = (channels.to_string(), sources.to_string());
        let mut child = helper::spawn(&[
            "receivers",
            "--url",
            url,
            "--first",
            &first,
            "--count",
            &count,
            "--channels",
            &channels,
            "--sources",
            &sources,
        ])?;
        let stdout = child.stdout.take().context("helper stdout")?;
        let stdin = child.stdin.take().context("helper stdin")?;
        let mut lines = BufReader::new(stdout).lines();
        match lines.next_line().await? {
            Some(line) if line == "ready" => {}
            other => bail!("a receivers helper failed to start: {other:?}"),
        }
        let (forward, lines_rx) = mpsc::channel(2);
        tokio::spawn(follow(lines, counters, forward));
        Ok(Helper {
            child,
            stdin,
            lines: lines_rx,
        })
    }

    /// Tells the helper what was acknowledged; returns once it has received
    /// what that makes due (or stopped waiting for it).
    pub(super) async fn catch_up(&mut self, acked: &HashMap<u32, u64>) -> anyhow::Result<()> {
        self.say(&serde_json::to_string(acked)?).await?;
        match self.next_line().await?.as_str() {
            "caught_up" => Ok(()),
            other => bail!("a receivers helper answered {other:?}, not caught_up"),
        }
    }

    /// Ends the helper's run; returns what it saw and the CPU seconds it
    /// used from `ready` to `caught_up`.
    pub(super) async fn finish(mut self) -> anyhow::Result<(Totals, f64)> {
        self.say("finish").await?;
        let last = self.next_line().await?;
        let _ = self.child.wait().await;
        let Some(result) = last.strip_prefix("result ") else {
            bail!("a receivers helper ended with {last:?}");
        };
        let report = serde_json::from_str::<Report>(result)?;
        let cpu_s = report.cpu_s;
        Ok((report.into_totals()?, cpu_s))
    }

    async fn say(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await?;
        Ok(self.stdin.flush().await?)
    }

    async fn next_line(&mut self) -> anyhow::Result<String> {
        self.lines
            .recv()
            .await
            .context("a receivers helper ended early")
    }
}

/// Adds a helper's progress to `counters` (its lines carry running totals)
/// and passes on its other lines, until it closes its output.
async fn follow(
    mut lines: Lines<BufReader<ChildStdout>>,
    counters: Arc<Counters>,
    forward: mpsc::Sender<String>,
) {
    let mut counted = 0u64;
    while let Ok(Some(line)) = lines.next_line().await {
        match line.strip_prefix("received ").map(str::parse::<u64>) {
            Some(Ok(total)) => {
                counters.received(total.saturating_sub(counted));
                counted = counted.max(total);
            }
            _ => {
                if forward.send(line).await.is_err() {
                    return;
                }
            }
        }
    }
}
