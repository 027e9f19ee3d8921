//! Building requests (RFC 3261 section 8.1.1) and responses (section 8.2.6). Builders write
//! the message text and parse it back, so what they return is exactly what a peer would
//! parse. Tags, branches and Call-IDs come from the caller's [`Rng`].

use crate::message::scan;
use smallvec::SmallVec;

use crate::message::view::{Layout, RawSpan, Span, StartSpans};
use crate::message::{HeaderName, Message, MessageView, Method, INLINE_HEADERS};
use crate::rng::push_random_token;
use crate::{OwnedMessage, ParseError, Rng};

/// Why a builder could not produce a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A mandatory part was not given.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A part does not match its grammar; the error says where in the built text.
    #[error("invalid {part}: {source}")]
    Invalid {
        /// Which part.
        part: &'static str,
        /// The parse error of the built message.
        source: ParseError,
    },
    /// A status code outside 100-699.
    #[error("status code {0} outside 100-699")]
    BadStatus(u16),
    /// CR, LF or NUL in text a caller gave (a header name or value, the Request-URI, a
    /// reason phrase, ...): CR and LF would end the line and start another header (header
    /// injection, RFC 3261 section 7.3.1), and NUL is allowed nowhere in a header.
    #[error("{part} contains CR, LF or NUL")]
    ForbiddenCharacter {
        /// Which part.
        part: &'static str,
    },
    /// A header name that is not a token (RFC 3261 section 25.1 `field-name = token`).
    #[error("header name {0:?} is not a token")]
    InvalidHeaderName(String),
    /// The message would be larger than the size limit
    /// ([`Limits::max_message_size`](crate::Limits::max_message_size)).
    #[error("message of {size} bytes larger than the limit of {limit}")]
    TooLarge {
        /// The size the message would have.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// An edit that does not apply to this message (a Request-URI for a response, the top
    /// Via of a message without one, a header kept by the editor itself such as
    /// Content-Length).
    #[error("not applicable: {0}")]
    NotApplicable(&'static str),
}

/// Refuses CR, LF and NUL in text a caller hands a builder or editor (RFC 3261 section
/// 7.3.1: a CRLF would end the header line and start another one).
pub(crate) fn check_text(part: &'static str, text: &str) -> Result<(), BuildError> {
    match memchr::memchr3(b'\r', b'\n', 0, text.as_bytes()) {
        Some(_) => Err(BuildError::ForbiddenCharacter { part }),
        None => Ok(()),
    }
}

/// A Reason-Phrase (RFC 3261 section 25.1): no CR, LF or NUL (header injection), and no
/// other control character but HTAB either.
pub(crate) fn check_reason(reason: &str) -> Result<(), BuildError> {
    check_text("reason phrase", reason)?;
    match reason
        .bytes()
        .position(|b| b < 0x20 && b != b'\t' || b == 0x7f)
    {
        Some(at) => Err(BuildError::Invalid {
            part: "reason phrase",
            source: ParseError::new(crate::ErrorKind::InvalidReasonPhrase, at),
        }),
        None => Ok(()),
    }
}

/// A header name must be a token (RFC 3261 section 25.1) without CR, LF or NUL.
pub(crate) fn check_name(name: &str) -> Result<(), BuildError> {
    check_text("header name", name)?;
    if scan::all_token(name) {
        Ok(())
    } else {
        Err(BuildError::InvalidHeaderName(name.to_owned()))
    }
}

/// The RFC 3261 magic cookie that starts every branch (section 8.1.1.7).
pub const MAGIC_COOKIE: &str = "z9hG4bK";

/// A Via the builder writes: a new one (transport, sent-by; the branch is drawn at build
/// time), or a value as written (repeated from another request).
#[derive(Debug, Clone)]
enum ViaSpec {
    New(String, String),
    Raw(String),
}

/// Builds a request.
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    method: String,
    uri: String,
    from: Option<String>,
    to: Option<String>,
    call_id: Option<String>,
    cseq: u32,
    max_forwards: u8,
    vias: Vec<ViaSpec>,
    contact: Option<String>,
    extra: Vec<(String, String)>,
    body: Option<(String, Vec<u8>)>,
}

impl RequestBuilder {
    /// A request with `method` to `request_uri`. CSeq defaults to 1, Max-Forwards to 70.
    pub fn new(method: Method<'_>, request_uri: &str) -> RequestBuilder {
        RequestBuilder {
            method: method.as_str().to_owned(),
            uri: request_uri.to_owned(),
            from: None,
            to: None,
            call_id: None,
            cseq: 1,
            max_forwards: 70,
            vias: Vec::new(),
            contact: None,
            extra: Vec::new(),
            body: None,
        }
    }

    /// From, as `name-addr` or `addr-spec` text; a tag is added when it has none.
    pub fn from(mut self, addr: &str) -> Self {
        self.from = Some(addr.to_owned());
        self
    }

    /// To, as text; no tag is added (section 8.1.1.2).
    pub fn to(mut self, addr: &str) -> Self {
        self.to = Some(addr.to_owned());
        self
    }

