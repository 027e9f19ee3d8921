//! Header field names: the ones this crate types, their compact forms, and canonical spelling.

use std::fmt;

/// The bucket of a header name in [`NAME_BUCKETS`]; case-insensitive. The multipliers were
/// chosen so that the known names do not collide (checked at compile time).
const fn name_hash(len: usize, first: u8, middle: u8, last: u8) -> usize {
    (len + (first | 0x20) as usize + (last | 0x20) as usize * 28 + (middle | 0x20) as usize * 5)
        & 255
}

/// Does the token `input` equal the lower-case name `lower`, ignoring case? Setting bit 0x20
/// lower-cases letters and leaves `-` and digits alone; no other token character can turn into
/// a letter or `-` that way, so comparing eight bytes at a time with the bit set is exact.
#[inline]
pub(crate) fn eq_token_lower(input: &[u8], lower: &[u8]) -> bool {
    if input.len() != lower.len() {
        return false;
    }
    let mut a = input.chunks_exact(8);
    let mut b = lower.chunks_exact(8);
    for (x, y) in (&mut a).zip(&mut b) {
        let (Ok(x), Ok(y)) = (<[u8; 8]>::try_from(x), <[u8; 8]>::try_from(y)) else {
            return false;
        };
        if u64::from_le_bytes(x) | 0x2020_2020_2020_2020 != u64::from_le_bytes(y) {
            return false;
        }
    }
    a.remainder()
        .iter()
        .zip(b.remainder())
        .all(|(x, y)| x | 0x20 == *y)
}

/// Setting 0x20 in every byte lower-cases the letters of a token (see [`eq_token_lower`]).
const LOW: u64 = 0x2020_2020_2020_2020;

/// A known name's key words: the first and last eight bytes (lower case; for names shorter
/// than eight bytes, both the name zero-padded), bytes 8 to 16, and the length.
#[derive(Clone, Copy)]
struct NameKey {
    first: u64,
    last: u64,
    middle: u64,
    len: usize,
}

const fn le_word(b: &[u8], from: usize, len: usize) -> u64 {
    let mut v = 0u64;
    let mut j = 0;
    while j < 8 && j < len {
        v |= (b[from + j] as u64) << (8 * j);
        j += 1;
    }
    v
}

const fn name_key(n: &[u8]) -> NameKey {
    let len = n.len();
    let first = le_word(n, 0, len);
    let last = if len >= 8 {
        le_word(n, len - 8, 8)
    } else {
        first
    };
    let middle = if len > 8 { le_word(n, 8, len - 8) } else { 0 };
    NameKey {
        first,
        last,
        middle,
        len,
    }
}

/// The bucket of a name's key words. The multiplier was chosen so that the known names do
/// not collide (checked at compile time).
#[inline]
const fn key_hash(first: u64, last: u64) -> usize {
    ((first ^ last.rotate_left(5)).wrapping_mul(0x3d96_bfb1_2cd6_6a73) >> 56) as usize
}

/// `KEY_BUCKETS[key_hash]` is 1 + the index of the known name with that hash, or 0.
const fn build_key_buckets(names: &[&[u8]]) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < names.len() {
        let k = name_key(names[i]);
        let h = key_hash(k.first, k.last);
        assert!(t[h] == 0, "header name key collision: change key_hash");
        assert!(k.len <= 24, "header names are at most 24 bytes");
        t[h] = (i + 1) as u8;
        i += 1;
    }
    t
}

const fn name_keys(names: &[&[u8]]) -> [NameKey; NAME_COUNT] {
    let mut t = [NameKey {
        first: 0,
        last: 0,
        middle: 0,
        len: 0,
    }; NAME_COUNT];
    let mut i = 0;
    while i < names.len() {
        t[i] = name_key(names[i]);
        i += 1;
    }
    t
}

/// `SHORT_MASK[len]` keeps the first `len` bytes of a word (for names under eight bytes).
static SHORT_MASK: [u64; 8] = [
    0,
    0xff,
    0xffff,
    0xff_ffff,
    0xffff_ffff,
    0xff_ffff_ffff,
    0xffff_ffff_ffff,
    0xff_ffff_ffff_ffff,
];

