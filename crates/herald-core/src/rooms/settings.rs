//! A room's settings and how they are stored.
//!
//! Rooms of a persistent namespace, and rooms given settings with
//! `PUT /v1/rooms/{room}`, are stored under the store setting
//! `("room", <room name>)` as `{"settings": {...}, "created_at": <ms>}` and
//! loaded again when the server starts (with no members).

use super::HubError;
use herald_proto::{ErrorCode, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The store setting kind of rooms.
pub(super) const KIND: &str = "room";
/// Most moderators one room lists.
const MAX_MODERATORS: usize = 1000;
/// Largest `data` of a room, serialized.
const MAX_DATA_BYTES: usize = 64 << 10;

/// What a room is configured with (`PUT /v1/rooms/{room}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RoomSettings {
    /// Most members, instead of the namespace's `max_members`
    /// (0: no limit). Absent: the namespace's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_members: Option<u32>,
    /// Users (the `sub` of their tokens) who moderate the room: they may
    /// publish where moderators may and remove members.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub moderators: Vec<String>,
    /// Anything the application keeps with the room (a title, a topic).
    #[serde(skip_serializing_if = "Value::is_null")]
    pub data: Value,
}

impl RoomSettings {
    /// Checks the sizes: at most 1000 moderators of 1 to 256 bytes, at most
    /// 64 KiB of data.
    pub fn validate(&self) -> Result<(), HubError> {
        let invalid = |m: String| Err(HubError::new(ErrorCode::InvalidParameter, m));
        if self.moderators.len() > MAX_MODERATORS {
            return invalid(format!("a room lists at most {MAX_MODERATORS} moderators"));
        }
        if let Some(bad) = self
            .moderators
            .iter()
            .find(|m| m.is_empty() || m.len() > 256)
        {
            return invalid(format!("moderator {bad:?}: a user id is 1 to 256 bytes"));
        }
        let size = serde_json::to_vec(&self.data).map_or(0, |v| v.len());
        if size > MAX_DATA_BYTES {
            return Err(HubError::new(
                ErrorCode::PayloadTooLarge,
                format!("room data is {size} bytes; the limit is {MAX_DATA_BYTES}"),
            ));
        }
        Ok(())
    }
}

/// A room as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Stored {
    pub(super) settings: RoomSettings,
    pub(super) created_at: Timestamp,
}

impl Stored {
    pub(super) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("room settings serialize")
    }

    pub(super) fn decode(name: &str, bytes: &[u8]) -> Result<Stored, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("stored room {name:?}: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_are_checked_and_round_trip() {
        let s: RoomSettings = serde_json::from_value(
            json!({"max_members": 2, "moderators": ["ann"], "data": {"t": 1}}),
        )
        .unwrap();
        assert!(s.validate().is_ok());
        let stored = Stored {
            settings: s.clone(),
            created_at: Timestamp(5),
        };
        assert_eq!(Stored::decode("r", &stored.encode()).unwrap(), stored);
        assert!(serde_json::from_value::<RoomSettings>(json!({"moderator": []})).is_err());
        let bad = RoomSettings {
            moderators: vec![String::new()],
            ..RoomSettings::default()
        };
        assert_eq!(
            bad.validate().unwrap_err().code,
            ErrorCode::InvalidParameter
        );
        let big = RoomSettings {
            data: json!("x".repeat(70_000)),
            ..RoomSettings::default()
        };
        assert_eq!(big.validate().unwrap_err().code, ErrorCode::PayloadTooLarge);
    }
}
