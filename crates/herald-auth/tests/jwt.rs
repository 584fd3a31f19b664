//! JWT verification against real tokens: the accepted algorithms, the attack
//! suite (each attack refused for the right reason), JWKS and key
//! configuration errors.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use herald_auth::{AuthErrorKind, JwtConfig, JwtVerifier, KeyConfig};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};
use std::time::Duration;

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "an-hs256-secret-that-is-long-enough-0123";
const RSA_PUBLIC: &str = include_str!("keys/rsa_public.pem");
const RSA_PRIVATE: &str = include_str!("keys/rsa_private.pem");
const EC_PUBLIC: &str = include_str!("keys/ec_public.pem");
const EC_PRIVATE: &str = include_str!("keys/ec_private.pem");
const ED_PUBLIC: &str = include_str!("keys/ed25519_public.pem");
const ED_PRIVATE: &str = include_str!("keys/ed25519_private.pem");

fn key(kid: Option<&str>, algorithm: &str) -> KeyConfig {
    KeyConfig {
        kid: kid.map(str::to_owned),
        algorithm: algorithm.into(),
        secret: None,
        secret_file: None,
        public_key: None,
        public_key_file: None,
    }
}

fn hs256(kid: Option<&str>) -> KeyConfig {
    KeyConfig {
        secret: Some(SECRET.into()),
        ..key(kid, "HS256")
    }
}

fn public(kid: Option<&str>, algorithm: &str, pem: &str) -> KeyConfig {
    KeyConfig {
        public_key: Some(pem.into()),
        ..key(kid, algorithm)
    }
}

/// One key of each kind, with kids, plus an RS256 key without a kid.
fn config() -> JwtConfig {
    JwtConfig {
        keys: vec![
            hs256(Some("hs")),
            public(Some("rsa"), "RS256", RSA_PUBLIC),
            public(Some("ec"), "ES256", EC_PUBLIC),
            public(Some("ed"), "EdDSA", ED_PUBLIC),
        ],
        ..JwtConfig::default()
    }
}

fn verifier() -> JwtVerifier {
    JwtVerifier::new(&config()).unwrap()
}

fn claims() -> Value {
    json!({"sub": "alice", "exp": NOW + 600, "permissions": ["read:*", "publish:chat:*"], "org": {"id": "acme"}})
}

fn signing_key(algorithm: Algorithm) -> EncodingKey {
    match algorithm {
        Algorithm::HS256 => EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::RS256 | Algorithm::PS256 => {
            EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap()
        }
        Algorithm::ES256 => EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
        other => panic!("no test key for {other:?}"),
    }
}

fn sign_with(algorithm: Algorithm, kid: Option<&str>, claims: &Value, key: &EncodingKey) -> String {
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

fn sign(algorithm: Algorithm, kid: Option<&str>, claims: &Value) -> String {
    sign_with(algorithm, kid, claims, &signing_key(algorithm))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A token with this header and payload and no real signature.
fn forged(header: &Value, payload: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(header.to_string().as_bytes()),
        b64(payload.to_string().as_bytes())
    )
}

/// Verifies, expects a refusal of `kind`, and checks the message leaks
/// neither the token nor the secret.
fn refused(verifier: &JwtVerifier, token: &str, kind: AuthErrorKind) {
    let err = verifier
        .verify_at(token, NOW)
        .expect_err("the token must be refused");
    assert_eq!(err.kind, kind, "{err}");
    assert!(!err.message.contains(SECRET));
    for part in token.split('.').filter(|p| p.len() > 8) {
        assert!(
            !err.message.contains(part),
            "message leaks the token: {err}"
        );
    }
}

#[test]
fn valid_tokens_of_each_algorithm_are_accepted_with_their_claims() {
    let verifier = verifier();
    for (algorithm, kid) in [
        (Algorithm::HS256, "hs"),
        (Algorithm::RS256, "rsa"),
        (Algorithm::ES256, "ec"),
        (Algorithm::EdDSA, "ed"),
    ] {
        for kid in [Some(kid), None] {
            let token = sign(algorithm, kid, &claims());
            let got = verifier
                .verify_at(&token, NOW)
                .unwrap_or_else(|e| panic!("{algorithm:?} kid {kid:?}: {e}"));
            assert_eq!(got.sub, "alice");
            assert_eq!(got.expires_at, Some(NOW + 600));
            assert_eq!(got.permissions.to_strings(), ["read:*", "publish:chat:*"]);
            assert_eq!(got.raw["org"]["id"], "acme");
        }
    }
}

#[test]
fn verify_uses_the_clock() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let verifier = verifier();
    let fresh = sign(
        Algorithm::HS256,
        None,
        &json!({"sub": "a", "exp": now + 60}),
    );
    assert!(verifier.verify(&fresh).is_ok());
    let stale = sign(
        Algorithm::HS256,
        None,
        &json!({"sub": "a", "exp": now - 3600}),
    );
    assert!(verifier.verify(&stale).unwrap_err().is_expired());
}

