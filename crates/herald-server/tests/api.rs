//! End-to-end tests of the HTTP API.
//!
//! Every test starts a real server (`herald_server::run`) on an ephemeral
//! port over a fresh data directory, talks HTTP to it with reqwest, and shuts
//! it down gracefully at the end (checking that `run` returned `Ok`).
//!
//! Errors are checked by status code *and* by the `error.code` of the JSON
//! body `{"error":{"code","message"}}`.

use futures_util::future::join_all;
use herald_core::Herald;
use herald_server::HttpConfig;
use herald_store::StoreConfig;
use herald_store::config::RetentionConfig;
use reqwest::header::{AsHeaderName, CONTENT_TYPE, ETAG, HeaderMap, IF_MATCH, LOCATION};
use reqwest::{Body, Method, RequestBuilder, StatusCode};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Upper bound for any single request and for the server to stop.
const TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A running server on `127.0.0.1:<ephemeral>` over its own data directory.
struct TestServer {
    addr: SocketAddr,
    base: String,
    client: reqwest::Client,
    /// The served engine, for what HTTP cannot do (publishing to a channel).
    herald: Herald,
    shutdown: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
    dir: TempDir,
}

impl TestServer {
    /// A server with the default store and HTTP settings.
    async fn start() -> TestServer {
        TestServer::start_with(StoreConfig::default(), HttpConfig::default()).await
    }

    async fn start_with(store: StoreConfig, http: HttpConfig) -> TestServer {
        TestServer::start_in(tempfile::tempdir().expect("temp dir"), store, http).await
    }

    /// A server over an existing (possibly non-empty) data directory.
    async fn start_in(dir: TempDir, store: StoreConfig, http: HttpConfig) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local address");
        let herald = Herald::open_with(dir.path(), store).expect("open the store");
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(herald_server::run(
            listener,
            herald.clone(),
            http,
            herald_server::RealtimeConfig::default(),
            async move {
                // A dropped sender (a failed test) also stops the server.
                let _ = signal.await;
            },
        ));
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(TIMEOUT)
            .build()
            .expect("HTTP client");
        TestServer {
            addr,
            base: format!("http://{addr}"),
            client,
            herald,
            shutdown,
            task,
            dir,
        }
    }

    /// Signals shutdown, waits for `run` to return `Ok`, releases every
    /// handle on the store and hands back the data directory.
    async fn stop(self) -> TempDir {
        let TestServer {
            client,
            herald,
            shutdown,
            task,
            dir,
            ..
        } = self;
        drop(client);
        shutdown
            .send(())
            .expect("the server stopped before it was asked to");
        let served = tokio::time::timeout(TIMEOUT, task)
            .await
            .expect("the server stops in time")
            .expect("the server task did not panic");
        served.expect("run returned Ok");
        drop(herald);
        dir
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    async fn get(&self, path: &str) -> Reply {
        send(self.request(Method::GET, path)).await
    }

    /// `GET path` with URL-encoded query parameters.
    async fn get_query(&self, path: &str, params: &[(&str, &str)]) -> Reply {
        send(self.request(Method::GET, path).query(params)).await
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        send(self.request(Method::POST, path).json(body)).await
    }

    async fn put(&self, path: &str, body: &Value) -> Reply {
        send(self.request(Method::PUT, path).json(body)).await
    }

    async fn put_if(&self, path: &str, if_match: &str, body: &Value) -> Reply {
        send(
            self.request(Method::PUT, path)
                .header(IF_MATCH, if_match)
                .json(body),
        )
        .await
    }

    async fn patch(&self, path: &str, body: &Value) -> Reply {
        send(self.request(Method::PATCH, path).json(body)).await
    }

    async fn delete(&self, path: &str) -> Reply {
        send(self.request(Method::DELETE, path)).await
    }

    /// Sends `body` verbatim with `content_type` (no header when `None`).
    async fn raw(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Reply {
        let mut request = self.request(method, path).body(body);
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        send(request).await
    }

    /// Inserts a document, expecting success; returns the ack.
    async fn insert(&self, table: &str, doc: Value) -> Value {
        self.post(&format!("/v1/tables/{table}/docs"), &doc)
            .await
            .expect(201)
    }

    /// Reads a document, expecting it to exist: `(version from ETag, doc)`.
    async fn doc(&self, table: &str, id: &str) -> (u64, Value) {
        let reply = self.get(&format!("/v1/tables/{table}/docs/{id}")).await;
        let doc = reply.expect(200);
        (reply.etag_version(), doc)
    }

    /// Asserts the document does not exist.
    async fn assert_missing(&self, table: &str, id: &str) {
        self.get(&format!("/v1/tables/{table}/docs/{id}"))
            .await
            .error(404, "not_found");
    }

    /// Runs a batch, expecting success; returns the acks.
    async fn batch(&self, ops: Value) -> Vec<Value> {
        let body = self
            .post("/v1/batch", &json!({ "ops": ops }))
            .await
            .expect(200);
        assert_eq!(object_keys(&body), ["results"], "batch answer: {body}");
        body["results"].as_array().expect("results array").clone()
    }

    /// Replays the log with these parameters, expecting success.
    async fn events(&self, params: &[(&str, &str)]) -> Vec<Value> {
        self.get_query("/v1/events", params).await.ndjson()
    }

    /// The offsets of the events a replay with these parameters returns.
    async fn event_offsets(&self, params: &[(&str, &str)]) -> Vec<u64> {
        offsets(&self.events(params).await)
    }

    /// Every document of a table, page by page with `limit`; returns the ids
    /// in the order served and the number of requests it took.
    async fn page_through(
        &self,
        table: &str,
        params: &[(&str, &str)],
        limit: usize,
    ) -> (Vec<String>, usize) {
        let path = format!("/v1/tables/{table}/docs");
        let limit = limit.to_string();
        let (mut ids, mut cursor, mut requests) = (Vec::new(), None::<String>, 0);
        loop {
            requests += 1;
            assert!(requests <= 200, "paging does not end: {ids:?}");
            let mut query = params.to_vec();
            query.push(("limit", limit.as_str()));
            if let Some(cursor) = &cursor {
                query.push(("cursor", cursor.as_str()));
            }
            let page = self.get_query(&path, &query).await.expect(200);
            assert_eq!(object_keys(&page), ["docs", "next_cursor"], "{page}");
            let docs = page["docs"].as_array().expect("docs array");
            assert!(docs.len() <= limit.parse().unwrap(), "page over limit");
            ids.extend(
                docs.iter()
                    .map(|d| d["id"].as_str().expect("id").to_owned()),
            );
            match &page["next_cursor"] {
                Value::Null => return (ids, requests),
                Value::String(next) => cursor = Some(next.clone()),
                other => panic!("next_cursor must be a string or null, got {other}"),
            }
        }
    }
}

/// One HTTP exchange, fully read.
#[derive(Debug)]
struct Reply {
    /// `METHOD url`, for failure messages.
    what: String,
    status: StatusCode,
    headers: HeaderMap,
    text: String,
}

async fn send(request: RequestBuilder) -> Reply {
    let (client, request) = request.build_split();
    let request = request.expect("a valid request");
    let what = format!("{} {}", request.method(), request.url());
    let response = client
        .execute(request)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let status = response.status();
    let headers = response.headers().clone();
    let text = response
        .text()
        .await
        .unwrap_or_else(|e| panic!("{what}: reading the body: {e}"));
    Reply {
        what,
        status,
        headers,
        text,
    }
}

impl Reply {
    fn header(&self, name: impl AsHeaderName) -> Option<&str> {
        self.headers
            .get(name)
            .map(|v| v.to_str().expect("ASCII header"))
    }

    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("{}: body is not JSON ({e}): {:?}", self.what, self.text))
    }

    /// Asserts the status and returns the JSON body.
    #[track_caller]
    fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "{}: unexpected status; body: {}",
            self.what,
            self.text
        );
        self.json()
    }

    /// Asserts an error answer `{"error":{"code","message"}}` with this
    /// status and code; returns the message.
    #[track_caller]
    fn error(&self, status: u16, code: &str) -> String {
        let body = self.expect(status);
        assert_eq!(
            self.header(CONTENT_TYPE),
            Some("application/json"),
            "{}: error content type",
            self.what
        );
        assert_eq!(object_keys(&body), ["error"], "{}: {body}", self.what);
        let error = &body["error"];
        assert_eq!(error["code"], code, "{}: {body}", self.what);
        let message = error["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{}: no message: {body}", self.what);
        for key in object_keys(error) {
            assert!(
                ["code", "message", "earliest"].contains(&key.as_str()),
                "{}: unexpected error field {key}",
                self.what
            );
        }
        message.to_owned()
    }

    /// The document version in `ETag: "<version>"`.
    #[track_caller]
    fn etag_version(&self) -> u64 {
        let etag = self.header(ETAG).expect("an ETag header");
        etag.strip_prefix('"')
            .and_then(|e| e.strip_suffix('"'))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("ETag must be a quoted version, got {etag:?}"))
    }

    /// Asserts a 200 NDJSON answer and parses one JSON value per line.
    #[track_caller]
    fn ndjson(&self) -> Vec<Value> {
        assert_eq!(self.status, StatusCode::OK, "{}: {}", self.what, self.text);
        assert_eq!(
            self.header(CONTENT_TYPE),
            Some("application/x-ndjson"),
            "{}",
            self.what
        );
        assert!(
            self.text.is_empty() || self.text.ends_with('\n'),
            "{}: every line ends with a newline",
            self.what
        );
        self.text
            .lines()
            .map(|line| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: line is not JSON ({e}): {line:?}", self.what))
            })
            .collect()
    }
}

