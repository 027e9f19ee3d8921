//! A proxy's edits of one datagram (RFC 3261 sections 16.6 and 16.7): the first byte picks
//! which edits run, the rest is the message.
//!
//! Invariants: nothing panics; what `finish` returns frames exactly as its recorded layout
//! says (checked inside `finish` in debug builds) and parses; when the original typed
//! correctly (and stays well inside the limits), the edited message types correctly too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::{Message, MessageView, OwnedMessage};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, text)) = data.split_first() else { return };
    let Ok(original) = OwnedMessage::parse(text) else { return };
    let mut e = original.edit();
    let on = |bit: u8| pick & (1 << bit) != 0;
    if on(0) {
        let _ = e.decrement_max_forwards();
    }
    if on(1) {
        let _ = e.set_request_uri("sip:bob@192.0.2.4:5060");
    }
    if on(2) {
        let _ = e.prepend_record_route("<sip:p1.example.com;lr>");
    }
    if on(3) {
        let _ = e.prepend_via("SIP/2.0/UDP p1.example.com;branch=z9hG4bK1");
    }
    if on(4) {
        let _ = e.remove_top_via();
    }
    if on(5) {
        let _ = e.remove_first_value("Route");
    }
    if on(6) {
        let _ = e.set_body("text/plain", b"edited");
    }
    if on(7) {
        let _ = e.append("X-Edited", "1");
        let _ = e.remove("Contact");
    }
    let Ok(edited) = e.finish() else { return };
    let view = MessageView::parse(edited.as_bytes()).expect("an edited message frames");
    assert_eq!(view.header_count(), edited.view().header_count());
    let small = |m: &Message<'_>| m.headers().len() < 240 && m.vias().count() < 60;
    if let Ok(m) = Message::parse(text) {
        if small(&m) {
            if let Err(err) = edited.message() {
                panic!(
                    "typed before the edits, not after: {err}\n--- before\n{}\n--- after\n{}",
                    String::from_utf8_lossy(text),
                    String::from_utf8_lossy(edited.as_bytes())
                );
            }
        }
    }
});
