//! Herald's embedded store: tables of JSON documents and a durable, ordered
//! change log, written together atomically.
//!
//! Every mutation (insert, replace, merge patch, delete, channel publish)
//! appends an event to the log in the same atomic write as the document
//! change. Each event gets an [`Offset`](herald_proto::Offset) that is
//! strictly increasing and never reused, also across crashes; the log has an
//! [`Epoch`](herald_proto::Epoch) created with the data directory. A write is
//! acknowledged only once durable, and concurrent writers share one fsync.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use herald_store::{Store, StoreConfig, TableName, WriteOp};
//! let dir = tempfile::tempdir()?;
//! let store = Store::open(dir.path(), StoreConfig::default())?;
//! let posts = TableName::new("posts")?;
//! let written = store.write_one(WriteOp::insert(posts, serde_json::json!({"id": "p1", "title": "Hi"}))?).await?;
//! assert_eq!(written.offset().0, 1);
//! store.close().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`store`]: the [`Store`] handle: open and recover, write, read documents and the log.
//! - `committer`: the single writer thread: group commit, offsets, retention.
//! - `log` and `segment`: the change log in append-only segment files.
//! - `docs`: the documents' LSM tree, written without a journal (the log
//!   is its write-ahead log), and its flush and compaction threads.
//! - `applied`: how far documents reflect the log, for readers.
//! - `recover`: opening after a crash or from the first format.
//! - `apply`: what each operation does to a document, as pure functions.
//! - `envelope`: encoding each event's wire JSON once, reusing encoded documents.
//! - [`write`]: [`WriteOp`] constructors and outcomes.
//! - [`names`]: validated table names, document ids and channel names.
//! - [`settings`]: durable named settings of the layers above (rooms,
//!   routing rules), outside the log.
//! - [`layout`]: the engine's keyspaces, key encodings and record formats.
//! - [`config`]: the [`StoreConfig`] tree.
//! - [`stats`]: [`StoreStats`] (events appended, log size) and the metrics
//!   the committer records.
//! - [`error`]: the [`StoreError`] enum.

mod applied;
mod apply;
mod committer;
pub mod config;
mod docs;
mod envelope;
pub mod error;
pub mod layout;
mod log;
pub mod names;
mod recover;
mod segment;
pub mod settings;
mod staging;
pub mod stats;
pub mod store;
pub mod write;

pub use config::{Durability, RetentionConfig, StoreConfig};
pub use error::StoreError;
pub use layout::{DocRecord, LogRecord};
pub use names::{ChannelName, DocId, TableName};
pub use stats::{Appended, StoreStats};
pub use store::{Committed, DocSnapshot, LogChunk, Page, Store, TopicFilter};
pub use write::{Derived, Router, RowGuard, WriteOp, Written};
