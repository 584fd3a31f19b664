//! Single-use SSE tickets: a browser's `EventSource` cannot send an
//! `Authorization` header, and a token in a URL ends up in proxy and
//! server logs. So a page asks `POST /v1/sse/tickets` (with its token) for a
//! ticket, and opens `/v1/sse?...&ticket=<ticket>`: a random value, good
//! once, for `[auth] ticket_ttl`, worth nothing after.

use crate::auth::Principal;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Most tickets outstanding; beyond it, issuing fails until some expire.
const MAX_TICKETS: usize = 100_000;

/// Outstanding tickets. A std mutex: held for a map operation, never
/// across `.await`.
#[derive(Debug)]
pub(crate) struct Tickets {
    ttl: Duration,
    issued: Mutex<HashMap<String, (Arc<Principal>, Instant)>>,
}

impl Tickets {
    pub(crate) fn new(ttl: Duration) -> Tickets {
        Tickets {
            ttl,
            issued: Mutex::default(),
        }
    }

    /// How long a ticket lasts.
    pub(crate) fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new ticket for `who`; `None` if too many are outstanding.
    pub(crate) fn issue(&self, who: Arc<Principal>) -> Option<(String, Duration)> {
        let ticket = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
        let now = Instant::now();
        let mut issued = self.issued.lock().expect("tickets lock");
        if issued.len() >= MAX_TICKETS / 2 {
            issued.retain(|_, (_, expires)| *expires > now);
        }
        if issued.len() >= MAX_TICKETS {
            return None;
        }
        issued.insert(ticket.clone(), (who, now + self.ttl));
        Some((ticket, self.ttl))
    }

    /// The principal a ticket was issued to, once: the ticket is spent.
    pub(crate) fn redeem(&self, ticket: &str) -> Option<Arc<Principal>> {
        let (who, expires) = self.issued.lock().expect("tickets lock").remove(ticket)?;
        (expires > Instant::now()).then_some(who)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::Who;

    fn principal() -> Arc<Principal> {
        Arc::new(Principal {
            who: Who::User("u".into()),
            permissions: herald_auth::Permissions::none(),
            claims: serde_json::Map::new(),
            expires_at: None,
        })
    }

    #[test]
    fn a_ticket_works_once_and_not_after_it_expires() {
        let tickets = Tickets::new(Duration::from_secs(30));
        let (ticket, _) = tickets.issue(principal()).unwrap();
        assert_eq!(tickets.redeem(&ticket).unwrap().who, Who::User("u".into()));
        assert!(tickets.redeem(&ticket).is_none(), "spent");
        assert!(tickets.redeem("made-up").is_none());
        let expired = Tickets::new(Duration::ZERO);
        let (ticket, _) = expired.issue(principal()).unwrap();
        assert!(expired.redeem(&ticket).is_none());
    }
}
