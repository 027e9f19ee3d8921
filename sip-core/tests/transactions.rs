//! RFC 3261 section 17 (figures 5 to 8, with RFC 6026's Accepted state and timers L and M),
//! section 9 (CANCEL) and the transaction matching rules of sections 17.1.3, 17.2.3 and
//! 18.1.2, checked one transition and one timer at a time on the simulation's virtual clock.
//!
//! Each test drives a single endpoint: requests and responses of the peer are written by
//! hand and injected with `handle_datagram` (or `handle_stream` for TCP), and what the
//! endpoint sends is read from the simulation's log with the virtual time it was sent at.
//! Every timing assertion is exact: the clock only moves when the simulation steps to the
//! next deadline.

#[path = "support/sim.rs"]
mod sim;

use std::net::SocketAddr;
use std::time::Duration;

use sim::{NetConfig, Sim};
use sip_core::{
    ClientState, ClientTxId, Config, Event, FlowEvent, FlowId, IoRequest, Listener, Method,
    OwnedMessage, RequestBuilder, ResponseBuilder, SeededRng, SendError, ServerState, ServerTxId,
    Target, Timer, Transport, TxId,
};

/// The endpoint under test is always node 0 of a one-node simulation.
const NODE: usize = 0;
const UAC_ADDR: &str = "127.0.0.1:5060";
const UAS_ADDR: &str = "127.0.0.2:5060";

/// RFC 3261 table 4 defaults, in milliseconds.
const T1: u64 = 500;
const T2: u64 = 4_000;
const T4: u64 = 5_000;
const T1X64: u64 = 64 * T1;
/// Timer D for UDP (section 17.1.1.2: "at least 32 seconds").
const TIMER_D: u64 = 32_000;
/// Timer C (`Timers::c`, section 16.6 step 11: "greater than 3 minutes").
const TIMER_C: u64 = 181_000;
/// The 100 Trying delay of section 17.2.1.
const TRYING_DELAY: u64 = 200;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn ms_list(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|&n| ms(n)).collect()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// ---- simulation set-up ----

/// A one-node simulation: the endpoint listens on UDP at `at`.
fn one_node(at: &str) -> Sim {
    let mut sim = Sim::new(7, NetConfig::perfect());
    sim.add_node(at);
    sim
}

/// A one-node simulation whose endpoint listens on TCP and UDP at `at`.
fn one_node_tcp(at: &str) -> Sim {
    let mut sim = Sim::new(7, NetConfig::perfect());
    let mut config = Config::default();
    config
        .listeners
        .push(Listener::new(Transport::Tcp, addr(at)));
    sim.add_node_with(at, config);
    sim
}

/// Runs the simulation to `t` ms after its start.
fn at(sim: &mut Sim, t: u64) {
    let when = sim.start + ms(t);
    sim.run_until(when);
    assert_eq!(sim.elapsed(), ms(t));
}

/// The endpoint ends with no transaction and no timer.
fn assert_idle(sim: &mut Sim) {
    assert_eq!(sim.ep(NODE).transactions(), 0, "a transaction leaked");
    assert_eq!(sim.ep(NODE).poll_timeout(), None, "a timer leaked");
}

/// Times (since the start) at which the endpoint sent something whose start line begins
/// with `prefix`, over any transport.
fn log_times(sim: &Sim, prefix: &str) -> Vec<Duration> {
    sim.log
        .iter()
        .filter(|(_, p)| p.first_line().starts_with(prefix))
        .map(|(t, _)| *t - sim.start)
        .collect()
}

/// The last message the endpoint sent whose start line begins with `prefix`.
fn last_sent(sim: &Sim, prefix: &str) -> OwnedMessage {
    let (_, p) = sim
        .log
        .iter()
        .rev()
        .find(|(_, p)| p.first_line().starts_with(prefix))
        .unwrap_or_else(|| panic!("nothing starting with {prefix:?} was sent"));
    OwnedMessage::parse(&p.data).unwrap()
}

/// A datagram from `from` arrives at the endpoint now.
fn inject(sim: &mut Sim, from: &str, data: &[u8]) {
    let now = sim.now;
    let local = sim.nodes[NODE].addr;
    sim.nodes[NODE]
        .ep
        .handle_datagram(now, local, addr(from), data);
    sim.drain();
}

// ---- events ----

/// An event, reduced to what the tests compare.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Request {
        tx: ServerTxId,
        method: String,
        cancels: Option<ServerTxId>,
    },
    Ack {
        branch: String,
    },
    Response {
        tx: ClientTxId,
        code: u16,
    },
    Stray {
        code: u16,
    },
    Timeout(TxId, Timer),
    TransportError(TxId),
}

/// The endpoint's events so far, with the time (since the start) they were raised.
fn events(sim: &mut Sim) -> Vec<(Duration, Ev)> {
    let start = sim.start;
    sim.events(NODE)
        .into_iter()
        .map(|(t, e)| {
            let ev = match e {
                Event::Request {
                    tx,
                    request,
                    cancels,
                    ..
                } => Ev::Request {
                    tx,
                    method: request.view().method().unwrap().as_str().to_owned(),
                    cancels,
                },
                Event::Ack { request, .. } => Ev::Ack {
                    branch: request
                        .message()
                        .unwrap()
                        .top_via()
                        .unwrap()
                        .branch()
                        .unwrap_or("")
                        .to_owned(),
                },
                Event::Response { tx, response } => Ev::Response {
                    tx,
                    code: response.view().status().unwrap(),
                },
                Event::StrayResponse { response, .. } => Ev::Stray {
                    code: response.view().status().unwrap(),
                },
                Event::Timeout { tx, timer, .. } => Ev::Timeout(tx, timer),
                Event::TransportError { tx } => Ev::TransportError(tx),
                other => panic!("unexpected event {other:?}"),
            };
            (t - start, ev)
        })
        .collect()
}

// ---- the client side: the endpoint sends, the test plays the server ----

/// A request as the transaction user writes it (no Via: the endpoint adds its own).
fn request(method: Method<'_>) -> OwnedMessage {
    RequestBuilder::new(method, "sip:bob@127.0.0.2:5060")
        .from("<sip:alice@127.0.0.1>;tag=alice1")
        .to("<sip:bob@127.0.0.2>")
        .call_id("call-1@127.0.0.1")
        .cseq(1)
        .contact("<sip:alice@127.0.0.1:5060>")
        .build(&mut SeededRng::new([1; 32]))
        .unwrap()
}

/// A client simulation with `method` sent over UDP at time 0.
fn client(method: Method<'_>) -> (Sim, ClientTxId) {
    let mut sim = one_node(UAC_ADDR);
    let now = sim.now;
    let tx = sim
        .ep(NODE)
        .send_request(now, &request(method), Target::udp(addr(UAS_ADDR)))
        .unwrap();
    sim.drain();
    (sim, tx)
}

/// The response `code` to `req` as the server writes it (To tag `bobtag`).
fn response_for(req: &OwnedMessage, code: u16) -> Vec<u8> {
    let msg = req.message().unwrap();
    let resp = ResponseBuilder::new(&msg, code)
        .to_tag("bobtag")
        .build(&mut SeededRng::new([2; 32]))
        .unwrap();
    resp.as_bytes().to_vec()
}

/// The server answers the last request the endpoint sent that starts with `prefix`.
fn reply(sim: &mut Sim, prefix: &str, code: u16) {
    let req = last_sent(sim, prefix);
    let bytes = response_for(&req, code);
    inject(sim, UAS_ADDR, &bytes);
}

fn top_branch(msg: &OwnedMessage) -> String {
    msg.message()
        .unwrap()
        .top_via()
        .unwrap()
        .branch()
        .unwrap()
        .to_owned()
}

/// A client over TCP: the request is sent at time 0 and the connection comes up at once.
fn tcp_client(method: Method<'_>) -> (Sim, ClientTxId, FlowId) {
    let mut sim = one_node_tcp(UAC_ADDR);
    let now = sim.now;
    let tx = sim
        .ep(NODE)
        .send_request(now, &request(method), Target::tcp(addr(UAS_ADDR)))
        .unwrap();
    let Some(IoRequest::Connect {
        flow, transport, ..
    }) = sim.ep(NODE).poll_io()
    else {
        panic!("no connect request");
    };
    assert_eq!(transport, Transport::Tcp);
    let local = addr("127.0.0.1:40000");
    sim.ep(NODE)
        .handle_flow_event(now, flow, FlowEvent::Connected { local });
    sim.drain();
    (sim, tx, flow)
}

/// The server answers over the stream.
fn reply_tcp(sim: &mut Sim, flow: FlowId, prefix: &str, code: u16) {
    let req = last_sent(sim, prefix);
    let bytes = response_for(&req, code);
    let now = sim.now;
    sim.ep(NODE).handle_stream(now, flow, &bytes);
    sim.drain();
}

// ---- the server side: the test plays the client, the endpoint answers ----

