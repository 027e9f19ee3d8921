//! The transport layer (RFC 3261 section 18, RFC 3581, RFC 5626 section 3.5.1): which
//! transport a message goes over, where a response is sent, the Via parameters a server adds
//! to a received request, the flow table of stream connections and their framing.
//!
//! The core never touches a socket. It says what to send through
//! [`Transmit`]s, asks for connections through [`IoRequest`]s, and learns what
//! happened through [`FlowEvent`]s.

use std::net::SocketAddr;

pub(crate) mod flow;
pub(crate) mod framing;
mod listen;
pub(crate) mod payload;
pub(crate) mod reflection;
pub(crate) mod via;

pub use listen::{ListenSpec, ParseListenSpecError};
pub use reflection::ResponsePolicy;

/// A SIP transport (the `transport` token of a Via, RFC 3261 section 20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Transport {
    /// UDP: unreliable, one message per datagram.
    Udp,
    /// TCP: a reliable byte stream, messages framed by Content-Length.
    Tcp,
    /// TLS over TCP.
    Tls,
}

impl Transport {
    /// Does the transport retransmit by itself (section 17: timers that only make up for
    /// loss are zero on reliable transports)?
    pub fn is_reliable(self) -> bool {
        !matches!(self, Transport::Udp)
    }

    /// Is it a byte stream that needs flows and Content-Length framing?
    pub fn is_stream(self) -> bool {
        self.is_reliable()
    }

    /// The token written in a Via header.
    pub fn via_token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }

    /// Reads a Via transport token (case-insensitive).
    pub fn from_via_token(token: &str) -> Option<Transport> {
        [Transport::Udp, Transport::Tcp, Transport::Tls]
            .into_iter()
            .find(|t| t.via_token().eq_ignore_ascii_case(token))
    }

    /// The default port (RFC 3261 section 19.1.2: 5060, 5061 for TLS).
    pub fn default_port(self) -> u16 {
        match self {
            Transport::Tls => 5061,
            _ => 5060,
        }
    }
}

/// A stream connection, as the core names it. Generational: an id kept after its flow closed
/// never names a later flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub(crate) crate::id::Key);

/// A local address the endpoint listens on (the driver binds it and tells the core).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    /// The transport.
    pub transport: Transport,
    /// The bound address (with the real port when the driver bound port 0).
    pub addr: SocketAddr,
    /// The `sent-by` to write in Via headers, when it differs from `addr` (a public name).
    pub sent_by: Option<String>,
}

impl Listener {
    /// A listener whose Via `sent-by` is its own address.
    pub fn new(transport: Transport, addr: SocketAddr) -> Listener {
        Listener {
            transport,
            addr,
            sent_by: None,
        }
    }
}

/// Where a request is sent: a transport and an address (resolving names per RFC 3263 is a
/// separate step that produces these).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Target {
    /// The transport to use (UDP may be upgraded to TCP, RFC 3261 section 18.1.1).
    pub transport: Transport,
    /// The peer.
    pub addr: SocketAddr,
}

impl Target {
    /// A UDP target.
    pub fn udp(addr: SocketAddr) -> Target {
        Target {
            transport: Transport::Udp,
            addr,
        }
    }

    /// A TCP target.
    pub fn tcp(addr: SocketAddr) -> Target {
        Target {
            transport: Transport::Tcp,
            addr,
        }
    }
}

/// Where a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Source {
    /// The transport it arrived on.
    pub transport: Transport,
    /// The local address it arrived at.
    pub local: SocketAddr,
    /// The peer's address (the packet source).
    pub remote: SocketAddr,
    /// The flow, for stream transports.
    pub flow: Option<FlowId>,
}

/// Bytes for the driver to send: written into the caller's buffer by
/// [`Endpoint::poll_transmit`](crate::Endpoint::poll_transmit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transmit {
    /// The transport.
    pub transport: Transport,
    /// For datagrams: the local address to send from (responses leave from the address the
    /// request arrived at, RFC 3581 section 4). For streams: the flow's local address.
    pub local: SocketAddr,
    /// The peer.
    pub remote: SocketAddr,
    /// For stream transports, the flow to write to.
    pub flow: Option<FlowId>,
}

/// Something the driver must do besides sending: open or close a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoRequest {
    /// Open a stream connection to `remote`; report the outcome with
    /// [`Endpoint::handle_flow_event`](crate::Endpoint::handle_flow_event).
    Connect {
        /// The flow the connection will carry.
        flow: FlowId,
        /// TCP or TLS.
        transport: Transport,
        /// The peer.
        remote: SocketAddr,
    },
    /// Close the connection of this flow (idle, or it broke the framing rules). The core has
    /// already forgotten the flow.
    Close {
        /// The flow.
        flow: FlowId,
    },
}

/// What the driver learned about a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FlowEvent {
    /// The connection asked for by [`IoRequest::Connect`] is up.
    Connected {
        /// The local address of the connection.
        local: SocketAddr,
    },
    /// The connection could not be opened.
    Failed,
    /// The peer closed the connection, or it broke.
    Closed,
}
