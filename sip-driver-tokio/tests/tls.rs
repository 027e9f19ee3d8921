//! TLS on the tokio driver (RFC 3261 section 26, RFC 5922): `tls:` listeners, connections
//! the endpoint opens verified against a CA, one handshake per connection however many
//! transactions it carries, and the refusals (a certificate for another name, an
//! untrusted CA, a listener without a certificate). Loopback only, every step bounded.

mod common;

use std::net::SocketAddr;

use common::bounded;
use common::certs::{self, Certs};
use sip_core::{Method, OwnedMessage, RequestBuilder, SeededRng, Target, Transport};
use sip_driver_sys::tls::{client_config, server_config, TlsConfig};
use sip_driver_tokio::{Client, Driver, DriverOptions, Error, ListenSpec, RequestError};

/// A server on a `tls:` listener answering every request 200.
async fn tls_server(certs: &Certs) -> (Client, SocketAddr) {
    let tls = TlsConfig {
        server: Some(server_config(&certs.cert, &certs.key).expect("server config")),
        client: client_config(Some(&certs.ca)).expect("client config"),
    };
    let driver = Driver::bind_with_options(
        ["tls:127.0.0.1:0".parse::<ListenSpec>().unwrap()],
        sip_core::Config::default(),
        DriverOptions::default().with_tls(tls),
    )
    .await
    .expect("bind tls");
    let (server, mut incoming) = driver.start();
    let addr = server.local_addr(Transport::Tls).expect("tls listener");
    tokio::spawn(async move {
        while let Some((_request, mut responder)) = incoming.next().await {
            let _ = responder.respond_status(200).await;
        }
    });
    (server, addr)
}

/// A client trusting the CA in `ca` (it needs no certificate of its own).
async fn tls_client(ca: &std::path::Path) -> Client {
    let tls = TlsConfig {
        server: None,
        client: client_config(Some(ca)).expect("client config"),
    };
    let driver = Driver::bind_with_options(
        ["udp:127.0.0.1:0".parse::<ListenSpec>().unwrap()],
        sip_core::Config::default(),
        DriverOptions::default().with_tls(tls),
    )
    .await
    .expect("bind");
    driver.start().0
}

fn options(to: SocketAddr, rng: &mut SeededRng) -> OwnedMessage {
    let uri = format!("sips:{to}");
    RequestBuilder::new(Method::Options, &uri)
        .from("<sips:alice@127.0.0.1>")
        .to(&format!("<{uri}>"))
        .build(rng)
        .unwrap()
}

fn tls_target(addr: SocketAddr) -> Target {
    Target {
        transport: Transport::Tls,
        addr,
    }
}

#[tokio::test]
async fn tls_requests_to_one_peer_share_one_handshake() {
    // RFC 3261 section 26.3.1 and 18: a TLS connection is kept and reused for the
    // transactions that follow, so a peer costs one handshake, not one per transaction.
    common::init_tracing();
    let certs = certs::make("one-handshake", &["example.test", "127.0.0.1"]);
    let (server, addr) = tls_server(&certs).await;
    let client = tls_client(&certs.ca).await;
    let mut rng = SeededRng::new([3; 32]);
    for _ in 0..4 {
        let responses = bounded(
            "send",
            client.request(options(addr, &mut rng), tls_target(addr)),
        )
        .await
        .expect("sent");
        let ok = bounded("200", responses.final_response())
            .await
            .expect("final");
        assert_eq!(ok.view().status(), Some(200));
    }
    assert_eq!(client.driver_stats().tls_handshakes, 1);
    assert_eq!(server.driver_stats().tls_handshakes, 1);
    assert_eq!(client.driver_stats().tls_failures, 0);
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn tls_server_whose_certificate_names_another_host_is_refused() {
    // RFC 5922 section 7.2 (and 7.1): the certificate must name what the client asked for;
    // here the peer's address, which the certificate for other.test does not name.
    common::init_tracing();
    let certs = certs::make("wrong-name", &["other.test"]);
    let (server, addr) = tls_server(&certs).await;
    let client = tls_client(&certs.ca).await;
    let mut rng = SeededRng::new([4; 32]);
    let responses = bounded(
        "send",
        client.request(options(addr, &mut rng), tls_target(addr)),
    )
    .await
    .expect("sent");
    let result = bounded("final", responses.final_response()).await;
    assert_eq!(result.unwrap_err(), RequestError::Transport);
    let stats = client.driver_stats();
    assert_eq!(stats.tls_handshakes, 0);
    assert_eq!(stats.tls_failures, 1);
    let why = stats.last_tls_failure.expect("a reason");
    assert_eq!(
        why,
        format!("TLS to {addr}: certificate not valid for 127.0.0.1"),
        "{why}"
    );
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn tls_server_signed_by_an_untrusted_ca_is_refused() {
    // RFC 3261 section 26.2.1 / RFC 5922 section 7: the server's chain must lead to a CA the
    // client trusts.
    common::init_tracing();
    let served = certs::make("untrusted-server", &["example.test", "127.0.0.1"]);
    let trusted = certs::make("untrusted-client", &["example.test", "127.0.0.1"]);
    let (server, addr) = tls_server(&served).await;
    let client = tls_client(&trusted.ca).await;
    let mut rng = SeededRng::new([5; 32]);
    let responses = bounded(
        "send",
        client.request(options(addr, &mut rng), tls_target(addr)),
    )
    .await
    .expect("sent");
    let result = bounded("final", responses.final_response()).await;
    assert_eq!(result.unwrap_err(), RequestError::Transport);
    let why = client.driver_stats().last_tls_failure.expect("a reason");
    assert!(why.contains("certificate not trusted"), "{why}");
    client.shutdown().await;
    server.shutdown().await;
}

#[tokio::test]
async fn tls_listener_without_a_certificate_is_an_error() {
    // RFC 3261 section 26.3.1: a TLS server needs a certificate; binding one without is a
    // configuration error, not a listener that fails every handshake.
    let err = Driver::bind(["tls:127.0.0.1:0".parse::<ListenSpec>().unwrap()])
        .await
        .expect_err("no certificate");
    match err {
        Error::Bind { spec, source } => {
            assert_eq!(spec.transport, Transport::Tls);
            assert!(source.to_string().contains("certificate"), "{source}");
        }
        other => panic!("{other:?}"),
    }
}
