//! Quick reads over a message's raw text: the few answers the receive path needs before
//! (or instead of) framing and typing a whole message (RFC 3261 sections 8.2.6 and 17.2.3).
//!
//! [`request_top_via`], [`first_via`] and [`cseq`] frame with the loop
//! [`MessageView`](super::MessageView) frames with and type with the checks
//! [`Message`](super::Message) types with, over only the part of the text they answer from.
//! So when one answers, the answer is what the full parse gives for that part, and where the
//! full parse would reject that part it declines (`None`). What it does not read (the rest
//! of the message) is not checked: a datagram whose request line and first Via line are
//! sound can still fail the full parse further on. [`header_lines`] reads the lines of a
//! request that may not frame at all (to answer it 400); for one that frames they are the
//! view's. The differential tests `raw_reads_*` in `tests/roundtrip.rs` and the fuzz target
//! `raw_reads` hold each read to the full parse.

use std::borrow::Cow;

use super::headers::{self, CSeq, Via};
use super::name::eq_token_lower;
use super::params::{Param, ParamStyle, Params};
use super::typed::{self, HeaderValue};
use super::uri::{self, Host};
use super::view::{self, Layout, RawSpan, Span, StartSpans, Transport};
use super::{fast, scan, HeaderName, Method};
use crate::{ErrorKind, Limits, ParseError};

/// The method and the value of the first Via header line of a request received as a
/// datagram, read without framing the rest of it: what
/// [`MessageView::method`](super::MessageView::method) and
/// [`MessageView::header`](super::MessageView::header)`(HeaderName::Via)` give when the
/// datagram frames. `None` for a response, a version other than SIP/2.0, no Via before the
/// end of the header section, or a fault in the text read up to that Via line (which the
/// full parse would reject).
pub fn request_top_via<'a>(data: &'a [u8], limits: &Limits) -> Option<(Method<'a>, &'a str)> {
    if data.len() > limits.max_message_size {
        return None;
    }
    // the view's framing, stopped at the first Via line
    let mut layout = Layout::empty();
    let mut sink = UpToVia { via: None };
    let _ = view::frame(data, limits, Transport::Datagram, &mut layout, &mut sink);
    let via = sink.via?;
    let StartSpans::Request {
        method, version, ..
    } = layout.start
    else {
        return None;
    };
    if !view::is_sip_2_0(data.get(version.range())?) {
        return None;
    }
    // (one UTF-8 check for the text read: the head must be UTF-8)
    let text = std::str::from_utf8(data.get(..via.end as usize)?).ok()?;
    Some((Method::from_token(method.of(text)), via.of(text)))
}

/// Stops [`view::frame`] at the first Via line, keeping its value.
struct UpToVia {
    via: Option<Span>,
}

impl<'a> view::LineSink<'a> for UpToVia {
    fn line(
        &mut self,
        _: &'a [u8],
        _: usize,
        _: usize,
    ) -> Result<Option<(RawSpan, usize)>, ParseError> {
        Ok(None)
    }

    fn framed(&mut self, raw: &RawSpan, _: usize) -> Result<(), ParseError> {
        if raw.kind != HeaderName::Via {
            return Ok(());
        }
        self.via = Some(raw.value);
        // (not an error: the pass is over)
        Err(ParseError::new(
            ErrorKind::Incomplete,
            raw.value.end as usize,
        ))
    }

    fn head(&mut self, _: &'a [u8], _: usize) -> Result<&'a str, ParseError> {
        // the header section ended without a Via
        Err(ParseError::new(ErrorKind::Incomplete, 0))
    }
}

/// The first Via of the value of a Via header line, typed as [`Message`](super::Message)
/// types it; `None` unless the whole value is a valid Via list.
pub fn first_via(value: &str) -> Option<Via<'_>> {
    first_via_and_branch(value).map(|(via, _)| via)
}

/// [`first_via`] and its `branch` parameter ([`Via::branch`]), found on the way.
pub(crate) fn first_via_and_branch(value: &str) -> Option<(Via<'_>, Option<&str>)> {
    if let Some(found) = single_plain_via(value) {
        return Some(found);
    }
    match first_value(HeaderName::Via, value)? {
        HeaderValue::Via(v) => Some((v, v.branch())),
        _ => None,
    }
}