#[test]
fn attack_alg_none_is_refused() {
    let verifier = verifier();
    for alg in ["none", "None", "NONE", "nOnE"] {
        for header in [
            json!({"alg": alg, "typ": "JWT"}),
            json!({"alg": alg, "kid": "hs"}),
        ] {
            for signature in ["", "AAAA"] {
                refused(
                    &verifier,
                    &forged(&header, &claims(), signature),
                    AuthErrorKind::AlgorithmNotAllowed,
                );
            }
        }
    }
}

#[test]
fn attack_unknown_algorithms_are_refused() {
    let verifier = verifier();
    for alg in [json!("HS1"), json!("RSA-OAEP"), json!(""), json!("ES512")] {
        refused(
            &verifier,
            &forged(&json!({"alg": alg}), &claims(), "AAAA"),
            AuthErrorKind::AlgorithmNotAllowed,
        );
    }
    for header in [
        json!({"alg": 256}),
        json!({"typ": "JWT"}),
        json!({"alg": null}),
    ] {
        refused(
            &verifier,
            &forged(&header, &claims(), "AAAA"),
            AuthErrorKind::Malformed,
        );
    }
}

#[test]
fn attack_hs256_signed_with_the_rsa_public_key_is_refused() {
    let verifier = verifier();
    let hmac_with_public_key = EncodingKey::from_secret(RSA_PUBLIC.as_bytes());
    // Naming the RSA key: the token's alg differs from the key's pin.
    let token = sign_with(
        Algorithm::HS256,
        Some("rsa"),
        &claims(),
        &hmac_with_public_key,
    );
    refused(&verifier, &token, AuthErrorKind::AlgorithmMismatch);
    // Naming no key, against a verifier with only RSA keys: nothing is
    // pinned to HS256.
    let rsa_only = JwtVerifier::new(&JwtConfig {
        keys: vec![public(None, "RS256", RSA_PUBLIC)],
        ..JwtConfig::default()
    })
    .unwrap();
    let token = sign_with(Algorithm::HS256, None, &claims(), &hmac_with_public_key);
    refused(&rsa_only, &token, AuthErrorKind::AlgorithmNotAllowed);
    // The same with the DER bytes some libraries use as the "secret".
    let pem = pem_body(RSA_PUBLIC);
    let token = sign_with(
        Algorithm::HS256,
        None,
        &claims(),
        &EncodingKey::from_secret(&pem),
    );
    refused(&rsa_only, &token, AuthErrorKind::AlgorithmNotAllowed);
}

fn pem_body(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .unwrap()
}

#[test]
fn attack_other_algorithm_swaps_on_a_named_key_are_refused() {
    let verifier = verifier();
    // A genuine RS256 signature presented as PS256 under the RSA key.
    let rs = sign(Algorithm::RS256, Some("rsa"), &claims());
    let (_, rest) = rs.split_once('.').unwrap();
    let header = b64(json!({"alg": "PS256", "kid": "rsa"}).to_string().as_bytes());
    refused(
        &verifier,
        &format!("{header}.{rest}"),
        AuthErrorKind::AlgorithmMismatch,
    );
    // An ES256 token presented under the Ed25519 key.
    let token = sign(Algorithm::ES256, Some("ed"), &claims());
    refused(&verifier, &token, AuthErrorKind::AlgorithmMismatch);
}

