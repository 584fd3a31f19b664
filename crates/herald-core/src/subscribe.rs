//! In-process subscriptions, fed by the log.
//!
//! A subscription registers for committed events *before* it reads the log,
//! then skips anything at or below the last offset it delivered. Every event
//! is therefore seen exactly once: events committed before registration are
//! in the log, later ones arrive live. A subscriber that falls behind the live
//! feed (more than a thousand commit groups) goes back to the log, so it never
//! misses anything either; it only gets slower.

use crate::herald::Herald;
use futures_core::Stream;
use herald_proto::{Event, Offset, Op};
use herald_store::{ChannelName, StoreError, TableName, TopicFilter};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// Log records read per catch-up step.
const CATCH_UP_CHUNK: usize = 512;

/// What a subscription listens to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Topic {
    /// Changes of one table.
    Table(TableName),
    /// Changes of every table.
    AllTables,
    /// Messages of one channel.
    Channel(ChannelName),
}

impl Topic {
    /// A table's changes; validates the name.
    pub fn table(name: &str) -> Result<Topic, StoreError> {
        Ok(Topic::Table(TableName::new(name)?))
    }

    /// A channel's messages; validates the name.
    pub fn channel(name: &str) -> Result<Topic, StoreError> {
        Ok(Topic::Channel(ChannelName::new(name)?))
    }

    /// The topic a [`Topic::key`] names.
    pub fn parse(key: &str) -> Result<Topic, StoreError> {
        match key.strip_prefix("table:") {
            Some("*") => Ok(Topic::AllTables),
            Some(table) => Topic::table(table),
            None => Topic::channel(key),
        }
    }

    /// Its name as a topic: `table:<name>`, `table:*` or the channel name.
    #[must_use]
    pub fn key(&self) -> String {
        match self {
            Topic::Table(t) => t.topic(),
            Topic::AllTables => ALL_TABLES.to_owned(),
            Topic::Channel(c) => c.as_str().to_owned(),
        }
    }

    /// Whether an event of topic `topic` belongs to it.
    #[must_use]
    pub fn selects(&self, topic: &str) -> bool {
        match self {
            Topic::Table(t) => topic.strip_prefix("table:") == Some(t.as_str()),
            Topic::AllTables => topic.starts_with("table:"),
            Topic::Channel(c) => topic == c.as_str(),
        }
    }

    /// The store's selection of its events, for log reads.
    #[must_use]
    pub fn filter(&self) -> TopicFilter {
        match self {
            Topic::AllTables => TopicFilter::AllTables,
            other => TopicFilter::Exact(other.key()),
        }
    }
}

/// The topic name of every-table subscriptions.
pub(crate) const ALL_TABLES: &str = "table:*";

/// How a subscription starts and what it keeps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeOptions {
    /// Replay every event after this offset first. `None`: only new events.
    pub from: Option<Offset>,
    /// Deliver only these operations. `None`: all.
    pub ops: Option<Vec<Op>>,
}

impl Herald {
    /// Subscribes to a topic. The subscription is live when this returns:
    /// every event committed afterwards is delivered, in offset order.
    ///
    /// The stream ends with an error when `from` is older than retention
    /// ([`StoreError::Unrecoverable`], naming the earliest offset), and ends
    /// when the store closes, after delivering every event committed before.
    pub fn subscribe(
        &self,
        topic: Topic,
        options: SubscribeOptions,
    ) -> impl Stream<Item = Result<Arc<Event>, StoreError>> + Send + 'static {
        let store = self.store.clone();
        let mut live = store.committed();
        let mut last = options.from.unwrap_or_else(|| store.head());
        let mut catch_up = options.from.is_some();
        let mut closed = store.closed();
        let mut closing = false;
        let topics = topic.filter();
        let wanted = move |event: &Event| {
            options
                .ops
                .as_ref()
                .is_none_or(|ops| ops.contains(&event.op()))
        };
        async_stream::stream! {
            loop {
                while catch_up {
                    let (reader, topics_now) = (store.clone(), topics.clone());
                    let chunk = crate::blocking(move || {
                        reader.read_log(last, None, &topics_now, CATCH_UP_CHUNK)
                    })
                    .await;
                    let chunk = match chunk {
                        Ok(chunk) => chunk,
                        Err(e) => {
                            yield Err(e);
                            return;
                        }
                    };
                    for record in &chunk.records {
                        match record.to_event() {
                            Ok(event) if wanted(&event) => yield Ok(Arc::new(event)),
                            Ok(_) => {}
                            Err(e) => {
                                yield Err(e);
                                return;
                            }
                        }
                    }
                    last = chunk.next_after;
                    catch_up = !chunk.done;
                }
                if closing {
                    return;
                }
                let received = tokio::select! {
                    biased;
                    received = live.recv() => received,
                    _ = closed.wait_for(|closed| *closed) => {
                        // Nothing more will be committed: deliver what was,
                        // from the log, then end.
                        closing = true;
                        catch_up = true;
                        continue;
                    }
                };
                match received {
                    Ok(group) => {
                        for committed in group.iter() {
                            let event = &committed.event;
                            if event.offset <= last {
                                continue;
                            }
                            last = event.offset;
                            if topics.matches(&event.topic) && wanted(event) {
                                yield Ok(event.clone());
                            }
                        }
                    }
                    Err(RecvError::Lagged(_)) => catch_up = true,
                    Err(RecvError::Closed) => return,
                }
            }
        }
    }
}
