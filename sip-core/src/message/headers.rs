//! Typed header values (RFC 3261 section 20 and the extensions named on each type) and their
//! parsers. Values borrow from the message; parameter lists stay raw text read on demand.
//!
//! Each parser reads one element at the cursor and leaves it after the element, so list
//! headers are parsed by calling it again after a comma; `None` means the grammar is broken
//! at the cursor.

use super::params::{ParamStyle, Params};
use super::scan::{self, Cursor};
use super::uri::{self, Host, Uri};
use super::Method;

/// A display name (RFC 3261 section 25.1 `display-name`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DisplayName<'a> {
    /// A quoted string, without the quotes; escapes kept (see [`scan::unquote`]).
    Quoted(&'a str),
    /// One or more tokens separated by whitespace, as written.
    Tokens(&'a str),
}

impl<'a> DisplayName<'a> {
    /// The display name as text, quoted-pair escapes removed.
    pub fn text(&self) -> std::borrow::Cow<'a, str> {
        match *self {
            DisplayName::Quoted(q) => scan::unquote(q),
            DisplayName::Tokens(t) => std::borrow::Cow::Borrowed(t),
        }
    }
}

/// `name-addr` or `addr-spec` with header parameters: From, To, Contact, Route, Record-Route,
/// Reply-To, Refer-To, Referred-By (RFC 3261 sections 20.10, 20.20, 20.30, 20.34, 20.39).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NameAddr<'a> {
    /// The display name, if any.
    pub display_name: Option<DisplayName<'a>>,
    /// The URI.
    pub uri: Uri<'a>,
    /// Was the URI enclosed in `<>` (name-addr form)?
    pub bracketed: bool,
    /// The header parameters after the URI (`tag`, `expires`, `q`, ...).
    pub params: Params<'a>,
}

impl<'a> NameAddr<'a> {
    /// The `tag` parameter (From, To; RFC 3261 section 19.3).
    pub fn tag(&self) -> Option<&'a str> {
        self.params.get("tag").flatten()
    }

    /// The `expires` parameter of a Contact, if a valid number.
    pub fn expires(&self) -> Option<u32> {
        self.params
            .get("expires")
            .flatten()
            .and_then(|v| scan::parse_decimal(v, u64::from(u32::MAX)))
            .map(|v| v as u32)
    }

    /// The `q` parameter of a Contact as thousandths (`q=0.7` is 700), if valid.
    pub fn q(&self) -> Option<u16> {
        let v = self.params.get("q").flatten()?;
        let (int, frac) = v.split_once('.').unwrap_or((v, ""));
        if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let whole = scan::parse_decimal(int, 1)? as u16 * 1000;
        let mut f = 0u16;
        for (i, b) in frac.bytes().enumerate() {
            f += u16::from(b - b'0') * [100, 10, 1][i];
        }
        let q = whole + f;
        (q <= 1000).then_some(q)
    }
}

/// A Contact value: an address, or `*` (RFC 3261 section 20.10, used to remove all bindings).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contact<'a> {
    /// `*`.
    Star,
    /// An address.
    Addr(NameAddr<'a>),
}

/// A Via value (RFC 3261 section 20.42).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Via<'a> {
    /// The protocol name, normally `SIP`.
    pub protocol: &'a str,
    /// The protocol version, normally `2.0`.
    pub version: &'a str,
    /// The transport token (`UDP`, `TCP`, `TLS`, `SCTP`, `WS`, or any other token).
    pub transport: &'a str,
    /// The sent-by host.
    pub host: Host<'a>,
    /// The sent-by port.
    pub port: Option<u16>,
    /// The via-params.
    pub params: Params<'a>,
}

impl<'a> Via<'a> {
    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&'a str> {
        self.params.get("branch").flatten()
    }

    /// The `received` parameter (brackets around IPv6 kept as written).
    pub fn received(&self) -> Option<&'a str> {
        self.params.get("received").flatten()
    }

    /// The `rport` parameter (RFC 3581): `Some(None)` when present without a value.
    pub fn rport(&self) -> Option<Option<u16>> {
        self.params.get("rport").map(|v| {
            v.and_then(|p| scan::parse_decimal(p, 65535))
                .map(|p| p as u16)
        })
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// The `ttl` parameter.
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|t| scan::parse_decimal(t, 255))
            .map(|t| t as u8)
    }

    /// Does the branch carry the RFC 3261 magic cookie `z9hG4bK` (section 8.1.1.7)?
    pub fn has_magic_cookie(&self) -> bool {
        self.branch().is_some_and(|b| b.starts_with("z9hG4bK"))
    }
}

