//! JWT verification: configuration, key selection and the order of checks.
//!
//! A token is checked in this order, and the first failure is the answer:
//!
//! 1. Size, before any decoding ([`TooLarge`](AuthErrorKind::TooLarge)).
//! 2. Three base64url parts; the header is a JSON object with a string
//!    `alg` and no `crit` ([`Malformed`](AuthErrorKind::Malformed)).
//! 3. `alg` is one we verify: never `none`
//!    ([`AlgorithmNotAllowed`](AuthErrorKind::AlgorithmNotAllowed)).
//! 4. The key: with a `kid`, the key with that kid (configured or JWKS),
//!    else [`UnknownKey`](AuthErrorKind::UnknownKey); without one, the
//!    configured keys pinned to `alg`, else `AlgorithmNotAllowed`.
//! 5. The header's `alg` equals the key's pinned algorithm
//!    ([`AlgorithmMismatch`](AuthErrorKind::AlgorithmMismatch)). This is what
//!    defeats a token "signed" with HS256 using an RSA public key as the
//!    HMAC secret: the algorithm always comes from our key, never the token.
//! 6. The signature ([`BadSignature`](AuthErrorKind::BadSignature)).
//! 7. Only then is the payload trusted: `exp` (required), `nbf`, `iss`,
//!    `aud`, `sub`, permissions (see [`Claims`]).
//!
//! jsonwebtoken does the cryptography only. Its own `decode` reads the clock
//! itself and cannot say *why* a header is refused, so the parsing and the
//! claim checks are ours.

use crate::claims::{self, Claims, Expectations};
use crate::error::{AuthError, AuthErrorKind, ConfigError, excerpt};
use crate::key::{self, VerifyKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `[auth.jwt]`: how tokens are verified.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JwtConfig {
    /// `[[auth.jwt.keys]]`: the keys tokens may be signed with. May be empty
    /// when keys come only from a JWKS document.
    pub keys: Vec<KeyConfig>,
    /// When set, tokens must carry exactly this `iss`.
    pub issuer: Option<String>,
    /// When set, a token's `aud` (a string or an array) must include this.
    /// Set it whenever the issuer also serves other applications, or their
    /// tokens work here too.
    pub audience: Option<String>,
    /// Clock skew tolerated on `exp` and `nbf` [default: 30s].
    #[serde(with = "humantime_serde")]
    pub leeway: Duration,
    /// The claim holding the permissions: an array of strings or one
    /// space-separated string [default: "permissions"].
    pub permissions_claim: String,
    /// Longer tokens are refused before decoding [default: 8192].
    pub max_token_bytes: usize,
    /// A JWKS document to take keys from (your identity provider's
    /// `.../.well-known/jwks.json`). Fetched by the server, not by this
    /// crate: at start, every `jwks_refresh`, and when a token names an
    /// unknown `kid` (at most once per `jwks_min_interval`).
    pub jwks_url: Option<String>,
    /// How often the JWKS document is fetched again [default: 10m].
    #[serde(with = "humantime_serde")]
    pub jwks_refresh: Duration,
    /// Least time between fetches caused by unknown `kid`s, so forged
    /// tokens cannot make the server hammer the identity provider
    /// [default: 30s].
    #[serde(with = "humantime_serde")]
    pub jwks_min_interval: Duration,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            keys: Vec::new(),
            issuer: None,
            audience: None,
            leeway: Duration::from_secs(30),
            permissions_claim: "permissions".into(),
            max_token_bytes: 8192,
            jwks_url: None,
            jwks_refresh: Duration::from_secs(600),
            jwks_min_interval: Duration::from_secs(30),
        }
    }
}

/// One `[[auth.jwt.keys]]` entry: a key pinned to one algorithm.
///
/// HMAC algorithms take `secret` or `secret_file`; the others take
/// `public_key` (PEM text) or `public_key_file`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// The key id tokens name in their header's `kid`. Optional: tokens
    /// without a `kid` are tried against every key of their algorithm.
    pub kid: Option<String>,
    /// One of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512,
    /// ES256, ES384, EdDSA. Tokens verified with this key must name exactly
    /// this algorithm.
    pub algorithm: String,
    /// HS*: the shared secret (UTF-8), at least as long as the hash (32, 48
    /// or 64 bytes).
    pub secret: Option<String>,
    /// HS*: a file holding the secret; trailing whitespace is ignored.
    pub secret_file: Option<PathBuf>,
    /// RS*, PS*, ES*, EdDSA: the public key in PEM form.
    pub public_key: Option<String>,
    /// RS*, PS*, ES*, EdDSA: a PEM file holding the public key.
    pub public_key_file: Option<PathBuf>,
}

