//! Parse errors: what was wrong, where, and what a UAS owes the sender.

use crate::message::HeaderName;

/// An error from parsing a SIP message or one of its parts.
///
/// `offset` is the byte offset in the parsed input where the problem was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {offset}")]
pub struct ParseError {
    /// What was wrong.
    pub kind: ErrorKind,
    /// Byte offset into the input where it was detected.
    pub offset: usize,
}

impl ParseError {
    pub(crate) fn new(kind: ErrorKind, offset: usize) -> Self {
        ParseError { kind, offset }
    }

    /// The status code a UAS should answer a request with when it fails this way and enough of
    /// the message survived to build a response (RFC 3261 section 8.2 and 21.4).
    ///
    /// `None` means the input must be dropped silently (or the stream closed): for example a
    /// framing error on a stream, where no response can be correlated.
    pub fn response_status(&self) -> Option<u16> {
        match self.kind {
            ErrorKind::UnsupportedVersion => Some(505),
            ErrorKind::TooLarge => Some(513),
            ErrorKind::Incomplete | ErrorKind::InvalidUtf8 | ErrorKind::InvalidStartLine => None,
            _ => Some(400),
        }
    }
}

/// The kinds of [`ParseError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The message is larger than [`Limits::max_message_size`](crate::Limits::max_message_size).
    #[error("message larger than the configured limit")]
    TooLarge,
    /// More header lines than [`Limits::max_headers`](crate::Limits::max_headers).
    #[error("too many header fields")]
    TooManyHeaders,
    /// A header line (with its continuation lines) longer than the limit.
    #[error("header line too long")]
    HeaderLineTooLong,
    /// More Via values than [`Limits::max_vias`](crate::Limits::max_vias).
    #[error("too many Via values")]
    TooManyVias,
    /// A URI longer than [`Limits::max_uri_length`](crate::Limits::max_uri_length).
    #[error("URI too long")]
    UriTooLong,
    /// The header section is not valid UTF-8 (RFC 3261 section 25.1 allows only UTF-8).
    #[error("header section is not valid UTF-8")]
    InvalidUtf8,
    /// The start line is neither a Request-Line nor a Status-Line.
    #[error("malformed start line")]
    InvalidStartLine,
    /// The method is not a token.
    #[error("malformed method")]
    InvalidMethod,
    /// The Request-URI is malformed (or contains whitespace, or is wrapped in `<>`).
    #[error("malformed Request-URI")]
    InvalidRequestUri,
    /// A well-formed SIP version other than SIP/2.0 (answered with 505).
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    /// The status code is not three digits.
    #[error("malformed status code")]
    InvalidStatusCode,
    /// The reason phrase contains characters that are not allowed.
    #[error("malformed reason phrase")]
    InvalidReasonPhrase,
    /// A header line without a valid `name:` prefix.
    #[error("malformed header name")]
    InvalidHeaderName,
    /// A bare CR or LF, or a control character, where the grammar allows none.
    #[error("invalid line ending or control character")]
    InvalidLineEnding,
    /// A stream holds only part of the message so far ("need more bytes").
    #[error("incomplete message")]
    Incomplete,
    /// A datagram ends before the empty line that closes the header section.
    #[error("header section not terminated by an empty line")]
    UnterminatedHeaders,
    /// Content-Length is not a valid number.
    #[error("malformed Content-Length")]
    InvalidContentLength,
    /// Several Content-Length values that disagree (RFC 4475 section 3.3.9).
    #[error("conflicting Content-Length values")]
    ConflictingContentLength,
    /// Content-Length larger than the bytes in the datagram (RFC 3261 section 18.3).
    #[error("Content-Length larger than the datagram body")]
    BodyTruncated,
    /// A message on a stream transport without Content-Length (RFC 3261 section 18.3).
    #[error("missing Content-Length on a stream transport")]
    MissingContentLength,
    /// The value of a known header does not match its grammar.
    #[error("malformed {0} header value")]
    InvalidHeader(HeaderName),
    /// A URI that does not match the grammar of its scheme.
    #[error("malformed URI")]
    InvalidUri,
}
