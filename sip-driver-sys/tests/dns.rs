//! `sip_driver_sys::dns`: the sans-IO `DnsClient` against hand-built hickory-proto
//! messages, with a virtual clock, and the resolv.conf / nameserver parsing.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Instant;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, NAPTR, SOA, SRV};
use hickory_proto::rr::{DNSClass, Name, RData, Record as WireRecord, RecordType as WireType};
use proptest::prelude::*;
use sip_core::message::SipUri;
use sip_core::resolve::{
    Answer, Naptr, Query, QueryId, Record, RecordType, Resolver, ResolverConfig, Srv,
};
use sip_driver_sys::dns::{
    parse_nameserver, parse_resolv_conf, DnsClient, MAX_IN_FLIGHT, MAX_NEGATIVE_TTL, MAX_TRIES,
    RETRY_INTERVAL,
};

const S1: &str = "127.0.0.1:26201";
const S2: &str = "127.0.0.2:26202";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn name(s: &str) -> Name {
    Name::from_ascii(s).unwrap()
}

/// The queries sip_core's resolver asks for `uri` (QueryId has no public constructor: the
/// queries come from where the drivers get them).
fn queries_for(uri: &str) -> Vec<Query> {
    let mut resolver = Resolver::new(ResolverConfig::default(), [3; 32]);
    resolver
        .resolve_uri(Instant::now(), &SipUri::parse(uri).unwrap())
        .unwrap();
    std::iter::from_fn(|| resolver.poll_query()).collect()
}

/// The one query of `rtype` for `uri`.
fn query(uri: &str, rtype: RecordType) -> Query {
    queries_for(uri)
        .into_iter()
        .find(|q| q.rtype == rtype)
        .unwrap()
}

/// A client with the servers given, the query asked, and the datagram it sent.
fn asked(servers: &[&str], q: &Query, now: Instant) -> (DnsClient, SocketAddr, Vec<u8>) {
    let mut client = DnsClient::new(servers.iter().map(|s| addr(s)).collect(), [9; 32]);
    client.query(now, q.clone());
    let (to, bytes) = client.poll_transmit().unwrap();
    assert!(client.poll_transmit().is_none());
    (client, to, bytes)
}

/// A NOERROR response to the query in `sent`, with no record yet.
fn response_to(sent: &[u8]) -> Message {
    let request = Message::from_vec(sent).unwrap();
    let mut response = Message::new(request.metadata.id, MessageType::Response, OpCode::Query);
    response.metadata.recursion_desired = true;
    response.metadata.recursion_available = true;
    response.add_query(request.queries[0].clone());
    response
}

fn rr(owner: &str, ttl: u32, data: RData) -> WireRecord {
    WireRecord::from_rdata(name(owner), ttl, data)
}

fn soa(ttl: u32, minimum: u32) -> WireRecord {
    rr(
        "example.test.",
        ttl,
        RData::SOA(SOA::new(
            name("ns.example.test."),
            name("hostmaster.example.test."),
            1,
            3600,
            600,
            86400,
            minimum,
        )),
    )
}

/// The answer after feeding `response` from `from`.
fn answer_of(
    client: &mut DnsClient,
    from: SocketAddr,
    response: &Message,
) -> Option<(QueryId, Answer)> {
    client.handle_datagram(Instant::now(), from, &response.to_vec().unwrap());
    client.poll_answer()
}

#[test]
fn query_is_a_recursive_question_with_edns() {
    // RFC 1035 4.1.1 (RD, one question, class IN), RFC 6891 (OPT in the additional section).
    let q = query("sip:example.test", RecordType::Naptr);
    let (_, to, bytes) = asked(&[S1], &q, Instant::now());
    assert_eq!(to, addr(S1));
    let m = Message::from_vec(&bytes).unwrap();
    assert_eq!(m.metadata.message_type, MessageType::Query);
    assert_eq!(m.metadata.op_code, OpCode::Query);
    assert!(m.metadata.recursion_desired);
    assert_eq!(m.queries.len(), 1);
    assert_eq!(m.queries[0].name, name("example.test."));
    assert!(m.queries[0].name.is_fqdn());
    assert_eq!(m.queries[0].query_type, WireType::NAPTR);
    assert_eq!(m.queries[0].query_class, DNSClass::IN);
    assert!(m.edns.is_some());
}

