//! The event envelope: the same fields on WebSocket, SSE, replay and in-process.

use crate::position::{Epoch, Offset, Timestamp, Version};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One entry of the change log.
///
/// Serialized, it is the envelope
/// `{offset, epoch, ts, topic, op, table?, id?, version?, doc?, old?, changed?, channel?, data?, from?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Position in the log.
    pub offset: Offset,
    /// History the offset belongs to.
    pub epoch: Epoch,
    /// When the event was appended.
    pub ts: Timestamp,
    /// `table:<name>` for table changes, the channel name for messages.
    pub topic: String,
    /// What happened; the `op` field names the variant.
    #[serde(flatten)]
    pub body: EventBody,
}

impl Event {
    /// What a subscription's filter is evaluated on: the document for
    /// inserts and updates (its new state, so a subscriber never receives a
    /// row it does not match), the old document for deletes, the data of a
    /// message.
    #[must_use]
    pub fn subject(&self) -> &Value {
        match &self.body {
            EventBody::Insert { doc, .. } | EventBody::Update { doc, .. } => doc,
            EventBody::Delete { old, .. } => old,
            EventBody::Publish { data, .. } => data,
        }
    }

    /// The operation, without its payload.
    #[must_use]
    pub fn op(&self) -> Op {
        match self.body {
            EventBody::Insert { .. } => Op::Insert,
            EventBody::Update { .. } => Op::Update,
            EventBody::Delete { .. } => Op::Delete,
            EventBody::Publish { .. } => Op::Publish,
        }
    }
}

/// The payload of an event, tagged by `op`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum EventBody {
    /// A document was created.
    Insert {
        /// Table name.
        table: String,
        /// Document id.
        id: String,
        /// The new version (always 1 after an insert into an empty slot).
        version: Version,
        /// The document as stored (always an object).
        doc: Value,
        /// Top-level fields that differ from before (all of them, for an insert).
        changed: Vec<String>,
    },
    /// A document was replaced or patched.
    Update {
        /// Table name.
        table: String,
        /// Document id.
        id: String,
        /// The new version.
        version: Version,
        /// The document after the write (an object).
        doc: Value,
        /// The document before the write (an object). Withheld (absent on
        /// the wire, `null` here) from a reader whose row-level rule does not
        /// admit the previous version.
        #[serde(default)]
        old: Value,
        /// Top-level fields whose value differs between `old` and `doc`;
        /// withheld with `old`.
        #[serde(default)]
        changed: Vec<String>,
    },
    /// A document was deleted.
    Delete {
        /// Table name.
        table: String,
        /// Document id.
        id: String,
        /// The version the deletion was recorded at (last version + 1).
        version: Version,
        /// The document before it was deleted (an object).
        old: Value,
        /// Top-level fields that were removed (all of them).
        changed: Vec<String>,
    },
    /// A message was published to a channel.
    Publish {
        /// Channel name.
        channel: String,
        /// The message payload, any JSON value.
        data: Value,
        /// Who published it, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
    },
}

/// The kind of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// A document was created.
    Insert,
    /// A document was replaced or patched.
    Update,
    /// A document was deleted.
    Delete,
    /// A channel message.
    Publish,
}

impl Op {
    /// The name used on the wire.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Publish => "publish",
        }
    }
}

/// The answer to a successful document write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WriteAck {
    /// The document id (generated when the insert named none).
    pub id: String,
    /// The document's version after the write.
    pub version: Version,
    /// The offset of the write's event in the log.
    pub offset: Offset,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn envelope_has_flat_fields_in_contract_order() {
        let e = Event {
            offset: Offset(7),
            epoch: Epoch(1),
            ts: Timestamp(1000),
            topic: "table:posts".into(),
            body: EventBody::Insert {
                table: "posts".into(),
                id: "a".into(),
                version: Version(1),
                doc: json!({"id": "a"}),
                changed: vec!["id".into()],
            },
        };
        let text = serde_json::to_string(&e).unwrap();
        assert_eq!(
            text,
            r#"{"offset":7,"epoch":"0000000000000001","ts":1000,"topic":"table:posts","op":"insert","table":"posts","id":"a","version":1,"doc":{"id":"a"},"changed":["id"]}"#
        );
        let back: Event = serde_json::from_str(&text).unwrap();
        assert_eq!(back, e);
        assert_eq!(back.op(), Op::Insert);
    }

    #[test]
    fn publish_omits_missing_sender() {
        let e = Event {
            offset: Offset(1),
            epoch: Epoch(1),
            ts: Timestamp(1),
            topic: "chat:x".into(),
            body: EventBody::Publish {
                channel: "chat:x".into(),
                data: json!("hi"),
                from: None,
            },
        };
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(v["op"], "publish");
        assert!(v.get("from").is_none());
    }
}
