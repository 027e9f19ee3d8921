//! The transaction user: what sits on top of the [`Endpoint`] (RFC 3261 section 5: a UA
//! core, a proxy core, or an application). Drivers hand it every [`Event`] and run its
//! timer beside the endpoint's, so any driver can run any transaction user.

use std::time::Instant;

use super::{Endpoint, Event};

/// The layer above the transactions. See the module docs.
pub trait TransactionUser {
    /// An event the endpoint produced; the transaction user may answer through `endpoint`
    /// at once (send responses, requests, ACKs).
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint);

    /// The transaction user's own next deadline (for example a 2xx retransmission).
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    /// Runs the transaction user's timers due at `now`.
    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        let _ = (now, endpoint);
    }
}
