//! `herald bench`: Herald's load generator. It starts a server (or attaches
//! to one), drives a scenario over real WebSocket, SSE and HTTP
//! connections, checks every message it receives (loss, duplicates,
//! order) and reports throughput, latency percentiles, and the server's
//! memory and CPU time read from `/proc`.
//!
//! Scenarios: `connections` (idle connections: memory per connection and
//! time to connect), `fanout` (publishers → channels → subscribers, open
//! loop), `rooms` (broadcasts to many rooms of many members, one copy per
//! connection, open loop), `tables` (REST batch writers → filtered
//! subscribers) and `resume` (everyone drops at once and resumes). See
//! BENCHMARKS.md for the commands and results.
//!
//! # Layout
//! - [`stats`]: latency histograms, sequence checks, slope — the
//!   generator's arithmetic, unit-tested.
//! - [`proc`]: `/proc` readings (RSS, CPU time).
//! - [`target`]: the server under test.
//! - [`net`]: connections from several source addresses.
//! - [`report`]: the summary table and the JSON result.
//! - [`runs`]: several runs of a scenario and how far they spread.
//! - `progress`: the line printed every second.
//! - `scenario`: the scenarios, one module each, and what their clients
//!   share: an open-loop schedule, a WebSocket publisher, a receiver that
//!   times and checks deliveries, a REST writer.

pub mod net;
pub mod proc;
mod progress;
pub mod report;
pub mod runs;
mod scenario;
pub mod stats;
pub mod target;

pub use report::Report;
pub use scenario::{
    ConnectionsArgs, FanoutArgs, ReceiversArgs, ResumeArgs, RoomsArgs, TablesArgs, WorkerArgs,
    connections, fanout, receivers, resume, rooms, tables, worker,
};

use clap::{Args, Subcommand};
use std::path::PathBuf;
use target::Target;

/// `herald bench`'s options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub scenario: Scenario,
    #[command(flatten)]
    pub common: Common,
}

/// Options every scenario takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Test the server at this URL (http://IP:PORT) instead of starting one;
    /// give its process id with --pid for memory and CPU figures.
    #[arg(long, global = true, value_name = "URL", requires = "pid")]
    pub url: Option<String>,
    /// Process id of the server given with --url.
    #[arg(long, global = true, value_name = "PID")]
    pub pid: Option<u32>,
    /// A setting for the server this command starts, as HERALD_KEY=VALUE
    /// (repeatable), e.g. HERALD_STORE__DURABILITY=os.
    #[arg(long = "server-env", global = true, value_name = "KEY=VALUE")]
    pub server_env: Vec<String>,
    /// Spread client connections over this many source addresses
    /// (127.0.0.1, 127.0.0.2, ...); about 28k connections fit per address.
    #[arg(long, global = true, default_value_t = 1, value_name = "N")]
    pub sources: u8,
    /// Also write the result as JSON to this file.
    #[arg(long, global = true, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Run the scenario this many times (each against a fresh server,
    /// unless --url names one) and report each figure's median and spread.
    #[arg(long, global = true, default_value_t = 1, value_name = "N",
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub runs: u32,
}

impl Common {
    /// The server to test: started, or the one named.
    pub fn target(&self) -> anyhow::Result<Target> {
        match (&self.url, self.pid) {
            (Some(url), Some(pid)) => Ok(Target::attach(url, pid)),
            _ => {
                let env = self
                    .server_env
                    .iter()
                    .map(|kv| match kv.split_once('=') {
                        Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
                        None => anyhow::bail!("--server-env wants KEY=VALUE, got {kv:?}"),
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                Target::spawn(&env)
            }
        }
    }
}

/// The scenarios.
#[derive(Debug, Clone, Subcommand)]
pub enum Scenario {
    /// Idle connections: server memory per connection (the slope of its RSS
    /// over several counts) and the time to connect them all.
    Connections(ConnectionsArgs),
    /// Publishers send numbered messages at a fixed rate (open loop) to
    /// channels; subscribers check them and measure publish→receive latency.
    Fanout(FanoutArgs),
    /// Members join rooms (10 × 1,000 by default); publishers broadcast to
    /// all the rooms at a fixed rate (open loop); every connection must get
    /// each broadcast once, even in two targeted rooms: deliveries/s,
    /// broadcast→receive latency, the `receivers` the server answered.
    Rooms(RoomsArgs),
    /// Writers insert documents with REST batches; subscribers with filters
    /// of a chosen selectivity check them and measure write→receive latency.
    Tables(TablesArgs),
    /// Subscribers follow a stream of writes, all drop at once and resume
    /// from their positions: time to recover, and nothing missed.
    Resume(ResumeArgs),
    /// (Internal) a helper process holding connections for `connections`.
    #[command(hide = true)]
    Worker(WorkerArgs),
    /// (Internal) a helper process holding subscribers for `fanout --procs`.
    #[command(hide = true)]
    Receivers(ReceiversArgs),
}

/// Runs `herald bench`: the scenario (`--runs` times), then the table on
/// standard output and the JSON file if asked.
pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let _ = rlimit::increase_nofile_limit(u64::MAX);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let common = args.common;
    let runs = if matches!(args.scenario, Scenario::Worker(_) | Scenario::Receivers(_)) {
        1
    } else {
        common.runs
    };
    let mut reports = Vec::new();
    for n in 1..=runs {
        if runs > 1 {
            eprintln!("== run {n} of {runs}");
        }
        let scenario = args.scenario.clone();
        let report = runtime.block_on(run_once(&common, scenario))?;
        let Some(report) = report else {
            return Ok(());
        };
        print!("{}", report.table());
        reports.push(report);
    }
    if runs == 1 {
        if let (Some(path), Some(report)) = (&common.out, reports.first()) {
            report.write(path)?;
        }
        return Ok(());
    }
    let runs = runs::Runs { reports };
    print!("{}", runs.table());
    if let Some(path) = &common.out {
        runs.write(path)?;
    }
    Ok(())
}

async fn run_once(common: &Common, scenario: Scenario) -> anyhow::Result<Option<Report>> {
    match scenario {
        Scenario::Connections(a) => connections(common, a).await,
        Scenario::Fanout(a) => fanout(common, a).await,
        Scenario::Rooms(a) => rooms(common, a).await,
        Scenario::Tables(a) => tables(common, a).await,
        Scenario::Resume(a) => resume(common, a).await,
        Scenario::Worker(a) => worker(a).await.map(|()| None),
        Scenario::Receivers(a) => receivers(a).await.map(|()| None),
    }
}
