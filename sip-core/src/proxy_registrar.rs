//! A proxy-registrar: the routing policy of a small SIP server that is both the registrar
//! of a domain (RFC 3261 section 10.3, the UAS core of [`crate::ua`]) and its proxy
//! (section 16): a request for a registered user of the domain goes to the user's
//! contacts (section 16.5, forking when there are several), anything else to a configured
//! next hop or to the host of its Request-URI.
//!
//! [`Routing::route`] is the policy as a pure function of the request and the bindings of
//! the location service; [`ProxyRegistrar`] is the transaction user that runs it with the
//! UAS core ([`UserAgent`]: the registrar and the answers to OPTIONS) and the proxy core
//! ([`Proxy`]), shared by the drivers' `sipd --proxy` and by other programs.
//!
//! Overload (RFC 3261 section 21.5.4): a request that would be forwarded while the
//! proxy's context table or the endpoint's transaction table or byte budget has no room
//! for it is answered 503 with Retry-After instead; nothing is sent downstream for it.
//! Retransmissions of a request are absorbed by its server transaction, so each branch
//! carries one request (and the retransmissions of its own client transaction).

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use crate::location::Binding;
use crate::message::{Host, SipUri};
use crate::proxy::{Inbound, Proxy, ProxyTarget, Received};
use crate::registrar::canonical_aor;
use crate::rng::push_random_token;
use crate::ua::UserAgent;
use crate::{
    Endpoint, Event, HeaderName, Method, OwnedMessage, ResponseBuilder, SeededRng, Target,
    TransactionUser, Transport, Uri,
};

/// The fixed next hop of every request that is not for a registered user (`sipd
/// --route-to`): an outbound proxy or a trunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTo {
    /// The URI as configured, e.g. `sip:127.0.0.1:5070`.
    pub uri: String,
    /// Where it is: the address the URI names, resolved by the caller.
    pub next_hop: Target,
}

impl RouteTo {
    /// The next hop `uri` names (a `sip:` or `sips:` URI without user part): its host
    /// resolved by `resolve` when it is a name, its port or the transport's default
    /// (RFC 3261 section 19.1.2), its transport from the `transport` parameter (`sips`:
    /// TLS, else UDP). The caller resolves once, at start: the core does no DNS.
    pub fn from_uri(
        uri: &str,
        resolve: impl FnOnce(&str) -> Option<IpAddr>,
    ) -> Result<RouteTo, String> {
        let u = SipUri::parse(uri).ok_or_else(|| format!("{uri}: not a sip: URI"))?;
        if u.user.is_some() {
            return Err(format!("{uri}: a next hop has no user part"));
        }
        let transport = match u.transport() {
            Some(t) if t.eq_ignore_ascii_case("tcp") => Transport::Tcp,
            Some(t) if t.eq_ignore_ascii_case("tls") => Transport::Tls,
            Some(t) if !t.eq_ignore_ascii_case("udp") => {
                return Err(format!("{uri}: transport {t} not supported"))
            }
            _ if u.secure => Transport::Tls,
            _ => Transport::Udp,
        };
        let ip = match u.host.ip() {
            Some(ip) => ip,
            None => resolve(u.host.as_str())
                .ok_or_else(|| format!("{uri}: {} has no address", u.host.as_str()))?,
        };
        let port = u.port.unwrap_or(transport.default_port());
        Ok(RouteTo {
            uri: uri.to_owned(),
            next_hop: Target {
                transport,
                addr: SocketAddr::new(ip, port),
            },
        })
    }
}

/// What the proxy-registrar serves.
#[derive(Debug, Clone)]
pub struct Routing {
    /// The domain it is the registrar and proxy of (a host name, compared
    /// case-insensitively, or an address).
    pub domain: String,
    /// Its own addresses (the listeners): a Request-URI naming one of them (host and port,
    /// 5060 or 5061 when absent) is for this server. An unspecified address (`0.0.0.0`)
    /// matches any address with its port.
    pub local: Vec<SocketAddr>,
    /// The next hop of every request that is not for a registered user (`--route-to`).
    pub route_to: Option<RouteTo>,
}

