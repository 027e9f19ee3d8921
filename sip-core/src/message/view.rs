//! The borrowed view: one pass over the bytes finds the start line, each header's name and
//! value, and the body (RFC 3261 sections 7 and 18.3). Nothing is allocated for messages with
//! up to [`INLINE_HEADERS`] header lines, and no header value is interpreted except
//! Content-Length, which framing needs.

use std::borrow::Cow;

use memchr::memchr2;
use smallvec::SmallVec;

use super::{scan, HeaderName, Method};
use crate::{ErrorKind, Limits, ParseError};

/// Header lines kept inline (without a heap allocation) by a view.
pub const INLINE_HEADERS: usize = 40;

/// A byte range `start..end` into the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Span {
    pub(crate) start: u32,
    pub(crate) end: u32,
}

impl Span {
    /// A span of a message: the parse refuses inputs of 4 GiB or more, so offsets fit.
    #[inline]
    pub(crate) fn new(start: usize, end: usize) -> Span {
        Span {
            start: start as u32,
            end: end as u32,
        }
    }

    #[inline]
    pub(crate) fn range(self) -> std::ops::Range<usize> {
        self.start as usize..self.end as usize
    }

    #[inline]
    pub(crate) fn of(self, s: &str) -> &str {
        s.get(self.range()).unwrap_or("")
    }
}

/// Where one header line sits in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawSpan {
    pub(crate) name: Span,
    pub(crate) value: Span,
    pub(crate) kind: HeaderName,
}

/// The start line's parts, as spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StartSpans {
    Request {
        method: Span,
        uri: Span,
        version: Span,
    },
    Response {
        version: Span,
        code: u16,
        reason: Span,
    },
}

/// Everything the single pass learns, as offsets: shared by [`MessageView`] and the owned
/// message, so an owned message yields a view without parsing again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    pub(crate) start: StartSpans,
    pub(crate) headers: SmallVec<[RawSpan; INLINE_HEADERS]>,
    /// End of the header section (just after the empty line).
    pub(crate) head_end: u32,
    /// The body.
    pub(crate) body: Span,
    /// The Content-Length value, if the message had one.
    pub(crate) content_length: Option<u32>,
}

impl Layout {
    /// A layout with no header yet, to fill in place.
    #[inline(always)]
    pub(crate) fn empty() -> Layout {
        Layout {
            start: StartSpans::Response {
                version: Span::default(),
                code: 0,
                reason: Span::default(),
            },
            headers: SmallVec::new(),
            head_end: 0,
            body: Span::default(),
            content_length: None,
        }
    }
}

/// A parsed start line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartLine<'a> {
    /// `Method SP Request-URI SP SIP-Version`.
    Request {
        /// The method token.
        method: Method<'a>,
        /// The Request-URI, unparsed.
        uri: &'a str,
        /// The version, such as `SIP/2.0`.
        version: &'a str,
    },
    /// `SIP-Version SP Status-Code SP Reason-Phrase`.
    Response {
        /// The version, such as `SIP/2.0`.
        version: &'a str,
        /// The three-digit status code.
        code: u16,
        /// The reason phrase (may be empty).
        reason: &'a str,
    },
}

/// One header line as it was received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawHeader<'a> {
    /// The recognised name ([`HeaderName::Other`] for extension headers).
    pub kind: HeaderName,
    /// The name as written (compact or long, any case).
    pub name: &'a str,
    /// The value without leading and trailing whitespace; line folds inside are kept.
    pub value: &'a str,
}

/// The outcome of framing a stream (RFC 3261 section 18.3, RFC 5626 section 3.5.1).
// The view is returned by value on purpose: boxing it would allocate per message.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum StreamFrame<'a> {
    /// A whole message, and how many bytes of the input it used.
    Message(MessageView<'a>, usize),
    /// A keep-alive "ping" (CRLFCRLF) of 4 bytes: answer with a "pong" (CRLF).
    Ping,
    /// A lone CRLF of 2 bytes: a keep-alive "pong", or a CRLF before a start line that
    /// RFC 3261 section 7.5 says to ignore.
    Pong,
    /// The bytes so far hold no whole message: read more and call again.
    Partial,
}

