//! The connection task's table of requests waiting for their answer,
//! correlated by `ref`.
//!
//! A request is sent at most once: if its connection drops before the
//! answer, it fails with [`ClientError::ConnectionLost`] (a `publish` may have
//! been appended; sending it again could duplicate it). A request made while
//! the client is reconnecting waits here and is sent on the next connection.

use crate::error::ClientError;
use herald_proto::{ClientMessage, ServerMessage};
use std::collections::BTreeMap;
use tokio::sync::oneshot;

/// Where a request's answer goes: the server's message, `error` included.
pub(crate) type Reply = oneshot::Sender<Result<ServerMessage, ClientError>>;

struct Pending {
    message: ClientMessage,
    reply: Reply,
    sent: bool,
}

/// Requests by `ref` (`r<n>` on the wire).
#[derive(Default)]
pub(crate) struct RequestTable {
    pending: BTreeMap<u64, Pending>,
    next: u64,
}

impl RequestTable {
    /// Registers a request, giving it the next `ref`. Requests whose caller
    /// gave up (timed out) are forgotten on the way.
    pub(crate) fn add(&mut self, mut message: ClientMessage, reply: Reply) {
        self.pending.retain(|_, p| !p.reply.is_closed());
        self.next += 1;
        let reference = format!("r{}", self.next);
        match &mut message {
            ClientMessage::Publish { reference: r, .. }
            | ClientMessage::Ping { reference: r }
            | ClientMessage::ListSubscriptions { reference: r } => *r = Some(reference),
            other => {
                let error = ClientError::Protocol(format!("{other:?} is not a request"));
                let _ = reply.send(Err(error));
                return;
            }
        }
        self.pending.insert(
            self.next,
            Pending {
                message,
                reply,
                sent: false,
            },
        );
    }

    /// The requests not sent yet, in order, marking them sent.
    pub(crate) fn take_unsent(&mut self) -> Vec<(u64, ClientMessage)> {
        self.pending
            .iter_mut()
            .filter(|(_, p)| !p.sent && !p.reply.is_closed())
            .map(|(r, p)| {
                p.sent = true;
                (*r, p.message.clone())
            })
            .collect()
    }

    /// Answers the request with this `ref`; returns false if there is none.
    pub(crate) fn answer(
        &mut self,
        reference: Option<&str>,
        answer: Result<ServerMessage, ClientError>,
    ) -> bool {
        let Some(key) = reference
            .and_then(|r| r.strip_prefix('r'))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return false;
        };
        match self.pending.remove(&key) {
            Some(pending) => {
                let _ = pending.reply.send(answer);
                true
            }
            None => false,
        }
    }

    /// Fails one request without an answer from the server.
    pub(crate) fn fail(&mut self, key: u64, error: ClientError) {
        if let Some(pending) = self.pending.remove(&key) {
            let _ = pending.reply.send(Err(error));
        }
    }

    /// The connection dropped: sent requests fail, unsent ones wait.
    pub(crate) fn connection_lost(&mut self) {
        let sent: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, p)| p.sent)
            .map(|(r, _)| *r)
            .collect();
        for key in sent {
            self.fail(key, ClientError::ConnectionLost);
        }
    }

    /// The client is closing: everything fails.
    pub(crate) fn close_all(&mut self) {
        for (_, pending) in std::mem::take(&mut self.pending) {
            let _ = pending.reply.send(Err(ClientError::Closed));
        }
    }
}
