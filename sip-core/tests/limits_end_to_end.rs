//! The endpoint's limits hold end to end: a message accepted under the configured
//! [`Limits`] can be typed again by the transaction user with the same limits.

use std::net::SocketAddr;
use std::time::Instant;

use sip_core::ua::{UaConfig, UserAgent};
use sip_core::{
    Config, Endpoint, Event, Limits, Listener, Method, RequestBuilder, SeededRng, TransactionUser,
    Transport,
};

fn local() -> SocketAddr {
    "127.0.0.2:5060".parse().unwrap()
}

fn peer() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}

/// An OPTIONS with `extra` extension headers after its own seven. Written by hand past the
/// builder, which refuses (like the default limits) more than 256 header lines.
fn options_with_headers(extra: usize) -> Vec<u8> {
    let head = RequestBuilder::new(Method::Options, "sip:sipd@127.0.0.2:5060")
        .from("<sip:alice@127.0.0.1>")
        .to("<sip:sipd@127.0.0.2>")
        .via("UDP", "127.0.0.1:5060")
        .build(&mut SeededRng::new([1; 32]))
        .unwrap();
    let text = String::from_utf8(head.as_bytes().to_vec()).unwrap();
    let (top, _) = text.split_once("Content-Length").unwrap();
    let mut out = top.to_owned();
    for i in 0..extra {
        out.push_str(&format!("X-Filler: v{i}\r\n"));
    }
    out.push_str("Content-Length: 0\r\n\r\n");
    out.into_bytes()
}

// RFC 3261 section 8.2 (every request is answered) with Config::limits: a 300-header
// request accepted under max_headers = 512 reaches the UAS core, which types it with the
// same limits and answers it (it typed with the default 256 before, failed, and left the
// request unanswered).
#[test]
fn request_accepted_under_configured_limits_is_typed_with_them_and_answered() {
    let limits = Limits {
        max_headers: 512,
        ..Limits::DEFAULT
    };
    let config = Config {
        listeners: vec![Listener::new(Transport::Udp, local())],
        limits,
        ..Config::default()
    };
    let now = Instant::now();
    let mut ep = Endpoint::new(config, [2; 32]);
    let mut ua = UserAgent::new(UaConfig::new("<sip:sipd@127.0.0.2:5060>"), [3; 32]);
    let request = options_with_headers(300);
    assert!(
        sip_core::Message::parse(&request).is_err(),
        "the default limits refuse this request"
    );
    ep.handle_datagram(now, local(), peer(), &request);
    let mut events = Vec::new();
    while let Some(e) = ep.poll_event() {
        events.push(e);
    }
    let Some(Event::Request { request, .. }) = events.first() else {
        panic!("no request event: {events:?}");
    };
    assert_eq!(request.limits(), limits);
    let typed = request.message().expect("typed with the endpoint's limits");
    assert_eq!(typed.view().header_count(), 307);
    for e in events {
        ua.handle_event(now, e, &mut ep);
    }
    let mut out = Vec::new();
    let mut statuses = Vec::new();
    while let Some(t) = ep.poll_transmit(&mut out) {
        assert_eq!(t.remote, peer());
        statuses.push(sip_core::MessageView::parse(&out).unwrap().status());
    }
    assert_eq!(statuses, [Some(200)]);
}