#[test]
fn attack_expired_token_is_refused() {
    let verifier = verifier();
    let mut c = claims();
    c["exp"] = json!(NOW - 31);
    let token = sign(Algorithm::RS256, Some("rsa"), &c);
    refused(&verifier, &token, AuthErrorKind::Expired);
    assert!(verifier.verify_at(&token, NOW).unwrap_err().is_expired());
}

#[test]
fn attack_token_without_exp_is_refused() {
    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    let err = verifier()
        .verify_at(&sign(Algorithm::HS256, Some("hs"), &c), NOW)
        .unwrap_err();
    assert_eq!(err.kind, AuthErrorKind::MissingClaim);
    assert!(err.message.contains("exp"), "{err}");
}

#[test]
fn attack_not_yet_valid_token_is_refused() {
    let mut c = claims();
    c["nbf"] = json!(NOW + 31);
    refused(
        &verifier(),
        &sign(Algorithm::ES256, Some("ec"), &c),
        AuthErrorKind::NotYetValid,
    );
}

#[test]
fn leeway_is_honoured_both_ways() {
    let mut c = claims();
    c["exp"] = json!(NOW - 10);
    c["nbf"] = json!(NOW + 10);
    let token = sign(Algorithm::HS256, Some("hs"), &c);
    // Default leeway: 30 s.
    assert!(verifier().verify_at(&token, NOW).is_ok());
    let strict = JwtVerifier::new(&JwtConfig {
        leeway: Duration::ZERO,
        ..config()
    })
    .unwrap();
    assert_eq!(
        strict.verify_at(&token, NOW).unwrap_err().kind,
        AuthErrorKind::Expired
    );
    assert_eq!(
        strict.verify_at(&token, NOW - 20).unwrap_err().kind,
        AuthErrorKind::NotYetValid
    );
}

#[test]
fn attack_wrong_issuer_and_audience_are_refused() {
    let verifier = JwtVerifier::new(&JwtConfig {
        issuer: Some("https://id.example".into()),
        audience: Some("herald".into()),
        ..config()
    })
    .unwrap();
    let with = |iss: Value, aud: Value| {
        let mut c = claims();
        c["iss"] = iss;
        c["aud"] = aud;
        sign(Algorithm::HS256, Some("hs"), &c)
    };
    assert!(
        verifier
            .verify_at(&with(json!("https://id.example"), json!("herald")), NOW)
            .is_ok()
    );
    assert!(
        verifier
            .verify_at(
                &with(json!("https://id.example"), json!(["x", "herald"])),
                NOW
            )
            .is_ok()
    );
    refused(
        &verifier,
        &with(json!("https://evil.example"), json!("herald")),
        AuthErrorKind::WrongIssuer,
    );
    refused(
        &verifier,
        &with(json!("https://id.example"), json!("other-app")),
        AuthErrorKind::WrongAudience,
    );
    refused(
        &verifier,
        &with(json!("https://id.example"), json!(["other-app"])),
        AuthErrorKind::WrongAudience,
    );
}

