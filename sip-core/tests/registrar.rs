//! The registrar (RFC 3261 section 10.3, RFC 3327 section 5.3, RFC 5626 section 6) through
//! the UAS core on the simulated network and its virtual clock: one test per step, the
//! location store's expiry and limits, and the external store interface.

#[path = "support/sim.rs"]
mod sim;

use std::time::{Duration, Instant};

use sim::{NetConfig, Sim};
use sip_core::location::{Binding, LocationStore, StoreLimits};
use sip_core::registrar::{RegistrarConfig, Reject};
use sip_core::ua::{LocationMode, LocationOp, UaConfig, UserAgent};
use sip_core::{Event, HeaderName, Method, OwnedMessage, RequestBuilder, SeededRng, Target};

const UAC: usize = 0;
const REG: usize = 1;
const DOMAIN: &str = "example.com";

fn setup_with(config: RegistrarConfig, location: LocationMode) -> Sim {
    let mut sim = Sim::new(1, NetConfig::perfect());
    sim.add_node("127.0.0.1:5060");
    sim.add_node("127.0.0.2:5060");
    let mut ua = UaConfig::new("<sip:sipd@127.0.0.2:5060>");
    ua.registrar = Some(config);
    ua.location = location;
    sim.nodes[REG].ua = Some(UserAgent::new(ua, [4; 32]));
    sim
}

fn config() -> RegistrarConfig {
    RegistrarConfig {
        domains: vec![DOMAIN.into(), "127.0.0.2".into()],
        default_expires: 3600,
        min_expires: 60,
        max_expires: 7200,
        max_bindings_per_aor: 5,
    }
}

fn setup() -> Sim {
    setup_with(config(), LocationMode::default())
}

/// A REGISTER for `aor` with `call_id`, `cseq` and extra headers (Contact among them).
fn register(aor: &str, call_id: &str, cseq: u32, headers: &[(&str, &str)]) -> OwnedMessage {
    register_to(&format!("sip:{DOMAIN}"), aor, call_id, cseq, headers)
}

fn register_to(
    ruri: &str,
    aor: &str,
    call_id: &str,
    cseq: u32,
    headers: &[(&str, &str)],
) -> OwnedMessage {
    let mut b = RequestBuilder::new(Method::Register, ruri)
        .from(&format!("<{aor}>"))
        .to(&format!("<{aor}>"))
        .call_id(call_id)
        .cseq(cseq);
    for (n, v) in headers {
        b = b.header(n, v);
    }
    b.build(&mut SeededRng::new([cseq as u8; 32])).unwrap()
}

/// Sends `req` and returns the final response.
fn send(sim: &mut Sim, req: &OwnedMessage) -> OwnedMessage {
    let now = sim.now;
    let tx = sim
        .ep(UAC)
        .send_request(now, req, Target::udp("127.0.0.2:5060".parse().unwrap()))
        .unwrap();
    sim.run_for(Duration::from_millis(100));
    sim.events(UAC)
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Response { tx: t, response } if t == tx => Some(response),
            _ => None,
        })
        .find(|r| r.view().status().is_some_and(|s| s >= 200))
        .expect("a final response")
}

fn status(r: &OwnedMessage) -> u16 {
    r.view().status().unwrap()
}

/// The Contact values of a response, as written.
fn contacts(r: &OwnedMessage) -> Vec<String> {
    r.view()
        .header_all(HeaderName::Contact)
        .map(str::to_owned)
        .collect()
}

/// The `expires` of the Contact whose URI is `uri` in a 200.
fn expires_of(r: &OwnedMessage, uri: &str) -> Option<u32> {
    let m = r.message().unwrap();
    let found = m.contacts().find_map(|c| match c {
        sip_core::message::Contact::Addr(a) if a.uri.to_string() == uri => a.expires(),
        _ => None,
    });
    found
}

fn ua(sim: &Sim) -> &UserAgent {
    sim.nodes[REG].ua.as_ref().unwrap()
}

const ALICE: &str = "sip:alice@example.com";

#[test]
fn rfc3261_10_3_step1_a_request_uri_of_another_domain_gets_404() {
    // RFC 3261 10.3 step 1 (and 21.4.5)
    let mut sim = setup();
    let req = register_to(
        "sip:elsewhere.org",
        ALICE,
        "c1",
        1,
        &[("Contact", "<sip:alice@10.0.0.1>")],
    );
    assert_eq!(status(&send(&mut sim, &req)), 404);
    assert_eq!(ua(&sim).bindings(), 0);
}

