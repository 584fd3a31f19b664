//! [`Outbox`]: one connection's outbound queue, bounded in bytes.
//!
//! The hub pushes without waiting ([`Outbox::push`]): a full outbox is a
//! slow consumer, handled by the subscription's lag policy, never a stall of
//! the hub. History and snapshots are read on the connection's behalf and
//! wait for room instead ([`Outbox::push_wait`]). The transport's writer
//! takes everything queued at once ([`Outbox::take`]) and writes it with few
//! syscalls.

use bytes::Bytes;
use herald_proto::{Offset, ServerMessage, Timestamp};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::sync::Notify;

/// Bytes counted for an item beyond its payload (queue slot, headers).
const ITEM_OVERHEAD: usize = 64;

/// Something to send to the client.
#[derive(Debug, Clone)]
pub enum Outgoing {
    /// An event for some of the connection's subscriptions, as its
    /// WebSocket message `{"type":"event","subs":[...],<envelope fields>}`.
    /// Built once per event and list of subscription ids, and shared by
    /// every connection whose subscriptions have those ids.
    Event {
        /// The WebSocket message.
        frame: Bytes,
        /// Where the envelope's fields start in `frame` (after `subs`).
        fields: usize,
        /// The event's offset (SSE uses it for `id:`).
        offset: Offset,
    },
    /// Any other server message, already serialized.
    Message {
        /// Its `type`, which SSE uses as the event name.
        kind: &'static str,
        /// The message as JSON.
        json: Bytes,
        /// A position to resume from after this message (SSE `id:`).
        position: Option<Offset>,
    },
}

impl Outgoing {
    /// The event envelope `json` (serialized once, in the log) framed for
    /// the subscriptions whose ids `subs` lists (a JSON array).
    #[must_use]
    pub fn event(subs: &[u8], offset: Offset, json: &[u8]) -> Outgoing {
        const HEAD: &[u8] = br#"{"type":"event","subs":"#;
        let fields = HEAD.len() + subs.len() + 1;
        let mut frame = Vec::with_capacity(fields + json.len());
        frame.extend_from_slice(HEAD);
        frame.extend_from_slice(subs);
        frame.push(b',');
        // The envelope without its opening brace.
        frame.extend_from_slice(json.get(1..).unwrap_or_default());
        Outgoing::Event {
            frame: Bytes::from(frame),
            fields,
            offset,
        }
    }

    /// For an event: the envelope's fields, without the opening brace (the
    /// message minus `{"type":"event","subs":[...],`).
    #[must_use]
    pub fn envelope_fields(&self) -> Option<&[u8]> {
        match self {
            Outgoing::Event { frame, fields, .. } => frame.get(*fields..),
            Outgoing::Message { .. } => None,
        }
    }

    /// A live-only message (`kind`: `message`, `broadcast`,
    /// `member_joined`...) for the subscriptions whose ids `subs` lists:
    /// `{"type":<kind>,"subs":<subs>,<the fields of the object fields>}`.
    #[must_use]
    pub fn signal(kind: &'static str, subs: &[u8], fields: &[u8]) -> Outgoing {
        let mut json = Vec::with_capacity(16 + kind.len() + subs.len() + fields.len());
        json.extend_from_slice(br#"{"type":""#);
        json.extend_from_slice(kind.as_bytes());
        json.extend_from_slice(br#"","subs":"#);
        json.extend_from_slice(subs);
        match fields.get(1..) {
            // `fields` is an object: `{}` adds nothing, `{"a":1}` adds `,"a":1}`.
            Some(b"}") | None => json.push(b'}'),
            Some(rest) => {
                json.push(b',');
                json.extend_from_slice(rest);
            }
        }
        Outgoing::Message {
            kind,
            json: Bytes::from(json),
            position: None,
        }
    }

    /// A server message, serialized. `position` marks where a client may
    /// resume after it (SSE `id:`).
    #[must_use]
    pub fn message(m: &ServerMessage, position: Option<Offset>) -> Outgoing {
        Outgoing::Message {
            kind: m.kind(),
            json: Bytes::from(serde_json::to_vec(m).expect("server messages serialize")),
            position,
        }
    }

    /// Bytes it counts for in an outbox.
    #[must_use]
    pub fn size(&self) -> usize {
        ITEM_OVERHEAD
            + match self {
                Outgoing::Event { frame, .. } => frame.len(),
                Outgoing::Message { json, .. } => json.len(),
            }
    }
}

/// Why an outbox stopped taking items.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The connection fell behind: every live subscription has every
    /// matching event up to `resume_from` queued, and nothing after.
    SlowConsumer {
        /// The offset to resume after.
        resume_from: Offset,
    },
    /// The connection is closing for another reason.
    Closed,
}

/// The answer to a non-waiting push.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Not queued: the outbox is over its byte limit.
    Full,
    /// Not queued: the outbox has ended.
    Ended,
}

#[derive(Debug, Default)]
struct Queue {
    items: Vec<Outgoing>,
    bytes: usize,
    end: Option<End>,
}