/// The names nearly every message carries, matched by length and key words against
/// constants: no hash and no table loads on the way to the answer. (Names of up to 16
/// bytes are wholly covered by their first and last eight bytes.)
#[inline]
fn common_name(len: usize, first: u64, last: u64) -> Option<HeaderName> {
    use HeaderName as N;
    macro_rules! key {
        ($n:literal) => {{
            const K: NameKey = name_key($n);
            (K.first, K.last)
        }};
    }
    let w = (first, last);
    Some(match len {
        2 if w == key!(b"to") => N::To,
        3 if w == key!(b"via") => N::Via,
        4 if w == key!(b"from") => N::From,
        4 if w == key!(b"cseq") => N::CSeq,
        5 if w == key!(b"allow") => N::Allow,
        5 if w == key!(b"route") => N::Route,
        7 if w == key!(b"call-id") => N::CallId,
        7 if w == key!(b"contact") => N::Contact,
        7 if w == key!(b"expires") => N::Expires,
        9 if w == key!(b"supported") => N::Supported,
        10 if w == key!(b"user-agent") => N::UserAgent,
        12 if w == key!(b"content-type") => N::ContentType,
        12 if w == key!(b"max-forwards") => N::MaxForwards,
        12 if w == key!(b"record-route") => N::RecordRoute,
        14 if w == key!(b"content-length") => N::ContentLength,
        _ => return None,
    })
}

/// The little-endian word of `b[at..at + 8]`, or `None` past the end.
#[inline]
fn word_at(b: &[u8], at: usize) -> Option<u64> {
    let w: [u8; 8] = b.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(w))
}

/// `NAME_BUCKETS[hash]` is 1 + the index of the known name with that hash, or 0.
const fn build_buckets(names: &[&[u8]]) -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < names.len() {
        let n = names[i];
        let h = name_hash(n.len(), n[0], n[n.len() / 2], n[n.len() - 1]);
        assert!(t[h] == 0, "header name hash collision: change name_hash");
        t[h] = (i + 1) as u8;
        i += 1;
    }
    t
}

