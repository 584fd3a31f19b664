//! WebSocket messages: what clients send ([`ClientMessage`]) and what the
//! server answers ([`ServerMessage`]), plus the close codes it ends with.
//!
//! Every message is a JSON object with a `type` field. The full protocol,
//! with examples, is in `docs/protocol.md`.

use crate::error::ErrorCode;
use crate::event::{Event, Op};
use crate::position::{Epoch, Offset, ResumeToken, Timestamp};
use crate::room::{Broadcast, Join, LeaveReason, Member};
use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A message from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// Start a subscription.
    Subscribe(Subscribe),
    /// End a subscription.
    Unsubscribe {
        /// The subscription's id.
        id: String,
    },
    /// Stop delivering a subscription's events until `resume`.
    Pause {
        /// The subscription's id.
        id: String,
    },
    /// Deliver a paused subscription's events again: first every matching
    /// event it missed while paused (unless `skip`), then live ones.
    Resume {
        /// The subscription's id.
        id: String,
        /// Skip what was missed and continue from now.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        skip: bool,
    },
    /// Replace a live subscription's operations, filter and changed-fields
    /// restriction, atomically at one offset.
    Update(Update),
    /// Publish a message to a channel.
    Publish {
        /// The channel.
        channel: String,
        /// The payload, any JSON value.
        data: Value,
        /// Echoed in the `published` answer (or the `error`).
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Ask for a `pong`.
    Ping {
        /// Echoed in the `pong`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Ask for the connection's subscriptions.
    ListSubscriptions {
        /// Echoed in the `subscriptions` answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Ask for the server's statistics (as `GET /v1/stats`).
    Stats {
        /// Echoed in the `stats` answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Authenticate (when the upgrade carried no credentials), or present
    /// a fresh token for the same subject before the current one expires.
    /// Answered by `authenticated`.
    Auth {
        /// A JWT or an API key.
        token: String,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Join a room: receive its messages, appear in its presence. Answered
    /// by `joined`.
    Join(Join),
    /// Leave a room. Answered by `left`.
    Leave {
        /// The room.
        room: String,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Ask who is in a room, a page at a time. Answered by `presence`.
    Presence {
        /// The room.
        room: String,
        /// Members after this client id (a previous answer's `next`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        after: Option<String>,
        /// Most members in the answer (1 to 1000, the default).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        limit: Option<usize>,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Replace what this connection shows in a room's presence. Answered by
    /// `presence_updated`.
    UpdatePresence {
        /// The room (joined).
        room: String,
        /// The new data (any JSON; at most 4 KiB).
        data: Value,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Send `data` to the connections in some rooms, or to all. Answered by
    /// `broadcast_sent`.
    Broadcast(Broadcast),
    /// Remove a member from a room (moderators). Answered by
    /// `member_removed`.
    RemoveMember {
        /// The room.
        room: String,
        /// The member's client id.
        client: String,
        /// Echoed in the answer.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
}

impl ClientMessage {
    /// Its `ref`, echoed in its answer or error (`None`: it has none, or
    /// cannot carry one).
    #[must_use]
    pub fn reference(&self) -> Option<&str> {
        match self {
            ClientMessage::Publish { reference, .. }
            | ClientMessage::Ping { reference }
            | ClientMessage::ListSubscriptions { reference }
            | ClientMessage::Stats { reference }
            | ClientMessage::Auth { reference, .. }
            | ClientMessage::Leave { reference, .. }
            | ClientMessage::Presence { reference, .. }
            | ClientMessage::UpdatePresence { reference, .. }
            | ClientMessage::RemoveMember { reference, .. }
            | ClientMessage::Join(Join { reference, .. })
            | ClientMessage::Broadcast(Broadcast { reference, .. }) => reference.as_deref(),
            ClientMessage::Subscribe(_)
            | ClientMessage::Unsubscribe { .. }
            | ClientMessage::Pause { .. }
            | ClientMessage::Resume { .. }
            | ClientMessage::Update(_) => None,
        }
    }
}

/// The body of a `subscribe` message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscribe {
    /// Chosen by the client, unique on its connection; events name it in `subs`.
    pub id: String,
    /// A table name, or `"*"` for every table. Exactly one of `table` and
    /// `channel` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// A channel name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channel: Option<String>,
    /// Only these operations (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<Vec<Op>>,
    /// A MongoDB-style filter on the document (or on a message's `data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    /// An SQL `WHERE` clause (with `filter` too, both must match).
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_clause: Option<String>,
    /// Values for `$1`, `$2`, ... in `where`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<Value>>,
    /// Updates are delivered only when one of these (dotted) fields changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    /// Where to start (default: now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<StartFrom>,
    /// Send the matching documents first (tables only).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub snapshot: bool,
    /// What to do when this connection falls behind (default: close).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_lag: Option<LagPolicy>,
}

/// The body of an `update` message: the subscription's new selection.
/// Fields left out select everything (as in `subscribe`). The selection
/// fields are spelled out here and in [`Subscribe`] rather than shared
/// through `#[serde(flatten)]`, which cannot be combined with
/// `deny_unknown_fields` (a misspelt field must stay an error).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Update {
    /// The subscription's id.
    pub id: String,
    /// Only these operations (default: all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<Vec<Op>>,
    /// A MongoDB-style filter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    /// An SQL `WHERE` clause.
    #[serde(default, rename = "where", skip_serializing_if = "Option::is_none")]
    pub where_clause: Option<String>,
    /// Values for `$1`, `$2`, ... in `where`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<Vec<Value>>,
    /// Updates only when one of these (dotted) fields changed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
}

/// Where a subscription starts.
///
/// On the wire: `"now"`, an offset (`42`, meaning "after offset 42"), a
/// resume token (`"00ab…:42"`, checked against the server's epoch), or
/// `{"ts": <unix ms>}` for every event appended at or after that time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartFrom {
    /// Only events appended from now on.
    Now,
    /// Every event after this offset.
    After(Offset),
    /// Every event after this position, which must be of the server's epoch.
    Token(ResumeToken),
    /// Every event appended at or after this time.
    Time(Timestamp),
}

impl Serialize for StartFrom {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            StartFrom::Now => s.serialize_str("now"),
            StartFrom::After(o) => s.serialize_u64(o.0),
            StartFrom::Token(t) => s.collect_str(t),
            StartFrom::Time(ts) => {
                use serde::ser::SerializeMap;
                let mut m = s.serialize_map(Some(1))?;
                m.serialize_entry("ts", &ts.0)?;
                m.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for StartFrom {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Offset(u64),
            Text(String),
            Time { ts: u64 },
        }
        const EXPECTED: &str =
            r#""now", an offset, a resume token "epoch:offset" or {"ts": unix_ms}"#;
        match Raw::deserialize(d)
            .map_err(|_| de::Error::custom(format!("`from` must be {EXPECTED}")))?
        {
            Raw::Offset(o) => Ok(StartFrom::After(Offset(o))),
            Raw::Text(t) if t == "now" => Ok(StartFrom::Now),
            Raw::Text(t) => t
                .parse::<ResumeToken>()
                .map(StartFrom::Token)
                .map_err(|e| de::Error::custom(format!("`from`: {e}; expected {EXPECTED}"))),
            Raw::Time { ts } => Ok(StartFrom::Time(Timestamp(ts))),
        }
    }
}

/// What happens to a subscription whose connection cannot keep up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LagPolicy {
    /// Close the connection with [`CloseCode::SlowConsumer`] and the offset to
    /// resume from.
    #[default]
    Close,
    /// Drop this subscription's events until the connection has room, then
    /// send `lagged` with the offset to replay from.
    Skip,
}

/// A message from the server.
///
/// `event` messages are built without this type (the envelope is serialized
/// once and shared); [`ServerMessage::Event`] exists so clients can parse them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// First message on every connection.
    Welcome {
        /// The connection's id (for logs and support).
        connection: String,
        /// The log's epoch.
        epoch: Epoch,
        /// The log's head when the connection opened.
        offset: Offset,
        /// How often the server pings; answer within two intervals.
        heartbeat_ms: u64,
        /// Largest message the server accepts, in bytes.
        max_message_bytes: usize,
        /// Most subscriptions one connection may hold.
        max_subscriptions: usize,
        /// The user's personal channel (`user:<sub>`), to which the
        /// connection is subscribed with that id, without a `subscribed`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        personal_channel: Option<String>,
    },
    /// A subscription is live: every matching event after `offset` follows.
    Subscribed {
        /// The subscription.
        id: String,
        /// Events up to here were sent as history (or are before `now`).
        offset: Offset,
    },
    /// One chunk of a subscription's initial documents.
    Snapshot {
        /// The subscription.
        id: String,
        /// Documents as stored (each with its `id`), in id order.
        docs: Vec<Value>,
        /// This chunk's number, from 1.
        chunk: u32,
        /// How many chunks the snapshot has (at least 1).
        chunks: u32,
        /// The documents are exactly the state after this offset.
        offset: Offset,
    },
    /// A change or message, for the subscriptions named in `subs`.
    Event {
        /// The connection's subscriptions this event matches.
        subs: Vec<String>,
        /// The envelope.
        #[serde(flatten)]
        event: Event,
    },
    /// Events of a subscription were skipped (`on_lag: "skip"`).
    Lagged {
        /// The subscription.
        id: String,
        /// Replay after this offset to get what was skipped.
        resume_from: Offset,
        /// The first offset delivered again after the gap: events in
        /// `(resume_from, until)` were skipped.
        until: Offset,
    },
    /// A subscription ended.
    Unsubscribed {
        /// The subscription.
        id: String,
    },
    /// A subscription is paused: nothing after `offset` is delivered until
    /// it is resumed.
    Paused {
        /// The subscription.
        id: String,
        /// The last offset routed to it before the pause.
        offset: Offset,
    },
    /// A paused subscription is live again: what it missed up to `offset`
    /// came just before (unless skipped), every matching event after follows.
    Resumed {
        /// The subscription.
        id: String,
        /// Where it is live from.
        offset: Offset,
    },
    /// A subscription's selection was replaced: events up to `offset` were
    /// matched with the old one, every later event with the new one.
    Updated {
        /// The subscription.
        id: String,
        /// The switch point.
        offset: Offset,
    },
    /// A `publish` was appended (or, on a channel without history, sent).
    Published {
        /// The `ref` of the `publish`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The message's offset; absent on a channel without history, whose
        /// messages are not in the log.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        offset: Option<Offset>,
        /// Subscriptions it was routed to on this server.
        receivers: u64,
    },
    /// The answer to `ping`.
    Pong {
        /// The `ref` of the `ping`.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// The answer to `list_subscriptions`.
    Subscriptions {
        /// The `ref` of the request.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// Every subscription of the connection.
        subscriptions: Vec<SubscriptionInfo>,
    },
    /// The answer to `stats`: the object `GET /v1/stats` answers.
    Stats {
        /// The `ref` of the request.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The statistics.
        stats: Value,
    },
    /// The answer to `auth`: who the connection now is.
    Authenticated {
        /// The `ref` of the `auth` message.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// `user:<sub>` or `key:<id>`.
        who: String,
        /// When the token expires (unix seconds); the connection is closed
        /// with 4004 then unless a fresh token is sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<u64>,
        /// The user's personal channel (`user:<sub>`), to which the
        /// connection is now subscribed with that id.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        personal_channel: Option<String>,
    },
    /// The connection joined a room: the room's messages after `offset`
    /// follow (those up to it came just before, when `join` had `from`).
    Joined {
        /// The `ref` of the `join` (none when the server joined it).
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The room.
        room: String,
        /// Where its messages are live from.
        offset: Offset,
        /// This connection's client id in the room.
        client: String,
        /// Members of the room, this one included.
        members: usize,
    },
    /// The connection is no longer in a room.
    Left {
        /// The `ref` of the `leave`, if it asked.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The room.
        room: String,
        /// Why.
        reason: LeaveReason,
        /// Who removed it, for `removed`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<String>,
    },
    /// The answer to `presence`: a page of the room's members.
    Presence {
        /// The `ref` of the request.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The room.
        room: String,
        /// Members by client id (at most the request's `limit`, and about
        /// 256 KiB of data).
        members: Vec<Member>,
        /// More follow: ask again with this as `after`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        next: Option<String>,
    },
    /// The answer to `update_presence`.
    PresenceUpdated {
        /// The `ref` of the request.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The room.
        room: String,
        /// This connection's entry now.
        member: Member,
    },
    /// The answer to `broadcast`.
    BroadcastSent {
        /// The `ref` of the request.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// Connections it was queued for on this server.
        receivers: u64,
    },
    /// The answer to `remove_member`.
    MemberRemoved {
        /// The `ref` of the request.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The room.
        room: String,
        /// The removed member's client id.
        client: String,
    },
    /// A message on a channel without history: live only, not in the log,
    /// so it has no offset and is not replayed on resume.
    Message {
        /// The connection's subscriptions (and rooms) it is for.
        subs: Vec<String>,
        /// The channel.
        channel: String,
        /// The payload.
        data: Value,
        /// Who published it, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// When it was sent (Unix ms).
        ts: Timestamp,
    },
    /// A broadcast: live only, one copy per connection.
    Broadcast {
        /// The connection's subscriptions (and rooms) in the targeted rooms;
        /// empty for a broadcast to everyone.
        subs: Vec<String>,
        /// The targeted rooms; absent for a broadcast to everyone.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rooms: Option<Vec<String>>,
        /// The payload.
        data: Value,
        /// Who sent it, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        from: Option<String>,
        /// When it was sent (Unix ms).
        ts: Timestamp,
    },
    /// Someone joined a room whose namespace announces joins and leaves.
    MemberJoined {
        /// The connection's subscriptions (and rooms) on that channel.
        subs: Vec<String>,
        /// The room.
        channel: String,
        /// The new member.
        member: Member,
    },
    /// Someone left a room whose namespace announces joins and leaves.
    MemberLeft {
        /// The connection's subscriptions (and rooms) on that channel.
        subs: Vec<String>,
        /// The room.
        channel: String,
        /// The member as it was.
        member: Member,
        /// Why it left.
        reason: LeaveReason,
    },
    /// A member of a room with presence changed its data.
    MemberUpdated {
        /// The connection's subscriptions (and rooms) on that channel.
        subs: Vec<String>,
        /// The room.
        channel: String,
        /// The member now.
        member: Member,
    },
    /// A request failed; the connection stays open.
    Error {
        /// The `ref` of the failed request, if it had one.
        #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The subscription concerned, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// Machine-readable reason.
        code: ErrorCode,
        /// Human-readable explanation.
        message: String,
        /// For `unrecoverable_position`: the earliest offset available.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        earliest: Option<Offset>,
        /// For `rate_limited`: milliseconds until a retry may succeed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
}

impl ServerMessage {
    /// Its `type` on the wire (also the SSE event name).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        match self {
            ServerMessage::Welcome { .. } => "welcome",
            ServerMessage::Subscribed { .. } => "subscribed",
            ServerMessage::Snapshot { .. } => "snapshot",
            ServerMessage::Event { .. } => "event",
            ServerMessage::Lagged { .. } => "lagged",
            ServerMessage::Unsubscribed { .. } => "unsubscribed",
            ServerMessage::Paused { .. } => "paused",
            ServerMessage::Resumed { .. } => "resumed",
            ServerMessage::Updated { .. } => "updated",
            ServerMessage::Published { .. } => "published",
            ServerMessage::Pong { .. } => "pong",
            ServerMessage::Subscriptions { .. } => "subscriptions",
            ServerMessage::Stats { .. } => "stats",
            ServerMessage::Authenticated { .. } => "authenticated",
            ServerMessage::Joined { .. } => "joined",
            ServerMessage::Left { .. } => "left",
            ServerMessage::Presence { .. } => "presence",
            ServerMessage::PresenceUpdated { .. } => "presence_updated",
            ServerMessage::BroadcastSent { .. } => "broadcast_sent",
            ServerMessage::MemberRemoved { .. } => "member_removed",
            ServerMessage::Message { .. } => "message",
            ServerMessage::Broadcast { .. } => "broadcast",
            ServerMessage::MemberJoined { .. } => "member_joined",
            ServerMessage::MemberLeft { .. } => "member_left",
            ServerMessage::MemberUpdated { .. } => "member_updated",
            ServerMessage::Error { .. } => "error",
        }
    }

    /// The same announcement of a subscription going live (`subscribed`,
    /// `resumed`, `joined`), at `offset`; other messages unchanged.
    #[must_use]
    pub fn live_at(mut self, at: Offset) -> ServerMessage {
        match &mut self {
            ServerMessage::Subscribed { offset, .. }
            | ServerMessage::Resumed { offset, .. }
            | ServerMessage::Joined { offset, .. } => *offset = at,
            _ => {}
        }
        self
    }
}

/// One entry of a `subscriptions` answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SubscriptionInfo {
    /// The subscription's id.
    pub id: String,
    /// Its topic: `table:<name>`, `table:*` or a channel name.
    pub topic: String,
    /// Its operations, if restricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ops: Option<Vec<Op>>,
    /// Its filter as given (`filter` or `where`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    /// Its changed-fields restriction, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed: Option<Vec<String>>,
    /// What happens when its connection falls behind.
    #[serde(default)]
    pub on_lag: LagPolicy,
    /// Whether it is live yet (false while history or a snapshot is sent).
    pub live: bool,
    /// Whether it is paused.
    #[serde(default)]
    pub paused: bool,
    /// When it was created (Unix ms).
    #[serde(default)]
    pub created_at: Timestamp,
    /// Events delivered to it (queued for the connection).
    #[serde(default)]
    pub delivered: u64,
    /// The offset of the last event delivered to it (0: none yet).
    #[serde(default)]
    pub last_offset: Offset,
    /// Whether it is a room membership (its id is the room; end it with
    /// `leave`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub room: bool,
}

/// WebSocket close codes the server uses, beyond the standard ones
/// (1000 normal, 1001 going away, 1009 message too big, 1011 internal).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum CloseCode {
    /// Normal closure.
    Normal = 1000,
    /// The server is shutting down; reconnect elsewhere or later.
    GoingAway = 1001,
    /// The WebSocket protocol itself was violated (invalid frames); the
    /// engine closes with it.
    Protocol = 1002,
    /// A message exceeded the size limit.
    MessageTooBig = 1009,
    /// The server failed.
    Internal = 1011,
    /// The connection fell too far behind its events. The reason is
    /// `{"code":"slow_consumer","resume_from":<offset>}`: every subscription
    /// that was live got every matching event up to `resume_from`.
    SlowConsumer = 4000,
    /// The client did not answer pings in time.
    HeartbeatTimeout = 4001,
    /// The connection did not authenticate in time, or its credentials
    /// were rejected. The reason names the check that failed.
    Unauthorized = 4003,
    /// The connection's token expired and no fresh one was sent (`auth`).
    TokenExpired = 4004,
    /// The client kept exceeding its rate limit.
    PolicyViolation = 1008,
}

impl CloseCode {
    /// The numeric code.
    #[must_use]
    pub fn code(self) -> u16 {
        self as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subscribe_parses_every_start_position() {
        let parse = |from: Value| -> Result<ClientMessage, serde_json::Error> {
            serde_json::from_value(
                json!({"type": "subscribe", "id": "a", "table": "t", "from": from}),
            )
        };
        let start = |m: ClientMessage| match m {
            ClientMessage::Subscribe(s) => s.from.unwrap(),
            other => panic!("{other:?}"),
        };
        assert_eq!(start(parse(json!("now")).unwrap()), StartFrom::Now);
        assert_eq!(start(parse(json!(7)).unwrap()), StartFrom::After(Offset(7)));
        assert_eq!(
            start(parse(json!({"ts": 5})).unwrap()),
            StartFrom::Time(Timestamp(5))
        );
        assert_eq!(
            start(parse(json!("000000000000000a:9")).unwrap()),
            StartFrom::Token(ResumeToken {
                epoch: Epoch(10),
                offset: Offset(9)
            })
        );
        let err = parse(json!("yesterday")).unwrap_err().to_string();
        assert!(err.contains("`from`"), "{err}");
        assert!(parse(json!(-1)).is_err());
    }

    #[test]
    fn start_positions_round_trip() {
        for from in [
            StartFrom::Now,
            StartFrom::After(Offset(3)),
            StartFrom::Time(Timestamp(9)),
            StartFrom::Token(ResumeToken {
                epoch: Epoch(1),
                offset: Offset(2),
            }),
        ] {
            let text = serde_json::to_string(&from).unwrap();
            assert_eq!(serde_json::from_str::<StartFrom>(&text).unwrap(), from);
        }
    }

    #[test]
    fn unknown_fields_and_types_are_rejected() {
        let bad = serde_json::from_value::<ClientMessage>(
            json!({"type": "subscribe", "id": "a", "table": "t", "filtr": {}}),
        );
        assert!(bad.unwrap_err().to_string().contains("filtr"));
        let bad = serde_json::from_value::<ClientMessage>(json!({"type": "dance"}));
        assert!(bad.unwrap_err().to_string().contains("dance"));
    }

    #[test]
    fn kind_is_the_serialized_type() {
        for m in [
            ServerMessage::Pong { reference: None },
            ServerMessage::Unsubscribed { id: "a".into() },
            ServerMessage::Paused {
                id: "a".into(),
                offset: Offset(1),
            },
            ServerMessage::Stats {
                reference: None,
                stats: json!({}),
            },
        ] {
            assert_eq!(serde_json::to_value(&m).unwrap()["type"], m.kind());
        }
    }

    #[test]
    fn server_messages_carry_ref_and_type() {
        let m = ServerMessage::Pong {
            reference: Some("r1".into()),
        };
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"type": "pong", "ref": "r1"})
        );
        let e: ServerMessage = serde_json::from_value(json!({
            "type": "event", "subs": ["a", "b"], "offset": 3, "epoch": "0000000000000001",
            "ts": 1, "topic": "chat:x", "op": "publish", "channel": "chat:x", "data": 1
        }))
        .unwrap();
        match e {
            ServerMessage::Event { subs, event } => {
                assert_eq!(subs, ["a", "b"]);
                assert_eq!(event.offset, Offset(3));
            }
            other => panic!("{other:?}"),
        }
    }
}