/// Shows everything but the secret.
impl fmt::Debug for KeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyConfig")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("secret_file", &self.secret_file)
            .field("public_key", &self.public_key)
            .field("public_key_file", &self.public_key_file)
            .finish()
    }
}

/// Verifies JWTs against the configured keys and, optionally, a JWKS
/// document. Cheap to clone (one `Arc`); share it between connections.
///
/// ```
/// use herald_auth::{JwtConfig, JwtVerifier, KeyConfig};
/// let config = JwtConfig {
///     keys: vec![KeyConfig {
///         kid: None,
///         algorithm: "HS256".into(),
///         secret: Some("a-secret-of-at-least-thirty-two-bytes!".into()),
///         secret_file: None,
///         public_key: None,
///         public_key_file: None,
///     }],
///     ..JwtConfig::default()
/// };
/// let verifier = JwtVerifier::new(&config)?;
/// let err = verifier.verify("not.a.token").unwrap_err();
/// assert_eq!(err.kind.as_str(), "malformed");
/// # Ok::<(), herald_auth::ConfigError>(())
/// ```
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    keys: Vec<VerifyKey>,
    /// Keys from the last JWKS document. Replaced whole by `set_jwks`; a
    /// verification clones the `Arc` under the read lock and releases it at
    /// once, so a refresh never waits on signature checks.
    jwks: RwLock<Arc<Vec<VerifyKey>>>,
    issuer: Option<String>,
    audience: Option<String>,
    leeway: u64,
    permissions_claim: String,
    max_token_bytes: usize,
}

impl JwtVerifier {
    /// Loads and checks every configured key. The error names the key
    /// (number and `kid`) and what is wrong with it.
    pub fn new(config: &JwtConfig) -> Result<Self, ConfigError> {
        if config.permissions_claim.is_empty() {
            return Err(ConfigError::new("auth.jwt.permissions_claim is empty"));
        }
        if config.max_token_bytes == 0 {
            return Err(ConfigError::new("auth.jwt.max_token_bytes is 0"));
        }
        for (name, value) in [("issuer", &config.issuer), ("audience", &config.audience)] {
            if value.as_deref() == Some("") {
                return Err(ConfigError::new(format!(
                    "auth.jwt.{name} is empty; remove it or give it a value"
                )));
            }
        }
        let mut keys: Vec<VerifyKey> = Vec::with_capacity(config.keys.len());
        for (index, key_config) in config.keys.iter().enumerate() {
            let key = key::from_config(index, key_config)?;
            if let Some(kid) = &key.kid
                && let Some(first) = keys.iter().position(|k| k.kid.as_ref() == Some(kid))
            {
                return Err(ConfigError::new(format!(
                    "JWT keys #{} and #{} have the same kid {kid:?}",
                    first + 1,
                    index + 1
                )));
            }
            keys.push(key);
        }
        Ok(Self {
            inner: Arc::new(Inner {
                keys,
                jwks: RwLock::default(),
                issuer: config.issuer.clone(),
                audience: config.audience.clone(),
                leeway: config.leeway.as_secs(),
                permissions_claim: config.permissions_claim.clone(),
                max_token_bytes: config.max_token_bytes,
            }),
        })
    }