#[test]
fn query_ids_come_from_the_seed() {
    // RFC 5452 section 9.2: ids unpredictable to others, reproducible from the seed.
    let q = query("sip:host.test:5060", RecordType::A);
    let ids = |seed: [u8; 32]| -> Vec<u16> {
        let mut client = DnsClient::new(vec![addr(S1)], seed);
        (0..8)
            .map(|_| {
                client.query(Instant::now(), q.clone());
                let (_, bytes) = client.poll_transmit().unwrap();
                u16::from_be_bytes([bytes[0], bytes[1]])
            })
            .collect()
    };
    assert_eq!(ids([1; 32]), ids([1; 32]));
    assert_ne!(ids([1; 32]), ids([2; 32]));
    let mut distinct = ids([1; 32]);
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), 8, "ids in flight are unique");
}

#[test]
fn naptr_answer_is_decoded() {
    // RFC 3403 4.1: ORDER, PREFERENCE, FLAGS, SERVICES, REPLACEMENT.
    let q = query("sip:example.test", RecordType::Naptr);
    let (mut client, to, bytes) = asked(&[S1], &q, Instant::now());
    let mut r = response_to(&bytes);
    r.add_answer(rr(
        "example.test.",
        300,
        RData::NAPTR(NAPTR::new(
            10,
            20,
            b"S".to_vec().into_boxed_slice(),
            b"SIP+D2T".to_vec().into_boxed_slice(),
            Vec::new().into_boxed_slice(),
            name("_sip._tcp.Example.test."),
        )),
    ));
    let (id, answer) = answer_of(&mut client, to, &r).unwrap();
    assert_eq!(id, q.id);
    assert_eq!(
        answer,
        Answer::Records(vec![Record::Naptr(Naptr {
            order: 10,
            preference: 20,
            flags: "S".into(),
            service: "SIP+D2T".into(),
            replacement: "_sip._tcp.example.test".into(),
            ttl: 300,
        })])
    );
    assert_eq!(client.in_flight(), 0);
    assert!(client.poll_timeout().is_none());
}

#[test]
fn srv_answer_is_decoded() {
    // RFC 2782: priority, weight, port, target; "." means no service.
    let q = query("sip:example.test;transport=tcp", RecordType::Srv);
    assert_eq!(q.name, "_sip._tcp.example.test");
    let (mut client, to, bytes) = asked(&[S1], &q, Instant::now());
    let mut r = response_to(&bytes);
    r.add_answer(rr(
        "_sip._tcp.example.test.",
        60,
        RData::SRV(SRV::new(1, 5, 5070, name("sip1.example.test."))),
    ));
    r.add_answer(rr(
        "_sip._tcp.example.test.",
        60,
        RData::SRV(SRV::new(9, 0, 0, Name::root())),
    ));
    let (_, answer) = answer_of(&mut client, to, &r).unwrap();
    assert_eq!(
        answer,
        Answer::Records(vec![
            Record::Srv(Srv {
                priority: 1,
                weight: 5,
                port: 5070,
                target: "sip1.example.test".into(),
                ttl: 60
            }),
            Record::Srv(Srv {
                priority: 9,
                weight: 0,
                port: 0,
                target: ".".into(),
                ttl: 60
            }),
        ])
    );
}

