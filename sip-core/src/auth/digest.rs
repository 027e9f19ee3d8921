//! The digest computations of RFC 7616 section 3.4 (as SIP uses them, RFC 3261 section 22.4
//! and RFC 8760), and the challenge and credential values of the four authentication
//! headers: read from the typed [`Auth`] value, written back with proper quoting.

use std::borrow::Cow;
use std::fmt;

use md5::Md5;
use sha2::{Digest, Sha256, Sha512_256};

use crate::message::{unquote, Auth, Param, Params};

/// A digest algorithm (RFC 7616 section 3.2 and 6.1; RFC 8760 section 2.1 for SIP). The
/// `-sess` variants hash the nonce and cnonce into A1 (RFC 7616 section 3.4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// `MD5`: kept for backward compatibility only (RFC 7616 section 3.7).
    Md5,
    /// `MD5-sess`.
    Md5Sess,
    /// `SHA-256`: mandatory to implement (RFC 7616 section 3.7, RFC 8760 section 2.1).
    Sha256,
    /// `SHA-256-sess`.
    Sha256Sess,
    /// `SHA-512-256`: SHA-512/256 of FIPS 180-4 section 6.7.
    Sha512_256,
    /// `SHA-512-256-sess`.
    Sha512_256Sess,
}

impl Algorithm {
    /// Every algorithm, strongest first.
    pub const ALL: [Algorithm; 6] = [
        Algorithm::Sha512_256,
        Algorithm::Sha512_256Sess,
        Algorithm::Sha256,
        Algorithm::Sha256Sess,
        Algorithm::Md5,
        Algorithm::Md5Sess,
    ];

    /// The name as written in the `algorithm` directive.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Md5Sess => "MD5-sess",
            Algorithm::Sha256 => "SHA-256",
            Algorithm::Sha256Sess => "SHA-256-sess",
            Algorithm::Sha512_256 => "SHA-512-256",
            Algorithm::Sha512_256Sess => "SHA-512-256-sess",
        }
    }

    /// The algorithm an `algorithm` directive names (case-insensitive, RFC 7616 section
    /// 3.3); `None` for one this crate does not implement.
    pub fn parse(name: &str) -> Option<Algorithm> {
        Algorithm::ALL
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(name))
    }

    /// Is this a `-sess` variant?
    pub fn is_session(self) -> bool {
        matches!(
            self,
            Algorithm::Md5Sess | Algorithm::Sha256Sess | Algorithm::Sha512_256Sess
        )
    }

    /// The hash function without `-sess` (what a stored HA1 is computed with).
    pub fn base(self) -> Algorithm {
        match self {
            Algorithm::Md5 | Algorithm::Md5Sess => Algorithm::Md5,
            Algorithm::Sha256 | Algorithm::Sha256Sess => Algorithm::Sha256,
            Algorithm::Sha512_256 | Algorithm::Sha512_256Sess => Algorithm::Sha512_256,
        }
    }

    /// The length of a digest in hexadecimal digits (32 for MD5, 64 for the others).
    pub fn hex_len(self) -> usize {
        match self.base() {
            Algorithm::Md5 => 32,
            _ => 64,
        }
    }

    /// `H(data)` over the concatenation of `parts`, in lower-case hexadecimal (RFC 7616
    /// section 3.4: "the output of H is a string of lower-case hexadecimal digits").
    pub fn hash(self, parts: &[&[u8]]) -> Hex {
        match self.base() {
            Algorithm::Md5 => Hex::of(&digest_parts::<Md5>(parts)),
            Algorithm::Sha256 => Hex::of(&digest_parts::<Sha256>(parts)),
            _ => Hex::of(&digest_parts::<Sha512_256>(parts)),
        }
    }
}

fn digest_parts<D: Digest>(parts: &[&[u8]]) -> impl AsRef<[u8]> {
    let mut d = D::new();
    for p in parts {
        d.update(p);
    }
    d.finalize()
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Algorithm {
    type Err = UnknownAlgorithm;
    fn from_str(s: &str) -> Result<Algorithm, UnknownAlgorithm> {
        Algorithm::parse(s).ok_or(UnknownAlgorithm)
    }
}

/// The error of parsing an [`Algorithm`] this crate does not implement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown digest algorithm")]
pub struct UnknownAlgorithm;

/// A digest in lower-case hexadecimal, kept inline (no allocation).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Hex {
    digits: [u8; 64],
    len: u8,
}