#[test]
fn rfc3261_10_3_step2_an_unknown_require_gets_420_with_unsupported() {
    // RFC 3261 10.3 step 2
    let mut sim = setup();
    let req = register(
        ALICE,
        "c1",
        1,
        &[
            ("Contact", "<sip:alice@10.0.0.1>"),
            ("Require", "path, foo"),
        ],
    );
    let r = send(&mut sim, &req);
    assert_eq!(status(&r), 420);
    assert_eq!(r.view().header(HeaderName::Unsupported), Some("foo"));
    assert_eq!(ua(&sim).bindings(), 0);
    // the tags it knows pass
    let req = register(
        ALICE,
        "c1",
        2,
        &[("Contact", "<sip:alice@10.0.0.1>"), ("Require", "path")],
    );
    assert_eq!(status(&send(&mut sim, &req)), 200);
}

#[test]
fn rfc3261_10_3_step5_the_aor_is_taken_from_to_in_canonical_form() {
    // RFC 3261 10.3 step 5: URI parameters removed, escapes decoded, host case ignored
    let mut sim = setup();
    let req = register(
        "sip:%61lice@EXAMPLE.com;user=ip",
        "c1",
        1,
        &[("Contact", "<sip:alice@10.0.0.1>")],
    );
    assert_eq!(status(&send(&mut sim, &req)), 200);
    let now = sim.now;
    let found = ua(&sim).lookup(now, ALICE);
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].aor, ALICE);
    // a query with the plain form sees the same binding
    let q = send(&mut sim, &register(ALICE, "c2", 1, &[]));
    assert_eq!(contacts(&q).len(), 1);
}

#[test]
fn rfc3261_10_3_step5_an_aor_of_a_domain_not_served_gets_404() {
    // RFC 3261 10.3 step 5
    let mut sim = setup();
    let req = register(
        "sip:alice@elsewhere.org",
        "c1",
        1,
        &[("Contact", "<sip:alice@10.0.0.1>")],
    );
    assert_eq!(status(&send(&mut sim, &req)), 404);
}

#[test]
fn rfc3261_10_3_step6_contact_star_needs_to_be_alone_with_expires_0() {
    // RFC 3261 10.3 step 6
    let mut sim = setup();
    let add = register(ALICE, "c1", 1, &[("Contact", "<sip:alice@10.0.0.1>")]);
    assert_eq!(status(&send(&mut sim, &add)), 200);
    let with_other = register(
        ALICE,
        "c1",
        2,
        &[("Contact", "*"), ("Contact", "<sip:a@h>"), ("Expires", "0")],
    );
    assert_eq!(status(&send(&mut sim, &with_other)), 400);
    let without_expires = register(ALICE, "c1", 3, &[("Contact", "*")]);
    assert_eq!(status(&send(&mut sim, &without_expires)), 400);
    let nonzero = register(ALICE, "c1", 4, &[("Contact", "*"), ("Expires", "60")]);
    assert_eq!(status(&send(&mut sim, &nonzero)), 400);
    assert_eq!(
        ua(&sim).bindings(),
        1,
        "nothing removed by the bad requests"
    );
    let remove_all = register(ALICE, "c1", 5, &[("Contact", "*"), ("Expires", "0")]);
    let r = send(&mut sim, &remove_all);
    assert_eq!(status(&r), 200);
    assert!(contacts(&r).is_empty());
    assert_eq!(ua(&sim).bindings(), 0);
}

#[test]
fn rfc3261_10_3_step6_expiry_from_the_parameter_else_the_header_else_the_default() {
    // RFC 3261 10.3 step 6: the expires parameter, else the Expires header, else the
    // registrar's default; capped at its maximum
    let mut sim = setup();
    let req = register(
        ALICE,
        "c1",
        1,
        &[
            ("Contact", "<sip:a@10.0.0.1>;expires=120"),
            ("Contact", "<sip:a@10.0.0.2>"),
            ("Contact", "<sip:a@10.0.0.3>;expires=99999"),
            ("Expires", "300"),
        ],
    );
    let r = send(&mut sim, &req);
    assert_eq!(status(&r), 200);
    assert_eq!(expires_of(&r, "sip:a@10.0.0.1"), Some(120));
    assert_eq!(expires_of(&r, "sip:a@10.0.0.2"), Some(300));
    assert_eq!(expires_of(&r, "sip:a@10.0.0.3"), Some(7200), "the maximum");
    let bob = register(
        "sip:bob@example.com",
        "c2",
        1,
        &[("Contact", "<sip:b@10.0.0.9>")],
    );
    let r = send(&mut sim, &bob);
    assert_eq!(expires_of(&r, "sip:b@10.0.0.9"), Some(3600), "the default");
}