/// Where one forwarded copy of a request goes (the target of section 16.5 with what
/// section 16.6 needs to send it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    /// The new Request-URI (section 16.6 step 2): a registered contact, or the request's
    /// own Request-URI when it only passes through.
    pub uri: String,
    /// The contact's `q` in thousandths, for the order of sequential forking (section
    /// 16.6).
    pub q: Option<u16>,
    /// The Path of the registration, sent as the Route of the request (RFC 3327 section
    /// 5.3).
    pub path: Vec<String>,
    /// The next hop when it is not derived from the URI (`--route-to`).
    pub next_hop: Option<Target>,
}

/// The routing decision for a request that reached the application (after sections 16.3
/// and 16.4).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision {
    /// The UAS core answers it: REGISTER for the domain (the registrar), OPTIONS
    /// addressed to this server.
    Local,
    /// Forward it to these destinations (several: fork, section 16.6).
    Forward(Vec<Destination>),
    /// Answer it with this status: 480 for a user of the domain with no binding (section
    /// 16.5: an empty target set), 404 for a resource of this server that does not exist
    /// (section 16.5), 416 for a URI scheme it cannot route (section 16.3 step 2).
    Reject(u16),
}

/// Who a Request-URI names, as far as this server is concerned.
enum Addressee {
    /// This server itself (no user part, our host).
    Server,
    /// A user of the domain, with the AORs to look up.
    User(Vec<String>),
    /// Somebody elsewhere.
    Elsewhere,
    /// A URI this server cannot route by itself (not `sip:`/`sips:`).
    Unroutable,
}

impl Routing {
    /// Is `request` the UAS core's without routing: a REGISTER for the registrar (the
    /// domain or one of our addresses) or an OPTIONS addressed to this server, without a
    /// Route (section 16.4 left none)?
    pub fn is_local(&self, request: &OwnedMessage) -> bool {
        let register = match request.method() {
            Some(Method::Register) => true,
            Some(Method::Options) => false,
            _ => return false,
        };
        if request
            .view()
            .headers()
            .any(|h| h.kind == HeaderName::Route)
        {
            return false;
        }
        let Some(Uri::Sip(u)) = request.request_uri().and_then(Uri::parse) else {
            return false;
        };
        match self.addressee(&u) {
            Addressee::Server => true,
            Addressee::User(_) => register,
            _ => false,
        }
    }

    /// Routes `request` (section 16.5): `lookup` gives the unexpired bindings of an AOR
    /// in canonical form ([`canonical_aor`]).
    pub fn route(
        &self,
        request: &OwnedMessage,
        mut lookup: impl FnMut(&str) -> Vec<Binding>,
    ) -> Decision {
        let Some(method) = request.method() else {
            return Decision::Reject(400);
        };
        let has_route = request
            .view()
            .headers()
            .any(|h| h.kind == HeaderName::Route);
        let addressee = match request.request_uri().and_then(Uri::parse) {
            Some(Uri::Sip(u)) => self.addressee(&u),
            Some(_) => Addressee::Unroutable,
            None => return Decision::Reject(400),
        };
        match addressee {
            Addressee::Server if !has_route && matches!(method, Method::Options) => {
                return Decision::Local
            }
            // The registrar takes REGISTER for its domain and for its addresses (the
            // registrar configuration lists both); a user part is not ours to judge.
            Addressee::Server | Addressee::User(_)
                if !has_route && matches!(method, Method::Register) =>
            {
                return Decision::Local
            }
            Addressee::User(aors) => {
                let mut targets = Vec::new();
                for aor in &aors {
                    for b in lookup(aor) {
                        if !targets.iter().any(|t: &Destination| t.uri == b.contact) {
                            targets.push(Destination {
                                uri: b.contact,
                                q: b.q,
                                path: b.path,
                                next_hop: None,
                            });
                        }
                    }
                }
                if !targets.is_empty() {
                    return Decision::Forward(targets);
                }
                if self.route_to.is_none() {
                    // Section 16.5: the location service has no target for the AOR.
                    return Decision::Reject(480);
                }
            }
            Addressee::Server if self.route_to.is_none() => return Decision::Reject(404),
            Addressee::Unroutable if self.route_to.is_none() => return Decision::Reject(416),
            Addressee::Elsewhere if self.route_to.is_none() => {
                // Section 16.5: not our domain, the target set is the Request-URI.
                return Decision::Forward(vec![Destination {
                    uri: request.request_uri().unwrap_or_default().to_owned(),
                    q: None,
                    path: Vec::new(),
                    next_hop: None,
                }]);
            }
            _ => {}
        }
        let Some(route_to) = &self.route_to else {
            return Decision::Reject(404);
        };
        Decision::Forward(vec![Destination {
            uri: request.request_uri().unwrap_or_default().to_owned(),
            q: None,
            path: Vec::new(),
            next_hop: Some(route_to.next_hop),
        }])
    }

