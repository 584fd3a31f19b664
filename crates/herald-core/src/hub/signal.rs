//! Signals: what the hub delivers without it being in the log — messages
//! of channels without history, broadcasts, presence changes.
//!
//! A signal has no offset: it reaches the connections subscribed (or, for
//! a broadcast to everyone, connected) when it is routed, and is never
//! replayed. Each shard routes it like an event — one frame per distinct
//! list of subscription ids, one copy per connection even when several of
//! its subscriptions (or rooms) are targeted — and a connection with no
//! room for it is a slow consumer like any other.

use bytes::Bytes;
use herald_proto::{LeaveReason, Member, Timestamp};
use herald_store::ChannelName;
use serde::Serialize;
use serde_json::Value;

/// A live-only delivery, ready to route.
#[derive(Debug, Clone)]
pub struct Signal {
    pub(super) target: Target,
    /// Its message type on the wire.
    pub(super) kind: &'static str,
    /// Its fields after `type` and `subs`, as a JSON object.
    pub(super) fields: Bytes,
    /// For a channel message: what subscription filters are evaluated on
    /// (its data). `None`: every subscription of the target gets it.
    pub(super) subject: Option<Value>,
    /// A connection that does not get it (the member a presence change is
    /// about: its own answers tell it).
    pub(super) except: Option<u64>,
    /// A presence change: only for subscriptions that may see presence.
    pub(super) presence: bool,
}

/// Who a signal is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// The subscriptions (room memberships included) of these channels.
    Channels(Vec<ChannelName>),
    /// Every connection.
    Everyone,
}

/// How far a signal reached, summed over shards.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reach {
    /// Subscriptions it was queued for.
    pub subscriptions: u64,
    /// Connections it was queued for (once each).
    pub connections: u64,
}

impl std::ops::AddAssign for Reach {
    fn add_assign(&mut self, other: Reach) {
        self.subscriptions += other.subscriptions;
        self.connections += other.connections;
    }
}

/// Which change of a member a presence signal tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemberChange {
    /// `member_joined`.
    Joined,
    /// `member_left`, and why.
    Left(LeaveReason),
    /// `member_updated`.
    Updated,
}

impl Signal {
    /// A message of a channel without history; filters and `ops` of the
    /// channel's subscriptions apply to it as to logged messages.
    #[must_use]
    pub fn message(
        channel: ChannelName,
        data: Value,
        from: Option<String>,
        ts: Timestamp,
    ) -> Signal {
        #[derive(Serialize)]
        struct Fields<'a> {
            channel: &'a str,
            data: &'a Value,
            #[serde(skip_serializing_if = "Option::is_none")]
            from: Option<&'a str>,
            ts: Timestamp,
        }
        let fields = encode(&Fields {
            channel: channel.as_str(),
            data: &data,
            from: from.as_deref(),
            ts,
        });
        Signal {
            target: Target::Channels(vec![channel]),
            kind: "message",
            fields,
            subject: Some(data),
            except: None,
            presence: false,
        }
    }

    /// A broadcast to the connections in `rooms` (`None`: every connection).
    #[must_use]
    pub fn broadcast(
        rooms: Option<Vec<ChannelName>>,
        data: &Value,
        from: Option<String>,
        ts: Timestamp,
    ) -> Signal {
        #[derive(Serialize)]
        struct Fields<'a> {
            #[serde(skip_serializing_if = "Option::is_none")]
            rooms: Option<Vec<&'a str>>,
            data: &'a Value,
            #[serde(skip_serializing_if = "Option::is_none")]
            from: Option<&'a str>,
            ts: Timestamp,
        }
        let fields = encode(&Fields {
            rooms: rooms
                .as_ref()
                .map(|r| r.iter().map(ChannelName::as_str).collect()),
            data,
            from: from.as_deref(),
            ts,
        });
        Signal {
            target: rooms.map_or(Target::Everyone, Target::Channels),
            kind: "broadcast",
            fields,
            subject: None,
            except: None,
            presence: false,
        }
    }

    /// A presence change of `member` (of connection `conn`) in room
    /// `channel`, for every subscription of the channel on other
    /// connections.
    #[must_use]
    pub fn member(
        channel: ChannelName,
        conn: u64,
        member: &Member,
        change: MemberChange,
    ) -> Signal {
        #[derive(Serialize)]
        struct Fields<'a> {
            channel: &'a str,
            member: &'a Member,
            #[serde(skip_serializing_if = "Option::is_none")]
            reason: Option<LeaveReason>,
        }
        let (kind, reason) = match change {
            MemberChange::Joined => ("member_joined", None),
            MemberChange::Left(reason) => ("member_left", Some(reason)),
            MemberChange::Updated => ("member_updated", None),
        };
        let fields = encode(&Fields {
            channel: channel.as_str(),
            member,
            reason,
        });
        Signal {
            target: Target::Channels(vec![channel]),
            kind,
            fields,
            subject: None,
            except: Some(conn),
            presence: true,
        }
    }

    /// Who it is for.
    #[must_use]
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Its message type (`message`, `broadcast`, `member_joined`...).
    #[must_use]
    pub fn kind(&self) -> &'static str {
        self.kind
    }
}

fn encode(fields: &impl Serialize) -> Bytes {
    Bytes::from(serde_json::to_vec(fields).expect("signal fields serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Outgoing;
    use herald_proto::ServerMessage;
    use serde_json::json;

    fn parse(signal: &Signal) -> ServerMessage {
        match Outgoing::signal(signal.kind, br#"["s"]"#, &signal.fields) {
            Outgoing::Message { json, .. } => serde_json::from_slice(&json).unwrap(),
            Outgoing::Event { .. } => unreachable!(),
        }
    }

    #[test]
    fn signals_parse_as_the_server_messages_they_name() {
        let c = ChannelName::new("chat:a").unwrap();
        let m = Signal::message(
            c.clone(),
            json!({"t": 1}),
            Some("user:x".into()),
            Timestamp(9),
        );
        assert_eq!(m.subject, Some(json!({"t": 1})));
        match parse(&m) {
            ServerMessage::Message {
                subs,
                channel,
                data,
                from,
                ts,
            } => {
                assert_eq!((subs, channel.as_str()), (vec!["s".to_owned()], "chat:a"));
                assert_eq!(
                    (data, from.as_deref(), ts),
                    (json!({"t": 1}), Some("user:x"), Timestamp(9))
                );
            }
            other => panic!("{other:?}"),
        }
        let b = Signal::broadcast(None, &json!("hi"), None, Timestamp(1));
        assert_eq!(b.target, Target::Everyone);
        assert!(matches!(
            parse(&b),
            ServerMessage::Broadcast { rooms: None, .. }
        ));
        let member = Member {
            client: "3".into(),
            user: Some("ann".into()),
            data: json!({}),
            joined_at: Timestamp(1),
            updated_at: Timestamp(1),
        };
        let left = Signal::member(c, 3, &member, MemberChange::Left(LeaveReason::Expired));
        assert_eq!(left.except, Some(3));
        match parse(&left) {
            ServerMessage::MemberLeft {
                member: m, reason, ..
            } => {
                assert_eq!((m, reason), (member, LeaveReason::Expired));
            }
            other => panic!("{other:?}"),
        }
    }
}
