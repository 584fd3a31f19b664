//! `resume`: every subscriber drops at once and resumes from its offset.
//!
//! Subscribers follow table `resume` (no filter) while writers insert at a
//! fixed rate (open loop, in batches: the `tables` writer). After
//! `--before` seconds every subscriber's socket is dropped at the same
//! moment, without a close handshake (what a network failure or a client
//! crash looks like); each reconnects at once and subscribes again `from`
//! the last offset it received (its `subscribed` offset if none), and the
//! server replays what it missed, then says `subscribed`, then goes live.
//! Writers keep writing for `--after` seconds more. A subscriber whose
//! connection ends on its own (a slow consumer, say) resumes the same way;
//! those are counted apart.
//!
//! - `reconnect_s`: from the drop until every subscriber is subscribed
//!   again: connected, its history replayed, live.
//! - `recover_s`: from the drop until every subscriber holds every
//!   document acknowledged before the drop, counted as the documents of
//!   each writer received without a gap. The replay comes before
//!   `subscribed`, so it is at most `reconnect_s`; a subscriber that
//!   already held them all counts as recovered at the drop.
//! - Over the whole run, every subscriber must have received every
//!   acknowledged document once, in order per writer.

use super::subscriber::{subscribe, wait_for};
use super::tables::Incoming;
use super::writer::{MAX_BATCH, Pace, Writer, Written, http_client, run_id};
use crate::Common;
use crate::net::{self, Sources, Ws};
use crate::progress::{Counters, Progress};
use crate::report::Report;
use crate::stats::{Integrity, Latency, Sequences};
use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde_json::json;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// The table written and followed.
const TABLE: &str = "resume";
/// Bytes of each document.
const PAYLOAD: usize = 200;
/// Attempts to reconnect one subscriber before the run fails.
const CONNECT_ATTEMPTS: u32 = 20;
/// How long to wait for subscribers once nothing changes any more.
const PATIENCE: Duration = Duration::from_secs(5);

/// `herald bench resume`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ResumeArgs {
    /// Subscribing connections (one subscription each, to every document).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Writers, each one request at a time.
    #[arg(long, default_value_t = 4)]
    pub writers: usize,
    /// Documents per second, all writers together (open loop).
    #[arg(long, default_value_t = 2000.0)]
    pub rate: f64,
    /// Documents per write request (`POST /v1/batch`; 1: a plain insert).
    #[arg(long, default_value_t = 10)]
    pub batch: usize,
    /// Seconds of writing before the drop.
    #[arg(long, default_value_t = 3.0)]
    pub before: f64,
    /// Seconds of writing after the drop.
    #[arg(long, default_value_t = 3.0)]
    pub after: f64,
}

/// The drop, as subscribers learn of it.
#[derive(Debug)]
struct Outage {
    at: Instant,
    /// Per writer: documents `0..n` were acknowledged before the drop.
    acked: Vec<u64>,
}

/// How many subscribers are back, for the scenario to wait on.
#[derive(Debug, Default)]
struct Gauges {
    resubscribed: AtomicUsize,
    recovered: AtomicUsize,
}