#[test]
fn a_and_aaaa_answers_are_decoded() {
    // RFC 1035 3.4.1, RFC 3596 2.2.
    let now = Instant::now();
    let qa = query("sip:host.test:5060", RecordType::A);
    let (mut client, to, bytes) = asked(&[S1], &qa, now);
    let mut r = response_to(&bytes);
    r.add_answer(rr(
        "host.test.",
        30,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 7))),
    ));
    let (_, answer) = answer_of(&mut client, to, &r).unwrap();
    assert_eq!(
        answer,
        Answer::Records(vec![Record::A {
            addr: Ipv4Addr::new(192, 0, 2, 7),
            ttl: 30
        }])
    );

    let qaaaa = query("sip:host.test:5060", RecordType::Aaaa);
    let (mut client, to, bytes) = asked(&[S1], &qaaaa, now);
    let mut r = response_to(&bytes);
    let v6: Ipv6Addr = "2001:db8::7".parse().unwrap();
    r.add_answer(rr("host.test.", 30, RData::AAAA(AAAA(v6))));
    let (_, answer) = answer_of(&mut client, to, &r).unwrap();
    assert_eq!(
        answer,
        Answer::Records(vec![Record::Aaaa { addr: v6, ttl: 30 }])
    );
}

#[test]
fn cname_chain_is_flattened_to_the_asked_type() {
    // RFC 1034 3.6.2: the records of the CNAME's target answer the question.
    let q = query("sip:host.test:5060", RecordType::A);
    let (mut client, to, bytes) = asked(&[S1], &q, Instant::now());
    let mut r = response_to(&bytes);
    r.add_answer(rr(
        "host.test.",
        100,
        RData::CNAME(CNAME(name("alias1.test."))),
    ));
    r.add_answer(rr(
        "ALIAS1.test.",
        100,
        RData::CNAME(CNAME(name("alias2.test."))),
    ));
    r.add_answer(rr(
        "alias2.test.",
        40,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 1))),
    ));
    // Not of the chain, not of the type: left out.
    r.add_answer(rr(
        "other.test.",
        40,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 99))),
    ));
    r.add_answer(rr(
        "alias2.test.",
        40,
        RData::AAAA(AAAA(Ipv6Addr::LOCALHOST)),
    ));
    let (_, answer) = answer_of(&mut client, to, &r).unwrap();
    assert_eq!(
        answer,
        Answer::Records(vec![Record::A {
            addr: Ipv4Addr::new(192, 0, 2, 1),
            ttl: 40
        }])
    );
}

#[test]
fn cname_loop_ends_the_chain() {
    // RFC 1034 3.6.2: a CNAME loop is an error of the zone, not a reason to spin.
    let q = query("sip:host.test:5060", RecordType::A);
    let (mut client, to, bytes) = asked(&[S1], &q, Instant::now());
    let mut r = response_to(&bytes);
    r.add_answer(rr(
        "host.test.",
        100,
        RData::CNAME(CNAME(name("alias.test."))),
    ));
    r.add_answer(rr(
        "alias.test.",
        100,
        RData::CNAME(CNAME(name("host.test."))),
    ));
    r.add_authority(soa(60, 30));
    let (_, answer) = answer_of(&mut client, to, &r).unwrap();
    assert_eq!(answer, Answer::NoData { ttl: 30 });
}

#[test]
fn cname_without_target_records_is_nodata() {
    // RFC 2308 section 2.2: NODATA at the end of the chain.
    let q = query("sip:host.test:5060", RecordType::Aaaa);
    let (mut client, to, bytes) = asked(&[S1], &q, Instant::now());
    let mut r = response_to(&bytes);
    r.add_answer(rr(
        "host.test.",
        100,
        RData::CNAME(CNAME(name("alias.test."))),
    ));
    r.add_authority(soa(600, 120));
    let (_, answer) = answer_of(&mut client, to, &r).unwrap();
    assert_eq!(answer, Answer::NoData { ttl: 120 });
}

