//! `Client::register` against registrars on loopback: one written here on the driver's own
//! async API, and SIPp's challenging registrar driven through `sipc register`. Every step
//! is bounded.

mod common;

use std::net::SocketAddr;

use common::bounded;
use sip_core::registration::{Failure, RegistrationConfig, RegistrationEvent, RegistrationState};
use sip_core::{HeaderName, OwnedMessage, ResponseBuilder, SeededRng, Target, Transport};
use sip_driver_tokio::{os_seed, Client, Driver};
use tokio::sync::mpsc;

/// A registrar on the driver's async API: the first `fail_first` REGISTERs get 503 with
/// Retry-After: 1, the others 200 granting `granted` seconds (removals echo the Contact).
/// Each REGISTER is reported on the channel.
async fn registrar(
    granted: u32,
    fail_first: usize,
) -> (Client, SocketAddr, mpsc::UnboundedReceiver<OwnedMessage>) {
    let (server, mut incoming) = Driver::bind(["udp:127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap()
        .start();
    let addr = server.local_addr(Transport::Udp).unwrap();
    let (seen_tx, seen) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut rng = SeededRng::new(os_seed().unwrap());
        let mut n = 0;
        while let Some((request, mut responder)) = incoming.next().await {
            n += 1;
            let view = request.view();
            let contact = view.header(HeaderName::Contact).unwrap_or("").to_owned();
            let removal = view.header(HeaderName::Expires).map(str::trim) == Some("0");
            let granted = if removal {
                contact
            } else {
                format!("{contact};expires={granted}")
            };
            let response = if n <= fail_first {
                ResponseBuilder::from_view(&view, 503)
                    .header("Retry-After", "1")
                    .build(&mut rng)
            } else {
                ResponseBuilder::from_view(&view, 200)
                    .header("Contact", &granted)
                    .build(&mut rng)
            };
            let _ = responder.respond(response.unwrap()).await;
            let _ = seen_tx.send(request);
        }
    });
    (server, addr, seen)
}

async fn client() -> (Client, SocketAddr) {
    let (client, _incoming) = Driver::bind(["udp:127.0.0.1:0".parse().unwrap()])
        .await
        .unwrap()
        .start();
    let me = client.local_addr(Transport::Udp).unwrap();
    (client, me)
}

fn config(registrar: SocketAddr, me: SocketAddr) -> RegistrationConfig {
    RegistrationConfig::new(
        &format!("sip:{registrar}"),
        "sip:alice@example.com",
        &format!("<sip:alice@{me}>"),
    )
}

fn expires(m: &OwnedMessage) -> String {
    m.view()
        .header(HeaderName::Expires)
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn is_registered(s: &RegistrationState) -> bool {
    matches!(s, RegistrationState::Registered { .. })
}

/// The next REGISTER the registrar saw.
async fn next_seen(seen: &mut mpsc::UnboundedReceiver<OwnedMessage>) -> OwnedMessage {
    bounded("a REGISTER at the registrar", seen.recv())
        .await
        .expect("the registrar runs")
}

#[tokio::test]
// RFC 3261 10.2.4 and 10.2.2, through the tokio handle
async fn handle_refreshes_at_the_granted_expiry_then_unregisters() {
    // Asked 3600 s, granted 2 s: the refresh comes after 1 s, not after an hour.
    let (registrar, addr, mut seen) = registrar(2, 0).await;
    let (client, me) = client().await;
    let mut reg = client
        .register(config(addr, me), Target::udp(addr))
        .unwrap();
    let mut registered = 0;
    while registered < 2 {
        match bounded("registered, then refreshed", reg.next_event()).await {
            Some(RegistrationEvent::State(s)) if is_registered(&s) => registered += 1,
            Some(_) => {}
            None => panic!("the registration ended"),
        }
    }
    let done = bounded("unregistered", reg.unregister()).await;
    assert_eq!(done, RegistrationState::Unregistered { failure: None });
    let (first, refresh, removal) = (
        next_seen(&mut seen).await,
        next_seen(&mut seen).await,
        next_seen(&mut seen).await,
    );
    assert_eq!(expires(&first), "3600");
    assert_eq!(expires(&refresh), "3600");
    assert_eq!(expires(&removal), "0");
    let call_id = |m: &OwnedMessage| m.view().header(HeaderName::CallId).map(str::to_owned);
    assert_eq!(call_id(&first), call_id(&removal));
    client.shutdown().await;
    registrar.shutdown().await;
}

#[tokio::test]
// RFC 3261 21.5.4 and RFC 5626 4.5: a 503 is retried after its Retry-After, not given up
async fn handle_retries_a_503_after_its_retry_after() {
    let (registrar, addr, _seen) = registrar(600, 1).await;
    let (client, me) = client().await;
    let mut reg = client
        .register(config(addr, me), Target::udp(addr))
        .unwrap();
    let retrying = bounded(
        "retrying",
        reg.wait_for(|s| matches!(s, RegistrationState::Retrying { .. })),
    )
    .await;
    let Some(RegistrationState::Retrying { failure, .. }) = retrying else {
        panic!("{retrying:?}")
    };
    assert!(matches!(failure, Failure::Status { code: 503, .. }));
    let state = bounded("registered after the wait", reg.wait_for(is_registered)).await;
    assert!(state.as_ref().is_some_and(is_registered));
    client.shutdown().await;
    registrar.shutdown().await;
}

#[tokio::test]
// RFC 3261 10.2.2: a dropped handle removes its binding
async fn dropping_the_handle_removes_the_binding() {
    let (registrar, addr, mut seen) = registrar(600, 0).await;
    let (client, me) = client().await;
    let mut reg = client
        .register(config(addr, me), Target::udp(addr))
        .unwrap();
    bounded("registered", reg.wait_for(is_registered)).await;
    drop(reg);
    assert_eq!(expires(&next_seen(&mut seen).await), "3600");
    assert_eq!(expires(&next_seen(&mut seen).await), "0");
    client.shutdown().await;
    registrar.shutdown().await;
}

#[tokio::test]
// RFC 3261 10.2.2: shutting the client down removes its live bindings first
async fn client_shutdown_removes_the_live_bindings() {
    let (registrar, addr, mut seen) = registrar(600, 0).await;
    let (client, me) = client().await;
    let mut reg = client
        .register(config(addr, me), Target::udp(addr))
        .unwrap();
    bounded("registered", reg.wait_for(is_registered)).await;
    bounded("shutdown", client.shutdown()).await;
    assert_eq!(expires(&next_seen(&mut seen).await), "3600");
    assert_eq!(expires(&next_seen(&mut seen).await), "0");
    assert_eq!(
        reg.state(),
        RegistrationState::Unregistered { failure: None }
    );
    registrar.shutdown().await;
}