/// A request from the peer at 127.0.0.1:5060. `via_params` follows the sent-by
/// (`;branch=...`, or nothing for an RFC 2543 peer without a branch).
fn peer_request(
    transport: &str,
    method: &str,
    via_params: &str,
    cseq: u32,
    to_tag: Option<&str>,
) -> Vec<u8> {
    let to_tag = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
    format!(
        "{method} sip:bob@127.0.0.2:5060 SIP/2.0\r\n\
         Via: SIP/2.0/{transport} 127.0.0.1:5060{via_params}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:alice@127.0.0.1>;tag=alice1\r\n\
         To: <sip:bob@127.0.0.2>{to_tag}\r\n\
         Call-ID: call-1@127.0.0.1\r\n\
         CSeq: {cseq} {method}\r\n\
         Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

const INVITE_BRANCH: &str = ";branch=z9hG4bKinvite1";

/// The peer's INVITE (branch `z9hG4bKinvite1`).
fn peer_invite() -> Vec<u8> {
    peer_request("UDP", "INVITE", INVITE_BRANCH, 1, None)
}

/// The peer's ACK for a non-2xx final response: same branch as the INVITE, To tag of the
/// response (section 17.1.1.3).
fn peer_ack_non_2xx() -> Vec<u8> {
    peer_request("UDP", "ACK", INVITE_BRANCH, 1, Some("bobtag"))
}

/// The peer's ACK for a 2xx: a new branch (section 13.2.2.4).
fn peer_ack_2xx() -> Vec<u8> {
    peer_request("UDP", "ACK", ";branch=z9hG4bKack2xx", 1, Some("bobtag"))
}

/// A server simulation that received `request` at time 0: the server transaction.
fn server(request: &[u8]) -> (Sim, ServerTxId) {
    let mut sim = one_node(UAS_ADDR);
    inject(&mut sim, UAC_ADDR, request);
    let evs = events(&mut sim);
    let [(t, Ev::Request { tx, .. })] = evs.as_slice() else {
        panic!("expected one request, got {evs:?}");
    };
    assert_eq!(*t, ms(0));
    (sim, *tx)
}

thread_local! {
    /// The requests of server transactions, as the transaction user keeps them (the
    /// endpoint lets go of a request once its final response is sent).
    static REQUESTS: std::cell::RefCell<std::collections::HashMap<ServerTxId, OwnedMessage>> =
        std::cell::RefCell::new(std::collections::HashMap::new());
}

/// The transaction user answers `tx` with `code` now (To tag `bobtag`).
fn respond(sim: &mut Sim, tx: ServerTxId, code: u16) -> Result<(), SendError> {
    let req = match sim.ep(NODE).server_request(tx) {
        Some(r) => {
            let r = r.clone();
            REQUESTS.with(|m| m.borrow_mut().insert(tx, r.clone()));
            r
        }
        None => REQUESTS
            .with(|m| m.borrow().get(&tx).cloned())
            .expect("the request was seen before its final response"),
    };
    let msg = req.message().unwrap();
    let resp = ResponseBuilder::new(&msg, code)
        .to_tag("bobtag")
        .build(&mut SeededRng::new([3; 32]))
        .unwrap();
    let now = sim.now;
    let r = sim.ep(NODE).send_response(now, tx, &resp);
    sim.drain();
    r
}

/// A TCP server: the peer connects and sends `request` at time 0.
fn tcp_server(request: &[u8]) -> (Sim, ServerTxId, FlowId) {
    let mut sim = one_node_tcp(UAS_ADDR);
    let now = sim.now;
    let flow = sim
        .ep(NODE)
        .accept_flow(now, Transport::Tcp, addr(UAS_ADDR), addr("127.0.0.1:40000"))
        .unwrap();
    sim.ep(NODE).handle_stream(now, flow, request);
    sim.drain();
    let evs = events(&mut sim);
    let [(_, Ev::Request { tx, .. })] = evs.as_slice() else {
        panic!("expected one request, got {evs:?}");
    };
    (sim, *tx, flow)
}

fn stream(sim: &mut Sim, flow: FlowId, data: &[u8]) {
    let now = sim.now;
    sim.ep(NODE).handle_stream(now, flow, data);
    sim.drain();
}

/// Runs long enough for an idle flow to be closed, then checks nothing is left.
fn assert_idle_after_flows_close(sim: &mut Sim) {
    assert_eq!(sim.ep(NODE).transactions(), 0, "a transaction leaked");
    let t = sim.now + Duration::from_secs(300);
    sim.run_until(t);
    assert_eq!(sim.ep(NODE).flows(), 0, "a flow leaked");
    assert_idle(sim);
}

// =====================================================================================
// INVITE client transaction (section 17.1.1, figure 5; RFC 6026 section 7.2)
// =====================================================================================

#[test]
fn rfc3261_17_1_1_2_timer_a_doubles_from_t1_without_cap() {
    let (mut sim, tx) = client(Method::Invite);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Calling));
    at(&mut sim, 31_999);
    // T1, then 2*T1, 4*T1, 8*T1, 16*T1 and 32*T1 (16 s, above T2: no cap for INVITE).
    assert_eq!(
        log_times(&sim, "INVITE"),
        ms_list(&[0, 500, 1_500, 3_500, 7_500, 15_500, 31_500])
    );
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Calling));
    assert_eq!(sim.ep(NODE).stats().retransmissions, 6);
}

#[test]
fn rfc3261_17_1_1_2_timer_b_times_out_calling_at_64_t1() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, T1X64 - 1);
    assert!(events(&mut sim).is_empty());
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Calling));
    at(&mut sim, 100_000);
    assert_eq!(
        events(&mut sim),
        vec![(ms(T1X64), Ev::Timeout(TxId::Client(tx), Timer::B))]
    );
    assert_eq!(sim.ep(NODE).client_state(tx), None);
    // Nothing is sent after timer B.
    assert_eq!(log_times(&sim, "INVITE").last(), Some(&ms(31_500)));
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_17_1_1_2_provisional_moves_calling_to_proceeding_and_stops_timers_a_and_b() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 700);
    reply(&mut sim, "INVITE", 180);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Proceeding));
    // Figure 5: further provisional responses in Proceeding are passed up too.
    at(&mut sim, 5_000);
    reply(&mut sim, "INVITE", 183);
    at(&mut sim, 100_000);
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(700), Ev::Response { tx, code: 180 }),
            (ms(5_000), Ev::Response { tx, code: 183 }),
        ],
        "no timer B timeout in Proceeding"
    );
    assert_eq!(log_times(&sim, "INVITE"), ms_list(&[0, 500]));
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Proceeding));
}

#[test]
fn rfc6026_7_2_2xx_moves_calling_to_accepted_and_timer_m_frees_it_at_64_t1() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 1_000);
    reply(&mut sim, "INVITE", 200);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Accepted));
    // RFC 6026 section 8.4: 2xx retransmissions are passed up while Accepted.
    at(&mut sim, 3_000);
    reply(&mut sim, "INVITE", 200);
    at(&mut sim, 1_000 + T1X64 - 1);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Accepted));
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(1_000), Ev::Response { tx, code: 200 }),
            (ms(3_000), Ev::Response { tx, code: 200 }),
        ]
    );
    // The transaction neither retransmits the INVITE nor ACKs a 2xx (the TU does).
    assert_eq!(log_times(&sim, "INVITE"), ms_list(&[0, 500]));
    assert!(log_times(&sim, "ACK").is_empty());
    at(&mut sim, 1_000 + T1X64);
    assert_eq!(sim.ep(NODE).client_state(tx), None, "timer M");
    assert!(events(&mut sim).is_empty(), "timer M raises no event");
    assert_idle(&mut sim);
    // Once the transaction is gone, a 2xx retransmission is stray (section 13.2.2.4).
    reply(&mut sim, "INVITE", 200);
    assert_eq!(
        events(&mut sim),
        vec![(ms(1_000 + T1X64), Ev::Stray { code: 200 })]
    );
}

#[test]
fn rfc6026_7_2_2xx_moves_proceeding_to_accepted() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 100);
    reply(&mut sim, "INVITE", 180);
    at(&mut sim, 2_000);
    reply(&mut sim, "INVITE", 200);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Accepted));
    at(&mut sim, 2_000 + T1X64 - 1);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Accepted));
    at(&mut sim, 2_000 + T1X64);
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(100), Ev::Response { tx, code: 180 }),
            (ms(2_000), Ev::Response { tx, code: 200 }),
        ]
    );
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_17_1_1_3_non_2xx_final_moves_calling_to_completed_and_acks_it() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 1_000);
    reply(&mut sim, "INVITE", 486);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Completed));
    assert_eq!(log_times(&sim, "ACK"), ms_list(&[1_000]));
    // Section 17.1.1.3: to the same address, port and transport as the INVITE.
    let (_, ack_packet) = sim.log.last().unwrap();
    assert_eq!(ack_packet.to, addr(UAS_ADDR));
    assert_eq!(ack_packet.from, addr(UAC_ADDR));
    let invite = last_sent(&sim, "INVITE");
    let ack = last_sent(&sim, "ACK");
    let (inv, ack) = (invite.message().unwrap(), ack.message().unwrap());
    // Section 17.1.1.3: Request-URI, Call-ID, From, CSeq number and the top Via (so the
    // branch) of the INVITE; To of the response (with its tag); CSeq method ACK.
    assert_eq!(ack.method(), Some(Method::Ack));
    assert_eq!(
        ack.request_uri().unwrap().to_string(),
        inv.request_uri().unwrap().to_string()
    );
    assert_eq!(ack.vias().count(), 1);
    assert_eq!(
        ack.top_via().unwrap().branch(),
        inv.top_via().unwrap().branch()
    );
    assert_eq!(ack.to().unwrap().tag(), Some("bobtag"));
    assert_eq!(ack.from().unwrap().tag(), Some("alice1"));
    assert_eq!(ack.call_id(), inv.call_id());
    assert_eq!(ack.cseq().unwrap().seq, inv.cseq().unwrap().seq);
    assert_eq!(ack.cseq().unwrap().method, Method::Ack);
    assert_eq!(
        events(&mut sim),
        vec![(ms(1_000), Ev::Response { tx, code: 486 })]
    );
    // No more INVITE retransmissions (timer A stopped) and no timer B timeout.
    at(&mut sim, 1_000 + TIMER_D - 1);
    assert_eq!(log_times(&sim, "INVITE"), ms_list(&[0, 500]));
    assert!(events(&mut sim).is_empty());
}

#[test]
fn rfc3261_17_1_1_2_retransmitted_final_in_completed_is_acked_again_not_passed_up() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 100);
    reply(&mut sim, "INVITE", 180);
    at(&mut sim, 1_000);
    reply(&mut sim, "INVITE", 486);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Completed));
    let first_ack = last_sent(&sim, "ACK").as_bytes().to_vec();
    at(&mut sim, 2_000);
    reply(&mut sim, "INVITE", 486);
    at(&mut sim, 6_000);
    reply(&mut sim, "INVITE", 486);
    assert_eq!(log_times(&sim, "ACK"), ms_list(&[1_000, 2_000, 6_000]));
    assert_eq!(last_sent(&sim, "ACK").as_bytes(), &first_ack[..]);
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(100), Ev::Response { tx, code: 180 }),
            (ms(1_000), Ev::Response { tx, code: 486 }),
        ],
        "the final response is passed up once"
    );
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Completed));
}

#[test]
fn rfc3261_17_1_1_2_timer_d_frees_completed_after_32_s() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 1_000);
    reply(&mut sim, "INVITE", 503);
    at(&mut sim, 1_000 + TIMER_D - 1);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Completed));
    at(&mut sim, 1_000 + TIMER_D);
    assert_eq!(sim.ep(NODE).client_state(tx), None);
    assert_eq!(
        events(&mut sim),
        vec![(ms(1_000), Ev::Response { tx, code: 503 })],
        "timer D raises no event"
    );
    assert_idle(&mut sim);
    // The final response retransmitted after timer D is stray.
    reply(&mut sim, "INVITE", 503);
    assert_eq!(
        events(&mut sim),
        vec![(ms(1_000 + TIMER_D), Ev::Stray { code: 503 })]
    );
    assert_eq!(log_times(&sim, "ACK"), ms_list(&[1_000]));
}

#[test]
fn rfc3261_17_1_1_2_reliable_transport_has_no_timer_a_but_timer_b() {
    let (mut sim, tx, _flow) = tcp_client(Method::Invite);
    at(&mut sim, T1X64 - 1);
    assert_eq!(
        log_times(&sim, "INVITE"),
        ms_list(&[0]),
        "no timer A over TCP"
    );
    assert!(events(&mut sim).is_empty());
    at(&mut sim, T1X64);
    assert_eq!(
        events(&mut sim),
        vec![(ms(T1X64), Ev::Timeout(TxId::Client(tx), Timer::B))]
    );
    assert_idle_after_flows_close(&mut sim);
}

