//! A real server for real-time tests: `herald_server::run` on an ephemeral
//! port over a fresh data directory, plus a raw WebSocket client that reads
//! the protocol message by message.
#![allow(dead_code, unreachable_pub)]

pub mod users;

use futures_util::{SinkExt, StreamExt};
use herald_core::Herald;
use herald_server::{HttpConfig, RealtimeConfig};
use herald_store::StoreConfig;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::time::Duration;
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Upper bound for any single wait.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// A running server.
pub struct Server {
    pub addr: SocketAddr,
    pub base: String,
    pub herald: Herald,
    pub hub: herald_core::Hub,
    pub rooms: herald_core::Rooms,
    pub sessions: herald_server::Sessions,
    pub http: reqwest::Client,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
    pub dir: Option<TempDir>,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(StoreConfig::default(), RealtimeConfig::default()).await
    }

    pub async fn start_with(store: StoreConfig, realtime: RealtimeConfig) -> Server {
        Server::start_in(tempfile::tempdir().unwrap(), store, realtime, None).await
    }

    /// A server with the security `config` asks for (`[auth]`, `[tables]`,
    /// `[limits]`, `[audit]`): its `data_dir` and `listen` are replaced by a
    /// fresh directory and an ephemeral loopback port. `prepare` runs on the
    /// data directory first (to create API keys, say).
    pub async fn secured(
        config: herald_server::Config,
        prepare: impl FnOnce(&std::path::Path),
    ) -> Server {
        let dir = tempfile::tempdir().unwrap();
        prepare(dir.path());
        Server::configured_in(dir, config, None, None).await
    }

    /// A server with the whole `config` (namespaces, routes, security...),
    /// presence reading `clock` if given, over `dir`, on `addr` if given.
    pub async fn configured_in(
        dir: TempDir,
        mut config: herald_server::Config,
        clock: Option<std::sync::Arc<dyn herald_core::clock::Clock>>,
        addr: Option<SocketAddr>,
    ) -> Server {
        config.data_dir = dir.path().to_owned();
        Server::start_app(
            dir,
            config.store.clone(),
            config.realtime.clone(),
            addr,
            Some((config, clock)),
        )
        .await
    }

    /// [`Server::configured_in`] a fresh directory.
    pub async fn configured(
        config: herald_server::Config,
        clock: Option<std::sync::Arc<dyn herald_core::clock::Clock>>,
    ) -> Server {
        Server::configured_in(tempfile::tempdir().unwrap(), config, clock, None).await
    }

    /// A server over `dir`, on `addr` if given (to restart on the same port).
    pub async fn start_in(
        dir: TempDir,
        store: StoreConfig,
        realtime: RealtimeConfig,
        addr: Option<SocketAddr>,
    ) -> Server {
        Server::start_app(dir, store, realtime, addr, None).await
    }

    async fn start_app(
        dir: TempDir,
        store: StoreConfig,
        realtime: RealtimeConfig,
        addr: Option<SocketAddr>,
        secured: Option<(
            herald_server::Config,
            Option<std::sync::Arc<dyn herald_core::clock::Clock>>,
        )>,
    ) -> Server {
        let listener = match addr {
            Some(addr) => {
                let mut tries = 0;
                loop {
                    match TcpListener::bind(addr).await {
                        Ok(l) => break l,
                        Err(e) if tries < 100 => {
                            tries += 1;
                            let _ = e;
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        Err(e) => panic!("rebinding {addr}: {e}"),
                    }
                }
            }
            None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
        };
        let addr = listener.local_addr().unwrap();
        // A stopped server's engine lets go of the directory once its last
        // handle is dropped, which can lag the stop a little.
        let mut tries = 0;
        let herald = loop {
            match Herald::open_with(dir.path(), store.clone()) {
                Ok(herald) => break herald,
                Err(herald_store::StoreError::Engine(e)) if tries < 250 => {
                    let _ = e;
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("opening the store: {e}"),
            }
        };
        let (shutdown, signal) = oneshot::channel::<()>();
        let app = match secured {
            Some((mut config, clock)) => {
                config.listen = addr;
                let clock =
                    clock.unwrap_or_else(|| std::sync::Arc::new(herald_core::clock::SystemClock));
                herald_server::App::from_config_with_clock(herald.clone(), &config, clock)
                    .expect("a valid configuration")
            }
            None => herald_server::App::new(herald.clone(), HttpConfig::default(), realtime)
                .expect("a server over a fresh store"),
        };
        let hub = app.hub().clone();
        let rooms = app.rooms().clone();
        let sessions = app.sessions().clone();
        let task = tokio::spawn(app.serve(listener, async move {
            let _ = signal.await;
        }));
        Server {
            addr,
            base: format!("http://{addr}"),
            herald,
            hub,
            rooms,
            sessions,
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            shutdown: Some(shutdown),
            task: Some(task),
            dir: Some(dir),
        }
    }

    /// Stops gracefully; `run` must return `Ok` in time. Returns the data
    /// directory for a restart.
    pub async fn stop(mut self) -> TempDir {
        self.shutdown.take().unwrap().send(()).unwrap();
        let served = tokio::time::timeout(TIMEOUT, self.task.take().unwrap())
            .await
            .expect("the server stops in time")
            .expect("the server task did not panic");
        served.expect("run returned Ok");
        self.dir.take().unwrap()
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/v1/ws", self.addr)
    }

    /// A raw WebSocket client, past its `welcome`.
    pub async fn ws(&self) -> Ws {
        let (stream, _) = tokio_tungstenite::connect_async(self.ws_url())
            .await
            .unwrap();
        let mut ws = Ws { stream };
        let welcome = ws.recv().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        ws
    }

    /// Writes through HTTP; the answer's JSON.
    pub async fn post(&self, path: &str, body: &Value) -> Value {
        let reply = self
            .http
            .post(format!("{}{path}", self.base))
            .json(body)
            .send()
            .await
            .unwrap();
        assert!(reply.status().is_success(), "{path}: {}", reply.status());
        reply.json().await.unwrap()
    }

    pub async fn insert(&self, table: &str, doc: Value) -> u64 {
        self.post(&format!("/v1/tables/{table}/docs"), &doc).await["offset"]
            .as_u64()
            .unwrap()
    }

    /// A handle that inserts over HTTP from spawned tasks.
    pub fn writer(&self) -> Writer {
        Writer {
            http: self.http.clone(),
            base: self.base.clone(),
        }
    }
}

/// Inserts documents over HTTP; cheap to clone into tasks.
#[derive(Clone)]
pub struct Writer {
    http: reqwest::Client,
    base: String,
}

impl Writer {
    /// Inserts `doc` into `table`; its offset.
    pub async fn insert(&self, table: &str, doc: Value) -> u64 {
        let reply: Value = self
            .http
            .post(format!("{}/v1/tables/{table}/docs", self.base))
            .json(&doc)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        reply["offset"].as_u64().unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = &self.task {
            task.abort();
        }
    }
}

/// A raw WebSocket connection speaking JSON text.
pub struct Ws {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn send(&mut self, message: Value) {
        self.stream
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// The next frame, which must come in time on an open socket.
    async fn frame(&mut self, what: &str) -> Message {
        tokio::time::timeout(TIMEOUT, self.stream.next())
            .await
            .unwrap_or_else(|_| panic!("{what} in time"))
            .unwrap_or_else(|| panic!("{what} before the end of the stream"))
            .unwrap_or_else(|e| panic!("{what}, not a socket error: {e}"))
    }

    /// The next text message, parsed (pings are skipped).
    pub async fn recv(&mut self) -> Value {
        loop {
            match self.frame("a message").await {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next message, which must be of `kind`.
    pub async fn expect(&mut self, kind: &str) -> Value {
        let m = self.recv().await;
        assert_eq!(m["type"], kind, "expected {kind}, got {m}");
        m
    }

    /// Subscribes and waits for its `subscribed`, returning everything
    /// received before it (snapshot chunks and history events) and the
    /// `subscribed`. Another subscription's `subscribed` (a user's personal
    /// channel, announced after authentication) is skipped.
    pub async fn subscribe(&mut self, request: Value) -> (Vec<Value>, Value) {
        let mut request = request;
        request["type"] = json!("subscribe");
        let id = request["id"].clone();
        self.send(request).await;
        let mut before = Vec::new();
        loop {
            let m = self.recv().await;
            match m["type"].as_str() {
                Some("subscribed") if m["id"] == id => return (before, m),
                Some("subscribed") => {}
                Some("error") => panic!("subscribe failed: {m}"),
                _ => before.push(m),
            }
        }
    }

    /// Reads a slow consumer's events up to its close frame: their offsets and
    /// the `resume_from` of the close reason (code 4000, `slow_consumer`).
    pub async fn read_until_cut(&mut self) -> (Vec<u64>, u64) {
        let mut got = Vec::new();
        loop {
            let frame = tokio::time::timeout(TIMEOUT, self.stream.next())
                .await
                .expect("a frame in time")
                .expect("a close frame before the end")
                .expect("no socket error");
            match frame {
                Message::Text(text) => {
                    let event: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(event["type"], "event", "{event}");
                    got.push(event["offset"].as_u64().unwrap());
                }
                Message::Close(Some(frame)) => {
                    assert_eq!(u16::from(frame.code), 4000, "{frame:?}");
                    let reason: Value = serde_json::from_str(&frame.reason).unwrap();
                    assert_eq!(reason["code"], "slow_consumer");
                    return (got, reason["resume_from"].as_u64().unwrap());
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    /// Asserts nothing arrives for `wait`.
    pub async fn quiet(&mut self, wait: Duration) {
        if let Ok(Some(Ok(Message::Text(text)))) =
            tokio::time::timeout(wait, self.stream.next()).await
        {
            panic!("unexpected message {text}");
        }
    }
}

// ---------------------------------------------------------------------------
// Helpers for the real-time tests (tests/ws.rs, tests/sse.rs)
// ---------------------------------------------------------------------------

impl Server {
    /// The log's epoch as it appears on the wire (16 hex digits).
    pub fn epoch(&self) -> String {
        self.herald.store().epoch().to_string()
    }

    /// An epoch that is not the server's, as on the wire.
    pub fn other_epoch(&self) -> String {
        format!("{:016x}", self.herald.store().epoch().0 ^ 1)
    }

    /// A raw WebSocket client and the `welcome` it got.
    pub async fn ws_welcome(&self) -> (Ws, Value) {
        let (stream, _) = tokio_tungstenite::connect_async(self.ws_url())
            .await
            .unwrap();
        let mut ws = Ws { stream };
        let welcome = ws.expect("welcome").await;
        (ws, welcome)
    }

    /// A WebSocket upgrade the server may refuse: the client past its
    /// `welcome`, or the refusal's HTTP status and JSON body.
    pub async fn try_ws(&self) -> Result<Ws, (u16, Value)> {
        self.ws_with(&[]).await
    }

    /// A WebSocket opened with these request headers (`Authorization`,
    /// `Origin`, `Cookie`...), past its `welcome`; or the refusal's status
    /// and JSON body.
    pub async fn ws_with(&self, headers: &[(&str, &str)]) -> Result<Ws, (u16, Value)> {
        use tokio_tungstenite::tungstenite::Error;
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let mut request = self.ws_url().into_client_request().unwrap();
        for (name, value) in headers {
            request.headers_mut().insert(
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(name.as_bytes())
                    .unwrap(),
                value.parse().unwrap(),
            );
        }
        match tokio_tungstenite::connect_async(request).await {
            Ok((stream, _)) => {
                let mut ws = Ws { stream };
                ws.expect("welcome").await;
                Ok(ws)
            }
            Err(Error::Http(response)) => {
                let body = response.body().as_deref().unwrap_or_default();
                let json = serde_json::from_slice(body).unwrap_or(Value::Null);
                Err((response.status().as_u16(), json))
            }
            Err(e) => panic!("upgrade failed: {e}"),
        }
    }

    /// [`Server::call`] as the holder of `token` (`Authorization: Bearer`):
    /// the status, the JSON answer and the `Retry-After` header.
    pub async fn call_as(
        &self,
        token: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value, Option<String>) {
        self.send(Some(token), method, path, body).await
    }

    /// Any request, with an optional JSON body: the status and the JSON
    /// answer (`Null` when the body is not JSON).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let (status, json, _) = self.send(None, method, path, body).await;
        (status, json)
    }

    /// A GET's body as text (NDJSON replays), as the holder of `token`.
    pub async fn text(&self, token: Option<&str>, path: &str) -> String {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        tokio::time::timeout(TIMEOUT, async { request.send().await?.text().await })
            .await
            .expect("an answer in time")
            .unwrap()
    }

    async fn send(
        &self,
        token: Option<&str>,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value, Option<String>) {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let reply = tokio::time::timeout(TIMEOUT, request.send())
            .await
            .expect("an answer in time")
            .unwrap();
        let status = reply.status().as_u16();
        let retry = reply
            .headers()
            .get("retry-after")
            .map(|v| v.to_str().unwrap().to_owned());
        let bytes = reply.bytes().await.unwrap();
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            retry,
        )
    }

    /// A write that must succeed; its acknowledgement.
    pub async fn write(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> Value {
        let (status, ack) = self.call(method.clone(), path, body).await;
        assert!(
            (200..300).contains(&status),
            "{method} {path}: {status} {ack}"
        );
        ack
    }

    /// Publishes over REST; the answer `{offset, receivers}`.
    pub async fn publish(&self, channel: &str, data: Value) -> Value {
        let path = format!("/v1/channels/{channel}/messages");
        self.write(reqwest::Method::POST, &path, Some(&json!({ "data": data })))
            .await
    }

    /// Opens an SSE stream at `path` (with its query), sending `headers`:
    /// the stream, or the refusal's HTTP status and JSON body.
    pub async fn sse(&self, path: &str, headers: &[(&str, &str)]) -> Result<Sse, (u16, Value)> {
        let mut request = self.http.get(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let reply = tokio::time::timeout(TIMEOUT, request.send())
            .await
            .expect("an answer in time")
            .unwrap();
        let status = reply.status().as_u16();
        if status != 200 {
            let bytes = reply.bytes().await.unwrap();
            return Err((
                status,
                serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            ));
        }
        let content_type = reply.headers().get("content-type").cloned();
        let cache_control = reply.headers().get("cache-control").cloned();
        assert_eq!(content_type.unwrap(), "text/event-stream");
        assert_eq!(cache_control.unwrap(), "no-cache");
        Ok(Sse {
            body: Box::pin(reply.bytes_stream()),
            buffer: Vec::new(),
            raw: Vec::new(),
        })
    }
}

impl Ws {
    /// Sends a text frame as is.
    pub async fn send_text(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.unwrap();
    }

    /// `ping {ref}` must be answered by exactly `pong {ref}`.
    pub async fn ping(&mut self, reference: &str) {
        self.send(json!({"type": "ping", "ref": reference})).await;
        assert_eq!(self.recv().await, json!({"type": "pong", "ref": reference}));
    }

    /// The next message, which must be an `error` with `code`.
    pub async fn expect_error(&mut self, code: &str) -> Value {
        let m = self.expect("error").await;
        assert_eq!(m["code"], code, "{m}");
        assert!(m["message"].as_str().is_some_and(|s| !s.is_empty()), "{m}");
        m
    }

    /// Reads until the server's close frame: its code and reason. Fails on a
    /// text message or a connection dropped without a close frame.
    pub async fn expect_close(&mut self) -> (u16, String) {
        loop {
            match self.frame("a close frame").await {
                Message::Close(Some(frame)) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    }

    /// Reads `error` messages of `code` until the close frame: the number
    /// of errors, and the close code.
    pub async fn errors_until_close(&mut self, code: &str) -> (usize, u16) {
        let mut errors = 0;
        loop {
            match self.frame("a close frame").await {
                Message::Close(Some(frame)) => return (errors, u16::from(frame.code)),
                Message::Text(text) => {
                    let m: Value = serde_json::from_str(&text).unwrap();
                    assert_eq!(m["code"], code, "{m}");
                    errors += 1;
                }
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("expected errors then a close frame, got {other:?}"),
            }
        }
    }

    /// Keeps reading (so pings are answered) for `wait`; fails if a text
    /// message or a close frame arrives.
    pub async fn idle(&mut self, wait: Duration) {
        let deadline = tokio::time::Instant::now() + wait;
        while let Ok(next) = tokio::time::timeout_at(deadline, self.stream.next()).await {
            match next {
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                other => panic!("unexpected {other:?} while idle"),
            }
        }
    }
}

/// A raw SSE stream, parsed block by block (a block ends at a blank line).
pub struct Sse {
    body: std::pin::Pin<Box<dyn futures_util::Stream<Item = reqwest::Result<bytes::Bytes>> + Send>>,
    buffer: Vec<u8>,
    /// Every byte received so far.
    pub raw: Vec<u8>,
}

/// One SSE block: its fields in order and its comment lines.
#[derive(Debug, Clone, PartialEq)]
pub struct SseBlock {
    pub fields: Vec<(String, String)>,
    pub comments: Vec<String>,
    /// The block's bytes, without the blank line ending it.
    pub raw: String,
}

impl SseBlock {
    fn field(&self, name: &str) -> Option<&str> {
        let mut values = self.fields.iter().filter(|(n, _)| n == name);
        let value = values.next().map(|(_, v)| v.as_str());
        assert!(
            values.next().is_none(),
            "field {name} repeated: {}",
            self.raw
        );
        value
    }

    /// The `event:` name (`None`: an unnamed event).
    pub fn event(&self) -> Option<&str> {
        self.field("event")
    }

    /// The `id:`.
    pub fn id(&self) -> Option<&str> {
        self.field("id")
    }

    /// The `data:` line, parsed as JSON.
    pub fn json(&self) -> Value {
        let data = self
            .field("data")
            .unwrap_or_else(|| panic!("no data: {}", self.raw));
        serde_json::from_str(data).unwrap_or_else(|e| panic!("data is not JSON ({e}): {data}"))
    }
}

impl Sse {
    /// The next block, comments included.
    pub async fn block(&mut self) -> SseBlock {
        loop {
            if let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
                let block: Vec<u8> = self.buffer.drain(..end + 2).take(end).collect();
                let raw = String::from_utf8(block).expect("SSE is UTF-8");
                let mut parsed = SseBlock {
                    fields: Vec::new(),
                    comments: Vec::new(),
                    raw: raw.clone(),
                };
                for line in raw.split('\n') {
                    if let Some(comment) = line.strip_prefix(':') {
                        parsed.comments.push(comment.trim_start().to_owned());
                        continue;
                    }
                    let (name, value) = line.split_once(':').unwrap_or((line, ""));
                    let value = value.strip_prefix(' ').unwrap_or(value);
                    parsed.fields.push((name.to_owned(), value.to_owned()));
                }
                return parsed;
            }
            let chunk = tokio::time::timeout(TIMEOUT, self.body.next())
                .await
                .expect("SSE data in time")
                .expect("the SSE stream is open")
                .expect("no SSE read error");
            self.raw.extend_from_slice(&chunk);
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// The next block that is not only comments (heartbeats are skipped).
    pub async fn next(&mut self) -> SseBlock {
        loop {
            let block = self.block().await;
            if !block.fields.is_empty() {
                return block;
            }
        }
    }

    /// The next block, which must be an event named `name` (`None`: an
    /// unnamed event); the block and its data.
    pub async fn expect(&mut self, name: Option<&str>) -> (SseBlock, Value) {
        let block = self.next().await;
        assert_eq!(block.event(), name, "{}", block.raw);
        let data = block.json();
        (block, data)
    }

    /// Asserts nothing but comments arrives for `wait`.
    pub async fn quiet(&mut self, wait: Duration) {
        if let Ok(block) = tokio::time::timeout(wait, self.next()).await {
            panic!("unexpected SSE block {}", block.raw);
        }
    }

    /// Waits for the server to end the stream; what it sent meanwhile must
    /// be comments only.
    pub async fn expect_end(&mut self) {
        loop {
            let chunk = tokio::time::timeout(TIMEOUT, self.body.next())
                .await
                .expect("the SSE stream ends in time");
            match chunk {
                None => break,
                Some(Ok(bytes)) => {
                    self.raw.extend_from_slice(&bytes);
                    self.buffer.extend_from_slice(&bytes);
                }
                Some(Err(e)) => panic!("SSE read error instead of a clean end: {e}"),
            }
        }
        let rest = String::from_utf8_lossy(&self.buffer).to_string();
        assert!(
            rest.split("\n\n")
                .all(|b| b.is_empty() || b.starts_with(':')),
            "unexpected data before the end: {rest}"
        );
    }
}
