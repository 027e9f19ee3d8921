//! Editing a received message: what a proxy does to the copy of a request it forwards
//! (RFC 3261 section 16.6), what it does to a response it relays (section 16.7 step 3), and
//! what a B2BUA changes in what it passes on.
//!
//! The editor holds the original message (shared, not copied) and a short list of header
//! lines, each either an unchanged line of the original or new text. [`MessageEditor::finish`]
//! writes the unchanged lines byte for byte (runs of them in one copy) and the new text into
//! one buffer, recording the layout as it writes, so the result is not parsed again: an edit
//! costs little more than a copy. Everything added is checked as the builders check it: no
//! CR, LF or NUL (no header injection), names are tokens, known headers match their grammar.

use smallvec::SmallVec;

use crate::builder::{check_name, check_text, push_decimal, BuildError};
use crate::message::view::{RawSpan, Span, StartSpans};
use crate::message::{scan, HeaderName};
use crate::{ErrorKind, OwnedMessage, ParseError};

/// Where a piece of text lives.
#[derive(Debug, Clone, Copy)]
enum Piece {
    /// A span of the original message.
    Orig(Span),
    /// A span of the editor's own text.
    New(Span),
}

/// One header line of the edited message (24 bytes: the editor keeps a few dozen inline).
#[derive(Debug, Clone, Copy)]
struct Line {
    name: Span,
    value: Span,
    /// The index of the original line this is while it is unchanged (its bytes, folds
    /// included, are then copied as they were), else [`CHANGED`].
    orig: u32,
    kind: HeaderName,
    /// [`NAME_NEW`] and [`VALUE_NEW`]: which spans are in the editor's text.
    new: u8,
}

const CHANGED: u32 = u32::MAX;
const NAME_NEW: u8 = 1;
const VALUE_NEW: u8 = 2;

impl Line {
    fn name(&self) -> Piece {
        match self.new & NAME_NEW {
            0 => Piece::Orig(self.name),
            _ => Piece::New(self.name),
        }
    }

    fn value(&self) -> Piece {
        match self.new & VALUE_NEW {
            0 => Piece::Orig(self.value),
            _ => Piece::New(self.value),
        }
    }

    fn set_value(&mut self, value: Piece) {
        (self.value, self.new) = match value {
            Piece::Orig(s) => (s, self.new & !VALUE_NEW),
            Piece::New(s) => (s, self.new | VALUE_NEW),
        };
        self.orig = CHANGED;
    }
}

/// What [`MessageEditor::decrement_max_forwards`] did (RFC 3261 section 16.6 step 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum HopCount {
    /// Max-Forwards was decremented to this value.
    Decremented(u8),
    /// The request had no Max-Forwards: one was added with this value (70).
    Added(u8),
    /// Max-Forwards is 0 and was left alone: the request must not be forwarded. A proxy
    /// answers 483 (Too Many Hops), or answers an OPTIONS itself (section 16.3 step 3).
    Exhausted,
}

/// The value section 16.6 step 3 asks a proxy to add when a request has no Max-Forwards.
const DEFAULT_MAX_FORWARDS: u8 = 70;

/// An edited copy of a message. Start one with [`OwnedMessage::edit`], change it, and
/// [`finish`](MessageEditor::finish) it into a new [`OwnedMessage`].
///
/// Headers are named as text, matched the way RFC 3261 section 7.3 says: case-insensitively,
/// a compact form equal to its long form (`v` is `Via`), extension headers by name.
/// Content-Length is not edited directly: it follows the body ([`MessageEditor::set_body`]).
///
/// A proxy forwarding a request (section 16.6 steps 2 to 8):
///
/// ```
/// use sip_core::{HopCount, OwnedMessage, new_branch, SeededRng};
///
/// let received = OwnedMessage::parse(
///     b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
///       Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
///       Max-Forwards: 70\r\n\
///       To: Bob <sip:bob@biloxi.example.com>\r\n\
///       From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
///       Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
///       CSeq: 314159 INVITE\r\n\
///       Content-Length: 0\r\n\r\n",
/// )?;
/// let mut rng = SeededRng::new([7; 32]); // seed from the OS in real use
/// let mut fwd = received.edit();
/// // step 3: Max-Forwards
/// if fwd.decrement_max_forwards()? == HopCount::Exhausted {
///     // answer 483 (Too Many Hops) instead of forwarding
/// }
/// // step 2: the new target
/// fwd.set_request_uri("sip:bob@192.0.2.4")?
///     // step 4: stay on the path of later requests
///     .prepend_record_route("<sip:p1.example.com;lr>")?
///     // step 8: our own Via, with a fresh branch
///     .prepend_via(&format!("SIP/2.0/UDP p1.example.com;branch={}", new_branch(&mut rng)))?;
/// let fwd = fwd.finish()?;
/// let m = fwd.message()?;
/// assert_eq!(m.max_forwards(), Some(69));
/// assert_eq!(m.vias().count(), 2);
/// assert_eq!(m.top_via().unwrap().host.as_str(), "p1.example.com");
/// assert_eq!(m.request_uri().unwrap().to_string(), "sip:bob@192.0.2.4");
/// // unchanged lines are kept byte for byte
/// let text = std::str::from_utf8(fwd.as_bytes())?;
/// assert!(text.contains("\r\nFrom: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone)]
pub struct MessageEditor {
    original: OwnedMessage,
    /// The new text: names, values, the Request-URI or reason phrase, the body.
    text: SmallVec<[u8; 256]>,
    /// A new Request-URI (request) or reason phrase (response).
    start: Option<Span>,
    lines: SmallVec<[Line; 24]>,
    /// A new body.
    body: Option<Span>,
}