pub async fn resume(common: &Common, args: ResumeArgs) -> anyhow::Result<Option<Report>> {
    if args.writers == 0 || args.rate <= 0.0 || args.before <= 0.0 || args.after < 0.0 {
        bail!("--writers, --rate and --before must be positive, --after at least 0");
    }
    if !(1..=MAX_BATCH).contains(&args.batch) {
        bail!("--batch must be 1 to {MAX_BATCH}");
    }
    let target = common.target()?;
    let server = net::server_addr(&target.base)?;
    let url: Arc<str> = target.ws_url().into();
    let sources = Sources::new(common.sources);
    let counters = Arc::new(Counters::default());
    let gauges = Arc::new(Gauges::default());

    let (outage_tx, outage_rx) = watch::channel(None::<Arc<Outage>>);
    let (stop, stopped) = watch::channel(false);
    let mut followers = Vec::with_capacity(args.subscribers);
    for i in 0..args.subscribers {
        let source = sources.nth(i);
        let (ws, offset) = subscribe(&url, server, source, json!({"table": TABLE})).await?;
        let place = Place {
            i,
            url: url.clone(),
            server,
            source,
        };
        followers.push(tokio::spawn(follow(
            place,
            ws,
            Seen::new(args.writers, offset),
            Signals {
                counters: counters.clone(),
                gauges: gauges.clone(),
                outage: outage_rx.clone(),
                stop: stopped.clone(),
            },
        )));
    }

    let http = http_client(args.writers)?;
    let run = run_id();
    let _progress = Progress::start("resume", counters.clone());
    let meter = target.meter()?;
    let started = Instant::now();
    let drop_at = started + Duration::from_secs_f64(args.before);
    let end = drop_at + Duration::from_secs_f64(args.after);
    let mut acked = Vec::with_capacity(args.writers);
    let mut writers = Vec::with_capacity(args.writers);
    for w in 0..args.writers {
        let writer = Writer::new(
            http.clone(),
            &target.base,
            TABLE,
            &run,
            w as u32,
            args.batch,
            100,
            PAYLOAD,
        );
        acked.push(writer.acked());
        let pace = Pace::open(started, args.rate, args.writers, args.batch, w);
        writers.push(tokio::spawn(writer.run(pace, end, counters.clone())));
    }

    tokio::time::sleep_until(drop_at.into()).await;
    let outage = Arc::new(Outage {
        at: Instant::now(),
        acked: acked.iter().map(|a| a.load(Ordering::Acquire)).collect(),
    });
    outage_tx.send_replace(Some(outage.clone()));
    wait_back(&gauges, &counters, args.subscribers).await;

    // Every acknowledged document, per writer: what each subscriber must hold.
    let mut expected: HashMap<u32, u64> = HashMap::new();
    let mut written = Written::default();
    for (w, task) in writers.into_iter().enumerate() {
        let w_written = task.await??;
        expected.insert(w as u32, w_written.docs);
        written.add(&w_written);
    }
    let expected_deliveries = written.docs * args.subscribers as u64;
    wait_for(&counters, expected_deliveries).await;
    let elapsed = started.elapsed();
    let usage = meter.read(&target)?;
    stop.send_replace(true);

    let mut latency = Latency::default();
    let mut integrity = Integrity::default();
    let (mut reconnect, mut recover) = (Some(Duration::ZERO), Some(Duration::ZERO));
    let (mut replayed, mut unplanned, mut retries) = (0, 0, 0);
    for follower in followers {
        let seen = follower.await??;
        latency.merge(&seen.latency);
        integrity.add(seen.sequences.integrity(&expected));
        let since_drop = |at: Option<Instant>| at.map(|at| at.saturating_duration_since(outage.at));
        reconnect = reconnect
            .zip(since_drop(seen.resubscribed))
            .map(|(a, b)| a.max(b));
        recover = recover
            .zip(since_drop(seen.recovered))
            .map(|(a, b)| a.max(b));
        replayed += seen.replayed;
        unplanned += seen.unplanned;
        retries += seen.retries;
    }
    let deliveries = integrity.received;
    let mut report = Report::new("resume", &args);
    report
        .add("docs_written", written.docs)
        .add("write_errors", written.errors)
        .add("acked_before_drop", outage.acked.iter().sum::<u64>())
        // null: some subscriber never got there.
        .add("reconnect_s", reconnect.map(|d| d.as_secs_f64()))
        .add("recover_s", recover.map(|d| d.as_secs_f64()))
        .add("replayed", replayed)
        .add("reconnect_retries", retries)
        .add("unplanned_reconnects", unplanned)
        .add("deliveries", deliveries)
        .add(
            "deliveries_per_s",
            deliveries as f64 / elapsed.as_secs_f64(),
        )
        .usage(&usage)
        .latency(&latency)
        .integrity(&integrity);
    Ok(Some(report))
}