#[test]
fn rfc3261_17_1_1_2_reliable_transport_timer_d_is_zero() {
    let (mut sim, tx, flow) = tcp_client(Method::Invite);
    at(&mut sim, 1_000);
    reply_tcp(&mut sim, flow, "INVITE", 180);
    at(&mut sim, 2_000);
    reply_tcp(&mut sim, flow, "INVITE", 486);
    // Completed for zero seconds: the ACK goes out and the transaction is gone at once.
    assert_eq!(log_times(&sim, "ACK"), ms_list(&[2_000]));
    assert_eq!(sim.ep(NODE).client_state(tx), None);
    assert_eq!(sim.ep(NODE).transactions(), 0);
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(1_000), Ev::Response { tx, code: 180 }),
            (ms(2_000), Ev::Response { tx, code: 486 }),
        ]
    );
    // Only the flow's idle timer is left.
    let idle = sim.ep(NODE).config().flow_idle_timeout;
    assert!(sim.ep(NODE).poll_timeout() >= Some(sim.start + idle));
    assert_idle_after_flows_close(&mut sim);
}

#[test]
fn rfc3261_16_6_timer_c_fires_in_proceeding_with_timeout_and_cancel() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 1_000);
    reply(&mut sim, "INVITE", 180);
    at(&mut sim, 1_000 + TIMER_C - 1);
    assert!(log_times(&sim, "CANCEL").is_empty());
    at(&mut sim, 1_000 + TIMER_C);
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(1_000), Ev::Response { tx, code: 180 }),
            (ms(1_000 + TIMER_C), Ev::Timeout(TxId::Client(tx), Timer::C)),
        ]
    );
    assert_eq!(log_times(&sim, "CANCEL"), ms_list(&[1_000 + TIMER_C]));
    let cancel = last_sent(&sim, "CANCEL");
    let invite = last_sent(&sim, "INVITE");
    assert_eq!(top_branch(&cancel), top_branch(&invite));
    assert_eq!(
        cancel.message().unwrap().cseq().unwrap().method,
        Method::Cancel
    );
    // The CANCEL already exists: cancelling again names it rather than making another.
    let now = sim.now;
    let cancel_tx = sim.ep(NODE).cancel(now, tx).unwrap();
    assert_eq!(
        sim.ep(NODE).client_state(cancel_tx),
        Some(ClientState::Trying)
    );
    // Nobody answers: the CANCEL times out by timer F, the INVITE ends 64*T1 after timer C
    // without a second timeout event.
    at(&mut sim, 1_000 + TIMER_C + T1X64);
    assert_eq!(
        events(&mut sim),
        vec![(
            ms(1_000 + TIMER_C + T1X64),
            Ev::Timeout(TxId::Client(cancel_tx), Timer::F)
        )]
    );
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_16_6_timer_c_restarts_on_each_provisional() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 1_000);
    reply(&mut sim, "INVITE", 180);
    at(&mut sim, 100_000);
    reply(&mut sim, "INVITE", 183);
    at(&mut sim, 100_000 + TIMER_C - 1);
    assert!(log_times(&sim, "CANCEL").is_empty());
    at(&mut sim, 100_000 + TIMER_C);
    assert_eq!(log_times(&sim, "CANCEL"), ms_list(&[100_000 + TIMER_C]));
    let evs = events(&mut sim);
    assert_eq!(
        evs.last(),
        Some(&(
            ms(100_000 + TIMER_C),
            Ev::Timeout(TxId::Client(tx), Timer::C)
        ))
    );
}

#[test]
fn rfc3261_16_6_final_response_after_timer_c_cancel_is_still_acked() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 1_000);
    reply(&mut sim, "INVITE", 180);
    at(&mut sim, 1_000 + TIMER_C + 100);
    let now = sim.now;
    let cancel_tx = sim.ep(NODE).cancel(now, tx).unwrap();
    reply(&mut sim, "CANCEL", 200);
    reply(&mut sim, "INVITE", 487);
    let t = 1_000 + TIMER_C + 100;
    assert_eq!(log_times(&sim, "ACK"), ms_list(&[t]));
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(1_000), Ev::Response { tx, code: 180 }),
            (ms(1_000 + TIMER_C), Ev::Timeout(TxId::Client(tx), Timer::C)),
            (
                ms(t),
                Ev::Response {
                    tx: cancel_tx,
                    code: 200
                }
            ),
            (ms(t), Ev::Response { tx, code: 487 }),
        ]
    );
    at(&mut sim, t + TIMER_D);
    assert_idle(&mut sim);
}

// =====================================================================================
// Non-INVITE client transaction (section 17.1.2, figure 6)
// =====================================================================================

#[test]
fn rfc3261_17_1_2_2_timer_e_doubles_from_t1_capped_at_t2_in_trying() {
    let (mut sim, tx) = client(Method::Options);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Trying));
    at(&mut sim, T1X64 - 1);
    // Intervals 0.5, 1, 2, 4, 4, 4, ... s.
    assert_eq!(
        log_times(&sim, "OPTIONS"),
        ms_list(&[0, 500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500])
    );
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Trying));
}

#[test]
fn rfc3261_17_1_2_2_timer_f_times_out_at_64_t1() {
    let (mut sim, tx) = client(Method::Options);
    at(&mut sim, T1X64 - 1);
    assert!(events(&mut sim).is_empty());
    at(&mut sim, 100_000);
    assert_eq!(
        events(&mut sim),
        vec![(ms(T1X64), Ev::Timeout(TxId::Client(tx), Timer::F))]
    );
    assert_eq!(log_times(&sim, "OPTIONS").last(), Some(&ms(31_500)));
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_17_1_2_2_timer_e_retransmits_every_t2_in_proceeding_and_f_still_fires() {
    let (mut sim, tx) = client(Method::Options);
    at(&mut sim, 700);
    reply(&mut sim, "OPTIONS", 100);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Proceeding));
    at(&mut sim, 100_000);
    // E keeps its pending deadline (1.5 s), then is reset to T2 each time it fires.
    assert_eq!(
        log_times(&sim, "OPTIONS"),
        ms_list(&[0, 500, 1_500, 5_500, 9_500, 13_500, 17_500, 21_500, 25_500, 29_500])
    );
    let times = log_times(&sim, "OPTIONS");
    assert!(times[2..].windows(2).all(|w| w[1] - w[0] == ms(T2)));
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(700), Ev::Response { tx, code: 100 }),
            (ms(T1X64), Ev::Timeout(TxId::Client(tx), Timer::F)),
        ]
    );
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_17_1_2_2_timer_e_in_proceeding_when_interval_already_at_t2() {
    let (mut sim, tx) = client(Method::Options);
    at(&mut sim, 8_000);
    reply(&mut sim, "OPTIONS", 180);
    at(&mut sim, 20_000);
    assert_eq!(
        log_times(&sim, "OPTIONS"),
        ms_list(&[0, 500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500])
    );
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Proceeding));
}

#[test]
fn rfc3261_17_1_2_2_final_moves_trying_to_completed_and_timer_k_frees_at_t4() {
    let (mut sim, tx) = client(Method::Options);
    at(&mut sim, 1_000);
    reply(&mut sim, "OPTIONS", 200);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Completed));
    // Retransmitted finals are absorbed in Completed.
    at(&mut sim, 2_000);
    reply(&mut sim, "OPTIONS", 200);
    reply(&mut sim, "OPTIONS", 200);
    assert_eq!(sim.ep(NODE).stats().absorbed, 2);
    at(&mut sim, 1_000 + T4 - 1);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Completed));
    // Timer E stopped with the final response.
    assert_eq!(log_times(&sim, "OPTIONS"), ms_list(&[0, 500]));
    at(&mut sim, 1_000 + T4);
    assert_eq!(sim.ep(NODE).client_state(tx), None, "timer K");
    assert_eq!(
        events(&mut sim),
        vec![(ms(1_000), Ev::Response { tx, code: 200 })]
    );
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_17_1_2_2_final_moves_proceeding_to_completed() {
    let (mut sim, tx) = client(Method::Options);
    at(&mut sim, 200);
    reply(&mut sim, "OPTIONS", 100);
    at(&mut sim, 3_000);
    reply(&mut sim, "OPTIONS", 404);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Completed));
    // A late provisional is absorbed in Completed too.
    reply(&mut sim, "OPTIONS", 100);
    at(&mut sim, 3_000 + T4);
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(200), Ev::Response { tx, code: 100 }),
            (ms(3_000), Ev::Response { tx, code: 404 }),
        ]
    );
    // E fired at 500 ms in Proceeding and was reset to T2 (next: 4.5 s).
    assert_eq!(log_times(&sim, "OPTIONS"), ms_list(&[0, 500]));
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_17_1_2_2_reliable_transport_has_no_timer_e_and_timer_k_is_zero() {
    let (mut sim, tx, flow) = tcp_client(Method::Options);
    at(&mut sim, 10_000);
    assert_eq!(
        log_times(&sim, "OPTIONS"),
        ms_list(&[0]),
        "no timer E over TCP"
    );
    reply_tcp(&mut sim, flow, "OPTIONS", 200);
    assert_eq!(sim.ep(NODE).client_state(tx), None, "timer K is zero");
    assert_eq!(
        events(&mut sim),
        vec![(ms(10_000), Ev::Response { tx, code: 200 })]
    );
    assert_idle_after_flows_close(&mut sim);
}

#[test]
fn rfc3261_17_1_2_2_reliable_transport_timer_f_still_fires() {
    let (mut sim, tx, _flow) = tcp_client(Method::Options);
    at(&mut sim, 100_000);
    assert_eq!(log_times(&sim, "OPTIONS"), ms_list(&[0]));
    assert_eq!(
        events(&mut sim),
        vec![(ms(T1X64), Ev::Timeout(TxId::Client(tx), Timer::F))]
    );
    assert_idle_after_flows_close(&mut sim);
}

// =====================================================================================
// INVITE server transaction (section 17.2.1, figure 7; RFC 6026 section 7.1)
// =====================================================================================

#[test]
fn rfc3261_17_2_1_trying_sent_200_ms_after_invite_when_tu_is_silent() {
    let (mut sim, tx) = server(&peer_invite());
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Proceeding));
    at(&mut sim, 10_000);
    assert_eq!(log_times(&sim, "SIP/2.0 100"), ms_list(&[TRYING_DELAY]));
    let trying = last_sent(&sim, "SIP/2.0 100");
    let trying = trying.message().unwrap();
    // Section 8.2.6: a 100 copies the request's identifiers and has no To tag.
    assert_eq!(trying.top_via().unwrap().branch(), Some("z9hG4bKinvite1"));
    assert_eq!(trying.to().unwrap().tag(), None);
    assert_eq!(trying.cseq().unwrap().method, Method::Invite);
    assert_eq!(trying.call_id(), Some("call-1@127.0.0.1"));
    // Sent where the request came from (section 18.2.2).
    assert_eq!(sim.log[0].1.to, addr(UAC_ADDR));
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Proceeding));
}

