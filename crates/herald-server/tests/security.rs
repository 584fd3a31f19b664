//! Security end to end: JWT attacks, permissions on every operation,
//! anonymous access, token expiry, origins, rate limits, API keys, tickets,
//! hidden fields, write rules and the audit log — each against a real
//! server.

mod support;

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::users::merge;
use support::{Server, TIMEOUT};

const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";
const RSA_PUBLIC: &str = include_str!("../../herald-auth/tests/keys/rsa_public.pem");
const RSA_PRIVATE: &str = include_str!("../../herald-auth/tests/keys/rsa_private.pem");

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A configuration with an HS256 key (no kid) and an RS256 key (kid
/// "rsa"), `iss` and `aud` checked, no leeway; `extra` is merged in.
fn config(extra: Value) -> herald_server::Config {
    let mut base = json!({
        "auth": {
            "jwt": {
                "keys": [
                    {"algorithm": "HS256", "secret": SECRET},
                    {"kid": "rsa", "algorithm": "RS256", "public_key": RSA_PUBLIC},
                ],
                "issuer": "https://issuer.test",
                "audience": "herald",
                "leeway": "0s",
            },
        },
    });
    merge(&mut base, extra);
    serde_json::from_value(base).expect("a valid test configuration")
}

fn claims(sub: &str, permissions: &[&str]) -> Value {
    json!({
        "sub": sub,
        "iss": "https://issuer.test",
        "aud": "herald",
        "exp": now() + 3600,
        "permissions": permissions,
    })
}

fn hs256(claims: &Value) -> String {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn rs256(claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("rsa".into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A token signed with HMAC-SHA256 over arbitrary header and claims.
fn forge(header: &Value, claims: &Value, key: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let signing = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(signing.as_bytes());
    format!("{signing}.{}", b64(&mac.finalize().into_bytes()))
}

fn admin() -> String {
    hs256(&claims("root", &["admin"]))
}

#[tokio::test]
async fn forged_and_invalid_tokens_are_rejected_and_the_server_is_unaffected() {
    let server = Server::secured(config(json!({})), |_| {}).await;
    let good = claims("alice", &["read:*"]);
    let valid = hs256(&good);
    let mut tampered: Vec<String> = valid.split('.').map(str::to_owned).collect();
    tampered[1] = b64(claims("root", &["admin"]).to_string().as_bytes());
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = good.clone();
        f(&mut c);
        hs256(&c)
    };
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(br#"{"alg":"none","typ":"JWT"}"#),
                b64(good.to_string().as_bytes())
            ),
            "unauthorized",
            "algorithm",
        ),
        (
            "HS256 signed with the RSA public key",
            forge(
                &json!({"alg": "HS256", "kid": "rsa"}),
                &good,
                RSA_PUBLIC.as_bytes(),
            ),
            "unauthorized",
            "algorithm",
        ),
        (
            "expired",
            with(&|c| c["exp"] = json!(now() - 10)),
            "token_expired",
            "expired",
        ),
        (
            "not yet valid",
            with(&|c| c["nbf"] = json!(now() + 600)),
            "unauthorized",
            "not_yet_valid",
        ),
        (
            "wrong iss",
            with(&|c| c["iss"] = json!("https://evil.test")),
            "unauthorized",
            "issuer",
        ),
        (
            "wrong aud",
            with(&|c| c["aud"] = json!("other-app")),
            "unauthorized",
            "audience",
        ),
        (
            "tampered payload",
            tampered.join("."),
            "unauthorized",
            "signature",
        ),
        (
            "unknown kid",
            {
                let mut header = Header::new(Algorithm::HS256);
                header.kid = Some("nobody".into());
                jsonwebtoken::encode(&header, &good, &EncodingKey::from_secret(SECRET.as_bytes()))
                    .unwrap()
            },
            "unauthorized",
            "unknown_key",
        ),
        (
            "bad base64",
            "@@@.###.$$$".into(),
            "unauthorized",
            "malformed",
        ),
        (
            "huge token",
            format!("{}.{}.x", "a".repeat(40_000), "b".repeat(40_000)),
            "unauthorized",
            "too_large",
        ),
    ];
    for (name, token, code, reason) in &cases {
        let (status, body, _) = server
            .call_as(token, Method::GET, "/v1/tables/t/docs", None)
            .await;
        assert_eq!(status, 401, "{name}: {body}");
        assert_eq!(body["error"]["code"], *code, "{name}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{name}: {message}");
        assert!(
            !message.contains(token.as_str()),
            "{name}: the token is echoed"
        );
        // The same over a WebSocket: refused at the upgrade...
        let bearer = format!("Bearer {token}");
        let refused = server.ws_with(&[("authorization", &bearer)]).await;
        assert_eq!(refused.err().map(|(s, _)| s), Some(401), "{name}");
        // ...or closed (4003) when presented in an `auth` message.
        let mut ws = server.ws_with(&[]).await.unwrap();
        ws.send(json!({"type": "auth", "token": token})).await;
        let (close, why) = ws.expect_close().await;
        // A token larger than a message may be is cut by the size limit.
        let expected = if token.len() > 64 << 10 { 1009 } else { 4003 };
        assert_eq!(close, expected, "{name}: {why}");
    }
    // The server is unaffected: valid tokens of both algorithms work.
    for token in [valid, rs256(&good)] {
        let (status, body, _) = server
            .call_as(&token, Method::GET, "/v1/tables/t/docs", None)
            .await;
        assert_eq!(status, 200, "{body}");
    }
    // The audit log has the failures, never a token.
    let (_, audit, _) = server
        .call_as(
            &admin(),
            Method::GET,
            "/v1/admin/audit?kind=auth_failure&limit=1000",
            None,
        )
        .await;
    let records = audit["records"].as_array().unwrap();
    assert!(records.len() >= cases.len() * 2, "{}", records.len());
    let text = audit.to_string();
    for (name, token, ..) in &cases {
        if token.len() > 20 {
            assert!(
                !text.contains(token.as_str()),
                "{name}: token in the audit log"
            );
        }
    }
    server.stop().await;
}

/// A user with only `read:public` tries everything else.
#[tokio::test]
async fn every_operation_checks_its_permission() {
    let server = Server::secured(config(json!({})), |_| {}).await;
    let root = admin();
    server
        .call_as(
            &root,
            Method::POST,
            "/v1/tables/private/docs",
            Some(&json!({"id": "p"})),
        )
        .await;
    let user = hs256(&claims(
        "bob",
        &["read:public", "read:chat:*", "publish:chat:*"],
    ));
    let denied = [
        (
            Method::POST,
            "/v1/tables/private/docs",
            Some(json!({"id": "x"})),
        ),
        (
            Method::PUT,
            "/v1/tables/private/docs/p",
            Some(json!({"a": 1})),
        ),
        (
            Method::PATCH,
            "/v1/tables/private/docs/p",
            Some(json!({"a": 1})),
        ),
        (Method::DELETE, "/v1/tables/private/docs/p", None),
        (Method::GET, "/v1/tables/private/docs/p", None),
        (Method::GET, "/v1/tables/private/docs", None),
        (
            Method::POST,
            "/v1/batch",
            Some(json!({"ops": [{"op": "insert", "table": "private", "doc": {}}]})),
        ),
        (Method::GET, "/v1/events?topic=table:private", None),
        (Method::GET, "/v1/events", None),
        (
            Method::POST,
            "/v1/channels/news/messages",
            Some(json!({"data": 1})),
        ),
        (Method::GET, "/v1/stats", None),
        (Method::GET, "/v1/subscriptions", None),
        (Method::GET, "/metrics", None),
        (Method::GET, "/v1/admin/apikeys", None),
        (Method::GET, "/v1/admin/audit", None),
        (Method::GET, "/v1/sse?table=private", None),
    ];
    for (method, path, body) in &denied {
        let (status, answer, _) = server
            .call_as(&user, method.clone(), path, body.as_ref())
            .await;
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert_eq!(answer["error"]["code"], "forbidden", "{method} {path}");
    }
    // What it may do, it can.
    let (status, _, _) = server
        .call_as(&user, Method::GET, "/v1/tables/public/docs", None)
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = server
        .call_as(
            &user,
            Method::POST,
            "/v1/channels/chat:1/messages",
            Some(&json!({"data": 1})),
        )
        .await;
    assert_eq!(status, 200);

    // Over a WebSocket, each denial is an error and the connection lives on.
    let bearer = format!("Bearer {user}");
    let mut ws = server.ws_with(&[("authorization", &bearer)]).await.unwrap();
    for message in [
        json!({"type": "subscribe", "id": "a", "table": "private"}),
        json!({"type": "subscribe", "id": "b", "table": "*"}),
        json!({"type": "subscribe", "id": "c", "channel": "news"}),
        json!({"type": "publish", "channel": "news", "data": 1, "ref": "p"}),
        json!({"type": "stats", "ref": "s"}),
    ] {
        ws.send(message.clone()).await;
        let error = ws.expect_error("forbidden").await;
        assert!(
            error["message"].as_str().unwrap().contains("permission"),
            "{message}: {error}"
        );
    }
    let (_, subscribed) = ws
        .subscribe(json!({"type": "subscribe", "id": "ok", "table": "public"}))
        .await;
    assert_eq!(subscribed["type"], "subscribed");
    ws.ping("still-here").await;

    // Publishes carry who sent them.
    ws.subscribe(json!({"type": "subscribe", "id": "chat", "channel": "chat:1"}))
        .await;
    server
        .call_as(
            &user,
            Method::POST,
            "/v1/channels/chat:1/messages",
            Some(&json!({"data": "hi"})),
        )
        .await;
    let event = ws.expect("event").await;
    assert_eq!(event["from"], "user:bob");

    // Denials are audited.
    let (_, audit, _) = server
        .call_as(
            &admin(),
            Method::GET,
            "/v1/admin/audit?kind=denied&who=user:bob&limit=1000",
            None,
        )
        .await;
    assert!(
        audit["records"].as_array().unwrap().len() >= denied.len() + 5,
        "{audit}"
    );
    server.stop().await;
}

#[tokio::test]
async fn anonymous_clients_must_authenticate_in_time() {
    let server = Server::secured(config(json!({"auth": {"auth_timeout": "300ms"}})), |_| {}).await;
    let (status, body) = server.call(Method::GET, "/v1/tables/t/docs", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    // Health stays open.
    assert_eq!(server.call(Method::GET, "/healthz", None).await.0, 200);

    // A WebSocket without credentials may only authenticate (or ping).
    let mut ws = server.ws_with(&[]).await.unwrap();
    ws.send(json!({"type": "subscribe", "id": "a", "table": "t"}))
        .await;
    ws.expect_error("unauthorized").await;
    ws.ping("p").await;
    ws.send(json!({"type": "auth", "token": hs256(&claims("alice", &["read:*"])), "ref": "r"}))
        .await;
    let authenticated = ws.expect("authenticated").await;
    assert_eq!(authenticated["who"], "user:alice");
    assert_eq!(authenticated["ref"], "r");
    ws.subscribe(json!({"type": "subscribe", "id": "a", "table": "t"}))
        .await;
    // Past the deadline, an authenticated connection stays.
    ws.idle(Duration::from_millis(600)).await;
    ws.ping("alive").await;

    // One that never authenticates is closed with 4003.
    let mut silent = server.ws_with(&[]).await.unwrap();
    let (code, reason) = silent.expect_close().await;
    assert_eq!(code, 4003, "{reason}");
    server.stop().await;
}

#[tokio::test]
async fn an_expired_token_closes_the_connection_unless_refreshed() {
    let server = Server::secured(config(json!({})), |_| {}).await;
    let short = |sub: &str, secs: u64| {
        let mut c = claims(sub, &["read:*"]);
        c["exp"] = json!(now() + secs);
        hs256(&c)
    };
    // Refreshed in time: stays open past the first expiry.
    let bearer = format!("Bearer {}", short("alice", 2));
    let mut ws = server.ws_with(&[("authorization", &bearer)]).await.unwrap();
    ws.send(json!({"type": "auth", "token": short("alice", 60)}))
        .await;
    ws.expect("authenticated").await;
    // A token for someone else is refused and changes nothing.
    ws.send(json!({"type": "auth", "token": short("mallory", 60), "ref": "m"}))
        .await;
    ws.expect_error("forbidden").await;
    ws.idle(Duration::from_secs(3)).await;
    ws.ping("alive").await;

    // Not refreshed: closed with 4004 when it expires.
    let bearer = format!("Bearer {}", short("bob", 1));
    let mut ws = server.ws_with(&[("authorization", &bearer)]).await.unwrap();
    let (code, reason) = tokio::time::timeout(Duration::from_secs(5), ws.expect_close())
        .await
        .expect("closed at expiry");
    assert_eq!(code, 4004, "{reason}");
    server.stop().await;
}

#[tokio::test]
async fn origins_are_checked_for_websockets_and_sse() {
    let allowed = config(json!({"auth": {"allowed_origins": ["https://app.test"]}}));
    let server = Server::secured(allowed, |_| {}).await;
    let bearer = format!("Bearer {}", hs256(&claims("alice", &["read:*"])));
    let refused = server
        .ws_with(&[("authorization", &bearer), ("origin", "https://evil.test")])
        .await;
    let (status, body) = refused.err().expect("refused");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    server
        .ws_with(&[("authorization", &bearer), ("origin", "https://app.test")])
        .await
        .expect("allowed origin");
    let sse = server
        .sse(
            "/v1/sse?table=t",
            &[("authorization", &bearer), ("origin", "https://evil.test")],
        )
        .await;
    assert_eq!(sse.err().map(|(s, _)| s), Some(403));
    server.stop().await;

    // No allowlist: a cookie (ambient credentials) from another site is
    // refused; from the same origin it is fine.
    let server = Server::secured(config(json!({})), |_| {}).await;
    let cookie = format!("herald_token={}", hs256(&claims("alice", &["read:*"])));
    let cross = server
        .ws_with(&[("cookie", &cookie), ("origin", "https://evil.test")])
        .await;
    assert_eq!(cross.err().map(|(s, _)| s), Some(403));
    let same = format!("http://{}", server.addr);
    let mut ws = server
        .ws_with(&[("cookie", &cookie), ("origin", &same)])
        .await
        .expect("same-origin cookie");
    ws.subscribe(json!({"type": "subscribe", "id": "a", "table": "t"}))
        .await;
    server.stop().await;
}

#[tokio::test]
async fn rate_limits_refuse_with_a_retry_time_and_abuse_closes() {
    let limits = config(json!({"limits": {
        "messages_per_second": 1, "message_burst": 5, "abuse_strikes": 10,
        "publishes_per_second": 1, "publish_burst": 2,
        "connects_per_second": 1, "connect_burst": 3,
        "connections_per_user": 2,
        "exempt_loopback": false,
    }}));
    let server = Server::secured(limits, |_| {}).await;
    let token = hs256(&claims("alice", &["read:*", "publish:*"]));
    let bearer = format!("Bearer {token}");

    // Publishes per user, over REST: 429 with Retry-After.
    let message = json!({"data": 1});
    let publish = || {
        server.call_as(
            &token,
            Method::POST,
            "/v1/channels/c/messages",
            Some(&message),
        )
    };
    assert_eq!(publish().await.0, 200);
    assert_eq!(publish().await.0, 200);
    let (status, body, retry) = publish().await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert!(body["error"]["retry_after_ms"].as_u64().unwrap() > 0);
    assert!(retry.unwrap().parse::<u64>().unwrap() >= 1);
    // Another user has its own budget.
    let other = hs256(&claims("bob", &["publish:*"]));
    let (status, _, _) = server
        .call_as(
            &other,
            Method::POST,
            "/v1/channels/c/messages",
            Some(&json!({"data": 1})),
        )
        .await;
    assert_eq!(status, 200);

    // Connections per user: the third is refused.
    let mut first = server.ws_with(&[("authorization", &bearer)]).await.unwrap();
    let _second = server.ws_with(&[("authorization", &bearer)]).await.unwrap();
    let third = server.ws_with(&[("authorization", &bearer)]).await;
    assert_eq!(
        third.err().map(|(s, b)| (s, b["error"]["code"].clone())),
        Some((503, json!("too_many_connections")))
    );
    // New connections per address: the burst of 3 is spent.
    let fourth = server
        .ws_with(&[("authorization", &format!("Bearer {other}"))])
        .await;
    assert_eq!(
        fourth.err().map(|(s, b)| (s, b["error"]["code"].clone())),
        Some((429, json!("rate_limited")))
    );

    // Messages per connection: past the burst, `rate_limited`; persistent
    // abuse closes with 1008.
    for i in 0..5 {
        first.ping(&format!("p{i}")).await;
    }
    first.send(json!({"type": "ping", "ref": "over"})).await;
    let error = first.expect_error("rate_limited").await;
    assert!(error["retry_after_ms"].as_u64().unwrap() > 0, "{error}");
    for _ in 0..20 {
        first.send(json!({"type": "ping"})).await;
    }
    let (errors, code) = first.errors_until_close("rate_limited").await;
    assert_eq!(code, 1008);
    assert!(errors >= 8, "refused before closing: {errors}");
    server.stop().await;
}

#[tokio::test]
async fn api_keys_authenticate_servers_and_can_be_revoked() {
    let mut admin_key = String::new();
    let server = Server::secured(config(json!({})), |dir| {
        let keys = herald_auth::ApiKeys::open(&dir.join("apikeys.json")).unwrap();
        let (_, secret) = keys
            .create("ops", &herald_auth::Permissions::parse(["admin"]).unwrap())
            .unwrap();
        admin_key = secret;
    })
    .await;
    let (status, created, _) = server
        .call_as(
            &admin_key,
            Method::POST,
            "/v1/admin/apikeys",
            Some(&json!({"name": "ingest", "permissions": ["write:orders", "read:orders"]})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let key = created["key"].as_str().unwrap().to_owned();
    let id = created["info"]["id"].as_str().unwrap().to_owned();
    let (status, _, _) = server
        .call_as(
            &key,
            Method::POST,
            "/v1/tables/orders/docs",
            Some(&json!({"id": "o1"})),
        )
        .await;
    assert_eq!(status, 201);
    let (status, _, _) = server
        .call_as(
            &key,
            Method::POST,
            "/v1/tables/users/docs",
            Some(&json!({"id": "u"})),
        )
        .await;
    assert_eq!(status, 403);
    // Over a WebSocket too.
    let mut ws = server
        .ws_with(&[("authorization", &format!("Bearer {key}"))])
        .await
        .unwrap();
    ws.subscribe(json!({"type": "subscribe", "id": "o", "table": "orders"}))
        .await;
    // The listing never shows a secret.
    let (_, listed, _) = server
        .call_as(&admin_key, Method::GET, "/v1/admin/apikeys", None)
        .await;
    assert!(
        !listed.to_string().contains(&key[key.len() - 20..]),
        "{listed}"
    );
    assert_eq!(listed["keys"].as_array().unwrap().len(), 2);
    // Revoked: refused from then on.
    let (status, _, _) = server
        .call_as(
            &admin_key,
            Method::DELETE,
            &format!("/v1/admin/apikeys/{id}"),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, body, _) = server
        .call_as(&key, Method::GET, "/v1/tables/orders/docs", None)
        .await;
    assert_eq!(status, 401, "{body}");
    // A wrong secret for a real id is refused the same way.
    let forged = format!("{}{}", &admin_key[..admin_key.len() - 4], "AAAA");
    assert_eq!(
        server
            .call_as(&forged, Method::GET, "/v1/stats", None)
            .await
            .0,
        401
    );
    // Key creation and revocation are audited.
    let (_, audit, _) = server
        .call_as(&admin_key, Method::GET, "/v1/admin/audit", None)
        .await;
    let kinds: Vec<&str> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"key_created") && kinds.contains(&"key_revoked"),
        "{kinds:?}"
    );
    assert!(kinds.contains(&"subscribed"), "{kinds:?}");
    server.stop().await;
}

#[tokio::test]
async fn sse_tickets_are_single_use_and_tokens_stay_out_of_urls() {
    let server = Server::secured(config(json!({})), |_| {}).await;
    let token = hs256(&claims("alice", &["read:*"]));
    let (status, issued, _) = server
        .call_as(&token, Method::POST, "/v1/sse/tickets", None)
        .await;
    assert_eq!(status, 200, "{issued}");
    let ticket = issued["ticket"].as_str().unwrap();
    let path = format!("/v1/sse?table=t&ticket={ticket}");
    let mut stream = server
        .sse(&path, &[])
        .await
        .expect("the ticket opens a stream");
    stream.expect(Some("subscribed")).await;
    let again = server.sse(&path, &[]).await;
    let (status, body) = again.err().expect("a spent ticket");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    // Without credentials at all: refused.
    assert_eq!(
        server
            .sse("/v1/sse?table=t", &[])
            .await
            .err()
            .map(|(s, _)| s),
        Some(401)
    );
    // A token is not accepted as a query parameter.
    let in_url = server
        .sse(&format!("/v1/sse?table=t&access_token={token}"), &[])
        .await;
    assert_eq!(in_url.err().map(|(s, _)| s), Some(400));
    server.stop().await;
}

#[tokio::test]
async fn hidden_fields_and_write_rules_hold_on_every_path() {
    let rules = config(json!({"tables": {"profiles": {
        "read": {"tenant": "$auth.tenant"},
        "write": {"owner": "$auth.sub"},
        "hidden": ["ssn", "contact.phone"],
    }}}));
    let server = Server::secured(rules, |_| {}).await;
    let user = |sub: &str, tenant: &str, extra: &[&str]| {
        let mut permissions = vec!["read:*", "write:*"];
        permissions.extend_from_slice(extra);
        let mut c = claims(sub, &permissions);
        c["tenant"] = json!(tenant);
        hs256(&c)
    };
    let alice = user("alice", "acme", &[]);
    let carol = user("carol", "acme", &["read_hidden:profiles"]);
    let bob = user("bob", "globex", &[]);
    let bearer = format!("Bearer {alice}");
    let mut live = server.ws_with(&[("authorization", &bearer)]).await.unwrap();
    live.subscribe(json!({"type": "subscribe", "id": "p", "table": "profiles"}))
        .await;

    // Alice writes her own row (hidden fields are stored, just not shown).
    let doc = json!({"id": "a", "owner": "alice", "tenant": "acme", "ssn": "123", "contact": {"phone": "tel-hidden-42", "city": "X"}});
    let (status, _, _) = server
        .call_as(&alice, Method::POST, "/v1/tables/profiles/docs", Some(&doc))
        .await;
    assert_eq!(status, 201);
    let event = live.expect("event").await;
    assert!(
        event["doc"].get("ssn").is_none() && event["doc"]["contact"].get("phone").is_none(),
        "{event}"
    );
    assert_eq!(event["doc"]["contact"]["city"], "X");

    // Every read path hides them from alice; carol (read_hidden) sees them.
    for (token, sees) in [(&alice, false), (&carol, true)] {
        let (_, one, _) = server
            .call_as(token, Method::GET, "/v1/tables/profiles/docs/a", None)
            .await;
        let (_, page, _) = server
            .call_as(token, Method::GET, "/v1/tables/profiles/docs", None)
            .await;
        assert_eq!(one.get("ssn").is_some(), sees, "{one}");
        assert_eq!(page["docs"][0].get("ssn").is_some(), sees, "{page}");
        let replay = server
            .text(Some(token), "/v1/events?topic=table:profiles")
            .await;
        assert_eq!(replay.contains("\"ssn\""), sees, "{replay}");
        assert_eq!(replay.contains("tel-hidden-42"), sees, "{replay}");
    }
    let bearer_alice = format!("Bearer {alice}");
    let mut snap = server
        .ws_with(&[("authorization", &bearer_alice)])
        .await
        .unwrap();
    let (before, _) = snap
        .subscribe(json!({"type": "subscribe", "id": "s", "table": "profiles", "snapshot": true}))
        .await;
    let text = Value::Array(before).to_string();
    assert!(
        text.contains("\"city\"") && !text.contains("tel-hidden-42") && !text.contains("ssn"),
        "{text}"
    );
    // A filter on a hidden field would probe it: refused.
    snap.send(
        json!({"type": "subscribe", "id": "probe", "table": "profiles", "filter": {"ssn": "123"}}),
    )
    .await;
    snap.expect_error("forbidden").await;
    let (status, _, _) = server
        .call_as(
            &alice,
            Method::GET,
            "/v1/tables/profiles/docs?filter=%7B%22contact%22%3A%7B%7D%7D",
            None,
        )
        .await;
    assert_eq!(status, 403);

    // Bob, of another tenant, sees nothing of it, not even that it exists.
    let (status, _, _) = server
        .call_as(&bob, Method::GET, "/v1/tables/profiles/docs/a", None)
        .await;
    assert_eq!(status, 404);
    let (_, page, _) = server
        .call_as(&bob, Method::GET, "/v1/tables/profiles/docs", None)
        .await;
    assert_eq!(page["docs"], json!([]));

    // Write rule: carol may not change alice's row (to her it is missing,
    // whatever If-Match says), nor alice give it away or share it (an
    // array would match both owners); the row is unchanged.
    for (token, method, body, status) in [
        (&carol, Method::PATCH, Some(json!({"city": "Y"})), 404),
        (&carol, Method::DELETE, None, 404),
        (
            &carol,
            Method::PUT,
            Some(json!({"owner": "carol", "tenant": "acme"})),
            403,
        ),
        (&alice, Method::PATCH, Some(json!({"owner": "carol"})), 403),
        (
            &alice,
            Method::PATCH,
            Some(json!({"owner": ["alice", "carol"]})),
            403,
        ),
        (
            &alice,
            Method::PUT,
            Some(json!({"owner": "bob", "tenant": "acme"})),
            403,
        ),
    ] {
        let (got, body, _) = server
            .call_as(
                token,
                method.clone(),
                "/v1/tables/profiles/docs/a",
                body.as_ref(),
            )
            .await;
        assert_eq!(got, status, "{method}: {body}");
    }
    let reply = server
        .http
        .delete(format!("{}/v1/tables/profiles/docs/a", server.base))
        .bearer_auth(&carol)
        .header("if-match", "\"7\"")
        .send()
        .await
        .unwrap();
    assert_eq!(
        reply.status().as_u16(),
        404,
        "If-Match does not probe another's row"
    );
    let shared = json!({"id": "s", "owner": ["alice", "carol"], "tenant": "acme"});
    let (status, _, _) = server
        .call_as(
            &alice,
            Method::POST,
            "/v1/tables/profiles/docs",
            Some(&shared),
        )
        .await;
    assert_eq!(status, 403, "a row owned by an array is refused");
    let (status, body, _) = server
        .call_as(
            &carol,
            Method::POST,
            "/v1/batch",
            Some(&json!({"ops": [{"op": "insert", "table": "profiles", "doc": {"id": "c", "owner": "alice", "tenant": "acme"}}]})),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (_, one, _) = server
        .call_as(&carol, Method::GET, "/v1/tables/profiles/docs/a", None)
        .await;
    assert_eq!(
        (&one["owner"], &one["contact"]["city"]),
        (&json!("alice"), &json!("X"))
    );
    live.quiet(Duration::from_millis(200)).await;
    server.stop().await;
}

#[test]
fn a_public_address_without_authentication_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config: herald_server::Config = serde_json::from_value(json!({
        "listen": "0.0.0.0:7070",
        "data_dir": dir.path(),
    }))
    .unwrap();
    let error = herald_server::Security::from_config(&config).unwrap_err();
    assert!(
        error.contains("refusing to listen on 0.0.0.0:7070"),
        "{error}"
    );
    // Allowing anonymous clients explicitly is accepted.
    let config: herald_server::Config = serde_json::from_value(json!({
        "listen": "0.0.0.0:7070",
        "data_dir": dir.path(),
        "auth": {"anonymous": "allow", "anonymous_permissions": ["read:public"]},
    }))
    .unwrap();
    herald_server::Security::from_config(&config).unwrap();
    let _ = TIMEOUT;
}

/// Hostile inputs of every size and shape get a precise error and leave the
/// server (and the connection, where the protocol allows) working.
#[tokio::test]
async fn oversize_deep_and_malformed_inputs_get_precise_errors() {
    let server = Server::secured(
        config(json!({"http": {"max_body_bytes": 65536}, "realtime": {"max_message_bytes": 8192}})),
        |_| {},
    )
    .await;
    let root = admin();
    let deep = |levels: usize| {
        let mut v = json!(1);
        for _ in 0..levels {
            v = json!({ "a": v });
        }
        v
    };
    let raw = |body: String| {
        let http = server.http.clone();
        let url = format!("{}/v1/tables/t/docs", server.base);
        let token = root.clone();
        async move {
            let reply = http
                .post(url)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = reply.status().as_u16();
            (status, reply.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    for (name, body, status, code) in [
        (
            "nested 500 deep",
            deep(500).to_string(),
            400,
            "invalid_json",
        ),
        (
            "number out of range",
            r#"{"n": 1e400}"#.to_owned(),
            400,
            "invalid_json",
        ),
        ("not an object", "[1,2]".to_owned(), 400, "not_an_object"),
        (
            "body too large",
            format!(r#"{{"s":"{}"}}"#, "x".repeat(70_000)),
            413,
            "payload_too_large",
        ),
        (
            "control characters in the id",
            r#"{"id":"a\u0000b"}"#.to_owned(),
            400,
            "invalid_id",
        ),
    ] {
        let (got, body) = raw(body).await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{name}: {body}"
        );
    }
    for (path, status, code) in [
        ("/v1/tables/bad-name/docs", 400, "invalid_table"),
        ("/v1/channels/a%20b/messages", 400, "invalid_channel"),
        ("/v1/channels/a..b/messages", 400, "invalid_channel"),
    ] {
        let (got, body, _) = server
            .call_as(&root, Method::POST, path, Some(&json!({"data": 1})))
            .await;
        assert_eq!(
            (got, body["error"]["code"].as_str()),
            (status, Some(code)),
            "{path}: {body}"
        );
    }
    let filter = deep(40).to_string();
    let path = format!("/v1/tables/t/docs?filter={}", urlencode(&filter));
    let (got, body, _) = server.call_as(&root, Method::GET, &path, None).await;
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (400, Some("invalid_filter")),
        "{body}"
    );
    let (got, body, _) = server
        .call_as(
            &root,
            Method::GET,
            "/v1/events?from=99999999999999999999999999",
            None,
        )
        .await;
    assert_eq!(
        (got, body["error"]["code"].as_str()),
        (400, Some("invalid_parameter")),
        "{body}"
    );
    // An Authorization header that is not a bearer token.
    let reply = server
        .http
        .get(format!("{}/v1/tables/t/docs", server.base))
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(reply.status().as_u16(), 401);

    // Over a WebSocket: errors, and the connection survives; too big closes.
    let bearer = format!("Bearer {root}");
    let mut ws = server.ws_with(&[("authorization", &bearer)]).await.unwrap();
    ws.send_text(&deep(200).to_string()).await;
    ws.expect_error("invalid_message").await;
    ws.send(json!({"type": "subscribe", "id": "a\nb", "table": "t"}))
        .await;
    ws.expect_error("invalid_parameter").await;
    ws.send(json!({"type": "subscribe", "id": "d", "table": "t", "filter": deep(40)}))
        .await;
    ws.expect_error("invalid_filter").await;
    ws.send(json!({"type": "publish", "channel": "bad name", "data": 1, "ref": "p"}))
        .await;
    ws.expect_error("invalid_channel").await;
    ws.ping("alive").await;
    ws.send_text(&format!(
        r#"{{"type":"ping","ref":"{}"}}"#,
        "x".repeat(10_000)
    ))
    .await;
    let (code, _) = ws.expect_close().await;
    assert_eq!(code, 1009);
    // The server is unaffected.
    let (got, _, _) = server
        .call_as(&root, Method::GET, "/v1/tables/t/docs", None)
        .await;
    assert_eq!(got, 200);
    server.stop().await;
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A JWKS server: the document it serves (replaceable) and how many times
/// it was fetched.
struct JwksServer {
    url: String,
    document: std::sync::Arc<std::sync::Mutex<Value>>,
    fetches: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn jwks_server(keys: Value) -> JwksServer {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    let document = Arc::new(Mutex::new(keys));
    let fetches = Arc::new(AtomicUsize::new(0));
    let (d, f) = (document.clone(), fetches.clone());
    let app = axum::Router::new().route(
        "/jwks.json",
        axum::routing::get(move || {
            let (d, f) = (d.clone(), f.clone());
            async move {
                f.fetch_add(1, Ordering::SeqCst);
                axum::Json(d.lock().unwrap().clone())
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    JwksServer {
        url,
        document,
        fetches,
    }
}

fn jwk_rs256(kid: &str) -> Value {
    let key = EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap();
    let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some(kid.into());
    serde_json::to_value(jwk).unwrap()
}

fn rs256_kid(kid: &str, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some(kid.into());
    jsonwebtoken::encode(
        &header,
        claims,
        &EncodingKey::from_rsa_pem(RSA_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

#[tokio::test]
async fn jwks_keys_are_fetched_refetched_on_unknown_kid_and_rate_limited() {
    use std::sync::atomic::Ordering;
    let jwks = jwks_server(json!({"keys": [jwk_rs256("k1")]})).await;
    let jwt = |min_interval: &str| {
        config(json!({"auth": {"jwt": {
            "keys": [{"algorithm": "HS256", "secret": SECRET}],
            "jwks_url": jwks.url,
            "jwks_min_interval": min_interval,
            "jwks_refresh": "1h",
        }}}))
    };
    let reader = claims("alice", &["read:*"]);
    let server = Server::secured(jwt("0s"), |_| {}).await;
    let get = |token: String| {
        let server = &server;
        async move {
            server
                .call_as(&token, Method::GET, "/v1/tables/t/docs", None)
                .await
                .0
        }
    };
    assert_eq!(get(rs256_kid("k1", &reader)).await, 200);
    // The provider rotates its keys: a token naming the new kid makes the
    // server fetch the document again.
    *jwks.document.lock().unwrap() = json!({"keys": [jwk_rs256("k1"), jwk_rs256("k2")]});
    assert_eq!(get(rs256_kid("k2", &reader)).await, 200);
    assert_eq!(get(rs256_kid("nope", &reader)).await, 401);
    server.stop().await;

    // With a minimum interval, unknown kids cannot make it fetch again.
    let before = jwks.fetches.load(Ordering::SeqCst);
    let server = Server::secured(jwt("1h"), |_| {}).await;
    assert_eq!(
        server
            .call_as(
                &rs256_kid("k2", &reader),
                Method::GET,
                "/v1/tables/t/docs",
                None
            )
            .await
            .0,
        200
    );
    for i in 0..20 {
        let token = rs256_kid(&format!("forged-{i}"), &reader);
        let (status, body, _) = server
            .call_as(&token, Method::GET, "/v1/tables/t/docs", None)
            .await;
        assert_eq!(status, 401, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("unknown_key")
        );
    }
    let fetched = jwks.fetches.load(Ordering::SeqCst) - before;
    assert!(
        fetched <= 2,
        "one fetch at start (and at most one for the first token), got {fetched}"
    );
    server.stop().await;
}

/// Regression: a `changed` subscription must not reveal, by which updates
/// it lets through, how a row differed from a previous version the reader
/// may not see.
#[tokio::test]
async fn changed_fields_do_not_describe_a_withheld_previous_version() {
    let rules = config(json!({"tables": {"docs": {"read": {"owner": "$auth.sub"}}}}));
    let server = Server::secured(rules, |_| {}).await;
    let root = admin();
    for id in ["m1", "m2"] {
        let doc = json!({"id": id, "owner": "bob", "n": 5});
        server
            .call_as(&root, Method::POST, "/v1/tables/docs/docs", Some(&doc))
            .await;
    }
    let alice = hs256(&claims("alice", &["read:*"]));
    let mut ws = server
        .ws_with(&[("authorization", &format!("Bearer {alice}"))])
        .await
        .unwrap();
    ws.subscribe(json!({"type": "subscribe", "id": "n", "table": "docs", "changed": ["n"]}))
        .await;
    // Both rows move to alice; only m2 changes n. To alice both are rows
    // that appeared, with no previous version: both arrive, neither says
    // what changed.
    for (id, patch) in [
        ("m1", json!({"owner": "alice"})),
        ("m2", json!({"owner": "alice", "n": 6})),
    ] {
        let path = format!("/v1/tables/docs/docs/{id}");
        server
            .call_as(&root, Method::PATCH, &path, Some(&patch))
            .await;
    }
    for id in ["m1", "m2"] {
        let event = ws.expect("event").await;
        assert_eq!(event["id"], id, "{event}");
        assert!(
            event.get("old").is_none() && event.get("changed").is_none(),
            "{event}"
        );
    }
    // Once the row is alice's, `changed` works as usual.
    server
        .call_as(
            &root,
            Method::PATCH,
            "/v1/tables/docs/docs/m1",
            Some(&json!({"x": 1})),
        )
        .await;
    server
        .call_as(
            &root,
            Method::PATCH,
            "/v1/tables/docs/docs/m1",
            Some(&json!({"n": 7})),
        )
        .await;
    let event = ws.expect("event").await;
    assert_eq!(
        (event["doc"]["n"].clone(), event["changed"].clone()),
        (json!(7), json!(["n"]))
    );
    server.stop().await;
}

#[tokio::test]
async fn connections_per_address_are_capped_and_released() {
    let limits = config(json!({"limits": {
        "connects_per_second": 0, "connections_per_ip": 2, "exempt_loopback": false,
    }}));
    let server = Server::secured(limits, |_| {}).await;
    let bearer = |sub: &str| format!("Bearer {}", hs256(&claims(sub, &["read:*"])));
    let first = server
        .ws_with(&[("authorization", &bearer("a"))])
        .await
        .unwrap();
    let sse = server
        .sse("/v1/sse?table=t", &[("authorization", &bearer("b"))])
        .await
        .unwrap();
    let refused = server.ws_with(&[("authorization", &bearer("c"))]).await;
    let (status, body) = refused.err().expect("a third connection from one address");
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("too_many_connections"))
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("address"),
        "{body}"
    );
    // A closed connection gives its place back.
    drop(first);
    drop(sse);
    let deadline = tokio::time::Instant::now() + TIMEOUT;
    loop {
        match server.ws_with(&[("authorization", &bearer("c"))]).await {
            Ok(_) => break,
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the place was not given back: {e:?}"),
        }
    }
    server.stop().await;
}
