//! The registration client (sip_core::registration) on a virtual clock: a hand-written
//! registrar answers each REGISTER the machine hands out, and time only moves when a test
//! moves it.

#[path = "support/sim.rs"]
mod sim;

use std::time::{Duration, Instant};

use sim::{NetConfig, Sim};
use sip_core::registration::RegistrationUser;
use sip_core::registration::{
    refresh_margin, Backoff, Failure, Registration, RegistrationConfig, RegistrationEvent,
    RegistrationState,
};
use sip_core::{
    Event, HeaderName, OwnedMessage, ResponseBuilder, SeededRng, Target, TransactionUser,
};

const CONTACT: &str = "<sip:alice@192.0.2.4:5060;transport=udp>";

fn config() -> RegistrationConfig {
    RegistrationConfig::new("sip:example.com", "sip:alice@example.com", CONTACT)
}

fn start(config: RegistrationConfig) -> (Registration, Instant) {
    let now = Instant::now();
    let reg = Registration::new(now, config, SeededRng::new([7; 32])).unwrap();
    (reg, now)
}

/// The registrar's answer to `request`: `code` with the given header lines.
fn answer(request: &OwnedMessage, code: u16, headers: &[(&str, &str)]) -> OwnedMessage {
    let view = request.view();
    let mut b = ResponseBuilder::from_view(&view, code);
    for (n, v) in headers {
        b = b.header(n, v);
    }
    b.build(&mut SeededRng::new([9; 32])).unwrap()
}

fn header(m: &OwnedMessage, name: HeaderName) -> String {
    m.view().header(name).unwrap_or("").trim().to_owned()
}

