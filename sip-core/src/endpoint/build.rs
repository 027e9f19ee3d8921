//! The messages the transaction and transport layers write themselves: the top Via of a
//! request (RFC 3261 section 18.1.1), the ACK for a non-2xx final response (section
//! 17.1.1.3), CANCEL (section 9.1) and the stateless answers to requests that cannot be
//! processed (sections 8.2 and 21.5.4). Responses to requests that parsed (100 Trying, the
//! safety 408) are written by [`ResponseBuilder`](crate::ResponseBuilder).

use crate::builder::{push_unfolded, raw_has_tag};
use crate::message::{raw, HeaderName, MessageView, StartLine};
use crate::transport::Transport;

fn push_header(out: &mut Vec<u8>, name: &str, value: &str) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    push_unfolded(out, value);
    out.extend_from_slice(b"\r\n");
}

/// Inserts `Via: SIP/2.0/<transport> <sent_by>;branch=<branch>;rport` as the first header
/// line of a request (section 8.1.1.7; `rport` per RFC 3581 section 3).
pub(crate) fn insert_via(
    data: &[u8],
    transport: Transport,
    sent_by: &str,
    branch: &str,
) -> Vec<u8> {
    let line_end = data
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(data.len(), |p| p + 2);
    let mut out = Vec::with_capacity(data.len() + 64 + sent_by.len() + branch.len());
    out.extend_from_slice(&data[..line_end]);
    out.extend_from_slice(b"Via: SIP/2.0/");
    out.extend_from_slice(transport.via_token().as_bytes());
    out.push(b' ');
    out.extend_from_slice(sent_by.as_bytes());
    out.extend_from_slice(b";branch=");
    out.extend_from_slice(branch.as_bytes());
    out.extend_from_slice(b";rport\r\n");
    out.extend_from_slice(&data[line_end..]);
    out
}

fn request_uri<'a>(view: &MessageView<'a>) -> &'a str {
    match view.start_line() {
        StartLine::Request { uri, .. } => uri,
        StartLine::Response { .. } => "",
    }
}

