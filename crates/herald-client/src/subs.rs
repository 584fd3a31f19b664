//! The connection task's table of subscriptions: where each one stands in the
//! log, and routing of server messages to their streams.
//!
//! Invariants:
//! - A subscription's `position` is the highest offset handed to its stream
//!   (events, snapshot, `subscribed`); an event at or below it is a duplicate
//!   and dropped.
//! - On reconnection every subscription is sent again with `from` set to its
//!   position and without snapshot, so the stream continues without a gap.
//!   One that has no position yet is sent as the application asked.
//! - The stream's buffer holds at most `buffer` items once live; one more slot
//!   is kept for the error that ends an overflowing subscription.

use crate::error::ClientError;
use crate::subscription::{Delivery, SubscriptionItem};
use herald_proto::{
    ClientMessage, Epoch, ErrorCode, Event, Offset, ResumeToken, StartFrom, Subscribe,
};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// A subscription id, `s<n>` on the wire; unique for the client's lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct SubId(pub(crate) u64);

impl fmt::Display for SubId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s{}", self.0)
    }
}

impl FromStr for SubId {
    type Err = ();
    fn from_str(s: &str) -> Result<SubId, ()> {
        s.strip_prefix('s')
            .and_then(|n| n.parse().ok())
            .map(SubId)
            .ok_or(())
    }
}

/// Where `subscribe` hears how its request went.
pub(crate) type SubscribeAnswer = oneshot::Sender<Result<(), ClientError>>;

struct Entry {
    /// The request as the application made it.
    request: Subscribe,
    items: mpsc::Sender<Delivery>,
    /// `Some` until the first `subscribed` (or error) is passed on.
    answer: Option<SubscribeAnswer>,
    position: Option<ResumeToken>,
    /// Snapshot chunks are still to come: a reconnection now cannot resume.
    snapshot_open: bool,
    /// Sent on the current connection.
    sent: bool,
}

/// Every subscription of the client, by id.
#[derive(Default)]
pub(crate) struct SubTable {
    entries: BTreeMap<SubId, Entry>,
    /// Some entry may be unsent (spares a scan per server message).
    unsent: bool,
}

/// Why a subscription was ended by the table.
enum Ended {
    /// The application dropped its stream.
    Dropped,
    /// The stream's buffer is full.
    Overflow,
}

impl SubTable {
    /// The capacity of a stream's channel: the buffer plus the slot kept for
    /// the final error.
    pub(crate) fn channel_capacity(buffer: usize) -> usize {
        buffer.max(1) + 1
    }

    pub(crate) fn add(
        &mut self,
        id: SubId,
        request: Subscribe,
        items: mpsc::Sender<Delivery>,
        answer: SubscribeAnswer,
    ) {
        self.entries.insert(
            id,
            Entry {
                request,
                items,
                answer: Some(answer),
                position: None,
                snapshot_open: false,
                sent: false,
            },
        );
        self.unsent = true;
    }

    /// Forgets a subscription; returns whether the server knows it (so an
    /// `unsubscribe` is due).
    pub(crate) fn remove(&mut self, id: SubId) -> bool {
        self.entries.remove(&id).is_some_and(|e| e.sent)
    }

    /// The `subscribe` messages not yet sent on this connection, marking them
    /// sent. Subscriptions whose application went away are dropped instead.
    pub(crate) fn take_unsent(&mut self) -> Vec<(SubId, ClientMessage)> {
        if !std::mem::take(&mut self.unsent) {
            return Vec::new();
        }
        self.entries.retain(|_, e| !e.gone());
        let mut out = Vec::new();
        for (id, entry) in &mut self.entries {
            if entry.sent {
                continue;
            }
            entry.sent = true;
            let mut wire = entry.request.clone();
            wire.id = id.to_string();
            if let Some(position) = entry.position {
                wire.from = Some(StartFrom::Token(position));
                wire.snapshot = false;
            }
            out.push((*id, ClientMessage::Subscribe(wire)));
        }
        out
    }

    /// A subscription could not be sent; it ends with `error`.
    pub(crate) fn fail(&mut self, id: SubId, error: ClientError) {
        if let Some(entry) = self.entries.remove(&id) {
            entry.fail(error);
        }
    }

    /// The connection is gone: everything is to be sent again, except
    /// subscriptions caught in the middle of their snapshot, which end.
    pub(crate) fn connection_lost(&mut self) {
        self.unsent = true;
        let mut broken = Vec::new();
        for (id, entry) in &mut self.entries {
            entry.sent = false;
            if entry.snapshot_open {
                broken.push(*id);
            }
        }
        for id in broken {
            self.fail(id, ClientError::ConnectionLost);
        }
    }

    /// The client is closing: pending `subscribe` calls fail, streams end.
    pub(crate) fn close_all(&mut self) {
        for (_, entry) in std::mem::take(&mut self.entries) {
            if let Some(answer) = entry.answer {
                let _ = answer.send(Err(ClientError::Closed));
            }
        }
    }