/// A Via line holding one Via written plainly, `protocol/version/transport SP host[:port]`
/// then `;name[=token]` parameters with no whitespace, quotes or IPv6 references, read in
/// one pass with the checks the typed parse makes (the host rules of
/// [`uri::scan_host_end`], the via-params of [`headers::via_param_ok`]): the Via and its
/// first `branch`. `None` for anything else, which [`first_via_and_branch`] leaves to the
/// general parse.
fn single_plain_via(s: &str) -> Option<(Via<'_>, Option<&str>)> {
    let b = s.as_bytes();
    let token = |from: usize| {
        let end = scan::run(b, from, scan::TOKEN);
        (end > from).then_some(end)
    };
    // sent-protocol = protocol-name SLASH protocol-version SLASH transport, then one SP
    let (p, v) = if b.starts_with(b"SIP/2.0/") {
        (3, 7)
    } else {
        let p = token(0)?;
        if b.get(p) != Some(&b'/') {
            return None;
        }
        let v = token(p + 1)?;
        if b.get(v) != Some(&b'/') {
            return None;
        }
        (p, v)
    };
    let t = token(v + 1)?;
    if b.get(t) != Some(&b' ') {
        return None;
    }
    // sent-by = host [ ":" port ]
    let h = t + 1;
    let (mut i, kind) = uri::scan_host_end(b, h);
    let host_text = s.get(h..i)?;
    let host = match kind {
        uri::HOST_DOMAIN => Host::Domain(host_text),
        uri::HOST_IPV4 => Host::Ipv4(host_text),
        _ => return None,
    };
    let mut port = None;
    if b.get(i) == Some(&b':') {
        // 1 to 5 digits, at most 65535 (leading zeros allowed, as the typed parse reads it)
        let digits = scan::run(b, i + 1, scan::DIGIT);
        if digits == i + 1 || digits - i > 6 {
            return None;
        }
        let n = b[i + 1..digits]
            .iter()
            .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'));
        port = Some(u16::try_from(n).ok()?);
        i = digits;
    }
    // *( ";" via-params ), each a token name with an optional token value
    let params_start = (i + 1).min(b.len());
    let mut branch = None;
    while b.get(i) == Some(&b';') {
        let n0 = i + 1;
        let n = token(n0)?;
        let v = if b.get(n) == Some(&b'=') {
            i = token(n + 1)?;
            Some(n + 1..i)
        } else {
            i = n;
            None
        };
        match n - n0 {
            // via_param_ok wants a token value, which any value here is by construction
            6 if eq_token_lower(&b[n0..n], b"branch") => {
                let v = v?;
                if branch.is_none() {
                    branch = Some(s.get(v)?);
                }
            }
            // (RFC 3581 section 3: the usual bare rport, which via_param_ok accepts)
            5 if v.is_none() && eq_token_lower(&b[n0..n], b"rport") => {}
            // ttl, maddr, rport, received: values with grammars of their own
            3 | 5 | 8 => {
                let name = s.get(n0..n)?;
                let value = match v {
                    Some(v) => Some(s.get(v)?),
                    None => None,
                };
                if !headers::via_param_ok(&Param { name, value }) {
                    return None;
                }
            }
            _ => {}
        }
    }
    // one Via, and nothing after it
    if i != b.len() {
        return None;
    }
    let via = Via {
        protocol: s.get(..p)?,
        version: s.get(p + 1..v)?,
        transport: s.get(v + 1..t)?,
        host,
        port,
        params: Params::from_raw(s.get(params_start..)?, ParamStyle::Header),
    };
    Some((via, branch))
}

/// The value of a CSeq header line, typed as [`Message`](super::Message) types it; `None`
/// when it is not a valid CSeq.
pub fn cseq(value: &str) -> Option<CSeq<'_>> {
    match first_value(HeaderName::CSeq, value)? {
        HeaderValue::CSeq(c) => Some(c),
        _ => None,
    }
}

/// The first typed value of one header line's value (as a view gives it: trimmed, folds
/// kept), when the whole value types: the fast path, else the general parser, as
/// [`Message`](super::Message) does.
fn first_value(name: HeaderName, value: &str) -> Option<HeaderValue<'_>> {
    /// Keeps the first value the fast path stores and lets the others be overwritten.
    struct First<'a> {
        first: HeaderValue<'a>,
        rest: HeaderValue<'a>,
        n: usize,
    }
    impl<'a> fast::Sink<'a> for First<'a> {
        fn slot(&mut self) -> &mut HeaderValue<'a> {
            self.n += 1;
            if self.n == 1 {
                &mut self.first
            } else {
                &mut self.rest
            }
        }
    }
    let max_uri = Limits::DEFAULT.max_uri_length;
    let mut out = First {
        first: HeaderValue::Empty,
        rest: HeaderValue::Empty,
        n: 0,
    };
    let (n, end) = fast::line(name, value, 0, max_uri, &mut out);
    if n > 0 && end == value.len() {
        return Some(out.first);
    }
    let mut first = None;
    typed::parse_value(name, value, max_uri, |v| {
        first.get_or_insert(v);
    })
    .ok()?;
    first
}

