//! Rooms, presence, broadcast, namespaces, personal channels and change
//! routing, end to end: each test starts a real server and speaks the
//! protocol over WebSockets and REST, as users with JWTs.

mod support;

use herald_core::clock::ManualClock;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;
use support::users::{admin_status, as_admin, config, connect, token};
use support::{Server, Ws};

/// What a chat user may do in `chat:*` rooms.
const CHATTER: &[&str] = &["read:chat:*", "presence:chat:*", "publish:chat:*"];

#[tokio::test]
async fn joins_leaves_and_presence_are_acknowledged_and_announced() {
    let server = Server::configured(
        config(json!({"namespaces": {"chat": {"join_leave": true}, "quiet": {"presence": false}}})),
        None,
    )
    .await;
    let mut alice = connect(&server, "alice", CHATTER).await;
    let mut bob = connect(&server, "bob", CHATTER).await;

    let joined = alice.join("chat:lobby", json!({"name": "Alice"})).await;
    assert_eq!(joined["members"], 1);
    let alice_client = joined["client"].as_str().unwrap().to_owned();
    let joined = bob.join("chat:lobby", json!({"name": "Bob"})).await;
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
    bob.refused(json!({"type": "leave", "room": "chat:lobby"}), "not_member")
        .await;
    alice
        .refused(
            json!({"type": "join", "room": "chat:lobby", "ref": "again"}),
            "already_member",
        )
        .await;
    alice
        .refused(
            json!({"type": "join", "room": "bad room"}),
            "invalid_channel",
        )
        .await;
    alice
        .refused(
            json!({"type": "join", "room": "table:x"}),
            "invalid_channel",
        )
        .await;
    alice
        .refused(json!({"type": "join", "room": "other:x"}), "forbidden")
        .await;
    alice
        .refused(
            json!({"type": "join", "room": "chat:x", "presence": "x".repeat(5000)}),
            "payload_too_large",
        )
        .await;
    alice
        .refused(
            json!({"type": "update_presence", "room": "chat:nowhere", "data": 1}),
            "not_member",
        )
        .await;
    alice
        .refused(
            json!({"type": "join", "room": "chat:x", "extra": 1}),
            "invalid_message",
        )
        .await;
    // A membership is left, not steered like a subscription.
    for steer in [
        json!({"type": "unsubscribe", "id": "chat:lobby"}),
        json!({"type": "pause", "id": "chat:lobby"}),
        json!({"type": "resume", "id": "chat:lobby"}),
        json!({"type": "update", "id": "chat:lobby", "filter": {"x": 1}}),
    ] {
        alice.refused(steer, "invalid_parameter").await;
    }
    let mut quiet = connect(&server, "q", &["read:quiet:*", "presence:quiet:*"]).await;
    quiet
        .refused(
            json!({"type": "join", "room": "quiet:a", "presence": {"name": "Q"}}),
            "invalid_parameter",
        )
        .await;
    quiet.join("quiet:a", Value::Null).await;
    quiet
        .refused(
            json!({"type": "presence", "room": "quiet:a"}),
            "invalid_parameter",
        )
        .await;
    alice.ping("still").await;
}

