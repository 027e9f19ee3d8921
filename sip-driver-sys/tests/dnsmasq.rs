//! `DnsClient` against a real DNS server: dnsmasq on 127.0.0.1:26253 serving the zone of
//! `shared/interop/cfg/dnsmasq/run-cli.sh` (NAPTR, SRV, A, AAAA under `.test`), queried over
//! a std UdpSocket. Skipped, with a message, when dnsmasq is not installed (a failure under
//! `SIP_REQUIRE_INTEROP`) or when `SIP_SKIP_INTEROP=1`. dnsmasq is killed at the end, also
//! when a test panics.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode};
use hickory_proto::rr::Name;
use sip_core::message::SipUri;
use sip_core::resolve::{
    Answer, Naptr, Query, QueryId, Record, RecordType, ResolveEvent, Resolver, ResolverConfig, Srv,
};
use sip_core::Transport;
use sip_driver_sys::dns::{DnsClient, EDNS_PAYLOAD};

/// The port of this helper's range the server listens on.
const PORT: u16 = 26253;

/// Only one dnsmasq at a time: the tests of this file share the port.
static SERVER: Mutex<()> = Mutex::new(());

/// Kills dnsmasq when dropped (the end of a test, or a panic in it).
struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The dnsmasq binary, if installed (it lives in /usr/sbin, often not in a user's PATH).
fn dnsmasq_binary() -> Option<&'static str> {
    ["dnsmasq", "/usr/sbin/dnsmasq"].into_iter().find(|bin| {
        Command::new(bin)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// dnsmasq with the records of run-cli.sh, on 127.0.0.1:PORT; None (after a message) when
/// the test is to be skipped.
fn start() -> Option<Dnsmasq> {
    if std::env::var("SIP_SKIP_INTEROP").is_ok_and(|v| v == "1") {
        eprintln!("skipped: SIP_SKIP_INTEROP=1");
        return None;
    }
    let Some(bin) = dnsmasq_binary() else {
        if std::env::var_os("SIP_REQUIRE_INTEROP").is_some() {
            panic!("dnsmasq is not installed and SIP_REQUIRE_INTEROP is set");
        }
        eprintln!("skipped: dnsmasq is not installed (apt-get install -y dnsmasq-base)");
        return None;
    };
    let child = Command::new(bin)
        .args(["-C", "/dev/null", "-k", "--pid-file=", "--log-facility=-"])
        .arg(format!("--port={PORT}"))
        .args([
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--no-resolv",
            "--no-hosts",
            "--no-poll",
            "--no-negcache",
            "--local-ttl=60",
            "--local=/test/",
            "--naptr-record=example.test,10,10,S,SIPS+D2T,,_sips._tcp.example.test",
            "--naptr-record=example.test,20,10,S,SIP+D2T,,_sip._tcp.example.test",
            "--naptr-record=example.test,30,10,S,SIP+D2U,,_sip._udp.example.test",
            "--srv-host=_sip._udp.example.test,sip1.example.test,5080,10,60",
            "--srv-host=_sip._udp.example.test,sip2.example.test,5082,10,40",
            "--srv-host=_sip._udp.example.test,sip3.example.test,5084,20,0",
            "--srv-host=_sip._tcp.example.test,sip1.example.test,5080,10,100",
            "--srv-host=_sip._tcp.example.test,sip2.example.test,5082,20,100",
            "--srv-host=_sips._tcp.example.test,sip1.example.test,5081,10,100",
            "--host-record=sip1.example.test,127.0.0.1,::1",
            "--host-record=sip2.example.test,127.0.0.2",
            "--host-record=sip3.example.test,127.0.0.3",
            "--host-record=example.test,127.0.0.1,::1",
            "--srv-host=_sip._udp.srvonly.test,sip1.example.test,5080,10,100",
            "--host-record=aonly.test,127.0.0.1",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("dnsmasq starts");
    let mut dnsmasq = Dnsmasq(child);
    wait_ready(&mut dnsmasq);
    Some(dnsmasq)
}

/// Waits (at most 5 s) until dnsmasq answers on its port: a connected UDP socket learns of
/// a closed port from the ICMP error (ConnectionRefused), so no query is lost to the start.
fn wait_ready(dnsmasq: &mut Dnsmasq) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.connect(server()).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut probe = Message::new(1, MessageType::Query, OpCode::Query);
    probe.add_query(hickory_proto::op::Query::query(
        Name::from_ascii("example.test.").unwrap(),
        hickory_proto::rr::RecordType::A,
    ));
    let probe = probe.to_vec().unwrap();
    let give_up = Instant::now() + Duration::from_secs(5);
    let mut buf = [0u8; 512];
    while Instant::now() < give_up {
        if let Ok(Some(status)) = dnsmasq.0.try_wait() {
            panic!("dnsmasq exited: {status} (port {PORT} busy?)");
        }
        let _ = socket.send(&probe);
        if socket.recv(&mut buf).is_ok() {
            return;
        }
    }
    panic!("dnsmasq does not answer on port {PORT} after 5 s");
}

fn server() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], PORT))
}

