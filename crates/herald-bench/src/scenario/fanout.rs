//! `fanout`: publishers → channels → subscribers, open loop.
//!
//! Each publisher has a schedule fixed in advance (its share of `--rate`,
//! evenly spaced) and stamps every message with its *scheduled* send time;
//! latency is measured from that time, so a server that stalls the
//! publishers cannot hide the stall (no coordinated omission). Message `k`
//! of publisher `p` goes to channel `(p + k) % channels`; every subscriber
//! checks, per (publisher, channel) stream, that numbers arrive once each
//! and in order, against the publishes the server acknowledged.

use super::publisher::{Stamp, publish};
use super::receivers::Helper;
use super::schedule::Schedule;
use super::subscriber::{Delivery, Seen, Totals, receive, subscribe, wait_for};
use crate::Common;
use crate::net::{self, Sources};
use crate::progress::{Counters, Progress};
use crate::report::Report;
use anyhow::bail;
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// `herald bench fanout`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct FanoutArgs {
    /// Publishing connections.
    #[arg(long, default_value_t = 4)]
    pub publishers: usize,
    /// Subscribing connections (one subscription each).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Channels; subscriber `i` follows channel `i % channels`.
    #[arg(long, default_value_t = 10)]
    pub channels: usize,
    /// Bytes of each message's `data` (at least ~60: the numbering).
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Messages per second, all publishers together.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of publishing.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Hold the subscribers in this many helper processes instead of this
    /// one (each process may hold at most 20,000 file descriptors here).
    #[arg(long, default_value_t = 1)]
    pub procs: usize,
}

/// The channel subscriber `i` follows.
pub(super) fn channel_of(i: usize, channels: usize) -> usize {
    i % channels
}

/// The messages subscriber `i` must receive: the acknowledged publishes of
/// every stream to its channel.
pub(super) fn expected_for(
    i: usize,
    channels: usize,
    acked: &HashMap<u32, u64>,
) -> HashMap<u32, u64> {
    let channel = channel_of(i, channels);
    acked
        .iter()
        .filter(|(q, _)| **q as usize % channels == channel)
        .map(|(q, n)| (*q, *n))
        .collect()
}

/// Subscribes subscribers `range` (each to its channel) and starts reading
/// each until `stop` is set; returns once all are subscribed.
pub(super) async fn open_subscribers(
    url: &str,
    server: SocketAddr,
    sources: &Sources,
    range: Range<usize>,
    channels: usize,
    counters: &Arc<Counters>,
    stop: &watch::Receiver<bool>,
) -> anyhow::Result<Vec<JoinHandle<Seen>>> {
    let mut readers = Vec::with_capacity(range.len());
    for i in range {
        let selection = json!({"channel": format!("bench:{}", channel_of(i, channels))});
        let (ws, _) = subscribe(url, server, sources.nth(i), selection).await?;
        let reader = receive(ws, delivery, counters.clone(), stop.clone());
        readers.push(tokio::spawn(reader));
    }
    Ok(readers)
}

