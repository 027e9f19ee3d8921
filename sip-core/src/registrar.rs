//! The registrar (RFC 3261 section 10.3), with Path (RFC 3327 section 5.3) and the
//! registration parts of outbound (RFC 5626 section 6).
//!
//! Processing is split in two so that the location store may be asynchronous:
//!
//! 1. [`Registrar::check`] runs steps 1 to 6 on the request alone (the domain of the
//!    Request-URI, Require, the authorization of the authenticated user for the AOR, the
//!    AOR and its canonical form, the Contact values and their expiry) and returns a
//!    [`RegisterRequest`], or the [`Reject`] to answer with;
//! 2. [`RegisterRequest::apply`] runs step 7 against the current bindings of the AOR: a
//!    pure function from the current set to the new one, which any store can run (the
//!    in-memory [`MemoryStore`](crate::location::MemoryStore), or a shared database inside
//!    a transaction). [`RegisterRequest::ok_response`] then writes the 200 of step 8.
//!
//! Authentication (step 3) is the caller's: it passes the user it authenticated, if any,
//! and step 4 checks that this user may change the bindings of the AOR.

use std::time::{Duration, Instant};

use crate::location::Binding;
use crate::message::{Contact, HeaderName, Host, Message, Uri};
use crate::rng::Rng;
use crate::{BuildError, Method, OwnedMessage, ResponseBuilder, Source};

/// The option tags the registrar supports in Require (section 10.3 step 2).
pub const SUPPORTED: [&str; 2] = ["path", "outbound"];

/// How the registrar decides (section 10.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrarConfig {
    /// The domains it is the registrar for: host names or addresses (IPv6 with or without
    /// brackets), compared case-insensitively with the host of the Request-URI (step 1) and
    /// of the AOR (step 5); ports are not compared. Empty: every domain.
    pub domains: Vec<String>,
    /// The expiry granted when the REGISTER suggests none (step 6), in seconds.
    pub default_expires: u32,
    /// The shortest expiry accepted; a shorter non-zero one gets 423 with Min-Expires.
    pub min_expires: u32,
    /// The longest expiry granted; longer requests are shortened to it (step 6).
    pub max_expires: u32,
    /// Bindings one AOR may hold; a REGISTER that would make more gets 403.
    pub max_bindings_per_aor: usize,
}

impl Default for RegistrarConfig {
    fn default() -> RegistrarConfig {
        RegistrarConfig {
            domains: Vec::new(),
            default_expires: 3600,
            min_expires: 60,
            max_expires: 86_400,
            max_bindings_per_aor: 10,
        }
    }
}

impl RegistrarConfig {
    /// The default configuration, registrar for `domains`.
    pub fn for_domains<S: Into<String>>(domains: impl IntoIterator<Item = S>) -> Self {
        RegistrarConfig {
            domains: domains.into_iter().map(Into::into).collect(),
            ..RegistrarConfig::default()
        }
    }
}

/// Why a REGISTER is refused: the status, the reason phrase and the headers that go with
/// them (Min-Expires, Unsupported, Retry-After). Fully owned, so that an asynchronous store
/// can return it from another task.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Reject {
    /// The status code.
    pub status: u16,
    /// The reason phrase.
    pub reason: String,
    /// For 423: the Min-Expires value (section 10.3 step 6).
    pub min_expires: Option<u32>,
    /// For 420: the option tags to list in Unsupported (section 10.3 step 2).
    pub unsupported: Vec<String>,
    /// For 503 (and 500): the Retry-After value in seconds.
    pub retry_after: Option<u32>,
}

impl Reject {
    /// A rejection with `status` and `reason` and no extra header.
    pub fn new(status: u16, reason: impl Into<String>) -> Reject {
        Reject {
            status,
            reason: reason.into(),
            min_expires: None,
            unsupported: Vec::new(),
            retry_after: None,
        }
    }

    /// 500: the store failed; all tentative changes are dropped (section 10.3 step 7).
    pub fn server_error(reason: impl Into<String>) -> Reject {
        Reject::new(500, reason)
    }

    /// 503 with Retry-After: the store is full or overloaded.
    pub fn unavailable(reason: impl Into<String>, retry_after: Duration) -> Reject {
        Reject {
            retry_after: Some(u32::try_from(retry_after.as_secs()).unwrap_or(u32::MAX)),
            ..Reject::new(503, reason)
        }
    }

