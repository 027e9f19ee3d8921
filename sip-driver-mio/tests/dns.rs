//! DNS on the mio driver (RFC 3263): the endpoint's questions asked of a real dnsmasq on
//! 127.0.0.1:26453 (the zone of `shared/interop/cfg/dnsmasq/run-cli.sh`, and a NAPTR/SRV
//! name of this file's ports), by the driver's `DnsClient` on its own non-blocking socket.
//! Skipped, with a message, when dnsmasq is missing (a failure under `SIP_REQUIRE_INTEROP`;
//! `scripts/test.sh` installs it) or with `SIP_SKIP_INTEROP=1`. Every run has a deadline;
//! dnsmasq is killed when a test ends.

#[path = "support/certs.rs"]
mod certs;
#[path = "support/peers.rs"]
mod peers;

use std::net::{SocketAddr, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use certs::Certs;
use peers::{
    client_driver, client_driver_on, run_until_seen, run_until_seen_within, Client, Seen, Server,
    LOCALHOST, WAIT,
};
use sip_core::{NextHop, Target};

/// dnsmasq's port (h-mio's range: 26400-26499).
const DNS_PORT: u16 = 26453;
/// The SIP servers' ports named by the zone (`mio.test`) or by the URIs.
const UDP_PORT: u16 = 26410;
const TLS_PORT: u16 = 26411;
const WRONG_TLS_PORT: u16 = 26413;
const SRV_PORT: u16 = 26412;
const FAILOVER_TCP_PORT: u16 = 26414;
const FAILOVER_TLS_PORT: u16 = 26415;

/// One dnsmasq at a time on the one port.
static DNSMASQ: Mutex<()> = Mutex::new(());

/// A dnsmasq child, killed on drop.
struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn nameserver() -> SocketAddr {
    SocketAddr::from((LOCALHOST, DNS_PORT))
}

/// Starts dnsmasq with the zone of run-cli.sh on port 26453, plus `mio.test`: NAPTR
/// SIP+D2U to `_sip._udp.mio.test`, SRV to sip1.example.test:26412. None (with a message)
/// when the interop tests are skipped or dnsmasq is missing.
fn dnsmasq() -> Option<Dnsmasq> {
    if std::env::var("SIP_SKIP_INTEROP").as_deref() == Ok("1") {
        eprintln!("skipped: SIP_SKIP_INTEROP=1 (the dnsmasq tests need a real dnsmasq)");
        return None;
    }
    let srv = format!("--srv-host=_sip._udp.mio.test,sip1.example.test,{SRV_PORT},10,100");
    let child = Command::new("dnsmasq")
        .args([
            "-C",
            "/dev/null",
            "-k",
            "--pid-file=",
            "--log-facility=-",
            &format!("--port={DNS_PORT}"),
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
            "--naptr-record=mio.test,10,10,S,SIP+D2U,,_sip._udp.mio.test",
            &srv,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(child) => Dnsmasq(child),
        Err(e) => {
            if std::env::var_os("SIP_REQUIRE_INTEROP").is_some() {
                panic!("cannot start dnsmasq ({e}) and SIP_REQUIRE_INTEROP is set");
            }
            eprintln!("skipped: cannot start dnsmasq ({e}); install dnsmasq-base");
            return None;
        }
    };
    // Ready when its port is taken (bounded).
    let deadline = Instant::now() + WAIT;
    while UdpSocket::bind(nameserver()).is_ok() {
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!("dnsmasq exited: {status}");
        }
        assert!(Instant::now() < deadline, "dnsmasq did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child)
}

// RFC 3263 4.1, 4.2: sip:mio.test has a NAPTR record (SIP+D2U) leading to an SRV record
// leading to sip1.example.test's A record: the driver asks dnsmasq each question and the
// request reaches the server at the SRV port, which answers.
#[test]
fn rfc3263_a_request_to_a_name_is_resolved_through_naptr_srv_and_a_and_answered() {
    let _one = DNSMASQ.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_dns) = dnsmasq() else { return };
    let certs = Certs::new();
    let server = Server::start(&format!("udp:127.0.0.1:{SRV_PORT}"), None, None);
    let (mut driver, warnings) = client_driver(&certs.ca(), vec![nameserver()]);
    let mut client = Client::new();
    client.options(
        driver.endpoint_mut(),
        "sip:mio.test",
        NextHop::uri("sip:mio.test"),
    );
    run_until_seen(&mut driver, &mut client, 1);
    assert_eq!(
        client.seen,
        [Seen::Response(200)],
        "{:?}",
        warnings.lock().unwrap()
    );
    let summary = driver.summary();
    // NAPTR, SRV, then A (and AAAA) of the target.
    assert!(summary.dns_queries >= 3, "{summary}");
    assert_eq!(
        summary.endpoint.dns_queries, summary.dns_queries,
        "{summary}"
    );
    assert_eq!(server.stop().endpoint.received, 1);
}

// RFC 3263 4.1, 4.2: a URI with a port is looked up by its address records only; the name
// of the zone (sip:example.test:PORT) is resolved and the request answered; a second one to
// the same name is sent from the cache, without a new question.
#[test]
fn rfc3263_sip_example_test_is_resolved_answered_and_then_cached() {
    let _one = DNSMASQ.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_dns) = dnsmasq() else { return };
    let certs = Certs::new();
    let server = Server::start(&format!("udp:127.0.0.1:{UDP_PORT}"), None, None);
    let (mut driver, _warnings) = client_driver(&certs.ca(), vec![nameserver()]);
    let mut client = Client::new();
    let uri = format!("sip:example.test:{UDP_PORT}");
    client.options(driver.endpoint_mut(), &uri, NextHop::uri(&uri));
    run_until_seen(&mut driver, &mut client, 1);
    let asked = driver.summary().dns_queries;
    assert!(asked >= 1, "{}", driver.summary());
    client.options(driver.endpoint_mut(), &uri, NextHop::uri(&uri));
    run_until_seen(&mut driver, &mut client, 2);
    assert_eq!(client.seen, [Seen::Response(200), Seen::Response(200)]);
    assert_eq!(driver.summary().dns_queries, asked, "the cache answers");
    assert_eq!(server.stop().endpoint.received, 2);
}

// RFC 5922 section 4, RFC 3261 26.2: sips:example.test:PORT goes over TLS, and the server
// must prove the domain that was resolved (example.test), not the address.
#[test]
fn rfc5922_4_sips_to_a_name_verifies_the_domain_resolved() {
    let _one = DNSMASQ.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_dns) = dnsmasq() else { return };
    let certs = Certs::new();
    // No IP address in the certificate: only the domain can be verified.
    let (cert, key) = certs.leaf("server", &["example.test"], &[]);
    let server = Server::start(
        &format!("tls:127.0.0.1:{TLS_PORT}"),
        Some((&cert, &key)),
        None,
    );
    let (mut driver, warnings) = client_driver(&certs.ca(), vec![nameserver()]);
    let mut client = Client::new();
    let uri = format!("sips:example.test:{TLS_PORT}");
    client.options(driver.endpoint_mut(), &uri, NextHop::uri(&uri));
    run_until_seen(&mut driver, &mut client, 1);
    assert_eq!(
        client.seen,
        [Seen::Response(200)],
        "{:?}",
        warnings.lock().unwrap()
    );
    assert_eq!(driver.summary().tls_handshakes, 1);
    assert_eq!(server.stop().tls_handshakes, 1);
}

