//! URIs: `sip` and `sips` (RFC 3261 section 19.1), `tel` (RFC 3966), and any other scheme kept
//! as an absolute URI (section 25.1). Components are borrowed as written: `%HH` escapes are
//! kept, so a value is never unescaped twice, and are decoded only when comparing
//! (section 19.1.4).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::params::{ParamStyle, Params};
use super::scan::{self, Cursor};

/// A parsed URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Uri<'a> {
    /// `sip:` or `sips:`.
    Sip(SipUri<'a>),
    /// `tel:` (RFC 3966).
    Tel(TelUri<'a>),
    /// Any other scheme: `scheme ":" rest`, kept opaque.
    Absolute(AbsoluteUri<'a>),
}

/// A `sip:` or `sips:` URI (RFC 3261 section 19.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SipUri<'a> {
    /// `sips:` rather than `sip:`.
    pub secure: bool,
    /// The user part, escapes kept (may contain `;` and `?`, see RFC 4475 section 3.1.1.9).
    pub user: Option<&'a str>,
    /// The password, escapes kept.
    pub password: Option<&'a str>,
    /// The host.
    pub host: Host<'a>,
    /// The port, when written.
    pub port: Option<u16>,
    /// The `uri-parameters`.
    pub params: Params<'a>,
    /// The `headers` after `?`, as written (`name=value&...`).
    pub headers: Option<&'a str>,
}

/// A host: a domain name, an IPv4 address or an IPv6 reference, as written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Host<'a> {
    /// A host name.
    Domain(&'a str),
    /// A dotted IPv4 address.
    Ipv4(&'a str),
    /// An IPv6 address, without the brackets of the reference.
    Ipv6(&'a str),
}

/// A `tel:` URI (RFC 3966 section 3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TelUri<'a> {
    /// The number, with visual separators as written; global numbers start with `+`.
    pub number: &'a str,
    /// The parameters (`phone-context`, `ext`, `isub` and others).
    pub params: Params<'a>,
}

/// A URI of a scheme this crate does not interpret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbsoluteUri<'a> {
    /// The scheme, without the colon.
    pub scheme: &'a str,
    /// Everything after the colon.
    pub rest: &'a str,
}

/// `param-unreserved / unreserved / escaped` (the `%` is checked by [`escapes_ok`]).
#[inline]
pub(crate) fn is_paramchar(b: u8) -> bool {
    scan::is_unreserved(b) || matches!(b, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$' | b'%')
}

#[inline]
fn is_user_char(b: u8) -> bool {
    scan::is_unreserved(b)
        || matches!(
            b,
            b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/'
        )
}

#[inline]
fn is_password_char(b: u8) -> bool {
    scan::is_unreserved(b) || matches!(b, b'%' | b'&' | b'=' | b'+' | b'$' | b',')
}

#[inline]
fn is_hnv_char(b: u8) -> bool {
    scan::is_unreserved(b) || matches!(b, b'%' | b'[' | b']' | b'/' | b'?' | b':' | b'+' | b'$')
}

/// Is every `%` followed by two hex digits?
pub(crate) fn escapes_ok(s: &str) -> bool {
    // Short strings: a plain loop beats memchr's set-up cost.
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            match (b.get(i + 1), b.get(i + 2)) {
                (Some(h), Some(l)) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => i += 3,
                _ => return false,
            }
        } else {
            i += 1;
        }
    }
    true
}

/// The bytes of `s` with `%HH` escapes decoded, once.
pub fn unescaped(s: &str) -> impl Iterator<Item = u8> + '_ {
    let b = s.as_bytes();
    let mut i = 0;
    std::iter::from_fn(move || {
        let c = *b.get(i)?;
        if c == b'%' {
            if let (Some(h), Some(l)) = (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                i += 3;
                return Some(h << 4 | l);
            }
        }
        i += 1;
        Some(c)
    })
}

fn hex(b: Option<&u8>) -> Option<u8> {
    let b = *b?;
    (b as char).to_digit(16).map(|d| d as u8)
}

fn eq_unescaped(a: &str, b: &str, ignore_case: bool) -> bool {
    if ignore_case {
        unescaped(a)
            .map(|c| c.to_ascii_lowercase())
            .eq(unescaped(b).map(|c| c.to_ascii_lowercase()))
    } else {
        unescaped(a).eq(unescaped(b))
    }
}

