//! Runs `examples/proxy_edit.rs`: a proxy's edits of a received INVITE (RFC 3261 section
//! 16.6 steps 1 to 8), of the response it relays (16.7 step 3) and a derived CANCEL (9.1).

#[path = "../examples/proxy_edit.rs"]
mod proxy_edit;

// RFC 3261 sections 16.4, 16.6, 16.7 and 9.1 (the example asserts each step's result).
#[test]
fn proxy_edit_example_forwards_relays_and_cancels() {
    proxy_edit::main().unwrap();
}