impl Hex {
    fn of(bytes: &dyn AsRef<[u8]>) -> Hex {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut h = Hex {
            digits: [0; 64],
            len: 0,
        };
        for (i, b) in bytes.as_ref().iter().take(32).enumerate() {
            h.digits[2 * i] = DIGITS[usize::from(b >> 4)];
            h.digits[2 * i + 1] = DIGITS[usize::from(b & 15)];
            h.len += 2;
        }
        h
    }

    /// Hexadecimal digits (either case) of a digest of 16 to 32 bytes, kept in lower case;
    /// `None` for anything else.
    pub fn from_hex(digits: &str) -> Option<Hex> {
        let b = digits.as_bytes();
        if !(32..=64).contains(&b.len()) || b.len() % 2 != 0 {
            return None;
        }
        let mut h = Hex {
            digits: [0; 64],
            len: b.len() as u8,
        };
        for (d, &c) in h.digits.iter_mut().zip(b) {
            if !c.is_ascii_hexdigit() {
                return None;
            }
            *d = c.to_ascii_lowercase();
        }
        Some(h)
    }

    /// The digits.
    pub fn as_str(&self) -> &str {
        // only ASCII hexadecimal digits were written
        std::str::from_utf8(self.as_bytes()).unwrap_or("")
    }

    /// The digits as bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.digits[..usize::from(self.len)]
    }
}

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Hex({})", self.as_str())
    }
}

/// Quality of protection (RFC 7616 section 3.3 `qop`, RFC 3261 section 22.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Qop {
    /// `auth`: authentication of the method and Request-URI.
    Auth,
    /// `auth-int`: the body as well (A2 holds `H(entity-body)`, RFC 7616 section 3.4.3).
    AuthInt,
}

impl Qop {
    /// The token as written.
    pub fn as_str(self) -> &'static str {
        match self {
            Qop::Auth => "auth",
            Qop::AuthInt => "auth-int",
        }
    }

    /// The qop a token names (case-insensitive); `None` for an unknown one.
    pub fn parse(token: &str) -> Option<Qop> {
        [Qop::Auth, Qop::AuthInt]
            .into_iter()
            .find(|q| q.as_str().eq_ignore_ascii_case(token))
    }
}

/// The qop values a challenge offers (the `qop-options` of RFC 3261 section 25.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct QopOptions {
    /// `auth` is offered.
    pub auth: bool,
    /// `auth-int` is offered.
    pub auth_int: bool,
}

impl QopOptions {
    /// Is this qop offered?
    pub fn offers(self, qop: Qop) -> bool {
        match qop {
            Qop::Auth => self.auth,
            Qop::AuthInt => self.auth_int,
        }
    }

    /// What a client answers with: `auth` when offered, else `auth-int`.
    pub fn preferred(self) -> Option<Qop> {
        if self.auth {
            Some(Qop::Auth)
        } else if self.auth_int {
            Some(Qop::AuthInt)
        } else {
            None
        }
    }

    /// The options of a quoted, comma-separated list; unknown tokens are skipped (RFC 7616
    /// section 3.3: "Unrecognized options MUST be ignored").
    pub fn parse(list: &str) -> QopOptions {
        let mut o = QopOptions::default();
        for t in list.split(',') {
            match Qop::parse(t.trim_matches([' ', '\t', '\r', '\n'])) {
                Some(Qop::Auth) => o.auth = true,
                Some(Qop::AuthInt) => o.auth_int = true,
                None => {}
            }
        }
        o
    }
}

/// `H(username ":" realm ":" password)` with the hash of `algorithm` (the `-sess` suffix is
/// ignored: this is the HA1 a server stores, RFC 7616 section 3.4.2).
pub fn ha1(algorithm: Algorithm, username: &str, realm: &str, password: &str) -> Hex {
    algorithm.hash(&[
        username.as_bytes(),
        b":",
        realm.as_bytes(),
        b":",
        password.as_bytes(),
    ])
}

