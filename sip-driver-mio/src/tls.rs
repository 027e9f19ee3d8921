//! TLS on the loop's connections: rustls' own state machines
//! ([`rustls::ServerConnection`], [`rustls::ClientConnection`]) driven by readiness events,
//! with no thread of their own.
//!
//! A connection carries a [`Tls`] beside its socket. While the handshake runs, the loop
//! feeds the socket's bytes to `read_tls` and `process_new_packets` and writes what rustls
//! wants sent with `write_tls`, watching for writability only while rustls has bytes it
//! could not write. The endpoint hears of the connection only when the handshake is done:
//! an accepted one is handed over with `accept_flow(Transport::Tls, ..)`, an outbound one is
//! reported `Connected`. After that, the core's bytes go through `writer()` and what
//! `reader()` gives goes to the core as TCP's bytes do.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use rustls::pki_types::ServerName;
use rustls::Connection;

/// The default of [`DriverOptions::tls_handshake_timeout`](crate::DriverOptions): a
/// handshake (with the TCP connect before it, for an outbound connection) not done within
/// this is abandoned and the socket closed, so that a peer that connects and sends nothing
/// (or too slowly) holds nothing for long.
pub const DEFAULT_TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepted TLS connections whose handshake is not done yet, at most; beyond, new
/// connections are closed at once. The endpoint's flow limits only count connections it was
/// handed (after the handshake): this bounds the ones before.
pub const MAX_TLS_HANDSHAKES: usize = 1024;

/// Accepted TLS connections in their handshake from one IP address, at most: one peer
/// cannot take all of [`MAX_TLS_HANDSHAKES`] and keep the others out.
pub const MAX_TLS_HANDSHAKES_PER_SOURCE: usize = 32;

/// The accepted handshakes under way, in all and per source address.
#[derive(Debug, Default)]
pub(crate) struct PendingHandshakes {
    total: usize,
    from: HashMap<IpAddr, usize>,
}

impl PendingHandshakes {
    /// Counts a handshake from `ip`, unless a limit is reached (then false).
    pub(crate) fn start(&mut self, ip: IpAddr) -> bool {
        let from = self.from.get(&ip).copied().unwrap_or(0);
        if self.total >= MAX_TLS_HANDSHAKES || from >= MAX_TLS_HANDSHAKES_PER_SOURCE {
            return false;
        }
        self.total += 1;
        self.from.insert(ip, from + 1);
        true
    }

    /// A handshake from `ip` is over (done, failed or abandoned).
    pub(crate) fn end(&mut self, ip: IpAddr) {
        self.total = self.total.saturating_sub(1);
        if let Some(n) = self.from.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                self.from.remove(&ip);
            }
        }
    }
}

/// A connection's TLS state.
pub(crate) struct Tls {
    /// rustls' connection: the handshake, then the records.
    pub(crate) conn: Connection,
    /// The handshake is not done yet (the endpoint has not been told of the connection).
    pub(crate) handshaking: bool,
    /// The connection's local address (for `accept_flow`).
    pub(crate) local: SocketAddr,
    /// The peer's address.
    pub(crate) remote: SocketAddr,
    /// The name the server must prove (outbound connections), for the logs.
    pub(crate) name: Option<ServerName<'static>>,
}

impl Tls {
    /// What a failed handshake or a broken connection is about, for the logs.
    pub(crate) fn describe(&self) -> String {
        match (&self.conn, &self.name) {
            (Connection::Client(_), Some(name)) => {
                format!("TLS to {} ({})", self.remote, name.to_str())
            }
            (Connection::Client(_), None) => format!("TLS to {}", self.remote),
            (Connection::Server(_), _) => format!("TLS from {}", self.remote),
        }
    }
}

/// rustls' error, in words (see [`sip_driver_sys::tls::failure_reason`]): the name
/// checked is the one asked for, else the peer's address.
pub(crate) fn reason(
    error: &rustls::Error,
    name: Option<&ServerName<'static>>,
    remote: SocketAddr,
) -> String {
    let expected = match name {
        Some(name) => name.to_str().into_owned(),
        None => remote.ip().to_string(),
    };
    sip_driver_sys::tls::failure_reason(error, &expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    // A slow-loris bound: handshakes are capped per source and in all, and a slot is given
    // back when a handshake ends.
    #[test]
    fn pending_handshakes_are_bounded_per_source_and_in_all() {
        let mut p = PendingHandshakes::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..MAX_TLS_HANDSHAKES_PER_SOURCE {
            assert!(p.start(a));
        }
        assert!(!p.start(a), "one source is capped");
        p.end(a);
        assert!(p.start(a), "a slot comes back");
        let mut n = MAX_TLS_HANDSHAKES_PER_SOURCE;
        let mut i = 0u32;
        while n < MAX_TLS_HANDSHAKES {
            let ip = IpAddr::from((0x0a00_0000 + i / 8).to_be_bytes());
            assert!(p.start(ip));
            n += 1;
            i += 1;
        }
        assert!(
            !p.start("198.51.100.7".parse().unwrap()),
            "the total is capped"
        );
        for ip in [a; MAX_TLS_HANDSHAKES_PER_SOURCE] {
            p.end(ip);
        }
        assert!(
            !p.from.contains_key(&a),
            "nothing kept for a source with none"
        );
    }
}
