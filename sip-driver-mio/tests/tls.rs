//! TLS on the mio driver (RFC 3261 section 26.2, RFC 5922): two drivers on loopback, one
//! serving a `tls:` listener, the other sending requests through its endpoint to
//! `Target::tls`, with a CA and certificates made at test time. Every run has a deadline and
//! every read a timeout: none can hang.

#[path = "support/certs.rs"]
mod certs;
#[path = "support/peers.rs"]
mod peers;

use std::io::{self, Read};
use std::net::TcpStream;
use std::time::Duration;

use certs::Certs;
use peers::{client_driver, run_until_seen, tls, Client, Seen, Server, LOCALHOST, WAIT};
use sip_core::Config;
use sip_driver_mio::{Driver, DriverOptions, ListenSpec, TlsConfig};
use sip_driver_sys::tls::client_config;

// RFC 3261 26.2 / RFC 5922 7: an OPTIONS sent over TLS to a server whose certificate the
// client's CA signed (for the address it connects to) is answered, and several transactions
// to that peer share the one connection: one handshake on each side.
#[test]
fn rfc5922_one_tls_handshake_serves_several_transactions_to_one_peer() {
    let certs = Certs::new();
    let (cert, key) = certs.leaf("server", &["example.test"], &[LOCALHOST]);
    let server = Server::start("tls:127.0.0.1:0", Some((&cert, &key)), None);
    let (mut driver, warnings) = client_driver(&certs.ca(), Vec::new());
    let mut client = Client::new();
    let uri = format!("sip:{};transport=tls", server.addr);
    for n in 1..=3 {
        client.options(driver.endpoint_mut(), &uri, tls(server.addr));
        run_until_seen(&mut driver, &mut client, n);
    }
    assert_eq!(client.seen, vec![Seen::Response(200); 3]);
    let summary = driver.summary();
    assert_eq!(summary.tls_handshakes, 1, "{summary}");
    assert_eq!(summary.connected, 1, "{summary}");
    assert!(
        warnings.lock().unwrap().is_empty(),
        "{:?}",
        warnings.lock().unwrap()
    );
    let served = server.stop();
    assert_eq!(served.tls_handshakes, 1, "{served}");
    assert_eq!(served.accepted, 1, "{served}");
    assert_eq!(served.endpoint.received, 3, "{served}");
}

// RFC 5922 7.2: a server whose certificate does not name what the client connects to is
// refused: the handshake fails, the transaction gets a transport error, and the driver says
// why ("certificate not valid for ...").
#[test]
fn rfc5922_7_2_a_certificate_for_another_name_is_refused_with_the_reason() {
    let certs = Certs::new();
    let (cert, key) = certs.leaf("wrong", &["wrong.test"], &[]);
    let server = Server::start("tls:127.0.0.1:0", Some((&cert, &key)), None);
    let (mut driver, warnings) = client_driver(&certs.ca(), Vec::new());
    let mut client = Client::new();
    let uri = format!("sip:{};transport=tls", server.addr);
    client.options(driver.endpoint_mut(), &uri, tls(server.addr));
    run_until_seen(&mut driver, &mut client, 1);
    assert_eq!(client.seen, [Seen::TransportError]);
    let summary = driver.summary();
    assert_eq!(
        (summary.tls_handshakes, summary.connect_failures),
        (0, 1),
        "{summary}"
    );
    let warnings = warnings.lock().unwrap().clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("certificate not valid for 127.0.0.1")),
        "{warnings:?}"
    );
    let served = server.stop();
    assert_eq!(served.tls_handshakes, 0, "{served}");
    assert_eq!(served.endpoint.received, 0, "{served}");
}

// A server the client's CA did not sign is refused the same way (rustls' reason).
#[test]
fn rfc5922_7_a_certificate_from_an_unknown_ca_is_refused() {
    let certs = Certs::new();
    let other = Certs::new();
    let (cert, key) = other.leaf("server", &["example.test"], &[LOCALHOST]);
    let server = Server::start("tls:127.0.0.1:0", Some((&cert, &key)), None);
    let (mut driver, warnings) = client_driver(&certs.ca(), Vec::new());
    let mut client = Client::new();
    let uri = format!("sip:{};transport=tls", server.addr);
    client.options(driver.endpoint_mut(), &uri, tls(server.addr));
    run_until_seen(&mut driver, &mut client, 1);
    assert_eq!(client.seen, [Seen::TransportError]);
    let warnings = warnings.lock().unwrap().clone();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains(&server.addr.to_string()) && w.contains("certificate")),
        "{warnings:?}"
    );
    server.stop();
}