#[test]
fn rfc3261_17_2_1_no_trying_when_tu_answers_within_200_ms() {
    let (mut sim, tx) = server(&peer_invite());
    at(&mut sim, 150);
    respond(&mut sim, tx, 180).unwrap();
    at(&mut sim, 10_000);
    assert!(log_times(&sim, "SIP/2.0 100").is_empty());
    assert_eq!(log_times(&sim, "SIP/2.0 180"), ms_list(&[150]));

    // A final answer within 200 ms also suppresses it.
    let (mut sim, tx) = server(&peer_invite());
    respond(&mut sim, tx, 486).unwrap();
    at(&mut sim, 1_000);
    assert!(log_times(&sim, "SIP/2.0 100").is_empty());
}

#[test]
fn rfc3261_17_2_1_trying_end_to_end_stops_the_clients_timer_a() {
    // Two real endpoints: the 100 Trying leaves the UAS at 210 ms and reaches the UAC at
    // 220 ms, before timer A (500 ms).
    let mut sim = Sim::new(3, NetConfig::perfect());
    let uac = sim.add_node(UAC_ADDR);
    let uas = sim.add_node(UAS_ADDR);
    let now = sim.now;
    let tx = sim
        .ep(uac)
        .send_request(now, &request(Method::Invite), Target::udp(addr(UAS_ADDR)))
        .unwrap();
    sim.run_for(ms(10_000));
    assert_eq!(sim.sent_times(uas, "SIP/2.0 100"), ms_list(&[210]));
    assert_eq!(sim.sent_times(uac, "INVITE"), ms_list(&[0]));
    assert_eq!(sim.ep(uac).client_state(tx), Some(ClientState::Proceeding));
    let uac_events: Vec<_> = sim.events(uac).into_iter().map(|(t, _)| t).collect();
    assert_eq!(uac_events, vec![sim.start + ms(220)]);
}

#[test]
fn rfc3261_17_2_1_invite_retransmission_in_proceeding_resends_last_provisional() {
    let (mut sim, tx) = server(&peer_invite());
    // Before any response there is nothing to resend.
    at(&mut sim, 100);
    inject(&mut sim, UAC_ADDR, &peer_invite());
    assert!(sim.log.is_empty());
    // After the endpoint's own 100 Trying, a retransmission gets it again.
    at(&mut sim, 500);
    inject(&mut sim, UAC_ADDR, &peer_invite());
    assert_eq!(
        log_times(&sim, "SIP/2.0 100"),
        ms_list(&[TRYING_DELAY, 500])
    );
    // After the TU's 180, the 180 (the most recent provisional) is resent.
    at(&mut sim, 1_000);
    respond(&mut sim, tx, 180).unwrap();
    at(&mut sim, 1_500);
    inject(&mut sim, UAC_ADDR, &peer_invite());
    at(&mut sim, 2_000);
    respond(&mut sim, tx, 183).unwrap();
    at(&mut sim, 3_500);
    inject(&mut sim, UAC_ADDR, &peer_invite());
    assert_eq!(log_times(&sim, "SIP/2.0 180"), ms_list(&[1_000, 1_500]));
    assert_eq!(log_times(&sim, "SIP/2.0 183"), ms_list(&[2_000, 3_500]));
    assert_eq!(
        log_times(&sim, "SIP/2.0 100"),
        ms_list(&[TRYING_DELAY, 500])
    );
    // The retransmissions were absorbed: the TU saw one request.
    assert!(events(&mut sim).is_empty());
    assert_eq!(sim.ep(NODE).stats().absorbed, 4);
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Proceeding));
}

#[test]
fn rfc6026_7_1_2xx_moves_proceeding_to_accepted_and_absorbs_invite_retransmissions() {
    let (mut sim, tx) = server(&peer_invite());
    at(&mut sim, 1_000);
    respond(&mut sim, tx, 200).unwrap();
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Accepted));
    at(&mut sim, 1_500);
    inject(&mut sim, UAC_ADDR, &peer_invite());
    at(&mut sim, 2_500);
    inject(&mut sim, UAC_ADDR, &peer_invite());
    // The transaction does not retransmit the 2xx itself (no timer G in Accepted), and an
    // INVITE retransmission gets nothing from it.
    at(&mut sim, 20_000);
    assert_eq!(log_times(&sim, "SIP/2.0 200"), ms_list(&[1_000]));
    assert!(events(&mut sim).is_empty());
    // RFC 6026 section 7.1: the TU's 2xx retransmissions go out through the transaction.
    respond(&mut sim, tx, 200).unwrap();
    assert_eq!(log_times(&sim, "SIP/2.0 200"), ms_list(&[1_000, 20_000]));
    // No provisional or non-2xx final after the 2xx.
    assert_eq!(respond(&mut sim, tx, 180), Err(SendError::WrongState));
    assert_eq!(respond(&mut sim, tx, 486), Err(SendError::WrongState));
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Accepted));
}

#[test]
fn rfc6026_7_1_ack_for_2xx_in_accepted_reaches_the_tu() {
    let (mut sim, tx) = server(&peer_invite());
    respond(&mut sim, tx, 200).unwrap();
    at(&mut sim, 1_000);
    inject(&mut sim, UAC_ADDR, &peer_ack_2xx());
    // ACK retransmissions reach the TU too (the 2xx's ACK is end to end).
    at(&mut sim, 2_000);
    inject(&mut sim, UAC_ADDR, &peer_ack_2xx());
    let ack = Ev::Ack {
        branch: "z9hG4bKack2xx".into(),
    };
    assert_eq!(
        events(&mut sim),
        vec![(ms(1_000), ack.clone()), (ms(2_000), ack)]
    );
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Accepted));
    assert!(
        log_times(&sim, "ACK").is_empty(),
        "nothing is sent for an ACK"
    );
}

#[test]
fn rfc6026_7_1_timer_l_frees_accepted_at_64_t1() {
    let (mut sim, tx) = server(&peer_invite());
    let req = sim.ep(NODE).server_request(tx).unwrap().clone();
    let ok = ResponseBuilder::new(&req.message().unwrap(), 200)
        .to_tag("bobtag")
        .build(&mut SeededRng::new([3; 32]))
        .unwrap();
    at(&mut sim, 100);
    respond(&mut sim, tx, 200).unwrap();
    at(&mut sim, 100 + T1X64 - 1);
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Accepted));
    at(&mut sim, 100 + T1X64);
    assert_eq!(sim.ep(NODE).server_state(tx), None, "timer L");
    assert!(events(&mut sim).is_empty(), "timer L raises no event");
    let now = sim.now;
    assert_eq!(
        sim.ep(NODE).send_response(now, tx, &ok),
        Err(SendError::UnknownTransaction)
    );
    assert_idle(&mut sim);
    // Once it is gone, an ACK for the 2xx still reaches the TU (section 17.2.3).
    inject(&mut sim, UAC_ADDR, &peer_ack_2xx());
    assert_eq!(
        events(&mut sim),
        vec![(
            ms(100 + T1X64),
            Ev::Ack {
                branch: "z9hG4bKack2xx".into()
            }
        )]
    );
}

#[test]
fn rfc3261_17_2_1_non_2xx_moves_proceeding_to_completed_and_timer_g_doubles_capped_at_t2() {
    let (mut sim, tx) = server(&peer_invite());
    respond(&mut sim, tx, 486).unwrap();
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Completed));
    at(&mut sim, T1X64 - 1);
    // T1, 2*T1, 4*T1, then T2 each time.
    assert_eq!(
        log_times(&sim, "SIP/2.0 486"),
        ms_list(&[0, 500, 1_500, 3_500, 7_500, 11_500, 15_500, 19_500, 23_500, 27_500, 31_500])
    );
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Completed));
    assert!(events(&mut sim).is_empty());
}

#[test]
fn rfc3261_17_2_1_timer_h_times_out_completed_at_64_t1() {
    let (mut sim, tx) = server(&peer_invite());
    at(&mut sim, 1_000);
    respond(&mut sim, tx, 404).unwrap();
    at(&mut sim, 1_000 + T1X64 - 1);
    assert!(events(&mut sim).is_empty());
    at(&mut sim, 100_000);
    assert_eq!(
        events(&mut sim),
        vec![(ms(1_000 + T1X64), Ev::Timeout(TxId::Server(tx), Timer::H))]
    );
    assert_eq!(
        log_times(&sim, "SIP/2.0 404").last(),
        Some(&ms(1_000 + 31_500))
    );
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_17_2_1_invite_retransmission_in_completed_resends_the_final() {
    let (mut sim, tx) = server(&peer_invite());
    at(&mut sim, 100);
    respond(&mut sim, tx, 180).unwrap();
    respond(&mut sim, tx, 603).unwrap();
    at(&mut sim, 300);
    inject(&mut sim, UAC_ADDR, &peer_invite());
    at(&mut sim, 1_000);
    assert_eq!(log_times(&sim, "SIP/2.0 603"), ms_list(&[100, 300, 600]));
    assert_eq!(log_times(&sim, "SIP/2.0 180"), ms_list(&[100]));
    assert!(events(&mut sim).is_empty());
    // No second response from the TU in Completed.
    assert_eq!(respond(&mut sim, tx, 200), Err(SendError::WrongState));
    assert_eq!(respond(&mut sim, tx, 180), Err(SendError::WrongState));
}

#[test]
fn rfc3261_17_2_1_ack_moves_completed_to_confirmed_stops_g_and_timer_i_frees_at_t4() {
    let (mut sim, tx) = server(&peer_invite());
    respond(&mut sim, tx, 486).unwrap();
    at(&mut sim, 1_000);
    inject(&mut sim, UAC_ADDR, &peer_ack_non_2xx());
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Confirmed));
    // ACK retransmissions and INVITE retransmissions are absorbed in Confirmed.
    at(&mut sim, 2_000);
    inject(&mut sim, UAC_ADDR, &peer_ack_non_2xx());
    inject(&mut sim, UAC_ADDR, &peer_invite());
    at(&mut sim, 1_000 + T4 - 1);
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Confirmed));
    // Timer G stopped at the ACK; timer H never fires.
    assert_eq!(log_times(&sim, "SIP/2.0 486"), ms_list(&[0, 500]));
    at(&mut sim, 1_000 + T4);
    assert_eq!(sim.ep(NODE).server_state(tx), None, "timer I");
    assert!(
        events(&mut sim).is_empty(),
        "the ACK for a non-2xx is the transaction's, not the TU's"
    );
    assert_eq!(sim.ep(NODE).stats().absorbed, 3);
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_17_2_1_reliable_transport_has_no_timer_g_but_timer_h() {
    let invite = peer_request("TCP", "INVITE", INVITE_BRANCH, 1, None);
    let (mut sim, tx, _flow) = tcp_server(&invite);
    respond(&mut sim, tx, 486).unwrap();
    at(&mut sim, T1X64 - 1);
    assert_eq!(log_times(&sim, "SIP/2.0 486"), ms_list(&[0]), "no timer G");
    assert!(events(&mut sim).is_empty());
    at(&mut sim, T1X64);
    assert_eq!(
        events(&mut sim),
        vec![(ms(T1X64), Ev::Timeout(TxId::Server(tx), Timer::H))]
    );
    assert_idle_after_flows_close(&mut sim);
}