#[test]
fn nxdomain_ttl_is_the_smaller_of_soa_ttl_and_minimum() {
    // RFC 2308 section 5: the negative TTL is min(SOA TTL, SOA MINIMUM), capped here.
    for (ttl, minimum, expect) in [
        (600, 300, 300),
        (100, 300, 100),
        (1_000_000, 1_000_000, MAX_NEGATIVE_TTL),
    ] {
        let q = query("sip:nowhere.test:5060", RecordType::A);
        let (mut client, to, bytes) = asked(&[S1], &q, Instant::now());
        let mut r = response_to(&bytes);
        r.metadata.response_code = ResponseCode::NXDomain;
        r.add_authority(soa(ttl, minimum));
        let (_, answer) = answer_of(&mut client, to, &r).unwrap();
        assert_eq!(answer, Answer::NxDomain { ttl: expect });
    }
}

#[test]
fn negative_answer_without_soa_is_not_cached() {
    // RFC 2308 section 5: without a SOA a negative answer SHOULD NOT be cached (ttl 0).
    let q = query("sip:nowhere.test:5060", RecordType::A);
    let (mut client, to, bytes) = asked(&[S1], &q, Instant::now());
    let mut r = response_to(&bytes);
    r.metadata.response_code = ResponseCode::NXDomain;
    assert_eq!(
        answer_of(&mut client, to, &r).unwrap().1,
        Answer::NxDomain { ttl: 0 }
    );

    let (mut client, to, bytes) = asked(&[S1], &q, Instant::now());
    let r = response_to(&bytes);
    assert_eq!(
        answer_of(&mut client, to, &r).unwrap().1,
        Answer::NoData { ttl: 0 }
    );
}

#[test]
fn servfail_and_refused_are_server_failures() {
    // RFC 1035 4.1.1 RCODE 2 and 5.
    for code in [
        ResponseCode::ServFail,
        ResponseCode::Refused,
        ResponseCode::NotImp,
    ] {
        let q = query("sip:host.test:5060", RecordType::A);
        let (mut client, to, bytes) = asked(&[S1], &q, Instant::now());
        let mut r = response_to(&bytes);
        r.metadata.response_code = code;
        // One server: nobody else to ask.
        let answer = answer_of(&mut client, to, &r);
        assert_eq!(answer.unwrap().1, Answer::ServerFailure, "{code:?}");
        assert!(client.poll_transmit().is_none());
        assert_eq!(client.in_flight(), 0);
    }
}

#[test]
fn servfail_tries_the_next_server() {
    // resolv.conf semantics: a failing server hands the question to the next one.
    let q = query("sip:host.test:5060", RecordType::A);
    let (mut client, to, bytes) = asked(&[S1, S2], &q, Instant::now());
    assert_eq!(to, addr(S1));
    let mut r = response_to(&bytes);
    r.metadata.response_code = ResponseCode::ServFail;
    assert!(answer_of(&mut client, to, &r).is_none());
    let (next, bytes) = client.poll_transmit().unwrap();
    assert_eq!(next, addr(S2));
    let mut r = response_to(&bytes);
    r.add_answer(rr(
        "host.test.",
        30,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 5))),
    ));
    let (id, answer) = answer_of(&mut client, next, &r).unwrap();
    assert_eq!(id, q.id);
    assert!(matches!(answer, Answer::Records(_)));
}

#[test]
fn truncated_answer_is_a_server_failure() {
    // RFC 1035 4.1.1 TC: no TCP fallback in this client (documented).
    let q = query("sip:example.test", RecordType::Naptr);
    let (mut client, to, bytes) = asked(&[S1], &q, Instant::now());
    let mut r = response_to(&bytes);
    r.metadata.truncation = true;
    assert_eq!(
        answer_of(&mut client, to, &r).unwrap().1,
        Answer::ServerFailure
    );
}