impl<'a> Uri<'a> {
    /// Parses a whole string as a URI.
    pub fn parse(s: &'a str) -> Option<Uri<'a>> {
        let colon = s.bytes().position(|b| b == b':')?;
        let scheme = &s[..colon];
        if scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips") {
            SipUri::parse(s).map(Uri::Sip)
        } else if scheme.eq_ignore_ascii_case("tel") {
            TelUri::parse(&s[colon + 1..]).map(Uri::Tel)
        } else {
            AbsoluteUri::parse(s).map(Uri::Absolute)
        }
    }

    /// The scheme, lower-case for the schemes this crate knows.
    pub fn scheme(&self) -> &'a str {
        match self {
            Uri::Sip(u) if u.secure => "sips",
            Uri::Sip(_) => "sip",
            Uri::Tel(_) => "tel",
            Uri::Absolute(a) => a.scheme,
        }
    }

    /// The SIP URI, if this is one.
    pub fn as_sip(&self) -> Option<&SipUri<'a>> {
        match self {
            Uri::Sip(u) => Some(u),
            _ => None,
        }
    }

    /// Compares two URIs by the rules of RFC 3261 section 19.1.4 (sip, sips), RFC 3966
    /// section 4 (tel), or exact text for other schemes (scheme case-insensitively).
    pub fn equivalent(&self, other: &Uri<'_>) -> bool {
        match (self, other) {
            (Uri::Sip(a), Uri::Sip(b)) => a.equivalent(b),
            (Uri::Tel(a), Uri::Tel(b)) => a.equivalent(b),
            (Uri::Absolute(a), Uri::Absolute(b)) => {
                a.scheme.eq_ignore_ascii_case(b.scheme) && a.rest == b.rest
            }
            _ => false,
        }
    }

    /// Writes the URI.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Uri::Sip(u) => u.write_to(out),
            Uri::Tel(t) => {
                out.extend_from_slice(b"tel:");
                out.extend_from_slice(t.number.as_bytes());
                super::params::write_params(out, &t.params);
            }
            Uri::Absolute(a) => {
                out.extend_from_slice(a.scheme.as_bytes());
                out.push(b':');
                out.extend_from_slice(a.rest.as_bytes());
            }
        }
    }
}

impl fmt::Display for Uri<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut v = Vec::new();
        self.write_to(&mut v);
        f.write_str(&String::from_utf8_lossy(&v))
    }
}

impl<'a> SipUri<'a> {
    /// Parses `sip:` / `sips:` URIs (RFC 3261 section 25.1 `SIP-URI` / `SIPS-URI`).
    pub fn parse(s: &'a str) -> Option<SipUri<'a>> {
        if let Some((u, _)) = super::fast::sip_uri(s, 0, super::fast::UriEnd::Whole) {
            return Some(u);
        }
        let mut c = Cursor::new(s);
        let b = s.as_bytes();
        if b.len() < 4 || !b[..3].eq_ignore_ascii_case(b"sip") {
            return None;
        }
        let secure = match b[3] {
            b':' => false,
            b's' | b'S' if b.get(4) == Some(&b':') => true,
            _ => return None,
        };
        c.set_pos(if secure { 5 } else { 4 });
        // userinfo: '@' appears nowhere else in a SIP URI unescaped, so its presence decides.
        // One pass finds it and checks the user and password characters on the way.
        let (mut user, mut password) = (None, None);
        let rest = c.rest().as_bytes();
        let mut colon = None;
        let mut info_ok = true;
        let mut at = None;
        for (i, &b) in rest.iter().enumerate() {
            match b {
                b'@' => {
                    at = Some(i);
                    break;
                }
                b':' if colon.is_none() => colon = Some(i),
                b if colon.is_none() => info_ok &= is_user_char(b),
                b => info_ok &= is_password_char(b),
            }
        }
        if let Some(at) = at {
            let start = c.pos();
            let (u, p) = match colon {
                Some(i) => (
                    c.slice(start, start + i),
                    Some(c.slice(start + i + 1, start + at)),
                ),
                None => (c.slice(start, start + at), None),
            };
            if !info_ok || u.is_empty() || !escapes_ok(u) || !p.is_none_or(escapes_ok) {
                return None;
            }
            user = Some(u);
            password = p;
            c.set_pos(start + at + 1);
        }
        let (host, port) = parse_hostport(&mut c)?;
        let params = Params::parse(&mut c, ParamStyle::Uri)?;
        let headers = if c.eat(b'?') {
            let h = c.rest();
            if !valid_uri_headers(h) {
                return None;
            }
            c.set_pos(s.len());
            Some(h)
        } else {
            None
        };
        if !c.at_end() {
            return None;
        }
        Some(SipUri {
            secure,
            user,
            password,
            host,
            port,
            params,
            headers,
        })
    }

    /// A URI with only a host (and the scheme), for building messages.
    pub fn from_host(host: Host<'a>) -> SipUri<'a> {
        SipUri {
            secure: false,
            user: None,
            password: None,
            host,
            port: None,
            params: Params::from_raw("", ParamStyle::Uri),
            headers: None,
        }
    }

    /// The `transport` parameter.
    pub fn transport(&self) -> Option<&'a str> {
        self.params.get("transport").flatten()
    }

    /// The `maddr` parameter.
    pub fn maddr(&self) -> Option<&'a str> {
        self.params.get("maddr").flatten()
    }

