//! The async client API against a second driver instance acting as server, on loopback.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{bounded, init_tracing};
use sip_core::{
    Config, Method, OwnedMessage, RequestBuilder, SeededRng, Target, Timers, Transport,
};
use sip_driver_tokio::{Client, Driver, Incoming, ListenSpec, RequestError};

async fn start(specs: &[&str]) -> (Client, Incoming) {
    init_tracing();
    let specs: Vec<ListenSpec> = specs.iter().map(|s| s.parse().unwrap()).collect();
    Driver::bind(specs).await.unwrap().start()
}

fn request(method: Method<'_>, to: SocketAddr, seq: u32) -> OwnedMessage {
    let uri = format!("sip:bob@{to}");
    RequestBuilder::new(method, &uri)
        .from("<sip:alice@127.0.0.1>")
        .to(&format!("<{uri}>"))
        .contact("<sip:alice@127.0.0.1>")
        .cseq(seq)
        .build(&mut SeededRng::new([seq as u8; 32]))
        .unwrap()
}

/// A server that answers OPTIONS 200 and INVITE 180 then `invite_final` (or nothing when
/// `None`, leaving the INVITE to be cancelled).
fn serve(mut incoming: Incoming, invite_final: Option<u16>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let mut seen = 0;
        let mut held = Vec::new();
        while let Some((req, mut responder)) = incoming.next().await {
            seen += 1;
            match req.view().method() {
                Some(Method::Invite) => {
                    responder.respond_status(180).await.unwrap();
                    match invite_final {
                        Some(code) => responder.respond_status(code).await.unwrap(),
                        None => held.push(responder),
                    }
                }
                _ => responder.respond_status(200).await.unwrap(),
            }
        }
        seen
    })
}

#[tokio::test]
async fn options_over_udp_gets_200() {
    let (server, incoming) = start(&["udp:127.0.0.1:0"]).await;
    let served = serve(incoming, Some(486));
    let (client, _incoming) = start(&["udp:127.0.0.1:0"]).await;
    let to = server.local_addr(Transport::Udp).unwrap();
    let responses = bounded(
        "request",
        client.request(request(Method::Options, to, 1), Target::udp(to)),
    )
    .await
    .unwrap();
    let ok = bounded("final", responses.final_response()).await.unwrap();
    assert_eq!(ok.view().status(), Some(200));
    bounded("client shutdown", client.shutdown()).await;
    bounded("server shutdown", server.shutdown()).await;
    assert_eq!(bounded("server task", served).await.unwrap(), 1);
}

#[tokio::test]
async fn options_over_tcp_gets_200() {
    let (server, incoming) = start(&["tcp:127.0.0.1:0"]).await;
    serve(incoming, None);
    let (client, _incoming) = start(&["tcp:127.0.0.1:0"]).await;
    let to = server.local_addr(Transport::Tcp).unwrap();
    for seq in 1..=3 {
        let responses = bounded(
            "request",
            client.request(request(Method::Options, to, seq), Target::tcp(to)),
        )
        .await
        .unwrap();
        let ok = bounded("final", responses.final_response()).await.unwrap();
        assert_eq!(ok.view().status(), Some(200));
    }
    bounded("client shutdown", client.shutdown()).await;
    bounded("server shutdown", server.shutdown()).await;
}

#[tokio::test]
async fn invite_answered_486_gives_provisional_then_final() {
    let (server, incoming) = start(&["udp:127.0.0.1:0"]).await;
    serve(incoming, Some(486));
    let (client, _incoming) = start(&["udp:127.0.0.1:0"]).await;
    let to = server.local_addr(Transport::Udp).unwrap();
    let mut responses = bounded(
        "request",
        client.request(request(Method::Invite, to, 1), Target::udp(to)),
    )
    .await
    .unwrap();
    let mut codes = Vec::new();
    while let Some(r) = bounded("response", responses.next()).await {
        codes.push(r.unwrap().view().status().unwrap());
    }
    // A 100 Trying may come first when the answer is slow.
    codes.retain(|c| *c != 100);
    assert_eq!(codes, [180, 486]);
    assert!(
        responses.next().await.is_none(),
        "the stream ends after the final"
    );
    bounded("client shutdown", client.shutdown()).await;
    bounded("server shutdown", server.shutdown()).await;
}

