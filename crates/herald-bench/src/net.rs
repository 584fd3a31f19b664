//! Client connections from many source addresses: loopback has about 28k
//! ephemeral ports per source address, so big runs spread over
//! 127.0.0.1, 127.0.0.2, ...

use anyhow::Context;
use futures_util::StreamExt;
use serde_json::Value;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Bytes a client reads from its socket at a time. tungstenite zeroes its
/// whole read buffer before every read (128 KiB by default): with
/// thousands of sockets each reading one small frame at a time, that
/// `memset` was half the generator's CPU.
const READ_BUFFER: usize = 4 << 10;

/// A client WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// Source addresses taken in turn: 127.0.0.1 .. 127.0.0.`count`.
#[derive(Debug, Clone, Copy)]
pub struct Sources {
    count: u8,
}

impl Sources {
    pub fn new(count: u8) -> Sources {
        Sources {
            count: count.max(1),
        }
    }

    /// The source address of the `n`th connection.
    pub fn nth(&self, n: usize) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(
            127,
            0,
            0,
            1 + (n % usize::from(self.count)) as u8,
        ))
    }
}

/// Opens a WebSocket to `url` from `source` and reads its `welcome`.
pub async fn connect(url: &str, server: SocketAddr, source: IpAddr) -> anyhow::Result<(Ws, Value)> {
    let socket = TcpSocket::new_v4()?;
    socket
        .bind(SocketAddr::new(source, 0))
        .with_context(|| format!("binding {source}"))?;
    let stream = socket
        .connect(server)
        .await
        .with_context(|| format!("connecting to {server}"))?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER);
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    let welcome = match ws.next().await {
        Some(Ok(Message::Text(text))) => serde_json::from_str(&text)?,
        other => anyhow::bail!("expected a welcome, got {other:?}"),
    };
    Ok((ws, welcome))
}

/// The WebSocket endpoint of the server at `base` (`http://host:port`).
pub fn ws_url(base: &str) -> String {
    format!("{}/v1/ws", base.replacen("http", "ws", 1))
}

/// The socket address in `http://host:port`.
pub fn server_addr(base: &str) -> anyhow::Result<SocketAddr> {
    let host = base.split("://").nth(1).unwrap_or(base);
    host.trim_end_matches('/')
        .parse()
        .with_context(|| format!("{base} is not http://<ip>:<port>"))
}

/// Nanoseconds since the Unix epoch: the clock every
/// process on the machine shares (latency across processes).
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_rotate_and_addresses_parse() {
        let s = Sources::new(3);
        let seen: Vec<String> = (0..4).map(|n| s.nth(n).to_string()).collect();
        assert_eq!(seen, ["127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.1"]);
        assert_eq!(server_addr("http://127.0.0.1:7070").unwrap().port(), 7070);
        assert!(server_addr("http://localhost:7070").is_err());
    }
}