    /// The Call-ID; one is generated when not given.
    pub fn call_id(mut self, id: &str) -> Self {
        self.call_id = Some(id.to_owned());
        self
    }

    /// The CSeq number.
    pub fn cseq(mut self, seq: u32) -> Self {
        self.cseq = seq;
        self
    }

    /// Max-Forwards.
    pub fn max_forwards(mut self, hops: u8) -> Self {
        self.max_forwards = hops;
        self
    }

    /// Adds a Via (topmost first) for `transport` (`UDP`, `TCP`, ...) and `sent_by`
    /// (`host[:port]`), with a fresh magic-cookie branch and `rport` (RFC 3581). Leave Via
    /// out for requests given to [`Endpoint::send_request`](crate::Endpoint::send_request):
    /// the endpoint writes its own top Via.
    pub fn via(mut self, transport: &str, sent_by: &str) -> Self {
        self.vias
            .push(ViaSpec::New(transport.to_owned(), sent_by.to_owned()));
        self
    }

    /// Adds a Via value as written (below those added before), such as the top Via of the
    /// request a CANCEL cancels (section 9.1); see [`RequestBuilder::cancel_for`].
    pub fn via_value(mut self, via: &str) -> Self {
        self.vias.push(ViaSpec::Raw(via.to_owned()));
        self
    }

    /// Contact, as text.
    pub fn contact(mut self, addr: &str) -> Self {
        self.contact = Some(addr.to_owned());
        self
    }