/// A DnsClient on a std UdpSocket, as a driver's loop would run it, with a deadline.
struct Loop {
    socket: UdpSocket,
    client: DnsClient,
}

impl Loop {
    fn new() -> Loop {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        Loop {
            socket,
            client: DnsClient::new(vec![server()], sip_driver_sys::os_seed().unwrap()),
        }
    }

    /// Asks `queries` and runs until each has its answer (at most 10 s; the client's own
    /// retries give up after 3 s).
    fn ask(&mut self, dnsmasq: &mut Dnsmasq, queries: Vec<Query>) -> Vec<(QueryId, Answer)> {
        let expected = queries.len();
        for q in queries {
            self.client.query(Instant::now(), q);
        }
        let mut answers = Vec::new();
        let mut buf = vec![0u8; usize::from(EDNS_PAYLOAD).max(4096)];
        let give_up = Instant::now() + Duration::from_secs(10);
        while answers.len() < expected {
            assert!(Instant::now() < give_up, "no answer from dnsmasq in 10 s");
            if let Ok(Some(status)) = dnsmasq.0.try_wait() {
                panic!("dnsmasq exited: {status} (port {PORT} busy?)");
            }
            while let Some((to, bytes)) = self.client.poll_transmit() {
                self.socket.send_to(&bytes, to).unwrap();
            }
            let wait = self
                .client
                .poll_timeout()
                .map(|t| t.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_millis(100))
                .clamp(Duration::from_millis(1), Duration::from_millis(100));
            self.socket.set_read_timeout(Some(wait)).unwrap();
            if let Ok((n, from)) = self.socket.recv_from(&mut buf) {
                self.client.handle_datagram(Instant::now(), from, &buf[..n]);
            }
            self.client.handle_timeout(Instant::now());
            while let Some(a) = self.client.poll_answer() {
                answers.push(a);
            }
        }
        answers
    }

    /// The answer to the one query of `rtype` the resolver asks for `uri`.
    fn answer(&mut self, dnsmasq: &mut Dnsmasq, uri: &str, rtype: RecordType) -> Answer {
        let q = queries_for(uri)
            .into_iter()
            .find(|q| q.rtype == rtype)
            .unwrap();
        let id = q.id;
        let mut answers = self.ask(dnsmasq, vec![q]);
        assert_eq!(answers.len(), 1);
        let (got, answer) = answers.remove(0);
        assert_eq!(got, id);
        answer
    }
}

/// The first queries sip_core's resolver asks for `uri`.
fn queries_for(uri: &str) -> Vec<Query> {
    let mut resolver = Resolver::new(ResolverConfig::default(), [3; 32]);
    resolver
        .resolve_uri(Instant::now(), &SipUri::parse(uri).unwrap())
        .unwrap();
    std::iter::from_fn(|| resolver.poll_query()).collect()
}

fn records(answer: Answer) -> Vec<Record> {
    match answer {
        Answer::Records(r) => r,
        other => panic!("expected records, got {other:?}"),
    }
}