/// CSeq (RFC 3261 section 20.16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CSeq<'a> {
    /// The sequence number (32 bits, section 8.1.1.5).
    pub seq: u32,
    /// The method.
    pub method: Method<'a>,
}

/// RAck (RFC 3262 section 7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RAck<'a> {
    /// The RSeq of the provisional response acknowledged.
    pub rseq: u32,
    /// The CSeq number of the request.
    pub cseq: u32,
    /// The CSeq method of the request.
    pub method: Method<'a>,
}

/// A media type with parameters: Content-Type and each Accept range (sections 20.1, 20.15).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MediaType<'a> {
    /// The type (`application`), or `*` in Accept.
    pub ty: &'a str,
    /// The subtype (`sdp`), or `*` in Accept.
    pub subtype: &'a str,
    /// Parameters (`charset`, `q`, ...).
    pub params: Params<'a>,
}

impl MediaType<'_> {
    /// Does this type (or range, with wildcards) cover `ty/subtype`? Case-insensitive.
    pub fn matches(&self, ty: &str, subtype: &str) -> bool {
        (self.ty == "*" || self.ty.eq_ignore_ascii_case(ty))
            && (self.subtype == "*" || self.subtype.eq_ignore_ascii_case(subtype))
    }
}

/// A token with parameters: Accept-Encoding, Accept-Language, Content-Disposition, Event,
/// Subscription-State, Priority-like values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenParams<'a> {
    /// The token (or `*`).
    pub value: &'a str,
    /// Parameters.
    pub params: Params<'a>,
}

/// A bracketed URI with parameters: Alert-Info, Call-Info, Error-Info (20.4, 20.9, 20.18).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InfoUri<'a> {
    /// The URI.
    pub uri: Uri<'a>,
    /// Parameters (`purpose` for Call-Info).
    pub params: Params<'a>,
}

/// A challenge or credentials: Authorization, Proxy-Authorization, WWW-Authenticate,
/// Proxy-Authenticate (sections 20.7, 20.27, 20.28, 20.44; RFC 7616).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Auth<'a> {
    /// The scheme (`Digest`, or any other token).
    pub scheme: &'a str,
    /// The comma-separated auth-params.
    pub params: Params<'a>,
}

/// A seconds value with parameters: Session-Expires and Min-SE (RFC 4028), Retry-After
/// (section 20.33, whose comment is kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Seconds<'a> {
    /// The delta-seconds.
    pub seconds: u32,
    /// The comment of a Retry-After, without the parentheses.
    pub comment: Option<&'a str>,
    /// Parameters (`refresher`, `duration`, ...).
    pub params: Params<'a>,
}

/// A Warning value (section 20.43).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Warning<'a> {
    /// The three-digit warn-code.
    pub code: u16,
    /// The warn-agent (`host[:port]` or a pseudonym).
    pub agent: &'a str,
    /// The warn-text, without the quotes.
    pub text: &'a str,
}

/// A Timestamp value (section 20.38).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timestamp<'a> {
    /// The time, as written (`54` or `54.123`).
    pub time: &'a str,
    /// The delay, as written.
    pub delay: Option<&'a str>,
}

/// A Date value: an RFC 1123 date in GMT (section 20.17).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SipDate<'a> {
    /// The date as written.
    pub text: &'a str,
    /// Year.
    pub year: u16,
    /// Month, 1-12.
    pub month: u8,
    /// Day of the month.
    pub day: u8,
    /// Hour, 0-23.
    pub hour: u8,
    /// Minute.
    pub minute: u8,
    /// Second (60 allowed for a leap second).
    pub second: u8,
}

// ---------------------------------------------------------------------------------------------
// parsers