    /// Any other header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.extra.push((name.to_owned(), value.to_owned()));
        self
    }

    /// The body and its Content-Type; Content-Length is computed.
    pub fn body(mut self, content_type: &str, body: &[u8]) -> Self {
        self.body = Some((content_type.to_owned(), body.to_vec()));
        self
    }

    /// A builder holding the parts of `request`, to derive another request from it: a
    /// B2BUA's request on its other leg, a retry. (For a CANCEL use
    /// [`RequestBuilder::cancel_for`], which keeps only what section 9.1 lists.) Copies the method, Request-URI, From (with its tag), To,
    /// Call-ID, CSeq number, Max-Forwards, Contact, the body with its Content-Type, and every
    /// other header line in order (folds unfolded), except Via (the new request gets its
    /// own: add one with [`RequestBuilder::via`], or let
    /// [`Endpoint::send_request`](crate::Endpoint::send_request) write it) and
    /// Content-Length (computed). A body without Content-Type is copied as
    /// `application/octet-stream`. Fails on a response.
    pub fn from_request(request: &Message<'_>) -> Result<RequestBuilder, BuildError> {
        let method = request
            .method()
            .ok_or(BuildError::NotApplicable("a response is not a request"))?;
        let view = request.view();
        let uri = match view.start_line() {
            crate::message::StartLine::Request { uri, .. } => uri,
            crate::message::StartLine::Response { .. } => "",
        };
        let mut b = RequestBuilder::new(method, uri);
        b.cseq = request.cseq().ok_or(BuildError::Missing("CSeq"))?.seq;
        if let Some(hops) = request.max_forwards() {
            b.max_forwards = hops as u8;
        }
        let mut content_type = None;
        for h in view.headers() {
            let value = unfolded(h.value);
            match h.kind {
                HeaderName::Via | HeaderName::ContentLength | HeaderName::CSeq => {}
                HeaderName::MaxForwards => {}
                HeaderName::From if b.from.is_none() => b.from = Some(value),
                HeaderName::To if b.to.is_none() => b.to = Some(value),
                HeaderName::CallId if b.call_id.is_none() => b.call_id = Some(value),
                HeaderName::Contact if b.contact.is_none() => b.contact = Some(value),
                HeaderName::ContentType if content_type.is_none() => content_type = Some(value),
                _ => b.extra.push((h.name.to_owned(), value)),
            }
        }
        if !request.body().is_empty() || content_type.is_some() {
            b.body = Some((
                content_type.unwrap_or_else(|| "application/octet-stream".to_owned()),
                request.body().to_vec(),
            ));
        }
        Ok(b)
    }

    /// The CANCEL for `request` (RFC 3261 section 9.1): the same Request-URI, Call-ID, To,
    /// From and CSeq number, method CANCEL, only the request's top Via value (so the
    /// CANCEL matches its transaction at the next hop), its Route values, Max-Forwards 70
    /// (section 8.1.1.6), no body. Fails on a response or a request without Via.
    ///
    /// This is for a CANCEL sent by hand (a stateless element, a test peer). Through an
    /// [`Endpoint`](crate::Endpoint), use [`Endpoint::cancel`](crate::Endpoint::cancel):
    /// it writes the CANCEL from the INVITE's client transaction, whose Via carries the
    /// branch the endpoint chose (`send_request` adds a Via of its own, so a request built
    /// here would not match).
    pub fn cancel_for(request: &Message<'_>) -> Result<RequestBuilder, BuildError> {
        let top = request
            .top_via()
            .ok_or(BuildError::Missing("Via"))?
            .to_string();
        let mut b = Self::from_request(request)?
            .method(Method::Cancel)
            .no_body()
            .via_value(&top);
        b.max_forwards = 70;
        b.contact = None;
        b.extra
            .retain(|(n, _)| HeaderName::from_name(n) == HeaderName::Route);
        Ok(b)
    }

    /// Changes the method (the CSeq method follows it).
    pub fn method(mut self, method: Method<'_>) -> Self {
        self.method = method.as_str().to_owned();
        self
    }

    /// Changes the Request-URI.
    pub fn request_uri(mut self, uri: &str) -> Self {
        uri.clone_into(&mut self.uri);
        self
    }

    /// Removes the headers added with [`RequestBuilder::header`] (or copied by
    /// [`RequestBuilder::from_request`]) with this name: case-insensitive, compact forms
    /// equal to long ones (RFC 3261 section 7.3).
    pub fn remove_header(mut self, name: &str) -> Self {
        let kind = HeaderName::from_name(name);
        self.extra.retain(|(n, _)| {
            if kind == HeaderName::Other {
                !n.eq_ignore_ascii_case(name)
            } else {
                HeaderName::from_name(n) != kind
            }
        });
        self
    }

    /// Removes the body and its Content-Type (Content-Length becomes 0).
    pub fn no_body(mut self) -> Self {
        self.body = None;
        self
    }

    /// Writes and parses the request. Refuses CR, LF and NUL in every part given
    /// ([`BuildError::ForbiddenCharacter`]) and header names that are not tokens
    /// ([`BuildError::InvalidHeaderName`]), so no text a caller passes on can add a header.
    pub fn build(&self, rng: &mut dyn Rng) -> Result<OwnedMessage, BuildError> {
        let from = self.from.as_deref().ok_or(BuildError::Missing("From"))?;
        let to = self.to.as_deref().ok_or(BuildError::Missing("To"))?;
        self.check_parts()?;
        let mut s = String::with_capacity(512);
        s.push_str(&self.method);
        s.push(' ');
        s.push_str(&self.uri);
        s.push_str(" SIP/2.0\r\n");
        for via in &self.vias {
            match via {
                ViaSpec::New(transport, sent_by) => {
                    s.push_str("Via: SIP/2.0/");
                    s.push_str(transport);
                    s.push(' ');
                    s.push_str(sent_by);
                    s.push_str(";branch=");
                    s.push_str(&new_branch(rng));
                    s.push_str(";rport\r\n");
                }
                ViaSpec::Raw(value) => push_header(&mut s, "Via", value),
            }
        }
        push_header(&mut s, "Max-Forwards", &self.max_forwards.to_string());
        push_header(&mut s, "To", to);
        s.push_str("From: ");
        s.push_str(from);
        if !has_tag(from) {
            s.push_str(";tag=");
            push_random_token(&mut s, rng, 10);
        }
        s.push_str("\r\n");
        s.push_str("Call-ID: ");
        match &self.call_id {
            Some(id) => s.push_str(id),
            None => push_random_token(&mut s, rng, 24),
        }
        s.push_str("\r\n");
        push_header(&mut s, "CSeq", &format!("{} {}", self.cseq, self.method));
        if let Some(c) = &self.contact {
            push_header(&mut s, "Contact", c);
        }
        for (n, v) in &self.extra {
            push_header(&mut s, n, v);
        }
        finish(s, self.body.as_ref())
    }
}

impl RequestBuilder {
    /// Every part given, against CR, LF and NUL; names against the token grammar (the
    /// typed parse of the built text checks the rest).
    fn check_parts(&self) -> Result<(), BuildError> {
        if !scan::all_token(&self.method) {
            check_text("method", &self.method)?;
            return Err(BuildError::Invalid {
                part: "start line",
                source: ParseError::new(crate::ErrorKind::InvalidMethod, 0),
            });
        }
        check_text("Request-URI", &self.uri)?;
        for (part, v) in [
            ("From", &self.from),
            ("To", &self.to),
            ("Call-ID", &self.call_id),
            ("Contact", &self.contact),
        ] {
            if let Some(v) = v {
                check_text(part, v)?;
            }
        }
        for via in &self.vias {
            match via {
                ViaSpec::New(transport, sent_by) => {
                    check_text("Via transport", transport)?;
                    check_text("Via sent-by", sent_by)?;
                }
                ViaSpec::Raw(value) => check_text("Via", value)?,
            }
        }
        for (n, v) in &self.extra {
            check_name(n)?;
            check_text("header value", v)?;
        }
        if let Some((ct, _)) = &self.body {
            check_text("Content-Type", ct)?;
        }
        Ok(())
    }
}

/// A header value with its line folds replaced by single spaces (RFC 3261 section 7.3.1).
fn unfolded(value: &str) -> String {
    let mut v = Vec::with_capacity(value.len());
    push_unfolded(&mut v, value);
    String::from_utf8(v).unwrap_or_default()
}

