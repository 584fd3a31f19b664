//! Each scenario, run briefly through the library against a real server
//! started in this process (`herald_server::App` on port 0): the reports
//! must show every message delivered once and in order.
//!
//! A scenario normally starts `herald serve` from its own executable,
//! which in a test is the test binary, so the tests attach to the
//! in-process server with `--url`/`--pid` instead; the `/proc` figures then
//! measure this process, which is fine for a smoke test. What spawns
//! helper processes (`connections`, `fanout --procs`) is not run here:
//! helpers are started from the current executable, and the test binary is
//! not `herald`; `tests/bench_cli.rs` at the workspace root runs those with
//! the real binary.
//!
//! Counts are small and nothing is asserted about timing: the machine may
//! be busy.

use herald_bench::{
    BenchArgs, Common, FanoutArgs, Report, ResumeArgs, RoomsArgs, Scenario, TablesArgs,
};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A server in this process.
struct Server {
    base: String,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let herald = herald_core::Herald::open(dir.path()).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let app = herald_server::App::new(herald, Default::default(), Default::default())
            .expect("a server over a fresh store");
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async move {
            let _ = signal.await;
        }));
        Server {
            base,
            shutdown,
            task,
            _dir: dir,
        }
    }

    /// The options that point a scenario at this server.
    fn common(&self) -> Common {
        Common {
            url: Some(self.base.clone()),
            pid: Some(std::process::id()),
            server_env: Vec::new(),
            sources: 1,
            out: None,
            runs: 1,
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(());
        tokio::time::timeout(Duration::from_secs(20), self.task)
            .await
            .expect("the server stops in time")
            .expect("the server task did not panic")
            .expect("serve returned Ok");
    }
}

/// A whole-number figure of `report`.
fn count(report: &Report, name: &str) -> u64 {
    report
        .get(name)
        .and_then(|v| v.as_u64())
        .unwrap_or_else(|| panic!("no count {name} in\n{}", report.table()))
}

/// A figure of `report`, as a float.
fn figure(report: &Report, name: &str) -> f64 {
    report
        .get(name)
        .and_then(|v| v.as_f64())
        .unwrap_or_else(|| panic!("no figure {name} in\n{}", report.table()))
}

