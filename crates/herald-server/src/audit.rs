//! The audit log: who authenticated, who was refused, which subscriptions
//! began and ended, what administrators did.
//!
//! # Format
//! JSON lines in `<dir>/audit.log`, one record per line:
//! `{"ts": <unix ms>, "kind": "...", "who": "user:<sub>"|"key:<id>"|"anonymous"?,
//! "ip": "..."?, ...details}`. User-supplied text is JSON-escaped, so no
//! record can forge another line; tokens and secrets are never recorded
//! (failures are recorded by reason).
//!
//! # Durability
//! One writer task appends records in batches and `fdatasync`s each batch.
//! Records are queued on a bounded channel: a flood (say, of failed logins)
//! that fills it drops records rather than stalling requests, and the next
//! record written says how many were dropped (`"kind":"dropped"`).
//!
//! # Rotation
//! Past `file_bytes` the file becomes `audit.log.1` (older ones shift up),
//! keeping `keep_files`. Admins query all of them through
//! `GET /v1/admin/audit`.

use crate::config::AuditConfig;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::mpsc;

/// Records queued for the writer before new ones are dropped.
const QUEUE: usize = 8192;

/// The handle requests record through. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Audit {
    inner: Option<Arc<Inner>>,
}

#[derive(Debug)]
struct Inner {
    queue: mpsc::Sender<Value>,
    dropped: AtomicU64,
    dir: PathBuf,
    subscriptions: bool,
}

impl Audit {
    /// Records nothing (embedded use and tests that do not look).
    pub(crate) fn off() -> Audit {
        Audit { inner: None }
    }

    /// Opens (creating) the audit directory and starts the writer task.
    pub(crate) fn start(config: &AuditConfig, data_dir: &Path) -> std::io::Result<Audit> {
        let dir = config.dir.clone().unwrap_or_else(|| data_dir.join("audit"));
        std::fs::create_dir_all(&dir)?;
        let file = open_current(&dir)?;
        let (queue, records) = mpsc::channel(QUEUE);
        let writer = Writer {
            dir: dir.clone(),
            file,
            file_bytes: config.file_bytes.max(4096),
            keep: config.keep_files.max(1),
        };
        std::thread::Builder::new()
            .name("herald-audit".into())
            .spawn(move || writer.run(records))?;
        Ok(Audit {
            inner: Some(Arc::new(Inner {
                queue,
                dropped: AtomicU64::new(0),
                dir,
                subscriptions: config.subscriptions,
            })),
        })
    }

    /// Whether subscriptions are recorded.
    pub(crate) fn records_subscriptions(&self) -> bool {
        self.inner.as_ref().is_some_and(|i| i.subscriptions)
    }

    /// Records an event of `kind` by `who` with `details` (an object).
    pub(crate) fn record(&self, kind: &str, who: Option<&str>, details: Value) {
        let Some(inner) = &self.inner else {
            return;
        };
        let mut record = Map::new();
        record.insert("ts".into(), Value::from(herald_proto::Timestamp::now().0));
        record.insert("kind".into(), Value::from(kind));
        if let Some(who) = who {
            record.insert("who".into(), Value::from(who));
        }
        if let Value::Object(details) = details {
            record.extend(details);
        }
        let dropped = inner.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            let note = json!({"ts": herald_proto::Timestamp::now().0, "kind": "dropped", "count": dropped});
            if inner.queue.try_send(note).is_err() {
                inner.dropped.fetch_add(dropped, Ordering::Relaxed);
            }
        }
        if inner.queue.try_send(Value::Object(record)).is_err() {
            inner.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Records matching `query`, oldest first (the newest `limit`).
    pub(crate) fn query(&self, query: &AuditQuery) -> std::io::Result<Vec<Value>> {
        let Some(inner) = &self.inner else {
            return Ok(Vec::new());
        };
        let limit = query.limit.unwrap_or(100).clamp(1, 10_000);
        let mut found = std::collections::VecDeque::with_capacity(limit);
        let mut files: Vec<PathBuf> = (1..=64)
            .map(|n| inner.dir.join(format!("audit.log.{n}")))
            .filter(|p| p.exists())
            .collect();
        files.reverse();
        files.push(inner.dir.join("audit.log"));
        for path in files {
            let Ok(file) = File::open(&path) else {
                continue;
            };
            for line in BufReader::new(file).lines() {
                let Ok(record) = serde_json::from_str::<Value>(&line?) else {
                    continue;
                };
                if query.matches(&record) {
                    if found.len() == limit {
                        found.pop_front();
                    }
                    found.push_back(record);
                }
            }
        }
        Ok(found.into())
    }
}

/// `GET /v1/admin/audit` parameters.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditQuery {
    /// Only this kind.
    pub(crate) kind: Option<String>,
    /// Only this caller (`user:<sub>`, `key:<id>`, `anonymous`).
    pub(crate) who: Option<String>,
    /// Only records at or after this time (unix ms).
    pub(crate) since: Option<u64>,
    /// At most this many (the newest). Default 100, at most 10 000.
    pub(crate) limit: Option<usize>,
}

