//! Users for tests of channels and rooms: a configuration with one HS256
//! key, tokens for it, and WebSockets opened with them.

use super::{Server, Ws};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

const SECRET: &str = "a-test-secret-for-rooms-0123456789abcdef";

/// A configuration with an HS256 key; `extra` (namespaces, routes...) is
/// merged in.
pub fn config(extra: Value) -> herald_server::Config {
    let mut base = json!({"auth": {"jwt": {"keys": [{"algorithm": "HS256", "secret": SECRET}]}}});
    merge(&mut base, extra);
    serde_json::from_value(base).expect("a valid test configuration")
}

/// Merges `extra` into `base`, object by object.
pub fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (k, v) in extra {
                merge(base.entry(k).or_insert(Value::Null), v);
            }
        }
        (base, extra) => *base = extra,
    }
}

/// Why a server with `config` (its data directory a fresh temporary one)
/// refuses to start.
pub fn start_error(mut config: herald_server::Config) -> String {
    let dir = tempfile::tempdir().unwrap();
    config.data_dir = dir.path().to_owned();
    let herald = herald_core::Herald::open(dir.path()).unwrap();
    herald_server::App::from_config(herald, &config).expect_err("the server refuses to start")
}

/// A token for user `sub` with `permissions`, valid for an hour.
pub fn token(sub: &str, permissions: &[&str]) -> String {
    let exp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": sub, "exp": exp, "permissions": permissions}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// A WebSocket of user `sub`, past its `welcome`.
pub async fn connect(server: &Server, sub: &str, permissions: &[&str]) -> Ws {
    let bearer = format!("Bearer {}", token(sub, permissions));
    server
        .ws_with(&[("Authorization", &bearer)])
        .await
        .expect("the user connects")
}

/// A REST call as an administrator: the status and the JSON answer.
pub async fn as_admin(
    server: &Server,
    method: Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let (status, json, _) = server
        .call_as(&token("root", &["admin"]), method, path, body)
        .await;
    (status, json)
}

/// The status of a body-less REST call as an administrator.
pub async fn admin_status(server: &Server, method: Method, path: &str) -> u16 {
    as_admin(server, method, path, None).await.0
}

impl Ws {
    /// The next message of type `kind`, skipping others (an error fails).
    pub async fn until(&mut self, kind: &str) -> Value {
        loop {
            let m = self.recv().await;
            if m["type"] == kind {
                return m;
            }
            assert_ne!(m["type"], "error", "waiting for {kind}: {m}");
        }
    }

    /// Joins `room` with presence data; the `joined` answer.
    pub async fn join(&mut self, room: &str, presence: Value) -> Value {
        self.send(json!({"type": "join", "room": room, "presence": presence, "ref": "j"}))
            .await;
        let joined = self.until("joined").await;
        assert_eq!(
            (&joined["room"], &joined["ref"]),
            (&json!(room), &json!("j"))
        );
        joined
    }

    /// Sends `message`; the next message must be an error with `code`.
    pub async fn refused(&mut self, message: Value, code: &str) -> Value {
        self.send(message).await;
        self.expect_error(code).await
    }
}
