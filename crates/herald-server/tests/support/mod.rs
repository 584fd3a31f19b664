//! A real server for real-time tests: `herald_server::run` on an ephemeral
//! port over a fresh data directory, plus a raw WebSocket client that reads
//! the protocol message by message.
#![allow(dead_code, unreachable_pub)]

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

    /// A server over `dir`, on `addr` if given (to restart on the same port).
    pub async fn start_in(
        dir: TempDir,
        store: StoreConfig,
        realtime: RealtimeConfig,
        addr: Option<SocketAddr>,
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
        let herald = Herald::open_with(dir.path(), store).unwrap();
        let (shutdown, signal) = oneshot::channel::<()>();
        let task = tokio::spawn(herald_server::run(
            listener,
            herald.clone(),
            HttpConfig::default(),
            realtime,
            async move {
                let _ = signal.await;
            },
        ));
        Server {
            addr,
            base: format!("http://{addr}"),
            herald,
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

    /// The next text message, parsed (pings are skipped).
    pub async fn recv(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(TIMEOUT, self.stream.next())
                .await
                .expect("a message in time")
                .expect("the connection is open")
                .expect("no socket error");
            match message {
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

    /// Subscribes and waits for `subscribed`, returning everything received
    /// before it (snapshot chunks and history events) and the `subscribed`.
    pub async fn subscribe(&mut self, request: Value) -> (Vec<Value>, Value) {
        let mut request = request;
        request["type"] = json!("subscribe");
        self.send(request).await;
        let mut before = Vec::new();
        loop {
            let m = self.recv().await;
            match m["type"].as_str() {
                Some("subscribed") => return (before, m),
                Some("error") => panic!("subscribe failed: {m}"),
                _ => before.push(m),
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