/// `H(username ":" realm)`: the hashed username of RFC 7616 section 3.4.4.
pub fn userhash(algorithm: Algorithm, username: &str, realm: &str) -> Hex {
    algorithm.hash(&[username.as_bytes(), b":", realm.as_bytes()])
}

/// What a digest response is computed over besides HA1 (RFC 7616 section 3.4.1).
#[derive(Debug, Clone, Copy)]
pub struct ResponseInput<'a> {
    /// The nonce, unquoted.
    pub nonce: &'a str,
    /// The nonce-count (written as 8 hexadecimal digits).
    pub nc: u32,
    /// The cnonce, unquoted.
    pub cnonce: &'a str,
    /// The qop answered with; `None` for the RFC 2069 form that RFC 3261 section 22.4
    /// keeps for backward compatibility (no cnonce, no nonce-count).
    pub qop: Option<Qop>,
    /// The request method.
    pub method: &'a str,
    /// The `uri` directive (in SIP, the Request-URI: RFC 3261 section 22.4).
    pub uri: &'a str,
    /// The body, hashed for `auth-int`.
    pub body: &'a [u8],
}

/// The nonce-count as written: 8 lower-case hexadecimal digits (RFC 7616 section 3.4).
pub fn nc_text(nc: u32) -> [u8; 8] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 8];
    for (i, o) in out.iter_mut().enumerate() {
        *o = DIGITS[((nc >> (28 - 4 * i)) & 15) as usize];
    }
    out
}

/// The `response` directive (RFC 7616 sections 3.4.1 to 3.4.3): `KD(HA1, nonce ":" nc ":"
/// cnonce ":" qop ":" HA2)`, or `KD(HA1, nonce ":" HA2)` without qop; `ha1` is the stored
/// `H(username:realm:password)`, turned into the session key here for a `-sess` algorithm.
pub fn response(algorithm: Algorithm, ha1: &str, input: &ResponseInput<'_>) -> Hex {
    let session;
    let ha1 = if algorithm.is_session() {
        session = algorithm.hash(&[
            ha1.as_bytes(),
            b":",
            input.nonce.as_bytes(),
            b":",
            input.cnonce.as_bytes(),
        ]);
        session.as_str()
    } else {
        ha1
    };
    let body_hash;
    let ha2 = match input.qop {
        Some(Qop::AuthInt) => {
            body_hash = algorithm.hash(&[input.body]);
            algorithm.hash(&[
                input.method.as_bytes(),
                b":",
                input.uri.as_bytes(),
                b":",
                body_hash.as_bytes(),
            ])
        }
        _ => algorithm.hash(&[input.method.as_bytes(), b":", input.uri.as_bytes()]),
    };
    match input.qop {
        Some(qop) => algorithm.hash(&[
            ha1.as_bytes(),
            b":",
            input.nonce.as_bytes(),
            b":",
            &nc_text(input.nc),
            b":",
            input.cnonce.as_bytes(),
            b":",
            qop.as_str().as_bytes(),
            b":",
            ha2.as_bytes(),
        ]),
        None => algorithm.hash(&[
            ha1.as_bytes(),
            b":",
            input.nonce.as_bytes(),
            b":",
            ha2.as_bytes(),
        ]),
    }
}

/// The value of a directive with the quotes and escapes of a quoted string removed.
fn value<'a>(params: &Params<'a>, name: &str) -> Option<Cow<'a, str>> {
    let p = params.iter().find(|p| p.name.eq_ignore_ascii_case(name))?;
    param_value(&p)
}

fn param_value<'a>(p: &Param<'a>) -> Option<Cow<'a, str>> {
    let quoted = p.value.is_some_and(|v| v.starts_with('"'));
    let v = p.unquoted()?;
    Some(if quoted { unquote(v) } else { Cow::Borrowed(v) })
}

/// The realm of a challenge or credentials, read without checking the rest (to find the
/// credentials of one realm among several).
pub(crate) fn realm_of<'a>(auth: &Auth<'a>) -> Option<Cow<'a, str>> {
    if !auth.scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    value(&auth.params, "realm")
}

