//! `Driver::run_with`: the application's own inputs wake the loop and reach the transaction
//! user and the endpoint, the way a registrar's location store answers come back.

mod common;

use std::time::Instant;

use common::{bounded, init_tracing, options, Answer200};
use sip_core::{Endpoint, Event, OwnedMessage, ResponseBuilder, SeededRng, TransactionUser};
use sip_core::{ServerTxId, Transport};
use sip_driver_tokio::{Driver, ListenSpec};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

/// Answers each request later: a task it starts sends the answer back through the inbox,
/// as a query to a database would.
struct Deferred {
    inbox: mpsc::Sender<(ServerTxId, OwnedMessage)>,
    rng: SeededRng,
    answered: usize,
}

impl TransactionUser for Deferred {
    fn handle_event(&mut self, _now: Instant, event: Event, _endpoint: &mut Endpoint) {
        if let Event::Request { tx, request, .. } = event {
            let answer = ResponseBuilder::from_view(&request.view(), 202)
                .build(&mut self.rng)
                .unwrap();
            let inbox = self.inbox.clone();
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                let _ = inbox.send((tx, answer)).await;
            });
        }
    }
}

fn answer(
    tu: &mut Deferred,
    now: Instant,
    (tx, response): (ServerTxId, OwnedMessage),
    ep: &mut Endpoint,
) {
    ep.send_response(now, tx, &response).unwrap();
    tu.answered += 1;
}

async fn exchange(peer: &UdpSocket, server: std::net::SocketAddr, call_id: &str) -> String {
    let peer_addr = peer.local_addr().unwrap();
    peer.send_to(
        options("UDP", peer_addr, server, call_id).as_bytes(),
        server,
    )
    .await
    .unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, _) = bounded("response", peer.recv_from(&mut buf)).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

// The driver's own contract (no RFC rule): inputs from outside the loop are handed to the
// transaction user with the endpoint, and what it sends then goes out.
#[tokio::test]
async fn run_with_hands_inbox_inputs_to_the_transaction_user_and_endpoint() {
    init_tracing();
    let spec: ListenSpec = "udp:127.0.0.1:0".parse().unwrap();
    let driver = Driver::bind([spec]).await.unwrap();
    let server = driver.local_addr(Transport::Udp).unwrap();
    let stop = driver.shutdown_handle();
    let (tx, inbox) = mpsc::channel(8);
    let tu = Deferred {
        inbox: tx,
        rng: SeededRng::new([3; 32]),
        answered: 0,
    };
    let run = tokio::spawn(driver.run_with(tu, inbox, answer));

    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..3 {
        let response = exchange(&peer, server, &format!("deferred-{i}")).await;
        assert!(response.starts_with("SIP/2.0 202 "), "{response}");
        assert!(
            response.contains(&format!("Call-ID: deferred-{i}\r\n")),
            "{response}"
        );
    }

    stop.shutdown();
    let done = bounded("driver stops", run).await.unwrap().unwrap();
    assert_eq!(done.tu.answered, 3);
}

// The driver's own contract: an inbox whose senders are all gone does not stop the driver;
// only the shutdown handle does.
#[tokio::test]
async fn run_with_goes_on_when_the_inbox_closes() {
    init_tracing();
    let spec: ListenSpec = "udp:127.0.0.1:0".parse().unwrap();
    let driver = Driver::bind([spec]).await.unwrap();
    let server = driver.local_addr(Transport::Udp).unwrap();
    let stop = driver.shutdown_handle();
    let (tx, inbox) = mpsc::channel::<()>(1);
    drop(tx);
    let run = tokio::spawn(driver.run_with(Answer200::default(), inbox, |_, _, (), _| {}));

    let peer = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for i in 0..2 {
        let response = exchange(&peer, server, &format!("closed-{i}")).await;
        assert!(response.starts_with("SIP/2.0 200 "), "{response}");
    }

    stop.shutdown();
    let done = bounded("driver stops", run).await.unwrap().unwrap();
    assert_eq!(done.tu.answered, 2);
}
