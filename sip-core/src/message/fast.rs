//! Fast paths of the typed parse for the headers every message carries (Via, From, To,
//! Contact, Route, Call-ID, CSeq, numbers, Content-Type, User-Agent) and for SIP URIs; and,
//! kept out of the hot function, for the ones many carry (Accept, the authorization
//! headers, the session timer headers, Retry-After, Date, Subject, Organization, Event,
//! Subscription-State, RAck, Content-Disposition, Accept-Encoding, Accept-Language,
//! Reply-To, Refer-To, Referred-By, extension headers).
//!
//! Each reads the common, compact spelling in one pass over the bytes and gives up (`None`)
//! on anything else: line folds, whitespace around separators, tabs in quoted strings,
//! IPv6 references, URI headers, schemes other than `sip`/`sips`. Giving up is never an
//! error: the caller then runs the general parsers of `headers.rs`, which accept or reject
//! the value and report where it breaks. So a fast path only has to be exact when it
//! succeeds: it must then return what the general parser would (the `one_pass_*` tests of
//! `tests/roundtrip.rs` and fuzz target `parse_message` check that it does).

use super::headers::{
    Auth, CSeq, Contact, DisplayName, MediaType, NameAddr, RAck, Seconds, SipDate, TokenParams, Via,
};
use super::name::eq_token_lower;
use super::params::{Param, ParamStyle, Params};
use super::scan::{self, run, run_escaped};
use super::typed::HeaderValue;
use super::uri::{self, Host, SipUri, Uri};
use super::{HeaderName, Method};

/// What ends a SIP URI read in place.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum UriEnd {
    /// The end of the text (a Request-URI, [`SipUri::parse`]).
    Whole,
    /// `>` (name-addr).
    Bracket,
    /// Whatever cannot continue an addr-spec written without brackets (`,`, `;`, `?`,
    /// whitespace, the end): no URI parameters.
    AddrSpec,
}

#[inline]
fn slice(s: &str, from: usize, to: usize) -> &str {
    s.get(from..to).unwrap_or("")
}

/// A decimal number of 1 to 10 digits no larger than `max`, from `i`: (value, end).
#[inline]
fn number(b: &[u8], i: usize, max: u64) -> Option<(u64, usize)> {
    let mut v = 0u64;
    let mut end = i;
    while let Some(&d) = b.get(end) {
        if !d.is_ascii_digit() {
            break;
        }
        v = v * 10 + u64::from(d - b'0');
        end += 1;
        if end - i > 10 {
            return None;
        }
    }
    (end > i && v <= max).then_some((v, end))
}

/// A host name or IPv4 address (not an IPv6 reference) at `i`.
#[inline(always)]
fn host(s: &str, i: usize) -> Option<(Host<'_>, usize)> {
    let (end, kind) = uri::scan_host_end(s.as_bytes(), i);
    let h = slice(s, i, end);
    match kind {
        uri::HOST_DOMAIN => Some((Host::Domain(h), end)),
        uri::HOST_IPV4 => Some((Host::Ipv4(h), end)),
        _ => None,
    }
}