    // --- Server messages. Each returns the subscriptions the server should
    // --- forget because their application went away.

    pub(crate) fn on_subscribed(&mut self, id: &str, offset: Offset, epoch: Epoch) -> Vec<SubId> {
        self.update(id, |entry| match entry.answer.take() {
            Some(answer) => {
                entry.deliver(epoch, SubscriptionItem::Live { offset })?;
                answer.send(Ok(())).map_err(|_| Ended::Dropped)
            }
            None => entry.deliver(epoch, SubscriptionItem::Resumed { offset }),
        })
    }

    pub(crate) fn on_snapshot(
        &mut self,
        id: &str,
        docs: Vec<Value>,
        chunk: u32,
        chunks: u32,
        offset: Offset,
        epoch: Epoch,
    ) -> Vec<SubId> {
        self.update(id, |entry| {
            entry.snapshot_open = chunk < chunks;
            let item = SubscriptionItem::Snapshot {
                docs,
                chunk,
                chunks,
                offset,
            };
            entry.deliver(epoch, item)
        })
    }

    pub(crate) fn on_event(&mut self, subs: &[String], event: Event) -> Vec<SubId> {
        let event = Arc::new(event);
        let mut gone = Vec::new();
        for id in subs {
            gone.extend(self.update(id, |entry| {
                if entry.position.is_some_and(|p| event.offset <= p.offset) {
                    tracing::debug!(sub = %id, offset = %event.offset, "dropping duplicate event");
                    return Ok(());
                }
                entry.deliver(event.epoch, SubscriptionItem::Event(Arc::clone(&event)))
            }));
        }
        gone
    }

    pub(crate) fn on_lagged(
        &mut self,
        id: &str,
        resume_from: Offset,
        until: Offset,
        epoch: Epoch,
    ) -> Vec<SubId> {
        self.update(id, |entry| {
            entry.deliver(epoch, SubscriptionItem::Lagged { resume_from, until })
        })
    }

    /// The server refused or ended the subscription `id`: a pending
    /// `subscribe` returns the error, a live stream yields it and ends.
    /// Returns whether the id was a subscription of the table.
    pub(crate) fn on_error(
        &mut self,
        id: &str,
        code: ErrorCode,
        message: String,
        earliest: Option<Offset>,
    ) -> bool {
        let Ok(id) = id.parse::<SubId>() else {
            return false;
        };
        match self.entries.remove(&id) {
            Some(entry) => {
                entry.fail(ClientError::Server {
                    code,
                    message,
                    earliest,
                });
                true
            }
            None => false,
        }
    }

    /// The server ended the subscription `id` (after an `unsubscribe`).
    pub(crate) fn on_unsubscribed(&mut self, id: &str) {
        if let Ok(id) = id.parse::<SubId>() {
            self.entries.remove(&id);
        }
    }

    /// Applies `step` to the subscription `id`, if the table has it, and
    /// removes it when the step ends it.
    fn update(
        &mut self,
        id: &str,
        step: impl FnOnce(&mut Entry) -> Result<(), Ended>,
    ) -> Vec<SubId> {
        let Ok(id) = id.parse::<SubId>() else {
            return Vec::new();
        };
        let Some(entry) = self.entries.get_mut(&id) else {
            return Vec::new();
        };
        match step(entry) {
            Ok(()) => Vec::new(),
            Err(ended) => {
                let entry = self.entries.remove(&id).expect("entry was just used");
                let sent = entry.sent;
                match ended {
                    Ended::Dropped => tracing::debug!(sub = %id, "subscription dropped"),
                    Ended::Overflow => {
                        tracing::warn!(sub = %id, "subscription buffer full: ending it");
                        let resume_from = entry.position;
                        entry.fail(ClientError::Overflow { resume_from });
                    }
                }
                if sent { vec![id] } else { Vec::new() }
            }
        }
    }
}

impl Entry {
    /// The application no longer listens.
    fn gone(&self) -> bool {
        self.items.is_closed() && self.answer.as_ref().is_none_or(|a| a.is_closed())
    }

    /// Hands an item to the stream without ever waiting, and moves the
    /// position to the item's offset once it is handed over (so an overflow
    /// reports the position of the last item the application will see).
    fn deliver(&mut self, epoch: Epoch, item: SubscriptionItem) -> Result<(), Ended> {
        let offset = item.offset();
        // While `subscribe` waits it drains the channel, so the reserve slot
        // is only kept once the subscription belongs to the application.
        if self.answer.is_none() && self.items.capacity() <= 1 {
            return Err(Ended::Overflow);
        }
        match self.items.try_send(Delivery::Item { epoch, item }) {
            Ok(()) => {
                if let Some(offset) = offset
                    && self.position.is_none_or(|p| p.offset < offset)
                {
                    self.position = Some(ResumeToken { epoch, offset });
                }
                Ok(())
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Ended::Dropped),
            Err(mpsc::error::TrySendError::Full(_)) => Err(Ended::Overflow),
        }
    }