#[test]
fn attack_tampered_payload_is_refused() {
    let verifier = verifier();
    for (algorithm, kid) in [
        (Algorithm::HS256, "hs"),
        (Algorithm::RS256, "rsa"),
        (Algorithm::ES256, "ec"),
        (Algorithm::EdDSA, "ed"),
    ] {
        let token = sign(algorithm, Some(kid), &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let mut escalated = claims();
        escalated["permissions"] = json!(["admin"]);
        let tampered = format!(
            "{}.{}.{}",
            parts[0],
            b64(escalated.to_string().as_bytes()),
            parts[2]
        );
        refused(&verifier, &tampered, AuthErrorKind::BadSignature);
        // A signature by another key of the same algorithm.
        let other = format!("{}.{}.{}", parts[0], parts[1], b64(&[0u8; 64]));
        refused(&verifier, &other, AuthErrorKind::BadSignature);
        refused(
            &verifier,
            &format!("{}.{}.", parts[0], parts[1]),
            AuthErrorKind::BadSignature,
        );
    }
    // Signed with an HS256 secret we do not have.
    let token = sign_with(
        Algorithm::HS256,
        None,
        &claims(),
        &EncodingKey::from_secret(b"someone-elses-secret-of-good-length!!"),
    );
    refused(&verifier, &token, AuthErrorKind::BadSignature);
}

#[test]
fn attack_unknown_kid_is_refused() {
    refused(
        &verifier(),
        &sign(Algorithm::HS256, Some("not-a-key"), &claims()),
        AuthErrorKind::UnknownKey,
    );
    refused(
        &verifier(),
        &forged(&json!({"alg": "HS256", "kid": 5}), &claims(), "AAAA"),
        AuthErrorKind::Malformed,
    );
}

#[test]
fn attack_malformed_tokens_are_refused() {
    let verifier = verifier();
    let good = sign(Algorithm::HS256, Some("hs"), &claims());
    let parts: Vec<&str> = good.split('.').collect();
    for token in [
        String::new(),
        "abc".into(),
        "a.b".into(),
        format!("{good}.extra"),
        // Bad base64 in each part.
        format!("!!!.{}.{}", parts[1], parts[2]),
        format!("{}.{}=.{}", parts[0], parts[1], parts[2]),
        format!("{}.{}.{}*", parts[0], parts[1], parts[2]),
        // Padded base64 is not base64url as JWS uses it.
        format!("{}==.{}.{}", parts[0], parts[1], parts[2]),
        // A header that is not JSON, or not an object.
        format!("{}.{}.{}", b64(b"not json"), parts[1], parts[2]),
        format!("{}.{}.{}", b64(b"[\"HS256\"]"), parts[1], parts[2]),
        // Critical extensions we cannot honour.
        forged(
            &json!({"alg": "HS256", "crit": ["exp"]}),
            &claims(),
            parts[2],
        ),
    ] {
        refused(&verifier, &token, AuthErrorKind::Malformed);
    }
    // A payload that is not JSON, correctly signed, is still malformed.
    let header = b64(json!({"alg": "HS256"}).to_string().as_bytes());
    let payload = b64(b"not json");
    let message = format!("{header}.{payload}");
    let signature = jsonwebtoken::crypto::sign(
        message.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    refused(
        &verifier,
        &format!("{message}.{signature}"),
        AuthErrorKind::Malformed,
    );
}

#[test]
fn attack_huge_token_is_refused_before_decoding() {
    let verifier = verifier();
    let huge = format!(
        "{}.{}.{}",
        "A".repeat(512 * 1024),
        "B".repeat(512 * 1024),
        "C"
    );
    let err = verifier.verify_at(&huge, NOW).unwrap_err();
    assert_eq!(err.kind, AuthErrorKind::TooLarge);
    assert!(err.message.len() < 100, "{err}");
    // The limit is configurable; a token just under it is decoded.
    let token = sign(Algorithm::HS256, Some("hs"), &claims());
    let tight = JwtVerifier::new(&JwtConfig {
        max_token_bytes: token.len(),
        ..config()
    })
    .unwrap();
    assert!(tight.verify_at(&token, NOW).is_ok());
    let tighter = JwtVerifier::new(&JwtConfig {
        max_token_bytes: token.len() - 1,
        ..config()
    })
    .unwrap();
    refused(&tighter, &token, AuthErrorKind::TooLarge);
}

#[test]
fn attack_bad_claims_are_refused() {
    let verifier = verifier();
    for (claims, kind) in [
        (json!({"exp": NOW + 60}), AuthErrorKind::MissingClaim),
        (
            json!({"sub": "", "exp": NOW + 60}),
            AuthErrorKind::InvalidClaim,
        ),
        (
            json!({"sub": "a", "exp": "tomorrow"}),
            AuthErrorKind::InvalidClaim,
        ),
        (
            json!({"sub": "a", "exp": NOW + 60, "permissions": ["read:*", "sudo"]}),
            AuthErrorKind::InvalidClaim,
        ),
    ] {
        refused(
            &verifier,
            &sign(Algorithm::HS256, Some("hs"), &claims),
            kind,
        );
    }
}

#[test]
fn permissions_claim_name_and_space_separated_form() {
    let verifier = JwtVerifier::new(&JwtConfig {
        permissions_claim: "scope".into(),
        ..config()
    })
    .unwrap();
    let token = sign(
        Algorithm::EdDSA,
        Some("ed"),
        &json!({"sub": "svc", "exp": NOW + 60, "scope": "read:orders write:orders", "permissions": ["admin"]}),
    );
    let claims = verifier.verify_at(&token, NOW).unwrap();
    assert_eq!(
        claims.permissions.to_strings(),
        ["read:orders", "write:orders"]
    );
    assert!(!claims.permissions.is_admin());
}

#[test]
fn the_verifier_is_shareable() {
    fn assert_shareable<T: Clone + Send + Sync + 'static>() {}
    assert_shareable::<JwtVerifier>();
    let verifier = verifier();
    let token = sign(Algorithm::ES256, Some("ec"), &claims());
    std::thread::scope(|s| {
        for _ in 0..4 {
            let verifier = verifier.clone();
            let token = &token;
            s.spawn(move || assert!(verifier.verify_at(token, NOW).is_ok()));
        }
    });
}

// ---- JWKS ----

fn jwk(algorithm: Algorithm, kid: &str) -> Value {
    let mut jwk = Jwk::from_encoding_key(&signing_key(algorithm), algorithm).unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::to_value(jwk).unwrap()
}

fn jwks(keys: &[Value]) -> Vec<u8> {
    json!({"keys": keys}).to_string().into_bytes()
}

#[test]
fn jwks_keys_verify_tokens_that_name_them() {
    let verifier = JwtVerifier::new(&JwtConfig::default()).unwrap();
    let doc = jwks(&[
        jwk(Algorithm::RS256, "r1"),
        jwk(Algorithm::ES256, "e1"),
        jwk(Algorithm::EdDSA, "d1"),
    ]);
    // It must parse as a standard JWK set too.
    serde_json::from_slice::<JwkSet>(&doc).unwrap();
    assert_eq!(verifier.set_jwks(&doc).unwrap(), 3);
    assert!(verifier.has_kid("r1") && verifier.has_kid("e1") && verifier.has_kid("d1"));
    for (algorithm, kid) in [
        (Algorithm::RS256, "r1"),
        (Algorithm::ES256, "e1"),
        (Algorithm::EdDSA, "d1"),
    ] {
        let claims = verifier
            .verify_at(&sign(algorithm, Some(kid), &claims()), NOW)
            .unwrap();
        assert_eq!(claims.sub, "alice");
    }
    // The JWK's alg is the pin, whatever the token says.
    let rs = sign(Algorithm::RS256, Some("r1"), &claims());
    let (_, rest) = rs.split_once('.').unwrap();
    let header = b64(json!({"alg": "PS256", "kid": "r1"}).to_string().as_bytes());
    refused(
        &verifier,
        &format!("{header}.{rest}"),
        AuthErrorKind::AlgorithmMismatch,
    );
    // Tokens without a kid are not tried against JWKS keys.
    refused(
        &verifier,
        &sign(Algorithm::RS256, None, &claims()),
        AuthErrorKind::AlgorithmNotAllowed,
    );
}

#[test]
fn a_new_jwks_replaces_the_old_one_but_not_configured_keys() {
    let verifier = verifier();
    verifier
        .set_jwks(&jwks(&[jwk(Algorithm::RS256, "old")]))
        .unwrap();
    let old = sign(Algorithm::RS256, Some("old"), &claims());
    assert!(verifier.verify_at(&old, NOW).is_ok());
    assert_eq!(
        verifier
            .set_jwks(&jwks(&[jwk(Algorithm::RS256, "new")]))
            .unwrap(),
        1
    );
    assert!(!verifier.has_kid("old"));
    refused(&verifier, &old, AuthErrorKind::UnknownKey);
    assert!(verifier.has_kid("hs"));
    assert!(
        verifier
            .verify_at(&sign(Algorithm::HS256, Some("hs"), &claims()), NOW)
            .is_ok()
    );
    // A bad document changes nothing.
    assert!(verifier.set_jwks(b"{").is_err());
    assert!(verifier.has_kid("new"));
}

#[test]
fn jwks_documents_are_checked_key_by_key() {
    let verifier = verifier();
    let rsa = jwk(Algorithm::RS256, "r1");
    let without = |field: &str| {
        let mut k = rsa.clone();
        k.as_object_mut().unwrap().remove(field);
        k
    };
    let with = |field: &str, value: Value| {
        let mut k = rsa.clone();
        k[field] = value;
        k
    };
    let mut short_ed = jwk(Algorithm::EdDSA, "d1");
    short_ed["x"] = json!(b64(&[1u8; 10]));
    let mut p384_claim = jwk(Algorithm::ES256, "e1");
    p384_claim["alg"] = json!("ES384");
    let mut small_rsa = rsa.clone();
    small_rsa["n"] = json!(b64(&[0xc1u8; 128]));
    let hs_short = json!({"kty": "oct", "kid": "h", "alg": "HS256", "k": b64(b"short")});
    for (doc, expect) in [
        (b"not json".to_vec(), "not JSON"),
        (b"{}".to_vec(), "no \"keys\" array"),
        (jwks(&[without("kid")]), "no kid"),
        (jwks(&[without("alg")]), "no alg"),
        (
            jwks(&[with("alg", json!("none"))]),
            "\"none\" is not supported",
        ),
        (
            jwks(&[with("alg", json!("ES256"))]),
            "does not match alg ES256",
        ),
        (jwks(&[with("n", json!("!!"))]), "#1 (kid \"r1\")"),
        (jwks(&[rsa.clone(), rsa.clone()]), "appears twice"),
        (
            jwks(&[with("kid", json!("hs"))]),
            "also the kid of a configured key",
        ),
        (jwks(&[short_ed]), "32 bytes"),
        (jwks(&[p384_claim]), "does not match alg ES384"),
        (jwks(&[small_rsa]), "1024 bits"),
        (jwks(&[hs_short]), "at least 32"),
    ] {
        let err = verifier.set_jwks(&doc).expect_err(expect).to_string();
        assert!(err.contains(expect), "expected {expect:?} in {err:?}");
    }
    // Encryption keys are not for us and are skipped, not refused.
    let enc = json!({"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "kid": "x", "n": "AQAB", "e": "AQAB"});
    assert_eq!(verifier.set_jwks(&jwks(&[enc, rsa])).unwrap(), 1);
}

// ---- configuration ----

fn config_error(keys: Vec<KeyConfig>) -> String {
    JwtVerifier::new(&JwtConfig {
        keys,
        ..JwtConfig::default()
    })
    .expect_err("the configuration must be refused")
    .to_string()
}

#[test]
fn bad_keys_are_refused_naming_the_key_and_the_problem() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let cases: Vec<(Vec<KeyConfig>, &str)> = vec![
        (
            vec![key(Some("k"), "HS256")],
            "JWT key #1 (kid \"k\"): HS256 needs a secret",
        ),
        (
            vec![hs256(None), key(None, "RS256")],
            "JWT key #2: RS256 needs public_key",
        ),
        (
            vec![KeyConfig {
                secret: Some("x".repeat(31)),
                ..key(None, "HS256")
            }],
            "secret is 31 bytes; it must be at least 32",
        ),
        (
            vec![KeyConfig {
                secret: Some("x".repeat(47)),
                ..key(None, "HS384")
            }],
            "at least 48",
        ),
        (
            vec![public(None, "RS256", "not a pem")],
            "not an RSA public key",
        ),
        (
            vec![public(None, "ES256", RSA_PUBLIC)],
            "not an EC public key",
        ),
        (
            vec![public(None, "EdDSA", EC_PUBLIC)],
            "not an Ed25519 public key",
        ),
        (
            vec![public(None, "RS256", RSA_PRIVATE)],
            "this is a private key",
        ),
        (
            vec![public(None, "none", RSA_PUBLIC)],
            "algorithm \"none\" is not supported",
        ),
        (
            vec![public(None, "rs256", RSA_PUBLIC)],
            "algorithm \"rs256\" is not supported",
        ),
        (
            vec![hs256(Some("a")), hs256(Some("a"))],
            "JWT keys #1 and #2 have the same kid \"a\"",
        ),
        (vec![hs256(Some(""))], "kid is empty"),
        (
            vec![KeyConfig {
                public_key: Some(RSA_PUBLIC.into()),
                ..hs256(None)
            }],
            "public_key and public_key_file do not apply",
        ),
        (
            vec![KeyConfig {
                secret: Some(SECRET.into()),
                ..public(None, "ES256", EC_PUBLIC)
            }],
            "secret and secret_file do not apply",
        ),
        (
            vec![KeyConfig {
                secret_file: Some(missing.clone()),
                ..hs256(None)
            }],
            "set secret or secret_file, not both",
        ),
        (
            vec![KeyConfig {
                public_key_file: Some(missing.clone()),
                ..key(None, "EdDSA")
            }],
            "cannot read public_key_file",
        ),
    ];
    for (keys, expect) in cases {
        let err = config_error(keys);
        assert!(err.contains(expect), "expected {expect:?} in {err:?}");
        assert!(!err.contains(SECRET), "{err}");
    }
}

#[test]
fn keys_load_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let secret_file = dir.path().join("secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let pem_file = dir.path().join("ec.pem");
    std::fs::write(&pem_file, EC_PUBLIC).unwrap();
    let verifier = JwtVerifier::new(&JwtConfig {
        keys: vec![
            KeyConfig {
                secret_file: Some(secret_file),
                ..key(Some("hs"), "HS256")
            },
            KeyConfig {
                public_key_file: Some(pem_file),
                ..key(Some("ec"), "ES256")
            },
        ],
        ..JwtConfig::default()
    })
    .unwrap();
    // The trailing newline is not part of the secret.
    assert!(
        verifier
            .verify_at(&sign(Algorithm::HS256, Some("hs"), &claims()), NOW)
            .is_ok()
    );
    assert!(
        verifier
            .verify_at(&sign(Algorithm::ES256, Some("ec"), &claims()), NOW)
            .is_ok()
    );
}

#[test]
fn config_deserializes_with_defaults_and_refuses_unknown_fields() {
    let config: JwtConfig = serde_json::from_value(json!({
        "keys": [{"kid": "a", "algorithm": "HS256", "secret": SECRET}],
        "leeway": "5s",
    }))
    .unwrap();
    assert_eq!(config.leeway, Duration::from_secs(5));
    assert_eq!(config.permissions_claim, "permissions");
    assert_eq!(config.max_token_bytes, 8192);
    assert_eq!(config.issuer, None);
    assert!(JwtVerifier::new(&config).is_ok());
    assert!(
        !format!("{config:?}").contains(SECRET),
        "Debug must redact the secret"
    );
    assert_eq!(JwtConfig::default().leeway, Duration::from_secs(30));
    for bad in [
        json!({"keyz": []}),
        json!({"keys": [{"algorithm": "HS256", "secrt": "x"}]}),
        json!({"leeway": "soon"}),
    ] {
        assert!(
            serde_json::from_value::<JwtConfig>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}
