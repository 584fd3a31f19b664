//! What every scenario's subscribers do: subscribe, wait for an answer,
//! and wait for the deliveries a run should bring.

use crate::net::{self, Ws};
use crate::progress::Counters;
use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
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
