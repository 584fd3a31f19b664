//! Verification keys: loaded from configuration (secrets and PEM files) or a
//! JWKS document, each pinned to one algorithm and checked when loaded so a
//! bad key stops start-up instead of failing every token later.

use crate::error::ConfigError;
use crate::jwt::KeyConfig;
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind};
use serde_json::Value;
use std::str::FromStr;

/// Smallest RSA modulus accepted, in bytes (2048 bits).
const MIN_RSA_MODULUS_BYTES: usize = 256;

/// One key a token may be verified with.
#[derive(Debug, Clone)]
pub(crate) struct VerifyKey {
    pub(crate) kid: Option<String>,
    /// The only algorithm this key verifies; a token's `alg` must equal it.
    pub(crate) algorithm: Algorithm,
    pub(crate) key: DecodingKey,
}

/// The algorithm named `name`, if it is one we verify. `none` and every
/// other name is refused.
pub(crate) fn algorithm(name: &str) -> Option<Algorithm> {
    Algorithm::from_str(name).ok()
}

const ALGORITHMS: &str =
    "HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA";

/// Loads configured key number `index` (0-based).
pub(crate) fn from_config(index: usize, config: &KeyConfig) -> Result<VerifyKey, ConfigError> {
    let label = match &config.kid {
        Some(kid) => format!("JWT key #{} (kid {kid:?})", index + 1),
        None => format!("JWT key #{}", index + 1),
    };
    let fail = |what: String| ConfigError::new(format!("{label}: {what}"));
    if config.kid.as_deref() == Some("") {
        return Err(fail("kid is empty; remove it or give it a value".into()));
    }
    let algorithm = algorithm(&config.algorithm).ok_or_else(|| {
        fail(format!(
            "algorithm {:?} is not supported; use {ALGORITHMS}",
            config.algorithm
        ))
    })?;
    let key = if algorithm.family() == AlgorithmFamily::Hmac {
        if config.public_key.is_some() || config.public_key_file.is_some() {
            return Err(fail(format!(
                "{algorithm:?} uses a shared secret; public_key and public_key_file do not apply"
            )));
        }
        let secret = match (&config.secret, &config.secret_file) {
            (Some(secret), None) => secret.as_bytes().to_vec(),
            (None, Some(path)) => {
                let mut bytes = std::fs::read(path).map_err(|e| {
                    fail(format!("cannot read secret_file {}: {e}", path.display()))
                })?;
                // Editors and `echo` end files with a newline that is not
                // part of the secret.
                while bytes.last().is_some_and(|b| b.is_ascii_whitespace()) {
                    bytes.pop();
                }
                bytes
            }
            (None, None) => {
                return Err(fail(format!("{algorithm:?} needs a secret or secret_file")));
            }
            (Some(_), Some(_)) => {
                return Err(fail("set secret or secret_file, not both".into()));
            }
        };
        hmac_key(algorithm, &secret).map_err(fail)?
    } else {
        if config.secret.is_some() || config.secret_file.is_some() {
            return Err(fail(format!(
                "{algorithm:?} verifies with a public key; secret and secret_file do not apply"
            )));
        }
        let pem = match (&config.public_key, &config.public_key_file) {
            (Some(pem), None) => pem.as_bytes().to_vec(),
            (None, Some(path)) => std::fs::read(path).map_err(|e| {
                fail(format!(
                    "cannot read public_key_file {}: {e}",
                    path.display()
                ))
            })?,
            (None, None) => {
                return Err(fail(format!(
                    "{algorithm:?} needs public_key (PEM text) or public_key_file"
                )));
            }
            (Some(_), Some(_)) => {
                return Err(fail("set public_key or public_key_file, not both".into()));
            }
        };
        pem_key(algorithm, &pem).map_err(fail)?
    };
    Ok(VerifyKey {
        kid: config.kid.clone(),
        algorithm,
        key,
    })
}

fn hmac_key(algorithm: Algorithm, secret: &[u8]) -> Result<DecodingKey, String> {
    // RFC 7518 §3.2: the key must be at least as long as the hash output.
    let min = match algorithm {
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        _ => 32,
    };
    if secret.len() < min {
        return Err(format!(
            "the {algorithm:?} secret is {} bytes; it must be at least {min} (random bytes, e.g. `openssl rand -base64 {min}`)",
            secret.len()
        ));
    }
    Ok(DecodingKey::from_secret(secret))
}

fn pem_key(algorithm: Algorithm, pem: &[u8]) -> Result<DecodingKey, String> {
    if pem.windows(11).any(|w| w == b"PRIVATE KEY") {
        return Err(
            "this is a private key; configure the public key (`openssl pkey -in key.pem -pubout`)"
                .into(),
        );
    }
    let kind = match algorithm.family() {
        AlgorithmFamily::Rsa => "an RSA",
        AlgorithmFamily::Ec => "an EC",
        _ => "an Ed25519",
    };
    let key = match algorithm.family() {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(pem),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(pem),
        _ => DecodingKey::from_ed_pem(pem),
    }
    .map_err(|e| format!("not {kind} public key in PEM form ({e})"))?;
    check(algorithm, &key)?;
    Ok(key)
}