/// The header lines of a request that may not parse, for the stateless response it is owed
/// (RFC 3261 sections 8.2.6 and 21.4.1): each line's name as written and its value with
/// line folds replaced by one space, in order, up to the empty line or the end of `data`.
/// Lines without a colon are skipped; a line break other than CRLF is left inside the
/// line it appears in. For a message that frames, these are exactly the view's header
/// lines (see [`HeaderLines`]).
pub fn header_lines(data: &[u8]) -> HeaderLines<'_> {
    // the start line (after any CRLFs before it, section 7.5) is not a header line
    let mut pos = 0;
    while data.get(pos..pos + 2) == Some(b"\r\n") {
        pos += 2;
    }
    HeaderLines {
        data,
        pos: crlf_from(data, pos).map_or(data.len(), |e| e + 2),
    }
}

/// The iterator of [`header_lines`]: `(name, value)` pairs. For a message that
/// [`MessageView`](super::MessageView) frames, the names are the view's and each value is
/// the view's with every line fold and the whitespace around it replaced by one space
/// (RFC 3261 section 7.3.1).
#[derive(Debug, Clone)]
pub struct HeaderLines<'a> {
    data: &'a [u8],
    pos: usize,
}

/// The offset of the next CRLF at or after `from`.
fn crlf_from(data: &[u8], from: usize) -> Option<usize> {
    let rest = data.get(from..)?;
    memchr::memmem::find(rest, b"\r\n").map(|i| from + i)
}

fn trim_wsp(mut b: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = b {
        b = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = b {
        b = rest;
    }
    b
}

impl<'a> Iterator for HeaderLines<'a> {
    type Item = (Cow<'a, str>, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let data = self.data;
        loop {
            let start = self.pos;
            if start >= data.len() {
                return None;
            }
            let first_end = crlf_from(data, start).unwrap_or(data.len());
            if first_end == start {
                // the empty line: the header section is over
                self.pos = data.len();
                return None;
            }
            // the continuation lines: those starting with SP or HTAB
            let mut end = first_end;
            while data.get(end + 2).is_some_and(|&b| b == b' ' || b == b'\t') {
                end = crlf_from(data, end + 2).unwrap_or(data.len());
            }
            self.pos = (end + 2).min(data.len());
            let line = &data[start..first_end];
            let Some(colon) = memchr::memchr(b':', line) else {
                continue;
            };
            let name = String::from_utf8_lossy(trim_wsp(&line[..colon]));
            // the value's pieces, one a physical line, trimmed, the empty ones dropped
            let mut value: Cow<'a, str> = Cow::Borrowed("");
            let mut piece = &line[colon + 1..];
            let mut at = first_end;
            loop {
                let p = trim_wsp(piece);
                if !p.is_empty() {
                    if value.is_empty() {
                        value = String::from_utf8_lossy(p);
                    } else {
                        let v = value.to_mut();
                        v.push(' ');
                        v.push_str(&String::from_utf8_lossy(p));
                    }
                }
                if at >= end {
                    break;
                }
                let next = crlf_from(data, at + 2).unwrap_or(data.len()).min(end);
                piece = &data[at + 2..next];
                at = next;
            }
            return Some((name, value));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &[u8] = b"INVITE sip:bob@example.com SIP/2.0\r\n\
        Max-Forwards: 70\r\n\
        v : SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport\r\n\
        Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKdef\r\n\
        t: Bob\r\n <sip:bob@example.com>\r\n\
        CSeq: 314159 INVITE\r\n\
        Content-Length: 0\r\n\r\n";

    // RFC 3261 section 17.2.3: the request line and the first Via line name the transaction.
    #[test]
    fn rfc3261_17_2_3_request_top_via_reads_the_method_and_first_via_line() {
        let (m, via) = request_top_via(INVITE, &Limits::DEFAULT).unwrap();
        assert_eq!(m, Method::Invite);
        assert_eq!(via, "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc;rport");
        let v = first_via(via).unwrap();
        assert_eq!(v.branch(), Some("z9hG4bKabc"));
        assert_eq!(v.port, Some(5060));
        assert!(request_top_via(b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n", &Limits::DEFAULT).is_none());
        assert!(
            request_top_via(b"INVITE sip:a SIP/3.0\r\nVia: x\r\n\r\n", &Limits::DEFAULT).is_none()
        );
    }

    // RFC 3261 section 20.16: CSeq is a number and a method.
    #[test]
    fn rfc3261_20_16_cseq_reads_number_and_method() {
        let c = cseq("314159 INVITE").unwrap();
        assert_eq!((c.seq, c.method), (314159, Method::Invite));
        assert_eq!(cseq("1\r\n INVITE").map(|c| c.seq), Some(1));
        assert!(cseq("x INVITE").is_none());
        assert!(cseq("4294967296 INVITE").is_none());
    }

    // RFC 3261 section 7.3.1: a fold is one space.
    #[test]
    fn rfc3261_7_3_1_header_lines_join_folds() {
        let lines: Vec<_> = header_lines(INVITE).collect();
        assert_eq!(lines.len(), 6);
        assert_eq!(lines[1].0, "v");
        assert_eq!(lines[3], ("t".into(), "Bob <sip:bob@example.com>".into()));
    }
}
