//! The message layer (RFC 3261 sections 7, 19, 20 and 25): parsing, typed headers, URIs,
//! serialization, owned messages, builders and semantic validation.

mod fast;
mod headers;
mod method;
mod name;
mod params;
pub mod raw;
pub(crate) mod scan;
mod typed;
mod uri;
pub(crate) mod view;
pub(crate) mod write;

pub use headers::{
    Auth, CSeq, Contact, DisplayName, InfoUri, MediaType, NameAddr, RAck, Seconds, SipDate,
    Timestamp, TokenParams, Via, Warning,
};
pub use method::Method;
pub use name::HeaderName;
pub use params::{Param, ParamIter, Params};
pub use scan::unquote;
pub use typed::{Form, Header, HeaderValue, Headers, Message};
pub use uri::{unescaped, AbsoluteUri, Host, SipUri, TelUri, Uri};
pub use view::{MessageView, RawHeader, StartLine, StreamFrame, INLINE_HEADERS};

/// `name-addr / addr-spec` with parameters, for crate-internal callers (builders).
pub(crate) fn headers_name_addr<'a>(c: &mut scan::Cursor<'a>) -> Option<NameAddr<'a>> {
    headers::name_addr(c, false, usize::MAX)
}

/// Is this text a URI (a Request-URI the editor sets)? The one-pass parse's fast path for
/// `sip:` and `sips:` first, the general parser for the rest.
pub(crate) fn check_request_uri(s: &str) -> bool {
    fast::sip_uri(s, 0, fast::UriEnd::Whole).is_some() || Uri::parse(s).is_some()
}

/// Checks one header value against its grammar (builders and the editor check what callers
/// add): the fast path of the one-pass parse first (it accepts only what the general
/// grammar accepts), the general parser for the rest.
pub(crate) fn check_header_value(
    name: HeaderName,
    value: &str,
    max_uri: usize,
) -> Result<(), usize> {
    /// Keeps only the last value: the check needs none of them.
    struct Discard<'a>(HeaderValue<'a>);
    impl<'a> fast::Sink<'a> for Discard<'a> {
        fn slot(&mut self) -> &mut HeaderValue<'a> {
            &mut self.0
        }
    }
    let (n, end) = fast::line(name, value, 0, max_uri, &mut Discard(HeaderValue::Empty));
    if n > 0 && end == value.len() {
        return Ok(());
    }
    typed::parse_value(name, value, max_uri, |_| {})
}