#[tokio::test]
async fn invite_200_then_ack() {
    let (server, incoming) = start(&["udp:127.0.0.1:0"]).await;
    serve(incoming, Some(200));
    let (client, _incoming) = start(&["udp:127.0.0.1:0"]).await;
    let to = server.local_addr(Transport::Udp).unwrap();
    let invite = request(Method::Invite, to, 1);
    let responses = bounded("request", client.request(invite.clone(), Target::udp(to)))
        .await
        .unwrap();
    let ok = bounded("final", responses.final_response()).await.unwrap();
    assert_eq!(ok.view().status(), Some(200));
    // The ACK: same Call-ID, From, CSeq number, the To of the 2xx.
    let v = invite.view();
    let okv = ok.view();
    let h = |m: &sip_core::MessageView<'_>, n| m.header(n).unwrap().to_owned();
    let ack = RequestBuilder::new(Method::Ack, &format!("sip:bob@{to}"))
        .from(&h(&v, sip_core::HeaderName::From))
        .to(&h(&okv, sip_core::HeaderName::To))
        .call_id(&h(&v, sip_core::HeaderName::CallId))
        .cseq(1)
        .build(&mut SeededRng::new([3; 32]))
        .unwrap();
    bounded("ack", client.ack(ack, Target::udp(to)))
        .await
        .unwrap();
    bounded("client shutdown", client.shutdown()).await;
    bounded("server shutdown", server.shutdown()).await;
}

#[tokio::test]
async fn cancelled_invite_ends_487() {
    let (server, incoming) = start(&["udp:127.0.0.1:0"]).await;
    serve(incoming, None);
    let (client, _incoming) = start(&["udp:127.0.0.1:0"]).await;
    let to = server.local_addr(Transport::Udp).unwrap();
    let mut responses = bounded(
        "request",
        client.request(request(Method::Invite, to, 1), Target::udp(to)),
    )
    .await
    .unwrap();
    loop {
        let r = bounded("provisional", responses.next())
            .await
            .unwrap()
            .unwrap();
        if r.view().status() == Some(180) {
            break;
        }
    }
    bounded("cancel", responses.cancel()).await.unwrap();
    let last = bounded("final", responses.final_response()).await.unwrap();
    assert_eq!(last.view().status(), Some(487));
    bounded("client shutdown", client.shutdown()).await;
    bounded("server shutdown", server.shutdown()).await;
}

#[tokio::test]
async fn unanswered_request_times_out() {
    init_tracing();
    // A UDP socket that reads nothing; short timers so timer F fires in 640 ms.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = silent.local_addr().unwrap();
    let config = Config {
        timers: Timers {
            t1: Duration::from_millis(10),
            t2: Duration::from_millis(40),
            ..Timers::RFC
        },
        ..Config::default()
    };
    let (client, _incoming) =
        Driver::bind_with_config(["udp:127.0.0.1:0".parse().unwrap()], config)
            .await
            .unwrap()
            .start();
    let responses = client
        .request(request(Method::Options, to, 1), Target::udp(to))
        .await
        .unwrap();
    let r = bounded("timeout", responses.final_response()).await;
    assert_eq!(r.unwrap_err(), RequestError::Timeout);
    bounded("client shutdown", client.shutdown()).await;
}

#[tokio::test]
async fn refused_connection_is_a_transport_error() {
    init_tracing();
    // A port nobody listens on.
    let to = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let (client, _incoming) = start(&["tcp:127.0.0.1:0"]).await;
    let responses = client
        .request(request(Method::Options, to, 1), Target::tcp(to))
        .await
        .unwrap();
    let r = bounded("transport error", responses.final_response()).await;
    assert_eq!(r.unwrap_err(), RequestError::Transport);
    bounded("client shutdown", client.shutdown()).await;
}

#[tokio::test]
async fn dropped_responder_answers_500_and_no_listener_503() {
    let (server, mut incoming) = start(&["udp:127.0.0.1:0"]).await;
    let (client, _incoming) = start(&["udp:127.0.0.1:0"]).await;
    let to = server.local_addr(Transport::Udp).unwrap();
    let responses = client
        .request(request(Method::Options, to, 1), Target::udp(to))
        .await
        .unwrap();
    let (_req, responder) = bounded("incoming", incoming.next()).await.unwrap();
    drop(responder);
    let r = bounded("final", responses.final_response()).await.unwrap();
    assert_eq!(r.view().status(), Some(500));
    drop(incoming);
    let responses = client
        .request(request(Method::Options, to, 2), Target::udp(to))
        .await
        .unwrap();
    let r = bounded("final", responses.final_response()).await.unwrap();
    assert_eq!(r.view().status(), Some(503));
    bounded("client shutdown", client.shutdown()).await;
    bounded("server shutdown", server.shutdown()).await;
}

