//! Rooms: channels that connections join, with presence.
//!
//! Joining room `R` makes a connection a *member*: a hub subscription to
//! channel `R` whose id is `R` (so its messages arrive with `"subs":["R"]`),
//! a place counted against the room's member limit, and — where the
//! namespace keeps presence — an entry in the room's presence list. A
//! connection can be in many rooms; its memberships end when it leaves,
//! is removed by a moderator, closes, or is not heard from within the
//! namespace's presence TTL.
//!
//! Rooms of a persistent namespace, and rooms given settings with
//! [`Rooms::put`], are stored and outlive their members and restarts (until
//! deleted); others vanish with their last member.
//!
//! # Consistency
//! All state sits behind one `std::sync::Mutex` (`Inner::state`), held for
//! short, synchronous sections and never across an `.await`. Presence
//! signals are handed to the hub *while it is held*: every shard therefore
//! sees joins, updates and leaves in the order the state changed, and a
//! subscriber that applies them in order never keeps a ghost. Writes of
//! stored rooms are serialized by a second, async lock (`Inner::storing`),
//! always taken *before* `state`.
//!
//! The answer to a connection's `presence` request is queued the same way
//! (through the hub, under the lock), so the `member_*` events that follow
//! it are exactly the changes after it.
//!
//! A join first reserves a place (limits checked under the lock), then
//! subscribes in the hub, then confirms the place (now listed and
//! announced); a failed subscription gives the place back. Until it is
//! confirmed a place counts against the limit but is not listed.
//!
//! Layout: `state.rs` (the state machine), `settings.rs` (room settings
//! and how they are stored).

mod settings;
mod state;

pub use settings::RoomSettings;
pub use state::{PRESENCE_PAGE, PresencePage, RoomInfo};

use crate::blocking;
use crate::clock::Clock;
use crate::hub::{
    Announce, Connection, EndedMembership, Hub, HubError, SubscriptionSpec, Transport,
};
use crate::namespace::Namespaces;
use crate::outbox::Outbox;
use crate::subscribe::Topic;
use herald_proto::{ErrorCode, LeaveReason, Member, ServerMessage, StartFrom};
use herald_store::{ChannelName, StoreError};
use serde_json::Value;
use state::{Effect, State};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

/// Largest presence data of one member, serialized.
pub const MAX_PRESENCE_BYTES: usize = 4 << 10;

/// The rooms of a server; cheap to clone.
#[derive(Debug, Clone)]
pub struct Rooms {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    hub: Hub,
    namespaces: Arc<Namespaces>,
    clock: Arc<dyn Clock>,
    /// Rooms and members; see the module's "Consistency".
    state: Mutex<State>,
    /// Serializes writes of stored rooms; taken before `state`.
    storing: tokio::sync::Mutex<()>,
}

/// A join, as asked.
#[derive(Debug, Clone, Default)]
pub struct JoinRequest {
    /// Presence data (`null`: none).
    pub data: Value,
    /// Deliver the room's messages after this position first.
    pub from: Option<StartFrom>,
    /// Echoed in `joined`.
    pub reference: Option<String>,
    /// The joiner may create the room where it would be stored for good
    /// (a persistent namespace): a moderator of it. Others may join only
    /// rooms that exist there.
    pub create: bool,
}

impl Rooms {
    /// Loads the stored rooms and starts expiring silent members; call
    /// inside a Tokio runtime. The hub's namespaces are the rooms' policy.
    pub fn start(hub: Hub, clock: Arc<dyn Clock>) -> Result<Rooms, StoreError> {
        let namespaces = hub.config().namespaces.clone();
        let mut state = State::default();
        for (name, bytes) in hub.herald().store().settings(settings::KIND)? {
            let room = ChannelName::new(name.as_str())?;
            let stored = settings::Stored::decode(&name, &bytes).map_err(StoreError::Corrupt)?;
            state.load(room, stored);
        }
        let rooms = Rooms {
            inner: Arc::new(Inner {
                hub,
                clock,
                state: Mutex::new(state),
                storing: tokio::sync::Mutex::new(()),
                namespaces: namespaces.clone(),
            }),
        };
        let every = (namespaces.shortest_ttl() / 10)
            .clamp(Duration::from_millis(100), Duration::from_secs(5));
        tokio::spawn(sweep(Arc::downgrade(&rooms.inner), every));
        let (ended, failed) = tokio::sync::mpsc::unbounded_channel();
        rooms.inner.hub.on_memberships_ended(ended);
        tokio::spawn(withdraw(Arc::downgrade(&rooms.inner), failed));
        Ok(rooms)
    }