/// `name-addr / addr-spec` followed by header parameters. `route_only` requires the
/// bracketed form (Route, Record-Route: section 20.30 grammar is `name-addr` only).
pub(crate) fn name_addr<'a>(
    c: &mut Cursor<'a>,
    route_only: bool,
    max_uri: usize,
) -> Option<NameAddr<'a>> {
    c.skip_ws();
    let mut display_name = None;
    let bracketed;
    let uri_text;
    match c.peek()? {
        b'"' => {
            display_name = Some(DisplayName::Quoted(c.quoted_string()?));
            c.skip_ws();
            uri_text = bracketed_uri(c)?;
            bracketed = true;
        }
        b'<' => {
            uri_text = bracketed_uri(c)?;
            bracketed = true;
        }
        _ => {
            // display-name tokens then '<', or an addr-spec
            let save = c.pos();
            let mut last_end = save;
            while c.token().is_some() {
                last_end = c.pos();
                if !c.skip_ws() {
                    break;
                }
            }
            if last_end > save && c.peek() == Some(b'<') {
                display_name = Some(DisplayName::Tokens(c.slice(save, last_end)));
                uri_text = bracketed_uri(c)?;
                bracketed = true;
            } else {
                if route_only {
                    return None;
                }
                c.set_pos(save);
                // addr-spec: in this form ',', ';' and '?' end the URI (section 20.10)
                uri_text = c.take_while(|b| scan::is_uric(b) && !matches!(b, b',' | b';' | b'?'));
                bracketed = false;
            }
        }
    }
    if route_only && !bracketed {
        return None;
    }
    if uri_text.len() > max_uri {
        return None;
    }
    let uri = Uri::parse(uri_text)?;
    let params = Params::parse(c, ParamStyle::Header)?;
    Some(NameAddr {
        display_name,
        uri,
        bracketed,
        params,
    })
}

/// `LAQUOT addr-spec RAQUOT`: no whitespace inside the brackets (RFC 4475 section 3.1.2.14).
fn bracketed_uri<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    c.expect(b'<')?;
    // '>' is not a URI character, so the URI is the run of URI characters before it.
    let s = c.take_while(scan::is_uric);
    c.expect(b'>')?;
    (!s.is_empty()).then_some(s)
}

/// A Contact element: `*` or an address.
pub(crate) fn contact<'a>(c: &mut Cursor<'a>, max_uri: usize) -> Option<Contact<'a>> {
    c.skip_ws();
    if c.peek() == Some(b'*') {
        c.eat(b'*');
        return Some(Contact::Star);
    }
    name_addr(c, false, max_uri).map(Contact::Addr)
}

/// `sent-protocol LWS sent-by *( SEMI via-params )`.
pub(crate) fn via<'a>(c: &mut Cursor<'a>) -> Option<Via<'a>> {
    c.skip_ws();
    let protocol = c.token()?;
    if !c.sep(b'/') {
        return None;
    }
    let version = c.token()?;
    if !c.sep(b'/') {
        return None;
    }
    let transport = c.token()?;
    if !c.skip_ws() {
        return None;
    }
    // sent-by = host [ COLON port ]; COLON allows whitespace on both sides
    let host = uri::parse_host(c)?;
    let port = if c.sep(b':') {
        Some(scan::parse_decimal(c.take_while(|b| b.is_ascii_digit()), 65535)? as u16)
    } else {
        None
    };
    let params = Params::parse_checked(c, ParamStyle::Header, via_param_ok)?;
    Some(Via {
        protocol,
        version,
        transport,
        host,
        port,
        params,
    })
}

/// The well-known via-params have stricter grammars than generic-param (RFC 3261 section
/// 20.42 / 25.1 `via-ttl`, `via-maddr`, `via-received`, `via-branch`; RFC 3581 `rport`).
pub(crate) fn via_param_ok(p: &super::Param<'_>) -> bool {
    let n = p.name;
    // dispatch on the length first: most parameters are none of these
    let is = |name: &str| n.len() == name.len() && n.eq_ignore_ascii_case(name);
    match n.len() {
        3 if is("ttl") => p.value.and_then(|v| scan::parse_decimal(v, 255)).is_some(),
        5 if is("maddr") => p.value.is_some_and(host_text_ok),
        5 if is("rport") => p
            .value
            .is_none_or(|v| scan::parse_decimal(v, 65535).is_some()),
        6 if is("branch") => p.value.is_some_and(scan::all_token),
        8 if is("received") => p.value.is_some_and(|v| {
            let v = v
                .strip_prefix('[')
                .and_then(|v| v.strip_suffix(']'))
                .unwrap_or(v);
            matches!(Host::classify(v), Some(Host::Ipv4(_))) || uri::valid_ipv6(v)
        }),
        _ => true,
    }
}

fn host_text_ok(v: &str) -> bool {
    let mut c = Cursor::new(v);
    uri::parse_host(&mut c).is_some() && c.at_end()
        || Host::classify(v).is_some()
        || uri::valid_ipv6(v)
}

/// `callid = word [ "@" word ]`.
pub(crate) fn call_id<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    c.skip_ws();
    let start = c.pos();
    c.word()?;
    if c.eat(b'@') {
        c.word()?;
    }
    Some(c.since(start))
}