#[test]
fn rfc3261_10_3_step6_too_brief_an_expiry_gets_423_with_min_expires() {
    // RFC 3261 10.3 step 6 (and 21.4.17, 20.23)
    let mut sim = setup();
    let req = register(
        ALICE,
        "c1",
        1,
        &[("Contact", "<sip:a@10.0.0.1>;expires=30")],
    );
    let r = send(&mut sim, &req);
    assert_eq!(status(&r), 423);
    assert_eq!(r.view().header(HeaderName::MinExpires), Some("60"));
    assert_eq!(ua(&sim).bindings(), 0);
    // zero is not too brief: it removes
    let req = register(ALICE, "c1", 2, &[("Contact", "<sip:a@10.0.0.1>;expires=0")]);
    assert_eq!(status(&send(&mut sim, &req)), 200);
}

#[test]
fn rfc3261_10_3_step7_a_stale_cseq_for_the_same_call_id_fails_and_changes_nothing() {
    // RFC 3261 10.3 step 7: same Call-ID, CSeq not higher: the whole request fails
    let mut sim = setup();
    let first = register(ALICE, "c1", 5, &[("Contact", "<sip:a@10.0.0.1>")]);
    assert_eq!(status(&send(&mut sim, &first)), 200);
    let stale = register(
        ALICE,
        "c1",
        5,
        &[
            ("Contact", "<sip:a@10.0.0.2>"),
            ("Contact", "<sip:a@10.0.0.1>;expires=0"),
        ],
    );
    assert_eq!(status(&send(&mut sim, &stale)), 500);
    let now = sim.now;
    let left = ua(&sim).lookup(now, ALICE);
    assert_eq!(
        left.len(),
        1,
        "all or nothing: the new contact was not added"
    );
    assert_eq!(left[0].contact, "sip:a@10.0.0.1");
    let older = register(ALICE, "c1", 4, &[("Contact", "<sip:a@10.0.0.1>;expires=0")]);
    assert_eq!(status(&send(&mut sim, &older)), 500);
    assert_eq!(ua(&sim).bindings(), 1);
}

#[test]
fn rfc3261_10_3_step7_a_new_call_id_replaces_the_binding() {
    // RFC 3261 10.3 step 7: another Call-ID updates the binding whatever its CSeq
    let mut sim = setup();
    let first = register(ALICE, "c1", 50, &[("Contact", "<sip:a@10.0.0.1>;q=0.5")]);
    assert_eq!(status(&send(&mut sim, &first)), 200);
    let other = register(
        ALICE,
        "c2",
        1,
        &[("Contact", "<sip:a@10.0.0.1>;expires=600")],
    );
    let r = send(&mut sim, &other);
    assert_eq!(status(&r), 200);
    let now = sim.now;
    let b = ua(&sim).lookup(now, ALICE);
    assert_eq!(b.len(), 1);
    assert_eq!((b[0].call_id.as_str(), b[0].cseq), ("c2", 1));
    assert_eq!(b[0].q, None, "replaced, not merged");
    assert_eq!(expires_of(&r, "sip:a@10.0.0.1"), Some(600));
}

#[test]
fn rfc3261_10_3_step7_expires_0_removes_the_binding() {
    // RFC 3261 10.3 step 7
    let mut sim = setup();
    let add = register(
        ALICE,
        "c1",
        1,
        &[
            ("Contact", "<sip:a@10.0.0.1>"),
            ("Contact", "<sip:a@10.0.0.2>"),
        ],
    );
    assert_eq!(contacts(&send(&mut sim, &add)).len(), 2);
    let remove = register(
        ALICE,
        "c1",
        2,
        &[("Contact", "<sip:a@10.0.0.1>"), ("Expires", "0")],
    );
    let r = send(&mut sim, &remove);
    assert_eq!(status(&r), 200);
    assert_eq!(contacts(&r).len(), 1);
    assert_eq!(expires_of(&r, "sip:a@10.0.0.2"), Some(3600));
    assert_eq!(ua(&sim).bindings(), 1);
}

