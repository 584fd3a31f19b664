//! API keys for servers and scripts, stored hashed in one JSON file (format
//! and write protocol in `keyfile`).
//!
//! A key reads `hrld_<id>_<secret>`: `id` is 12 random characters of
//! `[a-z0-9]`, public and used to find the key; `secret` is 32 random bytes
//! in unpadded base64url, shown once at creation and never stored. The file
//! keeps SHA-256 of the secret. A fast hash is right here: the secret has 256
//! bits of entropy, so there is nothing for a slow password hash to protect
//! against, and verification stays in the microseconds.

use crate::error::{AuthError, AuthErrorKind, ConfigError};
use crate::keyfile::{self, Record, Stamp};
use crate::permission::Permissions;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

const PREFIX: &str = "hrld_";
const ID_LEN: usize = 12;
const SECRET_BYTES: usize = 32;
/// Unpadded base64 of 32 bytes.
const SECRET_LEN: usize = 43;
const MAX_NAME_LEN: usize = 64;

/// What may be shown about a key: everything but its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKeyInfo {
    /// The public id, the part after `hrld_`.
    pub id: String,
    /// A label for people: 1 to 64 characters of `[A-Za-z0-9_.-]`.
    pub name: String,
    /// The permissions granted, as strings.
    pub permissions: Vec<String>,
    /// When it was created, in unix milliseconds.
    pub created_at: u64,
}

/// The API keys of one file, held in memory for fast verification.
///
/// Writers ([`create`](Self::create), [`revoke`](Self::revoke)) lock the
/// file across processes; a server picks up other processes' changes with
/// [`reload_if_changed`](Self::reload_if_changed).
pub struct ApiKeys {
    path: PathBuf,
    /// Guards the in-memory copy only. Held for map lookups and swaps, never
    /// during file I/O. Lock order: the file lock (`keyfile::lock`) first,
    /// then this.
    state: RwLock<State>,
}

#[derive(Default)]
struct State {
    by_id: HashMap<String, Key>,
    /// The file version loaded (or last tried); `None`: no file.
    stamp: Option<Stamp>,
}

struct Key {
    info: ApiKeyInfo,
    permissions: Permissions,
    secret_sha256: [u8; 32],
}

impl fmt::Debug for ApiKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("path", &self.path)
            .field("keys", &self.read().by_id.len())
            .finish()
    }
}

impl ApiKeys {
    /// Loads the keys in `path`. A missing file means no keys (it is
    /// created by the first [`create`](Self::create)); an unreadable or
    /// corrupt one is an error naming the file.
    pub fn open(path: &Path) -> Result<Self, ConfigError> {
        let (records, stamp) = keyfile::read(path)?;
        Ok(Self {
            path: path.to_owned(),
            state: RwLock::new(State {
                by_id: index(path, records)?,
                stamp,
            }),
        })
    }

    /// Creates a key named `name` granting `permissions`, and returns it with
    /// the full key string. That string is the only copy of the secret:
    /// show it once. The file's directory must exist.
    pub fn create(
        &self,
        name: &str,
        permissions: &Permissions,
    ) -> Result<(ApiKeyInfo, String), ConfigError> {
        check_name(name)?;
        if permissions.is_empty() {
            return Err(ConfigError::new(
                "an API key needs at least one permission, e.g. \"read:*\"",
            ));
        }
        self.modify(|records| {
            // ThreadRng is a CSPRNG (ChaCha, seeded from the OS).
            let mut rng = rand::rng();
            let id = loop {
                let id: String = (0..ID_LEN)
                    .map(|_| {
                        char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])
                    })
                    .collect();
                if !records.iter().any(|r| r.id == id) {
                    break id;
                }
            };
            let mut secret = [0u8; SECRET_BYTES];
            rng.fill(&mut secret);
            let secret = URL_SAFE_NO_PAD.encode(secret);
            let info = ApiKeyInfo {
                id,
                name: name.to_owned(),
                permissions: permissions.to_strings(),
                created_at: unix_millis(),
            };
            records.push(Record {
                id: info.id.clone(),
                name: info.name.clone(),
                permissions: info.permissions.clone(),
                created_at: info.created_at,
                secret_sha256: hex(&Sha256::digest(secret.as_bytes())),
            });
            let key = format!("{PREFIX}{}_{secret}", info.id);
            Ok((true, (info, key)))
        })
    }

    /// Every key, oldest first. Never includes secrets.
    pub fn list(&self) -> Vec<ApiKeyInfo> {
        let mut keys: Vec<ApiKeyInfo> =
            self.read().by_id.values().map(|k| k.info.clone()).collect();
        keys.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        keys
    }

    /// Deletes the key with `id`; `false` if there is none. Servers that
    /// share the file stop accepting it at their next
    /// [`reload_if_changed`](Self::reload_if_changed).
    pub fn revoke(&self, id: &str) -> Result<bool, ConfigError> {
        self.modify(|records| {
            let before = records.len();
            records.retain(|r| r.id != id);
            let removed = records.len() != before;
            Ok((removed, removed))
        })
    }

    /// The key `presented` (a whole `hrld_…` string) stands for, with its
    /// permissions. Any mismatch is [`UnknownApiKey`](AuthErrorKind::UnknownApiKey)
    /// without saying which part was wrong.
    pub fn verify(&self, presented: &str) -> Result<(ApiKeyInfo, Permissions), AuthError> {
        let unknown = || AuthError::new(AuthErrorKind::UnknownApiKey, "unknown API key");
        let (id, secret) = split(presented).ok_or_else(unknown)?;
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let state = self.read();
        let key = state.by_id.get(id).ok_or_else(unknown)?;
        if !constant_time_eq(&key.secret_sha256, &digest) {
            return Err(unknown());
        }
        Ok((key.info.clone(), key.permissions.clone()))
    }

    /// Reloads the file if another process changed it; `true` if it did.
    /// Cheap when nothing changed (one `stat`), so a server calls it every
    /// second. A deleted file means no keys. A corrupt file is reported
    /// once and the keys loaded before stay in use until it is fixed.
    pub fn reload_if_changed(&self) -> Result<bool, ConfigError> {
        let now = keyfile::stamp(&self.path)?;
        if now == self.read().stamp {
            return Ok(false);
        }
        let loaded = keyfile::read(&self.path)
            .and_then(|(records, stamp)| Ok((index(&self.path, records)?, stamp)));
        let mut state = self.write();
        match loaded {
            Ok((by_id, stamp)) => {
                *state = State { by_id, stamp };
                Ok(true)
            }
            Err(e) => {
                // Remember the bad version so it is reported once, not on
                // every call until it changes.
                state.stamp = now;
                Err(e)
            }
        }
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.read().by_id.is_empty()
    }

    /// Whether `s` has the shape of an API key (its prefix), so a bearer
    /// credential can be routed to API keys rather than JWT verification.
    pub fn looks_like_key(s: &str) -> bool {
        s.starts_with(PREFIX)
    }

    /// Under the file lock: re-reads the file (another process may have
    /// changed it), lets `change` edit the records, writes them back if it
    /// says they changed, and refreshes the in-memory keys.
    fn modify<T>(
        &self,
        change: impl FnOnce(&mut Vec<Record>) -> Result<(bool, T), ConfigError>,
    ) -> Result<T, ConfigError> {
        let lock = keyfile::lock(&self.path)?;
        let (mut records, mut stamp) = keyfile::read(&self.path)?;
        let (changed, out) = change(&mut records)?;
        if changed {
            stamp = Some(keyfile::write(&self.path, &records, &lock)?);
        }
        let by_id = index(&self.path, records)?;
        *self.write() = State { by_id, stamp };
        Ok(out)
    }

    // The state is replaced whole, never left half-updated, so a panic
    // elsewhere while holding the lock cannot corrupt it: poisoning is moot.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Checks the records read from the file and indexes them by id.