    /// The clock presence reads.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.inner.clock
    }

    /// The channel namespaces.
    #[must_use]
    pub fn namespaces(&self) -> &Namespaces {
        &self.inner.namespaces
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every change is applied whole before any effect is carried out,
        // so a panic cannot leave the state half-changed.
        self.inner
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Carries out effects; called with the state locked.
    fn apply(&self, effects: Vec<Effect>) {
        for effect in effects {
            match effect {
                Effect::Signal(signal) => self.inner.hub.signal_now(signal),
                Effect::End { conn, room, notice } => {
                    self.inner.hub.remove_now(conn, room.as_str(), &notice);
                }
            }
        }
    }

    /// Whether `conn` is in `room` (or joining it).
    #[must_use]
    pub fn holds(&self, conn: u64, room: &ChannelName) -> bool {
        self.lock().holds(conn, room)
    }

    /// Records who `conn` is (its next joins show it).
    pub fn identify(&self, conn: u64, subject: Option<String>) {
        self.lock().identify(conn, subject);
    }

    /// Joins `conn` (which is `subject`: `user:<sub>`, `key:<id>`) to
    /// `room`. Its `joined` arrives in its outbox; errors come back here.
    /// Members of the room, this one included.
    ///
    /// The member stays until it leaves, its connection is dropped, or it
    /// is not heard from within the namespace's `presence_ttl`: a transport
    /// records what it hears with `conn.outbox().hear(rooms.clock().now())`,
    /// and an in-process member must too.
    pub async fn join(
        &self,
        conn: &Connection,
        subject: Option<String>,
        room: ChannelName,
        request: JoinRequest,
    ) -> Result<usize, HubError> {
        self.join_as(conn.id(), conn.outbox(), subject, room, request)
            .await
    }

    /// Joins connection `conn` of this server to `room` on the server's
    /// initiative (`POST /v1/rooms/{room}/members`), as the user it
    /// authenticated as. It must be a WebSocket (only a WebSocket shows it
    /// is alive) that has authenticated.
    pub async fn join_by_id(
        &self,
        conn: u64,
        room: ChannelName,
        request: JoinRequest,
    ) -> Result<usize, HubError> {
        let (outbox, subject) = match self.inner.hub.outbox(conn).await {
            Some((_, info)) if !info.identified => {
                return Err(HubError::new(
                    ErrorCode::InvalidParameter,
                    format!("connection {conn} has not authenticated yet"),
                ));
            }
            Some((outbox, info)) if info.transport == Transport::WebSocket => (outbox, info.user),
            Some(_) => {
                return Err(HubError::new(
                    ErrorCode::InvalidParameter,
                    format!("connection {conn} is not a WebSocket: only WebSockets join rooms"),
                ));
            }
            None => {
                return Err(HubError::new(
                    ErrorCode::NotFound,
                    format!("no connection {conn} on this server"),
                ));
            }
        };
        self.join_as(conn, &outbox, subject, room, request).await
    }

    async fn join_as(
        &self,
        conn: u64,
        outbox: &Arc<Outbox>,
        subject: Option<String>,
        room: ChannelName,
        request: JoinRequest,
    ) -> Result<usize, HubError> {
        check_presence_data(&request.data)?;
        if !request.data.is_null() && !self.inner.namespaces.of(room.as_str()).presence {
            return Err(no_presence(&room));
        }
        let now = self.inner.clock.now();
        let reserved = {
            let mut state = self.lock();
            state.attach(conn, outbox, subject, now);
            state.reserve(
                &self.inner.namespaces,
                conn,
                &room,
                request.data,
                request.create,
                now,
            )?
        };
        // Given back unless confirmed, also if this future is dropped.
        let mut place = Place {
            rooms: self,
            conn,
            room: &room,
            confirmed: false,
        };
        if reserved.created_stored {
            self.persist(&room).await?;
        }
        let members = reserved.members;
        let mut spec = SubscriptionSpec::new(room.as_str(), Topic::Channel(room.clone()));
        spec.from = request.from.unwrap_or(StartFrom::Now);
        spec.announce = Announce::Joined(Box::new(ServerMessage::Joined {
            reference: request.reference,
            room: room.as_str().to_owned(),
            offset: Default::default(),
            client: conn.to_string(),
            members,
        }));
        self.inner.hub.subscribe(conn, spec).await?;
        place.confirmed = true;
        let mut state = self.lock();
        match state.confirm(&self.inner.namespaces, conn, &room) {
            Some(effects) => self.apply(effects),
            // Its place was taken back while it subscribed (the room was
            // deleted, the member expired), possibly before the hub had the
            // subscription to end: end it now.
            None => self.apply(vec![Effect::End {
                conn,
                notice: ServerMessage::Left {
                    reference: None,
                    room: room.as_str().to_owned(),
                    reason: LeaveReason::Removed,
                    by: None,
                },
                room: room.clone(),
            }]),
        }
        Ok(members)
    }

    /// Ends `conn`'s membership of `room` as `reason` (`left` for a leave,
    /// `removed` with `by` for a moderator's removal); the connection gets
    /// `left` (with `reference`). The member as it was.
    pub fn leave(
        &self,
        conn: u64,
        room: &ChannelName,
        reason: LeaveReason,
        by: Option<String>,
        reference: Option<String>,
    ) -> Result<Member, HubError> {
        let notice = ServerMessage::Left {
            reference,
            room: room.as_str().to_owned(),
            reason,
            by,
        };
        let mut state = self.lock();
        let (member, effects) =
            state.leave(&self.inner.namespaces, conn, room, reason, Some(notice))?;
        self.apply(effects);
        Ok(member)
    }

    /// Lets go of a membership the hub ended on its own (its connection
    /// closed, say): announced like a leave, nothing sent to the
    /// connection, which has no such subscription any more.
    fn withdraw(&self, conn: u64, room: &ChannelName, reason: LeaveReason) {
        let mut state = self.lock();
        if let Ok((_, effects)) = state.leave(&self.inner.namespaces, conn, room, reason, None) {
            self.apply(effects);
        }
    }

    /// Writes `room` as it is now (if it is stored), after every earlier
    /// change of a stored room.
    async fn persist(&self, room: &ChannelName) -> Result<(), HubError> {
        let _storing = self.inner.storing.lock().await;
        // Read under `storing`: no other write of a stored room can come
        // between this state and the disk.
        let Some(stored) = self.lock().stored(room) else {
            return Ok(()); // deleted meanwhile
        };
        let (store, name, bytes) = (self.store(), room.as_str().to_owned(), stored.encode());
        blocking(move || store.put_setting(settings::KIND, &name, &bytes)).await?;
        Ok(())
    }

    /// Replaces `conn`'s presence data in `room`; its entry now.
    pub fn update_presence(
        &self,
        conn: u64,
        room: &ChannelName,
        data: Value,
    ) -> Result<Member, HubError> {
        check_presence_data(&data)?;
        if !self.inner.namespaces.of(room.as_str()).presence {
            return Err(no_presence(room));
        }
        let now = self.inner.clock.now();
        let mut state = self.lock();
        let (member, effects) = state.update(&self.inner.namespaces, conn, room, data, now)?;
        self.apply(effects);
        Ok(member)
    }

    /// A page of who is in `room`, by client id: the members after client
    /// `after` (a page's `next`), at most `limit` (1 to 1000) and about
    /// 256 KiB of data.
    pub fn presence(
        &self,
        room: &ChannelName,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<PresencePage, HubError> {
        let (after, limit) = self.page(room, after, limit)?;
        Ok(self.lock().presence(room, after, limit))
    }

    /// Answers a connection's `presence` request through the hub, in order
    /// with the `member_*` events: every event queued for `conn` after the
    /// answer happened after it, so applying them on top of it is exact.
    pub fn answer_presence(
        &self,
        conn: u64,
        room: &ChannelName,
        after: Option<&str>,
        limit: Option<usize>,
        reference: Option<String>,
    ) -> Result<(), HubError> {
        let (after, limit) = self.page(room, after, limit)?;
        let state = self.lock();
        let page = state.presence(room, after, limit);
        let answer = ServerMessage::Presence {
            reference,
            room: room.as_str().to_owned(),
            members: page.members,
            next: page.next,
        };
        // Under the lock, like the signals of every change it reflects.
        self.inner.hub.push_now(conn, &answer);
        drop(state);
        Ok(())
    }

    /// Checks a presence request: the namespace keeps presence, `after`
    /// is a client id, `limit` is 1 to 1000.
    fn page(
        &self,
        room: &ChannelName,
        after: Option<&str>,
        limit: Option<usize>,
    ) -> Result<(u64, usize), HubError> {
        if !self.inner.namespaces.of(room.as_str()).presence {
            return Err(no_presence(room));
        }
        let invalid = |m: String| HubError::new(ErrorCode::InvalidParameter, m);
        let after = after
            .filter(|a| !a.is_empty())
            .map(|a| a.parse::<u64>())
            .transpose()
            .map_err(|_| invalid("`after` is a client id (a page's `next`)".into()))?
            .unwrap_or(0);
        let limit = limit.unwrap_or(PRESENCE_PAGE);
        if !(1..=PRESENCE_PAGE).contains(&limit) {
            return Err(invalid(format!("`limit` is 1 to {PRESENCE_PAGE}")));
        }
        Ok((after, limit))
    }

    /// Ends the memberships of connections not heard from within their
    /// rooms' presence TTL. Runs by itself every tenth of the shortest TTL
    /// (between 0.1 and 5 s); call it to sweep now.
    pub fn sweep(&self) {
        let now = self.inner.clock.now();
        let mut state = self.lock();
        let effects = state.expire(&self.inner.namespaces, now);
        self.apply(effects);
    }

    /// Sets `room`'s settings, creating the room if needed; a room given
    /// settings is stored: it outlives its members and restarts, until
    /// [`Rooms::delete`].
    pub async fn put(
        &self,
        room: &ChannelName,
        settings: RoomSettings,
    ) -> Result<RoomInfo, HubError> {
        settings.validate()?;
        let _storing = self.inner.storing.lock().await;
        let created_at = self
            .lock()
            .info(&self.inner.namespaces, room)
            .map_or_else(|| self.inner.clock.now(), |r| r.created_at);
        // The disk first: a failed write changes nothing.
        let stored = settings::Stored {
            settings: settings.clone(),
            created_at,
        };
        let (store, name, bytes) = (self.store(), room.as_str().to_owned(), stored.encode());
        blocking(move || store.put_setting(settings::KIND, &name, &bytes)).await?;
        Ok(self
            .lock()
            .put(&self.inner.namespaces, room, settings, created_at))
    }

    /// Deletes `room`: its members are told (`left`, `room_deleted`) and
    /// its stored settings removed. Whether it existed.
    pub async fn delete(&self, room: &ChannelName) -> Result<bool, HubError> {
        let _storing = self.inner.storing.lock().await;
        let Some(info) = self.lock().info(&self.inner.namespaces, room) else {
            return Ok(false);
        };
        // The disk first: a failed write changes nothing.
        if info.stored {
            let (store, name) = (self.store(), room.as_str().to_owned());
            blocking(move || store.delete_setting(settings::KIND, &name)).await?;
        }
        let mut state = self.lock();
        if let Some((_, effects)) = state.delete(&self.inner.namespaces, room) {
            self.apply(effects);
        }
        Ok(true)
    }

    /// One room (`None`: no such room now).
    #[must_use]
    pub fn room(&self, room: &ChannelName) -> Option<RoomInfo> {
        self.lock().info(&self.inner.namespaces, room)
    }

    /// Every room, by name.
    #[must_use]
    pub fn list(&self) -> Vec<RoomInfo> {
        self.lock().list(&self.inner.namespaces)
    }

    /// The rooms `conn` is in.
    #[must_use]
    pub fn rooms_of(&self, conn: u64) -> Vec<String> {
        self.lock().rooms_of(conn)
    }

    /// Whether `subject` (`user:<sub>`, `key:<id>`) is in `room` through
    /// any of its connections.
    #[must_use]
    pub fn has_member(&self, room: &ChannelName, subject: &str) -> bool {
        self.lock().has_subject(room, subject)
    }

    /// Whether `room`'s settings list `user` (a token's `sub`) as a
    /// moderator.
    #[must_use]
    pub fn lists_moderator(&self, room: &ChannelName, user: &str) -> bool {
        self.lock().lists_moderator(room, user)
    }

    fn store(&self) -> Arc<herald_store::Store> {
        self.inner.hub.herald().store.clone()
    }
}

fn check_presence_data(data: &Value) -> Result<(), HubError> {
    let size = serde_json::to_vec(data).map_or(0, |v| v.len());
    if size > MAX_PRESENCE_BYTES {
        return Err(HubError::new(
            ErrorCode::PayloadTooLarge,
            format!("presence data is {size} bytes; the limit is {MAX_PRESENCE_BYTES}"),
        ));
    }
    Ok(())
}

fn no_presence(room: &ChannelName) -> HubError {
    HubError::new(
        ErrorCode::InvalidParameter,
        format!(
            "room {:?} keeps no presence (its namespace has presence = false)",
            room.as_str()
        ),
    )
}

/// Withdraws the memberships the hub ended on its own (a join whose history
/// failed to read, after it was announced), until the rooms are dropped.
async fn withdraw(
    rooms: Weak<Inner>,
    mut ended: tokio::sync::mpsc::UnboundedReceiver<EndedMembership>,
) {
    while let Some((conn, room, reason)) = ended.recv().await {
        let Some(inner) = rooms.upgrade() else {
            return;
        };
        Rooms { inner }.withdraw(conn, &room, reason);
    }
}

/// A join's place in a room until its subscription is made: given back if
/// the join fails or its future is dropped (a closing connection's reader).
struct Place<'a> {
    rooms: &'a Rooms,
    conn: u64,
    room: &'a ChannelName,
    confirmed: bool,
}

impl Drop for Place<'_> {
    fn drop(&mut self) {
        if !self.confirmed {
            self.rooms.lock().cancel(self.conn, self.room);
        }
    }
}

/// Expires silent members every `every`, until the rooms are dropped.
async fn sweep(rooms: Weak<Inner>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(inner) = rooms.upgrade() else { return };
        Rooms { inner }.sweep();
    }
}
