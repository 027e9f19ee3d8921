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

/// Checks one header value against its grammar (builders check what callers add).
pub(crate) fn check_header_value(name: HeaderName, value: &str) -> Result<(), usize> {
    typed::parse_value(name, value, crate::Limits::DEFAULT.max_uri_length, |_| {})
}