#[test]
fn dnsmasq_answers_naptr_srv_a_aaaa_and_nxdomain() {
    // RFC 3263 4.1 / 4.2 records (RFC 3403 NAPTR, RFC 2782 SRV, A, RFC 3596 AAAA) and
    // NXDOMAIN, from a real server over UDP.
    let _one = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut dnsmasq) = start() else { return };
    let mut l = Loop::new();

    let naptr = records(l.answer(&mut dnsmasq, "sip:example.test", RecordType::Naptr));
    let naptr_rec = |order: u16, service: &str, replacement: &str| {
        Record::Naptr(Naptr {
            order,
            preference: 10,
            flags: "S".into(),
            service: service.into(),
            replacement: replacement.into(),
            ttl: 0,
        })
    };
    assert_eq!(
        sorted(without_ttl(naptr)),
        sorted(vec![
            naptr_rec(10, "SIPS+D2T", "_sips._tcp.example.test"),
            naptr_rec(20, "SIP+D2T", "_sip._tcp.example.test"),
            naptr_rec(30, "SIP+D2U", "_sip._udp.example.test"),
        ])
    );

    let srv = records(l.answer(
        &mut dnsmasq,
        "sip:example.test;transport=udp",
        RecordType::Srv,
    ));
    let srv_rec = |priority: u16, weight: u16, port: u16, target: &str| {
        Record::Srv(Srv {
            priority,
            weight,
            port,
            target: target.into(),
            ttl: 0,
        })
    };
    assert_eq!(
        sorted(without_ttl(srv)),
        sorted(vec![
            srv_rec(10, 60, 5080, "sip1.example.test"),
            srv_rec(10, 40, 5082, "sip2.example.test"),
            srv_rec(20, 0, 5084, "sip3.example.test"),
        ])
    );

    assert_eq!(
        records(l.answer(&mut dnsmasq, "sip:sip2.example.test:5082", RecordType::A)),
        vec![Record::A {
            addr: "127.0.0.2".parse().unwrap(),
            ttl: 60
        }]
    );
    assert_eq!(
        records(l.answer(&mut dnsmasq, "sip:sip1.example.test:5080", RecordType::Aaaa)),
        vec![Record::Aaaa {
            addr: "::1".parse().unwrap(),
            ttl: 60
        }]
    );
    assert!(
        matches!(
            l.answer(&mut dnsmasq, "sip:aonly.test:5060", RecordType::Aaaa),
            Answer::NoData { .. }
        ),
        "a name with an A record only has no AAAA"
    );
    let unknown = l.answer(&mut dnsmasq, "sip:no-such-name.test:5060", RecordType::A);
    assert!(matches!(unknown, Answer::NxDomain { .. }), "{unknown:?}");
    assert_eq!(l.client.in_flight(), 0);
}

/// NAPTR and SRV records with TTL 0 (the server picks the TTL of those).
fn without_ttl(v: Vec<Record>) -> Vec<Record> {
    v.into_iter()
        .map(|r| match r {
            Record::Naptr(n) => Record::Naptr(Naptr { ttl: 0, ..n }),
            Record::Srv(s) => Record::Srv(Srv { ttl: 0, ..s }),
            other => other,
        })
        .collect()
}

/// In a fixed order (servers may rotate record sets).
fn sorted(mut v: Vec<Record>) -> Vec<Record> {
    v.sort_by_key(|r| format!("{r:?}"));
    v
}

#[test]
fn dnsmasq_resolves_a_sip_uri_end_to_end() {
    // RFC 3263 4.1 and 4.2: NAPTR -> SRV -> A/AAAA through sip_core's resolver, every
    // question answered by DnsClient over UDP: the path the mio driver takes.
    let _one = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    let Some(mut dnsmasq) = start() else { return };
    let mut l = Loop::new();
    let config = ResolverConfig {
        transports: vec![Transport::Udp, Transport::Tcp, Transport::Tls],
        ..ResolverConfig::default()
    };
    let mut resolver = Resolver::new(config, [5; 32]);
    let now = Instant::now();
    let lookup = resolver
        .resolve_uri(now, &SipUri::parse("sip:example.test").unwrap())
        .unwrap();
    let give_up = Instant::now() + Duration::from_secs(20);
    let targets = loop {
        assert!(Instant::now() < give_up, "lookup did not finish");
        if let Some(event) = resolver.poll_event() {
            match event {
                ResolveEvent::Resolved { lookup: l, targets } => {
                    assert_eq!(l, lookup);
                    break targets;
                }
                other => panic!("{other:?}"),
            }
        }
        let queries: Vec<Query> = std::iter::from_fn(|| resolver.poll_query()).collect();
        assert!(!queries.is_empty(), "resolver waits for nothing");
        for (id, answer) in l.ask(&mut dnsmasq, queries) {
            resolver.handle_answer(Instant::now(), id, answer);
        }
    };
    // NAPTR order 10 is SIPS+D2T: _sips._tcp -> sip1.example.test:5081 -> 127.0.0.1, ::1.
    let first = targets.first().expect("targets");
    assert_eq!(first.transport, Transport::Tls);
    assert_eq!(first.addr, "127.0.0.1:5081".parse().unwrap());
    assert!(targets
        .iter()
        .any(|t| t.transport == Transport::Udp && t.addr.port() == 5084));
}