/// No loss, duplicate or reordering; latencies measured.
fn assert_clean(report: &Report) {
    let table = report.table();
    for name in ["lost", "duplicates", "reordered"] {
        assert_eq!(count(report, name), 0, "{name}:\n{table}");
    }
    assert!(figure(report, "latency_p50_ms") > 0.0, "{table}");
    assert!(
        figure(report, "latency_max_ms") >= figure(report, "latency_p99_ms"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_publish_to_each_subscriber_of_its_channel() {
    let server = Server::start().await;
    let args = FanoutArgs {
        publishers: 2,
        subscribers: 6,
        channels: 3,
        payload: 100,
        rate: 100.0,
        duration: 1.0,
        procs: 1,
    };
    let report = herald_bench::fanout(&server.common(), args)
        .await
        .unwrap()
        .unwrap();
    let table = report.table();
    let published = count(&report, "published");
    assert!(published > 0, "{table}");
    assert_eq!(count(&report, "publish_errors"), 0, "{table}");
    // Two subscribers per channel.
    assert_eq!(count(&report, "deliveries"), published * 2, "{table}");
    assert_clean(&report);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_repeat_a_scenario_and_report_each_figures_spread() {
    let server = Server::start().await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("runs.json");
    let args = BenchArgs {
        scenario: Scenario::Fanout(FanoutArgs {
            publishers: 1,
            subscribers: 2,
            channels: 1,
            payload: 100,
            rate: 50.0,
            duration: 0.5,
            procs: 1,
        }),
        common: Common {
            runs: 3,
            out: Some(out.clone()),
            ..server.common()
        },
    };
    // `run` drives its own runtime: off this one's threads.
    tokio::task::spawn_blocking(move || herald_bench::run(args))
        .await
        .unwrap()
        .unwrap();
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let runs = doc["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3, "{doc}");
    for run in runs {
        let published = run["published"].as_u64().unwrap();
        assert!(published > 0, "{doc}");
        assert_eq!(run["deliveries"].as_u64(), Some(published * 2), "{doc}");
        assert_eq!(run["lost"], 0, "{doc}");
    }
    // The spread is taken over exactly these runs.
    let delivered: Vec<f64> = runs
        .iter()
        .map(|r| r["deliveries"].as_f64().unwrap())
        .collect();
    let spread = &doc["spread"]["deliveries"];
    let max = delivered.iter().copied().fold(f64::MIN, f64::max);
    let min = delivered.iter().copied().fold(f64::MAX, f64::min);
    assert_eq!(spread["max"].as_f64(), Some(max), "{doc}");
    assert_eq!(spread["min"].as_f64(), Some(min), "{doc}");
    assert_eq!(doc["scenario"], "fanout");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_broadcasts_reach_every_connection_once_even_in_two_rooms() {
    let server = Server::start().await;
    // 3 rooms of 4: 12 connections, 2 of each room also in the next one.
    let args = RoomsArgs {
        rooms: 3,
        members: 4,
        overlap: 2,
        publishers: 2,
        payload: 100,
        rate: 20.0,
        duration: 1.0,
    };
    let report = herald_bench::rooms(&server.common(), args)
        .await
        .unwrap()
        .unwrap();
    let table = report.table();
    let broadcasts = count(&report, "broadcasts");
    // 2 publishers × 10 each, all acknowledged.
    assert_eq!(broadcasts, 20, "{table}");
    assert_eq!(count(&report, "broadcast_errors"), 0, "{table}");
    assert_eq!(count(&report, "broadcasts_unanswered"), 0, "{table}");
    assert_eq!(count(&report, "memberships"), 18, "{table}");
    // The server counted each connection once, and each got one copy.
    assert_eq!(count(&report, "receivers_min"), 12, "{table}");
    assert_eq!(count(&report, "receivers_max"), 12, "{table}");
    assert_eq!(count(&report, "deliveries"), broadcasts * 12, "{table}");
    assert_eq!(count(&report, "misaddressed"), 0, "{table}");
    assert_eq!(count(&report, "members_disconnected"), 0, "{table}");
    assert_clean(&report);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_batches_reach_filtered_subscribers() {
    let server = Server::start().await;
    // Batches of 100 keep every writer's count a multiple of 100, so
    // exactly a tenth of the documents pass a 10 % filter.
    let args = TablesArgs {
        writers: 2,
        batch: 100,
        subscribers: 3,
        selectivity: 10,
        payload: 200,
        duration: 1.0,
        rate: 0.0,
    };
    let report = herald_bench::tables(&server.common(), args)
        .await
        .unwrap()
        .unwrap();
    let table = report.table();
    let written = count(&report, "docs_written");
    assert!(written > 0 && written.is_multiple_of(100), "{table}");
    assert_eq!(count(&report, "write_errors"), 0, "{table}");
    assert_eq!(count(&report, "deliveries"), written / 10 * 3, "{table}");
    assert_eq!(count(&report, "outside_filter"), 0, "{table}");
    assert_eq!(count(&report, "subscribers_disconnected"), 0, "{table}");
    assert!(figure(&report, "durable_writes_per_s") > 0.0, "{table}");
    assert_clean(&report);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tables_single_inserts_on_a_schedule_reach_every_subscriber() {
    let server = Server::start().await;
    let args = TablesArgs {
        writers: 2,
        batch: 1,
        subscribers: 2,
        selectivity: 100,
        payload: 150,
        duration: 1.0,
        rate: 100.0,
    };
    let report = herald_bench::tables(&server.common(), args)
        .await
        .unwrap()
        .unwrap();
    let table = report.table();
    let written = count(&report, "docs_written");
    assert!(written > 0, "{table}");
    assert_eq!(count(&report, "write_errors"), 0, "{table}");
    assert_eq!(count(&report, "deliveries"), written * 2, "{table}");
    assert_clean(&report);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_everyone_drops_misses_nothing() {
    let server = Server::start().await;
    let args = ResumeArgs {
        subscribers: 10,
        writers: 2,
        rate: 100.0,
        batch: 5,
        before: 1.0,
        after: 1.0,
    };
    let report = herald_bench::resume(&server.common(), args)
        .await
        .unwrap()
        .unwrap();
    let table = report.table();
    let written = count(&report, "docs_written");
    assert!(count(&report, "acked_before_drop") > 0, "{table}");
    assert!(written > count(&report, "acked_before_drop"), "{table}");
    assert_eq!(count(&report, "write_errors"), 0, "{table}");
    assert_eq!(count(&report, "deliveries"), written * 10, "{table}");
    assert_eq!(count(&report, "unplanned_reconnects"), 0, "{table}");
    // Everyone came back; the replay precedes `subscribed`, so recovery
    // never comes after resubscription.
    let reconnect = figure(&report, "reconnect_s");
    assert!(reconnect > 0.0, "{table}");
    assert!(figure(&report, "recover_s") <= reconnect, "{table}");
    assert_clean(&report);
    server.stop().await;
}
