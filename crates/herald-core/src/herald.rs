//! The [`Herald`] handle.

use herald_proto::{Offset, Version, WriteAck};
use herald_store::{
    ChannelName, DocId, Store, StoreConfig, StoreError, TableName, WriteOp, Written,
};
use serde_json::{Map, Value};
use std::path::Path;
use std::sync::Arc;

/// A stored document with its version.
#[derive(Debug, Clone, PartialEq)]
pub struct Doc {
    /// The document's version (1 when created, +1 per write).
    pub version: Version,
    /// The document itself, including its `id` field.
    pub fields: Map<String, Value>,
}

/// An open Herald engine. Cheap to clone; every clone shares one store.
#[derive(Debug, Clone)]
pub struct Herald {
    pub(crate) store: Arc<Store>,
}

impl Herald {
    /// Opens (or creates) the data directory with default settings.
    pub fn open(dir: impl AsRef<Path>) -> Result<Herald, StoreError> {
        Herald::open_with(dir, StoreConfig::default())
    }

    /// Opens (or creates) the data directory.
    pub fn open_with(dir: impl AsRef<Path>, config: StoreConfig) -> Result<Herald, StoreError> {
        Ok(Herald {
            store: Arc::new(Store::open(dir, config)?),
        })
    }

    /// The underlying store, for reads and batches.
    #[must_use]
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Inserts a document (id from its `id` field, or generated).
    pub async fn insert(&self, table: &str, doc: Value) -> Result<WriteAck, StoreError> {
        self.write_doc(WriteOp::insert(TableName::new(table)?, doc)?)
            .await
    }

    /// Creates or replaces a document; with `expect`, only at that version.
    pub async fn put(
        &self,
        table: &str,
        id: &str,
        doc: Value,
        expect: Option<Version>,
    ) -> Result<WriteAck, StoreError> {
        self.write_doc(WriteOp::put(
            TableName::new(table)?,
            DocId::new(id)?,
            doc,
            expect,
        )?)
        .await
    }

    /// Applies a JSON merge patch to an existing document.
    pub async fn patch(
        &self,
        table: &str,
        id: &str,
        patch: Value,
        expect: Option<Version>,
    ) -> Result<WriteAck, StoreError> {
        self.write_doc(WriteOp::patch(
            TableName::new(table)?,
            DocId::new(id)?,
            patch,
            expect,
        ))
        .await
    }

    /// Deletes a document.
    pub async fn delete(
        &self,
        table: &str,
        id: &str,
        expect: Option<Version>,
    ) -> Result<WriteAck, StoreError> {
        self.write_doc(WriteOp::delete(
            TableName::new(table)?,
            DocId::new(id)?,
            expect,
        ))
        .await
    }

    /// Reads a document and its version.
    pub fn get(&self, table: &str, id: &str) -> Result<Option<Doc>, StoreError> {
        match self.store.get(&TableName::new(table)?, &DocId::new(id)?)? {
            Some(record) => Ok(Some(Doc {
                version: record.version,
                fields: record.to_map()?,
            })),
            None => Ok(None),
        }
    }

    /// Appends a message to a channel; returns its offset. The message is
    /// always logged: channel namespaces (live-only channels) are the
    /// hub's, see `Hub::publish`.
    pub async fn publish(&self, channel: &str, data: Value) -> Result<Offset, StoreError> {
        self.publish_from(channel, data, None).await
    }

    /// [`Herald::publish`], saying who published (the event's `from`).
    pub async fn publish_from(
        &self,
        channel: &str,
        data: Value,
        from: Option<String>,
    ) -> Result<Offset, StoreError> {
        let op = WriteOp::publish(ChannelName::new(channel)?, data, from);
        Ok(self.store.write_one(op).await?.offset())
    }

    /// Finishes queued writes, fsyncs and stops accepting writes.
    pub async fn close(&self) {
        self.store.close().await;
    }

    /// Applies one document operation; its acknowledgement.
    pub async fn write_doc(&self, op: WriteOp) -> Result<WriteAck, StoreError> {
        match self.store.write_one(op).await? {
            Written::Doc(ack) => Ok(ack),
            Written::Message { .. } => Err(StoreError::Corrupt(
                "a document write returned a message".into(),
            )),
        }
    }
}
