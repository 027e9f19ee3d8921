//! A stateful proxy's message edits (RFC 3261 sections 16.4, 16.6 and 16.7), written
//! against the public API: a received INVITE is forwarded to the location service's
//! target, the provisional response coming back is relayed upstream, and the proxy
//! derives a CANCEL for its branch. Each step prints the message it produced.
//!
//! Usage: `cargo run -p sip-core --example proxy_edit` (the test `proxy_edit_example`
//! runs it too).
#![allow(missing_docs)]

use sip_core::{new_branch, HopCount, OwnedMessage, RequestBuilder, SeededRng};

/// This proxy's host and its Record-Route value.
const ME: &str = "p1.example.com";
const RECORD_ROUTE: &str = "<sip:p1.example.com;lr>";

/// An INVITE as it arrives from Alice's UA through an outbound proxy that routed it here
/// (a loose-route Route naming this proxy, section 16.4).
const RECEIVED: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP outbound.atlanta.example.com;branch=z9hG4bK2d4790.1\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds;received=192.0.2.101\r\n\
Max-Forwards: 69\r\n\
Route: <sip:p1.example.com;lr>\r\n\
Record-Route: <sip:outbound.atlanta.example.com;lr>\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\
\r\n\
v=0\n";

/// What the proxy decided to do with a request.
enum Decision {
    Forward(OwnedMessage),
    /// Answer with this status instead (section 16.3).
    Reject(u16),
}

/// Sections 16.4 and 16.6: the copy of `request` sent to `target`.
fn forward(
    request: &OwnedMessage,
    target: &str,
    rng: &mut SeededRng,
) -> Result<Decision, Box<dyn std::error::Error>> {
    // step 1: copy the request (the editor shares the received bytes until finish)
    let mut fwd = request.edit();
    // section 16.4: a top Route naming this proxy is removed (only its first value)
    let typed = request.message()?;
    let names_me = typed
        .routes()
        .next()
        .and_then(|r| r.uri.as_sip().map(|u| u.host.as_str() == ME))
        .unwrap_or(false);
    if names_me {
        fwd.remove_first_value("Route")?;
    }
    // step 3: Max-Forwards (section 16.3 step 3 answers 0 with 483)
    if fwd.decrement_max_forwards()? == HopCount::Exhausted {
        return Ok(Decision::Reject(483));
    }
    // step 2: the Request-URI becomes the target
    fwd.set_request_uri(target)?
        // step 4: Record-Route, to stay on the path of the dialog's later requests
        .prepend_record_route(RECORD_ROUTE)?
        // step 5: additional header fields
        .append("X-Proxied-By", ME)?;
    // step 6: no Route is left to postprocess (loose routing); step 7: the next hop is the
    // Request-URI's host; step 8: this proxy's Via, with a fresh branch
    let branch = new_branch(rng);
    fwd.prepend_via(&format!("SIP/2.0/UDP {ME};branch={branch}"))?;
    Ok(Decision::Forward(fwd.finish()?))
}

/// Section 16.7 step 3: the response to relay upstream loses the proxy's own Via.
fn relay(response: &OwnedMessage) -> Result<OwnedMessage, Box<dyn std::error::Error>> {
    let mut up = response.edit();
    up.remove_top_via()?;
    Ok(up.finish()?)
}

pub(crate) fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut rng = SeededRng::new([7; 32]); // seed from the OS in real use
    let received = OwnedMessage::parse(RECEIVED)?;

    let Decision::Forward(fwd) = forward(&received, "sip:bob@192.0.2.4", &mut rng)? else {
        return Err("not forwarded".into());
    };
    println!("--- forwarded\n{}", String::from_utf8_lossy(fwd.as_bytes()));
    let m = fwd.message()?;
    assert_eq!(
        m.request_uri().map(|u| u.to_string()).as_deref(),
        Some("sip:bob@192.0.2.4")
    );
    assert_eq!(m.max_forwards(), Some(68));
    assert_eq!(m.routes().count(), 0);
    assert_eq!(m.vias().count(), 3);
    assert_eq!(m.top_via().map(|v| v.host.as_str()), Some(ME));
    let rr: Vec<String> = m.record_routes().map(|r| r.to_string()).collect();
    assert_eq!(rr, [RECORD_ROUTE, "<sip:outbound.atlanta.example.com;lr>"]);
    assert_eq!(m.body(), b"v=0\n");

    // Bob's UA answers 180 to the forwarded request: it echoes the three Vias.
    let vias: Vec<String> = m.vias().map(|v| v.to_string()).collect();
    let ringing = format!(
        "SIP/2.0 180 Ringing\r\nVia: {}\r\nVia: {}, {}\r\n\
         To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf\r\n\
         From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
         Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\nCSeq: 314159 INVITE\r\n\
         Content-Length: 0\r\n\r\n",
        vias[0], vias[1], vias[2]
    );
    let ringing = OwnedMessage::parse(ringing.as_bytes())?;
    let up = relay(&ringing)?;
    println!("--- relayed\n{}", String::from_utf8_lossy(up.as_bytes()));
    let upm = up.message()?;
    assert_eq!(upm.vias().count(), 2);
    assert_eq!(
        upm.top_via().map(|v| v.host.as_str()),
        Some("outbound.atlanta.example.com")
    );

    // Section 16.10 / 9.1: the proxy cancels its branch: the CANCEL for the forwarded
    // INVITE repeats its top Via (branch), Request-URI, Call-ID, From, To and CSeq number.
    let cancel = RequestBuilder::cancel_for(&m)?.build(&mut rng)?;
    println!("--- cancel\n{}", String::from_utf8_lossy(cancel.as_bytes()));
    let c = cancel.message()?;
    assert_eq!(c.cseq().map(|c| c.seq), Some(314159));
    assert_eq!(
        c.top_via().and_then(|v| v.branch()),
        m.top_via().and_then(|v| v.branch())
    );

    // A request out of hops is not forwarded.
    let mut dead = received.edit();
    dead.set("Max-Forwards", "0")?;
    let dead = dead.finish()?;
    assert!(matches!(
        forward(&dead, "sip:bob@192.0.2.4", &mut rng)?,
        Decision::Reject(483)
    ));
    Ok(())
}