/// A fresh branch: the magic cookie and 16 random characters (section 8.1.1.7).
pub fn new_branch(rng: &mut dyn Rng) -> String {
    let mut b = String::with_capacity(MAGIC_COOKIE.len() + 16);
    b.push_str(MAGIC_COOKIE);
    push_random_token(&mut b, rng, 16);
    b
}

fn has_tag(addr: &str) -> bool {
    let mut c = scan::Cursor::new(addr);
    crate::message::headers_name_addr(&mut c).is_some_and(|n| n.tag().is_some())
}

fn push_header(s: &mut String, name: &str, value: &str) {
    s.push_str(name);
    s.push_str(": ");
    s.push_str(value);
    s.push_str("\r\n");
}

fn finish(mut s: String, body: Option<&(String, Vec<u8>)>) -> Result<OwnedMessage, BuildError> {
    match body {
        Some((ct, b)) => {
            push_header(&mut s, "Content-Type", ct);
            push_header(&mut s, "Content-Length", &b.len().to_string());
            s.push_str("\r\n");
            let mut bytes = s.into_bytes();
            bytes.extend_from_slice(b);
            parse_built(&bytes)
        }
        None => {
            s.push_str("Content-Length: 0\r\n\r\n");
            parse_built(s.as_bytes())
        }
    }
}

fn parse_built(bytes: &[u8]) -> Result<OwnedMessage, BuildError> {
    let limit = crate::Limits::DEFAULT.max_message_size;
    if bytes.len() > limit {
        return Err(BuildError::TooLarge {
            size: bytes.len(),
            limit,
        });
    }
    OwnedMessage::parse_typed(bytes, &crate::Limits::DEFAULT).map_err(|source| {
        BuildError::Invalid {
            part: match source.kind {
                crate::ErrorKind::InvalidHeader(_) => "header",
                crate::ErrorKind::InvalidRequestUri | crate::ErrorKind::InvalidStartLine => {
                    "start line"
                }
                _ => "message",
            },
            source,
        }
    })
}

/// Builds a response to a request (RFC 3261 section 8.2.6).
///
/// The copied headers are taken from the request's raw lines (so they equal the request's
/// values exactly, as section 8.2.6.2 asks), which needs no typed parse: build from a
/// [`MessageView`] with [`ResponseBuilder::from_view`] when the request was already checked
/// (an [`Event::Request`](crate::Event::Request) has been). What the caller adds (reason,
/// tag, headers, Content-Type) is checked against the grammar.
#[derive(Debug, Clone)]
pub struct ResponseBuilder<'r, 'a> {
    request: &'r MessageView<'a>,
    code: u16,
    reason: Option<&'r str>,
    to_tag: Option<&'r str>,
    extra: SmallVec<[(&'r str, &'r str); 4]>,
    body: Option<(&'r str, &'r [u8])>,
}

/// The response `code` to `request` with the default reason phrase, copying Via, From, To,
/// Call-ID and CSeq (section 8.2.6.2) and adding a To tag when the request had none and the
/// code is above 100. Use [`ResponseBuilder`] to choose the tag (every response of one
/// transaction must carry the same one) or to add headers and a body.
pub fn response_to(
    request: &Message<'_>,
    code: u16,
    rng: &mut dyn Rng,
) -> Result<OwnedMessage, BuildError> {
    ResponseBuilder::new(request, code).build(rng)
}

impl<'r, 'a> ResponseBuilder<'r, 'a> {
    /// A response with `code` to a typed request.
    pub fn new(request: &'r Message<'a>, code: u16) -> Self {
        Self::from_view(request.view(), code)
    }

    /// A response with `code` to a request seen only as a view (no typed parse needed).
    pub fn from_view(request: &'r MessageView<'a>, code: u16) -> Self {
        ResponseBuilder {
            request,
            code,
            reason: None,
            to_tag: None,
            extra: SmallVec::new(),
            body: None,
        }
    }

    /// A reason phrase other than the default one.
    pub fn reason(mut self, reason: &'r str) -> Self {
        self.reason = Some(reason);
        self
    }

    /// The To tag to add when the request's To has none.
    pub fn to_tag(mut self, tag: &'r str) -> Self {
        self.to_tag = Some(tag);
        self
    }

    /// Any other header.
    pub fn header(mut self, name: &'r str, value: &'r str) -> Self {
        self.extra.push((name, value));
        self
    }

    /// The body and its Content-Type.
    pub fn body(mut self, content_type: &'r str, body: &'r [u8]) -> Self {
        self.body = Some((content_type, body));
        self
    }

