//! Full typed parse of one datagram, then a canonical round trip.
//!
//! Invariants: nothing panics; the canonical serialization of anything that parses parses
//! again, and serializing that second parse gives the same bytes (the canonical form is a
//! fixed point); validation of either parse does not panic; the one-pass parse (fast paths
//! for the common headers) gives the same typed message, or the same error at the same
//! offset, as the view followed by the general parsers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::validate::{self, Policy};
use sip_core::{Form, Limits, Message, MessageView, OwnedMessage};

fn check_validate(msg: &Message<'_>) {
    if msg.status().is_some() {
        let _ = validate::response(msg, &Policy::UAS);
    } else {
        let _ = validate::request(msg, &Policy::UAS);
    }
}

/// The typed message (or the error and where it was found) as comparable text.
fn outcome(r: Result<Message<'_>, sip_core::ParseError>) -> String {
    match r {
        Ok(m) => format!("{m:?}"),
        Err(e) => format!("{:?} at {}", e.kind, e.offset),
    }
}

fuzz_target!(|data: &[u8]| {
    let one = outcome(Message::parse(data));
    let two = outcome(MessageView::parse(data).and_then(|v| Message::from_view(v, &Limits::DEFAULT)));
    assert!(one == two, "one pass and two passes disagree:\n{one}\n{two}");

    if let Ok(view) = MessageView::parse(data) {
        let owned = OwnedMessage::from_view(&view);
        assert_eq!(owned.view().as_bytes(), view.as_bytes());
        let _ = owned.message();
    }

    let Ok(msg) = Message::parse(data) else { return };
    check_validate(&msg);

    let mut first = Vec::new();
    msg.write_to(&mut first, Form::Canonical);
    let reparsed = match Message::parse(&first) {
        Ok(m) => m,
        Err(e) => panic!(
            "canonical output does not parse again: {e:?}\n{}",
            String::from_utf8_lossy(&first)
        ),
    };
    check_validate(&reparsed);

    let mut second = Vec::new();
    reparsed.write_to(&mut second, Form::Canonical);
    assert!(
        first == second,
        "canonical form is not stable:\n--- first\n{}\n--- second\n{}",
        String::from_utf8_lossy(&first),
        String::from_utf8_lossy(&second)
    );

    let mut original = Vec::new();
    msg.write_to(&mut original, Form::Original);
});