/// A zero-copy view of one SIP message: start line, header spans and body, borrowed from the
/// input. Typed header values are parsed on demand from here, or all at once by
/// [`Message::parse`](crate::Message::parse).
#[derive(Debug, Clone)]
pub struct MessageView<'a> {
    pub(crate) head: &'a str,
    pub(crate) bytes: &'a [u8],
    /// Owned when parsed from bytes, borrowed when viewing an [`OwnedMessage`](crate::OwnedMessage)
    /// (so getting its view copies no spans).
    pub(crate) layout: Cow<'a, Layout>,
}

impl<'a> MessageView<'a> {
    /// Parses one message received as a datagram, with default [`Limits`].
    ///
    /// Framing follows RFC 3261 section 18.3: without Content-Length the body is the rest of
    /// the datagram; a Content-Length larger than what arrived is an error; octets after the
    /// body are ignored.
    pub fn parse(data: &'a [u8]) -> Result<MessageView<'a>, ParseError> {
        Self::parse_datagram(data, &Limits::DEFAULT)
    }

    /// Like [`MessageView::parse`] with explicit limits.
    pub fn parse_datagram(data: &'a [u8], limits: &Limits) -> Result<MessageView<'a>, ParseError> {
        if data.len() > limits.max_message_size {
            return Err(ParseError::new(
                ErrorKind::TooLarge,
                limits.max_message_size,
            ));
        }
        parse(data, limits, Transport::Datagram)
    }

    /// Frames the next message at the start of a stream buffer (TCP, TLS): Content-Length is
    /// mandatory, and a partial message asks for more bytes.
    pub fn parse_stream(data: &'a [u8], limits: &Limits) -> Result<StreamFrame<'a>, ParseError> {
        Self::parse_stream_sized(data, limits).map(|(frame, _)| frame)
    }

    /// [`MessageView::parse_stream`], and for a [`StreamFrame::Partial`] whose header section
    /// is complete, the length the whole message will have (header section plus
    /// Content-Length): the caller can wait for that many bytes instead of framing again.
    pub(crate) fn parse_stream_sized(
        data: &'a [u8],
        limits: &Limits,
    ) -> Result<(StreamFrame<'a>, Option<usize>), ParseError> {
        if data.starts_with(b"\r\n\r\n") {
            return Ok((StreamFrame::Ping, None));
        }
        if data.starts_with(b"\r\n") {
            return Ok((StreamFrame::Pong, None));
        }
        if data.len() < 2 && data.first().is_none_or(|&b| b == b'\r') {
            return Ok((StreamFrame::Partial, None));
        }
        let window = &data[..data.len().min(limits.max_message_size)];
        match parse(window, limits, Transport::Stream) {
            Ok(view) => {
                let used = view.layout.body.end as usize;
                Ok((StreamFrame::Message(view, used), None))
            }
            Err(e) if e.kind == ErrorKind::Incomplete => {
                if data.len() >= limits.max_message_size {
                    Err(ParseError::new(
                        ErrorKind::TooLarge,
                        limits.max_message_size,
                    ))
                } else {
                    // `parse` reports a missing body at the offset where the body ends,
                    // beyond the input; a missing part of the header section at the end of
                    // the input.
                    let total = (e.offset > window.len()).then_some(e.offset);
                    Ok((StreamFrame::Partial, total))
                }
            }
            Err(e) => Err(e),
        }
    }

    /// The start line.
    pub fn start_line(&self) -> StartLine<'a> {
        match self.layout.start {
            StartSpans::Request {
                method,
                uri,
                version,
            } => StartLine::Request {
                method: Method::from_token(method.of(self.head)),
                uri: uri.of(self.head),
                version: version.of(self.head),
            },
            StartSpans::Response {
                version,
                code,
                reason,
            } => StartLine::Response {
                version: version.of(self.head),
                code,
                reason: reason.of(self.head),
            },
        }
    }

    /// Is this a request?
    pub fn is_request(&self) -> bool {
        matches!(self.layout.start, StartSpans::Request { .. })
    }

    /// The method of a request.
    pub fn method(&self) -> Option<Method<'a>> {
        match self.layout.start {
            StartSpans::Request { method, .. } => Some(Method::from_token(method.of(self.head))),
            StartSpans::Response { .. } => None,
        }
    }

    /// The status code of a response.
    pub fn status(&self) -> Option<u16> {
        match self.layout.start {
            StartSpans::Response { code, .. } => Some(code),
            StartSpans::Request { .. } => None,
        }
    }

    /// Is the version SIP/2.0 (the only one this crate speaks; others get 505)?
    pub fn is_sip_2_0(&self) -> bool {
        let v = match self.layout.start {
            StartSpans::Request { version, .. } | StartSpans::Response { version, .. } => {
                version.of(self.head)
            }
        };
        is_sip_2_0(v.as_bytes())
    }

    /// Every header line, in order.
    pub fn headers(&self) -> impl ExactSizeIterator<Item = RawHeader<'a>> + '_ {
        let head = self.head;
        self.layout.headers.iter().map(move |h| RawHeader {
            kind: h.kind,
            name: h.name.of(head),
            value: h.value.of(head),
        })
    }

    /// The number of header lines.
    pub fn header_count(&self) -> usize {
        self.layout.headers.len()
    }

    /// The raw value of the first header line with this name.
    pub fn header(&self, name: HeaderName) -> Option<&'a str> {
        let head = self.head;
        self.layout
            .headers
            .iter()
            .find(|h| h.kind == name)
            .map(|h| h.value.of(head))
    }

