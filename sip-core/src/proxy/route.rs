//! The proxy's address book: which URIs are its own (sections 16.4 and 16.3 step 4), where
//! a URI leads (section 16.6 step 7: a numeric host at once, a name through the endpoint's
//! RFC 3263 resolver), and the loop-detection part of the
//! branch (sections 16.3 step 4 and 16.6 step 8).

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, SocketAddr};

use crate::message::{HeaderName, Message, SipUri, Uri, Via};
use crate::{Endpoint, Listener, Transport};

/// Splits `host[:port]` (IPv6 in brackets) into a lower-case host without brackets and an
/// optional port.
pub(crate) fn split_host_port(s: &str) -> (String, Option<u16>) {
    let s = s.trim();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':').and_then(|p| p.parse().ok())),
            None => (rest, None),
        }
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) if !h.contains(':') => (h, p.parse().ok()),
            _ => (s, None),
        }
    };
    (host.to_ascii_lowercase(), port)
}

/// The port a SIP URI names, explicit or by default (section 19.1.2; UDP when the URI says
/// no transport).
pub(crate) fn uri_port(u: &SipUri<'_>) -> u16 {
    crate::hop::uri_port(u, Transport::Udp)
}

/// One `host:port` that names this proxy.
#[derive(Debug, Clone)]
pub(crate) struct OwnAddr {
    ip: Option<IpAddr>,
    name: String,
    port: u16,
}

impl OwnAddr {
    fn new(host: &str, port: u16) -> OwnAddr {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        OwnAddr {
            ip: host.parse::<IpAddr>().ok().map(|i| i.to_canonical()),
            name: host.to_ascii_lowercase(),
            port,
        }
    }
}

/// The addresses that name this proxy: its listeners (address and Via sent-by), the
/// Record-Route URI and the configured ones. Built once per set of listeners.
#[derive(Debug, Clone, Default)]
pub(crate) struct OwnSet {
    addrs: Vec<OwnAddr>,
    /// The listeners it was built from.
    listeners: Vec<Listener>,
}

impl OwnSet {
    pub(crate) fn new(
        listeners: &[Listener],
        record_route: Option<&str>,
        own: &[String],
    ) -> OwnSet {
        let mut addrs = Vec::new();
        for l in listeners {
            addrs.push(OwnAddr::new(&l.addr.ip().to_string(), l.addr.port()));
            if let Some(s) = &l.sent_by {
                let (h, p) = split_host_port(s);
                addrs.push(OwnAddr::new(&h, p.unwrap_or(l.transport.default_port())));
            }
        }
        if let Some(Uri::Sip(u)) = record_route.and_then(Uri::parse) {
            addrs.push(OwnAddr::new(u.host.as_str(), uri_port(&u)));
        }
        for o in own {
            let (h, p) = split_host_port(o);
            addrs.push(OwnAddr::new(&h, p.unwrap_or(5060)));
        }
        OwnSet {
            addrs,
            listeners: listeners.to_vec(),
        }
    }

    /// Built from these listeners?
    pub(crate) fn is_for(&self, listeners: &[Listener]) -> bool {
        self.listeners == listeners
    }

    /// Does `host:port` name this proxy?
    pub(crate) fn contains(&self, host: &str, port: u16) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let ip = host.parse::<IpAddr>().ok().map(|i| i.to_canonical());
        self.addrs.iter().any(|a| {
            a.port == port
                && match (ip, a.ip) {
                    (Some(x), Some(y)) => x == y,
                    _ => a.name.eq_ignore_ascii_case(host),
                }
        })
    }
}

/// Where a URI leads without a resolver (RFC 3263 section 4 for a numeric host), UDP when
/// it says no transport; `None` for a host name.
#[cfg(test)]
pub(crate) fn numeric_target(uri: &str) -> Option<crate::Target> {
    crate::hop::numeric_target(uri, Transport::Udp)
}

/// Where a URI leads (section 16.6 step 7): a numeric host is a [`Target`] at once, a name
/// a [`NextHop::Uri`](crate::NextHop::Uri) the endpoint locates (RFC 3263, with failover);
/// UDP when a numeric URI says no transport.
pub(crate) fn next_hop(uri: &str) -> Option<crate::NextHop> {
    crate::hop::next_hop(uri, Transport::Udp)
}

pub(crate) use crate::hop::route_uri;

/// The keyed hash of what section 16.3 step 4 compares to detect a loop: what affects the
/// processing of the request as it arrives (section 16.6 step 8): the Request-URI, the To
/// and From tags, Call-ID, the CSeq number (not the method: CANCEL and the ACK of a non-2xx
/// share the INVITE's branch), the Route set, Proxy-Require and Proxy-Authorization. The
/// Vias are left out: the top one changes on every hop, so a request that came back
/// around a loop would never match. (A request routed back to us by a Route set naming us
/// twice has another Route set the second time: a spiral.)
pub(crate) fn loop_hash<S: BuildHasher>(hasher: &S, req: &Message<'_>) -> u64 {
    loop_hash_of(hasher, req, true)
}