#[tokio::test]
async fn dropping_every_handle_stops_the_driver() {
    init_tracing();
    let spec: ListenSpec = "udp:127.0.0.1:0".parse().unwrap();
    let (client, incoming) = Driver::bind([spec]).await.unwrap().start();
    let addr = client.local_addr(Transport::Udp).unwrap();
    drop(client);
    drop(incoming);
    // The socket is closed once the driver has stopped: the port can be bound again.
    bounded("port freed", async {
        loop {
            if std::net::UdpSocket::bind(addr).is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn requests_after_shutdown_fail() {
    let (client, _incoming) = start(&["udp:127.0.0.1:0"]).await;
    bounded("shutdown", client.shutdown()).await;
    let to = client.local_addr(Transport::Udp).unwrap();
    let r = client
        .request(request(Method::Options, to, 1), Target::udp(to))
        .await;
    assert!(matches!(r, Err(sip_driver_tokio::Error::Stopped)), "{r:?}");
}

#[tokio::test]
async fn retransmitted_2xx_is_acked_again() {
    let (client, _incoming) = start(&["udp:127.0.0.1:0"]).await;
    // A plain UDP socket plays the UAS.
    let uas = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = uas.local_addr().unwrap();
    let invite = request(Method::Invite, to, 1);
    let responses = client
        .request(invite.clone(), Target::udp(to))
        .await
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let (n, from) = bounded("INVITE", uas.recv_from(&mut buf)).await.unwrap();
    let received = OwnedMessage::parse(&buf[..n]).unwrap();
    assert_eq!(received.view().method(), Some(Method::Invite));
    let ok = sip_core::ResponseBuilder::from_view(&received.view(), 200)
        .to_tag("uas1")
        .build(&mut SeededRng::new([4; 32]))
        .unwrap();
    uas.send_to(ok.as_bytes(), from).await.unwrap();
    let final_ = bounded("final", responses.final_response()).await.unwrap();
    assert_eq!(final_.view().status(), Some(200));
    let h = |m: &OwnedMessage, n| m.view().header(n).unwrap().to_owned();
    let ack = RequestBuilder::new(Method::Ack, &format!("sip:bob@{to}"))
        .from(&h(&invite, sip_core::HeaderName::From))
        .to(&h(&final_, sip_core::HeaderName::To))
        .call_id(&h(&invite, sip_core::HeaderName::CallId))
        .cseq(1)
        .build(&mut SeededRng::new([5; 32]))
        .unwrap();
    client.ack(ack, Target::udp(to)).await.unwrap();
    bounded("ACK", next_ack(&uas, &mut buf)).await;
    // The 2xx again, as if the ACK were lost: the ACK comes again.
    uas.send_to(ok.as_bytes(), from).await.unwrap();
    bounded("ACK", next_ack(&uas, &mut buf)).await;
    bounded("client shutdown", client.shutdown()).await;
}

async fn next_ack(uas: &tokio::net::UdpSocket, buf: &mut [u8]) {
    loop {
        let (n, _) = uas.recv_from(buf).await.unwrap();
        if buf[..n].starts_with(b"ACK ") {
            return;
        }
    }
}

/// Reads datagrams until one whose start line begins with `prefix`; returns it and its
/// sender.
async fn next_request(
    uas: &tokio::net::UdpSocket,
    buf: &mut [u8],
    prefix: &str,
) -> (OwnedMessage, SocketAddr) {
    loop {
        let (n, from) = uas.recv_from(buf).await.unwrap();
        if buf[..n].starts_with(prefix.as_bytes()) {
            return (OwnedMessage::parse(&buf[..n]).unwrap(), from);
        }
    }
}

#[tokio::test]
async fn rfc3261_9_1_a_2xx_crossing_timer_c_cancel_is_acked_and_ended_with_bye() {
    // RFC 3261 9.1, 13.2.2.4 and 15: the application was told the INVITE timed out (timer
    // C) and the driver sent CANCEL; a 2xx that still arrives gets its ACK and a BYE.
    init_tracing();
    let config = Config {
        timers: Timers {
            c: Duration::from_millis(300),
            ..Timers::RFC
        },
        ..Config::default()
    };
    let (client, _incoming) =
        Driver::bind_with_config(["udp:127.0.0.1:0".parse().unwrap()], config)
            .await
            .unwrap()
            .start();
    // A plain UDP socket plays the UAS: 180, then nothing until the CANCEL, then 200.
    let uas = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = uas.local_addr().unwrap();
    let invite = request(Method::Invite, to, 7);
    let responses = client
        .request(invite.clone(), Target::udp(to))
        .await
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let (received, from) = bounded("INVITE", next_request(&uas, &mut buf, "INVITE ")).await;
    let ringing = sip_core::ResponseBuilder::from_view(&received.view(), 180)
        .to_tag("uas1")
        .build(&mut SeededRng::new([6; 32]))
        .unwrap();
    uas.send_to(ringing.as_bytes(), from).await.unwrap();
    let r = bounded("timeout", responses.final_response()).await;
    assert_eq!(r.unwrap_err(), RequestError::Timeout);
    let (cancel, _) = bounded("CANCEL", next_request(&uas, &mut buf, "CANCEL ")).await;
    let h = |m: &OwnedMessage, n| m.view().header(n).unwrap().to_owned();
    assert_eq!(
        h(&cancel, sip_core::HeaderName::CallId),
        h(&received, sip_core::HeaderName::CallId)
    );
    // The 2xx crosses the CANCEL, with a Contact naming where in-dialog requests go and the
    // route set of two proxies (section 12.1.2: the UAC reverses it).
    let contact = format!("<sip:uas@{to}>");
    let ok = sip_core::ResponseBuilder::from_view(&received.view(), 200)
        .to_tag("uas1")
        .header("Contact", &contact)
        .header("Record-Route", "<sip:p2.invalid;lr>, <sip:p1.invalid;lr>")
        .build(&mut SeededRng::new([7; 32]))
        .unwrap();
    // First a 200 that matches no transaction and carries the INVITE's Call-ID and CSeq
    // number but the method CANCEL (as a late 200 to the CANCEL would): it is no 2xx to the
    // INVITE, so it gets neither ACK nor BYE (the first ACK below is the real one's).
    let stray = {
        let forged = sip_core::ResponseBuilder::from_view(&received.view(), 200)
            .to_tag("forged")
            .build(&mut SeededRng::new([9; 32]))
            .unwrap();
        let via = h(&received, sip_core::HeaderName::Via);
        let branch = received
            .message()
            .unwrap()
            .top_via()
            .unwrap()
            .branch()
            .unwrap()
            .to_owned();
        let mut e = forged.edit();
        e.set("CSeq", "7 CANCEL").unwrap();
        e.set("Via", &via.replace(&branch, &format!("{branch}x")))
            .unwrap();
        e.finish().unwrap()
    };
    uas.send_to(stray.as_bytes(), from).await.unwrap();
    uas.send_to(ok.as_bytes(), from).await.unwrap();
    let (ack, _) = bounded("ACK", next_request(&uas, &mut buf, "ACK ")).await;
    let ack_msg = ack.message().unwrap();
    assert_eq!(ack_msg.cseq().unwrap().seq, 7);
    assert_eq!(ack_msg.to().unwrap().tag(), Some("uas1"));
    assert!(ack
        .as_bytes()
        .starts_with(format!("ACK sip:uas@{to} ").as_bytes()));
    let (bye, bye_from) = bounded("BYE", next_request(&uas, &mut buf, "BYE ")).await;
    let bye_msg = bye.message().unwrap();
    assert_eq!(
        h(&bye, sip_core::HeaderName::CallId),
        h(&received, sip_core::HeaderName::CallId)
    );
    assert_eq!(bye_msg.to().unwrap().tag(), Some("uas1"));
    assert!(bye_msg.cseq().unwrap().seq > 7);
    assert!(bye
        .as_bytes()
        .starts_with(format!("BYE sip:uas@{to} ").as_bytes()));
    let routes: Vec<&str> = bye.view().header_all(sip_core::HeaderName::Route).collect();
    assert_eq!(routes, ["<sip:p1.invalid;lr>", "<sip:p2.invalid;lr>"]);
    let bye_ok = sip_core::ResponseBuilder::from_view(&bye.view(), 200)
        .build(&mut SeededRng::new([8; 32]))
        .unwrap();
    uas.send_to(bye_ok.as_bytes(), bye_from).await.unwrap();
    bounded("client shutdown", client.shutdown()).await;
}

#[tokio::test]
async fn request_with_timeout_ends_with_timeout_before_timer_f() {
    // The application's own deadline, far shorter than timer F (32 s with the RFC timers;
    // each step here is bounded by 10 s).
    init_tracing();
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = silent.local_addr().unwrap();
    let (client, _incoming) = start(&["udp:127.0.0.1:0"]).await;
    let responses = client
        .request_with_timeout(
            request(Method::Options, to, 1),
            Target::udp(to),
            Duration::from_millis(200),
        )
        .await
        .unwrap();
    let r = bounded("timeout", responses.final_response()).await;
    assert_eq!(r.unwrap_err(), RequestError::Timeout);
    bounded("client shutdown", client.shutdown()).await;
}

#[tokio::test]
async fn rfc3261_9_1_invite_past_its_deadline_is_cancelled() {
    // RFC 3261 9.1: an INVITE the application stops waiting for is cancelled once a
    // provisional response has come.
    init_tracing();
    let (client, _incoming) = start(&["udp:127.0.0.1:0"]).await;
    let uas = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let to = uas.local_addr().unwrap();
    let mut responses = client
        .request_with_timeout(
            request(Method::Invite, to, 3),
            Target::udp(to),
            Duration::from_millis(300),
        )
        .await
        .unwrap();
    let mut buf = vec![0u8; 65535];
    let (invite, from) = bounded("INVITE", next_request(&uas, &mut buf, "INVITE ")).await;
    let ringing = sip_core::ResponseBuilder::from_view(&invite.view(), 180)
        .to_tag("uas1")
        .build(&mut SeededRng::new([6; 32]))
        .unwrap();
    uas.send_to(ringing.as_bytes(), from).await.unwrap();
    let first = bounded("180", responses.next()).await.unwrap().unwrap();
    assert_eq!(first.view().status(), Some(180));
    let r = bounded("timeout", responses.final_response()).await;
    assert_eq!(r.unwrap_err(), RequestError::Timeout);
    let (cancel, _) = bounded("CANCEL", next_request(&uas, &mut buf, "CANCEL ")).await;
    let branch = |m: &OwnedMessage| {
        m.message()
            .unwrap()
            .top_via()
            .unwrap()
            .branch()
            .unwrap()
            .to_owned()
    };
    assert_eq!(branch(&cancel), branch(&invite));
    bounded("client shutdown", client.shutdown()).await;
}

// Linux and Android report ICMP errors on unconnected UDP sockets (IP_RECVERR); elsewhere
// the transaction ends by timer F as before.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[tokio::test]
async fn rfc3261_18_4_udp_request_to_a_closed_port_is_a_transport_error() {
    // RFC 3261 18.4 and 17.1.4: the ICMP port unreachable ends the client transaction,
    // long before timer F (32 s; the wait is bounded by 10 s).
    init_tracing();
    let free = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let (client, _incoming) = start(&["udp:127.0.0.1:0"]).await;
    let responses = client
        .request(request(Method::Options, free, 1), Target::udp(free))
        .await
        .unwrap();
    let r = bounded("transport error", responses.final_response()).await;
    assert_eq!(r.unwrap_err(), RequestError::Transport);
    bounded("client shutdown", client.shutdown()).await;
}

// Linux refuses a datagram to port 0 at once (EINVAL).
#[cfg(any(target_os = "linux", target_os = "android"))]
#[tokio::test]
async fn rfc3261_18_4_udp_send_the_system_refuses_is_a_transport_error() {
    // RFC 3261 18.4 and 17.1.4: a send that fails for good ends the transaction.
    init_tracing();
    let (client, _incoming) = start(&["udp:127.0.0.1:0"]).await;
    let nowhere: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let responses = client
        .request(request(Method::Options, nowhere, 1), Target::udp(nowhere))
        .await
        .unwrap();
    let r = bounded("transport error", responses.final_response()).await;
    assert_eq!(r.unwrap_err(), RequestError::Transport);
    bounded("client shutdown", client.shutdown()).await;
}
