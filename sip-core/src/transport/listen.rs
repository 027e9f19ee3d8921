//! What to listen on: `TRANSPORT:ADDRESS[:PORT]`, the syntax of a driver's `--listen` flag.
//!
//! It lives in the core (it does no I/O) so that every driver accepts the same flags:
//!
//! | spec                  | transport | address          |
//! |-----------------------|-----------|------------------|
//! | `udp:127.0.0.1:5060`  | UDP       | `127.0.0.1:5060` |
//! | `tcp:127.0.0.1:0`     | TCP       | any free port    |
//! | `udp:[::1]:5060`      | UDP       | `[::1]:5060`     |
//! | `tcp:127.0.0.1`       | TCP       | port 5060, the transport's default (RFC 3261 section 19.1.2) |
//! | `udp:[::1]`           | UDP       | `[::1]:5060`     |
//!
//! The transport is case-insensitive (`UDP:` works); an IPv6 address takes brackets. Names
//! are not resolved: a listener is an address of this host.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use super::Transport;

/// One address to listen on, with its transport. Parse it from `udp:127.0.0.1:5060`; see the
/// module docs.
///
/// ```
/// use sip_core::transport::ListenSpec;
/// use sip_core::Transport;
///
/// let spec: ListenSpec = "tcp:[::1]:5070".parse()?;
/// assert_eq!(spec.transport, Transport::Tcp);
/// assert_eq!(spec.addr, "[::1]:5070".parse()?);
/// assert_eq!(spec.to_string(), "tcp:[::1]:5070");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenSpec {
    /// The transport.
    pub transport: Transport,
    /// The address to bind (port 0: any free port).
    pub addr: SocketAddr,
}

impl ListenSpec {
    /// A spec from its parts.
    pub fn new(transport: Transport, addr: SocketAddr) -> ListenSpec {
        ListenSpec { transport, addr }
    }

    /// UDP on `addr`.
    pub fn udp(addr: SocketAddr) -> ListenSpec {
        ListenSpec::new(Transport::Udp, addr)
    }

    /// TCP on `addr`.
    pub fn tcp(addr: SocketAddr) -> ListenSpec {
        ListenSpec::new(Transport::Tcp, addr)
    }
}

/// Why a listen spec did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseListenSpecError {
    /// No `TRANSPORT:` prefix.
    #[error("expected TRANSPORT:ADDRESS[:PORT], like udp:127.0.0.1:5060")]
    MissingTransport,
    /// The transport is not `udp`, `tcp` or `tls`.
    #[error("unknown transport {0:?} (expected udp, tcp or tls)")]
    UnknownTransport(String),
    /// The address is not an IP address with an optional port (`[::1]` for IPv6).
    #[error(
        "bad address {0:?} (expected an IP address and optional port, like 127.0.0.1:5060 or [::1]:5060)"
    )]
    BadAddress(String),
}

impl FromStr for ListenSpec {
    type Err = ParseListenSpecError;

    fn from_str(s: &str) -> Result<ListenSpec, ParseListenSpecError> {
        let (transport, rest) = s
            .trim()
            .split_once(':')
            .ok_or(ParseListenSpecError::MissingTransport)?;
        let transport = Transport::from_via_token(transport)
            .ok_or_else(|| ParseListenSpecError::UnknownTransport(transport.to_owned()))?;
        let bad = || ParseListenSpecError::BadAddress(rest.to_owned());
        let addr = if let Ok(addr) = rest.parse::<SocketAddr>() {
            addr
        } else {
            // No port: a bare IPv4 address or a bracketed IPv6 one.
            let ip = match rest.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
                Some(v6) => v6.parse::<std::net::Ipv6Addr>().map(IpAddr::V6),
                None => rest.parse::<std::net::Ipv4Addr>().map(IpAddr::V4),
            }
            .map_err(|_| bad())?;
            SocketAddr::new(ip, transport.default_port())
        };
        Ok(ListenSpec { transport, addr })
    }
}

impl fmt::Display for ListenSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self.transport.via_token().to_ascii_lowercase();
        write!(f, "{t}:{}", self.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Result<ListenSpec, ParseListenSpecError> {
        s.parse()
    }

    #[test]
    fn parses_transport_address_and_port() {
        let s = p("udp:127.0.0.1:5060").unwrap();
        assert_eq!(s, ListenSpec::udp("127.0.0.1:5060".parse().unwrap()));
        let s = p("TCP:[::1]:0").unwrap();
        assert_eq!(s, ListenSpec::tcp("[::1]:0".parse().unwrap()));
        let s = p("tls:127.0.0.1:5061").unwrap();
        assert_eq!(s.transport, Transport::Tls);
    }

    #[test]
    fn rfc3261_19_1_2_port_defaults_to_the_transport_default() {
        assert_eq!(p("udp:127.0.0.1").unwrap().addr.port(), 5060);
        assert_eq!(p("tcp:[::1]").unwrap().addr, "[::1]:5060".parse().unwrap());
        assert_eq!(p("tls:127.0.0.1").unwrap().addr.port(), 5061);
    }

    #[test]
    fn rejects_what_is_not_a_spec() {
        assert_eq!(p("127.0.0.1"), Err(ParseListenSpecError::MissingTransport));
        assert_eq!(p(""), Err(ParseListenSpecError::MissingTransport));
        assert!(matches!(
            p("sctp:127.0.0.1:5060"),
            Err(ParseListenSpecError::UnknownTransport(_))
        ));
        for bad in [
            "udp:",
            "udp:localhost:5060",
            "udp:::1:5060",
            "udp:[::1]:x",
            "udp:127.0.0.1:70000",
            "udp:[127.0.0.1]",
        ] {
            assert!(
                matches!(p(bad), Err(ParseListenSpecError::BadAddress(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["udp:127.0.0.1:5060", "tcp:[::1]:5070", "tls:127.0.0.1:5061"] {
            assert_eq!(p(s).unwrap().to_string(), s);
        }
    }
}
