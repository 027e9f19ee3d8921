//! The flow table: stream connections (TCP, TLS) the core knows by [`FlowId`], with what is
//! waiting to be sent while one connects, the bytes of a partly received message, and when it
//! was last used (RFC 3261 section 18: connections are reused for requests to the same peer
//! and kept for a while after the last message; RFC 5626 section 3.5.1 keep-alives).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use super::{FlowId, Transport};
use crate::id::Slab;

/// Is the connection up yet?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FlowState {
    /// The driver was asked to connect.
    Connecting,
    /// Connected (or accepted).
    Open,
}

/// One stream connection.
#[derive(Debug)]
pub(crate) struct Flow {
    pub(crate) transport: Transport,
    pub(crate) remote: SocketAddr,
    pub(crate) local: Option<SocketAddr>,
    pub(crate) state: FlowState,
    /// Messages to write once connected.
    pub(crate) pending: Vec<crate::endpoint::Payload>,
    /// The start of a message not yet complete.
    pub(crate) rx: Vec<u8>,
    pub(crate) last_activity: Instant,
    /// The idle timer's deadline, when armed.
    pub(crate) idle_deadline: Option<Instant>,
    /// Live transactions that send on this flow; it is not closed for idleness while any is.
    pub(crate) users: u32,
}

/// All flows, and the index used to reuse one for a new request to the same peer.
#[derive(Debug, Default)]
pub(crate) struct Flows {
    pub(crate) slab: Slab<Flow>,
    by_remote: HashMap<(Transport, SocketAddr), FlowId>,
}

impl Flows {
    /// Adds a flow and indexes it by peer.
    pub(crate) fn insert(&mut self, flow: Flow) -> FlowId {
        let key = (flow.transport, flow.remote);
        let id = FlowId(self.slab.insert(flow));
        self.by_remote.insert(key, id);
        id
    }

    /// The flow to reuse for `transport` to `remote`.
    pub(crate) fn find(&self, transport: Transport, remote: SocketAddr) -> Option<FlowId> {
        self.by_remote
            .get(&(transport, remote))
            .copied()
            .filter(|id| self.slab.get(id.0).is_some())
    }

    /// The flow, if alive.
    pub(crate) fn get(&self, id: FlowId) -> Option<&Flow> {
        self.slab.get(id.0)
    }

    /// The flow, mutably.
    pub(crate) fn get_mut(&mut self, id: FlowId) -> Option<&mut Flow> {
        self.slab.get_mut(id.0)
    }

    /// Forgets a flow.
    pub(crate) fn remove(&mut self, id: FlowId) -> Option<Flow> {
        let flow = self.slab.remove(id.0)?;
        if self.by_remote.get(&(flow.transport, flow.remote)) == Some(&id) {
            self.by_remote.remove(&(flow.transport, flow.remote));
        }
        Some(flow)
    }

    /// How many flows are open or connecting.
    pub(crate) fn len(&self) -> usize {
        self.slab.len()
    }
}
