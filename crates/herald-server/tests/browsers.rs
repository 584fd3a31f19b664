//! What browser pages may do: open WebSockets only from allowed origins
//! when the connection would rest on ambient authority (anonymous access,
//! cookies), call the REST API cross-origin only from allowed origins
//! (CORS), and load pages served by the server itself (`static_dir`).

mod support;

use serde_json::json;
use support::Server;
use support::users::config;

#[tokio::test]
async fn a_page_on_another_site_cannot_use_anonymous_access() {
    // On loopback with no credentials configured, anonymous callers are
    // administrators: any page the user visits must not get that.
    let server = Server::start().await;
    let evil = server.ws_with(&[("Origin", "https://evil.example")]).await;
    let (status, body) = evil.err().expect("refused");
    assert_eq!(
        (status, &body["error"]["code"]),
        (403, &json!("origin_not_allowed"))
    );
    let same = format!("http://{}", server.addr);
    assert!(server.ws_with(&[("Origin", same.as_str())]).await.is_ok());
    assert!(server.ws_with(&[]).await.is_ok(), "not a browser page");
    // SSE too.
    let refused = server
        .sse("/v1/sse?channel=c", &[("Origin", "https://evil.example")])
        .await;
    assert_eq!(refused.err().expect("refused").0, 403);
    // Listed origins may.
    let listed = Server::configured(
        serde_json::from_value(json!({"auth": {"allowed_origins": ["https://app.example"]}}))
            .unwrap(),
        None,
    )
    .await;
    assert!(
        listed
            .ws_with(&[("Origin", "https://app.example")])
            .await
            .is_ok()
    );
    assert!(
        listed
            .ws_with(&[("Origin", "https://evil.example")])
            .await
            .is_err()
    );
    // A connection that must authenticate first rests on no ambient
    // authority: a page on any site may open it and send its token.
    let secured = Server::configured(config(json!({})), None).await;
    assert!(
        secured
            .ws_with(&[("Origin", "https://other.example")])
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn cors_answers_only_the_allowed_origins() {
    let listed = Server::configured(
        serde_json::from_value(json!({"auth": {"allowed_origins": ["https://app.example"]}}))
            .unwrap(),
        None,
    )
    .await;
    let preflight = |server: &Server, origin: &'static str| {
        server
            .http
            .request(
                reqwest::Method::OPTIONS,
                format!("{}/v1/tables/notes/docs", server.base),
            )
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .header("Access-Control-Request-Headers", "content-type")
            .send()
    };
    let ok = preflight(&listed, "https://app.example").await.unwrap();
    assert_eq!(
        ok.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    assert!(
        ok.headers()["access-control-allow-methods"]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    let other = preflight(&listed, "https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    let get = listed
        .http
        .get(format!("{}/v1/tables/notes/docs", listed.base))
        .header("Origin", "https://app.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        get.headers()["access-control-allow-origin"],
        "https://app.example"
    );
    // No list: no CORS at all.
    let plain = Server::start().await;
    let none = preflight(&plain, "https://app.example").await.unwrap();
    assert!(none.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn static_dir_is_served_under_app() {
    let pages = tempfile::tempdir().unwrap();
    std::fs::write(pages.path().join("index.html"), "<h1>hi</h1>").unwrap();
    let mut config = herald_server::Config::default();
    config.http.static_dir = Some(pages.path().to_owned());
    let server = Server::configured(config, None).await;
    let page = server.text(None, "/app/").await;
    assert_eq!(page, "<h1>hi</h1>");
    let (status, body) = server
        .call(reqwest::Method::GET, "/app/missing.html", None)
        .await;
    assert_eq!(status, 404, "{body}");
    // The API is untouched; without the setting there is no /app.
    let (status, body) = server.call(reqwest::Method::GET, "/v1/nothing", None).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")));
    let plain = Server::start().await;
    assert_eq!(plain.call(reqwest::Method::GET, "/app/", None).await.0, 404);
}