    /// Verifies `token` at the current time.
    pub fn verify(&self, token: &str) -> Result<Claims, AuthError> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.verify_at(token, now)
    }

    /// Verifies `token` as of `now_unix_secs`. See the [module
    /// docs](self) for the order of checks.
    pub fn verify_at(&self, token: &str, now_unix_secs: u64) -> Result<Claims, AuthError> {
        let inner = &*self.inner;
        if token.len() > inner.max_token_bytes {
            return Err(AuthError::new(
                AuthErrorKind::TooLarge,
                format!(
                    "the token is {} bytes; the limit is {}",
                    token.len(),
                    inner.max_token_bytes
                ),
            ));
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(malformed("a JWT is three base64url parts separated by '.'"));
        };
        let header: Map<String, Value> = decode_json(header_b64, "header")?;
        let alg = match header.get("alg") {
            Some(Value::String(alg)) => alg.as_str(),
            _ => return Err(malformed("the header's alg is missing or not a string")),
        };
        // RFC 7515 §4.1.11: extensions marked critical must be understood;
        // we understand none.
        if header.contains_key("crit") {
            return Err(malformed(
                "the header lists crit extensions, which are not supported",
            ));
        }
        let algorithm = key::algorithm(alg).ok_or_else(|| {
            AuthError::new(
                AuthErrorKind::AlgorithmNotAllowed,
                format!("algorithm {:?} is not allowed", excerpt(alg, 16)),
            )
        })?;
        let jwks = Arc::clone(&inner.jwks.read().unwrap_or_else(PoisonError::into_inner));
        let candidates = select_keys(&inner.keys, &jwks, header.get("kid"), algorithm)?;
        let payload = decode_base64(payload_b64, "payload")?;
        decode_base64(signature_b64, "signature")?;
        // The signed message is the first two parts and the dot between.
        let message = &token.as_bytes()[..header_b64.len() + 1 + payload_b64.len()];
        // Err means the key cannot verify this algorithm, impossible for a
        // key checked at load; counting it as a failed signature fails closed.
        let verified = candidates.iter().any(|k| {
            jsonwebtoken::crypto::verify(signature_b64, message, &k.key, algorithm).unwrap_or(false)
        });
        if !verified {
            return Err(AuthError::new(
                AuthErrorKind::BadSignature,
                "the signature does not verify",
            ));
        }
        let raw: Map<String, Value> = serde_json::from_slice(&payload)
            .map_err(|_| malformed("the payload is not a JSON object"))?;
        claims::check(
            raw,
            &Expectations {
                now: now_unix_secs,
                leeway: inner.leeway,
                issuer: inner.issuer.as_deref(),
                audience: inner.audience.as_deref(),
                permissions_claim: &inner.permissions_claim,
            },
        )
    }

    /// Loads the keys of a JWKS document (RFC 7517 JSON), replacing those of
    /// the previous document; configured keys stay. Each key must carry
    /// `kid` and `alg`, and verifies only that `alg`. Keys marked
    /// `"use": "enc"` are skipped. Returns how many keys were loaded.
    ///
    /// On error nothing changes: the previous JWKS keys stay in use.
    pub fn set_jwks(&self, jwks_json: &[u8]) -> Result<usize, ConfigError> {
        let keys = key::from_jwks(jwks_json)?;
        if let Some(clash) = keys.iter().find_map(|k| {
            let kid = k.kid.as_ref()?;
            self.inner
                .keys
                .iter()
                .any(|c| c.kid.as_ref() == Some(kid))
                .then_some(kid)
        }) {
            return Err(ConfigError::new(format!(
                "JWKS key kid {clash:?} is also the kid of a configured key"
            )));
        }
        let count = keys.len();
        *self
            .inner
            .jwks
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(keys);
        Ok(count)
    }

    /// Whether a configured or JWKS key has `kid`. Lets a caller refresh the
    /// JWKS when a token names a key it has not seen yet.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.inner
            .keys
            .iter()
            .chain(
                self.inner
                    .jwks
                    .read()
                    .unwrap_or_else(PoisonError::into_inner)
                    .iter(),
            )
            .any(|k| k.kid.as_deref() == Some(kid))
    }
}

/// The keys a token may be verified with (step 4 and 5 of the module docs).
fn select_keys<'a>(
    configured: &'a [VerifyKey],
    jwks: &'a [VerifyKey],
    kid: Option<&Value>,
    algorithm: Algorithm,
) -> Result<Vec<&'a VerifyKey>, AuthError> {
    match kid {
        Some(Value::String(kid)) => {
            let key = configured
                .iter()
                .chain(jwks)
                .find(|k| k.kid.as_ref() == Some(kid))
                .ok_or_else(|| {
                    AuthError::new(
                        AuthErrorKind::UnknownKey,
                        format!("no key has kid {:?}", excerpt(kid, 64)),
                    )
                })?;
            if key.algorithm != algorithm {
                return Err(AuthError::new(
                    AuthErrorKind::AlgorithmMismatch,
                    format!(
                        "the token says {algorithm:?} but key {:?} is pinned to {:?}",
                        excerpt(kid, 64),
                        key.algorithm
                    ),
                ));
            }
            Ok(vec![key])
        }
        Some(_) => Err(malformed("the header's kid is not a string")),
        // Tokens without a kid are tried only against configured keys: every
        // JWKS issuer sets kid, and trying a whole JWKS would let one token
        // cost many signature checks.
        None => {
            let keys: Vec<&VerifyKey> = configured
                .iter()
                .filter(|k| k.algorithm == algorithm)
                .collect();
            if keys.is_empty() {
                return Err(AuthError::new(
                    AuthErrorKind::AlgorithmNotAllowed,
                    format!("no key is configured for {algorithm:?}"),
                ));
            }
            Ok(keys)
        }
    }
}

fn malformed(message: &str) -> AuthError {
    AuthError::new(AuthErrorKind::Malformed, message)
}

fn decode_base64(part: &str, name: &str) -> Result<Vec<u8>, AuthError> {
    URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| malformed(&format!("the {name} is not base64url")))
}

fn decode_json(part: &str, name: &str) -> Result<Map<String, Value>, AuthError> {
    serde_json::from_slice(&decode_base64(part, name)?)
        .map_err(|_| malformed(&format!("the {name} is not a JSON object")))
}
