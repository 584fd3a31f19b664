//! `connections`: idle connections, and what each costs the server.
//!
//! The connections are opened in steps, each by its own helper process
//! (`herald bench worker`), so no process — this one included — holds
//! more than one step's sockets: a process may hold 20,000 file
//! descriptors here, and the server needs about that many alone. After
//! each step the server's RSS is read once it settles; the memory per
//! connection is the least-squares slope through those points.

use super::helper;
use crate::net::{self, Sources};
use crate::report::Report;
use crate::stats;
use crate::{Common, target::Target};
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use futures_util::StreamExt;
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpSocket;
use tokio::process::Child;

/// Which kind of connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// WebSocket (`/v1/ws`), each past its `welcome`.
    Ws,
    /// Server-Sent Events (`/v1/sse?channel=...`), each past `subscribed`.
    Sse,
}

/// `herald bench connections`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ConnectionsArgs {
    /// Connections in all.
    #[arg(long, default_value_t = 19_000)]
    pub connections: usize,
    /// Steps (one helper process each); the RSS is read after each.
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// WebSocket or SSE.
    #[arg(long, value_enum, default_value_t = Kind::Ws)]
    pub kind: Kind,
    /// Seconds to let the server settle before each reading.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
}

/// `herald bench worker` (internal): opens connections and holds them
/// until its standard input closes.
#[derive(Debug, Clone, Args)]
pub struct WorkerArgs {
    #[arg(long)]
    pub url: String,
    #[arg(long)]
    pub count: usize,
    #[arg(long, value_enum)]
    pub kind: Kind,
    /// Index of the first connection, for source-address rotation.
    #[arg(long, default_value_t = 0)]
    pub first: usize,
    #[arg(long, default_value_t = 1)]
    pub sources: u8,
}

pub async fn connections(common: &Common, args: ConnectionsArgs) -> anyhow::Result<Option<Report>> {
    let target = common.target()?;
    let settle = Duration::from_secs_f64(args.settle);
    let per_step = args.connections / args.steps.max(1);
    let mut points = vec![(0.0, settled_rss(&target, settle).await?)];
    let mut workers: Vec<Child> = Vec::new();
    let started = Instant::now();
    for step in 0..args.steps.max(1) {
        let worker =
            spawn_worker(&target, &args, common.sources, step * per_step, per_step).await?;
        workers.push(worker);
        let held = (step + 1) * per_step;
        eprintln!(
            "[{:>4.0}s] connections: {held} open",
            started.elapsed().as_secs_f64()
        );
        points.push((held as f64, settled_rss(&target, settle).await?));
    }
    let connect_time = started.elapsed().saturating_sub(settle * args.steps as u32);
    let slope = stats::slope(&points);
    let mut report = Report::new("connections", &args);
    report
        .add("connections", per_step * args.steps)
        .add("bytes_per_connection", slope.round())
        .add("kib_per_connection", slope / 1024.0)
        .add("connect_seconds", connect_time.as_secs_f64())
        .add(
            "rss_kib",
            points
                .iter()
                .map(|(n, rss)| (*n as u64, (rss / 1024.0).round() as u64))
                .collect::<Vec<_>>(),
        );
    // Closing their standard input ends the helpers.
    for mut worker in workers {
        drop(worker.stdin.take());
        let _ = worker.wait().await;
    }
    Ok(Some(report))
}

/// Starts a helper holding `count` connections; returns once they are open.
async fn spawn_worker(
    target: &Target,
    args: &ConnectionsArgs,
    sources: u8,
    first: usize,
    count: usize,
) -> anyhow::Result<Child> {
    let kind = match args.kind {
        Kind::Ws => "ws",
        Kind::Sse => "sse",
    };
    let (count_arg, first_arg, sources_arg) =
        (count.to_string(), first.to_string(), sources.to_string());
    let mut child = helper::spawn(&[
        "worker",
        "--url",
        &target.base,
        "--kind",
        kind,
        "--count",
        &count_arg,
        "--first",
        &first_arg,
        "--sources",
        &sources_arg,
    ])?;
    let stdout = child.stdout.take().context("worker stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).await?;
    if line.trim() != format!("opened {count}") {
        bail!("a worker failed: {line:?}");
    }
    Ok(child)
}

async fn settled_rss(target: &Target, settle: Duration) -> anyhow::Result<f64> {
    tokio::time::sleep(settle).await;
    Ok(target.sample()?.rss_bytes as f64)
}

/// The helper process: open, report, hold until stdin closes.
pub async fn worker(args: WorkerArgs) -> anyhow::Result<()> {
    let server = net::server_addr(&args.url)?;
    let sources = Sources::new(args.sources);
    let ws_url = net::ws_url(&args.url);
    // Each connection keeps being read, so pings are answered (an unread
    // WebSocket is closed by the server's heartbeat) and nothing backs up.
    for n in args.first..args.first + args.count {
        let source = sources.nth(n);
        match args.kind {
            Kind::Ws => {
                let (mut ws, _) = net::connect(&ws_url, server, source).await?;
                tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
            }
            Kind::Sse => {
                let mut stream = open_sse(server, source, n).await?;
                tokio::spawn(async move {
                    let mut buf = [0u8; 256];
                    while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
                });
            }
        }
    }
    let mut stdout = tokio::io::stdout();
    stdout
        .write_all(format!("opened {}\n", args.count).as_bytes())
        .await?;
    stdout.flush().await?;
    let mut sink = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut sink).await;
    Ok(())
}

/// An SSE stream to channel `bench:idle:<n>`, past its `subscribed` event.
async fn open_sse(
    server: std::net::SocketAddr,
    source: std::net::IpAddr,
    n: usize,
) -> anyhow::Result<tokio::net::TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(source, 0))?;
    let mut stream = socket.connect(server).await?;
    let request = format!(
        "GET /v1/sse?channel=bench:idle:{n} HTTP/1.1\r\nHost: {server}\r\nAccept: text/event-stream\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&seen).contains("event: subscribed") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            bail!("the SSE stream ended: {}", String::from_utf8_lossy(&seen));
        }
        seen.extend_from_slice(&buf[..n]);
    }
    Ok(stream)
}
