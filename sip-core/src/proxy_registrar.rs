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
    /// Forward it to the contacts of a registered user (several: fork, section 16.6).
    Users(Vec<Destination>),
    /// Forward it elsewhere: to `--route-to`, or to its Request-URI (another domain).
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
        let elsewhere = matches!(addressee, Addressee::Elsewhere);
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
                            let next_hop = reach_back(&b);
                            targets.push(Destination {
                                uri: b.contact,
                                q: b.q,
                                path: b.path,
                                next_hop,
                            });
                        }
                    }
                }
                if !targets.is_empty() {
                    return Decision::Users(targets);
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
        if elsewhere {
            // A request inside a dialog (a To tag) goes to its Request-URI, the remote
            // target the peer's Contact set (RFC 3261 12.2.1.1, 16.5): once our own Route
            // is removed (16.4) it is not `--route-to`'s to take. Only a numeric host can
            // be reached without a resolver; a name still goes to `--route-to`.
            if in_dialog(request) && numeric_host(request) {
                return Decision::Forward(vec![Destination {
                    uri: request.request_uri().unwrap_or_default().to_owned(),
                    q: None,
                    path: Vec::new(),
                    next_hop: None,
                }]);
            }
        }
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

/// Where to send a request for the contact of `b` when its URI is not the way: the
/// connection the REGISTER came on (a contact registered over TCP or TLS is reached over
/// that flow, RFC 5626 section 5.3 and RFC 5923: the address in its Contact has no
/// listener), or the source of a REGISTER over UDP whose Contact names a private address
/// other than the source (a UA behind NAT, RFC 3581 section 4). `None`: the contact URI
/// (or the Path, which then leads) decides.
fn reach_back(b: &Binding) -> Option<Target> {
    let src = b.source?;
    if !b.path.is_empty() {
        return None;
    }
    if src.transport.is_reliable() {
        return Some(Target {
            transport: src.transport,
            addr: src.remote,
        });
    }
    let contact = SipUri::parse(&b.contact)?;
    let ip = contact.host.ip()?;
    let private = match ip.to_canonical() {
        IpAddr::V4(v4) => {
            // RFC 1918, the shared address space of carrier-grade NAT (RFC 6598), link-local.
            let o = v4.octets();
            v4.is_private() || (o[0] == 100 && o[1] & 0xc0 == 64) || v4.is_link_local()
        }
        IpAddr::V6(v6) => (v6.segments()[0] & 0xfe00) == 0xfc00,
    };
    (private && !same(ip, src.remote.ip())).then_some(Target::udp(src.remote))
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
        let to_users = matches!(decision, Decision::Users(_));
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
            Decision::Users(destinations) | Decision::Forward(destinations) => {
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
                        t.next_hop = d.next_hop.map(crate::NextHop::from);
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

/// Does `request` belong to a dialog (its To header has a tag, RFC 3261 12.2)?
fn in_dialog(request: &OwnedMessage) -> bool {
    request
        .message()
        .ok()
        .and_then(|m| m.to().map(|to| to.tag().is_some()))
        .unwrap_or(false)
}

/// Is the host of `request`'s Request-URI an IP address?
fn numeric_host(request: &OwnedMessage) -> bool {
    matches!(
        request.request_uri().and_then(Uri::parse),
        Some(Uri::Sip(u)) if matches!(u.host, Host::Ipv4(_) | Host::Ipv6(_))
    )
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
        let Decision::Users(targets) = d else {
            panic!("{d:?}")
        };
        let uris: Vec<&str> = targets.iter().map(|t| t.uri.as_str()).collect();
        assert_eq!(uris, ["sip:bob@127.0.0.1:5501", "sip:bob@127.0.0.1:5502"]);
        assert_eq!(targets[1].q, Some(500));
        assert_eq!(targets[0].path, ["<sip:edge.example.test;lr>"]);
        assert!(targets.iter().all(|t| t.next_hop.is_none()));
    }

    fn sourced(contact: &str, transport: Transport, remote: &str, path: bool) -> Binding {
        let mut b = binding("sip:bob@example.test", contact, None);
        if !path {
            b.path.clear();
        }
        b.source = Some(crate::Source {
            transport,
            local: "127.0.0.1:5500".parse().unwrap(),
            remote: remote.parse().unwrap(),
            flow: None,
        });
        b
    }

    // RFC 5626 5.3, RFC 5923, RFC 3581 4: a contact registered over a connection is
    // reached over it; one behind NAT (a private address in its Contact, another source)
    // at the source of its REGISTER; otherwise, and with a Path, its URI decides.
    #[test]
    fn contacts_behind_a_connection_or_nat_are_reached_at_the_register_source() {
        let tcp = sourced(
            "sip:bob@10.0.0.7:5060",
            Transport::Tcp,
            "198.51.100.7:41000",
            false,
        );
        assert_eq!(
            reach_back(&tcp),
            Some(Target::tcp("198.51.100.7:41000".parse().unwrap()))
        );
        let nat = sourced(
            "sip:bob@192.168.1.10:5060",
            Transport::Udp,
            "203.0.113.5:40000",
            false,
        );
        assert_eq!(
            reach_back(&nat),
            Some(Target::udp("203.0.113.5:40000".parse().unwrap()))
        );
        let cgn = sourced(
            "sip:bob@100.64.3.4",
            Transport::Udp,
            "203.0.113.5:40000",
            false,
        );
        assert!(reach_back(&cgn).is_some());
        let public = sourced(
            "sip:bob@203.0.113.9:5060",
            Transport::Udp,
            "203.0.113.5:40000",
            false,
        );
        assert_eq!(reach_back(&public), None);
        let same = sourced(
            "sip:bob@192.168.1.10:5060",
            Transport::Udp,
            "192.168.1.10:5060",
            false,
        );
        assert_eq!(reach_back(&same), None);
        let pathed = sourced(
            "sip:bob@10.0.0.7",
            Transport::Tcp,
            "198.51.100.7:41000",
            true,
        );
        assert_eq!(reach_back(&pathed), None);
        let unknown = binding("sip:bob@example.test", "sip:bob@10.0.0.7", None);
        assert_eq!(reach_back(&unknown), None);
    }

    // RFC 3261 16.5: a user reached at the server's own address is the user of the domain.
    #[test]
    fn user_at_our_address_is_a_user_of_the_domain() {
        let d = routing(None).route(&request("MESSAGE", "sip:bob@127.0.0.1:5500", ""), bob);
        assert!(matches!(d, Decision::Users(t) if t.len() == 2));
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

    // RFC 3261 12.2.1.1 and 16.5: inside a dialog the Request-URI is the remote target
    // (the callee's Contact); with --route-to set, a BYE or ACK still goes to it, not to
    // --route-to (a numeric host; a name has no resolver here and keeps --route-to).
    #[test]
    fn in_dialog_request_goes_to_its_remote_target_not_route_to() {
        let r = routing(Some("sip:127.0.0.1:5070"));
        let bye = OwnedMessage::parse(
            b"BYE sip:alice@127.0.0.1:5084 SIP/2.0\r\n\
              Via: SIP/2.0/UDP 127.0.0.1:5599;branch=z9hG4bK2\r\nMax-Forwards: 70\r\n\
              From: <sip:carol@example.test>;tag=1\r\nTo: <sip:alice@example.test>;tag=9\r\n\
              Call-ID: c1\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let Decision::Forward(t) = r.route(&bye, bob) else {
            panic!("not forwarded")
        };
        assert_eq!(t[0].uri, "sip:alice@127.0.0.1:5084");
        assert_eq!(t[0].next_hop, None);
        // Outside a dialog the same Request-URI goes to --route-to.
        let d = r.route(&request("INVITE", "sip:alice@127.0.0.1:5084", ""), bob);
        let Decision::Forward(t) = d else {
            panic!("{d:?}")
        };
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

    const SERVER: &str = "127.0.0.1:5060";
    const ALICE: &str = "127.0.0.1:5598";
    const BOB: &str = "127.0.0.1:5599";

    /// An endpoint on SERVER with `config`'s limits, and a proxy-registrar for
    /// example.test where bob is registered at BOB.
    fn proxy_registrar(mut config: crate::Config) -> (Endpoint, ProxyRegistrar, Instant) {
        use crate::registrar::RegistrarConfig;
        use crate::ua::UaConfig;
        config.listeners = vec![crate::Listener::new(
            Transport::Udp,
            SERVER.parse().unwrap(),
        )];
        let mut ep = Endpoint::new(config, [7; 32]);
        let mut ua = UaConfig::new(&format!("<sip:sipd@{SERVER}>"));
        ua.registrar = Some(RegistrarConfig::for_domains(["example.test", "127.0.0.1"]));
        let routing = Routing {
            domain: "example.test".into(),
            local: vec![SERVER.parse().unwrap()],
            route_to: None,
        };
        let mut tu = ProxyRegistrar::new(
            UserAgent::new(ua, [1; 32]),
            Proxy::new(crate::proxy::ProxyConfig::new(None), [2; 32]),
            routing,
            [3; 32],
        );
        let now = Instant::now();
        let register = format!(
            "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP {BOB};branch=z9hG4bKreg\r\n\
             Max-Forwards: 70\r\nFrom: <sip:bob@example.test>;tag=r\r\n\
             To: <sip:bob@example.test>\r\nCall-ID: reg\r\nCSeq: 1 REGISTER\r\n\
             Contact: <sip:bob@{BOB}>\r\nContent-Length: 0\r\n\r\n"
        );
        deliver(&mut ep, &mut tu, now, BOB, &register);
        assert!(sent(&mut ep)
            .iter()
            .any(|(_, l)| l.starts_with("SIP/2.0 200")));
        (ep, tu, now)
    }

    fn deliver(ep: &mut Endpoint, tu: &mut ProxyRegistrar, now: Instant, from: &str, text: &str) {
        ep.handle_datagram(
            now,
            SERVER.parse().unwrap(),
            from.parse().unwrap(),
            text.as_bytes(),
        );
        while let Some(e) = ep.poll_event() {
            tu.handle_event(now, e, ep);
        }
    }

    /// Where each datagram went, and its text.
    fn sent(ep: &mut Endpoint) -> Vec<(SocketAddr, String)> {
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(t) = ep.poll_transmit(&mut buf) {
            out.push((t.remote, String::from_utf8_lossy(&buf).into_owned()));
        }
        out
    }

    fn invite_for_bob() -> String {
        request("INVITE", "sip:bob@example.test", "")
            .as_bytes()
            .iter()
            .map(|&b| char::from(b))
            .collect::<String>()
            .replace("127.0.0.1:5599;branch", &format!("{ALICE};branch"))
    }

    // RFC 3261 21.5.4: a request the endpoint has no room to forward (bytes, then
    // transactions) gets 503 with Retry-After, and nothing goes downstream.
    #[test]
    fn no_room_to_forward_answers_503_with_retry_after() {
        let roomy = crate::Config::default();
        // Room for the REGISTER's transaction and the INVITE's, not for a copy: the
        // endpoint admits the INVITE, the proxy-registrar refuses to forward it.
        let small_budget = crate::Config {
            max_held_bytes: 2000,
            ..crate::Config::default()
        };
        let few_transactions = crate::Config {
            max_transactions: 2,
            ..crate::Config::default()
        };
        for (config, forwarded) in [
            (roomy, true),
            (small_budget, false),
            (few_transactions, false),
        ] {
            let (mut ep, mut tu, now) = proxy_registrar(config);
            deliver(&mut ep, &mut tu, now, ALICE, &invite_for_bob());
            let out = sent(&mut ep);
            let to_bob = out
                .iter()
                .filter(|(a, _)| *a == BOB.parse().unwrap())
                .count();
            let refused = out
                .iter()
                .find(|(a, t)| *a == ALICE.parse().unwrap() && t.starts_with("SIP/2.0 503"));
            if forwarded {
                assert_eq!(to_bob, 1, "{out:?}");
                assert!(refused.is_none(), "{out:?}");
                assert_eq!(tu.stats().to_users, 1);
            } else {
                assert_eq!(to_bob, 0, "{out:?}");
                let (_, text) = refused.expect("a 503");
                assert!(text.contains("\r\nRetry-After: 5\r\n"), "{text}");
                assert_eq!(tu.stats().overloaded, 1);
                assert_eq!(tu.proxy().contexts(), 0);
            }
        }
    }

    // RFC 3261 16.4 and 10.3: a REGISTER sent through this server as its outbound proxy
    // (a Route naming it) reaches the registrar once the Route is removed.
    #[test]
    fn register_routed_to_us_reaches_the_registrar() {
        let (mut ep, mut tu, now) = proxy_registrar(crate::Config::default());
        let register = format!(
            "REGISTER sip:example.test SIP/2.0\r\nVia: SIP/2.0/UDP {ALICE};branch=z9hG4bKrr\r\n\
             Route: <sip:{SERVER};lr>\r\nMax-Forwards: 70\r\n\
             From: <sip:alice@example.test>;tag=r\r\nTo: <sip:alice@example.test>\r\n\
             Call-ID: reg-routed\r\nCSeq: 1 REGISTER\r\n\
             Contact: <sip:alice@{ALICE}>\r\nContent-Length: 0\r\n\r\n"
        );
        deliver(&mut ep, &mut tu, now, ALICE, &register);
        let out = sent(&mut ep);
        assert!(
            out.iter()
                .any(|(a, t)| *a == ALICE.parse().unwrap() && t.starts_with("SIP/2.0 200")),
            "{out:?}"
        );
        assert_eq!(tu.ua().lookup(now, "sip:alice@example.test").len(), 1);
        assert_eq!(tu.proxy().stats().forwarded, 0);
    }

    // RFC 3261 16.5 and 17.2.1: the retransmitted request is absorbed by its server
    // transaction; the branch carries one request.
    #[test]
    fn retransmitted_request_is_forwarded_once() {
        let (mut ep, mut tu, now) = proxy_registrar(crate::Config::default());
        let invite = invite_for_bob();
        for _ in 0..3 {
            deliver(&mut ep, &mut tu, now, ALICE, &invite);
        }
        let out = sent(&mut ep);
        let to_bob: Vec<_> = out
            .iter()
            .filter(|(a, _)| *a == BOB.parse().unwrap())
            .collect();
        assert_eq!(to_bob.len(), 1, "{out:?}");
        assert!(to_bob[0].1.starts_with(&format!("INVITE sip:bob@{BOB} ")));
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