#[test]
fn rfc3261_17_2_1_reliable_transport_timer_i_is_zero() {
    let invite = peer_request("TCP", "INVITE", INVITE_BRANCH, 1, None);
    let (mut sim, tx, flow) = tcp_server(&invite);
    at(&mut sim, 1_000);
    respond(&mut sim, tx, 486).unwrap();
    at(&mut sim, 2_000);
    stream(
        &mut sim,
        flow,
        &peer_request("TCP", "ACK", INVITE_BRANCH, 1, Some("bobtag")),
    );
    assert_eq!(
        sim.ep(NODE).server_state(tx),
        None,
        "Confirmed for zero seconds"
    );
    assert!(events(&mut sim).is_empty());
    assert_eq!(sim.ep(NODE).transactions(), 0);
    assert_idle_after_flows_close(&mut sim);
}

// =====================================================================================
// Non-INVITE server transaction (section 17.2.2, figure 8)
// =====================================================================================

fn peer_options() -> Vec<u8> {
    peer_request("UDP", "OPTIONS", ";branch=z9hG4bKoptions1", 1, None)
}

#[test]
fn rfc3261_17_2_2_retransmission_in_trying_is_absorbed() {
    let (mut sim, tx) = server(&peer_options());
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Trying));
    at(&mut sim, 500);
    inject(&mut sim, UAC_ADDR, &peer_options());
    at(&mut sim, 1_500);
    inject(&mut sim, UAC_ADDR, &peer_options());
    at(&mut sim, 10_000);
    // No 100 Trying for non-INVITE and nothing for a retransmission in Trying.
    assert!(sim.log.is_empty());
    assert!(events(&mut sim).is_empty());
    assert_eq!(sim.ep(NODE).stats().absorbed, 2);
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Trying));
}

#[test]
fn rfc3261_17_2_2_provisional_moves_trying_to_proceeding_and_is_resent() {
    let (mut sim, tx) = server(&peer_options());
    at(&mut sim, 100);
    respond(&mut sim, tx, 100).unwrap();
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Proceeding));
    at(&mut sim, 500);
    inject(&mut sim, UAC_ADDR, &peer_options());
    // Further provisional responses are allowed in Proceeding and become the one resent.
    at(&mut sim, 1_000);
    respond(&mut sim, tx, 183).unwrap();
    at(&mut sim, 1_500);
    inject(&mut sim, UAC_ADDR, &peer_options());
    assert_eq!(log_times(&sim, "SIP/2.0 100"), ms_list(&[100, 500]));
    assert_eq!(log_times(&sim, "SIP/2.0 183"), ms_list(&[1_000, 1_500]));
    assert!(events(&mut sim).is_empty());
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Proceeding));
}

#[test]
fn rfc3261_17_2_2_final_moves_to_completed_is_resent_and_timer_j_frees_at_64_t1() {
    let (mut sim, tx) = server(&peer_options());
    at(&mut sim, 1_000);
    respond(&mut sim, tx, 200).unwrap();
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Completed));
    at(&mut sim, 2_000);
    inject(&mut sim, UAC_ADDR, &peer_options());
    at(&mut sim, 17_000);
    inject(&mut sim, UAC_ADDR, &peer_options());
    at(&mut sim, 1_000 + T1X64 - 1);
    // Resent only on request: no timer retransmits a non-INVITE final.
    assert_eq!(
        log_times(&sim, "SIP/2.0 200"),
        ms_list(&[1_000, 2_000, 17_000])
    );
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Completed));
    at(&mut sim, 1_000 + T1X64);
    assert_eq!(sim.ep(NODE).server_state(tx), None, "timer J");
    assert!(events(&mut sim).is_empty());
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_17_2_2_final_from_proceeding_moves_to_completed() {
    let (mut sim, tx) = server(&peer_options());
    respond(&mut sim, tx, 100).unwrap();
    at(&mut sim, 400);
    respond(&mut sim, tx, 404).unwrap();
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Completed));
    at(&mut sim, 800);
    inject(&mut sim, UAC_ADDR, &peer_options());
    assert_eq!(log_times(&sim, "SIP/2.0 404"), ms_list(&[400, 800]));
    assert_eq!(log_times(&sim, "SIP/2.0 100"), ms_list(&[0]));
    at(&mut sim, 400 + T1X64);
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_17_2_2_second_final_from_the_tu_is_refused() {
    let (mut sim, tx) = server(&peer_options());
    respond(&mut sim, tx, 200).unwrap();
    assert_eq!(respond(&mut sim, tx, 200), Err(SendError::WrongState));
    assert_eq!(respond(&mut sim, tx, 500), Err(SendError::WrongState));
    assert_eq!(respond(&mut sim, tx, 100), Err(SendError::WrongState));
    assert_eq!(log_times(&sim, "SIP/2.0"), ms_list(&[0]));
    // The refused responses did not change what is resent.
    inject(&mut sim, UAC_ADDR, &peer_options());
    assert_eq!(log_times(&sim, "SIP/2.0 200"), ms_list(&[0, 0]));
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Completed));
    at(&mut sim, T1X64);
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_17_2_2_reliable_transport_timer_j_is_zero() {
    let options = peer_request("TCP", "OPTIONS", ";branch=z9hG4bKoptions1", 1, None);
    let (mut sim, tx, _flow) = tcp_server(&options);
    at(&mut sim, 300);
    respond(&mut sim, tx, 200).unwrap();
    assert_eq!(log_times(&sim, "SIP/2.0 200"), ms_list(&[300]));
    assert_eq!(sim.ep(NODE).server_state(tx), None);
    assert_eq!(sim.ep(NODE).transactions(), 0);
    assert_idle_after_flows_close(&mut sim);
}

// =====================================================================================
// Matching (sections 17.1.3, 17.2.3, 9.2, 18.1.2)
// =====================================================================================

/// `data` with `from` replaced by `to` (once).
fn replace(data: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = String::from_utf8(data.to_vec()).unwrap();
    assert!(s.contains(from), "{from:?} not in {s}");
    s.replacen(from, to, 1).into_bytes()
}

#[test]
fn rfc3261_17_1_3_response_matched_by_branch_and_cseq_method() {
    let (mut sim, invite_tx) = client(Method::Invite);
    at(&mut sim, 100);
    reply(&mut sim, "INVITE", 180);
    let now = sim.now;
    let cancel_tx = sim.ep(NODE).cancel(now, invite_tx).unwrap();
    sim.drain();
    assert_ne!(cancel_tx, invite_tx);
    let invite = last_sent(&sim, "INVITE");
    assert_eq!(top_branch(&last_sent(&sim, "CANCEL")), top_branch(&invite));
    // A 200 with the INVITE's branch but CSeq CANCEL answers the CANCEL, not the INVITE.
    at(&mut sim, 200);
    let ok = response_for(&invite, 200);
    let ok_cancel = replace(&ok, "CSeq: 1 INVITE", "CSeq: 1 CANCEL");
    inject(&mut sim, UAS_ADDR, &ok_cancel);
    assert_eq!(
        sim.ep(NODE).client_state(invite_tx),
        Some(ClientState::Proceeding)
    );
    assert_eq!(
        sim.ep(NODE).client_state(cancel_tx),
        Some(ClientState::Completed)
    );
    // And the 487 with CSeq INVITE answers the INVITE.
    at(&mut sim, 300);
    reply(&mut sim, "INVITE", 487);
    assert_eq!(
        sim.ep(NODE).client_state(invite_tx),
        Some(ClientState::Completed)
    );
    assert_eq!(
        events(&mut sim),
        vec![
            (
                ms(100),
                Ev::Response {
                    tx: invite_tx,
                    code: 180
                }
            ),
            (
                ms(200),
                Ev::Response {
                    tx: cancel_tx,
                    code: 200
                }
            ),
            (
                ms(300),
                Ev::Response {
                    tx: invite_tx,
                    code: 487
                }
            ),
        ]
    );
    at(&mut sim, 300 + TIMER_D);
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_17_1_3_same_branch_other_method_without_its_transaction_is_stray() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 100);
    let ok = response_for(&last_sent(&sim, "INVITE"), 200);
    inject(
        &mut sim,
        UAS_ADDR,
        &replace(&ok, "CSeq: 1 INVITE", "CSeq: 1 CANCEL"),
    );
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Calling));
    assert_eq!(events(&mut sim), vec![(ms(100), Ev::Stray { code: 200 })]);
    // Timer A carries on: the INVITE has no response.
    at(&mut sim, 2_000);
    assert_eq!(log_times(&sim, "INVITE"), ms_list(&[0, 500, 1_500]));
}

#[test]
fn rfc3261_17_1_3_response_with_unknown_branch_is_stray() {
    let (mut sim, tx) = client(Method::Options);
    at(&mut sim, 100);
    let ok = response_for(&last_sent(&sim, "OPTIONS"), 200);
    let branch = top_branch(&last_sent(&sim, "OPTIONS"));
    inject(
        &mut sim,
        UAS_ADDR,
        &replace(&ok, &branch, "z9hG4bKsomeoneelse"),
    );
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Trying));
    assert_eq!(events(&mut sim), vec![(ms(100), Ev::Stray { code: 200 })]);
    assert_eq!(sim.ep(NODE).stats().dropped, 0);
}

#[test]
fn rfc3261_18_1_2_response_with_foreign_sent_by_is_dropped() {
    let (mut sim, tx) = client(Method::Options);
    at(&mut sim, 100);
    let ok = response_for(&last_sent(&sim, "OPTIONS"), 200);
    let foreign = replace(
        &ok,
        "SIP/2.0/UDP 127.0.0.1:5060",
        "SIP/2.0/UDP 192.0.2.99:5060",
    );
    inject(&mut sim, UAS_ADDR, &foreign);
    // Also a different port on our own address is not ours.
    let other_port = replace(
        &ok,
        "SIP/2.0/UDP 127.0.0.1:5060",
        "SIP/2.0/UDP 127.0.0.1:5070",
    );
    inject(&mut sim, UAS_ADDR, &other_port);
    assert_eq!(sim.ep(NODE).stats().dropped, 2);
    assert!(events(&mut sim).is_empty(), "dropped silently");
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Trying));
    // The genuine response still matches.
    inject(&mut sim, UAS_ADDR, &ok);
    assert_eq!(
        events(&mut sim),
        vec![(ms(100), Ev::Response { tx, code: 200 })]
    );
}