fn cseq(m: &OwnedMessage) -> u32 {
    header(m, HeaderName::CSeq)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// Registers with a 200 granting `granted` seconds to our Contact; returns the REGISTER.
fn register_ok(reg: &mut Registration, now: Instant, granted: u32) -> OwnedMessage {
    let req = reg.poll_request(now).expect("a REGISTER is due");
    let contact = format!("{CONTACT};expires={granted}");
    reg.handle_response(now, &answer(&req, 200, &[("Contact", &contact)]));
    req
}

/// The next REGISTER: at the machine's deadline, which must exist.
fn next_request(reg: &mut Registration) -> (OwnedMessage, Instant) {
    let at = reg.poll_timeout().expect("a deadline");
    reg.handle_timeout(at);
    let req = reg.poll_request(at).expect("a REGISTER at the deadline");
    (req, at)
}

#[test]
// RFC 3261 10.2.4
fn refresh_at_the_expiry_the_registrar_granted_not_the_one_asked() {
    let (mut reg, t0) = start(config().with_expires(3600));
    let first = register_ok(&mut reg, t0, 600);
    assert_eq!(header(&first, HeaderName::Expires), "3600");
    let RegistrationState::Registered {
        expires_at,
        refresh_at,
    } = reg.state().clone()
    else {
        panic!("not registered: {:?}", reg.state());
    };
    assert_eq!(expires_at, t0 + Duration::from_secs(600));
    assert_eq!(
        refresh_at,
        expires_at - refresh_margin(Duration::from_secs(600))
    );
    assert!(refresh_at > t0 && refresh_at < expires_at);
    assert_eq!(reg.poll_timeout(), Some(refresh_at));
    // Nothing goes before the refresh time.
    assert!(reg
        .poll_request(refresh_at - Duration::from_millis(1))
        .is_none());
    let (refresh, at) = next_request(&mut reg);
    assert_eq!(at, refresh_at);
    assert_eq!(cseq(&refresh), cseq(&first) + 1);
}

#[test]
// RFC 3261 10.2.4: the Contact that matches ours, compared as URIs (19.1.4)
fn granted_expiry_is_read_from_our_contact_compared_as_uris() {
    let (mut reg, t0) = start(config());
    let req = reg.poll_request(t0).unwrap();
    // Another UA's binding first, then ours with another host case and its parameter
    // written differently; the Expires header says something else again.
    let ok = answer(
        &req,
        200,
        &[
            ("Contact", "<sip:alice@198.51.100.7>;expires=3000"),
            (
                "Contact",
                "<sip:alice@192.0.2.4:5060;TRANSPORT=UDP>;expires=120",
            ),
            ("Expires", "900"),
        ],
    );
    reg.handle_response(t0, &ok);
    assert!(matches!(
        reg.state(),
        RegistrationState::Registered { expires_at, .. } if *expires_at == t0 + Duration::from_secs(120)
    ));
}

#[test]
// RFC 3261 10.2.4: no expires parameter on our Contact, so the Expires header
fn granted_expiry_falls_back_to_the_expires_header() {
    let (mut reg, t0) = start(config());
    let req = reg.poll_request(t0).unwrap();
    reg.handle_response(
        t0,
        &answer(&req, 200, &[("Contact", CONTACT), ("Expires", "300")]),
    );
    assert!(matches!(
        reg.state(),
        RegistrationState::Registered { expires_at, .. } if *expires_at == t0 + Duration::from_secs(300)
    ));
}

#[test]
// RFC 3261 10.2.4: our Contact not found in the 2xx (a registrar that rewrote it): the Expires header
fn a_2xx_not_listing_our_contact_falls_back_to_the_expires_header() {
    let (mut reg, t0) = start(config());
    let req = reg.poll_request(t0).unwrap();
    let ok = answer(
        &req,
        200,
        &[
            ("Contact", "<sip:alice@198.51.100.7:4711>;expires=30"),
            ("Expires", "240"),
        ],
    );
    reg.handle_response(t0, &ok);
    assert!(matches!(
        reg.state(),
        RegistrationState::Registered { expires_at, .. } if *expires_at == t0 + Duration::from_secs(240)
    ));
}

#[test]
// RFC 3261 10.2.4: a 2xx granting our Contact no time kept no binding
fn a_2xx_granting_our_contact_zero_is_a_failure() {
    let (mut reg, t0) = start(config());
    let req = reg.poll_request(t0).unwrap();
    let ok = answer(&req, 200, &[("Contact", &format!("{CONTACT};expires=0"))]);
    reg.handle_response(t0, &ok);
    assert!(matches!(
        reg.state(),
        RegistrationState::Retrying {
            failure: Failure::NotBound,
            ..
        }
    ));
}

#[test]
// RFC 3261 10.2.8
fn interval_too_brief_is_retried_at_once_with_min_expires() {
    let (mut reg, t0) = start(config().with_expires(60));
    let first = reg.poll_request(t0).unwrap();
    assert_eq!(header(&first, HeaderName::Expires), "60");
    reg.handle_response(t0, &answer(&first, 423, &[("Min-Expires", "1800")]));
    assert_eq!(reg.poll_timeout(), Some(t0), "retried at once");
    let second = reg.poll_request(t0).unwrap();
    assert_eq!(header(&second, HeaderName::Expires), "1800");
    assert_eq!(cseq(&second), cseq(&first) + 1);
    reg.handle_response(t0, &answer(&second, 200, &[]));
    assert!(matches!(
        reg.state(),
        RegistrationState::Registered { expires_at, .. } if *expires_at == t0 + Duration::from_secs(1800)
    ));
    // The refresh asks for the Min-Expires too.
    let (refresh, _) = next_request(&mut reg);
    assert_eq!(header(&refresh, HeaderName::Expires), "1800");
}

#[test]
// RFC 3261 10.2.8: a Min-Expires not above what was asked cannot help
fn interval_too_brief_without_a_larger_min_expires_is_a_failure() {
    let (mut reg, t0) = start(config().with_expires(600));
    let first = reg.poll_request(t0).unwrap();
    reg.handle_response(t0, &answer(&first, 423, &[("Min-Expires", "60")]));
    assert!(matches!(reg.state(), RegistrationState::Retrying { .. }));
}

#[test]
// RFC 3261 10.2.8: a registrar raising its minimum at every answer is not followed for ever
fn interval_too_brief_is_answered_at_once_only_three_times_in_a_row() {
    let (mut reg, t0) = start(config().with_expires(60));
    for min in ["120", "240", "480"] {
        let req = reg.poll_request(t0).unwrap();
        reg.handle_response(t0, &answer(&req, 423, &[("Min-Expires", min)]));
        assert_eq!(reg.poll_timeout(), Some(t0));
    }
    let req = reg.poll_request(t0).unwrap();
    assert_eq!(header(&req, HeaderName::Expires), "480");
    reg.handle_response(t0, &answer(&req, 423, &[("Min-Expires", "960")]));
    assert!(matches!(
        reg.state(),
        RegistrationState::Retrying {
            failure: Failure::Status { code: 423, .. },
            ..
        }
    ));
}

#[test]
// RFC 3261 10.2 and 10.2.4
fn cseq_increments_and_call_id_stays_the_same() {
    let (mut reg, t0) = start(config());
    let first = register_ok(&mut reg, t0, 100);
    let from = header(&first, HeaderName::From);
    let mut last = first.clone();
    for _ in 0..5 {
        let (req, at) = next_request(&mut reg);
        assert_eq!(
            header(&req, HeaderName::CallId),
            header(&first, HeaderName::CallId)
        );
        assert_eq!(header(&req, HeaderName::CallId), reg.call_id());
        assert_eq!(header(&req, HeaderName::From), from);
        assert_eq!(cseq(&req), cseq(&last) + 1);
        // Failures and successes alike.
        reg.handle_response(at, &answer(&req, 500, &[]));
        let (req2, at2) = next_request(&mut reg);
        assert_eq!(cseq(&req2), cseq(&req) + 1);
        assert_eq!(header(&req2, HeaderName::CallId), reg.call_id());
        reg.handle_response(at2, &answer(&req2, 200, &[("Expires", "100")]));
        last = req2;
    }
}

#[test]
// RFC 3261 10.2: no new REGISTER before the last one's final response
fn one_register_in_flight_at_a_time() {
    let (mut reg, t0) = start(config());
    let req = reg.poll_request(t0).unwrap();
    assert!(reg.in_flight());
    assert_eq!(reg.poll_timeout(), None);
    assert!(reg.poll_request(t0 + Duration::from_secs(3600)).is_none());
    // A provisional response changes nothing; a response to another CSeq is ignored.
    reg.handle_response(t0, &answer(&req, 100, &[]));
    assert!(reg.in_flight());
    let other = String::from_utf8_lossy(req.as_bytes()).replace(" REGISTER\r\n", "0 REGISTER\r\n");
    let other = OwnedMessage::parse(other.as_bytes()).unwrap();
    reg.handle_response(t0, &answer(&other, 200, &[]));
    assert!(reg.in_flight());
    assert_eq!(reg.state(), &RegistrationState::Registering);
}

/// Fails every attempt `n` times; returns each wait the machine chose.
fn waits_after_failures(reg: &mut Registration, t0: Instant, n: usize) -> Vec<(u32, Duration)> {
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..n {
        let req = reg.poll_request(now).expect("never gives up");
        reg.handle_response(now, &answer(&req, 480, &[]));
        let RegistrationState::Retrying { at, failures, .. } = reg.state().clone() else {
            panic!("not retrying: {:?}", reg.state());
        };
        assert_eq!(reg.poll_timeout(), Some(at));
        waits.push((failures, at - now));
        now = at;
    }
    waits
}

#[test]
// RFC 5626 4.5
fn backoff_grows_within_its_bounds_and_never_gives_up() {
    let (mut reg, t0) = start(config());
    let waits = waits_after_failures(&mut reg, t0, 40);
    for (i, (failures, wait)) in waits.iter().enumerate() {
        assert_eq!(*failures, i as u32 + 1);
        // upper = min(1800, 30 * 2^failures), wait in [upper/2, upper]
        let upper = Duration::from_secs((30u64 << failures.min(&20)).min(1800));
        assert!(
            *wait >= upper / 2 && *wait <= upper,
            "wait {wait:?} after {failures} failures"
        );
    }
    assert_eq!(
        Backoff::RFC5626.upper_bound(3, false),
        Duration::from_secs(240),
        "the example of RFC 5626 section 4.5"
    );
    assert_eq!(
        Backoff::RFC5626.upper_bound(1000, false),
        Duration::from_secs(1800)
    );
    // Still trying after 40 failures, and a success resets the count.
    let req = reg
        .poll_request(t0 + Duration::from_secs(1_000_000))
        .unwrap();
    reg.handle_response(t0, &answer(&req, 200, &[]));
    let waits = waits_after_failures(&mut reg, t0 + Duration::from_secs(3600), 1);
    assert_eq!(waits[0].0, 1);
}

#[test]
// RFC 5626 4.5: the wait is randomized from the seeded generator
fn backoff_jitter_comes_from_the_seeded_rng() {
    let run = |seed| {
        let now = Instant::now();
        let mut reg = Registration::new(now, config(), SeededRng::new(seed)).unwrap();
        waits_after_failures(&mut reg, now, 8)
    };
    assert_eq!(run([1; 32]), run([1; 32]), "the same seed, the same waits");
    assert_ne!(run([1; 32]), run([2; 32]), "another seed, other waits");
}

#[test]
// RFC 5626 4.5: base-time 90 s when other registrations are up
fn backoff_base_time_is_90s_while_other_registrations_are_up() {
    let (mut reg, t0) = start(config());
    reg.set_other_registrations_up(true);
    let waits = waits_after_failures(&mut reg, t0, 1);
    assert!(waits[0].1 >= Duration::from_secs(90) && waits[0].1 <= Duration::from_secs(180));
}

#[test]
// RFC 5626 4.5: timeouts and transport errors are failures like the others
fn timeout_and_transport_error_are_retried_with_backoff() {
    let (mut reg, t0) = start(config());
    reg.poll_request(t0).unwrap();
    reg.handle_failure(t0, Failure::Timeout);
    let RegistrationState::Retrying { at, failure, .. } = reg.state().clone() else {
        panic!()
    };
    assert_eq!(failure, Failure::Timeout);
    assert!(at >= t0 + Duration::from_secs(30) && at <= t0 + Duration::from_secs(60));
    reg.poll_request(at).unwrap();
    reg.handle_failure(at, Failure::Transport);
    assert!(matches!(
        reg.state(),
        RegistrationState::Retrying {
            failure: Failure::Transport,
            failures: 2,
            ..
        }
    ));
}

#[test]
// RFC 3261 21.5.4 (and RFC 5626 4.5): a 503 with Retry-After waits what it says
fn retry_after_of_a_503_is_honoured() {
    let (mut reg, t0) = start(config());
    let req = reg.poll_request(t0).unwrap();
    reg.handle_response(t0, &answer(&req, 503, &[("Retry-After", "7")]));
    assert_eq!(reg.poll_timeout(), Some(t0 + Duration::from_secs(7)));
    assert!(reg.poll_request(t0 + Duration::from_secs(6)).is_none());
    let at = t0 + Duration::from_secs(7);
    let again = reg.poll_request(at).unwrap();
    // Without Retry-After, the backoff (second failure: 60 to 120 s).
    reg.handle_response(at, &answer(&again, 503, &[]));
    let RegistrationState::Retrying { at: next, .. } = reg.state().clone() else {
        panic!()
    };
    assert!(next - at >= Duration::from_secs(60) && next - at <= Duration::from_secs(120));
}

#[test]
// RFC 3261 10.2.2
fn stop_removes_our_binding_with_expires_zero() {
    let (mut reg, t0) = start(config());
    let first = register_ok(&mut reg, t0, 600);
    let t1 = t0 + Duration::from_secs(10);
    reg.stop(t1);
    assert_eq!(reg.state(), &RegistrationState::Unregistering);
    assert_eq!(reg.poll_timeout(), Some(t1));
    let remove = reg.poll_request(t1).unwrap();
    let contact = header(&remove, HeaderName::Contact);
    assert!(
        contact.starts_with(CONTACT) && contact.ends_with(";expires=0"),
        "{contact}"
    );
    assert_eq!(header(&remove, HeaderName::Expires), "0");
    assert_eq!(
        header(&remove, HeaderName::CallId),
        header(&first, HeaderName::CallId)
    );
    assert_eq!(cseq(&remove), cseq(&first) + 1);
    reg.handle_response(t1, &answer(&remove, 200, &[]));
    assert_eq!(
        reg.state(),
        &RegistrationState::Unregistered { failure: None }
    );
    assert_eq!(reg.poll_timeout(), None);
    assert!(reg.poll_request(t1 + Duration::from_secs(10_000)).is_none());
}

#[test]
// RFC 3261 10.2 and 10.2.2: the removal waits for the final response of the REGISTER in flight
fn stop_during_a_register_in_flight_removes_after_its_final_response() {
    let (mut reg, t0) = start(config());
    let req = reg.poll_request(t0).unwrap();
    reg.stop(t0);
    assert!(reg.poll_request(t0).is_none(), "one in flight at a time");
    reg.handle_response(t0, &answer(&req, 200, &[]));
    assert_eq!(reg.state(), &RegistrationState::Unregistering);
    let remove = reg.poll_request(t0).unwrap();
    assert_eq!(header(&remove, HeaderName::Expires), "0");
    reg.handle_failure(t0, Failure::Timeout);
    assert_eq!(
        reg.state(),
        &RegistrationState::Unregistered {
            failure: Some(Failure::Timeout)
        }
    );
}

#[test]
// RFC 3261 10.2.2: nothing was sent, so there is nothing to remove
fn stop_before_any_register_ends_at_once() {
    let (mut reg, t0) = start(config());
    reg.stop(t0);
    assert!(reg.is_unregistered());
    assert!(reg.poll_request(t0).is_none());
}

#[test]
// RFC 3261 10.2.2: refused REGISTERs made no binding, so there is nothing to remove
fn stop_after_only_refusals_sends_no_removal() {
    let (mut reg, t0) = start(config());
    let req = reg.poll_request(t0).unwrap();
    reg.handle_response(t0, &answer(&req, 403, &[]));
    reg.stop(t0);
    assert_eq!(
        reg.state(),
        &RegistrationState::Unregistered { failure: None }
    );
    assert!(reg.poll_request(t0).is_none());
    // A REGISTER that went unanswered may have been processed: that one is removed.
    let (mut reg, t0) = start(config());
    reg.poll_request(t0).unwrap();
    reg.handle_failure(t0, Failure::Timeout);
    reg.stop(t0);
    let removal = reg.poll_request(t0).unwrap();
    assert_eq!(header(&removal, HeaderName::Expires), "0");
}

#[test]
// RFC 3261 10.2 and 22.2: a challenge to the refresh in flight at a stop is not answered;
// the removal goes instead (and answers its own challenge)
fn a_challenge_after_stop_is_followed_by_the_removal() {
    let (mut reg, t0) = start(config().with_credentials("alice", "secret"));
    register_ok(&mut reg, t0, 600);
    let (refresh, at) = next_request(&mut reg);
    reg.stop(at);
    reg.handle_response(at, &challenge(&refresh, 401, "nonce-a"));
    let removal = reg.poll_request(at).unwrap();
    assert_eq!(header(&removal, HeaderName::Expires), "0");
    assert_eq!(cseq(&removal), cseq(&refresh) + 1);
    reg.handle_response(at, &challenge(&removal, 401, "nonce-b"));
    let answered = reg.poll_request(at).unwrap();
    assert_eq!(header(&answered, HeaderName::Expires), "0");
    assert!(header(&answered, HeaderName::Authorization).contains("nonce-b"));
    reg.handle_response(at, &answer(&answered, 200, &[]));
    assert_eq!(
        reg.state(),
        &RegistrationState::Unregistered { failure: None }
    );
}

#[test]
// RFC 3261 22.2: without credentials a challenge cannot be answered
fn challenge_without_credentials_is_a_failure() {
    let (mut reg, t0) = start(config());
    let req = reg.poll_request(t0).unwrap();
    let challenge = answer(
        &req,
        401,
        &[(
            "WWW-Authenticate",
            "Digest realm=\"example.com\", nonce=\"abc\", algorithm=MD5",
        )],
    );
    reg.handle_response(t0, &challenge);
    assert!(matches!(
        reg.state(),
        RegistrationState::Retrying {
            failure: Failure::Status { code: 401, .. },
            ..
        }
    ));
}

#[test]
// RFC 3261 7.3.1 and 25.1: nothing given can add a header line
fn a_configuration_with_line_breaks_is_refused() {
    let now = Instant::now();
    let rng = || SeededRng::new([1; 32]);
    for bad in [
        config().with_header("User-Agent", "x\r\nContact: <sip:evil@192.0.2.66>"),
        RegistrationConfig::new("sip:example.com", "sip:alice@example.com\r\nX: 1", CONTACT),
        config().with_credentials("alice\r\nX: 1", "secret"),
        config().with_credentials("alice", "secret\n"),
    ] {
        assert!(Registration::new(now, bad, rng()).is_err());
    }
}

#[test]
// RFC 3261 10.2: the events tell each exchange
fn events_report_each_register_and_its_response() {
    let (mut reg, t0) = start(config());
    let req = register_ok(&mut reg, t0, 600);
    let events: Vec<_> = std::iter::from_fn(|| reg.poll_event()).collect();
    assert_eq!(
        events[0],
        RegistrationEvent::Sent {
            cseq: cseq(&req),
            expires: 3600,
            authorized: false
        }
    );
    assert!(matches!(
        events[1],
        RegistrationEvent::Response { code: 200, .. }
    ));
    assert!(matches!(
        events[2],
        RegistrationEvent::State(RegistrationState::Registered { .. })
    ));
}

fn challenge(request: &OwnedMessage, code: u16, nonce: &str) -> OwnedMessage {
    let name = if code == 407 {
        "Proxy-Authenticate"
    } else {
        "WWW-Authenticate"
    };
    let value =
        format!("Digest realm=\"example.com\", nonce=\"{nonce}\", algorithm=MD5, qop=\"auth\"");
    answer(request, code, &[(name, &value)])
}

#[test]
// RFC 3261 22.2: a new challenge is answered at once, CSeq + 1, once; the same nonce again fails
fn challenge_is_answered_once_per_new_challenge_and_a_repeated_nonce_fails() {
    let (mut reg, t0) = start(config().with_credentials("alice", "secret"));
    let first = reg.poll_request(t0).unwrap();
    assert_eq!(header(&first, HeaderName::Authorization), "");
    reg.handle_response(t0, &challenge(&first, 401, "nonce-a"));
    assert_eq!(reg.poll_timeout(), Some(t0), "answered at once");
    let answered = reg.poll_request(t0).unwrap();
    let auth = header(&answered, HeaderName::Authorization);
    assert!(auth.starts_with("Digest username=\"alice\""), "{auth}");
    assert!(auth.contains("nonce=\"nonce-a\""), "{auth}");
    assert_eq!(cseq(&answered), cseq(&first) + 1);
    assert_eq!(header(&answered, HeaderName::CallId), reg.call_id());
    assert_eq!(reg.state(), &RegistrationState::Registering);
    // The same challenge again: the credentials were refused; no loop, a failure.
    reg.handle_response(t0, &challenge(&answered, 401, "nonce-a"));
    assert!(
        matches!(
            reg.state(),
            RegistrationState::Retrying {
                failure: Failure::Status { code: 401, .. },
                ..
            }
        ),
        "{:?}",
        reg.state()
    );
    assert!(reg.poll_request(t0).is_none(), "no immediate retry");
    // After the backoff it starts over, and a new challenge is answered again.
    let (again, at) = next_request(&mut reg);
    assert_eq!(cseq(&again), cseq(&answered) + 1);
    reg.handle_response(at, &challenge(&again, 401, "nonce-b"));
    let answered_b = reg.poll_request(at).unwrap();
    assert!(header(&answered_b, HeaderName::Authorization).contains("nonce=\"nonce-b\""));
    reg.handle_response(at, &answer(&answered_b, 200, &[]));
    assert!(matches!(reg.state(), RegistrationState::Registered { .. }));
}

#[test]
// RFC 3261 22.2 and RFC 7616 3.4: the refresh reuses the nonce (nc 2) and a proxy's 407 is answered
fn refresh_carries_credentials_and_a_407_is_answered() {
    let (mut reg, t0) = start(config().with_credentials("alice", "secret"));
    let first = reg.poll_request(t0).unwrap();
    reg.handle_response(t0, &challenge(&first, 401, "nonce-a"));
    let answered = reg.poll_request(t0).unwrap();
    reg.handle_response(t0, &answer(&answered, 200, &[("Expires", "600")]));
    let (refresh, at) = next_request(&mut reg);
    let auth = header(&refresh, HeaderName::Authorization);
    assert!(
        auth.contains("nonce=\"nonce-a\"") && auth.contains("nc=00000002"),
        "{auth}"
    );
    assert_eq!(cseq(&refresh), cseq(&answered) + 1);
    // A proxy on the path now wants credentials too.
    reg.handle_response(at, &challenge(&refresh, 407, "proxy-nonce"));
    let answered = reg.poll_request(at).unwrap();
    assert!(header(&answered, HeaderName::ProxyAuthorization).contains("nonce=\"proxy-nonce\""));
    assert_eq!(cseq(&answered), cseq(&refresh) + 1);
    // The removal carries credentials as well.
    reg.handle_response(at, &answer(&answered, 200, &[("Expires", "600")]));
    reg.stop(at);
    let removal = reg.poll_request(at).unwrap();
    assert_eq!(header(&removal, HeaderName::Expires), "0");
    assert!(header(&removal, HeaderName::Authorization).contains("nonce-a"));
}

/// A registration run by `RegistrationUser` on a simulated endpoint, against a registrar
/// endpoint granting `granted` seconds, for `duration` of virtual time over a network with
/// `loss`. Returns, for each REGISTER the registrar accepted, when it arrived and when the
/// binding it made expires; and the user.
fn simulate(
    seed: u64,
    loss: f64,
    granted: u32,
    duration: Duration,
) -> (Vec<(Instant, Instant)>, RegistrationUser, Sim) {
    const UA: usize = 0;
    const REGISTRAR: usize = 1;
    let mut sim = Sim::new(seed, NetConfig::lossy(loss));
    sim.add_node("127.0.0.1:5060");
    sim.add_node("127.0.0.2:5060");
    let registrar_addr = sim.nodes[REGISTRAR].addr;
    let config = RegistrationConfig::new(
        "sip:127.0.0.2",
        "sip:alice@example.com",
        "<sip:alice@127.0.0.1:5060>",
    );
    let reg = Registration::new(sim.now, config, SeededRng::new([seed as u8; 32])).unwrap();
    let mut tu = RegistrationUser::new(reg, Target::udp(registrar_addr));
    let mut rng = SeededRng::new([1; 32]);
    let mut bindings = Vec::new();
    let end = sim.now + duration;
    while sim.now < end {
        let now = sim.now;
        for (_, ev) in sim.events(UA) {
            tu.handle_event(now, ev, sim.ep(UA));
        }
        if tu.poll_timeout().is_some_and(|t| t <= now) {
            tu.handle_timeout(now, sim.ep(UA));
        }
        for (_, ev) in sim.events(REGISTRAR) {
            if let Event::Request { tx, request, .. } = ev {
                let view = request.view();
                let contact = view.header(HeaderName::Contact).unwrap_or("").to_owned();
                let ok = ResponseBuilder::from_view(&view, 200)
                    .header("Contact", &format!("{contact};expires={granted}"))
                    .build(&mut rng)
                    .unwrap();
                sim.ep(REGISTRAR).send_response(now, tx, &ok).unwrap();
                bindings.push((now, now + Duration::from_secs(u64::from(granted))));
            }
        }
        if let Some(t) = tu.poll_timeout() {
            sim.wake_at(t.min(end));
        }
        sim.wake_at(end);
        if !sim.step() {
            break;
        }
    }
    (bindings, tu, sim)
}

#[test]
// RFC 3261 10.2.4 and 17.1.2.2: refreshed before the granted expiry even when the refresh
// needs retransmissions through 30% loss: the binding never lapses in a simulated hour
fn binding_never_lapses_through_loss_over_an_endpoint() {
    for seed in 0..8 {
        let (bindings, tu, _sim) = simulate(seed, 0.3, 120, Duration::from_secs(3600));
        // Asked 3600 s, granted 120 s: refreshed every 88 s (120 - 32), about 40 times.
        assert!(
            bindings.len() >= 30,
            "seed {seed}: {} REGISTERs",
            bindings.len()
        );
        for w in bindings.windows(2) {
            let ((_, expires_at), (next_at, _)) = (w[0], w[1]);
            assert!(next_at < expires_at, "seed {seed}: the binding lapsed");
        }
        assert!(
            matches!(
                tu.registration().state(),
                RegistrationState::Registered { .. }
            ),
            "seed {seed}: {:?}",
            tu.registration().state()
        );
    }
}

/// What the registrar (or the network) does with one REGISTER, for the property test.
#[derive(Debug, Clone)]
enum Outcome {
    Ok(u32),
    Challenge(u16, u8),
    TooBrief(u32),
    Fail(u16),
    Unavailable(Option<u32>),
    Timeout,
    Transport,
}

fn outcome() -> impl proptest::strategy::Strategy<Value = Outcome> {
    use proptest::prelude::*;
    prop_oneof![
        (0u32..100_000).prop_map(Outcome::Ok),
        (prop_oneof![Just(401u16), Just(407)], 0u8..4).prop_map(|(c, n)| Outcome::Challenge(c, n)),
        (0u32..100_000).prop_map(Outcome::TooBrief),
        prop_oneof![Just(403u16), Just(404), Just(480), Just(500), Just(600)]
            .prop_map(Outcome::Fail),
        proptest::option::of(0u32..10_000).prop_map(Outcome::Unavailable),
        Just(Outcome::Timeout),
        Just(Outcome::Transport),
    ]
}

proptest::proptest! {
    #[test]
    // RFC 3261 10.2, 10.2.4 and RFC 5626 4.5, whatever the registrar answers: one Call-ID,
    // CSeq + 1 per REGISTER, one in flight, a refresh before the granted expiry, backoff
    // within its bounds, and never giving up; a stop ends in Unregistered
    fn registration_invariants_hold_whatever_the_registrar_answers(
        outcomes in proptest::collection::vec(outcome(), 1..40),
        seed in proptest::prelude::any::<u8>(),
        credentials in proptest::prelude::any::<bool>(),
    ) {
        let mut config = config();
        if credentials {
            config = config.with_credentials("alice", "secret");
        }
        let t0 = Instant::now();
        let mut reg = Registration::new(t0, config, SeededRng::new([seed; 32])).unwrap();
        let mut now = t0;
        let mut last_cseq = None;
        for o in &outcomes {
            let due = reg.poll_timeout().expect("never gives up: a REGISTER is due");
            now = now.max(due);
            let req = reg.poll_request(now).expect("due now");
            proptest::prop_assert!(reg.poll_request(now).is_none(), "one in flight");
            proptest::prop_assert_eq!(header(&req, HeaderName::CallId), reg.call_id());
            let n = cseq(&req);
            if let Some(last) = last_cseq {
                proptest::prop_assert_eq!(n, last + 1);
            }
            last_cseq = Some(n);
            match o {
                Outcome::Ok(g) => {
                    let c = format!("{CONTACT};expires={g}");
                    reg.handle_response(now, &answer(&req, 200, &[("Contact", &c)]));
                }
                Outcome::Challenge(code, nonce) => {
                    reg.handle_response(now, &challenge(&req, *code, &format!("n{nonce}")));
                }
                Outcome::TooBrief(min) => {
                    let m = min.to_string();
                    reg.handle_response(now, &answer(&req, 423, &[("Min-Expires", &m)]));
                }
                Outcome::Fail(code) => reg.handle_response(now, &answer(&req, *code, &[])),
                Outcome::Unavailable(after) => {
                    let a = after.map(|a| a.to_string());
                    let h: Vec<(&str, &str)> = a.iter().map(|a| ("Retry-After", a.as_str())).collect();
                    reg.handle_response(now, &answer(&req, 503, &h));
                }
                Outcome::Timeout => reg.handle_failure(now, Failure::Timeout),
                Outcome::Transport => reg.handle_failure(now, Failure::Transport),
            }
            proptest::prop_assert!(!reg.in_flight());
            match reg.state().clone() {
                RegistrationState::Registered { expires_at, refresh_at } => {
                    proptest::prop_assert!(refresh_at < expires_at);
                    // The refresh ahead, or a challenge to the refresh answered at once.
                    let next = reg.poll_timeout();
                    proptest::prop_assert!(
                        (next == Some(refresh_at) && now < refresh_at) || next == Some(now),
                        "{:?}",
                        next
                    );
                }
                RegistrationState::Retrying { at, failures, .. } => {
                    let wait = at - now;
                    let upper = Backoff::RFC5626.upper_bound(failures, false);
                    let retry_after = matches!(o, Outcome::Unavailable(Some(_)));
                    proptest::prop_assert!(retry_after || (wait >= upper / 2 && wait <= upper), "{:?}", wait);
                }
                RegistrationState::Registering => {
                    proptest::prop_assert_eq!(reg.poll_timeout(), Some(now), "answered at once");
                }
                other => proptest::prop_assert!(false, "{:?}", other),
            }
        }
        // A stop ends, whatever the removal gets.
        reg.stop(now);
        if let Some(removal) = reg.poll_request(now) {
            proptest::prop_assert_eq!(header(&removal, HeaderName::Expires), "0");
            reg.handle_failure(now, Failure::Timeout);
        }
        proptest::prop_assert!(reg.is_unregistered());
        proptest::prop_assert_eq!(reg.poll_timeout(), None);
    }
}