#[tokio::test]
async fn without_join_leave_member_changes_are_not_announced() {
    let server = Server::configured(config(json!({})), None).await;
    let mut a = connect(&server, "a", CHATTER).await;
    let mut b = connect(&server, "b", CHATTER).await;
    a.join("chat:calm", Value::Null).await;
    b.join("chat:calm", json!({"n": 1})).await;
    b.send(json!({"type": "update_presence", "room": "chat:calm", "data": {"n": 2}}))
        .await;
    assert_eq!(
        b.expect("presence_updated").await["member"]["data"],
        json!({"n": 2})
    );
    b.send(json!({"type": "leave", "room": "chat:calm"})).await;
    b.expect("left").await;
    a.quiet(Duration::from_millis(200)).await;
    // The list is still kept: presence is on by default.
    a.send(json!({"type": "presence", "room": "chat:calm"}))
        .await;
    assert_eq!(
        a.expect("presence").await["members"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_room_given_settings_outlives_its_members_in_any_namespace() {
    let config = config(json!({}));
    let server = Server::configured(config.clone(), None).await;
    let (status, info) = as_admin(
        &server,
        Method::PUT,
        "/v1/rooms/chat:standup",
        Some(&json!({"moderators": ["lead"]})),
    )
    .await;
    assert_eq!((status, &info["stored"]), (200, &json!(true)), "{info}");
    let mut ws = connect(&server, "u", CHATTER).await;
    ws.join("chat:standup", Value::Null).await;
    ws.send(json!({"type": "leave", "room": "chat:standup"}))
        .await;
    ws.expect("left").await;
    let (status, info) = as_admin(&server, Method::GET, "/v1/rooms/chat:standup", None).await;
    assert_eq!((status, &info["members"]), (200, &json!(0)));
    drop(ws);
    let addr = server.addr;
    let dir = server.stop().await;
    let server = Server::configured_in(dir, config, None, Some(addr)).await;
    let (status, info) = as_admin(&server, Method::GET, "/v1/rooms/chat:standup", None).await;
    assert_eq!(
        (status, &info["settings"]["moderators"]),
        (200, &json!(["lead"]))
    );
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
    a.join("chat:small", Value::Null).await;
    b.join("chat:small", Value::Null).await;
    let full = c
        .refused(
            json!({"type": "join", "room": "chat:small", "ref": "x"}),
            "room_full",
        )
        .await;
    assert_eq!(full["ref"], "x");
    b.send(json!({"type": "leave", "room": "chat:small"})).await;
    b.expect("left").await;
    c.join("chat:small", Value::Null).await;
    // A room's own limit wins over its namespace's.
    let (status, info) = as_admin(
        &server,
        Method::PUT,
        "/v1/rooms/chat:tiny",
        Some(&json!({"max_members": 1})),
    )
    .await;
    assert_eq!((status, &info["max_members"]), (200, &json!(1)));
    a.join("chat:tiny", Value::Null).await;
    b.refused(json!({"type": "join", "room": "chat:tiny"}), "room_full")
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
    bob.refused(
        json!({"type": "publish", "channel": "chat:a", "data": 1}),
        "forbidden",
    )
    .await;
    bob.join("chat:a", Value::Null).await;
    bob.send(json!({"type": "publish", "channel": "chat:a", "data": 1, "ref": "ok"}))
        .await;
    bob.until("published").await;
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
    bob.join("stage:main", Value::Null).await;
    bob.refused(
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
    mia.refused(
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
    let bob_client = bob.until("presence").await["members"][0]["client"]
        .as_str()
        .unwrap()
        .to_owned();
    mia.refused(
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
    let left = bob.until("left").await;
    assert_eq!(
        (&left["room"], &left["reason"], &left["by"]),
        (&json!("chat:a"), &json!("removed"), &json!("user:carl"))
    );
    carl.refused(
        json!({"type": "remove_member", "room": "chat:a", "client": bob_client}),
        "not_member",
    )
    .await;
    carl.refused(
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
    // Only a moderator's join creates a room that would be stored for good.
    let mut ws = connect(&server, "u", &perms).await;
    let refused = ws
        .refused(json!({"type": "join", "room": "kept:b"}), "not_found")
        .await;
    assert!(refused["message"].as_str().unwrap().contains("moderators"));
    ws.join("kept:a", Value::Null).await;
    let mut moderator = connect(&server, "m", &["read:*", "presence:*", "moderate:kept:*"]).await;
    moderator.join("kept:b", Value::Null).await;
    moderator
        .send(json!({"type": "leave", "room": "kept:b"}))
        .await;
    moderator.expect("left").await;
    ws.join("kept:b", Value::Null).await;
    ws.join("eph:c", Value::Null).await;
    ws.send(json!({"type": "leave", "room": "eph:c"})).await;
    ws.expect("left").await;
    assert_eq!(
        admin_status(&server, Method::GET, "/v1/rooms/eph:c").await,
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
        admin_status(&server, Method::DELETE, "/v1/rooms/kept:a").await,
        204
    );
    assert_eq!(
        admin_status(&server, Method::DELETE, "/v1/rooms/kept:a").await,
        404
    );
    let dir = server.stop().await;
    let server = Server::configured_in(dir, config, None, Some(addr)).await;
    assert_eq!(
        admin_status(&server, Method::GET, "/v1/rooms/kept:a").await,
        404
    );
    assert_eq!(
        admin_status(&server, Method::GET, "/v1/rooms/kept:b").await,
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
    ws.join("chat:doomed", Value::Null).await;
    assert_eq!(
        admin_status(&server, Method::DELETE, "/v1/rooms/chat:doomed").await,
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
    both.join("chat:r1", Value::Null).await;
    both.join("chat:r2", Value::Null).await;
    one.join("chat:r1", Value::Null).await;
    elsewhere.join("chat:r3", Value::Null).await;

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
    both.refused(
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
    nowhere
        .refused(
            json!({"type": "broadcast", "rooms": ["secret:x"], "data": 1}),
            "forbidden",
        )
        .await;
    nowhere
        .refused(
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
    alive.join("chat:ttl", Value::Null).await;
    let silent_client = silent.join("chat:ttl", Value::Null).await["client"].clone();
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
    silent.join("chat:ttl", Value::Null).await;
}

#[tokio::test]
async fn a_users_personal_channel_reaches_all_its_connections() {
    let server = Server::configured(config(json!({})), None).await;
    let mut tab1 = connect(&server, "alice", &[]).await;
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
    other
        .refused(
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

#[tokio::test]
async fn a_key_moderates_only_with_moderate_and_presence_needs_its_permission() {
    let mut keys = Vec::new();
    let server = Server::secured(
        config(json!({"namespaces": {"chat": {"join_leave": true}}})),
        |dir| {
            let store = herald_auth::ApiKeys::open(&dir.join("apikeys.json")).unwrap();
            for permissions in [&["read:orders"][..], &["moderate:chat:*"][..]] {
                let (_, secret) = store
                    .create(
                        "key",
                        &herald_auth::Permissions::parse(permissions).unwrap(),
                    )
                    .unwrap();
                keys.push(secret);
            }
        },
    )
    .await;
    let mut member = connect(&server, "ann", CHATTER).await;
    let client = member.join("chat:k", Value::Null).await["client"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!("/v1/rooms/chat:k/members/{client}");
    // A narrowly scoped integration key is no moderator.
    let (status, _, _) = server.call_as(&keys[0], Method::DELETE, &path, None).await;
    assert_eq!(status, 403);
    let (status, body, _) = server.call_as(&keys[1], Method::DELETE, &path, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(member.until("left").await["reason"], "removed");

    // A plain subscriber of the channel without `presence:` gets messages
    // but no member events; with it, both.
    let mut reader = connect(&server, "rita", &["read:chat:*"]).await;
    reader
        .subscribe(json!({"id": "r", "channel": "chat:k"}))
        .await;
    let mut watcher = connect(&server, "walt", &["read:chat:*", "presence:chat:*"]).await;
    watcher
        .subscribe(json!({"id": "w", "channel": "chat:k"}))
        .await;
    member
        .join("chat:k", json!({"email": "ann@example.com"}))
        .await;
    assert_eq!(
        watcher.expect("member_joined").await["member"]["data"]["email"],
        "ann@example.com"
    );
    reader.quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_broadcast_to_everyone_skips_connections_that_have_not_authenticated() {
    let server = Server::configured(config(json!({})), None).await;
    let (mut pending, _) = server.ws_welcome().await;
    let mut user = connect(&server, "ann", &[]).await;
    let (status, body) = as_admin(
        &server,
        Method::POST,
        "/v1/broadcast",
        Some(&json!({"everyone": true, "data": "for users only"})),
    )
    .await;
    assert_eq!((status, &body["receivers"]), (200, &json!(1)), "{body}");
    assert_eq!(user.expect("broadcast").await["data"], "for users only");
    pending.quiet(Duration::from_millis(200)).await;
}

#[tokio::test]
async fn a_closing_connection_leaves_every_room_even_one_the_server_joined_it_to() {
    let server = Server::configured(
        config(json!({"namespaces": {"chat": {"join_leave": true}}})),
        None,
    )
    .await;
    let mut watcher = connect(&server, "w", CHATTER).await;
    watcher.join("chat:x", Value::Null).await;
    let mut ws = connect(&server, "ann", CHATTER).await;
    ws.ping("p").await;
    let (_, list) = as_admin(&server, Method::GET, "/v1/connections", None).await;
    let id = list["connections"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["user"] == "user:ann")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for room in ["chat:x", "chat:y"] {
        let (status, _) = as_admin(
            &server,
            Method::POST,
            &format!("/v1/rooms/{room}/members"),
            Some(&json!({"connection": id})),
        )
        .await;
        assert_eq!(status, 201);
        ws.expect("joined").await;
    }
    assert_eq!(
        watcher.expect("member_joined").await["member"]["client"],
        json!(id)
    );
    drop(ws);
    let left = watcher.expect("member_left").await;
    assert_eq!(
        (&left["member"]["client"], &left["reason"]),
        (&json!(id), &json!("disconnected"))
    );
    for room in ["chat:x", "chat:y"] {
        let (_, page) = as_admin(
            &server,
            Method::GET,
            &format!("/v1/rooms/{room}/members"),
            None,
        )
        .await;
        assert!(
            page["members"]
                .as_array()
                .unwrap()
                .iter()
                .all(|m| m["client"] != json!(id)),
            "{room}: {page}"
        );
    }
    assert_eq!(
        admin_status(&server, Method::GET, "/v1/rooms/chat:y").await,
        404,
        "emptied: gone"
    );
    // Joining it now: no such connection.
    let (status, _) = as_admin(
        &server,
        Method::POST,
        "/v1/rooms/chat:x/members",
        Some(&json!({"connection": id})),
    )
    .await;
    assert_eq!(status, 404);
}
