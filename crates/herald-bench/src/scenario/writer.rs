//! The REST writer `tables` and `resume` share: numbered documents, sent
//! in batches on a schedule (open loop) or as fast as acknowledgements
//! come (closed loop), retried until acknowledged.

use super::schedule::Schedule;
use crate::net;
use crate::progress::Counters;
use anyhow::bail;
use reqwest::StatusCode;
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The most operations `POST /v1/batch` takes.
pub(super) const MAX_BATCH: usize = 1000;
/// How long a writer keeps retrying a failed request past its end.
const GIVE_UP: Duration = Duration::from_secs(5);
/// The pause before sending a failed request again.
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// One HTTP client for every writer: keep-alive, a connection each.
pub(super) fn http_client(writers: usize) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .pool_max_idle_per_host(writers)
        .tcp_nodelay(true)
        .no_proxy()
        .build()?)
}

/// A prefix for this run's document ids, so a run against a server that
/// already holds an earlier run's documents does not collide with them.
pub(super) fn run_id() -> String {
    format!("r{:08x}", (net::now_ns() / 1000) as u32)
}

/// How many of documents `0..n` pass `g < selectivity` (`g = s % 100`):
/// what `q` numbers.
pub(super) fn selected(n: u64, selectivity: u64) -> u64 {
    n / 100 * selectivity + (n % 100).min(selectivity)
}

/// When a writer sends.
#[derive(Debug, Clone, Copy)]
pub(super) enum Pace {
    /// As soon as the last request is acknowledged.
    Closed,
    /// On a schedule.
    Open(Schedule),
}

impl Pace {
    /// Writer `w`'s share of `rate` documents/s over `writers`, in
    /// requests of `batch`; the writers' schedules are staggered.
    pub(super) fn open(
        started: Instant,
        rate: f64,
        writers: usize,
        batch: usize,
        w: usize,
    ) -> Pace {
        Pace::Open(Schedule::share(started, rate / batch as f64, writers, w))
    }
}

/// What a writer got acknowledged.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Written {
    /// Documents, numbered `0..docs`.
    pub(super) docs: u64,
    /// Requests.
    pub(super) batches: u64,
    /// Failed attempts (each sent again).
    pub(super) errors: u64,
}

impl Written {
    pub(super) fn add(&mut self, other: &Written) {
        self.docs += other.docs;
        self.batches += other.batches;
        self.errors += other.errors;
    }
}

/// One writer: numbered inserts, one request at a time.
#[derive(Debug)]
pub(super) struct Writer {
    http: reqwest::Client,
    /// Where requests go: `/v1/batch` or the table's `/docs`.
    url: String,
    table: &'static str,
    run: String,
    w: u32,
    batch: usize,
    selectivity: u64,
    pad: String,
    /// Documents acknowledged so far (`0..acked`), for a scenario to read
    /// while the writer runs.
    acked: Arc<AtomicU64>,
}

/// One document as sent.
#[derive(Serialize)]
struct Doc<'a> {
    id: String,
    w: u32,
    s: u64,
    g: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    q: Option<u64>,
    t: u64,
    pad: &'a str,
}

/// A `POST /v1/batch` body.
#[derive(Serialize)]
struct Batch<'a> {
    ops: Vec<Insert<'a>>,
}

/// One operation of a batch.
#[derive(Serialize)]
struct Insert<'a> {
    op: &'static str,
    table: &'a str,
    doc: Doc<'a>,
}