    /// Ends the subscription with `error`: returned from a pending
    /// `subscribe`, or as the stream's last item.
    fn fail(self, error: ClientError) {
        match self.answer {
            Some(answer) => {
                let _ = answer.send(Err(error));
            }
            None => {
                let _ = self.items.try_send(Delivery::Failed(error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use herald_proto::{EventBody, Timestamp};
    use serde_json::json;

    const EPOCH: Epoch = Epoch(7);

    fn event(offset: u64) -> Event {
        Event {
            offset: Offset(offset),
            epoch: EPOCH,
            ts: Timestamp(1),
            topic: "chat".into(),
            body: EventBody::Publish {
                channel: "chat".into(),
                data: json!(offset),
                from: None,
            },
        }
    }

    /// A table with one live subscription `s1` to `chat` with snapshot and a
    /// buffer of `buffer` items.
    fn live_table(buffer: usize) -> (SubTable, mpsc::Receiver<Delivery>) {
        let mut table = SubTable::default();
        let (items, rx) = mpsc::channel(SubTable::channel_capacity(buffer));
        let (answer, mut answered) = oneshot::channel();
        let request = Subscribe {
            channel: Some("chat".into()),
            snapshot: true,
            ..Subscribe::default()
        };
        table.add(SubId(1), request, items, answer);
        assert_eq!(table.take_unsent().len(), 1);
        assert!(table.on_subscribed("s1", Offset(2), EPOCH).is_empty());
        assert!(matches!(answered.try_recv(), Ok(Ok(()))));
        (table, rx)
    }

    fn drain(rx: &mut mpsc::Receiver<Delivery>) -> Vec<Delivery> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    /// The offsets of the items waiting in `rx`; `None` for an error.
    fn offsets(rx: &mut mpsc::Receiver<Delivery>) -> Vec<Option<u64>> {
        drain(rx)
            .into_iter()
            .map(|delivery| match delivery {
                Delivery::Item { item, .. } => item.offset().map(|o| o.0),
                Delivery::Failed(_) => None,
            })
            .collect()
    }

    #[test]
    fn events_at_or_below_the_position_are_dropped() {
        let (mut table, mut rx) = live_table(16);
        let subs = ["s1".to_owned()];
        for offset in [1, 2, 3, 3, 5, 4] {
            table.on_event(&subs, event(offset));
        }
        assert_eq!(offsets(&mut rx), [Some(2), Some(3), Some(5)]);
    }

    #[test]
    fn resubscription_resumes_from_the_last_position_without_snapshot() {
        let (mut table, _rx) = live_table(16);
        table.on_event(&["s1".to_owned()], event(9));
        assert!(
            table.take_unsent().is_empty(),
            "nothing to send while connected"
        );
        table.connection_lost();
        let sent = table.take_unsent();
        let [(SubId(1), ClientMessage::Subscribe(wire))] = sent.as_slice() else {
            panic!("{sent:?}");
        };
        assert_eq!(wire.id, "s1");
        assert_eq!(
            wire.from,
            Some(StartFrom::Token(ResumeToken {
                epoch: EPOCH,
                offset: Offset(9)
            }))
        );
        assert!(!wire.snapshot);
    }

    #[test]
    fn a_full_buffer_ends_the_subscription_with_its_resume_position() {
        let (mut table, mut rx) = live_table(2);
        let subs = ["s1".to_owned()];
        // The Live item fills one slot of two; one event fits, the next overflows.
        assert!(table.on_event(&subs, event(3)).is_empty());
        assert_eq!(table.on_event(&subs, event(4)), [SubId(1)]);
        let delivered = drain(&mut rx);
        assert_eq!(delivered.len(), 3);
        match &delivered[2] {
            Delivery::Failed(ClientError::Overflow { resume_from }) => {
                assert_eq!(resume_from.map(|p| p.offset), Some(Offset(3)));
            }
            other => panic!("{other:?}"),
        }
        table.on_event(&subs, event(5));
        assert!(offsets(&mut rx).is_empty(), "the subscription is gone");
    }

    #[test]
    fn a_dropped_stream_is_forgotten_and_unsubscribed() {
        let (mut table, rx) = live_table(16);
        drop(rx);
        assert_eq!(table.on_event(&["s1".to_owned()], event(3)), [SubId(1)]);
        assert!(!table.remove(SubId(1)));
    }

    #[test]
    fn losing_the_connection_mid_snapshot_ends_the_subscription() {
        let mut table = SubTable::default();
        let (items, _rx) = mpsc::channel(4);
        let (answer, mut answered) = oneshot::channel();
        table.add(SubId(1), Subscribe::default(), items, answer);
        table.take_unsent();
        table.on_snapshot("s1", vec![json!({"id": "a"})], 1, 2, Offset(5), EPOCH);
        table.connection_lost();
        assert!(matches!(
            answered.try_recv(),
            Ok(Err(ClientError::ConnectionLost))
        ));
        assert!(table.take_unsent().is_empty());
    }
}