#[test]
fn rfc3261_10_3_step8_the_200_lists_every_binding_with_its_remaining_expiry() {
    // RFC 3261 10.3 step 8
    let mut sim = setup();
    let a = register(
        ALICE,
        "c1",
        1,
        &[("Contact", "<sip:a@10.0.0.1>;expires=600")],
    );
    send(&mut sim, &a);
    sim.run_for(Duration::from_secs(100));
    let b = register(
        ALICE,
        "c2",
        1,
        &[("Contact", "<sip:a@10.0.0.2>;expires=300")],
    );
    let r = send(&mut sim, &b);
    assert_eq!(contacts(&r).len(), 2);
    // 600 s granted about 100.1 s earlier: 500 s left, rounded up
    assert_eq!(expires_of(&r, "sip:a@10.0.0.1"), Some(500));
    assert_eq!(expires_of(&r, "sip:a@10.0.0.2"), Some(300));
}

#[test]
fn rfc3261_10_3_a_register_without_contact_is_a_query() {
    // RFC 3261 10.2.3 / 10.3 step 8: no Contact: the bindings are listed, none changed
    let mut sim = setup();
    let a = register(ALICE, "c1", 1, &[("Contact", "<sip:a@10.0.0.1>")]);
    send(&mut sim, &a);
    let q = send(&mut sim, &register(ALICE, "c9", 1, &[]));
    assert_eq!(status(&q), 200);
    assert_eq!(expires_of(&q, "sip:a@10.0.0.1"), Some(3600));
    assert_eq!(ua(&sim).bindings(), 1);
    let empty = send(&mut sim, &register("sip:nobody@example.com", "c9", 2, &[]));
    assert_eq!(status(&empty), 200);
    assert!(contacts(&empty).is_empty());
}

#[test]
fn rfc3261_10_2_1_2_q_values_are_stored_and_returned() {
    // RFC 3261 10.2.1.2 / 20.10: the q parameter
    let mut sim = setup();
    let a = register(
        ALICE,
        "c1",
        1,
        &[
            ("Contact", "<sip:a@10.0.0.1>;q=0.7"),
            ("Contact", "<sip:a@10.0.0.2>;q=1.0"),
            ("Contact", "<sip:a@10.0.0.3>;q=0.125"),
        ],
    );
    let r = send(&mut sim, &a);
    let m = r.message().unwrap();
    let qs: Vec<(String, Option<u16>)> = m
        .contacts()
        .filter_map(|c| match c {
            sip_core::message::Contact::Addr(a) => Some((a.uri.to_string(), a.q())),
            _ => None,
        })
        .collect();
    assert_eq!(
        qs,
        [
            ("sip:a@10.0.0.1".to_owned(), Some(700)),
            ("sip:a@10.0.0.2".to_owned(), Some(1000)),
            ("sip:a@10.0.0.3".to_owned(), Some(125)),
        ]
    );
}

#[test]
fn rfc3327_5_3_path_is_stored_and_returned_in_the_200() {
    // RFC 3327 section 5.3
    let mut sim = setup();
    let a = register(
        ALICE,
        "c1",
        1,
        &[
            ("Contact", "<sip:a@10.0.0.1>"),
            (
                "Path",
                "<sip:edge1.example.com;lr>, <sip:edge2.example.com;lr>",
            ),
            ("Path", "<sip:core.example.com;lr>"),
            ("Supported", "path"),
        ],
    );
    let r = send(&mut sim, &a);
    assert_eq!(status(&r), 200);
    assert_eq!(
        r.view().extension_header("Path"),
        Some("<sip:edge1.example.com;lr>, <sip:edge2.example.com;lr>, <sip:core.example.com;lr>")
    );
    let now = sim.now;
    assert_eq!(
        ua(&sim).lookup(now, ALICE)[0].path,
        [
            "<sip:edge1.example.com;lr>",
            "<sip:edge2.example.com;lr>",
            "<sip:core.example.com;lr>"
        ]
    );
}

#[test]
fn rfc3327_5_3_path_is_returned_only_to_a_ua_that_supports_it() {
    // RFC 3327 section 5.3: stored either way, copied into the 200 only for a UA that
    // said Supported: path
    let mut sim = setup();
    let a = register(
        ALICE,
        "c1",
        1,
        &[
            ("Contact", "<sip:a@10.0.0.1>"),
            ("Path", "<sip:edge1.example.com;lr>"),
        ],
    );
    let r = send(&mut sim, &a);
    assert_eq!(status(&r), 200);
    assert_eq!(r.view().extension_header("Path"), None);
    let now = sim.now;
    assert_eq!(
        ua(&sim).lookup(now, ALICE)[0].path,
        ["<sip:edge1.example.com;lr>"]
    );
}

