//! Listen specifications: `udp:127.0.0.1:5060`, `tcp:[::1]:5060`.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;

use sip_core::Transport;

/// A transport and a local address to listen on, written `udp:127.0.0.1:5060`,
/// `tcp:127.0.0.1:0` (any free port) or `udp:[::1]:5060`.
///
/// ```
/// use sip_driver_tokio::ListenSpec;
/// use sip_core::Transport;
///
/// let spec: ListenSpec = "tcp:[::1]:5060".parse()?;
/// assert_eq!(spec.transport, Transport::Tcp);
/// assert_eq!(spec.addr.port(), 5060);
/// assert_eq!(spec.to_string(), "tcp:[::1]:5060");
/// # Ok::<(), sip_driver_tokio::ParseListenSpecError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenSpec {
    /// UDP or TCP.
    pub transport: Transport,
    /// The local address; port 0 asks for any free port.
    pub addr: SocketAddr,
}

impl ListenSpec {
    /// A UDP listener on `addr`.
    pub fn udp(addr: SocketAddr) -> ListenSpec {
        ListenSpec {
            transport: Transport::Udp,
            addr,
        }
    }

    /// A TCP listener on `addr`.
    pub fn tcp(addr: SocketAddr) -> ListenSpec {
        ListenSpec {
            transport: Transport::Tcp,
            addr,
        }
    }
}

/// Why a listen specification did not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseListenSpecError {
    /// No `transport:` prefix.
    #[error("missing transport prefix (udp: or tcp:) in {0:?}")]
    MissingTransport(String),
    /// A transport this driver does not listen on.
    #[error("unsupported transport {0:?} (udp or tcp)")]
    UnknownTransport(String),
    /// The address is not `ip:port` (IPv6 in brackets).
    #[error("invalid address {0:?} (ip:port, IPv6 as [addr]:port)")]
    InvalidAddress(String),
}

impl FromStr for ListenSpec {
    type Err = ParseListenSpecError;

    fn from_str(s: &str) -> Result<ListenSpec, ParseListenSpecError> {
        let (transport, addr) = s
            .split_once(':')
            .ok_or_else(|| ParseListenSpecError::MissingTransport(s.to_owned()))?;
        let transport = match transport.to_ascii_lowercase().as_str() {
            "udp" => Transport::Udp,
            "tcp" => Transport::Tcp,
            _ => return Err(ParseListenSpecError::UnknownTransport(transport.to_owned())),
        };
        let addr = addr
            .parse()
            .map_err(|_| ParseListenSpecError::InvalidAddress(addr.to_owned()))?;
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

    #[test]
    fn parses_and_prints() {
        for s in ["udp:127.0.0.1:5060", "tcp:127.0.0.1:0", "udp:[::1]:5060"] {
            let spec: ListenSpec = s.parse().unwrap();
            assert_eq!(spec.to_string(), s);
        }
        let spec: ListenSpec = "UDP:127.0.0.1:1".parse().unwrap();
        assert_eq!(spec.transport, Transport::Udp);
    }

    #[test]
    fn rejects() {
        assert!(matches!(
            "127.0.0.1:5060".parse::<ListenSpec>(),
            Err(ParseListenSpecError::UnknownTransport(_))
        ));
        assert!(matches!(
            "localhost".parse::<ListenSpec>(),
            Err(ParseListenSpecError::MissingTransport(_))
        ));
        assert!(matches!(
            "tls:127.0.0.1:5061".parse::<ListenSpec>(),
            Err(ParseListenSpecError::UnknownTransport(_))
        ));
        assert!(matches!(
            "udp:::1:5060".parse::<ListenSpec>(),
            Err(ParseListenSpecError::InvalidAddress(_))
        ));
        assert!(matches!(
            "udp:127.0.0.1".parse::<ListenSpec>(),
            Err(ParseListenSpecError::InvalidAddress(_))
        ));
    }
}