    /// The `user` parameter (`phone`, `ip`).
    pub fn user_param(&self) -> Option<&'a str> {
        self.params.get("user").flatten()
    }

    /// The `method` parameter.
    pub fn method_param(&self) -> Option<&'a str> {
        self.params.get("method").flatten()
    }

    /// The `ttl` parameter, if valid (0-255).
    pub fn ttl(&self) -> Option<u8> {
        self.params
            .get("ttl")
            .flatten()
            .and_then(|t| scan::parse_decimal(t, 255))
            .map(|t| t as u8)
    }

    /// Is the `lr` parameter present (loose routing, RFC 3261 section 19.1.1)?
    pub fn lr(&self) -> bool {
        self.params.contains("lr")
    }

    /// RFC 3261 section 19.1.4 comparison.
    pub fn equivalent(&self, o: &SipUri<'_>) -> bool {
        if self.secure != o.secure || self.port != o.port {
            return false;
        }
        // userinfo is case-sensitive, escapes are equal to what they stand for
        let opt_eq = |a: Option<&str>, b: Option<&str>| match (a, b) {
            (None, None) => true,
            (Some(a), Some(b)) => eq_unescaped(a, b, false),
            _ => false,
        };
        if !opt_eq(self.user, o.user) || !opt_eq(self.password, o.password) {
            return false;
        }
        if !self.host.equivalent(&o.host) {
            return false;
        }
        // user, ttl, method, maddr and transport must match when either URI has them;
        // other parameters are compared only when both have them.
        for p in self.params.iter().chain(o.params.iter()) {
            // names compared unescaped: %74ransport is transport
            let special = ["user", "ttl", "method", "maddr", "transport"]
                .iter()
                .any(|n| eq_unescaped(p.name, n, true));
            let a = find_param(&self.params, p.name);
            let b = find_param(&o.params, p.name);
            match (a, b) {
                (Some(a), Some(b)) => {
                    let same = match (a, b) {
                        (None, None) => true,
                        (Some(x), Some(y)) => eq_unescaped(x, y, true),
                        _ => false,
                    };
                    if !same {
                        return false;
                    }
                }
                _ if special => return false,
                _ => {}
            }
        }
        // headers: every header in either must be in both, equal
        let hs = |h: Option<&'a str>| h.unwrap_or("");
        let oh = o.headers.unwrap_or("");
        for (n, v) in uri_headers(hs(self.headers)) {
            if !uri_headers(oh)
                .any(|(n2, v2)| eq_unescaped(n, n2, true) && eq_unescaped(v, v2, false))
            {
                return false;
            }
        }
        for (n, v) in uri_headers(oh) {
            if !uri_headers(hs(self.headers))
                .any(|(n2, v2)| eq_unescaped(n, n2, true) && eq_unescaped(v, v2, false))
            {
                return false;
            }
        }
        true
    }

    /// Writes the URI as parsed (escapes as they were).
    pub fn write_to(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.secure { b"sips:" } else { b"sip:" });
        if let Some(u) = self.user {
            out.extend_from_slice(u.as_bytes());
            if let Some(p) = self.password {
                out.push(b':');
                out.extend_from_slice(p.as_bytes());
            }
            out.push(b'@');
        }
        self.host.write_to(out);
        if let Some(p) = self.port {
            out.push(b':');
            write_u64(out, u64::from(p));
        }
        super::params::write_params(out, &self.params);
        if let Some(h) = self.headers {
            out.push(b'?');
            out.extend_from_slice(h.as_bytes());
        }
    }
}

