//! The UAS core of `sip_core::ua` run by `Driver::run` (what the sipd example does), driven
//! by the async client API (what the sipc example does): OPTIONS, MESSAGE, and a call with
//! INVITE, ACK and BYE, over UDP and TCP.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::{bounded, init_tracing};
use sip_core::message::Contact;
use sip_core::ua::{UaConfig, UserAgent};
use sip_core::{HeaderName, Method, OwnedMessage, RequestBuilder, SeededRng, Target};
use sip_driver_tokio::{Client, Driver, ListenSpec};

async fn uas() -> (
    Vec<sip_core::Listener>,
    sip_driver_tokio::Shutdown,
    tokio::task::JoinHandle<Result<sip_driver_tokio::Finished<UserAgent>, sip_driver_tokio::Error>>,
) {
    init_tracing();
    let specs: [ListenSpec; 2] = [
        "udp:127.0.0.1:0".parse().unwrap(),
        "tcp:127.0.0.1:0".parse().unwrap(),
    ];
    let driver = Driver::bind(specs).await.unwrap();
    let listeners = driver.listeners().to_vec();
    let contact = format!("<sip:uas@{}>", listeners[0].addr);
    let mut config = UaConfig::new(&contact);
    config.ring = Duration::from_millis(50);
    let stop = driver.shutdown_handle();
    let task = tokio::spawn(driver.run(UserAgent::new(config, [5; 32])));
    (listeners, stop, task)
}

async fn final_of(client: &Client, req: OwnedMessage, target: Target) -> OwnedMessage {
    let responses = bounded("request", client.request(req, target))
        .await
        .unwrap();
    bounded("final", responses.final_response()).await.unwrap()
}

fn builder(method: Method<'_>, uri: &str, seq: u32) -> RequestBuilder {
    RequestBuilder::new(method, uri)
        .from("<sip:uac@127.0.0.1>")
        .to(&format!("<{uri}>"))
        .cseq(seq)
}

async fn call(client: &Client, to: SocketAddr, target: Target, rng: &mut SeededRng) {
    let uri = format!("sip:bob@{to}");
    let invite = builder(Method::Invite, &uri, 1)
        .contact("<sip:uac@127.0.0.1>")
        .body("application/sdp", b"v=0\r\n")
        .build(rng)
        .unwrap();
    let ok = final_of(client, invite.clone(), target).await;
    assert_eq!(ok.view().status(), Some(200));
    let remote = match ok.message().unwrap().contacts().next() {
        Some(Contact::Addr(a)) => a.uri.to_string(),
        other => panic!("no Contact in the 2xx: {other:?}"),
    };
    let h = |m: &OwnedMessage, n| m.view().header(n).unwrap().to_owned();
    let (from, to_tagged, call_id) = (
        h(&invite, HeaderName::From),
        h(&ok, HeaderName::To),
        h(&invite, HeaderName::CallId),
    );
    let ack = RequestBuilder::new(Method::Ack, &remote)
        .from(&from)
        .to(&to_tagged)
        .call_id(&call_id)
        .cseq(1)
        .build(rng)
        .unwrap();
    bounded("ack", client.ack(ack, target)).await.unwrap();
    let bye = RequestBuilder::new(Method::Bye, &remote)
        .from(&from)
        .to(&to_tagged)
        .call_id(&call_id)
        .cseq(2)
        .build(rng)
        .unwrap();
    assert_eq!(
        final_of(client, bye, target).await.view().status(),
        Some(200)
    );
}

#[tokio::test]
async fn ua_core_answers_options_message_and_calls() {
    let (listeners, stop, task) = uas().await;
    let (client, _incoming) = Driver::bind([
        "udp:127.0.0.1:0".parse::<ListenSpec>().unwrap(),
        "tcp:127.0.0.1:0".parse().unwrap(),
    ])
    .await
    .unwrap()
    .start();
    let mut rng = SeededRng::new([8; 32]);
    for l in &listeners {
        let target = Target {
            transport: l.transport,
            addr: l.addr,
        };
        let uri = format!("sip:bob@{}", l.addr);
        let options = builder(Method::Options, &uri, 1).build(&mut rng).unwrap();
        assert_eq!(
            final_of(&client, options, target).await.view().status(),
            Some(200)
        );
        let message = builder(Method::Message, &uri, 1)
            .body("text/plain", b"hello")
            .build(&mut rng)
            .unwrap();
        assert_eq!(
            final_of(&client, message, target).await.view().status(),
            Some(200)
        );
        call(&client, l.addr, target, &mut rng).await;
    }
    bounded("client shutdown", client.shutdown()).await;
    stop.shutdown();
    let done = bounded("uas shutdown", task).await.unwrap().unwrap();
    let s = done.tu.stats();
    assert_eq!((s.options, s.messages), (2, 2));
    assert_eq!((s.calls_answered, s.calls_ended), (2, 2));
    assert_eq!(s.ack_timeouts, 0);
    assert_eq!(done.tu.dialogs(), 0);
}
