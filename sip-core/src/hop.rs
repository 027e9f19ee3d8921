//! Where a URI leads without a resolver: the next hop of a request when the URI's host (or
//! `maddr`) is an IP address (RFC 3263 section 4 for a numeric host), shared by the proxy
//! (RFC 3261 section 16.6 step 7) and the dialogs (section 12.2.1.1). A host name needs the
//! RFC 3263 resolver ([`crate::resolve`]), which the caller runs.

use std::net::{IpAddr, SocketAddr};

use crate::message::{SipUri, Uri};
use crate::{Target, Transport};

/// The URI inside a Route or Record-Route value (`<uri>;params` or a bare URI).
pub(crate) fn route_uri(value: &str) -> &str {
    let v = value.trim();
    match (v.find('<'), v.find('>')) {
        (Some(a), Some(b)) if a < b => &v[a + 1..b],
        _ => v.split(';').next().unwrap_or(v),
    }
}

/// The transport a SIP URI asks for (section 19.1.1: the `transport` parameter, TLS for
/// `sips`), else `default`.
pub(crate) fn uri_transport(u: &SipUri<'_>, default: Transport) -> Transport {
    match u.transport() {
        Some(t) if t.eq_ignore_ascii_case("udp") => Transport::Udp,
        Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
        Some(t) if t.eq_ignore_ascii_case("tls") => Transport::Tls,
        _ if u.secure => Transport::Tls,
        _ => default,
    }
}

/// The port a SIP URI names, explicit or the default of its transport (section 19.1.2).
pub(crate) fn uri_port(u: &SipUri<'_>, default: Transport) -> u16 {
    u.port.unwrap_or(uri_transport(u, default).default_port())
}

/// The target of a SIP URI whose `maddr` or host is an IP address; its transport as
/// [`uri_transport`] says. `None` for a host name or another scheme.
pub(crate) fn numeric_target(uri: &str, default: Transport) -> Option<Target> {
    let Some(Uri::Sip(u)) = Uri::parse(uri) else {
        return None;
    };
    let ip: IpAddr = match u.maddr() {
        Some(m) => m
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse()
            .ok()?,
        None => u.host.ip()?,
    };
    Some(Target {
        transport: uri_transport(&u, default),
        addr: SocketAddr::new(ip, uri_port(&u, default)),
    })
}