    /// Writes the response. Its layout (start line, header and body spans) is recorded while
    /// writing, so the result is not framed again.
    pub fn build(&self, rng: &mut dyn Rng) -> Result<OwnedMessage, BuildError> {
        if !(100..=699).contains(&self.code) {
            return Err(BuildError::BadStatus(self.code));
        }
        self.check_additions()?;
        let mut w = Writer {
            out: Vec::with_capacity(self.request.as_bytes().len().min(1024) + 256),
            headers: SmallVec::new(),
        };
        w.out.extend_from_slice(b"SIP/2.0 ");
        push_decimal(&mut w.out, self.code);
        w.out.push(b' ');
        let reason_start = w.out.len();
        w.out.extend_from_slice(
            self.reason
                .unwrap_or_else(|| reason_phrase(self.code))
                .as_bytes(),
        );
        let reason = Span::new(reason_start, w.out.len());
        w.out.extend_from_slice(b"\r\n");
        let mut have = [false; 4];
        let mut tag_buf = String::new();
        for h in self.request.headers() {
            let slot = match h.kind {
                HeaderName::Via => None,
                HeaderName::From => Some(0),
                HeaderName::To => Some(1),
                HeaderName::CallId => Some(2),
                HeaderName::CSeq => Some(3),
                // section 8.2.6.1: a 100 echoes the request's Timestamp
                HeaderName::Timestamp if self.code == 100 => None,
                _ => continue,
            };
            if let Some(i) = slot {
                if have[i] {
                    continue;
                }
                have[i] = true;
            }
            let tag = if h.kind == HeaderName::To && self.code > 100 && !raw_has_tag(h.value) {
                Some(match self.to_tag {
                    Some(t) => t,
                    None => {
                        push_random_token(&mut tag_buf, rng, 10);
                        tag_buf.as_str()
                    }
                })
            } else {
                None
            };
            w.header(h.kind, h.kind.as_str(), |out| {
                push_unfolded(out, h.value);
                if let Some(t) = tag {
                    out.extend_from_slice(b";tag=");
                    out.extend_from_slice(t.as_bytes());
                }
            });
        }
        for (missing, name) in have.iter().zip(["From", "To", "Call-ID", "CSeq"]) {
            if !missing {
                return Err(BuildError::Missing(name));
            }
        }
        for &(n, v) in &self.extra {
            let kind = HeaderName::from_bytes(n.as_bytes());
            w.header(kind, n, |out| out.extend_from_slice(v.trim().as_bytes()));
        }
        let body: &[u8] = match self.body {
            Some((ct, b)) => {
                w.header(HeaderName::ContentType, "Content-Type", |out| {
                    out.extend_from_slice(ct.trim().as_bytes())
                });
                b
            }
            None => &[],
        };
        w.header(HeaderName::ContentLength, "Content-Length", |out| {
            push_decimal(out, body.len() as u64)
        });
        w.out.extend_from_slice(b"\r\n");
        let head_end = w.out.len();
        // The size limit holds in every build profile (a peer would refuse anything larger,
        // and over UDP it cannot be sent).
        let limit = crate::Limits::DEFAULT.max_message_size;
        if head_end + body.len() > limit {
            return Err(BuildError::TooLarge {
                size: head_end + body.len(),
                limit,
            });
        }
        w.out.extend_from_slice(body);
        let layout = Layout {
            start: StartSpans::Response {
                version: Span::new(0, 7),
                code: self.code,
                reason,
            },
            headers: w.headers,
            head_end: head_end as u32,
            body: Span::new(head_end, w.out.len()),
            content_length: Some(body.len() as u32),
        };
        let built = OwnedMessage::from_parts(w.out, layout);
        // What was recorded is what framing finds (checked in every debug build and test).
        #[cfg(debug_assertions)]
        {
            let framed =
                OwnedMessage::parse(built.as_bytes()).map_err(|source| BuildError::Invalid {
                    part: "message",
                    source,
                })?;
            let (a, b) = (built.view(), framed.view());
            debug_assert_eq!(a.start_line(), b.start_line());
            debug_assert!(a.headers().eq(b.headers()));
            debug_assert_eq!(a.body(), b.body());
            debug_assert_eq!(a.content_length(), b.content_length());
        }
        Ok(built)
    }

    /// The reason phrase, To tag, extra headers and Content-Type against their grammar,
    /// each on its own (no message is framed to check them).
    fn check_additions(&self) -> Result<(), BuildError> {
        if let Some(r) = self.reason {
            check_reason(r)?;
        }
        if let Some(t) = self.to_tag {
            check_text("To tag", t)?;
            if !scan::all_token(t) {
                return Err(BuildError::Missing("a To tag that is a token"));
            }
        }
        let content_type = self.body.map(|(ct, _)| ("Content-Type", ct));
        for (n, v) in self.extra.iter().copied().chain(content_type) {
            let invalid = |at| BuildError::Invalid {
                part: "header",
                source: ParseError::new(
                    crate::ErrorKind::InvalidHeader(HeaderName::from_bytes(n.as_bytes())),
                    at,
                ),
            };
            check_name(n)?;
            check_text(
                if n == "Content-Type" {
                    "Content-Type"
                } else {
                    "header value"
                },
                v,
            )?;
            let kind = HeaderName::from_bytes(n.as_bytes());
            crate::message::check_header_value(
                kind,
                v.trim(),
                crate::Limits::DEFAULT.max_uri_length,
            )
            .map_err(invalid)?;
        }
        Ok(())
    }
}