fn flag(params: &Params<'_>, name: &str) -> bool {
    value(params, name).is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// Writes `s` as a quoted string: `"` and `\` escaped, and the control characters that a
/// quoted-pair allows (RFC 3261 section 25.1). CR, LF and NUL cannot be written at all;
/// the editor and builders refuse them (they would start a new header line).
pub fn push_quoted(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' || (c.is_ascii_control() && !matches!(c, '\t' | '\r' | '\n')) {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// A digest challenge: the value of a WWW-Authenticate or Proxy-Authenticate header
/// (RFC 7616 section 3.3, RFC 3261 section 25.1 `digest-cln`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge<'a> {
    /// The protection space.
    pub realm: Cow<'a, str>,
    /// The server's nonce.
    pub nonce: Cow<'a, str>,
    /// Returned unchanged by the client.
    pub opaque: Option<Cow<'a, str>>,
    /// The algorithm: `MD5` when absent; `None` when it names one this crate does not
    /// implement (RFC 7616 section 3.3: such a challenge is ignored).
    pub algorithm: Option<Algorithm>,
    /// The qop values offered; `None` when there is no `qop` directive (RFC 2069 form).
    pub qop: Option<QopOptions>,
    /// `stale=true`: the nonce was stale, the credentials were fine (retry without asking
    /// the user again).
    pub stale: bool,
    /// `userhash=true`: the server wants the hashed username (RFC 7616 section 3.4.4).
    pub userhash: bool,
}

impl<'a> Challenge<'a> {
    /// The digest challenge in a typed header value; `None` for another scheme or one
    /// without realm or nonce.
    pub fn parse(auth: &Auth<'a>) -> Option<Challenge<'a>> {
        if !auth.scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        let p = &auth.params;
        Some(Challenge {
            realm: value(p, "realm")?,
            nonce: value(p, "nonce")?,
            opaque: value(p, "opaque"),
            algorithm: match value(p, "algorithm") {
                Some(a) => Algorithm::parse(&a),
                None => Some(Algorithm::Md5),
            },
            qop: value(p, "qop").map(|q| QopOptions::parse(&q)),
            stale: flag(p, "stale"),
            userhash: flag(p, "userhash"),
        })
    }
}

impl fmt::Display for Challenge<'_> {
    /// `Digest realm="...", nonce="...", algorithm=..., qop="auth,auth-int"[, opaque=...]
    /// [, stale=true][, userhash=true]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(160);
        s.push_str("Digest realm=");
        push_quoted(&mut s, &self.realm);
        s.push_str(", nonce=");
        push_quoted(&mut s, &self.nonce);
        if let Some(a) = self.algorithm {
            s.push_str(", algorithm=");
            s.push_str(a.as_str());
        }
        if let Some(q) = self.qop {
            let list = match (q.auth, q.auth_int) {
                (true, true) => "auth,auth-int",
                (true, false) => "auth",
                (false, true) => "auth-int",
                (false, false) => "",
            };
            s.push_str(", qop=\"");
            s.push_str(list);
            s.push('"');
        }
        if let Some(o) = &self.opaque {
            s.push_str(", opaque=");
            push_quoted(&mut s, o);
        }
        if self.stale {
            s.push_str(", stale=true");
        }
        if self.userhash {
            s.push_str(", userhash=true");
        }
        f.write_str(&s)
    }
}