fn find_param<'p>(params: &Params<'p>, name: &str) -> Option<Option<&'p str>> {
    params
        .iter()
        .find(|p| eq_unescaped(p.name, name, true))
        .map(|p| p.value)
}

/// `hname "=" hvalue` pairs of a URI's headers component.
fn uri_headers(h: &str) -> impl Iterator<Item = (&str, &str)> {
    h.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
}

fn valid_uri_headers(h: &str) -> bool {
    h.split('&').all(|p| match p.split_once('=') {
        Some((n, v)) => {
            !n.is_empty()
                && n.bytes().all(is_hnv_char)
                && v.bytes().all(is_hnv_char)
                && escapes_ok(n)
                && escapes_ok(v)
        }
        None => false,
    })
}

pub(crate) fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// `host [ ":" port ]` at the cursor.
pub(crate) fn parse_hostport<'a>(c: &mut Cursor<'a>) -> Option<(Host<'a>, Option<u16>)> {
    let host = parse_host(c)?;
    let port = if c.eat(b':') {
        Some(scan::parse_decimal(c.take_while(|b| b.is_ascii_digit()), 65535)? as u16)
    } else {
        None
    };
    Some((host, port))
}

/// `host = hostname / IPv4address / IPv6reference`.
#[inline(always)]
pub(crate) fn parse_host<'a>(c: &mut Cursor<'a>) -> Option<Host<'a>> {
    if c.eat(b'[') {
        let v6 = c.take_while(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        c.expect(b']')?;
        return valid_ipv6(v6).then_some(Host::Ipv6(v6));
    }
    scan_host(c)
}

/// Reads a host name or IPv4 address at the cursor in one pass: the characters, the label
/// rules (no empty label, no label starting or ending with '-') and whether it is all digits
/// and dots (then it must be a valid IPv4 address). Branch-light, since every URI and Via
/// has a host.
#[inline(always)]
fn scan_host<'a>(c: &mut Cursor<'a>) -> Option<Host<'a>> {
    let start = c.pos();
    let (end, kind) = scan_host_end(c.bytes(), start);
    c.set_pos(end);
    let h = c.since(start);
    match kind {
        HOST_DOMAIN => Some(Host::Domain(h)),
        HOST_IPV4 => Some(Host::Ipv4(h)),
        _ => None,
    }
}

/// [`scan_host_end`]: not a host.
pub(crate) const HOST_NONE: u8 = 0;
/// [`scan_host_end`]: a host name.
pub(crate) const HOST_DOMAIN: u8 = 1;
/// [`scan_host_end`]: an IPv4 address.
pub(crate) const HOST_IPV4: u8 = 2;

/// The host name or IPv4 address at `start`: where its characters end and what they make
/// ([`HOST_DOMAIN`], [`HOST_IPV4`], or [`HOST_NONE`] when they break the rules). Returned as
/// a pair of plain values, so it comes back in registers.
#[inline(never)]
pub(crate) fn scan_host_end(b: &[u8], start: usize) -> (usize, u8) {
    // the host's end, then the label rules, without a loop per label
    let i = scan::run(b, start, scan::HOST);
    let h = b.get(start..i).unwrap_or(&[]);
    // a name has a letter, '-' or '_' somewhere (one starting with a letter is the usual
    // case); digits and dots alone make an IPv4 address
    let name = match h.first() {
        None => return (i, HOST_NONE),
        Some(f) if f.is_ascii_alphabetic() => true,
        // four dotted numbers are the usual reason for a leading digit
        Some(_) if valid_ipv4(h) => return (i, HOST_IPV4),
        Some(_) => h.iter().any(|&ch| !ch.is_ascii_digit() && ch != b'.'),
    };
    if !name {
        // digits and dots that are not an IPv4 address (checked above)
        return (i, HOST_NONE);
    }
    // a trailing dot is allowed (fully qualified name); a trailing '-' is not
    let ok = labels_ok(h) && h.last() != Some(&b'-');
    (i, if ok { HOST_DOMAIN } else { HOST_NONE })
}

