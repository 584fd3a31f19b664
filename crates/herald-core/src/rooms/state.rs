//! The rooms' state as a plain state machine: rooms, their members, each
//! connection's rooms. Every change returns the [`Effect`]s it has on the
//! outside (presence signals, memberships to end in the hub), which the
//! handle carries out while it still holds the lock, so every shard sees
//! presence changes in the order they happened.

use super::settings::{RoomSettings, Stored};
use crate::hub::{HubError, MemberChange, Signal};
use crate::namespace::Namespaces;
use crate::outbox::Outbox;
use herald_proto::{ErrorCode, LeaveReason, Member, ServerMessage, Timestamp};
use herald_store::ChannelName;
use serde::Serialize;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Most members in one `presence` answer.
pub const PRESENCE_PAGE: usize = 1000;
/// About the most bytes of member data in one `presence` answer: far below
/// an outbox, whatever the members show.
const PRESENCE_PAGE_BYTES: usize = 256 << 10;

/// What a state change asks of the hub.
#[derive(Debug)]
pub(super) enum Effect {
    /// Route this presence signal.
    Signal(Signal),
    /// End connection `conn`'s membership of `room`, queuing `notice`.
    End {
        conn: u64,
        room: ChannelName,
        notice: ServerMessage,
    },
}

/// A room as listings show it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoomInfo {
    /// Its name (a channel).
    pub room: String,
    /// Whether it is stored (survives restarts until deleted).
    pub stored: bool,
    /// When it was created (Unix ms).
    pub created_at: Timestamp,
    /// Members now.
    pub members: usize,
    /// The member limit in force (its own, else its namespace's; 0: none).
    pub max_members: u32,
    /// Its settings.
    pub settings: RoomSettings,
}

/// A successful reservation of a place in a room.
#[derive(Debug)]
pub(super) struct Reserved {
    /// Members, the new one included.
    pub(super) members: usize,
    /// The reservation created the room, which must be stored (persistent
    /// namespace).
    pub(super) created_stored: bool,
}

/// One page of a room's presence.
#[derive(Debug, Clone, PartialEq)]
pub struct PresencePage {
    /// Members by client id, after the page's `after`.
    pub members: Vec<Member>,
    /// The `after` of the next page (`None`: this was the last).
    pub next: Option<String>,
}

#[derive(Debug, Default)]
pub(super) struct State {
    rooms: HashMap<ChannelName, Room>,
    conns: HashMap<u64, Attached>,
}

/// A connection that is in (or joining) at least one room; forgotten when
/// it is in none.
#[derive(Debug)]
struct Attached {
    /// Who it is (`user:<sub>`, `key:<id>`); `None`: anonymous.
    subject: Option<String>,
    /// Its outbox, which says when it was last heard from.
    outbox: Arc<Outbox>,
    rooms: Vec<ChannelName>,
}

#[derive(Debug)]
struct Room {
    settings: RoomSettings,
    stored: bool,
    created_at: Timestamp,
    /// By client id (the order presence pages follow).
    members: BTreeMap<u64, Entry>,
    /// Members per subject, for the `members` publish policy.
    subjects: HashMap<String, usize>,
}

impl Room {
    fn new(settings: RoomSettings, stored: bool, created_at: Timestamp) -> Room {
        Room {
            settings,
            stored,
            created_at,
            members: BTreeMap::new(),
            subjects: HashMap::new(),
        }
    }

    fn limit(&self, namespaces: &Namespaces, name: &ChannelName) -> u32 {
        self.settings
            .max_members
            .unwrap_or_else(|| namespaces.of(name.as_str()).max_members)
    }