impl Writer {
    /// Writer `w` of table `table` at `base` (`http://host:port`), making
    /// documents of about `payload` bytes.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn new(
        http: reqwest::Client,
        base: &str,
        table: &'static str,
        run: &str,
        w: u32,
        batch: usize,
        selectivity: u64,
        payload: usize,
    ) -> Writer {
        let url = if batch == 1 {
            format!("{base}/v1/tables/{table}/docs")
        } else {
            format!("{base}/v1/batch")
        };
        let mut writer = Writer {
            http,
            url,
            table,
            run: run.to_owned(),
            w,
            batch,
            selectivity,
            pad: String::new(),
            acked: Arc::new(AtomicU64::new(0)),
        };
        // The numbering's size, from a document with typical numbers.
        let numbering =
            serde_json::to_vec(&writer.doc(123_456, net::now_ns())).map_or(100, |doc| doc.len());
        writer.pad = "x".repeat(payload.saturating_sub(numbering));
        writer
    }

    /// The count of acknowledged documents, updated as the writer runs.
    pub(super) fn acked(&self) -> Arc<AtomicU64> {
        self.acked.clone()
    }

    fn doc(&self, s: u64, t: u64) -> Doc<'_> {
        let g = s % 100;
        Doc {
            id: format!("{}-w{}-{s}", self.run, self.w),
            w: self.w,
            s,
            g,
            q: (g < self.selectivity).then(|| s / 100 * self.selectivity + g),
            t,
            pad: &self.pad,
        }
    }

    /// The request body for documents `first..first + batch`.
    fn body(&self, first: u64, t: u64) -> serde_json::Result<Vec<u8>> {
        if self.batch == 1 {
            return serde_json::to_vec(&self.doc(first, t));
        }
        let ops = (first..first + self.batch as u64)
            .map(|s| Insert {
                op: "insert",
                table: self.table,
                doc: self.doc(s, t),
            })
            .collect();
        serde_json::to_vec(&Batch { ops })
    }

    /// Writes until `end`; fails if the server refuses a request for good.
    pub(super) async fn run(
        self,
        pace: Pace,
        end: Instant,
        counters: Arc<Counters>,
    ) -> anyhow::Result<Written> {
        let mut written = Written::default();
        let mut k: u64 = 0;
        loop {
            let t = match pace {
                Pace::Closed if Instant::now() >= end => break,
                Pace::Closed => net::now_ns(),
                Pace::Open(schedule) => match schedule.wait(k, end).await {
                    Some(t) => t,
                    None => break,
                },
            };
            let body = self.body(written.docs, t)?;
            if !self.send(body, end + GIVE_UP, &mut written.errors).await? {
                break;
            }
            written.docs += self.batch as u64;
            written.batches += 1;
            self.acked.store(written.docs, Ordering::Release);
            counters.sent(self.batch as u64);
            k += 1;
        }
        Ok(written)
    }

    /// Sends `body` until acknowledged (true), or until `give_up` passes
    /// (false: the documents may or may not be written). Counts failed
    /// attempts in `errors`; fails on an answer no retry can change.
    async fn send(
        &self,
        body: Vec<u8>,
        give_up: Instant,
        errors: &mut u64,
    ) -> anyhow::Result<bool> {
        // Whether a failed attempt may have written the documents anyway
        // (no answer, or a 5xx): then `already_exists` means it did.
        let mut maybe_written = false;
        loop {
            let sent = self
                .http
                .post(&self.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body.clone())
                .send()
                .await;
            match sent {
                Ok(response) => {
                    let status = response.status();
                    // Read to the end, so the connection is reused.
                    let answer = response.bytes().await.unwrap_or_default();
                    if status.is_success() || (status == StatusCode::CONFLICT && maybe_written) {
                        return Ok(true);
                    }
                    if status.is_server_error() {
                        maybe_written = true;
                    } else if status != StatusCode::TOO_MANY_REQUESTS {
                        bail!(
                            "writer {}: the server refused a write: {status} {}",
                            self.w,
                            String::from_utf8_lossy(&answer)
                        );
                    }
                }
                Err(_) => maybe_written = true,
            }
            *errors += 1;
            if Instant::now() >= give_up {
                return Ok(false);
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::tables::TABLE;

    fn writer(batch: usize, selectivity: u64, payload: usize) -> Writer {
        Writer::new(
            reqwest::Client::new(),
            "http://127.0.0.1:1",
            TABLE,
            "r1",
            3,
            batch,
            selectivity,
            payload,
        )
    }

    #[test]
    fn q_numbers_the_selected_documents_without_gaps() {
        for selectivity in [0, 1, 10, 37, 100] {
            let writer = writer(1, selectivity, 0);
            let qs: Vec<u64> = (0..350).filter_map(|s| writer.doc(s, 0).q).collect();
            assert_eq!(qs, (0..selected(350, selectivity)).collect::<Vec<_>>());
            for n in [0, 5, 99, 100, 101, 250] {
                let passing = (0..n).filter(|s| s % 100 < selectivity).count() as u64;
                assert_eq!(selected(n, selectivity), passing, "{n} at {selectivity}%");
            }
        }
    }

    #[test]
    fn documents_have_the_payload_size_and_batches_the_batch_size() {
        let single = writer(1, 10, 200);
        let doc = single.body(4242, net::now_ns()).unwrap();
        assert!((195..=205).contains(&doc.len()), "{}", doc.len());
        let doc: serde_json::Value = serde_json::from_slice(&doc).unwrap();
        assert_eq!(doc["id"], "r1-w3-4242");
        assert_eq!((doc["g"].as_u64(), doc["q"].as_u64()), (Some(42), None));

        let batched = writer(5, 100, 0);
        let body: serde_json::Value =
            serde_json::from_slice(&batched.body(10, 7).unwrap()).unwrap();
        let ops = body["ops"].as_array().unwrap();
        assert_eq!(ops.len(), 5);
        assert_eq!(ops[0]["op"], "insert");
        assert_eq!(ops[0]["table"], TABLE);
        assert_eq!(ops[4]["doc"]["s"], 14);
        assert_eq!(ops[4]["doc"]["q"], 14);
        assert_eq!(ops[4]["doc"]["t"], 7);
    }
}