/// The numbering of an `event` frame.
pub(super) fn delivery(frame: &str) -> Option<Delivery> {
    let stamp = Stamp::read(frame.strip_prefix(r#"{"type":"event""#)?)?;
    Some(Delivery {
        t: stamp.t,
        number: Some((stamp.q, stamp.s)),
    })
}

pub async fn fanout(common: &Common, args: FanoutArgs) -> anyhow::Result<Option<Report>> {
    if args.publishers == 0 || args.channels == 0 || args.rate <= 0.0 || args.procs == 0 {
        bail!("--publishers, --channels, --rate and --procs must be positive");
    }
    let target = common.target()?;
    let server = net::server_addr(&target.base)?;
    let url = target.ws_url();
    let sources = Sources::new(common.sources);
    let counters = Arc::new(Counters::default());

    // Subscribers first, each live before publishing starts: here, or in
    // helper processes.
    let (done, stop) = tokio::sync::watch::channel(false);
    let receivers = if args.procs == 1 {
        let all = 0..args.subscribers;
        let readers =
            open_subscribers(&url, server, &sources, all, args.channels, &counters, &stop).await?;
        Receivers::Here(readers)
    } else {
        let share = args.subscribers.div_ceil(args.procs);
        let mut helpers = Vec::with_capacity(args.procs);
        for first in (0..args.subscribers).step_by(share.max(1)) {
            let count = share.min(args.subscribers - first);
            let helper = Helper::start(
                &target.base,
                common.sources,
                args.channels,
                first,
                count,
                counters.clone(),
            )
            .await?;
            helpers.push(helper);
        }
        Receivers::Helpers(helpers)
    };
    let mut publishers = Vec::with_capacity(args.publishers);
    for p in 0..args.publishers {
        let (ws, _) = net::connect(&url, server, sources.nth(args.subscribers + p)).await?;
        publishers.push(ws);
    }

    let _progress = Progress::start("fanout", counters.clone());
    let meter = target.meter()?;
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(args.duration);
    let mut tasks = Vec::new();
    for (p, ws) in publishers.into_iter().enumerate() {
        let schedule = Schedule::share(started, args.rate, args.publishers, p);
        let (channels, payload, counters) = (args.channels, args.payload, counters.clone());
        tasks.push(tokio::spawn(async move {
            publisher(ws, p, channels, payload, schedule, end, &counters).await
        }));
    }
    // Acknowledged publishes per stream: what subscribers must receive.
    let mut acked: HashMap<u32, u64> = HashMap::new();
    let mut errors = 0;
    for task in tasks {
        let (streams, failed) = task.await??;
        errors += failed;
        for (q, n) in streams {
            *acked.entry(q).or_default() += n;
        }
    }
    let published: u64 = acked.values().sum();
    // Every subscriber gets every message of its channel: wait for that
    // many deliveries, or for progress to stop.
    let mut seen = Totals::default();
    let mut helpers_cpu = None;
    let (elapsed, usage) = match receivers {
        Receivers::Here(readers) => {
            let expected_deliveries: u64 = (0..args.subscribers)
                .map(|i| expected_for(i, args.channels, &acked).values().sum::<u64>())
                .sum();
            wait_for(&counters, expected_deliveries).await;
            let (elapsed, usage) = (started.elapsed(), meter.read(&target)?);
            let _ = done.send(true);
            for (i, reader) in readers.into_iter().enumerate() {
                seen.add(&reader.await?, &expected_for(i, args.channels, &acked));
            }
            (elapsed, usage)
        }
        Receivers::Helpers(mut helpers) => {
            // Each helper waits for its own subscribers' deliveries; the
            // figures are read while they are all still connected.
            let catching_up = helpers.iter_mut().map(|h| h.catch_up(&acked));
            futures_util::future::try_join_all(catching_up).await?;
            let (elapsed, mut usage) = (started.elapsed(), meter.read(&target)?);
            let finishing = helpers.into_iter().map(Helper::finish);
            let mut helpers_cpu_s = 0.0;
            for (t, cpu_s) in futures_util::future::try_join_all(finishing).await? {
                seen.merge(t);
                helpers_cpu_s += cpu_s;
            }
            usage.generator_cpu_s += helpers_cpu_s;
            helpers_cpu = Some(helpers_cpu_s);
            (elapsed, usage)
        }
    };
    let deliveries = seen.integrity.received;
    let mut report = Report::new("fanout", &args);
    report
        .add("published", published)
        .add("publish_errors", errors)
        .add("publish_rate", published as f64 / args.duration)
        .deliveries(deliveries, elapsed, &usage)
        .usage(&usage)
        .latency(&seen.latency)
        .integrity(&seen.integrity);
    if let Some(cpu_s) = helpers_cpu {
        // Included in generator_cpu_s.
        report.add("helpers_cpu_s", cpu_s);
    }
    Ok(Some(report))
}

/// Where the subscribers are read.
enum Receivers {
    /// In this process: one task each.
    Here(Vec<tokio::task::JoinHandle<Seen>>),
    /// In helper processes.
    Helpers(Vec<Helper>),
}

/// One publisher: message `k` goes to channel `(p + k) % channels`.
/// Acknowledged publishes per stream, and refused ones.
async fn publisher(
    ws: net::Ws,
    p: usize,
    channels: usize,
    payload: usize,
    schedule: Schedule,
    end: Instant,
    counters: &Counters,
) -> anyhow::Result<(HashMap<u32, u64>, u64)> {
    let pad = Stamp::pad(payload);
    let mut seqs: HashMap<u32, u64> = HashMap::new();
    let message = |k, t| {
        let q = stream_of(p, k, channels);
        let s = seqs.entry(q).or_default();
        let stamp = Stamp { q, s: *s, t };
        *s += 1;
        json!({
            "type": "publish",
            "channel": format!("bench:{}", q as usize % channels),
            "data": stamp.data(&pad),
        })
        .to_string()
    };
    let (mut acked, mut errors) = (HashMap::<u32, u64>::new(), 0u64);
    let answered = |k, answer: Result<&Value, &Value>| match answer {
        Ok(_) => *acked.entry(stream_of(p, k, channels)).or_default() += 1,
        Err(_) => errors += 1,
    };
    publish(ws, schedule, end, "published", message, answered, counters).await?;
    Ok((acked, errors))
}

/// The stream of publisher `p`'s message `k`: publisher × channels + channel.
fn stream_of(p: usize, k: u64, channels: usize) -> u32 {
    let channel = (p as u64 + k) % channels as u64;
    (p * channels) as u32 + channel as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deliveries_are_read_from_event_frames_only() {
        let frame = r#"{"type":"event","subs":["s"],"offset":9,"epoch":"e","ts":1,"topic":"bench:0","op":"publish","channel":"bench:0","data":{"q":3,"s":7,"t":42,"pad":"xx"}}"#;
        let d = delivery(frame).unwrap();
        assert_eq!((d.t, d.number), (42, Some((3, 7))));
        assert!(delivery(r#"{"type":"pong","data":{"q":1,"s":1,"t":1}}"#).is_none());
    }

    #[test]
    fn streams_cycle_channels_and_identify_publishers() {
        let streams: Vec<u32> = (0..4).map(|k| stream_of(2, k, 3)).collect();
        // Publisher 2 of 3 channels: channels 2, 0, 1, 2.
        assert_eq!(streams, [8, 6, 7, 8]);
        assert!(streams.iter().all(|q| *q / 3 == 2));
        assert_eq!(
            streams.iter().map(|q| q % 3).collect::<Vec<_>>(),
            [2, 0, 1, 2]
        );
    }
}