/// A connection's outbound queue. Shared by the hub, history readers and the
/// transport's writer.
#[derive(Debug)]
pub struct Outbox {
    queue: Mutex<Queue>,
    /// Signalled when the queue goes from empty to not empty, or ends.
    ready: Notify,
    /// Signalled when the writer took items.
    room: Notify,
    limit: usize,
    /// When the client was last heard from (Unix ms, by the presence
    /// clock): presence expires members of a silent connection. Here
    /// because the outbox is the one piece of a connection that its
    /// transport, the hub and the rooms all share.
    heard: AtomicU64,
}

impl Outbox {
    /// An empty outbox holding at most about `limit` bytes.
    #[must_use]
    pub fn new(limit: usize) -> Outbox {
        Outbox {
            queue: Mutex::new(Queue::default()),
            ready: Notify::new(),
            room: Notify::new(),
            limit,
            heard: AtomicU64::new(0),
        }
    }

    /// Records that the client was heard from at `at`.
    pub fn hear(&self, at: Timestamp) {
        self.heard.store(at.0, Ordering::Relaxed);
    }

    /// When the client was last heard from (0: never recorded).
    #[must_use]
    pub fn heard(&self) -> Timestamp {
        Timestamp(self.heard.load(Ordering::Relaxed))
    }

    /// Its byte limit.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        // A panic while holding the lock leaves a consistent queue (every
        // mutation is a single step), so poisoning carries no meaning here.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `item` if it fits under the limit.
    pub fn push(&self, item: Outgoing) -> Pushed {
        self.push_under(item, self.limit, None)
    }

    /// Queues a small control message; it may exceed the limit (up to
    /// twice it) so answers are not lost behind events. Beyond that the
    /// client is not reading at all and the outbox ends as a slow consumer.
    pub fn push_control(&self, item: Outgoing, resume_from: Offset) -> Pushed {
        match self.push_under(item, self.limit * 2, None) {
            Pushed::Full => {
                self.end(End::SlowConsumer { resume_from });
                Pushed::Ended
            }
            other => other,
        }
    }

    /// Queues a control message of one subscription (like
    /// [`Outbox::push_control`], without ending the outbox when full) unless
    /// `cancelled` is set; the flag is read under the queue's lock, so after
    /// [`Outbox::cancel`] returns nothing more is queued for it.
    pub fn push_unless(&self, item: Outgoing, cancelled: &AtomicBool) -> Pushed {
        self.push_under(item, self.limit * 2, Some(cancelled))
    }