/// Why credentials cannot be read (a server answers 400, RFC 7616 section 3.4 / RFC 2617
/// section 3.2.2: "If a directive or its value is improper, or required directives are
/// missing, the proper response is 400 Bad Request").
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// Not the Digest scheme.
    #[error("not digest credentials")]
    NotDigest,
    /// A required directive is missing.
    #[error("missing {0} directive")]
    Missing(&'static str),
    /// A directive has a value its grammar does not allow.
    #[error("invalid {0} directive")]
    Invalid(&'static str),
}

/// Digest credentials: the value of an Authorization or Proxy-Authorization header (RFC
/// 7616 section 3.4, RFC 3261 section 25.1 `digest-response`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials<'a> {
    /// The username; the userhash when `userhash` is set; decoded from `username*` (RFC
    /// 7616 section 3.4.4, RFC 5987 encoding) when that was sent.
    pub username: Cow<'a, str>,
    /// The protection space.
    pub realm: Cow<'a, str>,
    /// The server's nonce.
    pub nonce: Cow<'a, str>,
    /// The digest-uri.
    pub uri: Cow<'a, str>,
    /// The response digest (hexadecimal).
    pub response: Cow<'a, str>,
    /// `MD5` when absent; `None` when it names one this crate does not implement.
    pub algorithm: Option<Algorithm>,
    /// The client nonce (with qop).
    pub cnonce: Option<Cow<'a, str>>,
    /// The opaque value of the challenge.
    pub opaque: Option<Cow<'a, str>>,
    /// The qop answered with; `None` in the RFC 2069 form.
    pub qop: Option<Qop>,
    /// The nonce-count (with qop).
    pub nc: Option<u32>,
    /// `userhash=true`.
    pub userhash: bool,
}

/// `%XX` decoding of the value of an RFC 5987 `ext-value` in UTF-8 (`UTF-8''J%C3%A4s`).
fn ext_value(v: &str) -> Option<String> {
    let (charset, rest) = v.split_once('\'')?;
    let (_language, text) = rest.split_once('\'')?;
    if !charset.eq_ignore_ascii_case("UTF-8") {
        return None;
    }
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl<'a> Credentials<'a> {
    /// The digest credentials in a typed header value, checked against RFC 7616 section
    /// 3.4: username (or `username*`), realm, nonce, uri and response present; with a qop,
    /// a cnonce and an 8-digit nonce-count; without one, neither.
    pub fn parse(auth: &Auth<'a>) -> Result<Credentials<'a>, CredentialsError> {
        use CredentialsError::{Invalid, Missing};
        if !auth.scheme.eq_ignore_ascii_case("Digest") {
            return Err(CredentialsError::NotDigest);
        }
        // one pass over the list: the first of each directive counts
        const NAMES: [&str; 12] = [
            "username",
            "username*",
            "realm",
            "nonce",
            "uri",
            "response",
            "algorithm",
            "cnonce",
            "opaque",
            "qop",
            "nc",
            "userhash",
        ];
        let mut found: [Option<Param<'a>>; 12] = [None; 12];
        for p in auth.params.iter() {
            if let Some(i) = NAMES.iter().position(|n| n.eq_ignore_ascii_case(p.name)) {
                found[i].get_or_insert(p);
            }
        }
        let get = |i: usize| found[i].as_ref().and_then(param_value);
        let [username, username_ext, realm, nonce, uri, response, algorithm, cnonce, opaque, qop, nc, userhash] =
            std::array::from_fn(get);
        let userhash = userhash.is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let username = match (username, username_ext) {
            (Some(u), None) => u,
            // section 3.4.4: username* only for a name that cannot be sent as it is, and
            // never with userhash
            (None, Some(ext)) if !userhash => {
                Cow::Owned(ext_value(&ext).ok_or(Invalid("username*"))?)
            }
            (None, None) => return Err(Missing("username")),
            _ => return Err(Invalid("username*")),
        };
        let qop = match qop {
            Some(q) => Some(Qop::parse(&q).ok_or(Invalid("qop"))?),
            None => None,
        };
        let nc = match nc {
            Some(n) if n.len() == 8 && n.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(u32::from_str_radix(&n, 16).map_err(|_| Invalid("nc"))?)
            }
            Some(_) => return Err(Invalid("nc")),
            None => None,
        };
        match qop {
            Some(_) if cnonce.is_none() => return Err(Missing("cnonce")),
            Some(_) if nc.is_none() => return Err(Missing("nc")),
            None if cnonce.is_some() || nc.is_some() => return Err(Invalid("qop")),
            _ => {}
        }
        let response = response.ok_or(Missing("response"))?;
        if response.is_empty() || !response.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Invalid("response"));
        }
        Ok(Credentials {
            username,
            realm: realm.ok_or(Missing("realm"))?,
            nonce: nonce.ok_or(Missing("nonce"))?,
            uri: uri.ok_or(Missing("uri"))?,
            response,
            algorithm: match algorithm {
                Some(a) => Algorithm::parse(&a),
                None => Some(Algorithm::Md5),
            },
            cnonce,
            opaque,
            qop,
            nc,
            userhash,
        })
    }
}

