//! An owned message for what outlives the input (transactions, dialogs): its bytes plus the
//! spans the parse found, not a tree of strings, behind one reference count. Cloning is a
//! reference-count increment; getting a view back does not re-frame the message.

use std::sync::Arc;

use crate::message::view::{Layout, RawSpan, Span, StartSpans};
use crate::{Limits, Message, MessageView, ParseError};

/// A message that owns its bytes. See the module docs.
#[derive(Debug, Clone)]
pub struct OwnedMessage {
    inner: Arc<Inner>,
}

/// The recorded layout of an owned message, borrowed (see [`OwnedMessage::parts`]).
pub(crate) struct Parts<'m> {
    pub(crate) buf: &'m [u8],
    pub(crate) start: StartSpans,
    pub(crate) headers: &'m [RawSpan],
    pub(crate) head_end: u32,
    pub(crate) body: Span,
    pub(crate) content_length: Option<u32>,
}

/// The bytes stay in the vector they were written or copied into (moved in, never copied
/// again). The spans are kept compact: a parse's layout holds room for 40 header spans
/// inline (so framing allocates nothing), which a message kept for the life of a
/// transaction should not carry; a view gets that inline form back on demand.
#[derive(Debug, Clone)]
struct Inner {
    start: StartSpans,
    headers: Box<[RawSpan]>,
    head_end: u32,
    body: Span,
    content_length: Option<u32>,
    buf: Vec<u8>,
    /// The limits [`OwnedMessage::message`] types with: those the message was parsed with.
    limits: KeptLimits,
}

/// [`Limits`] in 20 bytes rather than 40 (a message kept for a transaction carries them):
/// a message is smaller than 4 GiB (spans are `u32`), so larger limits mean the same as
/// `u32::MAX`.
#[derive(Debug, Clone, Copy)]
struct KeptLimits([u32; 5]);

impl KeptLimits {
    fn new(l: &Limits) -> KeptLimits {
        let c = |v: usize| u32::try_from(v).unwrap_or(u32::MAX);
        KeptLimits([
            c(l.max_message_size),
            c(l.max_headers),
            c(l.max_header_line),
            c(l.max_vias),
            c(l.max_uri_length),
        ])
    }

    fn get(self) -> Limits {
        let [max_message_size, max_headers, max_header_line, max_vias, max_uri_length] =
            self.0.map(|v| v as usize);
        Limits {
            max_message_size,
            max_headers,
            max_header_line,
            max_vias,
            max_uri_length,
        }
    }
}

impl OwnedMessage {
    /// Copies the bytes of a view (start line to end of body) into a shared buffer.
    pub fn from_view(view: &MessageView<'_>) -> OwnedMessage {
        Self::from_parts(view.as_bytes().to_vec(), Layout::clone(&view.layout))
    }

    /// Parses a datagram and keeps it (default [`Limits`]).
    pub fn parse(data: &[u8]) -> Result<OwnedMessage, ParseError> {
        Ok(Self::from_view(&MessageView::parse(data)?))
    }

    /// Parses a datagram with the given limits, checks every known header types correctly,
    /// and keeps it (with the limits, for [`OwnedMessage::message`]).
    pub fn parse_typed(data: &[u8], limits: &Limits) -> Result<OwnedMessage, ParseError> {
        let m = Message::parse_with(data, limits)?;
        Ok(Self::from_view(m.view()).with_limits(limits))
    }

    /// The same message, typed by [`OwnedMessage::message`] with `limits` from now on (the
    /// limits it was parsed with, such as an endpoint's [`Config::limits`](crate::Config)).
    /// Copies the bytes only when the message is shared.
    pub fn with_limits(mut self, limits: &Limits) -> OwnedMessage {
        Arc::make_mut(&mut self.inner).limits = KeptLimits::new(limits);
        self
    }

    /// The limits [`OwnedMessage::message`] types with: [`Limits::DEFAULT`] unless the
    /// message was parsed with others ([`OwnedMessage::parse_typed`], an endpoint).
    pub fn limits(&self) -> Limits {
        self.inner.limits.get()
    }