fn index(path: &Path, records: Vec<Record>) -> Result<HashMap<String, Key>, ConfigError> {
    let mut by_id = HashMap::with_capacity(records.len());
    for record in records {
        let bad =
            |what: String| keyfile::describe(path, format_args!("key {:?}: {what}", record.id));
        if !is_id(&record.id) {
            return Err(bad("the id is not 12 characters of [a-z0-9]".into()));
        }
        check_name(&record.name).map_err(|e| bad(e.to_string()))?;
        let permissions =
            Permissions::parse(&record.permissions).map_err(|e| bad(e.to_string()))?;
        let secret_sha256 = unhex(&record.secret_sha256)
            .ok_or_else(|| bad("secret_sha256 is not 64 hex digits".into()))?;
        let key = Key {
            info: ApiKeyInfo {
                id: record.id.clone(),
                name: record.name.clone(),
                permissions: record.permissions.clone(),
                created_at: record.created_at,
            },
            permissions,
            secret_sha256,
        };
        if by_id.insert(record.id.clone(), key).is_some() {
            return Err(bad("the id appears twice".into()));
        }
    }
    Ok(by_id)
}

fn check_name(name: &str) -> Result<(), ConfigError> {
    let ok = (1..=MAX_NAME_LEN).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(ConfigError::new(format!(
            "API key name {:?} must be 1 to {MAX_NAME_LEN} characters of letters, digits, '_', '.' and '-'",
            crate::error::excerpt(name, MAX_NAME_LEN + 1)
        )))
    }
}

/// `hrld_<id>_<secret>` into id and secret. The secret's alphabet includes
/// `_`, so the parts are cut by length, not by separator.
fn split(key: &str) -> Option<(&str, &str)> {
    let rest = key.strip_prefix(PREFIX)?;
    if rest.len() != ID_LEN + 1 + SECRET_LEN {
        return None;
    }
    let (id, rest) = rest.split_at_checked(ID_LEN)?;
    is_id(id).then_some((id, rest.strip_prefix('_')?))
}

fn is_id(s: &str) -> bool {
    s.len() == ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// Compares every byte whatever the first difference, so the time taken
/// says nothing about how much of a guess was right.
fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(difference) == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_split_by_length_even_when_the_secret_has_underscores() {
        let secret = "_".repeat(SECRET_LEN);
        let key = format!("hrld_abcdefghij12_{secret}");
        assert_eq!(split(&key), Some(("abcdefghij12", secret.as_str())));
        assert_eq!(split("hrld_abc_def"), None);
        assert_eq!(split(&format!("hrld_abcdefghij12-{secret}")), None);
        assert_eq!(split(&format!("hrld_abcdéfghij1_{secret}")), None);
        assert_eq!(split(&key[1..]), None);
    }

    #[test]
    fn hex_round_trips() {
        let digest: [u8; 32] = Sha256::digest(b"x").into();
        assert_eq!(unhex(&hex(&digest)), Some(digest));
        assert_eq!(unhex("zz"), None);
        assert_eq!(unhex(&"g".repeat(64)), None);
        assert_eq!(unhex(&"é".repeat(32)), None);
    }

    #[test]
    fn constant_time_eq_compares_all_bytes() {
        let a = [7u8; 32];
        let mut b = a;
        assert!(constant_time_eq(&a, &b));
        b[31] ^= 1;
        assert!(!constant_time_eq(&a, &b));
    }

    #[test]
    fn names_are_checked() {
        for good in ["a", "billing-service", "v1.2_x", &"n".repeat(64)] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in ["", "has space", "ü", &"n".repeat(65), "a/b"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
