//! The message layer (RFC 3261 sections 7, 19, 20 and 25): parsing, typed headers, URIs,
//! serialization, owned messages, builders and semantic validation.

mod headers;
mod method;
mod name;
mod params;
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
pub use typed::{Form, Header, HeaderValue, Message};
pub use uri::{unescaped, AbsoluteUri, Host, SipUri, TelUri, Uri};
pub use view::{MessageView, RawHeader, StartLine, StreamFrame, INLINE_HEADERS};

/// `name-addr / addr-spec` with parameters, for crate-internal callers (builders).
pub(crate) fn headers_name_addr<'a>(c: &mut scan::Cursor<'a>) -> Option<NameAddr<'a>> {
    headers::name_addr(c, false, usize::MAX)
}

/// The first value of a raw Via header line, for matching a retransmission from the view
/// alone (RFC 3261 section 17.2.3) without typing the whole message.
pub(crate) fn top_via_of<'a>(raw: &'a str) -> Option<Via<'a>> {
    headers::via(&mut scan::Cursor::new(raw))
}
