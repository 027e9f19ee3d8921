//! Semantic checks, kept apart from syntax: a message can parse and still be one a UAS,
//! proxy or registrar must refuse. [`request`] says which response is owed (RFC 3261
//! sections 8.2, 10.3, 16.3); [`response`] says which responses must be dropped (sections
//! 8.1.3.3, 18.1.2, 21).

use smallvec::SmallVec;

use crate::message::{Contact, HeaderName, HeaderValue, Message, Method, Uri};

/// The role of the element checking the message: the checks differ (a proxy looks at
/// Proxy-Require and Max-Forwards, a UAS at Require and the body, a registrar at the AOR).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// A user agent server (section 8.2).
    Uas,
    /// A proxy that would forward the request (section 16.3).
    Proxy,
    /// A registrar (section 10.3), otherwise behaving as a UAS.
    Registrar,
    /// A user agent client receiving responses (section 8.1.3).
    Uac,
}

/// What the checking element supports.
#[derive(Debug, Clone, Copy)]
pub struct Policy<'p> {
    /// The role.
    pub role: Role,
    /// Methods implemented; a standard method missing here gets 405, an extension 501.
    pub methods: &'p [&'p str],
    /// Option tags supported (for Require / Proxy-Require, section 8.2.2.3).
    pub extensions: &'p [&'p str],
    /// Request-URI schemes accepted (section 8.2.2.1).
    pub uri_schemes: &'p [&'p str],
    /// Body types understood, as `type/subtype` (section 8.2.3).
    pub body_types: &'p [&'p str],
    /// A registrar that requires Digest credentials answers requests without them with a
    /// challenge (section 22, RFC 4475 section 3.3.7).
    pub require_digest: bool,
}

impl Policy<'static> {
    /// A UAS supporting the RFC 3261 methods, SDP bodies and the sip, sips and tel schemes.
    pub const UAS: Policy<'static> = Policy {
        role: Role::Uas,
        methods: &[
            "INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "REGISTER", "MESSAGE", "INFO", "UPDATE",
            "PRACK",
        ],
        extensions: &["100rel", "timer", "replaces", "path", "outbound", "gruu"],
        uri_schemes: &["sip", "sips", "tel"],
        body_types: &["application/sdp"],
        require_digest: false,
    };
}

impl<'p> Policy<'p> {
    /// The same policy for another role.
    pub const fn with_role(self, role: Role) -> Policy<'p> {
        Policy { role, ..self }
    }
}

/// A rejection: the status code, its reason and what goes with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection<'m> {
    /// The status code to answer with.
    pub status: u16,
    /// Why, for logs and the reason phrase.
    pub reason: &'static str,
    /// For 420: the option tags to list in Unsupported (section 8.2.2.3).
    pub unsupported: SmallVec<[&'m str; 4]>,
}

/// The outcome of a check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict<'m> {
    /// Nothing wrong: process the message.
    Accept,
    /// Answer the request with this response.
    Respond(Rejection<'m>),
    /// Discard silently (a malformed ACK, a response that must not be processed).
    Drop(&'static str),
}

fn reject<'m>(status: u16, reason: &'static str) -> Verdict<'m> {
    Verdict::Respond(Rejection {
        status,
        reason,
        unsupported: SmallVec::new(),
    })
}

const MANDATORY: [HeaderName; 5] = [
    HeaderName::To,
    HeaderName::From,
    HeaderName::CSeq,
    HeaderName::CallId,
    HeaderName::Via,
];

/// Which response `req` is owed before the element acts on it. The checks run in the order
/// of RFC 3261 section 8.2 (well-formedness, method, headers, extensions, content).
pub fn request<'m>(req: &Message<'m>, policy: &Policy<'_>) -> Verdict<'m> {
    let Some(method) = req.method() else {
        return Verdict::Drop("not a request");
    };
    let v = check_request(req, method, policy);
    // An ACK is never answered (section 17.2.3): a bad one is dropped.
    match v {
        Verdict::Respond(_) if method == Method::Ack => Verdict::Drop("malformed ACK"),
        v => v,
    }
}

