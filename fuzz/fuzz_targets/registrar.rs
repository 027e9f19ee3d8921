//! The registrar on one datagram (RFC 3261 section 10.3): checked, applied twice to the
//! bindings of an in-memory store (a registration, then the same request again), answered.
//!
//! Invariants (for requests whose headers type, as the endpoint hands on): nothing panics; every response (the 200 or the rejection) builds and parses;
//! the 200 lists exactly the bindings the store holds for the AOR, no more than the limit.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use sip_core::location::{LocationStore, MemoryStore};
use sip_core::message::Contact;
use sip_core::registrar::{Registrar, RegistrarConfig};
use sip_core::{OwnedMessage, SeededRng};

fuzz_target!(|data: &[u8]| {
    let Ok(request) = OwnedMessage::parse(data) else { return };
    // the endpoint hands on only requests whose headers type (so do the drivers' UAS core)
    if request.message().is_err() {
        return;
    }
    let registrar = Registrar::new(RegistrarConfig::default());
    let mut store = MemoryStore::default();
    let mut rng = SeededRng::new([1; 32]);
    let now = Instant::now();
    for round in 0..2u64 {
        let at = now + Duration::from_secs(round);
        match registrar.check(&request, None).and_then(|r| store.register(at, &r).map(|b| (r, b))) {
            Ok((reg, bindings)) => {
                assert!(bindings.len() <= registrar.config().max_bindings_per_aor);
                let ok = reg.ok_response(&bindings, at, &mut rng).expect("the 200 builds");
                let listed = ok
                    .message()
                    .expect("the 200 parses")
                    .contacts()
                    .filter(|c| matches!(c, Contact::Addr(_)))
                    .count();
                assert_eq!(listed, bindings.len());
                assert_eq!(store.lookup(at, reg.aor()).len(), bindings.len());
            }
            Err(reject) => {
                if let Ok(r) = reject.response(&request, &mut rng) {
                    r.message().expect("the rejection parses");
                }
            }
        }
    }
});
