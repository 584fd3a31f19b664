//! What `fanout`'s and `rooms`' publishers do: numbered messages sent over
//! a WebSocket on a [`Schedule`] (open loop), and the server's answers read
//! as they come. A connection's requests are answered in order, so the
//! `k`th answer is request `k`'s.

use super::schedule::Schedule;
use crate::net::{self, Ws};
use crate::progress::Counters;
use anyhow::bail;
use futures_util::{SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

/// How long a publisher waits for its remaining answers, once it has sent
/// everything, after the last one came.
const QUIET: Duration = Duration::from_secs(10);

/// The numbering a publisher puts in each message's `data`.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Stamp {
    /// Stream: the receivers check each stream's numbers separately.
    pub(super) q: u32,
    /// Number within the stream.
    pub(super) s: u64,
    /// Scheduled send time, ns since the epoch.
    pub(super) t: u64,
}

impl Stamp {
    /// Padding that makes [`Stamp::data`] about `payload` bytes (at
    /// least the numbering's ~50).
    pub(super) fn pad(payload: usize) -> String {
        let typical = Stamp {
            q: 0,
            s: 1000,
            t: net::now_ns(),
        };
        let numbering = typical.data("").to_string().len();
        "x".repeat(payload.saturating_sub(numbering))
    }

    /// A message's `data`: the numbering and `pad`.
    pub(super) fn data(&self, pad: &str) -> Value {
        json!({"q": self.q, "s": self.s, "t": self.t, "pad": pad})
    }

    /// The numbering in the `data` of a delivered frame, read without
    /// parsing the rest of the envelope: the generator parses every
    /// delivery, and shares the server's cores, so what it skips the
    /// server gets.
    pub(super) fn read(frame: &str) -> Option<Stamp> {
        let at = frame.find(r#""data":"#)? + r#""data":"#.len();
        let mut data = serde_json::Deserializer::from_str(&frame[at..]);
        Stamp::deserialize(&mut data).ok()
    }
}

/// Sends `request(k, t)` for `k` = 0, 1, ... on `schedule` until `end`
/// (`t`: request `k`'s scheduled time, ns since the epoch), and hands each
/// answer to `answered(k, answer)`: `Ok` with an answer of type `kind`,
/// `Err` with an `error`. Returns how many requests it sent, once all are
/// answered or none has been answered for 10 s after the last was sent.
pub(super) async fn publish(
    ws: Ws,
    schedule: Schedule,
    end: Instant,
    kind: &str,
    mut request: impl FnMut(u64, u64) -> String,
    mut answered: impl FnMut(u64, Result<&Value, &Value>),
    counters: &Counters,
) -> anyhow::Result<u64> {
    let (mut sink, mut stream) = ws.split();
    let (mut sent, mut answers) = (0u64, 0u64);
    let mut sending = true;
    let mut heard = Instant::now();
    while sending || (answers < sent && heard.elapsed() < QUIET) {
        tokio::select! {
            due = schedule.wait(sent, end), if sending => match due {
                Some(t) => {
                    sink.send(Message::text(request(sent, t))).await?;
                    counters.sent(1);
                    sent += 1;
                }
                None => {
                    sending = false;
                    heard = Instant::now();
                }
            },
            next = stream.next() => {
                let text = match next {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(_)) => continue,
                    other if sending => bail!("a publisher's connection ended: {other:?}"),
                    _ => break,
                };
                heard = Instant::now();
                let Ok(answer) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let answer = match answer["type"].as_str() {
                    Some(t) if t == kind => Ok(&answer),
                    Some("error") => Err(&answer),
                    _ => continue,
                };
                answered(answers, answer);
                answers += 1;
            },
            () = tokio::time::sleep_until((heard + QUIET).into()), if !sending => break,
        }
    }
    Ok(sent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stamp_survives_the_envelope_and_needs_its_fields() {
        let t = net::now_ns();
        let data = Stamp { q: 3, s: 7, t }.data(&Stamp::pad(100));
        assert!((97..=103).contains(&data.to_string().len()), "{data}");
        let frame = format!(
            r#"{{"type":"event","subs":["s"],"offset":9,"channel":"bench:0","data":{data}}}"#
        );
        let s = Stamp::read(&frame).unwrap();
        assert_eq!((s.q, s.s, s.t), (3, 7, t));
        assert!(Stamp::read(r#"{"type":"pong"}"#).is_none());
        assert!(Stamp::read(r#"{"type":"event","data":{"q":"x"}}"#).is_none());
    }
}