#[test]
fn rfc5626_6_instance_and_reg_id_are_stored_and_name_the_binding() {
    // RFC 5626 section 6: +sip.instance and reg-id stored; a REGISTER with the same pair
    // replaces the binding even with another Contact URI; Require: outbound in the 200
    let mut sim = setup();
    let inst = "\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\"";
    let c1 = format!("<sip:a@10.0.0.1;ob>;+sip.instance={inst};reg-id=1");
    let r = send(
        &mut sim,
        &register(
            ALICE,
            "c1",
            1,
            &[("Contact", &c1), ("Supported", "outbound, path")],
        ),
    );
    assert_eq!(status(&r), 200);
    assert_eq!(r.view().header(HeaderName::Require), Some("outbound"));
    assert!(contacts(&r)[0].contains("reg-id=1"));
    assert!(contacts(&r)[0].contains("+sip.instance="));
    let c2 = format!("<sip:a@10.0.0.7;ob>;+sip.instance={inst};reg-id=1");
    send(&mut sim, &register(ALICE, "c1", 2, &[("Contact", &c2)]));
    let now = sim.now;
    let b = ua(&sim).lookup(now, ALICE);
    assert_eq!(b.len(), 1, "the same instance and reg-id: one binding");
    assert_eq!(b[0].contact, "sip:a@10.0.0.7;ob");
    assert_eq!(b[0].instance.as_deref(), Some(inst));
    assert_eq!(b[0].reg_id, Some(1));
    // another reg-id of the same instance is a second flow
    let c3 = format!("<sip:a@10.0.0.8;ob>;+sip.instance={inst};reg-id=2");
    send(&mut sim, &register(ALICE, "c1", 3, &[("Contact", &c3)]));
    assert_eq!(ua(&sim).bindings(), 2);
}

#[test]
fn rfc5626_6_a_reg_id_with_more_than_one_contact_gets_400() {
    // RFC 5626 section 6
    let mut sim = setup();
    let inst = "\"<urn:uuid:00000000-0000-1000-8000-AABBCCDDEEFF>\"";
    let c1 = format!("<sip:a@10.0.0.1;ob>;+sip.instance={inst};reg-id=1");
    let r = send(
        &mut sim,
        &register(
            ALICE,
            "c1",
            1,
            &[("Contact", &c1), ("Contact", "<sip:a@10.0.0.2>")],
        ),
    );
    assert_eq!(status(&r), 400);
}

#[test]
fn rfc3261_10_3_a_binding_is_dropped_when_it_expires_on_the_clock() {
    // RFC 3261 10.2.1 / 10.3: a binding lasts its expiry, then is gone (and its memory
    // freed) without any other request
    let mut sim = setup();
    let a = register(
        ALICE,
        "c1",
        1,
        &[("Contact", "<sip:a@10.0.0.1>;expires=60")],
    );
    send(&mut sim, &a);
    assert_eq!(ua(&sim).bindings(), 1);
    sim.run_for(Duration::from_secs(59));
    assert_eq!(ua(&sim).bindings(), 1);
    sim.run_for(Duration::from_secs(2));
    assert_eq!(ua(&sim).bindings(), 0);
    assert_eq!(ua(&sim).location_store().unwrap().aors(), 0);
}

#[test]
fn registrar_limits_bindings_per_aor_with_403() {
    // RFC 3261 10.3 (policy) / security: one AOR cannot grow without bound
    let mut sim = setup();
    for i in 0..5 {
        let c = format!("<sip:a@10.0.1.{i}>");
        assert_eq!(
            status(&send(
                &mut sim,
                &register(ALICE, "c1", i + 1, &[("Contact", &c)])
            )),
            200
        );
    }
    let r = send(
        &mut sim,
        &register(ALICE, "c1", 10, &[("Contact", "<sip:a@10.0.2.1>")]),
    );
    assert_eq!(status(&r), 403);
    assert_eq!(ua(&sim).bindings(), 5);
    // refreshing an existing one is fine
    let r = send(
        &mut sim,
        &register(ALICE, "c1", 11, &[("Contact", "<sip:a@10.0.1.0>")]),
    );
    assert_eq!(status(&r), 200);
}

