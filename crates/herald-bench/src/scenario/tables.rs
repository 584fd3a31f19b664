//! `tables`: REST writers → a table → subscribers with filters.
//!
//! Writers insert documents into table `bench` with `POST /v1/batch`
//! (`--batch` inserts a request; with 1, `POST /v1/tables/bench/docs`), one
//! request at a time each: an acknowledgement means the documents are
//! durable. Closed loop (`--rate 0`): the next request leaves as soon as
//! the last is acknowledged, and documents carry their send time. Open
//! loop: each writer's requests have times fixed in advance and documents
//! carry the scheduled time, so a writer held up by the server sends late
//! and the wait counts in the latency (no coordinated omission).
//!
//! Document `s` of writer `w` is `{"id", "w", "s", "g": s % 100, "q", "t",
//! "pad"}`. Every subscriber follows `g < --selectivity`, and `q` numbers
//! the documents of a writer that pass, 0, 1, 2..., so each subscriber
//! checks each writer's stream for loss, duplicates and order against the
//! documents acknowledged. A failed request is sent again with the same
//! documents until acknowledged (a batch is atomic: all of it was written,
//! or none), so acknowledged documents are numbered without gaps.
//!
//! The writer, the subscription and the latency lines are shared with
//! `resume`.

use super::subscriber::{Delivery, Totals, receive, subscribe, wait_for};
use super::writer::{MAX_BATCH, Pace, Writer, Written, http_client, run_id, selected};
use crate::Common;
use crate::net::{self, Sources};
use crate::progress::{Counters, Progress};
use crate::report::Report;
use anyhow::bail;
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The table written and followed.
pub(super) const TABLE: &str = "bench";

/// `herald bench tables`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct TablesArgs {
    /// Writers, each one request at a time (one HTTP client with keep-alive).
    #[arg(long, default_value_t = 8)]
    pub writers: usize,
    /// Documents per request: a `POST /v1/batch` of this many inserts (at
    /// most 1000); 1: `POST /v1/tables/bench/docs`.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Subscribing connections (one subscription each, same filter).
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Percent of the documents the subscribers' filter selects.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=100))]
    pub selectivity: u64,
    /// Bytes of each document as JSON (at least ~100: the numbering).
    #[arg(long, default_value_t = 200)]
    pub payload: usize,
    /// Seconds of writing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Documents per second, all writers together; 0: closed loop, as fast
    /// as acknowledgements come.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
}

pub async fn tables(common: &Common, args: TablesArgs) -> anyhow::Result<Option<Report>> {
    if args.writers == 0 || args.duration <= 0.0 || args.rate < 0.0 {
        bail!("--writers and --duration must be positive, --rate at least 0");
    }
    if !(1..=MAX_BATCH).contains(&args.batch) {
        bail!("--batch must be 1 to {MAX_BATCH}");
    }
    let target = common.target()?;
    let server = net::server_addr(&target.base)?;
    let url = target.ws_url();
    let sources = Sources::new(common.sources);
    let counters = Arc::new(Counters::default());

    // Subscribers first, each live before writing starts.
    let (stop, stopped) = watch::channel(false);
    let filter = json!({"g": {"$lt": args.selectivity}});
    let mut readers = Vec::with_capacity(args.subscribers);
    for i in 0..args.subscribers {
        let (ws, _) = subscribe(
            &url,
            server,
            sources.nth(i),
            json!({"table": TABLE, "filter": filter}),
        )
        .await?;
        readers.push(tokio::spawn(receive(
            ws,
            delivery,
            counters.clone(),
            stopped.clone(),
        )));
    }

    let http = http_client(args.writers)?;
    let run = run_id();
    let _progress = Progress::start("tables", counters.clone());
    let meter = target.meter()?;
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::with_capacity(args.writers);
    for w in 0..args.writers {
        let pace = if args.rate > 0.0 {
            Pace::open(started, args.rate, args.writers, args.batch, w)
        } else {
            Pace::Closed
        };
        let writer = Writer::new(
            http.clone(),
            &target.base,
            TABLE,
            &run,
            w as u32,
            args.batch,
            args.selectivity,
            args.payload,
        );
        tasks.push(tokio::spawn(writer.run(pace, end, counters.clone())));
    }
    // Acknowledged documents each subscriber must receive, per writer.
    let mut expected: HashMap<u32, u64> = HashMap::new();
    let mut written = Written::default();
    for (w, task) in tasks.into_iter().enumerate() {
        let w_written = task.await??;
        expected.insert(w as u32, selected(w_written.docs, args.selectivity));
        written.add(&w_written);
    }
    let writing = started.elapsed();
    let expected_deliveries = expected.values().sum::<u64>() * args.subscribers as u64;
    wait_for(&counters, expected_deliveries).await;
    let elapsed = started.elapsed();
    let usage = meter.read(&target)?;
    stop.send_replace(true);

    let mut seen = Totals::default();
    for reader in readers {
        seen.add(&reader.await?, &expected);
    }
    let deliveries = seen.integrity.received;
    let mut report = Report::new("tables", &args);
    report
        .add("docs_written", written.docs)
        .add("write_errors", written.errors)
        .add(
            "durable_writes_per_s",
            written.docs as f64 / writing.as_secs_f64(),
        )
        .add(
            "batches_per_s",
            written.batches as f64 / writing.as_secs_f64(),
        )
        .add("deliveries", deliveries)
        .add(
            "deliveries_per_s",
            deliveries as f64 / elapsed.as_secs_f64(),
        )
        .add(
            "writes_per_server_cpu_s",
            written.docs as f64 / usage.server_cpu_s.max(1e-9),
        )
        .usage(&usage)
        .latency(&seen.latency)
        .integrity(&seen.integrity)
        .add("outside_filter", seen.strays)
        .add("subscribers_disconnected", seen.disconnected);
    Ok(Some(report))
}

/// The numbering every bench document carries (its `pad` is skipped).
#[derive(Debug, Deserialize)]
pub(super) struct Stamp {
    /// Writer.
    pub(super) w: u32,
    /// Number among the writer's documents.
    pub(super) s: u64,
    /// Number among the writer's documents that pass the filter (absent
    /// on the others).
    pub(super) q: Option<u64>,
    /// Send time, ns since the epoch.
    pub(super) t: u64,
}

/// The part of a server message a subscriber reads.
#[derive(Debug, Deserialize)]
pub(super) struct Incoming<'a> {
    /// Borrowed: message types have nothing to unescape.
    #[serde(rename = "type")]
    pub(super) kind: &'a str,
    pub(super) offset: Option<u64>,
    pub(super) doc: Option<Stamp>,
}

/// The numbering of a document delivered in an `event`: a document
/// outside the filter has no `q`, and counts as a stray.
fn delivery(frame: &str) -> Option<Delivery> {
    match serde_json::from_str::<Incoming>(frame) {
        Ok(Incoming {
            kind: "event",
            doc: Some(stamp),
            ..
        }) => Some(Delivery {
            t: stamp.t,
            number: stamp.q.map(|q| (stamp.w, q)),
        }),
        _ => None,
    }
}