/// A `sip:` or `sips:` URI from `i`, ending as `end` says: the URI and where it stopped.
#[inline(always)]
pub(crate) fn sip_uri(s: &str, mut i: usize, end: UriEnd) -> Option<(SipUri<'_>, usize)> {
    let b = s.as_bytes();
    let w = b.get(i..i + 4)?;
    if w[0] | 0x20 != b's' || w[1] | 0x20 != b'i' || w[2] | 0x20 != b'p' {
        return None;
    }
    let secure = match w[3] {
        b':' => false,
        b's' | b'S' if b.get(i + 4) == Some(&b':') => true,
        _ => return None,
    };
    i += if secure { 5 } else { 4 };
    // userinfo: only when the user (and password) characters run up to an '@'. Otherwise
    // there is none: no character the rest of the URI is read with is an '@', so a URI with
    // an '@' further on does not reach its end below and is left to the general parser.
    let (user_class, password_class) = if end == UriEnd::AddrSpec {
        (scan::USER_SPEC, scan::PASSWORD_SPEC)
    } else {
        (scan::USER, scan::PASSWORD)
    };
    let start = i;
    let mut user = None;
    let mut password = None;
    let u = run_escaped(b, i, user_class);
    match b.get(u) {
        Some(b'@') if u > start => {
            user = Some(slice(s, start, u));
            i = u + 1;
        }
        Some(b':') if u > start => {
            let p = run_escaped(b, u + 1, password_class);
            if b.get(p) == Some(&b'@') {
                user = Some(slice(s, start, u));
                password = Some(slice(s, u + 1, p));
                i = p + 1;
            }
        }
        _ => {}
    }
    let (host, mut i) = host(s, i)?;
    let port = if b.get(i) == Some(&b':') {
        let (p, e) = number(b, i + 1, 65535)?;
        i = e;
        Some(p as u16)
    } else {
        None
    };
    let mut params = Params::from_raw("", ParamStyle::Uri);
    if end != UriEnd::AddrSpec && b.get(i) == Some(&b';') {
        let first = i + 1;
        while b.get(i) == Some(&b';') {
            let n = run_escaped(b, i + 1, scan::PARAM);
            if n == i + 1 {
                return None;
            }
            i = n;
            if b.get(i) == Some(&b'=') {
                let v = run_escaped(b, i + 1, scan::PARAM);
                if v == i + 1 {
                    return None;
                }
                i = v;
            }
        }
        params = Params::from_raw(slice(s, first, i), ParamStyle::Uri);
    }
    let ok = match end {
        UriEnd::Whole => i == b.len(),
        UriEnd::Bracket => b.get(i) == Some(&b'>'),
        UriEnd::AddrSpec => b
            .get(i)
            .is_none_or(|&c| !scan::is_uric(c) || matches!(c, b',' | b';' | b'?')),
    };
    ok.then_some((
        SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers: None,
        },
        i,
    ))
}

/// A quoted string at `i` (the opening quote) without folds or tabs: the end after the
/// closing quote.
#[inline]
fn quoted(b: &[u8], i: usize) -> Option<usize> {
    let e = run(b, i + 1, scan::QDTEXT);
    match b.get(e) {
        Some(b'"') => Some(e + 1),
        Some(b'\\') => quoted_escaped(b, e),
        _ => None,
    }
}

/// The rest of a quoted string from the backslash at `e`: quoted pairs are stepped over
/// (RFC 3261 section 25.1: a backslash and any ASCII byte but CR and LF).
#[cold]
#[inline(never)]
fn quoted_escaped(b: &[u8], mut e: usize) -> Option<usize> {
    loop {
        match b.get(e) {
            Some(b'"') => return Some(e + 1),
            Some(b'\\')
                if b.get(e + 1)
                    .is_some_and(|&c| c < 0x80 && c != b'\r' && c != b'\n') =>
            {
                e = run(b, e + 2, scan::QDTEXT)
            }
            _ => return None,
        }
    }
}

/// A parameter value at `v0`: a token or a quoted string; where it ends.
#[inline(always)]
fn param_value(b: &[u8], v0: usize) -> Option<usize> {
    if b.get(v0) == Some(&b'"') {
        return quoted(b, v0);
    }
    let v = run(b, v0, scan::TOKEN);
    // a host value (IPv6) is left to the general parser
    if v == v0 || matches!(b.get(v), Some(b':' | b'[' | b']')) {
        return None;
    }
    Some(v)
}

/// `type "/" subtype *( ";" generic-param )` at `i` (a media range, with the wildcards of
/// Accept, when `range`): the media type and where it ends.
#[inline(always)]
fn media_type(s: &str, i: usize, range: bool) -> Option<(MediaType<'_>, usize)> {
    let b = s.as_bytes();
    let t = run(b, i, scan::TOKEN);
    if t == i || b.get(t) != Some(&b'/') {
        return None;
    }
    let st = run(b, t + 1, scan::TOKEN);
    let (ty, subtype) = (slice(s, i, t), slice(s, t + 1, st));
    let wild = ty == "*" || subtype == "*";
    if st == t + 1 || wild && !range || ty == "*" && subtype != "*" {
        return None;
    }
    let (params, e) = header_params(s, st, |_| true)?;
    Some((
        MediaType {
            ty,
            subtype,
            params,
        },
        e,
    ))
}

