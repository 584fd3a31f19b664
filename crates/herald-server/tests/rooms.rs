//! Rooms, presence, broadcast, namespaces, personal channels and change
//! routing, end to end: each test starts a real server and speaks the
//! protocol over WebSockets and REST, as users with JWTs.

mod support;

use herald_core::clock::ManualClock;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use reqwest::Method;
use serde_json::{Value, json};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use support::{Server, Ws};

const SECRET: &str = "a-test-secret-for-rooms-0123456789abcdef";

/// A configuration with an HS256 key; `extra` (namespaces, routes...) is
/// merged in.
fn config(extra: Value) -> herald_server::Config {
    let mut base = json!({"auth": {"jwt": {"keys": [{"algorithm": "HS256", "secret": SECRET}]}}});
    merge(&mut base, extra);
    serde_json::from_value(base).expect("a valid test configuration")
}

fn merge(base: &mut Value, extra: Value) {
    match (base, extra) {
        (Value::Object(base), Value::Object(extra)) => {
            for (k, v) in extra {
                merge(base.entry(k).or_insert(Value::Null), v);
            }
        }
        (base, extra) => *base = extra,
    }
}

fn token(sub: &str, permissions: &[&str]) -> String {
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

/// What a chat user may do in `chat:*` rooms.
const CHATTER: &[&str] = &["read:chat:*", "presence:chat:*", "publish:chat:*"];

async fn connect(server: &Server, sub: &str, permissions: &[&str]) -> Ws {
    let bearer = format!("Bearer {}", token(sub, permissions));
    server
        .ws_with(&[("Authorization", &bearer)])
        .await
        .expect("the user connects")
}

/// Joins `room` and returns the `joined` answer (events of other rooms
/// arriving meanwhile are skipped).
async fn join(ws: &mut Ws, room: &str, presence: Value) -> Value {
    ws.send(json!({"type": "join", "room": room, "presence": presence, "ref": "j"}))
        .await;
    let joined = until(ws, "joined").await;
    assert_eq!(
        (&joined["room"], &joined["ref"]),
        (&json!(room), &json!("j"))
    );
    joined
}

/// The next message of type `kind`, skipping events and presence changes
/// (an error fails).
async fn until(ws: &mut Ws, kind: &str) -> Value {
    loop {
        let m = ws.recv().await;
        if m["type"] == kind {
            return m;
        }
        assert_ne!(m["type"], "error", "waiting for {kind}: {m}");
    }
}

/// Sends `message` and returns the next message, which must be an error
/// with `code`.
async fn refused(ws: &mut Ws, message: Value, code: &str) -> Value {
    ws.send(message).await;
    ws.expect_error(code).await
}

async fn as_admin(
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

#[tokio::test]
async fn joins_leaves_and_presence_are_acknowledged_and_announced() {
    let server = Server::configured(
        config(json!({"namespaces": {"chat": {"join_leave": true}, "quiet": {"presence": false}}})),
        None,
    )
    .await;
    let mut alice = connect(&server, "alice", CHATTER).await;
    let mut bob = connect(&server, "bob", CHATTER).await;

    let joined = join(&mut alice, "chat:lobby", json!({"name": "Alice"})).await;
    assert_eq!(joined["members"], 1);
    let alice_client = joined["client"].as_str().unwrap().to_owned();
    let joined = join(&mut bob, "chat:lobby", json!({"name": "Bob"})).await;
    assert_eq!(joined["members"], 2);
    let bob_client = joined["client"].as_str().unwrap().to_owned();

    // Alice is told; Bob is not told of himself.
    let event = alice.expect("member_joined").await;
    assert_eq!(event["subs"], json!(["chat:lobby"]));
    assert_eq!(event["channel"], "chat:lobby");
    assert_eq!(event["member"]["client"], json!(bob_client));
    assert_eq!(event["member"]["user"], "bob");
    assert_eq!(event["member"]["data"], json!({"name": "Bob"}));

    bob.send(json!({"type": "presence", "room": "chat:lobby", "ref": "p"}))
        .await;
    let presence = bob.expect("presence").await;
    assert_eq!(presence["ref"], "p");
    let clients: Vec<&Value> = presence["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| &m["client"])
        .collect();
    assert_eq!(
        clients,
        [&json!(alice_client), &json!(bob_client)],
        "in join order"
    );

    bob.send(json!({"type": "update_presence", "room": "chat:lobby", "data": {"name": "Bobby"}, "ref": "u"}))
        .await;
    let updated = bob.expect("presence_updated").await;
    assert_eq!(updated["member"]["data"], json!({"name": "Bobby"}));
    assert!(updated["member"]["updated_at"].as_u64() >= updated["member"]["joined_at"].as_u64());
    let event = alice.expect("member_updated").await;
    assert_eq!(event["member"]["data"], json!({"name": "Bobby"}));

    // Messages of the room reach its members, named by the room.
    alice
        .send(json!({"type": "publish", "channel": "chat:lobby", "data": "hi", "ref": "m"}))
        .await;
    let mut answers = Vec::new();
    for _ in 0..2 {
        answers.push(alice.recv().await);
    }
    assert!(
        answers
            .iter()
            .any(|m| m["type"] == "published" && m["receivers"] == 2),
        "{answers:?}"
    );
    let event = bob.expect("event").await;
    assert_eq!(
        (&event["subs"], &event["data"]),
        (&json!(["chat:lobby"]), &json!("hi"))
    );

    // Leaving: acknowledged to Bob, announced to Alice.
    bob.send(json!({"type": "leave", "room": "chat:lobby", "ref": "l"}))
        .await;
    let left = bob.expect("left").await;
    assert_eq!(
        (&left["ref"], &left["reason"]),
        (&json!("l"), &json!("left"))
    );
    let event = alice.expect("member_left").await;
    assert_eq!(
        (&event["member"]["client"], &event["reason"]),
        (&json!(bob_client), &json!("left"))
    );

    // And over REST.
    let (status, members) = server
        .call_as(
            &token("carol", CHATTER),
            Method::GET,
            "/v1/rooms/chat:lobby/members",
            None,
        )
        .await
        .into_two();
    assert_eq!(status, 200, "{members}");
    assert_eq!(members["members"].as_array().unwrap().len(), 1);

    // Errors, each precise; the connection survives them.
    refused(
        &mut bob,
        json!({"type": "leave", "room": "chat:lobby"}),
        "not_member",
    )
    .await;
    refused(
        &mut alice,
        json!({"type": "join", "room": "chat:lobby", "ref": "again"}),
        "already_member",
    )
    .await;
    refused(
        &mut alice,
        json!({"type": "join", "room": "bad room"}),
        "invalid_channel",
    )
    .await;
    refused(
        &mut alice,
        json!({"type": "join", "room": "table:x"}),
        "invalid_channel",
    )
    .await;
    refused(
        &mut alice,
        json!({"type": "join", "room": "other:x"}),
        "forbidden",
    )
    .await;
    refused(
        &mut alice,
        json!({"type": "join", "room": "chat:x", "presence": "x".repeat(5000)}),
        "payload_too_large",
    )
    .await;
    refused(
        &mut alice,
        json!({"type": "update_presence", "room": "chat:nowhere", "data": 1}),
        "not_member",
    )
    .await;
    refused(
        &mut alice,
        json!({"type": "join", "room": "chat:x", "extra": 1}),
        "invalid_message",
    )
    .await;
    refused(
        &mut alice,
        json!({"type": "unsubscribe", "id": "chat:lobby"}),
        "invalid_parameter",
    )
    .await;
    let mut quiet = connect(&server, "q", &["read:quiet:*", "presence:quiet:*"]).await;
    join(&mut quiet, "quiet:a", Value::Null).await;
    refused(
        &mut quiet,
        json!({"type": "presence", "room": "quiet:a"}),
        "invalid_parameter",
    )
    .await;
    alice.ping("still").await;
}

#[tokio::test]
async fn a_room_holds_at_most_its_member_limit() {
    let server = Server::configured(
        config(json!({"namespaces": {"chat": {"max_members": 2}}})),
        None,
    )
    .await;
    let mut a = connect(&server, "a", CHATTER).await;
    let mut b = connect(&server, "b", CHATTER).await;
    let mut c = connect(&server, "c", CHATTER).await;
    join(&mut a, "chat:small", Value::Null).await;
    join(&mut b, "chat:small", Value::Null).await;
    let full = refused(
        &mut c,
        json!({"type": "join", "room": "chat:small", "ref": "x"}),
        "room_full",
    )
    .await;
    assert_eq!(full["ref"], "x");
    b.send(json!({"type": "leave", "room": "chat:small"})).await;
    b.expect("left").await;
    join(&mut c, "chat:small", Value::Null).await;
    // A room's own limit wins over its namespace's.
    let (status, info) = as_admin(
        &server,
        Method::PUT,
        "/v1/rooms/chat:tiny",
        Some(&json!({"max_members": 1})),
    )
    .await;
    assert_eq!((status, &info["max_members"]), (200, &json!(1)));
    join(&mut a, "chat:tiny", Value::Null).await;
    refused(
        &mut b,
        json!({"type": "join", "room": "chat:tiny"}),
        "room_full",
    )
    .await;
}

#[tokio::test]
async fn moderators_remove_members_and_publish_policies_hold() {
    let server = Server::configured(
        config(json!({"namespaces": {
            "chat": {"publish": "members", "join_leave": true},
            "stage": {"publish": "moderators"},
            "news": {"publish": "server"},
        }})),
        None,
    )
    .await;
    let perms = ["read:*", "presence:*", "publish:*"];
    let mut mia = connect(&server, "mia", &perms).await;
    let mut bob = connect(&server, "bob", &perms).await;
    let mut carl = connect(
        &server,
        "carl",
        &["read:*", "presence:*", "publish:*", "moderate:chat:*"],
    )
    .await;
    let (status, _) = as_admin(
        &server,
        Method::PUT,
        "/v1/rooms/stage:main",
        Some(&json!({"moderators": ["mia"]})),
    )
    .await;
    assert_eq!(status, 200);

    // `members`: a member may publish, a stranger may not.
    refused(
        &mut bob,
        json!({"type": "publish", "channel": "chat:a", "data": 1}),
        "forbidden",
    )
    .await;
    join(&mut bob, "chat:a", Value::Null).await;
    bob.send(json!({"type": "publish", "channel": "chat:a", "data": 1, "ref": "ok"}))
        .await;
    until(&mut bob, "published").await;
    // Over REST too: the user has a member in the room.
    let (status, _, _) = server
        .call_as(
            &token("bob", &perms),
            Method::POST,
            "/v1/channels/chat:a/messages",
            Some(&json!({"data": 2})),
        )
        .await;
    assert_eq!(status, 200);

    // `moderators`: the listed moderator may, a member may not, a server may.
    join(&mut bob, "stage:main", Value::Null).await;
    refused(
        &mut bob,
        json!({"type": "publish", "channel": "stage:main", "data": 1}),
        "forbidden",
    )
    .await;
    mia.send(json!({"type": "publish", "channel": "stage:main", "data": 1, "ref": "m"}))
        .await;
    assert_eq!(mia.expect("published").await["ref"], "m");
    let (status, _) = as_admin(
        &server,
        Method::POST,
        "/v1/channels/stage:main/messages",
        Some(&json!({"data": 3})),
    )
    .await;
    assert_eq!(status, 200);

    // `server`: no user, whatever its permissions.
    refused(
        &mut mia,
        json!({"type": "publish", "channel": "news:x", "data": 1}),
        "forbidden",
    )
    .await;
    let (status, _) = as_admin(
        &server,
        Method::POST,
        "/v1/channels/news:x/messages",
        Some(&json!({"data": 1})),
    )
    .await;
    assert_eq!(status, 200);

    // Removing members: a moderator by permission (carl, chat) or by the
    // room's list (mia, stage); not a plain member.
    bob.send(json!({"type": "presence", "room": "chat:a"}))
        .await;
    let bob_client = until(&mut bob, "presence").await["members"][0]["client"]
        .as_str()
        .unwrap()
        .to_owned();
    refused(
        &mut mia,
        json!({"type": "remove_member", "room": "chat:a", "client": bob_client}),
        "forbidden",
    )
    .await;
    carl.send(json!({"type": "remove_member", "room": "chat:a", "client": bob_client, "ref": "r"}))
        .await;
    let removed = carl.expect("member_removed").await;
    assert_eq!(
        (&removed["ref"], &removed["client"]),
        (&json!("r"), &json!(bob_client))
    );
    let left = until(&mut bob, "left").await;
    assert_eq!(
        (&left["room"], &left["reason"], &left["by"]),
        (&json!("chat:a"), &json!("removed"), &json!("user:carl"))
    );
    refused(
        &mut carl,
        json!({"type": "remove_member", "room": "chat:a", "client": bob_client}),
        "not_member",
    )
    .await;
    refused(
        &mut carl,
        json!({"type": "remove_member", "room": "chat:a", "client": "nobody"}),
        "not_member",
    )
    .await;
    // The room's listed moderator removes over REST as a user.
    let (status, body, _) = server
        .call_as(
            &token("mia", &perms),
            Method::DELETE,
            &format!("/v1/rooms/stage:main/members/{bob_client}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["removed"]["client"], json!(bob_client));
}

#[tokio::test]
async fn persistent_rooms_survive_a_restart_and_ephemeral_ones_vanish() {
    let config = config(json!({"namespaces": {"kept": {"persistent": true}}}));
    let server = Server::configured(config.clone(), None).await;
    let perms = ["read:*", "presence:*"];
    let settings = json!({"max_members": 50, "moderators": ["mia"], "data": {"title": "Kept"}});
    let (status, info) = as_admin(&server, Method::PUT, "/v1/rooms/kept:a", Some(&settings)).await;
    assert_eq!((status, &info["stored"]), (200, &json!(true)), "{info}");
    let mut ws = connect(&server, "u", &perms).await;
    join(&mut ws, "kept:b", Value::Null).await;
    join(&mut ws, "eph:c", Value::Null).await;
    ws.send(json!({"type": "leave", "room": "eph:c"})).await;
    ws.expect("left").await;
    assert_eq!(
        as_admin(&server, Method::GET, "/v1/rooms/eph:c", None)
            .await
            .0,
        404
    );
    let (status, info) = as_admin(&server, Method::GET, "/v1/rooms/kept:b", None).await;
    assert_eq!((status, &info["members"]), (200, &json!(1)));
    drop(ws);

    let addr = server.addr;
    let dir = server.stop().await;
    let server = Server::configured_in(dir, config.clone(), None, Some(addr)).await;
    let (_, list) = as_admin(&server, Method::GET, "/v1/rooms", None).await;
    let names: Vec<&str> = list["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["room"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["kept:a", "kept:b"]);
    let (_, a) = as_admin(&server, Method::GET, "/v1/rooms/kept:a", None).await;
    assert_eq!(a["settings"], settings);
    assert_eq!(a["members"], 0);

    assert_eq!(
        as_admin(&server, Method::DELETE, "/v1/rooms/kept:a", None)
            .await
            .0,
        204
    );
    assert_eq!(
        as_admin(&server, Method::DELETE, "/v1/rooms/kept:a", None)
            .await
            .0,
        404
    );
    let dir = server.stop().await;
    let server = Server::configured_in(dir, config, None, Some(addr)).await;
    assert_eq!(
        as_admin(&server, Method::GET, "/v1/rooms/kept:a", None)
            .await
            .0,
        404
    );
    assert_eq!(
        as_admin(&server, Method::GET, "/v1/rooms/kept:b", None)
            .await
            .0,
        200
    );
    // Bad settings.
    let (status, body) = as_admin(
        &server,
        Method::PUT,
        "/v1/rooms/kept:z",
        Some(&json!({"moderator": []})),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (400, &json!("invalid_parameter")),
        "{body}"
    );
    let (status, _, _) = server
        .call_as(
            &token("u", &perms),
            Method::PUT,
            "/v1/rooms/kept:z",
            Some(&json!({})),
        )
        .await;
    assert_eq!(status, 403, "settings need moderate:");
}

#[tokio::test]
async fn deleting_a_room_tells_its_members() {
    let server = Server::configured(config(json!({})), None).await;
    let mut ws = connect(&server, "u", CHATTER).await;
    join(&mut ws, "chat:doomed", Value::Null).await;
    assert_eq!(
        as_admin(&server, Method::DELETE, "/v1/rooms/chat:doomed", None)
            .await
            .0,
        204
    );
    let left = ws.expect("left").await;
    assert_eq!(
        (&left["room"], &left["reason"]),
        (&json!("chat:doomed"), &json!("room_deleted"))
    );
    // No longer a member: messages no longer arrive.
    let (status, _) = as_admin(
        &server,
        Method::POST,
        "/v1/channels/chat:doomed/messages",
        Some(&json!({"data": 1})),
    )
    .await;
    assert_eq!(status, 200);
    ws.quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_broadcast_reaches_each_connection_once() {
    let server = Server::configured(config(json!({})), None).await;
    let mut both = connect(&server, "a", CHATTER).await;
    let mut one = connect(&server, "b", CHATTER).await;
    let mut elsewhere = connect(&server, "c", CHATTER).await;
    let mut nowhere = connect(&server, "d", CHATTER).await;
    join(&mut both, "chat:r1", Value::Null).await;
    join(&mut both, "chat:r2", Value::Null).await;
    join(&mut one, "chat:r1", Value::Null).await;
    join(&mut elsewhere, "chat:r3", Value::Null).await;

    both.send(json!({"type": "broadcast", "rooms": ["chat:r1", "chat:r2", "chat:r1"], "data": {"x": 1}, "ref": "b"}))
        .await;
    let mut mine = Vec::new();
    for _ in 0..2 {
        mine.push(both.recv().await);
    }
    let sent = mine
        .iter()
        .find(|m| m["type"] == "broadcast_sent")
        .expect("the answer");
    assert_eq!((&sent["ref"], &sent["receivers"]), (&json!("b"), &json!(2)));
    let copy = mine
        .iter()
        .find(|m| m["type"] == "broadcast")
        .expect("one copy");
    let mut subs: Vec<&str> = copy["subs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    subs.sort_unstable();
    assert_eq!(subs, ["chat:r1", "chat:r2"]);
    assert_eq!(copy["rooms"], json!(["chat:r1", "chat:r2"]));
    assert_eq!(
        (&copy["data"], &copy["from"]),
        (&json!({"x": 1}), &json!("user:a"))
    );
    let got = one.expect("broadcast").await;
    assert_eq!(got["subs"], json!(["chat:r1"]));
    for ws in [&mut both, &mut one, &mut elsewhere, &mut nowhere] {
        ws.quiet(Duration::from_millis(150)).await;
    }

    // To everyone: servers and holders of publish:* only.
    refused(
        &mut both,
        json!({"type": "broadcast", "everyone": true, "data": 1}),
        "forbidden",
    )
    .await;
    let (status, body) = as_admin(
        &server,
        Method::POST,
        "/v1/broadcast",
        Some(&json!({"everyone": true, "data": "all"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["receivers"], 4);
    for ws in [&mut both, &mut one, &mut elsewhere, &mut nowhere] {
        let m = ws.expect("broadcast").await;
        assert_eq!((&m["subs"], &m["data"]), (&json!([]), &json!("all")));
        assert!(m.get("rooms").is_none());
    }
    // Bad requests.
    for body in [
        json!({"data": 1}),
        json!({"rooms": [], "data": 1}),
        json!({"rooms": ["chat:a"], "everyone": true, "data": 1}),
        json!({"rooms": ["chat:a"]}),
    ] {
        let (status, answer) = as_admin(&server, Method::POST, "/v1/broadcast", Some(&body)).await;
        assert_eq!(
            (status, &answer["error"]["code"]),
            (400, &json!("invalid_parameter")),
            "{body}"
        );
    }
    refused(
        &mut nowhere,
        json!({"type": "broadcast", "rooms": ["secret:x"], "data": 1}),
        "forbidden",
    )
    .await;
    refused(
        &mut nowhere,
        json!({"type": "broadcast", "rooms": ["bad room"], "data": 1}),
        "invalid_channel",
    )
    .await;
}

#[tokio::test]
async fn silent_members_expire_after_the_presence_ttl() {
    let clock = ManualClock::starting_at(1_000_000);
    let server = Server::configured(
        config(json!({"namespaces": {"chat": {"join_leave": true, "presence_ttl": "30s"}}})),
        Some(clock.clone()),
    )
    .await;
    let mut alive = connect(&server, "alive", CHATTER).await;
    let mut silent = connect(&server, "silent", CHATTER).await;
    join(&mut alive, "chat:ttl", Value::Null).await;
    let silent_client = join(&mut silent, "chat:ttl", Value::Null).await["client"].clone();
    alive.expect("member_joined").await;

    clock.advance(Duration::from_secs(20));
    alive.ping("beat").await; // heard at +20 s
    server.rooms.sweep();
    alive.quiet(Duration::from_millis(100)).await;

    clock.advance(Duration::from_secs(15)); // +35 s: silent since +0
    server.rooms.sweep();
    let gone = alive.expect("member_left").await;
    assert_eq!(
        (&gone["member"]["client"], &gone["reason"]),
        (&silent_client, &json!("expired"))
    );
    let left = silent.expect("left").await;
    assert_eq!(left["reason"], "expired");
    alive
        .send(json!({"type": "presence", "room": "chat:ttl"}))
        .await;
    let presence = alive.expect("presence").await;
    assert_eq!(presence["members"].as_array().unwrap().len(), 1);
    // Still connected: it may join again.
    join(&mut silent, "chat:ttl", Value::Null).await;
}

#[tokio::test]
async fn a_users_personal_channel_reaches_all_its_connections() {
    let server = Server::configured(config(json!({})), None).await;
    let (mut tab1, welcome) = {
        let bearer = format!("Bearer {}", token("alice", &[]));
        let mut ws = server.ws_with(&[("Authorization", &bearer)]).await.unwrap();
        ws.ping("x").await;
        (ws, ())
    };
    let _ = welcome;
    let mut tab2 = connect(&server, "alice", &[]).await;
    let mut other = connect(&server, "bob", &[]).await;
    let (status, body) = as_admin(
        &server,
        Method::POST,
        "/v1/channels/user:alice/messages",
        Some(&json!({"data": "for alice"})),
    )
    .await;
    assert_eq!((status, &body["receivers"]), (200, &json!(2)), "{body}");
    for tab in [&mut tab1, &mut tab2] {
        let event = tab.expect("event").await;
        assert_eq!(
            (&event["subs"], &event["data"]),
            (&json!(["user:alice"]), &json!("for alice"))
        );
    }
    other.quiet(Duration::from_millis(150)).await;
    // Not another user's: subscribing to it needs its permission.
    refused(
        &mut other,
        json!({"type": "subscribe", "id": "spy", "channel": "user:alice"}),
        "forbidden",
    )
    .await;
}

#[tokio::test]
async fn welcome_and_authenticated_name_the_personal_channel() {
    let server = Server::configured(config(json!({"auth": {"anonymous": "allow"}})), None).await;
    let bearer = format!("Bearer {}", token("zoe", &[]));
    let (stream, _) = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = server.ws_url().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Authorization", bearer.parse().unwrap());
        tokio_tungstenite::connect_async(request).await.unwrap()
    };
    let mut ws = Ws { stream };
    let welcome = ws.expect("welcome").await;
    assert_eq!(welcome["personal_channel"], "user:zoe");
    // Anonymous, then authenticated: `authenticated` names it.
    let (mut anon, welcome) = server.ws_welcome().await;
    assert!(welcome.get("personal_channel").is_none());
    anon.send(json!({"type": "auth", "token": token("yan", &[]), "ref": "a"}))
        .await;
    let authenticated = anon.expect("authenticated").await;
    assert_eq!(authenticated["personal_channel"], "user:yan");
    let (status, _) = as_admin(
        &server,
        Method::POST,
        "/v1/channels/user:yan/messages",
        Some(&json!({"data": 1})),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(anon.expect("event").await["subs"], json!(["user:yan"]));

    let server = Server::configured(
        config(json!({"realtime": {"personal_channels": false}})),
        None,
    )
    .await;
    let bearer = format!("Bearer {}", token("zoe", &[]));
    let (stream, _) = {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = server.ws_url().into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Authorization", bearer.parse().unwrap());
        tokio_tungstenite::connect_async(request).await.unwrap()
    };
    let mut ws = Ws { stream };
    assert!(ws.expect("welcome").await.get("personal_channel").is_none());
}

/// Tuple helper for `call_as` answers whose `Retry-After` is not needed.
trait IntoTwo {
    fn into_two(self) -> (u16, Value);
}

impl IntoTwo for (u16, Value, Option<String>) {
    fn into_two(self) -> (u16, Value) {
        (self.0, self.1)
    }
}