    fn addressee(&self, uri: &SipUri<'_>) -> Addressee {
        let ours = self.is_domain(&uri.host) || self.is_our_address(uri);
        match (ours, uri.user) {
            (false, _) => Addressee::Elsewhere,
            (true, None) => Addressee::Server,
            (true, Some(_)) => {
                let mut aors: Vec<String> = canonical_aor(&Uri::Sip(*uri)).into_iter().collect();
                // A user reached at one of our addresses is also the user of the domain.
                let mut in_domain = *uri;
                in_domain.host = Host::classify(&self.domain).unwrap_or(uri.host);
                in_domain.port = None;
                if let Some(aor) = canonical_aor(&Uri::Sip(in_domain)) {
                    if !aors.contains(&aor) {
                        aors.push(aor);
                    }
                }
                Addressee::User(aors)
            }
        }
    }

    fn is_domain(&self, host: &Host<'_>) -> bool {
        Host::classify(&self.domain).is_some_and(|d| d.equivalent(host))
    }

    fn is_our_address(&self, uri: &SipUri<'_>) -> bool {
        let Some(ip) = uri.host.ip() else {
            return false;
        };
        let port = uri.port.unwrap_or(if uri.secure { 5061 } else { 5060 });
        self.local.iter().any(|a| {
            a.port() == port && (a.ip() == ip || a.ip().is_unspecified() || same(a.ip(), ip))
        })
    }
}

/// The same address, IPv4 or written as IPv4-mapped IPv6.
fn same(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

/// Counters of the routing decisions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RoutingStats {
    /// Requests for the UAS core (REGISTER, OPTIONS to this server).
    pub local: u64,
    /// Requests forwarded to registered contacts.
    pub to_users: u64,
    /// Requests forwarded elsewhere (`--route-to`, the Request-URI's host).
    pub passed_on: u64,
    /// Requests answered 404, 416 or 480 by the policy.
    pub rejected: u64,
    /// Requests answered 503 for lack of room in the endpoint (transactions, bytes); the
    /// proxy core counts those refused for its context table
    /// ([`ProxyStats::overloaded`](crate::proxy::ProxyStats::overloaded)).
    pub overloaded: u64,
}

/// The proxy-registrar as a transaction user: the UAS core and the proxy core behind the
/// routing policy. See the module docs.
#[derive(Debug)]
pub struct ProxyRegistrar {
    ua: UserAgent,
    proxy: Proxy,
    routing: Routing,
    rng: SeededRng,
    stats: RoutingStats,
}

impl ProxyRegistrar {
    /// Joins a UAS core (with its registrar configured and its bindings in memory: the
    /// policy reads them with [`UserAgent::lookup`]), a proxy core and the policy. `seed`
    /// keys the To tags of the 503s it sends itself (32 bytes from the operating system).
    pub fn new(ua: UserAgent, proxy: Proxy, routing: Routing, seed: [u8; 32]) -> ProxyRegistrar {
        ProxyRegistrar {
            ua,
            proxy,
            routing,
            rng: SeededRng::new(seed),
            stats: RoutingStats::default(),
        }
    }