/// [`loop_hash`] for a stateless proxy (section 16.11): without the To tag and
/// Proxy-Authorization, so that the ACK for a non-2xx (which carries the To tag of the
/// response) and a CANCEL (which carries no credentials) hash as their INVITE did, and
/// so get its branch downstream.
pub(crate) fn stateless_loop_hash<S: BuildHasher>(hasher: &S, req: &Message<'_>) -> u64 {
    loop_hash_of(hasher, req, false)
}

fn loop_hash_of<S: BuildHasher>(hasher: &S, req: &Message<'_>, full: bool) -> u64 {
    let mut h = hasher.build_hasher();
    let uri = match req.start_line() {
        crate::message::StartLine::Request { uri, .. } => uri,
        crate::message::StartLine::Response { .. } => "",
    };
    h.write(uri.as_bytes());
    h.write_u8(0);
    if full {
        h.write(req.to().and_then(|t| t.tag()).unwrap_or("").as_bytes());
    }
    h.write_u8(0);
    h.write(req.from().and_then(|t| t.tag()).unwrap_or("").as_bytes());
    h.write_u8(0);
    h.write(req.call_id().unwrap_or("").as_bytes());
    h.write_u8(0);
    h.write_u32(req.cseq().map_or(0, |c| c.seq));
    let names: &[HeaderName] = if full {
        &[
            HeaderName::Route,
            HeaderName::ProxyRequire,
            HeaderName::ProxyAuthorization,
        ]
    } else {
        &[HeaderName::Route, HeaderName::ProxyRequire]
    };
    for &name in names {
        for v in req.view().header_all(name) {
            h.write(v.as_bytes());
            h.write_u8(0);
        }
        h.write_u8(1);
    }
    h.finish()
}

/// The loop-detection part of a branch this proxy wrote: `z9hG4bK` then 16 hex digits then
/// `.` (see [`branch_for`]).
pub(crate) fn branch_loop_part(branch: &str) -> Option<u64> {
    let rest = branch.strip_prefix(crate::MAGIC_COOKIE)?;
    let (hex, _) = rest.split_once('.')?;
    if hex.len() != 16 {
        return None;
    }
    u64::from_str_radix(hex, 16).ok()
}

