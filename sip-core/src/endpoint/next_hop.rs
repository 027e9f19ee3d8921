//! Where the endpoint sends a request: an address the caller chose, or a URI it locates
//! itself (RFC 3263).

use crate::message::Uri;
use crate::{OwnedMessage, Target};

/// Where the endpoint sends a request: an address the caller chose, or a URI the endpoint
/// locates itself (RFC 3263; a numeric host needs no DNS).
///
/// A [`Target`] converts into it, so every `send_*` call that took a target still does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NextHop {
    /// This transport and address: no resolution, no failover.
    Target(Target),
    /// A sip: or sips: URI (the Request-URI, or the first Route's URI), as text.
    Uri(String),
}

impl From<Target> for NextHop {
    fn from(target: Target) -> NextHop {
        NextHop::Target(target)
    }
}

impl NextHop {
    /// A URI to resolve (RFC 3263 section 4).
    pub fn uri(uri: impl Into<String>) -> NextHop {
        NextHop::Uri(uri.into())
    }

    /// RFC 3261 8.1.2 / 16.6 step 7 / 16.12: the first Route's URI when there is a Route
    /// header, else the Request-URI. None for a non-request or a non-SIP URI.
    ///
    /// A request already in the strict-routing form (section 12.2.1.1: the Request-URI is
    /// the strict router, the Route set holds the rest) carries its next hop in the
    /// Request-URI: its sender passes `NextHop::uri(request_uri)` itself.
    pub fn of_request(request: &OwnedMessage) -> Option<NextHop> {
        let msg = request.message().ok()?;
        if !msg.is_request() {
            return None;
        }
        let uri = match msg.routes().next() {
            Some(route) => route.uri,
            None => *msg.request_uri()?,
        };
        match uri {
            Uri::Sip(_) => Some(NextHop::Uri(uri.to_string())),
            _ => None,
        }
    }
}