#[test]
fn rfc3261_17_2_3_ack_for_non_2xx_matches_the_invite_server_transaction() {
    let (mut sim, tx) = server(&peer_invite());
    respond(&mut sim, tx, 480).unwrap();
    // An ACK with another branch is not this transaction's: it goes to the TU.
    at(&mut sim, 100);
    inject(&mut sim, UAC_ADDR, &peer_ack_2xx());
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Completed));
    // An ACK with the INVITE's branch (and sent-by) is.
    at(&mut sim, 200);
    inject(&mut sim, UAC_ADDR, &peer_ack_non_2xx());
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Confirmed));
    assert_eq!(
        events(&mut sim),
        vec![(
            ms(100),
            Ev::Ack {
                branch: "z9hG4bKack2xx".into()
            }
        )]
    );
    at(&mut sim, 200 + T4);
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_17_2_3_same_branch_from_another_sent_by_is_another_transaction() {
    let (mut sim, tx) = server(&peer_invite());
    let other = replace(&peer_invite(), "127.0.0.1:5060;", "127.0.0.3:5060;");
    inject(&mut sim, "127.0.0.3:5060", &other);
    let evs = events(&mut sim);
    let [(_, Ev::Request { tx: second, .. })] = evs.as_slice() else {
        panic!("expected a new request, got {evs:?}");
    };
    assert_ne!(*second, tx);
    assert_eq!(sim.ep(NODE).transactions(), 2);
}

#[test]
fn rfc3261_9_2_cancel_names_the_invite_server_transaction() {
    let (mut sim, invite_tx) = server(&peer_invite());
    at(&mut sim, 1_000);
    inject(
        &mut sim,
        UAC_ADDR,
        &peer_request("UDP", "CANCEL", INVITE_BRANCH, 1, None),
    );
    let evs = events(&mut sim);
    let [(
        t,
        Ev::Request {
            tx: cancel_tx,
            method,
            cancels,
        },
    )] = evs.as_slice()
    else {
        panic!("expected the CANCEL, got {evs:?}");
    };
    assert_eq!(*t, ms(1_000));
    assert_eq!(method, "CANCEL");
    assert_eq!(*cancels, Some(invite_tx));
    // The CANCEL is a transaction of its own.
    assert_ne!(*cancel_tx, invite_tx);
    assert_eq!(
        sim.ep(NODE).server_state(*cancel_tx),
        Some(ServerState::Trying)
    );
    assert_eq!(
        sim.ep(NODE).server_state(invite_tx),
        Some(ServerState::Proceeding)
    );
}

#[test]
fn rfc3261_9_2_cancel_matching_nothing_names_no_transaction() {
    let (mut sim, _invite_tx) = server(&peer_invite());
    // Another branch: no INVITE to cancel.
    inject(
        &mut sim,
        UAC_ADDR,
        &peer_request("UDP", "CANCEL", ";branch=z9hG4bKnothing", 1, None),
    );
    let evs = events(&mut sim);
    let [(
        _,
        Ev::Request {
            method, cancels, ..
        },
    )] = evs.as_slice()
    else {
        panic!("expected the CANCEL, got {evs:?}");
    };
    assert_eq!(method, "CANCEL");
    assert_eq!(*cancels, None);
    // And with no INVITE at all.
    let mut sim = one_node(UAS_ADDR);
    inject(
        &mut sim,
        UAC_ADDR,
        &peer_request("UDP", "CANCEL", INVITE_BRANCH, 1, None),
    );
    let evs = events(&mut sim);
    assert!(
        matches!(evs.as_slice(), [(_, Ev::Request { cancels: None, .. })]),
        "{evs:?}"
    );
}

#[test]
fn rfc3261_17_2_3_rfc2543_request_matched_by_uri_from_tag_call_id_cseq_and_via() {
    for via in [";branch=1234abcd", ""] {
        let invite = peer_request("UDP", "INVITE", via, 1, None);
        let (mut sim, tx) = server(&invite);
        // A retransmission is absorbed.
        at(&mut sim, 500);
        inject(&mut sim, UAC_ADDR, &invite);
        assert!(events(&mut sim).is_empty(), "via {via:?}");
        assert_eq!(sim.ep(NODE).stats().absorbed, 1);
        // Any of the identifiers differing makes another transaction.
        let variants = [
            peer_request("UDP", "INVITE", via, 2, None),
            replace(&invite, "INVITE sip:bob@", "INVITE sip:carol@"),
            replace(&invite, "tag=alice1", "tag=alice2"),
            replace(&invite, "Call-ID: call-1", "Call-ID: call-2"),
            replace(&invite, "127.0.0.1:5060", "127.0.0.1:5070"),
        ];
        for v in &variants {
            inject(&mut sim, UAC_ADDR, v);
        }
        let evs = events(&mut sim);
        assert_eq!(evs.len(), variants.len(), "via {via:?}: {evs:?}");
        assert!(evs
            .iter()
            .all(|(_, e)| matches!(e, Ev::Request { tx: t, .. } if *t != tx)));
        assert_eq!(sim.ep(NODE).transactions(), 1 + variants.len());
        // The TU's final is resent for a retransmission, and the RFC 2543 ACK (To tag of
        // the response, no RFC 3261 branch) matches the transaction.
        respond(&mut sim, tx, 486).unwrap();
        at(&mut sim, 600);
        inject(&mut sim, UAC_ADDR, &invite);
        assert_eq!(log_times(&sim, "SIP/2.0 486"), ms_list(&[500, 600]));
        at(&mut sim, 700);
        inject(
            &mut sim,
            UAC_ADDR,
            &peer_request("UDP", "ACK", via, 1, Some("bobtag")),
        );
        assert_eq!(
            sim.ep(NODE).server_state(tx),
            Some(ServerState::Confirmed),
            "via {via:?}"
        );
        assert!(events(&mut sim).is_empty());
    }
}

#[test]
fn rfc3261_17_2_3_rfc2543_non_invite_retransmission_is_absorbed() {
    let options = peer_request("UDP", "OPTIONS", "", 7, None);
    let (mut sim, tx) = server(&options);
    inject(&mut sim, UAC_ADDR, &options);
    assert!(events(&mut sim).is_empty());
    respond(&mut sim, tx, 200).unwrap();
    at(&mut sim, 1_000);
    inject(&mut sim, UAC_ADDR, &options);
    assert_eq!(log_times(&sim, "SIP/2.0 200"), ms_list(&[0, 1_000]));
    at(&mut sim, T1X64);
    assert_idle(&mut sim);
}

// =====================================================================================
// CANCEL (section 9.1)
// =====================================================================================

#[test]
fn rfc3261_9_1_cancel_before_a_provisional_is_held_until_one_arrives() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 200);
    let now = sim.now;
    let cancel_tx = sim.ep(NODE).cancel(now, tx).unwrap();
    assert_eq!(sim.ep(NODE).transactions(), 2);
    // Cancelling again names the same held CANCEL.
    at(&mut sim, 300);
    let now = sim.now;
    assert_eq!(sim.ep(NODE).cancel(now, tx), Ok(cancel_tx));
    at(&mut sim, 2_000);
    assert!(log_times(&sim, "CANCEL").is_empty(), "held");
    // The INVITE keeps retransmitting meanwhile.
    assert_eq!(log_times(&sim, "INVITE"), ms_list(&[0, 500, 1_500]));
    reply(&mut sim, "INVITE", 180);
    assert_eq!(log_times(&sim, "CANCEL"), ms_list(&[2_000]));
    assert_eq!(sim.log.last().unwrap().1.to, addr(UAS_ADDR));
    let cancel = last_sent(&sim, "CANCEL");
    let invite = last_sent(&sim, "INVITE");
    assert_eq!(top_branch(&cancel), top_branch(&invite));
    {
        // Section 9.1: Request-URI, Call-ID, To, From and the CSeq number of the INVITE,
        // its single top Via, method CANCEL.
        let (c, i) = (cancel.message().unwrap(), invite.message().unwrap());
        assert_eq!(c.cseq().unwrap().method, Method::Cancel);
        assert_eq!(c.cseq().unwrap().seq, i.cseq().unwrap().seq);
        assert_eq!(c.call_id(), i.call_id());
        assert_eq!(c.to().unwrap().tag(), None);
        assert_eq!(c.from().unwrap().tag(), Some("alice1"));
        assert_eq!(c.vias().count(), 1);
        assert_eq!(
            c.request_uri().unwrap().to_string(),
            i.request_uri().unwrap().to_string()
        );
    }
    // The CANCEL is a non-INVITE transaction whose timers start when it is sent.
    at(&mut sim, 2_000 + 1_500);
    assert_eq!(log_times(&sim, "CANCEL"), ms_list(&[2_000, 2_500, 3_500]));
    reply(&mut sim, "CANCEL", 200);
    reply(&mut sim, "INVITE", 487);
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(2_000), Ev::Response { tx, code: 180 }),
            (
                ms(3_500),
                Ev::Response {
                    tx: cancel_tx,
                    code: 200
                }
            ),
            (ms(3_500), Ev::Response { tx, code: 487 }),
        ]
    );
    at(&mut sim, 3_500 + TIMER_D);
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_9_1_cancel_after_a_provisional_is_sent_at_once() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 100);
    reply(&mut sim, "INVITE", 100);
    at(&mut sim, 300);
    let now = sim.now;
    sim.ep(NODE).cancel(now, tx).unwrap();
    sim.drain();
    assert_eq!(log_times(&sim, "CANCEL"), ms_list(&[300]));
}

#[test]
fn rfc3261_9_1_cancel_after_a_final_response_is_refused() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 100);
    reply(&mut sim, "INVITE", 486);
    let now = sim.now;
    assert_eq!(sim.ep(NODE).cancel(now, tx), Err(SendError::WrongState));
    at(&mut sim, 100 + TIMER_D);
    assert!(log_times(&sim, "CANCEL").is_empty());
    assert_idle(&mut sim);
    // After the transaction is gone the endpoint no longer knows it.
    let now = sim.now;
    assert_eq!(
        sim.ep(NODE).cancel(now, tx),
        Err(SendError::UnknownTransaction)
    );
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 100);
    reply(&mut sim, "INVITE", 200);
    let now = sim.now;
    assert_eq!(sim.ep(NODE).cancel(now, tx), Err(SendError::WrongState));
    assert!(log_times(&sim, "CANCEL").is_empty());
    assert_eq!(sim.ep(NODE).transactions(), 1);
    // Section 9.1: only INVITE is cancelled by the endpoint here.
    let (mut sim, tx) = client(Method::Options);
    let now = sim.now;
    assert_eq!(sim.ep(NODE).cancel(now, tx), Err(SendError::WrongState));
}

