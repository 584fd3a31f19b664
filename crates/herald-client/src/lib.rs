//! A typed async client for Herald's WebSocket protocol.
//!
//! [`Client::connect`] opens the connection and keeps it open: when it is
//! lost (server restart, network failure, slow-consumer close, a server that
//! stops answering) the client reconnects with jittered exponential backoff
//! and resumes every subscription exactly where it stopped, with no gap and
//! no duplicate.
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use herald_client::{Client, ClientConfig, SubscribeRequest, SubscriptionItem};
//! use serde_json::json;
//!
//! # async fn demo() -> Result<(), herald_client::ClientError> {
//! let client = Client::connect("http://127.0.0.1:7070", ClientConfig::default()).await?;
//!
//! let mut chat = client.subscribe(SubscribeRequest::channel("chat:lobby")).await?;
//! let published = client.publish("chat:lobby", json!({"text": "hello"})).await?;
//! println!("published at {:?}", published.offset);
//!
//! while let Some(item) = chat.next().await {
//!     match item? {
//!         SubscriptionItem::Event(event) => println!("{} {:?}", event.offset, event.body),
//!         SubscriptionItem::Lagged { resume_from, until } => {
//!             println!("missed ({resume_from}, {until})");
//!         }
//!         _ => {}
//!     }
//!     // Save this to continue later with `SubscribeRequest::resume_from`.
//!     let _position = chat.position();
//! }
//! client.close().await;
//! # Ok(())
//! # }
//! ```
//!
//! # Delivery
//!
//! Each subscription has its own buffer of
//! [`ClientConfig::subscription_buffer`] items between the connection task
//! and the application. The connection task never waits for the application,
//! so one slow reader does not hold up other subscriptions or the heartbeat;
//! a reader that falls a whole buffer behind gets [`ClientError::Overflow`]
//! (with the position to resume from) and its subscription ends.
//!
//! # Reconnection
//!
//! The client remembers, per subscription, the highest position it has handed
//! to the stream (the `subscribed` offset, each event's offset, the snapshot's
//! offset). On a new connection it sends each subscription again with
//! `from` set to that position's resume token and without snapshot, drops any
//! event at or below it, and yields [`SubscriptionItem::Resumed`] once live.
//! If the server can no longer serve that position, the stream yields the
//! [`ClientError::Server`] error with
//! [`ErrorCode::UnrecoverablePosition`](herald_proto::ErrorCode::UnrecoverablePosition)
//! and ends. Requests (`publish`, `ping`, ...) are never sent twice: one
//! whose answer is lost fails with [`ClientError::ConnectionLost`].
//!
//! Only `ws://` is built in (no TLS dependency); `wss://` URLs fail to connect.
//!
//! # Layout
//! - [`client`](Client): the handle, its requests and the connection status.
//! - `session`: the task that owns the socket, reconnects and routes messages.
//! - `subs` and `requests`: that task's tables of subscriptions and of
//!   requests waiting for an answer.
//! - [`subscription`](Subscription): the application's stream of items.
//! - [`request`](SubscribeRequest): the subscription builder.
//! - `connect`: the URL, the handshake and the `welcome`.
//! - [`config`](ClientConfig) and [`error`](ClientError).

mod client;
mod config;
mod connect;
mod error;
mod request;
mod requests;
mod session;
mod subs;
mod subscription;

pub use client::{Client, ConnectionState, ConnectionStatus, Published};
pub use config::{Backoff, ClientConfig, TokenSource};
pub use connect::ServerInfo;
pub use error::ClientError;
pub use request::SubscribeRequest;
pub use subscription::{Subscription, SubscriptionItem};

/// The wire types, re-exported so applications need not depend on
/// `herald-proto` themselves.
pub use herald_proto as proto;
