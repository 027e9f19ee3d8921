//! The transaction layer (RFC 3261 section 17, as updated by RFC 6026): the four state
//! machines of figures 5 to 8 and their timers. The machines are pure: they take the event
//! and the time and say what to send, what to hand to the transaction user, and which
//! timers are armed. The endpoint owns the messages, the timer index and the transport.

use std::time::{Duration, Instant};

pub(crate) mod client;
pub(crate) mod key;
pub(crate) mod server;

pub use client::ClientState;
pub use server::ServerState;

/// The base timer values (RFC 3261 section 17.1.1.1 and table 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timers {
    /// T1, the round-trip estimate: 500 ms by default.
    pub t1: Duration,
    /// T2, the cap on non-INVITE and INVITE-response retransmission intervals: 4 s.
    pub t2: Duration,
    /// T4, how long a message may stay in the network: 5 s.
    pub t4: Duration,
    /// How long an INVITE server transaction waits for the transaction user before it sends
    /// 100 Trying itself (section 17.2.1: "200 ms").
    pub trying_delay: Duration,
    /// Timer D for unreliable transports ("at least 32 seconds", section 17.1.1.2).
    pub d: Duration,
    /// Timer C: how long an INVITE client transaction waits in Proceeding for a final
    /// response, restarted by each provisional one but 100 ("greater than 3 minutes",
    /// sections 16.6 step 11 and 16.7 step 2). The RFC gives it to proxies; the endpoint runs it for every INVITE so
    /// that a lost final response cannot keep a transaction forever. When it fires the
    /// transaction user gets [`Event::Timeout`](crate::Event::Timeout), the endpoint sends
    /// CANCEL, and the transaction waits 64*T1 more for the final response.
    pub c: Duration,
}

impl Timers {
    /// The values the RFC recommends.
    pub const RFC: Timers = Timers {
        t1: Duration::from_millis(500),
        t2: Duration::from_secs(4),
        t4: Duration::from_secs(5),
        trying_delay: Duration::from_millis(200),
        d: Duration::from_secs(32),
        c: Duration::from_secs(181),
    };

    /// 64*T1: timers B, F, H, J, L and M.
    pub fn t1x64(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

impl Default for Timers {
    fn default() -> Self {
        Timers::RFC
    }
}

/// The timers of section 17 (table 4) plus RFC 6026's L and M, and the 200 ms "send 100
/// Trying" delay of the INVITE server transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Timer {
    /// INVITE request retransmit (client, Calling).
    A,
    /// INVITE transaction timeout (client, Calling).
    B,
    /// Proceeding without a final response for too long (INVITE client; section 16.6).
    C,
    /// Wait for response retransmissions (INVITE client, Completed).
    D,
    /// Non-INVITE request retransmit (client, Trying and Proceeding).
    E,
    /// Non-INVITE transaction timeout (client).
    F,
    /// INVITE final response retransmit (server, Completed).
    G,
    /// Wait for ACK (INVITE server, Completed).
    H,
    /// Wait for ACK retransmissions (INVITE server, Confirmed).
    I,
    /// Wait for request retransmissions (non-INVITE server, Completed).
    J,
    /// Wait for response retransmissions (non-INVITE client, Completed).
    K,
    /// Wait for INVITE retransmissions after a 2xx (INVITE server, Accepted; RFC 6026).
    L,
    /// Wait for 2xx retransmissions (INVITE client, Accepted; RFC 6026).
    M,
    /// Send 100 Trying if the transaction user has not answered (INVITE server, Proceeding).
    Trying,
    /// The transaction user never gave a final response (server, Trying or Proceeding):
    /// after 64*T1 a non-INVITE transaction ends (its client gave up at timer F); after
    /// timer C's duration an INVITE is answered 408 (as a proxy does when timer C fires,
    /// section 16.6 step 11). Not in the RFC's figures: it keeps a silent transaction user
    /// from holding state forever.
    Unanswered,
}

/// A machine's two timer slots: the retransmission timer (A, E, G, Trying) and the
/// lifetime timer (B, C, D, F, H, I, J, K, L, M, Unanswered). No state runs more.
pub(crate) type Slots = [Option<(Instant, Timer)>; 2];

/// Slot 0: retransmissions.
pub(crate) const RETRANSMIT: usize = 0;
/// Slot 1: the transaction's lifetime.
pub(crate) const LIFETIME: usize = 1;
