//! `rooms`: publishers → one broadcast to every room → every member, open
//! loop.
//!
//! `--rooms` rooms `bench:r0`, `bench:r1`, ... of `--members` members
//! each: member `i` of room `r` is connection `r × members + i`, a
//! WebSocket that joins `r` (and, for `i < --overlap`, room `r + 1` too,
//! wrapping). Every broadcast targets all the rooms in one message, and the
//! server owes each connection exactly one copy of it, whatever number of
//! targeted rooms the connection is in, with `subs` naming each of them.
//! So each broadcast should reach `rooms × members` connections: the
//! `receivers` every `broadcast_sent` answers are checked against that,
//! and every member checks the numbers of each publisher's broadcasts
//! (once each, in order) against the broadcasts the server acknowledged.
//!
//! Publishers send on a schedule fixed in advance and stamp each
//! broadcast with its scheduled time; latency counts from it.

use super::publisher::{Stamp, publish};
use super::schedule::Schedule;
use super::subscriber::{Delivery, Totals, join, receive, wait_for};
use crate::Common;
use crate::net::{self, Sources};
use crate::progress::{Counters, Progress};
use crate::report::Report;
use anyhow::bail;
use clap::Args;
use futures_util::{StreamExt, TryStreamExt};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Members connecting and joining at once while the rooms fill.
const JOINING: usize = 32;

/// `herald bench rooms`.
#[derive(Debug, Clone, Args, Serialize)]
pub struct RoomsArgs {
    /// Rooms (`bench:r0`, `bench:r1`, ...); every broadcast targets all of
    /// them (at most 100, the server's limit).
    #[arg(long, default_value_t = 10)]
    pub rooms: usize,
    /// Members per room: connections that each join their room.
    #[arg(long, default_value_t = 1000)]
    pub members: usize,
    /// Of each room's members, this many also join the next room; they
    /// must still receive each broadcast once.
    #[arg(long, default_value_t = 0)]
    pub overlap: usize,
    /// Broadcasting connections.
    #[arg(long, default_value_t = 1)]
    pub publishers: usize,
    /// Bytes of each broadcast's `data` (at least ~50: the numbering).
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Broadcasts per second, all publishers together.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds of broadcasting.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
}

impl RoomsArgs {
    /// The rooms connection `c` joins, sorted (as a member compares its
    /// broadcasts' `subs`).
    fn rooms_of(&self, c: usize) -> Vec<String> {
        let (r, i) = (c / self.members, c % self.members);
        let mut rooms = vec![room(r)];
        if i < self.overlap {
            rooms.push(room((r + 1) % self.rooms));
        }
        rooms.sort_unstable();
        rooms
    }
}

/// Room `r`'s name.
fn room(r: usize) -> String {
    format!("bench:r{r}")
}

/// What a publisher's broadcasts came to.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    /// Requests sent.
    requests: u64,
    /// Answered `broadcast_sent`: the members must receive these.
    acked: u64,
    /// Answered `error`.
    refused: u64,
    /// The fewest and most `receivers` the answers gave, once any did.
    receivers: Option<(u64, u64)>,
}

impl Sent {
    /// Counts the answer to one request.
    fn answer(&mut self, answer: Result<&Value, &Value>) {
        let Ok(answer) = answer else {
            self.refused += 1;
            return;
        };
        let receivers = answer["receivers"].as_u64().unwrap_or(0);
        self.acked += 1;
        self.receivers = widen(self.receivers, Some((receivers, receivers)));
    }

    /// Adds another publisher's.
    fn add(&mut self, other: &Sent) {
        self.requests += other.requests;
        self.acked += other.acked;
        self.refused += other.refused;
        self.receivers = widen(self.receivers, other.receivers);
    }
}

/// The smallest range holding both (min, max) ranges.
fn widen(a: Option<(u64, u64)>, b: Option<(u64, u64)>) -> Option<(u64, u64)> {
    match (a, b) {
        (Some(a), Some(b)) => Some((a.0.min(b.0), a.1.max(b.1))),
        (a, b) => a.or(b),
    }
}

