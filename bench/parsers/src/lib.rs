//! Shared parser table for the criterion bench (`benches/parsers.rs`) and the
//! callgrind harness (`src/bin/callgrind.rs`), so both measure exactly the
//! same work per parser.
//!
//! Every entry point parses one message, black-boxes the result (and every
//! typed value it derives) and drops it before returning: the cost of freeing
//! what a parser allocated is part of what is measured.
//!
//! # What "lazy" and "full" mean per parser
//!
//! * `sip-core-lazy`: `sip_core::MessageView::parse` — borrowed view: start
//!   line, header name/value spans and body; no header is typed.
//! * `sip-core`: `sip_core::Message::parse` — full typed parse of every header
//!   sip-core knows.
//! * `rsip-lazy`: `rsip::SipMessage::try_from(&[u8])`. rsip's message parse
//!   already splits the start line (method, Request-URI / status code) and
//!   sorts each header into an enum variant by name, but a header value stays
//!   an owned, untyped `String`.
//! * `rsip`: the lazy parse, then every header that a UA/proxy needs on each
//!   message is typed the way rsip documents (`ToTypedHeader::typed()`, or
//!   the value accessors where rsip has no typed form): every Via, From, To,
//!   CSeq, Contact, Record-Route and Route via `.typed()`, Call-ID via
//!   `.value()`, Content-Length via `.length()`, Max-Forwards via `.num()`.
//!   All instances are typed (not just the first one that `HeadersExt`'s
//!   `via_header()` etc. return) so multi-header messages cost what they
//!   would in a proxy. The remaining headers (Allow, Supported, ...) stay
//!   untyped.
//! * `rsipstack-lazy` / `rsipstack`: rsipstack 0.7 does *not* depend on rsip;
//!   it carries its own rsip-derived codec in `rsipstack::sip`
//!   (`sip::parser::parse_message`, reached through
//!   `rsipstack::sip::SipMessage::try_from(&[u8])`). It has the same
//!   two-stage shape as rsip — a hand-written, memchr-based splitter that
//!   stores each header as an untyped `String` in a named enum variant, plus
//!   per-header `ToTypedHeader::typed()` — so lazy/full are defined exactly as
//!   for rsip: lazy = `SipMessage::try_from`, full = lazy + typing every Via,
//!   From, To, CSeq, Contact, Record-Route and Route through `.typed()`,
//!   Call-ID through `.value()`, and Content-Length / Max-Forwards through
//!   `value().parse::<u32>()` (rsipstack has no numeric accessor for them).
//!
//! A typed conversion that fails is counted in [`Outcome::typed_failed`] and
//! does not abort the parse; a message-level parse error is returned as `Err`.

use std::hint::black_box;

/// Benchmark inputs: `(id, bytes)`. Ids are the `<message>` part of the
/// benchmark id `parse/<message>/<parser>`.
pub const MESSAGES: &[(&str, &[u8])] = &[
    (
        "invite",
        include_bytes!("../../../sip-core/benches/messages/invite.sip"),
    ),
    (
        "response",
        include_bytes!("../../../sip-core/benches/messages/ok200.sip"),
    ),
    (
        "register",
        include_bytes!("../../../sip-core/benches/messages/register.sip"),
    ),
    (
        "many_headers",
        include_bytes!("../../../sip-core/benches/messages/stress.sip"),
    ),
    // Extra: stress.sip with its three folded lines unfolded. rsip 0.4 rejects
    // obs-fold continuation lines, so this is the only many-header message it
    // can be compared on.
    (
        "many_headers_nofold",
        include_bytes!("../../../sip-core/benches/messages/stress_nofold.sip"),
    ),
];

/// What one parse produced, for the sanity check printed before benching.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Headers the parser reported (0 where the parser's API is not probed).
    pub headers: usize,
    /// Typed conversions that succeeded (full parses of peers only).
    pub typed: usize,
    /// Typed conversions that failed (full parses of peers only).
    pub typed_failed: usize,
}

/// One parse of one message.
pub type ParseFn = fn(&[u8]) -> Result<Outcome, String>;

/// A parser under test.
#[derive(Clone, Copy)]
pub struct Parser {
    /// The `<parser>` part of `parse/<message>/<parser>`.
    pub name: &'static str,
    /// The parse entry point.
    pub parse: ParseFn,
}

/// All parsers, in the order they are benched.
pub const PARSERS: &[Parser] = &[
    #[cfg(feature = "ours")]
    Parser {
        name: "sip-core",
        parse: sip_core_full,
    },
    #[cfg(feature = "ours")]
    Parser {
        name: "sip-core-lazy",
        parse: sip_core_lazy,
    },
    Parser {
        name: "rsip",
        parse: rsip_full,
    },
    Parser {
        name: "rsip-lazy",
        parse: rsip_lazy,
    },
    Parser {
        name: "rsipstack",
        parse: rsipstack_full,
    },
    Parser {
        name: "rsipstack-lazy",
        parse: rsipstack_lazy,
    },
];