    /// The UAS core (its counters and bindings).
    pub fn ua(&self) -> &UserAgent {
        &self.ua
    }

    /// The UAS core, to take its events ([`UserAgent::poll_event`]).
    pub fn ua_mut(&mut self) -> &mut UserAgent {
        &mut self.ua
    }

    /// The proxy core (its counters and contexts).
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// The routing counters.
    pub fn stats(&self) -> RoutingStats {
        self.stats
    }

    /// Section 16.5 for a request the proxy core handed over.
    fn route(&mut self, now: Instant, inbound: Inbound, endpoint: &mut Endpoint) {
        let ua = &self.ua;
        let decision = self
            .routing
            .route(inbound.request(), |aor| ua.lookup(now, aor));
        match decision {
            Decision::Local => {
                // Reached through a Route of ours (section 16.4 removed it).
                self.stats.local += 1;
                let event = Event::Request {
                    tx: inbound.tx(),
                    request: inbound.request().clone(),
                    source: inbound.source(),
                    cancels: None,
                };
                self.ua.handle_event(now, event, endpoint);
            }
            Decision::Reject(status) => {
                self.stats.rejected += 1;
                self.proxy.reject(now, inbound, status, endpoint);
            }
            Decision::Forward(destinations) => {
                let to_users = destinations.iter().all(|d| d.next_hop.is_none())
                    && !matches!(destinations.as_slice(), [d] if d.uri == inbound.request_uri());
                if self.no_room(&inbound, destinations.len(), endpoint) {
                    self.stats.overloaded += 1;
                    self.unavailable(now, &inbound, endpoint);
                    return;
                }
                let targets = destinations
                    .into_iter()
                    .map(|d| {
                        let mut t = ProxyTarget::new(&d.uri).path(d.path);
                        t.q = d.q;
                        t.next_hop = d.next_hop;
                        t
                    })
                    .collect();
                match self.proxy.forward(now, inbound, targets, endpoint) {
                    Ok(_) if to_users => self.stats.to_users += 1,
                    Ok(_) => self.stats.passed_on += 1,
                    // Answered by the proxy core (480, or 503 counted in its stats).
                    Err(_) => {}
                }
            }
        }
    }

    /// Section 21.5.4: is there no room for `branches` copies of the request, their
    /// transactions and what they will hold? The proxy core checks its own context table.
    fn no_room(&self, inbound: &Inbound, branches: usize, endpoint: &Endpoint) -> bool {
        let config = endpoint.config();
        let held = usize::try_from(endpoint.stats().held_bytes).unwrap_or(usize::MAX);
        // Each branch stores its copy, a little longer than the request (Via,
        // Record-Route), and its responses.
        let needed = inbound
            .request()
            .as_bytes()
            .len()
            .saturating_add(512)
            .saturating_mul(branches.saturating_mul(2));
        held.saturating_add(needed) > config.max_held_bytes
            || endpoint.transactions().saturating_add(branches) > config.max_transactions
    }

    /// The 503 with Retry-After for a request there is no room to forward.
    fn unavailable(&mut self, now: Instant, inbound: &Inbound, endpoint: &mut Endpoint) {
        let retry = self.proxy.config().retry_after.to_string();
        let mut tag = String::with_capacity(16);
        push_random_token(&mut tag, &mut self.rng, 10);
        let view = inbound.request().view();
        let response = ResponseBuilder::from_view(&view, 503)
            .to_tag(&tag)
            .header("Retry-After", &retry)
            .build(&mut self.rng);
        if let Ok(response) = response {
            let _ = endpoint.send_response(now, inbound.tx(), &response);
        }
    }
}

