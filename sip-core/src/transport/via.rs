//! The Via rules of the transport layer: the `received` and `rport` parameters a server adds
//! to a request it receives (RFC 3261 section 18.2.1, RFC 3581 section 4) and where the
//! response to it goes (RFC 3261 section 18.2.2, RFC 3581 section 4).

use std::net::{IpAddr, SocketAddr};

use smallvec::SmallVec;

use super::{FlowId, ResponsePolicy, Source, Transport};
use crate::message::{Host, Via};

/// The IP address a sent-by or maddr host names, if it is a literal address.
pub(crate) fn host_ip(host: &Host<'_>) -> Option<IpAddr> {
    match host {
        Host::Ipv4(s) => s.parse().ok(),
        Host::Ipv6(s) => s.parse().ok(),
        Host::Domain(_) => None,
    }
}

/// Byte offset of `part` (a slice of `base`) in `base`.
fn offset(base: &[u8], part: &str) -> usize {
    (part.as_ptr() as usize).saturating_sub(base.as_ptr() as usize)
}

/// The end of the top Via value in `data` (after its last parameter, or after sent-by).
fn via_end(data: &[u8], via: &Via<'_>) -> usize {
    if !via.params.is_empty() {
        let raw = via.params.as_str();
        return offset(data, raw) + raw.len();
    }
    let (host, close) = match via.host {
        Host::Ipv6(h) => (h, 1),
        Host::Ipv4(h) | Host::Domain(h) => (h, 0),
    };
    let mut end = offset(data, host) + host.len() + close;
    if via.port.is_some() {
        // sent-by = host [ COLON port ], with LWS allowed around the colon
        let mut i = end;
        while i < data.len() && matches!(data[i], b' ' | b'\t' | b':' | b'0'..=b'9') {
            i += 1;
        }
        while i > end && matches!(data[i - 1], b' ' | b'\t') {
            i -= 1;
        }
        end = i;
    }
    end
}

/// One insertion into a message: `text` goes in at byte offset `at`.
pub(crate) type Insertion = (usize, SmallVec<[u8; 48]>);

/// What to insert into a request's top Via so that it carries `received` and `rport`
/// (positions in order), or nothing when nothing needs adding.
///
/// Section 18.2.1: `received` is added when sent-by is a name or an address other than the
/// packet's source. RFC 3581 section 4: an `rport` without a value gets the source port, and
/// then `received` is added even when it equals sent-by.
pub(crate) fn stamp_insertions(
    data: &[u8],
    via: &Via<'_>,
    remote: SocketAddr,
) -> SmallVec<[Insertion; 2]> {
    let mut out = SmallVec::new();
    let mut rport_at = None;
    let mut has_received = false;
    for p in via.params.iter() {
        if p.name.eq_ignore_ascii_case("rport") && p.value.is_none() {
            rport_at = Some(offset(data, p.name) + p.name.len());
        } else if p.name.eq_ignore_ascii_case("received") {
            has_received = true;
        }
    }
    let differs = host_ip(&via.host) != Some(remote.ip());
    let add_received = !has_received && (differs || rport_at.is_some());
    if let Some(at) = rport_at {
        let mut text = SmallVec::new();
        text.push(b'=');
        crate::builder::push_decimal(&mut text, remote.port());
        out.push((at, text));
    }
    if add_received {
        let mut text: SmallVec<[u8; 48]> = SmallVec::new();
        text.extend_from_slice(b";received=");
        match remote.ip() {
            IpAddr::V4(ip) => {
                for (i, octet) in ip.octets().into_iter().enumerate() {
                    if i > 0 {
                        text.push(b'.');
                    }
                    crate::builder::push_decimal(&mut text, octet);
                }
            }
            IpAddr::V6(ip) => text.extend_from_slice(ip.to_string().as_bytes()),
        }
        out.push((via_end(data, via), text));
    }
    out
}

/// The request with `received` and `rport` filled in on its top Via, or `None` when nothing
/// needs adding (see [`stamp_insertions`]).
#[cfg(test)]
pub(crate) fn stamp_request(data: &[u8], via: &Via<'_>, remote: SocketAddr) -> Option<Vec<u8>> {
    let edits = stamp_insertions(data, via, remote);
    if edits.is_empty() {
        return None;
    }
    let mut out = Vec::with_capacity(data.len() + 48);
    let mut from = 0;
    for (at, text) in &edits {
        out.extend_from_slice(&data[from..*at]);
        out.extend_from_slice(text);
        from = *at;
    }
    out.extend_from_slice(&data[from..]);
    Some(out)
}