#[test]
fn rfc3261_9_1_held_cancel_is_never_sent_if_the_final_arrives_first() {
    for code in [486, 200] {
        let (mut sim, tx) = client(Method::Invite);
        at(&mut sim, 200);
        let now = sim.now;
        sim.ep(NODE).cancel(now, tx).unwrap();
        assert_eq!(sim.ep(NODE).transactions(), 2);
        at(&mut sim, 1_000);
        reply(&mut sim, "INVITE", code);
        // The held CANCEL died with the final response.
        assert_eq!(sim.ep(NODE).transactions(), 1, "code {code}");
        // A late provisional (reordered) does not release it either.
        reply(&mut sim, "INVITE", 180);
        at(&mut sim, 100_000);
        assert!(log_times(&sim, "CANCEL").is_empty(), "code {code}");
        assert_eq!(
            events(&mut sim),
            vec![(ms(1_000), Ev::Response { tx, code })]
        );
        assert_idle(&mut sim);
    }
}

#[test]
fn rfc3261_9_1_held_cancel_is_never_sent_if_timer_b_fires() {
    let (mut sim, tx) = client(Method::Invite);
    let now = sim.now;
    sim.ep(NODE).cancel(now, tx).unwrap();
    at(&mut sim, 100_000);
    assert!(log_times(&sim, "CANCEL").is_empty());
    assert_eq!(
        events(&mut sim),
        vec![(ms(T1X64), Ev::Timeout(TxId::Client(tx), Timer::B))]
    );
    assert_idle(&mut sim);
}

// =====================================================================================
// Transport errors (sections 17.1.4 and 17.2.4: "Transport Err. / Inform TU")
// =====================================================================================

#[test]
fn rfc3261_17_1_4_transport_error_ends_the_client_transaction() {
    for method in [Method::Invite, Method::Options] {
        let mut sim = one_node_tcp(UAC_ADDR);
        let now = sim.now;
        let tx = sim
            .ep(NODE)
            .send_request(now, &request(method), Target::tcp(addr(UAS_ADDR)))
            .unwrap();
        let Some(IoRequest::Connect { flow, .. }) = sim.ep(NODE).poll_io() else {
            panic!("no connect request");
        };
        at(&mut sim, 300);
        let now = sim.now;
        sim.ep(NODE).handle_flow_event(now, flow, FlowEvent::Failed);
        sim.drain();
        assert_eq!(
            events(&mut sim),
            vec![(ms(300), Ev::TransportError(TxId::Client(tx)))],
            "{method}"
        );
        assert_eq!(sim.ep(NODE).client_state(tx), None);
        assert!(sim.log.is_empty(), "nothing was sent");
        assert_eq!(sim.ep(NODE).flows(), 0);
        assert_idle(&mut sim);
    }
}

#[test]
fn rfc3261_17_2_4_transport_error_sending_the_response_informs_the_tu() {
    let invite = peer_request("TCP", "INVITE", INVITE_BRANCH, 1, None);
    let (mut sim, tx, flow) = tcp_server(&invite);
    // The peer closes the connection before the TU answers.
    at(&mut sim, 100);
    let now = sim.now;
    sim.ep(NODE).handle_flow_event(now, flow, FlowEvent::Closed);
    let req = sim.ep(NODE).server_request(tx).unwrap().clone();
    let busy = ResponseBuilder::new(&req.message().unwrap(), 486)
        .to_tag("bobtag")
        .build(&mut SeededRng::new([3; 32]))
        .unwrap();
    sim.ep(NODE).send_response(now, tx, &busy).unwrap();
    // Section 18.2.2: a new connection to the source address and the sent-by port.
    let Some(IoRequest::Connect {
        flow: second,
        remote,
        ..
    }) = sim.ep(NODE).poll_io()
    else {
        panic!("no connect request for the response");
    };
    assert_eq!(remote, addr(UAC_ADDR));
    // That connection fails: the transaction ends and the TU is told (figure 7,
    // "Transport Err. / Inform TU"; section 17.2.4).
    at(&mut sim, 150);
    let now = sim.now;
    sim.ep(NODE)
        .handle_flow_event(now, second, FlowEvent::Failed);
    sim.drain();
    assert_eq!(
        events(&mut sim),
        vec![(ms(150), Ev::TransportError(TxId::Server(tx)))]
    );
    assert_eq!(sim.ep(NODE).server_state(tx), None);
    assert_idle(&mut sim);
}

#[test]
fn rfc6026_8_4_every_2xx_in_accepted_is_passed_up_even_from_another_fork() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 100);
    reply(&mut sim, "INVITE", 200);
    at(&mut sim, 200);
    let other_fork = replace(
        &response_for(&last_sent(&sim, "INVITE"), 200),
        "tag=bobtag",
        "tag=carol",
    );
    inject(&mut sim, UAS_ADDR, &other_fork);
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(100), Ev::Response { tx, code: 200 }),
            (ms(200), Ev::Response { tx, code: 200 }),
        ]
    );
    // A non-2xx after the 2xx is not passed up and not ACKed by the transaction.
    reply(&mut sim, "INVITE", 486);
    assert!(events(&mut sim).is_empty());
    assert!(log_times(&sim, "ACK").is_empty());
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Accepted));
    at(&mut sim, 100 + T1X64);
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_16_7_timer_c_is_not_reset_by_100_trying() {
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 1_000);
    reply(&mut sim, "INVITE", 180);
    // A late (or duplicated) 100 Trying: passed up, but it does not reset timer C.
    at(&mut sim, 100_000);
    reply(&mut sim, "INVITE", 100);
    at(&mut sim, 1_000 + TIMER_C);
    assert_eq!(log_times(&sim, "CANCEL"), ms_list(&[1_000 + TIMER_C]));
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(1_000), Ev::Response { tx, code: 180 }),
            (ms(100_000), Ev::Response { tx, code: 100 }),
            (ms(1_000 + TIMER_C), Ev::Timeout(TxId::Client(tx), Timer::C)),
        ]
    );
}

#[test]
fn rfc6026_8_4_timer_m_runs_over_reliable_transports_too() {
    // Timer M waits for 2xx from other forks, which no transport retransmits: 64*T1 over
    // TCP as well.
    let (mut sim, tx, flow) = tcp_client(Method::Invite);
    at(&mut sim, 1_000);
    reply_tcp(&mut sim, flow, "INVITE", 200);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Accepted));
    at(&mut sim, 1_000 + T1X64 - 1);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Accepted));
    at(&mut sim, 1_000 + T1X64);
    assert_eq!(sim.ep(NODE).client_state(tx), None);
    assert_eq!(
        events(&mut sim),
        vec![(ms(1_000), Ev::Response { tx, code: 200 })]
    );
    assert_idle_after_flows_close(&mut sim);
}

#[test]
fn rfc6026_8_7_timer_l_runs_over_reliable_transports_too() {
    let invite = peer_request("TCP", "INVITE", INVITE_BRANCH, 1, None);
    let (mut sim, tx, flow) = tcp_server(&invite);
    respond(&mut sim, tx, 200).unwrap();
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Accepted));
    // An INVITE retransmission over the stream is absorbed.
    at(&mut sim, 5_000);
    stream(&mut sim, flow, &invite);
    assert_eq!(log_times(&sim, "SIP/2.0 200"), ms_list(&[0]));
    at(&mut sim, T1X64 - 1);
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Accepted));
    at(&mut sim, T1X64);
    assert_eq!(sim.ep(NODE).server_state(tx), None);
    assert!(events(&mut sim).is_empty());
    assert_idle_after_flows_close(&mut sim);
}

#[test]
fn rfc3261_18_1_1_request_too_large_for_udp_goes_over_tcp_without_timer_a() {
    let mut sim = one_node_tcp(UAC_ADDR);
    let big = RequestBuilder::new(Method::Invite, "sip:bob@127.0.0.2:5060")
        .from("<sip:alice@127.0.0.1>;tag=alice1")
        .to("<sip:bob@127.0.0.2>")
        .call_id("call-1@127.0.0.1")
        .body("application/sdp", &[b'a'; 1_400])
        .build(&mut SeededRng::new([1; 32]))
        .unwrap();
    let now = sim.now;
    let tx = sim
        .ep(NODE)
        .send_request(now, &big, Target::udp(addr(UAS_ADDR)))
        .unwrap();
    let Some(IoRequest::Connect {
        flow,
        transport: Transport::Tcp,
        remote,
    }) = sim.ep(NODE).poll_io()
    else {
        panic!("no TCP connect");
    };
    assert_eq!(remote, addr(UAS_ADDR));
    sim.ep(NODE).handle_flow_event(
        now,
        flow,
        FlowEvent::Connected {
            local: addr("127.0.0.1:40001"),
        },
    );
    sim.drain();
    at(&mut sim, 10_000);
    assert_eq!(log_times(&sim, "INVITE"), ms_list(&[0]), "no timer A");
    let sent = last_sent(&sim, "INVITE");
    assert_eq!(
        sent.message().unwrap().top_via().unwrap().transport,
        "TCP",
        "the Via names the transport used"
    );
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Calling));
}

#[test]
fn rfc3261_17_2_3_rfc2543_ack_must_carry_the_to_tag_of_the_response() {
    let invite = peer_request("UDP", "INVITE", "", 1, None);
    let (mut sim, tx) = server(&invite);
    respond(&mut sim, tx, 486).unwrap();
    // Our 486 carries To tag "bobtag"; an ACK with another To tag acknowledges some other
    // response (section 17.2.3), so it does not match this transaction.
    at(&mut sim, 100);
    inject(
        &mut sim,
        UAC_ADDR,
        &peer_request("UDP", "ACK", "", 1, Some("someoneelse")),
    );
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Completed));
    assert_eq!(
        events(&mut sim),
        vec![(ms(100), Ev::Ack { branch: "".into() })]
    );
    // The right ACK does.
    at(&mut sim, 200);
    inject(
        &mut sim,
        UAC_ADDR,
        &peer_request("UDP", "ACK", "", 1, Some("bobtag")),
    );
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Confirmed));
}

