//! A scripted stand-in for the Herald server: each test accepts connections
//! on port 0 and plays the server's side of the protocol by hand, so it can
//! drop, close or go silent exactly when the test wants.

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// The epoch the fake server announces, in its wire form.
pub(crate) const EPOCH: &str = "00000000000000ab";

/// How long the fake waits for the client before the test fails.
const PATIENCE: Duration = Duration::from_secs(5);

pub(crate) struct FakeServer {
    listener: TcpListener,
    /// The base URL to give the client.
    pub(crate) url: String,
}

pub(crate) struct Conn {
    ws: WebSocketStream<TcpStream>,
    /// The `Authorization` header of the handshake.
    pub(crate) authorization: Option<String>,
}

impl FakeServer {
    pub(crate) async fn start() -> FakeServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        FakeServer { listener, url }
    }

    /// Accepts the next connection and sends `welcome` with this heartbeat.
    pub(crate) async fn accept(&self, heartbeat_ms: u64) -> Conn {
        let (stream, _) = tokio::time::timeout(PATIENCE, self.listener.accept())
            .await
            .expect("the client did not connect")
            .unwrap();
        let mut authorization = None;
        // The error type is tungstenite's `ErrorResponse`; its size is not ours to pick.
        #[allow(clippy::result_large_err)]
        let callback = |request: &Request, response: Response| {
            assert_eq!(request.uri().path(), "/v1/ws");
            authorization = request
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned());
            Ok(response)
        };
        let ws = tokio_tungstenite::accept_hdr_async(stream, callback)
            .await
            .unwrap();
        let mut conn = Conn { ws, authorization };
        conn.send(json!({
            "type": "welcome", "connection": "c1", "epoch": EPOCH, "offset": 0,
            "heartbeat_ms": heartbeat_ms, "max_message_bytes": 65_536, "max_subscriptions": 100
        }))
        .await;
        conn
    }

    /// Whether a client connects within `wait`.
    pub(crate) async fn connects_within(&self, wait: Duration) -> bool {
        tokio::time::timeout(wait, self.listener.accept())
            .await
            .is_ok()
    }
}

impl Conn {
    pub(crate) async fn send(&mut self, message: Value) {
        self.ws
            .send(Message::text(message.to_string()))
            .await
            .unwrap();
    }

    /// The next message from the client, skipping control frames.
    pub(crate) async fn recv(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("the client sent nothing")
                .expect("the client hung up")
                .unwrap();
            match frame {
                Message::Text(text) => return serde_json::from_str(&text).unwrap(),
                Message::Ping(_) | Message::Pong(_) => {}
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next frame from the client, whatever it is (`None` at the end).
    pub(crate) async fn recv_frame(&mut self) -> Option<Message> {
        tokio::time::timeout(PATIENCE, self.ws.next())
            .await
            .expect("the client sent nothing")
            .map(Result::unwrap)
    }

    /// Reads a `subscribe` and answers it with `subscribed` at `offset`.
    pub(crate) async fn accept_subscription(&mut self, offset: u64) -> Value {
        let subscribe = self.recv().await;
        assert_eq!(subscribe["type"], "subscribe", "{subscribe}");
        let id = subscribe["id"].clone();
        self.send(json!({"type": "subscribed", "id": id, "offset": offset}))
            .await;
        subscribe
    }

    pub(crate) async fn ping(&mut self) {
        self.ws.send(Message::Ping(vec![1].into())).await.unwrap();
    }

    /// Closes with a close frame.
    pub(crate) async fn close(mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = self.ws.close(Some(frame)).await;
    }
}

/// A channel message event for the subscriptions `subs`.
pub(crate) fn event(subs: &[&str], offset: u64) -> Value {
    json!({
        "type": "event", "subs": subs, "offset": offset, "epoch": EPOCH, "ts": 1,
        "topic": "chat", "op": "publish", "channel": "chat", "data": offset
    })
}