/// Where the responses of a server transaction go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResponseRoute {
    /// Reliable transports: back on the connection the request came on; if it has closed,
    /// a new connection to `fallback` (the source address and the sent-by port).
    Flow {
        /// The flow of the request.
        flow: FlowId,
        /// TCP or TLS.
        transport: Transport,
        /// Where to connect if the flow is gone.
        fallback: SocketAddr,
    },
    /// Unreliable transports: a datagram from `local` to `remote`.
    Datagram {
        /// The local address the request arrived at.
        local: SocketAddr,
        /// The destination.
        remote: SocketAddr,
    },
}

/// Section 18.2.2 with RFC 3581 section 4, given the request's top Via as the client wrote
/// it and where the request came from.
///
/// The received parameter always carries the packet's source address when it is present, and
/// without it sent-by *is* the source address, so the address is the source unless `maddr`
/// names another; the port is the source port when `rport` asked for it, otherwise the
/// sent-by port or the transport's default.
///
/// Under [`ResponsePolicy::SourceOnly`] a datagram response goes to the source address and
/// port whatever the Via says (section 26.1.5: a forged source must not let the Via aim the
/// response elsewhere).
pub(crate) fn response_route(
    via: &Via<'_>,
    source: &Source,
    policy: ResponsePolicy,
) -> ResponseRoute {
    let sent_by_port = via.port.unwrap_or(source.transport.default_port());
    if let (true, Some(flow)) = (source.transport.is_reliable(), source.flow) {
        return ResponseRoute::Flow {
            flow,
            transport: source.transport,
            fallback: SocketAddr::new(source.remote.ip(), sent_by_port),
        };
    }
    if !policy.trusts_via() {
        return ResponseRoute::Datagram {
            local: source.local,
            remote: source.remote,
        };
    }
    // one pass over the parameters for both maddr and rport
    let (mut maddr, mut rport) = (None, false);
    for p in via.params.iter() {
        if p.name.eq_ignore_ascii_case("maddr") && maddr.is_none() {
            maddr = p.value.and_then(|m| {
                let m = m.trim_start_matches('[').trim_end_matches(']');
                m.parse::<IpAddr>().ok()
            });
        } else if p.name.eq_ignore_ascii_case("rport") {
            rport = true;
        }
    }
    let remote = match maddr {
        Some(ip) => SocketAddr::new(ip, sent_by_port),
        None if rport => source.remote,
        None => SocketAddr::new(source.remote.ip(), sent_by_port),
    };
    ResponseRoute::Datagram {
        local: source.local,
        remote,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    fn req(via: &str) -> Vec<u8> {
        format!(
            "OPTIONS sip:b@example.com SIP/2.0\r\nVia: {via}\r\nFrom: <sip:a@example.com>;tag=1\r\n\
             To: <sip:b@example.com>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn stamped(via: &str, remote: &str) -> Option<String> {
        let data = req(via);
        let m = Message::parse(&data).unwrap();
        let top = m.top_via().unwrap();
        let out = stamp_request(&data, &top, remote.parse().unwrap())?;
        let m2 = Message::parse(&out).expect("stamped request parses");
        // Moving the spans gives the same layout as framing the stamped bytes again.
        let insertions = stamp_insertions(&data, &top, remote.parse().unwrap());
        let shifted = crate::OwnedMessage::from_view_with_insertions(m.view(), &insertions);
        let reparsed = crate::OwnedMessage::parse(&out).unwrap();
        assert_eq!(shifted.as_bytes(), reparsed.as_bytes());
        let (a, b) = (shifted.view(), reparsed.view());
        assert_eq!(a.start_line(), b.start_line());
        assert!(a.headers().eq(b.headers()), "{via}");
        assert_eq!(a.body(), b.body());
        assert_eq!(a.head(), b.head());
        let v = m2.view().header(crate::HeaderName::Via).unwrap().to_owned();
        Some(v)
    }

    #[test]
    fn rfc3261_18_2_1_received_added_when_sent_by_differs_from_source() {
        assert_eq!(
            stamped(
                "SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa",
                "192.0.2.4:5060"
            )
            .as_deref(),
            Some("SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKa;received=192.0.2.4")
        );
        assert_eq!(
            stamped(
                "SIP/2.0/UDP pc.example.com;branch=z9hG4bKa",
                "192.0.2.4:5060"
            )
            .as_deref(),
            Some("SIP/2.0/UDP pc.example.com;branch=z9hG4bKa;received=192.0.2.4")
        );
        assert_eq!(
            stamped("SIP/2.0/UDP 192.0.2.4:5060", "192.0.2.4:5060").as_deref(),
            None
        );
        assert_eq!(
            stamped("SIP/2.0/UDP 10.0.0.1 , SIP/2.0/UDP x", "192.0.2.4:5060").as_deref(),
            Some("SIP/2.0/UDP 10.0.0.1;received=192.0.2.4 , SIP/2.0/UDP x")
        );
    }

    #[test]
    fn rfc3581_4_rport_filled_and_received_added_even_when_equal() {
        assert_eq!(
            stamped(
                "SIP/2.0/UDP 192.0.2.4:5060;rport;branch=z9hG4bKa",
                "192.0.2.4:40000"
            )
            .as_deref(),
            Some("SIP/2.0/UDP 192.0.2.4:5060;rport=40000;branch=z9hG4bKa;received=192.0.2.4")
        );
        assert_eq!(
            stamped("SIP/2.0/UDP [2001:db8::9]:5060;rport", "[2001:db8::1]:7000").as_deref(),
            Some("SIP/2.0/UDP [2001:db8::9]:5060;rport=7000;received=2001:db8::1")
        );
    }

    fn route(via: &str, transport: Transport, remote: &str) -> ResponseRoute {
        route_with(ResponsePolicy::Rfc3261, via, transport, remote)
    }

    fn route_with(
        policy: ResponsePolicy,
        via: &str,
        transport: Transport,
        remote: &str,
    ) -> ResponseRoute {
        let data = req(via);
        let m = Message::parse(&data).unwrap();
        let source = Source {
            transport,
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: remote.parse().unwrap(),
            flow: transport.is_reliable().then_some(FlowId(crate::id::Key {
                index: 3,
                generation: 0,
            })),
        };
        response_route(&m.top_via().unwrap(), &source, policy)
    }

    fn datagram_to(r: ResponseRoute) -> String {
        match r {
            ResponseRoute::Datagram { remote, .. } => remote.to_string(),
            other => panic!("expected a datagram route, got {other:?}"),
        }
    }

    #[test]
    fn rfc3261_18_2_2_unreliable_responses_go_to_received_and_sent_by_port() {
        let r = route(
            "SIP/2.0/UDP pc.example.com:5070",
            Transport::Udp,
            "192.0.2.4:40000",
        );
        assert_eq!(datagram_to(r), "192.0.2.4:5070");
        let r = route(
            "SIP/2.0/UDP pc.example.com",
            Transport::Udp,
            "192.0.2.4:40000",
        );
        assert_eq!(datagram_to(r), "192.0.2.4:5060");
    }

    #[test]
    fn rfc3581_4_rport_sends_the_response_to_the_source_port() {
        let r = route(
            "SIP/2.0/UDP 10.1.1.1:5070;rport",
            Transport::Udp,
            "192.0.2.4:40000",
        );
        assert_eq!(datagram_to(r), "192.0.2.4:40000");
    }

    #[test]
    fn rfc3261_18_2_2_maddr_takes_precedence() {
        let r = route(
            "SIP/2.0/UDP 10.1.1.1:5070;maddr=239.255.255.1;ttl=1;rport",
            Transport::Udp,
            "192.0.2.4:40000",
        );
        assert_eq!(datagram_to(r), "239.255.255.1:5070");
    }

    #[test]
    fn rfc3261_18_2_2_reliable_responses_use_the_request_flow_with_a_fallback() {
        match route(
            "SIP/2.0/TCP pc.example.com:5090",
            Transport::Tcp,
            "192.0.2.4:40000",
        ) {
            ResponseRoute::Flow { fallback, .. } => {
                assert_eq!(fallback.to_string(), "192.0.2.4:5090")
            }
            other => panic!("{other:?}"),
        }
    }

    // RFC 3261 26.1.5, RFC 3581 4
    #[test]
    fn rfc3261_26_1_5_untrusted_peers_are_answered_at_the_source_whatever_the_via_says() {
        for via in [
            "SIP/2.0/UDP 10.1.1.1:5070;maddr=239.255.255.1;ttl=1;rport",
            "SIP/2.0/UDP 10.1.1.1:5070;maddr=203.0.113.9",
            "SIP/2.0/UDP 192.0.2.4:5070",
            "SIP/2.0/UDP pc.example.com",
            "SIP/2.0/UDP 10.1.1.1:5070;rport",
        ] {
            let r = route_with(
                ResponsePolicy::SourceOnly,
                via,
                Transport::Udp,
                "192.0.2.4:40000",
            );
            assert_eq!(datagram_to(r), "192.0.2.4:40000", "{via}");
        }
        // a reliable transport keeps its flow and the sent-by port for a new connection
        match route_with(
            ResponsePolicy::SourceOnly,
            "SIP/2.0/TCP pc.example.com:5090;maddr=203.0.113.9",
            Transport::Tcp,
            "192.0.2.4:40000",
        ) {
            ResponseRoute::Flow { fallback, .. } => {
                assert_eq!(fallback.to_string(), "192.0.2.4:5090")
            }
            other => panic!("{other:?}"),
        }
    }
}