#[test]
fn spoofed_answers_are_ignored() {
    // RFC 5452 section 9.1: id, source and question must all match the query sent.
    let q = query("sip:host.test:5060", RecordType::A);
    let (mut client, to, bytes) = asked(&[S1], &q, Instant::now());
    let good = {
        let mut r = response_to(&bytes);
        r.add_answer(rr(
            "host.test.",
            30,
            RData::A(A(Ipv4Addr::new(192, 0, 2, 5))),
        ));
        r
    };
    let spoof = {
        let mut r = response_to(&bytes);
        r.add_answer(rr(
            "host.test.",
            30,
            RData::A(A(Ipv4Addr::new(203, 0, 113, 66))),
        ));
        r
    };
    // Wrong id.
    let mut m = spoof.clone();
    m.metadata.id = m.metadata.id.wrapping_add(1);
    assert!(answer_of(&mut client, to, &m).is_none());
    // Wrong source: another port, another address.
    assert!(answer_of(&mut client, addr("127.0.0.1:26299"), &spoof).is_none());
    assert!(answer_of(&mut client, addr("127.0.0.9:26201"), &spoof).is_none());
    // Wrong question: another name, another type, two questions, none.
    let mut m = spoof.clone();
    m.queries[0].name = name("other.test.");
    assert!(answer_of(&mut client, to, &m).is_none());
    let mut m = spoof.clone();
    m.queries[0].query_type = WireType::AAAA;
    assert!(answer_of(&mut client, to, &m).is_none());
    let mut m = spoof.clone();
    let extra = m.queries[0].clone();
    m.add_query(extra);
    assert!(answer_of(&mut client, to, &m).is_none());
    let mut m = spoof.clone();
    m.queries.clear();
    assert!(answer_of(&mut client, to, &m).is_none());
    // A query, not a response.
    let mut m = spoof.clone();
    m.metadata.message_type = MessageType::Query;
    assert!(answer_of(&mut client, to, &m).is_none());
    // Garbage with the right id.
    client.handle_datagram(Instant::now(), to, &bytes[..5]);
    assert!(client.poll_answer().is_none());
    // Still waiting; the real answer is taken.
    assert_eq!(client.in_flight(), 1);
    let (_, answer) = answer_of(&mut client, to, &good).unwrap();
    assert_eq!(
        answer,
        Answer::Records(vec![Record::A {
            addr: Ipv4Addr::new(192, 0, 2, 5),
            ttl: 30
        }])
    );
    // A second copy of the answer finds nothing in flight.
    assert!(answer_of(&mut client, to, &good).is_none());
}

#[test]
fn question_name_compare_ignores_case() {
    // RFC 4343: DNS names compare case-insensitively (servers may echo 0x20 mixed case).
    let q = query("sip:host.test:5060", RecordType::A);
    let (mut client, to, bytes) = asked(&[S1], &q, Instant::now());
    let mut r = response_to(&bytes);
    r.queries[0].name = name("HoSt.TeSt.");
    r.add_answer(rr(
        "HOST.test.",
        30,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 5))),
    ));
    let (_, answer) = answer_of(&mut client, to, &r).unwrap();
    assert!(
        matches!(answer, Answer::Records(ref v) if v.len() == 1),
        "{answer:?}"
    );
}

#[test]
fn records_of_another_owner_or_class_are_left_out() {
    // RFC 1035 3.2.4: only class IN records of the name asked answer the question.
    let q = query("sip:host.test:5060", RecordType::A);
    let (mut client, to, bytes) = asked(&[S1], &q, Instant::now());
    let mut r = response_to(&bytes);
    let mut chaos = rr("host.test.", 30, RData::A(A(Ipv4Addr::new(192, 0, 2, 1))));
    chaos.dns_class = DNSClass::CH;
    r.add_answer(chaos);
    r.add_answer(rr(
        "evil.test.",
        30,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 2))),
    ));
    let (_, answer) = answer_of(&mut client, to, &r).unwrap();
    assert_eq!(answer, Answer::NoData { ttl: 0 });
}

