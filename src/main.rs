//! `herald`: the command-line front door. Glue only: parse flags, load the
//! configuration, start tracing, and hand over to `herald-server`.

mod apikey;
mod cli;
mod settings;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command, ServeArgs};
use std::process::ExitCode;

// Documents are built on request threads and freed on the committer thread;
// glibc's allocator spends a large share of the committer's time on such
// cross-thread frees (measured: ~40% of its samples). mimalloc does not.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Serve(args) => serve(args),
        Command::Apikey(command) => apikey::run(command),
        Command::Bench(args) => herald_bench::run(args),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // The cause chain on one line; no backtrace: this is for users.
            eprintln!("herald: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            // The storage engine's own info lines (file ingestion, ...) are
            // noise for operators; RUST_LOG=lsm_tree=info brings them back.
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,fjall=warn,lsm_tree=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = settings::load(
        args.config.as_deref(),
        args.listen,
        args.data_dir.as_deref(),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let herald = herald_core::Herald::open_with(&config.data_dir, config.store.clone())
            .with_context(|| format!("opening the data directory {}", config.data_dir.display()))?;
        // Security first: a server that must not start (no authentication
        // on a public address, a bad key or rule) never binds its port.
        let app = herald_server::App::from_config(herald, &config)
            .map_err(|e| anyhow::anyhow!("invalid configuration: {e}"))?;
        let listener =
            bind(config.listen).with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr()?;
        // Register the signal handlers before announcing readiness: a SIGTERM
        // sent right after the ready line must shut down cleanly, not kill.
        let shutdown = shutdown_signal()?;
        tracing::info!(%addr, data_dir = %config.data_dir.display(), "herald serving");
        // One plain line on stdout, for scripts and tests that start us on port 0.
        println!("herald listening on http://{addr}");
        app.serve(listener, shutdown).await?;
        tracing::info!("herald stopped cleanly");
        Ok(())
    })
}

/// Longest accept queue asked for; the kernel caps it at
/// `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds `addr` with a long accept queue. When every client of a restarted
/// server reconnects at once, connections beyond a short queue (the runtime's
/// default) are dropped and the kernel retries them only after a second; a
/// `herald bench resume` of 500 clients measured 1.1–1.3 s to reconnect for
/// that reason alone.
fn bind(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Registers SIGINT and SIGTERM handlers now; the returned future resolves
/// on the first of them.
#[cfg(unix)]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => tracing::info!("SIGINT received; shutting down"),
            _ = terminate.recv() => tracing::info!("SIGTERM received; shutting down"),
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C received; shutting down");
    })
}
