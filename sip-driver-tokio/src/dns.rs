//! DNS for the endpoint's resolver (RFC 3263): the questions of [`Endpoint::poll_dns`]
//! asked with hickory's tokio resolver, one task each, their answers mapped to
//! [`sip_core::resolve::Answer`] and handed back to the owner task through its input
//! channel. The owner never waits for DNS.
//!
//! The endpoint's resolver caches with the TTLs of the answers, so hickory's own cache is
//! off; hickory follows CNAME chains, and only the records of the type asked are passed on.
//!
//! [`Endpoint::poll_dns`]: sip_core::Endpoint::poll_dns

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use hickory_resolver::proto::op::ResponseCode;
use hickory_resolver::proto::rr::{RData, RecordType as HickoryType};
use hickory_resolver::TokioResolver;
use sip_core::resolve::{Answer, Naptr, Query, QueryId, Record, RecordType, Srv};

/// Questions asked at once; more wait in [`Dns::waiting`].
pub(crate) const MAX_IN_FLIGHT: usize = 64;
/// Questions waiting for a free slot; beyond, a question is answered
/// [`Answer::ServerFailure`] at once (the endpoint's resolver bounds its own lookups, so
/// this is only a backstop).
const MAX_WAITING: usize = 1024;
/// The longest one question may take, all retries included.
const QUERY_DEADLINE: Duration = Duration::from_secs(10);
/// How long hickory waits for one reply before it asks again.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// The DNS side of the owner task: the resolver (made at the first question), and the
/// questions waiting for a slot.
pub(crate) struct Dns {
    /// The nameservers given (`--dns`), else the system's configuration.
    nameservers: Option<Vec<SocketAddr>>,
    resolver: Option<Result<Arc<TokioResolver>, String>>,
    in_flight: usize,
    waiting: VecDeque<Query>,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("nameservers", &self.nameservers)
            .field("in_flight", &self.in_flight)
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

/// What to do with one question.
pub(crate) enum Ask {
    /// Start a task with this resolver.
    Start(Arc<TokioResolver>, Query),
    /// Answer at once (no resolver, or too many questions).
    Answer(QueryId, Answer),
    /// It waits for a slot.
    Wait,
}

impl Dns {
    pub(crate) fn new(nameservers: Option<Vec<SocketAddr>>) -> Dns {
        Dns {
            nameservers,
            resolver: None,
            in_flight: 0,
            waiting: VecDeque::new(),
        }
    }

    /// A question from the endpoint.
    pub(crate) fn ask(&mut self, query: Query) -> Ask {
        let resolver = match self.resolver() {
            Ok(r) => r,
            Err(_) => return Ask::Answer(query.id, Answer::ServerFailure),
        };
        if self.in_flight < MAX_IN_FLIGHT {
            self.in_flight += 1;
            return Ask::Start(resolver, query);
        }
        if self.waiting.len() >= MAX_WAITING {
            tracing::warn!(name = %query.name, "too many DNS questions waiting; answered as failed");
            return Ask::Answer(query.id, Answer::ServerFailure);
        }
        self.waiting.push_back(query);
        Ask::Wait
    }

    /// A task ended: the next waiting question, if any, takes its slot.
    pub(crate) fn done(&mut self) -> Option<(Arc<TokioResolver>, Query)> {
        self.in_flight = self.in_flight.saturating_sub(1);
        let query = self.waiting.pop_front()?;
        let resolver = self.resolver().ok()?;
        self.in_flight += 1;
        Some((resolver, query))
    }

