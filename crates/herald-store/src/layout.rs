//! The on-disk layout: keyspaces, key encodings and record formats.
//!
//! | where | key | value |
//! |---|---|---|
//! | `documents/` (an LSM tree, see `docs`) | `table ‖ 0x00 ‖ id` | [`DocRecord`]: `version: u64 BE ‖ document JSON` |
//! | `documents/flushed` (a file) | | `u64 BE ‖ crc32 LE`: the last offset the tree's tables reflect |
//! | fjall keyspace `meta` | a name (below) | `u64 BE` |
//! | fjall keyspace `settings` | `kind ‖ 0x00 ‖ name` | JSON (rooms, routes: see [`crate::settings`]) |
//!
//! The change log is not in fjall: it is a run of segment files in `log/`
//! (see `segment` for the record format). Stores written before kept it in
//! a `log` keyspace ([`LogRecord::split`] reads those records); opening one
//! moves them into segments. Likewise, documents were once in a fjall `docs`
//! keyspace, with their `applied` mark in `meta`; opening moves them into
//! `documents/`.
//!
//! Table names never contain `0x00` and neither do ids, so the doc key splits
//! unambiguously and a table's documents form one contiguous, id-ordered range.
//! Log keys are big-endian so byte order is offset order.
//!
//! The event JSON inside a log record is exactly the wire envelope, so replay
//! and delivery send it without re-serializing; the binary header lets readers
//! select by topic and time without parsing JSON.

use crate::error::StoreError;
use bytes::Bytes;
use herald_proto::{Offset, Timestamp, Version};

/// Folder of the documents' tree, in the data directory.
pub(crate) const DOCS_DIR: &str = "documents";
/// Keyspace of documents in stores written before they had their own tree.
pub(crate) const LEGACY_DOCS: &str = "docs";
/// Keyspace of the change log in stores of the first format.
pub(crate) const LEGACY_LOG: &str = "log";
/// Keyspace of store metadata.
pub(crate) const META: &str = "meta";
/// Keyspace of the upper layers' durable settings.
pub(crate) const SETTINGS: &str = "settings";

/// Meta key: the store's epoch.
pub(crate) const META_EPOCH: &[u8] = b"epoch";
/// Meta key: no offset below this value may ever be assigned again.
pub(crate) const META_OFFSET_FLOOR: &[u8] = b"offset_floor";
/// Meta key: every offset below this one was removed by retention.
pub(crate) const META_LOG_START: &[u8] = b"log_start";
/// Meta key: timestamp of the newest event removed by retention.
pub(crate) const META_TRIMMED_TS: &[u8] = b"trimmed_ts";
/// Meta key: the last offset whose effect on documents is in the `docs`
/// keyspace, in stores written before the documents had their own tree.
pub(crate) const META_APPLIED: &[u8] = b"applied";

const LOG_FORMAT: u8 = 1;
const LOG_HEADER: usize = 1 + 8 + 2;

/// The key of a document.
pub(crate) fn doc_key(table: &str, id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(table.len() + 1 + id.len());
    key.extend_from_slice(table.as_bytes());
    key.push(0);
    key.extend_from_slice(id.as_bytes());
    key
}

/// The key prefix shared by every document of a table.
pub(crate) fn table_prefix(table: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(table.len() + 1);
    key.extend_from_slice(table.as_bytes());
    key.push(0);
    key
}

/// The key of a setting: its kind, `0x00`, its name.
pub(crate) fn setting_key(kind: &str, name: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(kind.len() + 1 + name.len());
    key.extend_from_slice(kind.as_bytes());
    key.push(0);
    key.extend_from_slice(name.as_bytes());
    key
}

/// The key of a log entry in the first format's `log` keyspace.
pub(crate) fn log_key(offset: Offset) -> [u8; 8] {
    offset.0.to_be_bytes()
}

/// Decodes a log key.
pub(crate) fn decode_log_key(key: &[u8]) -> Result<Offset, StoreError> {
    read_u64(key, "log key").map(Offset)
}

/// A `u64` value of the `meta` keyspace, if set.
pub(crate) fn read_meta(meta: &fjall::Keyspace, key: &[u8]) -> Result<Option<u64>, StoreError> {
    meta.get(key)?
        .map(|v| read_u64(&v, "meta value"))
        .transpose()
}

/// Decodes a big-endian u64 value.
pub(crate) fn read_u64(bytes: &[u8], what: &str) -> Result<u64, StoreError> {
    let arr: [u8; 8] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is {} bytes, expected 8", bytes.len())))?;
    Ok(u64::from_be_bytes(arr))
}

/// A stored document: its version and its JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocRecord {
    /// The document's current version.
    pub version: Version,
    /// The document as JSON text (an object that includes its `id`).
    pub json: Bytes,
}