    /// The borrowed view over the owned bytes.
    pub fn view(&self) -> MessageView<'_> {
        let inner = &*self.inner;
        let buf = &inner.buf;
        let head_end = inner.head_end as usize;
        // The header section was checked to be UTF-8 when this message was made, so this
        // conversion cannot fail; an empty head would only make every span read as empty.
        // (It costs one ASCII pass over the head; the spans themselves are borrowed.)
        let head = std::str::from_utf8(buf.get(..head_end).unwrap_or(&[])).unwrap_or("");
        let mut layout = Layout::empty();
        layout.start = inner.start;
        layout.headers.extend_from_slice(&inner.headers);
        layout.head_end = inner.head_end;
        layout.body = inner.body;
        layout.content_length = inner.content_length;
        MessageView {
            head,
            bytes: buf,
            layout: std::borrow::Cow::Owned(layout),
        }
    }

    /// The message with every known header typed, with the limits it was parsed with
    /// ([`OwnedMessage::limits`]).
    pub fn message(&self) -> Result<Message<'_>, ParseError> {
        Message::from_view(self.view(), &self.inner.limits.get())
    }

    /// The message's bytes as received or built.
    pub fn as_bytes(&self) -> &[u8] {
        &self.inner.buf
    }
}

impl OwnedMessage {
    /// A message from bytes and the layout recorded while writing them (builders). The
    /// caller guarantees the layout is what framing the bytes would find.
    pub(crate) fn from_parts(mut bytes: Vec<u8>, layout: Layout) -> OwnedMessage {
        // a writer's spare capacity would live as long as the message
        bytes.shrink_to_fit();
        OwnedMessage {
            inner: Arc::new(Inner {
                start: layout.start,
                headers: Box::from(&layout.headers[..]),
                head_end: layout.head_end,
                body: layout.body,
                content_length: layout.content_length,
                buf: bytes,
                limits: KeptLimits::new(&Limits::DEFAULT),
            }),
        }
    }

    /// A message written with its layout recorded as boxed spans (the editor, which knows
    /// the exact sizes beforehand, so nothing is reallocated).
    pub(crate) fn from_written(
        bytes: Vec<u8>,
        start: StartSpans,
        headers: Box<[RawSpan]>,
        head_end: u32,
        content_length: Option<u32>,
        limits: &Limits,
    ) -> OwnedMessage {
        let body = Span::new(head_end as usize, bytes.len());
        OwnedMessage {
            inner: Arc::new(Inner {
                start,
                headers,
                head_end,
                body,
                content_length,
                buf: bytes,
                limits: KeptLimits::new(limits),
            }),
        }
    }

    /// The view's message with bytes inserted (`(offset, text)`, offsets in increasing
    /// order), its spans moved to match instead of framing the result again. Text inserted
    /// at a span's end joins that span (so a parameter appended to a header value is part of
    /// the value).
    pub(crate) fn from_view_with_insertions(
        view: &MessageView<'_>,
        insertions: &[(usize, smallvec::SmallVec<[u8; 48]>)],
    ) -> OwnedMessage {
        let data = view.as_bytes();
        let added: usize = insertions.iter().map(|(_, t)| t.len()).sum();
        let mut bytes = Vec::with_capacity(data.len() + added);
        let mut from = 0;
        for (at, text) in insertions {
            let at = (*at).clamp(from, data.len());
            bytes.extend_from_slice(&data[from..at]);
            bytes.extend_from_slice(text);
            from = at;
        }
        bytes.extend_from_slice(&data[from..]);
        // How far an offset moves: by the text inserted before it. Text inserted exactly at a
        // span's start or end joins that span. (At most a few insertions: a linear scan.)
        let mut marks: smallvec::SmallVec<[(u32, u32); 4]> = smallvec::SmallVec::new();
        let mut total = 0u32;
        for (at, text) in insertions {
            total += text.len() as u32;
            marks.push((*at as u32, total));
        }
        let moved = |x: u32, include_at: bool| -> u32 {
            let mut m = 0;
            for &(at, upto) in &marks {
                if at < x || (include_at && at == x) {
                    m = upto;
                } else {
                    break;
                }
            }
            m
        };
        let shift = |x: u32, include_at: bool| x + moved(x, include_at);
        let span = |s: crate::message::view::Span| crate::message::view::Span {
            start: shift(s.start, false),
            end: shift(s.end, true),
        };
        let mut layout = Layout::clone(&view.layout);
        layout.start = match layout.start {
            crate::message::view::StartSpans::Request {
                method,
                uri,
                version,
            } => crate::message::view::StartSpans::Request {
                method: span(method),
                uri: span(uri),
                version: span(version),
            },
            crate::message::view::StartSpans::Response {
                version,
                code,
                reason,
            } => crate::message::view::StartSpans::Response {
                version: span(version),
                code,
                reason: span(reason),
            },
        };
        for h in layout.headers.iter_mut() {
            h.name = span(h.name);
            h.value = span(h.value);
        }
        layout.head_end = shift(layout.head_end, false);
        layout.body = crate::message::view::Span {
            start: shift(layout.body.start, false),
            end: shift(layout.body.end, false),
        };
        Self::from_parts(bytes, layout)
    }

