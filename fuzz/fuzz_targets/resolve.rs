//! The RFC 3263 resolver: lookups, arbitrary DNS answers to its questions, failures and
//! clock steps, in the order the input says.
//!
//! Invariants: nothing panics; every question is a valid name; every target yielded has an
//! address that some A/AAAA answer (or the numeric URI) gave, over a configured transport;
//! the cache stays within its bound.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sip_core::message::SipUri;
use sip_core::resolve::{
    valid_name, Answer, Failure, Naptr, Query, Record, ResolveEvent, Resolver, ResolverConfig, Srv,
};

const URIS: [&str; 6] = [
    "sip:a.test",
    "sips:a.test",
    "sip:a.test:5070",
    "sip:a.test;transport=tcp",
    "sip:192.0.2.1",
    "sip:b.test;transport=tls",
];
const NAMES: [&str; 6] = [
    "a.test",
    "b.test",
    "_sip._udp.a.test",
    "_sips._tcp.a.test",
    ".",
    "x y",
];
const SERVICES: [&str; 4] = ["SIP+D2U", "SIP+D2T", "SIPS+D2T", "SIP+D2S"];

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.byte()?, self.byte()?]))
    }
    fn record(&mut self, given: &mut Vec<IpAddr>) -> Option<Record> {
        let kind = self.byte()?;
        let ttl = u32::from(self.u16()?) * 7;
        Some(match kind % 4 {
            0 => Record::Naptr(Naptr {
                order: self.u16()?,
                preference: self.u16()?,
                flags: if self.byte()? % 4 == 0 { "u" } else { "s" }.into(),
                service: SERVICES[usize::from(self.byte()?) % SERVICES.len()].into(),
                replacement: NAMES[usize::from(self.byte()?) % NAMES.len()].into(),
                ttl,
            }),
            1 => Record::Srv(Srv {
                priority: u16::from(self.byte()? % 4),
                weight: self.u16()?,
                port: self.u16()?,
                target: NAMES[usize::from(self.byte()?) % NAMES.len()].into(),
                ttl,
            }),
            2 => {
                let addr = Ipv4Addr::from(u32::from(self.u16()?));
                given.push(addr.into());
                Record::A { addr, ttl }
            }
            _ => {
                let addr = Ipv6Addr::from(u128::from(self.u16()?));
                given.push(addr.into());
                Record::Aaaa { addr, ttl }
            }
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let config = ResolverConfig {
        max_cache_entries: 8,
        max_lookups: 8,
        ..ResolverConfig::default()
    };
    let mut r = Resolver::new(config, [5; 32]);
    let mut now = Instant::now();
    let mut pending: Vec<Query> = Vec::new();
    let mut lookups = Vec::new();
    let mut given: Vec<IpAddr> = vec!["192.0.2.1".parse().unwrap()];
    while let Some(op) = input.byte() {
        let arg = usize::from(input.byte().unwrap_or(0));
        match op % 6 {
            0 => {
                let uri = SipUri::parse(URIS[arg % URIS.len()]).unwrap();
                if let Ok(id) = r.resolve_uri(now, &uri) {
                    lookups.push(id);
                }
            }
            1 if !pending.is_empty() => {
                let q = pending.remove(arg % pending.len());
                let answer = match input.byte().unwrap_or(0) % 5 {
                    0 => Answer::NoData { ttl: u32::MAX },
                    1 => Answer::NxDomain { ttl: 60 },
                    2 => Answer::ServerFailure,
                    3 => Answer::Timeout,
                    _ => {
                        let n = input.byte().unwrap_or(0) % 8;
                        let mut records = Vec::new();
                        for _ in 0..n {
                            match input.record(&mut given) {
                                Some(rec) => records.push(rec),
                                None => break,
                            }
                        }
                        Answer::Records(records)
                    }
                };
                r.handle_answer(now, q.id, answer);
            }
            2 if !lookups.is_empty() => {
                let id = lookups[arg % lookups.len()];
                if let Some(t) = r.next_target(now, id) {
                    assert!(given.contains(&t.addr.ip()));
                    r.target_failed(now, id, Failure::TransportError);
                }
            }
            3 => now += Duration::from_secs(arg as u64 * 10),
            4 if !lookups.is_empty() => {
                let id = lookups.remove(arg % lookups.len());
                r.finish(id);
            }
            5 => {
                let host = NAMES[arg % NAMES.len()];
                if let Ok(id) = r.resolve_sent_by(now, host, None, sip_core::Transport::Udp) {
                    lookups.push(id);
                }
            }
            _ => {}
        }
        while let Some(q) = r.poll_query() {
            assert!(valid_name(&q.name), "{q:?}");
            pending.push(q);
        }
        while let Some(e) = r.poll_event() {
            if let ResolveEvent::Resolved { targets, .. } = e {
                assert!(!targets.is_empty());
                for t in targets {
                    assert!(given.contains(&t.addr.ip()), "{t:?}");
                    assert!(r.config().transports.contains(&t.transport));
                }
            }
        }
        assert!(r.cache_len() <= 8);
    }
});
