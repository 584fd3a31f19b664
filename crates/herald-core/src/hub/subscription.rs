//! A subscription as the hub holds it: what it selects ([`Selector`]) and
//! where its events go ([`Sub`]).

use super::SubscriptionSpec;
use super::history::Pending;
use crate::outbox::{Outbox, Outgoing, Pushed};
use crate::subscribe::Topic;
use crate::view::View;
use bytes::Bytes;
use herald_filter::{ChangedFields, Filter};
use herald_proto::{
    Event, EventBody, LagPolicy, Offset, Op, ServerMessage, SubscriptionInfo, Timestamp,
};
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Operations as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct OpSet(u8);

impl OpSet {
    const ALL: OpSet = OpSet(0b1111);

    fn of(ops: Option<&[Op]>) -> OpSet {
        ops.map_or(OpSet::ALL, |ops| {
            OpSet(ops.iter().fold(0, |bits, &op| bits | OpSet::bit(op)))
        })
    }

    fn bit(op: Op) -> u8 {
        match op {
            Op::Insert => 1,
            Op::Update => 2,
            Op::Delete => 4,
            Op::Publish => 8,
        }
    }

    fn contains(self, op: Op) -> bool {
        self.0 & OpSet::bit(op) != 0
    }
}

/// What a subscription takes from its topic: operations, changed fields and
/// its filter.
#[derive(Debug, Clone)]
pub(super) struct Selector {
    ops: OpSet,
    changed: Option<ChangedFields>,
    filter: Arc<Filter>,
}

impl Selector {
    pub(super) fn new(
        ops: Option<&[Op]>,
        changed: Option<ChangedFields>,
        filter: Arc<Filter>,
    ) -> Selector {
        Selector {
            ops: OpSet::of(ops),
            changed,
            filter,
        }
    }

    pub(super) fn of(spec: &SubscriptionSpec) -> Selector {
        Selector::new(
            spec.ops.as_deref(),
            spec.changed.clone(),
            spec.filter.clone(),
        )
    }

    /// Operations and changed fields (the index has checked the filter),
    /// for a reader seeing events through `view`. An update whose previous
    /// version the view withholds counts as changing every field: telling
    /// which fields changed would describe the withheld version.
    pub(super) fn admits(&self, event: &Event, view: &View) -> bool {
        self.ops.contains(event.op())
            && match (&self.changed, &event.body) {
                (
                    Some(watch),
                    EventBody::Update {
                        changed, doc, old, ..
                    },
                ) => !view.shows_old(event) || watch.touches_update(changed, old, doc),
                _ => true,
            }
    }

    /// Whether it takes events of operation `op`.
    pub(super) fn admits_op(&self, op: Op) -> bool {
        self.ops.contains(op)
    }

    pub(super) fn filter(&self) -> &Arc<Filter> {
        &self.filter
    }

    /// Everything, filter included.
    pub(super) fn selects(&self, event: &Event, view: &View) -> bool {
        self.admits(event, view) && self.filter.matches(event.subject())
    }
}

/// What a subscription received, shared with its history reader.
#[derive(Debug, Default)]
pub(super) struct Progress {
    delivered: AtomicU64,
    last: AtomicU64,
}

impl Progress {
    /// Counts `count` events queued, the last at `offset`.
    pub(super) fn record(&self, count: u64, offset: Offset) {
        self.delivered.fetch_add(count, Ordering::Relaxed);
        self.last.fetch_max(offset.0, Ordering::Relaxed);
    }
}

/// What a subscription needs at routing time, and what listings show.
#[derive(Debug)]
pub(super) struct Sub {
    pub(super) conn: u64,
    pub(super) nonce: u64,
    pub(super) id: Arc<str>,
    /// The id as a JSON string, and as a one-element `subs` array.
    pub(super) id_json: Bytes,
    pub(super) subs_json: Bytes,
    pub(super) topic: Topic,
    pub(super) selector: Selector,
    pub(super) filter_source: Option<Value>,
    pub(super) ops_list: Option<Vec<Op>>,
    pub(super) on_lag: LagPolicy,
    /// What its reader may see of the events it is sent.
    pub(super) view: View,
    /// Events at or below this offset are not for it (history covered them).
    pub(super) after: Offset,
    pub(super) live: bool,
    /// Skipping events (`on_lag: skip`) since this offset.
    pub(super) lagging: Option<Offset>,
    /// Paused: nothing after this offset was delivered.
    pub(super) paused: Option<Offset>,
    /// Going live after a pause: announce `resumed`, not `subscribed`.
    pub(super) resuming: bool,
    pub(super) created_at: Timestamp,
    pub(super) progress: Arc<Progress>,
    pub(super) outbox: Arc<Outbox>,
    pub(super) cancel: Arc<AtomicBool>,
    /// A room membership: ended by leaving, not `unsubscribe`.
    pub(super) membership: bool,
    /// How it is announced live; `Subscribed` once announced.
    pub(super) announce: super::Announce,
    /// It gets `member_*` signals.
    pub(super) sees_presence: bool,
}

impl Sub {
    /// Whether `event`, which the index matched, goes to this subscription
    /// now.
    pub(super) fn wants(&self, event: &Event) -> bool {
        event.offset > self.after
            && self.lagging.is_none()
            && self.selector.admits(event, &self.view)
    }

    pub(super) fn info(&self) -> SubscriptionInfo {
        SubscriptionInfo {
            id: self.id.to_string(),
            topic: self.topic.key(),
            ops: self.ops_list.clone(),
            filter: self.filter_source.clone(),
            changed: self.selector.changed.as_ref().map(|c| c.fields().to_vec()),
            on_lag: self.on_lag,
            live: self.live,
            paused: self.paused.is_some(),
            created_at: self.created_at,
            delivered: self.progress.delivered.load(Ordering::Relaxed),
            last_offset: Offset(self.progress.last.load(Ordering::Relaxed)),
            room: self.membership,
        }
    }

    /// What its history reader needs to read from `after`.
    pub(super) fn pending(&self, after: Offset, snapshot: bool) -> Pending {
        Pending {
            conn: self.conn,
            id: self.id.clone(),
            nonce: self.nonce,
            subs_json: self.subs_json.clone(),
            id_json: self.id_json.clone(),
            topic: self.topic.clone(),
            selector: self.selector.clone(),
            view: self.view.clone(),
            snapshot,
            after,
            cancel: self.cancel.clone(),
            progress: self.progress.clone(),
            outbox: self.outbox.clone(),
        }
    }
}

/// A JSON string.
pub(super) fn json_string(s: &str) -> Bytes {
    Bytes::from(serde_json::to_vec(s).expect("strings serialize"))
}

/// Ends the skipping of a lagging subscription if its connection has room
/// again (half its outbox free), queuing `lagged` with the gap, which ends
/// before `until`. Returns whether it is no longer lagging.
pub(super) fn resume(sub: &mut Sub, until: Offset) -> bool {
    let Some(resume_from) = sub.lagging else {
        return true;
    };
    if sub.outbox.bytes() > sub.outbox.limit() / 2 {
        return false;
    }
    let lagged = Outgoing::message(
        &ServerMessage::Lagged {
            id: sub.id.to_string(),
            resume_from,
            until,
        },
        None,
    );
    match sub.outbox.push_control(lagged, resume_from) {
        Pushed::Queued => {
            sub.lagging = None;
            true
        }
        Pushed::Full | Pushed::Ended => false,
    }
}
