//! Server memory per idle WebSocket connection.
//!
//! Starts the release `herald` binary (build it first: `cargo build
//! --release`) over a temporary data directory, opens idle WebSocket
//! connections in steps from this process, and reads the server's resident
//! set size (`VmRSS` in /proc) after each step. The slope of a least-squares
//! line through those points is the memory one more connection costs.
//!
//! ```text
//! cargo build --release
//! cargo run --release --example idle_connections -- 10000 5
//! ```
//! Arguments: total connections (default 10000), steps (default 5). Each
//! connection subscribes to nothing; it reads its `welcome` and stays open.

use futures_util::StreamExt;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let mut args = std::env::args().skip(1);
    let total: usize = args.next().map_or(10_000, |a| a.parse().expect("a count"));
    let steps: usize = args.next().map_or(5, |a| a.parse().expect("a step count"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("temp dir");
    let (mut server, addr) = start_server(dir.path());
    let pid = server.id();
    let points = runtime.block_on(measure(&addr, pid, total, steps));
    let _ = server.kill();
    let _ = server.wait();

    println!("connections  server RSS (KiB)");
    for (n, rss) in &points {
        println!("{n:>11}  {:>16.0}", rss / 1024.0);
    }
    let slope = least_squares_slope(&points);
    println!(
        "RSS per idle WebSocket connection: {:.0} bytes ({:.2} KiB)",
        slope,
        slope / 1024.0
    );
}

fn start_server(dir: &std::path::Path) -> (Child, String) {
    let binary = std::env::current_exe()
        .expect("own path")
        .parent()
        .and_then(|examples| examples.parent())
        .map(|release| release.join("herald"))
        .expect("target directory");
    let mut child = Command::new(&binary)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .env("HERALD_REALTIME__MAX_CONNECTIONS", "19000")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "starting {}: {e} (run `cargo build --release` first)",
                binary.display()
            )
        });
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("readiness line");
    let addr = line
        .trim()
        .strip_prefix("herald listening on http://")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, addr)
}

async fn measure(addr: &str, pid: u32, total: usize, steps: usize) -> Vec<(usize, f64)> {
    let url = format!("ws://{addr}/v1/ws");
    let mut held = Vec::with_capacity(total);
    let mut points = vec![(0, settled_rss(pid).await)];
    let per_step = total / steps.max(1);
    let started = Instant::now();
    for _ in 0..steps {
        for _ in 0..per_step {
            let (mut ws, _) = tokio_tungstenite::connect_async(&url)
                .await
                .expect("connect");
            let welcome = ws.next().await.expect("welcome").expect("no error");
            assert!(welcome.is_text());
            held.push(ws);
        }
        points.push((held.len(), settled_rss(pid).await));
    }
    eprintln!(
        "opened {} connections in {:.1?}",
        held.len(),
        started.elapsed()
    );
    points
}

/// The server's RSS once it has settled (allocator caches, lazy pages).
async fn settled_rss(pid: u32) -> f64 {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS");
    kib * 1024.0
}

fn least_squares_slope(points: &[(usize, f64)]) -> f64 {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0 as f64).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let (mut num, mut den) = (0.0, 0.0);
    for &(x, y) in points {
        num += (x as f64 - mean_x) * (y - mean_y);
        den += (x as f64 - mean_x).powi(2);
    }
    num / den
}