impl MessageEditor {
    pub(crate) fn new(original: OwnedMessage) -> MessageEditor {
        let lines = original
            .parts()
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| Line {
                name: h.name,
                value: h.value,
                orig: i as u32,
                kind: h.kind,
                new: 0,
            })
            .collect();
        MessageEditor {
            original,
            text: SmallVec::new(),
            start: None,
            lines,
            body: None,
        }
    }

    /// The message being edited, as it was.
    pub fn original(&self) -> &OwnedMessage {
        &self.original
    }

    /// Sets the Request-URI (section 16.6 step 2). Fails on a response, and on text that is
    /// not a URI without whitespace.
    pub fn set_request_uri(&mut self, uri: &str) -> Result<&mut Self, BuildError> {
        if self.original.method().is_none() {
            return Err(BuildError::NotApplicable("a response has no Request-URI"));
        }
        check_text("Request-URI", uri)?;
        let invalid = |kind, at| BuildError::Invalid {
            part: "Request-URI",
            source: ParseError::new(kind, at),
        };
        if let Some(at) = uri.bytes().position(|b| b <= b' ' || b == 0x7f) {
            return Err(invalid(ErrorKind::InvalidRequestUri, at));
        }
        if uri.len() > self.original.limits().max_uri_length {
            return Err(invalid(ErrorKind::UriTooLong, 0));
        }
        if !crate::message::check_request_uri(uri) {
            return Err(invalid(ErrorKind::InvalidRequestUri, 0));
        }
        self.start = Some(self.push_text(uri));
        Ok(self)
    }

    /// Sets the reason phrase of a response (a B2BUA relaying a status with its own words).
    pub fn set_reason(&mut self, reason: &str) -> Result<&mut Self, BuildError> {
        if self.original.status().is_none() {
            return Err(BuildError::NotApplicable("a request has no reason phrase"));
        }
        crate::builder::check_reason(reason)?;
        self.start = Some(self.push_text(reason));
        Ok(self)
    }

    /// Adds a header line above the first one with this name; when there is none, below
    /// the Via lines (at the top for Via). Via and Record-Route are prepended this way
    /// (sections 16.6 steps 4 and 8); see [`MessageEditor::prepend_via`].
    pub fn prepend(&mut self, name: &str, value: &str) -> Result<&mut Self, BuildError> {
        let line = self.new_line(name, value)?;
        let at = match self.position(line.kind, name) {
            Some(i) => i,
            None => self.below_vias(),
        };
        self.lines.insert(at, line);
        Ok(self)
    }

    /// Adds a header line below the last one with this name, or at the end of the header
    /// section (above a Content-Length that ends it) (section 16.6 step 5: "Add Additional
    /// Header Fields").
    pub fn append(&mut self, name: &str, value: &str) -> Result<&mut Self, BuildError> {
        let line = self.new_line(name, value)?;
        let at = match self.rposition(line.kind, name) {
            Some(i) => i + 1,
            None => match self.lines.last() {
                Some(l) if l.kind == HeaderName::ContentLength => self.lines.len() - 1,
                _ => self.lines.len(),
            },
        };
        self.lines.insert(at, line);
        Ok(self)
    }

    /// Sets a header to one value: the first line with this name gets it, the other lines
    /// with this name are removed; with none, the line is appended.
    pub fn set(&mut self, name: &str, value: &str) -> Result<&mut Self, BuildError> {
        let line = self.new_line(name, value)?;
        match self.position(line.kind, name) {
            Some(i) => {
                self.lines[i] = line;
                let mut j = i + 1;
                while j < self.lines.len() {
                    if self.is_named(&self.lines[j], line.kind, name) {
                        self.lines.remove(j);
                    } else {
                        j += 1;
                    }
                }
            }
            None => self.lines.push(line),
        }
        Ok(self)
    }

    /// Removes every header line with this name; returns how many there were.
    pub fn remove(&mut self, name: &str) -> Result<usize, BuildError> {
        let kind = editable(name)?;
        let before = self.lines.len();
        let mut j = 0;
        while j < self.lines.len() {
            if self.is_named(&self.lines[j], kind, name) {
                self.lines.remove(j);
            } else {
                j += 1;
            }
        }
        Ok(before - self.lines.len())
    }

    /// Removes the first value of a header: of the first line with this name, only its first
    /// comma-separated value when it holds several (section 7.3.1), else the whole line.
    /// Returns whether there was one. (A proxy removes the first Route value that names it,
    /// section 16.4.)
    pub fn remove_first_value(&mut self, name: &str) -> Result<bool, BuildError> {
        let kind = editable(name)?;
        let Some(i) = self.position(kind, name) else {
            return Ok(false);
        };
        let line = self.lines[i];
        if kind.is_list() {
            let value = self.piece(line.value());
            if let Some(comma) = first_value_end(value) {
                let b = value.as_bytes();
                let mut rest = comma + 1;
                while matches!(b.get(rest), Some(b' ' | b'\t' | b'\r' | b'\n')) {
                    rest += 1;
                }
                if rest < b.len() {
                    let cut = |s: Span| Span {
                        start: s.start + rest as u32,
                        end: s.end,
                    };
                    self.lines[i].set_value(match line.value() {
                        Piece::Orig(s) => Piece::Orig(cut(s)),
                        Piece::New(s) => Piece::New(cut(s)),
                    });
                    return Ok(true);
                }
            }
        }
        self.lines.remove(i);
        Ok(true)
    }

    /// Adds a Via value above the others (section 16.6 step 8), such as
    /// `SIP/2.0/UDP p1.example.com;branch=z9hG4bK...` (see [`new_branch`](crate::new_branch)).
    pub fn prepend_via(&mut self, via: &str) -> Result<&mut Self, BuildError> {
        self.prepend("Via", via)
    }

    /// Adds a Record-Route value above the others (section 16.6 step 4), such as
    /// `<sip:p1.example.com;lr>`.
    pub fn prepend_record_route(&mut self, route: &str) -> Result<&mut Self, BuildError> {
        self.prepend("Record-Route", route)
    }

    /// Removes the top Via value of a response being relayed (section 16.7 step 3): only the
    /// first value when the first Via line holds several.
    pub fn remove_top_via(&mut self) -> Result<&mut Self, BuildError> {
        if self.remove_first_value("Via")? {
            Ok(self)
        } else {
            Err(BuildError::NotApplicable("the message has no Via"))
        }
    }

    /// Section 16.6 step 3: decrements Max-Forwards, or adds `Max-Forwards: 70` when there is
    /// none. At 0 nothing changes and [`HopCount::Exhausted`] says the request must not be
    /// forwarded (section 16.3 step 3 answers it with 483).
    pub fn decrement_max_forwards(&mut self) -> Result<HopCount, BuildError> {
        let Some(i) = self.position(HeaderName::MaxForwards, "") else {
            let mut v = SmallVec::<[u8; 4]>::new();
            push_decimal(&mut v, DEFAULT_MAX_FORWARDS);
            let line = self.new_line("Max-Forwards", std::str::from_utf8(&v).unwrap_or("70"))?;
            let at = self.below_vias();
            self.lines.insert(at, line);
            return Ok(HopCount::Added(DEFAULT_MAX_FORWARDS));
        };
        let hops = scan::parse_decimal(self.piece(self.lines[i].value()), 255).ok_or(
            BuildError::Invalid {
                part: "Max-Forwards",
                source: ParseError::new(ErrorKind::InvalidHeader(HeaderName::MaxForwards), 0),
            },
        )? as u8;
        if hops == 0 {
            return Ok(HopCount::Exhausted);
        }
        let start = self.text.len();
        push_decimal(&mut self.text, hops - 1);
        self.lines[i].set_value(Piece::New(Span::new(start, self.text.len())));
        Ok(HopCount::Decremented(hops - 1))
    }

    /// Replaces the body and sets Content-Type; Content-Length is written to match when the
    /// message is finished. Other Content-* headers are left as they are.
    pub fn set_body(&mut self, content_type: &str, body: &[u8]) -> Result<&mut Self, BuildError> {
        self.set("Content-Type", content_type)?;
        let start = self.text.len();
        self.text.extend_from_slice(body);
        self.body = Some(Span::new(start, self.text.len()));
        Ok(self)
    }

    /// Removes the body with the headers that describe it (Content-Type, Content-Encoding,
    /// Content-Disposition, Content-Language); Content-Length becomes 0.
    pub fn remove_body(&mut self) -> &mut Self {
        self.lines.retain(|l| {
            !matches!(
                l.kind,
                HeaderName::ContentType
                    | HeaderName::ContentEncoding
                    | HeaderName::ContentDisposition
                    | HeaderName::ContentLanguage
            )
        });
        self.body = Some(Span::default());
        self
    }

    /// Writes the edited message: unchanged header lines byte for byte, the new text, a
    /// Content-Length that matches the body (added when the original had none). Fails when
    /// the result breaks the limits the original was parsed with (size, header count).
    pub fn finish(self) -> Result<OwnedMessage, BuildError> {
        let p = self.original.parts();
        let limits = self.original.limits();
        let buf = p.buf;
        let text: &[u8] = &self.text;
        let bytes = |piece: Piece| -> &[u8] {
            match piece {
                Piece::Orig(s) => buf.get(s.range()).unwrap_or(&[]),
                Piece::New(s) => text.get(s.range()).unwrap_or(&[]),
            }
        };
        let orig = |s: Span| buf.get(s.range()).unwrap_or(&[]);
        // The whole original line `i`, name to CRLF: up to the next one's name (or to the
        // empty line).
        let verbatim = |i: u32| -> Option<Span> {
            let i = i as usize;
            let start = p.headers.get(i)?.name.start;
            let end = p
                .headers
                .get(i + 1)
                .map_or(p.head_end.saturating_sub(2), |n| n.name.start);
            Some(Span { start, end })
        };
        let body: &[u8] = match self.body {
            Some(s) => text.get(s.range()).unwrap_or(&[]),
            None => orig(p.body),
        };
        let start_line = match (p.start, self.start) {
            (
                StartSpans::Request {
                    method,
                    uri,
                    version,
                },
                new_uri,
            ) => {
                let uri = new_uri.map_or(Piece::Orig(uri), Piece::New);
                [Piece::Orig(method), uri, Piece::Orig(version)]
            }
            (
                StartSpans::Response {
                    version, reason, ..
                },
                new_reason,
            ) => {
                let reason = new_reason.map_or(Piece::Orig(reason), Piece::New);
                // (the code is written from its number)
                [Piece::Orig(version), Piece::New(Span::default()), reason]
            }
        };
        // Content-Length is rewritten when the body changed or the original had none.
        let new_length = match (self.body, p.content_length) {
            (None, Some(_)) => None,
            _ => Some(body.len() as u32),
        };

        // The exact size and line count first, so nothing is reallocated.
        let mut size = start_line.iter().map(|&x| bytes(x).len()).sum::<usize>() + 4;
        if let StartSpans::Response { code, .. } = p.start {
            size += decimal_len(u32::from(code));
        }
        let mut count = 0;
        let mut length_line = false;
        for line in &self.lines {
            size += match (line.kind, new_length, verbatim(line.orig)) {
                (HeaderName::ContentLength, Some(_), _) if length_line => continue,
                (HeaderName::ContentLength, Some(n), _) => {
                    length_line = true;
                    bytes(line.name()).len() + 4 + decimal_len(n)
                }
                (_, _, Some(v)) => v.range().len(),
                _ => bytes(line.name()).len() + bytes(line.value()).len() + 4,
            };
            count += 1;
        }
        let add_length = new_length.filter(|_| !length_line);
        if let Some(n) = add_length {
            size += "Content-Length".len() + 4 + decimal_len(n);
            count += 1;
        }
        let head_end = size + 2;
        size = head_end + body.len();
        if size > limits.max_message_size {
            return Err(BuildError::TooLarge {
                size,
                limit: limits.max_message_size,
            });
        }
        if count > limits.max_headers {
            return Err(BuildError::Invalid {
                part: "message",
                source: ParseError::new(ErrorKind::TooManyHeaders, head_end),
            });
        }
        // Via values (a prepended Via must not take the message past the limit the peer's
        // parser, or this endpoint's, enforces: section 16.6 step 8 on a request that has
        // travelled far).
        let vias: usize = self
            .lines
            .iter()
            .filter(|l| l.kind == HeaderName::Via)
            .map(|l| value_count(std::str::from_utf8(bytes(l.value())).unwrap_or("")))
            .sum();
        if vias > limits.max_vias {
            return Err(BuildError::Invalid {
                part: "message",
                source: ParseError::new(ErrorKind::TooManyVias, head_end),
            });
        }

        let mut out = Vec::with_capacity(size);
        let mut headers: Vec<RawSpan> = Vec::with_capacity(count);
        let put = |out: &mut Vec<u8>, b: &[u8]| -> Span {
            let start = out.len();
            out.extend_from_slice(b);
            Span::new(start, out.len())
        };
        // Start line: its parts with single spaces, as the parse found them.
        let [a, b, c] = start_line;
        let first = put(&mut out, bytes(a));
        out.push(b' ');
        let start = match p.start {
            StartSpans::Request { .. } => {
                let uri = put(&mut out, bytes(b));
                out.push(b' ');
                let version = put(&mut out, bytes(c));
                StartSpans::Request {
                    method: first,
                    uri,
                    version,
                }
            }
            StartSpans::Response { code, .. } => {
                push_decimal(&mut out, code);
                out.push(b' ');
                let reason = put(&mut out, bytes(c));
                StartSpans::Response {
                    version: first,
                    code,
                    reason,
                }
            }
        };
        out.extend_from_slice(b"\r\n");

        let mut length_written = false;
        // A run of unchanged, adjacent original lines, copied at once: (start, end).
        let mut run: Option<(u32, u32)> = None;
        let flush = |out: &mut Vec<u8>, run: &mut Option<(u32, u32)>| {
            if let Some((s, e)) = run.take() {
                out.extend_from_slice(orig(Span { start: s, end: e }));
            }
        };
        let new_line = |out: &mut Vec<u8>, name: &[u8], value: &dyn Fn(&mut Vec<u8>)| {
            let name = put(out, name);
            out.extend_from_slice(b": ");
            let at = out.len();
            value(out);
            let value = Span::new(at, out.len());
            out.extend_from_slice(b"\r\n");
            (name, value)
        };
        for line in &self.lines {
            if let (HeaderName::ContentLength, Some(n)) = (line.kind, new_length) {
                if !length_written {
                    flush(&mut out, &mut run);
                    length_written = true;
                    let (name, value) =
                        new_line(&mut out, bytes(line.name()), &|o| push_decimal(o, n));
                    headers.push(RawSpan {
                        name,
                        value,
                        kind: line.kind,
                    });
                }
                continue;
            }
            match verbatim(line.orig) {
                Some(v) => {
                    let (name, value) = (line.name, line.value);
                    // where this line lands once the pending run is written
                    let run_len = match run {
                        Some((s, e)) if e == v.start => {
                            run = Some((s, v.end));
                            e - s
                        }
                        _ => {
                            flush(&mut out, &mut run);
                            run = Some((v.start, v.end));
                            0
                        }
                    };
                    let at = out.len() as u32 + run_len;
                    let shift = |s: Span| Span {
                        start: s.start - v.start + at,
                        end: s.end - v.start + at,
                    };
                    headers.push(RawSpan {
                        name: shift(name),
                        value: shift(value),
                        kind: line.kind,
                    });
                }
                _ => {
                    flush(&mut out, &mut run);
                    let value = bytes(line.value());
                    let (name, value) = new_line(&mut out, bytes(line.name()), &|o| {
                        o.extend_from_slice(value)
                    });
                    headers.push(RawSpan {
                        name,
                        value,
                        kind: line.kind,
                    });
                }
            }
        }
        flush(&mut out, &mut run);
        if let Some(n) = add_length {
            let (name, value) = new_line(&mut out, b"Content-Length", &|o| push_decimal(o, n));
            headers.push(RawSpan {
                name,
                value,
                kind: HeaderName::ContentLength,
            });
        }
        out.extend_from_slice(b"\r\n");
        debug_assert_eq!(out.len(), head_end);
        out.extend_from_slice(body);
        debug_assert_eq!((out.len(), headers.len()), (size, count));
        let edited = OwnedMessage::from_written(
            out,
            start,
            headers.into_boxed_slice(),
            head_end as u32,
            new_length.or(p.content_length),
            &limits,
        );
        // What was recorded is what framing finds (checked in every debug build and test).
        #[cfg(debug_assertions)]
        {
            let framed = crate::MessageView::parse_datagram(edited.as_bytes(), &limits)
                .expect("an edited message frames");
            let a = edited.view();
            debug_assert_eq!(a.start_line(), framed.start_line());
            debug_assert!(a.headers().eq(framed.headers()));
            debug_assert_eq!(a.body(), framed.body());
            debug_assert_eq!(a.content_length(), framed.content_length());
        }
        Ok(edited)
    }

    fn push_text(&mut self, s: &str) -> Span {
        let start = self.text.len();
        self.text.extend_from_slice(s.as_bytes());
        Span::new(start, self.text.len())
    }

    /// The text of a piece (the original head and all new text are UTF-8).
    fn piece(&self, p: Piece) -> &str {
        let b = match p {
            Piece::Orig(s) => self.original.as_bytes().get(s.range()),
            Piece::New(s) => self.text.get(s.range()),
        };
        b.and_then(|b| std::str::from_utf8(b).ok()).unwrap_or("")
    }

    /// Does a line carry this header (known names by kind, extension names by text)?
    fn is_named(&self, line: &Line, kind: HeaderName, name: &str) -> bool {
        if kind == HeaderName::Other {
            line.kind == HeaderName::Other && self.piece(line.name()).eq_ignore_ascii_case(name)
        } else {
            line.kind == kind
        }
    }

    fn position(&self, kind: HeaderName, name: &str) -> Option<usize> {
        self.lines.iter().position(|l| self.is_named(l, kind, name))
    }

    fn rposition(&self, kind: HeaderName, name: &str) -> Option<usize> {
        self.lines
            .iter()
            .rposition(|l| self.is_named(l, kind, name))
    }

    /// Just below the last Via line (the top when there is none).
    fn below_vias(&self) -> usize {
        self.lines
            .iter()
            .rposition(|l| l.kind == HeaderName::Via)
            .map_or(0, |i| i + 1)
    }

    /// A new header line, checked: a token name, no CR, LF or NUL, a known header's grammar,
    /// the line length limit.
    fn new_line(&mut self, name: &str, value: &str) -> Result<Line, BuildError> {
        let kind = editable(name)?;
        check_text("header value", value)?;
        let value = value.trim_matches([' ', '\t']);
        let limits = self.original.limits();
        if name.len() + 2 + value.len() > limits.max_header_line {
            return Err(BuildError::Invalid {
                part: "header",
                source: ParseError::new(ErrorKind::HeaderLineTooLong, 0),
            });
        }
        crate::message::check_header_value(kind, value, limits.max_uri_length).map_err(|at| {
            BuildError::Invalid {
                part: "header",
                source: ParseError::new(ErrorKind::InvalidHeader(kind), at),
            }
        })?;
        Ok(Line {
            name: self.push_text(name),
            value: self.push_text(value),
            orig: CHANGED,
            kind,
            new: NAME_NEW | VALUE_NEW,
        })
    }
}