    /// The raw values of every header line with this name, in order.
    pub fn header_all(&self, name: HeaderName) -> impl Iterator<Item = &'a str> + '_ {
        let head = self.head;
        self.layout
            .headers
            .iter()
            .filter(move |h| h.kind == name)
            .map(move |h| h.value.of(head))
    }

    /// The raw value of the first extension header with this name (case-insensitive).
    pub fn extension_header(&self, name: &str) -> Option<&'a str> {
        self.headers()
            .find(|h| h.kind == HeaderName::Other && h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The Content-Length value, if present.
    pub fn content_length(&self) -> Option<u32> {
        self.layout.content_length
    }

    /// The body (framed by Content-Length).
    pub fn body(&self) -> &'a [u8] {
        self.bytes.get(self.layout.body.range()).unwrap_or(&[])
    }

    /// The message bytes: start line to the end of the body (trailing datagram octets excluded).
    pub fn as_bytes(&self) -> &'a [u8] {
        self.bytes
            .get(..self.layout.body.end as usize)
            .unwrap_or(self.bytes)
    }

    /// The start line and headers as text, up to and including the empty line.
    pub fn head(&self) -> &'a str {
        self.head
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transport {
    Datagram,
    Stream,
}

fn err(kind: ErrorKind, offset: usize) -> ParseError {
    ParseError::new(kind, offset)
}

/// Finds the end of the line starting at `from`: the offset of its CR (CRLF required; a bare
/// CR or LF is an error). `None` when no line end is in `data` yet.
#[inline]
pub(crate) fn line_end(data: &[u8], from: usize) -> Result<Option<usize>, ParseError> {
    let rest = data.get(from..).unwrap_or(&[]);
    match memchr2(b'\r', b'\n', rest) {
        None => Ok(None),
        Some(i) => {
            let at = from + i;
            if data[at] == b'\n' {
                return Err(err(ErrorKind::InvalidLineEnding, at));
            }
            match data.get(at + 1) {
                Some(b'\n') => Ok(Some(at)),
                Some(_) => Err(err(ErrorKind::InvalidLineEnding, at)),
                None => Ok(None),
            }
        }
    }
}

fn incomplete(t: Transport, at: usize) -> ParseError {
    match t {
        Transport::Stream => err(ErrorKind::Incomplete, at),
        Transport::Datagram => err(ErrorKind::UnterminatedHeaders, at),
    }
}

fn parse<'a>(data: &'a [u8], limits: &Limits, t: Transport) -> Result<MessageView<'a>, ParseError> {
    let mut layout = Layout::empty();
    let head = frame(data, limits, t, &mut layout, &mut FrameOnly)?;
    Ok(MessageView {
        head,
        bytes: data,
        layout: Cow::Owned(layout),
    })
}

