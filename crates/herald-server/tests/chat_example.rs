//! The chat example (`examples/chat`) end to end: its `herald.toml` starts a
//! server, and two raw WebSocket clients play what `index.html` does —
//! join a room with presence, keep the member list, load the room's last
//! messages over REST, send by inserting rows, receive them routed to the
//! room — so CI proves the example's configuration works.

mod support;

use reqwest::Method;
use serde_json::{Value, json};
use support::{Server, Ws};

/// The example's configuration, as the server reads it.
fn chat_config() -> herald_server::Config {
    let text = include_str!("../../../examples/chat/herald.toml");
    toml::from_str(text).expect("examples/chat/herald.toml is a valid configuration")
}

/// The page's history request: the room's last `limit` messages, newest
/// first.
fn history_path(room: &str, limit: usize) -> String {
    let query = serde_urlencoded::to_string([
        ("filter", json!({ "room": room }).to_string()),
        ("sort", "-id".to_owned()),
        ("limit", limit.to_string()),
    ])
    .unwrap();
    format!("/v1/tables/messages/docs?{query}")
}

/// Sends a chat line as the page does; the new row's id and offset.
async fn send(server: &Server, room: &str, user: &str, text: &str) -> (String, u64) {
    let body = json!({"room": room, "user": user, "text": text});
    let (status, ack) = server
        .call(Method::POST, "/v1/tables/messages/docs", Some(&body))
        .await;
    assert_eq!(status, 201, "{ack}");
    assert_eq!(ack["version"], 1, "{ack}");
    let id = ack["id"].as_str().expect("a generated id").to_owned();
    (id, ack["offset"].as_u64().unwrap())
}

/// The next routed change of the room, skipping presence events.
async fn routed(ws: &mut Ws, room: &str) -> Value {
    let event = ws.until("event").await;
    assert_eq!(event["subs"], json!([room]), "{event}");
    assert_eq!(event["channel"], room, "{event}");
    assert_eq!(event["op"], "publish", "{event}");
    assert_eq!(event["from"], "route:chat_messages", "{event}");
    assert_eq!(event["data"]["table"], "messages", "{event}");
    event
}

fn names(members: &Value) -> Vec<&str> {
    members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["data"]["name"].as_str().unwrap())
        .collect()
}

#[test]
fn the_example_configuration_is_a_local_demo() {
    let config = chat_config();
    assert!(config.listen.ip().is_loopback(), "{}", config.listen);
    assert!(
        config.auth.jwt.is_none() && config.auth.api_keys_file.is_none(),
        "no credentials: anonymous clients on loopback are administrators"
    );
    let chat = &config.namespaces["chat"];
    assert!(chat.history && chat.presence && chat.join_leave);
    assert!(chat.presence_ttl > config.realtime.heartbeat);
    let route = &config.routes["chat_messages"];
    assert_eq!(
        (route.table.as_str(), route.channel.as_str()),
        ("messages", "chat:{room}")
    );
    // The server serves the page (from the repository root, where the
    // README starts it).
    let pages = config.http.static_dir.expect("the page is served");
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    assert!(root.join(pages).join("index.html").is_file());
}