/// Appends `n` in decimal, without going through `fmt` (which costs more than writing the
/// rest of a header).
pub(crate) fn push_decimal(out: &mut impl Extend<u8>, n: impl Into<u64>) {
    let mut n: u64 = n.into();
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[i..].iter().copied());
}

/// Writes header lines and records where each name and value sits.
struct Writer {
    out: Vec<u8>,
    headers: SmallVec<[RawSpan; INLINE_HEADERS]>,
}

impl Writer {
    fn header(&mut self, kind: HeaderName, name: &str, value: impl FnOnce(&mut Vec<u8>)) {
        let name_start = self.out.len();
        self.out.extend_from_slice(name.as_bytes());
        let name_span = Span::new(name_start, self.out.len());
        self.out.extend_from_slice(b": ");
        let value_start = self.out.len();
        value(&mut self.out);
        let value_span = Span::new(value_start, self.out.len());
        self.out.extend_from_slice(b"\r\n");
        self.headers.push(RawSpan {
            name: name_span,
            value: value_span,
            kind,
        });
    }
}

/// Does a To or From value carry a `tag` parameter? Exact for a value that passed its typed
/// parse; on any other text it answers without panicking (callers parse what they build).
/// Read from the text: the header parameters follow the `>` closing the URI of a name-addr
/// (a quoted display name is skipped), or the first `;` of an addr-spec (section 20.10: an
/// addr-spec URI holds no `;`).
pub(crate) fn raw_has_tag(value: &str) -> bool {
    let b = value.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'"') {
        i = 1;
        while i < b.len() && b[i] != b'"' {
            i += if b[i] == b'\\' { 2 } else { 1 };
        }
    }
    let params_from = match b[i.min(b.len())..].iter().position(|&c| c == b'<') {
        Some(lt) => match b[i + lt..].iter().position(|&c| c == b'>') {
            Some(gt) => i + lt + gt + 1,
            None => return false,
        },
        None => match b.iter().position(|&c| c == b';') {
            Some(semi) => semi,
            None => return false,
        },
    };
    // `;name[=value]` pairs; values may be quoted strings holding `;`.
    let mut j = params_from;
    while j < b.len() {
        if b[j] != b';' {
            j += 1;
            continue;
        }
        j += 1;
        while j < b.len() && matches!(b[j], b' ' | b'\t' | b'\r' | b'\n') {
            j += 1;
        }
        let name_start = j;
        while j < b.len() && scan::is_token(b[j]) {
            j += 1;
        }
        if b[name_start..j].eq_ignore_ascii_case(b"tag") {
            return true;
        }
        while j < b.len() && b[j] != b';' {
            if b[j] == b'"' {
                j += 1;
                while j < b.len() && b[j] != b'"' {
                    j += if b[j] == b'\\' { 2 } else { 1 };
                }
            }
            j += 1;
        }
    }
    false
}

/// Appends a raw header value with its line folds replaced by single spaces.
pub(crate) fn push_unfolded(out: &mut Vec<u8>, value: &str) {
    let b = value.as_bytes();
    if !b.contains(&b'\n') {
        out.extend_from_slice(b);
        return;
    }
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\r' || b[i] == b'\n' {
            while i < b.len() && matches!(b[i], b'\r' | b'\n' | b' ' | b'\t') {
                i += 1;
            }
            out.push(b' ');
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
}

