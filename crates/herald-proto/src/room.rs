//! Rooms and presence on the wire: a room member ([`Member`]), why a
//! membership ended ([`LeaveReason`]), the bodies of `join` and `broadcast`.
//!
//! A room is a channel that connections join: members receive its messages,
//! appear in its presence (when the channel's namespace keeps presence) and
//! may publish to it (when its policy lets members publish). See
//! `docs/channels.md`.

use crate::message::StartFrom;
use crate::position::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One member of a room, as presence lists and `member_*` events show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The member's client: the id of its connection (the `connection` of
    /// its `welcome`). Unique in the room.
    pub client: String,
    /// The user behind it: the `sub` of its token, `key:<id>` for an API
    /// key, absent for an anonymous client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// What the member chose to show (`presence` of `join`,
    /// `update_presence`); `null` when nothing.
    #[serde(default)]
    pub data: Value,
    /// When it joined (Unix ms).
    pub joined_at: Timestamp,
    /// When its data last changed (Unix ms).
    pub updated_at: Timestamp,
}

/// Why a membership ended: the `reason` of `left` and `member_left`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// The member left (`leave`).
    Left,
    /// A moderator or the server removed it.
    Removed,
    /// Its connection was not heard from within the presence TTL.
    Expired,
    /// Its connection closed.
    Disconnected,
    /// The room was deleted.
    RoomDeleted,
}

impl LeaveReason {
    /// The wire name.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            LeaveReason::Left => "left",
            LeaveReason::Removed => "removed",
            LeaveReason::Expired => "expired",
            LeaveReason::Disconnected => "disconnected",
            LeaveReason::RoomDeleted => "room_deleted",
        }
    }
}

/// The body of a `join` message.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Join {
    /// The room: a channel name.
    pub room: String,
    /// What to show in the room's presence (any JSON; at most 4 KiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<Value>,
    /// Deliver the room's messages after this position first (rooms whose
    /// namespace keeps history); default: from now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<StartFrom>,
    /// Echoed in the `joined` answer (or the `error`).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// The body of a `broadcast` message: `data` to the members and subscribers
/// of several rooms (each connection gets one copy), or to every connection.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Broadcast {
    /// The rooms; give this or `everyone`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rooms: Option<Vec<String>>,
    /// Every connection of the server.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub everyone: bool,
    /// The payload, any JSON value.
    pub data: Value,
    /// Echoed in the `broadcast_sent` answer (or the `error`).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn members_omit_an_unknown_user_and_reasons_round_trip() {
        let m = Member {
            client: "7".into(),
            user: None,
            data: json!({"name": "Ann"}),
            joined_at: Timestamp(1),
            updated_at: Timestamp(2),
        };
        let v = serde_json::to_value(&m).unwrap();
        assert!(v.get("user").is_none());
        assert_eq!(serde_json::from_value::<Member>(v).unwrap(), m);
        for r in [
            LeaveReason::Left,
            LeaveReason::Removed,
            LeaveReason::Expired,
            LeaveReason::Disconnected,
            LeaveReason::RoomDeleted,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), json!(r.as_str()), "{r:?}");
        }
    }
}