/// What a pass over a message does with its header lines besides framing them ([`frame`]):
/// the view only frames them ([`FrameOnly`]); the one-pass typed parse (`typed.rs`) types
/// each line as it goes, most of them by a fast path that frames the line too.
pub(crate) trait LineSink<'a> {
    /// Handles the header line that starts at `pos` (the `line`-th) by a path of its own
    /// that also frames it: its spans and the offset of the next line; `Ok(None)` to have
    /// it framed by [`parse_header_line`] and handed to [`LineSink::framed`].
    fn line(
        &mut self,
        data: &'a [u8],
        pos: usize,
        line: usize,
    ) -> Result<Option<(RawSpan, usize)>, ParseError>;

    /// A header line framed by [`parse_header_line`].
    fn framed(&mut self, raw: &RawSpan, line: usize) -> Result<(), ParseError>;

    /// The header section, `data[..head_end]`, as text: it must be UTF-8.
    fn head(&mut self, data: &'a [u8], head_end: usize) -> Result<&'a str, ParseError>;
}

/// The view's [`LineSink`]: framing only.
struct FrameOnly;

impl<'a> LineSink<'a> for FrameOnly {
    #[inline(always)]
    fn line(
        &mut self,
        _: &'a [u8],
        _: usize,
        _: usize,
    ) -> Result<Option<(RawSpan, usize)>, ParseError> {
        Ok(None)
    }

    #[inline(always)]
    fn framed(&mut self, _: &RawSpan, _: usize) -> Result<(), ParseError> {
        Ok(())
    }

    #[inline(always)]
    fn head(&mut self, data: &'a [u8], head_end: usize) -> Result<&'a str, ParseError> {
        std::str::from_utf8(&data[..head_end])
            .map_err(|e| err(ErrorKind::InvalidUtf8, e.valid_up_to()))
    }
}

/// Frames one message (RFC 3261 sections 7, 7.5 and 18.3) into `layout`: the start line,
/// each header line (handed to `sink`), the end of the header section, Content-Length and
/// the body. Returns the header section as text. The one framing loop of the crate: the
/// view and the one-pass typed parse both run it, with their own sinks.
#[inline(always)]
pub(crate) fn frame<'a, S: LineSink<'a>>(
    data: &'a [u8],
    limits: &Limits,
    t: Transport,
    layout: &mut Layout,
    sink: &mut S,
) -> Result<&'a str, ParseError> {
    // Offsets are kept as u32 (see Span::new).
    if u32::try_from(data.len()).is_err() {
        return Err(err(ErrorKind::TooLarge, limits.max_message_size));
    }
    // RFC 3261 section 7.5: CRLFs before the start line are ignored.
    let mut pos = 0;
    while data.get(pos..pos + 2) == Some(b"\r\n") {
        pos += 2;
    }
    let line = line_end(data, pos)?.ok_or_else(|| incomplete(t, data.len()))?;
    layout.start = parse_start_line(data, pos, line)?;
    pos = line + 2;

    let headers = &mut layout.headers;
    let mut content_length: Option<u32> = None;
    let head_end = loop {
        // The empty line ends the header section.
        match data.get(pos) {
            Some(b'\r') => match data.get(pos + 1) {
                Some(b'\n') => break pos + 2,
                Some(_) => return Err(err(ErrorKind::InvalidLineEnding, pos)),
                None => return Err(incomplete(t, data.len())),
            },
            Some(_) => {}
            None => return Err(incomplete(t, data.len())),
        }
        let n = headers.len();
        if n >= limits.max_headers {
            return Err(err(ErrorKind::TooManyHeaders, pos));
        }
        let (h, next) = match sink.line(data, pos, n)? {
            Some(handled) => handled,
            None => {
                let (h, next) = parse_header_line(data, pos, limits, t)?;
                sink.framed(&h, n)?;
                (h, next)
            }
        };
        if h.kind == HeaderName::ContentLength {
            let n = parse_decimal_bytes(&data[h.value.range()])
                .ok_or_else(|| err(ErrorKind::InvalidContentLength, h.value.start as usize))?
                as u32;
            if content_length.is_some_and(|c| c != n) {
                return Err(err(
                    ErrorKind::ConflictingContentLength,
                    h.value.start as usize,
                ));
            }
            content_length = Some(n);
        }
        headers.push(h);
        pos = next;
    };