// RFC 5922 7.2: a server at the resolved address whose certificate names another domain is
// refused: a transport error for the request, and the reason logged.
#[test]
fn rfc5922_7_2_a_server_not_proving_the_resolved_domain_is_refused() {
    let _one = DNSMASQ.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_dns) = dnsmasq() else { return };
    let certs = Certs::new();
    let (cert, key) = certs.leaf("wrong", &["wrong.test"], &[LOCALHOST]);
    let server = Server::start(
        &format!("tls:127.0.0.1:{WRONG_TLS_PORT}"),
        Some((&cert, &key)),
        None,
    );
    let (mut driver, warnings) = client_driver(&certs.ca(), vec![nameserver()]);
    let mut client = Client::new();
    let uri = format!("sips:example.test:{WRONG_TLS_PORT}");
    client.options(driver.endpoint_mut(), &uri, NextHop::uri(&uri));
    run_until_seen(&mut driver, &mut client, 1);
    assert_eq!(client.seen, [Seen::TransportError]);
    let warnings = warnings.lock().unwrap().clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("certificate not valid for example.test")),
        "{warnings:?}"
    );
    assert_eq!(server.stop().endpoint.received, 0);
}

// The loop never blocks on DNS: with a nameserver that never answers, the driver goes on
// answering requests while the lookup waits, and the request to the name fails with a
// transport error once the DNS client gives up (3 tries a second apart for the A and AAAA
// questions of a URI with a port). No dnsmasq needed.
#[test]
fn rfc3263_a_silent_nameserver_fails_the_request_and_never_blocks_the_loop() {
    let certs = Certs::new();
    // Bound and never read: no answer, no ICMP error either.
    let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
    let (mut driver, _warnings) = client_driver(&certs.ca(), vec![silent.local_addr().unwrap()]);
    let me = driver.local_addrs()[0].addr;
    let mut client = Client::new();
    client.options(
        driver.endpoint_mut(),
        "sip:nowhere.test:5060",
        NextHop::uri("sip:nowhere.test:5060"),
    );
    // Meanwhile, an OPTIONS to the driver itself (its own transaction user notes the
    // response: it is both ends here) is answered at once.
    client.options(driver.endpoint_mut(), &format!("sip:{me}"), Target::udp(me));
    run_until_seen(&mut driver, &mut client, 1);
    assert!(
        matches!(client.seen[0], Seen::Response(_)),
        "the request to an address is answered first: {:?}",
        client.seen
    );
    run_until_seen_within(&mut driver, &mut client, 2, Duration::from_secs(30));
    assert_eq!(client.seen[1], Seen::TransportError, "{:?}", client.seen);
    assert!(driver.summary().dns_queries >= 1);
}

