//! Encoding the event envelope once, reusing JSON we already have.
//!
//! The committer has every document as JSON text already (it serialized the
//! new document for the `docs` keyspace, and the old one is stored text), so
//! the envelope splices those bytes in instead of serializing the same
//! document again. The output is byte-for-byte what `serde_json` gives for
//! [`Event`]; a test holds the two together.

use herald_proto::{Event, EventBody};
use serde::Serialize;

/// JSON text already serialized for parts of an event's body.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Raw<'a> {
    /// The `doc` field (insert, update).
    pub(crate) doc: Option<&'a [u8]>,
    /// The `old` field (update, delete).
    pub(crate) old: Option<&'a [u8]>,
    /// The `data` field (publish).
    pub(crate) data: Option<&'a [u8]>,
}

/// Serializes `event` as its wire envelope.
pub(crate) fn encode(event: &Event, raw: Raw<'_>) -> Vec<u8> {
    let raw_len = raw.doc.map_or(0, <[u8]>::len)
        + raw.old.map_or(0, <[u8]>::len)
        + raw.data.map_or(0, <[u8]>::len);
    let mut out = Vec::with_capacity(192 + event.topic.len() + raw_len);
    out.extend_from_slice(b"{\"offset\":");
    value(&mut out, &event.offset);
    out.extend_from_slice(b",\"epoch\":\"");
    out.extend_from_slice(event.epoch.to_string().as_bytes());
    out.extend_from_slice(b"\",\"ts\":");
    value(&mut out, &event.ts);
    field(&mut out, "topic", &event.topic);
    field(&mut out, "op", &event.op());
    match &event.body {
        EventBody::Insert {
            table,
            id,
            version,
            doc,
            changed,
        } => {
            doc_header(&mut out, table, id, *version);
            raw_or(&mut out, "doc", raw.doc, doc);
            field(&mut out, "changed", changed);
        }
        EventBody::Update {
            table,
            id,
            version,
            doc,
            old,
            changed,
        } => {
            doc_header(&mut out, table, id, *version);
            raw_or(&mut out, "doc", raw.doc, doc);
            raw_or(&mut out, "old", raw.old, old);
            field(&mut out, "changed", changed);
        }
        EventBody::Delete {
            table,
            id,
            version,
            old,
            changed,
        } => {
            doc_header(&mut out, table, id, *version);
            raw_or(&mut out, "old", raw.old, old);
            field(&mut out, "changed", changed);
        }
        EventBody::Publish {
            channel,
            data,
            from,
        } => {
            field(&mut out, "channel", channel);
            raw_or(&mut out, "data", raw.data, data);
            if let Some(from) = from {
                field(&mut out, "from", from);
            }
        }
    }
    out.push(b'}');
    out
}

/// The fields every document event starts with.
fn doc_header(out: &mut Vec<u8>, table: &str, id: &str, version: herald_proto::Version) {
    field(out, "table", table);
    field(out, "id", id);
    field(out, "version", &version);
}

fn value<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(&mut *out, v).expect("writing JSON to a Vec cannot fail");
}

fn field<T: Serialize + ?Sized>(out: &mut Vec<u8>, name: &str, v: &T) {
    out.extend_from_slice(b",\"");
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b"\":");
    value(out, v);
}

fn raw_or<T: Serialize + ?Sized>(out: &mut Vec<u8>, name: &str, raw: Option<&[u8]>, v: &T) {
    match raw {
        Some(bytes) => {
            out.extend_from_slice(b",\"");
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"\":");
            out.extend_from_slice(bytes);
        }
        None => field(out, name, v),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::{Epoch, Offset, Timestamp, Version};
    use serde_json::json;

    fn events() -> Vec<Event> {
        let doc = json!({"id": "a\"b", "n": 1.5, "s": "é\n", "nested": {"x": [1, null]}});
        let old = json!({"id": "a\"b", "n": 1});
        let bodies = vec![
            EventBody::Insert {
                table: "t".into(),
                id: "a\"b".into(),
                version: Version(1),
                doc: doc.clone(),
                changed: vec!["id".into(), "n".into()],
            },
            EventBody::Update {
                table: "t".into(),
                id: "a\"b".into(),
                version: Version(2),
                doc: doc.clone(),
                old: old.clone(),
                changed: vec!["n".into()],
            },
            EventBody::Delete {
                table: "t".into(),
                id: "a\"b".into(),
                version: Version(3),
                old,
                changed: vec![],
            },
            EventBody::Publish {
                channel: "chat:x".into(),
                data: json!({"text": "hi\u{1}"}),
                from: Some("u\"1".into()),
            },
            EventBody::Publish {
                channel: "c".into(),
                data: json!(null),
                from: None,
            },
        ];
        bodies
            .into_iter()
            .enumerate()
            .map(|(i, body)| Event {
                offset: Offset(i as u64 + 1),
                epoch: Epoch(0xabc),
                ts: Timestamp(1_700_000_000_000),
                topic: "table:t".into(),
                body,
            })
            .collect()
    }

    #[test]
    fn matches_serde_with_and_without_raw_parts() {
        for event in events() {
            let expected = serde_json::to_vec(&event).unwrap();
            assert_eq!(encode(&event, Raw::default()), expected, "{event:?}");
            let (doc, old, data) = match &event.body {
                EventBody::Insert { doc, .. } => {
                    (Some(serde_json::to_vec(doc).unwrap()), None, None)
                }
                EventBody::Update { doc, old, .. } => (
                    Some(serde_json::to_vec(doc).unwrap()),
                    Some(serde_json::to_vec(old).unwrap()),
                    None,
                ),
                EventBody::Delete { old, .. } => {
                    (None, Some(serde_json::to_vec(old).unwrap()), None)
                }
                EventBody::Publish { data, .. } => {
                    (None, None, Some(serde_json::to_vec(data).unwrap()))
                }
            };
            let raw = Raw {
                doc: doc.as_deref(),
                old: old.as_deref(),
                data: data.as_deref(),
            };
            assert_eq!(encode(&event, raw), expected, "{event:?}");
        }
    }
}