/// The default reason phrase of a status code (RFC 3261 section 21 and extensions).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        181 => "Call Is Being Forwarded",
        182 => "Queued",
        183 => "Session Progress",
        199 => "Early Dialog Terminated",
        200 => "OK",
        202 => "Accepted",
        204 => "No Notification",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Moved Temporarily",
        305 => "Use Proxy",
        380 => "Alternative Service",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        410 => "Gone",
        412 => "Conditional Request Failed",
        413 => "Request Entity Too Large",
        414 => "Request-URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        420 => "Bad Extension",
        421 => "Extension Required",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        485 => "Ambiguous",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        489 => "Bad Event",
        491 => "Request Pending",
        493 => "Undecipherable",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Server Time-out",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        600 => "Busy Everywhere",
        603 => "Decline",
        604 => "Does Not Exist Anywhere",
        606 => "Not Acceptable",
        c if c < 200 => "Provisional",
        c if c < 300 => "Success",
        c if c < 400 => "Redirection",
        c if c < 500 => "Client Error",
        c if c < 600 => "Server Error",
        _ => "Global Failure",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;

    fn invite(rng: &mut SeededRng) -> OwnedMessage {
        RequestBuilder::new(Method::Invite, "sip:bob@biloxi.example.com")
            .from("Alice <sip:alice@atlanta.example.com>")
            .to("Bob <sip:bob@biloxi.example.com>")
            .via("UDP", "pc33.atlanta.example.com")
            .via("TCP", "proxy.example.com:5060")
            .contact("<sip:alice@pc33.atlanta.example.com>")
            .header("Timestamp", "54")
            .body("application/sdp", b"v=0\r\n")
            .build(rng)
            .unwrap()
    }

    // RFC 3261 section 8.1.1: the mandatory headers, a From tag, a magic-cookie branch,
    // Content-Length computed.
    #[test]
    fn request_builder_fills_mandatory_headers() {
        let mut rng = SeededRng::new([3; 32]);
        let req = invite(&mut rng);
        let m = req.message().unwrap();
        assert_eq!(m.method(), Some(Method::Invite));
        assert!(m.from().unwrap().tag().is_some_and(|t| t.len() == 10));
        assert!(m.to().unwrap().tag().is_none());
        assert!(m
            .vias()
            .all(|v| v.has_magic_cookie() && v.rport() == Some(None)));
        assert_eq!(m.vias().count(), 2);
        assert_eq!(m.max_forwards(), Some(70));
        assert_eq!(m.cseq().unwrap().method, Method::Invite);
        assert!(m.call_id().is_some_and(|c| c.len() == 24));
        assert_eq!(m.content_length(), Some(5));
        assert_eq!(m.body(), b"v=0\r\n");
        // the same seed builds the same message; another seed another branch
        assert_eq!(
            invite(&mut SeededRng::new([3; 32])).as_bytes(),
            req.as_bytes()
        );
        let other = invite(&mut SeededRng::new([4; 32]));
        assert_ne!(
            other.message().unwrap().top_via().unwrap().branch(),
            m.top_via().unwrap().branch()
        );
    }

    // RFC 3261 section 8.2.6.2: Via (all, in order), From, To, Call-ID and CSeq copied; a To
    // tag added except on 100; section 8.2.6.1: a 100 echoes Timestamp.
    #[test]
    fn response_copies_the_request_headers_and_adds_a_to_tag() {
        let mut rng = SeededRng::new([5; 32]);
        let req = invite(&mut rng);
        let req = req.message().unwrap();
        let ringing = ResponseBuilder::new(&req, 180)
            .to_tag("abc")
            .build(&mut rng)
            .unwrap();
        let r = ringing.message().unwrap();
        assert_eq!(r.status(), Some(180));
        let branches = |m: &Message<'_>| {
            m.vias()
                .map(|v| v.branch().unwrap_or("").to_owned())
                .collect::<Vec<_>>()
        };
        assert_eq!(branches(&r), branches(&req));
        assert_eq!(r.from(), req.from());
        assert_eq!(r.to().unwrap().tag(), Some("abc"));
        assert!(r.to().unwrap().uri.equivalent(&req.to().unwrap().uri));
        assert_eq!(r.call_id(), req.call_id());
        assert_eq!(r.cseq(), req.cseq());
        assert!(r.values(HeaderName::Timestamp).next().is_none());

        let trying = response_to(&req, 100, &mut rng).unwrap();
        let t = trying.message().unwrap();
        assert!(t.to().unwrap().tag().is_none());
        assert!(t.values(HeaderName::Timestamp).next().is_some());
        assert!(t.request_uri().is_none());
        assert_eq!(
            response_to(&req, 99, &mut rng).unwrap_err(),
            BuildError::BadStatus(99)
        );
    }

    // RFC 3261 section 18.1.1 / Limits::max_message_size: a response larger than the limit
    // is an error in every build profile (it was checked only by a debug assertion).
    #[test]
    fn response_builder_refuses_a_message_over_the_size_limit() {
        let mut rng = SeededRng::new([8; 32]);
        let req = invite(&mut rng);
        let view = req.view();
        let body = vec![b'x'; 70_000];
        let err = ResponseBuilder::from_view(&view, 200)
            .body("application/octet-stream", &body)
            .build(&mut rng)
            .unwrap_err();
        assert!(
            matches!(err, BuildError::TooLarge { size, limit: 65_535 } if size > 70_000),
            "{err:?}"
        );
        let err = RequestBuilder::new(Method::Message, "sip:b@h")
            .from("<sip:a@h>")
            .to("<sip:b@h>")
            .body("text/plain", &body)
            .build(&mut rng)
            .unwrap_err();
        assert!(matches!(err, BuildError::TooLarge { .. }), "{err:?}");
        // just under the limit is fine
        let fits = 65_535 - 500;
        let ok = ResponseBuilder::from_view(&view, 200)
            .body("application/octet-stream", &body[..fits])
            .build(&mut rng)
            .unwrap();
        assert_eq!(ok.view().body().len(), fits);
    }

    // RFC 3261 section 9.1: a CANCEL derived from the INVITE keeps its Request-URI,
    // Call-ID, From (tag included), To and CSeq number, with the method CANCEL; Route and
    // extension headers are copied, folds unfolded, Via left to the new request.
    #[test]
    fn request_derived_from_a_parsed_request() {
        let invite = OwnedMessage::parse(
            b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
              Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
              Max-Forwards: 69\r\nTo: Bob <sip:bob@biloxi.example.com>\r\n\
              f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
              Call-ID: a84b4c76e66710\r\nCSeq: 314159 INVITE\r\n\
              Route: <sip:p1.example.com;lr>\r\nX-Trace: a,\r\n b\r\n\
              Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
              Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n",
        )
        .unwrap();
        let mut rng = SeededRng::new([9; 32]);
        let same = invite
            .to_request_builder()
            .unwrap()
            .build(&mut rng)
            .unwrap();
        let (a, b) = (invite.message().unwrap(), same.message().unwrap());
        assert_eq!(b.method(), Some(Method::Invite));
        assert_eq!(b.request_uri(), a.request_uri());
        assert_eq!(b.from(), a.from());
        assert_eq!(b.call_id(), a.call_id());
        assert_eq!(b.cseq(), a.cseq());
        assert_eq!(b.max_forwards(), Some(69));
        assert_eq!(b.body(), b"v=0\n");
        assert_eq!(b.vias().count(), 0);
        assert_eq!(b.view().extension_header("x-trace"), Some("a, b"));

        let cancel = invite
            .to_request_builder()
            .unwrap()
            .method(Method::Cancel)
            .no_body()
            .remove_header("X-Trace")
            .via("UDP", "pc33.atlanta.example.com")
            .build(&mut rng)
            .unwrap();
        let c = cancel.message().unwrap();
        assert_eq!(c.method(), Some(Method::Cancel));
        assert_eq!(c.cseq().unwrap().seq, 314159);
        assert_eq!(c.cseq().unwrap().method, Method::Cancel);
        assert_eq!(c.from().unwrap().tag(), Some("1928301774"));
        assert_eq!(c.to(), a.to());
        assert_eq!(c.routes().count(), 1);
        assert_eq!((c.body(), c.content_length()), (&b""[..], Some(0)));
        assert!(c.view().extension_header("X-Trace").is_none());

        let other_leg = invite
            .to_request_builder()
            .unwrap()
            .request_uri("sip:bob@192.0.2.4")
            .remove_header("Route")
            .build(&mut rng)
            .unwrap();
        let o = other_leg.message().unwrap();
        assert_eq!(o.request_uri().unwrap().to_string(), "sip:bob@192.0.2.4");
        assert_eq!(o.routes().count(), 0);
        let resp = response_to(&a, 200, &mut rng).unwrap();
        assert!(matches!(
            resp.to_request_builder(),
            Err(BuildError::NotApplicable(_))
        ));
    }

    // RFC 3261 section 9.1: the CANCEL repeats the Request-URI, Call-ID, To, From and CSeq
    // number, carries only the request's top Via and its Route values, and no body.
    #[test]
    fn cancel_for_repeats_what_section_9_1_lists() {
        let mut rng = SeededRng::new([10; 32]);
        let req = invite(&mut rng);
        let with_route = {
            let mut e = req.edit();
            e.append("Route", "<sip:p1.example.com;lr>").unwrap();
            // a request that arrived out of hops still gets a CANCEL that can travel
            e.set("Max-Forwards", "0").unwrap();
            e.finish().unwrap()
        };
        let inv = with_route.message().unwrap();
        let cancel = RequestBuilder::cancel_for(&inv)
            .unwrap()
            .build(&mut rng)
            .unwrap();
        let c = cancel.message().unwrap();
        assert_eq!(c.method(), Some(Method::Cancel));
        assert_eq!(c.request_uri(), inv.request_uri());
        assert_eq!(c.call_id(), inv.call_id());
        assert_eq!(c.to(), inv.to());
        assert_eq!(c.from(), inv.from());
        assert_eq!(c.cseq().unwrap().seq, inv.cseq().unwrap().seq);
        assert_eq!(c.cseq().unwrap().method, Method::Cancel);
        assert_eq!(c.vias().collect::<Vec<_>>(), [inv.top_via().unwrap()]);
        assert_eq!(c.routes().count(), 1);
        assert_eq!(c.max_forwards(), Some(70));
        assert!(c.contacts().next().is_none());
        assert!(c.values(HeaderName::Timestamp).next().is_none());
        assert_eq!((c.body(), c.content_length()), (&b""[..], Some(0)));
    }

    #[test]
    fn builder_rejects_what_does_not_parse() {
        let mut rng = SeededRng::new([6; 32]);
        let err = RequestBuilder::new(Method::Options, "sip:bob@example.com")
            .from("Bell, Alexander <sip:a@example.com>")
            .to("sip:bob@example.com")
            .via("UDP", "h.example.com")
            .build(&mut rng)
            .unwrap_err();
        assert!(matches!(err, BuildError::Invalid { .. }), "{err:?}");
        assert_eq!(
            RequestBuilder::new(Method::Options, "sip:b@h")
                .build(&mut rng)
                .unwrap_err(),
            BuildError::Missing("From")
        );
    }
}