    /// The headers this rejection adds to its response, besides those copied from the
    /// request.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = Vec::new();
        if let Some(m) = self.min_expires {
            h.push(("Min-Expires", m.to_string()));
        }
        if !self.unsupported.is_empty() {
            h.push(("Unsupported", self.unsupported.join(", ")));
        }
        if let Some(r) = self.retry_after {
            h.push(("Retry-After", r.to_string()));
        }
        h
    }

    /// The response to `request` (a To tag is drawn from `rng`).
    pub fn response(
        &self,
        request: &OwnedMessage,
        rng: &mut dyn Rng,
    ) -> Result<OwnedMessage, BuildError> {
        let view = request.view();
        let headers = self.headers();
        let mut b = ResponseBuilder::from_view(&view, self.status).reason(&self.reason);
        for (n, v) in &headers {
            b = b.header(n, v);
        }
        b.build(rng)
    }
}

/// One Contact of a checked REGISTER: what it asks for (section 10.3 step 6).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ContactUpdate {
    /// The Contact URI as written in the request.
    pub uri: String,
    /// The expiry granted in seconds (0: remove the binding).
    pub expires: u32,
    /// The `q` parameter in thousandths.
    pub q: Option<u16>,
    /// The `+sip.instance` parameter as written (RFC 5626).
    pub instance: Option<String>,
    /// The `reg-id` parameter, kept only with an instance (RFC 5626 section 6).
    pub reg_id: Option<u32>,
}

/// A REGISTER that passed steps 1 to 6, ready for step 7 against any store. Fully owned.
#[derive(Debug, Clone)]
pub struct RegisterRequest {
    request: OwnedMessage,
    aor: String,
    call_id: String,
    cseq: u32,
    /// `Contact: *` with Expires 0: remove every binding.
    remove_all: bool,
    contacts: Vec<ContactUpdate>,
    path: Vec<String>,
    /// The UA said `Supported: path`: the 200 copies the Path back (RFC 3327 section 5.3).
    echo_path: bool,
    source: Option<Source>,
    max_bindings: usize,
}

/// The registrar: the checks of section 10.3 with its [`RegistrarConfig`].
#[derive(Debug, Clone)]
pub struct Registrar {
    config: RegistrarConfig,
}

/// The canonical form of an AOR (section 10.3 step 5): scheme, user and host with every
/// URI parameter removed and escapes decoded (then only the characters a user part cannot
/// hold as they are escaped again, so that the key is one string per AOR), the host in
/// lower case, the port kept when written.
pub fn canonical_aor(uri: &Uri<'_>) -> Option<String> {
    let Uri::Sip(u) = uri else {
        return None;
    };
    let mut s = String::with_capacity(64);
    s.push_str(if u.secure { "sips:" } else { "sip:" });
    if let Some(user) = u.user {
        let bytes: Vec<u8> = crate::message::unescaped(user).collect();
        for b in bytes {
            if b.is_ascii_alphanumeric() || b"-_.!~*'()&=+$,;?/".contains(&b) {
                s.push(char::from(b));
            } else {
                s.push_str(&format!("%{b:02X}"));
            }
        }
        s.push('@');
    }
    match u.host {
        Host::Ipv6(h) => {
            s.push('[');
            s.push_str(&h.to_ascii_lowercase());
            s.push(']');
        }
        h => s.push_str(&h.as_str().to_ascii_lowercase()),
    }
    if let Some(p) = u.port {
        s.push(':');
        s.push_str(&p.to_string());
    }
    Some(s)
}

/// The user part of a canonical AOR, escapes decoded (for step 4).
fn aor_user(uri: &Uri<'_>) -> Option<String> {
    let user = uri.as_sip()?.user?;
    String::from_utf8(crate::message::unescaped(user).collect()).ok()
}

/// `q` in thousandths written as a decimal (`700` is `0.7`, `1000` is `1`).
fn write_q(out: &mut String, q: u16) {
    if q >= 1000 {
        out.push('1');
        return;
    }
    let mut frac = format!("{q:03}");
    while frac.ends_with('0') && frac.len() > 1 {
        frac.pop();
    }
    out.push_str("0.");
    out.push_str(&frac);
}