/// Are the labels of host text `h` (host characters only) free of the forbidden pairs
/// "..", "-." and ".-", and does it not start with '.' or '-'? Eight bytes at a time while
/// there is no '-' (names rarely have one), through HOST_CODE otherwise.
#[inline]
fn labels_ok(h: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    /// The high bit of each byte of `w` that equals `c`.
    #[inline]
    fn eq(w: u64, c: u8) -> u64 {
        let v = w ^ (u64::from(c) * 0x0101_0101_0101_0101);
        !(((v & LOW7) + LOW7) | v) & HIGH
    }
    // a leading '.' counts as following a '.'
    let mut prev_dot = true;
    let mut done = 0;
    for w in h.chunks_exact(8) {
        let mut a = [0u8; 8];
        a.copy_from_slice(w);
        let w = u64::from_le_bytes(a);
        if eq(w, b'-') != 0 {
            break;
        }
        let dot = eq(w, b'.');
        // bytes are little-endian: a byte's dot bit shifted left by 8 lands on the next one
        if dot & (dot << 8) != 0 || prev_dot && dot & 0x80 != 0 {
            return false;
        }
        prev_dot = dot >> 63 != 0;
        done += 8;
    }
    let mut prev = HOST_CODE[usize::from(if prev_dot { b'.' } else { b'a' })];
    let mut bad = 0u8;
    for &ch in h.get(done..).unwrap_or(&[]) {
        let code = HOST_CODE[usize::from(ch)];
        bad |= (prev >> 2) & code;
        prev = code;
    }
    bad & 0b11 == 0
}

/// Host characters, with their part in the label rules: 0 for a byte that is not a host
/// character; else bit 4, plus for '.' bits 0 ("is a dot"), 2 and 3, and for '-' bits 1
/// ("is a dash") and 2. Shifting the previous byte's code right by two lines its bit 2
/// ("a dot or a dash before") up with "is a dot" and its bit 3 ("a dot before") with "is
/// a dash", so `(prev >> 2) & code & 0b11` is set exactly for ".." "-." and ".-" (a label
/// that is empty, or starts or ends with '-').
const fn host_codes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = match b {
            b'.' => 0x10 | 0b1101,
            b'-' => 0x10 | 0b0110,
            b'_' => 0x10,
            _ if b.is_ascii_alphanumeric() => 0x10,
            _ => 0,
        };
        c += 1;
    }
    t
}

static HOST_CODE: [u8; 256] = host_codes();

/// A bare IPv6 address: hex digits, colons and an optional dotted IPv4 tail. The RFC 3261
/// ABNF also admits three colons in a row (RFC 5118 section 4.10), so this is deliberately
/// looser than `Ipv6Addr`'s parser.
pub(crate) fn valid_ipv6(s: &str) -> bool {
    let mut colons = 0;
    for &b in s.as_bytes() {
        match b {
            b':' => colons += 1,
            b'.' => {}
            b if b.is_ascii_hexdigit() => {}
            _ => return false,
        }
    }
    colons >= 2
}

/// `IPv4address = 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT "." 1*3DIGIT`, each at most 255.
#[inline(never)]
pub(crate) fn valid_ipv4(b: &[u8]) -> bool {
    let mut parts = 0;
    let mut value = 0u32;
    let mut digits = 0;
    for &c in b {
        if c == b'.' {
            if digits == 0 || value > 255 {
                return false;
            }
            parts += 1;
            value = 0;
            digits = 0;
        } else {
            digits += 1;
            if digits > 3 || !c.is_ascii_digit() {
                return false;
            }
            value = value * 10 + u32::from(c - b'0');
        }
    }
    parts == 3 && digits > 0 && value <= 255
}