#[test]
fn rfc6026_7_1_rfc2543_ack_for_2xx_in_accepted_reaches_the_tu() {
    let invite = peer_request("UDP", "INVITE", "", 1, None);
    let (mut sim, tx) = server(&invite);
    respond(&mut sim, tx, 200).unwrap();
    at(&mut sim, 100);
    // An RFC 2543 ACK for the 2xx carries the INVITE's Via: it matches the transaction in
    // Accepted, which passes it up.
    inject(
        &mut sim,
        UAC_ADDR,
        &peer_request("UDP", "ACK", "", 1, Some("bobtag")),
    );
    assert_eq!(
        events(&mut sim),
        vec![(ms(100), Ev::Ack { branch: "".into() })]
    );
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Accepted));
    at(&mut sim, T1X64);
    assert_idle(&mut sim);
}

// =====================================================================================
// What a timeout event says (Event::Timeout names its timer)
// =====================================================================================

#[test]
fn unanswered_non_invite_times_out_naming_the_unanswered_timer_and_ends() {
    // RFC 3261 17.2.2: the client gives up at timer F (64*T1); so does the server transaction.
    let (mut sim, tx) = server(&peer_options());
    at(&mut sim, T1X64);
    assert_eq!(
        events(&mut sim),
        vec![(ms(T1X64), Ev::Timeout(TxId::Server(tx), Timer::Unanswered))]
    );
    assert!(sim.ep(NODE).server_state(tx).is_none());
    assert!(log_times(&sim, "SIP/2.0").is_empty());
    assert_idle(&mut sim);
}

#[test]
fn unanswered_invite_is_answered_408_then_timer_h_names_the_missing_ack() {
    // RFC 3261 16.6 step 11 (timer C's 408) and 17.2.1 (timer H when no ACK comes).
    let (mut sim, tx) = server(&peer_invite());
    let request = sim.ep(NODE).server_request(tx).unwrap().clone();
    at(&mut sim, TIMER_C);
    assert_eq!(
        events(&mut sim),
        vec![(
            ms(TIMER_C),
            Ev::Timeout(TxId::Server(tx), Timer::Unanswered)
        )]
    );
    assert_eq!(log_times(&sim, "SIP/2.0 408"), ms_list(&[TIMER_C]));
    assert_eq!(sim.ep(NODE).server_state(tx), Some(ServerState::Completed));
    // The transaction user can no longer answer.
    let ok = ResponseBuilder::new(&request.message().unwrap(), 200)
        .build(&mut SeededRng::new([3; 32]))
        .unwrap();
    let now = sim.now;
    let late = sim.ep(NODE).send_response(now, tx, &ok);
    assert_eq!(late, Err(SendError::WrongState));
    at(&mut sim, TIMER_C + T1X64);
    assert_eq!(
        events(&mut sim),
        vec![(ms(TIMER_C + T1X64), Ev::Timeout(TxId::Server(tx), Timer::H))]
    );
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_9_1_a_2xx_after_timer_c_cancel_is_delivered_for_the_tu_to_ack() {
    // RFC 3261 9.1 and 13.2.2.4: the CANCEL crossed a 2xx; the INVITE transaction passes the
    // 2xx (and its retransmissions) up, and the ACK the transaction user sends goes out.
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 1_000);
    reply(&mut sim, "INVITE", 180);
    at(&mut sim, 1_000 + TIMER_C);
    assert_eq!(log_times(&sim, "CANCEL"), ms_list(&[1_000 + TIMER_C]));
    let t = 1_000 + TIMER_C + 100;
    at(&mut sim, t);
    reply(&mut sim, "INVITE", 200);
    reply(&mut sim, "INVITE", 200);
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(1_000), Ev::Response { tx, code: 180 }),
            (ms(1_000 + TIMER_C), Ev::Timeout(TxId::Client(tx), Timer::C)),
            (ms(t), Ev::Response { tx, code: 200 }),
            (ms(t), Ev::Response { tx, code: 200 }),
        ]
    );
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Accepted));
    // The transaction never ACKs a 2xx itself (section 17.1.1.2): that is the TU's job.
    assert!(log_times(&sim, "ACK").is_empty());
    let ok = last_sent(&sim, "INVITE");
    let ack = RequestBuilder::new(Method::Ack, "sip:bob@127.0.0.2:5060")
        .from("<sip:alice@127.0.0.1>;tag=alice1")
        .to("<sip:bob@127.0.0.2>;tag=bobtag")
        .call_id("call-1@127.0.0.1")
        .cseq(ok.message().unwrap().cseq().unwrap().seq)
        .build(&mut SeededRng::new([4; 32]))
        .unwrap();
    let now = sim.now;
    sim.ep(NODE)
        .send_ack(now, &ack, Target::udp(addr(UAS_ADDR)))
        .unwrap();
    sim.drain();
    assert_eq!(log_times(&sim, "ACK"), ms_list(&[t]));
}

// =====================================================================================
// Unreachable destinations (ICMP, refused sends): sections 18.4, 17.1.4 and 17.2.4
// =====================================================================================

/// The driver reports that datagrams to `remote` cannot be delivered.
fn unreachable(sim: &mut Sim, remote: &str) {
    let now = sim.now;
    sim.ep(NODE).handle_unreachable(now, addr(remote));
    sim.drain();
}

#[test]
fn rfc3261_17_1_4_unreachable_destination_ends_client_transactions_with_transport_error() {
    let (mut sim, options) = client(Method::Options);
    let now = sim.now;
    let invite = sim
        .ep(NODE)
        .send_request(now, &request(Method::Invite), Target::udp(addr(UAS_ADDR)))
        .unwrap();
    // A transaction to another destination is not concerned.
    let other = sim
        .ep(NODE)
        .send_request(
            now,
            &request(Method::Options),
            Target::udp(addr("127.0.0.3:5060")),
        )
        .unwrap();
    sim.drain();
    at(&mut sim, 100);
    unreachable(&mut sim, UAS_ADDR);
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(100), Ev::TransportError(TxId::Client(options))),
            (ms(100), Ev::TransportError(TxId::Client(invite))),
        ]
    );
    assert_eq!(sim.ep(NODE).client_state(options), None);
    assert_eq!(sim.ep(NODE).client_state(invite), None);
    assert_eq!(sim.ep(NODE).client_state(other), Some(ClientState::Trying));
    // No retransmission after the failure.
    at(&mut sim, T1X64 + 1);
    assert_eq!(log_times(&sim, "INVITE"), ms_list(&[0]));
    assert_eq!(
        events(&mut sim),
        vec![(ms(T1X64), Ev::Timeout(TxId::Client(other), Timer::F))]
    );
    assert_idle(&mut sim);
}

// RFC 3261 18.4, 17.1.4: a dual-stack socket reports an IPv4 peer by its IPv4-mapped IPv6
// address; it is the same destination as the plain IPv4 one the transaction was sent to.
#[test]
fn rfc3261_18_4_an_unreachable_ipv4_mapped_address_is_the_ipv4_destination() {
    let (mut sim, options) = client(Method::Options);
    at(&mut sim, 100);
    let v4: SocketAddr = addr(UAS_ADDR);
    let SocketAddr::V4(v4) = v4 else {
        panic!("an IPv4 test address")
    };
    let mapped = SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port());
    let now = sim.now;
    sim.ep(NODE).handle_unreachable(now, mapped);
    sim.drain();
    assert_eq!(
        events(&mut sim),
        vec![(ms(100), Ev::TransportError(TxId::Client(options)))]
    );
    assert_eq!(sim.ep(NODE).client_state(options), None);
}

#[test]
fn rfc3261_17_1_4_unreachable_after_the_final_response_changes_nothing() {
    // The ICMP is about the ACK or a late retransmission: the transaction has its answer.
    let (mut sim, tx) = client(Method::Invite);
    at(&mut sim, 100);
    reply(&mut sim, "INVITE", 486);
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Completed));
    unreachable(&mut sim, UAS_ADDR);
    assert_eq!(
        events(&mut sim),
        vec![(ms(100), Ev::Response { tx, code: 486 })]
    );
    assert_eq!(sim.ep(NODE).client_state(tx), Some(ClientState::Completed));
}

#[test]
fn rfc3261_17_2_4_unreachable_client_ends_the_server_transaction_and_its_retransmissions() {
    let (mut sim, tx) = server(&peer_invite());
    respond(&mut sim, tx, 486).unwrap();
    at(&mut sim, 600);
    assert_eq!(log_times(&sim, "SIP/2.0 486"), ms_list(&[0, 500]));
    unreachable(&mut sim, UAC_ADDR);
    assert_eq!(
        events(&mut sim),
        vec![(ms(600), Ev::TransportError(TxId::Server(tx)))]
    );
    at(&mut sim, T1X64 + 1);
    assert_eq!(log_times(&sim, "SIP/2.0 486"), ms_list(&[0, 500]));
    assert_idle(&mut sim);
}

#[test]
fn unreachable_reports_are_applied_at_most_once_per_100_ms() {
    // A flood of ICMP messages must not make every report a pass over all transactions:
    // the first report is applied at once, the next ones together 100 ms later.
    let (mut sim, first) = client(Method::Options);
    let now = sim.now;
    let second = sim
        .ep(NODE)
        .send_request(
            now,
            &request(Method::Options),
            Target::udp(addr("127.0.0.3:5060")),
        )
        .unwrap();
    sim.drain();
    at(&mut sim, 10);
    unreachable(&mut sim, UAS_ADDR);
    at(&mut sim, 20);
    unreachable(&mut sim, "127.0.0.3:5060");
    assert_eq!(sim.ep(NODE).client_state(second), Some(ClientState::Trying));
    assert_eq!(sim.ep(NODE).poll_timeout(), Some(sim.start + ms(110)));
    at(&mut sim, 110);
    assert_eq!(
        events(&mut sim),
        vec![
            (ms(10), Ev::TransportError(TxId::Client(first))),
            (ms(110), Ev::TransportError(TxId::Client(second))),
        ]
    );
    assert_idle(&mut sim);
}

#[test]
fn rfc3261_16_8_a_provisional_response_restarts_the_invite_server_safety_timer() {
    // RFC 3261 16.6 step 11 and 16.8: a proxy relaying a 180 lets its branch's timer C (and
    // the CANCEL it sends) end a long-ringing call; the server transaction's own 408 comes
    // only after timer C + 64*T1 + T4 without a final response.
    let (mut sim, tx) = server(&peer_invite());
    at(&mut sim, 1_000);
    respond(&mut sim, tx, 180).unwrap();
    at(&mut sim, TIMER_C + 10_000);
    assert!(
        events(&mut sim).is_empty(),
        "no safety 408 at timer C after a 180"
    );
    assert!(log_times(&sim, "SIP/2.0 408").is_empty());
    let deadline = 1_000 + TIMER_C + T1X64 + T4;
    at(&mut sim, deadline);
    assert_eq!(
        events(&mut sim),
        vec![(
            ms(deadline),
            Ev::Timeout(TxId::Server(tx), Timer::Unanswered)
        )]
    );
    assert_eq!(log_times(&sim, "SIP/2.0 408"), ms_list(&[deadline]));
}