fn object_keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("expected an object, got {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn offset(ack: &Value) -> u64 {
    ack["offset"]
        .as_u64()
        .unwrap_or_else(|| panic!("ack without offset: {ack}"))
}

fn offsets(items: &[Value]) -> Vec<u64> {
    items.iter().map(offset).collect()
}

/// Writes `bytes` on a fresh connection, half-closes it and returns whatever
/// the server answers before closing (lossy UTF-8).
async fn raw_tcp(addr: SocketAddr, bytes: &'static [u8]) -> String {
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        stream.write_all(bytes).expect("write");
        stream
            .shutdown(std::net::Shutdown::Write)
            .expect("half-close");
        let mut answer = Vec::new();
        // A reset after the answer is fine: we only want what was sent.
        let _ = stream.read_to_end(&mut answer);
        String::from_utf8_lossy(&answer).into_owned()
    })
    .await
    .expect("raw connection task")
}

// ---------------------------------------------------------------------------
// Insert
// ---------------------------------------------------------------------------

#[tokio::test]
async fn insert_creates_documents_and_rejects_bad_ones() {
    let s = TestServer::start().await;
    let docs = "/v1/tables/posts/docs";

    // 201 with {id, version: 1, offset} and a Location that reads it back.
    let reply = s.post(docs, &json!({"id": "p1", "title": "Hello"})).await;
    let ack = reply.expect(201);
    assert_eq!(object_keys(&ack), ["id", "offset", "version"]);
    assert_eq!((&ack["id"], &ack["version"]), (&json!("p1"), &json!(1)));
    let first = offset(&ack);
    assert_eq!(reply.header(LOCATION), Some("/v1/tables/posts/docs/p1"));
    assert_eq!(
        s.doc("posts", "p1").await,
        (1, json!({"id": "p1", "title": "Hello"}))
    );

    // The Location of an id with reserved characters is percent-encoded.
    let reply = s.post(docs, &json!({"id": "a b/é?"})).await;
    assert_eq!(reply.expect(201)["id"], "a b/é?");
    let location = reply.header(LOCATION).expect("Location").to_owned();
    assert_eq!(location, "/v1/tables/posts/docs/a%20b%2F%C3%A9%3F");
    assert_eq!(s.get(&location).await.expect(200), json!({"id": "a b/é?"}));

    // Without an id, a UUID v7 is generated and written into the document.
    let generated = s.insert("posts", json!({"title": "no id"})).await;
    let id = generated["id"].as_str().expect("generated id").to_owned();
    assert_eq!(id.len(), 36, "{id}");
    assert_eq!(id.as_bytes()[14], b'7', "UUID version 7: {id}");
    assert!(offset(&generated) > first);
    assert_eq!(
        s.doc("posts", &id).await,
        (1, json!({"id": id, "title": "no id"}))
    );
    let other = s.insert("posts", json!({"title": "no id"})).await;
    assert_ne!(other["id"], generated["id"]);

    // A duplicate id is a conflict and changes nothing.
    let message = s
        .post(docs, &json!({"id": "p1", "title": "again"}))
        .await
        .error(409, "already_exists");
    assert!(message.contains("p1"), "{message}");
    assert_eq!(
        s.doc("posts", "p1").await,
        (1, json!({"id": "p1", "title": "Hello"}))
    );

    // Documents must be objects.
    for body in ["[1]", "\"x\"", "5", "null", "true"] {
        s.raw(Method::POST, docs, Some("application/json"), body)
            .await
            .error(400, "not_an_object");
    }
    // The id field must be a string.
    for doc in [json!({"id": 5}), json!({"id": null}), json!({"id": ["a"]})] {
        s.post(docs, &doc).await.error(400, "id_mismatch");
    }
    // Ids are 1 to 256 bytes without control characters.
    for id in [
        String::new(),
        "x".repeat(257),
        "é".repeat(129), // 258 bytes, 129 characters
        "a\u{7}b".to_owned(),
        "a\nb".to_owned(),
        "\u{7f}".to_owned(),
    ] {
        s.post(docs, &json!({ "id": id }))
            .await
            .error(400, "invalid_id");
    }
    let longest = "x".repeat(256);
    assert_eq!(
        s.insert("posts", json!({ "id": longest })).await["id"],
        longest
    );

    // Table names are [A-Za-z0-9_]{1,64}.
    for table in ["bad-name", &"t".repeat(65), "a%20b", "a:b", "%C3%A9"] {
        s.post(&format!("/v1/tables/{table}/docs"), &json!({"x": 1}))
            .await
            .error(400, "invalid_table");
    }
    let widest = "T_9".repeat(21) + "z"; // 64 characters
    s.insert(&widest, json!({"id": "w"})).await;

    // Rejected inserts wrote nothing: exactly the accepted ones are stored
    // and logged.
    let (ids, _) = s.page_through("posts", &[], 100).await;
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_eq!(s.events(&[]).await.len(), 6);
    s.stop().await;
}

#[tokio::test]
async fn concurrent_inserts_get_distinct_offsets_and_all_land() {
    let s = TestServer::start().await;
    let docs: Vec<Value> = (0..32).map(|i| json!({ "n": i })).collect();
    let replies = join_all(docs.iter().map(|doc| s.post("/v1/tables/c/docs", doc))).await;
    let mut acked: Vec<u64> = replies.iter().map(|r| offset(&r.expect(201))).collect();
    acked.sort_unstable();
    acked.dedup();
    assert_eq!(acked.len(), 32, "offsets must be distinct");
    let (ids, _) = s.page_through("c", &[], 1000).await;
    assert_eq!(ids.len(), 32);
    assert_eq!(offsets(&s.events(&[]).await), acked);
    s.stop().await;
}

// ---------------------------------------------------------------------------
// Request bodies: JSON syntax, content types, sizes
// ---------------------------------------------------------------------------