fn check_request<'m>(req: &Message<'m>, method: Method<'m>, policy: &Policy<'_>) -> Verdict<'m> {
    // Section 8.1.1: To, From, CSeq, Call-ID, Via (and Max-Forwards, which RFC 2543 peers
    // omit: RFC 4475 section 3.4.1 asks to accept that) are mandatory.
    for name in MANDATORY {
        if req.values(name).next().is_none() {
            return reject(400, missing_reason(name));
        }
    }
    // Section 7.3.1 / RFC 4475 section 3.3.8: single-valued headers appear once.
    for (i, h) in req.headers().iter().enumerate() {
        if h.name.is_single() && req.headers().take(i).any(|p| p.name == h.name) {
            return reject(400, "Multiple values in a single-value header");
        }
    }
    // Section 8.1.1.7: a magic cookie must be followed by something (RFC 4475 3.2.1).
    if req.top_via().and_then(|v| v.branch()) == Some(crate::builder::MAGIC_COOKIE) {
        return reject(400, "Empty branch after the magic cookie");
    }
    // Section 19.1.1 (table): a Request-URI carries no headers (RFC 4475 3.1.2.11).
    if let Some(Uri::Sip(u)) = req.request_uri() {
        if u.headers.is_some() {
            return reject(400, "Headers in the Request-URI");
        }
    }
    // Section 8.2.1 and 21.5.2.
    if !policy.methods.contains(&method.as_str()) {
        return match method {
            Method::Extension(_) => reject(501, "Not Implemented"),
            _ => reject(405, "Method Not Allowed"),
        };
    }
    // Section 8.1.1.5: the CSeq method matches the request method.
    if req.cseq().is_some_and(|c| c.method != method) {
        return reject(400, "CSeq method does not match the request method");
    }
    // Section 8.2.2.1.
    if let Some(u) = req.request_uri() {
        if !policy
            .uri_schemes
            .iter()
            .any(|s| s.eq_ignore_ascii_case(u.scheme()))
        {
            return reject(416, "Unsupported URI Scheme");
        }
    }
    if policy.role == Role::Proxy {
        // Section 16.3 step 3.
        if req.max_forwards() == Some(0) {
            return reject(483, "Too Many Hops");
        }
        // Section 16.3 step 5: Proxy-Require.
        return unsupported(req, HeaderName::ProxyRequire, policy);
    }
    // Section 8.2.2.3: Require (not applied to ACK and CANCEL).
    if method != Method::Cancel {
        if let v @ Verdict::Respond(_) = unsupported(req, HeaderName::Require, policy) {
            return v;
        }
    }
    // Section 8.2.3: content the UAS does not understand.
    if !req.body().is_empty() && method != Method::Cancel {
        let understood = req.content_type().is_some_and(|ct| {
            policy.body_types.iter().any(|t| {
                let (ty, sub) = t.split_once('/').unwrap_or((t, "*"));
                ct.ty.eq_ignore_ascii_case(ty) && ct.subtype.eq_ignore_ascii_case(sub)
            })
        }) && req
            .tokens(HeaderName::ContentEncoding)
            .all(|e| e.eq_ignore_ascii_case("identity"));
        if !understood {
            return reject(415, "Unsupported Media Type");
        }
    }
    // Section 8.2.3 / 21.4.7: an INVITE whose Accept rules out the session description the
    // UAS would answer with (RFC 4475 section 3.3.15).
    if method == Method::Invite && req.values(HeaderName::Accept).next().is_some() {
        let sdp_ok = policy.body_types.iter().any(|t| {
            let (ty, sub) = t.split_once('/').unwrap_or((t, "*"));
            req.accepts().any(|a| a.matches(ty, sub))
        });
        if !sdp_ok {
            return reject(406, "Not Acceptable");
        }
    }
    if policy.role == Role::Registrar && method == Method::Register {
        // Section 10.3 step 5 / RFC 4475 section 3.3.4: the AOR is a sip or sips URI.
        if !req.to().is_some_and(|t| matches!(t.uri, Uri::Sip(_))) {
            return reject(400, "Address-of-record is not a SIP URI");
        }
        // Section 10.3 step 3 (and RFC 4475 3.3.7): credentials of an unknown scheme are
        // as good as none.
        if policy.require_digest {
            let has_digest = req.values(HeaderName::Authorization).any(
                |v| matches!(v, HeaderValue::Auth(a) if a.scheme.eq_ignore_ascii_case("Digest")),
            );
            if !has_digest {
                return reject(401, "Unauthorized");
            }
        }
        // Section 10.3 step 6: "*" only alone and with Expires: 0.
        let contacts: SmallVec<[Contact<'_>; 4]> = req.contacts().collect();
        if contacts.contains(&Contact::Star) && (contacts.len() > 1 || req.expires() != Some(0)) {
            return reject(400, "Contact * needs to be alone with Expires: 0");
        }
    }
    Verdict::Accept
}

