//! `fanout`: publishers → channels → subscribers, open loop.
//!
//! Each publisher has a schedule fixed in advance (its share of `--rate`,
//! evenly spaced) and stamps every message with its *scheduled* send time;
//! latency is measured from that time, so a server that stalls the
//! publishers cannot hide the stall (no coordinated omission). Message `k`
//! of publisher `p` goes to channel `(p + k) % channels`; every subscriber
//! checks, per (publisher, channel) stream, that numbers arrive once each
//! and in order, against the publishes the server acknowledged.

use super::subscriber::{subscribe, wait_for};
use crate::Common;
use crate::net::{self, Sources, Ws};
use crate::progress::{Counters, Progress};
use crate::report::Report;
use crate::stats::{Integrity, Latency, Sequences};
use anyhow::bail;
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

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
}

/// The numbering inside each message's `data`.
#[derive(Debug, Serialize, Deserialize)]
struct Stamp {
    /// Stream: publisher × channels + channel.
    q: u32,
    /// Number within the stream.
    s: u64,
    /// Scheduled send time, ns since the epoch.
    t: u64,
}

/// The numbering of an `event` frame, read without parsing the rest of
/// the envelope: the generator parses every delivery, and shares the
/// server's cores, so what it skips the server gets.
fn stamp(text: &str) -> Option<Stamp> {
    let rest = text.strip_prefix(r#"{"type":"event""#)?;
    let at = rest.find(r#""data":"#)? + r#""data":"#.len();
    let mut data = serde_json::Deserializer::from_str(&rest[at..]);
    Stamp::deserialize(&mut data).ok()
}

/// What one subscriber saw.
#[derive(Default)]
struct Seen {
    latency: Latency,
    sequences: Sequences,
}

pub async fn fanout(common: &Common, args: FanoutArgs) -> anyhow::Result<Option<Report>> {
    if args.publishers == 0 || args.channels == 0 || args.rate <= 0.0 {
        bail!("--publishers, --channels and --rate must be positive");
    }
    let target = common.target()?;
    let server = net::server_addr(&target.base)?;
    let url = target.ws_url();
    let sources = Sources::new(common.sources);
    let counters = Arc::new(Counters::default());

    // Subscribers first, each live before publishing starts.
    let mut subscribers = Vec::with_capacity(args.subscribers);
    for i in 0..args.subscribers {
        let channel = format!("bench:{}", i % args.channels);
        let selection = json!({"channel": channel});
        let (ws, _) = subscribe(&url, server, sources.nth(i), selection).await?;
        subscribers.push((i % args.channels, ws));
    }
    // A watch, not a notification: a reader busy with a message when the
    // run ends still sees it.
    let (done, stop) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for (_, ws) in subscribers {
        readers.push(tokio::spawn(subscribe_loop(
            ws,
            counters.clone(),
            stop.clone(),
        )));
    }
    let mut publishers = Vec::with_capacity(args.publishers);
    for p in 0..args.publishers {
        let (ws, _) = net::connect(&url, server, sources.nth(args.subscribers + p)).await?;
        publishers.push(ws);
    }

    let _progress = Progress::start("fanout", counters.clone());
    let meter = target.meter()?;
    let started = Instant::now();
    let duration = Duration::from_secs_f64(args.duration);
    let interval = Duration::from_secs_f64(args.publishers as f64 / args.rate);
    let mut tasks = Vec::new();
    for (p, ws) in publishers.into_iter().enumerate() {
        // Publishers' schedules are staggered across one interval.
        let offset = interval.mul_f64(p as f64 / args.publishers as f64);
        let (channels, payload, counters) = (args.channels, args.payload, counters.clone());
        tasks.push(tokio::spawn(publish_loop(
            ws,
            p,
            channels,
            payload,
            started + offset,
            interval,
            duration,
            counters,
        )));
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
    let expected_deliveries: u64 = (0..args.subscribers)
        .map(|i| {
            acked
                .iter()
                .filter(|(q, _)| **q as usize % args.channels == i % args.channels)
                .map(|(_, n)| n)
                .sum::<u64>()
        })
        .sum();
    wait_for(&counters, expected_deliveries).await;
    let elapsed = started.elapsed();
    let usage = meter.read(&target)?;
    let _ = done.send(true);

    let mut latency = Latency::default();
    let mut integrity = Integrity::default();
    for (i, reader) in readers.into_iter().enumerate() {
        let seen = reader.await?;
        latency.merge(&seen.latency);
        let channel = i % args.channels;
        let expected: HashMap<u32, u64> = acked
            .iter()
            .filter(|(q, _)| **q as usize % args.channels == channel)
            .map(|(q, n)| (*q, *n))
            .collect();
        integrity.add(seen.sequences.integrity(&expected));
    }
    let deliveries = integrity.received;
    let mut report = Report::new("fanout", &args);
    report
        .add("published", published)
        .add("publish_errors", errors)
        .add("publish_rate", published as f64 / args.duration)
        .add("deliveries", deliveries)
        .add(
            "deliveries_per_s",
            deliveries as f64 / elapsed.as_secs_f64(),
        )
        .add(
            "deliveries_per_server_cpu_s",
            deliveries as f64 / usage.server_cpu_s.max(1e-9),
        )
        .usage(&usage)
        .latency(&latency)
        .integrity(&integrity);
    Ok(Some(report))
}

async fn subscribe_loop(
    mut ws: Ws,
    counters: Arc<Counters>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    loop {
        let next = tokio::select! {
            next = ws.next() => next,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let Some(Ok(Message::Text(text))) = next else {
            if matches!(next, Some(Ok(_))) {
                continue;
            }
            break;
        };
        let received = net::now_ns();
        if let Some(stamp) = stamp(&text) {
            seen.latency
                .record(Duration::from_nanos(received.saturating_sub(stamp.t)));
            seen.sequences.record(stamp.q, stamp.s);
            counters.received(1);
        }
    }
    seen
}

/// One publisher: sends on schedule, counts acknowledgements per stream.
#[allow(clippy::too_many_arguments)]
async fn publish_loop(
    ws: Ws,
    p: usize,
    channels: usize,
    payload: usize,
    first: Instant,
    interval: Duration,
    duration: Duration,
    counters: Arc<Counters>,
) -> anyhow::Result<(HashMap<u32, u64>, u64)> {
    let (mut sink, mut stream) = ws.split();
    let finished = Arc::new(AtomicU64::new(u64::MAX));
    let finished_r = finished.clone();
    // Acknowledgements come back in order: the nth `published` is the nth
    // publish, so its stream is known from n. Stops once every publish is
    // answered, or when answers stop coming for 10 s.
    let acks = tokio::spawn(async move {
        let (mut acked, mut errors, mut n) = (HashMap::<u32, u64>::new(), 0u64, 0u64);
        let mut quiet_since = Instant::now();
        while n < finished_r.load(Ordering::Acquire) {
            let message =
                match tokio::time::timeout(Duration::from_millis(100), stream.next()).await {
                    Ok(Some(Ok(message))) => message,
                    Ok(_) => break,
                    Err(_) if quiet_since.elapsed() > Duration::from_secs(10) => break,
                    Err(_) => continue,
                };
            quiet_since = Instant::now();
            let Message::Text(text) = message else {
                continue;
            };
            let kind = serde_json::from_str::<serde_json::Value>(&text)
                .map(|m| m["type"].as_str().unwrap_or_default().to_owned())
                .unwrap_or_default();
            match kind.as_str() {
                "published" => {
                    *acked.entry(stream_of(p, n, channels)).or_default() += 1;
                    n += 1;
                }
                "error" => {
                    errors += 1;
                    n += 1;
                }
                _ => {}
            }
        }
        (acked, errors)
    });
    let pad = "x".repeat(payload.saturating_sub(60));
    let mut seqs: HashMap<u32, u64> = HashMap::new();
    let mut k: u64 = 0;
    loop {
        let due = first + interval.mul_f64(k as f64);
        if due > first + duration {
            break;
        }
        tokio::time::sleep_until(due.into()).await;
        let q = stream_of(p, k, channels);
        let s = seqs.entry(q).or_default();
        // The scheduled time, as wall-clock ns: latency counts from it.
        let t = net::now_ns().saturating_sub(due.elapsed().as_nanos() as u64);
        let message = json!({
            "type": "publish",
            "channel": format!("bench:{}", q as usize % channels),
            "data": {"q": q, "s": *s, "t": t, "pad": pad},
        });
        *s += 1;
        sink.send(Message::text(message.to_string())).await?;
        counters.sent(1);
        k += 1;
    }
    finished.store(k, Ordering::Release);
    let (acked, errors) = acks.await?;
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
    fn the_stamp_is_read_from_an_event_frame_only() {
        let frame = r#"{"type":"event","subs":["s"],"offset":9,"epoch":"e","ts":1,"topic":"bench:0","op":"publish","channel":"bench:0","data":{"q":3,"s":7,"t":42,"pad":"xx"}}"#;
        let s = stamp(frame).unwrap();
        assert_eq!((s.q, s.s, s.t), (3, 7, 42));
        assert!(stamp(r#"{"type":"pong","data":{"q":1,"s":1,"t":1}}"#).is_none());
        assert!(stamp(r#"{"type":"event","data":{"q":"x"}}"#).is_none());
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
