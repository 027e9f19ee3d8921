//! The drivers' DNS client (`sip_driver_sys::dns::DnsClient`): arbitrary datagrams as
//! answers to a query in flight. The input is used twice: as a whole datagram, then as the
//! flags, counts and record sections of an answer whose id, source and question match the
//! query (so the fuzzer reaches the record decoding and CNAME flattening at once).
//!
//! Invariants: nothing panics; a query gets at most one answer and stays in flight until
//! then; records given back are of the type asked.
#![no_main]

use std::net::SocketAddr;
use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sip_core::message::SipUri;
use sip_core::resolve::{Answer, Record, RecordType, Resolver, ResolverConfig};
use sip_driver_sys::dns::DnsClient;

const URIS: [&str; 3] = [
    "sip:a.test",
    "sip:a.test;transport=tcp",
    "sip:a.test:5060",
];

fn rtype(r: &Record) -> RecordType {
    match r {
        Record::Naptr(_) => RecordType::Naptr,
        Record::Srv(_) => RecordType::Srv,
        Record::A { .. } => RecordType::A,
        _ => RecordType::Aaaa,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, data)) = data.split_first() else {
        return;
    };
    let mut resolver = Resolver::new(ResolverConfig::default(), [1; 32]);
    let uri = SipUri::parse(URIS[usize::from(pick) % URIS.len()]).unwrap();
    resolver.resolve_uri(Instant::now(), &uri).unwrap();
    let query = resolver.poll_query().unwrap();
    let server: SocketAddr = "127.0.0.1:53".parse().unwrap();
    let mut client = DnsClient::new(vec![server], [2; 32]);
    client.query(Instant::now(), query.clone());
    let (_, sent) = client.poll_transmit().unwrap();

    // The question as sent: the name's labels up to the root label, then type and class.
    let mut end = 12;
    while end < sent.len() && sent[end] != 0 {
        end += 1 + usize::from(sent[end]);
    }
    let question = &sent[12..(end + 5).min(sent.len())];

    let now = Instant::now();
    client.handle_datagram(now, server, data);
    if data.len() >= 8 {
        let mut crafted = Vec::with_capacity(12 + question.len() + data.len());
        crafted.extend_from_slice(&sent[..2]); // id
        crafted.extend_from_slice(&data[..2]); // flags
        crafted.extend_from_slice(&[0, 1]); // one question
        crafted.extend_from_slice(&data[2..8]); // answer, authority, additional counts
        crafted.extend_from_slice(question);
        crafted.extend_from_slice(&data[8..]);
        client.handle_datagram(now, server, &crafted);
    }

    let mut answers = 0;
    while let Some((id, answer)) = client.poll_answer() {
        answers += 1;
        assert_eq!(id, query.id);
        if let Answer::Records(records) = answer {
            assert!(!records.is_empty());
            assert!(records.iter().all(|r| rtype(r) == query.rtype), "{records:?}");
        }
    }
    assert!(answers <= 1);
    assert_eq!(client.in_flight() + answers, 1);
});