/// Waits until every subscriber is resubscribed and recovered, or until
/// neither they nor deliveries move for [`PATIENCE`].
async fn wait_back(gauges: &Gauges, counters: &Counters, subscribers: usize) {
    let reading = || {
        (
            gauges.resubscribed.load(Ordering::Relaxed),
            gauges.recovered.load(Ordering::Relaxed),
            counters.received.load(Ordering::Relaxed),
        )
    };
    let mut last = (reading(), Instant::now());
    loop {
        let now = reading();
        if now.0 >= subscribers && now.1 >= subscribers {
            return;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > PATIENCE {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Where a subscriber connects from and to.
struct Place {
    i: usize,
    url: Arc<str>,
    server: SocketAddr,
    source: IpAddr,
}

/// What a subscriber shares with the scenario.
struct Signals {
    counters: Arc<Counters>,
    gauges: Arc<Gauges>,
    /// Set once, at the drop.
    outage: watch::Receiver<Option<Arc<Outage>>>,
    stop: watch::Receiver<bool>,
}

/// What one subscriber saw, over every connection it had.
struct Seen {
    latency: Latency,
    sequences: Sequences,
    /// The last offset received: where to resume.
    last: u64,
    /// Per writer: documents `0..n` received without a gap.
    prefix: Vec<u64>,
    /// The drop, once it happened.
    outage: Option<Arc<Outage>>,
    /// Documents acknowledged before the drop not held yet.
    missing: u64,
    /// Events received before `subscribed` (history) after reconnecting.
    replayed: u64,
    resubscribed: Option<Instant>,
    recovered: Option<Instant>,
    /// Reconnections after a connection ended on its own.
    unplanned: u64,
    /// Failed connection attempts.
    retries: u64,
}

impl Seen {
    fn new(writers: usize, offset: u64) -> Seen {
        Seen {
            latency: Latency::default(),
            sequences: Sequences::default(),
            last: offset,
            prefix: vec![0; writers],
            outage: None,
            missing: 0,
            replayed: 0,
            resubscribed: None,
            recovered: None,
            unplanned: 0,
            retries: 0,
        }
    }

    /// The drop: from now on, count down what it must get back.
    fn dropped(&mut self, outage: Arc<Outage>, gauges: &Gauges) {
        self.missing = outage
            .acked
            .iter()
            .zip(&self.prefix)
            .map(|(acked, held)| acked.saturating_sub(*held))
            .sum();
        if self.missing == 0 {
            self.recovered = Some(outage.at);
            gauges.recovered.fetch_add(1, Ordering::Relaxed);
        }
        self.outage = Some(outage);
    }

    /// Document `s` of writer `w`.
    fn document(&mut self, w: u32, s: u64, gauges: &Gauges) {
        self.sequences.record(w, s);
        let Some(held) = self.prefix.get_mut(w as usize) else {
            return;
        };
        if s != *held {
            return;
        }
        *held += 1;
        if let Some(outage) = &self.outage
            && self.missing > 0
            && s < outage.acked[w as usize]
        {
            self.missing -= 1;
            if self.missing == 0 {
                self.recovered = Some(Instant::now());
                gauges.recovered.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// One subscriber: follows, drops its socket at the drop, resumes.
async fn follow(
    place: Place,
    ws: Ws,
    mut seen: Seen,
    mut signals: Signals,
) -> anyhow::Result<Seen> {
    let mut ws = Some(ws);
    // Between a `subscribe` and its `subscribed`: events are history.
    let mut replaying = false;
    loop {
        let Some(socket) = ws.as_mut() else {
            ws = Some(resubscribe(&place, seen.last, &mut seen.retries).await?);
            replaying = true;
            continue;
        };
        let next = tokio::select! {
            next = socket.next() => next,
            changed = signals.outage.changed(), if seen.outage.is_none() => {
                let outage = signals.outage.borrow_and_update().clone();
                match (changed, outage) {
                    (Ok(()), Some(outage)) => {
                        // Dropping the socket aborts the connection.
                        ws = None;
                        seen.dropped(outage, &signals.gauges);
                    }
                    _ => break,
                }
                continue;
            }
            _ = signals.stop.wait_for(|stop| *stop) => break,
        };
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            _ => {
                seen.unplanned += 1;
                ws = None;
                continue;
            }
        };
        let received = net::now_ns();
        let Ok(message) = serde_json::from_str::<Incoming>(&text) else {
            continue;
        };
        match message.kind {
            "event" => {
                if let Some(offset) = message.offset {
                    seen.last = offset;
                }
                let Some(stamp) = message.doc else { continue };
                seen.latency
                    .record(Duration::from_nanos(received.saturating_sub(stamp.t)));
                seen.document(stamp.w, stamp.s, &signals.gauges);
                seen.replayed += u64::from(replaying);
                signals.counters.received(1);
            }
            "subscribed" => {
                replaying = false;
                // Nothing matched between the last event and this offset.
                if let Some(offset) = message.offset {
                    seen.last = seen.last.max(offset);
                }
                if seen.outage.is_some() && seen.resubscribed.is_none() {
                    seen.resubscribed = Some(Instant::now());
                    signals.gauges.resubscribed.fetch_add(1, Ordering::Relaxed);
                }
            }
            "error" => bail!("subscriber {}: the server answered {text}", place.i),
            _ => {}
        }
    }
    Ok(seen)
}

/// Connects again and subscribes from `from`; the history, `subscribed`
/// and live events follow on the socket returned.
async fn resubscribe(place: &Place, from: u64, retries: &mut u64) -> anyhow::Result<Ws> {
    let mut attempt = 0;
    let (mut ws, _) = loop {
        match net::connect(&place.url, place.server, place.source).await {
            Ok(connected) => break connected,
            Err(e) if attempt + 1 >= CONNECT_ATTEMPTS => {
                return Err(e).with_context(|| format!("reconnecting subscriber {}", place.i));
            }
            Err(_) => {
                attempt += 1;
                *retries += 1;
                tokio::time::sleep(Duration::from_millis(50) * attempt).await;
            }
        }
    };
    let request = json!({"type": "subscribe", "id": "s", "table": TABLE, "from": from});
    ws.send(Message::text(request.to_string())).await?;
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_counts_the_documents_acknowledged_before_the_drop() {
        let gauges = Gauges::default();
        let mut seen = Seen::new(2, 0);
        // Before the drop: writer 0's 0..3 and writer 1's 0..1 arrived.
        for (w, s) in [(0, 0), (0, 1), (1, 0), (0, 2)] {
            seen.document(w, s, &gauges);
        }
        let outage = Arc::new(Outage {
            at: Instant::now(),
            acked: vec![4, 3],
        });
        seen.dropped(outage, &gauges);
        assert_eq!(seen.missing, 3);
        // A later document does not stand in for a missing one.
        seen.document(1, 2, &gauges);
        seen.document(0, 3, &gauges);
        assert_eq!(seen.missing, 2, "writer 1's 1 and 2 are still owed");
        seen.document(1, 1, &gauges);
        assert!(seen.recovered.is_none());
        assert_eq!(gauges.recovered.load(Ordering::Relaxed), 0);

        let mut caught_up = Seen::new(1, 0);
        (0..5).for_each(|s| caught_up.document(0, s, &gauges));
        caught_up.dropped(
            Arc::new(Outage {
                at: Instant::now(),
                acked: vec![5],
            }),
            &gauges,
        );
        assert!(caught_up.recovered.is_some());
        assert_eq!(gauges.recovered.load(Ordering::Relaxed), 1);
    }
}