impl<'a> Host<'a> {
    /// Classifies host text (no brackets): IPv4 when it is four dotted numbers, else a
    /// host name made of labels of letters, digits and `-` (plus `_`, seen in practice).
    pub fn classify(h: &'a str) -> Option<Host<'a>> {
        let mut c = Cursor::new(h);
        let host = scan_host(&mut c)?;
        c.at_end().then_some(host)
    }

    /// The host as an IP address, when it is one (and, for IPv6, well formed).
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Host::Domain(_) => None,
            Host::Ipv4(s) => s.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
            Host::Ipv6(s) => s.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        }
    }

    /// The text as written (IPv6 without brackets).
    pub fn as_str(&self) -> &'a str {
        match self {
            Host::Domain(s) | Host::Ipv4(s) | Host::Ipv6(s) => s,
        }
    }

    /// Host comparison: names case-insensitively, addresses by value.
    pub fn equivalent(&self, o: &Host<'_>) -> bool {
        match (self.ip(), o.ip()) {
            (Some(a), Some(b)) => a == b,
            _ => self.as_str().eq_ignore_ascii_case(o.as_str()),
        }
    }

    /// Writes the host, bracketing IPv6 addresses.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Host::Ipv6(s) => {
                out.push(b'[');
                out.extend_from_slice(s.as_bytes());
                out.push(b']');
            }
            Host::Domain(s) | Host::Ipv4(s) => out.extend_from_slice(s.as_bytes()),
        }
    }
}

impl<'a> TelUri<'a> {
    /// Parses what follows `tel:` (RFC 3966 `telephone-subscriber`).
    pub fn parse(s: &'a str) -> Option<TelUri<'a>> {
        let mut c = Cursor::new(s);
        let number = if c.peek() == Some(b'+') {
            c.eat(b'+');
            let digits =
                c.take_while(|b| b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'(' | b')'));
            if !digits.bytes().any(|b| b.is_ascii_digit()) {
                return None;
            }
            c.since(0)
        } else {
            let n = c.take_while(|b| {
                b.is_ascii_hexdigit() || matches!(b, b'*' | b'#' | b'-' | b'.' | b'(' | b')')
            });
            if !n
                .bytes()
                .any(|b| b.is_ascii_hexdigit() || b == b'*' || b == b'#')
            {
                return None;
            }
            n
        };
        let params = Params::parse(&mut c, ParamStyle::Uri)?;
        c.at_end().then_some(TelUri { number, params })
    }

    /// Is this a global number (starting with `+`)?
    pub fn is_global(&self) -> bool {
        self.number.starts_with('+')
    }

    /// RFC 3966 section 4: numbers compared without visual separators, parameters compared
    /// as sets.
    pub fn equivalent(&self, o: &TelUri<'_>) -> bool {
        let digits = |s: &str| {
            s.bytes()
                .filter(|b| !matches!(b, b'-' | b'.' | b'(' | b')'))
                .map(|b| b.to_ascii_lowercase())
                .collect::<smallvec::SmallVec<[u8; 32]>>()
        };
        if digits(self.number) != digits(o.number) {
            return false;
        }
        // each name compared by its first occurrence on both sides, as for SIP URIs, so that
        // a URI repeating a parameter is still equivalent to itself
        let subset = |a: &Params<'_>, b: &Params<'_>| {
            a.iter()
                .all(|p| match (find_param(a, p.name), find_param(b, p.name)) {
                    (Some(None), Some(None)) => true,
                    (Some(Some(x)), Some(Some(y))) => eq_unescaped(x, y, true),
                    _ => false,
                })
        };
        subset(&self.params, &o.params) && subset(&o.params, &self.params)
    }
}