impl TransactionUser for ProxyRegistrar {
    fn handle_event(&mut self, now: Instant, event: Event, endpoint: &mut Endpoint) {
        if let Event::Request { request, .. } = &event {
            if self.routing.is_local(request) {
                self.stats.local += 1;
                self.ua.handle_event(now, event, endpoint);
                return;
            }
        }
        match self.proxy.receive(now, event, endpoint) {
            Received::Route(inbound) => self.route(now, inbound, endpoint),
            Received::NotMine(event) => self.ua.handle_event(now, event, endpoint),
            _ => {}
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        match (self.ua.poll_timeout(), self.proxy.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn handle_timeout(&mut self, now: Instant, endpoint: &mut Endpoint) {
        self.ua.handle_timeout(now, endpoint);
        self.proxy.handle_timeout(now, endpoint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn routing(route_to: Option<&str>) -> Routing {
        Routing {
            domain: "example.test".into(),
            local: vec!["127.0.0.1:5500".parse().unwrap()],
            route_to: route_to.map(|u| RouteTo {
                uri: u.into(),
                next_hop: Target::udp("127.0.0.1:5070".parse().unwrap()),
            }),
        }
    }

    fn request(method: &str, uri: &str, extra: &str) -> OwnedMessage {
        let text = format!(
            "{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5599;branch=z9hG4bK1\r\n\
             Max-Forwards: 70\r\nFrom: <sip:carol@example.test>;tag=1\r\nTo: <{uri}>\r\n\
             Call-ID: c1\r\nCSeq: 1 {method}\r\n{extra}Content-Length: 0\r\n\r\n"
        );
        OwnedMessage::parse(text.as_bytes()).unwrap()
    }

    fn binding(aor: &str, contact: &str, q: Option<u16>) -> Binding {
        Binding {
            aor: aor.into(),
            contact: contact.into(),
            expires_at: Instant::now() + Duration::from_secs(60),
            q,
            call_id: "r".into(),
            cseq: 1,
            path: vec!["<sip:edge.example.test;lr>".into()],
            instance: None,
            reg_id: None,
            source: None,
        }
    }

    fn bob(aor: &str) -> Vec<Binding> {
        if aor == "sip:bob@example.test" {
            vec![
                binding(aor, "sip:bob@127.0.0.1:5501", Some(1000)),
                binding(aor, "sip:bob@127.0.0.1:5502", Some(500)),
            ]
        } else {
            Vec::new()
        }
    }

    // RFC 3261 16.5: the target set of a registered AOR is its contacts, each with its q
    // and the Path of its registration (RFC 3327 5.3).
    #[test]
    fn registered_user_forks_to_every_contact() {
        let d = routing(None).route(&request("INVITE", "sip:bob@example.test", ""), bob);
        let Decision::Forward(targets) = d else {
            panic!("{d:?}")
        };
        let uris: Vec<&str> = targets.iter().map(|t| t.uri.as_str()).collect();
        assert_eq!(uris, ["sip:bob@127.0.0.1:5501", "sip:bob@127.0.0.1:5502"]);
        assert_eq!(targets[1].q, Some(500));
        assert_eq!(targets[0].path, ["<sip:edge.example.test;lr>"]);
        assert!(targets.iter().all(|t| t.next_hop.is_none()));
    }

    // RFC 3261 16.5: a user reached at the server's own address is the user of the domain.
    #[test]
    fn user_at_our_address_is_a_user_of_the_domain() {
        let d = routing(None).route(&request("MESSAGE", "sip:bob@127.0.0.1:5500", ""), bob);
        assert!(matches!(d, Decision::Forward(t) if t.len() == 2));
    }

    // RFC 3261 16.5: an AOR of the domain with no binding leaves the target set empty: 480.
    #[test]
    fn unregistered_user_of_the_domain_gets_480() {
        let d = routing(None).route(&request("INVITE", "sip:alice@example.test", ""), bob);
        assert_eq!(d, Decision::Reject(480));
    }

    // RFC 3261 16.5: without a binding, a configured next hop takes the request unchanged.
    #[test]
    fn unregistered_user_goes_to_route_to_when_given() {
        let r = routing(Some("sip:127.0.0.1:5070"));
        let d = r.route(&request("INVITE", "sip:service@127.0.0.1:5500", ""), bob);
        let Decision::Forward(t) = d else {
            panic!("{d:?}")
        };
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].uri, "sip:service@127.0.0.1:5500");
        assert_eq!(t[0].next_hop, r.route_to.map(|r| r.next_hop));
    }

    // RFC 3261 16.5: a Request-URI of another domain is the target set itself.
    #[test]
    fn other_domain_is_forwarded_to_its_request_uri() {
        let d = routing(None).route(&request("INVITE", "sip:dave@127.0.0.1:5601", ""), bob);
        assert_eq!(
            d,
            Decision::Forward(vec![Destination {
                uri: "sip:dave@127.0.0.1:5601".into(),
                q: None,
                path: Vec::new(),
                next_hop: None,
            }])
        );
    }

    // RFC 3261 16.5: a resource of this server that does not exist gets 404.
    #[test]
    fn request_to_the_server_itself_gets_404() {
        let d = routing(None).route(&request("INVITE", "sip:127.0.0.1:5500", ""), bob);
        assert_eq!(d, Decision::Reject(404));
    }

    // RFC 3261 11 and 10.3: OPTIONS to the server and REGISTER for the domain are the UAS
    // core's.
    #[test]
    fn options_to_us_and_register_are_local() {
        let r = routing(Some("sip:127.0.0.1:5070"));
        for (m, uri) in [
            ("OPTIONS", "sip:127.0.0.1:5500"),
            ("OPTIONS", "sip:example.test"),
            ("REGISTER", "sip:example.test"),
            ("REGISTER", "sip:127.0.0.1:5500"),
        ] {
            assert_eq!(
                r.route(&request(m, uri, ""), bob),
                Decision::Local,
                "{m} {uri}"
            );
        }
        // With a Route left after section 16.4, it is not for us: it passes through.
        let routed = request(
            "OPTIONS",
            "sip:example.test",
            "Route: <sip:127.0.0.1:5070;lr>\r\n",
        );
        assert!(matches!(r.route(&routed, bob), Decision::Forward(_)));
    }

    // RFC 3261 19.1.2 and 19.1.1: the next hop's port and transport from the URI.
    #[test]
    fn route_to_takes_port_and_transport_from_the_uri() {
        let r = RouteTo::from_uri("sip:127.0.0.1:5070", |_| None).unwrap();
        assert_eq!(r.next_hop, Target::udp("127.0.0.1:5070".parse().unwrap()));
        let r = RouteTo::from_uri("sip:trunk.example.test;transport=tcp", |h| {
            (h == "trunk.example.test").then(|| [127, 0, 0, 2].into())
        })
        .unwrap();
        assert_eq!(r.next_hop, Target::tcp("127.0.0.2:5060".parse().unwrap()));
        assert!(RouteTo::from_uri("sip:bob@127.0.0.1", |_| None).is_err());
        assert!(RouteTo::from_uri("sip:nowhere.test", |_| None).is_err());
        assert!(RouteTo::from_uri("http://127.0.0.1", |_| None).is_err());
    }

    // RFC 3261 16.3 step 2: a scheme the proxy cannot route gets 416.
    #[test]
    fn tel_uri_without_route_to_gets_416() {
        let d = routing(None).route(&request("INVITE", "tel:+15551234", ""), bob);
        assert_eq!(d, Decision::Reject(416));
    }

    // RFC 3261 19.1.2: the default port of a sip URI is 5060, so sip:host is not the
    // server listening on another port.
    #[test]
    fn our_host_on_another_port_is_elsewhere() {
        let d = routing(None).route(&request("INVITE", "sip:127.0.0.1", ""), bob);
        assert!(matches!(d, Decision::Forward(_)), "{d:?}");
    }
}
