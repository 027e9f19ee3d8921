//! DNS for the loop: [`DnsClient`] (sans-IO) on non-blocking UDP sockets the loop owns.
//!
//! The endpoint's questions ([`sip_core::Endpoint::poll_dns`]) go to [`Dns::query`]; the
//! datagrams the client wants sent leave from a socket of the nameserver's address family,
//! bound to an ephemeral port when the first question for that family is asked (a driver
//! that never resolves a name opens no socket); what comes back is fed to the client, whose
//! answers the loop hands to [`sip_core::Endpoint::handle_dns_answer`]. Nothing here blocks.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use mio::net::UdpSocket;
use mio::{Interest, Registry, Token};
use sip_core::resolve::{Answer, Query, QueryId};
use sip_driver_sys::dns::DnsClient;

/// The token of the IPv4 DNS socket.
pub(crate) const DNS_V4: Token = Token(usize::MAX);
/// The token of the IPv6 DNS socket.
pub(crate) const DNS_V6: Token = Token(usize::MAX - 1);

/// The loop's DNS: the client and its sockets (one per address family in use).
pub(crate) struct Dns {
    /// With no nameserver, it answers every question `ServerFailure` at once (not cached
    /// by the resolver).
    client: DnsClient,
    /// Why there is no nameserver, said once at the first question.
    none_reason: Option<String>,
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
}

impl Dns {
    /// A client for `servers`; `none_reason` says why the list is empty, when it is.
    pub(crate) fn new(servers: Vec<SocketAddr>, seed: [u8; 32], none_reason: String) -> Dns {
        let none = servers.is_empty();
        Dns {
            client: DnsClient::new(servers, seed),
            none_reason: none.then_some(none_reason),
            v4: None,
            v6: None,
        }
    }

    /// Asks `query`; returns a warning to log when there is no nameserver (once).
    pub(crate) fn query(&mut self, now: Instant, query: Query) -> Option<String> {
        self.client.query(now, query);
        self.none_reason.take()
    }

    /// Sends what the client has to send. A datagram that cannot leave (no socket for its
    /// family, a full buffer) is left to the client's retries and timeout.
    pub(crate) fn send(&mut self, registry: &Registry) {
        while let Some((to, bytes)) = self.client.poll_transmit() {
            if let Some(socket) = self.socket(registry, to.is_ipv4()) {
                let _ = socket.send_to(&bytes, to);
            }
        }
    }

    /// The socket of a family, bound and registered at its first use.
    fn socket(&mut self, registry: &Registry, v4: bool) -> Option<&UdpSocket> {
        let (slot, token, any) = if v4 {
            (
                &mut self.v4,
                DNS_V4,
                SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0)),
            )
        } else {
            (
                &mut self.v6,
                DNS_V6,
                SocketAddr::from((Ipv6Addr::UNSPECIFIED, 0)),
            )
        };
        if slot.is_none() {
            let bound = UdpSocket::bind(any).and_then(|mut socket| {
                registry.register(&mut socket, token, Interest::READABLE)?;
                Ok(socket)
            });
            *slot = bound.ok();
        }
        slot.as_ref()
    }

    /// Reads the datagrams waiting on the socket of `token` into the client, `buf` as the
    /// receive buffer, until it would block (or `budget` datagrams); true when there may be
    /// more.
    pub(crate) fn on_readable(&mut self, token: Token, buf: &mut [u8], budget: usize) -> bool {
        let socket = if token == DNS_V4 { &self.v4 } else { &self.v6 };
        let Some(socket) = socket else {
            return false;
        };
        for _ in 0..budget {
            match socket.recv_from(buf) {
                Ok((n, from)) => self.client.handle_datagram(Instant::now(), from, &buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                // ICMP port unreachable from a nameserver that is down, and the like: the
                // client's timeout and retries deal with it.
                Err(_) => {}
            }
        }
        true
    }

    /// The next answer for the endpoint.
    pub(crate) fn poll_answer(&mut self) -> Option<(QueryId, Answer)> {
        self.client.poll_answer()
    }

    /// When the client's next retry or timeout is due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }

    /// Runs the client's retries and timeouts due at `now`.
    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        if self.client.poll_timeout().is_some_and(|t| t <= now) {
            self.client.handle_timeout(now);
        }
    }
}