/// `*( ";" token [ "=" ( token / quoted-string ) ] )` with no whitespace, each parameter
/// accepted by `check`: the list and where it stopped.
#[inline(always)]
fn header_params<'a>(
    s: &'a str,
    mut i: usize,
    check: impl Fn(&Param<'a>) -> bool,
) -> Option<(Params<'a>, usize)> {
    let b = s.as_bytes();
    if b.get(i) != Some(&b';') {
        return Some((Params::from_raw("", ParamStyle::Header), i));
    }
    let first = i + 1;
    while b.get(i) == Some(&b';') {
        let n0 = i + 1;
        let n = run(b, n0, scan::TOKEN);
        if n == n0 {
            return None;
        }
        i = n;
        let mut value = None;
        if b.get(i) == Some(&b'=') {
            let v0 = i + 1;
            let v = param_value(b, v0)?;
            value = Some(slice(s, v0, v));
            i = v;
        }
        let p = Param {
            name: slice(s, n0, n),
            value,
        };
        if !check(&p) {
            return None;
        }
    }
    Some((Params::from_raw(slice(s, first, i), ParamStyle::Header), i))
}

/// Stores a name-addr as the value a header of `name` holds (Contact or an address).
#[inline(always)]
fn store_addr<'a>(out: &mut HeaderValue<'a>, contact: bool, n: NameAddr<'a>) {
    *out = if contact {
        HeaderValue::Contact(Contact::Addr(n))
    } else {
        HeaderValue::Addr(n)
    };
}

