//! What one credential check costs: a JWT of each algorithm family, and an
//! API key. Run with `cargo bench -p herald-auth --bench verify`.

use criterion::{Criterion, criterion_group, criterion_main};
use herald_auth::{ApiKeys, JwtConfig, JwtVerifier, KeyConfig, Permissions};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;
use std::hint::black_box;

const NOW: u64 = 1_700_000_000;
const SECRET: &str = "an-hs256-secret-that-is-long-enough-0123";

fn key(kid: &str, algorithm: &str, secret: Option<&str>, public_key: Option<&str>) -> KeyConfig {
    KeyConfig {
        kid: Some(kid.into()),
        algorithm: algorithm.into(),
        secret: secret.map(Into::into),
        secret_file: None,
        public_key: public_key.map(Into::into),
        public_key_file: None,
    }
}

fn jwt(c: &mut Criterion) {
    let verifier = JwtVerifier::new(&JwtConfig {
        keys: vec![
            key("hs", "HS256", Some(SECRET), None),
            key(
                "rsa",
                "RS256",
                None,
                Some(include_str!("../tests/keys/rsa_public.pem")),
            ),
            key(
                "ec",
                "ES256",
                None,
                Some(include_str!("../tests/keys/ec_public.pem")),
            ),
            key(
                "ed",
                "EdDSA",
                None,
                Some(include_str!("../tests/keys/ed25519_public.pem")),
            ),
        ],
        ..JwtConfig::default()
    })
    .unwrap();
    let claims = json!({
        "sub": "user-42",
        "exp": NOW + 3600,
        "iat": NOW,
        "permissions": ["read:orders", "read:products", "publish:chat:*"],
        "org": {"id": "acme"},
    });
    let cases = [
        (
            "HS256",
            Algorithm::HS256,
            "hs",
            EncodingKey::from_secret(SECRET.as_bytes()),
        ),
        (
            "RS256",
            Algorithm::RS256,
            "rsa",
            EncodingKey::from_rsa_pem(include_bytes!("../tests/keys/rsa_private.pem")).unwrap(),
        ),
        (
            "ES256",
            Algorithm::ES256,
            "ec",
            EncodingKey::from_ec_pem(include_bytes!("../tests/keys/ec_private.pem")).unwrap(),
        ),
        (
            "EdDSA",
            Algorithm::EdDSA,
            "ed",
            EncodingKey::from_ed_pem(include_bytes!("../tests/keys/ed25519_private.pem")).unwrap(),
        ),
    ];
    let mut group = c.benchmark_group("jwt_verify");
    for (name, algorithm, kid, signing_key) in cases {
        let mut header = Header::new(algorithm);
        header.kid = Some(kid.into());
        let token = jsonwebtoken::encode(&header, &claims, &signing_key).unwrap();
        verifier.verify_at(&token, NOW).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| verifier.verify_at(black_box(&token), NOW).unwrap())
        });
    }
    group.finish();
}

fn api_key(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let keys = ApiKeys::open(&dir.path().join("apikeys.json")).unwrap();
    for i in 0..100 {
        let permissions = Permissions::parse(["read:*"]).unwrap();
        keys.create(&format!("filler-{i}"), &permissions).unwrap();
    }
    let permissions = Permissions::parse(["read:orders", "publish:chat:*"]).unwrap();
    let (_, key) = keys.create("bench", &permissions).unwrap();
    c.bench_function("apikey_verify", |b| {
        b.iter(|| keys.verify(black_box(&key)).unwrap())
    });
}

criterion_group!(benches, jwt, api_key);
criterion_main!(benches);
