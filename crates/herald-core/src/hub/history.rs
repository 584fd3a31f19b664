//! A subscription's past: its snapshot and the events it missed, read from
//! the store on its own task before its shard makes it live.
//!
//! The reader queues with [`Outbox::push_wait`], so history is paced by the
//! client and never overflows it. When it has read to the end of the log it
//! asks the shard to activate the subscription at the exact offset reached;
//! the shard fills the last stretch from its recent window (or says the
//! reader is behind it, and the reader goes on reading).

use super::shard::{Activated, Command};
use super::subscription::{Progress, Selector};
use super::{HubConfig, HubError};
use crate::blocking;
use crate::outbox::{End, Outbox, Outgoing, Pushed};
use crate::subscribe::Topic;
use crate::view::View;
use bytes::Bytes;
use herald_filter::Filter;
use herald_proto::{ErrorCode, Offset};
use herald_store::{DocSnapshot, Store, StoreError};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Log records per read.
const CHUNK: usize = 512;

/// A subscription waiting for its history.
#[derive(Debug)]
pub(super) struct Pending {
    pub(super) conn: u64,
    pub(super) id: Arc<str>,
    pub(super) nonce: u64,
    pub(super) subs_json: Bytes,
    pub(super) id_json: Bytes,
    pub(super) topic: Topic,
    pub(super) selector: Selector,
    pub(super) view: View,
    pub(super) snapshot: bool,
    pub(super) after: Offset,
    pub(super) cancel: Arc<AtomicBool>,
    pub(super) progress: Arc<Progress>,
    /// The connection's outbox.
    pub(super) outbox: Arc<Outbox>,
}

/// Sends the snapshot (if asked) and history of `pending`, then makes it
/// live. On failure the client gets an `error` for the subscription, which
/// no longer exists.
pub(super) async fn run(
    store: Arc<Store>,
    config: HubConfig,
    commands: mpsc::UnboundedSender<Command>,
    pending: Pending,
) {
    let outbox = pending.outbox.clone();
    match catch_up(&store, &config, &commands, &outbox, &pending).await {
        Ok(()) => {}
        Err(e) => {
            // The error first: once the shard drops the subscription its
            // cancel flag is set and nothing more may be queued for it.
            let error = Outgoing::message(&e.to_message(Some(pending.id.to_string()), None), None);
            if outbox.push_unless(error, &pending.cancel) == Pushed::Full {
                // Not even room for an error: the client is not reading.
                outbox.end(End::SlowConsumer {
                    resume_from: pending.after,
                });
            }
            let _ = commands.send(Command::Fail {
                conn: pending.conn,
                id: pending.id.clone(),
                nonce: pending.nonce,
            });
        }
    }
}

async fn catch_up(
    store: &Arc<Store>,
    config: &HubConfig,
    commands: &mpsc::UnboundedSender<Command>,
    outbox: &Outbox,
    pending: &Pending,
) -> Result<(), HubError> {
    let mut after = pending.after;
    if pending.snapshot {
        let Topic::Table(table) = &pending.topic else {
            return Err(HubError::new(
                ErrorCode::InvalidParameter,
                "`snapshot` is only for a single table",
            ));
        };
        match send_snapshot(store, config, outbox, pending, table).await? {
            Some(offset) => after = offset,
            None => return Ok(()),
        }
    }
    let topics = pending.topic.filter();
    loop {
        // Only what is durable: the log may hold a group being fsynced.
        let (reader, topics_now, head) = (store.clone(), topics.clone(), store.head());
        // About half an outbox at a time: what a reader holds while it waits
        // for room stays in proportion to what the connection may queue.
        let cap = config.outbox_bytes / 2;
        let chunk =
            blocking(move || reader.read_log_capped(after, Some(head), &topics_now, CHUNK, cap))
                .await?;
        for record in &chunk.records {
            let event = record.to_event()?;
            if !pending.selector.selects(&event, &pending.view) {
                continue;
            }
            let item = pending.view.frame(&pending.subs_json, &event, &record.json);
            if !outbox.push_wait(item, &pending.cancel).await {
                return Ok(());
            }
            pending.progress.record(1, event.offset);
        }
        after = chunk.next_after;
        if !chunk.done {
            continue;
        }
        let (reply, answer) = oneshot::channel();
        let activate = Command::Activate {
            conn: pending.conn,
            id: pending.id.clone(),
            nonce: pending.nonce,
            after,
            reply,
        };
        if commands.send(activate).is_err() {
            return Ok(());
        }
        match answer.await {
            Ok(Activated::Behind) => continue,
            Ok(Activated::Live | Activated::Gone) | Err(_) => return Ok(()),
        }
    }
}

