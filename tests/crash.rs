//! Crash safety: SIGKILL the real server at random moments during concurrent
//! writes, 50 times over the same data directory, then prove that
//! - every acknowledged write is present, with the offset it was acknowledged at;
//! - no offset was reused (each acknowledged offset still holds its own event,
//!   and the log's offsets strictly increase);
//! - every batch is all-or-nothing, acknowledged or not;
//! - the store reopened every time without manual repair.

use herald_core::Herald;
use herald_proto::{EventBody, Offset};
use herald_store::TopicFilter;
use rand::Rng;
use serde_json::{Value, json};
use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const ROUNDS: usize = 50;
const WRITERS: usize = 6;
const BATCH: usize = 4;

/// What the test knows was acknowledged: id → (table, offset).
type Acked = Arc<Mutex<HashMap<String, (String, u64)>>>;

async fn start_server(dir: &std::path::Path) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("herald starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), lines.next_line())
        .await
        .expect("the server reopened the store in time (no manual repair)")
        .unwrap()
        .expect("the server printed its address");
    let base = line
        .strip_prefix("herald listening on ")
        .expect("address line")
        .to_owned();
    (child, base)
}

/// Writes until the server dies; records what it acknowledged.
async fn writer(
    base: String,
    round: usize,
    w: usize,
    acked: Acked,
    batches: Arc<Mutex<Vec<Vec<String>>>>,
) {
    let client = reqwest::Client::new();
    for i in 0.. {
        let table = if i % 2 == 0 { "alpha" } else { "beta" };
        if i % 3 == 2 {
            let ids: Vec<String> = (0..BATCH)
                .map(|k| format!("r{round}-w{w}-{i}-b{k}"))
                .collect();
            batches.lock().unwrap().push(ids.clone());
            let ops: Vec<Value> = ids
                .iter()
                .map(
                    |id| json!({"op": "insert", "table": table, "doc": {"id": id, "round": round}}),
                )
                .collect();
            let Ok(resp) = client
                .post(format!("{base}/v1/batch"))
                .json(&json!({ "ops": ops }))
                .send()
                .await
            else {
                return;
            };
            if !resp.status().is_success() {
                return;
            }
            let Ok(body) = resp.json::<Value>().await else {
                return;
            };
            let mut acked = acked.lock().unwrap();
            for (id, result) in ids.iter().zip(body["results"].as_array().unwrap()) {
                acked.insert(
                    id.clone(),
                    (table.to_owned(), result["offset"].as_u64().unwrap()),
                );
            }
        } else {
            let id = format!("r{round}-w{w}-{i}");
            let doc = json!({"id": id, "round": round, "pad": "x".repeat(200)});
            let Ok(resp) = client
                .post(format!("{base}/v1/tables/{table}/docs"))
                .json(&doc)
                .send()
                .await
            else {
                return;
            };
            if resp.status() != 201 {
                return;
            }
            let Ok(body) = resp.json::<Value>().await else {
                return;
            };
            acked
                .lock()
                .unwrap()
                .insert(id, (table.to_owned(), body["offset"].as_u64().unwrap()));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_concurrent_writes_loses_no_acknowledged_write() {
    let dir = tempfile::tempdir().unwrap();
    let acked: Acked = Arc::default();
    let batches: Arc<Mutex<Vec<Vec<String>>>> = Arc::default();
    let mut rng = rand::rng();

    for round in 0..ROUNDS {
        let (mut child, base) = start_server(dir.path()).await;
        let before = acked.lock().unwrap().len();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                tokio::spawn(writer(
                    base.clone(),
                    round,
                    w,
                    acked.clone(),
                    batches.clone(),
                ))
            })
            .collect();
        // Kill while writes are in flight: after the first acks of this round.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while acked.lock().unwrap().len() == before {
            assert!(
                tokio::time::Instant::now() < deadline,
                "round {round}: no write was acknowledged"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.random_range(0..150))).await;
        child.start_kill().expect("SIGKILL");
        child.wait().await.unwrap();
        for t in tasks {
            t.await.unwrap();
        }
    }

    let herald = Herald::open(dir.path()).expect("the store opens cleanly after the last kill");
    let store = herald.store();
    let acked = acked.lock().unwrap().clone();
    assert!(
        acked.len() > ROUNDS * WRITERS,
        "too few writes to mean anything: {}",
        acked.len()
    );

    // The whole log, in order.
    let mut events = Vec::new();
    let mut after = Offset::ZERO;
    loop {
        let chunk = store
            .read_log(after, None, &TopicFilter::All, 10_000)
            .unwrap();
        events.extend(chunk.records.iter().map(|r| r.to_event().unwrap()));
        after = chunk.next_after;
        if chunk.done {
            break;
        }
    }
    assert!(
        events.windows(2).all(|w| w[0].offset < w[1].offset),
        "log offsets strictly increase"
    );
    let mut by_offset = HashMap::new();
    let mut inserted = HashSet::new();
    for e in &events {
        let EventBody::Insert { id, table, .. } = &e.body else {
            panic!("only inserts were written, got {e:?}");
        };
        assert!(
            inserted.insert(id.clone()),
            "{id} inserted twice: an offset was replayed or reused"
        );
        by_offset.insert(e.offset.0, (id.clone(), table.clone()));
    }

    for (id, (table, offset)) in &acked {
        let (logged_id, logged_table) = by_offset.get(offset).unwrap_or_else(|| {
            panic!("acknowledged offset {offset} ({id}) is missing from the log")
        });
        assert_eq!(
            (logged_id, logged_table),
            (id, table),
            "offset {offset} was reused"
        );
        let doc = herald.get(table, id).unwrap();
        assert!(
            doc.is_some(),
            "acknowledged document {table}/{id} is missing"
        );
    }

    for ids in batches.lock().unwrap().iter() {
        let present = ids.iter().filter(|id| inserted.contains(*id)).count();
        assert!(
            present == 0 || present == ids.len(),
            "batch {ids:?} is partly present ({present})"
        );
    }

    // The store still takes writes, at offsets above everything before.
    let ack = herald
        .insert("alpha", json!({"id": "after-crashes"}))
        .await
        .unwrap();
    assert!(ack.offset > events.last().unwrap().offset);
    herald.close().await;
    eprintln!(
        "{ROUNDS} kills, {} acknowledged writes, {} events in the log",
        acked.len(),
        events.len()
    );
}
