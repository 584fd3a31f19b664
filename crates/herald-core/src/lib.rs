//! Herald's engine, for embedding: open a data directory, write documents,
//! publish messages, and subscribe to changes in-process.
//!
//! ```
//! # #[tokio::main] async fn main() -> Result<(), herald_core::StoreError> {
//! use futures_util::StreamExt;
//! use herald_core::{Herald, SubscribeOptions, Topic};
//! let dir = tempfile::tempdir().unwrap();
//! let herald = Herald::open(dir.path())?;
//! let mut changes = Box::pin(herald.subscribe(Topic::table("posts")?, SubscribeOptions::default()));
//! herald.insert("posts", serde_json::json!({"id": "p1", "title": "Hello"})).await?;
//! let event = changes.next().await.unwrap()?;
//! assert_eq!(event.topic, "table:posts");
//! herald.close().await;
//! # Ok(()) }
//! ```
//!
//! # Layout
//! - [`herald`]: the [`Herald`] handle: open, table operations, publish, close.
//! - [`subscribe`]: [`Topic`], [`SubscribeOptions`] and the subscription stream
//!   (replay from the log, then live, without gap or duplicate).
//! - [`blocking`]: store reads off the async threads.
//! - [`hub`]: routes committed events to many connections' subscriptions
//!   (filter index per topic, sharded), with snapshots and history.
//! - [`outbox`]: a connection's bounded outbound queue.
//! - [`view`]: what one reader may see of the rows it is sent (hidden
//!   fields, a row rule's hold on an update's previous version).
//! - [`log_limit`]: a cap on operator log lines of one kind per second.

pub mod blocking;
pub mod clock;
pub mod herald;
pub mod hub;
pub mod log_limit;
pub mod namespace;
pub mod outbox;
pub mod rooms;
pub mod routes;
pub mod subscribe;
pub mod view;

pub use blocking::blocking;
pub use herald::{Doc, Herald};
pub use herald_store::{StoreConfig, StoreError};
pub use hub::{
    Announce, ClientDetails, ClientInfo, Connection, EndedMembership, Hub, HubConfig, HubError,
    HubStats, HubTotals, MemberChange, Published, Reach, Selection, Signal, SubscriptionSpec,
    Target, TopicStats, Transport,
};
pub use log_limit::LogLimit;
pub use namespace::{Namespace, Namespaces, PublishPolicy, Standing};
pub use outbox::{End, Outbox, Outgoing, Pushed};
pub use rooms::{JoinRequest, RoomInfo, RoomSettings, Rooms};
pub use routes::{RouteInfo, RouteRule, RouteSet};
pub use subscribe::{SubscribeOptions, Topic};
pub use view::{HiddenFields, View};
