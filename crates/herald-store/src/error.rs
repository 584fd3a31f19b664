//! The store's one error type.

use herald_proto::{Epoch, ErrorCode, Offset, Version};

/// Everything that can go wrong in the store. Expected conditions (a missing
/// document, a version mismatch) are variants; the server maps each to a code.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A table name is not `[A-Za-z0-9_]{1,64}`.
    #[error("invalid table name {name:?}: {reason}")]
    InvalidTable {
        /// The rejected name (truncated to 80 characters).
        name: String,
        /// What rule it broke.
        reason: &'static str,
    },
    /// A document id breaks the id rules.
    #[error("invalid document id: {reason}")]
    InvalidId {
        /// What rule it broke.
        reason: &'static str,
    },
    /// A channel name breaks the channel rules.
    #[error("invalid channel name {name:?}: {reason}")]
    InvalidChannel {
        /// The rejected name (truncated to 80 characters).
        name: String,
        /// What rule it broke.
        reason: &'static str,
    },
    /// A document, or the result of a merge patch, is not a JSON object.
    #[error("{what} must be a JSON object")]
    NotAnObject {
        /// What was not an object ("document", "merge result", ...).
        what: &'static str,
    },
    /// The document's `id` field is missing, not a string, or differs from the target id.
    #[error("document field \"id\" {reason}")]
    IdMismatch {
        /// What is wrong with it.
        reason: String,
    },
    /// A guarded write ([`crate::WriteOp::guarded`]) touched a row its rule
    /// does not admit.
    #[error("the write rule of table {table:?} does not admit {which} (id {id:?})")]
    RuleViolation {
        /// The table.
        table: String,
        /// The document id.
        id: String,
        /// Which row failed: the stored one or the new one.
        which: &'static str,
    },
    /// A serialized document is larger than `max_doc_bytes`.
    #[error("document is {size} bytes, more than the limit of {max} bytes")]
    DocTooLarge {
        /// Serialized size.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// Insert of an id that exists.
    #[error("document {id:?} already exists in table {table:?}")]
    AlreadyExists {
        /// Table name.
        table: String,
        /// Document id.
        id: String,
    },
    /// The document does not exist.
    #[error("document {id:?} not found in table {table:?}")]
    NotFound {
        /// Table name.
        table: String,
        /// Document id.
        id: String,
    },
    /// The expected version does not match the stored one.
    #[error("expected version {expected} but the document is {}", describe_actual(*.actual))]
    VersionMismatch {
        /// The version the writer expected.
        expected: Version,
        /// The stored version, or `None` if the document does not exist.
        actual: Option<Version>,
    },
    /// A batch with no operations.
    #[error("a batch needs at least one operation")]
    EmptyBatch,
    /// A batch with more operations than allowed.
    #[error("a batch may hold at most {max} operations, got {len}")]
    BatchTooLarge {
        /// Operations in the batch.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// One operation of a batch failed; nothing in the batch was written.
    #[error("ops[{index}]: {source}")]
    InBatch {
        /// Zero-based index of the failed operation.
        index: usize,
        /// Why it failed.
        source: Box<StoreError>,
    },
    /// A read from a position that retention already removed.
    #[error(
        "offset {requested} is no longer in the log; the earliest available offset is {earliest}"
    )]
    Unrecoverable {
        /// The position asked for (the last offset the reader had).
        requested: Offset,
        /// The first offset still in the log.
        earliest: Offset,
    },
    /// A resume position from another history of the log (the data
    /// directory was replaced): nothing can be resumed from it.
    #[error(
        "the position is from epoch {token}, but the log is epoch {epoch}: its history is gone; \
         start over from a snapshot"
    )]
    OtherEpoch {
        /// The epoch the position named.
        token: Epoch,
        /// The log's epoch.
        epoch: Epoch,
        /// The first offset still in the log.
        earliest: Offset,
    },
    /// The store is closed or closing.
    #[error("the store is closed")]
    Closed,
    /// The group commit failed. The outcome is unknown: the write may have
    /// reached the log before the failure and reappear after a restart.
    #[error("commit failed, the write may or may not be stored: {reason}")]
    CommitFailed {
        /// The engine's error.
        reason: String,
    },
    /// The configuration is invalid; says which setting and why.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// The storage engine failed (fjall, or the documents' tree).
    #[error("storage engine: {0}")]
    Engine(#[from] fjall::Error),
    /// Data on disk does not decode; names what and where.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// The data directory cannot be created or opened.
    #[error("data directory {path}: {source}")]
    Io {
        /// The directory.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },
}

fn describe_actual(actual: Option<Version>) -> String {
    match actual {
        Some(v) => format!("at version {v}"),
        None => "missing".to_owned(),
    }
}

impl StoreError {
    /// The innermost error: for a failed batch operation, its cause.
    #[must_use]
    pub fn root(&self) -> &StoreError {
        match self {
            StoreError::InBatch { source, .. } => source.root(),
            other => other,
        }
    }

    /// The error code a client sees for this error (that of its root).
    /// [`ErrorCode::Internal`] means a server-side failure whose details
    /// belong in the server's log, not in the answer.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        match self.root() {
            StoreError::InvalidTable { .. } => ErrorCode::InvalidTable,
            StoreError::InvalidId { .. } => ErrorCode::InvalidId,
            StoreError::InvalidChannel { .. } => ErrorCode::InvalidChannel,
            StoreError::NotAnObject { .. } => ErrorCode::NotAnObject,
            StoreError::IdMismatch { .. } => ErrorCode::IdMismatch,
            StoreError::RuleViolation { .. } => ErrorCode::Forbidden,
            StoreError::DocTooLarge { .. } => ErrorCode::PayloadTooLarge,
            StoreError::AlreadyExists { .. } => ErrorCode::AlreadyExists,
            StoreError::NotFound { .. } => ErrorCode::NotFound,
            StoreError::VersionMismatch { .. } => ErrorCode::VersionMismatch,
            StoreError::EmptyBatch | StoreError::BatchTooLarge { .. } => ErrorCode::InvalidBatch,
            StoreError::Unrecoverable { .. } | StoreError::OtherEpoch { .. } => {
                ErrorCode::UnrecoverablePosition
            }
            StoreError::Closed => ErrorCode::ShuttingDown,
            StoreError::InBatch { .. }
            | StoreError::CommitFailed { .. }
            | StoreError::InvalidConfig(_)
            | StoreError::Engine(_)
            | StoreError::Corrupt(_)
            | StoreError::Io { .. } => ErrorCode::Internal,
        }
    }

    /// For [`StoreError::Unrecoverable`] and [`StoreError::OtherEpoch`]
    /// (also inside a batch): the earliest
    /// offset still in the log.
    #[must_use]
    pub fn earliest(&self) -> Option<Offset> {
        match self.root() {
            StoreError::Unrecoverable { earliest, .. }
            | StoreError::OtherEpoch { earliest, .. } => Some(*earliest),
            _ => None,
        }
    }
}

/// Maps an I/O error on `path` to [`StoreError::Io`] naming it.
pub(crate) fn io_error(path: &std::path::Path) -> impl Fn(std::io::Error) -> StoreError + '_ {
    move |source| StoreError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl From<lsm_tree::Error> for StoreError {
    /// The documents' tree is the engine fjall is built on: its errors are
    /// the engine's.
    fn from(e: lsm_tree::Error) -> StoreError {
        StoreError::Engine(e.into())
    }
}