/// Splits a header value list at the commas outside `<>` and quoted strings, trimming and
/// unfolding each element.
fn split_list(value: &str) -> Vec<String> {
    let (mut out, mut cur) = (Vec::new(), String::new());
    let (mut angle, mut quoted, mut escaped) = (false, false, false);
    for c in value.chars() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(if matches!(c, '\r' | '\n' | '\t') {
            ' '
        } else {
            c
        });
    }
    out.push(cur);
    out.into_iter()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Is `value` a Path value we can store and echo: `<sip-uri>` with parameters, nothing
/// that could break a header line?
fn valid_path(value: &str) -> bool {
    let Some(rest) = value.strip_prefix('<') else {
        return false;
    };
    let Some(end) = rest.find('>') else {
        return false;
    };
    Uri::parse(&rest[..end]).is_some_and(|u| u.as_sip().is_some())
        && !value.bytes().any(|b| b.is_ascii_control())
}

impl Registrar {
    /// A registrar with `config` (a default expiry below the minimum is raised to it).
    pub fn new(mut config: RegistrarConfig) -> Registrar {
        config.max_expires = config.max_expires.max(config.min_expires);
        config.default_expires = config
            .default_expires
            .clamp(config.min_expires, config.max_expires);
        Registrar { config }
    }

    /// The configuration.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Is `host` one of the domains served?
    pub fn serves(&self, host: &Host<'_>) -> bool {
        let h = host.as_str();
        self.config.domains.is_empty()
            || self.config.domains.iter().any(|d| {
                let d = d.trim_start_matches('[').trim_end_matches(']');
                d.eq_ignore_ascii_case(h)
            })
    }

    /// May `user` (authenticated by the caller) change the bindings of the AOR `to`
    /// (section 10.3 step 4)? Here: when it is the user part of the AOR.
    fn authorized(user: &str, to: &Uri<'_>) -> bool {
        aor_user(to).is_some_and(|u| u == user)
    }

    /// Steps 1 and 2 of section 10.3 alone: what is checked before authentication (step
    /// 3), so that a REGISTER this registrar would refuse anyway is not challenged first.
    /// [`check`](Self::check) runs them again.
    pub fn check_before_auth(&self, request: &OwnedMessage) -> Result<(), Reject> {
        let msg = request
            .message()
            .map_err(|_| Reject::new(400, "Bad Request"))?;
        self.steps_1_2(&msg)
    }

    fn steps_1_2(&self, msg: &Message<'_>) -> Result<(), Reject> {
        if msg.method() != Some(Method::Register) {
            return Err(Reject::new(405, "Method Not Allowed"));
        }
        // Step 1: the domain of the Request-URI (section 21.4.5: 404 for a domain not
        // handled here).
        match msg.request_uri() {
            Some(Uri::Sip(u)) if self.serves(&u.host) => {}
            Some(Uri::Sip(_)) => return Err(Reject::new(404, "Domain Not Served")),
            _ => return Err(Reject::new(416, "Unsupported URI Scheme")),
        }
        // Step 2: every Require option tag must be understood.
        let unsupported: Vec<String> = msg
            .tokens(HeaderName::Require)
            .filter(|t| !SUPPORTED.iter().any(|s| s.eq_ignore_ascii_case(t)))
            .map(str::to_owned)
            .collect();
        if !unsupported.is_empty() {
            return Err(Reject {
                unsupported,
                ..Reject::new(420, "Bad Extension")
            });
        }
        Ok(())
    }