/// All parsers, in the order they are benched.
pub fn parsers() -> &'static [Parser] {
    PARSERS
}

/// Looks a parser up by name.
pub fn parser(name: &str) -> Option<Parser> {
    PARSERS.iter().copied().find(|p| p.name == name)
}

// ---------------------------------------------------------------- sip-core

/// `sip_core::Message::parse`: full typed parse.
#[cfg(feature = "ours")]
pub fn sip_core_full(data: &[u8]) -> Result<Outcome, String> {
    let msg = sip_core::Message::parse(black_box(data)).map_err(|e| format!("{e:?}"))?;
    black_box(&msg);
    Ok(Outcome::default())
}

/// `sip_core::MessageView::parse`: borrowed view only.
#[cfg(feature = "ours")]
pub fn sip_core_lazy(data: &[u8]) -> Result<Outcome, String> {
    let view = sip_core::MessageView::parse(black_box(data)).map_err(|e| format!("{e:?}"))?;
    black_box(&view);
    Ok(Outcome::default())
}

// -------------------------------------------------------------------- rsip

/// `rsip::SipMessage::try_from(&[u8])` only.
pub fn rsip_lazy(data: &[u8]) -> Result<Outcome, String> {
    use rsip::prelude::*;
    let msg = rsip::SipMessage::try_from(black_box(data)).map_err(|e| short(e.to_string()))?;
    black_box(&msg);
    Ok(Outcome {
        headers: msg.headers().iter().count(),
        ..Outcome::default()
    })
}

/// Error texts of the peers can quote the whole message; keep the head.
#[cold]
fn short(mut s: String) -> String {
    if let Some((i, _)) = s.char_indices().nth(160) {
        s.truncate(i);
        s.push_str("...");
    }
    s.replace(['\r', '\n'], " ")
}

#[inline(always)]
fn tally<T, E>(out: &mut Outcome, r: Result<T, E>) {
    match black_box(r) {
        Ok(_) => out.typed += 1,
        Err(_) => out.typed_failed += 1,
    }
}

/// `rsip::SipMessage::try_from(&[u8])`, then the main headers typed.
pub fn rsip_full(data: &[u8]) -> Result<Outcome, String> {
    use rsip::prelude::*;
    use rsip::Header;
    let msg = rsip::SipMessage::try_from(black_box(data)).map_err(|e| short(e.to_string()))?;
    let mut out = Outcome::default();
    for h in msg.headers().iter() {
        out.headers += 1;
        match h {
            Header::Via(h) => tally(&mut out, h.typed()),
            Header::From(h) => tally(&mut out, h.typed()),
            Header::To(h) => tally(&mut out, h.typed()),
            Header::CSeq(h) => tally(&mut out, h.typed()),
            Header::Contact(h) => tally(&mut out, h.typed()),
            Header::RecordRoute(h) => tally(&mut out, h.typed()),
            Header::Route(h) => tally(&mut out, h.typed()),
            Header::CallId(h) => tally(&mut out, Ok::<_, ()>(black_box(h.value()))),
            Header::ContentLength(h) => tally(&mut out, h.length()),
            Header::MaxForwards(h) => tally(&mut out, h.num()),
            _ => {}
        }
    }
    black_box(&msg);
    Ok(out)
}

// --------------------------------------------------------------- rsipstack

/// `rsipstack::sip::SipMessage::try_from(&[u8])` only.
pub fn rsipstack_lazy(data: &[u8]) -> Result<Outcome, String> {
    use rsipstack::sip::HasHeaders;
    let msg = rsipstack::sip::SipMessage::try_from(black_box(data)).map_err(|e| short(e.to_string()))?;
    black_box(&msg);
    Ok(Outcome {
        headers: msg.headers().iter().count(),
        ..Outcome::default()
    })
}

/// `rsipstack::sip::SipMessage::try_from(&[u8])`, then the main headers typed.
pub fn rsipstack_full(data: &[u8]) -> Result<Outcome, String> {
    use rsipstack::sip::prelude::*;
    use rsipstack::sip::Header;
    let msg = rsipstack::sip::SipMessage::try_from(black_box(data)).map_err(|e| short(e.to_string()))?;
    let mut out = Outcome::default();
    for h in msg.headers().iter() {
        out.headers += 1;
        match h {
            Header::Via(h) => tally(&mut out, h.typed()),
            Header::From(h) => tally(&mut out, h.typed()),
            Header::To(h) => tally(&mut out, h.typed()),
            Header::CSeq(h) => tally(&mut out, h.typed()),
            Header::Contact(h) => tally(&mut out, h.typed()),
            Header::RecordRoute(h) => tally(&mut out, h.typed()),
            Header::Route(h) => tally(&mut out, h.typed()),
            Header::CallId(h) => tally(&mut out, Ok::<_, ()>(black_box(h.value()))),
            Header::ContentLength(h) => tally(&mut out, h.value().trim().parse::<u32>()),
            Header::MaxForwards(h) => tally(&mut out, h.value().trim().parse::<u32>()),
            _ => {}
        }
    }
    black_box(&msg);
    Ok(out)
}
