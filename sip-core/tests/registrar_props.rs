//! Invariants of the registrar and its in-memory store under any sequence of REGISTERs
//! (RFC 3261 section 10.3 steps 6 to 8): the 200 lists exactly the bindings that a direct
//! model of the rules says are alive, each with its remaining expiry; a request that fails
//! changes nothing; the store never holds more than its limits.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use sip_core::location::{LocationStore, MemoryStore, StoreLimits};
use sip_core::message::Contact;
use sip_core::registrar::{Registrar, RegistrarConfig};
use sip_core::{OwnedMessage, SeededRng};

/// One step: wait, then a REGISTER from one of two UAs (Call-IDs) for one of two AORs.
#[derive(Debug, Clone)]
struct Step {
    wait_s: u64,
    aor: u8,
    call_id: u8,
    cseq: u32,
    /// (contact index, expires parameter) per Contact; `None` for `Contact: *`.
    contacts: Option<Vec<(u8, Option<u32>)>>,
    header_expires: Option<u32>,
}

fn step() -> impl Strategy<Value = Step> {
    let expiry = prop_oneof![Just(0u32), Just(60), Just(90), Just(600), Just(100_000)];
    (
        0u64..400,
        0u8..2,
        0u8..2,
        1u32..6,
        prop_oneof![
            1 => Just(None),
            6 => proptest::collection::vec((0u8..4, proptest::option::of(expiry.clone())), 0..3).prop_map(Some),
        ],
        proptest::option::of(expiry),
    )
        .prop_map(|(wait_s, aor, call_id, cseq, contacts, header_expires)| Step {
            wait_s,
            aor,
            call_id,
            cseq,
            contacts,
            header_expires,
        })
}

const MIN: u32 = 60;
const MAX: u32 = 3600;
const DEFAULT: u32 = 600;
const PER_AOR: usize = 3;

fn request(s: &Step) -> OwnedMessage {
    let mut text = format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
         From: <sip:u{a}@example.com>;tag=1\r\nTo: <sip:u{a}@example.com>\r\n\
         Call-ID: call{c}\r\nCSeq: {q} REGISTER\r\nMax-Forwards: 70\r\n",
        a = s.aor,
        c = s.call_id,
        q = s.cseq
    );
    match &s.contacts {
        None => text.push_str("Contact: *\r\n"),
        Some(list) => {
            for (i, e) in list {
                text.push_str(&format!("Contact: <sip:c{i}@10.0.0.{i}>"));
                if let Some(e) = e {
                    text.push_str(&format!(";expires={e}"));
                }
                text.push_str("\r\n");
            }
        }
    }
    if let Some(e) = s.header_expires {
        text.push_str(&format!("Expires: {e}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    OwnedMessage::parse(text.as_bytes()).unwrap()
}

/// The model: per AOR, contact index -> (expires at, Call-ID, CSeq).
type Model = BTreeMap<u8, BTreeMap<u8, (Instant, u8, u32)>>;

/// The rules of section 10.3 steps 6 and 7, written directly; `Err(status)` on failure.
fn model_apply(model: &mut Model, s: &Step, now: Instant) -> Result<(), u16> {
    let mut set = model.get(&s.aor).cloned().unwrap_or_default();
    set.retain(|_, (t, _, _)| *t > now);
    let stale = |b: &(Instant, u8, u32)| b.1 == s.call_id && s.cseq <= b.2;
    match &s.contacts {
        None => {
            if s.header_expires != Some(0) {
                return Err(400);
            }
            if set.values().any(stale) {
                return Err(500);
            }
            set.clear();
        }
        Some(list) => {
            let mut granted = Vec::new();
            for (i, e) in list {
                let e = e.or(s.header_expires).unwrap_or(DEFAULT).min(MAX);
                if e != 0 && e < MIN {
                    return Err(423);
                }
                granted.push((*i, e));
            }
            let mut touched = Vec::new();
            for (i, e) in granted {
                if let Some(b) = set.get(&i) {
                    if !touched.contains(&i) && stale(b) {
                        return Err(500);
                    }
                }
                touched.push(i);
                if e == 0 {
                    set.remove(&i);
                } else {
                    set.insert(
                        i,
                        (now + Duration::from_secs(u64::from(e)), s.call_id, s.cseq),
                    );
                }
            }
            if set.len() > PER_AOR {
                return Err(403);
            }
        }
    }
    model.insert(s.aor, set);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    // RFC 3261 10.3 steps 6-8: after any sequence of REGISTERs, the 200 lists exactly the
    // unexpired bindings, with their remaining expiry, and failures change nothing.
    #[test]
    fn the_200_lists_exactly_the_unexpired_bindings(steps in proptest::collection::vec(step(), 1..40)) {
        let registrar = Registrar::new(RegistrarConfig {
            domains: vec!["example.com".into()],
            default_expires: DEFAULT,
            min_expires: MIN,
            max_expires: MAX,
            max_bindings_per_aor: PER_AOR,
        });
        let mut store = MemoryStore::new(StoreLimits::default());
        let mut model = Model::new();
        let mut now = Instant::now();
        let mut rng = SeededRng::new([3; 32]);
        for s in &steps {
            now += Duration::from_secs(s.wait_s);
            store.expire(now);
            let req = request(s);
            let got = registrar
                .check(&req, None)
                .and_then(|r| store.register(now, &r).map(|b| (r, b)));
            let want = model_apply(&mut model, s, now);
            match (got, want) {
                (Ok((reg, bindings)), Ok(())) => {
                    let ok = reg.ok_response(&bindings, now, &mut rng).unwrap();
                    let msg = ok.message().unwrap();
                    let mut listed: Vec<(String, u32)> = msg
                        .contacts()
                        .filter_map(|c| match c {
                            Contact::Addr(a) => Some((a.uri.to_string(), a.expires()?)),
                            Contact::Star => None,
                        })
                        .collect();
                    listed.sort();
                    let mut expected: Vec<(String, u32)> = model
                        .get(&s.aor)
                        .map(|set| {
                            set.iter()
                                .filter(|(_, (t, _, _))| *t > now)
                                .map(|(i, (t, _, _))| {
                                    (format!("sip:c{i}@10.0.0.{i}"), (*t - now).as_secs() as u32)
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    expected.sort();
                    prop_assert_eq!(listed, expected);
                }
                (Err(reject), Err(status)) => prop_assert_eq!(reject.status, status),
                (got, want) => prop_assert!(false, "store {:?}, model {:?}", got.map(|g| g.1), want),
            }
            let alive: usize = model
                .values()
                .map(|set| set.values().filter(|(t, _, _)| *t > now).count())
                .sum();
            prop_assert_eq!(store.bindings(), alive);
            prop_assert!(store.lookup(now, "sip:u0@example.com").len() <= PER_AOR);
        }
    }
}