pub async fn rooms(common: &Common, args: RoomsArgs) -> anyhow::Result<Option<Report>> {
    if args.rooms == 0 || args.members == 0 || args.publishers == 0 || args.rate <= 0.0 {
        bail!("--rooms, --members, --publishers and --rate must be positive");
    }
    if args.overlap > args.members || (args.overlap > 0 && args.rooms < 2) {
        bail!("--overlap must be at most --members, and needs at least 2 rooms");
    }
    let target = common.target()?;
    let server = net::server_addr(&target.base)?;
    let url = target.ws_url();
    let sources = Sources::new(common.sources);
    let counters = Arc::new(Counters::default());
    let connections = args.rooms * args.members;

    // Every member has joined before broadcasting starts, and reads from
    // the moment it has (it answers the server's pings meanwhile).
    let (done, stop) = tokio::sync::watch::channel(false);
    let joining = Instant::now();
    let readers: Vec<_> = futures_util::stream::iter(0..connections)
        .map(|c| {
            let rooms = args.rooms_of(c);
            let (url, counters, stop) = (url.clone(), counters.clone(), stop.clone());
            async move {
                let ws = join(&url, server, sources.nth(c), &rooms).await?;
                let read = move |frame: &str| delivery(frame, &rooms);
                anyhow::Ok(tokio::spawn(receive(ws, read, counters, stop)))
            }
        })
        .buffer_unordered(JOINING)
        .try_collect()
        .await?;
    let join_s = joining.elapsed().as_secs_f64();
    eprintln!("rooms: {connections} members joined in {join_s:.1} s");
    let mut publishers = Vec::with_capacity(args.publishers);
    for p in 0..args.publishers {
        let (ws, _) = net::connect(&url, server, sources.nth(connections + p)).await?;
        publishers.push(ws);
    }

    let _progress = Progress::start("rooms", counters.clone());
    let meter = target.meter()?;
    let started = Instant::now();
    let end = started + Duration::from_secs_f64(args.duration);
    let all: Vec<String> = (0..args.rooms).map(room).collect();
    let mut tasks = Vec::with_capacity(args.publishers);
    for (p, ws) in publishers.into_iter().enumerate() {
        let schedule = Schedule::share(started, args.rate, args.publishers, p);
        let (all, payload, counters) = (all.clone(), args.payload, counters.clone());
        tasks.push(tokio::spawn(async move {
            publisher(ws, p as u32, all, payload, schedule, end, &counters).await
        }));
    }
    // Acknowledged broadcasts per publisher: what every member must receive.
    let mut expected: HashMap<u32, u64> = HashMap::new();
    let mut sent = Sent::default();
    for (q, task) in tasks.into_iter().enumerate() {
        let one = task.await??;
        expected.insert(q as u32, one.acked);
        sent.add(&one);
    }
    // One copy per connection, however many of its rooms were targeted.
    wait_for(&counters, sent.acked * connections as u64).await;
    let elapsed = started.elapsed();
    let usage = meter.read(&target)?;
    let _ = done.send(true);

    let mut seen = Totals::default();
    for reader in readers {
        seen.add(&reader.await?, &expected);
    }
    let mut report = Report::new("rooms", &args);
    report
        .add("connections", connections)
        .add("memberships", connections + args.rooms * args.overlap)
        .add("join_s", join_s)
        .add("broadcasts", sent.acked)
        .add("broadcast_errors", sent.refused)
        .add(
            "broadcasts_unanswered",
            sent.requests - sent.acked - sent.refused,
        )
        .add("broadcasts_per_s", sent.acked as f64 / args.duration)
        .add("receivers_expected", connections)
        .add("receivers_min", sent.receivers.map_or(0, |r| r.0))
        .add("receivers_max", sent.receivers.map_or(0, |r| r.1))
        .add("deliveries_expected", sent.acked * connections as u64)
        .deliveries(seen.integrity.received, elapsed, &usage)
        .usage(&usage)
        .latency(&seen.latency)
        .integrity(&seen.integrity)
        .add("misaddressed", seen.strays)
        .add("members_disconnected", seen.disconnected);
    Ok(Some(report))
}