impl<'a> AbsoluteUri<'a> {
    /// `absoluteURI`: `scheme ":" (hier-part / opaque-part)`, checked for characters only.
    pub fn parse(s: &'a str) -> Option<AbsoluteUri<'a>> {
        let (scheme, rest) = s.split_once(':')?;
        let mut b = scheme.bytes();
        if !b.next()?.is_ascii_alphabetic()
            || !b.all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.'))
        {
            return None;
        }
        if rest.is_empty() || !rest.bytes().all(scan::is_uric) || !escapes_ok(rest) {
            return None;
        }
        Some(AbsoluteUri { scheme, rest })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip(s: &str) -> SipUri<'_> {
        SipUri::parse(s).unwrap_or_else(|| panic!("{s}"))
    }

    #[test]
    fn sip_uri_components() {
        let u =
            sip("sips:alice:secret@[2001:db8::10]:5061;transport=tcp;lr?subject=x&priority=urgent");
        assert!(u.secure);
        assert_eq!(u.user, Some("alice"));
        assert_eq!(u.password, Some("secret"));
        assert_eq!(u.host, Host::Ipv6("2001:db8::10"));
        assert_eq!(u.port, Some(5061));
        assert_eq!(u.transport(), Some("tcp"));
        assert!(u.lr());
        assert_eq!(u.headers, Some("subject=x&priority=urgent"));
    }

    // RFC 4475 section 3.1.1.9: the user part may hold ';' and an escaped '@'.
    #[test]
    fn semicolon_in_user_part() {
        let u = sip("sip:user;par=u%40example.net@example.com");
        assert_eq!(u.user, Some("user;par=u%40example.net"));
        assert_eq!(u.host, Host::Domain("example.com"));
        assert!(u.params.is_empty());
    }

    // RFC 5118 section 4.2: an IPv6 address must be bracketed in a SIP URI.
    #[test]
    fn unbracketed_ipv6_host_is_rejected() {
        assert!(SipUri::parse("sip:2001:db8::10").is_none());
        assert_eq!(sip("sip:[2001:db8::10]:5070").port, Some(5070));
        assert_eq!(sip("sip:[2001:db8::10:5070]").port, None);
    }

    // RFC 3261 section 19.1.4: the comparison rules, and its examples of (in)equivalence.
    #[test]
    fn uri_comparison_rfc3261_19_1_4_examples() {
        let eq = [
            (
                "sip:%61lice@atlanta.com;transport=TCP",
                "sip:alice@AtLanTa.CoM;Transport=tcp",
            ),
            ("sip:carol@chicago.com", "sip:carol@chicago.com;newparam=5"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;newparam=5",
            ),
            (
                "sip:biloxi.com;transport=tcp;method=REGISTER?to=sip:bob%40biloxi.com",
                "sip:biloxi.com;method=REGISTER;transport=tcp?to=sip:bob%40biloxi.com",
            ),
            (
                "sip:alice@atlanta.com?subject=project%20x&priority=urgent",
                "sip:alice@atlanta.com?priority=urgent&subject=project%20x",
            ),
        ];
        for (a, b) in eq {
            assert!(sip(a).equivalent(&sip(b)), "{a} == {b}");
            assert!(sip(b).equivalent(&sip(a)), "{b} == {a}");
        }
        let ne = [
            (
                "SIP:ALICE@AtLanTa.CoM;Transport=udp",
                "sip:alice@AtLanTa.CoM;Transport=UDP",
            ),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com:5060"),
            ("sip:bob@biloxi.com", "sip:bob@biloxi.com;transport=udp"),
            (
                "sip:bob@biloxi.com",
                "sip:bob@biloxi.com:6000;transport=tcp",
            ),
            (
                "sip:carol@chicago.com",
                "sip:carol@chicago.com?Subject=next%20meeting",
            ),
            ("sip:bob@phone21.boxesbybob.com", "sip:bob@192.0.2.4"),
            (
                "sip:carol@chicago.com;security=on",
                "sip:carol@chicago.com;security=off",
            ),
        ];
        for (a, b) in ne {
            assert!(!sip(a).equivalent(&sip(b)), "{a} != {b}");
        }
    }

    // RFC 4475 section 3.1.1.3: %HH equals the character, but never unescape twice.
    #[test]
    fn escapes_are_decoded_once() {
        assert!(sip("sip:%75se%72@example.com").equivalent(&sip("sip:user@example.com")));
        assert!(!sip("sip:value%2541@h").equivalent(&sip("sip:valueA@h")));
        assert!(SipUri::parse("sip:bad%zzescape@h").is_none());
    }

    #[test]
    fn tel_and_absolute_uris() {
        let Some(Uri::Tel(t)) = Uri::parse("tel:+1-201-555-0123;ext=1234") else {
            panic!()
        };
        assert!(t.is_global());
        assert_eq!(t.params.get("ext"), Some(Some("1234")));
        assert!(
            matches!(Uri::parse("tel:+12015550123;ext=1234"), Some(Uri::Tel(u)) if u.equivalent(&t))
        );
        assert!(matches!(
            Uri::parse("nobodyKnowsThisScheme:totallyopaquecontent"),
            Some(Uri::Absolute(_))
        ));
        assert!(Uri::parse("sip:").is_none());
        // found by fuzz/fuzz_targets/parse_uri.rs: a repeated parameter broke reflexivity
        let t = Uri::parse("tel:1;a;a=b").unwrap();
        assert!(t.equivalent(&t));
        assert!(Uri::parse(":x").is_none());
    }
}
