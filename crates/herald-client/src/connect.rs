//! Opening one connection: the WebSocket URL, the handshake with its bearer
//! token, and the server's `welcome`.

use crate::config::ClientConfig;
use crate::error::ClientError;
use futures_util::StreamExt;
use herald_proto::{Epoch, Offset, ServerMessage};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::{HeaderValue, header};
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The WebSocket of one connection.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The path of Herald's WebSocket endpoint.
const WS_PATH: &str = "/v1/ws";

/// What the server announced in the `welcome` of the current connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    /// The connection's id (for logs and support).
    pub connection: String,
    /// The log's epoch.
    pub epoch: Epoch,
    /// The log's head when the connection opened.
    pub offset: Offset,
    /// How often the server pings. The client gives up on a connection that
    /// stays silent for two and a half of these.
    pub heartbeat: Duration,
    /// Largest message the server accepts, in bytes.
    pub max_message_bytes: usize,
    /// Most subscriptions one connection may hold.
    pub max_subscriptions: usize,
}

impl ServerInfo {
    /// How long the connection may stay silent before it is taken for dead:
    /// two heartbeats plus half of one for scheduling delays. `None` when the
    /// server does not ping.
    pub(crate) fn silence_limit(&self) -> Option<Duration> {
        (!self.heartbeat.is_zero()).then(|| {
            self.heartbeat
                .saturating_mul(2)
                .saturating_add(self.heartbeat / 2)
        })
    }
}

/// Turns a base URL (`http://host:7070`, `ws://host:7070/`, or a full
/// `.../v1/ws`) into the WebSocket endpoint's URL.
pub(crate) fn ws_url(base: &str) -> Result<String, ClientError> {
    let invalid = |reason| ClientError::InvalidUrl {
        url: base.to_owned(),
        reason,
    };
    let (scheme, rest) = base
        .split_once("://")
        .ok_or_else(|| invalid("missing scheme"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        _ => return Err(invalid("scheme must be http, https, ws or wss")),
    };
    let rest = rest.trim_end_matches('/');
    if rest.is_empty() || rest.starts_with('/') {
        return Err(invalid("missing host"));
    }
    if rest.contains(['?', '#']) {
        return Err(invalid("query strings and fragments are not supported"));
    }
    let path = if rest.ends_with(WS_PATH) { "" } else { WS_PATH };
    Ok(format!("{scheme}://{rest}{path}"))
}

/// Opens a connection and waits for its `welcome`, all within the connect
/// timeout.
pub(crate) async fn open(
    url: &str,
    config: &ClientConfig,
) -> Result<(Socket, ServerInfo), ClientError> {
    tokio::time::timeout(config.connect_timeout, open_inner(url, config))
        .await
        .map_err(|_| ClientError::Timeout(config.connect_timeout))?
}

async fn open_inner(url: &str, config: &ClientConfig) -> Result<(Socket, ServerInfo), ClientError> {
    let connect_error = |source| ClientError::Connect {
        url: url.to_owned(),
        source,
    };
    let mut request = url.into_client_request().map_err(connect_error)?;
    if let Some(source) = &config.token
        && let Some(token) = source.token().await
    {
        let value = HeaderValue::from_str(&format!("Bearer {token}"))
            .map_err(|e| connect_error(tungstenite::Error::HttpFormat(e.into())))?;
        request.headers_mut().insert(header::AUTHORIZATION, value);
    }
    let (mut socket, _response) = tokio_tungstenite::connect_async(request)
        .await
        .map_err(connect_error)?;
    let info = read_welcome(&mut socket).await?;
    Ok((socket, info))
}

/// Reads the first message, which must be `welcome`.
async fn read_welcome(socket: &mut Socket) -> Result<ServerInfo, ClientError> {
    loop {
        let text = match socket.next().await {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Binary(_))) => {
                return Err(ClientError::Protocol("binary frame before welcome".into()));
            }
            Some(Ok(Message::Close(frame))) => {
                let why = frame.map_or_else(String::new, |f| format!(": {} {}", f.code, f.reason));
                return Err(ClientError::Protocol(format!(
                    "connection closed before welcome{why}"
                )));
            }
            Some(Err(e)) => {
                return Err(ClientError::Protocol(format!(
                    "connection failed before welcome: {e}"
                )));
            }
            None => {
                return Err(ClientError::Protocol(
                    "connection ended before welcome".into(),
                ));
            }
        };
        return match serde_json::from_str::<ServerMessage>(&text) {
            Ok(ServerMessage::Welcome {
                connection,
                epoch,
                offset,
                heartbeat_ms,
                max_message_bytes,
                max_subscriptions,
                ..
            }) => Ok(ServerInfo {
                connection,
                epoch,
                offset,
                heartbeat: Duration::from_millis(heartbeat_ms),
                max_message_bytes,
                max_subscriptions,
            }),
            Ok(ServerMessage::Error {
                code,
                message,
                earliest,
                ..
            }) => Err(ClientError::Server {
                code,
                message,
                earliest,
            }),
            Ok(other) => Err(ClientError::Protocol(format!(
                "expected welcome, got {other:?}"
            ))),
            Err(e) => Err(ClientError::Protocol(format!("unreadable welcome: {e}"))),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_become_the_ws_endpoint() {
        for (base, want) in [
            ("http://127.0.0.1:7070", "ws://127.0.0.1:7070/v1/ws"),
            ("http://127.0.0.1:7070/", "ws://127.0.0.1:7070/v1/ws"),
            ("https://example.com", "wss://example.com/v1/ws"),
            ("ws://h:1/v1/ws", "ws://h:1/v1/ws"),
            ("WSS://h/prefix/", "wss://h/prefix/v1/ws"),
        ] {
            assert_eq!(ws_url(base).unwrap(), want, "{base}");
        }
    }

    #[test]
    fn bad_base_urls_are_rejected() {
        for bad in [
            "127.0.0.1:7070",
            "ftp://h",
            "http://",
            "http:///x",
            "http://h/?a=1",
        ] {
            assert!(
                matches!(ws_url(bad), Err(ClientError::InvalidUrl { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn silence_limit_is_two_and_a_half_heartbeats() {
        let mut info = ServerInfo {
            connection: "c".into(),
            epoch: Epoch(1),
            offset: Offset(0),
            heartbeat: Duration::from_millis(100),
            max_message_bytes: 1,
            max_subscriptions: 1,
        };
        assert_eq!(info.silence_limit(), Some(Duration::from_millis(250)));
        info.heartbeat = Duration::ZERO;
        assert_eq!(info.silence_limit(), None);
    }
}