    /// Steps 1 to 6 of section 10.3 on a REGISTER; `authenticated_user` is the user the
    /// caller authenticated in step 3, if any.
    pub fn check(
        &self,
        request: &OwnedMessage,
        authenticated_user: Option<&str>,
    ) -> Result<RegisterRequest, Reject> {
        let msg = request
            .message()
            .map_err(|_| Reject::new(400, "Bad Request"))?;
        self.steps_1_2(&msg)?;
        // Step 5 (read first, step 4 needs it): the AOR from To, a SIP URI of a domain
        // served.
        let to = msg.to().ok_or_else(|| Reject::new(400, "Missing To"))?;
        let Uri::Sip(to_uri) = &to.uri else {
            return Err(Reject::new(400, "Address-of-record is not a SIP URI"));
        };
        if !self.serves(&to_uri.host) {
            return Err(Reject::new(404, "Not Found"));
        }
        // Step 4: the authenticated user may change this AOR's bindings.
        if let Some(user) = authenticated_user {
            if !Self::authorized(user, &to.uri) {
                return Err(Reject::new(403, "Forbidden"));
            }
        }
        let aor = canonical_aor(&to.uri).ok_or_else(|| Reject::new(400, "Bad AOR"))?;
        let call_id = msg
            .call_id()
            .ok_or_else(|| Reject::new(400, "Missing Call-ID"))?
            .to_owned();
        let cseq = msg
            .cseq()
            .filter(|c| c.method == Method::Register)
            .ok_or_else(|| Reject::new(400, "Missing or Bad CSeq"))?
            .seq;
        // Section 8.1.1: what the response copies must be there (the UAS core's validation
        // says so earlier; a caller of this function alone may not have validated).
        if msg.from().is_none() {
            return Err(Reject::new(400, "Missing From"));
        }
        let (remove_all, contacts) = self.contacts(&msg)?;
        let mut path = Vec::new();
        for v in msg
            .view()
            .headers()
            .filter(|h| h.kind == HeaderName::Other && h.name.eq_ignore_ascii_case("Path"))
        {
            for p in split_list(v.value) {
                if !valid_path(&p) {
                    return Err(Reject::new(400, "Bad Path"));
                }
                path.push(p);
            }
        }
        let echo_path = msg
            .tokens(HeaderName::Supported)
            .any(|t| t.eq_ignore_ascii_case("path"));
        Ok(RegisterRequest {
            echo_path,
            request: request.clone(),
            aor,
            call_id,
            cseq,
            remove_all,
            contacts,
            path,
            source: None,
            max_bindings: self.config.max_bindings_per_aor,
        })
    }

    /// Step 6: the Contact values, `*` only alone with Expires 0, the expiry of each.
    fn contacts(&self, msg: &Message<'_>) -> Result<(bool, Vec<ContactUpdate>), Reject> {
        let header_expires = msg.expires();
        let mut star = false;
        let mut out = Vec::new();
        let mut reg_ids = 0usize;
        for c in msg.contacts() {
            match c {
                Contact::Star => star = true,
                Contact::Addr(a) => {
                    if out.len() >= self.config.max_bindings_per_aor {
                        return Err(Reject::new(403, "Too Many Contacts"));
                    }
                    let requested = a
                        .expires()
                        .or(header_expires)
                        .unwrap_or(self.config.default_expires);
                    let expires = requested.min(self.config.max_expires);
                    if expires != 0 && expires < self.config.min_expires {
                        return Err(Reject {
                            min_expires: Some(self.config.min_expires),
                            ..Reject::new(423, "Interval Too Brief")
                        });
                    }
                    let instance = a
                        .params
                        .get("+sip.instance")
                        .flatten()
                        .filter(|v| !v.bytes().any(|b| b.is_ascii_control()))
                        .map(str::to_owned);
                    let reg_id = a.params.get("reg-id").flatten().and_then(|v| {
                        crate::message::scan::parse_decimal(v, u64::from(u32::MAX))
                            .map(|n| n as u32)
                    });
                    // RFC 5626 section 6: a reg-id without an instance is ignored.
                    let reg_id = reg_id.filter(|_| instance.is_some());
                    reg_ids += usize::from(reg_id.is_some());
                    out.push(ContactUpdate {
                        uri: a.uri.to_string(),
                        expires,
                        q: a.q(),
                        instance,
                        reg_id,
                    });
                }
            }
        }
        if star {
            // Step 6: "*" is only allowed alone and with Expires: 0.
            if !out.is_empty() || header_expires != Some(0) {
                return Err(Reject::new(
                    400,
                    "Contact * needs to be alone with Expires: 0",
                ));
            }
        }
        // RFC 5626 section 6: a REGISTER with a reg-id has a single Contact.
        if reg_ids > 0 && out.len() > 1 {
            return Err(Reject::new(400, "More Than One Contact With reg-id"));
        }
        Ok((star, out))
    }
}

impl RegisterRequest {
    /// The REGISTER.
    pub fn request(&self) -> &OwnedMessage {
        &self.request
    }

    /// The AOR in canonical form (section 10.3 step 5): the key of its bindings.
    pub fn aor(&self) -> &str {
        &self.aor
    }

    /// The Call-ID.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The CSeq number.
    pub fn cseq(&self) -> u32 {
        self.cseq
    }

    /// The Contact values and the expiry granted to each.
    pub fn contacts(&self) -> &[ContactUpdate] {
        &self.contacts
    }

    /// Is it `Contact: *` (remove every binding)?
    pub fn is_remove_all(&self) -> bool {
        self.remove_all
    }

