//! Herald's authentication and permission primitives: who a request speaks
//! for, and what it may do. Pure: no async runtime, no networking; the
//! server calls in here and decides what a client sees.
//!
//! - A JWT is verified by [`JwtVerifier`] into [`Claims`]: a subject,
//!   [`Permissions`] and the raw claims. Every key is pinned to one
//!   algorithm; `exp`, `nbf`, `iss` and `aud` are checked.
//! - An API key (`hrld_<id>_<secret>`) is checked by [`ApiKeys`], which keeps
//!   only hashes, in one JSON file shared safely by the CLI and the server.
//! - [`RowRule`] turns a filter template such as `{"user_id": "$auth.sub"}`
//!   into a filter for one principal.
//!
//! ```
//! use herald_auth::{Action, ApiKeys, Permissions};
//! let dir = tempfile::tempdir()?;
//! let keys = ApiKeys::open(&dir.path().join("apikeys.json"))?;
//! let (info, key) = keys.create("billing", &Permissions::parse(["read:orders"])?)?;
//! assert!(ApiKeys::looks_like_key(&key));
//! let (who, can) = keys.verify(&key)?;
//! assert_eq!(who.id, info.id);
//! assert!(can.allows(Action::Read, "orders"));
//! assert!(!can.allows(Action::Write, "orders"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layout
//! - [`permission`]: [`Action`], [`Permission`] (`read:orders`, `publish:chat:*`,
//!   `admin`) and the indexed set [`Permissions`].
//! - `glob`: the `*` matcher behind patterns (iterative, O(n·m) at worst).
//! - [`jwt`]: [`JwtConfig`], [`KeyConfig`] and [`JwtVerifier`]; the module doc
//!   lists the order of checks.
//! - `key`: loading and checking keys from configuration and JWKS documents.
//! - [`claims`]: [`Claims`] and the checks on them.
//! - [`apikey`]: [`ApiKeys`] and [`ApiKeyInfo`].
//! - `keyfile`: the API key file's format and locked, atomic writes.
//! - [`rule`]: [`RowRule`] templates.
//! - [`error`]: [`AuthError`] (a refused credential), [`ConfigError`]
//!   (unusable keys or files), [`PermissionError`].

pub mod apikey;
pub mod claims;
pub mod error;
mod glob;
pub mod jwt;
mod key;
mod keyfile;
pub mod permission;
pub mod rule;

pub use apikey::{ApiKeyInfo, ApiKeys};
pub use claims::Claims;
pub use error::{AuthError, AuthErrorKind, ConfigError, PermissionError};
pub use jwt::{JwtConfig, JwtVerifier, KeyConfig};
pub use permission::{Action, Permission, Permissions};
pub use rule::RowRule;
