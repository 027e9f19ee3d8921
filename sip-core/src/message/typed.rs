//! The fully typed message: the view plus every known header parsed into its typed value
//! (RFC 3261 section 20), one entry per value (list headers are split, section 7.3.1).

use super::headers::{
    self as h, Auth, CSeq, Contact, InfoUri, MediaType, NameAddr, RAck, Seconds, SipDate,
};
use super::headers::{Timestamp, TokenParams, Via, Warning};
use super::params::Params;
use super::scan::{self, Cursor};
use super::uri::Uri;
use super::view::{self, MessageView, RawSpan, Span, StartLine, StartSpans, Transport};
use super::{HeaderName, Method};
use crate::{ErrorKind, Limits, ParseError};

/// The typed value of one header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HeaderValue<'a> {
    /// Via.
    Via(Via<'a>),
    /// From, To, Route, Record-Route, Reply-To, Refer-To, Referred-By.
    Addr(NameAddr<'a>),
    /// Contact.
    Contact(Contact<'a>),
    /// Call-ID, and each In-Reply-To value.
    CallId(&'a str),
    /// CSeq.
    CSeq(CSeq<'a>),
    /// RAck.
    RAck(RAck<'a>),
    /// Content-Length, Max-Forwards, Expires, Min-Expires, RSeq.
    Number(u32),
    /// One token: each value of Allow, Supported, Require, Proxy-Require, Unsupported,
    /// Content-Encoding, Content-Language, Allow-Events; and Priority.
    Token(&'a str),
    /// Content-Type, and each Accept range.
    MediaType(MediaType<'a>),
    /// Accept-Encoding, Accept-Language, Content-Disposition, Event, Subscription-State.
    TokenParams(TokenParams<'a>),
    /// Alert-Info, Call-Info, Error-Info.
    Info(InfoUri<'a>),
    /// Authorization, Proxy-Authorization, WWW-Authenticate, Proxy-Authenticate.
    Auth(Auth<'a>),
    /// Authentication-Info.
    AuthInfo(Params<'a>),
    /// Retry-After, Session-Expires, Min-SE.
    Seconds(Seconds<'a>),
    /// Warning.
    Warning(Warning<'a>),
    /// Timestamp.
    Timestamp(Timestamp<'a>),
    /// Date.
    Date(SipDate<'a>),
    /// Subject, Organization, Server, User-Agent, MIME-Version: text as written.
    Text(&'a str),
    /// A list header written with no value (Accept, Accept-Encoding, Accept-Language, Allow,
    /// Supported may be empty).
    Empty,
    /// An extension header, or a known one this crate keeps untyped: the raw value.
    Raw(&'a str),
}

/// One typed header value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header<'a> {
    /// The recognised name.
    pub name: HeaderName,
    /// Index of the header line it came from (several values may share one).
    pub line: u16,
    /// The value.
    pub value: HeaderValue<'a>,
}

/// What the typed parse stores for one value, or for a whole token-list line (Allow,
/// Supported, Require, ...): then `value` is [`HeaderValue::Raw`] holding the validated line,
/// whose tokens are read on access (each one a [`HeaderValue::Token`]).
#[derive(Debug, Clone, Copy)]
struct Entry<'a> {
    name: HeaderName,
    line: u16,
    tokens: bool,
    value: HeaderValue<'a>,
}

/// A message with every known header typed. Parse with [`Message::parse`].
///
/// One allocation holds the typed values; everything borrows from the input.
#[derive(Debug, Clone)]
pub struct Message<'a> {
    view: MessageView<'a>,
    request_uri: Option<Uri<'a>>,
    entries: Vec<Entry<'a>>,
    /// The number of values (a token-list line counts each token).
    count: usize,
}

/// How [`Message::write_to`] lays out headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Form {
    /// Full header names, one value per header line, values re-serialized from their typed
    /// form; extension headers verbatim with folds collapsed.
    #[default]
    Canonical,
    /// Header lines exactly as received (names, grouping and folding kept).
    Original,
}

/// The typed values of a message in order, one [`Header`] per value (see
/// [`Message::headers`]).
#[derive(Debug, Clone)]
pub struct Headers<'m, 'a> {
    inner: Walk<'m, 'a>,
    /// Values not yet returned.
    remaining: usize,
}

impl<'m, 'a> Headers<'m, 'a> {
    /// The same iterator (for code written when [`Message::headers`] returned a slice).
    pub fn iter(&self) -> Headers<'m, 'a> {
        self.clone()
    }
}

impl<'a> Iterator for Headers<'_, 'a> {
    type Item = Header<'a>;

    #[inline]
    fn next(&mut self) -> Option<Header<'a>> {
        let h = self.inner.next()?;
        self.remaining = self.remaining.saturating_sub(1);
        Some(h)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl ExactSizeIterator for Headers<'_, '_> {}

/// Walks the entries, expanding token-list lines, optionally only those of one name.
#[derive(Debug, Clone)]
struct Walk<'m, 'a> {
    entries: std::slice::Iter<'m, Entry<'a>>,
    only: Option<HeaderName>,
    /// The rest of the token-list line being read, with its name and line.
    tokens: &'a str,
    token_name: HeaderName,
    token_line: u16,
}

impl<'m, 'a> Walk<'m, 'a> {
    fn new(entries: &'m [Entry<'a>], only: Option<HeaderName>) -> Self {
        Walk {
            entries: entries.iter(),
            only,
            tokens: "",
            token_name: HeaderName::Other,
            token_line: 0,
        }
    }
}

/// The next token of a validated token list (tokens separated by commas and LWS).
#[inline]
fn next_token<'a>(rest: &mut &'a str) -> Option<&'a str> {
    let b = rest.as_bytes();
    let start = b.iter().position(|&c| scan::is_token(c)).unwrap_or(b.len());
    let len = b[start..]
        .iter()
        .position(|&c| !scan::is_token(c))
        .unwrap_or(b.len() - start);
    let t = rest.get(start..start + len)?;
    *rest = rest.get(start + len..).unwrap_or("");
    (!t.is_empty()).then_some(t)
}

impl<'a> Iterator for Walk<'_, 'a> {
    type Item = Header<'a>;

    #[inline]
    fn next(&mut self) -> Option<Header<'a>> {
        loop {
            if !self.tokens.is_empty() {
                if let Some(t) = next_token(&mut self.tokens) {
                    return Some(Header {
                        name: self.token_name,
                        line: self.token_line,
                        value: HeaderValue::Token(t),
                    });
                }
            }
            let e = self.entries.next()?;
            if self.only.is_some_and(|n| n != e.name) {
                continue;
            }
            match e.value {
                HeaderValue::Raw(text) if e.tokens => {
                    self.tokens = text;
                    self.token_name = e.name;
                    self.token_line = e.line;
                }
                value => {
                    return Some(Header {
                        name: e.name,
                        line: e.line,
                        value,
                    })
                }
            }
        }
    }
}

macro_rules! first_value {
    ($(#[$doc:meta])* $fn:ident, $name:ident, $variant:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $fn(&self) -> Option<$ty> {
            self.entries.iter().find_map(|e| match e.value {
                HeaderValue::$variant(v) if e.name == HeaderName::$name => Some(v),
                _ => None,
            })
        }
    };
}

macro_rules! all_values {
    ($(#[$doc:meta])* $fn:ident, $name:ident, $variant:ident, $ty:ty) => {
        $(#[$doc])*
        pub fn $fn(&self) -> impl Iterator<Item = $ty> + '_ {
            self.entries.iter().filter_map(|e| match e.value {
                HeaderValue::$variant(v) if e.name == HeaderName::$name => Some(v),
                _ => None,
            })
        }
    };
}

impl<'a> Message<'a> {
    /// Parses a datagram and types every known header, with default [`Limits`].
    pub fn parse(data: &'a [u8]) -> Result<Message<'a>, ParseError> {
        Self::parse_with(data, &Limits::DEFAULT)
    }

    /// Like [`Message::parse`] with explicit limits.
    pub fn parse_with(data: &'a [u8], limits: &Limits) -> Result<Message<'a>, ParseError> {
        // built in place: the message holds about a kilobyte of inline header spans, which
        // each move would copy
        let mut r = Ok(Message {
            view: MessageView {
                head: "",
                bytes: data,
                layout: std::borrow::Cow::Owned(super::view::Layout::empty()),
            },
            request_uri: None,
            entries: Vec::new(),
            count: 0,
        });
        if let Ok(m) = &mut r {
            if parse_one_pass(m, data, limits).is_some() {
                return r;
            }
        }
        let view = MessageView::parse_datagram(data, limits)?;
        Self::from_view(view, limits)
    }

    /// Types the headers of an already framed view (for instance one framed from a stream).
    pub fn from_view(view: MessageView<'a>, limits: &Limits) -> Result<Message<'a>, ParseError> {
        let request_uri = request_uri(&view, limits)?;
        let head = view.head;
        // Token lists take one entry a line; room for a few more values covers list lines
        // such as "Route: <a>, <b>" without a second allocation.
        let capacity = view.layout.headers.len() * 2 + 4;
        let mut entries = Vec::with_capacity(capacity);
        let mut count = 0usize;
        let mut vias = 0usize;
        for (line, raw) in view.layout.headers.iter().enumerate() {
            let value = raw.value.of(head);
            let line = u16::try_from(line)
                .map_err(|_| ParseError::new(ErrorKind::TooManyHeaders, raw.name.start as usize))?;
            let n = parse_line(raw.kind, line, value, limits.max_uri_length, &mut entries)
                .map_err(|at| {
                    ParseError::new(
                        ErrorKind::InvalidHeader(raw.kind),
                        raw.value.start as usize + at,
                    )
                })?;
            count += n;
            if count > limits.max_headers {
                // values count against the header limit too, so the canonical form (one value
                // per line) of an accepted message is itself acceptable
                return Err(ParseError::new(
                    ErrorKind::TooManyHeaders,
                    raw.value.start as usize,
                ));
            }
            if raw.kind == HeaderName::Via {
                vias += n;
                if vias > limits.max_vias {
                    return Err(ParseError::new(
                        ErrorKind::TooManyVias,
                        raw.value.start as usize,
                    ));
                }
            }
        }
        Ok(Message {
            view,
            request_uri,
            entries,
            count,
        })
    }

    /// The borrowed view this message was typed from.
    pub fn view(&self) -> &MessageView<'a> {
        &self.view
    }

    /// The start line.
    pub fn start_line(&self) -> StartLine<'a> {
        self.view.start_line()
    }

    /// Is this a request?
    pub fn is_request(&self) -> bool {
        self.view.is_request()
    }

    /// The method of a request.
    pub fn method(&self) -> Option<Method<'a>> {
        self.view.method()
    }

    /// The Request-URI of a request.
    pub fn request_uri(&self) -> Option<&Uri<'a>> {
        self.request_uri.as_ref()
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        self.view.status()
    }

    /// Every typed header value, in order: one [`Header`] per value (a list line such as
    /// `Allow: INVITE, ACK` gives one per element).
    pub fn headers(&self) -> Headers<'_, 'a> {
        Headers {
            inner: Walk::new(&self.entries, None),
            remaining: self.count,
        }
    }

    /// The name of a header as it was written (compact or long, any case): the only way to
    /// tell extension headers ([`HeaderName::Other`]) apart.
    pub fn name_as_written(&self, h: &Header<'a>) -> &'a str {
        let head = self.view.head;
        self.view
            .layout
            .headers
            .get(usize::from(h.line))
            .map_or("", |r| r.name.of(head))
    }

    /// The typed values of one header name, in order.
    pub fn values(&self, name: HeaderName) -> impl Iterator<Item = HeaderValue<'a>> + '_ {
        Walk::new(&self.entries, Some(name)).map(|h| h.value)
    }

    /// The tokens of a token-list header (Require, Supported, Allow, ...).
    pub fn tokens(&self, name: HeaderName) -> impl Iterator<Item = &'a str> + '_ {
        self.values(name).filter_map(|v| match v {
            HeaderValue::Token(t) => Some(t),
            _ => None,
        })
    }

    /// The body.
    pub fn body(&self) -> &'a [u8] {
        self.view.body()
    }

    all_values!(
        /// The Via values, top first.
        vias, Via, Via, Via<'a>
    );
    first_value!(
        /// The topmost Via.
        top_via, Via, Via, Via<'a>
    );
    first_value!(
        /// From.
        from, From, Addr, NameAddr<'a>
    );
    first_value!(
        /// To.
        to, To, Addr, NameAddr<'a>
    );
    first_value!(
        /// Call-ID.
        call_id, CallId, CallId, &'a str
    );
    first_value!(
        /// CSeq.
        cseq, CSeq, CSeq, CSeq<'a>
    );
    first_value!(
        /// Max-Forwards.
        max_forwards, MaxForwards, Number, u32
    );
    first_value!(
        /// Expires.
        expires, Expires, Number, u32
    );
    first_value!(
        /// Content-Type.
        content_type, ContentType, MediaType, MediaType<'a>
    );
    all_values!(
        /// Contact values.
        contacts, Contact, Contact, Contact<'a>
    );
    all_values!(
        /// Route values, in order.
        routes, Route, Addr, NameAddr<'a>
    );
    all_values!(
        /// Record-Route values, in order.
        record_routes, RecordRoute, Addr, NameAddr<'a>
    );
    all_values!(
        /// Accept ranges.
        accepts, Accept, MediaType, MediaType<'a>
    );

    /// Content-Length, if present.
    pub fn content_length(&self) -> Option<u32> {
        self.view.content_length()
    }

    /// Serializes the message into `out` (appending). See [`Form`].
    pub fn write_to(&self, out: &mut Vec<u8>, form: Form) {
        super::write::write_message(self, out, form);
    }

    /// Serializes the message in canonical form into a new buffer.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.view.as_bytes().len() + 64);
        self.write_to(&mut v, Form::Canonical);
        v
    }
}

/// Appends the values of one header line to the message's list (see [`super::fast::Sink`]).
struct Slots<'v, 'a> {
    entries: &'v mut Vec<Entry<'a>>,
    name: HeaderName,
    line: u16,
}

impl<'a> super::fast::Sink<'a> for Slots<'_, 'a> {
    #[inline]
    fn slot(&mut self) -> &mut HeaderValue<'a> {
        let at = self.entries.len();
        self.entries.push(Entry {
            name: self.name,
            line: self.line,
            tokens: false,
            value: HeaderValue::Empty,
        });
        // (in bounds: just pushed)
        &mut self.entries[at].value
    }
}

/// Checks the version and parses the Request-URI (the first checks [`Message::from_view`]
/// makes).
fn request_uri<'a>(view: &MessageView<'a>, limits: &Limits) -> Result<Option<Uri<'a>>, ParseError> {
    if !view.is_sip_2_0() {
        return Err(ParseError::new(ErrorKind::UnsupportedVersion, 0));
    }
    match view.layout.start {
        StartSpans::Request { uri, .. } => {
            let s = uri.of(view.head);
            if s.len() > limits.max_uri_length {
                return Err(ParseError::new(ErrorKind::UriTooLong, uri.start as usize));
            }
            Ok(Some(Uri::parse(s).ok_or(ParseError::new(
                ErrorKind::InvalidRequestUri,
                uri.start as usize,
            ))?))
        }
        StartSpans::Response { .. } => Ok(None),
    }
}

/// Is this a token-list header, kept as one entry a line?
#[inline]
fn is_token_list(name: HeaderName) -> bool {
    use HeaderName as N;
    matches!(
        name,
        N::Allow
            | N::Supported
            | N::Require
            | N::ProxyRequire
            | N::Unsupported
            | N::ContentEncoding
            | N::ContentLanguage
            | N::AllowEvents
    )
}

/// The longest prefix of `data[..want]` that is UTF-8.
fn utf8_prefix(data: &[u8], want: usize) -> &str {
    let b = data.get(..want).unwrap_or(data);
    match std::str::from_utf8(b) {
        Ok(s) => s,
        Err(e) => std::str::from_utf8(&b[..e.valid_up_to()]).unwrap_or(""),
    }
}

/// The header section must be UTF-8: the one pass checks a window that usually holds all
/// of it (and often the body too), and widens it when a line gets near its end.
const WINDOW: usize = 2048;

/// [`Message::parse_with`] in one pass over the bytes: [`view::frame`] frames the message
/// and hands each header line to a [`OnePass`], which frames and types it together where
/// its value has a fast path, and types it like [`Message::from_view`] otherwise. The result
/// is the same as theirs; on any error (or anything this pass does not handle, such as a
/// header section that is not UTF-8) it returns `None` and the caller runs the two passes,
/// which report the error.
fn parse_one_pass<'a>(m: &mut Message<'a>, data: &'a [u8], limits: &Limits) -> Option<()> {
    if data.len() > limits.max_message_size {
        return None;
    }
    let text = utf8_prefix(data, data.len().min(WINDOW));
    let std::borrow::Cow::Owned(layout) = &mut m.view.layout else {
        return None;
    };
    m.entries = Vec::with_capacity(text.len() / 32 + 8);
    let mut pass = OnePass {
        text,
        entries: &mut m.entries,
        limits,
        count: 0,
        vias: 0,
    };
    let head = view::frame(data, limits, Transport::Datagram, layout, &mut pass).ok()?;
    let count = pass.count;
    let start = layout.start;
    m.view.head = head;
    // the usual sip: Request-URI, read into its place; anything else as from_view does
    if let (true, StartSpans::Request { uri, .. }) = (m.view.is_sip_2_0(), start) {
        let s = uri.of(head);
        if s.len() <= limits.max_uri_length {
            if let Some((u, _)) = super::fast::sip_uri(s, 0, super::fast::UriEnd::Whole) {
                m.request_uri = Some(Uri::Sip(u));
                m.count = count;
                return Some(());
            }
        }
    }
    m.request_uri = request_uri(&m.view, limits).ok()?;
    m.count = count;
    Some(())
}

/// The typing half of [`parse_one_pass`]: each header line's values appended to the
/// message's entries as [`view::frame`] reaches the line, the values counted against the
/// limits. Any error only stops the pass (see [`parse_one_pass`]), so it is not described.
struct OnePass<'m, 'a> {
    /// The longest UTF-8 prefix of a window of the input (see [`WINDOW`]).
    text: &'a str,
    entries: &'m mut Vec<Entry<'a>>,
    limits: &'m Limits,
    /// Values so far (a token-list line counts each token), and Via values.
    count: usize,
    vias: usize,
}

/// Stops the one pass (the two passes then report the error).
#[cold]
fn stop() -> ParseError {
    ParseError::new(ErrorKind::Incomplete, 0)
}

impl<'a> OnePass<'_, 'a> {
    /// Makes the text window reach `pos + WINDOW / 2` where the input goes that far.
    #[inline(always)]
    fn widen(&mut self, data: &'a [u8], pos: usize) {
        if self.text.len() < data.len() && pos + WINDOW / 2 > self.text.len() {
            self.text = utf8_prefix(
                data,
                (self.text.len() * 2).max(pos + WINDOW).min(data.len()),
            );
        }
    }

    /// Counts the `n` values of a line against the limits.
    #[inline(always)]
    fn count(&mut self, kind: HeaderName, n: usize) -> Result<(), ParseError> {
        self.count += n;
        if self.count > self.limits.max_headers {
            return Err(stop());
        }
        if kind == HeaderName::Via {
            self.vias += n;
            if self.vias > self.limits.max_vias {
                return Err(stop());
            }
        }
        Ok(())
    }
}

impl<'a> view::LineSink<'a> for OnePass<'_, 'a> {
    #[inline(always)]
    fn line(
        &mut self,
        data: &'a [u8],
        pos: usize,
        line: usize,
    ) -> Result<Option<(RawSpan, usize)>, ParseError> {
        self.widen(data, pos);
        let line = u16::try_from(line).map_err(|_| stop())?;
        let text = self.text;
        let b = text.as_bytes();
        let entries = &mut *self.entries;
        let before = entries.len();
        // name ":" value CRLF, the value read by a fast path
        let name_end = scan::run(b, pos, scan::TOKEN);
        if name_end == pos || b.get(name_end) != Some(&b':') {
            return Ok(None);
        }
        let kind = HeaderName::from_token_at(data, pos, name_end);
        // (the usual single space first, without the loop)
        let mut vs = name_end + 1 + usize::from(b.get(name_end + 1) == Some(&b' '));
        while matches!(b.get(vs), Some(b' ' | b'\t')) {
            vs += 1;
        }
        let typed = if is_token_list(kind) {
            super::fast::token_list(b, vs).ok().map(|(n, e)| {
                let value = text.get(vs..e).unwrap_or("");
                entries.push(Entry {
                    name: kind,
                    line,
                    tokens: true,
                    value: HeaderValue::Raw(value),
                });
                (n, e)
            })
        } else {
            let mut out = Slots {
                entries: &mut *entries,
                name: kind,
                line,
            };
            match super::fast::line(kind, text, vs, self.limits.max_uri_length, &mut out) {
                (0, _) => None,
                r => Some(r),
            }
        };
        if let Some((n, ve)) = typed {
            // only whitespace, then a CRLF that no fold continues
            let mut e = ve;
            if data.get(e) != Some(&b'\r') {
                while matches!(data.get(e), Some(b' ' | b'\t')) {
                    e += 1;
                }
            }
            let end = match data.get(e..e + 3) {
                Some(&[b'\r', b'\n', c]) => c != b' ' && c != b'\t',
                // (a message ends with an empty line, so a header line's CRLF never ends
                // the input; anything short is left to the view)
                _ => false,
            };
            if end && e - pos <= self.limits.max_header_line {
                let raw = RawSpan {
                    name: Span::new(pos, name_end),
                    value: Span::new(vs, ve),
                    kind,
                };
                self.count(kind, n)?;
                return Ok(Some((raw, e + 2)));
            }
        }
        self.entries.truncate(before);
        Ok(None)
    }

    #[inline(always)]
    fn framed(&mut self, raw: &RawSpan, line: usize) -> Result<(), ParseError> {
        let line = u16::try_from(line).map_err(|_| stop())?;
        let value = self.text.get(raw.value.range()).ok_or_else(stop)?;
        let n = parse_line(
            raw.kind,
            line,
            value,
            self.limits.max_uri_length,
            self.entries,
        )
        .map_err(|_| stop())?;
        self.count(raw.kind, n)
    }

    #[inline(always)]
    fn head(&mut self, data: &'a [u8], head_end: usize) -> Result<&'a str, ParseError> {
        self.widen(data, head_end);
        self.text.get(..head_end).ok_or_else(stop)
    }
}

/// Types one header line's value, appending its entries; returns how many values it holds.
/// On a grammar error, returns the offset in `value` where it was found.
fn parse_line<'a>(
    name: HeaderName,
    line: u16,
    value: &'a str,
    max_uri: usize,
    entries: &mut Vec<Entry<'a>>,
) -> Result<usize, usize> {
    if is_token_list(name) && !value.is_empty() {
        match super::fast::token_list(value.as_bytes(), 0) {
            Ok((n, end)) if end == value.len() => {
                entries.push(Entry {
                    name,
                    line,
                    tokens: true,
                    value: HeaderValue::Raw(value),
                });
                return Ok(n);
            }
            // (a line end inside a value only starts a fold, which the list skips)
            Ok(_) => {}
            Err(at) => return Err(at),
        }
    }
    let before = entries.len();
    let mut out = Slots {
        entries: &mut *entries,
        name,
        line,
    };
    let (n, end) = super::fast::line(name, value, 0, max_uri, &mut out);
    if n > 0 && end == value.len() {
        return Ok(n);
    }
    entries.truncate(before);
    let mut n = 0;
    parse_value(name, value, max_uri, |v| {
        n += 1;
        entries.push(Entry {
            name,
            line,
            tokens: false,
            value: v,
        })
    })?;
    Ok(n)
}

/// Parses one header line's value, calling `push` for each typed value. On a grammar
/// error, returns the offset in `value` where it was found.
pub(crate) fn parse_value<'a>(
    name: HeaderName,
    value: &'a str,
    max_uri: usize,
    mut push: impl FnMut(HeaderValue<'a>),
) -> Result<(), usize> {
    use HeaderName as N;
    use HeaderValue as V;
    let mut c = Cursor::new(value);
    c.skip_ws();
    if c.at_end() {
        return match name {
            N::Accept | N::AcceptEncoding | N::AcceptLanguage | N::Allow | N::Supported => {
                push(V::Empty);
                Ok(())
            }
            N::Subject | N::Organization | N::Other => {
                push(if name == N::Other {
                    V::Raw("")
                } else {
                    V::Text("")
                });
                Ok(())
            }
            _ => Err(0),
        };
    }
    let list = name.is_list();
    loop {
        let v = match name {
            N::Via => h::via(&mut c).map(V::Via),
            N::From | N::To | N::ReplyTo | N::ReferTo | N::ReferredBy => {
                h::name_addr(&mut c, false, max_uri).map(V::Addr)
            }
            N::Route | N::RecordRoute => h::name_addr(&mut c, true, max_uri).map(V::Addr),
            N::Contact => h::contact(&mut c, max_uri).map(V::Contact),
            N::CallId | N::InReplyTo => h::call_id(&mut c).map(V::CallId),
            N::CSeq => h::cseq(&mut c).map(V::CSeq),
            N::RAck => h::rack(&mut c).map(V::RAck),
            N::MaxForwards => h::number(&mut c, 255).map(|n| V::Number(n as u32)),
            N::ContentLength | N::Expires | N::MinExpires | N::RSeq => {
                h::number(&mut c, u64::from(u32::MAX)).map(|n| V::Number(n as u32))
            }
            N::Allow
            | N::Supported
            | N::Require
            | N::ProxyRequire
            | N::Unsupported
            | N::ContentEncoding
            | N::ContentLanguage
            | N::AllowEvents
            | N::Priority => h::token(&mut c).map(V::Token),
            N::ContentType => h::media_type(&mut c, false).map(V::MediaType),
            N::Accept => h::media_type(&mut c, true).map(V::MediaType),
            N::AcceptEncoding
            | N::AcceptLanguage
            | N::ContentDisposition
            | N::Event
            | N::SubscriptionState => h::token_params(&mut c).map(V::TokenParams),
            N::AlertInfo | N::CallInfo | N::ErrorInfo => h::info_uri(&mut c, max_uri).map(V::Info),
            N::Authorization
            | N::ProxyAuthorization
            | N::WwwAuthenticate
            | N::ProxyAuthenticate => h::auth(&mut c).map(V::Auth),
            N::AuthenticationInfo => h::auth_params(&mut c).map(V::AuthInfo),
            N::RetryAfter => h::seconds(&mut c, true).map(V::Seconds),
            N::SessionExpires | N::MinSe => h::seconds(&mut c, false).map(V::Seconds),
            N::Warning => h::warning(&mut c).map(V::Warning),
            N::Timestamp => h::timestamp(&mut c).map(V::Timestamp),
            N::Date => h::date(&mut c).map(V::Date),
            N::Subject | N::Organization => h::text(&mut c).map(V::Text),
            N::Server | N::UserAgent => h::products(&mut c).map(V::Text),
            N::MimeVersion => h::mime_version(&mut c).map(V::Text),
            _ => {
                push(V::Raw(value));
                return Ok(());
            }
        };
        match v {
            Some(v) => push(v),
            None => return Err(c.pos()),
        }
        c.skip_ws();
        if c.at_end() {
            return Ok(());
        }
        if !(list && c.sep(b',')) {
            return Err(c.pos());
        }
    }
}
