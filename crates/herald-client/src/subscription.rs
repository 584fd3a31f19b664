//! [`Subscription`]: the application's end of one subscription, a stream of
//! [`SubscriptionItem`]s.

use crate::error::ClientError;
use crate::session::Command;
use futures_util::Stream;
use herald_proto::{Epoch, Event, Offset, ResumeToken};
use serde_json::Value;
use std::collections::VecDeque;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// One thing a subscription delivers, in log order.
///
/// A new subscription yields its snapshot chunks and history events first,
/// then [`SubscriptionItem::Live`], then live events. After a reconnection it
/// yields the events it missed, then [`SubscriptionItem::Resumed`].
#[derive(Debug, Clone, PartialEq)]
pub enum SubscriptionItem {
    /// One chunk of the matching documents (when subscribed with
    /// [`snapshot`](crate::SubscribeRequest::snapshot)).
    Snapshot {
        /// Documents as stored (each with its `id`), in id order.
        docs: Vec<Value>,
        /// This chunk's number, from 1.
        chunk: u32,
        /// How many chunks the snapshot has.
        chunks: u32,
        /// The documents are exactly the state after this offset.
        offset: Offset,
    },
    /// A change or message. Shared: one frame serving several subscriptions
    /// of the client is parsed once.
    Event(Arc<Event>),
    /// History is over: every event up to `offset` has been delivered and
    /// every later one is live.
    Live {
        /// The position the subscription went live at.
        offset: Offset,
    },
    /// The server skipped events of this subscription because the connection
    /// fell behind (`on_lag: "skip"`): events in `(resume_from, until)` were
    /// not delivered. Subscribe separately from `resume_from` to fetch them.
    Lagged {
        /// Replay after this offset to get what was skipped.
        resume_from: Offset,
        /// The first offset delivered again after the gap.
        until: Offset,
    },
    /// The subscription is live again after a reconnection; the events
    /// missed while disconnected came just before this item.
    Resumed {
        /// The position it went live at on the new connection.
        offset: Offset,
    },
}

impl SubscriptionItem {
    /// The log position this item brings the subscription to, if any.
    #[must_use]
    pub fn offset(&self) -> Option<Offset> {
        match self {
            SubscriptionItem::Snapshot { offset, .. }
            | SubscriptionItem::Live { offset }
            | SubscriptionItem::Resumed { offset } => Some(*offset),
            SubscriptionItem::Event(event) => Some(event.offset),
            SubscriptionItem::Lagged { .. } => None,
        }
    }
}

/// What the connection task hands a subscription's stream.
#[derive(Debug)]
pub(crate) enum Delivery {
    /// An item, with the epoch its offset belongs to.
    Item {
        epoch: Epoch,
        item: SubscriptionItem,
    },
    /// The subscription ended with this error; nothing follows.
    Failed(ClientError),
}

/// A live subscription: a [`Stream`] of items in log order.
///
/// The stream ends (`None`) when the subscription is unsubscribed or the
/// client is closed, and after an error item: a resume position the server
/// can no longer honour after a reconnection
/// ([`ErrorCode::UnrecoverablePosition`](herald_proto::ErrorCode::UnrecoverablePosition)),
/// an application too slow to read ([`ClientError::Overflow`]) or a
/// connection lost in the middle of the snapshot.
///
/// Dropping a `Subscription` unsubscribes it.
///
/// Items wait in a buffer of
/// [`ClientConfig::subscription_buffer`](crate::ClientConfig::subscription_buffer)
/// entries, so the connection never waits for a slow reader: other
/// subscriptions and heartbeats keep flowing.
pub struct Subscription {
    id: String,
    /// Items read while `subscribe` waited for `subscribed`; they come first.
    early: VecDeque<Delivery>,
    items: mpsc::Receiver<Delivery>,
    commands: mpsc::Sender<Command>,
    request_timeout: Duration,
    position: Option<ResumeToken>,
    /// Set once an unsubscribe was sent, so dropping does not send another.
    unsubscribed: bool,
}

impl Subscription {
    pub(crate) fn new(
        id: String,
        early: VecDeque<Delivery>,
        items: mpsc::Receiver<Delivery>,
        commands: mpsc::Sender<Command>,
        request_timeout: Duration,
    ) -> Subscription {
        Subscription {
            id,
            early,
            items,
            commands,
            request_timeout,
            position: None,
            unsubscribed: false,
        }
    }

    /// The subscription's id on the wire (events name it in `subs`).
    #[must_use]
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The position of the last item the stream yielded: save it to
    /// continue later with [`SubscribeRequest::resume_from`](crate::SubscribeRequest::resume_from).
    /// `None` before the first item with an offset.
    #[must_use]
    pub fn position(&self) -> Option<ResumeToken> {
        self.position
    }

    /// The offset of [`Subscription::position`].
    #[must_use]
    pub fn last_offset(&self) -> Option<Offset> {
        self.position.map(|p| p.offset)
    }

    /// Ends the subscription and waits for the server to confirm. Items not
    /// yet read are discarded.
    pub async fn unsubscribe(mut self) -> Result<(), ClientError> {
        self.unsubscribed = true;
        let (reply, answer) = oneshot::channel();
        let command = Command::Unsubscribe {
            id: self.id.clone(),
            reply: Some(reply),
        };
        self.commands
            .send(command)
            .await
            .map_err(|_| ClientError::Closed)?;
        match tokio::time::timeout(self.request_timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout(self.request_timeout)),
        }
    }

    fn take(&mut self, delivery: Delivery) -> Result<SubscriptionItem, ClientError> {
        match delivery {
            Delivery::Item { epoch, item } => {
                if let Some(offset) = item.offset()
                    && self.position.is_none_or(|p| p.offset < offset)
                {
                    self.position = Some(ResumeToken { epoch, offset });
                }
                Ok(item)
            }
            Delivery::Failed(error) => Err(error),
        }
    }
}

impl Stream for Subscription {
    type Item = Result<SubscriptionItem, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let delivery = match this.early.pop_front() {
            Some(delivery) => Some(delivery),
            None => ready!(this.items.poll_recv(cx)),
        };
        Poll::Ready(delivery.map(|d| this.take(d)))
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if !self.unsubscribed {
            // If the command queue is full or gone, the connection task still
            // notices the dropped receiver at the next item and unsubscribes.
            let _ = self.commands.try_send(Command::Unsubscribe {
                id: std::mem::take(&mut self.id),
                reply: None,
            });
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("position", &self.position)
            .field("buffered", &(self.early.len() + self.items.len()))
            .finish_non_exhaustive()
    }
}