#[tokio::test]
async fn bodies_must_be_well_formed_json_with_a_json_content_type() {
    let s = TestServer::start().await;
    let docs = "/v1/tables/t/docs";
    let json_type = Some("application/json");

    // Syntax errors say where they are.
    let message = s
        .raw(Method::POST, docs, json_type, r#"{"a":"#)
        .await
        .error(400, "invalid_json");
    assert!(
        message.contains("line") && message.contains("column"),
        "{message}"
    );
    let message = s
        .raw(Method::POST, docs, json_type, "{\n  \"a\": 1,\n  oops\n}")
        .await
        .error(400, "invalid_json");
    assert!(message.contains("line 3 column 3"), "{message}");
    s.raw(Method::POST, docs, json_type, "")
        .await
        .error(400, "invalid_json");
    s.raw(Method::POST, docs, json_type, "{} {}")
        .await
        .error(400, "invalid_json");

    // Only application/json and application/*+json are accepted.
    let valid = r#"{"id":"ct"}"#;
    for content_type in [
        Some("text/plain"),
        None,
        Some("text/json"),
        Some("application/jsonx"),
    ] {
        s.raw(Method::POST, docs, content_type, valid)
            .await
            .error(415, "unsupported_media_type");
    }
    s.raw(
        Method::PUT,
        "/v1/tables/t/docs/ct",
        Some("text/plain"),
        valid,
    )
    .await
    .error(415, "unsupported_media_type");
    s.raw(Method::PATCH, "/v1/tables/t/docs/ct", None, "{}")
        .await
        .error(415, "unsupported_media_type");
    s.raw(
        Method::POST,
        "/v1/batch",
        Some("text/plain"),
        r#"{"ops":[]}"#,
    )
    .await
    .error(415, "unsupported_media_type");
    s.assert_missing("t", "ct").await;

    // Parameters and case do not matter; a merge patch has its own type.
    s.raw(
        Method::POST,
        docs,
        Some("Application/JSON; charset=utf-8"),
        valid,
    )
    .await
    .expect(201);
    let ack = s
        .raw(
            Method::PATCH,
            "/v1/tables/t/docs/ct",
            Some("application/merge-patch+json"),
            r#"{"patched":true}"#,
        )
        .await
        .expect(200);
    assert_eq!(ack["version"], 2);
    assert_eq!(
        s.doc("t", "ct").await,
        (2, json!({"id": "ct", "patched": true}))
    );
    s.stop().await;
}

#[tokio::test]
async fn bodies_over_max_body_bytes_are_rejected_with_413() {
    const MAX: usize = 1024;
    let s = TestServer::start_with(
        StoreConfig::default(),
        HttpConfig {
            max_body_bytes: MAX,
            ..HttpConfig::default()
        },
    )
    .await;
    let docs = "/v1/tables/t/docs";
    // A document body of exactly `len` bytes.
    let body_of = |id: &str, len: usize| {
        let empty = format!(r#"{{"id":"{id}","pad":""}}"#);
        format!(
            r#"{{"id":"{id}","pad":"{}"}}"#,
            "x".repeat(len - empty.len())
        )
    };
    let json_type = Some("application/json");

    let message = s
        .raw(Method::POST, docs, json_type, body_of("over", MAX + 1))
        .await
        .error(413, "payload_too_large");
    assert!(message.contains("max_body_bytes"), "{message}");
    s.raw(
        Method::PUT,
        "/v1/tables/t/docs/over",
        json_type,
        body_of("over", 4 * MAX),
    )
    .await
    .error(413, "payload_too_large");
    // Without a Content-Length (chunked), the limit still holds.
    let chunks = vec![body_of("over", 3 * MAX).into_bytes()];
    let stream = futures_util::stream::iter(chunks.into_iter().map(Ok::<_, std::io::Error>));
    s.raw(Method::POST, docs, json_type, Body::wrap_stream(stream))
        .await
        .error(413, "payload_too_large");
    s.assert_missing("t", "over").await;

    // Exactly at the limit is fine.
    s.raw(Method::POST, docs, json_type, body_of("at", MAX))
        .await
        .expect(201);
    assert_eq!(s.doc("t", "at").await.0, 1);
    s.stop().await;
}

#[tokio::test]
async fn documents_over_max_doc_bytes_are_rejected_with_413() {
    const MAX: usize = 1000;
    let s = TestServer::start_with(
        StoreConfig {
            max_doc_bytes: MAX,
            ..StoreConfig::default()
        },
        HttpConfig::default(),
    )
    .await;
    // A document that serializes to exactly `len` bytes.
    let doc_of = |id: &str, len: usize| {
        let empty = serde_json::to_vec(&json!({"id": id, "pad": ""}))
            .unwrap()
            .len();
        json!({"id": id, "pad": "x".repeat(len - empty)})
    };
    assert_eq!(serde_json::to_vec(&doc_of("a", MAX)).unwrap().len(), MAX);

    let message = s
        .post("/v1/tables/t/docs", &doc_of("big", MAX + 1))
        .await
        .error(413, "payload_too_large");
    assert!(message.contains(&MAX.to_string()), "{message}");
    s.put("/v1/tables/t/docs/big", &doc_of("big", 5 * MAX))
        .await
        .error(413, "payload_too_large");
    s.assert_missing("t", "big").await;

    // At the limit is fine; a patch that grows past it is refused.
    s.insert("t", doc_of("fit", MAX)).await;
    s.patch("/v1/tables/t/docs/fit", &json!({"more": 1}))
        .await
        .error(413, "payload_too_large");
    assert_eq!(s.doc("t", "fit").await, (1, doc_of("fit", MAX)));

    // In a batch, the oversized operation fails the whole batch.
    s.post(
        "/v1/batch",
        &json!({"ops": [
            {"op": "insert", "table": "t", "doc": {"id": "small"}},
            {"op": "insert", "table": "t", "doc": doc_of("huge", 2 * MAX)},
        ]}),
    )
    .await
    .error(413, "payload_too_large");
    s.assert_missing("t", "small").await;
    assert_eq!(s.events(&[]).await.len(), 1);
    s.stop().await;
}

// ---------------------------------------------------------------------------
// Single documents: GET, PUT, PATCH, DELETE
// ---------------------------------------------------------------------------

#[tokio::test]
async fn get_returns_the_document_with_its_version_as_etag() {
    let s = TestServer::start().await;
    s.insert("t", json!({"id": "a", "n": 1, "nested": {"x": [1, 2]}}))
        .await;
    let reply = s.get("/v1/tables/t/docs/a").await;
    assert_eq!(
        reply.expect(200),
        json!({"id": "a", "n": 1, "nested": {"x": [1, 2]}})
    );
    assert_eq!(reply.header(ETAG), Some("\"1\""));
    assert_eq!(reply.header(CONTENT_TYPE), Some("application/json"));

    s.put("/v1/tables/t/docs/a", &json!({"n": 2}))
        .await
        .expect(200);
    let reply = s.get("/v1/tables/t/docs/a").await;
    assert_eq!(reply.header(ETAG), Some("\"2\""));
    assert_eq!(reply.expect(200), json!({"id": "a", "n": 2}));

    let message = s
        .get("/v1/tables/t/docs/missing")
        .await
        .error(404, "not_found");
    assert!(message.contains("missing"), "{message}");
    s.assert_missing("never_written", "a").await;
    s.get("/v1/tables/bad-name/docs/a")
        .await
        .error(400, "invalid_table");
    s.get("/v1/tables/t/docs/a%07b")
        .await
        .error(400, "invalid_id");
    s.get(&format!("/v1/tables/t/docs/{}", "x".repeat(257)))
        .await
        .error(400, "invalid_id");
    s.stop().await;
}

#[tokio::test]
async fn put_creates_then_replaces_under_if_match() {
    let s = TestServer::start().await;
    let path = "/v1/tables/t/docs/u1";

    let created = s.put(path, &json!({"name": "a"})).await.expect(200);
    assert_eq!(object_keys(&created), ["id", "offset", "version"]);
    assert_eq!(
        (&created["id"], &created["version"]),
        (&json!("u1"), &json!(1))
    );
    assert_eq!(
        s.doc("t", "u1").await,
        (1, json!({"id": "u1", "name": "a"}))
    );

    // A replace drops fields it does not carry; an equal id is fine.
    let replaced = s
        .put(path, &json!({"id": "u1", "other": true}))
        .await
        .expect(200);
    assert_eq!(replaced["version"], 2);
    assert!(offset(&replaced) > offset(&created));
    assert_eq!(
        s.doc("t", "u1").await,
        (2, json!({"id": "u1", "other": true}))
    );

    // If-Match with a quoted or bare version.
    let ack = s.put_if(path, "\"2\"", &json!({"v": 3})).await.expect(200);
    assert_eq!(ack["version"], 3);
    let ack = s.put_if(path, "3", &json!({"v": 4})).await.expect(200);
    assert_eq!(ack["version"], 4);

    // A stale version changes nothing.
    let message = s
        .put_if(path, "\"2\"", &json!({"v": "stale"}))
        .await
        .error(412, "version_mismatch");
    assert!(message.contains('2') && message.contains('4'), "{message}");
    assert_eq!(s.doc("t", "u1").await, (4, json!({"id": "u1", "v": 4})));

    // If-Match on a missing document does not create it.
    s.put_if("/v1/tables/t/docs/nobody", "\"1\"", &json!({}))
        .await
        .error(412, "version_mismatch");
    s.assert_missing("t", "nobody").await;

    // A malformed If-Match is a bad parameter, not a mismatch.
    for garbage in ["abc", "\"x\"", "-1", "W/\"4\"", ""] {
        s.put_if(path, garbage, &json!({"v": "garbage"}))
            .await
            .error(400, "invalid_parameter");
    }

    // The body's id must be the path's id; the body must be an object.
    s.put(path, &json!({"id": "other"}))
        .await
        .error(400, "id_mismatch");
    s.put(path, &json!({"id": 7}))
        .await
        .error(400, "id_mismatch");
    s.put(path, &json!([1])).await.error(400, "not_an_object");
    s.put("/v1/tables/bad-name/docs/x", &json!({}))
        .await
        .error(400, "invalid_table");
    s.put("/v1/tables/t/docs/a%0Ab", &json!({}))
        .await
        .error(400, "invalid_id");
    assert_eq!(s.doc("t", "u1").await, (4, json!({"id": "u1", "v": 4})));
    s.stop().await;
}

#[tokio::test]
async fn patch_applies_a_json_merge_patch() {
    let s = TestServer::start().await;
    let path = "/v1/tables/t/docs/p";
    s.insert(
        "t",
        json!({"id": "p", "a": 1, "b": {"x": 1, "y": 2}, "c": "keep", "l": [1, 2]}),
    )
    .await;

    // RFC 7396: null removes, objects merge recursively, arrays are replaced.
    let ack = s
        .patch(
            path,
            &json!({"a": null, "b": {"y": null, "z": {"deep": true}}, "l": [3], "d": "new"}),
        )
        .await
        .expect(200);
    assert_eq!((&ack["id"], &ack["version"]), (&json!("p"), &json!(2)));
    let expected =
        json!({"id": "p", "b": {"x": 1, "z": {"deep": true}}, "c": "keep", "l": [3], "d": "new"});
    assert_eq!(s.doc("t", "p").await, (2, expected.clone()));

    // If-Match guards a patch like any write.
    let ack = s
        .request(Method::PATCH, path)
        .header(IF_MATCH, "\"2\"")
        .json(&json!({"c": "changed"}));
    assert_eq!(send(ack).await.expect(200)["version"], 3);
    let stale = s
        .request(Method::PATCH, path)
        .header(IF_MATCH, "\"2\"")
        .json(&json!({"c": "stale"}));
    send(stale).await.error(412, "version_mismatch");

    // Missing documents are not created by a patch.
    s.patch("/v1/tables/t/docs/missing", &json!({"a": 1}))
        .await
        .error(404, "not_found");
    s.assert_missing("t", "missing").await;

    // The id can be neither removed nor changed; the result must be an object.
    s.patch(path, &json!({"id": null}))
        .await
        .error(400, "id_mismatch");
    s.patch(path, &json!({"id": "q"}))
        .await
        .error(400, "id_mismatch");
    s.patch(path, &json!(5)).await.error(400, "not_an_object");
    s.patch(path, &json!([1])).await.error(400, "not_an_object");

    let mut expected = expected;
    expected["c"] = json!("changed");
    assert_eq!(s.doc("t", "p").await, (3, expected));
    s.stop().await;
}

#[tokio::test]
async fn delete_acknowledges_then_the_document_is_gone() {
    let s = TestServer::start().await;
    let path = "/v1/tables/t/docs/d";
    s.insert("t", json!({"id": "d", "n": 1})).await;
    s.put(path, &json!({"n": 2})).await.expect(200);

    // A stale If-Match keeps the document.
    let stale = s.request(Method::DELETE, path).header(IF_MATCH, "\"1\"");
    send(stale).await.error(412, "version_mismatch");
    assert_eq!(s.doc("t", "d").await.0, 2);

    // The ack records the deletion at last version + 1.
    let matching = s.request(Method::DELETE, path).header(IF_MATCH, "\"2\"");
    let ack = send(matching).await.expect(200);
    assert_eq!(object_keys(&ack), ["id", "offset", "version"]);
    assert_eq!((&ack["id"], &ack["version"]), (&json!("d"), &json!(3)));
    let deleted_at = offset(&ack);

    s.assert_missing("t", "d").await;
    s.delete(path).await.error(404, "not_found");
    let events = s.events(&[]).await;
    assert_eq!(events.last().expect("events")["offset"], deleted_at);
    assert_eq!(events.last().unwrap()["op"], "delete");

    // Without If-Match, delete is unconditional.
    s.insert("t", json!({"id": "e"})).await;
    assert_eq!(
        s.delete("/v1/tables/t/docs/e").await.expect(200)["version"],
        2
    );
    s.assert_missing("t", "e").await;
    s.stop().await;
}

// ---------------------------------------------------------------------------
// Queries
// ---------------------------------------------------------------------------

#[tokio::test]
async fn query_pages_through_every_document_once_in_id_order() {
    let s = TestServer::start().await;
    // 23 documents written out of order, and neighbours in tables whose names
    // share the prefix.
    let ops: Vec<Value> = (0..23)
        .map(|i| (i * 7) % 23)
        .map(|i| {
            let kind = if i % 3 == 0 { "fizz" } else { "other" };
            json!({"op": "insert", "table": "q", "doc": {"id": format!("d{i:02}"), "k": kind, "n": i}})
        })
        .chain([
            json!({"op": "insert", "table": "q2", "doc": {"id": "d00", "k": "fizz"}}),
            json!({"op": "insert", "table": "qq", "doc": {"id": "d99", "k": "fizz"}}),
            json!({"op": "insert", "table": "q", "doc": {"id": "special", "tag": "a&b +c=d%#?"}}),
        ])
        .collect();
    s.batch(json!(ops)).await;
    let mut all: Vec<String> = (0..23).map(|i| format!("d{i:02}")).collect();
    all.push("special".into());

    for limit in [1, 5, 7, 24, 1000] {
        let (ids, requests) = s.page_through("q", &[], limit).await;
        assert_eq!(ids, all, "limit {limit}");
        assert!(requests >= all.len().div_ceil(limit), "limit {limit}");
        assert!(requests <= all.len() / limit + 1, "limit {limit}");
    }

    // Without a limit, the default page (100) holds everything.
    let page = s.get("/v1/tables/q/docs").await.expect(200);
    assert_eq!(page["docs"].as_array().unwrap().len(), 24);
    assert_eq!(page["next_cursor"], Value::Null);
    assert_eq!(
        page["docs"][3],
        json!({"id": "d03", "k": "fizz", "n": 3}),
        "pages hold whole documents"
    );

    // Reverse order, also across pages.
    let mut reversed = all.clone();
    reversed.reverse();
    assert_eq!(s.page_through("q", &[("sort", "-id")], 4).await.0, reversed);
    assert_eq!(s.page_through("q", &[("sort", "id")], 4).await.0, all);

    // Equality filters, across pages and combined.
    let fizz: Vec<String> = (0..23)
        .filter(|i| i % 3 == 0)
        .map(|i| format!("d{i:02}"))
        .collect();
    assert_eq!(
        s.page_through("q", &[("filter", r#"{"k":"fizz"}"#)], 2)
            .await
            .0,
        fizz
    );
    let mut fizz_reversed = fizz.clone();
    fizz_reversed.reverse();
    assert_eq!(
        s.page_through("q", &[("filter", r#"{"k":"fizz"}"#), ("sort", "-id")], 3)
            .await
            .0,
        fizz_reversed
    );
    assert_eq!(
        s.page_through("q", &[("filter", r#"{"k":"fizz","n":9}"#)], 10)
            .await
            .0,
        ["d09"]
    );
    assert_eq!(
        s.page_through("q", &[("filter", r#"{"tag":"a&b +c=d%#?"}"#)], 10)
            .await
            .0,
        ["special"]
    );
    assert!(
        s.page_through("q", &[("filter", r#"{"k":"none"}"#)], 10)
            .await
            .0
            .is_empty()
    );

    // The neighbour tables are separate.
    assert_eq!(s.page_through("q2", &[], 10).await.0, ["d00"]);
    assert_eq!(s.page_through("qq", &[], 10).await.0, ["d99"]);
    let empty = s.get("/v1/tables/nothing/docs").await.expect(200);
    assert_eq!(empty, json!({"docs": [], "next_cursor": null}));
    s.stop().await;
}

#[tokio::test]
async fn query_rejects_bad_parameters_and_filters() {
    let s = TestServer::start().await;
    s.insert("q", json!({"id": "a", "k": "v"})).await;
    let docs = "/v1/tables/q/docs";

    for (name, value) in [
        ("limit", "0"),
        ("limit", "100000"),
        ("limit", "1001"),
        ("limit", "-1"),
        ("limit", "ten"),
        ("unknown", "1"),
        ("cursor", "!!!"),
        ("cursor", "_w"), // base64 of a byte that is not UTF-8
        ("sort", "foo"),
        ("sort", "name"),
    ] {
        s.get_query(docs, &[(name, value)])
            .await
            .error(400, "invalid_parameter");
    }
    s.get(&format!("{docs}?limit=1&limit=2"))
        .await
        .error(400, "invalid_parameter");
    for filter in [
        "[1]",
        r#"{"a":{"$foo":1}}"#,
        r#"{"$or":{"a":1}}"#,
        "not json",
        "{",
        "\"k\"",
    ] {
        s.get_query(docs, &[("filter", filter)])
            .await
            .error(400, "invalid_filter");
    }
    let message = s
        .get_query(
            docs,
            &[("filter", r#"{"$and":[{"k":"v"},{"n":{"$foo":1}}]}"#)],
        )
        .await
        .error(400, "invalid_filter");
    assert!(
        message.contains("$and[1].n"),
        "the error names the place: {message}"
    );
    for (sql, params) in [
        ("k =", "[]"),
        ("k = $1", "[]"),
        ("k = $1", "{}"),
        ("k = 'v'", "not json"),
    ] {
        let message = s
            .get_query(docs, &[("where", sql), ("params", params)])
            .await
            .error(400, "invalid_filter");
        assert!(!message.is_empty());
    }
    s.get_query(docs, &[("params", "[1]")])
        .await
        .error(400, "invalid_filter");
    s.get("/v1/tables/bad-name/docs")
        .await
        .error(400, "invalid_table");

    // The largest allowed limit is fine.
    let page = s.get_query(docs, &[("limit", "1000")]).await.expect(200);
    assert_eq!(page["docs"], json!([{"id": "a", "k": "v"}]));
    s.stop().await;
}

#[tokio::test]
async fn http_config_sets_default_and_largest_page() {
    let s = TestServer::start_with(
        StoreConfig::default(),
        HttpConfig {
            default_page: 3,
            max_page: 5,
            ..HttpConfig::default()
        },
    )
    .await;
    let ops: Vec<Value> = (0..7)
        .map(|i| json!({"op": "insert", "table": "t", "doc": {"id": format!("i{i}")}}))
        .collect();
    s.batch(json!(ops)).await;

    let page = s.get("/v1/tables/t/docs").await.expect(200);
    assert_eq!(page["docs"].as_array().unwrap().len(), 3);
    assert!(page["next_cursor"].is_string());
    let page = s
        .get_query("/v1/tables/t/docs", &[("limit", "5")])
        .await
        .expect(200);
    assert_eq!(page["docs"].as_array().unwrap().len(), 5);
    let message = s
        .get_query("/v1/tables/t/docs", &[("limit", "6")])
        .await
        .error(400, "invalid_parameter");
    assert!(message.contains('5'), "{message}");
    s.stop().await;
}

// ---------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------

#[tokio::test]
async fn batch_applies_every_operation_in_order() {
    let s = TestServer::start().await;
    let results = s
        .batch(json!([
            {"op": "insert", "table": "b", "doc": {"id": "x", "n": 1}},
            {"op": "patch", "table": "b", "id": "x", "patch": {"n": 2}},
            {"op": "put", "table": "b", "id": "y", "doc": {"n": 3}},
            {"op": "insert", "table": "b2", "doc": {"n": 4}},
            {"op": "put", "table": "b", "id": "x", "doc": {"n": 5}, "if_version": 2},
            {"op": "delete", "table": "b", "id": "y", "if_version": 1},
        ]))
        .await;
    assert_eq!(results.len(), 6);
    for ack in &results {
        assert_eq!(object_keys(ack), ["id", "offset", "version"]);
    }
    let ids: Vec<&str> = results.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(
        [ids[0], ids[1], ids[2], ids[4], ids[5]],
        ["x", "x", "y", "x", "y"]
    );
    let versions: Vec<u64> = results
        .iter()
        .map(|a| a["version"].as_u64().unwrap())
        .collect();
    assert_eq!(versions, [1, 2, 1, 1, 3, 2]);
    let first = offset(&results[0]);
    assert_eq!(offsets(&results), (first..first + 6).collect::<Vec<_>>());

    assert_eq!(s.doc("b", "x").await, (3, json!({"id": "x", "n": 5})));
    s.assert_missing("b", "y").await;
    let generated = ids[3];
    assert_eq!(
        s.doc("b2", generated).await,
        (1, json!({"id": generated, "n": 4}))
    );

    let events = s.events(&[]).await;
    assert_eq!(offsets(&events), offsets(&results));
    let ops: Vec<&str> = events.iter().map(|e| e["op"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        ["insert", "update", "insert", "insert", "update", "delete"]
    );
    s.stop().await;
}

#[tokio::test]
async fn a_failing_batch_operation_writes_nothing() {
    let s = TestServer::start().await;
    let before = s.insert("b", json!({"id": "kept", "n": 0})).await;
    let head = offset(&before).to_string();

    let message = s
        .post(
            "/v1/batch",
            &json!({"ops": [
                {"op": "insert", "table": "b", "doc": {"id": "a1"}},
                {"op": "delete", "table": "b", "id": "missing"},
                {"op": "patch", "table": "b", "id": "kept", "patch": {"n": 1}},
            ]}),
        )
        .await
        .error(404, "not_found");
    assert!(message.contains("ops[1]"), "{message}");

    let message = s
        .post(
            "/v1/batch",
            &json!({"ops": [
                {"op": "patch", "table": "b", "id": "kept", "patch": {"n": 2}},
                {"op": "put", "table": "b", "id": "kept", "doc": {}, "if_version": 1},
            ]}),
        )
        .await
        .error(412, "version_mismatch");
    assert!(message.contains("ops[1]"), "{message}");

    let message = s
        .post(
            "/v1/batch",
            &json!({"ops": [
                {"op": "insert", "table": "b", "doc": {"id": "a2"}},
                {"op": "insert", "table": "b", "doc": {"id": "a2"}},
            ]}),
        )
        .await
        .error(409, "already_exists");
    assert!(message.contains("ops[1]"), "{message}");

    s.assert_missing("b", "a1").await;
    s.assert_missing("b", "a2").await;
    assert_eq!(s.doc("b", "kept").await, (1, json!({"id": "kept", "n": 0})));
    assert!(s.events(&[("from", head.as_str())]).await.is_empty());

    // The next write is numbered right after the last successful one: the
    // failed batches used no offsets.
    let next = s.insert("b", json!({"id": "after"})).await;
    assert_eq!(offset(&next), offset(&before) + 1);
    s.stop().await;
}

#[tokio::test]
async fn batch_rejects_malformed_requests() {
    let s = TestServer::start().await;
    let batch = "/v1/batch";

    let message = s
        .post(
            batch,
            &json!({"ops": [{"op": "upsert", "table": "b", "doc": {}}]}),
        )
        .await
        .error(400, "invalid_batch");
    assert!(message.contains("ops[0]"), "{message}");
    for body in [
        json!({"ops": []}),
        json!([1]),
        json!("ops"),
        json!({}),
        json!({"ops": {}}),
        json!({"ops": null}),
        json!({"ops": [], "extra": 1}),
        json!({"ops": [5]}),
    ] {
        s.post(batch, &body).await.error(400, "invalid_batch");
    }
    for (op, index) in [
        (
            json!({"op": "insert", "table": "b", "doc": {}, "extra": 1}),
            0,
        ),
        (json!({"op": "delete", "table": "b"}), 0),
        (json!({"table": "b", "doc": {}}), 0),
        (
            json!({"op": "put", "table": "b", "id": "x", "doc": {}, "if_version": "1"}),
            0,
        ),
        (json!({"op": "put", "table": "b", "id": "x"}), 0),
        (json!({"op": "patch", "table": "b", "patch": {}}), 0),
        (
            json!({"op": "delete", "table": "b", "id": "x", "doc": {}}),
            0,
        ),
    ] {
        let message = s
            .post(batch, &json!({ "ops": [op] }))
            .await
            .error(400, "invalid_batch");
        assert!(message.contains(&format!("ops[{index}]")), "{message}");
    }

    // A field another operation takes is refused by name.
    for (op, says) in [
        (
            json!({"op": "insert", "table": "b", "id": "x", "doc": {}}),
            r#""insert" takes no "id""#,
        ),
        (
            json!({"op": "patch", "table": "b", "id": "x", "doc": {}, "patch": {}}),
            r#""patch" takes no "doc""#,
        ),
        (
            json!({"op": "put", "table": "b", "doc": {}}),
            r#""put" needs "id""#,
        ),
        // Even as null.
        (
            json!({"op": "insert", "table": "b", "id": null, "doc": {}}),
            r#""insert" takes no "id""#,
        ),
        (
            json!({"op": "delete", "table": "b", "id": "x", "doc": null}),
            r#""delete" takes no "doc""#,
        ),
    ] {
        let message = s
            .post(batch, &json!({ "ops": [op] }))
            .await
            .error(400, "invalid_batch");
        assert!(message.contains(says), "{message}");
    }

    // Operations are validated like single writes, and name their index.
    let ok = json!({"op": "insert", "table": "b", "doc": {"id": "ok"}});
    for (op, code) in [
        (
            json!({"op": "insert", "table": "bad-name", "doc": {}}),
            "invalid_table",
        ),
        (
            json!({"op": "delete", "table": "b", "id": ""}),
            "invalid_id",
        ),
        (
            json!({"op": "insert", "table": "b", "doc": [1]}),
            "not_an_object",
        ),
        // A null document is a document that is not an object.
        (
            json!({"op": "insert", "table": "b", "doc": null}),
            "not_an_object",
        ),
        (
            json!({"op": "put", "table": "b", "id": "x", "doc": {"id": "y"}}),
            "id_mismatch",
        ),
    ] {
        let message = s
            .post(batch, &json!({ "ops": [ok.clone(), op] }))
            .await
            .error(400, code);
        assert!(message.contains("ops[1]"), "{code}: {message}");
    }

    // More than max_batch_ops (1000) operations.
    let ops: Vec<Value> = (0..1001)
        .map(|i| json!({"op": "insert", "table": "b", "doc": {"id": format!("{i}")}}))
        .collect();
    let message = s
        .post(batch, &json!({ "ops": ops }))
        .await
        .error(400, "invalid_batch");
    assert!(message.contains("1000"), "{message}");

    // Nothing of it was written.
    assert!(s.page_through("b", &[], 10).await.0.is_empty());
    assert!(s.events(&[]).await.is_empty());
    s.stop().await;
}

// ---------------------------------------------------------------------------
// Replay
// ---------------------------------------------------------------------------

#[tokio::test]
async fn replay_streams_selected_events_as_ndjson() {
    let s = TestServer::start().await;
    let a1 = offset(&s.insert("t", json!({"id": "a", "k": "x"})).await);
    let a2 = offset(&s.insert("u", json!({"id": "b", "k": "x"})).await);
    let a3 = offset(
        &s.put("/v1/tables/t/docs/a", &json!({"k": "y"}))
            .await
            .expect(200),
    );
    let a4 = s
        .herald
        .publish("chat:room", json!({"text": "hi"}))
        .await
        .expect("publish")
        .0;
    let a5 = offset(&s.delete("/v1/tables/t/docs/a").await.expect(200));
    let a6 = offset(&s.insert("t", json!({"id": "c", "k": "x"})).await);

    let all = s.events(&[]).await;
    assert_eq!(offsets(&all), [a1, a2, a3, a4, a5, a6]);
    let epoch = all[0]["epoch"].as_str().expect("epoch string").to_owned();
    assert_eq!(epoch.len(), 16);
    assert!(
        epoch
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    let mut last_ts = 0;
    for event in &all {
        assert_eq!(event["epoch"], epoch.as_str());
        let ts = event["ts"].as_u64().expect("ts");
        assert!(ts >= last_ts && ts > 1_600_000_000_000, "ts {ts}");
        last_ts = ts;
    }
    let strip = |e: &Value| {
        let mut e = e.clone();
        let e = e.as_object_mut().unwrap();
        for key in ["offset", "epoch", "ts"] {
            assert!(e.remove(key).is_some(), "{key} missing");
        }
        Value::Object(e.clone())
    };
    assert_eq!(
        strip(&all[0]),
        json!({"topic": "table:t", "op": "insert", "table": "t", "id": "a", "version": 1,
               "doc": {"id": "a", "k": "x"}, "changed": ["id", "k"]})
    );
    assert_eq!(
        strip(&all[2]),
        json!({"topic": "table:t", "op": "update", "table": "t", "id": "a", "version": 2,
               "doc": {"id": "a", "k": "y"}, "old": {"id": "a", "k": "x"}, "changed": ["k"]})
    );
    assert_eq!(
        strip(&all[3]),
        json!({"topic": "chat:room", "op": "publish", "channel": "chat:room", "data": {"text": "hi"}})
    );
    assert_eq!(
        strip(&all[4]),
        json!({"topic": "table:t", "op": "delete", "table": "t", "id": "a", "version": 3,
               "old": {"id": "a", "k": "y"}, "changed": ["id", "k"]})
    );

    let (o1, o2, o3, o6) = (
        a1.to_string(),
        a2.to_string(),
        a3.to_string(),
        a6.to_string(),
    );
    assert_eq!(
        s.event_offsets(&[("topic", "table:t")]).await,
        [a1, a3, a5, a6]
    );
    assert_eq!(s.event_offsets(&[("topic", "table:u")]).await, [a2]);
    assert_eq!(
        s.event_offsets(&[("topic", "table:*")]).await,
        [a1, a2, a3, a5, a6]
    );
    assert_eq!(s.event_offsets(&[("topic", "chat:room")]).await, [a4]);
    assert!(s.event_offsets(&[("topic", "table:none")]).await.is_empty());

    // from is exclusive, to inclusive.
    assert_eq!(
        s.event_offsets(&[("from", o2.as_str())]).await,
        [a3, a4, a5, a6]
    );
    assert_eq!(s.event_offsets(&[("to", o3.as_str())]).await, [a1, a2, a3]);
    assert_eq!(
        s.event_offsets(&[("from", o1.as_str()), ("to", o3.as_str())])
            .await,
        [a2, a3]
    );
    assert!(s.event_offsets(&[("from", o6.as_str())]).await.is_empty());
    assert!(
        s.event_offsets(&[("from", "0"), ("to", "0")])
            .await
            .is_empty()
    );

    // limit counts selected events.
    assert_eq!(s.event_offsets(&[("limit", "2")]).await, [a1, a2]);
    assert!(s.event_offsets(&[("limit", "0")]).await.is_empty());
    let limited = [("topic", "table:t"), ("from", o1.as_str()), ("limit", "2")];
    assert_eq!(s.event_offsets(&limited).await, [a3, a5]);

    // A resume token of this epoch is the same as its offset.
    let token = format!("{epoch}:{a2}");
    assert_eq!(
        s.event_offsets(&[("from", token.as_str())]).await,
        [a3, a4, a5, a6]
    );

    // Filters match the new document, or the old one of a deletion.
    assert_eq!(
        s.event_offsets(&[("filter", r#"{"k":"x"}"#)]).await,
        [a1, a2, a6]
    );
    assert_eq!(
        s.event_offsets(&[("filter", r#"{"k":"y"}"#)]).await,
        [a3, a5]
    );
    let both = [("filter", r#"{"k":"x"}"#), ("topic", "table:t")];
    assert_eq!(s.event_offsets(&both).await, [a1, a6]);

    // since selects by timestamp.
    assert_eq!(
        s.event_offsets(&[("since", "0")]).await,
        [a1, a2, a3, a4, a5, a6]
    );
    let ts3 = all[2]["ts"].as_u64().unwrap();
    let since = s
        .event_offsets(&[("since", ts3.to_string().as_str())])
        .await;
    assert!(since.ends_with(&[a3, a4, a5, a6]), "{since:?}");
    for event in all.iter().filter(|e| since.contains(&offset(e))) {
        assert!(event["ts"].as_u64().unwrap() >= ts3);
    }
    assert!(
        s.event_offsets(&[("since", "99999999999999")])
            .await
            .is_empty()
    );
    s.stop().await;
}

#[tokio::test]
async fn replay_rejects_bad_positions_and_parameters() {
    let s = TestServer::start().await;
    let first = offset(&s.insert("t", json!({"id": "a"})).await);
    let all = s.events(&[]).await;
    let epoch = all[0]["epoch"].as_str().unwrap();
    let other_epoch = {
        let e = u64::from_str_radix(epoch, 16).unwrap();
        format!("{:016x}", e ^ 2)
    };

    let wrong_token = format!("{other_epoch}:{first}");
    let reply = s
        .get_query("/v1/events", &[("from", wrong_token.as_str())])
        .await;
    let message = reply.error(410, "unrecoverable_position");
    assert!(message.contains(&other_epoch), "{message}");
    assert_eq!(reply.json()["error"]["earliest"], first);

    let bad_offset = format!("{epoch}:x");
    for (name, value) in [
        ("from", "garbage"),
        ("from", "-1"),
        ("from", epoch),
        ("from", "zzzzzzzzzzzzzzzz:1"),
        ("from", bad_offset.as_str()),
        ("to", "x"),
        ("limit", "-1"),
        ("since", "yesterday"),
        ("unknown", "1"),
    ] {
        s.get_query("/v1/events", &[(name, value)])
            .await
            .error(400, "invalid_parameter");
    }
    s.get_query("/v1/events", &[("from", "0"), ("since", "0")])
        .await
        .error(400, "invalid_parameter");
    s.get_query("/v1/events", &[("topic", "bad name")])
        .await
        .error(400, "invalid_channel");
    s.get_query("/v1/events", &[("topic", "a..b")])
        .await
        .error(400, "invalid_channel");
    for topic in ["table:bad-name", "table:"] {
        s.get_query("/v1/events", &[("topic", topic)])
            .await
            .error(400, "invalid_table");
    }
    for filter in ["[1]", r#"{"a":{"$foo":1}}"#, "{"] {
        s.get_query("/v1/events", &[("filter", filter)])
            .await
            .error(400, "invalid_filter");
    }
    s.get_query("/v1/events", &[("where", "a >")])
        .await
        .error(400, "invalid_filter");
    s.stop().await;
}

#[tokio::test]
async fn replay_from_below_retention_is_gone() {
    let s = TestServer::start_with(
        StoreConfig {
            retention: RetentionConfig {
                max_bytes: Some(1000),
                ..RetentionConfig::default()
            },
            ..StoreConfig::default()
        },
        HttpConfig::default(),
    )
    .await;
    let mut head = 0;
    for i in 0..40 {
        head = offset(&s.insert("t", json!({ "n": i })).await);
    }
    s.herald.store().enforce_retention().await.expect("trim");
    let earliest = s.herald.store().earliest().0;
    assert!(
        earliest > 2 && earliest <= head,
        "retention trimmed: {earliest}"
    );

    // Right before the earliest kept event is still a complete replay.
    let kept = s
        .events(&[("from", (earliest - 1).to_string().as_str())])
        .await;
    assert_eq!(offsets(&kept), (earliest..=head).collect::<Vec<_>>());

    // One further back, events are missing: 410 naming the earliest offset.
    for from in [earliest - 2, 0] {
        let reply = s
            .get_query("/v1/events", &[("from", from.to_string().as_str())])
            .await;
        reply.error(410, "unrecoverable_position");
        assert_eq!(reply.json()["error"]["earliest"], earliest, "from={from}");
    }

    // Regression: with no position at all, replay starts at the earliest
    // kept event instead of failing.
    let all = s.events(&[]).await;
    assert_eq!(offsets(&all), (earliest..=head).collect::<Vec<_>>());
    s.stop().await;
}

#[tokio::test]
async fn dot_segment_ids_are_rejected_because_no_url_can_reach_them() {
    let s = TestServer::start().await;
    for id in [".", ".."] {
        s.post("/v1/tables/t/docs", &json!({ "id": id }))
            .await
            .error(400, "invalid_id");
    }
    s.insert("t", json!({"id": "..."})).await;
    assert_eq!(s.doc("t", "...").await.0, 1);
    s.stop().await;
}

#[tokio::test]
async fn replay_continues_across_store_read_chunks() {
    let s = TestServer::start().await;
    // More events than the server reads from the store at once (1024).
    for half in 0..2 {
        let ops: Vec<Value> = (0..600)
            .map(|i| json!({"op": "insert", "table": "bulk", "doc": {"id": format!("n{half}{i:03}")}}))
            .collect();
        s.batch(json!(ops)).await;
    }
    let last = offset(&s.insert("t", json!({"id": "tail"})).await);

    let all = offsets(&s.events(&[]).await);
    assert_eq!(all.len(), 1201);
    assert!(all.windows(2).all(|w| w[0] < w[1]), "strictly increasing");
    assert_eq!(all.last(), Some(&last));

    // A sparse topic found after the first chunk.
    assert_eq!(offsets(&s.events(&[("topic", "table:t")]).await), [last]);
    // A limit past the first chunk.
    assert_eq!(offsets(&s.events(&[("limit", "1100")]).await), all[..1100]);
    // Starting in the middle.
    let from = all[99].to_string();
    assert_eq!(
        offsets(&s.events(&[("from", from.as_str())]).await),
        all[100..]
    );
    s.stop().await;
}

// ---------------------------------------------------------------------------
// Routing, robustness, shutdown
// ---------------------------------------------------------------------------

#[tokio::test]
async fn unknown_routes_and_methods_answer_json_errors() {
    let s = TestServer::start().await;
    let health = s.get("/healthz").await;
    assert_eq!(health.expect(200), json!({"status": "ok"}));

    for path in [
        "/",
        "/nope",
        "/v1",
        "/v1/tables/t",
        "/v1/tables/t/docs/a/extra",
        "/v2/batch",
    ] {
        s.get(path).await.error(404, "not_found");
    }
    let reply = s.delete("/healthz").await;
    reply.error(405, "method_not_allowed");
    assert_eq!(reply.header("allow"), Some("GET,HEAD"));
    for (method, path) in [
        (Method::POST, "/healthz"),
        (Method::POST, "/v1/events"),
        (Method::GET, "/v1/batch"),
        (Method::PUT, "/v1/tables/t/docs"),
        (Method::POST, "/v1/tables/t/docs/a"),
    ] {
        send(s.request(method, path))
            .await
            .error(405, "method_not_allowed");
    }
    s.stop().await;
}

#[tokio::test]
async fn server_keeps_serving_after_bad_requests() {
    let s = TestServer::start().await;
    let docs = "/v1/tables/t/docs";

    // A burst of rejected requests of every kind.
    s.raw(Method::POST, docs, Some("application/json"), "{")
        .await
        .error(400, "invalid_json");
    s.raw(Method::POST, docs, Some("text/plain"), "{}")
        .await
        .error(415, "unsupported_media_type");
    s.post("/v1/tables/bad-name/docs", &json!({}))
        .await
        .error(400, "invalid_table");
    s.post("/v1/batch", &json!({"ops": []}))
        .await
        .error(400, "invalid_batch");
    s.get_query("/v1/events", &[("from", "garbage")])
        .await
        .error(400, "invalid_parameter");
    s.get("/nope").await.error(404, "not_found");

    // Connections that do not speak HTTP, or stop mid-body.
    let answer = raw_tcp(s.addr, b"NOT HTTP AT ALL\r\n\r\n").await;
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer:?}");
    raw_tcp(
        s.addr,
        b"POST /v1/tables/t/docs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"id\":\"cut\",",
    )
    .await;
    s.assert_missing("t", "cut").await;

    // Then everything works as usual.
    assert_eq!(s.get("/healthz").await.expect(200), json!({"status": "ok"}));
    let ack = s.insert("t", json!({"id": "fine"})).await;
    assert_eq!(ack["version"], 1);
    assert_eq!(s.page_through("t", &[], 10).await.0, ["fine"]);
    assert_eq!(offsets(&s.events(&[]).await), [offset(&ack)]);
    s.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_keeps_every_acknowledged_write() {
    let s = TestServer::start().await;
    s.insert("t", json!({"id": "a", "n": 1})).await;
    s.insert("t", json!({"id": "b", "n": 1})).await;
    s.put("/v1/tables/t/docs/b", &json!({"n": 2}))
        .await
        .expect(200);
    s.patch("/v1/tables/t/docs/b", &json!({"m": 3}))
        .await
        .expect(200);
    s.insert("t", json!({"id": "c"})).await;
    s.delete("/v1/tables/t/docs/c").await.expect(200);
    let results = s
        .batch(json!([
            {"op": "insert", "table": "u", "doc": {"id": "x"}},
            {"op": "insert", "table": "u", "doc": {"id": "y"}},
        ]))
        .await;
    let last = offset(&results[1]);
    let addr = s.addr;

    let dir = s.stop().await;
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "the listener is closed after shutdown"
    );

    // Every acknowledged write is in the reopened directory.
    let herald = Herald::open(dir.path()).expect("reopen");
    let get = |table: &str, id: &str| herald.get(table, id).expect("get");
    let doc = |d: herald_core::Doc| (d.version.0, Value::Object(d.fields));
    assert_eq!(
        get("t", "a").map(doc),
        Some((1, json!({"id": "a", "n": 1})))
    );
    assert_eq!(
        get("t", "b").map(doc),
        Some((3, json!({"id": "b", "n": 2, "m": 3})))
    );
    assert_eq!(get("t", "c"), None);
    assert_eq!(get("u", "x").map(doc), Some((1, json!({"id": "x"}))));
    assert_eq!(get("u", "y").map(doc), Some((1, json!({"id": "y"}))));
    assert_eq!(herald.store().head().0, last);
    herald.close().await;
    drop(herald);

    // A new server over the same directory serves the same history and
    // continues the offsets.
    let s = TestServer::start_in(dir, StoreConfig::default(), HttpConfig::default()).await;
    let events = s.events(&[]).await;
    assert_eq!(events.len(), 8);
    assert_eq!(offset(events.last().unwrap()), last);
    assert_eq!(s.doc("t", "b").await.0, 3);
    let next = s.insert("t", json!({"id": "d"})).await;
    assert!(offset(&next) > last);
    s.stop().await;
}

#[tokio::test]
async fn queries_and_replay_speak_the_full_filter_language() {
    let s = TestServer::start().await;
    let orders = [
        json!({"id": "o1", "amount": 50, "status": "pending", "tags": ["a"], "customer": {"tier": "basic"}}),
        json!({"id": "o2", "amount": 150, "status": "pending", "tags": ["b"], "customer": {"tier": "premium"}}),
        json!({"id": "o3", "amount": 250, "status": "shipped", "tags": ["a", "b"], "customer": {"tier": "basic"}}),
        json!({"id": "o4", "amount": 350, "status": "processing", "customer": {"tier": "premium"}, "deleted_at": null}),
    ];
    for order in &orders {
        s.insert("orders", order.clone()).await;
    }
    let ids = |page: Value| -> Vec<String> {
        page["docs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let docs = "/v1/tables/orders/docs";
    type Case<'a> = (&'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 6] = [
        (
            &[(
                "filter",
                r#"{"amount": {"$gte": 100}, "status": {"$in": ["pending", "processing"]}}"#,
            )],
            &["o2", "o4"],
        ),
        (&[("filter", r#"{"tags": "a"}"#)], &["o1", "o3"]),
        (
            &[("filter", r#"{"customer.tier": "premium"}"#)],
            &["o2", "o4"],
        ),
        (
            &[(
                "where",
                "amount >= 100 AND status IN ('pending','processing') AND deleted_at IS NULL",
            )],
            &["o2", "o4"],
        ),
        (
            &[
                ("where", "amount > $1 OR customer.tier = $2"),
                ("params", r#"[300, "basic"]"#),
            ],
            &["o1", "o3", "o4"],
        ),
        (
            &[
                ("filter", r#"{"status": "pending"}"#),
                ("where", "amount < 100"),
            ],
            &["o1"],
        ),
    ];
    for (params, expected) in cases {
        let page = s.get_query(docs, params).await.expect(200);
        assert_eq!(ids(page), expected, "{params:?}");
    }

    // Replay filters the same way: the document of inserts and updates, the
    // old document of deletes.
    s.delete("/v1/tables/orders/docs/o2").await.expect(200);
    let events = s
        .events(&[
            ("topic", "table:orders"),
            ("where", "customer.tier = 'premium'"),
        ])
        .await;
    let seen: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["op"].as_str().unwrap().to_owned(),
                e["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("insert".to_owned(), "o2".to_owned()),
            ("insert".to_owned(), "o4".to_owned()),
            ("delete".to_owned(), "o2".to_owned())
        ]
    );
    s.stop().await;
}