    fn push_under(&self, item: Outgoing, limit: usize, cancelled: Option<&AtomicBool>) -> Pushed {
        let size = item.size();
        let mut q = self.lock();
        if q.end.is_some() || cancelled.is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Pushed::Ended;
        }
        // An item larger than the whole limit still goes into an empty queue.
        if q.bytes + size > limit && !q.items.is_empty() {
            return Pushed::Full;
        }
        let was_empty = q.items.is_empty();
        q.bytes += size;
        q.items.push(item);
        drop(q);
        if was_empty {
            self.ready.notify_one();
        }
        Pushed::Queued
    }

    /// Queues `item` once the outbox is at most half full, waiting until
    /// then: history and snapshots fill only half of it, so live events of
    /// the connection's other subscriptions always find room. Returns
    /// `false` if the outbox ended or `cancelled` was set.
    pub async fn push_wait(&self, item: Outgoing, cancelled: &AtomicBool) -> bool {
        loop {
            let room = self.room.notified();
            match self.push_under(item.clone(), self.limit / 2, Some(cancelled)) {
                Pushed::Queued => return true,
                Pushed::Ended => return false,
                Pushed::Full => room.await,
            }
        }
    }

    /// Sets `flag` under the queue's lock: see [`Outbox::push_unless`].
    pub fn cancel(&self, flag: &AtomicBool) {
        let _q = self.lock();
        flag.store(true, Ordering::Relaxed);
        drop(_q);
        self.room.notify_waiters();
    }

    /// Stops taking items. The writer still gets what was queued, then the
    /// end. The first end wins.
    pub fn end(&self, end: End) {
        let mut q = self.lock();
        if q.end.is_none() {
            q.end = Some(end);
        }
        drop(q);
        self.ready.notify_one();
        self.room.notify_waiters();
    }

    /// Whether the outbox has ended.
    #[must_use]
    pub fn ended(&self) -> Option<End> {
        self.lock().end
    }

    /// Bytes that can be queued now without exceeding the limit.
    #[must_use]
    pub fn room(&self) -> usize {
        self.limit.saturating_sub(self.bytes())
    }

    /// Bytes queued now.
    #[must_use]
    pub fn bytes(&self) -> usize {
        self.lock().bytes
    }

    /// Moves everything queued into `into`; returns the end once the queue
    /// is empty and ended.
    pub fn take(&self, into: &mut Vec<Outgoing>) -> Option<End> {
        let mut q = self.lock();
        // Handing over the queue's own buffer leaves the queue none: an idle
        // connection keeps no capacity around (the writer drops its buffer
        // once written).
        if into.is_empty() {
            *into = std::mem::take(&mut q.items);
        } else {
            into.append(&mut q.items);
        }
        q.bytes = 0;
        let end = q.end;
        drop(q);
        self.room.notify_waiters();
        end
    }

    /// Waits until something is queued or the outbox ended. May return
    /// spuriously; call [`Outbox::take`] after.
    pub async fn ready(&self) {
        self.ready.notified().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(n: usize) -> Outgoing {
        Outgoing::Message {
            kind: "pong",
            json: Bytes::from(vec![b' '; n]),
            position: None,
        }
    }

    #[test]
    fn a_signal_frame_is_its_fields_with_type_and_subs() {
        let json = |o: Outgoing| match o {
            Outgoing::Message { json, kind, .. } => {
                (kind, String::from_utf8(json.to_vec()).unwrap())
            }
            Outgoing::Event { .. } => panic!("a message"),
        };
        let (kind, text) = json(Outgoing::signal("message", br#"["a"]"#, br#"{"data":1}"#));
        assert_eq!(kind, "message");
        assert_eq!(text, r#"{"type":"message","subs":["a"],"data":1}"#);
        let (_, text) = json(Outgoing::signal("broadcast", b"[]", b"{}"));
        assert_eq!(text, r#"{"type":"broadcast","subs":[]}"#);
        let parsed: herald_proto::ServerMessage = serde_json::from_str(
            &json(Outgoing::signal(
                "message",
                br#"["s"]"#,
                br#"{"channel":"c","data":{"x":1},"ts":5}"#,
            ))
            .1,
        )
        .unwrap();
        assert_eq!(parsed.kind(), "message");
    }

    #[test]
    fn an_event_frame_is_the_envelope_with_type_and_subs() {
        let json = br#"{"offset":7,"op":"publish","data":{"a":1}}"#;
        let item = Outgoing::event(br#"["s1","s2"]"#, Offset(7), json);
        let Outgoing::Event { frame, .. } = &item else {
            panic!("{item:?}")
        };
        let parsed: serde_json::Value = serde_json::from_slice(frame).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!({"type": "event", "subs": ["s1", "s2"], "offset": 7, "op": "publish", "data": {"a": 1}})
        );
        assert_eq!(item.envelope_fields().unwrap(), &json[1..]);
    }

    #[test]
    fn push_respects_the_byte_limit_and_take_empties() {
        let outbox = Outbox::new(1000);
        assert_eq!(outbox.push(message(500)), Pushed::Queued);
        assert_eq!(outbox.push(message(500)), Pushed::Full);
        assert_eq!(outbox.push(message(300)), Pushed::Queued);
        let mut items = Vec::new();
        assert_eq!(outbox.take(&mut items), None);
        assert_eq!(items.len(), 2);
        assert_eq!(outbox.bytes(), 0);
        // Oversized items pass into an empty queue.
        assert_eq!(outbox.push(message(5000)), Pushed::Queued);
    }

    #[test]
    fn control_messages_may_exceed_the_limit_up_to_twice() {
        let outbox = Outbox::new(1000);
        assert_eq!(outbox.push(message(900)), Pushed::Queued);
        assert_eq!(outbox.push_control(message(500), Offset(3)), Pushed::Queued);
        assert_eq!(outbox.push_control(message(900), Offset(3)), Pushed::Ended);
        assert_eq!(
            outbox.ended(),
            Some(End::SlowConsumer {
                resume_from: Offset(3)
            })
        );
        let mut items = Vec::new();
        assert!(outbox.take(&mut items).is_some());
        assert_eq!(items.len(), 2, "queued items survive the end");
    }

    #[test]
    fn cancelled_pushes_are_refused() {
        let outbox = Outbox::new(1000);
        let flag = AtomicBool::new(false);
        assert_eq!(outbox.push_unless(message(1), &flag), Pushed::Queued);
        // Control-sized: beyond the limit, up to twice it.
        assert_eq!(outbox.push(message(800)), Pushed::Queued);
        assert_eq!(outbox.push_unless(message(500), &flag), Pushed::Queued);
        assert_eq!(outbox.push_unless(message(900), &flag), Pushed::Full);
        outbox.cancel(&flag);
        assert_eq!(outbox.push_unless(message(1), &flag), Pushed::Ended);
        outbox.take(&mut Vec::new());
        assert_eq!(outbox.push(message(1)), Pushed::Queued);
    }

    #[tokio::test]
    async fn push_wait_waits_for_the_writer() {
        let outbox = std::sync::Arc::new(Outbox::new(1000));
        let flag = AtomicBool::new(false);
        assert!(outbox.push_wait(message(300), &flag).await);
        // Half the outbox stays free for live events.
        assert_eq!(outbox.push(message(500)), Pushed::Queued);
        outbox.take(&mut Vec::new());
        assert!(outbox.push_wait(message(900), &flag).await);
        let waiter = {
            let outbox = outbox.clone();
            tokio::spawn(async move {
                let flag = AtomicBool::new(false);
                outbox.push_wait(message(900), &flag).await
            })
        };
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        let mut items = Vec::new();
        outbox.take(&mut items);
        assert!(waiter.await.unwrap());
        outbox.end(End::Closed);
        assert!(!outbox.push_wait(message(1), &flag).await);
    }
}