/// Checks that `key` works with `algorithm`: RSA moduli of 2048 bits or
/// more, the curve that matches the algorithm, a 32-byte Ed25519 key.
fn check(algorithm: Algorithm, key: &DecodingKey) -> Result<(), String> {
    match (algorithm.family(), key.kind()) {
        (AlgorithmFamily::Rsa, DecodingKeyKind::SecretOrDer(der)) => {
            let (n, _) = (DEFAULT_PROVIDER
                .key_utils
                .rsa_pub_components_from_public_key)(der)
            .map_err(|e| format!("not a usable RSA public key ({e})"))?;
            rsa_size(&n)?;
        }
        (AlgorithmFamily::Rsa, DecodingKeyKind::RsaModulusExponent { n, .. }) => rsa_size(n)?,
        (AlgorithmFamily::Ed, DecodingKeyKind::SecretOrDer(bytes)) if bytes.len() != 32 => {
            // Checked here because the verifier slices the first 32 bytes
            // without looking.
            return Err(format!(
                "an Ed25519 public key is 32 bytes, not {}",
                bytes.len()
            ));
        }
        _ => {}
    }
    // Building the verifier parses EC and Ed keys (and checks the curve
    // against the algorithm); the empty signature then simply fails.
    jsonwebtoken::crypto::verify("", b"", key, algorithm)
        .map(drop)
        .map_err(|e| format!("the key does not work with {algorithm:?} ({e})"))
}

fn rsa_size(modulus: &[u8]) -> Result<(), String> {
    let significant = modulus.iter().skip_while(|&&b| b == 0).count();
    if significant < MIN_RSA_MODULUS_BYTES {
        return Err(format!(
            "the RSA key has {} bits; at least 2048 are required",
            significant * 8
        ));
    }
    Ok(())
}

/// Loads the keys of a JWKS document (RFC 7517). Keys marked `"use": "enc"`
/// are for encryption and are skipped; every other key must carry `kid` and
/// `alg`, and the key is pinned to that `alg`.
pub(crate) fn from_jwks(json: &[u8]) -> Result<Vec<VerifyKey>, ConfigError> {
    let doc: Value = serde_json::from_slice(json)
        .map_err(|e| ConfigError::new(format!("the JWKS document is not JSON: {e}")))?;
    let Some(Value::Array(entries)) = doc.get("keys") else {
        return Err(ConfigError::new("the JWKS document has no \"keys\" array"));
    };
    let mut keys: Vec<VerifyKey> = Vec::with_capacity(entries.len());
    for (index, entry) in entries.iter().enumerate() {
        if entry.get("use").and_then(Value::as_str) == Some("enc") {
            continue;
        }
        let key = jwk(entry).map_err(|e| {
            let kid = entry.get("kid").and_then(Value::as_str);
            ConfigError::new(match kid {
                Some(kid) => format!("JWKS key #{} (kid {kid:?}): {e}", index + 1),
                None => format!("JWKS key #{}: {e}", index + 1),
            })
        })?;
        if keys.iter().any(|k| k.kid == key.kid) {
            return Err(ConfigError::new(format!(
                "JWKS key #{}: kid {:?} appears twice",
                index + 1,
                key.kid.as_deref().unwrap_or_default()
            )));
        }
        keys.push(key);
    }
    Ok(keys)
}

fn jwk(entry: &Value) -> Result<VerifyKey, String> {
    let kid = match entry.get("kid") {
        Some(Value::String(kid)) if !kid.is_empty() => kid.clone(),
        _ => return Err("no kid (every JWKS key needs one)".into()),
    };
    let name = match entry.get("alg") {
        Some(Value::String(alg)) => alg,
        _ => {
            return Err(
                "no alg (every JWKS key needs one: the algorithm is taken from the key, never the token)"
                    .into(),
            );
        }
    };
    let algorithm = algorithm(name)
        .ok_or_else(|| format!("alg {name:?} is not supported; use {ALGORITHMS}"))?;
    let jwk: Jwk =
        serde_json::from_value(entry.clone()).map_err(|e| format!("not a valid JWK: {e}"))?;
    let curve = match &jwk.algorithm {
        AlgorithmParameters::EllipticCurve(p) => Some(&p.curve),
        AlgorithmParameters::OctetKeyPair(p) => Some(&p.curve),
        _ => None,
    };
    let wanted = match algorithm {
        Algorithm::ES256 => Some(EllipticCurve::P256),
        Algorithm::ES384 => Some(EllipticCurve::P384),
        Algorithm::EdDSA => Some(EllipticCurve::Ed25519),
        _ => None,
    };
    if curve != wanted.as_ref() {
        return Err(format!(
            "the key's type or curve does not match alg {algorithm:?}"
        ));
    }
    let key = DecodingKey::from_jwk(&jwk).map_err(|e| format!("not a usable key ({e})"))?;
    if key.family() != algorithm.family() {
        return Err(format!("the key's type does not match alg {algorithm:?}"));
    }
    let key = match key.kind() {
        DecodingKeyKind::SecretOrDer(secret) if algorithm.family() == AlgorithmFamily::Hmac => {
            hmac_key(algorithm, secret)?
        }
        _ => key,
    };
    check(algorithm, &key)?;
    Ok(VerifyKey {
        kid: Some(kid),
        algorithm,
        key,
    })
}
