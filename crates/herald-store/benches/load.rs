//! Benchmark load, shared by `benches/log.rs` and `examples/append.rs`:
//! documents, and closed-loop writers appending them.

use herald_store::{ChannelName, Durability, Store, StoreConfig, TableName, WriteOp};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Pseudo-random hex text, about as compressible as real JSON text, so the
/// engine's compression does not flatter the figures.
pub fn hex_text(seed: u64, len: usize) -> String {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            char::from(b"0123456789abcdef"[(state & 15) as usize])
        })
        .collect()
}

/// Paddings made once, so building documents costs the benchmark little.
pub fn paddings(doc_size: usize) -> Vec<String> {
    (0..256)
        .map(|seed| hex_text(seed, doc_size.saturating_sub(70)))
        .collect()
}

/// A document of about `doc_size` bytes (the size `pads` was made for).
pub fn doc(id: u64, pads: &[String]) -> Value {
    let pad = &pads[(id % pads.len() as u64) as usize];
    json!({"id": format!("doc-{id:012}"), "tenant": id % 100, "status": "open", "pad": pad})
}

/// A store in `dir` with default settings but `durability`.
pub fn open_store(dir: &std::path::Path, durability: Durability) -> Arc<Store> {
    let config = StoreConfig {
        durability,
        ..StoreConfig::default()
    };
    Arc::new(Store::open(dir, config).unwrap())
}

/// What each write appends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A new document (its record and its event).
    Insert,
    /// A channel message (its event only).
    Publish,
}

/// Documents with unique ids for many writers.
#[derive(Debug, Clone)]
pub struct Docs {
    pub table: TableName,
    pub pads: Arc<Vec<String>>,
    pub next_id: Arc<AtomicU64>,
}

impl Docs {
    pub fn new(doc_size: usize) -> Docs {
        Docs {
            table: TableName::new("bench").unwrap(),
            pads: Arc::new(paddings(doc_size)),
            next_id: Arc::new(AtomicU64::new(0)),
        }
    }

    fn op(&self, kind: Kind) -> WriteOp {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let doc = doc(id, &self.pads);
        match kind {
            Kind::Insert => WriteOp::insert(self.table.clone(), doc).unwrap(),
            Kind::Publish => WriteOp::publish(ChannelName::new("bench").unwrap(), doc, None),
        }
    }
}

/// `writers` tasks each make writes of `per_write` documents (or
/// messages), waiting for each acknowledgement (closed loop), until at
/// least `events` are written (every writer makes as many writes). Returns
/// the number of events written.
pub async fn write_load(
    store: &Arc<Store>,
    docs: &Docs,
    kind: Kind,
    writers: u64,
    per_write: u64,
    events: u64,
) -> u64 {
    let writes_per_writer = events.div_ceil(writers * per_write);
    let tasks: Vec<_> = (0..writers)
        .map(|_| {
            let (store, docs) = (store.clone(), docs.clone());
            tokio::spawn(async move {
                for _ in 0..writes_per_writer {
                    let ops = (0..per_write).map(|_| docs.op(kind)).collect();
                    store.write(ops).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    writers * per_write * writes_per_writer
}
