//! Validated names: tables, document ids and channels.
//!
//! Parsing happens once at the edge; code past it holds these types and never
//! re-checks. The byte rules also make the on-disk key layout unambiguous: a
//! table name never contains the `0x00` separator, and neither does an id.

use crate::error::StoreError;
use std::fmt;

const MAX_TABLE_LEN: usize = 64;
const MAX_ID_LEN: usize = 256;
const MAX_CHANNEL_LEN: usize = 255;

/// A table name: 1 to 64 characters from `[A-Za-z0-9_]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TableName(String);

impl TableName {
    /// Validates a table name.
    ///
    /// ```
    /// use herald_store::TableName;
    /// assert!(TableName::new("orders_2026").is_ok());
    /// assert!(TableName::new("bad-name").is_err());
    /// ```
    pub fn new(name: impl Into<String>) -> Result<TableName, StoreError> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_TABLE_LEN {
            Some("it is longer than 64 characters")
        } else if !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            Some("only letters, digits and _ are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(StoreError::InvalidTable {
                name: truncate(&name),
                reason,
            }),
            None => Ok(TableName(name)),
        }
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The log topic of this table's changes: `table:<name>`.
    #[must_use]
    pub fn topic(&self) -> String {
        format!("table:{}", self.0)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A document id: 1 to 256 bytes of UTF-8 without control characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DocId(String);

impl DocId {
    /// Validates a document id.
    ///
    /// ```
    /// use herald_store::DocId;
    /// assert!(DocId::new("user-42").is_ok());
    /// assert!(DocId::new("").is_err());
    /// assert!(DocId::new("a\nb").is_err());
    /// ```
    pub fn new(id: impl Into<String>) -> Result<DocId, StoreError> {
        let id = id.into();
        let reason = if id.is_empty() {
            Some("it is empty")
        } else if id.len() > MAX_ID_LEN {
            Some("it is longer than 256 bytes")
        } else if id.chars().any(char::is_control) {
            Some("it contains a control character")
        } else if id == "." || id == ".." {
            // URL parsers resolve these path segments away (even encoded),
            // so such a document could never be addressed over REST.
            Some("\".\" and \"..\" are not allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(StoreError::InvalidId { reason }),
            None => Ok(DocId(id)),
        }
    }

    /// A fresh id, unique and ordered by creation time (UUID v7).
    #[must_use]
    pub fn generate() -> DocId {
        DocId(uuid::Uuid::now_v7().to_string())
    }

    /// The id.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DocId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A channel name: 1 to 255 bytes, no whitespace or control characters, no
/// `..`, and not starting with `table:` (that prefix names table topics).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(String);

impl ChannelName {
    /// Validates a channel name.
    ///
    /// ```
    /// use herald_store::ChannelName;
    /// assert!(ChannelName::new("chat:general").is_ok());
    /// assert!(ChannelName::new("table:orders").is_err());
    /// ```
    pub fn new(name: impl Into<String>) -> Result<ChannelName, StoreError> {
        let name = name.into();
        let reason = if name.is_empty() {
            Some("it is empty")
        } else if name.len() > MAX_CHANNEL_LEN {
            Some("it is longer than 255 bytes")
        } else if name.chars().any(|c| c.is_control() || c.is_whitespace()) {
            Some("it contains whitespace or a control character")
        } else if name.contains("..") {
            Some("it contains \"..\"")
        } else if name.starts_with("table:") {
            Some("the prefix \"table:\" is reserved for table topics")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(StoreError::InvalidChannel {
                name: truncate(&name),
                reason,
            }),
            None => Ok(ChannelName(name)),
        }
    }

    /// The name, which is also the channel's log topic.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names() {
        assert!(TableName::new("a").is_ok());
        assert!(TableName::new("A_b_9").is_ok());
        assert!(TableName::new("x".repeat(64)).is_ok());
        for bad in ["", "a b", "a-b", "a:b", "é", "a\0"] {
            assert!(TableName::new(bad).is_err(), "{bad:?}");
        }
        assert!(TableName::new("x".repeat(65)).is_err());
    }

    #[test]
    fn doc_ids() {
        assert!(DocId::new("a b/c:é").is_ok());
        assert!(DocId::new("x".repeat(256)).is_ok());
        assert!(DocId::new("x".repeat(257)).is_err());
        assert!(DocId::new("\u{7f}").is_err());
        assert!(DocId::new("a\0b").is_err());
        assert!(DocId::new(".").is_err());
        assert!(DocId::new("..").is_err());
        assert!(DocId::new("...").is_ok());
        assert_ne!(DocId::generate(), DocId::generate());
    }

    #[test]
    fn channel_names() {
        assert!(ChannelName::new("user:42").is_ok());
        for bad in ["", "a b", "a..b", "table:x", "a\tb"] {
            assert!(ChannelName::new(bad).is_err(), "{bad:?}");
        }
    }
}