    /// Is it a query (no Contact at all: the 200 lists the current bindings)?
    pub fn is_query(&self) -> bool {
        !self.remove_all && self.contacts.is_empty()
    }

    /// The Path values of the request, in order (RFC 3327).
    pub fn path(&self) -> &[String] {
        &self.path
    }

    /// Where the REGISTER came from, recorded in its bindings.
    pub fn source(&self) -> Option<Source> {
        self.source
    }

    /// The same request, recording `source` in the bindings it makes.
    pub fn with_source(mut self, source: Source) -> RegisterRequest {
        self.source = Some(source);
        self
    }

    /// The longest expiry among the contacts (for a store that sets a time-to-live on the
    /// whole AOR).
    pub fn max_expires(&self) -> u32 {
        self.contacts.iter().map(|c| c.expires).max().unwrap_or(0)
    }

    /// Step 7: the new full set of bindings of the AOR, from its `current` bindings at
    /// `now` (expired ones are dropped). All changes or none: a stale CSeq for a binding
    /// (same Call-ID, CSeq not higher) fails the whole request with 500, as does one more
    /// binding than the AOR may hold (403).
    pub fn apply(&self, current: &[Binding], now: Instant) -> Result<Vec<Binding>, Reject> {
        let mut set: Vec<Binding> = current
            .iter()
            .filter(|b| !b.is_expired(now) && b.aor == self.aor)
            .cloned()
            .collect();
        if self.is_query() {
            return Ok(set);
        }
        let stale = |b: &Binding| b.call_id == self.call_id && self.cseq <= b.cseq;
        if self.remove_all {
            // Step 6/7 for "*": a binding with the same Call-ID is removed only by a
            // higher CSeq; otherwise the request fails.
            if set.iter().any(stale) {
                return Err(Reject::server_error("Stale CSeq"));
            }
            return Ok(Vec::new());
        }
        // Bindings this request already changed: a repeated Contact in one REGISTER is not
        // out of order.
        let mut touched = vec![false; set.len()];
        for c in &self.contacts {
            let uri = Uri::parse(&c.uri);
            let found = set.iter().position(|b| match (&c.instance, c.reg_id) {
                // RFC 5626 section 6: with an instance and a reg-id, the binding is theirs.
                (Some(i), Some(r)) => {
                    b.reg_id == Some(r)
                        && b.instance
                            .as_deref()
                            .is_some_and(|bi| bi.eq_ignore_ascii_case(i))
                }
                _ => match (&uri, Uri::parse(&b.contact)) {
                    (Some(u), Some(bu)) => u.equivalent(&bu),
                    _ => b.contact == c.uri,
                },
            });
            let expires_at = now
                .checked_add(Duration::from_secs(u64::from(c.expires)))
                .unwrap_or(now);
            match found {
                Some(i) => {
                    if !touched[i] && stale(&set[i]) {
                        return Err(Reject::server_error("Stale CSeq"));
                    }
                    if c.expires == 0 {
                        set.remove(i);
                        touched.remove(i);
                    } else {
                        set[i] = self.binding(c, expires_at);
                        touched[i] = true;
                    }
                }
                None if c.expires == 0 => {}
                None => {
                    set.push(self.binding(c, expires_at));
                    touched.push(true);
                }
            }
        }
        if set.len() > self.max_bindings {
            return Err(Reject::new(403, "Too Many Registered Contacts"));
        }
        Ok(set)
    }

    fn binding(&self, c: &ContactUpdate, expires_at: Instant) -> Binding {
        Binding {
            aor: self.aor.clone(),
            contact: c.uri.clone(),
            expires_at,
            q: c.q,
            call_id: self.call_id.clone(),
            cseq: self.cseq,
            path: self.path.clone(),
            instance: c.instance.clone(),
            reg_id: c.reg_id,
            source: self.source,
        }
    }