/// `name-addr / addr-spec` with header parameters at `i`, stored into `out` (as a Contact
/// when `contact`): where it ends.
#[inline(always)]
fn name_addr<'a>(
    s: &'a str,
    mut i: usize,
    route_only: bool,
    max_uri: usize,
    contact: bool,
    out: &mut HeaderValue<'a>,
) -> Option<usize> {
    let b = s.as_bytes();
    let mut display_name = None;
    let first = *b.get(i)?;
    if first == b'"' {
        let e = quoted(b, i)?;
        display_name = Some(DisplayName::Quoted(slice(s, i + 1, e - 1)));
        i = e;
        while matches!(b.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
    } else if first != b'<' {
        let save = i;
        let mut last_end;
        loop {
            let tok_start = i;
            let t = run(b, i, scan::TOKEN);
            if t == i {
                return None;
            }
            last_end = t;
            i = t;
            while matches!(b.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            match b.get(i) {
                Some(b'<') => break,
                Some(&c) if i > t && scan::is_token(c) => {}
                // one token and then ':': an addr-spec
                Some(b':') if i == t && tok_start == save && !route_only => {
                    let (uri, e) = sip_uri(s, save, UriEnd::AddrSpec)?;
                    if e - save > max_uri {
                        return None;
                    }
                    let (params, e) = header_params(s, e, |_| true)?;
                    let n = NameAddr {
                        display_name: None,
                        uri: Uri::Sip(uri),
                        bracketed: false,
                        params,
                    };
                    store_addr(out, contact, n);
                    return Some(e);
                }
                _ => return None,
            }
        }
        display_name = Some(DisplayName::Tokens(slice(s, save, last_end)));
    }
    if b.get(i) != Some(&b'<') {
        return None;
    }
    let (uri, e) = sip_uri(s, i + 1, UriEnd::Bracket)?;
    if e - (i + 1) > max_uri {
        return None;
    }
    let (params, e) = header_params(s, e + 1, |_| true)?;
    let n = NameAddr {
        display_name,
        uri: Uri::Sip(uri),
        bracketed: true,
        params,
    };
    store_addr(out, contact, n);
    Some(e)
}

/// `sent-protocol LWS sent-by *( SEMI via-params )`, stored into `out`: where it ends.
#[inline(always)]
fn via<'a>(s: &'a str, i: usize, out: &mut HeaderValue<'a>) -> Option<usize> {
    let b = s.as_bytes();
    let p = run(b, i, scan::TOKEN);
    if p == i || b.get(p) != Some(&b'/') {
        return None;
    }
    let v = run(b, p + 1, scan::TOKEN);
    if v == p + 1 || b.get(v) != Some(&b'/') {
        return None;
    }
    let t = run(b, v + 1, scan::TOKEN);
    if t == v + 1 {
        return None;
    }
    let mut h = t;
    while matches!(b.get(h), Some(b' ' | b'\t')) {
        h += 1;
    }
    if h == t {
        return None;
    }
    let (host, mut e) = host(s, h)?;
    let port = if b.get(e) == Some(&b':') {
        let (n, end) = number(b, e + 1, 65535)?;
        e = end;
        Some(n as u16)
    } else {
        None
    };
    // a branch read here is a token unless quoted; the rarer checked parameters go through
    // the general check
    let (params, e) = header_params(s, e, |p| match p.name.len() {
        6 if eq_token_lower(p.name.as_bytes(), b"branch") => {
            p.value.is_some_and(|v| !v.starts_with('"'))
        }
        // RFC 3581 section 3: a bare rport, or the port the response went to
        5 if p.value.is_none() && eq_token_lower(p.name.as_bytes(), b"rport") => true,
        // (RFC 3261 section 18.2.1: the address a proxy saw, most often IPv4)
        8 if p.value.is_some_and(|v| uri::valid_ipv4(v.as_bytes()))
            && eq_token_lower(p.name.as_bytes(), b"received") =>
        {
            true
        }
        3 | 5 | 8 => super::headers::via_param_ok(p),
        _ => true,
    })?;
    *out = HeaderValue::Via(Via {
        protocol: slice(s, i, p),
        version: slice(s, p + 1, v),
        transport: slice(s, v + 1, t),
        host,
        port,
        params,
    });
    Some(e)
}

/// `server-val *(LWS server-val)` of Server and User-Agent from `i`: where the value ends,
/// when it holds only products and simple comments.
fn products(b: &[u8], mut i: usize) -> Option<usize> {
    loop {
        match *b.get(i)? {
            b'(' => {
                let mut depth = 1;
                i += 1;
                while depth > 0 {
                    i = run(b, i, scan::CTEXT);
                    match b.get(i) {
                        Some(b'(') => depth += 1,
                        Some(b')') => depth -= 1,
                        _ => return None,
                    }
                    i += 1;
                }
            }
            _ => {
                let t = run(b, i, scan::TOKEN);
                if t == i {
                    return None;
                }
                i = t;
                if b.get(i) == Some(&b'/') {
                    let t = run(b, i + 1, scan::TOKEN);
                    if t == i + 1 {
                        return None;
                    }
                    i = t;
                }
            }
        }
        let end = i;
        while matches!(b.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        match b.get(i) {
            None | Some(b'\r') => return Some(end),
            // whitespace is required between elements; a '/' after it is left to the
            // general parser
            Some(b'/') => return None,
            Some(_) if i == end => return None,
            Some(_) => {}
        }
    }
}

/// `end` moved back over the spaces and tabs that end `b[start..end]`.
#[inline]
fn trim_end(b: &[u8], start: usize, mut end: usize) -> usize {
    while end > start && matches!(b.get(end - 1), Some(b' ' | b'\t')) {
        end -= 1;
    }
    end
}

/// `rfc1123-date` at `i` (RFC 3261 section 20.17: `Www, DD Mmm YYYY HH:MM:SS GMT`, always
/// 29 bytes): the date and where it ends.
fn date(s: &str, i: usize) -> Option<(SipDate<'_>, usize)> {
    use super::headers::{DAYS, MONTHS};
    let d: &[u8; 29] = s.as_bytes().get(i..i + 29)?.try_into().ok()?;
    let two = |at: usize, max: u8| -> Option<u8> {
        let (h, l) = (d[at].wrapping_sub(b'0'), d[at + 1].wrapping_sub(b'0'));
        // (then, not then_some: the sum is only formed from two digits)
        (h <= 9 && l <= 9 && h * 10 + l <= max).then(|| h * 10 + l)
    };
    let day_name = [d[0], d[1], d[2]];
    let mon = [d[8], d[9], d[10]];
    if !DAYS.iter().any(|n| n.as_bytes() == day_name)
        || &d[3..5] != b", "
        || d[7] != b' '
        || d[11] != b' '
    {
        return None;
    }
    if d[16] != b' ' || d[19] != b':' || d[22] != b':' || d[25] != b' ' {
        return None;
    }
    if !d[26..29].eq_ignore_ascii_case(b"GMT") {
        return None;
    }
    let month = MONTHS.iter().position(|m| m.as_bytes() == mon)? as u8 + 1;
    let day = two(5, 31).filter(|&v| v > 0)?;
    let mut year = 0u16;
    for &c in &d[12..16] {
        let c = c.wrapping_sub(b'0');
        if c > 9 {
            return None;
        }
        year = year * 10 + u16::from(c);
    }
    Some((
        SipDate {
            text: slice(s, i, i + 29),
            year,
            month,
            day,
            hour: two(17, 23)?,
            minute: two(20, 59)?,
            second: two(23, 60)?,
        },
        i + 29,
    ))
}

/// After a value element ending at `e`: `Ok(None)` when the value ends there (at the end of
/// the text or of the line), `Ok(Some(next))` at the next element of a list, `Err` to give
/// up.
#[inline]
fn after_element(b: &[u8], e: usize, list: bool) -> Result<Option<usize>, ()> {
    let mut i = e;
    while matches!(b.get(i), Some(b' ' | b'\t')) {
        i += 1;
    }
    match b.get(i) {
        None | Some(b'\r') => Ok(None),
        Some(b',') if list => {
            i += 1;
            while matches!(b.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            Ok(Some(i))
        }
        _ => Err(()),
    }
}

/// `token *(COMMA token)` from `i` (LWS and line folds allowed around the commas): the
/// number of tokens and the end of the last one; the list ends at the end of `b` or at a
/// line end. `Err` holds the offset of the first fault.
pub(crate) fn token_list(b: &[u8], mut i: usize) -> Result<(usize, usize), usize> {
    let mut n = 0;
    loop {
        let s = i;
        i = run(b, i, scan::TOKEN);
        if i == s {
            return Err(i);
        }
        n += 1;
        let end = i;
        // the usual separator, ", ", without the general whitespace loop
        if b.get(i) == Some(&b',') {
            i += 1;
            if b.get(i) == Some(&b' ') {
                i += 1;
            }
            if b.get(i).is_some_and(|&c| scan::is_token(c)) {
                continue;
            }
            i = scan::skip_ws(b, i);
            continue;
        }
        i = scan::skip_ws(b, i);
        match b.get(i) {
            None | Some(b'\r') => return Ok((n, end)),
            Some(b',') => i = scan::skip_ws(b, i + 1),
            Some(_) => return Err(i),
        }
    }
}

/// The values of a header line from `i`, each read by `element` (which returns where it
/// ends), separated by commas when `list`: how many there are and where the last one ends.
#[inline(always)]
fn elements(
    b: &[u8],
    mut i: usize,
    list: bool,
    mut element: impl FnMut(usize) -> Option<usize>,
) -> Option<(usize, usize)> {
    let mut n = 0;
    loop {
        let e = element(i)?;
        n += 1;
        match after_element(b, e, list).ok()? {
            None => return Some((n, e)),
            Some(next) => i = next,
        }
    }
}

/// One value that must end the line (only whitespace may follow it): stored in place, in a
/// fresh slot of `$out` (no copy of the value), once the line end is confirmed.
macro_rules! single {
    ($b:expr, $out:expr, $v:expr, $end:expr $(,)?) => {{
        let end = $end;
        after_element($b, end, false).ok()?;
        *$out.slot() = $v;
        Some((1, end))
    }};
}

/// Where [`line`] stores values: each call gives a fresh slot at the end of the message's
/// value list, so the parsers write each field once, in place.
pub(crate) trait Sink<'a> {
    /// A new slot for the next value.
    fn slot(&mut self) -> &mut HeaderValue<'a>;
}

/// Types one header value starting at `start` in `s` by its fast path, storing each value
/// in a slot of `out`. The value ends at the end of `s` or at the first line end outside
/// it. Returns the number of values and where the last one ends, or `None` to leave the
/// line to the general parsers (the caller then drops the slots this call took).
/// (The pair comes back in registers: `(0, _)` means `None`.)
#[inline(never)]
pub(crate) fn line<'a>(
    name: HeaderName,
    s: &'a str,
    start: usize,
    max_uri: usize,
    out: &mut impl Sink<'a>,
) -> (usize, usize) {
    line_inner(name, s, start, max_uri, out).unwrap_or((0, 0))
}

#[inline(always)]
fn line_inner<'a>(
    name: HeaderName,
    s: &'a str,
    start: usize,
    max_uri: usize,
    out: &mut impl Sink<'a>,
) -> Option<(usize, usize)> {
    use HeaderName as N;
    let b = s.as_bytes();
    match name {
        // one loop per kind, so no value re-dispatches on the name
        N::Via => elements(b, start, true, |i| via(s, i, out.slot())),
        N::From | N::To => elements(b, start, false, |i| {
            name_addr(s, i, false, max_uri, false, out.slot())
        }),
        N::Route | N::RecordRoute => elements(b, start, true, |i| {
            name_addr(s, i, true, max_uri, false, out.slot())
        }),
        // a Contact starting with '*' is the wildcard, not a display name
        N::Contact => elements(b, start, true, |i| match b.get(i) {
            Some(b'*') => None,
            _ => name_addr(s, i, false, max_uri, true, out.slot()),
        }),
        N::CallId => {
            let w = run(b, start, scan::WORD);
            if w == start {
                return None;
            }
            let mut e = w;
            if b.get(w) == Some(&b'@') {
                e = run(b, w + 1, scan::WORD);
                if e == w + 1 {
                    return None;
                }
            }
            single!(b, out, HeaderValue::CallId(slice(s, start, e)), e)
        }
        N::CSeq => {
            let (seq, d) = number(b, start, u64::from(u32::MAX))?;
            let mut m = d;
            while matches!(b.get(m), Some(b' ' | b'\t')) {
                m += 1;
            }
            let e = run(b, m, scan::TOKEN);
            if m == d || e == m {
                return None;
            }
            let method = Method::from_token(slice(s, m, e));
            single!(
                b,
                out,
                HeaderValue::CSeq(CSeq {
                    seq: seq as u32,
                    method,
                }),
                e,
            )
        }
        N::MaxForwards => {
            let (v, e) = number(b, start, 255)?;
            single!(b, out, HeaderValue::Number(v as u32), e)
        }
        N::ContentLength | N::Expires | N::MinExpires | N::RSeq => {
            let (v, e) = number(b, start, u64::from(u32::MAX))?;
            single!(b, out, HeaderValue::Number(v as u32), e)
        }
        N::ContentType => {
            let (m, e) = media_type(s, start, false)?;
            single!(b, out, HeaderValue::MediaType(m), e)
        }
        N::Server | N::UserAgent => {
            let e = products(b, start)?;
            single!(b, out, HeaderValue::Text(slice(s, start, e)), e)
        }
        _ => line_less_common(name, s, start, max_uri, out),
    }
}