/// Sends the matching documents of `table` in chunks; the snapshot's offset,
/// or `None` if the subscription went away meanwhile.
async fn send_snapshot(
    store: &Arc<Store>,
    config: &HubConfig,
    outbox: &Outbox,
    pending: &Pending,
    table: &herald_store::TableName,
) -> Result<Option<Offset>, HubError> {
    let reader = store.clone();
    let snapshot = Arc::new(blocking(move || reader.snapshot()).await?);
    let offset = snapshot.offset();
    // The view may hold a group that is applied but not yet durable: show it
    // only once it is (an fsync away).
    while store.head() < offset {
        if *store.closed().borrow() {
            return Err(StoreError::Closed.into());
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    // First pass: where each chunk ends, so every chunk can say how many
    // there are. Both passes read the same consistent view.
    let filter = pending.selector.filter().clone();
    let (view, t, f) = (snapshot.clone(), table.clone(), filter.clone());
    let (docs_per_chunk, bytes_per_chunk) = (
        config.snapshot_chunk_docs.max(1),
        config.snapshot_chunk_bytes,
    );
    let chunks: Vec<usize> =
        blocking(move || chunk_sizes(&view, &t, &f, docs_per_chunk, bytes_per_chunk)).await?;
    let total = chunks.len();
    let mut last_id: Option<String> = None;
    for (i, &count) in chunks.iter().enumerate() {
        let (view, t, f, after) = (
            snapshot.clone(),
            table.clone(),
            filter.clone(),
            last_id.clone(),
        );
        let page = blocking(move || {
            view.scan(&t, after.as_deref(), count, |record| {
                matches_doc(&f, &record.json)
            })
        })
        .await?;
        last_id = page.docs.last().map(|(id, _)| id.clone());
        let json = snapshot_json(
            &pending.id_json,
            page.docs.iter().map(|(_, r)| pending.view.doc(&r.json)),
            i + 1,
            total,
            offset,
        );
        let last = i + 1 == total;
        let item = Outgoing::Message {
            kind: "snapshot",
            json,
            position: last.then_some(offset),
        };
        if !outbox.push_wait(item, &pending.cancel).await {
            return Ok(None);
        }
    }
    Ok(Some(offset))
}

/// The number of documents in each chunk (at least one chunk, maybe empty).
fn chunk_sizes(
    view: &DocSnapshot,
    table: &herald_store::TableName,
    filter: &Filter,
    docs_per_chunk: usize,
    bytes_per_chunk: usize,
) -> Result<Vec<usize>, StoreError> {
    let mut chunks = Vec::new();
    let (mut count, mut bytes) = (0usize, 0usize);
    let mut after: Option<String> = None;
    loop {
        let page = view.scan(table, after.as_deref(), 4096, |record| {
            matches_doc(filter, &record.json)
        })?;
        for (_, record) in &page.docs {
            if count == docs_per_chunk || (count > 0 && bytes + record.json.len() > bytes_per_chunk)
            {
                chunks.push(count);
                (count, bytes) = (0, 0);
            }
            count += 1;
            bytes += record.json.len();
        }
        match page.next_after {
            Some(next) => after = Some(next),
            None => break,
        }
    }
    chunks.push(count);
    Ok(chunks)
}

fn matches_doc(filter: &Filter, json: &[u8]) -> bool {
    filter.is_match_all()
        || serde_json::from_slice(json).is_ok_and(|doc: serde_json::Value| filter.matches(&doc))
}

/// A `snapshot` message around the documents' stored JSON, without parsing it.
fn snapshot_json<D: AsRef<[u8]>>(
    id_json: &[u8],
    docs: impl Iterator<Item = D>,
    chunk: usize,
    chunks: usize,
    offset: Offset,
) -> Bytes {
    let mut out = Vec::with_capacity(4096);
    out.extend_from_slice(b"{\"type\":\"snapshot\",\"id\":");
    out.extend_from_slice(id_json);
    out.extend_from_slice(b",\"docs\":[");
    for (i, doc) in docs.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(doc.as_ref());
    }
    out.extend_from_slice(
        format!("],\"chunk\":{chunk},\"chunks\":{chunks},\"offset\":{offset}}}").as_bytes(),
    );
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::ServerMessage;

    #[test]
    fn snapshot_messages_parse_as_server_messages() {
        let json = snapshot_json(
            b"\"s1\"",
            [&br#"{"id":"a"}"#[..], &br#"{"id":"b","n":1}"#[..]].into_iter(),
            2,
            3,
            Offset(9),
        );
        let parsed: ServerMessage = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            parsed,
            ServerMessage::Snapshot {
                id: "s1".into(),
                docs: vec![
                    serde_json::json!({"id": "a"}),
                    serde_json::json!({"id": "b", "n": 1})
                ],
                chunk: 2,
                chunks: 3,
                offset: Offset(9),
            }
        );
    }
}
