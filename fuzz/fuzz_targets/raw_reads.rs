//! The quick reads of `sip_core::message::raw` against the full parse of one datagram.
//!
//! Invariants (as `roundtrip::raw_reads_*`): `request_top_via` gives the view's method and
//! first Via line when the datagram frames; `first_via` of every Via line and `cseq` of every
//! CSeq line equal the typed parse of that line, or are `None` exactly when it rejects the
//! line; `header_lines` are the view's lines with folds as one space; for a request that
//! parses, the quick top Via (and so the transaction key) is the typed one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sip_core::message::raw;
use sip_core::{HeaderName, Limits, Message, MessageView};

/// The typed parse of one header line alone (no limits on the number of values).
fn typed_line(name: &str, value: &str) -> (Vec<u8>, Limits) {
    let buf = format!("OPTIONS sip:a@b SIP/2.0\r\n{name}: {value}\r\n\r\n").into_bytes();
    let limits = Limits {
        max_headers: usize::MAX,
        max_vias: usize::MAX,
        ..Limits::DEFAULT
    };
    (buf, limits)
}

fn unfolded(value: &str) -> String {
    let pieces: Vec<&str> = value
        .split("\r\n")
        .map(|p| p.trim_matches([' ', '\t']))
        .filter(|p| !p.is_empty())
        .collect();
    pieces.join(" ")
}

fuzz_target!(|data: &[u8]| {
    let quick = raw::request_top_via(data, &Limits::DEFAULT);
    let mut vias: Vec<&str> = quick.iter().map(|(_, v)| *v).collect();
    let mut cseqs = Vec::new();
    let view = MessageView::parse(data).ok();
    if let Some(view) = &view {
        if let Some((method, via)) = quick {
            assert_eq!(view.method(), Some(method));
            assert_eq!(view.header(HeaderName::Via), Some(via));
        }
        let lines: Vec<(String, String)> = raw::header_lines(data)
            .map(|(n, v)| (n.into_owned(), v.into_owned()))
            .collect();
        let expected: Vec<(String, String)> = view
            .headers()
            .map(|h| (h.name.to_owned(), unfolded(h.value)))
            .collect();
        assert_eq!(lines, expected);
        vias.extend(view.header_all(HeaderName::Via));
        cseqs.extend(view.header_all(HeaderName::CSeq));
    }
    for v in vias {
        let (buf, limits) = typed_line("Via", v);
        let typed =
            Message::parse_with(&buf, &limits).map(|m| m.top_via().map(|v| format!("{v:?}")));
        let quick = raw::first_via(v).map(|v| format!("{v:?}"));
        match (&quick, &typed) {
            (Some(q), Ok(Some(t))) => assert_eq!(q, t, "{v:?}"),
            (None, Err(_)) => {}
            _ => panic!("first_via({v:?}) = {quick:?}, typed: {typed:?}"),
        }
    }
    for c in cseqs {
        let (buf, limits) = typed_line("CSeq", c);
        let typed = Message::parse_with(&buf, &limits).map(|m| m.cseq());
        match (raw::cseq(c), &typed) {
            (Some(q), Ok(Some(t))) => assert_eq!(&q, t, "{c:?}"),
            (None, Err(_)) => {}
            (q, _) => panic!("cseq({c:?}) = {q:?}, typed: {typed:?}"),
        }
    }
    if let (Some((method, via)), Ok(msg)) = (quick, Message::parse(data)) {
        assert_eq!(msg.method(), Some(method));
        if let Some(q) = raw::first_via(via) {
            assert_eq!(Some(q), msg.top_via());
        }
    }
});
