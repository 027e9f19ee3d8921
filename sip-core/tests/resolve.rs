//! The RFC 3263 resolver (`sip_core::resolve`) against hand-made DNS zones.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sip_core::message::SipUri;
use sip_core::resolve::{
    Answer, Failure, LookupId, Naptr, Query, Record, RecordType, ResolveError, ResolveEvent,
    Resolver, ResolverConfig, Srv,
};
use sip_core::{Target, Transport};

/// A zone: the answer to each (name, type); what is not in it is NXDOMAIN.
#[derive(Default)]
struct Zone(HashMap<(String, RecordType), Answer>);

impl Zone {
    fn naptr(mut self, name: &str, recs: &[(u16, u16, &str, &str, &str)]) -> Zone {
        let r = recs
            .iter()
            .map(|(order, preference, flags, service, replacement)| {
                Record::Naptr(Naptr {
                    order: *order,
                    preference: *preference,
                    flags: flags.to_string(),
                    service: service.to_string(),
                    replacement: replacement.to_string(),
                    ttl: 300,
                })
            })
            .collect();
        self.0
            .insert((name.into(), RecordType::Naptr), Answer::Records(r));
        self
    }
    fn srv(mut self, name: &str, recs: &[(u16, u16, u16, &str)]) -> Zone {
        let r = recs
            .iter()
            .map(|(priority, weight, port, target)| {
                Record::Srv(Srv {
                    priority: *priority,
                    weight: *weight,
                    port: *port,
                    target: target.to_string(),
                    ttl: 300,
                })
            })
            .collect();
        self.0
            .insert((name.into(), RecordType::Srv), Answer::Records(r));
        self
    }
    fn a(mut self, name: &str, addrs: &[&str]) -> Zone {
        let r = addrs
            .iter()
            .map(|a| Record::A {
                addr: a.parse().unwrap(),
                ttl: 60,
            })
            .collect();
        self.0
            .insert((name.into(), RecordType::A), Answer::Records(r));
        self
    }
    fn aaaa(mut self, name: &str, addrs: &[&str]) -> Zone {
        let r = addrs
            .iter()
            .map(|a| Record::Aaaa {
                addr: a.parse().unwrap(),
                ttl: 60,
            })
            .collect();
        self.0
            .insert((name.into(), RecordType::Aaaa), Answer::Records(r));
        self
    }
    fn answer(&self, q: &Query) -> Answer {
        self.0
            .get(&(q.name.clone(), q.rtype))
            .cloned()
            .unwrap_or(Answer::NxDomain { ttl: 3600 })
    }
}

/// Answers every query from `zone` until none is left; returns the questions asked.
fn drive(r: &mut Resolver, now: Instant, zone: &Zone) -> Vec<(String, RecordType)> {
    let mut asked = Vec::new();
    while let Some(q) = r.poll_query() {
        asked.push((q.name.clone(), q.rtype));
        r.handle_answer(now, q.id, zone.answer(&q));
    }
    asked
}

fn targets(r: &mut Resolver, id: LookupId) -> Vec<(Transport, SocketAddr)> {
    match r.poll_event() {
        Some(ResolveEvent::Resolved { lookup, targets }) => {
            assert_eq!(lookup, id);
            targets.iter().map(|t| (t.transport, t.addr)).collect()
        }
        Some(ResolveEvent::NotFound { lookup }) => {
            assert_eq!(lookup, id);
            Vec::new()
        }
        other => panic!("no result: {other:?}"),
    }
}

/// The targets found and the questions asked.
type Resolved = (Vec<(Transport, SocketAddr)>, Vec<(String, RecordType)>);

