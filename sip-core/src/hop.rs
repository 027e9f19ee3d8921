//! Where a URI leads without a resolver: the next hop of a request when the URI's host (or
//! `maddr`) is an IP address (RFC 3263 section 4 for a numeric host), shared by the proxy
//! (RFC 3261 section 16.6 step 7) and the dialogs (section 12.2.1.1). A host name becomes a
//! [`NextHop::Uri`], which the endpoint locates with its RFC 3263 resolver
//! ([`crate::resolve`]); the `sips:` rule of section 26.2 (TLS on every hop) is
//! [`secure_hop`].

use std::net::{IpAddr, SocketAddr};

use crate::message::{SipUri, Uri};
use crate::{NextHop, Target, Transport};

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

/// Where a URI leads (RFC 3261 sections 8.1.2, 12.2.1.1 and 16.6 step 7): a numeric host
/// (or `maddr`) stays a [`Target`], which needs no resolver and costs nothing; a host name
/// becomes a [`NextHop::Uri`] the endpoint locates (RFC 3263). `None` for another scheme.
pub(crate) fn next_hop(uri: &str, default: Transport) -> Option<NextHop> {
    if let Some(t) = numeric_target(uri, default) {
        return Some(NextHop::Target(t));
    }
    match Uri::parse(uri) {
        Some(Uri::Sip(_)) => Some(NextHop::Uri(uri.to_owned())),
        _ => None,
    }
}

/// [`NextHop::of_request`] (the first Route, else the Request-URI) with a numeric host made
/// a [`Target`] here, as [`next_hop`] does.
pub(crate) fn of_request(request: &crate::OwnedMessage) -> Option<NextHop> {
    match NextHop::of_request(request)? {
        NextHop::Uri(u) => next_hop(&u, Transport::Udp),
        other => Some(other),
    }
}

/// Is this URI (or Route value) a `sips:` URI?
pub(crate) fn is_sips(uri: &str) -> bool {
    matches!(Uri::parse(route_uri(uri)), Some(Uri::Sip(u)) if u.secure)
}

/// RFC 3261 section 26.2 (with RFC 5630 section 4: TLS on every hop, no last-hop
/// exception): the hop of a `sips:` request, over TLS only. A TLS target stays; a target
/// over another transport is refused (`None`: never downgrade); a `sips:` URI stays (the
/// resolver picks TLS targets only, RFC 3263 section 4.1); a `sip:` URI (a Route a peer
/// wrote as `sip:`) is located as `sips:` (RFC 5630 section 5.1.1: a UAC with a `sips:`
/// Request-URI treats its Route entries as `sips:`), unless its `transport` parameter
/// names UDP or TCP.
pub(crate) fn secure_hop(hop: NextHop) -> Option<NextHop> {
    match hop {
        NextHop::Target(t) => (t.transport == Transport::Tls).then_some(NextHop::Target(t)),
        NextHop::Uri(uri) => {
            let Some(Uri::Sip(u)) = Uri::parse(&uri) else {
                return None;
            };
            if u.secure {
                return Some(NextHop::Uri(uri));
            }
            match u.transport() {
                Some(t) if !t.eq_ignore_ascii_case("tls") => None,
                _ => Some(NextHop::Uri(to_sips(&uri))),
            }
        }
    }
}

/// A `sip:` URI as `sips:` (the rest unchanged; a `transport=tls` parameter is harmless to
/// the resolver). Other text is returned as it is.
pub(crate) fn to_sips(uri: &str) -> String {
    match uri.get(..4) {
        Some(s) if s.eq_ignore_ascii_case("sip:") => format!("sips:{}", &uri[4..]),
        _ => uri.to_owned(),
    }
}

/// The transport a hop is known to use before it is resolved: the target's, else the
/// URI's `transport` parameter or TLS for `sips:` (RFC 3263 section 4.1), else `None` (NAPTR
/// and SRV records choose).
pub(crate) fn known_transport(hop: &NextHop) -> Option<Transport> {
    match hop {
        NextHop::Target(t) => Some(t.transport),
        NextHop::Uri(uri) => match Uri::parse(uri) {
            Some(Uri::Sip(u)) if u.secure || u.transport().is_some() => {
                Some(uri_transport(&u, Transport::Udp))
            }
            _ => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3263_4_numeric_host_stays_a_target_and_a_name_is_located() {
        assert_eq!(
            next_hop("sip:bob@192.0.2.4:5070;transport=tcp", Transport::Udp),
            Some(NextHop::Target(Target {
                transport: Transport::Tcp,
                addr: "192.0.2.4:5070".parse().unwrap()
            }))
        );
        assert_eq!(
            next_hop("sip:bob@example.test", Transport::Udp),
            Some(NextHop::Uri("sip:bob@example.test".into()))
        );
        assert_eq!(next_hop("tel:+123", Transport::Udp), None);
    }

    #[test]
    fn rfc3261_26_2_sips_hop_is_tls_only_never_downgraded() {
        let udp = Target::udp("192.0.2.4:5060".parse().unwrap());
        assert_eq!(secure_hop(NextHop::Target(udp)), None);
        let tls = Target {
            transport: Transport::Tls,
            addr: "192.0.2.4:5061".parse().unwrap(),
        };
        assert_eq!(secure_hop(NextHop::Target(tls)), Some(NextHop::Target(tls)));
        assert_eq!(
            secure_hop(NextHop::uri("sip:p.example.test;lr")),
            Some(NextHop::uri("sips:p.example.test;lr"))
        );
        assert_eq!(
            secure_hop(NextHop::uri("sip:p.example.test;transport=udp;lr")),
            None
        );
        assert!(is_sips("<sips:p.example.test;lr>"));
        assert!(!is_sips("<sip:p.example.test;lr>"));
    }
}