    fn resolver(&mut self) -> Result<Arc<TokioResolver>, String> {
        let nameservers = &self.nameservers;
        let made = self.resolver.get_or_insert_with(|| {
            let r = build(nameservers.as_deref()).map(Arc::new);
            if let Err(e) = &r {
                tracing::warn!("no DNS resolver, names cannot be resolved: {e}");
            }
            r
        });
        made.clone()
    }
}

/// A resolver on `nameservers`, or on the system's configuration (`/etc/resolv.conf`).
fn build(nameservers: Option<&[SocketAddr]>) -> Result<TokioResolver, String> {
    let provider = TokioRuntimeProvider::default();
    let mut builder = match nameservers {
        Some(servers) => {
            let servers = servers
                .iter()
                .map(|s| {
                    let mut ns = NameServerConfig::udp_and_tcp(s.ip());
                    for c in &mut ns.connections {
                        c.port = s.port();
                    }
                    ns
                })
                .collect();
            TokioResolver::builder_with_config(ResolverConfig::from_name_servers(servers), provider)
        }
        None => TokioResolver::builder(provider).map_err(|e| e.to_string())?,
    };
    let opts: &mut ResolverOpts = builder.options_mut();
    // The endpoint caches with the answers' TTLs (RFC 3263 section 4.1 and 4.2).
    opts.cache_size = 0;
    opts.timeout = QUERY_TIMEOUT;
    opts.attempts = 2;
    builder.build().map_err(|e| e.to_string())
}

/// Asks one question (a fully qualified name: no search domains) and maps the result.
pub(crate) async fn lookup(resolver: Arc<TokioResolver>, query: Query) -> (QueryId, Answer) {
    let rtype = match query.rtype {
        RecordType::Naptr => HickoryType::NAPTR,
        RecordType::Srv => HickoryType::SRV,
        RecordType::A => HickoryType::A,
        RecordType::Aaaa => HickoryType::AAAA,
        _ => return (query.id, Answer::ServerFailure),
    };
    let fqdn = format!("{}.", query.name.trim_end_matches('.'));
    let result = tokio::time::timeout(QUERY_DEADLINE, resolver.lookup(fqdn.as_str(), rtype)).await;
    let answer = match result {
        Err(_) => Answer::Timeout,
        Ok(Ok(lookup)) => {
            let records: Vec<Record> = lookup
                .answers()
                .iter()
                .filter_map(|r| record(&r.data, r.ttl, query.rtype))
                .collect();
            if records.is_empty() {
                // Only CNAMEs, or records of other types: the name has none of this one.
                Answer::NoData { ttl: 0 }
            } else {
                Answer::Records(records)
            }
        }
        Ok(Err(e)) => map_error(&e),
    };
    tracing::debug!(name = %query.name, rtype = ?query.rtype, ?answer, "DNS answer");
    (query.id, answer)
}

/// hickory's error as the endpoint's resolver understands it: no records (NXDOMAIN or
/// NODATA, with the negative TTL of RFC 2308), a timeout, or a failure.
fn map_error(e: &NetError) -> Answer {
    match e {
        NetError::Dns(DnsError::NoRecordsFound(no)) => {
            let ttl = no.negative_ttl.unwrap_or(0);
            if no.response_code == ResponseCode::NXDomain {
                Answer::NxDomain { ttl }
            } else {
                Answer::NoData { ttl }
            }
        }
        NetError::Timeout => Answer::Timeout,
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => Answer::Timeout,
        other => {
            tracing::debug!("DNS failure: {other}");
            Answer::ServerFailure
        }
    }
}

/// One record of the type asked, or None.
fn record(data: &RData, ttl: u32, asked: RecordType) -> Option<Record> {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    let name = |n: &hickory_resolver::proto::rr::Name| {
        let s = n.to_ascii();
        s.trim_end_matches('.').to_ascii_lowercase()
    };
    match (data, asked) {
        (RData::NAPTR(n), RecordType::Naptr) => Some(Record::Naptr(Naptr {
            order: n.order,
            preference: n.preference,
            flags: text(&n.flags),
            service: text(&n.services),
            replacement: name(&n.replacement),
            ttl,
        })),
        (RData::SRV(s), RecordType::Srv) => Some(Record::Srv(Srv {
            priority: s.priority,
            weight: s.weight,
            port: s.port,
            target: match name(&s.target) {
                // The root: "no service here" (RFC 2782).
                t if t.is_empty() => ".".to_owned(),
                t => t,
            },
            ttl,
        })),
        (RData::A(a), RecordType::A) => Some(Record::A { addr: a.0, ttl }),
        (RData::AAAA(a), RecordType::Aaaa) => Some(Record::Aaaa { addr: a.0, ttl }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_resolver::proto::rr::rdata::{A, NAPTR, SRV};
    use hickory_resolver::proto::rr::Name;

    #[test]
    fn records_of_other_types_are_dropped_and_names_lose_the_final_dot() {
        // RFC 3263 section 4.1: the answer holds the records of the asked type only
        // (a CNAME chain is flattened by the resolver).
        let srv = RData::SRV(SRV::new(
            10,
            5,
            5061,
            Name::from_ascii("Sip1.Example.Test.").unwrap(),
        ));
        assert_eq!(
            record(&srv, 300, RecordType::Srv),
            Some(Record::Srv(Srv {
                priority: 10,
                weight: 5,
                port: 5061,
                target: "sip1.example.test".into(),
                ttl: 300
            }))
        );
        assert_eq!(record(&srv, 300, RecordType::A), None);
        let a = RData::A(A("192.0.2.1".parse().unwrap()));
        assert_eq!(
            record(&a, 60, RecordType::A),
            Some(Record::A {
                addr: "192.0.2.1".parse().unwrap(),
                ttl: 60
            })
        );
        let naptr = RData::NAPTR(NAPTR::new(
            10,
            20,
            b"s".to_vec().into_boxed_slice(),
            b"SIPS+D2T".to_vec().into_boxed_slice(),
            Vec::new().into_boxed_slice(),
            Name::from_ascii("_sips._tcp.example.test.").unwrap(),
        ));
        match record(&naptr, 30, RecordType::Naptr) {
            Some(Record::Naptr(n)) => {
                assert_eq!((n.order, n.preference), (10, 20));
                assert_eq!(n.service, "SIPS+D2T");
                assert_eq!(n.replacement, "_sips._tcp.example.test");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn srv_target_root_means_no_service() {
        // RFC 2782: a target of "." means the service is decidedly not available.
        let srv = RData::SRV(SRV::new(0, 0, 0, Name::root()));
        match record(&srv, 10, RecordType::Srv) {
            Some(Record::Srv(s)) => assert_eq!(s.target, "."),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timeouts_and_failures_are_told_apart() {
        // RFC 3263 section 4.3: a timeout and a server failure are not cached negatives.
        assert_eq!(map_error(&NetError::Timeout), Answer::Timeout);
        assert_eq!(map_error(&NetError::Busy), Answer::ServerFailure);
    }
}