/// `CSeq: <the request's number> <method>` (sections 9.1 and 17.1.1.3), the number typed as
/// the message layer types it (0 when the request has no valid CSeq).
fn push_cseq(out: &mut Vec<u8>, request: &MessageView<'_>, method: &str) {
    let seq = request
        .header(HeaderName::CSeq)
        .and_then(raw::cseq)
        .map_or(0, |c| c.seq);
    out.extend_from_slice(b"CSeq: ");
    out.extend_from_slice(seq.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(method.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The start of a request that copies the original's Request-URI, top Via, Route set,
/// From and Call-ID, as both ACK (section 17.1.1.3) and CANCEL (section 9.1) must.
fn derived_request(out: &mut Vec<u8>, method: &str, request: &MessageView<'_>) {
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(request_uri(request).as_bytes());
    out.extend_from_slice(b" SIP/2.0\r\n");
    // The endpoint wrote its Via on a line of its own, so the first Via line is exactly the
    // top Via value.
    if let Some(via) = request.header(HeaderName::Via) {
        push_header(out, "Via", via);
    }
    for route in request.header_all(HeaderName::Route) {
        push_header(out, "Route", route);
    }
    out.extend_from_slice(b"Max-Forwards: 70\r\n");
    if let Some(from) = request.header(HeaderName::From) {
        push_header(out, "From", from);
    }
}

/// The ACK for a non-2xx final response (section 17.1.1.3): same Request-URI, Call-ID,
/// From, CSeq number, top Via and Route set as the INVITE; To from the response.
pub(crate) fn ack_for(request: &MessageView<'_>, response: &MessageView<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(request.as_bytes().len().min(1024));
    derived_request(&mut out, "ACK", request);
    if let Some(to) = response.header(HeaderName::To) {
        push_header(&mut out, "To", to);
    }
    if let Some(id) = request.header(HeaderName::CallId) {
        push_header(&mut out, "Call-ID", id);
    }
    push_cseq(&mut out, request, "ACK");
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

/// CANCEL for a pending request (section 9.1): Request-URI, Call-ID, To, From, CSeq number
/// and the single top Via of the request, its Route set, method CANCEL.
pub(crate) fn cancel_for(request: &MessageView<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(request.as_bytes().len().min(1024));
    derived_request(&mut out, "CANCEL", request);
    if let Some(to) = request.header(HeaderName::To) {
        push_header(&mut out, "To", to);
    }
    if let Some(id) = request.header(HeaderName::CallId) {
        push_header(&mut out, "Call-ID", id);
    }
    push_cseq(&mut out, request, "CANCEL");
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

/// Which header a line of a request's head is, for copying into a response.
fn copied_name(name: &str) -> Option<&'static str> {
    use HeaderName as H;
    let n = HeaderName::from_name(name);
    matches!(n, H::Via | H::From | H::To | H::CallId | H::CSeq).then(|| n.as_str())
}

/// A response written from the raw lines of a request that did not parse (or was refused
/// before a transaction existed): the Via lines, the first From, To, Call-ID and CSeq
/// (section 8.2.6.2), a To tag when `to_tag` is given and To has none, and `extra` header
/// lines. Used for the 400/505/513/503 such a request is owed; the caller parses the result
/// and drops it if it does not parse (the request's own Via or From was the broken part).
pub(crate) fn response_from_raw(
    data: &[u8],
    code: u16,
    reason: &str,
    to_tag: Option<&str>,
    extra: &str,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"SIP/2.0 ");
    out.extend_from_slice(code.to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    let mut seen: [bool; 4] = [false; 4];
    for (name, value) in raw::header_lines(data) {
        let Some(long) = copied_name(&name) else {
            continue;
        };
        let slot = match long {
            "From" => Some(0),
            "To" => Some(1),
            "Call-ID" => Some(2),
            "CSeq" => Some(3),
            _ => None,
        };
        if let Some(i) = slot {
            if seen[i] {
                continue;
            }
            seen[i] = true;
        }
        out.extend_from_slice(long.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        if long == "To" {
            if let Some(tag) = to_tag {
                if !raw_has_tag(&value) {
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(tag.as_bytes());
                }
            }
        }
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(extra.as_bytes());
    out.extend_from_slice(b"Content-Length: 0\r\n\r\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
        Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport\r\n\
        v: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKdef\r\n\
        Route: <sip:p1.example.com;lr>\r\n\
        Max-Forwards: 70\r\n\
        f: Alice <sip:alice@example.com>;tag=1928\r\n\
        t: Bob\r\n <sip:bob@example.com>\r\n\
        i: a84b4c76e66710\r\n\
        CSeq: 314159 INVITE\r\n\
        Timestamp: 54\r\n\
        Content-Length: 0\r\n\r\n";

    #[test]
    fn rfc3261_17_1_1_3_ack_copies_the_invite_and_the_response_to() {
        let req = Message::parse(INVITE).unwrap();
        let resp =
            b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n\
            From: Alice <sip:alice@example.com>;tag=1928\r\nTo: <sip:bob@example.com>;tag=xyz\r\n\
            Call-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\nContent-Length: 0\r\n\r\n";
        let resp = Message::parse(resp).unwrap();
        let ack = ack_for(req.view(), resp.view());
        let ack = Message::parse(&ack).expect("the ACK parses");
        assert_eq!(ack.method(), Some(crate::Method::Ack));
        assert_eq!(ack.vias().count(), 1, "one Via: the INVITE's top one");
        assert_eq!(ack.top_via().unwrap().branch(), Some("z9hG4bKabc"));
        assert_eq!(ack.to().unwrap().tag(), Some("xyz"));
        assert_eq!(ack.cseq().unwrap().seq, 314159);
        assert_eq!(ack.routes().count(), 1);
        assert_eq!(ack.call_id(), Some("a84b4c76e66710"));
    }

    #[test]
    fn rfc3261_9_1_cancel_copies_the_request() {
        let req = Message::parse(INVITE).unwrap();
        let cancel = cancel_for(req.view());
        let cancel = Message::parse(&cancel).expect("the CANCEL parses");
        assert_eq!(cancel.method(), Some(crate::Method::Cancel));
        assert_eq!(cancel.cseq().unwrap().method, crate::Method::Cancel);
        assert_eq!(cancel.cseq().unwrap().seq, 314159);
        assert_eq!(cancel.vias().count(), 1);
        assert_eq!(cancel.to().unwrap().tag(), None);
        assert_eq!(
            cancel.request_uri().unwrap().to_string(),
            "sip:bob@example.com"
        );
    }

    #[test]
    fn rfc3261_8_2_6_raw_response_copies_vias_and_adds_a_to_tag() {
        let r = response_from_raw(INVITE, 400, "Bad Request", Some("t1"), "");
        let r = Message::parse(&r).expect("parses");
        assert_eq!(r.status(), Some(400));
        assert_eq!(r.vias().count(), 2);
        assert_eq!(r.to().unwrap().tag(), Some("t1"));
        assert_eq!(r.view().header(HeaderName::Timestamp), None);
        // a To that has its tag keeps it, alone
        let tagged = String::from_utf8_lossy(INVITE).replace(
            "t: Bob\r\n <sip:bob@example.com>",
            "t: <sip:bob@example.com>;tag=x",
        );
        let r = response_from_raw(tagged.as_bytes(), 400, "Bad Request", Some("t1"), "");
        let r = Message::parse(&r).expect("parses");
        assert_eq!(r.to().unwrap().tag(), Some("x"));
        assert_eq!(r.to().unwrap().params.iter().count(), 1);
    }

    #[test]
    fn rfc3261_17_2_1_the_endpoints_100_trying_echoes_timestamp_without_a_to_tag() {
        // what `Endpoint` sends when the transaction user is slow (section 8.2.6.1)
        let req = crate::OwnedMessage::parse(INVITE).unwrap();
        let view = req.view();
        let t = crate::ResponseBuilder::from_view(&view, 100)
            .build(&mut crate::SeededRng::new([1; 32]))
            .unwrap();
        let t = t.message().unwrap();
        assert_eq!(t.to().unwrap().tag(), None);
        assert_eq!(t.view().header(HeaderName::Timestamp), Some("54"));
    }

    #[test]
    fn rfc3261_18_1_1_via_inserted_first() {
        let data = b"OPTIONS sip:b@example.com SIP/2.0\r\nTo: <sip:b@example.com>\r\n\r\n";
        let out = insert_via(data, Transport::Tcp, "192.0.2.1:5060", "z9hG4bKx");
        assert!(out.starts_with(
            b"OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/TCP 192.0.2.1:5060;branch=z9hG4bKx;rport\r\nTo:"
        ));
    }
}
