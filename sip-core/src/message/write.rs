//! Serialization into a caller's buffer (RFC 3261 section 7). Canonical form writes long
//! header names and one value per header line; values come from their typed form, so LWS
//! and folds disappear while parameters and unknown headers are kept.

use super::headers::{Contact, DisplayName, NameAddr};
use super::params::write_params;
use super::typed::{Form, HeaderValue, Message};
use super::uri::write_u64;
use super::view::StartSpans;
use super::HeaderName;

pub(crate) fn write_message(m: &Message<'_>, out: &mut Vec<u8>, form: Form) {
    let view = m.view();
    let head = view.head;
    if form == Form::Original {
        let start = match view.layout.start {
            StartSpans::Request { method, .. } => method.start,
            StartSpans::Response { version, .. } => version.start,
        } as usize;
        out.extend_from_slice(head.as_bytes().get(start..).unwrap_or(&[]));
        out.extend_from_slice(view.body());
        return;
    }
    match view.layout.start {
        StartSpans::Request { method, .. } => {
            out.extend_from_slice(method.of(head).as_bytes());
            out.push(b' ');
            if let Some(u) = m.request_uri() {
                u.write_to(out);
            }
            out.extend_from_slice(b" SIP/2.0\r\n");
        }
        StartSpans::Response { code, reason, .. } => {
            out.extend_from_slice(b"SIP/2.0 ");
            write_u64(out, u64::from(code));
            out.push(b' ');
            out.extend_from_slice(reason.of(head).as_bytes());
            out.extend_from_slice(b"\r\n");
        }
    }
    for h in m.headers() {
        if h.name == HeaderName::Other {
            out.extend_from_slice(m.name_as_written(&h).as_bytes());
        } else {
            out.extend_from_slice(h.name.as_str().as_bytes());
        }
        out.extend_from_slice(b": ");
        write_value(out, &h.value);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(view.body());
}

/// Writes text with every run of whitespace that contains a line fold replaced by one SP
/// (RFC 3261 section 7.3.1: a fold is equivalent to a space).
pub(crate) fn write_unfolded(out: &mut Vec<u8>, s: &str) {
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' && b.get(i + 1) == Some(&b'\n') {
            while out.last().is_some_and(|&c| c == b' ' || c == b'\t') {
                out.pop();
            }
            i += 2;
            while matches!(b.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            out.push(b' ');
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
}

/// A display name as written in a name-addr: a quoted string with its quotes (folds
/// unfolded), or the tokens separated by one space.
fn write_display_name(out: &mut Vec<u8>, d: &DisplayName<'_>) {
    match d {
        DisplayName::Quoted(q) => {
            out.push(b'"');
            write_unfolded(out, q);
            out.push(b'"');
        }
        DisplayName::Tokens(t) => {
            for (i, w) in t
                .split([' ', '\t', '\r', '\n'])
                .filter(|w| !w.is_empty())
                .enumerate()
            {
                if i > 0 {
                    out.push(b' ');
                }
                out.extend_from_slice(w.as_bytes());
            }
        }
    }
}

fn write_name_addr(out: &mut Vec<u8>, n: &NameAddr<'_>) {
    if let Some(d) = &n.display_name {
        write_display_name(out, d);
        out.push(b' ');
    }
    let bracket = n.bracketed || n.display_name.is_some();
    if bracket {
        out.push(b'<');
    }
    n.uri.write_to(out);
    if bracket {
        out.push(b'>');
    }
    write_params(out, &n.params);
}

/// Writes one typed value.
pub(crate) fn write_value(out: &mut Vec<u8>, v: &HeaderValue<'_>) {
    use HeaderValue as V;
    match v {
        V::Via(v) => {
            out.extend_from_slice(v.protocol.as_bytes());
            out.push(b'/');
            out.extend_from_slice(v.version.as_bytes());
            out.push(b'/');
            out.extend_from_slice(v.transport.as_bytes());
            out.push(b' ');
            v.host.write_to(out);
            if let Some(p) = v.port {
                out.push(b':');
                write_u64(out, u64::from(p));
            }
            write_params(out, &v.params);
        }
        V::Addr(n) => write_name_addr(out, n),
        V::Contact(Contact::Star) => out.push(b'*'),
        V::Contact(Contact::Addr(n)) => write_name_addr(out, n),
        V::CallId(s) | V::Token(s) | V::Text(s) | V::Raw(s) => write_unfolded(out, s),
        V::CSeq(c) => {
            write_u64(out, u64::from(c.seq));
            out.push(b' ');
            out.extend_from_slice(c.method.as_str().as_bytes());
        }
        V::RAck(r) => {
            write_u64(out, u64::from(r.rseq));
            out.push(b' ');
            write_u64(out, u64::from(r.cseq));
            out.push(b' ');
            out.extend_from_slice(r.method.as_str().as_bytes());
        }
        V::Number(n) => write_u64(out, u64::from(*n)),
        V::MediaType(m) => {
            out.extend_from_slice(m.ty.as_bytes());
            out.push(b'/');
            out.extend_from_slice(m.subtype.as_bytes());
            write_params(out, &m.params);
        }
        V::TokenParams(t) => {
            out.extend_from_slice(t.value.as_bytes());
            write_params(out, &t.params);
        }
        V::Info(i) => {
            out.push(b'<');
            i.uri.write_to(out);
            out.push(b'>');
            write_params(out, &i.params);
        }
        V::Auth(a) => {
            out.extend_from_slice(a.scheme.as_bytes());
            if !a.params.is_empty() {
                out.push(b' ');
                write_params(out, &a.params);
            }
        }
        V::AuthInfo(p) => write_params(out, p),
        V::Seconds(s) => {
            write_u64(out, u64::from(s.seconds));
            if let Some(c) = s.comment {
                out.extend_from_slice(b" (");
                write_unfolded(out, c);
                out.push(b')');
            }
            write_params(out, &s.params);
        }
        V::Warning(w) => {
            write_u64(out, u64::from(w.code));
            out.push(b' ');
            out.extend_from_slice(w.agent.as_bytes());
            out.extend_from_slice(b" \"");
            write_unfolded(out, w.text);
            out.push(b'"');
        }
        V::Timestamp(t) => {
            out.extend_from_slice(t.time.as_bytes());
            if let Some(d) = t.delay {
                out.push(b' ');
                out.extend_from_slice(d.as_bytes());
            }
        }
        V::Date(d) => out.extend_from_slice(d.text.as_bytes()),
        V::Empty => {}
    }
}

/// `Display` for each typed value writes what [`Form::Canonical`] writes for it: text that
/// parses back to the same value, so new values need not be formatted by hand.
macro_rules! display_as_header_value {
    ($($ty:ident => $variant:ident),* $(,)?) => {$(
        impl std::fmt::Display for super::headers::$ty<'_> {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                HeaderValue::$variant(*self).fmt(f)
            }
        }
    )*};
}