    /// The headers of the 200 of step 8: a Contact for every current binding with its
    /// remaining `expires` (and its `q`, `+sip.instance`, `reg-id`), the request's Path
    /// copied back when the UA said `Supported: path` (RFC 3327 section 5.3; stored
    /// either way), Supported, and `Require: outbound` when a contact registered with a
    /// reg-id (RFC 5626 section 6).
    pub fn ok_headers(&self, bindings: &[Binding], now: Instant) -> Vec<(&'static str, String)> {
        let mut h = Vec::with_capacity(bindings.len() + 3);
        for b in bindings.iter().filter(|b| !b.is_expired(now)) {
            let mut v = String::with_capacity(b.contact.len() + 48);
            v.push('<');
            v.push_str(&b.contact);
            v.push_str(">;expires=");
            v.push_str(&b.remaining(now).to_string());
            if let Some(q) = b.q {
                v.push_str(";q=");
                write_q(&mut v, q);
            }
            if let Some(i) = &b.instance {
                v.push_str(";+sip.instance=");
                v.push_str(i);
            }
            if let Some(r) = b.reg_id {
                v.push_str(";reg-id=");
                v.push_str(&r.to_string());
            }
            h.push(("Contact", v));
        }
        if self.echo_path && !self.path.is_empty() {
            h.push(("Path", self.path.join(", ")));
        }
        h.push(("Supported", SUPPORTED.join(", ")));
        if self.contacts.iter().any(|c| c.reg_id.is_some()) {
            h.push(("Require", "outbound".to_owned()));
        }
        h
    }