/// `1*DIGIT LWS Method`.
pub(crate) fn cseq<'a>(c: &mut Cursor<'a>) -> Option<CSeq<'a>> {
    c.skip_ws();
    let seq = c.number(u64::from(u32::MAX))? as u32;
    if !c.skip_ws() {
        return None;
    }
    let method = Method::from_token(c.token()?);
    Some(CSeq { seq, method })
}

/// `response-num LWS CSeq-num LWS Method`.
pub(crate) fn rack<'a>(c: &mut Cursor<'a>) -> Option<RAck<'a>> {
    c.skip_ws();
    let rseq = c.number(u64::from(u32::MAX))? as u32;
    if !c.skip_ws() {
        return None;
    }
    let cseq = c.number(u64::from(u32::MAX))? as u32;
    if !c.skip_ws() {
        return None;
    }
    let method = Method::from_token(c.token()?);
    Some(RAck { rseq, cseq, method })
}

/// A decimal number no larger than `max`.
pub(crate) fn number(c: &mut Cursor<'_>, max: u64) -> Option<u64> {
    c.skip_ws();
    c.number(max)
}

/// `type SLASH subtype *(SEMI param)`; `*` allowed when `range` (Accept).
pub(crate) fn media_type<'a>(c: &mut Cursor<'a>, range: bool) -> Option<MediaType<'a>> {
    c.skip_ws();
    let ty = c.token()?;
    if !c.sep(b'/') {
        return None;
    }
    let subtype = c.token()?;
    let wild = ty == "*" || subtype == "*";
    if wild && !range || ty == "*" && subtype != "*" {
        return None;
    }
    let params = Params::parse(c, ParamStyle::Header)?;
    Some(MediaType {
        ty,
        subtype,
        params,
    })
}

/// `token *(SEMI generic-param)`.
pub(crate) fn token_params<'a>(c: &mut Cursor<'a>) -> Option<TokenParams<'a>> {
    c.skip_ws();
    let value = c.token()?;
    let params = Params::parse(c, ParamStyle::Header)?;
    Some(TokenParams { value, params })
}

/// A single token.
pub(crate) fn token<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    c.skip_ws();
    c.token()
}

/// `LAQUOT absoluteURI RAQUOT *( SEMI generic-param )`.
pub(crate) fn info_uri<'a>(c: &mut Cursor<'a>, max_uri: usize) -> Option<InfoUri<'a>> {
    c.skip_ws();
    let text = bracketed_uri(c)?;
    if text.len() > max_uri {
        return None;
    }
    let uri = Uri::parse(text)?;
    let params = Params::parse(c, ParamStyle::Header)?;
    Some(InfoUri { uri, params })
}

/// `auth-scheme LWS auth-param *(COMMA auth-param)`; the params may be absent for a
/// scheme this crate does not know.
pub(crate) fn auth<'a>(c: &mut Cursor<'a>) -> Option<Auth<'a>> {
    c.skip_ws();
    let scheme = c.token()?;
    if !c.skip_ws() && !c.at_end() {
        return None;
    }
    let params = Params::parse(c, ParamStyle::Auth)?;
    if params.is_empty() && scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    Some(Auth { scheme, params })
}

/// `ainfo *(COMMA ainfo)` of Authentication-Info.
pub(crate) fn auth_params<'a>(c: &mut Cursor<'a>) -> Option<Params<'a>> {
    let p = Params::parse(c, ParamStyle::Auth)?;
    (!p.is_empty()).then_some(p)
}

/// `delta-seconds [ comment ] *( SEMI param )`.
pub(crate) fn seconds<'a>(c: &mut Cursor<'a>, comment_allowed: bool) -> Option<Seconds<'a>> {
    c.skip_ws();
    let seconds = c.number(u64::from(u32::MAX))? as u32;
    let mut comment = None;
    if comment_allowed {
        let save = c.pos();
        c.skip_ws();
        if c.peek() == Some(b'(') {
            comment = Some(comment_text(c)?);
        } else {
            c.set_pos(save);
        }
    }
    let params = Params::parse(c, ParamStyle::Header)?;
    Some(Seconds {
        seconds,
        comment,
        params,
    })
}

