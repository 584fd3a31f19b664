//! What every scenario's receivers do: subscribe or join rooms, wait for
//! the answer, read and check deliveries, and wait for the deliveries a
//! run should bring.

use crate::net::{self, Ws};
use crate::progress::Counters;
use crate::stats::{Integrity, Latency, Sequences};
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

/// Connects from `source` and subscribes (id `s`) with `selection` — the
/// `table` or `channel` and any other fields of a `subscribe` message;
/// returns once `subscribed`, with its offset.
pub(super) async fn subscribe(
    url: &str,
    server: SocketAddr,
    source: IpAddr,
    selection: Value,
) -> anyhow::Result<(Ws, u64)> {
    let (mut ws, _) = net::connect(url, server, source).await?;
    let mut request = json!({"type": "subscribe", "id": "s"});
    if let (Some(request), Value::Object(selection)) = (request.as_object_mut(), selection) {
        request.extend(selection);
    }
    ws.send(Message::text(request.to_string())).await?;
    let subscribed = expect_kind(&mut ws, "subscribed").await?;
    let offset = subscribed["offset"].as_u64().unwrap_or(0);
    Ok((ws, offset))
}

/// Connects from `source` and joins `rooms`, one after another; returns
/// once each join is answered `joined`.
pub(super) async fn join(
    url: &str,
    server: SocketAddr,
    source: IpAddr,
    rooms: &[String],
) -> anyhow::Result<Ws> {
    let (mut ws, _) = net::connect(url, server, source).await?;
    for room in rooms {
        let request = json!({"type": "join", "room": room, "ref": room});
        ws.send(Message::text(request.to_string())).await?;
        expect_kind(&mut ws, "joined").await?;
    }
    Ok(ws)
}

/// Reads messages until one of `kind` (skipping others), or fails.
pub(super) async fn expect_kind(ws: &mut Ws, kind: &str) -> anyhow::Result<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let next = tokio::time::timeout_at(deadline, ws.next())
            .await
            .with_context(|| format!("waiting for {kind}"))?;
        match next {
            Some(Ok(Message::Text(text))) => {
                let m: serde_json::Value = serde_json::from_str(&text)?;
                if m["type"] == kind {
                    return Ok(m);
                }
                if m["type"] == "error" {
                    bail!("the server answered an error: {m}");
                }
            }
            Some(Ok(_)) => {}
            other => bail!("the connection ended waiting for {kind}: {other:?}"),
        }
    }
}

/// Waits until `received` reaches `target`, or stops growing for 5 s.
pub(super) async fn wait_for(counters: &Counters, target: u64) {
    let mut last = (counters.received.load(Ordering::Relaxed), Instant::now());
    loop {
        let now = counters.received.load(Ordering::Relaxed);
        if now >= target {
            return;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(5) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One delivery, as a receiver's reading of a frame makes it out.
#[derive(Debug, Clone, Copy)]
pub(super) struct Delivery {
    /// Its scheduled send time, ns since the epoch: latency counts from it.
    pub(super) t: u64,
    /// Its stream and its number in the stream; `None` for a delivery the
    /// receiver should not have had (outside its filter, misaddressed).
    pub(super) number: Option<(u32, u64)>,
}

/// What one receiver saw.
#[derive(Debug, Default)]
pub(super) struct Seen {
    pub(super) latency: Latency,
    pub(super) sequences: Sequences,
    /// Deliveries it should not have had.
    pub(super) strays: u64,
    /// The connection ended before the run did.
    pub(super) disconnected: bool,
}

/// What all the receivers saw together.
#[derive(Debug, Default)]
pub(super) struct Totals {
    pub(super) latency: Latency,
    pub(super) integrity: Integrity,
    /// Deliveries that should not have come.
    pub(super) strays: u64,
    /// Receivers whose connection ended before the run did.
    pub(super) disconnected: u64,
}

impl Totals {
    /// Adds what another set of receivers saw (already checked).
    pub(super) fn merge(&mut self, other: Totals) {
        self.latency.merge(&other.latency);
        self.integrity.add(other.integrity);
        self.strays += other.strays;
        self.disconnected += other.disconnected;
    }

    /// Adds what one receiver saw, checked against what it should have
    /// seen (`expected`: stream → messages).
    pub(super) fn add(&mut self, seen: &Seen, expected: &HashMap<u32, u64>) {
        self.latency.merge(&seen.latency);
        self.integrity.add(seen.sequences.integrity(expected));
        self.strays += seen.strays;
        self.disconnected += u64::from(seen.disconnected);
    }
}

/// Reads `ws` until `stop` is set or the connection ends. Every frame
/// `read` makes a [`Delivery`] of is timed and numbered; others are
/// skipped. A watch, not a notification: a receiver busy with a message
/// when the run ends still sees it.
pub(super) async fn receive(
    mut ws: Ws,
    read: impl Fn(&str) -> Option<Delivery>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    loop {
        let next = tokio::select! {
            next = ws.next() => next,
            _ = stop.wait_for(|stop| *stop) => break,
        };
        let text = match next {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(_)) => continue,
            _ => {
                seen.disconnected = true;
                break;
            }
        };
        let received = net::now_ns();
        let Some(delivery) = read(&text) else {
            continue;
        };
        seen.latency
            .record(Duration::from_nanos(received.saturating_sub(delivery.t)));
        match delivery.number {
            Some((stream, seq)) => seen.sequences.record(stream, seq),
            None => seen.strays += 1,
        }
        counters.received(1);
    }
    seen
}
