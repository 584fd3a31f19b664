//! Routing a signal through the shard: the subscriptions of its channels
//! (through their filters for a channel message, all of them otherwise), or
//! every connection; one frame per distinct list of subscription ids, one
//! copy per connection.

use super::Shard;
use crate::hub::signal::{Reach, Signal, Target};
use crate::outbox::{Outgoing, Pushed};
use bytes::Bytes;
use herald_proto::{Op, Timestamp};
use std::collections::HashMap;

impl Shard {
    pub(super) fn route_signal(&mut self, signal: &Signal) -> Reach {
        // Skipping subscriptions whose connection has room again come back
        // here too: a server of live-only channels may route no logged event
        // for a long time.
        if !self.lagging.is_empty() {
            self.resume_lagging();
        }
        let Target::Channels(channels) = &signal.target else {
            return self.signal_everyone(signal);
        };
        self.matched.clear();
        for channel in channels {
            let Some(entry) = self.topics.get_mut(channel.as_str()) else {
                continue;
            };
            match &signal.subject {
                // A message: counted like one, selected like one.
                Some(data) => {
                    entry.events += 1;
                    entry.last_event = Timestamp::now();
                    entry.index.matches(data, &mut self.matched);
                }
                None => self.matched.extend(entry.index.ids()),
            }
        }
        self.deliveries.clear();
        for &slot in &self.matched {
            let sub = &self.subs[slot];
            let wanted = sub.lagging.is_none()
                && signal.except != Some(sub.conn)
                && (!signal.presence || sub.sees_presence)
                && (signal.subject.is_none() || sub.selector.admits_op(Op::Publish));
            if wanted {
                self.deliveries.push((sub.conn, slot));
            }
        }
        // Several targeted channels may hold the same subscription's
        // connection; sorted, a connection's subscriptions are adjacent.
        self.deliveries.sort_unstable();
        self.deliveries.dedup();
        let mut reach = Reach::default();
        let deliveries = std::mem::take(&mut self.deliveries);
        // One frame per distinct `subs` list, shared by every connection
        // with that list: a broadcast to R rooms builds about R frames.
        let mut frames: HashMap<Bytes, Outgoing> = HashMap::new();
        for group in deliveries.chunk_by(|a, b| a.0 == b.0) {
            let subs = self.subs_list(group);
            let item = frames
                .entry(subs)
                .or_insert_with_key(|subs| Outgoing::signal(signal.kind, subs, &signal.fields))
                .clone();
            let conn = group[0].0;
            let outbox = self.subs[group[0].1].outbox.clone();
            match outbox.push(item) {
                Pushed::Queued => {
                    reach.subscriptions += group.len() as u64;
                    reach.connections += 1;
                    if signal.subject.is_some() {
                        self.count_channel_deliveries(channels, group.len() as u64);
                    }
                }
                Pushed::Full => {
                    let slots: Vec<usize> = group.iter().map(|&(_, s)| s).collect();
                    // Nothing durable is missing up to the head: that is
                    // where a cut connection resumes.
                    self.overflow(conn, &slots, self.head.next());
                }
                Pushed::Ended => {}
            }
        }
        self.deliveries = deliveries;
        reach
    }

    fn signal_everyone(&mut self, signal: &Signal) -> Reach {
        let item = Outgoing::signal(signal.kind, b"[]", &signal.fields);
        let mut reach = Reach::default();
        let mut full = Vec::new();
        // Only admitted connections: a WebSocket that has yet to send
        // `auth` may be anyone.
        for (&conn, c) in self.conns.iter().filter(|(_, c)| c.info.identified) {
            match c.outbox.push(item.clone()) {
                Pushed::Queued => reach.connections += 1,
                Pushed::Full => full.push(conn),
                Pushed::Ended => {}
            }
        }
        // Too far behind to take it: cut like any slow consumer, whatever
        // its subscriptions' lag policies (a broadcast has no gap to skip).
        for conn in full {
            self.overflow(conn, &[], self.head.next());
        }
        reach
    }

    /// Counts `n` deliveries of a channel message (one channel per
    /// message signal).
    fn count_channel_deliveries(&mut self, channels: &[herald_store::ChannelName], n: u64) {
        if let [channel] = channels
            && let Some(entry) = self.topics.get_mut(channel.as_str())
        {
            entry.deliveries += n;
        }
    }
}
