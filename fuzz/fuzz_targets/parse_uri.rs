//! URI parse, write, re-parse.
//!
//! Invariants: nothing panics; `equivalent` is reflexive; a parsed URI's serialization parses
//! again into a URI equivalent to it (both ways), and that serialization is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::Uri;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let Some(uri) = Uri::parse(s) else { return };
    assert!(uri.equivalent(&uri), "equivalent is not reflexive: {s:?}");

    let mut out = Vec::new();
    uri.write_to(&mut out);
    let text = std::str::from_utf8(&out).expect("Uri::write_to wrote invalid UTF-8");
    let Some(again) = Uri::parse(text) else {
        panic!("written URI does not parse again: {s:?} -> {text:?}")
    };
    assert!(again.equivalent(&again), "equivalent is not reflexive: {text:?}");
    assert!(uri.equivalent(&again), "round trip not equivalent: {s:?} -> {text:?}");
    assert!(again.equivalent(&uri), "equivalent is not symmetric: {s:?} / {text:?}");

    let mut out2 = Vec::new();
    again.write_to(&mut out2);
    assert!(out == out2, "write_to not stable: {text:?} -> {:?}", String::from_utf8_lossy(&out2));
});