fn resolve(zone: &Zone, uri: &str) -> Resolved {
    let now = Instant::now();
    let mut r = Resolver::new(ResolverConfig::default(), [3; 32]);
    let id = r.resolve_uri(now, &SipUri::parse(uri).unwrap()).unwrap();
    let asked = drive(&mut r, now, zone);
    (targets(&mut r, id), asked)
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn full_zone() -> Zone {
    Zone::default()
        .naptr(
            "example.test",
            &[
                (20, 10, "s", "SIP+D2U", "_sip._udp.example.test"),
                (10, 20, "s", "SIP+D2T", "_sip._tcp.example.test"),
                (10, 10, "S", "SIPS+D2T", "_sips._tcp.example.test"),
                (5, 10, "s", "SIP+D2S", "_sip._sctp.example.test"),
                (1, 1, "u", "SIP+D2U", "!^.*$!sip:x@y!"),
            ],
        )
        .srv(
            "_sip._udp.example.test",
            &[(0, 0, 5060, "udp.example.test")],
        )
        .srv(
            "_sip._tcp.example.test",
            &[(0, 0, 5062, "tcp.example.test")],
        )
        .srv(
            "_sips._tcp.example.test",
            &[(0, 0, 5061, "tls.example.test")],
        )
        .a("udp.example.test", &["192.0.2.1"])
        .a("tcp.example.test", &["192.0.2.2"])
        .a("tls.example.test", &["192.0.2.3"])
}

// RFC 3263 4.1: a numeric IP needs no DNS; UDP for sip:, port 5060.
#[test]
fn rfc3263_4_1_numeric_ip_needs_no_dns() {
    let (t, asked) = resolve(&Zone::default(), "sip:bob@192.0.2.9");
    assert!(asked.is_empty());
    assert_eq!(t, [(Transport::Udp, sa("192.0.2.9:5060"))]);
    let (t, asked) = resolve(&Zone::default(), "sips:bob@[2001:db8::1]");
    assert!(asked.is_empty());
    assert_eq!(t, [(Transport::Tls, sa("[2001:db8::1]:5061"))]);
}

// RFC 3263 4.1: the transport parameter chooses the transport, even for a numeric IP.
#[test]
fn rfc3263_4_1_transport_parameter_chooses_the_transport() {
    let (t, _) = resolve(&Zone::default(), "sip:192.0.2.9;transport=tcp");
    assert_eq!(t, [(Transport::Tcp, sa("192.0.2.9:5060"))]);
    // With a name and no port: the SRV of that transport only, no NAPTR.
    let (t, asked) = resolve(&full_zone(), "sip:example.test;transport=tcp");
    assert_eq!(asked[0], ("_sip._tcp.example.test".into(), RecordType::Srv));
    assert!(asked.iter().all(|(_, rt)| *rt != RecordType::Naptr));
    assert_eq!(t, [(Transport::Tcp, sa("192.0.2.2:5062"))]);
}

// RFC 3263 4.1: a transport we do not support is refused; sips: is TLS only.
#[test]
fn rfc3263_4_1_unsupported_transport_and_sips_over_udp_are_refused() {
    let now = Instant::now();
    let mut r = Resolver::new(ResolverConfig::default(), [3; 32]);
    let sctp = SipUri::parse("sip:example.test;transport=sctp").unwrap();
    assert_eq!(
        r.resolve_uri(now, &sctp),
        Err(ResolveError::UnsupportedTransport)
    );
    let udp = SipUri::parse("sips:example.test;transport=udp").unwrap();
    assert_eq!(r.resolve_uri(now, &udp), Err(ResolveError::SipsNeedsTls));
    let config = ResolverConfig {
        transports: vec![Transport::Udp],
        ..ResolverConfig::default()
    };
    let mut r = Resolver::new(config, [3; 32]);
    let tcp = SipUri::parse("sip:example.test;transport=tcp").unwrap();
    assert_eq!(
        r.resolve_uri(now, &tcp),
        Err(ResolveError::UnsupportedTransport)
    );
}

// RFC 3263 4.1: a port in the URI: A/AAAA only, UDP (TLS for sips:).
#[test]
fn rfc3263_4_1_port_in_uri_means_address_records_only() {
    let zone = full_zone().a("example.test", &["192.0.2.7"]);
    let (t, asked) = resolve(&zone, "sip:example.test:5080");
    assert!(asked
        .iter()
        .all(|(_, rt)| matches!(rt, RecordType::A | RecordType::Aaaa)));
    assert_eq!(t, [(Transport::Udp, sa("192.0.2.7:5080"))]);
    let (t, _) = resolve(&zone, "sips:example.test:5081");
    assert_eq!(t, [(Transport::Tls, sa("192.0.2.7:5081"))]);
}

// RFC 3263 4.1: NAPTR by order then preference; unsupported services (SIP+D2S) and
// flags other than "s" skipped.
#[test]
fn rfc3263_4_1_naptr_order_then_preference_unsupported_services_skipped() {
    let (t, asked) = resolve(&full_zone(), "sip:bob@example.test");
    assert_eq!(asked[0], ("example.test".into(), RecordType::Naptr));
    assert!(!asked.iter().any(|(n, _)| n.contains("sctp")));
    assert_eq!(
        t,
        [
            (Transport::Tls, sa("192.0.2.3:5061")),
            (Transport::Tcp, sa("192.0.2.2:5062")),
            (Transport::Udp, sa("192.0.2.1:5060")),
        ]
    );
}

// RFC 3263 4.1: services outside the configured set are skipped.
#[test]
fn rfc3263_4_1_naptr_services_outside_the_config_are_skipped() {
    let now = Instant::now();
    let config = ResolverConfig {
        transports: vec![Transport::Udp],
        ..ResolverConfig::default()
    };
    let mut r = Resolver::new(config, [3; 32]);
    let id = r
        .resolve_uri(now, &SipUri::parse("sip:example.test").unwrap())
        .unwrap();
    drive(&mut r, now, &full_zone());
    assert_eq!(
        targets(&mut r, id),
        [(Transport::Udp, sa("192.0.2.1:5060"))]
    );
}

// RFC 3263 4.1: sips: takes only SIPS+D2T from NAPTR.
#[test]
fn rfc3263_4_1_sips_uses_only_sips_d2t() {
    let (t, _) = resolve(&full_zone(), "sips:bob@example.test");
    assert_eq!(t, [(Transport::Tls, sa("192.0.2.3:5061"))]);
}

// RFC 3263 4.1: no NAPTR: SRV for _sip._udp, _sip._tcp, _sips._tcp in that order.
#[test]
fn rfc3263_4_1_without_naptr_srv_is_queried_per_transport() {
    let zone = Zone::default()
        .srv(
            "_sip._tcp.example.test",
            &[(0, 0, 5062, "tcp.example.test")],
        )
        .srv(
            "_sips._tcp.example.test",
            &[(0, 0, 5061, "tls.example.test")],
        )
        .a("tcp.example.test", &["192.0.2.2"])
        .a("tls.example.test", &["192.0.2.3"]);
    let (t, asked) = resolve(&zone, "sip:bob@example.test");
    let srv: Vec<&str> = asked
        .iter()
        .filter(|(_, rt)| *rt == RecordType::Srv)
        .map(|(n, _)| n.as_str())
        .collect();
    assert_eq!(
        srv,
        [
            "_sip._udp.example.test",
            "_sip._tcp.example.test",
            "_sips._tcp.example.test"
        ]
    );
    assert_eq!(
        t,
        [
            (Transport::Tcp, sa("192.0.2.2:5062")),
            (Transport::Tls, sa("192.0.2.3:5061")),
        ]
    );
}

// RFC 3263 4.1: no NAPTR and no SRV: A/AAAA on the default port, UDP for sip:, TLS for
// sips:.
#[test]
fn rfc3263_4_1_without_naptr_or_srv_address_records_on_the_default_port() {
    let zone = Zone::default().a("example.test", &["192.0.2.5"]);
    let (t, _) = resolve(&zone, "sip:bob@example.test");
    assert_eq!(t, [(Transport::Udp, sa("192.0.2.5:5060"))]);
    let (t, asked) = resolve(&zone, "sips:bob@example.test");
    assert!(!asked.iter().any(|(n, _)| n.starts_with("_sip._")));
    assert_eq!(t, [(Transport::Tls, sa("192.0.2.5:5061"))]);
}

// RFC 3263 4.1: nothing at all: NotFound.
#[test]
fn rfc3263_4_1_unknown_name_is_not_found() {
    let (t, _) = resolve(&Zone::default(), "sip:bob@nowhere.test");
    assert!(t.is_empty());
}

// RFC 3263 4.2 / RFC 2782: SRV targets by priority, whatever their weights.
#[test]
fn rfc3263_4_2_srv_priority_orders_targets() {
    let zone = Zone::default()
        .srv(
            "_sip._udp.example.test",
            &[
                (30, 100, 5060, "c.test"),
                (10, 0, 5060, "a.test"),
                (20, 1, 5060, "b.test"),
            ],
        )
        .a("a.test", &["192.0.2.1"])
        .a("b.test", &["192.0.2.2"])
        .a("c.test", &["192.0.2.3"]);
    let (t, _) = resolve(&zone, "sip:example.test;transport=udp");
    let addrs: Vec<SocketAddr> = t.iter().map(|(_, a)| *a).collect();
    assert_eq!(
        addrs,
        [
            sa("192.0.2.1:5060"),
            sa("192.0.2.2:5060"),
            sa("192.0.2.3:5060")
        ]
    );
}

// RFC 2782: within a priority, a record of weight 3 against one of weight 1 comes first
// with the chance the running-sum rule gives (draw in 0..=4: 3 of 5), over many seeds.
#[test]
fn rfc2782_weighted_selection_follows_the_weights_over_many_seeds() {
    let zone = Zone::default()
        .srv(
            "_sip._udp.example.test",
            &[(0, 1, 5060, "light.test"), (0, 3, 5060, "heavy.test")],
        )
        .a("light.test", &["192.0.2.1"])
        .a("heavy.test", &["192.0.2.2"]);
    let now = Instant::now();
    let runs = 2000u32;
    let mut heavy_first = 0u32;
    for i in 0..runs {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        let mut r = Resolver::new(ResolverConfig::default(), seed);
        let uri = SipUri::parse("sip:example.test;transport=udp").unwrap();
        let id = r.resolve_uri(now, &uri).unwrap();
        drive(&mut r, now, &zone);
        let t = targets(&mut r, id);
        assert_eq!(t.len(), 2);
        if t[0].1 == sa("192.0.2.2:5060") {
            heavy_first += 1;
        }
    }
    // Expected 60%; generous bounds.
    assert!((1000..1400).contains(&heavy_first), "{heavy_first}");
}

// RFC 3263 4.2: A and AAAA of each SRV target, IPv4 first unless configured.
#[test]
fn rfc3263_4_2_a_and_aaaa_of_each_target_ipv4_first_unless_configured() {
    let zone = Zone::default()
        .a("dual.test", &["192.0.2.1"])
        .aaaa("dual.test", &["2001:db8::1"]);
    let (t, asked) = resolve(&zone, "sip:dual.test:5060");
    assert!(asked.contains(&("dual.test".into(), RecordType::A)));
    assert!(asked.contains(&("dual.test".into(), RecordType::Aaaa)));
    assert_eq!(
        t,
        [
            (Transport::Udp, sa("192.0.2.1:5060")),
            (Transport::Udp, sa("[2001:db8::1]:5060")),
        ]
    );
    let now = Instant::now();
    let config = ResolverConfig {
        prefer_ipv6: true,
        ..ResolverConfig::default()
    };
    let mut r = Resolver::new(config, [3; 32]);
    let id = r
        .resolve_uri(now, &SipUri::parse("sip:dual.test:5060").unwrap())
        .unwrap();
    drive(&mut r, now, &zone);
    assert_eq!(targets(&mut r, id)[0].1, sa("[2001:db8::1]:5060"));
}

fn two_targets() -> Zone {
    Zone::default()
        .srv(
            "_sip._udp.example.test",
            &[(10, 0, 5060, "one.test"), (20, 0, 5060, "two.test")],
        )
        .a("one.test", &["192.0.2.1"])
        .a("two.test", &["192.0.2.2"])
}

// RFC 3263 4.3: after a failure the next target is tried; the failed one is down and
// goes to the back of the next lookup's list, not dropped, until the down time passes.
#[test]
fn rfc3263_4_3_failover_to_next_target_and_failed_target_goes_to_the_back() {
    let now = Instant::now();
    let zone = two_targets();
    let mut r = Resolver::new(ResolverConfig::default(), [3; 32]);
    let uri = SipUri::parse("sip:example.test;transport=udp").unwrap();
    let id = r.resolve_uri(now, &uri).unwrap();
    drive(&mut r, now, &zone);
    targets(&mut r, id);
    let first = r.next_target(now, id).unwrap();
    assert_eq!(first.addr, sa("192.0.2.1:5060"));
    r.target_failed(now, id, Failure::Timeout);
    let second = r.next_target(now, id).unwrap();
    assert_eq!(second.addr, sa("192.0.2.2:5060"));
    r.target_failed(now, id, Failure::TransportError);
    assert_eq!(r.next_target(now, id), None);
    r.finish(id);

    // A new lookup: one.test is down (marked again only) ... both are down: RFC order kept.
    let mut r = Resolver::new(ResolverConfig::default(), [3; 32]);
    r.mark_down(now, first);
    let id = r.resolve_uri(now, &uri).unwrap();
    drive(&mut r, now, &zone);
    let t = targets(&mut r, id);
    assert_eq!(
        t.iter().map(|t| t.1).collect::<Vec<_>>(),
        [second.addr, first.addr]
    );
    // While down it is offered last, not dropped.
    assert_eq!(r.next_target(now, id), Some(second));
    assert_eq!(r.next_target(now, id), Some(first));
    // After the down time it is first again.
    let later = now + r.config().down_time + Duration::from_secs(1);
    let id = r.resolve_uri(later, &uri).unwrap();
    drive(&mut r, later, &zone);
    assert_eq!(targets(&mut r, id)[0].1, first.addr);
}

// RFC 3263 4.3: a 503 marks the target down like a transport error.
#[test]
fn rfc3263_4_3_service_unavailable_marks_the_target_down() {
    let now = Instant::now();
    let mut r = Resolver::new(ResolverConfig::default(), [3; 32]);
    let uri = SipUri::parse("sip:example.test;transport=udp").unwrap();
    let id = r.resolve_uri(now, &uri).unwrap();
    drive(&mut r, now, &two_targets());
    targets(&mut r, id);
    let t = r.next_target(now, id).unwrap();
    r.target_failed(now, id, Failure::ServiceUnavailable);
    assert!(r.is_down(now, &t));
    // A down target not yet tried by another lookup comes after the up ones.
    let id2 = r.resolve_uri(now, &uri).unwrap();
    assert_eq!(r.poll_query(), None, "cached");
    targets(&mut r, id2);
    assert_ne!(r.next_target(now, id2), Some(t));
}

// RFC 3263 5: a sent-by without a port: SRV of the Via's transport, then A/AAAA.
#[test]
fn rfc3263_5_sent_by_without_port_uses_srv_of_the_via_transport() {
    let now = Instant::now();
    let zone = Zone::default()
        .srv("_sip._tcp.example.test", &[(0, 0, 5090, "proxy.test")])
        .a("proxy.test", &["192.0.2.4"]);
    let mut r = Resolver::new(ResolverConfig::default(), [3; 32]);
    let id = r
        .resolve_sent_by(now, "example.test", None, Transport::Tcp)
        .unwrap();
    let asked = drive(&mut r, now, &zone);
    assert_eq!(asked[0], ("_sip._tcp.example.test".into(), RecordType::Srv));
    assert_eq!(
        targets(&mut r, id),
        [(Transport::Tcp, sa("192.0.2.4:5090"))]
    );
}

// RFC 3263 5: a sent-by with a port: A/AAAA only; a numeric sent-by needs no DNS; no SRV
// record: A/AAAA on the default port.
#[test]
fn rfc3263_5_sent_by_with_port_or_ip_or_no_srv() {
    let now = Instant::now();
    let zone = Zone::default().a("example.test", &["192.0.2.6"]);
    let mut r = Resolver::new(ResolverConfig::default(), [3; 32]);
    let id = r
        .resolve_sent_by(now, "example.test", Some(5099), Transport::Udp)
        .unwrap();
    let asked = drive(&mut r, now, &zone);
    assert!(asked.iter().all(|(_, rt)| *rt != RecordType::Srv));
    assert_eq!(
        targets(&mut r, id),
        [(Transport::Udp, sa("192.0.2.6:5099"))]
    );
    let id = r
        .resolve_sent_by(now, "[2001:db8::2]", None, Transport::Tls)
        .unwrap();
    assert_eq!(
        targets(&mut r, id),
        [(Transport::Tls, sa("[2001:db8::2]:5061"))]
    );
    let id = r
        .resolve_sent_by(now, "example.test", None, Transport::Udp)
        .unwrap();
    drive(&mut r, now, &zone);
    assert_eq!(
        targets(&mut r, id),
        [(Transport::Udp, sa("192.0.2.6:5060"))]
    );
}

// Cache: a second lookup within the TTLs asks nothing; after the TTL it asks again.
#[test]
fn cache_hit_asks_nothing_and_ttl_expiry_asks_again() {
    let now = Instant::now();
    let zone = full_zone();
    let mut r = Resolver::new(ResolverConfig::default(), [3; 32]);
    let uri = SipUri::parse("sip:bob@example.test").unwrap();
    let id = r.resolve_uri(now, &uri).unwrap();
    assert!(!drive(&mut r, now, &zone).is_empty());
    let first = targets(&mut r, id);
    let id = r.resolve_uri(now + Duration::from_secs(59), &uri).unwrap();
    assert_eq!(r.poll_query(), None);
    assert_eq!(targets(&mut r, id), first);
    // The A records' TTL (60 s) has passed, not the NAPTR's and SRV's (300 s).
    let later = now + Duration::from_secs(61);
    let id = r.resolve_uri(later, &uri).unwrap();
    let asked = drive(&mut r, later, &zone);
    assert!(asked
        .iter()
        .all(|(_, rt)| matches!(rt, RecordType::A | RecordType::Aaaa)));
    assert!(!asked.is_empty());
    assert_eq!(targets(&mut r, id), first);
}

// RFC 2308 5: negative answers are cached for their TTL, capped.
#[test]
fn negative_answers_are_cached_with_a_capped_ttl() {
    let now = Instant::now();
    let zone = Zone::default(); // NXDOMAIN with TTL 3600 everywhere
    let mut r = Resolver::new(ResolverConfig::default(), [3; 32]);
    let uri = SipUri::parse("sip:bob@nowhere.test").unwrap();
    let id = r.resolve_uri(now, &uri).unwrap();
    drive(&mut r, now, &zone);
    assert!(targets(&mut r, id).is_empty());
    let id = r.resolve_uri(now + Duration::from_secs(299), &uri).unwrap();
    assert_eq!(r.poll_query(), None);
    assert!(targets(&mut r, id).is_empty());
    // Capped at 5 minutes, not 3600 s.
    let later = now + Duration::from_secs(301);
    r.resolve_uri(later, &uri).unwrap();
    assert!(r.poll_query().is_some());
}

// Server failures and timeouts are not cached.
#[test]
fn server_failure_and_timeout_are_not_cached() {
    let now = Instant::now();
    let mut r = Resolver::new(ResolverConfig::default(), [3; 32]);
    let uri = SipUri::parse("sip:bob@example.test:5060").unwrap();
    let id = r.resolve_uri(now, &uri).unwrap();
    while let Some(q) = r.poll_query() {
        let answer = if q.rtype == RecordType::A {
            Answer::ServerFailure
        } else {
            Answer::Timeout
        };
        r.handle_answer(now, q.id, answer);
    }
    assert!(targets(&mut r, id).is_empty());
    r.resolve_uri(now, &uri).unwrap();
    assert!(r.poll_query().is_some());
}

// Two lookups of one name while the question is in flight: one query.
#[test]
fn in_flight_queries_are_shared_between_lookups() {
    let now = Instant::now();
    let mut r = Resolver::new(ResolverConfig::default(), [3; 32]);
    let uri = SipUri::parse("sip:bob@example.test").unwrap();
    let a = r.resolve_uri(now, &uri).unwrap();
    let b = r.resolve_uri(now, &uri).unwrap();
    let q = r.poll_query().unwrap();
    assert_eq!(r.poll_query(), None, "one NAPTR question for both");
    r.handle_answer(now, q.id, full_zone().answer(&q));
    drive(&mut r, now, &full_zone());
    let mut done = Vec::new();
    while let Some(ResolveEvent::Resolved { lookup, .. }) = r.poll_event() {
        done.push(lookup);
    }
    done.sort();
    let mut want = vec![a, b];
    want.sort();
    assert_eq!(done, want);
}

// Bounds: an answer with thousands of records keeps 32 SRV targets and 16 addresses per
// target; the cache holds at most its entries; lookups are limited.
#[test]
fn bounds_cap_srv_targets_addresses_cache_and_lookups() {
    let now = Instant::now();
    let config = ResolverConfig {
        max_records_per_answer: 10_000,
        ..ResolverConfig::default()
    };
    let mut r = Resolver::new(config, [3; 32]);
    let uri = SipUri::parse("sip:example.test;transport=udp").unwrap();
    let id = r.resolve_uri(now, &uri).unwrap();
    while let Some(q) = r.poll_query() {
        let answer = match q.rtype {
            RecordType::Srv => Answer::Records(
                (0..5000u32)
                    .map(|i| {
                        Record::Srv(Srv {
                            priority: 0,
                            weight: 1,
                            port: 5060,
                            target: format!("h{i}.test"),
                            ttl: 60,
                        })
                    })
                    .collect(),
            ),
            RecordType::A => Answer::Records(
                (0..3000u32)
                    .map(|i| Record::A {
                        addr: std::net::Ipv4Addr::from(0x0a00_0000 + i),
                        ttl: 60,
                    })
                    .collect(),
            ),
            _ => Answer::NoData { ttl: 60 },
        };
        r.handle_answer(now, q.id, answer);
    }
    let t = targets(&mut r, id);
    // 32 SRV targets (of 5000), 16 addresses (of 3000) each.
    assert_eq!(t.len(), 32 * 16);

    let config = ResolverConfig {
        max_cache_entries: 4,
        max_lookups: 2,
        ..ResolverConfig::default()
    };
    let mut r = Resolver::new(config, [3; 32]);
    for i in 0..10 {
        let uri = format!("sip:h{i}.test:5060");
        let id = r.resolve_uri(now, &SipUri::parse(&uri).unwrap()).unwrap();
        drive(
            &mut r,
            now,
            &Zone::default().a(&format!("h{i}.test"), &["192.0.2.1"]),
        );
        r.finish(id);
        assert!(r.cache_len() <= 4);
    }
    let uri = SipUri::parse("sip:x.test").unwrap();
    r.resolve_uri(now, &uri).unwrap();
    r.resolve_uri(now, &uri).unwrap();
    assert_eq!(r.resolve_uri(now, &uri), Err(ResolveError::TooManyLookups));
}

// Bounds: 32 distinct SRV targets at most per lookup.
#[test]
fn bounds_cap_srv_targets_per_lookup() {
    let now = Instant::now();
    let mut r = Resolver::new(ResolverConfig::default(), [3; 32]);
    let uri = SipUri::parse("sip:example.test;transport=udp").unwrap();
    let id = r.resolve_uri(now, &uri).unwrap();
    let mut a_questions = 0;
    while let Some(q) = r.poll_query() {
        let answer = match q.rtype {
            RecordType::Srv => Answer::Records(
                (0..60u16)
                    .map(|i| {
                        Record::Srv(Srv {
                            priority: i,
                            weight: 0,
                            port: 5060,
                            target: format!("h{i}.test"),
                            ttl: 60,
                        })
                    })
                    .collect(),
            ),
            RecordType::A => {
                a_questions += 1;
                let n: u8 = q.name[1..q.name.len() - 5].parse().unwrap();
                Answer::Records(vec![Record::A {
                    addr: std::net::Ipv4Addr::new(10, 0, 0, n),
                    ttl: 60,
                }])
            }
            _ => Answer::NoData { ttl: 60 },
        };
        r.handle_answer(now, q.id, answer);
    }
    assert_eq!(a_questions, 32);
    assert_eq!(targets(&mut r, id).len(), 32);
}

// Bounds: invalid names are refused up front and skipped in records.
#[test]
fn bounds_invalid_names_are_refused_and_skipped() {
    let now = Instant::now();
    let mut r = Resolver::new(ResolverConfig::default(), [3; 32]);
    let long = format!("sip:{}.test:5060", "a".repeat(64));
    // The URI parser may accept it; the resolver refuses it.
    if let Some(uri) = SipUri::parse(&long) {
        assert_eq!(r.resolve_uri(now, &uri), Err(ResolveError::InvalidName));
    }
    let zone = Zone::default()
        .srv(
            "_sip._udp.example.test",
            &[
                (0, 0, 5060, "bad name"),
                (1, 0, 5060, "."),
                (2, 0, 5060, "ok.test"),
            ],
        )
        .a("ok.test", &["192.0.2.8"]);
    let uri = SipUri::parse("sip:example.test;transport=udp").unwrap();
    let id = r.resolve_uri(now, &uri).unwrap();
    let asked = drive(&mut r, now, &zone);
    assert!(!asked.iter().any(|(n, _)| n.contains(' ')));
    assert_eq!(
        targets(&mut r, id),
        [(Transport::Udp, sa("192.0.2.8:5060"))]
    );

    // A 251-character domain is valid, its SRV name (_sip._udp. + 251) is not: not asked.
    let domain = format!(
        "{}.{}.{}.{}.test",
        "a".repeat(60),
        "b".repeat(60),
        "c".repeat(60),
        "d".repeat(63)
    );
    assert_eq!(domain.len(), 251);
    let uri = format!("sip:{domain};transport=udp");
    let id = r.resolve_uri(now, &SipUri::parse(&uri).unwrap()).unwrap();
    let asked = drive(&mut r, now, &Zone::default().a(&domain, &["192.0.2.9"]));
    assert!(asked.iter().all(|(n, _)| sip_core::resolve::valid_name(n)));
    assert_eq!(asked.len(), 2, "A and AAAA only: {asked:?}");
    assert_eq!(
        targets(&mut r, id),
        [(Transport::Udp, sa("192.0.2.9:5060"))]
    );
}

#[derive(Debug, Clone)]
enum Op {
    Resolve(u8),
    Answer(u8, Vec<Record>, u8),
    Fail(u8),
    Advance(u16),
    Finish(u8),
}

fn record() -> impl Strategy<Value = Record> {
    let names = prop_oneof![
        Just("a.test".to_string()),
        Just("b.test".to_string()),
        Just("_sip._udp.a.test".to_string()),
        Just("_sip._tcp.a.test".to_string()),
        Just(".".to_string()),
        "[a-z._ ]{0,12}",
    ];
    prop_oneof![
        (any::<u16>(), any::<u16>(), names.clone(), 0..3u32).prop_map(|(o, p, r, s)| {
            Record::Naptr(Naptr {
                order: o,
                preference: p,
                flags: "s".into(),
                service: ["SIP+D2U", "SIP+D2T", "SIPS+D2T"][s as usize].into(),
                replacement: r,
                ttl: 30,
            })
        }),
        (0..3u16, any::<u16>(), any::<u16>(), names, any::<u32>()).prop_map(
            |(priority, weight, port, target, ttl)| Record::Srv(Srv {
                priority,
                weight,
                port,
                target,
                ttl
            })
        ),
        (any::<[u8; 4]>(), any::<u32>()).prop_map(|(a, ttl)| Record::A {
            addr: a.into(),
            ttl
        }),
        (any::<[u8; 16]>(), any::<u32>()).prop_map(|(a, ttl)| Record::Aaaa {
            addr: a.into(),
            ttl
        }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        any::<u8>().prop_map(Op::Resolve),
        (
            any::<u8>(),
            prop::collection::vec(record(), 0..8),
            any::<u8>()
        )
            .prop_map(|(q, r, k)| Op::Answer(q, r, k)),
        any::<u8>().prop_map(Op::Fail),
        any::<u16>().prop_map(Op::Advance),
        any::<u8>().prop_map(Op::Finish),
    ]
}

proptest! {
    // Arbitrary answers in arbitrary orders: no panic, and every target yielded has an
    // address from an A/AAAA answer (or the numeric URI), a transport we support.
    #[test]
    fn arbitrary_answers_never_panic_and_targets_come_from_the_answers(
        ops in prop::collection::vec(op(), 0..40)
    ) {
        let uris = [
            "sip:a.test", "sips:a.test", "sip:a.test:5070", "sip:a.test;transport=tcp",
            "sip:192.0.2.1", "sip:b.test;transport=tls",
        ];
        let mut now = Instant::now();
        let mut r = Resolver::new(ResolverConfig::default(), [9; 32]);
        let mut pending: Vec<Query> = Vec::new();
        let mut lookups: Vec<LookupId> = Vec::new();
        let mut given: Vec<std::net::IpAddr> = vec!["192.0.2.1".parse().unwrap()];
        for op in ops {
            match op {
                Op::Resolve(i) => {
                    let uri = SipUri::parse(uris[i as usize % uris.len()]).unwrap();
                    if let Ok(id) = r.resolve_uri(now, &uri) {
                        lookups.push(id);
                    }
                }
                Op::Answer(i, records, kind) => {
                    if pending.is_empty() { continue; }
                    let q = pending.remove(i as usize % pending.len());
                    let answer = match kind % 5 {
                        0 => Answer::NoData { ttl: u32::from(kind) },
                        1 => Answer::NxDomain { ttl: u32::MAX },
                        2 => Answer::ServerFailure,
                        3 => Answer::Timeout,
                        _ => {
                            for rec in &records {
                                match rec {
                                    Record::A { addr, .. } => given.push((*addr).into()),
                                    Record::Aaaa { addr, .. } => given.push((*addr).into()),
                                    _ => {}
                                }
                            }
                            Answer::Records(records)
                        }
                    };
                    r.handle_answer(now, q.id, answer);
                }
                Op::Fail(i) => {
                    if let Some(id) = lookups.get(i as usize % lookups.len().max(1)) {
                        if let Some(t) = r.next_target(now, *id) {
                            prop_assert!(given.contains(&t.addr.ip()));
                            r.target_failed(now, *id, Failure::Timeout);
                        }
                    }
                }
                Op::Advance(s) => now += Duration::from_secs(u64::from(s)),
                Op::Finish(i) => {
                    if !lookups.is_empty() {
                        let id = lookups.remove(i as usize % lookups.len());
                        r.finish(id);
                    }
                }
            }
            while let Some(q) = r.poll_query() {
                prop_assert!(sip_core::resolve::valid_name(&q.name));
                pending.push(q);
            }
            while let Some(e) = r.poll_event() {
                if let ResolveEvent::Resolved { targets, .. } = e {
                    prop_assert!(!targets.is_empty());
                    for Target { transport, addr } in targets {
                        prop_assert!(given.contains(&addr.ip()), "{addr} not given");
                        prop_assert!(r.config().transports.contains(&transport));
                    }
                }
            }
            prop_assert!(r.cache_len() <= r.config().max_cache_entries);
        }
    }
}

// ---- plans: ordering a resolved lookup again without the cache walk ----

/// A resolved lookup of `zone` for `uri` with its plan (the resolver kept open).
fn planned(zone: &Zone, uri: &str, now: Instant) -> (Resolver, sip_core::resolve::Plan) {
    let config = ResolverConfig {
        down_time: Duration::from_secs(30),
        ..ResolverConfig::default()
    };
    let mut r = Resolver::new(config, [5; 32]);
    let id = r.resolve_uri(now, &SipUri::parse(uri).unwrap()).unwrap();
    drive(&mut r, now, zone);
    assert!(!targets(&mut r, id).is_empty());
    let plan = r.plan(id).expect("a plan");
    r.finish(id);
    (r, plan)
}

// RFC 2782: each order drawn from a plan is a new weighted selection: with weights 3 and 1
// at one priority, the heavy target comes first about 3 times in 5, the light one too.
#[test]
fn rfc2782_plan_order_is_a_new_weighted_selection_each_time() {
    let zone = Zone::default()
        .srv(
            "_sip._udp.example.test",
            &[(0, 1, 5060, "light.test"), (0, 3, 5060, "heavy.test")],
        )
        .a("light.test", &["192.0.2.1"])
        .a("heavy.test", &["192.0.2.2"]);
    let now = Instant::now();
    let (mut r, plan) = planned(&zone, "sip:example.test;transport=udp", now);
    let mut heavy_first = 0;
    for _ in 0..2000 {
        let t = r.order(now, &plan);
        assert_eq!(t.len(), 2);
        if t[0].addr == sa("192.0.2.2:5060") {
            heavy_first += 1;
        }
    }
    assert!((1000..1400).contains(&heavy_first), "{heavy_first}");
    assert!(r.poll_query().is_none(), "a plan asks no DNS question");
}

// RFC 3263 4.2: a plan keeps the RFC order across SRV priorities, NAPTR sets and the
// addresses of each target; RFC 3263 4.3: a target down now goes to the back.
#[test]
fn rfc3263_4_3_plan_order_puts_targets_down_now_at_the_back() {
    let zone = Zone::default()
        .naptr(
            "example.test",
            &[
                (10, 10, "s", "SIP+D2U", "_sip._udp.example.test"),
                (20, 10, "s", "SIP+D2T", "_sip._tcp.example.test"),
            ],
        )
        .srv(
            "_sip._udp.example.test",
            &[(10, 0, 5060, "one.test"), (20, 0, 5060, "two.test")],
        )
        .srv("_sip._tcp.example.test", &[(10, 0, 5062, "one.test")])
        .a("one.test", &["192.0.2.1", "192.0.2.11"])
        .a("two.test", &["192.0.2.2"]);
    let now = Instant::now();
    let (mut r, plan) = planned(&zone, "sip:example.test", now);
    let udp = |s: &str| Target::udp(sa(s));
    let tcp = |s: &str| Target::tcp(sa(s));
    let all = [
        udp("192.0.2.1:5060"),
        udp("192.0.2.11:5060"),
        udp("192.0.2.2:5060"),
        tcp("192.0.2.1:5062"),
        tcp("192.0.2.11:5062"),
    ];
    assert_eq!(r.order(now, &plan), all);
    r.mark_down(now, udp("192.0.2.1:5060"));
    let t = r.order(now, &plan);
    assert_eq!(t[..4], all[1..]);
    assert_eq!(t[4], all[0]);
    // Once the mark has expired the target is back in its place.
    let later = now + r.config().down_time + Duration::from_secs(1);
    assert_eq!(r.order(later, &plan), all);
}

// RFC 1035 / RFC 3263 4: a plan holds only as long as the records it came from (the
// earliest TTL, 60 s for the A records here): past it, no order; the URI is resolved again
// and the expired records are asked again.
#[test]
fn rfc3263_4_plan_expires_with_the_first_record_ttl() {
    let now = Instant::now();
    let (mut r, plan) = planned(&two_targets(), "sip:example.test;transport=udp", now);
    assert_eq!(plan.expires(), now + Duration::from_secs(60));
    assert!(!r.order(now + Duration::from_secs(59), &plan).is_empty());
    let later = now + Duration::from_secs(60);
    assert!(r.order(later, &plan).is_empty());
    let id = r
        .resolve_uri(
            later,
            &SipUri::parse("sip:example.test;transport=udp").unwrap(),
        )
        .unwrap();
    let asked = drive(&mut r, later, &two_targets());
    assert!(asked.iter().any(|(_, t)| *t == RecordType::A), "{asked:?}");
    assert_eq!(targets(&mut r, id).len(), 2);
}

// A numeric IP needs no DNS: there is nothing to plan (the caller resolves it again).
#[test]
fn plan_none_without_dns() {
    let now = Instant::now();
    let mut r = Resolver::new(ResolverConfig::default(), [5; 32]);
    let id = r
        .resolve_uri(now, &SipUri::parse("sip:192.0.2.9").unwrap())
        .unwrap();
    assert!(!targets(&mut r, id).is_empty());
    assert!(r.plan(id).is_none());
}
