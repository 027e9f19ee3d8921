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

// (h-tu: what a transaction user asks of its client transactions; kept here, apart from
// the endpoint's internals, so that it merges cleanly.)
impl Endpoint {
    /// Where a client transaction's request went: the transport and address of its attempt
    /// in progress (after RFC 3263 resolution and failover for a [`NextHop::Uri`]), `None`
    /// once the transaction has ended or while its next hop is still being located. A
    /// session reads it when a response creates a dialog, so that the dialog's requests
    /// reuse the connection the INVITE went over (RFC 3261 section 12.2.1.1, RFC 5923's
    /// spirit: one connection per peer).
    ///
    /// [`NextHop::Uri`]: super::NextHop::Uri
    pub fn client_target(&self, tx: super::ClientTxId) -> Option<crate::Target> {
        if self.is_unsent(tx) {
            return None;
        }
        self.clients.get(tx.0).map(|e| crate::Target {
            transport: e.transport,
            addr: e.remote,
        })
    }
}