#[tokio::test]
async fn two_people_chat_in_a_room_with_presence() {
    let server = Server::configured(chat_config(), None).await;
    let lobby = "chat:lobby";

    // Ann joins; Bob joins, and Ann sees him arrive (Bob is not told of
    // himself).
    let mut ann = server.ws().await;
    let joined = ann
        .join(lobby, json!({"name": "Ann", "status": "online"}))
        .await;
    assert_eq!(joined["members"], 1, "{joined}");
    let ann_client = joined["client"].as_str().unwrap().to_owned();
    let mut bob = server.ws().await;
    let joined = bob
        .join(lobby, json!({"name": "Bob", "status": "online"}))
        .await;
    assert_eq!(joined["members"], 2, "{joined}");
    let bob_client = joined["client"].as_str().unwrap().to_owned();
    let arrived = ann.until("member_joined").await;
    assert_eq!(arrived["channel"], lobby);
    assert_eq!(arrived["member"]["client"], json!(bob_client));
    assert_eq!(arrived["member"]["data"]["name"], "Bob");

    // Bob asks who is there: both, in the order they joined.
    bob.send(json!({"type": "presence", "room": lobby, "ref": "who"}))
        .await;
    let presence = bob.until("presence").await;
    assert_eq!(presence["ref"], "who");
    assert_eq!(names(&presence["members"]), ["Ann", "Bob"]);
    assert_eq!(presence["members"][0]["client"], json!(ann_client));

    // Bob's tab goes to the background: Ann sees his status change.
    bob.send(json!({"type": "update_presence", "room": lobby,
        "data": {"name": "Bob", "status": "away"}, "ref": "away"}))
        .await;
    let updated = bob.until("presence_updated").await;
    assert_eq!(updated["member"]["data"]["status"], "away");
    let changed = ann.until("member_updated").await;
    assert_eq!(changed["member"]["client"], json!(bob_client));
    assert_eq!(changed["member"]["data"]["status"], "away");

    // Ann sends a line: a row of `messages`, routed to the room, reaches
    // both of them with the whole document, right after its change.
    let text = "Hello <b>Bob</b> & \"friends\"";
    let (id, offset) = send(&server, "lobby", "Ann", text).await;
    for ws in [&mut ann, &mut bob] {
        let event = routed(ws, lobby).await;
        assert_eq!(event["offset"].as_u64(), Some(offset + 1), "{event}");
        let data = &event["data"];
        assert_eq!(
            (&data["op"], &data["id"], &data["version"]),
            (&json!("insert"), &json!(id), &json!(1))
        );
        assert_eq!(
            data["doc"],
            json!({"id": id, "room": "lobby", "user": "Ann", "text": text})
        );
    }

    // A line in another room does not reach the lobby; the next lobby
    // line does.
    send(&server, "kitchen", "Cy", "anyone here?").await;
    let (second, _) = send(&server, "lobby", "Bob", "hi Ann").await;
    for ws in [&mut ann, &mut bob] {
        let event = routed(ws, lobby).await;
        assert_eq!(event["data"]["id"], json!(second), "{event}");
        assert_eq!(event["data"]["doc"]["text"], "hi Ann");
    }

    // The page's history: the room's last lines, newest first (generated
    // ids are time-ordered), the other room's left out.
    let (status, page) = server
        .call(Method::GET, &history_path("lobby", 50), None)
        .await;
    assert_eq!(status, 200, "{page}");
    let texts: Vec<&str> = page["docs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hi Ann", text]);
    assert!(
        page["docs"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["room"] == "lobby")
    );
    let (_, last) = server
        .call(Method::GET, &history_path("lobby", 1), None)
        .await;
    assert_eq!(
        last["docs"][0]["id"],
        json!(second),
        "limit keeps the newest"
    );

    // Edits and deletions (curl, a moderator) are routed too; the page
    // applies them.
    let path = format!("/v1/tables/messages/docs/{id}");
    server
        .write(Method::PATCH, &path, Some(&json!({"text": "edited"})))
        .await;
    let event = routed(&mut bob, lobby).await;
    assert_eq!(event["data"]["op"], "update", "{event}");
    assert_eq!(event["data"]["doc"]["text"], "edited");
    server.write(Method::DELETE, &path, None).await;
    let event = routed(&mut bob, lobby).await;
    assert_eq!(
        (&event["data"]["op"], &event["data"]["id"]),
        (&json!("delete"), &json!(id))
    );

    // Bob leaves: told to him, announced to Ann.
    bob.send(json!({"type": "leave", "room": lobby, "ref": "bye"}))
        .await;
    let left = bob.until("left").await;
    assert_eq!(
        (&left["ref"], &left["reason"]),
        (&json!("bye"), &json!("left"))
    );
    let gone = ann.until("member_left").await;
    assert_eq!(
        (&gone["member"]["client"], &gone["reason"]),
        (&json!(bob_client), &json!("left"))
    );

    // He comes back, then his tab closes without a word: announced as a
    // disconnection.
    let joined = bob
        .join(lobby, json!({"name": "Bob", "status": "online"}))
        .await;
    let bob_client = joined["client"].as_str().unwrap().to_owned();
    assert_eq!(
        ann.until("member_joined").await["member"]["client"],
        json!(bob_client)
    );
    drop(bob);
    let gone = ann.until("member_left").await;
    assert_eq!(
        (&gone["member"]["client"], &gone["reason"]),
        (&json!(bob_client), &json!("disconnected"))
    );

    // Only Ann is left, over REST too.
    let (status, members) = server
        .call(Method::GET, "/v1/rooms/chat:lobby/members", None)
        .await;
    assert_eq!(status, 200, "{members}");
    assert_eq!(names(&members["members"]), ["Ann"]);
}