macro_rules! header_names {
    ($( $(#[$doc:meta])* $variant:ident = $canon:literal, lower = $lower:literal $(, compact = $compact:literal)? ; )*) => {
        /// A header field name. Names this crate knows get their own variant (matched
        /// case-insensitively, compact forms included, RFC 3261 section 7.3.3); any other name is
        /// [`HeaderName::Other`] and its text stays available from the raw header.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum HeaderName {
            $( $(#[$doc])* $variant, )*
            /// A header this crate does not know; kept verbatim and in order.
            Other,
        }

        /// The known names in lower case, in declaration order.
        const LOWER_NAMES: &[&[u8]] = &[$($lower),*];
        const NAME_COUNT: usize = LOWER_NAMES.len();
        static NAME_BUCKETS: [u8; 256] = build_buckets(LOWER_NAMES);
        static KEY_BUCKETS: [u8; 256] = build_key_buckets(LOWER_NAMES);
        static NAME_KEYS: [NameKey; NAME_COUNT] = name_keys(LOWER_NAMES);

        impl HeaderName {
            /// Every known name, in declaration order.
            pub const ALL: &'static [HeaderName] = &[$(HeaderName::$variant),*];

            /// The canonical (long-form) spelling, `""` for [`HeaderName::Other`].
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( HeaderName::$variant => $canon, )*
                    HeaderName::Other => "",
                }
            }

            /// The compact form defined for this header, if any.
            pub const fn compact(self) -> Option<char> {
                match self {
                    $( $( HeaderName::$variant => Some($compact), )? )*
                    _ => None,
                }
            }

            /// Identifies a header name, case-insensitively, long or compact form.
            pub fn from_name(name: &str) -> HeaderName {
                Self::from_bytes(name.as_bytes())
            }

            /// The name of the token `data[start..end]` (a header line's name, so the input
            /// goes on after it): compares whole words at a time.
            #[inline]
            pub(crate) fn from_token_at(data: &[u8], start: usize, end: usize) -> HeaderName {
                let len = end.wrapping_sub(start);
                let words = if len >= 8 {
                    // both words lie inside the name
                    word_at(data, start)
                        .zip(word_at(data, end.wrapping_sub(8)))
                        .map(|(f, l)| (f | LOW, l | LOW))
                } else if len >= 2 {
                    // the bytes after the name are masked off
                    word_at(data, start).map(|w| {
                        let w = (w | LOW) & SHORT_MASK[len & 7];
                        (w, w)
                    })
                } else {
                    None
                };
                let (Some((first, last)), true) = (words, len <= 24) else {
                    return Self::from_bytes(data.get(start..end).unwrap_or(&[]));
                };
                if let Some(n) = common_name(len, first, last) {
                    return n;
                }
                match KEY_BUCKETS[key_hash(first, last)] {
                    0 => HeaderName::Other,
                    i => {
                        let i = usize::from(i) - 1;
                        let Some(k) = NAME_KEYS.get(i) else {
                            return HeaderName::Other;
                        };
                        let same = k.first == first
                            && k.last == last
                            && k.len == len
                            && (len <= 16
                                || word_at(data, start + 8).map(|w| w | LOW) == Some(k.middle));
                        if same {
                            HeaderName::ALL[i]
                        } else {
                            HeaderName::Other
                        }
                    }
                }
            }

            /// [`HeaderName::from_name`] on bytes.
            pub(crate) fn from_bytes(b: &[u8]) -> HeaderName {
                if b.len() == 1 {
                    return match char::from(b[0].to_ascii_lowercase()) {
                        $( $( c if c == $compact => HeaderName::$variant, )? )*
                        _ => HeaderName::Other,
                    };
                }
                // A perfect hash over (length, first, middle and last byte) picks the only
                // candidate; one case-insensitive compare confirms it.
                let Some(&last) = b.last() else {
                    return HeaderName::Other;
                };
                let h = name_hash(b.len(), b[0], b[b.len() / 2], last);
                match NAME_BUCKETS[h] {
                    0 => HeaderName::Other,
                    i => {
                        let i = usize::from(i) - 1;
                        if eq_token_lower(b, LOWER_NAMES[i]) {
                            HeaderName::ALL[i]
                        } else {
                            HeaderName::Other
                        }
                    }
                }
            }
        }
    };
}

header_names! {
    /// `Accept` (RFC 3261 section 20.1).
    Accept = "Accept", lower = b"accept";
    /// `Accept-Contact` (RFC 3841), compact `a`; kept untyped.
    AcceptContact = "Accept-Contact", lower = b"accept-contact", compact = 'a';
    /// `Accept-Encoding` (20.2).
    AcceptEncoding = "Accept-Encoding", lower = b"accept-encoding";
    /// `Accept-Language` (20.3).
    AcceptLanguage = "Accept-Language", lower = b"accept-language";
    /// `Alert-Info` (20.4).
    AlertInfo = "Alert-Info", lower = b"alert-info";
    /// `Allow` (20.5).
    Allow = "Allow", lower = b"allow";
    /// `Allow-Events` (RFC 6665), compact `u`.
    AllowEvents = "Allow-Events", lower = b"allow-events", compact = 'u';
    /// `Authentication-Info` (20.6).
    AuthenticationInfo = "Authentication-Info", lower = b"authentication-info";
    /// `Authorization` (20.7).
    Authorization = "Authorization", lower = b"authorization";
    /// `Call-ID` (20.8), compact `i`.
    CallId = "Call-ID", lower = b"call-id", compact = 'i';
    /// `Call-Info` (20.9).
    CallInfo = "Call-Info", lower = b"call-info";
    /// `Contact` (20.10), compact `m`.
    Contact = "Contact", lower = b"contact", compact = 'm';
    /// `Content-Disposition` (20.11).
    ContentDisposition = "Content-Disposition", lower = b"content-disposition";
    /// `Content-Encoding` (20.12), compact `e`.
    ContentEncoding = "Content-Encoding", lower = b"content-encoding", compact = 'e';
    /// `Content-Language` (20.13).
    ContentLanguage = "Content-Language", lower = b"content-language";
    /// `Content-Length` (20.14), compact `l`.
    ContentLength = "Content-Length", lower = b"content-length", compact = 'l';
    /// `Content-Type` (20.15), compact `c`.
    ContentType = "Content-Type", lower = b"content-type", compact = 'c';
    /// `CSeq` (20.16).
    CSeq = "CSeq", lower = b"cseq";
    /// `Date` (20.17).
    Date = "Date", lower = b"date";
    /// `Error-Info` (20.18).
    ErrorInfo = "Error-Info", lower = b"error-info";
    /// `Event` (RFC 6665), compact `o`.
    Event = "Event", lower = b"event", compact = 'o';
    /// `Expires` (20.19).
    Expires = "Expires", lower = b"expires";
    /// `From` (20.20), compact `f`.
    From = "From", lower = b"from", compact = 'f';
    /// `Identity` (RFC 8224), compact `y`; kept untyped.
    Identity = "Identity", lower = b"identity", compact = 'y';
    /// `Identity-Info` (RFC 4474), compact `n`; kept untyped.
    IdentityInfo = "Identity-Info", lower = b"identity-info", compact = 'n';
    /// `In-Reply-To` (20.21).
    InReplyTo = "In-Reply-To", lower = b"in-reply-to";
    /// `Max-Forwards` (20.22).
    MaxForwards = "Max-Forwards", lower = b"max-forwards";
    /// `MIME-Version` (20.24).
    MimeVersion = "MIME-Version", lower = b"mime-version";
    /// `Min-Expires` (20.23).
    MinExpires = "Min-Expires", lower = b"min-expires";
    /// `Min-SE` (RFC 4028).
    MinSe = "Min-SE", lower = b"min-se";
    /// `Organization` (20.25).
    Organization = "Organization", lower = b"organization";
    /// `Priority` (20.26).
    Priority = "Priority", lower = b"priority";
    /// `Proxy-Authenticate` (20.27).
    ProxyAuthenticate = "Proxy-Authenticate", lower = b"proxy-authenticate";
    /// `Proxy-Authorization` (20.28).
    ProxyAuthorization = "Proxy-Authorization", lower = b"proxy-authorization";
    /// `Proxy-Require` (20.29).
    ProxyRequire = "Proxy-Require", lower = b"proxy-require";
    /// `RAck` (RFC 3262).
    RAck = "RAck", lower = b"rack";
    /// `Record-Route` (20.30).
    RecordRoute = "Record-Route", lower = b"record-route";
    /// `Refer-To` (RFC 3515), compact `r`.
    ReferTo = "Refer-To", lower = b"refer-to", compact = 'r';
    /// `Referred-By` (RFC 3892), compact `b`.
    ReferredBy = "Referred-By", lower = b"referred-by", compact = 'b';
    /// `Reject-Contact` (RFC 3841), compact `j`; kept untyped.
    RejectContact = "Reject-Contact", lower = b"reject-contact", compact = 'j';
    /// `Reply-To` (20.31).
    ReplyTo = "Reply-To", lower = b"reply-to";
    /// `Request-Disposition` (RFC 3841), compact `d`; kept untyped.
    RequestDisposition = "Request-Disposition", lower = b"request-disposition", compact = 'd';
    /// `Require` (20.32).
    Require = "Require", lower = b"require";
    /// `Retry-After` (20.33).
    RetryAfter = "Retry-After", lower = b"retry-after";
    /// `Route` (20.34).
    Route = "Route", lower = b"route";
    /// `RSeq` (RFC 3262).
    RSeq = "RSeq", lower = b"rseq";
    /// `Server` (20.35).
    Server = "Server", lower = b"server";
    /// `Session-Expires` (RFC 4028), compact `x`.
    SessionExpires = "Session-Expires", lower = b"session-expires", compact = 'x';
    /// `Subject` (20.36), compact `s`.
    Subject = "Subject", lower = b"subject", compact = 's';
    /// `Subscription-State` (RFC 6665).
    SubscriptionState = "Subscription-State", lower = b"subscription-state";
    /// `Supported` (20.37), compact `k`.
    Supported = "Supported", lower = b"supported", compact = 'k';
    /// `Timestamp` (20.38).
    Timestamp = "Timestamp", lower = b"timestamp";
    /// `To` (20.39), compact `t`.
    To = "To", lower = b"to", compact = 't';
    /// `Unsupported` (20.40).
    Unsupported = "Unsupported", lower = b"unsupported";
    /// `User-Agent` (20.41).
    UserAgent = "User-Agent", lower = b"user-agent";
    /// `Via` (20.42), compact `v`.
    Via = "Via", lower = b"via", compact = 'v';
    /// `Warning` (20.43).
    Warning = "Warning", lower = b"warning";
    /// `WWW-Authenticate` (20.44).
    WwwAuthenticate = "WWW-Authenticate", lower = b"www-authenticate";
}

impl HeaderName {
    /// May a single header line carry several comma-separated values of this header
    /// (RFC 3261 section 7.3.1)? The typed parser splits those lines.
    pub const fn is_list(self) -> bool {
        use HeaderName::*;
        matches!(
            self,
            Accept
                | AcceptEncoding
                | AcceptLanguage
                | AlertInfo
                | Allow
                | AllowEvents
                | AuthenticationInfo
                | CallInfo
                | Contact
                | ContentEncoding
                | ContentLanguage
                | ErrorInfo
                | InReplyTo
                | ProxyRequire
                | RecordRoute
                | Require
                | Route
                | Supported
                | Unsupported
                | Via
                | Warning
        )
    }

    /// Must a message carry this header at most once (RFC 3261 section 7.3.1: only headers
    /// defined as comma-separated lists, and the authentication headers, may repeat)?
    pub const fn is_single(self) -> bool {
        use HeaderName::*;
        !self.is_list()
            && !matches!(
                self,
                Authorization
                    | ProxyAuthorization
                    | WwwAuthenticate
                    | ProxyAuthenticate
                    | Other
                    | AcceptContact
                    | RejectContact
                    | RequestDisposition
                    | Identity
                    | IdentityInfo
            )
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeaderName::Other => f.write_str("extension"),
            n => f.write_str(n.as_str()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 3261 section 7.3.3: compact forms are equivalent to the long names.
    #[test]
    fn compact_forms_map_to_long_names() {
        for (c, n) in [
            ("v", HeaderName::Via),
            ("I", HeaderName::CallId),
            ("m", HeaderName::Contact),
            ("l", HeaderName::ContentLength),
            ("k", HeaderName::Supported),
            ("o", HeaderName::Event),
            ("x", HeaderName::SessionExpires),
            ("q", HeaderName::Other),
        ] {
            assert_eq!(HeaderName::from_name(c), n, "{c}");
        }
    }

    // RFC 3261 section 7.3.1: field names are case-insensitive.
    #[test]
    fn header_names_are_case_insensitive() {
        for &n in HeaderName::ALL {
            assert_eq!(HeaderName::from_name(n.as_str()), n);
            assert_eq!(HeaderName::from_name(&n.as_str().to_ascii_uppercase()), n);
            assert_eq!(HeaderName::from_name(&n.as_str().to_ascii_lowercase()), n);
        }
        assert_eq!(HeaderName::from_name("C%6Fntact"), HeaderName::Other);
        // the word-at-a-time lookup of header lines agrees, with or without bytes after
        for &n in HeaderName::ALL {
            for name in [
                n.as_str().to_owned(),
                n.as_str().to_ascii_uppercase(),
                n.as_str().to_ascii_lowercase(),
            ] {
                let line = format!("{name}: value of some length\r\n");
                let at = |d: &[u8]| HeaderName::from_token_at(d, 0, name.len());
                assert_eq!(at(line.as_bytes()), n, "{name}");
                assert_eq!(at(name.as_bytes()), n, "{name} alone");
                for other in [format!("{name}x"), format!("x{name}"), format!("{name}-")] {
                    let l = format!("{other}: v\r\n");
                    let got = HeaderName::from_token_at(l.as_bytes(), 0, other.len());
                    assert_eq!(got, HeaderName::from_name(&other), "{other}");
                }
            }
        }
        assert_eq!(
            HeaderName::from_name("X-A-Very-Long-Header-Name-Indeed"),
            HeaderName::Other
        );
    }
}