    fn info(&self, namespaces: &Namespaces, name: &ChannelName) -> RoomInfo {
        RoomInfo {
            room: name.as_str().to_owned(),
            stored: self.stored,
            created_at: self.created_at,
            members: self.members.len(),
            max_members: self.limit(namespaces, name),
            settings: self.settings.clone(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    member: Member,
    subject: Option<String>,
    /// Its join is complete (subscribed and, if the namespace says so,
    /// announced): only then is it listed, and its leave announced.
    announced: bool,
}

/// The `user` a member shows: a token's `sub`, or `key:<id>`.
fn shown_user(subject: Option<&str>) -> Option<String> {
    subject.map(|s| s.strip_prefix("user:").unwrap_or(s).to_owned())
}

impl State {
    /// A stored room, as the server starts.
    pub(super) fn load(&mut self, name: ChannelName, stored: Stored) {
        self.rooms
            .insert(name, Room::new(stored.settings, true, stored.created_at));
    }

    /// Makes `conn` known (if it is not), with the outbox that tells its
    /// liveness.
    pub(super) fn attach(
        &mut self,
        conn: u64,
        outbox: &Arc<Outbox>,
        subject: Option<String>,
        now: Timestamp,
    ) {
        self.conns.entry(conn).or_insert_with(|| {
            if outbox.heard() == Timestamp::default() {
                outbox.hear(now);
            }
            Attached {
                subject,
                outbox: outbox.clone(),
                rooms: Vec::new(),
            }
        });
    }

    /// Who `conn` is now; its next joins show it.
    pub(super) fn identify(&mut self, conn: u64, subject: Option<String>) {
        if let Some(attached) = self.conns.get_mut(&conn) {
            attached.subject = subject;
        }
    }

    /// Takes a place in `room` for `conn` (attached), not yet listed. A
    /// missing room of a persistent namespace (which would be stored for
    /// good) is created only if `create`. A connection is known only while
    /// it holds a place: one whose first join is refused is forgotten again.
    pub(super) fn reserve(
        &mut self,
        namespaces: &Namespaces,
        conn: u64,
        room: &ChannelName,
        data: Value,
        create: bool,
        now: Timestamp,
    ) -> Result<Reserved, HubError> {
        let reserved = self.take_place(namespaces, conn, room, data, create, now);
        if reserved.is_err() && self.conns.get(&conn).is_some_and(|a| a.rooms.is_empty()) {
            self.conns.remove(&conn);
        }
        reserved
    }

    fn take_place(
        &mut self,
        namespaces: &Namespaces,
        conn: u64,
        room: &ChannelName,
        data: Value,
        create: bool,
        now: Timestamp,
    ) -> Result<Reserved, HubError> {
        let attached = self
            .conns
            .get_mut(&conn)
            .ok_or_else(|| HubError::new(ErrorCode::NotFound, format!("no connection {conn}")))?;
        let persistent = namespaces.of(room.as_str()).persistent;
        if persistent && !create && !self.rooms.contains_key(room) {
            return Err(HubError::new(
                ErrorCode::NotFound,
                format!(
                    "no room {:?}: in a persistent namespace rooms are created by moderators",
                    room.as_str()
                ),
            ));
        }
        let created_stored = persistent && !self.rooms.contains_key(room);
        let entry = self
            .rooms
            .entry(room.clone())
            .or_insert_with(|| Room::new(RoomSettings::default(), persistent, now));
        if entry.members.contains_key(&conn) {
            return Err(HubError::new(
                ErrorCode::AlreadyMember,
                format!("this connection is already in room {:?}", room.as_str()),
            ));
        }
        let limit = entry.limit(namespaces, room);
        if limit > 0 && entry.members.len() >= limit as usize {
            let full = HubError::new(
                ErrorCode::RoomFull,
                format!("room {:?} holds its most members ({limit})", room.as_str()),
            );
            if entry.members.is_empty() && !entry.stored {
                self.rooms.remove(room);
            }
            return Err(full);
        }
        let subject = attached.subject.clone();
        if let Some(s) = &subject {
            *entry.subjects.entry(s.clone()).or_default() += 1;
        }
        entry.members.insert(
            conn,
            Entry {
                member: Member {
                    client: conn.to_string(),
                    user: shown_user(subject.as_deref()),
                    data,
                    joined_at: now,
                    updated_at: now,
                },
                subject,
                announced: false,
            },
        );
        attached.rooms.push(room.clone());
        Ok(Reserved {
            members: entry.members.len(),
            created_stored,
        })
    }

    /// Completes a reservation: listed from now on, announced if the
    /// namespace announces joins. `None` if the reservation is gone (the
    /// connection closed, the room was deleted meanwhile).
    pub(super) fn confirm(
        &mut self,
        namespaces: &Namespaces,
        conn: u64,
        room: &ChannelName,
    ) -> Option<Vec<Effect>> {
        let entry = self.rooms.get_mut(room)?.members.get_mut(&conn)?;
        entry.announced = true;
        let mut effects = Vec::new();
        if namespaces.of(room.as_str()).join_leave {
            effects.push(Effect::Signal(Signal::member(
                room.clone(),
                conn,
                &entry.member,
                MemberChange::Joined,
            )));
        }
        Some(effects)
    }

    /// Gives back a reservation that failed; nothing was announced.
    pub(super) fn cancel(&mut self, conn: u64, room: &ChannelName) {
        if self
            .rooms
            .get(room)
            .and_then(|r| r.members.get(&conn))
            .is_some_and(|e| !e.announced)
        {
            // Unannounced: no signal, no notice.
            let _ = self.remove_member(&Namespaces::default(), conn, room, LeaveReason::Left);
        }
    }

    /// Whether `conn`'s place in `room` is still there (reserved or listed).
    pub(super) fn holds(&self, conn: u64, room: &ChannelName) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.members.contains_key(&conn))
    }

    /// Ends `conn`'s membership of `room`; with `notice`, the hub is asked
    /// to end its subscription and queue it. The member as it was.
    pub(super) fn leave(
        &mut self,
        namespaces: &Namespaces,
        conn: u64,
        room: &ChannelName,
        reason: LeaveReason,
        notice: Option<ServerMessage>,
    ) -> Result<(Member, Vec<Effect>), HubError> {
        let (member, mut effects) = self
            .remove_member(namespaces, conn, room, reason)
            .ok_or_else(|| {
                HubError::new(
                    ErrorCode::NotMember,
                    format!("client {conn} is not in room {:?}", room.as_str()),
                )
            })?;
        if let Some(notice) = notice {
            effects.push(Effect::End {
                conn,
                room: room.clone(),
                notice,
            });
        }
        Ok((member, effects))
    }

    /// Ends the memberships of connections not heard from within their
    /// rooms' presence TTL; they are told (`left`, `expired`), and stay
    /// connected.
    pub(super) fn expire(&mut self, namespaces: &Namespaces, now: Timestamp) -> Vec<Effect> {
        let mut stale = Vec::new();
        for (&conn, attached) in &self.conns {
            let heard = attached.outbox.heard();
            for room in &attached.rooms {
                let ttl = namespaces.of(room.as_str()).presence_ttl.as_millis() as u64;
                if now.0.saturating_sub(heard.0) > ttl {
                    stale.push((conn, room.clone()));
                }
            }
        }
        let mut effects = Vec::new();
        for (conn, room) in stale {
            let notice = ServerMessage::Left {
                reference: None,
                room: room.as_str().to_owned(),
                reason: LeaveReason::Expired,
                by: None,
            };
            if let Ok((_, more)) =
                self.leave(namespaces, conn, &room, LeaveReason::Expired, Some(notice))
            {
                effects.extend(more);
            }
        }
        effects
    }

    /// Replaces `conn`'s presence data in `room` (announced if the
    /// namespace announces member changes).
    pub(super) fn update(
        &mut self,
        namespaces: &Namespaces,
        conn: u64,
        room: &ChannelName,
        data: Value,
        now: Timestamp,
    ) -> Result<(Member, Vec<Effect>), HubError> {
        let entry = self
            .rooms
            .get_mut(room)
            .and_then(|r| r.members.get_mut(&conn))
            .filter(|e| e.announced)
            .ok_or_else(|| {
                HubError::new(
                    ErrorCode::NotMember,
                    format!("this connection is not in room {:?}", room.as_str()),
                )
            })?;
        entry.member.data = data;
        entry.member.updated_at = now;
        let member = entry.member.clone();
        let mut effects = Vec::new();
        if namespaces.of(room.as_str()).join_leave {
            let signal = Signal::member(room.clone(), conn, &member, MemberChange::Updated);
            effects.push(Effect::Signal(signal));
        }
        Ok((member, effects))
    }

    /// A page of the listed members of `room` by client id: those after
    /// client `after`, at most `limit` (and about 256 KiB of data).
    pub(super) fn presence(&self, room: &ChannelName, after: u64, limit: usize) -> PresencePage {
        let Some(r) = self.rooms.get(room) else {
            return PresencePage {
                members: Vec::new(),
                next: None,
            };
        };
        let mut members = Vec::new();
        let mut bytes = 0;
        let mut listed = r
            .members
            .range(after.saturating_add(1)..)
            .filter(|(_, e)| e.announced)
            .peekable();
        while let Some((_, entry)) = listed.peek() {
            if members.len() == limit || (bytes >= PRESENCE_PAGE_BYTES && !members.is_empty()) {
                break;
            }
            bytes += 128 + serde_json::to_vec(&entry.member.data).map_or(0, |v| v.len());
            members.push(entry.member.clone());
            listed.next();
        }
        let next = listed.peek().and(members.last()).map(|m| m.client.clone());
        PresencePage { members, next }
    }

    /// A room as it is to be stored (`None`: no such room, or not stored).
    pub(super) fn stored(&self, room: &ChannelName) -> Option<Stored> {
        self.rooms.get(room).filter(|r| r.stored).map(|r| Stored {
            settings: r.settings.clone(),
            created_at: r.created_at,
        })
    }

    /// Sets a room's settings, creating it (at `created_at`) if needed. A
    /// room given settings is stored: it outlives its members, until
    /// deleted.
    pub(super) fn put(
        &mut self,
        namespaces: &Namespaces,
        room: &ChannelName,
        settings: RoomSettings,
        created_at: Timestamp,
    ) -> RoomInfo {
        let entry = self
            .rooms
            .entry(room.clone())
            .or_insert_with(|| Room::new(RoomSettings::default(), true, created_at));
        entry.settings = settings;
        entry.stored = true;
        entry.info(namespaces, room)
    }

    /// Deletes a room: its members are told (`left`, `room_deleted`).
    /// `None` if there is no such room; else whether it was stored.
    pub(super) fn delete(
        &mut self,
        namespaces: &Namespaces,
        room: &ChannelName,
    ) -> Option<(bool, Vec<Effect>)> {
        let members: Vec<u64> = self.rooms.get(room)?.members.keys().copied().collect();
        let mut effects = Vec::new();
        for conn in members {
            let notice = ServerMessage::Left {
                reference: None,
                room: room.as_str().to_owned(),
                reason: LeaveReason::RoomDeleted,
                by: None,
            };
            if let Ok((_, more)) = self.leave(
                namespaces,
                conn,
                room,
                LeaveReason::RoomDeleted,
                Some(notice),
            ) {
                effects.extend(more);
            }
        }
        let stored = self.rooms.remove(room).is_some_and(|r| r.stored);
        Some((stored, effects))
    }

    /// One room.
    pub(super) fn info(&self, namespaces: &Namespaces, room: &ChannelName) -> Option<RoomInfo> {
        self.rooms.get(room).map(|r| r.info(namespaces, room))
    }

    /// Every room, by name.
    pub(super) fn list(&self, namespaces: &Namespaces) -> Vec<RoomInfo> {
        let mut all: Vec<RoomInfo> = self
            .rooms
            .iter()
            .map(|(name, r)| r.info(namespaces, name))
            .collect();
        all.sort_by(|a, b| a.room.cmp(&b.room));
        all
    }

    /// Whether `subject` has a listed member in `room`.
    pub(super) fn has_subject(&self, room: &ChannelName, subject: &str) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.subjects.contains_key(subject))
    }

    /// Whether `room` lists `user` (a token's `sub`) as a moderator.
    pub(super) fn lists_moderator(&self, room: &ChannelName, user: &str) -> bool {
        self.rooms
            .get(room)
            .is_some_and(|r| r.settings.moderators.iter().any(|m| m == user))
    }

    /// The rooms `conn` is in (listed or joining), in the order it joined.
    pub(super) fn rooms_of(&self, conn: u64) -> Vec<String> {
        self.conns
            .get(&conn)
            .map(|a| a.rooms.iter().map(|r| r.as_str().to_owned()).collect())
            .unwrap_or_default()
    }

    /// Removes `conn` from `room`: its bookkeeping, the announcement of its
    /// leave (if it was announced and the namespace announces leaves), and
    /// the room itself once empty unless stored.
    fn remove_member(
        &mut self,
        namespaces: &Namespaces,
        conn: u64,
        room: &ChannelName,
        reason: LeaveReason,
    ) -> Option<(Member, Vec<Effect>)> {
        let entry = self.rooms.get_mut(room)?;
        let gone = entry.members.remove(&conn)?;
        if let Some(subject) = &gone.subject
            && let Some(n) = entry.subjects.get_mut(subject)
        {
            *n -= 1;
            if *n == 0 {
                entry.subjects.remove(subject);
            }
        }
        if entry.members.is_empty() && !entry.stored {
            self.rooms.remove(room);
        }
        if let Some(attached) = self.conns.get_mut(&conn) {
            attached.rooms.retain(|r| r != room);
            if attached.rooms.is_empty() {
                self.conns.remove(&conn);
            }
        }
        let mut effects = Vec::new();
        if gone.announced && namespaces.of(room.as_str()).join_leave {
            effects.push(Effect::Signal(Signal::member(
                room.clone(),
                conn,
                &gone.member,
                MemberChange::Left(reason),
            )));
        }
        Some((gone.member, effects))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::namespace::Namespace;
    use std::collections::BTreeMap;
    use std::time::Duration;

    fn namespaces() -> Namespaces {
        let mut config = BTreeMap::new();
        config.insert(
            "small".to_owned(),
            Namespace {
                max_members: 2,
                join_leave: true,
                ..Namespace::default()
            },
        );
        config.insert(
            "kept".to_owned(),
            Namespace {
                persistent: true,
                ..Namespace::default()
            },
        );
        Namespaces::new(&config, Duration::from_secs(1)).unwrap()
    }

    fn room(name: &str) -> ChannelName {
        ChannelName::new(name).unwrap()
    }

    fn kinds(effects: &[Effect]) -> Vec<&'static str> {
        effects
            .iter()
            .map(|e| match e {
                Effect::Signal(s) => s.kind(),
                Effect::End { .. } => "end",
            })
            .collect()
    }

    /// A state with connections 1..=n attached (heard at t=0), user `u<i>`.
    fn attached(n: u64) -> (State, Vec<Arc<Outbox>>) {
        let mut state = State::default();
        let outboxes: Vec<Arc<Outbox>> = (0..n).map(|_| Arc::new(Outbox::new(1 << 20))).collect();
        for (i, outbox) in outboxes.iter().enumerate() {
            let conn = i as u64 + 1;
            state.attach(conn, outbox, Some(format!("user:u{conn}")), Timestamp(1));
        }
        (state, outboxes)
    }

    fn listed(state: &State, r: &ChannelName) -> Vec<Member> {
        state.presence(r, 0, PRESENCE_PAGE).members
    }

    fn join(state: &mut State, ns: &Namespaces, conn: u64, r: &ChannelName) -> Vec<Effect> {
        state
            .reserve(ns, conn, r, Value::Null, true, Timestamp(1))
            .unwrap();
        state.confirm(ns, conn, r).unwrap()
    }

    #[test]
    fn the_member_limit_counts_reservations_and_frees_on_leave() {
        let ns = namespaces();
        let (mut state, outboxes) = attached(3);
        let r = room("small:a");
        assert_eq!(kinds(&join(&mut state, &ns, 1, &r)), ["member_joined"]);
        // Reserved but not confirmed: counted, not listed.
        state
            .reserve(&ns, 2, &r, Value::Null, true, Timestamp(2))
            .unwrap();
        assert_eq!(listed(&state, &r).len(), 1);
        let full = state
            .reserve(&ns, 3, &r, Value::Null, true, Timestamp(2))
            .unwrap_err();
        assert_eq!(full.code, ErrorCode::RoomFull);
        // A cancelled reservation frees its place and announces nothing.
        state.cancel(2, &r);
        // Refused in its first join, 3 was forgotten: a join attaches it
        // again, as `Rooms::join_as` does.
        state.attach(3, &outboxes[2], Some("user:u3".into()), Timestamp(3));
        assert!(
            state
                .reserve(&ns, 3, &r, Value::Null, true, Timestamp(3))
                .is_ok()
        );
        let again = state
            .reserve(&ns, 3, &r, Value::Null, true, Timestamp(3))
            .unwrap_err();
        assert_eq!(again.code, ErrorCode::AlreadyMember);
        let (_, effects) = state.leave(&ns, 1, &r, LeaveReason::Left, None).unwrap();
        assert_eq!(kinds(&effects), ["member_left"]);
        let not = state
            .leave(&ns, 1, &r, LeaveReason::Left, None)
            .unwrap_err();
        assert_eq!(not.code, ErrorCode::NotMember);
    }

    #[test]
    fn ephemeral_rooms_vanish_when_empty_and_persistent_ones_stay() {
        let ns = namespaces();
        let (mut state, _o) = attached(2);
        let (gone, kept) = (room("small:x"), room("kept:y"));
        join(&mut state, &ns, 1, &gone);
        // Only a creator may make a stored room appear.
        let err = state
            .reserve(&ns, 1, &kept, Value::Null, false, Timestamp(1))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
        let reserved = state
            .reserve(&ns, 1, &kept, Value::Null, true, Timestamp(1))
            .unwrap();
        assert!(reserved.created_stored, "a new persistent room is stored");
        state.confirm(&ns, 1, &kept).unwrap();
        join(&mut state, &ns, 2, &gone);
        assert_eq!(state.rooms_of(1), ["small:x", "kept:y"]);
        // Connection 1 closes: the hub reports each of its memberships.
        let mut effects = Vec::new();
        for r in [&gone, &kept] {
            let (_, more) = state
                .leave(&ns, 1, r, LeaveReason::Disconnected, None)
                .unwrap();
            effects.extend(more);
        }
        // `small` announces leaves; `kept` does not.
        assert_eq!(kinds(&effects), ["member_left"]);
        assert!(state.info(&ns, &gone).is_some());
        assert!(
            state
                .info(&ns, &kept)
                .is_some_and(|i| i.stored && i.members == 0)
        );
        assert!(state.stored(&kept).is_some() && state.stored(&gone).is_none());
        state
            .leave(&ns, 2, &gone, LeaveReason::Disconnected, None)
            .unwrap();
        assert!(state.info(&ns, &gone).is_none());
        // In no room: forgotten, so it must be attached again to join.
        assert!(state.rooms_of(1).is_empty());
        let err = state
            .reserve(&ns, 1, &gone, Value::Null, true, Timestamp(5))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::NotFound);
    }

    #[test]
    fn a_connection_whose_first_join_is_refused_is_forgotten() {
        let ns = namespaces();
        let (mut state, _o) = attached(2);
        let r = room("chat:full");
        join(&mut state, &ns, 1, &r);
        state.put(
            &ns,
            &r,
            RoomSettings {
                max_members: Some(1),
                ..Default::default()
            },
            Timestamp(1),
        );
        let err = state
            .reserve(&ns, 2, &r, Value::Null, true, Timestamp(1))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::RoomFull);
        assert!(!state.conns.contains_key(&2), "no bookkeeping left for 2");
        // One already in a room keeps its place when another join fails.
        let err = state
            .reserve(&ns, 1, &r, Value::Null, true, Timestamp(1))
            .unwrap_err();
        assert_eq!(err.code, ErrorCode::AlreadyMember);
        assert!(state.conns.contains_key(&1));
    }

    #[test]
    fn presence_pages_by_client_id() {
        let ns = namespaces();
        let (mut state, _o) = attached(5);
        let r = room("chat:p");
        for conn in [3, 1, 5, 2] {
            join(&mut state, &ns, conn, &r);
        }
        state
            .reserve(&ns, 4, &r, Value::Null, true, Timestamp(1))
            .unwrap();
        let page = state.presence(&r, 0, 2);
        let clients: Vec<&str> = page.members.iter().map(|m| m.client.as_str()).collect();
        assert_eq!((clients, page.next.as_deref()), (vec!["1", "2"], Some("2")));
        let page = state.presence(&r, 2, 2);
        let clients: Vec<&str> = page.members.iter().map(|m| m.client.as_str()).collect();
        // 4 is joining: not listed.
        assert_eq!((clients, page.next), (vec!["3", "5"], None));
        assert!(state.presence(&room("chat:none"), 0, 10).members.is_empty());
    }

    #[test]
    fn silent_connections_expire_with_a_notice() {
        let ns = namespaces();
        let (mut state, outboxes) = attached(2);
        let r = room("small:e");
        join(&mut state, &ns, 1, &r);
        join(&mut state, &ns, 2, &r);
        // Connection 2 is heard from at 50 s; the TTL is 60 s.
        outboxes[1].hear(Timestamp(50_000));
        assert!(state.expire(&ns, Timestamp(60_001)).is_empty());
        let effects = state.expire(&ns, Timestamp(60_002));
        assert_eq!(kinds(&effects), ["member_left", "end"]);
        match &effects[1] {
            Effect::End { conn, notice, .. } => {
                assert_eq!(*conn, 1);
                assert!(matches!(
                    notice,
                    ServerMessage::Left {
                        reason: LeaveReason::Expired,
                        ..
                    }
                ));
            }
            Effect::Signal(_) => unreachable!(),
        }
        let left: Vec<String> = listed(&state, &r).into_iter().map(|m| m.client).collect();
        assert_eq!(left, ["2"]);
    }

    #[test]
    fn members_policy_counts_every_connection_of_a_user() {
        let ns = namespaces();
        let mut state = State::default();
        let outbox = Arc::new(Outbox::new(1024));
        state.attach(1, &outbox, Some("user:ann".into()), Timestamp(1));
        state.attach(2, &outbox, Some("user:ann".into()), Timestamp(1));
        let r = room("chat:a");
        join(&mut state, &ns, 1, &r);
        join(&mut state, &ns, 2, &r);
        assert!(state.has_subject(&r, "user:ann"));
        assert_eq!(listed(&state, &r)[0].user.as_deref(), Some("ann"));
        state.leave(&ns, 1, &r, LeaveReason::Left, None).unwrap();
        assert!(state.has_subject(&r, "user:ann"));
        state.leave(&ns, 2, &r, LeaveReason::Left, None).unwrap();
        assert!(!state.has_subject(&r, "user:ann"));
    }

    #[test]
    fn deleting_a_room_ends_every_membership() {
        let ns = namespaces();
        let (mut state, _o) = attached(2);
        let r = room("kept:d");
        let info = state.put(
            &ns,
            &r,
            RoomSettings {
                moderators: vec!["u1".into()],
                ..RoomSettings::default()
            },
            Timestamp(1),
        );
        assert!(info.stored);
        assert!(state.lists_moderator(&r, "u1"));
        join(&mut state, &ns, 1, &r);
        join(&mut state, &ns, 2, &r);
        let (was_stored, effects) = state.delete(&ns, &r).unwrap();
        assert!(was_stored);
        assert_eq!(kinds(&effects), ["end", "end"]);
        assert!(state.info(&ns, &r).is_none());
        assert!(state.rooms_of(1).is_empty());
        assert!(state.delete(&ns, &r).is_none());
    }
}