/// One publisher, stream `q`: each broadcast targets all of `rooms`.
async fn publisher(
    ws: net::Ws,
    q: u32,
    rooms: Vec<String>,
    payload: usize,
    schedule: Schedule,
    end: Instant,
    counters: &Counters,
) -> anyhow::Result<Sent> {
    let pad = Stamp::pad(payload);
    let message = |s, t| {
        let data = Stamp { q, s, t }.data(&pad);
        json!({"type": "broadcast", "rooms": rooms, "data": data}).to_string()
    };
    let mut sent = Sent::default();
    let answered = |_, answer: Result<&Value, &Value>| sent.answer(answer);
    let requests = publish(
        ws,
        schedule,
        end,
        "broadcast_sent",
        message,
        answered,
        counters,
    );
    sent.requests = requests.await?;
    Ok(sent)
}

/// What a member of `rooms` (sorted) makes of a frame: a broadcast's
/// numbering, or a stray if its `subs` are not exactly those rooms.
fn delivery(frame: &str, rooms: &[String]) -> Option<Delivery> {
    let rest = frame.strip_prefix(r#"{"type":"broadcast","subs":"#)?;
    let stamp = Stamp::read(rest)?;
    let subs = serde_json::Deserializer::from_str(rest)
        .into_iter::<Vec<&str>>()
        .next()
        .and_then(Result::ok);
    let addressed = subs.is_some_and(|mut subs| {
        subs.sort_unstable();
        subs.iter().eq(rooms)
    });
    Some(Delivery {
        t: stamp.t,
        number: addressed.then_some((stamp.q, stamp.s)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(rooms: usize, members: usize, overlap: usize) -> RoomsArgs {
        RoomsArgs {
            rooms,
            members,
            overlap,
            publishers: 1,
            payload: 100,
            rate: 1.0,
            duration: 1.0,
        }
    }

    #[test]
    fn overlapping_members_also_join_the_next_room() {
        let a = args(3, 4, 2);
        let joined: Vec<Vec<String>> = (0..12).map(|c| a.rooms_of(c)).collect();
        assert_eq!(joined[0], ["bench:r0", "bench:r1"]);
        assert_eq!(joined[2], ["bench:r0"]);
        assert_eq!(joined[5], ["bench:r1", "bench:r2"]);
        // The last room's overlap wraps to the first.
        assert_eq!(joined[9], ["bench:r0", "bench:r2"]);
        assert_eq!(joined[11], ["bench:r2"]);
        let memberships: usize = joined.iter().map(Vec::len).sum();
        assert_eq!(memberships, 12 + 3 * 2);
    }

    #[test]
    fn a_broadcast_counts_only_when_addressed_to_the_members_rooms() {
        let frame = |subs: &str| {
            format!(
                r#"{{"type":"broadcast","subs":{subs},"rooms":["bench:r0","bench:r1"],"data":{{"pad":"xx","q":2,"s":7,"t":42}},"ts":1}}"#
            )
        };
        let rooms = ["bench:r0".to_owned(), "bench:r1".to_owned()];
        let d = delivery(&frame(r#"["bench:r1","bench:r0"]"#), &rooms).unwrap();
        assert_eq!((d.t, d.number), (42, Some((2, 7))));
        let d = delivery(&frame(r#"["bench:r0"]"#), &rooms).unwrap();
        assert_eq!(d.number, None);
        assert!(
            delivery(&frame(r#"["bench:r0"]"#), &rooms[..1])
                .unwrap()
                .number
                .is_some()
        );
        assert!(delivery(r#"{"type":"joined","ref":"j","room":"bench:r0"}"#, &rooms).is_none());
    }
}