/// A `comment` (nested parentheses, quoted pairs); returns the inside.
fn comment_text<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    c.expect(b'(')?;
    let start = c.pos();
    let mut depth = 1;
    loop {
        match c.peek()? {
            b'(' => depth += 1,
            b')' => {
                depth -= 1;
                if depth == 0 {
                    let inner = c.since(start);
                    c.eat(b')');
                    return Some(inner);
                }
            }
            b'\\' => {
                c.set_pos(c.pos() + 1);
                c.peek()?;
            }
            b'\r' => {
                if !c.skip_ws() {
                    return None;
                }
                continue;
            }
            0x00..=0x08 | 0x0a..=0x1f | 0x7f => return None,
            _ => {}
        }
        c.set_pos(c.pos() + 1);
    }
}

/// `server-val *(LWS server-val)` of Server and User-Agent: products and comments.
pub(crate) fn products<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    c.skip_ws();
    let start = c.pos();
    let mut any = false;
    loop {
        match c.peek() {
            Some(b'(') => {
                comment_text(c)?;
            }
            Some(_) => {
                c.token()?;
                if c.sep(b'/') {
                    c.token()?;
                }
            }
            None => break,
        }
        any = true;
        let end = c.pos();
        c.skip_ws();
        if c.at_end() {
            c.set_pos(end);
            break;
        }
    }
    any.then(|| c.since(start))
}

/// Free text (Subject, Organization): any UTF-8 text without control characters.
pub(crate) fn text<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    c.skip_ws();
    let start = c.pos();
    while let Some(b) = c.peek() {
        match b {
            b'\r' => {
                if !c.skip_ws() {
                    return None;
                }
            }
            0x00..=0x08 | 0x0a..=0x1f | 0x7f => return None,
            _ => c.set_pos(c.pos() + 1),
        }
    }
    Some(c.since(start))
}

/// `1*DIGIT "." 1*DIGIT` (MIME-Version).
pub(crate) fn mime_version<'a>(c: &mut Cursor<'a>) -> Option<&'a str> {
    c.skip_ws();
    let start = c.pos();
    c.number(u64::from(u32::MAX))?;
    c.expect(b'.')?;
    c.number(u64::from(u32::MAX))?;
    Some(c.since(start))
}

/// `warn-code SP warn-agent SP warn-text`.
pub(crate) fn warning<'a>(c: &mut Cursor<'a>) -> Option<Warning<'a>> {
    c.skip_ws();
    let code = c.take_while(|b| b.is_ascii_digit());
    if code.len() != 3 {
        return None;
    }
    let code = scan::parse_decimal(code, 999)? as u16;
    c.expect(b' ')?;
    let agent = c.take_while(|b| scan::is_token(b) || matches!(b, b':' | b'[' | b']'));
    if agent.is_empty() {
        return None;
    }
    c.expect(b' ')?;
    let text = c.quoted_string()?;
    Some(Warning { code, agent, text })
}

/// `1*DIGIT [ "." *DIGIT ] [ LWS delay ]`.
pub(crate) fn timestamp<'a>(c: &mut Cursor<'a>) -> Option<Timestamp<'a>> {
    fn decimal<'a>(c: &mut Cursor<'a>, need_int: bool) -> Option<&'a str> {
        let start = c.pos();
        let int = c.take_while(|b| b.is_ascii_digit());
        if c.eat(b'.') {
            c.take_while(|b| b.is_ascii_digit());
        }
        let s = c.since(start);
        (!s.is_empty() && s != "." && (!need_int || !int.is_empty())).then_some(s)
    }
    c.skip_ws();
    let time = decimal(c, true)?;
    let save = c.pos();
    let delay = if c.skip_ws() && !c.at_end() {
        Some(decimal(c, false)?)
    } else {
        c.set_pos(save);
        None
    };
    Some(Timestamp { time, delay })
}