#[test]
fn retries_go_to_the_next_server_then_time_out() {
    // RFC 1035 4.2.1 / resolv.conf: retransmit, rotate servers, give up after MAX_TRIES.
    let t0 = Instant::now();
    let q = query("sip:host.test:5060", RecordType::A);
    let (mut client, to, first) = asked(&[S1, S2], &q, t0);
    assert_eq!(to, addr(S1));
    assert_eq!(client.poll_timeout(), Some(t0 + RETRY_INTERVAL));

    // Not yet due: nothing happens.
    client.handle_timeout(t0 + RETRY_INTERVAL / 2);
    assert!(client.poll_transmit().is_none());

    let mut now = t0;
    let mut sent_to = vec![to];
    for _ in 1..MAX_TRIES {
        now += RETRY_INTERVAL;
        client.handle_timeout(now);
        let (to, bytes) = client.poll_transmit().unwrap();
        assert_eq!(
            bytes, first,
            "a retry sends the same question with the same id"
        );
        sent_to.push(to);
        assert_eq!(client.poll_timeout(), Some(now + RETRY_INTERVAL));
        assert!(client.poll_answer().is_none());
    }
    assert_eq!(sent_to, vec![addr(S1), addr(S2), addr(S1)]);
    now += RETRY_INTERVAL;
    client.handle_timeout(now);
    assert_eq!(client.poll_answer(), Some((q.id, Answer::Timeout)));
    assert!(client.poll_transmit().is_none());
    assert!(client.poll_timeout().is_none());
    assert_eq!(client.in_flight(), 0);
}

#[test]
fn late_answer_from_an_earlier_server_is_accepted() {
    // Every server the query went to may answer it.
    let t0 = Instant::now();
    let q = query("sip:host.test:5060", RecordType::A);
    let (mut client, to, bytes) = asked(&[S1, S2], &q, t0);
    client.handle_timeout(t0 + RETRY_INTERVAL);
    assert_eq!(client.poll_transmit().unwrap().0, addr(S2));
    let mut r = response_to(&bytes);
    r.add_answer(rr(
        "host.test.",
        30,
        RData::A(A(Ipv4Addr::new(192, 0, 2, 5))),
    ));
    assert!(answer_of(&mut client, to, &r).is_some());
    // And the retry deadline is gone with it.
    assert!(client.poll_timeout().is_none());
}

#[test]
fn in_flight_queries_are_bounded() {
    // No state a peer (or a slow server) can grow without bound.
    let q = query("sip:host.test:5060", RecordType::A);
    let mut client = DnsClient::new(vec![addr(S1)], [4; 32]);
    let now = Instant::now();
    for _ in 0..MAX_IN_FLIGHT {
        client.query(now, q.clone());
    }
    assert_eq!(client.in_flight(), MAX_IN_FLIGHT);
    assert!(client.poll_answer().is_none());
    client.query(now, q.clone());
    assert_eq!(client.poll_answer(), Some((q.id, Answer::ServerFailure)));
    assert_eq!(client.in_flight(), MAX_IN_FLIGHT);
    assert_eq!(
        std::iter::from_fn(|| client.poll_transmit()).count(),
        MAX_IN_FLIGHT
    );
}

#[test]
fn no_server_or_invalid_name_fails_at_once() {
    let q = query("sip:host.test:5060", RecordType::A);
    let mut client = DnsClient::new(Vec::new(), [4; 32]);
    client.query(Instant::now(), q.clone());
    assert_eq!(client.poll_answer(), Some((q.id, Answer::ServerFailure)));
    assert!(client.poll_transmit().is_none());

    let mut client = DnsClient::new(vec![addr(S1)], [4; 32]);
    for bad in [
        String::new(),
        "a..b".into(),
        "x".repeat(64) + ".test",
        "a b.test".into(),
    ] {
        let mut q = q.clone();
        q.name = bad.clone();
        client.query(Instant::now(), q.clone());
        assert_eq!(
            client.poll_answer(),
            Some((q.id, Answer::ServerFailure)),
            "{bad:?}"
        );
        assert!(client.poll_transmit().is_none(), "{bad:?}");
    }
}