/// [`line`] for the headers fewer messages carry, kept out of line so that the common
/// ones stay in a small function.
#[inline(never)]
fn line_less_common<'a>(
    name: HeaderName,
    s: &'a str,
    start: usize,
    max_uri: usize,
    out: &mut impl Sink<'a>,
) -> Option<(usize, usize)> {
    use HeaderName as N;
    let b = s.as_bytes();
    match name {
        N::Accept => elements(b, start, true, |i| {
            let (m, e) = media_type(s, i, true)?;
            *out.slot() = HeaderValue::MediaType(m);
            Some(e)
        }),
        // RFC 3261 section 25.1, RFC 7616 section 3.4: scheme, then comma-separated
        // name=value pairs (no whitespace around '=', values a token or a plain quoted string)
        N::Authorization | N::ProxyAuthorization | N::WwwAuthenticate | N::ProxyAuthenticate => {
            let t = run(b, start, scan::TOKEN);
            let mut i = t;
            while matches!(b.get(i), Some(b' ' | b'\t')) {
                i += 1;
            }
            if t == start || i == t {
                return None;
            }
            let first = i;
            loop {
                let n = run(b, i, scan::TOKEN);
                if n == i || b.get(n) != Some(&b'=') {
                    return None;
                }
                i = param_value(b, n + 1)?;
                if b.get(i) != Some(&b',') {
                    break;
                }
                i += 1;
                while matches!(b.get(i), Some(b' ' | b'\t')) {
                    i += 1;
                }
            }
            single!(
                b,
                out,
                HeaderValue::Auth(Auth {
                    scheme: slice(s, start, t),
                    params: Params::from_raw(slice(s, first, i), ParamStyle::Auth),
                }),
                i,
            )
        }
        // RFC 4028 sections 4 and 5, RFC 3261 section 20.33: delta-seconds and parameters
        // (a Retry-After comment is left to the general parser)
        N::SessionExpires | N::MinSe | N::RetryAfter => {
            let (v, d) = number(b, start, u64::from(u32::MAX))?;
            let (params, e) = header_params(s, d, |_| true)?;
            single!(
                b,
                out,
                HeaderValue::Seconds(Seconds {
                    seconds: v as u32,
                    comment: None,
                    params,
                }),
                e,
            )
        }
        N::Date => {
            let (d, e) = date(s, start)?;
            single!(b, out, HeaderValue::Date(d), e)
        }
        // the other name-addr headers (RFC 3261 section 20.31, RFC 3515 Refer-To, RFC 3892
        // Referred-By)
        N::ReplyTo | N::ReferTo | N::ReferredBy => elements(b, start, name.is_list(), |i| {
            name_addr(s, i, false, max_uri, false, out.slot())
        }),
        // a token with parameters (RFC 6665 Event and Subscription-State, RFC 3261
        // Content-Disposition, Accept-Encoding and Accept-Language ranges)
        N::AcceptEncoding
        | N::AcceptLanguage
        | N::ContentDisposition
        | N::Event
        | N::SubscriptionState => elements(b, start, name.is_list(), |i| {
            let t = run(b, i, scan::TOKEN);
            if t == i {
                return None;
            }
            let (params, e) = header_params(s, t, |_| true)?;
            *out.slot() = HeaderValue::TokenParams(TokenParams {
                value: slice(s, i, t),
                params,
            });
            Some(e)
        }),
        // RFC 3262 section 7.2: response-num LWS CSeq-num LWS Method
        N::RAck => {
            let (rseq, r) = number(b, start, u64::from(u32::MAX))?;
            let (cseq, c) = match b.get(r) {
                Some(b' ') => number(b, r + 1, u64::from(u32::MAX))?,
                _ => return None,
            };
            let m = match b.get(c) {
                Some(b' ') => c + 1,
                _ => return None,
            };
            let e = run(b, m, scan::TOKEN);
            if e == m {
                return None;
            }
            single!(
                b,
                out,
                HeaderValue::RAck(RAck {
                    rseq: rseq as u32,
                    cseq: cseq as u32,
                    method: Method::from_token(slice(s, m, e)),
                }),
                e,
            )
        }
        // free text without control characters, to the line end
        N::Subject | N::Organization => {
            let mut i = start;
            loop {
                i = run(b, i, scan::QDTEXT);
                match b.get(i) {
                    Some(b'"' | b'\\' | b'\t') => i += 1,
                    _ => break,
                }
            }
            let e = trim_end(b, start, i);
            single!(b, out, HeaderValue::Text(slice(s, start, e)), e)
        }
        // an extension header: the rest of the line, verbatim (control characters included,
        // as the view keeps them)
        N::Other => {
            let cr = super::view::line_end(b, start).ok()??;
            let e = trim_end(b, start, cr);
            single!(b, out, HeaderValue::Raw(slice(s, start, e)), e)
        }
        _ => None,
    }
}
