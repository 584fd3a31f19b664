//! [`blocking`]: running a store read off the async threads.

use herald_store::StoreError;

/// Runs `read` (a store read, which may touch the disk) on Tokio's blocking
/// pool. A read that panicked is a [`StoreError::Corrupt`].
pub async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(read)
        .await
        .map_err(|e| StoreError::Corrupt(format!("store reader stopped: {e}")))?
}