/// `wkday` and `month` of `rfc1123-date` (RFC 3261 section 25.1), case-sensitive.
pub(crate) const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];
/// See [`DAYS`].
pub(crate) const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `rfc1123-date = wkday "," SP date1 SP time SP "GMT"`.
pub(crate) fn date<'a>(c: &mut Cursor<'a>) -> Option<SipDate<'a>> {
    c.skip_ws();
    let start = c.pos();
    let wk = c.take_while(|b| b.is_ascii_alphabetic());
    if !DAYS.contains(&wk) {
        return None;
    }
    c.expect(b',')?;
    c.expect(b' ')?;
    let two = |c: &mut Cursor<'a>, max: u64| -> Option<u8> {
        let d = c.take_while(|b| b.is_ascii_digit());
        if d.len() != 2 {
            return None;
        }
        scan::parse_decimal(d, max).map(|v| v as u8)
    };
    let day = two(c, 31)?;
    c.expect(b' ')?;
    let mon = c.take_while(|b| b.is_ascii_alphabetic());
    let month = MONTHS.iter().position(|m| *m == mon)? as u8 + 1;
    c.expect(b' ')?;
    let y = c.take_while(|b| b.is_ascii_digit());
    if y.len() != 4 {
        return None;
    }
    let year = scan::parse_decimal(y, 9999)? as u16;
    c.expect(b' ')?;
    let hour = two(c, 23)?;
    c.expect(b':')?;
    let minute = two(c, 59)?;
    c.expect(b':')?;
    let second = two(c, 60)?;
    c.expect(b' ')?;
    if !c.eat_ignore_case("GMT") || day == 0 {
        return None;
    }
    Some(SipDate {
        text: c.since(start),
        year,
        month,
        day,
        hour,
        minute,
        second,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole<'a, T>(s: &'a str, f: impl Fn(&mut Cursor<'a>) -> Option<T>) -> Option<T> {
        let mut c = Cursor::new(s);
        let v = f(&mut c)?;
        c.skip_ws();
        c.at_end().then_some(v)
    }

    // RFC 3261 section 25.1 / RFC 4475 section 3.1.1.6: "caller<sip:...>" is accepted.
    #[test]
    fn display_name_without_space_before_laquot() {
        let n = whole("caller<sip:caller@example.com>;tag=323", |c| {
            name_addr(c, false, 4096)
        })
        .unwrap();
        assert_eq!(n.display_name, Some(DisplayName::Tokens("caller")));
        assert_eq!(n.tag(), Some("323"));
    }

    // RFC 3261 section 20.10: in addr-spec form the parameters belong to the header.
    #[test]
    fn addr_spec_params_are_header_params() {
        let n = whole("sip:+19725552222@gw1.example.net;unknownparam", |c| {
            name_addr(c, false, 4096)
        })
        .unwrap();
        assert!(!n.bracketed);
        assert!(n.params.contains("unknownparam"));
        assert!(n.uri.as_sip().unwrap().params.is_empty());
        let n = whole("<sip:+19725552222@gw1.example.net;unknownparam>", |c| {
            name_addr(c, false, 4096)
        })
        .unwrap();
        assert!(n.uri.as_sip().unwrap().params.contains("unknownparam"));
    }

    // RFC 4475 sections 3.1.2.14 and 3.1.2.15.
    #[test]
    fn spaces_in_brackets_and_unquoted_commas_are_rejected() {
        assert!(
            whole("\"Watson, Thomas\" < sip:t.watson@example.org >", |c| {
                name_addr(c, false, 4096)
            })
            .is_none()
        );
        assert!(
            whole("Bell, Alexander <sip:a.g.bell@example.com>;tag=43", |c| {
                name_addr(c, false, 4096)
            })
            .is_none()
        );
    }

    #[test]
    fn via_with_lws_everywhere() {
        let v = whole(
            "SIP  /   2.0\r\n /UDP\r\n    192.0.2.2;branch=390skdjuw",
            via,
        )
        .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.host, Host::Ipv4("192.0.2.2"));
        assert_eq!(v.branch(), Some("390skdjuw"));
        assert!(!v.has_magic_cookie());
        let v = whole(
            "SIP/2.0/UDP [2001:db8::9:1];received=[2001:db8::9:255];rport",
            via,
        )
        .unwrap();
        assert_eq!(v.rport(), Some(None));
    }

    #[test]
    fn date_must_be_gmt() {
        // RFC 4475 section 3.1.2.12
        assert!(whole("Fri, 01 Jan 2010 16:00:00 EST", date).is_none());
        let d = whole("Sat, 13 Nov 2010 23:29:00 GMT", date).unwrap();
        assert_eq!((d.year, d.month, d.day, d.hour), (2010, 11, 13, 23));
    }

    #[test]
    fn scalar_limits() {
        // RFC 4475 sections 3.1.2.4 and 3.1.2.5
        assert!(whole("36893488147419103232 REGISTER", cseq).is_none());
        assert!(whole("1812 overture \"In Progress\"", warning).is_none());
        assert_eq!(whole("4294967295 INVITE", cseq).unwrap().seq, u32::MAX);
    }

    #[test]
    fn contact_q_values() {
        let n = whole("<sip:a@b>;q=0.7", |c| name_addr(c, false, 4096)).unwrap();
        assert_eq!(n.q(), Some(700));
        let n = whole("<sip:a@b>;q=1.5", |c| name_addr(c, false, 4096)).unwrap();
        assert_eq!(n.q(), None);
    }
}