    /// What the editor reads: the bytes, the start line's spans, the header spans, the end
    /// of the header section, the body and the Content-Length value.
    pub(crate) fn parts(&self) -> Parts<'_> {
        let i = &*self.inner;
        Parts {
            buf: &i.buf,
            start: i.start,
            headers: &i.headers,
            head_end: i.head_end,
            body: i.body,
            content_length: i.content_length,
        }
    }

    /// Starts editing a copy of this message (a proxy's or B2BUA's forwarded request, a
    /// relayed response): see [`MessageEditor`](crate::MessageEditor).
    pub fn edit(&self) -> crate::MessageEditor {
        crate::MessageEditor::new(self.clone())
    }

    /// A [`RequestBuilder`](crate::RequestBuilder) holding this request's parts, to derive
    /// another request from it (see [`RequestBuilder::from_request`](crate::RequestBuilder::from_request)).
    pub fn to_request_builder(&self) -> Result<crate::RequestBuilder, crate::BuildError> {
        let m = self
            .message()
            .map_err(|source| crate::BuildError::Invalid {
                part: "message",
                source,
            })?;
        crate::RequestBuilder::from_request(&m)
    }

    /// The status code of a response (`None` for a request), from the recorded layout.
    pub fn status(&self) -> Option<u16> {
        match self.inner.start {
            crate::message::view::StartSpans::Response { code, .. } => Some(code),
            crate::message::view::StartSpans::Request { .. } => None,
        }
    }

    /// The method of a request (`None` for a response), from the recorded layout.
    pub fn method(&self) -> Option<crate::Method<'_>> {
        match self.inner.start {
            crate::message::view::StartSpans::Request { method, .. } => self
                .as_bytes()
                .get(method.range())
                .and_then(|m| std::str::from_utf8(m).ok())
                .map(crate::Method::from_token),
            crate::message::view::StartSpans::Response { .. } => None,
        }
    }

    /// The reason phrase of a response (`None` for a request).
    pub fn reason(&self) -> Option<&str> {
        match self.inner.start {
            crate::message::view::StartSpans::Response { reason, .. } => self.text(reason),
            crate::message::view::StartSpans::Request { .. } => None,
        }
    }

    /// The Request-URI of a request as written (`None` for a response); type it with
    /// [`Uri::parse`](crate::Uri::parse) or [`OwnedMessage::message`].
    pub fn request_uri(&self) -> Option<&str> {
        match self.inner.start {
            crate::message::view::StartSpans::Request { uri, .. } => self.text(uri),
            crate::message::view::StartSpans::Response { .. } => None,
        }
    }

    /// The text of a span of the head (checked to be UTF-8 when the message was made).
    fn text(&self, span: Span) -> Option<&str> {
        self.as_bytes()
            .get(span.range())
            .and_then(|b| std::str::from_utf8(b).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Method;

    // RFC 3261 sections 7.1 and 7.2: the start line's parts of a kept message.
    #[test]
    fn start_line_accessors_of_requests_and_responses() {
        let req = OwnedMessage::parse(
            b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\r\n",
        )
        .unwrap();
        assert_eq!(req.method(), Some(Method::Invite));
        assert_eq!(req.request_uri(), Some("sip:bob@example.com"));
        assert_eq!((req.status(), req.reason()), (None, None));
        let resp =
            OwnedMessage::parse(b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP h\r\n\r\n").unwrap();
        assert_eq!(resp.status(), Some(486));
        assert_eq!(resp.reason(), Some("Busy Here"));
        assert_eq!((resp.method(), resp.request_uri()), (None, None));
    }

    // Limits::max_headers: a kept message types with the limits it was parsed with, even
    // when another holder shares it.
    #[test]
    fn kept_limits_are_used_to_type_again() {
        let mut text = b"OPTIONS sip:b@h SIP/2.0\r\n".to_vec();
        for _ in 0..3 {
            text.extend_from_slice(b"X-A: 1\r\n");
        }
        text.extend_from_slice(b"\r\n");
        let tight = Limits {
            max_headers: 2,
            ..Limits::DEFAULT
        };
        let m = OwnedMessage::parse(&text).unwrap();
        assert_eq!(m.limits(), Limits::DEFAULT);
        let shared = m.clone();
        let m = m.with_limits(&tight);
        assert_eq!(m.limits(), tight);
        assert!(m.message().is_err());
        assert!(shared.message().is_ok());
        let loose = Limits {
            max_headers: 3,
            ..Limits::DEFAULT
        };
        assert!(OwnedMessage::parse_typed(&text, &loose)
            .unwrap()
            .message()
            .is_ok());
    }
}