#[test]
fn registrar_limits_the_number_of_aors_with_503_and_retry_after() {
    // RFC 3261 21.5.4 / security: the table of AORs is bounded
    let limits = StoreLimits {
        max_aors: 3,
        max_bindings: 100,
        retry_after: Duration::from_secs(30),
        ..StoreLimits::default()
    };
    let mut sim = setup_with(config(), LocationMode::Memory(limits));
    for i in 0..3 {
        let aor = format!("sip:u{i}@example.com");
        let r = send(
            &mut sim,
            &register(&aor, "c1", 1, &[("Contact", "<sip:x@10.0.0.1>")]),
        );
        assert_eq!(status(&r), 200);
    }
    let r = send(
        &mut sim,
        &register(
            "sip:u9@example.com",
            "c1",
            1,
            &[("Contact", "<sip:x@10.0.0.1>")],
        ),
    );
    assert_eq!(status(&r), 503);
    assert_eq!(r.view().header(HeaderName::RetryAfter), Some("30"));
    assert_eq!(ua(&sim).location_store().unwrap().aors(), 3);
}

fn external(max_outstanding: usize) -> LocationMode {
    match LocationMode::external() {
        LocationMode::External {
            timeout,
            retry_after,
            ..
        } => LocationMode::External {
            max_outstanding,
            timeout,
            retry_after,
        },
        m => m,
    }
}

/// Sends without waiting for the answer.
fn send_async(sim: &mut Sim, req: &OwnedMessage) -> sip_core::ClientTxId {
    let now = sim.now;
    let tx = sim
        .ep(UAC)
        .send_request(now, req, Target::udp("127.0.0.2:5060".parse().unwrap()))
        .unwrap();
    sim.run_for(Duration::from_millis(50));
    tx
}