// RFC 3263 4.3: example.test has an A (127.0.0.1) and an AAAA (::1) record; nothing
// listens on 127.0.0.1 at the port, so the connect is refused (FlowEvent::Failed from the
// driver) and the endpoint sends the request to the next target, [::1], which answers.
#[test]
fn rfc3263_4_3_a_refused_tcp_connect_fails_over_to_the_next_address() {
    let _one = DNSMASQ.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_dns) = dnsmasq() else { return };
    let certs = Certs::new();
    let server = Server::start(&format!("tcp:[::1]:{FAILOVER_TCP_PORT}"), None, None);
    let (mut driver, _warnings) = client_driver_on(
        &["udp:127.0.0.1:0", "udp:[::1]:0"],
        &certs.ca(),
        vec![nameserver()],
    );
    let mut client = Client::new();
    let uri = format!("sip:example.test:{FAILOVER_TCP_PORT};transport=tcp");
    client.options(driver.endpoint_mut(), &uri, NextHop::uri(&uri));
    run_until_seen(&mut driver, &mut client, 1);
    assert_eq!(client.seen, [Seen::Response(200)]);
    let summary = driver.summary();
    assert_eq!(
        (summary.connect_failures, summary.connected),
        (1, 1),
        "{summary}"
    );
    assert_eq!(summary.endpoint.failovers, 1, "{summary}");
    assert_eq!(server.stop().endpoint.received, 1);
}

// RFC 3263 4.3 with RFC 5922 7.2: the first address's server does not prove example.test
// (a failed handshake is a transport error), so the request goes to the next address,
// whose server does.
#[test]
fn rfc3263_4_3_a_tls_server_not_proving_the_domain_fails_over_to_the_next_address() {
    let _one = DNSMASQ.lock().unwrap_or_else(|e| e.into_inner());
    let Some(_dns) = dnsmasq() else { return };
    let certs = Certs::new();
    let (wrong_cert, wrong_key) = certs.leaf("wrong", &["wrong.test"], &[]);
    let (cert, key) = certs.leaf("right", &["example.test"], &[]);
    let wrong = Server::start(
        &format!("tls:127.0.0.1:{FAILOVER_TLS_PORT}"),
        Some((&wrong_cert, &wrong_key)),
        None,
    );
    let right = Server::start(
        &format!("tls:[::1]:{FAILOVER_TLS_PORT}"),
        Some((&cert, &key)),
        None,
    );
    let (mut driver, warnings) = client_driver_on(
        &["udp:127.0.0.1:0", "udp:[::1]:0"],
        &certs.ca(),
        vec![nameserver()],
    );
    let mut client = Client::new();
    let uri = format!("sips:example.test:{FAILOVER_TLS_PORT}");
    client.options(driver.endpoint_mut(), &uri, NextHop::uri(&uri));
    run_until_seen(&mut driver, &mut client, 1);
    assert_eq!(client.seen, [Seen::Response(200)]);
    let summary = driver.summary();
    assert_eq!(
        (summary.connect_failures, summary.tls_handshakes),
        (1, 1),
        "{summary}"
    );
    assert!(
        warnings
            .lock()
            .unwrap()
            .iter()
            .any(|w| w.contains("certificate not valid for example.test")),
        "{:?}",
        warnings.lock().unwrap()
    );
    assert_eq!(wrong.stop().endpoint.received, 0);
    assert_eq!(right.stop().endpoint.received, 1);
}