// A peer that connects and never completes the handshake (a slow-loris) is closed after the
// handshake timeout, and never reaches the endpoint.
#[test]
fn a_tls_handshake_that_never_completes_is_closed_after_the_timeout() {
    let certs = Certs::new();
    let (cert, key) = certs.leaf("server", &["example.test"], &[LOCALHOST]);
    let server = Server::start(
        "tls:127.0.0.1:0",
        Some((&cert, &key)),
        Some(Duration::from_millis(200)),
    );
    let mut silent = TcpStream::connect(server.addr).expect("connect");
    silent.set_read_timeout(Some(WAIT)).unwrap();
    // Closed by the server (after at most an alert): end of stream or a reset, long before
    // the read timeout.
    let mut buf = [0u8; 64];
    let mut got = 0;
    loop {
        match silent.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) => {
                assert!(
                    !matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ),
                    "not closed: {e}"
                );
                break;
            }
        }
        assert!(got < 64, "the server sends more than an alert");
    }
    let warnings = server.warnings.lock().unwrap().clone();
    assert!(
        warnings.iter().any(|w| w.contains("handshake not done")),
        "{warnings:?}"
    );
    let served = server.stop();
    assert_eq!((served.accepted, served.tls_handshakes), (1, 0), "{served}");
    assert_eq!(served.endpoint.received, 0, "{served}");
}

// A tls: listener without a certificate is an error at bind time.
#[test]
fn a_tls_listener_needs_a_server_configuration() {
    let certs = Certs::new();
    let options = DriverOptions {
        tls: Some(TlsConfig {
            server: None,
            client: client_config(Some(&certs.ca())).unwrap(),
        }),
        ..DriverOptions::default()
    };
    let spec: ListenSpec = "tls:127.0.0.1:0".parse().unwrap();
    let err = Driver::bind_with(&[spec], Config::default(), options).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
}

// A slow-loris bound: one address gets at most MAX_TLS_HANDSHAKES_PER_SOURCE handshakes
// under way; a connection beyond is closed at once while the others wait for their
// handshake (here, for the 10 s default timeout).
#[test]
fn tls_handshakes_under_way_from_one_source_are_capped() {
    let certs = Certs::new();
    let (cert, key) = certs.leaf("server", &["example.test"], &[LOCALHOST]);
    let server = Server::start("tls:127.0.0.1:0", Some((&cert, &key)), None);
    let cap = sip_driver_mio::MAX_TLS_HANDSHAKES_PER_SOURCE;
    let mut held: Vec<TcpStream> = Vec::new();
    for _ in 0..cap {
        held.push(TcpStream::connect(server.addr).expect("connect"));
    }
    // Connections are accepted in order: once one beyond the cap is closed, the first
    // `cap` are counted.
    let mut extra = TcpStream::connect(server.addr).expect("connect");
    extra.set_read_timeout(Some(WAIT)).unwrap();
    let mut buf = [0u8; 16];
    match extra.read(&mut buf) {
        Ok(n) => assert_eq!(n, 0, "the connection beyond the cap got data"),
        Err(e) => assert!(
            !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "the connection beyond the cap was not closed: {e}"
        ),
    }
    // The first ones are still open.
    let first = &mut held[0];
    first
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let still_open = first.read(&mut buf);
    assert!(
        matches!(&still_open, Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)),
        "{still_open:?}"
    );
    let served = server.stop();
    assert_eq!(served.accepted, cap as u64, "{served}");
}

// RFC 3261 18.3 over TLS: a message larger than a TLS record (16 KiB) is split over several
// records and reads, and framed whole by its Content-Length on the other side.
#[test]
fn rfc3261_18_3_a_message_larger_than_a_tls_record_arrives_whole() {
    let certs = Certs::new();
    let (cert, key) = certs.leaf("server", &["example.test"], &[LOCALHOST]);
    let server = Server::start("tls:127.0.0.1:0", Some((&cert, &key)), None);
    let (mut driver, _warnings) = client_driver(&certs.ca(), Vec::new());
    let mut client = Client::new();
    let uri = format!("sip:{};transport=tls", server.addr);
    let body: Vec<u8> = (0..40_000u32).map(|i| b'a' + (i % 26) as u8).collect();
    client.message(driver.endpoint_mut(), &uri, tls(server.addr), &body);
    run_until_seen(&mut driver, &mut client, 1);
    assert_eq!(client.seen, [Seen::Response(200)]);
    let served = server.stop();
    assert_eq!(
        (served.endpoint.received, served.endpoint.malformed),
        (1, 0),
        "{served}"
    );
}