    /// The 200 of step 8 listing `bindings` (the new set [`apply`](Self::apply) returned,
    /// or a store's answer to a query) with their remaining expiry at `now`.
    pub fn ok_response(
        &self,
        bindings: &[Binding],
        now: Instant,
        rng: &mut dyn Rng,
    ) -> Result<OwnedMessage, BuildError> {
        let view = self.request.view();
        let headers = self.ok_headers(bindings, now);
        let mut b = ResponseBuilder::from_view(&view, 200);
        for (n, v) in &headers {
            b = b.header(n, v);
        }
        b.build(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SeededRng;

    fn request(to: &str, headers: &str) -> OwnedMessage {
        let text = format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
             From: <sip:alice@example.com>;tag=1\r\nTo: {to}\r\nCall-ID: c1\r\n\
             CSeq: 7 REGISTER\r\nMax-Forwards: 70\r\n{headers}Content-Length: 0\r\n\r\n"
        );
        OwnedMessage::parse(text.as_bytes()).unwrap()
    }

    fn registrar() -> Registrar {
        Registrar::new(RegistrarConfig::for_domains(["example.com"]))
    }

    fn aor_of(text: &str) -> Option<String> {
        canonical_aor(&Uri::parse(text)?)
    }

    // RFC 3261 section 10.3 step 5: parameters removed, escapes decoded, host case folded.
    #[test]
    fn step5_canonical_aor_drops_parameters_and_decodes_escapes() {
        assert_eq!(
            aor_of("sip:%61lice@Example.COM;user=phone?x=y").as_deref(),
            Some("sip:alice@example.com")
        );
        assert_eq!(
            aor_of("sips:bob:secret@[2001:DB8::1]:5061;transport=tcp").as_deref(),
            Some("sips:bob@[2001:db8::1]:5061")
        );
        // what a user part cannot hold as it is stays escaped, once
        assert_eq!(
            aor_of("sip:a%20b%25@example.com").as_deref(),
            Some("sip:a%20b%25@example.com")
        );
        assert_eq!(aor_of("tel:+15551234"), None);
    }

    // RFC 3261 section 10.3 step 4: the authenticated user must be allowed for the AOR.
    #[test]
    fn step4_a_user_not_allowed_for_the_aor_gets_403() {
        let r = registrar();
        let req = request("<sip:alice@example.com>", "Contact: <sip:a@h>\r\n");
        assert_eq!(r.check(&req, Some("bob")).unwrap_err().status, 403);
        assert!(r.check(&req, Some("alice")).is_ok());
        // escapes in the AOR's user part are decoded before comparing
        let req = request("<sip:%61lice@example.com>", "Contact: <sip:a@h>\r\n");
        assert!(r.check(&req, Some("alice")).is_ok());
    }

    // RFC 3261 section 10.3 step 6: "*" rules, checked before any store is involved.
    #[test]
    fn step6_contact_star_is_alone_with_expires_0() {
        let r = registrar();
        let to = "<sip:alice@example.com>";
        let ok = r
            .check(&request(to, "Contact: *\r\nExpires: 0\r\n"), None)
            .unwrap();
        assert!(ok.is_remove_all() && !ok.is_query());
        for bad in [
            "Contact: *\r\n",
            "Contact: *\r\nExpires: 10\r\n",
            "Contact: *, <sip:a@h>\r\nExpires: 0\r\n",
        ] {
            assert_eq!(
                r.check(&request(to, bad), None).unwrap_err().status,
                400,
                "{bad}"
            );
        }
    }

    // RFC 3261 section 10.3 step 6: a reject carries Min-Expires and builds its response.
    #[test]
    fn step6_interval_too_brief_response_has_min_expires() {
        let r = registrar();
        let req = request(
            "<sip:alice@example.com>",
            "Contact: <sip:a@h>\r\nExpires: 5\r\n",
        );
        let reject = r.check(&req, None).unwrap_err();
        assert_eq!((reject.status, reject.min_expires), (423, Some(60)));
        let resp = reject.response(&req, &mut SeededRng::new([1; 32])).unwrap();
        let text = String::from_utf8_lossy(resp.as_bytes()).into_owned();
        assert!(
            text.starts_with("SIP/2.0 423 Interval Too Brief\r\n"),
            "{text}"
        );
        assert!(text.contains("\r\nMin-Expires: 60\r\n"), "{text}");
    }

    // RFC 3261 section 10.3 step 2.
    #[test]
    fn step2_unsupported_lists_every_unknown_tag() {
        let req = request(
            "<sip:alice@example.com>",
            "Require: foo, path\r\nRequire: bar\r\n",
        );
        let reject = registrar().check(&req, None).unwrap_err();
        assert_eq!(reject.status, 420);
        assert_eq!(reject.unsupported, ["foo", "bar"]);
    }

    // RFC 3327 section 5.3: a Path that is not a SIP URI in angle brackets is refused.
    #[test]
    fn rfc3327_a_malformed_path_is_refused() {
        let req = request(
            "<sip:alice@example.com>",
            "Contact: <sip:a@h>\r\nPath: sip:edge.example.com\r\n",
        );
        assert_eq!(registrar().check(&req, None).unwrap_err().status, 400);
    }

    // RFC 3261 section 8.1.1 (found by the registrar fuzz target): a REGISTER without From
    // is refused, not accepted with a 200 that cannot be built.
    #[test]
    fn a_register_without_from_is_refused() {
        let text = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
            To: <sip:alice@example.com>\r\nCall-ID: c1\r\nCSeq: 7 REGISTER\r\n\
            Contact: <sip:a@h>\r\nContent-Length: 0\r\n\r\n";
        let req = OwnedMessage::parse(text.as_bytes()).unwrap();
        assert_eq!(registrar().check(&req, None).unwrap_err().status, 400);
    }

    #[test]
    fn q_values_are_written_as_decimals() {
        for (q, text) in [
            (1000, "1"),
            (700, "0.7"),
            (125, "0.125"),
            (50, "0.05"),
            (0, "0.0"),
        ] {
            let mut s = String::new();
            write_q(&mut s, q);
            assert_eq!(s, text);
        }
    }

    #[test]
    fn header_lists_split_outside_brackets_and_quotes() {
        assert_eq!(
            split_list(r#"<sip:a;x=1,2>, "q,\"x" <sip:b>,<sip:c>"#),
            [r#"<sip:a;x=1,2>"#, r#""q,\"x" <sip:b>"#, "<sip:c>"]
        );
    }

    // RFC 3261 section 10.3 step 7: a Contact repeated in one REGISTER is not out of order.
    #[test]
    fn step7_a_contact_repeated_in_one_request_is_not_stale() {
        let r = registrar();
        let req = request(
            "<sip:alice@example.com>",
            "Contact: <sip:a@h>;expires=100\r\nContact: <sip:a@h>;expires=200\r\n",
        );
        let reg = r.check(&req, None).unwrap();
        let now = Instant::now();
        let set = reg.apply(&[], now).unwrap();
        assert_eq!(set.len(), 1);
        assert_eq!(set[0].remaining(now), 200);
    }

    // RFC 3261 section 10.3 step 7: expired bindings handed in are not carried over.
    #[test]
    fn step7_expired_bindings_are_dropped_by_apply() {
        let r = registrar();
        let now = Instant::now();
        let old = r
            .check(
                &request(
                    "<sip:alice@example.com>",
                    "Contact: <sip:old@h>;expires=60\r\n",
                ),
                None,
            )
            .unwrap()
            .apply(&[], now)
            .unwrap();
        let later = now + Duration::from_secs(61);
        let query = r
            .check(&request("<sip:alice@example.com>", ""), None)
            .unwrap();
        assert!(query.is_query());
        assert!(query.apply(&old, later).unwrap().is_empty());
    }
}