display_as_header_value! {
    Via => Via,
    NameAddr => Addr,
    Contact => Contact,
    CSeq => CSeq,
    RAck => RAck,
    MediaType => MediaType,
    TokenParams => TokenParams,
    InfoUri => Info,
    Auth => Auth,
    Seconds => Seconds,
    Warning => Warning,
    Timestamp => Timestamp,
    SipDate => Date,
}

/// Writes bytes made of `&str` parts (always UTF-8) to a formatter.
fn write_utf8(f: &mut std::fmt::Formatter<'_>, out: &[u8]) -> std::fmt::Result {
    f.write_str(&String::from_utf8_lossy(out))
}

impl std::fmt::Display for HeaderValue<'_> {
    /// The value as [`Form::Canonical`] writes it (folds collapsed to one space).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = Vec::with_capacity(64);
        write_value(&mut out, self);
        write_utf8(f, &out)
    }
}

impl std::fmt::Display for super::uri::SipUri<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = Vec::with_capacity(64);
        self.write_to(&mut out);
        write_utf8(f, &out)
    }
}

impl std::fmt::Display for super::uri::Host<'_> {
    /// The host, IPv6 references in brackets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = Vec::with_capacity(40);
        self.write_to(&mut out);
        write_utf8(f, &out)
    }
}

impl std::fmt::Display for DisplayName<'_> {
    /// As written in a name-addr: a quoted string with its quotes, or the tokens.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = Vec::with_capacity(32);
        write_display_name(&mut out, self);
        write_utf8(f, &out)
    }
}

#[cfg(test)]
mod tests {
    use crate::Message;

    // RFC 3261 section 20: typed values display as their header text.
    #[test]
    fn typed_values_display_as_header_text() {
        let m = Message::parse(
            b"INVITE sip:bob@example.com SIP/2.0\r\n\
              Via: SIP/2.0/UDP [2001:db8::1]:5060 ; branch=z9hG4bK1;rport\r\n\
              From: \"Alice A.\" <sip:alice@example.com>;tag=1\r\n\
              To: Bob <sip:bob@example.com>\r\n\
              CSeq: 7   INVITE\r\n\
              Content-Type: application/sdp ; charset=utf-8\r\n\
              Contact: *\r\n\r\n",
        )
        .unwrap();
        let via = m.top_via().unwrap();
        assert_eq!(
            via.to_string(),
            "SIP/2.0/UDP [2001:db8::1]:5060;branch=z9hG4bK1;rport"
        );
        assert_eq!(via.host.to_string(), "[2001:db8::1]");
        let from = m.from().unwrap();
        assert_eq!(
            from.to_string(),
            "\"Alice A.\" <sip:alice@example.com>;tag=1"
        );
        assert_eq!(from.display_name.unwrap().to_string(), "\"Alice A.\"");
        assert_eq!(
            from.uri.as_sip().unwrap().to_string(),
            "sip:alice@example.com"
        );
        assert_eq!(m.to().unwrap().to_string(), "Bob <sip:bob@example.com>");
        assert_eq!(m.cseq().unwrap().to_string(), "7 INVITE");
        assert_eq!(
            m.content_type().unwrap().to_string(),
            "application/sdp;charset=utf-8"
        );
        assert_eq!(m.contacts().next().unwrap().to_string(), "*");
    }
}