/// `rest` without the `.{n}` the endpoint appends to a branch for failover attempt n >= 2
/// (RFC 3263 section 4.3, RFC 3261 section 16.7: a new branch per attempt).
fn without_attempt(rest: &str) -> &str {
    match rest.rsplit_once('.') {
        Some((head, n)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => rest,
    }
}

/// Section 16.6 step 8: the loop hash, then a random part that makes every branch unique.
pub(crate) fn branch_for(loop_hash: u64, rng: &mut dyn crate::Rng) -> String {
    let mut b = format!("{}{loop_hash:016x}.", crate::MAGIC_COOKIE);
    crate::rng::push_random_token(&mut b, rng, 12);
    b
}

/// The keyed MAC a stateless branch carries (section 16.11): over the loop part and the
/// previous hop's Via (the incoming request's top Via, with the `received` and `rport` the
/// endpoint stamped), which comes back as the second Via of every response. Only this proxy
/// can make it, so a forged response cannot aim it at an address of the forger's choice
/// (section 26.1.5), and it is the same for a retransmission of the request and for its
/// CANCEL (whose top Via equals the INVITE's, section 9.1).
///
/// `unstamped_from`: the source of a request whose Via the endpoint left as received (an
/// ACK): the `received` and `rport` it would have stamped (section 18.2.1, RFC 3581
/// section 4) are hashed instead, so that the ACK for a non-2xx gets its INVITE's branch.
pub(crate) fn via_mac<S: BuildHasher>(
    key: &S,
    loop_part: u64,
    prev: &Via<'_>,
    unstamped_from: Option<SocketAddr>,
) -> u64 {
    let mut received = prev.received().map(std::borrow::Cow::Borrowed);
    let mut rport = prev.rport();
    if let Some(remote) = unstamped_from {
        let rport_asked = rport == Some(None);
        let differs = crate::transport::via::host_ip(&prev.host) != Some(remote.ip());
        if received.is_none() && (differs || rport_asked) {
            received = Some(std::borrow::Cow::Owned(remote.ip().to_string()));
        }
        if rport_asked {
            rport = Some(Some(remote.port()));
        }
    }
    let mut h = key.build_hasher();
    h.write_u64(loop_part);
    for part in [
        prev.branch().unwrap_or(""),
        prev.transport,
        prev.host.as_str(),
        received.as_deref().unwrap_or(""),
    ] {
        h.write(part.as_bytes());
        h.write_u8(0);
    }
    h.write_u32(prev.port.map_or(0, |p| u32::from(p) + 1));
    h.write_u32(match rport {
        None => 0,
        Some(None) => 1,
        Some(Some(p)) => u32::from(p) + 2,
    });
    h.finish()
}

/// Section 16.11: the branch of a stateless proxy, computed from the request only: the
/// loop part (as [`branch_for`] writes it), then `.s` and [`via_mac`].
pub(crate) fn stateless_branch<S: BuildHasher>(
    key: &S,
    loop_part: u64,
    prev: &Via<'_>,
    unstamped_from: Option<SocketAddr>,
) -> String {
    let mac = via_mac(key, loop_part, prev, unstamped_from);
    format!("{}{loop_part:016x}.s{mac:016x}", crate::MAGIC_COOKIE)
}

/// The loop part and MAC of a branch [`stateless_branch`] wrote. A `.{n}` suffix (the
/// endpoint's branch for failover attempt n, RFC 3263 section 4.3) is not part of the MAC.
pub(crate) fn stateless_branch_parts(branch: &str) -> Option<(u64, u64)> {
    let loop_part = branch_loop_part(branch)?;
    let (_, rest) = branch.split_once('.')?;
    let rest = without_attempt(rest);
    let hex = rest.strip_prefix('s')?;
    if hex.len() != 16 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    Some((loop_part, u64::from_str_radix(hex, 16).ok()?))
}

/// The listener a request over `transport` to an address of this family (IPv4 or not)
/// leaves from (as the endpoint chooses it: same transport and family, else same family).
pub(crate) fn outgoing_listener(
    endpoint: &Endpoint,
    transport: Transport,
    ipv4: bool,
) -> Option<&Listener> {
    let ls = &endpoint.config().listeners;
    let same_family = |l: &&Listener| l.addr.is_ipv4() == ipv4;
    ls.iter()
        .filter(same_family)
        .find(|l| l.transport == transport)
        .or_else(|| ls.iter().find(same_family))
}

/// A Record-Route URI naming one listener (RFC 5658: one entry per interface).
pub(crate) fn listener_uri(l: &Listener) -> String {
    let host = match &l.sent_by {
        Some(s) => s.clone(),
        None => l.addr.to_string(),
    };
    match l.transport {
        Transport::Udp => format!("sip:{host};lr"),
        Transport::Tcp => format!("sip:{host};transport=tcp;lr"),
        Transport::Tls => format!("sips:{host};lr"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_host_port_handles_ipv6_and_names() {
        assert_eq!(split_host_port("[::1]:5070"), ("::1".into(), Some(5070)));
        assert_eq!(
            split_host_port("P1.example.com"),
            ("p1.example.com".into(), None)
        );
        assert_eq!(
            split_host_port("192.0.2.1:5060"),
            ("192.0.2.1".into(), Some(5060))
        );
    }

    #[test]
    fn rfc3261_16_6_step_7_numeric_targets_only() {
        let t = numeric_target("sip:bob@192.0.2.4:5070;transport=tcp").unwrap();
        assert_eq!(t.transport, Transport::Tcp);
        assert_eq!(t.addr, "192.0.2.4:5070".parse().unwrap());
        let t = numeric_target("sip:bob@example.com;maddr=192.0.2.9").unwrap();
        assert_eq!(t.addr, "192.0.2.9:5060".parse().unwrap());
        assert!(numeric_target("sip:bob@example.com").is_none());
        assert!(numeric_target("tel:+1234").is_none());
    }

    #[test]
    fn rfc3263_4_3_failover_branch_suffix_keeps_loop_part_and_mac() {
        // RFC 3261 16.3 step 4 / 16.11 with RFC 3263 4.3: attempt n's branch is
        // `{branch}.{n}`; the loop part and the stateless MAC still read from it.
        let mut rng = crate::SeededRng::new([2; 32]);
        let b = branch_for(0xfeed_0000_0000_beef, &mut rng);
        assert_eq!(
            branch_loop_part(&format!("{b}.2")),
            Some(0xfeed_0000_0000_beef)
        );
        let s = format!("{}{:016x}.s{:016x}", crate::MAGIC_COOKIE, 7u64, 9u64);
        assert_eq!(stateless_branch_parts(&s), Some((7, 9)));
        assert_eq!(stateless_branch_parts(&format!("{s}.2")), Some((7, 9)));
        assert_eq!(stateless_branch_parts(&format!("{s}.x")), None);
    }

    #[test]
    fn rfc3261_16_6_step_8_branch_carries_the_loop_hash() {
        let mut rng = crate::SeededRng::new([1; 32]);
        let b = branch_for(0x0123_4567_89ab_cdef, &mut rng);
        assert_eq!(branch_loop_part(&b), Some(0x0123_4567_89ab_cdef));
        assert_ne!(b, branch_for(0x0123_4567_89ab_cdef, &mut rng));
        assert_eq!(branch_loop_part("z9hG4bKabc"), None);
    }
}
