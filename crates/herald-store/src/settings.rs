//! Durable settings of the layers above the store: persistent rooms, change
//! routing rules. Small JSON values under `(kind, name)`, written straight to
//! the `settings` keyspace and fsynced before the call returns.
//!
//! They are not events: changing a setting takes no offset and nothing is
//! appended to the log, so clients replaying "everything" never see them.
//! Writers of one kind must serialize their own changes (the store does not
//! order two concurrent writes to the same name).

use crate::error::StoreError;
use crate::layout;
use crate::store::Store;
use bytes::Bytes;
use fjall::PersistMode;

impl Store {
    /// Stores (or replaces) the setting `name` of `kind`, durably.
    pub fn put_setting(&self, kind: &str, name: &str, value: &[u8]) -> Result<(), StoreError> {
        let key = setting_key(kind, name)?;
        self.settings.insert(key, value)?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }

    /// Removes the setting `name` of `kind`, durably; whether it existed.
    pub fn delete_setting(&self, kind: &str, name: &str) -> Result<bool, StoreError> {
        let key = setting_key(kind, name)?;
        if !self.settings.contains_key(&key)? {
            return Ok(false);
        }
        self.settings.remove(key)?;
        self.db.persist(PersistMode::SyncAll)?;
        Ok(true)
    }

    /// Every setting of `kind`, as `(name, value)` in name order.
    pub fn settings(&self, kind: &str) -> Result<Vec<(String, Bytes)>, StoreError> {
        let prefix = setting_key(kind, "")?;
        let mut out = Vec::new();
        for guard in self.settings.prefix(&prefix) {
            let (key, value) = guard.into_inner()?;
            let name = std::str::from_utf8(&key[prefix.len()..]).map_err(|_| {
                StoreError::Corrupt(format!("a {kind} setting's name is not UTF-8"))
            })?;
            out.push((name.to_owned(), Bytes::copy_from_slice(&value)));
        }
        Ok(out)
    }
}

/// The key of a setting; kinds and names never hold `0x00`, so keys split
/// unambiguously and one kind's settings form a contiguous range.
fn setting_key(kind: &str, name: &str) -> Result<Vec<u8>, StoreError> {
    if kind.is_empty() || kind.contains('\0') || name.contains('\0') {
        return Err(StoreError::InvalidConfig(format!(
            "setting names hold no NUL byte and kinds are not empty (kind {kind:?})"
        )));
    }
    Ok(layout::setting_key(kind, name))
}

#[cfg(test)]
mod tests {
    use crate::{Store, StoreConfig};

    #[test]
    fn settings_survive_a_reopen_and_kinds_do_not_mix() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        {
            let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
            store.put_setting("room", "chat:a", br#"{"x":1}"#).unwrap();
            store.put_setting("room", "chat:b", br#"{"x":2}"#).unwrap();
            store.put_setting("roomy", "z", b"{}").unwrap();
            store.put_setting("room", "chat:a", br#"{"x":3}"#).unwrap();
            assert!(store.delete_setting("room", "chat:b").unwrap());
            assert!(!store.delete_setting("room", "chat:b").unwrap());
            rt.block_on(store.close());
        }
        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let rooms = store.settings("room").unwrap();
        assert_eq!(rooms.len(), 1);
        assert_eq!(rooms[0].0, "chat:a");
        assert_eq!(&rooms[0].1[..], br#"{"x":3}"#);
        assert_eq!(store.settings("roomy").unwrap().len(), 1);
        assert!(store.put_setting("", "a", b"{}").is_err());
        assert!(store.put_setting("room", "a\0b", b"{}").is_err());
        rt.block_on(store.close());
    }
}