    let head = sink.head(data, head_end)?;

    let body = match (content_length, t) {
        (Some(n), _) => {
            let end = head_end + n as usize;
            if end > limits.max_message_size {
                return Err(err(ErrorKind::TooLarge, head_end));
            }
            if end > data.len() {
                return Err(match t {
                    Transport::Datagram => err(ErrorKind::BodyTruncated, data.len()),
                    // The offset says how long the message will be (see parse_stream_sized).
                    Transport::Stream => err(ErrorKind::Incomplete, end),
                });
            }
            Span::new(head_end, end)
        }
        (None, Transport::Datagram) => Span::new(head_end, data.len()),
        (None, Transport::Stream) => {
            return Err(err(ErrorKind::MissingContentLength, head_end));
        }
    };
    layout.head_end = head_end as u32;
    layout.body = body;
    layout.content_length = content_length;
    Ok(head)
}

/// Parses `name HCOLON value` from `pos`, following continuation lines. Returns the spans and
/// the offset of the next line. Kept out of line: the loops here get registers of their own.
#[inline(never)]
pub(crate) fn parse_header_line(
    data: &[u8],
    pos: usize,
    limits: &Limits,
    t: Transport,
) -> Result<(RawSpan, usize), ParseError> {
    // field-name = token
    let name_end = scan::run(data, pos, scan::TOKEN);
    if name_end == pos {
        return Err(err(ErrorKind::InvalidHeaderName, pos));
    }
    // HCOLON = *( SP / HTAB ) ":" SWS
    let mut i = name_end;
    if data.get(i) != Some(&b':') {
        while matches!(data.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        match data.get(i) {
            Some(b':') => {}
            Some(_) => return Err(err(ErrorKind::InvalidHeaderName, i)),
            None => return Err(incomplete(t, data.len())),
        }
    }
    i += 1;
    // Find the end of the logical line: a CRLF not followed by SP or HTAB.
    let mut value_start = None;
    let mut cursor = i;
    let end = loop {
        let cr = line_end(data, cursor)?.ok_or_else(|| incomplete(t, data.len()))?;
        if value_start.is_none() {
            // first non-whitespace of the value on this physical line
            let mut v = cursor;
            while v < cr && matches!(data[v], b' ' | b'\t') {
                v += 1;
            }
            if v < cr {
                value_start = Some(v);
            }
        }
        if cr - pos > limits.max_header_line {
            return Err(err(ErrorKind::HeaderLineTooLong, pos));
        }
        match data.get(cr + 2) {
            Some(b' ' | b'\t') => cursor = cr + 3,
            Some(_) => break cr,
            // On a stream the next byte decides whether this line goes on.
            None if t == Transport::Stream => return Err(incomplete(t, data.len())),
            None => break cr,
        }
    };
    // Trim trailing whitespace and folds off the value.
    let vs = value_start.unwrap_or(end);
    let mut ve = end;
    while ve > vs && matches!(data[ve - 1], b' ' | b'\t' | b'\r' | b'\n') {
        ve -= 1;
    }
    // Control characters are not checked here: the typed parsers reject them in known headers
    // (outside quoted pairs, RFC 3261 section 25.1), and extension headers are kept verbatim
    // for whoever forwards them.
    let kind = HeaderName::from_token_at(data, pos, name_end);
    Ok((
        RawSpan {
            name: Span::new(pos, name_end),
            value: Span::new(vs, ve),
            kind,
        },
        end + 2,
    ))
}

pub(crate) fn parse_start_line(
    data: &[u8],
    pos: usize,
    end: usize,
) -> Result<StartSpans, ParseError> {
    if let Some(spans) = request_line_fast(data, pos, end) {
        return Ok(spans);
    }
    let line = &data[pos..end];
    if line.len() >= 4 && line[..4].eq_ignore_ascii_case(b"SIP/") {
        // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase CRLF
        let vlen = version_len(line).ok_or_else(|| err(ErrorKind::InvalidStartLine, pos))?;
        let mut i = vlen;
        if line.get(i) != Some(&b' ') {
            return Err(err(ErrorKind::InvalidStartLine, pos + i));
        }
        i += 1;
        let code = line
            .get(i..i + 3)
            .ok_or_else(|| err(ErrorKind::InvalidStatusCode, pos + i))?;
        if !code.iter().all(u8::is_ascii_digit) || code[0] == b'0' {
            return Err(err(ErrorKind::InvalidStatusCode, pos + i));
        }
        let code_n = code.iter().fold(0u16, |a, &d| a * 10 + u16::from(d - b'0'));
        i += 3;
        let reason_start = match line.get(i) {
            None => i,
            Some(b' ') => i + 1,
            Some(_) => return Err(err(ErrorKind::InvalidStatusCode, pos + i)),
        };
        // Reason-Phrase = *(reserved / unreserved / escaped / UTF8-NONASCII / UTF8-CONT / SP / HTAB)
        if let Some(bad) = line[reason_start..]
            .iter()
            .position(|&b| b < 0x20 && b != b'\t' || b == 0x7f)
        {
            return Err(err(
                ErrorKind::InvalidReasonPhrase,
                pos + reason_start + bad,
            ));
        }
        Ok(StartSpans::Response {
            version: Span::new(pos, pos + vlen),
            code: code_n,
            reason: Span::new(pos + reason_start, end),
        })
    } else {
        // Request-Line = Method SP Request-URI SP SIP-Version CRLF
        let m = line
            .iter()
            .position(|&b| !scan::is_token(b))
            .unwrap_or(line.len());
        if m == 0 {
            return Err(err(ErrorKind::InvalidStartLine, pos));
        }
        if line.get(m) != Some(&b' ') {
            return Err(err(ErrorKind::InvalidMethod, pos + m));
        }
        let last_sp = line.iter().rposition(|&b| b == b' ').unwrap_or(m);
        if last_sp == m {
            return Err(err(ErrorKind::InvalidStartLine, pos + m));
        }
        let version = &line[last_sp + 1..];
        if version_len(version) != Some(version.len()) {
            return Err(err(ErrorKind::InvalidStartLine, pos + last_sp + 1));
        }
        let uri = &line[m + 1..last_sp];
        if uri.is_empty() {
            return Err(err(ErrorKind::InvalidRequestUri, pos + m + 1));
        }
        if let Some(bad) = uri.iter().position(|&b| b <= b' ' || b == 0x7f) {
            return Err(err(ErrorKind::InvalidRequestUri, pos + m + 1 + bad));
        }
        Ok(StartSpans::Request {
            method: Span::new(pos, pos + m),
            uri: Span::new(pos + m + 1, pos + last_sp),
            version: Span::new(pos + last_sp + 1, end),
        })
    }
}

/// The usual request line, `token SP visible-characters SP "SIP/2.0"`, read in one pass;
/// `None` for anything else, which the general code then parses (or rejects).
#[inline]
fn request_line_fast(data: &[u8], pos: usize, end: usize) -> Option<StartSpans> {
    let m = scan::run(data, pos, scan::TOKEN);
    if m == pos || data.get(m) != Some(&b' ') {
        return None;
    }
    let u0 = m + 1;
    let u = scan::run(data, u0, scan::VISIBLE);
    if u == u0 || data.get(u) != Some(&b' ') || data.get(u + 1..end)? != b"SIP/2.0" {
        return None;
    }
    Some(StartSpans::Request {
        method: Span::new(pos, m),
        uri: Span::new(u0, u),
        version: Span::new(u + 1, end),
    })
}

/// A Content-Length value: 1*DIGIT, at most 2^32-1.
pub(crate) fn parse_decimal_bytes(b: &[u8]) -> Option<u64> {
    if b.is_empty() {
        return None;
    }
    let mut v: u64 = 0;
    for &d in b {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u64::from(d - b'0');
        if v > u64::from(u32::MAX) {
            return None;
        }
    }
    Some(v)
}

/// Is this SIP-Version `SIP/2.0` (the letters in any case)?
#[inline]
pub(crate) fn is_sip_2_0(v: &[u8]) -> bool {
    // "SIP" in any case, then "/2.0": setting 0x20 lower-cases the three letters, and
    // no byte but the upper or lower case letter becomes "s", "i" or "p" that way
    match <[u8; 7]>::try_from(v) {
        Ok([a, b, c, d, rest @ ..]) => {
            u32::from_le_bytes([a, b, c, d]) | 0x0020_2020 == u32::from_le_bytes(*b"sip/")
                && rest == *b"2.0"
        }
        Err(_) => false,
    }
}

/// Length of a `SIP-Version` ("SIP" "/" 1*DIGIT "." 1*DIGIT) at the start of `s`.
fn version_len(s: &[u8]) -> Option<usize> {
    if s.len() < 4 || !s[..4].eq_ignore_ascii_case(b"SIP/") {
        return None;
    }
    let mut i = 4;
    let d1 = i;
    while s.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if i == d1 || s.get(i) != Some(&b'.') {
        return None;
    }
    i += 1;
    let d2 = i;
    while s.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    (i > d2).then_some(i)
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPTIONS: &[u8] = b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nl: 5\r\n\r\nhello";

    #[test]
    fn view_finds_start_line_headers_and_body() {
        let v = MessageView::parse(OPTIONS).unwrap();
        assert_eq!(v.method(), Some(Method::Options));
        assert_eq!(v.header_count(), 2);
        assert_eq!(
            v.header(HeaderName::Via),
            Some("SIP/2.0/UDP h;branch=z9hG4bK1")
        );
        assert_eq!(v.body(), b"hello");
    }

    // RFC 3261 section 18.3: octets after Content-Length on a datagram are ignored; a larger
    // Content-Length is an error.
    #[test]
    fn datagram_framing_ignores_trailing_octets_and_rejects_short_body() {
        let mut m = OPTIONS.to_vec();
        m.extend_from_slice(b"trailing");
        assert_eq!(MessageView::parse(&m).unwrap().body(), b"hello");
        let short = &OPTIONS[..OPTIONS.len() - 1];
        assert_eq!(
            MessageView::parse(short).unwrap_err().kind,
            ErrorKind::BodyTruncated
        );
    }

    // RFC 3261 section 18.3: on a stream a message is complete only with its whole body.
    #[test]
    fn stream_framing_asks_for_more_bytes_at_every_split() {
        for cut in 0..OPTIONS.len() {
            match MessageView::parse_stream(&OPTIONS[..cut], &Limits::DEFAULT) {
                Ok(StreamFrame::Partial) => {}
                other => panic!("cut {cut}: {other:?}"),
            }
        }
        let mut two = OPTIONS.to_vec();
        two.extend_from_slice(OPTIONS);
        match MessageView::parse_stream(&two, &Limits::DEFAULT).unwrap() {
            StreamFrame::Message(v, used) => {
                assert_eq!(used, OPTIONS.len());
                assert_eq!(v.body(), b"hello");
            }
            other => panic!("{other:?}"),
        }
    }

    // RFC 5626 section 3.5.1: CRLFCRLF is a ping, CRLF a pong.
    #[test]
    fn stream_keepalive_ping_and_pong() {
        assert!(matches!(
            MessageView::parse_stream(b"\r\n\r\n", &Limits::DEFAULT),
            Ok(StreamFrame::Ping)
        ));
        assert!(matches!(
            MessageView::parse_stream(b"\r\nINV", &Limits::DEFAULT),
            Ok(StreamFrame::Pong)
        ));
    }

    // RFC 3261 section 18.3: a stream message without Content-Length is an error.
    #[test]
    fn stream_message_without_content_length_is_an_error() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h\r\n\r\n";
        assert_eq!(
            MessageView::parse_stream(m, &Limits::DEFAULT)
                .unwrap_err()
                .kind,
            ErrorKind::MissingContentLength
        );
    }

    #[test]
    fn limits_bound_header_count_and_size() {
        let limits = Limits {
            max_headers: 1,
            ..Limits::DEFAULT
        };
        assert_eq!(
            MessageView::parse_datagram(OPTIONS, &limits)
                .unwrap_err()
                .kind,
            ErrorKind::TooManyHeaders
        );
        let limits = Limits {
            max_message_size: 10,
            ..Limits::DEFAULT
        };
        assert_eq!(
            MessageView::parse_datagram(OPTIONS, &limits)
                .unwrap_err()
                .kind,
            ErrorKind::TooLarge
        );
    }
}