/// The number of decimal digits of `n`.
fn decimal_len(n: u32) -> usize {
    n.checked_ilog10().map_or(1, |l| l as usize + 1)
}

/// A header name the editor may change: a token, and not Content-Length (which follows the
/// body).
fn editable(name: &str) -> Result<HeaderName, BuildError> {
    check_name(name)?;
    match HeaderName::from_name(name) {
        HeaderName::ContentLength => Err(BuildError::NotApplicable(
            "Content-Length follows the body: use set_body",
        )),
        kind => Ok(kind),
    }
}

/// The offset of the comma that ends the first value of a list header line, outside quoted
/// strings and `<>` (section 7.3.1); `None` for a single value.
/// How many comma-separated values a list header's value holds (commas inside quoted
/// strings and `<>` do not separate).
fn value_count(value: &str) -> usize {
    let mut n = 1;
    let mut rest = value;
    while let Some(i) = first_value_end(rest) {
        n += 1;
        rest = rest.get(i + 1..).unwrap_or("");
    }
    n
}

fn first_value_end(value: &str) -> Option<usize> {
    let b = value.as_bytes();
    let mut angle = false;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'"' if !angle => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'<' => angle = true,
            b'>' => angle = false,
            b',' if !angle => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Message;

    const INVITE: &[u8] = b"INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
        v: SIP/2.0/UDP p2.example.com;branch=z9hG4bK2, SIP/2.0/TCP p1.example.com;branch=z9hG4bK1\r\n\
        Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK0\r\n\
        Max-Forwards: 3\r\n\
        To: Bob <sip:bob@biloxi.example.com>\r\n\
        f: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
        X-Folded: one,\r\n  two\r\n\
        Call-ID: a84b4c76e66710\r\n\
        CSeq: 314159 INVITE\r\n\
        Route: <sip:p3.example.com;lr>, <sip:p4.example.com;lr>\r\n\
        c: application/sdp\r\n\
        l: 5\r\n\r\nv=0\r\n";

    fn invite() -> OwnedMessage {
        OwnedMessage::parse(INVITE).unwrap()
    }

    fn text(m: &OwnedMessage) -> &str {
        std::str::from_utf8(m.as_bytes()).unwrap()
    }

    fn lines(m: &OwnedMessage) -> Vec<(String, String)> {
        m.view()
            .headers()
            .map(|h| (h.name.to_owned(), h.value.to_owned()))
            .collect()
    }

    // RFC 3261 section 16.6: nothing edited, nothing changed.
    #[test]
    fn unedited_copy_is_byte_for_byte_the_original() {
        let m = invite();
        let copy = m.edit().finish().unwrap();
        assert_eq!(copy.as_bytes(), m.as_bytes());
        assert_eq!(lines(&copy), lines(&m));
    }

    // RFC 3261 section 16.6 steps 2, 3, 4 and 8: R-URI, Max-Forwards, Record-Route, Via;
    // the untouched lines (folds and compact names included) are kept byte for byte.
    #[test]
    fn proxy_edits_keep_unchanged_lines_byte_for_byte() {
        let m = invite();
        let mut e = m.edit();
        assert_eq!(
            e.decrement_max_forwards().unwrap(),
            HopCount::Decremented(2)
        );
        e.set_request_uri("sip:bob@192.0.2.4:5062")
            .unwrap()
            .prepend_record_route("<sip:p0.example.com;lr>")
            .unwrap()
            .prepend_via("SIP/2.0/UDP p0.example.com;branch=z9hG4bK9")
            .unwrap();
        let out = e.finish().unwrap();
        let t = text(&out);
        assert!(t.starts_with(
            "INVITE sip:bob@192.0.2.4:5062 SIP/2.0\r\nVia: SIP/2.0/UDP p0.example.com;branch=z9hG4bK9\r\nv: "
        ));
        for kept in [
            "\r\nf: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n",
            "\r\nX-Folded: one,\r\n  two\r\nCall-ID: a84b4c76e66710\r\n",
            "\r\nMax-Forwards: 2\r\n",
            "\r\nl: 5\r\n\r\nv=0\r\n",
        ] {
            assert!(t.contains(kept), "{kept:?} in {t}");
        }
        let typed = out.message().unwrap();
        assert_eq!(typed.vias().count(), 4);
        assert_eq!(typed.record_routes().count(), 1);
        // the Record-Route went below the Vias: there was none before
        let names: Vec<String> = lines(&out).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names[..4], ["Via", "v", "Via", "Record-Route"]);
    }

    // RFC 3261 sections 16.7 step 3 and 7.3.1: removing the top Via of a response removes
    // only the first value of a line that holds several.
    #[test]
    fn remove_top_via_takes_only_the_first_value_of_a_line() {
        // (the comma inside the quoted parameter value does not separate values)
        let resp = OwnedMessage::parse(
            b"SIP/2.0 180 Ringing\r\n\
              Via: SIP/2.0/UDP p1.example.com;branch=z9hG4bK1;x=\"a,b\" , SIP/2.0/UDP pc33.example.com;branch=z9hG4bK0\r\n\
              Via: SIP/2.0/UDP pc0.example.com;branch=z9hG4bKx\r\n\
              To: <sip:b@h>;tag=2\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\n\
              Content-Length: 0\r\n\r\n",
        )
        .unwrap();
        let mut e = resp.edit();
        e.remove_top_via().unwrap();
        let out = e.finish().unwrap();
        let branches: Vec<String> = out
            .message()
            .unwrap()
            .vias()
            .map(|v| v.branch().unwrap().to_owned())
            .collect();
        assert_eq!(branches, ["z9hG4bK0", "z9hG4bKx"]);
        assert_eq!(out.status(), Some(180));
        assert_eq!(out.reason(), Some("Ringing"));
        // twice more: the single-value line goes, then the next line
        let mut e = out.edit();
        e.remove_top_via().unwrap().remove_top_via().unwrap();
        assert!(matches!(
            e.remove_top_via(),
            Err(BuildError::NotApplicable(_))
        ));
        assert_eq!(e.finish().unwrap().message().unwrap().vias().count(), 0);
    }

    // RFC 3261 sections 7.3.1 and 7.3.3: names match case-insensitively, compact forms
    // equal long ones, extension headers by name.
    #[test]
    fn headers_are_matched_by_long_compact_and_extension_names() {
        let m = invite();
        let mut e = m.edit();
        assert_eq!(e.remove("VIA").unwrap(), 2);
        assert_eq!(e.remove("x-folded").unwrap(), 1);
        assert_eq!(e.remove("X-Absent").unwrap(), 0);
        e.set("From", "<sip:carol@chicago.example.com>;tag=5")
            .unwrap();
        e.append("Route", "<sip:p5.example.com;lr>").unwrap();
        e.append("X-New", "1")
            .unwrap()
            .prepend("x-new", "0")
            .unwrap();
        assert!(e.remove_first_value("Route").unwrap());
        let out = e.finish().unwrap();
        let m = out.message().unwrap();
        assert_eq!(m.vias().count(), 0);
        assert_eq!(m.from().unwrap().tag(), Some("5"));
        let routes: Vec<String> = m.routes().map(|r| r.uri.to_string()).collect();
        assert_eq!(routes, ["sip:p4.example.com;lr", "sip:p5.example.com;lr"]);
        let new: Vec<&str> = out
            .view()
            .headers()
            .filter(|h| h.name.eq_ignore_ascii_case("x-new"))
            .map(|h| h.value)
            .collect();
        assert_eq!(new, ["0", "1"]);
        assert!(text(&out).contains("\r\nFrom: <sip:carol@chicago.example.com>;tag=5\r\n"));
        assert!(!text(&out).contains("\r\nf: "));
    }

    // RFC 3261 sections 16.3 step 3 and 16.6 step 3: 0 is reported and left alone; a
    // missing Max-Forwards is added as 70.
    #[test]
    fn max_forwards_zero_is_reported_and_absent_gets_70() {
        let zero =
            OwnedMessage::parse(b"OPTIONS sip:a@h SIP/2.0\r\nMax-Forwards: 0\r\n\r\n").unwrap();
        let mut e = zero.edit();
        assert_eq!(e.decrement_max_forwards().unwrap(), HopCount::Exhausted);
        assert_eq!(
            e.finish().unwrap().message().unwrap().max_forwards(),
            Some(0)
        );
        let none = OwnedMessage::parse(
            b"OPTIONS sip:a@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:a@h>\r\n\r\n",
        )
        .unwrap();
        let mut e = none.edit();
        assert_eq!(e.decrement_max_forwards().unwrap(), HopCount::Added(70));
        let out = e.finish().unwrap();
        let names: Vec<String> = lines(&out).into_iter().map(|(n, _)| n).collect();
        // below the Via; and a Content-Length added (the datagram had none)
        assert_eq!(names, ["Via", "Max-Forwards", "To", "Content-Length"]);
        assert_eq!(out.message().unwrap().max_forwards(), Some(70));
        assert_eq!(out.message().unwrap().content_length(), Some(0));
    }

    // RFC 3261 sections 7.4.1, 7.4.2 and 20.14: a new body gets a Content-Length that
    // matches; removing it removes what described it.
    #[test]
    fn body_replacement_keeps_content_length_right() {
        let m = invite();
        let mut e = m.edit();
        e.set_body("text/plain", b"hello, world").unwrap();
        let out = e.finish().unwrap();
        let typed = out.message().unwrap();
        assert_eq!(typed.body(), b"hello, world");
        assert_eq!(typed.content_length(), Some(12));
        assert!(typed.content_type().unwrap().matches("text", "plain"));
        assert!(text(&out).contains("\r\nl: 12\r\n"));
        let mut e = out.edit();
        e.remove_body();
        let out = e.finish().unwrap();
        let typed = out.message().unwrap();
        assert_eq!((typed.body(), typed.content_length()), (&b""[..], Some(0)));
        assert!(typed.content_type().is_none());
    }

    // RFC 3261 section 16.6 step 8 and the message's limits: a Via prepended to a request
    // already holding the most Via values its limits allow is refused, counted by value
    // (INVITE holds three on two lines), and a URI is held to the message's URI limit.
    #[test]
    fn edits_are_held_to_the_via_and_uri_limits_the_message_was_parsed_with() {
        let limits = crate::Limits {
            max_vias: 3,
            max_uri_length: 64,
            ..crate::Limits::DEFAULT
        };
        let m = OwnedMessage::parse_typed(INVITE, &limits).unwrap();
        let mut e = m.edit();
        e.prepend_via("SIP/2.0/UDP p3.example.com;branch=z9hG4bK3")
            .unwrap();
        let err = e.finish().unwrap_err();
        assert!(
            matches!(&err, BuildError::Invalid { source, .. } if source.kind == ErrorKind::TooManyVias),
            "{err:?}"
        );
        let long = format!("<sip:{}@example.com>", "a".repeat(80));
        assert!(m.edit().prepend_record_route(&long).is_err());
        assert!(m
            .edit()
            .prepend_record_route("<sip:p1.example.com;lr>")
            .is_ok());
    }

    // RFC 3261 sections 7.3.1 and 25.1: the editor refuses what the builders refuse.
    #[test]
    fn editor_refuses_injection_and_bad_values() {
        let m = invite();
        let mut e = m.edit();
        for bad in ["a\r\nInjected: yes", "a\nb", "a\0b"] {
            assert!(matches!(
                e.append("X-A", bad),
                Err(BuildError::ForbiddenCharacter { .. })
            ));
            assert!(matches!(
                e.set_request_uri(&format!("sip:a@h{bad}")),
                Err(BuildError::ForbiddenCharacter { .. })
            ));
        }
        assert!(matches!(
            e.prepend("X A", "1"),
            Err(BuildError::InvalidHeaderName(_))
        ));
        assert!(matches!(
            e.prepend_via("not a via"),
            Err(BuildError::Invalid { .. })
        ));
        assert!(matches!(
            e.set_request_uri("sip:a b@h"),
            Err(BuildError::Invalid { .. })
        ));
        assert!(matches!(e.set("l", "7"), Err(BuildError::NotApplicable(_))));
        assert!(matches!(
            e.set_reason("OK"),
            Err(BuildError::NotApplicable(_))
        ));
        let big = vec![b'x'; 70_000];
        e.set_body("application/octet-stream", &big).unwrap();
        assert!(matches!(e.finish(), Err(BuildError::TooLarge { .. })));
        // nothing refused was applied
        assert_eq!(m.edit().finish().unwrap().as_bytes(), m.as_bytes());
    }

    // RFC 3261 section 16.7 step 9: a response relayed with a reason of its own.
    #[test]
    fn response_reason_can_be_replaced() {
        let resp =
            OwnedMessage::parse(b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP h\r\n\r\n").unwrap();
        let mut e = resp.edit();
        e.set_reason("Busy Everywhere Today").unwrap();
        let out = e.finish().unwrap();
        assert_eq!(out.status(), Some(486));
        assert_eq!(out.reason(), Some("Busy Everywhere Today"));
        assert!(Message::parse(out.as_bytes()).is_ok());
    }
}