fn missing_reason(name: HeaderName) -> &'static str {
    match name {
        HeaderName::To => "Missing To header",
        HeaderName::From => "Missing From header",
        HeaderName::CSeq => "Missing CSeq header",
        HeaderName::CallId => "Missing Call-ID header",
        _ => "Missing Via header",
    }
}

fn unsupported<'m>(req: &Message<'m>, which: HeaderName, policy: &Policy<'_>) -> Verdict<'m> {
    let tags: SmallVec<[&'m str; 4]> = req
        .tokens(which)
        .filter(|t| !policy.extensions.iter().any(|e| e.eq_ignore_ascii_case(t)))
        .collect();
    if tags.is_empty() {
        Verdict::Accept
    } else {
        Verdict::Respond(Rejection {
            status: 420,
            reason: "Bad Extension",
            unsupported: tags,
        })
    }
}

/// Whether a received response must be dropped (sections 8.1.3.3, 16.7, 21).
pub fn response<'m>(resp: &Message<'m>, policy: &Policy<'_>) -> Verdict<'m> {
    let Some(code) = resp.status() else {
        return Verdict::Drop("not a response");
    };
    if code > 699 {
        return Verdict::Drop("status code above 699");
    }
    for name in MANDATORY {
        if resp.values(name).next().is_none() {
            return Verdict::Drop(missing_reason(name));
        }
    }
    match policy.role {
        // Section 8.1.3.3: a UAC discards a response with more than one Via.
        Role::Uac | Role::Uas | Role::Registrar if resp.vias().nth(1).is_some() => {
            Verdict::Drop("more than one Via in a response to a UAC")
        }
        // Section 16.7 / RFC 4475 section 3.3.10: never forward to a broadcast address.
        Role::Proxy
            if resp.vias().nth(1).is_some_and(|v| {
                v.host.ip() == Some(std::net::IpAddr::V4(std::net::Ipv4Addr::BROADCAST))
            }) =>
        {
            Verdict::Drop("next Via is a broadcast address")
        }
        _ => Verdict::Accept,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACK: &[u8] = b"ACK sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n\
        From: <sip:a@example.com>;tag=1\r\nTo: <sip:bob@example.com>;tag=2\r\nCall-ID: c@h\r\n\
        CSeq: 1 INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n";

    // RFC 3261 section 17.2.3 / 8.2: an ACK never gets a response, so a bad one is dropped.
    #[test]
    fn bad_ack_is_dropped_not_answered() {
        let m = Message::parse(ACK).unwrap();
        // CSeq method INVITE vs ACK would be a 400 for any other method
        assert!(matches!(request(&m, &Policy::UAS), Verdict::Drop(_)));
        let good = String::from_utf8_lossy(ACK).replace("1 INVITE", "1 ACK");
        let m = Message::parse(good.as_bytes()).unwrap();
        assert_eq!(request(&m, &Policy::UAS), Verdict::Accept);
    }

    // RFC 3261 section 21: codes above 699 are not processed.
    #[test]
    fn response_code_above_699_is_dropped() {
        let r =
            b"SIP/2.0 700 Odd\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nFrom: <sip:a@b>;tag=1\r\n\
            To: <sip:c@d>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
        let m = Message::parse(r).unwrap();
        assert!(matches!(
            response(&m, &Policy::UAS.with_role(Role::Uac)),
            Verdict::Drop(_)
        ));
    }
}