fn finals(sim: &mut Sim) -> Vec<(sip_core::ClientTxId, u16)> {
    sim.events(UAC)
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Response { tx, response } => {
                let s = response.view().status()?;
                (s >= 200).then_some((tx, s))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn external_store_gets_checked_requests_and_its_completion_is_answered() {
    // RFC 3261 10.3 steps 7-8 with the store outside the UAS core
    let mut sim = setup_with(config(), external(8));
    let tx = send_async(
        &mut sim,
        &register(ALICE, "c1", 1, &[("Contact", "<sip:a@10.0.0.1>")]),
    );
    let node = &mut sim.nodes[REG];
    let ua = node.ua.as_mut().unwrap();
    let req = ua.poll_location().expect("a request for the store");
    assert!(ua.poll_location().is_none());
    let LocationOp::Register(register_req) = req.op else {
        panic!("a Register op");
    };
    assert_eq!(register_req.aor(), ALICE);
    assert_eq!(ua.bindings(), 0, "the UAS core keeps no binding itself");
    let now = sim.now;
    let new = register_req.apply(&[], now).unwrap();
    assert_eq!(new.len(), 1);
    assert_eq!(
        new[0].source.map(|s| s.remote),
        Some("127.0.0.1:5060".parse().unwrap())
    );
    let node = &mut sim.nodes[REG];
    node.ua
        .as_mut()
        .unwrap()
        .complete_location(now, req.ticket, Ok(new.clone()), &mut node.ep);
    // a second completion of the same ticket is ignored
    node.ua
        .as_mut()
        .unwrap()
        .complete_location(now, req.ticket, Ok(new), &mut node.ep);
    sim.run_for(Duration::from_millis(100));
    assert_eq!(finals(&mut sim), [(tx, 200)]);
    // a query is a lookup
    let q = send_async(&mut sim, &register(ALICE, "c2", 1, &[]));
    let node = &mut sim.nodes[REG];
    let ua = node.ua.as_mut().unwrap();
    let req = ua.poll_location().unwrap();
    assert!(matches!(&req.op, LocationOp::Lookup { aor } if aor == ALICE));
    let reject = Reject::server_error("backend down");
    ua.complete_location(sim.now, req.ticket, Err(reject), &mut node.ep);
    sim.run_for(Duration::from_millis(100));
    assert_eq!(finals(&mut sim), [(q, 500)]);
}

#[test]
fn external_store_outstanding_requests_are_bounded_with_503() {
    // RFC 3261 21.5.4: beyond the bound, 503 with Retry-After; nothing queued
    let mut sim = setup_with(config(), external(2));
    let mut txs = Vec::new();
    for i in 0..3 {
        let c = format!("<sip:a@10.0.0.{i}>");
        txs.push(send_async(
            &mut sim,
            &register(ALICE, "c1", i + 1, &[("Contact", &c)]),
        ));
    }
    assert_eq!(finals(&mut sim), [(txs[2], 503)]);
    let ua = sim.nodes[REG].ua.as_mut().unwrap();
    assert_eq!(ua.outstanding_location(), 2);
    assert!(ua.poll_location().is_some() && ua.poll_location().is_some());
    assert!(ua.poll_location().is_none());
}

#[test]
fn external_store_that_never_answers_gets_500_and_its_late_completion_is_ignored() {
    // RFC 3261 10.3 step 7: a store that fails fails the request (500)
    let mut sim = setup_with(config(), external(2));
    let tx = send_async(
        &mut sim,
        &register(ALICE, "c1", 1, &[("Contact", "<sip:a@10.0.0.1>")]),
    );
    let ticket = sim.nodes[REG]
        .ua
        .as_mut()
        .unwrap()
        .poll_location()
        .unwrap()
        .ticket;
    sim.run_for(Duration::from_secs(11));
    assert_eq!(finals(&mut sim), [(tx, 500)]);
    let node = &mut sim.nodes[REG];
    let ua = node.ua.as_mut().unwrap();
    assert_eq!(ua.outstanding_location(), 0);
    let late: Vec<Binding> = Vec::new();
    let now: Instant = sim.now;
    ua.complete_location(now, ticket, Ok(late), &mut node.ep);
    sim.run_for(Duration::from_millis(100));
    assert!(finals(&mut sim).is_empty());
}

/// A registrar with digest users alice/secret and bob/pw in realm example.com.
fn setup_auth(auth_calls: bool) -> Sim {
    use sip_core::auth::{AuthConfig, Authenticator};
    let mut sim = Sim::new(1, NetConfig::perfect());
    sim.add_node("127.0.0.1:5060");
    sim.add_node("127.0.0.2:5060");
    let mut auth = Authenticator::new(AuthConfig::new(DOMAIN, [7; 32]), sim.now, 1_800_000_000);
    auth.add_user("alice", "secret");
    auth.add_user("bob", "pw");
    let mut ua = UaConfig::new("<sip:sipd@127.0.0.2:5060>");
    ua.registrar = Some(config());
    ua.auth = Some(auth);
    ua.auth_calls = auth_calls;
    sim.nodes[REG].ua = Some(UserAgent::new(ua, [4; 32]));
    sim
}

fn challenge_of(r: &OwnedMessage) -> String {
    r.view()
        .header(HeaderName::WwwAuthenticate)
        .unwrap_or("")
        .to_owned()
}

#[test]
fn rfc3261_10_3_step3_register_is_challenged_then_accepted() {
    // RFC 3261 10.3 step 3 and 22.2: 401 with WWW-Authenticate, then 200 with credentials
    let mut sim = setup_auth(false);
    let mut client = sip_core::auth::DigestClient::new("alice", "secret");
    let mut rng = SeededRng::new([5; 32]);
    let req = register(ALICE, "c1", 1, &[("Contact", "<sip:a@10.0.0.1>")]);
    let r = send(&mut sim, &req);
    assert_eq!(status(&r), 401);
    assert!(
        challenge_of(&r).contains("realm=\"example.com\""),
        "{}",
        challenge_of(&r)
    );
    assert_eq!(ua(&sim).bindings(), 0);
    let again = client.retry(&req, &r, &mut rng).unwrap();
    let ok = send(&mut sim, &again);
    assert_eq!(status(&ok), 200);
    assert_eq!(ua(&sim).bindings(), 1);
    assert_eq!(ua(&sim).stats().challenges, 1);
    // a refresh with the kept nonce (nonce-count 2) needs no new challenge
    let refresh = register(ALICE, "c1", 3, &[("Contact", "<sip:a@10.0.0.1>")]);
    let refresh = client.authorize(&refresh, &mut rng).unwrap();
    assert_eq!(status(&send(&mut sim, &refresh)), 200);
    assert_eq!(ua(&sim).stats().challenges, 1);
}

#[test]
fn rfc3261_10_3_steps_1_and_2_come_before_the_challenge() {
    // RFC 3261 10.3: a REGISTER for another domain or with an unknown Require is refused
    // as such, not challenged first (step 3 follows steps 1 and 2)
    let mut sim = setup_auth(false);
    let contact = ("Contact", "<sip:a@10.0.0.1>");
    let other = register_to("sip:elsewhere.org", ALICE, "c1", 1, &[contact]);
    assert_eq!(status(&send(&mut sim, &other)), 404);
    let require = register(ALICE, "c1", 2, &[contact, ("Require", "foo")]);
    assert_eq!(status(&send(&mut sim, &require)), 420);
    assert_eq!(ua(&sim).stats().challenges, 0);
}

#[test]
fn rfc3261_22_4_a_wrong_password_is_challenged_again_and_nothing_is_bound() {
    // RFC 3261 22.4 / 22.2: credentials not accepted are answered with a new 401
    let mut sim = setup_auth(false);
    let mut client = sip_core::auth::DigestClient::new("alice", "wrong");
    let mut rng = SeededRng::new([5; 32]);
    let req = register(ALICE, "c1", 1, &[("Contact", "<sip:a@10.0.0.1>")]);
    let r = send(&mut sim, &req);
    let again = client.retry(&req, &r, &mut rng).unwrap();
    let r2 = send(&mut sim, &again);
    assert_eq!(status(&r2), 401);
    assert!(!challenge_of(&r2).contains("stale=true"));
    assert_eq!(ua(&sim).bindings(), 0);
    // the client does not loop on a refused password
    assert!(client.retry(&again, &r2, &mut rng).is_err());
}

#[test]
fn rfc7616_3_3_a_stale_nonce_gets_a_stale_challenge_and_the_retry_registers() {
    // RFC 7616 3.3 (RFC 3261 22.4): an expired nonce with valid credentials: stale=true
    let mut sim = setup_auth(false);
    let mut client = sip_core::auth::DigestClient::new("alice", "secret");
    let mut rng = SeededRng::new([5; 32]);
    let req = register(ALICE, "c1", 1, &[("Contact", "<sip:a@10.0.0.1>")]);
    let r = send(&mut sim, &req);
    sim.run_for(Duration::from_secs(301));
    let late = client.retry(&req, &r, &mut rng).unwrap();
    let stale = send(&mut sim, &late);
    assert_eq!(status(&stale), 401);
    assert!(
        challenge_of(&stale).contains("stale=true"),
        "{}",
        challenge_of(&stale)
    );
    assert_eq!(ua(&sim).bindings(), 0);
    let again = client.retry(&late, &stale, &mut rng).unwrap();
    assert_eq!(status(&send(&mut sim, &again)), 200);
}

#[test]
fn rfc3261_10_3_step4_an_authenticated_user_not_allowed_for_the_aor_gets_403() {
    // RFC 3261 10.3 step 4: bob's valid credentials do not let him register alice
    let mut sim = setup_auth(false);
    let mut client = sip_core::auth::DigestClient::new("bob", "pw");
    let mut rng = SeededRng::new([5; 32]);
    let req = register(ALICE, "c1", 1, &[("Contact", "<sip:bob@10.0.0.66>")]);
    let r = send(&mut sim, &req);
    let again = client.retry(&req, &r, &mut rng).unwrap();
    assert_eq!(status(&send(&mut sim, &again)), 403);
    assert_eq!(ua(&sim).bindings(), 0);
}

#[test]
fn rfc3261_22_1_auth_calls_challenges_options_and_message_too() {
    // RFC 3261 22.1: a UAS may challenge any request; with auth_calls OPTIONS, MESSAGE
    // and INVITE are, without it they are not. (The INVITE has the Contact that section
    // 8.1.1.8 requires: the session layer answers one without it 400.)
    for (auth_calls, want) in [(true, 401), (false, 200)] {
        let mut sim = setup_auth(auth_calls);
        for method in [Method::Options, Method::Message, Method::Invite] {
            let req = RequestBuilder::new(method, "sip:sipd@127.0.0.2:5060")
                .from("<sip:alice@example.com>")
                .to("<sip:sipd@127.0.0.2>")
                .contact("<sip:alice@127.0.0.1:5060>")
                .build(&mut SeededRng::new([2; 32]))
                .unwrap();
            let r = send(&mut sim, &req);
            assert_eq!(status(&r), want, "{method:?} auth_calls={auth_calls}");
            if want == 401 {
                let mut client = sip_core::auth::DigestClient::new("alice", "secret");
                let again = client
                    .retry(&req, &r, &mut SeededRng::new([6; 32]))
                    .unwrap();
                assert_eq!(status(&send(&mut sim, &again)), 200, "{method:?}");
            }
        }
    }
}