impl DocRecord {
    pub(crate) fn encode(version: Version, json: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + json.len());
        out.extend_from_slice(&version.0.to_be_bytes());
        out.extend_from_slice(json);
        out
    }

    pub(crate) fn decode(value: &[u8]) -> Result<DocRecord, StoreError> {
        if value.len() < 8 {
            return Err(StoreError::Corrupt(format!(
                "document record is {} bytes, shorter than its header",
                value.len()
            )));
        }
        Ok(DocRecord {
            version: Version(read_u64(&value[..8], "document version")?),
            json: Bytes::copy_from_slice(&value[8..]),
        })
    }

    /// Parses the document JSON.
    pub fn to_map(&self) -> Result<serde_json::Map<String, serde_json::Value>, StoreError> {
        serde_json::from_slice(&self.json)
            .map_err(|e| StoreError::Corrupt(format!("document JSON: {e}")))
    }
}

/// One entry of the change log as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Position in the log.
    pub offset: Offset,
    /// When it was appended.
    pub ts: Timestamp,
    /// Its topic.
    pub topic: String,
    /// The event envelope as JSON (the exact wire form).
    pub json: Bytes,
}

impl LogRecord {
    /// A record of the first format (kept to test reading and moving them).
    #[cfg(test)]
    pub(crate) fn encode(ts: Timestamp, topic: &str, json: &[u8]) -> Vec<u8> {
        let topic_len = u16::try_from(topic.len()).expect("topics are at most 262 bytes");
        let mut out = Vec::with_capacity(LOG_HEADER + topic.len() + json.len());
        out.push(LOG_FORMAT);
        out.extend_from_slice(&ts.0.to_be_bytes());
        out.extend_from_slice(&topic_len.to_be_bytes());
        out.extend_from_slice(topic.as_bytes());
        out.extend_from_slice(json);
        out
    }

    /// Splits a stored value into `(ts, topic, json)` without copying.
    pub(crate) fn split(value: &[u8]) -> Result<(Timestamp, &str, &[u8]), StoreError> {
        let corrupt = |why: &str| StoreError::Corrupt(format!("log record: {why}"));
        if value.len() < LOG_HEADER {
            return Err(corrupt("shorter than its header"));
        }
        if value[0] != LOG_FORMAT {
            return Err(corrupt(&format!("unknown format {}", value[0])));
        }
        let ts = Timestamp(read_u64(&value[1..9], "log timestamp")?);
        let topic_len = usize::from(u16::from_be_bytes([value[9], value[10]]));
        let rest = &value[LOG_HEADER..];
        if rest.len() < topic_len {
            return Err(corrupt("topic runs past the end"));
        }
        let topic =
            std::str::from_utf8(&rest[..topic_len]).map_err(|_| corrupt("topic is not UTF-8"))?;
        Ok((ts, topic, &rest[topic_len..]))
    }

    /// A record from the parts [`LogRecord::split`] returned.
    pub(crate) fn from_parts(offset: Offset, ts: Timestamp, topic: &str, json: &[u8]) -> LogRecord {
        LogRecord {
            offset,
            ts,
            topic: topic.to_owned(),
            json: Bytes::copy_from_slice(json),
        }
    }

    /// Parses the envelope.
    pub fn to_event(&self) -> Result<herald_proto::Event, StoreError> {
        serde_json::from_slice(&self.json)
            .map_err(|e| StoreError::Corrupt(format!("event JSON at offset {}: {e}", self.offset)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doc_keys_sort_by_table_then_id() {
        let mut keys = vec![
            doc_key("b", "1"),
            doc_key("a", "z"),
            doc_key("a_", "0"),
            doc_key("a", "a"),
        ];
        keys.sort();
        assert_eq!(
            keys,
            vec![
                doc_key("a", "a"),
                doc_key("a", "z"),
                doc_key("a_", "0"),
                doc_key("b", "1")
            ]
        );
        assert!(doc_key("a", "x").starts_with(&table_prefix("a")));
        assert!(!doc_key("a_", "x").starts_with(&table_prefix("a")));
    }

    #[test]
    fn log_record_round_trips() {
        let v = LogRecord::encode(Timestamp(9), "table:t", b"{}");
        let (ts, topic, json) = LogRecord::split(&v).unwrap();
        assert_eq!((ts, topic, json), (Timestamp(9), "table:t", &b"{}"[..]));
    }

    #[test]
    fn truncated_records_are_corrupt_not_panics() {
        let v = LogRecord::encode(Timestamp(9), "table:t", b"{}");
        for cut in 0..v.len() - 2 {
            let _ = LogRecord::split(&v[..cut]);
        }
        assert!(LogRecord::split(&v[..5]).is_err());
        assert!(DocRecord::decode(&[1, 2]).is_err());
        assert!(decode_log_key(&[1]).is_err());
    }
}