impl fmt::Display for Credentials<'_> {
    /// `Digest username="...", realm="...", nonce="...", uri="...", response="...",
    /// algorithm=...[, cnonce="...", qop=..., nc=...][, opaque="..."][, userhash=true]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = String::with_capacity(256);
        s.push_str("Digest username=");
        push_quoted(&mut s, &self.username);
        s.push_str(", realm=");
        push_quoted(&mut s, &self.realm);
        s.push_str(", nonce=");
        push_quoted(&mut s, &self.nonce);
        s.push_str(", uri=");
        push_quoted(&mut s, &self.uri);
        s.push_str(", response=");
        push_quoted(&mut s, &self.response);
        if let Some(a) = self.algorithm {
            s.push_str(", algorithm=");
            s.push_str(a.as_str());
        }
        if let (Some(qop), Some(cnonce), Some(nc)) = (self.qop, &self.cnonce, self.nc) {
            s.push_str(", cnonce=");
            push_quoted(&mut s, cnonce);
            s.push_str(", qop=");
            s.push_str(qop.as_str());
            s.push_str(", nc=");
            s.extend(nc_text(nc).iter().map(|&b| char::from(b)));
        }
        if let Some(o) = &self.opaque {
            s.push_str(", opaque=");
            push_quoted(&mut s, o);
        }
        if self.userhash {
            s.push_str(", userhash=true");
        }
        f.write_str(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HeaderValue, Message};

    const MUFASA_NONCE: &str = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v";
    const MUFASA_CNONCE: &str = "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ";

    fn mufasa(algorithm: Algorithm) -> Hex {
        let ha1 = ha1(
            algorithm,
            "Mufasa",
            "http-auth@example.org",
            "Circle of Life",
        );
        response(
            algorithm,
            ha1.as_str(),
            &ResponseInput {
                nonce: MUFASA_NONCE,
                nc: 1,
                cnonce: MUFASA_CNONCE,
                qop: Some(Qop::Auth),
                method: "GET",
                uri: "/dir/index.html",
                body: b"",
            },
        )
    }

    #[test]
    fn rfc7616_3_9_1_md5_example() {
        // RFC 7616 3.9.1
        assert_eq!(
            mufasa(Algorithm::Md5).as_str(),
            "8ca523f5e9506fed4657c9700eebdbec"
        );
    }

    #[test]
    fn rfc7616_3_9_1_sha256_example() {
        // RFC 7616 3.9.1
        assert_eq!(
            mufasa(Algorithm::Sha256).as_str(),
            "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
        );
    }

    #[test]
    fn rfc2617_3_5_md5_example() {
        // RFC 2617 3.5 (password "Circle Of Life" with a capital O there)
        let ha1 = ha1(
            Algorithm::Md5,
            "Mufasa",
            "testrealm@host.com",
            "Circle Of Life",
        );
        let r = response(
            Algorithm::Md5,
            ha1.as_str(),
            &ResponseInput {
                nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
                nc: 1,
                cnonce: "0a4f113b",
                qop: Some(Qop::Auth),
                method: "GET",
                uri: "/dir/index.html",
                body: b"",
            },
        );
        assert_eq!(r.as_str(), "6629fae49393a05397450978507c4ef1");
    }

    /// "Jäsøn Doe" of RFC 7616 3.9.2, written as its UTF-8 octets.
    const JASON: &str = "J\u{e4}s\u{f8}n Doe";

    fn jason(algorithm: Algorithm) -> (Hex, Hex) {
        let user = userhash(algorithm, JASON, "api@example.org");
        let ha1 = ha1(algorithm, JASON, "api@example.org", "Secret, or not?");
        let r = response(
            algorithm,
            ha1.as_str(),
            &ResponseInput {
                nonce: "5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK",
                nc: 1,
                cnonce: "NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v",
                qop: Some(Qop::Auth),
                method: "GET",
                uri: "/doe.json",
                body: b"",
            },
        );
        (user, r)
    }

    #[test]
    fn rfc7616_3_9_2_sha512_256_userhash_example_as_corrected_by_erratum_4897() {
        // RFC 7616 3.9.2: SHA-512/256 as FIPS 180-4 section 6.7 defines it (its own
        // initial hash value) gives the values of erratum 4897
        let (user, r) = jason(Algorithm::Sha512_256);
        assert_eq!(
            user.as_str(),
            "793263caabb707a56211940d90411ea4a575adeccb7e360aeb624ed06ece9b0b"
        );
        assert_eq!(
            r.as_str(),
            "3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5"
        );
    }

    #[test]
    fn rfc7616_3_9_2_printed_values_are_sha512_truncated() {
        // RFC 7616 3.9.2 as printed: its username and response are SHA-512 cut to 256
        // bits (erratum 4897), which is not SHA-512/256; checked here so that the
        // difference is known rather than guessed
        fn h(parts: &[&[u8]]) -> String {
            let full = digest_parts::<sha2::Sha512>(parts);
            Hex::of(&full.as_ref()[..32].to_vec()).as_str().to_owned()
        }
        let user = h(&[JASON.as_bytes(), b":api@example.org"]);
        assert_eq!(
            user,
            "488869477bf257147b804c45308cd62ac4e25eb717b12b298c79e62dcea254ec"
        );
        let ha1 = h(&[JASON.as_bytes(), b":api@example.org:Secret, or not?"]);
        let ha2 = h(&[b"GET:/doe.json"]);
        let r = h(&[
            ha1.as_bytes(),
            b":5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK:00000001:",
            b"NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v:auth:",
            ha2.as_bytes(),
        ]);
        assert_eq!(
            r,
            "ae66e67d6b427bd3f120414a82e4acff38e8ecd9101d6c861229025f607a79dd"
        );
        assert_ne!(
            r,
            jason(Algorithm::Sha512_256).1.as_str(),
            "SHA-512/256 differs"
        );
    }

    fn auth_of(header: &str) -> (String, Vec<u8>) {
        let msg = format!(
            "SIP/2.0 401 Unauthorized\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@h>;tag=1\r\n\
             To: <sip:a@h>;tag=2\r\nCall-ID: c\r\nCSeq: 1 REGISTER\r\n{header}\r\nContent-Length: 0\r\n\r\n"
        );
        (header.to_owned(), msg.into_bytes())
    }

    fn with_auth<R>(header: &str, f: impl FnOnce(&Auth<'_>) -> R) -> R {
        let (_, bytes) = auth_of(header);
        let m = Message::parse(&bytes).expect("parses");
        let auth = m
            .headers()
            .find_map(|h| match h.value {
                HeaderValue::Auth(a) => Some(a),
                _ => None,
            })
            .expect("an auth header");
        f(&auth)
    }

    #[test]
    fn rfc7616_3_9_1_challenge_parses() {
        // RFC 7616 3.9.1 (the challenge, on one line)
        with_auth(
            "WWW-Authenticate: Digest realm=\"http-auth@example.org\", qop=\"auth, auth-int\", \
             algorithm=SHA-256, nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
            |a| {
                let c = Challenge::parse(a).expect("a digest challenge");
                assert_eq!(c.realm, "http-auth@example.org");
                assert_eq!(c.nonce, MUFASA_NONCE);
                assert_eq!(c.algorithm, Some(Algorithm::Sha256));
                assert_eq!(
                    c.qop,
                    Some(QopOptions {
                        auth: true,
                        auth_int: true
                    })
                );
                assert_eq!(
                    c.opaque.as_deref(),
                    Some("FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS")
                );
                assert!(!c.stale && !c.userhash);
            },
        );
    }

    #[test]
    fn rfc7616_3_9_1_credentials_parse_and_verify() {
        // RFC 7616 3.9.1 (the SHA-256 Authorization, on one line)
        with_auth(
            "Authorization: Digest username=\"Mufasa\", realm=\"http-auth@example.org\", \
             uri=\"/dir/index.html\", algorithm=SHA-256, \
             nonce=\"7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v\", nc=00000001, \
             cnonce=\"f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ\", qop=auth, \
             response=\"753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1\", \
             opaque=\"FQhe/qaU925kfnzjCev0ciny7QMkPqMAFRtzCUYo5tdS\"",
            |a| {
                let c = Credentials::parse(a).expect("credentials");
                assert_eq!(c.username, "Mufasa");
                assert_eq!(c.nc, Some(1));
                assert_eq!(c.qop, Some(Qop::Auth));
                assert_eq!(c.response, mufasa(Algorithm::Sha256).as_str());
            },
        );
    }

    #[test]
    fn rfc7616_3_4_4_username_star_is_decoded() {
        // RFC 7616 3.4.4 / 3.9.2 (the username* form)
        with_auth(
            "Authorization: Digest username*=UTF-8''J%C3%A4s%C3%B8n%20Doe, \
             realm=\"api@example.org\", uri=\"/doe.json\", algorithm=SHA-512-256, \
             nonce=\"5TsQWLVdgBdmrQ0XsxbDODV+57QdFR34I9HAbC/RVvkK\", nc=00000001, \
             cnonce=\"NTg6RKcb9boFIAS3KrFK9BGeh+iDa/sm6jUMp2wds69v\", qop=auth, \
             response=\"3798d4131c277846293534c3edc11bd8a5e4cdcbff78b05db9d95eeb1cec68a5\", \
             opaque=\"HRPCssKJSGjCrkzDg8OhwpzCiGPChXYjwrI2QmXDnsOS\", userhash=false",
            |a| {
                let c = Credentials::parse(a).expect("credentials");
                assert_eq!(c.username, JASON);
                assert_eq!(c.algorithm, Some(Algorithm::Sha512_256));
                assert_eq!(c.response, jason(Algorithm::Sha512_256).1.as_str());
            },
        );
    }

    #[test]
    fn credentials_with_qop_need_cnonce_and_nc() {
        // RFC 7616 3.4: cnonce and nc MUST be sent with a qop; nc is 8LHEX
        let base =
            "Authorization: Digest username=\"a\", realm=\"r\", nonce=\"n\", uri=\"sip:r\", \
                    response=\"00\"";
        with_auth(&format!("{base}, qop=auth, nc=00000001"), |a| {
            assert_eq!(
                Credentials::parse(a),
                Err(CredentialsError::Missing("cnonce"))
            )
        });
        with_auth(&format!("{base}, qop=auth, cnonce=\"x\", nc=1"), |a| {
            assert_eq!(Credentials::parse(a), Err(CredentialsError::Invalid("nc")))
        });
        with_auth(&format!("{base}, cnonce=\"x\""), |a| {
            assert_eq!(Credentials::parse(a), Err(CredentialsError::Invalid("qop")))
        });
        with_auth(base, |a| assert!(Credentials::parse(a).is_ok()));
    }

    #[test]
    fn quoted_values_escape_quote_and_backslash_and_round_trip() {
        // RFC 3261 25.1 quoted-pair
        let c = Challenge {
            realm: Cow::Borrowed("a \"quoted\" \\ realm"),
            nonce: Cow::Borrowed("n"),
            opaque: None,
            algorithm: Some(Algorithm::Sha256),
            qop: Some(QopOptions {
                auth: true,
                auth_int: false,
            }),
            stale: true,
            userhash: false,
        };
        let text = c.to_string();
        assert!(text.contains(r#"realm="a \"quoted\" \\ realm""#), "{text}");
        with_auth(&format!("WWW-Authenticate: {text}"), |a| {
            assert_eq!(Challenge::parse(a), Some(c.clone()));
        });
    }

    #[test]
    fn algorithm_names_parse_case_insensitively() {
        // RFC 7616 3.3 (algorithm tokens), 6.1
        for a in Algorithm::ALL {
            assert_eq!(Algorithm::parse(a.as_str()), Some(a));
            assert_eq!(Algorithm::parse(&a.as_str().to_ascii_lowercase()), Some(a));
        }
        assert_eq!(Algorithm::parse("SHA-1"), None);
        assert_eq!(nc_text(0x1a), *b"0000001a");
    }
}