impl AuditQuery {
    fn matches(&self, record: &Value) -> bool {
        let field = |name: &str| record.get(name).and_then(Value::as_str);
        self.kind
            .as_deref()
            .is_none_or(|k| field("kind") == Some(k))
            && self.who.as_deref().is_none_or(|w| field("who") == Some(w))
            && self
                .since
                .is_none_or(|since| record.get("ts").and_then(Value::as_u64).unwrap_or(0) >= since)
    }
}

fn open_current(dir: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(dir.join("audit.log"))
}

/// The writer thread's state. A thread, not a task: it does blocking file
/// I/O and fsyncs.
struct Writer {
    dir: PathBuf,
    file: File,
    file_bytes: u64,
    keep: usize,
}

impl Writer {
    fn run(mut self, mut records: mpsc::Receiver<Value>) {
        let mut batch = Vec::new();
        let mut out = Vec::new();
        while records.blocking_recv().map(|r| batch.push(r)).is_some() {
            while batch.len() < 1024 {
                match records.try_recv() {
                    Ok(record) => batch.push(record),
                    Err(_) => break,
                }
            }
            out.clear();
            for record in batch.drain(..) {
                if serde_json::to_writer(&mut out, &record).is_ok() {
                    out.push(b'\n');
                }
            }
            if let Err(e) = self.write(&out) {
                tracing::error!(error = %e, dir = %self.dir.display(), "writing the audit log failed");
            }
        }
    }

    fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.file.metadata()?.len() + bytes.len() as u64 > self.file_bytes {
            self.rotate()?;
        }
        self.file.write_all(bytes)?;
        self.file.sync_data()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let name = |n: usize| self.dir.join(format!("audit.log.{n}"));
        let _ = std::fs::remove_file(name(self.keep));
        for n in (1..self.keep).rev() {
            let _ = std::fs::rename(name(n), name(n + 1));
        }
        std::fs::rename(self.dir.join("audit.log"), name(1))?;
        self.file = open_current(&self.dir)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn settle(audit: &Audit, n: usize) -> Vec<Value> {
        for _ in 0..200 {
            let records = audit.query(&AuditQuery::default()).unwrap();
            if records.len() >= n {
                return records;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        panic!("audit records never appeared");
    }

    #[tokio::test]
    async fn records_are_durable_escaped_queryable_and_rotated() {
        let dir = tempfile::tempdir().unwrap();
        let config = AuditConfig {
            file_bytes: 4096,
            keep_files: 3,
            ..AuditConfig::default()
        };
        let audit = Audit::start(&config, dir.path()).unwrap();
        audit.record(
            "auth_failure",
            None,
            json!({"reason": "bad\nline {\"kind\":\"forged\"}"}),
        );
        audit.record("subscribed", Some("user:a"), json!({"topic": "table:t"}));
        let records = settle(&audit, 2).await;
        assert_eq!(records[0]["kind"], "auth_failure");
        assert_eq!(records[1]["who"], "user:a");
        let text = std::fs::read_to_string(dir.path().join("audit/audit.log")).unwrap();
        assert_eq!(text.lines().count(), 2, "one line per record: {text}");

        let only = audit
            .query(&AuditQuery {
                who: Some("user:a".into()),
                ..AuditQuery::default()
            })
            .unwrap();
        assert_eq!(only.len(), 1);

        for i in 0..200 {
            audit.record("denied", Some("user:b"), json!({"n": i}));
        }
        for _ in 0..200 {
            let last = audit.query(&AuditQuery::default()).unwrap();
            if last.last().is_some_and(|r| r["n"] == 199) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(dir.path().join("audit/audit.log.1").exists(), "rotated");
        assert!(
            !dir.path().join("audit/audit.log.4").exists(),
            "kept at most 3"
        );
        let newest = audit
            .query(&AuditQuery {
                kind: Some("denied".into()),
                limit: Some(5),
                ..AuditQuery::default()
            })
            .unwrap();
        let ns: Vec<_> = newest.iter().map(|r| r["n"].as_u64().unwrap()).collect();
        assert_eq!(ns, [195, 196, 197, 198, 199]);
    }
}