#[test]
fn resolv_conf_nameserver_lines_are_read() {
    // resolv.conf(5): "nameserver ADDR" lines, at most 3, comments with # or ;.
    let text = "\
# generated
search example.test
nameserver 192.0.2.53   # first
;nameserver 192.0.2.99
nameserver 2001:db8::53
nameserver fe80::1%eth0
nameserver not-an-address
options edns0 ndots:2
nameserver 192.0.2.54
nameserver 192.0.2.55
";
    assert_eq!(
        parse_resolv_conf(text),
        vec![
            addr("192.0.2.53:53"),
            addr("[2001:db8::53]:53"),
            addr("192.0.2.54:53")
        ]
    );
    assert!(parse_resolv_conf("search x\n").is_empty());
}

#[test]
fn nameserver_argument_forms() {
    assert_eq!(
        parse_nameserver("127.0.0.1:5353"),
        Ok(addr("127.0.0.1:5353"))
    );
    assert_eq!(parse_nameserver("[::1]:5353"), Ok(addr("[::1]:5353")));
    assert_eq!(parse_nameserver("127.0.0.1"), Ok(addr("127.0.0.1:53")));
    assert_eq!(parse_nameserver("::1"), Ok(addr("[::1]:53")));
    assert_eq!(parse_nameserver("[::1]"), Ok(addr("[::1]:53")));
    assert_eq!(parse_nameserver(" 10.0.0.1 "), Ok(addr("10.0.0.1:53")));
    for bad in [
        "",
        "dns.example.test",
        "127.0.0.1:99999",
        "[::1",
        "1.2.3.4:x",
    ] {
        let e = parse_nameserver(bad).unwrap_err();
        assert!(e.contains("not a nameserver address"), "{bad}: {e}");
    }
}

/// A valid answer to the query the client just sent, as bytes.
fn valid_answer() -> (DnsClient, SocketAddr, Vec<u8>) {
    let q = query("sip:example.test", RecordType::Naptr);
    let (client, to, bytes) = asked(&[S1], &q, Instant::now());
    let mut r = response_to(&bytes);
    r.add_answer(rr(
        "example.test.",
        100,
        RData::CNAME(CNAME(name("x.test."))),
    ));
    r.add_answer(rr(
        "x.test.",
        300,
        RData::NAPTR(NAPTR::new(
            10,
            20,
            b"s".to_vec().into_boxed_slice(),
            b"SIP+D2U".to_vec().into_boxed_slice(),
            Vec::new().into_boxed_slice(),
            name("_sip._udp.x.test."),
        )),
    ));
    r.add_authority(soa(60, 60));
    (client, to, r.to_vec().unwrap())
}

proptest! {
    #[test]
    fn random_datagrams_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        // Never panic on network input (project rule); a query stays answered at most once.
        let (mut client, to, _) = valid_answer();
        client.handle_datagram(Instant::now(), to, &bytes);
        let answers = std::iter::from_fn(|| client.poll_answer()).count();
        prop_assert!(answers <= 1);
        prop_assert_eq!(client.in_flight() + answers, 1);
    }

    #[test]
    fn mutated_answers_never_panic(
        flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8),
        cut in any::<usize>(),
    ) {
        // The same, starting from a valid answer with the right id and question.
        let (mut client, to, mut bytes) = valid_answer();
        for (at, value) in flips {
            let at = 2 + at % (bytes.len() - 2);
            bytes[at] = value;
        }
        bytes.truncate(2 + cut % (bytes.len() - 1));
        client.handle_datagram(Instant::now(), to, &bytes);
        let answers = std::iter::from_fn(|| client.poll_answer()).count();
        prop_assert_eq!(client.in_flight() + answers, 1);
        client.handle_timeout(Instant::now() + RETRY_INTERVAL * (MAX_TRIES + 1));
    }
}
