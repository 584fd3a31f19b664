//! The crate's errors: [`AuthError`] for a credential that is refused,
//! [`ConfigError`] for keys or files that cannot be used, and
//! [`PermissionError`] for a permission string that does not parse.
//!
//! They are separate because they go to different people: an `AuthError`
//! becomes a client's close reason or HTTP 401, a `ConfigError` stops the
//! server at start-up (or fails a CLI command), a `PermissionError` points at
//! one bad line of configuration.

use std::fmt;

/// Why a credential was refused. The server maps these to what a client
/// sees; [`as_str`](Self::as_str) is the stable, snake_case spelling.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AuthErrorKind {
    /// Not three base64url parts, or a part is not the JSON it should be.
    Malformed,
    /// Longer than the configured limit; refused before any decoding.
    TooLarge,
    /// The token's `alg` is `none`, unknown, or has no configured key.
    AlgorithmNotAllowed,
    /// The token's `alg` differs from the algorithm its key is pinned to.
    AlgorithmMismatch,
    /// The token names a `kid` that no key has.
    UnknownKey,
    /// The signature does not verify.
    BadSignature,
    /// `exp` has passed (beyond the leeway).
    Expired,
    /// `nbf` is still in the future (beyond the leeway).
    NotYetValid,
    /// `iss` differs from the configured issuer.
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    WrongAudience,
    /// A claim that is required (or that a row rule needs) is absent.
    MissingClaim,
    /// A claim is present but has the wrong type or an invalid value.
    InvalidClaim,
    /// An API key that does not match any stored key.
    UnknownApiKey,
}

impl AuthErrorKind {
    /// The stable snake_case name, e.g. `"bad_signature"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::TooLarge => "too_large",
            Self::AlgorithmNotAllowed => "algorithm_not_allowed",
            Self::AlgorithmMismatch => "algorithm_mismatch",
            Self::UnknownKey => "unknown_key",
            Self::BadSignature => "bad_signature",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::WrongIssuer => "wrong_issuer",
            Self::WrongAudience => "wrong_audience",
            Self::MissingClaim => "missing_claim",
            Self::InvalidClaim => "invalid_claim",
            Self::UnknownApiKey => "unknown_api_key",
        }
    }
}

impl fmt::Display for AuthErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A credential was refused. The message says why in a sentence; it never
/// contains the token, the key, or any secret, so it is safe to log and to
/// send to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct AuthError {
    /// The reason, for code.
    pub kind: AuthErrorKind,
    /// The reason, for people.
    pub message: String,
}

impl AuthError {
    /// An error of `kind` with `message`.
    pub fn new(kind: AuthErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// Whether the credential was good but has expired, so the client should
    /// fetch a new token rather than give up.
    pub fn is_expired(&self) -> bool {
        self.kind == AuthErrorKind::Expired
    }
}

/// Keys, a JWKS document, a row rule or the API key file cannot be used. The
/// message names what is wrong and where (key number and `kid`, file path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(String);

impl ConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }

    /// The message, as `Display` prints it.
    pub fn message(&self) -> &str {
        &self.0
    }
}

/// A permission string does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid permission {permission:?}: {reason}")]
pub struct PermissionError {
    /// The offending string (cut to 80 characters: it may come from a token).
    pub permission: String,
    /// What is wrong with it.
    pub reason: String,
}

impl PermissionError {
    pub(crate) fn new(permission: &str, reason: impl Into<String>) -> Self {
        Self {
            permission: excerpt(permission, 80),
            reason: reason.into(),
        }
    }
}

/// `s` cut to at most `max` characters, marked with `…` when cut. Used for
/// untrusted text that goes into a message (a token's `alg` or `kid`).
pub(crate) fn excerpt(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => s.to_owned(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}
